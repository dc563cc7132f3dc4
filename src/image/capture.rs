//! Capturing a disk: read it with O_DIRECT in large aligned blocks, hash every byte
//! (SHA-256 of the raw disk), deflate it into our own gzip framing, and hand the bytes to
//! an HTTP upload as a pull stream, wrapped in a multipart form for plunder or bare for a
//! PUT. Nothing is buffered beyond two blocks (the one being deflated, the next being
//! read) and one step's compressed form; nothing is written to any disk.
//!
//! Runs of zero units cost no deflate work: the compressor is fully flushed (its window
//! dropped, the output byte-aligned) and a deflate encoding of one zero unit, made once at
//! the start from a fresh compressor, is repeated; CRC-32 skips the zeros arithmetically.
//! A decoder sees ordinary non-final blocks, and no later match reaches back into them,
//! since the compressor's window was dropped.

use super::crc32::Crc32;
use super::gzip::{HeaderRepr, TrailerRepr};
use super::is_zero;
use super::progress::Progress;
use super::sha256::Sha256;
use crate::http::{self, Client};
use crate::io::Read;
use crate::sys::block::ReadAhead;
use crate::sys::block::{self, Kind};
use crate::sys::fd::{Fd, OpenFlags};
use crate::sys::{time, Errno};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;
use miniz_oxide::deflate::core::{
    compress, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};

/// One O_DIRECT read: a multiple of every logical block size (512-4096), and large: on
/// the bench's loop device 1 MiB direct reads ran at 0.3-0.4 GB/s, 2 MiB at 0.5, 4 MiB at
/// 1.0; with the next block read in the background, 2 MiB keeps ahead of deflate.
const BLOCK: usize = 2 << 20;
/// Deflated this much at a time, so the output buffer stays a quarter of a block.
const STEP: usize = 1 << 20;
/// Granularity of zero detection: a run of whole zero units is not deflated.
const ZERO_UNIT: usize = 64 << 10;
/// Room kept free in the output buffer before each deflate call.
const ROOM: usize = 64 << 10;
/// A gzip member ends before its ISIZE (the length modulo 2^32) would wrap, so every
/// member's ISIZE is its true length: 4 GiB less one step.
pub const MEMBER_MAX: u64 = (4 << 30) - STEP as u64;
/// A fast level by default: a capture should be bound by the disk or the network.
pub const DEFAULT_LEVEL: u8 = 1;
/// How often the hook runs (progress line, lease upkeep, status reports).
const TICK: Duration = Duration::from_secs(1);

/// How the capture is encoded and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// gzip (`.zmg`) when set, else the raw disk (`.img`).
    pub compressed: bool,
    /// Deflate level, 0 (stored) to 10.
    pub level: u8,
    /// A plunder multipart form with the image as this file name (without extension);
    /// `None`: the bare body, for a PUT.
    pub form_name: Option<String>,
}

impl Options {
    /// The form's file name: `<name>.zmg` or `<name>.img`.
    pub fn file_name(&self, name: &str) -> String {
        text!("{name}.{}", if self.compressed { "zmg" } else { "img" })
    }
}

/// Why a capture failed.
#[derive(Debug)]
pub enum CaptureError {
    Open {
        path: String,
        errno: Errno,
    },
    /// The device is mounted or held open exclusively: its image would not be consistent.
    Busy {
        path: String,
    },
    NotASource {
        path: String,
    },
    Device {
        doing: &'static str,
        errno: Errno,
    },
    Read {
        offset: u64,
        errno: Errno,
    },
    /// miniz_oxide refused its input (cannot happen with valid parameters; a guard).
    Deflate,
    /// The hook asked to stop (a lost lease).
    Stopped(String),
    /// The upload failed: connection, the server's status, or the stream above.
    Upload(http::Error),
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Open { path, errno } => write!(f, "opening {path} for capture: {errno}"),
            CaptureError::Busy { path } => {
                write!(f, "{path} is in use (mounted, or held open by another program): refusing to capture it")
            }
            CaptureError::NotASource { path } => {
                write!(f, "{path} is neither a block device nor a regular file")
            }
            CaptureError::Device { doing, errno } => write!(f, "{doing}: {errno}"),
            CaptureError::Read { offset, errno } => {
                write!(f, "reading the disk at byte {offset}: {errno}")
            }
            CaptureError::Deflate => {
                f.write_str("compressing the disk: the deflater refused its input")
            }
            CaptureError::Stopped(why) => write!(f, "capture stopped: {why}"),
            CaptureError::Upload(e) => e.fmt(f),
        }
    }
}

