//! Block devices (and regular files standing in for them): exclusive O_DIRECT opens, the
//! block ioctls, zeroing ranges, positioned writes, and page-aligned buffers for O_DIRECT.

use super::fd::{Fd, OpenFlags};
use super::{check, check_size, retry, Errno, Result};
use ::alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use libc::{c_int, c_void};

// The block ioctls from <linux/fs.h>. libc lacks most of them; _IO(0x12, n) is
// (0x12 << 8) | n, and BLKGETSIZE64 is _IOR(0x12, 114, size_t).
const BLKRRPART: libc::Ioctl = 0x125f; // _IO(0x12, 95)
const BLKFLSBUF: libc::Ioctl = 0x1261; // _IO(0x12, 97)
const BLKSSZGET: libc::Ioctl = 0x1268; // _IO(0x12, 104)
const BLKGETSIZE64: libc::Ioctl = 0x8008_1272u32 as libc::Ioctl; // _IOR(0x12, 114, u64)
const BLKZEROOUT: libc::Ioctl = 0x127f; // _IO(0x12, 127)
const BLKPG: libc::Ioctl = 0x1269; // _IO(0x12, 105)

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
        Ok(st) => Ok(Some(match st.st_mode & libc::S_IFMT {
            libc::S_IFBLK => Kind::BlockDevice,
            libc::S_IFREG => Kind::RegularFile,
            _ => Kind::Other,
        })),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// fstatat(2) as the bare system call (newfstatat, through `syscall`): `path` relative to
/// `dirfd`, or with an empty path and AT_EMPTY_PATH the file behind `dirfd` itself. Not
/// musl's stat/fstat: their fallbacks for old kernels (/proc/self/fd paths) cost the init
/// ~600 bytes.
fn stat_at(dirfd: c_int, path: *const libc::c_char, flags: c_int) -> Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: callers pass a NUL-terminated path valid for the call; `st` is a valid
    // writable stat, and on x86_64 libc's `struct stat` is the kernel's layout that
    // newfstatat fills.
    let ret = unsafe { libc::syscall(libc::SYS_newfstatat, dirfd, path, &mut st, flags) };
    check_size(ret as libc::ssize_t).map(|_| st)
}

/// `stat_at` of an open file.
fn stat_fd(fd: &Fd) -> Result<libc::stat> {
    stat_at(fd.raw(), c"".as_ptr(), libc::AT_EMPTY_PATH)
}

/// Opens an image target read-write, with O_DIRECT when `direct`. A block `device` gets
/// O_EXCL: the kernel refuses (EBUSY) a device that is mounted, part of an array or held
/// open exclusively by anyone else, and keeps others from claiming it while we write. A
/// regular file is created if missing (O_EXCL would mean "must not exist yet").
pub fn open(path: &str, device: bool, direct: bool) -> Result<Fd> {
    let how = if device { OpenFlags::EXCLUSIVE } else { OpenFlags::CREATE };
    Fd::open(path, OpenFlags::READ_WRITE | how | OpenFlags::DIRECT * direct as c_int, 0o644)
}

/// Opens an image's target (`write`: read-write, a missing file created) or a capture's
/// source (read-only): a block device with O_EXCL (EBUSY while it is mounted, in an array
/// or held open exclusively; and no one else claims it meanwhile), a regular file with
/// O_DIRECT unless its filesystem refuses it (EINVAL: tmpfs on older kernels). With
/// whether it is a device; `None`: it is neither.
pub fn open_image(path: &str, write: bool) -> Result<Option<(Fd, bool)>> {
    let kind = kind_of(path)?.unwrap_or(Kind::RegularFile);
    let device = kind == Kind::BlockDevice;
    if kind == Kind::Other {
        return Ok(None);
    }
    let how = if device { OpenFlags::EXCLUSIVE } else { OpenFlags::CREATE * write as c_int };
    let flags = how | if write { OpenFlags::READ_WRITE } else { OpenFlags::READ };
    let fd = match Fd::open(path, flags | OpenFlags::DIRECT, 0o644) {
        Err(Errno::EINVAL) if !device => Fd::open(path, flags, 0o644),
        other => other,
    }?;
    Ok(Some((fd, device)))
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
    let mut size: c_int = 0;
    ioctl(fd, BLKSSZGET, &mut size as *mut c_int as usize).map(|_| size as u32)
}

