//! The K-quants: 256-element super-blocks Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the activation
//! format Q8_K.
//!
//! Ports of ggml's `quantize_row_<t>_ref` and `dequantize_row_<t>` (`ggml-quants.c`), with the
//! scale searches (`make_qx_quants`, `make_q3_quants`, `make_qkx2_quants`) and ggml's
//! [`nearest_int`] rounding.
//!
//! Every float operation is written in ggml's order and rounded on its own: llama.cpp's
//! reference bytes come from a build that does not fuse `a * b + c` into a fused multiply-add
//! (fusing the products inside `nearest_int(a * b)`, the weighted sums, the least-squares
//! determinants or `scale * l + min` each changes bytes of the test vectors in
//! `tests/data/reference/quant/`), so none of the code below uses [`f32::mul_add`] and none of
//! it may be "simplified" algebraically.
//!
//! Group layouts (see [`super::blocks`]): Q2_K, Q3_K and Q6_K have 16 groups of 16 elements,
//! Q4_K and Q5_K 8 groups of 32; Q8_K is one scale for all 256.

use half::f16;

use super::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
use super::float::{f16_to_f32, f32_to_f16};
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

/// ggml's `GROUP_MAX_EPS`: a group whose largest magnitude is below this is treated as zero.
const GROUP_MAX_EPS: f32 = 1e-15;

/// `(amax, max)`: the largest magnitude and the (first) element that has it, as ggml's
/// `if (ax > amax) { amax = ax; max = x[i]; }` loops.
#[inline]
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    (amax, max)
}

/// ggml's `MAX(lo, MIN(hi, l))`.
#[inline]
fn clamp(l: i32, lo: i32, hi: i32) -> i32 {
    l.min(hi).max(lo)
}

