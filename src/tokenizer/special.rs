//! Special-token partition: finds control and user-defined token texts in the input and cuts it
//! into raw-text fragments and single token ids, with the result of llama.cpp's
//! `tokenizer_st_partition`.
//!
//! llama.cpp takes the special tokens longest text first (ties: here the lower id) and, for each,
//! splits every remaining text fragment at its leftmost non-overlapping occurrences. Here the same
//! outcome is computed from the list of all occurrences (found with a trie in one pass): taken in
//! (priority, position) order, an occurrence is accepted when it lies entirely in text no earlier
//! occurrence took. Because earlier occurrences are never shorter, checking its first and last
//! byte suffices. Very long chains of nested occurrences (e.g. megabytes of spaces against
//! space-run tokens) switch to llama.cpp's own per-token scan, which needs no list.

use super::vocab::{TokenAttr, U64Map, Vocab};

const NONE: u32 = u32::MAX;

/// A piece of the partitioned input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// Raw text: byte range of the input.
    Text(u32, u32),
    /// A special token matched in the input.
    Token(u32),
}

/// The special tokens of a vocabulary and a trie over their texts.
#[derive(Clone, Debug)]
pub(crate) struct SpecialMatcher {
    /// Special token ids in priority order: longest text first, then lowest id.
    order: Vec<u32>,
    /// Trie edges: `(node << 8 | byte) -> child`; node 0 is the root.
    edges: U64Map,
    /// Priority index of the token ending at each node (`NONE`: none).
    terminal: Vec<u32>,
    /// Bytes that start some special token.
    first: [bool; 256],
}

/// Reusable buffers for the partition.
#[derive(Default, Debug)]
pub(crate) struct PartitionScratch {
    /// `(priority << 32 | position)` of every occurrence.
    occ: Vec<u64>,
    /// Per input byte: 0 free, 1 taken by a token, 2 deleted (stripped white space).
    state: Vec<u8>,
    /// Accepted tokens `(start, end, id)`.
    accepted: Vec<(u32, u32, u32)>,
}

/// C `isspace` in the "C" locale.
#[inline]
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

impl SpecialMatcher {
    /// Collects the tokens with a control, user-defined or unknown attribute.
    pub(crate) fn new(vocab: &Vocab) -> SpecialMatcher {
        let mut order: Vec<u32> = (0..vocab.len() as u32)
            .filter(|&id| {
                vocab
                    .attr(id)
                    .has(TokenAttr::CONTROL | TokenAttr::USER_DEFINED | TokenAttr::UNKNOWN)
            })
            .collect();
        order.sort_by(|&a, &b| {
            vocab
                .text(b)
                .len()
                .cmp(&vocab.text(a).len())
                .then(a.cmp(&b))
        });
        let total: usize = order.iter().map(|&id| vocab.text(id).len()).sum();
        let mut edges = U64Map::with_capacity(total);
        let mut terminal = vec![NONE];
        let mut first = [false; 256];
        for (prio, &id) in order.iter().enumerate() {
            let text = vocab.text(id);
            first[text[0] as usize] = true;
            let mut node = 0u64;
            for &b in text {
                let next = terminal.len() as u64;
                let child = edges.insert_first(node << 8 | b as u64, next);
                if child == next {
                    terminal.push(NONE);
                }
                node = child;
            }
            terminal[node as usize] = prio as u32;
        }
        SpecialMatcher {
            order,
            edges,
            terminal,
            first,
        }
    }

    /// Number of special tokens.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    fn takes(&self, vocab: &Vocab, prio: u32, parse_special: bool) -> bool {
        // Control and unknown tokens only with parse_special; user-defined ones always.
        parse_special
            || !vocab
                .attr(self.order[prio as usize])
                .has(TokenAttr::CONTROL | TokenAttr::UNKNOWN)
    }

    /// Cuts `text` into fragments.
    pub(crate) fn partition(
        &self,
        vocab: &Vocab,
        text: &[u8],
        parse_special: bool,
        s: &mut PartitionScratch,
        out: &mut Vec<Fragment>,
    ) {
        out.clear();
        if text.is_empty() {
            return;
        }
        s.occ.clear();
        // Budget for the occurrence list before switching to the per-token scan.
        let budget = 8 * text.len() + 4096;
        let mut overflow = false;
        'scan: for p in 0..text.len() {
            if !self.first[text[p] as usize] {
                continue;
            }
            let mut node = 0u64;
            for &b in &text[p..] {
                match self.edges.get(node << 8 | b as u64) {
                    Some(c) => node = c,
                    None => break,
                }
                let prio = self.terminal[node as usize];
                if prio != NONE && self.takes(vocab, prio, parse_special) {
                    if s.occ.len() >= budget {
                        overflow = true;
                        break 'scan;
                    }
                    s.occ.push((prio as u64) << 32 | p as u64);
                }
            }
        }
        if s.occ.is_empty() {
            out.push(Fragment::Text(0, text.len() as u32));
            return;
        }
        s.state.clear();
        s.state.resize(text.len(), 0);
        s.accepted.clear();
        if overflow {
            self.scan_per_token(vocab, text, parse_special, s);
        } else {
            s.occ.sort_unstable();
            for i in 0..s.occ.len() {
                let o = s.occ[i];
                let (prio, p) = ((o >> 32) as u32, (o & 0xFFFF_FFFF) as usize);
                let id = self.order[prio as usize];
                let e = p + vocab.text(id).len();
                if s.state[p] == 0 && s.state[e - 1] == 0 {
                    accept(vocab, text, &mut s.state, &mut s.accepted, id, p, e);
                }
            }
        }
        s.accepted.sort_unstable();
        let mut acc = s.accepted.iter().peekable();
        let mut i = 0;
        while i < text.len() {
            match s.state[i] {
                0 => {
                    let mut j = i;
                    while j < text.len() && s.state[j] == 0 {
                        j += 1;
                    }
                    out.push(Fragment::Text(i as u32, j as u32));
                    i = j;
                }
                2 => i += 1,
                _ => match acc.next() {
                    Some(&(st, e, id)) if st as usize == i => {
                        out.push(Fragment::Token(id));
                        i = e as usize;
                    }
                    // Unreachable: every taken byte belongs to an accepted token starting at or
                    // before it, and tokens are visited in order.
                    _ => i += 1,
                },
            }
        }
    }

    /// llama.cpp's algorithm: each special token in priority order, leftmost non-overlapping
    /// occurrences in the free text. Used when the occurrence list would be too long.
    fn scan_per_token(
        &self,
        vocab: &Vocab,
        text: &[u8],
        parse_special: bool,
        s: &mut PartitionScratch,
    ) {
        // Which priorities occur at all (trie pass without storing positions).
        let mut present = vec![false; self.order.len()];
        for p in 0..text.len() {
            if !self.first[text[p] as usize] {
                continue;
            }
            let mut node = 0u64;
            for &b in &text[p..] {
                match self.edges.get(node << 8 | b as u64) {
                    Some(c) => node = c,
                    None => break,
                }
                let prio = self.terminal[node as usize];
                if prio != NONE {
                    present[prio as usize] = true;
                }
            }
        }
        for (prio, _) in present.iter().enumerate().filter(|(_, p)| **p) {
            if !self.takes(vocab, prio as u32, parse_special) {
                continue;
            }
            let id = self.order[prio];
            let tok = vocab.text(id);
            let mut p = 0;
            while p + tok.len() <= text.len() {
                let e = p + tok.len();
                if s.state[p] == 0 && s.state[e - 1] == 0 && &text[p..e] == tok {
                    accept(vocab, text, &mut s.state, &mut s.accepted, id, p, e);
                    p = e;
                } else {
                    p += 1;
                }
            }
        }
    }
}

