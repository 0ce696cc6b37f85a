//! F32, F16 and BF16: element-wise conversions, rounding exactly like ggml.
//!
//! ggml converts with portable bit manipulation (`ggml_compute_fp32_to_fp16`,
//! `ggml_compute_fp32_to_bf16` in `ggml-impl.h`); the functions here reproduce those results bit
//! for bit, including what happens to NaN:
//! - f32 -> f16: round to nearest, ties to even; overflow gives ±inf; every NaN becomes the quiet
//!   NaN `sign | 0x7E00` (its payload is dropped).
//! - f32 -> bf16: round to nearest, ties to even (subnormals kept); NaN keeps its top 16 bits
//!   with the quiet bit (`0x0040`) forced on.
//! - f16 -> f32 and bf16 -> f32 are exact (a NaN's payload is kept, with the quiet bit set for
//!   f16 as x86 and ggml's arithmetic path do).
//!
//! Element bytes are little-endian; the byte-slice helpers work at any alignment.

use half::f16;

/// Converts an `f32` to `f16` like ggml's `GGML_FP32_TO_FP16` (round to nearest even; NaN ->
/// `sign | 0x7E00`).
#[inline]
pub fn f32_to_f16(x: f32) -> f16 {
    if x.is_nan() {
        // ggml: `(sign >> 16) | 0x7E00` for every NaN (`half` would keep payload bits).
        let sign = ((x.to_bits() >> 16) & 0x8000) as u16;
        return f16::from_bits(sign | 0x7E00);
    }
    // For non-NaN input `half` rounds to nearest, ties to even, with correct subnormal and
    // overflow handling: the same result as ggml's bit-trick conversion.
    f16::from_f32(x)
}

/// Converts an `f16` to `f32` exactly (ggml's `GGML_FP16_TO_FP32`).
#[inline]
pub fn f16_to_f32(h: f16) -> f32 {
    h.to_f32()
}

/// Converts an `f32` to bf16 bits like ggml's `ggml_compute_fp32_to_bf16`.
#[inline]
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        // NaN: keep the top half and force the quiet bit.
        return ((u >> 16) | 64) as u16;
    }
    // Round to nearest, ties to even: add 0x7fff plus the lowest kept bit, then truncate.
    // (Cannot overflow u32: the largest non-NaN pattern is 0xff80_0000.)
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

/// Converts bf16 bits to `f32` exactly (ggml's `ggml_compute_bf16_to_fp32`).
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// Copies little-endian f32 bytes into `dst` (`src`: `[dst.len() * 4]` bytes, any alignment).
pub(crate) fn bytes_to_f32(src: &[u8], dst: &mut [f32]) {
    for (y, b) in dst.iter_mut().zip(src.as_chunks::<4>().0) {
        *y = f32::from_le_bytes(*b);
    }
}

/// Writes `src` as little-endian f32 bytes (`dst`: `[src.len() * 4]` bytes).
pub(crate) fn f32_to_bytes(src: &[f32], dst: &mut [u8]) {
    for (b, x) in dst.as_chunks_mut::<4>().0.iter_mut().zip(src) {
        *b = x.to_le_bytes();
    }
}

/// Converts little-endian f16 bytes to f32 (`src`: `[dst.len() * 2]` bytes).
pub(crate) fn f16_bytes_to_f32(src: &[u8], dst: &mut [f32]) {
    for (y, b) in dst.iter_mut().zip(src.as_chunks::<2>().0) {
        *y = f16_to_f32(f16::from_bits(u16::from_le_bytes(*b)));
    }
}

/// Converts `src` to little-endian f16 bytes (`dst`: `[src.len() * 2]` bytes).
pub(crate) fn f32_to_f16_bytes(src: &[f32], dst: &mut [u8]) {
    for (b, x) in dst.as_chunks_mut::<2>().0.iter_mut().zip(src) {
        *b = f32_to_f16(*x).to_bits().to_le_bytes();
    }
}

/// Converts little-endian bf16 bytes to f32 (`src`: `[dst.len() * 2]` bytes).
pub(crate) fn bf16_bytes_to_f32(src: &[u8], dst: &mut [f32]) {
    for (y, b) in dst.iter_mut().zip(src.as_chunks::<2>().0) {
        *y = bf16_to_f32(u16::from_le_bytes(*b));
    }
}

/// Converts `src` to little-endian bf16 bytes (`dst`: `[src.len() * 2]` bytes).
pub(crate) fn f32_to_bf16_bytes(src: &[f32], dst: &mut [u8]) {
    for (b, x) in dst.as_chunks_mut::<2>().0.iter_mut().zip(src) {
        *b = f32_to_bf16(*x).to_le_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rounding_and_nan() {
        // 1 + 2^-11 is halfway between 1 and the next f16: ties to even -> 1.
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)).to_bits(), 0x3c00);
        // 1 + 3 * 2^-11 is halfway between two f16s with odd/even mantissas: rounds up.
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)).to_bits(), 0x3c02);
        assert_eq!(f32_to_f16(65520.0).to_bits(), 0x7c00); // overflows to +inf
        assert_eq!(f32_to_f16(f32::from_bits(0xffc1_2345)).to_bits(), 0xfe00);
        assert_eq!(f32_to_f16(2f32.powi(-24)).to_bits(), 0x0001); // smallest subnormal
    }

    #[test]
    fn bf16_rounding_and_nan() {
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80); // tie, even stays
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82); // tie, odd rounds up
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(f32_to_bf16(f32::from_bits(0x7f80_0001)), 0x7fc0); // sNaN -> quiet
        assert_eq!(f32_to_bf16(f32::INFINITY), 0x7f80);
        assert_eq!(bf16_to_f32(0xbf80), -1.0);
    }
}
