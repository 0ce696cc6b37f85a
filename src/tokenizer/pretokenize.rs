//! Byte-level BPE pre-tokenizers: the word splitting llama.cpp applies before the BPE merges,
//! selected by `tokenizer.ggml.pre`.
//!
//! llama.cpp describes each pre-tokenizer as a list of regular expressions applied one after the
//! other: each expression splits every piece left by the previous one into its matches and the
//! gaps between them (`unicode_regex_split` in llama.cpp's `src/unicode.cpp`). Two expressions
//! (GPT-2's and Llama 3's) it runs with hand-written code; the others through C++ `std::regex`
//! on a "collapsed" copy of the text where each non-ASCII code point is replaced by one byte
//! standing for its category. Here every expression is hand-written, with the exact semantics of
//! those two paths (ECMAScript leftmost match, ordered alternation, greedy backtracking,
//! categories per Unicode 15.1): no regex engine at run time.

use super::TokenizerError;
use super::unicode::{Flags, flags, wide};

/// Character classes used by the simple (`[class]`, `[class]+`, `\s?[class]+`) expressions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// `\p{N}`.
    Number,
    /// `\p{L}`.
    Letter,
    /// `\p{P}`.
    Punct,
    /// `[\p{P}\$\+<=>\^~\|]` (llama.cpp's default pre-tokenizer).
    DefaultPunct,
    /// ``[\p{P}\$\+<=>\^~\|`]`` (Falcon).
    FalconPunct,
    /// `[\r\n]`.
    CrLf,
    /// DeepSeek LLM's cased-letter class `[A-Za-zµÀ-ÖØ-öø-ƺ...]`.
    DeepseekLetter,
    /// DeepSeek LLM's `[!-/:-~！-／：-～‘-‟　-。]`.
    DeepseekPunct,
    /// DeepSeek's `[一-龥ࠀ-一가-퟿]`.
    Cjk,
}

/// One expression of a pre-tokenizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)` (llama.cpp's
    /// hand-written splitter).
    Gpt2,
    /// Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,N}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` with N = `max_digits` (3: Llama 3, 1: Qwen 2).
    Llama3 {
        /// Longest digit group.
        max_digits: u8,
    },
    /// GPT-4o / Tekken: upper-then-lower letter words (`[^\r\n\p{L}\p{N}]?[\p{Lu}..]*[\p{Ll}..]+`
    /// and the converse), optional contractions, `\p{N}{1,N}`, ` ?[^\s\p{L}\p{N}]+[\r\n/]*`, and the
    /// white-space rules of Llama 3.
    Gpt4o {
        /// Whether `(?:'s|'t|...)?` follows a word.
        contractions: bool,
        /// Longest digit group.
        max_digits: u8,
    },
    /// `[class]`: every character of the class is its own piece.
    Single(Class),
    /// `[class]+`.
    Run(Class),
    /// `\s?[class]+`.
    SpaceRun(Class),
    /// `[0-9][0-9][0-9]`.
    Digits3,
    /// `\s+$`.
    TrailingSpace,
}

/// The pre-tokenizer family chosen from `tokenizer.ggml.pre`, with llama.cpp's per-family flags.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PreConfig {
    /// The expressions, in order.
    pub(crate) stages: &'static [Stage],
    /// Emit a whole pre-token as one token when the vocabulary has it (skip the merges).
    pub(crate) ignore_merges: bool,
    /// llama.cpp's `clean_up_tokenization_spaces` for decoding.
    pub(crate) clean_spaces: bool,
    /// Default of `add_bos` before `tokenizer.ggml.add_bos_token` overrides it.
    pub(crate) add_bos: bool,
    /// Default of `add_sep`.
    pub(crate) add_sep: bool,
    /// The family has no BOS by default (ChatGLM 4).
    pub(crate) no_bos: bool,
}

use Class::*;
use Stage::*;

