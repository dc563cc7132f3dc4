//! Our walk over DHCP options (RFC 2132): the message type, server, mask, lease times,
//! router list, DNS list, host and domain names, MTU, classless static routes (RFC 3442).
//!
//! An option that runs past the end of the packet, a missing end marker or a length its
//! meaning does not allow makes the whole reply untrustworthy: `parse_reply` says `None`,
//! and the client counts and drops it, never half-trusts it.

use super::dhcp::{class_mask, prefix_len, Lease};
use super::ipconfig::NetConfig;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

/// The BOOTP header's hardware type for Ethernet (also the client identifier's first byte).
pub const HTYPE_ETHERNET: u8 = 1;
/// Where the options start in a message: after the BOOTP header and the magic cookie.
pub const AREA_START: usize = 240;
pub const MAGIC: u32 = 0x6382_5363;

/// What a client asks the server for (option 55), in the order of importance to us: mask,
/// classless routes, router, DNS, host name, domain name, MTU, broadcast address, lease
/// time, T1, T2.
pub const PARAMETER_REQUEST_LIST: [u8; 11] = [1, 121, 3, 6, 12, 15, 26, 28, 51, 58, 59];

/// A route from option 121.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub destination: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
}

/// A list of addresses (routers, DNS servers): at least one, whole.
fn addresses(data: &[u8]) -> Option<&[[u8; 4]]> {
    let (list, rest) = data.as_chunks::<4>();
    (!list.is_empty() && rest.is_empty()).then_some(list)
}

/// A name: printable ASCII only, so a hostile server cannot put control characters on
/// the console.
fn name(data: &[u8]) -> Option<String> {
    // Some servers count a trailing NUL in the length.
    let data = data.strip_suffix(&[0]).unwrap_or(data);
    let printable = !data.is_empty() && data.iter().all(|b| b.is_ascii_graphic());
    printable.then(|| core::str::from_utf8(data).map(String::from).ok())?
}

/// RFC 3442: (width, significant destination octets, gateway) repeated.
// Out of line: inlined into `parse_reply`, it makes the init bigger.
#[inline(never)]
fn classless_routes(mut rest: &[u8]) -> Option<Vec<Route>> {
    let mut routes = Vec::new();
    while let Some((&width, tail)) = rest.split_first() {
        let octets = usize::from(width).div_ceil(8);
        let (dest, tail) = tail.split_at_checked(octets).filter(|_| width <= 32)?;
        let (gateway, tail) = tail.split_first_chunk()?;
        let mut d = [0u8; 4];
        d.get_mut(..octets)?.copy_from_slice(dest);
        let (destination, gateway) = (d.into(), Ipv4Addr::from(*gateway));
        routes.push(Route { destination, prefix_len: width, gateway });
        rest = tail;
    }
    Some(routes)
}

