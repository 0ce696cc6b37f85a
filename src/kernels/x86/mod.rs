//! x86-64 kernels: AVX2 (+FMA, F16C) and AVX-512 (F/BW/VL, with or without VNNI).
//!
//! This is the only place that asks the CPU what it supports. A table is handed out only
//! after its features were detected, which is what the `// SAFETY:` comments on calls through
//! a [`Kernels`] table rely on.

use super::{Isa, Kernels};

/// Transposes an 8 × 8 matrix of f32 in registers: lane `k` of `out[l]` is lane `l` of `r[k]`.
/// Pairs of rows interleaved, then quads, then 128-bit halves. Shared by the batch scatter of
/// `matmul` and the key widening of the attention ops.
///
/// # Safety
/// The CPU supports AVX (callers are `#[target_feature]` functions with AVX2 enabled, into
/// which this inlines).
#[inline(always)]
pub(crate) unsafe fn transpose8_ps(
    r: [std::arch::x86_64::__m256; 8],
) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    // SAFETY: register-only AVX intrinsics; the caller guarantees AVX.
    unsafe {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0b01_00_01_00>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0b11_10_11_10>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0b01_00_01_00>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0b11_10_11_10>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0b01_00_01_00>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0b11_10_11_10>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0b01_00_01_00>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0b11_10_11_10>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }
}

/// Generates [`DotRowsFn`](super::DotRowsFn)s for kernels that dot a *group* of weight rows
/// against one activation row at once: `$dot::<R>(w: [*const u8; R], x: *const u8, nb) ->
/// [f32; R]` (const generic `R`, any extra generic arguments given in the path). Rows go in
/// groups of `$g`, the rest one at a time (`R = 1`); every kernel computes each row with the
/// same arithmetic whatever `R` is, so a row's result does not depend on the grouping (and
/// `dot_rows`, `vec_dot` and `matmul` agree bit for bit). With `features = "..."` the loop is
/// compiled with those target features so the `#[inline(always)]` kernels inline with them.
/// With `tiles = F`, calls with two or more activation rows go to `legacy_tiles::<F>` (in
/// scope where the macro is used), which computes every element with the same arithmetic.
macro_rules! group_rows_fns {
    (features = $feat:literal;
     $($name:ident: $dot:ident $(:: <$($gen:tt),*>)?, $wb:expr, $xb:expr, group = $g:literal
       $(, pf = $pf:path)? $(, tiles = $tf:ty)?;)*) => {$(
        /// Dot kernel over rows (see `DotRowsFn`).
        ///
        /// # Safety
        /// The CPU must support the target features this module is compiled for.
        pub(super) unsafe fn $name(
            w: &[u8],
            w_row_bytes: usize,
            x: &[u8],
            x_row_bytes: usize,
            out: &mut [f32],
            out_stride: usize,
        ) {
            /// The loop, with the kernel inlined under the target features.
            ///
            /// # Safety
            /// The features are available; `w` holds `rows` rows of `wrb` bytes, `x` `n_x`
            /// rows of `xrb` bytes, each `nb` blocks.
            #[target_feature(enable = $feat)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn run(
                w: &[u8],
                wrb: usize,
                x: &[u8],
                xrb: usize,
                out: &mut [f32],
                os: usize,
                (nb, rows, n_x): (usize, usize, usize),
            ) {
                $(
                    // Batches: rows × tokens tiles (each element the same bits as below).
                    if n_x >= 2 {
                        // SAFETY: the caller's contract, as below; features on.
                        unsafe { legacy_tiles::<$tf>(w, wrb, x, xrb, out, os, (nb, rows, n_x)) };
                        return;
                    }
                )?
                let mut r0 = 0;
                while r0 + $g <= rows {
                    for t in 0..n_x {
                        // SAFETY: rows `r0 .. r0 + $g` of `w` and row `t` of `x` are in
                        // bounds with `nb` blocks each (caller's contract); features on.
                        let o = unsafe {
                            $dot::<$($($gen,)*)? $g>(
                                std::array::from_fn(|k| w.as_ptr().add((r0 + k) * wrb)),
                                x.as_ptr().add(t * xrb),
                                nb,
                                $($pf(w.as_ptr(), r0 * wrb, $g * wrb, nb))?
                            )
                        };
                        for (k, v) in o.into_iter().enumerate() {
                            out[(r0 + k) * os + t] = v;
                        }
                    }
                    r0 += $g;
                }
                for r in r0..rows {
                    for t in 0..n_x {
                        // SAFETY: row `r` of `w` and row `t` of `x` are in bounds with `nb`
                        // blocks each; features on.
                        let [v] = unsafe {
                            $dot::<$($($gen,)*)? 1>(
                                [w.as_ptr().add(r * wrb)],
                                x.as_ptr().add(t * xrb),
                                nb,
                                $($pf(w.as_ptr(), r * wrb, wrb, nb))?
                            )
                        };
                        out[r * os + t] = v;
                    }
                }
            }
            let dims = $crate::kernels::check_rows(w, w_row_bytes, x, x_row_bytes, out, out_stride, $wb, $xb);
            // SAFETY: lengths checked above; the caller guarantees the CPU features.
            unsafe { run(w, w_row_bytes, x, x_row_bytes, out, out_stride, dims) }
        }
    )*};
}

