//! Attention over an `f16` KV cache computed with the same arithmetic as ggml's CPU flash
//! attention (`ggml_compute_forward_flash_attn_ext_f16`, llama.cpp 0c1e570, x86 with AVX-512),
//! so that kiln's logits follow llama.cpp's to the rounding.
//!
//! ggml uses two kernels, chosen per batch:
//! - **tiled** ([`attend_tiled_f16`]), for batches of at least [`TILED_MIN_QUERIES`] queries:
//!   the query stays `f32`, keys are widened to `f32`, each score is one sequential `f32` FMA
//!   chain over the head, keys are visited in tiles of [`KV_TILE`] positions aligned at 0 with
//!   one online-softmax step per tile (`exp` of the tile by ggml's SIMD `ggml_v_expf`, the tile
//!   sum in `f64`), and the values are accumulated in `f32` by sequential FMA chains;
//! - **one key at a time** ([`attend_one_chunk_f16`]), for smaller batches (decoding): the query
//!   is rounded to `f16`, each score is ggml's `f16` dot product, the softmax is updated per key
//!   with `expf`, and the weighted value sum is kept **in `f16`** (every update rounds to `f16`).
//!
//! The code below is the definition (and what `KILN_ISA=scalar` runs). With an x86 kernel
//! table the same operations run in AVX2 + FMA + F16C (`ops/x86.rs`), bit for bit: the tiled
//! kernel puts 64 keys in the lanes (each lane one key's sequential FMA chain over a transposed
//! `f32` key tile, as ggml's `simd_gemm`) and widens each key/value tile once for a whole group
//! of queries ([`attend_tiled_f16_many`]); the one-key kernel keeps the 4 × 16-lane
//! accumulators of `dot_f16` as 8 registers of 8 lanes.

use std::ops::Range;

use half::f16;

use crate::kernels::Isa;
use crate::kv_cache::LayerKv;
use crate::ops::Simd;
use crate::ops::activation::expf_ggml as v_expf;

/// ggml's `GGML_FA_TILE_Q`: batches with at least this many queries use the tiled kernel.
pub const TILED_MIN_QUERIES: usize = 64;
/// ggml's `GGML_FA_TILE_KV`: keys per tile of the tiled kernel.
pub const KV_TILE: usize = 64;
/// Lanes of ggml's `f32` SIMD vectors (AVX-512).
const LANES: usize = 16;

/// `_mm512_reduce_add_ps` of 16 lanes, in GCC's order (halves, then quarters, then pairs).
#[inline(always)]
fn reduce_add_16(v: &[f32; LANES]) -> f32 {
    let mut t3 = [0.0f32; 8];
    for i in 0..8 {
        t3[i] = v[8 + i] + v[i];
    }
    let mut t6 = [0.0f32; 4];
    for i in 0..4 {
        t6[i] = t3[4 + i] + t3[i];
    }
    (t6[0] + t6[2]) + (t6[1] + t6[3])
}

/// `ggml_vec_soft_max_f32` (AVX-512): `p[i] = v_expf(s[i] - max)`, returns the sum in `f64`
/// (one 16-lane reduction per block of 16 added to an `f64`).
#[inline(always)]
fn soft_max_block(s: &[f32; KV_TILE], max: f32, p: &mut [f32; KV_TILE]) -> f64 {
    let mut sum = 0.0f64;
    for (sc, pc) in s.chunks_exact(LANES).zip(p.chunks_exact_mut(LANES)) {
        let mut lanes = [0.0f32; LANES];
        for ((l, &x), o) in lanes.iter_mut().zip(sc).zip(pc.iter_mut()) {
            *l = v_expf(x - max);
            *o = *l;
        }
        sum += f64::from(reduce_add_16(&lanes));
    }
    sum
}

/// Tiled-kernel attention of one `f32` query at the key positions `keys` of `kv_head` of an
/// `f16` cache: `out = softmax(scale * q·k) v` (`out` is `[head_dim_v]`).
///
/// # Panics
/// If the cache is not `f16` or the lengths do not match its head sizes, or a head is larger
/// than [`MAX_HEAD_DIM`].
pub fn attend_tiled_f16(
    q: &[f32],
    kv: &LayerKv<'_>,
    kv_head: usize,
    keys: Range<usize>,
    scale: f32,
    out: &mut [f32],
) {
    attend_tiled_f16_many(kv, kv_head, 1, |_| (q, keys.clone()), scale, out);
}

