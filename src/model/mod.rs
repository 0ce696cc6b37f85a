//! Models: configuration from metadata, weights by GGUF tensor name, one file per architecture.
//!
//! A [`Model`] is immutable once loaded (`Send + Sync`, shared with `Arc`): it owns the
//! [`GgufFile`] (usually a memory map) and records where each weight's bytes are, copying
//! nothing large. A [`Session`] runs it: it owns the KV cache, scratch buffers and a thread
//! pool, so several sessions can use one model from different threads.
//!
//! Adding an architecture means one new file: its hyperparameter quirks, the tensors it binds
//! (through `weights::Binder`) and its layer function (an `Architecture` implementation
//! built from the shared steps in [`session`]: matmul, norms, RoPE, attention).

use std::fmt;
use std::path::Path;

use crate::GgmlType;
use crate::gguf::{GgufError, GgufFile, OpenOptions};

pub mod config;
mod cpuload;
mod gemma3;
mod llama;
pub mod perplexity;
pub mod session;
pub mod weights;

pub use config::{Arch, Config};
pub use perplexity::{Perplexity, perplexity};
pub use session::{Session, SessionOptions};
pub use weights::MatWeight;

use config::Meta;
use session::Forward;
use weights::Binder;

/// A model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// `general.architecture` names an architecture kiln does not implement.
    #[error("unsupported architecture {0:?} (kiln runs: llama, gemma3)")]
    UnsupportedArchitecture(String),
    /// A required metadata key is absent.
    #[error("metadata key {0} is missing")]
    MissingMetadata(String),
    /// A metadata key has the wrong type.
    #[error("metadata key {key}: {source}")]
    Metadata {
        /// The key.
        key: String,
        /// What the GGUF reader said.
        #[source]
        source: GgufError,
    },
    /// The hyperparameters are inconsistent or out of range.
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    /// The model uses a feature kiln does not implement.
    #[error("unsupported model feature: {0}")]
    Unsupported(String),
    /// A tensor the architecture needs is absent.
    #[error("tensor {0} is missing")]
    MissingTensor(String),
    /// A tensor has the wrong shape.
    #[error("tensor {name}: expected {expected}, found {actual}")]
    TensorShape {
        /// The tensor name.
        name: String,
        /// The shape kiln expects.
        expected: String,
        /// The shape in the file.
        actual: String,
    },
    /// A tensor has an element type kiln cannot compute with in that role.
    #[error("tensor {name}: element type {dtype} is not supported here")]
    TensorType {
        /// The tensor name.
        name: String,
        /// Its element type.
        dtype: GgmlType,
    },
    /// A tensor's contents are unusable.
    #[error("tensor {name}: {reason}")]
    InvalidTensor {
        /// The tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The requested KV cache element type is not one of f32, f16, q8_0, q4_0.
    #[error("KV cache type {0} is not supported (use f32, f16, q8_0 or q4_0)")]
    UnsupportedKvType(GgmlType),
    /// A head size is not a whole number of the KV cache type's blocks.
    #[error("head size {head_dim} is not a multiple of the {dtype} block size")]
    KvHeadSize {
        /// The KV cache type.
        dtype: GgmlType,
        /// The head size.
        head_dim: usize,
    },
    /// A requested context is larger than the model's training context.
    #[error("context of {requested} tokens exceeds the model's training context of {limit}")]
    ContextTooLarge {
        /// The requested context.
        requested: usize,
        /// The model's training context.
        limit: usize,
    },
    /// The session's context is full.
    #[error("context full: {needed} positions needed, the session holds {n_ctx}")]
    ContextFull {
        /// Positions the call needs in total.
        needed: usize,
        /// The session's context.
        n_ctx: usize,
    },
    /// A token id is outside the vocabulary.
    #[error("token id {token} is outside the vocabulary of {n_vocab}")]
    InvalidToken {
        /// The token id.
        token: u32,
        /// Vocabulary size.
        n_vocab: usize,
    },
    /// A session option is invalid.
    #[error("invalid session option: {0}")]
    InvalidOption(String),
    /// A buffer could not be allocated.
    #[error("out of memory allocating {what} ({bytes} bytes)")]
    OutOfMemory {
        /// What was being allocated.
        what: &'static str,
        /// Its size (`usize::MAX` when the size itself overflows).
        bytes: usize,
    },
    /// The thread pool could not be created.
    #[error("cannot create the thread pool: {0}")]
    ThreadPool(String),
}

/// The per-architecture part of the forward pass.
pub(crate) trait Architecture: Send + Sync + fmt::Debug {
    /// Multiplier of the token embeddings (gemma: `sqrt(n_embd)`).
    fn embedding_scale(&self) -> Option<f32> {
        None
    }

