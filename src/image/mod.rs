//! Images: gzip or raw, streamed onto a disk ([`write`]), with our own CRC-32 ([`crc32`])
//! and SHA-256 ([`sha256`]) to prove every byte. (`imprint write` and `imprint capture`
//! are tool mode's, in `crate::tool::image`.)

pub mod capture;
pub mod crc32;
pub mod gzip;
pub mod progress;
pub mod sha256;
pub mod write;

use alloc::string::String;
use progress::Progress;

/// Whether `data` is all zero bytes: 64 bytes at a time, four 16-byte words ORed together
/// (SSE registers; written out, since at opt-level "z" a loop over a line's words stayed
/// a loop of 8-byte loads at half the speed), so a data block is settled by its first 64
/// bytes and a zero block costs one pass of plain loads.
pub fn is_zero(data: &[u8]) -> bool {
    let (words, rest) = data.as_chunks::<16>();
    let (lines, words) = words.as_chunks::<4>();
    let word = |w: &[u8; 16]| u128::from_ne_bytes(*w);
    let zero = |[a, b, c, d]: &[[u8; 16]; 4]| word(a) | word(b) | word(c) | word(d) == 0;
    lines.iter().all(zero) && words.iter().all(|w| word(w) == 0) && rest.iter().all(|&b| b == 0)
}

/// The progress line: redrawn in place on a terminal, one line per call otherwise.
pub fn show_progress(p: &Progress, on_tty: bool) {
    match on_tty {
        true => say!("\r{p}\x1b[K{}", if p.done { "\n" } else { "" }),
        false => sayln!("{p}"),
    }
}

/// A progress hook: an error stops the transfer.
pub type Hook<'h> = dyn FnMut(&Progress) -> Result<(), String> + 'h;

/// Why the stream feeding a write stopped (its source failed, after the HTTP client's
/// retries and Range resumes; or the DHCP lease could not be kept), as one line: the one
/// error type of every write's source and progress hook, so the write path is compiled
/// once.
pub type Interrupted = String;

impl From<crate::http::Error> for Interrupted {
    fn from(e: crate::http::Error) -> Interrupted {
        e.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection_looks_at_every_byte() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 5000]));
        for at in [0, 63, 64, 4999] {
            let mut d = [0u8; 5000];
            d[at] = 1;
            assert!(!is_zero(&d), "{at}");
        }
    }
}
