//! The integer dot kernels of both AArch64 tables, generic over [`I8Dot`]: how sixteen signed
//! byte pairs are multiplied and added into four i32 lanes ([`Neon`]: `smull` + `saddlp` + `addp`;
//! `dotprod::Sdot`: one `sdot`). Both fill the same lanes (lane `l` = bytes `4l..4l+4`), so the
//! NEON and dotprod tables give identical bits.
//!
//! Every kernel computes the reference's integer partial sums exactly: weights are unpacked to
//! signed bytes holding each element's exact integer value (for the formats with a min, the
//! unsigned quant, the min term coming from the activation's `s` / `bsums`), each i8 × i8
//! product is exact in either [`I8Dot`], and the per-group sums are multiplied by their integer
//! scales in i32 lanes, far from overflow for any block contents (below 2^29 per super-block).
//!
//! For Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q4_K, Q5_K and Q6_K, and for every per-path kernel
//! (`PathKernels`: the Q4_K gemv / gemm / tiled, Q5_K and Q6_K tiled, IQ4_NL tinyBLAS kernels),
//! the float operations are also the reference's (`scalar.rs`, llama.cpp's x86 order): the
//! same eight-lane structure, held as two `float32x4_t` (lanes 0..4 and 4..8) whose lane `j`
//! is the exact integer sum `scalar` defines for it, the same fused multiply-adds (`fmla` by
//! element, `f32::mul_add` → `fmadd`), plain products where `scalar` has them, and `hsum8`'s
//! order; so these give the scalar table's bits. The legacy 32-element formats take two weight
//! rows per call (`dot_rows_fns!`'s `pair`), sharing the activation loads and interleaving the
//! rows' FMA chains; each row's result is the same as alone. Q2_K, Q3_K and IQ4_XS have the
//! exact integer sums but add the per-block float terms in their own order (their scalar
//! kernels are ggml's generic C code, not llama.cpp's x86 arithmetic, so there is no fixed
//! order to follow yet): they agree with the reference to a few ulps of the sum of magnitudes.
//!
//! Register-only helpers are safe private functions, as in `neon.rs`: NEON is present wherever
//! they run (AArch64 baseline, and detected before a table is handed out).
//!
//! Block layouts (bytes): Q8_0 `d@0 qs@2` (34); Q8_1 `d@0 s@2 qs@4` (36); Q8_K `d:f32@0 qs@4
//! bsums:i16[16]@260` (292). The weight layouts are given at each kernel.

use core::arch::aarch64::*;
use core::arch::asm;

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

// ---------------------------------------------------------------------------------------------
// Legacy 32-element formats, in llama.cpp's x86 order (`scalar::lanes8_fma`): per block eight
// i32 lanes of four consecutive products, lane `j` holding elements `4j..4j+4`. Nibble j (low)
// of byte j is element j and the high nibble element j + 16, so `D::dot` of the low nibbles
// with activation bytes 0..16 gives lanes 0..4, of the high nibbles with bytes 16..32 lanes
// 4..8. Each lane is accumulated over the blocks with one fused multiply-add by `d_w·d_x`
// (`fmla`), then [`hsum8`].
//
// The kernels take `R` weight rows against one activation row (`[f32; R]` out): the
// activation loads are shared, and the rows' independent FMA chains hide each other's latency.
// Every row is computed exactly as with `R = 1`.
// ---------------------------------------------------------------------------------------------

/// The legacy-format driver for `R` weight rows (`$w: [*const u8; R]`, `R` a const generic in
/// scope) against one activation row `$x` of `$nb` blocks, returning `[f32; R]`. Weight blocks
/// are `$ws` bytes with `d` (f16) at 0, activation blocks `$xs` bytes with `d` at 0 (and, with
/// `mins = true`, `m_w` at 2 and `s_x` at 2, whose products are summed apart with fused
/// multiply-adds and added after [`hsum8`]). Per activation block `$ybody` (with `$xb` the
/// block) prepares the activation side once for all rows; per row `$rbody` (with `$wb` the
/// weight block, `$y` the prepared side) gives the block's lanes `(0..4, 4..8)`.
macro_rules! lanes8_rows {
    ($w:expr, $x:expr, $nb:expr, ws = $ws:expr, xs = $xs:expr, mins = $mins:expr,
     |$xb:ident| $ybody:expr, |$wb:ident, $y:ident| $rbody:expr) => {{
        let (w, x, nb): ([*const u8; R], *const u8, usize) = ($w, $x, $nb);
        let mut lo = [vdupq_n_f32(0.0); R];
        let mut hi = [vdupq_n_f32(0.0); R];
        let mut summs = [0.0f32; R];
        for i in 0..nb {
            let $xb = x.add($xs * i);
            let dx = f16_at($xb);
            let $y = $ybody;
            for r in 0..R {
                let $wb = w[r].add($ws * i);
                if $mins {
                    summs[r] = f16_at($wb.add(2)).mul_add(f16_at($xb.add(2)), summs[r]);
                }
                let d = f16_at($wb) * dx;
                let (s_lo, s_hi): (int32x4_t, int32x4_t) = $rbody;
                lo[r] = vfmaq_n_f32(lo[r], vcvtq_f32_s32(s_lo), d);
                hi[r] = vfmaq_n_f32(hi[r], vcvtq_f32_s32(s_hi), d);
            }
        }
        let mut out = [0.0f32; R];
        for r in 0..R {
            // No `+ 0.0` without mins: it would turn a −0 result into +0.
            out[r] = if $mins {
                hsum8(lo[r], hi[r]) + summs[r]
            } else {
                hsum8(lo[r], hi[r])
            };
        }
        out
    }};
}