/// A finished capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Raw disk bytes read.
    pub disk_len: u64,
    /// Body bytes handed to the upload (the gzip stream, with the form's framing).
    pub sent_len: u64,
    /// gzip members (0 for a raw capture).
    pub members: u32,
    /// Bytes in runs of zero units, encoded without deflating.
    pub zero_bytes: u64,
    pub sha256: [u8; 32],
}

/// A source opened for capture, and its size.
pub struct Disk {
    fd: Fd,
    pub size: u64,
}

/// Opens `path` read-only with O_DIRECT: a block device exclusively (O_EXCL), so that it
/// is neither mounted nor mounted while we read it; a regular file as it is.
pub fn open(path: &str) -> Result<Disk, CaptureError> {
    let open_error = |errno| CaptureError::Open { path: String::from(path), errno };
    let device = |doing| move |errno| CaptureError::Device { doing, errno };
    match block::kind_of(path).map_err(open_error)? {
        Some(Kind::BlockDevice) => {
            let fd = Fd::open(path, OpenFlags::READ | OpenFlags::EXCLUSIVE | OpenFlags::DIRECT, 0)
                .map_err(|e| {
                    if e == Errno::EBUSY {
                        CaptureError::Busy { path: String::from(path) }
                    } else {
                        open_error(e)
                    }
                })?;
            let size = block::device_size(&fd).map_err(device("reading the device size"))?;
            Ok(Disk { fd, size })
        }
        Some(Kind::RegularFile) => {
            // Filesystems without O_DIRECT (tmpfs on older kernels) refuse it with EINVAL.
            let fd = match Fd::open(path, OpenFlags::READ | OpenFlags::DIRECT, 0) {
                Err(Errno::EINVAL) => Fd::open(path, OpenFlags::READ, 0),
                other => other,
            }
            .map_err(open_error)?;
            let size = block::file_len(&fd).map_err(device("reading the file size"))?;
            Ok(Disk { fd, size })
        }
        None => Err(open_error(Errno::ENOENT)),
        Some(Kind::Other) => Err(CaptureError::NotASource { path: String::from(path) }),
    }
}

/// The deflater and the gzip member it is in.
struct Gzip {
    compressor: Box<CompressorOxide>,
    crc: Crc32,
    /// Raw bytes in the current member.
    member_len: u64,
    member_max: u64,
    members: u32,
    /// The compressor holds nothing and references nothing: a zero unit may follow.
    at_flush_point: bool,
    /// The deflate encoding of one zero unit, from a fresh compressor, byte-aligned.
    zero_unit: Vec<u8>,
}

/// The upload body: the form's preamble, the (compressed) disk, the form's epilogue,
/// pulled by the HTTP client as it sends.
pub struct Capture<'h> {
    disk: Disk,
    /// The disk's blocks; `current()` is the one being encoded.
    reader: ReadAhead,
    /// Raw disk bytes read so far.
    read: u64,
    /// The block holds `block_len` bytes, deflated up to `block_pos`.
    block_pos: usize,
    block_len: usize,
    sha: Sha256,
    gzip: Option<Gzip>,
    /// Bytes waiting to be pulled: `out[start..end]`, or the block's `[start..end]` when
    /// `from_block` (a raw capture sends the block itself).
    out: Vec<u8>,
    start: usize,
    end: usize,
    from_block: bool,
    /// The multipart form's epilogue, sent after the disk.
    epilogue: Vec<u8>,
    finished: bool,
    sent: u64,
    zero_bytes: u64,
    hook: &'h mut dyn FnMut(&Progress) -> Result<(), String>,
    started: Duration,
    last_tick: Duration,
}

