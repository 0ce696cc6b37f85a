//! AVX2 + FMA + F16C versions of the ops' hot loops.
//!
//! Each function performs exactly the float operations of its scalar twin (named in its doc),
//! in the same order for every output element: the lanes of a vector are independent elements
//! (or independent accumulators that the scalar code also keeps apart), every `mul_add` is one
//! `vfmadd`, every `f16` rounding is `vcvtps2ph` with round-to-nearest-even (what `half` does),
//! and horizontal sums follow the scalar code's tree. So the results are bit-identical; the
//! tests in `tests/ops_exact.rs` hold it.
//!
//! All functions require AVX2, FMA and F16C (`#[target_feature]`): the callers in `ops` only
//! reach them when the selected kernel table is an x86 one ([`super::Simd::Avx2`]).

use std::arch::x86_64::*;
use std::ops::Range;

use half::f16;

use crate::kv_cache::LayerKv;

/// Keys per tile of the tiled attention (ggml's `GGML_FA_TILE_KV`).
const TILE: usize = super::flash::KV_TILE;

/// Loads 8 floats from the start of `s`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn ld(s: &[f32]) -> __m256 {
    assert!(s.len() >= 8);
    // SAFETY: 8 floats are readable (checked just above); unaligned load.
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

/// Stores 8 floats at the start of `s`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn st(s: &mut [f32], v: __m256) {
    assert!(s.len() >= 8);
    // SAFETY: 8 floats are writable (checked just above); unaligned store.
    unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) }
}

/// Widens the first 8 `f16` of `b` (16 little-endian bytes) to `f32` (exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn ld_h8(b: &[u8]) -> __m256 {
    assert!(b.len() >= 16);
    // SAFETY: 16 bytes are readable (checked just above); unaligned load.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(b.as_ptr().cast()) })
}

/// Widens the first 8 `f16` of `h` to `f32` (exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn ld_f16(h: &[f16]) -> __m256 {
    assert!(h.len() >= 8);
    // SAFETY: 8 f16 (16 bytes) are readable (checked just above); unaligned load.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(h.as_ptr().cast()) })
}

/// Rounds 8 floats to `f16` (to nearest, ties to even: `f16::from_f32`) into the start of `h`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn st_f16(h: &mut [f16], v: __m256) {
    assert!(h.len() >= 8);
    let r = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
    // SAFETY: 8 f16 (16 bytes) are writable (checked just above); unaligned store.
    unsafe { _mm_storeu_si128(h.as_mut_ptr().cast(), r) }
}

/// `f16` of little-endian bytes `[lo, hi]`, widened.
#[inline(always)]
fn h(c: &[u8]) -> f32 {
    f16::from_le_bytes([c[0], c[1]]).to_f32()
}

/// The 16-lane sum `reduce_add_16` of the scalar code for lanes `lo` (0..8) and `hi` (8..16):
/// `t3 = hi + lo`, `t6 = t3[4..8] + t3[0..4]`, `(t6[0] + t6[2]) + (t6[1] + t6[3])`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn reduce_add_16(lo: __m256, hi: __m256) -> f32 {
    let t3 = _mm256_add_ps(hi, lo);
    let t6 = _mm_add_ps(_mm256_extractf128_ps::<1>(t3), _mm256_castps256_ps128(t3));
    let t = _mm_add_ps(t6, _mm_movehl_ps(t6, t6));
    _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)))
}

// ---------------------------------------------------------------------------------------------
// exp
// ---------------------------------------------------------------------------------------------

