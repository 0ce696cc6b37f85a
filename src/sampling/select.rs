//! Selecting samplers: [`Greedy`] (argmax) and [`Dist`] (seeded random draw).

use super::candidates::draw_index;
use super::rng::Xoshiro256StarStar;
use super::{Candidates, Sampler, SamplingError};

/// Selects the candidate with the largest logit (the first one on ties, as llama.cpp's
/// `greedy`). Uses no randomness. Errors when the list is empty or fully masked.
#[derive(Clone, Copy, Debug, Default)]
pub struct Greedy;

impl Greedy {
    /// The greedy selector.
    pub fn new() -> Self {
        Self
    }
}

impl Sampler for Greedy {
    fn name(&self) -> &str {
        "greedy"
    }

    fn apply(&mut self, c: &mut Candidates) -> Result<(), SamplingError> {
        let data = c.as_slice();
        if data.is_empty() {
            return Err(SamplingError::NoCandidates);
        }
        let mut best = 0;
        for (i, cand) in data.iter().enumerate().skip(1) {
            if cand.logit > data[best].logit {
                best = i;
            }
        }
        if data[best].logit == f32::NEG_INFINITY {
            return Err(SamplingError::AllMasked(data.len()));
        }
        c.select(best)
    }
}

/// Draws a candidate with probability softmax(logits), from a seeded
/// [`Xoshiro256StarStar`] (llama.cpp's `dist`).
///
/// Semantics: with one candidate it is selected without consuming randomness. Otherwise the
/// probabilities are computed over the current list (in its current order), one uniform
/// double `u` in [0, 1) is drawn, and the first candidate whose running probability sum
/// exceeds `u * sum` is selected; the probabilities are then normalised and left valid (so
/// a caller can read the chosen token's probability). Masked (`-inf`) candidates have
/// probability 0 and are never chosen; a fully masked list is an error.
///
/// llama.cpp draws from `std::mt19937` with `>=`; kiln uses xoshiro256** with `>`, so the
/// same seed gives a different (but equally distributed) stream than llama.cpp.
#[derive(Clone, Debug)]
pub struct Dist {
    seed: u64,
    rng: Xoshiro256StarStar,
}

impl Dist {
    /// A draw seeded with `seed`. [`reset`](Sampler::reset) restarts the same stream.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rng: Xoshiro256StarStar::seed_from_u64(seed),
        }
    }

    /// The seed this sampler was built with.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

impl Sampler for Dist {
    fn name(&self) -> &str {
        "dist"
    }

    fn apply(&mut self, c: &mut Candidates) -> Result<(), SamplingError> {
        if c.len() == 1 {
            let only = &mut c.raw_mut()[0];
            if only.logit == f32::NEG_INFINITY {
                return Err(SamplingError::AllMasked(1));
            }
            only.p = 1.0;
            c.set_probs_valid(true);
            return c.select(0);
        }
        let sum = c.exp_unnormalized()?;
        let u = self.rng.next_f64();
        let picked = draw_index(c.as_slice(), sum, u);
        let inv = 1.0 / sum;
        for cand in c.raw_mut().iter_mut() {
            cand.p = (cand.p as f64 * inv) as f32;
        }
        c.set_probs_valid(true);
        // `sum > 0` (the max contributes exp(0) = 1), so some p is positive.
        c.select(picked.ok_or(SamplingError::AllMasked(c.len()))?)
    }

    fn reset(&mut self) {
        self.rng = Xoshiro256StarStar::seed_from_u64(self.seed);
    }
}
