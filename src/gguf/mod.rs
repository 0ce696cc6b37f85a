//! GGUF: a hardened, zero-copy reader (from `&[u8]`) and a writer.
//!
//! [`Gguf::parse`] reads the header, every metadata key-value pair and every tensor info,
//! and validates all of it before returning: lengths against the bytes left, counts against
//! what the file can hold, tensor shapes against their types, tensor ranges against the file
//! and each other. Nothing is copied that the file could make large: strings and arrays are
//! borrowed (arrays are validated once, then decoded lazily), and tensor data is never
//! touched while parsing. Every defect is its own [`GgufError`] variant, with the offset, key
//! or tensor name that caused it.
//!
//! Layout (little-endian; versions 2 and 3):
//!
//! ```text
//! "GGUF" | version u32 | n_tensors u64 | n_kv u64
//! n_kv      x (key: string, type: u32, value)
//! n_tensors x (name: string, n_dims: u32, dims: n_dims x u64, type: u32, offset: u64)
//! padding to general.alignment (default 32)
//! data section: each tensor at data_offset + offset
//! ```
//!
//! [`GgufFile`] owns the bytes (a memory map or an aligned heap buffer); [`GgufWriter`]
//! writes files.

mod cursor;
mod error;
mod file;
mod tensor_info;
mod value;
mod writer;

use std::collections::HashMap;

pub use error::{GgufError, Section};
pub use file::{GgufFile, OpenOptions};
pub use tensor_info::TensorInfo;
pub use value::{
    ArrayElem, ArrayIter, ArrayValue, MetadataKv, StrIter, Value, ValueIter, ValueType,
};
pub use writer::GgufWriter;

pub use crate::tensor::TensorView;

pub(crate) use tensor_info::tensor_size as tensor_size_checked;

use cursor::{Cursor, add, align_up, mul, u64_of};

/// The file magic.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key that sets the alignment (type u32).
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// Longest metadata key or tensor name, in bytes (the GGUF spec's limit for keys).
pub const MAX_NAME_LEN: u64 = 65_535;
/// Longest string value, in bytes (64 MiB; a whole `tokenizer.json` fits).
pub const MAX_STRING_LEN: u64 = 64 << 20;
/// Deepest nesting of arrays: an array value is level 1, an array of arrays reaches level 2.
pub const MAX_ARRAY_DEPTH: usize = 4;
/// Bytes of the fixed header.
pub const HEADER_LEN: u64 = 24;
/// The fewest bytes a tensor info takes (1-byte name, one dimension).
pub const MIN_TENSOR_INFO_LEN: u64 = 8 + 1 + 4 + 8 + 4 + 8;
/// The fewest bytes a metadata key-value pair takes (1-byte key, 1-byte value).
pub const MIN_KV_LEN: u64 = 8 + 1 + 4 + 1;

/// A parsed, validated GGUF file, borrowing the file's bytes.
///
/// Holds the metadata (file order, with an index by key) and the tensor infos (file order,
/// with an index by name). Tensor data is reached through [`Gguf::tensor`], which returns a
/// zero-copy [`TensorView`].
#[derive(Debug, Clone)]
pub struct Gguf<'a> {
    bytes: &'a [u8],
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<MetadataKv<'a>>,
    key_index: HashMap<&'a str, usize>,
    tensors: Vec<TensorInfo>,
    /// Per tensor: its name in the file bytes and its absolute byte range (validated).
    spans: Vec<(&'a str, usize, usize)>,
    tensor_index: HashMap<&'a str, usize>,
}

fn reserve<T>(v: &mut Vec<T>, n: u64, what: &'static str) -> Result<(), GgufError> {
    usize::try_from(n)
        .ok()
        .and_then(|n| v.try_reserve_exact(n).ok())
        .ok_or(GgufError::OutOfMemory { what, count: n })
}

fn reserve_map<K: std::hash::Hash + Eq, V>(
    m: &mut HashMap<K, V>,
    n: u64,
    what: &'static str,
) -> Result<(), GgufError> {
    usize::try_from(n)
        .ok()
        .and_then(|n| m.try_reserve(n).ok())
        .ok_or(GgufError::OutOfMemory { what, count: n })
}

/// Check the magic and version; return the version.
fn parse_header_start(cur: &mut Cursor<'_>) -> Result<u32, GgufError> {
    let magic = cur.array::<4>(|| Section::Header)?;
    let swapped_magic = [MAGIC[3], MAGIC[2], MAGIC[1], MAGIC[0]];
    if magic == swapped_magic {
        // A writer that byte-swapped the magic too: certainly big-endian.
        let version = cur
            .array::<4>(|| Section::Header)
            .map(u32::from_be_bytes)
            .unwrap_or(0);
        return Err(GgufError::BigEndian { version });
    }
    if magic != MAGIC {
        return Err(GgufError::BadMagic { found: magic });
    }
    let version = cur.u32(|| Section::Header)?;
    match version {
        2 | 3 => Ok(version),
        v if matches!(v.swap_bytes(), 1..=3) => Err(GgufError::BigEndian {
            version: v.swap_bytes(),
        }),
        v => Err(GgufError::UnsupportedVersion { version: v }),
    }
}

