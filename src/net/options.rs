//! Our walk over DHCP options (RFC 2132): the message type, server, mask, lease times,
//! router list, DNS list, host and domain names, MTU, classless static routes (RFC 3442).
//!
//! An option that runs past the end of the packet, a missing end marker or a length its
//! meaning does not allow makes the whole reply untrustworthy: `parse_reply` says `None`,
//! and the client counts and drops it, never half-trusts it.

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

/// The options of a server's reply that imprint uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyOptions {
    /// Option 53: OFFER, ACK, NAK...
    pub message_type: Option<u8>,
    pub server_id: Option<Ipv4Addr>,
    pub subnet_mask: Option<Ipv4Addr>,
    pub lease_secs: Option<u32>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
    pub domain: Option<String>,
    pub mtu: Option<u16>,
    pub renewal_secs: Option<u32>,
    pub rebinding_secs: Option<u32>,
    pub routes: Vec<Route>,
}

/// A list of addresses (routers, DNS servers): at least one, whole.
fn addresses(data: &[u8]) -> Option<Vec<Ipv4Addr>> {
    let list = data.chunks_exact(4).map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3])).collect();
    (!data.is_empty() && data.len() % 4 == 0).then_some(list)
}

/// A name: printable ASCII only, so a hostile server cannot put control characters on
/// the console.
fn name(data: &[u8]) -> Option<String> {
    // Some servers count a trailing NUL in the length.
    let data = data.strip_suffix(&[0]).unwrap_or(data);
    let printable = !data.is_empty() && data.iter().all(|b| b.is_ascii_graphic());
    printable.then(|| String::from_utf8_lossy(data).into_owned())
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
        routes.push(Route {
            destination: d.into(),
            prefix_len: width,
            gateway: Ipv4Addr::from(*gateway),
        });
        rest = tail;
    }
    Some(routes)
}

/// Walks a reply's options area (the bytes after the magic cookie): pads are skipped, the
/// end option stops it.
// Out of line: inlined into the client, it makes the init bigger.
#[inline(never)]
pub fn parse_reply(mut rest: &[u8]) -> Option<ReplyOptions> {
    let mut out = ReplyOptions::default();
    loop {
        let (code, data) = match rest {
            [255, ..] => return Some(out), // the end option
            [0, tail @ ..] => {
                rest = tail; // a pad
                continue;
            }
            [code, len, tail @ ..] => {
                let (data, tail) = tail.split_at_checked(usize::from(*len))?;
                rest = tail;
                (*code, data)
            }
            _ => return None,
        };
        // The fixed-size options must have their size: one word, or two bytes, or one.
        let word = data.first_chunk::<4>().filter(|_| data.len() == 4);
        let word = || word.map(|w| u32::from_be_bytes(*w));
        match code {
            53 => out.message_type = Some(*data.first().filter(|_| data.len() == 1)?),
            54 => out.server_id = Some(word()?.into()),
            1 => out.subnet_mask = Some(word()?.into()),
            51 => out.lease_secs = Some(word()?),
            58 => out.renewal_secs = Some(word()?),   // T1
            59 => out.rebinding_secs = Some(word()?), // T2
            26 => {
                out.mtu = Some(u16::from_be_bytes(*data.first_chunk().filter(|_| data.len() == 2)?))
            }
            3 => out.routers = addresses(data)?,
            6 => out.dns = addresses(data)?,
            12 => out.hostname = Some(name(data)?),
            15 => out.domain = Some(name(data)?),
            121 => out.routes = classless_routes(data)?,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAD: u8 = 0;
    const END: u8 = 255;
    const CLASSLESS_ROUTES: u8 = 121;

    #[test]
    fn walks_pads_and_stops_at_end() {
        let area = [PAD, PAD, 53, 1, 2, PAD, 3, 4, 10, 0, 0, 1, END, 99, 99];
        let got = parse_reply(&area).unwrap();
        assert_eq!((got.message_type, got.routers), (Some(2), [Ipv4Addr::new(10, 0, 0, 1)].into()));
    }

    #[test]
    fn overrun_and_missing_end_are_errors() {
        assert_eq!(parse_reply(&[3, 8, 10, 0, 0, 1, END]), None);
        assert_eq!(parse_reply(&[3]), None);
        assert_eq!(parse_reply(&[53, 1, 2]), None);
        assert_eq!(parse_reply(&[]), None);
    }

    #[test]
    fn reads_lists_names_times_mtu() {
        let area = [
            3, 8, 10, 0, 0, 1, 10, 0, 0, 2, // two routers
            6, 4, 1, 1, 1, 1, // dns
            12, 4, b'n', b'o', b'd', b'e', // hostname
            15, 8, b'e', b'x', b'.', b'o', b'r', b'g', 0,
            0, // domain: NULs are stripped? one only
            26, 2, 0x05, 0xdc, // mtu 1500
            58, 4, 0, 0, 0, 30, 59, 4, 0, 0, 0, 50, END,
        ];
        // Two NULs: only one trailing NUL is tolerated, so this domain is refused.
        assert_eq!(parse_reply(&area), None);
        let mut fixed = area.to_vec();
        fixed[30] = b'x'; // the first of the two NULs
        let got = parse_reply(&fixed).unwrap();
        assert_eq!(got.routers, [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]);
        assert_eq!(got.dns, [Ipv4Addr::new(1, 1, 1, 1)]);
        assert_eq!(got.hostname.as_deref(), Some("node"));
        assert_eq!(got.domain.as_deref(), Some("ex.orgx"));
        assert_eq!(
            (got.mtu, got.renewal_secs, got.rebinding_secs),
            (Some(1500), Some(30), Some(50))
        );
    }

    #[test]
    fn bad_lengths_and_hostile_names_are_refused() {
        assert_eq!(parse_reply(&[3, 3, 1, 2, 3, END]), None);
        assert_eq!(parse_reply(&[26, 1, 5, END]), None);
        assert_eq!(parse_reply(&[12, 2, b'a', 0x1b, END]), None);
        assert_eq!(parse_reply(&[51, 2, 0, 1, END]), None);
        assert_eq!(parse_reply(&[53, 2, 5, 5, END]), None);
        assert_eq!(
            parse_reply(&[43, 2, 0, 1, END]),
            Some(ReplyOptions::default()),
            "unused options pass"
        );
    }

    #[test]
    fn classless_routes_per_rfc_3442() {
        // 0.0.0.0/0 via 10.0.0.1; 10.213.0.0/16 via 10.0.0.2; 192.168.1.128/25 via 10.0.0.3
        let data = [0, 10, 0, 0, 1, 16, 10, 213, 10, 0, 0, 2, 25, 192, 168, 1, 128, 10, 0, 0, 3];
        let mut area = alloc::vec![CLASSLESS_ROUTES, data.len() as u8];
        area.extend_from_slice(&data);
        area.push(END);
        let routes = parse_reply(&area).unwrap().routes;
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