const S_DEFAULT: &[Stage] = &[Run(DefaultPunct), Gpt2, Run(Number), Digits3];
const S_GPT2: &[Stage] = &[Gpt2];
const S_STARCODER: &[Stage] = &[Single(Number), Gpt2];
const S_LLAMA3: &[Stage] = &[Llama3 { max_digits: 3 }];
const S_QWEN2: &[Stage] = &[Llama3 { max_digits: 1 }];
const S_FALCON: &[Stage] = &[Run(FalconPunct), Gpt2, Digits3];
const S_DEEPSEEK_LLM: &[Stage] = &[
    Single(CrLf),
    SpaceRun(DeepseekLetter),
    SpaceRun(DeepseekPunct),
    TrailingSpace,
    Run(Cjk),
    Run(Number),
];
const S_DEEPSEEK_CODER: &[Stage] = &[
    Single(CrLf),
    SpaceRun(Letter),
    SpaceRun(Punct),
    Run(Cjk),
    Single(Number),
];
const S_GPT4O: &[Stage] = &[Gpt4o {
    contractions: true,
    max_digits: 3,
}];
const S_TEKKEN: &[Stage] = &[Gpt4o {
    contractions: false,
    max_digits: 1,
}];

/// Pre-tokenizer names llama.cpp knows but kiln does not implement.
const UNSUPPORTED: &[&str] = &[
    "minicpm5",
    "deepseek-v3",
    "spark2_5",
    "youtu",
    "jais-2",
    "gemma4",
    "granite-embed-multi-311m",
    "sarvam-moe",
    "whitespace",
    "qwen35",
    "poro-chat",
    "viking",
    "bloom",
    "gpt3-finnish",
    "exaone-moe",
    "chameleon",
    "granite-embed-multi-97m",
    "tiny_aya",
    "cohere2moe",
    "superbpe",
    "bailingmoe",
    "bailingmoe2",
    "llada-moe",
    "seed-coder",
    "hunyuan-dense",
    "hy_v4",
    "joyai-llm",
    "kimi-k2",
    "ufakzeka",
    "grok-2",
    "afmoe",
    "laguna",
];

/// The pre-tokenizer for a BPE vocabulary (`None`: the key is missing, llama.cpp then uses
/// `default`).
pub(crate) fn bpe_pre(name: Option<&str>) -> Result<PreConfig, TokenizerError> {
    let base = PreConfig {
        stages: S_DEFAULT,
        ignore_merges: false,
        clean_spaces: true,
        add_bos: false,
        add_sep: false,
        no_bos: false,
    };
    let Some(name) = name else { return Ok(base) };
    let c = |stages: &'static [Stage]| PreConfig { stages, ..base };
    let nc = |stages: &'static [Stage]| PreConfig {
        stages,
        clean_spaces: false,
        ..base
    };
    Ok(match name {
        "default" => base,
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreConfig {
            ignore_merges: true,
            add_bos: true,
            ..c(S_LLAMA3)
        },
        "deepseek-llm" => nc(S_DEEPSEEK_LLM),
        "deepseek-coder" => nc(S_DEEPSEEK_CODER),
        "falcon" => c(S_FALCON),
        // llama.cpp spells it "gpt-2"; "gpt2" is accepted as an alias.
        "mpt" | "gpt-2" | "gpt2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
        | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "olmo" | "jais" | "exaone4" => {
            c(S_GPT2)
        }
        "jina-v1-en" | "jina-v2-code" | "roberta-bpe" => PreConfig {
            add_sep: true,
            ..c(S_GPT2)
        },
        "trillion" | "granite-docling" => nc(S_GPT2),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            c(S_STARCODER)
        }
        "command-r" | "smollm" => nc(S_STARCODER),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open" => {
            nc(S_QWEN2)
        }
        "megrez" | "stablelm2" => c(S_QWEN2),
        "dbrx" | "smaug-bpe" => c(S_LLAMA3),
        "glm4" | "chatglm-bpe" => PreConfig {
            no_bos: true,
            ..c(S_LLAMA3)
        },
        "tekken" => PreConfig {
            ignore_merges: true,
            add_bos: true,
            ..nc(S_TEKKEN)
        },
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => nc(S_GPT4O),
        _ if UNSUPPORTED.contains(&name) => {
            return Err(TokenizerError::UnsupportedPreTokenizer(name.to_owned()));
        }
        _ => return Err(TokenizerError::UnknownPreTokenizer(name.to_owned())),
    })
}

