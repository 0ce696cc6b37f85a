//! Every sampler on hand-made distributions: which candidates survive, in which order.

use kiln::sampling::{
    Candidates, Dist, Greedy, LogitBias, MinP, MirostatParams, MirostatV2, Penalties, Sampler,
    SamplerChain, SamplingError, SamplingParams, Temperature, TokenId, TopK, TopP, Typical,
};

fn cands(logits: &[f32]) -> Candidates {
    let mut c = Candidates::new();
    c.fill_from_logits(logits).unwrap();
    c
}

/// Candidates with logits `ln p` (so the softmax gives back `p`).
fn from_probs(probs: &[f32]) -> Candidates {
    cands(&probs.iter().map(|p| p.ln()).collect::<Vec<_>>())
}

fn ids(c: &Candidates) -> Vec<TokenId> {
    c.iter().map(|x| x.id).collect()
}

fn logits(c: &Candidates) -> Vec<f32> {
    c.iter().map(|x| x.logit).collect()
}

#[test]
fn greedy_selects_first_max() {
    let mut c = cands(&[1.0, 3.0, 2.0, 3.0]);
    Greedy::new().apply(&mut c).unwrap();
    assert_eq!(c.selected(), Some(1));
    assert_eq!(c.selected_token(), Some(1));
    assert_eq!(ids(&c), [0, 1, 2, 3], "greedy does not reorder");

    let mut masked = cands(&[f32::NEG_INFINITY, -5.0, f32::NEG_INFINITY]);
    Greedy::new().apply(&mut masked).unwrap();
    assert_eq!(masked.selected_token(), Some(1));

    let mut all = cands(&[f32::NEG_INFINITY; 4]);
    assert!(matches!(
        Greedy::new().apply(&mut all),
        Err(SamplingError::AllMasked(4))
    ));
    let mut empty = Candidates::new();
    assert!(matches!(
        Greedy::new().apply(&mut empty),
        Err(SamplingError::NoCandidates)
    ));
}

#[test]
fn temperature_scales_and_zero_keeps_only_max() {
    let mut c = cands(&[2.0, -4.0, 1.0]);
    Temperature::new(2.0).unwrap().apply(&mut c).unwrap();
    assert_eq!(logits(&c), [1.0, -2.0, 0.5]);
    assert_eq!(ids(&c), [0, 1, 2]);

    let mut c = cands(&[1.0, 3.0, 2.0, 3.0, f32::NEG_INFINITY]);
    Temperature::new(0.0).unwrap().apply(&mut c).unwrap();
    assert_eq!(ids(&c), [1], "t = 0 keeps only the first max");
    assert_eq!(logits(&c), [3.0]);

    let mut c = cands(&[0.5, -0.25]);
    Temperature::new(1.0).unwrap().apply(&mut c).unwrap();
    assert_eq!(logits(&c), [0.5, -0.25]);

    // Order is kept, so a sorted list stays sorted.
    let mut c = cands(&[0.1, 0.9, 0.5]);
    c.sort_descending();
    Temperature::new(0.5).unwrap().apply(&mut c).unwrap();
    assert!(c.is_sorted());
    assert_eq!(ids(&c), [1, 2, 0]);
    assert_eq!(logits(&c), [1.8, 1.0, 0.2]);

    // -inf stays -inf.
    let mut c = cands(&[f32::NEG_INFINITY, 1.0]);
    Temperature::new(0.7).unwrap().apply(&mut c).unwrap();
    assert_eq!(c.as_slice()[0].logit, f32::NEG_INFINITY);
}

