//! Generation throughput: output tokens/s of the candle engine at batch 1, 4, 8 and 16 on
//! Gemma-3-270M Q4_K_M (CPU), against llama.cpp (llama-cpp-python's C API, batched like
//! llama.cpp's `batched` example) on the same GGUF, the same prompts and the same threads, in
//! one run. Every sequence generates exactly `XINST_BENCH_NEW_TOKENS` tokens (greedy, EOS
//! ignored on both sides), so both count the same work; prompt prefill is included.
//!
//!     cargo bench --bench generate
//!
//! Prompts: the authors' reverse-instruction template over `XINST_BENCH_PROMPTS` (default 16)
//! responses of ~`XINST_BENCH_CHARS` (default 600) characters from the bundled sample, in all
//! its languages. Peer Python: `XINST_BENCH_LLAMA_PYTHON` (default
//! `.tools/bench-venv-llama/bin/python` with `llama-cpp-python==0.3.36` built without AMX, see
//! docs/benchmarks.md).

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;
use xinstruct_operators::generate::{
    CandleGenerator, EngineConfig, GenRequest, Generator, Prompt, SamplingParams,
};

const TEMPLATE: &str = "Below is a text that describes a candidate output. Write an English instruction that can take the given text as an appropriate answer.\n\n### Text:\n{text}\n\n### English Instruction:";

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn main() {
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
    for batch in [1usize, 4, 8, 16] {
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
