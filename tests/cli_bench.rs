//! `kiln bench`: llama-bench's rows (order, fields, list arguments, dropped tests) on the tiny
//! random model and on SmolLM2. Never asserts a speed, only that one was measured.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

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

/// The tiny random model written to a file once per test process.
fn tiny_model_file() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kiln-bench-tiny-{}.gguf", std::process::id()));
    if !p.is_file() {
        std::fs::write(&p, kiln::testing::tiny_model_bytes(1).unwrap()).unwrap();
    }
    p
}

fn bench_json(model: &PathBuf, extra: &[&str]) -> Vec<Value> {
    let out = ok(kiln()
        .args(["bench", "-m"])
        .arg(model)
        .args(["-o", "json"])
        .args(extra)
        .output()
        .unwrap());
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)));
    v.as_array().expect("a JSON array of rows").clone()
}

/// The fields every row has, with llama-bench's names and types.
fn check_row(row: &Value, reps: usize) {
    for key in [
        "model_filename",
        "model_type",
        "type_k",
        "type_v",
        "test_time",
    ] {
        assert!(row[key].is_string(), "{key} is not a string: {row}");
    }
    for key in [
        "model_size",
        "model_n_params",
        "n_threads",
        "n_batch",
        "n_prompt",
        "n_gen",
        "avg_ns",
        "stddev_ns",
    ] {
        assert!(row[key].is_u64(), "{key} is not an integer: {row}");
    }
    assert!(row["model_size"].as_u64().unwrap() > 0);
    assert!(row["model_n_params"].as_u64().unwrap() > 0);
    let avg_ts = row["avg_ts"].as_f64().expect("avg_ts");
    assert!(avg_ts.is_finite() && avg_ts > 0.0, "{row}");
    let sd = row["stddev_ts"].as_f64().expect("stddev_ts");
    assert!(sd.is_finite() && sd >= 0.0, "{row}");
    let ns = row["samples_ns"].as_array().unwrap();
    let ts = row["samples_ts"].as_array().unwrap();
    assert_eq!(ns.len(), reps);
    assert_eq!(ts.len(), reps);
    // tokens/s of each sample is the tokens over the sample's time.
    let n = row["n_prompt"].as_u64().unwrap() + row["n_gen"].as_u64().unwrap();
    for (a, b) in ns.iter().zip(ts) {
        let want = 1e9 * n as f64 / a.as_u64().unwrap() as f64;
        assert!((b.as_f64().unwrap() - want).abs() <= 1e-9 * want, "{row}");
    }
    let mean = ts.iter().map(|t| t.as_f64().unwrap()).sum::<f64>() / reps as f64;
    assert!((avg_ts - mean).abs() <= 1e-9 * mean, "{row}");
}

#[test]
fn list_arguments_give_one_row_per_combination_in_llama_bench_order() {
    let m = tiny_model_file();
    let rows = bench_json(&m, &["-p", "8,16", "-n", "4", "-t", "1,2", "-r", "2"]);
    let got: Vec<(u64, u64, u64)> = rows
        .iter()
        .map(|r| {
            check_row(r, 2);
            (
                r["n_threads"].as_u64().unwrap(),
                r["n_prompt"].as_u64().unwrap(),
                r["n_gen"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, 8, 0),
            (1, 16, 0),
            (1, 0, 4),
            (2, 8, 0),
            (2, 16, 0),
            (2, 0, 4)
        ]
    );
    for r in &rows {
        assert_eq!(r["type_k"], "f16");
        assert_eq!(r["type_v"], "f16");
        assert_eq!(r["n_batch"], 512);
        assert_eq!(r["model_filename"].as_str().unwrap(), m.to_str().unwrap());
    }

    // KV types and batch sizes multiply the rows too; -p 0 drops the pp test.
    let rows = bench_json(
        &m,
        &[
            "-p",
            "0",
            "-n",
            "3",
            "--kv-type",
            "f32,q8_0",
            "-b",
            "4",
            "-r",
            "1",
        ],
    );
    assert_eq!(rows.len(), 2);
    for (r, kv) in rows.iter().zip(["f32", "q8_0"]) {
        check_row(r, 1);
        assert_eq!(r["n_prompt"], 0);
        assert_eq!(r["n_gen"], 3);
        assert_eq!(r["type_k"], kv);
        assert_eq!(r["n_batch"], 4);
    }
    // A prompt longer than the batch is evaluated in several batches.
    let rows = bench_json(&m, &["-p", "10", "-n", "0", "-b", "4", "-r", "1"]);
    assert_eq!(rows.len(), 1);
    check_row(&rows[0], 1);
}

#[test]
fn markdown_table_like_llama_bench() {
    let m = tiny_model_file();
    let out = ok(kiln()
        .args(["bench", "-m"])
        .arg(&m)
        .args(["-p", "8", "-n", "0,2", "-t", "1", "-r", "1"])
        .output()
        .unwrap());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(lines.len(), 4, "{text}");
    let header: Vec<&str> = lines[0]
        .split('|')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "model", "size", "params", "backend", "threads", "test", "t/s"
        ]
    );
    assert!(lines[1].contains("---:"), "{text}");
    let test_col = |l: &str| l.split('|').map(str::trim).nth(6).unwrap().to_string();
    assert_eq!(test_col(lines[2]), "pp8");
    assert_eq!(test_col(lines[3]), "tg2");
    assert!(lines[2].contains(" ± "), "{text}");
    assert!(lines[2].contains("CPU"), "{text}");
}

#[test]
fn bad_arguments_are_errors() {
    let m = tiny_model_file();
    for extra in [
        &["-o", "xml"][..],
        &["-t", "0"],
        &["-p", "x"],
        &["-r", "0"],
        &["--kv-type", "q5_1"],
        &["-b", "0"],
    ] {
        let out = kiln()
            .args(["bench", "-m"])
            .arg(&m)
            .args(["-p", "4", "-n", "2", "-r", "1"])
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{extra:?} was accepted");
        assert!(out.stdout.is_empty(), "{extra:?}: output before the error");
    }
}

#[test]
fn smollm2_rows_report_llama_bench_size_and_params() {
    let Some(m) = common::model(common::SMOLLM2) else {
        return;
    };
    let rows = bench_json(&m, &["-p", "8", "-n", "4", "-r", "1", "-t", "1"]);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        check_row(r, 1);
        // llama-bench's figures for this file (tensor bytes and elements).
        assert_eq!(r["model_size"], 96_576_768);
        assert_eq!(r["model_n_params"], 134_515_008);
        assert!(r["model_type"].as_str().unwrap().starts_with("llama "));
        assert!(r["model_type"].as_str().unwrap().ends_with(" Q4_1"));
    }
    assert_eq!(
        (rows[0]["n_prompt"].as_u64(), rows[1]["n_gen"].as_u64()),
        (Some(8), Some(4))
    );
}
