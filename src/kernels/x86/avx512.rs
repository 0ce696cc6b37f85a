//! AVX-512 kernels (F, BW, VL; with or without VNNI).
//!
//! Every quant kernel here computes exactly what `scalar.rs` defines (the same exact integer
//! lane sums, the same float operations in the same order), as the AVX2 ones do, and is in a
//! table only where it measured faster than the AVX2 kernel it replaces. On Zen 4, which runs
//! a 512-bit operation as two 256-bit halves, the width itself buys nothing, so these kernels
//! use 256-bit (VL) registers with what AVX-512 adds: `vpdpbusd` (VNNI: four u8 × i8 products
//! summed into an i32 lane, exact, replacing `vpmaddubsw` + `vpmaddwd` and an offset
//! subtraction), `vpdpwssd`, mask registers (a Q5 fifth bit is one masked add),
//! `vpternlogd`, broadcast memory operands, and 32 registers, which hold a tile of several
//! weight rows by several activation rows, so that a block is decoded once for all the
//! activation rows (the batch case) and the activation side prepared once for all the rows.
//!
//! * 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, and IQ4_NL in tinyBLAS's order): one
//!   tile kernel, [`legacy_tile`], `NR` weight rows by `NT` activation rows, one 8-lane
//!   accumulator per pair, exactly the reference's lanes, `fma(lanes, d_w d_x, acc)` per block
//!   and `hsum8` (Q4_1/Q5_1: plus the `m_w s_x` chain). Offsets (`q − 8`, `q − 16`, and
//!   `w + 128` for the signed formats with VNNI) are seeded into `vpdpbusd` as `−off Σ y`.
//!   With VNNI and several activation rows, [`legacy_batch`] instead: 512-bit registers
//!   holding two activation rows' lanes for one weight row, the weights decoded once per call
//!   as signed bytes times the activations plus 128 (seed `−128 Σ w`), the scales converted
//!   once per call and multiplied once per tile.
//! * Q4_K gemv/gemm/tiled and Q5_K tiled ([`k4_path_tile`]) and Q6_K `vec_dot`/tiled
//!   ([`q6k_tile`]): one weight row by four activation rows; the paths that only use exact
//!   block totals sum in any integer order, the `vec_dot` lanes keep the reference's lanes
//!   (two chunks' four-element sums as the words of one i32 lane, scaled by one `vpdpwssd`).
//! * With VNNI, the batch paths Q4_K gemm/tiled, Q5_K tiled and Q6_K tiled (four or more
//!   activation rows) take eight weight rows at a time with one row per i32 lane
//!   ([`k4_lanes_tile`], [`q6k_lanes_tile`]): the eight rows' blocks are decoded and
//!   transposed once per call ([`K4Pack`], [`Q6Pack`], a thread-local buffer), each
//!   activation's four bytes are a broadcast memory operand of `vpdpbusd`, so no horizontal
//!   sums are needed and each lane's float operations are its pair's scalar ones. (Sixteen
//!   rows per 512-bit vector and eight activation rows per tile measured no faster.)
//!
//! The tables: [`AVX512_VNNI`] (and [`AVX512_VNNI_GFNI`], the same table: no kernel uses GFNI
//! at the moment) use these kernels for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q6_K and the paths Q4_K
//! gemv/gemm/tiled, Q5_K tiled, Q6_K tiled and IQ4_NL tinyBLAS, and for Q4_K `vec_dot` the
//! 512-bit kernel of `avx512_kdot` (four weight rows per pass against one activation row,
//! `vpdpbusd` on 64 weights at a time; 1.3x the AVX2 kernel); [`AVX512`] (no VNNI) the same
//! except Q6_K `vec_dot`, the Q4_K gemv and Q4_K `vec_dot`, which use the AVX2 kernels there.
//! Both use the AVX2 kernels for F16, Q2_K, Q3_K and Q5_K `vec_dot` (a Q4_K/Q5_K lane kernel
//! in this style measured no faster for one activation row), IQ4_NL `vec_dot` (its even/odd
//! block order), IQ4_XS and the activation converters; F32 and BF16 have 512-bit kernels
//! (generic float sums, not one of the reproduced types). Each table wraps the kernels in row
//! loops compiled with its `#[target_feature]` set and is handed out only after the features
//! were detected (`x86::table`).

use std::arch::x86_64::*;

use super::avx2;
use crate::kernels::{Isa, Kernels};
use crate::quant::blocks::KVALUES_IQ4NL;

/// AVX-512 F/BW/VL without VNNI.
pub(in crate::kernels) static AVX512: Kernels = Kernels {
    isa: Isa::Avx512,
    f32: plain::f32,
    f16: avx2::AVX2.f16,
    bf16: plain::bf16,
    q4_0: plain::q4_0,
    q4_1: plain::q4_1,
    q5_0: plain::q5_0,
    q5_1: plain::q5_1,
    q8_0: plain::q8_0,
    q2_k: avx2::AVX2.q2_k,
    q3_k: avx2::AVX2.q3_k,
    q4_k: avx2::AVX2.q4_k,
    q5_k: avx2::AVX2.q5_k,
    // The Q6_K `vec_dot` kernel without VNNI measured no faster than the AVX2 one.
    q6_k: avx2::AVX2.q6_k,
    iq4_nl: avx2::AVX2.iq4_nl,
    iq4_xs: avx2::AVX2.iq4_xs,
    quantize_q8_0: avx2::AVX2.quantize_q8_0,
    quantize_q8_1: avx2::AVX2.quantize_q8_1,
    quantize_q8_k: avx2::AVX2.quantize_q8_k,
    to_f16: avx2::AVX2.to_f16,
    to_bf16: avx2::AVX2.to_bf16,
    stream: Some(crate::kernels::StreamKernels {
        q4_0: plain::q4_0_stream,
        q4_1: plain::q4_1_stream,
        q5_0: plain::q5_0_stream,
        q5_1: plain::q5_1_stream,
        q8_0: plain::q8_0_stream,
    }),
    paths: crate::kernels::PathKernels {
        // Without VNNI, the one-token gemv measured no faster than the AVX2 one.
        q4_k_gemv: avx2::AVX2.paths.q4_k_gemv,
        q4_k_gemm: plain::q4_k_gemm,
        q4_k_tiled: plain::q4_k_tiled,
        q5_k_tiled: plain::q5_k_tiled,
        q6_k_tiled: plain::q6_k_tiled,
        iq4_nl_tinyblas: plain::iq4_nl_tinyblas,
    },
};

/// AVX-512 F/BW/VL with VNNI.
pub(in crate::kernels) static AVX512_VNNI: Kernels = VNNI_TABLE;

/// AVX-512 F/BW/VL with VNNI and GFNI (Ice Lake, Zen 4 and later): no kernel uses GFNI at the
/// moment, so this is the [`AVX512_VNNI`] table.
pub(in crate::kernels) static AVX512_VNNI_GFNI: Kernels = VNNI_TABLE;

/// The [`AVX512_VNNI`] table.
const VNNI_TABLE: Kernels = Kernels {
    isa: Isa::Avx512Vnni,
    f32: vnni::f32,
    f16: avx2::AVX2.f16,
    bf16: vnni::bf16,
    q4_0: vnni::q4_0,
    q4_1: vnni::q4_1,
    q5_0: vnni::q5_0,
    q5_1: vnni::q5_1,
    q8_0: vnni::q8_0,
    q2_k: avx2::AVX2.q2_k,
    q3_k: avx2::AVX2.q3_k,
    q4_k: super::avx512_kdot::q4_k,
    q5_k: avx2::AVX2.q5_k,
    q6_k: vnni::q6_k,
    iq4_nl: avx2::AVX2.iq4_nl,
    iq4_xs: avx2::AVX2.iq4_xs,
    quantize_q8_0: avx2::AVX2.quantize_q8_0,
    quantize_q8_1: avx2::AVX2.quantize_q8_1,
    quantize_q8_k: avx2::AVX2.quantize_q8_k,
    to_f16: avx2::AVX2.to_f16,
    to_bf16: avx2::AVX2.to_bf16,
    stream: Some(crate::kernels::StreamKernels {
        q4_0: vnni::q4_0_stream,
        q4_1: vnni::q4_1_stream,
        q5_0: vnni::q5_0_stream,
        q5_1: vnni::q5_1_stream,
        q8_0: vnni::q8_0_stream,
    }),
    paths: crate::kernels::PathKernels {
        q4_k_gemv: vnni::q4_k_gemv,
        q4_k_gemm: vnni::q4_k_gemm,
        q4_k_tiled: vnni::q4_k_tiled,
        q5_k_tiled: vnni::q5_k_tiled,
        q6_k_tiled: vnni::q6_k_tiled,
        iq4_nl_tinyblas: vnni::iq4_nl_tinyblas,
    },
};

/// Generates [`DotRowsFn`](crate::kernels::DotRowsFn)s for the 32-element formats: the
/// [`legacy_rows`] driver for format `$fmt`, compiled with `$feat`.
macro_rules! legacy_fns {
    (features = $feat:literal, vnni = $vnni:literal;
     $($name:ident: $fmt:ty;)*) => {
        legacy_fns!(@with legacy_rows, $feat, $vnni; $($name: $fmt;)*);
    };
    (stream, features = $feat:literal, vnni = $vnni:literal;
     $($name:ident: $fmt:ty;)*) => {
        legacy_fns!(@with legacy_stream_rows, $feat, $vnni; $($name: $fmt;)*);
    };
    (@with $drive:ident, $feat:literal, $vnni:literal;
     $($name:ident: $fmt:ty;)*) => {$(
        /// Dot kernel over rows (see `DotRowsFn`).
        ///
        /// # Safety
        /// The CPU must support the target features this module is compiled for.
        pub(super) unsafe fn $name(
            w: &[u8],
            w_row_bytes: usize,
            x: &[u8],
            x_row_bytes: usize,
            out: &mut [f32],
            out_stride: usize,
        ) {
            /// The loop, with the kernels inlined under the target features.
            ///
            /// # Safety
            /// The features are available; the lengths were checked.
            #[target_feature(enable = $feat)]
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
                // SAFETY: caller's contract (lengths checked, features on).
                unsafe { $drive::<$fmt, $vnni>(w, wrb, x, xrb, out, os, dims) }
            }
            let dims = crate::kernels::check_rows(
                w,
                w_row_bytes,
                x,
                x_row_bytes,
                out,
                out_stride,
                <$fmt as Legacy>::WS,
                <$fmt as Legacy>::XS,
            );
            // SAFETY: lengths checked above; the caller guarantees the CPU features.
            unsafe { run(w, w_row_bytes, x, x_row_bytes, out, out_stride, dims) }
        }
    )*};
}

/// Generates the [`DotRowsFn`](crate::kernels::DotRowsFn)s of the K-quant kernels: `$drive`
/// (a rows driver, `k4_path_rows` or `q6k_rows`) for blocks of `$wb` bytes.
macro_rules! kquant_fns {
    (features = $feat:literal;
     $($name:ident: $drive:expr, $wb:expr;)*) => {$(
        /// Dot kernel over rows (see `DotRowsFn`) for one of llama.cpp's batch paths.
        ///
        /// # Safety
        /// The CPU must support the target features this module is compiled for.
        pub(super) unsafe fn $name(
            w: &[u8],
            w_row_bytes: usize,
            x: &[u8],
            x_row_bytes: usize,
            out: &mut [f32],
            out_stride: usize,
        ) {
            /// The loop, with the kernels inlined under the target features.
            ///
            /// # Safety
            /// The features are available; the lengths were checked.
            #[target_feature(enable = $feat)]
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
                // SAFETY: caller's contract (lengths checked, features on).
                unsafe { $drive(w, wrb, x, xrb, out, os, dims) }
            }
            let dims = crate::kernels::check_rows(
                w,
                w_row_bytes,
                x,
                x_row_bytes,
                out,
                out_stride,
                $wb,
                292,
            );
            // SAFETY: lengths checked above; the caller guarantees the CPU features.
            unsafe { run(w, w_row_bytes, x, x_row_bytes, out, out_stride, dims) }
        }
    )*};
}

mod plain {
    use super::*;
    crate::kernels::dot_rows_fns! {
        features = "avx512f,avx512bw,avx512vl,avx2,fma,f16c";
        f32: dot_f32, 4, 4;
        bf16: dot_bf16, 2, 2;
    }
    legacy_fns! {
        stream, features = "avx512f,avx512bw,avx512vl,avx2,fma,f16c", vnni = false;
        q4_0_stream: Q4_0;
        q4_1_stream: Q4_1;
        q5_0_stream: Q5_0;
        q5_1_stream: Q5_1;
        q8_0_stream: Q8_0;
    }
    legacy_fns! {
        features = "avx512f,avx512bw,avx512vl,avx2,fma,f16c", vnni = false;
        q4_0: Q4_0;
        q4_1: Q4_1;
        q5_0: Q5_0;
        q5_1: Q5_1;
        q8_0: Q8_0;
        iq4_nl_tinyblas: Iq4Nl;
    }
    kquant_fns! {
        features = "avx512f,avx512bw,avx512vl,avx2,fma,f16c";
        q4_k_gemm: k4_path_rows::<false, GEMM, false>, 144;
        q4_k_tiled: k4_path_rows::<false, TILED, false>, 144;
        q5_k_tiled: k4_path_rows::<true, TILED, false>, 176;
        q6_k_tiled: q6k_rows::<TILED, false>, 210;
    }
}

