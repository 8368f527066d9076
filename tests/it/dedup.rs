//! Dedup through the whole pipeline: incremental runs equal one run, any worker count gives
//! the same clusters, a takedown promotes the next document and equals a fresh run without
//! it, and changed settings re-cluster from the stored signatures (or re-hash everything).

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

const SHARDS: usize = 5;
const PER_SHARD: usize = 30;

/// Five JSONL shards with explicit ids; about a fifth of the documents are exact copies and a
/// fifth edited copies (a word changed, boilerplate appended) of earlier documents, in the
/// same or an earlier shard. Returns, per copy, (copy id, source id, exact).
fn write_corpus(dir: &Path) -> Vec<(String, String, bool)> {
    std::fs::create_dir_all(dir).unwrap();
    let mut x: u64 = 42;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut docs: Vec<(String, String)> = Vec::new();
    let mut planted = Vec::new();
    for s in 0..SHARDS {
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(dir.join(format!("shard-{s}.jsonl"))).unwrap());
        for i in 0..PER_SHARD {
            let id = format!("s{s}-{i:03}");
            let roll = next(10);
            let text = if !docs.is_empty() && roll < 2 {
                let (src, text) = docs[next(docs.len() as u64) as usize].clone();
                planted.push((id.clone(), src, true));
                text
            } else if !docs.is_empty() && roll < 4 {
                let (src, text) = docs[next(docs.len() as u64) as usize].clone();
                let mut words: Vec<String> = text.split(' ').map(String::from).collect();
                let at = next(words.len() as u64) as usize;
                words[at] = "mabadiliko".into();
                planted.push((id.clone(), src, false));
                format!("{} share this page", words.join(" "))
            } else {
                synthetic_text(1000 * s as u64 + i as u64, 150)
            };
            writeln!(f, "{}", serde_json::json!({"id": id, "text": text})).unwrap();
            docs.push((id, text));
        }
    }
    planted
}

