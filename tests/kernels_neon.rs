//! AArch64-only checks of the NEON and NEON + dotprod tables, beyond the shared
//! SIMD-vs-scalar tests of `kernels_simd.rs` (which already run both tables):
//!
//! 1. Detection: NEON is always offered on little-endian AArch64, dotprod exactly when the CPU
//!    has it, and `KILN_ISA` picks the process-wide table.
//! 2. **NEON and dotprod agree bit for bit** on fully random blocks: every quant byte random
//!    and biased towards the extremes, activation bytes too (including -128, which no quantizer
//!    produces, and random `bsums`), scales random finite. The two tables share every float
//!    operation and differ only in how sixteen i8 products are summed into the same four lanes
//!    (`smull` + `saddlp` + `addp` vs `sdot`), so equal bits mean both integer paths agree over
//!    the whole byte range, not just for the small values of the exact test in
//!    `kernels_simd.rs`; and with extreme bytes and unit scales the 32-element formats must give
//!    the scalar reference's bits (their sums stay exact in f32).
//! 3. **Quantizers are byte-identical to the reference for every input**, NaN included (the
//!    shared test covers finite input only): NaN blocks, infinities, overflowing scales.
//!
//! Run under qemu on x86 hosts: `cargo test --target aarch64-unknown-linux-gnu --test
//! kernels_neon` (runner in `.cargo/config.toml`); on other architectures this file is empty.

#![cfg(all(target_arch = "aarch64", target_endian = "little"))]

mod common;
use common::rng::Rng;

use kiln::GgmlType;
use kiln::kernels::{self, Isa, Kernels};
use kiln::quant::quantize_row_ref;

