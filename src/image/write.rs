//! Writing an image onto a block device (or a regular file), in the order that never
//! leaves a half-written disk that looks bootable:
//!
//! 1. open the target exclusively with O_DIRECT; refuse an image known to be too big;
//! 2. zero the first MiB (MBR, primary GPT) and the last MiB (backup GPT);
//! 3. stream the image from offset 1 MiB on, keeping its first MiB in memory;
//! 4. once the whole stream is verified (gzip CRC-32 and ISIZE of every member, the
//!    image's length, its SHA-256 when one is expected), fsync, write the first MiB, fsync;
//! 5. drop the buffer cache, re-read the partition table, wait for the partition nodes.
//!
//! On any failure after step 2 the first and last MiB are zeroed again.
//!
//! The gzip inflater writes into a page-aligned power-of-two ring that is at once its
//! 32 KiB history and the O_DIRECT write buffer: each MiB is written straight out of it.
//! Runs of zero blocks are not written but zeroed (fallocate ZERO_RANGE or BLKZEROOUT).

use super::gzip::{Decoder, GzipError, MAGIC};
use super::progress::Progress;
use super::sha256::{Hex, Sha256};
use super::{is_zero, Format};
use crate::io::Read;
use crate::sys::block::{self, AlignedBuf, DirectRing, Kind};
use crate::sys::fd::Fd;
use crate::sys::{self, fs, time, Errno};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

/// The image's first MiB is held back until the end; the device's first and last MiB are
/// zeroed before the first write.
pub const HEAD: u64 = 1 << 20;
pub const TAIL: u64 = 1 << 20;
/// The inflate ring and write buffer (a power of two, a multiple of FLUSH).
const RING: usize = 4 << 20;
/// The inflater's history: deflate refers back 32 KiB at most.
const WINDOW: usize = 32 << 10;
/// Written out of the ring whenever this much is ready. When the ring wraps, the inflater
/// waits for the last of these writes: smaller means less waiting, more system calls.
const FLUSH: usize = 512 << 10;
/// Compressed input buffer: room for the longest gzip header we accept, and some.
const INPUT: usize = 128 << 10;
/// Alignment of every O_DIRECT write (a page covers logical blocks of 512 to 4096) and
/// the granularity of zero-block detection.
const UNIT: usize = block::PAGE;
/// Zero runs shorter than this are written like data: skipping them would cost more
/// system calls than it saves.
const SPARSE_MIN: usize = 64 << 10;
/// How often the caller's hook runs (progress line, DHCP lease upkeep).
const TICK: Duration = Duration::from_secs(1);
/// Bound on waiting for partition device nodes after the re-read.
const NODE_WAIT: Duration = Duration::from_secs(5);

/// What the caller knows about the image. The default: nothing known, sparse.
#[derive(Debug, Clone)]
pub struct Options {
    /// The raw image's length (the plan's imageSize, --size); for a raw image the source
    /// length is used when this is not given.
    pub image_size: Option<u64>,
    /// The source's length (Content-Length, a file's size): progress percent and ETA.
    pub source_size: Option<u64>,
    /// Expected SHA-256 of the raw image.
    pub sha256: Option<[u8; 32]>,
    /// Zero runs of zero blocks instead of writing them.
    pub sparse: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { image_size: None, source_size: None, sha256: None, sparse: true }
    }
}

/// What the partition table re-read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionScan {
    /// Not a block device.
    NotApplicable,
    /// The device has no partition support (e.g. a loop device without -P).
    Unsupported,
    /// A partition is in use: the kernel kept its old table.
    Busy,
    /// Re-read; this many partitions, and their device nodes are present.
    Rescanned(u32),
}

/// A finished write.
#[derive(Debug, Clone)]
pub struct Summary {
    pub format: Format,
    pub image_len: u64,
    pub source_len: u64,
    /// gzip members (0 for a raw image).
    pub members: u32,
    /// Bytes zeroed rather than written.
    pub sparse_bytes: u64,
    pub sha256: Option<[u8; 32]>,
    pub partitions: PartitionScan,
}

/// Why writing an image failed. `E` is the caller's error (the source's, the hook's).
#[derive(Debug)]
pub enum WriteError<E> {
    /// The target could not be opened.
    Open {
        errno: Errno,
    },
    /// The device is mounted or held open exclusively by someone else.
    Busy,
    /// The target is neither a block device nor a regular file.
    NotATarget,
    /// A device query or flush failed (`doing` says which).
    Device {
        doing: &'static str,
        errno: Errno,
    },
    /// Writing or zeroing at `offset` failed.
    Write {
        doing: &'static str,
        offset: u64,
        errno: Errno,
    },
    /// Reading the source failed.
    Read(E),
    /// The hook asked to stop.
    Aborted(E),
    /// The source holds no bytes at all.
    Empty,
    Gzip(GzipError),
    /// The image's known size exceeds the device; found before the first write.
    TooBig {
        image: u64,
        device: u64,
    },
    /// The image (of unknown size) went on past the device's end.
    PastEnd {
        device: u64,
    },
    /// The image's length differs from the size it was announced with.
    SizeMismatch {
        expected: u64,
        actual: u64,
    },
    Sha256 {
        expected: [u8; 32],
        actual: [u8; 32],
    },
    /// A failure, after which zeroing the first and last MiB again failed too.
    NotWiped {
        cause: Box<WriteError<E>>,
        errno: Errno,
    },
}