/// Reusable buffers for [`split`].
#[derive(Default, Debug)]
pub(crate) struct SplitScratch {
    /// Code points of the text.
    cps: Vec<u32>,
    /// Flags of each code point.
    flags: Vec<Flags>,
    /// Byte offset of each code point, plus the text length at the end (`cps.len() + 1`).
    offs: Vec<u32>,
    /// Current pieces as code point ranges `[start, end)`.
    a: Vec<(u32, u32)>,
    /// Next pieces.
    b: Vec<(u32, u32)>,
}

/// Splits `text` into pre-tokens; returns their byte ranges (in order, covering the text).
pub(crate) fn split<'s>(stages: &[Stage], text: &str, s: &'s mut SplitScratch) -> &'s [(u32, u32)] {
    s.cps.clear();
    s.flags.clear();
    s.offs.clear();
    for (i, ch) in text.char_indices() {
        s.cps.push(ch as u32);
        s.flags.push(flags(ch as u32));
        s.offs.push(i as u32);
    }
    s.offs.push(text.len() as u32);
    s.a.clear();
    if !s.cps.is_empty() {
        s.a.push((0, s.cps.len() as u32));
    }
    let t = Text {
        cps: &s.cps,
        flags: &s.flags,
    };
    for stage in stages {
        s.b.clear();
        for &(ini, end) in &s.a {
            t.apply(*stage, ini as usize, end as usize, &mut s.b);
        }
        std::mem::swap(&mut s.a, &mut s.b);
    }
    for r in s.a.iter_mut() {
        *r = (s.offs[r.0 as usize], s.offs[r.1 as usize]);
    }
    &s.a
}

/// Collects pieces: `end` closes the piece that started where the previous one ended.
struct Pieces<'o> {
    out: &'o mut Vec<(u32, u32)>,
    prev: usize,
}

impl Pieces<'_> {
    #[inline]
    fn add(&mut self, end: usize) {
        if end > self.prev {
            self.out.push((self.prev as u32, end as u32));
        }
        self.prev = end;
    }
}

const CR: u32 = '\r' as u32;
const LF: u32 = '\n' as u32;
const SPACE: u32 = ' ' as u32;
const APOS: u32 = '\'' as u32;
/// `_get_cpt` outside the piece.
const OUT: u32 = u32::MAX;

#[inline]
fn ascii_lower(c: u32) -> u32 {
    if (b'A' as u32..=b'Z' as u32).contains(&c) {
        c + 32
    } else {
        c
    }
}

