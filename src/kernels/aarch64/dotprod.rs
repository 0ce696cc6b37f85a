//! NEON + dotprod: the integer kernels of `quants.rs` (vec_dot and per-path) with `sdot` (four
//! 4-byte dot products per instruction) as their [`I8Dot`] step, in the [`NEON_DOTPROD`] table;
//! same bits as the NEON table. The float dots
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
    q4_0: rows::dot_q4_0_dotprod,
    q4_1: rows::dot_q4_1_dotprod,
    q5_0: rows::dot_q5_0_dotprod,
    q5_1: rows::dot_q5_1_dotprod,
    q8_0: rows::dot_q8_0_dotprod,
    q2_k: rows::dot_q2_k_dotprod,
    q3_k: rows::dot_q3_k_dotprod,
    q4_k: rows::dot_q4_k_dotprod,
    q5_k: rows::dot_q5_k_dotprod,
    q6_k: rows::dot_q6_k_dotprod,
    iq4_nl: rows::dot_iq4_nl_dotprod,
    iq4_xs: rows::dot_iq4_xs_dotprod,
    quantize_q8_0: convert::quantize_q8_0_neon,
    quantize_q8_1: convert::quantize_q8_1_neon,
    quantize_q8_k: convert::quantize_q8_k_neon,
    to_f16: convert::to_f16_neon,
    to_bf16: convert::to_bf16_neon,
    stream: None,
    paths: crate::kernels::PathKernels {
        q4_k_gemv: rows::dot_q4_k_gemv_dotprod,
        q4_k_gemm: rows::dot_q4_k_gemm_dotprod,
        q4_k_tiled: rows::dot_q4_k_tiled_dotprod,
        q5_k_tiled: rows::dot_q5_k_tiled_dotprod,
        q6_k_tiled: rows::dot_q6_k_tiled_dotprod,
        iq4_nl_tinyblas: rows::dot_iq4_nl_tinyblas_dotprod,
    },
};

/// Row drivers of the dotprod table.
mod rows {
    use super::{Sdot, dot_rows_fns, quants};
    dot_rows_fns! {
        features = "neon,dotprod";
        dot_q4_0_dotprod: quants::dot_q4_0::<Sdot>, 18, 34, pair = quants::dot_q4_0_rows::<Sdot, 2>;
        dot_q4_1_dotprod: quants::dot_q4_1::<Sdot>, 20, 36, pair = quants::dot_q4_1_rows::<Sdot, 2>;
        dot_q5_0_dotprod: quants::dot_q5_0::<Sdot>, 22, 34, pair = quants::dot_q5_0_rows::<Sdot, 2>;
        dot_q5_1_dotprod: quants::dot_q5_1::<Sdot>, 24, 36, pair = quants::dot_q5_1_rows::<Sdot, 2>;
        dot_q8_0_dotprod: quants::dot_q8_0::<Sdot>, 34, 34, pair = quants::dot_q8_0_rows::<Sdot, 2>;
        dot_q2_k_dotprod: quants::dot_q2_k::<Sdot>, 84, 292;
        dot_q3_k_dotprod: quants::dot_q3_k::<Sdot>, 110, 292;
        dot_iq4_xs_dotprod: quants::dot_iq4_xs::<Sdot>, 136, 292;
        dot_q4_k_dotprod: quants::dot_q4_k::<Sdot>, 144, 292;
        dot_q5_k_dotprod: quants::dot_q5_k::<Sdot>, 176, 292;
        dot_q6_k_dotprod: quants::dot_q6_k::<Sdot>, 210, 292;
        dot_q4_k_gemv_dotprod: quants::dot_q4_k_gemv::<Sdot>, 144, 292;
        dot_q4_k_gemm_dotprod: quants::dot_q4_k_gemm::<Sdot>, 144, 292;
        dot_q4_k_tiled_dotprod: quants::dot_q4_k_tiled::<Sdot>, 144, 292;
        dot_q5_k_tiled_dotprod: quants::dot_q5_k_tiled::<Sdot>, 176, 292;
        dot_q6_k_tiled_dotprod: quants::dot_q6_k_tiled::<Sdot>, 210, 292;
        dot_iq4_nl_dotprod: quants::dot_iq4_nl::<Sdot>, 18, 34;
        dot_iq4_nl_tinyblas_dotprod: quants::dot_iq4_nl_tinyblas::<Sdot>, 18, 34,
            pair = quants::dot_iq4_nl_tinyblas_rows::<Sdot, 2>;
    }
}
