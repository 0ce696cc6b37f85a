//! Scaled dot-product attention of one query row against a quantized KV cache.
//!
//! The cache is read in place, row by row, as llama.cpp's CPU flash attention does: the query
//! is converted once to the cache type's partner type (`f32` for an `f32` cache, `f16` for
//! `f16`, `q8_0` for `q8_0`/`q4_0`), each key row is dotted with it by
//! [`crate::kernels::vec_dot`], and the softmax is computed online while value rows are
//! dequantized one at a time and accumulated in `f32`. Nothing of the cache is copied.

use std::ops::Range;

use half::f16;

use crate::GgmlType;
use crate::kernels;
use crate::kv_cache::LayerKv;
use crate::quant::{QuantError, dequantize_row};

/// The largest head size the attention supports (its scratch rows live on the stack).
pub const MAX_HEAD_DIM: usize = 1024;

/// How scores are formed from `q·k`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnParams {
    /// Multiplies `q·k` (usually `1/sqrt(head_dim)`).
    pub scale: f32,
    /// Soft-capping of the scores, `cap * tanh(s / cap)` (gemma2), when set.
    pub softcap: Option<f32>,
}

/// Attention of one query head at the keys `keys` (positions) of `kv_head` of `kv`:
/// `out = sum_j softmax(scale * q·k_j)_j * v_j` (`out` is `[head_dim_v]`, `q` is `[head_dim_k]`).
///
/// An empty key range leaves `out` zero.
///
/// # Panics
/// If the lengths do not match the cache's head sizes or exceed [`MAX_HEAD_DIM`].
pub fn attend(
    q: &[f32],
    kv: &LayerKv<'_>,
    kv_head: usize,
    keys: Range<usize>,
    p: &AttnParams,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let dk = kv.head_dim_k();
    let dv = kv.head_dim_v();
    assert!(q.len() == dk && out.len() == dv, "attend: bad q/out length");
    assert!(
        dk <= MAX_HEAD_DIM && dv <= MAX_HEAD_DIM,
        "attend: head too large"
    );

    // The query in the partner type of the cache: at most 4 bytes per element.
    let mut q_buf = [0u32; MAX_HEAD_DIM];
    let q_bytes = quantize_query(kv.dtype(), q, bytemuck::cast_slice_mut(&mut q_buf[..]))?;
    // One dequantized value row.
    let mut v_buf = [0.0f32; MAX_HEAD_DIM];
    let v_row = &mut v_buf[..dv];

    out.fill(0.0);
    let mut m = f32::NEG_INFINITY; // running maximum score
    let mut s_sum = 0.0f32; // running sum of exp(score - m)
    for pos in keys {
        let mut s = kernels::vec_dot(kv.dtype(), dk, kv.k_row(pos, kv_head), q_bytes)? * p.scale;
        if let Some(cap) = p.softcap {
            s = cap * (s / cap).tanh();
        }
        let (ms, vs) = if s > m {
            let ms = (m - s).exp(); // 0 for the first key
            m = s;
            if ms != 1.0 {
                for o in out.iter_mut() {
                    *o *= ms;
                }
            }
            (ms, 1.0)
        } else {
            (1.0, (s - m).exp())
        };
        row_to_f32(kv.dtype(), kv.v_row(pos, kv_head), v_row)?;
        for (o, &v) in out.iter_mut().zip(v_row.iter()) {
            *o += v * vs;
        }
        s_sum = s_sum * ms + vs;
    }
    let inv = if s_sum == 0.0 { 0.0 } else { 1.0 / s_sum };
    for o in out.iter_mut() {
        *o *= inv;
    }
    Ok(())
}

/// The partner type of a cache type for the `K·q` products (ggml's `vec_dot_type`).
pub fn query_type(cache: GgmlType) -> GgmlType {
    match cache {
        GgmlType::F32 | GgmlType::F16 => cache,
        _ => kernels::vec_dot_type(cache),
    }
}

/// Converts `q` to the partner type of `cache` in `buf`; returns the bytes written.
fn quantize_query<'b>(
    cache: GgmlType,
    q: &[f32],
    buf: &'b mut [u8],
) -> Result<&'b [u8], QuantError> {
    let qt = query_type(cache);
    let n = qt
        .bytes_for(q.len() as u64)
        .map_or(usize::MAX, |b| b as usize);
    let Some(dst) = buf.get_mut(..n) else {
        // Head sizes are checked to be whole blocks when the cache is created.
        panic!(
            "attend: query of {} elements does not fit {qt} blocks",
            q.len()
        );
    };
    match qt {
        GgmlType::F32 => dst.copy_from_slice(bytemuck::cast_slice(q)),
        GgmlType::F16 => {
            for (d, &x) in dst.chunks_exact_mut(2).zip(q) {
                d.copy_from_slice(&f16::from_f32(x).to_le_bytes());
            }
        }
        _ => kernels::quantize_row_act(qt, q, dst)?,
    }
    Ok(dst)
}