/// DeepSeek LLM's cased-letter ranges (inclusive), from llama.cpp's expression.
static DEEPSEEK_LETTER: &[(u32, u32)] = &[
    (0x41, 0x5A),
    (0x61, 0x7A),
    (0xB5, 0xB5),
    (0xC0, 0xD6),
    (0xD8, 0xF6),
    (0xF8, 0x1BA),
    (0x1BC, 0x1BF),
    (0x1C4, 0x293),
    (0x295, 0x2AF),
    (0x370, 0x373),
    (0x376, 0x376),
    (0x377, 0x377),
    (0x37B, 0x37D),
    (0x37F, 0x37F),
    (0x386, 0x386),
    (0x388, 0x38A),
    (0x38C, 0x38C),
    (0x38E, 0x3A1),
    (0x3A3, 0x3F5),
    (0x3F7, 0x481),
    (0x48A, 0x52F),
    (0x531, 0x556),
    (0x10A0, 0x10C5),
    (0x13A0, 0x13F5),
    (0x13F8, 0x13FD),
    (0x1C90, 0x1CBA),
    (0x1CBD, 0x1CBF),
    (0x1D00, 0x1D2B),
    (0x1D6B, 0x1D77),
    (0x1D79, 0x1D9A),
    (0x1E00, 0x1F15),
    (0x1F18, 0x1F1D),
    (0x1F20, 0x1F45),
    (0x1F48, 0x1F4D),
    (0x1F50, 0x1F57),
    (0x1F59, 0x1F59),
    (0x1F5B, 0x1F5B),
    (0x1F5D, 0x1F5D),
    (0x1F5F, 0x1F7D),
    (0x1F80, 0x1FB4),
    (0x1FB6, 0x1FBC),
    (0x1FBE, 0x1FBE),
    (0x1FC2, 0x1FC4),
    (0x1FC6, 0x1FCC),
    (0x1FD0, 0x1FD3),
    (0x1FD6, 0x1FDB),
    (0x1FE0, 0x1FEC),
    (0x1FF2, 0x1FF4),
    (0x1FF6, 0x1FFC),
    (0x2102, 0x2102),
    (0x2107, 0x2107),
    (0x210A, 0x2113),
    (0x2115, 0x2115),
    (0x2119, 0x211D),
    (0x2124, 0x2124),
    (0x2126, 0x2126),
    (0x2128, 0x2128),
    (0x212A, 0x212D),
    (0x212F, 0x2134),
    (0x2139, 0x2139),
    (0x213C, 0x213F),
    (0x2145, 0x2149),
    (0x214E, 0x214E),
    (0x2183, 0x2183),
    (0x2184, 0x2184),
    (0x2C00, 0x2C7B),
    (0x2C7E, 0x2CE4),
    (0x2CEB, 0x2CEE),
    (0x2CF2, 0x2CF2),
    (0x2CF3, 0x2CF3),
    (0xA640, 0xA66D),
    (0xA680, 0xA69B),
    (0xA722, 0xA76F),
    (0xA771, 0xA787),
    (0xA78B, 0xA78E),
    (0xAB70, 0xABBF),
    (0xFB00, 0xFB06),
    (0xFB13, 0xFB17),
    (0xFF21, 0xFF3A),
    (0xFF41, 0xFF5A),
    (0x10400, 0x1044F),
    (0x104B0, 0x104D3),
    (0x104D8, 0x104FB),
    (0x10C80, 0x10CB2),
    (0x10CC0, 0x10CF2),
    (0x118A0, 0x118DF),
    (0x1E900, 0x1E943),
];

fn in_ranges(c: u32, r: &[(u32, u32)]) -> bool {
    r.iter().any(|&(a, b)| (a..=b).contains(&c))
}

impl Class {
    /// Whether code point `cp` (with flags `f`) belongs to the class, seen through the same text
    /// transformation llama.cpp applies for this expression.
    #[inline]
    fn contains(self, cp: u32, f: Flags) -> bool {
        match self {
            Number => f.is_number(),
            Letter => f.is_letter(),
            Punct => f.is_punct(),
            DefaultPunct => {
                f.is_punct() || matches!(cp, 0x24 | 0x2B | 0x3C | 0x3D | 0x3E | 0x5E | 0x7E | 0x7C)
            }
            FalconPunct => {
                f.is_punct()
                    || matches!(
                        cp,
                        0x24 | 0x2B | 0x3C | 0x3D | 0x3E | 0x5E | 0x7E | 0x7C | 0x60
                    )
            }
            CrLf => cp == CR || cp == LF,
            DeepseekLetter => in_ranges(wide(cp), DEEPSEEK_LETTER),
            DeepseekPunct => in_ranges(
                wide(cp),
                &[
                    (0x21, 0x2F),
                    (0x3A, 0x7E),
                    (0xFF01, 0xFF0F),
                    (0xFF1A, 0xFF5E),
                    (0x2018, 0x201F),
                    (0x3000, 0x3002),
                ],
            ),
            Cjk => in_ranges(
                wide(cp),
                &[(0x4E00, 0x9FA5), (0x800, 0x4E00), (0xAC00, 0xD7FF)],
            ),
        }
    }
}

/// The code points of the text being split.
struct Text<'t> {
    cps: &'t [u32],
    flags: &'t [Flags],
}

