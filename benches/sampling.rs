//! Sampling cost per token on a 262144-entry vocabulary (Gemma 3's size).
//!
//! `cargo bench --bench sampling`

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use kiln::sampling::{Greedy, MirostatParams, SamplerChain, SamplingParams, Xoshiro256StarStar};

const N_VOCAB: usize = 262_144;

/// Logits shaped like a language model's: a few strong candidates over a broad low tail.
fn model_like_logits(seed: u64) -> Vec<f32> {
    let mut r = Xoshiro256StarStar::seed_from_u64(seed);
    (0..N_VOCAB)
        .map(|_| {
            let u = r.next_f64();
            // Mostly in [-8, 2], rarely up to 14.
            (if u > 0.9999 {
                8.0 + u * 6.0
            } else {
                u * 10.0 - 8.0
            }) as f32
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let logits = model_like_logits(1);
    let cases = [
        ("default", SamplingParams::default()),
        ("greedy", SamplingParams::greedy()),
        (
            "penalties+default",
            SamplingParams {
                repeat_penalty: 1.1,
                ..SamplingParams::default()
            },
        ),
        (
            "top-p only",
            SamplingParams {
                top_k: None,
                min_p: 0.0,
                ..SamplingParams::default()
            },
        ),
    ];
    let mut g = c.benchmark_group("sample_262144");
    for (name, params) in cases {
        let mut chain = params.build(7).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| chain.sample(black_box(&logits)).unwrap())
        });
    }
    // The floor: fill the candidate list and take the argmax.
    let mut argmax = SamplerChain::new().with(Greedy::new());
    g.bench_function("argmax only", |b| {
        b.iter(|| argmax.sample(black_box(&logits)).unwrap())
    });
    // Mirostat's mu drifts when the same logits come every step (surprise stays below tau,
    // mu grows until nothing is truncated); reset each time to measure the first step.
    let mut miro = SamplingParams {
        mirostat: Some(MirostatParams::default()),
        ..SamplingParams::default()
    }
    .build(7)
    .unwrap();
    g.bench_function("mirostat-v2 (first step)", |b| {
        b.iter(|| {
            miro.reset();
            miro.sample(black_box(&logits)).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