impl<E: fmt::Display> fmt::Display for WriteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Open { errno } => write!(f, "opening the target for writing: {errno}"),
            WriteError::Busy => {
                f.write_str("the target device is in use (mounted, or held open by another program): refusing to write")
            }
            WriteError::NotATarget => f.write_str("the target is neither a block device nor a regular file"),
            WriteError::Device { doing, errno } => write!(f, "{doing}: {errno}"),
            WriteError::Write { doing, offset, errno } => write!(f, "{doing} at byte {offset}: {errno}"),
            WriteError::Read(e) => write!(f, "reading the image: {e}"),
            WriteError::Aborted(e) => write!(f, "image write stopped: {e}"),
            WriteError::Empty => f.write_str("the image is empty"),
            WriteError::Gzip(e) => e.fmt(f),
            WriteError::TooBig { image, device } => {
                write!(f, "the image ({image} bytes) is bigger than the target ({device} bytes): nothing written")
            }
            WriteError::PastEnd { device } => {
                write!(f, "the image goes on past the end of the target ({device} bytes)")
            }
            WriteError::SizeMismatch { expected, actual } => {
                write!(f, "the image is {actual} bytes, but {expected} were announced")
            }
            WriteError::Sha256 { expected, actual } => {
                write!(f, "the image's sha256 is {}, expected {}", Hex(actual), Hex(expected))
            }
            WriteError::NotWiped { cause, errno } => {
                write!(
                    f,
                    "{cause}; then zeroing the first and last MiB failed too ({errno}): the disk may look bootable"
                )
            }
        }
    }
}

/// The line `imprint write` prints: `1234 bytes (gzip, 1 member); 0 bytes zeroed, not
/// written; sha256 ... verified; 2 partitions`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes ({}", self.image_len, self.format)?;
        if self.format == Format::Gzip {
            let plural = if self.members == 1 { "" } else { "s" };
            write!(f, ", {} member{plural}", self.members)?;
        }
        write!(f, "); {} bytes zeroed, not written", self.sparse_bytes)?;
        if let Some(d) = &self.sha256 {
            write!(f, "; sha256 {} verified", Hex(d))?;
        }
        match self.partitions {
            PartitionScan::Rescanned(n) => write!(f, "; {n} partitions"),
            PartitionScan::Busy => {
                f.write_str("; partition table NOT re-read: a partition is in use")
            }
            _ => Ok(()),
        }
    }
}

/// How the target zeroes a range, learned on the first zeroing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zeroing {
    Fallocate,
    ZeroOut,
    Write,
}

/// The open target.
struct Disk {
    fd: Fd,
    kind: Kind,
    /// The byte past which nothing may be written; `None` for a file that grows.
    limit: Option<u64>,
    zeroing: Zeroing,
}

impl Disk {
    fn open<E>(path: &str) -> Result<Disk, WriteError<E>> {
        let kind = block::kind_of(path).map_err(|errno| WriteError::Open { errno })?;
        match kind {
            Some(Kind::BlockDevice) => {
                let fd = block::open_device(path, true).map_err(|errno| match errno {
                    Errno::EBUSY => WriteError::Busy,
                    errno => WriteError::Open { errno },
                })?;
                let device = |doing| move |errno| WriteError::Device { doing, errno };
                let block_size = block::logical_block_size(&fd)
                    .map_err(device("reading the logical block size"))?;
                if block_size as usize > UNIT || UNIT % block_size as usize != 0 {
                    return Err(WriteError::Device {
                        doing: "checking the logical block size",
                        errno: Errno::EINVAL,
                    });
                }
                let size = block::device_size(&fd).map_err(device("reading the device size"))?;
                Ok(Disk {
                    fd,
                    kind: Kind::BlockDevice,
                    limit: Some(size),
                    zeroing: Zeroing::Fallocate,
                })
            }
            Some(Kind::RegularFile) | None => {
                // Filesystems without O_DIRECT (tmpfs on older kernels) refuse it with EINVAL.
                let fd = match block::open_file(path, true) {
                    Err(Errno::EINVAL) => block::open_file(path, false),
                    other => other,
                }
                .map_err(|errno| WriteError::Open { errno })?;
                let len = block::file_len(&fd).map_err(|errno| WriteError::Device {
                    doing: "reading the file size",
                    errno,
                })?;
                // A file that has a length stands for a disk of that size; an empty one grows.
                let limit = (len > 0).then_some(len);
                Ok(Disk { fd, kind: Kind::RegularFile, limit, zeroing: Zeroing::Fallocate })
            }
            Some(Kind::Other) => Err(WriteError::NotATarget),
        }
    }

