//! kiln runs GGUF-quantized language models on the CPU, in pure Rust.
//!
//! The data path, one module per stage (see ARCHITECTURE.md):
//!
//! ```text
//! file bytes -> gguf (parse, validate) -> tensor (zero-copy views) -> quant (block layouts)
//!   -> kernels (SIMD dot products, chosen once per process) -> ops -> model (forward pass,
//!   KV cache) -> sampling -> tokenizer (streaming decode) -> text
//! ```
//!
//! ## Quick start
//!
//! Load a model, then generate in one line, stream tokens, or hold a conversation
//! (see [`generate`] for everything the generation API offers):
//!
//! ```
//! use kiln::{GenerateOptions, LoadOptions, Model};
//!
//! # let model = kiln::testing::tiny_model()?;
//! # /*
//! let model = Model::load_with("SmolLM2-135M-Instruct.Q4_1.gguf", &LoadOptions::new())?;
//! # */
//! let opts = GenerateOptions::builder().max_tokens(32).temperature(0.7).seed(42).build()?;
//!
//! // One prompt in, the continuation out.
//! let text = model.generate("The capital of France is", &opts)?;
//!
//! // Streaming: each token comes with the text it completes (whole UTF-8 characters).
//! let mut generator = model.generator()?;
//! generator.feed_text("Once upon a time", true)?;
//! for token in generator.stream(&opts)? {
//!     print!("{}", token?.text);
//! }
//!
//! // A conversation with the model's chat template: each turn evaluates only new tokens.
//! let mut chat = model.chat()?;
//! let answer = chat.reply("What is the capital of France?", &opts)?;
//! let follow_up = chat.reply("And of Italy?", &opts)?;
//! # Ok::<(), kiln::Error>(())
//! ```
#![warn(missing_debug_implementations)]

pub mod chat;
pub mod dtype;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod kernels;
pub mod kv_cache;
pub mod model;
pub mod ops;
pub mod quant;
pub mod sampling;
pub mod tensor;
pub mod tokenizer;

pub use dtype::GgmlType;
pub use error::{Error, Result};
pub use generate::{
    CancelHandle, Chat, GenerateOptions, Generator, LoadOptions, StopReason, Token,
};
pub use model::Model;

#[doc(hidden)]
pub use generate::testing;

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
