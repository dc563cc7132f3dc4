//! The HTTP client end to end: build/init's `get` and `put` against a real nginx and
//! against the fault-injecting server in src/faults.rs, all on 127.0.0.1.

use imprint_e2e::faults::{dropping_proxy, read_request, send, FaultServer};
use imprint_e2e::nginx::{pattern, Nginx};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Out {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    /// The one-line error of a failed run, checked to be one line and non-zero.
    fn error(&self) -> &str {
        assert_ne!(self.code, 0, "expected a failure; stderr: {}", self.stderr);
        assert_eq!(self.stderr.lines().count(), 1, "errors are one line: {:?}", self.stderr);
        self.stderr.trim_end()
    }

    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "imprint failed: {}", self.stderr);
        self
    }
}

/// Runs build/init with `args` (and `stdin`), killed after 60 s: nothing may hang.
fn imprint(args: &[&str], stdin: &[u8]) -> Out {
    let mut child = Command::new(imprint_e2e::artifact("build/init"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run build/init");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stderr.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("imprint {args:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    writer.join().unwrap();
    Out {
        code: status.code().expect("exited, not killed"),
        stdout: reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn get(url: &str, flags: &[&str]) -> Out {
    let mut args = vec!["get", url];
    args.extend_from_slice(flags);
    imprint(&args, b"")
}

fn head_200(len: usize, extra: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

// ---- against nginx ----

#[test]
#[ignore = "needs nginx and build/init: run make test"]
fn nginx_content_length_bodies_to_stdout_and_to_a_file() {
    let nginx = Nginx::start("cl");
    let data = nginx.put_file("file.bin", 3 * 1024 * 1024 + 17);
    let out = get(&nginx.url("/file.bin"), &[]);
    out.ok();
    assert!(out.stdout == data, "body differs: {} of {} bytes", out.stdout.len(), data.len());
    let file = nginx.dir.join("out.bin");
    let out = get(&nginx.url("/file.bin"), &["-o", file.to_str().unwrap()]);
    out.ok();
    assert!(out.stdout.is_empty());
    assert!(std::fs::read(&file).unwrap() == data);
    nginx.put_file("empty", 0);
    let out = get(&nginx.url("/empty"), &[]);
    assert!(out.ok().stdout.is_empty());
}

#[test]
#[ignore = "needs nginx and build/init: run make test"]
fn nginx_404_and_403_are_fatal_at_once_and_redirects_are_followed() {
    let nginx = Nginx::start("status");
    let url = nginx.url("/missing.img");
    let out = get(&url, &["--retries", "3"]);
    assert_eq!(out.error(), format!("imprint: GET {url}: 404 Not Found"));
    let url = nginx.url("/forbidden/x");
    assert_eq!(get(&url, &["--retries", "3"]).error(), format!("imprint: GET {url}: 403 Forbidden"));
    // imprint has exited, so all its requests are made; nginx logs each just after
    // answering it, so give the second line a moment to land.
    let log_path = nginx.dir.join("access.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut log = String::new();
    while Instant::now() < deadline {
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.lines().count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(log.lines().count(), 2, "4xx must not be retried:\n{log}");
    let data = nginx.put_file("file.bin", 1000);
    assert!(get(&nginx.url("/moved"), &[]).ok().stdout == data, "301 to /file.bin followed");
}

#[test]
#[ignore = "needs nginx and build/init: run make test"]
fn nginx_range_resume_after_the_connection_drops_mid_body() {
    let nginx = Nginx::start("resume");
    let data = nginx.put_file("image.bin", 2 * 1024 * 1024);
    let cut = 300_000;
    let proxy = dropping_proxy(nginx.port, cut);
    let out = get(&proxy.url("/image.bin"), &[]);
    out.ok();
    assert!(out.stdout == data, "resumed body differs ({} of {} bytes)", out.stdout.len(), data.len());
    let requests = proxy.requests();
    assert_eq!(requests.len(), 2, "one resume");
    assert_eq!(requests[0].header("range"), None);
    let range = requests[1].header("range").expect("the resume asks for a Range");
    let offset: usize = range.strip_prefix("bytes=").unwrap().strip_suffix('-').unwrap().parse().unwrap();
    assert!(offset > 0 && offset < cut, "resumed at {offset}");
    let etag = requests[1].header("if-range").expect("If-Range on the resume");
    assert!(etag.starts_with('"'), "nginx's strong ETag: {etag}");
}

#[test]
#[ignore = "needs nginx and build/init: run make test"]
fn nginx_receives_uploads_with_length_and_chunked() {
    let nginx = Nginx::start("put");
    let data = pattern(1024 * 1024 + 3);
    let src = nginx.dir.join("src.bin");
    std::fs::write(&src, &data).unwrap();
    let out = imprint(&["put", src.to_str().unwrap(), &nginx.url("/dav/a.bin")], b"");
    assert_eq!(String::from_utf8_lossy(&out.ok().stdout), "201\n");
    assert!(nginx.read("dav/a.bin") == data, "Content-Length upload stored intact");
    let out = imprint(&["put", "-", &nginx.url("/dav/b.bin"), "--chunked"], &data);
    assert_eq!(String::from_utf8_lossy(&out.ok().stdout), "201\n");
    assert!(nginx.read("dav/b.bin") == data, "chunked upload stored intact");
    // nginx refuses the body by its Content-Length and closes while we still send: its
    // answer is the error, not the broken pipe.
    let url = nginx.url("/small/c.bin");
    let out = imprint(&["put", src.to_str().unwrap(), &url], b"");
    assert_eq!(out.error(), format!("imprint: PUT {url}: 413 Request Entity Too Large"));
}

// ---- against the fault-injecting server ----

#[test]
#[ignore = "needs build/init: run make test"]
fn chunked_bodies_with_extensions_and_trailers() {
    let server = FaultServer::start(|_, s, log| {
        read_request(s, log);
        send(s, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        send(s, b"6;name=value;quoted=\"a;b\"\r\nhello \r\n");
        send(s, b"1A ; ext\r\nabcdefghijklmnopqrstuvwxyz\r\n");
        send(s, b"0;last\r\nX-Checksum: 1234\r\nX-Other: y\r\n\r\n");
    });
    let out = get(&server.url("/c"), &[]);
    assert_eq!(out.ok().stdout, b"hello abcdefghijklmnopqrstuvwxyz");
}

#[test]
#[ignore = "needs build/init: run make test"]
fn truncated_bodies_are_errors_never_complete() {
    let server = FaultServer::start(|n, s, log| {
        read_request(s, log);
        if n == 0 {
            send(s, &head_200(100, ""));
            send(s, &[b'x'; 40]);
        } else {
            send(s, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nab");
        }
    });
    let url = server.url("/t");
    let out = get(&url, &[]);
    assert_eq!(out.error(), format!("imprint: {url}: body cut short after 40 of 100 bytes"));
    assert_eq!(out.stdout.len(), 40);
    let out = get(&url, &[]);
    assert_eq!(out.error(), format!("imprint: {url}: body cut short after 7 bytes (chunked framing incomplete)"));
    assert_eq!(server.requests().len(), 2, "no validator: nothing to resume with");
}

#[test]
#[ignore = "needs build/init: run make test"]
fn a_connection_reset_is_an_error() {
    let server = FaultServer::start(|_, s, _| {
        // Leave the request unread: closing a socket with unread data sends a RST.
        std::thread::sleep(Duration::from_millis(200));
        send(s, &head_200(1000, ""));
        send(s, &[b'x'; 10]);
    });
    let out = get(&server.url("/r"), &["--retries", "0"]);
    let error = out.error();
    assert!(error.contains("Connection reset by peer"), "{error}");
}

#[test]
#[ignore = "needs build/init: run make test"]
fn a_drip_past_the_idle_timeout_times_out_and_one_within_it_completes() {
    let server = FaultServer::start(|_, s, log| {
        read_request(s, log);
        send(s, &head_200(4, ""));
        for b in b"drip" {
            std::thread::sleep(Duration::from_secs(1));
            send(s, &[*b]);
        }
    });
    let url = server.url("/d");
    let out = get(&url, &["--idle-timeout", "0.3", "--retries", "0"]);
    assert_eq!(out.error(), format!("imprint: {url}: no data moved for 300 ms (idle timeout)"));
    // A byte a second is slow but alive: a 2.5 s idle timeout never fires, although
    // the whole body takes longer than that.
    let out = get(&url, &["--idle-timeout", "2.5", "--retries", "0"]);
    assert_eq!(out.ok().stdout, b"drip");
}

#[test]
#[ignore = "needs build/init: run make test"]
fn garbage_oversized_and_ambiguous_heads_are_errors() {
    let server = FaultServer::start(|n, s, log| {
        read_request(s, log);
        match n {
            0 => send(s, b"SSH-2.0-OpenSSH_9.2p1\r\n\r\n"),
            1 => {
                send(s, b"HTTP/1.1 200 OK\r\nX-Big: ");
                send(s, &vec![b'a'; 20_000]);
                send(s, b"\r\n\r\n");
            }
            2 => send(s, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            _ => send(s, b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello"),
        }
    });
    let url = server.url("/g");
    assert_eq!(get(&url, &[]).error(), format!("imprint: {url}: malformed response head (not HTTP/1.x)"));
    assert_eq!(get(&url, &[]).error(), format!("imprint: {url}: response head larger than 16384 bytes"));
    assert_eq!(
        get(&url, &[]).error(),
        format!("imprint: {url}: response has both Content-Length and Transfer-Encoding (ambiguous framing)")
    );
    assert_eq!(get(&url, &[]).error(), format!("imprint: {url}: invalid or conflicting Content-Length"));
}

#[test]
#[ignore = "needs build/init: run make test"]
fn redirects_resolve_relative_locations_and_stop_loops() {
    let server = FaultServer::start(|_, s, log| {
        let request = read_request(s, log);
        let location = match request.request_line() {
            "GET /x/y HTTP/1.1" => "../z",
            "GET /a HTTP/1.1" => "/b",
            "GET /b HTTP/1.1" => "a",
            line => {
                let n: usize = line.split(' ').nth(1).unwrap().trim_start_matches("/chain").parse().unwrap_or(0);
                if line.starts_with("GET /chain") {
                    send(s, format!("HTTP/1.1 302 Found\r\nLocation: /chain{}\r\nContent-Length: 0\r\n\r\n", n + 1).as_bytes());
                } else {
                    send(s, &head_200(4, ""));
                    send(s, b"here");
                }
                return;
            }
        };
        send(s, format!("HTTP/1.1 301 Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n").as_bytes());
    });
    assert_eq!(get(&server.url("/x/y"), &[]).ok().stdout, b"here");
    assert_eq!(server.requests()[1].request_line(), "GET /z HTTP/1.1");
    assert_eq!(get(&server.url("/a"), &[]).error(), format!("imprint: redirect loop at {}", server.url("/a")));
    assert_eq!(
        get(&server.url("/chain0"), &[]).error(),
        format!("imprint: too many redirects (more than 5) ending at {}", server.url("/chain6"))
    );
}

#[test]
#[ignore = "needs build/init: run make test"]
fn a_503_is_retried_after_its_retry_after_and_a_404_is_not() {
    let server = FaultServer::start(|n, s, log| {
        let request = read_request(s, log);
        if request.request_line().starts_with("GET /missing") {
            send(s, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        } else if n == 0 {
            send(s, b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n");
        } else {
            send(s, &head_200(2, ""));
            send(s, b"ok");
        }
    });
    assert_eq!(get(&server.url("/busy"), &[]).ok().stdout, b"ok");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    // A lower bound the client must keep (it was told to wait 2 s), not a speed claim.
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_millis(1900), "Retry-After: 2 not honoured: {waited:?}");
    let url = server.url("/missing");
    assert_eq!(get(&url, &["--retries", "3"]).error(), format!("imprint: GET {url}: 404 Not Found"));
    assert_eq!(server.requests().len(), 3, "the 404 is fatal at once");
}

#[test]
#[ignore = "needs build/init: run make test"]
fn a_drop_mid_body_resumes_with_range_and_a_changed_resource_is_an_error() {
    let data = pattern(100_000);
    let body = data.clone();
    let server = FaultServer::start(move |n, s, log| {
        let request = read_request(s, log);
        let changing = request.request_line().starts_with("GET /changing");
        match (n, request.header("range")) {
            (_, None) => {
                send(s, &head_200(body.len(), "ETag: \"v1\"\r\n"));
                send(s, &body[..40_000]);
            }
            (_, Some(_)) if changing => {
                // The resource changed: If-Range fails and the server sends all of it.
                send(s, &head_200(body.len(), "ETag: \"v2\"\r\n"));
                send(s, &body);
            }
            (_, Some(range)) => {
                let from: usize = range["bytes=".len()..range.len() - 1].parse().unwrap();
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nETag: \"v1\"\r\n\r\n",
                    body.len() - from,
                    body.len() - 1,
                    body.len()
                );
                send(s, head.as_bytes());
                send(s, &body[from..]);
            }
        }
    });
    let out = get(&server.url("/stable"), &[]);
    assert!(out.ok().stdout == data, "resumed body differs");
    let requests = server.requests();
    assert_eq!(requests[1].header("range"), Some("bytes=40000-"));
    assert_eq!(requests[1].header("if-range"), Some("\"v1\""));
    let url = server.url("/changing");
    let out = get(&url, &[]);
    assert_eq!(
        out.error(),
        format!("imprint: {url} changed while resuming at byte 40000: the server sent it whole (200, not 206): If-Range did not match")
    );
    assert_eq!(out.stdout.len(), 40_000, "nothing of the new version was delivered");
}

#[test]
#[ignore = "needs build/init: run make test"]
fn chunked_uploads_arrive_byte_for_byte() {
    let server = FaultServer::start(|_, s, log| {
        read_request(s, log);
        send(s, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    });
    let data = pattern(300_001);
    let out = imprint(&["put", "-", &server.url("/upload"), "--chunked"], &data);
    assert_eq!(String::from_utf8_lossy(&out.ok().stdout), "201\n");
    let seen = &server.requests()[0];
    assert_eq!(seen.request_line(), "PUT /upload HTTP/1.1");
    assert!(seen.chunked && seen.header("content-length").is_none());
    assert!(seen.body == data, "received {} of {} bytes, or different ones", seen.body.len(), data.len());
}

#[test]
#[ignore = "needs root (a namespace) and build/init: run make test"]
fn urls_it_cannot_fetch_say_why() {
    let out = get("https://10.0.0.1/image", &[]);
    assert!(out.error().contains("TLS is not supported; use http:// and pin a sha256 instead"), "{}", out.stderr);
    // A name with no name server to ask: in a namespace of its own whose resolv.conf lists
    // none (`ip netns exec` shows /etc/netns/<name>/resolv.conf), so no query ever leaves
    // this machine's test namespaces.
    let ns = imprint_e2e::netns::Netns::new("imnnodns");
    let etc = std::path::Path::new("/etc/netns/imnnodns");
    std::fs::create_dir_all(etc).unwrap();
    std::fs::write(etc.join("resolv.conf"), "# no name servers\n").unwrap();
    let out = ns.command(imprint_e2e::artifact("build/init")).args(["get", "http://boot.example/image"]).output().unwrap();
    let _ = std::fs::remove_dir_all(etc);
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), "imprint: resolving boot.example: no DNS server configured");
    assert_ne!(out.status.code(), Some(0));
    let out = imprint(&["get"], b"");
    assert_eq!(out.code, 64);
    assert_eq!(out.error(), "imprint: expected one URL; see imprint --help");
    let out = imprint(&["get", "http://h/", "--idle-timeout", "soon"], b"");
    assert_eq!(out.code, 64);
    assert_eq!(out.error(), "imprint: --idle-timeout takes seconds (e.g. 30 or 0.5), not soon; see imprint --help");
    let out = imprint(&["get", "http://h/", "--retries=-1"], b"");
    assert_eq!(out.error(), "imprint: --retries takes a count, not -1; see imprint --help");
    // Each command takes only its own options: -o is get's, --chunked is put's.
    let out = imprint(&["put", "-", "http://h/", "-o", "f"], b"");
    assert_eq!((out.code, out.error()), (64, "imprint: unknown option \"-o\"; see imprint --help"));
    let out = imprint(&["get", "http://h/", "--chunked"], b"");
    assert_eq!((out.code, out.error()), (64, "imprint: unknown option \"--chunked\"; see imprint --help"));
    let help = String::from_utf8(imprint(&["--help"], b"").ok().stdout.clone()).unwrap();
    for text in ["get <url> [-o FILE]", "put <file|-> <url> [--chunked]", "--idle-timeout", "--retries"] {
        assert!(help.contains(text), "--help lacks {text}");
    }
    // Nothing listens on a port just freed: refused, retried once after 1 s, reported.
    let url = format!("http://127.0.0.1:{}/x", imprint_e2e::nginx::free_port());
    let out = get(&url, &["--retries", "1"]);
    let error = out.error();
    assert!(error.starts_with("imprint: giving up after 2 attempts: connecting to 127.0.0.1:"), "{error}");
    assert!(error.ends_with(&format!("for {url}: Connection refused (errno 111)")), "{error}");
}