    /// The current end: the device size, or a growing file's length.
    fn end(&self) -> sys::Result<u64> {
        match self.limit {
            Some(size) => Ok(size),
            None => block::file_len(&self.fd),
        }
    }

    /// Zeroes a range: without sending zeros where the target can, else by writing them.
    fn zero(&mut self, offset: u64, len: u64) -> sys::Result<()> {
        if len == 0 {
            return Ok(());
        }
        loop {
            let result = match self.zeroing {
                Zeroing::Fallocate => block::zero(&self.fd, false, offset, len),
                Zeroing::ZeroOut => block::zero(&self.fd, true, offset, len),
                Zeroing::Write => return self.write_zeros(offset, len),
            };
            match result {
                // Refused as unsupported: fall to the next method and remember it.
                Err(e) if is_unsupported(e) => {
                    self.zeroing = match (self.zeroing, self.kind) {
                        (Zeroing::Fallocate, Kind::BlockDevice) => Zeroing::ZeroOut,
                        _ => Zeroing::Write,
                    }
                }
                other => return other,
            }
        }
    }

    fn write_zeros(&mut self, mut offset: u64, len: u64) -> sys::Result<()> {
        let zeros = AlignedBuf::zeroed(len.min(FLUSH as u64) as usize)?;
        let end = offset + len;
        while offset < end {
            let n = (end - offset).min(zeros.len() as u64) as usize;
            self.write_at(&zeros[..n], offset)?;
            offset += n as u64;
        }
        Ok(())
    }

    /// Writes `data` at `offset`: the whole-unit part with O_DIRECT, a partial last block
    /// (only ever at the image's end) after clearing O_DIRECT, since direct I/O takes
    /// whole logical blocks only.
    fn write_at(&mut self, data: &[u8], offset: u64) -> sys::Result<()> {
        let aligned = if offset % UNIT as u64 == 0 && data.as_ptr() as usize % UNIT == 0 {
            data.len() / UNIT * UNIT
        } else {
            0
        };
        block::pwrite_all(&self.fd, &data[..aligned], offset)?;
        if aligned < data.len() {
            block::set_direct(&self.fd, false)?;
            block::pwrite_all(&self.fd, &data[aligned..], offset + aligned as u64)?;
            block::set_direct(&self.fd, true).or_else(ignore_einval)?;
        }
        Ok(())
    }
}

/// A file that was opened without O_DIRECT (its filesystem refused it) cannot turn it on.
fn ignore_einval(e: Errno) -> sys::Result<()> {
    if e == Errno::EINVAL {
        Ok(())
    } else {
        Err(e)
    }
}

fn is_unsupported(e: Errno) -> bool {
    [libc::EOPNOTSUPP, libc::ENOTTY, libc::EINVAL, libc::ENODEV, libc::ENOSYS].contains(&e.0)
}

/// The image bytes' way to the disk: the first MiB into memory, the rest written (or
/// zeroed) in order, every byte counted, checked against the end and hashed.
struct Sink {
    disk: Disk,
    head: AlignedBuf,
    /// Image bytes accepted so far.
    written: u64,
    /// A run of zero blocks not yet zeroed, merged with the runs that follow it.
    pending_zeros: Option<(u64, u64)>,
    sparse: bool,
    sparse_bytes: u64,
    sha: Option<Sha256>,
}

impl Sink {
    /// Takes the next image bytes, `ring[start..end]` (whole page-aligned units except at
    /// the image's end): the first MiB into memory, the rest onto the disk.
    fn accept<E>(
        &mut self,
        ring: &mut DirectRing,
        start: usize,
        end: usize,
    ) -> Result<(), WriteError<E>> {
        let data = ring.data(start, end);
        let offset = self.written;
        let image_end = offset + data.len() as u64;
        if let Some(limit) = self.disk.limit {
            if image_end > limit {
                return Err(WriteError::PastEnd { device: limit });
            }
        }
        if let Some(sha) = &mut self.sha {
            sha.update(data);
        }
        self.written = image_end;
        let held = (HEAD.saturating_sub(offset) as usize).min(data.len());
        if held > 0 {
            self.head[offset as usize..offset as usize + held].copy_from_slice(&data[..held]);
        }
        self.put(ring, start + held, end, offset + held as u64).map_err(|(offset, errno)| {
            WriteError::Write { doing: "writing the image", offset, errno }
        })
    }