/// Defines one-row kernels `$one::<D>(w, x, nb) -> f32` as the `R = 1` case of `$rows`.
macro_rules! one_row {
    ($($one:ident = $rows:ident;)*) => {$(
        /// One row: the `R = 1` case of the rows kernel (same arithmetic, same bits).
        ///
        /// # Safety
        /// As the rows kernel's.
        #[inline(always)]
        pub(super) unsafe fn $one<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
            // SAFETY: caller's contract.
            unsafe { $rows::<D, 1>([w], x, nb)[0] }
        }
    )*};
}

one_row! {
    dot_q4_0 = dot_q4_0_rows;
    dot_q4_1 = dot_q4_1_rows;
    dot_q5_0 = dot_q5_0_rows;
    dot_q5_1 = dot_q5_1_rows;
    dot_q8_0 = dot_q8_0_rows;
    dot_iq4_nl_tinyblas = dot_iq4_nl_tinyblas_rows;
}

/// Q4_0 × Q8_0 for `R` rows (Q4_0: `d@0 qs[16]@2`, 18 bytes; `scalar::dot_q4_0`): weights
/// `nibble − 8`.
///
/// # Safety
/// Each `w[r]`: `nb` Q4_0 blocks, `x`: `nb` Q8_0 blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q4_0_rows<D: I8Dot, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `18 i ..+18`, of `x` `34 i ..+34`; every load stays
    // inside them; `D`'s features are present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let eight = vdupq_n_s8(8);
        let zero = vdupq_n_s32(0);
        lanes8_rows!(
            w,
            x,
            nb,
            ws = 18,
            xs = 34,
            mins = false,
            |xb| (ld_s8(xb.add(2)), ld_s8(xb.add(18))),
            |wb, y| {
                let q = ld_u8(wb.add(2));
                let lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), eight);
                let hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(q)), eight);
                (D::dot(zero, lo, y.0), D::dot(zero, hi, y.1))
            }
        )
    }
}

/// Q4_1 × Q8_1 for `R` rows (Q4_1: `d@0 m@2 qs[16]@4`, 20 bytes; `scalar::dot_q4_1`): lanes
/// of the unsigned nibbles, `m_w·s_x` summed apart.
///
/// # Safety
/// Each `w[r]`: `nb` Q4_1 blocks, `x`: `nb` Q8_1 blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q4_1_rows<D: I8Dot, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `20 i ..+20`, of `x` `36 i ..+36`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let zero = vdupq_n_s32(0);
        lanes8_rows!(
            w,
            x,
            nb,
            ws = 20,
            xs = 36,
            mins = true,
            |xb| (ld_s8(xb.add(4)), ld_s8(xb.add(20))),
            |wb, y| {
                let q = ld_u8(wb.add(4));
                let lo = vreinterpretq_s8_u8(vandq_u8(q, m4));
                let hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q));
                (D::dot(zero, lo, y.0), D::dot(zero, hi, y.1))
            }
        )
    }
}

/// Q5_0 × Q8_0 for `R` rows (Q5_0: `d@0 qh:u32@2 qs[16]@6`, 22 bytes; `scalar::dot_q5_0`):
/// element j is `nibble | (bit j of qh) << 4`, minus 16.
///
/// # Safety
/// Each `w[r]`: `nb` Q5_0 blocks, `x`: `nb` Q8_0 blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q5_0_rows<D: I8Dot, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `22 i ..+22`, of `x` `34 i ..+34`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let m16 = vdupq_n_u8(0x10);
        let zero = vdupq_n_s32(0);
        lanes8_rows!(
            w,
            x,
            nb,
            ws = 22,
            xs = 34,
            mins = false,
            |xb| (ld_s8(xb.add(2)), ld_s8(xb.add(18))),
            |wb, y| {
                let qh = u32::from_le_bytes(wb.add(2).cast::<[u8; 4]>().read());
                let (h0, h1) = bits_to_masks(qh);
                let q = ld_u8(wb.add(6));
                // nibble + 16·bit − 16 = nibble − (bit ? 0 : 16)
                let lo = vsubq_u8(vandq_u8(q, m4), vbicq_u8(m16, h0));
                let hi = vsubq_u8(vshrq_n_u8::<4>(q), vbicq_u8(m16, h1));
                (
                    D::dot(zero, vreinterpretq_s8_u8(lo), y.0),
                    D::dot(zero, vreinterpretq_s8_u8(hi), y.1),
                )
            }
        )
    }
}

