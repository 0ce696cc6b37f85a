//! Matrix × activations: the entry point the model calls for every weight matrix.
//!
//! `out[t][r] = dot(W row r, quantize(x[t]))`. The activations are quantized once per call into
//! a reusable [`MatMulScratch`]; the weight rows are split into chunks spread over the current
//! rayon pool. With several tokens, a chunk is worked through in tiles of 16 weight rows (kept
//! in L1; 64 for the 32-element formats, whose batch kernels prepare per call what each
//! token's blocks need) by up to 64 tokens (their quantized activations stay in L2), each
//! tile's results going through a stack buffer into `out`. Every output element is one call of one
//! kernel (a fixed sequential reduction), so the result is bit-identical for any number of
//! threads and any chunking.

use rayon::prelude::*;

use super::{DotRowsFn, Kernels, row_bytes, try_vec_dot_type};
use crate::dtype::GgmlType;
use crate::quant::QuantError;

/// A quantized weight matrix: `rows` rows of `cols` elements of `dtype`, row-major, rows back
/// to back in `data` (`[rows][dtype.bytes_for(cols)]`, any alignment). This is ggml's layout for
/// a 2-D tensor with `ne[0] = cols` (a GGUF tensor's `dims[0]`) and `ne[1] = rows`.
#[derive(Clone, Copy, Debug)]
pub struct QMatrix<'a> {
    /// Element type of the weights.
    pub dtype: GgmlType,
    /// Number of rows (output features).
    pub rows: usize,
    /// Elements per row (input features).
    pub cols: usize,
    /// The rows' bytes.
    pub data: &'a [u8],
}

impl<'a> QMatrix<'a> {
    /// A matrix view, checked: kiln has a dot kernel for `dtype`, `cols` is whole blocks, and
    /// `data` is exactly `rows` rows.
    pub fn new(
        dtype: GgmlType,
        rows: usize,
        cols: usize,
        data: &'a [u8],
    ) -> Result<Self, QuantError> {
        let m = QMatrix {
            dtype,
            rows,
            cols,
            data,
        };
        m.row_bytes()?;
        Ok(m)
    }

    /// Bytes per row, after checking the whole matrix (the fields are public, so [`matmul`]
    /// checks again).
    pub fn row_bytes(&self) -> Result<usize, QuantError> {
        if try_vec_dot_type(self.dtype).is_none() {
            return Err(QuantError::Unsupported { dtype: self.dtype });
        }
        let rb = row_bytes(self.dtype, self.cols)?;
        let expected = rb.checked_mul(self.rows);
        if expected != Some(self.data.len()) {
            return Err(QuantError::BufferSize {
                dtype: self.dtype,
                buffer: "matrix data",
                n: self.cols,
                expected: expected.unwrap_or(usize::MAX),
                actual: self.data.len(),
            });
        }
        Ok(rb)
    }

    /// Row `i`'s bytes, or `None` if out of range (or the matrix is inconsistent).
    pub fn row(&self, i: usize) -> Option<&'a [u8]> {
        let rb = self.row_bytes().ok()?;
        self.data.get(i.checked_mul(rb)?..(i + 1).checked_mul(rb)?)
    }
}

/// Buffers [`matmul`] reuses between calls: once they have grown to the largest shape seen,
/// a call allocates nothing.
#[derive(Debug, Default)]
pub struct MatMulScratch {
    /// Quantized activations: `[n_tokens][act row bytes]`.
    act: Vec<u8>,
}

