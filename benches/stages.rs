//! The X-Instruction stages on one box: reverse instruction (few-shot) + evaluate over the same
//! 64 documents, with the in-process engine without and with shared-prefix reuse, and with
//! llama.cpp's OpenAI-compatible server (llama-cpp-python 0.3.36 `[server]`, prompt cache on)
//! as the model, in one run. Each is a plain `xinst run` (release binary, fresh memo) over the
//! same JSONL; reported: wall time, pairs per minute, prompt tokens and the prompt tokens
//! actually prefilled (ours: `prompt_tokens - prompt_tokens_cached` from the run's stats;
//! llama.cpp: the "remaining N prompt tokens to eval" of its log, which counts its own reuse).
//!
//!     cargo bench --bench stages
//!
//! Documents: UDHR paragraphs (tests/fixtures/udhr_paragraphs.tsv) joined into documents of
//! ≥ 1,000 characters, the ten target languages in turn, the language given. Peer Python:
//! `XINST_BENCH_LLAMA_PYTHON` (default `~/.cache/xinstruct/llama-cpp-python-0.3.36/bin/python`,
//! what `.ci/run` builds).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DOCS: usize = 64;
const LANGS: [(&str, &str); 10] = [
    ("ben", "bn_Beng"),
    ("fin", "fi_Latn"),
    ("hin", "hi_Deva"),
    ("ind", "id_Latn"),
    ("swh", "sw_Latn"),
    ("tam", "ta_Taml"),
    ("tha", "th_Thai"),
    ("tur", "tr_Latn"),
    ("urd", "ur_Arab"),
    ("vie", "vi_Latn"),
];

/// Each language's UDHR paragraphs joined into documents of at least 1,000 characters.
fn documents() -> Vec<Vec<String>> {
    let tsv = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/udhr_paragraphs.tsv"),
    )
    .expect("udhr fixture");
    LANGS
        .iter()
        .map(|(code, _)| {
            let mut docs = Vec::new();
            let mut cur = String::new();
            for p in tsv.lines().filter_map(|l| l.split_once('\t')).filter(|(c, _)| c == code).map(|(_, p)| p)
            {
                if !cur.is_empty() {
                    cur.push_str("\n\n");
                }
                cur.push_str(p);
                if cur.chars().count() >= 1000 {
                    docs.push(std::mem::take(&mut cur));
                }
            }
            docs
        })
        .collect()
}

struct Figures {
    secs: f64,
    pairs: u64,
    prompt_tokens: u64,
    prefilled: u64,
}

fn counter(s: &serde_json::Value, c: &str) -> u64 {
    ["reverse_instruction", "evaluate"]
        .iter()
        .map(|op| s["operators"][op]["counters"][c].as_u64().unwrap_or(0))
        .sum()
}

/// One `xinst run` over `input` with `generator` and the `extra` config tables; the run's
/// wall time and stats.
fn run(input: &Path, work: &Path, label: &str, generator: &str, extra: &str) -> (f64, serde_json::Value) {
    let dir = work.join(label);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("x.toml");
    std::fs::write(
        &cfg,
        format!(
            "[pipeline]\noperators = [\"reverse_instruction\", \"evaluate\"]\n[reverse_instruction]\ntemplate = \"fewshot\"\n\
             [evaluate]\nself_check_rate = 0.0\n[instruct]\ngenerator = {generator:?}\nmemo_path = {:?}\n{extra}\n",
            dir.join("memo.redb").display().to_string()
        ),
    )
    .unwrap();
    let stats = dir.join("stats.json");
    let t = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xinst"))
        .args(["run", "--no-progress", "--input"])
        .arg(input)
        .arg("--output")
        .arg(dir.join("out"))
        .arg("--stats-json")
        .arg(&stats)
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("xinst run");
    let secs = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "{label}: {}", String::from_utf8_lossy(&out.stderr));
    (secs, serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap())
}

