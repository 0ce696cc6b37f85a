//! The integer dot kernels of both AArch64 tables, generic over [`I8Dot`]: how sixteen signed
//! byte pairs are multiplied and added into four i32 lanes ([`Neon`]: `smull` + `saddlp` + `addp`;
//! `dotprod::Sdot`: one `sdot`).
//!
//! Every kernel computes the reference's integer partial sums exactly: weights are unpacked to
//! signed bytes holding each element's exact integer value (for the formats with a min, the
//! unsigned quant, the min term coming from the activation's `s` / `bsums`), each i8 × i8
//! product is exact in either [`I8Dot`], and the per-group sums are multiplied by their integer
//! scales in i32 lanes, far from overflow for any block contents (below 256 · 128 · 128 · 128 =
//! 2^29 per super-block). Only the order in which the per-block float terms are added differs
//! from the reference; and since both [`I8Dot`]s fill the same lanes, the NEON and dotprod
//! tables give identical bits.
//!
//! Register-only helpers are safe private functions, as in `neon.rs`: NEON is present wherever
//! they run (AArch64 baseline, and detected before a table is handed out).
//!
//! Block layouts (bytes): Q8_0 `d@0 qs@2` (34); Q8_1 `d@0 s@2 qs@4` (36); Q8_K `d:f32@0 qs@4
//! bsums:i16[16]@260` (292). The weight layouts are given at each kernel.

// Interim: the kernels of the types whose float order is fixed to llama.cpp's x86 one
// (`scalar.rs`) are not in that order here yet, so the NEON tables use the scalar kernels for
// them and these stay compiled but unused until they are rewritten.
#![allow(dead_code)]

use core::arch::aarch64::*;

use super::neon::{f16_at, ld_s8, ld_s16, ld_u8};
use crate::kernels::scalar::{k4_scales_mins, q3k_scales};
use crate::quant::blocks::KVALUES_IQ4NL;

/// The instruction-set-dependent step of the integer kernels.
pub(super) trait I8Dot {
    /// `acc` plus the sixteen products `a[k]·b[k]`: lane `l` gets the products of bytes
    /// `4l..4l+4` (as `sdot`). Exact for all i8 inputs.
    ///
    /// # Safety
    /// The CPU has the features the implementation needs.
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;
}

/// Plain NEON: widening multiplies to i16 (exact: |a·b| ≤ 2^14), then pairwise adds to i32 in
/// the same arrangement as `sdot` (lane k gets the products of bytes `4k..4k+4`), so the NEON
/// and dotprod tables give identical bits.
pub(super) struct Neon;

impl I8Dot for Neon {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: register-only NEON intrinsics; NEON is present (module docs).
        unsafe {
            let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
            let hi = vmull_high_s8(a, b);
            vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)))
        }
    }
}

/// Byte offset of the quants in a Q8_K block.
const Q8K_QS: usize = 4;
/// Byte offset of the 16 group sums in a Q8_K block.
const Q8K_BSUMS: usize = 260;

/// The f32 `d` of the Q8_K block at `p`.
///
/// # Safety
/// `p` readable for 4 bytes.
#[inline(always)]
unsafe fn q8k_d(p: *const u8) -> f32 {
    // SAFETY: caller's contract.
    f32::from_le_bytes(unsafe { p.cast::<[u8; 4]>().read() })
}

/// A vector from 16 constant bytes.
#[inline(always)]
fn bytes16(b: [u8; 16]) -> uint8x16_t {
    // SAFETY: `b` is 16 readable bytes.
    unsafe { vld1q_u8(b.as_ptr()) }
}

/// `[Σ a, Σ b, Σ c, Σ d]`: the lane totals of four vectors, in order.
#[inline(always)]
fn totals4(a: int32x4_t, b: int32x4_t, c: int32x4_t, d: int32x4_t) -> int32x4_t {
    // SAFETY: register-only NEON intrinsics; NEON is present (module docs).
    unsafe { vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d)) }
}

