//! Llama (`general.architecture = llama`): RMSNorm, RoPE on adjacent pairs with optional
//! `rope_freqs` factors (Llama 3.1 scaling), grouped-query attention, SwiGLU feed-forward.
//!
//! Follows llama.cpp's `src/models/llama.cpp` graph:
//! ```text
//! x += wo · attn(rope(wq · norm(x)), rope(wk · norm(x)), wv · norm(x))
//! x += w_down · (silu(w_gate · norm(x)) * (w_up · norm(x)))
//! ```

use crate::ops::activation::swiglu_inplace;
use crate::ops::attention::AttnParams;
use crate::ops::rope::{RopeMode, RopeParams};

use super::config::Meta;
use super::session::{
    Forward, add_inplace, matmul, norm_rows_inplace, par_rows, rope_qk, self_attention,
};
use super::weights::Binder;
use super::{Architecture, Config, MatWeight, ModelError};

/// The weights of one llama block.
#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    wq: MatWeight,
    wk: MatWeight,
    wv: MatWeight,
    wo: MatWeight,
    ffn_norm: Vec<f32>,
    ffn_gate: MatWeight,
    ffn_up: MatWeight,
    ffn_down: MatWeight,
}

/// A llama model's blocks.
#[derive(Debug)]
pub(crate) struct Llama {
    layers: Vec<Layer>,
    /// `[n_rot / 2]` RoPE frequency divisors (`rope_freqs.weight`).
    rope_freqs: Option<Vec<f32>>,
    rope: RopeParams,
    attn: AttnParams,
}

impl Llama {
    /// Binds the block weights.
    pub(crate) fn load(
        _meta: &Meta<'_, '_>,
        cfg: &mut Config,
        b: &Binder<'_, '_>,
    ) -> Result<Llama, ModelError> {
        let e = cfg.n_embd;
        let qd = cfg.n_head * cfg.head_dim_k;
        let kd = cfg.n_head_kv * cfg.head_dim_k;
        let vd = cfg.n_head_kv * cfg.head_dim_v;
        let mut layers = Vec::new();
        for i in 0..cfg.n_layer {
            let t = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: b.vector(&t("attn_norm"), e)?,
                wq: b.matrix(&t("attn_q"), qd, e)?,
                wk: b.matrix(&t("attn_k"), kd, e)?,
                wv: b.matrix(&t("attn_v"), vd, e)?,
                wo: b.matrix(&t("attn_output"), e, qd)?,
                ffn_norm: b.vector(&t("ffn_norm"), e)?,
                ffn_gate: b.matrix(&t("ffn_gate"), cfg.n_ff, e)?,
                ffn_up: b.matrix(&t("ffn_up"), cfg.n_ff, e)?,
                ffn_down: b.matrix(&t("ffn_down"), e, cfg.n_ff)?,
            });
        }
        let rope_freqs = b.vector_opt("rope_freqs.weight", cfg.n_rot / 2)?;
        if let Some(f) = &rope_freqs
            && f.iter().any(|v| *v <= 0.0)
        {
            return Err(ModelError::InvalidTensor {
                name: "rope_freqs.weight".into(),
                reason: "frequency factors must be positive".into(),
            });
        }
        let rope = RopeParams {
            n_rot: cfg.n_rot,
            base: cfg.rope_base,
            freq_scale: cfg.rope_freq_scale,
            mode: RopeMode::Normal,
        };
        let scale = cfg
            .attn_scale
            .unwrap_or(1.0 / (cfg.head_dim_k as f32).sqrt());
        Ok(Llama {
            layers,
            rope_freqs,
            rope,
            attn: AttnParams {
                scale,
                softcap: None,
            },
        })
    }
}

impl Architecture for Llama {
    fn forward_layer(&self, fw: &mut Forward<'_>, il: usize) -> crate::Result<()> {
        let l = &self.layers[il];
        let cfg = fw.cfg;
        let (n, e, eps) = (fw.n, cfg.n_embd, cfg.rms_eps);
        let bytes = fw.bytes;
        {
            let s = &mut *fw.s;
            s.xn[..n * e].copy_from_slice(&s.x[..n * e]);
            norm_rows_inplace(&mut s.xn[..n * e], &l.attn_norm, eps);
            matmul(bytes, &l.wq, &s.xn, n, &mut s.q, &mut s.mm)?;
            matmul(bytes, &l.wk, &s.xn, n, &mut s.k, &mut s.mm)?;
            matmul(bytes, &l.wv, &s.xn, n, &mut s.v, &mut s.mm)?;
            let (qn, kn) = (n * l.wq.rows, n * l.wk.rows);
            rope_qk(
                &mut s.q[..qn],
                &mut s.k[..kn],
                n,
                cfg.head_dim_k,
                fw.pos0,
                &self.rope,
                self.rope_freqs.as_deref(),
                &mut s.rope,
            );
        }
        self_attention(fw, il, None, &self.attn)?;
        let s = &mut *fw.s;
        matmul(bytes, &l.wo, &s.att, n, &mut s.o, &mut s.mm)?;
        add_inplace(&mut s.x[..n * e], &s.o[..n * e]);

        s.xn[..n * e].copy_from_slice(&s.x[..n * e]);
        norm_rows_inplace(&mut s.xn[..n * e], &l.ffn_norm, eps);
        matmul(bytes, &l.ffn_gate, &s.xn, n, &mut s.gate, &mut s.mm)?;
        matmul(bytes, &l.ffn_up, &s.xn, n, &mut s.up, &mut s.mm)?;
        let f = n * cfg.n_ff;
        par_rows(&mut s.gate[..f], &s.up[..f], cfg.n_ff, swiglu_inplace);
        matmul(bytes, &l.ffn_down, &s.gate, n, &mut s.o, &mut s.mm)?;
        add_inplace(&mut s.x[..n * e], &s.o[..n * e]);
        Ok(())
    }
}