/// Q5_1 × Q8_1 for `R` rows (Q5_1: `d@0 m@2 qh:u32@4 qs[16]@8`, 24 bytes;
/// `scalar::dot_q5_1`): element j is `nibble | (bit j of qh) << 4`; `m_w·s_x` summed apart.
///
/// # Safety
/// Each `w[r]`: `nb` Q5_1 blocks, `x`: `nb` Q8_1 blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q5_1_rows<D: I8Dot, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `24 i ..+24`, of `x` `36 i ..+36`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let m16 = vdupq_n_u8(0x10);
        let zero = vdupq_n_s32(0);
        lanes8_rows!(
            w,
            x,
            nb,
            ws = 24,
            xs = 36,
            mins = true,
            |xb| (ld_s8(xb.add(4)), ld_s8(xb.add(20))),
            |wb, y| {
                let qh = u32::from_le_bytes(wb.add(4).cast::<[u8; 4]>().read());
                let (h0, h1) = bits_to_masks(qh);
                let q = ld_u8(wb.add(8));
                let lo = vorrq_u8(vandq_u8(q, m4), vandq_u8(m16, h0));
                let hi = vorrq_u8(vshrq_n_u8::<4>(q), vandq_u8(m16, h1));
                (
                    D::dot(zero, vreinterpretq_s8_u8(lo), y.0),
                    D::dot(zero, vreinterpretq_s8_u8(hi), y.1),
                )
            }
        )
    }
}

/// Q8_0 × Q8_0 for `R` rows (both `d@0 qs[32]@2`, 34 bytes; `scalar::dot_q8_0`).
///
/// # Safety
/// Each `w[r]` and `x`: `nb` Q8_0 blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q8_0_rows<D: I8Dot, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` of each row is bytes `34 i ..+34`; loads stay inside; `D`'s features
    // are present (caller's contract).
    unsafe {
        let zero = vdupq_n_s32(0);
        lanes8_rows!(
            w,
            x,
            nb,
            ws = 34,
            xs = 34,
            mins = false,
            |xb| (ld_s8(xb.add(2)), ld_s8(xb.add(18))),
            |wb, y| {
                (
                    D::dot(zero, ld_s8(wb.add(2)), y.0),
                    D::dot(zero, ld_s8(wb.add(18)), y.1),
                )
            }
        )
    }
}

/// The IQ4_NL grid as a `tbl` table.
#[inline(always)]
fn iq4nl_table() -> int8x16_t {
    // SAFETY: register-only NEON intrinsics; NEON is present (module docs).
    unsafe { vreinterpretq_s8_u8(bytes16(KVALUES_IQ4NL.map(|v| v as u8))) }
}

/// The two lane vectors of one IQ4_NL block (`d@0 qs[16]@2`, 18 bytes) against the Q8_0
/// activation bytes `y`: nibbles looked up in the grid.
///
/// # Safety
/// `wb` readable for 18 bytes; the CPU has `D`'s features.
#[inline(always)]
unsafe fn iq4nl_lanes<D: I8Dot>(
    wb: *const u8,
    y: (int8x16_t, int8x16_t),
    table: int8x16_t,
) -> (int32x4_t, int32x4_t) {
    // SAFETY: the load is the caller's contract; the rest is register-only.
    unsafe {
        let q = ld_u8(wb.add(2));
        let lo = vqtbl1q_s8(table, vandq_u8(q, vdupq_n_u8(0x0F)));
        let hi = vqtbl1q_s8(table, vshrq_n_u8::<4>(q));
        let zero = vdupq_n_s32(0);
        (D::dot(zero, lo, y.0), D::dot(zero, hi, y.1))
    }
}

