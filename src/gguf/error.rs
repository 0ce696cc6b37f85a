//! [`GgufError`]: everything that can be wrong with a GGUF file, one variant per defect.

use std::fmt;

/// The part of a GGUF file a read was in when the file ended early.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Section {
    /// The fixed header: magic, version, tensor count, metadata count.
    Header,
    /// A metadata key.
    Key,
    /// The value of the named metadata key (its type tag, a scalar or a string).
    Value {
        /// The key whose value was being read.
        key: String,
    },
    /// The element type, count or elements of the named key's array value.
    Array {
        /// The key whose array value was being read.
        key: String,
    },
    /// The tensor info with this index (0-based, in file order).
    TensorInfo {
        /// Index of the tensor info.
        index: u64,
    },
    /// The data of the named tensor.
    TensorData {
        /// The tensor whose bytes run past the end of the file.
        name: String,
    },
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Section::Header => f.write_str("header"),
            Section::Key => f.write_str("metadata key"),
            Section::Value { key } => write!(f, "value of key '{key}'"),
            Section::Array { key } => write!(f, "array value of key '{key}'"),
            Section::TensorInfo { index } => write!(f, "tensor info #{index}"),
            Section::TensorData { name } => write!(f, "data of tensor '{name}'"),
        }
    }
}

