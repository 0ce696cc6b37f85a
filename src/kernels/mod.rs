//! SIMD dot products and activation quantizers, chosen once per process.
//!
//! Every weight type kiln computes with has a *dot kernel*: the dot product of one weight row
//! with one activation row quantized to the weight type's partner format, the same pairing as
//! ggml's `vec_dot_type` ([`vec_dot_type`]):
//!
//! | weights                               | activations |
//! | ------------------------------------- | ----------- |
//! | Q4_0, Q5_0, Q8_0, IQ4_NL              | Q8_0        |
//! | Q4_1, Q5_1                            | Q8_1        |
//! | Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS  | Q8_K        |
//! | F32 / F16 / BF16                      | F32 / F16 / BF16 |
//!
//! Each kernel exists once per instruction set ([`Isa`]): `scalar.rs` is the reference,
//! `x86/avx2.rs` (AVX2 + FMA + F16C), `x86/avx512.rs` (AVX-512 F/BW/VL, with or without VNNI)
//! and `aarch64/` (NEON, NEON + dotprod) are the fast paths. A [`Kernels`] table holds one
//! function per type for one ISA, plus one per matmul code path that rounds differently from
//! `vec_dot` (`PathKernels`, see `matmul::Path`). The process-wide table is picked on first
//! use: the best ISA the CPU has, or the one named by the `KILN_ISA` environment variable
//! (`scalar|avx2|avx512|avx512vnni|neon|dotprod`); asking for an ISA the CPU lacks prints one
//! warning to stderr and falls back to the best available.
//!
//! For the types whose arithmetic reproduces llama.cpp's x86 kernels (Q4_0, Q4_1, Q5_0, Q5_1,
//! Q8_0, IQ4_NL, Q4_K, Q5_K, Q6_K; see `scalar.rs`), every SIMD kernel gives the scalar
//! reference's bits: the same exact integer partial sums and the same float operations in the
//! same order. For the others (F16, BF16, F32, Q2_K, Q3_K, IQ4_XS) the integer partial sums are
//! the same and only the order of the per-block float terms differs (a few ulps of the sum of
//! magnitudes). Either way a table gives the same bits for the same inputs however many rows
//! or activation rows one call covers, and [`matmul()`] computes each output element with one
//! kernel, so its result does not depend on the number of threads or on how rows are chunked.
//!
//! Entry points: [`vec_dot`] (one row), [`Kernels::dot_rows`] (many rows, one activation row),
//! [`matmul()`] (a matrix times token activations, quantized once, rows over the rayon pool),
//! [`quantize_row_act`] (activation quantizers, byte-identical to `quant`'s references for
//! finite input).
//!
//! Adding an ISA: write its module with `pub(super) static` [`Kernels`] tables and return them
//! from its `table` function (as `x86::table` and `aarch64::table` do); nothing else changes.

use std::sync::OnceLock;

use crate::dtype::GgmlType;
use crate::quant::QuantError;

mod matmul;
pub(crate) mod scalar;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use matmul::{MatMulScratch, QMatrix, matmul};
#[cfg(target_arch = "x86_64")]
pub(crate) use x86::transpose8_ps;

/// An instruction-set level a [`Kernels`] table is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Isa {
    /// Portable Rust: the reference every other table is tested against.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C.
    Avx2,
    /// x86-64 with AVX-512 F, BW and VL (plus AVX2, FMA, F16C), without VNNI.
    Avx512,
    /// [`Isa::Avx512`] plus AVX-512 VNNI (`vpdpbusd`).
    Avx512Vnni,
    /// AArch64 Advanced SIMD.
    Neon,
    /// AArch64 Advanced SIMD with the dot-product extension (`sdot`).
    NeonDotprod,
}

