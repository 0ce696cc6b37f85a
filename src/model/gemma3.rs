//! Gemma 3 (`general.architecture = gemma3`, text model).
//!
//! Follows llama.cpp's `src/models/gemma3.cpp` graph (interleaved sliding-window variant):
//! ```text
//! x = embd(tokens) * sqrt(n_embd)
//! per block:  q = rope(rmsnorm_head(wq · norm(x))) / sqrt(head_dim), k = rope(rmsnorm_head(wk · norm(x)))
//!             x += post_attention_norm(wo · attn(q, k, wv · norm(x)))
//!             x += post_ffw_norm(w_down · (gelu(w_gate · norm(x)) * (w_up · norm(x))))
//! ```
//! Five of every six blocks (block `il` is global iff `(il + 1) % 6 == 0`) attend only to the
//! last `sliding_window` positions (`p - window < key position <= p`) and use RoPE base 10000;
//! the global blocks use the metadata base and scaling. RoPE is NEOX-style (halves). The GGUF
//! norm weights already include Gemma's `+1`.

use crate::ops::activation::geglu_inplace;
use crate::ops::attention::AttnParams;
use crate::ops::rope::{RopeMode, RopeParams};

use super::config::Meta;
use super::session::{
    Forward, add_inplace, matmul, norm_rows_inplace, par_rows, rope_qk, self_attention,
};
use super::weights::Binder;
use super::{Architecture, Config, MatWeight, ModelError};

/// Every `SWA_PATTERN`-th block attends globally (llama.cpp's `set_swa_pattern(6)`).
const SWA_PATTERN: usize = 6;
/// RoPE base of the sliding-window blocks (`rope_freq_base_train_swa`).
const ROPE_BASE_SWA: f32 = 10000.0;

/// The weights of one Gemma 3 block.
#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    wq: MatWeight,
    wk: MatWeight,
    wv: MatWeight,
    wo: MatWeight,
    /// `[head_dim_k]` per-head RMSNorm of the queries.
    q_norm: Vec<f32>,
    /// `[head_dim_k]` per-head RMSNorm of the keys.
    k_norm: Vec<f32>,
    post_attention_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    ffn_gate: MatWeight,
    ffn_up: MatWeight,
    ffn_down: MatWeight,
    post_ffw_norm: Vec<f32>,
}

/// A Gemma 3 model's blocks.
#[derive(Debug)]
pub(crate) struct Gemma3 {
    layers: Vec<Layer>,
    window: usize,
    rope_global: RopeParams,
    rope_local: RopeParams,
    /// Multiplies the queries before attention (`f_attention_scale`).
    q_scale: f32,
    embd_scale: f32,
}

impl Gemma3 {
    /// Reads the Gemma-specific hyperparameters and binds the block weights.
    pub(crate) fn load(
        _meta: &Meta<'_, '_>,
        cfg: &mut Config,
        b: &Binder<'_, '_>,
    ) -> Result<Gemma3, ModelError> {
        let window = cfg
            .sliding_window
            .ok_or_else(|| ModelError::MissingMetadata("gemma3.attention.sliding_window".into()))?;
        let e = cfg.n_embd;
        let hd = cfg.head_dim_k;
        let qd = cfg.n_head * hd;
        let kd = cfg.n_head_kv * hd;
        let vd = cfg.n_head_kv * cfg.head_dim_v;
        let mut layers = Vec::new();
        for i in 0..cfg.n_layer {
            let t = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: b.vector(&t("attn_norm"), e)?,
                wq: b.matrix(&t("attn_q"), qd, e)?,
                wk: b.matrix(&t("attn_k"), kd, e)?,
                wv: b.matrix(&t("attn_v"), vd, e)?,
                wo: b.matrix(&t("attn_output"), e, cfg.n_head * cfg.head_dim_v)?,
                q_norm: b.vector(&t("attn_q_norm"), hd)?,
                k_norm: b.vector(&t("attn_k_norm"), hd)?,
                post_attention_norm: b.vector(&t("post_attention_norm"), e)?,
                ffn_norm: b.vector(&t("ffn_norm"), e)?,
                ffn_gate: b.matrix(&t("ffn_gate"), cfg.n_ff, e)?,
                ffn_up: b.matrix(&t("ffn_up"), cfg.n_ff, e)?,
                ffn_down: b.matrix(&t("ffn_down"), e, cfg.n_ff)?,
                post_ffw_norm: b.vector(&t("post_ffw_norm"), e)?,
            });
        }
        let rope_global = RopeParams {
            n_rot: cfg.n_rot,
            base: cfg.rope_base,
            freq_scale: cfg.rope_freq_scale,
            mode: RopeMode::Neox,
        };
        let rope_local = RopeParams {
            base: ROPE_BASE_SWA,
            freq_scale: 1.0,
            ..rope_global
        };
        // llama.cpp: 1/sqrt(head_dim), except Gemma 3 27B (62 blocks) which uses n_embd/n_head.
        let q_scale = cfg.attn_scale.unwrap_or_else(|| {
            let d = if cfg.n_layer == 62 {
                cfg.n_embd / cfg.n_head
            } else {
                hd
            };
            1.0 / (d as f32).sqrt()
        });
        Ok(Gemma3 {
            layers,
            window,
            rope_global,
            rope_local,
            q_scale,
            embd_scale: (e as f32).sqrt(),
        })
    }

    /// Whether block `il` uses sliding-window attention.
    fn is_swa(il: usize) -> bool {
        !(il + 1).is_multiple_of(SWA_PATTERN)
    }
}

