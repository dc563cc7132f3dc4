//! The response head: parsed with httparse into our own type holding what imprint acts on
//! (status, framing, redirect target, validators for resuming, Retry-After), with the
//! size capped and the body's framing decided as RFC 9112 section 6.3 says.

use super::body::ChunkedDecoder;
use alloc::string::String;

/// Longest response head we accept, and most header lines.
pub const MAX_HEAD: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 64;

/// How the body's end is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Framing {
    /// Content-Length bytes; 0 for no body at all (1xx, 204, 304).
    Length(u64),
    /// Transfer-Encoding: chunked, ended by its zero-size chunk; the decoder's state.
    Chunked(ChunkedDecoder),
    /// Until the server closes the connection (neither header; HTTP/1.0 style).
    #[default]
    Close,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Head {
    pub status: u16,
    pub reason: String,
    pub framing: Framing,
    pub location: Option<String>,
    /// The validator for If-Range when resuming: a strong ETag, else Last-Modified
    /// (RFC 9110 13.1.5: weak tags must not be used there).
    pub validator: Option<String>,
    /// Retry-After in seconds (the HTTP-date form is ignored: our backoff applies then).
    pub retry_after: Option<u64>,
    /// Content-Range of a 206: first byte, last byte, complete length if known.
    pub content_range: Option<ContentRange>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    pub first: u64,
    pub last: u64,
    pub complete: Option<u64>,
}

/// Why a response head is refused, said in one line.
pub type HeadError = &'static str;

// The messages below spell the caps out (a literal costs less than formatting a number).
const _: () = assert!(MAX_HEAD == 16384 && MAX_HEADERS == 64);
const TOO_LARGE: HeadError = "response head larger than 16384 bytes";

impl Head {
    /// Parses a head from the start of `buf`: `Ok(None)` when more bytes are needed,
    /// otherwise the head and its length in bytes.
    #[inline(never)]
    pub fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, HeadError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
            // httparse caps nothing itself: a head that keeps growing is cut off here.
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
            Ok(_) => return Err(TOO_LARGE),
            Err(e) => return Err(parse_error_text(e)),
        };
        let (status, reason) = (response.code.unwrap_or(0), response.reason.unwrap_or(""));
        let mut head = Head { status, reason: reason.into(), ..Head::default() };
        let (mut length, mut etag, mut last_modified) = (None, None, None);
        // Transfer codings: 1 for "chunked", 2 for any other; 1 in all: plain chunked.
        let mut codings = 0;
        for h in response.headers.iter() {
            let name = h.name.as_bytes();
            let Some(which) = WANTED.iter().position(|w| equals_ignoring_case(name, w)) else {
                continue;
            };
            let value = h.value.trim_ascii();
            match which {
                // Both are lists. Content-Length may repeat only when every element
                // agrees ("5, 5"); empty Transfer-Encoding elements are allowed.
                0 => {
                    for item in pieces(value, b',') {
                        let n = parse_length(item.trim_ascii());
                        let n = n.filter(|&n| length.is_none_or(|l| l == n));
                        length = Some(n.ok_or("invalid or conflicting Content-Length")?);
                    }
                }
                1 => {
                    for item in pieces(value, b',').map(<[u8]>::trim_ascii) {
                        codings += match item {
                            b"" => 0,
                            _ if equals_ignoring_case(item, b"chunked") => 1,
                            _ => 2,
                        };
                    }
                }
                2 => head.location = text(value),
                3 => etag = Some(value).filter(|v| !v.starts_with(b"W/")),
                4 => last_modified = Some(value),
                5 => head.retry_after = parse_length(value),
                _ => head.content_range = parse_content_range(value),
            }
        }
        head.validator = etag.or(last_modified).and_then(text);
        head.framing =
            match (status, codings, length) {
                (100..=199 | 204 | 304, ..) => Framing::Length(0),
                (_, 0, _) => length.map_or(Framing::Close, Framing::Length),
                (_, _, Some(_)) => return Err(
                    "response has both Content-Length and Transfer-Encoding (ambiguous framing)",
                ),
                // Only plain "chunked": any other coding (gzip on the wire) would hand the
                // caller bytes that are not the resource.
                (_, 1, _) => Framing::Chunked(ChunkedDecoder::default()),
                _ => return Err("unsupported Transfer-Encoding (only chunked is supported)"),
            };
        if status == 206 && head.content_range.is_none() {
            return Err("206 response without a valid Content-Range");
        }
        Ok(Some((head, len)))
    }
}

