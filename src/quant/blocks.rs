//! Block layouts, byte-identical to ggml's `ggml-common.h`.
//!
//! Every block is `#[repr(C)]` and [`bytemuck::Pod`], so a tensor's bytes are cast to a slice of
//! blocks without copying. `f16` fields are IEEE half floats ([`half::f16`]); all multi-byte
//! fields are little-endian (kiln, like ggml, runs on little-endian hosts only).
//! A compile-time assertion pins each block's size to ggml's.

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::dtype::QK_K;

/// Elements per block of the "legacy" 32-element formats.
pub const QK4_0: usize = 32;
/// Elements per Q4_1 block.
pub const QK4_1: usize = 32;
/// Elements per Q5_0 block.
pub const QK5_0: usize = 32;
/// Elements per Q5_1 block.
pub const QK5_1: usize = 32;
/// Elements per Q8_0 block.
pub const QK8_0: usize = 32;
/// Elements per Q8_1 block.
pub const QK8_1: usize = 32;
/// Elements per IQ4_NL block.
pub const QK4_NL: usize = 32;

/// Q4_0: 32 weights, `x = d * (q - 8)`, q in 0..16.
///
/// ```text
/// byte  0      2                                   18
///       | d f16 | qs[16]: low nibbles = x[0..16],   |
///       |       |         high nibbles = x[16..32]  |
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; QK4_0 / 2],
}
const _: () = assert!(size_of::<BlockQ4_0>() == 18);

/// Q4_1: 32 weights, `x = d * q + m`, q in 0..16.
///
/// ```text
/// byte  0      2      4                         20
///       | d f16 | m f16 | qs[16] (nibbles as Q4_0) |
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK4_1 / 2],
}
const _: () = assert!(size_of::<BlockQ4_1>() == 20);

/// Q5_0: 32 weights, `x = d * (q - 16)`, q in 0..32; the fifth bit of weight j is bit j of `qh`.
///
/// ```text
/// byte  0      2          6                         22
///       | d f16 | qh[4] u32 | qs[16] (low 4 bits)      |
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK5_0 / 2],
}
const _: () = assert!(size_of::<BlockQ5_0>() == 22);

/// Q5_1: 32 weights, `x = d * q + m`, q in 0..32.
///
/// ```text
/// byte  0      2      4          8                  24
///       | d f16 | m f16 | qh[4] u32 | qs[16]            |
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK5_1 / 2],
}
const _: () = assert!(size_of::<BlockQ5_1>() == 24);

/// Q8_0: 32 weights, `x = d * q`, q an i8.
///
/// ```text
/// byte  0      2                 34
///       | d f16 | qs[32] i8        |
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK8_0],
}
const _: () = assert!(size_of::<BlockQ8_0>() == 34);

/// Q8_1 (activations for Q4_1/Q5_1): as Q8_0 plus `s = d * sum(qs)`.
///
/// ```text
/// byte  0      2      4                 36
///       | d f16 | s f16 | qs[32] i8        |
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_1 {
    pub d: f16,
    pub s: f16,
    pub qs: [i8; QK8_1],
}
const _: () = assert!(size_of::<BlockQ8_1>() == 36);

/// Q2_K: 256 weights in 16 groups of 16; 4-bit scale and 4-bit min per group.
/// `x = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4)`, q in 0..4, g = i / 16.
///
/// ```text
/// byte  0            16               80      82         84
///       | scales[16] | qs[64] 2-bit q | d f16 | dmin f16 |
///
/// element i = 128h + 32s + l  (h in 0..2, s in 0..4, l in 0..32):
///   q = (qs[32h + l] >> 2s) & 3
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: f16,
    pub dmin: f16,
}
const _: () = assert!(size_of::<BlockQ2K>() == 84);