#[test]
fn top_k_keeps_k_largest_sorted() {
    let mut c = cands(&[0.1, 0.5, 0.3, 0.9, 0.5]);
    TopK::new(3).unwrap().apply(&mut c).unwrap();
    assert_eq!(ids(&c), [3, 1, 4], "ties broken by ascending id");
    assert!(c.is_sorted());

    let mut c = cands(&[0.1, 0.5, 0.3, 0.9, 0.5]);
    TopK::new(10).unwrap().apply(&mut c).unwrap();
    assert_eq!(ids(&c), [3, 1, 4, 2, 0], "k >= len sorts everything");

    let mut c = cands(&[0.1, 0.5, 0.3]);
    TopK::new(1).unwrap().apply(&mut c).unwrap();
    assert_eq!(ids(&c), [1]);

    // Large vocabulary: same survivors as a full sort.
    let n = 262_144usize;
    let l: Vec<f32> = (0..n)
        .map(|i| ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as f32 / 1e4)
        .collect();
    let mut c = cands(&l);
    TopK::new(40).unwrap().apply(&mut c).unwrap();
    let mut want: Vec<(f32, u32)> = l.iter().enumerate().map(|(i, &x)| (x, i as u32)).collect();
    want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(ids(&c), want[..40].iter().map(|w| w.1).collect::<Vec<_>>());
}

#[test]
fn top_p_keeps_smallest_nucleus() {
    // p = [0.1, 0.4, 0.2, 0.3]: descending order is ids 1, 3, 2, 0.
    let probs = [0.1, 0.4, 0.2, 0.3];
    let run = |p: f32, min_keep: usize| {
        let mut c = from_probs(&probs);
        TopP::new(p, min_keep).unwrap().apply(&mut c).unwrap();
        assert!(c.is_sorted());
        ids(&c)
    };
    assert_eq!(run(0.3, 0), [1]);
    assert_eq!(run(0.5, 0), [1, 3]);
    assert_eq!(run(0.75, 0), [1, 3, 2]);
    assert_eq!(run(0.95, 0), [1, 3, 2, 0]);
    assert_eq!(run(0.3, 3), [1, 3, 2], "min_keep");

    // p = 1 is off: nothing changes, not even the order.
    let mut c = from_probs(&probs);
    TopP::new(1.0, 0).unwrap().apply(&mut c).unwrap();
    assert_eq!(ids(&c), [0, 1, 2, 3]);

    // Probabilities come from the list as it is: after top-k 2, p = [0.4, 0.3] / 0.7.
    let mut c = from_probs(&probs);
    TopK::new(2).unwrap().apply(&mut c).unwrap();
    TopP::new(0.5, 0).unwrap().apply(&mut c).unwrap();
    assert_eq!(ids(&c), [1], "0.4 / 0.7 = 0.57 >= 0.5");
}

#[test]
fn top_p_on_long_unsorted_list_matches_sorted() {
    // 2000 candidates: the nucleus either fits in the first 256 (fast path) or not.
    let n = 2000usize;
    let equal = vec![0.0f32; n];
    let mut c = cands(&equal);
    TopP::new(0.3001, 0).unwrap().apply(&mut c).unwrap();
    assert_eq!(
        ids(&c),
        (0..601).collect::<Vec<u32>>(),
        "601 * 1/2000 >= 0.3001"
    );

    let spread: Vec<f32> = (0..n).map(|i| ((i * 7919) % n) as f32 * -0.01).collect();
    for p in [0.05f32, 0.5, 0.9, 0.999] {
        let mut fast = cands(&spread);
        TopP::new(p, 0).unwrap().apply(&mut fast).unwrap();
        let mut slow = cands(&spread);
        slow.sort_descending();
        TopP::new(p, 0).unwrap().apply(&mut slow).unwrap();
        assert_eq!(ids(&fast), ids(&slow), "p = {p}");
        assert!(fast.len() > 1);
    }
}

