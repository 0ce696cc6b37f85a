//! Token storage: all token texts in one buffer, a fast text -> id index, scores and attributes.
//!
//! Loading Gemma 3's 262144-token vocabulary is one pass over the strings: no `String` per token,
//! no general-purpose hasher.

use super::TokenizerError;

/// Token attributes, as llama.cpp's `llama_token_attr` bits.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct TokenAttr(pub u16);

impl TokenAttr {
    /// No known type (GGUF type 0 or an unknown number).
    pub const UNDEFINED: TokenAttr = TokenAttr(0);
    /// The unknown token (`<unk>`).
    pub const UNKNOWN: TokenAttr = TokenAttr(1 << 0);
    /// A reserved, unused slot.
    pub const UNUSED: TokenAttr = TokenAttr(1 << 1);
    /// An ordinary text token.
    pub const NORMAL: TokenAttr = TokenAttr(1 << 2);
    /// A control token (`<bos>`, `<|im_end|>` ...): only produced from text with special parsing on.
    pub const CONTROL: TokenAttr = TokenAttr(1 << 3);
    /// A user-defined token: always matched as a whole in the text, even with special parsing off.
    pub const USER_DEFINED: TokenAttr = TokenAttr(1 << 4);
    /// A byte-fallback token (`<0x0A>`).
    pub const BYTE: TokenAttr = TokenAttr(1 << 5);
    /// Strip white space to the left of this token when it is matched in text.
    pub const LSTRIP: TokenAttr = TokenAttr(1 << 7);
    /// Strip white space to the right of this token when it is matched in text.
    pub const RSTRIP: TokenAttr = TokenAttr(1 << 8);

    /// Attribute for a GGUF `tokenizer.ggml.token_type` value (normal=1, unknown=2, control=3,
    /// user_defined=4, unused=5, byte=6; anything else is undefined).
    pub fn from_gguf_type(t: i32) -> TokenAttr {
        match t {
            1 => Self::NORMAL,
            2 => Self::UNKNOWN,
            3 => Self::CONTROL,
            4 => Self::USER_DEFINED,
            5 => Self::UNUSED,
            6 => Self::BYTE,
            _ => Self::UNDEFINED,
        }
    }

    /// Whether any bit of `other` is set.
    #[inline]
    pub fn has(self, other: TokenAttr) -> bool {
        self.0 & other.0 != 0
    }
}

impl std::ops::BitOr for TokenAttr {
    type Output = TokenAttr;
    fn bitor(self, rhs: TokenAttr) -> TokenAttr {
        TokenAttr(self.0 | rhs.0)
    }
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline]
fn read_u64(c: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf[..c.len()].copy_from_slice(c);
    u64::from_le_bytes(buf)
}

/// A fast, non-cryptographic hash of a byte string (FxHash-like, 8 bytes per step).
#[inline]
pub(crate) fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        h = (h.rotate_left(5) ^ read_u64(c)).wrapping_mul(K);
    }
    let r = chunks.remainder();
    if !r.is_empty() {
        h = (h.rotate_left(5) ^ read_u64(r)).wrapping_mul(K);
    }
    h
}

/// Free hash slot.
const EMPTY: u64 = u64::MAX;

/// Slot value: the high 32 bits of the hash (a tag that rules out most mismatches without
/// touching the text; the slot index is its top bits) and the string id.
#[inline]
fn slot_of(h: u64, id: u32) -> u64 {
    (h & TAG_MASK) | id as u64
}

const TAG_MASK: u64 = 0xFFFF_FFFF_0000_0000;

/// Interned byte strings: one contiguous buffer + offsets, with an open-addressing hash index.
/// Ids are dense, in insertion order.
#[derive(Clone, Debug, Default)]
pub(crate) struct StringTable {
    /// All strings back to back.
    bytes: Vec<u8>,
    /// `offsets[i]..offsets[i + 1]` is string `i`; `len() + 1` entries.
    offsets: Vec<u32>,
    /// Hash slots (`EMPTY` or [`slot_of`]); length a power of two.
    slots: Vec<u64>,
    /// `64 - log2(slots.len())`.
    shift: u32,
}

impl StringTable {
    /// An empty table sized for `n` strings of `n_bytes` bytes in total.
    pub(crate) fn with_capacity(n: usize, n_bytes: usize) -> StringTable {
        let mut t = StringTable {
            bytes: Vec::with_capacity(n_bytes),
            offsets: Vec::with_capacity(n + 1),
            slots: Vec::new(),
            shift: 0,
        };
        t.offsets.push(0);
        t.resize_slots((n * 2).max(16).next_power_of_two());
        t
    }

