//! What `kiln run` and `kiln chat` share: the default model, model and sampling options,
//! and the statistics line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln::generate::{GenerateOptions, GenerationStats, StopReason};
use kiln::{GgmlType, LoadOptions, Model};

/// File name of the default model in the model cache.
pub const DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The model cache `scripts/fetch-models.sh` fills: `$KILN_MODELS`, else
/// `${XDG_CACHE_HOME:-$HOME/.cache}/kiln/models`.
pub fn model_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KILN_MODELS").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    cache.join("kiln").join("models")
}

/// Options that choose and load the model.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// The GGUF model (default: SmolLM2-135M-Instruct Q4_1 from the model cache,
    /// $KILN_MODELS or ~/.cache/kiln/models, fetched by scripts/fetch-models.sh).
    #[arg(short, long, value_name = "MODEL.gguf")]
    pub model: Option<PathBuf>,
    /// Context size in tokens (default: the model's training context, at most 4096).
    #[arg(short = 'c', long, value_name = "N")]
    pub ctx: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(
        short = 't',
        long,
        value_name = "N",
        default_value_t = 0,
        hide_default_value = true
    )]
    pub threads: usize,
    /// KV cache type: f32, f16, q8_0 or q4_0.
    #[arg(long, value_name = "T", default_value = "f16", value_parser = parse_kv_type)]
    pub kv_type: GgmlType,
    /// Read the model into memory instead of memory-mapping it.
    #[arg(long)]
    pub no_mmap: bool,
}

fn parse_kv_type(s: &str) -> Result<GgmlType, String> {
    match GgmlType::from_name(&s.to_ascii_lowercase()) {
        Some(t @ (GgmlType::F32 | GgmlType::F16 | GgmlType::Q8_0 | GgmlType::Q4_0)) => Ok(t),
        _ => Err(format!(
            "{s:?} is not a KV cache type (f32, f16, q8_0, q4_0)"
        )),
    }
}

impl ModelArgs {
    /// The model path: `-m`, or the default model when it has been fetched.
    pub fn path(&self) -> Result<PathBuf, String> {
        if let Some(p) = &self.model {
            return Ok(p.clone());
        }
        let p = model_dir().join(DEFAULT_MODEL);
        if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "no model given (-m MODEL.gguf) and the default model {} is missing; \
                 fetch it with: scripts/fetch-models.sh smollm2",
                p.display()
            ))
        }
    }

    /// Loads the model; returns it with the time taken.
    pub fn load(
        &self,
    ) -> Result<(Arc<Model>, PathBuf, Duration), Box<dyn std::error::Error + Send + Sync>> {
        let path = self.path()?;
        let mut opts = LoadOptions::new()
            .threads(self.threads)
            .kv_type(self.kv_type)
            .mmap(!self.no_mmap);
        opts.session.n_ctx = self.ctx;
        let t0 = Instant::now();
        let model = Model::load_with(&path, &opts)?;
        Ok((model, path, t0.elapsed()))
    }
}

/// Sampling and stopping options.
#[derive(Debug, clap::Args)]
pub struct SamplingArgs {
    /// Tokens to generate at most (-1: until end of generation or a full context).
    #[arg(short = 'n', long = "n-predict", value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub n_predict: i64,
    /// Temperature (0: greedy).
    #[arg(long, value_name = "T", default_value_t = 0.8)]
    pub temp: f32,
    /// Top-k (0: off).
    #[arg(long, value_name = "K", default_value_t = 40)]
    pub top_k: usize,
    /// Top-p (1: off).
    #[arg(long, value_name = "P", default_value_t = 0.95)]
    pub top_p: f32,
    /// Min-p (0: off).
    #[arg(long, value_name = "P", default_value_t = 0.05)]
    pub min_p: f32,
    /// Repetition penalty (1: off).
    #[arg(long, value_name = "R", default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Tokens the repetition penalty looks back on (0: off).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Seed of the random draw (default: random).
    #[arg(short = 's', long, value_name = "S")]
    pub seed: Option<u64>,
    /// Stop when the text contains STR (not printed); repeatable.
    #[arg(long = "stop", value_name = "STR")]
    pub stop: Vec<String>,
    /// Do not stop at end-of-generation tokens.
    #[arg(long)]
    pub ignore_eos: bool,
}

impl SamplingArgs {
    /// The generation options.
    pub fn options(&self) -> Result<GenerateOptions, kiln::generate::GenerateError> {
        let mut b = GenerateOptions::builder()
            .temperature(self.temp)
            .top_k((self.top_k > 0).then_some(self.top_k))
            .top_p(self.top_p)
            .min_p(self.min_p)
            .repeat_penalty(self.repeat_penalty)
            .penalty_last_n(self.repeat_last_n)
            .stop_strings(self.stop.iter().cloned())
            .ignore_eos(self.ignore_eos);
        if let Ok(n) = usize::try_from(self.n_predict) {
            b = b.max_tokens(n);
        }
        if let Some(s) = self.seed {
            b = b.seed(s);
        }
        b.build()
    }
}

/// Why generation stopped, in words.
pub fn stop_words(r: Option<StopReason>) -> String {
    match r {
        Some(StopReason::MaxTokens) => "token limit".into(),
        Some(StopReason::EndOfGeneration(id)) => format!("end of generation (token {id})"),
        Some(StopReason::StopString(i)) => format!("stop string {i}"),
        Some(StopReason::Cancelled) => "cancelled".into(),
        Some(StopReason::ContextFull) => "context full".into(),
        Some(other) => format!("{other:?}"),
        None => "error".into(),
    }
}

/// The statistics lines of one generation, for stderr.
pub fn stats_lines(s: &GenerationStats) -> String {
    format!(
        "kiln: prompt: {} tokens in {:.3} s ({:.1} tokens/s)\n\
         kiln: generated: {} tokens in {:.3} s ({:.1} tokens/s), stopped: {}",
        s.prompt_tokens,
        s.prompt_time.as_secs_f64(),
        s.prompt_tokens_per_second(),
        s.generated_tokens,
        s.generation_time.as_secs_f64(),
        s.generation_tokens_per_second(),
        stop_words(s.stop_reason),
    )
}
