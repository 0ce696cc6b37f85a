//! When generation stops: stop strings (with partial matches held back), a token limit,
//! end-of-generation tokens, and a cancellation handle another thread can trigger.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::GenerateError;
use crate::sampling::TokenId;

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The token limit was reached (the last token's text was delivered).
    MaxTokens,
    /// An end-of-generation token was sampled (its text is not delivered).
    EndOfGeneration(TokenId),
    /// Stop string number `.0` (index into the options' stop strings) appeared; the text
    /// before it was delivered, the stop string and anything after it were not.
    StopString(usize),
    /// [`CancelHandle::cancel`] was called.
    Cancelled,
    /// The context window is full (reported by the generation loop, not by [`StopChecker`]).
    ContextFull,
}

/// A cancellation flag shared between the generating thread and any other: clone it, hand
/// the clone to another thread, and [`cancel`](Self::cancel) there. The generation loop
/// checks it before each token (and a model may check it between layers of a long prompt).
#[derive(Clone, Debug, Default)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    /// A handle that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks generation to stop; takes effect at the next check. Idempotent.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once [`cancel`](Self::cancel) has been called (and not [`reset`](Self::reset)).
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Clears the flag, so the handle can serve another generation.
    pub fn reset(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Finds stop strings in streamed text.
///
/// Text arrives piece by piece ([`push`](Self::push)). Text that cannot be the start of a
/// stop string is released at once; a tail that could still grow into a stop string
/// (`"<|en"` while waiting for `"<|end|>"`) is held back until the next pieces decide it.
/// When a stop string completes, the text before it is released and the rest (the stop
/// string and whatever followed it in the piece) is dropped. So a stop string split across
/// any number of tokens is found, and no part of it is ever released.
///
/// If several stop strings occur, the one that starts first wins (on a tie, the first in
/// the list).
#[derive(Clone, Debug, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    /// Length in bytes of the longest stop string.
    max_len: usize,
    /// Text received but not yet released: always shorter than `max_len` between pushes.
    held: String,
    /// Set once a stop string matched: everything after is dropped.
    stopped: Option<usize>,
}

impl StopStrings {
    /// A matcher for `stops`. Errors on an empty stop string (it would match at once).
    pub fn new<S: Into<String>>(stops: impl IntoIterator<Item = S>) -> Result<Self, GenerateError> {
        let stops: Vec<String> = stops.into_iter().map(Into::into).collect();
        if let Some(index) = stops.iter().position(String::is_empty) {
            return Err(GenerateError::EmptyStopString { index });
        }
        let max_len = stops.iter().map(String::len).max().unwrap_or(0);
        Ok(Self {
            stops,
            max_len,
            held: String::new(),
            stopped: None,
        })
    }

    /// The stop strings.
    pub fn stops(&self) -> &[String] {
        &self.stops
    }

    /// Feeds a piece of text; appends to `out` what can be released now. Returns
    /// `Some(i)` when stop string `i` has completed (then, and ever after, nothing more is
    /// released).
    pub fn push(&mut self, piece: &str, out: &mut String) -> Option<usize> {
        if self.stopped.is_some() {
            return self.stopped;
        }
        if self.stops.is_empty() {
            out.push_str(piece);
            return None;
        }
        self.held.push_str(piece);
        // Earliest complete stop string.
        let mut best: Option<(usize, usize)> = None; // (position, stop index)
        for (i, s) in self.stops.iter().enumerate() {
            if let Some(pos) = self.held.find(s.as_str())
                && best.is_none_or(|(b, _)| pos < b)
            {
                best = Some((pos, i));
            }
        }
        if let Some((pos, i)) = best {
            out.push_str(&self.held[..pos]);
            self.held.clear();
            self.stopped = Some(i);
            return self.stopped;
        }
        // Hold back the longest tail that is a proper prefix of some stop string.
        let len = self.held.len();
        let first = len.saturating_sub(self.max_len.saturating_sub(1));
        let keep_from = (first..len)
            .filter(|&i| self.held.is_char_boundary(i))
            .find(|&i| {
                let tail = &self.held.as_bytes()[i..];
                self.stops.iter().any(|s| s.as_bytes().starts_with(tail))
            })
            .unwrap_or(len);
        out.push_str(&self.held[..keep_from]);
        self.held.drain(..keep_from);
        None
    }

    /// Releases the held-back text (generation ended without completing a stop string).
    /// Releases nothing after a stop string matched. Idempotent.
    pub fn flush(&mut self, out: &mut String) {
        if self.stopped.is_none() {
            out.push_str(&self.held);
        }
        self.held.clear();
    }

    /// The text currently held back.
    pub fn held(&self) -> &str {
        &self.held
    }

    /// Index of the stop string that matched, if one did.
    pub fn matched(&self) -> Option<usize> {
        self.stopped
    }

    /// Forgets held text and any match, for a new generation.
    pub fn reset(&mut self) {
        self.held.clear();
        self.stopped = None;
    }
}

