//! Applying a configuration to a link: address, netmask, MTU, routes (as klibc ipconfig
//! does, with the classic ioctls). The same path serves a DHCP lease and a static `ip=`.

use super::dhcp::mask_of;
use super::link::Link;
use super::options::Route;
use super::{sys, NetError};
use crate::sys::netdev::NetDev;
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

/// Applies `config` to `link` (already up).
pub fn apply(dev: &NetDev, link: &Link, config: &NetConfig) -> Result<(), NetError> {
    let name = link.name;
    let fail = |doing| sys(doing, name);
    let (address, mask) = (config.address.octets(), mask_of(config.prefix_len).octets());
    dev.set_ipv4(name, libc::SIOCSIFADDR, address).map_err(fail("setting the address"))?;
    dev.set_ipv4(name, libc::SIOCSIFNETMASK, mask).map_err(fail("setting the netmask"))?;
    if let Some(mtu) = config.mtu {
        dev.set_mtu(name, mtu).map_err(fail("setting the MTU"))?;
    }
    for route in config.routes.iter().filter(|r| r.prefix_len != 0) {
        let mask = mask_of(route.prefix_len).octets();
        dev.add_route(name, route.destination.octets(), mask, route.gateway.octets())
            .map_err(fail("adding a classless static route"))?;
    }
    if let Some(gateway) = config.gateway {
        dev.add_route(name, [0; 4], [0; 4], gateway.octets())
            .map_err(fail("adding the default route"))?;
    }
    Ok(())
}
