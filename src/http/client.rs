//! The client: one request per connection, with connect and idle timeouts, redirects,
//! retries with backoff, and a body reader that resumes a dropped GET with Range.

use super::response::{Framing, Head};
use super::url::Url;
use super::{retryable_status, Error, Result};
use crate::io::Read;
use crate::net::dns::{self, ResolveError::TimedOut};
use crate::sys::socket::TcpStream;
use crate::sys::time::sleep;
use crate::sys::Errno;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Display;
use core::net::Ipv4Addr;
use core::time::Duration;

/// Longest wait between attempts, whatever the backoff or Retry-After says.
const MAX_WAIT: u64 = 60;
/// Receive buffer: holds a whole head (MAX_HEAD) and the start of the body; also the
/// upload chunk size.
const BUFFER: usize = 64 * 1024;

/// Extra request header fields, `(name, value)`.
pub type Headers<'a> = &'a [(&'a str, &'a str)];
/// A connection, its final response head read.
type Conn = Box<Connection>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub connect_timeout: Duration,
    /// Longest time without a byte moving, on every read and write.
    pub idle_timeout: Duration,
    /// Further attempts after a transient failure (0: fail at once).
    pub retries: u32,
}

impl Default for Options {
    fn default() -> Self {
        let (connect_timeout, idle_timeout) = (Duration::from_secs(10), Duration::from_secs(30));
        Options { connect_timeout, idle_timeout, retries: 5 }
    }
}

pub struct Client {
    /// The DNS servers host names resolve through (none: only IPv4 literals work).
    dns: Vec<Ipv4Addr>,
    pub options: Options,
}

/// A connection with its receive buffer (`buf[start..end]` not yet consumed) and the
/// final response head, once read.
struct Connection {
    stream: TcpStream,
    /// The URL as text, for errors.
    url: String,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    idle: Duration,
    head: Head,
}

impl Connection {
    fn buffered(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// A failed read or write: ETIMEDOUT from the socket means our idle timeout fired.
    fn failed(&self, lead: &str, errno: Errno) -> Error {
        if errno != Errno::ETIMEDOUT {
            return Error::new(lead, &self.url, &errno, true);
        }
        // Not as_millis(): its u128 would pull 128-bit division and formatting in.
        let ms = self.idle.as_secs() * 1000 + u64::from(self.idle.subsec_millis());
        let (n, unit) = if ms % 1000 == 0 { (ms / 1000, "s") } else { (ms, "ms") };
        let what = format_args!("no data moved for {n} {unit} (idle timeout)");
        Error::new("", &self.url, &what, true)
    }

    fn write_all(&self, buf: &[u8]) -> Result<()> {
        self.stream.write_all(buf, self.idle).map_err(|e| self.failed("sending the request to ", e))
    }

    /// Reads more into the buffer; 0 at end of stream.
    fn fill(&mut self) -> Result<usize> {
        self.buf.copy_within(self.start..self.end, 0);
        (self.end, self.start) = (self.end - self.start, 0);
        let free = self.buf.get_mut(self.end..).unwrap_or_default();
        let n = self.stream.read(free, self.idle).map_err(|e| self.failed("receiving from ", e))?;
        self.end += n;
        Ok(n)
    }

    /// Bytes for the caller: from the buffer if it holds any, else straight from the
    /// socket into `out` (no copy through our buffer on the bulk path).
    fn read_into(&mut self, out: &mut [u8]) -> Result<usize> {
        if self.start == self.end {
            return self.stream.read(out, self.idle).map_err(|e| self.failed("receiving from ", e));
        }
        let Ok(n) = self.buffered().read(out);
        self.start += n;
        Ok(n)
    }

    /// Reads the next final response head, skipping interim 1xx ones (100 Continue).
    fn read_head(&mut self) -> Result<()> {
        loop {
            match Head::parse(self.buffered()) {
                Ok(Some((head, len))) => {
                    (self.start, self.head) = (self.start + len, head);
                    if !(100..200).contains(&self.head.status) || self.head.status == 101 {
                        return Ok(());
                    }
                }
                // Head::parse fails at MAX_HEAD buffered bytes, so BUFFER has room here.
                Ok(None) if self.fill()? == 0 => {
                    let what = "connection closed before a complete response head";
                    return Err(Error::new("", &self.url, &what, true));
                }
                Ok(None) => {}
                Err(why) => return Err(Error::new("", &self.url, &why, false)),
            }
        }
    }
}

fn status_error(method: &str, conn: &Connection) -> Error {
    let head = &conn.head;
    let message = text!("{method} {}: {} {}", conn.url, u32::from(head.status), head.reason);
    Error { message, status: head.status, transient: retryable_status(head.status) }
}

fn parse_url(url: &str) -> Result<Url> {
    Url::parse(url).map_err(|why| Error::new("bad URL ", &crate::console::Quoted(url), &why, false))
}

impl Client {
    pub fn new(dns: Vec<Ipv4Addr>, options: Options) -> Client {
        Client { dns, options }
    }

