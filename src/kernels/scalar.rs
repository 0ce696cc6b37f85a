//! The scalar reference kernels: the *definition* of every dot product.
//!
//! kiln's results are meant to equal llama.cpp's on x86 (llama.cpp 0c1e570, AVX-512 build)
//! bit for bit, because any rounding difference, however small, is amplified by the Q8
//! re-quantization of the activations into visibly different logits. So for the types where
//! that is done (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q4_K, Q5_K, Q6_K, and the Q8_0/Q8_1/Q8_K
//! activations), each function below reproduces the arithmetic of the x86 code llama.cpp runs:
//! the same exact integer partial sums, and the same float operations (products, fused
//! multiply-adds, lane structure, horizontal sums) in the same order. Where llama.cpp's
//! batch kernels round differently from its one-token `vec_dot` (repacked Q4_K, the tiled
//! K-quant matmul, tinyBLAS for IQ4_NL), there is one function per code path and
//! `matmul::Path` picks the one llama.cpp would use. The other types (F32, F16, BF16, Q2_K,
//! Q3_K, IQ4_XS) are still transcriptions of ggml's generic C code
//! (`ggml-cpu/quants.c`), which round differently from llama.cpp's x86 code in the last bits.
//! `tests/kernels_llamacpp.rs` checks the reproduced types against ggml's own results.
//!
//! The SIMD kernels must compute exactly the same: any exact integer method, but the float
//! operations as written here, and a kernel per `matmul::Path` (the tables' `paths`). They do
//! on every ISA (AVX2, AVX-512, NEON, dotprod) for every type above: `tests/kernels_simd.rs`
//! (`EXACT_TYPES`), `tests/kernels_matmul.rs` (every path), `tests/kernels_llamacpp.rs`
//! (ggml's own results). Hence SmolLM2 and Gemma 3 equal llama.cpp bit for bit on every ISA.
//!
//! All kernels read blocks from byte slices at any alignment (`pod_read_unaligned`), so a row
//! from a file whose tensors are not aligned still works. A row is `nb` whole blocks; the row
//! drivers in [`super`] check the lengths before calling in here.

// The loops mirror ggml's C loops index for index, which is the point of a reference.
#![allow(clippy::needless_range_loop)]

use bytemuck::{Pod, pod_read_unaligned};
use half::{bf16, f16};

use crate::dtype::QK_K;
use crate::quant::blocks::{
    BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0,
    BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0, BlockQ8_1, BlockQ8K, KVALUES_IQ4NL,
};
use crate::quant::{f32_to_bf16, f32_to_f16, k_quants};

/// Iterates the blocks of type `T` in `bytes` (whole blocks only), read unaligned.
#[inline(always)]
fn blocks<T: Pod>(bytes: &[u8]) -> impl Iterator<Item = T> + '_ {
    bytes
        .chunks_exact(size_of::<T>())
        .map(pod_read_unaligned::<T>)
}

/// Reads the i-th little-endian f16 of `bytes`.
#[inline(always)]
fn f16_at(bytes: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).to_f32()
}

/// Reads the i-th little-endian bf16 of `bytes`.
#[inline(always)]
fn bf16_at(bytes: &[u8], i: usize) -> f32 {
    bf16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]).to_f32()
}

// ---------------------------------------------------------------------------------------------
// Float types. ggml accumulates in double (`ggml_float`); the products are formed in f32 (exact
// for f16 x f16 and bf16 x bf16, whose 11- and 8-bit mantissas multiply into at most 24 bits).
// ---------------------------------------------------------------------------------------------

/// `w · x` for two f32 rows of `n` elements (ggml `ggml_vec_dot_f32`, generic path).
pub(crate) fn dot_f32(w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f64;
    for (a, b) in w.as_chunks::<4>().0.iter().zip(x.as_chunks::<4>().0) {
        sumf += (f32::from_le_bytes(*a) * f32::from_le_bytes(*b)) as f64;
    }
    sumf as f32
}

/// `w · x` for two f16 rows (ggml `ggml_vec_dot_f16`, generic path).
pub(crate) fn dot_f16(w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f64;
    for i in 0..w.len() / 2 {
        sumf += (f16_at(w, i) * f16_at(x, i)) as f64;
    }
    sumf as f32
}

/// `w · x` for two bf16 rows (ggml `ggml_vec_dot_bf16`, generic path).
pub(crate) fn dot_bf16(w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f64;
    for i in 0..w.len() / 2 {
        sumf += (bf16_at(w, i) * bf16_at(x, i)) as f64;
    }
    sumf as f32
}

// ---------------------------------------------------------------------------------------------
// Legacy 32-element formats. Weight nibble j (low) pairs with activation j, the high nibble of
// byte j with activation j + 16.
// ---------------------------------------------------------------------------------------------

/// Q4_0 × Q8_0 in llama.cpp's x86 order (`ggml_vec_dot_q4_0_q8_0` for one token, tinyBLAS
/// for batches: the same rounding): [`lanes8_fma`] per block with `d_w·d_x`, then [`hsum8`].
/// Weights are `nibble − 8`, low nibbles first.
pub(crate) fn dot_q4_0(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (xb, yb) in blocks::<BlockQ4_0>(w).zip(blocks::<BlockQ8_0>(x)) {
        let q = |k: usize| -> i32 {
            let nib = if k < 16 {
                xb.qs[k] & 0x0F
            } else {
                xb.qs[k - 16] >> 4
            };
            nib as i32 - 8
        };
        let d = xb.d.to_f32() * yb.d.to_f32();
        lanes8_fma(&mut acc, d, |k| q(k) * yb.qs[k] as i32);
    }
    hsum8(&acc)
}

