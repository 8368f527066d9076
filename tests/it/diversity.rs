//! Diversification: embeddings against sentence-transformers' numbers, quotas, determinism
//! under 1 and 2 threads, incremental assignment vs re-clustering, export of the selection.

use crate::common::*;
use arrow::array::{new_null_array, ArrayRef, RecordBatch, StringArray, UInt64Array, UInt8Array};
use std::path::Path;
use std::sync::Arc;
use xinstruct_operators::diversity::embed::cosine;
use xinstruct_operators::diversity::{EmbedConfig, Embedder, Engine};

/// Cosine similarities from sentence-transformers 6.2.0 (torch 2.15, CPU) with the same model
/// files (`SentenceTransformer(dir).encode([a, b], normalize_embeddings=True)`), and the first
/// five components of the embedding of "Hello world.".
const REFERENCE: [(&str, &str, f32); 4] = [
    (
        "Summarize this news article about the election.",
        "Give a short summary of the report on the vote.",
        0.620850,
    ),
    ("Write a poem about the sea.", "Explain how to cook rice properly.", 0.113891),
    ("What rights does every person have at work?", "Describe the rights of workers.", 0.786796),
    ("Translate the following paragraph into Turkish.", "How do I bake bread?", 0.045764),
];
const HELLO: [f32; 5] = [-0.027708, 0.026686, -0.015977, 0.027548, -0.039994];

#[test]
fn embeddings_match_sentence_transformers() {
    let dir = xinstruct::models::ensure("all-minilm-l6-v2").unwrap();
    let e = Embedder::load(&dir, &EmbedConfig::default(), &candle_core::Device::Cpu).unwrap();
    assert_eq!(e.dim, 384);
    // All sentences in one batch (padded to the longest) and one by one: the same vectors.
    let texts: Vec<&str> = REFERENCE.iter().flat_map(|(a, b, _)| [*a, *b]).collect();
    let batched = e.embed(&texts, None).unwrap();
    for (i, (a, b, want)) in REFERENCE.iter().enumerate() {
        let got = cosine(&batched[2 * i], &batched[2 * i + 1]);
        assert!((got - want).abs() < 1e-4, "{a:?} ~ {b:?}: {got} vs sentence-transformers {want}");
        let single = e.embed(&[a], None).unwrap().remove(0);
        assert!(cosine(&single, &batched[2 * i]) > 0.99999);
    }
    let hello = e.embed(&["Hello world."], None).unwrap().remove(0);
    for (g, w) in hello.iter().zip(HELLO) {
        assert!((g - w).abs() < 1e-4, "{:?} vs {HELLO:?}", &hello[..5]);
    }
    let norm: f32 = hello.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
}

/// The native CPU encoder computes candle's BertModel function: same vectors for short, long
/// (truncated at max_tokens), non-English and empty texts, in mixed batches; and the native
/// engine gives bit-identical vectors on 1 and 3 threads.
#[test]
fn native_engine_equals_candle_bert() {
    let dir = xinstruct::models::ensure("all-minilm-l6-v2").unwrap();
    let long = "The committee met on Tuesday to discuss the budget for the new school. ".repeat(40);
    let texts: Vec<&str> = vec![
        "Write a poem about the sea.",
        &long,
        "",
        "Eleza jinsi ya kupika wali.",
        "Açıklayın: Türkiye'nin başkenti neresidir?",
        "เขียนบทกวีเกี่ยวกับทะเล",
        "What rights does every person have at work?",
        "हिंदी में उत्तर दें।",
        "Hello world.",
    ];
    let cfg = |engine, threads| EmbedConfig {
        engine,
        threads,
        batch_size: 4,
        max_tokens: 128,
        ..Default::default()
    };
    let cpu = candle_core::Device::Cpu;
    let candle = Embedder::load(&dir, &cfg(Engine::Candle, 1), &cpu).unwrap().embed(&texts, None).unwrap();
    let native = Embedder::load(&dir, &cfg(Engine::Native, 1), &cpu).unwrap().embed(&texts, None).unwrap();
    let threaded = Embedder::load(&dir, &cfg(Engine::Native, 3), &cpu).unwrap().embed(&texts, None).unwrap();
    assert_eq!(native, threaded, "1 and 3 threads differ");
    for ((t, a), b) in texts.iter().zip(&candle).zip(&native) {
        assert_eq!(a.len(), 384);
        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "{t:.30?}: components differ by up to {worst}");
        assert!(cosine(a, b) > 0.99999, "{t:.30?}");
    }
}

const TASKS: [&str; 6] = [
    "Explain how to cook {}.",
    "Write a short poem about {}.",
    "Summarize the news article about {}.",
    "What are the health benefits of {}?",
    "Give three tips for photographing {}.",
    "Translate a paragraph about {} into English.",
];
const TOPICS: [&str; 10] =
    ["rice", "bread", "fish soup", "green tea", "mangoes", "lentils", "noodles", "coffee", "honey", "yogurt"];

