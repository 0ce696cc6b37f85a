//! Sessions on the real models: bit-identical results for any thread count and for batch
//! splits, and several sessions running one shared `Arc<Model>` from different threads.
//!
//! Like llama.cpp's, kiln's rounding depends on the *shape* of a batch (it follows llama.cpp's
//! choices so that its logits are llama.cpp's bit for bit): flash attention takes the tiled
//! path for batches of 64 tokens or more and the one-key path below; repacked Q4_K takes the
//! gemm for whole groups of 4 tokens and the gemv for the rest; Q6_K the tiled matmul from 8
//! tokens. So splits are compared where every token meets the same paths: batches of at least
//! 64 tokens whose sizes leave the same remainder mod 4 at the end.

mod common;

use std::sync::Arc;

use kiln::GgmlType;
use kiln::model::{Model, Session, SessionOptions};
use serde_json::Value;

/// The first `n` prompt tokens of a reference file.
fn prompt(model_ref: &str, name: &str, n: usize) -> Vec<u32> {
    let path = common::reference(&format!("logits/{model_ref}.{name}.json"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["prompt_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .take(n)
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Logits of every prompt position, then of 4 greedy steps.
fn run(model: &Arc<Model>, tokens: &[u32], threads: usize, n_batch: usize) -> Vec<Vec<f32>> {
    let opts = SessionOptions {
        n_ctx: Some(tokens.len() + 8),
        kv_type: GgmlType::F16,
        n_threads: threads,
        n_batch,
        ..Default::default()
    };
    let mut s = Session::new(model.clone(), &opts).unwrap();
    let mut out = Vec::new();
    s.eval(tokens, 0..tokens.len(), |_, l| {
        out.push(l.to_vec());
        Ok(())
    })
    .unwrap();
    for _ in 0..4 {
        let last = out.last().unwrap();
        let next = (0..last.len())
            .max_by(|&a, &b| last[a].total_cmp(&last[b]))
            .unwrap() as u32;
        out.push(s.decode(&[next]).unwrap().to_vec());
    }
    out
}

fn models() -> Vec<(Arc<Model>, &'static str)> {
    [
        (common::SMOLLM2, common::SMOLLM2_REF),
        (common::GEMMA3, common::GEMMA3_REF),
    ]
    .into_iter()
    .filter_map(|(file, r)| common::model(file).map(|p| (Arc::new(Model::load(p).unwrap()), r)))
    .collect()
}

#[test]
fn bit_identical_for_thread_counts_and_batch_splits() {
    for (model, r) in models() {
        let tokens = prompt(r, "long", 144);
        let base = run(&model, &tokens, 1, 512);
        assert_eq!(run(&model, &tokens, 2, 512), base, "{r}: 1 vs 2 threads");
        assert_eq!(
            run(&model, &tokens, 3, 72),
            base,
            "{r}: 3 threads, batches of 72"
        );
    }
}

#[test]
fn sessions_in_parallel_equal_one_at_a_time() {
    for (model, r) in models() {
        let prompts: Vec<Vec<u32>> = ["story", "code", "list", "math"]
            .iter()
            .map(|p| prompt(r, p, usize::MAX))
            .collect();
        let sequential: Vec<_> = prompts.iter().map(|p| run(&model, p, 1, 512)).collect();
        let handles: Vec<_> = prompts
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, p)| {
                let m = Arc::clone(&model);
                std::thread::spawn(move || run(&m, &p, 1 + i % 2, 512))
            })
            .collect();
        for (h, want) in handles.into_iter().zip(&sequential) {
            assert_eq!(&h.join().unwrap(), want, "{r}");
        }
    }
}

#[test]
fn gemma3_long_prompt_across_the_window_is_split_invariant() {
    // 661 tokens cross Gemma 3's 512-token window: split into batches of 224 (ending at 224,
    // 448 and 661, so one batch straddles position 512), the sliding-window layers must see
    // exactly the same keys. Both splits end on a batch of 4k + 1 tokens (149 and 213).
    let Some(path) = common::model(common::GEMMA3) else {
        return;
    };
    let model = Arc::new(Model::load(path).unwrap());
    let tokens = prompt(common::GEMMA3_REF, "long", usize::MAX);
    assert!(tokens.len() > 600);
    let whole = run(&model, &tokens, 2, 512);
    assert_eq!(tokens.len(), 661);
    assert_eq!(run(&model, &tokens, 2, 224), whole);
}
