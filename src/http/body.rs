//! The chunked transfer coding (RFC 9112 section 7.1), decoded as a state machine over
//! the bytes *between* data: size lines (extensions tolerated), the CRLF after each
//! chunk, the last chunk and trailers (tolerated, skipped). Data bytes never pass through
//! here: the reader copies them straight to the caller and tells the decoder how many.

/// Longest chunk-size line (with extensions) and longest trailer section we accept.
pub const MAX_CHUNK_LINE: usize = 4096;
pub const MAX_TRAILERS: usize = 16 * 1024;

/// Why a chunked body is refused, said in one line.
pub type ChunkError = &'static str;
const BAD_SIZE: ChunkError = "bad chunk size in chunked body";
const NO_CRLF: ChunkError = "missing CRLF in chunked body";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum State {
    /// Hex digits of a size line.
    #[default]
    Size,
    /// After the digits: white space and `;ext=...` until CR.
    Extension,
    /// Data bytes of the current chunk to go (`size` of them).
    Data,
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines, until an empty one.
    Trailer,
    Done,
}

/// Decoder of chunked framing; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ChunkedDecoder {
    state: State,
    /// The chunk size being read, then its data bytes still to come.
    size: u64,
    /// Bytes of the current size line, or of all trailers, to enforce the caps.
    line: usize,
    /// A CR was seen: LF must follow, and ends the line.
    cr: bool,
    /// Whether the trailer line so far has bytes (an empty one ends the body).
    filled: bool,
}

impl ChunkedDecoder {
    /// Whether the last chunk and the trailers have been read: the body is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Data bytes of the current chunk still to come (0 when framing bytes are next).
    pub fn data_remaining(&self) -> u64 {
        (self.state == State::Data).then_some(self.size).unwrap_or(0)
    }

    /// Records that `n` (at most `data_remaining()`) data bytes went to the caller.
    pub fn consume_data(&mut self, n: usize) {
        self.size = self.size.saturating_sub(n as u64);
        if self.state == State::Data && self.size == 0 {
            self.state = State::DataEnd;
        }
    }

    /// Consumes framing bytes from the start of `input` until data is next, the body is
    /// done, or `input` runs out; returns how many bytes it used.
    pub fn step(&mut self, input: &[u8]) -> Result<usize, ChunkError> {
        for (used, &b) in input.iter().enumerate() {
            if matches!(self.state, State::Data | State::Done) {
                return Ok(used);
            }
            self.next(b)?;
        }
        Ok(input.len())
    }

    #[inline(never)]
    fn next(&mut self, b: u8) -> Result<(), ChunkError> {
        use State::*;
        if self.cr {
            // The end of a line: the size line's, the data's, or a trailer's.
            self.cr = false;
            if b != b'\n' {
                return Err(NO_CRLF);
            }
            (self.state, self.line) = match self.state {
                Size | Extension if self.size == 0 => (Trailer, 0),
                Size | Extension => (Data, 0),
                DataEnd => (Size, 0),
                _ if self.filled => (Trailer, self.line),
                _ => (Done, self.line),
            };
            self.filled = false;
            return Ok(());
        }
        self.line += 1;
        let (cap, too_long) = match self.state {
            Trailer => (MAX_TRAILERS, "trailers too long in chunked body"),
            _ => (MAX_CHUNK_LINE, "chunk size line too long in chunked body"),
        };
        if self.line > cap {
            return Err(too_long);
        }
        match (self.state, b) {
            // At least one digit before the rest of the line.
            (Size, b'\r') if self.line == 1 => return Err(BAD_SIZE),
            (_, b'\r') => self.cr = true,
            (Size, _) => match (b as char).to_digit(16) {
                // Another digit only while the size still fits in 64 bits.
                Some(d) if self.size >> 60 == 0 => self.size = self.size << 4 | u64::from(d),
                None if self.line > 1 && matches!(b, b';' | b' ' | b'\t') => self.state = Extension,
                _ => return Err(BAD_SIZE),
            },
            (Extension | Trailer, b'\n') | (DataEnd, _) => return Err(NO_CRLF),
            (Trailer, _) => self.filled = true,
            _ => {}
        }
        Ok(())
    }
}

