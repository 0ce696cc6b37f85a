//! `kiln tokenize -m MODEL (-p TEXT | -f FILE)`: the model's token ids for a text, as JSON.

use std::io::Write;
use std::path::PathBuf;

use kiln::gguf::{GgufFile, OpenOptions};
use kiln::tokenizer::Tokenizer;

use crate::CliResult;

/// Arguments of `kiln tokenize`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["prompt", "file"])))]
pub struct Args {
    /// The GGUF model whose tokenizer to use.
    #[arg(short, long)]
    pub model: PathBuf,
    /// The text to tokenize.
    #[arg(short, long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// Read the text from a file (UTF-8), used exactly as stored.
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Add the special tokens the model asks for (BOS per `add_bos_token`, EOS per
    /// `add_eos_token`), like llama.cpp's `add_special`. Default: none.
    #[arg(long)]
    pub bos: bool,
    /// Turn control-token texts (`<|im_start|>`, `<start_of_turn>` ...) into their ids.
    #[arg(long)]
    pub special: bool,
    /// Print `[id, piece]` pairs instead of ids.
    #[arg(long)]
    pub pieces: bool,
}

/// Runs `kiln tokenize`.
pub fn run(args: Args) -> CliResult {
    let text = match (&args.prompt, &args.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?
        }
        (None, None) => return Err("give -p TEXT or -f FILE".into()),
    };
    let file = GgufFile::open(&args.model, OpenOptions { mmap: true })?;
    let gguf = file.parse()?;
    let tok = Tokenizer::from_gguf(&gguf)?;
    let ids = tok.encode(&text, args.bos, args.special)?;
    let json = if args.pieces {
        let pairs = ids
            .iter()
            .map(|&id| {
                Ok(serde_json::json!([
                    id,
                    String::from_utf8_lossy(&tok.token_to_piece(id, true)?)
                ]))
            })
            .collect::<Result<Vec<_>, kiln::tokenizer::TokenizerError>>()?;
        serde_json::to_string(&pairs)?
    } else {
        serde_json::to_string(&ids)?
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{json}")?;
    out.flush()?;
    Ok(())
}