mod vnni {
    use super::*;
    crate::kernels::dot_rows_fns! {
        features = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c";
        f32: dot_f32, 4, 4;
        bf16: dot_bf16, 2, 2;
    }
    legacy_fns! {
        stream, features = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", vnni = true;
        q4_0_stream: Q4_0;
        q4_1_stream: Q4_1;
        q5_0_stream: Q5_0;
        q5_1_stream: Q5_1;
        q8_0_stream: Q8_0;
    }
    legacy_fns! {
        features = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", vnni = true;
        q4_0: Q4_0;
        q4_1: Q4_1;
        q5_0: Q5_0;
        q5_1: Q5_1;
        q8_0: Q8_0;
        iq4_nl_tinyblas: Iq4Nl;
    }
    kquant_fns! {
        features = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c";
        q4_k_gemv: k4_path_rows::<false, GEMV, true>, 144;
        q4_k_gemm: k4_path_rows::<false, GEMM, true>, 144;
        q4_k_tiled: k4_path_rows::<false, TILED, true>, 144;
        q5_k_tiled: k4_path_rows::<true, TILED, true>, 176;
        q6_k: q6k_rows::<VEC, true>, 210;
        q6_k_tiled: q6k_rows::<TILED, true>, 210;
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers (`#[inline(always)]`, inlined only into the `#[target_feature]` loops). Their
// `# Safety` everywhere: the CPU has AVX-512 F/BW/VL, AVX2, FMA, F16C (and VNNI when `VNNI`),
// and pointers are readable for the bytes loaded.
// ---------------------------------------------------------------------------------------------

/// Loads 64 bytes.
///
/// # Safety
/// `p` readable for 64 bytes; AVX-512F.
#[inline(always)]
pub(super) unsafe fn load64(p: *const u8) -> __m512i {
    // SAFETY: caller's contract; unaligned load.
    unsafe { _mm512_loadu_si512(p.cast()) }
}

/// Loads 32 bytes.
///
/// # Safety
/// `p` readable for 32 bytes; AVX.
#[inline(always)]
pub(super) unsafe fn load32(p: *const u8) -> __m256i {
    // SAFETY: caller's contract; unaligned load.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// Loads 16 bytes.
///
/// # Safety
/// `p` readable for 16 bytes; SSE2.
#[inline(always)]
unsafe fn load16(p: *const u8) -> __m128i {
    // SAFETY: caller's contract; unaligned load.
    unsafe { _mm_loadu_si128(p.cast()) }
}

/// Reads a little-endian i16 at any alignment.
///
/// # Safety
/// `p` readable for 2 bytes.
#[inline(always)]
unsafe fn rd16(p: *const u8) -> i16 {
    // SAFETY: caller's contract.
    unsafe { p.cast::<i16>().read_unaligned() }
}

/// The f16 at `p` as f32.
///
/// # Safety
/// `p` readable for 2 bytes; F16C.
#[inline(always)]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: caller's contract.
    unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(rd16(p) as u16 as i32))) }
}

/// The eight f16 at `p`, `p + stride`, ..., `p + 7 stride`, as f32.
///
/// # Safety
/// The eight 2-byte fields readable; F16C.
#[inline(always)]
unsafe fn f16x8(p: *const u8, stride: usize) -> __m256 {
    // SAFETY: reads the eight f16 fields.
    unsafe {
        _mm256_cvtph_ps(_mm_setr_epi16(
            rd16(p),
            rd16(p.add(stride)),
            rd16(p.add(2 * stride)),
            rd16(p.add(3 * stride)),
            rd16(p.add(4 * stride)),
            rd16(p.add(5 * stride)),
            rd16(p.add(6 * stride)),
            rd16(p.add(7 * stride)),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Float rows.
// ---------------------------------------------------------------------------------------------

/// f32 · f32 over `n` elements.
///
/// # Safety
/// `w`, `x` readable for `4 n` bytes; AVX-512F, FMA.
#[inline(always)]
unsafe fn dot_f32(w: *const u8, x: *const u8, n: usize) -> f32 {
    // SAFETY: every load is inside the `4 n` bytes.
    unsafe {
        let (wf, xf) = (w.cast::<f32>(), x.cast::<f32>());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (u, a) in acc.iter_mut().enumerate() {
                let o = i + 16 * u;
                *a = _mm512_fmadd_ps(_mm512_loadu_ps(wf.add(o)), _mm512_loadu_ps(xf.add(o)), *a);
            }
            i += 64;
        }
        let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(s)
            + (if i < n {
                avx2::dot_f32(w.add(4 * i), x.add(4 * i), n - i)
            } else {
                0.0
            })
    }
}

/// bf16 · bf16 over `n` elements (even/odd halves of 32-bit lanes, as the AVX2 kernel).
///
/// # Safety
/// `w`, `x` readable for `2 n` bytes; AVX-512F, FMA.
#[inline(always)]
unsafe fn dot_bf16(w: *const u8, x: *const u8, n: usize) -> f32 {
    // SAFETY: every load is inside the `2 n` bytes.
    unsafe {
        let hi = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for u in 0..2 {
                let o = 2 * (i + 32 * u);
                let wv = load64(w.add(o));
                let xv = load64(x.add(o));
                let we = _mm512_castsi512_ps(_mm512_slli_epi32(wv, 16));
                let xe = _mm512_castsi512_ps(_mm512_slli_epi32(xv, 16));
                let wo = _mm512_castsi512_ps(_mm512_and_si512(wv, hi));
                let xo = _mm512_castsi512_ps(_mm512_and_si512(xv, hi));
                acc[2 * u] = _mm512_fmadd_ps(we, xe, acc[2 * u]);
                acc[2 * u + 1] = _mm512_fmadd_ps(wo, xo, acc[2 * u + 1]);
            }
            i += 64;
        }
        let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(s)
            + (if i < n {
                avx2::dot_bf16(w.add(2 * i), x.add(2 * i), n - i)
            } else {
                0.0
            })
    }
}

// ---------------------------------------------------------------------------------------------
// The 32-element formats × Q8_0 / Q8_1 (Q8_0: d at 0, qs at 2; Q8_1: d at 0, s at 2, qs at 4).
// ---------------------------------------------------------------------------------------------

/// A 32-element weight format as [`legacy_tile`] sees it: per block, 32 bytes `q` in element
/// order whose products with the activations, minus `OFF · Σ y`, are the reference's integer
/// products. Unsigned formats give `q` (the weight is `q − OFF`); the signed ones (Q8_0,
/// IQ4_NL) give `w + 128` with `OFF = 128` for VNNI and the signed `w` without (products then
/// with the sign trick, no offset).
trait Legacy {
    /// Bytes per weight block.
    const WS: usize;
    /// Bytes per activation block: 34 (Q8_0) or 36 (Q8_1, with `s`).
    const XS: usize;
    /// Whether the format has the `m_w s_x` term (Q4_1, Q5_1; `m` the f16 at byte 2).
    const MINS: bool;
    /// The offset subtracted from `q` (0: none).
    const OFF: u8;
    /// Signed weights: without VNNI, `q` is the signed weight (products `|w| × ±y`).
    const SIGNED: bool;

    /// The 32 bytes `q` of the weight block at `wb`.
    ///
    /// # Safety
    /// `wb` readable for one block; the module's features.
    unsafe fn quants<const VNNI: bool>(wb: *const u8) -> __m256i;
}

/// 32 nibbles from 16 bytes: lanes 0..16 the low nibbles, 16..32 the high nibbles.
///
/// # Safety
/// `p` readable for 16 bytes; AVX-512BW/VL.
#[inline(always)]
unsafe fn nibbles32(p: *const u8) -> __m256i {
    // SAFETY: caller's contract.
    unsafe {
        let t = _mm256_broadcastsi128_si256(load16(p));
        let t = _mm256_mask_srli_epi16(t, 0xFF00, t, 4);
        _mm256_and_si256(t, _mm256_set1_epi8(0x0F))
    }
}

/// Nibbles plus 16 where bit `k` of the 32 bits at `qh` is set (Q5's fifth bit of element `k`).
///
/// # Safety
/// `qh` readable for 4 bytes, `qs` for 16; AVX-512BW/VL.
#[inline(always)]
unsafe fn five_bits(qh: *const u8, qs: *const u8) -> __m256i {
    // SAFETY: caller's contract.
    unsafe {
        let n = nibbles32(qs);
        let h = qh.cast::<u32>().read_unaligned();
        _mm256_mask_add_epi8(n, h, n, _mm256_set1_epi8(16))
    }
}

/// The IQ4_NL grid in both 128-bit lanes (plus 128 with VNNI).
///
/// # Safety
/// AVX2.
#[inline(always)]
unsafe fn iq4nl_grid<const VNNI: bool>() -> __m256i {
    // SAFETY: reads the 16-byte constant array.
    unsafe {
        let g = _mm256_broadcastsi128_si256(load16(KVALUES_IQ4NL.as_ptr().cast()));
        if VNNI {
            _mm256_xor_si256(g, _mm256_set1_epi8(-128))
        } else {
            g
        }
    }
}

/// Q4_0: d at 0, 16 nibble bytes at 2; weight `nibble − 8`.
struct Q4_0;
/// Q4_1: d at 0, m at 2, nibbles at 4; weight `nibble` (plus `m`).
struct Q4_1;
/// Q5_0: d at 0, qh at 2, nibbles at 6; weight `(nibble | bit << 4) − 16`.
struct Q5_0;
/// Q5_1: d at 0, m at 2, qh at 4, nibbles at 8; weight `nibble | bit << 4` (plus `m`).
struct Q5_1;
/// Q8_0: d at 0, 32 signed bytes at 2.
struct Q8_0;
/// IQ4_NL: d at 0, nibbles at 2 indexing the grid.
struct Iq4Nl;

impl Legacy for Q4_0 {
    const WS: usize = 18;
    const XS: usize = 34;
    const MINS: bool = false;
    const OFF: u8 = 8;
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn quants<const VNNI: bool>(wb: *const u8) -> __m256i {
        // SAFETY: caller's contract.
        unsafe { nibbles32(wb.add(2)) }
    }
}

impl Legacy for Q4_1 {
    const WS: usize = 20;
    const XS: usize = 36;
    const MINS: bool = true;
    const OFF: u8 = 0;
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn quants<const VNNI: bool>(wb: *const u8) -> __m256i {
        // SAFETY: caller's contract.
        unsafe { nibbles32(wb.add(4)) }
    }
}

impl Legacy for Q5_0 {
    const WS: usize = 22;
    const XS: usize = 34;
    const MINS: bool = false;
    const OFF: u8 = 16;
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn quants<const VNNI: bool>(wb: *const u8) -> __m256i {
        // SAFETY: caller's contract.
        unsafe { five_bits(wb.add(2), wb.add(6)) }
    }
}

impl Legacy for Q5_1 {
    const WS: usize = 24;
    const XS: usize = 36;
    const MINS: bool = true;
    const OFF: u8 = 0;
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn quants<const VNNI: bool>(wb: *const u8) -> __m256i {
        // SAFETY: caller's contract.
        unsafe { five_bits(wb.add(4), wb.add(8)) }
    }
}

impl Legacy for Q8_0 {
    const WS: usize = 34;
    const XS: usize = 34;
    const MINS: bool = false;
    const OFF: u8 = 128;
    const SIGNED: bool = true;
    #[inline(always)]
    unsafe fn quants<const VNNI: bool>(wb: *const u8) -> __m256i {
        // SAFETY: caller's contract.
        unsafe {
            let q = load32(wb.add(2));
            if VNNI {
                _mm256_xor_si256(q, _mm256_set1_epi8(-128))
            } else {
                q
            }
        }
    }
}

impl Legacy for Iq4Nl {
    const WS: usize = 18;
    const XS: usize = 34;
    const MINS: bool = false;
    const OFF: u8 = 128;
    const SIGNED: bool = true;
    #[inline(always)]
    unsafe fn quants<const VNNI: bool>(wb: *const u8) -> __m256i {
        // SAFETY: caller's contract.
        unsafe { _mm256_shuffle_epi8(iq4nl_grid::<VNNI>(), nibbles32(wb.add(2))) }
    }
}

/// The activation side of `F`'s products for the 32 bytes `y`: with VNNI `−OFF Σ y` per
/// 4-byte i32 lane (the `vpdpbusd` seed), without `OFF · y` as i16 pair sums (at most
/// `2 · 16 · 128`); zero when the format has no offset (or is signed, without VNNI).
///
/// # Safety
/// The module's features (+VNNI when `VNNI`).
#[inline(always)]
unsafe fn seed<F: Legacy, const VNNI: bool>(y: __m256i) -> __m256i {
    // SAFETY: register-only intrinsics.
    unsafe {
        let z = _mm256_setzero_si256();
        let off = _mm256_set1_epi8(F::OFF as i8);
        if F::OFF == 0 || (!VNNI && F::SIGNED) {
            z
        } else if VNNI {
            _mm256_sub_epi32(z, _mm256_dpbusd_epi32(z, off, y))
        } else {
            _mm256_maddubs_epi16(off, y)
        }
    }
}

/// The block's eight i32 lanes (lane `j`: elements `4j..4j + 4`), exact: with VNNI
/// `vpdpbusd(seed, q, y)`; without, `vpmaddubsw` pair sums (unsigned `q`: at most
/// `2 · 31 · 128` minus the seed's `2 · 16 · 128`; signed: `|w| × ±y`, at most `2 · 128 · 127`,
/// exact as long as `y` has no −128, which the Q8 quantizers never produce), widened with
/// `vpmaddwd`.
///
/// # Safety
/// The module's features (+VNNI when `VNNI`).
#[inline(always)]
unsafe fn lanes<F: Legacy, const VNNI: bool>(q: __m256i, y: __m256i, seed: __m256i) -> __m256i {
    // SAFETY: register-only intrinsics.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        if VNNI {
            _mm256_dpbusd_epi32(seed, q, y)
        } else if F::SIGNED {
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q));
            _mm256_madd_epi16(p, ones)
        } else if F::OFF == 0 {
            _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), ones)
        } else {
            _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(q, y), seed), ones)
        }
    }
}