/// [`crate::ops::activation::expf_ggml`] of 8 lanes: the same FMAs, and `j · 2^n` with one
/// rounding (an `f32` product when `2^n` is a normal `f32`, else the exact `f64` product
/// rounded once, as the scalar code always computes it).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn expf8(x: __m256) -> __m256 {
    let c = |bits: u32| _mm256_set1_ps(f32::from_bits(bits));
    let r = _mm256_set1_ps(12_582_912.0); // 0x1.8p23
    let z = _mm256_fmadd_ps(x, c(0x3fb8_aa3b), r);
    let n = _mm256_sub_ps(z, r);
    // fma(-n, c, y) is fnmadd(n, c, y): the negation is exact.
    let b = _mm256_fnmadd_ps(n, c(0x35bf_be8e), _mm256_fnmadd_ps(n, c(0x3f31_7200), x));
    let u = _mm256_mul_ps(b, b);
    let j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(c(0x3c07_2010), b, c(0x3d2b_9f17)),
            u,
            _mm256_fmadd_ps(c(0x3e2a_af33), b, c(0x3eff_fedb)),
        ),
        u,
        _mm256_fmadd_ps(c(0x3f7f_fff6), b, _mm256_set1_ps(1.0)),
    );
    // |n| > 192: 0 or infinity, as the scalar code's early return (false for NaN).
    let absn = _mm256_and_ps(n, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff)));
    let big = _mm256_cmp_ps::<_CMP_GT_OQ>(absn, _mm256_set1_ps(192.0));
    // 2^n as an f32 for n in -126..=127 (n is an integer there: see the scalar code).
    let nc = _mm256_min_ps(
        _mm256_max_ps(n, _mm256_set1_ps(-126.0)),
        _mm256_set1_ps(127.0),
    );
    let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(nc),
        _mm256_set1_epi32(127),
    ));
    let mut res = _mm256_mul_ps(j, _mm256_castsi256_ps(e));
    // Lanes with 127 < |n| <= 192 need the f64 product (2^n is not a normal f32).
    let outside = _mm256_andnot_ps(big, _mm256_cmp_ps::<_CMP_NEQ_OQ>(n, nc));
    if _mm256_movemask_ps(outside) != 0 {
        res = scale_f64(j, n);
    }
    if _mm256_movemask_ps(big) == 0 {
        return res;
    }
    let inf_or_0 = _mm256_andnot_ps(
        _mm256_cmp_ps::<_CMP_LE_OQ>(n, _mm256_setzero_ps()),
        _mm256_set1_ps(f32::INFINITY),
    );
    _mm256_blendv_ps(res, inf_or_0, big)
}

/// `(f64(j) · 2^n) as f32` per lane for integer `n` in `-192..=192` (other lanes: anything).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_f64(j: __m256, n: __m256) -> __m256 {
    let ni = _mm256_cvtps_epi32(n);
    let half = |jh: __m128, nh: __m128i| {
        let e = _mm256_slli_epi64::<52>(_mm256_add_epi64(
            _mm256_cvtepi32_epi64(nh),
            _mm256_set1_epi64x(1023),
        ));
        _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(jh), _mm256_castsi256_pd(e)))
    };
    let lo = half(_mm256_castps256_ps128(j), _mm256_castsi256_si128(ni));
    let hi = half(
        _mm256_extractf128_ps::<1>(j),
        _mm256_extracti128_si256::<1>(ni),
    );
    _mm256_set_m128(hi, lo)
}

// ---------------------------------------------------------------------------------------------
// Activations
// ---------------------------------------------------------------------------------------------

/// `swiglu_loop` (activation.rs): `gate[i] = silu_ggml(gate[i]) * up[i]`, with
/// `silu_ggml(x) = x / (1 + expf_ggml(0 - x))`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn swiglu(gate: &mut [f32], up: &[f32]) {
    let n = gate.len().min(up.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = ld(&gate[i..]);
        let e = expf8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        let s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0), e));
        st(&mut gate[i..], _mm256_mul_ps(s, ld(&up[i..])));
        i += 8;
    }
    for (g, &u) in gate[i..n].iter_mut().zip(&up[i..n]) {
        *g = super::activation::silu_ggml(*g) * u;
    }
}

/// `geglu_inplace` (activation.rs): `gate[i] = 0` if `gate[i] <= -10`, else
/// `gelu_tanh_f16(gate[i]) * up[i]` (the table entry of the input rounded to `f16`, or the
/// input itself from 10 up).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn geglu(gate: &mut [f32], up: &[f32], table: &[u16; 65536]) {
    let n = gate.len().min(up.len());
    let mut i = 0;
    let mut idx = [0u16; 8];
    let mut val = [0u16; 8];
    while i + 8 <= n {
        let x = ld(&gate[i..]);
        let hx = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
        // SAFETY: `idx` is 16 writable bytes; unaligned store.
        unsafe { _mm_storeu_si128(idx.as_mut_ptr().cast(), hx) };
        for (v, &k) in val.iter_mut().zip(&idx) {
            *v = table[usize::from(k)];
        }
        // SAFETY: `val` is 16 readable bytes; unaligned load.
        let g = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(val.as_ptr().cast()) });
        let g = _mm256_blendv_ps(g, x, _mm256_cmp_ps::<_CMP_GE_OQ>(x, _mm256_set1_ps(10.0)));
        let y = _mm256_mul_ps(g, ld(&up[i..]));
        let low = _mm256_cmp_ps::<_CMP_LE_OQ>(x, _mm256_set1_ps(-10.0));
        st(&mut gate[i..], _mm256_andnot_ps(low, y));
        i += 8;
    }
    for (g, &u) in gate[i..n].iter_mut().zip(&up[i..n]) {
        *g = if *g <= -10.0 {
            0.0
        } else {
            super::activation::gelu_tanh_f16(*g) * u
        };
    }
}

