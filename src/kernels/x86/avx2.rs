//! AVX2 (+FMA, F16C) kernels.
//!
//! The K-quant and float kernels are `#[inline(always)] unsafe fn (w, x, nb) -> f32`, one row
//! at a time, wrapped by `dot_rows_fns!` in row loops. The 32-element formats dot a group of
//! `R` weight rows against one activation row at once (`fn<const R>(w: [ptr; R], x, nb) ->
//! [f32; R]`, wrapped by `group_rows_fns!` with groups of 4): the activation loads and offset
//! sums are shared by the rows, and the blocks go in chunks whose `d_w d_x` products are
//! converted eight at a time up front (`legacy_rows!`), so the per-block scale is a broadcast
//! load (Q5_1 has its own driver, `dot_q5_1_rows`, which forms those products, and the
//! `m_w s_x` sums, with the rows in lanes). Every row is computed the same way whatever `R` is
//! (the one-row kernels, used by the AVX-512 kernels for leftover blocks, are the `R = 1`
//! case). All loops are compiled with `#[target_feature(enable = "avx2,fma,f16c")]`, the only
//! place the features are enabled; the table [`AVX2`] is handed out only after they were
//! detected (`x86::table`).
//!
//! Integer partial sums are exact and equal to the scalar reference's: products of a weight
//! byte and an activation byte are formed with `vpmaddubsw` (u8 × i8 → i16 pair sums) only where
//! the pair sum provably fits in i16, and signed × signed products use the `vpsignb` trick
//! (`|w| × sign(x, w)`), exact for every activation byte except -128, which the Q8 quantizers
//! never produce (|q| ≤ 127). Only the order of the float additions differs from the
//! reference: per-block terms go into several vector accumulators.

use std::arch::x86_64::*;

use super::super::{Kernels, check_convert, dot_rows_fns};
use crate::quant::blocks::KVALUES_IQ4NL;
use crate::quant::f32_to_f16;

/// The AVX2 table.
pub(in crate::kernels) static AVX2: Kernels = Kernels {
    isa: crate::kernels::Isa::Avx2,
    f32: rows::f32,
    f16: rows::f16,
    bf16: rows::bf16,
    q4_0: rows::q4_0,
    q4_1: rows::q4_1,
    q5_0: rows::q5_0,
    q5_1: rows::q5_1,
    q8_0: rows::q8_0,
    q2_k: rows::q2_k,
    q3_k: rows::q3_k,
    q4_k: rows::q4_k,
    q5_k: rows::q5_k,
    q6_k: rows::q6_k,
    iq4_nl: rows::iq4_nl,
    iq4_xs: rows::iq4_xs,
    quantize_q8_0: convert::q8_0,
    quantize_q8_1: convert::q8_1,
    quantize_q8_k: convert::q8_k,
    to_f16: convert::f16,
    to_bf16: convert::bf16,
    stream: Some(crate::kernels::StreamKernels {
        q4_0: rows::q4_0_stream,
        q4_1: rows::q4_1_stream,
        q5_0: rows::q5_0_stream,
        q5_1: rows::q5_1_stream,
        q8_0: rows::q8_0_stream,
    }),
    paths: crate::kernels::PathKernels {
        q4_k_gemv: rows::q4_k_gemv,
        q4_k_gemm: rows::q4_k_gemm,
        q4_k_tiled: rows::q4_k_tiled,
        q5_k_tiled: rows::q5_k_tiled,
        q6_k_tiled: rows::q6_k_tiled,
        iq4_nl_tinyblas: rows::iq4_nl_tinyblas,
    },
};

/// [`DotRowsFn`](super::super::DotRowsFn)s for the K-quant path kernels: one activation row
/// goes to the one-row kernel's row loop (`$one`), two or more to the batch kernel `$batch`
/// (same arithmetic per element).
macro_rules! kq_batch_fns {
    ($($name:ident: $one:ident, $wb:expr, $batch:path;)*) => {$(
        /// Dot kernel over rows (see `DotRowsFn`).
        ///
        /// # Safety
        /// The CPU must support AVX2, FMA and F16C.
        pub(super) unsafe fn $name(
            w: &[u8],
            w_row_bytes: usize,
            x: &[u8],
            x_row_bytes: usize,
            out: &mut [f32],
            out_stride: usize,
        ) {
            /// The batch kernel under the target features.
            ///
            /// # Safety
            /// Features available; lengths as `check_rows` checked them.
            #[target_feature(enable = "avx2,fma,f16c")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn run(
                w: &[u8],
                wrb: usize,
                x: &[u8],
                xrb: usize,
                out: &mut [f32],
                os: usize,
                dims: (usize, usize, usize),
            ) {
                // SAFETY: caller's contract.
                unsafe { $batch(w, wrb, x, xrb, out, os, dims) }
            }
            let dims = $crate::kernels::check_rows(
                w, w_row_bytes, x, x_row_bytes, out, out_stride, $wb, 292,
            );
            if dims.2 >= 2 {
                // SAFETY: lengths checked above; the caller guarantees the CPU features.
                unsafe { run(w, w_row_bytes, x, x_row_bytes, out, out_stride, dims) }
            } else {
                // SAFETY: the caller guarantees the CPU features.
                unsafe { $one(w, w_row_bytes, x, x_row_bytes, out, out_stride) }
            }
        }
    )*};
}

mod rows {
    use super::*;
    dot_rows_fns! {
        features = "avx2,fma,f16c";
        f32: dot_f32, 4, 4;
        f16: dot_f16, 2, 2;
        bf16: dot_bf16, 2, 2;
        q2_k: dot_q2_k, 84, 292;
        q3_k: dot_q3_k, 110, 292;
        q4_k: dot_q4_k, 144, 292;
        q5_k: dot_q5_k, 176, 292;
        q6_k: dot_q6_k, 210, 292;
        iq4_xs: dot_iq4_xs, 136, 292;
        q4_k_gemv_one: dot_q4_k_gemv, 144, 292;
        q4_k_gemm_one: dot_q4_k_gemm, 144, 292;
        q4_k_tiled_one: dot_q4_k_tiled, 144, 292;
        q5_k_tiled_one: dot_q5_k_tiled, 176, 292;
        q6_k_tiled_one: dot_q6_k_tiled, 210, 292;
    }
    kq_batch_fns! {
        q4_k_gemv: q4_k_gemv_one, 144, kq_batch::<K4Path<false, GEMV>>;
        q4_k_gemm: q4_k_gemm_one, 144, kq_batch::<K4Path<false, GEMM>>;
        q4_k_tiled: q4_k_tiled_one, 144, kq_batch::<K4Path<false, TILED>>;
        q5_k_tiled: q5_k_tiled_one, 176, kq_batch::<K4Path<true, TILED>>;
        q6_k_tiled: q6_k_tiled_one, 210, kq_batch::<Q6Tiled>;
    }
    group_rows_fns! {
        features = "avx2,fma,f16c";
        q4_0: dot_q4_0_rows, 18, 34, group = 4, pf = Pf::rows, tiles = TileQ4_0;
        q4_1: dot_q4_1_rows, 20, 36, group = 4, pf = Pf::rows, tiles = TileQ4_1;
        q5_0: dot_q5_0_rows, 22, 34, group = 4, pf = Pf::rows, tiles = TileQ5_0;
        q5_1: dot_q5_1_rows, 24, 36, group = 4, pf = Pf::rows, tiles = TileQ5_1;
        q8_0: dot_q8_0_rows, 34, 34, group = 4, pf = Pf::rows, tiles = TileQ8_0;
        iq4_nl: dot_iq4_nl_vec_rows, 18, 34, group = 4;
        iq4_nl_tinyblas: dot_iq4_nl_rows, 18, 34, group = 4, tiles = TileIq4Nl;
        q4_0_stream: dot_q4_0_rows, 18, 34, group = 4, pf = Pf::ahead;
        q4_1_stream: dot_q4_1_rows, 20, 36, group = 4, pf = Pf::ahead;
        q5_0_stream: dot_q5_0_rows, 22, 34, group = 4, pf = Pf::ahead;
        q5_1_stream: dot_q5_1_rows, 24, 36, group = 4, pf = Pf::ahead;
        q8_0_stream: dot_q8_0_rows, 34, 34, group = 4, pf = Pf::ahead;
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers. All `#[inline(always)]` and only ever inlined into the `#[target_feature]` loops.
// Their `# Safety` is the same everywhere: the CPU has AVX2, FMA and F16C, and every pointer
// points to enough readable (or writable) bytes for the loads (stores) it is used for.
// ---------------------------------------------------------------------------------------------

/// Sum of the 8 lanes.
///
/// # Safety
/// AVX2 available.
#[inline(always)]
pub(super) unsafe fn hsum_ps(v: __m256) -> f32 {
    // SAFETY: register-only intrinsics; AVX available (caller's contract).
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

/// Lane-wise sum of eight accumulators, as a fixed tree.
///
/// # Safety
/// AVX available.
#[inline(always)]
unsafe fn sum8(a: &[__m256; 8]) -> __m256 {
    // SAFETY: register-only intrinsics.
    unsafe {
        let s0 = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
        let s1 = _mm256_add_ps(_mm256_add_ps(a[4], a[5]), _mm256_add_ps(a[6], a[7]));
        _mm256_add_ps(s0, s1)
    }
}

/// Sum of the 8 i32 lanes.
///
/// # Safety
/// AVX2 available.
#[inline(always)]
pub(super) unsafe fn hsum_epi32(v: __m256i) -> i32 {
    // SAFETY: register-only intrinsics; AVX2 available (caller's contract).
    unsafe {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01));
        _mm_cvtsi128_si32(s)
    }
}

/// Loads 16 bytes.
///
/// # Safety
/// `p` readable for 16 bytes; AVX2 available.
#[inline(always)]
unsafe fn load16(p: *const u8) -> __m128i {
    // SAFETY: caller's contract; unaligned load.
    unsafe { _mm_loadu_si128(p.cast()) }
}

/// Loads 32 bytes.
///
/// # Safety
/// `p` readable for 32 bytes; AVX2 available.
#[inline(always)]
unsafe fn load32(p: *const u8) -> __m256i {
    // SAFETY: caller's contract; unaligned load.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// The two f16 at `p` (4 bytes), as f32 in lanes 0 and 1 (lanes 2, 3 zero).
///
/// # Safety
/// `p` readable for 4 bytes; F16C available.
#[inline(always)]
unsafe fn f16x2(p: *const u8) -> __m128 {
    // SAFETY: caller's contract; unaligned 4-byte read, then a register conversion.
    unsafe { _mm_cvtph_ps(_mm_cvtsi32_si128(p.cast::<i32>().read_unaligned())) }
}

/// The 16 bits at `p` (an f16), as an `i16` for `_mm_setr_epi16`.
///
/// # Safety
/// `p` readable for 2 bytes.
#[inline(always)]
unsafe fn f16_bits(p: *const u8) -> i16 {
    // SAFETY: caller's contract.
    unsafe { p.cast::<i16>().read_unaligned() }
}

/// The f16 at `p` as f32.
///
/// # Safety
/// `p` readable for 2 bytes; F16C available.
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: caller's contract.
    unsafe {
        let h = p.cast::<u16>().read_unaligned();
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
    }
}

/// 32 nibbles from 16 bytes: lanes 0..16 the low nibbles, 16..32 the high nibbles (0..=15).
/// The 16 bytes come in with a broadcast load and the halves are merged with a blend, not an
/// insert: on Zen 4 both of those run outside the two shuffle pipes.
///
/// # Safety
/// `p` readable for 16 bytes; AVX2 available.
#[inline(always)]
unsafe fn nibbles32(p: *const u8) -> __m256i {
    // SAFETY: caller's contract.
    unsafe {
        let t = _mm256_broadcastsi128_si256(load16(p));
        let t = _mm256_blend_epi32(t, _mm256_srli_epi16(t, 4), 0xF0);
        _mm256_and_si256(t, _mm256_set1_epi8(0x0F))
    }
}

/// Shifts each 16-bit lane right by `n` (a run-time count; constant-folded after unrolling).
///
/// # Safety
/// AVX2 available.
#[inline(always)]
unsafe fn srl16(v: __m256i, n: i32) -> __m256i {
    // SAFETY: register-only intrinsics.
    unsafe { _mm256_srl_epi16(v, _mm_cvtsi32_si128(n)) }
}

/// The 32 five-bit weights `nibble | fifth bit << 4` (0..=31) of a Q5_0/Q5_1 block: `qh` the
/// four bytes of fifth bits (little-endian, bit `j` for weight `j`), `qs` the 16 nibble bytes
/// (weight `j < 16` the low nibble of byte `j`, weight `j ≥ 16` the high nibble of byte
/// `j − 16`). Six operations:
/// - nibbles: the 16 bytes in both 128-bit lanes (a broadcast load), the upper lane shifted
///   right by 4 with one variable shift, masked;
/// - fifth bits (llama.cpp's `bytes_from_bits_32`, one operation shorter): byte `j` gets byte
///   `j / 8` of `qh` (`vpshufb`), masked with `1 << (j % 8)`, which leaves 0 or a power of
///   two; `vpsignb` of 16 by that gives 0 or 16 (the constant is −16 where `j % 8 = 7`: the
///   power of two there is 0x80, which `vpsignb` reads as negative, and −(−16) = 16).
///
/// # Safety
/// `qh` readable for 4 bytes, `qs` for 16; AVX2 available.
#[inline(always)]
unsafe fn q5_weights(qh: *const u8, qs: *const u8) -> __m256i {
    // SAFETY: a 4-byte read at `qh` and a 16-byte read at `qs` (caller's contract), both
    // broadcast straight from memory; the rest is register-only.
    unsafe {
        let t = _mm256_broadcastsi128_si256(load16(qs));
        let t = _mm256_srlv_epi32(t, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
        let nib = _mm256_and_si256(t, _mm256_set1_epi8(0x0F));
        let bits = _mm256_broadcastd_epi32(_mm_loadu_si32(qh));
        let shuf = _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0x0000_0000_0000_0000,
        );
        let bit = _mm256_and_si256(
            _mm256_shuffle_epi8(bits, shuf),
            _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64),
        );
        let sixteen = _mm256_set1_epi64x(0xF010_1010_1010_1010u64 as i64);
        _mm256_or_si256(nib, _mm256_sign_epi8(sixteen, bit))
    }
}

/// Σ over each 4 consecutive bytes of `a[i] * b[i]` (`a` unsigned, `b` signed) as i32 lanes.
/// Exact when every pair sum `a[2k] b[2k] + a[2k+1] b[2k+1]` fits in i16.
///
/// # Safety
/// AVX2 available.
#[inline(always)]
unsafe fn dot_u8i8(a: __m256i, b: __m256i) -> __m256i {
    // SAFETY: register-only intrinsics.
    unsafe { _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)) }
}

/// i16 pair sums of `a[i] * b[i]` for signed `a` and `b` (`|a| × sign(b, a)`); exact when
/// `b` has no -128 and `|a| ≤ 128`... with `|a[2k] b[2k] + a[2k+1] b[2k+1]| ≤ 32767`.
///
/// # Safety
/// AVX2 available.
#[inline(always)]
unsafe fn mul_i8_pairs(a: __m256i, b: __m256i) -> __m256i {
    // SAFETY: register-only intrinsics.
    unsafe { _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a)) }
}

