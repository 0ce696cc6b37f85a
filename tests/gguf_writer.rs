//! `GgufWriter`: layout, alignment, padding, and refusal of what the reader would reject.

use kiln::GgmlType;
use kiln::gguf::{Gguf, GgufError, GgufWriter, MAX_NAME_LEN, Value, ValueType};

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn writes_metadata_and_tensors_that_parse_back() {
    let a = f32_bytes(&[1.0, 2.0, 3.0]);
    let q = vec![7u8; 34 * 3]; // Q8_0: 3 rows of 32
    let mut w = GgufWriter::new();
    w.add_str("general.architecture", "llama").unwrap();
    w.add_u32("llama.block_count", 2).unwrap();
    w.add_i32("i", -4).unwrap();
    w.add_u64("u", 1 << 40).unwrap();
    w.add_f32("f", 0.25).unwrap();
    w.add_bool("b", true).unwrap();
    w.add_kv("i16", &Value::I16(-2)).unwrap();
    w.add_str_array("toks", ["<s>", "é", ""]).unwrap();
    w.add_array("scores", &[0.5f32, -1.0]).unwrap();
    w.add_array("flags", &[true, false]).unwrap();
    w.add_tensor("a", GgmlType::F32, &[3], &a).unwrap();
    w.add_tensor("q", GgmlType::Q8_0, &[32, 3], &q).unwrap();
    let bytes = w.to_vec().unwrap();
    assert_eq!(bytes.len() as u64, w.file_len().unwrap());
    assert_eq!(bytes.len() % 32, 0, "file padded to the alignment");
    let mut sink = Vec::new();
    assert_eq!(w.write_to(&mut sink).unwrap(), bytes.len() as u64);
    assert_eq!(sink, bytes);

    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.version(), 3);
    let keys: Vec<_> = g.metadata().iter().map(|kv| kv.key).collect();
    assert_eq!(
        keys,
        [
            "general.architecture",
            "llama.block_count",
            "i",
            "u",
            "f",
            "b",
            "i16",
            "toks",
            "scores",
            "flags"
        ]
    );
    assert_eq!(g.get_i32("i").unwrap(), -4);
    assert_eq!(g.get_u64("u").unwrap(), 1 << 40);
    assert_eq!(g.get_i16("i16").unwrap(), -2);
    assert_eq!(
        g.get_array("toks").unwrap().iter_str().collect::<Vec<_>>(),
        ["<s>", "é", ""]
    );
    assert_eq!(
        g.get_array("scores").unwrap().to_f32_vec().unwrap(),
        [0.5, -1.0]
    );
    assert_eq!(
        g.get_array("flags").unwrap().to_vec::<bool>().unwrap(),
        [true, false]
    );
    let ta = g.tensor("a").unwrap();
    assert_eq!(ta.data(), &a[..]);
    let tq = g.tensor("q").unwrap();
    assert_eq!((tq.n_rows(), tq.row_bytes()), (3, 34));
    // Tensors start at aligned offsets; the first at 0.
    assert_eq!(g.tensors()[0].offset, 0);
    assert_eq!(g.tensors()[1].offset, 32);
    assert_eq!(g.data_offset() % 32, 0);
}

#[test]
fn alignment_key_sets_the_padding() {
    let a = f32_bytes(&[1.0]);
    let mut w = GgufWriter::new();
    w.add_tensor("a", GgmlType::F32, &[1], &a).unwrap();
    w.add_u32("general.alignment", 256).unwrap();
    w.add_tensor("b", GgmlType::F32, &[1], &a).unwrap();
    let bytes = w.to_vec().unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.alignment(), 256);
    assert_eq!(g.data_offset() % 256, 0);
    assert_eq!(g.tensors()[1].offset, 256);
    assert_eq!(bytes.len() % 256, 0);
}

