//! Writing an image onto a block device (or a regular file), in the order that never
//! leaves a half-written disk that looks bootable:
//!
//! 1. open the target exclusively with O_DIRECT; refuse an image known to be too big;
//! 2. zero the first MiB (MBR, primary GPT) and the last MiB (backup GPT);
//! 3. stream the image from offset 1 MiB on, keeping its first MiB in memory;
//! 4. once the whole stream is verified (gzip CRC-32 and ISIZE of every member, the
//!    image's length, its SHA-256 when one is expected), fsync, write the first MiB, fsync;
//! 5. drop the buffer cache, re-read the partition table (or, while a partition is in
//!    use, set its partitions one by one), wait for the partition nodes.
//!
//! On any failure after step 2 the first and last MiB are zeroed again.
//!
//! The gzip inflater writes into a page-aligned ring that is at once its 32 KiB history
//! and the O_DIRECT write buffer: each half MiB is written straight out of it, by the
//! ring's threads, while the inflater goes on. Runs of zero blocks are not written but
//! zeroed (BLKZEROOUT on a device, fallocate ZERO_RANGE on a file), in the background too.

use super::crc32;
use super::gzip::{Decoder, GzipError, MAGIC, TRUNCATED};
use super::progress::Progress;
use super::sha256::{Hex, Sha256};
use super::{is_zero, Interrupted};
use crate::io::Read;
use crate::sys::block::{self, AlignedBuf, DirectRing, Io, Sequential};
use crate::sys::fd::Fd;
use crate::sys::{self, cpu, fs, time, Errno};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

/// The image's first MiB is held back until the end; the device's first and last MiB are
/// zeroed before the first write.
const HEAD: u64 = 1 << 20;
/// The inflate ring and write buffer.
const RING: usize = 4 << 20;
/// The inflater's history: deflate refers back 32 KiB at most.
const WINDOW: usize = 32 << 10;
/// Written out of the ring whenever this much is ready.
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
const BUSY: &str =
    "the target device is in use (mounted, or held open by another program): refusing to write";

/// What the caller knows about the image. The default: nothing known, zero blocks
/// written like data.
#[derive(Debug, Clone, Default)]
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

/// What the partition table re-read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionScan {
    /// Nothing to re-read: not a block device, or one without partition support (e.g. a
    /// loop device without -P).
    Skipped,
    /// A partition is in use: the kernel kept its old table (and the new one could not be
    /// read for setting it partition by partition).
    Busy,
    /// A partition was in use: the new table's partitions were set one by one (BLKPG),
    /// but for `kept` in use, left as they were; `partitions` there are now, nodes present.
    Piecewise { partitions: u32, kept: u32 },
    /// Re-read; this many partitions, and their device nodes are present.
    Rescanned(u32),
}

/// A finished write.
#[derive(Debug, Clone)]
pub struct Summary {
    /// A gzip image (else raw).
    pub gzip: bool,
    pub image_len: u64,
    pub source_len: u64,
    /// gzip members (0 for a raw image).
    pub members: u32,
    /// Bytes zeroed rather than written.
    pub sparse_bytes: u64,
    pub sha256: Option<[u8; 32]>,
    pub partitions: PartitionScan,
}

/// Why writing an image failed: one line, with its context (what failed, at which byte).
pub type WriteError = String;

/// The line `imprint write` prints: `1234 bytes (gzip, 1 member); 0 bytes zeroed, not
/// written; sha256 ... verified; 2 partitions`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes (", self.image_len)?;
        match self.members {
            _ if !self.gzip => f.write_str("raw")?,
            1 => f.write_str("gzip, 1 member")?,
            n => write!(f, "gzip, {n} members")?,
        }
        write!(f, "); {} bytes zeroed, not written", self.sparse_bytes)?;
        if let Some(d) = &self.sha256 {
            write!(f, "; sha256 {} verified", Hex(d))?;
        }
        match self.partitions {
            PartitionScan::Rescanned(n) => write!(f, "; {n} partitions"),
            PartitionScan::Piecewise { partitions, kept } => {
                write!(
                    f,
                    "; {partitions} partitions, set one by one ({kept} in use left unchanged)"
                )
            }
            PartitionScan::Busy => {
                f.write_str("; partition table NOT re-read: a partition is in use")
            }
            PartitionScan::Skipped => Ok(()),
        }
    }
}