// ---------------------------------------------------------------------------------------------
// Flash attention, one key at a time (decode)
// ---------------------------------------------------------------------------------------------

/// `dot_f16` (flash.rs): ggml's AVX-512 `ggml_vec_dot_f16` as 8 accumulators of 8 lanes (the
/// 4 × 16 lanes of the scalar code: accumulator `j`, lanes `l` is register `2j + l / 8`), the
/// same reduction, the tail in `f64`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f16(k: &[u8], q: &[f16]) -> f32 {
    let n = q.len();
    assert!(k.len() >= 2 * n);
    let np = n / 64 * 64;
    let mut a = [_mm256_setzero_ps(); 8];
    let mut i = 0;
    while i < np {
        for (c, ac) in a.iter_mut().enumerate() {
            let e = i + 8 * c;
            *ac = _mm256_fmadd_ps(ld_h8(&k[2 * e..]), ld_f16(&q[e..]), *ac);
        }
        i += 64;
    }
    let mut sum = if np > 0 {
        // x0 = acc0 + acc2, x1 = acc1 + acc3, r = x0 + x1 (16 lanes each: lo, hi halves).
        let r_lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
        let r_hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
        f64::from(reduce_add_16(r_lo, r_hi))
    } else {
        0.0
    };
    for (e, qe) in q.iter().enumerate().skip(np) {
        sum += f64::from(h(&k[2 * e..]) * qe.to_f32());
    }
    sum as f32
}

/// `attend_one_chunk_f16_impl` (flash.rs): the query rounded to `f16`, [`dot_f16`] scores,
/// the `f16` value accumulator scaled and updated 8 lanes at a time.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn attend_one_chunk_f16(
    q: &[f32],
    kv: &LayerKv<'_>,
    kv_head: usize,
    keys: Range<usize>,
    scale: f32,
    out: &mut [f32],
) {
    const MAX: usize = super::flash::MAX_HEAD_DIM;
    let (dk, dv) = (kv.head_dim_k(), kv.head_dim_v());
    let mut qh_buf = [f16::ZERO; MAX];
    let qh = &mut qh_buf[..dk];
    let mut i = 0;
    while i + 8 <= dk {
        st_f16(&mut qh[i..], ld(&q[i..]));
        i += 8;
    }
    for (hq, &x) in qh[i..].iter_mut().zip(&q[i..]) {
        *hq = f16::from_f32(x);
    }
    let qh = &*qh;
    let mut acc_buf = [f16::ZERO; MAX];
    let acc = &mut acc_buf[..dv];
    let dv8 = dv / 8 * 8;
    let (mut m, mut s_sum) = (f32::NEG_INFINITY, 0.0f32);
    for pos in keys {
        let s = dot_f16(kv.k_row(pos, kv_head), qh) * scale + 0.0;
        let (mut ms, mut vs) = (1.0f32, 1.0f32);
        if s > m {
            ms = (m - s).exp();
            m = s;
            let f = _mm256_set1_ps(ms);
            let mut d = 0;
            while d < dv8 {
                let y = _mm256_mul_ps(ld_f16(&acc[d..]), f);
                st_f16(&mut acc[d..], y);
                d += 8;
            }
            for a in acc[dv8..].iter_mut() {
                *a = f16::from_f32(a.to_f32() * ms);
            }
        } else {
            vs = (s - m).exp();
        }
        let v = kv.v_row(pos, kv_head);
        let w = _mm256_set1_ps(vs);
        let mut d = 0;
        while d < dv8 {
            let y = _mm256_fmadd_ps(ld_h8(&v[2 * d..]), w, ld_f16(&acc[d..]));
            st_f16(&mut acc[d..], y);
            d += 8;
        }
        for (d, a) in acc.iter_mut().enumerate().skip(dv8) {
            *a = f16::from_f32(h(&v[2 * d..]).mul_add(vs, a.to_f32()));
        }
        s_sum = s_sum.mul_add(ms, vs);
    }
    let inv = if s_sum == 0.0 { 0.0 } else { 1.0 / s_sum };
    let fi = _mm256_set1_ps(inv);
    let mut d = 0;
    while d < dv8 {
        st(&mut out[d..], _mm256_mul_ps(ld_f16(&acc[d..]), fi));
        d += 8;
    }
    for (o, a) in out[dv8..dv].iter_mut().zip(&acc[dv8..]) {
        *o = a.to_f32() * inv;
    }
}

