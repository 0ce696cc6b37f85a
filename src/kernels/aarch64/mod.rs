//! AArch64 kernels: the slot for NEON and NEON + dotprod.
//!
//! To add them, write `neon.rs` next to this file with two tables,
//! `pub(super) static NEON: Kernels` and `pub(super) static NEON_DOTPROD: Kernels` (same shape
//! as `x86/avx2.rs`: `dot_rows_fns!` over `#[inline(always)]` per-row kernels, converters
//! checked with `check_convert`), declare `mod neon;` here and return them from [`table`] behind
//! `std::arch::is_aarch64_feature_detected!("neon")` / `("dotprod")`. Nothing outside this
//! directory changes: `Isa::Neon`, `Isa::NeonDotprod`, `KILN_ISA=neon|dotprod` and the tests
//! and benches that iterate `available_isas()` already know them.

use super::{Isa, Kernels};

/// The table of `isa` if this CPU supports it. No AArch64 tables exist yet, so scalar is used.
pub(super) fn table(isa: Isa) -> Option<&'static Kernels> {
    match isa {
        Isa::Neon | Isa::NeonDotprod => None,
        _ => None,
    }
}