    fn resize_slots(&mut self, cap: usize) {
        self.slots = vec![EMPTY; cap];
        self.shift = 64 - cap.trailing_zeros();
        let mask = cap - 1;
        for id in 0..self.len() as u32 {
            let h = hash_bytes(self.get(id));
            let mut i = (h >> self.shift) as usize;
            while self.slots[i] != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot_of(h, id);
        }
    }

    /// Number of strings.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// String `id` (panics on a bad id: callers only pass ids this table produced).
    #[inline]
    pub(crate) fn get(&self, id: u32) -> &[u8] {
        let i = id as usize;
        &self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Builds a table of distinct strings in one go: ids in order; `Err((first, second))` names
    /// two ids with the same text. Inserts in slot order (sorted hashes), so the index is written
    /// sequentially instead of at random.
    pub(crate) fn from_distinct<'s>(
        strings: impl ExactSizeIterator<Item = &'s [u8]>,
        n_bytes: usize,
    ) -> Result<Result<StringTable, (u32, u32)>, TokenizerError> {
        let n = strings.len();
        if n >= (u32::MAX - 1) as usize {
            return Err(TokenizerError::TooLarge {
                what: "string table",
                size: n as u64,
            });
        }
        let mut t = StringTable::with_capacity(0, n_bytes);
        t.offsets.reserve(n);
        let mut keys = Vec::with_capacity(n);
        for (id, s) in strings.enumerate() {
            let end = t.bytes.len() + s.len();
            if end > u32::MAX as usize {
                return Err(TokenizerError::TooLarge {
                    what: "token text",
                    size: end as u64,
                });
            }
            t.bytes.extend_from_slice(s);
            t.offsets.push(end as u32);
            keys.push(slot_of(hash_bytes(s), id as u32));
        }
        let keys = sort_slots(keys);
        // Equal texts have equal tags: compare within each run of equal tags (runs are tiny).
        let mut run = 0;
        while run < keys.len() {
            let mut end = run + 1;
            while end < keys.len() && keys[end] & TAG_MASK == keys[run] & TAG_MASK {
                end += 1;
            }
            for a in run..end {
                for b in a + 1..end {
                    let (x, y) = (keys[a] as u32, keys[b] as u32);
                    if t.get(x) == t.get(y) {
                        return Ok(Err((x.min(y), x.max(y))));
                    }
                }
            }
            run = end;
        }
        let cap = (n * 2).max(16).next_power_of_two();
        t.slots = vec![EMPTY; cap];
        t.shift = 64 - cap.trailing_zeros();
        let mut next_free = 0usize;
        let mut wrapped = Vec::new();
        for &k in &keys {
            let pos = ((k >> t.shift) as usize).max(next_free);
            if pos >= cap {
                wrapped.push(k);
            } else {
                t.slots[pos] = k;
                next_free = pos + 1;
            }
        }
        let mask = cap - 1;
        for k in wrapped {
            let mut i = 0;
            while t.slots[i] != EMPTY {
                i = (i + 1) & mask;
            }
            t.slots[i] = k;
        }
        Ok(Ok(t))
    }

