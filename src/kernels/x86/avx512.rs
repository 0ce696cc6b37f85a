//! AVX-512 kernels (F, BW, VL; with or without VNNI), using the full 512-bit width.
//!
//! Each kernel dots a *group* of `R` weight rows with one activation row (`R` a const generic;
//! the row loops, `group_rows_fns!`, use 4 or 8 and `R = 1` for the rest), so the activation
//! side (loads, rearrangement, offset sums, scales) is done once per group. Every row is
//! computed with the same arithmetic whatever `R` is, so its result never depends on the
//! grouping.
//!
//! * The 32-element formats go four blocks at a time. The quant bytes of four blocks are
//!   gathered with one `vpermt2w` (all block layouts keep them 16-bit aligned) so that one
//!   register holds the low nibbles (elements 0..16 of each block) and another the high ones
//!   (16..32); the activations are rearranged to match once per group. Each block's sum ends
//!   up in four i32 lanes, which are converted and multiplied by the 16-lane vector of
//!   `d_w d_x` (the four weight scales fetched with one `vpermw`), one FMA per four blocks.
//!   Q8_0 keeps two blocks per register (eight lanes each).
//! * The K-quants go two super-blocks at a time per row (the scale/min unpacking, the
//!   `d`/`dmin` products and the min term done for both in 256-bit registers), and for each
//!   super-block the sub-block sums of the low and high nibbles are packed to i16 pairs
//!   (`vpackssdw`, exact: each lane fits) and multiplied by the sub-block scales with one
//!   `vpdpwssd`/`vpmaddwd` per 128 elements.
//!
//! With VNNI, byte products are summed with `vpdpbusd` (u8 × i8, four per i32 lane, never
//! saturating), seeded with the activation-side offset correction (`−off Σ y`) where a format
//! has one, and signed × signed products use `(a ⊕ 0x80) b − 128 Σ b`. Without VNNI, the same
//! sums come from `vpmaddubsw` + `vpmaddwd` under the same exactness conditions as the AVX2
//! kernels (every i16 intermediate is bounded in the comments), and signed × signed products
//! use `|a| × ±b`.
//!
//! Three tables, [`AVX512`], [`AVX512_VNNI`] and [`AVX512_VNNI_GFNI`] (the VNNI table with a
//! Q6_K kernel that splits its bit fields with `vgf2p8affineqb`, used where the CPU has GFNI),
//! each wrapping the kernels in row loops compiled with the matching `#[target_feature]` set;
//! handed out only after the features were detected (`x86::table`). The activation converters are the AVX2 ones (AVX-512 CPUs have AVX2).
//! Leftover blocks that do not fill a step are done with the AVX2 kernels.
//!
//! F16, IQ4_XS, Q2_K and Q3_K use the AVX2 kernels in these tables: on Zen 4, which executes
//! a 512-bit operation as two 256-bit halves, their 512-bit versions (`vcvtph2ps zmm`; grid
//! look-ups with mask-register sign handling; the 2-bit formats' split activation loads)
//! measured 8-35% slower than the AVX2 ones, so they were dropped.

// The 512-bit quant kernels below add their float terms in their own order, not the
// reference's (several blocks per FMA); until they are rewritten in the reference's order the
// tables use the AVX2 kernels for those types, and these are kept compiled but unused.
#![allow(dead_code)]

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
    q4_0: avx2::AVX2.q4_0,
    // Q4_1 keeps the 256-bit kernel: its reference order is one block per 8-lane vector.
    q4_1: avx2::AVX2.q4_1,
    q5_0: avx2::AVX2.q5_0,
    q5_1: avx2::AVX2.q5_1,
    q8_0: avx2::AVX2.q8_0,
    q2_k: avx2::AVX2.q2_k,
    q3_k: avx2::AVX2.q3_k,
    q4_k: avx2::AVX2.q4_k,
    q5_k: avx2::AVX2.q5_k,
    q6_k: avx2::AVX2.q6_k,
    iq4_nl: avx2::AVX2.iq4_nl,
    iq4_xs: avx2::AVX2.iq4_xs,
    quantize_q8_0: avx2::AVX2.quantize_q8_0,
    quantize_q8_1: avx2::AVX2.quantize_q8_1,
    quantize_q8_k: avx2::AVX2.quantize_q8_k,
    to_f16: avx2::AVX2.to_f16,
    to_bf16: avx2::AVX2.to_bf16,
    paths: avx2::AVX2.paths,
};

/// AVX-512 F/BW/VL with VNNI.
pub(in crate::kernels) static AVX512_VNNI: Kernels = VNNI_TABLE;

/// AVX-512 F/BW/VL with VNNI and GFNI (Ice Lake, Zen 4 and later): the Q6_K kernel takes its
/// bit fields apart with `vgf2p8affineqb`.
pub(in crate::kernels) static AVX512_VNNI_GFNI: Kernels = Kernels {
    q6_k: avx2::AVX2.q6_k,
    ..VNNI_TABLE
};

/// The [`AVX512_VNNI`] table.
const VNNI_TABLE: Kernels = Kernels {
    isa: Isa::Avx512Vnni,
    f32: vnni::f32,
    f16: avx2::AVX2.f16,
    bf16: vnni::bf16,
    q4_0: avx2::AVX2.q4_0,
    q4_1: avx2::AVX2.q4_1,
    q5_0: avx2::AVX2.q5_0,
    q5_1: avx2::AVX2.q5_1,
    q8_0: avx2::AVX2.q8_0,
    q2_k: avx2::AVX2.q2_k,
    q3_k: avx2::AVX2.q3_k,
    q4_k: avx2::AVX2.q4_k,
    q5_k: avx2::AVX2.q5_k,
    q6_k: avx2::AVX2.q6_k,
    iq4_nl: avx2::AVX2.iq4_nl,
    iq4_xs: avx2::AVX2.iq4_xs,
    quantize_q8_0: avx2::AVX2.quantize_q8_0,
    quantize_q8_1: avx2::AVX2.quantize_q8_1,
    quantize_q8_k: avx2::AVX2.quantize_q8_k,
    to_f16: avx2::AVX2.to_f16,
    to_bf16: avx2::AVX2.to_bf16,
    paths: avx2::AVX2.paths,
};

mod plain {
    use super::*;
    crate::kernels::dot_rows_fns! {
        features = "avx512f,avx512bw,avx512vl,avx2,fma,f16c";
        f32: dot_f32, 4, 4;
        bf16: dot_bf16, 2, 2;
    }
    group_rows_fns! {
        features = "avx512f,avx512bw,avx512vl,avx2,fma,f16c";
        q4_0: dot_q4_0::<false>, 18, 34, group = 8;
        q5_0: dot_q5_0::<false>, 22, 34, group = 4;
        q5_1: dot_q5_1::<false>, 24, 36, group = 4;
        q8_0: dot_q8_0::<false>, 34, 34, group = 8;
        q4_k: dot_q4_k::<false>, 144, 292, group = 4;
        q5_k: dot_q5_k::<false>, 176, 292, group = 4;
        q6_k: dot_q6_k::<false>, 210, 292, group = 4;
        iq4_nl: dot_iq4_nl::<false>, 18, 34, group = 8;
    }
}

