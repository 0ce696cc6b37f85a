//! Metadata values: the 13 GGUF value types, borrowed from the file bytes.
//!
//! Scalars are decoded; strings are `&str` into the file (validated UTF-8); arrays stay as the
//! raw bytes of their body ([`ArrayValue`]), validated once at parse time and decoded lazily,
//! so a 262 144-entry token list costs no allocation.

use std::fmt;

use super::cursor::{Cursor, mul, u64_of};
use super::error::{GgufError, Section};
use super::{MAX_ARRAY_DEPTH, MAX_STRING_LEN};

/// The type tag of a metadata value (the GGUF `gguf_metadata_value_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    /// `u8`
    U8 = 0,
    /// `i8`
    I8 = 1,
    /// `u16`
    U16 = 2,
    /// `i16`
    I16 = 3,
    /// `u32`
    U32 = 4,
    /// `i32`
    I32 = 5,
    /// `f32`
    F32 = 6,
    /// `bool` (one byte, 0 or 1)
    Bool = 7,
    /// UTF-8 string (u64 length + bytes)
    String = 8,
    /// array (u32 element type + u64 count + elements)
    Array = 9,
    /// `u64`
    U64 = 10,
    /// `i64`
    I64 = 11,
    /// `f64`
    F64 = 12,
}

