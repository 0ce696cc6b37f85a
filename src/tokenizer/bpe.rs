//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`): GPT-2's byte-to-unicode mapping and merges by
//! rank, as llama.cpp's `llm_tokenizer_bpe_session`.
//!
//! Merges work on interned symbols: every text a symbol can take (the 256 byte characters and
//! both sides and the result of every merge) gets a dense id once at load time, so a merge
//! lookup is one probe of a `(left, right) -> (rank, result)` table, with no string building.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::TokenizerError;
use super::vocab::{StringTable, U64Map, Vocab};

const NONE: u32 = u32::MAX;

/// GPT-2's printable stand-in for each byte: bytes `!`..`~`, `¡`..`¬` and `®`..`ÿ` map to the
/// code point of the same number, the other 68 bytes to U+0100.. in order.
pub(crate) const fn byte_to_unicode(b: u8) -> u32 {
    let b = b as u32;
    if (0x21 <= b && b <= 0x7E) || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
        return b;
    }
    // Count the unmapped bytes below `b`.
    let mut n = 0;
    let mut c = 0;
    while c < b {
        if !((0x21 <= c && c <= 0x7E) || (0xA1 <= c && c <= 0xAC) || (0xAE <= c && c <= 0xFF)) {
            n += 1;
        }
        c += 1;
    }
    256 + n
}

/// Inverse of [`byte_to_unicode`].
pub(crate) fn unicode_to_byte(cp: u32) -> Option<u8> {
    static TABLE: [u16; 324] = {
        let mut t = [u16::MAX; 324];
        let mut b = 0;
        while b < 256 {
            t[byte_to_unicode(b as u8) as usize] = b as u16;
            b += 1;
        }
        t
    };
    match TABLE.get(cp as usize) {
        Some(&v) if v != u16::MAX => Some(v as u8),
        _ => None,
    }
}

