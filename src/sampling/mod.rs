//! Samplers: a [`Sampler`] trait over candidate lists, and llama.cpp's set of samplers.
//!
//! A [`SamplerChain`] turns one position's logits into a token: it fills a reused
//! [`Candidates`] list (one [`Candidate`] per vocabulary entry: id, logit, probability),
//! applies each sampler in order, and the last sampler selects a token. Samplers follow
//! llama.cpp's `src/llama-sampler.cpp` semantics; each type documents where kiln differs
//! (usually: a typed error where llama.cpp would produce NaN, or f64 sums).
//!
//! | sampler | llama.cpp | kind |
//! | --- | --- | --- |
//! | [`LogitBias`] | `logit-bias` | adds per-token biases (`-inf` masks) |
//! | [`Penalties`] | `penalties` | repetition / frequency / presence over the last N tokens |
//! | [`TopK`] | `top-k` | keeps the k largest |
//! | [`Typical`] | `typical` | locally typical |
//! | [`TopP`] | `top-p` | nucleus |
//! | [`MinP`] | `min-p` | relative probability floor |
//! | [`Temperature`] | `temp` | divides logits; 0 = greedy |
//! | [`Greedy`] | `greedy` | selects the argmax |
//! | [`Dist`] | `dist` | selects by a seeded random draw |
//! | [`MirostatV2`] | `mirostat-v2` | truncates by surprise and selects |
//!
//! [`SamplingParams::default`] is llama.cpp's common default (penalties off with
//! `last_n = 64`, top-k 40, typical off, top-p 0.95, min-p 0.05, temperature 0.8) and
//! [`SamplingParams::build`] chains them in llama.cpp's order:
//! `logit-bias -> penalties -> top-k -> typical -> top-p -> min-p -> temperature -> dist`.
//!
//! # Randomness
//! Every random draw uses [`Xoshiro256StarStar`] seeded through splitmix64 (see [`rng`]): a
//! seed gives the same stream on every platform. The probabilities it is compared with come
//! from `f32::exp`, so draws are reproducible on one platform and agree across platforms
//! except where a libm rounds an `exp` differently and a draw lands exactly on that edge.
//!
//! # Logits
//! NaN and `+inf` logits are errors ([`SamplingError::NonFiniteLogit`]), found before any
//! sampler runs. `-inf` is legitimate: it is how a token is masked (a `-inf` logit bias),
//! and such candidates get probability 0. A list where every candidate is masked is
//! [`SamplingError::AllMasked`] when a token has to be selected.
//!
//! # Writing a sampler
//! Implement [`Sampler::apply`] (modify, reorder or shorten the list; keep or clear the
//! `sorted`/`probs_valid` flags accordingly — [`Candidates::as_mut_slice`] clears them
//! for you) and, for a selecting sampler, call [`Candidates::select`]. Stateful samplers
//! implement [`Sampler::accept`] and [`Sampler::reset`].
//!
//! ```
//! use kiln::sampling::{Candidates, Sampler, SamplerChain, SamplingError, Greedy};
//!
//! /// Bans every token id above 100.
//! struct BanHigh;
//! impl Sampler for BanHigh {
//!     fn name(&self) -> &str { "ban-high" }
//!     fn apply(&mut self, c: &mut Candidates) -> Result<(), SamplingError> {
//!         c.retain(|x| x.id <= 100);
//!         Ok(())
//!     }
//! }
//!
//! let mut chain = SamplerChain::new().with(BanHigh).with(Greedy::new());
//! let mut logits = vec![0.0f32; 200];
//! logits[150] = 9.0;
//! logits[7] = 3.0;
//! assert_eq!(chain.sample(&logits)?, 7);
//! # Ok::<(), SamplingError>(())
//! ```

mod candidates;
mod chain;
mod error;
mod logit_bias;
mod min_p;
mod mirostat;
mod params;
mod penalties;
pub mod rng;
mod select;
mod temperature;
mod top_k;
mod top_p;
mod typical;

pub use candidates::{Candidate, Candidates, by_logit_desc};
pub use chain::SamplerChain;
pub use error::SamplingError;
pub use logit_bias::LogitBias;
pub use min_p::MinP;
pub use mirostat::MirostatV2;
pub use params::{MirostatParams, SamplingParams};
pub use penalties::Penalties;
pub use rng::Xoshiro256StarStar;
pub use select::{Dist, Greedy};
pub use temperature::Temperature;
pub use top_k::TopK;
pub use top_p::TopP;
pub use typical::Typical;

/// A token id (index into the vocabulary and into the logits).
pub type TokenId = u32;

/// One step of a sampling chain: filters, reweights, reorders or selects candidates.
///
/// Samplers may keep state: [`accept`](Self::accept) is called with every token that
/// becomes part of the sequence (penalties remember them) and [`reset`](Self::reset) starts
/// a new sequence.
pub trait Sampler: Send {
    /// A short name for messages (llama.cpp's names where there is one).
    fn name(&self) -> &str;

    /// Works on the candidate list. A selecting sampler ends with
    /// [`Candidates::select`].
    fn apply(&mut self, candidates: &mut Candidates) -> Result<(), SamplingError>;

    /// Records a token of the sequence. Default: nothing.
    fn accept(&mut self, _token: TokenId) {}

    /// Forgets the state, as for a new sequence. Default: nothing.
    fn reset(&mut self) {}
}

impl<S: Sampler + ?Sized> Sampler for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn apply(&mut self, candidates: &mut Candidates) -> Result<(), SamplingError> {
        (**self).apply(candidates)
    }
    fn accept(&mut self, token: TokenId) {
        (**self).accept(token)
    }
    fn reset(&mut self) {
        (**self).reset()
    }
}
