//! `kiln perplexity -m MODEL -f TEXT`: perplexity with llama.cpp's method (see
//! [`kiln::model::perplexity`]): chunks of `--ctx` tokens, the second half of each scored.
//! Prints the running value after each chunk (`[1]16.5546,[2]17.8938,...`) and ends with
//! `Final estimate: PPL = <value> +/- <stderr>`; progress goes to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kiln::model::{Model, Session, SessionOptions, perplexity};
use kiln::tokenizer::Tokenizer;

use crate::CliResult;
use crate::logits::parse_kv_type;

/// Arguments of `kiln perplexity`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The GGUF model.
    #[arg(short = 'm', long)]
    pub model: PathBuf,
    /// The text file.
    #[arg(short = 'f', long = "file", value_name = "TEXT")]
    pub file: PathBuf,
    /// Tokens per chunk (the context of each evaluation).
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub ctx: usize,
    /// KV cache element type: f32, f16, q8_0 or q4_0.
    #[arg(long, default_value = "f16", value_name = "T")]
    pub kv_type: String,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print the result as JSON instead.
    #[arg(long)]
    pub json: bool,
}

/// Runs `kiln perplexity`.
pub fn run(args: Args) -> CliResult {
    let kv_type = parse_kv_type(&args.kv_type)?;
    let text =
        std::fs::read_to_string(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let model = Arc::new(Model::load(&args.model)?);
    let tok = Tokenizer::from_gguf(&model.file().parse()?)?;
    eprintln!("perplexity: tokenizing the input ..");
    let tokens = tok.encode(&text, true, false)?;
    let bos = if tok.add_bos() { tok.bos() } else { None };
    let opts = SessionOptions {
        n_ctx: Some(args.ctx),
        kv_type,
        n_threads: args.threads.unwrap_or(0),
        n_batch: args.ctx,
        ..Default::default()
    };
    let mut session = Session::new(model, &opts)?;
    eprintln!(
        "perplexity: {} tokens, {} chunks of {} (KV cache {}, {} threads)",
        tokens.len(),
        tokens.len() / args.ctx.max(1),
        args.ctx,
        kv_type,
        session.n_threads()
    );
    let start = Instant::now();
    let json = args.json;
    let mut stdout = std::io::stdout().lock();
    let mut io_err = None;
    let r = perplexity(&mut session, &tokens, args.ctx, bos, |i, ppl| {
        if i == 0 {
            eprintln!(
                "perplexity: {:.2} seconds per chunk",
                start.elapsed().as_secs_f64()
            );
        }
        if !json && io_err.is_none() {
            io_err = write!(stdout, "[{}]{ppl:.4},", i + 1)
                .and_then(|()| stdout.flush())
                .err();
        }
    })?;
    if let Some(e) = io_err {
        return Err(e.into());
    }
    if json {
        let v = serde_json::json!({
            "chunks": r.chunks,
            "n_ctx": args.ctx,
            "tokens": tokens.len(),
            "scored": r.scored,
            "kv_type": kv_type.name(),
            "ppl": r.ppl,
            "stderr": r.stderr,
            "per_chunk_running": r.running,
        });
        writeln!(stdout, "{v}")?;
    } else {
        writeln!(stdout)?;
        writeln!(
            stdout,
            "Final estimate: PPL = {:.4} +/- {:.5}",
            r.ppl, r.stderr
        )?;
    }
    eprintln!(
        "perplexity: {:.2} seconds total",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