#[test]
fn min_p_keeps_relative_floor() {
    // ids 0..4 with p = [0.1, 0.5, 0.15, 0.25] (unsorted).
    let probs = [0.1, 0.5, 0.15, 0.25];
    let run = |p: f32, min_keep: usize, sort_first: bool| {
        let mut c = from_probs(&probs);
        if sort_first {
            c.sort_descending();
        }
        MinP::new(p, min_keep).unwrap().apply(&mut c).unwrap();
        ids(&c)
    };
    // Floor 0.125: unsorted lists keep their order.
    assert_eq!(run(0.25, 0, false), [1, 2, 3]);
    // Floor 0.2.
    assert_eq!(run(0.4, 0, false), [1, 3]);
    assert_eq!(run(0.4, 0, true), [1, 3]);
    // Floor 0.45 keeps one; min_keep 3 falls back to the 3 best, sorted.
    assert_eq!(run(0.9, 0, false), [1]);
    assert_eq!(run(0.9, 3, false), [1, 3, 2]);
    // p = 0 is off; p = 1 keeps only the max.
    assert_eq!(run(0.0, 0, false), [0, 1, 2, 3]);
    assert_eq!(run(1.0, 0, false), [1]);
}

#[test]
fn typical_orders_by_closeness_to_entropy() {
    // p = [0.5, 0.25, 0.15, 0.1]: H = 1.208 nats; |-ln p - H| = [0.515, 0.178, 0.689, 1.095],
    // so the typical order is ids 1, 0, 2, 3.
    let probs = [0.5, 0.25, 0.15, 0.1];
    let run = |p: f32, min_keep: usize| {
        let mut c = from_probs(&probs);
        Typical::new(p, min_keep).unwrap().apply(&mut c).unwrap();
        assert!(!c.is_sorted());
        ids(&c)
    };
    assert_eq!(run(0.2, 0), [1]);
    assert_eq!(run(0.5, 0), [1, 0]);
    assert_eq!(run(0.8, 0), [1, 0, 2]);
    assert_eq!(run(0.2, 2), [1, 0], "min_keep");
    let mut c = from_probs(&probs);
    Typical::new(1.0, 0).unwrap().apply(&mut c).unwrap();
    assert_eq!(ids(&c), [0, 1, 2, 3], "p = 1 is off");

    // A masked candidate neither poisons the entropy nor survives.
    let mut l: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
    l.push(f32::NEG_INFINITY);
    let mut c = cands(&l);
    Typical::new(0.8, 0).unwrap().apply(&mut c).unwrap();
    assert_eq!(ids(&c), [1, 0, 2]);
}

#[test]
fn penalties_follow_llama_cpp_formula() {
    let base = [1.0, -1.0, 2.0, 0.0, 3.0, -2.0];
    let mut pen = Penalties::new(64, 2.0, 0.5, 0.25).unwrap();
    for t in [1, 4, 4] {
        pen.accept(t);
    }
    // id 1: -1 * 2 - (1 * 0.5 + 0.25) = -2.75; id 4: 3 / 2 - (2 * 0.5 + 0.25) = 0.25.
    let want = [1.0, -2.75, 2.0, 0.0, 0.25, -2.0];
    let mut c = cands(&base);
    pen.apply(&mut c).unwrap();
    assert_eq!(logits(&c), want);
    assert!(!c.is_sorted());

    // Same result when the list is no longer in vocabulary order (slow path).
    let mut c = cands(&base);
    c.sort_descending();
    pen.apply(&mut c).unwrap();
    let mut got: Vec<(u32, f32)> = c.iter().map(|x| (x.id, x.logit)).collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), want);

    // Only the last N count.
    let mut pen2 = Penalties::new(2, 2.0, 0.0, 0.0).unwrap();
    for t in [1, 4, 4] {
        pen2.accept(t);
    }
    assert_eq!(pen2.history().collect::<Vec<_>>(), [4, 4]);
    let mut c = cands(&base);
    pen2.apply(&mut c).unwrap();
    assert_eq!(logits(&c), [1.0, -1.0, 2.0, 0.0, 1.5, -2.0]);

    // A zero logit stays zero under the repeat penalty; reset forgets the history.
    let mut pen3 = Penalties::new(8, 1.5, 0.0, 0.0).unwrap();
    pen3.accept(3);
    let mut c = cands(&base);
    pen3.apply(&mut c).unwrap();
    assert_eq!(logits(&c), base);
    pen.reset();
    let mut c = cands(&base);
    pen.apply(&mut c).unwrap();
    assert_eq!(logits(&c), base);

    // Off: nothing recorded, nothing changed.
    let mut off = Penalties::new(64, 1.0, 0.0, 0.0).unwrap();
    off.accept(0);
    assert_eq!(off.history().count(), 0);
    let mut c = cands(&base);
    off.apply(&mut c).unwrap();
    assert_eq!(logits(&c), base);
}