/// Q4_1 × Q8_1 in llama.cpp's x86 order: per block, eight lane sums of four consecutive
/// products (elements `4j..4j+4`), each lane accumulated over the blocks with one fused
/// multiply-add by `d_w·d_x`; the `m_w·s_x` terms summed separately; at the end
/// [`hsum8`] of the lanes plus that sum.
pub(crate) fn dot_q4_1(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut summs = 0.0f32;
    for (xb, yb) in blocks::<BlockQ4_1>(w).zip(blocks::<BlockQ8_1>(x)) {
        summs = xb.m.to_f32().mul_add(yb.s.to_f32(), summs);
        let d = xb.d.to_f32() * yb.d.to_f32();
        let q = |k: usize| -> i32 {
            if k < 16 {
                (xb.qs[k] & 0x0F) as i32
            } else {
                (xb.qs[k - 16] >> 4) as i32
            }
        };
        for (j, a) in acc.iter_mut().enumerate() {
            let lane: i32 = (4 * j..4 * j + 4).map(|k| q(k) * yb.qs[k] as i32).sum();
            *a = d.mul_add(lane as f32, *a);
        }
    }
    hsum8(&acc) + summs
}

/// llama.cpp's `hsum_float_8`: `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))`.
#[inline(always)]
pub(crate) fn hsum8(a: &[f32; 8]) -> f32 {
    let r = [a[4] + a[0], a[5] + a[1], a[6] + a[2], a[7] + a[3]];
    (r[0] + r[2]) + (r[1] + r[3])
}

/// Q5_0 × Q8_0 in llama.cpp's x86 order (both `ggml_vec_dot_q5_0_q8_0` for one token and
/// tinyBLAS `tinyBLAS_Q0_AVX` for batches): eight lane sums of four consecutive products per
/// block, each lane accumulated over the blocks with one fused multiply-add by `d_w·d_x`, then
/// [`hsum8`]. Weights are `(4 low bits | fifth bit << 4) - 16`.
pub(crate) fn dot_q5_0(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (xb, yb) in blocks::<BlockQ5_0>(w).zip(blocks::<BlockQ8_0>(x)) {
        let qh = u32::from_le_bytes(xb.qh);
        let q = |k: usize| -> i32 {
            let nib = if k < 16 {
                xb.qs[k] & 0x0F
            } else {
                xb.qs[k - 16] >> 4
            };
            (nib | ((((qh >> k) & 1) << 4) as u8)) as i32 - 16
        };
        let d = xb.d.to_f32() * yb.d.to_f32();
        lanes8_fma(&mut acc, d, |k| q(k) * yb.qs[k] as i32);
    }
    hsum8(&acc)
}

/// One block of the eight-lane x86 dot products: lane `j` gets `d · Σ_{k=4j}^{4j+3} prod(k)`
/// as one fused multiply-add (the integer lane sum is exact, so SIMD `maddubs`+`madd` or
/// `dpbusd` give the same value).
#[inline(always)]
fn lanes8_fma(acc: &mut [f32; 8], d: f32, prod: impl Fn(usize) -> i32) {
    for (j, a) in acc.iter_mut().enumerate() {
        let lane = prod(4 * j) + prod(4 * j + 1) + prod(4 * j + 2) + prod(4 * j + 3);
        *a = d.mul_add(lane as f32, *a);
    }
}

/// Q5_1 × Q8_1 in llama.cpp's x86 order (`ggml_vec_dot_q5_1_q8_1`; no batch kernel): as
/// [`dot_q4_1`], weights `nibble | fifth bit << 4`.
pub(crate) fn dot_q5_1(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut summs = 0.0f32;
    for (xb, yb) in blocks::<BlockQ5_1>(w).zip(blocks::<BlockQ8_1>(x)) {
        summs = xb.m.to_f32().mul_add(yb.s.to_f32(), summs);
        let qh = u32::from_le_bytes(xb.qh);
        let q = |k: usize| -> i32 {
            let nib = if k < 16 {
                xb.qs[k] & 0x0F
            } else {
                xb.qs[k - 16] >> 4
            };
            (nib | ((((qh >> k) & 1) << 4) as u8)) as i32
        };
        let d = xb.d.to_f32() * yb.d.to_f32();
        lanes8_fma(&mut acc, d, |k| q(k) * yb.qs[k] as i32);
    }
    hsum8(&acc) + summs
}

/// Q8_0 × Q8_0 in llama.cpp's x86 order (`ggml_vec_dot_q8_0_q8_0` for one token, tinyBLAS for
/// batches; both the same): [`lanes8_fma`] per block with `d_w·d_x`, then [`hsum8`].
pub(crate) fn dot_q8_0(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (xb, yb) in blocks::<BlockQ8_0>(w).zip(blocks::<BlockQ8_0>(x)) {
        let d = xb.d.to_f32() * yb.d.to_f32();
        lanes8_fma(&mut acc, d, |k| xb.qs[k] as i32 * yb.qs[k] as i32);
    }
    hsum8(&acc)
}