/// [`attend_tiled_f16`] of `nq` queries that share `kv_head`: `query(i)` gives query `i`
/// (`[head_dim_k]`) and the key positions it sees; `out` is `[nq][head_dim_v]`. Each key and
/// value tile is widened once for all of them; every query's result is exactly the one-query
/// result.
///
/// # Panics
/// As [`attend_tiled_f16`], or if `out` is not `nq` value rows.
pub fn attend_tiled_f16_many<'q>(
    kv: &LayerKv<'_>,
    kv_head: usize,
    nq: usize,
    query: impl Fn(usize) -> (&'q [f32], Range<usize>),
    scale: f32,
    out: &mut [f32],
) {
    tiled_many(Simd::selected(), kv, kv_head, nq, query, scale, out);
}

/// [`attend_tiled_f16_many`] with the code for `isa` (the scalar code if this CPU cannot run
/// it, or the ops have no code for it). For tests and benchmarks: every ISA gives the same
/// bits.
///
/// # Panics
/// As [`attend_tiled_f16_many`].
pub fn attend_tiled_f16_many_with<'q>(
    isa: Isa,
    kv: &LayerKv<'_>,
    kv_head: usize,
    nq: usize,
    query: impl Fn(usize) -> (&'q [f32], Range<usize>),
    scale: f32,
    out: &mut [f32],
) {
    tiled_many(Simd::for_isa(isa), kv, kv_head, nq, query, scale, out);
}

fn tiled_many<'q>(
    simd: Simd,
    kv: &LayerKv<'_>,
    kv_head: usize,
    nq: usize,
    query: impl Fn(usize) -> (&'q [f32], Range<usize>),
    scale: f32,
    out: &mut [f32],
) {
    let (dk, dv) = (kv.head_dim_k(), kv.head_dim_v());
    assert!(out.len() == nq * dv, "flash: bad output length");
    assert!(
        kv.dtype() == crate::GgmlType::F16,
        "flash: cache is not f16"
    );
    assert!(dk.max(dv) <= MAX_HEAD_DIM, "flash: head too large");
    for i in 0..nq {
        assert!(query(i).0.len() == dk, "flash: bad lengths");
    }
    match simd {
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => SCRATCH.with_borrow_mut(|sc| {
            let (kt, vt, m, s) = sc.get(dk * KV_TILE, KV_TILE * dv, nq);
            // SAFETY: `Simd::Avx2` is only chosen for an x86 kernel table, which this CPU runs
            // and which requires AVX2, FMA and F16C.
            unsafe {
                super::x86::attend_tiled_f16_many(kv, kv_head, nq, &query, scale, out, kt, vt, m, s)
            }
        }),
        Simd::Scalar => {
            for (i, row) in out.chunks_exact_mut(dv).enumerate() {
                let (q, keys) = query(i);
                attend_tiled_f16_impl(q, kv, kv_head, keys, scale, row);
            }
        }
    }
}

/// Per-thread buffers of the SIMD tiled kernel (grown on demand, never shrunk).
#[derive(Default)]
struct Scratch {
    buf: Vec<f32>,
}

