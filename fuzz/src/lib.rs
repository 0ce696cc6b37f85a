//! Shared checks for the GGUF fuzz targets.

use kiln::gguf::{ArrayValue, Gguf, GgufWriter, Value, ValueType};

/// Parse `data`; if it parses, touch everything and check the writer round trip.
pub fn check_bytes(data: &[u8]) {
    let Ok(g) = Gguf::parse(data) else { return };
    touch(&g);
    check_rewrite(&g);
}

/// Read every metadata value through the typed getters and every tensor byte through views.
pub fn touch(g: &Gguf<'_>) {
    assert!(g.alignment().is_power_of_two());
    assert_eq!(g.data_offset() % g.alignment(), 0);
    for kv in g.metadata() {
        assert!(!kv.key.is_empty());
        let v = g.get(kv.key).expect("every key is indexed");
        assert_eq!(v.value_type(), kv.value.value_type());
        // Exactly one typed getter succeeds for scalars; the others report a mismatch.
        let ok = [
            g.get_u8(kv.key).is_ok(),
            g.get_i8(kv.key).is_ok(),
            g.get_u16(kv.key).is_ok(),
            g.get_i16(kv.key).is_ok(),
            g.get_u32(kv.key).is_ok(),
            g.get_i32(kv.key).is_ok(),
            g.get_f32(kv.key).is_ok(),
            g.get_bool(kv.key).is_ok(),
            g.get_str(kv.key).is_ok(),
            g.get_array(kv.key).is_ok(),
            g.get_u64(kv.key).is_ok(),
            g.get_i64(kv.key).is_ok(),
            g.get_f64(kv.key).is_ok(),
        ];
        assert_eq!(ok.iter().filter(|&&b| b).count(), 1);
        assert!(ok[kv.value.value_type().id() as usize]);
        let _ = kv.value.to_string();
        if let Value::Array(a) = &kv.value {
            touch_array(a, 1);
        }
    }
    for (i, info) in g.tensors().iter().enumerate() {
        let t = g.tensor(&info.name).expect("every tensor is indexed");
        assert_eq!(t.dims(), &info.dims[..]);
        assert_eq!(t.data().len() as u64, info.n_bytes());
        let r = g.tensor_range(i).unwrap();
        assert_eq!(r.end - r.start, info.n_bytes());
        assert!(r.end as usize <= g.bytes().len());
        let mut sum = 0u64;
        for row in 0..t.n_rows() {
            let bytes = t.row(row);
            assert_eq!(bytes.len(), t.row_bytes());
            sum = sum.wrapping_add(bytes.iter().map(|&b| b as u64).sum::<u64>());
        }
        assert_eq!(t.get_row(t.n_rows()), None);
        std::hint::black_box(sum);
    }
}

fn touch_array(a: &ArrayValue<'_>, depth: usize) {
    assert!(depth <= kiln::gguf::MAX_ARRAY_DEPTH);
    let n = a.len();
    assert_eq!(a.values().count(), n);
    match a.elem_type() {
        ValueType::String => {
            let strs = a.try_iter_str().unwrap();
            assert_eq!(strs.len(), n);
            let total: usize = strs.map(str::len).sum();
            std::hint::black_box(total);
        }
        ValueType::Array => {
            let mut count = 0;
            for inner in a.iter_arrays().unwrap() {
                touch_array(&inner, depth + 1);
                count += 1;
            }
            assert_eq!(count, n);
        }
        ValueType::F32 => assert_eq!(a.to_f32_vec().unwrap().len(), n),
        ValueType::I32 => assert_eq!(a.to_i32_vec().unwrap().len(), n),
        ValueType::U32 => assert_eq!(a.to_u32_vec().unwrap().len(), n),
        ValueType::U64 => assert_eq!(a.to_u64_vec().unwrap().len(), n),
        ValueType::U8 => assert_eq!(a.to_vec::<u8>().unwrap().len(), n),
        ValueType::I8 => assert_eq!(a.to_vec::<i8>().unwrap().len(), n),
        ValueType::U16 => assert_eq!(a.to_vec::<u16>().unwrap().len(), n),
        ValueType::I16 => assert_eq!(a.to_vec::<i16>().unwrap().len(), n),
        ValueType::Bool => assert_eq!(a.to_vec::<bool>().unwrap().len(), n),
        ValueType::I64 => assert_eq!(a.to_vec::<i64>().unwrap().len(), n),
        ValueType::F64 => assert_eq!(a.to_vec::<f64>().unwrap().len(), n),
    }
    if a.elem_type() != ValueType::String {
        assert!(a.try_iter_str().is_err());
        assert_eq!(a.iter_str().len(), 0);
    }
}

fn encoded(v: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

/// Largest rewritten file the round-trip check materialises. A legal file can ask for a huge
/// alignment (up to 2^31) with no tensors: it parses without allocating (its data section
/// starts past its end), but its canonical rewrite is padded to the alignment, e.g. 1 GiB for
/// a 65-byte input (fuzz/regressions: tests/gguf_validation.rs `huge_alignment_without_tensors`).
const MAX_REWRITE: u64 = 16 << 20;

/// Write a parsed file back with `GgufWriter`; the result must parse to the same metadata
/// (byte for byte) and the same tensors with the same data.
pub fn check_rewrite(g: &Gguf<'_>) {
    let mut w = GgufWriter::new();
    w.set_version(g.version()).unwrap();
    for kv in g.metadata() {
        w.add_kv(kv.key, &kv.value)
            .expect("a parsed value can be written");
    }
    for t in g.tensor_views() {
        w.add_tensor(t.name(), t.dtype(), t.dims(), t.data())
            .expect("a parsed tensor can be written");
    }
    let len = w.file_len().expect("writer layout");
    assert!(len >= g.data_offset().min(len));
    if len > MAX_REWRITE {
        return;
    }
    let bytes = w.to_vec().expect("writer output");
    assert_eq!(bytes.len() as u64, len);
    let g2 = Gguf::parse(&bytes).expect("writer output parses");
    assert_eq!(g2.version(), g.version());
    assert_eq!(g2.alignment(), g.alignment());
    assert_eq!(g2.metadata().len(), g.metadata().len());
    for (a, b) in g.metadata().iter().zip(g2.metadata()) {
        assert_eq!(a.key, b.key);
        assert_eq!(encoded(&a.value), encoded(&b.value));
    }
    assert_eq!(
        g2.tensors(),
        g.tensors()
            .iter()
            .map(|t| {
                let mut t = t.clone();
                t.offset = g2.tensor_info(&t.name).unwrap().offset;
                t
            })
            .collect::<Vec<_>>()
            .as_slice()
    );
    for (a, b) in g.tensor_views().zip(g2.tensor_views()) {
        assert_eq!(a.data(), b.data());
    }
    // A file written by the writer is canonical: writing it again is the identity.
    let mut w2 = GgufWriter::new();
    w2.set_version(g2.version()).unwrap();
    for kv in g2.metadata() {
        w2.add_kv(kv.key, &kv.value).unwrap();
    }
    for t in g2.tensor_views() {
        w2.add_tensor(t.name(), t.dtype(), t.dims(), t.data())
            .unwrap();
    }
    assert_eq!(w2.to_vec().unwrap(), bytes);
}
