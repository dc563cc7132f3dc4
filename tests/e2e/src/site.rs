//! A provisioning site for end-to-end runs: a network namespace with a tap for a QEMU
//! guest, dnsmasq on it, nginx serving `www` (plans under `www/plans`), and the status
//! receiver appending to `reports.jsonl`. Used by the provisioning tests and `make demo`.

use crate::netns::{dnsmasq, temp_dir, Daemon, Netns};
use crate::{Boot, Guest};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// The servers of one test: a namespace with a tap for the guest, dnsmasq, nginx serving
/// `www`, and the status receiver writing `reports.jsonl`.
pub struct Site {
    pub ns: Netns,
    pub dir: PathBuf,
    pub subnet: String,
    /// How URLs name the server: its address, or a name dnsmasq resolves (`with_dns`).
    pub host: String,
    pub status_port: u16,
    _dhcp: Daemon,
    servers: Vec<Child>,
}

impl Site {
    /// `name` starts with "imn"; `subnet` is "10.213.N": the host side is .1.
    pub fn new(name: &str, subnet: &str) -> Site {
        Self::start(name, subnet, None)
    }

    /// As `new`, and dnsmasq also answers DNS for the lease, resolving `host` to the
    /// server: URLs then name it instead of giving its address.
    pub fn with_dns(name: &str, subnet: &str, host: &str) -> Site {
        Self::start(name, subnet, Some(host))
    }

    fn start(name: &str, subnet: &str, dns_name: Option<&str>) -> Site {
        let ns = Netns::new(name);
        let tap = format!("{name}-tap");
        crate::netns::ip(&["-n", name, "tuntap", "add", "dev", &tap, "mode", "tap"]);
        ns.address(&tap, &format!("{subnet}.1/24"));
        let mut args = vec![format!("--dhcp-range={subnet}.50,{subnet}.99,255.255.255.0,2m"), format!("--dhcp-option=option:router,{subnet}.1")];
        if let Some(host) = dns_name {
            // DNS on, answering for this one name only (nothing is forwarded).
            args.extend([
                "--port=53".to_string(),
                "--no-resolv".to_string(),
                format!("--address=/{host}/{subnet}.1"),
                format!("--dhcp-option=option:dns-server,{subnet}.1"),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let dhcp = dnsmasq(&ns, &tap, name, &args);
        let dir = temp_dir(&format!("{name}-site"));
        std::fs::create_dir_all(dir.join("www/plans")).unwrap();
        let nginx = crate::nginx::spawn(ns.command("nginx"), &dir, &format!("{subnet}.1:80"), "");
        let mut receiver = ns
            .command(receiver_binary())
            .arg(format!("{subnet}.1:0"))
            .arg(&dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the status receiver");
        let mut line = String::new();
        BufReader::new(receiver.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let status_port = line.trim().strip_prefix("listening ").and_then(|p| p.parse().ok()).expect("receiver port");
        let host = dns_name.map_or(format!("{subnet}.1"), String::from);
        Site { ns, dir, subnet: subnet.to_string(), host, status_port, _dhcp: dhcp, servers: vec![nginx, receiver] }
    }

    pub fn www(&self) -> PathBuf {
        self.dir.join("www")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.host)
    }

    pub fn status_url(&self) -> String {
        format!("http://{}:{}/status", self.host, self.status_port)
    }

    /// The status reports received, in order.
    pub fn reports(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("reports.jsonl")).unwrap_or_default().lines().map(String::from).collect()
    }

    /// Boots the provisioning initramfs with `disks` as virtio disks (serials IMPRINT-A,
    /// IMPRINT-B, ...); `echo` also copies the console to standard output.
    pub fn boot(&self, mac: &str, disks: &[&Path], append: &str, echo: bool) -> Guest {
        let append = format!("imprint.url={} imprint.on_error=poweroff imprint.on_error_delay=0 {append}", self.url("plans"));
        let mut boot = Boot::new("build/initramfs.cpio.gz", &append);
        boot.netns = Some(self.ns.name.clone());
        let tap = format!("tap,id=n0,ifname={}-tap,script=no,downscript=no", self.ns.name);
        boot.extra = vec!["-netdev".into(), tap, "-device".into(), format!("virtio-net-pci,netdev=n0,mac={mac}")];
        boot.echo = echo;
        for (i, (disk, serial)) in disks.iter().zip(["IMPRINT-A", "IMPRINT-B", "IMPRINT-C"]).enumerate() {
            boot.extra.push("-drive".into());
            boot.extra.push(format!("file={},format=raw,if=none,id=d{i},cache=unsafe", disk.display()));
            boot.extra.push("-device".into());
            boot.extra.push(format!("virtio-blk-pci,drive=d{i},serial={serial}"));
        }
        Guest::boot(boot)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The imprint-receiver binary, built beside the test or demo binary running now (tests
/// run from target/.../deps, binaries from its parent).
fn receiver_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the running binary's path");
    let mut dir = exe.parent().expect("a directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("imprint-receiver");
    assert!(bin.exists(), "{} is missing: build the e2e crate's binaries (make test does)", bin.display());
    bin
}
