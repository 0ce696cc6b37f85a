//! IQ4_NL and IQ4_XS: 4-bit indices into the non-linear grid [`KVALUES_IQ4NL`].
//!
//! Ports of ggml's `quantize_iq4_nl` / `quantize_iq4_xs` without an importance matrix (what
//! `ggml_quantize_chunk` runs; both are `quantize_row_iq4_nl_impl` with `ntry = 7` and weights
//! `x^2`) and of `dequantize_row_iq4_nl` / `dequantize_row_iq4_xs`. Float operations are in
//! ggml's order, each rounded on its own (see [`super::k_quants`]).
//!
//! Nibble layout (both formats): in each group of 32 elements, byte `j` (0..16) holds element
//! `j` in its low nibble and element `j + 16` in its high nibble.

use super::blocks::{BlockIq4Nl, BlockIq4Xs, KVALUES_IQ4NL, QK4_NL};
use super::float::{f16_to_f32, f32_to_f16};
use super::{dequantize_blocks, nearest_int, quantize_blocks};
use crate::dtype::QK_K;

/// ggml's `GROUP_MAX_EPS`.
const GROUP_MAX_EPS: f32 = 1e-15;

/// How many scales on each side of the first guess the search tries (ggml's `ntry` in
/// `quantize_iq4_nl` / `quantize_iq4_xs`).
const NTRY: i32 = 7;

/// Index of the grid value nearest to `x` (ggml's `best_index_int8`): `x` picks level `i` once
/// it reaches the midpoint of levels `i - 1` and `i` (so an exact midpoint goes up). Comparing
/// `2x` with the integer sum of neighbours keeps the test exact. NaN gives 0.
#[inline]
fn best_index_iq4nl(x: f32) -> usize {
    let x2 = x + x;
    let mut idx = 0;
    let mut step = KVALUES_IQ4NL.len() / 2;
    while step > 0 {
        let j = idx + step;
        let mid2 = (i32::from(KVALUES_IQ4NL[j - 1]) + i32::from(KVALUES_IQ4NL[j])) as f32;
        if x2 >= mid2 {
            idx = j;
        }
        step /= 2;
    }
    idx
}

