//! gzip (RFC 1952) framing of our own around miniz_oxide's raw inflate.
//!
//! [`HeaderRepr`] and [`TrailerRepr`] parse and emit a member's header and trailer, in the
//! manner of smoltcp's wire modules. [`Decoder`] runs a whole stream through a caller's
//! output ring: members one after another, each one's CRC-32 and ISIZE checked at its
//! trailer; a stream cut short, corrupt deflate data and bytes after the last member are
//! errors, never a silently short image.

use super::crc32::{self, Crc32};
use alloc::boxed::Box;
use core::fmt;
use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

/// The two bytes every gzip member starts with.
pub const MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Compression method 8: deflate, the only one RFC 1952 defines.
const METHOD_DEFLATE: u8 = 8;

const FTEXT: u8 = 0x01;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xE0;

/// Headers longer than this (huge FEXTRA, FNAME or FCOMMENT fields) are refused, so that
/// a header always fits in the input buffer.
pub const MAX_HEADER: usize = 64 * 1024;

/// Why a gzip stream was refused. Offsets count compressed bytes from the stream's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GzipError {
    /// The stream ended inside a member (header, deflate data or trailer).
    Truncated { at: u64 },
    /// A member header names a compression method other than deflate.
    Method { at: u64, method: u8 },
    /// A member header sets flag bits RFC 1952 reserves.
    ReservedFlags { at: u64, flags: u8 },
    /// The header's own CRC-16 (FHCRC) does not match.
    HeaderCrc { at: u64, expected: u16, actual: u16 },
    /// A header's optional fields are longer than [`MAX_HEADER`].
    HeaderTooLong { at: u64 },
    /// The deflate data is invalid.
    Corrupt { at: u64 },
    /// A member's CRC-32 does not match its data.
    CrcMismatch { member: u32, expected: u32, actual: u32 },
    /// A member's ISIZE (length mod 2^32) does not match its data.
    SizeMismatch { member: u32, expected: u32, actual: u32 },
    /// Bytes after the last member that are not another member.
    TrailingGarbage { at: u64 },
}

/// One line: where in the stream (a byte offset or a member), then what is wrong. The
/// messages share their frame and their "X is A, the trailer says B" form: each
/// formatting call site costs code in the init.
impl fmt::Display for GzipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GzipError::*;
        let (place, n) = match *self {
            Truncated { at } | Corrupt { at } | TrailingGarbage { at } => ("stream at byte", at),
            Method { at, .. }
            | ReservedFlags { at, .. }
            | HeaderCrc { at, .. }
            | HeaderTooLong { at } => ("member at byte", at),
            CrcMismatch { member, .. } | SizeMismatch { member, .. } => ("member", member as u64),
        };
        write!(f, "gzip {place} {n}: ")?;
        let (what, actual, versus, expected, hex) = match *self {
            Truncated { .. } => {
                return f.write_str("the stream ends early: the image is incomplete")
            }
            Corrupt { .. } => return f.write_str("invalid deflate data: the image is corrupt"),
            TrailingGarbage { .. } => {
                return f.write_str("trailing garbage (not another gzip member)")
            }
            HeaderTooLong { .. } => return f.write_str("header longer than 64 KiB"),
            Method { method, .. } => ("compression method", method as u32, "deflate is", 8, false),
            ReservedFlags { flags, .. } => {
                ("reserved header flags", flags as u32, "RFC 1952 wants", 0, true)
            }
            HeaderCrc { expected, actual, .. } => {
                ("header CRC", actual as u32, "the header says", expected as u32, true)
            }
            CrcMismatch { expected, actual, .. } => {
                ("CRC-32 of the data", actual, "the trailer says", expected, true)
            }
            SizeMismatch { expected, actual, .. } => {
                ("inflated length (mod 2^32)", actual, "the trailer says", expected, false)
            }
        };
        match hex {
            true => write!(f, "{what}: {actual:#x}, {versus} {expected:#x}"),
            false => write!(f, "{what}: {actual}, {versus} {expected}"),
        }
    }
}

/// Why a header could not be parsed from a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// The slice ends before the header does: read more and parse again.
    Truncated,
    NotGzip,
    Method(u8),
    ReservedFlags(u8),
    HeaderCrc {
        expected: u16,
        actual: u16,
    },
}

