//! The client: one request per connection, with connect and idle timeouts, redirects,
//! retries with backoff, and a body reader that resumes a dropped GET with Range.

use super::body::ChunkedDecoder;
use super::request::{frame_chunk, write_head, BodyFraming, CHUNK_PREFIX};
use super::response::{Framing, Head};
use super::url::Url;
use super::{retryable_status, Error, RedirectProblem, Resolve};
use crate::io::Read;
use crate::sys::socket::{SocketAddrV4, TcpStream};
use crate::sys::time::sleep;
use crate::sys::Errno;
use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Display;
use core::time::Duration;

/// Redirects followed before giving up (as the issue and most clients have it).
pub const MAX_REDIRECTS: usize = 5;
/// Longest wait between attempts, whatever the backoff or Retry-After says.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Receive buffer: holds a whole head (MAX_HEAD) and the start of the body.
const BUFFER: usize = 64 * 1024;
/// Upload chunk size.
const UPLOAD_CHUNK: usize = 64 * 1024;

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
        Options {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            retries: 5,
        }
    }
}

pub struct Client {
    resolver: Box<dyn Resolve>,
    pub options: Options,
}

/// A connection with its receive buffer (`buf[start..end]` not yet consumed).
struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    idle: Duration,
}

impl Connection {
    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// Reads more into the buffer; 0 at end of stream.
    fn fill(&mut self) -> Result<usize, Errno> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.stream.read(&mut self.buf[self.end..], self.idle)?;
        self.end += n;
        Ok(n)
    }

    /// Bytes for the caller: from the buffer if it holds any, else straight from the
    /// socket into `out` (no copy through our buffer on the bulk path).
    fn read_into(&mut self, out: &mut [u8]) -> Result<usize, Errno> {
        let buffered = self.buffered();
        if buffered.is_empty() {
            return self.stream.read(out, self.idle);
        }
        let n = buffered.len().min(out.len());
        out[..n].copy_from_slice(&buffered[..n]);
        self.consume(n);
        Ok(n)
    }

    /// Reads the next final response head, skipping interim 1xx ones (100 Continue).
    fn read_head(&mut self, url: &Url, head_request: bool) -> Result<Box<Head>, Error> {
        loop {
            match Head::parse(self.buffered(), head_request) {
                Ok(Some((head, len))) => {
                    self.consume(len);
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue;
                    }
                    return Ok(Box::new(head));
                }
                Ok(None) => {}
                Err(error) => return Err(Error::Head { url: url.text(), error }),
            }
            // Head::parse fails at MAX_HEAD buffered bytes, so BUFFER always has room here.
            match self.fill() {
                Ok(0) => return Err(Error::NoResponse { url: url.text() }),
                Ok(_) => {}
                Err(errno) => return Err(receive_error(url, errno, self.idle)),
            }
        }
    }
}

fn receive_error(url: &Url, errno: Errno, idle: Duration) -> Error {
    transfer_error(url, errno, idle, false)
}

fn send_error(url: &Url, errno: Errno, idle: Duration) -> Error {
    transfer_error(url, errno, idle, true)
}

/// A failed read or write: ETIMEDOUT from the socket means our idle timeout fired.
#[inline(never)]
fn transfer_error(url: &Url, errno: Errno, idle: Duration, sending: bool) -> Error {
    let url = url.text();
    match (errno == Errno::ETIMEDOUT, sending) {
        (true, _) => Error::Idle { url, after: idle },
        (false, true) => Error::Send { url, errno },
        (false, false) => Error::Receive { url, errno },
    }
}

/// Exponential backoff after `failures` failed attempts: 1 s, 2 s, 4 s, ... up to MAX_WAIT.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(MAX_WAIT)
}

#[inline(never)]
fn status_error(method: &'static str, url: &Url, head: &Head) -> Error {
    Error::Status { method, url: url.text(), status: head.status, reason: head.reason.clone() }
}

fn parse_url(url: &str) -> Result<Url, Error> {
    Url::parse(url).map_err(|error| Error::Url { url: url.into(), error })
}

impl Client {
    pub fn new(resolver: Box<dyn Resolve>, options: Options) -> Client {
        Client { resolver, options }
    }