// ---------------------------------------------------------------------------------------------
// Flash attention, tiled (batches of 64+ queries)
// ---------------------------------------------------------------------------------------------

/// `out[i] *= f` for every element.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scale_row(out: &mut [f32], f: f32) {
    let n8 = out.len() / 8 * 8;
    let fv = _mm256_set1_ps(f);
    let mut d = 0;
    while d < n8 {
        let y = _mm256_mul_ps(ld(&out[d..]), fv);
        st(&mut out[d..], y);
        d += 8;
    }
    for o in out[n8..].iter_mut() {
        *o *= f;
    }
}

/// `soft_max_block` (flash.rs): `p = expf_ggml(s - max)`, the sum of each 16 by
/// `reduce_add_16`, accumulated in `f64`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn soft_max_block(s: &[f32; TILE], max: f32, p: &mut [f32; TILE]) -> f64 {
    let mv = _mm256_set1_ps(max);
    let mut sum = 0.0f64;
    for b in (0..TILE).step_by(16) {
        let lo = expf8(_mm256_sub_ps(ld(&s[b..]), mv));
        let hi = expf8(_mm256_sub_ps(ld(&s[b + 8..]), mv));
        st(&mut p[b..], lo);
        st(&mut p[b + 8..], hi);
        sum += f64::from(reduce_add_16(lo, hi));
    }
    sum
}

/// Scores of one query against the 64 keys of a tile: `kq[j] = (Σ_d k_j[d] q[d]) * scale + 0`,
/// each sum one sequential FMA chain over `d` (lane `j` of the accumulators is key `j`);
/// `kt` is the tile's keys transposed (`[dk][64]`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn tile_scores(q: &[f32], kt: &[f32], scale: f32, kq: &mut [f32; TILE]) {
    let dk = q.len();
    assert!(kt.len() >= dk * TILE);
    let mut a = [_mm256_setzero_ps(); TILE / 8];
    for (d, &x) in q.iter().enumerate() {
        let qd = _mm256_set1_ps(x);
        let row = &kt[d * TILE..(d + 1) * TILE];
        for (c, ac) in a.iter_mut().enumerate() {
            *ac = _mm256_fmadd_ps(ld(&row[8 * c..]), qd, *ac);
        }
    }
    let sv = _mm256_set1_ps(scale);
    for (c, ac) in a.iter().enumerate() {
        st(
            &mut kq[8 * c..],
            _mm256_add_ps(_mm256_mul_ps(*ac, sv), _mm256_setzero_ps()),
        );
    }
}

/// `out[d] = fma(p[j], v[j][d], out[d])` for `j` in order (`v` is `[p.len()][dv]`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn accumulate(out: &mut [f32], p: &[f32], v: &[f32]) {
    accumulate_from(out, p, v, 0);
}

/// [`accumulate`] of the columns `d0..` only (`out` is still the whole row).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn accumulate_from(out: &mut [f32], p: &[f32], v: &[f32], d0: usize) {
    let dv = out.len();
    assert!(v.len() >= p.len() * dv);
    let mut d = d0;
    // 64 columns at a time: eight independent FMA chains keep both FMA pipes busy (four
    // would wait on the FMA latency); each element's chain over `j` is unchanged.
    while d + 64 <= dv {
        let mut r: [__m256; 8] = std::array::from_fn(|c| ld(&out[d + 8 * c..]));
        for (j, &w) in p.iter().enumerate() {
            let wv = _mm256_set1_ps(w);
            let row = &v[j * dv + d..j * dv + d + 64];
            for (c, rc) in r.iter_mut().enumerate() {
                *rc = _mm256_fmadd_ps(wv, ld(&row[8 * c..]), *rc);
            }
        }
        for (c, rc) in r.iter().enumerate() {
            st(&mut out[d + 8 * c..], *rc);
        }
        d += 64;
    }
    while d + 32 <= dv {
        let mut r = [
            ld(&out[d..]),
            ld(&out[d + 8..]),
            ld(&out[d + 16..]),
            ld(&out[d + 24..]),
        ];
        for (j, &w) in p.iter().enumerate() {
            let wv = _mm256_set1_ps(w);
            let row = &v[j * dv + d..j * dv + d + 32];
            for (c, rc) in r.iter_mut().enumerate() {
                *rc = _mm256_fmadd_ps(wv, ld(&row[8 * c..]), *rc);
            }
        }
        for (c, rc) in r.iter().enumerate() {
            st(&mut out[d + 8 * c..], *rc);
        }
        d += 32;
    }
    while d + 8 <= dv {
        let mut r = ld(&out[d..]);
        for (j, &w) in p.iter().enumerate() {
            r = _mm256_fmadd_ps(_mm256_set1_ps(w), ld(&v[j * dv + d..]), r);
        }
        st(&mut out[d..], r);
        d += 8;
    }
    for (e, o) in out.iter_mut().enumerate().skip(d) {
        for (j, &w) in p.iter().enumerate() {
            *o = w.mul_add(v[j * dv + e], *o);
        }
    }
}

