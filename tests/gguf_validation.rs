//! Every defect `Gguf::parse` rejects, each with a crafted file and the exact error variant.

use kiln::GgmlType;
use kiln::gguf::{
    Gguf, GgufError, GgufWriter, MAX_ARRAY_DEPTH, MAX_NAME_LEN, MAX_STRING_LEN, Section, Value,
    ValueType,
};

/// Raw little-endian file builder: writes whatever it is told, valid or not.
#[derive(Default, Clone)]
struct Raw(Vec<u8>);

impl Raw {
    /// "GGUF", version, tensor count, kv count.
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A GGUF string: u64 length + bytes.
    fn str(&mut self, s: &[u8]) -> &mut Self {
        self.u64(s.len() as u64).bytes(s)
    }
    /// A key with a u32 value.
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key.as_bytes()).u32(ValueType::U32.id()).u32(v)
    }
    /// A tensor info.
    fn info(&mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> &mut Self {
        self.str(name.as_bytes()).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(type_id).u64(offset)
    }
    /// Zero-pad to a multiple of `a`.
    fn pad(&mut self, a: usize) -> &mut Self {
        while !self.0.len().is_multiple_of(a) {
            self.0.push(0);
        }
        self
    }
    fn zeros(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn parse(&self) -> Result<Gguf<'_>, GgufError> {
        Gguf::parse(&self.0)
    }
}

fn err(r: &Raw) -> GgufError {
    match r.parse() {
        Ok(_) => panic!("file parsed, expected an error"),
        Err(e) => e,
    }
}

/// A file with one F32 tensor `t` of `dims` at offset 0, followed by its data.
fn one_tensor(dims: &[u64], type_id: u32, data_len: usize) -> Raw {
    let mut r = Raw::header(3, 1, 0);
    r.info("t", dims, type_id, 0).pad(32).zeros(data_len);
    r
}

// ---------------------------------------------------------------- well-formed files

#[test]
fn minimal_files_parse() {
    for version in [2, 3] {
        let r = Raw::header(version, 0, 0);
        let g = r.parse().unwrap();
        assert_eq!(g.version(), version);
        assert_eq!(g.alignment(), 32);
        assert!(g.metadata().is_empty() && g.tensors().is_empty());
    }
    let r = one_tensor(&[8, 2], GgmlType::F32.id(), 64);
    let g = r.parse().unwrap();
    assert_eq!(g.data_offset(), 96);
    let t = g.tensor("t").unwrap();
    assert_eq!(
        (t.dims(), t.row_len(), t.n_rows(), t.row_bytes()),
        (&[8u64, 2][..], 8, 2, 32)
    );
    assert_eq!(t.data().len(), 64);
    assert_eq!(t.get_row(2), None);
}

