//! [`TopK`]: keeps the k candidates with the largest logits.

use super::{Candidates, Sampler, SamplingError};

/// Top-k (llama.cpp's `top-k`): keeps the `k` largest logits, sorted descending (ties by
/// ascending token id). With `k >= len` the whole list is kept and sorted, like llama.cpp.
///
/// Uses partial selection (`select_nth_unstable_by`, O(n)) and sorts only the survivors.
///
/// llama.cpp treats `k <= 0` as "off"; kiln rejects `k = 0` ([`SamplingError::InvalidTopK`])
/// because it would leave nothing to sample: to turn top-k off, leave it out of the chain
/// (`SamplingParams::top_k = None`).
#[derive(Clone, Copy, Debug)]
pub struct TopK {
    k: usize,
}

impl TopK {
    /// Errors when `k` is 0.
    pub fn new(k: usize) -> Result<Self, SamplingError> {
        if k == 0 {
            return Err(SamplingError::InvalidTopK);
        }
        Ok(Self { k })
    }

    /// k.
    pub fn k(&self) -> usize {
        self.k
    }
}

impl Sampler for TopK {
    fn name(&self) -> &str {
        "top-k"
    }

    fn apply(&mut self, c: &mut Candidates) -> Result<(), SamplingError> {
        c.keep_top_k(self.k);
        Ok(())
    }
}
