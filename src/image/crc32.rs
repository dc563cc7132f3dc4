//! CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as gzip's trailer has it.
//!
//! Slice-by-8: eight 256-entry tables, built at run time, let the loop fold eight input
//! bytes per step instead of one. Runs of zero bytes, common in disk images, are not
//! folded byte by byte at all: appending n zeros multiplies the CRC register by x^(8n)
//! modulo the polynomial, which takes a few dozen steps whatever n is (zlib's
//! crc32_combine uses the same algebra). Where the CPU has PCLMULQDQ (found at run time),
//! [`cpu::crc32_pclmul`] folds 64 bytes per step instead, down to 16 bytes whose CRC is
//! then taken a bit at a time.

use super::is_zero;
use crate::sys::cpu;
use alloc::boxed::Box;

const POLY: u32 = 0xEDB8_8320;

/// The eight slice-by-8 tables. Built at run time on the heap (8 KiB that would barely
/// compress in the initramfs), and only where the CPU lacks carry-less multiplication.
type Tables = [[u32; 256]; 8];

fn build_tables() -> Box<Tables> {
    let mut t = Box::new([[0u32; 256]; 8]);
    for i in 0..256 {
        // Table s: byte i followed by s zero bytes.
        let mut c = byte_step(i as u32);
        for table in t.iter_mut() {
            table[i] = c;
            c = (c >> 8) ^ byte_step(c & 0xff);
        }
    }
    t
}

/// The register after shifting in one zero bit: times x, modulo the polynomial.
fn times_x(c: u32) -> u32 {
    (c >> 1) ^ (POLY & (c & 1).wrapping_neg())
}

/// The register after shifting in eight zero bits from `c` (one table entry).
fn byte_step(c: u32) -> u32 {
    (0..8).fold(c, |c, _| times_x(c))
}

/// a * b modulo the polynomial, in the reflected bit order (bit 31 is x^0): b, times x
/// once per bit of a from the top, added up where a's bit is set.
fn mul_mod_p(a: u32, b: u32) -> u32 {
    let step = |(p, b): (u32, u32), bit: u32| (p ^ b & (a >> bit & 1).wrapping_neg(), times_x(b));
    (0..32).rev().fold((0, b), step).0
}

/// Folds `data` into the register `c` a byte at a time, without tables.
fn bytewise(c: u32, data: &[u8]) -> u32 {
    data.iter().fold(c, |c, &b| byte_step(c ^ b as u32))
}

/// x^8 and x^-8 modulo the polynomial, reflected. x^-8 undoes a zero byte: x^-1 is
/// (P + 1) / x, a polynomial since P's constant term is 1 (the test checks the product).
const X8: u32 = 1 << 23;
const X_INV8: u32 = 0x6567_CB95;

/// The register after `n` zero bytes: multiplied by x^(8n), squaring x^8 up.
fn shift_zeros(register: u32, n: u64) -> u32 {
    times_power(register, n, X8)
}

/// `register` times `power`^n modulo the polynomial, squaring `power` up.
fn times_power(mut register: u32, mut n: u64, mut power: u32) -> u32 {
    while n != 0 {
        if n & 1 != 0 {
            register = mul_mod_p(power, register);
        }
        power = mul_mod_p(power, power);
        n >>= 1;
    }
    register
}

/// Pieces this long that are all zeros take the shortcut.
const ZERO_PIECE: usize = 4096;

/// A running CRC-32.
#[derive(Default)]
pub struct Crc32 {
    /// The CRC-32 so far (the algorithm's register is its complement).
    value: u32,
    tables: Option<Box<Tables>>,
}

impl Crc32 {
    /// Starts over (keeping the tables).
    pub fn reset(&mut self) {
        self.value = 0;
    }

    pub fn value(&self) -> u32 {
        self.value
    }

    /// Takes a CRC-32 computed elsewhere (from [`share`]s) as the value so far.
    pub fn set(&mut self, value: u32) {
        self.value = value;
    }

    pub fn update(&mut self, data: &[u8]) {
        let register = !self.value;
        // Carry-less folding is about as fast as looking for zeros: just fold.
        let (wide, tail) = data.split_at(data.len() & !15);
        self.value = !match cpu::crc32_pclmul(register, wide) {
            Some(folded) => bytewise(bytewise(0, &folded), tail),
            None if data.len() < 64 => bytewise(register, data),
            None => self.portable(register, data),
        };
    }

    /// Table folding, with zero pieces skipped.
    fn portable(&mut self, mut register: u32, data: &[u8]) -> u32 {
        for piece in data.chunks(ZERO_PIECE) {
            register = if piece.len() == ZERO_PIECE && is_zero(piece) {
                shift_zeros(register, ZERO_PIECE as u64)
            } else {
                fold(self.tables.get_or_insert_with(build_tables), register, piece)
            };
        }
        register
    }

    /// Advances over `n` zero bytes.
    pub fn skip_zeros(&mut self, n: u64) {
        self.value = !shift_zeros(!self.value, n);
    }
}