/// Sixteen unsigned bytes widened to four vectors of four i32, in order.
#[inline(always)]
fn widen_u8(v: uint8x16_t) -> [int32x4_t; 4] {
    // SAFETY: register-only NEON intrinsics; NEON is present (module docs).
    unsafe {
        let lo = vmovl_u8(vget_low_u8(v));
        let hi = vmovl_high_u8(v);
        [
            vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(lo))),
            vreinterpretq_s32_u32(vmovl_high_u16(lo)),
            vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(hi))),
            vreinterpretq_s32_u32(vmovl_high_u16(hi)),
        ]
    }
}

/// Sixteen signed bytes widened to four vectors of four i32, in order.
#[inline(always)]
fn widen_s8(v: int8x16_t) -> [int32x4_t; 4] {
    // SAFETY: register-only NEON intrinsics; NEON is present (module docs).
    unsafe {
        let lo = vmovl_s8(vget_low_s8(v));
        let hi = vmovl_high_s8(v);
        [
            vmovl_s16(vget_low_s16(lo)),
            vmovl_high_s16(lo),
            vmovl_s16(vget_low_s16(hi)),
            vmovl_high_s16(hi),
        ]
    }
}

/// Eight unsigned bytes widened to two vectors of four i32, in order.
#[inline(always)]
fn widen_u8x8(v: [u8; 8]) -> [int32x4_t; 2] {
    // SAFETY: register-only NEON intrinsics; NEON is present (module docs).
    unsafe {
        let w = vmovl_u8(vcreate_u8(u64::from_le_bytes(v)));
        [
            vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(w))),
            vreinterpretq_s32_u32(vmovl_high_u16(w)),
        ]
    }
}

/// The 32 bits of `qh` as 32 byte masks: byte `j` of the pair is 0xFF if bit `j` is set.
#[inline(always)]
fn bits_to_masks(qh: u32) -> (uint8x16_t, uint8x16_t) {
    // SAFETY: register-only NEON intrinsics; NEON is present (module docs).
    unsafe {
        let v = vreinterpretq_u8_u32(vdupq_n_u32(qh));
        let bit = vreinterpretq_u8_u64(vdupq_n_u64(0x8040_2010_0804_0201));
        let lo = vqtbl1q_u8(v, bytes16([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]));
        let hi = vqtbl1q_u8(v, bytes16([2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3]));
        (vtstq_u8(lo, bit), vtstq_u8(hi, bit))
    }
}

/// Folds `nb` blocks into a float sum with two accumulators (so consecutive blocks do not
/// wait on each other's `fmla`). `$body` (with `$i` the block index) evaluates to
/// `(integer sums: int32x4_t, scale: f32)`; the block adds `scale · Σ lanes`.
macro_rules! fold_blocks {
    ($nb:expr, $i:ident => $body:block) => {{
        let nb: usize = $nb;
        let mut a0 = vdupq_n_f32(0.0);
        let mut a1 = vdupq_n_f32(0.0);
        let mut $i = 0usize;
        while $i + 2 <= nb {
            let (s, d): (int32x4_t, f32) = $body;
            a0 = vfmaq_n_f32(a0, vcvtq_f32_s32(s), d);
            $i += 1;
            let (s, d): (int32x4_t, f32) = $body;
            a1 = vfmaq_n_f32(a1, vcvtq_f32_s32(s), d);
            $i += 1;
        }
        if $i < nb {
            let (s, d): (int32x4_t, f32) = $body;
            a0 = vfmaq_n_f32(a0, vcvtq_f32_s32(s), d);
        }
        vaddvq_f32(vaddq_f32(a0, a1))
    }};
}

// ---------------------------------------------------------------------------------------------
// Legacy 32-element formats. Nibble j (low) of byte j is element j, the high nibble element
// j + 16: so the low nibbles pair with activation bytes 0..16, the high ones with 16..32.
// ---------------------------------------------------------------------------------------------

/// Q4_0 × Q8_0 (Q4_0: `d@0 qs[16]@2`, 18 bytes): `Σ (q − 8)·y` per block.
///
/// # Safety
/// `w`: `nb` Q4_0 blocks, `x`: `nb` Q8_0 blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q4_0<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `18 i ..+18` of `w` and `34 i ..+34` of `x`; every load stays
    // inside them; `D`'s features are present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let eight = vdupq_n_s8(8);
        fold_blocks!(nb, i => {
            let (wb, xb) = (w.add(18 * i), x.add(34 * i));
            let q = ld_u8(wb.add(2));
            let lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), eight);
            let hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(q)), eight);
            let s = D::dot(vdupq_n_s32(0), lo, ld_s8(xb.add(2)));
            (D::dot(s, hi, ld_s8(xb.add(18))), f16_at(wb) * f16_at(xb))
        })
    }
}

