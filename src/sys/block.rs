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
    match super::with_cstr(path, |p| stat_at(libc::AT_FDCWD, p, 0))? {
        Ok(st) => Ok(Some(kind_from_mode(st.st_mode))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// fstatat(2) as the raw system call: `path` relative to `dirfd`, or with an empty path
/// and AT_EMPTY_PATH the file behind `dirfd` itself. Not musl's stat/fstat: their
/// fallbacks for old kernels (/proc/self/fd paths) cost the init ~600 bytes.
fn stat_at(
    dirfd: libc::c_int,
    path: *const libc::c_char,
    flags: libc::c_int,
) -> Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: callers pass a NUL-terminated path valid for the call; `st` is a valid
    // writable stat, and on x86_64 libc's `struct stat` is the kernel's layout that
    // newfstatat fills.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_newfstatat,
            dirfd as libc::c_long,
            path,
            &mut st as *mut libc::stat,
            flags as libc::c_long,
        )
    };
    check(ret as libc::c_int).map(|_| st)
}

/// `stat_at` of an open file.
fn stat_fd(fd: &Fd) -> Result<libc::stat> {
    stat_at(fd.raw(), c"".as_ptr(), libc::AT_EMPTY_PATH)
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
    stat_fd(fd).map(|st| st.st_size as u64)
}