/// A range's share of its gzip member's CRC-32, so that threads can checksum ranges in
/// any order: the range's CRC from a zero register (no inversions), times x^(-8 end), where
/// `end` is where the range ends in the member. The XOR of all shares gives the member's
/// CRC-32 through [`member_crc`]: the register is linear in the data, and a range's CRC
/// moves to the member's end by x^(8 (len - end)).
pub fn share(data: &[u8], end: u64) -> u32 {
    // Not split_at: the ring's threads run this, and must have no panic site.
    let (wide, tail) = data.split_at_checked(data.len() & !15).unwrap_or((data, &[]));
    let register = match cpu::crc32_pclmul(0, wide) {
        Some(folded) => bytewise(bytewise(0, &folded), tail),
        None => bytewise(0, data),
    };
    times_power(register, end, X_INV8)
}

/// The CRC-32 of a member of `len` bytes whose ranges' [`share`]s XOR to `shares`: the
/// register from zero, plus the initial all-ones register moved past `len` bytes.
pub fn member_crc(shares: u32, len: u64) -> u32 {
    !(times_power(shares, len, X8) ^ shift_zeros(!0, len))
}

/// The CRC-32 of `data` in one call.
pub fn checksum(data: &[u8]) -> u32 {
    let mut c = Crc32::default();
    c.update(data);
    c.value()
}

fn fold(t: &Tables, mut crc: u32, data: &[u8]) -> u32 {
    let (words, rest) = data.as_chunks::<8>();
    for word in words {
        let word = u64::from_le_bytes(*word) ^ crc as u64;
        // Byte k of the word is looked up in table 7 - k.
        crc = (0..8).fold(0, |c, k| c ^ t[7 - k][(word >> (8 * k)) as u8 as usize]);
    }
    rest.iter().fold(crc, |c, &b| t[0][((c ^ b as u32) & 0xff) as usize] ^ (c >> 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit at a time, straight from the definition: the reference for the fast paths.
    fn reference(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ POLY } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn standard_check_values() {
        assert_eq!(checksum(b""), 0);
        assert_eq!(checksum(b"123456789"), 0xCBF4_3926);
        assert_eq!(checksum(b"The quick brown fox jumps over the lazy dog"), 0x414F_A339);
        assert_eq!(checksum(&[0u8; 32]), 0x190A_55AD);
        assert_eq!(checksum(&[0xFFu8; 32]), 0xFF6C_AB0B);
    }

    #[test]
    fn fast_paths_agree_with_the_definition_at_every_split() {
        // Data with zero pieces at odd places, updated in uneven parts.
        let mut data = std::vec![0u8; 3 * ZERO_PIECE + 4321];
        for (i, b) in data.iter_mut().enumerate() {
            if (i / ZERO_PIECE) % 2 == 1 || i > 3 * ZERO_PIECE + 100 {
                *b = (i * 31 % 251) as u8;
            }
        }
        let want = reference(&data);
        for split in [0, 1, 7, 8, 4095, 4096, 4097, 9000, data.len()] {
            let mut c = Crc32::default();
            c.update(&data[..split]);
            c.update(&data[split..]);
            assert_eq!(c.value(), want, "split at {split}");
            let mut portable = Crc32::default();
            portable.value = !portable.portable(!0, &data[..split]);
            portable.value = !portable.portable(!portable.value, &data[split..]);
            assert_eq!(portable.value(), want, "portable, split at {split}");
        }
    }

    #[test]
    fn carry_less_folding_agrees_with_the_tables() {
        if !cpu::has(cpu::PCLMUL) {
            return; // nothing to compare on this CPU; the tables are tested above
        }
        let data: std::vec::Vec<u8> =
            (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in [64, 80, 128, 192, 1024, 4096, 9984] {
            for start in [!0u32, 0, 0x1234_5678] {
                assert_eq!(
                    cpu::crc32_pclmul(start, &data[..len]).map(|x| bytewise(0, &x)),
                    Some(fold(&build_tables(), start, &data[..len])),
                    "len {len}"
                );
            }
        }
        assert_eq!(cpu::crc32_pclmul(!0, &data[..63]), None);
        assert_eq!(checksum(&data), reference(&data));
    }

    #[test]
    fn shares_in_any_order_make_the_member_crc() {
        assert_eq!(mul_mod_p(X_INV8, X8), 1 << 31, "x^-8 times x^8 is 1");
        let data: std::vec::Vec<u8> =
            (0..70_000u32).map(|i| if i % 9000 < 4000 { 0 } else { (i * 7 % 253) as u8 }).collect();
        let want = checksum(&data);
        // Ranges of uneven lengths (short ones take the bytewise path), XORed backwards.
        let cuts = [0, 5, 64, 100, 4096, 4160, 33_333, 69_999, data.len()];
        let shares =
            cuts.windows(2).rev().fold(0, |acc, w| acc ^ share(&data[w[0]..w[1]], w[1] as u64));
        assert_eq!(member_crc(shares, data.len() as u64), want);
        assert_eq!(member_crc(0, 0), checksum(b""));
        assert_eq!(member_crc(share(b"123456789", 9), 9), 0xCBF4_3926);
        assert_ne!(member_crc(shares ^ 1, data.len() as u64), want);
    }

    #[test]
    fn skipping_zeros_equals_folding_them() {
        for n in [0u64, 1, 3, 8, 100, 4096, 1 << 20, (1 << 20) + 5] {
            let mut skipped = Crc32::default();
            skipped.update(b"prefix");
            skipped.skip_zeros(n);
            let mut folded = Crc32::default();
            folded.update(b"prefix");
            folded.value = !fold(&build_tables(), !folded.value, &std::vec![0u8; n as usize]);
            assert_eq!(skipped.value(), folded.value(), "{n} zeros");
        }
    }
}