    /// Writes `ring[start..end]` at `offset` (past the first MiB): whole units in the
    /// background, runs of zero units left to be zeroed, a partial last block at once.
    fn put(
        &mut self,
        ring: &mut DirectRing,
        start: usize,
        end: usize,
        offset: u64,
    ) -> Result<(), (u64, Errno)> {
        let whole = (end - start) / UNIT * UNIT;
        let mut at = 0;
        while at < whole {
            let (zeros, len) = {
                let rest = ring.data(start + at, start + whole);
                match zero_run(rest) {
                    zeros if self.sparse && zeros >= SPARSE_MIN => (true, zeros),
                    _ if self.sparse => (false, data_run(rest)),
                    _ => (false, rest.len()),
                }
            };
            let at_offset = offset + at as u64;
            let queued = if zeros {
                self.add_zeros(ring, at_offset, len as u64)
            } else {
                ring.write(&self.disk.fd, start + at, start + at + len, at_offset)
            };
            queued.map_err(|errno| (ring.failed_at(), errno))?;
            at += len;
        }
        if whole < end - start {
            self.flush_zeros(ring)
                .and_then(|_| ring.wait_all())
                .map_err(|errno| (ring.failed_at(), errno))?;
            let tail_offset = offset + whole as u64;
            self.disk
                .write_at(ring.data(start + whole, end), tail_offset)
                .map_err(|e| (tail_offset, e))?;
        }
        Ok(())
    }

    fn add_zeros(&mut self, ring: &mut DirectRing, offset: u64, len: u64) -> sys::Result<()> {
        self.sparse_bytes += len;
        match &mut self.pending_zeros {
            Some((_, end)) if *end == offset => *end += len,
            _ => {
                self.flush_zeros(ring)?;
                self.pending_zeros = Some((offset, offset + len));
            }
        }
        Ok(())
    }

    /// Queues zeroing the pending run of zero blocks; a file that grows needs none (its
    /// holes read as zeros).
    fn flush_zeros(&mut self, ring: &mut DirectRing) -> sys::Result<()> {
        match self.pending_zeros.take() {
            Some((start, end)) if self.disk.limit.is_some() => {
                let ioctl = self.disk.zeroing == Zeroing::ZeroOut;
                ring.zero(&self.disk.fd, ioctl, start, end - start)
            }
            _ => Ok(()),
        }
    }
}

/// Length of the run of whole zero units at the start of `data`.
fn zero_run(data: &[u8]) -> usize {
    data.chunks_exact(UNIT).take_while(|u| is_zero(u)).count() * UNIT
}

/// Length of the data at the start of `data`, up to the next run of zero units long
/// enough to skip (or the end).
fn data_run(data: &[u8]) -> usize {
    let mut at = 0;
    while at < data.len() {
        if data.len() - at < UNIT {
            return data.len();
        }
        if is_zero(&data[at..at + UNIT]) && zero_run(&data[at..]) >= SPARSE_MIN {
            return at;
        }
        at += UNIT;
    }
    data.len()
}

/// Compressed input, refilled from the source as the decoder uses it up.
struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Source bytes read so far.
    total: u64,
}

impl Input {
    fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads once more from the source, moving what is left to the front first.
    fn refill<E>(&mut self, source: &mut Source<E>) -> Result<(), WriteError<E>> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        let n = source(&mut self.buf[self.end..]).map_err(WriteError::Read)?;
        self.end += n;
        self.total += n as u64;
        self.eof = n == 0;
        Ok(())
    }
}

/// Calls the hook once a second.
struct Ticker<'h, E> {
    hook: &'h mut dyn FnMut(&Progress) -> Result<(), E>,
    started: Duration,
    last: Duration,
    progress: Progress,
}

impl<E> Ticker<'_, E> {
    fn tick(&mut self, written: u64, read: u64) -> Result<(), WriteError<E>> {
        let now = time::monotonic();
        if now - self.last < TICK {
            return Ok(());
        }
        self.last = now;
        self.call(written, read, false)
    }

    fn call(&mut self, written: u64, read: u64, done: bool) -> Result<(), WriteError<E>> {
        self.progress.written = written;
        self.progress.read = read;
        self.progress.elapsed = time::monotonic() - self.started;
        self.progress.done = done;
        (self.hook)(&self.progress).map_err(WriteError::Aborted)
    }
}

/// The source as the write path sees it: one reader type for all (an HTTP body, a file,
/// standard input), so the big body below is compiled once, not once per source type.
type Source<'s, E> = dyn FnMut(&mut [u8]) -> Result<usize, E> + 's;