/// Q4_1 × Q8_1 (Q4_1: `d@0 m@2 qs[16]@4`, 20 bytes) in the reference's order (see
/// `scalar::dot_q4_1`): eight lanes of four products per block, each lane accumulated over
/// the blocks with one fused multiply-add by `d_w d_x`, `m_w s_x` summed apart with fused
/// multiply-adds, then `hsum8` — the same bits as every other table.
///
/// # Safety
/// `w`: `nb` Q4_1 blocks, `x`: `nb` Q8_1 blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q4_1<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `20 i ..+20` of `w` and `36 i ..+36` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let mut summs = 0.0f32;
        // Lanes 0..4 (elements 0..16) and 4..8 (elements 16..32).
        let (mut acc_lo, mut acc_hi) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
        for i in 0..nb {
            let (wb, xb) = (w.add(20 * i), x.add(36 * i));
            summs = f16_at(wb.add(2)).mul_add(f16_at(xb.add(2)), summs);
            let d = vdupq_n_f32(f16_at(wb) * f16_at(xb));
            let q = ld_u8(wb.add(4));
            let lo = vreinterpretq_s8_u8(vandq_u8(q, m4));
            let hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q));
            let s_lo = D::dot(vdupq_n_s32(0), lo, ld_s8(xb.add(4)));
            let s_hi = D::dot(vdupq_n_s32(0), hi, ld_s8(xb.add(20)));
            acc_lo = vfmaq_f32(acc_lo, d, vcvtq_f32_s32(s_lo));
            acc_hi = vfmaq_f32(acc_hi, d, vcvtq_f32_s32(s_hi));
        }
        hsum8(acc_lo, acc_hi) + summs
    }
}

/// `hsum8` of `scalar` for lanes `lo = a0..a4`, `hi = a4..a8`:
/// `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))`.
#[inline(always)]
fn hsum8(lo: float32x4_t, hi: float32x4_t) -> f32 {
    // SAFETY: register-only NEON intrinsics; NEON is present (module docs).
    unsafe {
        let r = vaddq_f32(hi, lo);
        let t = vadd_f32(vget_low_f32(r), vget_high_f32(r));
        vget_lane_f32::<0>(t) + vget_lane_f32::<1>(t)
    }
}

/// Q5_0 × Q8_0 (Q5_0: `d@0 qh:u32@2 qs[16]@6`, 22 bytes): element j is
/// `nibble | (bit j of qh) << 4`, minus 16.
///
/// # Safety
/// `w`: `nb` Q5_0 blocks, `x`: `nb` Q8_0 blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q5_0<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `22 i ..+22` of `w` and `34 i ..+34` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let m16 = vdupq_n_u8(0x10);
        fold_blocks!(nb, i => {
            let (wb, xb) = (w.add(22 * i), x.add(34 * i));
            let qh = u32::from_le_bytes(wb.add(2).cast::<[u8; 4]>().read());
            let (h0, h1) = bits_to_masks(qh);
            let q = ld_u8(wb.add(6));
            // nibble + 16·bit − 16 = nibble − (bit ? 0 : 16)
            let lo = vsubq_u8(vandq_u8(q, m4), vbicq_u8(m16, h0));
            let hi = vsubq_u8(vshrq_n_u8::<4>(q), vbicq_u8(m16, h1));
            let s = D::dot(vdupq_n_s32(0), vreinterpretq_s8_u8(lo), ld_s8(xb.add(2)));
            let s = D::dot(s, vreinterpretq_s8_u8(hi), ld_s8(xb.add(18)));
            (s, f16_at(wb) * f16_at(xb))
        })
    }
}

