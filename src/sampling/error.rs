//! [`SamplingError`]: invalid sampler options, invalid logits, or a chain that selected nothing.

use super::TokenId;

/// Invalid sampler options or logits.
///
/// Options are checked when a sampler (or a [`SamplingParams`](super::SamplingParams)) is built,
/// logits when they enter a [`SamplerChain`](super::SamplerChain): both before any sampling
/// work is done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SamplingError {
    /// The temperature is NaN, infinite or negative (0 is allowed and means greedy).
    #[error("temperature must be finite and >= 0, got {0}")]
    InvalidTemperature(f32),
    /// top-k of 0 would keep no candidate.
    #[error("top-k must be at least 1 (leave top-k out of the chain to turn it off), got 0")]
    InvalidTopK,
    /// top-p outside (0, 1].
    #[error("top-p must be in (0, 1], got {0}")]
    InvalidTopP(f32),
    /// min-p outside [0, 1].
    #[error("min-p must be in [0, 1], got {0}")]
    InvalidMinP(f32),
    /// typical-p outside [0, 1].
    #[error("typical-p must be in [0, 1], got {0}")]
    InvalidTypicalP(f32),
    /// A repetition, frequency or presence penalty that is not finite (or a repetition
    /// penalty <= 0, which would divide by zero or flip signs).
    #[error("{name} must be {rule}, got {value}")]
    InvalidPenalty {
        /// Which penalty: `"repeat penalty"`, `"frequency penalty"` or `"presence penalty"`.
        name: &'static str,
        /// What the value must be.
        rule: &'static str,
        /// The value given.
        value: f32,
    },
    /// A logit bias that is NaN or +infinity (-infinity is a legitimate mask), or biases for
    /// one token that add up to +infinity.
    #[error("logit bias for token {token} must be finite or -inf, got {bias}")]
    InvalidLogitBias {
        /// The token the bias is for.
        token: TokenId,
        /// The bias given (or the sum of the biases given for this token).
        bias: f32,
    },
    /// A mirostat parameter (tau or eta) that is not finite or is negative.
    #[error("mirostat {name} must be finite and >= 0, got {value}")]
    InvalidMirostat {
        /// `"tau"` or `"eta"`.
        name: &'static str,
        /// The value given.
        value: f32,
    },
    /// A logit is NaN or +infinity. `-inf` logits are allowed: they mark masked tokens.
    /// `stage` says where it was found: `"input"` for the logits handed to the chain, or the
    /// name of the sampler whose arithmetic overflowed (e.g. a temperature so small that
    /// `logit / t` overflows).
    #[error(
        "logit {value} for token {token} (candidate {index}) after {stage}: logits must be finite or -inf"
    )]
    NonFiniteLogit {
        /// Position in the candidate list.
        index: usize,
        /// The token at that position.
        token: TokenId,
        /// The offending value.
        value: f32,
        /// `"input"`, or the sampler that produced it.
        stage: &'static str,
    },
    /// The logits have more entries than token ids can number (more than 2^32).
    #[error("{0} logits: token ids are 32-bit, so at most 2^32 candidates are supported")]
    TooManyCandidates(usize),
    /// A sampler needed candidates but the list is empty.
    #[error("no candidates left to sample from")]
    NoCandidates,
    /// Every candidate left has a logit of -inf (all tokens masked), so there is no
    /// distribution to sample from.
    #[error("all {0} candidates are masked (logit -inf)")]
    AllMasked(usize),
    /// The chain ran to its end but no sampler selected a token: the last sampler of a chain
    /// must be a selecting one ([`Greedy`](super::Greedy), [`Dist`](super::Dist),
    /// [`MirostatV2`](super::MirostatV2)).
    #[error(
        "no token was selected: end the chain with a selecting sampler (greedy, dist or mirostat)"
    )]
    NoTokenSelected,
    /// A sampler tried to select a candidate index outside the list.
    #[error("selected candidate {index} but only {len} candidates are left")]
    SelectionOutOfRange {
        /// The index requested.
        index: usize,
        /// The list length.
        len: usize,
    },
    /// An error from a user-defined sampler.
    #[error("sampler {sampler}: {source}")]
    Custom {
        /// The sampler's name.
        sampler: String,
        /// What went wrong.
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}
