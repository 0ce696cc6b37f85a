//! Every SIMD kernel against the scalar reference.
//!
//! Three kinds of checks, for every ISA this CPU has other than scalar (ISAs it lacks are
//! skipped with a message):
//!
//! 1. **Integer exactness, bit for bit.** Blocks with every scale 1 (and Q4_1/Q5_1 mins ±1)
//!    and small activations, so every partial sum is an integer below 2^24 and f32 addition is
//!    exact in any order: the SIMD result must equal the reference's bits. This proves the
//!    integer partial sums are the reference's.
//! 2. **Random valid blocks** (random quant bytes, random finite scales of either sign in a
//!    realistic range; activations as a quantizer makes them: |q| ≤ 127, consistent `s` and
//!    `bsums`) for 1, 2, 7 and 48 blocks, and the **real vectors** of
//!    `tests/data/reference/quant/` (llama.cpp's quantization of real weights; activations from
//!    `input.f32`). Tolerance: `|simd − ref| ≤ 1e-5 · M` with `M = Σ_k |w_k| |x_k|` over the
//!    dequantized rows. The integer sums being exact (1.), the only difference left is the order
//!    of the f32 additions of the per-block terms, bounded by about `(blocks + 16) · 2^-24 · M`,
//!    which is below 4e-6 · M for the largest rows here.
//! 3. **Activation quantizers** (Q8_0, Q8_1, Q8_K, f16, bf16): byte-identical to the scalar
//!    table's (Q8_0/Q8_1: llama.cpp's x86 quantizers) or to `quant::quantize_row_ref` (the
//!    others) on random, real and edge-case rows (finite input).
//! 4. **Bit-exact types**: the types whose float order is fixed to llama.cpp's x86 kernels
//!    (`common::EXACT_TYPES`) equal the scalar reference bit for bit on random blocks of any length.

mod common;
use common::rng::Rng;

use kiln::GgmlType;
use kiln::kernels::{self, Isa, Kernels};
use kiln::quant::{dequantize_row, quantize_row_ref};

/// The SIMD tables to test; prints what is skipped.
fn simd_tables() -> Vec<&'static Kernels> {
    let avail = kernels::available_isas();
    for isa in Isa::ALL {
        if isa != Isa::Scalar && !avail.contains(&isa) {
            eprintln!("SKIP: this CPU cannot run {isa}; its kernels are not tested here");
        }
    }
    avail
        .into_iter()
        .filter(|&i| i != Isa::Scalar)
        .map(|i| Kernels::for_isa(i).unwrap())
        .collect()
}

fn scalar() -> &'static Kernels {
    Kernels::for_isa(Isa::Scalar).unwrap()
}