/// One row of any element type as `f32` ([`dequantize_row`], which also converts `f32`/`f16`).
pub fn row_to_f32(dtype: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    dequantize_row(dtype, src, dst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv_cache::{KV_TYPES, KvCache};

    /// Plain two-pass softmax attention in f64 over f32 inputs.
    fn reference(q: &[f32], ks: &[Vec<f32>], vs: &[Vec<f32>], scale: f32) -> Vec<f32> {
        let s: Vec<f64> = ks
            .iter()
            .map(|k| {
                k.iter()
                    .zip(q)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum::<f64>()
                    * f64::from(scale)
            })
            .collect();
        let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
        let z: f64 = e.iter().sum();
        let mut out = vec![0.0f64; vs[0].len()];
        for (w, v) in e.iter().zip(vs) {
            for (o, x) in out.iter_mut().zip(v) {
                *o += w / z * f64::from(*x);
            }
        }
        out.into_iter().map(|x| x as f32).collect()
    }

    fn fill(seed: u32, n: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn f32_cache_matches_reference() {
        let (n_ctx, dk, dv) = (9, 64, 32);
        let mut c = KvCache::new(GgmlType::F32, 1, n_ctx, 2, dk, dv).unwrap();
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        for pos in 0..n_ctx {
            let k = fill(pos as u32, 2 * dk);
            let v = fill(100 + pos as u32, 2 * dv);
            c.store(0, pos, &k, &v).unwrap();
            ks.push(k[dk..].to_vec());
            vs.push(v[dv..].to_vec());
        }
        let q: Vec<f32> = fill(7, dk).iter().map(|x| x * 3.0).collect();
        let p = AttnParams {
            scale: 0.5,
            softcap: None,
        };
        let mut out = vec![0.0f32; dv];
        attend(&q, &c.layer(0), 1, 2..7, &p, &mut out).unwrap();
        let want = reference(&q, &ks[2..7], &vs[2..7], 0.5);
        for (a, b) in out.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // a single key returns its value exactly
        attend(&q, &c.layer(0), 1, 4..5, &p, &mut out).unwrap();
        assert_eq!(out, vs[4]);
        // no keys: zeros
        attend(&q, &c.layer(0), 1, 4..4, &p, &mut out).unwrap();
        assert!(out.iter().all(|x| *x == 0.0));
    }

    #[test]
    fn quantized_caches_are_close() {
        let (n_ctx, d) = (16, 64);
        for dtype in KV_TYPES {
            let mut c = KvCache::new(dtype, 1, n_ctx, 1, d, d).unwrap();
            let mut ks = Vec::new();
            let mut vs = Vec::new();
            for pos in 0..n_ctx {
                let k = fill(pos as u32 + 1, d);
                let v = fill(200 + pos as u32, d);
                c.store(0, pos, &k, &v).unwrap();
                ks.push(k);
                vs.push(v);
            }
            let q = fill(99, d);
            let p = AttnParams {
                scale: 0.125,
                softcap: None,
            };
            let mut out = vec![0.0f32; d];
            attend(&q, &c.layer(0), 0, 0..n_ctx, &p, &mut out).unwrap();
            let want = reference(&q, &ks, &vs, 0.125);
            let tol = if dtype == GgmlType::Q4_0 { 0.08 } else { 0.01 };
            for (a, b) in out.iter().zip(&want) {
                assert!((a - b).abs() < tol, "{dtype}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn softcap_limits_scores() {
        let mut c = KvCache::new(GgmlType::F32, 1, 2, 1, 32, 32).unwrap();
        let k0 = vec![1.0f32; 32];
        let k1 = vec![-1.0f32; 32];
        c.store(0, 0, &k0, &vec![1.0; 32]).unwrap();
        c.store(0, 1, &k1, &vec![0.0; 32]).unwrap();
        let q = vec![1.0f32; 32];
        // scores +32 / -32: uncapped the first key takes everything; capped at 1 the weights
        // are exp(tanh(32)) vs exp(-tanh(32)), i.e. e / (e + 1/e)
        let mut out = vec![0.0f32; 32];
        attend(
            &q,
            &c.layer(0),
            0,
            0..2,
            &AttnParams {
                scale: 1.0,
                softcap: Some(1.0),
            },
            &mut out,
        )
        .unwrap();
        let e = std::f32::consts::E;
        assert!((out[0] - e / (e + 1.0 / e)).abs() < 1e-5);
    }
}
