//! Block formats: layouts, scalar dequantizers and reference quantizers (byte-identical to ggml).
//!
//! The scalar code in this module is the *definition* of every format's arithmetic in kiln:
//! SIMD kernels elsewhere must produce the same bits. Each quantizer is a faithful port of
//! llama.cpp's `quantize_row_<type>_ref` (for IQ4_NL / IQ4_XS: `quantize_iq4_nl` /
//! `quantize_iq4_xs` without an importance matrix), including the order of floating-point
//! operations, so that quantizing the same `f32` row gives the same bytes as llama.cpp.
//! Each dequantizer is a port of ggml's `dequantize_row_<type>` (`to_float`).
//!
//! Entry points:
//! - [`dequantize_row`] / [`quantize_row_ref`]: any supported [`GgmlType`], on raw bytes, with
//!   every length validated (a typed [`QuantError`], never a panic).
//! - Typed row functions on block slices (e.g. [`quantize_row_q8_0_ref`],
//!   [`dequantize_row_q4_k`]) for code that already holds blocks (the kernels' scalar twins).
//! - [`cast_blocks`]: view raw bytes as a slice of blocks without copying.
//!
//! Files: [`float`] (F32, F16, BF16), [`legacy`] (Q4_0 .. Q8_1), [`k_quants`] (Q2_K .. Q8_K),
//! [`iq4`] (IQ4_NL, IQ4_XS), [`blocks`] (the layouts).

pub mod blocks;
pub mod float;
pub mod iq4;
pub mod k_quants;
pub mod legacy;

use bytemuck::Pod;

use crate::dtype::GgmlType;

pub use float::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
pub use iq4::{
    dequantize_row_iq4_nl, dequantize_row_iq4_xs, quantize_row_iq4_nl_ref, quantize_row_iq4_xs_ref,
};
pub use k_quants::{
    dequantize_row_q2_k, dequantize_row_q3_k, dequantize_row_q4_k, dequantize_row_q5_k,
    dequantize_row_q6_k, dequantize_row_q8_k, get_scale_min_k4, quantize_row_q2_k_ref,
    quantize_row_q3_k_ref, quantize_row_q4_k_ref, quantize_row_q5_k_ref, quantize_row_q6_k_ref,
    quantize_row_q8_k_ref, unpack_q3_k_scales,
};
pub use legacy::{
    dequantize_row_q4_0, dequantize_row_q4_1, dequantize_row_q5_0, dequantize_row_q5_1,
    dequantize_row_q8_0, dequantize_row_q8_1, quantize_row_q4_0_ref, quantize_row_q4_1_ref,
    quantize_row_q5_0_ref, quantize_row_q5_1_ref, quantize_row_q8_0_ref, quantize_row_q8_1_ref,
};

/// A block-format cast, quantization or kernel request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {
    /// A byte buffer is not a whole number of blocks.
    #[error("{len} bytes is not a whole number of {block} blocks ({block_bytes} bytes each)")]
    CastLength {
        /// The block type's Rust name.
        block: &'static str,
        /// Length of the buffer in bytes.
        len: usize,
        /// Size of one block in bytes.
        block_bytes: usize,
    },
    /// A byte buffer does not start at an address aligned for the block type.
    #[error("buffer at address {addr:#x} is not aligned to {align} bytes as {block} blocks need")]
    CastAlignment {
        /// The block type's Rust name.
        block: &'static str,
        /// Address of the buffer's first byte.
        addr: usize,
        /// Alignment the block type needs.
        align: usize,
    },
    /// A row's element count is not a multiple of the type's block size.
    #[error("{dtype}: a row of {n} elements is not a whole number of {block_size}-element blocks")]
    RowLength {
        /// The element type.
        dtype: GgmlType,
        /// Elements in the row.
        n: usize,
        /// Elements per block of `dtype`.
        block_size: usize,
    },
    /// A byte buffer's size does not match the row's element count.
    #[error("{dtype}: {buffer} has {actual} bytes, but a row of {n} elements needs {expected}")]
    BufferSize {
        /// The element type.
        dtype: GgmlType,
        /// Which buffer: `"src"` or `"dst"`.
        buffer: &'static str,
        /// Elements in the row.
        n: usize,
        /// Size the buffer must have, in bytes.
        expected: usize,
        /// Size it has, in bytes.
        actual: usize,
    },
    /// kiln cannot quantize, dequantize or compute with this type.
    #[error("{dtype}: kiln cannot compute with this type")]
    Unsupported {
        /// The element type.
        dtype: GgmlType,
    },
}