/// Marks `[p, e)` as token `id` and strips white space around it per its attributes.
fn accept(
    vocab: &Vocab,
    text: &[u8],
    state: &mut [u8],
    accepted: &mut Vec<(u32, u32, u32)>,
    id: u32,
    p: usize,
    e: usize,
) {
    state[p..e].fill(1);
    accepted.push((p as u32, e as u32, id));
    let attr = vocab.attr(id);
    if attr.has(TokenAttr::LSTRIP) {
        let mut i = p;
        while i > 0 && state[i - 1] == 0 && is_c_space(text[i - 1]) {
            state[i - 1] = 2;
            i -= 1;
        }
    }
    if attr.has(TokenAttr::RSTRIP) {
        let mut i = e;
        while i < text.len() && state[i] == 0 && is_c_space(text[i]) {
            state[i] = 2;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(tokens: &[(&str, i32)]) -> Vocab {
        let types: Vec<i32> = tokens.iter().map(|t| t.1).collect();
        Vocab::new(
            &tokens.iter().map(|t| t.0).collect::<Vec<_>>(),
            None,
            Some(&types),
            64,
        )
        .unwrap()
    }

    fn run(m: &SpecialMatcher, v: &Vocab, text: &str, parse: bool) -> Vec<Fragment> {
        let mut s = PartitionScratch::default();
        let mut out = vec![];
        m.partition(v, text.as_bytes(), parse, &mut s, &mut out);
        out
    }

    #[test]
    fn longest_token_first_then_leftmost() {
        // 0 normal, 1 "<a>" control, 2 "  " user-defined, 3 "   " user-defined, 4 "<a>x" control
        let v = vocab(&[("x", 1), ("<a>", 3), ("  ", 4), ("   ", 4), ("<a>x", 3)]);
        let m = SpecialMatcher::new(&v);
        use Fragment::*;
        assert_eq!(
            run(&m, &v, "q<a>x<a>", true),
            vec![Text(0, 1), Token(4), Token(1)]
        );
        assert_eq!(run(&m, &v, "q<a>x<a>", false), vec![Text(0, 8)]);
        // 5 spaces: the 3-space token first, then 2.
        assert_eq!(
            run(&m, &v, "a     b", false),
            vec![Text(0, 1), Token(3), Token(2), Text(6, 7)]
        );
        assert_eq!(run(&m, &v, "    ", false), vec![Token(3), Text(3, 4)]);
        assert_eq!(run(&m, &v, "", true), vec![]);
    }

    #[test]
    fn long_chains_use_the_per_token_scan_with_the_same_result() {
        let v = vocab(&[("x", 1), ("  ", 4), ("   ", 4), ("    ", 4), ("x  ", 4)]);
        let m = SpecialMatcher::new(&v);
        let text: String = (0..5000)
            .map(|i| if i % 97 == 3 { 'x' } else { ' ' })
            .collect();
        let fast = run(&m, &v, &text, false);
        // Force the fallback through a tiny budget: emulate by calling it directly.
        let mut s = PartitionScratch {
            state: vec![0; text.len()],
            ..Default::default()
        };
        m.scan_per_token(&v, text.as_bytes(), false, &mut s);
        let mut expected = s.accepted.clone();
        expected.sort_unstable();
        let got: Vec<u32> = fast
            .iter()
            .filter_map(|f| {
                if let Fragment::Token(t) = f {
                    Some(*t)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(got, expected.iter().map(|a| a.2).collect::<Vec<_>>());
    }
}
