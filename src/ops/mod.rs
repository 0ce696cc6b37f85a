//! Tensor operations of the forward pass: matmul, norms, RoPE, softmax, activations, attention.
//!
//! Matrix products live in [`crate::kernels::matmul`]; these are the row-wise operations around
//! them, written to reproduce ggml's CPU arithmetic closely (accumulation types, rounding of
//! the GELU table, the RoPE angle recurrence), since kiln's answers are checked against
//! llama.cpp's.
//!
//! The hot ones (flash attention, SwiGLU, GeGLU) have SIMD versions that perform exactly the
//! scalar code's float operations in the same order (per lane), so every ISA gives the same
//! bits. Which one runs follows the kernel table ([`crate::kernels::isa`]): the x86 tables
//! select the AVX2/FMA/F16C code, `KILN_ISA=scalar` (and every other architecture) the plain
//! Rust. The `*_with` functions take the ISA explicitly (for tests and benchmarks).

pub mod activation;
pub mod attention;
pub mod flash;
pub mod norm;
pub mod rope;
pub mod softmax;

#[cfg(target_arch = "x86_64")]
mod x86;

use crate::kernels::{Isa, Kernels};

/// The SIMD level of the ops' fast paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Simd {
    /// Plain Rust (the definition of every op's arithmetic).
    Scalar,
    /// x86-64 AVX2 + FMA + F16C (every x86 kernel table has them).
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Simd {
    /// The level for the ISA `isa`: scalar unless this CPU can run `isa` (the kernels module
    /// knows; nothing here asks the CPU) and the ops have code for it.
    pub(crate) fn for_isa(isa: Isa) -> Simd {
        if Kernels::for_isa(isa).is_none() {
            return Simd::Scalar;
        }
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx512 | Isa::Avx512Vnni => Simd::Avx2,
            _ => Simd::Scalar,
        }
    }

    /// The level for the process-wide kernel table (whose ISA this CPU runs).
    #[inline]
    pub(crate) fn selected() -> Simd {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::x86_fma_f16c() {
            return Simd::Avx2;
        }
        Simd::Scalar
    }
}