/// Weight types with dot kernels.
const WEIGHT_TYPES: [GgmlType; 15] = [
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

/// Byte offsets of the f16 scale fields of a weight block (set to valid values; every other
/// byte is random).
fn f16_fields(t: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match t {
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL | IQ4_XS => &[0],
        Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q6_K => &[208],
        _ => &[],
    }
}

fn put_f16(b: &mut [u8], off: usize, v: f32) {
    b[off..off + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
}

/// Mode of the random data.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Scales 1 (mins ±1), activations in -2..=2: every sum exact in f32.
    Exact,
    /// Random scales and full-range activations.
    Random,
}

/// A random weight row of `nb` blocks (for float types: `nb` elements).
fn weight_row(t: GgmlType, nb: usize, rng: &mut Rng, mode: Mode) -> Vec<u8> {
    let bs = t.type_size();
    let mut row: Vec<u8> = (0..nb * bs).map(|_| rng.byte()).collect();
    for b in row.chunks_exact_mut(bs) {
        match t {
            GgmlType::F32 => {
                let v = if mode == Mode::Exact {
                    rng.int(-8, 8) as f32
                } else {
                    rng.unit() * 2.0 - 1.0
                };
                b.copy_from_slice(&v.to_le_bytes());
            }
            GgmlType::F16 => {
                let v = if mode == Mode::Exact {
                    rng.int(-8, 8) as f32
                } else {
                    rng.unit() * 2.0 - 1.0
                };
                put_f16(b, 0, v);
            }
            GgmlType::BF16 => {
                let v = if mode == Mode::Exact {
                    rng.int(-8, 8) as f32
                } else {
                    rng.unit() * 2.0 - 1.0
                };
                b.copy_from_slice(&half::bf16::from_f32(v).to_le_bytes());
            }
            _ => {
                for (k, &off) in f16_fields(t).iter().enumerate() {
                    let v =
                        match mode {
                            // The second field of Q4_1/Q5_1 is the min: ±1.
                            Mode::Exact
                                if k == 1 && matches!(t, GgmlType::Q4_1 | GgmlType::Q5_1) =>
                            {
                                if rng.byte() & 1 == 0 { 1.0 } else { -1.0 }
                            }
                            Mode::Exact => 1.0,
                            Mode::Random => rng.scale_in(-12.0, -2.0),
                        };
                    put_f16(b, off, v);
                }
            }
        }
    }
    row
}

/// A random activation row of type `act` matching `nb` weight blocks of `t`.
fn act_row(t: GgmlType, act: GgmlType, nb: usize, rng: &mut Rng, mode: Mode) -> Vec<u8> {
    let n = nb * t.block_size();
    let (qlo, qhi) = if mode == Mode::Exact {
        (-2, 2)
    } else {
        (-127, 127)
    };
    match act {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => weight_row(act, n, rng, mode),
        GgmlType::Q8_0 | GgmlType::Q8_1 => {
            let bs = act.type_size();
            let mut row = vec![0u8; n / 32 * bs];
            for b in row.chunks_exact_mut(bs) {
                let d = if mode == Mode::Exact {
                    1.0
                } else {
                    rng.scale_in(-12.0, -2.0)
                };
                let qs: Vec<i8> = (0..32).map(|_| rng.int(qlo, qhi) as i8).collect();
                put_f16(b, 0, d);
                if act == GgmlType::Q8_1 {
                    let sum: i32 = qs.iter().map(|&q| q as i32).sum();
                    put_f16(b, 2, sum as f32 * half::f16::from_f32(d).to_f32());
                }
                for (o, q) in b[bs - 32..].iter_mut().zip(&qs) {
                    *o = *q as u8;
                }
            }
            row
        }
        GgmlType::Q8_K => {
            let mut row = vec![0u8; n / 256 * 292];
            for b in row.chunks_exact_mut(292) {
                let d = if mode == Mode::Exact {
                    1.0
                } else {
                    rng.scale_in(-12.0, -2.0)
                };
                b[..4].copy_from_slice(&d.to_le_bytes());
                let qs: Vec<i8> = (0..256).map(|_| rng.int(qlo, qhi) as i8).collect();
                for (o, q) in b[4..260].iter_mut().zip(&qs) {
                    *o = *q as u8;
                }
                for g in 0..16 {
                    let s: i32 = qs[16 * g..16 * g + 16].iter().map(|&q| q as i32).sum();
                    b[260 + 2 * g..262 + 2 * g].copy_from_slice(&(s as i16).to_le_bytes());
                }
            }
            row
        }
        _ => unreachable!("{act}"),
    }
}

fn dequant(t: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; n];
    dequantize_row(t, bytes, &mut out).unwrap_or_else(|e| panic!("dequantize {t}: {e}"));
    out
}

/// `Σ_k |w_k| |x_k|` of the dequantized rows.
fn magnitude(t: GgmlType, w: &[u8], x: &[u8], n: usize) -> f64 {
    let wd = dequant(t, w, n);
    let xd = dequant(kernels::vec_dot_type(t), x, n);
    wd.iter()
        .zip(&xd)
        .map(|(a, b)| (*a as f64 * *b as f64).abs())
        .sum()
}

/// Compares `k` with the reference on one row pair; returns a failure message.
fn compare(k: &Kernels, t: GgmlType, n: usize, w: &[u8], x: &[u8], exact: bool) -> Option<String> {
    let want = scalar().vec_dot(t, n, w, x).unwrap();
    let got = k.vec_dot(t, n, w, x).unwrap();
    if exact {
        if got.to_bits() != want.to_bits() {
            return Some(format!(
                "{} {t} n={n}: got {got} want {want} (exact)",
                k.isa()
            ));
        }
        return None;
    }
    let m = magnitude(t, w, x, n);
    let tol = 1e-5 * m + 1e-30;
    let diff = (got as f64 - want as f64).abs();
    if diff.is_nan() || diff > tol {
        return Some(format!(
            "{} {t} n={n}: got {got} want {want} |diff| {diff:.3e} > {tol:.3e} (M {m:.3e})",
            k.isa()
        ));
    }
    None
}

