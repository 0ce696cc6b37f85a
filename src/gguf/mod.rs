//! GGUF: a hardened, zero-copy reader (from `&[u8]`) and a writer.

/// A malformed or unsupported GGUF file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {}
