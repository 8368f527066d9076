//! A register-blocked Q8_0 × Q8_0 matrix product for x86 CPUs with AVX2 and no VNNI.
//!
//! On such CPUs candle has no tiled kernel for Q8_0 (its tiles need VNNI dot products) and takes
//! one `vec_dot` per output element: every weight block is loaded once per activation row and
//! its f16 scale converted through a function call each time (a profile of the generate bench
//! at batch 8: 70% in `vec_dot_q8_0_q8_0`, 14% in `f16_to_f32`). Here the weights are unpacked
//! once at load (int8 values, f32 scales) and each weight block loaded into registers serves a
//! tile of [`RM`] activation rows × [`RN`] weight rows.
//!
//! Every output element goes through exactly the arithmetic of candle's `vec_dot_q8_0_q8_0`
//! (the same integer dot per block, `fmadd(d_w * d_x, q, acc)` over the blocks in order, the
//! same horizontal sum), and the activations are quantized like candle's `BlockQ8_0::from_float`,
//! so the products are the same bits as candle's — and the same whatever the tile an element
//! falls in, hence whatever the batch (the engine's batch invariance).

use rayon::prelude::*;

/// Weights per Q8_0 block.
const QK: usize = 32;
/// Activation rows per tile.
const RM: usize = 4;
/// Weight rows per tile.
const RN: usize = 2;
/// Weight rows per parallel task (their blocks stay in L2 while the activation rows pass).
const CHUNK: usize = 64;
/// How far ahead of each weight load (bytes) the kernel asks for the weights it will read next.
/// At batch 1 the product streams the weights once and the CPU's own prefetcher left it at 11 of
/// the 26 GB/s two cores read here (a sum over a 300 MB buffer): with 2 KiB ahead a Gemma-3-270M
/// decode step's products take 17.5 ms, not 25.7 (512 B: 22.7, 1 KiB: 20.6, 4 KiB: 18.1).
/// A prefetch never faults, so running past the end of the matrix is harmless.
const PREFETCH: usize = 2048;

/// Whether this CPU runs the kernel (AVX2 and FMA).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A Q8_0 matrix of `n` rows of `k` weights, unpacked: values row-major, one f32 scale per block.
pub struct Q8Matrix {
    n: usize,
    k: usize,
    qs: Vec<i8>,
    d: Vec<f32>,
}

/// Rows quantized to Q8_0 like candle's `BlockQ8_0::from_float`: per block d = amax / 127
/// (kept as f16, as the block stores it), q = round(x / d).
struct Quantized {
    qs: Vec<i8>,
    d: Vec<f32>,
}

impl Q8Matrix {
    /// From a Q8_0 tensor's bytes (`QTensor::data`): blocks of an f16 scale and 32 int8 values.
    pub fn from_q8_0(bytes: &[u8], n: usize, k: usize) -> Option<Q8Matrix> {
        const BLOCK_BYTES: usize = 2 + QK;
        if k % QK != 0 || bytes.len() != n * k / QK * BLOCK_BYTES {
            return None;
        }
        let mut qs = Vec::with_capacity(n * k);
        let mut d = Vec::with_capacity(n * k / QK);
        for block in bytes.chunks_exact(BLOCK_BYTES) {
            d.push(half::f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32());
            qs.extend(block[2..].iter().map(|&b| b as i8));
        }
        Some(Q8Matrix { n, k, qs, d })
    }

    pub fn rows(&self) -> usize {
        self.n
    }

    /// The matrix's size as Q8_0 blocks (34 bytes per 32 weights), as a GGUF stores it.
    pub fn q8_0_bytes(&self) -> usize {
        self.n * self.k / QK * (2 + QK)
    }