/// [`tile_scores`] of `N` queries in one pass over the key tile: `A` accumulators (`8 * A`
/// keys) per query at a time (`N * A == 8` registers), so each cache line of `kt` is read
/// from L2 once for all `N` queries instead of once per query. Key `j`'s score for query `n`
/// is the same sequential FMA chain over `d` as in [`tile_scores`]. Blocks of keys for which
/// `seen(j0, j1)` (keys `j0..j1` of the tile) is false are skipped: their `kq` entries are left
/// as they were, for the caller to mask.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn tile_scores_n<const N: usize, const A: usize>(
    qs: [&[f32]; N],
    kt: &[f32],
    scale: f32,
    kq: &mut [[f32; TILE]; N],
    seen: impl Fn(usize, usize) -> bool,
) {
    const { assert!(N * A == 8 && TILE.is_multiple_of(8 * A)) };
    let dk = qs[0].len();
    assert!(qs.iter().all(|q| q.len() == dk) && kt.len() >= dk * TILE);
    let sv = _mm256_set1_ps(scale);
    for j0 in (0..TILE).step_by(8 * A) {
        if !seen(j0, j0 + 8 * A) {
            // No query sees these keys: their scores would be masked anyway.
            continue;
        }
        let mut a = [[_mm256_setzero_ps(); A]; N];
        for d in 0..dk {
            let row = &kt[d * TILE + j0..d * TILE + j0 + 8 * A];
            let k: [__m256; A] = std::array::from_fn(|c| ld(&row[8 * c..]));
            for (an, q) in a.iter_mut().zip(qs) {
                let qd = _mm256_set1_ps(q[d]);
                for (ac, &kc) in an.iter_mut().zip(&k) {
                    *ac = _mm256_fmadd_ps(kc, qd, *ac);
                }
            }
        }
        for (an, kqn) in a.iter().zip(kq.iter_mut()) {
            for (c, ac) in an.iter().enumerate() {
                st(
                    &mut kqn[j0 + 8 * c..],
                    _mm256_add_ps(_mm256_mul_ps(*ac, sv), _mm256_setzero_ps()),
                );
            }
        }
    }
}

/// [`accumulate`] of `N` output rows with the same value rows: `out_n[d] = fma(p_n[j],
/// v[j][d], out_n[d])` for `j` in order, `8 * A` columns of all `N` rows at a time (`N * A ==
/// 8` registers), so each cache line of `v` is read from L2 once for all `N` rows. Each
/// element's chain over `j` is the one of [`accumulate`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn accumulate_n<const N: usize, const A: usize>(
    mut out: [&mut [f32]; N],
    p: [&[f32]; N],
    v: &[f32],
) {
    const { assert!(N * A == 8) };
    let (dv, nj) = (out[0].len(), p[0].len());
    assert!(out.iter().all(|o| o.len() == dv) && p.iter().all(|pn| pn.len() == nj));
    assert!(v.len() >= nj * dv);
    let mut d = 0;
    while d + 8 * A <= dv {
        let mut r: [[__m256; A]; N] =
            std::array::from_fn(|n| std::array::from_fn(|c| ld(&out[n][d + 8 * c..])));
        for j in 0..nj {
            let row = &v[j * dv + d..j * dv + d + 8 * A];
            let x: [__m256; A] = std::array::from_fn(|c| ld(&row[8 * c..]));
            for (rn, pn) in r.iter_mut().zip(p) {
                let wv = _mm256_set1_ps(pn[j]);
                for (rc, &xc) in rn.iter_mut().zip(&x) {
                    *rc = _mm256_fmadd_ps(wv, xc, *rc);
                }
            }
        }
        for (rn, on) in r.iter().zip(out.iter_mut()) {
            for (c, rc) in rn.iter().enumerate() {
                st(&mut on[d + 8 * c..], *rc);
            }
        }
        d += 8 * A;
    }
    // The columns past the last whole `8 * A`: one row at a time, as `accumulate` does them.
    for (on, pn) in out.into_iter().zip(p) {
        accumulate_from(on, pn, v, d);
    }
}