/// The device's size in bytes.
pub fn device_size(fd: &Fd) -> Result<u64> {
    let mut size: u64 = 0;
    ioctl(fd, BLKGETSIZE64, &mut size as *mut u64 as usize).map(|_| size)
}

/// Drops the device's buffer cache, so later readers (the partition scan, the next stage)
/// see what is on the disk rather than stale cached blocks, then asks the kernel to
/// re-read the partition table. EBUSY while a partition is in use; EINVAL on devices
/// without partition support (e.g. a loop device without -P).
pub fn reread_partitions(fd: &Fd) -> Result<()> {
    ioctl(fd, BLKFLSBUF, 0)?;
    ioctl(fd, BLKRRPART, 0)
}

/// struct blkpg_partition of <linux/blkpg.h>: a partition's first byte and length.
#[repr(C)]
struct BlkpgPartition {
    start: i64,
    length: i64,
    pno: c_int,
    devname: [u8; 64],
    volname: [u8; 64],
}

/// struct blkpg_ioctl_arg: what to do (1 add, 2 delete) to the partition `data` points to.
#[repr(C)]
struct BlkpgArg {
    op: c_int,
    flags: c_int,
    datalen: c_int,
    data: *mut BlkpgPartition,
}

/// Adds partition `number` over `bytes` (first byte, length) to the kernel's view of the
/// disk, or with `None` deletes it (BLKPG): one partition at a time, which works while
/// another partition is in use (BLKRRPART then refuses the whole table). EBUSY: that
/// partition is in use (or, adding, overlaps one); ENXIO: deleting one that is not there.
pub fn set_partition(fd: &Fd, number: u32, bytes: Option<(u64, u64)>) -> Result<()> {
    let (op, (start, length)) = bytes.map_or((2, (0, 0)), |span| (1, span));
    let (start, length, pno) = (start as i64, length as i64, number as c_int);
    let mut part = BlkpgPartition { start, length, pno, devname: [0; 64], volname: [0; 64] };
    let datalen = core::mem::size_of::<BlkpgPartition>() as c_int;
    let arg = BlkpgArg { op, flags: 0, datalen, data: &mut part };
    // SAFETY: BLKPG reads the argument and the partition it points to (its layout is the
    // kernel's, repr(C)), both valid for the call.
    check(unsafe { libc::ioctl(fd.raw(), BLKPG, &arg) }).map(|_| ())
}

/// One of the block ioctls above, whose argument is nothing or a pointer to the one
/// value it writes.
fn ioctl(fd: &Fd, request: libc::Ioctl, arg: usize) -> Result<()> {
    // SAFETY: BLKSSZGET writes an int and BLKGETSIZE64 a u64 through `arg`, which their
    // callers point at one; BLKFLSBUF and BLKRRPART take no argument.
    check(unsafe { libc::ioctl(fd.raw(), request, arg) }).map(|_| ())
}

/// Zeroes `len` bytes at `offset` without sending the zeros: FALLOC_FL_ZERO_RANGE (the
/// filesystem or device records the range as zeroed: unwritten extents, WRITE ZEROES,
/// thin unmap), or with `ioctl` BLKZEROOUT, the block layer's way (older kernels' only one).
/// Takes the raw fd: the ring's threads call it too.
pub fn zero(fd: c_int, ioctl: bool, offset: u64, len: u64) -> Result<()> {
    let range: [u64; 2] = [offset, len];
    let (at, len) = (offset as libc::off_t, len as libc::off_t);
    let mode = libc::FALLOC_FL_ZERO_RANGE;
    retry(|| {
        check(match ioctl {
            // SAFETY: BLKZEROOUT reads two u64 (start, length) through the pointer, valid
            // for the call.
            true => unsafe { libc::ioctl(fd, BLKZEROOUT, range.as_ptr()) },
            // SAFETY: fallocate takes only integers.
            false => unsafe { libc::fallocate(fd, mode, at, len) },
        })
    })
    .map(|_| ())
}

/// Reads or writes `len` bytes at `ptr` from or to `offset`, all of them (a write that
/// takes nothing is EIO: the device ended) or, reading, up to the file's end; returns how
/// many. Retries on EINTR.
///
/// # Safety
/// `ptr` is valid for `len` bytes (writable when reading) for the whole call.
unsafe fn transfer(fd: c_int, write: bool, ptr: *mut u8, len: usize, offset: u64) -> Result<usize> {
    let mut done = 0;
    while done < len {
        // SAFETY: the caller's promise covers ptr[done..len].
        let (at, left) = (unsafe { ptr.add(done) }.cast::<c_void>(), len - done);
        let pos = (offset + done as u64) as libc::off_t;
        // SAFETY: as above; a write only reads the bytes.
        let ret = unsafe {
            if write {
                libc::pwrite(fd, at, left, pos)
            } else {
                libc::pread(fd, at, left, pos)
            }
        };
        match check_size(ret) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(0) if write => return Err(Errno(libc::EIO)),
            Ok(0) => break,
            Ok(n) => done += n,
        }
    }
    Ok(done)
}