/// The header fields imprint acts on, in the order `Head::parse` matches them.
const WANTED: [&[u8]; 7] = [
    b"content-length",
    b"transfer-encoding",
    b"location",
    b"etag",
    b"last-modified",
    b"retry-after",
    b"content-range",
];

/// Whether `a` and `b` are equal ignoring ASCII case. (core's `[u8]::eq_ignore_ascii_case`
/// is several times larger in the init: every caller uses this one instead.)
pub fn equals_ignoring_case(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.eq_ignore_ascii_case(b))
}

/// The pieces of `v` between `separator` bytes (one splitter for every caller: each
/// closure type would be another copy of it).
pub fn pieces(v: &[u8], separator: u8) -> impl Iterator<Item = &[u8]> {
    v.split(move |&b| b == separator)
}

fn parse_error_text(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => "response head has more than 64 header fields",
        httparse::Error::HeaderName => "malformed response head (invalid header name)",
        httparse::Error::HeaderValue => "malformed response head (invalid header value)",
        httparse::Error::NewLine => "malformed response head (invalid line ending)",
        httparse::Error::Status => "malformed response head (invalid status line)",
        httparse::Error::Token => "malformed response head (invalid token)",
        httparse::Error::Version => "malformed response head (not HTTP/1.x)",
    }
}

fn text(v: &[u8]) -> Option<String> {
    core::str::from_utf8(v).ok().map(String::from)
}

/// A plain decimal number of at most 2^64-1: no sign, no spaces, no overflow.
pub fn parse_length(v: &[u8]) -> Option<u64> {
    let digit = |&b: &u8| b.is_ascii_digit().then(|| u64::from(b - b'0'));
    let n = v.iter().try_fold(0u64, |n, b| n.checked_mul(10)?.checked_add(digit(b)?));
    n.filter(|_| !v.is_empty())
}

