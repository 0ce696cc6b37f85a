//! `kiln bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r 5] [--kv-type f16] [-o md|json]`:
//! prompt processing and generation speed with llama.cpp's `llama-bench` semantics, so the two
//! can be compared row by row (and tools reading llama-bench's JSON read kiln's).
//!
//! - `ppN`: N random token ids (the first is BOS when the model adds one) evaluated as one
//!   batch (split in `n_batch` chunks) from an empty context; logits for the last one only.
//! - `tgN`: N tokens evaluated one at a time from an empty context, each a fresh random id
//!   (the first is BOS when the model adds one); logits for every step, no sampling.
//! - One warm-up run per row (the whole prompt for pp, one token for tg), then `-r` timed runs,
//!   each from an empty context; the row reports the mean and the sample standard deviation of
//!   the per-run tokens/s.
//! - List arguments (`-p 128,512 -t 1,2`, ranges `first-last[+step|*mult]` as llama-bench)
//!   give one row per combination, in llama-bench's order: model, batch size, KV type, threads,
//!   then every prompt size followed by every generation size; a size of 0 is skipped.
//! - Random ids come from a fixed-seed xoshiro256** stream (llama-bench uses `rand()` with its
//!   default seed): which ids are drawn does not change the work done.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kiln::GgmlType;
use kiln::gguf::GgufFile;
use kiln::model::{Model, Session, SessionOptions};
use kiln::sampling::Xoshiro256StarStar;

use crate::CliResult;
use crate::common::{DEFAULT_MODEL, model_dir};

/// Seed of the random token ids.
const TOKEN_SEED: u64 = 0x6b69_6c6e;

/// Arguments of `kiln bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// GGUF model; repeat for several (default: SmolLM2-135M-Instruct Q4_1 from the model cache).
    #[arg(short = 'm', long = "model", value_name = "MODEL.gguf")]
    pub model: Vec<PathBuf>,
    /// Prompt sizes (pp tests); a list or range, 0 drops the pp test.
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_name = "N,...",
        default_value = "512"
    )]
    pub n_prompt: Vec<String>,
    /// Generation lengths (tg tests); a list or range, 0 drops the tg test.
    #[arg(
        short = 'n',
        long = "n-gen",
        value_name = "N,...",
        default_value = "128"
    )]
    pub n_gen: Vec<String>,
    /// Worker threads; a list or range (default: all cores).
    #[arg(short = 't', long = "threads", value_name = "N,...")]
    pub threads: Vec<String>,
    /// Tokens per forward batch; a list or range.
    #[arg(
        short = 'b',
        long = "batch-size",
        value_name = "N,...",
        default_value = "512"
    )]
    pub batch: Vec<String>,
    /// Timed runs per test.
    #[arg(
        short = 'r',
        long = "repetitions",
        value_name = "N",
        default_value_t = 5
    )]
    pub reps: usize,
    /// KV cache types (keys and values): f32, f16, q8_0, q4_0; a comma-separated list.
    #[arg(long = "kv-type", value_name = "T,...", default_value = "f16")]
    pub kv_type: Vec<String>,
    /// Output format: md (a Markdown table), json (an array of rows) or jsonl (a row per line).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "md|json|jsonl",
        default_value = "md"
    )]
    pub output: String,
    /// Skip the warm-up run of each test.
    #[arg(long)]
    pub no_warmup: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Markdown,
    Json,
    Jsonl,
}

/// One test: one row of the output.
#[derive(Clone, Debug)]
struct Instance {
    model: usize,
    n_batch: usize,
    kv_type: GgmlType,
    n_threads: usize,
    n_prompt: usize,
    n_gen: usize,
}

/// What a row says about its model.
struct ModelInfo {
    filename: String,
    model_type: String,
    size: u64,
    n_params: u64,
}

/// A finished test.
struct Row<'a> {
    inst: &'a Instance,
    info: &'a ModelInfo,
    time: String,
    samples_ns: Vec<u64>,
}

