//! The SIMD versions of the row-wise ops (flash attention, SwiGLU, GeGLU, RoPE) give exactly the
//! scalar code's bits, on every ISA this CPU runs, for random inputs: several head sizes
//! (including ones with SIMD tails), key ranges with and without a sliding window, batches
//! around the tiled kernel's threshold, and the exp polynomial's edge regions.

use kiln::GgmlType;
use kiln::kernels::{Isa, available_isas};
use kiln::kv_cache::KvCache;
use kiln::ops::activation::{geglu_inplace_with, swiglu_inplace_with};
use kiln::ops::flash::{TILED_MIN_QUERIES, attend_one_chunk_f16_with, attend_tiled_f16_many_with};
use kiln::ops::rope::{RopeMode, RopeParams, rope_apply_with, rope_cache};

/// xorshift32 floats in `[-1, 1)`.
struct Rng(u32);

impl Rng {
    fn new(seed: u32) -> Rng {
        Rng(seed.wrapping_mul(2_654_435_761) | 1)
    }
    fn next(&mut self) -> f32 {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        self.0 = s;
        (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.next() + 1.0) * 0.5 * n as f32) as usize % n.max(1)
    }
    fn vec(&mut self, n: usize, amp: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * amp).collect()
    }
}

/// The SIMD ISAs to compare with the scalar code (every one this CPU runs).
fn simd_isas() -> Vec<Isa> {
    let isas: Vec<Isa> = available_isas()
        .into_iter()
        .filter(|&i| i != Isa::Scalar)
        .collect();
    eprintln!("comparing {isas:?} with scalar");
    isas
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// A one-layer f16 cache of `n_ctx` positions and 2 KV heads filled with random rows (`amp`
/// scales the keys, so scores spread widely).
fn cache(seed: u32, n_ctx: usize, dk: usize, dv: usize, amp: f32) -> KvCache {
    let mut c = KvCache::new(GgmlType::F16, 1, n_ctx, 2, dk, dv).unwrap();
    let mut r = Rng::new(seed);
    for pos in 0..n_ctx {
        let k = r.vec(2 * dk, amp);
        let v = r.vec(2 * dv, 1.0);
        c.store(0, pos, &k, &v).unwrap();
    }
    c
}

/// Head sizes: the models' (64, 256), mixed, and ones leaving SIMD tails (a dot product with an
/// f64 tail, value rows that are not whole vectors).
const HEADS: [(usize, usize); 7] = [
    (64, 64),
    (256, 256),
    (128, 64),
    (72, 40),
    (20, 12),
    (96, 100),
    (200, 36),
];

#[test]
fn one_chunk_attention_is_exact() {
    let isas = simd_isas();
    let n_ctx = 150;
    for (hi, &(dk, dv)) in HEADS.iter().enumerate() {
        for amp in [1.0f32, 8.0] {
            let c = cache(hi as u32 + 1, n_ctx, dk, dv, amp);
            let layer = c.layer(0);
            let mut r = Rng::new(77 + hi as u32);
            for case in 0..24 {
                let q = r.vec(dk, 2.0);
                let end = 1 + r.below(n_ctx);
                // sliding windows, single keys, and the whole prefix
                let start = match case % 3 {
                    0 => 0,
                    1 => end - 1,
                    _ => end.saturating_sub(1 + r.below(40)),
                };
                let scale = 1.0 / (dk as f32).sqrt();
                let head = case % 2;
                let mut want = vec![0.0f32; dv];
                attend_one_chunk_f16_with(
                    Isa::Scalar,
                    &q,
                    &layer,
                    head,
                    start..end,
                    scale,
                    &mut want,
                );
                assert!(want.iter().all(|x| x.is_finite()));
                for &isa in &isas {
                    let mut got = vec![f32::NAN; dv];
                    attend_one_chunk_f16_with(isa, &q, &layer, head, start..end, scale, &mut got);
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{isa:?} dk={dk} dv={dv} keys {start}..{end}"
                    );
                }
            }
            // no keys: zeros
            let mut got = vec![f32::NAN; dv];
            attend_one_chunk_f16_with(Isa::Scalar, &vec![0.5; dk], &layer, 0, 3..3, 1.0, &mut got);
            assert!(got.iter().all(|x| x.to_bits() == 0));
        }
    }
}

