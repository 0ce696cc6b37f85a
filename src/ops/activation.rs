//! Activation functions of the feed-forward blocks.
//!
//! GELU follows ggml's CPU backend exactly: ggml evaluates the tanh approximation through a
//! table indexed by the input rounded to `f16` and stores the result as `f16`
//! (`GGML_GELU_FP16`), so kiln does the same to match llama.cpp's numbers.

use std::sync::OnceLock;

use half::f16;

use crate::kernels::Isa;
use crate::ops::Simd;

/// `sqrt(2 / pi)`, as ggml spells it.
#[allow(clippy::excessive_precision)]
const SQRT_2_OVER_PI: f32 = 0.797_884_560_802_865_355_879_892_119_868_76;
/// The cubic coefficient of the tanh approximation.
const GELU_COEF_A: f32 = 0.044715;

/// SiLU: `x / (1 + exp(-x))`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU, tanh approximation, in full `f32`:
/// `0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x²)))`, rounded as llama.cpp's x86 build computes
/// ggml's `ggml_gelu_f32` (its compiler contracts `1 + (0.044715 x) x` into one fused
/// multiply-add; `tanh` is the C library's `tanhf`, as Rust's `f32::tanh` on Linux).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (GELU_COEF_A * x).mul_add(x, 1.0)).tanh())
}

/// GELU as ggml's CPU backend computes it: 0 below -10, the identity above 10, otherwise
/// [`gelu_tanh`] of the input rounded to `f16`, rounded to `f16`.
#[inline]
pub fn gelu_tanh_f16(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        let t = gelu_table();
        f16::from_bits(t[usize::from(f16::from_f32(x).to_bits())]).to_f32()
    }
}

/// The 65536-entry GELU table over every `f16` input (built once, 128 KiB).
fn gelu_table() -> &'static [u16; 65536] {
    static TABLE: OnceLock<Box<[u16; 65536]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([0u16; 65536]);
        for (bits, e) in (0..=u16::MAX).zip(t.iter_mut()) {
            *e = f16::from_f32(gelu_tanh(f16::from_bits(bits).to_f32())).to_bits();
        }
        t
    })
}

/// `exp(x)` as ggml's vectorised `ggml_v_expf` computes it in llama.cpp's AVX-512 build
/// (a degree-5 polynomial on `x - n ln2`, scaled by `2^n`): not correctly rounded, but it is
/// what llama.cpp's SiLU uses, so kiln rounds the same way on every CPU.
#[inline(always)]
pub fn expf_ggml(x: f32) -> f32 {
    const R: f32 = 12_582_912.0; // 0x1.8p23
    let z = x.mul_add(f32::from_bits(0x3fb8_aa3b), R); // log2(e)
    let n = z - R;
    let b = (-n).mul_add(
        f32::from_bits(0x35bf_be8e),                  // 0x1.7f7d1cp-20
        (-n).mul_add(f32::from_bits(0x3f31_7200), x), // 0x1.62e4p-1
    );
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    let u = b * b;
    let j = f32::from_bits(0x3c07_2010) // 0x1.0e4020p-7
        .mul_add(b, f32::from_bits(0x3d2b_9f17)) // 0x1.573e2ep-5
        .mul_add(
            u,
            f32::from_bits(0x3e2a_af33).mul_add(b, f32::from_bits(0x3eff_fedb)), // 0x1.555e66p-3, 0x1.fffdb6p-2
        )
        .mul_add(u, f32::from_bits(0x3f7f_fff6).mul_add(b, 1.0)); // 0x1.ffffecp-1
    // `_mm512_scalef_ps(j, n)`: j · 2^n with one rounding (the f64 product is exact). `n` is an
    // integer in -192..=192 here (or NaN, and then so is `j`): 2^n is built from its bits.
    (f64::from(j) * pow2_f64(n)) as f32
}

/// `2^n` for an integer `n` in `-1022..=1023` (exact); `1.0` for NaN.
#[inline(always)]
fn pow2_f64(n: f32) -> f64 {
    f64::from_bits(((n as i64 + 1023) as u64) << 52)
}

/// SiLU as llama.cpp's AVX-512 build computes it: `x / (1 + expf_ggml(-x))`.
#[inline(always)]
pub fn silu_ggml(x: f32) -> f32 {
    x / (1.0 + expf_ggml(0.0 - x))
}

/// SwiGLU in place: `gate[i] = silu(gate[i]) * up[i]`, rounded as llama.cpp computes it
/// ([`silu_ggml`]).
///
/// # Panics
/// If the lengths differ.
pub fn swiglu_inplace(gate: &mut [f32], up: &[f32]) {
    swiglu(Simd::selected(), gate, up);
}

/// [`swiglu_inplace`] with the code for `isa` (the scalar code if this CPU cannot run it, or
/// the ops have no code for it). For tests and benchmarks: every ISA gives the same bits.
///
/// # Panics
/// If the lengths differ.
pub fn swiglu_inplace_with(isa: Isa, gate: &mut [f32], up: &[f32]) {
    swiglu(Simd::for_isa(isa), gate, up);
}