/// The eight f16 at `p`, `p + stride`, ..., `p + 7 stride`, as f32.
///
/// # Safety
/// The eight 2-byte fields readable; F16C available.
#[inline(always)]
unsafe fn f16x8(p: *const u8, stride: usize) -> __m256 {
    // SAFETY: reads the eight f16 fields.
    unsafe {
        _mm256_cvtph_ps(_mm_setr_epi16(
            f16_bits(p),
            f16_bits(p.add(stride)),
            f16_bits(p.add(2 * stride)),
            f16_bits(p.add(3 * stride)),
            f16_bits(p.add(4 * stride)),
            f16_bits(p.add(5 * stride)),
            f16_bits(p.add(6 * stride)),
            f16_bits(p.add(7 * stride)),
        ))
    }
}

/// The f16 pairs (4 bytes) at `p`, `p + stride`, `p + 2 stride`, `p + 3 stride`, as f32:
/// `[a_0, b_0, a_1, b_1, a_2, b_2, a_3, b_3]`.
///
/// # Safety
/// The four 4-byte fields readable; F16C available.
#[inline(always)]
unsafe fn f16x2x4(p: *const u8, stride: usize) -> __m256 {
    // SAFETY: reads the four 4-byte fields.
    unsafe {
        _mm256_cvtph_ps(_mm_setr_epi32(
            p.cast::<i32>().read_unaligned(),
            p.add(stride).cast::<i32>().read_unaligned(),
            p.add(2 * stride).cast::<i32>().read_unaligned(),
            p.add(3 * stride).cast::<i32>().read_unaligned(),
        ))
    }
}

/// Blocks per chunk of the legacy kernels' scale pass.
const CHUNK: usize = 32;

/// A group kernel's prefetches ([`Pf::ahead`] for the streaming kernels): before block `i`, the `per` cache
/// lines from `base + 64 per i` are requested into L2, so a group of rows asks for as many
/// bytes as it reads, `STREAM_AHEAD` further on, spread over its blocks. [`Pf::NONE`] (rows
/// in cache) compiles to nothing.
#[derive(Clone, Copy)]
pub(super) struct Pf {
    base: *const u8,
    per: usize,
}

impl Pf {
    /// No prefetches.
    pub(super) const NONE: Pf = Pf {
        base: std::ptr::null(),
        per: 0,
    };

    /// For a group of rows at `offset` bytes into `w`, `bytes` long, `nb` blocks per row:
    /// no prefetches (the rows kernels: rows in cache).
    #[inline(always)]
    pub(super) fn rows(_w: *const u8, _offset: usize, _bytes: usize, _nb: usize) -> Pf {
        Pf::NONE
    }

    /// As [`Pf::rows`], for the streaming kernels (`StreamKernels`): the group asks for as many
    /// bytes as it reads, [`STREAM_AHEAD`] further on, spread over its blocks; lines past the
    /// end of `w` are requested too (usually the rows the caller hands over next). For rows
    /// read from memory this measured faster than `matmul`'s prefetch bursts.
    #[inline(always)]
    pub(super) fn ahead(w: *const u8, offset: usize, bytes: usize, nb: usize) -> Pf {
        Pf {
            base: w.wrapping_add(offset + STREAM_AHEAD),
            per: if nb == 0 {
                0
            } else {
                bytes.div_ceil(64).div_ceil(nb)
            },
        }
    }

    /// The prefetches before block `i`.
    #[inline(always)]
    fn fetch(self, i: usize) {
        if self.per > 0 {
            let a = self.base.wrapping_add(64 * self.per * i);
            for j in 0..self.per {
                // SAFETY: a prefetch is a hint; it never faults, whatever the address.
                unsafe { _mm_prefetch::<_MM_HINT_T1>(a.wrapping_add(64 * j).cast()) };
            }
        }
    }
}

/// How far ahead of the rows being dotted the streaming kernels prefetch them.
const STREAM_AHEAD: usize = 12 << 10;

/// The legacy-format driver for `R` weight rows (`$w: [*const u8; R]`, `R` a const generic in
/// scope) against one activation row `$x`, returning `[f32; R]`. The blocks go in chunks of
/// [`CHUNK`]: first the chunk's scales, eight blocks at a time (`d_w d_x` per block into a
/// small stack buffer; with `$mins` the `m_w s_x` terms summed right away), then the dot
/// products: per activation block `$ybody` (with `$xb` the block) prepares the activation side
/// once for all rows, and per row `$rbody` (with `$wb` the weight block, `$y` the prepared
/// side) returns the block's eight i32 partial sums, which are converted and FMA'd with the
/// block's scale broadcast from the buffer (a load; a broadcast from a register would take a
/// shuffle pipe). Each row's result does not depend on `R`.
macro_rules! legacy_rows {
    ($w:expr, $x:expr, $nb:expr, ws = $ws:expr, xs = $xs:expr, mins = $mins:expr,
     pairs = $pairs:expr, pf = $pf:expr,
     |$xb:ident| $ybody:expr, |$wb:ident, $y:ident| $rbody:expr) => {{
        let (w, x, nb): ([*const u8; R], *const u8, usize) = ($w, $x, $nb);
        // One accumulator per row: with the rows of a group interleaved, the FMA chains are
        // long enough apart, and 16 registers do not hold two per row.
        let mut acc = [_mm256_setzero_ps(); R];
        // With `pairs` (IQ4_NL's one-token order): odd blocks go to a second set of lanes, and
        // an odd last block is added at the end as `sum + d·Σ` (`tail`).
        let mut acc_odd = [_mm256_setzero_ps(); R];
        let mut tail = [0.0f32; R];
        // Q4_1/Q5_1: the m_w s_x terms, one fused multiply-add per block in block order
        // (`summs`), from the chunk's m_w (per row) and s_x values.
        let mut summs = [0.0f32; R];
        let mut ms = [[0.0f32; CHUNK]; R];
        let mut ss = [0.0f32; CHUNK];
        // d_w d_x of the chunk's blocks, per row.
        let mut ds = [[0.0f32; CHUNK]; R];
        let mut i0 = 0;
        while i0 < nb {
            let cn = CHUNK.min(nb - i0);
            let x0 = x.add($xs * i0);
            let mut k = 0;
            while k + 8 <= cn {
                if $mins {
                    // (d, m) and (d, s) pairs, four blocks per register.
                    let xa = f16x2x4(x0.add($xs * k), $xs);
                    let xb = f16x2x4(x0.add($xs * (k + 4)), $xs);
                    // [blocks 0, 1, 4, 5, 2, 3, 6, 7] → block order.
                    let order = |v: __m256| {
                        _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0b11_01_10_00))
                    };
                    let sx = order(_mm256_shuffle_ps(xa, xb, 0b11_01_11_01));
                    _mm256_storeu_ps(ss.as_mut_ptr().add(k), sx);
                    unroll_rows!(R, |r| {
                        let wk = w[r].add($ws * (i0 + k));
                        let wa = f16x2x4(wk, $ws);
                        let wb = f16x2x4(wk.add(4 * $ws), $ws);
                        let pa = _mm256_mul_ps(wa, xa);
                        let pb = _mm256_mul_ps(wb, xb);
                        // Even lanes d_w d_x; odd lanes of the weights m_w.
                        let ev = order(_mm256_shuffle_ps(pa, pb, 0b10_00_10_00));
                        let mw = order(_mm256_shuffle_ps(wa, wb, 0b11_01_11_01));
                        _mm256_storeu_ps(ds[r].as_mut_ptr().add(k), ev);
                        _mm256_storeu_ps(ms[r].as_mut_ptr().add(k), mw);
                    });
                } else {
                    let dx = f16x8(x0.add($xs * k), $xs);
                    unroll_rows!(R, |r| {
                        let wk = w[r].add($ws * (i0 + k));
                        let d = _mm256_mul_ps(f16x8(wk, $ws), dx);
                        _mm256_storeu_ps(ds[r].as_mut_ptr().add(k), d);
                    });
                }
                k += 8;
            }
            while k < cn {
                let dx = f16x2(x0.add($xs * k));
                unroll_rows!(R, |r| {
                    // [d_w, m_w (Q4_1/Q5_1)] and [d_x, s_x]
                    let wdm = f16x2(w[r].add($ws * (i0 + k)));
                    ds[r][k] = _mm_cvtss_f32(_mm_mul_ps(wdm, dx));
                    if $mins {
                        ms[r][k] = _mm_cvtss_f32(_mm_movehdup_ps(wdm));
                        ss[k] = _mm_cvtss_f32(_mm_movehdup_ps(dx));
                    }
                });
                k += 1;
            }
            for kk in 0..cn {
                $pf.fetch(i0 + kk);
                let y = {
                    let $xb = x0.add($xs * kk);
                    $ybody
                };
                unroll_rows!(R, |r| {
                    let s: __m256i = {
                        let ($wb, $y) = (w[r].add($ws * (i0 + kk)), &y);
                        $rbody
                    };
                    let d = _mm256_broadcast_ss(&*ds[r].as_ptr().add(kk));
                    if $pairs && i0 + kk + 1 == nb && nb % 2 == 1 {
                        tail[r] = ds[r][kk] * hsum_epi32(s) as f32;
                    } else if $pairs && kk % 2 == 1 {
                        acc_odd[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc_odd[r]);
                    } else {
                        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc[r]);
                    }
                    if $mins {
                        summs[r] = ms[r][kk].mul_add(ss[kk], summs[r]);
                    }
                });
            }
            i0 += cn;
        }
        let mut out = [0.0f32; R];
        for r in 0..R {
            if $pairs {
                out[r] = hsum_ps(_mm256_add_ps(acc[r], acc_odd[r]));
                if nb % 2 == 1 {
                    out[r] += tail[r];
                }
            } else {
                out[r] = hsum_ps(acc[r]);
            }
            if $mins {
                out[r] += summs[r];
            }
        }
        out
    }};
}

/// Defines the one-row kernel `$one` as the `R = 1` case of the rows kernel `$rows`.
macro_rules! one_row {
    ($($one:ident = $rows:ident $(, $extra:expr)?;)*) => {$(
        /// One row: the `R = 1` case of the rows kernel (same arithmetic, same bits).
        ///
        /// # Safety
        /// As the rows kernel's.
        #[inline(always)]
        #[allow(dead_code)]
        pub(super) unsafe fn $one(w: *const u8, x: *const u8, nb: usize) -> f32 {
            // SAFETY: caller's contract.
            unsafe { $rows::<1>([w], x, nb, $($extra)?)[0] }
        }
    )*};
}

// ---------------------------------------------------------------------------------------------
// Float rows.
// ---------------------------------------------------------------------------------------------

/// f32 · f32 over `n` elements.
///
/// # Safety
/// `w`, `x` readable for `4 n` bytes; AVX2 + FMA available.
#[inline(always)]
pub(super) unsafe fn dot_f32(w: *const u8, x: *const u8, n: usize) -> f32 {
    // SAFETY: every load is inside the `4 n` bytes (caller's contract).
    unsafe {
        let (w, x) = (w.cast::<f32>(), x.cast::<f32>());
        // Eight accumulators (see `dot_f16`).
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut i = 0;
        while i + 64 <= n {
            for (u, a) in acc.iter_mut().enumerate() {
                let o = i + 8 * u;
                *a = _mm256_fmadd_ps(_mm256_loadu_ps(w.add(o)), _mm256_loadu_ps(x.add(o)), *a);
            }
            i += 64;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(w.add(i)), _mm256_loadu_ps(x.add(i)), acc[0]);
            i += 8;
        }
        let s = sum8(&acc);
        let mut sum = hsum_ps(s);
        while i < n {
            sum += w.add(i).read_unaligned() * x.add(i).read_unaligned();
            i += 1;
        }
        sum
    }
}

/// f16 · f16 over `n` elements (converted with F16C, summed in f32).
///
/// # Safety
/// `w`, `x` readable for `2 n` bytes; AVX2, FMA, F16C available.
#[inline(always)]
pub(super) unsafe fn dot_f16(w: *const u8, x: *const u8, n: usize) -> f32 {
    // SAFETY: every load is inside the `2 n` bytes (caller's contract).
    unsafe {
        // Eight accumulators: an FMA's latency is four cycles, so fewer would leave the loop
        // waiting on its own sums.
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut i = 0;
        while i + 64 <= n {
            for (u, a) in acc.iter_mut().enumerate() {
                let o = 2 * (i + 8 * u);
                let wv = _mm256_cvtph_ps(load16(w.add(o)));
                let xv = _mm256_cvtph_ps(load16(x.add(o)));
                *a = _mm256_fmadd_ps(wv, xv, *a);
            }
            i += 64;
        }
        while i + 8 <= n {
            let wv = _mm256_cvtph_ps(load16(w.add(2 * i)));
            let xv = _mm256_cvtph_ps(load16(x.add(2 * i)));
            acc[0] = _mm256_fmadd_ps(wv, xv, acc[0]);
            i += 8;
        }
        let s = sum8(&acc);
        let mut sum = hsum_ps(s);
        while i < n {
            sum += f16_at(w.add(2 * i)) * f16_at(x.add(2 * i));
            i += 1;
        }
        sum
    }
}

/// bf16 · bf16 over `n` elements. A bf16 is the top half of an f32, so 16 bf16 loaded as
/// eight u32 give the odd elements by masking the low half and the even ones by shifting left.
///
/// # Safety
/// `w`, `x` readable for `2 n` bytes; AVX2 + FMA available.
#[inline(always)]
pub(super) unsafe fn dot_bf16(w: *const u8, x: *const u8, n: usize) -> f32 {
    // SAFETY: every load is inside the `2 n` bytes (caller's contract).
    unsafe {
        let hi = _mm256_set1_epi32(0xFFFF_0000u32 as i32);
        // Eight accumulators (see `dot_f16`).
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut i = 0;
        while i + 64 <= n {
            for u in 0..4 {
                let o = 2 * (i + 16 * u);
                let wv = load32(w.add(o));
                let xv = load32(x.add(o));
                let we = _mm256_castsi256_ps(_mm256_slli_epi32(wv, 16));
                let xe = _mm256_castsi256_ps(_mm256_slli_epi32(xv, 16));
                let wo = _mm256_castsi256_ps(_mm256_and_si256(wv, hi));
                let xo = _mm256_castsi256_ps(_mm256_and_si256(xv, hi));
                acc[2 * u] = _mm256_fmadd_ps(we, xe, acc[2 * u]);
                acc[2 * u + 1] = _mm256_fmadd_ps(wo, xo, acc[2 * u + 1]);
            }
            i += 64;
        }
        while i + 16 <= n {
            let wv = load32(w.add(2 * i));
            let xv = load32(x.add(2 * i));
            let we = _mm256_castsi256_ps(_mm256_slli_epi32(wv, 16));
            let xe = _mm256_castsi256_ps(_mm256_slli_epi32(xv, 16));
            let wo = _mm256_castsi256_ps(_mm256_and_si256(wv, hi));
            let xo = _mm256_castsi256_ps(_mm256_and_si256(xv, hi));
            acc[0] = _mm256_fmadd_ps(we, xe, acc[0]);
            acc[1] = _mm256_fmadd_ps(wo, xo, acc[1]);
            i += 16;
        }
        let s = sum8(&acc);
        let mut sum = hsum_ps(s);
        while i < n {
            let a = f32::from_bits((w.add(2 * i).cast::<u16>().read_unaligned() as u32) << 16);
            let b = f32::from_bits((x.add(2 * i).cast::<u16>().read_unaligned() as u32) << 16);
            sum += a * b;
            i += 1;
        }
        sum
    }
}

