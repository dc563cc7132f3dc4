//! Capturing a disk: read it with O_DIRECT in large aligned blocks, hash every byte
//! (SHA-256 of the raw disk), deflate it into our own gzip framing, and hand the bytes to
//! an HTTP upload as a pull stream, wrapped in a multipart form for plunder or bare for a
//! PUT. Nothing is buffered beyond two blocks (the one being encoded, the next being read)
//! and one unit's compressed form; nothing is written to any disk.
//!
//! The disk is encoded a unit (64 KiB) at a time. A zero unit costs no deflate work: the
//! compressor is fully flushed (its window dropped, the output byte-aligned) and a deflate
//! encoding of one zero unit, made once at the start from a fresh compressor, is repeated;
//! CRC-32 skips the zeros arithmetically. A decoder sees ordinary non-final blocks, and no
//! later match reaches back into them, since the compressor's window was dropped.

use super::crc32::Crc32;
use super::progress::Progress;
use super::sha256::Sha256;
use super::{gzip::HEADER, is_zero, Hook};
use crate::http::Client;
use crate::io::Read;
use crate::sys::block::{self, ReadAhead};
use crate::sys::fd::Fd;
use crate::sys::{time, Errno};
use alloc::{boxed::Box, string::String, vec, vec::Vec};
use core::time::Duration;
use miniz_oxide::deflate::core::{compress_to_output, CompressorOxide, TDEFLFlush};
use miniz_oxide::DataFormat;

/// One O_DIRECT read: a multiple of every logical block size (512-4096), and large: on
/// the bench's loop device 1 MiB direct reads ran at 0.3-0.4 GB/s, 2 MiB at 0.5, 4 MiB at
/// 1.0; with the next block read in the background, 2 MiB keeps ahead of deflate.
const BLOCK: usize = 2 << 20;
/// What is encoded at a time, and the granularity of zero detection.
const UNIT: usize = 64 << 10;
/// A fast level by default: a capture should be bound by the disk or the network.
pub const DEFAULT_LEVEL: u8 = 1;
/// A gzip member ends before its ISIZE (the length modulo 2^32) would wrap, so every
/// member's ISIZE is its true length (tests make small members).
const MEMBER_MAX: u64 = if cfg!(test) { 3 << 20 } else { u32::MAX as u64 };
/// How often the hook runs (progress line, lease upkeep, status reports).
const TICK: Duration = Duration::from_secs(1);

/// Why a capture failed: one line that says what was being done.
pub type CaptureError = String;

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

/// A finished capture.
pub struct Summary {
    /// Raw disk bytes read.
    pub disk_len: u64,
    /// Body bytes handed to the upload (the gzip stream, with the form's framing).
    pub sent_len: u64,
    /// gzip members (0 for a raw capture).
    pub members: u32,
    /// Bytes in zero units, encoded without deflating.
    pub zero_bytes: u64,
    pub sha256: [u8; 32],
}

/// A source opened for capture, and its size.
pub struct Disk {
    fd: Fd,
    pub size: u64,
}

/// Opens `path` read-only (see [`block::open_image`]): a block device exclusively, so that
/// it is neither mounted nor mounted while we read it.
pub fn open(path: &str) -> Result<Disk, CaptureError> {
    let (fd, device) = match block::open_image(path, false) {
        Ok(Some(source)) => source,
        Ok(None) => return Err(text!("{path} is neither a block device nor a regular file")),
        Err(Errno::EBUSY) => {
            return Err(text!(
            "{path} is in use (mounted, or held open by another program): refusing to capture it"
        ))
        }
        Err(e) => return Err(text!("opening {path} for capture: {e}")),
    };
    let size = if device { block::device_size(&fd) } else { block::file_len(&fd) };
    let size = size.map_err(|e| text!("reading the size of {path}: {e}"))?;
    Ok(Disk { fd, size })
}

/// The deflater and the gzip member it is in.
#[derive(Default)]
struct Gzip {
    compressor: Box<CompressorOxide>,
    crc: Crc32,
    /// Raw bytes in the current member.
    member_len: u64,
    members: u32,
    /// Bytes in zero units, encoded without deflating.
    zero_bytes: u64,
    /// The compressor holds nothing and references nothing: a zero unit may follow.
    at_flush_point: bool,
    /// The deflate encoding of one zero unit, from a fresh compressor, byte-aligned.
    zero_unit: Vec<u8>,
}

