//! The "legacy" 32-element formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_1.
//!
//! Ports of ggml's `quantize_row_<t>_ref` and `dequantize_row_<t>` (`ggml-quants.c`). Every
//! block is quantized on its own, so the row functions are the block functions applied in
//! order. Float operations are written in ggml's order, each rounded on its own (no fused
//! multiply-add: the reference build does not contract, see [`super::k_quants`]).
//!
//! Nibble layout shared by the 4- and 5-bit formats: byte `j` of `qs` holds element `j` in its
//! low nibble and element `j + 16` in its high nibble. The 5-bit formats keep each element's
//! fifth bit in the little-endian `u32` `qh`: bit `j` belongs to element `j`.

use super::blocks::{
    BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK4_0, QK4_1, QK5_0, QK5_1,
    QK8_0, QK8_1,
};
use super::float::{f16_to_f32, f32_to_f16};
use super::{dequantize_blocks, quantize_blocks};

/// The element of largest magnitude (the first one, on ties) and its magnitude, as
/// `(amax, max)` — ggml's `if (amax < fabsf(v)) { amax = fabsf(v); max = v; }` loop.
#[inline]
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    (amax, max)
}

/// The smallest and largest element, as ggml's `if (v < min) ...; if (v > max) ...` loop
/// starting from `FLT_MAX` / `-FLT_MAX`.
#[inline]
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// ggml's `MAX(amax, fabsf(v))` reduction for the 8-bit formats.
#[inline]
fn absmax(x: &[f32]) -> f32 {
    x.iter().fold(
        0.0f32,
        |amax, &v| if amax > v.abs() { amax } else { v.abs() },
    )
}

/// The reciprocal scale: `1/d`, or 0 for an all-zero block (ggml: `d ? 1.0f/d : 0.0f`).
#[inline]
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// C's `(int8_t)(float)` for values the callers guarantee are in `-128.0..128.0` (or NaN, which
/// gcc's `cvttss2si` turns into `INT_MIN`, truncated to 0 in the low byte: we give 0 too).
#[inline]
fn trunc_i8(v: f32) -> i32 {
    v as i32 as i8 as i32
}

/// Quantizes one Q4_0 block (`quantize_row_q4_0_ref`): `d = max / -8` where `max` is the
/// element of largest magnitude, so that element maps to q = 0 exactly.
pub fn quantize_block_q4_0_ref(x: &[f32; QK4_0]) -> BlockQ4_0 {
    let (_, max) = signed_absmax(x);
    let d = max / -8.0;
    let id = inverse(d);
    let mut qs = [0u8; QK4_0 / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        // q = min(15, trunc(x * id + 8.5)): round to nearest with the +8 offset folded in.
        let xi0 = trunc_i8(x[j] * id + 8.5).min(15) as u8;
        let xi1 = trunc_i8(x[j + QK4_0 / 2] * id + 8.5).min(15) as u8;
        *q = xi0 | (xi1 << 4);
    }
    BlockQ4_0 {
        d: f32_to_f16(d),
        qs,
    }
}