impl MatMulScratch {
    /// Empty scratch; it grows on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Grows `v` to at least `n` elements (never shrinks, so a warm scratch never reallocates).
fn ensure_len<T: Copy + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

/// Rows and tokens of one tile of the `n_tokens > 1` path: the kernel dots `SUB_ROWS` weight
/// rows (kept in L1) with up to `TILE_TOKENS` activation rows (in L2), into a stack buffer.
const SUB_ROWS: usize = 16;
const TILE_TOKENS: usize = 64;
/// `SUB_ROWS` for the 32-element formats: their batch kernels prepare each activation row's
/// block scales once per call and each weight row's blocks once per call, so more rows per
/// call share the first (the weight rows are still worked through a few at a time).
const SUB_ROWS_LEGACY: usize = 64;

/// `out` as a raw pointer that parallel tasks share; each task writes only the elements of its
/// own rows (see the `SAFETY` comment at the write).
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the pointer is only used for writes to disjoint elements by the tasks of one
// `matmul` call, which all finish before `matmul` returns (and before `out` is used again).
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so closures capture the `Sync` wrapper, not the raw field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Rows per parallel work item: about 4 chunks per thread for balance, at least 16 rows so
/// the scheduling cost stays small next to the work, at most 256.
fn chunk_rows(rows: usize, threads: usize) -> usize {
    let per = rows.div_ceil(threads.max(1) * 4);
    per.clamp(16, 256).next_multiple_of(8)
}

/// `out[t][r] = Σ_c W[r][c] · x[t][c]` with the process-wide kernels (see [`Kernels::matmul`]).
pub fn matmul(
    w: &QMatrix<'_>,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
    scratch: &mut MatMulScratch,
) -> Result<(), QuantError> {
    Kernels::get().matmul(w, x, n_tokens, out, scratch)
}

impl Kernels {
    /// `out[t][r] = Σ_c W[r][c] · x[t][c]`: `x` is `[n_tokens][w.cols]` f32, `out` is
    /// `[n_tokens][w.rows]`.
    ///
    /// The activations are quantized to [`super::vec_dot_type`]`(w.dtype)` once, into
    /// `scratch`; rows are split over the current rayon pool (wrap the call in
    /// `pool.install(..)` to choose the pool). Bit-identical for any thread count.
    pub fn matmul(
        &self,
        w: &QMatrix<'_>,
        x: &[f32],
        n_tokens: usize,
        out: &mut [f32],
        scratch: &mut MatMulScratch,
    ) -> Result<(), QuantError> {
        let wrb = w.row_bytes()?;
        let act = try_vec_dot_type(w.dtype).ok_or(QuantError::Unsupported { dtype: w.dtype })?;
        let (Some(_), Some(convert)) = (self.dot_fn(w.dtype), self.converter(act)) else {
            return Err(QuantError::Unsupported { dtype: w.dtype });
        };
        let (rows, cols) = (w.rows, w.cols);
        check_f32_len("x", cols, n_tokens, x.len())?;
        check_f32_len("out", rows, n_tokens, out.len())?;
        if n_tokens == 0 || rows == 0 {
            return Ok(());
        }
        if cols == 0 {
            out.fill(0.0);
            return Ok(());
        }
        let arb = row_bytes(act, cols)?;

        // 1. Quantize every token's activations once.
        let act_len = arb.checked_mul(n_tokens).ok_or(QuantError::RowLength {
            dtype: act,
            n: cols,
            block_size: act.block_size(),
        })?;
        ensure_len(&mut scratch.act, act_len);
        let acts = &mut scratch.act[..act_len];
        let convert_rows = |(xr, ar): (&[f32], &mut [u8])| {
            // SAFETY: a `Kernels` value exists only for an ISA this CPU supports; the lengths
            // are whole blocks (`row_bytes` above).
            unsafe { convert(xr, ar) }
        };
        if n_tokens > 1 && rayon::current_num_threads() > 1 {
            x.par_chunks(cols)
                .zip(acts.par_chunks_mut(arb))
                .for_each(convert_rows);
        } else {
            x.chunks(cols)
                .zip(acts.chunks_mut(arb))
                .for_each(convert_rows);
        }
        let acts = &scratch.act[..act_len];

        // 2. Dot every row with every token, rows in parallel chunks, with the kernel of the
        //    code path llama.cpp takes for this matrix and batch (see `Path`). Token ranges
        //    are contiguous in `acts` and `out`.
        let (n_first, first, rest) = Path::plan(w.dtype, rows, n_tokens);
        for (range, path) in [(0..n_first, first), (n_first..n_tokens, rest)] {
            if range.is_empty() {
                continue;
            }
            let dot = self
                .dot_for(w.dtype, path)
                .ok_or(QuantError::Unsupported { dtype: w.dtype })?;
            dot_tokens(
                (dot, self.stream_for(w.dtype, path)),
                Scatter::for_isa(self.isa),
                w,
                wrb,
                &acts[range.start * arb..range.end * arb],
                arb,
                range.len(),
                &mut out[range.start * rows..range.end * rows],
            );
        }
        Ok(())
    }

    /// The streaming one-token kernel for weights `dtype` on `path` (`StreamKernels`), if the
    /// table has one: it prefetches the rows ahead of itself, so it is given a whole chunk.
    fn stream_for(&self, dtype: GgmlType, path: Path) -> Option<DotRowsFn> {
        let s = self.stream.as_ref().filter(|_| path == Path::VecDot)?;
        Some(match dtype {
            GgmlType::Q4_0 => s.q4_0,
            GgmlType::Q4_1 => s.q4_1,
            GgmlType::Q5_0 => s.q5_0,
            GgmlType::Q5_1 => s.q5_1,
            GgmlType::Q8_0 => s.q8_0,
            _ => return None,
        })
    }