/// Blocks per chunk of [`legacy_tile`]'s scale pass.
const CK: usize = 16;

/// `F` × Q8 for `NR` weight rows `w` by `NT` activation rows `x` (`NT ≤ 8`), `nb` blocks each:
/// `out[r][t]` is exactly `scalar::dot_<format>` of row `r` and activation row `t`. Per chunk
/// of [`CK`] blocks, first the scales: `d_w d_x` for every (row, activation row, block), eight
/// blocks per multiply (a chunk's last blocks short of eight as the eight blocks ending there,
/// when the row has that many), into a stack buffer (and for Q4_1/Q5_1 `m_w` per row and `s_x` per
/// block and activation row; with one activation row each block's `(d, m)` and `(d, s)` pair
/// is one 4-byte read, [`dm_pairs8`]: Q4_1 rows about 15% faster than two [`f16x8`]); then per block the activation rows' bytes and seeds, and per
/// weight row the decoded bytes, each pair's lanes converted and accumulated with
/// `fma(lanes, d_w d_x, acc)` (the scale a broadcast memory operand). The `m_w s_x` terms run
/// in one register per weight row, lane `t` for activation row `t` (with one activation row,
/// as a scalar per weight row): `summs = fma(m_w, s_x, summs)` per block. At the end
/// `hsum8(acc)` (+ `summs`).
///
/// # Safety
/// Each `w[r]`: `nb` blocks of `F`, each `x[t]`: `nb` activation blocks; `NT ≤ 8`; the
/// module's features (+VNNI when `VNNI`).
#[inline(always)]
unsafe fn legacy_tile<F: Legacy, const VNNI: bool, const NR: usize, const NT: usize>(
    w: [*const u8; NR],
    x: [*const u8; NT],
    nb: usize,
) -> [[f32; NT]; NR] {
    const { assert!(NT <= 8) };
    // SAFETY: block `i` of a weight row is bytes `WS i .. WS (i + 1)`, of an activation row
    // `XS i ..`; every load stays inside one block.
    unsafe {
        let (ws, xs) = (F::WS, F::XS);
        let yo = if F::MINS { 4 } else { 2 };
        let mut acc = [[_mm256_setzero_ps(); NT]; NR];
        let mut summs = [_mm256_setzero_ps(); NR];
        // d_w d_x of the chunk's blocks; m_w per row; s_x (f16 bits) per block, lane t. Block
        // `k` of the chunk sits at index `PAD + k` (below `PAD`: scratch for the tail pass).
        const PAD: usize = 8;
        let mut dd = [[[0.0f32; PAD + CK]; NT]; NR];
        let mut mw = [[0.0f32; PAD + CK]; NR];
        let mut sx = [[0i16; 8]; CK];
        // One activation row: s_x as f32 and scalar `m_w s_x` chains (cheaper than a vector).
        let mut sxf = [0.0f32; PAD + CK];
        let mut summs1 = [0.0f32; NR];
        // The scales of the eight blocks from block `b` of the rows, stored from index `s`.
        macro_rules! scales8 {
            ($b:expr, $s:expr) => {{
                let (b, s) = ($b, $s);
                // Formats with mins: (d, m) and (d, s) as one 4-byte read per block.
                let dx: [__m256; NT] = std::array::from_fn(|t| {
                    if F::MINS && NT == 1 {
                        let (d, sv) = dm_pairs8(x[t].add(xs * b), xs);
                        _mm256_storeu_ps(sxf.as_mut_ptr().add(s), sv);
                        d
                    } else {
                        f16x8(x[t].add(xs * b), xs)
                    }
                });
                for r in 0..NR {
                    let wk = w[r].add(ws * b);
                    let (dw, m) = if F::MINS {
                        dm_pairs8(wk, ws)
                    } else {
                        (f16x8(wk, ws), _mm256_setzero_ps())
                    };
                    for t in 0..NT {
                        _mm256_storeu_ps(dd[r][t].as_mut_ptr().add(s), _mm256_mul_ps(dw, dx[t]));
                    }
                    if F::MINS {
                        _mm256_storeu_ps(mw[r].as_mut_ptr().add(s), m);
                    }
                }
            }};
        }
        let mut i0 = 0;
        while i0 < nb {
            let cn = CK.min(nb - i0);
            let mut k = 0;
            while k + 8 <= cn {
                scales8!(i0 + k, PAD + k);
                k += 8;
            }
            if k < cn && i0 + cn >= 8 {
                // The last eight blocks again (the same products for the blocks already done;
                // those of the previous chunk land in the scratch below `PAD`).
                scales8!(i0 + cn - 8, PAD + cn - 8);
                k = cn;
            }
            while k < cn {
                for t in 0..NT {
                    let dx = f16_at(x[t].add(xs * (i0 + k)));
                    for r in 0..NR {
                        dd[r][t][PAD + k] = f16_at(w[r].add(ws * (i0 + k))) * dx;
                    }
                }
                if F::MINS {
                    for r in 0..NR {
                        mw[r][PAD + k] = f16_at(w[r].add(ws * (i0 + k) + 2));
                    }
                    sxf[PAD + k] = f16_at(x[0].add(xs * (i0 + k) + 2));
                }
                k += 1;
            }
            if F::MINS && NT > 1 {
                for (k, s) in sx.iter_mut().enumerate().take(cn) {
                    for t in 0..NT {
                        s[t] = rd16(x[t].add(xs * (i0 + k) + 2));
                    }
                }
            }
            for k in 0..cn {
                let i = i0 + k;
                let y: [__m256i; NT] = std::array::from_fn(|t| load32(x[t].add(xs * i + yo)));
                let sd: [__m256i; NT] = std::array::from_fn(|t| seed::<F, VNNI>(y[t]));
                if F::MINS && NT == 1 {
                    for r in 0..NR {
                        summs1[r] = mw[r][PAD + k].mul_add(sxf[PAD + k], summs1[r]);
                    }
                } else if F::MINS {
                    let s = _mm256_cvtph_ps(load16(sx[k].as_ptr().cast()));
                    for r in 0..NR {
                        summs[r] = _mm256_fmadd_ps(_mm256_set1_ps(mw[r][PAD + k]), s, summs[r]);
                    }
                }
                for r in 0..NR {
                    let q = F::quants::<VNNI>(w[r].add(ws * i));
                    for t in 0..NT {
                        let s = lanes::<F, VNNI>(q, y[t], sd[t]);
                        acc[r][t] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(s),
                            _mm256_set1_ps(dd[r][t][PAD + k]),
                            acc[r][t],
                        );
                    }
                }
            }
            i0 += cn;
        }
        let mut out = [[0.0f32; NT]; NR];
        for r in 0..NR {
            let mut m = [0.0f32; 8];
            _mm256_storeu_ps(m.as_mut_ptr(), summs[r]);
            for t in 0..NT {
                out[r][t] = avx2::hsum_ps(acc[r][t]);
                if F::MINS {
                    out[r][t] += if NT == 1 { summs1[r] } else { m[t] };
                }
            }
        }
        out
    }
}

/// One [`legacy_tile`] call for rows `r0 .. r0 + NR` and activation rows `t0 .. t0 + NT`,
/// written to `out[r * os + t]`.
///
/// # Safety
/// The rows and activation rows are in bounds of `w` (`wrb` bytes each) and `x` (`xrb`), with
/// `nb` blocks; `out` holds index `(r0 + NR − 1) os + t0 + NT − 1`; the module's features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn legacy_store<F: Legacy, const VNNI: bool, const NR: usize, const NT: usize>(
    w: &[u8],
    wrb: usize,
    x: &[u8],
    xrb: usize,
    out: &mut [f32],
    os: usize,
    (r0, t0, nb): (usize, usize, usize),
) {
    // SAFETY: caller's contract.
    let o = unsafe {
        legacy_tile::<F, VNNI, NR, NT>(
            std::array::from_fn(|r| w.as_ptr().add((r0 + r) * wrb)),
            std::array::from_fn(|t| x.as_ptr().add((t0 + t) * xrb)),
            nb,
        )
    };
    for (r, o) in o.iter().enumerate() {
        out[(r0 + r) * os + t0..][..NT].copy_from_slice(o);
    }
}

/// The rows driver of the 32-element formats: one activation row in [`legacy_tile`]s of 8
/// weight rows (then 4, then 1; rows streamed from memory go to [`legacy_stream_rows`]
/// instead, through `StreamKernels`); several, with VNNI and rows of at most
/// [`BATCH_NB`] blocks, the batch kernel [`legacy_batch`]; otherwise tiles of 4 weight rows by
/// 4 activation rows (the rest of the activation rows one at a time, the rest of the weight
/// rows one at a time). Every output is the same bits whatever the kernel and tile.
///
/// # Safety
/// `w` holds `rows` rows of `wrb` bytes, `x` `n_x` rows of `xrb` bytes, each `nb` blocks of
/// `F`; `out` as `check_rows` checks; the module's features (+VNNI when `VNNI`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn legacy_rows<F: Legacy, const VNNI: bool>(
    w: &[u8],
    wrb: usize,
    x: &[u8],
    xrb: usize,
    out: &mut [f32],
    os: usize,
    (nb, rows, n_x): (usize, usize, usize),
) {
    // SAFETY: (all calls) the tiles' rows and activation rows are in bounds (the loops stop
    // at `rows` and `n_x`), which with the caller's contract is `legacy_store`'s.
    unsafe {
        let mut r = 0;
        if n_x == 1 {
            while r + 8 <= rows {
                legacy_store::<F, VNNI, 8, 1>(w, wrb, x, xrb, out, os, (r, 0, nb));
                r += 8;
            }
            while r + 4 <= rows {
                legacy_store::<F, VNNI, 4, 1>(w, wrb, x, xrb, out, os, (r, 0, nb));
                r += 4;
            }
            while r < rows {
                legacy_store::<F, VNNI, 1, 1>(w, wrb, x, xrb, out, os, (r, 0, nb));
                r += 1;
            }
            return;
        }
        if VNNI && nb <= BATCH_NB {
            legacy_batch::<F>(w, wrb, x, xrb, out, os, (nb, rows, n_x));
            return;
        }
        while r + 4 <= rows {
            let mut t = 0;
            while t + 4 <= n_x {
                legacy_store::<F, VNNI, 4, 4>(w, wrb, x, xrb, out, os, (r, t, nb));
                t += 4;
            }
            while t < n_x {
                legacy_store::<F, VNNI, 4, 1>(w, wrb, x, xrb, out, os, (r, t, nb));
                t += 1;
            }
            r += 4;
        }
        while r < rows {
            let mut t = 0;
            while t + 4 <= n_x {
                legacy_store::<F, VNNI, 1, 4>(w, wrb, x, xrb, out, os, (r, t, nb));
                t += 4;
            }
            while t < n_x {
                legacy_store::<F, VNNI, 1, 1>(w, wrb, x, xrb, out, os, (r, t, nb));
                t += 1;
            }
            r += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The 32-element formats × one activation row (the one-token path).
// ---------------------------------------------------------------------------------------------

/// The two f16 at the start of each of the eight blocks at `p`, `p + stride`, ..., `p + 7
/// stride` (Q4_1/Q5_1: `d`, `m`; Q8_1: `d`, `s`) as f32: one 4-byte read per block, about 11%
/// faster for Q4_1 rows than two [`f16x8`] (a `vpgatherdd` measured slower than either).
///
/// # Safety
/// The eight 4-byte fields readable; AVX-512F/VL, F16C.
#[inline(always)]
unsafe fn dm_pairs8(p: *const u8, stride: usize) -> (__m256, __m256) {
    // SAFETY: reads the eight 4-byte fields.
    unsafe {
        let rd = |k: usize| p.add(k * stride).cast::<i32>().read_unaligned();
        let v = _mm256_setr_epi32(rd(0), rd(1), rd(2), rd(3), rd(4), rd(5), rd(6), rd(7));
        let d = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(v));
        let m = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_srli_epi32(v, 16)));
        (d, m)
    }
}

