//! Reading each real model and writing it back with `GgufWriter` gives the same bytes.

mod common;

use kiln::gguf::{GgufFile, GgufWriter, OpenOptions};

fn roundtrip(file: &str) {
    let Some(path) = common::model(file) else {
        return;
    };
    let f = GgufFile::open(&path, OpenOptions::default()).expect("open");
    let g = f.parse().expect("parse");
    let mut w = GgufWriter::new();
    w.set_version(g.version()).unwrap();
    for kv in g.metadata() {
        w.add_kv(kv.key, &kv.value).unwrap();
    }
    for t in g.tensor_views() {
        w.add_tensor(t.name(), t.dtype(), t.dims(), t.data())
            .unwrap();
    }
    assert_eq!(w.alignment(), g.alignment());
    assert_eq!(
        w.file_len().unwrap(),
        f.bytes().len() as u64,
        "{file}: length differs"
    );
    let out = w.to_vec().unwrap();
    // Find the first differing byte for a useful message, without printing 100 MB.
    if let Some(i) = out.iter().zip(f.bytes()).position(|(a, b)| a != b) {
        panic!(
            "{file}: first difference at byte {i} (data section starts at {})",
            g.data_offset()
        );
    }
    assert_eq!(out.len(), f.bytes().len());
    assert!(out == f.bytes());
}

#[test]
fn smollm2_roundtrips_byte_identical() {
    roundtrip(common::SMOLLM2);
}

#[test]
fn gemma3_roundtrips_byte_identical() {
    roundtrip(common::GEMMA3);
}