/// A gzip member header (RFC 1952 section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderRepr<'a> {
    pub text: bool,
    pub mtime: u32,
    pub extra_flags: u8,
    pub os: u8,
    pub extra: Option<&'a [u8]>,
    /// Without the terminating NUL.
    pub name: Option<&'a [u8]>,
    /// Without the terminating NUL.
    pub comment: Option<&'a [u8]>,
    /// Whether the header carries (and was checked against) its CRC-16.
    pub header_crc: bool,
}

impl<'a> HeaderRepr<'a> {
    /// Parses a header from the start of `data`; returns it and its length.
    pub fn parse(data: &'a [u8]) -> Result<(HeaderRepr<'a>, usize), HeaderError> {
        let fixed = data.get(..10).ok_or(if data.len() >= 2 && data[..2] != MAGIC {
            HeaderError::NotGzip
        } else {
            HeaderError::Truncated
        })?;
        if fixed[..2] != MAGIC {
            return Err(HeaderError::NotGzip);
        }
        if fixed[2] != METHOD_DEFLATE {
            return Err(HeaderError::Method(fixed[2]));
        }
        let flags = fixed[3];
        if flags & FRESERVED != 0 {
            return Err(HeaderError::ReservedFlags(flags & FRESERVED));
        }
        let mut repr = HeaderRepr {
            text: flags & FTEXT != 0,
            mtime: u32::from_le_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            extra_flags: fixed[8],
            os: fixed[9],
            header_crc: flags & FHCRC != 0,
            ..HeaderRepr::default()
        };
        let mut at = 10;
        if flags & FEXTRA != 0 {
            let len = data.get(at..at + 2).ok_or(HeaderError::Truncated)?;
            let len = u16::from_le_bytes([len[0], len[1]]) as usize;
            repr.extra = Some(data.get(at + 2..at + 2 + len).ok_or(HeaderError::Truncated)?);
            at += 2 + len;
        }
        if flags & FNAME != 0 {
            let (field, next) = zero_terminated(data, at)?;
            repr.name = Some(field);
            at = next;
        }
        if flags & FCOMMENT != 0 {
            let (field, next) = zero_terminated(data, at)?;
            repr.comment = Some(field);
            at = next;
        }
        if flags & FHCRC != 0 {
            let stored = data.get(at..at + 2).ok_or(HeaderError::Truncated)?;
            let expected = u16::from_le_bytes([stored[0], stored[1]]);
            let actual = crc32::checksum(&data[..at]) as u16;
            if expected != actual {
                return Err(HeaderError::HeaderCrc { expected, actual });
            }
            at += 2;
        }
        Ok((repr, at))
    }

    /// Appends the header to `out` (with its CRC-16 when `header_crc` is set).
    pub fn emit(&self, out: &mut alloc::vec::Vec<u8>) {
        let start = out.len();
        let flags = (self.text as u8 * FTEXT)
            | (self.header_crc as u8 * FHCRC)
            | (self.extra.is_some() as u8 * FEXTRA)
            | (self.name.is_some() as u8 * FNAME)
            | (self.comment.is_some() as u8 * FCOMMENT);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[METHOD_DEFLATE, flags]);
        out.extend_from_slice(&self.mtime.to_le_bytes());
        out.extend_from_slice(&[self.extra_flags, self.os]);
        if let Some(extra) = self.extra {
            out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            out.extend_from_slice(extra);
        }
        for field in [self.name, self.comment].into_iter().flatten() {
            out.extend_from_slice(field);
            out.push(0);
        }
        if self.header_crc {
            let crc = crc32::checksum(&out[start..]) as u16;
            out.extend_from_slice(&crc.to_le_bytes());
        }
    }
}

fn zero_terminated(data: &[u8], at: usize) -> Result<(&[u8], usize), HeaderError> {
    let rest = data.get(at..).ok_or(HeaderError::Truncated)?;
    let end = rest.iter().position(|&b| b == 0).ok_or(HeaderError::Truncated)?;
    Ok((&rest[..end], at + end + 1))
}

