//! kiln's error type.
//!
//! One top-level [`enum@Error`] that every public function returns. Each stage of the data path
//! has its own `#[non_exhaustive]` error enum (in its module) whose messages carry the offsets,
//! keys and tensor names needed to act on them; `Error` wraps them so callers can match on the
//! stage or just print the message.

use std::path::PathBuf;

pub use crate::chat::ChatError;
pub use crate::generate::GenerateError;
pub use crate::gguf::GgufError;
pub use crate::model::ModelError;
pub use crate::quant::QuantError;
pub use crate::sampling::SamplingError;
pub use crate::tokenizer::TokenizerError;

/// Everything that can go wrong in kiln.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A GGUF file is malformed or uses something kiln does not support.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// A block-format cast, quantization or kernel request failed.
    #[error(transparent)]
    Quant(#[from] QuantError),
    /// The tokenizer metadata is invalid, or encoding/decoding failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// A chat template could not be rendered.
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// A model could not be loaded or run.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Sampler options or logits are invalid.
    #[error(transparent)]
    Sampling(#[from] SamplingError),
    /// Generation options are invalid.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// Reading a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// `Result` with kiln's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