/// Short Rust name of a type, for error messages (`BlockQ4_0` rather than the full path).
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Views `bytes` as a slice of blocks `T` without copying.
///
/// Fails with [`QuantError::CastLength`] if `bytes.len()` is not a multiple of `size_of::<T>()`,
/// and with [`QuantError::CastAlignment`] if `bytes` is not aligned for `T` (GGUF tensor data is
/// aligned to at least 32 bytes in well-formed files, but a hostile file may say otherwise;
/// [`dequantize_row`] copes with any alignment).
pub fn cast_blocks<T: Pod>(bytes: &[u8]) -> Result<&[T], QuantError> {
    if bytes.is_empty() {
        // An empty slice may carry any (dangling) address; it is a valid empty block slice.
        return Ok(&[]);
    }
    bytemuck::try_cast_slice(bytes)
        .map_err(|e| cast_error::<T>(e, bytes.as_ptr() as usize, bytes.len()))
}

/// Mutable twin of [`cast_blocks`].
pub fn cast_blocks_mut<T: Pod>(bytes: &mut [u8]) -> Result<&mut [T], QuantError> {
    if bytes.is_empty() {
        return Ok(&mut []);
    }
    let (addr, len) = (bytes.as_ptr() as usize, bytes.len());
    bytemuck::try_cast_slice_mut(bytes).map_err(|e| cast_error::<T>(e, addr, len))
}

fn cast_error<T>(e: bytemuck::PodCastError, addr: usize, len: usize) -> QuantError {
    match e {
        bytemuck::PodCastError::TargetAlignmentGreaterAndInputNotAligned => {
            QuantError::CastAlignment {
                block: short_type_name::<T>(),
                addr,
                align: align_of::<T>(),
            }
        }
        // `OutputSliceWouldHaveSlop`, or a zero-sized `T` (no block type is zero-sized).
        _ => QuantError::CastLength {
            block: short_type_name::<T>(),
            len,
            block_bytes: size_of::<T>(),
        },
    }
}

/// Whether [`dequantize_row`] and [`quantize_row_ref`] handle `dtype`.
pub fn is_supported(dtype: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        dtype,
        F32 | F16
            | BF16
            | Q4_0
            | Q4_1
            | Q5_0
            | Q5_1
            | Q8_0
            | Q8_1
            | Q2_K
            | Q3_K
            | Q4_K
            | Q5_K
            | Q6_K
            | Q8_K
            | IQ4_NL
            | IQ4_XS
    )
}

/// Checks that `n` elements of `dtype` occupy exactly `bytes_len` bytes (`buffer` names the
/// byte buffer in the error).
fn check_row(
    dtype: GgmlType,
    n: usize,
    bytes_len: usize,
    buffer: &'static str,
) -> Result<(), QuantError> {
    if !is_supported(dtype) {
        return Err(QuantError::Unsupported { dtype });
    }
    let block_size = dtype.block_size();
    if !n.is_multiple_of(block_size) {
        return Err(QuantError::RowLength {
            dtype,
            n,
            block_size,
        });
    }
    // `n` comes from the caller: size the row with a checked multiply.
    let expected = (n / block_size).checked_mul(dtype.type_size());
    if expected != Some(bytes_len) {
        return Err(QuantError::BufferSize {
            dtype,
            buffer,
            n,
            expected: expected.unwrap_or(usize::MAX),
            actual: bytes_len,
        });
    }
    Ok(())
}

