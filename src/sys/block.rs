//! Block devices (and regular files standing in for them): exclusive O_DIRECT opens, the
//! block ioctls, zeroing ranges, positioned writes, and page-aligned buffers for O_DIRECT.

use super::fd::{Fd, OpenFlags};
use super::{check, check_size, Errno, Result};
use core::ops::{Deref, DerefMut};

// The block ioctls from <linux/fs.h>. libc lacks most of them; _IO(0x12, n) is
// (0x12 << 8) | n, and BLKGETSIZE64 is _IOR(0x12, 114, size_t).
const BLKRRPART: libc::Ioctl = 0x125f; // _IO(0x12, 95)
const BLKFLSBUF: libc::Ioctl = 0x1261; // _IO(0x12, 97)
const BLKSSZGET: libc::Ioctl = 0x1268; // _IO(0x12, 104)
const BLKPG: libc::Ioctl = 0x1269; // _IO(0x12, 105)
const BLKGETSIZE64: libc::Ioctl = 0x8008_1272u32 as libc::Ioctl; // _IOR(0x12, 114, u64)
const BLKZEROOUT: libc::Ioctl = 0x127f; // _IO(0x12, 127)

// <linux/blkpg.h>
const BLKPG_ADD_PARTITION: libc::c_int = 1;
const BLKPG_DEL_PARTITION: libc::c_int = 2;

/// What a path names, as far as writing an image goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    BlockDevice,
    RegularFile,
    Other,
}

/// What `path` is; `Ok(None)` when it does not exist.
pub fn kind_of(path: &str) -> Result<Option<Kind>> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: the path is a valid NUL-terminated string and `st` a valid writable stat
    // for the whole call.
    let ret = super::with_cstr(path, |p| unsafe { libc::stat(p, &mut st) })?;
    match check(ret) {
        Ok(_) => Ok(Some(kind_from_mode(st.st_mode))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn kind_from_mode(mode: libc::mode_t) -> Kind {
    match mode & libc::S_IFMT {
        libc::S_IFBLK => Kind::BlockDevice,
        libc::S_IFREG => Kind::RegularFile,
        _ => Kind::Other,
    }
}

/// Opens a block device for writing an image: O_EXCL makes the kernel refuse (EBUSY) a
/// device that is mounted, part of an array or held open exclusively by anyone else, and
/// keeps others from claiming it while we write. `direct` adds O_DIRECT.
pub fn open_device(path: &str, direct: bool) -> Result<Fd> {
    let mut flags = OpenFlags::READ_WRITE | OpenFlags::EXCLUSIVE;
    if direct {
        flags = flags | OpenFlags::DIRECT;
    }
    Fd::open(path, flags, 0)
}

/// Opens (creating if missing) a regular file as an image target. O_EXCL is not used: on
/// a file it would mean "must not exist yet".
pub fn open_file(path: &str, direct: bool) -> Result<Fd> {
    let mut flags = OpenFlags::READ_WRITE | OpenFlags::CREATE;
    if direct {
        flags = flags | OpenFlags::DIRECT;
    }
    Fd::open(path, flags, 0o644)
}

/// The file's length in bytes (for regular files).
pub fn file_len(fd: &Fd) -> Result<u64> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is a valid writable stat for the call; fstat writes only into it.
    check(unsafe { libc::fstat(fd.raw(), &mut st) })?;
    Ok(st.st_size as u64)
}

/// The device number (major, minor) of the block device behind `fd`.
pub fn device_number(fd: &Fd) -> Result<(u32, u32)> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is a valid writable stat for the call; fstat writes only into it.
    check(unsafe { libc::fstat(fd.raw(), &mut st) })?;
    Ok((libc::major(st.st_rdev), libc::minor(st.st_rdev)))
}

/// The device's logical block size: every O_DIRECT offset and length is a multiple of it.
pub fn logical_block_size(fd: &Fd) -> Result<u32> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which is valid for the call.
    check(unsafe { libc::ioctl(fd.raw(), BLKSSZGET, &mut size as *mut libc::c_int) })?;
    Ok(size as u32)
}

/// The device's size in bytes.
pub fn device_size(fd: &Fd) -> Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which is valid for the call.
    check(unsafe { libc::ioctl(fd.raw(), BLKGETSIZE64, &mut size as *mut u64) })?;
    Ok(size)
}