/// Runs `kiln bench`.
pub fn run(args: Args) -> CliResult {
    let format = match args.output.as_str() {
        "md" => Format::Markdown,
        "json" => Format::Json,
        "jsonl" => Format::Jsonl,
        o => return Err(format!("unknown output format {o:?} (md, json, jsonl)").into()),
    };
    let models = if args.model.is_empty() {
        let p = model_dir().join(DEFAULT_MODEL);
        if !p.is_file() {
            return Err(format!(
                "no model given (-m MODEL.gguf) and the default model {} is missing; \
                 fetch it with: scripts/fetch-models.sh smollm2",
                p.display()
            )
            .into());
        }
        vec![p]
    } else {
        args.model.clone()
    };
    let n_prompt = parse_lists(&args.n_prompt, "-p")?;
    let n_gen = parse_lists(&args.n_gen, "-n")?;
    let threads = if args.threads.is_empty() {
        vec![std::thread::available_parallelism().map_or(1, |n| n.get())]
    } else {
        parse_lists(&args.threads, "-t")?
    };
    if threads.contains(&0) {
        return Err("-t: thread counts must be at least 1".into());
    }
    let batch = parse_lists(&args.batch, "-b")?;
    if batch.contains(&0) {
        return Err("-b: batch sizes must be at least 1".into());
    }
    let mut kv_types = Vec::new();
    for s in args.kv_type.iter().flat_map(|s| s.split(',')) {
        kv_types.push(crate::logits::parse_kv_type(s.trim())?);
    }
    if args.reps == 0 {
        return Err("-r: at least one repetition".into());
    }

    // llama-bench's order: the model outermost, then batch, KV type, threads; inside, the pp
    // tests then the tg tests.
    let mut instances = Vec::new();
    for model in 0..models.len() {
        for &n_batch in &batch {
            for &kv_type in &kv_types {
                for &n_threads in &threads {
                    let base = Instance {
                        model,
                        n_batch,
                        kv_type,
                        n_threads,
                        n_prompt: 0,
                        n_gen: 0,
                    };
                    for &p in n_prompt.iter().filter(|&&p| p > 0) {
                        instances.push(Instance {
                            n_prompt: p,
                            ..base.clone()
                        });
                    }
                    for &g in n_gen.iter().filter(|&&g| g > 0) {
                        instances.push(Instance {
                            n_gen: g,
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }

    let mut out = std::io::stdout().lock();
    let columns = Columns {
        n_batch: batch != [kiln::model::session::DEFAULT_N_BATCH],
        kv_type: kv_types != [GgmlType::F16],
    };
    match format {
        Format::Markdown => markdown_header(&mut out, &columns)?,
        Format::Json => writeln!(out, "[")?,
        Format::Jsonl => {}
    }
    out.flush()?;

    let mut loaded: Option<(usize, Arc<Model>, ModelInfo)> = None;
    for (i, inst) in instances.iter().enumerate() {
        if loaded.as_ref().is_none_or(|(m, _, _)| *m != inst.model) {
            // Free the previous model before mapping the next.
            drop(loaded.take());
            let path = &models[inst.model];
            let model =
                Arc::new(Model::load(path).map_err(|e| format!("{}: {e}", path.display()))?);
            let info = model_info(&model, path)?;
            loaded = Some((inst.model, model, info));
        }
        let Some((_, model, info)) = &loaded else {
            unreachable!("the model was loaded above");
        };
        let samples_ns = run_instance(model, inst, args.reps, !args.no_warmup)?;
        let row = Row {
            inst,
            info,
            time: rfc3339_now(),
            samples_ns,
        };
        match format {
            Format::Markdown => markdown_row(&mut out, &columns, &row)?,
            Format::Json => {
                if i > 0 {
                    writeln!(out, ",")?;
                }
                write!(out, "{}", json_row(&row, true))?;
            }
            Format::Jsonl => writeln!(out, "{}", json_row(&row, false))?,
        }
        out.flush()?;
    }
    match format {
        Format::Markdown => writeln!(out, "\nbuild: kiln {}", env!("CARGO_PKG_VERSION"))?,
        Format::Json => write!(out, "\n]\n")?,
        Format::Jsonl => {}
    }
    out.flush()?;
    Ok(())
}

/// Runs one test: the warm-up, then `reps` timed runs; returns the run times in ns.
fn run_instance(
    model: &Arc<Model>,
    inst: &Instance,
    reps: usize,
    warmup: bool,
) -> Result<Vec<u64>, Box<dyn std::error::Error + Send + Sync>> {
    let n_ctx = inst.n_prompt + inst.n_gen;
    let opts = SessionOptions {
        n_ctx: Some(n_ctx),
        allow_beyond_training_context: true,
        kv_type: inst.kv_type,
        n_threads: inst.n_threads,
        n_batch: inst.n_batch,
        ..SessionOptions::default()
    };
    let mut session = Session::new(Arc::clone(model), &opts)?;
    let n_vocab = model.config().n_vocab as u64;
    let bos = model
        .tokenizer()
        .filter(|t| t.add_bos())
        .and_then(|t| t.bos());
    let mut rng = Xoshiro256StarStar::seed_from_u64(TOKEN_SEED);
    let mut random = move || (rng.next_u64() % n_vocab) as u32;
    // [n_prompt] token ids, refilled before each prompt run.
    let mut prompt = vec![0u32; inst.n_prompt];

    let mut run_prompt = |session: &mut Session| -> kiln::Result<()> {
        for (i, t) in prompt.iter_mut().enumerate() {
            *t = match (i, bos) {
                (0, Some(b)) => b,
                _ => random(),
            };
        }
        let n_batch = inst.n_batch;
        for chunk in prompt.chunks(n_batch) {
            session.decode(chunk)?;
        }
        Ok(())
    };
    let mut rng_gen = Xoshiro256StarStar::seed_from_u64(TOKEN_SEED ^ 1);
    let mut run_gen = |session: &mut Session, n: usize| -> kiln::Result<()> {
        let mut token = bos.unwrap_or_else(|| (rng_gen.next_u64() % n_vocab) as u32);
        for _ in 0..n {
            session.decode(&[token])?;
            token = (rng_gen.next_u64() % n_vocab) as u32;
        }
        Ok(())
    };

    if warmup {
        if inst.n_prompt > 0 {
            run_prompt(&mut session)?;
        }
        if inst.n_gen > 0 {
            run_gen(&mut session, 1)?;
        }
    }
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        session.clear();
        let t0 = Instant::now();
        if inst.n_prompt > 0 {
            run_prompt(&mut session)?;
        }
        if inst.n_gen > 0 {
            run_gen(&mut session, inst.n_gen)?;
        }
        samples.push(
            u64::try_from(t0.elapsed().as_nanos())
                .unwrap_or(u64::MAX)
                .max(1),
        );
    }
    Ok(samples)
}

/// Size, parameter count and description of a model, as llama-bench reports them.
fn model_info(
    model: &Model,
    path: &std::path::Path,
) -> Result<ModelInfo, Box<dyn std::error::Error + Send + Sync>> {
    let file: &GgufFile = model.file();
    let g = file.parse()?;
    let (mut size, mut n_params) = (0u64, 0u64);
    for t in g.tensors() {
        size = size.saturating_add(t.n_bytes());
        n_params = n_params.saturating_add(t.n_elements());
    }
    let arch = g.get_str("general.architecture").unwrap_or("?");
    let ftype = g
        .get_u32("general.file_type")
        .ok()
        .and_then(ftype_name)
        .unwrap_or("?");
    Ok(ModelInfo {
        filename: path.display().to_string(),
        model_type: format!("{arch} {} {ftype}", size_label(n_params)),
        size,
        n_params,
    })
}

/// Parameter count as a size label: `135M`, `1.2B`.
fn size_label(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.1}B", n as f64 / 1e9)
    } else {
        format!("{}M", (n as f64 / 1e6).round())
    }
}

/// llama.cpp's name of a `general.file_type` (`llama_model_ftype_name`).
fn ftype_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "all F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K - Medium",
        11 => "Q3_K - Small",
        12 => "Q3_K - Medium",
        13 => "Q3_K - Large",
        14 => "Q4_K - Small",
        15 => "Q4_K - Medium",
        16 => "Q5_K - Small",
        17 => "Q5_K - Medium",
        18 => "Q6_K",
        21 => "Q2_K - Small",
        25 => "IQ4_NL - 4.5 bpw",
        30 => "IQ4_XS - 4.25 bpw",
        32 => "BF16",
        _ => return None,
    })
}