impl Isa {
    /// Every ISA kiln knows, from the most portable to the most specialised.
    pub const ALL: [Isa; 6] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::Avx512,
        Isa::Avx512Vnni,
        Isa::Neon,
        Isa::NeonDotprod,
    ];

    /// The name `KILN_ISA` uses: `scalar`, `avx2`, `avx512`, `avx512vnni`, `neon`, `dotprod`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Neon => "neon",
            Isa::NeonDotprod => "dotprod",
        }
    }

    /// Parses a [`Isa::name`] (case-insensitive, surrounding blanks ignored).
    pub fn from_name(name: &str) -> Option<Isa> {
        let name = name.trim();
        Isa::ALL
            .into_iter()
            .find(|isa| isa.name().eq_ignore_ascii_case(name))
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Computes `out[r * out_stride + t] = dot(w row r, x row t)` for every weight row `r` and
/// activation row `t`, where `w` is `[rows][w_row_bytes]`, `x` is `[n_x][x_row_bytes]` and `out`
/// is `[rows][out_stride]` (only the first `n_x` of each row written; the last row may be just
/// `n_x` long). Rows are looped outermost, so each weight row is read once. Every row holds the
/// same number of blocks. Panics if the lengths disagree.
///
/// # Safety
/// The CPU must support the ISA of the table the pointer came from.
pub(crate) type DotRowsFn = unsafe fn(
    w: &[u8],
    w_row_bytes: usize,
    x: &[u8],
    x_row_bytes: usize,
    out: &mut [f32],
    out_stride: usize,
);

/// Converts f32 activations (whole blocks) to an activation format; `out` is exactly the
/// format's size for `x.len()` elements. Panics if the lengths disagree.
///
/// # Safety
/// The CPU must support the ISA of the table the pointer came from.
pub(crate) type ConvertFn = unsafe fn(x: &[f32], out: &mut [u8]);

/// One instruction set's kernels: a dot kernel per weight type and the activation converters.
///
/// Get the process-wide table with [`Kernels::get`], or a specific ISA's (for tests and
/// benches) with [`Kernels::for_isa`]. A `Kernels` value exists only for ISAs the running CPU
/// supports, which is what makes calling through it safe.
pub struct Kernels {
    pub(crate) isa: Isa,
    pub(crate) f32: DotRowsFn,
    pub(crate) f16: DotRowsFn,
    pub(crate) bf16: DotRowsFn,
    pub(crate) q4_0: DotRowsFn,
    pub(crate) q4_1: DotRowsFn,
    pub(crate) q5_0: DotRowsFn,
    pub(crate) q5_1: DotRowsFn,
    pub(crate) q8_0: DotRowsFn,
    pub(crate) q2_k: DotRowsFn,
    pub(crate) q3_k: DotRowsFn,
    pub(crate) q4_k: DotRowsFn,
    pub(crate) q5_k: DotRowsFn,
    pub(crate) q6_k: DotRowsFn,
    pub(crate) iq4_nl: DotRowsFn,
    pub(crate) iq4_xs: DotRowsFn,
    pub(crate) quantize_q8_0: ConvertFn,
    pub(crate) quantize_q8_1: ConvertFn,
    pub(crate) quantize_q8_k: ConvertFn,
    pub(crate) to_f16: ConvertFn,
    pub(crate) to_bf16: ConvertFn,
    /// The kernels of the matrix-product code paths that round differently from `vec_dot`.
    pub(crate) paths: PathKernels,
    /// One-token kernels for matrices streamed from memory, where the table has them.
    pub(crate) stream: Option<StreamKernels>,
}

/// One activation row against a run of rows read from memory rather than cache: the same
/// results as the type's `vec_dot` rows kernel, but the kernel prefetches the rows ahead of
/// itself, which the rows kernel does not (for rows already in cache the prefetches cost ~20%).
/// `matmul`'s one-token path hands such a kernel a whole chunk of rows per call.
#[derive(Clone, Copy)]
pub(crate) struct StreamKernels {
    pub(crate) q4_0: DotRowsFn,
    pub(crate) q4_1: DotRowsFn,
    pub(crate) q5_0: DotRowsFn,
    pub(crate) q5_1: DotRowsFn,
    pub(crate) q8_0: DotRowsFn,
}

/// Dot kernels for the code paths of llama.cpp's matrix product whose rounding differs from
/// its one-token `vec_dot` (see `matmul::Path`): the repacked Q4_K gemv and gemm, the tiled
/// K-quant matmul, tinyBLAS for IQ4_NL. Each computes exactly what its scalar twin in
/// `scalar.rs` defines, on every ISA.
#[derive(Clone, Copy)]
pub(crate) struct PathKernels {
    pub(crate) q4_k_gemv: DotRowsFn,
    pub(crate) q4_k_gemm: DotRowsFn,
    pub(crate) q4_k_tiled: DotRowsFn,
    pub(crate) q5_k_tiled: DotRowsFn,
    pub(crate) q6_k_tiled: DotRowsFn,
    pub(crate) iq4_nl_tinyblas: DotRowsFn,
}

/// The scalar per-path kernels.
pub(crate) const SCALAR_PATHS: PathKernels = PathKernels {
    q4_k_gemv: scalar::rows::q4_k_8x8_gemv,
    q4_k_gemm: scalar::rows::q4_k_8x8_gemm,
    q4_k_tiled: scalar::rows::q4_k_tiled,
    q5_k_tiled: scalar::rows::q5_k_tiled,
    q6_k_tiled: scalar::rows::q6_k_tiled,
    iq4_nl_tinyblas: scalar::rows::iq4_nl_tinyblas,
};

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels").field("isa", &self.isa).finish()
    }
}

