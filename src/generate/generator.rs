//! [`Generator`]: a [`Session`] with the model's tokenizer. Feed text or token ids, then pull
//! the generated tokens one at a time ([`Generator::stream`]) or through a callback
//! ([`Generator::generate`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::GenerateError;
use super::options::GenerateOptions;
use super::stop::{StopChecker, StopReason};
use crate::model::{Model, Session};
use crate::sampling::{SamplerChain, TokenId};
use crate::tokenizer::{Tokenizer, take_utf8};

/// One generated token and the text it made visible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The sampled token id.
    pub id: TokenId,
    /// The text that became visible with this token: whole UTF-8 characters only, never any
    /// part of a stop string. It can be empty (the token ends mid-character, or its text could
    /// be the start of a stop string and is held back) or hold text of earlier tokens released
    /// now. Concatenating the `text` of every item gives the whole answer.
    ///
    /// The last item of a stream can be the end-of-generation token: its own text (e.g.
    /// `<|im_end|>`) is never shown, so its `text` is only what was still held back.
    pub text: String,
}

/// Counters and timings of one generation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerationStats {
    /// Why generation stopped (`None` while it runs).
    pub stop_reason: Option<StopReason>,
    /// Prompt tokens evaluated since the previous generation (by
    /// [`Generator::feed_tokens`] / [`Generator::feed_text`]).
    pub prompt_tokens: usize,
    /// Time spent evaluating them.
    pub prompt_time: Duration,
    /// Tokens sampled (including an end-of-generation token).
    pub generated_tokens: usize,
    /// Time from the first to the last sampled token (forward passes and sampling).
    pub generation_time: Duration,
}

impl GenerationStats {
    /// Prompt tokens per second (0 when nothing was timed).
    pub fn prompt_tokens_per_second(&self) -> f64 {
        rate(self.prompt_tokens, self.prompt_time)
    }

    /// Generated tokens per second (0 when nothing was timed).
    pub fn generation_tokens_per_second(&self) -> f64 {
        rate(self.generated_tokens, self.generation_time)
    }
}

