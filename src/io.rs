//! Byte streams without std: the pull-reader interface shared by the HTTP body, the
//! decompressor and the disk, so each stage pulls from the one before without copies
//! beyond the buffer it is handed.

/// A source of bytes.
pub trait Read {
    type Error;
    /// Reads up to `buf.len()` bytes into `buf`. `Ok(0)` for a non-empty `buf` means the
    /// stream has ended *as its framing says it should*; a stream cut short is an error.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error>;

    /// Fills `buf` completely unless the stream ends first; returns how much was read.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let mut done = 0;
        while done < buf.len() {
            match self.read(&mut buf[done..])? {
                0 => break,
                n => done += n,
            }
        }
        Ok(done)
    }
}

impl Read for &[u8] {
    type Error = core::convert::Infallible;
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = self.len().min(buf.len());
        buf[..n].copy_from_slice(&self[..n]);
        *self = &self[n..];
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_read_in_pieces_then_end() {
        let mut src: &[u8] = b"abcdefg";
        let mut buf = [0u8; 3];
        assert_eq!(src.read(&mut buf), Ok(3));
        assert_eq!(&buf, b"abc");
        let mut rest = [0u8; 10];
        assert_eq!(src.read_full(&mut rest), Ok(4));
        assert_eq!(&rest[..4], b"defg");
        assert_eq!(src.read(&mut buf), Ok(0));
    }
}
