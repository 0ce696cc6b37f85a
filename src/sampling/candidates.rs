//! The candidate list samplers work on (llama.cpp's `llama_token_data_array`).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::{SamplingError, TokenId};

/// One candidate token: its id, its logit and (when [`Candidates::probs_valid`]) its
/// probability.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// The token id.
    pub id: TokenId,
    /// The (possibly modified) logit. `-inf` marks a masked token.
    pub logit: f32,
    /// The probability, valid only while [`Candidates::probs_valid`] is true.
    pub p: f32,
}

/// The order every sort in kiln's samplers uses: logit descending, ties broken by token id
/// ascending, so results never depend on the sort algorithm. NaN never reaches a sort
/// (logits are validated first).
#[inline]
pub fn by_logit_desc(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// A list of candidate tokens plus what samplers know about it.
///
/// - `sorted`: the list is in descending logit order (samplers that need the order skip the
///   sort; samplers that reorder or change logits clear it).
/// - `probs_valid`: every `p` equals the softmax of the current logits over the current list
///   (set by [`softmax`](Self::softmax) and the random draw; cleared by anything that changes
///   logits or removes candidates).
/// - `selected`: the index a selecting sampler chose.
///
/// The buffer is reused: [`fill_from_logits`](Self::fill_from_logits) never allocates once
/// the capacity has reached the vocabulary size, so a [`SamplerChain`](super::SamplerChain)
/// samples without allocating after the first token.
#[derive(Clone, Debug, Default)]
pub struct Candidates {
    /// `[len]` candidates, in the order samplers left them.
    data: Vec<Candidate>,
    sorted: bool,
    probs_valid: bool,
    selected: Option<usize>,
    /// `[<= h]` scratch for [`partition_top`](Self::partition_top): the `h` largest logits
    /// seen so far, smallest on top.
    heap: BinaryHeap<Reverse<TotalF32>>,
}

/// An f32 ordered by `total_cmp` (for the threshold heap).
#[derive(Clone, Copy, Debug, PartialEq)]
struct TotalF32(f32);

impl Eq for TotalF32 {}

impl PartialOrd for TotalF32 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TotalF32 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// [`Candidates::partition_top`] first finds the h-th largest logit with a heap (one pass,
/// almost every element rejected by a single comparison) when `h` is at most this and at
/// most 1/8 of the list; otherwise it selects on the whole list directly.
const HEAP_PREFILTER_MAX: usize = 2048;

impl Candidates {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list with room for `n` candidates.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            data: Vec::with_capacity(n),
            ..Self::default()
        }
    }

    /// Replaces the list with one candidate per logit (`id` = index, `p` = 0), unsorted, no
    /// selection.
    ///
    /// Errors (checked before anything is written): a NaN or +inf logit
    /// ([`SamplingError::NonFiniteLogit`] with stage `"input"`), or more than 2^32 logits.
    /// `-inf` logits are accepted: they are masks.
    pub fn fill_from_logits(&mut self, logits: &[f32]) -> Result<(), SamplingError> {
        if u32::try_from(logits.len().saturating_sub(1)).is_err() {
            return Err(SamplingError::TooManyCandidates(logits.len()));
        }
        if let Some(index) = logits
            .iter()
            .position(|&l| l.is_nan() || l == f32::INFINITY)
        {
            return Err(SamplingError::NonFiniteLogit {
                index,
                token: index as TokenId,
                value: logits[index],
                stage: "input",
            });
        }
        self.data.clear();
        self.data
            .extend(logits.iter().enumerate().map(|(i, &logit)| Candidate {
                id: i as TokenId,
                logit,
                p: 0.0,
            }));
        self.sorted = false;
        self.probs_valid = false;
        self.selected = None;
        Ok(())
    }

    /// Removes every candidate and resets the flags (the capacity is kept).
    pub fn clear(&mut self) {
        self.data.clear();
        self.sorted = false;
        self.probs_valid = false;
        self.selected = None;
    }

    /// Appends a candidate (clears `sorted`, `probs_valid` and the selection).
    pub fn push(&mut self, c: Candidate) {
        self.data.push(c);
        self.sorted = false;
        self.probs_valid = false;
        self.selected = None;
    }

    /// Checks that no logit is NaN or +inf (`-inf` is allowed).
    pub fn validate_logits(&self, stage: &'static str) -> Result<(), SamplingError> {
        match self
            .data
            .iter()
            .position(|c| c.logit.is_nan() || c.logit == f32::INFINITY)
        {
            None => Ok(()),
            Some(index) => Err(SamplingError::NonFiniteLogit {
                index,
                token: self.data[index].id,
                value: self.data[index].logit,
                stage,
            }),
        }
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when no candidate is left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The candidates, in their current order.
    pub fn as_slice(&self) -> &[Candidate] {
        &self.data
    }

    /// The candidates, for a sampler to modify. Conservatively clears `sorted`, `probs_valid`
    /// and the selection; a sampler that knows better sets them again with
    /// [`set_sorted`](Self::set_sorted) / [`set_probs_valid`](Self::set_probs_valid).
    pub fn as_mut_slice(&mut self) -> &mut [Candidate] {
        self.sorted = false;
        self.probs_valid = false;
        self.selected = None;
        &mut self.data
    }

    /// Iterates over the candidates in their current order.
    pub fn iter(&self) -> std::slice::Iter<'_, Candidate> {
        self.data.iter()
    }

    /// True when the list is known to be in descending logit order.
    pub fn is_sorted(&self) -> bool {
        self.sorted
    }

    /// Declares whether the list is in descending logit order. A wrong `true` makes
    /// order-dependent samplers (top-p, min-p) give wrong results, never UB or a panic.
    pub fn set_sorted(&mut self, sorted: bool) {
        self.sorted = sorted;
    }

    /// True when every `p` is the softmax of the current logits over the current list.
    pub fn probs_valid(&self) -> bool {
        self.probs_valid
    }

    /// Declares whether the probabilities are valid (see [`probs_valid`](Self::probs_valid)).
    pub fn set_probs_valid(&mut self, valid: bool) {
        self.probs_valid = valid;
    }

    /// The index a selecting sampler chose, if any.
    pub fn selected(&self) -> Option<usize> {
        self.selected
    }

    /// The token a selecting sampler chose, if any.
    pub fn selected_token(&self) -> Option<TokenId> {
        self.selected.and_then(|i| self.data.get(i)).map(|c| c.id)
    }

    /// Selects the candidate at `index` (what a selecting sampler does).
    pub fn select(&mut self, index: usize) -> Result<(), SamplingError> {
        if index >= self.data.len() {
            return Err(SamplingError::SelectionOutOfRange {
                index,
                len: self.data.len(),
            });
        }
        self.selected = Some(index);
        Ok(())
    }

    /// Forgets the selection.
    pub fn clear_selection(&mut self) {
        self.selected = None;
    }

    /// Keeps the first `n` candidates. Keeps `sorted`; clears `probs_valid` when something
    /// was removed; clears the selection.
    pub fn truncate(&mut self, n: usize) {
        if n < self.data.len() {
            self.data.truncate(n);
            self.probs_valid = false;
        }
        self.selected = None;
    }

    /// Keeps the candidates for which `keep` is true, in their order. Keeps `sorted`; clears
    /// `probs_valid` when something was removed; clears the selection.
    pub fn retain(&mut self, keep: impl FnMut(&Candidate) -> bool) {
        let before = self.data.len();
        self.data.retain(keep);
        if self.data.len() != before {
            self.probs_valid = false;
        }
        self.selected = None;
    }

    /// The largest logit (`-inf` for an empty or fully masked list).
    pub fn max_logit(&self) -> f32 {
        if self.sorted {
            return self.data.first().map_or(f32::NEG_INFINITY, |c| c.logit);
        }
        self.data.iter().fold(
            f32::NEG_INFINITY,
            |m, c| if c.logit > m { c.logit } else { m },
        )
    }

    /// Sorts by descending logit (ties by ascending id) unless already sorted. Full sort, no
    /// allocation (`sort_unstable` with a total order, so the result is deterministic).
    pub fn sort_descending(&mut self) {
        if !self.sorted {
            self.data.sort_unstable_by(by_logit_desc);
            self.sorted = true;
            self.selected = None;
        }
    }

    /// Keeps the `k` candidates with the largest logits, sorted descending
    /// (`k >= len` sorts everything). Partial selection, never a full sort: for small `k`
    /// one pass finds the k-th largest logit with a k-entry heap and a second keeps the
    /// candidates at or above it; `select_nth_unstable_by` and a sort then run on those
    /// few (for large `k`, `select_nth_unstable_by` runs on the whole list).
    pub fn keep_top_k(&mut self, k: usize) {
        if k >= self.data.len() {
            self.sort_descending();
            return;
        }
        self.partition_top(k);
        self.data.truncate(k);
        self.sorted = true;
        self.probs_valid = false;
        self.selected = None;
    }

    /// Moves the `h` largest candidates (by [`by_logit_desc`]) to the front, sorted; the
    /// others follow in unspecified order. Does not change `sorted` (the caller knows
    /// whether the tail matters).
    ///
    /// Partial selection, never a full sort: for small `h` a first pass finds the h-th
    /// largest logit `T` with an `h`-entry heap, a second moves the candidates `>= T` to the
    /// front, and `select_nth_unstable_by` + a sort run on those few; for larger `h`,
    /// `select_nth_unstable_by` runs on the whole list.
    pub(crate) fn partition_top(&mut self, h: usize) {
        let n = self.data.len();
        if h == 0 || n == 0 {
            return;
        }
        if h >= n {
            self.data.sort_unstable_by(by_logit_desc);
            return;
        }
        let mut front = n;
        if h <= HEAP_PREFILTER_MAX && h.saturating_mul(8) <= n {
            self.heap.clear();
            for c in &self.data {
                if self.heap.len() < h {
                    self.heap.push(Reverse(TotalF32(c.logit)));
                } else if let Some(mut top) = self.heap.peek_mut()
                    && c.logit > top.0.0
                {
                    *top = Reverse(TotalF32(c.logit));
                }
            }
            // The h-th largest logit: at least h candidates are >= it.
            let threshold = self.heap.peek().map_or(f32::NEG_INFINITY, |r| r.0.0);
            let mut w = 0;
            for i in 0..n {
                if self.data[i].logit >= threshold {
                    self.data.swap(w, i);
                    w += 1;
                }
            }
            front = w;
        }
        let head = &mut self.data[..front];
        if h < front {
            head.select_nth_unstable_by(h - 1, by_logit_desc);
        }
        self.data[..h].sort_unstable_by(by_logit_desc);
        self.selected = None;
    }

    /// Sets every `p` to the softmax of the logits: `exp(l - max) / sum` (sum in f64), in the
    /// current order, and marks the probabilities valid.
    ///
    /// Errors: [`SamplingError::NoCandidates`] for an empty list,
    /// [`SamplingError::AllMasked`] when every logit is -inf.
    pub fn softmax(&mut self) -> Result<(), SamplingError> {
        let sum = self.exp_unnormalized()?;
        let inv = 1.0 / sum;
        for c in &mut self.data {
            c.p = (c.p as f64 * inv) as f32;
        }
        self.probs_valid = true;
        Ok(())
    }

    /// Sets every `p` to `exp(l - max)` and returns their sum (f64). The probabilities are
    /// *not* normalised and `probs_valid` is cleared.
    pub(crate) fn exp_unnormalized(&mut self) -> Result<f64, SamplingError> {
        if self.data.is_empty() {
            return Err(SamplingError::NoCandidates);
        }
        let max = self.max_logit();
        if max == f32::NEG_INFINITY {
            return Err(SamplingError::AllMasked(self.data.len()));
        }
        let mut sum = 0.0f64;
        for c in &mut self.data {
            let e = (c.logit - max).exp();
            c.p = e;
            sum += e as f64;
        }
        self.probs_valid = false;
        Ok(sum)
    }

    /// Computes the probabilities unless they are already valid.
    pub fn ensure_probs(&mut self) -> Result<(), SamplingError> {
        if self.probs_valid && !self.data.is_empty() {
            return Ok(());
        }
        self.softmax()
    }

    /// The underlying buffer, for kiln's own samplers (which keep the flags right).
    pub(crate) fn raw_mut(&mut self) -> &mut Vec<Candidate> {
        &mut self.data
    }
}