const INT_TYPES: [GgmlType; 12] = [
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

/// Byte offsets of the f16 fields of a weight block of `t`.
fn f16_fields(t: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match t {
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL | IQ4_XS => &[0],
        Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q6_K => &[208],
        _ => unreachable!("{t}"),
    }
}

fn put_f16(b: &mut [u8], off: usize, v: f32) {
    b[off..off + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
}

/// `nb` blocks of `t`: every byte random ([`Rng::edgy_byte`]) except the float fields (random
/// finite scales).
fn random_row(t: GgmlType, nb: usize, rng: &mut Rng) -> Vec<u8> {
    let bs = t.type_size();
    let mut row: Vec<u8> = (0..nb * bs).map(|_| rng.edgy_byte()).collect();
    for b in row.chunks_exact_mut(bs) {
        match t {
            GgmlType::Q8_1 => {
                put_f16(b, 0, rng.scale_in(-14.0, 2.0));
                put_f16(b, 2, rng.scale_in(-14.0, 2.0) * 64.0);
            }
            GgmlType::Q8_K => b[..4].copy_from_slice(&rng.scale_in(-14.0, 2.0).to_le_bytes()),
            _ => {
                for &off in f16_fields(t) {
                    put_f16(b, off, rng.scale_in(-14.0, 2.0));
                }
            }
        }
    }
    row
}

fn table(isa: Isa) -> Option<&'static Kernels> {
    let t = Kernels::for_isa(isa);
    if t.is_none() {
        eprintln!("SKIP: this CPU cannot run {isa}");
    }
    t
}

#[test]
fn detection_matches_the_cpu() {
    let avail = kernels::available_isas();
    assert!(avail.contains(&Isa::Neon), "NEON missing from {avail:?}");
    let dotprod = std::arch::is_aarch64_feature_detected!("dotprod");
    assert_eq!(avail.contains(&Isa::NeonDotprod), dotprod, "{avail:?}");
    assert!(!avail.contains(&Isa::Avx2) && !avail.contains(&Isa::Avx512));
    for isa in avail {
        assert_eq!(Kernels::for_isa(isa).unwrap().isa(), isa);
    }
    // Without `KILN_ISA` the best table is used; with it, the named one (if this CPU has it).
    let want = match std::env::var("KILN_ISA")
        .ok()
        .and_then(|s| Isa::from_name(&s))
    {
        Some(isa) if Kernels::for_isa(isa).is_some() => isa,
        _ if dotprod => Isa::NeonDotprod,
        _ => Isa::Neon,
    };
    assert_eq!(kernels::isa(), want);
}

#[test]
fn neon_and_dotprod_agree_bit_for_bit_on_random_bytes() {
    let (Some(neon), Some(dot)) = (table(Isa::Neon), table(Isa::NeonDotprod)) else {
        return;
    };
    let mut fails = Vec::new();
    for (ti, t) in INT_TYPES.into_iter().enumerate() {
        let act = kernels::vec_dot_type(t);
        for nb in [1, 2, 3, 8, 33] {
            for seed in 0..8u64 {
                let mut rng = Rng(seed * 7919 + ti as u64 * 131 + nb as u64);
                let w = random_row(t, nb, &mut rng);
                let x = random_row(act, nb * t.block_size() / act.block_size(), &mut rng);
                let n = nb * t.block_size();
                let a = neon.vec_dot(t, n, &w, &x).unwrap();
                let b = dot.vec_dot(t, n, &w, &x).unwrap();
                if a.to_bits() != b.to_bits() {
                    fails.push(format!("{t} nb={nb} seed={seed}: neon {a} dotprod {b}"));
                }
            }
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}

#[test]
fn extreme_quants_agree_with_scalar() {
    // Every weight quant byte 0xFF / 0x80 / 0x00 and activations ±127 / -128 with unit scales:
    // the integer sums are as large as they get; per block they stay exact in f32 for the
    // 32-element formats, so NEON must give the reference's bits there.
    let scalar = Kernels::for_isa(Isa::Scalar).unwrap();
    for isa in [Isa::Neon, Isa::NeonDotprod] {
        let Some(k) = table(isa) else { continue };
        for t in [
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q8_0,
            GgmlType::IQ4_NL,
        ] {
            let act = kernels::vec_dot_type(t);
            for (wq, xq) in [(0xFFu8, 127i8), (0x80, -128), (0x00, -127), (0x80, 127)] {
                let mut w = vec![wq; t.type_size()];
                for &off in f16_fields(t) {
                    put_f16(&mut w, off, 1.0);
                }
                let mut x = vec![xq as u8; act.type_size()];
                put_f16(&mut x, 0, 1.0);
                if act == GgmlType::Q8_1 {
                    put_f16(&mut x, 2, 32.0 * xq as f32);
                }
                let want = scalar.vec_dot(t, 32, &w, &x).unwrap();
                let got = k.vec_dot(t, 32, &w, &x).unwrap();
                assert_eq!(got.to_bits(), want.to_bits(), "{isa} {t} {wq:#x} {xq}");
            }
        }
    }
}

/// Rows of 512 floats with NaNs, infinities and extreme magnitudes in some blocks.
fn special_rows() -> Vec<Vec<f32>> {
    let n = 512;
    let mut rng = Rng(5);
    let mut base = || -> Vec<f32> { (0..n).map(|_| rng.unit() * 2.0 - 1.0).collect() };
    let mut rows = Vec::new();
    // NaN (quiet, signalling, negative, with payloads) at various places.
    for (pos, nan) in [
        (0usize, f32::NAN),
        (31, -f32::NAN),
        (100, f32::from_bits(0x7f80_0001)),
        (255, f32::from_bits(0xffc1_2345)),
        (300, f32::from_bits(0x7fa0_0000)),
    ] {
        let mut r = base();
        r[pos] = nan;
        rows.push(r);
    }
    // Blocks entirely NaN, and NaN next to the block maximum.
    let mut r = base();
    r[..32].fill(f32::NAN);
    r[256..288].fill(f32::NAN);
    r[300] = 50.0;
    r[301] = f32::NAN;
    rows.push(r);
    // Infinities (scale 0, d = inf).
    let mut r = base();
    r[5] = f32::INFINITY;
    r[290] = f32::NEG_INFINITY;
    r[291] = f32::INFINITY;
    rows.push(r);
    // Subnormal-only blocks (1/d overflows) and near-overflow values.
    rows.push(
        (0..n)
            .map(|i| (i as f32 - 200.0) * 1e-43 * if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect(),
    );
    rows.push(
        (0..n)
            .map(|i| {
                if i % 5 == 0 {
                    f32::MAX
                } else {
                    -f32::MAX / (i as f32)
                }
            })
            .collect(),
    );
    // Random bit patterns: NaNs, infinities, subnormals, everything.
    let mut rng = Rng(11);
    for _ in 0..4 {
        rows.push(
            (0..n)
                .map(|_| f32::from_bits(rng.next_u64() as u32))
                .collect(),
        );
    }
    rows
}

#[test]
fn quantizers_match_reference_for_every_input() {
    let rows = special_rows();
    let mut fails = Vec::new();
    for isa in [Isa::Neon, Isa::NeonDotprod] {
        let Some(k) = table(isa) else { continue };
        for act in [
            GgmlType::Q8_0,
            GgmlType::Q8_1,
            GgmlType::Q8_K,
            GgmlType::F16,
            GgmlType::BF16,
        ] {
            for (r, x) in rows.iter().enumerate() {
                let len = act.bytes_for(x.len() as u64).unwrap() as usize;
                let mut want = vec![0u8; len];
                let mut got = vec![0u8; len];
                // Q8_0/Q8_1 activations are llama.cpp's x86 quantizers, defined by the scalar
                // table; the others are the reference quantizers.
                if matches!(act, GgmlType::Q8_0 | GgmlType::Q8_1) {
                    Kernels::for_isa(Isa::Scalar)
                        .unwrap()
                        .quantize_row_act(act, x, &mut want)
                        .unwrap();
                } else {
                    quantize_row_ref(act, x, &mut want).unwrap();
                }
                k.quantize_row_act(act, x, &mut got).unwrap();
                if let Some(first) = got.iter().zip(&want).position(|(a, b)| a != b) {
                    fails.push(format!(
                        "{isa} {act} row {r}: first difference at byte {first}: {:#04x} vs {:#04x}",
                        got[first], want[first]
                    ));
                }
            }
        }
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}