mod vnni {
    use super::*;
    crate::kernels::dot_rows_fns! {
        features = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c";
        f32: dot_f32, 4, 4;
        bf16: dot_bf16, 2, 2;
    }
    group_rows_fns! {
        features = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c";
        q4_0: dot_q4_0::<true>, 18, 34, group = 8;
        q5_0: dot_q5_0::<true>, 22, 34, group = 4;
        q5_1: dot_q5_1::<true>, 24, 36, group = 4;
        q8_0: dot_q8_0::<true>, 34, 34, group = 8;
        q4_k: dot_q4_k::<true>, 144, 292, group = 4;
        q5_k: dot_q5_k::<true>, 176, 292, group = 4;
        q6_k: dot_q6_k::<true>, 210, 292, group = 8;
        iq4_nl: dot_iq4_nl::<true>, 18, 34, group = 8;
    }
}

mod vnni_gfni {
    use super::*;
    group_rows_fns! {
        features = "avx512f,avx512bw,avx512vl,avx512vnni,gfni,avx2,fma,f16c";
        q6_k: dot_q6_k_gfni, 210, 292, group = 8;
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
unsafe fn load64(p: *const u8) -> __m512i {
    // SAFETY: caller's contract; unaligned load.
    unsafe { _mm512_loadu_si512(p.cast()) }
}

/// Loads 32 bytes.
///
/// # Safety
/// `p` readable for 32 bytes; AVX.
#[inline(always)]
unsafe fn load32(p: *const u8) -> __m256i {
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

/// Two 32-byte rows as one register: `[a, b]`.
///
/// # Safety
/// `a`, `b` readable for 32 bytes; AVX-512F.
#[inline(always)]
unsafe fn load2x32(a: *const u8, b: *const u8) -> __m512i {
    // SAFETY: caller's contract.
    unsafe { _mm512_inserti64x4(_mm512_castsi256_si512(load32(a)), load32(b), 1) }
}

/// [`load2x32`] without a shuffle: `b`'s 32 bytes come in as the upper half of a 64-byte load
/// ending at `b + 32` and are blended (`vpblendmq`, any ALU) over the 32 bytes at `a`. Zen 4
/// runs the insert of [`load2x32`] on its two shuffle pipes, which these kernels are short of.
///
/// # Safety
/// `a` readable for 32 bytes, `b − 32 .. b + 32` readable; AVX-512F.
#[inline(always)]
unsafe fn load2x32_back(a: *const u8, b: *const u8) -> __m512i {
    // SAFETY: caller's contract.
    unsafe { _mm512_mask_blend_epi64(0xF0, _mm512_castsi256_si512(load32(a)), load64(b.sub(32))) }
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

/// Reads a little-endian i32 at any alignment.
///
/// # Safety
/// `p` readable for 4 bytes.
#[inline(always)]
unsafe fn rd32(p: *const u8) -> i32 {
    // SAFETY: caller's contract.
    unsafe { p.cast::<i32>().read_unaligned() }
}

/// `*p` in all 16 lanes, read from memory so that LLVM folds the broadcast into the FMA that
/// uses it (`{1to16}` operand, a load) instead of a `vbroadcastss` from a register (a shuffle,
/// which these kernels are short of). The volatile read keeps the store before it from being
/// forwarded in the compiler.
///
/// # Safety
/// `p` valid for reading an f32; AVX-512F.
#[inline(always)]
unsafe fn bcast_mem(p: *const f32) -> __m512 {
    // SAFETY: caller's contract.
    unsafe { _mm512_set1_ps(p.read_volatile()) }
}

/// Sum of the 4 lanes.
///
/// # Safety
/// SSE3.
#[inline(always)]
unsafe fn hsum128(v: __m128) -> f32 {
    // SAFETY: register-only intrinsics.
    unsafe {
        let s = _mm_add_ps(v, _mm_movehl_ps(v, v));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }
}

/// Σ over each 4 bytes of `a[i] b[i]`, `a` unsigned, `b` signed, as i32 lanes. Exact with VNNI;
/// without, exact when every pair sum `a[2k] b[2k] + a[2k+1] b[2k+1]` fits in i16.
///
/// # Safety
/// AVX-512BW (+VNNI when `VNNI`).
#[inline(always)]
unsafe fn dot_u8<const VNNI: bool>(a: __m512i, b: __m512i) -> __m512i {
    // SAFETY: register-only intrinsics; VNNI only used when the caller enabled it.
    unsafe {
        if VNNI {
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), a, b)
        } else {
            _mm512_madd_epi16(_mm512_maddubs_epi16(a, b), _mm512_set1_epi16(1))
        }
    }
}

/// `acc + Σ pairs of p16[i] s16[i]` (i16 × i16 → i32), exact as long as the sum does not
/// overflow i32 (every use stays far below). With VNNI this is the saturating `vpdpwssds`,
/// the same result here: LLVM splits the plain `vpdpwssd` into `vpmaddwd` + `vpaddd` (one more
/// operation) but leaves this one alone.
///
/// # Safety
/// AVX-512BW (+VNNI when `VNNI`).
#[inline(always)]
unsafe fn mac16<const VNNI: bool>(acc: __m512i, p16: __m512i, s16: __m512i) -> __m512i {
    // SAFETY: register-only intrinsics.
    unsafe {
        if VNNI {
            _mm512_dpwssds_epi32(acc, p16, s16)
        } else {
            _mm512_add_epi32(acc, _mm512_madd_epi16(p16, s16))
        }
    }
}

/// `(|a|, b with the sign of a)` bytes: `|a| × ±b` is `a × b`, exact unless `b` has a −128.
///
/// # Safety
/// AVX-512BW.
#[inline(always)]
unsafe fn sign_split(a: __m512i, b: __m512i) -> (__m512i, __m512i) {
    // SAFETY: register-only intrinsics.
    unsafe {
        let neg = _mm512_movepi8_mask(a);
        let sb = _mm512_mask_sub_epi8(b, neg, _mm512_setzero_si512(), b);
        (_mm512_abs_epi8(a), sb)
    }
}

// ---------------------------------------------------------------------------------------------
// Float rows.
// ---------------------------------------------------------------------------------------------

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
// The 32-element formats, four blocks per step.
// ---------------------------------------------------------------------------------------------

/// `vpermt2w` indices that gather the 16 quant bytes of each of four blocks (`stride` bytes
/// apart, the quants at byte `qs` of a block) into 128-bit lane `k` for block `k`, from
/// `a` = bytes `[0, 64)` and `b` = bytes `[b_off, b_off + 64)` of the four blocks. (Every
/// format's quants start at an even offset, so words are enough.)
const fn quant_words(stride: usize, qs: usize, b_off: usize) -> [i16; 32] {
    let mut idx = [0i16; 32];
    let mut p = 0;
    while p < 32 {
        let byte = stride * (p / 8) + qs + 2 * (p % 8);
        idx[p] = if byte + 2 <= 64 {
            (byte / 2) as i16
        } else {
            assert!(byte >= b_off && byte + 2 <= b_off + 64 && (byte - b_off).is_multiple_of(2));
            (32 + (byte - b_off) / 2) as i16
        };
        p += 1;
    }
    idx
}

/// `vpermw` indices putting the given words in words 0..8 (the others take word 0).
const fn low_words(words: [i16; 8]) -> [i16; 32] {
    let mut idx = [0i16; 32];
    let mut p = 0;
    while p < 8 {
        idx[p] = words[p];
        p += 1;
    }
    idx
}

/// Q4_0: blocks of 18 bytes (d, 16 quant bytes); `b` at byte 8.
static Q4_0_QS: [i16; 32] = quant_words(18, 2, 8);
/// Q4_0 / IQ4_NL scales: words 0, 9, 18, 27.
static Q4_0_D: [i16; 32] = low_words([0, 9, 18, 27, 0, 9, 18, 27]);
/// Q5_0: blocks of 22 bytes (d, qh, 16 quant bytes); `b` at byte 24.
static Q5_0_QS: [i16; 32] = quant_words(22, 6, 24);
/// Q5_0 scales: words 0, 11, 22 of `a` and, blended into word 21, word 21 of `b` (byte 66).
static Q5_0_D: [i16; 32] = low_words([0, 11, 22, 21, 0, 11, 22, 21]);
/// Q5_1: blocks of 24 bytes (d, m, qh, 16 quant bytes); `b` at byte 32.
static Q5_1_QS: [i16; 32] = quant_words(24, 8, 32);
/// Q5_1 `[d, m]`: words 0..2, 12..14, 24..26 of `a` and, blended into words 20, 21, words
/// 20, 21 of `b` (bytes 72..76).
static Q5_1_DM: [i16; 32] = low_words([0, 12, 24, 20, 1, 13, 25, 21]);

/// The quants of four Q8_0/Q8_1 blocks (`stride` bytes apart, quants at byte `qs`) split to
/// match [`quant_words`] + [`nibbles`]: `(elements 0..16, elements 16..32)` of each block,
/// block `k` in 128-bit lane `k`.
///
/// # Safety
/// The four blocks readable; AVX-512F.
#[inline(always)]
unsafe fn y_halves(xb: *const u8, stride: usize, qs: usize) -> (__m512i, __m512i) {
    // SAFETY: four blocks of `stride` bytes at `xb` (caller's contract).
    unsafe {
        let y01 = load2x32(xb.add(qs), xb.add(stride + qs));
        let y23 = load2x32(xb.add(2 * stride + qs), xb.add(3 * stride + qs));
        let lo = _mm512_permutex2var_epi64(y01, _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13), y23);
        let hi = _mm512_permutex2var_epi64(y01, _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15), y23);
        (lo, hi)
    }
}