/// Parses llama-bench's integer lists: `128,512`, ranges `first-last`, `first-last+step`,
/// `first-last*mult`; repeated flags append.
fn parse_lists(values: &[String], flag: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for v in values {
        for item in v.split(',') {
            parse_range(item.trim(), &mut out).map_err(|e| format!("{flag} {v:?}: {e}"))?;
        }
    }
    Ok(out)
}

/// At most this many values per list: a typo must not allocate without bound.
const MAX_LIST: usize = 4096;

fn parse_range(s: &str, out: &mut Vec<usize>) -> Result<(), String> {
    let num = |t: &str| {
        t.parse::<usize>()
            .map_err(|_| format!("{t:?} is not a non-negative integer"))
    };
    let (first, rest) = match s.find('-') {
        None => {
            out.push(num(s)?);
            return Ok(());
        }
        Some(i) => (num(&s[..i])?, &s[i + 1..]),
    };
    let (last, op, step) = match rest.find(['+', '*']) {
        None => (num(rest)?, '+', 1),
        Some(i) => (
            num(&rest[..i])?,
            rest.as_bytes()[i] as char,
            num(&rest[i + 1..])?,
        ),
    };
    let mut i = first;
    while i <= last {
        if out.len() >= MAX_LIST {
            return Err(format!("more than {MAX_LIST} values"));
        }
        out.push(i);
        let next = if op == '+' {
            i.checked_add(step)
        } else {
            i.checked_mul(step)
        };
        match next {
            Some(n) if n > i => i = n,
            Some(_) => return Err("the range does not advance".into()),
            None => break,
        }
    }
    Ok(())
}

