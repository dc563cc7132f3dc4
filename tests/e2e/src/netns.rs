//! Network namespaces, veth pairs and real DHCP servers (dnsmasq, kea) for the network
//! tests. Every name starts with `imn` and every subnet is 10.213.x.0/24; nothing is ever
//! bound to the host's own interfaces. Everything is removed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `ip <args>`, panicking with its message when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// `ip <args>`'s standard output.
pub fn ip_output(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip (iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted (with its interfaces) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        assert!(name.starts_with("imn"), "test namespaces carry the imn prefix");
        // A leftover from an interrupted run would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", name]).stderr(Stdio::null()).status();
        ip(&["netns", "add", name]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
        Netns { name: name.to_string() }
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Adds `addr` (CIDR) to `dev` and brings it up.
    pub fn address(&self, dev: &str, cidr: &str) {
        ip(&["-n", &self.name, "addr", "add", cidr, "dev", dev]);
        ip(&["-n", &self.name, "link", "set", dev, "up"]);
    }

    pub fn up(&self, dev: &str) {
        ip(&["-n", &self.name, "link", "set", dev, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A veth pair: `a` in namespace `na`, `b` in `nb`.
pub fn veth(na: &Netns, a: &str, nb: &Netns, b: &str) {
    assert!(a.starts_with("imn") && b.starts_with("imn"));
    ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
    ip(&["link", "set", a, "netns", &na.name]);
    ip(&["link", "set", b, "netns", &nb.name]);
}

/// A fresh temporary directory for one test's server files.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("imn-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A server process, killed on drop; its log is a file.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
    dir: PathBuf,
}

impl Daemon {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; panics with the log after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log_text().contains(needle) {
            assert!(Instant::now() < deadline, "server log lacks {needle:?} after {timeout:?}:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// dnsmasq serving DHCP on `iface` only (in `ns`), DNS off (unless `args` has a --port), no ping check before offers
/// (it would add up to 3 s per new lease), lease and log files in a temp dir.
pub fn dnsmasq(ns: &Netns, iface: &str, tag: &str, args: &[&str]) -> Daemon {
    let dir = temp_dir(tag);
    let log = dir.join("dnsmasq.log");
    let child = ns
        .command("dnsmasq")
        .args(["--no-daemon", "--conf-file=/dev/null", "--bind-interfaces", "--except-interface=lo"])
        // DNS off unless the test asks for a port (dnsmasq refuses a repeated --port).
        .args((!args.iter().any(|a| a.starts_with("--port="))).then_some("--port=0"))
        .arg(format!("--interface={iface}"))
        .args(["--no-ping", "--log-dhcp"])
        .arg(format!("--dhcp-leasefile={}", dir.join("leases").display()))
        .arg(format!("--pid-file={}", dir.join("pid").display()))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start dnsmasq (make setup-net installs it)");
    let daemon = Daemon { child, log, dir };
    daemon.wait_for_log("DHCP, sockets bound exclusively to interface", Duration::from_secs(20));
    daemon
}

/// kea-dhcp4 serving `subnet` (e.g. "10.213.15") on `iface` with leases of `valid` seconds
/// and the given T1/T2; all its files in a temp dir. The interface must already be running
/// (kea does not open sockets on a link without carrier).
pub fn kea(ns: &Netns, iface: &str, tag: &str, subnet: &str, valid: u32, t1: u32, t2: u32) -> Daemon {
    let dir = temp_dir(tag);
    let log = dir.join("kea.log");
    let config = format!(
        r#"{{ "Dhcp4": {{
  "interfaces-config": {{ "interfaces": [ "{iface}" ], "dhcp-socket-type": "raw" }},
  "lease-database": {{ "type": "memfile", "persist": true, "name": "{leases}", "lfc-interval": 0 }},
  "valid-lifetime": {valid}, "renew-timer": {t1}, "rebind-timer": {t2},
  "subnet4": [ {{ "id": 1, "subnet": "{subnet}.0/24", "pools": [ {{ "pool": "{subnet}.50 - {subnet}.99" }} ],
     "option-data": [ {{ "name": "routers", "data": "{subnet}.1" }}, {{ "name": "domain-name-servers", "data": "{subnet}.1" }} ] }} ],
  "loggers": [ {{ "name": "kea-dhcp4", "output_options": [ {{ "output": "{log}" }} ], "severity": "DEBUG", "debuglevel": 99 }} ]
}} }}"#,
        leases = dir.join("leases.csv").display(),
        log = log.display(),
    );
    let config_path = dir.join("kea.json");
    std::fs::write(&config_path, config).unwrap();
    let child = ns
        .command("kea-dhcp4")
        .arg("-c")
        .arg(&config_path)
        // Kea's pid and lock files go to these directories instead of /run.
        .env("KEA_PIDFILE_DIR", &dir)
        .env("KEA_LOCKFILE_DIR", &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kea-dhcp4 (make setup-net installs kea-dhcp4-server)");
    let daemon = Daemon { child, log, dir };
    daemon.wait_for_log("DHCP4_STARTED", Duration::from_secs(20));
    assert!(!daemon.log_text().contains("DHCPSRV_NO_SOCKETS_OPEN"), "kea opened no socket:\n{}", daemon.log_text());
    daemon
}

/// Runs `cmd` to its end, killing it after `bound` (a guard against hangs, not a timing
/// assertion).
pub fn run_bounded(mut cmd: Command, bound: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start");
    let deadline = Instant::now() + bound;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {bound:?}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
