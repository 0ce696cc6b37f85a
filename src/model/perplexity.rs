//! Perplexity over a token stream, exactly as llama.cpp's `tools/perplexity` computes it.
//!
//! The tokens are split into chunks of `n_ctx` (a tail that does not fill a chunk is dropped).
//! Each chunk is evaluated from position 0 with an empty cache; if the model adds BOS, the
//! chunk's first token is replaced by BOS. Only the second half is scored: for positions
//! `j = n_ctx/2 .. n_ctx-2`, the negative log-likelihood of token `j + 1` under the logits at
//! `j`. `PPL = exp(mean NLL)`; the uncertainty is `PPL * sqrt(var(NLL) / (count - 1))`.

use crate::ops::softmax::log_softmax_at;

use super::{ModelError, Session};

/// The result of [`perplexity`].
#[derive(Clone, Debug, PartialEq)]
pub struct Perplexity {
    /// Chunks evaluated.
    pub chunks: usize,
    /// Tokens scored.
    pub scored: usize,
    /// Perplexity over all scored tokens.
    pub ppl: f64,
    /// Its standard error (llama.cpp's `+/-` figure).
    pub stderr: f64,
    /// The perplexity after each chunk (what llama.cpp prints as `[i]value,`).
    pub running: Vec<f64>,
}

/// Computes the perplexity of `tokens` in chunks of `n_ctx` with `session` (whose context must
/// hold `n_ctx` positions; it is cleared before each chunk). `bos`: the BOS token when the
/// model adds one (it replaces each chunk's first token). `on_chunk(i, running_ppl)` is called
/// after chunk `i` (0-based).
pub fn perplexity(
    session: &mut Session,
    tokens: &[u32],
    n_ctx: usize,
    bos: Option<u32>,
    mut on_chunk: impl FnMut(usize, f64),
) -> crate::Result<Perplexity> {
    if n_ctx < 4 {
        return Err(ModelError::InvalidOption(format!(
            "perplexity context {n_ctx} is too small (at least 4)"
        ))
        .into());
    }
    if n_ctx > session.n_ctx() {
        return Err(ModelError::InvalidOption(format!(
            "perplexity context {n_ctx} exceeds the session context {}",
            session.n_ctx()
        ))
        .into());
    }
    let chunks = tokens.len() / n_ctx;
    if chunks == 0 {
        return Err(ModelError::InvalidOption(format!(
            "{} tokens are fewer than one chunk of {n_ctx}",
            tokens.len()
        ))
        .into());
    }
    let first = n_ctx / 2;
    let mut chunk = Vec::new();
    chunk
        .try_reserve_exact(n_ctx)
        .map_err(|_| ModelError::OutOfMemory {
            what: "perplexity chunk",
            bytes: n_ctx * 4,
        })?;
    let (mut nll, mut nll2, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut running = Vec::with_capacity(chunks.min(1 << 20));
    for i in 0..chunks {
        chunk.clear();
        chunk.extend_from_slice(&tokens[i * n_ctx..(i + 1) * n_ctx]);
        if let Some(b) = bos {
            chunk[0] = b;
        }
        session.clear();
        session.eval(&chunk, first..n_ctx - 1, |j, logits| {
            let next = chunk[j + 1] as usize;
            let lp = log_softmax_at(logits, next).ok_or(ModelError::InvalidToken {
                token: chunk[j + 1],
                n_vocab: logits.len(),
            })?;
            nll -= lp;
            nll2 += lp * lp;
            Ok(())
        })?;
        count += n_ctx - 1 - first;
        let ppl = (nll / count as f64).exp();
        running.push(ppl);
        on_chunk(i, ppl);
    }
    let mean = nll / count as f64;
    let ppl = mean.exp();
    let var = nll2 / count as f64 - mean * mean;
    let stderr = if var > 0.0 && count > 1 {
        (var / (count - 1) as f64).sqrt() * ppl
    } else {
        0.0
    };
    Ok(Perplexity {
        chunks,
        scored: count,
        ppl,
        stderr,
        running,
    })
}
