//! Hyperparameters read from the architecture-prefixed GGUF metadata keys
//! (`llama.block_count`, `gemma3.attention.sliding_window`, ...).

use crate::gguf::Gguf;
use crate::ops::attention::{MAX_HEAD_DIM, MAX_QUERIES};

use super::ModelError;

/// The forward-pass families kiln implements (one source file each under `src/model/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Arch {
    /// Llama (and the models converted as `llama`: SmolLM2, Mistral, ...).
    Llama,
    /// Gemma 3 (text).
    Gemma3,
}

impl Arch {
    /// The `general.architecture` name.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Gemma3 => "gemma3",
        }
    }

    /// The architecture for a `general.architecture` name, if kiln implements it.
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "llama" => Some(Arch::Llama),
            "gemma3" => Some(Arch::Gemma3),
            _ => None,
        }
    }
}

/// A model's hyperparameters.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// The architecture.
    pub arch: Arch,
    /// Vocabulary size (rows of `token_embd.weight`).
    pub n_vocab: usize,
    /// Context length the model was trained with (`.context_length`).
    pub n_ctx_train: usize,
    /// Width of the residual stream (`.embedding_length`).
    pub n_embd: usize,
    /// Number of transformer blocks (`.block_count`).
    pub n_layer: usize,
    /// Hidden width of the feed-forward blocks (`.feed_forward_length`).
    pub n_ff: usize,
    /// Query heads (`.attention.head_count`).
    pub n_head: usize,
    /// Key/value heads (`.attention.head_count_kv`, default `n_head`).
    pub n_head_kv: usize,
    /// Elements per key (and query) head (`.attention.key_length`, default `n_embd / n_head`).
    pub head_dim_k: usize,
    /// Elements per value head (`.attention.value_length`, default `n_embd / n_head`).
    pub head_dim_v: usize,
    /// Rotated elements per head (`.rope.dimension_count`, default `head_dim_k`).
    pub n_rot: usize,
    /// RMSNorm epsilon (`.attention.layer_norm_rms_epsilon`).
    pub rms_eps: f32,
    /// RoPE frequency base (`.rope.freq_base`, default 10000).
    pub rope_base: f32,
    /// RoPE linear position scale: `1 / .rope.scaling.factor` for linear scaling, else 1.
    pub rope_freq_scale: f32,
    /// Explicit attention scale (`.attention.scale`); `None` means the architecture's default.
    pub attn_scale: Option<f32>,
    /// Sliding-window size of the local-attention layers (`.attention.sliding_window`).
    pub sliding_window: Option<usize>,
}

/// Reads `<arch>.<suffix>` metadata keys with typed errors naming the key.
#[derive(Clone, Copy)]
pub(crate) struct Meta<'g, 'a> {
    g: &'g Gguf<'a>,
    arch: &'static str,
}

impl<'g, 'a> Meta<'g, 'a> {
    pub(crate) fn new(g: &'g Gguf<'a>, arch: Arch) -> Self {
        Meta {
            g,
            arch: arch.name(),
        }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.arch)
    }

    /// An unsigned integer key stored as any of GGUF's integer types; `None` when absent.
    pub(crate) fn usize_opt(&self, suffix: &str) -> Result<Option<usize>, ModelError> {
        let key = self.key(suffix);
        if self.g.get(&key).is_none() {
            return Ok(None);
        }
        let v = self
            .g
            .get_uint(&key)
            .map_err(|source| ModelError::Metadata {
                key: key.clone(),
                source,
            })?;
        usize::try_from(v)
            .map(Some)
            .map_err(|_| ModelError::InvalidConfig(format!("{key} = {v} is too large")))
    }

    /// A required unsigned integer key.
    pub(crate) fn usize(&self, suffix: &str) -> Result<usize, ModelError> {
        self.usize_opt(suffix)?
            .ok_or_else(|| ModelError::MissingMetadata(self.key(suffix)))
    }

    /// An `f32` key; `None` when absent.
    pub(crate) fn f32_opt(&self, suffix: &str) -> Result<Option<f32>, ModelError> {
        let key = self.key(suffix);
        if self.g.get(&key).is_none() {
            return Ok(None);
        }
        // f32 or f64 in the file; hyperparameters are used as f32, as llama.cpp does.
        self.g
            .get_float(&key)
            .map(|v| Some(v as f32))
            .map_err(|source| ModelError::Metadata { key, source })
    }

    /// A required `f32` key.
    pub(crate) fn f32(&self, suffix: &str) -> Result<f32, ModelError> {
        self.f32_opt(suffix)?
            .ok_or_else(|| ModelError::MissingMetadata(self.key(suffix)))
    }

    /// A string key; `None` when absent.
    pub(crate) fn str_opt(&self, suffix: &str) -> Result<Option<&'a str>, ModelError> {
        let key = self.key(suffix);
        if self.g.get(&key).is_none() {
            return Ok(None);
        }
        self.g
            .get_str(&key)
            .map(Some)
            .map_err(|source| ModelError::Metadata { key, source })
    }
}