/// The best scale for one group of 32 (`x`), as the first half of ggml's
/// `quantize_row_iq4_nl_impl`: start with `d = max / 127` (so the element of largest magnitude
/// maps to the grid end of its sign), refit `d` by weighted least squares (`w = x^2`), then try
/// `2 * NTRY + 1` more scales `(itry - 127) / max` and keep the best fit. Returns 0 for an
/// all-zero group. (The indices are recomputed from the final scale by the callers.)
fn best_group_scale(x: &[f32; 32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }
    let v0 = f32::from(KVALUES_IQ4NL[0]);
    // Weighted sums of q*x and q*q over the group for the indices chosen at inverse scale `id`.
    let sums = |id: f32| {
        let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
        for &xj in x {
            let q = f32::from(KVALUES_IQ4NL[best_index_iq4nl(id * xj)]);
            let w = xj * xj;
            sumqx += w * q * xj;
            sumq2 += w * q * q;
        }
        (sumqx, sumq2)
    };
    let d = -max / v0;
    let (sumqx, sumq2) = sums(1.0 / d);
    let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -NTRY..=NTRY {
        let id = (itry + i32::from(KVALUES_IQ4NL[0])) as f32 / max;
        let (sumqx, sumq2) = sums(id);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// Packs the indices of one group of 32 into 16 bytes (low nibble `j`, high nibble `j + 16`).
fn pack_group(l: &[u8; 32], qs: &mut [u8]) {
    for j in 0..16 {
        qs[j] = l[j] | (l[j + 16] << 4);
    }
}

/// Quantizes one IQ4_NL block (`quantize_iq4_nl` without importance weights).
///
/// The scale search starts at `d = max / 127` (the element of largest magnitude maps to the grid
/// end of its sign), refits `d` by weighted least squares (weights `x^2`), tries 15 more scales
/// `(itry - 127) / max` for `itry` in `-7..=7` and keeps the best fit. `d` is stored as f16;
/// each element gets the index of the grid value nearest to `x / d` (unrounded `d`).
pub fn quantize_block_iq4_nl_ref(x: &[f32; QK4_NL]) -> BlockIq4Nl {
    let scale = best_group_scale(x);
    let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
    let mut l = [0u8; 32];
    for (l, &v) in l.iter_mut().zip(x) {
        *l = best_index_iq4nl(id * v) as u8;
    }
    let mut qs = [0u8; QK4_NL / 2];
    pack_group(&l, &mut qs);
    BlockIq4Nl {
        d: f32_to_f16(scale),
        qs,
    }
}

/// Dequantizes one IQ4_NL block: `y = d * KVALUES_IQ4NL[q]`.
pub fn dequantize_block_iq4_nl(b: &BlockIq4Nl, y: &mut [f32; QK4_NL]) {
    let d = f16_to_f32(b.d);
    for (j, &q) in b.qs.iter().enumerate() {
        y[j] = d * f32::from(KVALUES_IQ4NL[usize::from(q & 0xf)]);
        y[j + QK4_NL / 2] = d * f32::from(KVALUES_IQ4NL[usize::from(q >> 4)]);
    }
}

/// Quantizes one IQ4_XS block (`quantize_iq4_xs` without importance weights).
///
/// 1. Each group of 32 gets its best scale, searched as for IQ4_NL
///    ([`quantize_block_iq4_nl_ref`]).
/// 2. The super-block scale is `d = max_scale / -32`, where `max_scale` is the group scale of
///    largest magnitude; each group's scale becomes a 6-bit `l = round(scale / d)` in `-32..32`.
/// 3. Each element gets the nearest grid index at its group's scale `d * l` (f32, unrounded d).
/// 4. `l + 32`: low 4 bits in nibble `ib % 2` of `scales_l[ib / 2]`, high 2 bits at bits
///    `2 ib` of `scales_h`.
pub fn quantize_block_iq4_xs_ref(x: &[f32; QK_K]) -> BlockIq4Xs {
    let (groups, _) = x.as_chunks::<32>();
    let mut scales = [0.0f32; QK_K / 32];
    let mut max_scale = 0.0f32;
    let mut amax_scale = 0.0f32;
    for (s, g) in scales.iter_mut().zip(groups) {
        *s = best_group_scale(g);
        let abs_d = s.abs();
        if abs_d > amax_scale {
            amax_scale = abs_d;
            max_scale = *s;
        }
    }

    let d = -max_scale / 32.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut b = BlockIq4Xs {
        d: f32_to_f16(d),
        scales_h: 0,
        scales_l: [0; QK_K / 64],
        qs: [0; QK_K / 2],
    };
    for (ib, (g, &s)) in groups.iter().zip(&scales).enumerate() {
        let l = nearest_int(id * s).clamp(-32, 31);
        let dl = d * l as f32;
        let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        let mut lg = [0u8; 32];
        for (q, &v) in lg.iter_mut().zip(g) {
            *q = best_index_iq4nl(idl * v) as u8;
        }
        pack_group(&lg, &mut b.qs[16 * ib..16 * ib + 16]);
        let l = (l + 32) as u8;
        b.scales_l[ib / 2] |= (l & 0xf) << (4 * (ib % 2));
        b.scales_h |= u16::from(l >> 4) << (2 * ib);
    }
    b
}

/// Dequantizes one IQ4_XS block: `y = d * (ls - 32) * KVALUES_IQ4NL[q]` per group of 32.
pub fn dequantize_block_iq4_xs(b: &BlockIq4Xs, y: &mut [f32; QK_K]) {
    let d = f16_to_f32(b.d);
    for (ib, y) in y.chunks_exact_mut(32).enumerate() {
        let ls = ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) as i32
            | ((((b.scales_h >> (2 * ib)) & 3) as i32) << 4);
        let dl = d * (ls - 32) as f32;
        let qs = &b.qs[16 * ib..16 * ib + 16];
        for (j, &q) in qs.iter().enumerate() {
            y[j] = dl * f32::from(KVALUES_IQ4NL[usize::from(q & 0xf)]);
            y[j + 16] = dl * f32::from(KVALUES_IQ4NL[usize::from(q >> 4)]);
        }
    }
}

/// Quantizes a row to IQ4_NL blocks, like ggml's `quantize_iq4_nl` with no importance matrix.
///
/// `x`: `[y.len() * 32]` values.
///
/// # Panics
/// If `x.len() != 32 * y.len()` ([`super::quantize_row_ref`] validates instead).
pub fn quantize_row_iq4_nl_ref(x: &[f32], y: &mut [BlockIq4Nl]) {
    quantize_blocks(x, y, quantize_block_iq4_nl_ref);
}

/// Dequantizes a row of IQ4_NL blocks into `y` (`[x.len() * 32]` values).
///
/// # Panics
/// If `y.len() != 32 * x.len()` ([`super::dequantize_row`] validates instead).
pub fn dequantize_row_iq4_nl(x: &[BlockIq4Nl], y: &mut [f32]) {
    dequantize_blocks(x, y, dequantize_block_iq4_nl);
}

/// Quantizes a row to IQ4_XS blocks, like ggml's `quantize_iq4_xs` with no importance matrix.
///
/// `x`: `[y.len() * 256]` values.
///
/// # Panics
/// If `x.len() != 256 * y.len()` ([`super::quantize_row_ref`] validates instead).
pub fn quantize_row_iq4_xs_ref(x: &[f32], y: &mut [BlockIq4Xs]) {
    quantize_blocks(x, y, quantize_block_iq4_xs_ref);
}

/// Dequantizes a row of IQ4_XS blocks into `y` (`[x.len() * 256]` values).
///
/// # Panics
/// If `y.len() != 256 * x.len()` ([`super::dequantize_row`] validates instead).
pub fn dequantize_row_iq4_xs(x: &[BlockIq4Xs], y: &mut [f32]) {
    dequantize_blocks(x, y, dequantize_block_iq4_xs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_index_picks_nearest_and_rounds_midpoints_up() {
        for (i, &v) in KVALUES_IQ4NL.iter().enumerate() {
            assert_eq!(best_index_iq4nl(f32::from(v)), i);
        }
        assert_eq!(best_index_iq4nl(-1000.0), 0);
        assert_eq!(best_index_iq4nl(1000.0), 15);
        // Midpoint of -10 and 1 is -4.5: goes up; just below stays.
        assert_eq!(best_index_iq4nl(-4.5), 8);
        assert_eq!(best_index_iq4nl(-4.500001), 7);
        assert_eq!(best_index_iq4nl(0.0), 8);
    }
}