/// IQ4_NL weight `k` of a block: the grid value of nibble `k` (low nibbles first).
#[inline(always)]
fn iq4nl_value(xb: &BlockIq4Nl, k: usize) -> i32 {
    let nib = if k < 16 {
        xb.qs[k] & 0x0F
    } else {
        xb.qs[k - 16] >> 4
    };
    KVALUES_IQ4NL[nib as usize] as i32
}

/// IQ4_NL × Q8_0 as llama.cpp's x86 `ggml_vec_dot_iq4_nl_q8_0` rounds it (one token): two
/// sets of eight lanes, even blocks into the first and odd blocks into the second (each lane
/// as [`lanes8_fma`] with `d_x·d_w`), [`hsum8`] of their lane-wise sum; an odd last block is
/// added after that as `sum + (d_x·d_w)·Σ` (two roundings).
pub(crate) fn dot_iq4_nl(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = [[0.0f32; 8]; 2];
    let nb = w.len() / size_of::<BlockIq4Nl>();
    let mut tail = None;
    for (i, (xb, yb)) in blocks::<BlockIq4Nl>(w)
        .zip(blocks::<BlockQ8_0>(x))
        .enumerate()
    {
        let d = yb.d.to_f32() * xb.d.to_f32();
        if nb % 2 == 1 && i == nb - 1 {
            let sumi: i32 = (0..32).map(|k| iq4nl_value(&xb, k) * yb.qs[k] as i32).sum();
            tail = Some((d, sumi));
        } else {
            lanes8_fma(&mut acc[i % 2], d, |k| {
                iq4nl_value(&xb, k) * yb.qs[k] as i32
            });
        }
    }
    let mut sum = [0.0f32; 8];
    for (s, (a, b)) in sum.iter_mut().zip(acc[0].iter().zip(&acc[1])) {
        *s = a + b;
    }
    let sumf = hsum8(&sum);
    match tail {
        Some((d, sumi)) => sumf + d * sumi as f32,
        None => sumf,
    }
}

/// IQ4_NL × Q8_0 as llama.cpp's tinyBLAS (`tinyBLAS_Q0_AVX`, batches of 2 or more tokens, matrix
/// not repacked) rounds it: [`lanes8_fma`] per block with `d_w·d_x`, then [`hsum8`].
pub(crate) fn dot_iq4_nl_tinyblas(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (xb, yb) in blocks::<BlockIq4Nl>(w).zip(blocks::<BlockQ8_0>(x)) {
        let d = xb.d.to_f32() * yb.d.to_f32();
        lanes8_fma(&mut acc, d, |k| iq4nl_value(&xb, k) * yb.qs[k] as i32);
    }
    hsum8(&acc)
}

// ---------------------------------------------------------------------------------------------
// K-quants (256-element super-blocks) × Q8_K.
// ---------------------------------------------------------------------------------------------