// ---------------------------------------------------------------------------------------------
// Legacy formats × Q8_0 / Q8_1. Q8_0 block: d at 0, qs at 2. Q8_1: d at 0, s at 2, qs at 4.
// ---------------------------------------------------------------------------------------------

one_row! {
    dot_q4_0 = dot_q4_0_rows, Pf::NONE;
    dot_q5_0 = dot_q5_0_rows, Pf::NONE;
    dot_q5_1 = dot_q5_1_rows, Pf::NONE;
    dot_q8_0 = dot_q8_0_rows, Pf::NONE;
    dot_iq4_nl = dot_iq4_nl_rows;
}

/// Q4_0 × Q8_0 for `R` rows. Per block: `Σ q y` with `vpmaddubsw` (q the nibble), minus
/// `8 Σ y` (shared by the rows); the i16 pair sums are at most `2 · 15 · 128 + 2 · 8 · 128`.
///
/// # Safety
/// Each `w[r]`: `nb` Q4_0 blocks, `x`: `nb` Q8_0 blocks; AVX2, FMA, F16C available.
#[inline(always)]
pub(super) unsafe fn dot_q4_0_rows<const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
    pf: Pf,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `18 i .. 18 i + 18`, of `x` `34 i .. 34 i + 34`;
    // all loads stay inside them.
    unsafe {
        let eight = _mm256_set1_epi8(8);
        legacy_rows!(
            w,
            x,
            nb,
            ws = 18,
            xs = 34,
            mins = false,
            pairs = false,
            pf = pf,
            |xb| {
                let y = load32(xb.add(2));
                (y, _mm256_maddubs_epi16(eight, y))
            },
            |wb, y| {
                let p = _mm256_sub_epi16(_mm256_maddubs_epi16(nibbles32(wb.add(2)), y.0), y.1);
                _mm256_madd_epi16(p, _mm256_set1_epi16(1))
            }
        )
    }
}

/// Q4_1 × Q8_1 for `R` rows, in the reference's order (`scalar::dot_q4_1`, which is
/// llama.cpp's x86 kernel): per block eight i32 lanes of four products (`vpmaddubsw` +
/// `vpmaddwd` pair elements `4j..4j+4` exactly as `vpdpbusd` does), one accumulator per row
/// updated with `fma(d_w d_x, lanes, acc)` block after block, `m_w s_x` summed apart with one
/// fused multiply-add per block (`legacy_rows!` with `mins`), then `hsum_ps`
/// (= `scalar::hsum8`) plus that sum. Same bits as the scalar kernel.
///
/// # Safety
/// Each `w[r]`: `nb` Q4_1 blocks, `x`: `nb` Q8_1 blocks; AVX2, FMA, F16C available.
#[inline(always)]
pub(super) unsafe fn dot_q4_1_rows<const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
    pf: Pf,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `20 i ..`, of `x` `36 i ..`; loads stay inside.
    unsafe {
        legacy_rows!(
            w,
            x,
            nb,
            ws = 20,
            xs = 36,
            mins = true,
            pairs = false,
            pf = pf,
            |xb| load32(xb.add(4)),
            |wb, y| dot_u8i8(nibbles32(wb.add(4)), *y)
        )
    }
}

/// Q5_0 × Q8_0 for `R` rows: value = `q − 16` with `q` = [`q5_weights`] (0..=31), so per block
/// `Σ q y − 16 Σ y` in i16 pairs (`vpmaddubsw`; at most `2 · 31 · 128`, resp. `2 · 16 · 128`
/// in magnitude, the difference inside ±8000), the `16 Σ y` pairs formed once per activation
/// block for all rows.
///
/// # Safety
/// Each `w[r]`: `nb` Q5_0 blocks, `x`: `nb` Q8_0 blocks; AVX2, FMA, F16C available.
#[inline(always)]
pub(super) unsafe fn dot_q5_0_rows<const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
    pf: Pf,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `22 i ..`, of `x` `34 i ..`; loads stay inside.
    unsafe {
        let sixteen = _mm256_set1_epi8(16);
        legacy_rows!(
            w,
            x,
            nb,
            ws = 22,
            xs = 34,
            mins = false,
            pairs = false,
            pf = pf,
            |xb| {
                let y = load32(xb.add(2));
                (y, _mm256_maddubs_epi16(sixteen, y))
            },
            |wb, y| {
                let q = q5_weights(wb.add(2), wb.add(6));
                let p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y.0), y.1);
                _mm256_madd_epi16(p, _mm256_set1_epi16(1))
            }
        )
    }
}

/// Blocks per chunk of [`dot_q5_1_rows`]'s scale pass (measured: 8 is about 2% faster than 32;
/// the next chunk's scales can then start while the last blocks are summed).
const Q5_1_CHUNK: usize = 8;

/// Q5_1 × Q8_1 for `R ≤ 4` rows in the reference's order (`scalar::dot_q5_1`): per block the
/// eight i32 lanes of four products of [`q5_weights`] and the activations (pair sums at most
/// `2 · 31 · 127`), one accumulator per row updated with `fma(d_w d_x, lanes, acc)` block
/// after block, `m_w s_x` summed apart with one fused multiply-add per block, then `hsum_ps`
/// (= `scalar::hsum8`) plus that sum. Same bits as the scalar kernel.
///
/// The scales go with the rows in lanes, a chunk of blocks at a time: per block the rows'
/// `[d_w, m_w]` f16 pairs are gathered into one vector (lane `2r`, `2r + 1` for row `r`) and
/// multiplied by `[d_x, s_x]` in every pair of lanes, so one multiplication gives every row's
/// `d_w d_x` (even lanes, to a small buffer the block loop broadcasts them from) and one fused
/// multiply-add every row's running `m_w s_x` sum (odd lanes).
///
/// # Safety
/// Each `w[r]`: `nb` Q5_1 blocks, `x`: `nb` Q8_1 blocks; AVX2, FMA, F16C available.
#[inline(always)]
pub(super) unsafe fn dot_q5_1_rows<const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
    pf: Pf,
) -> [f32; R] {
    const { assert!(R <= 4, "dot_q5_1_rows handles at most 4 rows") };
    let fused = R <= 2;
    // SAFETY: block `i` of a row is bytes `24 i .. 24 i + 24` (d, m, qh, qs), of `x`
    // `36 i .. 36 i + 36` (d, s, qs); all loads stay inside them; the rest is stack memory.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); R];
        // Lane 2r + 1: row r's Σ m_w s_x (lane 2r collects unused d_w d_x sums).
        let mut summs = _mm256_setzero_ps();
        // Per block of the chunk: lane 2r = row r's d_w d_x.
        let mut ds = [[0.0f32; 8]; Q5_1_CHUNK];
        let dm = |p: *const u8| p.cast::<i32>().read_unaligned();
        // [d_w, m_w] of the rows times [d_x, s_x] for block `i`: (product, summs updated).
        let scales = |i: usize, summs: __m256| {
            // [d_x, s_x] in every pair of lanes.
            let xds = _mm256_cvtph_ps(_mm_set1_epi32(dm(x.add(36 * i))));
            // (Eight entries only because `unroll_rows!` names rows up to 7.)
            let mut v = [0i32; 8];
            unroll_rows!(R, |r| {
                v[r] = dm(w[r].add(24 * i));
            });
            let wdm = _mm256_cvtph_ps(_mm_setr_epi32(v[0], v[1], v[2], v[3]));
            (_mm256_mul_ps(wdm, xds), _mm256_fmadd_ps(wdm, xds, summs))
        };
        // One or two rows: scales and blocks in one loop, each row's scale broadcast from the
        // product with a permutation (measured faster for one row than the chunks, whose two
        // passes keep the `summs` and `acc` chains of fused multiply-adds apart).
        if fused {
            for i in 0..nb {
                pf.fetch(i);
                let (p, s2) = scales(i, summs);
                summs = s2;
                let y = load32(x.add(36 * i + 4));
                unroll_rows!(R, |r| {
                    let wb = w[r].add(24 * i);
                    let s = dot_u8i8(q5_weights(wb.add(4), wb.add(8)), y);
                    let dr = _mm256_permutevar8x32_ps(p, _mm256_set1_epi32(2 * r as i32));
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dr, acc[r]);
                });
            }
        }
        // More rows: per chunk the scales first (to `ds`), then the blocks, each row's scale a
        // broadcast load from `ds` (a load; a broadcast from a register takes a shuffle pipe).
        let mut i0 = if fused { nb } else { 0 };
        while i0 < nb {
            let cn = Q5_1_CHUNK.min(nb - i0);
            for (k, d) in ds.iter_mut().enumerate().take(cn) {
                let (p, s2) = scales(i0 + k, summs);
                summs = s2;
                _mm256_storeu_ps(d.as_mut_ptr(), p);
            }
            for (k, d) in ds.iter().enumerate().take(cn) {
                let i = i0 + k;
                pf.fetch(i);
                let y = load32(x.add(36 * i + 4));
                unroll_rows!(R, |r| {
                    let wb = w[r].add(24 * i);
                    let s = dot_u8i8(q5_weights(wb.add(4), wb.add(8)), y);
                    let dr = _mm256_broadcast_ss(&*d.as_ptr().add(2 * r));
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dr, acc[r]);
                });
            }
            i0 += cn;
        }
        let mut sm = [0.0f32; 8];
        _mm256_storeu_ps(sm.as_mut_ptr(), summs);
        let mut out = [0.0f32; R];
        for r in 0..R {
            out[r] = hsum_ps(acc[r]) + sm[2 * r + 1];
        }
        out
    }
}

/// Q8_0 × Q8_0 for `R` rows (signed × signed with the sign trick).
///
/// # Safety
/// Each `w[r]` and `x`: `nb` Q8_0 blocks; AVX2, FMA, F16C available.
#[inline(always)]
pub(super) unsafe fn dot_q8_0_rows<const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
    pf: Pf,
) -> [f32; R] {
    // SAFETY: block `i` of each row is bytes `34 i .. 34 i + 34`; loads stay inside.
    unsafe {
        legacy_rows!(
            w,
            x,
            nb,
            ws = 34,
            xs = 34,
            mins = false,
            pairs = false,
            pf = pf,
            |xb| load32(xb.add(2)),
            |wb, y| {
                let p = mul_i8_pairs(load32(wb.add(2)), *y);
                _mm256_madd_epi16(p, _mm256_set1_epi16(1))
            }
        )
    }
}

/// The IQ4_NL grid in both 128-bit lanes, for `vpshufb` look-ups.
///
/// # Safety
/// AVX2 available.
#[inline(always)]
unsafe fn iq4nl_table() -> __m256i {
    // SAFETY: reads the 16-byte constant array.
    unsafe { _mm256_broadcastsi128_si256(load16(KVALUES_IQ4NL.as_ptr().cast())) }
}

/// IQ4_NL × Q8_0 for `R` rows: nibbles looked up in the grid (signed), sign-trick products.
///
/// # Safety
/// Each `w[r]`: `nb` IQ4_NL blocks, `x`: `nb` Q8_0 blocks; AVX2, FMA, F16C available.
#[inline(always)]
pub(super) unsafe fn dot_iq4_nl_rows<const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `18 i ..`, of `x` `34 i ..`; loads stay inside.
    unsafe {
        let table = iq4nl_table();
        legacy_rows!(
            w,
            x,
            nb,
            ws = 18,
            xs = 34,
            mins = false,
            pairs = false,
            pf = Pf::NONE,
            |xb| load32(xb.add(2)),
            |wb, y| {
                let q = _mm256_shuffle_epi8(table, nibbles32(wb.add(2)));
                _mm256_madd_epi16(mul_i8_pairs(q, *y), _mm256_set1_epi16(1))
            }
        )
    }
}

