//! AArch64 kernels: Advanced SIMD (NEON) and NEON + the dot-product extension (`sdot`).
//!
//! - `neon.rs`: the [`Isa::Neon`] table, the float dots (F32, F16, BF16), the activation
//!   converters (shared by both tables) and the load/convert helpers.
//! - `quants.rs`: the integer dot kernels and the per-path kernels (`PathKernels`), written
//!   once and generic over how sixteen signed byte pairs are multiplied and summed
//!   (`quants::I8Dot`): widening multiplies on plain NEON, one `sdot` with dotprod. For Q4_0,
//!   Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q4_K, Q5_K, Q6_K and every path they compute exactly what
//!   `scalar.rs` defines (llama.cpp's x86 arithmetic), bit for bit.
//! - `dotprod.rs`: the `sdot` step and the [`Isa::NeonDotprod`] table.
//!
//! This is the only place that asks the CPU what it supports. A table is handed out only after
//! its features were detected, which is what the `// SAFETY:` comments on calls through a
//! [`Kernels`] table rely on. The kernels read little-endian block bytes straight into vector
//! lanes, so they exist only on little-endian AArch64 (big-endian targets use the scalar table).

use super::{Isa, Kernels};

#[cfg(target_endian = "little")]
mod dotprod;
#[cfg(target_endian = "little")]
mod neon;
#[cfg(target_endian = "little")]
mod quants;

/// Advanced SIMD (always present on AArch64 Linux, but asked anyway).
#[cfg(target_endian = "little")]
fn has_neon() -> bool {
    std::arch::is_aarch64_feature_detected!("neon")
}

/// [`has_neon`] plus the dot-product extension (`sdot`, Armv8.2 optional, Armv8.4 mandatory).
#[cfg(target_endian = "little")]
fn has_dotprod() -> bool {
    has_neon() && std::arch::is_aarch64_feature_detected!("dotprod")
}

/// The table of `isa` if this CPU supports it.
#[cfg(target_endian = "little")]
pub(super) fn table(isa: Isa) -> Option<&'static Kernels> {
    match isa {
        Isa::Neon if has_neon() => Some(&neon::NEON),
        Isa::NeonDotprod if has_dotprod() => Some(&dotprod::NEON_DOTPROD),
        _ => None,
    }
}

/// The table of `isa` if this CPU supports it: none on big-endian AArch64.
#[cfg(target_endian = "big")]
pub(super) fn table(_isa: Isa) -> Option<&'static Kernels> {
    None
}
