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
    // What is being done, for the error: one conversion below instead of one per call.
    let mut doing = "setting the address";
    let mut run = || {
        dev.set_ipv4(link.name, libc::SIOCSIFADDR, config.address.octets())?;
        doing = "setting the netmask";
        dev.set_ipv4(link.name, libc::SIOCSIFNETMASK, mask_of(config.prefix_len).octets())?;
        if let Some(mtu) = config.mtu {
            doing = "setting the MTU";
            dev.set_mtu(link.name, mtu)?;
        }
        doing = "adding a classless static route";
        for route in config.routes.iter().filter(|r| r.prefix_len != 0) {
            let mask = mask_of(route.prefix_len).octets();
            dev.add_route(link.name, route.destination.octets(), mask, route.gateway.octets())?;
        }
        doing = "adding the default route";
        config.gateway.map_or(Ok(()), |via| dev.add_route(link.name, [0; 4], [0; 4], via.octets()))
    };
    run().map_err(sys(doing, link.name))
}
