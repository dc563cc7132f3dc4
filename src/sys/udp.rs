//! A UDP socket for DNS queries and unicast DHCP renewals (once an address is applied),
//! and the socket calls it shares with the packet socket.

use super::fd::Fd;
use super::{check, check_size, Errno, Result};

/// A non-blocking, close-on-exec socket.
pub(super) fn open_socket(
    domain: libc::c_int,
    kind: libc::c_int,
    protocol: libc::c_int,
) -> Result<Fd> {
    // SAFETY: socket takes no pointers; the descriptor is owned by the Fd from here on.
    let raw = check(unsafe {
        libc::socket(domain, kind | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, protocol)
    })?;
    Ok(Fd::adopt(raw))
}

pub(super) fn set_option<T>(
    fd: &Fd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> Result<()> {
    // SAFETY: value points at a valid T of size_of::<T>() bytes for the whole call; the
    // kernel copies at most that many bytes.
    let ret = unsafe {
        libc::setsockopt(
            fd.raw(),
            level,
            name,
            (value as *const T).cast(),
            core::mem::size_of::<T>() as u32,
        )
    };
    check(ret).map(|_| ())
}

/// bind(2) to `addr`, a `sockaddr_*` struct.
pub(super) fn bind_to<A>(fd: &Fd, addr: &A) -> Result<()> {
    // SAFETY: addr points at a valid A of size_of::<A>() bytes for the whole call; the
    // kernel reads at most that many bytes and checks the address family itself.
    check(unsafe {
        libc::bind(fd.raw(), (addr as *const A).cast(), core::mem::size_of::<A>() as u32)
    })
    .map(|_| ())
}

/// sendto(2) of `data` to `addr`, a `sockaddr_*` struct.
pub(super) fn send_to<A>(fd: &Fd, data: &[u8], addr: &A) -> Result<()> {
    // SAFETY: data and addr are valid for reads of the lengths passed during the call; the
    // kernel reads at most size_of::<A>() bytes of addr and checks its family.
    let ret = unsafe {
        libc::sendto(
            fd.raw(),
            data.as_ptr().cast(),
            data.len(),
            0,
            (addr as *const A).cast(),
            core::mem::size_of::<A>() as u32,
        )
    };
    check_size(ret).map(|_| ())
}

pub struct UdpSocket {
    fd: Fd,
}

fn sockaddr(addr: [u8; 4], port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(addr) },
        sin_zero: [0; 8],
    }
}

const SOCKADDR_IN_LEN: libc::socklen_t =
    core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

impl UdpSocket {
    /// A non-blocking UDP socket bound to `addr:port` (port 0: any). SO_REUSEADDR lets a
    /// renewal bind port 68 beside another DHCP client's socket on a host.
    pub fn bind(addr: [u8; 4], port: u16) -> Result<UdpSocket> {
        let fd = open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
        set_option(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &(1 as libc::c_int))?;
        bind_to(&fd, &sockaddr(addr, port))?;
        Ok(UdpSocket { fd })
    }

    pub fn raw(&self) -> libc::c_int {
        self.fd.raw()
    }

    pub fn send_to(&self, data: &[u8], addr: [u8; 4], port: u16) -> Result<()> {
        send_to(&self.fd, data, &sockaddr(addr, port))
    }

    /// Receives one datagram; returns its length (cut to `buf`) and the sender's address
    /// and port, or `None` when nothing is waiting.
    pub fn receive_from(&self, buf: &mut [u8]) -> Result<Option<(usize, [u8; 4], u16)>> {
        let mut from = sockaddr([0; 4], 0);
        let mut from_len = SOCKADDR_IN_LEN;
        // SAFETY: buf is writable for buf.len() bytes and `from`/`from_len` are valid for
        // the kernel to fill in, all for the whole call.
        let ret = unsafe {
            libc::recvfrom(
                self.fd.raw(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_in).cast(),
                &mut from_len,
            )
        };
        match check_size(ret) {
            Ok(n) => Ok(Some((n, from.sin_addr.s_addr.to_ne_bytes(), u16::from_be(from.sin_port)))),
            Err(e) if e.0 == libc::EAGAIN || e == Errno::EINTR => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_round_trip() {
        let a = UdpSocket::bind([127, 0, 0, 1], 0).unwrap();
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        a.send_to(b"imprint", [127, 0, 0, 1], port).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = probe.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"imprint");
        probe.send_to(b"back", from).unwrap();
        let mut fds = [crate::sys::poll::PollFd::new(a.raw(), crate::sys::poll::READABLE)];
        crate::sys::poll::poll(&mut fds, core::time::Duration::from_secs(5)).unwrap();
        let (n, addr, from_port) = a.receive_from(&mut buf).unwrap().unwrap();
        assert_eq!((&buf[..n], addr, from_port), (&b"back"[..], [127, 0, 0, 1], port));
        assert_eq!(a.receive_from(&mut buf).unwrap(), None);
    }
}