/// A member trailer: CRC-32 and ISIZE (the data's length modulo 2^32), little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailerRepr {
    pub crc: u32,
    pub size: u32,
}

impl TrailerRepr {
    pub const LEN: usize = 8;

    /// Parses a trailer; `None` when `data` is shorter than 8 bytes.
    pub fn parse(data: &[u8]) -> Option<TrailerRepr> {
        let t = data.get(..Self::LEN)?;
        Some(TrailerRepr {
            crc: u32::from_le_bytes([t[0], t[1], t[2], t[3]]),
            size: u32::from_le_bytes([t[4], t[5], t[6], t[7]]),
        })
    }

    pub fn emit(&self, out: &mut [u8; 8]) {
        out[..4].copy_from_slice(&self.crc.to_le_bytes());
        out[4..].copy_from_slice(&self.size.to_le_bytes());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Body,
    Trailer,
    /// After a trailer: either the end of the stream or another member.
    Between,
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

/// Inflates a (multi-member) gzip stream into a power-of-two output ring.
///
/// The ring is also the inflater's 32 KiB history, so the caller may only reuse ring bytes
/// that lie more than 32 KiB behind the write position (a ring of a MiB or more, written
/// out whole before it wraps, satisfies this).
pub struct Decoder {
    state: State,
    inflate: Box<DecompressorOxide>,
    crc: Crc32,
    member_len: u64,
    members: u32,
    /// Compressed bytes consumed so far, for error messages.
    offset: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            state: State::Header,
            inflate: Box::default(),
            crc: Crc32::new(),
            member_len: 0,
            members: 0,
            offset: 0,
        }
    }

    /// Whether the stream ended cleanly after its last member.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Members completed and checked so far.
    pub fn members(&self) -> u32 {
        self.members
    }

    /// Compressed bytes consumed so far.
    pub fn consumed(&self) -> u64 {
        self.offset
    }

