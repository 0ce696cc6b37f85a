//! [`TopP`]: nucleus sampling.

use super::candidates::by_logit_desc;
use super::{Candidates, Sampler, SamplingError};

/// Lists longer than this are not fully sorted up front: the top
/// [`PARTIAL_SORT_HEAD`] are selected first and the rest sorted only when the nucleus
/// is larger (llama.cpp's heuristic, same thresholds).
const PARTIAL_SORT_MIN_LEN: usize = 1024;
const PARTIAL_SORT_HEAD: usize = 256;

/// Top-p (llama.cpp's `top-p`): keeps the smallest prefix of the list, in descending
/// probability order, whose cumulative probability is `>= p`, and at least `min_keep`
/// candidates. The probabilities are the softmax over the list as it is when top-p runs.
/// `p = 1` keeps everything. The result is sorted.
///
/// The cumulative sum is accumulated in f64 (llama.cpp: f32).
#[derive(Clone, Copy, Debug)]
pub struct TopP {
    p: f32,
    min_keep: usize,
}

impl TopP {
    /// Errors unless `0 < p <= 1`.
    pub fn new(p: f32, min_keep: usize) -> Result<Self, SamplingError> {
        if !(p > 0.0 && p <= 1.0) {
            return Err(SamplingError::InvalidTopP(p));
        }
        Ok(Self { p, min_keep })
    }
}

impl Sampler for TopP {
    fn name(&self) -> &str {
        "top-p"
    }

    fn apply(&mut self, c: &mut Candidates) -> Result<(), SamplingError> {
        if self.p >= 1.0 {
            return Ok(());
        }
        c.ensure_probs()?;
        let n = c.len();
        // How much of the list is known to be in order.
        let mut sorted_len = n;
        if !c.is_sorted() {
            if n > PARTIAL_SORT_MIN_LEN {
                c.partition_top(PARTIAL_SORT_HEAD);
                sorted_len = PARTIAL_SORT_HEAD;
            } else {
                c.sort_descending();
            }
        }
        let target = self.p as f64;
        let mut cum = 0.0f64;
        let mut last = n;
        for i in 0..n {
            if i == sorted_len {
                c.raw_mut()[sorted_len..].sort_unstable_by(by_logit_desc);
                sorted_len = n;
            }
            cum += c.as_slice()[i].p as f64;
            if cum >= target && i + 1 >= self.min_keep {
                last = i + 1;
                break;
            }
        }
        // Either the loop broke inside the ordered head, or it sorted the rest.
        c.set_sorted(true);
        c.truncate(last);
        Ok(())
    }
}