/// UTF-8 of [`byte_to_unicode`]`(b)` appended to `out`.
pub(crate) fn push_byte_char(out: &mut Vec<u8>, b: u8) {
    let c = char::from_u32(byte_to_unicode(b)).unwrap_or('\u{FFFD}');
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// The merge table of a BPE vocabulary.
#[derive(Clone, Debug)]
pub(crate) struct BpeModel {
    /// Interned symbol texts (in the byte-encoded alphabet).
    syms: StringTable,
    /// Symbol of each input byte.
    byte_sym: [u32; 256],
    /// `(left << 32 | right) -> (rank << 32 | merged)`.
    merges: U64Map,
    /// Token id of each symbol (`NONE` if its text is not a token).
    sym_token: Vec<u32>,
}

impl BpeModel {
    /// Parses `tokenizer.ggml.merges` ("left right" per entry, rank = index) against `vocab`.
    pub(crate) fn new<'a>(
        vocab: &Vocab,
        merges: impl ExactSizeIterator<Item = &'a str>,
    ) -> Result<BpeModel, TokenizerError> {
        let n = merges.len();
        let mut syms = StringTable::with_capacity(256 + 2 * n, 16 * n);
        let mut byte_sym = [0u32; 256];
        let mut buf = Vec::with_capacity(64);
        for b in 0..=255u8 {
            buf.clear();
            push_byte_char(&mut buf, b);
            byte_sym[b as usize] = syms.intern(&buf)?.0;
        }
        let mut table = U64Map::with_capacity(n);
        for (rank, m) in merges.enumerate() {
            // llama.cpp splits at the first space after the first byte; an entry without one
            // becomes the pair ("", ""), which never matches.
            let bytes = m.as_bytes();
            let Some(pos) = bytes.iter().skip(1).position(|&c| c == b' ').map(|p| p + 1) else {
                continue;
            };
            let (l, r) = (&bytes[..pos], &bytes[pos + 1..]);
            if r.is_empty() {
                continue;
            }
            let li = syms.intern(l)?.0;
            let ri = syms.intern(r)?.0;
            buf.clear();
            buf.extend_from_slice(l);
            buf.extend_from_slice(r);
            let mi = syms.intern(&buf)?.0;
            table.insert_first(
                (li as u64) << 32 | ri as u64,
                (rank as u64) << 32 | mi as u64,
            );
        }
        let sym_token = (0..syms.len() as u32)
            .map(|s| vocab.find(syms.get(s)).unwrap_or(NONE))
            .collect();
        Ok(BpeModel {
            syms,
            byte_sym,
            merges: table,
            sym_token,
        })
    }

    /// Encodes one pre-token (raw bytes) and appends its token ids.
    pub(crate) fn encode_word(
        &self,
        vocab: &Vocab,
        word: &[u8],
        ignore_merges: bool,
        out: &mut Vec<u32>,
        s: &mut BpeScratch,
    ) {
        if word.is_empty() {
            return;
        }
        if ignore_merges || word.len() == 1 {
            s.text.clear();
            for &b in word {
                push_byte_char(&mut s.text, b);
            }
            if let Some(t) = vocab.find(&s.text) {
                out.push(t);
                return;
            }
        }
        if word.len() <= SHORT_WORD {
            self.merge_short(word, s);
            for i in 0..s.short.len() {
                self.emit(vocab, s.short[i], out);
            }
            return;
        }
        // Symbols: one per byte, doubly linked.
        s.syms.clear();
        s.heap.clear();
        let n = word.len();
        for (i, &b) in word.iter().enumerate() {
            s.syms.push(Sym {
                sym: self.byte_sym[b as usize],
                prev: if i == 0 { NONE } else { i as u32 - 1 },
                next: if i + 1 == n { NONE } else { i as u32 + 1 },
            });
        }
        for i in 1..n {
            self.push_pair(s, i as u32 - 1, i as u32);
        }
        while let Some(Reverse((_rank, left, lsym, right, rsym, merged))) = s.heap.pop() {
            let (l, r) = (&s.syms[left as usize], &s.syms[right as usize]);
            // Stale: one side merged away or grew since the pair was queued.
            if l.sym != lsym || r.sym != rsym || l.next != right {
                continue;
            }
            let next = r.next;
            s.syms[right as usize].sym = NONE;
            s.syms[left as usize].sym = merged;
            s.syms[left as usize].next = next;
            if next != NONE {
                s.syms[next as usize].prev = left;
            }
            let prev = s.syms[left as usize].prev;
            if prev != NONE {
                self.push_pair(s, prev, left);
            }
            if next != NONE {
                self.push_pair(s, left, next);
            }
        }
        let mut i = 0;
        while i != NONE {
            self.emit(vocab, s.syms[i as usize].sym, out);
            i = s.syms[i as usize].next;
        }
    }

    /// Appends the token(s) of a final symbol.
    #[inline]
    fn emit(&self, vocab: &Vocab, sym: u32, out: &mut Vec<u32>) {
        let t = self.sym_token[sym as usize];
        if t != NONE {
            out.push(t);
        } else {
            // llama.cpp looks each byte of the symbol's text up as a one-byte token.
            for &b in self.syms.get(sym) {
                if let Some(t) = vocab.find(&[b]) {
                    out.push(t);
                }
            }
        }
    }

    /// The merge of two adjacent symbols: `(rank, merged)`, rank `NONE` if there is none.
    #[inline]
    fn pair(&self, l: u32, r: u32) -> (u32, u32) {
        match self.merges.get((l as u64) << 32 | r as u64) {
            Some(v) => ((v >> 32) as u32, v as u32),
            None => (NONE, NONE),
        }
    }

    /// Merges a short word in `s.short` by rescanning the pair ranks: the same result as the
    /// queue (lowest rank first, leftmost on ties), with less bookkeeping.
    fn merge_short(&self, word: &[u8], s: &mut BpeScratch) {
        s.short.clear();
        s.short
            .extend(word.iter().map(|&b| self.byte_sym[b as usize]));
        s.pairs.clear();
        for i in 1..s.short.len() {
            s.pairs.push(self.pair(s.short[i - 1], s.short[i]));
        }
        loop {
            let mut best = NONE;
            let mut at = 0;
            for (i, &(rank, _)) in s.pairs.iter().enumerate() {
                if rank < best {
                    best = rank;
                    at = i;
                }
            }
            if best == NONE {
                return;
            }
            s.short[at] = s.pairs[at].1;
            s.short.remove(at + 1);
            s.pairs.remove(at);
            if at > 0 {
                s.pairs[at - 1] = self.pair(s.short[at - 1], s.short[at]);
            }
            if at < s.pairs.len() {
                s.pairs[at] = self.pair(s.short[at], s.short[at + 1]);
            }
        }
    }

    #[inline]
    fn push_pair(&self, s: &mut BpeScratch, left: u32, right: u32) {
        let (lsym, rsym) = (s.syms[left as usize].sym, s.syms[right as usize].sym);
        if let Some(v) = self.merges.get((lsym as u64) << 32 | rsym as u64) {
            s.heap.push(Reverse((
                (v >> 32) as u32,
                left,
                lsym,
                right,
                rsym,
                v as u32,
            )));
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Sym {
    /// Interned text (`NONE` once merged into its left neighbour).
    sym: u32,
    prev: u32,
    next: u32,
}

/// Words up to this many bytes merge by rescanning ([`BpeModel::merge_short`]); longer ones use
/// the queue (no quadratic cost on hostile input).
const SHORT_WORD: usize = 32;

/// A queued merge: `(rank, left, left sym, right, right sym, merged sym)`.
type Candidate = (u32, u32, u32, u32, u32, u32);

/// Reusable buffers for [`BpeModel::encode_word`].
#[derive(Default, Debug)]
pub(crate) struct BpeScratch {
    syms: Vec<Sym>,
    /// Min-heap of `(rank, left, left sym, right, right sym, merged sym)`: lowest rank first,
    /// then leftmost, as llama.cpp's `llm_bigram_bpe::comparator`.
    heap: BinaryHeap<Reverse<Candidate>>,
    /// Byte-encoded word.
    text: Vec<u8>,
    /// Short path: current symbols.
    short: Vec<u32>,
    /// Short path: `(rank, merged)` of each adjacent pair.
    pairs: Vec<(u32, u32)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_mapping_matches_gpt2() {
        assert_eq!(byte_to_unicode(b'a'), 'a' as u32);
        assert_eq!(byte_to_unicode(b' '), 0x120); // 'Ġ'
        assert_eq!(byte_to_unicode(b'\n'), 0x10A); // 'Ċ'
        assert_eq!(byte_to_unicode(0), 0x100);
        assert_eq!(byte_to_unicode(0xAD), 0x143);
        for b in 0..=255u8 {
            assert_eq!(unicode_to_byte(byte_to_unicode(b)), Some(b));
        }
        assert_eq!(unicode_to_byte(0x20), None);
        assert_eq!(unicode_to_byte(0x144), None);
    }

    fn vocab(tokens: &[&str]) -> Vocab {
        Vocab::new(tokens, None, None, 64).unwrap()
    }

    #[test]
    fn merges_by_rank_leftmost_first() {
        let v = vocab(&["a", "b", "c", "ab", "bc", "abc", "aa", "aaa"]);
        let m = BpeModel::new(&v, ["b c", "a b", "a bc", "a a", "aa a"].into_iter()).unwrap();
        let mut s = BpeScratch::default();
        let enc = |w: &str, s: &mut BpeScratch| {
            let mut o = vec![];
            m.encode_word(&v, w.as_bytes(), false, &mut o, s);
            o
        };
        assert_eq!(enc("abc", &mut s), vec![5]); // b c first, then a bc
        assert_eq!(enc("ab", &mut s), vec![3]);
        assert_eq!(enc("aaa", &mut s), vec![7]); // (a a) leftmost, then (aa a)
        assert_eq!(enc("aaaa", &mut s), vec![6, 6]);
        assert_eq!(enc("cab", &mut s), vec![2, 3]);
        // 'x' is no token: dropped, like llama.cpp.
        assert_eq!(enc("axb", &mut s), vec![0, 1]);
        // Long words take the queue: "abc" + "aa" + "ab" per repetition, as the short path gives.
        assert_eq!(enc("abcaaab", &mut s), vec![5, 6, 3]);
        let long = "abcaaab".repeat(10);
        let want: Vec<u32> = (0..10).flat_map(|_| [5, 6, 3]).collect();
        assert_eq!(enc(&long, &mut s), want);
    }
}