/// Q5_1 × Q8_1 (Q5_1: `d@0 m@2 qh:u32@4 qs[16]@8`, 24 bytes): element j is
/// `nibble | (bit j of qh) << 4`; `d_w d_x Σ q·y + m_w s_x` per block.
///
/// # Safety
/// `w`: `nb` Q5_1 blocks, `x`: `nb` Q8_1 blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q5_1<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `24 i ..+24` of `w` and `36 i ..+36` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let m16 = vdupq_n_u8(0x10);
        let mut summs = 0.0f32;
        let sum = fold_blocks!(nb, i => {
            let (wb, xb) = (w.add(24 * i), x.add(36 * i));
            summs += f16_at(wb.add(2)) * f16_at(xb.add(2));
            let qh = u32::from_le_bytes(wb.add(4).cast::<[u8; 4]>().read());
            let (h0, h1) = bits_to_masks(qh);
            let q = ld_u8(wb.add(8));
            let lo = vorrq_u8(vandq_u8(q, m4), vandq_u8(m16, h0));
            let hi = vorrq_u8(vshrq_n_u8::<4>(q), vandq_u8(m16, h1));
            let s = D::dot(vdupq_n_s32(0), vreinterpretq_s8_u8(lo), ld_s8(xb.add(4)));
            let s = D::dot(s, vreinterpretq_s8_u8(hi), ld_s8(xb.add(20)));
            (s, f16_at(wb) * f16_at(xb))
        });
        sum + summs
    }
}

/// Q8_0 × Q8_0 (both `d@0 qs[32]@2`, 34 bytes).
///
/// # Safety
/// `w`, `x`: `nb` Q8_0 blocks each; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q8_0<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `34 i ..+34` of both; loads stay inside; `D`'s features are
    // present (caller's contract).
    unsafe {
        fold_blocks!(nb, i => {
            let (wb, xb) = (w.add(34 * i), x.add(34 * i));
            let s = D::dot(vdupq_n_s32(0), ld_s8(wb.add(2)), ld_s8(xb.add(2)));
            let s = D::dot(s, ld_s8(wb.add(18)), ld_s8(xb.add(18)));
            (s, f16_at(wb) * f16_at(xb))
        })
    }
}

/// The IQ4_NL grid as a `tbl` table.
#[inline(always)]
fn iq4nl_table() -> int8x16_t {
    // SAFETY: register-only NEON intrinsics; NEON is present (module docs).
    unsafe { vreinterpretq_s8_u8(bytes16(KVALUES_IQ4NL.map(|v| v as u8))) }
}

