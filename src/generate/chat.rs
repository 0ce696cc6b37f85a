//! [`Chat`]: a conversation with the model's chat template over one [`Generator`], reusing
//! the KV cache from turn to turn.

use super::GenerateError;
use super::generator::{GenerationStats, Generator, Stream, Token};
use super::options::GenerateOptions;
use super::stop::StopReason;
use crate::chat::{ChatMessage, ChatTemplate};
use crate::sampling::TokenId;

/// A conversation: messages in, the model's answers streamed out.
///
/// Each turn renders the whole conversation with the chat template
/// ([`crate::chat::ChatTemplate`]: the model's Jinja template, or a built-in format for models
/// without one, such as Gemma 3), tokenizes it with control tokens parsed and a BOS token per
/// the model's `add_bos_token`, and evaluates only what the KV cache does not hold yet. When
/// the new prompt continues the text already in the context (the usual case: the previous
/// prompt, the answer, then the closing of the answer and the new user message), only that
/// continuation is tokenized and evaluated. Otherwise (a template that rewrites earlier turns,
/// an answer cut by a stop string) the context is kept up to the first differing token.
///
/// User text goes through the template and is tokenized with control tokens parsed, as in
/// llama.cpp: a user who types `<|im_end|>` produces that control token.
///
/// ```
/// use kiln::GenerateOptions;
/// # let model = kiln::testing::tiny_model()?;
/// let mut chat = model.chat()?;
/// chat.set_system("You are terse.");
/// let opts = GenerateOptions::builder().max_tokens(8).seed(7).build()?;
/// let mut answer = String::new();
/// let mut stream = chat.send("Hello!", &opts)?;
/// for token in &mut stream {
///     answer.push_str(&token?.text);
/// }
/// drop(stream);
/// assert_eq!(chat.messages().last().unwrap().content, answer);
/// let second = chat.reply("And now?", &opts)?; // reuses the KV cache of the first turn
/// # assert_eq!(chat.messages().len(), 5);
/// # Ok::<(), kiln::Error>(())
/// ```
#[derive(Debug)]
pub struct Chat {
    generator: Generator,
    template: ChatTemplate,
    messages: Vec<ChatMessage>,
    /// The text the generator's history is the tokenization of (rendered prompt, then the
    /// pieces of the generated tokens), when known.
    text: Option<Vec<u8>>,
}

impl Chat {
    /// A conversation over `generator` with the model's chat template (`tokenizer.chat_template`, or
    /// the built-in format for the architecture).
    pub fn new(generator: Generator) -> crate::Result<Chat> {
        let template = {
            let g = generator.model().file().parse()?;
            ChatTemplate::from_gguf(&g, generator.tokenizer())?
        };
        Ok(Chat::with_template(generator, template))
    }

    /// A conversation over `generator` with a given template. The generator's history is cleared.
    pub fn with_template(mut generator: Generator, template: ChatTemplate) -> Chat {
        generator.reset();
        Chat {
            generator,
            template,
            messages: Vec::new(),
            text: None,
        }
    }

    /// The chat template.
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// The generator (history, context use, counters).
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// The messages so far (answers included).
    pub fn messages(&self) -> &[ChatMessage] {
        &self.messages
    }

    /// Positions of the context in use.
    pub fn n_past(&self) -> usize {
        self.generator.n_past()
    }

    /// Positions the context holds.
    pub fn n_ctx(&self) -> usize {
        self.generator.n_ctx()
    }

    /// Sets the system message (replacing the current one). Takes effect at the next turn.
    pub fn set_system(&mut self, text: impl Into<String>) {
        let msg = ChatMessage::new("system", text);
        match self.messages.first_mut() {
            Some(m) if m.role == "system" => *m = msg,
            _ => self.messages.insert(0, msg),
        }
    }

    /// Appends a message without generating (e.g. to restore a saved conversation).
    pub fn push(&mut self, message: ChatMessage) {
        self.messages.push(message);
    }

    /// Forgets the conversation (the system message stays) and empties the context.
    pub fn reset(&mut self) {
        self.messages.retain(|m| m.role == "system");
        self.messages.truncate(1);
        self.generator.reset();
        self.text = None;
    }