/// Draws an index with probability proportional to `p` (which need not sum to 1): with
/// `u` uniform in [0, 1), the first index whose running sum of `p` (in f64) exceeds
/// `u * sum`. Inverse-CDF over the current order, so a candidate with `p = 0` is never
/// chosen. Returns `None` when every `p` is 0.
pub(crate) fn draw_index(data: &[Candidate], sum: f64, u: f64) -> Option<usize> {
    let target = sum * u;
    let mut run = 0.0f64;
    let mut last_positive = None;
    for (i, c) in data.iter().enumerate() {
        if c.p > 0.0 {
            run += c.p as f64;
            last_positive = Some(i);
            if run > target {
                return Some(i);
            }
        }
    }
    // Rounding can leave `run` a hair below `target` when u is within an ulp of 1.
    last_positive
}

/// Calls `f` on every candidate whose id appears in `items` (sorted by token, no
/// duplicates), with that item's payload. Fast path: a candidate list still in vocabulary
/// order holds token `t` at index `t`, so most tokens are found in O(1); the rest are
/// collected in `pending` (a reused scratch buffer of item indices) and found in one pass
/// over the list with a binary search each.
pub(crate) fn for_each_token<T>(
    data: &mut [Candidate],
    items: &[(TokenId, T)],
    pending: &mut Vec<usize>,
    mut f: impl FnMut(&mut Candidate, &T),
) {
    pending.clear();
    for (j, (tok, payload)) in items.iter().enumerate() {
        match data.get_mut(*tok as usize) {
            Some(c) if c.id == *tok => f(c, payload),
            _ => pending.push(j),
        }
    }
    if pending.is_empty() {
        return;
    }
    for c in data.iter_mut() {
        if let Ok(k) = pending.binary_search_by(|&j| items[j].0.cmp(&c.id)) {
            f(c, &items[pending[k]].1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(logits: &[f32]) -> Candidates {
        let mut c = Candidates::new();
        c.fill_from_logits(logits).unwrap();
        c
    }

    fn ids(c: &Candidates) -> Vec<TokenId> {
        c.iter().map(|c| c.id).collect()
    }

    #[test]
    fn keep_top_k_partial_matches_full_sort() {
        // Pseudo-random logits with ties.
        let logits: Vec<f32> = (0..1000u32)
            .map(|i| ((i.wrapping_mul(2654435761) >> 7) % 97) as f32 * 0.25)
            .collect();
        for k in [1, 2, 5, 40, 97, 500, 999, 1000, 5000] {
            let mut a = cands(&logits);
            a.keep_top_k(k);
            let mut b = cands(&logits);
            b.sort_descending();
            b.truncate(k);
            assert_eq!(ids(&a), ids(&b), "k = {k}");
            assert!(a.is_sorted());
        }
    }

    #[test]
    fn keep_top_k_with_signed_zeros_masks_and_ties() {
        let mut logits = vec![0.0f32; 5000];
        for (i, l) in logits.iter_mut().enumerate() {
            *l = match i % 5 {
                0 => -0.0,
                1 => 0.0,
                2 => f32::NEG_INFINITY,
                3 => -1.0,
                _ => ((i * 37) % 11) as f32 * -0.5,
            };
        }
        for k in [1, 3, 100, 999, 1000, 1001, 2500, 4999] {
            let mut a = cands(&logits);
            a.keep_top_k(k);
            let mut b = cands(&logits);
            b.sort_descending();
            b.truncate(k);
            assert_eq!(ids(&a), ids(&b), "k = {k}");
        }
    }

    #[test]
    fn softmax_sums_to_one_and_handles_masks() {
        let mut c = cands(&[1.0, f32::NEG_INFINITY, 3.0, 2.0]);
        c.softmax().unwrap();
        let s: f32 = c.iter().map(|c| c.p).sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert_eq!(c.as_slice()[1].p, 0.0);
        assert!(c.probs_valid());
        let mut m = cands(&[f32::NEG_INFINITY; 3]);
        assert!(matches!(m.softmax(), Err(SamplingError::AllMasked(3))));
        let mut e = Candidates::new();
        assert!(matches!(e.softmax(), Err(SamplingError::NoCandidates)));
    }

    #[test]
    fn draw_index_is_inverse_cdf() {
        let data: Vec<Candidate> = [0.5f32, 0.0, 0.25, 0.25]
            .iter()
            .enumerate()
            .map(|(i, &p)| Candidate {
                id: i as u32,
                logit: 0.0,
                p,
            })
            .collect();
        assert_eq!(draw_index(&data, 1.0, 0.0), Some(0));
        assert_eq!(draw_index(&data, 1.0, 0.4999), Some(0));
        assert_eq!(draw_index(&data, 1.0, 0.5), Some(2));
        assert_eq!(draw_index(&data, 1.0, 0.76), Some(3));
        assert_eq!(draw_index(&data, 1.0, 0.999_999_999), Some(3));
        // A sum slightly above the true total cannot select the p = 0 entry or run off the end.
        assert_eq!(draw_index(&data, 1.000_001, 0.999_999_999), Some(3));
        let zeros = [Candidate {
            id: 0,
            logit: 0.0,
            p: 0.0,
        }];
        assert_eq!(draw_index(&zeros, 0.0, 0.3), None);
    }

    #[test]
    fn fill_rejects_nan_and_pos_inf_but_not_neg_inf() {
        let mut c = Candidates::new();
        assert!(c.fill_from_logits(&[0.0, f32::NEG_INFINITY]).is_ok());
        assert!(matches!(
            c.fill_from_logits(&[0.0, f32::NAN]),
            Err(SamplingError::NonFiniteLogit { index: 1, .. })
        ));
        assert!(matches!(
            c.fill_from_logits(&[f32::INFINITY]),
            Err(SamplingError::NonFiniteLogit { index: 0, .. })
        ));
    }
}