impl Architecture for Gemma3 {
    fn embedding_scale(&self) -> Option<f32> {
        Some(self.embd_scale)
    }

    fn forward_layer(&self, fw: &mut Forward<'_>, il: usize) -> crate::Result<()> {
        let l = &self.layers[il];
        let cfg = fw.cfg;
        let (n, e, eps) = (fw.n, cfg.n_embd, cfg.rms_eps);
        let bytes = fw.bytes;
        let swa = Self::is_swa(il);
        {
            let s = &mut *fw.s;
            s.xn[..n * e].copy_from_slice(&s.x[..n * e]);
            norm_rows_inplace(&mut s.xn[..n * e], &l.attn_norm, eps);
            matmul(bytes, &l.wq, &s.xn, n, &mut s.q, &mut s.mm)?;
            matmul(bytes, &l.wk, &s.xn, n, &mut s.k, &mut s.mm)?;
            matmul(bytes, &l.wv, &s.xn, n, &mut s.v, &mut s.mm)?;
            let (qn, kn) = (n * l.wq.rows, n * l.wk.rows);
            norm_rows_inplace(&mut s.q[..qn], &l.q_norm, eps);
            norm_rows_inplace(&mut s.k[..kn], &l.k_norm, eps);
            let rope = if swa {
                &self.rope_local
            } else {
                &self.rope_global
            };
            rope_qk(
                &mut s.q[..qn],
                &mut s.k[..kn],
                n,
                cfg.head_dim_k,
                fw.pos0,
                rope,
                None,
                &mut s.rope,
            );
            for v in &mut s.q[..qn] {
                *v *= self.q_scale;
            }
        }
        let window = swa.then_some(self.window);
        self_attention(
            fw,
            il,
            window,
            &AttnParams {
                scale: 1.0,
                softcap: None,
            },
        )?;
        let s = &mut *fw.s;
        matmul(bytes, &l.wo, &s.att, n, &mut s.o, &mut s.mm)?;
        norm_rows_inplace(&mut s.o[..n * e], &l.post_attention_norm, eps);
        add_inplace(&mut s.x[..n * e], &s.o[..n * e]);

        s.xn[..n * e].copy_from_slice(&s.x[..n * e]);
        norm_rows_inplace(&mut s.xn[..n * e], &l.ffn_norm, eps);
        matmul(bytes, &l.ffn_gate, &s.xn, n, &mut s.gate, &mut s.mm)?;
        matmul(bytes, &l.ffn_up, &s.xn, n, &mut s.up, &mut s.mm)?;
        let f = n * cfg.n_ff;
        par_rows(&mut s.gate[..f], &s.up[..f], cfg.n_ff, geglu_inplace);
        matmul(bytes, &l.ffn_down, &s.gate, n, &mut s.o, &mut s.mm)?;
        norm_rows_inplace(&mut s.o[..n * e], &l.post_ffw_norm, eps);
        add_inplace(&mut s.x[..n * e], &s.o[..n * e]);
        Ok(())
    }
}