/// The f32 scales of four activation blocks (`stride` bytes apart): `[d_0..d_3, s_0..s_3]`
/// with `MINS` (Q8_1's `s = d Σ q`, the f16 after `d`), `[d_0..d_3, 0, 0, 0, 0]` without.
///
/// # Safety
/// The four blocks readable; F16C.
#[inline(always)]
unsafe fn x_scales<const MINS: bool>(xb: *const u8, stride: usize) -> __m256 {
    // SAFETY: reads the f16 fields of the four blocks.
    unsafe {
        let (s0, s1, s2, s3) = if MINS {
            (
                rd16(xb.add(2)),
                rd16(xb.add(stride + 2)),
                rd16(xb.add(2 * stride + 2)),
                rd16(xb.add(3 * stride + 2)),
            )
        } else {
            (0, 0, 0, 0)
        };
        _mm256_cvtph_ps(_mm_setr_epi16(
            rd16(xb),
            rd16(xb.add(stride)),
            rd16(xb.add(2 * stride)),
            rd16(xb.add(3 * stride)),
            s0,
            s1,
            s2,
            s3,
        ))
    }
}

/// The low and high nibbles of four blocks' quants (`q` as gathered with [`quant_words`]):
/// elements 0..16 and 16..32 of block `k` in lane `k`, each 0..=15.
///
/// # Safety
/// AVX-512BW.
#[inline(always)]
unsafe fn nibbles(q: __m512i) -> (__m512i, __m512i) {
    // SAFETY: register-only intrinsics.
    unsafe {
        let m4 = _mm512_set1_epi8(0x0F);
        (
            _mm512_and_si512(q, m4),
            _mm512_and_si512(_mm512_srli_epi16(q, 4), m4),
        )
    }
}

/// The fifth bits of four Q5 blocks (`qh` of block `k` at `qh + stride k`) as byte masks of the
/// low and high halves: bit `16 k + j` is bit `j`, resp. `16 + j`, of block `k`'s `qh`.
///
/// # Safety
/// The four `qh` fields readable; AVX-512BW.
#[inline(always)]
unsafe fn qh_masks(qh: *const u8, stride: usize) -> (__mmask64, __mmask64) {
    // SAFETY: reads the four 4-byte fields.
    unsafe {
        let q0 = qh.cast::<u32>().read_unaligned();
        let q1 = qh.add(stride).cast::<u32>().read_unaligned();
        let q2 = qh.add(2 * stride).cast::<u32>().read_unaligned();
        let q3 = qh.add(3 * stride).cast::<u32>().read_unaligned();
        let lo = _mm512_kunpackd(
            _mm512_kunpackw(q3, q2) as u64,
            _mm512_kunpackw(q1, q0) as u64,
        );
        let hi = _mm512_kunpackd(
            _mm512_kunpackw(q3 >> 16, q2 >> 16) as u64,
            _mm512_kunpackw(q1 >> 16, q0 >> 16) as u64,
        );
        (lo, hi)
    }
}

/// The activation-side offset term of `Σ (q − off) y` over two registers of activations:
/// with VNNI `−off (Σ ylo + Σ yhi)` per 4-byte i32 lane (the seed of [`dot_halves`]), without
/// `off (ylo + yhi)` as i16 pair sums (at most `4 · off · 128` in magnitude).
///
/// # Safety
/// AVX-512BW (+VNNI when `VNNI`).
#[inline(always)]
unsafe fn offset_corr<const VNNI: bool>(off: u8, ylo: __m512i, yhi: __m512i) -> __m512i {
    // SAFETY: register-only intrinsics.
    unsafe {
        let o = _mm512_set1_epi8(off as i8);
        let z = _mm512_setzero_si512();
        if VNNI {
            _mm512_sub_epi32(
                z,
                _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(z, o, ylo), o, yhi),
            )
        } else {
            _mm512_add_epi16(_mm512_maddubs_epi16(o, ylo), _mm512_maddubs_epi16(o, yhi))
        }
    }
}

/// `Σ lo · ylo + Σ hi · yhi` per 4-byte lane, minus the offset term `corr` ([`offset_corr`], or
/// zero), as i32 lanes, for unsigned `lo`, `hi`. Exact with VNNI; without, exact when
/// `maddubs(lo, ylo) + maddubs(hi, yhi) − corr` fits in i16 (bounded at each use).
///
/// # Safety
/// AVX-512BW (+VNNI when `VNNI`).
#[inline(always)]
unsafe fn dot_halves<const VNNI: bool>(
    corr: __m512i,
    lo: __m512i,
    ylo: __m512i,
    hi: __m512i,
    yhi: __m512i,
) -> __m512i {
    // SAFETY: register-only intrinsics.
    unsafe {
        if VNNI {
            _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(corr, lo, ylo), hi, yhi)
        } else {
            let p = _mm512_add_epi16(_mm512_maddubs_epi16(lo, ylo), _mm512_maddubs_epi16(hi, yhi));
            _mm512_madd_epi16(_mm512_sub_epi16(p, corr), _mm512_set1_epi16(1))
        }
    }
}

