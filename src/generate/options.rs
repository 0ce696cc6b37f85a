//! [`GenerateOptions`]: everything one generation needs besides the model and the prompt.

use super::GenerateError;
use super::stop::{CancelHandle, StopChecker, StopStrings};
use crate::sampling::{MirostatParams, SamplerChain, SamplingParams, TokenId, rng};

/// Options for one generation: token limit, sampling, stop strings, seed, cancellation.
/// Built (and validated) with [`GenerateOptions::builder`]; the defaults are llama.cpp's
/// (`llama-cli`): no token limit, [`SamplingParams::default`], no stop strings, a random
/// seed, stop at end-of-generation tokens.
///
/// ```
/// use kiln::generate::GenerateOptions;
///
/// let opts = GenerateOptions::builder()
///     .max_tokens(200)
///     .temperature(0.7)
///     .top_k(Some(20))
///     .stop("\n\n")
///     .seed(42)
///     .build()?;
/// assert_eq!(opts.max_tokens(), Some(200));
/// # Ok::<(), kiln::generate::GenerateError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    max_tokens: Option<usize>,
    sampling: SamplingParams,
    stop_strings: Vec<String>,
    seed: Option<u64>,
    ignore_eos: bool,
    cancel: Option<CancelHandle>,
}

impl GenerateOptions {
    /// A builder starting from the defaults.
    pub fn builder() -> GenerateOptionsBuilder {
        GenerateOptionsBuilder {
            opts: Self::default(),
        }
    }

    /// Checks every option: the sampling parameters ([`SamplingParams::validate`]), a token
    /// limit of at least 1, no empty stop string.
    pub fn validate(&self) -> Result<(), GenerateError> {
        if self.max_tokens == Some(0) {
            return Err(GenerateError::ZeroMaxTokens);
        }
        StopStrings::new(self.stop_strings.iter().map(String::as_str))?;
        self.sampling.validate()?;
        Ok(())
    }

    /// The token limit (`None`: until end-of-generation, a stop string or a full context).
    pub fn max_tokens(&self) -> Option<usize> {
        self.max_tokens
    }

    /// The sampling parameters.
    pub fn sampling(&self) -> &SamplingParams {
        &self.sampling
    }

    /// The stop strings.
    pub fn stop_strings(&self) -> &[String] {
        &self.stop_strings
    }

    /// The seed, if one was chosen.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// True when end-of-generation tokens are masked out instead of stopping generation.
    pub fn ignore_eos(&self) -> bool {
        self.ignore_eos
    }

    /// The cancellation handle, if one was given.
    pub fn cancel_handle(&self) -> Option<&CancelHandle> {
        self.cancel.as_ref()
    }

    /// The sampler chain for one generation, seeded with the seed (or, without one, a fresh
    /// random seed: [`rng::entropy_seed`]). `eog_tokens` are the model's end-of-generation
    /// ids: with [`ignore_eos`](Self::ignore_eos) they get a `-inf` logit bias (as llama.cpp
    /// does), so they are never sampled.
    pub fn sampler_chain(&self, eog_tokens: &[TokenId]) -> Result<SamplerChain, GenerateError> {
        let seed = self.seed.unwrap_or_else(rng::entropy_seed);
        if self.ignore_eos && !eog_tokens.is_empty() {
            let mut params = self.sampling.clone();
            params
                .logit_bias
                .extend(eog_tokens.iter().map(|&t| (t, f32::NEG_INFINITY)));
            return Ok(params.build(seed)?);
        }
        Ok(self.sampling.build(seed)?)
    }

    /// The stop checker for one generation (see [`StopChecker`] for the loop it serves).
    /// `eog_tokens` stop generation unless [`ignore_eos`](Self::ignore_eos) is set.
    pub fn stop_checker(&self, eog_tokens: &[TokenId]) -> Result<StopChecker, GenerateError> {
        let strings = StopStrings::new(self.stop_strings.iter().map(String::as_str))?;
        let eog: &[TokenId] = if self.ignore_eos { &[] } else { eog_tokens };
        Ok(StopChecker::new(
            self.max_tokens,
            eog,
            strings,
            self.cancel.clone(),
        ))
    }
}

