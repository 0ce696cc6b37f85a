//! After warm-up, sampling from a 262144-entry vocabulary allocates nothing.
//!
//! A counting global allocator counts this thread's allocations (thread-local, so tests
//! running in parallel do not interfere).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use kiln::sampling::{MirostatParams, SamplerChain, SamplingParams, Xoshiro256StarStar};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

const N_VOCAB: usize = 262_144;

/// `[steps][N_VOCAB]` logits, made before counting starts.
fn logits(steps: usize) -> Vec<Vec<f32>> {
    let mut r = Xoshiro256StarStar::seed_from_u64(5);
    (0..steps)
        .map(|_| {
            (0..N_VOCAB)
                .map(|_| (r.next_f64() * 20.0 - 10.0) as f32)
                .collect()
        })
        .collect()
}

fn assert_no_alloc_after_warmup(name: &str, mut chain: SamplerChain, steps: &[Vec<f32>]) {
    // Warm-up: the candidate buffer grows to the vocabulary, the penalty window fills.
    for _ in 0..70 {
        chain.sample(&steps[0]).unwrap();
    }
    let before = allocs();
    for l in steps {
        chain.sample(l).unwrap();
    }
    let after = allocs();
    assert_eq!(after - before, 0, "{name}: {} allocations", after - before);
}

#[test]
fn no_allocation_per_token_after_warmup() {
    // The counter works.
    let before = allocs();
    let v: Vec<u8> = Vec::with_capacity(10);
    assert_eq!(allocs() - before, 1);
    drop(v);

    let steps = logits(6);
    let all_on = SamplingParams {
        repeat_penalty: 1.1,
        frequency_penalty: 0.1,
        presence_penalty: 0.1,
        typical_p: 0.95,
        logit_bias: vec![
            (3, -1.0),
            (100_000, f32::NEG_INFINITY),
            (N_VOCAB as u32 + 5, 1.0),
        ],
        ..SamplingParams::default()
    };
    let no_top_k = SamplingParams {
        top_k: None,
        repeat_penalty: 1.1,
        ..SamplingParams::default()
    };
    let mirostat = SamplingParams {
        mirostat: Some(MirostatParams::default()),
        ..SamplingParams::default()
    };
    for (name, p) in [
        ("default", SamplingParams::default()),
        ("greedy", SamplingParams::greedy()),
        ("all samplers", all_on),
        ("no top-k", no_top_k),
        ("mirostat", mirostat),
    ] {
        assert_no_alloc_after_warmup(name, p.build(1).unwrap(), &steps);
    }
}