/// IQ4_NL × Q8_0 for `R` rows as llama.cpp's x86 `vec_dot` rounds it (`scalar::dot_iq4_nl`,
/// one token): even blocks into one set of eight lanes and odd ones into another (one FMA by
/// `d_x d_w` per block), `hsum8` of their lane-wise sum; an odd last block added after that as
/// `sum + (d_x d_w)·Σ` (`legacy_rows!` with `pairs`). Batches use [`dot_iq4_nl_rows`],
/// tinyBLAS's order.
///
/// # Safety
/// Each `w[r]`: `nb` IQ4_NL blocks, `x`: `nb` Q8_0 blocks; AVX2, FMA, F16C available.
#[inline(always)]
pub(super) unsafe fn dot_iq4_nl_vec_rows<const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `18 i ..`, of `x` `34 i ..`; loads stay inside.
    unsafe {
        let table = iq4nl_table();
        legacy_rows!(
            w,
            x,
            nb,
            ws = 18,
            xs = 34,
            mins = false,
            pairs = true,
            pf = Pf::NONE,
            |xb| load32(xb.add(2)),
            |wb, y| {
                let q = _mm256_shuffle_epi8(table, nibbles32(wb.add(2)));
                _mm256_madd_epi16(mul_i8_pairs(q, *y), _mm256_set1_epi16(1))
            }
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Batches of the 32-element formats: rows × tokens tiles.
// ---------------------------------------------------------------------------------------------

/// A 32-element weight format for [`legacy_tile`]: how a weight block and an activation block
/// are prepared (a weight block once per tile for all its tokens, an activation block once
/// for all its rows) and how a prepared pair gives the block's eight exact i32 lane sums
/// (lane `j`: the products of elements `4j..4j+4`, as `scalar::lanes8_fma` groups them).
/// Weight blocks have `d_w` at byte 0 (and, with Q8_1 activations, `m_w` at byte 2).
trait Legacy {
    /// Bytes per weight block.
    const WS: usize;
    /// Bytes per activation block: 34 (Q8_0: `d` at 0, `qs` at 2) or 36 (Q8_1: `d` at 0,
    /// `s` at 2, `qs` at 4; the format then has the `m_w s_x` term).
    const XS: usize;
    /// The prepared weight block.
    ///
    /// # Safety
    /// `wb` readable for one weight block; AVX2 available.
    unsafe fn w(wb: *const u8) -> [__m256i; 2];
    /// The prepared activation block.
    ///
    /// # Safety
    /// `xb` readable for one activation block; AVX2 available.
    unsafe fn y(xb: *const u8) -> [__m256i; 2];
    /// The eight lane sums of a prepared pair.
    ///
    /// # Safety
    /// AVX2 available.
    unsafe fn lanes(w: [__m256i; 2], y: [__m256i; 2]) -> __m256i;
}

/// Q4_0: `Σ nibble·y − 8 Σ y` in i16 pairs (at most `2·15·127`, `2·8·127`), then i32 lanes.
struct TileQ4_0;
impl Legacy for TileQ4_0 {
    const WS: usize = 18;
    const XS: usize = 34;
    #[inline(always)]
    unsafe fn w(wb: *const u8) -> [__m256i; 2] {
        // SAFETY: caller's contract.
        unsafe { [nibbles32(wb.add(2)), _mm256_setzero_si256()] }
    }
    #[inline(always)]
    unsafe fn y(xb: *const u8) -> [__m256i; 2] {
        // SAFETY: caller's contract.
        unsafe {
            let y = load32(xb.add(2));
            [y, _mm256_maddubs_epi16(_mm256_set1_epi8(8), y)]
        }
    }
    #[inline(always)]
    unsafe fn lanes(w: [__m256i; 2], y: [__m256i; 2]) -> __m256i {
        // SAFETY: register-only intrinsics.
        unsafe {
            let p = _mm256_sub_epi16(_mm256_maddubs_epi16(w[0], y[0]), y[1]);
            _mm256_madd_epi16(p, _mm256_set1_epi16(1))
        }
    }
}

/// Q5_0: `q = nibble | fifth bit << 4` (0..=31), `Σ q·y − 16 Σ y` in i16 pairs (at most
/// `2·31·127`; the difference at most `2·16·127`), then i32 lanes.
struct TileQ5_0;
impl Legacy for TileQ5_0 {
    const WS: usize = 22;
    const XS: usize = 34;
    #[inline(always)]
    unsafe fn w(wb: *const u8) -> [__m256i; 2] {
        // SAFETY: caller's contract.
        unsafe { [q5_weights(wb.add(2), wb.add(6)), _mm256_setzero_si256()] }
    }
    #[inline(always)]
    unsafe fn y(xb: *const u8) -> [__m256i; 2] {
        // SAFETY: caller's contract.
        unsafe {
            let y = load32(xb.add(2));
            [y, _mm256_maddubs_epi16(_mm256_set1_epi8(16), y)]
        }
    }
    #[inline(always)]
    unsafe fn lanes(w: [__m256i; 2], y: [__m256i; 2]) -> __m256i {
        // SAFETY: caller's contract.
        unsafe { TileQ4_0::lanes(w, y) }
    }
}

/// Q8_0: signed × signed with the sign trick, `|w|` prepared once.
struct TileQ8_0;
impl Legacy for TileQ8_0 {
    const WS: usize = 34;
    const XS: usize = 34;
    #[inline(always)]
    unsafe fn w(wb: *const u8) -> [__m256i; 2] {
        // SAFETY: caller's contract.
        unsafe {
            let q = load32(wb.add(2));
            [_mm256_sign_epi8(q, q), q]
        }
    }
    #[inline(always)]
    unsafe fn y(xb: *const u8) -> [__m256i; 2] {
        // SAFETY: caller's contract.
        unsafe { [load32(xb.add(2)), _mm256_setzero_si256()] }
    }
    #[inline(always)]
    unsafe fn lanes(w: [__m256i; 2], y: [__m256i; 2]) -> __m256i {
        // SAFETY: register-only intrinsics.
        unsafe {
            let p = _mm256_maddubs_epi16(w[0], _mm256_sign_epi8(y[0], w[1]));
            _mm256_madd_epi16(p, _mm256_set1_epi16(1))
        }
    }
}

/// IQ4_NL (tinyBLAS's order): grid values, then as Q8_0.
struct TileIq4Nl;
impl Legacy for TileIq4Nl {
    const WS: usize = 18;
    const XS: usize = 34;
    #[inline(always)]
    unsafe fn w(wb: *const u8) -> [__m256i; 2] {
        // SAFETY: caller's contract.
        unsafe {
            let q = _mm256_shuffle_epi8(iq4nl_table(), nibbles32(wb.add(2)));
            [_mm256_sign_epi8(q, q), q]
        }
    }
    #[inline(always)]
    unsafe fn y(xb: *const u8) -> [__m256i; 2] {
        // SAFETY: caller's contract.
        unsafe { TileQ8_0::y(xb) }
    }
    #[inline(always)]
    unsafe fn lanes(w: [__m256i; 2], y: [__m256i; 2]) -> __m256i {
        // SAFETY: caller's contract.
        unsafe { TileQ8_0::lanes(w, y) }
    }
}

/// Q4_1 (× Q8_1): `Σ nibble·y` (pairs at most `2·15·127`).
struct TileQ4_1;
impl Legacy for TileQ4_1 {
    const WS: usize = 20;
    const XS: usize = 36;
    #[inline(always)]
    unsafe fn w(wb: *const u8) -> [__m256i; 2] {
        // SAFETY: caller's contract.
        unsafe { [nibbles32(wb.add(4)), _mm256_setzero_si256()] }
    }
    #[inline(always)]
    unsafe fn y(xb: *const u8) -> [__m256i; 2] {
        // SAFETY: caller's contract.
        unsafe { [load32(xb.add(4)), _mm256_setzero_si256()] }
    }
    #[inline(always)]
    unsafe fn lanes(w: [__m256i; 2], y: [__m256i; 2]) -> __m256i {
        // SAFETY: register-only intrinsics.
        unsafe { dot_u8i8(w[0], y[0]) }
    }
}

/// Q5_1 (× Q8_1): `q = nibble | fifth bit << 4`, `Σ q·y` (pairs at most `2·31·127`).
struct TileQ5_1;
impl Legacy for TileQ5_1 {
    const WS: usize = 24;
    const XS: usize = 36;
    #[inline(always)]
    unsafe fn w(wb: *const u8) -> [__m256i; 2] {
        // SAFETY: caller's contract.
        unsafe { [q5_weights(wb.add(4), wb.add(8)), _mm256_setzero_si256()] }
    }
    #[inline(always)]
    unsafe fn y(xb: *const u8) -> [__m256i; 2] {
        // SAFETY: caller's contract.
        unsafe { TileQ4_1::y(xb) }
    }
    #[inline(always)]
    unsafe fn lanes(w: [__m256i; 2], y: [__m256i; 2]) -> __m256i {
        // SAFETY: caller's contract.
        unsafe { TileQ4_1::lanes(w, y) }
    }
}

/// `R` weight rows (at `w + r wrb`) × `T` activation rows (at `x + t xrb`), `nb` blocks
/// each, into `out[r os + t]`, every element exactly as the reference defines it: per block
/// `acc = fma(lanes, d_w·d_x, acc)` on eight lanes (and, with Q8_1 activations,
/// `summs = fma(m_w, s_x, summs)`), then `hsum8(acc)` (`+ summs`). A weight block is
/// prepared once for the `T` tokens and an activation block once for the `R` rows; the
/// `d_w·d_x` products of each group of eight blocks are formed with one multiplication per
/// row and token up front, so the block loop broadcasts them from memory.
///
/// # Safety
/// The rows hold `nb` blocks of `F`'s formats; `out` writable at those `R × T` places; AVX2,
/// FMA, F16C available.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn legacy_tile<F: Legacy, const R: usize, const T: usize>(
    w: *const u8,
    wrb: usize,
    x: *const u8,
    xrb: usize,
    nb: usize,
    out: *mut f32,
    os: usize,
) {
    let mins = F::XS == 36;
    // SAFETY: block `i` of weight row `r` is `F::WS` bytes at `w + r wrb + F::WS i`, of
    // activation row `t` `F::XS` bytes at `x + t xrb + F::XS i`; all loads stay inside them.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); T]; R];
        let mut summs = [[0.0f32; T]; R];
        // d_w d_x per row, token and block of a group of eight blocks; m_w per row, s_x per
        // token (small: these arrays are set up once per tile).
        let mut ds = [[[0.0f32; 8]; T]; R];
        let mut ms = [[0.0f32; 8]; R];
        let mut ss = [[0.0f32; 8]; T];
        let mut i0 = 0;
        while i0 < nb {
            let cn = 8.min(nb - i0);
            if cn == 8 {
                let mut dx = [_mm256_setzero_ps(); T];
                unroll_rows!(T, |t| {
                    let xk = x.add(t * xrb + F::XS * i0);
                    dx[t] = f16x8(xk, F::XS);
                    if mins {
                        _mm256_storeu_ps(ss[t].as_mut_ptr(), f16x8(xk.add(2), F::XS));
                    }
                });
                unroll_rows!(R, |r| {
                    let wk = w.add(r * wrb + F::WS * i0);
                    let dw = f16x8(wk, F::WS);
                    if mins {
                        _mm256_storeu_ps(ms[r].as_mut_ptr(), f16x8(wk.add(2), F::WS));
                    }
                    unroll_rows!(T, |t| {
                        _mm256_storeu_ps(ds[r][t].as_mut_ptr(), _mm256_mul_ps(dw, dx[t]));
                    });
                });
            } else {
                for k in 0..cn {
                    for t in 0..T {
                        let xk = x.add(t * xrb + F::XS * (i0 + k));
                        if mins {
                            ss[t][k] = f16_at(xk.add(2));
                        }
                        for r in 0..R {
                            let wk = w.add(r * wrb + F::WS * (i0 + k));
                            ds[r][t][k] = f16_at(wk) * f16_at(xk);
                            if mins {
                                ms[r][k] = f16_at(wk.add(2));
                            }
                        }
                    }
                }
            }
            for kk in 0..cn {
                let i = i0 + kk;
                let mut wq = [[_mm256_setzero_si256(); 2]; R];
                unroll_rows!(R, |r| {
                    wq[r] = F::w(w.add(r * wrb + F::WS * i));
                });
                unroll_rows!(T, |t| {
                    let y = F::y(x.add(t * xrb + F::XS * i));
                    unroll_rows!(R, |r| {
                        let s = F::lanes(wq[r], y);
                        let d = _mm256_broadcast_ss(&ds[r][t][kk]);
                        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc[r][t]);
                        if mins {
                            summs[r][t] = ms[r][kk].mul_add(ss[t][kk], summs[r][t]);
                        }
                    });
                });
            }
            i0 += cn;
        }
        unroll_rows!(R, |r| {
            unroll_rows!(T, |t| {
                let mut v = hsum_ps(acc[r][t]);
                if mins {
                    v += summs[r][t];
                }
                *out.add(r * os + t) = v;
            });
        });
    }
}

/// Tokens per pass of [`legacy_panel`] (the size of its accumulator buffer).
const PANEL_T: usize = 64;

/// The accumulators of [`legacy_panel`]: per token, the eight-lane sums and the `m_w s_x`
/// sums of its `R` rows.
struct PanelAcc<const R: usize> {
    acc: [[__m256; R]; PANEL_T],
    summs: [[f32; R]; PANEL_T],
}

/// One group of at most eight blocks of [`legacy_panel`] for tokens `t0 .. t0 + T`: the
/// accumulators come from and go back to `pa`, the prepared weight blocks are `wq`, their
/// `d_w` (and `m_w`) `dw`, `mw` (eight per row when `cn == 8`, else scalars in `dws`, `mws`).
///
/// # Safety
/// As [`legacy_panel`]'s; `t0 + T <= PANEL_T`, tokens `t0 .. t0 + T` exist.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn legacy_panel_group<F: Legacy, const R: usize, const T: usize>(
    x: *const u8,
    xrb: usize,
    i0: usize,
    cn: usize,
    t0: usize,
    wq: &[[[__m256i; 2]; R]; 8],
    dw: &[[f32; 8]; R],
    mw: &[[f32; 8]; R],
    pa: &mut PanelAcc<R>,
) {
    let mins = F::XS == 36;
    // SAFETY: activation block `i0 + k` (`k < cn`) of tokens `t0 .. t0 + T` is inside `x`
    // (caller's contract); the rest is stack memory.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); T]; R];
        let mut summs = [[0.0f32; T]; R];
        unroll_rows!(R, |r| {
            unroll_rows!(T, |t| {
                acc[r][t] = pa.acc[t0 + t][r];
                summs[r][t] = pa.summs[t0 + t][r];
            });
        });
        let mut ds = [[[0.0f32; 8]; T]; R];
        let mut ss = [[0.0f32; 8]; T];
        if cn == 8 {
            unroll_rows!(T, |t| {
                let xk = x.add((t0 + t) * xrb + F::XS * i0);
                let dx = f16x8(xk, F::XS);
                if mins {
                    _mm256_storeu_ps(ss[t].as_mut_ptr(), f16x8(xk.add(2), F::XS));
                }
                unroll_rows!(R, |r| {
                    let d = _mm256_mul_ps(_mm256_loadu_ps(dw[r].as_ptr()), dx);
                    _mm256_storeu_ps(ds[r][t].as_mut_ptr(), d);
                });
            });
        } else {
            for k in 0..cn {
                for t in 0..T {
                    let xk = x.add((t0 + t) * xrb + F::XS * (i0 + k));
                    if mins {
                        ss[t][k] = f16_at(xk.add(2));
                    }
                    let dx = f16_at(xk);
                    for r in 0..R {
                        ds[r][t][k] = dw[r][k] * dx;
                    }
                }
            }
        }
        for kk in 0..cn {
            let i = i0 + kk;
            unroll_rows!(T, |t| {
                let y = F::y(x.add((t0 + t) * xrb + F::XS * i));
                unroll_rows!(R, |r| {
                    let s = F::lanes(wq[kk][r], y);
                    let d = _mm256_broadcast_ss(&ds[r][t][kk]);
                    acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc[r][t]);
                    if mins {
                        summs[r][t] = mw[r][kk].mul_add(ss[t][kk], summs[r][t]);
                    }
                });
            });
        }
        unroll_rows!(R, |r| {
            unroll_rows!(T, |t| {
                pa.acc[t0 + t][r] = acc[r][t];
                pa.summs[t0 + t][r] = summs[r][t];
            });
        });
    }
}