    /// GETs `url`, following redirects and retrying transient failures; the body is read
    /// from the returned response, which resumes it transparently if the connection
    /// drops. Statuses other than 2xx after redirects are errors.
    #[inline(never)]
    pub fn get(&mut self, url: &str) -> Result<Response<'_>, Error> {
        let mut url = parse_url(url)?;
        let mut seen: Vec<String> = Vec::new();
        loop {
            let (head, conn) = self.exchange_retrying("GET", &url, &[], &mut 0)?;
            if !matches!(head.status, 301 | 302 | 303 | 307 | 308) {
                return Response::new(self, "GET", url, head, conn);
            }
            seen.push(url.text());
            let problem = match &head.location {
                None => RedirectProblem::NoLocation,
                Some(location) => {
                    url = url
                        .join(location)
                        .map_err(|error| Error::Url { url: location.clone(), error })?;
                    let next = url.text();
                    if seen.contains(&next) {
                        RedirectProblem::Loop
                    } else if seen.len() > MAX_REDIRECTS {
                        RedirectProblem::TooMany
                    } else {
                        continue;
                    }
                }
            };
            return Err(Error::Redirect { url: url.text(), problem });
        }
    }

    /// Sends `method` with a body from `source`: `length` bytes with Content-Length, or
    /// chunked when `None`. Uploads are neither retried nor redirected: the source is a
    /// stream that cannot be replayed. A status other than 2xx is an error.
    pub fn upload<R: Read>(
        &mut self,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        source: &mut R,
        length: Option<u64>,
    ) -> Result<Response<'_>, Error>
    where
        R::Error: Display,
    {
        // Only this adapter is generic: the upload itself is compiled once, whatever
        // the sources (every copy would cost the init kilobytes).
        self.upload_from(method, url, headers, &mut DisplayErrors(source), length)
    }

    #[inline(never)]
    fn upload_from(
        &mut self,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        source: &mut dyn Source,
        length: Option<u64>,
    ) -> Result<Response<'_>, Error> {
        let url = parse_url(url)?;
        let framing = length.map_or(BodyFraming::Chunked, BodyFraming::Length);
        let mut conn = self.send_head(method, &url, headers, framing)?;
        let head = match send_body(&conn, &url, source, length) {
            Ok(()) => conn.read_head(&url, false)?,
            // A server that answers early (e.g. 413) and closes makes the send fail: its
            // answer, if it sent one, says more than the broken pipe does.
            Err(e @ Error::Send { .. }) => conn.read_head(&url, false).map_err(|_| e)?,
            Err(e) => return Err(e),
        };
        Response::new(self, method, url, head, conn)
    }

    /// Connects and sends a request head.
    #[inline(never)]
    fn send_head(
        &mut self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        framing: BodyFraming,
    ) -> Result<Box<Connection>, Error> {
        let ip = match url.ipv4() {
            Some(ip) => ip,
            None => self
                .resolver
                .resolve(&url.host)
                .map_err(|error| Error::Resolve { host: url.host.clone(), error })?,
        };
        let addr = SocketAddrV4 { ip, port: url.port };
        let stream = TcpStream::connect(addr, self.options.connect_timeout)
            .map_err(|errno| Error::Connect { url: url.text(), addr, errno })?;
        let idle = self.options.idle_timeout;
        let mut head = Vec::new();
        write_head(&mut head, method, url, headers, framing);
        stream.write_all(&head, idle).map_err(|errno| send_error(url, errno, idle))?;
        Ok(Box::new(Connection { stream, buf: vec![0; BUFFER], start: 0, end: 0, idle }))
    }

    /// A bodiless request and its final response head, retried on transient errors and
    /// 408/429/5xx after an exponential backoff (or the server's Retry-After) while
    /// `failures`, the failed attempts so far, stays within the retries.
    #[inline(never)]
    fn exchange_retrying(
        &mut self,
        method: &'static str,
        url: &Url,
        headers: &[(&str, &str)],
        failures: &mut u32,
    ) -> Result<(Box<Head>, Box<Connection>), Error> {
        loop {
            let exchange = self
                .send_head(method, url, headers, BodyFraming::None)
                .and_then(|mut conn| Ok((conn.read_head(url, method == "HEAD")?, conn)));
            let (error, retry_after) = match exchange {
                Ok((head, _)) if retryable_status(head.status) => {
                    (status_error(method, url, &head), head.retry_after)
                }
                Ok(done) => return Ok(done),
                Err(e) if e.is_transient() => (e, None),
                Err(e) => return Err(e),
            };
            *failures += 1;
            if *failures > self.options.retries {
                return Err(give_up(*failures, error));
            }
            sleep(retry_after.map_or(backoff(*failures), Duration::from_secs).min(MAX_WAIT));
        }
    }
}