/// The reference table: available everywhere.
static SCALAR: Kernels = Kernels {
    isa: Isa::Scalar,
    f32: scalar_rows::f32,
    f16: scalar_rows::f16,
    bf16: scalar_rows::bf16,
    q4_0: scalar_rows::q4_0,
    q4_1: scalar_rows::q4_1,
    q5_0: scalar_rows::q5_0,
    q5_1: scalar_rows::q5_1,
    q8_0: scalar_rows::q8_0,
    q2_k: scalar_rows::q2_k,
    q3_k: scalar_rows::q3_k,
    q4_k: scalar_rows::q4_k,
    q5_k: scalar_rows::q5_k,
    q6_k: scalar_rows::q6_k,
    iq4_nl: scalar_rows::iq4_nl,
    iq4_xs: scalar_rows::iq4_xs,
    quantize_q8_0: scalar_convert::q8_0,
    quantize_q8_1: scalar_convert::q8_1,
    quantize_q8_k: scalar_convert::q8_k,
    to_f16: scalar_convert::f16,
    to_bf16: scalar_convert::bf16,
    stream: None,
    paths: SCALAR_PATHS,
};

/// The table of `isa` if this CPU supports it (the scalar one always).
fn table_for(isa: Isa) -> Option<&'static Kernels> {
    match isa {
        Isa::Scalar => Some(&SCALAR),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 | Isa::Avx512Vnni => x86::table(isa),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon | Isa::NeonDotprod => aarch64::table(isa),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Every ISA this CPU can run, most portable first (always starts with [`Isa::Scalar`]).
pub fn available_isas() -> Vec<Isa> {
    Isa::ALL
        .into_iter()
        .filter(|&isa| table_for(isa).is_some())
        .collect()
}

/// The ISA of the process-wide table (see the module docs for how it is chosen).
pub fn isa() -> Isa {
    Kernels::get().isa
}

/// Whether the process-wide table is an x86 one, whose ISAs all include FMA and F16C: code
/// outside this module compiled with those features (bit-identical, only faster) asks here
/// instead of asking the CPU, so `KILN_ISA=scalar` also turns it off.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn x86_fma_f16c() -> bool {
    matches!(isa(), Isa::Avx2 | Isa::Avx512 | Isa::Avx512Vnni)
}

/// Picks the process-wide table: `KILN_ISA` if set and supported, else the best available.
fn choose() -> &'static Kernels {
    let best = || {
        let best = *available_isas().last().unwrap_or(&Isa::Scalar);
        table_for(best).unwrap_or(&SCALAR)
    };
    let Some(req) = std::env::var_os("KILN_ISA") else {
        return best();
    };
    let req = req.to_string_lossy();
    if req.trim().is_empty() {
        return best();
    }
    match Isa::from_name(&req) {
        Some(isa) => match table_for(isa) {
            Some(t) => t,
            None => {
                let b = best();
                eprintln!(
                    "kiln: warning: KILN_ISA={isa} but this CPU cannot run it; using {}",
                    b.isa
                );
                b
            }
        },
        None => {
            let b = best();
            let names: Vec<_> = Isa::ALL.iter().map(|i| i.name()).collect();
            eprintln!(
                "kiln: warning: unknown KILN_ISA={req:?} (expected one of {}); using {}",
                names.join("|"),
                b.isa
            );
            b
        }
    }
}