/// Q3_K: 256 weights in 16 groups of 16; 6-bit signed scales packed in 12 bytes.
/// `x = d * (scale[g] - 32) * (q - (hbit ? 0 : 4))`, q's low 2 bits in `qs`, high bit in `hmask`.
///
/// ```text
/// byte  0          32               96           108     110
///       | hmask[32] | qs[64] low bits | scales[12] | d f16 |
///
/// element i = 128h + 32s + l  (h in 0..2, s in 0..4, l in 0..32), group g = i / 16:
///   q     = (qs[32h + l] >> 2s) & 3
///   hbit  = (hmask[l] >> (4h + s)) & 1
///   scale[g] = low 4 bits: nibble g / 8 of scales[g % 8]
///              high 2 bits: bits 2(g / 4)..+2 of scales[8 + g % 4]
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ3K>() == 110);

/// Q4_K: 256 weights in 8 groups of 32; 6-bit scale and min per group, packed in 12 bytes.
/// `x = d * sc[g] * q - dmin * m[g]`, q in 0..16, g = i / 32.
///
/// ```text
/// byte  0      2         4            16                 144
///       | d f16 | dmin f16 | scales[12] | qs[128] nibbles |
///
/// element i = 64c + 32k + l  (c in 0..4, k in 0..2, l in 0..32):
///   q = nibble k of qs[32c + l]            (k = 0: low, 1: high)
/// group g < 4:  sc = scales[g] & 63,   m = scales[g + 4] & 63
/// group g >= 4: sc = (scales[g + 4] & 15) | (scales[g - 4] >> 6) << 4
///               m  = (scales[g + 4] >> 4) | (scales[g]     >> 6) << 4
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ4K>() == 144);

/// Q5_K: as Q4_K with a fifth bit per weight in `qh`: q in 0..32.
///
/// ```text
/// byte  0      2         4            16        48                 176
///       | d f16 | dmin f16 | scales[12] | qh[32] | qs[128] nibbles |
///
/// element i = 32g + l (group g, l in 0..32): low 4 bits as Q4_K, fifth bit = (qh[l] >> g) & 1
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ5K>() == 176);

/// Q6_K: 256 weights in 16 groups of 16; i8 scale per group. `x = d * scales[g] * (q - 32)`,
/// q's low 4 bits in `ql`, high 2 bits in `qh`, g = i / 16.
///
/// ```text
/// byte  0        128       192            208     210
///       | ql[128] | qh[64] | scales[16] i8 | d f16 |
///
/// element i = 128h + 32s + l  (h in 0..2, s in 0..4, l in 0..32):
///   low 4 bits  = nibble s / 2 of ql[64h + 32(s % 2) + l]
///   high 2 bits = (qh[32h + l] >> 2s) & 3
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ6K>() == 210);

/// Q8_K (activations for the K-quants and IQ4_XS): `x = d * q`, with the sum of each group
/// of 16 quants in `bsums`.
///
/// ```text
/// byte  0      4              260               292
///       | d f32 | qs[256] i8   | bsums[16] i16    |
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(size_of::<BlockQ8K>() == 292);

/// IQ4_NL: 32 weights, `x = d * KVALUES_IQ4NL[q]`, q in 0..16 (nibbles as Q4_0).
///
/// ```text
/// byte  0      2               18
///       | d f16 | qs[16]        |
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockIq4Nl {
    pub d: f16,
    pub qs: [u8; QK4_NL / 2],
}
const _: () = assert!(size_of::<BlockIq4Nl>() == 18);

/// IQ4_XS: 256 weights in 8 groups of 32, 6-bit scale per group (low 4 bits in `scales_l`,
/// high 2 bits in `scales_h`), `x = d * (scale - 32) * KVALUES_IQ4NL[q]`.
///
/// ```text
/// byte  0      2              4            8                 136
///       | d f16 | scales_h u16 | scales_l[4] | qs[128] nibbles |
///
/// group g: scale = nibble g % 2 of scales_l[g / 2] | ((scales_h >> 2g) & 3) << 4
///          element 32g + j (j < 16): low nibble of qs[16g + j]; 32g + 16 + j: high nibble
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockIq4Xs {
    pub d: f16,
    pub scales_h: u16,
    pub scales_l: [u8; QK_K / 64],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockIq4Xs>() == 136);

/// The non-linear 4-bit grid shared by IQ4_NL and IQ4_XS.
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];
