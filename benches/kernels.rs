//! Kernel benchmarks (criterion; short measurement times, the machine is shared).
//!
//! Groups (filter with `cargo bench --bench kernels -- <group>/`):
//! - `dot/<type>/<isa>`: 16 weight rows × one activation row of 4096 elements
//!   (`Kernels::dot_rows`), all in cache; throughput in weight elements per second, for every
//!   type and every ISA this CPU has.
//! - `dot_bytes/<type>/<isa>`: the same for the process-wide ISA, as weight bytes per second.
//! - `dot1/<type>/<isa>`: one row of 4096 elements at a time (`Kernels::vec_dot`, the kernels'
//!   one-row case, which `dot_rows` uses only for rows left over after its row groups).
//! - `quantize/<act>/<isa>`: the activation quantizers, f32 elements per second.
//! - `matvec/<cols>x<rows>/<type>/t<threads>`: `matmul` with one token at the shapes and types
//!   of the real models' matrices (ggml dims order: row length x rows), with the process-wide
//!   ISA on a 1- and a 2-thread rayon pool; weight bytes per second.
//! - `matmul/<cols>x<rows>x128/<type>/t<threads>`: `matmul` with 128 tokens (prompt
//!   processing), multiply-adds per second.
//! - `membw/t<threads>`: reading a 256 MiB buffer in 1 MiB pieces spread over the pool,
//!   with 256-bit loads, bytes per second (the ceiling for matrices that do not fit in cache).

// The tests' seeded generator (splitmix64).
#[allow(dead_code)]
#[path = "../tests/common/rng.rs"]
mod rng;
use rng::Rng;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kiln::GgmlType;
use kiln::kernels::{self, Kernels, MatMulScratch, QMatrix};

const TYPES: [GgmlType; 15] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::F32,
];

/// A realistic quantized matrix: random f32 weights quantized with the reference quantizer.
fn quantized(t: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let rb = t.bytes_for(cols as u64).unwrap() as usize;
    let mut out = vec![0u8; rows * rb];
    let mut row = vec![0.0f32; cols];
    for o in out.chunks_exact_mut(rb) {
        row.iter_mut().for_each(|v| *v = rng.f32() * 0.05);
        kiln::quant::quantize_row_ref(t, &row, o).unwrap();
    }
    out
}

fn bench_dot(c: &mut Criterion) {
    // 16 weight rows of 4096 elements against one activation row: at most 256 KiB of weights
    // (F32), so everything is in L1/L2, and the kernel loop is entered once per 16 rows.
    const N: usize = 4096;
    const ROWS: usize = 16;
    let mut rng = Rng(1);
    let x: Vec<f32> = (0..N).map(|_| rng.f32()).collect();
    let best = kernels::isa();
    for (group, bytes) in [("dot", false), ("dot_bytes", true)] {
        let mut g = c.benchmark_group(group);
        for t in TYPES {
            let w = quantized(t, ROWS, N, &mut rng);
            let act = kernels::vec_dot_type(t);
            g.throughput(if bytes {
                Throughput::Bytes(w.len() as u64)
            } else {
                Throughput::Elements((ROWS * N) as u64)
            });
            for isa in kernels::available_isas() {
                // Bytes per second: only for the process-wide ISA (it is the same measurement).
                if bytes && isa != best {
                    continue;
                }
                let k = Kernels::for_isa(isa).unwrap();
                let mut xq = vec![0u8; act.bytes_for(N as u64).unwrap() as usize];
                k.quantize_row_act(act, &x, &mut xq).unwrap();
                let mut out = [0.0f32; ROWS];
                g.bench_function(BenchmarkId::new(format!("{t:?}"), isa), |b| {
                    b.iter(|| {
                        k.dot_rows(t, N, black_box(&w), black_box(&xq), &mut out)
                            .unwrap();
                        black_box(&out);
                    })
                });
            }
        }
        g.finish();
    }
}