/// The activation format ggml pairs with weights of type `w` (`vec_dot_type`), or `None` if
/// kiln has no dot kernel for `w`.
pub fn try_vec_dot_type(w: GgmlType) -> Option<GgmlType> {
    use GgmlType::*;
    Some(match w {
        F32 => F32,
        F16 => F16,
        BF16 => BF16,
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL => Q8_0,
        Q4_1 | Q5_1 => Q8_1,
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | IQ4_XS => Q8_K,
        _ => return None,
    })
}

/// The activation format ggml pairs with weights of type `w` (`vec_dot_type`). For a type kiln
/// has no dot kernel for, returns `w` itself (and [`vec_dot`] reports
/// [`QuantError::Unsupported`]); use [`try_vec_dot_type`] to tell.
pub fn vec_dot_type(w: GgmlType) -> GgmlType {
    try_vec_dot_type(w).unwrap_or(w)
}

/// Whether kiln has a dot kernel for weights of type `w`.
pub fn supports(w: GgmlType) -> bool {
    try_vec_dot_type(w).is_some()
}

/// Quantizes (or converts) f32 activations `x` to `act`, one of Q8_0, Q8_1, Q8_K, F16, BF16,
/// F32, with the process-wide table. Same bytes as `quant::quantize_row_ref` for finite input.
pub fn quantize_row_act(act: GgmlType, x: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    Kernels::get().quantize_row_act(act, x, out)
}

/// The dot product of one weight row (`n` elements of type `w`) with one activation row
/// (`n` elements of [`vec_dot_type`]`(w)`), with the process-wide table.
pub fn vec_dot(w: GgmlType, n: usize, w_row: &[u8], x_row: &[u8]) -> Result<f32, QuantError> {
    Kernels::get().vec_dot(w, n, w_row, x_row)
}

/// Bytes of a row of `n` elements of `dtype`, or the error saying why `n` does not fit.
pub(crate) fn row_bytes(dtype: GgmlType, n: usize) -> Result<usize, QuantError> {
    let block_size = dtype.block_size();
    // Block sizes are powers of two (1, 32, 256): shift and mask, no division per call.
    let (blocks, rest) = if block_size.is_power_of_two() {
        (n >> block_size.trailing_zeros(), n & (block_size - 1))
    } else {
        (n / block_size, n % block_size)
    };
    let err = QuantError::RowLength {
        dtype,
        n,
        block_size,
    };
    if rest != 0 {
        return Err(err);
    }
    blocks.checked_mul(dtype.type_size()).ok_or(err)
}

/// Checks that `buf_len` bytes is exactly a row of `n` elements of `dtype`.
fn check_len(
    dtype: GgmlType,
    n: usize,
    buf_len: usize,
    buffer: &'static str,
) -> Result<(), QuantError> {
    let expected = row_bytes(dtype, n)?;
    if expected != buf_len {
        return Err(QuantError::BufferSize {
            dtype,
            buffer,
            n,
            expected,
            actual: buf_len,
        });
    }
    Ok(())
}