    /// The dot kernel for weights `dtype` on `path`: the table's per-path kernel where the
    /// path rounds differently from `vec_dot`, else the type's `vec_dot` kernel.
    fn dot_for(&self, dtype: GgmlType, path: Path) -> Option<DotRowsFn> {
        let p = &self.paths;
        Some(match (dtype, path) {
            (GgmlType::Q4_K, Path::Q4K8x8Gemv) => p.q4_k_gemv,
            (GgmlType::Q4_K, Path::Q4K8x8Gemm) => p.q4_k_gemm,
            (GgmlType::Q4_K, Path::Tiled) => p.q4_k_tiled,
            (GgmlType::Q5_K, Path::Tiled) => p.q5_k_tiled,
            (GgmlType::Q6_K, Path::Tiled) => p.q6_k_tiled,
            (GgmlType::IQ4_NL, Path::TinyBlas) => p.iq4_nl_tinyblas,
            _ => return self.dot_fn(dtype),
        })
    }
}

/// Which of llama.cpp's CPU code paths (llama.cpp 0c1e570, x86 AVX-512 build, default
/// settings) computes a weight matrix's product with a batch, and so how each result is
/// rounded. kiln reproduces the choice so that its logits equal llama.cpp's bit for bit.
///
/// llama.cpp's `ggml_compute_forward_mul_mat` tries, in order: the repacked-weight kernels
/// (`repack.cpp`; on AVX2/AVX-512 only Q4_0, Q4_K, IQ4_NL, MXFP4 with a row count that is a
/// multiple of 8, and Q2_K on AVX-512, are repacked at load), the tiled K-quant matmul
/// (`tiled/`, batches of at least 8 tokens, not repacked: Q2_K..Q6_K, IQ4_XS, IQ2/IQ3/IQ1),
/// llamafile's tinyBLAS (`sgemm.cpp`, batches of at least 2 tokens: F32, F16, BF16, Q8_0,
/// Q4_0, Q5_0, IQ4_NL), and finally `vec_dot` per (row, token). For Q8_0 and Q5_0, tinyBLAS
/// rounds exactly like `vec_dot` (eight lanes of four products, one fused multiply-add per
/// block and lane, `hsum_float_8`), so they need no separate path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// `ggml_vec_dot_<w>_<act>` (or a kernel that rounds the same).
    VecDot,
    /// Repacked Q4_K (`q4_K_8x8_q8_K`), `ggml_gemv_q4_K_8x8_q8_K`: the last `n % 4` tokens.
    Q4K8x8Gemv,
    /// Repacked Q4_K, `ggml_gemm_q4_K_8x8_q8_K`: the first `n − n % 4` tokens (groups of 4).
    Q4K8x8Gemm,
    /// The tiled K-quant matmul: batches of 8 or more tokens, weights not repacked.
    Tiled,
    /// llamafile's tinyBLAS: batches of 2 or more tokens (only listed for the types where it
    /// rounds differently from `vec_dot`).
    TinyBlas,
}

impl Path {
    /// For a matrix of `dtype` with `rows` rows and a batch of `n` tokens: the paths of tokens
    /// `0..n_first` and `n_first..n`, as `(n_first, first, rest)`.
    ///
    /// Only the types whose arithmetic kiln reproduces have paths other than `VecDot`
    /// (Q4_K, Q5_K, Q6_K, IQ4_NL); see the per-type notes in `scalar.rs`.
    pub(crate) fn plan(dtype: GgmlType, rows: usize, n: usize) -> (usize, Path, Path) {
        match dtype {
            // repack.cpp: `cur->ne[1] % 8 == 0` on AVX2; src1 rows in groups of 4 go to the
            // gemm (4x8-interleaved Q8_K activations, same values as the row quantizer), the
            // remaining `n % 4` rows to the gemv.
            GgmlType::Q4_K if rows.is_multiple_of(8) => {
                (n - n % 4, Path::Q4K8x8Gemm, Path::Q4K8x8Gemv)
            }
            // tiled.cpp: `ggml_tiled_min_batch`: `src1->ne[1] >= 8`.
            GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K if n >= 8 => {
                (n, Path::Tiled, Path::Tiled)
            }
            // sgemm.cpp: `n < 2` returns false (vec_dot); IQ4_NL matrices whose row count is a
            // multiple of 8 are repacked instead (`iq4_nl_8x8`, not reproduced yet).
            GgmlType::IQ4_NL if n >= 2 => (n, Path::TinyBlas, Path::TinyBlas),
            _ => (n, Path::VecDot, Path::VecDot),
        }
    }
}

