//! CPU features found at run time, and the code that needs them: CRC-32 folded with
//! carry-less multiplication (PCLMULQDQ), about ten times faster than table lookups
//! (SHA-256 with the SHA extensions is in sha.rs).
//! Real fleets (and QEMU's TCG CPU) vary, so every caller keeps a portable path.

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64 as arch;
use core::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const ABSENT: u8 = 1;
const PRESENT: u8 = 2;

static PCLMUL: AtomicU8 = AtomicU8::new(UNKNOWN);
static SHA_NI: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Whether the CPU has PCLMULQDQ and SSE4.1 (asked once, then remembered).
pub fn has_pclmul() -> bool {
    cached(&PCLMUL, detect_pclmul)
}

/// Whether the CPU has the SHA extensions, SSSE3 and SSE4.1 (asked once, then remembered).
pub fn has_sha_ni() -> bool {
    cached(&SHA_NI, detect_sha_ni)
}

fn cached(flag: &AtomicU8, detect: fn() -> bool) -> bool {
    match flag.load(Ordering::Relaxed) {
        UNKNOWN => {
            let found = detect();
            flag.store(if found { PRESENT } else { ABSENT }, Ordering::Relaxed);
            found
        }
        state => state == PRESENT,
    }
}

#[cfg(target_arch = "x86_64")]
fn detect_sha_ni() -> bool {
    // SAFETY: CPUID exists on every x86_64 CPU; leaves 0, 1 and 7 only read feature bits
    // (leaf 7 is asked only when leaf 0 says it exists).
    #[allow(unused_unsafe)]
    let (max, leaf1) = unsafe { (arch::__cpuid(0).eax, arch::__cpuid(1)) };
    if max < 7 {
        return false;
    }
    // SAFETY: as above; leaf 7 exists (max >= 7).
    #[allow(unused_unsafe)]
    let leaf7 = unsafe { arch::__cpuid_count(7, 0) };
    const SSSE3: u32 = 1 << 9;
    const SSE4_1: u32 = 1 << 19;
    const SHA: u32 = 1 << 29;
    leaf1.ecx & (SSSE3 | SSE4_1) == SSSE3 | SSE4_1 && leaf7.ebx & SHA != 0
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_sha_ni() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn detect_pclmul() -> bool {
    // SAFETY: CPUID exists on every x86_64 CPU; leaf 1 is always valid and only reads
    // feature bits.
    #[allow(unused_unsafe)]
    let leaf1 = unsafe { arch::__cpuid(1) };
    const PCLMULQDQ: u32 = 1 << 1;
    const SSE4_1: u32 = 1 << 19;
    leaf1.ecx & (PCLMULQDQ | SSE4_1) == PCLMULQDQ | SSE4_1
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_pclmul() -> bool {
    false
}

/// Folds `data` (at least 64 bytes, a multiple of 16) into the CRC-32 register `state`
/// (reflected polynomial 0xEDB88320, kept inverted as the table code keeps it); `None`
/// when the CPU lacks PCLMULQDQ or the length does not fit, so the caller falls back.
pub fn crc32_pclmul(state: u32, data: &[u8]) -> Option<u32> {
    if data.len() < 64 || data.len() % 16 != 0 || !has_pclmul() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: has_pclmul() checked above that the CPU supports the instructions the
    // function is compiled for; the function reads `data` only within its bounds.
    return Some(unsafe { crc32_fold(state, data) });
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// # Safety
/// The CPU must support PCLMULQDQ, SSE2 and SSE4.1; `data.len()` >= 64, a multiple of 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,sse2,sse4.1")]
unsafe fn crc32_fold(state: u32, data: &[u8]) -> u32 {
    // Folding constants for the reflected CRC-32 polynomial: x^(4*128+32), x^(4*128-32),
    // x^(128+32), x^(128-32) and x^64 modulo P, P itself and the Barrett constant mu, as
    // Intel's "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ" derives them
    // (the same values as Linux's crc32-pclmul and zlib-ng).
    const K1: i64 = 0x1_5444_2bd4;
    const K2: i64 = 0x1_c6e4_1596;
    const K3: i64 = 0x1_7519_97d0;
    const K4: i64 = 0x0_ccaa_009e;
    const K5: i64 = 0x1_63cd_6124;
    const P_X: i64 = 0x1_DB71_0641;
    const U_PRIME: i64 = 0x1_F701_1641;
    let load = |at: usize| {
        debug_assert!(at + 16 <= data.len());
        // SAFETY: callers pass `at` with at + 16 <= data.len() (the loops below check),
        // so the 16 bytes are readable; loadu has no alignment requirement.
        unsafe { arch::_mm_loadu_si128(data.as_ptr().add(at).cast()) }
    };
    // Four lanes of 128 bits, folded 64 bytes at a time.
    let mut x3 = arch::_mm_xor_si128(load(0), arch::_mm_cvtsi32_si128(state as i32));
    let mut x2 = load(16);
    let mut x1 = load(32);
    let mut x0 = load(48);
    let k1k2 = arch::_mm_set_epi64x(K2, K1);
    let mut at = 64;
    while at + 64 <= data.len() {
        x3 = fold_128(x3, load(at), k1k2);
        x2 = fold_128(x2, load(at + 16), k1k2);
        x1 = fold_128(x1, load(at + 32), k1k2);
        x0 = fold_128(x0, load(at + 48), k1k2);
        at += 64;
    }
    let k3k4 = arch::_mm_set_epi64x(K4, K3);
    let mut x = fold_128(x3, x2, k3k4);
    x = fold_128(x, x1, k3k4);
    x = fold_128(x, x0, k3k4);
    while at + 16 <= data.len() {
        x = fold_128(x, load(at), k3k4);
        at += 16;
    }
    // 128 bits down to 64, then a Barrett reduction to 32 (bit-reflected variant).
    let low32 = arch::_mm_set_epi32(0, 0, 0, !0);
    let x =
        arch::_mm_xor_si128(arch::_mm_clmulepi64_si128(x, k3k4, 0x10), arch::_mm_srli_si128(x, 8));
    let x = arch::_mm_xor_si128(
        arch::_mm_clmulepi64_si128(
            arch::_mm_and_si128(x, low32),
            arch::_mm_set_epi64x(0, K5),
            0x00,
        ),
        arch::_mm_srli_si128(x, 4),
    );
    let pu = arch::_mm_set_epi64x(U_PRIME, P_X);
    let t1 = arch::_mm_clmulepi64_si128(arch::_mm_and_si128(x, low32), pu, 0x10);
    let t2 = arch::_mm_clmulepi64_si128(arch::_mm_and_si128(t1, low32), pu, 0x00);
    arch::_mm_extract_epi32(arch::_mm_xor_si128(x, t2), 1) as u32
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "pclmulqdq,sse2")]
fn fold_128(a: arch::__m128i, b: arch::__m128i, keys: arch::__m128i) -> arch::__m128i {
    let t1 = arch::_mm_clmulepi64_si128(a, keys, 0x00);
    let t2 = arch::_mm_clmulepi64_si128(a, keys, 0x11);
    arch::_mm_xor_si128(arch::_mm_xor_si128(b, t1), t2)
}
