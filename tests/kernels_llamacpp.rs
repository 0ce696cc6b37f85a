//! kiln's matrix product reproduces llama.cpp's x86 results bit for bit, on every ISA this
//! CPU has (on aarch64 too, under qemu in CI).
//!
//! `tests/data/llamacpp_matmul/<type>_<rows>x<cols>_n<tokens>.out` hold the f32 results of
//! ggml's `ggml_mul_mat` (llama.cpp 0c1e570, x86 AVX-512 build, CPU backend, 2 threads) on the
//! inputs [`inputs`] generates; see the README there for how to regenerate them. Each case
//! exercises one of llama.cpp's code paths: `vec_dot` (one token, or few), tinyBLAS (2+
//! tokens), the tiled K-quant matmul (8+ tokens), and for Q4_K matrices with a multiple of 8
//! rows the repacked `q4_K_8x8` gemm (groups of 4 tokens) and gemv (the rest).

mod common;
use common::rng::Rng;

use kiln::GgmlType;
use kiln::kernels::{Isa, Kernels, MatMulScratch, QMatrix};
use kiln::quant::quantize_row_ref;

/// `(type, rows, cols, tokens)` of every fixture.
const CASES: &[(GgmlType, usize, usize, usize)] = &[
    (GgmlType::Q4_0, 12, 512, 1),
    (GgmlType::Q4_0, 12, 544, 3),
    (GgmlType::Q4_1, 12, 512, 1),
    (GgmlType::Q4_1, 12, 512, 9),
    (GgmlType::Q5_1, 12, 512, 1),
    (GgmlType::Q5_1, 12, 544, 9),
    (GgmlType::Q5_0, 12, 512, 1),
    (GgmlType::Q5_0, 12, 544, 9),
    (GgmlType::Q8_0, 12, 512, 1),
    (GgmlType::Q8_0, 12, 544, 9),
    (GgmlType::IQ4_NL, 12, 544, 1),
    (GgmlType::IQ4_NL, 12, 544, 3),
    (GgmlType::Q4_K, 12, 512, 1),
    (GgmlType::Q4_K, 12, 512, 7),
    (GgmlType::Q4_K, 12, 512, 9),
    // 16 rows: llama.cpp repacks these (q4_K_8x8): gemm for groups of 4 tokens, gemv for the rest
    (GgmlType::Q4_K, 16, 512, 1),
    (GgmlType::Q4_K, 16, 512, 4),
    (GgmlType::Q4_K, 16, 512, 7),
    (GgmlType::Q4_K, 16, 512, 9),
    (GgmlType::Q5_K, 12, 512, 1),
    (GgmlType::Q5_K, 12, 512, 9),
    (GgmlType::Q6_K, 12, 512, 1),
    (GgmlType::Q6_K, 12, 512, 7),
    (GgmlType::Q6_K, 12, 512, 9),
];

/// The fixture name of a case.
fn name(t: GgmlType, rows: usize, cols: usize, n: usize) -> String {
    format!("{}_{rows}x{cols}_n{n}", t.name())
}

/// Weights (`rows` rows quantized by the reference quantizer, scale about 0.05) and `n`
/// tokens of activations in `[-1, 1)`, from a seed derived from the case.
fn inputs(t: GgmlType, rows: usize, cols: usize, n: usize) -> (Vec<u8>, Vec<f32>) {
    let mut rng = Rng((t as u64) << 32 ^ (rows * 1_000_003 + cols * 101 + n) as u64);
    let rb = t.bytes_for(cols as u64).unwrap() as usize;
    let mut w = vec![0u8; rows * rb];
    let mut row = vec![0.0f32; cols];
    for o in w.chunks_exact_mut(rb) {
        row.iter_mut().for_each(|v| *v = rng.f32() * 0.05);
        quantize_row_ref(t, &row, o).unwrap();
    }
    let x = (0..n * cols).map(|_| rng.f32()).collect();
    (w, x)
}

fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/llamacpp_matmul")
}

#[test]
fn matmul_equals_llama_cpp_on_every_isa() {
    for isa in kiln::kernels::available_isas() {
        check_isa(isa);
    }
}

/// Every case on the table of `isa`.
fn check_isa(isa: Isa) {
    let k = Kernels::for_isa(isa).unwrap();
    let mut scratch = MatMulScratch::new();
    for &(t, rows, cols, n) in CASES {
        let nm = name(t, rows, cols, n);
        let bytes = std::fs::read(fixture_dir().join(format!("{nm}.out"))).unwrap();
        let want: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let (w, x) = inputs(t, rows, cols, n);
        let m = QMatrix::new(t, rows, cols, &w).unwrap();
        let mut out = vec![f32::NAN; n * rows];
        k.matmul(&m, &x, n, &mut out, &mut scratch).unwrap();
        let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want, "{isa}: {nm}");
    }
}

/// Writes every case's inputs (`<name>.w`, raw blocks; `<name>.x`, f32) into
/// `$KILN_LLAMACPP_MM_DIR`, for regenerating the fixtures with llama.cpp.
#[test]
#[ignore = "fixture generation helper"]
fn write_inputs() {
    let dir = std::env::var("KILN_LLAMACPP_MM_DIR").expect("KILN_LLAMACPP_MM_DIR");
    for &(t, rows, cols, n) in CASES {
        let nm = name(t, rows, cols, n);
        let (w, x) = inputs(t, rows, cols, n);
        std::fs::write(format!("{dir}/{nm}.w"), &w).unwrap();
        let xb: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(format!("{dir}/{nm}.x"), xb).unwrap();
    }
}
