//! AVX-512 kernels (F, BW, VL; with or without VNNI), using the full 512-bit width: the
//! 32-element formats two blocks per register, the K-quants whole super-blocks.
//!
//! Each per-row kernel is generic over `VNNI`: with it, byte products are summed with
//! `vpdpbusd` (u8 × i8, four products per i32 lane, never saturating) and word products with
//! `vpdpwssd`; without it, with `vpmaddubsw` + `vpmaddwd` under the same exactness conditions
//! as the AVX2 kernels. Signed × signed byte products use an offset with VNNI
//! (`Σ (a+128) b − 128 Σ b`, exact for every input) and `|a| × ±b` without.
//!
//! Two tables, [`AVX512`] and [`AVX512_VNNI`], each wrapping the kernels in row loops compiled
//! with the matching `#[target_feature]` set; handed out only after the features were detected
//! (`x86::table`). The activation converters are the AVX2 ones (AVX-512 CPUs have AVX2).
//! Leftover blocks that do not fill a 512-bit register are done with the AVX2 kernels.
//!
//! F16, IQ4_XS, Q2_K and Q3_K use the AVX2 kernels in these tables too: on Zen 4, which
//! executes a 512-bit operation as two 256-bit halves, their 512-bit versions (`vcvtph2ps zmm`;
//! grid look-ups with mask-register sign handling; the 2-bit formats' split activation loads)
//! measured 8-35% slower than the AVX2 ones, so they were dropped. For the other types the
//! 512-bit kernels are at least as fast (VNNI and two rows per pass help most).

use std::arch::x86_64::*;

use super::avx2;
use crate::kernels::{Isa, Kernels, dot_rows_fns};
use crate::quant::blocks::KVALUES_IQ4NL;

/// AVX-512 F/BW/VL without VNNI.
pub(in crate::kernels) static AVX512: Kernels = Kernels {
    isa: Isa::Avx512,
    f32: plain::f32,
    f16: avx2::AVX2.f16,
    bf16: plain::bf16,
    q4_0: plain::q4_0,
    // Q4_1 keeps the 256-bit kernel: its reference order is one block per 8-lane vector.
    q4_1: avx2::AVX2.q4_1,
    q5_0: plain::q5_0,
    q5_1: plain::q5_1,
    q8_0: plain::q8_0,
    q2_k: avx2::AVX2.q2_k,
    q3_k: avx2::AVX2.q3_k,
    q4_k: plain::q4_k,
    q5_k: plain::q5_k,
    q6_k: plain::q6_k,
    iq4_nl: plain::iq4_nl,
    iq4_xs: avx2::AVX2.iq4_xs,
    quantize_q8_0: avx2::AVX2.quantize_q8_0,
    quantize_q8_1: avx2::AVX2.quantize_q8_1,
    quantize_q8_k: avx2::AVX2.quantize_q8_k,
    to_f16: avx2::AVX2.to_f16,
    to_bf16: avx2::AVX2.to_bf16,
};

/// AVX-512 F/BW/VL with VNNI.
pub(in crate::kernels) static AVX512_VNNI: Kernels = Kernels {
    isa: Isa::Avx512Vnni,
    f32: vnni::f32,
    f16: avx2::AVX2.f16,
    bf16: vnni::bf16,
    q4_0: vnni::q4_0,
    q4_1: avx2::AVX2.q4_1,
    q5_0: vnni::q5_0,
    q5_1: vnni::q5_1,
    q8_0: vnni::q8_0,
    q2_k: avx2::AVX2.q2_k,
    q3_k: avx2::AVX2.q3_k,
    q4_k: vnni::q4_k,
    q5_k: vnni::q5_k,
    q6_k: vnni::q6_k,
    iq4_nl: vnni::iq4_nl,
    iq4_xs: avx2::AVX2.iq4_xs,
    quantize_q8_0: avx2::AVX2.quantize_q8_0,
    quantize_q8_1: avx2::AVX2.quantize_q8_1,
    quantize_q8_k: avx2::AVX2.quantize_q8_k,
    to_f16: avx2::AVX2.to_f16,
    to_bf16: avx2::AVX2.to_bf16,
};