/// An errno of a device operation, as an error saying what it was `doing`.
fn device(doing: &'static str) -> impl Fn(Errno) -> WriteError + Copy {
    move |errno| text!("{doing}: {errno}")
}

/// An errno of a write or zeroing at `offset`, as an error.
fn writing(doing: &'static str, offset: u64) -> impl Fn(Errno) -> WriteError + Copy {
    move |errno| text!("{doing} at byte {offset}: {errno}")
}

/// How a target refuses a way of zeroing it does not support.
const UNSUPPORTED: [i32; 5] =
    [libc::EOPNOTSUPP, libc::ENOTTY, libc::EINVAL, libc::ENODEV, libc::ENOSYS];

/// The open target.
struct Disk {
    fd: Fd,
    /// A block device (else a regular file).
    device: bool,
    /// The byte past which nothing may be written; `None` for a file that grows.
    limit: Option<u64>,
    /// The target refused zeroing ranges: zeros are written instead.
    zero_by_writing: bool,
}

impl Disk {
    fn open(path: &str) -> Result<Disk, WriteError> {
        let (fd, blockdev) = match block::open_image(path, true) {
            Ok(Some(target)) => target,
            Ok(None) => {
                return Err("the target is neither a block device nor a regular file".into())
            }
            Err(Errno::EBUSY) => return Err(BUSY.into()),
            Err(errno) => return Err(device("opening the target for writing")(errno)),
        };
        let limit = if blockdev {
            let size = block::logical_block_size(&fd)
                .map_err(device("reading the logical block size"))? as usize;
            if size > UNIT || UNIT % size.max(1) != 0 {
                return Err(device("checking the logical block size")(Errno::EINVAL));
            }
            Some(block::device_size(&fd).map_err(device("reading the device size"))?)
        } else {
            let len = block::file_len(&fd).map_err(device("reading the file size"))?;
            // A file that has a length stands for a disk of that size; an empty one grows.
            (len > 0).then_some(len)
        };
        Ok(Disk { fd, device: blockdev, limit, zero_by_writing: false })
    }