#[test]
fn logit_bias_adds_and_masks() {
    let mut lb = LogitBias::new([(2, 5.0), (0, f32::NEG_INFINITY), (2, 1.0), (99, 3.0)]).unwrap();
    assert_eq!(lb.biases(), [(0, f32::NEG_INFINITY), (2, 6.0), (99, 3.0)]);
    let mut c = cands(&[0.0, 1.0, 2.0, 3.0]);
    lb.apply(&mut c).unwrap();
    assert_eq!(logits(&c), [f32::NEG_INFINITY, 1.0, 8.0, 3.0]);

    // Reordered list (slow path).
    let mut c = cands(&[0.0, 1.0, 2.0, 3.0]);
    c.sort_descending();
    lb.apply(&mut c).unwrap();
    assert_eq!(ids(&c), [3, 2, 1, 0]);
    assert_eq!(logits(&c), [3.0, 8.0, 1.0, f32::NEG_INFINITY]);

    // A mask really removes the token from the draw.
    let mut chain = SamplerChain::new()
        .with(LogitBias::new([(1, f32::NEG_INFINITY)]).unwrap())
        .with(Dist::new(3));
    for _ in 0..2000 {
        assert_eq!(chain.sample(&[0.0, 5.0]).unwrap(), 0);
    }
    // Masking everything is an error, not a token.
    let mut chain = SamplerChain::new()
        .with(LogitBias::new([(0, f32::NEG_INFINITY), (1, f32::NEG_INFINITY)]).unwrap())
        .with(Dist::new(3));
    assert!(matches!(
        chain.sample(&[0.0, 5.0]),
        Err(SamplingError::AllMasked(2))
    ));
}

#[test]
fn dist_single_candidate_and_probabilities() {
    let mut c = cands(&[0.3]);
    Dist::new(1).apply(&mut c).unwrap();
    assert_eq!(c.selected(), Some(0));
    assert_eq!(c.as_slice()[0].p, 1.0);

    let mut c = from_probs(&[0.25, 0.75]);
    Dist::new(1).apply(&mut c).unwrap();
    assert!(c.probs_valid());
    let p: Vec<f32> = c.iter().map(|x| x.p).collect();
    assert!((p[0] - 0.25).abs() < 1e-6 && (p[1] - 0.75).abs() < 1e-6);
    assert!(c.selected().is_some());

    // -inf candidates are never drawn.
    let mut d = Dist::new(99);
    for _ in 0..5000 {
        let mut c = cands(&[0.0, f32::NEG_INFINITY, 0.0]);
        d.apply(&mut c).unwrap();
        assert_ne!(c.selected(), Some(1));
    }
}