/// Writes the image that `source` yields (gzip or raw, told apart by its first bytes)
/// onto `target`, a block device or a regular file. `hook` runs at least once a second
/// during the write and once at the end; an error from it stops the write, safely.
pub fn write_image<R, E>(
    source: &mut R,
    target: &str,
    options: &Options,
    hook: &mut dyn FnMut(&Progress) -> Result<(), E>,
) -> Result<Summary, WriteError<E>>
where
    R: Read,
    E: From<R::Error>,
{
    write_from(&mut |buf: &mut [u8]| source.read(buf).map_err(E::from), target, options, hook)
}

// Not inlined into the caller's thin wrapper: inlined, the init grew by ~600 bytes
// (measured with make size).
#[inline(never)]
fn write_from<E>(
    source: &mut Source<'_, E>,
    target: &str,
    options: &Options,
    hook: &mut dyn FnMut(&Progress) -> Result<(), E>,
) -> Result<Summary, WriteError<E>> {
    let disk = Disk::open(target)?;
    let started = time::monotonic();
    let mut ticker = Ticker {
        hook,
        started,
        last: started,
        progress: Progress {
            source_size: options.source_size,
            image_size: options.image_size,
            ..Progress::default()
        },
    };
    let mut input = Input { buf: alloc::vec![0; INPUT], start: 0, end: 0, eof: false, total: 0 };
    while input.end < 2 && !input.eof {
        input.refill(source)?;
    }
    let format = if input.available().starts_with(&MAGIC) { Format::Gzip } else { Format::Raw };
    let image_size = match format {
        Format::Raw => options.image_size.or(options.source_size),
        Format::Gzip => options.image_size,
    };
    ticker.progress.image_size = image_size;
    if let (Some(image), Some(device)) = (image_size, disk.limit) {
        if image > device {
            return Err(WriteError::TooBig { image, device });
        }
    }
    if input.end == 0 {
        return Err(WriteError::Empty);
    }
    let device = |doing| move |errno| WriteError::Device { doing, errno };
    let mut sink = Sink {
        disk,
        head: AlignedBuf::zeroed(HEAD as usize).map_err(device("allocating buffers"))?,
        written: 0,
        pending_zeros: None,
        sparse: options.sparse,
        sparse_bytes: 0,
        sha: options.sha256.map(|_| Sha256::new()),
    };
    let mut ring = DirectRing::new(RING).map_err(device("allocating buffers"))?;

    wipe_ends(&mut sink.disk).map_err(|errno| WriteError::Write {
        doing: "zeroing the first and last MiB",
        offset: 0,
        errno,
    })?;
    // Zero runs are zeroed in the background (or, by a growing file, left as holes);
    // a target that zeroes only by writing zeros gets them written from the ring.
    sink.sparse &= sink.disk.zeroing != Zeroing::Write || sink.disk.limit.is_none();
    let streamed = match format {
        Format::Gzip => Stream {
            source,
            input: &mut input,
            ring: &mut ring,
            sink: &mut sink,
            ticker: &mut ticker,
        }
        .gzip(),
        Format::Raw => Stream {
            source,
            input: &mut input,
            ring: &mut ring,
            sink: &mut sink,
            ticker: &mut ticker,
        }
        .raw(),
    };
    // Every background write done (or failed) before the verdict, and before any
    // zeroing on failure, which a late write must not undo.
    let streamed = streamed.and_then(|members| {
        sink.flush_zeros(&mut ring).and_then(|_| ring.wait_all()).map_err(|errno| {
            WriteError::Write { doing: "writing the image", offset: ring.failed_at(), errno }
        })?;
        Ok(members)
    });
    drop(ring);
    let result = streamed.and_then(|members| {
        verify(&mut sink, image_size, options.sha256)?;
        let partitions = commit(&mut sink)?;
        Ok(Summary {
            format,
            image_len: sink.written,
            source_len: input.total,
            members,
            sparse_bytes: sink.sparse_bytes,
            sha256: sink.sha.take().map(Sha256::finish),
            partitions,
        })
    });
    match result {
        Ok(summary) => {
            // The image is in place: a failing hook now changes nothing about the disk,
            // and the caller learns of its trouble (a lost lease) on its own next step.
            let _ = ticker.call(summary.image_len, summary.source_len, true);
            Ok(summary)
        }
        Err(cause) => {
            Err(match wipe_ends(&mut sink.disk).and_then(|_| block::fsync(&sink.disk.fd)) {
                Ok(()) => cause,
                Err(errno) => WriteError::NotWiped { cause: Box::new(cause), errno },
            })
        }
    }
}

/// Zeroes `target`'s first and last MiB again, for a failure after a verified write (the
/// deployed system could not be finished): a half-provisioned disk must not boot either.
pub fn unmake_bootable(target: &str) -> Result<(), WriteError<Errno>> {
    let mut disk = Disk::open(target)?;
    wipe_ends(&mut disk)
        .map_err(|errno| WriteError::Device { doing: "zeroing the disk's ends", errno })?;
    block::fsync(&disk.fd).map_err(|errno| WriteError::Device { doing: "flushing the disk", errno })
}