impl Gzip {
    /// A compressor at `level`, and the first member's header in `out`.
    fn new(level: u8, out: &mut Vec<u8>) -> Gzip {
        let mut gzip = Gzip::default();
        gzip.compressor.set_format_and_level(DataFormat::Raw, level.min(10));
        deflate(&mut gzip.compressor, &vec![0; UNIT], TDEFLFlush::Full, &mut gzip.zero_unit);
        gzip.start_member(out);
        gzip
    }

    /// A fresh compressor and CRC-32, and the member's header in `out`.
    fn start_member(&mut self, out: &mut Vec<u8>) {
        self.compressor.reset();
        self.crc.reset();
        (self.member_len, self.at_flush_point) = (0, true);
        self.members += 1;
        out.extend_from_slice(&HEADER);
    }

    /// Encodes one unit of the disk into `out`, starting a new member when this one would
    /// pass [`MEMBER_MAX`].
    fn encode(&mut self, unit: &[u8], out: &mut Vec<u8>) {
        if self.member_len + unit.len() as u64 > MEMBER_MAX {
            self.end_member(out);
            self.start_member(out);
        }
        self.member_len += unit.len() as u64;
        if unit.len() < UNIT || !is_zero(unit) {
            self.crc.update(unit);
            self.at_flush_point = false;
            return deflate(&mut self.compressor, unit, TDEFLFlush::None, out);
        }
        if !self.at_flush_point {
            deflate(&mut self.compressor, &[], TDEFLFlush::Full, out);
            self.at_flush_point = true;
        }
        out.extend_from_slice(&self.zero_unit);
        self.crc.skip_zeros(UNIT as u64);
        self.zero_bytes += UNIT as u64;
    }

    /// Ends the member: the final deflate block, then CRC-32 and ISIZE.
    fn end_member(&mut self, out: &mut Vec<u8>) {
        deflate(&mut self.compressor, &[], TDEFLFlush::Finish, out);
        out.extend_from_slice(&self.crc.value().to_le_bytes());
        out.extend_from_slice(&(self.member_len as u32).to_le_bytes());
    }
}

/// Deflates all of `input` onto `out` with `flush`. It cannot fail: miniz_oxide refuses
/// only a call after a finish without a reset (each member's end resets), or a callback
/// that refuses its output (ours takes it all).
fn deflate(compressor: &mut CompressorOxide, input: &[u8], flush: TDEFLFlush, out: &mut Vec<u8>) {
    compress_to_output(compressor, input, flush, |bytes| {
        out.extend_from_slice(bytes);
        true
    });
}

/// The upload body: the form's preamble, the (compressed) disk, the form's epilogue,
/// pulled by the HTTP client as it sends.
struct Capture<'h> {
    disk: Disk,
    /// The disk's blocks; `current()` is the one being encoded, up to `pos`.
    reader: ReadAhead,
    pos: usize,
    /// Disk bytes read (`written`, for a capture) and body bytes sent (`read`) so far, and
    /// the time of the last tick.
    counts: Progress,
    sha: Sha256,
    gzip: Option<Gzip>,
    /// Bytes waiting to be pulled: `out[start..]`.
    out: Vec<u8>,
    start: usize,
    /// The multipart form's epilogue, sent after the disk; `None` once it is in `out`.
    epilogue: Option<String>,
    hook: &'h mut Hook<'h>,
    started: Duration,
}

/// The method, the content type and the body's preamble and epilogue: for a form,
/// `multipart/form-data; boundary=...` around the file `<name>.zmg` (or `.img`) in the
/// field `BootyImage` (what plunder's handler reads); else a PUT of the bare disk.
fn framing(options: &Options) -> (&'static str, String, String, String) {
    let Some(name) = &options.form_name else {
        return ("PUT", "application/octet-stream".into(), String::new(), String::new());
    };
    // Unique enough never to occur in the data: the boot's clock in nanoseconds (its low
    // 32 bits: u32's hex formatting is in the init already, u128's would be extra).
    let boundary = text!("imprint-capture-{:x}", time::monotonic().as_nanos() as u32);
    let extension = if options.compressed { "zmg" } else { "img" };
    let preamble = text!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"BootyImage\"; filename=\"{name}.{extension}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let epilogue = String::from("\r\n--") + &boundary + "--\r\n";
    ("POST", String::from("multipart/form-data; boundary=") + &boundary, preamble, epilogue)
}