    /// Zeroes a range: without sending zeros where the target can (BLKZEROOUT on a block
    /// device, FALLOC_FL_ZERO_RANGE on a file), else by writing them.
    fn zero(&mut self, offset: u64, len: u64) -> sys::Result<()> {
        if len == 0 {
            return Ok(());
        } else if !self.zero_by_writing {
            match block::zero(self.fd.raw(), self.device, offset, len) {
                // Refused as unsupported: write zeros, from now on.
                Err(Errno(e)) if UNSUPPORTED.contains(&e) => self.zero_by_writing = true,
                other => return other,
            }
        }
        let zeros = AlignedBuf::zeroed(len.min(FLUSH as u64) as usize)?;
        let (mut at, end) = (offset, offset + len);
        while at < end {
            let (zeros, _) = zeros.split_at((end - at).min(FLUSH as u64) as usize);
            self.write_at(zeros, at)?;
            at += zeros.len() as u64;
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
        let (direct, rest) = data.split_at(aligned);
        block::pwrite_all(&self.fd, direct, offset)?;
        if !rest.is_empty() {
            block::set_direct(&self.fd, false)?;
            block::pwrite_all(&self.fd, rest, offset + aligned as u64)?;
            // A file opened without O_DIRECT (its filesystem refused it) cannot turn it on.
            match block::set_direct(&self.fd, true) {
                Err(Errno::EINVAL) => {}
                other => other?,
            }
        }
        Ok(())
    }
}

fn ring_error(ring: &DirectRing) -> impl Fn(Errno) -> WriteError {
    writing("writing the image", ring.failed_at())
}

/// The image bytes' way to the disk: the first MiB into memory, the rest written (or
/// zeroed) in order, every byte counted, checked against the end and hashed.
struct Sink {
    disk: Disk,
    head: AlignedBuf,
    /// Image bytes accepted so far.
    written: u64,
    /// The ring is filled up to `pos`, written out up to `flushed`, and handed to the
    /// ring's threads up to `digested`: for CRC-32 shares (when `shares`: a gzip image on
    /// a CPU with carry-less multiplication; `member_len` bytes of the member so far) and
    /// for the SHA-256 (when `sha`).
    pos: usize,
    flushed: usize,
    digested: usize,
    shares: bool,
    member_len: u64,
    sha: bool,
    /// A run of zero blocks not yet zeroed, `[start, end)`, merged with the runs that
    /// follow it; none when empty (`(u64::MAX, 0)`).
    zeros: (u64, u64),
    sparse: bool,
    sparse_bytes: u64,
}

/// The image's SHA-256 is taken on the ring's threads, in order, off the inflating one
/// (with the SHA extensions it ran at about the inflater's speed: half the write's time).
impl Sequential for Sha256 {
    fn update(&mut self, data: &[u8]) {
        Sha256::update(self, data);
    }
}

impl Sink {
    /// Counts `n` new bytes at `pos`; writes out what is ready (all of it, a partial last
    /// block included, when `last`). At the ring's end the inflater goes on from WINDOW,
    /// its history before it: unlike a wrap to 0, that needs no write of the ring's end
    /// done first.
    fn advance(&mut self, ring: &mut DirectRing, n: usize, last: bool) -> Result<(), WriteError> {
        self.pos += n;
        let end = self.pos == ring.len();
        if last || end || self.pos - self.flushed >= FLUSH {
            let to = if last { self.pos } else { self.pos / UNIT * UNIT };
            if to > self.flushed {
                self.accept(ring, self.flushed, to)?;
            }
            self.flushed = to;
        }
        if (self.shares || self.sha) && (last || end || self.pos - self.digested >= FLUSH) {
            self.queue_digests(ring)?;
        }
        if end && !last {
            ring.rewind(WINDOW);
            (self.pos, self.flushed, self.digested) = (WINDOW, WINDOW, WINDOW);
        }
        Ok(())
    }

    /// Queues the ring's bytes not yet digested for their CRC-32 share and the SHA-256:
    /// the CRC folds on the ring's threads, not on the inflating one (it took 7% of the
    /// write's time).
    fn queue_digests(&mut self, ring: &mut DirectRing) -> Result<(), WriteError> {
        let (start, len, fd) = (self.digested, self.pos - self.digested, &self.disk.fd);
        if len > 0 && self.shares {
            self.member_len += len as u64;
            let end = self.member_len;
            ring.queue(Io::Digest, fd, start, len, end).map_err(ring_error(ring))?;
        }
        if len > 0 && self.sha {
            ring.queue(Io::Sequential, fd, start, len, 0).map_err(ring_error(ring))?;
        }
        self.digested = self.pos;
        Ok(())
    }

    /// The CRC-32 of the gzip member whose data has just ended: its shares, added up.
    fn member_crc(&mut self, ring: &mut DirectRing) -> Result<u32, WriteError> {
        self.queue_digests(ring)?;
        let shares = ring.digest().map_err(ring_error(ring))?;
        Ok(crc32::member_crc(shares, core::mem::take(&mut self.member_len)))
    }

