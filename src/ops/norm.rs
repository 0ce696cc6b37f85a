//! RMS normalization, as ggml computes it (`ggml_rms_norm` followed by `ggml_mul` by the weight).

/// RMS-normalizes `x` in place and multiplies by `w`: `x[i] = (x[i] * scale) * w[i]` with
/// `scale = 1 / sqrt(mean(x²) + eps)`.
///
/// The sum of squares is accumulated in `f64` like ggml's `ggml_float`, so the result matches
/// llama.cpp's to the last bit or two. `x` and `w` have the same length (the row length).
///
/// # Panics
/// If `x.len() != w.len()` (a programming error: shapes are checked when the model loads).
pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    assert_eq!(x.len(), w.len(), "rms_norm: row and weight lengths differ");
    let scale = rms_scale(x, eps);
    for (v, &g) in x.iter_mut().zip(w) {
        *v = (*v * scale) * g;
    }
}

/// RMS-normalizes `x` into `out` and multiplies by `w` (see [`rms_norm_inplace`]).
///
/// # Panics
/// If the three lengths differ.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    assert_eq!(x.len(), w.len(), "rms_norm: row and weight lengths differ");
    assert_eq!(
        x.len(),
        out.len(),
        "rms_norm: row and output lengths differ"
    );
    let scale = rms_scale(x, eps);
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * g;
    }
}

/// Applies [`rms_norm_inplace`] to each row of `x` (`[n_rows][w.len()]`).
///
/// # Panics
/// If `x.len()` is not a multiple of `w.len()`, or `w` is empty.
pub fn rms_norm_rows_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    assert!(
        !w.is_empty() && x.len().is_multiple_of(w.len()),
        "rms_norm: bad row count"
    );
    for row in x.chunks_exact_mut(w.len()) {
        rms_norm_inplace(row, w, eps);
    }
}

/// Applies [`rms_norm`] to each row: `x` and `out` are `[n_rows][w.len()]`.
///
/// # Panics
/// If the lengths are not whole rows of `w.len()` or differ.
pub fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    assert!(
        !w.is_empty() && x.len().is_multiple_of(w.len()),
        "rms_norm: bad row count"
    );
    assert_eq!(
        x.len(),
        out.len(),
        "rms_norm: input and output lengths differ"
    );
    for (row, o) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        rms_norm(row, w, eps, o);
    }
}

/// `1 / sqrt(mean(x²) + eps)`, the sum of squares in `f64` (ggml's `ggml_float`).
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let mut sum = 0.0f64;
    for &v in x {
        sum += f64::from(v * v);
    }
    let mean = (sum / x.len().max(1) as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_rms_after_norm() {
        let mut x: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) * 0.37).collect();
        let w = vec![1.0f32; 64];
        rms_norm_inplace(&mut x, &w, 0.0);
        let ms: f32 = x.iter().map(|v| v * v).sum::<f32>() / 64.0;
        assert!((ms - 1.0).abs() < 1e-5, "{ms}");
    }

    #[test]
    fn weight_and_eps() {
        let x = [3.0f32, 4.0];
        let w = [2.0f32, 0.5];
        let mut out = [0.0f32; 2];
        // mean(x²) = 12.5; eps = 3.5 -> scale = 1/4
        rms_norm(&x, &w, 3.5, &mut out);
        assert_eq!(out, [1.5, 0.5]);
        let mut rows = [3.0f32, 4.0, 6.0, 8.0];
        rms_norm_rows_inplace(&mut rows, &[1.0, 1.0], 0.0);
        let s = (12.5f32).sqrt();
        assert!((rows[0] - 3.0 / s).abs() < 1e-6 && (rows[3] - 8.0 / (2.0 * s)).abs() < 1e-6);
    }

    #[test]
    fn zero_row_stays_finite() {
        let mut x = [0.0f32; 8];
        rms_norm_inplace(&mut x, &[1.0; 8], 1e-6);
        assert!(x.iter().all(|v| *v == 0.0));
    }
}
