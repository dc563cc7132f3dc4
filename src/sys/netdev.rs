//! Network devices through the classic interface ioctls (as klibc ipconfig does): index,
//! MAC, flags, address, netmask, MTU, routes.
//!
//! Every ioctl goes through an AF_INET datagram socket, the kernel's handle for them.

use super::fd::Fd;
use super::{check, Result};

/// Interface flags imprint reads or sets (SIOCGIFFLAGS / SIOCSIFFLAGS).
const IFF_UP: u16 = libc::IFF_UP as u16;
pub const IFF_LOOPBACK: u16 = libc::IFF_LOOPBACK as u16;
/// Operationally up: for Ethernet, the carrier is present.
pub const IFF_RUNNING: u16 = libc::IFF_RUNNING as u16;

/// An interface name as the kernel keeps it (at most 15 bytes): a small copyable value,
/// so links and errors carry names without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IfName {
    pub(super) bytes: [u8; libc::IFNAMSIZ],
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

/// A socket to issue interface ioctls on.
pub struct NetDev {
    sock: Fd,
}

/// The union of `struct ifreq`: what a request sets or reads.
type Ifru = libc::__c_anonymous_ifr_ifru;

/// An IPv4 address as the `struct sockaddr` the interface ioctls take.
fn sockaddr_in(addr: [u8; 4]) -> libc::sockaddr {
    // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes) on Linux, and every
    // bit pattern is a valid sockaddr.
    unsafe { core::mem::transmute(super::socket::sockaddr(addr, 0)) }
}

impl NetDev {
    pub fn open() -> Result<NetDev> {
        Ok(NetDev { sock: super::socket::open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)? })
    }

    /// Interface request `request` on `name` with `value` in the union; returns the union
    /// as the kernel left it.
    fn ioctl(&self, name: IfName, request: libc::c_ulong, value: Ifru) -> Result<Ifru> {
        // SAFETY: ifreq is plain old data (a name array and a union of PODs); all-zero is valid.
        let mut req: libc::ifreq = unsafe { core::mem::zeroed() };
        // The name's bytes are already the kernel's NUL-padded form.
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru = value;
        // SAFETY: req is a valid, writable ifreq for the whole call; every request issued
        // through here reads and writes only within struct ifreq.
        check(unsafe { libc::ioctl(self.sock.raw(), request as _, &mut req as *mut libc::ifreq) })?;
        Ok(req.ifr_ifru)
    }

    /// The hardware address's ARPHRD type (1 = Ethernet), the address, the index, the flags.
    pub fn hardware(&self, name: IfName) -> Result<(u16, [u8; 6], i32, u16)> {
        let zero = Ifru { ifru_ifindex: 0 };
        let hw = self.ioctl(name, libc::SIOCGIFHWADDR as _, zero)?;
        let index = self.ioctl(name, libc::SIOCGIFINDEX as _, zero)?;
        // SAFETY: SIOCGIFHWADDR filled in the hwaddr member of its union, SIOCGIFINDEX the
        // ifindex member of its.
        let (sa, index) = unsafe { (hw.ifru_hwaddr, index.ifru_ifindex) };
        let [a, b, c, d, e, f, ..] = sa.sa_data;
        Ok((sa.sa_family, [a, b, c, d, e, f].map(|x| x as u8), index, self.flags(name)?))
    }

    pub fn flags(&self, name: IfName) -> Result<u16> {
        let got = self.ioctl(name, libc::SIOCGIFFLAGS as _, Ifru { ifru_ifindex: 0 })?;
        // SAFETY: SIOCGIFFLAGS filled in the flags member of the union.
        Ok(unsafe { got.ifru_flags } as u16)
    }

    /// Sets IFF_UP on `name` unless it is up already.
    pub fn bring_up(&self, name: IfName) -> Result<()> {
        let flags = self.flags(name)?;
        if flags & IFF_UP == 0 {
            let value = Ifru { ifru_flags: (flags | IFF_UP) as libc::c_short };
            self.ioctl(name, libc::SIOCSIFFLAGS as _, value)?;
        }
        Ok(())
    }

    /// Sets the address (`libc::SIOCSIFADDR`) or the netmask (`libc::SIOCSIFNETMASK`).
    pub fn set_ipv4(&self, name: IfName, request: libc::c_ulong, addr: [u8; 4]) -> Result<()> {
        self.ioctl(name, request, Ifru { ifru_addr: sockaddr_in(addr) }).map(|_| ())
    }

    pub fn set_mtu(&self, name: IfName, mtu: u16) -> Result<()> {
        let value = Ifru { ifru_mtu: libc::c_int::from(mtu) };
        self.ioctl(name, libc::SIOCSIFMTU as _, value).map(|_| ())
    }

    /// Adds a route to `to`/`mask` through `via` (or on-link when it is 0.0.0.0)
    /// on interface `name`. An existing identical route is fine (EEXIST).
    pub fn add_route(&self, name: IfName, to: [u8; 4], mask: [u8; 4], via: [u8; 4]) -> Result<()> {
        // NUL-terminated: at most 15 bytes.
        let mut dev = name.bytes.map(|b| b as libc::c_char);
        // SAFETY: rtentry is plain old data; all-zero is valid (null pointers, no metric).
        let mut rt: libc::rtentry = unsafe { core::mem::zeroed() };
        rt.rt_dst = sockaddr_in(to);
        rt.rt_gateway = sockaddr_in(via);
        rt.rt_genmask = sockaddr_in(mask);
        rt.rt_flags = libc::RTF_UP | if via == [0; 4] { 0 } else { libc::RTF_GATEWAY };
        rt.rt_dev = dev.as_mut_ptr();
        // SAFETY: rt is a valid struct rtentry whose rt_dev points at `dev`, a NUL-terminated
        // name that lives until after the call; the kernel only reads both.
        let ret = unsafe { libc::ioctl(self.sock.raw(), libc::SIOCADDRT as _, &mut rt) };
        match check(ret) {
            Err(e) if e.0 != libc::EEXIST => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_loopback_flags() {
        assert_eq!(IfName::new("eth0").unwrap().as_str(), "eth0");
        assert!(IfName::new("").is_none() && IfName::new("sixteen-bytes-xx").is_none());
        let dev = NetDev::open().unwrap();
        let name = |n| IfName::new(n).unwrap();
        let (kind, _, index, flags) = dev.hardware(name("lo")).unwrap();
        assert!(index > 0 && kind == libc::ARPHRD_LOOPBACK);
        assert_ne!(flags & IFF_LOOPBACK, 0);
        assert_eq!(dev.flags(name("lo")), Ok(flags));
        assert_eq!(dev.hardware(name("imn-no-such-if")), Err(crate::sys::Errno(libc::ENODEV)));
        assert!(IfName::new("a-name-far-too-long-for-linux").is_none());
    }
}