/// The four-block driver for `R` weight rows (`$w: [*const u8; R]`, `R` a const generic in
/// scope) against one activation row `$x`, returning `[f32; R]`. For every four blocks: `$ybody`
/// (with `$xb` the first activation block) prepares the activation side, shared by the rows;
/// `$rbody` (with `$wb` the row's first block, `$y` the prepared activation side) returns the
/// row's i32 sums (block `k` in lanes `4k..4k + 4`) and a register whose words `$sidx` (a
/// `vpermw` index array) are the four blocks' f16 `d` (and with `$mins` then their `m`). The
/// sums are scaled by `d_w d_x` (and `m_w s_x` is added for Q4_1/Q5_1) in f32; leftover blocks
/// go to the AVX2 one-row kernel `$tail`.
macro_rules! four_blocks {
    ($w:expr, $x:expr, $nb:expr, ws = $ws:expr, xs = $xs:expr, mins = $mins:expr,
     scales = $sidx:expr, tail = $tail:path,
     |$xb:ident| $ybody:expr, |$wb:ident, $y:ident| $rbody:expr) => {{
        let (w, x, nb): ([*const u8; R], *const u8, usize) = ($w, $x, $nb);
        let sidx = load64($sidx.as_ptr().cast());
        let rep4 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        let mut acc = [_mm512_setzero_ps(); R];
        // Lanes 4..8: the m_w s_x terms (Q4_1/Q5_1).
        let mut accm = [_mm256_setzero_ps(); R];
        let mut i = 0;
        while i + 4 <= nb {
            let $xb = x.add($xs * i);
            let dx = x_scales::<$mins>($xb, $xs);
            let $y = $ybody;
            unroll_rows!(R, |r| {
                let $wb = w[r].add($ws * i);
                let (s, sw): (__m512i, __m512i) = $rbody;
                let dw = _mm512_castsi512_si128(_mm512_permutexvar_epi16(sidx, sw));
                // [d_w d_x for the four blocks, m_w s_x for the four blocks]
                let dm = _mm256_mul_ps(_mm256_cvtph_ps(dw), dx);
                if $mins {
                    accm[r] = _mm256_add_ps(accm[r], dm);
                }
                let d16 = _mm512_permutexvar_ps(rep4, _mm512_castps256_ps512(dm));
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d16, acc[r]);
            });
            i += 4;
        }
        let mut out = [0.0f32; R];
        for r in 0..R {
            let mut v = _mm512_reduce_add_ps(acc[r]);
            if $mins {
                v += hsum128(_mm256_extractf128_ps(accm[r], 1));
            }
            if i < nb {
                v += $tail(w[r].add($ws * i), x.add($xs * i), nb - i);
            }
            out[r] = v;
        }
        out
    }};
}

/// Q4_0 × Q8_0 for `R` rows: `Σ q y − 8 Σ y` per block (`q` the nibble). Without VNNI the i16
/// pair sums are at most `2 · 2 · 15 · 128 + 4 · 8 · 128 = 11776`.
///
/// # Safety
/// Each `w[r]`: `nb` Q4_0 blocks, `x`: `nb` Q8_0 blocks; features as the module.
#[inline(always)]
unsafe fn dot_q4_0<const VNNI: bool, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: a step reads 72 bytes of each row (four blocks) and 136 of `x`; inside the rows.
    unsafe {
        let qidx = load64(Q4_0_QS.as_ptr().cast());
        four_blocks!(
            w,
            x,
            nb,
            ws = 18,
            xs = 34,
            mins = false,
            scales = Q4_0_D,
            tail = avx2::dot_q4_0,
            |xb| {
                let (ylo, yhi) = y_halves(xb, 34, 2);
                (ylo, yhi, offset_corr::<VNNI>(8, ylo, yhi))
            },
            |wb, y| {
                let a = load64(wb);
                let (lo, hi) = nibbles(_mm512_permutex2var_epi16(a, qidx, load64(wb.add(8))));
                (dot_halves::<VNNI>(y.2, lo, y.0, hi, y.1), a)
            }
        )
    }
}

/// IQ4_NL × Q8_0 for `R` rows: the nibbles index the grid. With VNNI the grid + 128 (unsigned)
/// and `− 128 Σ y`; without, signed products `|g| × ±y`, each half's pair sums (at most
/// `2 · 127 · 128`) widened separately.
///
/// # Safety
/// Each `w[r]`: `nb` IQ4_NL blocks, `x`: `nb` Q8_0 blocks; features as the module.
#[inline(always)]
unsafe fn dot_iq4_nl<const VNNI: bool, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: as `dot_q4_0` (the same block geometry).
    unsafe {
        let qidx = load64(Q4_0_QS.as_ptr().cast());
        let grid = _mm512_broadcast_i32x4(load16(KVALUES_IQ4NL.as_ptr().cast()));
        let table = if VNNI {
            _mm512_xor_si512(grid, _mm512_set1_epi8(-128))
        } else {
            grid
        };
        four_blocks!(
            w,
            x,
            nb,
            ws = 18,
            xs = 34,
            mins = false,
            scales = Q4_0_D,
            tail = avx2::dot_iq4_nl,
            |xb| {
                let (ylo, yhi) = y_halves(xb, 34, 2);
                let corr = if VNNI {
                    offset_corr::<true>(128, ylo, yhi)
                } else {
                    _mm512_setzero_si512()
                };
                (ylo, yhi, corr)
            },
            |wb, y| {
                let a = load64(wb);
                let (lo, hi) = nibbles(_mm512_permutex2var_epi16(a, qidx, load64(wb.add(8))));
                let (lo, hi) = (
                    _mm512_shuffle_epi8(table, lo),
                    _mm512_shuffle_epi8(table, hi),
                );
                let s = if VNNI {
                    dot_halves::<true>(y.2, lo, y.0, hi, y.1)
                } else {
                    let ones = _mm512_set1_epi16(1);
                    let (al, bl) = sign_split(lo, y.0);
                    let (ah, bh) = sign_split(hi, y.1);
                    _mm512_add_epi32(
                        _mm512_madd_epi16(_mm512_maddubs_epi16(al, bl), ones),
                        _mm512_madd_epi16(_mm512_maddubs_epi16(ah, bh), ones),
                    )
                };
                (s, a)
            }
        )
    }
}

/// Q5_0 × Q8_0 for `R` rows: `q = nibble + 16 · bit`, `Σ q y − 16 Σ y` per block. Without VNNI
/// the i16 pair sums are at most `2 · 2 · 31 · 128 + 4 · 16 · 128 = 24064`.
///
/// # Safety
/// Each `w[r]`: `nb` Q5_0 blocks, `x`: `nb` Q8_0 blocks; features as the module.
#[inline(always)]
unsafe fn dot_q5_0<const VNNI: bool, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: a step reads 88 bytes of each row and 136 of `x`; inside the rows.
    unsafe {
        let qidx = load64(Q5_0_QS.as_ptr().cast());
        let sixteen = _mm512_set1_epi8(16);
        four_blocks!(
            w,
            x,
            nb,
            ws = 22,
            xs = 34,
            mins = false,
            scales = Q5_0_D,
            tail = avx2::dot_q5_0,
            |xb| {
                let (ylo, yhi) = y_halves(xb, 34, 2);
                (ylo, yhi, offset_corr::<VNNI>(16, ylo, yhi))
            },
            |wb, y| {
                let (a, b) = (load64(wb), load64(wb.add(24)));
                let (lo, hi) = nibbles(_mm512_permutex2var_epi16(a, qidx, b));
                let (mlo, mhi) = qh_masks(wb.add(2), 22);
                let lo = _mm512_mask_add_epi8(lo, mlo, lo, sixteen);
                let hi = _mm512_mask_add_epi8(hi, mhi, hi, sixteen);
                // Block 3's `d` (byte 66) into word 21.
                let sw = _mm512_mask_blend_epi16(1 << 21, a, b);
                (dot_halves::<VNNI>(y.2, lo, y.0, hi, y.1), sw)
            }
        )
    }
}

