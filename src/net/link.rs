//! Links: which interfaces are Ethernet, their MACs, bringing them up, their carrier.

use crate::sys::netdev::{IfName, NetDev, IFF_LOOPBACK};
use crate::sys::{Errno, Result};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// ARPHRD_ETHER: the hardware type of Ethernet (and of veth, virtio-net, e1000...).
const ARPHRD_ETHER: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub name: IfName,
    pub index: i32,
    pub mac: [u8; 6],
}

/// A MAC address shown as `aa:bb:cc:dd:ee:ff`.
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Reads `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`, any case.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let hex = |b: &u8| (*b as char).to_digit(16);
    let mut mac = [0u8; 6];
    let mut parts = text.as_bytes().split(|b| matches!(b, b':' | b'-'));
    for byte in &mut mac {
        let Some([h, l]) = parts.next() else { return None };
        *byte = (hex(h)? * 16 + hex(l)?) as u8;
    }
    parts.next().is_none().then_some(mac)
}

/// The interface names in /proc/net/dev's table: two header lines, then one line per
/// interface of this network namespace, `  name: counters...`, in the kernel's order.
fn names_in(table: &[u8]) -> impl Iterator<Item = IfName> + '_ {
    table.split(|b| *b == b'\n').skip(2).filter_map(|line| {
        let colon = line.iter().position(|b| *b == b':')?;
        IfName::new(core::str::from_utf8(line[..colon].trim_ascii()).ok()?)
    })
}

/// Whether `link` is the one `wanted` names (`imprint.iface=`, a name or a MAC); any link
/// when nothing is wanted.
pub fn is_wanted(link: &Link, wanted: Option<&str>) -> bool {
    wanted.is_none_or(|want| link.name.as_str() == want || Some(link.mac) == parse_mac(want))
}

/// The Ethernet interfaces `wanted` names (all by default), loopback and other link types
/// left out, and the names of every Ethernet interface, for messages. The names come from
/// /proc/net/dev: musl's if_nameindex would add a netlink client to the init, and listing
/// /sys/class/net a sort.
// Out of line: inlined into `bring_up`, it makes the init bigger.
#[inline(never)]
pub fn ethernet_links(dev: &NetDev, wanted: Option<&str>) -> Result<(Vec<Link>, String)> {
    let table = crate::sys::fs::read_file("/proc/net/dev", 1 << 20)?;
    let (mut links, mut present) = (Vec::new(), String::new());
    for name in names_in(&table) {
        // Ethernet and not loopback. A link gone between the listing and the question
        // (a hot-unplugged NIC, a virtual link deleted) is not ours to use.
        match dev.hardware(name) {
            Ok((ARPHRD_ETHER, mac, index, flags)) if flags & IFF_LOOPBACK == 0 => {
                add_name(&mut present, name);
                let link = Link { name, index, mac };
                if is_wanted(&link, wanted) {
                    links.push(link);
                }
            }
            Err(e) if e != Errno(libc::ENODEV) => return Err(e),
            _ => {}
        }
    }
    Ok((links, present))
}

/// Adds `name` to a list for messages: `eth0, eth1`.
pub fn add_name(list: &mut String, name: IfName) {
    *list += if list.is_empty() { "" } else { ", " };
    *list += name.as_str();
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn macs_parse_and_print() {
        let mac = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];
        assert_eq!(parse_mac("52:54:00:AB:cd:ef"), Some(mac));
        assert_eq!(parse_mac("52-54-00-ab-cd-ef"), Some(mac));
        assert_eq!(Mac(mac).to_string(), "52:54:00:ab:cd:ef");
        for bad in [
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:ef:01",
            "5:54:00:ab:cd:ef0",
            "zz:54:00:ab:cd:ef",
            "",
            "+f:54:00:ab:cd:ef",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn select_by_name_or_mac() {
        let link = |name: &str, last| Link {
            name: IfName::new(name).unwrap(),
            index: 2,
            mac: [2, 0, 0, 0, 0, last],
        };
        let all = alloc::vec![link("eth0", 1), link("eth1", 2)];
        let selected = |wanted| {
            let mut links = all.clone();
            links.retain(|l| is_wanted(l, wanted));
            links
        };
        assert_eq!(selected(None).len(), 2);
        assert_eq!(selected(Some("eth1")), [link("eth1", 2)]);
        assert_eq!(selected(Some("02:00:00:00:00:01")), [link("eth0", 1)]);
        assert!(selected(Some("eth9")).is_empty());
        let mut names = String::new();
        all.iter().for_each(|l| add_name(&mut names, l.name));
        assert_eq!(names, "eth0, eth1");
    }

    #[test]
    fn interfaces_are_listed_and_loopback_is_not_an_ethernet_link() {
        let table = b"Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n    lo: 1 2 3\nimn-eth0: 4 5 6\n\n";
        let names: Vec<IfName> = names_in(table).collect();
        assert_eq!(names, [IfName::new("lo").unwrap(), IfName::new("imn-eth0").unwrap()]);
        let dev = NetDev::open().unwrap();
        let (links, present) = ethernet_links(&dev, None).unwrap();
        assert!(links.iter().all(|l| l.name.as_str() != "lo"), "{links:?}");
        assert!(!present.split(", ").any(|n| n == "lo"), "{present}");
        assert!(ethernet_links(&dev, Some("lo")).unwrap().0.is_empty());
    }
}
