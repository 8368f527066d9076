//! Diversification speed: sentence embeddings/s of the candle encoder against
//! sentence-transformers (torch CPU) on the same sentences, batch 32, and k-means time against
//! scikit-learn's KMeans (k-means++, one init) on the same vectors, in one run; plus the
//! agreement of the two embeddings (mean cosine between the two models' vectors).
//!
//!     cargo bench --bench embed
//!
//! `XINST_BENCH_SENTENCES` (default 2,000) instruction-like English sentences;
//! `XINST_BENCH_THREADS` (default 2) threads for our encoder (the peer uses 2);
//! `XINST_BENCH_POINTS` (default 32,000) points for k-means, `XINST_BENCH_K` (default 64).
//! Peer Python: `XINST_BENCH_ST_PYTHON` (default `.tools/bench-venv-st/bin/python` with
//! `sentence-transformers==6.2.0 scikit-learn`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::Instant;
use xinstruct_operators::diversity::embed::cosine;
use xinstruct_operators::diversity::{kmeans, EmbedConfig, Embedder, KMeansConfig};

mod common;
use common::{OBJECTS, VERBS};

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn main() {
    let n = env_usize("XINST_BENCH_SENTENCES", 2000);
    let points = env_usize("XINST_BENCH_POINTS", 32_000);
    let k = env_usize("XINST_BENCH_K", 64);
    let sentences: Vec<String> = (0..n)
        .map(|i| format!("{} {}.", VERBS[i % VERBS.len()], OBJECTS[(i / VERBS.len() + i) % OBJECTS.len()]))
        .collect();
    let dir = xinstruct::models::ensure("all-minilm-l6-v2").expect("all-minilm-l6-v2");
    let cfg = EmbedConfig {
        threads: env_usize("XINST_BENCH_THREADS", 2),
        batch_size: env_usize("XINST_BENCH_BATCH", 32),
        ..Default::default()
    };
    let embedder = Embedder::load(&dir, &cfg, &candle_core::Device::Cpu).expect("load");
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    embedder.embed(&texts[..64.min(n)], None).expect("warm-up");
    // Best of three on both sides (the machine is shared; single runs vary by +-20%).
    let mut ours = Vec::new();
    let mut our_secs = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        ours = embedder.embed(&texts, None).expect("embed");
        our_secs = our_secs.min(t.elapsed().as_secs_f64());
    }

    // k-means input: points around k seeded directions in 384 dimensions, normalized.
    let mut rng = StdRng::seed_from_u64(7);
    let dim = embedder.dim;
    let centres: Vec<Vec<f32>> =
        (0..k).map(|_| (0..dim).map(|_| rng.random::<f32>() - 0.5).collect()).collect();
    let vectors: Vec<Vec<f32>> = (0..points)
        .map(|i| {
            let mut v: Vec<f32> =
                centres[i % k].iter().map(|x| x + 0.6 * (rng.random::<f32>() - 0.5)).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect();
    let t = Instant::now();
    let km = kmeans(&vectors, k, &KMeansConfig { threads: 2, ..Default::default() });
    let km_secs = t.elapsed().as_secs_f64();

    let tmp = tempfile::tempdir().expect("tmp");
    let sentences_path = tmp.path().join("sentences.txt");
    std::fs::write(&sentences_path, sentences.join("\n")).expect("write");
    let vectors_path = tmp.path().join("vectors.f32");
    let bytes: Vec<u8> = vectors.iter().flat_map(|v| v.iter().flat_map(|x| x.to_le_bytes())).collect();
    std::fs::write(&vectors_path, bytes).expect("write");
    let peer_script = tmp.path().join("st_embed.py");
    std::fs::write(&peer_script, include_str!("peers/st_embed.py")).expect("write");
    let python: PathBuf = std::env::var("XINST_BENCH_ST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bench-venv-st/bin/python"));
    let out = tmp.path().join("peer");
    let status = std::process::Command::new(&python)
        .arg(&peer_script)
        .arg(&dir)
        .arg(&sentences_path)
        .arg(&vectors_path)
        .arg(k.to_string())
        .arg(&out)
        .status()
        .expect("run the peer (set XINST_BENCH_ST_PYTHON)");
    assert!(status.success(), "peer failed");
    let peer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.with_extension("json")).expect("peer json")).expect("json");
    let theirs: Vec<f32> = std::fs::read(out.with_extension("st.f32"))
        .expect("peer vectors")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let agreement =
        ours.iter().zip(theirs.chunks_exact(dim)).map(|(a, b)| cosine(a, b) as f64).sum::<f64>() / n as f64;
    let st_secs = peer["st_secs"].as_f64().unwrap_or(f64::NAN);
    let sk_secs = peer["km_secs"].as_f64().unwrap_or(f64::NAN);
    println!("{n} sentences, batch 32, best of 3 each; k-means: {points} x {dim}, k = {k}; 2 threads");
    println!("| task | xinstruct | peer | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| embeddings (all-MiniLM-L6-v2) | {:.0} sentences/s | sentence-transformers {:.0} sentences/s | {:.2}x |",
        n as f64 / our_secs,
        n as f64 / st_secs,
        st_secs / our_secs
    );
    println!(
        "| k-means++ + Lloyd | {km_secs:.2} s ({} iterations) | scikit-learn KMeans {sk_secs:.2} s ({} iterations) | {:.2}x |",
        km.iterations,
        peer["km_iter"],
        sk_secs / km_secs
    );
    println!("mean cosine between the two models' embeddings of the same sentence: {agreement:.6}");
}