/// `R` weight rows (at `w + r wrb`) × `n_x ≤ PANEL_T` activation rows (at `x + t xrb`), `nb`
/// blocks each, into `out[r os + t]`, every element exactly as the reference defines it (see
/// [`legacy_tile`]). The blocks go in groups of eight: each weight block is prepared once for
/// all the tokens, then the tokens go by four at a time with their accumulators loaded from
/// and stored back to a stack buffer.
///
/// # Safety
/// As [`legacy_tile`]'s, with `n_x` tokens.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn legacy_panel<F: Legacy, const R: usize>(
    w: *const u8,
    wrb: usize,
    x: *const u8,
    xrb: usize,
    nb: usize,
    n_x: usize,
    out: *mut f32,
    os: usize,
) {
    let mins = F::XS == 36;
    // SAFETY: weight block `i` of row `r` is `F::WS` bytes at `w + r wrb + F::WS i`; the
    // groups read tokens `< n_x`; the outputs are inside `out` (caller's contract).
    unsafe {
        let mut pa = PanelAcc::<R> {
            acc: [[_mm256_setzero_ps(); R]; PANEL_T],
            summs: [[0.0f32; R]; PANEL_T],
        };
        let mut wq = [[[_mm256_setzero_si256(); 2]; R]; 8];
        let mut dw = [[0.0f32; 8]; R];
        let mut mw = [[0.0f32; 8]; R];
        let mut i0 = 0;
        while i0 < nb {
            let cn = 8.min(nb - i0);
            for (k, wqk) in wq.iter_mut().enumerate().take(cn) {
                unroll_rows!(R, |r| {
                    wqk[r] = F::w(w.add(r * wrb + F::WS * (i0 + k)));
                });
            }
            unroll_rows!(R, |r| {
                let wk = w.add(r * wrb + F::WS * i0);
                if cn == 8 {
                    _mm256_storeu_ps(dw[r].as_mut_ptr(), f16x8(wk, F::WS));
                    if mins {
                        _mm256_storeu_ps(mw[r].as_mut_ptr(), f16x8(wk.add(2), F::WS));
                    }
                } else {
                    for k in 0..cn {
                        dw[r][k] = f16_at(wk.add(F::WS * k));
                        if mins {
                            mw[r][k] = f16_at(wk.add(F::WS * k + 2));
                        }
                    }
                }
            });
            let mut t0 = 0;
            while t0 < n_x {
                let nt = (n_x - t0).min(4);
                match nt {
                    4 => legacy_panel_group::<F, R, 4>(x, xrb, i0, cn, t0, &wq, &dw, &mw, &mut pa),
                    3 => legacy_panel_group::<F, R, 3>(x, xrb, i0, cn, t0, &wq, &dw, &mw, &mut pa),
                    2 => legacy_panel_group::<F, R, 2>(x, xrb, i0, cn, t0, &wq, &dw, &mw, &mut pa),
                    _ => legacy_panel_group::<F, R, 1>(x, xrb, i0, cn, t0, &wq, &dw, &mw, &mut pa),
                }
                t0 += nt;
            }
            i0 += cn;
        }
        for t in 0..n_x {
            unroll_rows!(R, |r| {
                let mut v = hsum_ps(pa.acc[t][r]);
                if mins {
                    v += pa.summs[t][r];
                }
                *out.add(r * os + t) = v;
            });
        }
    }
}

/// Rows per tile of [`legacy_tiles`].
const TILE_R: usize = 2;
/// Tokens per tile of [`legacy_tiles`].
const TILE_T: usize = 4;

/// The batch driver of the 32-element formats (a [`DotRowsFn`](super::super::DotRowsFn)'s
/// work for two or more activation rows). With Q8_0 activations: panels of two rows × up to
/// [`PANEL_T`] tokens ([`legacy_panel`], each weight block prepared once for all the tokens).
/// With Q8_1 activations: tiles of [`TILE_R`] rows × [`TILE_T`] tokens ([`legacy_tile`]),
/// tokens outermost so that a tile's activations stay in L1 while the rows go by. Smaller
/// panels and tiles at the edges.
///
/// # Safety
/// `w` holds `rows` rows of `wrb` bytes, `x` `n_x` rows of `xrb` bytes, each `nb` blocks of
/// `F`'s formats; `out` holds `(rows − 1) os + n_x` floats (as `check_rows` ensures); AVX2,
/// FMA, F16C available.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn legacy_tiles<F: Legacy>(
    w: &[u8],
    wrb: usize,
    x: &[u8],
    xrb: usize,
    out: &mut [f32],
    os: usize,
    (nb, rows, n_x): (usize, usize, usize),
) {
    let (w, x, o) = (w.as_ptr(), x.as_ptr(), out.as_mut_ptr());
    // Panels for the Q8_0-activation formats (measured: 7% faster on Gemma 3's Q5_0/Q8_0
    // matrices); tiles for Q4_1/Q5_1 (their panels measured 14% slower on SmolLM2's Q4_1:
    // the weight preparation saved is small and the m_w s_x sums add buffer traffic).
    if F::XS == 34 {
        let mut t0 = 0;
        while t0 < n_x {
            let nt = (n_x - t0).min(PANEL_T);
            let mut r0 = 0;
            while r0 < rows {
                let nr = (rows - r0).min(2);
                // SAFETY: rows `r0 .. r0 + nr` and tokens `t0 .. t0 + nt` are in range.
                unsafe {
                    let (wr, xt, ot) = (w.add(r0 * wrb), x.add(t0 * xrb), o.add(r0 * os + t0));
                    if nr == 2 {
                        legacy_panel::<F, 2>(wr, wrb, xt, xrb, nb, nt, ot, os);
                    } else {
                        legacy_panel::<F, 1>(wr, wrb, xt, xrb, nb, nt, ot, os);
                    }
                }
                r0 += nr;
            }
            t0 += nt;
        }
        return;
    }
    let mut t0 = 0;
    while t0 < n_x {
        let nt = (n_x - t0).min(TILE_T);
        let mut r0 = 0;
        while r0 < rows {
            let nr = (rows - r0).min(TILE_R);
            // SAFETY: rows `r0 .. r0 + nr` and tokens `t0 .. t0 + nt` are in range, so the
            // tile's reads and writes are inside the buffers (caller's contract).
            unsafe {
                let (wr, xt, ot) = (w.add(r0 * wrb), x.add(t0 * xrb), o.add(r0 * os + t0));
                match (nr, nt) {
                    (2, 4) => legacy_tile::<F, 2, 4>(wr, wrb, xt, xrb, nb, ot, os),
                    (2, 3) => legacy_tile::<F, 2, 3>(wr, wrb, xt, xrb, nb, ot, os),
                    (2, 2) => legacy_tile::<F, 2, 2>(wr, wrb, xt, xrb, nb, ot, os),
                    (2, _) => legacy_tile::<F, 2, 1>(wr, wrb, xt, xrb, nb, ot, os),
                    (_, 4) => legacy_tile::<F, 1, 4>(wr, wrb, xt, xrb, nb, ot, os),
                    (_, 3) => legacy_tile::<F, 1, 3>(wr, wrb, xt, xrb, nb, ot, os),
                    (_, 2) => legacy_tile::<F, 1, 2>(wr, wrb, xt, xrb, nb, ot, os),
                    _ => legacy_tile::<F, 1, 1>(wr, wrb, xt, xrb, nb, ot, os),
                }
            }
            r0 += nr;
        }
        t0 += nt;
    }
}

// ---------------------------------------------------------------------------------------------
// K-quants × Q8_K. Q8_K block (292 bytes): d f32 at 0, qs at 4, bsums (16 × i16) at 260.
// ---------------------------------------------------------------------------------------------

/// Byte offsets in a Q8_K block.
const Q8K_QS: usize = 4;
const Q8K_BSUMS: usize = 260;

/// Reads the f32 `d` of the Q8_K block at `p`.
///
/// # Safety
/// `p` readable for 4 bytes.
#[inline(always)]
unsafe fn q8k_d(p: *const u8) -> f32 {
    // SAFETY: caller's contract.
    unsafe { p.cast::<f32>().read_unaligned() }
}

/// `vpshufb` controls that broadcast i16 lane `k` of a 128-bit lane to all eight i16 lanes.
/// Entry `k` (`0..8`) is two bytes `2k, 2k+1` repeated.
#[inline(always)]
fn splat_i16_control(k: usize) -> i64 {
    let pair = ((2 * k + 1) << 8 | (2 * k)) as i64;
    pair | pair << 16 | pair << 32 | pair << 48
}

/// A vector of 16 i16 whose low 8 lanes are `s[a]` and high 8 lanes are `s[b]`, where `s` is
/// the 8 i16 in `scales` (in both 128-bit lanes).
///
/// # Safety
/// AVX2 available.
#[inline(always)]
unsafe fn scale_pair(scales: __m256i, a: usize, b: usize) -> __m256i {
    // SAFETY: register-only intrinsics.
    unsafe {
        let ca = splat_i16_control(a);
        let cb = splat_i16_control(b);
        _mm256_shuffle_epi8(scales, _mm256_set_epi64x(cb, cb, ca, ca))
    }
}

