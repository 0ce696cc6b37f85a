//! Tensor operations of the forward pass: matmul, norms, RoPE, softmax, activations, attention.
//!
//! Matrix products live in [`crate::kernels::matmul`]; these are the row-wise operations around
//! them, written to reproduce ggml's CPU arithmetic closely (accumulation types, rounding of
//! the GELU table, the RoPE angle recurrence), since kiln's answers are checked against
//! llama.cpp's.

pub mod activation;
pub mod attention;
pub mod flash;
pub mod norm;
pub mod rope;
pub mod softmax;