mod plain {
    use super::*;
    dot_rows_fns! {
        features = "avx512f,avx512bw,avx512vl,avx2,fma,f16c";
        f32: dot_f32, 4, 4;
        bf16: dot_bf16, 2, 2;
        q4_0: dot_q4_0::<false>, 18, 34, pair = dot_q4_0_rows::<false, 2>;
        q5_0: dot_q5_0::<false>, 22, 34, pair = dot_q5_0_rows::<false, 2>;
        q5_1: dot_q5_1::<false>, 24, 36, pair = dot_q5_1_rows::<false, 2>;
        q8_0: dot_q8_0::<false>, 34, 34, pair = dot_q8_0_rows::<false, 2>;
        q4_k: dot_q4_k::<false>, 144, 292;
        q5_k: dot_q5_k::<false>, 176, 292;
        q6_k: dot_q6_k::<false>, 210, 292;
        iq4_nl: dot_iq4_nl::<false>, 18, 34, pair = dot_iq4_nl_rows::<false, 2>;
    }
}

mod vnni {
    use super::*;
    dot_rows_fns! {
        features = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c";
        f32: dot_f32, 4, 4;
        bf16: dot_bf16, 2, 2;
        q4_0: dot_q4_0::<true>, 18, 34, pair = dot_q4_0_rows::<true, 2>;
        q5_0: dot_q5_0::<true>, 22, 34, pair = dot_q5_0_rows::<true, 2>;
        q5_1: dot_q5_1::<true>, 24, 36, pair = dot_q5_1_rows::<true, 2>;
        q8_0: dot_q8_0::<true>, 34, 34, pair = dot_q8_0_rows::<true, 2>;
        q4_k: dot_q4_k::<true>, 144, 292;
        q5_k: dot_q5_k::<true>, 176, 292;
        q6_k: dot_q6_k::<true>, 210, 292;
        iq4_nl: dot_iq4_nl::<true>, 18, 34, pair = dot_iq4_nl_rows::<true, 2>;
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

/// Reads a little-endian i32 at any alignment.
///
/// # Safety
/// `p` readable for 4 bytes.
#[inline(always)]
unsafe fn rd32(p: *const u8) -> i32 {
    // SAFETY: caller's contract.
    unsafe { p.cast::<i32>().read_unaligned() }
}

/// Spreads lanes `4k` and `4k + 2` of `d` to the low and high 256-bit halves.
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn spread_pairs(d: __m256, k: i32) -> __m512 {
    // SAFETY: register-only intrinsics.
    unsafe {
        let (a, b) = (4 * k, 4 * k + 2);
        let idx = _mm512_setr_epi32(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b);
        _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(d))
    }
}

/// The nibbles of two 32-element blocks (16 bytes at `a`, 16 at `b`) as 64 bytes in element
/// order: `[a low nibbles, a high nibbles, b low, b high]`, each 0..=15.
///
/// # Safety
/// `a`, `b` readable for 16 bytes; AVX-512F/BW.
#[inline(always)]
unsafe fn nibbles2(a: *const u8, b: *const u8) -> __m512i {
    // SAFETY: caller's contract.
    unsafe {
        let t = _mm256_inserti128_si256(_mm256_castsi128_si256(load16(a)), load16(b), 1);
        let z = _mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1);
        let z = _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
        // [a.lo, b.lo, a.hi, b.hi] -> [a.lo, a.hi, b.lo, b.hi]
        _mm512_shuffle_i64x2(z, z, 0b11_01_10_00)
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

/// The activation-side half of [`dot_u8_sub`]: `Σ off · b` (VNNI: as i32 lanes; without:
/// as i16 pair sums), for a constant unsigned `off`. Returned with `b` itself.
///
/// # Safety
/// AVX-512BW (+VNNI when `VNNI`).
#[inline(always)]
unsafe fn dot_u8_corr<const VNNI: bool>(off: __m512i, b: __m512i) -> __m512i {
    // SAFETY: register-only intrinsics.
    unsafe {
        if VNNI {
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, b)
        } else {
            _mm512_maddubs_epi16(off, b)
        }
    }
}

/// `Σ (a − off) b` over each 4 bytes as i32 lanes, for unsigned `a` and the constant `off`
/// whose product with `b` is `yb.1 = dot_u8_corr(off, b)` (`yb = (b, corr)`). Exact with VNNI;
/// without, exact when `2 · max(a, off) · 128 ≤ 32767`.
///
/// # Safety
/// AVX-512BW (+VNNI when `VNNI`).
#[inline(always)]
unsafe fn dot_u8_sub<const VNNI: bool>(
    a: __m512i,
    _off: __m512i,
    yb: &(__m512i, __m512i),
) -> __m512i {
    // SAFETY: register-only intrinsics.
    unsafe {
        let (b, corr) = *yb;
        if VNNI {
            _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), a, b), corr)
        } else {
            let p = _mm512_sub_epi16(_mm512_maddubs_epi16(a, b), corr);
            _mm512_madd_epi16(p, _mm512_set1_epi16(1))
        }
    }
}

