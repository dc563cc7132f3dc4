//! The request writer: request line, Host, User-Agent and extra headers, and the chunked
//! coding for upload bodies of unknown length.

use super::url::Url;
use alloc::string::String;

/// Room kept in front of each upload chunk for its size line ("ffffffff\r\n").
pub const CHUNK_PREFIX: usize = 10;

/// The request head. `headers` are extra `(name, value)` pairs (framing, Range, If-Range,
/// Content-Type, ...). Every request closes its connection: one exchange per connection
/// keeps the state simple, and a resumed or redirected request needs a new one anyway.
pub fn head(method: &str, url: &Url, headers: &[(&str, &str)]) -> String {
    let mut head = text!(
        concat!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: imprint/",
            env!("CARGO_PKG_VERSION"),
            "\r\nConnection: close\r\n"
        ),
        method,
        url.target,
        url.host_header()
    );
    for (name, value) in headers {
        // Values come from our code or from a server's validator; a CR or LF in one
        // would inject header lines, so such a header is left out rather than sent.
        if !value.bytes().any(|b| b == b'\r' || b == b'\n') {
            for part in [name, ": ", value, "\r\n"] {
                head.push_str(part);
            }
        }
    }
    head.push_str("\r\n");
    head
}

/// Frames `buf[CHUNK_PREFIX..CHUNK_PREFIX + len]` as one chunk in place: writes the size
/// line right before the data and CRLF right after it (`buf` must have 2 bytes of room
/// there, and `len` must be below 2^32); returns the range of `buf` to send. A zero `len`
/// gives the last chunk.
pub fn frame_chunk(buf: &mut [u8], len: usize) -> core::ops::Range<usize> {
    // The size line's hex digits, written backwards from its CRLF.
    let mut start = CHUNK_PREFIX - 2;
    buf[start..CHUNK_PREFIX].copy_from_slice(b"\r\n");
    let mut n = len;
    loop {
        start -= 1;
        buf[start] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    // After the data its CRLF; after the last chunk ("0\r\n") that same CRLF is the
    // empty line that ends the (trailer-less) body.
    let end = CHUNK_PREFIX + len;
    buf[end..end + 2].copy_from_slice(b"\r\n");
    start..end + 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::decode_all;
    use alloc::vec::Vec;

    #[test]
    fn head_has_line_host_agent_and_extras() {
        let url = Url::parse("http://10.0.0.1:8080/a/b?c=d").unwrap();
        let text = head("GET", &url, &[("Range", "bytes=5-"), ("Evil", "x\r\nInjected: 1")]);
        let expected = std::format!(
            "GET /a/b?c=d HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUser-Agent: imprint/{}\r\nConnection: close\r\nRange: bytes=5-\r\n\r\n",
            crate::VERSION
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn framed_chunks_decode_back_to_the_data() {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for len in [1usize, 15, 16, 255, 4096, 0] {
            let mut buf = std::vec![0u8; CHUNK_PREFIX + len + 2];
            for (i, b) in buf[CHUNK_PREFIX..CHUNK_PREFIX + len].iter_mut().enumerate() {
                *b = (i % 251) as u8;
            }
            expected.extend_from_slice(&buf[CHUNK_PREFIX..CHUNK_PREFIX + len]);
            let range = frame_chunk(&mut buf, len);
            wire.extend_from_slice(&buf[range]);
        }
        assert!(wire.starts_with(b"1\r\n"));
        assert!(wire.ends_with(b"\r\n0\r\n\r\n") && !wire.ends_with(b"\r\n\r\n\r\n"));
        let mut out = Vec::new();
        assert_eq!(decode_all(&wire, &mut out), Ok(Some(wire.len())));
        assert_eq!(out, expected);
    }
}