/// `out[t][r] = dot(W row r, acts[t])` for `n_tokens` activation rows (`acts`:
/// `[n_tokens][arb]`, `out`: `[n_tokens][w.rows]`), rows split in chunks over the current rayon
/// pool; each element is one kernel call, so the result does not depend on the chunking. With
/// one token, a chunk is one call of `stream` when the table has one (the kernel prefetches the rows
/// ahead itself), else [`matvec_chunk`]. With several tokens, `scatter` moves each tile's
/// results into `out`.
#[allow(clippy::too_many_arguments)]
fn dot_tokens(
    (dot, stream): (DotRowsFn, Option<DotRowsFn>),
    scatter: Scatter,
    w: &QMatrix<'_>,
    wrb: usize,
    acts: &[u8],
    arb: usize,
    n_tokens: usize,
    out: &mut [f32],
) {
    let rows = w.rows;
    let threads = rayon::current_num_threads();
    let chunk = chunk_rows(rows, threads);
    let parallel = threads > 1 && rows > chunk;
    if n_tokens == 1 {
        let work = |(i, o): (usize, &mut [f32])| {
            let wr = &w.data[i * chunk * wrb..][..o.len() * wrb];
            if let Some(stream) = stream {
                // SAFETY: a `Kernels` value exists only for an ISA this CPU supports; `stream`
                // checks the lengths.
                unsafe { stream(wr, wrb, acts, arb, o, 1) };
            } else {
                matvec_chunk(dot, wr, wrb, acts, arb, o);
            }
        };
        if parallel {
            out.par_chunks_mut(chunk).enumerate().for_each(work);
        } else {
            out.chunks_mut(chunk).enumerate().for_each(work);
        }
        return;
    }
    let optr = OutPtr(out.as_mut_ptr());
    let sub_rows = if w.dtype.block_size() == 32 {
        SUB_ROWS_LEGACY
    } else {
        SUB_ROWS
    };
    let work = |ci: usize| {
        let (r0, r1) = (ci * chunk, ((ci + 1) * chunk).min(rows));
        // SAFETY: `out` has `n_tokens * rows` elements (checked by the caller); `run_chunk`
        // writes only `out[t * rows + r0 + r]` for `t < n_tokens` and `r0 + r < r1 <= rows`;
        // row ranges of different tasks are disjoint, so every element is written by exactly
        // one task, and nothing reads `out` until all tasks are done.
        unsafe {
            run_chunk(
                dot,
                scatter,
                &w.data[r0 * wrb..r1 * wrb],
                wrb,
                acts,
                arb,
                n_tokens,
                sub_rows,
                optr.get().add(r0),
                rows,
            )
        };
    };
    let n_chunks = rows.div_ceil(chunk);
    if parallel {
        (0..n_chunks).into_par_iter().for_each(work);
    } else {
        (0..n_chunks).for_each(work);
    }
}

/// Rows per call of the kernel in the one-token path. Four, not eight: each call is preceded
/// by a burst of prefetches for the rows it reads, and with Gemma 3's 640-column rows a burst
/// for 8 rows (85 lines) measured tg64 about 15% slower on Zen 4 than two bursts for 4 rows
/// (and 16 rows slower still); the kernels' results do not depend on how rows are grouped.
const MATVEC_STEP: usize = 4;
/// How far ahead of the rows being worked on their bytes are prefetched (into L2).
const PREFETCH_BYTES: usize = 8192;

