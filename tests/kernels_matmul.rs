//! `kernels::matmul`: the entry point the model calls.
//!
//! - Every output element equals the table's `vec_dot` of that weight row with that token's
//!   activations quantized by the same table, bit for bit, for 1, few and many tokens (more
//!   than one token tile), for every type and every ISA this CPU has.
//! - One token: the 32-element formats equal the scalar kernels bit for bit for row counts and
//!   row lengths around the kernels' row groups and block chunks, on 1 and 2 threads.
//! - The result is bit-identical for any rayon pool size (1..=4 threads).
//! - Real matrices of both models: matmul agrees with an f64 product of the dequantized
//!   weights and the dequantized quantized activations within `1e-5 · Σ|w||x|` per output.
//! - Bad shapes are typed errors.

mod common;
use common::rng::Rng;

use kiln::GgmlType;
use kiln::gguf::{GgufFile, OpenOptions};
use kiln::kernels::{self, Kernels, MatMulScratch, QMatrix};
use kiln::quant::{dequantize_row, quantize_row_ref};

const TYPES: [GgmlType; 15] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
];

/// A random matrix quantized with the reference quantizer.
fn matrix(t: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let rb = t.bytes_for(cols as u64).unwrap() as usize;
    let mut out = vec![0u8; rows * rb];
    let mut row = vec![0.0f32; cols];
    for o in out.chunks_exact_mut(rb) {
        row.iter_mut().for_each(|v| *v = rng.f32());
        quantize_row_ref(t, &row, o).unwrap();
    }
    out
}

/// `out[t][r]` by one `vec_dot` per element (the definition `matmul` must reproduce).
fn by_vec_dot(k: &Kernels, w: &QMatrix<'_>, x: &[f32], n_tokens: usize) -> Vec<f32> {
    let act = kernels::vec_dot_type(w.dtype);
    let arb = act.bytes_for(w.cols as u64).unwrap() as usize;
    let mut out = vec![0.0f32; n_tokens * w.rows];
    for t in 0..n_tokens {
        let mut xq = vec![0u8; arb];
        k.quantize_row_act(act, &x[t * w.cols..(t + 1) * w.cols], &mut xq)
            .unwrap();
        for r in 0..w.rows {
            out[t * w.rows + r] = k.vec_dot(w.dtype, w.cols, w.row(r).unwrap(), &xq).unwrap();
        }
    }
    out
}

/// Whether llama.cpp (x86) computes a `rows`-row matrix of `t` times `n` tokens with a kernel
/// that rounds differently from its `vec_dot` (see `kernels::matmul`'s path notes): the
/// repacked Q4_K gemm/gemv (rows a multiple of 8), the tiled Q4_K/Q5_K/Q6_K matmul (8 or more
/// tokens), tinyBLAS for IQ4_NL (2 or more tokens).
fn batch_rounds_differently(t: GgmlType, rows: usize, n: usize) -> bool {
    match t {
        GgmlType::Q4_K => rows.is_multiple_of(8) || n >= 8,
        GgmlType::Q5_K | GgmlType::Q6_K => n >= 8,
        GgmlType::IQ4_NL => n >= 2,
        _ => false,
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

#[test]
fn matmul_equals_vec_dot_per_element() {
    let mut rng = Rng(5);
    for isa in kernels::available_isas() {
        let k = Kernels::for_isa(isa).unwrap();
        let mut scratch = MatMulScratch::new();
        for t in TYPES {
            // 37 rows and 70 tokens span several 16-row × 64-token tiles, with partial ones.
            let cols = if t.block_size() == 256 { 4096 } else { 320 };
            let rows = 37;
            let data = matrix(t, rows, cols, &mut rng);
            let w = QMatrix::new(t, rows, cols, &data).unwrap();
            for n_tokens in [1, 3, 70] {
                let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.f32()).collect();
                let mut out = vec![f32::NAN; n_tokens * rows];
                k.matmul(&w, &x, n_tokens, &mut out, &mut scratch).unwrap();
                if batch_rounds_differently(t, rows, n_tokens) {
                    // llama.cpp's batch kernel for this case rounds differently from its
                    // vec_dot and kiln follows it (checked in `kernels_llamacpp.rs` and
                    // `exact_types_match_scalar_on_every_path`).
                    continue;
                }
                let want = by_vec_dot(k, &w, &x, n_tokens);
                assert_eq!(bits(&out), bits(&want), "{isa} {t} n_tokens {n_tokens}");
            }
        }
    }
}

#[test]
fn exact_types_match_scalar_on_every_path() {
    // 16 rows: Q4_K takes the repacked gemm (groups of 4 tokens) and gemv (the rest); 12 and
    // 20 rows: vec_dot below 8 tokens, the tiled K-quant matmul from 8; IQ4_NL tinyBLAS from 2.
    // The AVX-512 VNNI K-quant kernels take eight rows at a time (12, 20: a tail of four) by
    // four tokens (and single tokens); 70 tokens are two of matmul's token tiles.
    let mut rng = Rng(11);
    let scalar = Kernels::for_isa(kernels::Isa::Scalar).unwrap();
    let mut scratch = MatMulScratch::new();
    for t in common::EXACT_TYPES {
        let cols = if t.block_size() == 256 { 1024 } else { 352 };
        for rows in [12, 16, 20] {
            let data = matrix(t, rows, cols, &mut rng);
            let w = QMatrix::new(t, rows, cols, &data).unwrap();
            for n_tokens in [1, 2, 3, 4, 5, 7, 8, 9, 13, 70] {
                let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.f32()).collect();
                let mut want = vec![f32::NAN; n_tokens * rows];
                scalar
                    .matmul(&w, &x, n_tokens, &mut want, &mut scratch)
                    .unwrap();
                for isa in kernels::available_isas() {
                    let k = Kernels::for_isa(isa).unwrap();
                    let mut out = vec![f32::NAN; n_tokens * rows];
                    k.matmul(&w, &x, n_tokens, &mut out, &mut scratch).unwrap();
                    assert_eq!(
                        bits(&out),
                        bits(&want),
                        "{isa} {t} {rows} rows, {n_tokens} tokens"
                    );
                }
            }
        }
    }
}

