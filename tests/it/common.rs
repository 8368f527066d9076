//! Shared test utilities: running the binary, writing corpora, reading the dataset back.

use arrow::array::{Array, AsArray};
use arrow::datatypes::UInt64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn xinst() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xinst"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("xinst-test-").tempdir().expect("temp dir")
}

pub fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")
}

/// `--skip` for every operator between read and write: the foundation's tests check reading,
/// state and commits on synthetic text that language ID would (rightly) reject.
pub const RAW: [&str; 2] =
    ["--skip", "normalize,lang_id,quality,dedup,reverse_instruction,cross_check,evaluate,refine"];

/// `--skip` for everything but dedup.
pub const DEDUP_ONLY: [&str; 2] =
    ["--skip", "normalize,lang_id,quality,reverse_instruction,cross_check,evaluate,refine"];

/// `--skip` for the X-Instruction stages: the filtered corpus alone, without a model.
pub const FILTERS: [&str; 2] = ["--skip", "reverse_instruction,cross_check,evaluate,refine"];

/// Runs `xinst run` and returns the output; panics with stderr on an unexpected exit code.
pub fn run_xinst(input: &str, output: &str, extra: &[&str], expect_code: i32) -> (Output, serde_json::Value) {
    let stats = tempfile::NamedTempFile::new().expect("stats file");
    let out = xinst()
        .args(["run", "--no-progress", "--input", input, "--output", output, "--stats-json"])
        .arg(stats.path())
        .args(extra)
        .output()
        .expect("run xinst");
    assert_eq!(
        out.status.code(),
        Some(expect_code),
        "xinst run {input} -> {output} {extra:?}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json =
        std::fs::read(stats.path()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    (out, json)
}

pub fn copy_sample(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(sample_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A deterministic pseudo-random document of roughly `words` words.
pub fn synthetic_text(seed: u64, words: usize) -> String {
    const VOCAB: [&str; 24] = [
        "haki",
        "kila",
        "mtu",
        "ana",
        "uhuru",
        "usawa",
        "sheria",
        "taifa",
        "elimu",
        "kazi",
        "familia",
        "amani",
        "ihmisoikeus",
        "vapaus",
        "tasa-arvo",
        "laki",
        "kansakunta",
        "koulutus",
        "hak",
        "asasi",
        "manusia",
        "kebebasan",
        "pendidikan",
        "keluarga",
    ];
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut out = String::new();
    for i in 0..words {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51afd7ed558ccd);
        x ^= x >> 29;
        if i > 0 {
            out.push(if i % 17 == 0 { '\n' } else { ' ' });
        }
        out.push_str(VOCAB[(x % VOCAB.len() as u64) as usize]);
    }
    out.push('.');
    out
}

/// Writes a JSONL shard of `n` synthetic documents (CulturaX fields).
pub fn write_jsonl_shard(path: &Path, seed: u64, n: usize, words: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let text = synthetic_text(seed * 1_000_003 + i as u64, words);
        let rec = serde_json::json!({"text": text, "url": format!("https://ex.org/{seed}/{i}"), "timestamp": "2024-01-01"});
        writeln!(f, "{rec}").unwrap();
    }
}

/// One dataset row as the tests compare them (the epoch is left out: it depends on batching).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub lang: String,
    pub id: String,
    pub text: String,
    pub url: Option<String>,
    pub shard: String,
    pub offset: u64,
    pub meta: Option<String>,
}

fn parquet_files(dir: &Path, acc: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            parquet_files(&p, acc);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            acc.push(p);
        }
    }
}

/// The record batches of a Parquet file.
fn batches(file: &Path) -> Vec<arrow::array::RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// All committed document rows under `lang=*/`, sorted (a multiset).
pub fn read_rows(dataset: &Path) -> Vec<Row> {
    rows_under(dataset, "")
}

/// The filtered corpus: documents not sampled for an instruction (`corpus/lang=*/`), sorted.
pub fn read_corpus(dataset: &Path) -> Vec<Row> {
    rows_under(dataset, "corpus/")
}

fn rows_under(dataset: &Path, folder: &str) -> Vec<Row> {
    let mut files = Vec::new();
    parquet_files(dataset, &mut files);
    let mut rows = Vec::new();
    for file in files {
        let rel = file.strip_prefix(dataset).unwrap().to_string_lossy().to_string();
        let lang =
            rel.strip_prefix(folder).and_then(|r| r.strip_prefix("lang=")).and_then(|r| r.split('/').next());
        let Some(lang) = lang else {
            continue;
        };
        for batch in batches(&file) {
            let s = |name: &str| batch.column_by_name(name).unwrap().as_string::<i32>().clone();
            let (id, text, url, shard, meta) = (s("id"), s("text"), s("url"), s("shard"), s("meta"));
            let offset = batch.column_by_name("offset").unwrap().as_primitive::<UInt64Type>().clone();
            for i in 0..batch.num_rows() {
                rows.push(Row {
                    lang: lang.to_string(),
                    id: id.value(i).to_string(),
                    text: text.value(i).to_string(),
                    url: url.is_valid(i).then(|| url.value(i).to_string()),
                    shard: shard.value(i).to_string(),
                    offset: offset.value(i),
                    meta: meta.is_valid(i).then(|| meta.value(i).to_string()),
                });
            }
        }
    }
    rows.sort();
    rows
}