    /// GETs `url`, following redirects and retrying transient failures; the body is read
    /// from the returned response, which resumes it transparently if the connection
    /// drops. Statuses other than 2xx after redirects are errors.
    pub fn get(&mut self, url: &str) -> Result<Response<'_>> {
        let mut url = parse_url(url)?;
        let mut seen = Vec::new();
        let mut conn = loop {
            let mut conn = self.exchange(&url, &[], &mut 0)?;
            if !matches!(conn.head.status, 301 | 302 | 303 | 307 | 308) {
                break conn;
            }
            let Some(location) = &conn.head.location else {
                let what = "redirect without a Location header";
                return Err(Error::new("", &conn.url, &what, false));
            };
            url = url.join(location).map_err(|e| Error::new("bad URL ", location, &e, false))?;
            // Taken, not moved out: the connection is then dropped whole, by one call.
            seen.push(core::mem::take(&mut conn.url));
            let next = url.text();
            // At most 5 redirects, as the issue and most clients have it.
            let why = match (seen.contains(&next), seen.len() > 5) {
                (true, _) => "redirect loop at ",
                (_, true) => "too many redirects (more than 5) ending at ",
                _ => continue,
            };
            return Err(Error::text(text!("{why}{next}"), false));
        };
        if !(200..300).contains(&conn.head.status) {
            return Err(status_error("GET", &conn));
        }
        let head = &mut conn.head;
        let total = if let Framing::Length(n) = head.framing { Some(n) } else { None };
        // Only a full 200 can be resumed: its bytes are the resource's, from 0.
        let validator = head.validator.take().filter(|_| head.status == 200);
        let framing = head.framing;
        Ok(Response { client: self, url, conn, framing, delivered: 0, total, validator })
    }

    /// Sends `method` with a body from `source`: `length` bytes with Content-Length, or
    /// chunked when `None`; returns the response's status. Uploads are neither retried nor
    /// redirected: the source is a stream that cannot be replayed. A status other than 2xx
    /// is an error.
    pub fn upload<R: Read<Error: Display>>(
        &mut self,
        method: &'static str,
        url: &str,
        headers: Headers,
        source: &mut R,
        length: Option<u64>,
    ) -> Result<u16> {
        // Only this adapter is generic: the upload itself is compiled once, whatever
        // the sources (every copy would cost the init kilobytes).
        let mut pull = |buf: &mut [u8]| source.read(buf).map_err(|e| text!("{e}"));
        self.upload_from(method, url, headers, &mut pull, length)
    }

