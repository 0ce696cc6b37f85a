//! `kiln inspect`: run the binary on the real models (JSON) and on malformed files.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("run kiln")
}

fn inspect_json(model: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["inspect", "--json"];
    args.extend_from_slice(extra);
    args.push(model.to_str().unwrap());
    let out = kiln(&args);
    assert!(
        out.status.success(),
        "kiln inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// Checks shared by both models: per-type sums, parameter count, bits per weight, KV sizes.
fn check_totals(j: &Value, file_len: u64) {
    let tensors = j["tensors"].as_array().unwrap();
    assert_eq!(u(&j["tensor_count"]), tensors.len() as u64);
    let tensor_bytes: u64 = tensors.iter().map(|t| u(&t["bytes"])).sum();
    assert_eq!(u(&j["tensor_bytes"]), tensor_bytes);
    // Per-type byte counts add up to the tensor data size, and counts to the tensor count.
    let types = j["types"].as_array().unwrap();
    assert_eq!(
        types.iter().map(|t| u(&t["bytes"])).sum::<u64>(),
        tensor_bytes
    );
    assert_eq!(
        types.iter().map(|t| u(&t["count"])).sum::<u64>(),
        tensors.len() as u64
    );
    let share: f64 = types.iter().map(|t| t["share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-9, "shares sum to {share}");
    // The data section holds the tensors plus at most alignment-1 padding bytes per tensor.
    let data_section = file_len - u(&j["data_offset"]);
    assert!(tensor_bytes <= data_section);
    assert!(data_section - tensor_bytes < tensors.len() as u64 * u(&j["alignment"]));
    // Parameters and bits per weight.
    let params: u64 = tensors.iter().map(|t| u(&t["elements"])).sum();
    assert_eq!(u(&j["parameters"]), params);
    let bpw = j["bits_per_weight"].as_f64().unwrap();
    assert!((bpw - tensor_bytes as f64 * 8.0 / params as f64).abs() < 1e-9);
    assert_eq!(u(&j["file_bytes"]), file_len);
    assert_eq!(u(&j["memory"]["mapped_bytes"]), file_len);
}

/// KV bytes per type at `ctx`: 2 * n_layer * ctx * n_head_kv * head_dim * bytes per element.
fn check_kv(j: &Value, ctx: u64, n_layer: u64, n_head_kv: u64, head_dim: u64) {
    assert_eq!(u(&j["memory"]["ctx"]), ctx);
    let kv = j["memory"]["kv_cache"].as_array().unwrap();
    let names: Vec<_> = kv.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(names, ["f32", "f16", "q8_0", "q4_0"]);
    let elems = 2 * n_layer * ctx * n_head_kv * head_dim;
    // bytes per element: 4, 2, 34/32, 18/32
    let expect = [elems * 4, elems * 2, elems / 32 * 34, elems / 32 * 18];
    for (row, want) in kv.iter().zip(expect) {
        assert_eq!(u(&row["kv_bytes"]), want, "{}", row["type"]);
        assert_eq!(
            u(&row["total_bytes"]),
            want + u(&j["memory"]["mapped_bytes"])
        );
    }
}

#[test]
fn inspect_smollm2() {
    let Some(path) = common::model(common::SMOLLM2) else {
        return;
    };
    let j = inspect_json(&path, &[]);
    assert_eq!(j["architecture"], "llama");
    let h = &j["hyperparameters"];
    assert_eq!(u(&h["block_count"]), 30);
    assert_eq!(u(&h["embedding_length"]), 576);
    assert_eq!(u(&h["head_count"]), 9);
    assert_eq!(u(&h["head_count_kv"]), 3);
    assert_eq!(u(&h["head_dim"]), 64);
    assert_eq!(u(&h["vocab_size"]), 49152);
    assert_eq!(u(&h["context_length"]), 8192);
    assert_eq!(h["rope_freq_base"].as_f64(), Some(100000.0));
    assert!(h["sliding_window"].is_null());
    assert_eq!(j["tokenizer"]["model"], "gpt2");
    assert_eq!(u(&j["tokenizer"]["tokens"]), 49152);
    assert_eq!(j["tokenizer"]["chat_template"], true);
    assert_eq!(u(&j["tensor_count"]), 272);
    let types: Vec<_> = j["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"q4_1") && types.contains(&"q8_0"),
        "{types:?}"
    );
    let emb = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "token_embd.weight")
        .unwrap();
    assert_eq!(emb["type"], "q8_0");
    assert_eq!(emb["shape"], serde_json::json!([576, 49152]));
    check_totals(&j, std::fs::metadata(&path).unwrap().len());
    check_kv(&j, 8192, 30, 3, 64);
    // --ctx and --no-mmap.
    let j = inspect_json(&path, &["--ctx", "1024", "--no-mmap"]);
    check_kv(&j, 1024, 30, 3, 64);
}

#[test]
fn inspect_gemma3() {
    let Some(path) = common::model(common::GEMMA3) else {
        return;
    };
    let j = inspect_json(&path, &[]);
    assert_eq!(j["architecture"], "gemma3");
    let h = &j["hyperparameters"];
    assert_eq!(u(&h["block_count"]), 18);
    assert_eq!(u(&h["embedding_length"]), 640);
    assert_eq!(u(&h["head_count"]), 4);
    assert_eq!(u(&h["head_count_kv"]), 1);
    assert_eq!(u(&h["key_length"]), 256);
    assert_eq!(u(&h["value_length"]), 256);
    // Not n_embd / n_head (= 160): gemma3 states its head size.
    assert_eq!(u(&h["head_dim"]), 256);
    assert_eq!(u(&h["vocab_size"]), 262144);
    assert_eq!(u(&h["sliding_window"]), 512);
    assert_eq!(u(&h["context_length"]), 32768);
    assert_eq!(u(&j["tokenizer"]["tokens"]), 262144);
    assert_eq!(u(&j["tensor_count"]), 236);
    let types: Vec<_> = j["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    for t in ["q5_0", "q4_K", "q6_K", "q8_0"] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    check_totals(&j, std::fs::metadata(&path).unwrap().len());
    check_kv(&j, 32768, 18, 1, 256);
    let j = inspect_json(&path, &["--ctx", "4096"]);
    check_kv(&j, 4096, 18, 1, 256);
}

#[test]
fn inspect_text_output() {
    let Some(path) = common::model(common::GEMMA3) else {
        return;
    };
    let out = kiln(&["inspect", path.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "gemma3",
        "sliding window   512",
        "vocabulary       262144",
        "tensors (236)",
        "q4_0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

fn tmp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn malformed_files_fail_with_the_typed_error() {
    // Bad magic.
    let p = tmp("bad_magic.gguf", b"GGMLxxxxxxxxxxxxxxxxxxxxxxxx");
    let out = kiln(&["inspect", p.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a GGUF file") && err.contains("bad_magic.gguf"),
        "{err}"
    );

    // A file whose tensor runs past its end.
    let mut w = kiln::gguf::GgufWriter::new();
    w.add_str("general.architecture", "llama").unwrap();
    let data = [0u8; 64];
    w.add_tensor("w", kiln::GgmlType::F32, &[16], &data)
        .unwrap();
    let bytes = w.to_vec().unwrap();
    let p = tmp("truncated.gguf", &bytes[..bytes.len() - 8]);
    for extra in [&[][..], &["--json"], &["--no-mmap"]] {
        let mut args = vec!["inspect"];
        args.extend_from_slice(extra);
        args.push(p.to_str().unwrap());
        let out = kiln(&args);
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("truncated file") && err.contains("data of tensor 'w'"),
            "{err}"
        );
    }

    // A missing file names the path.
    let out = kiln(&["inspect", "/nonexistent/x.gguf"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.gguf"));

    // A hyperparameter of the wrong type is reported with its key.
    let mut w = kiln::gguf::GgufWriter::new();
    w.add_str("general.architecture", "llama").unwrap();
    w.add_str("llama.block_count", "thirty").unwrap();
    let p = tmp("bad_hparam.gguf", &w.to_vec().unwrap());
    let out = kiln(&["inspect", "--json", p.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("llama.block_count") && err.contains("string"),
        "{err}"
    );
}

#[test]
fn inspect_minimal_file() {
    // No tensors, no architecture: still described, with nulls.
    let mut w = kiln::gguf::GgufWriter::new();
    w.add_u32("general.alignment", 64).unwrap();
    let p = tmp("empty.gguf", &w.to_vec().unwrap());
    let j = inspect_json(&p, &[]);
    assert!(j["architecture"].is_null());
    assert_eq!(u(&j["tensor_count"]), 0);
    assert_eq!(u(&j["alignment"]), 64);
    assert!(j["memory"]["ctx"].is_null());
    let out = kiln(&["inspect", p.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