/// Committed rejects as (shard file name, offset, reason), sorted.
pub fn read_rejects(dataset: &Path) -> Vec<(String, u64, String)> {
    let mut files = Vec::new();
    parquet_files(&dataset.join("rejects"), &mut files);
    let mut out = Vec::new();
    for file in files {
        for batch in batches(&file) {
            let shard = batch.column_by_name("shard").unwrap().as_string::<i32>().clone();
            let reason = batch.column_by_name("reason").unwrap().as_string::<i32>().clone();
            let offset = batch.column_by_name("offset").unwrap().as_primitive::<UInt64Type>().clone();
            for i in 0..batch.num_rows() {
                let name = shard.value(i).rsplit('/').next().unwrap().to_string();
                out.push((name, offset.value(i), reason.value(i).to_string()));
            }
        }
    }
    out.sort();
    out
}

pub fn manifest(dataset: &Path) -> serde_json::Value {
    let bytes = std::fs::read(dataset.join("_xinstruct/manifest.json")).expect("manifest");
    serde_json::from_slice(&bytes).expect("manifest json")
}

/// Relative paths of all files under `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, acc: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, acc);
            } else {
                acc.push(p.strip_prefix(root).unwrap().to_string_lossy().to_string());
            }
        }
    }
    let mut acc = Vec::new();
    walk(dir, dir, &mut acc);
    acc.sort();
    acc
}

/// A TCP port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A pair as the dataset stores it (the columns the X-Instruction stages write).
#[derive(Debug, Clone, PartialEq)]
pub struct PairRow {
    pub id: String,
    pub lang: String,
    pub text: String,
    pub instruction: String,
    pub label: String,
    pub score: Option<u8>,
    pub iteration: u32,
    pub prompt_version: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub instruction_lang: String,
    pub translate: bool,
}

/// Every row with a pair, sorted by id.
pub fn pairs(dataset: &Path) -> Vec<PairRow> {
    use arrow::datatypes::{UInt32Type, UInt8Type};
    let mut files = Vec::new();
    parquet_files(dataset, &mut files);
    let mut out = Vec::new();
    let docs = files
        .iter()
        .filter(|f| f.strip_prefix(dataset).is_ok_and(|rel| rel.to_string_lossy().starts_with("lang=")));
    for f in docs {
        let lang = f
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().trim_start_matches("lang=").to_string())
            .unwrap_or_default();
        for b in batches(f) {
            let s = |name: &str| b.column_by_name(name).unwrap().as_string::<i32>().clone();
            let (id, text, ins, label, pv, il) = (
                s("id"),
                s("text"),
                s("instruction"),
                s("label"),
                s("prompt_version"),
                s("instruction_lang"),
            );
            let score = b.column_by_name("score").unwrap().as_primitive::<UInt8Type>().clone();
            let it = b.column_by_name("iteration").unwrap().as_primitive::<UInt32Type>().clone();
            let tin = b.column_by_name("tokens_in").unwrap().as_primitive::<UInt64Type>().clone();
            let tout = b.column_by_name("tokens_out").unwrap().as_primitive::<UInt64Type>().clone();
            let tr = b.column_by_name("translate").unwrap().as_boolean().clone();
            for r in 0..b.num_rows() {
                if ins.is_null(r) {
                    continue;
                }
                out.push(PairRow {
                    id: id.value(r).into(),
                    lang: lang.clone(),
                    text: text.value(r).into(),
                    instruction: ins.value(r).into(),
                    label: if label.is_null(r) { String::new() } else { label.value(r).into() },
                    score: (!score.is_null(r)).then(|| score.value(r)),
                    iteration: it.value(r),
                    prompt_version: pv.value(r).into(),
                    tokens_in: tin.value(r),
                    tokens_out: tout.value(r),
                    instruction_lang: if il.is_null(r) { String::new() } else { il.value(r).into() },
                    translate: tr.value(r),
                });
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// A counter of one operator in a run's stats (0 when absent).
pub fn counter(stats: &serde_json::Value, op: &str, c: &str) -> u64 {
    stats["operators"][op]["counters"][c].as_u64().unwrap_or(0)
}

/// Model calls of every stage in a run.
pub fn calls(stats: &serde_json::Value) -> u64 {
    stats["operators"]
        .as_object()
        .unwrap()
        .values()
        .map(|o| o["counters"]["model_calls"].as_u64().unwrap_or(0))
        .sum()
}

/// Shards the dataset's manifest commits now (0 before the first commit); for watching a
/// running `xinst watch`.
pub fn committed_shards(out: &Path) -> usize {
    std::fs::read(out.join("_xinstruct/manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|m| m["shards"].as_object().map(|s| s.len()))
        .unwrap_or(0)
}