/// Drops the device's buffer cache, so later readers (the partition scan, the next stage)
/// see what is on the disk rather than stale cached blocks.
pub fn flush_buffers(fd: &Fd) -> Result<()> {
    // SAFETY: BLKFLSBUF takes no argument.
    check(unsafe { libc::ioctl(fd.raw(), BLKFLSBUF, 0) }).map(|_| ())
}

/// Asks the kernel to re-read the partition table. EBUSY while a partition is in use;
/// EINVAL on devices without partition support (e.g. a loop device without -P).
pub fn reread_partitions(fd: &Fd) -> Result<()> {
    // SAFETY: BLKRRPART takes no argument.
    check(unsafe { libc::ioctl(fd.raw(), BLKRRPART, 0) }).map(|_| ())
}

#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [u8; 64],
    volname: [u8; 64],
}

#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut BlkpgPartition,
}

fn blkpg(fd: &Fd, op: libc::c_int, number: u32, start: u64, length: u64) -> Result<()> {
    let mut part = BlkpgPartition {
        start: start as libc::c_longlong,
        length: length as libc::c_longlong,
        pno: number as libc::c_int,
        devname: [0; 64],
        volname: [0; 64],
    };
    let mut arg = BlkpgIoctlArg {
        op,
        flags: 0,
        datalen: core::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: &mut part,
    };
    // SAFETY: `arg` and the partition it points to are valid, correctly laid out
    // (#[repr(C)] as in <linux/blkpg.h>) and live through the call; the kernel copies them.
    check(unsafe { libc::ioctl(fd.raw(), BLKPG, &mut arg as *mut BlkpgIoctlArg) }).map(|_| ())
}

/// Tells the kernel about one partition (BLKPG), for when BLKRRPART is refused as busy.
pub fn add_partition(fd: &Fd, number: u32, start: u64, length: u64) -> Result<()> {
    blkpg(fd, BLKPG_ADD_PARTITION, number, start, length)
}

/// Makes the kernel forget one partition (BLKPG).
pub fn delete_partition(fd: &Fd, number: u32) -> Result<()> {
    blkpg(fd, BLKPG_DEL_PARTITION, number, 0, 0)
}

/// Zeroes `len` bytes at `offset` without sending the zeros: the filesystem or device
/// records the range as zeroed (unwritten extents, WRITE ZEROES, thin unmap).
pub fn zero_range(fd: &Fd, offset: u64, len: u64) -> Result<()> {
    loop {
        // SAFETY: fallocate takes only integers.
        let ret = unsafe {
            libc::fallocate(fd.raw(), libc::FALLOC_FL_ZERO_RANGE, offset as libc::off_t, len as libc::off_t)
        };
        match check(ret) {
            Err(Errno::EINTR) => continue,
            other => return other.map(|_| ()),
        }
    }
}

/// BLKZEROOUT: the block layer's way of zeroing a range (older kernels' only one).
pub fn zero_out(fd: &Fd, offset: u64, len: u64) -> Result<()> {
    let range: [u64; 2] = [offset, len];
    // SAFETY: BLKZEROOUT reads two u64 (start, length) through the pointer, valid for the call.
    check(unsafe { libc::ioctl(fd.raw(), BLKZEROOUT, range.as_ptr()) }).map(|_| ())
}