/// IQ4_NL × Q8_0 (IQ4_NL: `d@0 qs[16]@2`, 18 bytes): nibbles looked up in the grid.
///
/// # Safety
/// `w`: `nb` IQ4_NL blocks, `x`: `nb` Q8_0 blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_iq4_nl<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `18 i ..+18` of `w` and `34 i ..+34` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let table = iq4nl_table();
        fold_blocks!(nb, i => {
            let (wb, xb) = (w.add(18 * i), x.add(34 * i));
            let q = ld_u8(wb.add(2));
            let lo = vqtbl1q_s8(table, vandq_u8(q, m4));
            let hi = vqtbl1q_s8(table, vshrq_n_u8::<4>(q));
            let s = D::dot(vdupq_n_s32(0), lo, ld_s8(xb.add(2)));
            (D::dot(s, hi, ld_s8(xb.add(18))), f16_at(wb) * f16_at(xb))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// K-quants × Q8_K. Each kernel forms one i32x4 of group sums at a time (`totals4`), multiplies
// it by the groups' integer scales lane-wise, and folds the super-block into a float vector
// with `d` once.
// ---------------------------------------------------------------------------------------------

/// `Σ_k a[k]·b[k]` for eight i16 pairs, as i32 (exact: callers keep |a·b| < 2^26).
#[inline(always)]
fn dot_s16x8(a: int16x8_t, b: int16x8_t) -> i32 {
    // SAFETY: register-only NEON intrinsics; NEON is present (module docs).
    unsafe {
        vaddvq_s32(vmlal_high_s16(
            vmull_s16(vget_low_s16(a), vget_low_s16(b)),
            a,
            b,
        ))
    }
}

/// Shifts each byte right by `n` (a loop counter: constant after unrolling).
#[inline(always)]
fn shr_u8(v: uint8x16_t, n: i32) -> uint8x16_t {
    // SAFETY: register-only NEON intrinsics; NEON is present (module docs).
    unsafe { vshlq_u8(v, vdupq_n_s8(-n as i8)) }
}

/// Q2_K × Q8_K (Q2_K: `scales[16]@0 qs[64]@16 d@80 dmin@82`, 84 bytes). Group g (16
/// elements) has scale `scales[g] & 15` and min `scales[g] >> 4`; element `128 k + 32 j + l`
/// is bits `2j..2j+2` of `qs[32 k + l]`.
///
/// # Safety
/// `w`: `nb` Q2_K blocks, `x`: `nb` Q8_K blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q2_k<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `84 i ..+84` of `w` and `292 i ..+292` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let m3 = vdupq_n_u8(3);
        let m4 = vdupq_n_u8(0x0F);
        let zero = vdupq_n_s32(0);
        let mut acc = vdupq_n_f32(0.0);
        let mut acc_m = 0.0f32;
        for i in 0..nb {
            let (wb, xb) = (w.add(84 * i), x.add(292 * i));
            let yd = q8k_d(xb);
            let sc = ld_u8(wb);
            // Mins: Σ_g bsums[g] · (scales[g] >> 4).
            let mins = vshrq_n_u8::<4>(sc);
            let m0 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mins)));
            let m1 = vreinterpretq_s16_u16(vmovl_high_u8(mins));
            let summs = dot_s16x8(ld_s16(xb.add(Q8K_BSUMS)), m0)
                + dot_s16x8(ld_s16(xb.add(Q8K_BSUMS + 16)), m1);
            acc_m += yd * f16_at(wb.add(82)) * summs as f32;
            let scales = widen_u8(vandq_u8(sc, m4));
            let mut isum = zero;
            for k in 0..2 {
                let q2a = ld_u8(wb.add(16 + 32 * k));
                let q2b = ld_u8(wb.add(16 + 32 * k + 16));
                for jj in 0..2 {
                    let mut p = [zero; 4];
                    for u in 0..2 {
                        let j = 2 * jj + u;
                        let y = xb.add(Q8K_QS + 128 * k + 32 * j);
                        let qa = vandq_u8(shr_u8(q2a, 2 * j as i32), m3);
                        let qb = vandq_u8(shr_u8(q2b, 2 * j as i32), m3);
                        p[2 * u] = D::dot(zero, vreinterpretq_s8_u8(qa), ld_s8(y));
                        p[2 * u + 1] = D::dot(zero, vreinterpretq_s8_u8(qb), ld_s8(y.add(16)));
                    }
                    // Groups 8k + 4jj .. 8k + 4jj + 4.
                    let t = totals4(p[0], p[1], p[2], p[3]);
                    isum = vmlaq_s32(isum, t, scales[2 * k + jj]);
                }
            }
            acc = vfmaq_n_f32(acc, vcvtq_f32_s32(isum), yd * f16_at(wb.add(80)));
        }
        vaddvq_f32(acc) - acc_m
    }
}

