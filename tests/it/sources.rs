//! Every source format, read end to end, and every kind of bad input.

use crate::common::*;
use std::collections::BTreeMap;
use std::io::Write;

#[test]
fn sample_crawl_reads_every_format_into_language_partitions() {
    let tmp = tempdir();
    let out = tmp.path().join("out");
    let (_, stats) = run_xinst(sample_dir().to_str().unwrap(), out.to_str().unwrap(), &RAW, 0);
    let rows = read_rows(&out);
    let mut per_lang: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_shard: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rows {
        *per_lang.entry(r.lang.as_str()).or_default() += 1;
        *per_shard.entry(r.shard.rsplit('/').next().unwrap().to_string()).or_default() += 1;
    }
    // build_sample.py: 3 JSONL shards of 62 documents (+2 bad lines in the plain one), a
    // WET shard of 52 conversion records, a Parquet shard with FineWeb-2 language labels.
    assert_eq!(
        per_shard,
        BTreeMap::from([
            ("CC-MAIN-20240601-00000.warc.wet.gz".to_string(), 52),
            ("culturax-00000.jsonl".to_string(), 62),
            ("culturax-00001.jsonl.gz".to_string(), 62),
            ("culturax-00002.jsonl.zst".to_string(), 62),
            ("fineweb2-00000.parquet".to_string(), 47),
        ])
    );
    assert_eq!(
        per_lang,
        BTreeMap::from([("eng_Latn", 20), ("spa_Latn", 3), ("und", 238), ("vie_Latn", 21), ("zsm_Latn", 3)])
    );
    assert_eq!(
        read_rejects(&out),
        vec![
            ("culturax-00000.jsonl".to_string(), 7, "invalid_json".to_string()),
            ("culturax-00000.jsonl".to_string(), 19, "missing_text".to_string()),
        ]
    );
    assert_eq!(stats["docs_read"], 285);
    assert_eq!(stats["docs_out"], 285);
    assert_eq!(stats["shards_processed"], 5);
    assert_eq!(stats["operators"]["read"]["dropped"]["invalid_json"], 1);

    // Field mapping per format.
    let wet = rows.iter().find(|r| r.shard.ends_with(".warc.wet.gz")).unwrap();
    assert!(wet.id.starts_with("urn:uuid:"), "{}", wet.id);
    assert!(wet.url.as_deref().unwrap().starts_with("https://"));
    assert!(wet.meta.as_deref().unwrap().contains("warc_date"));
    let pq = rows.iter().find(|r| r.shard.ends_with(".parquet")).unwrap();
    assert!(pq.id.starts_with("<urn:uuid:"));
    assert!(pq.meta.as_deref().unwrap().contains("CC-MAIN-2024-10"));
    let jsonl = rows.iter().find(|r| r.shard.ends_with("culturax-00001.jsonl.gz")).unwrap();
    assert_eq!(jsonl.id.len(), 32, "derived id: a 128-bit hash of shard + offset");
    assert!(jsonl.meta.as_deref().unwrap().contains("\"timestamp\""));
    // Ids are unique and stable.
    let ids: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), rows.len());
    let again = tmp.path().join("again");
    run_xinst(sample_dir().to_str().unwrap(), again.to_str().unwrap(), &RAW, 0);
    assert_eq!(read_rows(&again), rows);
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// JSONL lines with hash digits, so compressed streams span many blocks and a cut keeps some.
fn many_lines(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            let noise = xxhash_rust::xxh3::xxh3_128(&(i as u64).to_le_bytes());
            format!("{{\"text\":\"{} {noise:032x}\"}}\n", synthetic_text(i as u64, 10))
        })
        .collect::<String>()
        .into_bytes()
}

