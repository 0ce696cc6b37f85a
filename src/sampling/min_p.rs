//! [`MinP`]: keeps candidates at least p times as likely as the most likely one.

use super::{Candidates, Sampler, SamplingError};

/// Min-p (llama.cpp's `min-p`): keeps the candidates with `logit >= max_logit + ln(p)`
/// (probability >= `p` times the top probability), and at least `min_keep` candidates
/// (the most likely ones). Unsorted lists are filtered in place keeping their order; when
/// that keeps fewer than `min_keep` the list is sorted and the `min_keep` best are kept.
/// `p = 0` keeps everything.
#[derive(Clone, Copy, Debug)]
pub struct MinP {
    p: f32,
    min_keep: usize,
}

impl MinP {
    /// Errors unless `0 <= p <= 1`.
    pub fn new(p: f32, min_keep: usize) -> Result<Self, SamplingError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(SamplingError::InvalidMinP(p));
        }
        Ok(Self { p, min_keep })
    }
}

impl Sampler for MinP {
    fn name(&self) -> &str {
        "min-p"
    }

    fn apply(&mut self, c: &mut Candidates) -> Result<(), SamplingError> {
        if self.p <= 0.0 || c.is_empty() {
            return Ok(());
        }
        let ln_p = self.p.ln();
        if !c.is_sorted() {
            let min_logit = c.max_logit() + ln_p;
            let kept = c.iter().filter(|x| x.logit >= min_logit).count();
            if kept > 0 && kept >= self.min_keep {
                c.retain(|x| x.logit >= min_logit);
                return Ok(());
            }
        }
        c.sort_descending();
        let data = c.as_slice();
        let min_logit = data[0].logit + ln_p;
        let mut i = 1;
        while i < data.len() {
            if data[i].logit < min_logit && i >= self.min_keep {
                break;
            }
            i += 1;
        }
        c.truncate(i);
        Ok(())
    }
}
