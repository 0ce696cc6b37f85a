//! Hostile tokenizer metadata in GGUF files: every defect is a typed error naming the key,
//! never a panic.

use kiln::gguf::{Gguf, GgufWriter};
use kiln::tokenizer::{Tokenizer, TokenizerError};

/// A small valid byte-level BPE tokenizer, with `edit` applied to the writer before the tokens.
fn file(edit: impl FnOnce(&mut GgufWriter)) -> Vec<u8> {
    let mut w = GgufWriter::new();
    edit(&mut w);
    w.to_vec().expect("write")
}

/// Adds one key to a writer.
type AddKey = fn(&mut GgufWriter, &str);
/// Edits a writer.
type Edit = Box<dyn Fn(&mut GgufWriter)>;

fn base(w: &mut GgufWriter, skip: &[&str]) {
    let keys: [(&str, AddKey); 5] = [
        ("tokenizer.ggml.model", |w, k| {
            w.add_str(k, "gpt2").unwrap();
        }),
        ("tokenizer.ggml.pre", |w, k| {
            w.add_str(k, "smollm").unwrap();
        }),
        ("tokenizer.ggml.tokens", |w, k| {
            w.add_str_array(k, ["a", "b", "ab", "<s>"]).unwrap();
        }),
        ("tokenizer.ggml.token_type", |w, k| {
            w.add_array::<i32>(k, &[1, 1, 1, 3]).unwrap();
        }),
        ("tokenizer.ggml.merges", |w, k| {
            w.add_str_array(k, ["a b"]).unwrap();
        }),
    ];
    for (k, f) in keys {
        if !skip.contains(&k) {
            f(w, k);
        }
    }
}

fn load(bytes: &[u8]) -> Result<Tokenizer, TokenizerError> {
    let g = Gguf::parse(bytes).expect("parse");
    Tokenizer::from_gguf(&g)
}

#[test]
fn valid_small_file_loads() {
    let t = load(&file(|w| base(w, &[]))).expect("load");
    assert_eq!(t.encode("ab<s>", false, true).unwrap(), vec![2, 3]);
    // Without special parsing "<s>" is text, and characters with no token are dropped (llama.cpp).
    assert_eq!(t.encode("ab<s>", false, false).unwrap(), vec![2]);
}

#[test]
fn wrong_types_name_the_key() {
    let cases: Vec<(&str, Edit)> = vec![
        (
            "tokenizer.ggml.token_type",
            Box::new(|w| {
                base(w, &["tokenizer.ggml.token_type"]);
                w.add_array::<f32>("tokenizer.ggml.token_type", &[1.0; 4])
                    .unwrap();
            }),
        ),
        (
            "tokenizer.ggml.tokens",
            Box::new(|w| {
                base(w, &["tokenizer.ggml.tokens"]);
                w.add_array::<u32>("tokenizer.ggml.tokens", &[1, 2, 3, 4])
                    .unwrap();
            }),
        ),
        (
            "tokenizer.ggml.merges",
            Box::new(|w| {
                base(w, &["tokenizer.ggml.merges"]);
                w.add_str("tokenizer.ggml.merges", "a b").unwrap();
            }),
        ),
        (
            "tokenizer.ggml.bos_token_id",
            Box::new(|w| {
                base(w, &[]);
                w.add_str("tokenizer.ggml.bos_token_id", "1").unwrap();
            }),
        ),
        (
            "tokenizer.ggml.add_bos_token",
            Box::new(|w| {
                base(w, &[]);
                w.add_u32("tokenizer.ggml.add_bos_token", 1).unwrap();
            }),
        ),
        (
            "tokenizer.ggml.model",
            Box::new(|w| {
                base(w, &["tokenizer.ggml.model"]);
            }),
        ),
    ];
    for (key, edit) in cases {
        let e = load(&file(|w| edit(w))).expect_err(key);
        assert!(matches!(e, TokenizerError::Gguf(_)), "{key}: {e:?}");
        assert!(e.to_string().contains(key), "{key}: {e}");
    }
}