    /// Takes the next image bytes, `ring[start..end]` (whole page-aligned units except at
    /// the image's end): the first MiB into memory; the rest onto the disk, whole units
    /// in the background, runs of zero units left to be zeroed, a partial last block at
    /// once.
    fn accept(
        &mut self,
        ring: &mut DirectRing,
        start: usize,
        end: usize,
    ) -> Result<(), WriteError> {
        let data = ring.data(start, end);
        let mut offset = self.written;
        self.written += data.len() as u64;
        if let Some(device) = self.disk.limit.filter(|&limit| self.written > limit) {
            return Err(text!("the image goes on past the end of the target ({device} bytes)"));
        }
        let held = (HEAD.saturating_sub(offset) as usize).min(data.len());
        if let Some(head) = self.head.get_mut(offset as usize..offset as usize + held) {
            head.copy_from_slice(&data[..held]);
        }
        offset += held as u64;
        let mut at = start + held;
        let whole = at + (end - at) / UNIT * UNIT;
        while at < whole {
            let rest = ring.data(at, whole);
            let zeros = if self.sparse { zero_run(rest) } else { 0 };
            let len = if zeros >= SPARSE_MIN {
                self.sparse_bytes += zeros as u64;
                if self.zeros.1 != offset {
                    self.flush_zeros(ring).map_err(ring_error(ring))?;
                    self.zeros.0 = offset;
                }
                self.zeros.1 = offset + zeros as u64;
                zeros
            } else {
                let len = if self.sparse { data_run(rest) } else { rest.len() };
                ring.queue(Io::Write, &self.disk.fd, at, len, offset).map_err(ring_error(ring))?;
                len
            };
            at += len;
            offset += len as u64;
        }
        if whole < end {
            let done = self.flush_zeros(ring).and_then(|_| ring.wait_all());
            done.map_err(ring_error(ring))?;
            self.disk
                .write_at(ring.data(whole, end), offset)
                .map_err(writing("writing the image", offset))?;
        }
        Ok(())
    }