/// `F` × Q8 for the `NR` weight rows at `w`, `w + wrb`, ... against the one activation row `x`,
/// `nb` blocks each: exactly [`legacy_tile`]`::<F, VNNI, NR, 1>` (the same operations in the
/// same order), and in addition, per block, `pf_per` cache lines from `pf` on (consecutive
/// lines) are requested into L2, so that the rows to come arrive while these are worked on.
///
/// # Safety
/// Each row: `nb` blocks of `F`, `x`: `nb` activation blocks; the module's features (+VNNI
/// when `VNNI`). `pf` may point anywhere (prefetches never fault; it is never dereferenced).
#[inline(always)]
unsafe fn legacy_gemv<F: Legacy, const VNNI: bool, const NR: usize>(
    w: *const u8,
    wrb: usize,
    x: *const u8,
    nb: usize,
    (pf, pf_per): (*const u8, usize),
) -> [f32; NR] {
    // SAFETY: block `i` of weight row `r` is bytes `wrb r + WS i .. WS (i + 1)`, of the
    // activation row `XS i ..`; every load stays inside one block. Prefetches do not access
    // memory.
    unsafe {
        let (ws, xs) = (F::WS, F::XS);
        let yo = if F::MINS { 4 } else { 2 };
        let wr: [*const u8; NR] = std::array::from_fn(|r| w.add(r * wrb));
        let mut acc = [_mm256_setzero_ps(); NR];
        // d_w d_x of the chunk's blocks, m_w (Q4_1/Q5_1), s_x: block `k` of the chunk at
        // index `PAD + k` (below `PAD`: scratch for the tail pass), as in `legacy_tile`.
        const PAD: usize = 8;
        let mut dd = [[0.0f32; PAD + CK]; NR];
        let mut mw = [[0.0f32; PAD + CK]; NR];
        let mut sxf = [0.0f32; PAD + CK];
        let mut summs = [0.0f32; NR];
        let mut pfp = pf;
        macro_rules! scales8 {
            ($b:expr, $s:expr) => {{
                let (b, s) = ($b, $s);
                // Q4_1/Q5_1 (and Q8_1): `d` and `m` (`s`) with one 4-byte read per block.
                let (dx, sx) = if F::MINS {
                    dm_pairs8(x.add(xs * b), xs)
                } else {
                    (f16x8(x.add(xs * b), xs), _mm256_setzero_ps())
                };
                for r in 0..NR {
                    let wk = wr[r].add(ws * b);
                    if F::MINS {
                        let (dw, m) = dm_pairs8(wk, ws);
                        _mm256_storeu_ps(dd[r].as_mut_ptr().add(s), _mm256_mul_ps(dw, dx));
                        _mm256_storeu_ps(mw[r].as_mut_ptr().add(s), m);
                    } else {
                        let dw = f16x8(wk, ws);
                        _mm256_storeu_ps(dd[r].as_mut_ptr().add(s), _mm256_mul_ps(dw, dx));
                    }
                }
                if F::MINS {
                    _mm256_storeu_ps(sxf.as_mut_ptr().add(s), sx);
                }
            }};
        }
        let mut i0 = 0;
        while i0 < nb {
            let cn = CK.min(nb - i0);
            let mut k = 0;
            while k + 8 <= cn {
                scales8!(i0 + k, PAD + k);
                k += 8;
            }
            if k < cn && i0 + cn >= 8 {
                scales8!(i0 + cn - 8, PAD + cn - 8);
                k = cn;
            }
            while k < cn {
                let dx = f16_at(x.add(xs * (i0 + k)));
                for r in 0..NR {
                    dd[r][PAD + k] = f16_at(wr[r].add(ws * (i0 + k))) * dx;
                    if F::MINS {
                        mw[r][PAD + k] = f16_at(wr[r].add(ws * (i0 + k) + 2));
                    }
                }
                if F::MINS {
                    sxf[PAD + k] = f16_at(x.add(xs * (i0 + k) + 2));
                }
                k += 1;
            }
            for k in 0..cn {
                let i = i0 + k;
                let y = load32(x.add(xs * i + yo));
                let sd = seed::<F, VNNI>(y);
                if F::MINS {
                    for r in 0..NR {
                        summs[r] = mw[r][PAD + k].mul_add(sxf[PAD + k], summs[r]);
                    }
                }
                for r in 0..NR {
                    let q = F::quants::<VNNI>(wr[r].add(ws * i));
                    let s = lanes::<F, VNNI>(q, y, sd);
                    acc[r] = _mm256_fmadd_ps(
                        _mm256_cvtepi32_ps(s),
                        _mm256_set1_ps(dd[r][PAD + k]),
                        acc[r],
                    );
                }
                for _ in 0..pf_per {
                    _mm_prefetch::<_MM_HINT_T1>(pfp.cast());
                    pfp = pfp.wrapping_add(64);
                }
            }
            i0 += cn;
        }
        std::array::from_fn(|r| {
            let h = avx2::hsum_ps(acc[r]);
            if F::MINS { h + summs[r] } else { h }
        })
    }
}

/// How far ahead of the rows being worked on [`legacy_rows1`] prefetches, in bytes. With the
/// prefetches spread over the blocks (a few per block) rather than in a burst per call, a
/// matrix larger than the caches streams at nearly the memory bandwidth (Zen 4: 8 KiB to 24
/// KiB measured alike, 4 KiB far slower).
const GEMV_AHEAD: usize = 12 << 10;

/// One activation row: the rows in tiles of `NR` (then 4, then 1) with [`legacy_gemv`], each
/// tile prefetching the bytes [`GEMV_AHEAD`] further on, as many as it reads (so a call over
/// consecutive rows requests every line once, ahead of its use), spread over its blocks. The
/// lines past the end of `w` are requested too (prefetches never fault): they are usually the
/// rows the caller hands over next.
///
/// # Safety
/// As [`legacy_rows`] with `n_x = 1`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn legacy_rows1<F: Legacy, const VNNI: bool, const NR: usize>(
    w: &[u8],
    wrb: usize,
    x: &[u8],
    out: &mut [f32],
    os: usize,
    (nb, rows): (usize, usize),
) {
    let per = |nr: usize| (nr * wrb).div_ceil(64).div_ceil(nb);
    let mut r = 0;
    macro_rules! tiles {
        ($nr:expr) => {{
            let p = per($nr);
            while rows - r >= $nr {
                // SAFETY: rows `r .. r + nr` are inside `w` (`r + nr <= rows`), each `nb` blocks;
                // the prefetch address is only a hint.
                let o = unsafe {
                    let base = w.as_ptr().add(r * wrb);
                    legacy_gemv::<F, VNNI, { $nr }>(
                        base,
                        wrb,
                        x.as_ptr(),
                        nb,
                        (base.wrapping_add(GEMV_AHEAD), p),
                    )
                };
                for (j, v) in o.into_iter().enumerate() {
                    out[(r + j) * os] = v;
                }
                r += $nr;
            }
        }};
    }
    tiles!(NR);
    tiles!(4);
    tiles!(1);
}

