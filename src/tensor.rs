//! `TensorView`: a tensor's name, type, shape and bytes, borrowed from the file (zero copy).

use std::fmt;

use crate::dtype::GgmlType;
use crate::gguf::{GgufError, MAX_DIMS};

/// A tensor borrowed from a GGUF file (or any byte buffer): name, element type, shape and the
/// raw (possibly quantized) bytes. Cheap to copy.
///
/// Shape invariants (checked when the view is made): 1 to [`MAX_DIMS`] non-zero dims;
/// `dims[0]` (the row length) is a whole number of blocks of `dtype`; `data` is exactly the
/// bytes those dims need, `n_rows()` rows of `row_bytes()` bytes each, row-major.
#[derive(Clone, Copy)]
pub struct TensorView<'a> {
    name: &'a str,
    dtype: GgmlType,
    dims: [u64; MAX_DIMS],
    n_dims: u8,
    row_len: usize,
    n_rows: usize,
    row_bytes: usize,
    data: &'a [u8],
}

impl fmt::Debug for TensorView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TensorView")
            .field("name", &self.name)
            .field("dtype", &self.dtype)
            .field("dims", &self.dims())
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl<'a> TensorView<'a> {
    /// A view over `data`, checking that `dims` and `dtype` describe exactly `data.len()`
    /// bytes (errors: [`GgufError::BadDimCount`], [`GgufError::ZeroDim`],
    /// [`GgufError::RowNotBlockMultiple`], [`GgufError::SizeOverflow`],
    /// [`GgufError::DataSizeMismatch`]).
    pub fn new(
        name: &'a str,
        dtype: GgmlType,
        dims: &[u64],
        data: &'a [u8],
    ) -> Result<Self, GgufError> {
        let (n_elements, n_bytes) = crate::gguf::tensor_size_checked(name, dtype, dims)?;
        if n_bytes != data.len() as u64 {
            return Err(GgufError::DataSizeMismatch {
                name: name.to_string(),
                expected: n_bytes,
                actual: data.len() as u64,
            });
        }
        Ok(Self::from_validated(name, dtype, dims, n_elements, data))
    }

    /// A view whose shape the caller has already validated with the GGUF size checks
    /// (`dims` well-formed for `dtype`, `n_elements` their product fitting in usize, `data` of
    /// the exact size).
    pub(crate) fn from_validated(
        name: &'a str,
        dtype: GgmlType,
        dims: &[u64],
        n_elements: u64,
        data: &'a [u8],
    ) -> Self {
        let mut d = [1u64; MAX_DIMS];
        d[..dims.len()].copy_from_slice(dims);
        // Validated: n_elements fits in usize and dims[0] divides it; dims[0] >= 1.
        let row_len = dims[0] as usize;
        let n_rows = (n_elements / dims[0]) as usize;
        let row_bytes = data.len() / n_rows;
        TensorView {
            name,
            dtype,
            dims: d,
            n_dims: dims.len() as u8,
            row_len,
            n_rows,
            row_bytes,
            data,
        }
    }

    /// The tensor's name, verbatim from the file.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Element type.
    pub fn dtype(&self) -> GgmlType {
        self.dtype
    }

    /// Shape, `dims()[0]` = row length (1 to 4 entries).
    pub fn dims(&self) -> &[u64] {
        &self.dims[..self.n_dims as usize]
    }

    /// The raw bytes: `[n_rows][row_bytes]`.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Elements per row (`dims()[0]`).
    pub fn row_len(&self) -> usize {
        self.row_len
    }

    /// Number of rows (product of `dims()[1..]`).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// Total number of elements.
    pub fn n_elements(&self) -> usize {
        self.row_len * self.n_rows
    }

    /// Row `i`'s bytes (`row_bytes()` long).
    ///
    /// # Panics
    /// If `i >= n_rows()`; use [`get_row`](Self::get_row) for indices from untrusted input.
    pub fn row(&self, i: usize) -> &'a [u8] {
        match self.get_row(i) {
            Some(r) => r,
            None => panic!(
                "row {i} out of range for tensor '{}' with {} rows",
                self.name, self.n_rows
            ),
        }
    }

    /// Row `i`'s bytes, or `None` if `i >= n_rows()`.
    pub fn get_row(&self, i: usize) -> Option<&'a [u8]> {
        if i >= self.n_rows {
            return None;
        }
        // i < n_rows and n_rows * row_bytes == data.len(), so neither overflows.
        let start = i * self.row_bytes;
        self.data.get(start..start + self.row_bytes)
    }
}
