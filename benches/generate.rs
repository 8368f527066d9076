//! Generation throughput: output tokens/s of the candle engine at batch 1, 4, 8 and 16 on
//! Gemma-3-270M Q4_K_M (CPU), against llama.cpp (llama-cpp-python's C API, batched like
//! llama.cpp's `batched` example) on the same GGUF, the same prompts and the same threads, in
//! one run. Every sequence generates exactly `XINST_BENCH_NEW_TOKENS` tokens (greedy, EOS
//! ignored on both sides), so both count the same work; prompt prefill is included.
//!
//!     cargo bench --bench generate
//!
//! `cargo bench --bench generate -- --synthetic gemma3-1b [--device cuda] [--batches 1,8,64,256]
//! [--prompt 256] [--new 64] [--bandwidth-gbps 4800]` needs no model file and no peer: random
//! weights of that architecture and size, built on the device (bf16 on a GPU, Q8_0 on CPU),
//! driven through the model's forward pass: `batch` sequences of `--prompt` random tokens
//! prefilled (16 sequences a pass), then `--new` decode steps of the whole batch, greedy on the
//! device. Per batch: prefill and decode tokens/s, and the bytes a decode step must read (the
//! weights once + each sequence's keys and values at the mean context) per step time, as a share
//! of the device's memory bandwidth (`--bandwidth-gbps`, default the H200's 4,800 GB/s on CUDA).
//! This is the mode `benches/gpu/run.sh` runs on the GPU machine (docs/benchmarks.md).
//!
//! `-- --batches 4,8` runs some batch sizes only, `-- --no-peer` ours only (for profiling).
//!
//! Prompts: the authors' reverse-instruction template over `XINST_BENCH_PROMPTS` (default 16)
//! responses of ~`XINST_BENCH_CHARS` (default 600) characters from the bundled sample, in all
//! its languages. Peer Python: `XINST_BENCH_LLAMA_PYTHON` (default
//! `.tools/bench-venv-llama/bin/python` with `llama-cpp-python==0.3.36` built without AMX, see
//! docs/benchmarks.md).

mod common;

use candle_core::{DType, D};
use std::path::{Path, PathBuf};
use std::time::Instant;
use xinstruct_operators::generate::model::{synthetic_shape, Model, SeqCache, SYNTHETIC};
use xinstruct_operators::generate::{
    engine, CandleGenerator, EngineConfig, GenRequest, Generator, Prompt, SamplingParams,
};

const TEMPLATE: &str = "Below is a text that describes a candidate output. Write an English instruction that can take the given text as an appropriate answer.\n\n### Text:\n{text}\n\n### English Instruction:";

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

/// `--name value` from the command line (cargo bench adds a bare `--bench`).
fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// `--batches 1,4,8` (or the default list).
fn batches_arg(default: &str) -> Vec<usize> {
    arg("--batches")
        .unwrap_or_else(|| default.into())
        .split(',')
        .map(|b| b.trim().parse().expect("--batches: numbers separated by commas"))
        .collect()
}