/// The rows driver of the streaming kernels (`StreamKernels`): one activation row with
/// [`legacy_rows1`]; several (not a call `matmul` makes) with [`legacy_rows`].
///
/// # Safety
/// As [`legacy_rows`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn legacy_stream_rows<F: Legacy, const VNNI: bool>(
    w: &[u8],
    wrb: usize,
    x: &[u8],
    xrb: usize,
    out: &mut [f32],
    os: usize,
    (nb, rows, n_x): (usize, usize, usize),
) {
    // SAFETY: caller's contract, which is what both drivers need.
    unsafe {
        if n_x == 1 {
            legacy_rows1::<F, VNNI, 8>(w, wrb, x, out, os, (nb, rows));
        } else {
            legacy_rows::<F, VNNI>(w, wrb, x, xrb, out, os, (nb, rows, n_x));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The 32-element formats with VNNI, several activation rows: the batch kernel.
// ---------------------------------------------------------------------------------------------

/// Most blocks per row [`legacy_batch`] takes (the size of its stack buffers); longer rows go
/// through [`legacy_tile`]'s 4 × 4 tiles.
const BATCH_NB: usize = 64;
/// Activation rows per group of [`legacy_batch`] (the scale buffers hold one group).
const BATCH_TG: usize = 64;
/// Weight rows per tile of [`legacy_batch`].
const BATCH_R: usize = 4;

/// `F` × Q8 with VNNI for `rows` weight rows by `n_x ≥ 2` activation rows of `nb ≤ BATCH_NB`
/// blocks: `out[r os + t]` is exactly `scalar::dot_<format>` of row `r` and activation row `t`,
/// the same bits as [`legacy_tile`].
///
/// The products run in 512-bit registers holding two (row, activation row) pairs: lane `2k`
/// is lane `k` of activation row `t`, lane `2k + 1` lane `k` of activation row `t + 1`, both
/// with the same weight row, whose four-byte groups are therefore each stored twice. Tiles of
/// [`BATCH_R`] weight rows by up to 8 activation rows (four pairs), one accumulator per row and
/// pair; per block `vpdpbusd`, `vcvtdq2ps` and `fma(lanes, d_w d_x, acc)` with the two scales
/// as one 64-bit broadcast. Everything that does not depend on both sides is done once:
/// per group of up to [`BATCH_TG`] activation rows, their `d_x` (and `s_x`) as f32 and their
/// bytes interleaved in pairs (plus 128 for formats with an offset; [`batch_pairs`], 22% less
/// time than pairing them in every tile, which repeated the work for every row group); per tile
/// row group, the weights decoded, doubled and (formats with an offset) made signed,
/// `q − OFF`, multiplied with the activations plus 128 (unsigned), the `−128 Σ w` seed of each
/// lane beside them, `d_w` (and `m_w`) as f32; per tile, the products `d_w d_x` (one f32
/// multiply per pair, eight activation rows per instruction). Q4_1/Q5_1 (no offset) multiply
/// their unsigned `q` with the signed activations directly, and run `summs = fma(m_w, s_x,
/// summs)` with lane `t` for activation row `t`. At the end `hsum8` of each pair's lanes
/// (+ `summs`).
///
/// # Safety
/// `w` holds `rows` rows of `wrb` bytes, `x` `n_x` rows of `xrb` bytes, each `nb` blocks of
/// `F`, `2 ≤ n_x`, `nb ≤ BATCH_NB`; `out` holds index `(rows − 1) os + n_x − 1`; AVX-512
/// F/BW/VL, VNNI, AVX2, FMA, F16C.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn legacy_batch<F: Legacy>(
    w: &[u8],
    wrb: usize,
    x: &[u8],
    xrb: usize,
    out: &mut [f32],
    os: usize,
    (nb, rows, n_x): (usize, usize, usize),
) {
    use std::mem::MaybeUninit;
    const R: usize = BATCH_R;
    // Activation scales of a group, `[block][token slot]`; slots past the group's last
    // activation row (up to the next multiple of 8) repeat it.
    let mut dx = MaybeUninit::<[f32; BATCH_NB * BATCH_TG]>::uninit();
    let mut sx = MaybeUninit::<[f32; BATCH_NB * BATCH_TG]>::uninit();
    // A row group's weights: `[block][row]` doubled bytes, seeds, d_w, m_w.
    let mut wq = MaybeUninit::<[__m512i; BATCH_NB * R]>::uninit();
    let mut sd = MaybeUninit::<[__m512i; BATCH_NB * R]>::uninit();
    let mut dw = MaybeUninit::<[f32; BATCH_NB * R]>::uninit();
    let mut mw = MaybeUninit::<[f32; BATCH_NB * R]>::uninit();
    // A tile's `d_w d_x`: `[block][row][token slot 0..8]`.
    let mut dd = MaybeUninit::<[f32; BATCH_NB * R * 8]>::uninit();
    let mut ybuf = BATCH_Y.take();
    ybuf.resize(BATCH_TG / 2 * nb, Zmm([0; 64]));
    let bufs = BatchBufs {
        yb: ybuf.as_mut_ptr().cast(),
        dx: dx.as_mut_ptr().cast(),
        sx: sx.as_mut_ptr().cast(),
        wq: wq.as_mut_ptr().cast(),
        sd: sd.as_mut_ptr().cast(),
        dw: dw.as_mut_ptr().cast(),
        mw: mw.as_mut_ptr().cast(),
        dd: dd.as_mut_ptr().cast(),
    };
    let xs = F::XS;
    // SAFETY: every read of a buffer is of an element written before in the same group / row
    // group / tile (the loops below write blocks `0..nb`, slots `0..gn.next_multiple_of(8)`,
    // rows `0..R`); weight and activation reads stay inside the rows' blocks (row indices are
    // clamped to the last real row / activation row); `out` is written only for real rows and
    // activation rows.
    unsafe {
        let mut g0 = 0;
        while g0 < n_x {
            let gn = (n_x - g0).min(BATCH_TG);
            let slots = gn.next_multiple_of(8);
            for b in 0..nb {
                for s in 0..slots {
                    let xb = x.as_ptr().add((g0 + s.min(gn - 1)) * xrb + xs * b);
                    *bufs.dx.add(b * BATCH_TG + s) = f16_at(xb);
                    if F::MINS {
                        *bufs.sx.add(b * BATCH_TG + s) = f16_at(xb.add(2));
                    }
                }
            }
            batch_pairs::<F>(x.as_ptr().add(g0 * xrb), xrb, gn, nb, bufs.yb);
            let mut r0 = 0;
            while r0 < rows {
                let wp: [*const u8; R] =
                    std::array::from_fn(|r| w.as_ptr().add((r0 + r).min(rows - 1) * wrb));
                batch_weights::<F>(wp, nb, bufs);
                let mut t0 = 0;
                while t0 < gn {
                    let tn = (gn - t0).min(8);
                    let o = out.as_mut_ptr().add(r0 * os + g0 + t0);
                    let (nr, sl) = ((rows - r0).min(R), (t0, tn));
                    match tn.div_ceil(2) {
                        1 => batch_tile::<F, 1>(nb, bufs, sl, o, os, nr),
                        2 => batch_tile::<F, 2>(nb, bufs, sl, o, os, nr),
                        3 => batch_tile::<F, 3>(nb, bufs, sl, o, os, nr),
                        _ => batch_tile::<F, 4>(nb, bufs, sl, o, os, nr),
                    }
                    t0 += tn;
                }
                r0 += R;
            }
            g0 += gn;
        }
    }
    BATCH_Y.set(ybuf);
}

thread_local! {
    /// [`legacy_batch`]'s activation pairs (`BatchBufs::yb`), reused across calls on a thread.
    static BATCH_Y: std::cell::RefCell<Vec<Zmm>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// 64 bytes on a cache line of their own (the element of [`BATCH_Y`]).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Zmm([u8; 64]);

/// A group's activation pairs into `yb` (see [`BatchBufs::yb`]): `gn` activation rows at `x`
/// (`xrb` bytes apart, `nb` blocks each), pairs up to the next multiple of 8 rows, rows past
/// the last one repeating it.
///
/// # Safety
/// `x` holds `gn ≥ 1` rows; `yb` writable for `gn.next_multiple_of(8) / 2 * nb` registers;
/// [`legacy_batch`]'s features.
#[inline(always)]
unsafe fn batch_pairs<F: Legacy>(x: *const u8, xrb: usize, gn: usize, nb: usize, yb: *mut __m512i) {
    // SAFETY: caller's contract; row indices are clamped to `gn - 1`, loads stay in a block.
    unsafe {
        let pair = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let yo = if F::MINS { 4 } else { 2 };
        for p in 0..gn.next_multiple_of(8) / 2 {
            let ra = x.add((2 * p).min(gn - 1) * xrb + yo);
            let rb = x.add((2 * p + 1).min(gn - 1) * xrb + yo);
            for b in 0..nb {
                let ya = load32(ra.add(F::XS * b));
                let yb2 = load32(rb.add(F::XS * b));
                let v = _mm512_permutex2var_epi32(
                    _mm512_castsi256_si512(ya),
                    pair,
                    _mm512_castsi256_si512(yb2),
                );
                let v = if F::OFF == 0 {
                    v
                } else {
                    _mm512_xor_si512(v, _mm512_set1_epi8(-128))
                };
                _mm512_storeu_si512(yb.add(p * nb + b).cast(), v);
            }
        }
    }
}

/// [`legacy_batch`]'s stack buffers (raw pointers: parts are written and read piecewise).
#[derive(Clone, Copy)]
struct BatchBufs {
    dx: *mut f32,
    sx: *mut f32,
    wq: *mut __m512i,
    sd: *mut __m512i,
    dw: *mut f32,
    mw: *mut f32,
    dd: *mut f32,
    /// The group's activation pairs per block, `[pair][block]`: the bytes of activation rows
    /// `2p` and `2p + 1` interleaved by four-byte groups (plus 128 for formats with an offset).
    yb: *mut __m512i,
}

/// A row group's weights into `bufs` (see [`legacy_batch`]): per block and row the 32 weight
/// bytes with each four-byte group doubled (signed `q − OFF`, or the unsigned `q` when the
/// format has no offset), the seeds `−128 Σ w` of the lanes (formats with an offset), `d_w` and
/// `m_w`.
///
/// # Safety
/// Each `wp[r]` holds `nb ≤ BATCH_NB` blocks of `F`; `bufs` as [`legacy_batch`] makes them;
/// [`legacy_batch`]'s features.
#[inline(always)]
unsafe fn batch_weights<F: Legacy>(wp: [*const u8; BATCH_R], nb: usize, bufs: BatchBufs) {
    // SAFETY: caller's contract; indices `b R + r < BATCH_NB R`.
    unsafe {
        let dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        let z = _mm512_setzero_si512();
        for b in 0..nb {
            for (r, &p) in wp.iter().enumerate() {
                let wb = p.add(F::WS * b);
                let q = F::quants::<false>(wb);
                let q = if F::OFF == 0 || F::SIGNED {
                    q
                } else {
                    _mm256_sub_epi8(q, _mm256_set1_epi8(F::OFF as i8))
                };
                let q = _mm512_permutexvar_epi32(dup, _mm512_castsi256_si512(q));
                let i = b * BATCH_R + r;
                _mm512_storeu_si512(bufs.wq.add(i).cast(), q);
                if F::OFF != 0 {
                    let s = _mm512_dpbusd_epi32(z, _mm512_set1_epi8(-128), q);
                    _mm512_storeu_si512(bufs.sd.add(i).cast(), _mm512_sub_epi32(z, s));
                }
                *bufs.dw.add(i) = f16_at(wb);
                if F::MINS {
                    *bufs.mw.add(i) = f16_at(wb.add(2));
                }
            }
        }
    }
}

/// One tile of [`legacy_batch`]: the prepared row group (`bufs`) by the group's activation
/// pairs `t0 / 2 .. t0 / 2 + TP` (`2 TP` rows, the last ones possibly repeats), tile slots
/// `t0 .. t0 + tn` of the group; writes `o[r os + t]` for `r < nr`, `t < tn`.
///
/// # Safety
/// As [`legacy_batch`]: `bufs` prepared for the row group and the group (scales and pairs),
/// `t0` even, `t0 + 8 ≤ BATCH_TG`, `o` writable at those indices.
#[inline(always)]
unsafe fn batch_tile<F: Legacy, const TP: usize>(
    nb: usize,
    bufs: BatchBufs,
    (t0, tn): (usize, usize),
    o: *mut f32,
    os: usize,
    nr: usize,
) {
    const R: usize = BATCH_R;
    // SAFETY: caller's contract.
    unsafe {
        // d_w d_x for the tile's eight slots.
        for b in 0..nb {
            let dxv = _mm256_loadu_ps(bufs.dx.add(b * BATCH_TG + t0));
            for r in 0..R {
                let i = b * R + r;
                let v = _mm256_mul_ps(_mm256_set1_ps(*bufs.dw.add(i)), dxv);
                _mm256_storeu_ps(bufs.dd.add(i * 8), v);
            }
        }
        let z = _mm512_setzero_si512();
        let mut acc = [[_mm512_setzero_ps(); TP]; R];
        let mut summs = [_mm256_setzero_ps(); R];
        let yt = bufs.yb.add(t0 / 2 * nb);
        for b in 0..nb {
            let y: [__m512i; TP] =
                std::array::from_fn(|p| _mm512_loadu_si512(yt.add(p * nb + b).cast()));
            for r in 0..R {
                let i = b * R + r;
                let q = _mm512_loadu_si512(bufs.wq.add(i).cast());
                let s = if F::OFF == 0 {
                    z
                } else {
                    _mm512_loadu_si512(bufs.sd.add(i).cast())
                };
                for p in 0..TP {
                    let l = if F::OFF == 0 {
                        _mm512_dpbusd_epi32(z, q, y[p])
                    } else {
                        _mm512_dpbusd_epi32(s, y[p], q)
                    };
                    let d = bufs.dd.add(i * 8 + 2 * p).cast::<i64>().read_unaligned();
                    let d = _mm512_castsi512_ps(_mm512_set1_epi64(d));
                    acc[r][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(l), d, acc[r][p]);
                }
                if F::MINS {
                    let sv = _mm256_loadu_ps(bufs.sx.add(b * BATCH_TG + t0));
                    let m = _mm256_set1_ps(*bufs.mw.add(i));
                    summs[r] = _mm256_fmadd_ps(m, sv, summs[r]);
                }
            }
        }
        // `hsum8` of both pairs of a register at once: lanes `2k` (activation row `t`) and
        // `2k + 1` (`t + 1`) go through the same tree, `(a_k + a_{k+4})`, then
        // `(r_0 + r_2) + (r_1 + r_3)`, ending in lanes 0 and 1.
        for r in 0..nr.min(R) {
            let mut m = [0.0f32; 8];
            _mm256_storeu_ps(m.as_mut_ptr(), summs[r]);
            for (p, &a) in acc[r].iter().enumerate() {
                let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
                let s = _mm256_add_ps(_mm512_castps512_ps256(a), hi);
                let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
                let mut s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                if F::MINS {
                    s = _mm_add_ps(
                        s,
                        _mm_castsi128_ps(_mm_loadu_si64(m.as_ptr().add(2 * p).cast())),
                    );
                }
                let dst = o.add(r * os + 2 * p);
                if 2 * p + 1 < tn {
                    _mm_storeu_si64(dst.cast(), _mm_castps_si128(s));
                } else {
                    _mm_store_ss(dst, s);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q4_K / Q5_K × Q8_K on llama.cpp's batch paths. Q8_K: d f32 at 0, qs at 4, bsums at 260.
// ---------------------------------------------------------------------------------------------

/// Byte offsets in a Q8_K block.
pub(super) const Q8K_QS: usize = 4;
pub(super) const Q8K_BSUMS: usize = 260;

/// Which of llama.cpp's batch code paths a Q4_K / Q5_K path kernel rounds like.
const GEMV: u8 = 0;
const GEMM: u8 = 1;
const TILED: u8 = 2;

/// `vpshufb` controls for [`k4_path_tile`]'s scale words: in each 128-bit lane, words 0..4
/// are word `2j` and words 4..8 word `2j + 1` of the 8 scale words (the layout of
/// `vpackssdw(low-nibble sums, high-nibble sums)` for pair `j`).
const fn k4_pair_ctrl(j: usize) -> [u8; 32] {
    let mut c = [0u8; 32];
    let mut b = 0;
    while b < 32 {
        let word = (b % 16) / 2;
        let src = if word < 4 { 2 * j } else { 2 * j + 1 };
        c[b] = (2 * src + b % 2) as u8;
        b += 1;
    }
    c
}

/// [`k4_pair_ctrl`] for the four pairs.
static K4_PAIR_CTRL: [[u8; 32]; 4] = [
    k4_pair_ctrl(0),
    k4_pair_ctrl(1),
    k4_pair_ctrl(2),
    k4_pair_ctrl(3),
];

/// The `vpshufb` control pair (as an i16) that picks word `w` of a 128-bit lane.
const fn word_ctrl(w: usize) -> i16 {
    (((2 * w + 1) << 8) | (2 * w)) as i16
}

/// The sums of four vectors' eight i32 lanes, `[Σ s[0], Σ s[1], Σ s[2], Σ s[3]]` (exact).
///
/// # Safety
/// AVX2.
#[inline(always)]
unsafe fn reduce4(s: [__m256i; 4]) -> __m128i {
    // SAFETY: register-only intrinsics.
    unsafe {
        let h = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
        _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1))
    }
}

/// Q4_K (`Q5 = false`; 144 bytes: d 0, dmin 2, scales 4, qs 16) or Q5_K (`Q5`; 176 bytes:
/// qh 16, qs 48) × Q8_K as llama.cpp's batch path `PATH` rounds it, for `NR` weight rows by
/// up to four activation rows (`x[t]`, `t < NT ≤ 4`): `GEMV` = `scalar::dot_q4_k_8x8_gemv`,
/// `GEMM` = `scalar::dot_q4_k_8x8_gemm`, `TILED` = `scalar::dot_q4_k_tiled` /
/// `dot_q5_k_tiled`. Only exact integer totals enter the float operations, so the integer
/// work is free in its order: per 64-element pair of groups `j`, a row's low and high nibbles
/// (decoded once for the activation rows) against each activation row's bytes, with VNNI as
/// two `vpdpbusd` (four-element sums, at most `4 · 31 · 128`, so they pack to i16 exactly)
/// packed and multiplied by the two group scales with one `vpdpwssd`, without as
/// `vpmaddubsw` (at most `2 · 31 · 128`) and `vpmaddwd` by the scale. The four activation
/// rows' totals are reduced together, and the float operations of the path run with one
/// activation row per lane of a 128-bit register (each lane exactly the scalar operations).
/// The min term `Σ_g m[g]·(B[2g] + B[2g+1])` is exact in i32.
///
/// # Safety
/// Each `w[r]`: `nb` blocks, each `x[t]`: `nb` Q8_K blocks; `NT ≤ 4`; the module's features
/// (+VNNI when `VNNI`).
#[inline(always)]
unsafe fn k4_path_tile<
    const Q5: bool,
    const PATH: u8,
    const VNNI: bool,
    const NR: usize,
    const NT: usize,
>(
    w: [*const u8; NR],
    x: [*const u8; NT],
    nb: usize,
) -> [[f32; NT]; NR] {
    const { assert!(NT <= 4) };
    let bs = if Q5 { 176 } else { 144 };
    // SAFETY: block `i` of a row is bytes `bs i ..`, of `x[t]` `292 i ..`; loads stay inside.
    unsafe {
        let m4 = _mm256_set1_epi8(0x0F);
        let sixteen = _mm256_set1_epi8(16);
        let z = _mm256_setzero_si256();
        let ctrl: [__m256i; 4] = std::array::from_fn(|j| load32(K4_PAIR_CTRL[j].as_ptr()));
        let mut acc = [_mm_setzero_ps(); NR];
        let mut accm = [_mm_setzero_ps(); NR];
        for i in 0..nb {
            // Per activation row: d (lane t) and the 32-element sums B (8 i16).
            let mut ydv = [0.0f32; 4];
            let mut bpair = [_mm_setzero_si128(); NT];
            for t in 0..NT {
                let xb = x[t].add(292 * i);
                ydv[t] = xb.cast::<f32>().read_unaligned();
                let b = load32(xb.add(Q8K_BSUMS));
                // |bsum| ≤ 16 · 128, so a pair fits in i16.
                bpair[t] =
                    _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
            }
            let yd = _mm_loadu_ps(ydv.as_ptr());
            for r in 0..NR {
                let wb = w[r].add(bs * i);
                let (dw, dminw) = (f16_at(wb), f16_at(wb.add(2)));
                let packed: [u8; 12] = wb.add(4).cast::<[u8; 12]>().read_unaligned();
                let (sc, mn) = crate::kernels::scalar::k4_scales_mins(&packed);
                let sc = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(i64::from_le_bytes(sc)));
                let mn = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(i64::from_le_bytes(mn)));
                let sc2 = _mm256_broadcastsi128_si256(sc);
                let qh = if Q5 { load32(wb.add(16)) } else { z };
                let qs = wb.add(if Q5 { 48 } else { 16 });
                // Per activation row: the 8-lane integer sums of each pair `j` (GEMM) or of
                // the whole block.
                let mut sumi = [[z; 4]; NT];
                for (j, ctrl) in ctrl.iter().enumerate() {
                    let q4 = load32(qs.add(32 * j));
                    let mut lo = _mm256_and_si256(q4, m4);
                    let mut hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
                    if Q5 {
                        let b0 = _mm256_set1_epi8((1u32 << (2 * j)) as u8 as i8);
                        let b1 = _mm256_set1_epi8((1u32 << (2 * j + 1)) as u8 as i8);
                        let k0 = _mm256_test_epi8_mask(qh, b0);
                        let k1 = _mm256_test_epi8_mask(qh, b1);
                        lo = _mm256_mask_add_epi8(lo, k0, lo, sixteen);
                        hi = _mm256_mask_add_epi8(hi, k1, hi, sixteen);
                    }
                    let s = _mm256_shuffle_epi8(sc2, *ctrl);
                    let (slo, shi) = if VNNI {
                        (z, z)
                    } else {
                        (
                            _mm256_shuffle_epi8(sc2, _mm256_set1_epi16(word_ctrl(2 * j))),
                            _mm256_shuffle_epi8(sc2, _mm256_set1_epi16(word_ctrl(2 * j + 1))),
                        )
                    };
                    for t in 0..NT {
                        let y = x[t].add(292 * i + Q8K_QS + 64 * j);
                        let (y0, y1) = (load32(y), load32(y.add(32)));
                        let (k, a) = if PATH == GEMM {
                            (j, z)
                        } else {
                            // Two partial sums (pairs 0, 2 and 1, 3): shorter chains.
                            (j % 2, sumi[t][j % 2])
                        };
                        sumi[t][k] = if VNNI {
                            let p = _mm256_packs_epi32(
                                _mm256_dpbusd_epi32(z, lo, y0),
                                _mm256_dpbusd_epi32(z, hi, y1),
                            );
                            _mm256_dpwssds_epi32(a, p, s)
                        } else {
                            let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), slo);
                            let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), shi);
                            _mm256_add_epi32(a, _mm256_add_epi32(p0, p1))
                        };
                    }
                }
                // Min sums per activation row: 4 lanes (pairs of groups).
                let mins: [__m128i; 4] = std::array::from_fn(|t| {
                    if t < NT {
                        _mm_madd_epi16(bpair[t], mn)
                    } else {
                        _mm_setzero_si128()
                    }
                });
                let pad = |v: &[[__m256i; 4]; NT], k: usize| -> [__m256i; 4] {
                    std::array::from_fn(|t| if t < NT { v[t][k] } else { z })
                };
                let dwv = _mm_set1_ps(dw);
                match PATH {
                    GEMM => {
                        // Per pair: [activation rows] lanes; mins transposed to match.
                        let dd = _mm_mul_ps(dwv, yd);
                        let dm = _mm_mul_ps(_mm_set1_ps(dminw), yd);
                        let (m01l, m01h) = (
                            _mm_unpacklo_epi32(mins[0], mins[1]),
                            _mm_unpackhi_epi32(mins[0], mins[1]),
                        );
                        let (m23l, m23h) = (
                            _mm_unpacklo_epi32(mins[2], mins[3]),
                            _mm_unpackhi_epi32(mins[2], mins[3]),
                        );
                        let mt = [
                            _mm_unpacklo_epi64(m01l, m23l),
                            _mm_unpackhi_epi64(m01l, m23l),
                            _mm_unpacklo_epi64(m01h, m23h),
                            _mm_unpackhi_epi64(m01h, m23h),
                        ];
                        for (sb, mt) in mt.into_iter().enumerate() {
                            let isum = reduce4(pad(&sumi, sb));
                            acc[r] = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), dd, acc[r]);
                            accm[r] = _mm_fmadd_ps(_mm_cvtepi32_ps(mt), dm, accm[r]);
                        }
                    }
                    _ => {
                        let (s0, s1) = (pad(&sumi, 0), pad(&sumi, 1));
                        let tot = std::array::from_fn(|t| _mm256_add_epi32(s0[t], s1[t]));
                        let isum = _mm_cvtepi32_ps(reduce4(tot));
                        let imin = _mm_cvtepi32_ps(_mm_hadd_epi32(
                            _mm_hadd_epi32(mins[0], mins[1]),
                            _mm_hadd_epi32(mins[2], mins[3]),
                        ));
                        if PATH == GEMV {
                            acc[r] = _mm_fmadd_ps(isum, _mm_mul_ps(dwv, yd), acc[r]);
                            let dm = _mm_mul_ps(_mm_set1_ps(dminw), yd);
                            accm[r] = _mm_fmadd_ps(imin, dm, accm[r]);
                        } else {
                            let v = _mm_fmadd_ps(_mm_set1_ps(-dminw), imin, _mm_mul_ps(isum, dwv));
                            acc[r] = _mm_fmadd_ps(v, yd, acc[r]);
                        }
                    }
                }
            }
        }
        let mut out = [[0.0f32; NT]; NR];
        for r in 0..NR {
            let mut a = [0.0f32; 4];
            let mut m = [0.0f32; 4];
            _mm_storeu_ps(a.as_mut_ptr(), acc[r]);
            _mm_storeu_ps(m.as_mut_ptr(), accm[r]);
            for t in 0..NT {
                out[r][t] = if PATH == TILED { a[t] } else { a[t] - m[t] };
            }
        }
        out
    }
}

