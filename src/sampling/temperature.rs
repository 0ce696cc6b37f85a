//! [`Temperature`]: divides logits by t; t = 0 keeps only the largest.

use super::{Candidates, Sampler, SamplingError};

/// Temperature scaling (llama.cpp's `temp`).
///
/// - `t > 0`: every logit becomes `logit / t` (order is kept, so `sorted` stays);
///   `t = 1` leaves the list untouched.
/// - `t = 0`: greedy: only the candidate with the largest logit is kept (the first on ties).
///   llama.cpp sets the others to -inf instead; removing them selects the same token and
///   spares later samplers the work.
///
/// A `t` so small that `logit / t` overflows to +inf is reported as
/// [`SamplingError::NonFiniteLogit`] (stage `"temperature"`), never turned into a NaN.
#[derive(Clone, Copy, Debug)]
pub struct Temperature {
    t: f32,
}

impl Temperature {
    /// Errors unless `t` is finite and >= 0.
    pub fn new(t: f32) -> Result<Self, SamplingError> {
        if !t.is_finite() || t < 0.0 {
            return Err(SamplingError::InvalidTemperature(t));
        }
        Ok(Self { t })
    }

    /// The temperature.
    pub fn value(&self) -> f32 {
        self.t
    }
}

impl Sampler for Temperature {
    fn name(&self) -> &str {
        "temperature"
    }

    fn apply(&mut self, c: &mut Candidates) -> Result<(), SamplingError> {
        if c.is_empty() || self.t == 1.0 {
            return Ok(());
        }
        if self.t == 0.0 {
            let data = c.raw_mut();
            let mut best = 0;
            for i in 1..data.len() {
                if data[i].logit > data[best].logit {
                    best = i;
                }
            }
            data.swap(0, best);
            c.truncate(1);
            c.set_sorted(true);
            c.set_probs_valid(false);
            return Ok(());
        }
        let t = self.t;
        let mut overflow = false;
        for cand in c.raw_mut().iter_mut() {
            cand.logit /= t;
            overflow |= cand.logit == f32::INFINITY;
        }
        c.set_probs_valid(false);
        c.clear_selection();
        if overflow {
            return c.validate_logits("temperature");
        }
        Ok(())
    }
}