#[test]
fn all_value_types_and_getters() {
    let mut r = Raw::header(3, 0, 14);
    r.str(b"u8").u32(0).u8(200);
    r.str(b"i8").u32(1).u8(0xff);
    r.str(b"u16").u32(2).bytes(&60000u16.to_le_bytes());
    r.str(b"i16").u32(3).bytes(&(-300i16).to_le_bytes());
    r.str(b"u32").u32(4).u32(4_000_000_000);
    r.str(b"i32").u32(5).bytes(&(-5i32).to_le_bytes());
    r.str(b"f32").u32(6).bytes(&1.5f32.to_le_bytes());
    r.str(b"bool").u32(7).u8(1);
    r.str(b"string").u32(8).str("héllo".as_bytes());
    r.str(b"u64").u32(10).u64(u64::MAX);
    r.str(b"i64").u32(11).bytes(&i64::MIN.to_le_bytes());
    r.str(b"f64").u32(12).bytes(&2.25f64.to_le_bytes());
    r.str(b"strs")
        .u32(9)
        .u32(8)
        .u64(3)
        .str(b"a")
        .str(b"")
        .str(b"ccc");
    r.str(b"f32s")
        .u32(9)
        .u32(6)
        .u64(2)
        .bytes(&1.0f32.to_le_bytes())
        .bytes(&(-2.0f32).to_le_bytes());
    let g = r.parse().unwrap();
    assert_eq!(g.metadata().len(), 14);
    assert_eq!(g.get_u8("u8").unwrap(), 200);
    assert_eq!(g.get_i8("i8").unwrap(), -1);
    assert_eq!(g.get_u16("u16").unwrap(), 60000);
    assert_eq!(g.get_i16("i16").unwrap(), -300);
    assert_eq!(g.get_u32("u32").unwrap(), 4_000_000_000);
    assert_eq!(g.get_i32("i32").unwrap(), -5);
    assert_eq!(g.get_f32("f32").unwrap(), 1.5);
    assert!(g.get_bool("bool").unwrap());
    assert_eq!(g.get_str("string").unwrap(), "héllo");
    assert_eq!(g.get_u64("u64").unwrap(), u64::MAX);
    assert_eq!(g.get_i64("i64").unwrap(), i64::MIN);
    assert_eq!(g.get_f64("f64").unwrap(), 2.25);
    let a = g.get_array("strs").unwrap();
    assert_eq!(a.elem_type(), ValueType::String);
    let it = a.iter_str();
    assert_eq!(it.len(), 3);
    assert_eq!(it.collect::<Vec<_>>(), ["a", "", "ccc"]);
    assert_eq!(
        g.get_array("f32s").unwrap().to_f32_vec().unwrap(),
        [1.0, -2.0]
    );
    // Lenient integer access.
    assert_eq!(g.get_uint("u32").unwrap(), 4_000_000_000);
    assert!(matches!(
        g.get_uint("i32"),
        Err(GgufError::TypeMismatch { .. })
    ));
    // Keys keep file order.
    assert_eq!(g.metadata()[8].key, "string");
}

#[test]
fn arrays_of_every_type() {
    // One array per element type (nested arrays: an array of two u8 arrays).
    let mut r = Raw::header(3, 0, 13);
    for t in 0u32..13 {
        r.str(format!("a{t}").as_bytes()).u32(9).u32(t).u64(2);
        match t {
            0 | 1 | 7 => {
                r.u8(1).u8(0);
            }
            2 | 3 => {
                r.bytes(&[1, 0, 2, 0]);
            }
            4..=6 => {
                r.zeros(8);
            }
            8 => {
                r.str(b"x").str(b"y");
            }
            9 => {
                r.u32(0).u64(1).u8(7).u32(0).u64(0);
            }
            _ => {
                r.zeros(16);
            }
        }
    }
    let g = r.parse().unwrap();
    for t in 0u32..13 {
        let a = g.get_array(&format!("a{t}")).unwrap();
        assert_eq!(a.elem_type().id(), t);
        assert_eq!(a.len(), 2);
        assert_eq!(a.values().len(), 2);
        assert_eq!(a.values().count(), 2);
    }
    assert_eq!(g.get_array("a0").unwrap().to_vec::<u8>().unwrap(), [1, 0]);
    assert_eq!(
        g.get_array("a7").unwrap().to_vec::<bool>().unwrap(),
        [true, false]
    );
    assert_eq!(g.get_array("a2").unwrap().to_vec::<u16>().unwrap(), [1, 2]);
    let nested: Vec<_> = g.get_array("a9").unwrap().iter_arrays().unwrap().collect();
    assert_eq!(nested.len(), 2);
    assert_eq!(nested[0].to_vec::<u8>().unwrap(), [7]);
    assert!(nested[1].is_empty());
    // Type errors from array accessors name the key and both types.
    let e = g.get_array("a4").unwrap().to_f32_vec().unwrap_err();
    match e {
        GgufError::TypeMismatch {
            key,
            expected,
            actual,
        } => {
            assert_eq!(
                (key.as_str(), expected.as_str(), actual.as_str()),
                ("a4", "array[f32]", "array[u32]")
            );
        }
        e => panic!("{e}"),
    }
    assert!(matches!(
        g.get_array("a4").unwrap().try_iter_str(),
        Err(GgufError::TypeMismatch { .. })
    ));
    assert_eq!(g.get_array("a4").unwrap().iter_str().len(), 0);
}