/// IQ4_NL × Q8_0 for `R` rows as llama.cpp's tinyBLAS rounds it (batches of two or more
/// tokens; `scalar::dot_iq4_nl_tinyblas`).
///
/// # Safety
/// Each `w[r]`: `nb` IQ4_NL blocks, `x`: `nb` Q8_0 blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_iq4_nl_tinyblas_rows<D: I8Dot, const R: usize>(
    w: [*const u8; R],
    x: *const u8,
    nb: usize,
) -> [f32; R] {
    // SAFETY: block `i` of a row is bytes `18 i ..+18`, of `x` `34 i ..+34`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let table = iq4nl_table();
        lanes8_rows!(
            w,
            x,
            nb,
            ws = 18,
            xs = 34,
            mins = false,
            |xb| (ld_s8(xb.add(2)), ld_s8(xb.add(18))),
            |wb, y| iq4nl_lanes::<D>(wb, y, table)
        )
    }
}

/// `(d_x·d_w, lanes)` of the IQ4_NL block `wb` against the Q8_0 block `xb`.
///
/// # Safety
/// `wb` readable for 18 bytes, `xb` for 34; the CPU has `D`'s features.
#[inline(always)]
unsafe fn iq4nl_block<D: I8Dot>(
    wb: *const u8,
    xb: *const u8,
    table: int8x16_t,
) -> (f32, (int32x4_t, int32x4_t)) {
    // SAFETY: caller's contract.
    unsafe {
        let y = (ld_s8(xb.add(2)), ld_s8(xb.add(18)));
        (f16_at(xb) * f16_at(wb), iq4nl_lanes::<D>(wb, y, table))
    }
}