/// A dataset of pairs as the pipeline writes them: `n` instructions per language.
fn dataset(root: &Path, langs: &[&str], part: &str, offset: usize, n: usize) {
    let schema = xinstruct::sink::docs_schema();
    for lang in langs {
        let dir = root.join(format!("lang={lang}"));
        std::fs::create_dir_all(&dir).unwrap();
        let ins: Vec<String> = (offset..offset + n)
            .map(|i| TASKS[i % TASKS.len()].replace("{}", TOPICS[(i / TASKS.len()) % TOPICS.len()]))
            .collect();
        let ids: Vec<String> = (offset..offset + n).map(|i| format!("{lang}-{i:04}")).collect();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "id" => Arc::new(StringArray::from(ids.clone())),
                    "text" => Arc::new(StringArray::from(vec!["response"; n])),
                    "shard" => Arc::new(StringArray::from(vec!["s.jsonl"; n])),
                    "offset" | "epoch" => Arc::new(UInt64Array::from(vec![1u64; n])),
                    "instruction" => Arc::new(StringArray::from(ins.clone())),
                    "label" => Arc::new(StringArray::from(vec!["good"; n])),
                    "score" => {
                        Arc::new(UInt8Array::from((0..n).map(|i| (i % 5) as u8 + 1).collect::<Vec<_>>()))
                    }
                    _ => new_null_array(f.data_type(), n),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let file = std::fs::File::create(dir.join(format!("{part}.parquet"))).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    commit_all(root);
}

/// Writes a manifest committing every part under `root` (one shard per part), as a run would:
/// readers read exactly the manifest's files. The diversity selection already committed stays.
fn commit_all(root: &Path) {
    use xinstruct::manifest::{FileEntry, Manifest, ShardEntry};
    use xinstruct_operators::source::{Compression, Format};
    let mut m = Manifest::new();
    if let Ok(old) = std::fs::read(root.join("_xinstruct/manifest.json")) {
        m.diversity = serde_json::from_slice::<Manifest>(&old).unwrap().diversity;
    }
    for path in files_under(root).into_iter().filter(|p| p.starts_with("lang=") && p.ends_with(".parquet")) {
        m.shards.insert(
            path.clone(),
            ShardEntry {
                uri: path.clone(),
                format: Format::Jsonl,
                compression: Compression::None,
                size: 0,
                version: String::new(),
                content_hash: String::new(),
                epoch: 1,
                docs: 0,
                rejects: 0,
                file_error: None,
                files: vec![FileEntry { path, rows: 0, bytes: 0 }],
                born: None,
                settings: None,
            },
        );
    }
    std::fs::create_dir_all(root.join("_xinstruct")).unwrap();
    std::fs::write(root.join("_xinstruct/manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
}

fn diversify(data: &Path, extra: &[&str]) -> String {
    let out = xinst().args(["diversify", "--data"]).arg(data).args(extra).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// (lang, id, cluster, cluster size, rank) from `xinst sql`.
fn selection(data: &Path) -> String {
    let out = xinst()
        .args(["sql", "--format", "csv", "--data"])
        .arg(data)
        .arg("SELECT lang, id, cluster_id, cluster_size, rank FROM diversity ORDER BY lang, id")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn quotas_are_met_the_same_under_1_and_2_threads_and_new_pairs_join_saved_clusters() {
    let tmp = tempdir();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    dataset(&a, &["sw_Latn", "hi_Deva"], "part-1", 0, 60);
    dataset(&b, &["sw_Latn", "hi_Deva"], "part-1", 0, 60);
    let memo = tmp.path().join("memo.redb");
    let m = memo.to_str().unwrap();
    let report = diversify(&a, &["--quota", "12", "--workers", "1", "--memo", m]);
    diversify(&b, &["--quota", "12", "--workers", "2", "--memo", m]);
    assert_eq!(selection(&a), selection(&b));
    // 60 pairs, quota 12: k = 12 clusters (one pair from each, the paper's rule), all covered.
    for lang in ["sw_Latn", "hi_Deva"] {
        let line = report.lines().find(|l| l.starts_with(lang)).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&cols[1..5], ["60", "12", "12", "12"], "{report}");
        let (pair, random): (f64, f64) = (cols[5].parse().unwrap(), cols[6].parse().unwrap());
        assert!(pair < random, "the selection is more diverse than a random sample: {line}");
    }
    let rows = selection(&a);
    assert_eq!(rows.lines().filter(|l| l.starts_with("sw_Latn") && !l.ends_with(',')).count(), 12);

    // The canned query counts the same selection per cluster.
    let q = xinst()
        .args(["sql", "--format", "csv", "--query", "cluster_sizes", "--data"])
        .arg(&a)
        .output()
        .unwrap();
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    let selected: usize = String::from_utf8_lossy(&q.stdout)
        .lines()
        .filter(|l| l.starts_with("sw_Latn"))
        .map(|l| l.split(',').nth(2).unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(selected, 12);

    // The selection exported in rank order, 12 per language.
    let out = tmp.path().join("sel.jsonl");
    let run =
        xinst().args(["export", "--selected", "--data"]).arg(&a).arg("--out").arg(&out).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 24);
    // Filters combine with the selection.
    let run = xinst()
        .args(["export", "--selected", "--labels", "good", "--drop-translate", "--data"])
        .arg(&a)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 24);

    // A new shard: assigned to the saved centroids (no re-clustering), quota still exact.
    dataset(&a, &["sw_Latn"], "part-2", 60, 6);
    let again = diversify(&a, &["--quota", "12", "--memo", m]);
    let line = again.lines().find(|l| l.starts_with("sw_Latn")).unwrap();
    assert!(line.contains(" 66 ") && line.trim_end().ends_with("no"), "{again}");
    let rebuilt = diversify(&a, &["--quota", "12", "--rebuild", "--memo", m]);
    assert!(rebuilt.lines().find(|l| l.starts_with("sw_Latn")).unwrap().trim_end().ends_with("yes"));
}

/// (id, selected) of the diversity table, and the ids of the committed pairs, from `xinst sql`.
fn selection_and_pairs(data: &Path) -> (Vec<(String, bool)>, Vec<String>) {
    let csv = |q: &str| {
        let out = xinst().args(["sql", "--format", "csv", "--data"]).arg(data).arg(q).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().skip(1).map(String::from).collect::<Vec<_>>()
    };
    let sel = csv("SELECT id, selected FROM diversity ORDER BY id")
        .into_iter()
        .map(|l| {
            let (id, s) = l.split_once(',').unwrap();
            (id.to_string(), s == "true")
        })
        .collect();
    (sel, csv("SELECT id FROM pairs WHERE instruction IS NOT NULL ORDER BY id"))
}

#[test]
fn watch_commits_the_selection_with_each_new_shard() {
    let tmp = tempdir();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let docs = crate::filters::documents("swh");
    assert!(docs.len() >= 4, "{}", docs.len());
    let shard = |name: &str, docs: &[String], from: usize| {
        let lines: Vec<String> = docs
            .iter()
            .enumerate()
            .map(|(i, t)| serde_json::json!({"id": format!("sw-{:02}", from + i), "text": t}).to_string())
            .collect();
        // Written aside and renamed, so the watch never lists a half-written shard.
        let tmp_path = input.join(format!(".{name}.tmp"));
        std::fs::write(&tmp_path, lines.join("\n") + "\n").unwrap();
        std::fs::rename(&tmp_path, input.join(name)).unwrap();
    };
    let half = docs.len() / 2;
    shard("a.jsonl", &docs[..half], 0);
    let out = tmp.path().join("out");
    let cfg = tmp.path().join("x.toml");
    std::fs::write(&cfg, "[sample]\nquota = 2\n[reverse_instruction]\ntemplate = \"fewshot\"\n").unwrap();
    let mut watch = xinst()
        .args([
            "watch",
            "--no-progress",
            "--interval",
            "1",
            "--skip",
            "cross_check,evaluate,refine",
            "--config",
        ])
        .arg(&cfg)
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .stderr(std::fs::File::create(tmp.path().join("watch.log")).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let committed = || committed_shards(&out);
    let wait_for = |n: usize| {
        while committed() < n {
            let log = std::fs::read_to_string(tmp.path().join("watch.log")).unwrap_or_default();
            assert!(started.elapsed().as_secs() < 600, "watch did not commit {n} shards:\n{log}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    // After each commit the selection holds exactly the committed pairs, and the quota.
    let check = || {
        let (sel, pairs) = selection_and_pairs(&out);
        let ids: Vec<String> = sel.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(ids, pairs, "the selection is over the committed pairs");
        assert_eq!(sel.iter().filter(|(_, s)| *s).count(), pairs.len().min(2), "{sel:?}");
        pairs.len()
    };
    wait_for(1);
    let first = check();
    assert!(first > 0);
    shard("b.jsonl", &docs[half..], half);
    wait_for(2);
    let second = check();
    assert!(second > first, "the new shard's pairs joined the selection: {first} -> {second}");
    let _ = std::process::Command::new("kill").args(["-INT", &watch.id().to_string()]).status();
    let status = watch.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // A full re-cluster of the same pairs meets the same quota.
    diversify(&out, &["--quota", "2", "--rebuild"]);
    let (sel, pairs) = selection_and_pairs(&out);
    assert_eq!((sel.len(), sel.iter().filter(|(_, s)| *s).count()), (pairs.len(), 2));
}