#[test]
fn bad_inputs_become_rejects_and_the_run_goes_on() {
    let tmp = tempdir();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let w = |name: &str, bytes: &[u8]| std::fs::write(input.join(name), bytes).unwrap();
    w("malformed.jsonl", b"{\"text\":\"good one\"}\n{\"text\": oops}\n{\"text\":\"good two\"}\n");
    w("utf8.jsonl", b"{\"text\":\"bad \xc3\x28 byte\"}\n{\"text\":\"fine\"}\n");
    w(
        "missing.jsonl",
        b"{\"body\":\"no text field\"}\n{\"text\":42}\n{\"text\":\"\"}\n{\"text\":\"kept\"}\n",
    );
    w("empty.jsonl", b"");
    let full = gz(&many_lines(10_000));
    w("truncated.jsonl.gz", &full[..full.len() * 3 / 4]);
    let zst = zstd::encode_all(&many_lines(10_000)[..], 3).unwrap();
    w("truncated.jsonl.zst", &zst[..zst.len() * 3 / 4]);
    w("corrupt.parquet", b"PAR1 this is not a parquet file at all, just bytes PAR1");
    let mut huge = Vec::with_capacity(50 << 20);
    huge.extend_from_slice(b"{\"text\":\"");
    huge.resize(huge.len() + (50 << 20), b'x');
    huge.extend_from_slice(b"\"}\n{\"text\":\"after the huge one\"}\n");
    w("huge.jsonl", &huge);
    let out = tmp.path().join("out");
    let (_, stats) = run_xinst(input.to_str().unwrap(), out.to_str().unwrap(), &RAW, 3);

    let rejects = read_rejects(&out);
    let has = |shard: &str, reason: &str| rejects.iter().any(|(s, _, r)| s == shard && r == reason);
    for (shard, reason) in [
        ("malformed.jsonl", "invalid_json"),
        ("utf8.jsonl", "invalid_utf8"),
        ("missing.jsonl", "missing_text"),
        ("missing.jsonl", "empty_text"),
        ("empty.jsonl", "empty_file"),
        ("truncated.jsonl.gz", "truncated_input"),
        ("truncated.jsonl.zst", "truncated_input"),
        ("corrupt.parquet", "corrupt_parquet"),
        ("huge.jsonl", "doc_too_large"),
    ] {
        assert!(has(shard, reason), "no {reason} reject for {shard}: {rejects:?}");
    }
    // Offsets name the record: the malformed line is line 1, the bad UTF-8 line is line 0.
    assert!(rejects.contains(&("malformed.jsonl".into(), 1, "invalid_json".into())));
    assert!(rejects.contains(&("utf8.jsonl".into(), 0, "invalid_utf8".into())));
    assert_eq!(rejects.iter().filter(|(s, _, _)| s == "missing.jsonl").count(), 3);

    let rows = read_rows(&out);
    let texts = |shard: &str| -> Vec<String> {
        rows.iter().filter(|r| r.shard.ends_with(shard)).map(|r| r.text.clone()).collect()
    };
    assert_eq!(texts("malformed.jsonl").len(), 2);
    assert_eq!(texts("utf8.jsonl"), vec!["fine"]);
    assert_eq!(texts("missing.jsonl"), vec!["kept"]);
    assert_eq!(texts("huge.jsonl"), vec!["after the huge one"]);
    let gz_docs = texts("truncated.jsonl.gz").len();
    let zst_docs = texts("truncated.jsonl.zst").len();
    assert!(gz_docs > 1000 && gz_docs < 10_000, "records before the truncation are kept: {gz_docs}");
    assert!(zst_docs > 1000 && zst_docs < 10_000, "records before the truncation are kept: {zst_docs}");

    let file_errors: Vec<String> =
        stats["file_errors"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(file_errors.len(), 4, "{file_errors:?}");
    for name in ["truncated.jsonl.gz", "truncated.jsonl.zst", "corrupt.parquet", "empty.jsonl"] {
        assert!(file_errors.iter().any(|e| e.contains(name)), "{name} not in {file_errors:?}");
    }
    // Shards with data errors are committed (rerunning gives the same result) …
    let m = manifest(&out);
    assert_eq!(m["shards"].as_object().unwrap().len(), 8);
    let (_, again) = run_xinst(input.to_str().unwrap(), out.to_str().unwrap(), &RAW, 0);
    assert_eq!(again["shards_processed"], 0);
}

#[test]
fn wet_records_other_than_conversion_are_skipped_and_truncation_is_reported() {
    let tmp = tempdir();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let wet = std::fs::read(sample_dir().join("CC-MAIN-20240601-00000.warc.wet.gz")).unwrap();
    std::fs::write(input.join("cut.warc.wet.gz"), &wet[..wet.len() * 2 / 3]).unwrap();
    let out = tmp.path().join("out");
    let (_, stats) = run_xinst(input.to_str().unwrap(), out.to_str().unwrap(), &RAW, 3);
    let docs = read_rows(&out).len();
    assert!(docs > 20 && docs < 52, "{docs}");
    let rejects = read_rejects(&out);
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert!(["truncated_input", "corrupt_warc"].contains(&rejects[0].2.as_str()), "{rejects:?}");
    assert_eq!(stats["docs_out"], docs as u64);
}