/// Dequantizes one row: `src` holds `dst.len()` elements of type `dtype` (ggml's `to_float`).
///
/// `dst.len()` must be a multiple of `dtype`'s block size and `src` exactly
/// `dtype.bytes_for(dst.len())` bytes long. `src` may have any alignment.
pub fn dequantize_row(dtype: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    check_row(dtype, dst.len(), src.len(), "src")?;
    use GgmlType::*;
    match dtype {
        F32 => float::bytes_to_f32(src, dst),
        F16 => float::f16_bytes_to_f32(src, dst),
        BF16 => float::bf16_bytes_to_f32(src, dst),
        Q4_0 => dequantize_bytes(src, dst, legacy::dequantize_block_q4_0),
        Q4_1 => dequantize_bytes(src, dst, legacy::dequantize_block_q4_1),
        Q5_0 => dequantize_bytes(src, dst, legacy::dequantize_block_q5_0),
        Q5_1 => dequantize_bytes(src, dst, legacy::dequantize_block_q5_1),
        Q8_0 => dequantize_bytes(src, dst, legacy::dequantize_block_q8_0),
        Q8_1 => dequantize_bytes(src, dst, legacy::dequantize_block_q8_1),
        Q2_K => dequantize_bytes(src, dst, k_quants::dequantize_block_q2_k),
        Q3_K => dequantize_bytes(src, dst, k_quants::dequantize_block_q3_k),
        Q4_K => dequantize_bytes(src, dst, k_quants::dequantize_block_q4_k),
        Q5_K => dequantize_bytes(src, dst, k_quants::dequantize_block_q5_k),
        Q6_K => dequantize_bytes(src, dst, k_quants::dequantize_block_q6_k),
        Q8_K => dequantize_bytes(src, dst, k_quants::dequantize_block_q8_k),
        IQ4_NL => dequantize_bytes(src, dst, iq4::dequantize_block_iq4_nl),
        IQ4_XS => dequantize_bytes(src, dst, iq4::dequantize_block_iq4_xs),
        _ => return Err(QuantError::Unsupported { dtype }),
    }
    Ok(())
}

/// Quantizes one row of `src.len()` values to `dtype` into `dst`, producing the same bytes as
/// llama.cpp's reference quantizer (`quantize_row_<type>_ref`, no importance matrix).
///
/// `src.len()` must be a multiple of `dtype`'s block size and `dst` exactly
/// `dtype.bytes_for(src.len())` bytes long. `dst` may have any alignment.
pub fn quantize_row_ref(dtype: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    check_row(dtype, src.len(), dst.len(), "dst")?;
    use GgmlType::*;
    match dtype {
        F32 => float::f32_to_bytes(src, dst),
        F16 => float::f32_to_f16_bytes(src, dst),
        BF16 => float::f32_to_bf16_bytes(src, dst),
        Q4_0 => quantize_bytes(src, dst, legacy::quantize_block_q4_0_ref),
        Q4_1 => quantize_bytes(src, dst, legacy::quantize_block_q4_1_ref),
        Q5_0 => quantize_bytes(src, dst, legacy::quantize_block_q5_0_ref),
        Q5_1 => quantize_bytes(src, dst, legacy::quantize_block_q5_1_ref),
        Q8_0 => quantize_bytes(src, dst, legacy::quantize_block_q8_0_ref),
        Q8_1 => quantize_bytes(src, dst, legacy::quantize_block_q8_1_ref),
        Q2_K => quantize_bytes(src, dst, k_quants::quantize_block_q2_k_ref),
        Q3_K => quantize_bytes(src, dst, k_quants::quantize_block_q3_k_ref),
        Q4_K => quantize_bytes(src, dst, k_quants::quantize_block_q4_k_ref),
        Q5_K => quantize_bytes(src, dst, k_quants::quantize_block_q5_k_ref),
        Q6_K => quantize_bytes(src, dst, k_quants::quantize_block_q6_k_ref),
        Q8_K => quantize_bytes(src, dst, k_quants::quantize_block_q8_k_ref),
        IQ4_NL => quantize_bytes(src, dst, iq4::quantize_block_iq4_nl_ref),
        IQ4_XS => quantize_bytes(src, dst, iq4::quantize_block_iq4_xs_ref),
        _ => return Err(QuantError::Unsupported { dtype }),
    }
    Ok(())
}

