//! Rotary position embeddings (RoPE), computed as ggml's `ggml_rope_ext` does without YaRN.
//!
//! For a position `p`, pair `i` (of `n_rot / 2`) is rotated by
//! `theta_i = freq_scale * (p * base^(-2i / n_rot)) / freq_factor_i`. Like ggml, the per-pair
//! angle is built by repeated multiplication (`theta *= base^(-2/n_rot)`) in `f32`, and
//! `cos`/`sin` are `f32`, so the rotation matches llama.cpp's bit for bit or nearly.

use crate::kernels::Isa;
use crate::ops::Simd;

/// Which elements form a rotated pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeMode {
    /// Adjacent elements `(2i, 2i + 1)` (llama's "normal" mode).
    Normal,
    /// Elements `i` and `i + n_rot / 2` (GPT-NeoX style; gemma, qwen2, phi3 ...).
    Neox,
}

/// The parameters of one RoPE application.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeParams {
    /// Number of rotated dimensions at the start of each head (even, `<=` head size).
    pub n_rot: usize,
    /// Frequency base (`rope.freq_base`).
    pub base: f32,
    /// Linear position scale (`1 / rope.scaling.factor`, 1 when unscaled).
    pub freq_scale: f32,
    /// Pairing of rotated elements.
    pub mode: RopeMode,
}

/// Fills `cache` (`[n_rot]`: `cos, sin` per pair) with the rotation of position `pos`.
///
/// `freq_factors` (`[n_rot / 2]`, from a `rope_freqs` tensor) divide the angle of each pair.
///
/// # Panics
/// If `cache.len() != p.n_rot`, `n_rot` is odd, or `freq_factors` has the wrong length.
pub fn rope_cache(pos: usize, p: &RopeParams, freq_factors: Option<&[f32]>, cache: &mut [f32]) {
    assert!(
        p.n_rot.is_multiple_of(2) && cache.len() == p.n_rot,
        "rope: bad cache length"
    );
    if let Some(ff) = freq_factors {
        assert_eq!(ff.len(), p.n_rot / 2, "rope: bad freq_factors length");
    }
    let theta_scale = p.base.powf(-2.0 / p.n_rot as f32);
    let mut theta = pos as f32;
    for (i, cs) in cache.chunks_exact_mut(2).enumerate() {
        let ff = freq_factors.map_or(1.0, |f| f[i]);
        let angle = p.freq_scale * (theta / ff);
        cs[0] = angle.cos();
        cs[1] = angle.sin();
        theta *= theta_scale;
    }
}

/// Rotates the first `n_rot` elements of one head in place with a cache from [`rope_cache`].
/// Elements past `n_rot` are left unchanged.
///
/// # Panics
/// If `head.len() < cache.len()`.
pub fn rope_apply(head: &mut [f32], cache: &[f32], mode: RopeMode) {
    rope(Simd::selected(), head, cache, mode);
}

/// [`rope_apply`] with the code for `isa` (the scalar code if this CPU cannot run it, or the
/// ops have no code for it). For tests and benchmarks: every ISA gives the same bits.
///
/// # Panics
/// If `head.len() < cache.len()` or `cache.len()` is odd.
pub fn rope_apply_with(isa: Isa, head: &mut [f32], cache: &[f32], mode: RopeMode) {
    rope(Simd::for_isa(isa), head, cache, mode);
}

fn rope(simd: Simd, head: &mut [f32], cache: &[f32], mode: RopeMode) {
    let n_rot = cache.len();
    assert!(head.len() >= n_rot, "rope: head shorter than n_rot");
    assert!(n_rot.is_multiple_of(2), "rope: odd n_rot");
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx2 {
        // SAFETY: `Simd::Avx2` is only chosen for an x86 kernel table, which this CPU runs and
        // which requires AVX2, FMA and F16C.
        unsafe {
            match mode {
                RopeMode::Normal => super::x86::rope_normal(head, cache),
                RopeMode::Neox => super::x86::rope_neox(head, cache),
            }
        }
        return;
    }
    let _ = simd;
    match mode {
        RopeMode::Normal => {
            for (pair, cs) in head[..n_rot].chunks_exact_mut(2).zip(cache.chunks_exact(2)) {
                let (x0, x1) = (pair[0], pair[1]);
                (pair[0], pair[1]) = rotate(x0, x1, cs[0], cs[1]);
            }
        }
        RopeMode::Neox => {
            let half = n_rot / 2;
            let (lo, hi) = head[..n_rot].split_at_mut(half);
            for ((a, b), cs) in lo.iter_mut().zip(hi.iter_mut()).zip(cache.chunks_exact(2)) {
                let (x0, x1) = (*a, *b);
                (*a, *b) = rotate(x0, x1, cs[0], cs[1]);
            }
        }
    }
}