/// Q5_1 × Q8_1 for `R` rows: `q = nibble + 16 · bit`, `d_w d_x Σ q y + m_w s_x` per block.
/// Without VNNI the i16 pair sums are at most `2 · 2 · 31 · 128 = 15872`.
///
/// # Safety
/// Each `w[r]`: `nb` Q5_1 blocks, `x`: `nb` Q8_1 blocks; features as the module.
#[inline(always)]
unsafe fn dot_q5_1<const VNNI: bool, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: a step reads 96 bytes of each row and 144 of `x`; inside the rows.
    unsafe {
        let qidx = load64(Q5_1_QS.as_ptr().cast());
        let sixteen = _mm512_set1_epi8(16);
        let zero = _mm512_setzero_si512();
        four_blocks!(
            w,
            x,
            nb,
            ws = 24,
            xs = 36,
            mins = true,
            scales = Q5_1_DM,
            tail = avx2::dot_q5_1,
            |xb| y_halves(xb, 36, 4),
            |wb, y| {
                let (a, b) = (load64(wb), load64(wb.add(32)));
                let (lo, hi) = nibbles(_mm512_permutex2var_epi16(a, qidx, b));
                let (mlo, mhi) = qh_masks(wb.add(4), 24);
                let lo = _mm512_mask_add_epi8(lo, mlo, lo, sixteen);
                let hi = _mm512_mask_add_epi8(hi, mhi, hi, sixteen);
                // Block 3's `d`, `m` (bytes 72..76) into words 20, 21.
                let sw = _mm512_mask_blend_epi16(3 << 20, a, b);
                (dot_halves::<VNNI>(zero, lo, y.0, hi, y.1), sw)
            }
        )
    }
}

/// The f16 scales of four blocks `stride` bytes apart, as f32 lanes 0..4.
///
/// # Safety
/// The four blocks readable; F16C.
#[inline(always)]
unsafe fn scales4(p: *const u8, stride: usize) -> __m128 {
    // SAFETY: reads the four f16 fields.
    unsafe {
        _mm_cvtph_ps(_mm_setr_epi16(
            rd16(p),
            rd16(p.add(stride)),
            rd16(p.add(2 * stride)),
            rd16(p.add(3 * stride)),
            0,
            0,
            0,
            0,
        ))
    }
}

/// Q8_0 × Q8_0 for `R` rows, two blocks per register (eight lanes each). With VNNI
/// `Σ (w + 128) y − 128 Σ y`, exact for all inputs; without, `|w| × ±y`.
///
/// # Safety
/// Each `w[r]` and `x`: `nb` Q8_0 blocks; features as the module.
#[inline(always)]
unsafe fn dot_q8_0<const VNNI: bool, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: a step reads four blocks (136 bytes) of each row and of `x`.
    unsafe {
        let k80 = _mm512_set1_epi8(-128);
        let zero = _mm512_setzero_si512();
        let ones = _mm512_set1_epi16(1);
        let rep_a = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        let rep_b = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let mut i = 0;
        while i + 4 <= nb {
            let xb = x.add(34 * i);
            let y01 = load2x32(xb.add(2), xb.add(36));
            let y23 = load2x32(xb.add(70), xb.add(104));
            // −128 Σ y (VNNI only).
            let (n01, n23) = if VNNI {
                (
                    _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, k80, y01)),
                    _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, k80, y23)),
                )
            } else {
                (zero, zero)
            };
            let dx = scales4(xb, 34);
            unroll_rows!(R, |r| {
                let wb = w[r].add(34 * i);
                let w01 = load2x32(wb.add(2), wb.add(36));
                let w23 = load2x32(wb.add(70), wb.add(104));
                let (s01, s23) = if VNNI {
                    (
                        _mm512_dpbusd_epi32(n01, _mm512_xor_si512(w01, k80), y01),
                        _mm512_dpbusd_epi32(n23, _mm512_xor_si512(w23, k80), y23),
                    )
                } else {
                    let (a01, b01) = sign_split(w01, y01);
                    let (a23, b23) = sign_split(w23, y23);
                    (
                        _mm512_madd_epi16(_mm512_maddubs_epi16(a01, b01), ones),
                        _mm512_madd_epi16(_mm512_maddubs_epi16(a23, b23), ones),
                    )
                };
                let dm = _mm512_castps128_ps512(_mm_mul_ps(scales4(wb, 34), dx));
                let d01 = _mm512_permutexvar_ps(rep_a, dm);
                let d23 = _mm512_permutexvar_ps(rep_b, dm);
                acc[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s01), d01, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s23), d23, acc[r][1]);
            });
            i += 4;
        }
        let mut out = [0.0f32; R];
        for r in 0..R {
            let mut v = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
            if i < nb {
                v += avx2::dot_q8_0(w[r].add(34 * i), x.add(34 * i), nb - i);
            }
            out[r] = v;
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// K-quants. Q8_K: d f32 at 0, qs at 4, bsums at 260.
// ---------------------------------------------------------------------------------------------

const Q8K_QS: usize = 4;
const Q8K_BSUMS: usize = 260;

/// `vpermw` indices spreading the sub-block scales of one 128-element half `h` of super-block
/// `k` (of the two in [`k4_scales2`]'s words: `[sc_0 (8), mn_0 (8), sc_1 (8), mn_1 (8)]`) over
/// the `vpackssdw` layout of the half's sums: in 128-bit lane `L`, words 0..4 belong to
/// sub-block `4h + 2 (L / 2)` (low nibbles) and words 4..8 to the next one (high nibbles).
const fn k4_scale_words(k: usize, h: usize) -> [i16; 32] {
    let mut idx = [0i16; 32];
    let mut p = 0;
    while p < 32 {
        let lane = p / 8;
        idx[p] = (16 * k + 4 * h + 2 * (lane / 2) + (p % 8) / 4) as i16;
        p += 1;
    }
    idx
}

/// [`k4_scale_words`] for super-block `k` (0, 1) and half `h` (0, 1).
static K4_SCALE_WORDS: [[[i16; 32]; 2]; 2] = [
    [k4_scale_words(0, 0), k4_scale_words(0, 1)],
    [k4_scale_words(1, 0), k4_scale_words(1, 1)],
];

/// Q6_K: the 16 group scales (words) spread over the `vpackssdw` layout of the pair `t` of
/// registers ([`dot_q6_k`]: `t = 0` packs chunks 0 and 1, `t = 1` chunks 2 and 3, each chunk
/// register holding that chunk of both halves): in 128-bit lane `L`, words 0..4 belong to group
/// `4t + (L mod 2) + 8 (L / 2)` and words 4..8 to the group two further.
const fn q6k_scale_words(t: usize) -> [i16; 32] {
    let mut idx = [0i16; 32];
    let mut p = 0;
    while p < 32 {
        let lane = p / 8;
        idx[p] = (4 * t + 2 * ((p % 8) / 4) + lane % 2 + 8 * (lane / 2)) as i16;
        p += 1;
    }
    idx
}

/// [`q6k_scale_words`] for the two register pairs.
static Q6K_SCALE_WORDS: [[i16; 32]; 2] = [q6k_scale_words(0), q6k_scale_words(1)];

/// The Q4_K / Q5_K scales and mins of two super-blocks, unpacked from the 12 packed bytes at
/// `p0`, `p1` (16 bytes read at each: the 4 after the scales belong to the same block): 128-bit
/// lane `j` is `[8 scales, 8 mins]` of super-block `j`, as bytes (each 0..64). The same bit
/// manipulation as `scalar::k4_scales_mins`, on both blocks at once.
///
/// # Safety
/// `p0`, `p1` readable for 16 bytes; AVX2.
#[inline(always)]
unsafe fn k4_scales2(p0: *const u8, p1: *const u8) -> __m256i {
    // SAFETY: caller's contract; the rest is register work.
    unsafe {
        // Per lane, as u32: [u0, u1, u2, _].
        let v = _mm256_inserti128_si256(_mm256_castsi128_si256(load16(p0)), load16(p1), 1);
        let a = _mm256_shuffle_epi32(v, 0b10_01_10_00); // [u0, u2, u1, u2]
        let b = _mm256_shuffle_epi32(v, 0b01_01_00_00); // [u0, u0, u1, u1]
        // sc0 = u0 & 3f, sc1 = (u2 & 0f) | ((u0 >> 2) & 30), mn0 = u1 & 3f,
        // mn1 = ((u2 >> 4) & 0f) | ((u1 >> 2) & 30), bytewise.
        let t1 = _mm256_and_si256(
            _mm256_srlv_epi32(a, _mm256_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4)),
            _mm256_setr_epi32(
                0x3f3f_3f3f,
                0x0f0f_0f0f,
                0x3f3f_3f3f,
                0x0f0f_0f0f,
                0x3f3f_3f3f,
                0x0f0f_0f0f,
                0x3f3f_3f3f,
                0x0f0f_0f0f,
            ),
        );
        let t2 = _mm256_and_si256(
            _mm256_srli_epi32(b, 2),
            _mm256_setr_epi32(
                0,
                0x3030_3030,
                0,
                0x3030_3030,
                0,
                0x3030_3030,
                0,
                0x3030_3030,
            ),
        );
        _mm256_or_si256(t1, t2)
    }
}