/// Decodes a whole chunked body held in memory (tests; the fuzz target has its own copy):
/// the data, and how many input bytes the framing used up. `Ok(None)` if the input ends
/// before the body.
#[cfg(test)]
pub fn decode_all(
    mut input: &[u8],
    out: &mut alloc::vec::Vec<u8>,
) -> Result<Option<usize>, ChunkError> {
    let total = input.len();
    let mut decoder = ChunkedDecoder::default();
    loop {
        input = input.get(decoder.step(input)?..).unwrap_or_default();
        if decoder.is_done() {
            return Ok(Some(total - input.len()));
        }
        let take = (decoder.data_remaining().min(input.len() as u64)) as usize;
        if take == 0 {
            return Ok(None);
        }
        let (data, rest) = input.split_at(take);
        out.extend_from_slice(data);
        decoder.consume_data(take);
        input = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// nginx 1.22.1 (Debian 12) with `gzip on`, captured on loopback: the head, then the
    /// chunked body of `"hello imprint\n" * 50` gzipped (one chunk, the last chunk, no
    /// trailers).
    const NGINX_GZIP_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 15:20:27 GMT\r\n\
Content-Type: text/plain\r\nLast-Modified: Fri, 27 Nov 2026 15:20:26 GMT\r\nTransfer-Encoding: chunked\r\n\
Connection: close\r\nETag: W/\"6b099fba-2bc\"\r\nContent-Encoding: gzip\r\n\r\n";
    const NGINX_GZIP_BODY: &[u8] = b"2a\r\n\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\x03\xcbH\xcd\xc9\xc9W\xc8\xcc-(\xca\xcc+\xe1\xca\x18\xe5\x8d\x86\xc4\x90I\x05\x00\xe7^\x8dx\xbc\x02\x00\x00\r\n0\r\n\r\n";

    #[test]
    fn decodes_a_chunked_body_captured_from_nginx() {
        let (head, _) = crate::http::response::Head::parse(NGINX_GZIP_HEAD).unwrap().unwrap();
        assert_eq!(
            head.framing,
            crate::http::response::Framing::Chunked(ChunkedDecoder::default())
        );
        assert_eq!(
            head.validator.as_deref(),
            Some("Fri, 27 Nov 2026 15:20:26 GMT"),
            "weak ETag skipped"
        );
        let (gzip, used) = decode(NGINX_GZIP_BODY).unwrap().unwrap();
        assert_eq!(used, NGINX_GZIP_BODY.len());
        assert_eq!(gzip.len(), 0x2a);
        // The decoded bytes are the gzip member nginx made: its deflate data (after the
        // 10-byte header, before the 8-byte trailer) inflates to the file.
        let text = miniz_oxide::inflate::decompress_to_vec(&gzip[10..gzip.len() - 8]).unwrap();
        assert_eq!(text, "hello imprint\n".repeat(50).as_bytes());
    }

    fn decode(input: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ChunkError> {
        let mut out = Vec::new();
        Ok(decode_all(input, &mut out)?.map(|used| (out, used)))
    }

    #[test]
    fn decodes_chunks_with_extensions_and_trailers() {
        let body = b"5;name=\"quoted;value\"\r\nhello\r\n6 ; x\r\n world\r\n0;last\r\nX-Sum: abc\r\nY: z\r\n\r\nNEXT";
        let (data, used) = decode(body).unwrap().unwrap();
        assert_eq!(data, b"hello world");
        assert_eq!(&body[used..], b"NEXT", "stops exactly at the end of the body");
        let (data, _) = decode(b"A\r\n0123456789\r\n0\r\n\r\n").unwrap().unwrap();
        assert_eq!(data, b"0123456789", "upper-case hex");
        let mut big = b"1000\r\n".to_vec();
        big.extend_from_slice(&[7u8; 0x1000]);
        big.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(decode(&big).unwrap().unwrap().0.len(), 0x1000);
    }

    #[test]
    fn any_split_of_the_input_gives_the_same_result() {
        let body = b"3;a=b\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n";
        for cut in 0..body.len() {
            let mut decoder = ChunkedDecoder::default();
            let mut out = Vec::new();
            for piece in [&body[..cut], &body[cut..]] {
                let mut piece: &[u8] = piece;
                while !piece.is_empty() && !decoder.is_done() {
                    let used = decoder.step(piece).unwrap();
                    piece = &piece[used..];
                    let take = (decoder.data_remaining().min(piece.len() as u64)) as usize;
                    out.extend_from_slice(&piece[..take]);
                    decoder.consume_data(take);
                    piece = &piece[take..];
                }
            }
            assert!(decoder.is_done(), "cut {cut}");
            assert_eq!(out, b"abcde", "cut {cut}");
        }
    }

    #[test]
    fn truncated_bodies_are_never_complete() {
        let body = b"5\r\nhello\r\n0\r\n\r\n";
        for cut in 0..body.len() {
            assert_eq!(decode(&body[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn bad_framing_is_an_error() {
        assert_eq!(decode(b"\r\n"), Err(BAD_SIZE), "empty size");
        assert_eq!(decode(b"-5\r\n"), Err(BAD_SIZE));
        assert_eq!(decode(b"0x5\r\n"), Err(BAD_SIZE));
        assert_eq!(decode(b"5z\r\n"), Err(BAD_SIZE));
        assert_eq!(decode(b"10000000000000000\r\n"), Err(BAD_SIZE), "over 2^64");
        assert_eq!(decode(b"5\nhello"), Err(BAD_SIZE));
        assert_eq!(decode(b"5\r\nhelloXY"), Err(NO_CRLF));
        assert_eq!(decode(b"5\r\nhello\r\n0\r\nT\n"), Err(NO_CRLF));
        let mut long = b"5;".to_vec();
        long.resize(MAX_CHUNK_LINE + 10, b'x');
        assert_eq!(decode(&long), Err("chunk size line too long in chunked body"));
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..2000 {
            trailers.extend_from_slice(b"X-Pad: 123456789\r\n");
        }
        assert_eq!(decode(&trailers), Err("trailers too long in chunked body"));
        assert_eq!(decode(b"ffffffffffffffff\r\n").unwrap(), None, "2^64-1 is a valid size");
    }
}