/// Which optional columns the Markdown table shows (llama-bench shows a parameter's column
/// when it differs from the default or has several values).
struct Columns {
    n_batch: bool,
    kv_type: bool,
}

impl Columns {
    /// `(name, width)`; a negative width aligns left.
    fn fields(&self) -> Vec<(&'static str, i32)> {
        let mut f = vec![
            ("model", -30),
            ("size", 10),
            ("params", 10),
            ("backend", -10),
            ("threads", 7),
        ];
        if self.n_batch {
            f.push(("n_batch", 7));
        }
        if self.kv_type {
            f.push(("type_k", 6));
            f.push(("type_v", 6));
        }
        f.push(("test", 15));
        f.push(("t/s", 20));
        f
    }
}

fn cell(w: &mut impl Write, s: &str, width: i32) -> std::io::Result<()> {
    let n = width.unsigned_abs() as usize;
    if width < 0 {
        write!(w, " {s:<n$} |")
    } else {
        write!(w, " {s:>n$} |")
    }
}

fn markdown_header(w: &mut impl Write, c: &Columns) -> std::io::Result<()> {
    write!(w, "|")?;
    for (name, width) in c.fields() {
        cell(w, name, width)?;
    }
    write!(w, "\n|")?;
    for (_, width) in c.fields() {
        let n = width.unsigned_abs() as usize;
        let end = if width > 0 { ':' } else { '-' };
        write!(w, " {}{end} |", "-".repeat(n - 1))?;
    }
    writeln!(w)
}

fn markdown_row(w: &mut impl Write, c: &Columns, r: &Row<'_>) -> std::io::Result<()> {
    let (avg, sd) = (mean(&r.samples_ts()), stddev(&r.samples_ts()));
    write!(w, "|")?;
    for (name, width) in c.fields() {
        let v = match name {
            "model" => r.info.model_type.clone(),
            "size" => {
                let s = r.info.size as f64;
                if s < 1024.0 * 1024.0 * 1024.0 {
                    format!("{:.2} MiB", s / 1024.0 / 1024.0)
                } else {
                    format!("{:.2} GiB", s / 1024.0 / 1024.0 / 1024.0)
                }
            }
            "params" => {
                let p = r.info.n_params as f64;
                if p < 1e9 {
                    format!("{:.2} M", p / 1e6)
                } else {
                    format!("{:.2} B", p / 1e9)
                }
            }
            "backend" => "CPU".into(),
            "threads" => r.inst.n_threads.to_string(),
            "n_batch" => r.inst.n_batch.to_string(),
            "type_k" | "type_v" => r.inst.kv_type.name().into(),
            "test" => r.test_name(),
            _ => format!("{avg:.2} ± {sd:.2}"),
        };
        cell(w, &v, width)?;
    }
    writeln!(w)
}

