//! The error a boot ends with: one line that says what was being done and what went wrong
//! (the rescue path adds which step of the boot it was). imprint's errors are such lines
//! (Strings, or an HTTP error's message), so `?` turns any of them into this one without
//! formatting it again.

use alloc::string::String;

/// An error's one-line message.
pub struct Error(pub String);

impl From<String> for Error {
    fn from(e: String) -> Error {
        Error(e)
    }
}

impl From<crate::http::Error> for Error {
    fn from(e: crate::http::Error) -> Error {
        Error(e.message)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_error_becomes_its_line() {
        let http = crate::http::Error::text("fetching http://s/x: 404 Not Found".into(), false);
        let e: Error = http.into();
        assert_eq!(e.0, "fetching http://s/x: 404 Not Found");
        let Err(net) = crate::net::bring_up(Some("off"), None, core::time::Duration::ZERO) else {
            panic!("ip=off brings no network up")
        };
        let e: Error = net.into();
        assert!(!e.0.contains('\n') && !e.0.is_empty(), "{}", e.0);
    }
}