/// Dequantizes one Q4_0 block: `y = (q - 8) * d`.
pub fn dequantize_block_q4_0(b: &BlockQ4_0, y: &mut [f32; QK4_0]) {
    let d = f16_to_f32(b.d);
    for (j, &q) in b.qs.iter().enumerate() {
        y[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
        y[j + QK4_0 / 2] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// Quantizes one Q4_1 block (`quantize_row_q4_1_ref`): `m = min`, `d = (max - min) / 15`.
pub fn quantize_block_q4_1_ref(x: &[f32; QK4_1]) -> BlockQ4_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    let mut qs = [0u8; QK4_1 / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        let xi0 = trunc_i8((x[j] - min) * id + 0.5).min(15) as u8;
        let xi1 = trunc_i8((x[j + QK4_1 / 2] - min) * id + 0.5).min(15) as u8;
        *q = xi0 | (xi1 << 4);
    }
    BlockQ4_1 {
        d: f32_to_f16(d),
        m: f32_to_f16(min),
        qs,
    }
}

/// Dequantizes one Q4_1 block: `y = q * d + m`.
pub fn dequantize_block_q4_1(b: &BlockQ4_1, y: &mut [f32; QK4_1]) {
    let d = f16_to_f32(b.d);
    let m = f16_to_f32(b.m);
    for (j, &q) in b.qs.iter().enumerate() {
        y[j] = (q & 0x0f) as f32 * d + m;
        y[j + QK4_1 / 2] = (q >> 4) as f32 * d + m;
    }
}

/// Quantizes one Q5_0 block (`quantize_row_q5_0_ref`): `d = max / -16`.
pub fn quantize_block_q5_0_ref(x: &[f32; QK5_0]) -> BlockQ5_0 {
    let (_, max) = signed_absmax(x);
    let d = max / -16.0;
    let id = inverse(d);
    let mut qs = [0u8; QK5_0 / 2];
    let mut qh = 0u32;
    for (j, q) in qs.iter_mut().enumerate() {
        let xi0 = trunc_i8(x[j] * id + 16.5).min(31) as u32;
        let xi1 = trunc_i8(x[j + QK5_0 / 2] * id + 16.5).min(31) as u32;
        *q = ((xi0 & 0x0f) | ((xi1 & 0x0f) << 4)) as u8;
        // The fifth bit of element j goes to bit j of qh.
        qh |= ((xi0 & 0x10) >> 4) << j;
        qh |= ((xi1 & 0x10) >> 4) << (j + QK5_0 / 2);
    }
    BlockQ5_0 {
        d: f32_to_f16(d),
        qh: qh.to_le_bytes(),
        qs,
    }
}

/// The five-bit values of a Q5 block, `(low element j, high element j + 16)` for `j` in 0..16.
#[inline]
fn q5_pair(qs: u8, qh: u32, j: usize) -> (u32, u32) {
    let xh_0 = ((qh >> j) << 4) & 0x10;
    let xh_1 = (qh >> (j + 12)) & 0x10;
    ((qs & 0x0f) as u32 | xh_0, (qs >> 4) as u32 | xh_1)
}

/// Dequantizes one Q5_0 block: `y = (q - 16) * d`.
pub fn dequantize_block_q5_0(b: &BlockQ5_0, y: &mut [f32; QK5_0]) {
    let d = f16_to_f32(b.d);
    let qh = u32::from_le_bytes(b.qh);
    for (j, &q) in b.qs.iter().enumerate() {
        let (x0, x1) = q5_pair(q, qh, j);
        y[j] = (x0 as i32 - 16) as f32 * d;
        y[j + QK5_0 / 2] = (x1 as i32 - 16) as f32 * d;
    }
}

/// Quantizes one Q5_1 block (`quantize_row_q5_1_ref`): `m = min`, `d = (max - min) / 31`.
pub fn quantize_block_q5_1_ref(x: &[f32; QK5_1]) -> BlockQ5_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse(d);
    let mut qs = [0u8; QK5_1 / 2];
    let mut qh = 0u32;
    for (j, q) in qs.iter_mut().enumerate() {
        // ggml converts straight to uint8_t here (no clamp): the value is in 0.5..=31.5.
        let xi0 = ((x[j] - min) * id + 0.5) as i32 as u8 as u32;
        let xi1 = ((x[j + QK5_1 / 2] - min) * id + 0.5) as i32 as u8 as u32;
        *q = ((xi0 & 0x0f) | ((xi1 & 0x0f) << 4)) as u8;
        qh |= ((xi0 & 0x10) >> 4) << j;
        qh |= ((xi1 & 0x10) >> 4) << (j + QK5_1 / 2);
    }
    BlockQ5_1 {
        d: f32_to_f16(d),
        m: f32_to_f16(min),
        qh: qh.to_le_bytes(),
        qs,
    }
}

/// Dequantizes one Q5_1 block: `y = q * d + m`.
pub fn dequantize_block_q5_1(b: &BlockQ5_1, y: &mut [f32; QK5_1]) {
    let d = f16_to_f32(b.d);
    let m = f16_to_f32(b.m);
    let qh = u32::from_le_bytes(b.qh);
    for (j, &q) in b.qs.iter().enumerate() {
        let (x0, x1) = q5_pair(q, qh, j);
        y[j] = x0 as f32 * d + m;
        y[j + QK5_1 / 2] = x1 as f32 * d + m;
    }
}

/// Quantizes one Q8_0 block (`quantize_row_q8_0_ref`): `d = amax / 127`, `q = round(x / d)`
/// (half away from zero, C's `roundf`).
pub fn quantize_block_q8_0_ref(x: &[f32; QK8_0]) -> BlockQ8_0 {
    let d = absmax(x) / 127.0;
    let id = inverse(d);
    let mut qs = [0i8; QK8_0];
    for (q, &v) in qs.iter_mut().zip(x) {
        // |v * id| <= 127 (up to rounding far below 0.5), so the cast never saturates.
        *q = (v * id).round() as i8;
    }
    BlockQ8_0 {
        d: f32_to_f16(d),
        qs,
    }
}

/// Dequantizes one Q8_0 block: `y = q * d`.
pub fn dequantize_block_q8_0(b: &BlockQ8_0, y: &mut [f32; QK8_0]) {
    let d = f16_to_f32(b.d);
    for (y, &q) in y.iter_mut().zip(&b.qs) {
        *y = q as f32 * d;
    }
}

/// Quantizes one Q8_1 block (`quantize_row_q8_1_ref`): as Q8_0, plus `s = sum(q) * d`
/// (computed in f32 from the f32 `d`, then rounded to f16).
pub fn quantize_block_q8_1_ref(x: &[f32; QK8_1]) -> BlockQ8_1 {
    let d = absmax(x) / 127.0;
    let id = inverse(d);
    let mut qs = [0i8; QK8_1];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
    }
    let sum: i32 = qs.iter().map(|&q| i32::from(q)).sum();
    BlockQ8_1 {
        d: f32_to_f16(d),
        s: f32_to_f16(sum as f32 * d),
        qs,
    }
}

