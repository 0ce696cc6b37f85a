//! [`GgufWriter`]: builds a GGUF file from metadata and tensors.

use std::collections::HashSet;
use std::io::Write;

use super::cursor::{add, align_up, u64_of};
use super::tensor_info::tensor_size;
use super::value::{ArrayElem, Value, ValueType};
use super::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GgufError, MAGIC, MAX_NAME_LEN, MAX_STRING_LEN};
use crate::dtype::GgmlType;

struct PendingTensor<'d> {
    name: String,
    dtype: GgmlType,
    dims: Vec<u64>,
    data: &'d [u8],
}

/// Builds a GGUF file (version 3 by default): metadata in the order added, then tensor infos,
/// then each tensor's data at the next multiple of the alignment (`general.alignment` if
/// added, else 32), zero-padded, with the file padded to the alignment after the tensor infos
/// and after every tensor (as llama.cpp writes it).
///
/// Every `add_*` checks its input against the rules [`Gguf::parse`](super::Gguf::parse)
/// enforces, so what the writer writes always parses.
///
/// ```
/// use kiln::gguf::{Gguf, GgufWriter};
/// use kiln::GgmlType;
///
/// let weights: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect();
/// let mut w = GgufWriter::new();
/// w.add_str("general.architecture", "llama")?;
/// w.add_u32("llama.block_count", 1)?;
/// w.add_tensor("output.weight", GgmlType::F32, &[2, 2], &weights)?;
/// let bytes = w.to_vec()?;
/// let g = Gguf::parse(&bytes)?;
/// assert_eq!(g.get_u32("llama.block_count")?, 1);
/// assert_eq!(g.tensor("output.weight").unwrap().row(1), &weights[8..]);
/// # Ok::<(), kiln::gguf::GgufError>(())
/// ```
pub struct GgufWriter<'d> {
    version: u32,
    alignment: u64,
    /// Encoded key-value pairs, in the order added.
    kv: Vec<u8>,
    n_kv: u64,
    keys: HashSet<String>,
    tensors: Vec<PendingTensor<'d>>,
    tensor_names: HashSet<String>,
}

impl std::fmt::Debug for GgufWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufWriter")
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("n_kv", &self.n_kv)
            .field("n_tensors", &self.tensors.len())
            .finish()
    }
}

impl Default for GgufWriter<'_> {
    fn default() -> Self {
        Self::new()
    }
}

