//! Softmax and log-softmax over logits.

/// Softmax in place: `x[i] = exp(x[i] - max) / sum`. The sum is accumulated in `f64`.
/// An empty slice is left unchanged.
pub fn softmax_inplace(x: &mut [f32]) {
    let Some(max) = max(x) else { return };
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// The maximum of `x` (`None` when empty). NaNs are ignored unless everything is NaN.
pub fn max(x: &[f32]) -> Option<f32> {
    let (&first, rest) = x.split_first()?;
    Some(
        rest.iter()
            .fold(first, |m, &v| if v > m || m.is_nan() { v } else { m }),
    )
}

/// `log(sum(exp(x)))`, computed as llama.cpp's perplexity tool does: the maximum subtracted,
/// each `exp` in `f32`, the sum in `f64`. Returns `(max, log(sum(exp(x - max))))`, so that
/// `log_softmax(x)[i] = x[i] - max - lse`. `None` for an empty slice.
pub fn log_sum_exp(x: &[f32]) -> Option<(f32, f64)> {
    let m = max(x)?;
    let mut sum = 0.0f64;
    for &v in x {
        sum += f64::from((v - m).exp());
    }
    Some((m, sum.ln()))
}

/// `log_softmax(x)[i]`, in `f64` (see [`log_sum_exp`]). `None` when `i` is out of range.
pub fn log_softmax_at(x: &[f32], i: usize) -> Option<f64> {
    let xi = *x.get(i)?;
    let (m, lse) = log_sum_exp(x)?;
    Some(f64::from(xi - m) - lse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_orders() {
        let mut x = [1.0f32, 2.0, 3.0, -1000.0];
        softmax_inplace(&mut x);
        let s: f32 = x.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert!(x[2] > x[1] && x[1] > x[0] && x[3] == 0.0);
        assert!((x[2] / x[1] - std::f32::consts::E).abs() < 1e-4);
    }

    #[test]
    fn log_softmax_matches_definition() {
        let x = [0.5f32, -2.0, 4.0, 1.0];
        let z: f64 = x.iter().map(|&v| f64::from(v).exp()).sum();
        for i in 0..4 {
            let want = f64::from(x[i]) - z.ln();
            assert!((log_softmax_at(&x, i).unwrap() - want).abs() < 1e-6);
        }
        assert!(log_softmax_at(&x, 4).is_none());
        assert!(log_sum_exp(&[]).is_none());
    }

    #[test]
    fn large_logits_do_not_overflow() {
        let x = [1000.0f32, 1000.0];
        assert!((log_softmax_at(&x, 0).unwrap() + std::f64::consts::LN_2).abs() < 1e-9);
    }
}
