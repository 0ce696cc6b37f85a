//! Chat templates against tests/data/reference/chat_templates.json, byte for byte, through the
//! library and through `kiln template`, on both real models.

mod common;

use kiln::chat::{BuiltinFormat, ChatFormat, ChatMessage, ChatTemplate};
use kiln::gguf::{GgufFile, OpenOptions};
use kiln::tokenizer::Tokenizer;
use serde_json::Value;

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(common::reference("chat_templates.json"))
        .expect("chat_templates.json");
    let v: Value = serde_json::from_str(&text).expect("json");
    v["cases"].as_array().expect("cases").clone()
}

fn messages(case: &Value) -> Vec<ChatMessage> {
    case["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            ChatMessage::new(
                m["role"].as_str().expect("role"),
                m["content"].as_str().expect("content"),
            )
        })
        .collect()
}

fn check(file: &str, name: &str, format: ChatFormat) {
    let Some(path) = common::model(file) else {
        return;
    };
    let f = GgufFile::open(&path, OpenOptions { mmap: true }).expect("open");
    let g = f.parse().expect("parse");
    let tok = Tokenizer::from_gguf(&g).expect("tokenizer");
    let tmpl = ChatTemplate::from_gguf(&g, &tok).expect("template");
    assert_eq!(tmpl.format(), format);
    let cases = cases();
    assert!(!cases.is_empty());
    for (i, case) in cases.iter().enumerate() {
        let want = case[name].as_str().expect("expected prompt");
        assert_eq!(
            tmpl.render(&messages(case), true).expect("render"),
            want,
            "{name} case {i}"
        );
        // Through the CLI: stdout is exactly the prompt.
        if let Some(exe) = option_env!("CARGO_BIN_EXE_kiln") {
            let msgs = std::env::temp_dir()
                .join(format!("kiln-chat-{name}-{i}-{}.json", std::process::id()));
            std::fs::write(&msgs, case["messages"].to_string()).expect("write messages");
            let out = std::process::Command::new(exe)
                .args(["template", "-m"])
                .arg(&path)
                .arg("-f")
                .arg(&msgs)
                .output()
                .expect("run kiln");
            let _ = std::fs::remove_file(&msgs);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8(out.stdout).expect("utf-8"),
                want,
                "kiln template, {name} case {i}"
            );
            assert!(String::from_utf8_lossy(&out.stderr).contains("chat format"));
        }
    }
}

#[test]
fn smollm2_jinja_template_matches_reference() {
    check(common::SMOLLM2, common::SMOLLM2_REF, ChatFormat::Template);
}

#[test]
fn gemma3_builtin_format_matches_reference() {
    check(
        common::GEMMA3,
        common::GEMMA3_REF,
        ChatFormat::Builtin(BuiltinFormat::Gemma),
    );
}

/// The rendered chat prompts tokenize (special parsing on, BOS per the model) to the prompts of
/// the logits references.
#[test]
fn rendered_chat_prompt_tokenizes_like_the_reference_prompt() {
    for (file, name, prompt) in [
        (common::SMOLLM2, common::SMOLLM2_REF, "chat.smollm2"),
        (common::GEMMA3, common::GEMMA3_REF, "chat.gemma3"),
    ] {
        let Some(path) = common::model(file) else {
            continue;
        };
        let f = GgufFile::open(&path, OpenOptions { mmap: true }).expect("open");
        let g = f.parse().expect("parse");
        let tok = Tokenizer::from_gguf(&g).expect("tokenizer");
        let tmpl = ChatTemplate::from_gguf(&g, &tok).expect("template");
        let text = tmpl
            .render(
                &[ChatMessage::new("user", "What is the capital of France?")],
                true,
            )
            .expect("render");
        let want = std::fs::read_to_string(common::reference(&format!("prompts/{prompt}.txt")))
            .expect("prompt");
        assert_eq!(text, want, "{name}");
    }
}