/// `multipart/form-data; boundary=...` and the form's preamble and epilogue around a
/// file named `file_name` in the field `BootyImage` (what plunder's handler reads).
pub fn multipart(file_name: &str) -> (String, String, String) {
    // Unique enough never to occur in the data: the boot's clock in nanoseconds.
    let boundary = text!("imprint-capture-{:x}", time::monotonic().as_nanos());
    let content_type = text!("multipart/form-data; boundary={boundary}");
    let preamble = text!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"BootyImage\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    (content_type, preamble, text!("\r\n--{boundary}--\r\n"))
}

impl<'h> Capture<'h> {
    /// A capture of `disk`, its body opened by `preamble` and closed by `epilogue`.
    pub fn new(
        disk: Disk,
        options: &Options,
        preamble: &[u8],
        epilogue: &[u8],
        hook: &'h mut dyn FnMut(&Progress) -> Result<(), String>,
    ) -> Result<Capture<'h>, CaptureError> {
        let reader = ReadAhead::new(BLOCK)
            .map_err(|errno| CaptureError::Device { doing: "allocating buffers", errno })?;
        let mut out = vec![0u8; STEP + 2 * ROOM];
        out[..preamble.len()].copy_from_slice(preamble);
        let now = time::monotonic();
        let mut capture = Capture {
            disk,
            reader,
            read: 0,
            block_pos: 0,
            block_len: 0,
            sha: Sha256::new(),
            gzip: None,
            out,
            start: 0,
            end: preamble.len(),
            from_block: false,
            epilogue: epilogue.to_vec(),
            finished: false,
            sent: 0,
            zero_bytes: 0,
            hook,
            started: now,
            last_tick: now,
        };
        if options.compressed {
            let flags = create_comp_flags_from_zip_params(options.level.min(10).into(), -15, 0);
            let mut gzip = Gzip {
                compressor: Box::new(CompressorOxide::new(flags)),
                crc: Crc32::new(),
                member_len: 0,
                member_max: MEMBER_MAX,
                members: 1,
                at_flush_point: true,
                zero_unit: Vec::new(),
            };
            // One zero unit, deflated from a fresh compressor up to a full flush.
            capture.end = 0;
            deflate(
                &mut gzip.compressor,
                &vec![0; ZERO_UNIT],
                TDEFLFlush::Full,
                &mut capture.out,
                &mut capture.end,
            )?;
            gzip.zero_unit = capture.out[..capture.end].to_vec();
            gzip.compressor.reset();
            capture.out[..preamble.len()].copy_from_slice(preamble);
            capture.end = preamble.len();
            gzip_header(&mut capture.out, &mut capture.end);
            capture.gzip = Some(gzip);
        }
        Ok(capture)
    }

    /// What the capture did; the SHA-256 is of every disk byte read.
    pub fn finish(self) -> Summary {
        let members = self.gzip.as_ref().map_or(0, |g| g.members);
        Summary {
            disk_len: self.read,
            sent_len: self.sent,
            members,
            zero_bytes: self.zero_bytes,
            sha256: self.sha.finish(),
        }
    }

    /// The progress so far (`done` on the last call, after the server accepted it all).
    pub fn progress(&self, done: bool) -> Progress {
        Progress {
            written: self.read,
            read: self.sent,
            source_size: None,
            image_size: Some(self.disk.size),
            elapsed: time::monotonic() - self.started,
            done,
            reading: true,
        }
    }

    /// Encodes the next step of the block into `out`, reading the next block when this
    /// one is done; at the disk's end, the last member's end and the epilogue.
    fn produce(&mut self) -> Result<(), CaptureError> {
        (self.start, self.end, self.from_block) = (0, 0, false);
        if self.block_pos == self.block_len {
            let block = self
                .reader
                .next(&self.disk.fd)
                .map_err(|errno| CaptureError::Read { offset: self.read, errno })?;
            let n = block.len();
            self.sha.update(block);
            self.read += n as u64;
            (self.block_pos, self.block_len) = (0, n);
        }
        let n = self.block_len - self.block_pos;
        match &mut self.gzip {
            None => (self.end, self.from_block, self.block_pos) = (n, n > 0, self.block_len),
            Some(gzip) => {
                let data = &self.reader.current()[self.block_pos..self.block_pos + n.min(STEP)];
                self.block_pos += data.len();
                self.zero_bytes += encode(gzip, data, &mut self.out, &mut self.end)?;
                if n == 0 {
                    end_member(gzip, &mut self.out, &mut self.end)?;
                }
            }
        }
        if n == 0 {
            self.finished = true;
            put(&mut self.out, &mut self.end, &self.epilogue);
        }
        let now = time::monotonic();
        if now - self.last_tick >= TICK {
            self.last_tick = now;
            let progress = self.progress(false);
            (self.hook)(&progress).map_err(CaptureError::Stopped)?;
        }
        Ok(())
    }
}