fn give_up(attempts: u32, last: Error) -> Error {
    if attempts == 1 {
        last
    } else {
        Error::GaveUp { attempts, last: Box::new(last) }
    }
}

/// An upload's source with its errors as text: the object-safe face of any `Read`.
trait Source {
    fn pull(&mut self, buf: &mut [u8]) -> Result<usize, String>;
}

struct DisplayErrors<'a, R>(&'a mut R);

impl<R: Read> Source for DisplayErrors<'_, R>
where
    R::Error: Display,
{
    fn pull(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        self.0.read(buf).map_err(|e| e.to_string())
    }
}

/// Streams the upload body: exactly `length` bytes, or chunked until the source ends.
#[inline(never)]
fn send_body(
    conn: &Connection,
    url: &Url,
    source: &mut dyn Source,
    length: Option<u64>,
) -> Result<(), Error> {
    let source_error = |why: String| Error::Source { url: url.text(), why };
    let mut buf = vec![0u8; CHUNK_PREFIX + UPLOAD_CHUNK + 2];
    let mut sent = 0;
    loop {
        // Past the declared length one more byte is asked for: a source longer than
        // declared would be cut silently, so it is an error instead.
        let left = length.map_or(UPLOAD_CHUNK as u64, |length| length - sent);
        let want = left.clamp(1, UPLOAD_CHUNK as u64) as usize;
        let n = source.pull(&mut buf[CHUNK_PREFIX..CHUNK_PREFIX + want]).map_err(source_error)?;
        let range = match length {
            None => frame_chunk(&mut buf, n),
            // Short (nothing more while some is left) or long (more after all of it).
            Some(length) if (n == 0) == (left > 0) => {
                let how = if n == 0 { "ended after" } else { "has more than" };
                return Err(source_error(text!(
                    "the source {how} {sent} bytes, not the declared {length}"
                )));
            }
            Some(_) => CHUNK_PREFIX..CHUNK_PREFIX + n,
        };
        conn.stream.write_all(&buf[range], conn.idle).map_err(|e| send_error(url, e, conn.idle))?;
        if n == 0 {
            return Ok(());
        }
        sent += n as u64;
    }
}

/// Where the body stands in its framing.
enum BodyState {
    /// `remaining` bytes to go (none for a bodiless response).
    Length {
        remaining: u64,
    },
    Chunked(ChunkedDecoder),
    Close,
}

impl BodyState {
    fn of(framing: Framing) -> BodyState {
        match framing {
            Framing::Empty => BodyState::Length { remaining: 0 },
            Framing::Length(n) => BodyState::Length { remaining: n },
            Framing::Chunked => BodyState::Chunked(ChunkedDecoder::new()),
            Framing::Close => BodyState::Close,
        }
    }
}

/// A response whose body is read through [`Read`]: `Ok(0)` only once the body is
/// complete as its framing says. A GET that drops mid-body is resumed from the bytes
/// already delivered with `Range` + `If-Range`, so the caller sees one stream.
pub struct Response<'c> {
    client: &'c mut Client,
    url: Url,
    head: Box<Head>,
    conn: Box<Connection>,
    body: BodyState,
    /// Body bytes handed to the caller so far (across resumes).
    delivered: u64,
    /// The whole body's length, when known.
    total: Option<u64>,
    /// If-Range value for resuming; None: this response cannot be resumed.
    validator: Option<String>,
    /// Failed attempts since the last byte was delivered.
    failures: u32,
}

