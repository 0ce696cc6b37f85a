//! `kiln chat [-m MODEL]`: an interactive conversation on stdin/stdout with the model's chat
//! template. Answers stream as they are generated; the context use is shown on stderr after
//! each answer. `/reset` starts over, `/exit` (or end of input) quits.

use std::io::{BufRead, Write};

use kiln::generate::GenerateError;

use crate::CliResult;
use crate::common::{ModelArgs, SamplingArgs, stats_lines};

/// Arguments of `kiln chat`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// System message.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Print generation statistics on stderr after each answer.
    #[arg(long)]
    pub stats: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Runs `kiln chat`.
pub fn run(args: Args) -> CliResult {
    let opts = args.sampling.options()?;
    let (model, path, load_time) = args.model.load()?;
    let mut chat = model.chat()?;
    if let Some(s) = &args.system {
        chat.set_system(s.clone());
    }
    eprintln!(
        "kiln: {} loaded in {:.2} s; chat format: {}; context {} tokens.\n\
         kiln: type a message and press Enter; /reset starts over, /exit quits.",
        path.display(),
        load_time.as_secs_f64(),
        chat.template().format(),
        chat.n_ctx(),
    );

    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = String::new();
    loop {
        {
            let mut out = std::io::stdout().lock();
            out.write_all(b"> ")?;
            out.flush()?;
        }
        line.clear();
        if input.read_line(&mut line)? == 0 {
            println!();
            break;
        }
        let msg = line.trim_end_matches(['\n', '\r']);
        match msg.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                chat.reset();
                eprintln!("[context cleared: ctx {}/{}]", chat.n_past(), chat.n_ctx());
                continue;
            }
            _ => {}
        }
        let mut stream = match chat.send(msg, &opts) {
            Ok(s) => s,
            Err(kiln::Error::Generate(GenerateError::PromptTooLong { tokens, n_ctx })) => {
                eprintln!(
                    "kiln: the conversation needs {tokens} tokens but the context holds \
                     {n_ctx}; /reset to start over"
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut out = std::io::stdout().lock();
        for t in &mut stream {
            let t = t?;
            out.write_all(t.text.as_bytes())?;
            out.flush()?;
        }
        out.write_all(b"\n")?;
        out.flush()?;
        drop(out);
        let stats = stream.stats().clone();
        drop(stream);
        if args.stats {
            eprintln!("{}", stats_lines(&stats));
        }
        eprintln!("[ctx {}/{}]", chat.n_past(), chat.n_ctx());
    }
    Ok(())
}
