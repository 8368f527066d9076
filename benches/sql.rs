//! `lang_stats` latency on a 1M-row dataset, local vs an S3-compatible server on loopback
//! (s3s-fs, the one the tests use), in one run.
//!
//!     cargo bench --bench sql               # XINST_BENCH_ROWS=1000000 by default
//!
//! The dataset has the pairs layout (`lang=xx/part-*.parquet`, zstd) with real text: the
//! benchmark corpus's documents (~1,200 characters) spread over the 11 languages' partitions.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use xinstruct::sink::docs_schema;
use xinstruct::sql::{SqlSession, CANNED};

fn write_dataset(root: &Path, rows: usize) {
    let texts = common::texts(20_000);
    let langs = [
        "bn_Beng", "en_Latn", "fi_Latn", "hi_Deva", "id_Latn", "sw_Latn", "ta_Taml", "th_Thai", "tr_Latn",
        "ur_Arab", "vi_Latn",
    ];
    let per_file = 50_000;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::try_new(3).unwrap()))
        .set_max_row_group_row_count(Some(20_000))
        .build();
    let mut written = 0;
    let mut file_no = 0;
    while written < rows {
        let n = per_file.min(rows - written);
        let lang = langs[file_no % langs.len()];
        let dir = root.join(format!("lang={lang}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::fs::File::create(dir.join(format!("part-{file_no:06}.parquet"))).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, docs_schema(), Some(props.clone())).unwrap();
        for chunk_start in (0..n).step_by(10_000) {
            let m = 10_000.min(n - chunk_start);
            let idx = |i: usize| (written + chunk_start + i) % texts.len();
            let ids: Vec<String> = (0..m).map(|i| format!("{}", written + chunk_start + i)).collect();
            let text: Vec<&str> = (0..m).map(|i| texts[idx(i)].as_str()).collect();
            let columns: Vec<arrow::array::ArrayRef> = vec![
                Arc::new(arrow::array::StringArray::from(ids)),
                Arc::new(arrow::array::StringArray::from(text)),
                Arc::new(arrow::array::StringArray::from(vec![None::<&str>; m])),
                Arc::new(arrow::array::StringArray::from(vec!["bench"; m])),
                Arc::new(arrow::array::UInt64Array::from_iter_values(
                    (0..m as u64).map(|i| i + chunk_start as u64),
                )),
                Arc::new(arrow::array::UInt64Array::from(vec![1u64; m])),
                Arc::new(arrow::array::StringArray::from(vec![None::<&str>; m])),
            ];
            w.write(&arrow::array::RecordBatch::try_new(docs_schema(), columns).unwrap()).unwrap();
        }
        w.close().unwrap();
        written += n;
        file_no += 1;
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows: usize =
        std::env::var("XINST_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    // s3s-fs serves folders as buckets: the dataset is written once, inside the bucket folder.
    let local = tmp.path().join("s3/bench/ds");
    let started = Instant::now();
    write_dataset(&local, rows);
    eprintln!("wrote {rows} rows in {:.1}s", started.elapsed().as_secs_f64());

    let s3s = std::env::var("XINST_S3S_FS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/s3s/bin/s3s-fs"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = std::process::Command::new(&s3s)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            "bench",
            "--secret-key",
            "bench-secret",
        ])
        .arg(tmp.path().join("s3"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("s3s-fs (run .ci/run once, or set XINST_S3S_FS)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: set before any thread that reads the environment is started.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
        std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench-secret");
        std::env::set_var("AWS_REGION", "us-east-1");
    }
    let query = CANNED.iter().find(|(n, _)| *n == "lang_stats").unwrap().1;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let time = |data: &str| -> (f64, usize) {
        rt.block_on(async {
            let session = SqlSession::open(data, false).await.unwrap();
            let mut best = f64::INFINITY;
            let mut n = 0;
            for _ in 0..3 {
                let t = Instant::now();
                let batches = session.query(query).await.unwrap();
                best = best.min(t.elapsed().as_secs_f64());
                n = batches.iter().map(|b| b.num_rows()).sum();
            }
            (best, n)
        })
    };
    let (local_secs, local_rows) = time(local.to_str().unwrap());
    let (s3_secs, s3_rows) = time("s3://bench/ds");
    let _ = server.kill();
    assert_eq!(local_rows, s3_rows);
    println!("sql bench: lang_stats over {rows} rows ({local_rows} languages), best of 3, 2 threads");
    println!("| dataset | lang_stats latency (s) |\n|---|---|");
    println!("| local folder | {local_secs:.2} |");
    println!("| s3s-fs on loopback | {s3_secs:.2} |");
    println!("S3 / local = {:.2}", s3_secs / local_secs);
}