#[test]
fn bad_lengths_ids_and_names() {
    let e = load(&file(|w| {
        base(w, &["tokenizer.ggml.token_type"]);
        w.add_array::<i32>("tokenizer.ggml.token_type", &[1, 1])
            .unwrap();
    }))
    .unwrap_err();
    assert!(
        matches!(
            e,
            TokenizerError::LengthMismatch {
                len: 2,
                expected: 4,
                ..
            }
        ),
        "{e}"
    );
    let e = load(&file(|w| {
        base(w, &[]);
        w.add_array::<f32>("tokenizer.ggml.scores", &[0.0; 5])
            .unwrap();
    }))
    .unwrap_err();
    assert!(
        matches!(e, TokenizerError::LengthMismatch { len: 5, .. }),
        "{e}"
    );
    let e = load(&file(|w| {
        base(w, &[]);
        w.add_u32("tokenizer.ggml.eos_token_id", 4).unwrap();
    }))
    .unwrap_err();
    assert!(
        matches!(
            e,
            TokenizerError::TokenIdOutOfRange {
                id: 4,
                n_vocab: 4,
                ..
            }
        ),
        "{e}"
    );
    let e = load(&file(|w| {
        base(w, &["tokenizer.ggml.pre"]);
        w.add_str("tokenizer.ggml.pre", "mystery-pre").unwrap();
    }))
    .unwrap_err();
    assert!(e.to_string().contains("mystery-pre"), "{e}");
    let e = load(&file(|w| {
        base(w, &["tokenizer.ggml.tokens"]);
        w.add_str_array("tokenizer.ggml.tokens", ["a", "b", "a", "<s>"])
            .unwrap();
    }))
    .unwrap_err();
    assert!(
        matches!(
            e,
            TokenizerError::DuplicateToken {
                first: 0,
                second: 2,
                ..
            }
        ),
        "{e}"
    );
    let e = load(&file(|w| {
        base(w, &["tokenizer.ggml.model"]);
        w.add_str("tokenizer.ggml.model", "wordpiece-9000").unwrap();
    }))
    .unwrap_err();
    assert!(matches!(e, TokenizerError::UnknownModel(_)), "{e}");
    // Missing merges for BPE.
    let e = load(&file(|w| base(w, &["tokenizer.ggml.merges"]))).unwrap_err();
    assert!(
        matches!(e, TokenizerError::MissingKey("tokenizer.ggml.merges")),
        "{e}"
    );
    // Odd but valid: merges without a space, empty and huge token texts, byte tokens with junk.
    let t = load(&file(|w| {
        base(w, &["tokenizer.ggml.merges"]);
        w.add_str_array("tokenizer.ggml.merges", ["ab", " ", "", "a  b", "zz z"])
            .unwrap();
    }))
    .expect("odd merges load");
    assert_eq!(t.encode("ab", false, false).unwrap(), vec![0, 1]);
}

#[test]
fn spm_without_byte_tokens_uses_unk() {
    let spm = file(|w| {
        w.add_str("tokenizer.ggml.model", "llama").unwrap();
        w.add_str_array(
            "tokenizer.ggml.tokens",
            ["<unk>", "<s>", "</s>", "\u{2581}a", "<0x4G>"],
        )
        .unwrap();
        w.add_array::<i32>("tokenizer.ggml.token_type", &[2, 3, 3, 1, 6])
            .unwrap();
        w.add_array::<f32>("tokenizer.ggml.scores", &[0.0, 0.0, 0.0, -1.0, 0.0])
            .unwrap();
    });
    let t = load(&spm).expect("load");
    // BOS, "▁a", then byte fallback for 'z' has no <0x7A> and no "z" token: <unk>.
    assert_eq!(t.encode("az", true, false).unwrap(), vec![1, 3, 0]);
    // A malformed byte token decodes to the value of its hex prefix, without panicking.
    assert_eq!(t.token_to_piece(4, false).unwrap(), vec![4]);
    assert!(t.decode(&[99], false, false).is_err());
}