/// Σ over each 4 bytes of `a[i] b[i]` for signed `a` and `b`. With VNNI exact for all inputs
/// (`Σ (a ^ 0x80) b − 128 Σ b`); without, exact when `b` has no −128.
///
/// # Safety
/// AVX-512BW (+VNNI when `VNNI`).
#[inline(always)]
unsafe fn dot_i8<const VNNI: bool>(a: __m512i, b: __m512i) -> __m512i {
    // SAFETY: register-only intrinsics.
    unsafe {
        let k80 = _mm512_set1_epi8(-128);
        if VNNI {
            let corr = dot_u8_corr::<true>(k80, b);
            dot_u8_sub::<true>(_mm512_xor_si512(a, k80), k80, &(b, corr))
        } else {
            let neg = _mm512_movepi8_mask(a);
            let sb = _mm512_mask_sub_epi8(b, neg, _mm512_setzero_si512(), b);
            let p = _mm512_maddubs_epi16(_mm512_abs_epi8(a), sb);
            _mm512_madd_epi16(p, _mm512_set1_epi16(1))
        }
    }
}

/// `acc + Σ pairs of p16[i] s16[i]` (i16 × i16 → i32), exact.
///
/// # Safety
/// AVX-512BW (+VNNI when `VNNI`).
#[inline(always)]
unsafe fn mac16<const VNNI: bool>(acc: __m512i, p16: __m512i, s16: __m512i) -> __m512i {
    // SAFETY: register-only intrinsics.
    unsafe {
        if VNNI {
            _mm512_dpwssd_epi32(acc, p16, s16)
        } else {
            _mm512_add_epi32(acc, _mm512_madd_epi16(p16, s16))
        }
    }
}

