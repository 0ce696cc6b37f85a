//! The reader on the two real models: structure, metadata, zero-copy views, both storage modes.

mod common;

use kiln::GgmlType;
use kiln::gguf::{GgufFile, OpenOptions, ValueType};

fn open(file: &str, mmap: bool) -> Option<GgufFile> {
    let path = common::model(file)?;
    Some(GgufFile::open(path, OpenOptions { mmap }).expect("open"))
}

#[test]
fn smollm2_structure() {
    let Some(f) = open(common::SMOLLM2, true) else {
        return;
    };
    assert!(f.is_mmap());
    let g = f.parse().unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.architecture().unwrap(), "llama");
    assert_eq!(g.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(g.get_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(g.get_u32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(g.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(g.tensors().len(), 272);
    let toks = g.get_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(toks.elem_type(), ValueType::String);
    assert_eq!(toks.len(), 49152);
    assert_eq!(toks.iter_str().count(), 49152);
    // Tensors cover the data section without gaps beyond alignment padding.
    let data: u64 = g.tensors().iter().map(|t| t.n_bytes()).sum();
    assert!(data <= g.data_section_len());
    assert!(g.data_section_len() - data < g.tensors().len() as u64 * g.alignment());
    let emb = g.tensor("token_embd.weight").unwrap();
    assert_eq!(emb.dims(), &[576, 49152]);
    assert_eq!(emb.dtype(), GgmlType::Q8_0);
    assert_eq!(emb.n_rows(), 49152);
    assert_eq!(emb.row_bytes(), 576 / 32 * 34);
    assert_eq!(emb.row(49151).len(), emb.row_bytes());
    // Views borrow the file: same address as the map.
    let r = g.tensor_range(0).unwrap();
    let v = g.tensor_views().next().unwrap();
    assert_eq!(v.data().as_ptr(), f.bytes()[r.start as usize..].as_ptr());
}

#[test]
fn gemma3_structure() {
    let Some(f) = open(common::GEMMA3, true) else {
        return;
    };
    let g = f.parse().unwrap();
    assert_eq!(g.architecture().unwrap(), "gemma3");
    assert_eq!(g.get_u32("gemma3.block_count").unwrap(), 18);
    assert_eq!(g.get_u32("gemma3.attention.key_length").unwrap(), 256);
    assert_eq!(g.get_u32("gemma3.attention.sliding_window").unwrap(), 512);
    assert_eq!(g.tensors().len(), 236);
    let toks = g.get_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(toks.iter_str().len(), 262144);
    assert_eq!(toks.iter_str().count(), 262144);
    let scores = g
        .get_array("tokenizer.ggml.scores")
        .unwrap()
        .to_f32_vec()
        .unwrap();
    assert_eq!(scores.len(), 262144);
    let types: std::collections::BTreeSet<_> = g.tensors().iter().map(|t| t.dtype).collect();
    for t in [
        GgmlType::Q5_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::Q8_0,
    ] {
        assert!(types.contains(&t), "{t} missing");
    }
}

#[test]
fn heap_and_map_agree() {
    for file in [common::SMOLLM2, common::GEMMA3] {
        let (Some(a), Some(b)) = (open(file, true), open(file, false)) else {
            return;
        };
        assert!(!b.is_mmap());
        assert_eq!(b.bytes().as_ptr() as usize % 64, 0);
        assert!(a.bytes() == b.bytes());
        let (ga, gb) = (a.parse().unwrap(), b.parse().unwrap());
        assert_eq!(ga.tensors(), gb.tensors());
        assert_eq!(ga.metadata(), gb.metadata());
        // Tensor data is aligned in memory as in the file.
        for t in gb.tensor_views() {
            assert_eq!(
                t.data().as_ptr() as usize % gb.alignment() as usize,
                0,
                "{}",
                t.name()
            );
        }
    }
}

#[test]
fn from_bytes_is_aligned() {
    let Some(a) = open(common::SMOLLM2, true) else {
        return;
    };
    let f = GgufFile::from_bytes(a.bytes().to_vec());
    assert_eq!(f.bytes().as_ptr() as usize % 64, 0);
    assert_eq!(f.parse().unwrap().tensors().len(), 272);
}

#[test]
fn open_reports_the_path() {
    let e = GgufFile::open("/nonexistent/model.gguf", OpenOptions::default()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/model.gguf"), "{e}");
    assert!(matches!(e, kiln::Error::Io { .. }));
}
