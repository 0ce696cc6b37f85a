//! The K-quants: 256-element super-blocks Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the activation
//! format Q8_K.
//!
//! Ports of ggml's `quantize_row_<t>_ref` and `dequantize_row_<t>` (`ggml-quants.c`), with the
//! scale searches (`make_qx_quants`, `make_q3_quants`, `make_qkx2_quants`) and ggml's
//! [`nearest_int`] rounding. Float operations follow ggml's order.

use super::blocks::BlockQ8K;
use super::nearest_int;
use super::{dequantize_blocks, quantize_blocks};
use crate::dtype::QK_K;

/// Quantizes one Q8_K block (`quantize_row_q8_K_ref`): `q = nearest_int(-127 / max * x)` where
/// `max` is the element of largest magnitude, `d = 1 / (-127 / max)`, and `bsums` the sums of
/// each 16 quants.
///
/// An all-zero block gives `d = 0`, zero quants and (unlike ggml, which leaves them unwritten)
/// zero `bsums`.
pub fn quantize_block_q8_k_ref(x: &[f32; QK_K]) -> BlockQ8K {
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    let mut b = BlockQ8K {
        d: 0.0,
        qs: [0; QK_K],
        bsums: [0; QK_K / 16],
    };
    if amax == 0.0 {
        return b;
    }
    // -127 (not -128): the element of largest magnitude maps to -127 or +127, never -128.
    let iscale = -127.0 / max;
    for (q, &v) in b.qs.iter_mut().zip(x) {
        // nearest_int never exceeds 127 in magnitude here except by rounding, clamp as ggml.
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (sum, group) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
        *sum = group.iter().map(|&q| i16::from(q)).sum();
    }
    b.d = 1.0 / iscale;
    b
}

/// Dequantizes one Q8_K block: `y = d * q`.
pub fn dequantize_block_q8_k(b: &BlockQ8K, y: &mut [f32; QK_K]) {
    for (y, &q) in y.iter_mut().zip(&b.qs) {
        *y = b.d * q as f32;
    }
}

/// Quantizes a row to Q8_K blocks, like ggml's `quantize_row_q8_K_ref`.
///
/// `x`: `[y.len() * 256]` values.
///
/// # Panics
/// If `x.len() != 256 * y.len()` ([`super::quantize_row_ref`] validates instead).
pub fn quantize_row_q8_k_ref(x: &[f32], y: &mut [BlockQ8K]) {
    quantize_blocks(x, y, quantize_block_q8_k_ref);
}

/// Dequantizes a row of Q8_K blocks into `y` (`[x.len() * 256]` values).
///
/// # Panics
/// If `y.len() != 256 * x.len()` ([`super::dequantize_row`] validates instead).
pub fn dequantize_row_q8_k(x: &[BlockQ8K], y: &mut [f32]) {
    dequantize_blocks(x, y, dequantize_block_q8_k);
}