/// Fills `buf` from `offset`; the device ending first is EIO.
pub fn pread_exact(fd: &Fd, buf: &mut [u8], offset: u64) -> Result<()> {
    // SAFETY: buf is a valid writable region of buf.len() bytes for the whole call.
    match unsafe { transfer(fd.raw(), false, buf.as_mut_ptr(), buf.len(), offset) }? {
        n if n == buf.len() => Ok(()),
        _ => Err(Errno(libc::EIO)),
    }
}

/// Writes all of `buf` at `offset`.
pub fn pwrite_all(fd: &Fd, buf: &[u8], offset: u64) -> Result<()> {
    // SAFETY: buf is a valid region of buf.len() bytes for the whole call; a write only
    // reads it.
    unsafe { transfer(fd.raw(), true, buf.as_ptr().cast_mut(), buf.len(), offset) }.map(|_| ())
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

/// A page of the buffer: its type gives the allocation its alignment.
#[repr(C, align(4096))]
struct Page([u8; PAGE]);

/// A zeroed heap buffer of whole pages, page aligned as O_DIRECT needs.
pub struct AlignedBuf(Box<[Page]>);

impl AlignedBuf {
    /// At least `len` zeroed bytes (rounded up to whole pages); ENOMEM when the heap has
    /// no room.
    pub fn zeroed(len: usize) -> Result<AlignedBuf> {
        let pages = len.div_ceil(PAGE).max(1);
        let layout = core::alloc::Layout::array::<Page>(pages).map_err(|_| Errno(libc::ENOMEM))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { ::alloc::alloc::alloc_zeroed(layout) }.cast::<Page>();
        if ptr.is_null() {
            return Err(Errno(libc::ENOMEM));
        }
        // SAFETY: a zeroed allocation of the global allocator with the layout of `pages`
        // Pages (all zeros is a valid Page), which the Box now owns and frees.
        Ok(AlignedBuf(unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(ptr, pages)) }))
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the pages are contiguous, initialised bytes without padding
        // (repr(C), size PAGE), borrowed for as long as `self` is.
        unsafe { core::slice::from_raw_parts(self.0.as_ptr().cast(), self.0.len() * PAGE) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref, and `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), self.0.len() * PAGE) }
    }
}

// A ring's I/O runs on threads of its own while the caller fills or reads the rest of
// the ring: the inflater never waits for a write or a zeroing, the capture never waits
// for the next block. Several threads keep several writes in flight, as a disk (or a
// loop device's backing file) needs for its full speed. (Not Linux AIO: it cannot zero
// a range, and its teardown waits for RCU grace periods.)

/// What a ring's queued operation does.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Io {
    /// Ends the thread that takes it (what a new ring's slots hold).
    Stop = 0,
    /// Writes the ring's bytes `[start, start + len)` at `offset`.
    Write,
    /// Reads into the ring's `[start, start + len)` from `offset`, up to the file's end.
    Read,
    /// Zeroes the file's `len` bytes at `offset` (see [`zero`]); `start` is unused.
    Zero { ioctl: bool },
    /// Runs the ring's digest function over the ring's bytes `[start, start + len)` with
    /// `offset`, and XORs the result into the ring's digest (see [`DirectRing::digest`]).
    Digest,
    /// Feeds the ring's bytes `[start, start + len)` to the ring's [`Sequential`], after
    /// every Sequential operation queued before it (`offset`: its turn, set by the ring).
    Sequential,
}

/// What a ring's Sequential operations feed, in the order they were queued, one at a time
/// (a hash of the image: SHA-256, off the inflating thread).
pub trait Sequential: Send {
    fn update(&mut self, data: &[u8]);
}

/// A digest whose parts are XORed together, so that any thread may take any part: a
/// range's bytes and a number the caller chose (CRC-32 shares: crc32::share).
pub type DigestFn = fn(&[u8], u64) -> u32;

/// Operations queued at most.
const SLOTS: usize = 32;
/// Threads, hence operations in flight at most.
const THREADS: usize = 4;

#[derive(Clone, Copy)]
struct Op {
    io: Io,
    fd: c_int,
    start: usize,
    len: usize,
    offset: u64,
}

const STOP: Op = Op { io: Io::Stop, fd: -1, start: 0, len: 0, offset: 0 };

/// What a ring and its threads share: all zeros to begin with (a Stop in every slot), but
/// for the buffer, the digest function and the Sequential.
struct Shared {
    ops: [UnsafeCell<Op>; SLOTS],
    /// Per slot: its operation is queued or running.
    busy: [AtomicU32; SLOTS],
    base: *mut u8,
    /// Operations queued and taken by a thread so far (wrapping counters).
    queued: AtomicU32,
    taken: AtomicU32,
    /// Operations finished so far: what waiting for one waits on.
    finished: AtomicU32,
    /// The first failure's errno (0: none yet) and offset; after one, the rest is skipped.
    errno: AtomicI32,
    failed_at: AtomicU64,
    /// Bytes the last operation moved (a read's length).
    moved: AtomicU64,
    /// What Digest operations run, and the XOR of their results so far.
    digest_fn: Option<DigestFn>,
    digest: AtomicU32,
    /// What Sequential operations feed, and how many have had their turn.
    sequential: Option<*mut dyn Sequential>,
    turns: AtomicU32,
}

/// Waits while `*word == val`, or wakes `val` waiters (of this process: FUTEX_PRIVATE);
/// i32::MAX wakes every one (the kernel reads the count as an int: u32::MAX is -1, one).
fn futex(word: &AtomicU32, wait: bool, val: u32) {
    let op = if wait { libc::FUTEX_WAIT } else { libc::FUTEX_WAKE } | libc::FUTEX_PRIVATE_FLAG;
    let timeout = core::ptr::null::<libc::timespec>();
    // SAFETY: `word` is a valid, aligned u32 for the call; FUTEX_WAIT only reads it,
    // FUTEX_WAKE does not touch it; the null timeout means no limit.
    let _ = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), op, val, timeout) };
}

/// A ring's thread (a pthread of its own, hence its own errno): takes queued operations
/// in order and runs them, until a Stop. It allocates nothing (the allocator serves the
/// main thread only, see sys::alloc) and has no panic site; nor may a ring's digest
/// function or Sequential (the write path's crc32::share and Sha256::update have none).
extern "C" fn run(shared: *mut c_void) -> *mut c_void {
    // SAFETY: the ring's Shared, which lives until Drop has joined this thread.
    let s = unsafe { &*shared.cast::<Shared>() };
    loop {
        // The oldest operation no thread has taken yet, once there is one (wrapping
        // counters). Taken only when queued, so a push wakes one thread, not all: on a
        // machine with few cores, waking every thread per push took CPU from inflating.
        let n = s.taken.load(Ordering::Acquire);
        if s.queued.load(Ordering::Acquire) == n {
            futex(&s.queued, true, n);
            continue;
        }
        let next = n.wrapping_add(1);
        if s.taken.compare_exchange(n, next, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            continue;
        }
        let slot = n as usize % SLOTS;
        // SAFETY: the slot was written before `queued` passed n (Release, seen above) and
        // is not written again before its `busy` is cleared, below.
        let op = unsafe { *s.ops[slot].get() };
        if op.io == Io::Stop {
            s.busy[slot].store(0, Ordering::Release);
            return core::ptr::null_mut();
        }
        if op.io == Io::Sequential {
            feed(s, &op);
        } else if s.errno.load(Ordering::Relaxed) == 0 {
            let result = match op.io {
                Io::Zero { ioctl } => zero(op.fd, ioctl, op.offset, op.len as u64).map(|_| 0),
                Io::Digest => {
                    // SAFETY: as for a write below: the range lies in the buffer, which
                    // nothing writes until this operation is done.
                    let data = unsafe { core::slice::from_raw_parts(s.base.add(op.start), op.len) };
                    let part = s.digest_fn.map_or(0, |f| f(data, op.offset));
                    s.digest.fetch_xor(part, Ordering::Relaxed);
                    Ok(0)
                }
                io => {
                    // SAFETY: the ring checked that the range lies in its buffer, which
                    // outlives this thread, and touches it no more until the operation
                    // is done (DirectRing::wait_for).
                    let at = unsafe { s.base.add(op.start) };
                    // SAFETY: as above, `at` is valid for `len` bytes.
                    unsafe { transfer(op.fd, io == Io::Write, at, op.len, op.offset) }
                }
            };
            match result {
                Ok(n) => s.moved.store(n as u64, Ordering::Relaxed),
                Err(e) => {
                    s.failed_at.store(op.offset, Ordering::Relaxed);
                    s.errno.store(e.0, Ordering::Release);
                }
            }
        }
        s.busy[slot].store(0, Ordering::Release);
        s.finished.fetch_add(1, Ordering::Release);
        futex(&s.finished, false, i32::MAX as u32);
    }
}

/// Runs a Sequential operation in its turn (after a failure, only takes the turn, so the
/// later ones are not stuck waiting). The threads take operations in queue order, so the
/// one whose turn it is has always been taken: waiting for it cannot deadlock.
fn feed(s: &Shared, op: &Op) {
    let turn = op.offset as u32;
    loop {
        let done = s.turns.load(Ordering::Acquire);
        if done == turn {
            break;
        }
        futex(&s.turns, true, done);
    }
    if let Some(sequential) = s.sequential.filter(|_| s.errno.load(Ordering::Relaxed) == 0) {
        // SAFETY: the range lies in the buffer, which nothing writes until this operation
        // is done (as for a write).
        let data = unsafe { core::slice::from_raw_parts(s.base.add(op.start), op.len) };
        // SAFETY: from the `&mut` the ring borrows for as long as it lives (and its threads
        // run); only the thread whose turn it is uses it, after the previous turn's
        // Release (seen by the Acquire above), and the ring's owner cannot touch it.
        unsafe { (*sequential).update(data) };
    }
    s.turns.store(turn.wrapping_add(1), Ordering::Release);
    futex(&s.turns, false, i32::MAX as u32);
}

/// A page-aligned buffer whose ranges threads of its own write to a file (or read into
/// from one) in the background, and which zeroes ranges of that file.
///
/// Bytes of a range being written must not change until the write is done:
/// [`DirectRing::writable_from`] waits for every operation at or past its start, and
/// callers only write from there on. Dropping the ring waits for everything queued.
pub struct DirectRing<'s> {
    buf: AlignedBuf,
    shared: *const Shared,
    /// The threads, the first `started` of them started, joined in Drop.
    threads: [libc::pthread_t; THREADS],
    started: usize,
    /// Sequential operations queued so far: the next one's turn.
    turns: u32,
    /// The Sequential the threads feed, borrowed for the ring's life.
    _sequential: core::marker::PhantomData<&'s mut ()>,
}

impl<'s> DirectRing<'s> {
    /// A ring of `len` bytes; its Digest operations run `digest`, its Sequential ones
    /// feed `sequential`.
    pub fn new(
        len: usize,
        digest: Option<DigestFn>,
        sequential: Option<&'s mut (dyn Sequential + 'static)>,
    ) -> Result<DirectRing<'s>> {
        let mut buf = AlignedBuf::zeroed(len)?;
        let mut shared = Box::<Shared>::new_zeroed();
        let p = shared.as_mut_ptr();
        // SAFETY: all zeros is a valid Shared (a Stop in every slot, counters at 0, no digest
        // function) but perhaps for `sequential` (an Option of a fat raw pointer): it is
        // written, as `base` and `digest_fn` are, through raw pointers into the allocation
        // before the allocation is taken as initialised.
        let shared = unsafe {
            (&raw mut (*p).base).write(buf.as_mut_ptr());
            (&raw mut (*p).digest_fn).write(digest);
            (&raw mut (*p).sequential).write(sequential.map(|s| s as *mut dyn Sequential));
            Box::into_raw(shared.assume_init())
        };
        // SAFETY: pthread_t is an integer or a pointer (musl), for which 0 is valid.
        let threads = unsafe { core::mem::zeroed() };
        let _sequential = core::marker::PhantomData;
        let mut ring = DirectRing { buf, shared, threads, started: 0, turns: 0, _sequential };
        for _ in 0..THREADS {
            let thread = &mut ring.threads[ring.started % THREADS];
            // SAFETY: musl's default attributes (its own stack and TLS: `run` touches a few
            // pages of them); Drop frees `shared` and the buffer only once every thread
            // started has been joined.
            match unsafe { libc::pthread_create(thread, core::ptr::null(), run, shared.cast()) } {
                0 => ring.started += 1,
                // Dropping the ring stops and joins the threads already started.
                err => return Err(Errno(err)),
            }
        }
        Ok(ring)
    }

    fn shared(&self) -> &Shared {
        // SAFETY: allocated in `new`, freed only in Drop.
        unsafe { &*self.shared }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// `buf[start..end]` (clamped to the ring), once no read into it is queued.
    pub fn data(&self, start: usize, end: usize) -> &[u8] {
        let end = end.min(self.len());
        let start = start.min(end);
        self.wait_for(start, end, false);
        // SAFETY: in bounds and initialised (zeroed at allocation); no queued read
        // writes into it, and none can be queued while the slice lives (that takes
        // `&mut self`).
        unsafe { core::slice::from_raw_parts(self.buf.as_ptr().add(start), end - start) }
    }

    /// Disk offset of the operation that failed.
    pub fn failed_at(&self) -> u64 {
        self.shared().failed_at.load(Ordering::Relaxed)
    }

    /// The buffer for filling at `from` (an inflater's history lies below it): up to the
    /// first byte past `from` that a queued operation still uses, once at least 64 KiB
    /// (or the rest of the ring) are free. (A failed operation is the error of the next
    /// `queue` or `wait_all`.)
    pub fn writable_from(&mut self, from: usize) -> &mut [u8] {
        let len = self.len();
        self.wait_for(from, (from + (64 << 10)).min(len), true);
        let s = self.shared();
        let mut free = len;
        for (busy, op) in s.busy.iter().zip(&s.ops) {
            // SAFETY: only this thread writes slots; the others only read them.
            let op = unsafe { &*op.get() };
            if busy.load(Ordering::Acquire) != 0
                && matches!(op.io, Io::Write | Io::Read | Io::Digest | Io::Sequential)
                && op.start + op.len > from
            {
                free = free.min(op.start.max(from));
            }
        }
        &mut self.buf[..free]
    }

    /// Copies the last `keep` bytes to the start (an inflater's history, when it goes on
    /// from there), once no queued write still uses the start.
    pub fn rewind(&mut self, keep: usize) {
        self.wait_for(0, keep, true);
        let len = self.len();
        self.buf.copy_within(len - keep.min(len).., 0);
    }

    /// Queues `io` on `fd` at `offset`, of `len` bytes at `start` in the ring (O_DIRECT:
    /// aligned offset, length and address); the first failure so far is the error.
    /// [`DirectRing::wait_all`] tells how much a read read.
    pub fn queue(&mut self, io: Io, fd: &Fd, start: usize, len: usize, offset: u64) -> Result<()> {
        let zero = matches!(io, Io::Zero { .. });
        if !zero && start.checked_add(len).is_none_or(|end| end > self.len()) {
            return Err(Errno::EINVAL);
        }
        self.status()?;
        let offset = match io {
            Io::Sequential => {
                self.turns = self.turns.wrapping_add(1);
                self.turns.wrapping_sub(1) as u64
            }
            _ => offset,
        };
        self.push(Op { io, fd: fd.raw(), start, len, offset });
        Ok(())
    }

    /// Queues `op` once its slot is free.
    fn push(&self, op: Op) {
        let s = self.shared();
        let n = s.queued.load(Ordering::Relaxed);
        let slot = n as usize % SLOTS;
        self.wait_while(&|i, _| i == slot);
        // SAFETY: only this thread writes slots, and only free ones: no thread reads this
        // one until `queued` passes n, below.
        unsafe { *s.ops[slot].get() = op };
        s.busy[slot].store(1, Ordering::Relaxed);
        s.queued.store(n.wrapping_add(1), Ordering::Release);
        // One thread: any may take it (a thread still running checks before it sleeps).
        futex(&s.queued, false, 1);
    }

    /// The XOR of the Digest operations' results since the last call, once every queued
    /// operation is done.
    pub fn digest(&mut self) -> Result<u32> {
        self.wait_all()?;
        Ok(self.shared().digest.swap(0, Ordering::Relaxed))
    }

    /// Waits for every queued operation; the first failure is the error, else the
    /// bytes the last one moved.
    pub fn wait_all(&mut self) -> Result<usize> {
        self.wait_while(&|_, _| true);
        self.status().map(|_| self.shared().moved.load(Ordering::Relaxed) as usize)
    }

    fn status(&self) -> Result<()> {
        match self.shared().errno.load(Ordering::Acquire) {
            0 => Ok(()),
            errno => Err(Errno(errno)),
        }
    }

    /// Waits until no queued read (or, with `writes`, write or digest: what reads the
    /// ring) touches `buf[start..end]`.
    fn wait_for(&self, start: usize, end: usize, writes: bool) {
        self.wait_while(&|_, op| {
            let reads_ring = matches!(op.io, Io::Write | Io::Digest | Io::Sequential);
            let io = op.io == Io::Read || reads_ring && writes;
            io && op.start < end && start < op.start + op.len
        });
    }

    /// Waits until no queued operation is `pending(slot, op)`.
    fn wait_while(&self, pending: &dyn Fn(usize, &Op) -> bool) {
        let s = self.shared();
        loop {
            let finished = s.finished.load(Ordering::Acquire);
            let waiting = (0..SLOTS).any(|i| {
                // SAFETY: only this thread writes slots; the others only read them.
                s.busy[i].load(Ordering::Acquire) != 0 && pending(i, unsafe { &*s.ops[i].get() })
            });
            if !waiting {
                return;
            }
            futex(&s.finished, true, finished);
        }
    }
}

impl Drop for DirectRing<'_> {
    fn drop(&mut self) {
        // The threads run (or skip) everything queued, then end; only then are the
        // buffer and the shared state freed.
        for _ in 0..self.started {
            self.push(STOP);
        }
        for &thread in self.threads.iter().take(self.started) {
            // SAFETY: a thread this ring started and has not joined yet; it ends at the
            // Stop queued above.
            unsafe { libc::pthread_join(thread, core::ptr::null_mut()) };
        }
        // SAFETY: from Box::into_raw in `new`; the threads that used it have ended.
        drop(unsafe { Box::from_raw(self.shared.cast_mut()) });
    }
}

/// Reading a disk front to back, the next block already on its way while the caller
/// works on this one: direct reads get no read-ahead from the kernel, so a capture would
/// otherwise wait for every read before deflating it.
pub struct ReadAhead {
    /// Two blocks: the caller reads one while the ring's thread fills the other.
    ring: DirectRing<'static>,
    /// Bytes read so far (whole blocks but for the last): the next block's offset.
    offset: u64,
    /// Where the block `next` returned last lies in the ring.
    current: (usize, usize),
}

impl ReadAhead {
    /// Two buffers of `block` bytes (a multiple of the logical block size).
    pub fn new(block: usize) -> Result<ReadAhead> {
        let ring = DirectRing::new(2 * block, None, None)?;
        Ok(ReadAhead { ring, offset: 0, current: (0, 0) })
    }

    /// The next block of `fd` (the same fd on every call); a short block is the last,
    /// then empty ones follow.
    pub fn next(&mut self, fd: &Fd) -> Result<&[u8]> {
        let block = self.ring.len() / 2;
        if self.offset == 0 {
            self.ring.queue(Io::Read, fd, 0, block, 0)?;
        } else if self.current.1 - self.current.0 < block {
            // Direct reads of a disk or a file come back short only at its end.
            self.current = (0, 0);
            return Ok(&[]);
        }
        let n = self.ring.wait_all()?;
        // The blocks alternate between the halves, the first block in the first.
        let start = if self.offset > 0 && self.current.0 == 0 { block } else { 0 };
        self.offset += n as u64;
        self.current = (start, start + n);
        if n == block {
            self.ring.queue(Io::Read, fd, block - start, block, self.offset)?;
        }
        Ok(self.current())
    }

    /// The block the last `next` returned.
    pub fn current(&self) -> &[u8] {
        self.ring.data(self.current.0, self.current.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_writes_land_in_the_file() {
        let dir = std::env::temp_dir().join(std::format!("imprint-ring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk");
        let fd = open(path.to_str().unwrap(), false, true)
            .or_else(|_| open(path.to_str().unwrap(), false, false))
            .unwrap();
        let mut ring = DirectRing::new(64 * PAGE, None, None).unwrap();
        for round in 0..3u8 {
            ring.wait_all().unwrap();
            let buf = ring.writable_from(0);
            assert_eq!(buf.len(), 64 * PAGE);
            buf.iter_mut().enumerate().for_each(|(i, b)| *b = (i / PAGE) as u8 ^ round);
            for chunk in 0..8 {
                let (start, end) = (chunk * 8 * PAGE, (chunk + 1) * 8 * PAGE);
                let offset = (round as usize * 64 * PAGE + start) as u64;
                ring.queue(Io::Write, &fd, start, end - start, offset).unwrap();
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
    fn digests_of_ranges_are_xored_once_done() {
        fn sum(data: &[u8], n: u64) -> u32 {
            data.iter().fold(n as u32, |a, &b| a.wrapping_mul(31).wrapping_add(b as u32))
        }
        let fd = Fd::open("/dev/null", OpenFlags::READ_WRITE, 0).unwrap();
        let mut ring = DirectRing::new(16 * PAGE, Some(sum), None).unwrap();
        let buf = ring.writable_from(0);
        buf.iter_mut().enumerate().for_each(|(i, b)| *b = (i * 7 % 253) as u8);
        let ranges = [(0, 100, 5), (100, 3 * PAGE, 9), (5 * PAGE, 11 * PAGE, 1)];
        let want = ranges.iter().fold(0, |x, &(a, b, n)| x ^ sum(&ring.data(a, b).to_vec(), n));
        for (a, b, n) in ranges {
            ring.queue(Io::Digest, &fd, a, b - a, n).unwrap();
        }
        assert_eq!(ring.digest().unwrap(), want);
        assert_eq!(ring.digest().unwrap(), 0, "taken");
        assert!(ring.queue(Io::Digest, &fd, 15 * PAGE, 2 * PAGE, 0).is_err(), "past the ring");
    }

    #[test]
    fn sequential_operations_run_one_at_a_time_in_queue_order() {
        struct Running(u64, u32);
        impl Sequential for Running {
            fn update(&mut self, data: &[u8]) {
                // Some feeds take long: a later one on another thread would overtake it.
                if data.len() % 2 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                self.0 = data.iter().fold(self.0, |h, &b| h.wrapping_mul(1_000_003) ^ b as u64);
                self.1 += 1;
            }
        }
        let fd = Fd::open("/dev/null", OpenFlags::READ_WRITE, 0).unwrap();
        let mut running = Running(7, 0);
        let mut want = Running(7, 0);
        {
            let mut ring = DirectRing::new(64 * PAGE, None, Some(&mut running)).unwrap();
            let buf = ring.writable_from(0);
            buf.iter_mut().enumerate().for_each(|(i, b)| *b = (i * 13 % 251) as u8);
            // Short and long ranges, out of the ring's order, mixed with writes to /dev/null:
            // whichever thread takes one, they are fed in the order queued.
            for k in 0..40 {
                let (start, len) = ((k * 7919) % (60 * PAGE), 1 + (k * 4099) % (3 * PAGE));
                want.update(&ring.data(start, start + len).to_vec());
                ring.queue(Io::Sequential, &fd, start, len, 0).unwrap();
                ring.queue(Io::Write, &fd, 0, PAGE, 0).unwrap();
            }
            ring.wait_all().unwrap();
        }
        assert_eq!((running.0, running.1), (want.0, 40));
    }

    #[test]
    fn aligned_buffers_are_page_aligned_and_zeroed() {
        let mut b = AlignedBuf::zeroed(3 * PAGE + 7).unwrap();
        assert_eq!(b.as_ptr() as usize % PAGE, 0);
        assert_eq!(b.len(), 4 * PAGE, "whole pages");
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
        let fd = open(p, false, false).unwrap();
        assert_eq!(kind_of(p).unwrap(), Some(Kind::RegularFile));
        set_len(&fd, 3 * PAGE as u64).unwrap();
        pwrite_all(&fd, &[0xAB; PAGE * 2], PAGE as u64 / 2).unwrap();
        zero(fd.raw(), false, PAGE as u64, PAGE as u64).unwrap();
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

    #[test]
    fn blocks_come_in_order_then_a_short_one_then_nothing() {
        let dir =
            std::env::temp_dir().join(std::format!("imprint-readahead-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk");
        let data: std::vec::Vec<u8> =
            (0..(5 * 16 * 4096 + 4096u32)).map(|i| (i / 4096 * 7 + i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let p = path.to_str().unwrap();
        let fd = open(p, false, true).or_else(|_| open(p, false, false)).unwrap();
        let mut reader = ReadAhead::new(16 * 4096).unwrap();
        let mut got = std::vec::Vec::new();
        let mut sizes = std::vec::Vec::new();
        loop {
            let block = reader.next(&fd).unwrap();
            sizes.push(block.len());
            if block.is_empty() {
                break;
            }
            got.extend_from_slice(block);
            assert!(reader.current() == &data[got.len() - reader.current().len()..got.len()]);
        }
        assert!(got == data);
        assert_eq!(sizes, [65536, 65536, 65536, 65536, 65536, 4096, 0]);
        assert!(reader.next(&fd).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