/// The rows driver of the Q4_K / Q5_K path kernels: one weight row at a time against four
/// activation rows at a time (the rest one at a time). Every output is one
/// [`k4_path_tile`] lane, the same bits whatever the tile.
///
/// # Safety
/// `w` holds `rows` rows of `wrb` bytes, `x` `n_x` rows of `xrb` bytes, each `nb` blocks;
/// `out` as `check_rows` checks; the module's features (+VNNI when `VNNI`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn k4_path_rows<const Q5: bool, const PATH: u8, const VNNI: bool>(
    w: &[u8],
    wrb: usize,
    x: &[u8],
    xrb: usize,
    out: &mut [f32],
    os: usize,
    (nb, rows, n_x): (usize, usize, usize),
) {
    let mut r0 = 0;
    if VNNI && PATH != GEMV && n_x >= LANES_NT && rows >= 8 {
        let mut buf = K4_PACK.take();
        // SAFETY: caller's contract.
        r0 = unsafe {
            lanes_rows::<K4Lanes<Q5, PATH>>(&mut buf, (w, wrb), (x, xrb), out, os, (nb, rows, n_x))
        };
        K4_PACK.set(buf);
    }
    for r in r0..rows {
        let wr = [w[r * wrb..].as_ptr()];
        let mut t = 0;
        while t + 4 <= n_x {
            // SAFETY: row `r` and activation rows `t .. t + 4` are in bounds (caller's
            // contract with the loop bounds).
            let [o] = unsafe {
                k4_path_tile::<Q5, PATH, VNNI, 1, 4>(
                    wr,
                    std::array::from_fn(|k| x[(t + k) * xrb..].as_ptr()),
                    nb,
                )
            };
            out[r * os + t..][..4].copy_from_slice(&o);
            t += 4;
        }
        while t < n_x {
            // SAFETY: as above, for activation row `t`.
            let [[o]] =
                unsafe { k4_path_tile::<Q5, PATH, VNNI, 1, 1>(wr, [x[t * xrb..].as_ptr()], nb) };
            out[r * os + t] = o;
            t += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q6_K × Q8_K (210 bytes: ql 0, qh 128, scales 192, d 208).
// ---------------------------------------------------------------------------------------------

/// Q6_K path kernels: llama.cpp's `vec_dot` lanes (`scalar::dot_q6_k`) or the tiled matmul's
/// block totals (`scalar::dot_q6_k_tiled`).
const VEC: u8 = 3;

/// `vpermw` indices of the scale words for Q6_K chunks `2p`, `2p + 1` (32 elements each,
/// chunk `c` holding groups `2c`, `2c + 1`) in [`q6k_tile`]'s word pairs: i32 lane `m` holds
/// `[chunk 2p lane m, chunk 2p + 1 lane m]`, whose groups are `2c + (m ≥ 4)`.
const fn q6k_scale_idx(p: usize) -> [i16; 16] {
    let mut idx = [0i16; 16];
    let mut k = 0;
    while k < 16 {
        let m = k / 2;
        let c = 2 * p + k % 2;
        idx[k] = (2 * c + if m >= 4 { 1 } else { 0 }) as i16;
        k += 1;
    }
    idx
}

/// [`q6k_scale_idx`] for the four chunk pairs.
static Q6K_SCALE_IDX: [[i16; 16]; 4] = [
    q6k_scale_idx(0),
    q6k_scale_idx(1),
    q6k_scale_idx(2),
    q6k_scale_idx(3),
];

/// The 32 unsigned 6-bit weights (`q`, the weight is `q − 32`) of the eight 32-element chunks
/// of a Q6_K block, chunk `c` = elements `32c ..`: per half `h`, ql bytes `64h ..` give the low
/// nibbles of chunks `4h`, `4h + 2` and the high ones of `4h + 1`, `4h + 3`... as
/// `scalar::q6k_values` lays them out; the two high bits come from qh bytes `32h ..` (bits
/// `2k, 2k + 1` for chunk `4h + k`), merged with `vpternlogd` (`m4 ? nibble : high bits`).
///
/// # Safety
/// `wb` readable for one Q6_K block; AVX-512F/VL.
#[inline(always)]
unsafe fn q6k_decode(wb: *const u8) -> [__m256i; 8] {
    // SAFETY: all loads are inside the block's first 192 bytes.
    unsafe {
        let m4 = _mm256_set1_epi8(0x0F);
        let (m33, mcc) = (_mm256_set1_epi8(0x33), _mm256_set1_epi8(-52));
        let mut q = [_mm256_setzero_si256(); 8];
        for h in 0..2 {
            let ql0 = load32(wb.add(64 * h));
            let ql1 = load32(wb.add(64 * h + 32));
            let qh = load32(wb.add(128 + 32 * h));
            // Bits 0, 1, 4, 5 and 2, 3, 6, 7 of qh: whatever a 16-bit shift moves into a
            // nibble's place is replaced by the nibble.
            let (h33, hcc) = (_mm256_and_si256(qh, m33), _mm256_and_si256(qh, mcc));
            q[4 * h] = _mm256_ternarylogic_epi32::<0xCA>(m4, ql0, _mm256_slli_epi16(h33, 4));
            q[4 * h + 1] = _mm256_ternarylogic_epi32::<0xCA>(m4, ql1, _mm256_slli_epi16(hcc, 2));
            q[4 * h + 2] = _mm256_ternarylogic_epi32::<0xCA>(m4, _mm256_srli_epi16(ql0, 4), h33);
            q[4 * h + 3] = _mm256_ternarylogic_epi32::<0xCA>(
                m4,
                _mm256_srli_epi16(ql1, 4),
                _mm256_srli_epi16(hcc, 2),
            );
        }
        q
    }
}

/// Q6_K × Q8_K for one weight row `w` by up to four activation rows `x[t]` (`t < NT ≤ 4`),
/// as `PATH` (`VEC` or `TILED`) rounds it. The integer part is exactly `scalar::dot_q6_k`'s
/// eight lanes per block: lane `m` sums `sc[g]·Σ_t q·y` over `k = 32c + 4m + t` minus
/// `32·(B[2m]·sc[2m] + B[2m+1]·sc[2m+1])`. The block is decoded once for the activation rows;
/// per activation row and chunk the four-element sums are `vpdpbusd` (VNNI; at most
/// `4 · 63 · 128`, so they fit in i16) of which two chunks' lane `m` go into one i32 lane as
/// words and meet their scales in one `vpdpwssd`, or `vpmaddubsw` (at most `2 · 63 · 128`) and
/// `vpmaddwd` by the scales (without VNNI). `VEC`: the lanes accumulated with one FMA by
/// `d_w d_x` per block, then `hsum8`. `TILED`: the lanes' total (exact) times `d_w`, then
/// `fma(that, d_x, acc)`, one activation row per lane of a 128-bit register.
///
/// # Safety
/// `w`: `nb` Q6_K blocks, each `x[t]`: `nb` Q8_K blocks; `NT ≤ 4`; the module's features
/// (+VNNI when `VNNI`).
#[inline(always)]
unsafe fn q6k_tile<const PATH: u8, const VNNI: bool, const NT: usize>(
    w: *const u8,
    x: [*const u8; NT],
    nb: usize,
) -> [f32; NT] {
    const { assert!(NT <= 4) };
    // SAFETY: block `i` of `w` is bytes `210 i ..`, of `x[t]` `292 i ..`; loads stay inside.
    unsafe {
        let z = _mm256_setzero_si256();
        let sidx: [__m256i; 4] = std::array::from_fn(|p| load32(Q6K_SCALE_IDX[p].as_ptr().cast()));
        let mut acc = [_mm256_setzero_ps(); NT];
        let mut acc_t = _mm_setzero_ps();
        for i in 0..nb {
            let wb = w.add(210 * i);
            let dw = f16_at(wb.add(208));
            let q = q6k_decode(wb);
            let sc16 = _mm256_cvtepi8_epi16(load16(wb.add(192)));
            // VNNI: the word-pair scales per chunk pair; without: [sc[2c] ×8, sc[2c+1] ×8].
            let s: [__m256i; 8] = std::array::from_fn(|c| {
                if VNNI {
                    if c < 4 {
                        _mm256_permutexvar_epi16(sidx[c], sc16)
                    } else {
                        z
                    }
                } else {
                    let lo = _mm256_set1_epi16(word_ctrl((2 * c) % 8));
                    let hi = _mm256_set1_epi16(word_ctrl((2 * c + 1) % 8));
                    let half = if c < 4 {
                        _mm256_permute2x128_si256(sc16, sc16, 0x00)
                    } else {
                        _mm256_permute2x128_si256(sc16, sc16, 0x11)
                    };
                    _mm256_shuffle_epi8(half, _mm256_blend_epi32(lo, hi, 0xF0))
                }
            });
            let mut tot = [z; 4];
            for t in 0..NT {
                let xb = x[t].add(292 * i);
                let yq = xb.add(Q8K_QS);
                let corr = _mm256_madd_epi16(sc16, load32(xb.add(Q8K_BSUMS)));
                // Two partial sums (chunk pairs 0, 2 and 1, 3), so that the chains are short.
                let mut part = [_mm256_sub_epi32(z, _mm256_slli_epi32(corr, 5)), z];
                for p in 0..4 {
                    let sumi = &mut part[p % 2];
                    let (c0, c1) = (2 * p, 2 * p + 1);
                    let (y0, y1) = (load32(yq.add(32 * c0)), load32(yq.add(32 * c1)));
                    if VNNI {
                        let a = _mm256_dpbusd_epi32(z, q[c0], y0);
                        let b = _mm256_dpbusd_epi32(z, q[c1], y1);
                        let ab = _mm256_mask_blend_epi16(0xAAAA, a, _mm256_slli_epi32(b, 16));
                        *sumi = _mm256_dpwssds_epi32(*sumi, ab, s[p]);
                    } else {
                        let a = _mm256_madd_epi16(_mm256_maddubs_epi16(q[c0], y0), s[c0]);
                        let b = _mm256_madd_epi16(_mm256_maddubs_epi16(q[c1], y1), s[c1]);
                        *sumi = _mm256_add_epi32(*sumi, _mm256_add_epi32(a, b));
                    }
                }
                let sumi = _mm256_add_epi32(part[0], part[1]);
                if PATH == VEC {
                    let d = xb.cast::<f32>().read_unaligned() * dw;
                    acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[t]);
                } else {
                    tot[t] = sumi;
                }
            }
            if PATH == TILED {
                let mut ydv = [0.0f32; 4];
                for t in 0..NT {
                    ydv[t] = x[t].add(292 * i).cast::<f32>().read_unaligned();
                }
                let s1 = _mm_cvtepi32_ps(reduce4(tot));
                let v = _mm_mul_ps(s1, _mm_set1_ps(dw));
                acc_t = _mm_fmadd_ps(v, _mm_loadu_ps(ydv.as_ptr()), acc_t);
            }
        }
        let mut a = [0.0f32; 4];
        _mm_storeu_ps(a.as_mut_ptr(), acc_t);
        std::array::from_fn(|t| {
            if PATH == VEC {
                avx2::hsum_ps(acc[t])
            } else {
                a[t]
            }
        })
    }
}

/// The rows driver of the Q6_K kernels: each weight row against four activation rows at a
/// time (the rest one at a time). Every output is one [`q6k_tile`] lane set, the same bits
/// whatever the tile.
///
/// # Safety
/// `w` holds `rows` rows of `wrb` bytes, `x` `n_x` rows of `xrb` bytes, each `nb` blocks;
/// `out` as `check_rows` checks; the module's features (+VNNI when `VNNI`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn q6k_rows<const PATH: u8, const VNNI: bool>(
    w: &[u8],
    wrb: usize,
    x: &[u8],
    xrb: usize,
    out: &mut [f32],
    os: usize,
    (nb, rows, n_x): (usize, usize, usize),
) {
    let mut r0 = 0;
    if VNNI && PATH == TILED && n_x >= LANES_NT && rows >= 8 {
        let mut buf = Q6_PACK.take();
        // SAFETY: caller's contract.
        r0 = unsafe {
            lanes_rows::<Q6Lanes>(&mut buf, (w, wrb), (x, xrb), out, os, (nb, rows, n_x))
        };
        Q6_PACK.set(buf);
    }
    for r in r0..rows {
        let wr = w[r * wrb..].as_ptr();
        let mut t = 0;
        while t + 4 <= n_x {
            // SAFETY: row `r` and activation rows `t .. t + 4` are in bounds (caller's
            // contract with the loop bounds).
            let o = unsafe {
                q6k_tile::<PATH, VNNI, 4>(
                    wr,
                    std::array::from_fn(|k| x[(t + k) * xrb..].as_ptr()),
                    nb,
                )
            };
            out[r * os + t..][..4].copy_from_slice(&o);
            t += 4;
        }
        while t < n_x {
            // SAFETY: as above, for activation row `t`.
            let [o] = unsafe { q6k_tile::<PATH, VNNI, 1>(wr, [x[t * xrb..].as_ptr()], nb) };
            out[r * os + t] = o;
            t += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// K-quant batch paths with eight weight rows per vector (VNNI): the rows' blocks repacked once
// per call so that i32 lane `r` of a vector is weight row `r`.
// ---------------------------------------------------------------------------------------------

/// Eight weight rows' Q4_K / Q5_K block, repacked for [`k4_lanes_tile`] (lane `r` = row `r`).
#[repr(C, align(32))]
#[derive(Clone, Copy)]
struct K4Pack {
    /// `q[8g + k]`, lane `r`: row `r`'s unsigned weights `32g + 4k .. 32g + 4k + 4` (four bytes).
    q: [[u32; 8]; 64],
    /// `sc[g]`, lane `r`: row `r`'s 6-bit scale of group `g`.
    sc: [[i32; 8]; 8],
    /// `mn[g]`, lane `r`: row `r`'s 6-bit min of group `g` in both i16 halves.
    mn: [[u32; 8]; 8],
    /// Row `r`'s `d` and `dmin` as f32.
    d: [f32; 8],
    dmin: [f32; 8],
}

impl K4Pack {
    const ZERO: K4Pack = K4Pack {
        q: [[0; 8]; 64],
        sc: [[0; 8]; 8],
        mn: [[0; 8]; 8],
        d: [0.0; 8],
        dmin: [0.0; 8],
    };
}

/// Eight weight rows' Q6_K block, repacked for [`q6k_lanes_tile`] (lane `r` = row `r`).
#[repr(C, align(32))]
#[derive(Clone, Copy)]
struct Q6Pack {
    /// `q[8c + k]`, lane `r`: row `r`'s unsigned 6-bit weights `32c + 4k .. 32c + 4k + 4`.
    q: [[u32; 8]; 64],
    /// `sc[g]`, lane `r`: row `r`'s signed scale of 16-element group `g`.
    sc: [[i32; 8]; 16],
    /// `scp[p]`, lane `r`: row `r`'s scales `2p` (low i16) and `2p + 1` (high i16).
    scp: [[u32; 8]; 8],
    /// Row `r`'s `d` as f32.
    d: [f32; 8],
}

impl Q6Pack {
    const ZERO: Q6Pack = Q6Pack {
        q: [[0; 8]; 64],
        sc: [[0; 8]; 16],
        scp: [[0; 8]; 8],
        d: [0.0; 8],
    };
}

thread_local! {
    /// [`K4Pack`]s of the current eight rows (`[nb]`), reused across calls on a thread.
    static K4_PACK: std::cell::RefCell<Vec<K4Pack>> = const { std::cell::RefCell::new(Vec::new()) };
    /// [`Q6Pack`]s of the current eight rows (`[nb]`), reused across calls on a thread.
    static Q6_PACK: std::cell::RefCell<Vec<Q6Pack>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Transposes an 8 × 8 matrix of i32: `out[k]` lane `r` = `v[r]` lane `k`.
///
/// # Safety
/// AVX2.
#[inline(always)]
unsafe fn transpose8x8(v: [__m256i; 8]) -> [__m256i; 8] {
    // SAFETY: register-only intrinsics. (No closures here: they would not inherit the
    // target features and the intrinsics would not be inlined.)
    unsafe {
        // t[2h]: [v2h[0] v2h+1[0] v2h[1] v2h+1[1] | [4] [5]], t[2h + 1]: [2] [3] | [6] [7].
        let mut t = [_mm256_setzero_si256(); 8];
        for h in 0..4 {
            t[2 * h] = _mm256_unpacklo_epi32(v[2 * h], v[2 * h + 1]);
            t[2 * h + 1] = _mm256_unpackhi_epi32(v[2 * h], v[2 * h + 1]);
        }
        // u[4q + m]: rows 4q .. 4q + 4, element m (| m + 4).
        let mut u = [_mm256_setzero_si256(); 8];
        for q in 0..2 {
            for m in 0..4 {
                let (a, b) = (t[4 * q + m / 2], t[4 * q + 2 + m / 2]);
                u[4 * q + m] = if m % 2 == 0 {
                    _mm256_unpacklo_epi64(a, b)
                } else {
                    _mm256_unpackhi_epi64(a, b)
                };
            }
        }
        let mut o = [_mm256_setzero_si256(); 8];
        for k in 0..4 {
            o[k] = _mm256_permute2x128_si256::<0x20>(u[k], u[4 + k]);
            o[k + 4] = _mm256_permute2x128_si256::<0x31>(u[k], u[4 + k]);
        }
        o
    }
}

/// Repacks block `i` of eight Q4_K (`Q5 = false`) or Q5_K rows `w[r]` (pointing at the block)
/// into `p`: the weights as `scalar::q4k_values` / `q5k_values` lay them out, transposed so
/// that lane `r` is row `r`; the scales, mins, `d`, `dmin`.
///
/// # Safety
/// Each `w[r]` readable for one block; AVX-512F/BW/VL, AVX2, F16C.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn k4_pack8<const Q5: bool>(w: [*const u8; 8], p: &mut K4Pack) {
    // SAFETY: loads inside each row's block; stores into `p`.
    unsafe {
        let m4 = _mm256_set1_epi8(0x0F);
        let sixteen = _mm256_set1_epi8(16);
        let qs_off = if Q5 { 48 } else { 16 };
        for j in 0..4 {
            let mut lo = [_mm256_setzero_si256(); 8];
            let mut hi = [_mm256_setzero_si256(); 8];
            for r in 0..8 {
                let q4 = load32(w[r].add(qs_off + 32 * j));
                lo[r] = _mm256_and_si256(q4, m4);
                hi[r] = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
                if Q5 {
                    let qh = load32(w[r].add(16));
                    let b0 = _mm256_set1_epi8((1u32 << (2 * j)) as u8 as i8);
                    let b1 = _mm256_set1_epi8((1u32 << (2 * j + 1)) as u8 as i8);
                    let k0 = _mm256_test_epi8_mask(qh, b0);
                    let k1 = _mm256_test_epi8_mask(qh, b1);
                    lo[r] = _mm256_mask_add_epi8(lo[r], k0, lo[r], sixteen);
                    hi[r] = _mm256_mask_add_epi8(hi[r], k1, hi[r], sixteen);
                }
            }
            let (tl, th) = (transpose8x8(lo), transpose8x8(hi));
            for k in 0..8 {
                _mm256_store_si256(p.q[8 * (2 * j) + k].as_mut_ptr().cast(), tl[k]);
                _mm256_store_si256(p.q[8 * (2 * j + 1) + k].as_mut_ptr().cast(), th[k]);
            }
        }
        for r in 0..8 {
            let packed: [u8; 12] = w[r].add(4).cast::<[u8; 12]>().read_unaligned();
            let (sc, mn) = crate::kernels::scalar::k4_scales_mins(&packed);
            for g in 0..8 {
                p.sc[g][r] = sc[g] as i32;
                p.mn[g][r] = mn[g] as u32 * 0x0001_0001;
            }
            p.d[r] = f16_at(w[r]);
            p.dmin[r] = f16_at(w[r].add(2));
        }
    }
}

/// Broadcasts the 4 bytes at `p` to every i32 lane.
///
/// # Safety
/// `p` readable for 4 bytes; AVX.
#[inline(always)]
unsafe fn bcast4(p: *const u8) -> __m256i {
    // SAFETY: caller's contract.
    unsafe { _mm256_set1_epi32(p.cast::<i32>().read_unaligned()) }
}

/// Q4_K / Q5_K × Q8_K on the path `PATH` (`GEMM` = `scalar::dot_q4_k_8x8_gemm`, `TILED` =
/// `scalar::dot_q4_k_tiled` / `dot_q5_k_tiled`) for the eight weight rows repacked in `p`
/// (`nb` blocks) by `NT` activation rows `x[t]`: `out[t]` lane `r` is row `r` · `x[t]`.
/// Integer part (exact, any order): per 32-element group `g` and activation row, `vpdpbusd`
/// of the rows' unsigned weights with the activation's four bytes broadcast (at most
/// `32 · 31 · 127` per lane), times the group scale (`vpmulld`); the mins
/// `m[g]·(bsums[2g] + bsums[2g+1])` with one `vpdpwssd` per group. Then per lane the path's
/// float operations, exactly the scalar ones (`d_w d_x` etc. per lane).
///
/// # Safety
/// Each `x[t]`: `p.len()` Q8_K blocks; the module's features with VNNI.
#[inline(always)]
unsafe fn k4_lanes_tile<const PATH: u8, const NT: usize>(
    p: &[K4Pack],
    x: [*const u8; NT],
) -> [__m256; NT] {
    // SAFETY: block `i` of `x[t]` is bytes `292 i ..`; loads stay inside; `p` is aligned.
    unsafe {
        let z = _mm256_setzero_si256();
        let mut facc = [_mm256_setzero_ps(); NT];
        let mut macc = [_mm256_setzero_ps(); NT];
        for (i, pb) in p.iter().enumerate() {
            let xb: [*const u8; NT] = std::array::from_fn(|t| x[t].add(292 * i));
            let dw = _mm256_load_ps(pb.d.as_ptr());
            let dmin = _mm256_load_ps(pb.dmin.as_ptr());
            let mut tsum = [z; NT];
            let mut tmin = [z; NT];
            for sb in 0..4 {
                let (g0, g1) = (2 * sb, 2 * sb + 1);
                let mut a0 = [z; NT];
                let mut a1 = [z; NT];
                for k in 0..8 {
                    let w0 = _mm256_load_si256(pb.q[8 * g0 + k].as_ptr().cast());
                    let w1 = _mm256_load_si256(pb.q[8 * g1 + k].as_ptr().cast());
                    for t in 0..NT {
                        let y = xb[t].add(Q8K_QS + 4 * k);
                        a0[t] = _mm256_dpbusd_epi32(a0[t], w0, bcast4(y.add(32 * g0)));
                        a1[t] = _mm256_dpbusd_epi32(a1[t], w1, bcast4(y.add(32 * g1)));
                    }
                }
                let s0 = _mm256_load_si256(pb.sc[g0].as_ptr().cast());
                let s1 = _mm256_load_si256(pb.sc[g1].as_ptr().cast());
                let m0 = _mm256_load_si256(pb.mn[g0].as_ptr().cast());
                let m1 = _mm256_load_si256(pb.mn[g1].as_ptr().cast());
                for t in 0..NT {
                    let isum = _mm256_add_epi32(
                        _mm256_mullo_epi32(a0[t], s0),
                        _mm256_mullo_epi32(a1[t], s1),
                    );
                    let bs = xb[t].add(Q8K_BSUMS);
                    if PATH == GEMM {
                        let imin = _mm256_dpwssd_epi32(
                            _mm256_madd_epi16(m0, bcast4(bs.add(4 * g0))),
                            m1,
                            bcast4(bs.add(4 * g1)),
                        );
                        let dx = _mm256_set1_ps(xb[t].cast::<f32>().read_unaligned());
                        facc[t] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(isum),
                            _mm256_mul_ps(dw, dx),
                            facc[t],
                        );
                        macc[t] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(imin),
                            _mm256_mul_ps(dmin, dx),
                            macc[t],
                        );
                    } else {
                        tsum[t] = _mm256_add_epi32(tsum[t], isum);
                        tmin[t] = _mm256_dpwssd_epi32(tmin[t], m0, bcast4(bs.add(4 * g0)));
                        tmin[t] = _mm256_dpwssd_epi32(tmin[t], m1, bcast4(bs.add(4 * g1)));
                    }
                }
            }
            if PATH == TILED {
                for t in 0..NT {
                    let v = _mm256_fnmadd_ps(
                        dmin,
                        _mm256_cvtepi32_ps(tmin[t]),
                        _mm256_mul_ps(_mm256_cvtepi32_ps(tsum[t]), dw),
                    );
                    let dx = _mm256_set1_ps(xb[t].cast::<f32>().read_unaligned());
                    facc[t] = _mm256_fmadd_ps(v, dx, facc[t]);
                }
            }
        }
        if PATH == GEMM {
            for t in 0..NT {
                facc[t] = _mm256_sub_ps(facc[t], macc[t]);
            }
        }
        facc
    }
}

/// Stores the eight rows' results of activation rows `t0 ..` (`v[t]` lane `r` = row `r`) at
/// `out[(r0 + r) * os + t0 + t]`.
///
/// # Safety
/// AVX.
#[inline(always)]
unsafe fn store_lanes<const NT: usize>(
    v: [__m256; NT],
    out: &mut [f32],
    os: usize,
    r0: usize,
    t0: usize,
) {
    for (t, &v) in v.iter().enumerate() {
        let mut a = [0.0f32; 8];
        // SAFETY: `a` holds 8 floats; AVX (caller).
        unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
        for (r, &v) in a.iter().enumerate() {
            out[(r0 + r) * os + t0 + t] = v;
        }
    }
}

/// A weight format for [`lanes_rows`]: how eight rows' blocks are repacked and the tile kernel.
trait Lanes {
    /// Eight rows' repacked block.
    type Pack: Copy;
    /// A zeroed [`Self::Pack`] (to size the buffer).
    const ZERO: Self::Pack;
    /// Bytes per weight block.
    const BS: usize;
    /// Repacks one block of eight rows (`w[r]` points at row `r`'s block).
    ///
    /// # Safety
    /// Each `w[r]` readable for one block; the module's features.
    unsafe fn pack(w: [*const u8; 8], p: &mut Self::Pack);
    /// The eight rows of `p` (all blocks) by `NT` activation rows.
    ///
    /// # Safety
    /// Each `x[t]`: `p.len()` Q8_K blocks; the module's features with VNNI.
    unsafe fn tile<const NT: usize>(p: &[Self::Pack], x: [*const u8; NT]) -> [__m256; NT];
}

/// Q4_K (`Q5 = false`) / Q5_K on `PATH` (`GEMM` or `TILED`) for [`lanes_rows`].
struct K4Lanes<const Q5: bool, const PATH: u8>;

impl<const Q5: bool, const PATH: u8> Lanes for K4Lanes<Q5, PATH> {
    type Pack = K4Pack;
    const ZERO: K4Pack = K4Pack::ZERO;
    const BS: usize = if Q5 { 176 } else { 144 };
    #[inline(always)]
    unsafe fn pack(w: [*const u8; 8], p: &mut K4Pack) {
        // SAFETY: caller's contract.
        unsafe { k4_pack8::<Q5>(w, p) }
    }
    #[inline(always)]
    unsafe fn tile<const NT: usize>(p: &[K4Pack], x: [*const u8; NT]) -> [__m256; NT] {
        // SAFETY: caller's contract.
        unsafe { k4_lanes_tile::<PATH, NT>(p, x) }
    }
}

/// Q6_K tiled for [`lanes_rows`].
struct Q6Lanes;

impl Lanes for Q6Lanes {
    type Pack = Q6Pack;
    const ZERO: Q6Pack = Q6Pack::ZERO;
    const BS: usize = 210;
    #[inline(always)]
    unsafe fn pack(w: [*const u8; 8], p: &mut Q6Pack) {
        // SAFETY: caller's contract.
        unsafe { q6k_pack8(w, p) }
    }
    #[inline(always)]
    unsafe fn tile<const NT: usize>(p: &[Q6Pack], x: [*const u8; NT]) -> [__m256; NT] {
        // SAFETY: caller's contract.
        unsafe { q6k_lanes_tile::<NT>(p, x) }
    }
}

/// Activation rows per [`lanes_rows`] tile.
const LANES_NT: usize = 4;

/// The eight-row lane kernels' driver: rows `0 .. rows − rows % 8` (the caller does the
/// rest), each eight rows repacked once into `buf` (one [`Lanes::Pack`] per block) and run
/// against [`LANES_NT`] activation rows at a time (the rest one at a time). Every output is
/// one lane of `L::tile`, the same bits whatever the tile. Returns the number of rows done.
///
/// # Safety
/// `w` holds `rows` rows of `wrb` bytes, `x` `n_x` rows of `xrb` bytes, each `nb` blocks
/// (Q8_K on the `x` side); `out` as `check_rows` checks; the module's features with VNNI.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn lanes_rows<L: Lanes>(
    buf: &mut Vec<L::Pack>,
    (w, wrb): (&[u8], usize),
    (x, xrb): (&[u8], usize),
    out: &mut [f32],
    os: usize,
    (nb, rows, n_x): (usize, usize, usize),
) -> usize {
    if buf.len() < nb {
        buf.resize(nb, L::ZERO);
    }
    let p = &mut buf[..nb];
    let mut r0 = 0;
    while r0 + 8 <= rows {
        for (i, pb) in p.iter_mut().enumerate() {
            let wr = std::array::from_fn(|r| w[(r0 + r) * wrb + L::BS * i..].as_ptr());
            // SAFETY: rows `r0 .. r0 + 8` exist and hold `nb` blocks of `L::BS` bytes.
            unsafe { L::pack(wr, pb) };
        }
        let mut t = 0;
        while t + LANES_NT <= n_x {
            let xs = std::array::from_fn(|k| x[(t + k) * xrb..].as_ptr());
            // SAFETY: activation rows `t .. t + LANES_NT` exist with `nb` blocks each.
            let o = unsafe { L::tile::<LANES_NT>(p, xs) };
            // SAFETY: the module's features.
            unsafe { store_lanes(o, out, os, r0, t) };
            t += LANES_NT;
        }
        while t < n_x {
            // SAFETY: activation row `t` exists with `nb` blocks.
            let o = unsafe { L::tile::<1>(p, [x[t * xrb..].as_ptr()]) };
            // SAFETY: the module's features.
            unsafe { store_lanes(o, out, os, r0, t) };
            t += 1;
        }
        r0 += 8;
    }
    r0
}

/// Repacks block `i` of eight Q6_K rows `w[r]` (pointing at the block) into `p`: the weights
/// as [`q6k_decode`] gives them, transposed so that lane `r` is row `r`; scales and `d`.
///
/// # Safety
/// Each `w[r]` readable for one block; AVX-512F/BW/VL, AVX2, F16C.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn q6k_pack8(w: [*const u8; 8], p: &mut Q6Pack) {
    // SAFETY: loads inside each row's block; stores into `p`.
    unsafe {
        // [chunk][row] decoded weights.
        let mut dec = [[_mm256_setzero_si256(); 8]; 8];
        for r in 0..8 {
            let q = q6k_decode(w[r]);
            for c in 0..8 {
                dec[c][r] = q[c];
            }
        }
        for c in 0..8 {
            let tq = transpose8x8(dec[c]);
            for (k, v) in tq.into_iter().enumerate() {
                _mm256_store_si256(p.q[8 * c + k].as_mut_ptr().cast(), v);
            }
        }
        for r in 0..8 {
            let sc: [u8; 16] = w[r].add(192).cast::<[u8; 16]>().read_unaligned();
            for g in 0..16 {
                p.sc[g][r] = sc[g] as i8 as i32;
            }
            for q in 0..8 {
                let (a, b) = (
                    sc[2 * q] as i8 as i16 as u16,
                    sc[2 * q + 1] as i8 as i16 as u16,
                );
                p.scp[q][r] = a as u32 | (b as u32) << 16;
            }
            p.d[r] = f16_at(w[r].add(208));
        }
    }
}

