//! Once warm, the decode loop allocates nothing: a counting global allocator (counting every
//! thread, the session's workers included) sees no allocation over several decode steps.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kiln::GgmlType;
use kiln::model::{Model, Session, SessionOptions};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decode_loop_does_not_allocate() {
    for file in [common::SMOLLM2, common::GEMMA3] {
        let Some(path) = common::model(file) else {
            continue;
        };
        let model = Arc::new(Model::load(path).unwrap());
        for kv in [GgmlType::F16, GgmlType::Q8_0] {
            let opts = SessionOptions {
                n_ctx: Some(64),
                kv_type: kv,
                n_threads: 2,
                ..Default::default()
            };
            let mut s = Session::new(model.clone(), &opts).unwrap();
            // Warm-up: a short prompt, then single tokens (the matmul scratch reaches its size).
            s.decode(&[1, 2, 3, 4]).unwrap();
            let mut next = 5u32;
            for _ in 0..2 {
                let l = s.decode(&[next]).unwrap();
                next = (0..l.len()).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap() as u32;
            }
            let before = ALLOCS.load(Ordering::Relaxed);
            for _ in 0..8 {
                let l = s.decode(&[next]).unwrap();
                next = (0..l.len()).max_by(|&a, &b| l[a].total_cmp(&l[b])).unwrap() as u32;
            }
            let n = ALLOCS.load(Ordering::Relaxed) - before;
            assert_eq!(n, 0, "{file} ({kv} KV): {n} allocations in 8 decode steps");
        }
    }
}
