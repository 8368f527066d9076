//! Ingest throughput: read → Parquet dataset, xinstruct vs datatrove (JsonlReader /
//! ParquetReader → ParquetWriter, one worker), on the same 100k-document corpus in one run.
//!
//!     cargo bench --bench ingest            # XINST_BENCH_DOCS=100000 by default
//!
//! The corpus is real text: paragraphs of the bundled sample (UDHR in 11 languages + junk),
//! recombined into documents of ~1,200 characters. datatrove runs from the Python in
//! `XINST_BENCH_PYTHON` (default `.tools/bench-venv/bin/python`, made with
//! `python3 -m venv .tools/bench-venv && .tools/bench-venv/bin/pip install datatrove==0.10.1 pyarrow`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use xinstruct::config::Config;
use xinstruct::pipeline::{self, Cluster, RunOptions};
use xinstruct_operators::source::{
    jsonl, parquet as pq_source, wet, Compression, Format, Record, ShardTask, SourceConfig,
};

const SHARDS: usize = 10;

fn sample_paragraphs() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    let cfg = SourceConfig::default();
    let mut paragraphs = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("data/sample") {
        let path = entry.expect("entry").path();
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let Some((format, compression)) = Format::detect(&name) else { continue };
        let task = ShardTask { uri: name, format, compression, size: 0, version: String::new() };
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

fn make_corpus(dir: &Path, docs: usize) -> (PathBuf, PathBuf) {
    let paragraphs = sample_paragraphs();
    let (jsonl_dir, parquet_dir) = (dir.join("jsonl"), dir.join("parquet"));
    std::fs::create_dir_all(&jsonl_dir).unwrap();
    std::fs::create_dir_all(&parquet_dir).unwrap();
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let per_shard = docs.div_ceil(SHARDS);
    for s in 0..SHARDS {
        let mut texts = Vec::with_capacity(per_shard);
        for _ in 0..per_shard.min(docs - s * per_shard) {
            let mut text = String::new();
            while text.chars().count() < 1200 {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(&paragraphs[(next() % paragraphs.len() as u64) as usize]);
            }
            texts.push(text);
        }
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(jsonl_dir.join(format!("shard-{s:02}.jsonl"))).unwrap(),
        );
        for (i, t) in texts.iter().enumerate() {
            let rec = serde_json::json!({"text": t, "id": format!("{s}-{i}"), "url": format!("https://bench.example/{s}/{i}")});
            writeln!(f, "{rec}").unwrap();
        }
        f.flush().unwrap();
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("text", arrow::datatypes::DataType::Utf8, false),
            arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Utf8, false),
            arrow::datatypes::Field::new("url", arrow::datatypes::DataType::Utf8, false),
        ]));
        let ids: Vec<String> = (0..texts.len()).map(|i| format!("{s}-{i}")).collect();
        let urls: Vec<String> = (0..texts.len()).map(|i| format!("https://bench.example/{s}/{i}")).collect();
        let batch = arrow::array::RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(arrow::array::StringArray::from(texts)),
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

fn run_xinstruct(input: &Path, output: &Path, workers: usize) -> (f64, u64) {
    let mut config = Config::default();
    config.run.workers = std::num::NonZeroUsize::new(workers).unwrap();
    let started = Instant::now();
    let summary = pipeline::run(RunOptions {
        input: input.display().to_string(),
        output: output.display().to_string(),
        config,
        cluster: Cluster { process: 0, processes: 1, hostfile: None },
        watch: false,
        stop: Arc::new(AtomicBool::new(false)),
        progress: Arc::default(),
    })
    .expect("xinstruct run");
    (started.elapsed().as_secs_f64(), summary.docs_out)
}

const DATATROVE: &str = r#"
import sys, time
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader, ParquetReader
from datatrove.pipeline.writers import ParquetWriter
kind, inp, out, logs = sys.argv[1:5]
reader = JsonlReader(inp) if kind == "jsonl" else ParquetReader(inp)
ex = LocalPipelineExecutor(pipeline=[reader, ParquetWriter(out)], tasks=1, workers=1, logging_dir=logs)
t = time.perf_counter()
ex.run()
print(time.perf_counter() - t)
"#;

fn run_datatrove(python: &Path, kind: &str, input: &Path, dir: &Path) -> Option<f64> {
    let script = dir.join("datatrove_ingest.py");
    std::fs::write(&script, DATATROVE).ok()?;
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(kind)
        .arg(input)
        .arg(dir.join(format!("dt-out-{kind}")))
        .arg(dir.join(format!("dt-logs-{kind}")))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("datatrove failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    String::from_utf8_lossy(&out.stdout).lines().last()?.trim().parse().ok()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let docs: usize = std::env::var("XINST_BENCH_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let tmp = tempfile::tempdir().expect("temp dir");
    let (jsonl_dir, parquet_dir) = make_corpus(tmp.path(), docs);
    let python = std::env::var("XINST_BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bench-venv/bin/python"));
    println!("ingest bench: {docs} documents of ~1,200 characters in {SHARDS} shards");
    println!("| input | xinstruct 1 worker (docs/s) | xinstruct 2 workers (docs/s) | datatrove 1 worker (docs/s) | ratio (1 worker) |");
    println!("|---|---|---|---|---|");
    for (kind, input) in [("jsonl", &jsonl_dir), ("parquet", &parquet_dir)] {
        let (t1, n1) = run_xinstruct(input, &tmp.path().join(format!("x1-{kind}")), 1);
        let (t2, n2) = run_xinstruct(input, &tmp.path().join(format!("x2-{kind}")), 2);
        assert_eq!(n1 as usize, docs);
        assert_eq!(n2 as usize, docs);
        let ours = docs as f64 / t1;
        let (peer, ratio) = match run_datatrove(&python, kind, input, tmp.path()) {
            Some(t) => (format!("{:.0}", docs as f64 / t), format!("{:.2}×", ours / (docs as f64 / t))),
            None => ("n/a (datatrove not installed)".into(), "n/a".into()),
        };
        println!("| {kind} | {ours:.0} | {:.0} | {peer} | {ratio} |", docs as f64 / t2);
    }
}
