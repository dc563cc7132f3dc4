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
        Options { connect_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(30), retries: 5 }
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
    fn read_head(&mut self, url: &Url, head_request: bool) -> Result<Head, Error> {
        loop {
            match Head::parse(self.buffered(), head_request) {
                Ok(Some((head, len))) => {
                    self.consume(len);
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue;
                    }
                    return Ok(head);
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
fn transfer_error(url: &Url, errno: Errno, idle: Duration, sending: bool) -> Error {
    let url = url.text();
    match (errno == Errno::ETIMEDOUT, sending) {
        (true, _) => Error::Idle { url, after: idle },
        (false, true) => Error::Send { url, errno },
        (false, false) => Error::Receive { url, errno },
    }
}

/// Exponential backoff before attempt `attempt + 1`: 1 s, 2 s, 4 s, ... up to MAX_WAIT.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(MAX_WAIT)
}

fn status_error(method: &'static str, url: &Url, head: &Head) -> Error {
    Error::Status { method, url: url.text(), status: head.status, reason: head.reason.clone() }
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
        let mut url = Url::parse(url).map_err(|error| Error::Url { url: url.into(), error })?;
        let mut seen: Vec<String> = Vec::new();
        loop {
            let (head, conn) = self.exchange_retrying("GET", &url, &[])?;
            match head.status {
                301 | 302 | 303 | 307 | 308 => {
                    let Some(location) = &head.location else {
                        return Err(Error::Redirect { url: url.text(), problem: RedirectProblem::NoLocation });
                    };
                    let next = url.join(location).map_err(|error| Error::Url { url: location.clone(), error })?;
                    seen.push(url.text());
                    let problem = if seen.contains(&next.text()) {
                        Some(RedirectProblem::Loop)
                    } else if seen.len() > MAX_REDIRECTS {
                        Some(RedirectProblem::TooMany)
                    } else {
                        None
                    };
                    if let Some(problem) = problem {
                        return Err(Error::Redirect { url: next.text(), problem });
                    }
                    url = next;
                }
                200..=299 => return Ok(Response::new(self, url, head, conn, "GET")),
                _ => return Err(status_error("GET", &url, &head)),
            }
        }
    }

    /// Sends `method` with a body from `source`: `length` bytes with Content-Length, or
    /// chunked when `None`. Uploads are neither retried nor redirected: the source is a
    /// stream that cannot be replayed. A status of 300 or more is an error.
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
        let url = Url::parse(url).map_err(|error| Error::Url { url: url.into(), error })?;
        let framing = length.map_or(BodyFraming::Chunked, BodyFraming::Length);
        let mut conn = self.connect(&url)?;
        let mut head = Vec::new();
        write_head(&mut head, method, &url, headers, framing);
        let sent = conn
            .stream
            .write_all(&head, conn.idle)
            .map_err(|errno| send_error(&url, errno, conn.idle))
            .and_then(|()| send_body(&conn, &url, source, length));
        let head = match sent {
            Ok(()) => conn.read_head(&url, false)?,
            // A server that answers early (e.g. 413) and closes makes the send fail: its
            // answer, if it sent one, says more than the broken pipe does.
            Err(e @ Error::Send { .. }) => conn.read_head(&url, false).map_err(|_| e)?,
            Err(e) => return Err(e),
        };
        if head.status >= 300 {
            return Err(status_error(method, &url, &head));
        }
        Ok(Response::new(self, url, head, conn, method))
    }

    fn connect(&mut self, url: &Url) -> Result<Connection, Error> {
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
        Ok(Connection { stream, buf: vec![0; BUFFER], start: 0, end: 0, idle: self.options.idle_timeout })
    }

    /// One bodiless request and its response head.
    fn exchange(&mut self, method: &str, url: &Url, headers: &[(&str, &str)]) -> Result<(Head, Connection), Error> {
        let mut conn = self.connect(url)?;
        let mut request = Vec::new();
        write_head(&mut request, method, url, headers, BodyFraming::None);
        conn.stream.write_all(&request, conn.idle).map_err(|errno| send_error(url, errno, conn.idle))?;
        let head = conn.read_head(url, method == "HEAD")?;
        Ok((head, conn))
    }

    /// `exchange`, retried on transient errors and 408/429/5xx with exponential backoff
    /// (or the server's Retry-After).
    #[inline(never)]
    fn exchange_retrying(
        &mut self,
        method: &'static str,
        url: &Url,
        headers: &[(&str, &str)],
    ) -> Result<(Head, Connection), Error> {
        let mut attempt = 1;
        loop {
            let (error, retry_after) = match self.exchange(method, url, headers) {
                Ok((head, _)) if retryable_status(head.status) => (status_error(method, url, &head), head.retry_after),
                Ok(done) => return Ok(done),
                Err(e) if e.is_transient() => (e, None),
                Err(e) => return Err(e),
            };
            if attempt > self.options.retries {
                return Err(give_up(attempt, error));
            }
            sleep(retry_after.map_or(backoff(attempt), Duration::from_secs).min(MAX_WAIT));
            attempt += 1;
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
fn send_body(conn: &Connection, url: &Url, source: &mut dyn Source, length: Option<u64>) -> Result<(), Error> {
    let source_error = |why: String| Error::Source { url: url.text(), why };
    let send = |bytes: &[u8]| conn.stream.write_all(bytes, conn.idle).map_err(|e| send_error(url, e, conn.idle));
    let mut buf = vec![0u8; CHUNK_PREFIX + UPLOAD_CHUNK + 2];
    match length {
        Some(length) => {
            let mut left = length;
            while left > 0 {
                let want = (left.min(UPLOAD_CHUNK as u64)) as usize;
                let n = source.pull(&mut buf[..want]).map_err(source_error)?;
                if n == 0 {
                    let sent = length - left;
                    return Err(source_error(text!("the source ended after {sent} of {length} bytes")));
                }
                send(&buf[..n])?;
                left -= n as u64;
            }
            // A source longer than declared would be cut silently: say so instead.
            if source.pull(&mut buf[..1]).map_err(source_error)? != 0 {
                return Err(source_error(text!("the source is longer than the declared {length} bytes")));
            }
            Ok(())
        }
        None => loop {
            let n = source.pull(&mut buf[CHUNK_PREFIX..CHUNK_PREFIX + UPLOAD_CHUNK]).map_err(source_error)?;
            let range = frame_chunk(&mut buf, n);
            send(&buf[range])?;
            if n == 0 {
                return Ok(());
            }
        },
    }
}

/// Where the body stands in its framing.
enum BodyState {
    Empty,
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    Close,
}

impl BodyState {
    fn of(framing: Framing) -> BodyState {
        match framing {
            Framing::Empty => BodyState::Empty,
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
    head: Head,
    conn: Connection,
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
    fn new(client: &'c mut Client, url: Url, head: Head, conn: Connection, method: &str) -> Response<'c> {
        let total = match head.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        // Only a full 200 to a GET can be resumed: its bytes are the resource's, from 0.
        let validator =
            if method == "GET" && head.status == 200 { head.validator.clone() } else { None };
        let body = BodyState::of(head.framing);
        Response { client, url, head, conn, body, delivered: 0, total, validator, failures: 0 }
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

    /// Reads from the current connection as the framing allows.
    #[inline(never)]
    fn read_framed(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        let url = &self.url;
        let idle = self.conn.idle;
        let truncated = || Error::Truncated { url: url.text(), received: self.delivered, expected: self.total };
        match &mut self.body {
            BodyState::Empty | BodyState::Length { remaining: 0 } => Ok(0),
            BodyState::Length { remaining } => {
                let want = (*remaining).min(out.len() as u64) as usize;
                match self.conn.read_into(&mut out[..want]).map_err(|e| receive_error(url, e, idle))? {
                    0 => Err(truncated()),
                    n => {
                        *remaining -= n as u64;
                        Ok(n)
                    }
                }
            }
            BodyState::Close => self.conn.read_into(out).map_err(|e| receive_error(url, e, idle)),
            BodyState::Chunked(decoder) => loop {
                if decoder.is_done() {
                    return Ok(0);
                }
                let data = decoder.data_remaining();
                if data > 0 {
                    let want = data.min(out.len() as u64) as usize;
                    let n = self.conn.read_into(&mut out[..want]).map_err(|e| receive_error(url, e, idle))?;
                    if n == 0 {
                        return Err(truncated());
                    }
                    decoder.consume_data(n);
                    return Ok(n);
                }
                if self.conn.buffered().is_empty() && self.conn.fill().map_err(|e| receive_error(url, e, idle))? == 0 {
                    return Err(truncated());
                }
                let used = decoder
                    .step(self.conn.buffered())
                    .map_err(|error| Error::Chunk { url: url.text(), error })?;
                self.conn.consume(used);
            },
        }
    }

    /// After a transient failure mid-body: a new request for the rest, checked to be the
    /// same resource. Returns `cause` when this response cannot be resumed.
    #[inline(never)]
    fn resume(&mut self, cause: Error) -> Result<(), Error> {
        let Some(validator) = self.validator.clone() else {
            return Err(cause);
        };
        let mut last = cause;
        loop {
            self.failures += 1;
            if self.failures > self.client.options.retries {
                return Err(give_up(self.failures, last));
            }
            // The first retry after progress goes at once: the connection was working.
            if self.failures > 1 {
                sleep(backoff(self.failures - 1));
            }
            let range = text!("bytes={}-", self.delivered);
            let headers = [("Range", range.as_str()), ("If-Range", validator.as_str())];
            let (head, conn) = match self.client.exchange("GET", &self.url, &headers) {
                Ok(ok) => ok,
                Err(e) if e.is_transient() => {
                    last = e;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match head.status {
                206 => {}
                200 => return Err(self.changed("the server sent it whole (200, not 206): If-Range did not match")),
                s if retryable_status(s) => {
                    last = status_error("GET", &self.url, &head);
                    continue;
                }
                _ => return Err(status_error("GET", &self.url, &head)),
            }
            // Head::parse already rejects a 206 without Content-Range.
            let Some(range) = head.content_range else {
                return Err(self.changed("206 without Content-Range"));
            };
            if range.first != self.delivered {
                return Err(self.changed("the server resumed at another offset"));
            }
            if self.total.is_some() && range.complete != self.total {
                return Err(self.changed("the complete length differs"));
            }
            self.body = BodyState::of(head.framing);
            self.conn = conn;
            return Ok(());
        }
    }

    fn changed(&self, why: &'static str) -> Error {
        Error::Changed { url: self.url.text(), offset: self.delivered, why }
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
                Ok(0) if self.total.is_some_and(|t| self.delivered < t) => Err(Error::Truncated {
                    url: self.url.text(),
                    received: self.delivered,
                    expected: self.total,
                }),
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
