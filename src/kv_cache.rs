//! The key/value cache of one session, stored in `f32`, `f16`, `q8_0` or `q4_0`.
//!
//! Layout: for each layer, `K` is `[n_ctx][n_head_kv]` rows of `head_dim_k` elements in the
//! cache's element type (`V` likewise with `head_dim_v`), so one (position, head) row is a
//! contiguous run of whole blocks that the attention reads directly with
//! [`crate::kernels::vec_dot`] (keys) or dequantizes one row at a time (values).
//!
//! The whole cache is allocated up front with checked sizes and a fallible allocation: a
//! context too large for the machine is a typed error, never an abort.

use crate::GgmlType;
use crate::model::ModelError;
use crate::quant::QuantError;

/// The element types a [`KvCache`] can hold.
pub const KV_TYPES: [GgmlType; 4] = [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0];

/// A per-session key/value cache for every layer of a model.
#[derive(Debug)]
pub struct KvCache {
    dtype: GgmlType,
    n_layer: usize,
    n_ctx: usize,
    n_head_kv: usize,
    head_dim_k: usize,
    head_dim_v: usize,
    /// Bytes of one (position, head) row of K / V.
    k_row: usize,
    v_row: usize,
    /// `[n_layer][n_ctx][n_head_kv][k_row]` bytes (u32 storage keeps f16/f32/block fields aligned).
    k: Vec<u32>,
    /// `[n_layer][n_ctx][n_head_kv][v_row]` bytes.
    v: Vec<u32>,
}

/// Read access to one layer of a [`KvCache`].
#[derive(Clone, Copy, Debug)]
pub struct LayerKv<'a> {
    dtype: GgmlType,
    n_head_kv: usize,
    head_dim_k: usize,
    head_dim_v: usize,
    k_row: usize,
    v_row: usize,
    /// `[n_ctx][n_head_kv][k_row]`
    k: &'a [u8],
    /// `[n_ctx][n_head_kv][v_row]`
    v: &'a [u8],
}

impl KvCache {
    /// Allocates a zeroed cache for `n_ctx` positions.
    ///
    /// Errors: an element type outside [`KV_TYPES`], head sizes that are not whole blocks of
    /// it, a size that overflows, or an allocation the system refuses.
    pub fn new(
        dtype: GgmlType,
        n_layer: usize,
        n_ctx: usize,
        n_head_kv: usize,
        head_dim_k: usize,
        head_dim_v: usize,
    ) -> Result<KvCache, ModelError> {
        if !KV_TYPES.contains(&dtype) {
            return Err(ModelError::UnsupportedKvType(dtype));
        }
        let row = |hd: usize| {
            dtype
                .bytes_for(hd as u64)
                .and_then(|b| usize::try_from(b).ok())
                .filter(|_| hd > 0)
                .ok_or(ModelError::KvHeadSize {
                    dtype,
                    head_dim: hd,
                })
        };
        let k_row = row(head_dim_k)?;
        let v_row = row(head_dim_v)?;
        let k = alloc_zeroed(n_layer, n_ctx, n_head_kv, k_row)?;
        let v = alloc_zeroed(n_layer, n_ctx, n_head_kv, v_row)?;
        Ok(KvCache {
            dtype,
            n_layer,
            n_ctx,
            n_head_kv,
            head_dim_k,
            head_dim_v,
            k_row,
            v_row,
            k,
            v,
        })
    }

    /// The bytes a cache with these dimensions takes, or `None` on overflow.
    pub fn size_bytes(
        dtype: GgmlType,
        n_layer: usize,
        n_ctx: usize,
        n_head_kv: usize,
        head_dim_k: usize,
        head_dim_v: usize,
    ) -> Option<usize> {
        let per = |hd: usize| -> Option<usize> {
            let row = usize::try_from(dtype.bytes_for(hd as u64)?).ok()?;
            n_layer
                .checked_mul(n_ctx)?
                .checked_mul(n_head_kv)?
                .checked_mul(row)
        };
        per(head_dim_k)?.checked_add(per(head_dim_v)?)
    }

    /// The element type.
    pub fn dtype(&self) -> GgmlType {
        self.dtype
    }

    /// Positions the cache holds.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Bytes allocated for keys and values together.
    pub fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * 4
    }

    /// Writes the keys and values of one position of one layer: `k` is `[n_head_kv][head_dim_k]`,
    /// `v` is `[n_head_kv][head_dim_v]`, converted to the cache type (ggml's reference rounding).
    ///
    /// # Panics
    /// If `layer` or `pos` is out of range or the slices have the wrong length (programming
    /// errors: the session checks positions against the context before running a batch).
    pub fn store(
        &mut self,
        layer: usize,
        pos: usize,
        k: &[f32],
        v: &[f32],
    ) -> Result<(), QuantError> {
        assert!(
            layer < self.n_layer && pos < self.n_ctx,
            "kv store out of range"
        );
        assert_eq!(
            k.len(),
            self.n_head_kv * self.head_dim_k,
            "kv store: bad k length"
        );
        assert_eq!(
            v.len(),
            self.n_head_kv * self.head_dim_v,
            "kv store: bad v length"
        );
        let kb = self.n_head_kv * self.k_row;
        let vb = self.n_head_kv * self.v_row;
        let k_start = (layer * self.n_ctx + pos) * kb;
        let v_start = (layer * self.n_ctx + pos) * vb;
        let k_dst = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut self.k)[k_start..k_start + kb];
        for (src, dst) in k
            .chunks_exact(self.head_dim_k)
            .zip(k_dst.chunks_exact_mut(self.k_row))
        {
            convert_row(self.dtype, src, dst)?;
        }
        let v_dst = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut self.v)[v_start..v_start + vb];
        for (src, dst) in v
            .chunks_exact(self.head_dim_v)
            .zip(v_dst.chunks_exact_mut(self.v_row))
        {
            convert_row(self.dtype, src, dst)?;
        }
        Ok(())
    }

    /// Read access to one layer.
    ///
    /// # Panics
    /// If `layer >= n_layer`.
    pub fn layer(&self, layer: usize) -> LayerKv<'_> {
        assert!(layer < self.n_layer, "kv layer out of range");
        let kb = self.n_ctx * self.n_head_kv * self.k_row;
        let vb = self.n_ctx * self.n_head_kv * self.v_row;
        let k = bytemuck::cast_slice::<u32, u8>(&self.k);
        let v = bytemuck::cast_slice::<u32, u8>(&self.v);
        LayerKv {
            dtype: self.dtype,
            n_head_kv: self.n_head_kv,
            head_dim_k: self.head_dim_k,
            head_dim_v: self.head_dim_v,
            k_row: self.k_row,
            v_row: self.v_row,
            k: &k[layer * kb..(layer + 1) * kb],
            v: &v[layer * vb..(layer + 1) * vb],
        }
    }
}