impl Read for Capture<'_> {
    type Error = CaptureError;
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, CaptureError> {
        while self.start == self.end {
            if self.finished {
                return Ok(0);
            }
            self.produce()?;
        }
        let pending = if self.from_block {
            &self.reader.current()[self.start..self.end]
        } else {
            &self.out[self.start..self.end]
        };
        let n = pending.len().min(buf.len());
        buf[..n].copy_from_slice(&pending[..n]);
        self.start += n;
        self.sent += n as u64;
        Ok(n)
    }
}

/// Appends `bytes` at `out[*end..]`, growing `out` if needed.
fn put(out: &mut Vec<u8>, end: &mut usize, bytes: &[u8]) {
    if out.len() < *end + bytes.len() {
        out.resize(*end + bytes.len(), 0);
    }
    out[*end..*end + bytes.len()].copy_from_slice(bytes);
    *end += bytes.len();
}

/// A member header: no name, no time (a capture is not a file), OS "Unix".
fn gzip_header(out: &mut Vec<u8>, end: &mut usize) {
    let mut header = Vec::new();
    HeaderRepr { os: 3, ..HeaderRepr::default() }.emit(&mut header);
    put(out, end, &header);
}

/// Deflates `input` into `out[*end..]` with `flush`, until the compressor has taken it
/// all and, for a flush, emitted everything.
fn deflate(
    compressor: &mut CompressorOxide,
    mut input: &[u8],
    flush: TDEFLFlush,
    out: &mut Vec<u8>,
    end: &mut usize,
) -> Result<(), CaptureError> {
    loop {
        if out.len() - *end < ROOM {
            out.resize(*end + 2 * ROOM, 0);
        }
        let (status, used, made) = compress(compressor, input, &mut out[*end..], flush);
        input = &input[used..];
        *end += made;
        match status {
            TDEFLStatus::Done => return Ok(()),
            // Input all taken, and room left over: nothing is waiting inside.
            TDEFLStatus::Okay if input.is_empty() && *end < out.len() => return Ok(()),
            TDEFLStatus::Okay => {}
            _ => return Err(CaptureError::Deflate),
        }
    }
}

/// Encodes one block (empty at the disk's end) into the gzip stream, starting a new
/// member when this one would pass `member_max`; returns the bytes sent as zero units.
fn encode(
    gzip: &mut Gzip,
    data: &[u8],
    out: &mut Vec<u8>,
    end: &mut usize,
) -> Result<u64, CaptureError> {
    if gzip.member_len > 0 && gzip.member_len + data.len() as u64 > gzip.member_max {
        end_member(gzip, out, end)?;
        gzip.compressor.reset();
        (gzip.crc, gzip.member_len, gzip.at_flush_point) = (Crc32::new(), 0, true);
        gzip.members += 1;
        gzip_header(out, end);
    }
    gzip.member_len += data.len() as u64;
    let mut zeros = 0;
    let mut at = 0;
    while at < data.len() {
        let units = data[at..].chunks_exact(ZERO_UNIT).take_while(|u| is_zero(u)).count();
        if units > 0 {
            if !gzip.at_flush_point {
                deflate(&mut gzip.compressor, &[], TDEFLFlush::Full, out, end)?;
                gzip.at_flush_point = true;
            }
            for _ in 0..units {
                put(out, end, &gzip.zero_unit);
            }
            let len = units * ZERO_UNIT;
            gzip.crc.skip_zeros(len as u64);
            zeros += len as u64;
            at += len;
            continue;
        }
        // Data up to the next whole zero unit (or the end).
        let mut stop = at + ZERO_UNIT.min(data.len() - at);
        while stop + ZERO_UNIT <= data.len() && !is_zero(&data[stop..stop + ZERO_UNIT]) {
            stop += ZERO_UNIT;
        }
        if stop + ZERO_UNIT > data.len() {
            stop = data.len();
        }
        gzip.crc.update(&data[at..stop]);
        deflate(&mut gzip.compressor, &data[at..stop], TDEFLFlush::None, out, end)?;
        gzip.at_flush_point = false;
        at = stop;
    }
    Ok(zeros)
}