/// Dequantizes one Q8_1 block: `y = q * d` (`s` is redundant). ggml has no `to_float` for
/// Q8_1 (it is only an activation format); this is the Q8_0 formula it implies.
pub fn dequantize_block_q8_1(b: &BlockQ8_1, y: &mut [f32; QK8_1]) {
    let d = f16_to_f32(b.d);
    for (y, &q) in y.iter_mut().zip(&b.qs) {
        *y = q as f32 * d;
    }
}

macro_rules! row_fns {
    ($(($qname:ident, $qblock:ident, $dname:ident, $dblock:ident, $B:ty, $tname:literal)),* $(,)?) => {$(
        #[doc = concat!("Quantizes a row to ", $tname, " blocks, like ggml's `", stringify!($qname), "`.")]
        ///
        /// `x`: `[y.len() * 32]` values.
        ///
        /// # Panics
        /// If `x.len() != 32 * y.len()` ([`super::quantize_row_ref`] validates instead).
        pub fn $qname(x: &[f32], y: &mut [$B]) {
            quantize_blocks(x, y, $qblock);
        }

        #[doc = concat!("Dequantizes a row of ", $tname, " blocks into `y` (`[x.len() * 32]` values).")]
        ///
        /// # Panics
        /// If `y.len() != 32 * x.len()` ([`super::dequantize_row`] validates instead).
        pub fn $dname(x: &[$B], y: &mut [f32]) {
            dequantize_blocks(x, y, $dblock);
        }
    )*};
}

row_fns!(
    (
        quantize_row_q4_0_ref,
        quantize_block_q4_0_ref,
        dequantize_row_q4_0,
        dequantize_block_q4_0,
        BlockQ4_0,
        "Q4_0"
    ),
    (
        quantize_row_q4_1_ref,
        quantize_block_q4_1_ref,
        dequantize_row_q4_1,
        dequantize_block_q4_1,
        BlockQ4_1,
        "Q4_1"
    ),
    (
        quantize_row_q5_0_ref,
        quantize_block_q5_0_ref,
        dequantize_row_q5_0,
        dequantize_block_q5_0,
        BlockQ5_0,
        "Q5_0"
    ),
    (
        quantize_row_q5_1_ref,
        quantize_block_q5_1_ref,
        dequantize_row_q5_1,
        dequantize_block_q5_1,
        BlockQ5_1,
        "Q5_1"
    ),
    (
        quantize_row_q8_0_ref,
        quantize_block_q8_0_ref,
        dequantize_row_q8_0,
        dequantize_block_q8_0,
        BlockQ8_0,
        "Q8_0"
    ),
    (
        quantize_row_q8_1_ref,
        quantize_block_q8_1_ref,
        dequantize_row_q8_1,
        dequantize_block_q8_1,
        BlockQ8_1,
        "Q8_1"
    ),
);
