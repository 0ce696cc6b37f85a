//! Samplers: a `Sampler` trait over candidate lists, and llama.cpp's set of samplers.

/// Invalid sampler options or logits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SamplingError {}