/// Ends the member: the final deflate block, then CRC-32 and ISIZE.
fn end_member(gzip: &mut Gzip, out: &mut Vec<u8>, end: &mut usize) -> Result<(), CaptureError> {
    deflate(&mut gzip.compressor, &[], TDEFLFlush::Finish, out, end)?;
    let mut trailer = [0u8; TrailerRepr::LEN];
    TrailerRepr { crc: gzip.crc.value(), size: gzip.member_len as u32 }.emit(&mut trailer);
    put(out, end, &trailer);
    Ok(())
}

/// Captures `path` to `url`: a plunder multipart POST when `options.form_name` is set,
/// else a PUT of the bare body. The hook runs about once a second while the disk is read
/// and once at the end, after the server accepted the upload.
pub fn capture(
    client: &mut Client,
    disk: Disk,
    url: &str,
    options: &Options,
    hook: &mut dyn FnMut(&Progress) -> Result<(), String>,
) -> Result<Summary, CaptureError> {
    let (content_type, preamble, epilogue, method) = match &options.form_name {
        Some(name) => {
            let (content_type, preamble, epilogue) = multipart(&options.file_name(name));
            (content_type, preamble, epilogue, "POST")
        }
        None => (String::from("application/octet-stream"), String::new(), String::new(), "PUT"),
    };
    let mut body = Capture::new(disk, options, preamble.as_bytes(), epilogue.as_bytes(), hook)?;
    let headers = [("Content-Type", content_type.as_str())];
    client.upload(method, url, &headers, &mut body, None).map_err(CaptureError::Upload)?;
    let progress = body.progress(true);
    // The server has it all: a failing hook now changes nothing about the capture.
    let _ = (body.hook)(&progress);
    Ok(body.finish())
}

pub const CAPTURE_USAGE: &str =
    "imprint capture <device> <upload-url> [--raw] [--put] [--level N] [--name NAME]";

/// `imprint capture`: reads the device, uploads it, prints progress and the SHA-256;
/// returns the exit status.
pub fn capture_command(args: &[&[u8]]) -> i32 {
    let (path, url, options) = match parse_capture_args(args) {
        Ok(parsed) => parsed,
        Err(why) => {
            errln!("imprint capture: {why}; usage: {CAPTURE_USAGE}");
            return crate::tool::EXIT_USAGE;
        }
    };
    let on_tty = crate::sys::tty::is_tty(crate::sys::fd::STDOUT);
    let mut show = |p: &Progress| -> Result<(), String> {
        super::show_progress(p, on_tty);
        Ok(())
    };
    let mut client = Client::new(crate::provision::tool_dns(), http::Options::default());
    let result = open(path).and_then(|disk| capture(&mut client, disk, url, &options, &mut show));
    match result {
        Ok(s) => {
            sayln!(
                "captured {} bytes of {path} to {url}: {} bytes sent, {} member(s), {} bytes of zero runs; sha256 {}",
                s.disk_len,
                s.sent_len,
                s.members,
                s.zero_bytes,
                super::sha256::Hex(&s.sha256)
            );
            0
        }
        Err(e) => {
            if on_tty {
                say!("\n");
            }
            errln!("imprint capture: {e}");
            1
        }
    }
}

