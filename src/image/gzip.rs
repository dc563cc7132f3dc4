//! gzip (RFC 1952) framing of our own around miniz_oxide's raw inflate.
//!
//! [`Decoder`] runs a whole stream through a caller's output ring: members one after
//! another, each one's header checked (method, reserved flags, FHCRC) and its CRC-32 and
//! ISIZE checked at its trailer; a stream cut short, corrupt deflate data and bytes after
//! the last member are errors, never a silently short image.

use super::crc32::{checksum, Crc32};
use alloc::boxed::Box;
use core::fmt;
use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

/// The two bytes every gzip member starts with.
pub const MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The member header a capture writes: deflate, no flags, no time (a capture is not a
/// file), OS "Unix".
pub const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xE0;

/// Headers longer than this (huge FEXTRA, FNAME or FCOMMENT fields) are refused, so that
/// a header always fits in the caller's input buffer.
const MAX_HEADER: usize = 64 * 1024;
const CORRUPT: &str = "invalid deflate data: the image is corrupt";

/// Why a gzip stream was refused: what is wrong at byte `at` (offsets count compressed
/// bytes from the stream's start): invalid deflate data, a member header that breaks
/// RFC 1952, a trailer that disagrees with its member's data, bytes after the last member
/// that are not another member, or [`TRUNCATED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GzipError {
    pub at: u64,
    pub what: &'static str,
}

/// The stream ended inside a member (header, deflate data or trailer).
pub const TRUNCATED: &str = "the stream ends early: the image is incomplete";

/// One line: where in the stream, then what is wrong.
impl fmt::Display for GzipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gzip stream at byte {}: {}", self.at, self.what)
    }
}

/// The length of the member header at the start of `data` (at byte `at` of the stream,
/// its magic already seen); `None` when `data` ends before the header does.
fn header_len(data: &[u8], at: u64) -> Result<Option<usize>, GzipError> {
    let Some(&[_, _, method, flags, ..]) = data.get(..10) else { return Ok(None) };
    let refuse = |what| Err(GzipError { at, what });
    if method != 8 {
        return refuse("a member header names a compression method other than deflate (8)");
    }
    if flags & FRESERVED != 0 {
        return refuse("a member header sets reserved flags");
    }
    let mut len = 10;
    // The optional fields, in their order: FEXTRA (a length, then as many bytes), FNAME
    // and FCOMMENT (zero-terminated), FHCRC (the CRC-16 of all before it).
    for flag in [FEXTRA, FNAME, FCOMMENT, FHCRC].into_iter().filter(|f| flags & f != 0) {
        let (before, rest) = data.split_at_checked(len).unwrap_or_default();
        let field = match (flag, rest) {
            (FEXTRA, [a, b, ..]) => Some(2 + u16::from_le_bytes([*a, *b]) as usize),
            (FHCRC, [a, b, ..]) if u16::from_le_bytes([*a, *b]) != checksum(before) as u16 => {
                return refuse("a member header's CRC does not match it");
            }
            (FHCRC, [_, _, ..]) => Some(2),
            (FNAME | FCOMMENT, _) => rest.iter().position(|&b| b == 0).map(|end| end + 1),
            _ => None,
        };
        let Some(field) = field else { return Ok(None) };
        len += field;
    }
    Ok((len <= data.len()).then_some(len))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// A member's header, or (after the first) the end of the stream.
    #[default]
    Header,
    Body,
    Trailer,
    Finished,
}

/// What one [`Decoder::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Input bytes used up; the caller drops them before the next step.
    pub consumed: usize,
    /// Bytes inflated into the ring at the position the caller gave.
    pub produced: usize,
}

/// Inflates a (multi-member) gzip stream into a power-of-two output ring ([`Decoder::new`])
/// or into a buffer the caller rewinds ([`Decoder::linear`]).
///
/// The output is also the inflater's 32 KiB history, so the caller may only reuse bytes
/// that lie more than 32 KiB behind the write position (a ring of a MiB or more, written
/// out whole before it wraps, satisfies this; a rewinding caller copies the last 32 KiB
/// to the start first).
#[derive(Default)]
pub struct Decoder {
    state: State,
    inflate: Box<DecompressorOxide>,
    crc: Crc32,
    member_len: u64,
    members: u32,
    /// Compressed bytes consumed so far, for error messages.
    offset: u64,
    /// The output is a buffer whose history lies below `pos`, never a wrapping ring.
    linear: bool,
    /// The caller checksums the output and gives each member's CRC-32 (set_member_crc);
    /// `crc_given` says it did for this member.
    caller_crc: bool,
    crc_given: bool,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// A decoder for a buffer that the caller rewinds instead of wrapping (the write
    /// path), even when the free part handed over is a power of two long: miniz's
    /// non-wrapping mode copies matches whole, where a ring's mask copies byte by byte.
    /// With `caller_crc`, the caller checksums what the decoder inflates (on other threads:
    /// the write path) and gives each member's CRC-32 when [`Decoder::wants_crc`] asks.
    pub fn linear(caller_crc: bool) -> Decoder {
        Decoder { linear: true, caller_crc, ..Decoder::default() }
    }