/// Q2_K × Q8_K.
///
/// # Safety
/// `w`: `nb` Q2_K blocks (84 bytes: scales 0, qs 16, d 80, dmin 82), `x`: `nb` Q8_K blocks;
/// AVX2, FMA, F16C available.
#[inline(always)]
unsafe fn dot_q2_k(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` of `w` is bytes `84 i ..`, of `x` `292 i ..`; loads stay inside.
    unsafe {
        let m3 = _mm256_set1_epi8(3);
        let m4 = _mm_set1_epi8(0x0F);
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm256_setzero_ps();
        for i in 0..nb {
            let (wb, xb) = (w.add(84 * i), x.add(292 * i));
            // [d yd, dmin yd] through memory, so that each is a broadcast load.
            let mut dd = [0.0f32; 4];
            _mm_storeu_ps(
                dd.as_mut_ptr(),
                _mm_mul_ps(f16x2(wb.add(80)), _mm_set1_ps(q8k_d(xb))),
            );
            let sc = load16(wb);
            // Mins: Σ_g bsums[g] * (scales[g] >> 4).
            let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
            let bsums = load32(xb.add(Q8K_BSUMS));
            let summs = _mm256_cvtepi32_ps(_mm256_madd_epi16(mins, bsums));
            acc_m = _mm256_fmadd_ps(_mm256_broadcast_ss(&dd[1]), summs, acc_m);
            // Scales (low nibbles) as i16: groups 0..8 in `s_lo`, 8..16 in `s_hi`.
            let s16 = _mm256_cvtepu8_epi16(_mm_and_si128(sc, m4));
            let s_lo = _mm256_permute2x128_si256(s16, s16, 0x00);
            let s_hi = _mm256_permute2x128_si256(s16, s16, 0x11);
            let mut sumi = _mm256_setzero_si256();
            for k in 0..2 {
                let q2 = load32(wb.add(16 + 32 * k));
                let sv = if k == 0 { s_lo } else { s_hi };
                for j in 0..4 {
                    let q = _mm256_and_si256(srl16(q2, 2 * j as i32), m3);
                    let y = load32(xb.add(Q8K_QS + 128 * k + 32 * j));
                    let p = _mm256_maddubs_epi16(q, y);
                    let p = _mm256_madd_epi16(p, scale_pair(sv, 2 * j, 2 * j + 1));
                    sumi = _mm256_add_epi32(sumi, p);
                }
            }
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&dd[0]), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_ps(_mm256_sub_ps(acc, acc_m))
    }
}

/// Unpacks Q3_K's 12 scale bytes to sixteen i16 `scale - 32`: groups 0..8 in the first
/// vector's lanes (both 128-bit halves), 8..16 in the second.
///
/// # Safety
/// `p` readable for 12 bytes; AVX2 available.
#[inline(always)]
unsafe fn q3k_scales16(p: *const u8) -> (__m256i, __m256i) {
    // SAFETY: `p` readable for 12 bytes; the rest is register work.
    unsafe {
        let packed: [u8; 12] = p.cast::<[u8; 12]>().read_unaligned();
        let s = crate::kernels::scalar::q3k_scales(&packed);
        let v = _mm_sub_epi8(load16(s.as_ptr()), _mm_set1_epi8(32));
        let v16 = _mm256_cvtepi8_epi16(v);
        (
            _mm256_permute2x128_si256(v16, v16, 0x00),
            _mm256_permute2x128_si256(v16, v16, 0x11),
        )
    }
}

/// Q3_K × Q8_K: q' = low 2 bits | hmask bit << 2 in 0..8 (the value is q' − 4), so
/// `Σ_g s_g (Σ q' y − 4 bsum_g)`.
///
/// # Safety
/// `w`: `nb` Q3_K blocks (110 bytes: hmask 0, qs 32, scales 96, d 108), `x`: `nb` Q8_K blocks;
/// AVX2, FMA, F16C available.
#[inline(always)]
unsafe fn dot_q3_k(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` of `w` is bytes `110 i ..`, of `x` `292 i ..`; loads stay inside.
    unsafe {
        let m3 = _mm256_set1_epi8(3);
        let one = _mm256_set1_epi8(1);
        let mut acc = _mm256_setzero_ps();
        for i in 0..nb {
            let (wb, xb) = (w.add(110 * i), x.add(292 * i));
            let d = f16_at(wb.add(108)) * q8k_d(xb);
            let (s_lo, s_hi) = q3k_scales16(wb.add(96));
            // Offset: 4 Σ_g s_g bsums_g.
            let bsums = load32(xb.add(Q8K_BSUMS));
            let s_all = _mm256_permute2x128_si256(s_lo, s_hi, 0x20);
            let corr = _mm256_slli_epi32(_mm256_madd_epi16(s_all, bsums), 2);
            let hm = load32(wb);
            let mut sumi = _mm256_sub_epi32(_mm256_setzero_si256(), corr);
            for h in 0..2 {
                let q3 = load32(wb.add(32 + 32 * h));
                let sv = if h == 0 { s_lo } else { s_hi };
                for s in 0..4 {
                    let lo = _mm256_and_si256(srl16(q3, 2 * s as i32), m3);
                    let hb = _mm256_and_si256(srl16(hm, (4 * h + s) as i32), one);
                    let q = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
                    let y = load32(xb.add(Q8K_QS + 128 * h + 32 * s));
                    let p = _mm256_maddubs_epi16(q, y);
                    let p = _mm256_madd_epi16(p, scale_pair(sv, 2 * s, 2 * s + 1));
                    sumi = _mm256_add_epi32(sumi, p);
                }
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_ps(acc)
    }
}

/// Q4_K / Q5_K scales and mins as i16 (8 each): `(scales in both 128-bit lanes, mins)`.
///
/// # Safety
/// `p` readable for 12 bytes; AVX2 available.
#[inline(always)]
unsafe fn k4_scales16(p: *const u8) -> (__m256i, __m128i) {
    // SAFETY: `p` readable for 12 bytes; the rest is register work.
    unsafe {
        let packed: [u8; 12] = p.cast::<[u8; 12]>().read_unaligned();
        let (sc, mn) = crate::kernels::scalar::k4_scales_mins(&packed);
        let sc = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(i64::from_le_bytes(sc)));
        let mn = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(i64::from_le_bytes(mn)));
        (_mm256_broadcastsi128_si256(sc), mn)
    }
}

/// `Σ_g mins[g] (bsums[2g] + bsums[2g+1])` for the Q4_K / Q5_K min term, as 4 i32 lanes to
/// be added.
///
/// # Safety
/// `bsums` readable for 32 bytes; AVX2 available.
#[inline(always)]
unsafe fn k4_min_sum(mins: __m128i, bsums: *const u8) -> __m128i {
    // SAFETY: caller's contract.
    unsafe {
        let b = load32(bsums);
        // Pairwise sums of the 16 bsums: [b0+b1, b2+b3, ...] (8 × i16, fits: |bsum| ≤ 2032).
        let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
        _mm_madd_epi16(pairs, mins)
    }
}

/// The integer part of a Q4_K (`Q5 = false`; 144 bytes: d 0, dmin 2, scales 4, qs 16) or
/// Q5_K (`Q5 = true`; 176 bytes: d 0, dmin 2, scales 4, qh 16, qs 48) block against a Q8_K
/// block: per 64-element pair of groups `j`, eight i32 lanes (lane `m`:
/// `sc[2j]·Σ_{t<4} q·y` over the elements `64j + 4m + t`, plus `sc[2j+1]·…` over
/// `64j + 32 + 4m + t`), and the min sums in four lanes (lane `p`:
/// `m[2p]·B[2p] + m[2p+1]·B[2p+1]`, `B` the 32-element activation sums). All exact.
///
/// # Safety
/// `wb` readable for one block, `xb` for one Q8_K block; AVX2 available.
#[inline(always)]
unsafe fn k4_block<const Q5: bool>(wb: *const u8, xb: *const u8) -> ([__m256i; 4], __m128i) {
    // SAFETY: every load stays inside the two blocks (offsets above).
    unsafe {
        let m4 = _mm256_set1_epi8(0x0F);
        let one = _mm256_set1_epi8(1);
        let (sc, mn) = k4_scales16(wb.add(4));
        let mins = k4_min_sum(mn, xb.add(Q8K_BSUMS));
        let qh = if Q5 {
            load32(wb.add(16))
        } else {
            _mm256_setzero_si256()
        };
        let qs = wb.add(if Q5 { 48 } else { 16 });
        let mut s = [_mm256_setzero_si256(); 4];
        for (j, s) in s.iter_mut().enumerate() {
            let q4 = load32(qs.add(32 * j));
            let mut lo = _mm256_and_si256(q4, m4);
            let mut hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            if Q5 {
                let h0 = _mm256_and_si256(srl16(qh, 2 * j as i32), one);
                let h1 = _mm256_and_si256(srl16(qh, 2 * j as i32 + 1), one);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(h0, 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(h1, 4));
            }
            let y0 = load32(xb.add(Q8K_QS + 64 * j));
            let y1 = load32(xb.add(Q8K_QS + 64 * j + 32));
            let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), scale_pair(sc, 2 * j, 2 * j));
            let p1 = _mm256_madd_epi16(
                _mm256_maddubs_epi16(hi, y1),
                scale_pair(sc, 2 * j + 1, 2 * j + 1),
            );
            *s = _mm256_add_epi32(p0, p1);
        }
        (s, mins)
    }
}

/// `[Σ lanes of s[0], Σ s[1], Σ s[2], Σ s[3]]` (exact integer sums).
///
/// # Safety
/// AVX2 available.
#[inline(always)]
unsafe fn reduce4(s: [__m256i; 4]) -> [i32; 4] {
    // SAFETY: register-only intrinsics, then a store to a local array.
    unsafe {
        let h = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
        let v = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        let mut out = [0i32; 4];
        _mm_storeu_si128(out.as_mut_ptr().cast(), v);
        out
    }
}

/// The sum of four i32 lanes.
///
/// # Safety
/// AVX2 available.
#[inline(always)]
unsafe fn hsum4_epi32(v: __m128i) -> i32 {
    // SAFETY: register-only intrinsics.
    unsafe {
        let v = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
        let v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0b01));
        _mm_cvtsi128_si32(v)
    }
}

/// Q4_K × Q8_K in the reference's order (`scalar::dot_q4_k`, llama.cpp's x86 `vec_dot`): per
/// block, the eight lanes of [`k4_block`] summed and accumulated with one FMA by `d_w d_x`;
/// the four min lanes with one FMA by `−d_x dmin_w`; `hsum8` plus `(a0 + a2) + (a1 + a3)`.
///
/// # Safety
/// `w`: `nb` Q4_K blocks, `x`: `nb` Q8_K blocks; AVX2, FMA, F16C available.
#[inline(always)]
pub(super) unsafe fn dot_q4_k(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` of `w` is bytes `144 i ..`, of `x` `292 i ..`; loads stay inside.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm_setzero_ps();
        for i in 0..nb {
            let (wb, xb) = (w.add(144 * i), x.add(292 * i));
            let yd = q8k_d(xb);
            let dm = f16x2(wb);
            let d = _mm_cvtss_f32(dm) * yd;
            let dmin = -yd * _mm_cvtss_f32(_mm_movehdup_ps(dm));
            let (s, mins) = k4_block::<false>(wb, xb);
            acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(mins), acc_m);
            let sumi = _mm256_add_epi32(_mm256_add_epi32(s[0], s[1]), _mm256_add_epi32(s[2], s[3]));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        let mut m = [0.0f32; 4];
        _mm_storeu_ps(m.as_mut_ptr(), acc_m);
        hsum_ps(acc) + ((m[0] + m[2]) + (m[1] + m[3]))
    }
}

/// Q5_K × Q8_K in the reference's order (`scalar::dot_q5_k`): eight lanes as in [`dot_q4_k`]
/// with 5-bit weights, the mins as one integer added with `summs = fma(−d_x dmin_w, Σ, summs)`;
/// `hsum8(acc) + summs`.
///
/// # Safety
/// `w`: `nb` Q5_K blocks, `x`: `nb` Q8_K blocks; AVX2, FMA, F16C available.
#[inline(always)]
pub(super) unsafe fn dot_q5_k(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` of `w` is bytes `176 i ..`, of `x` `292 i ..`; loads stay inside.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0.0f32;
        for i in 0..nb {
            let (wb, xb) = (w.add(176 * i), x.add(292 * i));
            let yd = q8k_d(xb);
            let dm = f16x2(wb);
            let d = _mm_cvtss_f32(dm) * yd;
            let dmin = -yd * _mm_cvtss_f32(_mm_movehdup_ps(dm));
            let (s, mins) = k4_block::<true>(wb, xb);
            summs = dmin.mul_add(hsum4_epi32(mins) as f32, summs);
            let sumi = _mm256_add_epi32(_mm256_add_epi32(s[0], s[1]), _mm256_add_epi32(s[2], s[3]));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_ps(acc) + summs
    }
}

/// Which of llama.cpp's batch code paths a Q4_K / Q5_K path kernel rounds like.
const GEMV: u8 = 0;
const GEMM: u8 = 1;
const TILED: u8 = 2;

/// Q4_K (`Q5 = false`) or Q5_K × Q8_K as one of llama.cpp's batch paths rounds it:
/// `GEMV` = `scalar::dot_q4_k_8x8_gemv`, `GEMM` = `scalar::dot_q4_k_8x8_gemm`, `TILED` =
/// `scalar::dot_q4_k_tiled` / `dot_q5_k_tiled`. The integer sums come from [`k4_block`].
///
/// # Safety
/// `w`: `nb` blocks, `x`: `nb` Q8_K blocks; AVX2, FMA, F16C available.
#[inline(always)]
unsafe fn dot_k4_path<const Q5: bool, const PATH: u8>(
    w: *const u8,
    x: *const u8,
    nb: usize,
) -> f32 {
    let bs = if Q5 { 176 } else { 144 };
    // SAFETY: block `i` of `w` is bytes `bs i ..`, of `x` `292 i ..`; loads stay inside.
    unsafe {
        let mut acc = 0.0f32;
        let mut acc_m = 0.0f32;
        for i in 0..nb {
            let (wb, xb) = (w.add(bs * i), x.add(292 * i));
            let yd = q8k_d(xb);
            let (dw, dminw) = (f16_at(wb), f16_at(wb.add(2)));
            let (s, mins) = k4_block::<Q5>(wb, xb);
            let isums = reduce4(s);
            match PATH {
                GEMM => {
                    let mut m = [0i32; 4];
                    _mm_storeu_si128(m.as_mut_ptr().cast(), mins);
                    let (dd, dm) = (dw * yd, dminw * yd);
                    for sb in 0..4 {
                        acc = (isums[sb] as f32).mul_add(dd, acc);
                        acc_m = (m[sb] as f32).mul_add(dm, acc_m);
                    }
                }
                _ => {
                    let isum = isums[0] + isums[1] + isums[2] + isums[3];
                    let imin = hsum4_epi32(mins);
                    if PATH == GEMV {
                        acc = (isum as f32).mul_add(dw * yd, acc);
                        acc_m = (imin as f32).mul_add(dminw * yd, acc_m);
                    } else {
                        let r = (-dminw).mul_add(imin as f32, isum as f32 * dw);
                        acc = r.mul_add(yd, acc);
                    }
                }
            }
        }
        acc - acc_m
    }
}

/// [`dot_k4_path`] instances for the row drivers.
///
/// # Safety
/// As [`dot_k4_path`]'s.
#[inline(always)]
unsafe fn dot_q4_k_gemv(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: caller's contract.
    unsafe { dot_k4_path::<false, GEMV>(w, x, nb) }
}

/// See [`dot_q4_k_gemv`].
///
/// # Safety
/// As [`dot_k4_path`]'s.
#[inline(always)]
unsafe fn dot_q4_k_gemm(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: caller's contract.
    unsafe { dot_k4_path::<false, GEMM>(w, x, nb) }
}

/// See [`dot_q4_k_gemv`].
///
/// # Safety
/// As [`dot_k4_path`]'s.
#[inline(always)]
unsafe fn dot_q4_k_tiled(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: caller's contract.
    unsafe { dot_k4_path::<false, TILED>(w, x, nb) }
}

/// See [`dot_q4_k_gemv`].
///
/// # Safety
/// As [`dot_k4_path`]'s.
#[inline(always)]
unsafe fn dot_q5_k_tiled(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: caller's contract.
    unsafe { dot_k4_path::<true, TILED>(w, x, nb) }
}

// ---------------------------------------------------------------------------------------------
// Batches of the K-quant path kernels: a weight block is unpacked once for all the tokens of
// the call, the tokens' integer sums go through small buffers, and the float steps run on eight
// tokens per vector (each lane one token's scalar chain, the same operations in the same order).
// ---------------------------------------------------------------------------------------------

/// Tokens and rows per pass of [`kq_batch`] (sizes of its stack buffers).
const KQ_T: usize = 64;
const KQ_R: usize = 16;
/// Blocks per chunk of [`kq_batch`] (whose activation scales are gathered once per chunk).
const KQ_C: usize = 8;

/// A K-quant path for [`kq_batch`].
trait KqPath {
    /// Bytes per weight block.
    const WS: usize;
    /// Whether the float step needs the four 64-element sub-block sums (`true`, into `s` and
    /// `m` as four i32 each) or only the block totals (`false`, `s[0]` and `m[0]`).
    const SUB: bool;
    /// The unpacked weight block.
    type W;
    /// Unpacks a weight block.
    ///
    /// # Safety
    /// `wb` readable for one block; AVX2 available.
    unsafe fn prep(wb: *const u8) -> Self::W;
    /// The exact integer sums of a prepared block with the Q8_K block at `xb`, stored to `s`
    /// and `m` (four i32 each when `SUB`, else the totals at `s[0]`, `m[0]`).
    ///
    /// # Safety
    /// `xb` readable for one Q8_K block; `s`, `m` writable for four i32; AVX2 available.
    unsafe fn ints(w: &Self::W, xb: *const u8, s: *mut i32, m: *mut i32);
    /// One block's float step for eight tokens: `acc`, `acc_m` their accumulators, `si`, `mi`
    /// their integer sums (`[sub-block][token]` when `SUB`, else `[token]` in `si[0]`,
    /// `mi[0]`), `yd` their activation scales, `wb` the weight block (for `d`, `dmin`).
    ///
    /// # Safety
    /// `wb` readable for one block; AVX2, FMA, F16C available.
    unsafe fn step(
        wb: *const u8,
        si: [__m256i; 4],
        mi: [__m256i; 4],
        yd: __m256,
        acc: &mut __m256,
        acc_m: &mut __m256,
    );
}

/// Q4_K (`Q5 = false`) / Q5_K on path `PATH` (`GEMV`, `GEMM`, `TILED`), as [`dot_k4_path`].
struct K4Path<const Q5: bool, const PATH: u8>;

/// An unpacked Q4_K / Q5_K block: the 4- or 5-bit weights of the eight 32-element groups
/// (`q[2j]` elements `64j..64j+32`, `q[2j+1]` the next 32), each group's scale in all sixteen
/// i16 lanes, and the eight mins as i16.
struct K4Block {
    q: [__m256i; 8],
    sc: [__m256i; 8],
    mn: __m128i,
}

impl<const Q5: bool, const PATH: u8> KqPath for K4Path<Q5, PATH> {
    const WS: usize = if Q5 { 176 } else { 144 };
    const SUB: bool = PATH == GEMM;
    type W = K4Block;
    #[inline(always)]
    unsafe fn prep(wb: *const u8) -> K4Block {
        // SAFETY: every load stays inside the block (offsets as in `k4_block`).
        unsafe {
            let m4 = _mm256_set1_epi8(0x0F);
            let one = _mm256_set1_epi8(1);
            let (sc, mn) = k4_scales16(wb.add(4));
            let qh = if Q5 {
                load32(wb.add(16))
            } else {
                _mm256_setzero_si256()
            };
            let qs = wb.add(if Q5 { 48 } else { 16 });
            let mut q = [_mm256_setzero_si256(); 8];
            let mut scv = [_mm256_setzero_si256(); 8];
            for j in 0..4 {
                let q4 = load32(qs.add(32 * j));
                let mut lo = _mm256_and_si256(q4, m4);
                let mut hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
                if Q5 {
                    let h0 = _mm256_and_si256(srl16(qh, 2 * j as i32), one);
                    let h1 = _mm256_and_si256(srl16(qh, 2 * j as i32 + 1), one);
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(h0, 4));
                    hi = _mm256_or_si256(hi, _mm256_slli_epi16(h1, 4));
                }
                q[2 * j] = lo;
                q[2 * j + 1] = hi;
                scv[2 * j] = scale_pair(sc, 2 * j, 2 * j);
                scv[2 * j + 1] = scale_pair(sc, 2 * j + 1, 2 * j + 1);
            }
            K4Block { q, sc: scv, mn }
        }
    }
    #[inline(always)]
    unsafe fn ints(w: &K4Block, xb: *const u8, s: *mut i32, m: *mut i32) {
        // SAFETY: loads inside the Q8_K block; stores to the four i32 at `s`, `m`.
        unsafe {
            let mut v = [_mm256_setzero_si256(); 4];
            for (j, v) in v.iter_mut().enumerate() {
                let y0 = load32(xb.add(Q8K_QS + 64 * j));
                let y1 = load32(xb.add(Q8K_QS + 64 * j + 32));
                let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(w.q[2 * j], y0), w.sc[2 * j]);
                let p1 =
                    _mm256_madd_epi16(_mm256_maddubs_epi16(w.q[2 * j + 1], y1), w.sc[2 * j + 1]);
                *v = _mm256_add_epi32(p0, p1);
            }
            let mins = k4_min_sum(w.mn, xb.add(Q8K_BSUMS));
            if PATH == GEMM {
                _mm_storeu_si128(s.cast(), reduce4v(v));
                _mm_storeu_si128(m.cast(), mins);
            } else {
                let t =
                    _mm256_add_epi32(_mm256_add_epi32(v[0], v[1]), _mm256_add_epi32(v[2], v[3]));
                *s = hsum_epi32(t);
                *m = hsum4_epi32(mins);
            }
        }
    }
    #[inline(always)]
    unsafe fn step(
        wb: *const u8,
        si: [__m256i; 4],
        mi: [__m256i; 4],
        yd: __m256,
        acc: &mut __m256,
        acc_m: &mut __m256,
    ) {
        // SAFETY: reads `d`, `dmin` of the block; the rest is register work.
        unsafe {
            let (dw, dminw) = (f16_at(wb), f16_at(wb.add(2)));
            match PATH {
                GEMM => {
                    let dd = _mm256_mul_ps(_mm256_set1_ps(dw), yd);
                    let dm = _mm256_mul_ps(_mm256_set1_ps(dminw), yd);
                    for sb in 0..4 {
                        *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si[sb]), dd, *acc);
                        *acc_m = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mi[sb]), dm, *acc_m);
                    }
                }
                GEMV => {
                    let dd = _mm256_mul_ps(_mm256_set1_ps(dw), yd);
                    let dm = _mm256_mul_ps(_mm256_set1_ps(dminw), yd);
                    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si[0]), dd, *acc);
                    *acc_m = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mi[0]), dm, *acc_m);
                }
                _ => {
                    let prod = _mm256_mul_ps(_mm256_cvtepi32_ps(si[0]), _mm256_set1_ps(dw));
                    let r =
                        _mm256_fmadd_ps(_mm256_set1_ps(-dminw), _mm256_cvtepi32_ps(mi[0]), prod);
                    *acc = _mm256_fmadd_ps(r, yd, *acc);
                }
            }
        }
    }
}

/// Q6_K on the tiled path, as [`dot_q6_k_tiled`].
struct Q6Tiled;

/// An unpacked Q6_K block: the 6-bit weights of the eight 32-element runs (as
/// [`q6k_block`] orders them), the scale pair of each run, and the sixteen scales as i16.
struct Q6Block {
    q: [__m256i; 8],
    sc: [__m256i; 8],
    sc16: __m256i,
}

impl KqPath for Q6Tiled {
    const WS: usize = 210;
    const SUB: bool = false;
    type W = Q6Block;
    #[inline(always)]
    unsafe fn prep(wb: *const u8) -> Q6Block {
        // SAFETY: every load stays inside the block (offsets as in `q6k_block`).
        unsafe {
            let m4 = _mm256_set1_epi8(0x0F);
            let m2 = _mm256_set1_epi8(0x30);
            let sc16 = _mm256_cvtepi8_epi16(load16(wb.add(192)));
            let s_lo = _mm256_permute2x128_si256(sc16, sc16, 0x00);
            let s_hi = _mm256_permute2x128_si256(sc16, sc16, 0x11);
            let mut q = [_mm256_setzero_si256(); 8];
            let mut sc = [_mm256_setzero_si256(); 8];
            for h in 0..2 {
                let sv = if h == 0 { s_lo } else { s_hi };
                let ql0 = load32(wb.add(64 * h));
                let ql1 = load32(wb.add(64 * h + 32));
                let qh = load32(wb.add(128 + 32 * h));
                q[4 * h] = _mm256_or_si256(
                    _mm256_and_si256(ql0, m4),
                    _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2),
                );
                q[4 * h + 1] = _mm256_or_si256(
                    _mm256_and_si256(ql1, m4),
                    _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2),
                );
                q[4 * h + 2] = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                    _mm256_and_si256(qh, m2),
                );
                q[4 * h + 3] = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                    _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2),
                );
                for k in 0..4 {
                    sc[4 * h + k] = scale_pair(sv, 2 * k, 2 * k + 1);
                }
            }
            Q6Block { q, sc, sc16 }
        }
    }
    #[inline(always)]
    unsafe fn ints(w: &Q6Block, xb: *const u8, s: *mut i32, _m: *mut i32) {
        // SAFETY: loads inside the Q8_K block; a store to the i32 at `s`.
        unsafe {
            let bsums = load32(xb.add(Q8K_BSUMS));
            let corr = _mm256_slli_epi32(_mm256_madd_epi16(w.sc16, bsums), 5);
            let mut sumi = _mm256_sub_epi32(_mm256_setzero_si256(), corr);
            for k in 0..8 {
                let y = load32(xb.add(Q8K_QS + 32 * k));
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(w.q[k], y), w.sc[k]);
                sumi = _mm256_add_epi32(sumi, p);
            }
            *s = hsum_epi32(sumi);
        }
    }
    #[inline(always)]
    unsafe fn step(
        wb: *const u8,
        si: [__m256i; 4],
        _mi: [__m256i; 4],
        yd: __m256,
        acc: &mut __m256,
        _acc_m: &mut __m256,
    ) {
        // SAFETY: reads `d` of the block; the rest is register work.
        unsafe {
            let dw = _mm256_set1_ps(f16_at(wb.add(208)));
            let r = _mm256_mul_ps(_mm256_cvtepi32_ps(si[0]), dw);
            *acc = _mm256_fmadd_ps(r, yd, *acc);
        }
    }
}

/// `[Σ lanes of s[0], Σ s[1], Σ s[2], Σ s[3]]` as a vector (exact integer sums).
///
/// # Safety
/// AVX2 available.
#[inline(always)]
unsafe fn reduce4v(s: [__m256i; 4]) -> __m128i {
    // SAFETY: register-only intrinsics.
    unsafe {
        let h = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
        _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1))
    }
}

/// The batch driver of the K-quant paths (a [`DotRowsFn`](super::super::DotRowsFn)'s work
/// for two or more activation rows). Per pass of up to [`KQ_R`] rows × [`KQ_T`] tokens, per
/// chunk of [`KQ_C`] blocks, the tokens' `d` are gathered once; then per row and block the
/// weight block is unpacked once, its integer sums with every token go to small buffers, and
/// the float step runs eight tokens at a time, each lane carrying one element's accumulators
/// through the same operations as the one-row kernel. Results: `acc − acc_m`.
///
/// # Safety
/// `w` holds `rows` rows of `wrb` bytes, `x` `n_x` rows of `xrb` bytes, each `nb` blocks;
/// `out` holds `(rows − 1) os + n_x` floats; AVX2, FMA, F16C available.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn kq_batch<P: KqPath>(
    w: &[u8],
    wrb: usize,
    x: &[u8],
    xrb: usize,
    out: &mut [f32],
    os: usize,
    (nb, rows, n_x): (usize, usize, usize),
) {
    let (wp, xp, op) = (w.as_ptr(), x.as_ptr(), out.as_mut_ptr());
    // Accumulators, [row][token] (tokens padded to whole vectors).
    let mut acc = [[0.0f32; KQ_T]; KQ_R];
    let mut acc_m = [[0.0f32; KQ_T]; KQ_R];
    // Activation scales of a chunk, [block][token].
    let mut yd = [[0.0f32; KQ_T]; KQ_C];
    // Integer sums of one block with each token: [token][4] (`SUB`) or [token] (totals).
    let mut sbuf = [0i32; 4 * KQ_T];
    let mut mbuf = [0i32; 4 * KQ_T];
    let mut t0 = 0;
    while t0 < n_x {
        let nt = (n_x - t0).min(KQ_T);
        let nv = nt.div_ceil(8);
        let mut r0 = 0;
        while r0 < rows {
            let nr = (rows - r0).min(KQ_R);
            for a in acc.iter_mut().chain(acc_m.iter_mut()) {
                a.fill(0.0);
            }
            let mut c0 = 0;
            while c0 < nb {
                let kc = (nb - c0).min(KQ_C);
                for (k, ydk) in yd.iter_mut().enumerate().take(kc) {
                    for (t, v) in ydk.iter_mut().enumerate().take(nt) {
                        // SAFETY: token `t0 + t` < `n_x`, block `c0 + k` < `nb`.
                        *v = unsafe { q8k_d(xp.add((t0 + t) * xrb + 292 * (c0 + k))) };
                    }
                }
                for r in 0..nr {
                    for (k, ydk) in yd.iter().enumerate().take(kc) {
                        let i = c0 + k;
                        // SAFETY: row `r0 + r` < `rows`, block `i` < `nb`, tokens < `n_x`
                        // (caller's contract); the buffers hold `KQ_T` tokens.
                        unsafe {
                            let wb = wp.add((r0 + r) * wrb + P::WS * i);
                            let wq = P::prep(wb);
                            for t in 0..nt {
                                let xb = xp.add((t0 + t) * xrb + 292 * i);
                                if P::SUB {
                                    P::ints(
                                        &wq,
                                        xb,
                                        sbuf.as_mut_ptr().add(4 * t),
                                        mbuf.as_mut_ptr().add(4 * t),
                                    );
                                } else {
                                    P::ints(
                                        &wq,
                                        xb,
                                        sbuf.as_mut_ptr().add(t),
                                        mbuf.as_mut_ptr().add(t),
                                    );
                                }
                            }
                            for v in 0..nv {
                                let (si, mi) = if P::SUB {
                                    (transpose4x8(&sbuf, 8 * v), transpose4x8(&mbuf, 8 * v))
                                } else {
                                    let z = _mm256_setzero_si256();
                                    let s = load32(sbuf.as_ptr().add(8 * v).cast());
                                    let m = load32(mbuf.as_ptr().add(8 * v).cast());
                                    ([s, z, z, z], [m, z, z, z])
                                };
                                let ydv = _mm256_loadu_ps(ydk.as_ptr().add(8 * v));
                                let pa = acc[r].as_mut_ptr().add(8 * v);
                                let pm = acc_m[r].as_mut_ptr().add(8 * v);
                                let (mut a, mut am) = (_mm256_loadu_ps(pa), _mm256_loadu_ps(pm));
                                P::step(wb, si, mi, ydv, &mut a, &mut am);
                                _mm256_storeu_ps(pa, a);
                                _mm256_storeu_ps(pm, am);
                            }
                        }
                    }
                }
                c0 += kc;
            }
            for r in 0..nr {
                for t in 0..nt {
                    // SAFETY: row `r0 + r` < `rows`, token `t0 + t` < `n_x`: inside `out`
                    // (caller's contract).
                    unsafe { *op.add((r0 + r) * os + t0 + t) = acc[r][t] - acc_m[r][t] };
                }
            }
            r0 += nr;
        }
        t0 += nt;
    }
}

/// The four i32 of token `a` (at `p + 4 a`) in the low half, of token `a + 4` in the high half.
///
/// # Safety
/// `p` readable for `4 (a + 5)` i32; AVX2 available.
#[inline(always)]
unsafe fn ld2(p: *const i32, a: usize) -> __m256i {
    // SAFETY: caller's contract.
    unsafe {
        _mm256_inserti128_si256::<1>(
            _mm256_castsi128_si256(_mm_loadu_si128(p.add(4 * a).cast())),
            _mm_loadu_si128(p.add(4 * (a + 4)).cast()),
        )
    }
}

/// From `buf` (`[token][4]` i32), tokens `t .. t + 8`: four vectors, vector `j` holding value
/// `j` of each of the eight tokens in token order.
///
/// # Safety
/// `buf` holds at least `4 (t + 8)` values; AVX2 available.
#[inline(always)]
unsafe fn transpose4x8(buf: &[i32; 4 * KQ_T], t: usize) -> [__m256i; 4] {
    // SAFETY: loads of tokens `t .. t + 8` (16 bytes each) inside `buf` (caller's contract).
    unsafe {
        let p = buf.as_ptr().add(4 * t);
        let (v04, v15, v26, v37) = (ld2(p, 0), ld2(p, 1), ld2(p, 2), ld2(p, 3));
        let a = _mm256_unpacklo_epi32(v04, v15);
        let b = _mm256_unpackhi_epi32(v04, v15);
        let c = _mm256_unpacklo_epi32(v26, v37);
        let d = _mm256_unpackhi_epi32(v26, v37);
        [
            _mm256_unpacklo_epi64(a, c),
            _mm256_unpackhi_epi64(a, c),
            _mm256_unpacklo_epi64(b, d),
            _mm256_unpackhi_epi64(b, d),
        ]
    }
}

/// The integer part of a Q6_K block (210 bytes: ql 0, qh 128, scales 192, d 208) against a
/// Q8_K block: eight i32 lanes, lane `m` summing `sc[g]·q_k·y_k` (unsigned `q`) over the
/// elements `k = 32c + 4m + t` minus `32·(B[2m]·sc[2m] + B[2m+1]·sc[2m+1])` (`B` the 16-element
/// activation sums), exactly as `scalar::dot_q6_k` defines the lanes.
///
/// # Safety
/// `wb` readable for one Q6_K block, `xb` for one Q8_K block; AVX2 available.
#[inline(always)]
unsafe fn q6k_block(wb: *const u8, xb: *const u8) -> __m256i {
    // SAFETY: every load stays inside the two blocks (offsets above).
    unsafe {
        let m4 = _mm256_set1_epi8(0x0F);
        let m2 = _mm256_set1_epi8(0x30);
        let sc16 = _mm256_cvtepi8_epi16(load16(wb.add(192)));
        let bsums = load32(xb.add(Q8K_BSUMS));
        let corr = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums), 5);
        let s_lo = _mm256_permute2x128_si256(sc16, sc16, 0x00);
        let s_hi = _mm256_permute2x128_si256(sc16, sc16, 0x11);
        let mut sumi = _mm256_sub_epi32(_mm256_setzero_si256(), corr);
        for h in 0..2 {
            let sv = if h == 0 { s_lo } else { s_hi };
            let ql0 = load32(wb.add(64 * h));
            let ql1 = load32(wb.add(64 * h + 32));
            let qh = load32(wb.add(128 + 32 * h));
            // Elements 128h + [0..32, 32..64, 64..96, 96..128].
            let q = [
                _mm256_or_si256(
                    _mm256_and_si256(ql0, m4),
                    _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(ql1, m4),
                    _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                    _mm256_and_si256(qh, m2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                    _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2),
                ),
            ];
            for (k, q) in q.into_iter().enumerate() {
                let y = load32(xb.add(Q8K_QS + 128 * h + 32 * k));
                let p = _mm256_maddubs_epi16(q, y);
                let p = _mm256_madd_epi16(p, scale_pair(sv, 2 * k, 2 * k + 1));
                sumi = _mm256_add_epi32(sumi, p);
            }
        }
        sumi
    }
}

/// Q6_K × Q8_K in the reference's order (`scalar::dot_q6_k`, llama.cpp's x86 `vec_dot`): the
/// lanes of [`q6k_block`] accumulated with one FMA by `d_w d_x` per block, then `hsum8`.
///
/// # Safety
/// `w`: `nb` Q6_K blocks, `x`: `nb` Q8_K blocks; AVX2, FMA, F16C available.
#[inline(always)]
pub(super) unsafe fn dot_q6_k(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` of `w` is bytes `210 i ..`, of `x` `292 i ..`; loads stay inside.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for i in 0..nb {
            let (wb, xb) = (w.add(210 * i), x.add(292 * i));
            let d = f16_at(wb.add(208)) * q8k_d(xb);
            let sumi = q6k_block(wb, xb);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_ps(acc)
    }
}

/// Q6_K × Q8_K as llama.cpp's tiled matmul rounds it (`scalar::dot_q6_k_tiled`): per block
/// the exact total of [`q6k_block`] times `d_w`, then `acc = fma(that, d_x, acc)`.
///
/// # Safety
/// `w`: `nb` Q6_K blocks, `x`: `nb` Q8_K blocks; AVX2, FMA, F16C available.
#[inline(always)]
unsafe fn dot_q6_k_tiled(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` of `w` is bytes `210 i ..`, of `x` `292 i ..`; loads stay inside.
    unsafe {
        let mut acc = 0.0f32;
        for i in 0..nb {
            let (wb, xb) = (w.add(210 * i), x.add(292 * i));
            let s1 = hsum_epi32(q6k_block(wb, xb));
            acc = (s1 as f32 * f16_at(wb.add(208))).mul_add(q8k_d(xb), acc);
        }
        acc
    }
}

/// IQ4_XS × Q8_K: eight groups of 32, grid look-ups, 6-bit scales `ls − 32`.
///
/// # Safety
/// `w`: `nb` IQ4_XS blocks (136 bytes: d 0, scales_h 2, scales_l 4, qs 8), `x`: `nb` Q8_K
/// blocks; AVX2, FMA, F16C available.
#[inline(always)]
unsafe fn dot_iq4_xs(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` of `w` is bytes `136 i ..`, of `x` `292 i ..`; loads stay inside.
    unsafe {
        let table = iq4nl_table();
        let mut acc = _mm256_setzero_ps();
        for i in 0..nb {
            let (wb, xb) = (w.add(136 * i), x.add(292 * i));
            let d = f16_at(wb) * q8k_d(xb);
            let sh = wb.add(2).cast::<u16>().read_unaligned() as u32;
            let sl = wb.add(4).cast::<u32>().read_unaligned();
            let mut sumi = _mm256_setzero_si256();
            for g in (0..8).step_by(2) {
                let mut p = [_mm256_setzero_si256(); 2];
                for (u, p) in p.iter_mut().enumerate() {
                    let g = g + u;
                    let ls = ((sl >> (4 * g)) & 0xF) | (((sh >> (2 * g)) & 3) << 4);
                    let q = _mm256_shuffle_epi8(table, nibbles32(wb.add(8 + 16 * g)));
                    let y = load32(xb.add(Q8K_QS + 32 * g));
                    let s = _mm256_set1_epi16(ls as i16 - 32);
                    *p = _mm256_madd_epi16(mul_i8_pairs(q, y), s);
                }
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p[0], p[1]));
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_ps(acc)
    }
}

// ---------------------------------------------------------------------------------------------
// Activation converters: the same bytes as `scalar::quantize_q8_*` (llama.cpp's x86 quantizers).
// ---------------------------------------------------------------------------------------------

/// Rust's `f32 as i8` for already-integral `v`: saturating, NaN → 0, as i32 lanes.
///
/// # Safety
/// AVX2 available.
#[inline(always)]
unsafe fn sat_i8(v: __m256) -> __m256i {
    // SAFETY: register-only intrinsics.
    unsafe {
        let ord = _mm256_cmp_ps(v, v, _CMP_ORD_Q);
        let v = _mm256_and_ps(v, ord);
        let v = _mm256_min_ps(
            _mm256_max_ps(v, _mm256_set1_ps(-128.0)),
            _mm256_set1_ps(127.0),
        );
        _mm256_cvttps_epi32(v)
    }
}

/// The reference's `nearest_int(v).min(127) as i8` for any f32 (ggml's magic-number rounding:
/// ties to even for |v| < 2^22; what it gives for larger values, infinities and NaN, too),
/// sign-extended to i32 lanes.
///
/// # Safety
/// AVX2 available.
#[inline(always)]
pub(super) unsafe fn nearest_int_i8(v: __m256) -> __m256i {
    // SAFETY: register-only intrinsics.
    unsafe {
        let val = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12_582_912.0)));
        let r = _mm256_sub_epi32(
            _mm256_and_si256(val, _mm256_set1_epi32(0x007f_ffff)),
            _mm256_set1_epi32(0x0040_0000),
        );
        let r = _mm256_min_epi32(r, _mm256_set1_epi32(127));
        // `as i8`: keep the low byte, sign-extended.
        _mm256_srai_epi32(_mm256_slli_epi32(r, 24), 24)
    }
}