/// Q6_K × Q8_K as `scalar::dot_q6_k_tiled` rounds it, for the eight weight rows repacked in
/// `p` (`nb` blocks) by `NT` activation rows `x[t]`: `out[t]` lane `r` is row `r` · `x[t]`.
/// Integer part (exact, any order): per 16-element group `g` and activation row, `vpdpbusd` of
/// the rows' unsigned 6-bit weights with the activation's four bytes broadcast (at most
/// `16 · 63 · 127`), times the group scale (`vpmulld`), minus `32 · Σ_g sc[g]·bsums[g]`
/// (`vpdpwssd` per scale pair); then per lane `fma(total · d_w, d_x, acc)`.
///
/// # Safety
/// Each `x[t]`: `p.len()` Q8_K blocks; the module's features with VNNI.
#[inline(always)]
unsafe fn q6k_lanes_tile<const NT: usize>(p: &[Q6Pack], x: [*const u8; NT]) -> [__m256; NT] {
    // SAFETY: block `i` of `x[t]` is bytes `292 i ..`; loads stay inside; `p` is aligned.
    unsafe {
        let z = _mm256_setzero_si256();
        let mut facc = [_mm256_setzero_ps(); NT];
        for (i, pb) in p.iter().enumerate() {
            let xb: [*const u8; NT] = std::array::from_fn(|t| x[t].add(292 * i));
            let mut isum = [z; NT];
            for c in 0..8 {
                let mut a0 = [z; NT];
                let mut a1 = [z; NT];
                for k in 0..4 {
                    let w0 = _mm256_load_si256(pb.q[8 * c + k].as_ptr().cast());
                    let w1 = _mm256_load_si256(pb.q[8 * c + 4 + k].as_ptr().cast());
                    for t in 0..NT {
                        let y = xb[t].add(Q8K_QS + 32 * c + 4 * k);
                        a0[t] = _mm256_dpbusd_epi32(a0[t], w0, bcast4(y));
                        a1[t] = _mm256_dpbusd_epi32(a1[t], w1, bcast4(y.add(16)));
                    }
                }
                let s0 = _mm256_load_si256(pb.sc[2 * c].as_ptr().cast());
                let s1 = _mm256_load_si256(pb.sc[2 * c + 1].as_ptr().cast());
                for t in 0..NT {
                    let v = _mm256_add_epi32(
                        _mm256_mullo_epi32(a0[t], s0),
                        _mm256_mullo_epi32(a1[t], s1),
                    );
                    isum[t] = _mm256_add_epi32(isum[t], v);
                }
            }
            let dw = _mm256_load_ps(pb.d.as_ptr());
            for t in 0..NT {
                let bs = xb[t].add(Q8K_BSUMS);
                let mut corr = z;
                for q in 0..8 {
                    let s = _mm256_load_si256(pb.scp[q].as_ptr().cast());
                    corr = _mm256_dpwssd_epi32(corr, s, bcast4(bs.add(4 * q)));
                }
                let tot = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(corr, 5));
                let v = _mm256_mul_ps(_mm256_cvtepi32_ps(tot), dw);
                let dx = _mm256_set1_ps(xb[t].cast::<f32>().read_unaligned());
                facc[t] = _mm256_fmadd_ps(v, dx, facc[t]);
            }
        }
        facc
    }
}