impl<'a> LayerKv<'a> {
    /// The element type.
    pub fn dtype(&self) -> GgmlType {
        self.dtype
    }

    /// Elements per key row.
    pub fn head_dim_k(&self) -> usize {
        self.head_dim_k
    }

    /// Elements per value row.
    pub fn head_dim_v(&self) -> usize {
        self.head_dim_v
    }

    /// The key row of (`pos`, `head`), in the cache type.
    pub fn k_row(&self, pos: usize, head: usize) -> &'a [u8] {
        let i = (pos * self.n_head_kv + head) * self.k_row;
        &self.k[i..i + self.k_row]
    }

    /// The value row of (`pos`, `head`), in the cache type.
    pub fn v_row(&self, pos: usize, head: usize) -> &'a [u8] {
        let i = (pos * self.n_head_kv + head) * self.v_row;
        &self.v[i..i + self.v_row]
    }
}

/// Converts one `f32` row to the cache type as ggml's CPU `from_float` does (llama.cpp
/// copies new keys and values into the cache with it): `f32` copied, `f16` rounded to nearest
/// even, `q8_0` with the activation quantizer (ties to even, like ggml's SIMD
/// `quantize_row_q8_0`), `q4_0` with the reference quantizer (which ggml uses for it).
fn convert_row(dtype: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    match dtype {
        GgmlType::Q8_0 => crate::kernels::quantize_row_act(dtype, src, dst),
        _ => crate::quant::quantize_row_ref(dtype, src, dst),
    }
}

/// A zeroed `u32` buffer holding `n_layer * n_ctx * n_head_kv * row` bytes (rounded up).
fn alloc_zeroed(
    n_layer: usize,
    n_ctx: usize,
    n_head_kv: usize,
    row: usize,
) -> Result<Vec<u32>, ModelError> {
    let bytes = n_layer
        .checked_mul(n_ctx)
        .and_then(|x| x.checked_mul(n_head_kv))
        .and_then(|x| x.checked_mul(row))
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or(ModelError::OutOfMemory {
            what: "KV cache",
            bytes: usize::MAX,
        })?;
    let words = bytes.div_ceil(4);
    let mut v = Vec::new();
    v.try_reserve_exact(words)
        .map_err(|_| ModelError::OutOfMemory {
            what: "KV cache",
            bytes,
        })?;
    v.resize(words, 0);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_read_back() {
        for dtype in KV_TYPES {
            let mut c = KvCache::new(dtype, 2, 4, 2, 32, 64).unwrap();
            let k: Vec<f32> = (0..64).map(|i| (i as f32 - 30.0) * 0.125).collect();
            let v: Vec<f32> = (0..128).map(|i| (i as f32 * 0.01).sin()).collect();
            c.store(1, 3, &k, &v).unwrap();
            let l = c.layer(1);
            let mut back = vec![0.0f32; 32];
            crate::quant::dequantize_row(dtype, l.k_row(3, 1), &mut back).unwrap();
            let tol = match dtype {
                GgmlType::F32 => 0.0,
                GgmlType::F16 => 1e-3,
                GgmlType::Q8_0 => 0.02,
                _ => 0.3,
            };
            for (a, b) in back.iter().zip(&k[32..]) {
                assert!((a - b).abs() <= tol, "{dtype}: {a} vs {b}");
            }
            // other positions and layers stay zero
            assert!(c.layer(0).k_row(3, 1).iter().all(|&b| b == 0));
            assert!(l.v_row(2, 0).iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn rejects_bad_types_and_sizes() {
        assert!(matches!(
            KvCache::new(GgmlType::Q4_K, 1, 1, 1, 256, 256),
            Err(ModelError::UnsupportedKvType(GgmlType::Q4_K))
        ));
        assert!(matches!(
            KvCache::new(GgmlType::Q8_0, 1, 1, 1, 48, 64),
            Err(ModelError::KvHeadSize { .. })
        ));
        assert!(matches!(
            KvCache::new(GgmlType::F32, usize::MAX / 2, 4, 1, 64, 64),
            Err(ModelError::OutOfMemory { .. })
        ));
        // a huge but representable size fails the allocation instead of aborting
        assert!(matches!(
            KvCache::new(GgmlType::F32, 1 << 20, 1 << 20, 1, 64, 64),
            Err(ModelError::OutOfMemory { .. })
        ));
        assert_eq!(
            KvCache::size_bytes(GgmlType::F16, 2, 10, 3, 64, 64),
            Some(2 * 2 * 10 * 3 * 128)
        );
    }
}