/// `bytes first-last/complete` or `bytes first-last/*`.
#[inline(never)]
fn parse_content_range(v: &[u8]) -> Option<ContentRange> {
    let mut parts = v.strip_prefix(b"bytes ")?.split(|&b| b == b'-' || b == b'/');
    let (first, last) = (parse_length(parts.next()?)?, parse_length(parts.next()?)?);
    let complete = parts.next()?;
    let complete = if complete == b"*" { None } else { Some(parse_length(complete)?) };
    let valid = parts.next().is_none() && first <= last && complete.is_none_or(|c| last < c);
    valid.then_some(ContentRange { first, last, complete })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Heads captured from nginx 1.22.1 (Debian 12) on loopback, byte for byte.
    /// `GET /f.bin` of a 1 MiB file, with "BODY" standing in for the start of the body.
    const NGINX_200: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 15:20:15 GMT\r\n\
Content-Type: text/plain\r\nContent-Length: 1048576\r\nLast-Modified: Fri, 27 Nov 2026 15:20:14 GMT\r\n\
Connection: close\r\nETag: \"6b099fae-100000\"\r\nAccept-Ranges: bytes\r\n\r\nBODY";

    /// The same with `Range: bytes=1000-` and a matching `If-Range`.
    const NGINX_206: &[u8] = b"HTTP/1.1 206 Partial Content\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 15:20:15 GMT\r\n\
Content-Type: text/plain\r\nContent-Length: 1047576\r\nLast-Modified: Fri, 27 Nov 2026 15:20:14 GMT\r\n\
Connection: close\r\nETag: \"6b099fae-100000\"\r\nContent-Range: bytes 1000-1048575/1048576\r\n\r\n";

    /// `GET /nope`.
    const NGINX_404: &[u8] = b"HTTP/1.1 404 Not Found\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 15:20:15 GMT\r\n\
Content-Type: text/html\r\nContent-Length: 153\r\nConnection: close\r\n\r\n";

    fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, HeadError> {
        Head::parse(buf)
    }

    #[test]
    fn parses_nginx_heads() {
        let (head, len) = parse(NGINX_200).unwrap().unwrap();
        assert_eq!(&NGINX_200[len..], b"BODY");
        assert_eq!((head.status, head.reason.as_str()), (200, "OK"));
        assert_eq!(head.framing, Framing::Length(1_048_576));
        assert_eq!(
            head.validator.as_deref(),
            Some("\"6b099fae-100000\""),
            "the ETag before Last-Modified"
        );
        let (head, _) = parse(NGINX_206).unwrap().unwrap();
        assert_eq!(
            head.content_range,
            Some(ContentRange { first: 1000, last: 1_048_575, complete: Some(1_048_576) })
        );
        assert_eq!(head.framing, Framing::Length(1_047_576));
        let (head, len) = parse(NGINX_404).unwrap().unwrap();
        assert_eq!((head.status, head.reason.as_str(), len), (404, "Not Found", NGINX_404.len()));
        assert_eq!(head.framing, Framing::Length(153));
    }

    #[test]
    fn partial_heads_ask_for_more_until_the_cap() {
        for cut in [0, 1, 10, NGINX_200.len() - 6] {
            assert_eq!(parse(&NGINX_200[..cut]), Ok(None), "cut at {cut}");
        }
        let mut huge = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        huge.resize(MAX_HEAD, b'a');
        assert_eq!(parse(&huge), Err(TOO_LARGE));
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(std::format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many), Err("response head has more than 64 header fields"));
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let framing = |extra: &str| {
            let text = std::format!("HTTP/1.1 200 OK\r\n{extra}\r\n");
            parse(text.as_bytes()).map(|h| h.unwrap().0.framing)
        };
        assert_eq!(
            framing("Transfer-Encoding: chunked\r\n"),
            Ok(Framing::Chunked(ChunkedDecoder::default()))
        );
        assert_eq!(
            framing("Transfer-Encoding: gzip, chunked\r\n"),
            Err("unsupported Transfer-Encoding (only chunked is supported)")
        );
        assert_eq!(
            framing("Transfer-Encoding: chunked, gzip\r\n"),
            Err("unsupported Transfer-Encoding (only chunked is supported)")
        );
        assert_eq!(
            framing("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            Err("response has both Content-Length and Transfer-Encoding (ambiguous framing)")
        );
        assert_eq!(framing("Content-Length: 5\r\nContent-Length: 5\r\n"), Ok(Framing::Length(5)));
        assert_eq!(framing("Content-Length: 5, 5\r\n"), Ok(Framing::Length(5)));
        assert_eq!(
            framing("Content-Length: 5\r\nContent-Length: 6\r\n"),
            Err("invalid or conflicting Content-Length")
        );
        assert_eq!(framing("Content-Length: -1\r\n"), Err("invalid or conflicting Content-Length"));
        assert_eq!(framing("Content-Length: +1\r\n"), Err("invalid or conflicting Content-Length"));
        assert_eq!(
            framing("Content-Length: 18446744073709551616\r\n"),
            Err("invalid or conflicting Content-Length")
        );
        assert_eq!(
            framing("Content-Length: 18446744073709551615\r\n"),
            Ok(Framing::Length(u64::MAX))
        );
        assert_eq!(framing(""), Ok(Framing::Close));
        let no_body =
            parse(b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n").unwrap().unwrap().0;
        assert_eq!(no_body.framing, Framing::Length(0));
    }

    #[test]
    fn garbage_is_an_error_with_the_reason() {
        let e = parse(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").unwrap_err();
        assert_eq!(e, "malformed response head (not HTTP/1.x)");
        assert!(parse(b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n").is_err());
        assert_eq!(
            parse(b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-1/10\r\n\r\n"),
            Err("206 response without a valid Content-Range")
        );
    }

    #[test]
    fn redirect_retry_and_validators() {
        let (head, _) = parse(b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nLocation: /x\r\nETag: W/\"1\"\r\nLast-Modified: then\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.retry_after, Some(7));
        assert_eq!(head.location.as_deref(), Some("/x"));
        assert_eq!(head.validator.as_deref(), Some("then"), "weak ETags are not used for If-Range");
        assert_eq!(
            parse_content_range(b"bytes 0-9/*"),
            Some(ContentRange { first: 0, last: 9, complete: None })
        );
        assert_eq!(parse_content_range(b"bytes 0-10/10"), None);
        assert_eq!(parse_content_range(b"items 0-1/2"), None);
    }
}
