//! `kiln inspect MODEL.gguf`: what a GGUF file holds and what it needs to run.
//!
//! Reads only the header, metadata and tensor infos (never tensor data), so it takes
//! milliseconds even on large models when the file is memory-mapped.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use kiln::GgmlType;
use kiln::gguf::{Gguf, GgufError, GgufFile, OpenOptions, Value};
use serde_json::json;

use crate::CliResult;

/// Arguments of `kiln inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The GGUF file.
    pub model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Context length for the KV-cache estimate (default: the model's context length).
    #[arg(long, value_name = "N")]
    pub ctx: Option<u64>,
    /// Read the file into memory instead of memory-mapping it.
    #[arg(long)]
    pub no_mmap: bool,
    /// Also list every metadata key with its type and value (arrays summarised).
    #[arg(long)]
    pub metadata: bool,
}

/// Element types the KV-cache estimate is given for.
const KV_TYPES: [GgmlType; 4] = [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0];

/// The architecture's hyperparameters, as far as the file states them.
#[derive(Debug, Default)]
struct Hparams {
    block_count: Option<u64>,
    embedding_length: Option<u64>,
    head_count: Option<u64>,
    head_count_kv: Option<u64>,
    key_length: Option<u64>,
    value_length: Option<u64>,
    context_length: Option<u64>,
    feed_forward_length: Option<u64>,
    rope_freq_base: Option<f64>,
    sliding_window: Option<u64>,
    vocab_size: Option<u64>,
}

impl Hparams {
    /// Head size: `key_length` if stated, else `embedding_length / head_count`.
    fn head_dim(&self) -> Option<u64> {
        self.key_length.or_else(|| {
            self.embedding_length
                .zip(self.head_count)
                .and_then(|(e, h)| e.checked_div(h))
        })
    }

    fn k_dim(&self) -> Option<u64> {
        self.head_dim()
    }

    fn v_dim(&self) -> Option<u64> {
        self.value_length.or_else(|| self.head_dim())
    }
}

/// A non-negative integer key, or the largest entry of an integer array (per-layer counts),
/// `None` if absent; a key of another type is an error naming it.
fn opt_uint(g: &Gguf<'_>, key: &str) -> Result<Option<u64>, GgufError> {
    match g.get(key) {
        None => Ok(None),
        Some(Value::Array(a)) => {
            let mut max = None;
            for v in a.values() {
                match v.as_uint() {
                    Some(x) => max = Some(max.map_or(x, |m: u64| m.max(x))),
                    None => return g.get_uint(key).map(Some),
                }
            }
            Ok(max)
        }
        Some(_) => g.get_uint(key).map(Some),
    }
}

fn opt_float(g: &Gguf<'_>, key: &str) -> Result<Option<f64>, GgufError> {
    match g.get(key) {
        None => Ok(None),
        Some(_) => g.get_float(key).map(Some),
    }
}

fn hparams(g: &Gguf<'_>, arch: &str) -> Result<Hparams, GgufError> {
    let k = |s: &str| format!("{arch}.{s}");
    let vocab_size = match g.get_array("tokenizer.ggml.tokens") {
        Ok(a) => Some(a.len() as u64),
        Err(GgufError::MissingKey { .. }) => opt_uint(g, &k("vocab_size"))?,
        Err(e) => return Err(e),
    };
    Ok(Hparams {
        block_count: opt_uint(g, &k("block_count"))?,
        embedding_length: opt_uint(g, &k("embedding_length"))?,
        head_count: opt_uint(g, &k("attention.head_count"))?,
        head_count_kv: opt_uint(g, &k("attention.head_count_kv"))?,
        key_length: opt_uint(g, &k("attention.key_length"))?,
        value_length: opt_uint(g, &k("attention.value_length"))?,
        context_length: opt_uint(g, &k("context_length"))?,
        feed_forward_length: opt_uint(g, &k("feed_forward_length"))?,
        rope_freq_base: opt_float(g, &k("rope.freq_base"))?,
        sliding_window: opt_uint(g, &k("attention.sliding_window"))?,
        vocab_size,
    })
}

/// KV-cache bytes for `ctx` positions with elements of `t`:
/// `n_layer * ctx * n_head_kv * (k_dim + v_dim)` elements, i.e. `2 * n_layer * ctx * n_head_kv *
/// head_dim` when keys and values have the same size. `None` if a number is missing, a row is
/// not a whole number of blocks of `t`, or the size overflows.
fn kv_bytes(h: &Hparams, ctx: u64, t: GgmlType) -> Option<u64> {
    let n_kv = h.head_count_kv.or(h.head_count)?;
    let k_row = t.bytes_for(n_kv.checked_mul(h.k_dim()?)?)?;
    let v_row = t.bytes_for(n_kv.checked_mul(h.v_dim()?)?)?;
    h.block_count?
        .checked_mul(ctx)?
        .checked_mul(k_row.checked_add(v_row)?)
}

/// Per-type totals.
#[derive(Debug, Default, Clone, Copy)]
struct TypeTotal {
    count: u64,
    bytes: u64,
    params: u64,
}