/// One chunk of weight rows (`w`: `[rows][wrb]`) against one activation row, into `out`
/// (`[rows]`), for kernels that do not prefetch (the AVX-512 and AVX2 kernels of the 32-element
/// formats, `StreamKernels`, prefetch inside their block loop instead, a few lines per block:
/// on Zen 4 that streamed Gemma 3's output matrix about 1.4 times as fast as these bursts,
/// which are slower the more lines they ask for at once).
///
/// The kernels walk a group of rows side by side, a few hundred bytes of each: too many short
/// streams for the hardware prefetchers, so a matrix larger than the caches was read at about
/// a third of the memory bandwidth. The rows are therefore handed to the kernel `MATVEC_STEP`
/// at a time, and before each call the cache lines `PREFETCH_BYTES` further on (as many as
/// the call reads) are requested into L2; with that, the one-token path reads as fast as a
/// plain sequential scan. Rows already in cache cost only the prefetch instructions.
fn matvec_chunk(dot: DotRowsFn, w: &[u8], wrb: usize, act: &[u8], arb: usize, out: &mut [f32]) {
    let step = MATVEC_STEP * wrb;
    prefetch_l2(&w[..PREFETCH_BYTES.min(w.len())]);
    for (k, o) in out.chunks_mut(MATVEC_STEP).enumerate() {
        let start = k * step;
        let wr = &w[start..start + o.len() * wrb];
        if let Some(ahead) = w.get(start + PREFETCH_BYTES..) {
            prefetch_l2(&ahead[..wr.len().min(ahead.len())]);
        }
        // SAFETY: a `Kernels` value exists only for an ISA this CPU supports; `dot` checks
        // the lengths.
        unsafe { dot(wr, wrb, act, arb, o, 1) };
    }
}

/// Asks for the cache lines of `bytes` to be brought into L2 (a hint: no effect on results).
#[inline]
fn prefetch_l2(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for p in bytes.iter().step_by(64) {
        // SAFETY: `prefetcht1` only hints the cache and never faults; `p` points into `bytes`.
        // SSE is part of x86-64.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
                (p as *const u8).cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// One chunk of weight rows (`w`: `[rows][wrb]`) against all `n_tokens` activation rows
/// (`acts`: `[n_tokens][arb]`), `sub_rows` rows by `TILE_TOKENS` tokens at a time; the result
/// of row `r` of the chunk and token `t` goes to `out[t * out_stride + r]`.
///
/// # Safety
/// `sub_rows <= SUB_ROWS_LEGACY`; `out` is valid for writes at those indices, for every
/// `r < rows` of `w` and `t < n_tokens`, and nothing else accesses them during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn run_chunk(
    dot: DotRowsFn,
    scatter: Scatter,
    w: &[u8],
    wrb: usize,
    acts: &[u8],
    arb: usize,
    n_tokens: usize,
    sub_rows: usize,
    out: *mut f32,
    out_stride: usize,
) {
    // [sub_rows][TILE_TOKENS] results of one tile.
    let mut tile = [0.0f32; SUB_ROWS_LEGACY * TILE_TOKENS];
    for (si, wsub) in w.chunks(sub_rows * wrb).enumerate() {
        let nr = wsub.len() / wrb;
        let mut t0 = 0;
        while t0 < n_tokens {
            let nt = (n_tokens - t0).min(TILE_TOKENS);
            let xs = &acts[t0 * arb..(t0 + nt) * arb];
            // SAFETY: a `Kernels` value exists only for an ISA this CPU supports; `dot` checks
            // the lengths (`nr` rows, `nt` tokens, stride `nt` in `tile`).
            unsafe { dot(wsub, wrb, xs, arb, &mut tile[..nr * nt], nt) };
            // SAFETY: rows `si * sub_rows + r` (`r < nr`) of the chunk and tokens `t0 + t`
            // (`t < nt`) are in range of `out` (caller's contract); `scatter` was chosen for
            // the ISA of a `Kernels` value, which this CPU supports.
            unsafe {
                scatter.run(
                    &tile[..nr * nt],
                    nr,
                    nt,
                    out.add(t0 * out_stride + si * sub_rows),
                    out_stride,
                )
            };
            t0 += nt;
        }
    }
}

/// Checks that an f32 buffer holds `n_tokens` rows of `len` values (the error counts bytes,
/// as [`QuantError::BufferSize`] does, with `n` the total number of values expected).
fn check_f32_len(
    buffer: &'static str,
    len: usize,
    n_tokens: usize,
    actual: usize,
) -> Result<(), QuantError> {
    let expected = len.checked_mul(n_tokens);
    if expected != Some(actual) {
        let n = expected.unwrap_or(usize::MAX);
        return Err(QuantError::BufferSize {
            dtype: GgmlType::F32,
            buffer,
            n,
            expected: n.saturating_mul(4),
            actual: actual.saturating_mul(4),
        });
    }
    Ok(())
}

/// How [`run_chunk`] moves a tile of results (`[rows][tokens]`) into the token-major `out`:
/// a plain copy either way (no arithmetic), so the choice never changes a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scatter {
    /// One float at a time.
    Scalar,
    /// 8 rows × 8 tokens at a time, transposed in AVX registers.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Scatter {
    /// The scatter for a kernel table of `isa` (every x86 table's CPU has AVX2; the tables
    /// exist only for ISAs this CPU runs, so nothing here asks the CPU).
    pub(crate) fn for_isa(isa: super::Isa) -> Scatter {
        match isa {
            #[cfg(target_arch = "x86_64")]
            super::Isa::Avx2 | super::Isa::Avx512 | super::Isa::Avx512Vnni => Scatter::Avx2,
            _ => Scatter::Scalar,
        }
    }

    /// `out[t * out_stride + r] = tile[r * nt + t]` for `r < nr`, `t < nt` (`tile`:
    /// `[nr][nt]`, exactly `nr * nt` long).
    ///
    /// # Safety
    /// `out` is valid for writes at those indices and nothing else accesses them during the
    /// call; for [`Scatter::Avx2`], the CPU supports AVX2.
    #[inline]
    unsafe fn run(self, tile: &[f32], nr: usize, nt: usize, out: *mut f32, out_stride: usize) {
        assert_eq!(tile.len(), nr * nt, "scatter tile size");
        match self {
            // SAFETY: the caller's contract, AVX2 included.
            #[cfg(target_arch = "x86_64")]
            Scatter::Avx2 => unsafe { scatter_avx2(tile, nr, nt, out, out_stride) },
            // SAFETY: the caller's contract.
            Scatter::Scalar => unsafe { scatter_scalar(tile, nr, 0, nt, 0, nt, out, out_stride) },
        }
    }
}