#[test]
fn tiled_attention_is_exact() {
    let isas = simd_isas();
    let n_ctx = 200;
    for (hi, &(dk, dv)) in HEADS.iter().enumerate() {
        for amp in [1.0f32, 30.0] {
            let c = cache(100 + hi as u32, n_ctx, dk, dv, amp);
            let layer = c.layer(0);
            let mut r = Rng::new(500 + hi as u32);
            for nq in [
                1,
                TILED_MIN_QUERIES - 1,
                TILED_MIN_QUERIES,
                TILED_MIN_QUERIES + 1,
            ] {
                // A batch of nq consecutive tokens at pos0.., causal, perhaps with a window.
                let pos0 = r.below(n_ctx - nq + 1);
                let window = [None, Some(1), Some(17), Some(70)][r.below(4)];
                let qs: Vec<Vec<f32>> = (0..nq).map(|_| r.vec(dk, 1.5)).collect();
                let range = |i: usize| {
                    let pos = pos0 + i;
                    window.map_or(0, |w| (pos + 1).saturating_sub(w))..pos + 1
                };
                let query = |i: usize| (&qs[i][..], range(i));
                let scale = 1.0 / (dk as f32).sqrt();
                let head = nq % 2;
                // The scalar code, one query at a time.
                let mut want = vec![0.0f32; nq * dv];
                for (i, row) in want.chunks_exact_mut(dv).enumerate() {
                    attend_tiled_f16_many_with(
                        Isa::Scalar,
                        &layer,
                        head,
                        1,
                        |_| query(i),
                        scale,
                        row,
                    );
                }
                assert!(want.iter().all(|x| x.is_finite()));
                let mut many = vec![0.0f32; nq * dv];
                attend_tiled_f16_many_with(Isa::Scalar, &layer, head, nq, query, scale, &mut many);
                assert_eq!(bits(&many), bits(&want), "scalar, {nq} queries at once");
                for &isa in &isas {
                    let what = format!("{isa:?} dk={dk} dv={dv} nq={nq} window={window:?}");
                    let mut got = vec![f32::NAN; nq * dv];
                    attend_tiled_f16_many_with(isa, &layer, head, nq, query, scale, &mut got);
                    assert_eq!(bits(&got), bits(&want), "{what}");
                    // One query at a time, and in uneven groups: the same bits.
                    let mut one = vec![f32::NAN; dv];
                    let i = r.below(nq);
                    attend_tiled_f16_many_with(isa, &layer, head, 1, |_| query(i), scale, &mut one);
                    assert_eq!(bits(&one), bits(&want[i * dv..(i + 1) * dv]), "{what}");
                    let split = r.below(nq);
                    let mut part = vec![f32::NAN; (nq - split) * dv];
                    attend_tiled_f16_many_with(
                        isa,
                        &layer,
                        head,
                        nq - split,
                        |i| query(split + i),
                        scale,
                        &mut part,
                    );
                    assert_eq!(bits(&part), bits(&want[split * dv..]), "{what}");
                }
            }
        }
    }
}

#[test]
fn tiled_attention_query_groups_are_exact() {
    // The SIMD kernel takes the queries of a call in groups of four through each tile: a
    // group whose queries see the same keys (the heads of one token sharing a KV head, `gqa`
    // of them), ranges that differ inside a group (`gqa` 1..3: two tokens, a diagonal tile),
    // and groups of 3, 2 and 1 at the end (`nq % 4`).
    let isas = simd_isas();
    let n_ctx = 300;
    for (hi, &(dk, dv)) in HEADS.iter().enumerate() {
        let c = cache(700 + hi as u32, n_ctx, dk, dv, 8.0);
        let layer = c.layer(0);
        let mut r = Rng::new(900 + hi as u32);
        for gqa in [1, 2, 3, 4] {
            for nq in [2usize, 3, 4, 5, 6, 7, 66, 70, 71] {
                let n_tok = nq.div_ceil(gqa);
                let pos0 = r.below(n_ctx - n_tok + 1);
                let window = [None, None, Some(5), Some(70)][r.below(4)];
                let qs: Vec<Vec<f32>> = (0..nq).map(|_| r.vec(dk, 1.5)).collect();
                let range = |i: usize| {
                    let pos = pos0 + i / gqa;
                    window.map_or(0, |w| (pos + 1).saturating_sub(w))..pos + 1
                };
                let query = |i: usize| (&qs[i][..], range(i));
                let scale = 1.0 / (dk as f32).sqrt();
                let mut want = vec![0.0f32; nq * dv];
                for (i, row) in want.chunks_exact_mut(dv).enumerate() {
                    attend_tiled_f16_many_with(Isa::Scalar, &layer, 1, 1, |_| query(i), scale, row);
                }
                assert!(want.iter().all(|x| x.is_finite()));
                for &isa in &isas {
                    let mut got = vec![f32::NAN; nq * dv];
                    attend_tiled_f16_many_with(isa, &layer, 1, nq, query, scale, &mut got);
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{isa:?} dk={dk} dv={dv} nq={nq} gqa={gqa} pos0={pos0} window={window:?}"
                    );
                }
            }
        }
    }
}