/// ggml's `make_qx_quants` with `rmse_type = 1` and no importance weights (the only form the
/// reference quantizers use; Q6_K): symmetric quants `l` in `-nmax..nmax` for the group `x`,
/// weighted by `x^2`, trying 18 scales around `-nmax / max` and keeping the one that maximises
/// `sum(w x l)^2 / sum(w l^2)`. Writes `L[i] = l + nmax` and returns the scale.
fn make_qx_quants(nmax: i32, x: &[f32], out: &mut [i8]) -> f32 {
    let (amax, max) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        out.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = -nmaxf / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (o, &xi) in out.iter_mut().zip(x) {
        let l = clamp(nearest_int(iscale * xi), -nmax, nmax - 1);
        *o = (l + nmax) as i8;
        let w = xi * xi;
        let lf = l as f32;
        sumlx += w * xi * lf;
        suml2 += w * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmaxf + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &xi in x {
            let l = clamp(nearest_int(iscale * xi), -nmax, nmax - 1);
            let w = xi * xi;
            let lf = l as f32;
            sumlx += w * xi * lf;
            suml2 += w * lf * lf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (o, &xi) in out.iter_mut().zip(x) {
                let l = nearest_int(iscale * xi);
                *o = (nmax + clamp(l, -nmax, nmax - 1)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse = true` (Q3_K): start from `l = round(-nmax / max * x)`
/// and then, up to 5 passes, move single quants to the value that best fits the current
/// weighted (`w = x^2`) least-squares scale. Writes `L[i] = l + nmax` and returns the scale.
fn make_q3_quants(nmax: i32, x: &[f32], out: &mut [i8]) -> f32 {
    let (amax, max) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        out.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (o, &xi) in out.iter_mut().zip(x) {
        let l = clamp(nearest_int(iscale * xi), -nmax, nmax - 1);
        *o = l as i8;
        let w = xi * xi;
        let lf = l as f32;
        sumlx += w * xi * lf;
        suml2 += w * lf * lf;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (o, &xi) in out.iter_mut().zip(x) {
            let w = xi * xi;
            let li = *o as f32;
            // Sums without element i.
            let mut slx = sumlx - w * xi * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = clamp(nearest_int(xi * sl2 / slx), -nmax, nmax - 1);
                if new_l != *o as i32 {
                    let nl = new_l as f32;
                    slx += w * xi * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *o = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for o in out.iter_mut() {
        *o += nmax as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// ggml's `make_qkx2_quants`: asymmetric quants `l` in `0..=nmax` with `x ≈ scale * l - the_min`
/// for the group `x` with per-element `weights`. Starts from the min/max fit, then tries
/// `nstep + 1` scales `(rmin + rdelta * is + nmax) / (max - min)`, refitting scale and min by
/// weighted least squares for each, and keeps the candidate with the smallest weighted error
/// (absolute if `use_mad`, squared otherwise). Writes `L` and returns `(scale, the_min)`.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    out: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        out.fill(0);
        return (0.0, -min);
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let error = |diff: f32| if use_mad { diff.abs() } else { diff * diff };
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min));
        out[i] = clamp(l, 0, nmax) as u8;
        let diff = scale * out[i] as f32 + min - x[i];
        best_error += weights[i] * error(diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    let mut laux = [0u8; 32];
    let laux = &mut laux[..n];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmaxf) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            // ggml: sum_l += w*l; sum_l2 += w*l*l; sum_xl += w*l*x[i] (w*l rounded once).
            let wl = w * lf;
            sum_l += wl;
            sum_l2 += wl * lf;
            sum_xl += wl * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * error(diff);
            }
            if cur_error < best_error {
                out.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Scale and min of group `j` (0..8) from the 12 packed bytes of Q4_K / Q5_K: groups 0..4 keep
/// 6 bits in the low bits of bytes `j` (scale) and `j + 4` (min); groups 4..8 keep their low 4
/// bits in the nibbles of byte `j + 4` and their top 2 bits in the top bits of bytes `j - 4`
/// (scale) and `j` (min). ggml's `get_scale_min_k4`.
#[inline]
pub fn get_scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs 6-bit scales and mins of the 8 groups into Q4_K / Q5_K's 12 bytes (inverse of
/// [`get_scale_min_k4`]).
fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (ls[j] & 0xf) | ((lm[j] & 0xf) << 4);
            s[j - 4] |= (ls[j] >> 4) << 6;
            s[j] |= (lm[j] >> 4) << 6;
        }
    }
    s
}

/// Packs 256 2-bit values: byte `l` of each 32-byte half `h` holds elements
/// `128h + l`, `+32`, `+64`, `+96` in bits 0-1, 2-3, 4-5, 6-7 (Q2_K and Q3_K's `qs`).
fn pack_2bit(l: &[u8; QK_K]) -> [u8; QK_K / 4] {
    let mut qs = [0u8; QK_K / 4];
    for j in (0..QK_K).step_by(128) {
        for i in 0..32 {
            qs[j / 4 + i] =
                l[j + i] | (l[j + i + 32] << 2) | (l[j + i + 64] << 4) | (l[j + i + 96] << 6);
        }
    }
    qs
}

/// Quantizes one Q2_K block (`quantize_row_q2_K_ref`).
///
/// 1. Each group of 16 gets an asymmetric 2-bit fit (`make_qkx2_quants`, weights `|x|`,
///    absolute error).
/// 2. Group scales and mins are quantized to 4 bits against the largest of each
///    (`d = max_scale / 15`, `dmin = max_min / 15`).
/// 3. Every element is re-quantized with its group's final (rounded) scale and min.
pub fn quantize_block_q2_k_ref(x: &[f32; QK_K]) -> BlockQ2K {
    const Q4SCALE: f32 = 15.0;
    let mut l = [0u8; QK_K];
    let mut mins = [0.0f32; QK_K / 16];
    let mut scales = [0.0f32; QK_K / 16];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..QK_K / 16 {
        let xg = &x[16 * j..16 * j + 16];
        let mut weights = [0.0f32; 16];
        for (w, &v) in weights.iter_mut().zip(xg) {
            *w = v.abs();
        }
        let (scale, min) = make_qkx2_quants(
            3,
            xg,
            &weights,
            &mut l[16 * j..16 * j + 16],
            -0.5,
            0.1,
            15,
            true,
        );
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    let mut b = BlockQ2K {
        scales: [0; QK_K / 16],
        qs: [0; QK_K / 4],
        d: f32_to_f16(0.0),
        dmin: f32_to_f16(0.0),
    };
    if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for (s, &sc) in b.scales.iter_mut().zip(&scales) {
            *s = nearest_int(iscale * sc) as u8;
        }
        b.d = f32_to_f16(max_scale / Q4SCALE);
    }
    if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for (s, &m) in b.scales.iter_mut().zip(&mins) {
            *s |= (nearest_int(iscale * m) << 4) as u8;
        }
        b.dmin = f32_to_f16(max_min / Q4SCALE);
    }

    let d_all = f16_to_f32(b.d);
    let dmin_all = f16_to_f32(b.dmin);
    for j in 0..QK_K / 16 {
        let d = d_all * (b.scales[j] & 0xf) as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * (b.scales[j] >> 4) as f32;
        for ii in 0..16 {
            let q = nearest_int((x[16 * j + ii] + dm) / d);
            l[16 * j + ii] = clamp(q, 0, 3) as u8;
        }
    }
    b.qs = pack_2bit(&l);
    b
}

/// Dequantizes one Q2_K block: `y = d * (sc & 15) * q - dmin * (sc >> 4)` per group of 16.
pub fn dequantize_block_q2_k(b: &BlockQ2K, y: &mut [f32; QK_K]) {
    let d = f16_to_f32(b.d);
    let min = f16_to_f32(b.dmin);
    // Element 128h + 32s + 16k + l (half h, shift s, k in 0..2, l in 0..16) is bits 2s..2s+2 of
    // qs[32h + 16k + l]; its group is 8h + 2s + k.
    for (i, y) in y.iter_mut().enumerate() {
        let (h, s, kl) = (i / 128, (i / 32) % 4, i % 32);
        let sc = b.scales[i / 16];
        let dl = d * (sc & 0xf) as f32;
        let ml = min * (sc >> 4) as f32;
        let q = (b.qs[32 * h + kl] >> (2 * s)) & 3;
        *y = dl * q as f32 - ml;
    }
}

/// Quantizes one Q3_K block (`quantize_row_q3_K_ref`).
///
/// 1. Each group of 16 gets a symmetric 3-bit fit (`make_q3_quants`).
/// 2. The 16 group scales are quantized to signed 6 bits against the one of largest magnitude
///    (`d = max_scale / -32`).
/// 3. Every element is re-quantized with its group's final scale, to `l` in `-4..4`.
/// 4. `l + 4` is split: bit 2 into `hmask` (bit `j / 32` of byte `j % 32`), bits 0-1 into `qs`.
pub fn quantize_block_q3_k_ref(x: &[f32; QK_K]) -> BlockQ3K {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; QK_K / 16];
    let mut max_scale = 0.0f32;
    let mut amax = 0.0f32;
    for j in 0..QK_K / 16 {
        scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
        let scale = scales[j].abs();
        if scale > amax {
            amax = scale;
            max_scale = scales[j];
        }
    }

    let mut b = BlockQ3K {
        hmask: [0; QK_K / 8],
        qs: [0; QK_K / 4],
        scales: [0; 12],
        d: f32_to_f16(0.0),
    };
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &sc) in scales.iter().enumerate() {
            // ggml stores nearest_int's result in an int8_t before clamping.
            let q = clamp(nearest_int(iscale * sc) as i8 as i32, -32, 31) + 32;
            // Low 4 bits: nibble (j / 8) of byte j % 8; high 2 bits: bits 2(j/4).. of byte 8 + j%4.
            if j < 8 {
                b.scales[j] = (q & 0xf) as u8;
            } else {
                b.scales[j - 8] |= ((q & 0xf) << 4) as u8;
            }
            b.scales[j % 4 + 8] |= ((q >> 4) << (2 * (j / 4))) as u8;
        }
        b.d = f32_to_f16(1.0 / iscale);
    }

    let d_all = f16_to_f32(b.d);
    let final_scales = unpack_q3_k_scales(&b.scales);
    for j in 0..QK_K / 16 {
        let d = d_all * final_scales[j] as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / d);
            l[16 * j + ii] = (clamp(q, -4, 3) + 4) as i8;
        }
    }

    let mut lu = [0u8; QK_K];
    for (j, (u, &v)) in lu.iter_mut().zip(&l).enumerate() {
        let mut v = v as u8;
        if v > 3 {
            b.hmask[j % 32] |= 1 << (j / 32);
            v -= 4;
        }
        *u = v;
    }
    b.qs = pack_2bit(&lu);
    b
}

/// The 16 signed group scales of a Q3_K block (each `-32..32`) from their 12 packed bytes:
/// group `g` has its low 4 bits in nibble `g / 8` of byte `g % 8` and its high 2 bits at bits
/// `2 (g / 4)` of byte `8 + g % 4`; the stored 6-bit value is biased by 32.
pub fn unpack_q3_k_scales(s: &[u8; 12]) -> [i8; QK_K / 16] {
    std::array::from_fn(|g| {
        let low = if g < 8 { s[g] & 0xf } else { s[g - 8] >> 4 };
        let high = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
        (low | (high << 4)) as i8 - 32
    })
}

/// Dequantizes one Q3_K block: `y = d * (scale - 32) * (q - (hbit ? 0 : 4))` per group of 16.
pub fn dequantize_block_q3_k(b: &BlockQ3K, y: &mut [f32; QK_K]) {
    let d_all = f16_to_f32(b.d);
    let scales = unpack_q3_k_scales(&b.scales);
    // Element i = 128h + 32s + l: low bits at bits 2s of qs[32h + l], high bit at bit (4h + s)
    // of hmask[l], group i / 16.
    for (i, y) in y.iter_mut().enumerate() {
        let (h, s, l) = (i / 128, (i / 32) % 4, i % 32);
        // ggml: dl = d_all * (scale - 32), then dl * (q - 4 * !hbit) as an int.
        let dl = d_all * scales[i / 16] as f32;
        let low = ((b.qs[32 * h + l] >> (2 * s)) & 3) as i32;
        let high = b.hmask[l] & (1 << (4 * h + s)) != 0;
        *y = dl * (low - if high { 0 } else { 4 }) as f32;
    }
}

/// The first steps of Q4_K and Q5_K (`quantize_row_q{4,5}_K_ref`): per group of 32, an
/// asymmetric fit (`make_qkx2_quants`, weights `sqrt(mean(x^2)) + |x|`), then 6-bit scales and
/// mins against the largest of each (`d = max_scale / 63`, `dmin = max_min / 63`), then every
/// element re-quantized to `0..=nmax` with its group's final scale and min.
/// Returns `(d, dmin, packed scales, L)`.
fn quantize_k4_k5(
    x: &[f32; QK_K],
    nmax: i32,
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f16, f16, [u8; 12], [u8; QK_K]) {
    let mut l = [0u8; QK_K];
    let mut mins = [0.0f32; QK_K / 32];
    let mut scales = [0.0f32; QK_K / 32];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..QK_K / 32 {
        let xg = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xg {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut weights = [0.0f32; 32];
        for (w, &v) in weights.iter_mut().zip(xg) {
            *w = av_x + v.abs();
        }
        let (scale, min) = make_qkx2_quants(
            nmax,
            xg,
            &weights,
            &mut l[32 * j..32 * j + 32],
            rmin,
            rdelta,
            nstep,
            false,
        );
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..QK_K / 32 {
        // ggml stores nearest_int's result in a uint8_t, then clamps to 63.
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    let packed = pack_scale_min_k4(&ls, &lm);
    let d = f32_to_f16(max_scale / 63.0);
    let dmin = f32_to_f16(max_min / 63.0);

    let (d_all, dmin_all) = (f16_to_f32(d), f16_to_f32(dmin));
    for j in 0..QK_K / 32 {
        let (sc, m) = get_scale_min_k4(j, &packed);
        let d = d_all * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * m as f32;
        for ii in 0..32 {
            let q = nearest_int((x[32 * j + ii] + dm) / d);
            l[32 * j + ii] = clamp(q, 0, nmax) as u8;
        }
    }
    (d, dmin, packed, l)
}

/// Quantizes one Q4_K block (`quantize_row_q4_K_ref`).
///
/// 1. Each group of 32 gets an asymmetric 4-bit fit `x ≈ scale * l - min` (`make_qkx2_quants`,
///    weights `sqrt(mean(x^2)) + |x|`, 21 candidate scales).
/// 2. Group scales and mins are quantized to 6 bits against the largest of each
///    (`d = max_scale / 63`, `dmin = max_min / 63`), packed as [`get_scale_min_k4`] reads them.
/// 3. Every element is re-quantized to `0..16` with its group's final scale and min.
/// 4. Nibbles: byte `l` of each 32-byte chunk `c` holds element `64c + l` (low) and
///    `64c + 32 + l` (high).
pub fn quantize_block_q4_k_ref(x: &[f32; QK_K]) -> BlockQ4K {
    let (d, dmin, scales, l) = quantize_k4_k5(x, 15, -1.0, 0.1, 20);
    let mut qs = [0u8; QK_K / 2];
    for c in 0..QK_K / 64 {
        for i in 0..32 {
            qs[32 * c + i] = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
        }
    }
    BlockQ4K {
        d,
        dmin,
        scales,
        qs,
    }
}

/// Dequantizes one Q4_K block: `y = d * sc * q - dmin * m` per group of 32.
pub fn dequantize_block_q4_k(b: &BlockQ4K, y: &mut [f32; QK_K]) {
    let d = f16_to_f32(b.d);
    let min = f16_to_f32(b.dmin);
    for (g, y) in y.chunks_exact_mut(32).enumerate() {
        let (sc, m) = get_scale_min_k4(g, &b.scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let q = &b.qs[32 * (g / 2)..32 * (g / 2) + 32];
        let shift = 4 * (g % 2);
        for (y, &q) in y.iter_mut().zip(q) {
            *y = d1 * ((q >> shift) & 0xf) as f32 - m1;
        }
    }
}

/// Quantizes one Q5_K block (`quantize_row_q5_K_ref`): as [`quantize_block_q4_k_ref`] with
/// 5-bit quants (`0..32`, 16 candidate scales in the fit). Low 4 bits are packed as Q4_K's
/// nibbles; the fifth bit of element `64c + l` is bit `2c` of `qh[l]`, of `64c + 32 + l` bit
/// `2c + 1`.
pub fn quantize_block_q5_k_ref(x: &[f32; QK_K]) -> BlockQ5K {
    let (d, dmin, scales, l) = quantize_k4_k5(x, 31, -0.5, 0.1, 15);
    let mut qs = [0u8; QK_K / 2];
    let mut qh = [0u8; QK_K / 8];
    for c in 0..QK_K / 64 {
        for i in 0..32 {
            let (mut l1, mut l2) = (l[64 * c + i], l[64 * c + 32 + i]);
            if l1 > 15 {
                l1 -= 16;
                qh[i] |= 1 << (2 * c);
            }
            if l2 > 15 {
                l2 -= 16;
                qh[i] |= 2 << (2 * c);
            }
            qs[32 * c + i] = l1 | (l2 << 4);
        }
    }
    BlockQ5K {
        d,
        dmin,
        scales,
        qh,
        qs,
    }
}

/// Dequantizes one Q5_K block: `y = d * sc * q - dmin * m` per group of 32.
pub fn dequantize_block_q5_k(b: &BlockQ5K, y: &mut [f32; QK_K]) {
    let d = f16_to_f32(b.d);
    let min = f16_to_f32(b.dmin);
    for (g, y) in y.chunks_exact_mut(32).enumerate() {
        let (sc, m) = get_scale_min_k4(g, &b.scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let ql = &b.qs[32 * (g / 2)..32 * (g / 2) + 32];
        let shift = 4 * (g % 2);
        for (l, y) in y.iter_mut().enumerate() {
            let high = if b.qh[l] & (1 << g) != 0 { 16 } else { 0 };
            *y = d1 * (((ql[l] >> shift) & 0xf) + high) as f32 - m1;
        }
    }
}

/// Quantizes one Q6_K block (`quantize_row_q6_K_ref`).
///
/// 1. Each group of 16 gets a symmetric 6-bit fit (`make_qx_quants`, nmax 32).
/// 2. Group scales are quantized to i8 against the one of largest magnitude
///    (`d = max_scale / -128`).
/// 3. Every element is re-quantized with its group's final scale, to `l + 32` in `0..64`.
/// 4. Low 4 bits go to `ql`, high 2 bits to `qh` (layout in [`dequantize_block_q6_k`]).
pub fn quantize_block_q6_k_ref(x: &[f32; QK_K]) -> BlockQ6K {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; QK_K / 16];
    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    for ib in 0..QK_K / 16 {
        let scale = make_qx_quants(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..16 * ib + 16]);
        scales[ib] = scale;
        let abs_scale = scale.abs();
        if abs_scale > max_abs_scale {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }

    let mut b = BlockQ6K {
        ql: [0; QK_K / 2],
        qh: [0; QK_K / 4],
        scales: [0; QK_K / 16],
        d: f32_to_f16(0.0),
    };
    if max_abs_scale < GROUP_MAX_EPS {
        return b;
    }

    let iscale = -128.0 / max_scale;
    b.d = f32_to_f16(1.0 / iscale);
    for (s, &sc) in b.scales.iter_mut().zip(&scales) {
        *s = nearest_int(iscale * sc).min(127) as i8;
    }

    let d_all = f16_to_f32(b.d);
    for j in 0..QK_K / 16 {
        let d = d_all * b.scales[j] as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / d);
            l[16 * j + ii] = (clamp(q, -32, 31) + 32) as i8;
        }
    }

    for h in 0..QK_K / 128 {
        let lh = &l[128 * h..128 * h + 128];
        for i in 0..32 {
            let q = [
                lh[i] as u8,
                lh[i + 32] as u8,
                lh[i + 64] as u8,
                lh[i + 96] as u8,
            ];
            b.ql[64 * h + i] = (q[0] & 0xf) | ((q[2] & 0xf) << 4);
            b.ql[64 * h + i + 32] = (q[1] & 0xf) | ((q[3] & 0xf) << 4);
            b.qh[32 * h + i] =
                (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
        }
    }
    b
}

/// Dequantizes one Q6_K block: `y = d * scale * (q - 32)` per group of 16.
///
/// Element `128h + 32s + i` (half h, slot s in 0..4, i in 0..32): low 4 bits are nibble `s / 2`
/// of `ql[64h + 32(s % 2) + i]`, high 2 bits are bits `2s..2s+2` of `qh[32h + i]`.
pub fn dequantize_block_q6_k(b: &BlockQ6K, y: &mut [f32; QK_K]) {
    let d = f16_to_f32(b.d);
    for (i, y) in y.iter_mut().enumerate() {
        let (h, s, l) = (i / 128, (i / 32) % 4, i % 32);
        let low = (b.ql[64 * h + 32 * (s % 2) + l] >> (4 * (s / 2))) & 0xf;
        let high = (b.qh[32 * h + l] >> (2 * s)) & 3;
        let q = (low | (high << 4)) as i32 - 32;
        // ggml: `d * sc[is] * q`, evaluated left to right.
        *y = d * b.scales[i / 16] as f32 * q as f32;
    }
}

macro_rules! row_fns {
    ($(($qname:ident, $qblock:ident, $dname:ident, $dblock:ident, $B:ty, $tname:literal)),* $(,)?) => {$(
        #[doc = concat!("Quantizes a row to ", $tname, " blocks, like ggml's `quantize_row_", $tname, "_ref`.")]
        ///
        /// `x`: `[y.len() * 256]` values.
        ///
        /// # Panics
        /// If `x.len() != 256 * y.len()` ([`super::quantize_row_ref`] validates instead).
        pub fn $qname(x: &[f32], y: &mut [$B]) {
            quantize_blocks(x, y, $qblock);
        }

        #[doc = concat!("Dequantizes a row of ", $tname, " blocks into `y` (`[x.len() * 256]` values).")]
        ///
        /// # Panics
        /// If `y.len() != 256 * x.len()` ([`super::dequantize_row`] validates instead).
        pub fn $dname(x: &[$B], y: &mut [f32]) {
            dequantize_blocks(x, y, $dblock);
        }
    )*};
}

row_fns!(
    (
        quantize_row_q2_k_ref,
        quantize_block_q2_k_ref,
        dequantize_row_q2_k,
        dequantize_block_q2_k,
        BlockQ2K,
        "q2_K"
    ),
    (
        quantize_row_q3_k_ref,
        quantize_block_q3_k_ref,
        dequantize_row_q3_k,
        dequantize_block_q3_k,
        BlockQ3K,
        "q3_K"
    ),
    (
        quantize_row_q4_k_ref,
        quantize_block_q4_k_ref,
        dequantize_row_q4_k,
        dequantize_block_q4_k,
        BlockQ4K,
        "q4_K"
    ),
    (
        quantize_row_q5_k_ref,
        quantize_block_q5_k_ref,
        dequantize_row_q5_k,
        dequantize_block_q5_k,
        BlockQ5K,
        "q5_K"
    ),
    (
        quantize_row_q6_k_ref,
        quantize_block_q6_k_ref,
        dequantize_row_q6_k,
        dequantize_block_q6_k,
        BlockQ6K,
        "q6_K"
    ),
    (
        quantize_row_q8_k_ref,
        quantize_block_q8_k_ref,
        dequantize_row_q8_k,
        dequantize_block_q8_k,
        BlockQ8K,
        "q8_K"
    ),
);