/// Bytes `1 << a` in the low 256 bits and `1 << b` in the high 256 bits (`a`, `b` in 0..8).
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn bit_pair(a: i32, b: i32) -> __m512i {
    // SAFETY: register-only intrinsics.
    unsafe {
        _mm512_inserti64x4(
            _mm512_set1_epi8((1u8 << a) as i8),
            _mm256_set1_epi8((1u8 << b) as i8),
            1,
        )
    }
}

/// Q4_K × Q8_K for `R` rows.
///
/// # Safety
/// Each `w[r]`: `nb` Q4_K blocks, `x`: `nb` Q8_K blocks; features as the module.
#[inline(always)]
unsafe fn dot_q4_k<const VNNI: bool, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: caller's contract, forwarded.
    unsafe { dot_k4::<false, VNNI, R>(w, x, nb) }
}

/// Q5_K × Q8_K for `R` rows.
///
/// # Safety
/// Each `w[r]`: `nb` Q5_K blocks, `x`: `nb` Q8_K blocks; features as the module.
#[inline(always)]
unsafe fn dot_q5_k<const VNNI: bool, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: caller's contract, forwarded.
    unsafe { dot_k4::<true, VNNI, R>(w, x, nb) }
}

/// Q4_K (`FIVE = false`) / Q5_K (`FIVE = true`: plus bit `g` of `qh[l]`, worth 16, for
/// element `l` of sub-block `g`) × Q8_K for `R` rows, two super-blocks per step:
/// `d Σ_g sc_g Σ q y − dmin Σ_g m_g (bsum_2g + bsum_2g+1)`. Per 128 elements the low and high
/// nibbles' sums (i32 lanes, at most `4 · 31 · 128` in magnitude) are packed to i16 and
/// multiplied by the scales in one `vpdpwssd`. Without VNNI the `vpmaddubsw` pair sums are at
/// most `2 · 31 · 128`.
///
/// # Safety
/// Each `w[r]`: `nb` Q4_K (Q5_K) blocks, `x`: `nb` Q8_K blocks; features as the module.
#[inline(always)]
unsafe fn dot_k4<const FIVE: bool, const VNNI: bool, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `ws i .. ws (i + 1)`, of `x` `292 i ..`; a step reads
    // two blocks of each row and of `x`, all loads inside them.
    unsafe {
        // Block size; quants at `qo`; Q5_K's qh at 16.
        let (ws, qo) = if FIVE { (176, 48) } else { (144, 16) };
        let m4 = _mm512_set1_epi8(0x0F);
        let sixteen = _mm512_set1_epi8(16);
        let zero = _mm512_setzero_si512();
        let sidx = [
            [
                load64(K4_SCALE_WORDS[0][0].as_ptr().cast()),
                load64(K4_SCALE_WORDS[0][1].as_ptr().cast()),
            ],
            [
                load64(K4_SCALE_WORDS[1][0].as_ptr().cast()),
                load64(K4_SCALE_WORDS[1][1].as_ptr().cast()),
            ],
        ];
        let dmin_idx = _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3);
        let mut acc = [_mm512_setzero_ps(); R];
        // The min terms, four lanes per super-block.
        let mut accm = [_mm256_setzero_ps(); R];
        let mut i = 0;
        while i + 2 <= nb {
            let xb = x.add(292 * i);
            let (yd0, yd1) = (
                xb.cast::<f32>().read_unaligned(),
                xb.add(292).cast::<f32>().read_unaligned(),
            );
            let yd = _mm_setr_ps(yd0, yd0, yd1, yd1);
            // bsums pair sums (|bsum| ≤ 16 · 128, so a pair fits in i16): [8 of block i, 8 of i + 1].
            let bs = _mm256_hadd_epi16(load32(xb.add(Q8K_BSUMS)), load32(xb.add(292 + Q8K_BSUMS)));
            let bs = _mm256_permute4x64_epi64(bs, 0b11_01_10_00);
            // Per row: [d, dmin] of both blocks (times yd), the scales as words.
            let mut dm = [[0.0f32; 4]; R];
            let mut sc = [zero; R];
            unroll_rows!(R, |r| {
                let wb = w[r].add(ws * i);
                let h = _mm_setr_epi32(rd32(wb), rd32(wb.add(ws)), 0, 0);
                let dmr = _mm_mul_ps(_mm_cvtph_ps(h), yd);
                _mm_storeu_ps(dm[r].as_mut_ptr(), dmr);
                let s8 = k4_scales2(wb.add(4), wb.add(ws + 4));
                // [mins of block i, mins of block i + 1] as words, times the pair sums.
                let mn = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(_mm256_permute4x64_epi64(
                    s8, 0b11_01,
                )));
                let mins = _mm256_cvtepi32_ps(_mm256_madd_epi16(mn, bs));
                let dmin = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(dmr), dmin_idx);
                accm[r] = _mm256_fmadd_ps(dmin, mins, accm[r]);
                sc[r] = _mm512_cvtepu8_epi16(s8);
            });
            for (k, sidx) in sidx.iter().enumerate() {
                let yq = xb.add(292 * k + Q8K_QS);
                // Sub-blocks [4h, 4h + 2] and [4h + 1, 4h + 3] of half h, as the nibbles lie.
                let ya = [
                    load2x32_back(yq, yq.add(64)),
                    load2x32_back(yq.add(128), yq.add(192)),
                ];
                let yb = [
                    load2x32_back(yq.add(32), yq.add(96)),
                    load2x32_back(yq.add(160), yq.add(224)),
                ];
                unroll_rows!(R, |r| {
                    let wk = w[r].add(ws * (i + k));
                    let qh = if FIVE {
                        _mm512_broadcast_i64x4(load32(wk.add(16)))
                    } else {
                        zero
                    };
                    let mut sumi = zero;
                    for h in 0..2 {
                        // Bytes 64h..64h + 64: chunks 2h, 2h + 1; low nibbles are sub-blocks
                        // 4h, 4h + 2, high nibbles 4h + 1, 4h + 3.
                        let l = load64(wk.add(qo + 64 * h));
                        let mut lo = _mm512_and_si512(l, m4);
                        let mut hi = _mm512_and_si512(_mm512_srli_epi16(l, 4), m4);
                        if FIVE {
                            let g = 4 * h as i32;
                            let klo = _mm512_test_epi8_mask(qh, bit_pair(g, g + 2));
                            let khi = _mm512_test_epi8_mask(qh, bit_pair(g + 1, g + 3));
                            lo = _mm512_mask_add_epi8(lo, klo, lo, sixteen);
                            hi = _mm512_mask_add_epi8(hi, khi, hi, sixteen);
                        }
                        let t = _mm512_packs_epi32(
                            dot_u8::<VNNI>(lo, ya[h]),
                            dot_u8::<VNNI>(hi, yb[h]),
                        );
                        sumi = mac16::<VNNI>(sumi, t, _mm512_permutexvar_epi16(sidx[h], sc[r]));
                    }
                    let d = bcast_mem(dm[r].as_ptr().add(2 * k));
                    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), d, acc[r]);
                });
            }
            i += 2;
        }
        let mut out = [0.0f32; R];
        for r in 0..R {
            let m = accm[r];
            let m = hsum128(_mm_add_ps(
                _mm256_castps256_ps128(m),
                _mm256_extractf128_ps(m, 1),
            ));
            let mut v = _mm512_reduce_add_ps(acc[r]) - m;
            if i < nb {
                let (wl, xl) = (w[r].add(ws * i), x.add(292 * i));
                v += if FIVE {
                    avx2::dot_q5_k(wl, xl, 1)
                } else {
                    avx2::dot_q4_k(wl, xl, 1)
                };
            }
            out[r] = v;
        }
        out
    }
}