/// Gate values covering the exp polynomial's regions: ordinary values, the results that are
/// subnormal or overflow (|x| in 87..134), beyond the cut-off (|x| > 133), and GELU's ±10 edges.
fn gates(r: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match i % 6 {
            0 | 1 => r.next() * 6.0,
            2 => r.next() * 20.0,
            3 => r.next() * 300.0,
            4 => (87.0 + (r.next() + 1.0) * 23.5) * if r.next() < 0.0 { -1.0 } else { 1.0 },
            _ => 10.0 * if r.next() < 0.0 { -1.0 } else { 1.0 } + r.next() * 1e-3,
        })
        .collect()
}

#[test]
fn activations_are_exact() {
    let isas = simd_isas();
    let mut r = Rng::new(9);
    for n in [0usize, 1, 7, 8, 9, 31, 64, 200, 2048, 4099] {
        for _ in 0..4 {
            let gate = gates(&mut r, n);
            let up = r.vec(n, 3.0);
            let mut want_s = gate.clone();
            swiglu_inplace_with(Isa::Scalar, &mut want_s, &up);
            let mut want_g = gate.clone();
            geglu_inplace_with(Isa::Scalar, &mut want_g, &up);
            for &isa in &isas {
                let mut got = gate.clone();
                swiglu_inplace_with(isa, &mut got, &up);
                assert_eq!(bits(&got), bits(&want_s), "swiglu {isa:?} n={n}");
                let mut got = gate.clone();
                geglu_inplace_with(isa, &mut got, &up);
                assert_eq!(bits(&got), bits(&want_g), "geglu {isa:?} n={n}");
            }
        }
    }
    // Every f32 exponent, both signs, with varied mantissas.
    let gate: Vec<f32> = (0..=255u32)
        .flat_map(|e| {
            (0..8u32).map(move |k| {
                f32::from_bits((e << 23) | ((k * 0x0012_3457) & 0x007f_ffff) | ((k & 1) << 31))
            })
        })
        .filter(|x| x.is_finite())
        .collect();
    let up = vec![1.0f32; gate.len()];
    let mut want = gate.clone();
    swiglu_inplace_with(Isa::Scalar, &mut want, &up);
    for &isa in &isas {
        let mut got = gate.clone();
        swiglu_inplace_with(isa, &mut got, &up);
        assert_eq!(bits(&got), bits(&want), "swiglu {isa:?} exponents");
    }
}

#[test]
fn rope_is_exact() {
    let isas = simd_isas();
    let mut r = Rng::new(21);
    for mode in [RopeMode::Normal, RopeMode::Neox] {
        for (n_rot, head_dim) in [(64, 64), (256, 256), (32, 64), (2, 6), (22, 30), (48, 48)] {
            let p = RopeParams {
                n_rot,
                base: 10000.0,
                freq_scale: 1.0,
                mode,
            };
            let mut cache = vec![0.0f32; n_rot];
            for pos in [0usize, 1, 7, 100, 4095, 100_000] {
                rope_cache(pos, &p, None, &mut cache);
                let x = r.vec(head_dim, 50.0);
                let mut want = x.clone();
                rope_apply_with(Isa::Scalar, &mut want, &cache, mode);
                for &isa in &isas {
                    let mut got = x.clone();
                    rope_apply_with(isa, &mut got, &cache, mode);
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{isa:?} {mode:?} n_rot={n_rot} pos={pos}"
                    );
                }
            }
        }
    }
}