impl<'a> Gguf<'a> {
    /// Parse and validate a whole GGUF file held in `bytes`. Never panics; allocates only in
    /// proportion to what the file's length can hold; does not read tensor data.
    pub fn parse(bytes: &'a [u8]) -> Result<Gguf<'a>, GgufError> {
        let mut cur = Cursor::new(bytes);
        let version = parse_header_start(&mut cur)?;
        let n_tensors = cur.u64(|| Section::Header)?;
        let n_kv = cur.u64(|| Section::Header)?;

        // Bound both counts by the bytes left before allocating anything for them.
        let left = cur.remaining();
        let max_tensors = left / MIN_TENSOR_INFO_LEN;
        if n_tensors > max_tensors {
            return Err(GgufError::TooManyTensors {
                count: n_tensors,
                max: max_tensors,
            });
        }
        // n_tensors <= left / MIN_TENSOR_INFO_LEN, so neither step can fail.
        let min_infos = mul(n_tensors, MIN_TENSOR_INFO_LEN, || {
            "tensor info bytes".to_string()
        })?;
        let max_kv = left.saturating_sub(min_infos) / MIN_KV_LEN;
        if n_kv > max_kv {
            return Err(GgufError::TooManyKeys {
                count: n_kv,
                max: max_kv,
            });
        }

        let mut metadata = Vec::new();
        reserve(&mut metadata, n_kv, "metadata entries")?;
        let mut key_index = HashMap::new();
        reserve_map(&mut key_index, n_kv, "metadata index entries")?;
        for _ in 0..n_kv {
            let key_offset = cur.offset();
            let key = cur.string(MAX_NAME_LEN, || Section::Key, || "metadata key".to_string())?;
            if key.is_empty() {
                return Err(GgufError::EmptyKey { offset: key_offset });
            }
            if key_index.contains_key(key) {
                return Err(GgufError::DuplicateKey {
                    key: key.to_string(),
                    offset: key_offset,
                });
            }
            let t = value::parse_type(&mut cur, key, false)?;
            let value = value::parse_payload(&mut cur, t, key, 0)?;
            key_index.insert(key, metadata.len());
            metadata.push(MetadataKv { key, value });
        }

        let alignment = match key_index.get(ALIGNMENT_KEY).map(|&i| &metadata[i].value) {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) => {
                let a = u64::from(*a);
                if a == 0 || !a.is_power_of_two() {
                    return Err(GgufError::InvalidAlignment { value: a });
                }
                a
            }
            Some(v) => {
                return Err(GgufError::TypeMismatch {
                    key: ALIGNMENT_KEY.to_string(),
                    expected: ValueType::U32.name().to_string(),
                    actual: v.type_name(),
                });
            }
        };

        let mut tensors = Vec::new();
        reserve(&mut tensors, n_tensors, "tensor infos")?;
        let mut names: Vec<&'a str> = Vec::new();
        reserve(&mut names, n_tensors, "tensor names")?;
        let mut tensor_index = HashMap::new();
        reserve_map(&mut tensor_index, n_tensors, "tensor index entries")?;
        for index in 0..n_tensors {
            let (name, info) = tensor_info::parse_tensor_info(&mut cur, index, alignment)?;
            if let Some(&first) = tensor_index.get(name) {
                return Err(GgufError::DuplicateTensor {
                    name: name.to_string(),
                    first: u64_of(first),
                    second: index,
                });
            }
            tensor_index.insert(name, tensors.len());
            names.push(name);
            tensors.push(info);
        }

        let data_offset = align_up(cur.offset(), alignment, || {
            format!(
                "data section start: offset {} aligned to {alignment}",
                cur.offset()
            )
        })?;

        // Place every tensor inside the file.
        let file_len = u64_of(bytes.len());
        let mut spans = Vec::new();
        reserve(&mut spans, n_tensors, "tensor ranges")?;
        for (info, &name) in tensors.iter().zip(&names) {
            let start = add(data_offset, info.offset, || {
                format!(
                    "start of tensor '{name}': data section {data_offset} + offset {}",
                    info.offset
                )
            })?;
            let end = add(start, info.n_bytes(), || {
                format!(
                    "end of tensor '{name}': start {start} + {} bytes",
                    info.n_bytes()
                )
            })?;
            if start >= file_len {
                return Err(GgufError::TensorOutOfBounds {
                    name: name.to_string(),
                    start,
                    end,
                    file_len,
                });
            }
            if end > file_len {
                return Err(GgufError::Truncated {
                    section: Section::TensorData {
                        name: name.to_string(),
                    },
                    offset: start,
                    needed: info.n_bytes(),
                    available: file_len - start,
                });
            }
            // start < end <= file_len = bytes.len(): both fit in usize.
            spans.push((name, start as usize, end as usize));
        }

        // No two tensors may share a byte.
        let mut order: Vec<usize> = Vec::new();
        reserve(&mut order, n_tensors, "tensor order")?;
        order.extend(0..spans.len());
        order.sort_unstable_by_key(|&i| (spans[i].1, spans[i].2));
        for w in order.windows(2) {
            let (a, b) = (&spans[w[0]], &spans[w[1]]);
            if b.1 < a.2 {
                return Err(GgufError::OverlappingTensors {
                    first: a.0.to_string(),
                    first_start: u64_of(a.1),
                    first_end: u64_of(a.2),
                    second: b.0.to_string(),
                    second_start: u64_of(b.1),
                });
            }
        }

        Ok(Gguf {
            bytes,
            version,
            alignment,
            data_offset,
            metadata,
            key_index,
            tensors,
            spans,
            tensor_index,
        })
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The alignment of the data section and of each tensor (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute offset of the data section (the end of the tensor infos, aligned up). May be
    /// past the end of the file when the file has no tensors.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Bytes from the data section's start to the end of the file (0 if it starts past the end).
    pub fn data_section_len(&self) -> u64 {
        u64_of(self.bytes.len()).saturating_sub(self.data_offset)
    }

    /// All metadata, in file order.
    pub fn metadata(&self) -> &[MetadataKv<'a>] {
        &self.metadata
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.key_index.get(key).map(|&i| &self.metadata[i].value)
    }

    fn require(&self, key: &str) -> Result<&Value<'a>, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            key: key.to_string(),
        })
    }

    fn mismatch(key: &str, expected: ValueType, actual: &Value<'_>) -> GgufError {
        GgufError::TypeMismatch {
            key: key.to_string(),
            expected: expected.name().to_string(),
            actual: actual.type_name(),
        }
    }

    /// The string value of `key` ([`GgufError::MissingKey`] / [`GgufError::TypeMismatch`]).
    pub fn get_str(&self, key: &str) -> Result<&'a str, GgufError> {
        match *self.require(key)? {
            Value::String(s) => Ok(s),
            ref v => Err(Self::mismatch(key, ValueType::String, v)),
        }
    }

    /// The array value of `key` ([`GgufError::MissingKey`] / [`GgufError::TypeMismatch`]).
    pub fn get_array(&self, key: &str) -> Result<&ArrayValue<'a>, GgufError> {
        match self.require(key)? {
            Value::Array(a) => Ok(a),
            v => Err(Self::mismatch(key, ValueType::Array, v)),
        }
    }

    /// The value of `key` as a non-negative integer of any integer type (u8 ... i64), for
    /// hyperparameters that converters store with varying types. Errors name the key.
    pub fn get_uint(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_uint().ok_or_else(|| GgufError::TypeMismatch {
            key: key.to_string(),
            expected: "non-negative integer".to_string(),
            actual: format!("{} ({v})", v.type_name()),
        })
    }

    /// The value of `key` as a float (f32 or f64). Errors name the key.
    pub fn get_float(&self, key: &str) -> Result<f64, GgufError> {
        let v = self.require(key)?;
        v.as_float().ok_or_else(|| GgufError::TypeMismatch {
            key: key.to_string(),
            expected: "f32 or f64".to_string(),
            actual: v.type_name(),
        })
    }

    /// Tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The info of the tensor called `name`.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// A zero-copy view of the tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'a>> {
        self.tensor_index.get(name).map(|&i| self.view(i))
    }

    /// Zero-copy views of all tensors, in file order.
    pub fn tensor_views(&self) -> impl ExactSizeIterator<Item = TensorView<'a>> + '_ {
        (0..self.tensors.len()).map(|i| self.view(i))
    }

    fn view(&self, i: usize) -> TensorView<'a> {
        let info = &self.tensors[i];
        let (name, start, end) = self.spans[i];
        TensorView::from_validated(
            name,
            info.dtype,
            &info.dims,
            info.n_elements(),
            &self.bytes[start..end],
        )
    }

    /// Absolute byte range `[start, end)` of tensor number `i` (file order) in the file.
    pub fn tensor_range(&self, i: usize) -> Option<std::ops::Range<u64>> {
        self.spans.get(i).map(|&(_, s, e)| u64_of(s)..u64_of(e))
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&'a str, GgufError> {
        self.get_str("general.architecture")
    }
}

macro_rules! getters {
    ($($fn:ident: $t:ty => $vt:ident),* $(,)?) => {
        impl<'a> Gguf<'a> {
            $(
                #[doc = concat!("The `", stringify!($t), "` value of `key` ([`GgufError::MissingKey`] / [`GgufError::TypeMismatch`], naming the key and both types).")]
                pub fn $fn(&self, key: &str) -> Result<$t, GgufError> {
                    match *self.require(key)? {
                        Value::$vt(v) => Ok(v),
                        ref v => Err(Self::mismatch(key, ValueType::$vt, v)),
                    }
                }
            )*
        }
    };
}

getters!(
    get_u8: u8 => U8,
    get_i8: i8 => I8,
    get_u16: u16 => U16,
    get_i16: i16 => I16,
    get_u32: u32 => U32,
    get_i32: i32 => I32,
    get_f32: f32 => F32,
    get_bool: bool => Bool,
    get_u64: u64 => U64,
    get_i64: i64 => I64,
    get_f64: f64 => F64,
);