    /// Streams the upload body: exactly `length` bytes, or chunked until the source ends.
    pub fn upload_from(
        &mut self,
        method: &'static str,
        url: &str,
        headers: Headers,
        source: &mut dyn FnMut(&mut [u8]) -> Result<usize, String>,
        length: Option<u64>,
    ) -> Result<u16> {
        let url = parse_url(url)?;
        let chunked = String::from("Transfer-Encoding: chunked\r\n");
        let framing = length.map_or(chunked, |n| text!("Content-Length: {n}\r\n"));
        let mut conn = self.send_head(method, &url, headers, &framing)?;
        let source_error = |why: &dyn Display| Error::new("uploading to ", &url.text(), why, false);
        let mut buf = alloc::vec![0u8; CHUNK_PREFIX + BUFFER + 2];
        let mut sent = 0;
        let result = loop {
            // Past the declared length one more byte is asked for: a source longer than
            // declared would be cut silently, so it is an error instead.
            let left = length.map_or(BUFFER as u64, |length| length - sent);
            let want = left.clamp(1, BUFFER as u64) as usize;
            let n = source(&mut buf[CHUNK_PREFIX..CHUNK_PREFIX + want])
                .map_err(|why| source_error(&why))?;
            // Short (nothing more while some is left) or long (more after all of it).
            if let Some(length) = length.filter(|_| (n == 0) == (left > 0)) {
                let how = if n == 0 { "ended after" } else { "has more than" };
                let why = format_args!("the source {how} {sent} bytes, not the declared {length}");
                return Err(source_error(&why));
            }
            let data = CHUNK_PREFIX..CHUNK_PREFIX + n;
            let range = if length.is_some() { data } else { frame_chunk(&mut buf, n) };
            let written = conn.write_all(&buf[range]);
            if n == 0 || written.is_err() {
                break written;
            }
            sent += n as u64;
        };
        // A server that answers early (e.g. 413) and closes makes the send fail: its
        // answer, if it sent one, says more than the broken pipe does.
        conn.read_head().map_err(|e| result.err().unwrap_or(e))?;
        match conn.head.status {
            200..=299 => Ok(conn.head.status),
            _ => Err(status_error(method, &conn)),
        }
    }

    /// Connects and sends a request head, `framing` (the body's framing header line, or
    /// nothing) last.
    fn send_head(&self, method: &str, url: &Url, headers: Headers, framing: &str) -> Result<Conn> {
        // Only a timeout is worth another attempt.
        let resolved = dns::resolve_a(&self.dns, &url.host);
        let ip = resolved.map_err(|e| Error::new("resolving ", &url.host, &e, e == TimedOut))?;
        let (addr, port) = (crate::net::Dotted(ip.into()), url.port);
        let head = request_head(method, url, headers) + framing + "\r\n";
        let url = url.text();
        let stream =
            TcpStream::connect(ip, port, self.options.connect_timeout).map_err(|errno| {
                Error::text(text!("connecting to {addr}:{port} for {url}: {errno}"), true)
            })?;
        let idle = self.options.idle_timeout;
        let buf = alloc::vec![0; BUFFER];
        let conn = Connection { stream, url, buf, start: 0, end: 0, idle, head: Head::default() };
        conn.write_all(head.as_bytes())?;
        Ok(Box::new(conn))
    }

    /// Counts a failed attempt, `failures` the count so far: the error once the retries
    /// are spent, else Ok after waiting `wait` seconds.
    fn retry(&self, failures: &mut u32, error: Error, wait: u64) -> Result<()> {
        *failures += 1;
        if *failures > self.options.retries {
            return Err(match *failures {
                1 => error,
                n => Error::text(text!("giving up after {n} attempts: {error}"), false),
            });
        }
        sleep(Duration::from_secs(wait.min(MAX_WAIT)));
        Ok(())
    }

    /// A GET and its final response head, retried on transient errors and 408/429/5xx
    /// after an exponential backoff (1 s, 2 s, 4 s, ...) or the server's Retry-After.
    fn exchange(&self, url: &Url, headers: Headers, failures: &mut u32) -> Result<Conn> {
        loop {
            let exchange =
                self.send_head("GET", url, headers, "").and_then(|mut c| c.read_head().map(|_| c));
            let backoff = 1 << (*failures).min(6);
            let (error, wait) = match exchange {
                Ok(conn) if retryable_status(conn.head.status) => {
                    (status_error("GET", &conn), conn.head.retry_after.unwrap_or(backoff))
                }
                Ok(done) => return Ok(done),
                Err(e) if e.transient => (e, backoff),
                Err(e) => return Err(e),
            };
            self.retry(failures, error, wait)?;
        }
    }
}