    /// Advances the stream as far as `input` allows, inflating into `ring[pos..]`. `eof`
    /// says `input` is all there is. A step that consumes and produces nothing needs more
    /// input (or, with `pos == ring.len()`, room in the ring); with `eof` that cannot
    /// happen: the stream is either finished or an error.
    //
    // Not inlined (step and the states): LTO inlined them into the write loop, which
    // grew the init by ~1 KB; each call handles a whole input buffer or ring slice.
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
            let step = match self.state {
                State::Header => self.header(input, eof)?,
                State::Body => self.body(input, eof, ring, pos)?,
                State::Trailer => self.trailer(input, eof)?,
                State::Between => self.between(input, eof)?,
                State::Finished => Step { consumed: 0, produced: 0 },
            };
            self.offset += step.consumed as u64;
            // A bare change of state (a member's end seen, another's magic) is no progress
            // for the caller: carry on, so that "nothing done" always means "need input".
            if step.consumed != 0
                || step.produced != 0
                || self.state == before
                || self.is_finished()
            {
                return Ok(step);
            }
        }
    }

    #[inline(never)] // see step
    fn header(&mut self, input: &[u8], eof: bool) -> Result<Step, GzipError> {
        let at = self.offset;
        match HeaderRepr::parse(input) {
            Ok((_, len)) => {
                self.inflate.init();
                self.crc.reset();
                self.member_len = 0;
                self.state = State::Body;
                Ok(Step { consumed: len, produced: 0 })
            }
            Err(HeaderError::Truncated) if eof => {
                Err(GzipError::Truncated { at: at + input.len() as u64 })
            }
            Err(HeaderError::Truncated) if input.len() >= MAX_HEADER => {
                Err(GzipError::HeaderTooLong { at })
            }
            Err(HeaderError::Truncated) => Ok(Step { consumed: 0, produced: 0 }),
            // Only reachable for the first member: `between` checked the magic of later ones.
            Err(HeaderError::NotGzip) => Err(GzipError::TrailingGarbage { at }),
            Err(HeaderError::Method(method)) => Err(GzipError::Method { at, method }),
            Err(HeaderError::ReservedFlags(flags)) => Err(GzipError::ReservedFlags { at, flags }),
            Err(HeaderError::HeaderCrc { expected, actual }) => {
                Err(GzipError::HeaderCrc { at, expected, actual })
            }
        }
    }

    #[inline(never)] // see step
    fn body(
        &mut self,
        input: &[u8],
        eof: bool,
        ring: &mut [u8],
        pos: usize,
    ) -> Result<Step, GzipError> {
        // Without HAS_MORE_INPUT the inflater would take the end of `input` for the end of
        // the stream; with it, running dry is "needs more input", which we turn into
        // "truncated" ourselves once the source has ended.
        let mut flags = if eof { 0 } else { inflate_flags::TINFL_FLAG_HAS_MORE_INPUT };
        // A ring that is not a power of two long is a buffer, its history below `pos`.
        if !ring.len().is_power_of_two() {
            flags |= inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
        }
        let (status, consumed, produced) = decompress(&mut self.inflate, input, ring, pos, flags);
        self.crc.update(&ring[pos..pos + produced]);
        self.member_len += produced as u64;
        match status {
            TINFLStatus::Done => self.state = State::Trailer,
            TINFLStatus::HasMoreOutput => {}
            TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress if eof => {
                return Err(GzipError::Truncated { at: self.offset + consumed as u64 })
            }
            TINFLStatus::NeedsMoreInput => {}
            _ => return Err(GzipError::Corrupt { at: self.offset + consumed as u64 }),
        }
        Ok(Step { consumed, produced })
    }

    #[inline(never)] // see step
    fn trailer(&mut self, input: &[u8], eof: bool) -> Result<Step, GzipError> {
        let Some(trailer) = TrailerRepr::parse(input) else {
            return match eof {
                true => Err(GzipError::Truncated { at: self.offset + input.len() as u64 }),
                false => Ok(Step { consumed: 0, produced: 0 }),
            };
        };
        self.members += 1;
        let member = self.members;
        if trailer.crc != self.crc.value() {
            return Err(GzipError::CrcMismatch {
                member,
                expected: trailer.crc,
                actual: self.crc.value(),
            });
        }
        if trailer.size != self.member_len as u32 {
            return Err(GzipError::SizeMismatch {
                member,
                expected: trailer.size,
                actual: self.member_len as u32,
            });
        }
        self.state = State::Between;
        Ok(Step { consumed: TrailerRepr::LEN, produced: 0 })
    }

    fn between(&mut self, input: &[u8], eof: bool) -> Result<Step, GzipError> {
        let at = self.offset;
        match input {
            [] if eof => self.state = State::Finished,
            [a, b, ..] if [*a, *b] == MAGIC => self.state = State::Header,
            [a] if !eof && *a == MAGIC[0] => {}
            [] => {}
            _ => return Err(GzipError::TrailingGarbage { at }),
        }
        Ok(Step { consumed: 0, produced: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use miniz_oxide::deflate::compress_to_vec;

    /// A gzip member of `data`, with the header `h`.
    fn member(h: &HeaderRepr<'_>, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        h.emit(&mut out);
        out.extend_from_slice(&compress_to_vec(data, 6));
        let mut t = [0u8; 8];
        TrailerRepr { crc: crc32::checksum(data), size: data.len() as u32 }.emit(&mut t);
        out.extend_from_slice(&t);
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
    fn headers_with_every_optional_field_round_trip() {
        let h = HeaderRepr {
            text: true,
            mtime: 0x1234_5678,
            extra_flags: 2,
            os: 3,
            extra: Some(b"AB\x02\x00xy"),
            name: Some(b"disk.img"),
            comment: Some(b"an OS image"),
            header_crc: true,
        };
        let mut bytes = Vec::new();
        h.emit(&mut bytes);
        assert_eq!(HeaderRepr::parse(&bytes), Ok((h, bytes.len())));
        for cut in 0..bytes.len() {
            assert_eq!(
                HeaderRepr::parse(&bytes[..cut]).unwrap_err(),
                HeaderError::Truncated,
                "cut {cut}"
            );
        }
        let input = data(100_000);
        for chunk in [1, 7, 4096] {
            assert_eq!(inflate(&member(&h, &input), chunk).unwrap(), input, "chunk {chunk}");
        }
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut bytes = Vec::new();
        HeaderRepr { name: Some(b"x"), header_crc: true, ..HeaderRepr::default() }.emit(&mut bytes);
        let mut bad_crc = bytes.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert!(matches!(HeaderRepr::parse(&bad_crc), Err(HeaderError::HeaderCrc { .. })));
        let mut reserved = bytes.clone();
        reserved[3] |= 0x20;
        assert_eq!(HeaderRepr::parse(&reserved), Err(HeaderError::ReservedFlags(0x20)));
        let mut method = bytes.clone();
        method[2] = 7;
        assert_eq!(HeaderRepr::parse(&method), Err(HeaderError::Method(7)));
        assert_eq!(HeaderRepr::parse(b"PK\x03\x04......"), Err(HeaderError::NotGzip));
        assert!(matches!(
            inflate(&reserved, 64),
            Err(GzipError::ReservedFlags { at: 0, flags: 0x20 })
        ));
    }

    #[test]
    fn multi_member_streams_concatenate() {
        let (a, b) = (data(70_000), data(123));
        let mut stream = member(&HeaderRepr::default(), &a);
        stream.extend(member(&HeaderRepr { name: Some(b"b"), ..HeaderRepr::default() }, &b));
        stream.extend(member(&HeaderRepr::default(), b""));
        let mut want = a.clone();
        want.extend_from_slice(&b);
        assert_eq!(inflate(&stream, 1000).unwrap(), want);
        assert_eq!(inflate(&stream, 3).unwrap(), want);
    }

    #[test]
    fn trailer_checks_catch_wrong_crc_and_size() {
        let input = data(50_000);
        let good = member(&HeaderRepr::default(), &input);
        let n = good.len();
        let mut crc = good.clone();
        crc[n - 8] ^= 0xFF;
        assert!(matches!(inflate(&crc, 999), Err(GzipError::CrcMismatch { member: 1, .. })));
        let mut size = good.clone();
        size[n - 1] ^= 0x01;
        assert!(matches!(inflate(&size, 999), Err(GzipError::SizeMismatch { member: 1, .. })));
    }

    #[test]
    fn truncation_anywhere_is_an_error() {
        let good = member(&HeaderRepr { name: Some(b"n"), ..HeaderRepr::default() }, &data(30_000));
        for cut in [1, 5, 11, good.len() / 2, good.len() - 9, good.len() - 8, good.len() - 1] {
            let err = inflate(&good[..cut], 100).unwrap_err();
            assert!(matches!(err, GzipError::Truncated { .. }), "cut {cut}: {err:?}");
        }
        assert!(matches!(inflate(b"", 100), Err(GzipError::Truncated { at: 0 })));
    }

    #[test]
    fn trailing_bytes_and_corrupt_data_are_errors() {
        let good = member(&HeaderRepr::default(), &data(10_000));
        for tail in [&b"\0"[..], b"\0\0\0\0", b"garbage", b"\x1f"] {
            let mut s = good.clone();
            s.extend_from_slice(tail);
            let err = inflate(&s, 64).unwrap_err();
            assert_eq!(err, GzipError::TrailingGarbage { at: good.len() as u64 }, "{tail:?}");
        }
        let mut corrupt = good.clone();
        corrupt[10] = 0xFF; // first deflate block header: reserved block type 3
        assert!(matches!(inflate(&corrupt, 64), Err(GzipError::Corrupt { .. })));
    }

    #[test]
    fn errors_display_as_one_line() {
        let all = [
            GzipError::Truncated { at: 5 },
            GzipError::Method { at: 0, method: 7 },
            GzipError::ReservedFlags { at: 0, flags: 0x20 },
            GzipError::HeaderCrc { at: 0, expected: 1, actual: 2 },
            GzipError::HeaderTooLong { at: 0 },
            GzipError::Corrupt { at: 9 },
            GzipError::CrcMismatch { member: 1, expected: 1, actual: 2 },
            GzipError::SizeMismatch { member: 2, expected: 1, actual: 2 },
            GzipError::TrailingGarbage { at: 99 },
        ];
        for e in all {
            let text = std::format!("{e}");
            assert!(text.starts_with("gzip") && !text.contains('\n'), "{text}");
        }
    }
}