impl Scratch {
    /// Buffers of `kt`, `vt`, `nq` and `nq` floats.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn get(
        &mut self,
        kt: usize,
        vt: usize,
        nq: usize,
    ) -> (&mut [f32], &mut [f32], &mut [f32], &mut [f32]) {
        let need = kt + vt + 2 * nq;
        if self.buf.len() < need {
            self.buf.resize(need, 0.0);
        }
        let (a, rest) = self.buf.split_at_mut(kt);
        let (b, rest) = rest.split_at_mut(vt);
        let (c, rest) = rest.split_at_mut(nq);
        (a, b, c, &mut rest[..nq])
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Largest head size of the flash kernels (their row buffers are on the stack).
pub const MAX_HEAD_DIM: usize = crate::ops::attention::MAX_HEAD_DIM;

#[inline(always)]
fn attend_tiled_f16_impl(
    q: &[f32],
    kv: &LayerKv<'_>,
    kv_head: usize,
    keys: Range<usize>,
    scale: f32,
    out: &mut [f32],
) {
    let (dk, dv) = (kv.head_dim_k(), kv.head_dim_v());
    assert!(q.len() == dk && out.len() == dv, "flash: bad lengths");
    assert!(
        kv.dtype() == crate::GgmlType::F16,
        "flash: cache is not f16"
    );
    assert!(dk.max(dv) <= MAX_HEAD_DIM, "flash: head too large");
    out.fill(0.0);
    let (mut m, mut s_sum) = (f32::NEG_INFINITY, 0.0f32);
    let mut kq = [f32::NEG_INFINITY; KV_TILE];
    let mut p = [0.0f32; KV_TILE];
    assert!(
        dk <= MAX_HEAD_DIM && dv <= MAX_HEAD_DIM,
        "flash: head too large"
    );
    let mut kf = [0.0f32; MAX_HEAD_DIM]; // [dk] one key row / [dv] one value row in f32
    let mut ic = keys.start / KV_TILE * KV_TILE;
    while ic < keys.end {
        let (a, b) = (ic.max(keys.start), (ic + KV_TILE).min(keys.end));
        kq.fill(f32::NEG_INFINITY);
        for pos in a..b {
            f16_row(kv.k_row(pos, kv_head), &mut kf[..dk]);
            let mut acc = 0.0f32;
            for (&x, &k) in q.iter().zip(&kf[..dk]) {
                acc = k.mul_add(x, acc);
            }
            // + 0.0: the (unmasked) mask value, as ggml adds it
            kq[pos - ic] = acc * scale + 0.0;
        }
        let tile_max = kq.iter().fold(f32::NEG_INFINITY, |x, &y| x.max(y));
        let m_new = m.max(tile_max);
        if m_new > m {
            let ms = (m - m_new).exp();
            for o in out.iter_mut() {
                *o *= ms;
            }
            s_sum *= ms;
        }
        m = m_new;
        let sum = soft_max_block(&kq, m, &mut p);
        s_sum = (f64::from(s_sum) + sum) as f32;
        // out[d] = fma chain over the tile's keys in order (masked keys have p = 0 and add
        // nothing).
        for pos in a..b {
            let w = p[pos - ic];
            f16_row(kv.v_row(pos, kv_head), &mut kf[..dv]);
            for (o, &v) in out.iter_mut().zip(&kf[..dv]) {
                *o = w.mul_add(v, *o);
            }
        }
        ic += KV_TILE;
    }
    let inv = if s_sum == 0.0 { 0.0 } else { 1.0 / s_sum };
    for o in out.iter_mut() {
        *o *= inv;
    }
}

/// ggml's `ggml_vec_dot_f16` on AVX-512 (4 accumulators of 16 lanes over steps of 64, reduced
/// `(a0 + a2) + (a1 + a3)` then across lanes; the tail in `f64`).
#[inline(always)]
fn dot_f16(k: &[u8], q: &[f16]) -> f32 {
    let n = q.len();
    let kx = |i: usize| f16::from_le_bytes([k[2 * i], k[2 * i + 1]]).to_f32();
    let np = n / 64 * 64;
    let mut acc = [[0.0f32; LANES]; 4];
    let mut i = 0;
    while i < np {
        for (j, a) in acc.iter_mut().enumerate() {
            for (l, al) in a.iter_mut().enumerate() {
                let e = i + j * LANES + l;
                *al = kx(e).mul_add(q[e].to_f32(), *al);
            }
        }
        i += 64;
    }
    let mut r = [0.0f32; LANES];
    for l in 0..LANES {
        let x0 = acc[0][l] + acc[2][l];
        let x1 = acc[1][l] + acc[3][l];
        r[l] = x0 + x1;
    }
    let mut sum = if np > 0 {
        f64::from(reduce_add_16(&r))
    } else {
        0.0
    };
    for (e, qe) in q.iter().enumerate().skip(np) {
        sum += f64::from(kx(e) * qe.to_f32());
    }
    sum as f32
}

/// One-key-at-a-time attention (ggml's `flash_attn_ext_f16_one_chunk` with an `f16` V cache)
/// of one query at the key positions `keys` of `kv_head`. The value accumulator is `f16`.
///
/// # Panics
/// If the cache is not `f16` or the lengths do not match its head sizes, or a head is larger
/// than [`MAX_HEAD_DIM`].
pub fn attend_one_chunk_f16(
    q: &[f32],
    kv: &LayerKv<'_>,
    kv_head: usize,
    keys: Range<usize>,
    scale: f32,
    out: &mut [f32],
) {
    one_chunk(Simd::selected(), q, kv, kv_head, keys, scale, out);
}

/// [`attend_one_chunk_f16`] with the code for `isa` (the scalar code if this CPU cannot run
/// it, or the ops have no code for it). For tests and benchmarks: every ISA gives the same
/// bits.
///
/// # Panics
/// As [`attend_one_chunk_f16`].
pub fn attend_one_chunk_f16_with(
    isa: Isa,
    q: &[f32],
    kv: &LayerKv<'_>,
    kv_head: usize,
    keys: Range<usize>,
    scale: f32,
    out: &mut [f32],
) {
    one_chunk(Simd::for_isa(isa), q, kv, kv_head, keys, scale, out);
}

fn one_chunk(
    simd: Simd,
    q: &[f32],
    kv: &LayerKv<'_>,
    kv_head: usize,
    keys: Range<usize>,
    scale: f32,
    out: &mut [f32],
) {
    let (dk, dv) = (kv.head_dim_k(), kv.head_dim_v());
    assert!(q.len() == dk && out.len() == dv, "flash: bad lengths");
    assert!(
        kv.dtype() == crate::GgmlType::F16,
        "flash: cache is not f16"
    );
    assert!(dk.max(dv) <= MAX_HEAD_DIM, "flash: head too large");
    match simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Simd::Avx2` is only chosen for an x86 kernel table, which this CPU runs and
        // which requires AVX2, FMA and F16C.
        Simd::Avx2 => unsafe { super::x86::attend_one_chunk_f16(q, kv, kv_head, keys, scale, out) },
        Simd::Scalar => attend_one_chunk_f16_impl(q, kv, kv_head, keys, scale, out),
    }
}

#[inline(always)]
fn attend_one_chunk_f16_impl(
    q: &[f32],
    kv: &LayerKv<'_>,
    kv_head: usize,
    keys: Range<usize>,
    scale: f32,
    out: &mut [f32],
) {
    let (dk, dv) = (kv.head_dim_k(), kv.head_dim_v());
    assert!(q.len() == dk && out.len() == dv, "flash: bad lengths");
    assert!(
        kv.dtype() == crate::GgmlType::F16,
        "flash: cache is not f16"
    );
    assert!(dk.max(dv) <= MAX_HEAD_DIM, "flash: head too large");
    let mut qh_buf = [f16::ZERO; MAX_HEAD_DIM];
    let qh = &mut qh_buf[..dk];
    for (h, &x) in qh.iter_mut().zip(q) {
        *h = f16::from_f32(x);
    }
    let qh = &*qh;
    let mut acc_buf = [f16::ZERO; MAX_HEAD_DIM];
    let acc = &mut acc_buf[..dv];
    let (mut m, mut s_sum) = (f32::NEG_INFINITY, 0.0f32);
    for pos in keys {
        let s = dot_f16(kv.k_row(pos, kv_head), qh) * scale + 0.0;
        let (mut ms, mut vs) = (1.0f32, 1.0f32);
        if s > m {
            ms = (m - s).exp();
            m = s;
            for a in acc.iter_mut() {
                *a = f16::from_f32(a.to_f32() * ms);
            }
        } else {
            vs = (s - m).exp();
        }
        let v = kv.v_row(pos, kv_head);
        for (d, a) in acc.iter_mut().enumerate() {
            let x = f16::from_le_bytes([v[2 * d], v[2 * d + 1]]).to_f32();
            *a = f16::from_f32(x.mul_add(vs, a.to_f32()));
        }
        s_sum = s_sum.mul_add(ms, vs);
    }
    let inv = if s_sum == 0.0 { 0.0 } else { 1.0 / s_sum };
    for (o, a) in out.iter_mut().zip(acc.iter()) {
        *o = a.to_f32() * inv;
    }
}

/// Widens one `f16` row (little-endian bytes) to `f32` (exact: every `f16` is an `f32`).
#[inline(always)]
fn f16_row(src: &[u8], dst: &mut [f32]) {
    for (d, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = f16::from_le_bytes([c[0], c[1]]).to_f32();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_row_widens_every_f16_exactly() {
        // Every bit pattern, in rows of odd length so the 8-wide path and the tail both run.
        let all: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
        for row in all.chunks(2 * 37) {
            let mut got = vec![0.0f32; row.len() / 2];
            f16_row(row, &mut got);
            for (g, c) in got.iter().zip(row.chunks_exact(2)) {
                let want = f16::from_le_bytes([c[0], c[1]]).to_f32();
                assert_eq!(g.to_bits(), want.to_bits());
            }
        }
    }
}
