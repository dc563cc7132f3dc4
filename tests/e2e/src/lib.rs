//! Helpers for imprint's end-to-end tests: the build artifacts, and QEMU guests whose
//! serial console the tests read and type into.

pub mod faults;
pub mod loopdev;
pub mod nginx;
pub mod receiver;
pub mod site;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The checkout's root (two levels above this crate).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A build artifact, which `make test` builds before running these tests.
pub fn artifact(rel: &str) -> PathBuf {
    let path = root().join(rel);
    assert!(path.exists(), "{} is missing: run these tests through `make test`", path.display());
    path
}

/// What to boot.
pub struct Boot<'a> {
    pub initramfs: &'a str,
    pub append: &'a str,
    pub memory: &'a str,
    pub extra: Vec<String>,
    /// Run QEMU inside this network namespace (for a tap the test created there).
    pub netns: Option<String>,
    /// Also copy the console to standard output, as it arrives (`make demo`).
    pub echo: bool,
}

impl<'a> Boot<'a> {
    pub fn new(initramfs: &'a str, append: &'a str) -> Self {
        // 64 MiB: the smallest machine imprint promises to provision.
        Boot { initramfs, append, memory: "64M", extra: Vec::new(), netns: None, echo: false }
    }
}

/// QEMU under TCG (/dev/kvm hangs guests on these machines) with the serial console on
/// stdio and nothing else: no display, no monitor, no network unless a test adds one.
fn qemu(memory: &str, netns: Option<&str>) -> Command {
    let mut cmd = match netns {
        // Inside a test's namespace, where its tap device lives.
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "qemu-system-x86_64"]);
            c
        }
        None => Command::new("qemu-system-x86_64"),
    };
    cmd.args(["-accel", "tcg", "-m", memory, "-no-reboot", "-display", "none", "-vga", "none"])
        .args(["-serial", "stdio", "-monitor", "none", "-no-user-config", "-nic", "none"]);
    cmd
}

/// A QEMU guest with its serial console on our pipes.
pub struct Guest {
    child: Child,
    stdin: Option<ChildStdin>,
    console: Arc<(Mutex<Vec<u8>>, Condvar)>,
    started: Instant,
}

impl Guest {
    /// Boots build/bzImage with `boot.initramfs` under TCG; `-no-reboot` makes a guest
    /// reboot end QEMU, which is how a test sees the end.
    pub fn boot(boot: Boot<'_>) -> Guest {
        let mut cmd = qemu(boot.memory, boot.netns.as_deref());
        cmd.arg("-kernel")
            .arg(artifact("build/bzImage"))
            .arg("-initrd")
            .arg(artifact(boot.initramfs))
            // panic=1: a kernel panic reboots (ends QEMU) at once instead of hanging, and
            // the transcript shows it.
            .arg("-append")
            .arg(format!("console=ttyS0 panic=1 {}", boot.append))
            .args(&boot.extra);
        Self::spawn(&mut cmd, boot.echo)
    }

    /// Boots from a disk image (a copy-on-write view: the file is never changed), as a
    /// machine boots from its disk: BIOS, boot loader, kernel.
    pub fn boot_disk(image: &std::path::Path) -> Guest {
        Self::boot_disk_echo(image, false)
    }

    /// As `boot_disk`; `echo` also copies the console to standard output.
    pub fn boot_disk_echo(image: &std::path::Path, echo: bool) -> Guest {
        let drive = format!("file={},format=raw,if=virtio,snapshot=on", image.display());
        Self::spawn(qemu("128M", None).args(["-drive", &drive]), echo)
    }

    fn spawn(cmd: &mut Command, echo: bool) -> Guest {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start qemu-system-x86_64 (make setup installs it)");
        let mut stdout = child.stdout.take().unwrap();
        let console = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = console.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if echo {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
                let (lock, cv) = &*sink;
                lock.lock().unwrap().extend_from_slice(&buf[..n]);
                cv.notify_all();
            }
        });
        Guest { stdin: child.stdin.take(), child, console, started: Instant::now() }
    }

    /// Everything the console printed so far.
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.console.0.lock().unwrap()).into_owned()
    }

    /// Waits until the console has printed `needle` (after byte `from`); returns the offset
    /// just past it. Panics with the transcript when `timeout` passes first.
    pub fn expect_from(&self, from: usize, needle: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.console;
        let mut out = lock.lock().unwrap();
        loop {
            if let Some(at) = find(&out[from.min(out.len())..], needle.as_bytes()) {
                return from + at + needle.len();
            }
            let now = Instant::now();
            if now >= deadline {
                drop(out);
                panic!(
                    "console did not show {needle:?} within {timeout:?} ({:?} after boot); transcript:\n{}",
                    self.started.elapsed(),
                    self.transcript()
                );
            }
            out = cv.wait_timeout(out, deadline - now).unwrap().0;
        }
    }

    pub fn expect(&self, needle: &str, timeout: Duration) -> usize {
        self.expect_from(0, needle, timeout)
    }

    /// Types `text` on the serial console.
    pub fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("console input");
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for QEMU to end (the guest rebooted or powered off); kills it and panics with
    /// the transcript if that takes longer than `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain the last bytes.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("QEMU still running after {timeout:?}; transcript:\n{}", self.transcript());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub mod netns;

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
