//! Applying a configuration to a link: address, netmask, MTU, routes (as klibc ipconfig
//! does, with the classic ioctls). The same path serves a DHCP lease, a static `ip=` and
//! the plan's `address`/`gateway`/`nameserver`.

use super::dhcp::{mask_of, Lease};
use super::link::Link;
use super::options::Route;
use super::static_ip::parse_ipv4;
use crate::sys::netdev::NetDev;
use crate::sys::Errno;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

/// What a link is configured with, whatever its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// Classless static routes (option 121); a default route among them is `gateway`.
    pub routes: Vec<Route>,
    pub dns: Vec<Ipv4Addr>,
    pub mtu: Option<u16>,
    pub hostname: Option<String>,
}

/// Smallest MTU IPv4 allows (RFC 791); a smaller option 26 is ignored.
const MIN_MTU: u16 = 68;

impl NetConfig {
    pub fn from_lease(lease: &Lease) -> NetConfig {
        NetConfig {
            address: lease.address,
            prefix_len: lease.prefix_len,
            gateway: lease.gateway(),
            routes: lease.options.routes.clone(),
            dns: lease.options.dns.clone(),
            mtu: lease.options.mtu.filter(|m| *m >= MIN_MTU),
            hostname: lease.options.hostname.clone(),
        }
    }

    /// From the plan's `address` (CIDR, `10.0.0.5/24`), `gateway` and `nameserver`;
    /// `None` if the address is not a CIDR or a field not an address.
    pub fn from_plan(
        address: &str,
        gateway: Option<&str>,
        nameserver: Option<&str>,
    ) -> Option<NetConfig> {
        let (addr, len) = address.split_once('/')?;
        let prefix_len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
        let parse = |t: Option<&str>| {
            t.filter(|t| !t.is_empty()).map(|t| parse_ipv4(t).ok_or(())).transpose()
        };
        Some(NetConfig {
            address: parse_ipv4(addr)?,
            prefix_len,
            gateway: parse(gateway).ok()?,
            routes: Vec::new(),
            dns: parse(nameserver).ok()?.into_iter().collect(),
            mtu: None,
            hostname: None,
        })
    }
}

/// Which step of applying failed, for the error message.
pub type Step = &'static str;

/// Applies `config` to `link` (already up). Returns the step and errno of a failure.
pub fn apply(dev: &NetDev, link: &Link, config: &NetConfig) -> Result<(), (Step, Errno)> {
    let name = link.name;
    dev.set_address(name, config.address.octets()).map_err(|e| ("setting the address", e))?;
    dev.set_netmask(name, mask_of(config.prefix_len).octets())
        .map_err(|e| ("setting the netmask", e))?;
    if let Some(mtu) = config.mtu {
        dev.set_mtu(name, mtu).map_err(|e| ("setting the MTU", e))?;
    }
    for route in config.routes.iter().filter(|r| r.prefix_len != 0) {
        let mask = mask_of(route.prefix_len).octets();
        dev.add_route(name, route.destination.octets(), mask, route.gateway.octets())
            .map_err(|e| ("adding a classless static route", e))?;
    }
    if let Some(gateway) = config.gateway {
        dev.add_route(name, [0; 4], [0; 4], gateway.octets())
            .map_err(|e| ("adding the default route", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_fields() {
        let c =
            NetConfig::from_plan("10.213.0.9/16", Some("10.213.0.1"), Some("10.213.0.53")).unwrap();
        assert_eq!((c.address, c.prefix_len), (Ipv4Addr::new(10, 213, 0, 9), 16));
        assert_eq!(c.gateway, Some(Ipv4Addr::new(10, 213, 0, 1)));
        assert_eq!(c.dns, [Ipv4Addr::new(10, 213, 0, 53)]);
        let bare = NetConfig::from_plan("10.213.0.9/24", Some(""), None).unwrap();
        assert_eq!((bare.gateway, bare.dns.len()), (None, 0));
        assert_eq!(NetConfig::from_plan("10.213.0.9", None, None), None);
        assert_eq!(NetConfig::from_plan("10.213.0.9/33", None, None), None);
        assert_eq!(NetConfig::from_plan("10.213.0.9/24", Some("gw"), None), None);
    }
}