/// Widens an `f16` row (little-endian bytes) into `dst`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn widen(src: &[u8], dst: &mut [f32]) {
    let n = dst.len();
    let n8 = n / 8 * 8;
    let mut d = 0;
    while d < n8 {
        st(&mut dst[d..], ld_h8(&src[2 * d..]));
        d += 8;
    }
    for (e, x) in dst.iter_mut().enumerate().skip(n8) {
        *x = h(&src[2 * e..]);
    }
}

/// Widens an `f16` key row into column `j` of the transposed tile `kt` (`[dk][64]`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn widen_column(src: &[u8], kt: &mut [f32], j: usize, dk: usize) {
    let n8 = dk / 8 * 8;
    let mut tmp = [0.0f32; 8];
    let mut d = 0;
    while d < n8 {
        st(&mut tmp, ld_h8(&src[2 * d..]));
        for (l, &x) in tmp.iter().enumerate() {
            kt[(d + l) * TILE + j] = x;
        }
        d += 8;
    }
    for e in n8..dk {
        kt[e * TILE + j] = h(&src[2 * e..]);
    }
}

/// [`widen_column`] for the eight keys `src[0..8]` into columns `j0..j0 + 8` of `kt`: each
/// 8 x 8 block (eight keys' eight dimensions) is transposed in registers and stored as eight
/// runs of eight floats. The same values as eight `widen_column` calls.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn widen_columns8(src: [&[u8]; 8], kt: &mut [f32], j0: usize, dk: usize) {
    let n8 = dk / 8 * 8;
    let mut d = 0;
    while d < n8 {
        let r: [__m256; 8] = std::array::from_fn(|k| ld_h8(&src[k][2 * d..]));
        // SAFETY: AVX2 is enabled in this function.
        let cols = unsafe { crate::kernels::transpose8_ps(r) };
        for (l, c) in cols.iter().enumerate() {
            st(&mut kt[(d + l) * TILE + j0..], *c);
        }
        d += 8;
    }
    for (k, row) in src.iter().enumerate() {
        for e in n8..dk {
            kt[e * TILE + j0 + k] = h(&row[2 * e..]);
        }
    }
}

/// Queries per group of [`attend_tiled_f16_many`]: the key and value tiles are read once
/// per group and tile instead of once per query and tile.
const GROUP: usize = 4;

/// One tile's step of `attend_tiled_f16_impl` (flash.rs) for `N` queries at once (`A`: see
/// [`tile_scores_n`]): query `n` is `qs[n]`, its output row `rows[n]`, its running maximum
/// and sum `m[idx[n]]` and `s[idx[n]]` (`(m, s)` in `ms`), and it sees keys `ab[n]` of the
/// tile (relative to the tile, not empty); `kt` is the tile's keys transposed (`[dk][64]`),
/// `vt` its values (`[64][dv]`). Every query's operations are the one-query code's, in its
/// order; only the loads are shared.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn tile_group<const N: usize, const A: usize>(
    mut rows: [&mut [f32]; N],
    qs: [&[f32]; N],
    ab: [(usize, usize); N],
    idx: [usize; N],
    (kt, vt, scale): (&[f32], &[f32], f32),
    (m, s): &mut (&mut [f32], &mut [f32]),
) {
    let dv = rows[0].len();
    let mut kq = [[0.0f32; TILE]; N];
    let mut p = [[0.0f32; TILE]; N];
    if N == 1 {
        tile_scores(qs[0], kt, scale, &mut kq[0]);
    } else {
        tile_scores_n::<N, A>(qs, kt, scale, &mut kq, |j0, j1| {
            ab.iter().any(|&(a, b)| a < j1 && j0 < b)
        });
    }
    for n in 0..N {
        let ((a, b), i, row) = (ab[n], idx[n], &mut *rows[n]);
        let kq = &mut kq[n];
        kq[..a].fill(f32::NEG_INFINITY);
        kq[b..].fill(f32::NEG_INFINITY);
        let tile_max = kq.iter().fold(f32::NEG_INFINITY, |x, &y| x.max(y));
        let m_new = m[i].max(tile_max);
        if m_new > m[i] {
            let ms = (m[i] - m_new).exp();
            scale_row(row, ms);
            s[i] *= ms;
        }
        m[i] = m_new;
        let sum = soft_max_block(kq, m[i], &mut p[n]);
        s[i] = (f64::from(s[i]) + sum) as f32;
    }
    // Each row's chain over the keys `a..b` in order: the keys all of them see (`ja..jb`)
    // together, the others (a diagonal or window edge) one row at a time before and after.
    let ja = ab.iter().map(|x| x.0).max().unwrap_or(0);
    let jb = ab.iter().map(|x| x.1).min().unwrap_or(0);
    let (ja, jb) = if N > 1 && ja < jb { (ja, jb) } else { (0, 0) };
    for n in 0..N {
        let (a, b) = ab[n];
        let e = if ja < jb { ja } else { b };
        accumulate(rows[n], &p[n][a..e], &vt[a * dv..e * dv]);
    }
    if ja < jb {
        accumulate_n::<N, A>(
            rows.each_mut().map(|r| &mut **r),
            std::array::from_fn(|n| &p[n][ja..jb]),
            &vt[ja * dv..jb * dv],
        );
        for n in 0..N {
            let b = ab[n].1;
            accumulate(rows[n], &p[n][jb..b], &vt[jb * dv..b * dv]);
        }
    }
}