    /// Ids of the strings that contain `pat` somewhere after their first byte, in order: one
    /// pass over the whole buffer instead of one search per string.
    pub(crate) fn containing_after_start(&self, pat: &[u8]) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        let Some(&first) = pat.first() else {
            return out;
        };
        let mut id = 0usize;
        let mut p = 0usize;
        while let Some(q) = self.bytes[p..].iter().position(|&b| b == first) {
            let at = p + q;
            p = at + 1;
            if !self.bytes[at..].starts_with(pat) {
                continue;
            }
            // The string holding byte `at`: offsets are sorted.
            while self.offsets[id + 1] as usize <= at {
                id += 1;
            }
            let start = self.offsets[id] as usize;
            // Whole match inside the string, not at its start.
            if at > start
                && at + pat.len() <= self.offsets[id + 1] as usize
                && out.last() != Some(&(id as u32))
            {
                out.push(id as u32);
            }
        }
        out
    }

    /// The id of `s`, if present.
    #[inline]
    pub(crate) fn find(&self, s: &[u8]) -> Option<u32> {
        let h = hash_bytes(s);
        let tag = h & TAG_MASK;
        let mask = self.slots.len() - 1;
        let mut i = (h >> self.shift) as usize;
        loop {
            let v = self.slots[i];
            if v == EMPTY {
                return None;
            }
            if v & TAG_MASK == tag && self.get(v as u32) == s {
                return Some(v as u32);
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds `s` unless present; returns `(id, newly_added)`.
    pub(crate) fn intern(&mut self, s: &[u8]) -> Result<(u32, bool), TokenizerError> {
        if (self.len() + 1) * 2 > self.slots.len() {
            self.resize_slots(self.slots.len() * 2);
        }
        let h = hash_bytes(s);
        let tag = h & TAG_MASK;
        let mask = self.slots.len() - 1;
        let mut i = (h >> self.shift) as usize;
        loop {
            let v = self.slots[i];
            if v == EMPTY {
                break;
            }
            if v & TAG_MASK == tag && self.get(v as u32) == s {
                return Ok((v as u32, false));
            }
            i = (i + 1) & mask;
        }
        let end = self.bytes.len() + s.len();
        if end > u32::MAX as usize || self.len() >= (u32::MAX - 1) as usize {
            return Err(TokenizerError::TooLarge {
                what: "token text",
                size: end as u64,
            });
        }
        let id = self.len() as u32;
        self.bytes.extend_from_slice(s);
        self.offsets.push(end as u32);
        self.slots[i] = slot_of(h, id);
        Ok((id, true))
    }
}

/// Sorts slot values: one counting pass on the top 12 bits (4096 buckets), then each small
/// bucket in cache. Much faster than a comparison sort for the 262144 keys of a large vocabulary.
fn sort_slots(keys: Vec<u64>) -> Vec<u64> {
    const BITS: u32 = 12;
    let mut start = vec![0usize; (1 << BITS) + 1];
    for &k in &keys {
        start[(k >> (64 - BITS)) as usize + 1] += 1;
    }
    for b in 1..start.len() {
        start[b] += start[b - 1];
    }
    let mut out = vec![0u64; keys.len()];
    let mut next = start.clone();
    for &k in &keys {
        let b = (k >> (64 - BITS)) as usize;
        out[next[b]] = k;
        next[b] += 1;
    }
    for w in start.windows(2) {
        out[w[0]..w[1]].sort_unstable();
    }
    out
}

/// An open-addressing map from `u64` keys (never `u64::MAX`) to `u64` values.
#[derive(Clone, Debug, Default)]
pub(crate) struct U64Map {
    /// `(key, value)` pairs, key `u64::MAX` = free; length a power of two. Key and value share a
    /// cache line, so a hit costs one memory access.
    slots: Vec<(u64, u64)>,
    len: usize,
    shift: u32,
}

impl U64Map {
    /// An empty map sized for `n` entries.
    pub(crate) fn with_capacity(n: usize) -> U64Map {
        let cap = (n * 2).max(16).next_power_of_two();
        U64Map {
            slots: vec![(u64::MAX, 0); cap],
            len: 0,
            shift: 64 - cap.trailing_zeros(),
        }
    }

    #[inline]
    fn slot(&self, key: u64) -> usize {
        (key.wrapping_add(1).wrapping_mul(K) >> self.shift) as usize
    }

    /// The value for `key`.
    #[inline]
    pub(crate) fn get(&self, key: u64) -> Option<u64> {
        let mask = self.slots.len() - 1;
        let mut i = self.slot(key);
        loop {
            let (k, v) = self.slots[i];
            if k == key {
                return Some(v);
            }
            if k == u64::MAX {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts `key -> val` unless `key` is present (the first value wins, like
    /// `std::unordered_map::emplace`). Returns the value now stored.
    pub(crate) fn insert_first(&mut self, key: u64, val: u64) -> u64 {
        debug_assert!(key != u64::MAX);
        if (self.len + 1) * 2 > self.slots.len() {
            let old = std::mem::take(&mut self.slots);
            let cap = old.len() * 2;
            *self = U64Map {
                slots: vec![(u64::MAX, 0); cap],
                len: 0,
                shift: 64 - cap.trailing_zeros(),
            };
            for (k, v) in old {
                if k != u64::MAX {
                    self.insert_first(k, v);
                }
            }
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(key);
        loop {
            let (k, v) = self.slots[i];
            if k == key {
                return v;
            }
            if k == u64::MAX {
                self.slots[i] = (key, val);
                self.len += 1;
                return val;
            }
            i = (i + 1) & mask;
        }
    }
}

/// The vocabulary: texts, scores and attributes of every token id.
#[derive(Clone, Debug)]
pub(crate) struct Vocab {
    /// Token texts; string id == token id.
    pub(crate) texts: StringTable,
    /// Per-token score (SentencePiece log-probability; 0 when the file has none).
    pub(crate) scores: Vec<f32>,
    /// Per-token attributes.
    pub(crate) attrs: Vec<TokenAttr>,
}

impl Vocab {
    /// Builds the vocabulary. `tokens`, `scores` and `types` must have the same length (checked
    /// by the caller). Empty texts become `[EMPTY_<id>]` like llama.cpp; a text that appears twice
    /// is an error.
    pub(crate) fn new(
        tokens: &[&str],
        scores: Option<Vec<f32>>,
        types: Option<&[i32]>,
        n_bytes_hint: usize,
    ) -> Result<Vocab, TokenizerError> {
        let n = tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if n >= i32::MAX as usize {
            return Err(TokenizerError::TooLarge {
                what: "vocabulary",
                size: n as u64,
            });
        }
        // llama.cpp renames empty texts (rare).
        let renamed: Vec<String> = tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_empty())
            .map(|(i, _)| format!("[EMPTY_{i}]"))
            .collect();
        let mut names = renamed.iter();
        let strings = tokens.iter().map(|t| {
            if t.is_empty() {
                names.next().map_or(&[][..], |n| n.as_bytes())
            } else {
                t.as_bytes()
            }
        });
        let texts =
            StringTable::from_distinct(strings, n_bytes_hint)?.map_err(|(first, second)| {
                TokenizerError::DuplicateToken {
                    text: tokens[second as usize].to_owned(),
                    first,
                    second,
                }
            })?;
        let scores = scores.unwrap_or_else(|| vec![0.0; n]);
        let attrs = match types {
            Some(t) => t.iter().map(|&t| TokenAttr::from_gguf_type(t)).collect(),
            None => vec![TokenAttr::NORMAL; n],
        };
        Ok(Vocab {
            texts,
            scores,
            attrs,
        })
    }

    /// Number of tokens.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.scores.len()
    }

    /// Text of token `id` (must be in range).
    #[inline]
    pub(crate) fn text(&self, id: u32) -> &[u8] {
        self.texts.get(id)
    }

    /// Token whose text is exactly `s`.
    #[inline]
    pub(crate) fn find(&self, s: &[u8]) -> Option<u32> {
        self.texts.find(s)
    }

    /// Attributes of token `id` (must be in range).
    #[inline]
    pub(crate) fn attr(&self, id: u32) -> TokenAttr {
        self.attrs[id as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_table_interns_and_grows() {
        let mut t = StringTable::with_capacity(2, 8);
        let words: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
        for (i, w) in words.iter().enumerate() {
            assert_eq!(t.intern(w.as_bytes()).unwrap(), (i as u32, true));
        }
        assert_eq!(t.intern(b"w7").unwrap(), (7, false));
        for (i, w) in words.iter().enumerate() {
            assert_eq!(t.find(w.as_bytes()), Some(i as u32));
            assert_eq!(t.get(i as u32), w.as_bytes());
        }
        assert_eq!(t.find(b"nope"), None);
        assert_eq!(t.find(b""), None);
    }

    #[test]
    fn u64_map_keeps_first() {
        let mut m = U64Map::with_capacity(1);
        for k in 0..500u64 {
            assert_eq!(m.insert_first(k * 7919, k), k);
        }
        assert_eq!(m.insert_first(7919, 99), 1);
        for k in 0..500u64 {
            assert_eq!(m.get(k * 7919), Some(k));
        }
        assert_eq!(m.get(3), None);
    }

    #[test]
    fn vocab_rejects_duplicates_and_renames_empty() {
        let v = Vocab::new(&["a", "", "b"], None, None, 4).unwrap();
        assert_eq!(v.text(1), b"[EMPTY_1]");
        assert_eq!(v.find(b"b"), Some(2));
        let e = Vocab::new(&["a", "b", "a"], None, None, 4).unwrap_err();
        assert!(matches!(
            e,
            TokenizerError::DuplicateToken {
                first: 0,
                second: 2,
                ..
            }
        ));
    }
}

#[cfg(test)]
mod build_tests {
    use super::*;

    #[test]
    fn finds_strings_containing_a_pattern_after_their_start() {
        let words = ["xy", "axy", "xyaxy", "a", "bx", "yb", "xya", "qqxy"];
        let t = StringTable::from_distinct(words.iter().map(|w| w.as_bytes()), 0)
            .unwrap()
            .unwrap();
        // "bx" + "yb" straddle the boundary: not a match.
        assert_eq!(t.containing_after_start(b"xy"), vec![1, 2, 7]);
    }

    #[test]
    fn sort_slots_sorts() {
        let keys: Vec<u64> = (0..10_000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 7))
            .collect();
        let mut want = keys.clone();
        want.sort_unstable();
        assert_eq!(sort_slots(keys), want);
        assert_eq!(sort_slots(vec![]), Vec::<u64>::new());
    }

    #[test]
    fn from_distinct_finds_everything_and_duplicates() {
        let words: Vec<String> = (0..5000).map(|i| format!("tok{i}")).collect();
        let t = StringTable::from_distinct(words.iter().map(|w| w.as_bytes()), 0)
            .unwrap()
            .unwrap();
        for (i, w) in words.iter().enumerate() {
            assert_eq!(t.find(w.as_bytes()), Some(i as u32));
        }
        assert_eq!(t.find(b"tok5000"), None);
        let dup = ["x", "y", "z", "y"];
        let r = StringTable::from_distinct(dup.iter().map(|w| w.as_bytes()), 0).unwrap();
        assert_eq!(r.err(), Some((1, 3)));
    }
}
