//! Ingest throughput: read → Parquet dataset, xinstruct vs datatrove (JsonlReader /
//! ParquetReader → ParquetWriter, one worker), on the same 100k-document corpus in one run.
//!
//!     cargo bench --bench ingest            # XINST_BENCH_DOCS=100000 by default
//!
//! The corpus is real text: paragraphs of the bundled sample (UDHR in 11 languages + junk),
//! recombined into documents of ~1,200 characters. datatrove runs from the Python in
//! `XINST_BENCH_PYTHON` (default `.tools/bench-venv/bin/python`, made with
//! `python3 -m venv .tools/bench-venv && .tools/bench-venv/bin/pip install datatrove==0.10.1 pyarrow`).

mod common;

use common::{docs_from_env, run_python, write_corpus, SHARDS};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;
use xinstruct::config::Config;
use xinstruct::pipeline::{self, Cluster, RunOptions};

/// Read → Parquet only: the operator chain is off, as datatrove's JsonlReader → ParquetWriter.
fn run_xinstruct(input: &Path, output: &Path, workers: usize) -> (f64, u64) {
    let mut config = Config::default();
    config.pipeline.operators.clear();
    config.run.workers = std::num::NonZeroUsize::new(workers).unwrap();
    let started = Instant::now();
    let summary = pipeline::run(RunOptions {
        input: input.display().to_string(),
        output: output.display().to_string(),
        config,
        cluster: Cluster { process: 0, processes: 1, hostfile: None },
        watch: false,
        stop: Arc::new(AtomicBool::new(false)),
        force: false,
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

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let docs = docs_from_env();
    let tmp = tempfile::tempdir().expect("temp dir");
    let (jsonl_dir, parquet_dir) = write_corpus(tmp.path(), &common::texts(docs));
    println!("ingest bench: {docs} documents of ~1,200 characters in {SHARDS} shards");
    println!("| input | xinstruct 1 worker (docs/s) | xinstruct 2 workers (docs/s) | datatrove 1 worker (docs/s) | ratio (1 worker) |");
    println!("|---|---|---|---|---|");
    for (kind, input) in [("jsonl", &jsonl_dir), ("parquet", &parquet_dir)] {
        let (t1, n1) = run_xinstruct(input, &tmp.path().join(format!("x1-{kind}")), 1);
        let (t2, n2) = run_xinstruct(input, &tmp.path().join(format!("x2-{kind}")), 2);
        assert_eq!(n1 as usize, docs);
        assert_eq!(n2 as usize, docs);
        let ours = docs as f64 / t1;
        let out = tmp.path().join(format!("dt-out-{kind}"));
        let logs = tmp.path().join(format!("dt-logs-{kind}"));
        let args = [kind, input.to_str().unwrap(), out.to_str().unwrap(), logs.to_str().unwrap()];
        let peer_secs = run_python(DATATROVE, &args).and_then(|l| l.parse::<f64>().ok());
        let (peer, ratio) = match peer_secs {
            Some(t) => (format!("{:.0}", docs as f64 / t), format!("{:.2}×", ours / (docs as f64 / t))),
            None => ("n/a (datatrove not installed)".into(), "n/a".into()),
        };
        println!("| {kind} | {ours:.0} | {:.0} | {peer} | {ratio} |", docs as f64 / t2);
    }
}
