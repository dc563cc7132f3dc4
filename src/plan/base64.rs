//! Base64 (RFC 4648, standard alphabet) decoding, for file contents in plans.

use alloc::vec::Vec;

fn sextet(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Decodes `text`; `=` padding is optional, but only at the end. White space (line breaks
/// in long values) is skipped. Anything else outside the alphabet is an error (None).
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let end = text.bytes().rposition(|b| b != b'=').map_or(0, |i| i + 1);
    let body = text.get(..end).unwrap_or(text);
    if text.len() - body.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes().filter(|c| !c.is_ascii_whitespace()) {
        acc = (acc << 6) | sextet(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // 6 leftover bits can never be a whole byte: a truncated value. Leftover bits must be 0.
    (bits < 6 && acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        let vectors: [(&str, &str); 7] = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(decode(encoded).as_deref(), Some(plain.as_bytes()), "{encoded}");
            assert_eq!(decode(encoded.trim_end_matches('=')).as_deref(), Some(plain.as_bytes()));
        }
        assert_eq!(decode("Zm9v\nYmFy").as_deref(), Some(&b"foobar"[..]));
        assert_eq!(decode("/+8=").as_deref(), Some(&[0xff, 0xef][..]));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["Zm9v!", "Z", "Zm9vY", "Zh==", "Zm===", "Zg=a", "=Zg"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
