//! x86-64 kernels: AVX2 (+FMA, F16C) and AVX-512 (F/BW/VL, with or without VNNI).
//!
//! This is the only place that asks the CPU what it supports. A table is handed out only
//! after its features were detected, which is what the `// SAFETY:` comments on calls through
//! a [`Kernels`] table rely on.

use super::{Isa, Kernels};

mod avx2;
mod avx512;

/// AVX2 with FMA and F16C (every AVX2 CPU kiln targets has all three).
fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// AVX-512 F, BW and VL on top of [`has_avx2`].
fn has_avx512() -> bool {
    has_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
}

/// The table of `isa` if this CPU supports it.
pub(super) fn table(isa: Isa) -> Option<&'static Kernels> {
    match isa {
        Isa::Avx2 if has_avx2() => Some(&avx2::AVX2),
        Isa::Avx512 if has_avx512() => Some(&avx512::AVX512),
        Isa::Avx512Vnni if has_avx512() && is_x86_feature_detected!("avx512vnni") => {
            Some(&avx512::AVX512_VNNI)
        }
        _ => None,
    }
}
