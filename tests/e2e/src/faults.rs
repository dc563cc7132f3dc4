//! A fault-injecting HTTP server for the client's tests: each accepted connection is
//! handed to the test's script with its number (0, 1, ...), so a test can answer the
//! first attempt one way and the retry another. Requests the script reads are logged
//! with their arrival time for the test to check (Range, If-Range, upload bodies).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Request line and headers, as text.
    pub head: String,
    /// The body after de-chunking (or as sent with Content-Length).
    pub body: Vec<u8>,
    /// Whether the body came chunked.
    pub chunked: bool,
    pub at: Instant,
}

impl Seen {
    /// A header's value (case-insensitive name), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }
}

#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

pub struct FaultServer {
    pub port: u16,
    pub log: Log,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultServer {
    /// Listens on 127.0.0.1 (a free port) and runs `script` for each connection in a
    /// thread of its own (a slow answer must not hold up the next connection).
    pub fn start(script: impl Fn(usize, &mut TcpStream, &Log) + Send + Sync + 'static) -> FaultServer {
        let script = Arc::new(script);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Log::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_log, thread_stop) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                // A bound on every read, so a confused script cannot hang the test.
                stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let (script, log) = (script.clone(), thread_log.clone());
                std::thread::spawn(move || script(n, &mut stream, &log));
            }
        });
        FaultServer { port, log, stop, thread: Some(thread) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.log.all()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (head and body) from `stream` and logs it.
pub fn read_request(stream: &mut TcpStream, log: &Log) -> Seen {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut seen = Seen { head, body: Vec::new(), chunked: false, at: Instant::now() };
    if let Some(len) = seen.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        seen.body = vec![0; len];
        stream.read_exact(&mut seen.body).unwrap();
    } else if seen.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        seen.chunked = true;
        seen.body = read_chunked(stream);
    }
    log.0.lock().unwrap().push(seen.clone());
    seen
}

/// A strict decoder of a chunked request body: panics (failing the test) on bad framing.
fn read_chunked(stream: &mut TcpStream) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line = read_line(stream);
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        if size == 0 {
            while !read_line(stream).is_empty() {}
            return body;
        }
        let start = body.len();
        body.resize(start + size, 0);
        stream.read_exact(&mut body[start..]).unwrap();
        assert_eq!(read_line(stream), "", "chunk data not followed by CRLF");
    }
}

fn read_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        stream.read_exact(&mut byte).expect("connection ended inside a chunked body");
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).unwrap()
}

/// Writes `bytes`, ignoring a client that went away (some scripts expect that).
pub fn send(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = stream.write_all(bytes);
    let _ = stream.flush();
}

/// Forwards a request to nginx and the answer back, cutting the first answer after
/// `cut` bytes (a connection that drops mid-body); later answers pass whole.
pub fn dropping_proxy(nginx_port: u16, cut: usize) -> FaultServer {
    FaultServer::start(move |n, client, log| {
        let request = read_request(client, log);
        let mut upstream = TcpStream::connect(("127.0.0.1", nginx_port)).unwrap();
        upstream.write_all(request.head.as_bytes()).unwrap();
        let limit = if n == 0 { cut } else { usize::MAX };
        let mut passed = 0;
        let mut buf = [0u8; 16384];
        while passed < limit {
            let got = match upstream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(got) => got.min(limit - passed),
            };
            if client.write_all(&buf[..got]).is_err() {
                break;
            }
            passed += got;
        }
    })
}
