//! GGUF parse cost on the real models (header, metadata incl. UTF-8 validation of every token
//! string, tensor infos; no tensor data), and iterating Gemma 3's 262144 token strings.
//!
//! `cargo bench --bench gguf` (needs scripts/fetch-models.sh; skips models that are missing)

use std::path::PathBuf;

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use kiln::gguf::{GgufFile, OpenOptions};

fn model(file: &str) -> Option<PathBuf> {
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
    let p = dir.join(file);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping {file}: not found in {}", dir.display());
        None
    }
}

fn bench(c: &mut Criterion) {
    for (label, file) in [
        ("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        ("gemma3", "gemma-3-270m-q4_k_m.gguf"),
    ] {
        let Some(path) = model(file) else { continue };
        let f = GgufFile::open(&path, OpenOptions::default()).expect("open");
        c.bench_function(&format!("gguf_parse/{label}"), |b| {
            b.iter(|| black_box(f.parse().expect("parse")).tensors().len())
        });
        let g = f.parse().expect("parse");
        let toks = *g.get_array("tokenizer.ggml.tokens").expect("tokens");
        c.bench_function(&format!("gguf_iter_str/{label}"), |b| {
            b.iter(|| toks.iter_str().map(|s| black_box(s).len()).sum::<usize>())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