/// Packs four vectors of 8 i32 (each in -128..=127) into 32 bytes in order.
///
/// # Safety
/// AVX2 available.
#[inline(always)]
unsafe fn pack_i8(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m256i {
    // SAFETY: register-only intrinsics.
    unsafe {
        let ab = _mm256_packs_epi32(a, b);
        let cd = _mm256_packs_epi32(c, d);
        let v = _mm256_packs_epi16(ab, cd);
        _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }
}

/// Max of `|v|` over 32 floats, with `quant`'s fold semantics for non-NaN input.
///
/// # Safety
/// `x` readable for 32 f32; AVX2 available.
#[inline(always)]
unsafe fn absmax32(v: &[__m256; 4]) -> f32 {
    // SAFETY: register-only intrinsics.
    unsafe {
        let abs = _mm256_set1_ps(-0.0);
        let m01 = _mm256_max_ps(_mm256_andnot_ps(abs, v[0]), _mm256_andnot_ps(abs, v[1]));
        let m23 = _mm256_max_ps(_mm256_andnot_ps(abs, v[2]), _mm256_andnot_ps(abs, v[3]));
        let m = _mm256_max_ps(m01, m23);
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_movehdup_ps(m));
        _mm_cvtss_f32(m)
    }
}

/// One Q8_0 / Q8_1 block: 32 quants at `qs` (stored), and the scale `d` and `Σ q` returned.
///
/// # Safety
/// `x` readable for 32 f32, `qs` writable for 32 bytes; AVX2 available.
#[inline(always)]
unsafe fn quantize_q8_block(x: *const f32, qs: *mut u8) -> (f32, i32) {
    // SAFETY: caller's contract.
    unsafe {
        let v = [
            _mm256_loadu_ps(x),
            _mm256_loadu_ps(x.add(8)),
            _mm256_loadu_ps(x.add(16)),
            _mm256_loadu_ps(x.add(24)),
        ];
        let amax = absmax32(&v);
        let d = amax / 127.0;
        let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        const RN: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        let q = [
            sat_i8(_mm256_round_ps::<RN>(_mm256_mul_ps(v[0], id))),
            sat_i8(_mm256_round_ps::<RN>(_mm256_mul_ps(v[1], id))),
            sat_i8(_mm256_round_ps::<RN>(_mm256_mul_ps(v[2], id))),
            sat_i8(_mm256_round_ps::<RN>(_mm256_mul_ps(v[3], id))),
        ];
        let sum = hsum_epi32(_mm256_add_epi32(
            _mm256_add_epi32(q[0], q[1]),
            _mm256_add_epi32(q[2], q[3]),
        ));
        _mm256_storeu_si256(qs.cast(), pack_i8(q[0], q[1], q[2], q[3]));
        (d, sum)
    }
}