/// The device number (major, minor) of the block device behind `fd`.
pub fn device_number(fd: &Fd) -> Result<(u32, u32)> {
    stat_fd(fd).map(|st| (libc::major(st.st_rdev), libc::minor(st.st_rdev)))
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
            libc::fallocate(
                fd.raw(),
                libc::FALLOC_FL_ZERO_RANGE,
                offset as libc::off_t,
                len as libc::off_t,
            )
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
        let ret = unsafe {
            libc::pwrite(fd.raw(), buf.as_ptr().cast(), buf.len(), offset as libc::off_t)
        };
        match check_size(ret) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// One positioned read; retries on EINTR.
pub fn pread(fd: &Fd, buf: &mut [u8], offset: u64) -> Result<usize> {
    loop {
        // SAFETY: buf is a valid writable region of buf.len() bytes for the whole call.
        let ret = unsafe {
            libc::pread(fd.raw(), buf.as_mut_ptr().cast(), buf.len(), offset as libc::off_t)
        };
        match check_size(ret) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Fills `buf` from `offset`; the device ending first is EIO.
pub fn pread_exact(fd: &Fd, mut buf: &mut [u8], mut offset: u64) -> Result<()> {
    while !buf.is_empty() {
        let n = pread(fd, buf, offset)?;
        if n == 0 {
            return Err(Errno(libc::EIO));
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
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
        let layout = core::alloc::Layout::from_size_align(len.max(1), PAGE)
            .map_err(|_| Errno(libc::ENOMEM))?;
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
        let layout = core::alloc::Layout::from_size_align(self.len.max(1), PAGE)
            .expect("checked at allocation");
        // SAFETY: ptr was allocated in `zeroed` with exactly this layout and is freed once.
        unsafe { ::alloc::alloc::dealloc(self.ptr.as_ptr(), layout) }
    }
}

// Linux native AIO (<linux/aio_abi.h>): with O_DIRECT the writes really run in the
// background, so inflating the next MiB overlaps writing the last one.
const IOCB_CMD_PWRITE: u16 = 1;
/// Writes in flight at most.
const AIO_SLOTS: usize = 32;

#[repr(C)]
#[derive(Default)]
pub(super) struct Iocb {
    pub(super) aio_data: u64,
    pub(super) aio_key: u32,
    pub(super) aio_rw_flags: i32,
    pub(super) aio_lio_opcode: u16,
    pub(super) aio_reqprio: i16,
    pub(super) aio_fildes: u32,
    pub(super) aio_buf: u64,
    pub(super) aio_nbytes: u64,
    pub(super) aio_offset: i64,
    pub(super) aio_reserved2: u64,
    pub(super) aio_flags: u32,
    pub(super) aio_resfd: u32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub(super) struct IoEvent {
    pub(super) data: u64,
    pub(super) obj: u64,
    pub(super) res: i64,
    pub(super) res2: i64,
}

#[derive(Clone, Copy)]
struct InFlight {
    start: usize,
    end: usize,
    offset: u64,
}

/// A page-aligned buffer whose ranges are written to a file in the background (Linux
/// AIO); without AIO in the kernel (ENOSYS) every write is a plain synchronous pwrite.
///
/// Bytes of a range being written must not change until the write completes:
/// [`DirectRing::writable_from`] waits for every write at or past its start, and callers
/// only write from there on. Dropping the ring waits for all writes, so the kernel never
/// reads freed memory.
pub struct DirectRing {
    buf: AlignedBuf,
    ctx: Option<libc::c_ulong>,
    slots: [Option<InFlight>; AIO_SLOTS],
    /// Disk offset of the write that failed, for the error message.
    failed_at: u64,
}

impl DirectRing {
    pub fn new(len: usize) -> Result<DirectRing> {
        let buf = AlignedBuf::zeroed(len)?;
        let ctx = aio_setup(AIO_SLOTS);
        Ok(DirectRing { buf, ctx, slots: [None; AIO_SLOTS], failed_at: 0 })
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Whether writes run in the background.
    pub fn is_async(&self) -> bool {
        self.ctx.is_some()
    }

    pub fn data(&self) -> &[u8] {
        &self.buf
    }

    /// Disk offset of the last write that failed.
    pub fn failed_at(&self) -> u64 {
        self.failed_at
    }

    /// The whole buffer for writing at `from` and after, once no write of those bytes is
    /// still in flight.
    pub fn writable_from(&mut self, from: usize) -> Result<&mut [u8]> {
        while self.slots.iter().flatten().any(|w| w.end > from) {
            self.reap(1)?;
        }
        Ok(&mut self.buf)
    }

    /// Starts writing `buf[start..end]` at `offset` of `fd`, which must be open with
    /// O_DIRECT (aligned offset, length and address) for the write to run in the background.
    pub fn submit(&mut self, fd: &Fd, start: usize, end: usize, offset: u64) -> Result<()> {
        let Some(ctx) = self.ctx else {
            self.failed_at = offset;
            return pwrite_all(fd, &self.buf[start..end], offset);
        };
        let slot = loop {
            match self.slots.iter().position(Option::is_none) {
                Some(slot) => break slot,
                None => self.reap(1)?,
            }
        };
        let data = &self.buf[start..end];
        let iocb = Iocb {
            aio_data: slot as u64,
            aio_lio_opcode: IOCB_CMD_PWRITE,
            aio_fildes: fd.raw() as u32,
            aio_buf: data.as_ptr() as u64,
            aio_nbytes: data.len() as u64,
            aio_offset: offset as i64,
            ..Iocb::default()
        };
        let mut list = [&iocb as *const Iocb];
        loop {
            // SAFETY: `list` points to one valid iocb, which the kernel copies during the
            // call. The data it names lies inside `self.buf`, which stays allocated until
            // the write completes (Drop waits for every write) and is not written to
            // meanwhile (writable_from waits for writes at or past its start).
            let ret = unsafe {
                libc::syscall(libc::SYS_io_submit, ctx, 1 as libc::c_long, list.as_mut_ptr())
            };
            match check(ret as libc::c_int) {
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                // The kernel's queue is full: let some writes finish, then try again.
                Err(e) if e.0 == libc::EAGAIN && self.slots.iter().any(Option::is_some) => {
                    self.reap(1)?
                }
                Err(e) => {
                    self.failed_at = offset;
                    return Err(e);
                }
            }
        }
        self.slots[slot] = Some(InFlight { start, end, offset });
        Ok(())
    }

    /// Waits for every write in flight; the first failure is the error.
    pub fn wait_all(&mut self) -> Result<()> {
        let mut first = Ok(());
        while self.slots.iter().any(Option::is_some) {
            if let Err(e) = self.reap(1) {
                first = first.and(Err(e));
            }
        }
        first
    }

    /// Collects at least `min` finished writes.
    fn reap(&mut self, min: usize) -> Result<()> {
        let Some(ctx) = self.ctx else { return Ok(()) };
        let mut events = [IoEvent::default(); AIO_SLOTS];
        let n = aio_events(ctx, min, &mut events)?;
        let mut result = Ok(());
        for event in &events[..n] {
            let Some(write) = self.slots.get_mut(event.data as usize).and_then(Option::take) else {
                continue;
            };
            let wanted = (write.end - write.start) as i64;
            if event.res != wanted && result.is_ok() {
                self.failed_at = write.offset;
                // A short write means the device ended early.
                result =
                    Err(if event.res < 0 { Errno(-event.res as i32) } else { Errno(libc::EIO) });
            }
        }
        result
    }
}

impl Drop for DirectRing {
    fn drop(&mut self) {
        let _ = self.wait_all();
        if let Some(ctx) = self.ctx {
            aio_destroy(ctx);
        }
    }
}

/// A Linux AIO context for `slots` operations in flight; `None` on a kernel built without
/// CONFIG_AIO (or with AIO limits reached): callers then do their I/O synchronously.
pub(super) fn aio_setup(slots: usize) -> Option<libc::c_ulong> {
    let mut ctx: libc::c_ulong = 0;
    // SAFETY: io_setup writes the new context id through the pointer, valid for the call.
    let ret = unsafe {
        libc::syscall(libc::SYS_io_setup, slots as libc::c_long, &mut ctx as *mut libc::c_ulong)
    };
    check(ret as libc::c_int).ok().map(|_| ctx)
}

/// Waits for at least `min` finished operations; fills `events`, returns how many.
pub(super) fn aio_events(ctx: libc::c_ulong, min: usize, events: &mut [IoEvent]) -> Result<usize> {
    loop {
        // SAFETY: `events` has room for events.len() events, the maximum we ask for; a
        // null timeout means wait; the kernel writes only into `events`.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_io_getevents,
                ctx,
                min as libc::c_long,
                events.len() as libc::c_long,
                events.as_mut_ptr(),
                core::ptr::null_mut::<libc::timespec>(),
            )
        };
        match check(ret as libc::c_int) {
            Err(Errno::EINTR) => continue,
            other => return other.map(|n| n as usize),
        }
    }
}

/// Destroys an AIO context; the kernel cancels or waits for what is still in flight, so
/// no kernel reference to the caller's buffers outlives this call.
pub(super) fn aio_destroy(ctx: libc::c_ulong) {
    // SAFETY: io_destroy takes the context id only; see above for the buffers.
    unsafe { libc::syscall(libc::SYS_io_destroy, ctx) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_writes_land_in_the_file() {
        let dir = std::env::temp_dir().join(std::format!("imprint-ring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk");
        let fd = open_file(path.to_str().unwrap(), true)
            .or_else(|_| open_file(path.to_str().unwrap(), false))
            .unwrap();
        let mut ring = DirectRing::new(64 * PAGE).unwrap();
        for round in 0..3u8 {
            let buf = ring.writable_from(0).unwrap();
            buf.iter_mut().enumerate().for_each(|(i, b)| *b = (i / PAGE) as u8 ^ round);
            for chunk in 0..8 {
                let (start, end) = (chunk * 8 * PAGE, (chunk + 1) * 8 * PAGE);
                ring.submit(&fd, start, end, (round as usize * 64 * PAGE + start) as u64).unwrap();
            }
        }
        ring.wait_all().unwrap();
        drop(ring);
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len(), 3 * 64 * PAGE);
        for (i, b) in data.iter().enumerate() {
            assert_eq!(*b, ((i % (64 * PAGE)) / PAGE) as u8 ^ (i / (64 * PAGE)) as u8, "byte {i}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