fn invalid(reason: String) -> GgufError {
    GgufError::InvalidWrite { reason }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u64_of(s.len()).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl<'d> GgufWriter<'d> {
    /// An empty version-3 file with the default alignment.
    pub fn new() -> Self {
        GgufWriter {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            kv: Vec::new(),
            n_kv: 0,
            keys: HashSet::new(),
            tensors: Vec::new(),
            tensor_names: HashSet::new(),
        }
    }

    /// Set the format version written in the header (2 or 3; they share one layout).
    pub fn set_version(&mut self, version: u32) -> Result<&mut Self, GgufError> {
        if !matches!(version, 2 | 3) {
            return Err(invalid(format!(
                "version {version}: only 2 and 3 can be written"
            )));
        }
        self.version = version;
        Ok(self)
    }

    /// The alignment the data will be written with.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    fn check_key(&self, key: &str) -> Result<(), GgufError> {
        if key.is_empty() {
            return Err(invalid("empty metadata key".into()));
        }
        if u64_of(key.len()) > MAX_NAME_LEN {
            return Err(invalid(format!(
                "metadata key of {} bytes (max {MAX_NAME_LEN})",
                key.len()
            )));
        }
        if self.keys.contains(key) {
            return Err(invalid(format!("duplicate metadata key '{key}'")));
        }
        Ok(())
    }

    /// Add a key with any [`Value`] (for example one read from another file: arrays are
    /// copied byte for byte). Setting `general.alignment` (u32, a power of two) changes the
    /// alignment used for the data.
    pub fn add_kv(&mut self, key: &str, value: &Value<'_>) -> Result<&mut Self, GgufError> {
        self.check_key(key)?;
        if let Value::String(s) = value
            && u64_of(s.len()) > MAX_STRING_LEN
        {
            return Err(invalid(format!(
                "string value of key '{key}' is longer than {MAX_STRING_LEN} bytes"
            )));
        }
        if key == ALIGNMENT_KEY {
            match *value {
                Value::U32(a) if a != 0 && a.is_power_of_two() => self.alignment = u64::from(a),
                ref v => {
                    return Err(invalid(format!(
                        "{ALIGNMENT_KEY} must be a u32 power of two, got {} {v}",
                        v.type_name()
                    )));
                }
            }
        }
        put_str(&mut self.kv, key);
        value.encode(&mut self.kv);
        self.keys.insert(key.to_string());
        self.n_kv += 1;
        Ok(self)
    }

    /// Add a string value.
    pub fn add_str(&mut self, key: &str, value: &str) -> Result<&mut Self, GgufError> {
        self.add_kv(key, &Value::String(value))
    }

    /// Add a `u32` value.
    pub fn add_u32(&mut self, key: &str, value: u32) -> Result<&mut Self, GgufError> {
        self.add_kv(key, &Value::U32(value))
    }

    /// Add an `i32` value.
    pub fn add_i32(&mut self, key: &str, value: i32) -> Result<&mut Self, GgufError> {
        self.add_kv(key, &Value::I32(value))
    }

    /// Add a `u64` value.
    pub fn add_u64(&mut self, key: &str, value: u64) -> Result<&mut Self, GgufError> {
        self.add_kv(key, &Value::U64(value))
    }

    /// Add an `f32` value.
    pub fn add_f32(&mut self, key: &str, value: f32) -> Result<&mut Self, GgufError> {
        self.add_kv(key, &Value::F32(value))
    }

    /// Add a `bool` value.
    pub fn add_bool(&mut self, key: &str, value: bool) -> Result<&mut Self, GgufError> {
        self.add_kv(key, &Value::Bool(value))
    }

    /// Add an array of numbers or bools.
    pub fn add_array<T: ArrayElem + ToLeBytes>(
        &mut self,
        key: &str,
        values: &[T],
    ) -> Result<&mut Self, GgufError> {
        self.check_key(key)?;
        if key == ALIGNMENT_KEY {
            return Err(invalid(format!(
                "{ALIGNMENT_KEY} must be a u32, not an array"
            )));
        }
        put_str(&mut self.kv, key);
        self.kv
            .extend_from_slice(&ValueType::Array.id().to_le_bytes());
        self.kv.extend_from_slice(&T::TYPE.id().to_le_bytes());
        self.kv
            .extend_from_slice(&u64_of(values.len()).to_le_bytes());
        for v in values {
            v.put_le(&mut self.kv);
        }
        self.keys.insert(key.to_string());
        self.n_kv += 1;
        Ok(self)
    }

    /// Add an array of strings.
    pub fn add_str_array<'s>(
        &mut self,
        key: &str,
        values: impl IntoIterator<Item = &'s str>,
    ) -> Result<&mut Self, GgufError> {
        self.check_key(key)?;
        if key == ALIGNMENT_KEY {
            return Err(invalid(format!(
                "{ALIGNMENT_KEY} must be a u32, not an array"
            )));
        }
        let mut body = Vec::new();
        let mut n = 0u64;
        for s in values {
            if u64_of(s.len()) > MAX_STRING_LEN {
                return Err(invalid(format!(
                    "string in array of key '{key}' is longer than {MAX_STRING_LEN} bytes"
                )));
            }
            put_str(&mut body, s);
            n += 1;
        }
        put_str(&mut self.kv, key);
        self.kv
            .extend_from_slice(&ValueType::Array.id().to_le_bytes());
        self.kv
            .extend_from_slice(&ValueType::String.id().to_le_bytes());
        self.kv.extend_from_slice(&n.to_le_bytes());
        self.kv.extend_from_slice(&body);
        self.keys.insert(key.to_string());
        self.n_kv += 1;
        Ok(self)
    }

    /// Add a tensor: `dims[0]` is the row length; `data` must be exactly the bytes `dims`
    /// take in `dtype` (row-major, blocks as ggml lays them out). The data is borrowed until
    /// the file is written.
    pub fn add_tensor(
        &mut self,
        name: &str,
        dtype: GgmlType,
        dims: &[u64],
        data: &'d [u8],
    ) -> Result<&mut Self, GgufError> {
        if name.is_empty() {
            return Err(invalid("empty tensor name".into()));
        }
        if u64_of(name.len()) > MAX_NAME_LEN {
            return Err(invalid(format!(
                "tensor name of {} bytes (max {MAX_NAME_LEN})",
                name.len()
            )));
        }
        if self.tensor_names.contains(name) {
            return Err(invalid(format!("duplicate tensor name '{name}'")));
        }
        let (_, n_bytes) = tensor_size(name, dtype, dims)?;
        if n_bytes != u64_of(data.len()) {
            return Err(GgufError::DataSizeMismatch {
                name: name.to_string(),
                expected: n_bytes,
                actual: u64_of(data.len()),
            });
        }
        self.tensor_names.insert(name.to_string());
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dtype,
            dims: dims.to_vec(),
            data,
        });
        Ok(self)
    }

    /// Header, metadata and tensor infos (unpadded), and each tensor's offset in the data
    /// section, and the total file length.
    fn layout(&self) -> Result<(Vec<u8>, u64), GgufError> {
        let mut head = Vec::new();
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&self.version.to_le_bytes());
        head.extend_from_slice(&u64_of(self.tensors.len()).to_le_bytes());
        head.extend_from_slice(&self.n_kv.to_le_bytes());
        head.extend_from_slice(&self.kv);
        let mut offset = 0u64;
        for t in &self.tensors {
            put_str(&mut head, &t.name);
            head.extend_from_slice(
                &u32::try_from(t.dims.len())
                    .unwrap_or(u32::MAX)
                    .to_le_bytes(),
            );
            for d in &t.dims {
                head.extend_from_slice(&d.to_le_bytes());
            }
            head.extend_from_slice(&t.dtype.id().to_le_bytes());
            head.extend_from_slice(&offset.to_le_bytes());
            let end = add(offset, u64_of(t.data.len()), || {
                format!("end of tensor '{}'", t.name)
            })?;
            offset = align_up(end, self.alignment, || {
                format!("padding after tensor '{}'", t.name)
            })?;
        }
        let data_start = align_up(u64_of(head.len()), self.alignment, || {
            "data section start".into()
        })?;
        let total = add(data_start, offset, || "file length".into())?;
        Ok((head, total))
    }

    /// The length of the file [`write_to`](Self::write_to) would write.
    pub fn file_len(&self) -> Result<u64, GgufError> {
        self.layout().map(|(_, total)| total)
    }

    /// Write the file to `w`; returns the number of bytes written.
    pub fn write_to<W: Write>(&self, mut w: W) -> Result<u64, GgufError> {
        let (head, total) = self.layout()?;
        w.write_all(&head)?;
        let mut pos = u64_of(head.len());
        // The data section starts aligned even when there are no tensors (as llama.cpp writes).
        pos = pad(&mut w, pos, self.alignment)?;
        for t in &self.tensors {
            w.write_all(t.data)?;
            pos = add(pos, u64_of(t.data.len()), || "file position".into())?;
            pos = pad(&mut w, pos, self.alignment)?;
        }
        debug_assert_eq!(pos, total);
        w.flush()?;
        Ok(pos)
    }

    /// The whole file in a `Vec`.
    pub fn to_vec(&self) -> Result<Vec<u8>, GgufError> {
        let total = self.file_len()?;
        let mut out = Vec::new();
        usize::try_from(total)
            .ok()
            .and_then(|n| out.try_reserve_exact(n).ok())
            .ok_or(GgufError::OutOfMemory {
                what: "bytes of output",
                count: total,
            })?;
        self.write_to(&mut out)?;
        Ok(out)
    }
}

/// Write zeros from `pos` up to the next multiple of `align`; returns the new position.
fn pad<W: Write>(w: &mut W, pos: u64, align: u64) -> Result<u64, GgufError> {
    const ZEROS: [u8; 4096] = [0; 4096];
    let target = align_up(pos, align, || "padding".into())?;
    let mut left = target - pos;
    while left > 0 {
        let n = left.min(u64_of(ZEROS.len()));
        // n <= 4096.
        w.write_all(&ZEROS[..n as usize])?;
        left -= n;
    }
    Ok(target)
}

/// Little-endian encoding of array elements for [`GgufWriter::add_array`]. Implemented for
/// the 11 fixed-size GGUF types.
pub trait ToLeBytes {
    /// Append the little-endian bytes of `self`.
    fn put_le(&self, out: &mut Vec<u8>);
}

macro_rules! to_le {
    ($($t:ty),*) => {$(
        impl ToLeBytes for $t {
            fn put_le(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
to_le!(u8, i8, u16, i16, u32, i32, f32, u64, i64, f64);

impl ToLeBytes for bool {
    fn put_le(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}
