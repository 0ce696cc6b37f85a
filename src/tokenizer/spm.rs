//! SentencePiece BPE (`tokenizer.ggml.model = "llama"`), as llama.cpp's `llm_tokenizer_spm`:
//! start from UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is the
//! vocabulary token with the highest score (leftmost on ties), and spell any character that
//! is not a token with byte tokens `<0xXX>`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::TokenizerError;
use super::vocab::Vocab;

const NONE: u32 = u32::MAX;

/// Length of the UTF-8 sequence a lead byte starts (llama.cpp's `unicode_len_utf8`).
#[inline]
pub(crate) fn utf8_len(lead: u8) -> usize {
    const LOOKUP: [u8; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    LOOKUP[(lead >> 4) as usize] as usize
}

#[derive(Clone, Copy, Debug)]
struct Sym {
    /// Byte offset in the text.
    start: u32,
    /// Byte length (0 once merged into the left neighbour).
    len: u32,
    prev: u32,
    next: u32,
}

#[derive(Clone, Copy, Debug)]
struct Bigram {
    score: f32,
    left: u32,
    right: u32,
    /// Byte length of the merged text (detects stale entries).
    size: u32,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    /// Max-heap order: higher score first, then the lower left index.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.left.cmp(&self.left))
    }
}

/// Reusable buffers for [`encode_text`].
#[derive(Default, Debug)]
pub(crate) struct SpmScratch {
    syms: Vec<Sym>,
    heap: BinaryHeap<Bigram>,
    /// The text with spaces escaped to U+2581.
    text: Vec<u8>,
}

/// Escapes `text` (with an optional leading space) into the scratch buffer: ' ' -> "▁".
pub(crate) fn escape_into(s: &mut SpmScratch, prefix_space: bool, text: &[u8]) {
    s.text.clear();
    s.text.reserve(text.len() + text.len() / 4 + 3);
    if prefix_space {
        s.text.extend_from_slice(ESCAPED_SPACE);
    }
    for &b in text {
        if b == b' ' {
            s.text.extend_from_slice(ESCAPED_SPACE);
        } else {
            s.text.push(b);
        }
    }
}

/// The escaped text of the last [`escape_into`].
pub(crate) fn take_text(s: &mut SpmScratch) -> Vec<u8> {
    std::mem::take(&mut s.text)
}

/// Gives the buffer back for reuse.
pub(crate) fn return_text(s: &mut SpmScratch, text: Vec<u8>) {
    s.text = text;
}

/// The escape character U+2581 in UTF-8.
pub(crate) const ESCAPED_SPACE: &[u8] = "\u{2581}".as_bytes();

/// Where the escaped text may be cut into independently tokenized words: before each `▁`,
/// unless a token with a `▁` after its first byte (a "crosser", e.g. `▁▁` or `>▁</`) occurs
/// across that point. Merged symbols are always vocabulary tokens, so a symbol can only span a
/// cut if such a token occurs there; elsewhere the merges of two words never interact, and the
/// score-then-position order within each word is unchanged.
pub(crate) fn word_ends(text: &[u8], crossers: &[(Vec<u8>, Vec<usize>)], out: &mut Vec<usize>) {
    out.clear();
    let mut i = 1;
    while i + ESCAPED_SPACE.len() <= text.len() {
        if text[i] == ESCAPED_SPACE[0] && text[i..].starts_with(ESCAPED_SPACE) {
            let crossed = crossers.iter().any(|(c, inner)| {
                inner.iter().any(|&k| {
                    i >= k
                        && text.len() - (i - k) >= c.len()
                        && text[i - k..i - k + c.len()] == c[..]
                })
            });
            if !crossed {
                out.push(i);
            }
            i += ESCAPED_SPACE.len();
        } else {
            i += 1;
        }
    }
    out.push(text.len());
}