/// Q2_K × Q8_K. 16 groups of 16; group g uses `scales[g] & 15` as scale and `scales[g] >> 4` as
/// min; the min term uses the activation's precomputed group sums `bsums`.
pub(crate) fn dot_q2_k(w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (xb, yb) in blocks::<BlockQ2K>(w).zip(blocks::<BlockQ8K>(x)) {
        let sc = &xb.scales;
        let mut summs = 0i32;
        for j in 0..16 {
            summs += yb.bsums[j] as i32 * (sc[j] >> 4) as i32;
        }
        let dall = yb.d * xb.d.to_f32();
        let dmin = yb.d * xb.dmin.to_f32();

        let mut isum = 0i32;
        let mut is = 0;
        // Two halves of 128; in each, byte l of the 32 `qs` bytes holds elements l, l+32,
        // l+64, l+96 (shifts 0, 2, 4, 6); each 32 splits into two groups of 16.
        for k in 0..QK_K / 128 {
            let q2 = &xb.qs[32 * k..32 * k + 32];
            for j in 0..4 {
                let shift = 2 * j;
                let q8 = &yb.qs[128 * k + 32 * j..128 * k + 32 * j + 32];
                let d = (sc[is] & 0xF) as i32;
                is += 1;
                let mut isuml = 0i32;
                for l in 0..16 {
                    isuml += q8[l] as i32 * ((q2[l] >> shift) & 3) as i32;
                }
                isum += d * isuml;
                let d = (sc[is] & 0xF) as i32;
                is += 1;
                let mut isuml = 0i32;
                for l in 16..32 {
                    isuml += q8[l] as i32 * ((q2[l] >> shift) & 3) as i32;
                }
                isum += d * isuml;
            }
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// Unpacks Q3_K's twelve scale bytes into sixteen 6-bit scales (still biased by 32).
#[inline(always)]
pub(crate) fn q3k_scales(packed: &[u8; 12]) -> [u8; 16] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let a0 = u32::from_le_bytes([packed[0], packed[1], packed[2], packed[3]]);
    let a1 = u32::from_le_bytes([packed[4], packed[5], packed[6], packed[7]]);
    let tmp = u32::from_le_bytes([packed[8], packed[9], packed[10], packed[11]]);
    let aux = [
        (a0 & KMASK2) | ((tmp & KMASK1) << 4),
        (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
    ];
    let mut out = [0u8; 16];
    for (i, a) in aux.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&a.to_le_bytes());
    }
    out
}

/// Q3_K × Q8_K. Element values are `(2 low bits) - (hmask bit ? 0 : 4)`; 16 groups of 16 with
/// signed 6-bit scales. ggml accumulates per super-block in 8 integer lanes, folds each lane into
/// its own float sum with `d`, and adds the 8 float lanes at the end; so do we.
pub(crate) fn dot_q3_k(w: &[u8], x: &[u8]) -> f32 {
    let mut sums = [0.0f32; 8];
    for (xb, yb) in blocks::<BlockQ3K>(w).zip(blocks::<BlockQ8K>(x)) {
        // The 256 weights as small signed integers in -4..=3.
        let mut a = [0i8; QK_K];
        let mut m = 1u8;
        for h in 0..2 {
            let q3 = &xb.qs[32 * h..32 * h + 32];
            for s in 0..4 {
                for l in 0..32 {
                    let lo = ((q3[l] >> (2 * s)) & 3) as i8;
                    let sub = if xb.hmask[l] & m != 0 { 0 } else { 4 };
                    a[128 * h + 32 * s + l] = lo - sub;
                }
                m <<= 1;
            }
        }
        let scales = q3k_scales(&xb.scales);
        let mut aux32 = [0i32; 8];
        for j in 0..QK_K / 16 {
            let scale = scales[j] as i8 as i32 - 32;
            for half in 0..2 {
                for l in 0..8 {
                    let i = 16 * j + 8 * half + l;
                    let aux16 = (yb.qs[i] as i16) * (a[i] as i16);
                    aux32[l] += scale * aux16 as i32;
                }
            }
        }
        let d = xb.d.to_f32() * yb.d;
        for l in 0..8 {
            sums[l] += d * aux32[l] as f32;
        }
    }
    let mut sumf = 0.0f32;
    for s in sums {
        sumf += s;
    }
    sumf
}

/// Unpacks the twelve scale bytes of Q4_K / Q5_K into eight 6-bit scales and eight 6-bit mins.
#[inline(always)]
pub(crate) fn k4_scales_mins(packed: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let u0 = u32::from_le_bytes([packed[0], packed[1], packed[2], packed[3]]);
    let u1 = u32::from_le_bytes([packed[4], packed[5], packed[6], packed[7]]);
    let u2 = u32::from_le_bytes([packed[8], packed[9], packed[10], packed[11]]);
    let sc0 = u0 & KMASK1;
    let sc1 = (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4);
    let mn0 = u1 & KMASK1;
    let mn1 = ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4);
    let mut scales = [0u8; 8];
    let mut mins = [0u8; 8];
    scales[..4].copy_from_slice(&sc0.to_le_bytes());
    scales[4..].copy_from_slice(&sc1.to_le_bytes());
    mins[..4].copy_from_slice(&mn0.to_le_bytes());
    mins[4..].copy_from_slice(&mn1.to_le_bytes());
    (scales, mins)
}

/// The 256 weights of a Q4_K block as unsigned 4-bit values: byte `l` of each 32-byte run
/// holds element `64j + l` (low nibble) and `64j + 32 + l` (high nibble).
#[inline(always)]
fn q4k_values(xb: &BlockQ4K) -> [u8; QK_K] {
    let mut a = [0u8; QK_K];
    for j in 0..QK_K / 64 {
        for l in 0..32 {
            a[64 * j + l] = xb.qs[32 * j + l] & 0xF;
            a[64 * j + 32 + l] = xb.qs[32 * j + l] >> 4;
        }
    }
    a
}

/// `Σ_k a[k]·y[k]` over the elements `range` (exact in `i32`).
#[inline(always)]
fn idot(a: &[u8; QK_K], y: &[i8; QK_K], range: std::ops::Range<usize>) -> i32 {
    range.map(|k| a[k] as i32 * y[k] as i32).sum()
}