fn bench_dot_one(c: &mut Criterion) {
    const N: usize = 4096;
    let mut rng = Rng(4);
    let x: Vec<f32> = (0..N).map(|_| rng.f32()).collect();
    let mut g = c.benchmark_group("dot1");
    g.throughput(Throughput::Elements(N as u64));
    for t in TYPES {
        let w = quantized(t, 1, N, &mut rng);
        let act = kernels::vec_dot_type(t);
        for isa in kernels::available_isas() {
            let k = Kernels::for_isa(isa).unwrap();
            let mut xq = vec![0u8; act.bytes_for(N as u64).unwrap() as usize];
            k.quantize_row_act(act, &x, &mut xq).unwrap();
            g.bench_function(BenchmarkId::new(format!("{t:?}"), isa), |b| {
                b.iter(|| k.vec_dot(t, N, black_box(&w), black_box(&xq)).unwrap())
            });
        }
    }
    g.finish();
}

fn bench_quantize(c: &mut Criterion) {
    const N: usize = 4096;
    let mut rng = Rng(2);
    let x: Vec<f32> = (0..N).map(|_| rng.f32()).collect();
    let mut g = c.benchmark_group("quantize");
    g.throughput(Throughput::Elements(N as u64));
    for act in [
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q8_K,
        GgmlType::F16,
        GgmlType::BF16,
    ] {
        let mut out = vec![0u8; act.bytes_for(N as u64).unwrap() as usize];
        for isa in kernels::available_isas() {
            let k = Kernels::for_isa(isa).unwrap();
            g.bench_function(BenchmarkId::new(format!("{act:?}"), isa), |b| {
                b.iter(|| k.quantize_row_act(act, black_box(&x), &mut out).unwrap())
            });
        }
    }
    g.finish();
}

fn bench_matvec(c: &mut Criterion) {
    // (cols, rows, types), named in ggml's dims order `ne0 x ne1` = row length x rows, with the
    // types they have in SmolLM2-135M Q4_1 (ffn_up/gate 576x1536, ffn_down 1536x576, output
    // 576x49152) and Gemma-3-270M Q4_K_M (ffn_up/gate 640x2048 Q5_0, ffn_down 2048x640
    // Q4_K/Q6_K, output 640x262144); 640x1024 Q8_0 is the output layer's row length in a
    // matrix that fits in L2 (the one-token kernel's speed without waiting for memory).
    let shapes: &[(usize, usize, &[GgmlType])] = &[
        (576, 1536, &[GgmlType::Q4_1]),
        (1536, 576, &[GgmlType::Q4_1]),
        (640, 2048, &[GgmlType::Q5_0]),
        (2048, 640, &[GgmlType::Q4_K, GgmlType::Q6_K]),
        (576, 49152, &[GgmlType::Q8_0]),
        (640, 1024, &[GgmlType::Q8_0]),
        (640, 262144, &[GgmlType::Q8_0]),
    ];
    let pools: Vec<(usize, rayon::ThreadPool)> = [1, 2]
        .into_iter()
        .map(|t| {
            (
                t,
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap(),
            )
        })
        .collect();
    let mut rng = Rng(3);
    let mut g = c.benchmark_group("matvec");
    for &(cols, rows, types) in shapes {
        let x: Vec<f32> = (0..cols).map(|_| rng.f32()).collect();
        let mut out = vec![0.0f32; rows];
        for &t in types {
            let data = quantized(t, rows, cols, &mut rng);
            let w = QMatrix::new(t, rows, cols, &data).unwrap();
            g.throughput(Throughput::Bytes(data.len() as u64));
            for (threads, pool) in &pools {
                let mut scratch = MatMulScratch::new();
                g.bench_function(
                    BenchmarkId::new(format!("{cols}x{rows}/{t:?}"), format!("t{threads}")),
                    |b| {
                        pool.install(|| {
                            b.iter(|| {
                                kernels::matmul(&w, black_box(&x), 1, &mut out, &mut scratch)
                                    .unwrap()
                            })
                        })
                    },
                );
            }
        }
    }
    g.finish();
}

/// XOR of the 64-bit words of `c` (the memory bandwidth bench's work: one load per 8 bytes,
/// a SIMD XOR per 32 where the CPU has AVX2, four independent accumulators).
fn xor_words(c: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected.
        return unsafe { xor_words_avx2(c) };
    }
    let mut s = [0u64; 4];
    for q in c.chunks_exact(4) {
        for k in 0..4 {
            s[k] ^= q[k];
        }
    }
    s[0] ^ s[1] ^ s[2] ^ s[3]
}

