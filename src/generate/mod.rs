//! Text generation: load a model, feed a prompt, stream the answer.
//!
//! - [`Model::generate`](crate::model::Model::generate): one prompt in, the text out.
//! - [`Generator`]: a session with the tokenizer and the token history; feed text or token
//!   ids, then pull [`Token`]s one at a time ([`Generator::stream`], an iterator) or through a
//!   callback ([`Generator::generate`]). Each token carries its id and the text it made
//!   visible: whole UTF-8 characters only, never part of a stop string.
//! - [`Chat`]: messages in, the chat template applied, the answer streamed out; each turn
//!   evaluates only the tokens the KV cache does not hold yet.
//! - [`GenerateOptions`]: token limit, sampling, stop strings, seed, cancellation;
//!   [`LoadOptions`]: threads, context size, KV cache type.
//!
//! Generation stops at the model's end-of-generation tokens (EOS, EOT and the rest of
//! llama.cpp's EOG set, e.g. `<|im_end|>`, `<end_of_turn>`), a stop string, the token limit,
//! a [`CancelHandle`] triggered from another thread, or a full context
//! ([`StopReason::ContextFull`]: not an error, the last token that fits is delivered).
//! Prompts are checked before any work: empty, longer than the context, or holding token ids
//! outside the vocabulary are [`GenerateError`]s.
//!
//! Determinism: the same model, prompt, options, seed and thread count give the same text;
//! greedy decoding (temperature 0) gives the same text for any seed and thread count (the
//! forward pass is bit-identical for any thread count).
//!
//! The loop [`Stream`] runs, built from the pieces of this module:
//!
//! ```text
//! let mut chain = opts.sampler_chain(eog_ids)?;     // SamplerChain, seeded
//! for &t in history { chain.accept(t) }             // penalties see the prompt, as in llama.cpp
//! let mut stop = opts.stop_checker(eog_ids)?;       // limit, EOG, stop strings, cancel
//! loop {
//!     if let Some(r) = stop.before_step() { break r }
//!     let tok = chain.sample(next_logits()?)?;          // evaluates the pending tokens
//!     let piece = utf8.push(tokenizer.piece(tok));      // whole characters only
//!     let r = stop.on_token(tok, piece, &mut out);      // out never holds a stop string
//!     yield Token { id: tok, text: out };
//!     if let Some(r) = r { break r }
//!     history.push(tok);                                // ContextFull when it would not fit
//! }
//! ```

mod chat;
mod generator;
mod load;
mod options;
pub mod stop;

#[doc(hidden)]
pub mod testing;

pub use chat::{Chat, ChatStream};
pub use generator::{GenerationStats, Generator, Stream, Token};
pub use load::LoadOptions;
pub use options::{GenerateOptions, GenerateOptionsBuilder};
pub use stop::{CancelHandle, StopChecker, StopReason, StopStrings};

use crate::sampling::SamplingError;

/// Invalid generation options or prompt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// A sampling parameter is invalid.
    #[error(transparent)]
    Sampling(#[from] SamplingError),
    /// A stop string is empty (it would stop generation before the first token).
    #[error("stop string {index} is empty")]
    EmptyStopString {
        /// Its position in the list of stop strings.
        index: usize,
    },
    /// A token limit of 0 (leave the limit unset for "no limit").
    #[error("max_tokens must be at least 1")]
    ZeroMaxTokens,
    /// The prompt (or chat message) is empty.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// The prompt does not fit the context.
    #[error("the prompt needs {tokens} positions but the context holds {n_ctx}")]
    PromptTooLong {
        /// Positions needed (tokens already in the context plus the new ones).
        tokens: usize,
        /// The context size.
        n_ctx: usize,
    },
    /// A token id is outside the vocabulary.
    #[error("token id {token} is outside the vocabulary of {n_vocab} tokens")]
    InvalidToken {
        /// The id.
        token: u32,
        /// Vocabulary size.
        n_vocab: usize,
    },
    /// The model file has no tokenizer (`tokenizer.ggml.*` metadata).
    #[error("the model file has no tokenizer (tokenizer.ggml.model is missing)")]
    NoTokenizer,
}
