//! Network devices through the classic interface ioctls (as klibc ipconfig does): index,
//! MAC, flags, address, netmask, MTU, routes.
//!
//! Every ioctl goes through an AF_INET datagram socket, the kernel's handle for them.

use super::fd::Fd;
use super::{check, Result};

/// Interface flags imprint reads or sets (SIOCGIFFLAGS / SIOCSIFFLAGS).
pub const IFF_UP: u16 = libc::IFF_UP as u16;
pub const IFF_LOOPBACK: u16 = libc::IFF_LOOPBACK as u16;
/// Operationally up: for Ethernet, the carrier is present.
pub const IFF_RUNNING: u16 = libc::IFF_RUNNING as u16;

/// An interface name as the kernel keeps it (at most 15 bytes): a small copyable value,
/// so links and errors carry names without allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IfName {
    bytes: [u8; libc::IFNAMSIZ],
    len: u8,
}

impl IfName {
    /// "-": for failures that concern no single interface.
    pub const NONE: IfName = IfName { bytes: *b"-\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", len: 1 };

    /// `None` if empty, longer than the kernel allows, or holding a NUL.
    pub fn new(name: &str) -> Option<IfName> {
        let src = name.as_bytes();
        if src.is_empty() || src.len() >= libc::IFNAMSIZ || src.contains(&0) {
            return None;
        }
        let mut bytes = [0u8; libc::IFNAMSIZ];
        bytes[..src.len()].copy_from_slice(src);
        Some(IfName { bytes, len: src.len() as u8 })
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: `new` copied all of a &str into bytes[..len] and nothing changes it since:
        // valid UTF-8 (checking again would only cost the init code).
        unsafe { core::str::from_utf8_unchecked(&self.bytes[..usize::from(self.len)]) }
    }
}

impl core::fmt::Display for IfName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::fmt::Debug for IfName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A socket to issue interface ioctls on.
pub struct NetDev {
    sock: Fd,
}

/// A request for interface `name`: its bytes are already the kernel's NUL-padded form.
fn ifreq_for(name: IfName) -> libc::ifreq {
    // SAFETY: ifreq is plain old data (a name array and a union of PODs); all-zero is valid.
    let mut req: libc::ifreq = unsafe { core::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes) {
        *dst = src as libc::c_char;
    }
    req
}

