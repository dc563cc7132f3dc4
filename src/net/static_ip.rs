//! The kernel's `ip=` parameter (Documentation/admin-guide/nfs/nfsroot.rst), read the way
//! the kernel's own ipconfig reads it:
//! `ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>:<ntp0>`,
//! every field optional, or one word: `dhcp`, `on`, `any`, `both`, `bootp` (DHCP), `off`, `none`.

use super::dhcp::{class_mask, prefix_len};
use super::ipconfig::NetConfig;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

/// How to configure the network. (The boot server's address, field 2, is checked and
/// not kept: imprint has no use for it.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSetting {
    /// The interface to use (else: DHCP on every Ethernet link, or a static address on
    /// the first link with carrier).
    pub device: Option<String>,
    /// With DHCP: the host name to send (a static one is in `fixed`).
    pub hostname: Option<String>,
    /// A static configuration, used as it is; `None`: ask DHCP.
    pub fixed: Option<NetConfig>,
}

/// The fields' names, for messages (and, as an 11th, their count).
const FIELDS: &str = "client address:server address:gateway:netmask:hostname:device:autoconf:dns0:dns1:ntp0:field count";

/// Field `i` of `ip=` is not valid.
fn invalid(i: usize) -> String {
    text!("ip=: the {} field is not valid", FIELDS.split(':').nth(i).unwrap_or_default())
}