impl Config {
    /// Reads the keys every supported architecture shares. `n_vocab` comes from the shape of
    /// `token_embd.weight`.
    pub(crate) fn from_metadata(
        meta: &Meta<'_, '_>,
        arch: Arch,
        n_vocab: usize,
    ) -> Result<Config, ModelError> {
        let n_embd = meta.usize("embedding_length")?;
        let n_head = meta.usize("attention.head_count")?;
        let default_head = |what: &str| -> Result<usize, ModelError> {
            if n_head == 0 || n_embd % n_head != 0 {
                return Err(ModelError::InvalidConfig(format!(
                    "{what} is absent and embedding_length {n_embd} is not a multiple of head_count {n_head}"
                )));
            }
            Ok(n_embd / n_head)
        };
        let head_dim_k = match meta.usize_opt("attention.key_length")? {
            Some(v) => v,
            None => default_head("attention.key_length")?,
        };
        let head_dim_v = match meta.usize_opt("attention.value_length")? {
            Some(v) => v,
            None => default_head("attention.value_length")?,
        };
        let rope_freq_scale = rope_freq_scale(meta)?;
        let cfg = Config {
            arch,
            n_vocab,
            n_ctx_train: meta.usize("context_length")?,
            n_embd,
            n_layer: meta.usize("block_count")?,
            n_ff: meta.usize("feed_forward_length")?,
            n_head,
            n_head_kv: meta.usize_opt("attention.head_count_kv")?.unwrap_or(n_head),
            head_dim_k,
            head_dim_v,
            n_rot: meta
                .usize_opt("rope.dimension_count")?
                .unwrap_or(head_dim_k),
            rms_eps: meta.f32("attention.layer_norm_rms_epsilon")?,
            rope_base: meta.f32_opt("rope.freq_base")?.unwrap_or(10000.0),
            rope_freq_scale,
            attn_scale: meta.f32_opt("attention.scale")?.filter(|s| *s != 0.0),
            sliding_window: meta
                .usize_opt("attention.sliding_window")?
                .filter(|w| *w > 0),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the values are usable (positive counts, consistent head layout, finite floats).
    pub(crate) fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::InvalidConfig(m));
        for (name, v) in [
            ("n_vocab", self.n_vocab),
            ("context_length", self.n_ctx_train),
            ("embedding_length", self.n_embd),
            ("block_count", self.n_layer),
            ("feed_forward_length", self.n_ff),
            ("attention.head_count", self.n_head),
            ("attention.head_count_kv", self.n_head_kv),
            ("attention.key_length", self.head_dim_k),
            ("attention.value_length", self.head_dim_v),
            ("rope.dimension_count", self.n_rot),
        ] {
            if v == 0 {
                return bad(format!("{name} is 0"));
            }
        }
        if !self.n_head.is_multiple_of(self.n_head_kv) {
            return bad(format!(
                "head_count {} is not a multiple of head_count_kv {}",
                self.n_head, self.n_head_kv
            ));
        }
        if self.n_head / self.n_head_kv > MAX_QUERIES {
            return bad(format!(
                "{} query heads per key/value head exceed the supported {MAX_QUERIES}",
                self.n_head / self.n_head_kv
            ));
        }
        if self.head_dim_k > MAX_HEAD_DIM || self.head_dim_v > MAX_HEAD_DIM {
            return bad(format!(
                "head sizes {}/{} exceed the supported {MAX_HEAD_DIM}",
                self.head_dim_k, self.head_dim_v
            ));
        }
        if !self.n_rot.is_multiple_of(2) || self.n_rot > self.head_dim_k {
            return bad(format!(
                "rope.dimension_count {} must be even and at most the head size {}",
                self.n_rot, self.head_dim_k
            ));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps >= 0.0) {
            return bad(format!(
                "layer_norm_rms_epsilon {} is not a finite non-negative number",
                self.rms_eps
            ));
        }
        if !(self.rope_base.is_finite() && self.rope_base > 0.0) {
            return bad(format!(
                "rope.freq_base {} is not a finite positive number",
                self.rope_base
            ));
        }
        if !(self.rope_freq_scale.is_finite() && self.rope_freq_scale > 0.0) {
            return bad(format!(
                "rope scale {} is not a finite positive number",
                self.rope_freq_scale
            ));
        }
        if let Some(s) = self.attn_scale
            && !s.is_finite()
        {
            return bad(format!("attention.scale {s} is not finite"));
        }
        Ok(())
    }

    /// Query heads per key/value head.
    pub fn gqa_ratio(&self) -> usize {
        self.n_head / self.n_head_kv
    }
}

/// The RoPE position scale from `rope.scaling.type` / `.factor` (or the older
/// `rope.scale_linear`). Only linear scaling (and none) is implemented.
fn rope_freq_scale(meta: &Meta<'_, '_>) -> Result<f32, ModelError> {
    let factor = match meta.str_opt("rope.scaling.type")? {
        None | Some("none") => meta.f32_opt("rope.scale_linear")?,
        Some("linear") => meta.f32_opt("rope.scaling.factor")?,
        Some(other) => {
            return Err(ModelError::Unsupported(format!(
                "rope scaling type {other:?}"
            )));
        }
    };
    match factor {
        None => Ok(1.0),
        Some(f) if f == 0.0 || f == 1.0 => Ok(1.0),
        Some(f) if f.is_finite() && f > 0.0 => Ok(1.0 / f),
        Some(f) => Err(ModelError::InvalidConfig(format!(
            "rope scaling factor {f} is not a positive number"
        ))),
    }
}