/// Zeroes the first and last MiB of the target (of a growing file: of what it holds).
fn wipe_ends(disk: &mut Disk) -> sys::Result<()> {
    let end = disk.end()?;
    disk.zero(0, end.min(HEAD))?;
    let tail = end.saturating_sub(TAIL).max(HEAD.min(end));
    disk.zero(tail, end - tail)
}

/// How far the ring is filled (`pos`) and written out (`flushed`).
struct Cursor {
    pos: usize,
    flushed: usize,
}

impl Cursor {
    /// Counts `n` new bytes at `pos`; writes out what is ready, wraps at the ring's end.
    fn advance<E>(
        &mut self,
        n: usize,
        ring: &mut DirectRing,
        sink: &mut Sink,
    ) -> Result<(), WriteError<E>> {
        self.pos += n;
        if self.pos == ring.len() || self.pos - self.flushed >= FLUSH {
            self.flushed = flush(ring, self.flushed, self.pos, false, sink)?;
            if self.pos == ring.len() {
                // The inflater goes on from WINDOW, its history before it: unlike a wrap
                // to 0, this needs no write of the ring's end done to go on.
                ring.rewind(WINDOW).map_err(|errno| WriteError::Write {
                    doing: "writing the image",
                    offset: ring.failed_at(),
                    errno,
                })?;
                (self.pos, self.flushed) = (WINDOW, WINDOW);
            }
        }
        Ok(())
    }

    /// Writes out the rest, a partial last block included.
    fn finish<E>(&self, ring: &mut DirectRing, sink: &mut Sink) -> Result<(), WriteError<E>> {
        flush(ring, self.flushed, self.pos, true, sink).map(|_| ())
    }
}

/// Writes out the ring's bytes from `from` up to `pos` (rounded down to whole units unless
/// `last`); returns the new flushed position.
fn flush<E>(
    ring: &mut DirectRing,
    from: usize,
    pos: usize,
    last: bool,
    sink: &mut Sink,
) -> Result<usize, WriteError<E>> {
    let to = if last { pos } else { pos / UNIT * UNIT };
    if to > from {
        sink.accept(ring, from, to)?;
    }
    Ok(to)
}

/// The ring for inflating or reading into at `pos`, once the writes of those bytes are done.
fn ring_from<E>(ring: &mut DirectRing, pos: usize) -> Result<&mut [u8], WriteError<E>> {
    let failed_at = ring.failed_at();
    ring.writable_from(pos).map_err(|errno| WriteError::Write {
        doing: "writing the image",
        offset: failed_at,
        errno,
    })
}

/// What the streaming loops work with: the source, its input buffer, the ring, the sink
/// and the hook's ticker.
struct Stream<'a, 'h, 's, E> {
    source: &'a mut Source<'s, E>,
    input: &'a mut Input,
    ring: &'a mut DirectRing,
    sink: &'a mut Sink,
    ticker: &'a mut Ticker<'h, E>,
}

impl<E> Stream<'_, '_, '_, E> {
    /// Inflates a gzip stream into the ring and out to the sink; returns its members.
    // Not inlined: one call per image, and inlined it made the init bigger (measured).
    #[inline(never)]
    fn gzip(&mut self) -> Result<u32, WriteError<E>> {
        let mut decoder = Decoder::new();
        let mut cursor = Cursor { pos: 0, flushed: 0 };
        loop {
            let out = ring_from(self.ring, cursor.pos)?;
            let step = decoder
                .step(self.input.available(), self.input.eof, out, cursor.pos)
                .map_err(WriteError::Gzip)?;
            self.input.start += step.consumed;
            cursor.advance(step.produced, self.ring, self.sink)?;
            if decoder.is_finished() {
                break;
            }
            if step.consumed == 0 && step.produced == 0 {
                if self.input.eof {
                    // The decoder ends every stream at EOF with a result; this is a guard.
                    return Err(WriteError::Gzip(GzipError::Truncated { at: self.input.total }));
                }
                self.input.refill(self.source)?;
            }
            self.ticker.tick(self.sink.written, self.input.total)?;
        }
        cursor.finish(self.ring, self.sink)?;
        Ok(decoder.members())
    }

    /// Copies a raw image through the ring to the sink.
    fn raw(&mut self) -> Result<u32, WriteError<E>> {
        // The bytes read to tell the format apart are the image's first.
        let first = self.input.available();
        ring_from(self.ring, 0)?[..first.len()].copy_from_slice(first);
        let mut cursor = Cursor { pos: first.len(), flushed: 0 };
        let mut eof = self.input.eof;
        while !eof {
            let n = (self.source)(&mut ring_from(self.ring, cursor.pos)?[cursor.pos..])
                .map_err(WriteError::Read)?;
            eof = n == 0;
            self.input.total += n as u64;
            cursor.advance(n, self.ring, self.sink)?;
            self.ticker.tick(self.sink.written, self.input.total)?;
        }
        cursor.finish(self.ring, self.sink)?;
        Ok(0)
    }
}