impl Kernels {
    /// The process-wide table, chosen on first use (see the module docs).
    pub fn get() -> &'static Kernels {
        static CHOSEN: OnceLock<&'static Kernels> = OnceLock::new();
        CHOSEN.get_or_init(choose)
    }

    /// The table of a specific ISA, or `None` if this CPU cannot run it (or kiln has no kernels
    /// for it on this architecture). For tests and benchmarks; ignores `KILN_ISA`.
    pub fn for_isa(isa: Isa) -> Option<&'static Kernels> {
        table_for(isa)
    }

    /// The ISA this table is written for.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Dots each of the rows in `w_rows` (`[rows][w.bytes_for(n)]`, type `w`) with one
    /// activation row `x_row` (`n` elements of [`vec_dot_type`]`(w)`): `out[r]` is exactly
    /// [`Kernels::vec_dot`] of row `r`, in one call (the kernel loop is entered once).
    pub fn dot_rows(
        &self,
        w: GgmlType,
        n: usize,
        w_rows: &[u8],
        x_row: &[u8],
        out: &mut [f32],
    ) -> Result<(), QuantError> {
        let (Some(f), Some(act)) = (self.dot_fn(w), try_vec_dot_type(w)) else {
            return Err(QuantError::Unsupported { dtype: w });
        };
        let wrb = row_bytes(w, n)?;
        let expected = wrb.checked_mul(out.len());
        if expected != Some(w_rows.len()) {
            return Err(QuantError::BufferSize {
                dtype: w,
                buffer: "w_rows",
                n: n.saturating_mul(out.len()),
                expected: expected.unwrap_or(usize::MAX),
                actual: w_rows.len(),
            });
        }
        check_len(act, n, x_row.len(), "x_row")?;
        if n == 0 || out.is_empty() {
            out.fill(0.0);
            return Ok(());
        }
        // SAFETY: a `Kernels` value exists only for an ISA this CPU supports (`table_for`).
        unsafe { f(w_rows, wrb, x_row, x_row.len(), out, 1) };
        Ok(())
    }

    /// The dot kernel for weights of type `w`.
    pub(crate) fn dot_fn(&self, w: GgmlType) -> Option<DotRowsFn> {
        use GgmlType::*;
        Some(match w {
            F32 => self.f32,
            F16 => self.f16,
            BF16 => self.bf16,
            Q4_0 => self.q4_0,
            Q4_1 => self.q4_1,
            Q5_0 => self.q5_0,
            Q5_1 => self.q5_1,
            Q8_0 => self.q8_0,
            Q2_K => self.q2_k,
            Q3_K => self.q3_k,
            Q4_K => self.q4_k,
            Q5_K => self.q5_k,
            Q6_K => self.q6_k,
            IQ4_NL => self.iq4_nl,
            IQ4_XS => self.iq4_xs,
            _ => return None,
        })
    }

    /// The converter from f32 to activation format `act`.
    pub(crate) fn converter(&self, act: GgmlType) -> Option<ConvertFn> {
        use GgmlType::*;
        Some(match act {
            F32 => copy_f32,
            F16 => self.to_f16,
            BF16 => self.to_bf16,
            Q8_0 => self.quantize_q8_0,
            Q8_1 => self.quantize_q8_1,
            Q8_K => self.quantize_q8_k,
            _ => return None,
        })
    }

    /// [`quantize_row_act`] with this table.
    pub fn quantize_row_act(
        &self,
        act: GgmlType,
        x: &[f32],
        out: &mut [u8],
    ) -> Result<(), QuantError> {
        let f = self
            .converter(act)
            .ok_or(QuantError::Unsupported { dtype: act })?;
        check_len(act, x.len(), out.len(), "out")?;
        // SAFETY: a `Kernels` value exists only for an ISA this CPU supports (`table_for`).
        unsafe { f(x, out) };
        Ok(())
    }

    /// [`vec_dot`] with this table.
    pub fn vec_dot(
        &self,
        w: GgmlType,
        n: usize,
        w_row: &[u8],
        x_row: &[u8],
    ) -> Result<f32, QuantError> {
        let (Some(f), Some(act)) = (self.dot_fn(w), try_vec_dot_type(w)) else {
            return Err(QuantError::Unsupported { dtype: w });
        };
        check_len(w, n, w_row.len(), "w_row")?;
        check_len(act, n, x_row.len(), "x_row")?;
        if n == 0 {
            return Ok(0.0);
        }
        let mut out = [0.0f32];
        // SAFETY: a `Kernels` value exists only for an ISA this CPU supports (`table_for`).
        unsafe { f(w_row, w_row.len(), x_row, x_row.len(), &mut out, 1) };
        Ok(out[0])
    }
}

/// The "conversion" of f32 activations for F32 weights: a little-endian copy.
fn copy_f32(x: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), 4 * x.len(), "f32 activation buffer size");
    for (v, o) in x.iter().zip(out.as_chunks_mut::<4>().0) {
        *o = v.to_le_bytes();
    }
}