/// One rotated pair, `(x0 cos - x1 sin, x0 sin + x1 cos)`, rounded as llama.cpp's x86 build
/// computes it (its compiler contracts each line to one fused multiply-add:
/// `fma(x0, cos, -(x1 sin))`, `fma(x0, sin, x1 cos)`), so keys and queries round to the same
/// `f16` values in the cache.
#[inline]
fn rotate(x0: f32, x1: f32, cos: f32, sin: f32) -> (f32, f32) {
    (x0.mul_add(cos, -(x1 * sin)), x0.mul_add(sin, x1 * cos))
}

/// Rotates every head of a row (`[n_heads][head_dim]`) with the same cache.
///
/// # Panics
/// If `row.len()` is not a multiple of `head_dim` or `head_dim < cache.len()`.
pub fn rope_apply_heads(row: &mut [f32], head_dim: usize, cache: &[f32], mode: RopeMode) {
    assert!(
        head_dim > 0 && row.len().is_multiple_of(head_dim),
        "rope: bad row length"
    );
    for head in row.chunks_exact_mut(head_dim) {
        rope_apply(head, cache, mode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mode: RopeMode) -> RopeParams {
        RopeParams {
            n_rot: 8,
            base: 10000.0,
            freq_scale: 1.0,
            mode,
        }
    }

    #[test]
    fn position_zero_is_identity() {
        let mut cache = [0.0f32; 8];
        rope_cache(0, &params(RopeMode::Normal), None, &mut cache);
        let mut x: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let orig = x.clone();
        rope_apply(&mut x, &cache, RopeMode::Normal);
        assert_eq!(x, orig);
    }

    #[test]
    fn normal_pairs_rotate_by_position() {
        let p = params(RopeMode::Normal);
        let mut cache = [0.0f32; 8];
        rope_cache(3, &p, None, &mut cache);
        // pair 0 has theta = 3 exactly
        assert_eq!(cache[0], 3.0f32.cos());
        assert_eq!(cache[1], 3.0f32.sin());
        let mut x = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, -1.0, 5.0];
        rope_apply(&mut x, &cache, RopeMode::Normal);
        assert!((x[0] - 3.0f32.cos()).abs() < 1e-7 && (x[1] - 3.0f32.sin()).abs() < 1e-7);
        // rotation preserves each pair's norm; the element past n_rot is untouched
        assert!(((x[2] * x[2] + x[3] * x[3]) - 1.0).abs() < 1e-6);
        assert!(((x[6] * x[6] + x[7] * x[7]) - 5.0).abs() < 1e-5);
        assert_eq!(x[8], 5.0);
    }

    #[test]
    fn neox_pairs_halves() {
        let p = params(RopeMode::Neox);
        let mut cache = [0.0f32; 8];
        rope_cache(1, &p, None, &mut cache);
        let mut x = [1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        rope_apply(&mut x, &cache, RopeMode::Neox);
        // element 0 pairs with element 4 at theta = 1
        assert!((x[0] - 1.0f32.cos()).abs() < 1e-7);
        assert!((x[4] - 1.0f32.sin()).abs() < 1e-7);
        assert_eq!(&x[1..4], &[0.0; 3]);
    }

    #[test]
    fn freq_factors_and_scale_divide_the_angle() {
        let mut p = params(RopeMode::Normal);
        let mut a = [0.0f32; 8];
        let mut b = [0.0f32; 8];
        rope_cache(10, &p, Some(&[2.0, 1.0, 1.0, 1.0]), &mut a);
        p.freq_scale = 0.5;
        rope_cache(10, &p, None, &mut b);
        assert_eq!(a[0], b[0]);
        assert_eq!(a[1], b[1]);
        assert_ne!(a[2], b[2]);
    }

    #[test]
    fn relative_positions_dot_product() {
        // <rope(q, m), rope(k, n)> depends only on m - n
        let p = RopeParams {
            n_rot: 16,
            base: 500.0,
            freq_scale: 1.0,
            mode: RopeMode::Neox,
        };
        let q: Vec<f32> = (0..16).map(|i| (i as f32 * 0.7).sin()).collect();
        let k: Vec<f32> = (0..16).map(|i| (i as f32 * 1.3).cos()).collect();
        let dot = |m: usize, n: usize| {
            let mut c = [0.0f32; 16];
            let (mut qq, mut kk) = (q.clone(), k.clone());
            rope_cache(m, &p, None, &mut c);
            rope_apply(&mut qq, &c, p.mode);
            rope_cache(n, &p, None, &mut c);
            rope_apply(&mut kk, &c, p.mode);
            qq.iter().zip(&kk).map(|(a, b)| a * b).sum::<f32>()
        };
        assert!((dot(7, 3) - dot(14, 10)).abs() < 1e-4);
    }
}