/// IQ4_NL × Q8_0 as llama.cpp's x86 `vec_dot` rounds it (one token; `scalar::dot_iq4_nl`):
/// even blocks into one set of eight lanes and odd ones into another, [`hsum8`] of their
/// lane-wise sum; an odd last block added after that as `sum + (d_x·d_w)·Σ`.
///
/// # Safety
/// `w`: `nb` IQ4_NL blocks, `x`: `nb` Q8_0 blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_iq4_nl<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `18 i ..+18` of `w` and `34 i ..+34` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let table = iq4nl_table();
        // [set][lanes 0..4, 4..8]
        let mut acc = [[vdupq_n_f32(0.0); 2]; 2];
        let mut i = 0;
        while i + 2 <= nb {
            for set in acc.iter_mut() {
                let (d, (lo, hi)) = iq4nl_block::<D>(w.add(18 * i), x.add(34 * i), table);
                set[0] = vfmaq_n_f32(set[0], vcvtq_f32_s32(lo), d);
                set[1] = vfmaq_n_f32(set[1], vcvtq_f32_s32(hi), d);
                i += 1;
            }
        }
        let sumf = hsum8(
            vaddq_f32(acc[0][0], acc[1][0]),
            vaddq_f32(acc[0][1], acc[1][1]),
        );
        if nb % 2 == 1 {
            let (d, (lo, hi)) = iq4nl_block::<D>(w.add(18 * (nb - 1)), x.add(34 * (nb - 1)), table);
            sumf + d * vaddvq_s32(vaddq_s32(lo, hi)) as f32
        } else {
            sumf
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q2_K, Q3_K, IQ4_XS × Q8_K (ggml's generic order, like `scalar`). Each kernel forms one i32x4
// of group sums at a time (`totals4`), multiplies it by the groups' integer scales lane-wise,
// and folds the super-block into a float vector with `d` once.
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

// ---------------------------------------------------------------------------------------------
// Q4_K / Q5_K / Q6_K × Q8_K in llama.cpp's x86 order: the eight-lane structure each `scalar`
// kernel defines (see there), formed with `D::dot` into two i32x4 (lanes 0..4 and 4..8) and
// multiplied by the groups' integer scales lane-wise (`mla` by a scale lane); the per-path
// kernels reduce the same exact integers further.
// ---------------------------------------------------------------------------------------------

/// Expands `$body` once per value, with `$c` a `const usize` of that value (so it can pick
/// vector lanes, which must be constants).
macro_rules! unroll {
    ($c:ident in [$($v:literal),*] $body:block) => {$({
        const $c: usize = $v;
        $body
    })*};
}

/// `v`, hidden from the optimiser: the scale vectors the kernels multiply by lane (`mla` by
/// element) would otherwise be rebuilt per lane from their narrow source (`dup` + `sxtl`).
#[inline(always)]
fn opaque(mut v: int32x4_t) -> int32x4_t {
    // SAFETY: an empty `asm!` that only claims to read and write the register; no memory,
    // stack or flags touched.
    unsafe {
        asm!("/* {v:v} */", v = inout(vreg) v, options(pure, nomem, nostack, preserves_flags));
    }
    v
}

/// The Q4_K / Q5_K min lanes: lane `p` = `m[2p]·B[2p] + m[2p+1]·B[2p+1]`, `B[g]` =
/// `bsums[2g] + bsums[2g+1]` (the 32-element activation sums).
///
/// # Safety
/// `bsums` readable for 32 bytes.
#[inline(always)]
unsafe fn k4_mins4(mins: [u8; 8], bsums: *const u8) -> int32x4_t {
    // SAFETY: the loads are the caller's contract; the rest is register-only NEON.
    unsafe {
        // Pair sums fit in i16: |bsum| ≤ 16 · 128.
        let b = vpaddq_s16(ld_s16(bsums), ld_s16(bsums.add(16)));
        let m = vreinterpretq_s16_u16(vmovl_u8(vcreate_u8(u64::from_le_bytes(mins))));
        vpaddq_s32(
            vmull_s16(vget_low_s16(b), vget_low_s16(m)),
            vmull_high_s16(b, m),
        )
    }
}

/// The integer part of a Q4_K (`Q5 = false`; `d@0 dmin@2 scales[12]@4 qs[128]@16`, 144
/// bytes) or Q5_K block (`Q5 = true`; `d@0 dmin@2 scales[12]@4 qh[32]@16 qs[128]@48`, 176
/// bytes) against a Q8_K block. Byte `l` of the 32-byte run `j` holds element `64j + l` (low
/// nibble, group `2j`) and `64j + 32 + l` (high nibble, group `2j + 1`); for Q5_K bit `g` of
/// `qh[l]` adds 16 to element `l` of group `g`.
///
/// Returns, per 64-element pair of groups `j`, the lanes `(0..4, 4..8)` of `scalar::dot_q4_k`
/// (lane `m`: `sc[2j]·Σ_{t<4} q·y` over elements `64j + 4m + t` plus `sc[2j+1]·…` over
/// `64j + 32 + 4m + t`), and the min lanes of [`k4_mins4`]. All exact.
///
/// # Safety
/// `wb` readable for one block, `xb` for one Q8_K block; the CPU has `D`'s features.
#[inline(always)]
unsafe fn k4_block<D: I8Dot, const Q5: bool>(
    wb: *const u8,
    xb: *const u8,
) -> ([(int32x4_t, int32x4_t); 4], int32x4_t) {
    // SAFETY: every load stays inside the two blocks (offsets above); `D`'s features are
    // present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let m16 = vdupq_n_u8(0x10);
        let zero = vdupq_n_s32(0);
        let (sc, mn) = k4_scales_mins(&wb.add(4).cast::<[u8; 12]>().read());
        let sc = widen_u8x8(sc).map(opaque);
        let mins = k4_mins4(mn, xb.add(Q8K_BSUMS));
        let qs = wb.add(if Q5 { 48 } else { 16 });
        let (qha, qhb) = if Q5 {
            (ld_u8(wb.add(16)), ld_u8(wb.add(32)))
        } else {
            (vdupq_n_u8(0), vdupq_n_u8(0))
        };
        let s8 = vreinterpretq_s8_u8;
        let mut s = [(zero, zero); 4];
        unroll!(J in [0, 1, 2, 3] {
            let qa = ld_u8(qs.add(32 * J));
            let qb = ld_u8(qs.add(32 * J + 16));
            let (mut la, mut lb) = (vandq_u8(qa, m4), vandq_u8(qb, m4));
            let (mut ha, mut hb) = (vshrq_n_u8::<4>(qa), vshrq_n_u8::<4>(qb));
            if Q5 {
                let fifth = |qh: uint8x16_t, bit: usize| {
                    vandq_u8(vtstq_u8(qh, vdupq_n_u8(1 << bit)), m16)
                };
                la = vorrq_u8(la, fifth(qha, 2 * J));
                lb = vorrq_u8(lb, fifth(qhb, 2 * J));
                ha = vorrq_u8(ha, fifth(qha, 2 * J + 1));
                hb = vorrq_u8(hb, fifth(qhb, 2 * J + 1));
            }
            let y = xb.add(Q8K_QS + 64 * J);
            let pla = D::dot(zero, s8(la), ld_s8(y));
            let plb = D::dot(zero, s8(lb), ld_s8(y.add(16)));
            let pha = D::dot(zero, s8(ha), ld_s8(y.add(32)));
            let phb = D::dot(zero, s8(hb), ld_s8(y.add(48)));
            // Scales of groups 2J and 2J + 1: lanes of `sc[J / 2]`.
            const A: i32 = (2 * J % 4) as i32;
            const B: i32 = A + 1;
            let v = sc[J / 2];
            s[J] = (
                vmlaq_laneq_s32::<B>(vmulq_laneq_s32::<A>(pla, v), pha, v),
                vmlaq_laneq_s32::<B>(vmulq_laneq_s32::<A>(plb, v), phb, v),
            );
        });
        (s, mins)
    }
}

/// The lanes of [`k4_block`] summed over the four pairs of groups: `(lanes 0..4, 4..8)`.
#[inline(always)]
fn k4_lanes(s: [(int32x4_t, int32x4_t); 4]) -> (int32x4_t, int32x4_t) {
    // SAFETY: register-only NEON intrinsics; NEON is present (module docs).
    unsafe {
        (
            vaddq_s32(vaddq_s32(s[0].0, s[1].0), vaddq_s32(s[2].0, s[3].0)),
            vaddq_s32(vaddq_s32(s[0].1, s[1].1), vaddq_s32(s[2].1, s[3].1)),
        )
    }
}

/// `d_w` and `dmin_w` of a Q4_K / Q5_K block.
///
/// # Safety
/// `wb` readable for 4 bytes.
#[inline(always)]
unsafe fn k4_d(wb: *const u8) -> (f32, f32) {
    // SAFETY: caller's contract.
    unsafe { (f16_at(wb), f16_at(wb.add(2))) }
}

/// Q4_K × Q8_K in llama.cpp's x86 `vec_dot` order (`scalar::dot_q4_k`): per block the lanes of
/// [`k4_block`] accumulated with one fused multiply-add by `d_x·d_w`, the four min lanes with
/// one by `(−d_x)·dmin_w`; [`hsum8`] of the first plus `(m0 + m2) + (m1 + m3)` of the second.
///
/// # Safety
/// `w`: `nb` Q4_K blocks, `x`: `nb` Q8_K blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q4_k<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `144 i ..+144` of `w` and `292 i ..+292` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let (mut lo, mut hi, mut acc_m) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0), vdupq_n_f32(0.0));
        for i in 0..nb {
            let (wb, xb) = (w.add(144 * i), x.add(292 * i));
            let yd = q8k_d(xb);
            let (dw, dminw) = k4_d(wb);
            let (d, dmin) = (yd * dw, -yd * dminw);
            let (s, mins) = k4_block::<D, false>(wb, xb);
            acc_m = vfmaq_n_f32(acc_m, vcvtq_f32_s32(mins), dmin);
            let (s_lo, s_hi) = k4_lanes(s);
            lo = vfmaq_n_f32(lo, vcvtq_f32_s32(s_lo), d);
            hi = vfmaq_n_f32(hi, vcvtq_f32_s32(s_hi), d);
        }
        let m = vadd_f32(vget_low_f32(acc_m), vget_high_f32(acc_m));
        hsum8(lo, hi) + (vget_lane_f32::<0>(m) + vget_lane_f32::<1>(m))
    }
}

