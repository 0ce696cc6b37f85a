//! Tensor infos: name, shape, type and data offset of each tensor, and their validation.

use super::cursor::{Cursor, mul, u64_of};
use super::error::{GgufError, Section};
use super::{MAX_DIMS, MAX_NAME_LEN};
use crate::dtype::{GgmlType, TypeIdError};

/// Where a tensor lives and what it holds, as described by the file's tensor info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor name, verbatim from the file (non-empty, unique).
    pub name: String,
    /// Element type.
    pub dtype: GgmlType,
    /// Shape, fastest-varying first: `dims[0]` is the row length. 1 to [`MAX_DIMS`] entries,
    /// each non-zero.
    pub dims: Vec<u64>,
    /// Offset of the first byte, relative to the start of the data section (a multiple of
    /// the alignment).
    pub offset: u64,
    n_elements: u64,
    n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements (product of `dims`), computed at parse time.
    pub fn n_elements(&self) -> u64 {
        self.n_elements
    }

    /// Size of the data in bytes, computed at parse time.
    pub fn n_bytes(&self) -> u64 {
        self.n_bytes
    }

    /// `dims[0]`, the number of elements in a row.
    pub fn row_len(&self) -> u64 {
        self.dims[0]
    }

    /// Number of rows (product of `dims[1..]`).
    pub fn n_rows(&self) -> u64 {
        self.n_elements / self.dims[0]
    }
}

/// Check a tensor's shape against its type and compute `(n_elements, n_bytes)` through the
/// checked size helper. Shared by the parser, the writer and `TensorView::new`.
pub(crate) fn tensor_size(
    name: &str,
    dtype: GgmlType,
    dims: &[u64],
) -> Result<(u64, u64), GgufError> {
    if dims.is_empty() || dims.len() > MAX_DIMS {
        return Err(GgufError::BadDimCount {
            name: name.to_string(),
            n_dims: u32::try_from(dims.len()).unwrap_or(u32::MAX),
        });
    }
    if let Some(dim) = dims.iter().position(|&d| d == 0) {
        return Err(GgufError::ZeroDim {
            name: name.to_string(),
            dim,
        });
    }
    let mut n = 1u64;
    for &d in dims {
        n = mul(n, d, || {
            format!("element count of tensor '{name}' (dims {dims:?})")
        })?;
    }
    // ggml counts elements in int64_t, and kiln indexes them with usize.
    if i64::try_from(n).is_err() || usize::try_from(n).is_err() {
        return Err(GgufError::SizeOverflow {
            what: format!("element count {n} of tensor '{name}' does not fit in i64/usize"),
        });
    }
    let block = u64_of(dtype.block_size());
    if !dims[0].is_multiple_of(block) {
        return Err(GgufError::RowNotBlockMultiple {
            name: name.to_string(),
            dtype,
            row_len: dims[0],
            block_size: dtype.block_size(),
        });
    }
    let bytes = mul(n / block, u64_of(dtype.type_size()), || {
        format!("byte size of tensor '{name}' ({n} elements of {dtype})")
    })?;
    Ok((n, bytes))
}

/// Read tensor info number `index` and validate its own fields (not yet its placement).
pub(crate) fn parse_tensor_info<'a>(
    cur: &mut Cursor<'a>,
    index: u64,
    alignment: u64,
) -> Result<(&'a str, TensorInfo), GgufError> {
    let sec = || Section::TensorInfo { index };
    let name = cur.string(MAX_NAME_LEN, sec, || {
        format!("name of tensor info #{index}")
    })?;
    if name.is_empty() {
        return Err(GgufError::EmptyTensorName { index });
    }
    let n_dims = cur.u32(sec)?;
    if n_dims == 0 || n_dims as usize > MAX_DIMS {
        return Err(GgufError::BadDimCount {
            name: name.to_string(),
            n_dims,
        });
    }
    let mut dims_buf = [0u64; MAX_DIMS];
    let dims = &mut dims_buf[..n_dims as usize];
    for d in dims.iter_mut() {
        *d = cur.u64(sec)?;
    }
    let type_id = cur.u32(sec)?;
    let offset = cur.u64(sec)?;
    let dtype = GgmlType::from_id(type_id).map_err(|e| match e {
        TypeIdError::Removed(type_id) => GgufError::RemovedTensorType {
            name: name.to_string(),
            type_id,
        },
        TypeIdError::Unknown(type_id) => GgufError::UnknownTensorType {
            name: name.to_string(),
            type_id,
        },
    })?;
    let (n_elements, n_bytes) = tensor_size(name, dtype, dims)?;
    // `alignment` is a validated non-zero power of two.
    if offset & (alignment - 1) != 0 {
        return Err(GgufError::MisalignedTensor {
            name: name.to_string(),
            offset,
            alignment,
        });
    }
    Ok((
        name,
        TensorInfo {
            name: name.to_string(),
            dtype,
            dims: dims.to_vec(),
            offset,
            n_elements,
            n_bytes,
        },
    ))
}
