//! [`LogitBias`]: adds a fixed bias to chosen tokens' logits.

use super::candidates::for_each_token;
use super::{Candidates, Sampler, SamplingError, TokenId};

/// Adds a bias to the logit of each listed token (llama.cpp's `logit-bias`). A bias of
/// `-inf` masks the token (it can never be chosen); NaN and `+inf` are rejected. Several
/// biases for one token add up. Tokens absent from the candidate list (e.g. beyond the
/// vocabulary) are ignored, as in llama.cpp.
///
/// A bias that overflows a logit to +inf is reported as [`SamplingError::NonFiniteLogit`]
/// (stage `"logit-bias"`).
#[derive(Clone, Debug)]
pub struct LogitBias {
    /// `[distinct tokens]` (token, total bias), sorted by token.
    biases: Vec<(TokenId, f32)>,
    /// Scratch for [`for_each_token`].
    pending: Vec<usize>,
}

impl LogitBias {
    /// Errors on a NaN or +inf bias, or biases for one token that add up to +inf.
    pub fn new(biases: impl IntoIterator<Item = (TokenId, f32)>) -> Result<Self, SamplingError> {
        let mut list: Vec<(TokenId, f32)> = Vec::new();
        for (token, bias) in biases {
            if bias.is_nan() || bias == f32::INFINITY {
                return Err(SamplingError::InvalidLogitBias { token, bias });
            }
            list.push((token, bias));
        }
        list.sort_by_key(|&(t, _)| t);
        let mut merged: Vec<(TokenId, f32)> = Vec::with_capacity(list.len());
        for (token, bias) in list {
            match merged.last_mut() {
                Some((t, b)) if *t == token => {
                    *b += bias;
                    if *b == f32::INFINITY {
                        return Err(SamplingError::InvalidLogitBias { token, bias: *b });
                    }
                }
                _ => merged.push((token, bias)),
            }
        }
        Ok(Self {
            biases: merged,
            pending: Vec::new(),
        })
    }

    /// The (token, total bias) pairs, sorted by token.
    pub fn biases(&self) -> &[(TokenId, f32)] {
        &self.biases
    }
}

impl Sampler for LogitBias {
    fn name(&self) -> &str {
        "logit-bias"
    }

    fn apply(&mut self, c: &mut Candidates) -> Result<(), SamplingError> {
        if self.biases.is_empty() {
            return Ok(());
        }
        let mut overflow = false;
        for_each_token(
            c.raw_mut(),
            &self.biases,
            &mut self.pending,
            |cand, &bias| {
                cand.logit += bias;
                overflow |= cand.logit == f32::INFINITY || cand.logit.is_nan();
            },
        );
        c.set_sorted(false);
        c.set_probs_valid(false);
        c.clear_selection();
        if overflow {
            return c.validate_logits("logit-bias");
        }
        Ok(())
    }
}