/// Q4_K × Q8_K as llama.cpp's x86 `ggml_vec_dot_q4_K_q8_K` (AVX2 code, used by the AVX-512
/// build too) rounds it: per block, eight lane sums (lane `m` holds, for every 64-element pair
/// of groups, `sc[2j]·Σ_{t<4} q·y` over elements `64j + 4m + t` plus `sc[2j+1]·…` over
/// `64j + 32 + 4m + t`), each accumulated with one fused multiply-add by `d_x·d_w`; the mins in
/// four lanes (`m[2p]·B[2p] + m[2p+1]·B[2p+1]`, `B` the 32-element activation sums) with one
/// fused multiply-add by `(−d_x)·dmin_w`; at the end [`hsum8`] of the first plus the four-lane
/// sum `(a0 + a2) + (a1 + a3)` of the second.
///
/// llama.cpp uses this for one to seven tokens when the matrix is not repacked (its row count
/// is not a multiple of 8); see [`dot_q4_k_8x8_gemv`], [`dot_q4_k_8x8_gemm`] and
/// [`dot_q4_k_tiled`] for the other cases.
pub(crate) fn dot_q4_k(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut acc_m = [0.0f32; 4];
    for (xb, yb) in blocks::<BlockQ4K>(w).zip(blocks::<BlockQ8K>(x)) {
        let d = yb.d * xb.d.to_f32();
        let dmin = -yb.d * xb.dmin.to_f32();
        let (sc, mn) = k4_scales_mins(&xb.scales);
        let a = q4k_values(&xb);
        for (p, am) in acc_m.iter_mut().enumerate() {
            let b = |g: usize| yb.bsums[2 * g] as i32 + yb.bsums[2 * g + 1] as i32;
            let prod = mn[2 * p] as i32 * b(2 * p) + mn[2 * p + 1] as i32 * b(2 * p + 1);
            *am = dmin.mul_add(prod as f32, *am);
        }
        for (m, l) in acc.iter_mut().enumerate() {
            let mut sumi = 0i32;
            for j in 0..QK_K / 64 {
                let lo = 64 * j + 4 * m;
                sumi += sc[2 * j] as i32 * idot(&a, &yb.qs, lo..lo + 4);
                sumi += sc[2 * j + 1] as i32 * idot(&a, &yb.qs, lo + 32..lo + 36);
            }
            *l = d.mul_add(sumi as f32, *l);
        }
    }
    hsum8(&acc) + ((acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]))
}

/// Per Q4_K block: the integer sums `Σ_g sc[g]·Σ_{k∈g} q_k y_k` and `Σ_g m[g]·Σ_{k∈g} y_k` over
/// the 32-element groups `groups`.
#[inline(always)]
fn q4k_isums(xb: &BlockQ4K, yb: &BlockQ8K, groups: std::ops::Range<usize>) -> (i32, i32) {
    k4_isums(&q4k_values(xb), &xb.scales, yb, groups)
}

/// [`q4k_isums`] for any Q4_K-style block: weights `a`, packed scales and mins `packed`.
#[inline(always)]
fn k4_isums(
    a: &[u8; QK_K],
    packed: &[u8; 12],
    yb: &BlockQ8K,
    groups: std::ops::Range<usize>,
) -> (i32, i32) {
    let (sc, mn) = k4_scales_mins(packed);
    let mut isum = 0i32;
    let mut imin = 0i32;
    for g in groups {
        isum += sc[g] as i32 * idot(a, &yb.qs, 32 * g..32 * g + 32);
        imin += mn[g] as i32 * (yb.bsums[2 * g] as i32 + yb.bsums[2 * g + 1] as i32);
    }
    (isum, imin)
}

/// Q4_K × Q8_K as llama.cpp's x86 repacked `ggml_gemv_q4_K_8x8_q8_K` rounds it (matrices
/// with a row count that is a multiple of 8 are repacked at load on AVX2/AVX-512 machines; the
/// gemv serves the last `n % 4` tokens of a batch, so every token of a one-token batch): per
/// block, `acc = fma(Σ sc·q·y, d_w·d_x, acc)` and `acc_m = fma(Σ m·B, dmin_w·d_x, acc_m)` over
/// the whole 256-element block, result `acc − acc_m`.
pub(crate) fn dot_q4_k_8x8_gemv(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = 0.0f32;
    let mut acc_m = 0.0f32;
    for (xb, yb) in blocks::<BlockQ4K>(w).zip(blocks::<BlockQ8K>(x)) {
        let (isum, imin) = q4k_isums(&xb, &yb, 0..8);
        acc = (isum as f32).mul_add(xb.d.to_f32() * yb.d, acc);
        acc_m = (imin as f32).mul_add(xb.dmin.to_f32() * yb.d, acc_m);
    }
    acc - acc_m
}

/// Q4_K × Q8_K as llama.cpp's x86 repacked `ggml_gemm_q4_K_8x8_q8_K` rounds it (the first
/// `n − n % 4` tokens of a batch; see [`dot_q4_k_8x8_gemv`]): as the gemv, but the two fused
/// multiply-adds happen once per 64-element pair of groups (four times per block).
pub(crate) fn dot_q4_k_8x8_gemm(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = 0.0f32;
    let mut acc_m = 0.0f32;
    for (xb, yb) in blocks::<BlockQ4K>(w).zip(blocks::<BlockQ8K>(x)) {
        let (dd, dm) = (xb.d.to_f32() * yb.d, xb.dmin.to_f32() * yb.d);
        for sb in 0..QK_K / 64 {
            let (isum, imin) = q4k_isums(&xb, &yb, 2 * sb..2 * sb + 2);
            acc = (isum as f32).mul_add(dd, acc);
            acc_m = (imin as f32).mul_add(dm, acc_m);
        }
    }
    acc - acc_m
}

/// Q4_K × Q8_K as llama.cpp's x86 tiled matmul (`ggml-cpu/tiled`, AVX-512 VNNI microkernel)
/// rounds it: used for batches of 8 or more tokens when the matrix is not repacked. Per block,
/// `r = fma(−dmin_w, Σ m·B, (Σ sc·q·y)·d_w)`, then `acc = fma(r, d_x, acc)`.
pub(crate) fn dot_q4_k_tiled(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = 0.0f32;
    for (xb, yb) in blocks::<BlockQ4K>(w).zip(blocks::<BlockQ8K>(x)) {
        let (isum, imin) = q4k_isums(&xb, &yb, 0..8);
        let r = (-xb.dmin.to_f32()).mul_add(imin as f32, isum as f32 * xb.d.to_f32());
        acc = r.mul_add(yb.d, acc);
    }
    acc
}

