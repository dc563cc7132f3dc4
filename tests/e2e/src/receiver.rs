//! A receiving server for the tests, standing in for plunder's upload endpoint and for a
//! provisioning system's status collector. It speaks what plunder accepts: a
//! multipart/form-data POST with the image in the field `BootyImage`, the body chunked
//! (its length is not known when a capture starts). Everything else POSTed is recorded as
//! a status report. It can also misbehave on purpose (413, 500, a reset mid-upload).
//!
//! Written for the tests because Python's http.server does not decode chunked bodies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How the server answers uploads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Accept,
    /// 413 Payload Too Large after reading the head.
    TooLarge,
    /// 500 after reading the whole body.
    ServerError,
    /// Closes the connection with a reset after this many body bytes.
    ResetAfter(usize),
}

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub chunked: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A file received through a multipart form.
#[derive(Clone, Debug)]
pub struct Upload {
    pub field: String,
    pub file_name: String,
    pub data: Vec<u8>,
}

pub struct Receiver {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub uploads: Arc<Mutex<Vec<Upload>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Receiver {
    /// Listens on `addr` (e.g. "127.0.0.1:0", or an address inside a test namespace).
    pub fn start(addr: &str) -> Receiver {
        Self::start_saving(addr, None)
    }

    /// As `start`, and also saves every upload as `dir/<file name>` and appends every
    /// JSON POST body to `dir/reports.jsonl` as it arrives (for a receiver run as a
    /// separate process inside a namespace).
    pub fn start_saving(addr: &str, dir: Option<PathBuf>) -> Receiver {
        let listener = TcpListener::bind(addr).expect("bind the receiver");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let uploads = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(Behaviour::Accept));
        let (r, u, b) = (requests.clone(), uploads.clone(), behaviour.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, u, b, dir) = (r.clone(), u.clone(), b.clone(), dir.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &r, &u, *b.lock().unwrap(), dir.as_deref());
                });
            }
        });
        Receiver { port, requests, uploads, behaviour }
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub fn uploads(&self) -> Vec<Upload> {
        self.uploads.lock().unwrap().clone()
    }

    /// Saves every upload into `dir` under its form file name; returns the paths.
    pub fn save_uploads(&self, dir: &std::path::Path) -> Vec<PathBuf> {
        self.uploads()
            .iter()
            .map(|u| {
                let path = dir.join(&u.file_name);
                std::fs::write(&path, &u.data).unwrap();
                path
            })
            .collect()
    }
}

fn serve(
    stream: TcpStream,
    requests: &Mutex<Vec<Request>>,
    uploads: &Mutex<Vec<Upload>>,
    behaviour: Behaviour,
    save_to: Option<&std::path::Path>,
) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let Some((method, path, headers)) = read_head(&mut reader)? else { return Ok(()) };
        let is_upload = method == "POST"
            && headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.starts_with("multipart/form-data"));
        if is_upload && behaviour == Behaviour::TooLarge {
            respond(&mut out, "413 Payload Too Large", "image too large for this server\n")?;
            return Ok(());
        }
        let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"));
        let limit = match behaviour {
            Behaviour::ResetAfter(n) if is_upload => Some(n),
            _ => None,
        };
        let body = if chunked {
            read_chunked(&mut reader, limit)?
        } else {
            let len = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.parse().unwrap_or(0)).unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body)?;
            body
        };
        if let Some(n) = limit {
            if body.len() >= n {
                // A reset, not a clean close: SO_LINGER 0 is not in std, so shut both ways
                // with unread data pending, which makes the kernel send RST.
                let _ = out.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
        let request = Request { method: method.clone(), path, headers: headers.clone(), body, chunked };
        if is_upload {
            let content_type = request.header("content-type").unwrap_or_default().to_string();
            match parse_multipart(&content_type, &request.body) {
                Ok(parts) => {
                    if let Some(dir) = save_to {
                        for part in &parts {
                            std::fs::write(dir.join(&part.file_name), &part.data)?;
                        }
                    }
                    uploads.lock().unwrap().extend(parts)
                }
                Err(why) => {
                    requests.lock().unwrap().push(request);
                    respond(&mut out, "400 Bad Request", &format!("{why}\n"))?;
                    return Ok(());
                }
            }
        }
        if let (Some(dir), false) = (save_to, is_upload) {
            let mut log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("reports.jsonl"))?;
            log.write_all(&request.body)?;
            log.write_all(b"\n")?;
        }
        requests.lock().unwrap().push(request);
        if is_upload && behaviour == Behaviour::ServerError {
            respond(&mut out, "500 Internal Server Error", "disk full\n")?;
            return Ok(());
        }
        respond(&mut out, "200 OK", "ok\n")?;
    }
}

type Head = (String, String, Vec<(String, String)>);

fn read_head(reader: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let path = words.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some((method, path, headers)))
}

fn read_chunked(reader: &mut impl BufRead, stop_after: Option<usize>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_text = size_line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad chunk size {size_line:?}")))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let mut t = String::new();
                reader.read_line(&mut t)?;
                if t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
        if stop_after.is_some_and(|n| body.len() >= n) {
            return Ok(body);
        }
    }
}

/// Splits a multipart/form-data body into its file parts.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<Upload>, String> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .ok_or("no boundary in Content-Type")?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body.strip_prefix(delimiter.as_bytes()).ok_or("body does not start with the boundary")?;
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest.strip_prefix(b"\r\n").ok_or("no CRLF after a boundary")?;
        let head_end = find(rest, b"\r\n\r\n").ok_or("part without a blank line after its headers")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        rest = &rest[head_end + 4..];
        let end = find(rest, format!("\r\n{delimiter}").as_bytes()).ok_or("part without a closing boundary")?;
        let data = rest[..end].to_vec();
        rest = &rest[end + 2 + delimiter.len()..];
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .ok_or("part without Content-Disposition")?;
        let param = |name: &str| {
            disposition.split(';').find_map(|p| p.trim().strip_prefix(&format!("{name}=")).map(|v| v.trim_matches('"').to_string()))
        };
        parts.push(Upload {
            field: param("name").ok_or("part without a name")?,
            file_name: param("filename").unwrap_or_default(),
            data,
        });
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn respond(out: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    write!(out, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}", body.len())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_split_into_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"BootyImage\"; filename=\"00:50:56:a5:0e:0f.zmg\"\r\nContent-Type: application/octet-stream\r\n\r\n\x1f\x8b\r\n--XyZ--\r\n";
        let parts = parse_multipart("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].field, "BootyImage");
        assert_eq!(parts[0].file_name, "00:50:56:a5:0e:0f.zmg");
        assert_eq!(parts[0].data, b"\x1f\x8b");
        assert!(parse_multipart("multipart/form-data", body).is_err());
    }
}