fn sql(data: &Path, query: &str) -> String {
    let out = xinst().args(["sql", "--format", "csv", "--data"]).arg(data).arg(query).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// What a dataset says about dedup: the kept documents with their clusters, and the rejected
/// ones with reason and detail (which names the representative).
fn dedup_view(data: &Path) -> (String, String) {
    let kept = sql(data, "SELECT id, dup_cluster_id, dup_cluster_size FROM pairs ORDER BY id");
    let rejected =
        sql(data, "SELECT doc_id, reason, detail FROM rejects WHERE operator = 'dedup' ORDER BY doc_id");
    (kept, rejected)
}

/// Clusters as sets of ids (representatives aside), from the cluster table.
fn partition(data: &Path) -> BTreeSet<BTreeSet<String>> {
    let mut clusters: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in sql(data, "SELECT id, dup_cluster_id FROM dup_clusters").lines().skip(1) {
        let (id, cluster) = line.split_once(',').unwrap();
        clusters.entry(cluster.to_string()).or_default().insert(id.to_string());
    }
    clusters.into_values().collect()
}

fn copy_shards(from: &Path, to: &Path, shards: std::ops::Range<usize>) {
    std::fs::create_dir_all(to).unwrap();
    for s in shards {
        let name = format!("shard-{s}.jsonl");
        std::fs::copy(from.join(&name), to.join(&name)).unwrap();
    }
}

#[test]
fn five_runs_equal_one_run_under_any_worker_count() {
    let tmp = tempdir();
    let corpus = tmp.path().join("corpus");
    let planted = write_corpus(&corpus);
    let per_epoch = ["--shards-per-epoch", "1"];
    let one = tmp.path().join("one");
    let args = [&DEDUP_ONLY[..], &per_epoch[..]].concat();
    let (_, stats) = run_xinst(corpus.to_str().unwrap(), one.to_str().unwrap(), &args, 0);
    assert_eq!(stats["shards_processed"], 5);
    let reference = dedup_view(&one);

    // Every planted exact copy is an exact duplicate and every edited copy sits in its
    // source's cluster.
    let rejected = &reference.1;
    let clusters = partition(&one);
    for (copy, src, exact) in &planted {
        let together = clusters.iter().any(|c| c.contains(copy) && c.contains(src));
        assert!(together, "{copy} is a copy of {src}");
        if *exact {
            let line = rejected.lines().find(|l| l.starts_with(&format!("{copy},")));
            assert!(line.is_some_and(|l| l.contains(",exact_duplicate,")), "{copy}: {line:?}");
        }
    }
    assert!(planted.len() > 30, "{}", planted.len());

    // The same shards arriving one run at a time.
    let input = tmp.path().join("in");
    let inc = tmp.path().join("inc");
    for s in 0..SHARDS {
        copy_shards(&corpus, &input, s..s + 1);
        let (_, st) = run_xinst(input.to_str().unwrap(), inc.to_str().unwrap(), &DEDUP_ONLY, 0);
        assert_eq!(st["shards_processed"], 1, "run {s}");
        // A restart loads only the stored records the new shard's documents meet.
        let (stored, loaded) = (st["dedup_stored"].as_u64().unwrap(), st["dedup_loaded"].as_u64().unwrap());
        if s > 0 {
            assert!(stored > 0 && loaded < stored, "run {s}: {loaded} of {stored} stored records loaded");
        }
    }
    assert_eq!(dedup_view(&inc), reference, "5 runs = 1 run");

    for workers in ["2", "4"] {
        let out = tmp.path().join(format!("w{workers}"));
        let args = [&args[..], &["--workers", workers][..]].concat();
        run_xinst(corpus.to_str().unwrap(), out.to_str().unwrap(), &args, 0);
        assert_eq!(dedup_view(&out), reference, "{workers} workers");
    }

    // All shards in one epoch: the same clusters (representatives may differ: within one
    // epoch the lowest id wins).
    let batch = tmp.path().join("batch");
    let args = [&DEDUP_ONLY[..], &["--shards-per-epoch", "10"][..]].concat();
    run_xinst(corpus.to_str().unwrap(), batch.to_str().unwrap(), &args, 0);
    assert_eq!(partition(&batch), clusters);
}

#[test]
fn takedown_promotes_the_next_document_like_a_fresh_run_without_it() {
    let tmp = tempdir();
    let corpus = tmp.path().join("corpus");
    write_corpus(&corpus);
    let out = tmp.path().join("out");
    let (c, o) = (corpus.to_str().unwrap(), out.to_str().unwrap());
    run_xinst(c, o, &DEDUP_ONLY, 0);
    // A representative whose successor (the cluster's next-lowest key) sits in another shard.
    let table = sql(&out, "SELECT dup_cluster_id, key_epoch, id, shard FROM dup_clusters ORDER BY 1, 2, 3");
    let mut clusters: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        clusters.entry(f[0].to_string()).or_default().push((f[2].to_string(), f[3].to_string()));
    }
    let (victim, victim_shard, successor) = clusters
        .values()
        .find(|m| m[0].1 != m[1].1)
        .map(|m| (m[0].0.clone(), m[0].1.clone(), m[1].0.clone()))
        .expect("a cluster whose successor is in another shard");
    let ids = tmp.path().join("takedown.txt");
    std::fs::write(&ids, format!("# legal request 17\n{victim}\nnot-an-id\n")).unwrap();
    let done = xinst().args(["retract", "--data", o, "--ids"]).arg(&ids).output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert!(
        String::from_utf8_lossy(&done.stderr).contains("2 ids added"),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );

    let (_, stats) = run_xinst(c, o, &DEDUP_ONLY, 0);
    // The victim's shard and the promoted successor's shard are read again; nothing else.
    assert_eq!(stats["shards_reread"], 2, "{stats}");
    assert_eq!(stats["shards_processed"], 2, "{stats}");
    let (kept, rejected) = dedup_view(&out);
    assert!(!kept.contains(&victim), "{victim} is gone from the dataset");
    assert!(
        kept.lines().any(|l| l.starts_with(&format!("{successor},{successor},"))),
        "{successor} promoted"
    );
    assert!(rejected.contains(&format!("{victim},taken_down,")));
    let rejects_of_victim = rejected.lines().filter(|l| l.starts_with(&format!("{victim},"))).count();
    assert_eq!(rejects_of_victim, 1, "one reject per document, not one per run");

    // A fresh run over the input without the victim's line gives the same dataset.
    let without = tmp.path().join("without");
    copy_shards(&corpus, &without, 0..SHARDS);
    let shard_file = without.join(Path::new(&victim_shard).file_name().unwrap());
    let text = std::fs::read_to_string(&shard_file).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains(&format!("\"id\":\"{victim}\""))).collect();
    assert_eq!(lines.len(), PER_SHARD - 1);
    std::fs::write(&shard_file, lines.join("\n") + "\n").unwrap();
    let fresh = tmp.path().join("fresh");
    run_xinst(without.to_str().unwrap(), fresh.to_str().unwrap(), &DEDUP_ONLY, 0);
    let (fresh_kept, fresh_rejected) = dedup_view(&fresh);
    assert_eq!(kept, fresh_kept);
    let without_victim: Vec<&str> =
        rejected.lines().filter(|l| !l.starts_with(&format!("{victim},"))).collect();
    assert_eq!(without_victim, fresh_rejected.lines().collect::<Vec<_>>());

    // Nothing left to do: a rerun reads nothing.
    let (_, again) = run_xinst(c, o, &DEDUP_ONLY, 0);
    assert_eq!(again["shards_processed"], 0);
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn new_settings_recluster_from_stored_signatures_or_rehash() {
    let tmp = tempdir();
    let corpus = tmp.path().join("corpus");
    write_corpus(&corpus);
    let c = corpus.to_str().unwrap();
    let strict = tmp.path().join("strict.toml");
    std::fs::write(&strict, "[dedup.minhash]\nthreshold = 0.97\n").unwrap();
    let shorter = tmp.path().join("ngram3.toml");
    std::fs::write(&shorter, "[dedup.minhash]\nngram = 3\n").unwrap();
    let config = |p: &Path| ["--config".to_string(), p.to_str().unwrap().to_string()];
    let with = |extra: &[String]| -> Vec<String> {
        DEDUP_ONLY.iter().map(|s| s.to_string()).chain(extra.iter().cloned()).collect()
    };

    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    run_xinst(c, o, &DEDUP_ONLY, 0);
    let default_view = dedup_view(&out);
    // A stricter threshold: re-clustered from the stored signatures; documents that changed
    // side have their shards read again.
    let strict_args = with(&config(&strict));
    let (_, st) = run_xinst(c, o, &refs(&strict_args), 0);
    assert!(st["shards_reread"].as_u64().unwrap() >= 1, "{st}");
    let fresh = tmp.path().join("fresh-strict");
    run_xinst(c, fresh.to_str().unwrap(), &refs(&strict_args), 0);
    let strict_view = dedup_view(&out);
    assert_eq!(strict_view, dedup_view(&fresh));
    assert_ne!(strict_view, default_view, "0.97 separates the edited copies");

    // Other shingles: every shard is hashed again.
    let shorter_args = with(&config(&shorter));
    let (_, st) = run_xinst(c, o, &refs(&shorter_args), 0);
    assert_eq!(st["shards_reread"], SHARDS);
    let fresh = tmp.path().join("fresh-ngram3");
    run_xinst(c, fresh.to_str().unwrap(), &refs(&shorter_args), 0);
    assert_eq!(dedup_view(&out), dedup_view(&fresh));
}