/// Builds [`GenerateOptions`]; [`build`](Self::build) validates.
#[derive(Clone, Debug)]
pub struct GenerateOptionsBuilder {
    opts: GenerateOptions,
}

impl GenerateOptionsBuilder {
    /// Stop after `n` generated tokens (must be >= 1).
    pub fn max_tokens(mut self, n: usize) -> Self {
        self.opts.max_tokens = Some(n);
        self
    }

    /// No token limit (the default).
    pub fn unlimited(mut self) -> Self {
        self.opts.max_tokens = None;
        self
    }

    /// Replaces all sampling parameters.
    pub fn sampling(mut self, params: SamplingParams) -> Self {
        self.opts.sampling = params;
        self
    }

    /// Greedy decoding (temperature 0; the seed does not matter).
    pub fn greedy(mut self) -> Self {
        self.opts.sampling.temperature = 0.0;
        self
    }

    /// Temperature (0 = greedy).
    pub fn temperature(mut self, t: f32) -> Self {
        self.opts.sampling.temperature = t;
        self
    }

    /// Top-k (`None` = off).
    pub fn top_k(mut self, k: Option<usize>) -> Self {
        self.opts.sampling.top_k = k;
        self
    }

    /// Top-p (1 = off).
    pub fn top_p(mut self, p: f32) -> Self {
        self.opts.sampling.top_p = p;
        self
    }

    /// Min-p (0 = off).
    pub fn min_p(mut self, p: f32) -> Self {
        self.opts.sampling.min_p = p;
        self
    }

    /// Typical-p (1 = off).
    pub fn typical_p(mut self, p: f32) -> Self {
        self.opts.sampling.typical_p = p;
        self
    }

    /// Repetition penalty (1 = off).
    pub fn repeat_penalty(mut self, r: f32) -> Self {
        self.opts.sampling.repeat_penalty = r;
        self
    }

    /// Frequency penalty (0 = off).
    pub fn frequency_penalty(mut self, f: f32) -> Self {
        self.opts.sampling.frequency_penalty = f;
        self
    }

    /// Presence penalty (0 = off).
    pub fn presence_penalty(mut self, p: f32) -> Self {
        self.opts.sampling.presence_penalty = p;
        self
    }

    /// How many recent tokens the penalties see (0 = off).
    pub fn penalty_last_n(mut self, n: usize) -> Self {
        self.opts.sampling.penalty_last_n = n;
        self
    }

    /// Adds a logit bias (`-inf` bans the token).
    pub fn logit_bias(mut self, token: TokenId, bias: f32) -> Self {
        self.opts.sampling.logit_bias.push((token, bias));
        self
    }

    /// Mirostat 2.0 with target surprise `tau` and learning rate `eta` instead of the
    /// truncation samplers.
    pub fn mirostat_v2(mut self, tau: f32, eta: f32) -> Self {
        self.opts.sampling.mirostat = Some(MirostatParams { tau, eta });
        self
    }

    /// Adds a stop string.
    pub fn stop(mut self, s: impl Into<String>) -> Self {
        self.opts.stop_strings.push(s.into());
        self
    }

    /// Adds stop strings.
    pub fn stop_strings<S: Into<String>>(mut self, stops: impl IntoIterator<Item = S>) -> Self {
        self.opts
            .stop_strings
            .extend(stops.into_iter().map(Into::into));
        self
    }

    /// Seeds the random draw: the same seed, model, prompt and options give the same text.
    pub fn seed(mut self, seed: u64) -> Self {
        self.opts.seed = Some(seed);
        self
    }

    /// Never stop at end-of-generation tokens; ban them instead (llama.cpp `--ignore-eos`).
    pub fn ignore_eos(mut self, yes: bool) -> Self {
        self.opts.ignore_eos = yes;
        self
    }

    /// A handle another thread can use to stop generation.
    pub fn cancel_handle(mut self, handle: CancelHandle) -> Self {
        self.opts.cancel = Some(handle);
        self
    }

    /// Validates and returns the options.
    pub fn build(self) -> Result<GenerateOptions, GenerateError> {
        self.opts.validate()?;
        Ok(self.opts)
    }
}