/// A `vgf2p8affineqb` matrix (one 64-bit lane) that sets bit `i` of each byte to bit
/// `src[i]` of the input byte (`src[i] >= 8`: to 0).
const fn gf2_bits(src: [u8; 8]) -> i64 {
    let mut m = 0u64;
    let mut i = 0;
    while i < 8 {
        if src[i] < 8 {
            // Row of output bit `i` is byte `7 − i`.
            m |= (1u64 << src[i]) << (8 * (7 - i));
        }
        i += 1;
    }
    m as i64
}

/// No bit.
const NB: u8 = 8;
/// Bits `2k, 2k + 1` to 4, 5 (the rest cleared), for `k` = 0..4.
const GF_Q6_HIGH: [i64; 4] = [
    gf2_bits([NB, NB, NB, NB, 0, 1, NB, NB]),
    gf2_bits([NB, NB, NB, NB, 2, 3, NB, NB]),
    gf2_bits([NB, NB, NB, NB, 4, 5, NB, NB]),
    gf2_bits([NB, NB, NB, NB, 6, 7, NB, NB]),
];

/// Q6_K, [`dot_q6_k_gfni`]: the 16 group scales (words) spread over the `vpackssdw` layout of
/// half `h`'s two registers (elements `128 h ..+ 64` and `128 h + 64 ..+ 64`): in 128-bit lane
/// `L`, words 0..4 belong to group `8 h + L` and words 4..8 to group `8 h + 4 + L`.
const fn q6k_gfni_scale_words(h: usize) -> [i16; 32] {
    let mut idx = [0i16; 32];
    let mut p = 0;
    while p < 32 {
        let lane = p / 8;
        idx[p] = (8 * h + lane + 4 * ((p % 8) / 4)) as i16;
        p += 1;
    }
    idx
}

/// [`q6k_gfni_scale_words`] for the two halves.
static Q6K_GFNI_SCALE_WORDS: [[i16; 32]; 2] = [q6k_gfni_scale_words(0), q6k_gfni_scale_words(1)];

/// Q6_K × Q8_K for `R` rows with VNNI and GFNI; the same sums as [`dot_q6_k`] in another
/// arrangement. Half `h` of a super-block is two registers of 64 elements in order (so the
/// activations load as they lie): elements `128 h + l` and `128 h + 32 + l` (`l` < 32) are the
/// low nibbles of ql bytes `64 h + l` and `64 h + 32 + l`, with bits 0, 1 and 2, 3 of qh byte
/// `32 h + l`; elements `128 h + 64 ..` the high nibbles with bits 4, 5 and 6, 7. The qh bytes
/// come in once per half as a 32-byte broadcast, and one `vgf2p8affineqb` (its matrix chosen
/// per 64-bit lane) moves each register's two bits to bits 4, 5 and clears the rest. The
/// `− 32` is the `vpdpbusd` seed `−32 Σ y`; the group sums (at most `4 · 32 · 128`) are packed
/// to i16 and scaled with one `vpdpwssd` per half.
///
/// # Safety
/// Each `w[r]`: `nb` Q6_K blocks, `x`: `nb` Q8_K blocks; AVX-512 F/BW/VL, VNNI, GFNI, AVX2,
/// FMA, F16C.
#[inline(always)]
unsafe fn dot_q6_k_gfni<const R: usize>(w: [*const u8; R], x: *const u8, nb: usize) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `210 i ..`, of `x` `292 i ..`; loads stay inside.
    unsafe {
        let m4 = _mm512_set1_epi8(0x0F);
        let k32 = _mm512_set1_epi8(32);
        let zero = _mm512_setzero_si512();
        let [g0, g1, g2, g3] = GF_Q6_HIGH;
        // Per 64-bit lane: the low 256 bits take one field, the high 256 bits the other.
        let gf_lo = _mm512_setr_epi64(g0, g0, g0, g0, g1, g1, g1, g1);
        let gf_hi = _mm512_setr_epi64(g2, g2, g2, g2, g3, g3, g3, g3);
        let sidx = [
            load64(Q6K_GFNI_SCALE_WORDS[0].as_ptr().cast()),
            load64(Q6K_GFNI_SCALE_WORDS[1].as_ptr().cast()),
        ];
        let mut acc = [_mm512_setzero_ps(); R];
        for i in 0..nb {
            let xb = x.add(292 * i);
            let yd = xb.cast::<f32>().read_unaligned();
            let yq = xb.add(Q8K_QS);
            // Elements 64 c ..+ 64.
            let y: [__m512i; 4] = std::array::from_fn(|c| load64(yq.add(64 * c)));
            // −32 Σ y per i32 lane.
            let corr: [__m512i; 4] = std::array::from_fn(|c| {
                _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, k32, y[c]))
            });
            // The rows' `d` (f16 at byte 208) times `yd`, converted together.
            let mut dh = [0i16; 8];
            for (h, w) in dh.iter_mut().zip(w) {
                *h = rd16(w.add(210 * i + 208));
            }
            let mut d = [0.0f32; 8];
            let dv = _mm256_cvtph_ps(_mm_loadu_si128(dh.as_ptr().cast()));
            _mm256_storeu_ps(d.as_mut_ptr(), _mm256_mul_ps(dv, _mm256_set1_ps(yd)));
            unroll_rows!(R, |r| {
                let wb = w[r].add(210 * i);
                let sc = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(load16(wb.add(192))));
                let mut sumi = zero;
                for h in 0..2 {
                    let ql = load64(wb.add(64 * h));
                    let qh = _mm512_broadcast_i64x4(load32(wb.add(128 + 32 * h)));
                    let a = _mm512_ternarylogic_epi32::<0xCA>(
                        m4,
                        ql,
                        _mm512_gf2p8affine_epi64_epi8::<0>(qh, gf_lo),
                    );
                    let b = _mm512_ternarylogic_epi32::<0xCA>(
                        m4,
                        _mm512_srli_epi16(ql, 4),
                        _mm512_gf2p8affine_epi64_epi8::<0>(qh, gf_hi),
                    );
                    let pa = _mm512_dpbusd_epi32(corr[2 * h], a, y[2 * h]);
                    let pb = _mm512_dpbusd_epi32(corr[2 * h + 1], b, y[2 * h + 1]);
                    let s = _mm512_permutexvar_epi16(sidx[h], sc);
                    sumi = mac16::<true>(sumi, _mm512_packs_epi32(pa, pb), s);
                }
                acc[r] = _mm512_fmadd_ps(
                    _mm512_cvtepi32_ps(sumi),
                    bcast_mem(d.as_ptr().add(r)),
                    acc[r],
                );
            });
        }
        let mut out = [0.0f32; R];
        for r in 0..R {
            out[r] = _mm512_reduce_add_ps(acc[r]);
        }
        out
    }
}