/// Q3_K × Q8_K (Q3_K: `hmask[32]@0 qs[64]@32 scales[12]@96 d@108`, 110 bytes). Element
/// `128 h + 32 s + l` is bits `2s..2s+2` of `qs[32 h + l]`, minus 4 unless bit `4h + s` of
/// `hmask[l]` is set; sixteen 6-bit scales biased by 32.
///
/// # Safety
/// `w`: `nb` Q3_K blocks, `x`: `nb` Q8_K blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q3_k<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `110 i ..+110` of `w` and `292 i ..+292` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let m3 = vdupq_n_u8(3);
        let four = vdupq_n_u8(4);
        let zero = vdupq_n_s32(0);
        let mut acc = vdupq_n_f32(0.0);
        for i in 0..nb {
            let (wb, xb) = (w.add(110 * i), x.add(292 * i));
            let packed = wb.add(96).cast::<[u8; 12]>().read();
            let sc = q3k_scales(&packed);
            let scales = widen_s8(vsubq_s8(ld_s8(sc.as_ptr()), vdupq_n_s8(32)));
            let hma = ld_u8(wb);
            let hmb = ld_u8(wb.add(16));
            let mut isum = zero;
            for h in 0..2 {
                let q3a = ld_u8(wb.add(32 + 32 * h));
                let q3b = ld_u8(wb.add(32 + 32 * h + 16));
                for ss in 0..2 {
                    let mut p = [zero; 4];
                    for u in 0..2 {
                        let s = 2 * ss + u;
                        let bit = vdupq_n_u8(1 << (4 * h + s));
                        let y = xb.add(Q8K_QS + 128 * h + 32 * s);
                        let la = vandq_u8(shr_u8(q3a, 2 * s as i32), m3);
                        let lb = vandq_u8(shr_u8(q3b, 2 * s as i32), m3);
                        let qa = vsubq_u8(la, vbicq_u8(four, vtstq_u8(hma, bit)));
                        let qb = vsubq_u8(lb, vbicq_u8(four, vtstq_u8(hmb, bit)));
                        p[2 * u] = D::dot(zero, vreinterpretq_s8_u8(qa), ld_s8(y));
                        p[2 * u + 1] = D::dot(zero, vreinterpretq_s8_u8(qb), ld_s8(y.add(16)));
                    }
                    // Groups 8h + 4ss .. 8h + 4ss + 4.
                    let t = totals4(p[0], p[1], p[2], p[3]);
                    isum = vmlaq_s32(isum, t, scales[2 * h + ss]);
                }
            }
            acc = vfmaq_n_f32(acc, vcvtq_f32_s32(isum), f16_at(wb.add(108)) * q8k_d(xb));
        }
        vaddvq_f32(acc)
    }
}

/// `Σ_g mins[g] · (bsums[2g] + bsums[2g+1])`, the Q4_K / Q5_K min term.
///
/// # Safety
/// `bsums` readable for 32 bytes.
#[inline(always)]
unsafe fn k4_min_sum(mins: [u8; 8], bsums: *const u8) -> i32 {
    // SAFETY: the loads are the caller's contract; the rest is register-only NEON.
    unsafe {
        let (b0, b1) = (ld_s16(bsums), ld_s16(bsums.add(16)));
        // Pair sums fit in i16: |bsum| ≤ 16 · 128.
        let pairs = vpaddq_s16(b0, b1);
        let m = vreinterpretq_s16_u16(vmovl_u8(vcreate_u8(u64::from_le_bytes(mins))));
        dot_s16x8(pairs, m)
    }
}

/// Q4_K × Q8_K (Q4_K: `d@0 dmin@2 scales[12]@4 qs[128]@16`, 144 bytes). Byte l of the
/// 32-byte run j holds element `64 j + l` (low nibble, group 2j) and `64 j + 32 + l` (high
/// nibble, group 2j + 1); eight 6-bit scales and mins.
///
/// # Safety
/// `w`: `nb` Q4_K blocks, `x`: `nb` Q8_K blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q4_k<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `144 i ..+144` of `w` and `292 i ..+292` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let zero = vdupq_n_s32(0);
        let mut acc = vdupq_n_f32(0.0);
        let mut acc_m = 0.0f32;
        for i in 0..nb {
            let (wb, xb) = (w.add(144 * i), x.add(292 * i));
            let yd = q8k_d(xb);
            let (sc, mn) = k4_scales_mins(&wb.add(4).cast::<[u8; 12]>().read());
            acc_m += yd * f16_at(wb.add(2)) * k4_min_sum(mn, xb.add(Q8K_BSUMS)) as f32;
            let scales = widen_u8x8(sc);
            let mut isum = zero;
            for (jj, &scales) in scales.iter().enumerate() {
                let mut p = [zero; 4];
                for u in 0..2 {
                    let j = 2 * jj + u;
                    let qa = ld_u8(wb.add(16 + 32 * j));
                    let qb = ld_u8(wb.add(16 + 32 * j + 16));
                    let y = xb.add(Q8K_QS + 64 * j);
                    let la = vreinterpretq_s8_u8(vandq_u8(qa, m4));
                    let lb = vreinterpretq_s8_u8(vandq_u8(qb, m4));
                    let ha = vreinterpretq_s8_u8(vshrq_n_u8::<4>(qa));
                    let hb = vreinterpretq_s8_u8(vshrq_n_u8::<4>(qb));
                    p[2 * u] = D::dot(D::dot(zero, la, ld_s8(y)), lb, ld_s8(y.add(16)));
                    p[2 * u + 1] = D::dot(D::dot(zero, ha, ld_s8(y.add(32))), hb, ld_s8(y.add(48)));
                }
                // Groups 4jj .. 4jj + 4.
                isum = vmlaq_s32(isum, totals4(p[0], p[1], p[2], p[3]), scales);
            }
            acc = vfmaq_n_f32(acc, vcvtq_f32_s32(isum), yd * f16_at(wb));
        }
        vaddvq_f32(acc) - acc_m
    }
}

