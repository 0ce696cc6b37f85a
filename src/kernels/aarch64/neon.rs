//! NEON (Advanced SIMD) kernels: the [`NEON`] table, the float dots, the activation converters
//! and the helpers the integer kernels in `quants.rs` share.
//!
//! Every per-row kernel is an `#[inline(always)] unsafe fn (w, x, nb) -> f32` reading `nb`
//! blocks through raw pointers; `dot_rows_fns!` wraps each in a row loop compiled with
//! `#[target_feature(enable = "neon")]` (the legacy 32-element formats also with a two-row
//! kernel, `pair`, that gives each row the one-row kernel's bits). Which types are bit-exact
//! with the scalar table is said in `quants.rs`; the float dots below are not (they sum in f32
//! lanes, the reference in f64). All loads go through byte pointers (`vld1q_u8`, no
//! alignment needed), reinterpreted as wider lanes; AArch64 is little-endian here (`mod.rs`), so
//! lane `k` is the `k`-th little-endian element in memory.
//!
//! Half-precision conversions use `fcvt` / `fcvtl` / `fcvtn` through `asm!`: they are base
//! Armv8.0 instructions, but Rust's `vcvt_f32_f16` needs the unstable `f16` type. F16 → f32 is
//! exact; f32 → F16 rounds to nearest even (the default FPCR mode) and NaNs are replaced by
//! ggml's `sign | 0x7E00`.
//!
//! The converters produce the same bytes as the scalar table's for every input (Q8_0 / Q8_1:
//! llama.cpp's x86 activation quantizer, `scalar::quantize_act_block`; Q8_K, F16, BF16: the
//! `quant` references): a block holding a NaN is handed to the scalar converter (its max-scan
//! treats NaN in a way no vector max reproduces); everything else (infinities, subnormals,
//! overflowing scales) goes through vector code that rounds and saturates exactly like the
//! scalar expressions.

use core::arch::aarch64::*;
use core::arch::asm;

use super::super::{Isa, Kernels, check_convert, dot_rows_fns, scalar};
use super::quants::{self, Neon};
use crate::quant::f32_to_f16;

/// The NEON table.
pub(in crate::kernels) static NEON: Kernels = Kernels {
    isa: Isa::Neon,
    f32: rows::dot_f32_neon,
    f16: rows::dot_f16_neon,
    bf16: rows::dot_bf16_neon,
    q4_0: rows::dot_q4_0_neon,
    q4_1: rows::dot_q4_1_neon,
    q5_0: rows::dot_q5_0_neon,
    q5_1: rows::dot_q5_1_neon,
    q8_0: rows::dot_q8_0_neon,
    q2_k: rows::dot_q2_k_neon,
    q3_k: rows::dot_q3_k_neon,
    q4_k: rows::dot_q4_k_neon,
    q5_k: rows::dot_q5_k_neon,
    q6_k: rows::dot_q6_k_neon,
    iq4_nl: rows::dot_iq4_nl_neon,
    iq4_xs: rows::dot_iq4_xs_neon,
    quantize_q8_0: convert::quantize_q8_0_neon,
    quantize_q8_1: convert::quantize_q8_1_neon,
    quantize_q8_k: convert::quantize_q8_k_neon,
    to_f16: convert::to_f16_neon,
    to_bf16: convert::to_bf16_neon,
    stream: None,
    paths: crate::kernels::PathKernels {
        q4_k_gemv: rows::dot_q4_k_gemv_neon,
        q4_k_gemm: rows::dot_q4_k_gemm_neon,
        q4_k_tiled: rows::dot_q4_k_tiled_neon,
        q5_k_tiled: rows::dot_q5_k_tiled_neon,
        q6_k_tiled: rows::dot_q6_k_tiled_neon,
        iq4_nl_tinyblas: rows::dot_iq4_nl_tinyblas_neon,
    },
};

