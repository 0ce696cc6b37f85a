//! The tokenizer against llama.cpp's ids (tests/data/reference/tokenizer.json and the prompts of
//! tests/data/reference/logits/), on both real models.

mod common;

use kiln::gguf::{GgufFile, OpenOptions};
use kiln::tokenizer::{Tokenizer, TokenizerKind};
use serde_json::Value;

fn load(file: &str) -> Option<Tokenizer> {
    let path = common::model(file)?;
    let f = GgufFile::open(&path, OpenOptions { mmap: true }).expect("open model");
    let g = f.parse().expect("parse model");
    Some(Tokenizer::from_gguf(&g).expect("load tokenizer"))
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn reference(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(common::reference(rel)).expect("read reference"))
        .expect("json")
}

/// All 40 texts of tokenizer.json: `llama_tokenize(add_special=false, parse_special=false)`.
fn check_texts(file: &str, name: &str) {
    let Some(tok) = load(file) else { return };
    let r = reference("tokenizer.json");
    let cases = r["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 40);
    let mut failures = Vec::new();
    for c in cases {
        let text = c["text"].as_str().expect("text");
        let want = ids(&c[name]);
        let got = tok.encode(text, false, false).expect("encode");
        if got != want {
            failures.push(format!(
                "{text:?}\n  llama.cpp {want:?}\n  kiln      {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 40 texts differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_texts_match_llama_cpp() {
    check_texts(common::SMOLLM2, common::SMOLLM2_REF);
}

#[test]
fn gemma3_texts_match_llama_cpp() {
    check_texts(common::GEMMA3, common::GEMMA3_REF);
}

/// The prompts of the logits references: BOS per add_bos_token, chat prompts with special parsing.
fn check_prompts(file: &str, name: &str) {
    let Some(tok) = load(file) else { return };
    let dir = common::reference("logits");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("logits dir") {
        let path = entry.expect("entry").path();
        let fname = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .to_owned();
        let Some(prompt) = fname
            .strip_prefix(&format!("{name}."))
            .and_then(|p| p.strip_suffix(".json"))
        else {
            continue;
        };
        let want = ids(&reference(&format!("logits/{fname}"))["prompt_tokens"]);
        let text = std::fs::read_to_string(common::reference(&format!("prompts/{prompt}.txt")))
            .expect("prompt");
        let got = tok
            .encode(&text, true, prompt.starts_with("chat."))
            .expect("encode");
        assert_eq!(got, want, "prompt {prompt} of {name}");
        n += 1;
    }
    assert_eq!(n, 7, "expected 7 prompts for {name}");
}

#[test]
fn smollm2_prompts_match_logits_references() {
    check_prompts(common::SMOLLM2, common::SMOLLM2_REF);
}

#[test]
fn gemma3_prompts_match_logits_references() {
    check_prompts(common::GEMMA3, common::GEMMA3_REF);
}

#[test]
fn model_metadata() {
    if let Some(t) = load(common::SMOLLM2) {
        assert_eq!(t.kind(), TokenizerKind::Bpe);
        assert_eq!(t.pre_tokenizer(), "smollm");
        assert_eq!(t.n_vocab(), 49152);
        assert_eq!((t.bos(), t.eos(), t.eot()), (Some(1), Some(2), Some(2)));
        assert!(!t.add_bos());
        // llama.cpp's end-of-generation set: <|endoftext|>, <|im_end|>, and <reponame> (FIM repo).
        assert_eq!(t.eog_tokens(), &[0, 2, 4]);
        assert_eq!(t.newline(), Some(198));
    }
    if let Some(t) = load(common::GEMMA3) {
        assert_eq!(t.kind(), TokenizerKind::Spm);
        assert_eq!(t.n_vocab(), 262144);
        assert_eq!((t.bos(), t.eos(), t.eot()), (Some(2), Some(1), Some(106)));
        assert!(t.add_bos() && !t.add_space_prefix());
        // <eos>, <end_of_turn>, and "</s>" (llama.cpp's EOG text list has it, for PaddleOCR).
        assert_eq!(t.eog_tokens(), &[1, 106, 212]);
        assert_eq!(t.token_id("<0x0A>"), t.newline());
    }
}

/// Decoding llama.cpp's ids gives the text back (SmolLM2: byte-level, exact; Gemma: exact too,
/// since no text has characters outside its vocabulary).
#[test]
fn decode_reference_ids_roundtrip() {
    for (file, name) in [
        (common::SMOLLM2, common::SMOLLM2_REF),
        (common::GEMMA3, common::GEMMA3_REF),
    ] {
        let Some(tok) = load(file) else { continue };
        let r = reference("tokenizer.json");
        for c in r["cases"].as_array().expect("cases") {
            let text = c["text"].as_str().expect("text");
            let got = tok.decode(&ids(&c[name]), false, false).expect("decode");
            assert_eq!(String::from_utf8_lossy(&got), text, "{name}");
            // Streaming gives the same text, one whole character at a time.
            let mut s = tok.stream_decoder(false);
            let mut streamed = String::new();
            for id in ids(&c[name]) {
                streamed += &s.push(id).expect("push");
            }
            streamed += &s.finish();
            assert_eq!(streamed, text, "{name} streaming");
        }
    }
}

/// The fast path (word memo, SentencePiece words) gives exactly the plain algorithm's ids.
#[test]
fn fast_path_equals_plain_algorithm() {
    let gpl = std::fs::read_to_string(common::data("GPL-3.txt")).expect("GPL-3.txt");
    let mut text = gpl.clone();
    // Mixed scripts, odd spaces, special-token texts.
    text +=
        "  Привет,  мир!  こんにちは 世界 > </ a>  </s><end_of_turn> <|im_end|>\t\t x  \u{a0}y ";
    for file in [common::SMOLLM2, common::GEMMA3] {
        let Some(tok) = load(file) else { continue };
        for parse in [false, true] {
            assert_eq!(
                tok.encode(&text, true, parse).unwrap(),
                tok.encode_plain(&text, true, parse).unwrap(),
                "{file}"
            );
        }
    }
}