/// Q5_K × Q8_K (Q5_K: `d@0 dmin@2 scales[12]@4 qh[32]@16 qs[128]@48`, 176 bytes): Q4_K plus
/// a fifth bit worth 16, bit `g` of `qh[l]` for group `g`.
///
/// # Safety
/// `w`: `nb` Q5_K blocks, `x`: `nb` Q8_K blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q5_k<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `176 i ..+176` of `w` and `292 i ..+292` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let m16 = vdupq_n_u8(0x10);
        let zero = vdupq_n_s32(0);
        let mut acc = vdupq_n_f32(0.0);
        let mut acc_m = 0.0f32;
        for i in 0..nb {
            let (wb, xb) = (w.add(176 * i), x.add(292 * i));
            let yd = q8k_d(xb);
            let (sc, mn) = k4_scales_mins(&wb.add(4).cast::<[u8; 12]>().read());
            acc_m += yd * f16_at(wb.add(2)) * k4_min_sum(mn, xb.add(Q8K_BSUMS)) as f32;
            let scales = widen_u8x8(sc);
            let qha = ld_u8(wb.add(16));
            let qhb = ld_u8(wb.add(32));
            let mut isum = zero;
            for (jj, &scales) in scales.iter().enumerate() {
                let mut p = [zero; 4];
                for u in 0..2 {
                    let j = 2 * jj + u;
                    let qa = ld_u8(wb.add(48 + 32 * j));
                    let qb = ld_u8(wb.add(48 + 32 * j + 16));
                    let y = xb.add(Q8K_QS + 64 * j);
                    let b_lo = vdupq_n_u8(1 << (2 * j));
                    let b_hi = vdupq_n_u8(1 << (2 * j + 1));
                    let fifth = |qh: uint8x16_t, b: uint8x16_t| vandq_u8(vtstq_u8(qh, b), m16);
                    let la = vorrq_u8(vandq_u8(qa, m4), fifth(qha, b_lo));
                    let lb = vorrq_u8(vandq_u8(qb, m4), fifth(qhb, b_lo));
                    let ha = vorrq_u8(vshrq_n_u8::<4>(qa), fifth(qha, b_hi));
                    let hb = vorrq_u8(vshrq_n_u8::<4>(qb), fifth(qhb, b_hi));
                    let s8 = vreinterpretq_s8_u8;
                    p[2 * u] = D::dot(D::dot(zero, s8(la), ld_s8(y)), s8(lb), ld_s8(y.add(16)));
                    p[2 * u + 1] = D::dot(
                        D::dot(zero, s8(ha), ld_s8(y.add(32))),
                        s8(hb),
                        ld_s8(y.add(48)),
                    );
                }
                isum = vmlaq_s32(isum, totals4(p[0], p[1], p[2], p[3]), scales);
            }
            acc = vfmaq_n_f32(acc, vcvtq_f32_s32(isum), yd * f16_at(wb));
        }
        vaddvq_f32(acc) - acc_m
    }
}