#[test]
fn getter_errors_name_key_and_types() {
    let mut r = Raw::header(3, 0, 1);
    r.kv_u32("llama.block_count", 30);
    let g = r.parse().unwrap();
    let e = g.get_str("llama.block_count").unwrap_err();
    assert!(
        matches!(&e, GgufError::TypeMismatch { key, expected, actual }
            if key == "llama.block_count" && expected == "string" && actual == "u32"),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("llama.block_count") && msg.contains("string") && msg.contains("u32"),
        "{msg}"
    );
    assert!(matches!(
        g.get_f32("llama.block_count"),
        Err(GgufError::TypeMismatch { .. })
    ));
    assert!(matches!(
        g.get_array("llama.block_count"),
        Err(GgufError::TypeMismatch { .. })
    ));
    assert!(matches!(g.get_u32("nope"), Err(GgufError::MissingKey { key }) if key == "nope"));
}

#[test]
fn every_ggml_type_id_parses_by_name() {
    for t in GgmlType::ALL {
        let row = t.block_size() as u64;
        let r = one_tensor(&[row], t.id(), t.type_size());
        let g = r.parse().unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(g.tensors()[0].dtype, t);
        assert_eq!(g.tensor("t").unwrap().data().len(), t.type_size());
    }
    // IQ2_XXS specifically (id 16): known by name although kiln cannot compute with it.
    let g = one_tensor(&[256], 16, 66);
    assert_eq!(g.parse().unwrap().tensors()[0].dtype, GgmlType::IQ2_XXS);
}

#[test]
fn custom_alignment_is_used() {
    let mut r = Raw::header(3, 2, 1);
    r.kv_u32("general.alignment", 64);
    r.info("a", &[4], 0, 0)
        .info("b", &[4], 0, 64)
        .pad(64)
        .zeros(128);
    let g = r.parse().unwrap();
    assert_eq!(g.alignment(), 64);
    assert_eq!(g.data_offset() % 64, 0);
    assert_eq!(g.tensor_range(1).unwrap().start, g.data_offset() + 64);
}

#[test]
fn nesting_up_to_the_limit_parses() {
    // MAX_ARRAY_DEPTH levels: array(array(...(array(u8))))
    let mut r = Raw::header(3, 0, 1);
    r.str(b"deep").u32(9);
    for _ in 1..MAX_ARRAY_DEPTH {
        r.u32(9).u64(1);
    }
    r.u32(0).u64(1).u8(5);
    let g = r.parse().unwrap();
    let mut a = *g.get_array("deep").unwrap();
    for _ in 1..MAX_ARRAY_DEPTH {
        a = a.iter_arrays().unwrap().next().unwrap();
    }
    assert_eq!(a.to_vec::<u8>().unwrap(), [5]);
}

// ---------------------------------------------------------------- header

#[test]
fn bad_magic() {
    let mut r = Raw(b"GGML".to_vec());
    r.u32(3).u64(0).u64(0);
    assert!(matches!(err(&r), GgufError::BadMagic { found } if &found == b"GGML"));
}

#[test]
fn unsupported_versions() {
    for v in [0u32, 1, 4, 0xdead_beef] {
        let r = Raw::header(v, 0, 0);
        assert!(
            matches!(err(&r), GgufError::UnsupportedVersion { version } if version == v),
            "{v}"
        );
    }
}

#[test]
fn big_endian_file_is_recognised() {
    // gguf-py's big-endian files keep the magic as "GGUF" and byte-swap everything else.
    let mut r = Raw(b"GGUF".to_vec());
    r.bytes(&3u32.to_be_bytes())
        .bytes(&0u64.to_be_bytes())
        .bytes(&0u64.to_be_bytes());
    assert!(matches!(err(&r), GgufError::BigEndian { version: 3 }));
    // A writer that swapped the magic too.
    let mut r = Raw(b"FUGG".to_vec());
    r.bytes(&2u32.to_be_bytes());
    assert!(matches!(err(&r), GgufError::BigEndian { version: 2 }));
}

// ---------------------------------------------------------------- truncation

fn truncated_in(e: &GgufError) -> &Section {
    match e {
        GgufError::Truncated { section, .. } => section,
        e => panic!("expected Truncated, got {e:?}"),
    }
}

/// A valid file: kv "k" = string "value", kv "arr" = [u32; 4], one F32 tensor "w" [8] whose
/// 32 bytes end the file.
fn sample() -> Raw {
    let mut r = Raw::header(3, 1, 2);
    r.str(b"k").u32(8).str(b"value");
    r.str(b"arr").u32(9).u32(4).u64(4).zeros(16);
    r.info("w", &[8], 0, 0).pad(32).zeros(32);
    assert!(r.parse().is_ok());
    r
}