impl<'c> Response<'c> {
    /// The response to `method`, or the error its status is when not 2xx.
    #[inline(never)]
    fn new(
        client: &'c mut Client,
        method: &'static str,
        url: Url,
        head: Box<Head>,
        conn: Box<Connection>,
    ) -> Result<Response<'c>, Error> {
        if !(200..300).contains(&head.status) {
            return Err(status_error(method, &url, &head));
        }
        let total = match head.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        // Only a full 200 to a GET can be resumed: its bytes are the resource's, from 0.
        let validator = head.validator.clone().filter(|_| method == "GET" && head.status == 200);
        let body = BodyState::of(head.framing);
        Ok(Response { client, url, head, conn, body, delivered: 0, total, validator, failures: 0 })
    }

    pub fn status(&self) -> u16 {
        self.head.status
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The URL this response came from, after redirects.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The body's length, when the server said it.
    pub fn length(&self) -> Option<u64> {
        self.total
    }

    #[inline(never)]
    fn truncated(&self) -> Error {
        Error::Truncated { url: self.url.text(), received: self.delivered, expected: self.total }
    }

    /// Reads from the current connection as the framing allows.
    #[inline(never)]
    fn read_framed(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        let url = &self.url;
        let idle = self.conn.idle;
        // Data bytes the framing allows next.
        let allowed = match &mut self.body {
            BodyState::Length { remaining } => *remaining,
            BodyState::Close => u64::MAX,
            BodyState::Chunked(decoder) => loop {
                if decoder.is_done() {
                    return Ok(0);
                }
                let data = decoder.data_remaining();
                if data > 0 {
                    break data;
                }
                // Framing bytes are next: decode what is buffered, or read more first.
                if self.conn.buffered().is_empty()
                    && self.conn.fill().map_err(|e| receive_error(url, e, idle))? == 0
                {
                    break 0;
                }
                let used = decoder
                    .step(self.conn.buffered())
                    .map_err(|error| Error::Chunk { url: url.text(), error })?;
                self.conn.consume(used);
            },
        };
        let want = allowed.min(out.len() as u64) as usize;
        let n = match want {
            // A finished Content-Length body (the chunked one ended above).
            0 if matches!(self.body, BodyState::Length { remaining: 0 }) => return Ok(0),
            0 => 0,
            _ => self.conn.read_into(&mut out[..want]).map_err(|e| receive_error(url, e, idle))?,
        };
        match &mut self.body {
            BodyState::Close => {}
            _ if n == 0 => return Err(self.truncated()),
            BodyState::Length { remaining } => *remaining -= n as u64,
            BodyState::Chunked(decoder) => decoder.consume_data(n),
        }
        Ok(n)
    }

    /// After a transient failure mid-body: a new request for the rest, checked to be the
    /// same resource. Returns `cause` when this response cannot be resumed.
    #[inline(never)]
    fn resume(&mut self, cause: Error) -> Result<(), Error> {
        let Some(validator) = &self.validator else {
            return Err(cause);
        };
        self.failures += 1;
        if self.failures > self.client.options.retries {
            return Err(give_up(self.failures, cause));
        }
        // The first retry after progress goes at once: the connection was working.
        let range = text!("bytes={}-", self.delivered);
        let headers = [("Range", range.as_str()), ("If-Range", validator.as_str())];
        let (head, conn) =
            self.client.exchange_retrying("GET", &self.url, &headers, &mut self.failures)?;
        // Head::parse already rejects a 206 without Content-Range.
        let why = match (head.status, head.content_range) {
            (206, Some(range)) if range.first != self.delivered => {
                "the server resumed at another offset"
            }
            (206, Some(range)) if self.total.is_some() && range.complete != self.total => {
                "the complete length differs"
            }
            (206, Some(_)) => {
                self.body = BodyState::of(head.framing);
                self.conn = conn;
                return Ok(());
            }
            (200, _) => "the server sent it whole (200, not 206): If-Range did not match",
            _ => return Err(status_error("GET", &self.url, &head)),
        };
        Err(Error::Changed { url: self.url.text(), offset: self.delivered, why })
    }
}

impl Read for Response<'_> {
    type Error = Error;

    #[inline(never)]
    fn read(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let result = match self.read_framed(out) {
                // A resumed range that ends before the whole length is not the end.
                Ok(0) if self.total.is_some_and(|t| self.delivered < t) => Err(self.truncated()),
                other => other,
            };
            match result {
                Ok(n) => {
                    if n > 0 {
                        self.delivered += n as u64;
                        self.failures = 0;
                    }
                    return Ok(n);
                }
                Err(e) if e.is_transient() => self.resume(e)?,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::NoDns;
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
            let mut client = Client::new(Box::new(NoDns), Options::default());
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
}
