//! `kiln tokenize` on the real models.

mod common;

use std::process::Command;

fn kiln(args: &[&str], model: &std::path::Path) -> (String, String, bool) {
    let exe = env!("CARGO_BIN_EXE_kiln");
    let out = Command::new(exe)
        .arg("tokenize")
        .arg("-m")
        .arg(model)
        .args(args)
        .output()
        .expect("run kiln");
    (
        String::from_utf8(out.stdout).expect("utf-8"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn tokenize_prints_ids_and_pieces() {
    if let Some(m) = common::model(common::SMOLLM2) {
        assert_eq!(kiln(&["-p", "Hello world"], &m).0, "[19556,905]\n");
        assert_eq!(
            kiln(&["-p", "<|im_start|>hi", "--special"], &m).0,
            "[1,6004]\n"
        );
        assert_eq!(
            kiln(&["-p", " world", "--pieces"], &m).0,
            "[[905,\" world\"]]\n"
        );
        let prompt = common::reference("prompts/chat.smollm2.txt");
        let (out, _, ok) = kiln(
            &["-f", prompt.to_str().expect("path"), "--special", "--bos"],
            &m,
        );
        assert!(ok && out.starts_with("[1,9690,198,"), "{out}");
    }
    if let Some(m) = common::model(common::GEMMA3) {
        assert_eq!(
            kiln(&["-p", "Hello world", "--bos"], &m).0,
            "[2,9259,1902]\n"
        );
        assert_eq!(kiln(&["-p", "Hello world"], &m).0, "[9259,1902]\n");
        let (_, err, ok) = kiln(&[], &m);
        assert!(!ok && err.contains("--prompt"), "{err}");
        let (_, err, ok) = kiln(&["-f", "/nonexistent/file"], &m);
        assert!(!ok && err.contains("/nonexistent/file"), "{err}");
    }
}
