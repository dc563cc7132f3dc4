//! Files and mounts: mount, umount, mkdir, mknod, whole-file reads, sync.

use super::fd::{Fd, OpenFlags};
use super::{check, copy_cstr, with_cstr, Errno, Result};
use alloc::vec::Vec;

/// Mount flags imprint uses.
pub use libc::{MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY};

pub fn mount(source: &str, target: &str, fstype: &str, flags: u64, data: &str) -> Result<()> {
    let [a, b, c, d] = &mut [[0u8; libc::PATH_MAX as usize]; 4];
    let (src, tgt) = (copy_cstr(source, a)?, copy_cstr(target, b)?);
    let (fs, data) = (copy_cstr(fstype, c)?, copy_cstr(data, d)?);
    // SAFETY: all four are NUL-terminated strings in buffers that live through the call; the
    // kernel copies them before mount returns.
    check(unsafe { libc::mount(src, tgt, fs, flags, data.cast()) }).map(|_| ())
}

/// A call on one path that returns 0 or -1 with errno.
fn on_path(path: &str, f: impl FnOnce(*const libc::c_char) -> libc::c_int) -> Result<()> {
    check(with_cstr(path, f)?).map(|_| ())
}

/// Unmounts `target`; `detach` makes it lazy (MNT_DETACH) for mounts still in use.
pub fn umount(target: &str, detach: bool) -> Result<()> {
    let flags = if detach { libc::MNT_DETACH } else { 0 };
    // SAFETY: on_path hands the call a valid NUL-terminated path for its duration (so for
    // the calls below, which take no other pointers either).
    on_path(target, |p| unsafe { libc::umount2(p, flags) })
}

/// Creates a directory; an existing one is fine.
pub fn make_dir(path: &str, mode: u32) -> Result<()> {
    // SAFETY: as in `umount`.
    match on_path(path, |p| unsafe { libc::mkdir(p, mode) }) {
        Err(e) if e.0 == libc::EEXIST => Ok(()),
        done => done,
    }
}

/// Creates a character device node (the console, when the initramfs lacks it).
pub fn mknod_char(path: &str, mode: u32, major: u32, minor: u32) -> Result<()> {
    let dev = libc::makedev(major, minor);
    // SAFETY: as in `umount`.
    on_path(path, |p| unsafe { libc::mknod(p, libc::S_IFCHR | mode, dev) })
}

/// Sets a file's permission bits exactly (open's mode is filtered by the umask).
pub fn set_mode(path: &str, mode: u32) -> Result<()> {
    // SAFETY: as in `umount`.
    on_path(path, |p| unsafe { libc::chmod(p, mode) })
}

/// EXT4_IOC_RESIZE_FS: _IOW('f', 16, __u64).
const EXT4_IOC_RESIZE_FS: libc::c_ulong = 0x4008_6610;

/// Grows the ext4 filesystem mounted at `mount_point` to `blocks` of its own block size,
/// online (what resize2fs does for a mounted filesystem).
pub fn grow_ext4(mount_point: &str, blocks: u64) -> Result<()> {
    let dir = Fd::open(mount_point, OpenFlags::READ, 0)?;
    // SAFETY: the ioctl reads one u64 through the pointer, which is valid for the call.
    check(unsafe { libc::ioctl(dir.raw(), EXT4_IOC_RESIZE_FS as _, &blocks as *const u64) })
        .map(|_| ())
}

/// Whether `path` exists (any type), following symlinks.
pub fn exists(path: &str) -> bool {
    // SAFETY: as in `umount`.
    on_path(path, |p| unsafe { libc::access(p, libc::F_OK) }).is_ok()
}

/// Whether `path` can be executed by us.
pub fn is_executable(path: &str) -> bool {
    // SAFETY: as in `umount`.
    on_path(path, |p| unsafe { libc::access(p, libc::X_OK) }).is_ok()
}

/// Reads a whole (small) file such as /proc/cmdline or a sysfs attribute; EFBIG past
/// `limit` bytes.
pub fn read_file(path: &str, limit: usize) -> Result<Vec<u8>> {
    let mut out = alloc::vec![0; limit + 1];
    let n = read_into(path, &mut out)?;
    out.truncate(n);
    (n <= limit).then_some(out).ok_or(Errno(libc::EFBIG))
}

