//! The AVX-512 VNNI one-activation-row dot kernel for Q4_K (llama.cpp's `vec_dot` rounding,
//! `scalar::dot_q4_k`), used by the `AVX512_VNNI` table.
//!
//! It dots a group of `R` weight rows against one activation row (`group_rows_fns!`, groups
//! of 4, the rest one at a time): the activation block's registers (its quants, laid out for
//! the 512-bit products, and its pair sums) are prepared once for the group, and the rows'
//! chains interleave. Every row is computed with the same arithmetic whatever `R` is.
//!
//! The integer part of a block is the reference's eight i32 lanes, exact: each 32-element
//! chunk's four-element sums come from one `vpdpbusd` (u8 weights × i8 activations), two chunks
//! per 512-bit register (lane `m` of the low half is lane `m` of one chunk, of the high half
//! lane `m` of another). These sums fit in i16 (at most `4 · 15 · 128`), so two registers'
//! lanes are packed as the low and high words of one i32 lane (shift + masked blend) and meet
//! their chunks' scales in one `vpdpwssd`; the two 256-bit halves are added at the end of the
//! block, which gives lane `m` the sum over all chunks as the reference defines it. The float
//! part is then exactly the reference's: one FMA per block and lane by `d_w d_x`, the mins in
//! four lanes with one FMA by `(−d_x) dmin_w`, and `hsum8` plus `(a0 + a2) + (a1 + a3)`.
//!
//! On Zen 4 a 512-bit operation runs as two 256-bit halves, so the gain over the AVX2 kernel
//! (about 1.3x) is fewer instructions (one `vpdpbusd` for 64 products instead of `vpmaddubsw`
//! and `vpmaddwd` for 32, the scales applied to 64 lanes at once), not wider arithmetic. A Q6_K
//! kernel in the same style (both 128-element halves' 6-bit values assembled in 512-bit
//! registers with per-half variable shifts, 4 rows per pass) measured slower than the
//! existing `q6k_rows::<VEC, true>` (44 vs 47.6 G elements/s), so the table keeps that one.

use std::arch::x86_64::*;

use super::avx2;
use super::avx512::{Q8K_BSUMS, Q8K_QS, load32, load64};

group_rows_fns! {
    features = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c";
    q4_k: dot_q4_k_rows, 144, 292, group = 4;
}

/// Reads a little-endian u32 at any alignment.
///
/// # Safety
/// `p` readable for 4 bytes.
#[inline(always)]
unsafe fn rd32(p: *const u8) -> u32 {
    // SAFETY: caller's contract.
    unsafe { p.cast::<u32>().read_unaligned() }
}

/// Packs the four-element sums of two registers (each i32 lane at most `4 · 15 · 128` in
/// magnitude, so its low word is the value) into one: i32 lane `k` gets `a[k]` as its low and
/// `b[k]` as its high word.
///
/// # Safety
/// AVX-512BW.
#[inline(always)]
unsafe fn pack_words(a: __m512i, b: __m512i) -> __m512i {
    // SAFETY: register-only intrinsics.
    unsafe { _mm512_mask_blend_epi16(0xAAAA_AAAA, a, _mm512_slli_epi32(b, 16)) }
}

/// The sum of the two 256-bit halves of `v` as eight i32 lanes.
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn fold_halves(v: __m512i) -> __m256i {
    // SAFETY: register-only intrinsics.
    unsafe { _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)) }
}

// ---------------------------------------------------------------------------------------------
// Q4_K × Q8_K (144 bytes: d 0, dmin 2, scales 4, qs 16).
// ---------------------------------------------------------------------------------------------

/// The eight 6-bit scales and the eight 6-bit mins of a Q4_K block (`scalar::k4_scales_mins`)
/// as the bytes of two u64: `(scales, mins)`.
///
/// # Safety
/// `p` readable for 12 bytes.
#[inline(always)]
unsafe fn k4_scales_mins(p: *const u8) -> (u64, u64) {
    // SAFETY: three 4-byte reads inside the 12 bytes.
    let (u0, u1, u2) = unsafe { (rd32(p), rd32(p.add(4)), rd32(p.add(8))) };
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let sc1 = (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4);
    let mn1 = ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4);
    (
        (u0 & KMASK1) as u64 | (sc1 as u64) << 32,
        (u1 & KMASK1) as u64 | (mn1 as u64) << 32,
    )
}