/// Q6_K × Q8_K (Q6_K: `ql[128]@0 qh[64]@128 scales:i8[16]@192 d@208`, 210 bytes). In half
/// `h`, element `128 h + 32 k + l` is a nibble of `ql[64 h + 32 (k & 1) + l]` (low for k < 2)
/// with bits `2k..2k+2` of `qh[32 h + l]` above it, minus 32; sixteen signed 8-bit scales.
///
/// # Safety
/// `w`: `nb` Q6_K blocks, `x`: `nb` Q8_K blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q6_k<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `210 i ..+210` of `w` and `292 i ..+292` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let m30 = vdupq_n_u8(0x30);
        let m32 = vdupq_n_s8(32);
        let zero = vdupq_n_s32(0);
        let mut acc = vdupq_n_f32(0.0);
        for i in 0..nb {
            let (wb, xb) = (w.add(210 * i), x.add(292 * i));
            let scales = widen_s8(ld_s8(wb.add(192)));
            let mut isum = zero;
            for h in 0..2 {
                let ql = [0, 1, 2, 3].map(|k| ld_u8(wb.add(64 * h + 16 * k)));
                let qh = [
                    ld_u8(wb.add(128 + 32 * h)),
                    ld_u8(wb.add(128 + 32 * h + 16)),
                ];
                for kk in 0..2 {
                    let mut p = [zero; 4];
                    for u in 0..2 {
                        let k = 2 * kk + u;
                        let y = xb.add(Q8K_QS + 128 * h + 32 * k);
                        for (half, p) in p[2 * u..2 * u + 2].iter_mut().enumerate() {
                            let lq = ql[2 * (k & 1) + half];
                            let low = if k < 2 {
                                vandq_u8(lq, m4)
                            } else {
                                vshrq_n_u8::<4>(lq)
                            };
                            // ((qh >> 2k) & 3) << 4 == (qh << (4 − 2k)) & 0x30 (negative: right).
                            let high =
                                vandq_u8(vshlq_u8(qh[half], vdupq_n_s8(4 - 2 * k as i8)), m30);
                            let q = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(low, high)), m32);
                            *p = D::dot(zero, q, ld_s8(y.add(16 * half)));
                        }
                    }
                    // Groups 8h + 4kk .. 8h + 4kk + 4.
                    isum = vmlaq_s32(isum, totals4(p[0], p[1], p[2], p[3]), scales[2 * h + kk]);
                }
            }
            acc = vfmaq_n_f32(acc, vcvtq_f32_s32(isum), f16_at(wb.add(208)) * q8k_d(xb));
        }
        vaddvq_f32(acc)
    }
}

/// IQ4_XS × Q8_K (IQ4_XS: `d@0 scales_h:u16@2 scales_l[4]@4 qs[128]@8`, 136 bytes): eight
/// groups of 32 as IQ4_NL blocks, scale `ls − 32` with `ls` = nibble `g` of `scales_l` | bits
/// `2g..2g+2` of `scales_h` << 4.
///
/// # Safety
/// `w`: `nb` IQ4_XS blocks, `x`: `nb` Q8_K blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_iq4_xs<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `136 i ..+136` of `w` and `292 i ..+292` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let table = iq4nl_table();
        let zero = vdupq_n_s32(0);
        let mut acc = vdupq_n_f32(0.0);
        for i in 0..nb {
            let (wb, xb) = (w.add(136 * i), x.add(292 * i));
            let sh = u32::from(u16::from_le_bytes(wb.add(2).cast::<[u8; 2]>().read()));
            let sl = u32::from_le_bytes(wb.add(4).cast::<[u8; 4]>().read());
            let ls: [i32; 8] = std::array::from_fn(|g| {
                (((sl >> (4 * g)) & 0xF) | (((sh >> (2 * g)) & 3) << 4)) as i32 - 32
            });
            let mut isum = zero;
            for gg in 0..2 {
                let mut p = [zero; 4];
                for (u, p) in p.iter_mut().enumerate() {
                    let g = 4 * gg + u;
                    let q = ld_u8(wb.add(8 + 16 * g));
                    let y = xb.add(Q8K_QS + 32 * g);
                    let lo = vqtbl1q_s8(table, vandq_u8(q, m4));
                    let hi = vqtbl1q_s8(table, vshrq_n_u8::<4>(q));
                    *p = D::dot(D::dot(zero, lo, ld_s8(y)), hi, ld_s8(y.add(16)));
                }
                let s = vld1q_s32(ls.as_ptr().add(4 * gg));
                isum = vmlaq_s32(isum, totals4(p[0], p[1], p[2], p[3]), s);
            }
            acc = vfmaq_n_f32(acc, vcvtq_f32_s32(isum), f16_at(wb) * q8k_d(xb));
        }
        vaddvq_f32(acc)
    }
}