/// `len / unit` when `len` is a whole number of `unit`s (`unit > 0`), without a division in
/// the common one-row case.
#[inline(always)]
fn whole(len: usize, unit: usize) -> Option<usize> {
    if len == unit {
        return Some(1);
    }
    let q = len / unit;
    (q * unit == len).then_some(q)
}

/// Validates the arguments of a [`DotRowsFn`] and returns `(blocks per row, weight rows,
/// activation rows)`.
///
/// Panics on a mismatch: callers inside the crate validate user input first, so a panic here
/// is a bug in kiln, never a reaction to a file's contents.
#[inline(always)]
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_rows(
    w: &[u8],
    w_row_bytes: usize,
    x: &[u8],
    x_row_bytes: usize,
    out: &[f32],
    out_stride: usize,
    w_block: usize,
    x_block: usize,
) -> (usize, usize, usize) {
    assert!(
        w_row_bytes > 0 && w_row_bytes.is_multiple_of(w_block),
        "weight row of {w_row_bytes} bytes is not whole {w_block}-byte blocks"
    );
    let nb = w_row_bytes / w_block;
    assert_eq!(x_row_bytes, nb * x_block, "activation row size");
    let (Some(rows), Some(n_x)) = (whole(w.len(), w_row_bytes), whole(x.len(), x_row_bytes)) else {
        panic!("weights or activations are not whole rows");
    };
    assert!(
        out_stride >= n_x,
        "output stride {out_stride} < {n_x} activation rows"
    );
    let needed = if rows == 0 {
        0
    } else {
        (rows - 1) * out_stride + n_x
    };
    assert!(out.len() >= needed, "output of {} < {needed}", out.len());
    (nb, rows, n_x)
}

/// Checks the arguments of a [`ConvertFn`]: whole `block`-element blocks of `block_bytes`
/// bytes each. Returns the number of blocks. Panics on a mismatch (see [`check_rows`]).
#[inline]
#[track_caller]
pub(crate) fn check_convert(x: &[f32], out: &[u8], block: usize, block_bytes: usize) -> usize {
    assert!(
        x.len().is_multiple_of(block),
        "{} values are not whole {block}-element blocks",
        x.len()
    );
    let nb = x.len() / block;
    assert_eq!(out.len(), nb * block_bytes, "converted activation size");
    nb
}