/// Reads a file into `buf` without allocating (for the panic path); returns its length.
pub fn read_into(path: &str, buf: &mut [u8]) -> Result<usize> {
    crate::io::Read::read_full(&mut Fd::open(path, OpenFlags::READ, 0)?, buf)
}

/// The names in a directory (without "." and ".."), sorted so callers never depend on the
/// order the filesystem happens to return. Read with getdents64: opendir would allocate
/// through the C library's malloc.
pub fn list_dir(path: &str) -> Result<Vec<alloc::string::String>> {
    let dir = Fd::open(path, OpenFlags::READ | libc::O_DIRECTORY, 0)?;
    let mut names: Vec<alloc::string::String> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: buf is writable for buf.len() bytes; the kernel fills it with whole
        // dirent64 records and returns their total length.
        let ret =
            unsafe { libc::syscall(libc::SYS_getdents64, dir.raw(), buf.as_mut_ptr(), buf.len()) };
        let n @ 1.. = super::check_size(ret as libc::ssize_t)? else { break };
        // Each record: inode (8 bytes), offset (8), its length (2), type (1), the name
        // NUL-terminated.
        let mut records = buf.get(..n).unwrap_or_default();
        while let Some(len @ 20..) = records.get(16..18).map(|l| u16::from_ne_bytes([l[0], l[1]])) {
            let (record, rest) = records.split_at(records.len().min(len as usize));
            let name = record.get(19..).unwrap_or_default().split(|&b| b == 0).next();
            // Not UTF-8: no name we look for is like that. Sorted as they come, by
            // insertion: core's sort costs about 4 KB of code in the init, and directories
            // here hold a handful of names.
            let name = core::str::from_utf8(name.unwrap_or_default()).unwrap_or(".");
            if !matches!(name, "." | "..") {
                let at = names.iter().position(|m| m.as_str() > name).unwrap_or(names.len());
                names.insert(at, name.into());
            }
            records = rest;
        }
    }
    Ok(names)
}

/// The target of a symbolic link.
pub fn read_link(path: &str) -> Result<alloc::string::String> {
    let mut buf = [0u8; 1024];
    // SAFETY: path is NUL-terminated for the call; buf is writable for buf.len() bytes and
    // readlink writes at most that many.
    let n = with_cstr(path, |p| unsafe { libc::readlink(p, buf.as_mut_ptr().cast(), buf.len()) })?;
    let link = buf.get(..super::check_size(n)?).filter(|l| l.len() < buf.len());
    let link = link.ok_or(Errno::ENAMETOOLONG)?;
    core::str::from_utf8(link).map(alloc::string::String::from).map_err(|_| Errno::EINVAL)
}

/// Flushes every filesystem's dirty data to its device.
pub fn sync() {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_file_reads_and_limits() {
        let dir = std::env::temp_dir().join(std::format!("imprint-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, vec![7u8; 2000]).unwrap();
        let p = path.to_str().unwrap();
        assert_eq!(read_file(p, 4096).unwrap(), vec![7u8; 2000]);
        assert_eq!(read_file(p, 1000).unwrap_err(), Errno(libc::EFBIG));
        let mut buf = [0u8; 100];
        assert_eq!(read_into(p, &mut buf).unwrap(), 100);
        assert!(exists(p));
        assert!(!exists("/nonexistent/imprint"));
        let sub = dir.join("d");
        make_dir(sub.to_str().unwrap(), 0o755).unwrap();
        make_dir(sub.to_str().unwrap(), 0o755).unwrap();
        assert!(sub.is_dir());
        std::fs::write(dir.join("b"), b"").unwrap();
        std::os::unix::fs::symlink("f", dir.join("link")).unwrap();
        let names = list_dir(dir.to_str().unwrap()).unwrap();
        assert_eq!(names, ["b", "d", "f", "link"]);
        assert_eq!(read_link(dir.join("link").to_str().unwrap()).unwrap(), "f");
        assert_eq!(list_dir("/nonexistent/imprint").unwrap_err(), Errno::ENOENT);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