impl ValueType {
    /// The type for a tag, if it is one of the 13.
    pub fn from_id(id: u32) -> Option<Self> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The tag in the file.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The name (`"u32"`, `"string"`, ...).
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }

    /// Bytes per value for fixed-size types; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The fewest bytes one value of this type takes in a file (a string: its length field;
    /// an array: its element type and count).
    pub fn min_size(self) -> u64 {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            t => t.fixed_size().map_or(1, u64_of),
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value, borrowed from the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// `u8`
    U8(u8),
    /// `i8`
    I8(i8),
    /// `u16`
    U16(u16),
    /// `i16`
    I16(i16),
    /// `u32`
    U32(u32),
    /// `i32`
    I32(i32),
    /// `f32`
    F32(f32),
    /// `bool`
    Bool(bool),
    /// A UTF-8 string.
    String(&'a str),
    /// An array (of any of the 13 types, arrays nested up to [`MAX_ARRAY_DEPTH`]).
    Array(ArrayValue<'a>),
    /// `u64`
    U64(u64),
    /// `i64`
    I64(i64),
    /// `f64`
    F64(f64),
}

impl<'a> Value<'a> {
    /// The type tag.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The full type name, with the element type of arrays (`"array[string]"`).
    pub fn type_name(&self) -> String {
        match self {
            Value::Array(a) => a.type_name(),
            v => v.value_type().name().to_string(),
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The array, if this is an array.
    pub fn as_array(&self) -> Option<&ArrayValue<'a>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Any integer type whose value is non-negative, as `u64` (`None` for other types or
    /// negative values). For hyperparameters that converters store as u32, i32 or u64.
    pub fn as_uint(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// An `f32` or `f64`, as `f64`.
    pub fn as_float(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    /// Append the value's encoding (type tag + payload) to `out`, exactly as GGUF stores it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.value_type().id().to_le_bytes());
        self.encode_payload(out);
    }

    /// Append the payload (without the type tag) to `out`.
    pub(crate) fn encode_payload(&self, out: &mut Vec<u8>) {
        match *self {
            Value::U8(v) => out.push(v),
            Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Bool(v) => out.push(u8::from(v)),
            Value::String(s) => {
                out.extend_from_slice(&u64_of(s.len()).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Value::Array(ref a) => a.encode_payload(out),
            Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Array(a) => write!(f, "[{}; {}]", a.type_name(), a.len()),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
        }
    }
}

/// A metadata key and its value, borrowed from the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetadataKv<'a> {
    /// The key (non-empty UTF-8, unique in the file).
    pub key: &'a str,
    /// The value.
    pub value: Value<'a>,
}

/// An array value: element type, count, and the raw (validated) bytes of the elements.
///
/// Invariant (established by the parser, the only constructor): `data` holds exactly `len`
/// well-formed elements of `elem_type`; strings among them are valid UTF-8 and nested arrays
/// are themselves valid. The accessors rely on it.
#[derive(Clone, Copy)]
pub struct ArrayValue<'a> {
    key: &'a str,
    elem_type: ValueType,
    len: usize,
    data: &'a [u8],
}

impl PartialEq for ArrayValue<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.elem_type == other.elem_type && self.len == other.len && self.data == other.data
    }
}

impl fmt::Debug for ArrayValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayValue")
            .field("key", &self.key)
            .field("elem_type", &self.elem_type)
            .field("len", &self.len)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// Element types of numeric/bool arrays that [`ArrayValue::iter`] and [`ArrayValue::to_vec`]
/// decode. Sealed: implemented for the 11 fixed-size GGUF types.
pub trait ArrayElem: Copy + 'static + sealed::Sealed {
    /// The GGUF type of the element.
    const TYPE: ValueType;
    /// Decode from exactly `fixed_size` little-endian bytes.
    #[doc(hidden)]
    fn from_le(b: &[u8]) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! array_elem {
    ($($t:ty => $vt:ident),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl ArrayElem for $t {
            const TYPE: ValueType = ValueType::$vt;
            #[inline]
            fn from_le(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
        }
    )*};
}
array_elem!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, f32 => F32,
            u64 => U64, i64 => I64, f64 => F64);

impl sealed::Sealed for bool {}
impl ArrayElem for bool {
    const TYPE: ValueType = ValueType::Bool;
    #[inline]
    fn from_le(b: &[u8]) -> Self {
        b[0] != 0
    }
}

impl<'a> ArrayValue<'a> {
    /// The element type.
    pub fn elem_type(&self) -> ValueType {
        self.elem_type
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The key this array belongs to (for error messages).
    pub fn key(&self) -> &'a str {
        self.key
    }

    /// The raw bytes of the elements as stored in the file (after the type tag and count).
    pub fn raw_bytes(&self) -> &'a [u8] {
        self.data
    }

    /// `"array[f32]"`, `"array[array]"`, ...
    pub fn type_name(&self) -> String {
        format!("array[{}]", self.elem_type.name())
    }

    fn mismatch(&self, expected: ValueType) -> GgufError {
        GgufError::TypeMismatch {
            key: self.key.to_string(),
            expected: format!("array[{}]", expected.name()),
            actual: self.type_name(),
        }
    }

    /// The strings of a string array, in order, without copying. Yields nothing if the array
    /// does not hold strings (check [`elem_type`](Self::elem_type), or use
    /// [`try_iter_str`](Self::try_iter_str) to get a type error instead).
    pub fn iter_str(&self) -> StrIter<'a> {
        if self.elem_type == ValueType::String {
            StrIter {
                rest: self.data,
                left: self.len,
            }
        } else {
            StrIter { rest: &[], left: 0 }
        }
    }

    /// The strings of a string array, or [`GgufError::TypeMismatch`] for another element type.
    pub fn try_iter_str(&self) -> Result<StrIter<'a>, GgufError> {
        if self.elem_type == ValueType::String {
            Ok(self.iter_str())
        } else {
            Err(self.mismatch(ValueType::String))
        }
    }

    /// The elements of a numeric or bool array, decoded lazily, or
    /// [`GgufError::TypeMismatch`] if the element type is not `T`'s.
    pub fn iter<T: ArrayElem>(&self) -> Result<impl ExactSizeIterator<Item = T> + 'a, GgufError> {
        if self.elem_type != T::TYPE {
            return Err(self.mismatch(T::TYPE));
        }
        // For fixed-size types `data.len() == len * size_of::<T>()` (parser invariant).
        Ok(self
            .data
            .chunks_exact(std::mem::size_of::<T>())
            .map(T::from_le))
    }

    /// The elements of a numeric or bool array, copied into a `Vec`.
    pub fn to_vec<T: ArrayElem>(&self) -> Result<Vec<T>, GgufError> {
        let it = self.iter::<T>()?;
        let mut v = Vec::new();
        v.try_reserve_exact(it.len())
            .map_err(|_| GgufError::OutOfMemory {
                what: "array elements",
                count: u64_of(self.len),
            })?;
        v.extend(it);
        Ok(v)
    }

    /// An `f32` array as a `Vec<f32>` (type error otherwise).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, GgufError> {
        self.to_vec()
    }

    /// An `i32` array as a `Vec<i32>` (type error otherwise).
    pub fn to_i32_vec(&self) -> Result<Vec<i32>, GgufError> {
        self.to_vec()
    }

    /// A `u32` array as a `Vec<u32>` (type error otherwise).
    pub fn to_u32_vec(&self) -> Result<Vec<u32>, GgufError> {
        self.to_vec()
    }

    /// A `u64` array as a `Vec<u64>` (type error otherwise).
    pub fn to_u64_vec(&self) -> Result<Vec<u64>, GgufError> {
        self.to_vec()
    }

    /// The nested arrays of an array of arrays, or [`GgufError::TypeMismatch`].
    pub fn iter_arrays(&self) -> Result<ArrayIter<'a>, GgufError> {
        if self.elem_type != ValueType::Array {
            return Err(self.mismatch(ValueType::Array));
        }
        Ok(ArrayIter {
            key: self.key,
            cur: Cursor::new(self.data),
            left: self.len,
        })
    }

    /// Every element as a [`Value`] (any element type), in order.
    pub fn values(&self) -> ValueIter<'a> {
        ValueIter {
            key: self.key,
            elem_type: self.elem_type,
            cur: Cursor::new(self.data),
            left: self.len,
        }
    }

    /// Append element type, count and elements to `out` (the array payload in GGUF).
    pub(crate) fn encode_payload(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.elem_type.id().to_le_bytes());
        out.extend_from_slice(&u64_of(self.len).to_le_bytes());
        out.extend_from_slice(self.data);
    }
}