/// The legacy-format driver for `R` weight rows (`$w: [*const u8; R]`, `R` a const generic in
/// scope) against one activation row `$x`, returning `[f32; R]`. For every four blocks
/// `i..i + 4`: `$ybody` (with `$yi` = `i` and then `i + 2`) prepares the activation side of
/// blocks `$yi`, `$yi + 1`, shared by the rows; `$rbody` (with `$wr` the row, `$ri` the block,
/// `$yv` the prepared activation side) returns that row's i32 lane sums of the two blocks
/// (block `$ri` in the low 256 bits). The scale products come from the f16 pairs at the block
/// starts (`d`, and with `$mins` also `m_w s_x` for Q4_1/Q5_1); leftover blocks go to the AVX2
/// kernel `$tail`. Each row's arithmetic does not depend on `R`, so a row's result is the same
/// bits whether it is computed alone or with others.
macro_rules! legacy_rows {
    ($w:expr, $x:expr, $nb:expr, $ws:expr, $xs:expr, $mins:expr, $tail:path,
     |$yi:ident| $ybody:expr, |$wr:ident, $ri:ident, $yv:ident| $rbody:expr) => {{
        let (w, x, nb): ([*const u8; R], *const u8, usize) = ($w, $x, $nb);
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        // Odd lanes: the m_w s_x terms (Q4_1/Q5_1).
        let mut accm = [_mm256_setzero_ps(); R];
        let mut i = 0;
        while i + 4 <= nb {
            let xb = x.add($xs * i);
            let xv = _mm256_cvtph_ps(_mm_setr_epi32(
                rd32(xb),
                rd32(xb.add($xs)),
                rd32(xb.add(2 * $xs)),
                rd32(xb.add(3 * $xs)),
            ));
            let y0 = {
                let $yi = i;
                $ybody
            };
            let y1 = {
                let $yi = i + 2;
                $ybody
            };
            for r in 0..R {
                let wb = w[r].add($ws * i);
                let wv = _mm256_cvtph_ps(_mm_setr_epi32(
                    rd32(wb),
                    rd32(wb.add($ws)),
                    rd32(wb.add(2 * $ws)),
                    rd32(wb.add(3 * $ws)),
                ));
                let d = _mm256_mul_ps(wv, xv);
                if $mins {
                    accm[r] = _mm256_add_ps(accm[r], d);
                }
                let s0 = {
                    let ($wr, $ri, $yv) = (w[r], i, &y0);
                    $rbody
                };
                let s1 = {
                    let ($wr, $ri, $yv) = (w[r], i + 2, &y1);
                    $rbody
                };
                acc0[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), spread_pairs(d, 0), acc0[r]);
                acc1[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), spread_pairs(d, 1), acc1[r]);
            }
            i += 4;
        }
        let mut out = [0.0f32; R];
        for r in 0..R {
            let tail = if i < nb {
                $tail(w[r].add($ws * i), x.add($xs * i), nb - i)
            } else {
                0.0
            };
            let sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0[r], acc1[r]));
            out[r] = if $mins {
                let odd = _mm256_castsi256_ps(_mm256_setr_epi32(0, -1, 0, -1, 0, -1, 0, -1));
                sum + avx2::hsum_ps(_mm256_and_ps(accm[r], odd)) + tail
            } else {
                sum + tail
            };
        }
        out
    }};
}

/// Defines the one-row kernel `$one` as the `R = 1` case of the rows kernel `$rows`.
macro_rules! one_row {
    ($($one:ident = $rows:ident;)*) => {$(
        /// One row: the `R = 1` case of the rows kernel (same arithmetic, same bits).
        ///
        /// # Safety
        /// As the rows kernel's.
        #[inline(always)]
        unsafe fn $one<const VNNI: bool>(w: *const u8, x: *const u8, nb: usize) -> f32 {
            // SAFETY: caller's contract.
            unsafe { $rows::<VNNI, 1>([w], x, nb)[0] }
        }
    )*};
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
// Legacy formats, two blocks per register.
// ---------------------------------------------------------------------------------------------

/// The fifth bits of two Q5 blocks as a 64-bit byte mask in element order.
///
/// # Safety
/// `a`, `b` readable for 4 bytes.
#[inline(always)]
unsafe fn qh_mask(a: *const u8, b: *const u8) -> __mmask64 {
    // SAFETY: caller's contract.
    unsafe {
        let lo = a.cast::<u32>().read_unaligned() as u64;
        let hi = b.cast::<u32>().read_unaligned() as u64;
        lo | hi << 32
    }
}

/// The IQ4_NL grid in all four 128-bit lanes, plus 128 when `biased` (as unsigned bytes).
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn iq4nl_table(biased: bool) -> __m512i {
    // SAFETY: reads the 16-byte constant array.
    unsafe {
        let t = _mm512_broadcast_i32x4(load16(KVALUES_IQ4NL.as_ptr().cast()));
        if biased {
            _mm512_xor_si512(t, _mm512_set1_epi8(-128))
        } else {
            t
        }
    }
}

one_row! {
    dot_q4_0 = dot_q4_0_rows;
    dot_q5_0 = dot_q5_0_rows;
    dot_q5_1 = dot_q5_1_rows;
    dot_q8_0 = dot_q8_0_rows;
    dot_iq4_nl = dot_iq4_nl_rows;
}

/// Q4_0 × Q8_0 for `R` rows.
///
/// # Safety
/// Each `w[r]`: `nb` Q4_0 blocks, `x`: `nb` Q8_0 blocks; features as the module.
#[inline(always)]
unsafe fn dot_q4_0_rows<const VNNI: bool, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `18 i ..`, of `x` `34 i ..`; loads stay inside.
    unsafe {
        let eight = _mm512_set1_epi8(8);
        legacy_rows!(
            w,
            x,
            nb,
            18,
            34,
            false,
            avx2::dot_q4_0,
            |i| {
                let y = load2x32(x.add(34 * i + 2), x.add(34 * i + 36));
                (y, dot_u8_corr::<VNNI>(eight, y))
            },
            |wr, i, y| {
                let q = nibbles2(wr.add(18 * i + 2), wr.add(18 * i + 20));
                dot_u8_sub::<VNNI>(q, eight, y)
            }
        )
    }
}

