//! SIMD dot products and activation quantizers, chosen once per process
//! (scalar | avx2 | avx512 | avx512-vnni | neon | neon-dotprod).
