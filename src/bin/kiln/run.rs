//! `kiln run [-m MODEL] -p PROMPT`: generate a continuation (or, with `--chat`, an answer)
//! and stream it to stdout, one piece at a time. Only the generated text goes to stdout;
//! load time and speeds go to stderr.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use kiln::generate::{GenerationStats, Token};

use crate::CliResult;
use crate::common::{ModelArgs, SamplingArgs, stats_lines};

/// Arguments of `kiln run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt. Tokenized like llama.cpp's tools: BOS per the model's add_bos_token,
    /// control-token texts (`<|im_start|>`) parsed.
    #[arg(short, long, value_name = "PROMPT")]
    pub prompt: String,
    /// Treat the prompt as the user's message: wrap it in the model's chat template (or the
    /// built-in format of models without one, e.g. Gemma 3) and generate the answer.
    #[arg(long)]
    pub chat: bool,
    /// System message (with --chat).
    #[arg(long, value_name = "TEXT", requires = "chat")]
    pub system: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Runs `kiln run`.
pub fn run(args: Args) -> CliResult {
    let opts = args.sampling.options()?;
    let t0 = Instant::now();
    let (model, path, _) = args.model.load()?;
    let mut generator = model.generator()?;
    let load_time = t0.elapsed();
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    eprintln!(
        "kiln: loaded {name} in {:.3} s ({}, {} threads, context {}, KV {})",
        load_time.as_secs_f64(),
        model.config().arch.name(),
        generator.session().n_threads(),
        generator.n_ctx(),
        generator.session().kv_type().name(),
    );

    let mut out = std::io::stdout().lock();
    let mut emit = |t: &Token| -> std::io::Result<()> {
        if !t.text.is_empty() {
            out.write_all(t.text.as_bytes())?;
            out.flush()?;
        }
        Ok(())
    };
    let stats: GenerationStats = if args.chat {
        let mut chat = kiln::Chat::new(generator)?;
        eprintln!("kiln: chat format: {}", chat.template().format());
        if let Some(s) = &args.system {
            chat.set_system(s.clone());
        }
        let mut stream = chat.send(&args.prompt, &opts)?;
        for t in &mut stream {
            emit(&t?)?;
        }
        stream.stats().clone()
    } else {
        generator.feed_text(&args.prompt, true)?;
        let mut stream = generator.stream(&opts)?;
        for t in &mut stream {
            emit(&t?)?;
        }
        stream.stats().clone()
    };
    if std::io::stdout().is_terminal() {
        let mut out = std::io::stdout().lock();
        out.write_all(b"\n")?;
        out.flush()?;
    }
    eprintln!("{}", stats_lines(&stats));
    Ok(())
}