/// Expands `$body` once for each `$r` in `0..R` (`R` a constant at most 8), so that per-row
/// state indexed by `$r` stays in registers (a plain `for` loop over the rows is not always
/// unrolled, which leaves the accumulators in memory).
macro_rules! unroll_rows {
    ($R:expr, |$r:ident| $body:block) => {
        unroll_rows!(@ $R, $r, $body, 0 1 2 3 4 5 6 7)
    };
    (@ $R:expr, $r:ident, $body:block, $($n:literal)*) => {{
        const { assert!($R <= 8, "unroll_rows! handles at most 8 rows") };
        $(
            if $n < $R {
                let $r: usize = $n;
                $body
            }
        )*
    }};
}

mod avx2;
mod avx512;
mod avx512_kdot;

/// AVX2 with FMA and F16C (every AVX2 CPU kiln targets has all three).
fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// AVX-512 F, BW and VL on top of [`has_avx2`].
fn has_avx512() -> bool {
    has_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
}

/// The table of `isa` if this CPU supports it.
pub(super) fn table(isa: Isa) -> Option<&'static Kernels> {
    match isa {
        Isa::Avx2 if has_avx2() => Some(&avx2::AVX2),
        Isa::Avx512 if has_avx512() => Some(&avx512::AVX512),
        Isa::Avx512Vnni if has_avx512() && is_x86_feature_detected!("avx512vnni") => {
            Some(if is_x86_feature_detected!("gfni") {
                &avx512::AVX512_VNNI_GFNI
            } else {
                &avx512::AVX512_VNNI
            })
        }
        _ => None,
    }
}

/// The SIMD kernels around every boundary of their loops: block counts across the scale
/// chunks (converted eight blocks at a time), row counts across the row groups (8, 4) and the single rows after them, and
/// several activation rows (as `matmul` calls them). Each output must be bit-identical to
/// the same table's one-row `vec_dot` (a row's arithmetic never depends on its group) and
/// within `1e-5 Σ |w| |x|` of the scalar reference.
#[cfg(test)]
mod tests {
    use super::super::{Isa, Kernels, vec_dot_type};
    use crate::GgmlType;
    use crate::quant::{dequantize_row, quantize_row_ref};

    /// splitmix64.
    struct Rng(u64);
    impl Rng {
        fn f32(&mut self) -> f32 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    fn quantized(t: GgmlType, n: usize, rng: &mut Rng) -> (Vec<u8>, Vec<f32>) {
        let row: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
        let mut q = vec![0u8; t.bytes_for(n as u64).unwrap() as usize];
        quantize_row_ref(t, &row, &mut q).unwrap();
        let mut deq = vec![0.0f32; n];
        dequantize_row(t, &q, &mut deq).unwrap();
        (q, deq)
    }