fn cut(r: &Raw, len: usize) -> Raw {
    Raw(r.0[..len].to_vec())
}

#[test]
fn truncated_header() {
    let r = sample();
    for len in [0, 3, 4, 7, 8, 15, 23] {
        assert_eq!(
            truncated_in(&err(&cut(&r, len))),
            &Section::Header,
            "len {len}"
        );
    }
}

#[test]
fn truncated_key() {
    // The key claims 20 bytes, 10 are left (enough for the key-count check, which needs 14).
    let mut r = Raw::header(3, 0, 1);
    r.u64(20).bytes(b"0123456789");
    let e = err(&r);
    assert_eq!(truncated_in(&e), &Section::Key);
    assert!(matches!(
        e,
        GgufError::Truncated {
            offset: 32,
            needed: 20,
            available: 10,
            ..
        }
    ));
}

#[test]
fn truncated_value() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"key_name").u32(4).bytes(&[1, 2]); // u32 value cut short
    let e = err(&r);
    assert_eq!(
        truncated_in(&e),
        &Section::Value {
            key: "key_name".into()
        }
    );
    assert!(matches!(
        e,
        GgufError::Truncated {
            needed: 4,
            available: 2,
            ..
        }
    ));
}

#[test]
fn truncated_array() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"toks")
        .u32(9)
        .u32(8)
        .u64(2)
        .str(b"ok")
        .u64(10)
        .bytes(b"short");
    assert_eq!(
        truncated_in(&err(&r)),
        &Section::Array { key: "toks".into() }
    );
    let mut r = Raw::header(3, 0, 1);
    r.str(b"toks").u32(9).bytes(&[8, 0]);
    assert_eq!(
        truncated_in(&err(&r)),
        &Section::Array { key: "toks".into() }
    );
}

#[test]
fn truncated_tensor_info() {
    let mut r = Raw::header(3, 1, 0);
    r.info("a_long_tensor_name", &[8, 8], 0, 0);
    let e = err(&cut(&r, r.len() - 6));
    assert_eq!(truncated_in(&e), &Section::TensorInfo { index: 0 });
}

#[test]
fn truncated_tensor_data() {
    let r = sample();
    let e = err(&cut(&r, r.len() - 1));
    assert_eq!(truncated_in(&e), &Section::TensorData { name: "w".into() });
    assert!(matches!(
        e,
        GgufError::Truncated {
            needed: 32,
            available: 31,
            ..
        }
    ));
}

#[test]
fn truncation_anywhere_is_an_error_never_a_panic() {
    let r = sample();
    for len in 0..r.len() {
        assert!(
            cut(&r, len).parse().is_err(),
            "prefix of {len} bytes parsed"
        );
    }
}

// ---------------------------------------------------------------- strings

#[test]
fn string_longer_than_the_file() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(8).u64(1000).bytes(b"abc");
    let e = err(&r);
    assert!(
        matches!(
            e,
            GgufError::Truncated {
                needed: 1000,
                available: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(truncated_in(&e), &Section::Value { key: "k".into() });
}

#[test]
fn string_above_the_cap() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(8).u64(MAX_STRING_LEN + 1).bytes(b"abc");
    assert!(
        matches!(err(&r), GgufError::StringTooLong { len, max: MAX_STRING_LEN, .. } if len == MAX_STRING_LEN + 1)
    );
    let mut r = Raw::header(3, 0, 1);
    r.u64(MAX_NAME_LEN + 1).zeros(16);
    assert!(matches!(
        err(&r),
        GgufError::StringTooLong {
            offset: 24,
            max: MAX_NAME_LEN,
            ..
        }
    ));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(8).u64(u64::MAX).zeros(4);
    assert!(matches!(
        err(&r),
        GgufError::StringTooLong { len: u64::MAX, .. }
    ));
}

#[test]
fn key_not_utf8() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"bad\xff").u32(4).u32(1);
    assert!(matches!(err(&r), GgufError::InvalidUtf8 { offset: 32, .. }));
}

