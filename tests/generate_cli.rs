//! `kiln run` and `kiln chat`: greedy output equal to llama.cpp's on the real models, the
//! default model, stdout holding only the generated text, and the chat commands.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kiln::gguf::{GgufFile, OpenOptions};
use kiln::tokenizer::Tokenizer;
use serde_json::Value;

fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env_remove("KILN_MODELS");
    c
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "kiln failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// llama.cpp's first `n` greedy tokens of a reference file, as llama.cpp's tools print them
/// (each token's piece, control tokens empty).
fn reference_text(model: &Path, reference: &str, n: usize) -> String {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(common::reference(&format!("logits/{reference}"))).unwrap(),
    )
    .unwrap();
    let ids: Vec<u32> = v["greedy"].as_array().unwrap()[..n]
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let file = GgufFile::open(model, OpenOptions { mmap: true }).unwrap();
    let tok = Tokenizer::from_gguf(&file.parse().unwrap()).unwrap();
    let mut bytes = Vec::new();
    for id in ids {
        tok.append_piece(id, false, &mut bytes).unwrap();
    }
    String::from_utf8(bytes).unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn run_greedy_matches_llama_cpp() {
    let Some(m) = common::model(common::SMOLLM2) else {
        return;
    };
    let out = ok(kiln()
        .args(["run", "-m"])
        .arg(&m)
        .args(["-p", "The capital of France is", "-n", "14", "--temp", "0"])
        .output()
        .unwrap());
    let want = reference_text(&m, "smollm2-135m-instruct-q4_1.capital.json", 14);
    assert_eq!(stdout(&out), want);
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "loaded",
        "prompt: 5 tokens",
        "generated: 14 tokens",
        "tokens/s",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
}

#[test]
fn run_chat_smollm2_matches_llama_cpp_with_the_default_model() {
    let Some(m) = common::model(common::SMOLLM2) else {
        return;
    };
    // No -m: the default model from the cache.
    let out = ok(kiln()
        .env("KILN_MODELS", m.parent().unwrap())
        .args(["run", "--chat", "-p", "What is the capital of France?"])
        .args(["-n", "7", "--temp", "0"])
        .output()
        .unwrap());
    let want = reference_text(&m, "smollm2-135m-instruct-q4_1.chat.smollm2.json", 7);
    assert_eq!(stdout(&out), want);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("prompt: 37 tokens"), "{err}");
}

/// Gemma 3 tokens of the chat reference that kiln must reproduce: the 16 (step 8 is a
/// close call for llama.cpp, margin 0.228, so this holds only because kiln's Gemma 3
/// arithmetic is llama.cpp's bit for bit).
const GEMMA_CHAT_TOKENS: usize = 16;

#[test]
fn run_chat_gemma3_builtin_format_matches_llama_cpp() {
    let Some(m) = common::model(common::GEMMA3) else {
        return;
    };
    let n = GEMMA_CHAT_TOKENS.to_string();
    let out = ok(kiln()
        .args(["run", "-m"])
        .arg(&m)
        .args(["--chat", "-p", "What is the capital of France?"])
        .args(["-n", &n, "--temp", "0", "--threads", "1"])
        .output()
        .unwrap());
    let want = reference_text(
        &m,
        "gemma-3-270m-q4_k_m.chat.gemma3.json",
        GEMMA_CHAT_TOKENS,
    );
    assert_eq!(stdout(&out), want);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("built-in gemma"), "{err}");
    assert!(err.contains("prompt: 16 tokens"), "{err}");
}

#[test]
fn missing_default_model_names_the_fetch_script() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-models-here");
    let out = kiln()
        .env("KILN_MODELS", &dir)
        .args(["run", "-p", "hi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scripts/fetch-models.sh"), "{err}");
    assert!(err.contains("SmolLM2-135M-Instruct.Q4_1.gguf"), "{err}");
    let out = kiln()
        .env("KILN_MODELS", &dir)
        .arg("chat")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("scripts/fetch-models.sh"));
}

/// The tiny random model written to a file once per test process.
fn tiny_model_file() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kiln-tiny-{}.gguf", std::process::id()));
    if !p.is_file() {
        std::fs::write(&p, kiln::testing::tiny_model_bytes(1).unwrap()).unwrap();
    }
    p
}

#[test]
fn run_prints_only_the_generated_text_and_honours_stop_strings() {
    let m = tiny_model_file();
    let run = |extra: &[&str]| {
        ok(kiln()
            .args(["run", "-m"])
            .arg(&m)
            .args(["-p", "Hello", "-n", "12", "--temp", "0", "--ignore-eos"])
            .args(extra)
            .output()
            .unwrap())
    };
    let full = stdout(&run(&[]));
    let lib = {
        let model = kiln::testing::tiny_model().unwrap();
        let opts = kiln::GenerateOptions::builder()
            .max_tokens(12)
            .greedy()
            .ignore_eos(true)
            .build()
            .unwrap();
        model.generate("Hello", &opts).unwrap()
    };
    assert_eq!(full, lib);
    // Stop at the third character: only the first two are printed.
    let c: String = full.chars().nth(2).unwrap().to_string();
    let cut = stdout(&run(&["--stop", &c]));
    assert_eq!(cut, &full[..full.find(&c).unwrap()]);

    // Bad options are errors before loading anything.
    let out = kiln()
        .args(["run", "-m"])
        .arg(&m)
        .args(["-p", "x", "--top-p", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let out = kiln()
        .args(["run", "-m"])
        .arg(&m)
        .args(["-p", "x", "--kv-type", "q5_1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn chat_reads_messages_resets_and_exits() {
    let m = tiny_model_file();
    let mut child = kiln()
        .args(["chat", "-m"])
        .arg(&m)
        .args(["-n", "5", "--temp", "0", "--ignore-eos"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Hello\nHow are you?\n/reset\nHello\n/exit\nnever read\n")
        .unwrap();
    let out = ok(child.wait_with_output().unwrap());
    let err = String::from_utf8_lossy(&out.stderr);
    let ctx: Vec<usize> = err
        .lines()
        .filter_map(|l| l.strip_prefix("[ctx "))
        .map(|l| l.split('/').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ctx.len(), 3, "{err}");
    assert!(
        ctx[1] > ctx[0],
        "the second turn adds to the context: {ctx:?}"
    );
    // After /reset the first turn is repeated: same context use.
    assert_eq!(ctx[2], ctx[0]);
    assert!(err.contains("[context cleared: ctx 0/"), "{err}");
    let text = stdout(&out);
    // Three prompts answered, then the prompt before /exit; the line after /exit is not read.
    assert_eq!(text.matches("> ").count(), 5, "{text:?}");
    // Same answer to the same first message after /reset (greedy).
    let answers: Vec<&str> = text.split("> ").filter(|s| !s.is_empty()).collect();
    assert_eq!(answers[0], answers[2]);
}
