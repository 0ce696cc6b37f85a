//! [`MirostatV2`]: target-surprise sampling with a feedback loop (selecting sampler).

use super::candidates::draw_index;
use super::rng::Xoshiro256StarStar;
use super::{Candidates, Sampler, SamplingError};

/// Mirostat 2.0 (llama.cpp's `mirostat-v2`, Basu et al. 2021). A selecting sampler: it ends
/// a chain. It keeps `mu` (initially `2 * tau`); each step:
///
/// 1. softmax over the list; drop every candidate whose surprise `-log2 p` exceeds `mu`,
///    i.e. keep `p >= 2^-mu` (keeping at least the most likely one);
/// 2. softmax over the survivors (sorted descending) and draw one with the seeded
///    [`Xoshiro256StarStar`] (no draw when only one survives);
/// 3. `mu -= eta * (-log2 p_chosen - tau)`.
///
/// [`Sampler::reset`] restores `mu = 2 * tau` and restarts the random stream. llama.cpp
/// sorts the whole list before truncating; kiln filters first and sorts only the
/// survivors (the same set, since surprise decreases with the logit).
#[derive(Clone, Debug)]
pub struct MirostatV2 {
    seed: u64,
    tau: f32,
    eta: f32,
    mu: f32,
    rng: Xoshiro256StarStar,
}

impl MirostatV2 {
    /// `tau`: target surprise in bits (llama.cpp default 5.0); `eta`: learning rate
    /// (default 0.1). Errors unless both are finite and >= 0.
    pub fn new(seed: u64, tau: f32, eta: f32) -> Result<Self, SamplingError> {
        for (name, value) in [("tau", tau), ("eta", eta)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(SamplingError::InvalidMirostat { name, value });
            }
        }
        Ok(Self {
            seed,
            tau,
            eta,
            mu: 2.0 * tau,
            rng: Xoshiro256StarStar::seed_from_u64(seed),
        })
    }

    /// The current maximum surprise `mu`.
    pub fn mu(&self) -> f32 {
        self.mu
    }
}

impl Sampler for MirostatV2 {
    fn name(&self) -> &str {
        "mirostat-v2"
    }

    fn apply(&mut self, c: &mut Candidates) -> Result<(), SamplingError> {
        c.softmax()?;
        // Surprise -log2(p) <= mu  <=>  p >= 2^-mu (one comparison per candidate).
        let p_min = (-self.mu).exp2();
        let kept = c.iter().filter(|x| x.p >= p_min).count();
        if kept == 0 {
            c.keep_top_k(1);
        } else {
            c.retain(|x| x.p >= p_min);
            c.sort_descending();
        }
        let idx = if c.len() == 1 {
            c.softmax()?;
            0
        } else {
            let sum = c.exp_unnormalized()?;
            let u = self.rng.next_f64();
            let picked = draw_index(c.as_slice(), sum, u);
            let inv = 1.0 / sum;
            for cand in c.raw_mut().iter_mut() {
                cand.p = (cand.p as f64 * inv) as f32;
            }
            c.set_probs_valid(true);
            picked.ok_or(SamplingError::AllMasked(c.len()))?
        };
        let surprise = -c.as_slice()[idx].p.log2();
        self.mu -= self.eta * (surprise - self.tau);
        c.select(idx)
    }

    fn reset(&mut self) {
        self.mu = 2.0 * self.tau;
        self.rng = Xoshiro256StarStar::seed_from_u64(self.seed);
    }
}
