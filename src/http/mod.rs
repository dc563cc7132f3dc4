//! imprint's HTTP/1.1 client: blocking, over kernel TCP sockets, one exchange per
//! connection, built to move gigabytes through a flaky network without losing a byte.
//!
//! - [`url`]: `http://host[:port]/path?query`, redirect targets resolved.
//! - [`request`]: the request head and chunked upload framing.
//! - [`response`]: the response head (httparse) and how its body is framed.
//! - [`body`]: the chunked decoder.
//! - [`client`]: connections, timeouts, redirects, retries and the body reader with
//!   transparent Range resume.
//!
//! Names go through a [`Resolve`] the caller provides (DNS lives in the network code);
//! IPv4 literals never do.

pub mod body;
pub mod cli;
pub mod client;
pub mod request;
pub mod response;
pub mod url;

pub use client::{Client, Options, Response};

use crate::sys::socket::SocketAddrV4;
use crate::sys::Errno;
use alloc::boxed::Box;
use alloc::string::String;
use body::ChunkError;
use core::fmt;
use core::time::Duration;
use response::HeadError;
use url::UrlError;

/// Turns a host name into an IPv4 address (an A record). Implemented by the DNS client;
/// the HTTP client calls it once per connection for hosts that are not IPv4 literals.
pub trait Resolve {
    fn resolve(&mut self, host: &str) -> Result<[u8; 4], ResolveError>;
}

/// Why a name did not resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// No DNS server is known (none from DHCP, `ip=` or the plan).
    NoServer,
    /// The servers answered: the name has no A record (NXDOMAIN or no data).
    NotFound,
    /// No server answered in time; worth retrying.
    TimedOut,
    /// Anything else, said in one line by the resolver.
    Failed(String),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NoServer => f.write_str("no DNS server configured"),
            ResolveError::NotFound => f.write_str("no such host (no A record)"),
            ResolveError::TimedOut => f.write_str("no DNS server answered"),
            ResolveError::Failed(why) => f.write_str(why),
        }
    }
}

/// The resolver to use until DNS is configured: every name fails with NoServer, so URLs
/// with IPv4 literals work and names give a clear error.
pub struct NoDns;

impl Resolve for NoDns {
    fn resolve(&mut self, _host: &str) -> Result<[u8; 4], ResolveError> {
        Err(ResolveError::NoServer)
    }
}

/// What went wrong with a redirect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectProblem {
    NoLocation,
    Loop,
    TooMany,
}

/// Every HTTP failure, each displayed as one line naming the URL and what was being done.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    Url {
        url: String,
        error: UrlError,
    },
    Resolve {
        host: String,
        error: ResolveError,
    },
    Connect {
        url: String,
        addr: SocketAddrV4,
        errno: Errno,
    },
    Send {
        url: String,
        errno: Errno,
    },
    Receive {
        url: String,
        errno: Errno,
    },
    /// No byte moved for `after` while sending or receiving.
    Idle {
        url: String,
        after: Duration,
    },
    /// The connection closed before a complete response head.
    NoResponse {
        url: String,
    },
    Head {
        url: String,
        error: HeadError,
    },
    /// The connection ended before the body's framing said it was complete.
    Truncated {
        url: String,
        received: u64,
        expected: Option<u64>,
    },
    Chunk {
        url: String,
        error: ChunkError,
    },
    Status {
        method: &'static str,
        url: String,
        status: u16,
        reason: String,
    },
    Redirect {
        url: String,
        problem: RedirectProblem,
    },
    /// Resuming found a different resource (200 instead of 206, or another range).
    Changed {
        url: String,
        offset: u64,
        why: &'static str,
    },
    /// Retries ran out; `last` is what the last attempt ran into.
    GaveUp {
        attempts: u32,
        last: Box<Error>,
    },
    /// The upload's source failed, or gave another length than declared.
    Source {
        url: String,
        why: String,
    },
}

impl Error {
    /// Whether another attempt could succeed: network trouble and 408/429/5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. }
            | Error::Send { .. }
            | Error::Receive { .. }
            | Error::Idle { .. }
            | Error::NoResponse { .. }
            | Error::Truncated { .. } => true,
            Error::Resolve { error, .. } => *error == ResolveError::TimedOut,
            Error::Status { status, .. } => retryable_status(*status),
            _ => false,
        }
    }
}

/// Statuses worth retrying: timeout, rate limit, and server errors.
pub fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