/// Reads a reply's options area (the bytes after the magic cookie) straight into its
/// message type and the lease it offers or grants on `address` (a missing server
/// identifier is 0.0.0.0, a missing lease time 0). Pads are skipped, the end option stops
/// the walk.
// Out of line: inlined into the client, it makes the init bigger.
#[inline(never)]
pub fn parse_reply(mut rest: &[u8], address: Ipv4Addr) -> Option<(u8, Lease)> {
    let (mut kind, mut mask, mut router, mut times) = (None, None, None, [None; 3]);
    let (mut server, mut domain) = (Ipv4Addr::UNSPECIFIED, None);
    let (routes, dns, mtu, hostname) = (Vec::new(), Vec::new(), None, None);
    let mut config =
        NetConfig { address, prefix_len: 0, gateway: None, routes, dns, mtu, hostname };
    loop {
        let (code, data, tail) = match rest {
            [255, ..] => break,                   // the end option
            [0, tail @ ..] => (0, &[][..], tail), // a pad
            [c, n, tail @ ..] => tail.split_at_checked(usize::from(*n)).map(|(d, t)| (*c, d, t))?,
            _ => return None,
        };
        rest = tail;
        // The fixed-size options must have their size: one word, or two bytes, or one.
        let word = <[u8; 4]>::try_from(data).ok().map(u32::from_be_bytes);
        match code {
            53 => kind = Some(u8::from_be_bytes(data.try_into().ok()?)),
            54 => server = word?.into(),
            1 => mask = Some(prefix_len(word?.into())?),
            51 => times[0] = Some(word?), // the lease time
            58 => times[1] = Some(word?), // T1
            59 => times[2] = Some(word?), // T2
            26 => config.mtu = Some(u16::from_be_bytes(data.try_into().ok()?)),
            3 => router = addresses(data)?.first().map(|a| Ipv4Addr::from(*a)),
            6 => config.dns = addresses(data)?.iter().map(|a| Ipv4Addr::from(*a)).collect(),
            12 => config.hostname = Some(name(data)?),
            15 => domain = Some(name(data)?),
            121 => config.routes = classless_routes(data)?,
            _ => {}
        }
    }
    let lease_secs = times[0].unwrap_or(0);
    // T1 and T2 as sent if they are in order, else RFC 2131's defaults (1/2 and 7/8).
    let default = (lease_secs / 2, lease_secs / 8 * 7 + lease_secs % 8 * 7 / 8);
    let (t1, t2) = (times[1].unwrap_or(default.0), times[2].unwrap_or(default.1));
    let (renew_secs, rebind_secs) = if t1 <= t2 && t2 <= lease_secs { (t1, t2) } else { default };
    config.prefix_len = mask.or_else(|| prefix_len(class_mask(address)))?;
    // With classless routes, RFC 3442 says the router option is ignored.
    let default_route = config.routes.iter().find(|r| r.prefix_len == 0).map(|r| r.gateway);
    config.gateway = if config.routes.is_empty() { router } else { default_route };
    // Smallest MTU IPv4 allows (RFC 791); a smaller option 26 is ignored.
    config.mtu = config.mtu.filter(|m| *m >= 68);
    Some((kind?, Lease { config, domain, server, lease_secs, renew_secs, rebind_secs }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAD: u8 = 0;
    const END: u8 = 255;
    const CLASSLESS_ROUTES: u8 = 121;

    const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);

    fn parse(area: &[u8]) -> Option<(u8, Lease)> {
        parse_reply(area, ADDRESS)
    }

    #[test]
    fn walks_pads_and_stops_at_end() {
        let area = [PAD, PAD, 53, 1, 2, PAD, 3, 4, 10, 0, 0, 1, END, 99, 99];
        let (kind, lease) = parse(&area).unwrap();
        assert_eq!((kind, lease.config.gateway), (2, Some(Ipv4Addr::new(10, 0, 0, 1))));
        // Nothing else given: the class mask, no server, no lease time.
        assert_eq!((lease.config.address, lease.config.prefix_len), (ADDRESS, 8));
        assert_eq!((lease.server, lease.lease_secs), (Ipv4Addr::UNSPECIFIED, 0));
    }

    #[test]
    fn overrun_and_missing_end_are_errors() {
        assert_eq!(parse(&[53, 1, 2, 3, 8, 10, 0, 0, 1, END]), None);
        assert_eq!(parse(&[53, 1, 2, 3]), None);
        assert_eq!(parse(&[53, 1, 2]), None);
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[END]), None, "no message type");
    }

    #[test]
    fn reads_lists_names_times_mtu() {
        let area = [
            53, 1, 5, // ACK
            3, 8, 10, 0, 0, 1, 10, 0, 0, 2, // two routers
            6, 4, 1, 1, 1, 1, // dns
            12, 4, b'n', b'o', b'd', b'e', // hostname
            15, 8, b'e', b'x', b'.', b'o', b'r', b'g', 0,
            0, // domain: NULs are stripped? one only
            26, 2, 0x05, 0xdc, // mtu 1500
            58, 4, 0, 0, 0, 30, 59, 4, 0, 0, 0, 50, // T1, T2
            51, 4, 0, 0, 0, 60, // lease time
            1, 4, 255, 255, 255, 0, // mask
            54, 4, 10, 0, 0, 1, // server
            END,
        ];
        // Two NULs: only one trailing NUL is tolerated, so this domain is refused.
        assert_eq!(parse(&area), None);
        let mut fixed = area.to_vec();
        fixed[33] = b'x'; // the first of the two NULs
        let (_, got) = parse(&fixed).unwrap();
        assert_eq!(got.config.gateway, Some(Ipv4Addr::new(10, 0, 0, 1)), "the first router");
        assert_eq!(got.config.dns, [Ipv4Addr::new(1, 1, 1, 1)]);
        assert_eq!(got.config.hostname.as_deref(), Some("node"));
        assert_eq!(got.domain.as_deref(), Some("ex.orgx"));
        assert_eq!(
            (got.config.mtu, got.renew_secs, got.rebind_secs, got.lease_secs),
            (Some(1500), 30, 50, 60)
        );
        assert_eq!((got.config.prefix_len, got.server), (24, Ipv4Addr::new(10, 0, 0, 1)));
        // T2 after the lease's end: RFC 2131's defaults instead.
        fixed[area.len() - 20] = 61;
        let (_, got) = parse(&fixed).unwrap();
        assert_eq!((got.renew_secs, got.rebind_secs), (30, 52));
        // An MTU below IPv4's minimum is ignored.
        fixed[37] = 0;
        fixed[38] = 67;
        assert_eq!(parse(&fixed).unwrap().1.config.mtu, None);
    }

    #[test]
    fn bad_lengths_and_hostile_names_are_refused() {
        assert_eq!(parse(&[53, 1, 5, 3, 3, 1, 2, 3, END]), None);
        assert_eq!(parse(&[53, 1, 5, 26, 1, 5, END]), None);
        assert_eq!(parse(&[53, 1, 5, 12, 2, b'a', 0x1b, END]), None);
        assert_eq!(parse(&[53, 1, 5, 51, 2, 0, 1, END]), None);
        assert_eq!(parse(&[53, 2, 5, 5, END]), None);
        assert_eq!(parse(&[53, 1, 5, 1, 4, 255, 0, 255, 0, END]), None, "a mask with holes");
        assert_eq!(
            parse(&[53, 1, 5, 43, 2, 0, 1, END]).map(|r| r.0),
            Some(5),
            "unused options pass"
        );
    }

    #[test]
    fn classless_routes_per_rfc_3442() {
        // 0.0.0.0/0 via 10.0.0.1; 10.213.0.0/16 via 10.0.0.2; 192.168.1.128/25 via 10.0.0.3
        let data = [0, 10, 0, 0, 1, 16, 10, 213, 10, 0, 0, 2, 25, 192, 168, 1, 128, 10, 0, 0, 3];
        let mut area = alloc::vec![53, 1, 5, 3, 4, 9, 9, 9, 9, CLASSLESS_ROUTES, data.len() as u8];
        area.extend_from_slice(&data);
        area.push(END);
        let config = parse(&area).unwrap().1.config;
        // The default route among them is the gateway: the router option is ignored.
        assert_eq!(config.gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
        let routes = config.routes;
        assert_eq!(routes.len(), 3);
        assert_eq!(
            routes[0],
            Route {
                destination: Ipv4Addr::UNSPECIFIED,
                prefix_len: 0,
                gateway: Ipv4Addr::new(10, 0, 0, 1)
            }
        );
        assert_eq!(routes[1].destination, Ipv4Addr::new(10, 213, 0, 0));
        assert_eq!(
            (routes[2].destination, routes[2].prefix_len),
            (Ipv4Addr::new(192, 168, 1, 128), 25)
        );
        assert!(classless_routes(&[33, 0, 0, 0, 0, 1, 2, 3, 4]).is_none(), "width over 32");
        assert!(classless_routes(&[24, 10, 0]).is_none(), "truncated destination");
        assert!(classless_routes(&[8, 10, 1, 2, 3]).is_none(), "truncated gateway");
    }
}
