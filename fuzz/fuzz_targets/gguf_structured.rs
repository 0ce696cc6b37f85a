//! Structured GGUF fuzzing: files with valid framing (header, key-value pairs, tensor infos,
//! padding, data) built from an `arbitrary` description whose values are hostile (lengths,
//! counts, type tags, dims, offsets, alignment, UTF-8, nesting). Each file must parse or fail
//! with a typed error, never panic; files that parse are touched and rewritten. The same
//! description is also fed to `GgufWriter`, whose output must always parse.
#![no_main]

use arbitrary::Arbitrary;
use kiln::GgmlType;
use kiln::gguf::{Gguf, GgufWriter, Value};
use libfuzzer_sys::fuzz_target;

/// A length or count: usually the true one, sometimes hostile.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Len {
    True,
    Plus(u8),
    Minus(u8),
    Huge(u64),
}

impl Len {
    fn apply(self, n: usize) -> u64 {
        match self {
            Len::True => n as u64,
            Len::Plus(d) => n as u64 + u64::from(d),
            Len::Minus(d) => (n as u64).saturating_sub(u64::from(d)),
            Len::Huge(v) => v,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
struct Str {
    bytes: Vec<u8>,
    /// Force valid UTF-8 (lossy conversion) most of the time.
    utf8: bool,
    len: Len,
}

impl Str {
    fn bytes(&self) -> Vec<u8> {
        if self.utf8 {
            String::from_utf8_lossy(&self.bytes)
                .into_owned()
                .into_bytes()
        } else {
            self.bytes.clone()
        }
    }
    fn put(&self, out: &mut Vec<u8>) {
        let b = self.bytes();
        out.extend_from_slice(&self.len.apply(b.len()).to_le_bytes());
        out.extend_from_slice(&b);
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Val {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(u8),
    Str(Str),
    Array {
        elem: u8,
        count: Len,
        items: Vec<Val>,
    },
    U64(u64),
    I64(i64),
    F64(f64),
    /// An arbitrary type tag followed by arbitrary bytes.
    Raw {
        tag: u32,
        bytes: Vec<u8>,
    },
}

impl Val {
    fn tag(&self) -> u32 {
        match self {
            Val::U8(_) => 0,
            Val::I8(_) => 1,
            Val::U16(_) => 2,
            Val::I16(_) => 3,
            Val::U32(_) => 4,
            Val::I32(_) => 5,
            Val::F32(_) => 6,
            Val::Bool(_) => 7,
            Val::Str(_) => 8,
            Val::Array { .. } => 9,
            Val::U64(_) => 10,
            Val::I64(_) => 11,
            Val::F64(_) => 12,
            Val::Raw { tag, .. } => *tag,
        }
    }

    /// The payload (without the tag).
    fn put_payload(&self, out: &mut Vec<u8>, depth: usize) {
        match self {
            Val::U8(v) => out.push(*v),
            Val::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
            Val::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Val::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Val::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Val::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Val::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Val::Bool(v) => out.push(*v % 3), // mostly 0/1, sometimes 2
            Val::Str(s) => s.put(out),
            Val::Array { elem, count, items } => {
                // Element tag: the 13 types, mostly; the items are encoded as that type where
                // they match it and raw otherwise (so the payloads are hostile too).
                let elem = u32::from(*elem % 15);
                out.extend_from_slice(&elem.to_le_bytes());
                out.extend_from_slice(&count.apply(items.len()).to_le_bytes());
                if depth > 8 {
                    return;
                }
                for it in items {
                    if elem == 9 {
                        if let Val::Array { .. } = it {
                            it.put_payload(out, depth + 1);
                        } else {
                            // Not an array: an empty array of u8 keeps the framing valid.
                            out.extend_from_slice(&0u32.to_le_bytes());
                            out.extend_from_slice(&0u64.to_le_bytes());
                        }
                    } else {
                        it.put_payload(out, depth + 1);
                    }
                }
            }
            Val::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Val::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Val::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Val::Raw { bytes, .. } => out.extend_from_slice(bytes),
        }
    }

    /// The value for the writer, if it is one the writer can take.
    fn for_writer(&self) -> Option<Value<'_>> {
        Some(match self {
            Val::U8(v) => Value::U8(*v),
            Val::I8(v) => Value::I8(*v),
            Val::U16(v) => Value::U16(*v),
            Val::I16(v) => Value::I16(*v),
            Val::U32(v) => Value::U32(*v),
            Val::I32(v) => Value::I32(*v),
            Val::F32(v) => Value::F32(*v),
            Val::Bool(v) => Value::Bool(*v % 2 == 1),
            Val::U64(v) => Value::U64(*v),
            Val::I64(v) => Value::I64(*v),
            Val::F64(v) => Value::F64(*v),
            _ => return None,
        })
    }
}

#[derive(Arbitrary, Debug, Clone)]
struct Kv {
    key: Str,
    val: Val,
}

#[derive(Arbitrary, Debug, Clone)]
enum Offset {
    /// Next free aligned offset.
    Auto,
    /// Previous tensor's offset plus a small delta (overlaps, misalignment).
    Delta(i16),
    Raw(u64),
}

#[derive(Arbitrary, Debug, Clone)]
struct Tensor {
    name: Str,
    /// 1..=4 dims mostly; up to 6 to test the limit.
    dims: Vec<u16>,
    huge_dim: Option<(u8, u64)>,
    n_dims: Len,
    /// Index into the known types, or a raw id.
    dtype: u8,
    raw_type: Option<u32>,
    offset: Offset,
}

#[derive(Arbitrary, Debug)]
struct Spec {
    version: u8,
    n_kv: Len,
    n_tensors: Len,
    alignment: Option<Val>,
    kvs: Vec<Kv>,
    tensors: Vec<Tensor>,
    /// Data bytes after the padding: None = exactly what the tensors need.
    data_len: Option<u16>,
    fill: u8,
    truncate: Option<u16>,
}

fn dtype_of(i: u8) -> GgmlType {
    GgmlType::ALL[usize::from(i) % GgmlType::ALL.len()]
}

fn tensor_dims(t: &Tensor) -> Vec<u64> {
    let mut dims: Vec<u64> = t.dims.iter().take(6).map(|&d| u64::from(d % 600)).collect();
    if let Some((i, v)) = t.huge_dim
        && !dims.is_empty()
    {
        let n = dims.len();
        dims[usize::from(i) % n] = v;
    }
    dims
}

/// Build the hostile file.
fn build(spec: &Spec) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    let version = match spec.version % 8 {
        0..=4 => 3,
        5 => 2,
        6 => 1,
        _ => u32::from(spec.version) << 24, // byte-swapped or unknown
    };
    out.extend_from_slice(&version.to_le_bytes());
    let n_kv = spec.kvs.len() + usize::from(spec.alignment.is_some());
    out.extend_from_slice(&spec.n_tensors.apply(spec.tensors.len()).to_le_bytes());
    out.extend_from_slice(&spec.n_kv.apply(n_kv).to_le_bytes());

    let mut alignment = 32u64;
    if let Some(a) = &spec.alignment {
        let key = b"general.alignment";
        out.extend_from_slice(&(key.len() as u64).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&a.tag().to_le_bytes());
        a.put_payload(&mut out, 1);
        if let Val::U32(v) = a
            && *v != 0
            && v.is_power_of_two()
        {
            alignment = u64::from(*v);
        }
    }
    for kv in &spec.kvs {
        kv.key.put(&mut out);
        out.extend_from_slice(&kv.val.tag().to_le_bytes());
        kv.val.put_payload(&mut out, 1);
    }

    let mut next = 0u64;
    let mut prev = 0u64;
    let mut need = 0u64;
    for t in &spec.tensors {
        t.name.put(&mut out);
        let dims = tensor_dims(t);
        out.extend_from_slice(&(t.n_dims.apply(dims.len()) as u32).to_le_bytes());
        for d in &dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        let dtype = dtype_of(t.dtype);
        let id = t.raw_type.unwrap_or(dtype.id());
        out.extend_from_slice(&id.to_le_bytes());
        let n: u64 = dims.iter().fold(1u64, |a, &d| a.saturating_mul(d));
        let bytes = dtype
            .bytes_for(n - n % dtype.block_size() as u64)
            .unwrap_or(0)
            .min(1 << 20);
        let offset = match t.offset {
            Offset::Auto => next,
            Offset::Delta(d) => prev.saturating_add_signed(i64::from(d)),
            Offset::Raw(v) => v,
        };
        out.extend_from_slice(&offset.to_le_bytes());
        prev = offset;
        let end = offset.saturating_add(bytes);
        next = end.div_ceil(alignment).saturating_mul(alignment);
        need = need.max(end.min(1 << 20));
    }
    while !(out.len() as u64).is_multiple_of(alignment.min(4096)) {
        out.push(0);
    }
    let data = spec.data_len.map_or(need, u64::from).min(1 << 20);
    out.resize(out.len() + data as usize, spec.fill);
    if let Some(t) = spec.truncate {
        out.truncate(usize::from(t).min(out.len()));
    }
    out
}

/// Feed the same description to the writer: whatever it accepts must parse.
fn write(spec: &Spec) {
    let mut w = GgufWriter::new();
    if let Some(Val::U32(a)) = &spec.alignment {
        let _ = w.add_kv("general.alignment", &Value::U32(*a % 512));
    }
    for kv in &spec.kvs {
        let key = String::from_utf8_lossy(&kv.key.bytes).into_owned();
        match &kv.val {
            Val::Str(s) => {
                let _ = w.add_str(&key, &String::from_utf8_lossy(&s.bytes));
            }
            Val::Array { items, .. } => {
                let strs: Vec<String> = items
                    .iter()
                    .filter_map(|v| match v {
                        Val::Str(s) => Some(String::from_utf8_lossy(&s.bytes).into_owned()),
                        _ => None,
                    })
                    .collect();
                if strs.is_empty() {
                    let nums: Vec<f32> = items
                        .iter()
                        .filter_map(|v| if let Val::F32(x) = v { Some(*x) } else { None })
                        .collect();
                    let _ = w.add_array(&key, &nums);
                } else {
                    let _ = w.add_str_array(&key, strs.iter().map(String::as_str));
                }
            }
            v => {
                if let Some(v) = v.for_writer() {
                    let _ = w.add_kv(&key, &v);
                }
            }
        }
    }
    let mut bufs = Vec::new();
    for t in &spec.tensors {
        let dims: Vec<u64> = tensor_dims(t).into_iter().map(|d| d.min(4096)).collect();
        let dtype = dtype_of(t.dtype);
        let n: u64 = dims.iter().fold(1u64, |a, &d| a.saturating_mul(d));
        let len = dtype.bytes_for(n).unwrap_or(0).min(1 << 16) as usize;
        bufs.push((t, dims, dtype, vec![spec.fill; len]));
    }
    for (t, dims, dtype, buf) in &bufs {
        let name = String::from_utf8_lossy(&t.name.bytes).into_owned();
        let _ = w.add_tensor(&name, *dtype, dims, buf);
    }
    let bytes = w.to_vec().expect("writer output");
    let g = Gguf::parse(&bytes).unwrap_or_else(|e| panic!("writer output does not parse: {e}"));
    kiln_fuzz::touch(&g);
    kiln_fuzz::check_rewrite(&g);
}

fuzz_target!(|spec: Spec| {
    let bytes = build(&spec);
    kiln_fuzz::check_bytes(&bytes);
    write(&spec);
});