// The redirect message spells the limit out (a literal costs less than formatting it).
const _: () = assert!(client::MAX_REDIRECTS == 5);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Most messages are "<what was being done><URL or host>: <what went wrong>"; they
        // share one formatting call.
        let (lead, subject, detail): (&str, &str, &dyn fmt::Display) = match self {
            Error::Url { url, error } => {
                return write!(f, "bad URL {}: {error}", crate::console::Quoted(url))
            }
            Error::Resolve { host, error } => ("resolving ", host, error),
            Error::Connect { url, addr, errno } => {
                return write!(f, "connecting to {addr} for {url}: {errno}")
            }
            Error::Send { url, errno } => ("sending the request to ", url, errno),
            Error::Receive { url, errno } => ("receiving from ", url, errno),
            Error::Idle { url, after } => {
                return write!(f, "{url}: no data moved for {} (idle timeout)", Seconds(*after));
            }
            Error::Head { url, error } => ("", url, error),
            Error::Truncated { url, received, expected: Some(total) } => {
                return write!(f, "{url}: body cut short after {received} of {total} bytes");
            }
            Error::Truncated { url, received, expected: None } => {
                return write!(
                    f,
                    "{url}: body cut short after {received} bytes (chunked framing incomplete)"
                );
            }
            Error::Chunk { url, error } => ("", url, error),
            // As u32: u16 would bring its own copy of the integer formatting.
            Error::Status { method, url, status, reason } => {
                return write!(f, "{method} {url}: {} {reason}", u32::from(*status));
            }
            Error::Changed { url, offset, why } => {
                return write!(f, "{url} changed while resuming at byte {offset}: {why}");
            }
            Error::GaveUp { attempts, last } => {
                return write!(f, "giving up after {attempts} attempts: {last}")
            }
            Error::Source { url, why } => ("uploading to ", url, why),
            Error::NoResponse { url } => {
                ("", url, &"connection closed before a complete response head")
            }
            Error::Redirect { url, problem: RedirectProblem::NoLocation } => {
                ("", url, &"redirect without a Location header")
            }
            Error::Redirect { url, problem: RedirectProblem::Loop } => {
                return write!(f, "redirect loop at {url}")
            }
            Error::Redirect { url, problem: RedirectProblem::TooMany } => {
                return write!(f, "too many redirects (more than 5) ending at {url}");
            }
        };
        write!(f, "{lead}{subject}: {detail}")
    }
}

/// A duration for messages: "30 s", or "300 ms" when not whole seconds.
pub struct Seconds(pub Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not as_millis(): its u128 would pull 128-bit division and formatting into the init.
        let ms = self.0.as_secs() * 1000 + u64::from(self.0.subsec_millis());
        if ms.is_multiple_of(1000) {
            write!(f, "{} s", ms / 1000)
        } else {
            write!(f, "{ms} ms")
        }
    }
}

/// Parses seconds as the tool's flags give them: "30", "0.5", "1.25" (millisecond
/// precision).
pub fn parse_seconds(text: &str) -> Option<Duration> {
    let mut parts = response::pieces(text.as_bytes(), b'.');
    let (whole, frac) = (parts.next()?, parts.next().unwrap_or(b""));
    if parts.next().is_some() || frac.len() > 3 || whole.is_empty() && frac.is_empty() {
        return None;
    }
    // Each part is digits or nothing; the fraction counts in thousandths.
    let number =
        |digits: &[u8]| if digits.is_empty() { Some(0) } else { response::parse_length(digits) };
    let ms = number(frac)? * [1000, 100, 10, 1][frac.len()];
    number(whole)?.checked_mul(1000)?.checked_add(ms).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn errors_are_one_line_with_the_url() {
        let url = String::from("http://10.0.0.1/x");
        let all = [
            Error::Url { url: "https://h/".into(), error: UrlError::Tls },
            Error::Resolve { host: "boot".into(), error: ResolveError::NoServer },
            Error::Idle { url: url.clone(), after: Duration::from_millis(300) },
            Error::Truncated { url: url.clone(), received: 5, expected: Some(10) },
            Error::Status {
                method: "GET",
                url: url.clone(),
                status: 404,
                reason: "Not Found".into(),
            },
            Error::Redirect { url: url.clone(), problem: RedirectProblem::Loop },
            Error::GaveUp { attempts: 3, last: Box::new(Error::NoResponse { url: url.clone() }) },
        ];
        for e in &all {
            let text = e.to_string();
            assert!(!text.contains('\n'), "{text}");
        }
        assert_eq!(all[1].to_string(), "resolving boot: no DNS server configured");
        assert_eq!(
            all[2].to_string(),
            "http://10.0.0.1/x: no data moved for 300 ms (idle timeout)"
        );
        assert_eq!(all[4].to_string(), "GET http://10.0.0.1/x: 404 Not Found");
        assert!(all[0].to_string().contains("TLS is not supported"));
        assert!(all[6]
            .to_string()
            .starts_with("giving up after 3 attempts: http://10.0.0.1/x: connection closed"));
    }

    #[test]
    fn transient_errors_are_network_trouble_and_some_statuses() {
        let status = |s| Error::Status {
            method: "GET",
            url: String::new(),
            status: s,
            reason: String::new(),
        };
        for s in [408, 429, 500, 503, 599] {
            assert!(status(s).is_transient(), "{s}");
        }
        for s in [400, 403, 404, 410] {
            assert!(!status(s).is_transient(), "{s}");
        }
        assert!(Error::NoResponse { url: String::new() }.is_transient());
        assert!(
            !Error::Resolve { host: String::new(), error: ResolveError::NoServer }.is_transient()
        );
        assert_eq!(NoDns.resolve("boot"), Err(ResolveError::NoServer));
    }

    #[test]
    fn seconds_parse_and_display() {
        assert_eq!(parse_seconds("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_seconds("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_seconds("1.25"), Some(Duration::from_millis(1250)));
        assert_eq!(parse_seconds(".3"), Some(Duration::from_millis(300)));
        assert_eq!(parse_seconds("99999999999999999999"), None, "overflow");
        for bad in ["", ".", "1.2345", "-1", "1e3", "x", "1.2.3"] {
            assert_eq!(parse_seconds(bad), None, "{bad}");
        }
        assert_eq!(Seconds(Duration::from_millis(1250)).to_string(), "1250 ms");
        assert_eq!(Seconds(Duration::from_secs(30)).to_string(), "30 s");
    }
}
