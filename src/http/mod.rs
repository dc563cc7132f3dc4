//! imprint's HTTP/1.1 client: blocking, over kernel TCP sockets, one exchange per
//! connection, built to move gigabytes through a flaky network without losing a byte.
//!
//! - [`url`]: `http://host[:port]/path?query`, redirect targets resolved.
//! - [`response`]: the response head (httparse) and how its body is framed.
//! - [`body`]: the chunked decoder.
//! - [`client`]: the request head, chunked uploads, connections, timeouts, redirects,
//!   retries and the body reader with transparent Range resume.
//!
//! Host names resolve through `net::dns` with the servers the client was given; IPv4
//! literals need none.

pub mod body;
pub mod client;
pub mod response;
pub mod url;

pub use client::{Client, Options, Response};

use alloc::string::String;
use core::fmt::{self, Display};

/// Results of this module: an [`Error`] unless another error type is given.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// An HTTP failure: one line naming what was being done, the URL and what went wrong.
/// Callers act on two facts only, kept beside the message.
#[derive(Debug, PartialEq, Eq)]
pub struct Error {
    pub message: String,
    /// The response's status when the failure is one (404: no such plan), else 0.
    pub status: u16,
    /// Whether another attempt could succeed: network trouble and 408/429/5xx.
    pub transient: bool,
}

impl Error {
    /// "{lead}{url}: {what}": most messages have this shape and share this formatting.
    pub fn new(lead: &str, url: &dyn Display, what: &dyn Display, transient: bool) -> Error {
        Error::text(text!("{lead}{url}: {what}"), transient)
    }

    pub fn text(message: String, transient: bool) -> Error {
        Error { message, status: 0, transient }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Statuses worth retrying: timeout, rate limit, and server errors.
pub fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 503, 599] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 403, 404, 410] {
            assert!(!retryable_status(s), "{s}");
        }
    }
}
