//! [`SamplerChain`]: samplers applied in order, ending with a selecting one.

use std::fmt;

use super::{Candidates, Sampler, SamplingError, TokenId};

/// Samplers applied in order to a reused candidate list; the last one must select a token.
///
/// [`sample`](Self::sample) fills the list from the logits (validating them first), applies
/// every sampler, reads the selected token and feeds it back to every sampler with
/// [`Sampler::accept`] (llama.cpp's `llama_sampler_sample`). The list's buffer is kept
/// between calls, so once it has reached the vocabulary size sampling allocates nothing.
///
/// A chain is itself a [`Sampler`], so chains nest.
#[derive(Default)]
pub struct SamplerChain {
    samplers: Vec<Box<dyn Sampler>>,
    /// `[n_vocab]` the candidate list, reused for every token.
    candidates: Candidates,
}

impl fmt::Debug for SamplerChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamplerChain")
            .field("samplers", &self.names().collect::<Vec<_>>())
            .field("candidates", &self.candidates.len())
            .finish()
    }
}

impl SamplerChain {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a sampler (builder style).
    pub fn with(mut self, sampler: impl Sampler + 'static) -> Self {
        self.push(sampler);
        self
    }

    /// Appends a sampler.
    pub fn push(&mut self, sampler: impl Sampler + 'static) {
        self.samplers.push(Box::new(sampler));
    }

    /// Appends a boxed sampler.
    pub fn push_boxed(&mut self, sampler: Box<dyn Sampler>) {
        self.samplers.push(sampler);
    }

    /// Number of samplers.
    pub fn len(&self) -> usize {
        self.samplers.len()
    }

    /// True when the chain has no sampler.
    pub fn is_empty(&self) -> bool {
        self.samplers.is_empty()
    }

    /// The samplers' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.samplers.iter().map(|s| s.name())
    }

    /// Samples one token from `logits` (`[n_vocab]`, token id = index) and accepts it.
    ///
    /// Errors: a NaN or +inf logit (before any sampler runs), more than 2^32 logits, an
    /// error from a sampler, or [`SamplingError::NoTokenSelected`] when the last sampler
    /// does not select.
    pub fn sample(&mut self, logits: &[f32]) -> Result<TokenId, SamplingError> {
        self.candidates.fill_from_logits(logits)?;
        let token = run(&mut self.samplers, &mut self.candidates)?;
        self.accept(token);
        Ok(token)
    }

    /// Like [`sample`](Self::sample) on a caller-built candidate list (e.g. a subset of the
    /// vocabulary). The logits are validated first.
    pub fn sample_candidates(
        &mut self,
        candidates: &mut Candidates,
    ) -> Result<TokenId, SamplingError> {
        candidates.validate_logits("input")?;
        candidates.clear_selection();
        let token = run(&mut self.samplers, candidates)?;
        self.accept(token);
        Ok(token)
    }

    /// Tells every sampler that `token` is part of the sequence (penalties remember it).
    /// [`sample`](Self::sample) does this itself; call it for prompt tokens, or for tokens
    /// chosen outside the chain.
    pub fn accept(&mut self, token: TokenId) {
        for s in &mut self.samplers {
            s.accept(token);
        }
    }

    /// Resets every sampler (penalty history, random streams back to their seeds,
    /// mirostat's `mu`), as for a new sequence.
    pub fn reset(&mut self) {
        for s in &mut self.samplers {
            s.reset();
        }
    }

    /// The candidate list as the last [`sample`](Self::sample) left it: the survivors of
    /// the filters, with probabilities when the selecting sampler computed them
    /// ([`Candidates::probs_valid`]).
    pub fn candidates(&self) -> &Candidates {
        &self.candidates
    }
}

/// Applies `samplers` in order and returns the selected token.
fn run(samplers: &mut [Box<dyn Sampler>], c: &mut Candidates) -> Result<TokenId, SamplingError> {
    for s in samplers.iter_mut() {
        s.apply(c)?;
    }
    c.selected_token().ok_or(SamplingError::NoTokenSelected)
}

impl Sampler for SamplerChain {
    fn name(&self) -> &str {
        "chain"
    }

    /// Applies every sampler in order (no accept).
    fn apply(&mut self, c: &mut Candidates) -> Result<(), SamplingError> {
        for s in &mut self.samplers {
            s.apply(c)?;
        }
        Ok(())
    }

    fn accept(&mut self, token: TokenId) {
        SamplerChain::accept(self, token);
    }

    fn reset(&mut self) {
        SamplerChain::reset(self);
    }
}
