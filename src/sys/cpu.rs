//! CPU features found at run time, and the code that needs them: CRC-32 folded with
//! carry-less multiplication (PCLMULQDQ), about ten times faster than table lookups
//! (SHA-256 with the SHA extensions is in sha.rs).
//! Real fleets (and QEMU's TCG CPU) vary, so every caller keeps a portable path. x86_64
//! only, as the init is (see memcpy.rs).

use core::arch::x86_64 as arch;
use core::sync::atomic::{AtomicU8, Ordering};

/// PCLMULQDQ, SSSE3 and SSE4.1.
pub const PCLMUL: u8 = 1 << 1;
/// The SHA extensions, SSSE3 and SSE4.1.
pub const SHA: u8 = 1 << 2;
/// The features found, with bit 0 set once cpuid was asked.
static FEATURES: AtomicU8 = AtomicU8::new(0);

/// Whether the CPU has `feature` ([`PCLMUL`] or [`SHA`]): asked once, then remembered.
pub fn has(feature: u8) -> bool {
    let mut found = FEATURES.load(Ordering::Relaxed);
    if found == 0 {
        // CPUID leaves 0 and 1 exist on every x86_64 CPU; leaf 7 where leaf 0 says so.
        let (max, ecx1) = (arch::__cpuid(0).eax, arch::__cpuid(1).ecx);
        let ebx7 = if max >= 7 { arch::__cpuid_count(7, 0).ebx } else { 0 };
        const SSSE3_SSE4_1: u32 = 1 << 9 | 1 << 19;
        let sse = ecx1 & SSSE3_SSE4_1 == SSSE3_SSE4_1;
        let (pclmul, sha) = (sse && ecx1 & 1 << 1 != 0, sse && ebx7 & 1 << 29 != 0);
        found = 1 | (pclmul as u8 * PCLMUL) | (sha as u8 * SHA);
        FEATURES.store(found, Ordering::Relaxed);
    }
    found & feature != 0
}

/// Folds `data` (at least 64 bytes, a multiple of 16) into the reflected CRC-32 register
/// `state`: returns 16 bytes whose CRC from a zero register (no final inversion) is the
/// register after `data`; `None` when the CPU lacks PCLMULQDQ or `data` is too short, so
/// the caller falls back.
pub fn crc32_pclmul(state: u32, data: &[u8]) -> Option<[u8; 16]> {
    if data.len() < 64 || !has(PCLMUL) {
        return None;
    }
    // SAFETY: has(PCLMUL) checked above that the CPU supports the instructions the
    // function is compiled for; the function reads `data` only within its bounds.
    Some(unsafe { crc32_fold(state, data) })
}

/// Needs PCLMULQDQ and SSE2; folds the whole 16-byte blocks of `data`.
#[target_feature(enable = "pclmulqdq,sse2")]
fn crc32_fold(state: u32, data: &[u8]) -> [u8; 16] {
    // Folding constants for the reflected CRC-32 polynomial: x^(4*128+32), x^(4*128-32),
    // x^(128+32) and x^(128-32) modulo P, as Intel's "Fast CRC Computation for Generic
    // Polynomials Using PCLMULQDQ" derives them (the same values as Linux's crc32-pclmul
    // and zlib-ng). The last 128 bits are left to the caller: reducing them with
    // carry-less multiplication saves little, and its constants and code cost lines.
    const K1: i64 = 0x1_5444_2bd4;
    const K2: i64 = 0x1_c6e4_1596;
    const K3: i64 = 0x1_7519_97d0;
    const K4: i64 = 0x0_ccaa_009e;
    // SAFETY: 16 readable bytes; loadu has no alignment requirement.
    let load = |b: &[u8; 16]| unsafe { arch::_mm_loadu_si128(b.as_ptr().cast()) };
    let (blocks, _) = data.as_chunks::<16>();
    let Some((first, rest)) = blocks.split_first_chunk::<4>() else { return [0; 16] };
    // Four lanes of 128 bits, folded 64 bytes at a time. Named, not an array: at opt-level
    // "z" an array of lanes lived on the stack and its loop was not unrolled (half speed).
    let [mut x, mut x1, mut x2, mut x3] = first.map(|b| load(&b));
    x = arch::_mm_xor_si128(x, arch::_mm_cvtsi32_si128(state as i32));
    let k1k2 = arch::_mm_set_epi64x(K2, K1);
    let (fours, singles) = rest.as_chunks::<4>();
    for [b0, b1, b2, b3] in fours {
        x = fold_128(x, load(b0), k1k2);
        x1 = fold_128(x1, load(b1), k1k2);
        x2 = fold_128(x2, load(b2), k1k2);
        x3 = fold_128(x3, load(b3), k1k2);
    }
    // Then the lanes into one, and the blocks after the last whole four.
    let k3k4 = arch::_mm_set_epi64x(K4, K3);
    for b in [x1, x2, x3].into_iter().chain(singles.iter().map(load)) {
        x = fold_128(x, b, k3k4);
    }
    let half = |x| arch::_mm_cvtsi128_si64(x) as u64 as u128;
    (half(x) | half(arch::_mm_srli_si128(x, 8)) << 64).to_le_bytes()
}

#[target_feature(enable = "pclmulqdq,sse2")]
fn fold_128(a: arch::__m128i, b: arch::__m128i, keys: arch::__m128i) -> arch::__m128i {
    let t1 = arch::_mm_clmulepi64_si128(a, keys, 0x00);
    let t2 = arch::_mm_clmulepi64_si128(a, keys, 0x11);
    arch::_mm_xor_si128(arch::_mm_xor_si128(b, t1), t2)
}