impl<'h> Capture<'h> {
    /// A capture of `disk` through `reader`, its body opened by `preamble` and closed by
    /// `epilogue`.
    fn new(
        (disk, reader): (Disk, ReadAhead),
        options: &Options,
        preamble: String,
        epilogue: String,
        hook: &'h mut Hook<'h>,
    ) -> Capture<'h> {
        let mut out = preamble.into_bytes();
        let gzip = options.compressed.then(|| Gzip::new(options.level, &mut out));
        let counts = Progress { image_size: Some(disk.size), reading: true, ..Progress::default() };
        Capture {
            disk,
            reader,
            pos: 0,
            counts,
            sha: Sha256::new(),
            gzip,
            out,
            start: 0,
            epilogue: Some(epilogue),
            hook,
            started: time::monotonic(),
        }
    }

    /// Encodes the next unit of the disk into `out`, reading the next block when this one
    /// is done; at the disk's end, the last member's end and the epilogue.
    fn produce(&mut self) -> Result<(), CaptureError> {
        self.out.clear();
        self.start = 0;
        if self.pos == self.reader.current().len() {
            let block = self
                .reader
                .next(&self.disk.fd)
                .map_err(|e| text!("reading the disk at byte {}: {e}", self.counts.written))?;
            self.sha.update(block);
            self.counts.written += block.len() as u64;
            self.pos = 0;
        }
        let rest = self.reader.current().get(self.pos..).unwrap_or_default();
        let unit = rest.get(..UNIT).unwrap_or(rest);
        self.pos += unit.len();
        match &mut self.gzip {
            None => self.out.extend_from_slice(unit),
            Some(gzip) if unit.is_empty() => gzip.end_member(&mut self.out),
            Some(gzip) => gzip.encode(unit, &mut self.out),
        }
        if unit.is_empty() {
            self.out.extend(self.epilogue.take().unwrap_or_default().bytes());
        }
        let elapsed = time::monotonic() - self.started;
        if elapsed - self.counts.elapsed >= TICK {
            self.counts.elapsed = elapsed;
            (self.hook)(&self.counts).map_err(|why| text!("capture stopped: {why}"))?;
        }
        Ok(())
    }

    fn summary(&self) -> Summary {
        let (members, zero_bytes) =
            self.gzip.as_ref().map_or((0, 0), |g| (g.members, g.zero_bytes));
        let (disk_len, sent_len) = (self.counts.written, self.counts.read);
        Summary { disk_len, sent_len, members, zero_bytes, sha256: self.sha.clone().finish() }
    }
}

impl Read for Capture<'_> {
    type Error = CaptureError;
    // Fills `buf` (the upload's chunk) unless the body ends first: a unit's encoding is
    // often small, and each pull is a send.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, CaptureError> {
        let mut n = 0;
        while n < buf.len() && (self.start < self.out.len() || self.epilogue.is_some()) {
            if self.start == self.out.len() {
                self.produce()?;
            }
            let (out, free) = (self.out.get(self.start..), buf.get_mut(n..));
            let Ok(m) = out.unwrap_or_default().read(free.unwrap_or_default());
            self.start += m;
            n += m;
        }
        self.counts.read += n as u64;
        Ok(n)
    }
}

