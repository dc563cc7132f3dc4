//! Owned file descriptors: opened, read, written, duplicated, closed on drop.

use super::{check, check_size, with_cstr, Errno, Result};

/// An open file descriptor that imprint owns; closing happens on drop.
#[derive(Debug)]
pub struct Fd(libc::c_int);

/// Flags for [`Fd::open`]; combine with `|`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFlags(pub libc::c_int);

impl OpenFlags {
    pub const READ: OpenFlags = OpenFlags(libc::O_RDONLY);
    pub const WRITE: OpenFlags = OpenFlags(libc::O_WRONLY);
    pub const READ_WRITE: OpenFlags = OpenFlags(libc::O_RDWR);
    pub const CREATE: OpenFlags = OpenFlags(libc::O_CREAT);
    pub const TRUNCATE: OpenFlags = OpenFlags(libc::O_TRUNC);
    pub const EXCLUSIVE: OpenFlags = OpenFlags(libc::O_EXCL);
    pub const DIRECT: OpenFlags = OpenFlags(libc::O_DIRECT);
    pub const NO_CTTY: OpenFlags = OpenFlags(libc::O_NOCTTY);
}

impl core::ops::BitOr for OpenFlags {
    type Output = OpenFlags;
    fn bitor(self, rhs: OpenFlags) -> OpenFlags {
        OpenFlags(self.0 | rhs.0)
    }
}

/// The standard descriptors, by number (they are not owned: nothing closes them).
pub const STDIN: libc::c_int = 0;
pub const STDOUT: libc::c_int = 1;

impl Fd {
    /// Opens `path`; every descriptor is close-on-exec, so a rescue shell inherits only 0-2.
    pub fn open(path: &str, flags: OpenFlags, mode: u32) -> Result<Fd> {
        let flags = flags.0 | libc::O_CLOEXEC;
        loop {
            // SAFETY: with_cstr passes a valid NUL-terminated path that outlives the call;
            // open takes no other pointers.
            let ret = with_cstr(path, |p| unsafe { libc::open(p, flags, mode as libc::c_uint) })?;
            match check(ret) {
                Ok(fd) => return Ok(Fd(fd)),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes ownership of a descriptor a system call just returned (sockets).
    pub(super) fn adopt(fd: libc::c_int) -> Fd {
        Fd(fd)
    }

    pub fn raw(&self) -> libc::c_int {
        self.0
    }

    /// One read; returns 0 at end of file. Retries on EINTR.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        read_raw(self.0, buf)
    }

    pub fn write_all(&self, buf: &[u8]) -> Result<()> {
        write_all_raw(self.0, buf)
    }

    /// Makes `target` (e.g. 0, 1, 2) refer to this file too.
    pub fn duplicate_to(&self, target: libc::c_int) -> Result<()> {
        if target == self.0 {
            return Ok(());
        }
        // SAFETY: dup2 takes two integers; at worst it fails with EBADF.
        check(unsafe { libc::dup2(self.0, target) }).map(|_| ())
    }
}

/// A file is a pull reader too (its `read_full` fills a buffer up to end of file).
impl crate::io::Read for Fd {
    type Error = Errno;
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        read_raw(self.0, buf)
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own this descriptor and nobody else closes it; errors on close are
        // not actionable (data-carrying closes are preceded by fsync where it matters).
        unsafe { libc::close(self.0) };
    }
}

/// Whether descriptor `fd` is open (used to repair 0-2 when the kernel had no console).
pub fn is_open(fd: libc::c_int) -> bool {
    // SAFETY: F_GETFD on any integer is harmless; it fails with EBADF when not open.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// A read on a descriptor we do not own (standard input). Retries on EINTR.
pub fn read_raw(fd: libc::c_int, buf: &mut [u8]) -> Result<usize> {
    loop {
        // SAFETY: buf is a valid writable region of buf.len() bytes for the whole call.
        let ret = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match check_size(ret) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Writes all of `buf` to a descriptor we may not own (standard output and error).
pub fn write_all_raw(fd: libc::c_int, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf is a valid readable region of buf.len() bytes for the whole call.
        match check_size(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }) {
            Ok(0) => return Err(Errno(libc::EIO)),
            Ok(n) => buf = buf.get(n..).unwrap_or_default(),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_read_write_round_trip() {
        let dir = std::env::temp_dir().join(std::format!("imprint-fd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let p = path.to_str().unwrap();
        let fd =
            Fd::open(p, OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE, 0o600).unwrap();
        fd.write_all(b"hello imprint").unwrap();
        drop(fd);
        let fd = Fd::open(p, OpenFlags::READ, 0).unwrap();
        let mut buf = [0u8; 64];
        let n = crate::io::Read::read_full(&mut { fd }, &mut buf).unwrap();
        let fd = Fd::open(p, OpenFlags::READ, 0).unwrap();
        assert_eq!(&buf[..n], b"hello imprint");
        assert!(is_open(fd.raw()));
        let raw = fd.raw();
        drop(fd);
        assert!(!is_open(raw), "drop must close the descriptor");
        assert_eq!(Fd::open("/nonexistent/x", OpenFlags::READ, 0).unwrap_err(), Errno::ENOENT);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
