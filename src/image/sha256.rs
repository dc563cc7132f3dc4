//! SHA-256 (FIPS 180-4) of the raw image, to check it against the plan's `sha256`.

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// A running SHA-256.
#[derive(Clone)]
pub struct Sha256 {
    state: [u32; 8],
    /// A partial block waiting for more bytes.
    block: [u8; 64],
    filled: usize,
    total: u64,
}

impl Sha256 {
    pub fn new() -> Sha256 {
        Sha256 { state: INITIAL, block: [0; 64], filled: 0, total: 0 }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        while let Some((&byte, rest)) = data.split_first() {
            // Whole blocks straight from `data`; a partial one byte by byte into `block`.
            if self.filled == 0 && data.len() >= 64 {
                let (blocks, rest) = data.as_chunks::<64>();
                compress_blocks(&mut self.state, blocks.as_flattened());
                data = rest;
                continue;
            }
            self.block[self.filled % 64] = byte;
            self.filled += 1;
            if self.filled == 64 {
                compress_blocks(&mut self.state, &self.block);
                self.filled = 0;
            }
            data = rest;
        }
    }

    pub fn finish(mut self) -> [u8; 32] {
        // 0x80, zeros up to 56 mod 64, then the length in bits, big-endian.
        let bits = self.total << 3;
        self.update(&[0x80]);
        while self.filled != 56 {
            self.update(&[0]);
        }
        self.update(&bits.to_be_bytes());
        self.state.map(u32::to_be_bytes).as_flattened().try_into().unwrap_or_default()
    }
}

/// Compresses the whole 64-byte blocks of `data`: with the CPU's SHA extensions when it
/// has them, else portably.
fn compress_blocks(state: &mut [u32; 8], data: &[u8]) {
    if !crate::sys::sha::sha256_blocks(state, &K, data) {
        for block in data.as_chunks::<64>().0 {
            compress(state, block);
        }
    }
}

fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    let mut w = [0u32; 64];
    for (w, word) in w.iter_mut().zip(block.as_chunks::<4>().0) {
        *w = u32::from_be_bytes(*word);
    }
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for i in 0..64 {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = h.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let t2 = s0.wrapping_add((a & b) ^ (a & c) ^ (b & c));
        (h, g, f, e) = (g, f, e, d.wrapping_add(t1));
        (d, c, b, a) = (c, b, a, t1.wrapping_add(t2));
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(v);
    }
}

/// A digest written as 64 lower- or upper-case hex digits; `None` if it is not one.
pub fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for (i, c) in text.bytes().enumerate() {
        // Even positions are high nibbles.
        *out.get_mut(i / 2)? |= ((c as char).to_digit(16)? << (4 - i % 2 * 4)) as u8;
    }
    (text.len() == 64).then_some(out)
}

/// Displays a digest as lower-case hex.
pub struct Hex<'a>(pub &'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write;
        let digit = |n: u8| char::from(b"0123456789abcdef"[n as usize & 15]);
        self.0
            .iter()
            .try_for_each(|b| f.write_char(digit(b >> 4)).and_then(|_| f.write_char(digit(*b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn hex_of(data: &[u8]) -> std::string::String {
        let mut h = Sha256::new();
        h.update(data);
        Hex(&h.finish()).to_string()
    }

    #[test]
    fn fips_180_4_vectors() {
        assert_eq!(hex_of(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(
            hex_of(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex_of(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            hex_of(b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
        );
        assert_eq!(
            hex_of(&std::vec![b'a'; 1_000_000]),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn pieces_of_any_size_give_the_same_digest() {
        let data: std::vec::Vec<u8> = (0..1000u32).map(|i| (i * 7 % 256) as u8).collect();
        let whole = hex_of(&data);
        for step in [1, 3, 55, 56, 63, 64, 65, 999] {
            let mut h = Sha256::new();
            data.chunks(step).for_each(|c| h.update(c));
            assert_eq!(Hex(&h.finish()).to_string(), whole, "step {step}");
        }
    }

    #[test]
    fn agrees_with_sha256sum_on_large_random_data() {
        let mut data = std::vec![0u8; 24 << 20];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for chunk in data.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let path = std::env::temp_dir().join(std::format!("imprint-sha-{}", std::process::id()));
        std::fs::write(&path, &data).unwrap();
        let out =
            std::process::Command::new("sha256sum").arg(&path).output().expect("run sha256sum");
        std::fs::remove_file(&path).unwrap();
        let theirs = std::string::String::from_utf8(out.stdout).unwrap();
        let mut h = Sha256::new();
        data.chunks(1 << 20 | 17).for_each(|c| h.update(c));
        assert_eq!(Hex(&h.finish()).to_string(), theirs[..64]);
    }

    #[test]
    fn the_sha_extensions_and_the_portable_rounds_agree() {
        let data: std::vec::Vec<u8> =
            (0..64 * 1000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let mut portable = INITIAL;
        for block in data.chunks_exact(64) {
            compress(&mut portable, block.try_into().unwrap());
        }
        let mut fast = INITIAL;
        if crate::sys::sha::sha256_blocks(&mut fast, &K, &data) {
            assert_eq!(fast, portable);
        } else {
            std::eprintln!("no SHA extensions on this CPU: only the portable rounds were checked");
        }
    }

    #[test]
    fn hex_digests_parse_in_either_case() {
        let text = "BA7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let d = parse_hex(text).unwrap();
        assert_eq!(Hex(&d).to_string(), text.to_ascii_lowercase());
        assert_eq!(parse_hex(&text[1..]), None);
        assert_eq!(parse_hex(&text.replace('B', "g")), None);
    }
}
