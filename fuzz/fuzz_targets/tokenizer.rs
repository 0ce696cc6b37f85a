//! Arbitrary bytes through the tokenizers: encoding and decoding never panic; byte-level BPE
//! pieces concatenate back to the input; the fast encoder equals the plain llama.cpp algorithm.
//!
//! Uses small built-in vocabularies (BPE with several pre-tokenizers, SentencePiece), plus the
//! real models when `KILN_MODELS` (or ~/.cache/kiln/models) has them.
#![no_main]

use std::sync::OnceLock;

use kiln::tokenizer::{Tokenizer, TokenizerData, TokenizerKind};
use libfuzzer_sys::fuzz_target;

fn bpe_vocab() -> (Vec<String>, Vec<i32>, Vec<String>) {
    // GPT-2 byte characters for all 256 bytes, some merges, a control and a user-defined token.
    let mut tokens: Vec<String> = Vec::new();
    for b in 0..=255u32 {
        tokens.push(byte_char(b).to_string());
    }
    let merges = [
        "Ġ t",
        "h e",
        "Ġt he",
        "i n",
        "Ġ a",
        "e r",
        "Ġ Ġ",
        "ĠĠ ĠĠ",
        "Ċ Ċ",
        "1 2",
        "' s",
        "Ð ¿",
    ];
    for m in merges {
        tokens.push(m.replace(' ', ""));
    }
    let mut types = vec![1; tokens.len()];
    tokens.push("<|ctl|>".into());
    types.push(3);
    tokens.push("<u>".into());
    types.push(4);
    tokens.push("  ".into()); // user-defined run of spaces
    types.push(4);
    (
        tokens,
        types,
        merges.iter().map(|s| s.to_string()).collect(),
    )
}

fn spm_vocab() -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut tokens = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u32 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    for t in [
        "▁", "▁t", "he", "▁the", "▁a", "in", "er", "▁▁", "é", "▁é", ">▁</", "ab", "▁ab",
    ] {
        tokens.push(t.into());
        types.push(1);
    }
    tokens.push("\n\n".into());
    types.push(4);
    let scores = (0..tokens.len())
        .map(|i| -((i * 7919 % 101) as f32) / 10.0)
        .collect();
    (tokens, scores, types)
}

/// GPT-2's character for byte `b`.
fn byte_char(b: u32) -> char {
    let c = match b {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => b,
        _ => {
            256 + (0..b)
                .filter(|&x| !matches!(x, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF))
                .count() as u32
        }
    };
    char::from_u32(c).unwrap()
}

/// Byte-level BPE with a token for every byte: only then is every text representable (llama.cpp
/// drops bytes it has no token for; SmolLM2 lacks 21 of them).
fn byte_complete(tok: &Tokenizer) -> bool {
    tok.kind() == TokenizerKind::Bpe
        && (0..256).all(|b| tok.token_id(&byte_char(b).to_string()).is_some())
}

fn tokenizers() -> &'static Vec<(Tokenizer, bool)> {
    static T: OnceLock<Vec<(Tokenizer, bool)>> = OnceLock::new();
    T.get_or_init(|| {
        let mut v = Vec::new();
        let (tokens, types, merges) = bpe_vocab();
        for pre in [
            "smollm",
            "llama3",
            "qwen2",
            "gpt-4o",
            "tekken",
            "deepseek-llm",
            "deepseek-coder",
            "default",
            "falcon",
            "gpt-2",
        ] {
            let d = TokenizerData {
                model: "gpt2",
                pre: Some(pre),
                tokens: tokens.iter().map(String::as_str).collect(),
                token_types: Some(types.clone()),
                merges: Some(merges.iter().map(String::as_str).collect()),
                ..Default::default()
            };
            v.push(Tokenizer::from_data(d).expect("bpe vocab"));
        }
        let (tokens, scores, types) = spm_vocab();
        for prefix in [false, true] {
            let d = TokenizerData {
                model: "llama",
                tokens: tokens.iter().map(String::as_str).collect(),
                scores: Some(scores.clone()),
                token_types: Some(types.clone()),
                add_space_prefix: Some(prefix),
                ..Default::default()
            };
            v.push(Tokenizer::from_data(d).expect("spm vocab"));
        }
        let dir = std::env::var_os("KILN_MODELS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                    .join(".cache/kiln/models")
            });
        for f in [
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "gemma-3-270m-q4_k_m.gguf",
        ] {
            let Ok(file) =
                kiln::gguf::GgufFile::open(dir.join(f), kiln::gguf::OpenOptions { mmap: true })
            else {
                continue;
            };
            if let Ok(g) = file.parse()
                && let Ok(t) = Tokenizer::from_gguf(&g)
            {
                v.push(t);
            }
        }
        v.into_iter()
            .map(|t| {
                let complete = byte_complete(&t);
                (t, complete)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let parse_special = mode & 1 != 0;
    let add_special = mode & 2 != 0;
    for (tok, complete) in tokenizers() {
        let complete = *complete;
        let ids = match tok.encode(&text, add_special, parse_special) {
            Ok(ids) => ids,
            Err(_) => continue,
        };
        assert_eq!(
            Some(&ids),
            tok.encode_plain(&text, add_special, parse_special)
                .ok()
                .as_ref(),
            "fast != plain"
        );
        assert!(ids.iter().all(|&id| (id as usize) < tok.n_vocab()));
        let _ = tok.decode(&ids, true, false).expect("decode own ids");
        if complete && !add_special {
            let mut pieces = Vec::new();
            for &id in &ids {
                tok.append_piece(id, true, &mut pieces).expect("piece");
            }
            assert_eq!(pieces, text.as_bytes(), "byte-level BPE roundtrip");
        }
        let mut stream = tok.stream_decoder(true);
        let mut streamed = String::new();
        for &id in &ids {
            streamed += &stream.push(id).expect("push");
        }
        streamed += &stream.finish();
        if complete && !add_special {
            assert_eq!(streamed, text, "streamed roundtrip");
        }
        // Arbitrary ids (some out of range): errors, never panics.
        let raw: Vec<u32> = rest
            .chunks(3)
            .map(|c| c.iter().fold(0u32, |a, &b| a << 8 | b as u32))
            .collect();
        let _ = tok.decode(&raw, mode & 4 != 0, mode & 8 != 0);
        let mut s = tok.stream_decoder(mode & 8 != 0);
        for &id in &raw {
            let _ = s.push(id);
        }
        let _ = s.finish();
    }
});