/// Q8_0 × Q8_0 for `R` rows.
///
/// # Safety
/// Each `w[r]` and `x`: `nb` Q8_0 blocks; features as the module.
#[inline(always)]
unsafe fn dot_q8_0_rows<const VNNI: bool, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` is bytes `34 i .. 34 i + 34` of each row; loads stay inside.
    unsafe {
        let k80 = _mm512_set1_epi8(-128);
        legacy_rows!(
            w,
            x,
            nb,
            34,
            34,
            false,
            avx2::dot_q8_0,
            |i| {
                let y = load2x32(x.add(34 * i + 2), x.add(34 * i + 36));
                (y, dot_u8_corr::<VNNI>(k80, y))
            },
            |wr, i, y| {
                let q = load2x32(wr.add(34 * i + 2), wr.add(34 * i + 36));
                if VNNI {
                    dot_u8_sub::<true>(_mm512_xor_si512(q, k80), k80, y)
                } else {
                    dot_i8::<false>(q, y.0)
                }
            }
        )
    }
}

/// Q5_0 × Q8_0 for `R` rows.
///
/// # Safety
/// Each `w[r]`: `nb` Q5_0 blocks, `x`: `nb` Q8_0 blocks; features as the module.
#[inline(always)]
unsafe fn dot_q5_0_rows<const VNNI: bool, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `22 i ..`, of `x` `34 i ..`; loads stay inside.
    unsafe {
        let sixteen = _mm512_set1_epi8(16);
        legacy_rows!(
            w,
            x,
            nb,
            22,
            34,
            false,
            avx2::dot_q5_0,
            |i| {
                let y = load2x32(x.add(34 * i + 2), x.add(34 * i + 36));
                (y, dot_u8_corr::<VNNI>(sixteen, y))
            },
            |wr, i, y| {
                let (b0, b1) = (wr.add(22 * i), wr.add(22 * i + 22));
                let q = nibbles2(b0.add(6), b1.add(6));
                let q = _mm512_mask_add_epi8(q, qh_mask(b0.add(2), b1.add(2)), q, sixteen);
                dot_u8_sub::<VNNI>(q, sixteen, y)
            }
        )
    }
}

/// Q5_1 × Q8_1 for `R` rows.
///
/// # Safety
/// Each `w[r]`: `nb` Q5_1 blocks, `x`: `nb` Q8_1 blocks; features as the module.
#[inline(always)]
unsafe fn dot_q5_1_rows<const VNNI: bool, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `24 i ..`, of `x` `36 i ..`; loads stay inside.
    unsafe {
        let sixteen = _mm512_set1_epi8(16);
        legacy_rows!(
            w,
            x,
            nb,
            24,
            36,
            true,
            avx2::dot_q5_1,
            |i| load2x32(x.add(36 * i + 4), x.add(36 * i + 40)),
            |wr, i, y| {
                let (b0, b1) = (wr.add(24 * i), wr.add(24 * i + 24));
                let q = nibbles2(b0.add(8), b1.add(8));
                let q = _mm512_mask_add_epi8(q, qh_mask(b0.add(4), b1.add(4)), q, sixteen);
                dot_u8::<VNNI>(q, *y)
            }
        )
    }
}

/// IQ4_NL × Q8_0 for `R` rows.
///
/// # Safety
/// Each `w[r]`: `nb` IQ4_NL blocks, `x`: `nb` Q8_0 blocks; features as the module.
#[inline(always)]
unsafe fn dot_iq4_nl_rows<const VNNI: bool, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `18 i ..`, of `x` `34 i ..`; loads stay inside.
    unsafe {
        // With VNNI: grid + 128 as unsigned bytes, minus 128 Σ y.
        let table = iq4nl_table(VNNI);
        let k80 = _mm512_set1_epi8(-128);
        legacy_rows!(
            w,
            x,
            nb,
            18,
            34,
            false,
            avx2::dot_iq4_nl,
            |i| {
                let y = load2x32(x.add(34 * i + 2), x.add(34 * i + 36));
                (y, dot_u8_corr::<VNNI>(k80, y))
            },
            |wr, i, y| {
                let idx = nibbles2(wr.add(18 * i + 2), wr.add(18 * i + 20));
                let q = _mm512_shuffle_epi8(table, idx);
                if VNNI {
                    dot_u8_sub::<true>(q, k80, y)
                } else {
                    dot_i8::<false>(q, y.0)
                }
            }
        )
    }
}

// ---------------------------------------------------------------------------------------------
// K-quants, a whole super-block at a time. Q8_K: d f32 at 0, qs at 4, bsums at 260.
// ---------------------------------------------------------------------------------------------

const Q8K_QS: usize = 4;
const Q8K_BSUMS: usize = 260;

/// A vector of 32 i16 whose 128-bit lane `l` is eight copies of i16 number `idx[l]` (0..8) of
/// the same lane of `src` (`vpshufb`, no lane crossing).
///
/// # Safety
/// AVX-512BW.
#[inline(always)]
unsafe fn lane_splat(src: __m512i, idx: [i32; 4]) -> __m512i {
    // SAFETY: register-only intrinsics.
    unsafe {
        let c = |k: i32| {
            let pair = (2 * k + 1) << 8 | (2 * k);
            pair | pair << 16
        };
        let [a, b, cc, d] = idx.map(c);
        let ctrl = _mm512_setr_epi32(a, a, a, a, b, b, b, b, cc, cc, cc, cc, d, d, d, d);
        _mm512_shuffle_epi8(src, ctrl)
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

/// Q4_K / Q5_K per-super-block setup: `(d, dmin, the 8 scales as i16 in every lane, mins as
/// i16)`.
///
/// # Safety
/// `wb` a Q4_K/Q5_K block, `xb` a Q8_K block; features as the module.
#[inline(always)]
unsafe fn k4_setup(wb: *const u8, xb: *const u8) -> (f32, f32, __m512i, __m128i) {
    // SAFETY: reads inside the blocks.
    unsafe {
        let yd = xb.cast::<f32>().read_unaligned();
        let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(wb.cast::<i32>().read_unaligned()));
        let d = _mm_cvtss_f32(dm) * yd;
        let dmin = _mm_cvtss_f32(_mm_movehdup_ps(dm)) * yd;
        let packed: [u8; 12] = wb.add(4).cast::<[u8; 12]>().read_unaligned();
        let (sc, mn) = crate::kernels::scalar::k4_scales_mins(&packed);
        let sc = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(i64::from_le_bytes(sc)));
        let mn = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(i64::from_le_bytes(mn)));
        (d, dmin, _mm512_broadcast_i32x4(sc), mn)
    }
}