/// Iterator over the strings of a string array (see [`ArrayValue::iter_str`]).
#[derive(Clone, Debug)]
pub struct StrIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for StrIter<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        if self.left == 0 {
            return None;
        }
        // Parser invariant: `rest` starts with `left` well-formed strings.
        let (len, tail) = self.rest.split_first_chunk::<8>()?;
        let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
        let bytes = tail.get(..len)?;
        self.rest = &tail[len..];
        self.left -= 1;
        debug_assert!(std::str::from_utf8(bytes).is_ok());
        // SAFETY: an ArrayValue of strings is only built by `parse_array`, which checked every
        // element with `std::str::from_utf8` (Cursor::string); its fields are private and
        // immutable, so `bytes` is one of those validated strings.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for StrIter<'_> {}
impl std::iter::FusedIterator for StrIter<'_> {}

/// Iterator over the elements of an array of arrays (see [`ArrayValue::iter_arrays`]).
#[derive(Clone, Debug)]
pub struct ArrayIter<'a> {
    key: &'a str,
    cur: Cursor<'a>,
    left: usize,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = ArrayValue<'a>;

    fn next(&mut self) -> Option<ArrayValue<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Already validated at parse time (depth included), so this cannot fail; the depth
        // argument only has to be within the limit.
        match parse_array(&mut self.cur, self.key, 1) {
            Ok(a) => Some(a),
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for ArrayIter<'_> {}

/// Iterator over the elements of any array as [`Value`]s (see [`ArrayValue::values`]).
#[derive(Clone, Debug)]
pub struct ValueIter<'a> {
    key: &'a str,
    elem_type: ValueType,
    cur: Cursor<'a>,
    left: usize,
}

impl<'a> Iterator for ValueIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Validated at parse time; see ArrayIter::next.
        match parse_payload(&mut self.cur, self.elem_type, self.key, 1) {
            Ok(v) => Some(v),
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for ValueIter<'_> {}

/// Read a type tag for `key`.
pub(crate) fn parse_type(
    cur: &mut Cursor<'_>,
    key: &str,
    in_array: bool,
) -> Result<ValueType, GgufError> {
    let offset = cur.offset();
    let id = cur.u32(|| section(key, in_array))?;
    ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType {
        key: key.to_string(),
        offset,
        type_id: id,
    })
}