/// Generates [`DotRowsFn`]s that loop over rows × activation rows, calling a per-row kernel
/// `$dot(w_ptr, x_ptr, nb) -> f32`, or with `pair = $dot2` a two-row kernel
/// `$dot2([w_ptr; 2], x_ptr, nb) -> [f32; 2]` for pairs of rows (which must give each row the
/// same bits as `$dot`). With `features = "..."`, the loop is compiled with those
/// target features so the `#[inline(always)]` kernel is inlined with them.
// Unused on targets without SIMD tables (other architectures, big-endian AArch64).
#[allow(unused_macros)]
macro_rules! dot_rows_fns {
    (features = $feat:literal;
     $($name:ident: $dot:path, $wb:expr, $xb:expr $(, pair = $dot2:path)?;)*) => {$(
        /// Dot kernel over rows (see `DotRowsFn`).
        ///
        /// # Safety
        /// The CPU must support the target features this module is compiled for.
        pub(super) unsafe fn $name(
            w: &[u8],
            w_row_bytes: usize,
            x: &[u8],
            x_row_bytes: usize,
            out: &mut [f32],
            out_stride: usize,
        ) {
            /// The loop, with the kernel inlined under the target features.
            ///
            /// # Safety
            /// The features are available; `w` holds `rows` rows of `wrb` bytes, `x` `n_x`
            /// rows of `xrb` bytes, each `nb` blocks.
            #[target_feature(enable = $feat)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn run(
                w: &[u8],
                wrb: usize,
                x: &[u8],
                xrb: usize,
                out: &mut [f32],
                os: usize,
                (nb, rows, n_x): (usize, usize, usize),
            ) {
                #[allow(unused_mut)]
                let mut r0 = 0;
                $(
                    // Two rows at a time, sharing the activation-side work; each row's result
                    // is the same bits as from the one-row kernel.
                    while r0 + 2 <= rows {
                        for t in 0..n_x {
                            // SAFETY: rows `r0`, `r0 + 1` of `w` and row `t` of `x` are in
                            // bounds with `nb` blocks each (caller's contract); features on.
                            let [a, b] = unsafe {
                                $dot2(
                                    [w.as_ptr().add(r0 * wrb), w.as_ptr().add((r0 + 1) * wrb)],
                                    x.as_ptr().add(t * xrb),
                                    nb,
                                )
                            };
                            out[r0 * os + t] = a;
                            out[(r0 + 1) * os + t] = b;
                        }
                        r0 += 2;
                    }
                )?
                for r in r0..rows {
                    let o = &mut out[r * os..r * os + n_x];
                    for (t, o) in o.iter_mut().enumerate() {
                        // SAFETY: row `r` of `w` and row `t` of `x` are in bounds and hold
                        // `nb` blocks each (caller's contract, from `check_rows`); the
                        // features are enabled.
                        *o = unsafe { $dot(w.as_ptr().add(r * wrb), x.as_ptr().add(t * xrb), nb) };
                    }
                }
            }
            let dims = $crate::kernels::check_rows(w, w_row_bytes, x, x_row_bytes, out, out_stride, $wb, $xb);
            // SAFETY: lengths checked above; the caller guarantees the CPU features.
            unsafe { run(w, w_row_bytes, x, x_row_bytes, out, out_stride, dims) }
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use dot_rows_fns;

/// Scalar row drivers: the reference kernels looped over rows.
mod scalar_rows {
    use super::scalar;

    macro_rules! scalar_rows {
        ($($name:ident: $dot:path, $wb:expr, $xb:expr;)*) => {$(
            /// Reference dot kernel over rows (see `DotRowsFn`).
            pub(super) fn $name(w: &[u8], wrb: usize, x: &[u8], xrb: usize, out: &mut [f32], os: usize) {
                super::check_rows(w, wrb, x, xrb, out, os, $wb, $xb);
                for (wrow, o) in w.chunks_exact(wrb).zip(out.chunks_mut(os)) {
                    for (xrow, o) in x.chunks_exact(xrb).zip(o.iter_mut()) {
                        *o = $dot(wrow, xrow);
                    }
                }
            }
        )*};
    }

    scalar_rows! {
        f32: scalar::dot_f32, 4, 4;
        f16: scalar::dot_f16, 2, 2;
        bf16: scalar::dot_bf16, 2, 2;
        q4_0: scalar::dot_q4_0, 18, 34;
        q4_1: scalar::dot_q4_1, 20, 36;
        q5_0: scalar::dot_q5_0, 22, 34;
        q5_1: scalar::dot_q5_1, 24, 36;
        q8_0: scalar::dot_q8_0, 34, 34;
        q2_k: scalar::dot_q2_k, 84, 292;
        q3_k: scalar::dot_q3_k, 110, 292;
        q4_k: scalar::dot_q4_k, 144, 292;
        q5_k: scalar::dot_q5_k, 176, 292;
        q6_k: scalar::dot_q6_k, 210, 292;
        iq4_nl: scalar::dot_iq4_nl, 18, 34;
        iq4_xs: scalar::dot_iq4_xs, 136, 292;
    }
}

/// Scalar activation converters (the `quant` reference quantizers).
mod scalar_convert {
    use super::{check_convert, scalar};

    pub(super) fn q8_0(x: &[f32], out: &mut [u8]) {
        check_convert(x, out, 32, 34);
        scalar::quantize_q8_0(x, out);
    }
    pub(super) fn q8_1(x: &[f32], out: &mut [u8]) {
        check_convert(x, out, 32, 36);
        scalar::quantize_q8_1(x, out);
    }
    pub(super) fn q8_k(x: &[f32], out: &mut [u8]) {
        check_convert(x, out, 256, 292);
        scalar::quantize_q8_k(x, out);
    }
    pub(super) fn f16(x: &[f32], out: &mut [u8]) {
        check_convert(x, out, 1, 2);
        scalar::to_f16(x, out);
    }
    pub(super) fn bf16(x: &[f32], out: &mut [u8]) {
        check_convert(x, out, 1, 2);
        scalar::to_bf16(x, out);
    }
}