/// One positioned write; returns how much was taken. Retries on EINTR.
pub fn pwrite(fd: &Fd, buf: &[u8], offset: u64) -> Result<usize> {
    loop {
        // SAFETY: buf is a valid readable region of buf.len() bytes for the whole call.
        let ret = unsafe { libc::pwrite(fd.raw(), buf.as_ptr().cast(), buf.len(), offset as libc::off_t) };
        match check_size(ret) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Writes all of `buf` at `offset`; a write that takes nothing is EIO (the device ended).
pub fn pwrite_all(fd: &Fd, mut buf: &[u8], mut offset: u64) -> Result<()> {
    while !buf.is_empty() {
        let n = pwrite(fd, buf, offset)?;
        if n == 0 {
            return Err(Errno(libc::EIO));
        }
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Flushes the file's data and metadata to the device.
pub fn fsync(fd: &Fd) -> Result<()> {
    // SAFETY: fsync takes an integer.
    check(unsafe { libc::fsync(fd.raw()) }).map(|_| ())
}

/// Sets the file's length (regular files).
pub fn set_len(fd: &Fd, len: u64) -> Result<()> {
    // SAFETY: ftruncate takes only integers.
    check(unsafe { libc::ftruncate(fd.raw(), len as libc::off_t) }).map(|_| ())
}

/// Turns O_DIRECT on or off: the final partial block of an image cannot be written with
/// O_DIRECT (lengths must be whole blocks), so it goes through the page cache.
pub fn set_direct(fd: &Fd, on: bool) -> Result<()> {
    // SAFETY: F_GETFL takes no argument.
    let flags = check(unsafe { libc::fcntl(fd.raw(), libc::F_GETFL) })?;
    let flags = if on { flags | libc::O_DIRECT } else { flags & !libc::O_DIRECT };
    // SAFETY: F_SETFL takes an int argument.
    check(unsafe { libc::fcntl(fd.raw(), libc::F_SETFL, flags) }).map(|_| ())
}

/// Alignment of [`AlignedBuf`]: a page, which covers every logical block size (512-4096).
pub const PAGE: usize = 4096;

/// A zeroed heap buffer whose start is page aligned, as O_DIRECT needs.
pub struct AlignedBuf {
    ptr: core::ptr::NonNull<u8>,
    len: usize,
}

impl AlignedBuf {
    /// Allocates `len` zeroed bytes (`len` > 0); ENOMEM when the heap has no room.
    pub fn zeroed(len: usize) -> Result<AlignedBuf> {
        let layout = core::alloc::Layout::from_size_align(len.max(1), PAGE).map_err(|_| Errno(libc::ENOMEM))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { ::alloc::alloc::alloc_zeroed(layout) };
        core::ptr::NonNull::new(ptr).map(|ptr| AlignedBuf { ptr, len }).ok_or(Errno(libc::ENOMEM))
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr points to `len` initialised (zeroed at allocation) bytes we own.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref, and `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = core::alloc::Layout::from_size_align(self.len.max(1), PAGE).expect("checked at allocation");
        // SAFETY: ptr was allocated in `zeroed` with exactly this layout and is freed once.
        unsafe { ::alloc::alloc::dealloc(self.ptr.as_ptr(), layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_are_page_aligned_and_zeroed() {
        let mut b = AlignedBuf::zeroed(3 * PAGE + 7).unwrap();
        assert_eq!(b.as_ptr() as usize % PAGE, 0);
        assert_eq!(b.len(), 3 * PAGE + 7);
        assert!(b.iter().all(|&x| x == 0));
        b[5] = 9;
        assert_eq!(b[5], 9);
    }

    #[test]
    fn files_take_positioned_writes_zeroing_and_lengths() {
        let dir = std::env::temp_dir().join(std::format!("imprint-block-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk");
        let p = path.to_str().unwrap();
        assert_eq!(kind_of(p).unwrap(), None);
        let fd = open_file(p, false).unwrap();
        assert_eq!(kind_of(p).unwrap(), Some(Kind::RegularFile));
        set_len(&fd, 3 * PAGE as u64).unwrap();
        pwrite_all(&fd, &[0xAB; PAGE * 2], PAGE as u64 / 2).unwrap();
        zero_range(&fd, PAGE as u64, PAGE as u64).unwrap();
        fsync(&fd).unwrap();
        assert_eq!(file_len(&fd).unwrap(), 3 * PAGE as u64);
        let data = std::fs::read(&path).unwrap();
        assert!(data[..PAGE / 2].iter().all(|&b| b == 0));
        assert!(data[PAGE / 2..PAGE].iter().all(|&b| b == 0xAB));
        assert!(data[PAGE..2 * PAGE].iter().all(|&b| b == 0));
        assert!(data[2 * PAGE..5 * PAGE / 2].iter().all(|&b| b == 0xAB));
        assert_eq!(kind_of("/dev/null").unwrap(), Some(Kind::Other));
        // A regular file is not a block device: the block ioctls refuse it.
        assert!(logical_block_size(&fd).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
