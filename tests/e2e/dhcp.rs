//! The network bring-up against real DHCP servers: build/init (`imprint dhcp`) in a network
//! namespace joined by veth to a namespace running dnsmasq or kea; and a QEMU guest (our
//! kernel and initramfs, PID 1) on a tap beside dnsmasq.

use imprint_e2e::netns::{dnsmasq, ip_output, kea, run_bounded, text, veth, Netns};
use imprint_e2e::{artifact, Boot, Guest};
use std::time::Duration;

/// Guards against hangs only; no test asserts how fast anything is.
const BOUND: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(20);

/// A client namespace joined to a server namespace by veth: server side `<p>0` with
/// `<subnet>.1/24`, client side `<p>1` (up, no address).
struct Pair {
    client: Netns,
    server: Netns,
    server_if: String,
    client_if: String,
}

fn pair(prefix: &str, subnet: &str) -> Pair {
    let server = Netns::new(&format!("{prefix}-srv"));
    let client = Netns::new(&format!("{prefix}-cli"));
    let (server_if, client_if) = (format!("{prefix}0"), format!("{prefix}1"));
    veth(&server, &server_if, &client, &client_if);
    server.address(&server_if, &format!("{subnet}.1/24"));
    Pair { client, server, server_if, client_if }
}

fn imprint_dhcp(ns: &Netns, args: &[&str]) -> (i32, String, String) {
    let mut cmd = ns.command(artifact("build/init"));
    cmd.arg("dhcp").args(args);
    let out = run_bounded(cmd, BOUND);
    (out.status.code().expect("exited"), text(&out.stdout), text(&out.stderr))
}

fn mac_of(ns: &Netns, dev: &str) -> String {
    let out = ip_output(&["-n", &ns.name, "-o", "link", "show", dev]);
    out.split("link/ether ").nth(1).unwrap().split(' ').next().unwrap().to_string()
}

