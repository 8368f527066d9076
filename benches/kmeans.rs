//! k-means at the paper's scale: k = 32,000 clusters over 100,000 and 300,000 384-d instruction
//! vectors of one language, our spherical k-means against scikit-learn's KMeans and
//! MiniBatchKMeans on the same vectors, in one run: time, peak memory above the loaded vectors,
//! iterations and the clustering's quality (mean cosine of each point to its cluster's mean
//! direction, computed the same way for every side).
//!
//!     cargo bench --bench kmeans
//!
//! The vectors: all-MiniLM-L6-v2 embeddings of 1,975 instruction-like English sentences
//! (benches/embed.rs's verbs × objects), and around them seeded points `(1 − w)·a + w·b +
//! noise`, normalized — `a`, `b` two of the real embeddings, `w` uniform in [0, 0.5), noise of
//! norm ~0.5 — a continuous cloud with the real embeddings' geometry, since no 300,000 real
//! instructions ship with the repository.
//!
//! Our side runs twice: the same fixed number of Lloyd iterations as scikit-learn's KMeans
//! (`XINST_BENCH_KM_ITER`, default 20, tolerance 0 on both sides), and with the default
//! `[kmeans]` settings (what a run uses). `XINST_BENCH_KM_POINTS` (default `100000,300000`),
//! `XINST_BENCH_KM_K` (default 32,000), `XINST_BENCH_KM_PEERS` (default `kmeans,minibatch`; empty
//! for ours alone; `kmeans-random` / `minibatch-random` start from random centres instead of
//! scikit-learn's greedy k-means++, which alone takes ~100 s at 20,000 points and k = 6,400 and
//! grows as n × k × ln k). Peer Python: `XINST_BENCH_KM_PYTHON` (default `.tools/bench-venv-km/bin/python`
//! with `scikit-learn numpy`), 2 threads as ours.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::Instant;
use xinstruct_operators::diversity::{kmeans, EmbedConfig, Embedder, KMeansConfig};

mod common;
use common::{OBJECTS, VERBS};

fn env_or(k: &str, d: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| d.to_string())
}

fn status_kb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Runs `f`, returning its result, seconds and peak RSS above the RSS before it, in MB.
fn measured<R>(f: impl FnOnce() -> R) -> (R, f64, f64) {
    // Writing 5 to clear_refs resets the peak (VmHWM) to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base = status_kb("VmRSS:");
    let t = Instant::now();
    let r = f();
    let secs = t.elapsed().as_secs_f64();
    (r, secs, (status_kb("VmHWM:") - base) / 1024.0)
}

/// Mean cosine of each point to its cluster's normalized mean (the peer script's figure).
fn spherical_objective(points: &[Vec<f32>], assignment: &[usize], k: usize) -> (f64, usize) {
    let dim = points[0].len();
    let mut sums = vec![0f64; k * dim];
    for (p, c) in points.iter().zip(assignment) {
        sums[c * dim..(c + 1) * dim].iter_mut().zip(p).for_each(|(s, x)| *s += *x as f64);
    }
    let mut used = 0;
    for c in sums.chunks_exact_mut(dim) {
        let n = c.iter().map(|x| x * x).sum::<f64>().sqrt();
        if n > 0.0 {
            used += 1;
            c.iter_mut().for_each(|x| *x /= n);
        }
    }
    let total: f64 = points
        .iter()
        .zip(assignment)
        .map(|(p, c)| p.iter().zip(&sums[c * dim..(c + 1) * dim]).map(|(x, m)| *x as f64 * m).sum::<f64>())
        .sum();
    (total / points.len() as f64, used)
}