    /// Queues zeroing the pending run of zero blocks; a file that grows needs none (its
    /// holes read as zeros).
    fn flush_zeros(&mut self, ring: &mut DirectRing) -> sys::Result<()> {
        let (start, end) = core::mem::replace(&mut self.zeros, (u64::MAX, 0));
        if end <= start || self.disk.limit.is_none() {
            return Ok(());
        }
        let io = Io::Zero { ioctl: self.disk.device };
        ring.queue(io, &self.disk.fd, 0, (end - start) as usize, start)
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
    while at < data.len() && zero_run(data.split_at(at).1) < SPARSE_MIN {
        at += UNIT;
    }
    at.min(data.len())
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
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Reads once more from the source, moving what is left to the front first.
    fn refill(&mut self, source: &mut Source) -> Result<(), WriteError> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        let free = self.buf.get_mut(self.end..).unwrap_or_default();
        let n = source(free).map_err(|e| text!("reading the image: {e}"))?;
        self.end += n;
        self.total += n as u64;
        self.eof = n == 0;
        Ok(())
    }
}

/// The source as the write path sees it: one reader type for all (an HTTP body, a file,
/// standard input), so the big body below is compiled once, not once per source type.
type Source<'s> = dyn FnMut(&mut [u8]) -> Result<usize, Interrupted> + 's;

/// Writes the image that `source` yields (gzip or raw, told apart by its first bytes)
/// onto `target`, a block device or a regular file. `hook` runs at least once a second
/// during the write and once at the end; an error from it stops the write, safely.
pub fn write_image<R: Read>(
    source: &mut R,
    target: &str,
    options: &Options,
    hook: &mut dyn FnMut(&Progress) -> Result<(), Interrupted>,
) -> Result<Summary, WriteError>
where
    Interrupted: From<R::Error>,
{
    write_from(&mut |buf: &mut [u8]| Ok(source.read(buf)?), target, options, hook)
}

// Not inlined into the caller's thin wrapper: inlined, the init grew by ~600 bytes
// (measured with make size).
#[inline(never)]
fn write_from(
    source: &mut Source<'_>,
    target: &str,
    options: &Options,
    hook: &mut dyn FnMut(&Progress) -> Result<(), Interrupted>,
) -> Result<Summary, WriteError> {
    let disk = Disk::open(target)?;
    let mut input = Input { buf: alloc::vec![0; INPUT], start: 0, end: 0, eof: false, total: 0 };
    while input.end < 2 && !input.eof {
        input.refill(source)?;
    }
    let gzip = input.available().starts_with(&MAGIC);
    let image_size = options.image_size.or(options.source_size.filter(|_| !gzip));
    if let (Some(image), Some(device)) = (image_size, disk.limit) {
        if image > device {
            let why = "is bigger than the target";
            return Err(text!("the image ({image} bytes) {why} ({device} bytes): nothing written"));
        }
    }
    if input.end == 0 {
        return Err("the image is empty".into());
    }
    let allocating = device("allocating buffers");
    let mut sink = Sink {
        disk,
        head: AlignedBuf::zeroed(HEAD as usize).map_err(allocating)?,
        written: 0,
        pos: 0,
        flushed: 0,
        digested: 0,
        shares: gzip && cpu::has(cpu::PCLMUL),
        member_len: 0,
        sha: options.sha256.is_some(),
        zeros: (u64::MAX, 0),
        sparse: options.sparse,
        sparse_bytes: 0,
    };
    let mut sha = options.sha256.map(|_| Sha256::new());
    let digest = sink.shares.then_some(crc32::share as block::DigestFn);
    let sequential = sha.as_mut().map(|sha| sha as &mut dyn Sequential);
    let mut ring = DirectRing::new(RING, digest, sequential).map_err(allocating)?;
    wipe_ends(&mut sink.disk).map_err(writing("zeroing the first and last MiB", 0))?;
    // Zero runs are zeroed in the background (or, in a file that grows, left as holes);
    // a target that zeroes only by writing zeros gets them written from the ring.
    sink.sparse &= !sink.disk.zero_by_writing || sink.disk.limit.is_none();
    let (started, source_size) = (time::monotonic(), options.source_size);
    let mut progress = Progress { source_size, image_size, ..Progress::default() };
    let mut last = started;
    // Calls the hook once a second, and at the end (`done`).
    let mut tick = |written, read, done: bool| {
        let now = time::monotonic();
        if now - last < TICK && !done {
            return Ok(());
        }
        last = now;
        progress = Progress { written, read, elapsed: now - started, done, ..progress };
        hook(&progress).map_err(|e| text!("image write stopped: {e}"))
    };
    let decoder = gzip.then(|| Decoder::linear(sink.shares));
    let streamed = stream(source, &mut input, &mut ring, &mut sink, &mut tick, decoder);
    // Every background write and zeroing done (or failed) before the verdict, and before
    // any zeroing on failure, which a late write must not undo.
    let streamed = streamed.and_then(|members| {
        let done = sink.flush_zeros(&mut ring).and_then(|_| ring.wait_all());
        done.map(|_| members).map_err(ring_error(&ring))
    });
    drop(ring);
    let result = streamed.and_then(|members| {
        let sha256 = sha.map(Sha256::finish);
        let partitions = commit(&mut sink, image_size, options.sha256.zip(sha256))?;
        let (image_len, source_len, sparse_bytes) = (sink.written, input.total, sink.sparse_bytes);
        Ok(Summary { gzip, image_len, source_len, members, sparse_bytes, sha256, partitions })
    });
    match result {
        Ok(summary) => {
            // The image is in place: a failing hook now changes nothing about the disk,
            // and the caller learns of its trouble (a lost lease) on its own next step.
            let _ = tick(summary.image_len, summary.source_len, true);
            Ok(summary)
        }
        Err(cause) => Err(match wipe_ends(&mut sink.disk) {
            Ok(()) => cause,
            Err(errno) => text!("{cause}; then zeroing the first and last MiB failed too ({errno}): the disk may look bootable"),
        }),
    }
}

/// Streams the image through the ring to the sink, inflating it when a `decoder` is
/// given; returns the gzip members.
// Not inlined: one call per image, and inlined it made the init bigger (measured).
#[inline(never)]
fn stream(
    source: &mut Source<'_>,
    input: &mut Input,
    ring: &mut DirectRing,
    sink: &mut Sink,
    tick: &mut dyn FnMut(u64, u64, bool) -> Result<(), WriteError>,
    mut decoder: Option<Decoder>,
) -> Result<u32, WriteError> {
    loop {
        let pos = sink.pos;
        let out = ring.writable_from(pos);
        let data = input.available();
        let (used, made) = match &mut decoder {
            Some(d) => d.step(data, input.eof, out, pos).map(|s| (s.consumed, s.produced)),
            None => {
                let n = data.len().min(out.len() - pos);
                out[pos..pos + n].copy_from_slice(&data[..n]);
                Ok((n, n))
            }
        }
        .map_err(|e| text!("{e}"))?;
        let all = used == data.len();
        input.start += used;
        let done = decoder.as_ref().map_or(input.eof && all, Decoder::is_finished);
        sink.advance(ring, made, done)?;
        if let Some(d) = decoder.as_mut().filter(|d| d.wants_crc()) {
            d.set_member_crc(sink.member_crc(ring)?);
        }
        if done {
            return Ok(decoder.map_or(0, |d| d.members()));
        }
        if used == 0 && made == 0 {
            if input.eof {
                // The decoder ends every stream at EOF with a result; this is a guard.
                return Err(text!("{}", GzipError { at: input.total, what: TRUNCATED }));
            }
            input.refill(source)?;
        }
        tick(sink.written, input.total, false)?;
    }
}

/// The checks that must pass before the first MiB goes to the disk (the length, the
/// expected and actual SHA-256); then the image made whole: everything past the first
/// MiB durable, then the first MiB, durable too; then the kernel's view of the disk
/// refreshed.
// Not inlined: once per image, and inlined it made the init bigger (measured).
#[inline(never)]
fn commit(
    sink: &mut Sink,
    image_size: Option<u64>,
    sha256: Option<([u8; 32], [u8; 32])>,
) -> Result<PartitionScan, WriteError> {
    let actual = sink.written;
    if let Some(expected) = image_size.filter(|&size| size != actual) {
        return Err(text!("the image is {actual} bytes, but {expected} were announced"));
    }
    if let Some((expected, actual)) = sha256.filter(|(e, a)| e != a) {
        let (actual, expected) = (Hex(&actual), Hex(&expected));
        return Err(text!("the image's sha256 is {actual}, expected {expected}"));
    }
    let disk = &mut sink.disk;
    block::fsync(&disk.fd).map_err(writing("flushing the image to the disk", 0))?;
    let head = sink.head.get(..HEAD.min(actual) as usize).unwrap_or_default();
    disk.write_at(head, 0).map_err(writing("writing the image's first MiB", 0))?;
    if disk.limit.is_none() {
        block::set_len(&disk.fd, actual).map_err(writing("setting the file's length", actual))?;
    }
    block::fsync(&disk.fd).map_err(writing("flushing the image's first MiB to the disk", 0))?;
    if !disk.device {
        return Ok(PartitionScan::Skipped);
    }
    rescan(&disk.fd)
}

/// Drops the device's cached blocks and has the kernel re-read its partition table, then
/// waits (bounded) for the partitions' /dev nodes.
pub fn rescan(fd: &Fd) -> Result<PartitionScan, WriteError> {
    match block::reread_partitions(fd) {
        Ok(()) => Ok(PartitionScan::Rescanned(await_partition_nodes(fd).unwrap_or(0))),
        Err(Errno::EBUSY) => Ok(set_one_by_one(fd)),
        Err(Errno::EINVAL) => Ok(PartitionScan::Skipped),
        Err(errno) => Err(device("re-reading the partition table")(errno)),
    }
}

/// Waits (bounded) until /dev has a node for every partition the kernel now lists in
/// sysfs for this disk (the entries of its directory that have a `partition` file);
/// returns how many there are. Nodes come from devtmpfs, usually before BLKRRPART
/// returns; the wait covers a udev that renames or recreates them.
// Not inlined into commit (measured: smaller); it runs once per image.
#[inline(never)]
/// What BLKRRPART refuses while a partition is open (a prober, a user in a rescue shell):
/// the partitions set one at a time (BLKPG): every one not in use deleted (up to 128, as
/// many as an old GPT usually has), then the new table's added. One in use stays as it is,
/// and so does a new one that overlaps it: the kernel allows nothing else.
fn set_one_by_one(fd: &Fd) -> PartitionScan {
    let Some(table) = crate::disk::table::read(fd) else { return PartitionScan::Busy };
    let in_use = |n| block::set_partition(fd, n, None) == Err(Errno::EBUSY);
    let kept = (1..129).filter(|&n| in_use(n)).count() as u32;
    for &(n, start, len) in &table {
        let _ = block::set_partition(fd, n, Some((start, len)));
    }
    let partitions = await_partition_nodes(fd).unwrap_or(0);
    PartitionScan::Piecewise { partitions, kept }
}

fn await_partition_nodes(fd: &Fd) -> Option<u32> {
    let (major, minor) = block::device_number(fd).ok()?;
    let dir = text!("/sys/dev/block/{major}:{minor}");
    let deadline = time::monotonic() + NODE_WAIT;
    let mut found = 0;
    for name in fs::list_dir(&dir).ok()? {
        if fs::exists(&text!("{dir}/{name}/partition")) {
            found += 1;
            let node = text!("/dev/{name}");
            while !fs::exists(&node) && time::monotonic() < deadline {
                time::sleep(Duration::from_millis(10));
            }
        }
    }
    Some(found)
}

/// Zeroes `target`'s first and last MiB again, for a failure after a verified write (the
/// deployed system could not be finished): a half-provisioned disk must not boot either.
pub fn unmake_bootable(target: &str) -> Result<(), WriteError> {
    wipe_ends(&mut Disk::open(target)?).map_err(device("zeroing the disk's ends"))
}

/// Zeroes the first and last MiB of the target (of a growing file: of what it holds),
/// durably.
fn wipe_ends(disk: &mut Disk) -> sys::Result<()> {
    let end = disk.limit.map_or_else(|| block::file_len(&disk.fd), Ok)?;
    disk.zero(0, end.min(HEAD))?;
    let tail = end.saturating_sub(HEAD).max(HEAD.min(end));
    disk.zero(tail, end - tail)?;
    block::fsync(&disk.fd)
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
        type Error = Interrupted;
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Interrupted> {
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
        let mut hook = |p: &Progress| -> Result<(), Interrupted> {
            calls.push(*p);
            Err(Interrupted::from("the lease is gone"))
        };
        let mut source = SlowSource { data: &image, reads: 0 };
        let err =
            write_image(&mut source, path.to_str().unwrap(), &options, &mut hook).unwrap_err();
        assert_eq!(err, "image write stopped: the lease is gone");
        assert_eq!(calls.len(), 1);
        assert!(calls[0].written > HEAD && !calls[0].done, "{:?}", calls[0]);
        let disk = std::fs::read(&path).unwrap();
        assert!(disk[..HEAD as usize].iter().all(|&b| b == 0), "first MiB zeroed");
        assert!(disk[(7 << 20)..].iter().all(|&b| b == 0), "last MiB zeroed");

        // Without the error the same write completes, and the hook hears of the end.
        let mut calls = 0;
        let mut done = false;
        let mut hook = |p: &Progress| -> Result<(), Interrupted> {
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

    /// A gzip member of `data` (plain header, CRC-32 and ISIZE trailer).
    fn gzip_member(data: &[u8]) -> std::vec::Vec<u8> {
        let mut out = super::super::gzip::HEADER.to_vec();
        out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 1));
        out.extend_from_slice(&crc32::checksum(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    #[test]
    fn members_crcs_and_the_sha256_are_checked_across_ring_rewinds() {
        // Members longer than the ring and not block-aligned, so that shares of one member
        // span rewinds and a member ends inside a block; the CRC-32 is checked by the ring's
        // threads where the CPU can (shares), else by the decoder: both must catch a bad one.
        let dir = std::env::temp_dir().join(std::format!("imprint-crc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk");
        let p = path.to_str().unwrap();
        let part = |len: u32, k: u32| -> std::vec::Vec<u8> {
            (0..len).map(|i| if i % 300_000 < 100_000 { 0 } else { (i * k % 251) as u8 }).collect()
        };
        let (a, b) = (part(5 << 20 | 1234, 7), part(3 << 20 | 77, 13));
        let mut stream = gzip_member(&a);
        stream.extend_from_slice(&gzip_member(&b));
        // The SHA-256 of the whole image, taken on the ring's threads in order, checked too.
        let mut sha = Sha256::new();
        sha.update(&a);
        sha.update(&b);
        let sha = sha.finish();
        let mut options = Options { sha256: Some(sha), ..Options::default() };
        let mut hook = |_: &Progress| -> Result<(), Interrupted> { Ok(()) };
        std::fs::write(&path, std::vec![0xEEu8; 10 << 20]).unwrap();
        let write =
            |stream: &[u8],
             options: &Options,
             hook: &mut dyn FnMut(&Progress) -> Result<(), Interrupted>| {
                let mut rest = stream;
                let mut source = |buf: &mut [u8]| -> Result<usize, Interrupted> {
                    let n = buf.len().min(rest.len()).min(100_000);
                    buf[..n].copy_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    Ok(n)
                };
                write_from(&mut source, p, options, hook)
            };
        let summary = write(&stream, &options, &mut hook).unwrap();
        assert_eq!((summary.members, summary.image_len), (2, (a.len() + b.len()) as u64));
        assert_eq!(summary.sha256, Some(sha));
        let disk = std::fs::read(&path).unwrap();
        assert!(disk[..a.len()] == a[..] && disk[a.len()..][..b.len()] == b[..]);
        let mut wrong = sha;
        wrong[31] ^= 1;
        options.sha256 = Some(wrong);
        let err = write(&stream, &options, &mut hook).unwrap_err();
        assert!(err.contains("sha256 is"), "{err}");
        options.sha256 = None;
        // The second member's CRC-32 off by one bit: refused, the disk's ends zeroed.
        let crc_at = stream.len() - 8;
        stream[crc_at] ^= 1;
        let err = write(&stream, &options, &mut hook).unwrap_err();
        assert!(err.contains("another CRC-32"), "{err}");
        let disk = std::fs::read(&path).unwrap();
        assert!(disk[..HEAD as usize].iter().all(|&b| b == 0), "first MiB zeroed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sink_holds_the_head_skips_zero_runs_and_stops_at_the_end() {
        let dir = std::env::temp_dir().join(std::format!("imprint-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk");
        std::fs::write(&path, std::vec![0xEEu8; 3 << 20]).unwrap();
        let disk = Disk::open(path.to_str().unwrap()).unwrap();
        assert_eq!(disk.limit, Some(3 << 20));
        let mut sink = Sink {
            disk,
            head: AlignedBuf::zeroed(HEAD as usize).unwrap(),
            written: 0,
            pos: 0,
            flushed: 0,
            digested: 0,
            shares: false,
            member_len: 0,
            sha: false,
            zeros: (u64::MAX, 0),
            sparse: true,
            sparse_bytes: 0,
        };
        wipe_ends(&mut sink.disk).unwrap();
        let mut ring = DirectRing::new(2 << 20, None, None).unwrap();
        let image = ring.writable_from(0);
        image[..HEAD as usize].fill(0x11);
        image[HEAD as usize..HEAD as usize + UNIT].fill(0x22);
        sink.accept(&mut ring, 0, 2 << 20).unwrap();
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
        let past = sink.accept(&mut ring, 0, 2 << 20).unwrap_err();
        assert_eq!(past, "the image goes on past the end of the target (3145728 bytes)");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
