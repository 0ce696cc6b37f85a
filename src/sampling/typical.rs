//! [`Typical`]: locally typical sampling.

use super::{Candidate, Candidates, Sampler, SamplingError};

/// Locally typical sampling (llama.cpp's `typical`, after Meister et al.): with the softmax
/// `p` and its entropy `H`, candidates are ordered by `|-ln p - H|` ascending (most typical
/// first; ties keep descending-logit order) and the shortest prefix whose cumulative
/// probability is `> p` (and at least `min_keep` long) is kept, in that order (so the list
/// is left unsorted). `p = 1` keeps everything.
///
/// Masked (p = 0) candidates add nothing to the entropy (llama.cpp would turn the entropy
/// into NaN) and sort last.
#[derive(Clone, Debug)]
pub struct Typical {
    p: f32,
    min_keep: usize,
    /// `[len]` scratch: |surprise - entropy| per candidate.
    scores: Vec<f32>,
    /// `[len]` scratch: candidate indices in typicality order.
    order: Vec<usize>,
    /// `[kept]` scratch: the survivors in their new order.
    kept: Vec<Candidate>,
}

impl Typical {
    /// Errors unless `0 <= p <= 1`.
    pub fn new(p: f32, min_keep: usize) -> Result<Self, SamplingError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(SamplingError::InvalidTypicalP(p));
        }
        Ok(Self {
            p,
            min_keep,
            scores: Vec::new(),
            order: Vec::new(),
            kept: Vec::new(),
        })
    }
}

impl Sampler for Typical {
    fn name(&self) -> &str {
        "typical"
    }

    fn apply(&mut self, c: &mut Candidates) -> Result<(), SamplingError> {
        if self.p >= 1.0 {
            return Ok(());
        }
        c.sort_descending();
        c.ensure_probs()?;
        let data = c.as_slice();
        let entropy: f64 = data
            .iter()
            .filter(|x| x.p > 0.0)
            .map(|x| -(x.p as f64) * (x.p as f64).ln())
            .sum();
        self.scores.clear();
        self.scores.extend(data.iter().map(|x| {
            if x.p > 0.0 {
                (-(x.p as f64).ln() - entropy).abs() as f32
            } else {
                f32::INFINITY
            }
        }));
        self.order.clear();
        self.order.extend(0..data.len());
        let scores = &self.scores;
        self.order
            .sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
        let target = self.p as f64;
        let mut cum = 0.0f64;
        let mut last = self.order.len();
        for (i, &idx) in self.order.iter().enumerate() {
            cum += data[idx].p as f64;
            if cum > target && i + 1 >= self.min_keep {
                last = i + 1;
                break;
            }
        }
        self.kept.clear();
        self.kept
            .extend(self.order[..last].iter().map(|&i| data[i]));
        let raw = c.raw_mut();
        raw.clear();
        raw.extend_from_slice(&self.kept);
        c.set_sorted(false);
        c.set_probs_valid(false);
        c.clear_selection();
        Ok(())
    }
}
