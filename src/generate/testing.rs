//! A tiny random llama model with a byte-level BPE vocabulary and a ChatML template, built in
//! memory with [`GgufWriter`], for doctests and tests of the generation API. Its output is
//! deterministic nonsense.

use std::sync::Arc;

use crate::GgmlType;
use crate::generate::LoadOptions;
use crate::gguf::GgufWriter;
use crate::model::Model;

/// Control tokens of the tiny model, at ids 0, 1, 2 (`<|endoftext|>` is BOS and EOS,
/// `<|im_end|>` ends a turn).
pub const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// Merges of the tiny vocabulary (GPT-2 byte alphabet: `Ġ` is a space); each adds a token.
pub const MERGES: [&str; 12] = [
    "Ġ t", "h e", "Ġt he", "i n", "e r", "a n", "o n", "r e", "Ġ a", "Ġ s", "Ġ o", "e n",
];

/// The ChatML template of the tiny model (Jinja).
pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const N_EMBD: usize = 64;
const N_LAYER: usize = 2;
const N_FF: usize = 96;
const N_HEAD: usize = 2;
const N_HEAD_KV: usize = 1;
const HEAD_DIM: usize = 32;
const N_CTX_TRAIN: usize = 512;

/// The GPT-2 byte alphabet: the character standing for each byte.
fn byte_char(b: u8) -> char {
    let direct = |b: u8| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    if direct(b) {
        return char::from(b);
    }
    let n = (0..b).filter(|&x| !direct(x)).count() as u32;
    char::from_u32(256 + n).unwrap_or('?')
}

/// The token texts: the control tokens, the 256 byte tokens, one token per merge.
pub fn vocab() -> Vec<String> {
    let mut v: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    v.extend((0..=255u8).map(|b| byte_char(b).to_string()));
    v.extend(MERGES.iter().map(|m| m.replace(' ', "")));
    v
}

/// xorshift numbers in [-1, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn bytes(&mut self, n: usize, scale: f32, offset: f32) -> Vec<u8> {
        (0..n)
            .flat_map(|_| (self.next() * scale + offset).to_le_bytes())
            .collect()
    }
}

/// The GGUF file of the tiny model with random f32 weights drawn from `seed`.
pub fn tiny_model_bytes(seed: u64) -> crate::Result<Vec<u8>> {
    build(seed, true)
}

/// The tiny model's file without any tokenizer metadata.
pub fn tiny_model_bytes_without_tokenizer(seed: u64) -> crate::Result<Vec<u8>> {
    build(seed, false)
}

fn build(seed: u64, with_tokenizer: bool) -> crate::Result<Vec<u8>> {
    let vocab = vocab();
    let n_vocab = vocab.len();
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (qd, kd) = (N_HEAD * HEAD_DIM, N_HEAD_KV * HEAD_DIM);
    // (name, dims with the row length first, f32 little-endian bytes)
    let mut tensors: Vec<(String, Vec<u64>, Vec<u8>)> = Vec::new();
    let mut mat = |r: &mut Rng, name: String, rows: usize, cols: usize| {
        let scale = 1.5 / (cols as f32).sqrt();
        let data = r.bytes(rows * cols, scale, 0.0);
        tensors.push((name, vec![cols as u64, rows as u64], data));
    };
    mat(&mut r, "token_embd.weight".into(), n_vocab, N_EMBD);
    let mut norms = Vec::new();
    for i in 0..N_LAYER {
        let b = |n: &str| format!("blk.{i}.{n}.weight");
        norms.push(b("attn_norm"));
        mat(&mut r, b("attn_q"), qd, N_EMBD);
        mat(&mut r, b("attn_k"), kd, N_EMBD);
        mat(&mut r, b("attn_v"), kd, N_EMBD);
        mat(&mut r, b("attn_output"), N_EMBD, qd);
        norms.push(b("ffn_norm"));
        mat(&mut r, b("ffn_gate"), N_FF, N_EMBD);
        mat(&mut r, b("ffn_up"), N_FF, N_EMBD);
        mat(&mut r, b("ffn_down"), N_EMBD, N_FF);
    }
    norms.push("output_norm.weight".into());
    for name in norms {
        let data = r.bytes(N_EMBD, 0.3, 1.0);
        tensors.push((name, vec![N_EMBD as u64], data));
    }

    let mut w = GgufWriter::new();
    let u = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    w.add_str("general.architecture", "llama")?;
    w.add_str("general.name", "kiln-tiny")?;
    w.add_u32("llama.context_length", u(N_CTX_TRAIN))?;
    w.add_u32("llama.embedding_length", u(N_EMBD))?;
    w.add_u32("llama.block_count", u(N_LAYER))?;
    w.add_u32("llama.feed_forward_length", u(N_FF))?;
    w.add_u32("llama.attention.head_count", u(N_HEAD))?;
    w.add_u32("llama.attention.head_count_kv", u(N_HEAD_KV))?;
    w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)?;
    w.add_f32("llama.rope.freq_base", 10000.0)?;
    let types: Vec<i32> = (0..n_vocab)
        .map(|i| if i < SPECIALS.len() { 3 } else { 1 })
        .collect();
    if with_tokenizer {
        w.add_str("tokenizer.ggml.model", "gpt2")?;
        w.add_str("tokenizer.ggml.pre", "gpt-2")?;
        w.add_str_array("tokenizer.ggml.tokens", vocab.iter().map(String::as_str))?;
        w.add_array("tokenizer.ggml.token_type", &types)?;
        w.add_str_array("tokenizer.ggml.merges", MERGES)?;
        w.add_u32("tokenizer.ggml.bos_token_id", 0)?;
        w.add_u32("tokenizer.ggml.eos_token_id", 0)?;
        w.add_bool("tokenizer.ggml.add_bos_token", true)?;
        w.add_str("tokenizer.chat_template", CHATML)?;
    }
    for (name, dims, data) in &tensors {
        w.add_tensor(name, GgmlType::F32, dims, data)?;
    }
    Ok(w.to_vec()?)
}

/// The tiny model (seed 1), loaded with the default options.
pub fn tiny_model() -> crate::Result<Arc<Model>> {
    tiny_model_with(1, &LoadOptions::default())
}

/// The tiny model drawn from `seed`, loaded with `opts`.
pub fn tiny_model_with(seed: u64, opts: &LoadOptions) -> crate::Result<Arc<Model>> {
    Model::from_bytes(tiny_model_bytes(seed)?, opts)
}