/// Tokenizes escaped text, appending ids to `out`. `byte_tokens[b]` is the token for byte `b`
/// (llama.cpp's `byte_to_token`: `<0xXX>`, else the one-byte text); `unk` is used when a byte
/// has neither (llama.cpp throws there).
pub(crate) fn encode_text(
    vocab: &Vocab,
    byte_tokens: &[u32; 256],
    unk: Option<u32>,
    text: &[u8],
    s: &mut SpmScratch,
    out: &mut Vec<u32>,
) -> Result<(), TokenizerError> {
    s.syms.clear();
    s.heap.clear();
    let mut offs = 0usize;
    while offs < text.len() {
        let len = utf8_len(text[offs]).min(text.len() - offs);
        let i = s.syms.len() as u32;
        s.syms.push(Sym {
            start: offs as u32,
            len: len as u32,
            prev: if i == 0 { NONE } else { i - 1 },
            next: if offs + len == text.len() {
                NONE
            } else {
                i + 1
            },
        });
        offs += len;
    }
    let try_add = |syms: &[Sym], heap: &mut BinaryHeap<Bigram>, left: u32, right: u32| {
        if left == NONE || right == NONE {
            return;
        }
        let (l, r) = (syms[left as usize], syms[right as usize]);
        let size = l.len + r.len;
        let piece = &text[l.start as usize..(l.start + size) as usize];
        if let Some(id) = vocab.find(piece) {
            heap.push(Bigram {
                score: vocab.scores[id as usize],
                left,
                right,
                size,
            });
        }
    };
    for i in 1..s.syms.len() as u32 {
        try_add(&s.syms, &mut s.heap, i - 1, i);
    }
    while let Some(b) = s.heap.pop() {
        let (l, r) = (s.syms[b.left as usize], s.syms[b.right as usize]);
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
            continue;
        }
        s.syms[b.left as usize].len += r.len;
        s.syms[b.right as usize].len = 0;
        s.syms[b.left as usize].next = r.next;
        if r.next != NONE {
            s.syms[r.next as usize].prev = b.left;
        }
        try_add(&s.syms, &mut s.heap, l.prev, b.left);
        try_add(&s.syms, &mut s.heap, b.left, r.next);
    }
    if s.syms.is_empty() {
        return Ok(());
    }
    let mut i = 0u32;
    while i != NONE {
        let sym = s.syms[i as usize];
        let piece = &text[sym.start as usize..(sym.start + sym.len) as usize];
        match vocab.find(piece) {
            Some(id) => out.push(id),
            None => {
                for &byte in piece {
                    let t = byte_tokens[byte as usize];
                    if t != NONE {
                        out.push(t);
                    } else if let Some(u) = unk {
                        out.push(u);
                    } else {
                        return Err(TokenizerError::NoByteToken(byte));
                    }
                }
            }
        }
        i = sym.next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_by_score_and_falls_back_to_bytes() {
        let toks = [
            "<unk>",
            "\u{2581}",
            "a",
            "b",
            "ab",
            "\u{2581}a",
            "\u{2581}ab",
            "<0x63>",
        ];
        let v = Vocab::new(
            &toks,
            Some(vec![0.0, -1.0, -1.0, -1.0, -2.0, -3.0, -1.5, 0.0]),
            None,
            64,
        )
        .unwrap();
        let mut bt = [NONE; 256];
        bt[0x63] = 7;
        let mut s = SpmScratch::default();
        let mut enc = |t: &str| {
            let mut out = vec![];
            escape_into(&mut s, false, t.as_bytes());
            let text = take_text(&mut s);
            let r = encode_text(&v, &bt, None, &text, &mut s, &mut out).map(|_| out);
            return_text(&mut s, text);
            r
        };
        // "▁ab": pairs "▁a" (-3) and "ab" (-2): "ab" first, then "▁ab" (-1.5).
        assert_eq!(enc(" ab").unwrap(), vec![6]);
        assert_eq!(enc("abc").unwrap(), vec![4, 7]);
        assert!(matches!(enc("d"), Err(TokenizerError::NoByteToken(b'd'))));
    }
}

#[cfg(test)]
mod word_tests {
    use super::*;

    #[test]
    fn words_split_before_spaces_unless_a_token_crosses() {
        let t = "a\u{2581}b\u{2581}\u{2581}c".as_bytes();
        let mut ends = vec![];
        word_ends(t, &[], &mut ends);
        assert_eq!(ends, vec![1, 5, 8, t.len()]);
        let cross = "\u{2581}\u{2581}".as_bytes().to_vec();
        word_ends(t, &[(cross, vec![3])], &mut ends);
        assert_eq!(ends, vec![1, 5, t.len()]);
    }
}