/// A malformed or unsupported GGUF file.
///
/// Every variant names the offending offset (absolute, in bytes from the start of the file),
/// key or tensor. Parsing never panics and never allocates more than the file's length
/// justifies; every defect below is reported as its own variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file does not start with the bytes `GGUF`.
    #[error(
        "not a GGUF file: magic is {found:02x?} ({}), expected \"GGUF\"",
        String::from_utf8_lossy(found)
    )]
    BadMagic {
        /// The first four bytes of the file.
        found: [u8; 4],
    },
    /// The file is a byte-swapped (big-endian) GGUF file; kiln reads only little-endian files.
    #[error(
        "big-endian GGUF file (version {version} byte-swapped): kiln reads only little-endian GGUF; \
         convert it with gguf-py or llama.cpp"
    )]
    BigEndian {
        /// The version number, read big-endian.
        version: u32,
    },
    /// The format version is not 2 or 3.
    #[error("unsupported GGUF version {version} (kiln reads versions 2 and 3)")]
    UnsupportedVersion {
        /// The version number in the header.
        version: u32,
    },
    /// The file ends before a structure that must be there.
    #[error(
        "truncated file: {section} needs {needed} bytes at offset {offset}, only {available} left"
    )]
    Truncated {
        /// What was being read.
        section: Section,
        /// Where the read started.
        offset: u64,
        /// Bytes the read needs.
        needed: u64,
        /// Bytes left in the file from `offset`.
        available: u64,
    },
    /// A string's length is above the cap for its kind (keys and tensor names:
    /// [`MAX_NAME_LEN`](super::MAX_NAME_LEN); values: [`MAX_STRING_LEN`](super::MAX_STRING_LEN)).
    #[error("string at offset {offset} claims {len} bytes, above the limit of {max}")]
    StringTooLong {
        /// Offset of the string's length field.
        offset: u64,
        /// The length the file claims.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// An array's element count times its minimum element size exceeds the bytes left.
    #[error(
        "array of key '{key}' at offset {offset} claims {count} elements of type {elem_type} \
         (at least {min_bytes} bytes), only {available} bytes left"
    )]
    ArrayTooLarge {
        /// The key holding the array.
        key: String,
        /// Offset of the array's count field.
        offset: u64,
        /// The element count the file claims.
        count: u64,
        /// The element type name.
        elem_type: String,
        /// The minimum number of bytes `count` elements take (saturated at `u64::MAX`).
        min_bytes: u64,
        /// Bytes left in the file after the count field.
        available: u64,
    },
    /// The header's tensor count cannot fit in the file (each tensor info takes at least
    /// [`MIN_TENSOR_INFO_LEN`](super::MIN_TENSOR_INFO_LEN) bytes).
    #[error("header claims {count} tensors; the file has room for at most {max}")]
    TooManyTensors {
        /// The count in the header.
        count: u64,
        /// The most tensor infos the file's length allows.
        max: u64,
    },
    /// The header's metadata key count cannot fit in the file (each key-value pair takes at
    /// least [`MIN_KV_LEN`](super::MIN_KV_LEN) bytes).
    #[error("header claims {count} metadata keys; the file has room for at most {max}")]
    TooManyKeys {
        /// The count in the header.
        count: u64,
        /// The most key-value pairs the file's length allows (after the tensor infos' minimum).
        max: u64,
    },
    /// A metadata value (or array element) type tag is not one of the 13 GGUF value types.
    #[error("unknown metadata value type {type_id} for key '{key}' at offset {offset}")]
    UnknownValueType {
        /// The key whose value has the bad tag.
        key: String,
        /// Offset of the type tag.
        offset: u64,
        /// The tag.
        type_id: u32,
    },
    /// A bool value is neither 0 nor 1.
    #[error("bool value of key '{key}' at offset {offset} is {value}, not 0 or 1")]
    InvalidBool {
        /// The key holding the bool.
        key: String,
        /// Offset of the byte.
        offset: u64,
        /// The byte found.
        value: u8,
    },
    /// Arrays are nested deeper than [`MAX_ARRAY_DEPTH`](super::MAX_ARRAY_DEPTH).
    #[error("arrays of key '{key}' at offset {offset} are nested deeper than {max} levels")]
    NestingTooDeep {
        /// The key holding the array.
        key: String,
        /// Offset of the element type tag that would open one level too many.
        offset: u64,
        /// The depth limit.
        max: usize,
    },
    /// A key or string is not valid UTF-8.
    #[error("{what} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// What the string is (`"key"`, `"value of key 'x'"`, `"tensor name"`).
        what: String,
        /// Offset of the string's bytes.
        offset: u64,
    },
    /// A metadata key is the empty string.
    #[error("empty metadata key at offset {offset}")]
    EmptyKey {
        /// Offset of the key's length field.
        offset: u64,
    },
    /// A metadata key appears twice.
    #[error("duplicate metadata key '{key}' (second occurrence at offset {offset})")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Offset of the second occurrence.
        offset: u64,
    },
    /// `general.alignment` is zero or not a power of two.
    #[error("general.alignment is {value}; it must be a non-zero power of two")]
    InvalidAlignment {
        /// The value found.
        value: u64,
    },
    /// A tensor's type id is not one ggml has ever assigned.
    #[error("tensor '{name}' has unknown ggml type id {type_id}")]
    UnknownTensorType {
        /// The tensor.
        name: String,
        /// The id found.
        type_id: u32,
    },
    /// A tensor's type id is one ggml has removed (Q4_2, Q4_3, Q4_0_4_4, ...).
    #[error("tensor '{name}' uses ggml type id {type_id}, which ggml has removed")]
    RemovedTensorType {
        /// The tensor.
        name: String,
        /// The id found.
        type_id: u32,
    },
    /// A tensor has 0 or more than [`MAX_DIMS`](super::MAX_DIMS) dimensions.
    #[error("tensor '{name}' has {n_dims} dimensions; 1 to {max} are allowed", max = super::MAX_DIMS)]
    BadDimCount {
        /// The tensor.
        name: String,
        /// The dimension count found.
        n_dims: u32,
    },
    /// A tensor has a dimension of size 0.
    #[error("tensor '{name}' has size 0 in dimension {dim}")]
    ZeroDim {
        /// The tensor.
        name: String,
        /// Which dimension (0 = row length).
        dim: usize,
    },
    /// A size computation overflowed (element count, byte size, offset + size, ...).
    #[error("size overflow: {what}")]
    SizeOverflow {
        /// What was being computed, with the tensor name or offset.
        what: String,
    },
    /// A tensor's row length is not a whole number of blocks of its type.
    #[error(
        "tensor '{name}' of type {dtype} has rows of {row_len} elements, \
         not a multiple of the block size {block_size}"
    )]
    RowNotBlockMultiple {
        /// The tensor.
        name: String,
        /// Its type.
        dtype: crate::GgmlType,
        /// `dims[0]`.
        row_len: u64,
        /// The type's block size.
        block_size: usize,
    },
    /// A tensor's offset (relative to the data section) is not a multiple of the alignment.
    #[error(
        "tensor '{name}' has data offset {offset}, not a multiple of the alignment {alignment}"
    )]
    MisalignedTensor {
        /// The tensor.
        name: String,
        /// Its offset in the data section.
        offset: u64,
        /// `general.alignment`.
        alignment: u64,
    },
    /// A tensor's data starts at or beyond the end of the file.
    #[error("tensor '{name}' data [{start}, {end}) starts outside the file ({file_len} bytes)")]
    TensorOutOfBounds {
        /// The tensor.
        name: String,
        /// Absolute file offset of its first byte.
        start: u64,
        /// Absolute file offset one past its last byte.
        end: u64,
        /// The file's length.
        file_len: u64,
    },
    /// Two tensors' data ranges overlap.
    #[error(
        "tensors '{first}' [{first_start}, {first_end}) and '{second}' (starting at {second_start}) overlap"
    )]
    OverlappingTensors {
        /// The tensor that starts first.
        first: String,
        /// Its absolute start offset.
        first_start: u64,
        /// Its absolute end offset.
        first_end: u64,
        /// The tensor that starts inside the first.
        second: String,
        /// Its absolute start offset.
        second_start: u64,
    },
    /// Two tensors have the same name.
    #[error("duplicate tensor name '{name}' (tensor infos #{first} and #{second})")]
    DuplicateTensor {
        /// The name.
        name: String,
        /// Index of the first tensor info with it.
        first: u64,
        /// Index of the second.
        second: u64,
    },
    /// A tensor name is the empty string.
    #[error("tensor info #{index} has an empty name")]
    EmptyTensorName {
        /// Index of the tensor info.
        index: u64,
    },
    /// A tensor's byte buffer does not have the length its type and shape imply.
    #[error("tensor '{name}' needs {expected} bytes for its type and shape, got {actual}")]
    DataSizeMismatch {
        /// The tensor.
        name: String,
        /// Bytes implied by type and dims.
        expected: u64,
        /// Bytes given.
        actual: u64,
    },
    /// A metadata key the caller asked for is absent.
    #[error("metadata key '{key}' is missing")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A metadata value has a different type than the caller asked for.
    #[error("metadata key '{key}' has type {actual}, expected {expected}")]
    TypeMismatch {
        /// The key.
        key: String,
        /// The type the caller asked for (`"u32"`, `"array[f32]"`, ...).
        expected: String,
        /// The type in the file.
        actual: String,
    },
    /// Memory for the parsed structures could not be reserved.
    #[error("out of memory reserving {count} {what}")]
    OutOfMemory {
        /// What was being reserved.
        what: &'static str,
        /// How many.
        count: u64,
    },
    /// The writer was given something it cannot write (bad dims, data length, key ...).
    #[error("cannot write GGUF: {reason}")]
    InvalidWrite {
        /// What is wrong.
        reason: String,
    },
    /// Writing the output failed.
    #[error("writing GGUF: {0}")]
    Io(#[from] std::io::Error),
}
