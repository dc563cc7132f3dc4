//! Sockets: IPv4 TCP client streams for HTTP, the UDP socket for DNS and unicast DHCP,
//! and the calls they share with the packet socket. Every descriptor is non-blocking and
//! close-on-exec; every TCP wait goes through poll(2), so no call can hang past its timeout.

use super::fd::Fd;
use super::poll::{wait, READABLE, WRITABLE};
use super::{check, check_size, Errno, Result};
use core::mem::size_of;
use core::time::Duration;
use libc::c_int;

impl Errno {
    pub const ETIMEDOUT: Errno = Errno(libc::ETIMEDOUT);
    pub const EPIPE: Errno = Errno(libc::EPIPE);
}

/// A non-blocking, close-on-exec socket.
pub(super) fn open_socket(domain: c_int, kind: c_int, protocol: c_int) -> Result<Fd> {
    // SAFETY: socket takes no pointers; the descriptor is owned by the Fd from here on.
    let raw = check(unsafe {
        libc::socket(domain, kind | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, protocol)
    })?;
    Ok(Fd(raw))
}

pub(super) fn set_option<T>(fd: &Fd, level: c_int, name: c_int, value: &T) -> Result<()> {
    // SAFETY: value points at a valid T of size_of::<T>() bytes for the whole call; the
    // kernel copies at most that many bytes.
    let ret = unsafe {
        libc::setsockopt(fd.raw(), level, name, (value as *const T).cast(), size_of::<T>() as u32)
    };
    check(ret).map(|_| ())
}

/// `addr`, a `sockaddr_*` struct, as the pointer and length the socket calls take.
fn raw_address<A>(addr: &A) -> (*const libc::sockaddr, u32) {
    ((addr as *const A).cast(), size_of::<A>() as u32)
}

/// bind(2) to `addr`, a `sockaddr_*` struct.
pub(super) fn bind_to<A>(fd: &Fd, addr: &A) -> Result<()> {
    let (at, len) = raw_address(addr);
    // SAFETY: `at` points at a valid A of `len` bytes for the whole call; the kernel reads
    // at most that many bytes and checks the address family itself.
    check(unsafe { libc::bind(fd.raw(), at, len) }).map(|_| ())
}

/// sendto(2) of `data` to `addr`, a `sockaddr_*` struct.
pub(super) fn send_to<A>(fd: &Fd, data: &[u8], addr: &A) -> Result<()> {
    let (to, len) = raw_address(addr);
    // SAFETY: data and `to` are valid for reads of the lengths passed during the call; the
    // kernel reads at most `len` bytes of the address and checks its family.
    let ret = unsafe { libc::sendto(fd.raw(), data.as_ptr().cast(), data.len(), 0, to, len) };
    check_size(ret).map(|_| ())
}

/// A transfer's result, with "nothing now" (EAGAIN, or a signal: EINTR) as `None`.
pub(super) fn unless_again(ret: libc::ssize_t) -> Result<Option<usize>> {
    match check_size(ret) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.0 == libc::EAGAIN || e == Errno::EINTR => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn sockaddr(addr: [u8; 4], port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(addr) },
        sin_zero: [0; 8],
    }
}

/// A connected TCP socket; closed on drop.
#[derive(Debug)]
pub struct TcpStream {
    fd: Fd,
}

impl TcpStream {
    /// Connects to `ip`:`port`, failing with ETIMEDOUT when no answer comes within `timeout`.
    pub fn connect(ip: [u8; 4], port: u16, timeout: Duration) -> Result<TcpStream> {
        let fd = open_socket(libc::AF_INET, libc::SOCK_STREAM, 0)?;
        // Small request heads go out at once instead of waiting for an ACK (Nagle).
        set_option(&fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, &1 as &c_int)?;
        // A peer that vanishes without a FIN is noticed by keepalive probes, not only by
        // our idle timeout (which only runs while we wait).
        set_option(&fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, &1 as &c_int)?;
        let sin = sockaddr(ip, port);
        let (at, len) = raw_address(&sin);
        // SAFETY: `at` points at sin, a valid sockaddr_in of `len` bytes; the kernel copies it.
        let ret = unsafe { libc::connect(fd.raw(), at, len) };
        let stream = TcpStream { fd };
        match check(ret) {
            Ok(_) => return Ok(stream),
            Err(e) if e.0 == libc::EINPROGRESS || e == Errno::EINTR => {}
            Err(e) => return Err(e),
        }
        // Non-blocking connect: writable means done; SO_ERROR says how it went.
        wait(stream.fd.raw(), WRITABLE, timeout)?;
        let (mut error, mut len): (c_int, u32) = (0, 4);
        // SAFETY: error and len are valid writable locations; len says error's exact size.
        check(unsafe {
            let at = (&mut error as *mut c_int).cast();
            libc::getsockopt(stream.fd.raw(), libc::SOL_SOCKET, libc::SO_ERROR, at, &mut len)
        })?;
        match error {
            0 => Ok(stream),
            err => Err(Errno(err)),
        }
    }