/// Room kept in front of each upload chunk for its size line ("ffffffff\r\n").
const CHUNK_PREFIX: usize = 10;

/// The request head but its final CRLF. `headers` are extra `(name, value)` pairs (Range,
/// If-Range, Content-Type, ...). Every request closes its connection: one exchange per connection
/// keeps the state simple, and a resumed or redirected request needs a new one anyway.
fn request_head(method: &str, url: &Url, headers: Headers) -> String {
    let mut head = text!("{method} {} HTTP/1.1\r\nHost: {}", url.target, url.host_header());
    head.push_str(concat!("\r\nUser-Agent: imprint/", env!("CARGO_PKG_VERSION")));
    head.push_str("\r\nConnection: close\r\n");
    for (name, value) in headers {
        // Values come from our code or from a server's validator; a CR or LF in one
        // would inject header lines, so such a header is left out rather than sent.
        if !value.bytes().any(|b| b == b'\r' || b == b'\n') {
            for part in [name, ": ", value, "\r\n"] {
                head.push_str(part);
            }
        }
    }
    head
}

/// Frames `buf[CHUNK_PREFIX..CHUNK_PREFIX + len]` as one chunk in place: writes the size
/// line right before the data and CRLF right after it (`buf` must have 2 bytes of room
/// there, and `len` must be below 2^32); returns the range of `buf` to send. A zero `len`
/// gives the last chunk.
#[inline(never)]
fn frame_chunk(buf: &mut [u8], len: usize) -> core::ops::Range<usize> {
    // As u32: its hex formatting is in the init already. After the last chunk ("0\r\n")
    // the CRLF after the data is the empty line that ends the (trailer-less) body.
    let size = text!("{:x}\r\n", len as u32);
    let (start, end) = (CHUNK_PREFIX - size.len(), CHUNK_PREFIX + len + 2);
    buf[start..CHUNK_PREFIX].copy_from_slice(size.as_bytes());
    buf[end - 2..end].copy_from_slice(b"\r\n");
    start..end
}

/// A response whose body is read through [`Read`]: `Ok(0)` only once the body is
/// complete as its framing says. A GET that drops mid-body is resumed from the bytes
/// already delivered with `Range` + `If-Range`, so the caller sees one stream.
pub struct Response<'c> {
    client: &'c Client,
    url: Url,
    conn: Box<Connection>,
    /// Where the body stands: Length counts the bytes still to come.
    framing: Framing,
    /// Body bytes handed to the caller so far (across resumes).
    delivered: u64,
    /// The whole body's length, when known.
    total: Option<u64>,
    /// If-Range value for resuming; None: this response cannot be resumed.
    validator: Option<String>,
}

impl Response<'_> {
    /// The body's length, when the server said it.
    pub fn length(&self) -> Option<u64> {
        self.total
    }

    fn truncated(&self) -> Error {
        let (url, n) = (&self.conn.url, self.delivered);
        let message = match self.total {
            Some(total) => text!("{url}: body cut short after {n} of {total} bytes"),
            None => text!("{url}: body cut short after {n} bytes (chunked framing incomplete)"),
        };
        Error::text(message, true)
    }

    /// Reads from the current connection as the framing allows.
    #[inline(never)]
    fn read_framed(&mut self, out: &mut [u8]) -> Result<usize> {
        // Data bytes the framing allows next.
        let allowed = match &mut self.framing {
            Framing::Length(0) => return Ok(0),
            Framing::Length(remaining) => *remaining,
            Framing::Close => u64::MAX,
            Framing::Chunked(chunks) => loop {
                if chunks.is_done() {
                    return Ok(0);
                }
                if chunks.data_remaining() > 0 {
                    break chunks.data_remaining();
                }
                // Framing bytes are next: decode what is buffered, or read more first.
                if self.conn.buffered().is_empty() && self.conn.fill()? == 0 {
                    break 0;
                }
                let used = chunks.step(self.conn.buffered());
                self.conn.start += used.map_err(|e| Error::new("", &self.conn.url, &e, false))?;
            },
        };
        let want = allowed.min(out.len() as u64) as usize;
        let n = if want == 0 { 0 } else { self.conn.read_into(&mut out[..want])? };
        match &mut self.framing {
            Framing::Close => {}
            _ if n == 0 => return Err(self.truncated()),
            Framing::Length(remaining) => *remaining -= n as u64,
            Framing::Chunked(chunks) => chunks.consume_data(n),
        }
        Ok(n)
    }
}