/// Captures `disk` to `url`: a plunder multipart POST when `options.form_name` is set,
/// else a PUT of the bare body. The hook runs about once a second while the disk is read
/// and once at the end, after the server accepted the upload.
pub fn capture(
    client: &mut Client,
    disk: Disk,
    url: &str,
    options: &Options,
    hook: &mut Hook,
) -> Result<Summary, CaptureError> {
    let (method, content_type, preamble, epilogue) = framing(options);
    let reader = ReadAhead::new(BLOCK).map_err(|e| text!("allocating buffers: {e}"))?;
    let mut body = Capture::new((disk, reader), options, preamble, epilogue, hook);
    let headers = [("Content-Type", content_type.as_str())];
    client.upload_from(method, url, &headers, &mut |buf| body.read(buf), None)?;
    (body.counts.elapsed, body.counts.done) = (time::monotonic() - body.started, true);
    // The server has it all: a failing hook now changes nothing about the capture.
    let _ = (body.hook)(&body.counts);
    Ok(body.summary())
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

    /// The body a capture of `data` (as a file) sends, with `<pre>` and `<post>` as the
    /// form's framing, and its summary.
    fn capture_file(name: &str, data: &[u8], options: &Options) -> (Vec<u8>, Summary) {
        let dir =
            std::env::temp_dir().join(format!("imprint-capture-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk");
        std::fs::write(&path, data).unwrap();
        let disk = open(path.to_str().unwrap()).unwrap();
        assert_eq!(disk.size, data.len() as u64);
        let mut hook = |_: &Progress| -> Result<(), String> { Ok(()) };
        let (pre, post) = ("<pre>".to_string(), "<post>".to_string());
        let reader = ReadAhead::new(BLOCK).unwrap();
        let mut body = Capture::new((disk, reader), options, pre, post, &mut hook);
        let mut sent = Vec::new();
        let mut buf = std::vec![0u8; 7000];
        loop {
            let n = body.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            sent.extend_from_slice(&buf[..n]);
        }
        std::fs::remove_dir_all(&dir).unwrap();
        (sent, body.summary())
    }

    #[test]
    fn gzip_capture_inflates_to_the_disk_with_members_and_cheap_zero_runs() {
        let data = disk_like((9 << 20) + 1234);
        let options = Options { compressed: true, level: DEFAULT_LEVEL, form_name: None };
        // Members of 3 MiB (MEMBER_MAX in tests): four, each with a true ISIZE.
        let (sent, summary) = capture_file("gzip", &data, &options);
        assert!(sent.starts_with(b"<pre>\x1f\x8b") && sent.ends_with(b"<post>"));
        let stream = &sent[5..sent.len() - 6];
        let (raw, decoded_members) = inflate_all(stream);
        assert!(raw == data, "the capture inflates to the disk");
        assert_eq!((summary.members, decoded_members), (4, 4));
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
        let (sent, summary) = capture_file("zeros", &zeros, &options);
        assert_eq!(summary.zero_bytes, 4 << 20);
        assert!(sent.len() < 8 << 10, "{} bytes for 4 MiB of zeros", sent.len());
        assert!(inflate_all(&sent[5..sent.len() - 6]).0 == zeros);

        for level in [0, 10] {
            let data = disk_like(1 << 20);
            let options = Options { compressed: true, level, form_name: None };
            let (sent, _) = capture_file("levels", &data, &options);
            assert!(inflate_all(&sent[5..sent.len() - 6]).0 == data, "level {level}");
        }

        let data = disk_like(3 << 20);
        let raw = Options { compressed: false, ..options };
        let (sent, summary) = capture_file("raw", &data, &raw);
        assert!(
            sent.starts_with(b"<pre>") && sent.ends_with(b"<post>"),
            "the form's framing around the disk"
        );
        assert!(sent[5..sent.len() - 6] == data[..]);
        assert_eq!(summary.members, 0);
    }

    #[test]
    fn the_form_names_the_file_as_plunder_expects() {
        let form = |name: &str, compressed| {
            framing(&Options { compressed, level: 1, form_name: Some(name.to_string()) })
        };
        let (method, content_type, preamble, epilogue) = form("aa:bb:cc:dd:ee:ff", true);
        assert_eq!(method, "POST");
        let boundary = content_type.strip_prefix("multipart/form-data; boundary=").unwrap();
        assert!(preamble.starts_with(&format!("--{boundary}\r\n")));
        assert!(
            preamble.contains("name=\"BootyImage\"; filename=\"aa:bb:cc:dd:ee:ff.zmg\"")
                && preamble.ends_with("\r\n\r\n")
        );
        assert_eq!(epilogue, format!("\r\n--{boundary}--\r\n"));
        assert!(form("x", false).2.contains("filename=\"x.img\""));
        let put = framing(&Options { compressed: true, level: 1, form_name: None });
        assert_eq!(put, ("PUT", "application/octet-stream".into(), "".into(), "".into()));
    }

    #[test]
    fn open_errors_say_what_and_where() {
        let err = open("/nonexistent/disk").err().unwrap();
        assert!(err.starts_with("opening /nonexistent/disk for capture: No such file"), "{err}");
        let err = open("/dev/null").err().unwrap();
        assert_eq!(err, "/dev/null is neither a block device nor a regular file");
    }
}