/// Q5_K × Q8_K in llama.cpp's x86 `vec_dot` order (`scalar::dot_q5_k`): lanes as in
/// [`dot_q4_k`] with 5-bit weights; the mins as one integer added with
/// `summs = fma((−d_x)·dmin_w, Σ, summs)`; `hsum8(lanes) + summs`.
///
/// # Safety
/// `w`: `nb` Q5_K blocks, `x`: `nb` Q8_K blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q5_k<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `176 i ..+176` of `w` and `292 i ..+292` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let (mut lo, mut hi) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
        let mut summs = 0.0f32;
        for i in 0..nb {
            let (wb, xb) = (w.add(176 * i), x.add(292 * i));
            let yd = q8k_d(xb);
            let (dw, dminw) = k4_d(wb);
            let (d, dmin) = (yd * dw, -yd * dminw);
            let (s, mins) = k4_block::<D, true>(wb, xb);
            summs = dmin.mul_add(vaddvq_s32(mins) as f32, summs);
            let (s_lo, s_hi) = k4_lanes(s);
            lo = vfmaq_n_f32(lo, vcvtq_f32_s32(s_lo), d);
            hi = vfmaq_n_f32(hi, vcvtq_f32_s32(s_hi), d);
        }
        hsum8(lo, hi) + summs
    }
}

/// Which of llama.cpp's batch code paths a Q4_K / Q5_K path kernel rounds like.
const GEMV: u8 = 0;
const GEMM: u8 = 1;
const TILED: u8 = 2;

