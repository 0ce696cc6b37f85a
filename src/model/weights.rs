//! Binding weights by GGUF tensor name: presence, shape and type checked; nothing large copied.
//!
//! A [`MatWeight`] records a matrix's type, shape and the byte range of its data in the model
//! file; the forward pass turns it into a [`QMatrix`] over the mapped bytes on use. Only small
//! vectors (norm weights, RoPE factors) are copied out as `f32`.

use std::ops::Range;

use half::f16;

use crate::GgmlType;
use crate::gguf::Gguf;
use crate::kernels::QMatrix;
use crate::quant::QuantError;

use super::ModelError;

/// A weight matrix in the model file: `rows` rows of `cols` elements of `dtype`
/// (GGUF dims `[cols, rows]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatWeight {
    /// The GGUF tensor name.
    pub name: String,
    /// Element type.
    pub dtype: GgmlType,
    /// Number of rows (output features).
    pub rows: usize,
    /// Elements per row (input features).
    pub cols: usize,
    /// Where the data lies in the file's bytes.
    pub(crate) range: Range<usize>,
    /// Bytes per row.
    pub(crate) row_bytes: usize,
}

impl MatWeight {
    /// The matrix over the file's bytes.
    pub(crate) fn qmatrix<'b>(&self, file: &'b [u8]) -> Result<QMatrix<'b>, QuantError> {
        QMatrix::new(self.dtype, self.rows, self.cols, &file[self.range.clone()])
    }

    /// The bytes of row `i` (`i < rows`).
    pub(crate) fn row<'b>(&self, file: &'b [u8], i: usize) -> &'b [u8] {
        let start = self.range.start + i * self.row_bytes;
        &file[start..start + self.row_bytes]
    }
}

/// Element types the matrix kernels multiply with (ggml's types with a `vec_dot`).
pub fn is_matmul_type(t: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        t,
        F32 | F16
            | Q4_0
            | Q4_1
            | Q5_0
            | Q5_1
            | Q8_0
            | Q2_K
            | Q3_K
            | Q4_K
            | Q5_K
            | Q6_K
            | IQ4_NL
            | IQ4_XS
    )
}

/// Looks tensors up by name and checks them against the shapes the architecture expects.
pub(crate) struct Binder<'g, 'a> {
    g: &'g Gguf<'a>,
    /// Address and length of the file's bytes, to turn tensor slices into ranges.
    base: usize,
    len: usize,
}

impl<'g, 'a> Binder<'g, 'a> {
    /// A binder over a parsed file whose bytes are `file`.
    pub(crate) fn new(g: &'g Gguf<'a>, file: &[u8]) -> Self {
        Binder {
            g,
            base: file.as_ptr() as usize,
            len: file.len(),
        }
    }

    /// The dims of a tensor, if present.
    pub(crate) fn dims(&self, name: &str) -> Option<Vec<u64>> {
        self.g.tensor(name).map(|t| t.dims().to_vec())
    }

    /// A required matrix of `rows x cols`.
    pub(crate) fn matrix(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<MatWeight, ModelError> {
        self.matrix_opt(name, rows, cols)?
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))
    }

    /// An optional matrix of `rows x cols`: absent is `None`, present but wrong is an error.
    pub(crate) fn matrix_opt(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Option<MatWeight>, ModelError> {
        let Some(t) = self.g.tensor(name) else {
            return Ok(None);
        };
        check_shape(name, t.dims(), &[cols as u64, rows as u64])?;
        let dtype = t.dtype();
        if !is_matmul_type(dtype) {
            return Err(ModelError::TensorType {
                name: name.to_string(),
                dtype,
            });
        }
        let row_bytes = dtype
            .bytes_for(cols as u64)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| ModelError::TensorShape {
                name: name.to_string(),
                expected: format!(
                    "rows that are whole {dtype} blocks ({} elements)",
                    dtype.block_size()
                ),
                actual: format!("{cols} elements per row"),
            })?;
        let range = self.range_of(name, t.data())?;
        let want = row_bytes.checked_mul(rows);
        if want != Some(range.len()) {
            return Err(ModelError::TensorShape {
                name: name.to_string(),
                expected: format!("{rows} rows of {row_bytes} bytes"),
                actual: format!("{} bytes", range.len()),
            });
        }
        Ok(Some(MatWeight {
            name: name.to_string(),
            dtype,
            rows,
            cols,
            range,
            row_bytes,
        }))
    }

    /// A required vector of `len` elements (`f32` or `f16`), copied as `f32`.
    pub(crate) fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
        self.vector_opt(name, len)?
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))
    }

    /// An optional vector of `len` elements, copied as `f32`.
    pub(crate) fn vector_opt(
        &self,
        name: &str,
        len: usize,
    ) -> Result<Option<Vec<f32>>, ModelError> {
        let Some(t) = self.g.tensor(name) else {
            return Ok(None);
        };
        check_shape(name, t.dims(), &[len as u64])?;
        let data = t.data();
        let out: Vec<f32> = match t.dtype() {
            GgmlType::F32 if data.len() == len * 4 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            GgmlType::F16 if data.len() == len * 2 => data
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            GgmlType::F32 | GgmlType::F16 => {
                return Err(ModelError::TensorShape {
                    name: name.to_string(),
                    expected: format!("{len} elements"),
                    actual: format!("{} bytes", data.len()),
                });
            }
            dtype => {
                return Err(ModelError::TensorType {
                    name: name.to_string(),
                    dtype,
                });
            }
        };
        if out.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::InvalidTensor {
                name: name.to_string(),
                reason: "non-finite value".into(),
            });
        }
        Ok(Some(out))
    }

    /// The byte range of a tensor's data within the file.
    fn range_of(&self, name: &str, data: &[u8]) -> Result<Range<usize>, ModelError> {
        let start = (data.as_ptr() as usize).wrapping_sub(self.base);
        match start.checked_add(data.len()) {
            Some(end) if start <= self.len && end <= self.len => Ok(start..end),
            _ => Err(ModelError::InvalidTensor {
                name: name.to_string(),
                reason: "data is not inside the model file".into(),
            }),
        }
    }
}

/// Checks dims against the expected shape (trailing dims of 1 are allowed).
fn check_shape(name: &str, dims: &[u64], want: &[u64]) -> Result<(), ModelError> {
    let trimmed = {
        let mut d = dims;
        while d.len() > want.len() && d.last() == Some(&1) {
            d = &d[..d.len() - 1];
        }
        d
    };
    if trimmed != want {
        return Err(ModelError::TensorShape {
            name: name.to_string(),
            expected: format!("{want:?}"),
            actual: format!("{dims:?}"),
        });
    }
    Ok(())
}