/// Row drivers of the NEON table.
mod rows {
    use super::{Neon, dot_bf16, dot_f16, dot_f32, dot_rows_fns, quants};
    dot_rows_fns! {
        features = "neon";
        dot_f32_neon: dot_f32, 4, 4;
        dot_f16_neon: dot_f16, 2, 2;
        dot_bf16_neon: dot_bf16, 2, 2;
        dot_q4_0_neon: quants::dot_q4_0::<Neon>, 18, 34, pair = quants::dot_q4_0_rows::<Neon, 2>;
        dot_q4_1_neon: quants::dot_q4_1::<Neon>, 20, 36, pair = quants::dot_q4_1_rows::<Neon, 2>;
        dot_q5_0_neon: quants::dot_q5_0::<Neon>, 22, 34, pair = quants::dot_q5_0_rows::<Neon, 2>;
        dot_q5_1_neon: quants::dot_q5_1::<Neon>, 24, 36, pair = quants::dot_q5_1_rows::<Neon, 2>;
        dot_q8_0_neon: quants::dot_q8_0::<Neon>, 34, 34, pair = quants::dot_q8_0_rows::<Neon, 2>;
        dot_q2_k_neon: quants::dot_q2_k::<Neon>, 84, 292;
        dot_q3_k_neon: quants::dot_q3_k::<Neon>, 110, 292;
        dot_iq4_xs_neon: quants::dot_iq4_xs::<Neon>, 136, 292;
        dot_q4_k_neon: quants::dot_q4_k::<Neon>, 144, 292;
        dot_q5_k_neon: quants::dot_q5_k::<Neon>, 176, 292;
        dot_q6_k_neon: quants::dot_q6_k::<Neon>, 210, 292;
        dot_q4_k_gemv_neon: quants::dot_q4_k_gemv::<Neon>, 144, 292;
        dot_q4_k_gemm_neon: quants::dot_q4_k_gemm::<Neon>, 144, 292;
        dot_q4_k_tiled_neon: quants::dot_q4_k_tiled::<Neon>, 144, 292;
        dot_q5_k_tiled_neon: quants::dot_q5_k_tiled::<Neon>, 176, 292;
        dot_q6_k_tiled_neon: quants::dot_q6_k_tiled::<Neon>, 210, 292;
        dot_iq4_nl_neon: quants::dot_iq4_nl::<Neon>, 18, 34;
        dot_iq4_nl_tinyblas_neon: quants::dot_iq4_nl_tinyblas::<Neon>, 18, 34,
            pair = quants::dot_iq4_nl_tinyblas_rows::<Neon, 2>;
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers. All `#[inline(always)]`, only ever inlined into the `#[target_feature]` loops.
// Helpers that only touch registers are safe (private) functions: NEON is in the baseline of
// every hosted AArch64 target, and they are reached only from the kernels, which run only after
// `aarch64::table` detected NEON. The ones that read memory are `unsafe fn`s whose contract is
// stated on each.
// ---------------------------------------------------------------------------------------------

/// Loads 16 bytes.
///
/// # Safety
/// `p` readable for 16 bytes.
#[inline(always)]
pub(super) unsafe fn ld_u8(p: *const u8) -> uint8x16_t {
    // SAFETY: caller's contract; `ld1` has no alignment requirement for byte elements.
    unsafe { vld1q_u8(p) }
}

/// Loads 16 bytes as signed bytes.
///
/// # Safety
/// `p` readable for 16 bytes.
#[inline(always)]
pub(super) unsafe fn ld_s8(p: *const u8) -> int8x16_t {
    // SAFETY: caller's contract.
    unsafe { vreinterpretq_s8_u8(ld_u8(p)) }
}

/// Loads eight little-endian i16 (16 bytes, any alignment).
///
/// # Safety
/// `p` readable for 16 bytes.
#[inline(always)]
pub(super) unsafe fn ld_s16(p: *const u8) -> int16x8_t {
    // SAFETY: caller's contract.
    unsafe { vreinterpretq_s16_u8(ld_u8(p)) }
}

/// Loads four little-endian f32 (16 bytes, any alignment).
///
/// # Safety
/// `p` readable for 16 bytes.
#[inline(always)]
unsafe fn ld_f32(p: *const u8) -> float32x4_t {
    // SAFETY: caller's contract.
    unsafe { vreinterpretq_f32_u8(ld_u8(p)) }
}

/// Widens an f16 (bits) to f32 exactly with `fcvt` (NaN payload kept, quiet bit set).
#[inline(always)]
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let out: f32;
    // SAFETY: `fcvt` (half to single) is a base Armv8.0 floating-point instruction; it only
    // reads and writes registers.
    unsafe {
        asm!(
            "fcvt {o:s}, {i:h}",
            o = lateout(vreg) out,
            i = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// The little-endian f16 at `p` as f32.
///
/// # Safety
/// `p` readable for 2 bytes.
#[inline(always)]
pub(super) unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: caller's contract; unaligned read.
    f16_to_f32(u16::from_le(unsafe { p.cast::<u16>().read_unaligned() }))
}

/// The eight f16 in the 16 bytes of `v`, widened to f32: `(elements 0..4, elements 4..8)`.
#[inline(always)]
fn f16x8_to_f32(v: uint8x16_t) -> (float32x4_t, float32x4_t) {
    let lo: float32x4_t;
    let hi: float32x4_t;
    // SAFETY: `fcvtl` / `fcvtl2` are base Advanced SIMD instructions; registers only.
    unsafe {
        asm!(
            "fcvtl {o:v}.4s, {i:v}.4h",
            o = lateout(vreg) lo,
            i = in(vreg) v,
            options(pure, nomem, nostack, preserves_flags),
        );
        asm!(
            "fcvtl2 {o:v}.4s, {i:v}.8h",
            o = lateout(vreg) hi,
            i = in(vreg) v,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    (lo, hi)
}

/// Narrows eight f32 to f16 bits with `fcvtn` / `fcvtn2` (round to nearest even; NaN lanes
/// are not ggml's yet, see [`convert::to_f16_neon`]).
#[inline(always)]
fn f32x8_to_f16(a: float32x4_t, b: float32x4_t) -> uint16x8_t {
    let out: uint16x8_t;
    // SAFETY: `fcvtn` / `fcvtn2` are base Advanced SIMD instructions; registers only. `out`
    // (not `lateout`) keeps the output apart from `b`, which is read after the first write.
    unsafe {
        asm!(
            "fcvtn {o:v}.4h, {a:v}.4s",
            "fcvtn2 {o:v}.8h, {b:v}.4s",
            o = out(vreg) out,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Float rows. The reference sums the (exact for f16/bf16) f32 products in f64; these sum them
// in f32 across 16 lanes, the only difference.
// ---------------------------------------------------------------------------------------------

/// f32 · f32 over `n` elements.
///
/// # Safety
/// `w`, `x` readable for `4 n` bytes.
#[inline(always)]
unsafe fn dot_f32(w: *const u8, x: *const u8, n: usize) -> f32 {
    // SAFETY: every load is inside the `4 n` bytes (caller's contract).
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        while i + 16 <= n {
            for (u, a) in acc.iter_mut().enumerate() {
                let o = 4 * (i + 4 * u);
                *a = vfmaq_f32(*a, ld_f32(w.add(o)), ld_f32(x.add(o)));
            }
            i += 16;
        }
        while i + 4 <= n {
            acc[0] = vfmaq_f32(acc[0], ld_f32(w.add(4 * i)), ld_f32(x.add(4 * i)));
            i += 4;
        }
        let mut sum = vaddvq_f32(vaddq_f32(
            vaddq_f32(acc[0], acc[1]),
            vaddq_f32(acc[2], acc[3]),
        ));
        while i < n {
            let a = f32::from_le_bytes(w.add(4 * i).cast::<[u8; 4]>().read());
            let b = f32::from_le_bytes(x.add(4 * i).cast::<[u8; 4]>().read());
            sum += a * b;
            i += 1;
        }
        sum
    }
}

/// f16 · f16 over `n` elements (widened with `fcvtl`, summed in f32).
///
/// # Safety
/// `w`, `x` readable for `2 n` bytes.
#[inline(always)]
unsafe fn dot_f16(w: *const u8, x: *const u8, n: usize) -> f32 {
    // SAFETY: every load is inside the `2 n` bytes (caller's contract).
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        while i + 16 <= n {
            for u in 0..2 {
                let o = 2 * (i + 8 * u);
                let (w0, w1) = f16x8_to_f32(ld_u8(w.add(o)));
                let (x0, x1) = f16x8_to_f32(ld_u8(x.add(o)));
                acc[2 * u] = vfmaq_f32(acc[2 * u], w0, x0);
                acc[2 * u + 1] = vfmaq_f32(acc[2 * u + 1], w1, x1);
            }
            i += 16;
        }
        while i + 8 <= n {
            let (w0, w1) = f16x8_to_f32(ld_u8(w.add(2 * i)));
            let (x0, x1) = f16x8_to_f32(ld_u8(x.add(2 * i)));
            acc[0] = vfmaq_f32(acc[0], w0, x0);
            acc[1] = vfmaq_f32(acc[1], w1, x1);
            i += 8;
        }
        let mut sum = vaddvq_f32(vaddq_f32(
            vaddq_f32(acc[0], acc[1]),
            vaddq_f32(acc[2], acc[3]),
        ));
        while i < n {
            sum += f16_at(w.add(2 * i)) * f16_at(x.add(2 * i));
            i += 1;
        }
        sum
    }
}

/// bf16 · bf16 over `n` elements: a bf16 is the top half of an f32, so `ushll #16` widens
/// exactly.
///
/// # Safety
/// `w`, `x` readable for `2 n` bytes.
#[inline(always)]
unsafe fn dot_bf16(w: *const u8, x: *const u8, n: usize) -> f32 {
    #[inline(always)]
    fn widen(v: uint8x16_t) -> (float32x4_t, float32x4_t) {
        // SAFETY: register-only NEON intrinsics; NEON is present (see the helpers' section).
        unsafe {
            let v = vreinterpretq_u16_u8(v);
            (
                vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(v))),
                vreinterpretq_f32_u32(vshll_high_n_u16::<16>(v)),
            )
        }
    }
    // SAFETY: every load is inside the `2 n` bytes (caller's contract).
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        while i + 16 <= n {
            for u in 0..2 {
                let o = 2 * (i + 8 * u);
                let (w0, w1) = widen(ld_u8(w.add(o)));
                let (x0, x1) = widen(ld_u8(x.add(o)));
                acc[2 * u] = vfmaq_f32(acc[2 * u], w0, x0);
                acc[2 * u + 1] = vfmaq_f32(acc[2 * u + 1], w1, x1);
            }
            i += 16;
        }
        while i + 8 <= n {
            let (w0, w1) = widen(ld_u8(w.add(2 * i)));
            let (x0, x1) = widen(ld_u8(x.add(2 * i)));
            acc[0] = vfmaq_f32(acc[0], w0, x0);
            acc[1] = vfmaq_f32(acc[1], w1, x1);
            i += 8;
        }
        let mut sum = vaddvq_f32(vaddq_f32(
            vaddq_f32(acc[0], acc[1]),
            vaddq_f32(acc[2], acc[3]),
        ));
        while i < n {
            let a = w.add(2 * i).cast::<[u8; 2]>().read();
            let b = x.add(2 * i).cast::<[u8; 2]>().read();
            let a = f32::from_bits(u32::from(u16::from_le_bytes(a)) << 16);
            let b = f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16);
            sum += a * b;
            i += 1;
        }
        sum
    }
}

// ---------------------------------------------------------------------------------------------
// Activation converters: the same bytes as the scalar table's, for every input.
// ---------------------------------------------------------------------------------------------

/// Whether any of the `N` vectors holds a NaN.
#[inline(always)]
fn any_nan<const N: usize>(v: &[float32x4_t; N]) -> bool {
    // SAFETY: register-only NEON intrinsics; NEON is present (see the helpers' section).
    unsafe {
        let mut ord = vdupq_n_u32(u32::MAX);
        for &v in v {
            ord = vandq_u32(ord, vceqq_f32(v, v));
        }
        vminvq_u32(ord) == 0
    }
}

/// The largest `|v|` over NaN-free vectors (0 if all are zero).
#[inline(always)]
fn abs_max<const N: usize>(v: &[float32x4_t; N]) -> f32 {
    // SAFETY: register-only NEON intrinsics; NEON is present (see the helpers' section).
    unsafe {
        let mut m = vdupq_n_f32(0.0);
        for &v in v {
            m = vmaxq_f32(m, vabsq_f32(v));
        }
        vmaxvq_f32(m)
    }
}

/// One Q8_0 / Q8_1 block from the 32 floats at `x`: stores the 32 quants at `qs` and returns
/// `(d, Σ q)`, or `None` (nothing written) if the block holds a NaN.
///
/// The definition (`scalar::quantize_act_block`): `d = amax / 127`, `id = amax ≠ 0 ?
/// 127/amax : 0`, `q = (x·id).round_ties_even() as i8`. `fcvtns` rounds to nearest, ties to
/// even, and saturates (NaN → 0) like `as`; the two saturating narrows then clamp to i8
/// exactly like the cast.
///
/// # Safety
/// `x` readable for 32 f32, `qs` writable for 32 bytes.
#[inline(always)]
unsafe fn quantize_q8_block(x: *const f32, qs: *mut u8) -> Option<(f32, i32)> {
    // SAFETY: loads within the 32 floats, stores within the 32 bytes (caller's contract).
    unsafe {
        let v: [float32x4_t; 8] = std::array::from_fn(|k| vld1q_f32(x.add(4 * k)));
        if any_nan(&v) {
            return None;
        }
        // llama.cpp's x86 activation quantizer (see `scalar::quantize_act_block`):
        // multiplier 127/amax, rounding to nearest, ties to even.
        let amax = abs_max(&v);
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let q = v.map(|v| vcvtnq_s32_f32(vmulq_n_f32(v, id)));
        let h = [
            vqmovn_high_s32(vqmovn_s32(q[0]), q[1]),
            vqmovn_high_s32(vqmovn_s32(q[2]), q[3]),
            vqmovn_high_s32(vqmovn_s32(q[4]), q[5]),
            vqmovn_high_s32(vqmovn_s32(q[6]), q[7]),
        ];
        let b0 = vqmovn_high_s16(vqmovn_s16(h[0]), h[1]);
        let b1 = vqmovn_high_s16(vqmovn_s16(h[2]), h[3]);
        vst1q_s8(qs.cast(), b0);
        vst1q_s8(qs.add(16).cast(), b1);
        Some((d, i32::from(vaddlvq_s8(b0)) + i32::from(vaddlvq_s8(b1))))
    }
}

/// One Q8_K block (292 bytes at `out`) from the 256 floats at `x`; `false` (nothing written)
/// if the block holds a NaN.
///
/// The reference: `max` = the first element of largest magnitude, `iscale = -127 / max`,
/// `q = nearest_int(iscale·x).min(127) as i8`, `d = 1 / iscale`, `bsums` = sums of 16 quants.
/// `nearest_int` is reproduced literally (multiply, add 1.5·2^23, keep the low 23 bits, a
/// wrapping narrow), so even overflowing scales give the reference's bytes.
///
/// # Safety
/// `x` readable for 256 f32, `out` writable for 292 bytes.
#[inline(always)]
unsafe fn quantize_q8k_block(x: *const f32, out: *mut u8) -> bool {
    // SAFETY: loads within the 256 floats, stores within the 292 bytes (caller's contract).
    unsafe {
        let v: [float32x4_t; 64] = std::array::from_fn(|k| vld1q_f32(x.add(4 * k)));
        if any_nan(&v) {
            return false;
        }
        let amax = abs_max(&v);
        if amax == 0.0 {
            std::ptr::write_bytes(out, 0, 292);
            return true;
        }
        // The first element whose magnitude is `amax` (the reference's strict `>` keeps it).
        let target = vdupq_n_f32(amax);
        let mut max = amax;
        for (k, &vk) in v.iter().enumerate() {
            if vmaxvq_u32(vceqq_f32(vabsq_f32(vk), target)) != 0 {
                let lane = (0..4)
                    .find(|&l| x.add(4 * k + l).read().abs() == amax)
                    .unwrap_or(0);
                max = x.add(4 * k + lane).read();
                break;
            }
        }
        let iscale = -127.0 / max;
        let magic = vdupq_n_f32(12_582_912.0);
        let low23 = vdupq_n_u32(0x007f_ffff);
        let bias = vdupq_n_s32(0x0040_0000);
        let cap = vdupq_n_s32(127);
        let nearest = |v: float32x4_t| {
            // No FMA: the reference rounds the product to f32 before adding.
            let t = vaddq_f32(vmulq_n_f32(v, iscale), magic);
            let i = vsubq_s32(
                vreinterpretq_s32_u32(vandq_u32(vreinterpretq_u32_f32(t), low23)),
                bias,
            );
            vminq_s32(i, cap)
        };
        let qs = out.add(4);
        let mut bsums = [0i16; 16];
        for (g, s) in bsums.iter_mut().enumerate() {
            let q = [
                nearest(v[4 * g]),
                nearest(v[4 * g + 1]),
                nearest(v[4 * g + 2]),
                nearest(v[4 * g + 3]),
            ];
            // Wrapping narrows: `as i8` keeps the low byte.
            let h0 = vmovn_high_s32(vmovn_s32(q[0]), q[1]);
            let h1 = vmovn_high_s32(vmovn_s32(q[2]), q[3]);
            let b = vmovn_high_s16(vmovn_s16(h0), h1);
            vst1q_s8(qs.add(16 * g).cast(), b);
            *s = vaddlvq_s8(b);
        }
        out.cast::<[u8; 4]>().write((1.0 / iscale).to_le_bytes());
        for (g, s) in bsums.iter().enumerate() {
            out.add(260 + 2 * g)
                .cast::<[u8; 2]>()
                .write(s.to_le_bytes());
        }
        true
    }
}

/// Converter entry points (see `ConvertFn`).
pub(super) mod convert {
    use super::*;

    /// Q8_0 activations (NEON).
    ///
    /// # Safety
    /// NEON available.
    pub(in crate::kernels::aarch64) unsafe fn quantize_q8_0_neon(x: &[f32], out: &mut [u8]) {
        #[target_feature(enable = "neon")]
        unsafe fn run(x: &[f32], out: &mut [u8], nb: usize) {
            for i in 0..nb {
                let (xb, ob) = (&x[32 * i..32 * i + 32], &mut out[34 * i..34 * i + 34]);
                // SAFETY: `xb` is 32 floats, `ob[2..]` 32 bytes.
                match unsafe { quantize_q8_block(xb.as_ptr(), ob.as_mut_ptr().add(2)) } {
                    Some((d, _)) => ob[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes()),
                    None => scalar::quantize_q8_0(xb, ob),
                }
            }
        }
        let nb = check_convert(x, out, 32, 34);
        // SAFETY: sizes checked; NEON guaranteed by the caller.
        unsafe { run(x, out, nb) }
    }

    /// Q8_1 activations (NEON).
    ///
    /// # Safety
    /// NEON available.
    pub(in crate::kernels::aarch64) unsafe fn quantize_q8_1_neon(x: &[f32], out: &mut [u8]) {
        #[target_feature(enable = "neon")]
        unsafe fn run(x: &[f32], out: &mut [u8], nb: usize) {
            for i in 0..nb {
                let (xb, ob) = (&x[32 * i..32 * i + 32], &mut out[36 * i..36 * i + 36]);
                // SAFETY: `xb` is 32 floats, `ob[4..]` 32 bytes.
                match unsafe { quantize_q8_block(xb.as_ptr(), ob.as_mut_ptr().add(4)) } {
                    Some((d, sum)) => {
                        ob[..2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
                        ob[2..4].copy_from_slice(&f32_to_f16(sum as f32 * d).to_le_bytes());
                    }
                    None => scalar::quantize_q8_1(xb, ob),
                }
            }
        }
        let nb = check_convert(x, out, 32, 36);
        // SAFETY: sizes checked; NEON guaranteed by the caller.
        unsafe { run(x, out, nb) }
    }

    /// Q8_K activations (NEON).
    ///
    /// # Safety
    /// NEON available.
    pub(in crate::kernels::aarch64) unsafe fn quantize_q8_k_neon(x: &[f32], out: &mut [u8]) {
        #[target_feature(enable = "neon")]
        unsafe fn run(x: &[f32], out: &mut [u8], nb: usize) {
            for i in 0..nb {
                let (xb, ob) = (&x[256 * i..256 * i + 256], &mut out[292 * i..292 * i + 292]);
                // SAFETY: `xb` is 256 floats, `ob` 292 bytes.
                if !unsafe { quantize_q8k_block(xb.as_ptr(), ob.as_mut_ptr()) } {
                    scalar::quantize_q8_k(xb, ob);
                }
            }
        }
        let nb = check_convert(x, out, 256, 292);
        // SAFETY: sizes checked; NEON guaranteed by the caller.
        unsafe { run(x, out, nb) }
    }

    /// f32 → f16 (NEON `fcvtn`), NaN → `sign | 0x7E00` as ggml.
    ///
    /// # Safety
    /// NEON available.
    pub(in crate::kernels::aarch64) unsafe fn to_f16_neon(x: &[f32], out: &mut [u8]) {
        #[target_feature(enable = "neon")]
        unsafe fn run(x: &[f32], out: &mut [u8]) {
            let n = x.len();
            let mut i = 0;
            while i + 8 <= n {
                // SAFETY: floats `i .. i + 8` and bytes `2 i .. 2 i + 16` are in bounds.
                unsafe {
                    let a = vld1q_f32(x.as_ptr().add(i));
                    let b = vld1q_f32(x.as_ptr().add(i + 4));
                    let h = f32x8_to_f16(a, b);
                    let nan = vmvnq_u16(vcombine_u16(
                        vmovn_u32(vceqq_f32(a, a)),
                        vmovn_u32(vceqq_f32(b, b)),
                    ));
                    let sign = vandq_u16(
                        vcombine_u16(
                            vshrn_n_u32::<16>(vreinterpretq_u32_f32(a)),
                            vshrn_n_u32::<16>(vreinterpretq_u32_f32(b)),
                        ),
                        vdupq_n_u16(0x8000),
                    );
                    let canon = vorrq_u16(sign, vdupq_n_u16(0x7E00));
                    let r = vbslq_u16(nan, canon, h);
                    vst1q_u8(out.as_mut_ptr().add(2 * i), vreinterpretq_u8_u16(r));
                }
                i += 8;
            }
            for j in i..n {
                out[2 * j..2 * j + 2].copy_from_slice(&f32_to_f16(x[j]).to_le_bytes());
            }
        }
        check_convert(x, out, 1, 2);
        // SAFETY: sizes checked; NEON guaranteed by the caller.
        unsafe { run(x, out) }
    }

    /// f32 → bf16 (NEON): round to nearest even, NaN quieted, as ggml.
    ///
    /// # Safety
    /// NEON available.
    pub(in crate::kernels::aarch64) unsafe fn to_bf16_neon(x: &[f32], out: &mut [u8]) {
        /// ggml's f32 → bf16 on four lanes of f32 bits.
        #[inline(always)]
        fn bf16x4(u: uint32x4_t) -> uint16x4_t {
            // SAFETY: register-only NEON intrinsics; NEON is present (see the helpers' section).
            unsafe {
                let abs = vandq_u32(u, vdupq_n_u32(0x7fff_ffff));
                let nan = vcgtq_u32(abs, vdupq_n_u32(0x7f80_0000));
                let lsb = vandq_u32(vshrq_n_u32::<16>(u), vdupq_n_u32(1));
                let r = vshrq_n_u32::<16>(vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7fff), lsb)));
                let q = vorrq_u32(vshrq_n_u32::<16>(u), vdupq_n_u32(64));
                vmovn_u32(vbslq_u32(nan, q, r))
            }
        }
        #[target_feature(enable = "neon")]
        unsafe fn run(x: &[f32], out: &mut [u8]) {
            let n = x.len();
            let mut i = 0;
            while i + 8 <= n {
                // SAFETY: floats `i .. i + 8` and bytes `2 i .. 2 i + 16` are in bounds.
                unsafe {
                    let a = vreinterpretq_u32_f32(vld1q_f32(x.as_ptr().add(i)));
                    let b = vreinterpretq_u32_f32(vld1q_f32(x.as_ptr().add(i + 4)));
                    let r = vcombine_u16(bf16x4(a), bf16x4(b));
                    vst1q_u8(out.as_mut_ptr().add(2 * i), vreinterpretq_u8_u16(r));
                }
                i += 8;
            }
            for j in i..n {
                out[2 * j..2 * j + 2]
                    .copy_from_slice(&crate::quant::f32_to_bf16(x[j]).to_le_bytes());
            }
        }
        check_convert(x, out, 1, 2);
        // SAFETY: sizes checked; NEON guaranteed by the caller.
        unsafe { run(x, out) }
    }
}