/// Every stop condition of one generation, in the order a loop needs them.
///
/// ```text
/// loop {
///     if let Some(r) = stop.before_step() { break r }      // cancelled / limit
///     let tok = chain.sample(session.next_logits()?)?;
///     let piece = decoder.push(tok);                        // streamed text of tok
///     out.clear();
///     let r = stop.on_token(tok, piece, &mut out);          // text to show + stop?
///     emit(&out);
///     if let Some(r) = r { break r }
///     session.feed(tok)?;
/// }
/// out.clear(); stop.finish(&mut out); emit(&out);           // held-back text, if any
/// ```
#[derive(Clone, Debug)]
pub struct StopChecker {
    max_tokens: Option<usize>,
    generated: usize,
    /// End-of-generation ids, sorted (empty when they are ignored).
    eog: Vec<TokenId>,
    strings: StopStrings,
    cancel: Option<CancelHandle>,
    finished: Option<StopReason>,
}

impl StopChecker {
    /// A checker: stop after `max_tokens` tokens (`None`: no limit), on any of
    /// `eog_tokens`, on any of `stops`, or when `cancel` is triggered.
    pub fn new(
        max_tokens: Option<usize>,
        eog_tokens: &[TokenId],
        stops: StopStrings,
        cancel: Option<CancelHandle>,
    ) -> Self {
        let mut eog = eog_tokens.to_vec();
        eog.sort_unstable();
        eog.dedup();
        Self {
            max_tokens,
            generated: 0,
            eog,
            strings: stops,
            cancel,
            finished: None,
        }
    }

    /// Call before computing each token: `Some` when generation must not go on
    /// (cancelled, or the limit was reached), or when it already stopped.
    pub fn before_step(&mut self) -> Option<StopReason> {
        if self.finished.is_some() {
            return self.finished;
        }
        if self.cancel.as_ref().is_some_and(CancelHandle::is_cancelled) {
            self.finished = Some(StopReason::Cancelled);
        } else if self.max_tokens.is_some_and(|m| self.generated >= m) {
            self.finished = Some(StopReason::MaxTokens);
        }
        self.finished
    }

    /// Call with each sampled token and its text piece; appends the text that may be
    /// shown now to `out`. Returns the reason when this token ends generation:
    /// an end-of-generation token (its text is dropped), a completed stop string, or the
    /// token limit (this token's text is kept). When it ends for any reason but a stop
    /// string, the held-back text is released into `out` too.
    pub fn on_token(
        &mut self,
        token: TokenId,
        piece: &str,
        out: &mut String,
    ) -> Option<StopReason> {
        if self.finished.is_some() {
            return self.finished;
        }
        self.generated += 1;
        if self.eog.binary_search(&token).is_ok() {
            self.strings.flush(out);
            self.finished = Some(StopReason::EndOfGeneration(token));
            return self.finished;
        }
        if let Some(i) = self.strings.push(piece, out) {
            self.finished = Some(StopReason::StopString(i));
            return self.finished;
        }
        if self.max_tokens.is_some_and(|m| self.generated >= m) {
            self.strings.flush(out);
            self.finished = Some(StopReason::MaxTokens);
        }
        self.finished
    }

    /// Call once the loop has ended (for whatever reason): releases any text still held
    /// back. Idempotent.
    pub fn finish(&mut self, out: &mut String) {
        self.strings.flush(out);
    }

    /// Tokens seen by [`on_token`](Self::on_token).
    pub fn generated(&self) -> usize {
        self.generated
    }

    /// Why generation stopped, once it has.
    pub fn reason(&self) -> Option<StopReason> {
        self.finished
    }

    /// True when `token` ends generation.
    pub fn is_eog(&self, token: TokenId) -> bool {
        self.eog.binary_search(&token).is_ok()
    }

    /// Starts over for a new generation (the cancel handle itself is not reset).
    pub fn reset(&mut self) {
        self.generated = 0;
        self.finished = None;
        self.strings.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(stops: &[&str], pieces: &[&str]) -> (String, Option<usize>) {
        let mut s = StopStrings::new(stops.iter().copied()).unwrap();
        let mut out = String::new();
        for p in pieces {
            if let Some(i) = s.push(p, &mut out) {
                return (out, Some(i));
            }
        }
        s.flush(&mut out);
        (out, None)
    }

    #[test]
    fn held_text_is_bounded_by_longest_stop() {
        let mut s = StopStrings::new(["abcd"]).unwrap();
        let mut out = String::new();
        assert_eq!(s.push("xxabc", &mut out), None);
        assert_eq!(out, "xx");
        assert_eq!(s.held(), "abc");
        assert_eq!(s.push("x", &mut out), None);
        assert_eq!(out, "xxabcx");
        assert_eq!(s.held(), "");
    }

    #[test]
    fn earliest_stop_wins() {
        assert_eq!(feed(&["bc", "abc"], &["xab", "cd"]), ("x".into(), Some(1)));
        assert_eq!(feed(&["ab", "abc"], &["ab"]), ("".into(), Some(0)));
    }

    #[test]
    fn multibyte_boundaries() {
        assert_eq!(feed(&["é!"], &["caf", "é", "!"]), ("caf".into(), Some(0)));
        assert_eq!(feed(&["é!"], &["café", "?"]), ("café?".into(), None));
        assert_eq!(feed(&["日本"], &["今日", "本"]), ("今".into(), Some(0)));
    }
}
