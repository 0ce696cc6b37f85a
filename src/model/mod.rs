//! Models: configuration from metadata, weights by GGUF tensor name, one file per architecture.

/// A model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {}