/// Q4_K × Q8_K for `R` weight rows against one activation row, in the reference's order
/// (`scalar::dot_q4_k`). Per block, the 128 quant bytes as two 64-byte registers: byte `l`
/// of 32-byte run `j` holds element `64j + l` (low nibble, chunk `2j`) and `64j + 32 + l`
/// (high nibble, chunk `2j + 1`), so the low nibbles of run pair `(2k, 2k + 1)` are chunks
/// `4k` and `4k + 2`, the high ones `4k + 1` and `4k + 3`, and the activations are laid out to
/// match (once per block for all rows). Packed, i32 lane `m` of half 0 holds chunks
/// `(4k, 4k + 1)`, of half 1 `(4k + 2, 4k + 3)`: scale words `(sc[4k], sc[4k + 1])` and
/// `(sc[4k + 2], sc[4k + 3])`, i.e. i32 words `2k` and `2k + 1` of the scales as i16. The mins:
/// `m[2p]·B[2p] + m[2p+1]·B[2p+1]` as in the AVX2 kernel (`vpmaddwd` with the pair sums of the
/// activation sums, shared by the rows).
///
/// # Safety
/// Each `w[r]`: `nb` Q4_K blocks, `x`: `nb` Q8_K blocks; AVX-512 F/BW/VL/VNNI, AVX2, FMA, F16C.
#[inline(always)]
unsafe fn dot_q4_k_rows<const R: usize>(w: [*const u8; R], x: *const u8, nb: usize) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `144 i .. 144 i + 144`, of `x` `292 i .. 292 i + 292`;
    // every load stays inside them.
    unsafe {
        let m4 = _mm512_set1_epi8(0x0F);
        let z = _mm512_setzero_si512();
        // i32 words (2k, 2k + 1) of the scales to halves (0, 1).
        let sidx = [
            _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
            _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3),
        ];
        let mut acc = [_mm256_setzero_ps(); R];
        let mut acc_m = [_mm_setzero_ps(); R];
        for i in 0..nb {
            let xb = x.add(292 * i);
            let yd = xb.cast::<f32>().read_unaligned();
            let ydv = _mm_setr_ps(yd, -yd, 0.0, 0.0);
            let yq = xb.add(Q8K_QS);
            // Activations of chunks (4k, 4k + 2) and (4k + 1, 4k + 3).
            let half = |a: usize, b: usize| {
                _mm512_inserti64x4(
                    _mm512_castsi256_si512(load32(yq.add(a))),
                    load32(yq.add(b)),
                    1,
                )
            };
            let ylo = [half(0, 64), half(128, 192)];
            let yhi = [half(32, 96), half(160, 224)];
            // B[g] = bsums[2g] + bsums[2g + 1] as eight i16 (|B| ≤ 4096).
            let bs = load32(xb.add(Q8K_BSUMS));
            let bp = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            unroll_rows!(R, |r| {
                let wb = w[r].add(144 * i);
                // [d_w d_x, −d_x dmin_w]
                let dd = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(rd32(wb) as i32)), ydv);
                let (sc, mn) = k4_scales_mins(wb.add(4));
                let sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64)));
                let mn16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mn as i64));
                let mins = _mm_madd_epi16(mn16, bp);
                let dmin = _mm_shuffle_ps(dd, dd, 0x55);
                acc_m[r] = _mm_fmadd_ps(dmin, _mm_cvtepi32_ps(mins), acc_m[r]);
                let mut sumi = z;
                for k in 0..2 {
                    let q = load64(wb.add(16 + 64 * k));
                    let lo = _mm512_and_si512(q, m4);
                    let hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
                    let a = _mm512_dpbusd_epi32(z, lo, ylo[k]);
                    let b = _mm512_dpbusd_epi32(z, hi, yhi[k]);
                    let s = _mm512_permutexvar_epi32(sidx[k], sc16);
                    sumi = _mm512_dpwssd_epi32(sumi, pack_words(a, b), s);
                }
                let lanes = _mm256_cvtepi32_ps(fold_halves(sumi));
                acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), lanes, acc[r]);
            });
        }
        std::array::from_fn(|r| {
            let mut m = [0.0f32; 4];
            _mm_storeu_ps(m.as_mut_ptr(), acc_m[r]);
            avx2::hsum_ps(acc[r]) + ((m[0] + m[2]) + (m[1] + m[3]))
        })
    }
}