fn rate(n: usize, t: Duration) -> f64 {
    let s = t.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

/// A [`Session`] (KV cache, thread pool) with the model's tokenizer and the token history.
///
/// The history ([`tokens`](Self::tokens)) is everything in the context: the prompt(s) fed so
/// far and the generated tokens. Feeding evaluates the new tokens at once (the prompt is
/// processed in batches); generation continues from the end of the history, so a
/// conversation only ever evaluates what is new.
///
/// ```
/// use kiln::generate::{GenerateOptions, Generator};
/// # let model = kiln::testing::tiny_model()?;
/// let mut g = model.generator()?;
/// g.feed_text("Once upon a time", true)?;
/// let opts = GenerateOptions::builder().max_tokens(8).greedy().build()?;
/// let mut stream = g.stream(&opts)?;
/// let mut text = String::new();
/// for token in &mut stream {
///     let token = token?;
///     text.push_str(&token.text); // print!("{}", token.text) to stream it
/// }
/// assert_eq!(stream.stats().generated_tokens, 8);
/// # Ok::<(), kiln::Error>(())
/// ```
#[derive(Debug)]
pub struct Generator {
    model: Arc<Model>,
    session: Session,
    /// The context: `tokens[..session.n_past()]` are in the KV cache, the rest wait for the
    /// next evaluation.
    tokens: Vec<TokenId>,
    /// `[n_vocab]` logits predicting the token after `tokens[..n]` when `logits_at == Some(n)`.
    logits: Vec<f32>,
    logits_at: Option<usize>,
    /// Ids below this are valid (the smaller of the model's and the tokenizer's vocabulary).
    n_vocab: usize,
    /// Tokens run through the model since creation.
    n_evaluated: usize,
    /// Prompt tokens evaluated (and the time taken) since the last generation started.
    prompt_tokens: usize,
    prompt_time: Duration,
}

impl Generator {
    /// A generator over `session`. Errors when the model file has no tokenizer.
    pub fn new(session: Session) -> crate::Result<Generator> {
        let model = Arc::clone(session.model());
        let tok = model.tokenizer().ok_or(GenerateError::NoTokenizer)?;
        let n_vocab = model.config().n_vocab.min(tok.n_vocab());
        Ok(Generator {
            logits: vec![0.0; model.config().n_vocab],
            model,
            session,
            tokens: Vec::new(),
            logits_at: None,
            n_vocab,
            n_evaluated: 0,
            prompt_tokens: 0,
            prompt_time: Duration::ZERO,
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        tokenizer(&self.model)
    }

    /// The underlying session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The token history: everything in the context, fed or generated.
    pub fn tokens(&self) -> &[TokenId] {
        &self.tokens
    }

    /// Positions used: the length of the history.
    pub fn n_past(&self) -> usize {
        self.tokens.len()
    }

    /// Positions the context holds.
    pub fn n_ctx(&self) -> usize {
        self.session.n_ctx()
    }

    /// Tokens run through the model since the generator was created (prompts and generated
    /// tokens alike; what a conversation's cache reuse saves shows here).
    pub fn n_evaluated(&self) -> usize {
        self.n_evaluated
    }

    /// Token ids below this are accepted and sampled (the smaller of the model's and the
    /// tokenizer's vocabulary).
    pub fn n_vocab(&self) -> usize {
        self.n_vocab
    }

    /// Tokenizes `text` as a prompt continuing the history: a BOS token first when the
    /// history is empty and the model asks for one (`tokenizer.ggml.add_bos_token`);
    /// `parse_special` turns control-token texts such as `<|im_start|>` into their ids (as
    /// llama.cpp's tools do with prompts). Never put untrusted text through `parse_special`:
    /// it could close the turn and impersonate another role.
    pub fn tokenize(&self, text: &str, parse_special: bool) -> crate::Result<Vec<TokenId>> {
        let add_bos = self.tokens.is_empty();
        Ok(self.tokenizer().encode(text, add_bos, parse_special)?)
    }

    /// Tokenizes `text` ([`tokenize`](Self::tokenize)) and feeds it
    /// ([`feed_tokens`](Self::feed_tokens)). Returns the number of tokens evaluated.
    ///
    /// Errors before any work: an empty `text` ([`GenerateError::EmptyPrompt`]), or more
    /// tokens than the context has room for ([`GenerateError::PromptTooLong`]).
    pub fn feed_text(&mut self, text: &str, parse_special: bool) -> crate::Result<usize> {
        if text.is_empty() {
            return Err(GenerateError::EmptyPrompt.into());
        }
        let ids = self.tokenize(text, parse_special)?;
        self.feed_tokens(&ids)
    }

    /// Appends `ids` to the history and evaluates every token not yet in the KV cache.
    /// Returns the number of tokens evaluated.
    ///
    /// Errors before any work: no ids ([`GenerateError::EmptyPrompt`]), an id outside the
    /// vocabulary ([`GenerateError::InvalidToken`]), more tokens than the context has room
    /// for ([`GenerateError::PromptTooLong`]).
    pub fn feed_tokens(&mut self, ids: &[TokenId]) -> crate::Result<usize> {
        self.check_tokens(ids)?;
        self.tokens.extend_from_slice(ids);
        let t0 = Instant::now();
        let n = self.eval_pending()?;
        self.prompt_tokens += n;
        self.prompt_time += t0.elapsed();
        Ok(n)
    }

    /// The checks [`feed_tokens`](Self::feed_tokens) makes before any work.
    pub fn check_tokens(&self, ids: &[TokenId]) -> Result<(), GenerateError> {
        if ids.is_empty() {
            return Err(GenerateError::EmptyPrompt);
        }
        if let Some(&token) = ids.iter().find(|&&t| t as usize >= self.n_vocab) {
            return Err(GenerateError::InvalidToken {
                token,
                n_vocab: self.n_vocab,
            });
        }
        let total = self.tokens.len().saturating_add(ids.len());
        if total > self.n_ctx() {
            return Err(GenerateError::PromptTooLong {
                tokens: total,
                n_ctx: self.n_ctx(),
            });
        }
        Ok(())
    }

    /// Forgets the history from position `n` on (the KV cache keeps the rest).
    pub fn truncate(&mut self, n: usize) {
        if n < self.tokens.len() {
            self.tokens.truncate(n);
            self.session.truncate(n);
            if self.logits_at.is_some_and(|at| at > n) {
                self.logits_at = None;
            }
        }
    }

    /// Forgets the whole history.
    pub fn reset(&mut self) {
        self.tokens.clear();
        self.session.clear();
        self.logits_at = None;
        self.prompt_tokens = 0;
        self.prompt_time = Duration::ZERO;
    }

    /// Starts generating after the history: an iterator of [`Token`]s. The options are
    /// validated first; the history must not be empty. Penalties see the whole history, as
    /// llama.cpp's do with the prompt.
    pub fn stream(&mut self, opts: &GenerateOptions) -> crate::Result<Stream<'_>> {
        opts.validate()?;
        if self.tokens.is_empty() {
            return Err(GenerateError::EmptyPrompt.into());
        }
        let eog = self.tokenizer().eog_tokens().to_vec();
        let mut chain = opts.sampler_chain(&eog)?;
        for &t in &self.tokens {
            chain.accept(t);
        }
        let stop = opts.stop_checker(&eog)?;
        let stats = GenerationStats {
            prompt_tokens: std::mem::take(&mut self.prompt_tokens),
            prompt_time: std::mem::take(&mut self.prompt_time),
            ..GenerationStats::default()
        };
        Ok(Stream {
            generator: self,
            chain,
            stop,
            utf8: Vec::new(),
            done: false,
            started: None,
            stats,
        })
    }

    /// Generates after the history, handing each [`Token`] to `on_token`; returning `false`
    /// from it stops generation ([`StopReason::Cancelled`]).
    pub fn generate(
        &mut self,
        opts: &GenerateOptions,
        mut on_token: impl FnMut(&Token) -> bool,
    ) -> crate::Result<GenerationStats> {
        let mut stream = self.stream(opts)?;
        for t in &mut stream {
            if !on_token(&t?) {
                stream.stop_with(StopReason::Cancelled);
                break;
            }
        }
        Ok(stream.stats().clone())
    }

    /// Generates after the history and returns the text.
    pub fn complete(&mut self, opts: &GenerateOptions) -> crate::Result<String> {
        let mut text = String::new();
        self.generate(opts, |t| {
            text.push_str(&t.text);
            true
        })?;
        Ok(text)
    }

    /// Evaluates the tokens of the history not yet in the KV cache; returns how many.
    fn eval_pending(&mut self) -> crate::Result<usize> {
        let start = self.session.n_past();
        let n = self.tokens.len() - start;
        if n == 0 {
            return Ok(0);
        }
        let logits = self.session.decode(&self.tokens[start..])?;
        self.logits.copy_from_slice(logits);
        self.logits_at = Some(self.tokens.len());
        self.n_evaluated += n;
        Ok(n)
    }

    /// The logits predicting the token after the history (`[n_vocab]`), evaluating what is
    /// pending (or, after a truncation, the last token again).
    fn next_logits(&mut self) -> crate::Result<&[f32]> {
        if self.tokens.is_empty() {
            return Err(GenerateError::EmptyPrompt.into());
        }
        if self.session.n_past() == self.tokens.len() && self.logits_at != Some(self.tokens.len()) {
            self.session.truncate(self.tokens.len() - 1);
        }
        self.eval_pending()?;
        Ok(&self.logits[..self.n_vocab])
    }
}

fn tokenizer(model: &Model) -> &Tokenizer {
    // Checked in `Generator::new`.
    model
        .tokenizer()
        .expect("Generator::new checked the tokenizer")
}

/// The tokens of one generation, as an iterator of `Result<`[`Token`]`>`; made by
/// [`Generator::stream`].
///
/// Generation ends at the first stop condition: an end-of-generation token of the model, a
/// stop string, the token limit, a cancellation, or a full context
/// ([`StopReason::ContextFull`]: the last token that fits is delivered; no error). Then the
/// iterator returns `None` and [`stop_reason`](Self::stop_reason) says why. After a
/// cancellation, text held back for a possible stop string is dropped.
///
/// Every sampled token except an end-of-generation token joins the history (the last one is
/// evaluated when generation continues). A forward-pass or sampling error is returned once,
/// then the iterator ends.
#[derive(Debug)]
#[must_use = "a stream generates nothing until it is iterated"]
pub struct Stream<'g> {
    generator: &'g mut Generator,
    chain: SamplerChain,
    stop: StopChecker,
    /// Bytes of an incomplete UTF-8 character.
    utf8: Vec<u8>,
    done: bool,
    started: Option<Instant>,
    stats: GenerationStats,
}

impl Stream<'_> {
    /// Why generation stopped, once it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stats.stop_reason
    }

    /// Counters and timings so far.
    pub fn stats(&self) -> &GenerationStats {
        &self.stats
    }

    /// The generator (its history includes the tokens generated so far).
    pub fn generator(&self) -> &Generator {
        self.generator
    }

    /// Ends the generation now with `reason` (the next call to `next` returns `None`).
    pub fn stop_with(&mut self, reason: StopReason) {
        if !self.done {
            self.done = true;
            self.stats.stop_reason = Some(reason);
        }
    }

    fn step(&mut self) -> crate::Result<Option<Token>> {
        if let Some(reason) = self.stop.before_step() {
            self.stop_with(reason);
            return Ok(None);
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        let logits = self.generator.next_logits()?;
        let id = self.chain.sample(logits)?;
        self.stats.generated_tokens += 1;

        let mut piece = String::new();
        if !self.stop.is_eog(id) {
            self.generator
                .tokenizer()
                .append_piece(id, false, &mut self.utf8)?;
            take_utf8(&mut self.utf8, &mut piece, false);
        }
        let mut text = String::new();
        let mut reason = self.stop.on_token(id, &piece, &mut text);
        let fits = self.generator.tokens.len() < self.generator.n_ctx();
        if !matches!(reason, Some(StopReason::EndOfGeneration(_))) && fits {
            self.generator.tokens.push(id);
        }
        if reason.is_none() && !fits {
            self.stop.finish(&mut text);
            reason = Some(StopReason::ContextFull);
        }
        if let Some(r) = reason {
            if !matches!(r, StopReason::StopString(_)) {
                take_utf8(&mut self.utf8, &mut text, true);
            }
            self.stop_with(r);
        }
        self.stats.generation_time = started.elapsed();
        Ok(Some(Token { id, text }))
    }
}

