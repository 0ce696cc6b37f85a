//! `kiln template -m MODEL -f MESSAGES.json`: the prompt the model's chat format makes of a
//! conversation. Only the prompt goes to stdout (byte for byte, no added newline); the format
//! used goes to stderr.

use std::io::Write;
use std::path::PathBuf;

use kiln::chat::{ChatMessage, ChatTemplate};
use kiln::gguf::{GgufFile, OpenOptions};
use kiln::tokenizer::Tokenizer;
use serde_json::Value;

use crate::CliResult;

/// Arguments of `kiln template`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The GGUF model whose chat template to use.
    #[arg(short, long)]
    pub model: PathBuf,
    /// The conversation: a JSON array of `{"role": ..., "content": ...}` objects (or an object
    /// with such an array under `"messages"`).
    #[arg(short, long, value_name = "MESSAGES.json")]
    pub file: PathBuf,
    /// Do not append the assistant turn header.
    #[arg(long)]
    pub no_generation_prompt: bool,
}

/// Parses the messages file.
fn messages(json: &Value) -> Result<Vec<ChatMessage>, String> {
    let list = match json {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("messages") {
            Some(Value::Array(a)) => a,
            _ => return Err("expected an array of messages or {\"messages\": [...]}".into()),
        },
        _ => return Err("expected an array of messages".into()),
    };
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let field = |k: &str| {
                m.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or(format!("message {i}: \"{k}\" must be a string"))
            };
            Ok(ChatMessage::new(field("role")?, field("content")?))
        })
        .collect()
}

/// Runs `kiln template`.
pub fn run(args: Args) -> CliResult {
    let text =
        std::fs::read_to_string(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let msgs = messages(&json).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let file = GgufFile::open(&args.model, OpenOptions { mmap: true })?;
    let gguf = file.parse()?;
    let tok = Tokenizer::from_gguf(&gguf)?;
    let tmpl = ChatTemplate::from_gguf(&gguf, &tok)?;
    eprintln!("kiln: chat format: {}", tmpl.format());
    let prompt = tmpl.render(&msgs, !args.no_generation_prompt)?;
    let mut out = std::io::stdout().lock();
    out.write_all(prompt.as_bytes())?;
    out.flush()?;
    Ok(())
}