#[test]
fn mirostat_v2_truncates_by_surprise() {
    // Surprises (bits): 1, 2, 2.74, 3.32, 13.3. With tau = 5, mu = 10: the last is cut.
    let probs = [0.5, 0.25, 0.15, 0.0999, 0.0001];
    let mut m = MirostatV2::new(7, 5.0, 0.1).unwrap();
    assert_eq!(m.mu(), 10.0);
    let mut c = from_probs(&probs);
    m.apply(&mut c).unwrap();
    assert_eq!(ids(&c), [0, 1, 2, 3]);
    let idx = c.selected().unwrap();
    let surprise = -c.as_slice()[idx].p.log2();
    assert!((m.mu() - (10.0 - 0.1 * (surprise - 5.0))).abs() < 1e-5);

    // tau = 0.6: mu = 1.2 bits keeps only p >= 0.435, i.e. the top token, whose surprise
    // after renormalisation is 0: mu = 1.2 - 0.1 * (0 - 0.6) = 1.26.
    let mut m = MirostatV2::new(7, 0.6, 0.1).unwrap();
    let mut c = from_probs(&probs);
    m.apply(&mut c).unwrap();
    assert_eq!(ids(&c), [0]);
    assert_eq!(c.selected_token(), Some(0));
    assert!((m.mu() - 1.26).abs() < 1e-6);
    m.reset();
    assert!((m.mu() - 1.2).abs() < 1e-6);

    // mu below every surprise still keeps the top candidate.
    let mut m = MirostatV2::new(7, 0.0, 0.0).unwrap();
    let mut c = from_probs(&[0.3, 0.3, 0.4]);
    m.apply(&mut c).unwrap();
    assert_eq!(c.selected_token(), Some(2));
}

#[test]
fn default_chain_order_and_variants() {
    let names = |p: &SamplingParams| -> Vec<String> {
        p.build(0).unwrap().names().map(str::to_owned).collect()
    };
    assert_eq!(
        names(&SamplingParams::default()),
        ["top-k", "top-p", "min-p", "temperature", "dist"]
    );
    let all = SamplingParams {
        repeat_penalty: 1.1,
        typical_p: 0.9,
        logit_bias: vec![(0, -1.0)],
        ..SamplingParams::default()
    };
    assert_eq!(
        names(&all),
        [
            "logit-bias",
            "penalties",
            "top-k",
            "typical",
            "top-p",
            "min-p",
            "temperature",
            "dist"
        ]
    );
    let off = SamplingParams {
        top_k: None,
        top_p: 1.0,
        min_p: 0.0,
        temperature: 1.0,
        ..SamplingParams::default()
    };
    assert_eq!(names(&off), ["dist"]);
    let miro = SamplingParams {
        mirostat: Some(MirostatParams::default()),
        repeat_penalty: 1.3,
        ..SamplingParams::default()
    };
    assert_eq!(names(&miro), ["temperature", "mirostat-v2"]);
}

#[test]
fn chain_accept_and_reset_reach_the_penalties() {
    let mut chain = SamplerChain::new()
        .with(Penalties::new(64, 2.0, 0.0, 0.0).unwrap())
        .with(Greedy::new());
    let l = [2.0, 1.5, 0.0];
    assert_eq!(chain.sample(&l).unwrap(), 0);
    // Token 0 was accepted: 2.0 / 2 = 1.0 < 1.5.
    assert_eq!(chain.sample(&l).unwrap(), 1);
    // Both penalised now: 1.0 vs 0.75.
    assert_eq!(chain.sample(&l).unwrap(), 0);
    chain.reset();
    assert_eq!(chain.sample(&l).unwrap(), 0);
    assert_eq!(chain.sample(&l).unwrap(), 1);
    // Prompt tokens can be fed in by hand.
    chain.reset();
    chain.accept(0);
    assert_eq!(chain.sample(&l).unwrap(), 1);
}

#[test]
fn default_chain_draws_only_from_survivors() {
    // 100 tokens; p ~ 0.9^i. top-k 40 and min-p 0.05 (floor 0.05 * p_max) leave ids 0..=28
    // (0.9^28 = 0.052); top-p 0.95 may cut further.
    let l: Vec<f32> = (0..100).map(|i| i as f32 * 0.9f32.ln()).collect();
    let mut chain = SamplingParams::default().build(5).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..5000 {
        let t = chain.sample(&l).unwrap();
        assert!(t <= 28, "token {t} is below the min-p floor");
        seen.insert(t);
    }
    assert!(
        seen.len() > 10,
        "temperature 0.8 spreads the draws: {seen:?}"
    );
    let c = chain.candidates();
    assert!(c.probs_valid());
    let s: f32 = c.iter().map(|x| x.p).sum();
    assert!((s - 1.0).abs() < 1e-5);
}
