//! SQL: golden tests (`queries/*.slt`, sqllogictest) over the checked-in fixture dataset
//! (`tests/fixtures/dataset`, written by `xinst run --input data/sample --output
//! tests/fixtures/dataset`), the CLI, and S3-independent guards. Regenerate expected output
//! with `XINST_SLT_UPDATE=1 cargo test --test it sql::golden`, never by hand.

use crate::common::*;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use sqllogictest::{DBOutput, DefaultColumnType};
use std::path::{Path, PathBuf};
use xinstruct::sql::{SqlSession, CANNED};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dataset")
}

struct Db(SqlSession);

#[derive(Debug)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for DbError {}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        t if t.is_integer() => DefaultColumnType::Integer,
        t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let formatters: Vec<ArrayFormatter> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for i in 0..b.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(i).to_string())
                    .map(|v| if v.is_empty() { "(empty)".into() } else { v })
                    .collect(),
            );
        }
    }
    out
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Db {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let batches = self.0.query(sql).await.map_err(|e| DbError(format!("{e:#}")))?;
        let is_query = sql.trim_start().to_ascii_lowercase().starts_with("select")
            || sql.trim_start().to_ascii_lowercase().starts_with("with");
        if !is_query {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = match batches.first() {
            Some(b) => b.schema().fields().iter().map(|f| column_type(f.data_type())).collect(),
            None => Vec::new(),
        };
        Ok(DBOutput::Rows { types, rows: rows(&batches) })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "xinstruct-datafusion"
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

#[test]
fn golden() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let update = std::env::var_os("XINST_SLT_UPDATE").is_some();
    let files = slt_files();
    assert!(files.len() >= CANNED.len(), "a golden file per canned query: {files:?}");
    for file in files {
        rt.block_on(async {
            let data = fixture().display().to_string();
            let mut runner = sqllogictest::Runner::new(move || {
                let data = data.clone();
                async move { Ok(Db(SqlSession::open(&data, false).await.map_err(|e| DbError(format!("{e:#}")))?)) }
            });
            if update {
                runner
                    .update_test_file(
                        &file,
                        " ",
                        sqllogictest::default_validator,
                        sqllogictest::default_normalizer,
                        sqllogictest::default_column_validator,
                    )
                    .await
                    .unwrap();
            } else {
                runner.run_file_async(&file).await.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            }
        });
    }
}

#[test]
fn every_canned_query_has_its_golden_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries");
    for (name, sql) in CANNED {
        let golden = std::fs::read_to_string(dir.join(format!("{name}.slt")))
            .unwrap_or_else(|_| panic!("queries/{name}.slt missing"));
        let statement =
            sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
        assert!(
            golden.contains(statement.trim().trim_end_matches(';')),
            "queries/{name}.slt does not run queries/{name}.sql verbatim"
        );
        assert!(!xinstruct::sql::describe(sql).is_empty(), "{name}.sql needs a one-line comment");
    }
}

#[test]
fn cli_runs_canned_queries_and_formats() {
    let data = fixture();
    let out = xinst().args(["sql", "--data"]).arg(&data).args(["--query", "lang_stats"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("| lang ") && table.contains("Hindi") && table.contains("output_len_mean"),
        "{table}"
    );
    let out = xinst()
        .args(["sql", "--format", "csv", "--data"])
        .arg(&data)
        .arg("SELECT COUNT(*) AS n FROM pairs")
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(csv.starts_with("n\n") && csv.lines().nth(1).unwrap().parse::<u64>().unwrap() > 100, "{csv}");
    let out = xinst()
        .args(["sql", "--format", "json", "--data"])
        .arg(&data)
        .arg("SELECT lang FROM pairs GROUP BY lang ORDER BY lang LIMIT 1")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["lang"], "bn_Beng");
    let out = xinst().args(["sql", "--list"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), CANNED.len());
}

#[test]
fn writes_are_refused_unless_allowed() {
    let tmp = tempdir();
    let target = tmp.path().join("copy-out");
    for statement in [
        format!("COPY (SELECT 1) TO '{}' STORED AS CSV", target.display()),
        format!("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}'", target.display()),
        "INSERT INTO pairs (id) VALUES ('x')".to_string(),
    ] {
        let out = xinst().args(["sql", "--data"]).arg(fixture()).arg(&statement).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{statement}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("read-only") || err.contains("--allow-write"), "{statement}: {err}");
    }
    assert!(!target.exists());
    let out = xinst()
        .args(["sql", "--allow-write", "--data"])
        .arg(fixture())
        .arg(format!("COPY (SELECT 1 AS one) TO '{}' STORED AS CSV", target.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(target.exists());
}

#[test]
fn invalid_partition_values_are_refused() {
    let tmp = tempdir();
    let data = tmp.path().join("ds");
    std::fs::create_dir_all(data.join("lang=..")).unwrap();
    std::fs::write(data.join("lang=../part-0.parquet"), b"x").unwrap();
    let out = xinst().args(["sql", "--data"]).arg(&data).arg("SELECT COUNT(*) FROM pairs").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value"));
}

/// Copies a folder tree (the fixture dataset) to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dst = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dst);
        } else {
            std::fs::copy(entry.path(), dst).unwrap();
        }
    }
}

#[test]
fn readers_read_the_committed_files_and_a_folder_without_a_manifest_is_an_error() {
    let count = |data: &Path| {
        let out = xinst()
            .args(["sql", "--format", "csv", "--data"])
            .arg(data)
            .arg("SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM pairs")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (want, quiet) = count(&fixture());
    assert!(!quiet.contains("warning"), "{quiet}");
    let tmp = tempdir();
    let data = tmp.path().join("dataset");
    copy_tree(&fixture(), &data);
    // A stray copy of a committed part (a crash mid-commit, a file copied by hand).
    let dir = data.join("lang=sw_Latn");
    let part = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    std::fs::copy(&part, dir.join("part-999999-stray.parquet")).unwrap();
    let (got, warned) = count(&data);
    assert_eq!(got, want, "the stray part is not read: no duplicate ids");
    assert!(
        warned.contains("warning: 1 data files") && warned.contains("part-999999-stray.parquet"),
        "{warned}"
    );
    let lines: Vec<&str> = want.lines().collect();
    let (n, ids) = lines[1].split_once(',').unwrap();
    assert_eq!(n, ids, "{want}");

    // The easy slip: the demo's folder instead of its dataset.
    let out = xinst().args(["sql", "--data"]).arg(tmp.path()).arg("SELECT 1").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is not an xinstruct dataset") && err.contains("did you mean --data"), "{err}");
}
