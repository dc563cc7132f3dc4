//! Tool mode's network: `imprint dhcp`, and the name servers tool mode resolves with.

use super::EXIT_USAGE;
use crate::net::{bring_up, sys, Dotted, NetError, Summary, DEFAULT_TIMEOUT};
use crate::sys::poll::{self, READABLE};
use crate::sys::time::monotonic;
use crate::sys::Errno;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::time::Duration;

/// The IPv4 name servers of /etc/resolv.conf (`nameserver a.b.c.d` lines): what tool mode
/// resolves with on a host or in a rescue shell, where there is no lease.
pub fn system_servers() -> Vec<Ipv4Addr> {
    let text = crate::sys::fs::read_file("/etc/resolv.conf", 64 * 1024).unwrap_or_default();
    servers_in(&text)
}

/// The `nameserver` addresses of a resolv.conf.
pub fn servers_in(text: &[u8]) -> Vec<Ipv4Addr> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = core::str::from_utf8(line).ok()?;
            let mut words = line.split_ascii_whitespace();
            (words.next() == Some("nameserver")).then_some(())?;
            crate::net::static_ip::parse_ipv4(words.next()?)
        })
        .collect()
}

/// `imprint dhcp [<iface>] [--release] [--timeout S] [--hold S]`: gets a lease on one link
/// (without <iface>: on every Ethernet link at once, as PID 1 does), applies it, prints it;
/// with `--hold`, keeps it (renewing) for S seconds; with `--release`, gives it back at the
/// end. Returns the exit status.
pub fn dhcp_command(args: &[&[u8]]) -> i32 {
    let (mut iface, mut release) = (None, false);
    let (mut timeout, mut hold) = (DEFAULT_TIMEOUT.as_secs() as u32, 0);
    let mut rest = args.iter().map(|a| core::str::from_utf8(a).unwrap_or("\0"));
    while let Some(arg) = rest.next() {
        let seconds = match arg {
            "--release" => {
                release = true;
                continue;
            }
            "--timeout" => &mut timeout,
            "--hold" => &mut hold,
            name if iface.is_none() && !name.starts_with('-') && name != "\0" => {
                iface = Some(name);
                continue;
            }
            _ => return usage("unexpected argument"),
        };
        match rest.next().and_then(|v| super::number(v)?.try_into().ok()) {
            Some(value) => *seconds = value,
            None => return usage(&text!("{arg} needs a number of seconds")),
        }
    }
    match hold_lease(iface, timeout, hold, release) {
        Ok(()) => 0,
        Err(e) => {
            errln!("imprint: dhcp: {e}");
            1
        }
    }
}

fn usage(what: &str) -> i32 {
    errln!("imprint: dhcp: {what}; see imprint --help");
    EXIT_USAGE
}

fn hold_lease(iface: Option<&str>, timeout: u32, hold: u32, release: bool) -> Result<(), NetError> {
    let network = bring_up(None, iface, Duration::from_secs(timeout.into()))?;
    say!("imprint: network up\n{}", Summary(&network));
    let mut client = network.dhcp.expect("bring_up(ip=dhcp) returns a DHCP client");
    let end = monotonic() + Duration::from_secs(hold.into());
    while monotonic() < end {
        if client.tick(monotonic())? {
            let l = client.lease();
            sayln!("imprint: lease renewed: {} s from {}", l.lease_secs, Dotted(l.server));
        }
        // Until `tick` has work to do, a reply comes, or the end.
        let wake =
            Duration::from_millis(client.client.next_wakeup()).min(end).saturating_sub(monotonic());
        match poll::wait(client.packets.raw(), READABLE, wake) {
            Err(Errno::ETIMEDOUT) | Ok(()) => {}
            Err(e) => return Err(sys("waiting for DHCP replies", client.link.name)(e)),
        }
    }
    if release {
        client.release()?;
        sayln!("imprint: lease released");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_name_servers() {
        let conf = b"# generated\nsearch lab\nnameserver 10.0.0.53\nnameserver  fd00::1\n  nameserver 192.168.1.1 # home\noptions ndots:2\nnameserver\n";
        assert_eq!(servers_in(conf), [Ipv4Addr::new(10, 0, 0, 53), Ipv4Addr::new(192, 168, 1, 1)]);
        assert!(servers_in(b"").is_empty());
    }
}