impl Row<'_> {
    fn test_name(&self) -> String {
        match (self.inst.n_prompt, self.inst.n_gen) {
            (p, 0) => format!("pp{p}"),
            (0, g) => format!("tg{g}"),
            (p, g) => format!("pp{p}+tg{g}"),
        }
    }

    /// Tokens per second of each run.
    fn samples_ts(&self) -> Vec<f64> {
        let n = (self.inst.n_prompt + self.inst.n_gen) as f64;
        self.samples_ns
            .iter()
            .map(|&ns| 1e9 * n / ns as f64)
            .collect()
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample standard deviation (0 for fewer than two samples), as llama-bench computes it.
fn stddev(v: &[f64]) -> f64 {
    if v.len() <= 1 {
        return 0.0;
    }
    let m = mean(v);
    let n = v.len() as f64;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    var.sqrt()
}

/// One row with llama-bench's fields, in its order; fields that describe GPU offload hold
/// the values of a CPU-only run.
fn json_row(r: &Row<'_>, pretty: bool) -> String {
    use serde_json::{Value, json};
    let ns: Vec<f64> = r.samples_ns.iter().map(|&n| n as f64).collect();
    let ts = r.samples_ts();
    let kv = r.inst.kv_type.name();
    let fields: Vec<(&str, Value)> = vec![
        (
            "build_commit",
            json!(format!("kiln-{}", env!("CARGO_PKG_VERSION"))),
        ),
        ("build_number", json!(0)),
        ("cpu_info", json!(cpu_info())),
        ("gpu_info", json!("")),
        ("backends", json!("CPU")),
        ("model_filename", json!(r.info.filename)),
        ("model_type", json!(r.info.model_type)),
        ("model_size", json!(r.info.size)),
        ("model_n_params", json!(r.info.n_params)),
        ("n_batch", json!(r.inst.n_batch)),
        ("n_ubatch", json!(r.inst.n_batch)),
        ("n_threads", json!(r.inst.n_threads)),
        ("cpu_mask", json!("0x0")),
        ("cpu_strict", json!(false)),
        ("poll", json!(0)),
        ("type_k", json!(kv)),
        ("type_v", json!(kv)),
        ("n_gpu_layers", json!(0)),
        ("n_cpu_moe", json!(0)),
        ("split_mode", json!("none")),
        ("main_gpu", json!(0)),
        ("no_kv_offload", json!(false)),
        ("flash_attn", json!(1)),
        ("devices", json!("none")),
        ("tensor_split", json!("0.00")),
        ("tensor_buft_overrides", json!("none")),
        ("load_mode", json!("mmap")),
        ("embeddings", json!(false)),
        ("no_op_offload", json!(0)),
        ("no_host", json!(false)),
        ("n_prompt", json!(r.inst.n_prompt)),
        ("n_gen", json!(r.inst.n_gen)),
        ("n_depth", json!(0)),
        ("test_time", json!(r.time)),
        ("avg_ns", json!(mean(&ns) as u64)),
        ("stddev_ns", json!(stddev(&ns) as u64)),
        ("avg_ts", json!(mean(&ts))),
        ("stddev_ts", json!(stddev(&ts))),
        ("samples_ns", json!(r.samples_ns)),
        ("samples_ts", json!(ts)),
    ];
    let (open, sep, indent, close) = if pretty {
        ("  {\n", ",\n", "    ", "\n  }")
    } else {
        ("{", ", ", "", "}")
    };
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{indent}\"{k}\": {v}"))
        .collect();
    format!("{open}{}{close}", body.join(sep))
}

/// The CPU's model name (Linux `/proc/cpuinfo`), or "".
fn cpu_info() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// The current UTC time as RFC 3339 (`2026-01-31T12:00:00Z`).
fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        let l = |s: &str| parse_lists(&[s.to_string()], "-p");
        assert_eq!(l("128,512").unwrap(), [128, 512]);
        assert_eq!(l("1-4").unwrap(), [1, 2, 3, 4]);
        assert_eq!(l("16-128*2").unwrap(), [16, 32, 64, 128]);
        assert_eq!(l("0,8-20+6").unwrap(), [0, 8, 14, 20]);
        assert!(l("x").is_err());
        assert!(l("1-8*1").is_err());
        assert!(l("0-100000").is_err());
        let two = parse_lists(&["1".into(), "2,3".into()], "-t").unwrap();
        assert_eq!(two, [1, 2, 3]);
    }

    #[test]
    fn stddev_is_the_sample_deviation() {
        assert_eq!(stddev(&[5.0]), 0.0);
        assert!((stddev(&[1.0, 2.0, 3.0, 4.0]) - 1.290_994_448_7).abs() < 1e-9);
    }

    #[test]
    fn labels() {
        assert_eq!(size_label(134_515_008), "135M");
        assert_eq!(size_label(1_230_000_000), "1.2B");
        assert_eq!(ftype_name(15), Some("Q4_K - Medium"));
    }
}