fn block_counts(t: GgmlType) -> Vec<usize> {
    if t.block_size() == 1 {
        // Elements, covering every tail length of the vector loops.
        vec![1, 7, 8, 15, 16, 31, 32, 33, 63, 64, 100, 1536]
    } else {
        vec![1, 2, 7, 48]
    }
}

fn run_random(mode: Mode) {
    let mut fails = Vec::new();
    for k in simd_tables() {
        for (ti, t) in WEIGHT_TYPES.into_iter().enumerate() {
            let act = kernels::vec_dot_type(t);
            for nb in block_counts(t) {
                // Fewer blocks in exact mode so the sums stay below 2^24.
                if mode == Mode::Exact && t.block_size() > 1 && nb > 7 {
                    continue;
                }
                for seed in 0..6u64 {
                    let mut rng = Rng(seed * 1000 + ti as u64 * 17 + nb as u64);
                    let w = weight_row(t, nb, &mut rng, mode);
                    let x = act_row(t, act, nb, &mut rng, mode);
                    let n = nb * t.block_size();
                    fails.extend(compare(k, t, n, &w, &x, mode == Mode::Exact));
                }
            }
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

#[test]
fn integer_sums_are_exact() {
    run_random(Mode::Exact);
}

#[test]
fn random_blocks_match_reference() {
    run_random(Mode::Random);
}

const REF_ROWS: usize = 10;
const REF_COLS: usize = 1536;

fn ref_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference/quant")
}

fn ref_input() -> Vec<f32> {
    let bytes = std::fs::read(ref_dir().join("input.f32")).unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn real_vectors_match_reference() {
    let input = ref_input();
    let mut fails = Vec::new();
    for k in simd_tables() {
        for t in WEIGHT_TYPES {
            if t == GgmlType::F32 {
                continue; // no F32.bin; covered by the random rows
            }
            let w = std::fs::read(ref_dir().join(format!("{t:?}.bin"))).unwrap();
            let act = kernels::vec_dot_type(t);
            let wrb = t.bytes_for(REF_COLS as u64).unwrap() as usize;
            let arb = act.bytes_for(REF_COLS as u64).unwrap() as usize;
            for j in 0..REF_ROWS {
                let mut x = vec![0u8; arb];
                quantize_row_ref(act, &input[j * REF_COLS..(j + 1) * REF_COLS], &mut x).unwrap();
                for i in 0..REF_ROWS {
                    let wr = &w[i * wrb..(i + 1) * wrb];
                    fails.extend(compare(k, t, REF_COLS, wr, &x, false));
                }
            }
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

/// Rows for the quantizer tests: random at many scales, the real rows, and edge cases.
fn quantizer_rows() -> Vec<Vec<f32>> {
    let n = 512; // two Q8_K blocks, sixteen Q8_0 blocks
    let mut rows = Vec::new();
    let mut rng = Rng(42);
    for e in [-30, -12, -3, 0, 3, 12, 30] {
        let s = (2.0f32).powi(e);
        rows.push((0..n).map(|_| (rng.unit() * 2.0 - 1.0) * s).collect());
    }
    let input = ref_input();
    for r in 0..REF_ROWS {
        rows.push(input[r * REF_COLS..r * REF_COLS + n].to_vec());
    }
    // Exact ties: values k/2 * (amax/127) for amax = 127 (d = 1): x.5 after scaling.
    rows.push(
        (0..n)
            .map(|i| {
                if i % 32 == 0 {
                    127.0
                } else {
                    (i % 64) as f32 * 0.5 - 16.0
                }
            })
            .collect(),
    );
    // Negative maximum first, equal magnitudes of both signs (Q8_K takes the first).
    rows.push(
        (0..n)
            .map(|i| match i % 256 {
                3 => -5.0,
                7 => 5.0,
                _ => (i % 11) as f32 * 0.3 - 1.5,
            })
            .collect(),
    );
    // A single non-zero per block, subnormals, zeros.
    rows.push(
        (0..n)
            .map(|i| if i % 37 == 5 { 1e-3 } else { 0.0 })
            .collect(),
    );
    rows.push((0..n).map(|i| (i as f32 - 256.0) * 1e-42).collect());
    rows.push(vec![0.0; n]);
    rows.push(
        (0..n)
            .map(|i| if i % 2 == 0 { 3e38 } else { -1e38 })
            .collect(),
    );
    rows
}

#[test]
fn quantizers_match_reference() {
    let rows = quantizer_rows();
    let mut fails = Vec::new();
    for k in simd_tables() {
        for act in [
            GgmlType::Q8_0,
            GgmlType::Q8_1,
            GgmlType::Q8_K,
            GgmlType::F16,
            GgmlType::BF16,
            GgmlType::F32,
        ] {
            for (r, x) in rows.iter().enumerate() {
                let len = act.bytes_for(x.len() as u64).unwrap() as usize;
                let mut want = vec![0u8; len];
                let mut got = vec![0u8; len];
                // Q8_0/Q8_1 activations are llama.cpp's x86 quantizers (127/amax, ties to
                // even), defined by the scalar table; the others are the reference quantizers.
                if matches!(act, GgmlType::Q8_0 | GgmlType::Q8_1) {
                    scalar().quantize_row_act(act, x, &mut want).unwrap();
                } else {
                    quantize_row_ref(act, x, &mut want).unwrap();
                }
                k.quantize_row_act(act, x, &mut got).unwrap();
                if got != want {
                    let first = got.iter().zip(&want).position(|(a, b)| a != b).unwrap();
                    fails.push(format!(
                        "{} {act} row {r}: first difference at byte {first}: {:#04x} vs {:#04x}",
                        k.isa(),
                        got[first],
                        want[first]
                    ));
                }
            }
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

#[test]
fn float_converters_handle_specials() {
    // Odd length (tail), NaNs with payloads, infinities, subnormals, halfway cases.
    let mut x: Vec<f32> = vec![
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xffc1_2345),
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e-40,
        -1e-45,
        65504.0,
        65520.0,
        1.0 + 1.0 / 2048.0,
        1.0 + 3.0 / 2048.0,
        f32::from_bits(0x3f80_8000),
        f32::from_bits(0x3f81_8000),
        -0.0,
    ];
    let mut rng = Rng(7);
    x.extend((0..50).map(|_| f32::from_bits(rng.next_u64() as u32)));
    for k in simd_tables() {
        for act in [GgmlType::F16, GgmlType::BF16] {
            let mut want = vec![0u8; 2 * x.len()];
            let mut got = vec![0u8; 2 * x.len()];
            quantize_row_ref(act, &x, &mut want).unwrap();
            k.quantize_row_act(act, &x, &mut got).unwrap();
            assert_eq!(got, want, "{} {act}", k.isa());
        }
    }
}

#[test]
fn bad_lengths_are_errors() {
    for k in kernels::available_isas() {
        let k = Kernels::for_isa(k).unwrap();
        let w = vec![0u8; 18 * 2];
        let x = vec![0u8; 34 * 2];
        assert!(k.vec_dot(GgmlType::Q4_0, 64, &w, &x).is_ok());
        assert!(k.vec_dot(GgmlType::Q4_0, 63, &w, &x).is_err());
        assert!(k.vec_dot(GgmlType::Q4_0, 64, &w[1..], &x).is_err());
        assert!(k.vec_dot(GgmlType::Q4_0, 64, &w, &x[..34]).is_err());
        assert!(k.vec_dot(GgmlType::IQ2_XXS, 256, &w, &x).is_err());
        assert_eq!(k.vec_dot(GgmlType::Q4_0, 0, &[], &[]).unwrap(), 0.0);
        let mut out = vec![0u8; 34];
        assert!(
            k.quantize_row_act(GgmlType::Q8_0, &[0.0; 33], &mut out)
                .is_err()
        );
        assert!(
            k.quantize_row_act(GgmlType::Q4_0, &[0.0; 32], &mut out[..18])
                .is_err()
        );
        assert!(
            k.quantize_row_act(GgmlType::Q8_0, &[0.0; 32], &mut out[..33])
                .is_err()
        );
    }
}

#[test]
fn exact_types_equal_scalar_bit_for_bit() {
    let mut rng = Rng(2024);
    for k in simd_tables() {
        for t in common::EXACT_TYPES {
            let act = kernels::vec_dot_type(t);
            for nb in [1, 2, 3, 7, 18, 48] {
                for _ in 0..20 {
                    let w = weight_row(t, nb, &mut rng, Mode::Random);
                    let x = act_row(t, act, nb, &mut rng, Mode::Random);
                    let n = nb * t.block_size();
                    let want = scalar().vec_dot(t, n, &w, &x).unwrap();
                    let got = k.vec_dot(t, n, &w, &x).unwrap();
                    assert_eq!(got.to_bits(), want.to_bits(), "{} {t} nb {nb}", k.isa());
                }
            }
        }
    }
}

#[test]
fn unaligned_rows_work() {
    // Rows at odd addresses give the same result as aligned ones.
    let mut rng = Rng(99);
    for k in kernels::available_isas() {
        let k = Kernels::for_isa(k).unwrap();
        for t in WEIGHT_TYPES {
            let act = kernels::vec_dot_type(t);
            let nb = 3;
            let w = weight_row(t, nb, &mut rng, Mode::Random);
            let x = act_row(t, act, nb, &mut rng, Mode::Random);
            let n = nb * t.block_size();
            let mut wu = vec![0u8; w.len() + 1];
            wu[1..].copy_from_slice(&w);
            let mut xu = vec![0u8; x.len() + 3];
            xu[3..].copy_from_slice(&x);
            let a = k.vec_dot(t, n, &w, &x).unwrap();
            let b = k.vec_dot(t, n, &wu[1..], &xu[3..]).unwrap();
            assert_eq!(a.to_bits(), b.to_bits(), "{} {t}", k.isa());
        }
    }
}

#[test]
fn dot_rows_equals_vec_dot() {
    let mut rng = Rng(123);
    for isa in kernels::available_isas() {
        let k = Kernels::for_isa(isa).unwrap();
        for t in WEIGHT_TYPES {
            let act = kernels::vec_dot_type(t);
            let nb = 5;
            let n = nb * t.block_size();
            let rows = 6;
            let w: Vec<u8> = (0..rows)
                .flat_map(|_| weight_row(t, nb, &mut rng, Mode::Random))
                .collect();
            let x = act_row(t, act, nb, &mut rng, Mode::Random);
            let mut out = vec![0.0f32; rows];
            k.dot_rows(t, n, &w, &x, &mut out).unwrap();
            let rb = w.len() / rows;
            for (r, o) in out.iter().enumerate() {
                let want = k.vec_dot(t, n, &w[r * rb..(r + 1) * rb], &x).unwrap();
                assert_eq!(o.to_bits(), want.to_bits(), "{isa} {t} row {r}");
            }
            assert!(k.dot_rows(t, n, &w[1..], &x, &mut out).is_err());
            assert!(k.dot_rows(t, n, &w, &x, &mut out[1..]).is_err());
            assert!(k.dot_rows(t, n, &w, &x[1..], &mut out).is_err());
        }
    }
}

/// Weight rows come from files: any bytes at all (NaN/inf scales, activations with -128,
/// inconsistent sums) must give a result, never a panic or a read out of bounds.
#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = Rng(0xBAD);
    for isa in kernels::available_isas() {
        let k = Kernels::for_isa(isa).unwrap();
        for t in WEIGHT_TYPES {
            let act = kernels::vec_dot_type(t);
            for nb in [1, 3, 9] {
                let n = nb * t.block_size();
                let w: Vec<u8> = (0..t.bytes_for(n as u64).unwrap())
                    .map(|_| rng.byte())
                    .collect();
                let x: Vec<u8> = (0..act.bytes_for(n as u64).unwrap())
                    .map(|_| rng.byte())
                    .collect();
                let _ = k.vec_dot(t, n, &w, &x).unwrap();
                let mut out = [0.0f32; 1];
                k.dot_rows(t, n, &w, &x, &mut out).unwrap();
            }
        }
    }
}