    /// One read into `buf`; 0 means the peer closed its side. Fails with ETIMEDOUT when
    /// no byte arrives within `idle`.
    pub fn read(&self, buf: &mut [u8], idle: Duration) -> Result<usize> {
        loop {
            // SAFETY: buf is a valid writable region of buf.len() bytes for the call.
            let ret = unsafe { libc::recv(self.fd.raw(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            match unless_again(ret)? {
                Some(n) => return Ok(n),
                None => wait(self.fd.raw(), READABLE, idle)?,
            }
        }
    }

    /// Writes all of `buf`. Fails with ETIMEDOUT when the peer takes no byte within `idle`.
    pub fn write_all(&self, mut buf: &[u8], idle: Duration) -> Result<()> {
        while !buf.is_empty() {
            // MSG_NOSIGNAL: a peer that closed gives EPIPE here instead of a SIGPIPE that
            // would kill the process.
            // SAFETY: buf is a valid readable region of buf.len() bytes for the call.
            let ret = unsafe {
                libc::send(self.fd.raw(), buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL)
            };
            match unless_again(ret)? {
                Some(0) => return Err(Errno::EPIPE),
                Some(n) => buf = buf.get(n..).unwrap_or_default(),
                None => wait(self.fd.raw(), WRITABLE, idle)?,
            }
        }
        Ok(())
    }
}

/// A UDP socket for DNS queries and unicast DHCP renewals (once an address is applied).
pub struct UdpSocket {
    fd: Fd,
}

impl UdpSocket {
    /// A non-blocking UDP socket on any port (for DNS queries).
    pub fn open() -> Result<UdpSocket> {
        Ok(UdpSocket { fd: open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)? })
    }

    /// The DHCP client's socket for unicast renewals and releases: bound to the leased
    /// address, port 68. SO_REUSEADDR lets it bind beside another DHCP client's socket.
    pub fn dhcp_client(addr: [u8; 4]) -> Result<UdpSocket> {
        let fd = open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
        set_option(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &1 as &c_int)?;
        bind_to(&fd, &sockaddr(addr, 68))?;
        Ok(UdpSocket { fd })
    }

    pub fn raw(&self) -> c_int {
        self.fd.raw()
    }

    pub fn send_to(&self, data: &[u8], addr: [u8; 4], port: u16) -> Result<()> {
        send_to(&self.fd, data, &sockaddr(addr, port))
    }

    /// Receives one datagram; returns its length (cut to `buf`) and the sender's address
    /// and port, or `None` when nothing is waiting.
    pub fn receive_from(&self, buf: &mut [u8]) -> Result<Option<(usize, [u8; 4], u16)>> {
        let mut from = sockaddr([0; 4], 0);
        let mut from_len = size_of_val(&from) as u32;
        // SAFETY: buf is writable for buf.len() bytes and `from`/`from_len` are valid for
        // the kernel to fill in, all for the whole call.
        let ret = unsafe {
            let at = (&mut from as *mut libc::sockaddr_in).cast();
            libc::recvfrom(self.fd.raw(), buf.as_mut_ptr().cast(), buf.len(), 0, at, &mut from_len)
        };
        let (addr, port) = (from.sin_addr.s_addr.to_ne_bytes(), u16::from_be(from.sin_port));
        Ok(unless_again(ret)?.map(|n| (n, addr, port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;

    fn listener() -> (TcpListener, u16) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        (l, port)
    }

    #[test]
    fn connects_writes_reads_and_sees_the_close() {
        let (l, port) = listener();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = [0u8; 5];
            s.read_exact(&mut got).unwrap();
            s.write_all(b"pong").unwrap();
            got
        });
        let t = Duration::from_secs(5);
        let stream = TcpStream::connect([127, 0, 0, 1], port, t).unwrap();
        stream.write_all(b"ping!", t).unwrap();
        let mut buf = [0u8; 16];
        let mut got = 0;
        loop {
            match stream.read(&mut buf[got..], t).unwrap() {
                0 => break,
                n => got += n,
            }
        }
        assert_eq!(&buf[..got], b"pong");
        assert_eq!(&server.join().unwrap(), b"ping!");
    }

    #[test]
    fn a_silent_peer_times_out_and_a_closed_port_is_refused() {
        let (l, port) = listener();
        let stream = TcpStream::connect([127, 0, 0, 1], port, Duration::from_secs(5)).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(stream.read(&mut buf, Duration::from_millis(50)), Err(Errno::ETIMEDOUT));
        drop(l);
        drop(stream);
        let refused = TcpStream::connect([127, 0, 0, 1], port, Duration::from_secs(5)).unwrap_err();
        assert_eq!(refused, Errno(libc::ECONNREFUSED));
    }

    #[test]
    fn udp_loopback_round_trip() {
        let a = UdpSocket::open().unwrap();
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