#[test]
fn one_token_row_groups_match_scalar() {
    // The one-token path hands a chunk of rows to the kernel in one call, which works in groups
    // of 8 rows, then 4, then 1, and per row in chunks of 16 blocks (7 blocks: below one
    // scale group of 8; 20: Gemma 3's 640 columns, a chunk and a tail; 37: two chunks and a
    // tail). Row counts around the groups, on 1 and 2 threads (chunks of 16 or more rows).
    // 981 rows on one thread: chunks of 248 rows, the last one of 237 (8-row groups, then 4,
    // then 1, in a call long enough for the prefetches to run ahead).
    let mut rng = Rng(13);
    let scalar = Kernels::for_isa(kernels::Isa::Scalar).unwrap();
    let pools: Vec<rayon::ThreadPool> = [1, 2]
        .map(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        })
        .into();
    let mut scratch = MatMulScratch::new();
    for t in common::EXACT_TYPES {
        if t.block_size() != 32 {
            continue;
        }
        for (blocks, rows) in [7, 20, 37]
            .into_iter()
            .flat_map(|b| [1, 3, 4, 5, 8, 9, 13, 15, 17, 23, 40, 77].map(|r| (b, r)))
            .chain([(37, 981)])
        {
            let cols = 32 * blocks;
            {
                let data = matrix(t, rows, cols, &mut rng);
                let w = QMatrix::new(t, rows, cols, &data).unwrap();
                let x: Vec<f32> = (0..cols).map(|_| rng.f32()).collect();
                let mut want = vec![f32::NAN; rows];
                scalar.matmul(&w, &x, 1, &mut want, &mut scratch).unwrap();
                for isa in kernels::available_isas() {
                    let k = Kernels::for_isa(isa).unwrap();
                    for pool in &pools {
                        let mut out = vec![f32::NAN; rows];
                        pool.install(|| k.matmul(&w, &x, 1, &mut out, &mut scratch))
                            .unwrap();
                        assert_eq!(
                            bits(&out),
                            bits(&want),
                            "{isa} {t} {rows}x{cols}, {} threads",
                            pool.current_num_threads()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn legacy_batch_tiles_and_tails_match_scalar() {
    // The 32-element formats' batch kernels work in tiles of several weight rows by several
    // tokens, with buffers sized for a group of tokens and rows of up to 64 blocks: row counts
    // that are not a multiple of a tile, 2..13 tokens (tile tails), more than one 64-token
    // tile, and rows of 11, 64 and 65 blocks (the last past the batch kernels' buffers).
    let mut rng = Rng(23);
    let scalar = Kernels::for_isa(kernels::Isa::Scalar).unwrap();
    let mut scratch = MatMulScratch::new();
    let types = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::IQ4_NL,
    ];
    for t in types {
        for (rows, cols) in [(23, 352), (5, 2048), (18, 2080)] {
            let data = matrix(t, rows, cols, &mut rng);
            let w = QMatrix::new(t, rows, cols, &data).unwrap();
            for n_tokens in [2, 3, 5, 6, 7, 9, 11, 13, 64, 67, 130] {
                let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.f32()).collect();
                let mut want = vec![f32::NAN; n_tokens * rows];
                scalar
                    .matmul(&w, &x, n_tokens, &mut want, &mut scratch)
                    .unwrap();
                for isa in kernels::available_isas() {
                    let k = Kernels::for_isa(isa).unwrap();
                    let mut out = vec![f32::NAN; n_tokens * rows];
                    k.matmul(&w, &x, n_tokens, &mut out, &mut scratch).unwrap();
                    assert_eq!(
                        bits(&out),
                        bits(&want),
                        "{isa} {t} {rows}x{cols}, {n_tokens} tokens"
                    );
                }
            }
        }
    }
}

#[test]
fn batch_scatter_shapes_match_scalar() {
    // Each tile's results (`[rows][tokens]`) are moved into the token-major output 8 rows by
    // 8 tokens at a time on x86, the rest one at a time: chunks of 16 rows and a last chunk of
    // 13 (one block of 8 rows and 5 more), chunks of 56 rows (7 blocks, the 32-element
    // formats' 64-row tiles cut short), 8..16 tokens (one block and a few more) and more than
    // one 64-token tile with a tail; on 1 and 2 threads (other chunk sizes).
    let mut rng = Rng(31);
    let scalar = Kernels::for_isa(kernels::Isa::Scalar).unwrap();
    let mut scratch = MatMulScratch::new();
    for t in [
        GgmlType::Q8_0,
        GgmlType::Q5_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ] {
        let cols = 256;
        for rows in [29, 45, 200] {
            let data = matrix(t, rows, cols, &mut rng);
            let w = QMatrix::new(t, rows, cols, &data).unwrap();
            for n_tokens in [8, 9, 15, 16, 67, 130] {
                let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.f32()).collect();
                let mut want = vec![f32::NAN; n_tokens * rows];
                scalar
                    .matmul(&w, &x, n_tokens, &mut want, &mut scratch)
                    .unwrap();
                for threads in [1, 2] {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    for isa in kernels::available_isas() {
                        let k = Kernels::for_isa(isa).unwrap();
                        let mut out = vec![f32::NAN; n_tokens * rows];
                        pool.install(|| k.matmul(&w, &x, n_tokens, &mut out, &mut scratch))
                            .unwrap();
                        assert_eq!(
                            bits(&out),
                            bits(&want),
                            "{isa} {t} {rows} rows, {n_tokens} tokens, {threads} threads"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_is_independent_of_thread_count() {
    let mut rng = Rng(6);
    for t in [GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::F16] {
        let (rows, cols) = (1000, 512);
        let data = matrix(t, rows, cols, &mut rng);
        let w = QMatrix::new(t, rows, cols, &data).unwrap();
        for n_tokens in [1, 5] {
            let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.f32()).collect();
            let mut results = Vec::new();
            for threads in 1..=4 {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut out = vec![0.0f32; n_tokens * rows];
                let mut scratch = MatMulScratch::new();
                pool.install(|| kernels::matmul(&w, &x, n_tokens, &mut out, &mut scratch))
                    .unwrap();
                results.push(bits(&out));
            }
            for (i, r) in results.iter().enumerate() {
                assert_eq!(r, &results[0], "{t} n_tokens {n_tokens}: {} threads", i + 1);
            }
        }
    }
}

#[test]
fn matmul_rejects_bad_shapes() {
    let data = vec![0u8; 18 * 4];
    assert!(QMatrix::new(GgmlType::Q4_0, 2, 64, &data).is_ok());
    assert!(QMatrix::new(GgmlType::Q4_0, 2, 65, &data).is_err());
    assert!(QMatrix::new(GgmlType::Q4_0, 3, 64, &data).is_err());
    assert!(QMatrix::new(GgmlType::IQ2_XXS, 1, 256, &data).is_err());
    assert!(QMatrix::new(GgmlType::Q4_0, usize::MAX, 64, &data).is_err());
    let w = QMatrix::new(GgmlType::Q4_0, 2, 64, &data).unwrap();
    let mut s = MatMulScratch::new();
    let mut out = vec![0.0; 2];
    assert!(kernels::matmul(&w, &[0.0; 64], 1, &mut out, &mut s).is_ok());
    assert!(kernels::matmul(&w, &[0.0; 63], 1, &mut out, &mut s).is_err());
    assert!(kernels::matmul(&w, &[0.0; 64], 2, &mut out, &mut s).is_err());
    assert!(kernels::matmul(&w, &[0.0; 64], 1, &mut out[..1], &mut s).is_err());
    assert!(kernels::matmul(&w, &[0.0; 64], usize::MAX, &mut out, &mut s).is_err());
    // A hand-built matrix that lies about its size.
    let bad = QMatrix {
        dtype: GgmlType::Q4_0,
        rows: 3,
        cols: 64,
        data: &data,
    };
    assert!(kernels::matmul(&bad, &[0.0; 64], 1, &mut [0.0; 3], &mut s).is_err());
    assert!(bad.row(0).is_none());
    // Nothing to do.
    assert!(kernels::matmul(&w, &[], 0, &mut [], &mut s).is_ok());
}

/// Real matrices: matmul against an f64 product of dequantized weights and dequantized
/// activations (so the only difference is the order of float additions).
fn check_real_model(file: &str, names: &[&str]) {
    let Some(path) = common::model(file) else {
        return;
    };
    let f = GgufFile::open(&path, OpenOptions::default()).unwrap();
    let g = f.parse().unwrap();
    let mut rng = Rng(7);
    for name in names {
        let t = g
            .tensor(name)
            .unwrap_or_else(|| panic!("{file}: no tensor {name}"));
        let (cols, rows) = (t.row_len(), t.n_rows());
        let w = QMatrix::new(t.dtype(), rows, cols, t.data()).unwrap();
        let n_tokens = 2;
        let x: Vec<f32> = (0..n_tokens * cols).map(|_| rng.f32()).collect();
        let mut out = vec![0.0f32; n_tokens * rows];
        let mut scratch = MatMulScratch::new();
        kernels::matmul(&w, &x, n_tokens, &mut out, &mut scratch).unwrap();
        let act = kernels::vec_dot_type(t.dtype());
        let arb = act.bytes_for(cols as u64).unwrap() as usize;
        let mut wd = vec![0.0f32; cols];
        let mut xd = vec![0.0f32; cols];
        let mut xq = vec![0u8; arb];
        for tok in 0..n_tokens {
            kernels::quantize_row_act(act, &x[tok * cols..(tok + 1) * cols], &mut xq).unwrap();
            dequantize_row(act, &xq, &mut xd).unwrap();
            // Every 7th row keeps the test quick on the large vocabulary matrices.
            for r in (0..rows).step_by(7) {
                dequantize_row(t.dtype(), t.row(r), &mut wd).unwrap();
                let (mut dot, mut mag) = (0.0f64, 0.0f64);
                for (a, b) in wd.iter().zip(&xd) {
                    dot += *a as f64 * *b as f64;
                    mag += (*a as f64 * *b as f64).abs();
                }
                if act == GgmlType::Q8_1 {
                    // Q4_1/Q5_1 use the activation's stored `s = f16(d Σq)` for the min term
                    // (as ggml does), not `d Σq`: add the difference `m (s − d Σq)` per block.
                    dot += q8_1_min_correction(t.row(r), &xq, t.dtype().type_size());
                }
                let got = out[tok * rows + r] as f64;
                assert!(
                    (got - dot).abs() <= 1e-5 * mag + 1e-30,
                    "{file} {name} ({}) row {r} token {tok}: {got} vs {dot} (M {mag})",
                    t.dtype()
                );
            }
        }
    }
}

/// `Σ_b m_b (s_b − d_b Σ_j q_bj)` for a Q4_1/Q5_1 row (`m` at byte 2 of each `wbs`-byte block)
/// against a Q8_1 row.
fn q8_1_min_correction(w: &[u8], x: &[u8], wbs: usize) -> f64 {
    let f16 = |b: &[u8], o: usize| half::f16::from_le_bytes([b[o], b[o + 1]]).to_f32() as f64;
    w.chunks_exact(wbs)
        .zip(x.chunks_exact(36))
        .map(|(wb, xb)| {
            let sum: i32 = xb[4..].iter().map(|&q| q as i8 as i32).sum();
            f16(wb, 2) * (f16(xb, 2) - f16(xb, 0) * sum as f64)
        })
        .sum()
}

#[test]
fn real_smollm2_matrices() {
    check_real_model(
        common::SMOLLM2,
        &[
            "blk.0.attn_q.weight",
            "blk.0.ffn_down.weight",
            "blk.0.ffn_up.weight",
            "token_embd.weight",
        ],
    );
}

#[test]
fn real_gemma3_matrices() {
    check_real_model(
        common::GEMMA3,
        &[
            "blk.0.attn_q.weight",
            "blk.0.ffn_down.weight",
            "blk.0.ffn_gate.weight",
            "blk.1.ffn_down.weight",
        ],
    );
}