/// `attend_tiled_f16_impl` (flash.rs) for `nq` queries of one KV head at once: each key and
/// value tile is widened once (keys transposed) and used by every query that sees part of it;
/// each query's arithmetic is exactly the one-query code's, so its result does not depend on
/// the other queries. `out` is `[nq][dv]`; `kt` holds `dk * 64` floats, `vt` `64 * dv`, `m`
/// and `s` `nq`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn attend_tiled_f16_many<'q>(
    kv: &LayerKv<'_>,
    kv_head: usize,
    nq: usize,
    query: &impl Fn(usize) -> (&'q [f32], Range<usize>),
    scale: f32,
    out: &mut [f32],
    kt: &mut [f32],
    vt: &mut [f32],
    m: &mut [f32],
    s: &mut [f32],
) {
    let (dk, dv) = (kv.head_dim_k(), kv.head_dim_v());
    let (mut lo, mut hi) = (usize::MAX, 0);
    for i in 0..nq {
        let r = query(i).1;
        if r.start < r.end {
            lo = lo.min(r.start);
            hi = hi.max(r.end);
        }
    }
    out.fill(0.0);
    m[..nq].fill(f32::NEG_INFINITY);
    s[..nq].fill(0.0);
    let mut ic = if lo < hi { lo / TILE * TILE } else { hi };
    while ic < hi {
        let (ta, tb) = (ic.max(lo), (ic + TILE).min(hi));
        let mut pos = ta;
        while pos + 8 <= tb {
            let rows: [&[u8]; 8] = std::array::from_fn(|k| kv.k_row(pos + k, kv_head));
            widen_columns8(rows, kt, pos - ic, dk);
            pos += 8;
        }
        for pos in pos..tb {
            widen_column(kv.k_row(pos, kv_head), kt, pos - ic, dk);
        }
        for pos in ta..tb {
            let j = pos - ic;
            widen(kv.v_row(pos, kv_head), &mut vt[j * dv..(j + 1) * dv]);
        }
        // The queries in groups of `GROUP`; those of a group that see part of this tile go
        // through it together (`tile_group`).
        for (g, grp) in out[..nq * dv].chunks_mut(GROUP * dv).enumerate() {
            let mut rows: [&mut [f32]; GROUP] = [&mut [], &mut [], &mut [], &mut []];
            let mut qs: [&[f32]; GROUP] = [&[]; GROUP];
            let mut ab = [(0, 0); GROUP];
            let mut idx = [0; GROUP];
            let mut n = 0;
            for (k, row) in grp.chunks_exact_mut(dv).enumerate() {
                let i = g * GROUP + k;
                let (q, r) = query(i);
                let (a, b) = (ic.max(r.start), (ic + TILE).min(r.end));
                if a < b {
                    (rows[n], qs[n], ab[n], idx[n]) = (row, &q[..dk], (a - ic, b - ic), i);
                    n += 1;
                }
            }
            let [r0, r1, r2, r3] = rows;
            let [q0, q1, q2, q3] = qs;
            let [ab0, ab1, ab2, ab3] = ab;
            let [i0, i1, i2, i3] = idx;
            let (kt, vt) = (&*kt, &*vt);
            let mut sm = (&mut *m, &mut *s);
            match n {
                4 => tile_group::<4, 2>(
                    [r0, r1, r2, r3],
                    [q0, q1, q2, q3],
                    [ab0, ab1, ab2, ab3],
                    [i0, i1, i2, i3],
                    (kt, vt, scale),
                    &mut sm,
                ),
                3 => {
                    tile_group::<2, 4>(
                        [r0, r1],
                        [q0, q1],
                        [ab0, ab1],
                        [i0, i1],
                        (kt, vt, scale),
                        &mut sm,
                    );
                    tile_group::<1, 8>([r2], [q2], [ab2], [i2], (kt, vt, scale), &mut sm);
                }
                2 => tile_group::<2, 4>(
                    [r0, r1],
                    [q0, q1],
                    [ab0, ab1],
                    [i0, i1],
                    (kt, vt, scale),
                    &mut sm,
                ),
                1 => tile_group::<1, 8>([r0], [q0], [ab0], [i0], (kt, vt, scale), &mut sm),
                _ => {}
            }
        }
        ic += TILE;
    }
    for (i, row) in out.chunks_exact_mut(dv).enumerate().take(nq) {
        let inv = if s[i] == 0.0 { 0.0 } else { 1.0 / s[i] };
        scale_row(row, inv);
    }
}