fn parse_capture_args<'a>(args: &[&'a [u8]]) -> Result<(&'a str, &'a str, Options), String> {
    let mut args = crate::tool::Args::new(args)?;
    let level = match args.value("--level")? {
        Some(n) => n
            .parse()
            .ok()
            .filter(|&l| l <= 10)
            .ok_or_else(|| text!("--level takes 0 to 10, not {n}"))?,
        None => DEFAULT_LEVEL,
    };
    let name = args.value("--name")?;
    let compressed = !args.flag("--raw");
    let put = args.flag("--put");
    let positional = args.positional(2, "a device and an upload URL")?;
    let (path, url) = (positional[0], positional[1]);
    // plunder names captures by MAC; a tool run names it after the device by default.
    let form_name = (!put)
        .then(|| String::from(name.unwrap_or_else(|| path.rsplit('/').next().unwrap_or(path))));
    Ok((path, url, Options { compressed, level, form_name }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::gzip::Decoder;
    use std::format;
    use std::string::ToString;

    /// Mixed data: text, noise, zero runs of many lengths, not a whole number of units.
    fn disk_like(len: usize) -> Vec<u8> {
        let mut x = 0x9e3779b97f4a7c15u64;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let run = (x % (200 << 10)) as usize + 1;
            match x % 3 {
                0 => out.extend(std::iter::repeat(0u8).take(run * 2)),
                1 => out.extend((0..run).map(|i| (x >> (i % 56)) as u8)),
                _ => out.extend(b"a disk, captured; ".iter().cycle().take(run)),
            }
        }
        out.truncate(len);
        out
    }

    fn inflate_all(stream: &[u8]) -> (Vec<u8>, u32) {
        let mut decoder = Decoder::new();
        let mut ring = std::vec![0u8; 1 << 20];
        let (mut input, mut pos, mut out) = (stream, 0, Vec::new());
        while !decoder.is_finished() {
            let step = decoder.step(input, true, &mut ring, pos).unwrap();
            input = &input[step.consumed..];
            out.extend_from_slice(&ring[pos..pos + step.produced]);
            pos = (pos + step.produced) % ring.len();
            assert!(step.consumed + step.produced > 0 || decoder.is_finished(), "stuck");
        }
        (out, decoder.members())
    }

    fn capture_file(
        name: &str,
        data: &[u8],
        options: &Options,
        member_max: u64,
    ) -> (Vec<u8>, Summary, u32) {
        let dir =
            std::env::temp_dir().join(format!("imprint-capture-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk");
        std::fs::write(&path, data).unwrap();
        let disk = open(path.to_str().unwrap()).unwrap();
        assert_eq!(disk.size, data.len() as u64);
        let mut hook = |_: &Progress| -> Result<(), String> { Ok(()) };
        let mut body = Capture::new(disk, options, b"<pre>", b"<post>", &mut hook).unwrap();
        if let Some(gzip) = &mut body.gzip {
            gzip.member_max = member_max;
        }
        let mut sent = Vec::new();
        let mut buf = std::vec![0u8; 7000];
        loop {
            let n = body.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            sent.extend_from_slice(&buf[..n]);
        }
        let members = body.gzip.as_ref().map_or(0, |g| g.members);
        std::fs::remove_dir_all(&dir).unwrap();
        (sent, body.finish(), members)
    }

    #[test]
    fn gzip_capture_inflates_to_the_disk_with_members_and_cheap_zero_runs() {
        let data = disk_like((9 << 20) + 1234);
        let options = Options { compressed: true, level: DEFAULT_LEVEL, form_name: None };
        // Members of 3 MiB: the stream must hold four, each with a true ISIZE.
        let (sent, summary, members) = capture_file("gzip", &data, &options, 3 << 20);
        assert!(sent.starts_with(b"<pre>\x1f\x8b") && sent.ends_with(b"<post>"));
        let stream = &sent[5..sent.len() - 6];
        let (raw, decoded_members) = inflate_all(stream);
        assert!(raw == data, "the capture inflates to the disk");
        assert_eq!((members, decoded_members), (4, 4));
        assert_eq!(summary.disk_len, data.len() as u64);
        assert_eq!(summary.sent_len, sent.len() as u64);
        assert!(
            summary.zero_bytes >= 1 << 20,
            "zero runs went the cheap way: {}",
            summary.zero_bytes
        );
        assert!(stream.len() < data.len() / 2, "compressed: {} of {}", stream.len(), data.len());
        let mut sha = Sha256::new();
        sha.update(&data);
        assert_eq!(summary.sha256, sha.finish());
    }

    #[test]
    fn an_all_zero_disk_is_tiny_and_a_raw_capture_is_the_disk() {
        let zeros = std::vec![0u8; 4 << 20];
        let options = Options { compressed: true, level: 6, form_name: None };
        let (sent, summary, _) = capture_file("zeros", &zeros, &options, MEMBER_MAX);
        assert_eq!(summary.zero_bytes, 4 << 20);
        assert!(sent.len() < 8 << 10, "{} bytes for 4 MiB of zeros", sent.len());
        assert!(inflate_all(&sent[5..sent.len() - 6]).0 == zeros);

        let data = disk_like(3 << 20);
        let raw = Options { compressed: false, ..options };
        let (sent, summary, _) = capture_file("raw", &data, &raw, MEMBER_MAX);
        assert!(
            sent.starts_with(b"<pre>") && sent.ends_with(b"<post>"),
            "the form's framing around the disk"
        );
        assert!(sent[5..sent.len() - 6] == data[..]);
        assert_eq!(summary.members, 0);
    }

    #[test]
    fn the_form_names_the_file_as_plunder_expects() {
        let options = Options {
            compressed: true,
            level: 1,
            form_name: Some("aa:bb:cc:dd:ee:ff".to_string()),
        };
        assert_eq!(options.file_name("aa:bb:cc:dd:ee:ff"), "aa:bb:cc:dd:ee:ff.zmg");
        assert_eq!(Options { compressed: false, ..options }.file_name("x"), "x.img");
        let (content_type, preamble, epilogue) = multipart("m.zmg");
        let boundary = content_type.strip_prefix("multipart/form-data; boundary=").unwrap();
        assert!(preamble.starts_with(&format!("--{boundary}\r\n")));
        assert!(
            preamble.contains("name=\"BootyImage\"; filename=\"m.zmg\"")
                && preamble.ends_with("\r\n\r\n")
        );
        assert_eq!(epilogue, format!("\r\n--{boundary}--\r\n"));
    }

    #[test]
    fn capture_arguments_parse_and_bad_ones_are_refused() {
        let (path, url, options) = parse_capture_args(&[b"/dev/vda", b"http://s/image"]).unwrap();
        assert_eq!((path, url), ("/dev/vda", "http://s/image"));
        assert_eq!(
            options,
            Options { compressed: true, level: DEFAULT_LEVEL, form_name: Some("vda".to_string()) }
        );
        let args: [&[u8]; 7] = [b"d", b"--raw", b"u", b"--put", b"--level", b"9", b"--name=x"];
        let (_, _, options) = parse_capture_args(&args).unwrap();
        assert_eq!(options, Options { compressed: false, level: 9, form_name: None });
        let (_, _, named) = parse_capture_args(&[b"d", b"u", b"--name", b"aa:bb"]).unwrap();
        assert_eq!(named.form_name.as_deref(), Some("aa:bb"));
        assert!(parse_capture_args(&[b"d", b"u", b"--level", b"11"])
            .unwrap_err()
            .contains("0 to 10"));
        assert!(parse_capture_args(&[b"d"]).unwrap_err().contains("a device and an upload URL"));
        assert!(parse_capture_args(&[b"d", b"u", b"--fast"]).unwrap_err().contains("--fast"));
    }

    #[test]
    fn errors_are_one_line() {
        let e = CaptureError::Read { offset: 4096, errno: Errno(libc::EIO) };
        assert!(e.to_string().starts_with("reading the disk at byte 4096: "));
        assert!(!CaptureError::Busy { path: "/dev/sda".into() }.to_string().contains('\n'));
        assert!(matches!(
            open("/nonexistent/disk"),
            Err(CaptureError::Open { errno: Errno::ENOENT, .. })
        ));
    }
}