impl Read for Response<'_> {
    type Error = Error;

    /// The body as one stream: after a transient failure mid-body, a new request for the
    /// rest, checked to be the same resource.
    fn read(&mut self, out: &mut [u8]) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        // Failed attempts since the last byte was delivered.
        let mut failures = 0;
        loop {
            let cause = match self.read_framed(out) {
                // A resumed range that ends before the whole length is not the end.
                Ok(0) if self.total.is_some_and(|t| self.delivered < t) => self.truncated(),
                Ok(n) => {
                    self.delivered += n as u64;
                    return Ok(n);
                }
                Err(e) => e,
            };
            let Some(validator) = self.validator.as_deref().filter(|_| cause.transient) else {
                return Err(cause);
            };
            // The first retry after progress goes at once: the connection was working.
            self.client.retry(&mut failures, cause, 0)?;
            let range = text!("bytes={}-", self.delivered);
            let headers = [("Range", range.as_str()), ("If-Range", validator)];
            let conn = self.client.exchange(&self.url, &headers, &mut failures)?;
            // Head::parse already rejects a 206 without Content-Range.
            let (offset, total) = (self.delivered, self.total);
            let why = match (conn.head.status, conn.head.content_range) {
                (206, Some(r)) if r.first != offset => "the server resumed at another offset",
                (206, Some(r)) if total.is_some() && r.complete != total => {
                    "the complete length differs"
                }
                (206, _) => {
                    (self.framing, self.conn) = (conn.head.framing, conn);
                    continue;
                }
                (200, _) => "the server sent it whole (200, not 206): If-Range did not match",
                _ => return Err(status_error("GET", &conn)),
            };
            let what = text!("{} changed while resuming at byte {offset}: {why}", self.conn.url);
            return Err(Error::text(what, false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::decode_all;
    use std::io::Read as _;
    use std::net::TcpListener;

    /// A real peer on loopback: takes one connection and keeps what arrives until the
    /// client closes it.
    fn sink() -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = std::format!("http://127.0.0.1:{}/up", listener.local_addr().unwrap().port());
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let _ = stream.read_to_end(&mut got);
            got
        });
        (url, server)
    }

    #[test]
    fn an_upload_source_of_another_length_than_declared_is_an_error() {
        let cases = [
            (5, "the source ended after 3 bytes, not the declared 5", &b"\r\n\r\nabc"[..]),
            (2, "the source has more than 2 bytes, not the declared 2", &b"\r\n\r\nab"[..]),
        ];
        for (length, why, sent) in cases {
            let (url, server) = sink();
            let mut client = Client::new(Vec::new(), Options::default());
            let error =
                client.upload("PUT", &url, &[], &mut &b"abc"[..], Some(length)).err().unwrap();
            assert_eq!(error.to_string(), std::format!("uploading to {url}: {why}"));
            // The connection closed with the error: the server saw the declared length
            // and no byte past it.
            let got = server.join().unwrap();
            assert!(got.ends_with(sent), "{}", String::from_utf8_lossy(&got));
            let declared = std::format!("\r\nContent-Length: {length}\r\n");
            assert!(got.windows(declared.len()).any(|w| w == declared.as_bytes()));
        }
    }

    #[test]
    fn head_has_line_host_agent_and_extras() {
        let url = Url::parse("http://10.0.0.1:8080/a/b?c=d").unwrap();
        let text =
            request_head("GET", &url, &[("Range", "bytes=5-"), ("Evil", "x\r\nInjected: 1")])
                + "\r\n";
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