impl Text<'_> {
    fn apply(&self, stage: Stage, ini: usize, end: usize, out: &mut Vec<(u32, u32)>) {
        match stage {
            Gpt2 => self.gpt2(ini, end, out),
            Llama3 { max_digits } => self.llama3(ini, end, max_digits as usize, out),
            Gpt4o {
                contractions,
                max_digits,
            } => self.regex(ini, end, out, |p| {
                self.gpt4o_at(p, end, contractions, max_digits as usize)
            }),
            Single(c) => self.regex(ini, end, out, |p| {
                c.contains(self.cps[p], self.flags[p]).then_some(p + 1)
            }),
            Run(c) => self.regex(ini, end, out, |p| {
                c.contains(self.cps[p], self.flags[p])
                    .then(|| self.run(p, end, |i| c.contains(self.cps[i], self.flags[i])))
            }),
            SpaceRun(c) => self.regex(ini, end, out, |p| {
                let member = |i: usize| i < end && c.contains(self.cps[i], self.flags[i]);
                let start = if self.flags[p].is_whitespace() && member(p + 1) {
                    p + 1
                } else {
                    p
                };
                member(start).then(|| self.run(start, end, member))
            }),
            Digits3 => self.regex(ini, end, out, |p| {
                (p + 3 <= end && self.cps[p..p + 3].iter().all(|c| (0x30..=0x39).contains(c)))
                    .then_some(p + 3)
            }),
            TrailingSpace => {
                let mut t = end;
                while t > ini && self.flags[t - 1].is_whitespace() {
                    t -= 1;
                }
                self.regex(ini, end, out, |p| (p == t && t < end).then_some(end))
            }
        }
    }

    /// End of the run of `member` code points starting at `p`.
    #[inline]
    fn run(&self, mut p: usize, end: usize, member: impl Fn(usize) -> bool) -> usize {
        while p < end && member(p) {
            p += 1;
        }
        p
    }

    /// `std::regex_iterator` over `[ini, end)`: `m(p)` is the end of the match starting at `p`
    /// (if any). Matches become pieces, and so does each stretch of unmatched text between them.
    #[inline]
    fn regex(
        &self,
        ini: usize,
        end: usize,
        out: &mut Vec<(u32, u32)>,
        m: impl Fn(usize) -> Option<usize>,
    ) {
        let mut gap = ini;
        let mut p = ini;
        while p < end {
            match m(p) {
                Some(e) if e > p => {
                    if p > gap {
                        out.push((gap as u32, p as u32));
                    }
                    out.push((p as u32, e as u32));
                    p = e;
                    gap = e;
                }
                _ => p += 1,
            }
        }
        if gap < end {
            out.push((gap as u32, end as u32));
        }
    }

    /// llama.cpp's `unicode_regex_split_custom_gpt2` on the piece `[ini, end)`.
    fn gpt2(&self, ini: usize, end: usize, out: &mut Vec<(u32, u32)>) {
        let cpt = |p: usize| if p < end { self.cps[p] } else { OUT };
        let fl = |p: usize| if p < end { self.flags[p] } else { Flags::NONE };
        let mut pc = Pieces { out, prev: ini };
        let mut pos = ini;
        while pos < end {
            let cp = self.cps[pos];
            let f = self.flags[pos];
            // 's|'t|'re|'ve|'m|'ll|'d
            if cp == APOS && pos + 1 < end {
                let n = cpt(pos + 1);
                if matches!(n, 0x73 | 0x74 | 0x6D | 0x64) {
                    pos += 2;
                    pc.add(pos);
                    continue;
                }
                if pos + 2 < end {
                    let nn = cpt(pos + 2);
                    if matches!((n, nn), (0x72 | 0x76, 0x65) | (0x6C, 0x6C)) {
                        pos += 3;
                        pc.add(pos);
                        continue;
                    }
                }
            }
            let sp = (cp == SPACE) as usize;
            let f2 = if cp == SPACE { fl(pos + 1) } else { f };
            // <space>?\p{L}+ | <space>?\p{N}+ | <space>?[^\s\p{L}\p{N}]+
            if f2.is_letter() || f2.is_number() || f2.is_other() {
                let same = |g: Flags| {
                    if f2.is_letter() {
                        g.is_letter()
                    } else if f2.is_number() {
                        g.is_number()
                    } else {
                        g.is_other()
                    }
                };
                pos += sp;
                while same(fl(pos)) {
                    pos += 1;
                }
                pc.add(pos);
                continue;
            }
            let mut n_ws = 0;
            while fl(pos + n_ws).is_whitespace() {
                n_ws += 1;
            }
            // \s+(?!\S)
            if n_ws > 1 && cpt(pos + n_ws) != OUT {
                pos += n_ws - 1;
                pc.add(pos);
                continue;
            }
            // \s+
            if n_ws > 0 {
                pos += n_ws;
                pc.add(pos);
                continue;
            }
            pos += 1;
            pc.add(pos);
        }
    }

    /// llama.cpp's `unicode_regex_split_custom_llama3` on `[ini, end)`, digit groups of at most
    /// `max_digits` (1 reproduces the Qwen 2 expression, which llama.cpp runs through `std::regex`).
    fn llama3(&self, ini: usize, end: usize, max_digits: usize, out: &mut Vec<(u32, u32)>) {
        let cpt = |p: usize| if p < end { self.cps[p] } else { OUT };
        let fl = |p: usize| if p < end { self.flags[p] } else { Flags::NONE };
        let mut pc = Pieces { out, prev: ini };
        let mut pos = ini;
        while pos < end {
            let cp = self.cps[pos];
            let f = self.flags[pos];
            // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            if cp == APOS && pos + 1 < end {
                let n = ascii_lower(cpt(pos + 1));
                if matches!(n, 0x73 | 0x74 | 0x6D | 0x64) {
                    pos += 2;
                    pc.add(pos);
                    continue;
                }
                if pos + 2 < end {
                    let nn = ascii_lower(cpt(pos + 2));
                    if matches!((n, nn), (0x72 | 0x76, 0x65) | (0x6C, 0x6C)) {
                        pos += 3;
                        pc.add(pos);
                        continue;
                    }
                }
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(cp == CR || cp == LF || f.is_number())
                && (f.is_letter() || fl(pos + 1).is_letter())
            {
                pos += 1;
                while fl(pos).is_letter() {
                    pos += 1;
                }
                pc.add(pos);
                continue;
            }
            // \p{N}{1,max_digits}
            if f.is_number() {
                let mut start = pos;
                while fl(pos).is_number() {
                    pos += 1;
                    if pos - start >= max_digits {
                        pc.add(pos);
                        start = pos;
                    }
                }
                pc.add(pos);
                continue;
            }
            // <space>?[^\s\p{L}\p{N}]+[\r\n]*
            let f2 = if cp == SPACE { fl(pos + 1) } else { f };
            if !(f2.is_whitespace() || f2.is_letter() || f2.is_number()) && f.is_valid() {
                pos += (cp == SPACE) as usize;
                while fl(pos).is_other() {
                    pos += 1;
                }
                while matches!(cpt(pos), CR | LF) {
                    pos += 1;
                }
                pc.add(pos);
                continue;
            }
            let mut n_ws = 0;
            let mut last_rn = 0;
            while fl(pos + n_ws).is_whitespace() {
                if matches!(cpt(pos + n_ws), CR | LF) {
                    last_rn = pos + n_ws + 1;
                }
                n_ws += 1;
            }
            // \s*[\r\n]+
            if last_rn > 0 {
                pos = last_rn;
                pc.add(pos);
                continue;
            }
            // \s+(?!\S)
            if n_ws > 1 && cpt(pos + n_ws) != OUT {
                pos += n_ws - 1;
                pc.add(pos);
                continue;
            }
            // \s+
            if n_ws > 0 {
                pos += n_ws;
                pc.add(pos);
                continue;
            }
            pos += 1;
            pc.add(pos);
        }
    }

    /// The match of the GPT-4o / Tekken expression starting at `p` (on llama.cpp's collapsed
    /// text: `[^a-z]` / `[^A-Z]` letters are non-ASCII letters plus the other ASCII case).
    fn gpt4o_at(
        &self,
        p: usize,
        end: usize,
        contractions: bool,
        max_digits: usize,
    ) -> Option<usize> {
        let cp = |i: usize| self.cps[i];
        let f = |i: usize| self.flags[i];
        let upper = |i: usize| i < end && f(i).is_letter() && !(0x61..=0x7A).contains(&cp(i));
        let lower = |i: usize| i < end && f(i).is_letter() && !(0x41..=0x5A).contains(&cp(i));
        let prefix = |i: usize| {
            i < end && cp(i) != CR && cp(i) != LF && !f(i).is_letter() && !f(i).is_number()
        };
        let contraction = |e: usize| -> usize {
            if !contractions || e + 1 >= end || cp(e) != APOS {
                return e;
            }
            let n = ascii_lower(cp(e + 1));
            let nn = if e + 2 < end {
                ascii_lower(cp(e + 2))
            } else {
                OUT
            };
            match n {
                0x73 | 0x74 | 0x6D | 0x64 => e + 2,
                0x72 | 0x76 if nn == 0x65 => e + 3,
                0x6C if nn == 0x6C => e + 3,
                _ => e,
            }
        };
        // [^\r\n\p{L}\p{N}]?U*L+C? | [^\r\n\p{L}\p{N}]?U+L*C?
        let q = if prefix(p) { p + 1 } else { p };
        let mut u_end = q;
        while upper(u_end) {
            u_end += 1;
        }
        let mut k = u_end;
        loop {
            if lower(k) {
                let mut e = k;
                while lower(e) {
                    e += 1;
                }
                return Some(contraction(e));
            }
            if k == q {
                break;
            }
            k -= 1;
        }
        if u_end > q {
            let mut e = u_end;
            while lower(e) {
                e += 1;
            }
            return Some(contraction(e));
        }
        // \p{N}{1,max_digits}
        if f(p).is_number() {
            let mut e = p;
            while e < end && f(e).is_number() && e - p < max_digits {
                e += 1;
            }
            return Some(e);
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n/]*'
        let other =
            |i: usize| i < end && !f(i).is_whitespace() && !f(i).is_letter() && !f(i).is_number();
        let s = if cp(p) == SPACE && other(p + 1) {
            p + 1
        } else {
            p
        };
        if other(s) {
            let mut e = s;
            while other(e) {
                e += 1;
            }
            while e < end && matches!(cp(e), CR | LF | 0x2F) {
                e += 1;
            }
            return Some(e);
        }
        if f(p).is_whitespace() {
            let mut n = p;
            let mut last_rn = None;
            while n < end && f(n).is_whitespace() {
                if matches!(cp(n), CR | LF) {
                    last_rn = Some(n + 1);
                }
                n += 1;
            }
            // \s*[\r\n]+
            if let Some(e) = last_rn {
                return Some(e);
            }
            // \s+(?!\S) | \s+
            if n == end || n - p == 1 {
                return Some(n);
            }
            return Some(n - 1);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::unicode::{collapsed, regex_space};

    /// The class tests used here agree with llama.cpp's collapsed-text classes for every code
    /// point of the first three planes.
    #[test]
    fn classes_match_collapsed_regex_classes() {
        for cp in (0..0x30000u32).filter(|&c| char::from_u32(c).is_some()) {
            let f = flags(cp);
            let c = collapsed(cp);
            let ascii_p = matches!(c, 0x21..=0x23 | 0x25..=0x2A | 0x2C..=0x2F | 0x3A..=0x3B | 0x3F..=0x40 | 0x5B..=0x5D | 0x5F | 0x7B | 0x7D);
            assert_eq!(
                Number.contains(cp, f),
                c == 0xD1 || (0x30..=0x39).contains(&c),
                "N {cp:#x}"
            );
            assert_eq!(
                Letter.contains(cp, f),
                c == 0xD2 || (c as u8).is_ascii_alphabetic() && c < 0x80,
                "L {cp:#x}"
            );
            assert_eq!(Punct.contains(cp, f), c == 0xD3 || ascii_p, "P {cp:#x}");
            assert_eq!(f.is_whitespace(), regex_space(c), "\\s {cp:#x}");
            assert_eq!(f.is_whitespace(), regex_space(wide(cp)), "wide \\s {cp:#x}");
        }
    }

    fn pieces(stages: &[Stage], text: &str) -> Vec<String> {
        let mut s = SplitScratch::default();
        split(stages, text, &mut s)
            .iter()
            .map(|&(a, b)| text[a as usize..b as usize].to_owned())
            .collect()
    }

    #[test]
    fn gpt2_and_llama3_splits() {
        assert_eq!(
            pieces(S_GPT2, "Hello world's  12 ab!!\n\n x"),
            [
                "Hello", " world", "'s", " ", " 12", " ab", "!!", "\n\n", " x"
            ]
        );
        assert_eq!(pieces(S_STARCODER, "a 123"), ["a", " ", "1", "2", "3"]);
        assert_eq!(
            pieces(S_LLAMA3, "I'M 12345 ok,\n\n  x "),
            ["I", "'M", " ", "123", "45", " ok", ",\n\n", " ", " x", " "]
        );
        assert_eq!(pieces(S_QWEN2, "ab 12"), ["ab", " ", "1", "2"]);
        assert_eq!(
            pieces(S_DEFAULT, "a+b=12345!"),
            ["a", "+", "b", "=", "123", "45", "!"]
        );
    }

    #[test]
    fn gpt4o_split() {
        assert_eq!(
            pieces(S_GPT4O, "HelloWorld ABC's x1234 ÀbC"),
            ["Hello", "World", " ABC's", " x", "123", "4", " Àb", "C"]
        );
        assert_eq!(
            pieces(S_GPT4O, "a/b\n//\n c"),
            ["a", "/b", "\n", "//\n", " c"]
        );
    }

    #[test]
    fn deepseek_splits() {
        assert_eq!(
            pieces(S_DEEPSEEK_CODER, "ab, 12\n中文"),
            ["ab", ",", " ", "1", "2", "\n", "中文"]
        );
        assert_eq!(
            pieces(S_DEEPSEEK_LLM, "Hi, 12 中文  "),
            ["Hi", ",", " ", "12", " ", "中文", "  "]
        );
    }

    /// llama.cpp's regex-based stages (std::regex semantics) on random texts, as computed by
    /// tests/data/tokenizer/gen_pretokenize.py.
    #[test]
    fn regex_stages_match_reference_splits() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/tokenizer/pretokenize.json"
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut n = 0;
        for c in v["cases"].as_array().unwrap() {
            let stages: &[Stage] = match c["pre"].as_str().unwrap() {
                "qwen2" => S_QWEN2,
                "gpt-4o" => S_GPT4O,
                "tekken" => S_TEKKEN,
                "deepseek-llm" => S_DEEPSEEK_LLM,
                "deepseek-coder" => S_DEEPSEEK_CODER,
                "stage:default_punct" => &[Run(DefaultPunct)],
                "stage:falcon_punct" => &[Run(FalconPunct)],
                "stage:number_run" => &[Run(Number)],
                "stage:number_single" => &[Single(Number)],
                "stage:digits3" => &[Digits3],
                other => panic!("unknown {other}"),
            };
            let text = c["text"].as_str().unwrap();
            let want: Vec<&str> = c["pieces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            assert_eq!(pieces(stages, text), want, "{} {text:?}", c["pre"]);
            n += 1;
        }
        assert_eq!(n, 1500);
    }

    #[test]
    fn unknown_and_unsupported_names() {
        assert!(
            matches!(bpe_pre(Some("no-such")), Err(TokenizerError::UnknownPreTokenizer(n)) if n == "no-such")
        );
        assert!(matches!(
            bpe_pre(Some("chameleon")),
            Err(TokenizerError::UnsupportedPreTokenizer(_))
        ));
        for n in [
            "default",
            "gpt2",
            "gpt-2",
            "llama3",
            "llama-bpe",
            "smollm",
            "qwen2",
            "deepseek-llm",
            "deepseek-coder",
            "starcoder",
            "falcon",
            "mpt",
            "gpt-4o",
        ] {
            assert!(bpe_pre(Some(n)).is_ok(), "{n}");
        }
    }
}