/// Σ_g mins[g] (bsums[2g] + bsums[2g+1]) as 4 i32 lanes (to be summed).
///
/// # Safety
/// `bsums` readable for 32 bytes; AVX2.
#[inline(always)]
unsafe fn k4_mins(mins: __m128i, bsums: *const u8) -> __m128i {
    // SAFETY: caller's contract.
    unsafe {
        let b = load32(bsums);
        let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
        _mm_madd_epi16(pairs, mins)
    }
}

/// Q4_K × Q8_K.
///
/// # Safety
/// `w`: `nb` Q4_K blocks, `x`: `nb` Q8_K blocks; features as the module.
#[inline(always)]
unsafe fn dot_q4_k<const VNNI: bool>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` of `w` is bytes `144 i ..`, of `x` `292 i ..`; loads stay inside.
    unsafe {
        let m4 = _mm512_set1_epi8(0x0F);
        let mut acc = _mm512_setzero_ps();
        let mut accm = _mm_setzero_ps();
        for i in 0..nb {
            let (wb, xb) = (w.add(144 * i), x.add(292 * i));
            let (d, dmin, sc, mn) = k4_setup(wb, xb);
            let m = k4_mins(mn, xb.add(Q8K_BSUMS));
            accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(m), accm);
            let mut sumi = _mm512_setzero_si512();
            for h in 0..2 {
                // Bytes 64h..64h+64: low nibbles are elements [128h..+32, 128h+64..+32], high
                // nibbles [128h+32..+32, 128h+96..+32].
                let l = load64(wb.add(16 + 64 * h));
                let lo = _mm512_and_si512(l, m4);
                let hi = _mm512_and_si512(_mm512_srli_epi16(l, 4), m4);
                let qa = _mm512_shuffle_i64x2(lo, hi, 0b01_00_01_00);
                let qb = _mm512_shuffle_i64x2(lo, hi, 0b11_10_11_10);
                let ya = load64(xb.add(Q8K_QS + 128 * h));
                let yb = load64(xb.add(Q8K_QS + 128 * h + 64));
                let g = 4 * h as i32;
                let pa = _mm512_maddubs_epi16(qa, ya);
                let pb = _mm512_maddubs_epi16(qb, yb);
                sumi = mac16::<VNNI>(sumi, pa, lane_splat(sc, [g, g, g + 1, g + 1]));
                sumi = mac16::<VNNI>(sumi, pb, lane_splat(sc, [g + 2, g + 2, g + 3, g + 3]));
            }
            acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
        }
        let m = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
        let m = _mm_add_ss(m, _mm_movehdup_ps(m));
        _mm512_reduce_add_ps(acc) - _mm_cvtss_f32(m)
    }
}

/// Q5_K × Q8_K.
///
/// # Safety
/// `w`: `nb` Q5_K blocks, `x`: `nb` Q8_K blocks; features as the module.
#[inline(always)]
unsafe fn dot_q5_k<const VNNI: bool>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` of `w` is bytes `176 i ..`, of `x` `292 i ..`; loads stay inside.
    unsafe {
        let m4 = _mm512_set1_epi8(0x0F);
        let sixteen = _mm512_set1_epi8(16);
        let mut acc = _mm512_setzero_ps();
        let mut accm = _mm_setzero_ps();
        for i in 0..nb {
            let (wb, xb) = (w.add(176 * i), x.add(292 * i));
            let (d, dmin, sc, mn) = k4_setup(wb, xb);
            let m = k4_mins(mn, xb.add(Q8K_BSUMS));
            accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(m), accm);
            // qh byte l, bit g: the fifth bit of element 32g + l.
            let qh = _mm512_broadcast_i64x4(load32(wb.add(16)));
            let mut sumi = _mm512_setzero_si512();
            for h in 0..2 {
                let l = load64(wb.add(48 + 64 * h));
                let lo = _mm512_and_si512(l, m4);
                let hi = _mm512_and_si512(_mm512_srli_epi16(l, 4), m4);
                let qa = _mm512_shuffle_i64x2(lo, hi, 0b01_00_01_00);
                let qb = _mm512_shuffle_i64x2(lo, hi, 0b11_10_11_10);
                // Groups 4h, 4h+1 in qa; 4h+2, 4h+3 in qb.
                let g = 4 * h as i32;
                let ka = _mm512_test_epi8_mask(qh, bit_pair(g, g + 1));
                let kb = _mm512_test_epi8_mask(qh, bit_pair(g + 2, g + 3));
                let qa = _mm512_mask_add_epi8(qa, ka, qa, sixteen);
                let qb = _mm512_mask_add_epi8(qb, kb, qb, sixteen);
                let ya = load64(xb.add(Q8K_QS + 128 * h));
                let yb = load64(xb.add(Q8K_QS + 128 * h + 64));
                let pa = _mm512_maddubs_epi16(qa, ya);
                let pb = _mm512_maddubs_epi16(qb, yb);
                sumi = mac16::<VNNI>(sumi, pa, lane_splat(sc, [g, g, g + 1, g + 1]));
                sumi = mac16::<VNNI>(sumi, pb, lane_splat(sc, [g + 2, g + 2, g + 3, g + 3]));
            }
            acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
        }
        let m = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
        let m = _mm_add_ss(m, _mm_movehdup_ps(m));
        _mm512_reduce_add_ps(acc) - _mm_cvtss_f32(m)
    }
}

