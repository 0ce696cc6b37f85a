//! kiln runs GGUF-quantized language models on the CPU, in pure Rust.
//!
//! The data path, one module per stage (see ARCHITECTURE.md):
//!
//! ```text
//! file bytes -> gguf (parse, validate) -> tensor (zero-copy views) -> quant (block layouts)
//!   -> kernels (SIMD dot products, chosen once per process) -> ops -> model (forward pass,
//!   KV cache) -> sampling -> tokenizer (streaming decode) -> text
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
