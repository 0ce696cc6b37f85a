//! Generation pieces that do not need the model: [`GenerateOptions`] and the stop
//! conditions ([`stop`]).
//!
//! A generation loop plugs them together (the session API lives in `model`):
//!
//! ```text
//! let mut chain = opts.sampler_chain(eog_ids)?;     // SamplerChain, seeded
//! for &t in prompt { chain.accept(t) }              // penalties see the prompt, as in llama.cpp
//! let mut stop = opts.stop_checker(eog_ids)?;       // limit, EOG, stop strings, cancel
//! session.prefill(prompt)?;
//! let reason = loop {
//!     if let Some(r) = stop.before_step() { break r }
//!     let tok = chain.sample(session.next_logits()?)?;   // logits: [n_vocab]
//!     let piece = decoder.push(tok);                    // streaming detokenizer
//!     out.clear();
//!     let r = stop.on_token(tok, piece, &mut out);
//!     on_text(&out);                                    // never contains a stop string
//!     if let Some(r) = r { break r }
//!     session.feed(tok)?;                               // KV cache; ContextFull when full
//! };
//! out.clear(); stop.finish(&mut out); on_text(&out);
//! ```

mod options;
pub mod stop;

pub use options::{GenerateOptions, GenerateOptionsBuilder};
pub use stop::{CancelHandle, StopChecker, StopReason, StopStrings};

use crate::sampling::SamplingError;

/// Invalid generation options.
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
}
