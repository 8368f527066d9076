//! The benchmark corpus and peer runner shared by the bench binaries.
//!
//! The corpus is real text: the paragraphs of the bundled sample (UDHR in 11 languages plus
//! off-language and junk pages) recombined, with a fixed seed, into documents of ~1,200
//! characters — the length of X-Instruction responses — written as JSONL and Parquet shards.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use xinstruct_operators::source::{
    jsonl, parquet as pq_source, wet, Format, Record, ShardTask, SourceConfig,
};

pub const SHARDS: usize = 10;

pub fn docs_from_env() -> usize {
    std::env::var("XINST_BENCH_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

/// The peers' Python (`XINST_BENCH_PYTHON`, default `.tools/bench-venv/bin/python`).
pub fn python() -> PathBuf {
    std::env::var("XINST_BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bench-venv/bin/python"))
}

pub fn sample_paragraphs() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    let cfg = SourceConfig::default();
    let mut names: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("data/sample").flatten().map(|e| e.path()).collect();
    names.sort();
    let mut paragraphs = Vec::new();
    for path in names {
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let Some((format, compression)) = Format::detect(&name) else { continue };
        let task = ShardTask { uri: name, format, compression, size: 0, version: String::new(), born: None };
        let records = match format {
            Format::Jsonl => jsonl::records(&path, &task, &cfg, None),
            Format::Parquet => pq_source::records(&path, &task, &cfg, None),
            Format::Wet => wet::records(&path, &task, &cfg, None),
        }
        .expect("sample shard");
        for r in records {
            if let Record::Doc(d) = r {
                paragraphs.extend(d.text.split("\n\n").filter(|p| p.len() > 40).map(String::from));
            }
        }
    }
    paragraphs
}

/// `docs` texts of ~1,200 characters. Each document takes consecutive paragraphs of one
/// source document, so it stays in one language as web pages mostly do.
pub fn texts(docs: usize) -> Vec<String> {
    let paragraphs = sample_paragraphs();
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..docs)
        .map(|_| {
            let mut i = (next() % paragraphs.len() as u64) as usize;
            let mut text = String::new();
            while text.chars().count() < 1200 {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(&paragraphs[i % paragraphs.len()]);
                i += 1;
            }
            text
        })
        .collect()
}

/// Writes the texts as SHARDS JSONL shards and SHARDS Parquet shards.
pub fn write_corpus(dir: &Path, texts: &[String]) -> (PathBuf, PathBuf) {
    let (jsonl_dir, parquet_dir) = (dir.join("jsonl"), dir.join("parquet"));
    std::fs::create_dir_all(&jsonl_dir).unwrap();
    std::fs::create_dir_all(&parquet_dir).unwrap();
    let per_shard = texts.len().div_ceil(SHARDS);
    for (s, chunk) in texts.chunks(per_shard).enumerate() {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(jsonl_dir.join(format!("shard-{s:02}.jsonl"))).unwrap(),
        );
        for (i, t) in chunk.iter().enumerate() {
            let rec = serde_json::json!({"text": t, "id": format!("{s}-{i}"), "url": format!("https://bench.example/{s}/{i}")});
            writeln!(f, "{rec}").unwrap();
        }
        f.flush().unwrap();
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("text", arrow::datatypes::DataType::Utf8, false),
            arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Utf8, false),
            arrow::datatypes::Field::new("url", arrow::datatypes::DataType::Utf8, false),
        ]));
        let ids: Vec<String> = (0..chunk.len()).map(|i| format!("{s}-{i}")).collect();
        let urls: Vec<String> = (0..chunk.len()).map(|i| format!("https://bench.example/{s}/{i}")).collect();
        let batch = arrow::array::RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(arrow::array::StringArray::from(chunk.to_vec())),
                Arc::new(arrow::array::StringArray::from(ids)),
                Arc::new(arrow::array::StringArray::from(urls)),
            ],
        )
        .unwrap();
        let file = std::fs::File::create(parquet_dir.join(format!("shard-{s:02}.parquet"))).unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .set_max_row_group_row_count(Some(2000))
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    (jsonl_dir, parquet_dir)
}

/// Runs a Python peer script with arguments; returns the last line of its stdout.
pub fn run_python(script: &str, args: &[&str]) -> Option<String> {
    run_python_with(&python(), script, args)
}

pub fn run_python_with(python: &Path, script: &str, args: &[&str]) -> Option<String> {
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("peer.py");
    std::fs::write(&path, script).ok()?;
    let out = std::process::Command::new(python).arg(&path).args(args).output().ok()?;
    if !out.status.success() {
        eprintln!("peer failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    String::from_utf8_lossy(&out.stdout).lines().last().map(|l| l.trim().to_string())
}

/// Instruction-like English sentences for the embedding and k-means benches: verbs × objects.
pub const VERBS: [&str; 25] = [
    "Explain how to",
    "Write a short story about how to",
    "Give three tips to",
    "Summarize why people",
    "Describe the best way to",
    "What is the easiest way to",
    "List the steps to",
    "Why is it hard to",
    "Compare two ways to",
    "Write a poem about trying to",
    "Tell me how children learn to",
    "What tools do I need to",
    "Write an email asking a friend to",
    "How long does it take to",
    "Explain to a beginner how to",
    "What are common mistakes when you",
    "Give a recipe-style guide to",
    "Argue for and against the need to",
    "Write a news headline about a town that tried to",
    "How did people in the past",
    "Plan a weekend to",
    "Draft a checklist to",
    "Create a quiz about how to",
    "Explain the history of how we",
    "Suggest a budget to",
];
pub const OBJECTS: [&str; 79] = [
    "cook rice",
    "bake bread",
    "grow tomatoes",
    "repair a bicycle",
    "learn Swahili",
    "vote in an election",
    "file taxes",
    "plant trees",
    "save water",
    "write a CV",
    "train a puppy",
    "build a shelf",
    "brew coffee",
    "knit a scarf",
    "paint a room",
    "fix a leaking tap",
    "start a garden",
    "read faster",
    "run a marathon",
    "clean a laptop",
    "catch fish",
    "make yogurt",
    "sew a button",
    "change a tyre",
    "keep bees",
    "learn chess",
    "play guitar",
    "speak in public",
    "study for exams",
    "organize a wedding",
    "care for an elder",
    "raise chickens",
    "teach maths",
    "ride a horse",
    "climb a mountain",
    "photograph birds",
    "make soap",
    "dry mangoes",
    "weave a basket",
    "preserve fish",
    "make tea",
    "cut hair",
    "drive in rain",
    "swim safely",
    "cross a river",
    "track expenses",
    "open a shop",
    "sell crafts online",
    "apply for a visa",
    "find a job",
    "write a poem",
    "tell a story",
    "build a website",
    "protect privacy",
    "avoid scams",
    "recycle plastic",
    "insulate a house",
    "cook lentils",
    "make noodles",
    "carve wood",
    "light a fire",
    "read a map",
    "use a compass",
    "learn Thai script",
    "translate a letter",
    "mediate a dispute",
    "run a meeting",
    "plan a trip",
    "rent a flat",
    "buy a car",
    "sleep better",
    "reduce stress",
    "treat a burn",
    "stop bleeding",
    "help a neighbour",
    "volunteer locally",
    "protest peacefully",
    "report a crime",
    "sign a contract",
];
