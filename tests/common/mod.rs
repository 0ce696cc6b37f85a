//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub mod rng;

/// The weight types whose kernels follow llama.cpp's x86 float order exactly on every ISA
/// and every matmul path, so that kiln's logits are llama.cpp's bit for bit (see
/// `kernels::scalar`).
pub const EXACT_TYPES: [kiln::GgmlType; 9] = [
    kiln::GgmlType::Q4_0,
    kiln::GgmlType::Q4_1,
    kiln::GgmlType::Q5_0,
    kiln::GgmlType::Q5_1,
    kiln::GgmlType::Q8_0,
    kiln::GgmlType::IQ4_NL,
    kiln::GgmlType::Q4_K,
    kiln::GgmlType::Q5_K,
    kiln::GgmlType::Q6_K,
];

/// File name of the default model (SmolLM2-135M-Instruct Q4_1, llama).
pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// File name of Gemma 3 270M Q4_K_M (gemma3).
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";
/// Names the reference files use for the two models.
pub const SMOLLM2_REF: &str = "smollm2-135m-instruct-q4_1";
pub const GEMMA3_REF: &str = "gemma-3-270m-q4_k_m";

/// The model cache, as `scripts/fetch-models.sh` fills it.
pub fn model_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KILN_MODELS") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    cache.join("kiln").join("models")
}

/// The path of a real model, or `None` (with a loud message) when it has not been fetched.
/// In CI (`CI` set) a missing model is a failure, never a skip.
pub fn model(file: &str) -> Option<PathBuf> {
    let p = model_dir().join(file);
    if p.is_file() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "model {} is missing in CI: run scripts/fetch-models.sh",
            p.display()
        );
    }
    eprintln!(
        "\n!!!!! SKIPPING: model {} not found; run scripts/fetch-models.sh to test against it !!!!!\n",
        p.display()
    );
    None
}

/// A file under `tests/data/`.
pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// A file under `tests/data/reference/` (llama.cpp's outputs, see tests/data/README.md).
pub fn reference(rel: &str) -> PathBuf {
    data("reference").join(rel)
}