/// Q4_K (`Q5 = false`) or Q5_K × Q8_K as one of llama.cpp's batch paths rounds it: `GEMV` =
/// `scalar::dot_q4_k_8x8_gemv`, `GEMM` = `scalar::dot_q4_k_8x8_gemm`, `TILED` =
/// `scalar::dot_q4_k_tiled` / `dot_q5_k_tiled`. The integer sums come from [`k4_block`].
///
/// # Safety
/// `w`: `nb` blocks, `x`: `nb` Q8_K blocks; the CPU has `D`'s features.
#[inline(always)]
unsafe fn dot_k4_path<D: I8Dot, const Q5: bool, const PATH: u8>(
    w: *const u8,
    x: *const u8,
    nb: usize,
) -> f32 {
    let bs = if Q5 { 176 } else { 144 };
    // SAFETY: block `i` is bytes `bs i ..+bs` of `w` and `292 i ..+292` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let mut acc = 0.0f32;
        let mut acc_m = 0.0f32;
        for i in 0..nb {
            let (wb, xb) = (w.add(bs * i), x.add(292 * i));
            let yd = q8k_d(xb);
            let (dw, dminw) = k4_d(wb);
            let (s, mins) = k4_block::<D, Q5>(wb, xb);
            if PATH == GEMM {
                // [Σ over the pair of groups j] for j = 0..4, and the min lanes.
                let isums = vcvtq_f32_s32(totals4(
                    vaddq_s32(s[0].0, s[0].1),
                    vaddq_s32(s[1].0, s[1].1),
                    vaddq_s32(s[2].0, s[2].1),
                    vaddq_s32(s[3].0, s[3].1),
                ));
                let imins = vcvtq_f32_s32(mins);
                let (dd, dm) = (dw * yd, dminw * yd);
                let mut is = [0.0f32; 4];
                let mut im = [0.0f32; 4];
                vst1q_f32(is.as_mut_ptr(), isums);
                vst1q_f32(im.as_mut_ptr(), imins);
                for sb in 0..4 {
                    acc = is[sb].mul_add(dd, acc);
                    acc_m = im[sb].mul_add(dm, acc_m);
                }
            } else {
                let (s_lo, s_hi) = k4_lanes(s);
                let isum = vaddvq_s32(vaddq_s32(s_lo, s_hi)) as f32;
                let imin = vaddvq_s32(mins) as f32;
                if PATH == GEMV {
                    acc = isum.mul_add(dw * yd, acc);
                    acc_m = imin.mul_add(dminw * yd, acc_m);
                } else {
                    let r = (-dminw).mul_add(imin, isum * dw);
                    acc = r.mul_add(yd, acc);
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
pub(super) unsafe fn dot_q4_k_gemv<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: caller's contract.
    unsafe { dot_k4_path::<D, false, GEMV>(w, x, nb) }
}

/// See [`dot_q4_k_gemv`].
///
/// # Safety
/// As [`dot_k4_path`]'s.
#[inline(always)]
pub(super) unsafe fn dot_q4_k_gemm<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: caller's contract.
    unsafe { dot_k4_path::<D, false, GEMM>(w, x, nb) }
}

/// See [`dot_q4_k_gemv`].
///
/// # Safety
/// As [`dot_k4_path`]'s.
#[inline(always)]
pub(super) unsafe fn dot_q4_k_tiled<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: caller's contract.
    unsafe { dot_k4_path::<D, false, TILED>(w, x, nb) }
}

/// See [`dot_q4_k_gemv`].
///
/// # Safety
/// As [`dot_k4_path`]'s.
#[inline(always)]
pub(super) unsafe fn dot_q5_k_tiled<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: caller's contract.
    unsafe { dot_k4_path::<D, true, TILED>(w, x, nb) }
}