fn main() {
    if let Some(name) = arg("--synthetic") {
        return synthetic(&name);
    }
    let n_prompts = env_usize("XINST_BENCH_PROMPTS", 16);
    let new_tokens = env_usize("XINST_BENCH_NEW_TOKENS", 64);
    let chars = env_usize("XINST_BENCH_CHARS", 600);
    let dir = xinstruct::models::ensure("gemma-3-270m").expect("gemma-3-270m");
    let gguf = dir.join("model.gguf");
    let prompts: Vec<String> = common::texts(n_prompts)
        .into_iter()
        .map(|t| {
            let cut: String = t.chars().take(chars).collect();
            TEMPLATE.replace("{text}", &cut)
        })
        .collect();
    let tmp = tempfile::tempdir().expect("tmp");
    let prompts_path = tmp.path().join("prompts.jsonl");
    let lines: String = prompts.iter().map(|p| serde_json::to_string(p).unwrap() + "\n").collect();
    std::fs::write(&prompts_path, lines).expect("write prompts");
    let python: PathBuf = std::env::var("XINST_BENCH_LLAMA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bench-venv-llama/bin/python"));
    let peer = include_str!("peers/llama_batched.py");
    println!(
        "{n_prompts} prompts (~{chars} chars of text each), {new_tokens} new tokens each, greedy; {} threads",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("| batch | xinstruct tok/s | llama.cpp tok/s | ratio |");
    println!("|---|---|---|---|");
    let batches = batches_arg("1,4,8,16");
    let skip_peer = std::env::args().any(|a| a == "--no-peer");
    for batch in batches {
        let engine = EngineConfig { max_batch: batch, ..EngineConfig::default() };
        let gen = CandleGenerator::load(&dir, "gemma-3-270m", &engine).expect("load");
        let params = SamplingParams { ignore_eos: true, ..SamplingParams::greedy(new_tokens) };
        let reqs: Vec<GenRequest> =
            prompts.iter().map(|p| GenRequest::new(Prompt::Text(p.clone()), params.clone())).collect();
        gen.generate(vec![GenRequest::new(Prompt::Text("warm up".into()), SamplingParams::greedy(2))]);
        let t = Instant::now();
        let out = gen.generate(reqs);
        let secs = t.elapsed().as_secs_f64();
        let tokens: usize = out.iter().map(|r| r.as_ref().map(|c| c.completion_tokens).unwrap_or(0)).sum();
        let ours = tokens as f64 / secs;
        drop(gen);
        if skip_peer {
            println!("| {batch} | {ours:.1} | (--no-peer) | |");
            continue;
        }
        let theirs = common::run_python_with(
            &python,
            peer,
            &[
                gguf.to_str().unwrap(),
                prompts_path.to_str().unwrap(),
                &batch.to_string(),
                &new_tokens.to_string(),
            ],
        )
        .and_then(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
        .map(|v| v["tokens"].as_f64().unwrap_or(0.0) / v["seconds"].as_f64().unwrap_or(f64::NAN));
        match theirs {
            Some(t) => println!("| {batch} | {ours:.1} | {t:.1} | {:.2}x |", ours / t),
            None => println!("| {batch} | {ours:.1} | (peer unavailable) | |"),
        }
    }
}

/// The synthetic-weights mode (see the top of the file).
fn synthetic(name: &str) {
    let shape =
        synthetic_shape(name).unwrap_or_else(|| panic!("--synthetic {name}: known shapes are {SYNTHETIC}"));
    let spec = arg("--device").unwrap_or_else(|| "cpu".into());
    let device = engine::device(&spec).unwrap_or_else(|e| panic!("{e}"));
    let batches = batches_arg("1,8,64,256");
    let prompt_len: usize = arg("--prompt").map(|v| v.parse().expect("--prompt")).unwrap_or(256);
    let new_tokens: usize = arg("--new").map(|v| v.parse().expect("--new")).unwrap_or(64).max(1);
    let bandwidth: Option<f64> = arg("--bandwidth-gbps")
        .map(|v| v.parse().expect("--bandwidth-gbps"))
        .or((!device.is_cpu()).then_some(4800.0));
    let t = Instant::now();
    let model = Model::synthetic(&shape, DType::BF16, &device).expect("random weights");
    device.synchronize().expect("synchronize");
    let weights = model.weight_bytes();
    println!(
        "{name}: {} parameters, random weights on {spec} in {:.1} s; {:.0} MB of weights read per step; \
         prompts of {prompt_len} tokens, {new_tokens} decode steps; {} CPU threads",
        shape.parameters(),
        t.elapsed().as_secs_f64(),
        weights as f64 / 1e6,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("| batch | prefill tok/s | decode tok/s | decode step ms | GB/s read | share of bandwidth |");
    println!("|---|---|---|---|---|---|");
    let vocab = shape.config.vocab as u64;
    let mut x: u64 = 0x2545F4914F6CDD1D;
    let mut rand_token = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % vocab) as u32
    };
    let greedy = |logits: candle_core::Tensor| -> Vec<u32> {
        logits.argmax(D::Minus1).and_then(|t| t.to_vec1::<u32>()).expect("argmax")
    };
    for batch in batches {
        let mut caches: Vec<SeqCache> =
            (0..batch).map(|_| SeqCache::new(&model, prompt_len + new_tokens + 1)).collect();
        let prompts: Vec<Vec<u32>> =
            (0..batch).map(|_| (0..prompt_len).map(|_| rand_token()).collect()).collect();
        let t = Instant::now();
        let mut next = Vec::with_capacity(batch);
        for (cs, ps) in caches.chunks_mut(16).zip(prompts.chunks(16)) {
            let mut pass: Vec<(&mut SeqCache, &[u32])> =
                cs.iter_mut().zip(ps).map(|(c, p)| (c, p.as_slice())).collect();
            next.extend(greedy(model.forward(&mut pass).expect("prefill")));
        }
        let prefill = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..new_tokens {
            let step: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
            let mut pass: Vec<(&mut SeqCache, &[u32])> =
                caches.iter_mut().zip(&step).map(|(c, t)| (c, t.as_slice())).collect();
            next = greedy(model.forward(&mut pass).expect("decode"));
        }
        let decode = t.elapsed().as_secs_f64();
        let step_s = decode / new_tokens as f64;
        let bytes = weights + batch * model.kv_bytes_read(prompt_len + new_tokens / 2);
        let gbps = bytes as f64 / step_s / 1e9;
        let share = bandwidth.map(|b| format!("{:.1}%", 100.0 * gbps / b)).unwrap_or_else(|| "n/a".into());
        println!(
            "| {batch} | {:.0} | {:.1} | {:.1} | {gbps:.0} | {share} |",
            (batch * prompt_len) as f64 / prefill,
            (batch * new_tokens) as f64 / decode,
            step_s * 1e3,
        );
    }
}