fn swiglu(simd: Simd, gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "swiglu: lengths differ");
    match simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Simd::Avx2` is only chosen for an x86 kernel table, which this CPU runs and
        // which requires AVX2, FMA and F16C.
        Simd::Avx2 => unsafe { super::x86::swiglu(gate, up) },
        Simd::Scalar => {
            for (g, &u) in gate.iter_mut().zip(up) {
                *g = silu_ggml(*g) * u;
            }
        }
    }
}

/// GeGLU in place (ggml's f16-table GELU): `gate[i] = gelu(gate[i]) * up[i]`.
///
/// # Panics
/// If the lengths differ.
pub fn geglu_inplace(gate: &mut [f32], up: &[f32]) {
    geglu(Simd::selected(), gate, up);
}

/// [`geglu_inplace`] with the code for `isa` (the scalar code if this CPU cannot run it, or
/// the ops have no code for it). For tests and benchmarks: every ISA gives the same bits.
///
/// # Panics
/// If the lengths differ.
pub fn geglu_inplace_with(isa: Isa, gate: &mut [f32], up: &[f32]) {
    geglu(Simd::for_isa(isa), gate, up);
}

fn geglu(simd: Simd, gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "geglu: lengths differ");
    match simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Simd::Avx2` is only chosen for an x86 kernel table, which this CPU runs and
        // which requires AVX2, FMA and F16C.
        Simd::Avx2 => unsafe { super::x86::geglu(gate, up, gelu_table()) },
        Simd::Scalar => {
            for (g, &u) in gate.iter_mut().zip(up) {
                // As ggml's `ggml_vec_geglu_f32`: a plain `+0.0` below -10 (not `0 · up`,
                // which would be `-0.0` for a negative `up`).
                *g = if *g <= -10.0 {
                    0.0
                } else {
                    gelu_tanh_f16(*g) * u
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silu_values() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
        assert!((silu(-20.0)).abs() < 1e-7);
        let mut g = [1.0f32, 2.0];
        swiglu_inplace(&mut g, &[2.0, 0.5]);
        assert_eq!(g, [silu_ggml(1.0) * 2.0, silu_ggml(2.0) * 0.5]);
        assert!((g[0] - 2.0 * silu(1.0)).abs() < 1e-6 && (g[1] - 0.5 * silu(2.0)).abs() < 1e-6);
        assert_eq!(silu_ggml(0.0), 0.0);
        assert!(silu_ggml(-200.0) == 0.0 && silu_ggml(200.0) == 200.0);
    }

    #[test]
    fn ggml_expf_is_within_three_ulp() {
        // ggml documents 1.45 ulp for its polynomial, plus the final roundings; a dense sweep.
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = expf_ggml(x) as f64;
            let ulp = (want as f32).next_up() as f64 - want as f32 as f64;
            assert!(
                (got - want).abs() <= 3.0 * ulp,
                "x={x} got={got} want={want}"
            );
            x += 0.0137;
        }
        // Subnormal results, underflow, overflow and the limits.
        assert!(expf_ggml(-100.0) > 0.0 && expf_ggml(-100.0) < f32::MIN_POSITIVE);
        assert_eq!(expf_ggml(-200.0), 0.0);
        assert_eq!(expf_ggml(200.0), f32::INFINITY);
        assert_eq!(expf_ggml(0.0), 1.0);
        assert!(expf_ggml(f32::NEG_INFINITY) == 0.0 && expf_ggml(f32::INFINITY).is_infinite());
    }

    #[test]
    fn pow2_is_exp2_on_every_exponent_expf_uses() {
        for n in -192..=192 {
            let n = n as f32;
            assert_eq!(pow2_f64(n).to_bits(), f64::from(n).exp2().to_bits(), "{n}");
        }
    }

    #[test]
    fn gelu_values() {
        assert_eq!(gelu_tanh(0.0), 0.0);
        // reference values of the tanh approximation
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
        assert!((gelu_tanh(-1.0) + 0.158_808).abs() < 1e-5);
        assert_eq!(gelu_tanh_f16(-12.0), 0.0);
        assert_eq!(gelu_tanh_f16(12.5), 12.5);
        // the f16 path is within f16 precision of the exact one: the output rounding plus the
        // input rounding (|x| 2^-11) times the slope (at most 1.13)
        for i in -900..900 {
            let x = i as f32 * 0.011;
            let (a, b) = (gelu_tanh(x), gelu_tanh_f16(x));
            let tol = a.abs() / 1024.0 + 1.13 * x.abs() / 2048.0 + 1e-7;
            assert!((a - b).abs() <= tol, "{x}: {a} vs {b}");
        }
        // and is exactly an f16 value
        let v = gelu_tanh_f16(0.3);
        assert_eq!(f16::from_f32(v).to_f32(), v);
    }

    #[test]
    fn geglu_multiplies() {
        let mut g = [0.5f32, -0.25];
        geglu_inplace(&mut g, &[3.0, 2.0]);
        assert_eq!(g[0], gelu_tanh_f16(0.5) * 3.0);
        assert_eq!(g[1], gelu_tanh_f16(-0.25) * 2.0);
        // below -10 the result is +0.0 whatever the sign of `up`, as in ggml
        let mut g = [-11.0f32];
        geglu_inplace(&mut g, &[-2.0]);
        assert_eq!(g[0].to_bits(), 0);
    }

    /// An entry of ggml's GELU table (llama.cpp x86 build) that only the fused `1 + (a x) x`
    /// reproduces: the unfused f32 expression rounds to the neighbouring f16.
    #[test]
    fn gelu_table_rounds_like_llama_cpp() {
        let x = f16::from_bits(0xbfff).to_f32(); // -1.9990234375
        assert_eq!(f16::from_f32(gelu_tanh_f16(x)).to_bits(), 0xa9d3);
        assert_eq!(f16::from_bits(0xa9d3).to_f32(), gelu_tanh_f16(x));
    }
}
