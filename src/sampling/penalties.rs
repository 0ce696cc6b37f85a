//! [`Penalties`]: repetition, frequency and presence penalties over the last N tokens.

use std::collections::VecDeque;

use super::candidates::for_each_token;
use super::{Candidates, Sampler, SamplingError, TokenId};

/// Initial room in the history; it grows (once) up to `last_n`, so a hostile `last_n` does
/// not size an allocation.
const INITIAL_HISTORY: usize = 4096;

/// Repetition, frequency and presence penalties (llama.cpp's `penalties`).
///
/// The sampler remembers the last `last_n` accepted tokens ([`Sampler::accept`]). For every
/// candidate that occurs `count > 0` times in that window:
///
/// ```text
/// logit = if logit <= 0 { logit * repeat } else { logit / repeat }
/// logit -= count * frequency + presence
/// ```
///
/// So `repeat > 1` pushes a repeated token towards less likely from either sign. The sampler
/// is off (does nothing, records nothing) when `last_n = 0` or
/// `repeat = 1, frequency = 0, presence = 0`. [`Sampler::reset`] forgets the history.
///
/// A penalty that overflows a logit to +inf is reported as
/// [`SamplingError::NonFiniteLogit`] (stage `"penalties"`).
#[derive(Clone, Debug)]
pub struct Penalties {
    last_n: usize,
    repeat: f32,
    frequency: f32,
    presence: f32,
    /// `[<= last_n]` the most recent accepted tokens, oldest first.
    history: VecDeque<TokenId>,
    /// `[<= last_n]` scratch: the history sorted.
    sorted: Vec<TokenId>,
    /// `[distinct]` scratch: (token, count) sorted by token.
    counts: Vec<(TokenId, u32)>,
    /// Scratch for [`for_each_token`].
    pending: Vec<usize>,
}

impl Penalties {
    /// Errors unless `repeat` is finite and > 0 and `frequency`, `presence` are finite
    /// (they may be negative, which rewards repetition).
    pub fn new(
        last_n: usize,
        repeat: f32,
        frequency: f32,
        presence: f32,
    ) -> Result<Self, SamplingError> {
        if !(repeat.is_finite() && repeat > 0.0) {
            return Err(SamplingError::InvalidPenalty {
                name: "repeat penalty",
                rule: "finite and > 0",
                value: repeat,
            });
        }
        if !frequency.is_finite() {
            return Err(SamplingError::InvalidPenalty {
                name: "frequency penalty",
                rule: "finite",
                value: frequency,
            });
        }
        if !presence.is_finite() {
            return Err(SamplingError::InvalidPenalty {
                name: "presence penalty",
                rule: "finite",
                value: presence,
            });
        }
        let room = last_n.min(INITIAL_HISTORY);
        Ok(Self {
            last_n,
            repeat,
            frequency,
            presence,
            history: VecDeque::with_capacity(room),
            sorted: Vec::with_capacity(room),
            counts: Vec::with_capacity(room),
            pending: Vec::new(),
        })
    }

    fn is_off(&self) -> bool {
        self.last_n == 0 || (self.repeat == 1.0 && self.frequency == 0.0 && self.presence == 0.0)
    }

    /// The remembered tokens, oldest first.
    pub fn history(&self) -> impl ExactSizeIterator<Item = TokenId> + '_ {
        self.history.iter().copied()
    }
}

impl Sampler for Penalties {
    fn name(&self) -> &str {
        "penalties"
    }

    fn accept(&mut self, token: TokenId) {
        if self.is_off() {
            return;
        }
        if self.history.len() == self.last_n {
            self.history.pop_front();
        }
        self.history.push_back(token);
    }

    fn reset(&mut self) {
        self.history.clear();
    }

    fn apply(&mut self, c: &mut Candidates) -> Result<(), SamplingError> {
        if self.is_off() || self.history.is_empty() {
            return Ok(());
        }
        self.sorted.clear();
        self.sorted.extend(self.history.iter().copied());
        self.sorted.sort_unstable();
        self.counts.clear();
        for &t in &self.sorted {
            match self.counts.last_mut() {
                Some((last, n)) if *last == t => *n += 1,
                _ => self.counts.push((t, 1)),
            }
        }
        let (repeat, frequency, presence) = (self.repeat, self.frequency, self.presence);
        let mut overflow = false;
        for_each_token(
            c.raw_mut(),
            &self.counts,
            &mut self.pending,
            |cand, &count| {
                if cand.logit <= 0.0 {
                    cand.logit *= repeat;
                } else {
                    cand.logit /= repeat;
                }
                cand.logit -= count as f32 * frequency + presence;
                overflow |= cand.logit == f32::INFINITY || cand.logit.is_nan();
            },
        );
        c.set_sorted(false);
        c.set_probs_valid(false);
        c.clear_selection();
        if overflow {
            return c.validate_logits("penalties");
        }
        Ok(())
    }
}
