//! Scaled dot-product attention against a quantized KV cache, read in place.
//!
//! As in llama.cpp's CPU flash attention, each query is converted once to the cache type's
//! partner type (`f32` for an `f32` cache, `f16` for `f16`, `q8_0` for `q8_0`/`q4_0`), each key
//! row is dotted with it by [`crate::kernels::vec_dot`] straight from the cache, and the softmax
//! is computed online. Values are dequantized one tile of [`KEY_TILE`] rows at a time into a
//! small stack buffer and accumulated in `f32` by every query of the group that needs them, so
//! the conversion is shared by all queries of a KV head in a batch. Nothing of the cache is
//! copied as a whole.
//!
//! Tiles are aligned to absolute key positions, so a query's result does not depend on which
//! other queries it is grouped with (or on the thread that runs the group).

use std::ops::Range;

use crate::GgmlType;
use crate::kernels;
use crate::kv_cache::LayerKv;
use crate::quant::{QuantError, dequantize_row};

/// The largest head size the attention supports (its scratch rows live on the stack).
pub const MAX_HEAD_DIM: usize = 1024;
/// The most queries one [`attend_many`] call handles.
pub const MAX_QUERIES: usize = 256;
/// Keys per value tile (fewer for heads larger than 256).
pub const KEY_TILE: usize = 32;
/// Floats of the value tile buffer.
const TILE_FLOATS: usize = 8192;

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
    assert!(q.len() == kv.head_dim_k(), "attend: bad q length");
    assert!(q.len() <= MAX_HEAD_DIM, "attend: head too large");
    // The query in the partner type of the cache: at most 4 bytes per element.
    let mut q_buf = [0u32; MAX_HEAD_DIM];
    let n = quantize_query(kv.dtype(), q, bytemuck::cast_slice_mut(&mut q_buf[..]))?;
    let q_bytes = &bytemuck::cast_slice::<u32, u8>(&q_buf)[..n];
    attend_many(kv, kv_head, 1, |_| (q_bytes, keys.clone()), p, out)
}