/// Run `kiln inspect`.
pub fn run(args: Args) -> CliResult {
    let file = GgufFile::open(
        &args.model,
        OpenOptions {
            mmap: !args.no_mmap,
        },
    )?;
    let g = file
        .parse()
        .map_err(|e| format!("{}: {e}", args.model.display()))?;
    let arch = g.get("general.architecture").and_then(Value::as_str);
    let name = g.get("general.name").and_then(Value::as_str);
    let h = match arch {
        Some(a) => hparams(&g, a).map_err(|e| format!("{}: {e}", args.model.display()))?,
        None => Hparams::default(),
    };

    let mut by_type: BTreeMap<GgmlType, TypeTotal> = BTreeMap::new();
    let (mut params, mut tensor_bytes) = (0u64, 0u64);
    for t in g.tensors() {
        let e = by_type.entry(t.dtype).or_default();
        e.count += 1;
        // Sums of validated, non-overlapping in-file sizes: bounded by the file length.
        e.bytes += t.n_bytes();
        e.params = e.params.saturating_add(t.n_elements());
        params = params.saturating_add(t.n_elements());
        tensor_bytes += t.n_bytes();
    }
    let mut types: Vec<(GgmlType, TypeTotal)> = by_type.into_iter().collect();
    types.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(&b.0)));
    let bpw = if params > 0 {
        tensor_bytes as f64 * 8.0 / params as f64
    } else {
        0.0
    };

    let ctx = args.ctx.or(h.context_length);
    let mapped = file.bytes().len() as u64;
    let kv: Vec<(GgmlType, Option<u64>)> = KV_TYPES
        .iter()
        .map(|&t| (t, ctx.and_then(|c| kv_bytes(&h, c, t))))
        .collect();

    let tokenizer_model = g.get("tokenizer.ggml.model").and_then(Value::as_str);
    let chat_template = g.get("tokenizer.chat_template").is_some();

    let out = std::io::stdout().lock();
    let mut out = BufWriter::new(out);
    if args.json {
        let tensors: Vec<_> = g
            .tensors()
            .iter()
            .map(|t| {
                json!({
                    "name": t.name, "type": t.dtype.name(), "shape": t.dims,
                    "elements": t.n_elements(), "bytes": t.n_bytes(), "offset": t.offset,
                })
            })
            .collect();
        let type_rows: Vec<_> = types
            .iter()
            .map(|(t, s)| {
                json!({
                    "type": t.name(), "count": s.count, "bytes": s.bytes, "parameters": s.params,
                    "share": if tensor_bytes > 0 { s.bytes as f64 / tensor_bytes as f64 } else { 0.0 },
                })
            })
            .collect();
        let kv_rows: Vec<_> = kv
            .iter()
            .map(|(t, b)| {
                json!({
                    "type": t.name(), "kv_bytes": b, "total_bytes": b.and_then(|b| b.checked_add(mapped)),
                })
            })
            .collect();
        let mut doc = json!({
            "file": args.model.display().to_string(),
            "file_bytes": mapped,
            "version": g.version(),
            "alignment": g.alignment(),
            "data_offset": g.data_offset(),
            "metadata_count": g.metadata().len(),
            "architecture": arch,
            "name": name,
            "hyperparameters": {
                "block_count": h.block_count,
                "embedding_length": h.embedding_length,
                "head_count": h.head_count,
                "head_count_kv": h.head_count_kv,
                "head_dim": h.head_dim(),
                "key_length": h.key_length,
                "value_length": h.value_length,
                "context_length": h.context_length,
                "feed_forward_length": h.feed_forward_length,
                "rope_freq_base": h.rope_freq_base,
                "sliding_window": h.sliding_window,
                "vocab_size": h.vocab_size,
            },
            "tokenizer": {
                "model": tokenizer_model,
                "tokens": h.vocab_size,
                "chat_template": chat_template,
            },
            "tensor_count": g.tensors().len(),
            "tensors": tensors,
            "types": type_rows,
            "parameters": params,
            "tensor_bytes": tensor_bytes,
            "bits_per_weight": bpw,
            "memory": {
                "ctx": ctx,
                "mapped_bytes": mapped,
                "kv_cache": kv_rows,
            },
        });
        if args.metadata {
            let md: serde_json::Map<String, serde_json::Value> = g
                .metadata()
                .iter()
                .map(|kv| (kv.key.to_string(), json_value(&kv.value)))
                .collect();
            doc["metadata"] = serde_json::Value::Object(md);
        }
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let w = &mut out;
        writeln!(w, "file           {}", args.model.display())?;
        writeln!(
            w,
            "               {} ({}), GGUF v{}, alignment {}, {}",
            human(mapped),
            mapped,
            g.version(),
            g.alignment(),
            if file.is_mmap() {
                "memory-mapped"
            } else {
                "read into memory"
            }
        )?;
        writeln!(w, "architecture   {}", arch.unwrap_or("-"))?;
        writeln!(w, "name           {}", name.unwrap_or("-"))?;
        writeln!(w)?;
        writeln!(w, "hyperparameters")?;
        writeln!(w, "  layers           {}", opt(h.block_count))?;
        writeln!(w, "  embedding        {}", opt(h.embedding_length))?;
        writeln!(w, "  feed-forward     {}", opt(h.feed_forward_length))?;
        writeln!(w, "  heads            {}", opt(h.head_count))?;
        writeln!(w, "  kv heads         {}", opt(h.head_count_kv))?;
        let head = match (h.key_length, h.value_length) {
            (None, None) => format!("{} (embedding / heads)", opt(h.head_dim())),
            (k, v) => format!(
                "{} (key_length {}, value_length {})",
                opt(h.head_dim()),
                opt(k),
                opt(v)
            ),
        };
        writeln!(w, "  head size        {head}")?;
        writeln!(w, "  context length   {}", opt(h.context_length))?;
        writeln!(
            w,
            "  rope base        {}",
            h.rope_freq_base.map_or("-".to_string(), |v| v.to_string())
        )?;
        writeln!(w, "  vocabulary       {}", opt(h.vocab_size))?;
        if h.sliding_window.is_some() {
            writeln!(w, "  sliding window   {}", opt(h.sliding_window))?;
        }
        writeln!(w)?;
        writeln!(
            w,
            "tokenizer      {}, {} tokens, chat template: {}",
            tokenizer_model.unwrap_or("-"),
            opt(h.vocab_size),
            if chat_template { "yes" } else { "no" }
        )?;
        writeln!(w)?;

        if args.metadata {
            writeln!(w, "metadata ({} keys)", g.metadata().len())?;
            for kv in g.metadata() {
                let mut v = kv.value.to_string();
                if v.chars().count() > 80 {
                    v = v.chars().take(77).collect::<String>() + "...";
                }
                let v = v.replace('\n', "\\n");
                writeln!(w, "  {:<44} {:<14} {v}", kv.key, kv.value.type_name())?;
            }
            writeln!(w)?;
        }

        let name_w = g
            .tensors()
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(4)
            .clamp(4, 60);
        writeln!(w, "tensors ({})", g.tensors().len())?;
        writeln!(
            w,
            "  {:<name_w$}  {:<7} {:<24} {:>12}",
            "name", "type", "shape", "bytes"
        )?;
        for t in g.tensors() {
            let shape = format!("{:?}", t.dims);
            writeln!(
                w,
                "  {:<name_w$}  {:<7} {:<24} {:>12}",
                t.name,
                t.dtype.name(),
                shape,
                t.n_bytes()
            )?;
        }
        writeln!(w)?;
        writeln!(w, "types")?;
        writeln!(
            w,
            "  {:<8} {:>6} {:>14} {:>12} {:>7}",
            "type", "count", "bytes", "", "share"
        )?;
        for (t, s) in &types {
            let share = if tensor_bytes > 0 {
                100.0 * s.bytes as f64 / tensor_bytes as f64
            } else {
                0.0
            };
            writeln!(
                w,
                "  {:<8} {:>6} {:>14} {:>12} {:>6.1}%",
                t.name(),
                s.count,
                s.bytes,
                human(s.bytes),
                share
            )?;
        }
        writeln!(
            w,
            "  {:<8} {:>6} {:>14} {:>12}",
            "total",
            g.tensors().len(),
            tensor_bytes,
            human(tensor_bytes)
        )?;
        writeln!(w)?;
        writeln!(
            w,
            "parameters     {} ({:.1} M), {bpw:.2} bits per weight",
            params,
            params as f64 / 1e6
        )?;
        writeln!(w)?;
        match ctx {
            Some(c) => {
                writeln!(
                    w,
                    "memory at context {c}: mapped file {} + KV cache",
                    human(mapped)
                )?;
                writeln!(w, "  {:<8} {:>12} {:>12}", "kv type", "kv cache", "total")?;
                for (t, b) in &kv {
                    let (kvs, tot) = match b {
                        Some(b) => (human(*b), b.checked_add(mapped).map_or("-".into(), human)),
                        None => ("-".to_string(), "-".to_string()),
                    };
                    writeln!(w, "  {:<8} {:>12} {:>12}", t.name(), kvs, tot)?;
                }
            }
            None => writeln!(
                w,
                "memory         mapped file {}; no context length known (use --ctx N)",
                human(mapped)
            )?,
        }
    }
    out.flush()?;
    Ok(())
}

/// A metadata value as JSON (arrays: type and length, plus the elements if there are at most
/// 16 of them).
fn json_value(v: &Value<'_>) -> serde_json::Value {
    match *v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::F32(x) => json!(x),
        Value::Bool(x) => json!(x),
        Value::String(s) => json!(s),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F64(x) => json!(x),
        Value::Array(ref a) => {
            let mut o = json!({ "type": a.type_name(), "len": a.len() });
            if a.len() <= 16 {
                o["values"] =
                    serde_json::Value::Array(a.values().map(|x| json_value(&x)).collect());
            }
            o
        }
    }
}

/// `1234567` -> `"1.18 MiB"`.
fn human(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}
