//! The error a boot ends with: one line that says what was being done and what went wrong
//! (the rescue path adds which step of the boot it was). Every error type of imprint
//! displays as such a line, so `?` turns any of them into this one.

use alloc::string::String;
use core::fmt::Display;

/// An error's one-line message. It is not `Display` itself: that would clash with the
/// blanket conversion below.
pub struct Error(pub String);

impl<E: Display> From<E> for Error {
    fn from(e: E) -> Error {
        Error(text!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Errno;

    #[test]
    fn any_error_becomes_its_line() {
        let e: Error = Errno::ENOENT.into();
        assert_eq!(e.0, "No such file or directory (errno 2)");
        let Err(net) = crate::net::bring_up(Some("off"), None, core::time::Duration::ZERO) else {
            panic!("ip=off brings no network up")
        };
        let e: Error = net.into();
        assert!(!e.0.contains('\n') && !e.0.is_empty(), "{}", e.0);
    }
}