fn main() {
    let per_lang = documents();
    let mut lines = Vec::new();
    for i in 0.. {
        if lines.len() == DOCS {
            break;
        }
        let (l, k) = (i % LANGS.len(), i / LANGS.len());
        assert!(k < 20, "not enough UDHR documents");
        if let Some(text) = per_lang[l].get(k) {
            lines.push(
                serde_json::json!({"id": format!("doc-{i}"), "text": text, "language": LANGS[l].1})
                    .to_string(),
            );
        }
    }
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("udhr.jsonl"), lines.join("\n") + "\n").unwrap();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("{DOCS} documents, reverse_instruction (few-shot) + evaluate, {threads} threads");
    println!("| model | wall s | pairs | pairs/min | prompt tokens | prefilled | saved |");
    println!("|---|---|---|---|---|---|---|");
    let print = |label: &str, f: &Figures| {
        println!(
            "| {label} | {:.0} | {} | {:.1} | {} | {} | {:.0}% |",
            f.secs,
            f.pairs,
            f.pairs as f64 * 60.0 / f.secs,
            f.prompt_tokens,
            f.prefilled,
            100.0 * (1.0 - f.prefilled as f64 / f.prompt_tokens.max(1) as f64)
        )
    };
    for (label, mib) in [("xinstruct engine, no prefix reuse", 0), ("xinstruct engine, prefix reuse", 256)] {
        let engine = format!("[engine]\nprefix_cache_mib = {mib}");
        let (secs, s) = run(&input, work.path(), &format!("engine-{mib}"), "gemma-3-270m", &engine);
        let prompt_tokens = counter(&s, "prompt_tokens");
        let prefilled = prompt_tokens - counter(&s, "prompt_tokens_cached");
        print(label, &Figures { secs, pairs: s["docs_out"].as_u64().unwrap_or(0), prompt_tokens, prefilled });
    }
    match llama_server() {
        Some((mut child, url, log)) => {
            let openai = "[openai]\nmodel = \"\"\nconcurrency = 1\ntimeout_secs = 600";
            let (secs, s) = run(&input, work.path(), "llama", &url, openai);
            let _ = child.kill();
            let _ = child.wait();
            // "Llama.generate: 454 prefix-match hit, remaining 350 prompt tokens to eval".
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let prefilled: u64 = text
                .lines()
                .filter_map(|l| l.split("remaining ").nth(1)?.split(' ').next()?.parse::<u64>().ok())
                .sum();
            let prompt_tokens = counter(&s, "prompt_tokens");
            print(
                "llama.cpp server (--cache)",
                &Figures { secs, pairs: s["docs_out"].as_u64().unwrap_or(0), prompt_tokens, prefilled },
            );
        }
        None => println!("| llama.cpp server | (peer unavailable) | | | | | |"),
    }
}

/// llama-cpp-python's server on the bundled GGUF with its prompt cache, verbose (the log
/// counts the prompt tokens each request evaluated); `None` when its Python is missing.
fn llama_server() -> Option<(std::process::Child, String, PathBuf)> {
    let python = std::env::var("XINST_BENCH_LLAMA_PYTHON").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default())
            .join(".cache/xinstruct/llama-cpp-python-0.3.36/bin/python")
    });
    if !python.exists() {
        return None;
    }
    let gguf = xinstruct::models::ensure("gemma-3-270m").ok()?.join("model.gguf");
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let log = std::env::temp_dir().join(format!("xinst-bench-llama-{port}.log"));
    let log_file = std::fs::File::create(&log).ok()?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string();
    let child = std::process::Command::new(python)
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(&gguf)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--n_threads",
            &threads,
            "--n_ctx",
            "4096",
        ])
        // The prompt cache's size is counted in llama.cpp state bytes (~10 MB a prompt here),
        // but each saved state also copies the whole logits buffer (`_scores`: n_batch 512 ×
        // Gemma 3's 262,144 floats, ~540 MB): with the default 2 GiB the server grew to 24 GB
        // and the OOM killer ended it after ~40 prompts (2026-12-03). 64 MiB keeps ~6 states.
        .args(["--cache", "true", "--cache_size", "67108864", "--verbose", "true"])
        // One file description for both streams (two `File::create`s would overwrite each other).
        .stdout(log_file.try_clone().ok()?)
        .stderr(log_file)
        .spawn()
        .ok()?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(180) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((child, format!("http://127.0.0.1:{port}/v1"), log));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}