/// An IPv4 address as the `struct sockaddr` the interface ioctls take.
fn sockaddr_in(addr: [u8; 4]) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(addr) },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes) on Linux, and every
    // bit pattern is a valid sockaddr.
    unsafe { core::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// The kernel's `struct rtentry` (linux/route.h), defined here because only some C
/// libraries' bindings carry it.
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

const RTF_UP: libc::c_ushort = 0x0001;
const RTF_GATEWAY: libc::c_ushort = 0x0002;

impl NetDev {
    pub fn open() -> Result<NetDev> {
        Ok(NetDev { sock: super::udp::open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)? })
    }

    fn ioctl(&self, request: libc::c_ulong, req: &mut libc::ifreq) -> Result<()> {
        // SAFETY: req is a valid, writable ifreq for the whole call; every request issued
        // through here reads and writes only within struct ifreq.
        check(unsafe { libc::ioctl(self.sock.raw(), request as _, req as *mut libc::ifreq) })
            .map(|_| ())
    }

    pub fn index(&self, name: IfName) -> Result<i32> {
        let mut req = ifreq_for(name);
        self.ioctl(libc::SIOCGIFINDEX as _, &mut req)?;
        // SAFETY: SIOCGIFINDEX filled in the ifindex member of the union.
        Ok(unsafe { req.ifr_ifru.ifru_ifindex })
    }

    /// The hardware address and its ARPHRD type (1 = Ethernet).
    pub fn hardware_address(&self, name: IfName) -> Result<(u16, [u8; 6])> {
        let mut req = ifreq_for(name);
        self.ioctl(libc::SIOCGIFHWADDR as _, &mut req)?;
        // SAFETY: SIOCGIFHWADDR filled in the hwaddr member of the union.
        let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (dst, src) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *dst = *src as u8;
        }
        Ok((sa.sa_family, mac))
    }

    pub fn flags(&self, name: IfName) -> Result<u16> {
        let mut req = ifreq_for(name);
        self.ioctl(libc::SIOCGIFFLAGS as _, &mut req)?;
        // SAFETY: SIOCGIFFLAGS filled in the flags member of the union.
        Ok(unsafe { req.ifr_ifru.ifru_flags } as u16)
    }

    pub fn set_flags(&self, name: IfName, flags: u16) -> Result<()> {
        let mut req = ifreq_for(name);
        req.ifr_ifru.ifru_flags = flags as libc::c_short;
        self.ioctl(libc::SIOCSIFFLAGS as _, &mut req)
    }

    pub fn set_address(&self, name: IfName, addr: [u8; 4]) -> Result<()> {
        let mut req = ifreq_for(name);
        req.ifr_ifru.ifru_addr = sockaddr_in(addr);
        self.ioctl(libc::SIOCSIFADDR as _, &mut req)
    }

    pub fn set_netmask(&self, name: IfName, mask: [u8; 4]) -> Result<()> {
        let mut req = ifreq_for(name);
        req.ifr_ifru.ifru_netmask = sockaddr_in(mask);
        self.ioctl(libc::SIOCSIFNETMASK as _, &mut req)
    }

    pub fn set_mtu(&self, name: IfName, mtu: u16) -> Result<()> {
        let mut req = ifreq_for(name);
        req.ifr_ifru.ifru_mtu = libc::c_int::from(mtu);
        self.ioctl(libc::SIOCSIFMTU as _, &mut req)
    }

    /// Adds a route to `dest`/`mask` through `gateway` (or on-link when it is 0.0.0.0)
    /// on interface `name`. An existing identical route is fine (EEXIST).
    pub fn add_route(
        &self,
        name: IfName,
        dest: [u8; 4],
        mask: [u8; 4],
        gateway: [u8; 4],
    ) -> Result<()> {
        let mut dev = ifreq_for(name).ifr_name; // a NUL-terminated copy of the name
        let on_link = gateway == [0; 4];
        let mut rt = RtEntry {
            rt_pad1: 0,
            rt_dst: sockaddr_in(dest),
            rt_gateway: sockaddr_in(gateway),
            rt_genmask: sockaddr_in(mask),
            rt_flags: RTF_UP | if on_link { 0 } else { RTF_GATEWAY },
            rt_pad2: 0,
            rt_pad3: 0,
            rt_pad4: core::ptr::null_mut(),
            rt_metric: 0,
            rt_dev: dev.as_mut_ptr(),
            rt_mtu: 0,
            rt_window: 0,
            rt_irtt: 0,
        };
        // SAFETY: rt is a valid struct rtentry whose rt_dev points at `dev`, a NUL-terminated
        // name that lives until after the call; the kernel only reads both.
        let ret =
            unsafe { libc::ioctl(self.sock.raw(), libc::SIOCADDRT as _, &mut rt as *mut RtEntry) };
        match check(ret) {
            Ok(_) => Ok(()),
            Err(e) if e.0 == libc::EEXIST => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn loopback_has_loopback_flags() {
        assert_eq!(IfName::new("eth0").unwrap().to_string(), "eth0");
        assert!(IfName::new("").is_none() && IfName::new("sixteen-bytes-xx").is_none());
        let dev = NetDev::open().unwrap();
        let name = |n| IfName::new(n).unwrap();
        assert!(dev.index(name("lo")).unwrap() > 0);
        assert_ne!(dev.flags(name("lo")).unwrap() & IFF_LOOPBACK, 0);
        assert_eq!(dev.index(name("imn-no-such-if")), Err(crate::sys::Errno(libc::ENODEV)));
        assert!(IfName::new("a-name-far-too-long-for-linux").is_none());
    }
}
