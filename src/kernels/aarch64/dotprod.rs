//! NEON + dotprod: the integer kernels of `quants.rs` with `sdot` (four 4-byte dot products
//! per instruction) as their [`I8Dot`] step, in the [`NEON_DOTPROD`] table. The float dots
//! and the activation converters have nothing to gain from `sdot`: the table reuses NEON's.
//!
//! `vdotq_s32` is not stable in Rust, so `sdot` is written with `asm!`; the row loops are
//! compiled with `#[target_feature(enable = "neon,dotprod")]`, which is what lets the
//! assembler accept the instruction once the `#[inline(always)]` kernels are inlined into them.

use core::arch::aarch64::*;
use core::arch::asm;

use super::super::{Isa, Kernels, dot_rows_fns};
use super::neon::{NEON, convert};
use super::quants::{self, I8Dot};

/// The dot-product extension's `sdot`.
pub(super) struct Sdot;

impl I8Dot for Sdot {
    #[inline(always)]
    unsafe fn dot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: `sdot` exists (caller's contract: the CPU has dotprod, detected before the
        // table was handed out); it only reads and writes registers.
        unsafe {
            asm!(
                "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
                acc = inout(vreg) acc,
                a = in(vreg) a,
                b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }
}

/// The NEON + dotprod table.
pub(in crate::kernels) static NEON_DOTPROD: Kernels = Kernels {
    isa: Isa::NeonDotprod,
    f32: NEON.f32,
    f16: NEON.f16,
    bf16: NEON.bf16,
    q4_0: crate::kernels::SCALAR.q4_0,
    q4_1: rows::dot_q4_1_dotprod,
    q5_0: crate::kernels::SCALAR.q5_0,
    q5_1: crate::kernels::SCALAR.q5_1,
    q8_0: crate::kernels::SCALAR.q8_0,
    q2_k: rows::dot_q2_k_dotprod,
    q3_k: rows::dot_q3_k_dotprod,
    q4_k: crate::kernels::SCALAR.q4_k,
    q5_k: crate::kernels::SCALAR.q5_k,
    q6_k: crate::kernels::SCALAR.q6_k,
    iq4_nl: crate::kernels::SCALAR.iq4_nl,
    iq4_xs: rows::dot_iq4_xs_dotprod,
    quantize_q8_0: convert::quantize_q8_0_neon,
    quantize_q8_1: convert::quantize_q8_1_neon,
    quantize_q8_k: convert::quantize_q8_k_neon,
    to_f16: convert::to_f16_neon,
    to_bf16: convert::to_bf16_neon,
    paths: crate::kernels::SCALAR_PATHS,
};

/// Row drivers of the dotprod table.
mod rows {
    use super::{Sdot, dot_rows_fns, quants};
    dot_rows_fns! {
        features = "neon,dotprod";
        dot_q4_1_dotprod: quants::dot_q4_1::<Sdot>, 20, 36;
        dot_q2_k_dotprod: quants::dot_q2_k::<Sdot>, 84, 292;
        dot_q3_k_dotprod: quants::dot_q3_k::<Sdot>, 110, 292;
        dot_iq4_xs_dotprod: quants::dot_iq4_xs::<Sdot>, 136, 292;
    }
}
