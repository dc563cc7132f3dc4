//! SHA-256 block compression with the x86 SHA extensions (SHA-NI, found at run time by
//! cpu.rs): a capture hashes every byte of the disk, and the portable code took 38% of a
//! capture's CPU time. CPUs without them (QEMU's TCG CPU, older machines) use the
//! portable path.

use core::arch::x86_64 as arch;

/// Compresses the whole 64-byte blocks of `data` into `state` with round constants `k`;
/// `false` (nothing done) when the CPU lacks the SHA extensions, so the caller falls back.
pub fn sha256_blocks(state: &mut [u32; 8], k: &[u32; 64], data: &[u8]) -> bool {
    if !super::cpu::has(super::cpu::SHA) {
        return false;
    }
    // SAFETY: has(SHA) checked above that the CPU supports every instruction the
    // function is compiled for; it reads `data` and `k` only within their bounds.
    unsafe { compress_ni(state, k, data) };
    true
}

/// The rounds as Intel's SHA extensions paper lays them out (state kept as ABEF/CDGH).
///
/// # Safety
/// The CPU must support SHA, SSE2, SSSE3 and SSE4.1.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn compress_ni(state: &mut [u32; 8], k: &[u32; 64], data: &[u8]) {
    // SAFETY: both read 16 readable bytes; loadu has no alignment requirement.
    let load = |bytes: &[u8; 16]| unsafe { arch::_mm_loadu_si128(bytes.as_ptr().cast()) };
    let load_words = |words: &[u32; 4]| unsafe { arch::_mm_loadu_si128(words.as_ptr().cast()) };
    // Big-endian words: reverse the bytes of each 32-bit lane.
    let mask = arch::_mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
    let (halves, _) = state.as_chunks::<4>();
    let [dcba, hgfe] = [halves[0], halves[1]].map(|h| load_words(&h));
    let cdab = arch::_mm_shuffle_epi32(dcba, 0xb1);
    let efgh = arch::_mm_shuffle_epi32(hgfe, 0x1b);
    let mut abef = arch::_mm_alignr_epi8(cdab, efgh, 8);
    let mut cdgh = arch::_mm_blend_epi16(efgh, cdab, 0xf0);
    for block in data.as_chunks::<64>().0 {
        let (abef_saved, cdgh_saved) = (abef, cdgh);
        // Zipped, not indexed: the ring's threads run this too, and must have no panic site.
        let mut w = [arch::_mm_setzero_si128(); 4];
        for (w, quarter) in w.iter_mut().zip(block.as_chunks::<16>().0) {
            *w = arch::_mm_shuffle_epi8(load(quarter), mask);
        }
        for (group, k) in k.as_chunks::<4>().0.iter().enumerate() {
            let words = if group < 4 {
                w[group]
            } else {
                // The message schedule, four words at a time, from the last sixteen.
                let next = arch::_mm_sha256msg2_epu32(
                    arch::_mm_add_epi32(
                        arch::_mm_sha256msg1_epu32(w[0], w[1]),
                        arch::_mm_alignr_epi8(w[3], w[2], 4),
                    ),
                    w[3],
                );
                w = [w[1], w[2], w[3], next];
                next
            };
            let t = arch::_mm_add_epi32(words, load_words(k));
            cdgh = arch::_mm_sha256rnds2_epu32(cdgh, abef, t);
            abef = arch::_mm_sha256rnds2_epu32(abef, cdgh, arch::_mm_shuffle_epi32(t, 0x0e));
        }
        abef = arch::_mm_add_epi32(abef, abef_saved);
        cdgh = arch::_mm_add_epi32(cdgh, cdgh_saved);
    }
    let feba = arch::_mm_shuffle_epi32(abef, 0x1b);
    let dchg = arch::_mm_shuffle_epi32(cdgh, 0xb1);
    let out = state.as_mut_ptr().cast::<arch::__m128i>();
    // SAFETY: `state` is 8 words, 32 bytes: two unaligned 16-byte stores fit.
    unsafe {
        arch::_mm_storeu_si128(out, arch::_mm_blend_epi16(feba, dchg, 0xf0));
        arch::_mm_storeu_si128(out.add(1), arch::_mm_alignr_epi8(dchg, feba, 8));
    }
}