#[test]
fn strings_not_utf8() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(8).str(b"\xc3\x28");
    assert!(matches!(err(&r), GgufError::InvalidUtf8 { .. }));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k")
        .u32(9)
        .u32(8)
        .u64(2)
        .str(b"fine")
        .str(b"\xed\xa0\x80"); // a surrogate
    assert!(matches!(err(&r), GgufError::InvalidUtf8 { .. }));
    let mut r = Raw::header(3, 1, 0);
    r.str(b"t\xff")
        .u32(1)
        .u64(4)
        .u32(0)
        .u64(0)
        .pad(32)
        .zeros(16);
    assert!(matches!(err(&r), GgufError::InvalidUtf8 { what, .. } if what.contains("tensor")));
}

// ---------------------------------------------------------------- arrays and values

#[test]
fn array_larger_than_the_file() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"scores").u32(9).u32(6).u64(100).zeros(40);
    let e = err(&r);
    assert!(
        matches!(&e, GgufError::ArrayTooLarge { key, count: 100, min_bytes: 400, available: 40, .. } if key == "scores"),
        "{e:?}"
    );
    // count * size overflows u64: still ArrayTooLarge, and nothing is allocated.
    let mut r = Raw::header(3, 0, 1);
    r.str(b"scores").u32(9).u32(12).u64(u64::MAX / 4).zeros(40);
    assert!(matches!(
        err(&r),
        GgufError::ArrayTooLarge {
            min_bytes: u64::MAX,
            ..
        }
    ));
    // Strings take at least 8 bytes each.
    let mut r = Raw::header(3, 0, 1);
    r.str(b"toks").u32(9).u32(8).u64(6).zeros(40);
    assert!(matches!(
        err(&r),
        GgufError::ArrayTooLarge { min_bytes: 48, .. }
    ));
}

#[test]
fn unknown_value_types() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(13).u32(0);
    assert!(matches!(
        err(&r),
        GgufError::UnknownValueType {
            type_id: 13,
            offset: 33,
            ..
        }
    ));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"k").u32(9).u32(u32::MAX).u64(0);
    assert!(matches!(
        err(&r),
        GgufError::UnknownValueType {
            type_id: u32::MAX,
            ..
        }
    ));
}

#[test]
fn invalid_bool() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"flag").u32(7).u8(2);
    assert!(matches!(err(&r), GgufError::InvalidBool { value: 2, .. }));
    let mut r = Raw::header(3, 0, 1);
    r.str(b"flags").u32(9).u32(7).u64(3).bytes(&[0, 1, 9]);
    assert!(matches!(err(&r), GgufError::InvalidBool { value: 9, .. }));
}

#[test]
fn nesting_deeper_than_the_limit() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"deep").u32(9);
    for _ in 0..MAX_ARRAY_DEPTH {
        r.u32(9).u64(1);
    }
    r.u32(0).u64(1).u8(5).zeros(16);
    assert!(matches!(
        err(&r),
        GgufError::NestingTooDeep {
            max: MAX_ARRAY_DEPTH,
            ..
        }
    ));
}

#[test]
fn empty_and_duplicate_keys() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"").u32(4).u32(1);
    assert!(matches!(err(&r), GgufError::EmptyKey { offset: 24 }));
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("a.b", 1).kv_u32("a.b", 2);
    assert!(matches!(err(&r), GgufError::DuplicateKey { key, offset: 43 } if key == "a.b"));
}

#[test]
fn key_and_tensor_counts_that_cannot_fit() {
    let r = Raw::header(3, u64::MAX, 0);
    assert!(matches!(
        err(&r),
        GgufError::TooManyTensors {
            count: u64::MAX,
            max: 0
        }
    ));
    let mut r = Raw::header(3, 2, 0);
    r.info("a", &[1], 0, 0); // room for one info only
    assert!(matches!(
        err(&r),
        GgufError::TooManyTensors { count: 2, max: 1 }
    ));
    let mut r = Raw::header(3, 0, 1 << 40);
    r.kv_u32("a", 1);
    assert!(matches!(err(&r), GgufError::TooManyKeys { count, max: 1 } if count == 1 << 40));
}

// ---------------------------------------------------------------- alignment