/// Q6_K × Q8_K: q in 0..64 (value q − 32), `Σ_g s_g (Σ q y − 32 bsum_g)`.
///
/// # Safety
/// `w`: `nb` Q6_K blocks, `x`: `nb` Q8_K blocks; features as the module.
#[inline(always)]
unsafe fn dot_q6_k<const VNNI: bool>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` of `w` is bytes `210 i ..`, of `x` `292 i ..`; loads stay inside.
    unsafe {
        let m4 = _mm512_set1_epi8(0x0F);
        let m2 = _mm512_set1_epi8(0x30);
        let mut acc = _mm512_setzero_ps();
        for i in 0..nb {
            let (wb, xb) = (w.add(210 * i), x.add(292 * i));
            let d = avx2_f16_at(wb.add(208)) * xb.cast::<f32>().read_unaligned();
            let sc16 = _mm256_cvtepi8_epi16(load16(wb.add(192)));
            let corr = _mm256_madd_epi16(sc16, load32(xb.add(Q8K_BSUMS)));
            let corr = _mm256_slli_epi32(corr, 5);
            let mut sumi = _mm512_castsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), corr));
            // Zero the upper half of the cast (its content is undefined).
            sumi = _mm512_inserti64x4(sumi, _mm256_setzero_si256(), 1);
            for h in 0..2 {
                let l = load64(wb.add(64 * h));
                let qh = load32(wb.add(128 + 32 * h));
                // [qh, qh >> 2]: bits 0-1 of the first half and 2-3 (now 0-1) of the second.
                let hz =
                    _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
                // Elements 128h + [0..64] and 128h + [64..128].
                let qa = _mm512_or_si512(
                    _mm512_and_si512(l, m4),
                    _mm512_and_si512(_mm512_slli_epi16(hz, 4), m2),
                );
                let qb = _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                    _mm512_and_si512(hz, m2),
                );
                let ya = load64(xb.add(Q8K_QS + 128 * h));
                let yb = load64(xb.add(Q8K_QS + 128 * h + 64));
                // Groups 8h..8h+8: the scales in 128-bit half h of `sc16`.
                let half = if h == 0 {
                    _mm256_castsi256_si128(sc16)
                } else {
                    _mm256_extracti128_si256(sc16, 1)
                };
                let sc = _mm512_broadcast_i32x4(half);
                let pa = _mm512_maddubs_epi16(qa, ya);
                let pb = _mm512_maddubs_epi16(qb, yb);
                sumi = mac16::<VNNI>(sumi, pa, lane_splat(sc, [0, 1, 2, 3]));
                sumi = mac16::<VNNI>(sumi, pb, lane_splat(sc, [4, 5, 6, 7]));
            }
            acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
        }
        _mm512_reduce_add_ps(acc)
    }
}

/// The f16 at `p` as f32.
///
/// # Safety
/// `p` readable for 2 bytes; F16C.
#[inline(always)]
unsafe fn avx2_f16_at(p: *const u8) -> f32 {
    // SAFETY: caller's contract.
    unsafe {
        let h = p.cast::<u16>().read_unaligned();
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
    }
}
