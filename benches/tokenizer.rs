//! Tokenizer speed: encoding ten copies of tests/data/GPL-3.txt (351 KB) with both real models
//! (also one copy, and the plain algorithm without the word memo), decoding the result, and
//! loading the tokenizers (Gemma 3: 262144 tokens).
//!
//! `cargo bench --bench tokenizer` (throughput is reported in bytes of text per second).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln::gguf::{GgufFile, OpenOptions};
use kiln::tokenizer::Tokenizer;
use std::hint::black_box;
use std::path::PathBuf;

fn model(file: &str) -> Option<GgufFile> {
    let dir = std::env::var_os("KILN_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                });
            cache.join("kiln").join("models")
        });
    let path = dir.join(file);
    match GgufFile::open(&path, OpenOptions { mmap: true }) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("skipping {file}: {e}");
            None
        }
    }
}

fn text() -> String {
    let gpl = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/GPL-3.txt"))
        .expect("GPL-3.txt");
    gpl.repeat(10)
}

fn bench(c: &mut Criterion) {
    let text = text();
    let mut g = c.benchmark_group("tokenizer");
    g.sample_size(20);
    for (name, file) in [
        ("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        ("gemma3", "gemma-3-270m-q4_k_m.gguf"),
    ] {
        let Some(f) = model(file) else { continue };
        let gguf = f.parse().expect("parse");
        let tok = Tokenizer::from_gguf(&gguf).expect("tokenizer");
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(format!("encode_gpl3x10_{name}"), |b| {
            b.iter(|| tok.encode(black_box(&text), false, false).expect("encode"))
        });
        // Without the word memo and SentencePiece word cuts: the plain llama.cpp algorithm.
        g.bench_function(format!("encode_plain_gpl3x10_{name}"), |b| {
            b.iter(|| {
                tok.encode_plain(black_box(&text), false, false)
                    .expect("encode")
            })
        });
        // One copy (35 KB): less repetition for the memo to use.
        let one = &text[..text.len() / 10];
        g.throughput(Throughput::Bytes(one.len() as u64));
        g.bench_function(format!("encode_gpl3x1_{name}"), |b| {
            b.iter(|| tok.encode(black_box(one), false, false).expect("encode"))
        });
        g.throughput(Throughput::Bytes(text.len() as u64));
        let ids = tok.encode(&text, false, false).expect("encode");
        g.bench_function(format!("decode_gpl3x10_{name}"), |b| {
            b.iter(|| tok.decode(black_box(&ids), false, false).expect("decode"))
        });
        g.throughput(Throughput::Elements(tok.n_vocab() as u64));
        g.bench_function(format!("load_{name}"), |b| {
            b.iter(|| Tokenizer::from_gguf(black_box(&gguf)).expect("load"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