/// `out[t * out_stride + r] = tile[r * nt + t]` for rows `r0 <= r < nr` and tokens
/// `ta <= t < tb` (`tile`: `[nr][nt]`). Token-major, so that the writes into `out` are runs of
/// consecutive floats rather than one float per row of `out`.
///
/// # Safety
/// As [`Scatter::run`] (without the AVX2 part).
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn scatter_scalar(
    tile: &[f32],
    nr: usize,
    r0: usize,
    nt: usize,
    ta: usize,
    tb: usize,
    out: *mut f32,
    out_stride: usize,
) {
    for t in ta..tb {
        // SAFETY: token `t < nt` and rows `r < nr` are in range (caller's contract).
        let o = unsafe { out.add(t * out_stride) };
        for r in r0..nr {
            // SAFETY: as above.
            unsafe { *o.add(r) = tile[r * nt + t] };
        }
    }
}

/// [`scatter_scalar`] of the whole tile, 8 rows × 8 tokens at a time: eight loads of eight
/// tokens (one per row), an 8 × 8 transpose in registers, eight stores of eight rows (one per
/// token); the rows and tokens past the last whole 8 go one float at a time.
///
/// # Safety
/// As [`Scatter::run`]; the CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scatter_avx2(tile: &[f32], nr: usize, nt: usize, out: *mut f32, out_stride: usize) {
    use std::arch::x86_64::*;
    let (nr8, nt8) = (nr / 8 * 8, nt / 8 * 8);
    // Tokens outermost, so that each token's run of `out` is written front to back.
    for t0 in (0..nt8).step_by(8) {
        for r0 in (0..nr8).step_by(8) {
            // Row `r0 + k`, tokens `t0..t0 + 8`.
            let r: [__m256; 8] = std::array::from_fn(|k| {
                let s = &tile[(r0 + k) * nt + t0..][..8];
                // SAFETY: `s` holds 8 floats; unaligned load.
                unsafe { _mm256_loadu_ps(s.as_ptr()) }
            });
            // `c[l]` is token `t0 + l`, rows `r0..r0 + 8`.
            // SAFETY: AVX2 is enabled in this function.
            let c = unsafe { super::transpose8_ps(r) };
            for (l, v) in c.into_iter().enumerate() {
                // SAFETY: token `t0 + l < nt`, rows `r0..r0 + 8 <= nr` are in range of `out`
                // (caller's contract); unaligned store.
                unsafe { _mm256_storeu_ps(out.add((t0 + l) * out_stride + r0), v) };
            }
        }
    }
    // SAFETY: the caller's contract. The tokens past the last whole 8 (rows `0..nr8`), then the
    // rows past the last whole 8 (every token).
    unsafe {
        scatter_scalar(&tile[..nr8 * nt], nr8, 0, nt, nt8, nt, out, out_stride);
        scatter_scalar(tile, nr, nr8, nt, 0, nt, out, out_stride);
    }
}