/// The checks that must pass before the first MiB goes to the disk.
// Not inlined: once per image, and inlined (hashing's finish with it) it made the
// init bigger (measured).
#[inline(never)]
fn verify<E>(
    sink: &mut Sink,
    image_size: Option<u64>,
    sha256: Option<[u8; 32]>,
) -> Result<(), WriteError<E>> {
    if let Some(expected) = image_size {
        if expected != sink.written {
            return Err(WriteError::SizeMismatch { expected, actual: sink.written });
        }
    }
    if let (Some(expected), Some(sha)) = (sha256, &sink.sha) {
        let actual = sha.clone().finish();
        if actual != expected {
            return Err(WriteError::Sha256 { expected, actual });
        }
    }
    Ok(())
}

/// Makes the verified image whole: everything past the first MiB durable, then the first
/// MiB, durable too; then the kernel's view of the disk refreshed.
fn commit<E>(sink: &mut Sink) -> Result<PartitionScan, WriteError<E>> {
    let write = |doing, offset| move |errno| WriteError::Write { doing, offset, errno };
    let disk = &mut sink.disk;
    block::fsync(&disk.fd).map_err(write("flushing the image to the disk", 0))?;
    let head = HEAD.min(sink.written) as usize;
    disk.write_at(&sink.head[..head], 0).map_err(write("writing the image's first MiB", 0))?;
    if disk.limit.is_none() {
        block::set_len(&disk.fd, sink.written)
            .map_err(write("setting the file's length", sink.written))?;
    }
    block::fsync(&disk.fd).map_err(write("flushing the image's first MiB to the disk", 0))?;
    if disk.kind != Kind::BlockDevice {
        return Ok(PartitionScan::NotApplicable);
    }
    rescan(&disk.fd)
}

/// Drops the device's cached blocks and has the kernel re-read its partition table, then
/// waits (bounded) for the partitions' /dev nodes.
pub fn rescan<E>(fd: &Fd) -> Result<PartitionScan, WriteError<E>> {
    block::flush_buffers(fd).map_err(|errno| WriteError::Device {
        doing: "dropping the device's buffer cache",
        errno,
    })?;
    match block::reread_partitions(fd) {
        Ok(()) => Ok(PartitionScan::Rescanned(await_partition_nodes(fd))),
        Err(Errno::EBUSY) => Ok(PartitionScan::Busy),
        Err(Errno::EINVAL) => Ok(PartitionScan::Unsupported),
        Err(errno) => Err(WriteError::Device { doing: "re-reading the partition table", errno }),
    }
}

/// Waits (bounded) until /dev has a node for every partition the kernel now lists in
/// sysfs for this disk; returns how many there are. Nodes come from devtmpfs, usually
/// before BLKRRPART returns; the wait covers a udev that renames or recreates them.
// Not inlined into commit (measured: smaller); it runs once per image.
#[inline(never)]
fn await_partition_nodes(fd: &Fd) -> u32 {
    count_partition_nodes(fd).unwrap_or(0)
}