    /// Whether a member's data has ended and the caller, checksumming for the decoder,
    /// is yet to give its CRC-32 (before the next step: the trailer is checked against it).
    pub fn wants_crc(&self) -> bool {
        self.caller_crc && self.state == State::Trailer && !self.crc_given
    }

    /// The CRC-32 of the member whose data has ended, as the caller computed it.
    pub fn set_member_crc(&mut self, crc: u32) {
        self.crc.set(crc);
        self.crc_given = true;
    }

    /// Whether the stream ended cleanly after its last member.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Members completed and checked so far.
    pub fn members(&self) -> u32 {
        self.members
    }

    /// Advances the stream as far as `input` allows, inflating into `ring[pos..]`. `eof`
    /// says `input` is all there is. A step that consumes and produces nothing needs more
    /// input (or, with `pos == ring.len()`, room in the ring); with `eof` that cannot
    /// happen: the stream is either finished or an error.
    //
    // Not inlined (step and body): LTO inlined them into the write loop, which grew the
    // init by ~1 KB; each call handles a whole input buffer or ring slice.
    #[inline(never)]
    pub fn step(
        &mut self,
        input: &[u8],
        eof: bool,
        ring: &mut [u8],
        pos: usize,
    ) -> Result<Step, GzipError> {
        loop {
            let before = self.state;
            let (consumed, produced) = match self.state {
                State::Header => (self.header(input, eof)?, 0),
                State::Body => self.body(input, eof, ring, pos)?,
                State::Trailer => (self.trailer(input)?, 0),
                State::Finished => (0, 0),
            };
            let idle = consumed + produced == 0;
            if idle && self.state == before && eof && !self.is_finished() {
                return Err(GzipError { at: self.offset + input.len() as u64, what: TRUNCATED });
            }
            self.offset += consumed as u64;
            // A bare change of state (a member's deflate data ended) is no progress for
            // the caller: carry on, so that "nothing done" always means "need input".
            if !idle || self.state == before || self.is_finished() {
                return Ok(Step { consumed, produced });
            }
        }
    }

    fn invalid(&self, what: &'static str) -> GzipError {
        GzipError { at: self.offset, what }
    }

    /// Parses a member's header; after a member, also sees the stream's end.
    fn header(&mut self, input: &[u8], eof: bool) -> Result<usize, GzipError> {
        let later = self.members > 0;
        if later && eof && input.is_empty() {
            self.state = State::Finished;
            return Ok(0);
        }
        // A member's magic, or as much of it as there is so far.
        if !MAGIC.starts_with(input.get(..2).unwrap_or(input)) || later && eof && input.len() < 2 {
            return Err(self.invalid("trailing garbage (not another gzip member)"));
        }
        let Some(len) = header_len(input, self.offset)? else {
            if input.len() >= MAX_HEADER && !eof {
                return Err(self.invalid("a member header longer than 64 KiB"));
            }
            return Ok(0);
        };
        self.inflate.init();
        self.crc.reset();
        self.crc_given = false;
        self.member_len = 0;
        self.state = State::Body;
        Ok(len)
    }

    #[inline(never)] // see step
    fn body(
        &mut self,
        input: &[u8],
        eof: bool,
        ring: &mut [u8],
        pos: usize,
    ) -> Result<(usize, usize), GzipError> {
        // Without HAS_MORE_INPUT the inflater would take the end of `input` for the end of
        // the stream; with it, running dry is "needs more input", which we turn into
        // "truncated" ourselves once the source has ended.
        let mut flags = if eof { 0 } else { inflate_flags::TINFL_FLAG_HAS_MORE_INPUT };
        if self.linear {
            flags |= inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
        }
        let (status, consumed, produced) = decompress(&mut self.inflate, input, ring, pos, flags);
        if !self.caller_crc {
            self.crc.update(ring.get(pos..pos + produced).unwrap_or_default());
        }
        self.member_len += produced as u64;
        let at = self.offset + consumed as u64;
        match status {
            TINFLStatus::Done => self.state = State::Trailer,
            TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress if eof => {
                return Err(GzipError { at, what: TRUNCATED })
            }
            TINFLStatus::HasMoreOutput | TINFLStatus::NeedsMoreInput => {}
            _ => return Err(GzipError { at, what: CORRUPT }),
        }
        Ok((consumed, produced))
    }