    /// Sends a user message and streams the answer: an iterator of [`Token`]s. When the
    /// stream ends (or is dropped), the answer delivered so far becomes an assistant message.
    ///
    /// Errors before any work: invalid options, an empty message
    /// ([`GenerateError::EmptyPrompt`]), a conversation that no longer fits the context
    /// ([`GenerateError::PromptTooLong`]: [`reset`](Self::reset) to start over). On an
    /// error the message is not added.
    pub fn send(&mut self, user: &str, opts: &GenerateOptions) -> crate::Result<ChatStream<'_>> {
        opts.validate()?;
        if user.is_empty() {
            return Err(GenerateError::EmptyPrompt.into());
        }
        self.messages.push(ChatMessage::new("user", user));
        if let Err(e) = self.prepare() {
            self.messages.pop();
            return Err(e);
        }
        let prompt_len = self.generator.tokens().len();
        let Chat {
            generator,
            messages,
            text,
            ..
        } = self;
        let stream = match generator.stream(opts) {
            Ok(s) => s,
            Err(e) => {
                messages.pop();
                return Err(e);
            }
        };
        Ok(ChatStream {
            stream,
            messages,
            text,
            prompt_len,
            answer: String::new(),
            finished: false,
        })
    }

    /// Sends a user message and returns the whole answer.
    pub fn reply(&mut self, user: &str, opts: &GenerateOptions) -> crate::Result<String> {
        let mut stream = self.send(user, opts)?;
        for t in &mut stream {
            t?;
        }
        Ok(stream.answer().to_owned())
    }

    /// Renders the conversation and evaluates what the context does not hold yet.
    fn prepare(&mut self) -> crate::Result<usize> {
        let rendered = self.template.render(&self.messages, true)?;
        let tok = self.generator.tokenizer();
        // The BOS token comes from the tokenizer (add_bos_token); a template that writes it
        // as text too would double it (llama.cpp strips it the same way).
        let bos_text = tok
            .bos()
            .filter(|_| tok.add_bos())
            .and_then(|b| tok.token_text(b))
            .unwrap_or_default();
        let body = match rendered.as_bytes().strip_prefix(bos_text) {
            Some(rest) if !bos_text.is_empty() => &rendered[rendered.len() - rest.len()..],
            _ => rendered.as_str(),
        };
        let history = self.generator.tokens();
        let continues = self.text.as_deref().filter(|prev| {
            !history.is_empty()
                && body.as_bytes().starts_with(prev)
                && body.is_char_boundary(prev.len())
        });
        let (keep, new): (usize, Vec<TokenId>) = match continues {
            Some(prev) => (history.len(), tok.encode(&body[prev.len()..], false, true)?),
            None => {
                let full = tok.encode(body, true, true)?;
                let lcp = history
                    .iter()
                    .zip(&full)
                    .take_while(|(a, b)| a == b)
                    .count();
                (lcp, full[lcp..].to_vec())
            }
        };
        let total = keep.saturating_add(new.len());
        if total > self.generator.n_ctx() {
            return Err(GenerateError::PromptTooLong {
                tokens: total,
                n_ctx: self.generator.n_ctx(),
            }
            .into());
        }
        if let Some(&token) = new
            .iter()
            .find(|&&t| t as usize >= self.generator.n_vocab())
        {
            return Err(GenerateError::InvalidToken {
                token,
                n_vocab: self.generator.n_vocab(),
            }
            .into());
        }
        let body = body.as_bytes().to_vec();
        self.text = None;
        self.generator.truncate(keep);
        let n = if new.is_empty() {
            0
        } else {
            self.generator.feed_tokens(&new)?
        };
        self.text = Some(body);
        Ok(n)
    }
}

/// The answer of one chat turn, as an iterator of `Result<`[`Token`]`>` (see [`Stream`]);
/// made by [`Chat::send`]. When it ends or is dropped, the answer so far is added to the
/// conversation.
#[derive(Debug)]
#[must_use = "the answer is generated only when the stream is iterated"]
pub struct ChatStream<'c> {
    stream: Stream<'c>,
    messages: &'c mut Vec<ChatMessage>,
    text: &'c mut Option<Vec<u8>>,
    /// Length of the history when the answer started.
    prompt_len: usize,
    answer: String,
    finished: bool,
}

impl ChatStream<'_> {
    /// The answer so far.
    pub fn answer(&self) -> &str {
        &self.answer
    }

    /// Why the answer ended, once it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stream.stop_reason()
    }

    /// Counters and timings; `prompt_tokens` is the number of tokens this turn evaluated
    /// before answering (only what the context did not hold).
    pub fn stats(&self) -> &GenerationStats {
        self.stream.stats()
    }

    /// The generator.
    pub fn generator(&self) -> &Generator {
        self.stream.generator()
    }

    /// Ends the answer now (as a cancellation).
    pub fn stop(&mut self) {
        self.stream.stop_with(StopReason::Cancelled);
        self.finish();
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.messages
            .push(ChatMessage::new("assistant", self.answer.clone()));
        let generator = self.stream.generator();
        if let Some(text) = self.text.as_mut() {
            let tok = generator.tokenizer();
            for &id in generator
                .tokens()
                .get(self.prompt_len..)
                .unwrap_or_default()
            {
                if tok.append_piece(id, true, text).is_err() {
                    *self.text = None;
                    return;
                }
            }
        }
    }
}

impl Iterator for ChatStream<'_> {
    type Item = crate::Result<Token>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.stream.next() {
            Some(Ok(t)) => {
                self.answer.push_str(&t.text);
                Some(Ok(t))
            }
            Some(Err(e)) => Some(Err(e)),
            None => {
                self.finish();
                None
            }
        }
    }
}

impl Drop for ChatStream<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}