/// Attention of `nq` queries that share `kv_head`: `query(i)` gives query `i` already in the
/// partner type ([`query_type`], see [`quantize_query`]) and the key positions it sees;
/// `out` is `[nq][head_dim_v]`. Each query's result is the same as [`attend`]'s.
///
/// # Panics
/// If `nq > MAX_QUERIES`, `out` is not `nq` value rows, or a head exceeds [`MAX_HEAD_DIM`].
pub fn attend_many<'q>(
    kv: &LayerKv<'_>,
    kv_head: usize,
    nq: usize,
    query: impl Fn(usize) -> (&'q [u8], Range<usize>),
    p: &AttnParams,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let (dk, dv) = (kv.head_dim_k(), kv.head_dim_v());
    assert!(
        nq <= MAX_QUERIES && out.len() == nq * dv,
        "attend: bad query count or output length"
    );
    assert!(
        dk <= MAX_HEAD_DIM && dv <= MAX_HEAD_DIM,
        "attend: head too large"
    );
    let tile = (TILE_FLOATS / dv.max(1)).clamp(1, KEY_TILE);
    let dtype = kv.dtype();

    // Keys any query needs.
    let (mut lo, mut hi) = (usize::MAX, 0);
    for i in 0..nq {
        let r = query(i).1;
        if r.start < r.end {
            lo = lo.min(r.start);
            hi = hi.max(r.end);
        }
    }
    out.fill(0.0);
    let mut m = [f32::NEG_INFINITY; MAX_QUERIES]; // running maximum score per query
    let mut l = [0.0f32; MAX_QUERIES]; // running sum of exp(score - m) per query
    let mut vt = [0.0f32; TILE_FLOATS]; // [tile][dv] values of the current tile
    let mut sc = [0.0f32; KEY_TILE]; // one query's scores in the tile

    let mut k0 = if lo < hi { lo / tile * tile } else { hi };
    while k0 < hi {
        let k1 = (k0 + tile).min(hi);
        let first = k0.max(lo);
        for pos in first..k1 {
            let j = pos - k0;
            dequantize_row(dtype, kv.v_row(pos, kv_head), &mut vt[j * dv..(j + 1) * dv])?;
        }
        for (i, row) in out.chunks_exact_mut(dv).enumerate() {
            let (qb, r) = query(i);
            let (a, b) = (k0.max(r.start), k1.min(r.end));
            if a >= b {
                continue;
            }
            let scores = &mut sc[..b - a];
            for (s, pos) in scores.iter_mut().zip(a..b) {
                let mut v = kernels::vec_dot(dtype, dk, kv.k_row(pos, kv_head), qb)? * p.scale;
                if let Some(cap) = p.softcap {
                    v = cap * (v / cap).tanh();
                }
                *s = v;
            }
            let tmax = scores.iter().fold(f32::NEG_INFINITY, |x, &y| x.max(y));
            if tmax > m[i] {
                let ms = (m[i] - tmax).exp(); // 0 when this is the query's first tile
                for o in row.iter_mut() {
                    *o *= ms;
                }
                l[i] *= ms;
                m[i] = tmax;
            }
            for (&s, pos) in scores.iter().zip(a..b) {
                let w = (s - m[i]).exp();
                l[i] += w;
                let j = pos - k0;
                for (o, &v) in row.iter_mut().zip(&vt[j * dv..(j + 1) * dv]) {
                    *o += w * v;
                }
            }
        }
        k0 += tile;
    }
    for (i, row) in out.chunks_exact_mut(dv).enumerate() {
        let inv = if l[i] == 0.0 { 0.0 } else { 1.0 / l[i] };
        for o in row.iter_mut() {
            *o *= inv;
        }
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

/// Bytes of a query of `head_dim` elements in the partner type of `cache` (`None` if the head
/// is not a whole number of its blocks).
pub fn query_bytes(cache: GgmlType, head_dim: usize) -> Option<usize> {
    query_type(cache)
        .bytes_for(head_dim as u64)
        .and_then(|b| usize::try_from(b).ok())
}

/// Converts `q` to the partner type of `cache` at the start of `buf`; returns the bytes written
/// ([`query_bytes`]).
///
/// # Panics
/// If `buf` is too short or `q` is not a whole number of the partner type's blocks (head sizes
/// are checked when the cache is created).
pub fn quantize_query(cache: GgmlType, q: &[f32], buf: &mut [u8]) -> Result<usize, QuantError> {
    let qt = query_type(cache);
    let n = query_bytes(cache, q.len()).expect("attend: query is not whole blocks");
    kernels::quantize_row_act(qt, q, &mut buf[..n])?;
    Ok(n)
}

/// Rotates each consecutive block of `n` elements of `x` by the orthonormal Walsh-Hadamard
/// matrix `H_n / sqrt(n)` (Sylvester order; `H` is symmetric and its own inverse).
///
/// llama.cpp applies this to queries, keys and values before a quantized KV cache stores them,
/// and to the attention output after: dot products are unchanged, but outlier channels are
/// spread over the block, so block quantization loses far less.
///
/// # Panics
/// If `n` is not a power of two or `x.len()` is not a multiple of `n`.
pub fn hadamard_rotate(x: &mut [f32], n: usize) {
    assert!(
        n.is_power_of_two() && x.len().is_multiple_of(n),
        "hadamard: bad block size"
    );
    let scale = (1.0 / (n as f64).sqrt()) as f32;
    for block in x.chunks_exact_mut(n) {
        let mut h = 1;
        while h < n {
            for pair in block.chunks_exact_mut(2 * h) {
                let (lo, hi) = pair.split_at_mut(h);
                for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                    let (x0, x1) = (*a, *b);
                    *a = x0 + x1;
                    *b = x0 - x1;
                }
            }
            h *= 2;
        }
        for v in block.iter_mut() {
            *v *= scale;
        }
    }
}

/// The Hadamard block sizes llama.cpp rotates keys (and queries) and values with for a cache
/// of type `cache`: `None` for unquantized caches or heads that are not a multiple of 64. Keys
/// use the largest power of two dividing the head size, values 64.
pub fn kv_rotation(
    cache: GgmlType,
    head_dim_k: usize,
    head_dim_v: usize,
) -> (Option<usize>, Option<usize>) {
    if matches!(cache, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        return (None, None);
    }
    let k = (head_dim_k > 0 && head_dim_k.is_multiple_of(64)).then(|| {
        let mut n = 64;
        while head_dim_k.is_multiple_of(2 * n) {
            n *= 2;
        }
        n
    });
    let v = (head_dim_v > 0 && head_dim_v.is_multiple_of(64)).then_some(64);
    (k, v)
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
    fn many_queries_equal_single_queries_bit_for_bit() {
        // 70 keys span several tiles; queries see different (windowed, causal) ranges.
        let (n_ctx, d) = (70, 64);
        for dtype in KV_TYPES {
            let mut c = KvCache::new(dtype, 1, n_ctx, 2, d, d).unwrap();
            for pos in 0..n_ctx {
                c.store(
                    0,
                    pos,
                    &fill(pos as u32 + 3, 2 * d),
                    &fill(500 + pos as u32, 2 * d),
                )
                .unwrap();
            }
            let layer = c.layer(0);
            let p = AttnParams {
                scale: 0.2,
                softcap: None,
            };
            let ranges = [0..70, 5..6, 31..33, 10..64, 40..40, 0..1, 33..70];
            let qs: Vec<Vec<f32>> = (0..ranges.len()).map(|i| fill(900 + i as u32, d)).collect();
            let qb = query_bytes(dtype, d).unwrap();
            let mut qq = vec![0u8; qb * qs.len()];
            for (q, dst) in qs.iter().zip(qq.chunks_exact_mut(qb)) {
                quantize_query(dtype, q, dst).unwrap();
            }
            let mut many = vec![0.0f32; ranges.len() * d];
            let query = |i: usize| (&qq[i * qb..(i + 1) * qb], ranges[i].clone());
            attend_many(&layer, 1, ranges.len(), query, &p, &mut many).unwrap();
            for (i, r) in ranges.iter().enumerate() {
                let mut one = vec![0.0f32; d];
                attend(&qs[i], &layer, 1, r.clone(), &p, &mut one).unwrap();
                assert_eq!(&many[i * d..(i + 1) * d], &one[..], "{dtype} query {i}");
            }
        }
    }

    #[test]
    fn hadamard_is_orthonormal_and_its_own_inverse() {
        let n = 64;
        let x = fill(1, 3 * n);
        let mut y = x.clone();
        hadamard_rotate(&mut y, n);
        // against the matrix built by Sylvester's recursion
        let mut h = vec![0.0f64; n * n];
        h[0] = 1.0 / (n as f64).sqrt();
        let mut s = 1;
        while s < n {
            for i in 0..s {
                for j in 0..s {
                    let v = h[i * n + j];
                    h[(i + s) * n + j] = v;
                    h[i * n + j + s] = v;
                    h[(i + s) * n + j + s] = -v;
                }
            }
            s *= 2;
        }
        for b in 0..3 {
            for i in 0..n {
                let want: f64 = (0..n).map(|j| h[i * n + j] * f64::from(x[b * n + j])).sum();
                assert!((f64::from(y[b * n + i]) - want).abs() < 1e-5);
            }
        }
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f32>();
        let z = fill(2, 3 * n);
        let mut zr = z.clone();
        hadamard_rotate(&mut zr, n);
        assert!((dot(&x, &z) - dot(&y, &zr)).abs() < 1e-4);
        hadamard_rotate(&mut y, n);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn rotation_sizes_follow_llama_cpp() {
        assert_eq!(kv_rotation(GgmlType::F16, 64, 64), (None, None));
        assert_eq!(kv_rotation(GgmlType::Q8_0, 64, 64), (Some(64), Some(64)));
        assert_eq!(kv_rotation(GgmlType::Q4_0, 256, 256), (Some(256), Some(64)));
        assert_eq!(kv_rotation(GgmlType::Q4_0, 192, 32), (Some(64), None));
        assert_eq!(kv_rotation(GgmlType::Q8_0, 32, 32), (None, None));
    }

    #[test]
    fn softcap_limits_scores() {
        let mut c = KvCache::new(GgmlType::F32, 1, 2, 1, 32, 32).unwrap();
        let k0 = vec![1.0f32; 32];
        let k1 = vec![-1.0f32; 32];
        c.store(0, 0, &k0, &[1.0; 32]).unwrap();
        c.store(0, 1, &k1, &[0.0; 32]).unwrap();
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