/// One Q8_K block (292 bytes at `out`) from 256 floats at `x`.
///
/// # Safety
/// `x` readable for 256 f32, `out` writable for 292 bytes; AVX2 available.
#[inline(always)]
unsafe fn quantize_q8k_block(x: *const f32, out: *mut u8) {
    // SAFETY: caller's contract; all loads within the 256 floats, stores within 292 bytes.
    unsafe {
        let abs = _mm256_set1_ps(-0.0);
        let mut m = _mm256_setzero_ps();
        for k in 0..32 {
            // max(|v|, m): a NaN |v| is skipped, as in the reference's `ax > amax`.
            m = _mm256_max_ps(_mm256_andnot_ps(abs, _mm256_loadu_ps(x.add(8 * k))), m);
        }
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
        if amax == 0.0 {
            std::ptr::write_bytes(out, 0, 292);
            return;
        }
        // The first element whose magnitude is `amax` (the reference's strict `>` keeps the
        // first).
        let target = _mm256_set1_ps(amax);
        let mut max = 0.0f32;
        for k in 0..32 {
            let v = _mm256_loadu_ps(x.add(8 * k));
            let eq =
                _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(abs, v), target, _CMP_EQ_OQ));
            if eq != 0 {
                max = x.add(8 * k + eq.trailing_zeros() as usize).read_unaligned();
                break;
            }
        }
        let iscale = -127.0 / max;
        let is = _mm256_set1_ps(iscale);
        let qs = out.add(4);
        let mut bsums = [0i16; 16];
        for k in 0..8 {
            let xk = x.add(32 * k);
            let q = [
                nearest_int_i8(_mm256_mul_ps(_mm256_loadu_ps(xk), is)),
                nearest_int_i8(_mm256_mul_ps(_mm256_loadu_ps(xk.add(8)), is)),
                nearest_int_i8(_mm256_mul_ps(_mm256_loadu_ps(xk.add(16)), is)),
                nearest_int_i8(_mm256_mul_ps(_mm256_loadu_ps(xk.add(24)), is)),
            ];
            // Group sums: elements 32k..32k+16 and 32k+16..32k+32.
            let s0 = _mm256_add_epi32(q[0], q[1]);
            let s1 = _mm256_add_epi32(q[2], q[3]);
            bsums[2 * k] = hsum_epi32(s0) as i16;
            bsums[2 * k + 1] = hsum_epi32(s1) as i16;
            _mm256_storeu_si256(qs.add(32 * k).cast(), pack_i8(q[0], q[1], q[2], q[3]));
        }
        out.cast::<f32>().write_unaligned(1.0 / iscale);
        std::ptr::copy_nonoverlapping(bsums.as_ptr().cast::<u8>(), out.add(260), 32);
    }
}

mod convert {
    use super::*;

    /// Q8_0 activations (AVX2).
    ///
    /// # Safety
    /// AVX2, FMA, F16C available.
    pub(super) unsafe fn q8_0(x: &[f32], out: &mut [u8]) {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn run(x: &[f32], out: &mut [u8], nb: usize) {
            for i in 0..nb {
                // SAFETY: block `i` is floats `32 i ..` and bytes `34 i ..` (checked sizes).
                unsafe {
                    let ob = out.as_mut_ptr().add(34 * i);
                    let (d, _) = quantize_q8_block(x.as_ptr().add(32 * i), ob.add(2));
                    ob.cast::<[u8; 2]>().write(f32_to_f16(d).to_le_bytes());
                }
            }
        }
        let nb = check_convert(x, out, 32, 34);
        // SAFETY: sizes checked; features guaranteed by the caller.
        unsafe { run(x, out, nb) }
    }

    /// Q8_1 activations (AVX2).
    ///
    /// # Safety
    /// AVX2, FMA, F16C available.
    pub(super) unsafe fn q8_1(x: &[f32], out: &mut [u8]) {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn run(x: &[f32], out: &mut [u8], nb: usize) {
            for i in 0..nb {
                // SAFETY: block `i` is floats `32 i ..` and bytes `36 i ..` (checked sizes).
                unsafe {
                    let ob = out.as_mut_ptr().add(36 * i);
                    let (d, sum) = quantize_q8_block(x.as_ptr().add(32 * i), ob.add(4));
                    ob.cast::<[u8; 2]>().write(f32_to_f16(d).to_le_bytes());
                    ob.add(2)
                        .cast::<[u8; 2]>()
                        .write(f32_to_f16(sum as f32 * d).to_le_bytes());
                }
            }
        }
        let nb = check_convert(x, out, 32, 36);
        // SAFETY: sizes checked; features guaranteed by the caller.
        unsafe { run(x, out, nb) }
    }

    /// Q8_K activations (AVX2).
    ///
    /// # Safety
    /// AVX2, FMA, F16C available.
    pub(super) unsafe fn q8_k(x: &[f32], out: &mut [u8]) {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn run(x: &[f32], out: &mut [u8], nb: usize) {
            for i in 0..nb {
                // SAFETY: block `i` is floats `256 i ..` and bytes `292 i ..` (checked sizes).
                unsafe {
                    quantize_q8k_block(x.as_ptr().add(256 * i), out.as_mut_ptr().add(292 * i))
                };
            }
        }
        let nb = check_convert(x, out, 256, 292);
        // SAFETY: sizes checked; features guaranteed by the caller.
        unsafe { run(x, out, nb) }
    }

    /// f32 → f16 (AVX2 + F16C), NaN → `sign | 0x7E00` as ggml.
    ///
    /// # Safety
    /// AVX2, FMA, F16C available.
    pub(super) unsafe fn f16(x: &[f32], out: &mut [u8]) {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn run(x: &[f32], out: &mut [u8]) {
            let n = x.len();
            let mut i = 0;
            while i + 8 <= n {
                // SAFETY: floats `i .. i + 8` and bytes `2 i .. 2 i + 16` are in bounds.
                unsafe {
                    let v = _mm256_loadu_ps(x.as_ptr().add(i));
                    let h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
                    _mm_storeu_si128(out.as_mut_ptr().add(2 * i).cast(), h);
                    if _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0 {
                        for j in i..i + 8 {
                            out[2 * j..2 * j + 2].copy_from_slice(&f32_to_f16(x[j]).to_le_bytes());
                        }
                    }
                }
                i += 8;
            }
            for j in i..n {
                out[2 * j..2 * j + 2].copy_from_slice(&f32_to_f16(x[j]).to_le_bytes());
            }
        }
        check_convert(x, out, 1, 2);
        // SAFETY: sizes checked; features guaranteed by the caller.
        unsafe { run(x, out) }
    }

    /// f32 → bf16 (AVX2): round to nearest even, NaN quieted, as ggml.
    ///
    /// # Safety
    /// AVX2, FMA, F16C available.
    pub(super) unsafe fn bf16(x: &[f32], out: &mut [u8]) {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn run(x: &[f32], out: &mut [u8]) {
            let n = x.len();
            let mut i = 0;
            while i + 16 <= n {
                // SAFETY: floats `i .. i + 16` and bytes `2 i .. 2 i + 32` are in bounds.
                unsafe {
                    let a = bf16_8(_mm256_loadu_si256(x.as_ptr().add(i).cast()));
                    let b = bf16_8(_mm256_loadu_si256(x.as_ptr().add(i + 8).cast()));
                    let p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0b11_01_10_00);
                    _mm256_storeu_si256(out.as_mut_ptr().add(2 * i).cast(), p);
                }
                i += 16;
            }
            for j in i..n {
                out[2 * j..2 * j + 2]
                    .copy_from_slice(&crate::quant::f32_to_bf16(x[j]).to_le_bytes());
            }
        }
        check_convert(x, out, 1, 2);
        // SAFETY: sizes checked; features guaranteed by the caller.
        unsafe { run(x, out) }
    }

    /// ggml's f32 → bf16 on 8 lanes of f32 bits; the result in the low 16 bits of each lane.
    ///
    /// # Safety
    /// AVX2 available.
    #[inline(always)]
    unsafe fn bf16_8(u: __m256i) -> __m256i {
        // SAFETY: register-only intrinsics.
        unsafe {
            let abs = _mm256_and_si256(u, _mm256_set1_epi32(0x7fff_ffff));
            let nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f80_0000));
            let lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
            let r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
            let r = _mm256_srli_epi32(r, 16);
            let q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
            _mm256_blendv_epi8(r, q, nan)
        }
    }
}