fn count_partition_nodes(fd: &Fd) -> Option<u32> {
    use core::fmt::Write as _;
    let (major, minor) = block::device_number(fd).ok()?;
    // One path buffer: the disk's sysfs directory, then each partition's entry in it.
    let mut path = text!("/sys/dev/block/{major}:{minor}/uevent");
    // The kernel's name of the disk ("loop0", "nvme0n1"), from its uevent file.
    let uevent = fs::read_file(&path, 4096).ok()?;
    let name = uevent.split(|&b| b == b'\n').find_map(|l| l.strip_prefix(b"DEVNAME="))?;
    let name = core::str::from_utf8(name).ok()?;
    // Partitions of "sda" are "sda1", of "nvme0n1" and "loop0" they are "nvme0n1p1", "loop0p1".
    let separator = if name.as_bytes().last()?.is_ascii_digit() { "p" } else { "" };
    let dir = path.len() - "uevent".len();
    let deadline = time::monotonic() + NODE_WAIT;
    let mut found = 0;
    for number in 1..=128u32 {
        path.truncate(dir);
        let _ = write!(path, "{name}{separator}{number}");
        if !fs::exists(&path) {
            continue;
        }
        found += 1;
        let node = text!("/dev/{}", path.get(dir..).unwrap_or_default());
        while !fs::exists(&node) && time::monotonic() < deadline {
            time::sleep(Duration::from_millis(10));
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_runs_shorter_than_the_minimum_are_data() {
        let mut data = std::vec![0u8; 40 * UNIT];
        data[0] = 1; // unit 0: data
        data[3 * UNIT] = 1; // units 1-2: a short zero run, written as data
                            // units 4..40: a long zero run
        assert_eq!(zero_run(&data), 0);
        assert_eq!(data_run(&data), 4 * UNIT);
        assert_eq!(zero_run(&data[4 * UNIT..]), 36 * UNIT);
        let tail = &data[..UNIT + 10];
        assert_eq!(data_run(tail), tail.len());
        assert_eq!(zero_run(&std::vec![0u8; UNIT - 1]), 0, "partial units are never skipped");
    }

    /// Yields `data` in 64 KiB reads, pausing once past the hook's one-second tick.
    struct SlowSource<'a> {
        data: &'a [u8],
        reads: usize,
    }

    impl Read for SlowSource<'_> {
        type Error = &'static str;
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, &'static str> {
            self.reads += 1;
            if self.reads == 40 {
                std::thread::sleep(TICK + Duration::from_millis(100));
            }
            let n = buf.len().min(self.data.len()).min(64 << 10);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_hook_runs_during_the_write_and_its_error_stops_it_safely() {
        let dir = std::env::temp_dir().join(std::format!("imprint-hook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk");
        std::fs::write(&path, std::vec![0xEEu8; 8 << 20]).unwrap();
        let image: std::vec::Vec<u8> = (0..(6u32 << 20)).map(|i| (i % 251) as u8 + 1).collect();
        let options = Options::default();
        let mut calls = std::vec::Vec::new();
        let mut hook = |p: &Progress| -> Result<(), &'static str> {
            calls.push(*p);
            Err("the lease is gone")
        };
        let mut source = SlowSource { data: &image, reads: 0 };
        let err =
            write_image(&mut source, path.to_str().unwrap(), &options, &mut hook).unwrap_err();
        assert!(matches!(err, WriteError::Aborted("the lease is gone")), "{err:?}");
        assert_eq!(std::format!("{err}"), "image write stopped: the lease is gone");
        assert_eq!(calls.len(), 1);
        assert!(calls[0].written > HEAD && !calls[0].done, "{:?}", calls[0]);
        let disk = std::fs::read(&path).unwrap();
        assert!(disk[..HEAD as usize].iter().all(|&b| b == 0), "first MiB zeroed");
        assert!(disk[(7 << 20)..].iter().all(|&b| b == 0), "last MiB zeroed");

        // Without the error the same write completes, and the hook hears of the end.
        let mut calls = 0;
        let mut done = false;
        let mut hook = |p: &Progress| -> Result<(), &'static str> {
            calls += 1;
            done = p.done;
            Ok(())
        };
        let mut source = SlowSource { data: &image, reads: 0 };
        let summary =
            write_image(&mut source, path.to_str().unwrap(), &options, &mut hook).unwrap();
        assert_eq!(summary.image_len, image.len() as u64);
        assert!(calls >= 2 && done, "{calls} calls");
        assert_eq!(std::fs::read(&path).unwrap()[..image.len()], image[..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sink_holds_the_head_skips_zero_runs_and_stops_at_the_end() {
        let dir = std::env::temp_dir().join(std::format!("imprint-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk");
        std::fs::write(&path, std::vec![0xEEu8; 3 << 20]).unwrap();
        let disk = Disk::open::<()>(path.to_str().unwrap()).unwrap();
        assert_eq!(disk.limit, Some(3 << 20));
        let mut sink = Sink {
            disk,
            head: AlignedBuf::zeroed(HEAD as usize).unwrap(),
            written: 0,
            pending_zeros: None,
            sparse: true,
            sparse_bytes: 0,
            sha: None,
        };
        wipe_ends(&mut sink.disk).unwrap();
        let mut ring = DirectRing::new(2 << 20).unwrap();
        let image = ring.writable_from(0).unwrap();
        image[..HEAD as usize].fill(0x11);
        image[HEAD as usize..HEAD as usize + UNIT].fill(0x22);
        sink.accept::<()>(&mut ring, 0, 2 << 20).unwrap();
        assert_eq!(sink.sparse_bytes, HEAD - UNIT as u64);
        sink.flush_zeros(&mut ring).unwrap();
        ring.wait_all().unwrap();
        block::fsync(&sink.disk.fd).unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk[..HEAD as usize].iter().all(|&b| b == 0), "the head waits in memory");
        assert!(on_disk[HEAD as usize..][..UNIT].iter().all(|&b| b == 0x22));
        assert!(
            on_disk[HEAD as usize + UNIT..].iter().all(|&b| b == 0),
            "zero run zeroed, last MiB wiped"
        );
        assert!(sink.head.iter().all(|&b| b == 0x11));
        let past = sink.accept::<()>(&mut ring, 0, 2 << 20).unwrap_err();
        assert!(matches!(past, WriteError::PastEnd { device } if device == 3 << 20), "{past:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
