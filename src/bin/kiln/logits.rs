//! `kiln logits -m MODEL -f PROMPT.txt`: per-position top logits and a greedy continuation, as
//! JSON in the schema of `tests/data/reference/logits/*.json` (llama.cpp's reference logits),
//! so kiln's forward pass can be diffed against llama.cpp's position by position.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use kiln::GgmlType;
use kiln::model::{Model, Session, SessionOptions};
use kiln::ops::softmax::log_sum_exp;
use kiln::tokenizer::Tokenizer;

use crate::CliResult;

/// Arguments of `kiln logits`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The GGUF model.
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// The prompt file (UTF-8 text, used as is).
    #[arg(short = 'f', long = "file", value_name = "PROMPT.txt")]
    pub file: PathBuf,
    /// Parse special-token texts in the prompt (e.g. `<|im_start|>`) as their ids.
    #[arg(long)]
    pub special: bool,
    /// Entries per position: the highest logits.
    #[arg(long, default_value_t = 10, value_name = "K")]
    pub top: usize,
    /// Greedy continuation length (stops early after an end-of-generation token).
    #[arg(long = "gen", default_value_t = 32, value_name = "N")]
    pub n_gen: usize,
    /// KV cache element type: f32, f16, q8_0 or q4_0.
    #[arg(long, default_value = "f16", value_name = "T")]
    pub kv_type: String,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Parses a KV cache type name.
pub fn parse_kv_type(s: &str) -> Result<GgmlType, String> {
    GgmlType::from_name(s)
        .filter(|t| kiln::kv_cache::KV_TYPES.contains(t))
        .ok_or_else(|| format!("unsupported KV cache type {s:?} (use f32, f16, q8_0 or q4_0)"))
}

/// Runs `kiln logits`.
pub fn run(args: Args) -> CliResult {
    let kv_type = parse_kv_type(&args.kv_type)?;
    let text =
        std::fs::read_to_string(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let model = Arc::new(Model::load(&args.model)?);
    let tok = Tokenizer::from_gguf(&model.file().parse()?)?;
    let prompt = tok.encode(&text, true, args.special)?;
    if prompt.is_empty() {
        return Err("the prompt has no tokens".into());
    }
    let n_vocab = model.config().n_vocab;
    let opts = SessionOptions {
        n_ctx: Some(prompt.len() + args.n_gen + 1),
        kv_type,
        n_threads: args.threads.unwrap_or(0),
        ..Default::default()
    };
    let mut session = Session::new(model.clone(), &opts)?;
    let k = args.top.min(n_vocab);

    // Prompt positions: top-k of each.
    let mut order: Vec<u32> = Vec::with_capacity(n_vocab);
    let mut positions: Vec<Vec<(u32, f32, f64)>> = Vec::with_capacity(prompt.len());
    let mut last = vec![0.0f32; n_vocab];
    let n = prompt.len();
    session.eval(&prompt, 0..n, |i, logits| {
        positions.push(top_k(logits, k, &mut order));
        if i == n - 1 {
            last.copy_from_slice(logits);
        }
        Ok(())
    })?;

    // Greedy continuation.
    let mut greedy = Vec::new();
    let mut margins = Vec::new();
    let mut logits = last;
    for step in 0..args.n_gen {
        let best = top_k(&logits, 2.min(n_vocab), &mut order);
        let next = best[0].0;
        greedy.push(next);
        margins.push(best.get(1).map_or(0.0, |b| best[0].1 - b.1));
        if tok.is_eog(next) || step + 1 == args.n_gen {
            break;
        }
        logits.copy_from_slice(session.decode(&[next])?);
    }
    let text = tok.decode_lossy(&greedy, false, false)?;

    let mut out = BufWriter::new(std::io::stdout().lock());
    write!(
        out,
        "{{\"prompt_tokens\":{},\n\"positions\":[\n",
        json_ids(&prompt)
    )?;
    for (i, top) in positions.iter().enumerate() {
        let entries: Vec<String> = top
            .iter()
            .map(|(id, l, lp)| format!("[{id},{l:.5},{lp:.6}]"))
            .collect();
        let sep = if i + 1 < positions.len() { "," } else { "" };
        writeln!(out, "{{\"top\":[{}]}}{sep}", entries.join(","))?;
    }
    let m: Vec<String> = margins.iter().map(|m| format!("{m:.4}")).collect();
    writeln!(
        out,
        "],\n\"greedy\":{},\n\"greedy_margins\":[{}],\n\"greedy_text\":{}}}",
        json_ids(&greedy),
        m.join(","),
        serde_json::to_string(&text)?
    )?;
    out.flush()?;
    Ok(())
}

/// `[1,2,3]`
fn json_ids(ids: &[u32]) -> String {
    let v: Vec<String> = ids.iter().map(u32::to_string).collect();
    format!("[{}]", v.join(","))
}

/// The `k` highest logits as `(id, logit, log-probability)`, highest first (ties: lower id).
fn top_k(logits: &[f32], k: usize, order: &mut Vec<u32>) -> Vec<(u32, f32, f64)> {
    let (max, lse) = log_sum_exp(logits).unwrap_or((0.0, 0.0));
    order.clear();
    order.extend(0..logits.len() as u32);
    let cmp = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if k < order.len() {
        order.select_nth_unstable_by(k, cmp);
        order.truncate(k);
    }
    order.sort_by(cmp);
    order
        .iter()
        .map(|&id| {
            let l = logits[id as usize];
            (id, l, f64::from(l - max) - lse)
        })
        .collect()
}