/// Runs a per-block dequantizer over raw bytes (lengths already validated by the caller).
/// Casts without copying when `src` is aligned; otherwise copies each block out first.
fn dequantize_bytes<B: Pod, const N: usize>(
    src: &[u8],
    dst: &mut [f32],
    block_fn: fn(&B, &mut [f32; N]),
) {
    let (out, _) = dst.as_chunks_mut::<N>();
    match cast_blocks::<B>(src) {
        Ok(blocks) => blocks.iter().zip(out).for_each(|(b, y)| block_fn(b, y)),
        Err(_) => src
            .chunks_exact(size_of::<B>())
            .zip(out)
            .for_each(|(bytes, y)| block_fn(&bytemuck::pod_read_unaligned(bytes), y)),
    }
}

/// Runs a per-block quantizer writing raw bytes (lengths already validated by the caller).
/// Casts without copying when `dst` is aligned; otherwise writes each block's bytes.
fn quantize_bytes<B: Pod, const N: usize>(
    src: &[f32],
    dst: &mut [u8],
    block_fn: fn(&[f32; N]) -> B,
) {
    let (x, _) = src.as_chunks::<N>();
    match cast_blocks_mut::<B>(dst) {
        Ok(blocks) => blocks.iter_mut().zip(x).for_each(|(b, x)| *b = block_fn(x)),
        Err(_) => dst
            .chunks_exact_mut(size_of::<B>())
            .zip(x)
            .for_each(|(bytes, x)| bytes.copy_from_slice(bytemuck::bytes_of(&block_fn(x)))),
    }
}

/// Applies a per-block quantizer to a row: `x` is `[y.len() * N]` values, `y` the blocks.
///
/// # Panics
/// If `x.len() != y.len() * N` (a programming error: the typed functions take lengths the
/// caller computed, unlike [`quantize_row_ref`], which validates them).
fn quantize_blocks<B, const N: usize>(x: &[f32], y: &mut [B], block_fn: fn(&[f32; N]) -> B) {
    assert_eq!(
        x.len(),
        y.len() * N,
        "{}: {} values do not fill {} blocks of {N}",
        short_type_name::<B>(),
        x.len(),
        y.len()
    );
    let (x, _) = x.as_chunks::<N>();
    y.iter_mut().zip(x).for_each(|(b, x)| *b = block_fn(x));
}

/// Applies a per-block dequantizer to a row: `x` holds the blocks, `y` is `[x.len() * N]`.
///
/// # Panics
/// If `y.len() != x.len() * N` (see [`quantize_blocks`]).
fn dequantize_blocks<B, const N: usize>(x: &[B], y: &mut [f32], block_fn: fn(&B, &mut [f32; N])) {
    assert_eq!(
        y.len(),
        x.len() * N,
        "{}: {} blocks of {N} do not fill {} values",
        short_type_name::<B>(),
        x.len(),
        y.len()
    );
    let (y, _) = y.as_chunks_mut::<N>();
    x.iter().zip(y).for_each(|(b, y)| block_fn(b, y));
}

/// ggml's `nearest_int`: round to the nearest integer, ties to even, by adding 1.5 * 2^23 and
/// reading the low mantissa bits. Exact for `|fval| <= 4194303` (ggml asserts this in debug
/// builds); larger, infinite or NaN inputs give the same garbage as ggml, never a panic.
///
/// The K-quant and IQ4 quantizers round with this (the legacy formats use `roundf`, half away
/// from zero, instead); SIMD twins must reproduce it (`_mm256_round_ps` with
/// round-to-nearest-even agrees within the exact range).
#[inline]
pub fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    (val.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_ties_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-3.7), -4);
        assert_eq!(nearest_int(127.49), 127);
    }
}