    /// Soft-capping of the final logits, `cap * tanh(logit / cap)`, when set.
    fn final_logit_softcap(&self) -> Option<f32> {
        None
    }

    /// Runs block `il` on the batch in `fw` (the residual stream is `fw.s.x`).
    fn forward_layer(&self, fw: &mut Forward<'_>, il: usize) -> crate::Result<()>;
}

/// A loaded model: configuration, weights (as ranges of the owned file) and forward pass.
pub struct Model {
    file: GgufFile,
    config: Config,
    token_embd: MatWeight,
    output_norm: Vec<f32>,
    output: MatWeight,
    tied_output: bool,
    arch: Box<dyn Architecture>,
    /// The file's tokenizer (`None` when it has no `tokenizer.ggml.model`).
    tokenizer: Option<crate::tokenizer::Tokenizer>,
    /// Options of the sessions the generation API creates (threads, context, KV type).
    session_options: SessionOptions,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .field("tied_output", &self.tied_output)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Opens (memory-maps) and loads a GGUF model.
    pub fn load(path: impl AsRef<Path>) -> crate::Result<Model> {
        let file = GgufFile::open(path.as_ref(), OpenOptions { mmap: true })?;
        Model::from_file(file)
    }

    /// Loads a model from an opened file: reads the configuration and binds every weight,
    /// checking presence, shape and type.
    pub fn from_file(file: GgufFile) -> crate::Result<Model> {
        let (config, token_embd, output_norm, output, tied_output, arch, tokenizer) = {
            let g = file.parse()?;
            let name = g.get_str("general.architecture")?;
            let arch_id = Arch::from_name(name)
                .ok_or_else(|| ModelError::UnsupportedArchitecture(name.to_string()))?;
            let b = Binder::new(&g, file.bytes());
            let meta = Meta::new(&g, arch_id);

            // token_embd fixes n_embd x n_vocab; everything else is checked against the config.
            let embd_dims = b
                .dims("token_embd.weight")
                .ok_or_else(|| ModelError::MissingTensor("token_embd.weight".into()))?;
            let n_vocab = match embd_dims.as_slice() {
                [_, v, rest @ ..] if rest.iter().all(|d| *d == 1) => {
                    usize::try_from(*v).unwrap_or(usize::MAX)
                }
                _ => {
                    return Err(ModelError::TensorShape {
                        name: "token_embd.weight".into(),
                        expected: "[n_embd, n_vocab]".into(),
                        actual: format!("{embd_dims:?}"),
                    }
                    .into());
                }
            };
            let mut config = Config::from_metadata(&meta, arch_id, n_vocab)?;
            let arch: Box<dyn Architecture> = match arch_id {
                Arch::Llama => Box::new(llama::Llama::load(&meta, &mut config, &b)?),
                Arch::Gemma3 => Box::new(gemma3::Gemma3::load(&meta, &mut config, &b)?),
            };
            config.validate()?;
            let token_embd = b.matrix("token_embd.weight", config.n_vocab, config.n_embd)?;
            let output_norm = b.vector("output_norm.weight", config.n_embd)?;
            let (output, tied) =
                match b.matrix_opt("output.weight", config.n_vocab, config.n_embd)? {
                    Some(w) => (w, false),
                    None => (token_embd.clone(), true),
                };
            let tokenizer = match g.get("tokenizer.ggml.model") {
                Some(_) => Some(crate::tokenizer::Tokenizer::from_gguf(&g)?),
                None => None,
            };
            (
                config,
                token_embd,
                output_norm,
                output,
                tied,
                arch,
                tokenizer,
            )
        };
        Ok(Model {
            file,
            config,
            token_embd,
            output_norm,
            output,
            tied_output,
            arch,
            tokenizer,
            session_options: SessionOptions::default(),
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The model file (for the tokenizer and metadata: `model.file().parse()`).
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// Whether the output projection reuses the token embeddings.
    pub fn tied_output(&self) -> bool {
        self.tied_output
    }

    /// The tokenizer of the model file, if it has one.
    pub fn tokenizer(&self) -> Option<&crate::tokenizer::Tokenizer> {
        self.tokenizer.as_ref()
    }

    /// Options of the sessions the generation API creates ([`crate::generate`]).
    pub fn session_options(&self) -> &SessionOptions {
        &self.session_options
    }

    /// Sets the options of the sessions the generation API creates.
    pub fn set_session_options(&mut self, opts: SessionOptions) {
        self.session_options = opts;
    }

    /// The file's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.file.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Model>();
    }
}