/// [`xor_words`] with 256-bit loads, 128 bytes per step.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn xor_words_avx2(c: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_si256(); 4];
    let (steps, _) = c.as_chunks::<16>();
    for q in steps {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: `q` holds 16 words = 128 bytes; this reads words 4k..4k + 4.
            let v = unsafe { _mm256_loadu_si256(q.as_ptr().add(4 * k).cast()) };
            *a = _mm256_xor_si256(*a, v);
        }
    }
    let v = _mm256_xor_si256(
        _mm256_xor_si256(acc[0], acc[1]),
        _mm256_xor_si256(acc[2], acc[3]),
    );
    let mut w = [0u64; 4];
    // SAFETY: `w` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(w.as_mut_ptr().cast(), v) };
    w[0] ^ w[1] ^ w[2] ^ w[3]
}

fn bench_matmul(c: &mut Criterion) {
    // Prompt processing: `matmul` with 128 tokens at (cols, rows, type) of SmolLM2's ffn_up,
    // Gemma 3's ffn_down (Q4_K or Q6_K), ffn_gate/up (Q5_0) and attn_q (Q8_0 in some layers);
    // throughput in multiply-adds (rows x cols x tokens) per second.
    const TOKENS: usize = 128;
    let shapes: &[(usize, usize, GgmlType)] = &[
        (576, 1536, GgmlType::Q4_1),
        (2048, 640, GgmlType::Q4_K),
        (2048, 640, GgmlType::Q6_K),
        (640, 2048, GgmlType::Q5_0),
        (640, 1024, GgmlType::Q8_0),
        (640, 1024, GgmlType::Q4_0),
    ];
    let pools: Vec<(usize, rayon::ThreadPool)> = [1, 2]
        .into_iter()
        .map(|t| {
            (
                t,
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap(),
            )
        })
        .collect();
    let mut rng = Rng(5);
    let mut g = c.benchmark_group("matmul");
    for &(cols, rows, t) in shapes {
        let x: Vec<f32> = (0..cols * TOKENS).map(|_| rng.f32()).collect();
        let mut out = vec![0.0f32; rows * TOKENS];
        let data = quantized(t, rows, cols, &mut rng);
        let w = QMatrix::new(t, rows, cols, &data).unwrap();
        g.throughput(Throughput::Elements((rows * cols * TOKENS) as u64));
        for (threads, pool) in &pools {
            let mut scratch = MatMulScratch::new();
            g.bench_function(
                BenchmarkId::new(
                    format!("{cols}x{rows}x{TOKENS}/{t:?}"),
                    format!("t{threads}"),
                ),
                |b| {
                    pool.install(|| {
                        b.iter(|| {
                            kernels::matmul(&w, black_box(&x), TOKENS, &mut out, &mut scratch)
                                .unwrap()
                        })
                    })
                },
            );
        }
    }
    g.finish();
}

fn bench_membw(c: &mut Criterion) {
    // 256 MiB (eight times this machine's L3), read in 1 MiB pieces spread over the pool, each
    // read sequentially with SIMD loads: the ceiling for a matrix that does not fit in cache.
    const BYTES: usize = 256 << 20;
    const PIECE: usize = (1 << 20) / 8;
    let buf: Vec<u64> = (0..BYTES / 8).map(|i| i as u64).collect();
    let mut g = c.benchmark_group("membw");
    g.throughput(Throughput::Bytes(BYTES as u64));
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        g.bench_function(BenchmarkId::from_parameter(format!("t{threads}")), |b| {
            pool.install(|| {
                b.iter(|| {
                    use rayon::prelude::*;
                    black_box(&buf)
                        .par_chunks(PIECE)
                        .map(xor_words)
                        .reduce(|| 0, |a, b| a ^ b)
                })
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(800))
        .sample_size(10)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_dot, bench_dot_one, bench_quantize, bench_matvec, bench_matmul, bench_membw
}
criterion_main!(benches);