/// The integer part of a Q6_K block (`ql[128]@0 qh[64]@128 scales:i8[16]@192 d@208`, 210
/// bytes) against a Q8_K block: the eight lanes `(0..4, 4..8)` of `scalar::dot_q6_k` (lane `m`
/// sums `sc[g]·q_k·y_k`, unsigned 6-bit `q`, over the elements `k = 32c + 4m + t`, minus
/// `32·(B[2m]·sc[2m] + B[2m+1]·sc[2m+1])`, `B` the 16-element activation sums). In half `h`,
/// element `128h + 32k + l` is a nibble of `ql[64h + 32(k & 1) + l]` (low for `k < 2`) with
/// bits `2k..2k+2` of `qh[32h + l]` above it. All exact.
///
/// # Safety
/// `wb` readable for one Q6_K block, `xb` for one Q8_K block; the CPU has `D`'s features.
#[inline(always)]
unsafe fn q6k_block<D: I8Dot>(wb: *const u8, xb: *const u8) -> (int32x4_t, int32x4_t) {
    // SAFETY: every load stays inside the two blocks (offsets above); `D`'s features are
    // present (caller's contract).
    unsafe {
        let m4 = vdupq_n_u8(0x0F);
        let m30 = vdupq_n_u8(0x30);
        let zero = vdupq_n_s32(0);
        let sc8 = ld_s8(wb.add(192));
        // Scales of groups 4v .. 4v + 4 in `sc[v]`.
        let sc = widen_s8(sc8).map(opaque);
        // 32·(B[2m]·sc[2m] + B[2m+1]·sc[2m+1]) for lanes m = 0..4 and 4..8.
        let (sl, sh) = (vmovl_s8(vget_low_s8(sc8)), vmovl_high_s8(sc8));
        let (b0, b1) = (ld_s16(xb.add(Q8K_BSUMS)), ld_s16(xb.add(Q8K_BSUMS + 16)));
        let c_lo = vpaddq_s32(
            vmull_s16(vget_low_s16(b0), vget_low_s16(sl)),
            vmull_high_s16(b0, sl),
        );
        let c_hi = vpaddq_s32(
            vmull_s16(vget_low_s16(b1), vget_low_s16(sh)),
            vmull_high_s16(b1, sh),
        );
        let mut lo = vnegq_s32(vshlq_n_s32::<5>(c_lo));
        let mut hi = vnegq_s32(vshlq_n_s32::<5>(c_hi));
        unroll!(H in [0, 1] {
            let ql = [0, 1, 2, 3].map(|k| ld_u8(wb.add(64 * H + 16 * k)));
            let qh = [ld_u8(wb.add(128 + 32 * H)), ld_u8(wb.add(128 + 32 * H + 16))];
            unroll!(K in [0, 1, 2, 3] {
                // Chunk c = 4H + K: elements 0..16 are group 2c (lanes 0..4), 16..32 group
                // 2c + 1 (lanes 4..8); their scales are lanes 2(K % 2), 2(K % 2) + 1 of
                // `sc[2H + K / 2]`.
                let y = xb.add(Q8K_QS + 128 * H + 32 * K);
                let mut p = [zero; 2];
                for (half, p) in p.iter_mut().enumerate() {
                    let lq = ql[2 * (K & 1) + half];
                    let low = if K < 2 { vandq_u8(lq, m4) } else { vshrq_n_u8::<4>(lq) };
                    // ((qh >> 2K) & 3) << 4
                    let h = qh[half];
                    let high = match K {
                        0 => vshlq_n_u8::<4>(h),
                        1 => vshlq_n_u8::<2>(h),
                        2 => h,
                        _ => vshrq_n_u8::<2>(h),
                    };
                    let q = vorrq_u8(low, vandq_u8(high, m30));
                    *p = D::dot(zero, vreinterpretq_s8_u8(q), ld_s8(y.add(16 * half)));
                }
                const A: i32 = (2 * (K % 2)) as i32;
                const B: i32 = A + 1;
                let v = sc[2 * H + K / 2];
                lo = vmlaq_laneq_s32::<A>(lo, p[0], v);
                hi = vmlaq_laneq_s32::<B>(hi, p[1], v);
            });
        });
        (lo, hi)
    }
}

/// Q6_K × Q8_K in llama.cpp's x86 `vec_dot` order (`scalar::dot_q6_k`): the lanes of
/// [`q6k_block`] accumulated with one fused multiply-add by `d_x·d_w` per block, then
/// [`hsum8`].
///
/// # Safety
/// `w`: `nb` Q6_K blocks, `x`: `nb` Q8_K blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q6_k<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `210 i ..+210` of `w` and `292 i ..+292` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let (mut lo, mut hi) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
        for i in 0..nb {
            let (wb, xb) = (w.add(210 * i), x.add(292 * i));
            let d = q8k_d(xb) * f16_at(wb.add(208));
            let (s_lo, s_hi) = q6k_block::<D>(wb, xb);
            lo = vfmaq_n_f32(lo, vcvtq_f32_s32(s_lo), d);
            hi = vfmaq_n_f32(hi, vcvtq_f32_s32(s_hi), d);
        }
        hsum8(lo, hi)
    }
}

/// Q6_K × Q8_K as llama.cpp's tiled matmul rounds it (`scalar::dot_q6_k_tiled`): per block the
/// exact total of [`q6k_block`] times `d_w`, then `acc = fma(that, d_x, acc)`.
///
/// # Safety
/// `w`: `nb` Q6_K blocks, `x`: `nb` Q8_K blocks; the CPU has `D`'s features.
#[inline(always)]
pub(super) unsafe fn dot_q6_k_tiled<D: I8Dot>(w: *const u8, x: *const u8, nb: usize) -> f32 {
    // SAFETY: block `i` is bytes `210 i ..+210` of `w` and `292 i ..+292` of `x`; loads stay
    // inside; `D`'s features are present (caller's contract).
    unsafe {
        let mut acc = 0.0f32;
        for i in 0..nb {
            let (wb, xb) = (w.add(210 * i), x.add(292 * i));
            let (s_lo, s_hi) = q6k_block::<D>(wb, xb);
            let s1 = vaddvq_s32(vaddq_s32(s_lo, s_hi));
            acc = (s1 as f32 * f16_at(wb.add(208))).mul_add(q8k_d(xb), acc);
        }
        acc
    }
}