    /// Checks a member's trailer: CRC-32 and ISIZE, little-endian.
    fn trailer(&mut self, input: &[u8]) -> Result<usize, GzipError> {
        let Some(trailer) = input.first_chunk::<8>().map(|t| u64::from_le_bytes(*t)) else {
            return Ok(0);
        };
        if trailer as u32 != self.crc.value() {
            return Err(self.invalid("the trailer says another CRC-32 than the member's data"));
        }
        if (trailer >> 32) as u32 != self.member_len as u32 {
            return Err(self.invalid("the trailer says another length (ISIZE) than the data's"));
        }
        self.members += 1;
        self.state = State::Header;
        Ok(8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use miniz_oxide::deflate::compress_to_vec;

    /// A member header with the given optional fields (and its CRC-16 if `hcrc`).
    fn header(
        extra: Option<&[u8]>,
        name: Option<&[u8]>,
        comment: Option<&[u8]>,
        hcrc: bool,
    ) -> Vec<u8> {
        let flags = (hcrc as u8 * FHCRC)
            | (extra.is_some() as u8 * FEXTRA)
            | (name.is_some() as u8 * FNAME)
            | (comment.is_some() as u8 * FCOMMENT)
            | 1; // FTEXT, ignored
        let mut out = std::vec![0x1f, 0x8b, 8, flags, 0x78, 0x56, 0x34, 0x12, 2, 3];
        if let Some(extra) = extra {
            out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            out.extend_from_slice(extra);
        }
        for field in [name, comment].into_iter().flatten() {
            out.extend_from_slice(field);
            out.push(0);
        }
        if hcrc {
            let crc = checksum(&out) as u16;
            out.extend_from_slice(&crc.to_le_bytes());
        }
        out
    }

    /// A gzip member of `data` after the header `h`.
    fn member(h: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = h.to_vec();
        out.extend_from_slice(&compress_to_vec(data, 6));
        out.extend_from_slice(&checksum(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    /// Runs `stream` through a decoder, `chunk` input bytes at a time, into a small ring.
    fn inflate(stream: &[u8], chunk: usize) -> Result<Vec<u8>, GzipError> {
        let mut d = Decoder::new();
        let mut ring = std::vec![0u8; 1 << 16];
        let (mut pos, mut out) = (0, Vec::new());
        let (mut start, mut end) = (0, 0);
        loop {
            let eof = end == stream.len();
            let step = d.step(&stream[start..end], eof, &mut ring, pos)?;
            out.extend_from_slice(&ring[pos..pos + step.produced]);
            pos = (pos + step.produced) % ring.len();
            start += step.consumed;
            if d.is_finished() {
                return Ok(out);
            }
            if step.consumed == 0 && step.produced == 0 {
                assert!(!eof, "a stalled step at the end of input must be an error or the finish");
                end = (end + chunk).min(stream.len());
            }
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| if i % 5000 < 3000 { 0 } else { (i * 13 % 255) as u8 }).collect()
    }

    #[test]
    fn headers_with_every_optional_field_are_skipped() {
        let h = header(Some(b"AB\x02\x00xy"), Some(b"disk.img"), Some(b"an OS image"), true);
        assert_eq!(header_len(&h, 0), Ok(Some(h.len())));
        for cut in 0..h.len() {
            assert_eq!(header_len(&h[..cut], 0), Ok(None), "cut {cut}");
        }
        let input = data(100_000);
        for chunk in [1, 7, 4096] {
            assert_eq!(inflate(&member(&h, &input), chunk).unwrap(), input, "chunk {chunk}");
        }
        assert_eq!(HEADER.len(), header_len(&HEADER, 0).unwrap().unwrap());
        assert_eq!(inflate(&member(&HEADER, b"abc"), 3).unwrap(), b"abc");
    }

    #[test]
    fn bad_headers_are_refused() {
        let h = header(None, Some(b"x"), None, true);
        let refused = |h: &[u8]| match header_len(h, 0) {
            Err(GzipError { at: 0, what }) => what,
            other => panic!("{other:?}"),
        };
        let mut bad_crc = h.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert!(refused(&bad_crc).contains("CRC"));
        let mut reserved = h.clone();
        reserved[3] |= 0x20;
        assert!(refused(&reserved).contains("reserved"));
        let mut method = h.clone();
        method[2] = 7;
        assert!(refused(&method).contains("method"));
        assert!(
            matches!(inflate(&reserved, 64), Err(GzipError { at: 0, what }) if what != TRUNCATED)
        );
        let err = inflate(b"PK\x03\x04......", 64).unwrap_err();
        assert!(std::format!("{err}").contains("trailing garbage"), "{err}");
        let long = header(None, Some(&std::vec![b'n'; MAX_HEADER]), None, false);
        let err = inflate(&member(&long, b"x"), MAX_HEADER).unwrap_err();
        assert_eq!(err, GzipError { at: 0, what: "a member header longer than 64 KiB" });
    }

    #[test]
    fn multi_member_streams_concatenate() {
        let (a, b) = (data(70_000), data(123));
        let mut stream = member(&HEADER, &a);
        stream.extend(member(&header(None, Some(b"b"), None, false), &b));
        stream.extend(member(&HEADER, b""));
        let mut want = a.clone();
        want.extend_from_slice(&b);
        assert_eq!(inflate(&stream, 1000).unwrap(), want);
        assert_eq!(inflate(&stream, 3).unwrap(), want);
        assert_eq!(inflate(&stream, stream.len()).unwrap(), want);
        // Members that fill the ring exactly: the end of the deflate data may come in a
        // step of its own, which must go on to the trailer.
        let exact = data(1 << 16);
        let mut stream = member(&HEADER, &exact);
        stream.extend(member(&HEADER, &exact));
        for chunk in [1, 100, stream.len()] {
            assert_eq!(inflate(&stream, chunk).unwrap(), [&exact[..], &exact[..]].concat());
        }
    }

    #[test]
    fn trailer_checks_catch_wrong_crc_and_size() {
        let input = data(50_000);
        let good = member(&HEADER, &input);
        let n = good.len();
        let mut crc = good.clone();
        crc[n - 8] ^= 0xFF;
        let at = n as u64 - 8;
        let what = "the trailer says another CRC-32 than the member's data";
        assert_eq!(inflate(&crc, 999), Err(GzipError { at, what }));
        let mut size = good.clone();
        size[n - 1] ^= 0x01;
        let what = "the trailer says another length (ISIZE) than the data's";
        assert_eq!(inflate(&size, 999), Err(GzipError { at, what }));
        // In a later member, the offset is that member's trailer's.
        let mut two = good.clone();
        two.extend_from_slice(&size);
        assert_eq!(inflate(&two, 999), Err(GzipError { at: at + n as u64, what }));
    }

    #[test]
    fn truncation_anywhere_is_an_error() {
        let good = member(&header(None, Some(b"n"), None, false), &data(30_000));
        for cut in [1, 5, 11, good.len() / 2, good.len() - 9, good.len() - 8, good.len() - 1] {
            let err = inflate(&good[..cut], 100).unwrap_err();
            assert_eq!(err.what, TRUNCATED, "cut {cut}: {err:?}");
        }
        assert_eq!(inflate(b"", 100), Err(GzipError { at: 0, what: TRUNCATED }));
        assert_eq!(
            inflate(&good[..good.len() - 3], 100),
            Err(GzipError { at: good.len() as u64 - 3, what: TRUNCATED })
        );
    }

    #[test]
    fn trailing_bytes_and_corrupt_data_are_errors() {
        let good = member(&HEADER, &data(10_000));
        for tail in [&b"\0"[..], b"\0\0\0\0", b"garbage", b"\x1f"] {
            let mut s = good.clone();
            s.extend_from_slice(tail);
            let err = inflate(&s, 64).unwrap_err();
            let what = "trailing garbage (not another gzip member)";
            assert_eq!(err, GzipError { at: good.len() as u64, what }, "{tail:?}");
        }
        let mut corrupt = good.clone();
        corrupt[10] = 0xFF; // first deflate block header: reserved block type 3
        let err = inflate(&corrupt, 64).unwrap_err();
        assert!(matches!(err, GzipError { what, .. } if what.contains("deflate")), "{err:?}");
    }

    #[test]
    fn errors_display_as_one_line() {
        let shown = |e: GzipError| std::format!("{e}");
        assert_eq!(
            shown(GzipError { at: 5, what: TRUNCATED }),
            "gzip stream at byte 5: the stream ends early: the image is incomplete"
        );
        assert_eq!(
            shown(GzipError { at: 9, what: "a member header sets reserved flags" }),
            "gzip stream at byte 9: a member header sets reserved flags"
        );
    }
}