#[test]
fn alignment_must_be_a_u32_power_of_two() {
    for bad in [0u32, 48, 3] {
        let mut r = Raw::header(3, 0, 1);
        r.kv_u32("general.alignment", bad);
        assert!(
            matches!(err(&r), GgufError::InvalidAlignment { value } if value == u64::from(bad))
        );
    }
    let mut r = Raw::header(3, 0, 1);
    r.str(b"general.alignment").u32(10).u64(32);
    assert!(matches!(
        err(&r),
        GgufError::TypeMismatch { key, expected, actual } if key == "general.alignment" && expected == "u32" && actual == "u64"
    ));
}

/// Fuzz regression (gguf_parse OOM in the rewrite check): a 65-byte file with
/// `general.alignment = 2^30` and no tensors is legal. Parsing it allocates nothing for the
/// data section (which starts past the end of the file); only a rewrite would pad to 1 GiB,
/// and the writer computes that length without allocating.
#[test]
fn huge_alignment_without_tensors() {
    let mut r = Raw::header(3, 0, 1);
    r.kv_u32("general.alignment", 1 << 30).zeros(8);
    assert_eq!(r.len(), 65);
    let g = r.parse().unwrap();
    assert_eq!(g.alignment(), 1 << 30);
    assert_eq!(g.data_offset(), 1 << 30);
    assert_eq!(g.data_section_len(), 0);
    assert!(g.tensors().is_empty());
    let mut w = GgufWriter::new();
    for kv in g.metadata() {
        w.add_kv(kv.key, &kv.value).unwrap();
    }
    assert_eq!(w.file_len().unwrap(), 1 << 30);
    // With a tensor, the same alignment puts the data outside the file.
    let mut r = Raw::header(3, 1, 1);
    r.kv_u32("general.alignment", 1 << 30)
        .info("t", &[8], 0, 0)
        .zeros(32);
    assert!(matches!(err(&r), GgufError::TensorOutOfBounds { .. }));
}

// ---------------------------------------------------------------- tensor infos

#[test]
fn unknown_and_removed_tensor_types() {
    let e = err(&one_tensor(&[32], 40, 64));
    assert!(matches!(e, GgufError::UnknownTensorType { type_id: 40, ref name } if name == "t"));
    for removed in [4, 5, 31, 36] {
        let e = err(&one_tensor(&[32], removed, 64));
        assert!(matches!(e, GgufError::RemovedTensorType { type_id, .. } if type_id == removed));
    }
}

#[test]
fn dimension_counts() {
    let e = err(&one_tensor(&[], 0, 64));
    assert!(matches!(e, GgufError::BadDimCount { n_dims: 0, .. }));
    let e = err(&one_tensor(&[1, 1, 1, 1, 1], 0, 64));
    assert!(matches!(e, GgufError::BadDimCount { n_dims: 5, .. }));
    assert!(one_tensor(&[1, 1, 1, 4], 0, 16).parse().is_ok());
}

#[test]
fn zero_dimension() {
    let e = err(&one_tensor(&[4, 0], 0, 64));
    assert!(matches!(e, GgufError::ZeroDim { dim: 1, ref name } if name == "t"));
}

#[test]
fn size_overflows() {
    // Element count overflows u64.
    let e = err(&one_tensor(&[1 << 32, 1 << 32, 2], 0, 64));
    assert!(
        matches!(e, GgufError::SizeOverflow { ref what } if what.contains("'t'")),
        "{e:?}"
    );
    // Element count fits but the byte size does not (2^62 f32 = 2^64 bytes).
    let e = err(&one_tensor(&[1 << 31, 1 << 31], 0, 64));
    assert!(matches!(e, GgufError::SizeOverflow { .. }), "{e:?}");
    // Element count above i64::MAX (ggml's limit).
    let e = err(&one_tensor(&[1 << 32, 1 << 32], 24, 64));
    assert!(matches!(e, GgufError::SizeOverflow { .. }), "{e:?}");
    // Offset + data section start overflows.
    let mut r = Raw::header(3, 1, 0);
    r.info("t", &[8], 0, u64::MAX - 31).pad(32).zeros(32);
    assert!(matches!(err(&r), GgufError::SizeOverflow { .. }));
}

