//! The Q8_0 products of one Gemma-3-270M decode step (18 layers' q, k, v, o, gate, up and down
//! matrices and the 262,144 × 640 LM head: 285 MB of Q8_0 weights) at `m` activation rows, with
//! random weights, and what two threads can stream from memory on this machine (a sum over a
//! 300 MB buffer): the kernel's time a step, its GB/s and G multiply-adds/s. No peer: this
//! isolates the kernel that `cargo bench --bench generate` (the llama.cpp comparison) spends
//! most of its time in (docs/benchmarks.md).
//!
//!     cargo bench -p xinstruct-kernels --bench q8gemm [-- 1,2,4,8]

use rayon::prelude::*;
use std::time::Instant;
use xinstruct_kernels::q8gemm::Q8Matrix;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// `n` rows of `k` random Q8_0 weights (scale 0.01, as the GGUF stores it: f16).
fn matrix(n: usize, k: usize, seed: u64) -> Q8Matrix {
    let mut s = seed | 1;
    let scale = half::f16::from_f32(0.01).to_bits().to_le_bytes();
    let mut bytes = Vec::with_capacity(n * k / 32 * 34);
    for _ in 0..n * k / 32 {
        bytes.extend_from_slice(&scale);
        bytes.extend((0..32).map(|_| (xorshift(&mut s) % 255) as u8));
    }
    Q8Matrix::from_q8_0(&bytes, n, k).expect("Q8_0 bytes of that shape")
}

fn inputs(m: usize, k: usize) -> Vec<f32> {
    (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect()
}

fn main() {
    let ms: Vec<usize> = std::env::args()
        .skip(1)
        .find(|a| a.chars().all(|c| c.is_ascii_digit() || c == ','))
        .map(|a| a.split(',').map(|v| v.parse().expect("rows: numbers separated by commas")).collect())
        .unwrap_or_else(|| vec![1, 2, 4, 8]);
    let (hidden, q, kv, ffn) = (640, 1024, 256, 2048);
    let head = matrix(262_144, hidden, 1);
    let layers: Vec<[Q8Matrix; 7]> = (0..18u64)
        .map(|l| {
            [
                matrix(q, hidden, 10 + l),
                matrix(kv, hidden, 20 + l),
                matrix(kv, hidden, 30 + l),
                matrix(hidden, q, 40 + l),
                matrix(ffn, hidden, 50 + l),
                matrix(ffn, hidden, 60 + l),
                matrix(hidden, ffn, 70 + l),
            ]
        })
        .collect();
    let bytes = head.q8_0_bytes() + layers.iter().flatten().map(Q8Matrix::q8_0_bytes).sum::<usize>();
    let macs = bytes / 34 * 32;
    println!("{:.1} MB of Q8_0 weights a step; {} threads", bytes as f64 / 1e6, rayon::current_num_threads());
    println!("| rows | step ms | LM head ms | GB/s | G MAC/s |");
    println!("|---|---|---|---|---|");
    for m in ms {
        let (x_h, x_q, x_f) = (inputs(m, hidden), inputs(m, q), inputs(m, ffn));
        // Returns the head's share of the time and a checksum that keeps the products alive.
        let step = || {
            let mut sum = 0f32;
            for [wq, wk, wv, wo, gate, up, down] in &layers {
                for (w, x) in
                    [(wq, &x_h), (wk, &x_h), (wv, &x_h), (wo, &x_q), (gate, &x_h), (up, &x_h), (down, &x_f)]
                {
                    sum += w.matmul(x, m)[0];
                }
            }
            let t = Instant::now();
            sum += head.matmul(&x_h, m)[0];
            (t.elapsed().as_secs_f64(), sum)
        };
        step();
        let reps = 10;
        let t = Instant::now();
        let (mut head_s, mut check) = (0.0, 0.0);
        for _ in 0..reps {
            let (h, s) = step();
            head_s += h;
            check += s;
        }
        let secs = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "| {m} | {:.2} | {:.2} | {:.1} | {:.1} |{}",
            secs * 1e3,
            head_s / reps as f64 * 1e3,
            bytes as f64 / secs / 1e9,
            (macs * m) as f64 / secs / 1e9,
            if check.is_nan() { " (NaN)" } else { "" }
        );
    }
    let buf: Vec<u64> = (0..300_000_000 / 8).collect();
    let t = Instant::now();
    let sum = buf
        .par_chunks(1 << 17)
        .map(|c| c.iter().fold(0u64, |a, &v| a.wrapping_add(v)))
        .reduce(|| 0, u64::wrapping_add);
    let secs = t.elapsed().as_secs_f64();
    println!("memory: two threads stream {:.1} GB/s (sum {sum})", 300e6 / secs / 1e9);
}
