//! Loading a model with options, and the generation entry points on [`Model`].

use std::path::Path;
use std::sync::Arc;

use super::GenerateError;
use super::chat::Chat;
use super::generator::Generator;
use super::options::GenerateOptions;
use crate::GgmlType;
use crate::gguf::{GgufFile, OpenOptions};
use crate::model::session::DEFAULT_N_CTX;
use crate::model::{Model, Session, SessionOptions};

/// How to load a model: memory-map or read the file, and the options of the sessions the
/// generation API creates (threads, context size, KV cache type).
///
/// ```
/// use kiln::{GgmlType, LoadOptions};
///
/// let opts = LoadOptions::new().threads(4).context(2048).kv_type(GgmlType::Q8_0);
/// assert_eq!(opts.session.n_ctx, Some(2048));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Memory-map the file (the default) instead of reading it into memory.
    pub mmap: bool,
    /// Options of every session made by [`Model::generator`], [`Model::chat`] and
    /// [`Model::generate`].
    pub session: SessionOptions,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            mmap: true,
            session: SessionOptions::default(),
        }
    }
}

impl LoadOptions {
    /// The defaults: memory-mapped, all cores, the training context up to
    /// [`DEFAULT_N_CTX`] positions, f16 KV cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Worker threads (0 = all available cores).
    pub fn threads(mut self, n: usize) -> Self {
        self.session.n_threads = n;
        self
    }

    /// Context size in tokens (the KV cache holds this many positions).
    pub fn context(mut self, n_ctx: usize) -> Self {
        self.session.n_ctx = Some(n_ctx);
        self
    }

    /// KV cache element type: `F32`, `F16` (default), `Q8_0` or `Q4_0`.
    pub fn kv_type(mut self, t: GgmlType) -> Self {
        self.session.kv_type = t;
        self
    }

    /// Largest number of prompt tokens run through the model at once.
    pub fn batch(mut self, n: usize) -> Self {
        self.session.n_batch = n;
        self
    }

    /// Memory-map the file (`true`, default) or read it into memory.
    pub fn mmap(mut self, yes: bool) -> Self {
        self.mmap = yes;
        self
    }
}

impl Model {
    /// Loads a GGUF model with options, ready to share between threads.
    pub fn load_with(path: impl AsRef<Path>, opts: &LoadOptions) -> crate::Result<Arc<Model>> {
        let file = GgufFile::open(path.as_ref(), OpenOptions { mmap: opts.mmap })?;
        Self::finish_load(file, opts)
    }

    /// Loads a model from the bytes of a GGUF file.
    pub fn from_bytes(bytes: Vec<u8>, opts: &LoadOptions) -> crate::Result<Arc<Model>> {
        Self::finish_load(GgufFile::from_bytes(bytes), opts)
    }

    fn finish_load(file: GgufFile, opts: &LoadOptions) -> crate::Result<Arc<Model>> {
        let mut model = Model::from_file(file)?;
        model.set_session_options(opts.session.clone());
        Ok(Arc::new(model))
    }

    /// The context size sessions get with [`session_options`](Self::session_options).
    pub fn default_n_ctx(&self) -> usize {
        self.session_options()
            .n_ctx
            .unwrap_or(self.config().n_ctx_train.min(DEFAULT_N_CTX))
    }

    /// A [`Generator`] over a new session with the model's
    /// [`session_options`](Self::session_options).
    pub fn generator(self: &Arc<Self>) -> crate::Result<Generator> {
        self.generator_with(self.session_options())
    }

    /// A [`Generator`] over a new session with `opts`.
    pub fn generator_with(self: &Arc<Self>, opts: &SessionOptions) -> crate::Result<Generator> {
        if self.tokenizer().is_none() {
            return Err(GenerateError::NoTokenizer.into());
        }
        Generator::new(Session::new(Arc::clone(self), opts)?)
    }

    /// A [`Chat`] over a new session, with the model's chat template.
    pub fn chat(self: &Arc<Self>) -> crate::Result<Chat> {
        Chat::new(self.generator()?)
    }

    /// Generates a continuation of `prompt` and returns it (the prompt is not included).
    ///
    /// The prompt is tokenized as llama.cpp's tools do: a BOS token first if the model asks
    /// for one, control-token texts (`<|im_start|>`) parsed. Errors before any work: invalid
    /// options, an empty prompt, a prompt longer than the context.
    ///
    /// ```
    /// use kiln::GenerateOptions;
    /// # let model = kiln::testing::tiny_model()?;
    /// // let model = kiln::Model::load_with("model.gguf", &kiln::LoadOptions::new())?;
    /// let opts = GenerateOptions::builder().max_tokens(16).greedy().build()?;
    /// let text = model.generate("The capital of France is", &opts)?;
    /// # assert!(!text.is_empty());
    /// # Ok::<(), kiln::Error>(())
    /// ```
    pub fn generate(
        self: &Arc<Self>,
        prompt: &str,
        opts: &GenerateOptions,
    ) -> crate::Result<String> {
        opts.validate()?;
        let tok = self.tokenizer().ok_or(GenerateError::NoTokenizer)?;
        if prompt.is_empty() {
            return Err(GenerateError::EmptyPrompt.into());
        }
        let ids = tok.encode(prompt, true, true)?;
        let n_ctx = self.default_n_ctx();
        if ids.len() > n_ctx {
            return Err(GenerateError::PromptTooLong {
                tokens: ids.len(),
                n_ctx,
            }
            .into());
        }
        // One generation needs no more positions than the prompt and the token limit.
        let mut sopts = self.session_options().clone();
        let valid = n_ctx <= self.config().n_ctx_train || sopts.allow_beyond_training_context;
        if let Some(m) = opts.max_tokens().filter(|_| valid) {
            sopts.n_ctx = Some(n_ctx.min(ids.len().saturating_add(m)));
        }
        let mut g = self.generator_with(&sopts)?;
        g.feed_tokens(&ids)?;
        g.complete(opts)
    }
}