#[test]
fn version_2_and_empty_files() {
    let mut w = GgufWriter::new();
    w.set_version(2).unwrap();
    let bytes = w.to_vec().unwrap();
    assert_eq!(bytes.len(), 32, "24-byte header padded to 32");
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.version(), 2);
    assert!(matches!(
        w.set_version(1),
        Err(GgufError::InvalidWrite { .. })
    ));
}

#[test]
fn refuses_what_the_reader_rejects() {
    let a = f32_bytes(&[1.0, 2.0]);
    let mut w = GgufWriter::new();
    w.add_u32("k", 1).unwrap();
    assert!(matches!(
        w.add_u32("k", 2),
        Err(GgufError::InvalidWrite { .. })
    ));
    assert!(matches!(
        w.add_u32("", 2),
        Err(GgufError::InvalidWrite { .. })
    ));
    let long = "x".repeat(MAX_NAME_LEN as usize + 1);
    assert!(matches!(
        w.add_u32(&long, 2),
        Err(GgufError::InvalidWrite { .. })
    ));
    for bad in [Value::U32(0), Value::U32(48), Value::U64(32)] {
        assert!(matches!(
            w.add_kv("general.alignment", &bad),
            Err(GgufError::InvalidWrite { .. })
        ));
    }
    assert!(matches!(
        w.add_array("general.alignment", &[32u32]),
        Err(GgufError::InvalidWrite { .. })
    ));
    w.add_tensor("a", GgmlType::F32, &[2], &a).unwrap();
    assert!(matches!(
        w.add_tensor("a", GgmlType::F32, &[2], &a),
        Err(GgufError::InvalidWrite { .. })
    ));
    assert!(matches!(
        w.add_tensor("", GgmlType::F32, &[2], &a),
        Err(GgufError::InvalidWrite { .. })
    ));
    assert!(matches!(
        w.add_tensor("b", GgmlType::F32, &[3], &a),
        Err(GgufError::DataSizeMismatch {
            expected: 12,
            actual: 8,
            ..
        })
    ));
    assert!(matches!(
        w.add_tensor("b", GgmlType::F32, &[2, 0], &a),
        Err(GgufError::ZeroDim { dim: 1, .. })
    ));
    assert!(matches!(
        w.add_tensor("b", GgmlType::F32, &[], &a),
        Err(GgufError::BadDimCount { n_dims: 0, .. })
    ));
    assert!(matches!(
        w.add_tensor("b", GgmlType::F32, &[1, 1, 1, 1, 2], &a),
        Err(GgufError::BadDimCount { n_dims: 5, .. })
    ));
    assert!(matches!(
        w.add_tensor("b", GgmlType::Q4_0, &[16], &a),
        Err(GgufError::RowNotBlockMultiple { .. })
    ));
    assert!(matches!(
        w.add_tensor("b", GgmlType::F32, &[u64::MAX, 2], &a),
        Err(GgufError::SizeOverflow { .. })
    ));
    // What was refused left no trace: the file still parses with the accepted entries only.
    let bytes = w.to_vec().unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.metadata().len(), 1);
    assert_eq!(g.tensors().len(), 1);
    assert_eq!(g.alignment(), 32);
    assert_eq!(g.get("k").map(Value::value_type), Some(ValueType::U32));
}

#[test]
fn tensor_view_new_checks_shape_against_bytes() {
    let a = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let t = kiln::tensor::TensorView::new("t", GgmlType::F32, &[3, 2], &a).unwrap();
    assert_eq!(
        (t.row_len(), t.n_rows(), t.row_bytes(), t.n_elements()),
        (3, 2, 12, 6)
    );
    assert_eq!(t.row(1), &a[12..]);
    assert!(t.get_row(2).is_none());
    assert!(matches!(
        kiln::tensor::TensorView::new("t", GgmlType::F32, &[4, 2], &a),
        Err(GgufError::DataSizeMismatch {
            expected: 32,
            actual: 24,
            ..
        })
    ));
}