impl Iterator for Stream<'_> {
    type Item = crate::Result<Token>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(t) => t.map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::tokenizer::take_utf8;

    #[test]
    fn utf8_is_never_split() {
        let mut buf = Vec::new();
        let mut out = String::new();
        buf.extend_from_slice(&[b'a', 0xC3]);
        take_utf8(&mut buf, &mut out, false);
        assert_eq!((out.as_str(), buf.as_slice()), ("a", &[0xC3][..]));
        buf.push(0xA9);
        take_utf8(&mut buf, &mut out, false);
        assert_eq!(out, "aé");
        assert!(buf.is_empty());
        // Four-byte character over three pushes.
        for b in "😀".bytes() {
            let before = out.len();
            buf.push(b);
            take_utf8(&mut buf, &mut out, false);
            assert!(out.len() == before || out.ends_with('😀'));
        }
        assert_eq!(out, "aé😀");
    }

    #[test]
    fn utf8_invalid_and_unfinished_bytes() {
        let mut buf = vec![0xFF, b'x', 0xE2, 0x82];
        let mut out = String::new();
        take_utf8(&mut buf, &mut out, false);
        assert_eq!(out, "\u{FFFD}x");
        assert_eq!(buf, [0xE2, 0x82]);
        take_utf8(&mut buf, &mut out, true);
        assert_eq!(out, "\u{FFFD}x\u{FFFD}");
        assert!(buf.is_empty());
    }
}
