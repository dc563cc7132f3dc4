//! A real nginx for the HTTP tests: started per test on 127.0.0.1 and a free port, with a
//! generated configuration in a temporary directory (static files with Range, WebDAV
//! PUT locations, one limited to 1 KiB bodies, a redirect, a forbidden location), stopped and removed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    child: Child,
    pub dir: PathBuf,
    pub port: u16,
}

/// A port the kernel just handed out and that nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fresh temporary directory named for the test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("imh-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `<dir>/nginx.conf` (nginx in the foreground, one process, every file of its own
/// in `dir`, serving `<dir>/www` on `listen` with `locations`) and starts `nginx`, which
/// may be prefixed (`ip netns exec NS nginx`).
pub fn spawn(mut nginx: Command, dir: &Path, listen: &str, locations: &str) -> Child {
    for temp in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(dir.join(temp)).unwrap();
    }
    let d = dir.display();
    let config = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nuser root;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
         scgi_temp_path {d}/scgi;\n  client_max_body_size 0;\n  sendfile on;\n\
         server {{\n    listen {listen};\n    root {d}/www;\n{locations}  }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), config).unwrap();
    nginx
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx (make setup-http installs nginx-light)")
}

impl Nginx {
    /// Starts nginx serving `<dir>/www` (files are put there by the test).
    pub fn start(name: &str) -> Nginx {
        let dir = temp_dir(name);
        let www = dir.join("www");
        std::fs::create_dir_all(www.join("dav")).unwrap();
        let port = free_port();
        let locations = "location /dav/ { dav_methods PUT; create_full_put_path on; }\n\
                         location /small/ { dav_methods PUT; client_max_body_size 1k; }\n\
                         location = /moved { return 301 /file.bin; }\n\
                         location /forbidden/ { deny all; }\n";
        let child = spawn(Command::new("nginx"), &dir, &format!("127.0.0.1:{port}"), locations);
        let nginx = Nginx { child, dir, port };
        nginx.wait_listening();
        nginx
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {}: see {}/error.log", self.port, self.dir.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn www(&self) -> PathBuf {
        self.dir.join("www")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Writes a file of `len` pseudo-random bytes under www; returns its content.
    pub fn put_file(&self, rel: &str, len: usize) -> Vec<u8> {
        let data = pattern(len);
        let path = self.www().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &data).unwrap();
        data
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        read(&self.www().join(rel))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Deterministic bytes that are not a short repeating pattern (so a misplaced range
/// shows up as a mismatch).
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