/// The 256 weights of a Q5_K block as unsigned 5-bit values: as [`q4k_values`] plus 16 when
/// bit `g` of `qh[l]` is set, for element `l` of 32-element group `g`.
#[inline(always)]
fn q5k_values(xb: &BlockQ5K) -> [u8; QK_K] {
    let mut a = [0u8; QK_K];
    for j in 0..QK_K / 64 {
        for l in 0..32 {
            let hi = |bit: usize| ((xb.qh[l] >> bit) & 1) << 4;
            a[64 * j + l] = (xb.qs[32 * j + l] & 0xF) | hi(2 * j);
            a[64 * j + 32 + l] = (xb.qs[32 * j + l] >> 4) | hi(2 * j + 1);
        }
    }
    a
}

/// Q5_K × Q8_K as llama.cpp's x86 `ggml_vec_dot_q5_K_q8_K` (AVX2 code) rounds it; used for one
/// to seven tokens (Q5_K is not repacked on x86). Per block, `d = d_x·d_w`,
/// `dmin = (−d_x)·dmin_w`; eight lanes as in [`dot_q4_k`] (5-bit weights) accumulated with
/// `fma(d, lane, acc)`; the mins as one integer `Σ_g m[g]·B[g]` added with
/// `summs = fma(dmin, that, summs)`; result `hsum8(acc) + summs`.
pub(crate) fn dot_q5_k(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut summs = 0.0f32;
    for (xb, yb) in blocks::<BlockQ5K>(w).zip(blocks::<BlockQ8K>(x)) {
        let d = yb.d * xb.d.to_f32();
        let dmin = -yb.d * xb.dmin.to_f32();
        let (sc, mn) = k4_scales_mins(&xb.scales);
        let a = q5k_values(&xb);
        let mins: i32 = (0..8)
            .map(|g| mn[g] as i32 * (yb.bsums[2 * g] as i32 + yb.bsums[2 * g + 1] as i32))
            .sum();
        summs = dmin.mul_add(mins as f32, summs);
        for (m, l) in acc.iter_mut().enumerate() {
            let mut sumi = 0i32;
            for j in 0..QK_K / 64 {
                let lo = 64 * j + 4 * m;
                sumi += sc[2 * j] as i32 * idot(&a, &yb.qs, lo..lo + 4);
                sumi += sc[2 * j + 1] as i32 * idot(&a, &yb.qs, lo + 32..lo + 36);
            }
            *l = d.mul_add(sumi as f32, *l);
        }
    }
    hsum8(&acc) + summs
}

/// Q5_K × Q8_K as llama.cpp's x86 tiled matmul rounds it (8 or more tokens): as
/// [`dot_q4_k_tiled`] with 5-bit weights.
pub(crate) fn dot_q5_k_tiled(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = 0.0f32;
    for (xb, yb) in blocks::<BlockQ5K>(w).zip(blocks::<BlockQ8K>(x)) {
        let (isum, imin) = k4_isums(&q5k_values(&xb), &xb.scales, &yb, 0..8);
        let r = (-xb.dmin.to_f32()).mul_add(imin as f32, isum as f32 * xb.d.to_f32());
        acc = r.mul_add(yb.d, acc);
    }
    acc
}

