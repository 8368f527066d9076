//! Hot numeric kernels in a crate of their own, so that the dev profile can build them
//! optimized (like candle's crates, root Cargo.toml) while the operators stay quick to build:
//! at the operators' opt-level 1 the Q8_0 product's iterator and pointer checks are not
//! inlined and it ran ~10x slower than candle's kernel it replaces, which made the model
//! tests of an AVX2 CI machine run past CI's limit.

pub mod q8gemm;