fn main() {
    let sizes: Vec<usize> = env_or("XINST_BENCH_KM_POINTS", "100000,300000")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let k: usize = env_or("XINST_BENCH_KM_K", "32000").parse().expect("XINST_BENCH_KM_K");
    let iterations: usize = env_or("XINST_BENCH_KM_ITER", "20").parse().expect("XINST_BENCH_KM_ITER");
    let peers = env_or("XINST_BENCH_KM_PEERS", "kmeans,minibatch");
    let python: PathBuf = std::env::var("XINST_BENCH_KM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bench-venv-km/bin/python"));

    let sentences: Vec<String> =
        VERBS.iter().flat_map(|v| OBJECTS.iter().map(move |o| format!("{v} {o}."))).collect();
    let dir = xinstruct::models::ensure("all-minilm-l6-v2").expect("all-minilm-l6-v2");
    let embedder = Embedder::load(&dir, &EmbedConfig::default(), &candle_core::Device::Cpu).expect("load");
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let real = embedder.embed(&texts, None).expect("embed");
    let dim = embedder.dim;
    drop(embedder);

    let tmp = tempfile::tempdir().expect("tmp");
    let script = tmp.path().join("sk_kmeans.py");
    std::fs::write(&script, include_str!("peers/sk_kmeans.py")).expect("write");
    println!("k = {k}, {dim}-d, 2 threads; fixed-iteration rows: {iterations} Lloyd iterations, tolerance 0");
    println!("| points | side | seconds | iterations | peak MB above the vectors | mean cosine to cluster mean | clusters used |");
    println!("|---|---|---|---|---|---|---|");
    for &n in &sizes {
        let mut rng = StdRng::seed_from_u64(n as u64);
        let noise = 0.5 / (dim as f32).sqrt() * 3f32.sqrt() * 2.0;
        let points: Vec<Vec<f32>> = (0..n)
            .map(|_| {
                let (a, b) = (&real[rng.random_range(0..real.len())], &real[rng.random_range(0..real.len())]);
                let w: f32 = rng.random::<f32>() * 0.5;
                let mut v: Vec<f32> = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (1.0 - w) * x + w * y + noise * (rng.random::<f32>() - 0.5))
                    .collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                v
            })
            .collect();
        let vectors_path = tmp.path().join(format!("vectors-{n}.f32"));
        let bytes: Vec<u8> = points.iter().flat_map(|v| v.iter().flat_map(|x| x.to_le_bytes())).collect();
        std::fs::write(&vectors_path, bytes).expect("write");

        let row = |side: &str, secs: f64, iters: String, mb: f64, sim: f64, used: usize| {
            println!("| {n} | {side} | {secs:.1} | {iters} | {mb:.0} | {sim:.4} | {used} |");
        };
        let fixed = KMeansConfig {
            max_iterations: iterations,
            tolerance: 0.0,
            min_reassigned: 0.0,
            min_gain: f64::NEG_INFINITY,
            ..Default::default()
        };
        let (km, secs, mb) = measured(|| kmeans(&points, k, &fixed));
        let (sim, used) = spherical_objective(&points, &km.assignment, k);
        row("xinstruct, fixed iterations", secs, km.iterations.to_string(), mb, sim, used);
        let curve: Vec<String> = km.progress.iter().map(|(s, changed)| format!("{s:.4}/{changed}")).collect();
        eprintln!("{n}: per iteration (mean similarity/points moved): {}", curve.join(" "));
        let (km, secs, mb) = measured(|| kmeans(&points, k, &KMeansConfig::default()));
        let (sim, used) = spherical_objective(&points, &km.assignment, k);
        row("xinstruct, default [kmeans]", secs, km.iterations.to_string(), mb, sim, used);
        for peer in peers.split(',').filter(|p| !p.is_empty()) {
            let out = tmp.path().join(format!("{peer}-{n}.json"));
            let max_iter = if peer.starts_with("kmeans") { iterations } else { 100 };
            let status = std::process::Command::new(&python)
                .arg(&script)
                .arg(&vectors_path)
                .arg(dim.to_string())
                .arg(k.to_string())
                .arg(peer)
                .arg(max_iter.to_string())
                .arg(&out)
                .status()
                .expect("run the peer (set XINST_BENCH_KM_PYTHON)");
            assert!(status.success(), "peer {peer} failed");
            let r: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&out).expect("peer json")).expect("json");
            let iters = match r["steps"].as_u64() {
                Some(steps) if steps > 0 => format!("{} ({steps} steps)", r["iterations"]),
                _ => r["iterations"].to_string(),
            };
            let name = match peer {
                "kmeans" => "scikit-learn KMeans (greedy k-means++)",
                "kmeans-random" => "scikit-learn KMeans, init=random",
                "minibatch" => "scikit-learn MiniBatchKMeans (greedy k-means++)",
                _ => "scikit-learn MiniBatchKMeans, init=random",
            };
            row(
                name,
                r["secs"].as_f64().unwrap_or(f64::NAN),
                iters,
                r["peak_mb"].as_f64().unwrap_or(f64::NAN),
                r["mean_similarity"].as_f64().unwrap_or(f64::NAN),
                r["clusters_used"].as_u64().unwrap_or(0) as usize,
            );
        }
    }
}