/// Q6_K × Q8_K for `R` rows: `q = ql nibble | qh 2 bits << 4` in 0..64 (value `q − 32`),
/// `d Σ_g s_g Σ (q − 32) y` over groups of 16. Chunk `c` (0..4) of a super-block's half `h` is
/// elements `128 h + 32 c ..`: nibbles of ql bytes `64 h + 32 (c mod 2) ..` (low for `c < 2`),
/// bits `2c, 2c + 1` of qh bytes `32 h ..`. One register holds chunk `c` of both halves, so
/// the qh bytes load as they lie and every register takes fixed shifts. The `− 32` comes in
/// with the activations (seeding `vpdpbusd` with `−32 Σ y`; without VNNI subtracting `32 Σ y`
/// from the pair sums, at most `2 · 63 · 128 + 2 · 32 · 128 = 24320`). The group sums' i32 lanes
/// (at most `4 · 32 · 128`) are packed to i16 and scaled with one `vpdpwssd` per two chunks.
///
/// # Safety
/// Each `w[r]`: `nb` Q6_K blocks (210 bytes: ql 0, qh 128, scales 192, d 208), `x`: `nb` Q8_K
/// blocks; features as the module.
#[inline(always)]
unsafe fn dot_q6_k<const VNNI: bool, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `210 i ..`, of `x` `292 i ..`; loads stay inside.
    unsafe {
        let m4 = _mm512_set1_epi8(0x0F);
        let k32 = _mm512_set1_epi8(32);
        let zero = _mm512_setzero_si512();
        let ones = _mm512_set1_epi16(1);
        // qh bits 0, 1, 4, 5 and bits 2, 3, 6, 7.
        let (m33, mcc) = (_mm512_set1_epi8(0x33), _mm512_set1_epi8(-52));
        let sidx = [
            load64(Q6K_SCALE_WORDS[0].as_ptr().cast()),
            load64(Q6K_SCALE_WORDS[1].as_ptr().cast()),
        ];
        let mut acc = [_mm512_setzero_ps(); R];
        for i in 0..nb {
            let xb = x.add(292 * i);
            let yd = xb.cast::<f32>().read_unaligned();
            let yq = xb.add(Q8K_QS);
            // Chunk c of both halves.
            let y = [
                load2x32_back(yq, yq.add(128)),
                load2x32_back(yq.add(32), yq.add(160)),
                load2x32_back(yq.add(64), yq.add(192)),
                load2x32_back(yq.add(96), yq.add(224)),
            ];
            // The offset term of each register: VNNI −32 Σ y (i32), else 32 y pair sums (i16).
            let mut corr = [zero; 4];
            for (c, y) in corr.iter_mut().zip(y) {
                *c = if VNNI {
                    _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, k32, y))
                } else {
                    _mm512_maddubs_epi16(k32, y)
                };
            }
            // The rows' `d` (f16 at byte 208) times `yd`, converted together.
            let mut dh = [0i16; 8];
            for (h, w) in dh.iter_mut().zip(w) {
                *h = rd16(w.add(210 * i + 208));
            }
            let mut d = [0.0f32; 8];
            let dv = _mm256_cvtph_ps(_mm_loadu_si128(dh.as_ptr().cast()));
            _mm256_storeu_ps(d.as_mut_ptr(), _mm256_mul_ps(dv, _mm256_set1_ps(yd)));
            unroll_rows!(R, |r| {
                let wb = w[r].add(210 * i);
                let sc = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(load16(wb.add(192))));
                let lx = load2x32_back(wb, wb.add(64));
                let ly = load2x32_back(wb.add(32), wb.add(96));
                let qh = load64(wb.add(128));
                // Chunks 0, 2 take bits 0, 1 (shifted to 4, 5) and 4, 5 of `h33`; chunks 1, 3
                // bits 2, 3 and 6, 7 of `hcc`. Whatever a 16-bit shift moves into bits 0..4
                // is replaced by the nibble: `m4 ? nibble : high bits` (0xCA: a ? b : c).
                let (h33, hcc) = (_mm512_and_si512(qh, m33), _mm512_and_si512(qh, mcc));
                let q = [
                    _mm512_ternarylogic_epi32::<0xCA>(m4, lx, _mm512_slli_epi16(h33, 4)),
                    _mm512_ternarylogic_epi32::<0xCA>(m4, ly, _mm512_slli_epi16(hcc, 2)),
                    _mm512_ternarylogic_epi32::<0xCA>(m4, _mm512_srli_epi16(lx, 4), h33),
                    _mm512_ternarylogic_epi32::<0xCA>(
                        m4,
                        _mm512_srli_epi16(ly, 4),
                        _mm512_srli_epi16(hcc, 2),
                    ),
                ];
                let mut p = [zero; 4];
                for c in 0..4 {
                    p[c] = if VNNI {
                        _mm512_dpbusd_epi32(corr[c], q[c], y[c])
                    } else {
                        let p16 = _mm512_sub_epi16(_mm512_maddubs_epi16(q[c], y[c]), corr[c]);
                        _mm512_madd_epi16(p16, ones)
                    };
                }
                let s01 = _mm512_permutexvar_epi16(sidx[0], sc);
                let s23 = _mm512_permutexvar_epi16(sidx[1], sc);
                let sumi = mac16::<VNNI>(zero, _mm512_packs_epi32(p[0], p[1]), s01);
                let sumi = mac16::<VNNI>(sumi, _mm512_packs_epi32(p[2], p[3]), s23);
                acc[r] = _mm512_fmadd_ps(
                    _mm512_cvtepi32_ps(sumi),
                    bcast_mem(d.as_ptr().add(r)),
                    acc[r],
                );
            });
        }
        let mut out = [0.0f32; R];
        for r in 0..R {
            out[r] = _mm512_reduce_add_ps(acc[r]);
        }
        out
    }
}