#[test]
fn row_not_a_whole_number_of_blocks() {
    let e = err(&one_tensor(&[33, 2], GgmlType::Q4_0.id(), 64));
    assert!(matches!(
        e,
        GgufError::RowNotBlockMultiple {
            row_len: 33,
            block_size: 32,
            dtype: GgmlType::Q4_0,
            ..
        }
    ));
    let e = err(&one_tensor(&[128], GgmlType::Q4_K.id(), 144));
    assert!(matches!(
        e,
        GgufError::RowNotBlockMultiple {
            block_size: 256,
            ..
        }
    ));
}

#[test]
fn tensor_data_outside_the_file() {
    let mut r = Raw::header(3, 1, 0);
    r.info("far", &[8], 0, 1 << 20).pad(32).zeros(32);
    let e = err(&r);
    assert!(
        matches!(e, GgufError::TensorOutOfBounds { ref name, .. } if name == "far"),
        "{e:?}"
    );
}

#[test]
fn misaligned_tensor_offset() {
    let mut r = Raw::header(3, 1, 0);
    r.info("t", &[4], 0, 4).pad(32).zeros(64);
    assert!(matches!(
        err(&r),
        GgufError::MisalignedTensor {
            offset: 4,
            alignment: 32,
            ..
        }
    ));
}

#[test]
fn overlapping_tensors() {
    let mut r = Raw::header(3, 2, 0);
    r.info("a", &[16], 0, 0)
        .info("b", &[8], 0, 32)
        .pad(32)
        .zeros(64);
    let e = err(&r);
    assert!(
        matches!(e, GgufError::OverlappingTensors { ref first, ref second, .. } if first == "a" && second == "b"),
        "{e:?}"
    );
    // Same offset, in either order.
    let mut r = Raw::header(3, 2, 0);
    r.info("a", &[8], 0, 0)
        .info("b", &[8], 0, 0)
        .pad(32)
        .zeros(64);
    assert!(matches!(err(&r), GgufError::OverlappingTensors { .. }));
    // Adjacent is fine.
    let mut r = Raw::header(3, 2, 0);
    r.info("a", &[8], 0, 32)
        .info("b", &[8], 0, 0)
        .pad(32)
        .zeros(64);
    assert!(r.parse().is_ok());
}

#[test]
fn duplicate_tensor_names() {
    let mut r = Raw::header(3, 2, 0);
    r.info("w", &[8], 0, 0)
        .info("w", &[8], 0, 32)
        .pad(32)
        .zeros(64);
    assert!(
        matches!(err(&r), GgufError::DuplicateTensor { ref name, first: 0, second: 1 } if name == "w")
    );
}

#[test]
fn empty_tensor_name() {
    let mut r = Raw::header(3, 1, 0);
    r.info("", &[8], 0, 0).pad(32).zeros(32);
    assert!(matches!(err(&r), GgufError::EmptyTensorName { index: 0 }));
}

// ---------------------------------------------------------------- robustness

/// Flip bytes of a valid file deterministically: every result is Ok or a typed error.
#[test]
fn mutated_files_never_panic() {
    let mut w = GgufWriter::new();
    w.add_str("general.architecture", "llama").unwrap();
    w.add_str_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"])
        .unwrap();
    w.add_array("tokenizer.ggml.scores", &[0.5f32, 1.5, 2.5])
        .unwrap();
    w.add_kv("nested", &Value::Bool(true)).unwrap();
    let q = vec![0u8; 34 * 2];
    w.add_tensor("blk.0.w", GgmlType::Q8_0, &[32, 2], &q)
        .unwrap();
    let f = vec![0u8; 16];
    w.add_tensor("norm", GgmlType::F32, &[4], &f).unwrap();
    let base = w.to_vec().unwrap();
    assert!(Gguf::parse(&base).is_ok());
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut b = base.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % b.len() as u64) as usize;
            b[i] = match next() % 4 {
                0 => 0xff,
                1 => 0,
                2 => b[i] ^ (1 << (next() % 8)),
                _ => next() as u8,
            };
        }
        if let Ok(g) = Gguf::parse(&b) {
            for kv in g.metadata() {
                if let Some(a) = kv.value.as_array() {
                    let _ = a.iter_str().count();
                    let _ = a.values().count();
                }
            }
            for t in g.tensor_views() {
                for r in 0..t.n_rows() {
                    assert_eq!(t.row(r).len(), t.row_bytes());
                }
            }
        }
    }
}
