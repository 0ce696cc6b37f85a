//! The `kiln` command-line tool: a thin layer over the library.
//!
//! One module per subcommand. To add one: create `src/bin/kiln/<name>.rs` with a
//! `#[derive(clap::Args)] pub struct Args` and `pub fn run(args: Args) -> CliResult`, then add
//! `mod <name>;`, a variant to [`Command`] and its arm in [`main`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod chat;
mod common;
mod inspect;
mod logits;
mod perplexity;
mod run;
mod template;
mod tokenize;

/// What a subcommand returns: any error is printed as `kiln: error: ...` with exit status 1.
pub type CliResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Run GGUF-quantized language models on the CPU.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Describe a GGUF model: architecture, hyperparameters, tokenizer, tensors, memory needs.
    Inspect(inspect::Args),
    /// Tokenize a text with the model's tokenizer; print the ids (JSON).
    Tokenize(tokenize::Args),
    /// Render a conversation with the model's chat template; print the prompt.
    Template(template::Args),
    /// Generate text from a prompt (or, with --chat, answer it) and stream it to stdout.
    Run(run::Args),
    /// Chat with a model interactively (stdin/stdout).
    Chat(chat::Args),
    /// Per-position top logits and a greedy continuation of a prompt, as JSON.
    Logits(logits::Args),
    /// Perplexity of a text, with llama.cpp's method.
    Perplexity(perplexity::Args),
    /// Prompt-processing and generation speed, like llama.cpp's llama-bench.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Tokenize(args) => tokenize::run(args),
        Command::Template(args) => template::run(args),
        Command::Run(args) => run::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Logits(args) => logits::run(args),
        Command::Perplexity(args) => perplexity::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Output piped into `head` and closed early: not an error.
        Err(e) if is_broken_pipe(&*e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