/// A dotted quad (`10.0.0.1`): exactly four decimal numbers up to 255, no leading `+`.
/// Ours rather than core's `FromStr`, which costs several times the bytes in the init.
pub fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.as_bytes().split(|b| *b == b'.');
    for octet in octets.iter_mut() {
        let part = parts.next().filter(|p| (1..=3).contains(&p.len()))?;
        let value = part
            .iter()
            .try_fold(0u16, |n, d| Some(n * 10 + u16::from(d.is_ascii_digit().then(|| d - b'0')?)));
        *octet = u8::try_from(value?).ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// Parses the value of `ip=` (absent means `dhcp`). An error names the field that is not
/// valid, or says that autoconfiguration is off (`off`, `none`) and no address is given.
// Out of line: inlined into `bring_up`, it makes the init bigger.
#[inline(never)]
pub fn parse(value: Option<&str>) -> Result<IpSetting, String> {
    let (mut fields, mut count) = ([""; 10], 0);
    for text in value.unwrap_or("dhcp").split(':') {
        *fields.get_mut(count).ok_or_else(|| invalid(10))? = text;
        count += 1;
    }
    // One word is the autoconf method alone; else every field but the names is an address.
    let method = if count == 1 { core::mem::take(&mut fields[0]) } else { fields[6] };
    let dhcp = ["", "on", "any", "dhcp", "both", "bootp"].contains(&method);
    if !dhcp && method != "off" && method != "none" {
        return Err(invalid(6));
    }
    let mut addresses = [None; 10];
    for (i, text) in fields.iter().enumerate() {
        if !text.is_empty() && !matches!(i, 4..=6) {
            addresses[i] = Some(parse_ipv4(text).ok_or_else(|| invalid(i))?);
        }
    }
    let [hostname, device] = [fields[4], fields[5]].map(|t| (!t.is_empty()).then(|| t.into()));
    // Without an address, like the kernel: autoconfigure unless told not to. With an
    // address and a method, the kernel asks the server too (the address is a hint).
    let Some(client) = addresses[0].filter(|_| fields[6].is_empty() || !dhcp) else {
        if dhcp {
            return Ok(IpSetting { device, hostname, fixed: None });
        }
        return Err("ip=: autoconfiguration is off and no client address is given; imprint needs the network".into());
    };
    let mask = addresses[3].unwrap_or_else(|| class_mask(client));
    let prefix_len = prefix_len(mask).ok_or_else(|| invalid(3))?;
    let dns = addresses[7..9].iter().flatten().copied().collect();
    let (gateway, routes, mtu) = (addresses[2], Vec::new(), None);
    let config = NetConfig { address: client, prefix_len, gateway, routes, dns, mtu, hostname };
    Ok(IpSetting { device, hostname: None, fixed: Some(config) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    fn dhcp(device: Option<&str>) -> IpSetting {
        IpSetting { device: device.map(String::from), hostname: None, fixed: None }
    }

    #[test]
    fn dotted_quads() {
        assert_eq!(parse_ipv4("10.213.0.255"), Some(Ipv4Addr::new(10, 213, 0, 255)));
        assert_eq!(parse_ipv4("0.0.0.0"), Some(Ipv4Addr::UNSPECIFIED));
        for bad in [
            "",
            "10.0.0",
            "10.0.0.1.",
            "10.0.0.256",
            "10.0.0.+1",
            "10..0.1",
            "1000.0.0.1",
            "a.b.c.d",
            "10.0.0.1 ",
        ] {
            assert_eq!(parse_ipv4(bad), None, "{bad}");
        }
    }

    #[test]
    fn single_words() {
        assert_eq!(parse(None), Ok(dhcp(None)));
        for word in ["dhcp", "on", "any", "both", "bootp"] {
            assert_eq!(parse(Some(word)), Ok(dhcp(None)), "{word}");
        }
        let off = "ip=: autoconfiguration is off and no client address is given; imprint needs the network";
        assert_eq!(parse(Some("off")), Err(off.into()));
        assert_eq!(parse(Some("none")), Err(off.into()));
        assert_eq!(parse(Some("rarp")), Err("ip=: the autoconf field is not valid".into()));
    }

    #[test]
    fn every_field_empty_means_dhcp_on_every_link() {
        assert_eq!(parse(Some(":::::::::")), Ok(dhcp(None)));
        assert_eq!(parse(Some("::::::")), Ok(dhcp(None)));
        assert_eq!(parse(Some(":")), Ok(dhcp(None)));
    }

    #[test]
    fn device_and_method_only() {
        assert_eq!(parse(Some(":::::eth1:dhcp")), Ok(dhcp(Some("eth1"))));
        assert!(parse(Some(":::::eth1:off")).unwrap_err().contains("autoconfiguration is off"));
        assert_eq!(
            parse(Some("10.0.0.5::::node7:eth0:dhcp")),
            Ok(IpSetting {
                device: Some("eth0".into()),
                hostname: Some("node7".into()),
                fixed: None
            })
        );
    }

    #[test]
    fn full_static() {
        let got = parse(Some("10.213.1.5:10.213.1.1:10.213.1.254:255.255.255.0:node7:eth0:off:10.213.1.53:9.9.9.9:1.2.3.4"));
        assert_eq!(
            got,
            Ok(IpSetting {
                hostname: None,
                fixed: Some(NetConfig {
                    address: Ipv4Addr::new(10, 213, 1, 5),
                    prefix_len: 24,
                    gateway: Some(Ipv4Addr::new(10, 213, 1, 254)),
                    routes: Vec::new(),
                    dns: alloc::vec![Ipv4Addr::new(10, 213, 1, 53), Ipv4Addr::new(9, 9, 9, 9)],
                    mtu: None,
                    hostname: Some("node7".into()),
                }),
                device: Some("eth0".into()),
            })
        );
    }

    #[test]
    fn static_with_empty_fields_takes_the_class_mask() {
        let Ok(IpSetting { fixed: Some(c), device, .. }) = parse(Some("10.213.1.5::::::::")) else {
            panic!()
        };
        assert_eq!((c.prefix_len, c.gateway, device, c.dns.len()), (8, None, None, 0));
        let Ok(IpSetting { fixed: Some(c), .. }) = parse(Some("192.168.7.9:")) else { panic!() };
        assert_eq!(c.prefix_len, 24);
        let Ok(IpSetting { fixed: Some(c), .. }) = parse(Some("172.16.0.9:::255.255.255.128::::"))
        else {
            panic!()
        };
        assert_eq!(c.prefix_len, 25);
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = |v: &str| {
            let e = parse(Some(v)).unwrap_err();
            e.strip_prefix("ip=: the ")
                .unwrap()
                .strip_suffix(" field is not valid")
                .unwrap()
                .to_string()
        };
        assert_eq!(bad("10.0.0.300::::"), "client address");
        assert_eq!(bad("10.0.0.3::x:"), "gateway");
        assert_eq!(bad("10.0.0.3:::255.0.255.0"), "netmask");
        assert_eq!(bad("10.0.0.3::::::off:dns"), "dns0");
        assert_eq!(bad("::::::maybe"), "autoconf");
        assert_eq!(bad("1:2:3:4:5:6:7:8:9:10:11"), "field count");
        let shown = |ip| crate::net::bring_up(Some(ip), None, Duration::ZERO).err().unwrap();
        assert_eq!(shown("10.0.0.300::::"), "ip=: the client address field is not valid");
    }
}
