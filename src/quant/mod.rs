//! Block formats: layouts, scalar dequantizers and reference quantizers (byte-identical to ggml).

pub mod blocks;

/// A block-format cast, quantization or kernel request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {}