// ---------------------------------------------------------------------------------------------
// RoPE
// ---------------------------------------------------------------------------------------------

/// `rope_apply` (rope.rs), [`RopeMode::Normal`](super::rope::RopeMode::Normal): each adjacent
/// pair `(x0, x1)` becomes `(fma(x0, cos, -(x1 sin)), fma(x0, sin, x1 cos))`; `cache` is
/// `[n_rot]` (`cos, sin` per pair), `head` at least that long.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn rope_normal(head: &mut [f32], cache: &[f32]) {
    let n = cache.len();
    let n8 = n / 8 * 8;
    // -0.0 in the even lanes: negates the first product of each pair (exact).
    let neg_even = _mm256_castsi256_ps(_mm256_set_epi32(
        0,
        i32::MIN,
        0,
        i32::MIN,
        0,
        i32::MIN,
        0,
        i32::MIN,
    ));
    let mut i = 0;
    while i < n8 {
        let x = ld(&head[i..]);
        let cs = ld(&cache[i..]); // [c, s, ...]
        let sc = _mm256_permute_ps::<0b10_11_00_01>(cs); // [s, c, ...]
        let x0 = _mm256_moveldup_ps(x); // [x0, x0, ...]
        let x1 = _mm256_movehdup_ps(x); // [x1, x1, ...]
        let t = _mm256_xor_ps(_mm256_mul_ps(x1, sc), neg_even); // [-(x1 s), x1 c]
        st(&mut head[i..], _mm256_fmadd_ps(x0, cs, t));
        i += 8;
    }
    while i < n {
        let (x0, x1, c, s) = (head[i], head[i + 1], cache[i], cache[i + 1]);
        head[i] = x0.mul_add(c, -(x1 * s));
        head[i + 1] = x0.mul_add(s, x1 * c);
        i += 2;
    }
}

/// `rope_apply` (rope.rs), [`RopeMode::Neox`](super::rope::RopeMode::Neox): element `i` pairs
/// with `i + n_rot / 2`, rotated as in [`rope_normal`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn rope_neox(head: &mut [f32], cache: &[f32]) {
    let half = cache.len() / 2;
    let (lo, hi) = head[..2 * half].split_at_mut(half);
    let h8 = half / 8 * 8;
    let mut i = 0;
    while i < h8 {
        let a = ld(&cache[2 * i..]); // c0 s0 c1 s1 | c2 s2 c3 s3
        let b = ld(&cache[2 * i + 8..]); // c4 s4 c5 s5 | c6 s6 c7 s7
        let c = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
            _mm256_shuffle_ps::<0b10_00_10_00>(a, b),
        )));
        let s = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
            _mm256_shuffle_ps::<0b11_01_11_01>(a, b),
        )));
        let (x0, x1) = (ld(&lo[i..]), ld(&hi[i..]));
        st(&mut lo[i..], _mm256_fmsub_ps(x0, c, _mm256_mul_ps(x1, s)));
        st(&mut hi[i..], _mm256_fmadd_ps(x0, s, _mm256_mul_ps(x1, c)));
        i += 8;
    }
    for j in h8..half {
        let (x0, x1, c, s) = (lo[j], hi[j], cache[2 * j], cache[2 * j + 1]);
        lo[j] = x0.mul_add(c, -(x1 * s));
        hi[j] = x0.mul_add(s, x1 * c);
    }
}
