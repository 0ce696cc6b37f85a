//! [`SamplingParams`]: llama.cpp's common sampling options, their defaults, and the chain
//! they build.

use super::{
    Dist, LogitBias, MinP, MirostatV2, Penalties, SamplerChain, SamplingError, Temperature,
    TokenId, TopK, TopP, Typical,
};

/// Mirostat 2.0 options (see [`MirostatV2`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MirostatParams {
    /// Target surprise in bits. llama.cpp default: 5.0.
    pub tau: f32,
    /// Learning rate. llama.cpp default: 0.1.
    pub eta: f32,
}

impl Default for MirostatParams {
    fn default() -> Self {
        Self { tau: 5.0, eta: 0.1 }
    }
}

/// Sampling options with llama.cpp's common defaults (`common_params_sampling`).
///
/// [`build`](Self::build) makes the chain llama.cpp's `common_sampler_init` makes, in this
/// order (samplers that are off are left out):
///
/// ```text
/// logit-bias -> penalties -> top-k -> typical -> top-p -> min-p -> temperature -> dist
/// ```
///
/// With [`mirostat`](Self::mirostat) set, the chain is `logit-bias -> temperature ->
/// mirostat-v2` instead (llama.cpp ignores penalties and the truncation samplers then, and
/// so does kiln).
///
/// `temperature = 0` makes the result greedy: the temperature stage keeps only the best
/// candidate left by the filters and `dist` selects it without drawing, so the seed does
/// not matter.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// Temperature; 0 = greedy. Default 0.8. Must be finite and >= 0.
    pub temperature: f32,
    /// Top-k; `None` = off. Default `Some(40)`. `Some(0)` is an error.
    pub top_k: Option<usize>,
    /// Top-p; 1.0 = off. Default 0.95. Must be in (0, 1].
    pub top_p: f32,
    /// Min-p; 0.0 = off. Default 0.05. Must be in [0, 1].
    pub min_p: f32,
    /// Typical-p; 1.0 = off. Default 1.0. Must be in [0, 1].
    pub typical_p: f32,
    /// Minimum number of candidates top-p, min-p and typical keep. Default 0.
    pub min_keep: usize,
    /// Repetition penalty; 1.0 = off. Default 1.0. Must be finite and > 0.
    pub repeat_penalty: f32,
    /// Frequency penalty; 0.0 = off. Default 0.0. Must be finite.
    pub frequency_penalty: f32,
    /// Presence penalty; 0.0 = off. Default 0.0. Must be finite.
    pub presence_penalty: f32,
    /// How many recent tokens the penalties look at; 0 = off. Default 64.
    pub penalty_last_n: usize,
    /// (token, bias) pairs added to the logits first; `-inf` masks a token. Default none.
    pub logit_bias: Vec<(TokenId, f32)>,
    /// Mirostat 2.0 instead of the truncation samplers. Default `None`.
    pub mirostat: Option<MirostatParams>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: Some(40),
            top_p: 0.95,
            min_p: 0.05,
            typical_p: 1.0,
            min_keep: 0,
            repeat_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            penalty_last_n: 64,
            logit_bias: Vec::new(),
            mirostat: None,
        }
    }
}

impl SamplingParams {
    /// The defaults with temperature 0: always the most likely token (after penalties).
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Checks every option; the first invalid one is the error.
    pub fn validate(&self) -> Result<(), SamplingError> {
        self.build(0).map(|_| ())
    }

    /// Builds the chain (see the type's documentation for the order), with the random draw
    /// seeded by `seed`. Every option is validated before the chain is returned.
    pub fn build(&self, seed: u64) -> Result<SamplerChain, SamplingError> {
        // Validate everything, including options the chosen mode leaves out.
        let temperature = Temperature::new(self.temperature)?;
        let top_k = self.top_k.map(TopK::new).transpose()?;
        let top_p = TopP::new(self.top_p, self.min_keep)?;
        let min_p = MinP::new(self.min_p, self.min_keep)?;
        let typical = Typical::new(self.typical_p, self.min_keep)?;
        let penalties = Penalties::new(
            self.penalty_last_n,
            self.repeat_penalty,
            self.frequency_penalty,
            self.presence_penalty,
        )?;
        let logit_bias = LogitBias::new(self.logit_bias.iter().copied())?;
        let mirostat = self
            .mirostat
            .map(|m| MirostatV2::new(seed, m.tau, m.eta))
            .transpose()?;

        let mut chain = SamplerChain::new();
        if !self.logit_bias.is_empty() {
            chain.push(logit_bias);
        }
        if let Some(mirostat) = mirostat {
            chain.push(temperature);
            chain.push(mirostat);
            return Ok(chain);
        }
        let penalties_on = self.penalty_last_n > 0
            && (self.repeat_penalty != 1.0
                || self.frequency_penalty != 0.0
                || self.presence_penalty != 0.0);
        if penalties_on {
            chain.push(penalties);
        }
        if let Some(top_k) = top_k {
            chain.push(top_k);
        }
        if self.typical_p < 1.0 {
            chain.push(typical);
        }
        if self.top_p < 1.0 {
            chain.push(top_p);
        }
        if self.min_p > 0.0 {
            chain.push(min_p);
        }
        if self.temperature != 1.0 {
            chain.push(temperature);
        }
        chain.push(Dist::new(seed));
        Ok(chain)
    }
}