/// The 256 weights of a Q6_K block as unsigned 6-bit values (`q`, the weight is `q − 32`):
/// per 128-element half `h`, element `l` (`l < 32`) takes the low nibble of `ql[l]`, `l + 32`
/// of `ql[l + 32]`, `l + 64` the high nibble of `ql[l]`, `l + 96` of `ql[l + 32]`, each with two
/// bits of `qh[l]` (bits 0-1, 2-3, 4-5, 6-7) on top.
#[inline(always)]
fn q6k_values(xb: &BlockQ6K) -> [u8; QK_K] {
    let mut a = [0u8; QK_K];
    for h in 0..2 {
        let ql = &xb.ql[64 * h..64 * h + 64];
        let qh = &xb.qh[32 * h..32 * h + 32];
        let a = &mut a[128 * h..128 * h + 128];
        for l in 0..32 {
            a[l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
            a[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
            a[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            a[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
    }
    a
}

/// Q6_K × Q8_K as llama.cpp's x86 `ggml_vec_dot_q6_K_q8_K` (AVX2 code, used by the AVX-512
/// build too) rounds it; llama.cpp uses it for batches of one to seven tokens. Per block,
/// `d = d_x·d_w` and eight integer lanes: lane `m` sums `sc[g]·q_k·y_k` (unsigned `q`) over
/// the elements `k = 32c + 4m + t` (`c < 8`, `t < 4`, `g = k / 16`) minus
/// `32·(B[2m]·sc[2m] + B[2m+1]·sc[2m+1])` (`B` the 16-element activation sums); each lane
/// accumulated with one fused multiply-add by `d`, then [`hsum8`].
pub(crate) fn dot_q6_k(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (xb, yb) in blocks::<BlockQ6K>(w).zip(blocks::<BlockQ8K>(x)) {
        let d = yb.d * xb.d.to_f32();
        let a = q6k_values(&xb);
        let sc = |g: usize| xb.scales[g] as i32;
        for (m, l) in acc.iter_mut().enumerate() {
            let mut sumi = 0i32;
            for c in 0..QK_K / 32 {
                let k = 32 * c + 4 * m;
                sumi += sc(k / 16) * idot(&a, &yb.qs, k..k + 4);
            }
            sumi -= 32
                * (yb.bsums[2 * m] as i32 * sc(2 * m) + yb.bsums[2 * m + 1] as i32 * sc(2 * m + 1));
            *l = d.mul_add(sumi as f32, *l);
        }
    }
    hsum8(&acc)
}

/// Q6_K × Q8_K as llama.cpp's x86 tiled matmul (AVX-512 VNNI microkernel) rounds it; used for
/// batches of 8 or more tokens. Per block, the exact integer `Σ_g sc[g]·Σ_{k∈g} (q_k − 32)·y_k`
/// times `d_w`, then `acc = fma(that, d_x, acc)`.
pub(crate) fn dot_q6_k_tiled(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = 0.0f32;
    for (xb, yb) in blocks::<BlockQ6K>(w).zip(blocks::<BlockQ8K>(x)) {
        let a = q6k_values(&xb);
        let mut s1 = 0i32;
        for g in 0..QK_K / 16 {
            let raw = idot(&a, &yb.qs, 16 * g..16 * g + 16) - 32 * yb.bsums[g] as i32;
            s1 += xb.scales[g] as i32 * raw;
        }
        acc = (s1 as f32 * xb.d.to_f32()).mul_add(yb.d, acc);
    }
    acc
}

/// IQ4_XS × Q8_K: eight groups of 32 with 6-bit scales (`ls − 32`), values from the IQ4 grid.
pub(crate) fn dot_iq4_xs(w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (xb, yb) in blocks::<BlockIq4Xs>(w).zip(blocks::<BlockQ8K>(x)) {
        let d4d8 = xb.d.to_f32() * yb.d;
        let mut h = xb.scales_h;
        for ib in (0..QK_K / 32).step_by(2) {
            let ls1 = (xb.scales_l[ib / 2] & 0xF) | (((h << 4) & 0x30) as u8);
            let ls2 = (xb.scales_l[ib / 2] >> 4) | (((h << 2) & 0x30) as u8);
            h >>= 4;
            let d1 = d4d8 * (ls1 as i32 - 32) as f32;
            let d2 = d4d8 * (ls2 as i32 - 32) as f32;
            for (g, dg) in [(ib, d1), (ib + 1, d2)] {
                let qs = &xb.qs[16 * g..16 * g + 16];
                let q8 = &yb.qs[32 * g..32 * g + 32];
                let mut sumi1 = 0i32;
                let mut sumi2 = 0i32;
                for j in 0..16 {
                    sumi1 += q8[j] as i32 * KVALUES_IQ4NL[(qs[j] & 0xF) as usize] as i32;
                    sumi2 += q8[j + 16] as i32 * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as i32;
                }
                sumf += dg * (sumi1 + sumi2) as f32;
            }
        }
    }
    sumf
}

/// Row drivers (with the `DotRowsFn` signature) for the per-path variants of the reference
/// kernels that the matrix product picks for the scalar ISA (see `matmul::Path`).
pub(crate) mod rows {
    /// `out[r * os + t] = dot(w row r, x row t)` (see `DotRowsFn`), checked.
    #[allow(clippy::too_many_arguments)]
    fn drive(
        dot: fn(&[u8], &[u8]) -> f32,
        (wb, xb): (usize, usize),
        w: &[u8],
        wrb: usize,
        x: &[u8],
        xrb: usize,
        out: &mut [f32],
        os: usize,
    ) {
        crate::kernels::check_rows(w, wrb, x, xrb, out, os, wb, xb);
        for (wrow, o) in w.chunks_exact(wrb).zip(out.chunks_mut(os)) {
            for (xrow, o) in x.chunks_exact(xrb).zip(o.iter_mut()) {
                *o = dot(wrow, xrow);
            }
        }
    }

    macro_rules! variant_rows {
        ($($name:ident: $dot:path, $wb:expr, $xb:expr;)*) => {$(
            /// Reference dot kernel over rows (see `DotRowsFn`) for one matmul path.
            pub(crate) fn $name(w: &[u8], wrb: usize, x: &[u8], xrb: usize, out: &mut [f32], os: usize) {
                drive($dot, ($wb, $xb), w, wrb, x, xrb, out, os);
            }
        )*};
    }

    variant_rows! {
        q4_k_8x8_gemv: super::dot_q4_k_8x8_gemv, 144, 292;
        q4_k_8x8_gemm: super::dot_q4_k_8x8_gemm, 144, 292;
        q4_k_tiled: super::dot_q4_k_tiled, 144, 292;
        q5_k_tiled: super::dot_q5_k_tiled, 176, 292;
        q6_k_tiled: super::dot_q6_k_tiled, 210, 292;
        iq4_nl_tinyblas: super::dot_iq4_nl_tinyblas, 18, 34;
    }
}

// ---------------------------------------------------------------------------------------------
// Activation conversions.
// ---------------------------------------------------------------------------------------------

/// f32 -> f16 like ggml (`quant::f32_to_f16`). `out`: `[x.len()]` f16, little-endian.
pub(crate) fn to_f16(x: &[f32], out: &mut [u8]) {
    for (v, o) in x.iter().zip(out.chunks_exact_mut(2)) {
        o.copy_from_slice(&f32_to_f16(*v).to_le_bytes());
    }
}

/// f32 -> bf16 like ggml (`quant::f32_to_bf16`). `out`: `[x.len()]` bf16, little-endian.
pub(crate) fn to_bf16(x: &[f32], out: &mut [u8]) {
    for (v, o) in x.iter().zip(out.chunks_exact_mut(2)) {
        o.copy_from_slice(&f32_to_bf16(*v).to_le_bytes());
    }
}

/// Quantizes whole blocks of `x` with a per-block reference quantizer, writing the blocks'
/// bytes to `out` (any alignment).
#[inline(always)]
fn quantize_with<B: Pod, const N: usize>(x: &[f32], out: &mut [u8], f: fn(&[f32; N]) -> B) {
    for (xb, ob) in x
        .as_chunks::<N>()
        .0
        .iter()
        .zip(out.chunks_exact_mut(size_of::<B>()))
    {
        ob.copy_from_slice(bytemuck::bytes_of(&f(xb)));
    }
}

/// One Q8 activation block as llama.cpp's x86 `quantize_row_q8_0`/`_q8_1` form it (not the
/// `_ref` quantizer): multiplier `127/amax`, rounding to nearest with ties to even. Returns
/// `(d, Σ q)`.
fn quantize_act_block(x: &[f32; 32], qs: &mut [i8; 32]) -> (f32, i32) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0;
    for (q, v) in qs.iter_mut().zip(x) {
        // `as` saturates (and maps NaN to 0), like the SIMD paths.
        *q = (v * id).round_ties_even() as i8;
        sum += *q as i32;
    }
    (d, sum)
}

/// Q8_0 activations (see [`quantize_act_block`]).
pub(crate) fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
    quantize_with(x, out, |xb: &[f32; 32]| {
        let mut qs = [0i8; 32];
        let (d, _) = quantize_act_block(xb, &mut qs);
        BlockQ8_0 {
            d: f16::from_f32(d),
            qs,
        }
    });
}

/// Q8_1 activations (see [`quantize_act_block`]); `s = d·Σq` rounded to f16.
pub(crate) fn quantize_q8_1(x: &[f32], out: &mut [u8]) {
    quantize_with(x, out, |xb: &[f32; 32]| {
        let mut qs = [0i8; 32];
        let (d, sum) = quantize_act_block(xb, &mut qs);
        BlockQ8_1 {
            d: f16::from_f32(d),
            s: f16::from_f32(d * sum as f32),
            qs,
        }
    });
}

/// Q8_K activations: ggml `quantize_row_q8_K_ref` (via `quant`).
pub(crate) fn quantize_q8_k(x: &[f32], out: &mut [u8]) {
    quantize_with(x, out, k_quants::quantize_block_q8_k_ref);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_quantizer_rounds_like_llama_cpp_x86() {
        // amax 127: multiplier 1, so the products are the inputs; ties go to even.
        let mut x = [0.0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = 3.5;
        x[3] = -2.5;
        x[4] = 0.5;
        x[5] = -126.5;
        let mut out = [0u8; 36];
        quantize_q8_1(&x, &mut out);
        let b: BlockQ8_1 = pod_read_unaligned(&out);
        assert_eq!(&b.qs[..6], &[127, 2, 4, -2, 0, -126]);
        assert_eq!(b.d.to_f32(), 1.0);
        assert_eq!(b.s.to_f32(), 5.0);
        // The multiplier is 127/amax, not 1/(amax/127): with amax = 0.3 they differ in the
        // last bit, and so does the rounding of 0.15 * m (63.5 - tiny vs 63.5 exactly).
        let mut y = [0.0f32; 32];
        y[0] = 0.3;
        y[1] = 0.15;
        quantize_q8_0(&y, &mut out[..34]);
        let b: BlockQ8_0 = pod_read_unaligned(&out[..34]);
        let m = 127.0f32 / 0.3;
        assert_eq!(b.qs[1] as f32, (0.15f32 * m).round_ties_even());
    }
    use crate::quant::k_quants::{get_scale_min_k4, unpack_q3_k_scales};

    /// The kmask transcriptions above agree with `quant`'s per-element unpacking.
    #[test]
    fn scale_unpacking_matches_quant() {
        let mut s = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let mut packed = [0u8; 12];
            for b in &mut packed {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                *b = s as u8;
            }
            let q3 = q3k_scales(&packed);
            let want3 = unpack_q3_k_scales(&packed);
            for g in 0..16 {
                assert_eq!(q3[g] as i32 - 32, want3[g] as i32, "{packed:?} g {g}");
            }
            let (sc, mn) = k4_scales_mins(&packed);
            for j in 0..8 {
                assert_eq!(
                    (sc[j], mn[j]),
                    get_scale_min_k4(j, &packed),
                    "{packed:?} j {j}"
                );
            }
        }
    }
}