    /// `x` (`m` rows of `k`) times the transposed matrix: `m` rows of `n`. Needs [`available`].
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        assert!(available(), "q8gemm needs AVX2 and FMA");
        assert_eq!(x.len(), m * self.k, "input is not {m} rows of {}", self.k);
        let a = quantize(x, self.k);
        let mut out = vec![0f32; m * self.n];
        let dst = Dst(out.as_mut_ptr());
        let chunks = self.n.div_ceil(CHUNK);
        (0..chunks).into_par_iter().for_each(|c| {
            let cols = c * CHUNK..((c + 1) * CHUNK).min(self.n);
            // SAFETY: the CPU has AVX2 and FMA (asserted above); each task writes only the
            // columns of its own chunk.
            unsafe { self.chunk(&a, m, cols, &dst) };
        });
        out
    }

    /// # Safety
    /// AVX2 and FMA; `dst` holds `m * n` floats and no other task writes columns `cols`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn chunk(&self, a: &Quantized, m: usize, cols: std::ops::Range<usize>, dst: &Dst) {
        let mut i = 0;
        while i < m {
            let rm = (m - i).min(RM);
            let mut j = cols.start;
            while j < cols.end {
                let rn = (cols.end - j).min(RN);
                // SAFETY: as the caller promises; the tile lies inside both operands.
                unsafe {
                    match (rm, rn) {
                        (4, 2) => self.tile::<4, 2>(a, i, j, dst),
                        (4, _) => self.tile::<4, 1>(a, i, j, dst),
                        (3, 2) => self.tile::<3, 2>(a, i, j, dst),
                        (3, _) => self.tile::<3, 1>(a, i, j, dst),
                        (2, 2) => self.tile::<2, 2>(a, i, j, dst),
                        (2, _) => self.tile::<2, 1>(a, i, j, dst),
                        (_, 2) => self.tile::<1, 2>(a, i, j, dst),
                        _ => self.tile::<1, 1>(a, i, j, dst),
                    }
                }
                j += rn;
            }
            i += rm;
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn chunk(&self, _: &Quantized, _: usize, _: std::ops::Range<usize>, _: &Dst) {
        unreachable!("available() is false off x86_64")
    }

    /// Rows `i..i + M` of the activations against weight rows `j..j + N`.
    ///
    /// # Safety
    /// AVX2 and FMA; the tile lies inside both operands and `dst`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const M: usize, const N: usize>(&self, a: &Quantized, i: usize, j: usize, dst: &Dst) {
        use std::arch::x86_64::*;
        let blocks = self.k / QK;
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_ps(); N]; M];
        for b in 0..blocks {
            let mut w = [_mm256_setzero_si256(); N];
            let mut aw = [_mm256_setzero_si256(); N];
            let mut dw = [0f32; N];
            for c in 0..N {
                let row = j + c;
                // SAFETY: row < n and b < blocks: 32 bytes inside `qs`.
                let at = unsafe { self.qs.as_ptr().add((row * blocks + b) * QK) };
                // A hint that never faults; `wrapping_add` keeps the address defined past the end.
                _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(PREFETCH) as *const i8);
                w[c] = unsafe { _mm256_loadu_si256(at as *const __m256i) };
                aw[c] = _mm256_sign_epi8(w[c], w[c]);
                dw[c] = self.d[row * blocks + b];
            }
            for r in 0..M {
                let row = i + r;
                // SAFETY: row < m and b < blocks: 32 bytes inside `a.qs`.
                let x = unsafe {
                    _mm256_loadu_si256(a.qs.as_ptr().add((row * blocks + b) * QK) as *const __m256i)
                };
                let dx = a.d[row * blocks + b];
                for c in 0..N {
                    // candle's mul_sum_i8_pairs_float(w, x), then fmadd(d_w * d_x, q, acc).
                    let sx = _mm256_sign_epi8(x, w[c]);
                    let q = _mm256_cvtepi32_ps(_mm256_madd_epi16(ones, _mm256_maddubs_epi16(aw[c], sx)));
                    acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(dw[c] * dx), q, acc[r][c]);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                // candle's hsum_float_8.
                let s = _mm_add_ps(_mm256_extractf128_ps(*v, 1), _mm256_castps256_ps128(*v));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_movehdup_ps(s));
                // SAFETY: (i + r, j + c) is inside the m × n output.
                unsafe { *dst.0.add((i + r) * self.n + j + c) = _mm_cvtss_f32(s) };
            }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn tile<const M: usize, const N: usize>(&self, _: &Quantized, _: usize, _: usize, _: &Dst) {
        unreachable!("available() is false off x86_64")
    }
}

/// The output, shared by the parallel tasks; each writes its own columns.
struct Dst(*mut f32);
// SAFETY: tasks write disjoint elements (see `Q8Matrix::matmul`).
unsafe impl Sync for Dst {}

fn quantize(x: &[f32], k: usize) -> Quantized {
    let mut qs = vec![0i8; x.len()];
    let mut d = Vec::with_capacity(x.len() / QK);
    for (xs, ys) in x.chunks_exact(QK).zip(qs.chunks_exact_mut(QK)) {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        d.push(half::f16::from_f32(scale).to_f32());
        for (y, &v) in ys.iter_mut().zip(xs) {
            *y = f32::round(v * inv) as i8;
        }
    }
    debug_assert_eq!(d.len() * QK, x.len() / k * k);
    Quantized { qs, d }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};

    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x % 2001) as f32 - 1000.0) / 997.0
            })
            .collect()
    }

    /// candle's own Q8_0 product is the oracle: the same bits for every shape, edges included.
    #[test]
    fn equals_candles_q8_0_product_bit_for_bit_at_every_batch() {
        if !available() {
            eprintln!("no AVX2: nothing to check");
            return;
        }
        let dev = Device::Cpu;
        for (n, k) in [(70, 96), (64, 640), (3, 32)] {
            let w = Tensor::from_vec(values(n as u64 * 31 + k as u64, n * k), (n, k), &dev).unwrap();
            let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
            let ours = Q8Matrix::from_q8_0(&q.data().unwrap(), n, k).unwrap();
            let theirs = QMatMul::from_qtensor(q).unwrap();
            let x = values(7, 9 * k);
            let all = ours.matmul(&x, 9);
            for m in [1, 2, 3, 4, 5, 9] {
                let xt = Tensor::from_vec(x[..m * k].to_vec(), (m, k), &dev).unwrap();
                let want: Vec<f32> = theirs.forward(&xt).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                let got = ours.matmul(&x[..m * k], m);
                assert_eq!(got, want, "n {n} k {k} m {m}");
                // A row's products do not depend on the rows beside it.
                assert_eq!(got[..], all[..m * n], "n {n} k {k} m {m}");
            }
        }
    }

    #[test]
    fn refuses_bytes_that_are_not_q8_0_of_that_shape() {
        assert!(Q8Matrix::from_q8_0(&[0u8; 34], 1, 32).is_some());
        assert!(Q8Matrix::from_q8_0(&[0u8; 34], 2, 32).is_none());
        assert!(Q8Matrix::from_q8_0(&[0u8; 34], 1, 33).is_none());
    }
}
