//! The tokenizer stored in a GGUF file: byte-level BPE and SentencePiece, token for token equal
//! to llama.cpp (`src/llama-vocab.cpp`, `src/unicode.cpp`).
//!
//! ```text
//! text -> special-token partition (special.rs) -> raw fragments
//!   byte-level BPE ("gpt2"):  pre-tokenizer (pretokenize.rs) -> merges by rank (bpe.rs)
//!   SentencePiece ("llama"):  spaces to U+2581 -> merges by score, byte fallback (spm.rs)
//! ids -> pieces, detokenize, streaming decode (decode.rs)
//! ```
//!
//! Build one with [`Tokenizer::from_gguf`] (or [`Tokenizer::from_data`] from plain data).

mod bpe;
mod decode;
mod pretokenize;
mod special;
mod spm;
mod unicode;
mod unicode_data;
mod vocab;

pub use decode::StreamDecoder;
pub(crate) use decode::take_utf8;
pub use unicode_data::UNICODE_VERSION;
pub use vocab::TokenAttr;

use bpe::{BpeModel, BpeScratch};
use pretokenize::{PreConfig, SplitScratch};
use special::{Fragment, PartitionScratch, SpecialMatcher};
use spm::SpmScratch;
use vocab::Vocab;

use crate::gguf::{Gguf, ValueType};

/// Invalid tokenizer metadata, or an encoding/decoding failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A tokenizer key is missing or has the wrong type (the message names key and types).
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    /// A required metadata key is absent.
    #[error("tokenizer metadata key {0} is missing")]
    MissingKey(&'static str),
    /// `tokenizer.ggml.model` names a tokenizer llama.cpp does not know either.
    #[error("unknown tokenizer model {0:?} (tokenizer.ggml.model)")]
    UnknownModel(String),
    /// `tokenizer.ggml.model` names a tokenizer kiln does not implement (only "gpt2" and "llama").
    #[error("tokenizer model {0:?} is not supported (kiln supports \"gpt2\" and \"llama\")")]
    UnsupportedModel(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer llama.cpp does not know.
    #[error("unknown pre-tokenizer {0:?} (tokenizer.ggml.pre)")]
    UnknownPreTokenizer(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer kiln does not implement.
    #[error("pre-tokenizer {0:?} (tokenizer.ggml.pre) is not supported by kiln")]
    UnsupportedPreTokenizer(String),
    /// The token list is empty.
    #[error("tokenizer.ggml.tokens is empty")]
    EmptyVocab,
    /// A per-token array does not have one entry per token.
    #[error("{key} has {len} entries but tokenizer.ggml.tokens has {expected}")]
    LengthMismatch {
        /// The array's key.
        key: &'static str,
        /// Its length.
        len: usize,
        /// The number of tokens.
        expected: usize,
    },
    /// The same text appears twice in the token list.
    #[error("duplicate token {text:?} in tokenizer.ggml.tokens (ids {first} and {second})")]
    DuplicateToken {
        /// The text.
        text: String,
        /// First id.
        first: u32,
        /// Second id.
        second: u32,
    },
    /// A special-token id is not a valid token.
    #[error("tokenizer.ggml.{key} = {id} is out of range (vocabulary has {n_vocab} tokens)")]
    TokenIdOutOfRange {
        /// The key (without the `tokenizer.ggml.` prefix).
        key: &'static str,
        /// The value.
        id: u64,
        /// Vocabulary size.
        n_vocab: usize,
    },
    /// `add_bos_token` (or `add_eos_token` / `add_sep_token`) is set but the token is not.
    #[error("tokenizer.ggml.{flag} is true but tokenizer.ggml.{key} is not set")]
    MissingSpecialToken {
        /// The flag.
        flag: &'static str,
        /// The id key it needs.
        key: &'static str,
    },
    /// Something exceeds kiln's limits (e.g. more than 4 GiB of token text).
    #[error("{what} too large ({size})")]
    TooLarge {
        /// What.
        what: &'static str,
        /// Its size.
        size: u64,
    },
    /// SentencePiece byte fallback needs a byte token the vocabulary lacks (and there is no
    /// unknown token).
    #[error("no token for byte 0x{0:02X} (no <0x{0:02X}> token and no unknown token)")]
    NoByteToken(u8),
    /// A token id passed for decoding is not in the vocabulary.
    #[error("token id {id} is out of range (vocabulary has {n_vocab} tokens)")]
    InvalidTokenId {
        /// The id.
        id: u32,
        /// Vocabulary size.
        n_vocab: usize,
    },
}

/// The two tokenizer families kiln implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// Byte-level BPE (`tokenizer.ggml.model = "gpt2"`).
    Bpe,
    /// SentencePiece BPE with byte fallback (`tokenizer.ggml.model = "llama"`).
    Spm,
}

/// The ids of the special tokens (`None`: the model has none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence.
    pub eos: Option<u32>,
    /// End of turn (from `eot_token_id`, else found by text, e.g. `<|im_end|>`, `<end_of_turn>`).
    pub eot: Option<u32>,
    /// End of message.
    pub eom: Option<u32>,
    /// Unknown.
    pub unk: Option<u32>,
    /// Separator.
    pub sep: Option<u32>,
    /// Padding.
    pub pad: Option<u32>,
    /// Mask.
    pub mask: Option<u32>,
    /// Fill-in-the-middle prefix.
    pub fim_pre: Option<u32>,
    /// Fill-in-the-middle suffix.
    pub fim_suf: Option<u32>,
    /// Fill-in-the-middle middle.
    pub fim_mid: Option<u32>,
    /// Fill-in-the-middle pad.
    pub fim_pad: Option<u32>,
    /// Fill-in-the-middle repository.
    pub fim_rep: Option<u32>,
    /// Fill-in-the-middle file separator.
    pub fim_sep: Option<u32>,
}