#[test]
#[ignore = "needs root, dnsmasq and build/init: run `make test`"]
fn dnsmasq_lease_is_applied_with_its_default_route() {
    let p = pair("imnl", "10.213.11");
    let server = dnsmasq(
        &p.server,
        &p.server_if,
        "lease",
        &["--dhcp-range=10.213.11.50,10.213.11.99,255.255.255.0,2m", "--dhcp-option=option:dns-server,10.213.11.53"],
    );
    let (code, out, err) = imprint_dhcp(&p.client, &[&p.client_if, "--timeout", "30"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let mac = mac_of(&p.client, &p.client_if);
    assert!(out.contains(&format!("interface {} ({mac}), by DHCP", p.client_if)), "{out}");
    assert!(out.contains("router    10.213.11.1\n"), "{out}");
    assert!(out.contains("dns       10.213.11.53\n"), "{out}");
    assert!(out.contains("lease     120 s (renew at 60 s, rebind at 105 s)"), "{out}");
    assert!(out.contains("server    10.213.11.1\n"), "{out}");
    let address = out.split("address   ").nth(1).unwrap().split('/').next().unwrap().to_string();
    assert!(address.starts_with("10.213.11."), "{out}");
    // The kernel has the address and the default route through the router.
    let addrs = ip_output(&["-n", &p.client.name, "-4", "addr", "show", &p.client_if]);
    assert!(addrs.contains(&format!("inet {address}/24")), "{addrs}");
    let routes = ip_output(&["-n", &p.client.name, "route", "show", "default"]);
    assert!(routes.contains(&format!("default via 10.213.11.1 dev {}", p.client_if)), "{routes}");
    // The server saw who we are.
    let log = server.log_text();
    assert!(log.contains(&format!("DHCPACK({}) {address} {mac}", p.server_if)), "{log}");
    assert!(log.contains("vendor class: imprint"), "{log}");
}

#[test]
#[ignore = "needs root, dnsmasq and build/init: run `make test`"]
fn dnsmasq_nak_sends_the_client_back_to_discover() {
    let p = pair("imnn", "10.213.12");
    // dnsmasq offers from a range that only packets without option 50 (requested address)
    // may use, so every REQUEST is refused with a NAK.
    let server = dnsmasq(
        &p.server,
        &p.server_if,
        "nak",
        &[
            "--dhcp-authoritative",
            "--dhcp-match=set:requesting,50",
            "--dhcp-range=tag:!requesting,10.213.12.50,10.213.12.99,255.255.255.0,2m",
        ],
    );
    let (code, out, err) = imprint_dhcp(&p.client, &[&p.client_if, "--timeout", "3"]);
    assert_ne!(code, 0, "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no lease on imnn1 within 3 s (the server refused"), "{err}");
    assert!(err.contains("requests with DHCPNAK"), "{err}");
    let log = server.log_text();
    let nak = log.find("DHCPNAK(imnn0)").unwrap_or_else(|| panic!("no NAK:\n{log}"));
    assert!(log[nak..].contains("DHCPDISCOVER(imnn0)"), "no DISCOVER after the NAK:\n{log}");
    // Backed off after the second NAK: a handful of rounds, not a flood.
    assert!(log.matches("DHCPNAK(").count() < 10, "{log}");
}

#[test]
#[ignore = "needs root and build/init: run `make test`"]
fn no_server_is_a_clear_error_within_the_bound() {
    let p = pair("imne", "10.213.13");
    let (code, out, err) = imprint_dhcp(&p.client, &[&p.client_if, "--timeout", "2"]);
    assert_ne!(code, 0, "{out}");
    assert_eq!(
        err,
        "imprint: dhcp: DHCP: no lease on imne1 within 2 s (no server answered; 0 bad or foreign packets ignored)\n"
    );
    // An interface that does not exist is a clear error too.
    let (code, _, err) = imprint_dhcp(&p.client, &["imne9", "--timeout", "2"]);
    assert_ne!(code, 0);
    assert_eq!(err, "imprint: dhcp: no Ethernet interface named \"imne9\" (present: imne1)\n");
    drop(p.server);
}

#[test]
#[ignore = "needs root, dnsmasq and build/init: run `make test`"]
fn of_two_links_the_one_with_a_server_wins() {
    // The silent link comes first (lower index): it must not win by being tried first.
    let client = Netns::new("imnt-cli");
    let quiet = Netns::new("imnt-quiet");
    veth(&quiet, "imnt-q0", &client, "imnt-q1");
    quiet.address("imnt-q0", "10.213.14.129/25");
    let server = Netns::new("imnt-srv");
    veth(&server, "imnt0", &client, "imnt1");
    server.address("imnt0", "10.213.14.1/25");
    let _dnsmasq = dnsmasq(&server, "imnt0", "two", &["--dhcp-range=10.213.14.50,10.213.14.99,255.255.255.128,2m"]);
    let (code, out, err) = imprint_dhcp(&client, &["--timeout", "30"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let mac = mac_of(&client, "imnt1");
    assert!(out.contains(&format!("interface imnt1 ({mac}), by DHCP")), "{out}");
    let quiet_addrs = ip_output(&["-n", &client.name, "-4", "addr", "show", "imnt-q1"]);
    assert!(!quiet_addrs.contains("inet "), "the silent link got an address: {quiet_addrs}");
    // Both links were brought up and tried.
    let links = ip_output(&["-n", &client.name, "link", "show", "imnt-q1"]);
    assert!(links.contains(",UP,"), "{links}");
    // A link chosen by its MAC (upper case, dashes) is the only one tried: the silent one.
    let quiet_mac = mac_of(&client, "imnt-q1").to_uppercase().replace(':', "-");
    let (code, _, err) = imprint_dhcp(&client, &[&quiet_mac, "--timeout", "2"]);
    assert_ne!(code, 0);
    assert!(err.contains("no lease on imnt-q1 within 2 s"), "{err}");
}

#[test]
#[ignore = "needs root, kea and build/init: run `make test`"]
fn kea_sees_the_renewal_at_t1_and_the_lease_stays_valid() {
    let p = pair("imnk", "10.213.15");
    p.client.up(&p.client_if); // kea opens no socket on a link without carrier
    let server = kea(&p.server, &p.server_if, "kea", "10.213.15", 4, 1, 3);
    // Hold the lease for 6 s: longer than it lasts, so only renewals keep it.
    let (code, out, err) = imprint_dhcp(&p.client, &[&p.client_if, "--timeout", "30", "--hold", "6", "--release"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("lease     4 s (renew at 1 s, rebind at 3 s)"), "{out}");
    assert!(out.contains("imprint: lease renewed: 4 s from 10.213.15.1"), "{out}");
    assert!(out.ends_with("imprint: lease released\n"), "{out}");
    let address = out.split("address   ").nth(1).unwrap().split('/').next().unwrap().to_string();
    let log = server.log_text();
    // RENEWING: a REQUEST unicast from the leased address to the server (at T1), and kea
    // extends the lease.
    let renew = format!("DHCPREQUEST (type 3) received from {address} to 10.213.15.1");
    assert!(log.contains(&renew), "kea saw no RENEW from {address}:\n{log}");
    assert!(log.matches(&format!("lease {address} has been allocated for 4 seconds")).count() >= 2, "{log}");
    assert!(log.contains(&format!("address {address} was released properly")), "{log}");
}

/// A tap in its own namespace with `<subnet>.1/24`, for a QEMU guest's virtio NIC.
fn tap_namespace(name: &str, subnet: &str) -> Netns {
    let ns = Netns::new(name);
    let tap = format!("{name}-tap");
    imprint_e2e::netns::ip(&["-n", name, "tuntap", "add", "dev", &tap, "mode", "tap"]);
    ns.address(&tap, &format!("{subnet}.1/24"));
    ns
}

fn guest_on_tap(ns: &Netns, append: &str, mac: &str) -> Guest {
    // A long countdown: the guest stays up (reachable) until the test ends and kills it.
    let append = format!("imprint.url=http://10.213.16.1/ imprint.on_error=poweroff imprint.on_error_delay=120 {append}");
    let mut boot = Boot::new("build/initramfs.cpio.gz", &append);
    boot.netns = Some(ns.name.clone());
    let netdev = format!("tap,id=n0,ifname={}-tap,script=no,downscript=no", ns.name);
    let device = format!("virtio-net-pci,netdev=n0,mac={mac}");
    boot.extra = vec!["-netdev".into(), netdev, "-device".into(), device];
    Guest::boot(boot)
}

/// The guest's kernel answers ping at `address`: the address really is applied.
fn assert_pings(ns: &Netns, address: &str) {
    // busybox-static's ping (make setup-test installs it for the shell initramfs).
    let mut ping = ns.command("/bin/busybox");
    ping.args(["ping", "-c", "1", "-W", "10", address]);
    let out = run_bounded(ping, BOUND);
    assert!(out.status.success(), "no answer from {address}: {}{}", text(&out.stdout), text(&out.stderr));
}

#[test]
#[ignore = "needs root, dnsmasq, QEMU and the build artifacts: run `make test`"]
fn qemu_guest_gets_a_lease_from_dnsmasq_and_prints_it() {
    let ns = tap_namespace("imnq", "10.213.16");
    let _server = dnsmasq(
        &ns,
        "imnq-tap",
        "qemu",
        &["--dhcp-range=10.213.16.50,10.213.16.99,255.255.255.0,2m", "--dhcp-option=option:router,10.213.16.1"],
    );
    let guest = guest_on_tap(&ns, "", "52:54:00:13:16:01");
    let at = guest.expect("imprint: network up", BOUND);
    let at = guest.expect_from(at, "interface eth0 (52:54:00:13:16:01), by DHCP", STEP);
    let start = guest.expect_from(at, "address   ", STEP);
    let at = guest.expect_from(start, "/24 (mask 255.255.255.0)", STEP);
    let address = guest.transcript()[start..].split('/').next().unwrap().to_string();
    assert!(address.starts_with("10.213.16."), "{address}");
    let at = guest.expect_from(at, "router    10.213.16.1", STEP);
    guest.expect_from(at, "lease     120 s (renew at 60 s, rebind at 105 s)", STEP);
    // No provisioning server here: the guest goes on trying to fetch its plan (and then
    // counts down for 120 s), reachable all the while.
    assert_pings(&ns, &address);
    assert!(!guest.transcript().contains("Kernel panic"));
}

#[test]
#[ignore = "needs root, QEMU and the build artifacts: run `make test`"]
fn qemu_guest_applies_a_static_ip_from_the_kernel_command_line() {
    let ns = tap_namespace("imns", "10.213.18");
    let guest = guest_on_tap(&ns, "ip=10.213.18.7::10.213.18.1:255.255.255.0:node7:eth0:off:10.213.18.53", "52:54:00:13:18:01");
    let at = guest.expect("imprint: network up", BOUND);
    let at = guest.expect_from(at, "interface eth0 (52:54:00:13:18:01), by static ip=", STEP);
    let at = guest.expect_from(at, "address   10.213.18.7/24 (mask 255.255.255.0)", STEP);
    let at = guest.expect_from(at, "router    10.213.18.1", STEP);
    guest.expect_from(at, "dns       10.213.18.53", STEP);
    assert_pings(&ns, "10.213.18.7");
}

#[test]
#[ignore = "needs root, dnsmasq, nginx and build/init: run make test"]
fn tool_mode_resolves_names_through_resolv_conf() {
    // A namespace with DNS and HTTP on its loopback; `ip netns exec` shows the process
    // /etc/netns/<name>/resolv.conf as its /etc/resolv.conf.
    let ns = Netns::new("imnres");
    let dir = imprint_e2e::netns::temp_dir("imnres");
    let log = dir.join("dnsmasq.log");
    let mut dns = ns
        .command("dnsmasq")
        .args(["--no-daemon", "--conf-file=/dev/null", "--bind-interfaces", "--listen-address=127.0.0.1", "--port=53"])
        .args(["--no-resolv", "--address=/images.test/127.0.0.1", "--log-queries"])
        .arg(format!("--log-facility={}", log.display()))
        .spawn()
        .expect("start dnsmasq");
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/hello.txt"), b"resolved by name\n").unwrap();
    let mut nginx = imprint_e2e::nginx::spawn(ns.command("nginx"), &dir, "127.0.0.1:8080", "");
    let etc = std::path::Path::new("/etc/netns/imnres");
    std::fs::create_dir_all(etc).unwrap();
    std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();

    let mut out = None;
    for _ in 0..100 {
        // Until dnsmasq and nginx listen (a bounded wait: the first tries may be refused).
        let mut get = ns.command(artifact("build/init"));
        get.args(["get", "http://images.test:8080/hello.txt", "--retries", "0"]);
        let run = run_bounded(get, STEP);
        if run.status.success() {
            out = Some(run);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = (dns.kill(), nginx.kill(), dns.wait(), nginx.wait());
    let _ = std::fs::remove_dir_all(etc);
    let out = out.expect("imprint get by name never succeeded");
    assert_eq!(text(&out.stdout), "resolved by name\n");
    let queries = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(queries.contains("query[A] images.test from 127.0.0.1"), "the name was not asked of dnsmasq:\n{queries}");
    let _ = std::fs::remove_dir_all(&dir);
}