    /// The batch kernels (two or more activation rows: the rows × tokens tiles of the
    /// 32-element formats, the K-quant path batches) across their tile, chunk and pass
    /// boundaries, bit for bit against the scalar definitions.
    #[test]
    fn batch_kernels_equal_scalar() {
        use GgmlType::*;
        let tables: Vec<&Kernels> = [Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni]
            .into_iter()
            .filter_map(Kernels::for_isa)
            .collect();
        let scalar = Kernels::for_isa(Isa::Scalar).unwrap();
        let mut rng = Rng(7);
        type Pick = fn(&Kernels) -> super::super::DotRowsFn;
        let cases: [(GgmlType, Pick); 11] = [
            (Q4_0, |k| k.q4_0),
            (Q4_1, |k| k.q4_1),
            (Q5_0, |k| k.q5_0),
            (Q5_1, |k| k.q5_1),
            (Q8_0, |k| k.q8_0),
            (IQ4_NL, |k| k.paths.iq4_nl_tinyblas),
            (Q4_K, |k| k.paths.q4_k_gemv),
            (Q4_K, |k| k.paths.q4_k_gemm),
            (Q4_K, |k| k.paths.q4_k_tiled),
            (Q5_K, |k| k.paths.q5_k_tiled),
            (Q6_K, |k| k.paths.q6_k_tiled),
        ];
        for (t, pick) in cases {
            let act = vec_dot_type(t);
            let nbs: &[usize] = if t.block_size() == 256 {
                &[1, 8, 9, 17]
            } else {
                &[1, 7, 8, 9, 33, 41]
            };
            for &nb in nbs {
                let n = nb * t.block_size();
                for (rows, n_x) in [(3, 2), (5, 7), (17, 9), (2, 70)] {
                    let w: Vec<u8> = (0..rows)
                        .flat_map(|_| quantized(t, n, &mut rng).0)
                        .collect();
                    let x: Vec<u8> = (0..n_x)
                        .flat_map(|_| quantized(act, n, &mut rng).0)
                        .collect();
                    let (rb, xrb) = (w.len() / rows, x.len() / n_x);
                    let os = n_x + 1;
                    let mut want = vec![f32::NAN; rows * os];
                    // SAFETY: the scalar table runs everywhere; the sizes match.
                    unsafe { pick(scalar)(&w, rb, &x, xrb, &mut want, os) };
                    for k in &tables {
                        let mut got = vec![f32::NAN; rows * os];
                        // SAFETY: the table exists, so the CPU runs its ISA; the sizes match.
                        unsafe { pick(k)(&w, rb, &x, xrb, &mut got, os) };
                        for r in 0..rows {
                            for j in 0..os {
                                let (g, e) = (got[r * os + j], want[r * os + j]);
                                assert_eq!(
                                    g.to_bits(),
                                    e.to_bits(),
                                    "{} {t} nb {nb} rows {rows} n_x {n_x}: [{r}][{j}] {g} vs {e}",
                                    k.isa()
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_loop_boundary() {
        use GgmlType::*;
        let mut tables: Vec<&Kernels> = [Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni]
            .into_iter()
            .filter_map(Kernels::for_isa)
            .collect();
        // The VNNI table without GFNI, which `for_isa` hands out only on CPUs without GFNI.
        if super::has_avx512() && is_x86_feature_detected!("avx512vnni") {
            tables.push(&super::avx512::AVX512_VNNI);
        }
        let scalar = Kernels::for_isa(Isa::Scalar).unwrap();
        let mut rng = Rng(42);
        let legacy_nb: Vec<usize> = (1..=41).chain([63, 64, 65, 71]).collect();
        let k_nb: Vec<usize> = (1..=7).collect();
        for t in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q4_K, Q5_K, Q6_K] {
            let act = vec_dot_type(t);
            let nbs = if t.block_size() == 256 {
                &k_nb
            } else {
                &legacy_nb
            };
            for &nb in nbs {
                let n = nb * t.block_size();
                let rows = if nb % 3 == 0 { 13 } else { 11 };
                let (mut w, mut wd) = (Vec::new(), Vec::new());
                for _ in 0..rows {
                    let (q, d) = quantized(t, n, &mut rng);
                    w.extend(q);
                    wd.push(d);
                }
                let rb = w.len() / rows;
                let n_x = 3;
                let (mut x, mut xd) = (Vec::new(), Vec::new());
                for _ in 0..n_x {
                    let (q, d) = quantized(act, n, &mut rng);
                    x.extend(q);
                    xd.push(d);
                }
                let xrb = x.len() / n_x;
                for k in &tables {
                    let f = k.dot_fn(t).unwrap();
                    let mut out = vec![f32::NAN; rows * n_x];
                    // SAFETY: the table exists, so the CPU runs its ISA; the sizes match.
                    unsafe { f(&w, rb, &x, xrb, &mut out, n_x) };
                    for r in 0..rows {
                        for j in 0..n_x {
                            let (wr, xr) = (&w[r * rb..][..rb], &x[j * xrb..][..xrb]);
                            let one = k.vec_dot(t, n, wr, xr).unwrap();
                            let got = out[r * n_x + j];
                            let isa = k.isa();
                            assert_eq!(got.to_bits(), one.to_bits(), "{isa} {t} nb {nb} row {r}");
                            let want = scalar.vec_dot(t, n, wr, xr).unwrap();
                            let mag: f64 = wd[r]
                                .iter()
                                .zip(&xd[j])
                                .map(|(a, b)| (*a as f64 * *b as f64).abs())
                                .sum();
                            let err = (got as f64 - want as f64).abs();
                            assert!(
                                err <= 1e-5 * mag + 1e-30,
                                "{isa} {t} nb {nb} row {r}: {got} vs {want} (mag {mag})"
                            );
                        }
                    }
                }
            }
        }
    }
}
