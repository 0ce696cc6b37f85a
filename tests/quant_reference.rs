//! kiln's reference quantizers and dequantizers against llama.cpp's bytes.
//!
//! Vectors: `tests/data/reference/quant/` (llama.cpp commit 0c1e570, see its README).
//! `input.f32` is 10 rows x 1536 f32; `<TYPE>.bin` is each row quantized by llama.cpp's
//! reference quantizer; `<TYPE>.dequant.f32` is `<TYPE>.bin` dequantized by llama.cpp.
//! Quantized bytes must match exactly; dequantized values bit for bit (NaN matches any NaN).

use std::path::PathBuf;

use kiln::GgmlType;
use kiln::quant::blocks::{BlockQ4_0, BlockQ8_0, BlockQ8K};
use kiln::quant::{QuantError, cast_blocks, dequantize_row, quantize_row_ref};

const ROWS: usize = 10;
const COLS: usize = 1536;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference/quant")
}

fn read(name: &str) -> Vec<u8> {
    let p = data_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn read_f32(name: &str) -> Vec<f32> {
    let bytes = read(name);
    assert_eq!(bytes.len(), ROWS * COLS * 4, "{name}: unexpected size");
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Type name as the reference files spell it (`Q4_K`, `IQ4_NL`, `F16`).
fn file_name(t: GgmlType) -> String {
    format!("{t:?}")
}

/// Quantizes every input row with kiln and compares with llama.cpp's bytes.
fn check_quantize(t: GgmlType) {
    let input = read_f32("input.f32");
    let expected = read(&format!("{}.bin", file_name(t)));
    let row_bytes = t.bytes_for(COLS as u64).unwrap() as usize;
    assert_eq!(expected.len(), ROWS * row_bytes, "{t}: reference size");
    let mut failures = Vec::new();
    for r in 0..ROWS {
        let mut got = vec![0u8; row_bytes];
        quantize_row_ref(t, &input[r * COLS..(r + 1) * COLS], &mut got).unwrap();
        let want = &expected[r * row_bytes..(r + 1) * row_bytes];
        let diffs: Vec<usize> = (0..row_bytes).filter(|&i| got[i] != want[i]).collect();
        if !diffs.is_empty() {
            let block = t.type_size();
            let show: Vec<String> = diffs
                .iter()
                .take(8)
                .map(|&i| {
                    format!(
                        "block {} byte {}: got {:#04x} want {:#04x}",
                        i / block,
                        i % block,
                        got[i],
                        want[i]
                    )
                })
                .collect();
            failures.push(format!(
                "row {r}: {} of {row_bytes} bytes differ; first: {}",
                diffs.len(),
                show.join(", ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{t} quantize:\n{}",
        failures.join("\n")
    );
}

fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Dequantizes llama.cpp's bytes with kiln and compares with llama.cpp's floats.
fn check_dequantize(t: GgmlType) {
    let quant = read(&format!("{}.bin", file_name(t)));
    let expected = read_f32(&format!("{}.dequant.f32", file_name(t)));
    let row_bytes = t.bytes_for(COLS as u64).unwrap() as usize;
    let mut failures = Vec::new();
    for r in 0..ROWS {
        let mut got = vec![0f32; COLS];
        dequantize_row(t, &quant[r * row_bytes..(r + 1) * row_bytes], &mut got).unwrap();
        let want = &expected[r * COLS..(r + 1) * COLS];
        let diffs: Vec<usize> = (0..COLS).filter(|&i| !same_f32(got[i], want[i])).collect();
        if !diffs.is_empty() {
            let show: Vec<String> = diffs
                .iter()
                .take(6)
                .map(|&i| format!("[{i}]: got {:e} want {:e}", got[i], want[i]))
                .collect();
            failures.push(format!(
                "row {r}: {} of {COLS} values differ; first: {}",
                diffs.len(),
                show.join(", ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{t} dequantize:\n{}",
        failures.join("\n")
    );
}

macro_rules! reference_tests {
    ($($name:ident: $t:ident, dequant: $dq:literal;)*) => {$(
        mod $name {
            use super::*;

            #[test]
            fn quantize_matches_llama_cpp() {
                check_quantize(GgmlType::$t);
            }

            #[test]
            fn dequantize_matches_llama_cpp() {
                if $dq {
                    check_dequantize(GgmlType::$t);
                } else {
                    dequantize_has_no_reference(GgmlType::$t);
                }
            }
        }
    )*};
}

reference_tests! {
    f16: F16, dequant: true;
    bf16: BF16, dequant: true;
    q4_0: Q4_0, dequant: true;
    q4_1: Q4_1, dequant: true;
    q5_0: Q5_0, dequant: true;
    q5_1: Q5_1, dequant: true;
    q8_0: Q8_0, dequant: true;
    q8_1: Q8_1, dequant: false;
    q2_k: Q2_K, dequant: true;
    q3_k: Q3_K, dequant: true;
    q4_k: Q4_K, dequant: true;
    q5_k: Q5_K, dequant: true;
    q6_k: Q6_K, dequant: true;
    q8_k: Q8_K, dequant: true;
    iq4_nl: IQ4_NL, dequant: true;
    iq4_xs: IQ4_XS, dequant: true;
}

/// ggml has no `to_float` for Q8_1, so there is no `Q8_1.dequant.f32`: check kiln's Q8_1
/// dequantizer against its definition (`d * q`, the same values as the Q8_0 of the same data,
/// since both formats quantize identically).
fn dequantize_has_no_reference(t: GgmlType) {
    assert_eq!(t, GgmlType::Q8_1);
    assert!(!data_dir().join("Q8_1.dequant.f32").exists());
    let q8_1 = read("Q8_1.bin");
    let q8_0 = read("Q8_0.bin");
    let mut a = vec![0f32; ROWS * COLS];
    let mut b = vec![0f32; ROWS * COLS];
    dequantize_row(GgmlType::Q8_1, &q8_1, &mut a).unwrap();
    dequantize_row(GgmlType::Q8_0, &q8_0, &mut b).unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| same_f32(*x, *y)));
}

/// F32 "quantization" is a copy; check it round-trips every input bit pattern.
#[test]
fn f32_round_trip() {
    let input = read_f32("input.f32");
    let mut bytes = vec![0u8; input.len() * 4];
    quantize_row_ref(GgmlType::F32, &input, &mut bytes).unwrap();
    assert_eq!(bytes, read("input.f32"));
    let mut back = vec![0f32; input.len()];
    dequantize_row(GgmlType::F32, &bytes, &mut back).unwrap();
    assert!(
        input
            .iter()
            .zip(&back)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
}

/// The whole 10-row file at once equals the row-by-row result (blocks are independent) and
/// unaligned buffers give the same bytes as aligned ones.
#[test]
fn whole_buffer_and_unaligned() {
    let input = read_f32("input.f32");
    for t in [
        GgmlType::Q4_K,
        GgmlType::Q8_0,
        GgmlType::Q8_K,
        GgmlType::IQ4_XS,
    ] {
        let expected = read(&format!("{}.bin", file_name(t)));
        // One byte of offset misaligns the buffer for every block type.
        let mut storage = vec![0u8; expected.len() + 1];
        let dst = &mut storage[1..];
        quantize_row_ref(t, &input, dst).unwrap();
        assert!(
            dst == expected.as_slice(),
            "{t}: unaligned whole-buffer quantize"
        );
        let mut a = vec![0f32; input.len()];
        let mut b = vec![0f32; input.len()];
        dequantize_row(t, &storage[1..], &mut a).unwrap();
        dequantize_row(t, &expected, &mut b).unwrap();
        assert!(
            a.iter().zip(&b).all(|(x, y)| same_f32(*x, *y)),
            "{t}: unaligned dequantize"
        );
    }
}

#[test]
fn bad_lengths_are_typed_errors() {
    let x = vec![0.5f32; 64];
    let mut out = vec![0u8; 68];
    // 63 elements: not a whole number of Q8_0 blocks.
    assert!(matches!(
        quantize_row_ref(GgmlType::Q8_0, &x[..63], &mut out),
        Err(QuantError::RowLength {
            dtype: GgmlType::Q8_0,
            n: 63,
            block_size: 32
        })
    ));
    // 64 elements need 68 bytes of Q8_0, not 67.
    assert!(matches!(
        quantize_row_ref(GgmlType::Q8_0, &x, &mut out[..67]),
        Err(QuantError::BufferSize {
            dtype: GgmlType::Q8_0,
            n: 64,
            expected: 68,
            actual: 67,
            ..
        })
    ));
    // 256 elements of Q4_K need 144 bytes.
    let mut y = vec![0f32; 256];
    assert!(matches!(
        dequantize_row(GgmlType::Q4_K, &[0u8; 143], &mut y),
        Err(QuantError::BufferSize {
            dtype: GgmlType::Q4_K,
            n: 256,
            expected: 144,
            actual: 143,
            ..
        })
    ));
    // 32 elements are not a whole Q4_K block.
    assert!(matches!(
        dequantize_row(GgmlType::Q4_K, &[0u8; 18], &mut y[..32]),
        Err(QuantError::RowLength {
            dtype: GgmlType::Q4_K,
            n: 32,
            block_size: 256
        })
    ));
    // F16: 3 values need 6 bytes.
    assert!(matches!(
        dequantize_row(GgmlType::F16, &[0u8; 5], &mut y[..3]),
        Err(QuantError::BufferSize {
            dtype: GgmlType::F16,
            expected: 6,
            actual: 5,
            ..
        })
    ));
    // The message names the type and the lengths.
    let msg = quantize_row_ref(GgmlType::Q8_0, &x, &mut out[..67])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("q8_0") && msg.contains("68") && msg.contains("67"),
        "{msg}"
    );
    // Empty rows are fine.
    quantize_row_ref(GgmlType::Q4_0, &[], &mut []).unwrap();
    dequantize_row(GgmlType::Q4_0, &[], &mut []).unwrap();
}

#[test]
fn unsupported_types_are_typed_errors() {
    for t in [
        GgmlType::IQ2_XXS,
        GgmlType::I32,
        GgmlType::TQ1_0,
        GgmlType::MXFP4,
    ] {
        let n = t.block_size();
        let mut y = vec![0f32; n];
        let bytes = vec![0u8; t.type_size()];
        assert!(matches!(
            dequantize_row(t, &bytes, &mut y),
            Err(QuantError::Unsupported { dtype }) if dtype == t
        ));
        let mut out = vec![0u8; t.type_size()];
        assert!(matches!(
            quantize_row_ref(t, &y, &mut out),
            Err(QuantError::Unsupported { dtype }) if dtype == t
        ));
    }
}

#[test]
fn cast_blocks_checks_length_and_alignment() {
    // A u64 buffer is 8-aligned; view it as bytes.
    let storage = vec![0u64; 128];
    let bytes: &[u8] = bytemuck::cast_slice(&storage);

    let blocks: &[BlockQ8_0] = cast_blocks(&bytes[..34 * 3]).unwrap();
    assert_eq!(blocks.len(), 3);
    assert!(cast_blocks::<BlockQ8_0>(&[]).unwrap().is_empty());

    assert!(matches!(
        cast_blocks::<BlockQ8_0>(&bytes[..35]),
        Err(QuantError::CastLength {
            block: "BlockQ8_0",
            len: 35,
            block_bytes: 34
        })
    ));
    // Offset 1: misaligned for the f16 in BlockQ4_0 (align 2).
    assert!(matches!(
        cast_blocks::<BlockQ4_0>(&bytes[1..1 + 18]),
        Err(QuantError::CastAlignment {
            block: "BlockQ4_0",
            align: 2,
            ..
        })
    ));
    // Offset 2: fine for align-2 blocks, misaligned for BlockQ8K (f32, align 4).
    assert_eq!(
        cast_blocks::<BlockQ4_0>(&bytes[2..2 + 36]).unwrap().len(),
        2
    );
    assert!(matches!(
        cast_blocks::<BlockQ8K>(&bytes[2..2 + 292]),
        Err(QuantError::CastAlignment {
            block: "BlockQ8K",
            align: 4,
            ..
        })
    ));
    let msg = cast_blocks::<BlockQ8_0>(&bytes[..35])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("35") && msg.contains("BlockQ8_0"), "{msg}");
}

/// Every supported type, in the order of the reference files.
const SUPPORTED: [GgmlType; 17] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
];

/// A tiny deterministic generator (xorshift64*), so the hostile-input tests need no crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Quantizing NaN, infinities, huge, subnormal and mixed values must not panic (tests run with
/// overflow checks on) and must fill the whole output.
#[test]
fn special_values_do_not_panic() {
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        -f32::MAX,
        f32::MIN_POSITIVE,
        1e-40,
        -1e-45,
        0.0,
        -0.0,
        1.0,
        -3.5,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for t in SUPPORTED {
        assert!(kiln::quant::is_supported(t));
        for case in 0..64 {
            let x: Vec<f32> = (0..512)
                .map(|i| match case {
                    // One special value everywhere.
                    0..12 => specials[case],
                    // One special value in an otherwise ordinary row.
                    12..24 if i == 77 => specials[case - 12],
                    // Random bit patterns (NaNs, infinities and subnormals included).
                    24..40 => f32::from_bits(rng.next() as u32),
                    _ => (rng.next() % 2001) as f32 / 1000.0 - 1.0,
                })
                .collect();
            let mut q = vec![0u8; t.bytes_for(512).unwrap() as usize];
            quantize_row_ref(t, &x, &mut q).unwrap();
            let mut y = vec![0f32; 512];
            dequantize_row(t, &q, &mut y).unwrap();
        }
    }
}

/// Dequantizing arbitrary bytes (as a hostile file provides them) never panics.
#[test]
fn random_bytes_dequantize() {
    let mut rng = Rng(12345);
    for t in SUPPORTED {
        for _ in 0..32 {
            let n = 512;
            let bytes: Vec<u8> = (0..t.bytes_for(n as u64).unwrap())
                .map(|_| rng.next() as u8)
                .collect();
            let mut y = vec![0f32; n];
            dequantize_row(t, &bytes, &mut y).unwrap();
        }
    }
}