/// Everything kiln reads from a GGUF file's `tokenizer.ggml.*` metadata, as plain data.
/// [`Tokenizer::from_gguf`] fills it; tests and tools may build one directly.
#[derive(Clone, Debug, Default)]
pub struct TokenizerData<'a> {
    /// `tokenizer.ggml.model`.
    pub model: &'a str,
    /// `tokenizer.ggml.pre`.
    pub pre: Option<&'a str>,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<&'a str>,
    /// `tokenizer.ggml.scores`.
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type`.
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges`.
    pub merges: Option<Vec<&'a str>>,
    /// The `tokenizer.ggml.*_token_id` keys present, without the prefix (e.g. `("bos_token_id", 1)`).
    pub token_ids: Vec<(&'static str, u64)>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos_token: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos_token: Option<bool>,
    /// `tokenizer.ggml.add_sep_token`.
    pub add_sep_token: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.ggml.remove_extra_whitespaces`.
    pub remove_extra_whitespaces: Option<bool>,
    /// `general.name` (llama.cpp sets per-token attributes for some model names).
    pub model_name: Option<&'a str>,
}

/// Behaviour flags (llama.cpp's `llama_vocab::impl` booleans).
#[derive(Clone, Copy, Debug, Default)]
struct Flags {
    add_bos: bool,
    add_eos: bool,
    add_sep: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    ignore_merges: bool,
    remove_extra_whitespaces: bool,
}

#[derive(Clone, Debug)]
enum Model {
    Bpe { bpe: Box<BpeModel>, pre: PreConfig },
    Spm,
}

const NONE: u32 = u32::MAX;

/// A loaded tokenizer. Cheap to share (`&Tokenizer` is `Sync`); every call allocates its own
/// small scratch buffers.
#[derive(Clone)]
pub struct Tokenizer {
    vocab: Vocab,
    model: Model,
    special: SpecialTokens,
    flags: Flags,
    /// End-of-generation tokens, sorted.
    eog: Vec<u32>,
    matcher: SpecialMatcher,
    /// SentencePiece byte fallback: token of each byte (`NONE`: missing).
    byte_tokens: [u32; 256],
    model_kind: String,
    pre_name: String,
    newline: Option<u32>,
    /// SentencePiece: texts of tokens with a `▁` after their first byte, and those offsets.
    spm_crossers: Vec<(Vec<u8>, Vec<usize>)>,
    /// SentencePiece: cut text into words before `▁` (off when there are too many crossers).
    spm_split: bool,
}

impl std::fmt::Debug for Tokenizer {
    /// A summary (the vocabulary itself is far too large to print).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("model", &self.model_kind)
            .field("pre", &self.pre_name)
            .field("n_vocab", &self.vocab.len())
            .field("n_special", &self.matcher.len())
            .field("special", &self.special)
            .field("add_bos", &self.flags.add_bos)
            .field("add_eos", &self.flags.add_eos)
            .field("add_space_prefix", &self.flags.add_space_prefix)
            .finish_non_exhaustive()
    }
}

/// Per-call memo: the tokens of each distinct word (a BPE pre-token or a SentencePiece word),
/// as a span of the output already produced.
struct WordCache {
    enabled: bool,
    words: vocab::StringTable,
    spans: Vec<(usize, usize)>,
}

impl WordCache {
    fn new(enabled: bool, text_len: usize) -> WordCache {
        let n = if enabled {
            (text_len / 16).clamp(64, 1 << 16)
        } else {
            0
        };
        WordCache {
            enabled,
            words: vocab::StringTable::with_capacity(n, n * 8),
            spans: Vec::with_capacity(n),
        }
    }

    /// Appends the tokens of `word`: computed by `f` the first time, copied afterwards.
    fn encode(
        &mut self,
        word: &[u8],
        out: &mut Vec<u32>,
        f: impl FnOnce(&mut Vec<u32>) -> Result<(), TokenizerError>,
    ) -> Result<(), TokenizerError> {
        if !self.enabled || word.is_empty() {
            return f(out);
        }
        match self.words.intern(word) {
            Ok((id, false)) => {
                let (a, b) = self.spans[id as usize];
                out.extend_from_within(a..b);
                Ok(())
            }
            Ok((_, true)) => {
                let a = out.len();
                f(out)?;
                self.spans.push((a, out.len()));
                Ok(())
            }
            // Over the table's limits: just stop caching.
            Err(_) => {
                self.enabled = false;
                f(out)
            }
        }
    }
}

/// The `*_token_id` keys in llama.cpp's order (the deprecated FIM names last, overriding).
const ID_KEYS: [&str; 17] = [
    "bos_token_id",
    "eos_token_id",
    "eot_token_id",
    "eom_token_id",
    "unknown_token_id",
    "seperator_token_id",
    "padding_token_id",
    "mask_token_id",
    "fim_pre_token_id",
    "fim_suf_token_id",
    "fim_mid_token_id",
    "fim_pad_token_id",
    "fim_rep_token_id",
    "fim_sep_token_id",
    "prefix_token_id",
    "suffix_token_id",
    "middle_token_id",
];

fn id_slot<'s>(s: &'s mut SpecialTokens, key: &str) -> Option<&'s mut Option<u32>> {
    Some(match key {
        "bos_token_id" => &mut s.bos,
        "eos_token_id" => &mut s.eos,
        "eot_token_id" => &mut s.eot,
        "eom_token_id" => &mut s.eom,
        "unknown_token_id" => &mut s.unk,
        "seperator_token_id" => &mut s.sep,
        "padding_token_id" => &mut s.pad,
        "mask_token_id" => &mut s.mask,
        "fim_pre_token_id" | "prefix_token_id" => &mut s.fim_pre,
        "fim_suf_token_id" | "suffix_token_id" => &mut s.fim_suf,
        "fim_mid_token_id" | "middle_token_id" => &mut s.fim_mid,
        "fim_pad_token_id" => &mut s.fim_pad,
        "fim_rep_token_id" => &mut s.fim_rep,
        "fim_sep_token_id" => &mut s.fim_sep,
        _ => return None,
    })
}

/// Texts llama.cpp recognises as end-of-turn / FIM tokens when the metadata does not say.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Texts that end generation (llama.cpp's list).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

impl<'a> TokenizerData<'a> {
    /// Reads the `tokenizer.ggml.*` keys (and `general.name`) of a GGUF file. Types are checked
    /// here (a wrong type is [`TokenizerError::Gguf`] naming the key); lengths and ids are checked
    /// by [`Tokenizer::from_data`].
    pub fn from_gguf(g: &Gguf<'a>) -> Result<TokenizerData<'a>, TokenizerError> {
        let opt_str = |key: &str| g.get(key).map(|_| g.get_str(key)).transpose();
        let opt_bool = |key: &str| g.get(key).map(|_| g.get_bool(key)).transpose();
        let model = g.get_str("tokenizer.ggml.model")?;
        let tokens: Vec<&'a str> = g
            .get_array("tokenizer.ggml.tokens")?
            .try_iter_str()?
            .collect();
        let scores = match g.get("tokenizer.ggml.scores") {
            None => None,
            Some(_) => {
                let a = g.get_array("tokenizer.ggml.scores")?;
                Some(match a.elem_type() {
                    // llama.cpp also accepts integer scores.
                    ValueType::I32 => a.iter::<i32>()?.map(|v| v as f32).collect(),
                    _ => a.to_f32_vec()?,
                })
            }
        };
        let token_types = match g.get("tokenizer.ggml.token_type") {
            None => None,
            Some(_) => Some(g.get_array("tokenizer.ggml.token_type")?.to_i32_vec()?),
        };
        let merges = match g.get("tokenizer.ggml.merges") {
            None => None,
            Some(_) => Some(
                g.get_array("tokenizer.ggml.merges")?
                    .try_iter_str()?
                    .collect(),
            ),
        };
        let mut token_ids = Vec::new();
        for key in ID_KEYS {
            let full = format!("tokenizer.ggml.{key}");
            if g.get(&full).is_some() {
                token_ids.push((key, g.get_uint(&full)?));
            }
        }
        Ok(TokenizerData {
            model,
            pre: opt_str("tokenizer.ggml.pre")?,
            tokens,
            scores,
            token_types,
            merges,
            token_ids,
            add_bos_token: opt_bool("tokenizer.ggml.add_bos_token")?,
            add_eos_token: opt_bool("tokenizer.ggml.add_eos_token")?,
            add_sep_token: opt_bool("tokenizer.ggml.add_sep_token")?,
            add_space_prefix: opt_bool("tokenizer.ggml.add_space_prefix")?,
            remove_extra_whitespaces: opt_bool("tokenizer.ggml.remove_extra_whitespaces")?,
            model_name: opt_str("general.name")?,
        })
    }
}

impl Tokenizer {
    /// Loads the tokenizer of a parsed GGUF file (`tokenizer.ggml.*` metadata), validating every
    /// array's type and length and every special-token id.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_data(TokenizerData::from_gguf(g)?)
    }

    /// Builds a tokenizer from plain metadata (see [`TokenizerData`]), validating every array
    /// length and id.
    pub fn from_data(mut d: TokenizerData<'_>) -> Result<Tokenizer, TokenizerError> {
        let spm = match d.model {
            "llama" => true,
            "gpt2" => false,
            "bert" | "t5" | "rwkv" | "plamo2" | "gemma4" | "hybriddna" | "whitespace"
            | "no_vocab" | "none" => {
                return Err(TokenizerError::UnsupportedModel(d.model.to_owned()));
            }
            other => return Err(TokenizerError::UnknownModel(other.to_owned())),
        };
        let n = d.tokens.len();
        if let Some(s) = &d.scores
            && s.len() != n
        {
            return Err(TokenizerError::LengthMismatch {
                key: "tokenizer.ggml.scores",
                len: s.len(),
                expected: n,
            });
        }
        if let Some(t) = &d.token_types
            && t.len() != n
        {
            return Err(TokenizerError::LengthMismatch {
                key: "tokenizer.ggml.token_type",
                len: t.len(),
                expected: n,
            });
        }
        let n_bytes: usize = d.tokens.iter().map(|t| t.len()).sum();
        let scores = d.scores.take();
        let mut vocab = Vocab::new(&d.tokens, scores, d.token_types.as_deref(), n_bytes)?;

        let mut flags = Flags::default();
        let mut special = SpecialTokens::default();
        let (model, pre_name) = if spm {
            flags.add_space_prefix = true;
            flags.add_bos = true;
            special.bos = Some(1);
            special.eos = Some(2);
            special.unk = Some(0);
            (Model::Spm, d.pre.unwrap_or("default").to_owned())
        } else {
            let pre = pretokenize::bpe_pre(d.pre)?;
            let merges = d
                .merges
                .as_ref()
                .ok_or(TokenizerError::MissingKey("tokenizer.ggml.merges"))?;
            let bpe = BpeModel::new(&vocab, merges.iter().copied())?;
            flags.clean_spaces = pre.clean_spaces;
            flags.ignore_merges = pre.ignore_merges;
            flags.add_bos = pre.add_bos;
            flags.add_sep = pre.add_sep;
            special.bos = if pre.no_bos { None } else { Some(11) };
            special.eos = Some(11);
            (
                Model::Bpe {
                    bpe: Box::new(bpe),
                    pre,
                },
                d.pre.unwrap_or("default").to_owned(),
            )
        };
        flags.add_space_prefix = d.add_space_prefix.unwrap_or(flags.add_space_prefix);
        flags.remove_extra_whitespaces = d.remove_extra_whitespaces.unwrap_or(false);

        // Defaults beyond the vocabulary are disabled; explicit ids must be in range.
        for slot in [&mut special.bos, &mut special.eos, &mut special.unk] {
            if slot.is_some_and(|id| id as usize >= n) {
                *slot = None;
            }
        }
        for key in ID_KEYS {
            let Some(&(_, v)) = d.token_ids.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            if v >= n as u64 {
                return Err(TokenizerError::TokenIdOutOfRange {
                    key,
                    id: v,
                    n_vocab: n,
                });
            }
            if let Some(slot) = id_slot(&mut special, key) {
                *slot = Some(v as u32);
            }
        }
        flags.add_bos = d.add_bos_token.unwrap_or(flags.add_bos);
        flags.add_eos = d.add_eos_token.unwrap_or(flags.add_eos);
        flags.add_sep = d.add_sep_token.unwrap_or(flags.add_sep);
        for (on, id, flag, key) in [
            (flags.add_bos, special.bos, "add_bos_token", "bos_token_id"),
            (flags.add_eos, special.eos, "add_eos_token", "eos_token_id"),
            (
                flags.add_sep,
                special.sep,
                "add_sep_token",
                "seperator_token_id",
            ),
        ] {
            if on && id.is_none() {
                return Err(TokenizerError::MissingSpecialToken { flag, key });
            }
        }

        // Special tokens found by text, marked as control (llama.cpp's auto-detection).
        let mark_control = |vocab: &mut Vocab, id: u32| {
            let a = &mut vocab.attrs[id as usize];
            *a = *a | TokenAttr::CONTROL;
        };
        for (slot, texts) in [
            (&mut special.eot, EOT_TEXTS),
            (&mut special.eom, EOM_TEXTS),
            (&mut special.fim_pre, FIM_PRE_TEXTS),
            (&mut special.fim_suf, FIM_SUF_TEXTS),
            (&mut special.fim_mid, FIM_MID_TEXTS),
            (&mut special.fim_pad, FIM_PAD_TEXTS),
            (&mut special.fim_rep, FIM_REP_TEXTS),
            (&mut special.fim_sep, FIM_SEP_TEXTS),
        ] {
            if slot.is_none()
                && let Some(id) = texts.iter().find_map(|t| vocab.find(t.as_bytes()))
            {
                *slot = Some(id);
                mark_control(&mut vocab, id);
            }
        }
        for id in 0..n as u32 {
            let a = vocab.attr(id);
            if a.has(TokenAttr::CONTROL)
                && !a.has(TokenAttr::UNUSED)
                && contains(vocab.text(id), b"unused")
            {
                vocab.attrs[id as usize] = a | TokenAttr::UNUSED;
            }
        }
        let mut eog: Vec<u32> = [special.fim_pad, special.fim_rep, special.fim_sep]
            .into_iter()
            .flatten()
            .collect();
        for t in EOG_TEXTS {
            if let Some(id) = vocab.find(t.as_bytes()) {
                eog.push(id);
                mark_control(&mut vocab, id);
            }
        }
        for t in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(id) = vocab.find(t.as_bytes()) {
                vocab.attrs[id as usize] = TokenAttr::USER_DEFINED;
            }
        }
        eog.extend(
            [special.eos, special.eot, special.eom]
                .into_iter()
                .flatten(),
        );
        eog.sort_unstable();
        eog.dedup();
        let has = |vocab: &Vocab, eog: &[u32], t: &str| {
            vocab.find(t.as_bytes()).filter(|id| eog.contains(id))
        };
        let (ret, call, calls, flush, end) = (
            has(&vocab, &eog, "<|return|>"),
            has(&vocab, &eog, "<|call|>"),
            has(&vocab, &eog, "<|calls|>"),
            has(&vocab, &eog, "<|flush|>"),
            has(&vocab, &eog, "<|end|>"),
        );
        if let Some(end) = end
            && ((ret.is_some() && (call.is_some() || calls.is_some()))
                || ((call.is_some() || calls.is_some()) && flush.is_some()))
        {
            eog.retain(|&t| t != end);
            vocab.attrs[end as usize] = TokenAttr::USER_DEFINED;
        }
        if has(&vocab, &eog, "<|tool_response>").is_some()
            && let Some(s) = has(&vocab, &eog, "</s>")
        {
            eog.retain(|&t| t != s);
            vocab.attrs[s as usize] = TokenAttr::NORMAL;
        }

        let matcher = SpecialMatcher::new(&vocab);

        // Per-token strip attributes llama.cpp sets by model name.
        let name = d.model_name.unwrap_or("").to_ascii_lowercase();
        let set = |vocab: &mut Vocab, text: &str, attr: TokenAttr, on: bool| {
            if let Some(id) = vocab.find(text.as_bytes()) {
                let a = &mut vocab.attrs[id as usize];
                a.0 = if on { a.0 | attr.0 } else { a.0 & !attr.0 };
            }
        };
        if matches!(d.pre, Some("jina-v2-de" | "jina-v2-es" | "jina-v2-code")) {
            set(&mut vocab, "<mask>", TokenAttr::LSTRIP, true);
        } else if name.contains("phi-3") || name.contains("phi3") {
            for id in 0..n as u32 {
                if vocab
                    .attr(id)
                    .has(TokenAttr::CONTROL | TokenAttr::USER_DEFINED | TokenAttr::UNKNOWN)
                {
                    vocab.attrs[id as usize].0 |= TokenAttr::RSTRIP.0;
                }
            }
            set(&mut vocab, "</s>", TokenAttr::RSTRIP, true);
            for t in ["<unk>", "<s>", "<|endoftext|>"] {
                set(&mut vocab, t, TokenAttr::RSTRIP, false);
            }
        } else if name.contains("modern-bert") {
            set(&mut vocab, "[MASK]", TokenAttr::LSTRIP, true);
        }

        let mut byte_tokens = [NONE; 256];
        if spm {
            for (b, slot) in byte_tokens.iter_mut().enumerate() {
                let hex = format!("<0x{b:02X}>");
                *slot = vocab
                    .find(hex.as_bytes())
                    .or_else(|| vocab.find(&[b as u8]))
                    .unwrap_or(NONE);
            }
        }

        let mut spm_crossers = Vec::new();
        if spm {
            for id in vocab.texts.containing_after_start(spm::ESCAPED_SPACE) {
                let t = vocab.text(id);
                let inner: Vec<usize> = (1..t.len())
                    .filter(|&k| t[k..].starts_with(spm::ESCAPED_SPACE))
                    .collect();
                spm_crossers.push((t.to_vec(), inner));
                if spm_crossers.len() > 64 {
                    break;
                }
            }
        }
        let spm_split = spm_crossers.len() <= 64;
        if !spm_split {
            spm_crossers.clear();
        }
        let mut tok = Tokenizer {
            spm_crossers,
            spm_split,
            vocab,
            model,
            special,
            flags,
            eog,
            matcher,
            byte_tokens,
            model_kind: d.model.to_owned(),
            pre_name,
            newline: None,
        };
        tok.newline = if spm {
            Some(tok.byte_tokens[b'\n' as usize])
                .filter(|&t| t != NONE)
                .or(tok.special.pad)
        } else {
            tok.encode("\n", false, false)
                .ok()
                .and_then(|v| v.first().copied())
                .or(tok.special.pad)
        };
        Ok(tok)
    }

    /// Tokenizes `text`. `add_special` adds BOS/EOS as the model asks (`add_bos_token`,
    /// `add_eos_token`); `parse_special` turns control-token texts in `text` (e.g.
    /// `<|im_start|>`) into their ids. User-defined tokens are always matched, as llama.cpp does.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut out = Vec::with_capacity(text.len() / 3 + 4);
        self.encode_into(text, add_special, parse_special, &mut out)?;
        Ok(out)
    }

    /// [`Tokenizer::encode`], appending to `out`.
    pub fn encode_into(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        self.encode_impl(text, add_special, parse_special, true, out)
    }

    /// [`Tokenizer::encode`] without the speed-ups that rely on a proof of equivalence (the
    /// per-call word memo and SentencePiece's cutting into words): the plain llama.cpp
    /// algorithm, for tests that check the fast path against it.
    #[doc(hidden)]
    pub fn encode_plain(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut out = Vec::new();
        self.encode_impl(text, add_special, parse_special, false, &mut out)?;
        Ok(out)
    }

    fn encode_impl(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
        fast: bool,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        if text.len() >= u32::MAX as usize {
            return Err(TokenizerError::TooLarge {
                what: "text to tokenize",
                size: text.len() as u64,
            });
        }
        let mut part = PartitionScratch::default();
        let mut frags = Vec::new();
        self.matcher.partition(
            &self.vocab,
            text.as_bytes(),
            parse_special,
            &mut part,
            &mut frags,
        );
        drop(part);
        if add_special && self.flags.add_bos {
            out.extend(self.special.bos);
        }
        // Long texts repeat words: remember each word's tokens for the rest of the call.
        let mut cache = WordCache::new(fast && text.len() >= 512, text.len());
        match &self.model {
            Model::Spm => {
                let mut s = SpmScratch::default();
                let mut ends = Vec::new();
                let crossers = &self.spm_crossers;
                let mut prev_special = true;
                for f in &frags {
                    match *f {
                        Fragment::Text(a, b) => {
                            let prefix = self.flags.add_space_prefix && prev_special;
                            let raw = &text.as_bytes()[a as usize..b as usize];
                            spm::escape_into(&mut s, prefix, raw);
                            let esc = spm::take_text(&mut s);
                            if fast && self.spm_split {
                                spm::word_ends(&esc, crossers, &mut ends);
                            } else {
                                ends.clear();
                                ends.push(esc.len());
                            }
                            let mut start = 0;
                            let mut r = Ok(());
                            for &end in &ends {
                                let word = &esc[start..end];
                                start = end;
                                r = cache.encode(word, out, |out| {
                                    let (v, bt, unk) =
                                        (&self.vocab, &self.byte_tokens, self.special.unk);
                                    spm::encode_text(v, bt, unk, word, &mut s, out)
                                });
                                if r.is_err() {
                                    break;
                                }
                            }
                            spm::return_text(&mut s, esc);
                            r?;
                            prev_special = false;
                        }
                        Fragment::Token(t) => {
                            out.push(t);
                            prev_special = true;
                        }
                    }
                }
            }
            Model::Bpe { bpe, pre } => {
                let mut split = SplitScratch::default();
                let mut bs = BpeScratch::default();
                for f in &frags {
                    match *f {
                        Fragment::Text(a, b) => {
                            let frag = match text.get(a as usize..b as usize) {
                                Some(s) => std::borrow::Cow::Borrowed(s),
                                // Unreachable: fragments end on character boundaries.
                                None => String::from_utf8_lossy(
                                    &text.as_bytes()[a as usize..b as usize],
                                ),
                            };
                            for &(x, y) in pretokenize::split(pre.stages, &frag, &mut split) {
                                let word = &frag.as_bytes()[x as usize..y as usize];
                                let im = self.flags.ignore_merges;
                                cache.encode(word, out, |out| {
                                    bpe.encode_word(&self.vocab, word, im, out, &mut bs);
                                    Ok(())
                                })?;
                            }
                        }
                        Fragment::Token(t) => out.push(t),
                    }
                }
            }
        }
        if add_special && self.flags.add_eos {
            out.extend(self.special.eos);
        }
        Ok(())
    }

    /// Which family this tokenizer is.
    pub fn kind(&self) -> TokenizerKind {
        match self.model {
            Model::Bpe { .. } => TokenizerKind::Bpe,
            Model::Spm => TokenizerKind::Spm,
        }
    }

    fn is_spm(&self) -> bool {
        matches!(self.model, Model::Spm)
    }

    /// `tokenizer.ggml.model` ("gpt2" or "llama").
    pub fn model_name(&self) -> &str {
        &self.model_kind
    }

    /// `tokenizer.ggml.pre` ("default" when absent).
    pub fn pre_tokenizer(&self) -> &str {
        &self.pre_name
    }

    /// Number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }

    /// The special-token ids.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// BOS id.
    pub fn bos(&self) -> Option<u32> {
        self.special.bos
    }

    /// EOS id.
    pub fn eos(&self) -> Option<u32> {
        self.special.eos
    }

    /// End-of-turn id.
    pub fn eot(&self) -> Option<u32> {
        self.special.eot
    }

    /// The newline token (llama.cpp's `token_nl`).
    pub fn newline(&self) -> Option<u32> {
        self.newline
    }

    /// Whether generation should stop at `id` (EOS, EOT, and the other end-of-generation tokens
    /// llama.cpp recognises).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation tokens, sorted.
    pub fn eog_tokens(&self) -> &[u32] {
        &self.eog
    }

    /// Whether [`Tokenizer::encode`] with `add_special` adds BOS.
    pub fn add_bos(&self) -> bool {
        self.flags.add_bos
    }

    /// Whether [`Tokenizer::encode`] with `add_special` adds EOS.
    pub fn add_eos(&self) -> bool {
        self.flags.add_eos
    }

    /// Whether SentencePiece text gets a leading space (`tokenizer.ggml.add_space_prefix`).
    pub fn add_space_prefix(&self) -> bool {
        self.flags.add_space_prefix
    }

    /// The raw text of a token (`▁` and GPT-2 byte characters as stored).
    pub fn token_text(&self, id: u32) -> Option<&[u8]> {
        ((id as usize) < self.vocab.len()).then(|| self.vocab.text(id))
    }

    /// The attributes of a token.
    pub fn token_attr(&self, id: u32) -> Option<TokenAttr> {
        ((id as usize) < self.vocab.len()).then(|| self.vocab.attr(id))
    }

    /// The score of a token.
    pub fn token_score(&self, id: u32) -> Option<f32> {
        self.vocab.scores.get(id as usize).copied()
    }

    /// The token whose raw text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.find(text.as_bytes())
    }

    /// Number of special (control, user-defined, unknown) tokens.
    pub fn n_special(&self) -> usize {
        self.matcher.len()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bpe_data<'a>(tokens: &[&'a str], merges: &[&'a str], pre: &'a str) -> TokenizerData<'a> {
        TokenizerData {
            model: "gpt2",
            pre: Some(pre),
            tokens: tokens.to_vec(),
            merges: Some(merges.to_vec()),
            ..Default::default()
        }
    }

    fn spm_tokenizer(add_space_prefix: bool) -> Tokenizer {
        // Ids: 0-2 specials, 3 "▁hello", 4 "▁world", 5 "▁", 6 "<ctl>", 7.. bytes, then the
        // pieces SentencePiece merges through ("▁h", "▁he" ... and the letters).
        let mut tokens = vec![
            "<unk>",
            "<s>",
            "</s>",
            "\u{2581}hello",
            "\u{2581}world",
            "\u{2581}",
            "<ctl>",
        ];
        let hex: Vec<String> = (0..256).map(|b| format!("<0x{b:02X}>")).collect();
        tokens.extend(hex.iter().map(String::as_str));
        let mut types = vec![2, 3, 3, 1, 1, 1, 3];
        types.extend([6; 256]);
        let steps = [
            "h",
            "e",
            "l",
            "o",
            "w",
            "r",
            "d",
            "\u{2581}h",
            "\u{2581}he",
            "\u{2581}hel",
            "\u{2581}hell",
        ];
        let steps2 = ["\u{2581}w", "\u{2581}wo", "\u{2581}wor", "\u{2581}worl"];
        tokens.extend(steps.iter().chain(&steps2));
        types.extend(std::iter::repeat_n(1, steps.len() + steps2.len()));
        // Longer pieces score higher, so merges build words left to right.
        let scores: Vec<f32> = tokens.iter().map(|t| t.chars().count() as f32).collect();
        Tokenizer::from_data(TokenizerData {
            model: "llama",
            tokens,
            scores: Some(scores),
            token_types: Some(types),
            add_space_prefix: Some(add_space_prefix),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn spm_space_prefix_bytes_and_streaming() {
        let t = spm_tokenizer(true);
        let ids = t.encode("hello world", true, false).unwrap();
        assert_eq!(ids, vec![1, 3, 4]);
        // BOS removed with remove_special: no leading space to strip (llama.cpp keeps it).
        assert_eq!(t.decode(&ids, true, false).unwrap(), b" hello world");
        assert_eq!(t.decode(&ids[1..], false, false).unwrap(), b"hello world");
        // After a special token the next fragment gets the prefix space again.
        assert_eq!(
            t.encode("hello<ctl>world", false, true).unwrap(),
            vec![3, 6, 4]
        );
        assert_eq!(
            t.encode("hello<ctl>world", false, false).unwrap().len(),
            1 + 5 + 5
        );
        // "é" has no token: two byte tokens; the stream emits it whole, once complete.
        let e = t.encode("é", false, false).unwrap();
        assert_eq!(e, vec![5, 7 + 0xC3, 7 + 0xA9]);
        let mut st = t.stream_decoder(false).at_text_start();
        assert_eq!(st.push(e[0]).unwrap(), "");
        assert_eq!(st.push(e[1]).unwrap(), "");
        assert_eq!(st.push(e[2]).unwrap(), "é");
        assert_eq!(st.finish(), "");
        // An incomplete character at the end, and bytes that never form one.
        let mut st = t.stream_decoder(false);
        assert_eq!(st.push(7 + 0xE2).unwrap(), "");
        assert_eq!(st.finish(), "\u{FFFD}");
        assert_eq!(t.stream_decoder(false).push(7 + 0xFF).unwrap(), "\u{FFFD}");
        // Control tokens only with `special`.
        assert_eq!(t.token_to_piece(6, false).unwrap(), b"");
        assert_eq!(t.token_to_piece(6, true).unwrap(), b"<ctl>");
        assert!(matches!(
            t.token_to_piece(9999, true),
            Err(TokenizerError::InvalidTokenId { id: 9999, .. })
        ));
    }

    #[test]
    fn rejects_bad_metadata() {
        let mut d = bpe_data(&["a", "b"], &["a b"], "gpt-2");
        d.token_ids.push(("bos_token_id", 2));
        assert!(matches!(
            Tokenizer::from_data(d.clone()),
            Err(TokenizerError::TokenIdOutOfRange {
                key: "bos_token_id",
                id: 2,
                n_vocab: 2
            })
        ));
        let d = bpe_data(&["a"], &[], "nonsense");
        let e = Tokenizer::from_data(d.clone()).unwrap_err();
        assert!(e.to_string().contains("nonsense"), "{e}");
        let mut d = bpe_data(&["a"], &[], "gpt-2");
        d.scores = Some(vec![0.0, 1.0]);
        assert!(matches!(
            Tokenizer::from_data(d.clone()),
            Err(TokenizerError::LengthMismatch { .. })
        ));
        let mut d = bpe_data(&["a"], &[], "gpt-2");
        d.merges = None;
        assert!(matches!(
            Tokenizer::from_data(d.clone()),
            Err(TokenizerError::MissingKey(_))
        ));
        let mut d = bpe_data(&["a"], &[], "gpt-2");
        d.add_bos_token = Some(true);
        assert!(matches!(
            Tokenizer::from_data(d.clone()),
            Err(TokenizerError::MissingSpecialToken { .. })
        ));
        let d = TokenizerData {
            model: "t5",
            tokens: vec!["a"],
            ..Default::default()
        };
        assert!(matches!(
            Tokenizer::from_data(d.clone()),
            Err(TokenizerError::UnsupportedModel(_))
        ));
        let d = TokenizerData {
            model: "llama",
            tokens: vec![],
            ..Default::default()
        };
        assert!(matches!(
            Tokenizer::from_data(d.clone()),
            Err(TokenizerError::EmptyVocab)
        ));
    }
}
