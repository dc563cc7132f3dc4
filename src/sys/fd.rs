//! Owned file descriptors: opened, read, written, duplicated, closed on drop.

use super::{check, check_size, retry, with_cstr, Errno, Result};

/// An open file descriptor that imprint owns; closing happens on drop.
#[derive(Debug)]
pub struct Fd(pub(super) libc::c_int);

/// Flags for [`Fd::open`], plain `c_int`s to combine with `|` (a namespace, not a type).
pub struct OpenFlags;

impl OpenFlags {
    pub const READ: libc::c_int = libc::O_RDONLY;
    pub const WRITE: libc::c_int = libc::O_WRONLY;
    pub const READ_WRITE: libc::c_int = libc::O_RDWR;
    pub const CREATE: libc::c_int = libc::O_CREAT;
    pub const TRUNCATE: libc::c_int = libc::O_TRUNC;
    pub const EXCLUSIVE: libc::c_int = libc::O_EXCL;
    pub const DIRECT: libc::c_int = libc::O_DIRECT;
    pub const NO_CTTY: libc::c_int = libc::O_NOCTTY;
}

/// The standard descriptors, by number (they are not owned: nothing closes them).
pub const STDIN: libc::c_int = 0;
pub const STDOUT: libc::c_int = 1;

impl Fd {
    /// Opens `path`; every descriptor is close-on-exec, so a rescue shell inherits only 0-2.
    pub fn open(path: &str, flags: libc::c_int, mode: u32) -> Result<Fd> {
        let flags = flags | libc::O_CLOEXEC;
        // SAFETY: with_cstr passes a valid NUL-terminated path that outlives the call; open
        // takes no other pointers.
        retry(|| check(with_cstr(path, |p| unsafe { libc::open(p, flags, mode) })?)).map(Fd)
    }

    pub fn raw(&self) -> libc::c_int {
        self.0
    }

    pub fn write_all(&self, buf: &[u8]) -> Result<()> {
        write_all_raw(self.0, buf)
    }

    /// Makes `target` (e.g. 0, 1, 2) refer to this file too.
    pub fn duplicate_to(&self, target: libc::c_int) -> Result<()> {
        // SAFETY: dup2 takes two integers; at worst it fails with EBADF (onto itself: a no-op).
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
    // SAFETY: buf is a valid writable region of buf.len() bytes for the whole call.
    retry(|| check_size(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }))
}

/// Writes all of `buf` to a descriptor we may not own (standard output and error).
pub fn write_all_raw(fd: libc::c_int, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf is a valid readable region of buf.len() bytes for the whole call.
        match retry(|| check_size(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }))? {
            0 => return Err(Errno(libc::EIO)),
            n => buf = buf.get(n..).unwrap_or_default(),
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