fn section(key: &str, in_array: bool) -> Section {
    if in_array {
        Section::Array {
            key: key.to_string(),
        }
    } else {
        Section::Value {
            key: key.to_string(),
        }
    }
}

/// Read the payload of a value of type `t` (its tag already read). `depth` is the number of
/// arrays enclosing this value (0 for a top-level value).
pub(crate) fn parse_payload<'a>(
    cur: &mut Cursor<'a>,
    t: ValueType,
    key: &'a str,
    depth: usize,
) -> Result<Value<'a>, GgufError> {
    let in_array = depth > 0;
    let sec = || section(key, in_array);
    Ok(match t {
        ValueType::U8 => Value::U8(cur.array::<1>(sec)?[0]),
        ValueType::I8 => Value::I8(i8::from_le_bytes(cur.array::<1>(sec)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(cur.array::<2>(sec)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(cur.array::<2>(sec)?)),
        ValueType::U32 => Value::U32(cur.u32(sec)?),
        ValueType::I32 => Value::I32(i32::from_le_bytes(cur.array::<4>(sec)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(cur.array::<4>(sec)?)),
        ValueType::Bool => {
            let offset = cur.offset();
            let b = cur.array::<1>(sec)?[0];
            if b > 1 {
                return Err(GgufError::InvalidBool {
                    key: key.to_string(),
                    offset,
                    value: b,
                });
            }
            Value::Bool(b == 1)
        }
        ValueType::String => Value::String(cur.string(MAX_STRING_LEN, sec, || {
            format!("string value of key '{key}'")
        })?),
        ValueType::Array => Value::Array(parse_array(cur, key, depth + 1)?),
        ValueType::U64 => Value::U64(cur.u64(sec)?),
        ValueType::I64 => Value::I64(i64::from_le_bytes(cur.array::<8>(sec)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(cur.array::<8>(sec)?)),
    })
}

/// Read an array body (element type, count, elements) at nesting level `depth` (1 for an
/// array that is a top-level value), validating every element.
pub(crate) fn parse_array<'a>(
    cur: &mut Cursor<'a>,
    key: &'a str,
    depth: usize,
) -> Result<ArrayValue<'a>, GgufError> {
    let sec = || Section::Array {
        key: key.to_string(),
    };
    let tag_offset = cur.offset();
    let elem_type = parse_type(cur, key, true)?;
    if elem_type == ValueType::Array && depth >= MAX_ARRAY_DEPTH {
        return Err(GgufError::NestingTooDeep {
            key: key.to_string(),
            offset: tag_offset,
            max: MAX_ARRAY_DEPTH,
        });
    }
    let count_offset = cur.offset();
    let count = cur.u64(sec)?;
    let available = cur.remaining();
    let min = elem_type.min_size();
    let min_bytes = match mul(count, min, String::new) {
        Ok(m) if m <= available => m,
        too_large => {
            return Err(GgufError::ArrayTooLarge {
                key: key.to_string(),
                offset: count_offset,
                count,
                elem_type: elem_type.name().to_string(),
                min_bytes: too_large.unwrap_or(u64::MAX),
                available,
            });
        }
    };
    // count * min <= available <= usize::MAX.
    let len = count as usize;
    let start = cur.pos();
    match elem_type.fixed_size() {
        Some(_) => {
            // `min` is the fixed size here, so this is exactly count * size bytes.
            let data = cur.take(min_bytes, sec)?;
            if elem_type == ValueType::Bool
                && let Some(i) = data.iter().position(|&b| b > 1)
            {
                return Err(GgufError::InvalidBool {
                    key: key.to_string(),
                    offset: u64_of(start + i),
                    value: data[i],
                });
            }
            Ok(ArrayValue {
                key,
                elem_type,
                len,
                data,
            })
        }
        None => {
            for _ in 0..len {
                if elem_type == ValueType::String {
                    cur.string(MAX_STRING_LEN, sec, || {
                        format!("string in array of key '{key}'")
                    })?;
                } else {
                    parse_array(cur, key, depth + 1)?;
                }
            }
            let data = cur.since(start);
            Ok(ArrayValue {
                key,
                elem_type,
                len,
                data,
            })
        }
    }
}
