//! The tokenizer stored in a GGUF file: byte-level BPE and SentencePiece.

/// Invalid tokenizer metadata, or an encoding/decoding failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {}
