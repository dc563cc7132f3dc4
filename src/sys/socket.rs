//! IPv4 TCP client sockets: connect bounded by a timeout, reads and writes bounded by an
//! idle timeout (no byte moved for that long), shutdown. The descriptor is non-blocking
//! and every wait goes through poll(2), so no call can hang past its timeout.

use super::poll::{poll, PollFd, READABLE, WRITABLE};
use super::time::monotonic;
use super::{check, check_size, Errno, Result};
use core::fmt;
use core::time::Duration;

/// An IPv4 address and TCP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketAddrV4 {
    pub ip: [u8; 4],
    pub port: u16,
}

impl fmt::Display for SocketAddrV4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.ip;
        // As u32: u16 would bring its own copy of the integer formatting.
        write!(f, "{a}.{b}.{c}.{d}:{}", u32::from(self.port))
    }
}

impl Errno {
    pub const ETIMEDOUT: Errno = Errno(libc::ETIMEDOUT);
    pub const ECONNRESET: Errno = Errno(libc::ECONNRESET);
    pub const EPIPE: Errno = Errno(libc::EPIPE);
}

/// A connected TCP socket; closed on drop.
#[derive(Debug)]
pub struct TcpStream {
    fd: libc::c_int,
}

impl TcpStream {
    /// Connects to `addr`, failing with ETIMEDOUT when no answer comes within `timeout`.
    pub fn connect(addr: SocketAddrV4, timeout: Duration) -> Result<TcpStream> {
        // SAFETY: socket takes only integers; the result is checked before use.
        let fd = check(unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        })?;
        // Owned from here on, so every error path below closes it.
        let stream = TcpStream { fd };
        // Small request heads go out at once instead of waiting for an ACK (Nagle).
        stream.set_int_option(libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
        // A peer that vanishes without a FIN is noticed by keepalive probes, not only by
        // our idle timeout (which only runs while we wait).
        stream.set_int_option(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(addr.ip) },
            sin_zero: [0; 8],
        };
        // SAFETY: sin is a valid sockaddr_in and we pass its exact size; the kernel copies it.
        let ret = unsafe {
            libc::connect(
                fd,
                (&sin as *const libc::sockaddr_in).cast(),
                core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        match check(ret) {
            Ok(_) => return Ok(stream),
            Err(e) if e.0 == libc::EINPROGRESS || e == Errno::EINTR => {}
            Err(e) => return Err(e),
        }
        // Non-blocking connect: writable means done; SO_ERROR says how it went.
        stream.wait(WRITABLE, timeout)?;
        match stream.int_option(libc::SOL_SOCKET, libc::SO_ERROR)? {
            0 => Ok(stream),
            err => Err(Errno(err)),
        }
    }

    /// One read into `buf`; 0 means the peer closed its side. Fails with ETIMEDOUT when
    /// no byte arrives within `idle`.
    pub fn read(&self, buf: &mut [u8], idle: Duration) -> Result<usize> {
        loop {
            // SAFETY: buf is a valid writable region of buf.len() bytes for the call.
            let ret = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            match check_size(ret) {
                Err(e) if e.0 == libc::EAGAIN || e == Errno::EINTR => self.wait(READABLE, idle)?,
                other => return other,
            }
        }
    }

    /// One write of (part of) `buf`; returns how much was taken. Fails with ETIMEDOUT
    /// when the peer takes no byte within `idle`.
    pub fn write(&self, buf: &[u8], idle: Duration) -> Result<usize> {
        loop {
            // MSG_NOSIGNAL: a peer that closed gives EPIPE here instead of a SIGPIPE that
            // would kill the process.
            // SAFETY: buf is a valid readable region of buf.len() bytes for the call.
            let ret =
                unsafe { libc::send(self.fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
            match check_size(ret) {
                Err(e) if e.0 == libc::EAGAIN || e == Errno::EINTR => self.wait(WRITABLE, idle)?,
                other => return other,
            }
        }
    }

    /// Writes all of `buf`, each step bounded by `idle`.
    pub fn write_all(&self, mut buf: &[u8], idle: Duration) -> Result<()> {
        while !buf.is_empty() {
            match self.write(buf, idle)? {
                0 => return Err(Errno::EPIPE),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// Tells the peer we will send nothing more (a FIN), keeping our reading side open.
    pub fn shutdown_write(&self) -> Result<()> {
        // SAFETY: shutdown takes only integers.
        check(unsafe { libc::shutdown(self.fd, libc::SHUT_WR) }).map(|_| ())
    }

    /// Waits until the socket is ready for `events`; ETIMEDOUT after `timeout`. Signals
    /// wake poll early, so the wait resumes until the deadline.
    fn wait(&self, events: i16, timeout: Duration) -> Result<()> {
        let deadline = monotonic() + timeout;
        loop {
            let now = monotonic();
            if now >= deadline {
                return Err(Errno::ETIMEDOUT);
            }
            let mut fds = [PollFd::new(self.fd, events)];
            if poll(&mut fds, deadline - now)? > 0 && fds[0].ready() {
                return Ok(());
            }
        }
    }

    fn set_int_option(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: libc::c_int,
    ) -> Result<()> {
        // SAFETY: value is a valid c_int and we pass its exact size; the kernel copies it.
        check(unsafe {
            libc::setsockopt(
                self.fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                core::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
        .map(|_| ())
    }

    fn int_option(&self, level: libc::c_int, name: libc::c_int) -> Result<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut len = core::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: value and len are valid writable locations; len says value's exact size.
        check(unsafe {
            libc::getsockopt(
                self.fd,
                level,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        })?;
        Ok(value)
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        // SAFETY: we own this descriptor and nothing else closes it; a failed close of a
        // socket loses nothing we could still act on.
        unsafe { libc::close(self.fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;

    fn listener() -> (TcpListener, SocketAddrV4) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        (l, SocketAddrV4 { ip: [127, 0, 0, 1], port })
    }

    #[test]
    fn connects_writes_reads_and_sees_the_close() {
        let (l, addr) = listener();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            // Ends only at our FIN: proves shutdown_write sent one.
            let mut got = std::vec::Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.write_all(b"pong").unwrap();
            got
        });
        let t = Duration::from_secs(5);
        let stream = TcpStream::connect(addr, t).unwrap();
        stream.write_all(b"ping!", t).unwrap();
        stream.shutdown_write().unwrap();
        let mut buf = [0u8; 16];
        let mut got = 0;
        loop {
            match stream.read(&mut buf[got..], t).unwrap() {
                0 => break,
                n => got += n,
            }
        }
        assert_eq!(&buf[..got], b"pong");
        assert_eq!(server.join().unwrap(), b"ping!");
    }

    #[test]
    fn a_silent_peer_times_out_and_a_closed_port_is_refused() {
        let (l, addr) = listener();
        let stream = TcpStream::connect(addr, Duration::from_secs(5)).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(stream.read(&mut buf, Duration::from_millis(50)), Err(Errno::ETIMEDOUT));
        drop(l);
        drop(stream);
        let refused = TcpStream::connect(addr, Duration::from_secs(5)).unwrap_err();
        assert_eq!(refused, Errno(libc::ECONNREFUSED));
        assert_eq!(std::format!("{addr}"), std::format!("127.0.0.1:{}", addr.port));
    }
}
