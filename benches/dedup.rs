//! Dedup speed and agreement: the `dedup` operator (signatures + LSH + verification +
//! connected components, in differential) against rensa and datasketch (PyPI) on the same
//! corpus, in one run; then the time to add a 1% shard to the arranged state against the full
//! build.
//!
//!     cargo bench --bench dedup
//!
//! `XINST_BENCH_DOCS` (default 100,000) documents of ~1,200 characters built from the bundled
//! sample's paragraphs (six random paragraphs of one neighbourhood each, so documents stay in
//! one language), of which 10% are exact copies and 10% edited copies (word substitutions,
//! deletions, insertions, appended boilerplate) of earlier ones. Settings for all three:
//! word 5-grams, 128 permutations, 16 bands x 8 rows, threshold 0.8. Peer Python:
//! `XINST_BENCH_DEDUP_PYTHON` (default `.tools/bench-venv-dedup/bin/python` with
//! `rensa==0.5.0 datasketch==2.0.0`).

mod common;

use differential_dataflow::input::Input;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use xinstruct_operators::dedup::minhash::MinHashConfig;
use xinstruct_operators::dedup::{Dedup, DedupConfig, Prior, PriorLoad, SigRecord};
use xinstruct_operators::{Doc, Epoch, Origin, StatsRegistry};

const BOILERPLATE: &str = "Share this page. Cookie policy. All rights reserved. Subscribe to our newsletter.";

/// The corpus and, per document, the index of the document it copies (if planted).
fn corpus(n: usize) -> (Vec<String>, Vec<Option<usize>>) {
    let paragraphs = common::sample_paragraphs();
    let mut rng = StdRng::seed_from_u64(2024);
    let mut texts: Vec<String> = Vec::with_capacity(n);
    let mut source = Vec::with_capacity(n);
    for i in 0..n {
        let roll: f64 = rng.random();
        if i > 100 && roll < 0.1 {
            let j = rng.random_range(0..i);
            texts.push(texts[j].clone());
            source.push(Some(j));
        } else if i > 100 && roll < 0.2 {
            let j = rng.random_range(0..i);
            let mut words: Vec<String> = texts[j].split(' ').map(String::from).collect();
            for _ in 0..words.len() / 60 {
                let at = rng.random_range(0..words.len());
                match rng.random_range(0..3) {
                    0 => words[at] = format!("{}x", words[at]),
                    1 => {
                        words.remove(at);
                    }
                    _ => words.insert(at, "also".into()),
                }
            }
            let mut text = words.join(" ");
            if rng.random_bool(0.5) {
                text.push_str("\n\n");
                text.push_str(BOILERPLATE);
            }
            texts.push(text);
            source.push(Some(j));
        } else {
            let base = rng.random_range(0..paragraphs.len());
            let mut text = String::new();
            while text.chars().count() < 1200 {
                let p = &paragraphs[(base + rng.random_range(0..40)) % paragraphs.len()];
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(p);
            }
            texts.push(text);
            source.push(None);
        }
    }
    (texts, source)
}

fn id(i: usize) -> String {
    format!("d{i:07}")
}

fn doc(i: usize, text: &str) -> Doc {
    Doc {
        id: id(i),
        text: text.to_string(),
        url: None,
        source: Origin { shard: format!("shard-{:02}", i % 10), offset: i as u64 },
        lang: None,
        meta: Default::default(),
        pair: None,
        born: None,
    }
}

/// The peers' settings: 128 permutations as 16 bands x 8 rows (threshold 0.8, word 5-grams).
fn bench_config() -> DedupConfig {
    DedupConfig {
        minhash: MinHashConfig { bands: 16, rows: 8, ..MinHashConfig::default() },
        ..DedupConfig::default()
    }
}

struct Timing {
    /// Live memory after the full build, over the live memory before the run.
    state_mb: f64,
    full_secs: f64,
    add_secs: f64,
    dups: HashSet<String>,
}

/// The dedup operator on `workers` threads: all of `texts[..base]` in epoch 1, then
/// `texts[base..]` in epoch 2 (the added shard).
fn run_ours(texts: &[String], base: usize, workers: usize) -> Timing {
    let cfg = bench_config();
    // The final memberships (changes of documents in clusters of two or more): a document
    // kept when it arrived can become a duplicate later, when a new document bridges its
    // cluster to one with a lower representative (the pipeline then reads its shard again).
    let rejected: Arc<Mutex<Vec<(String, bool, isize)>>> = Arc::default();
    let times: Arc<Mutex<(f64, f64, f64)>> = Arc::default();
    let texts: Arc<Vec<String>> = Arc::new(texts.to_vec());
    let before = live_mb();
    {
        let (rejected, times, texts) = (rejected.clone(), times.clone(), texts.clone());
        timely::execute(timely::Config::process(workers), move |worker| {
            let stats = StatsRegistry::default();
            let sink = rejected.clone();
            let (mut docs_in, mut prior_in, probe) = worker.dataflow::<Epoch, _, _>(|scope| {
                let (docs_in, docs) = scope.new_collection::<Doc, isize>();
                let (prior_in, prior) = scope.new_collection::<SigRecord, isize>();
                let prior = Prior { records: prior, load: PriorLoad::Lazy };
                let out = docs.dedup(prior, &cfg, Arc::new(HashSet::new()), &stats);
                out.clusters.inspect(move |((key, m), _, diff)| {
                    sink.lock().unwrap().push((key.id.clone(), m.representative(key), *diff));
                });
                let probe = out.kept.probe().0;
                (docs_in, prior_in, probe)
            });
            let (index, peers) = (worker.index(), worker.peers());
            let mut epoch = |from: usize, to: usize, t: Epoch| -> f64 {
                let started = Instant::now();
                docs_in.advance_to(t);
                prior_in.advance_to(t);
                // Every worker feeds its share, as the readers do.
                for i in (from..to).filter(|i| i % peers == index) {
                    docs_in.insert(doc(i, &texts[i]));
                }
                docs_in.advance_to(t + 1);
                prior_in.advance_to(t + 1);
                docs_in.flush();
                prior_in.flush();
                while probe.less_than(&(t + 1)) {
                    worker.step();
                }
                started.elapsed().as_secs_f64()
            };
            let full = epoch(0, base, 1);
            let resident = if index == 0 { live_mb() } else { 0.0 };
            let add = epoch(base, texts.len(), 2);
            if index == 0 {
                *times.lock().unwrap() = (full, add, resident);
            }
        })
        .expect("timely");
    }
    let (full_secs, add_secs, resident) = *times.lock().unwrap();
    let mut net: std::collections::HashMap<(String, bool), isize> = std::collections::HashMap::new();
    for (id, representative, diff) in rejected.lock().unwrap().iter() {
        *net.entry((id.clone(), *representative)).or_default() += diff;
    }
    let dups = net.into_iter().filter(|((_, rep), n)| !rep && *n > 0).map(|((id, _), _)| id).collect();
    Timing { state_mb: resident - before, full_secs, add_secs, dups }
}

/// A `/proc/self/status` memory figure (`VmHWM:` peak, `VmRSS:` now) in MB.
fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resident memory once the allocator has returned what it keeps after frees (the live set).
fn live_mb() -> f64 {
    // SAFETY: malloc_trim only releases free heap memory back to the system.
    unsafe { libc::malloc_trim(0) };
    status_mb("VmRSS:")
}

fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// The records a committed epoch 1 of `texts` stored (what the driver reloads).
fn stored_records(texts: &[String]) -> Vec<SigRecord> {
    let hasher = xinstruct_operators::dedup::minhash::MinHasher::new(&bench_config().minhash);
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let key = xinstruct_operators::dedup::DocKey { epoch: 1, id: id(i) };
            xinstruct_operators::dedup::sig_record(&hasher, true, key, &doc(i, text))
        })
        .collect()
}

/// A restarted process: the stored records of `texts[..base]` (computed beforehand, as the
/// driver reloads them from `signatures/`) go to the `prior` input together with the documents
/// of `texts[base..]`; returns the seconds until that epoch is decided and how many stored
/// records entered the arrangements.
fn run_restart(texts: &[String], base: usize, load: PriorLoad) -> (f64, usize) {
    let cfg = bench_config();
    let stored: Arc<Vec<SigRecord>> = Arc::new(stored_records(&texts[..base]));
    let new: Arc<Vec<String>> = Arc::new(texts[base..].to_vec());
    let secs: Arc<Mutex<f64>> = Arc::default();
    let loaded: Arc<Mutex<usize>> = Arc::default();
    {
        let (secs, loaded) = (secs.clone(), loaded.clone());
        timely::execute(timely::Config::thread(), move |worker| {
            let stats = StatsRegistry::default();
            let loaded = loaded.clone();
            let (mut docs_in, mut prior_in, probe) = worker.dataflow::<Epoch, _, _>(|scope| {
                let (docs_in, docs) = scope.new_collection::<Doc, isize>();
                let (prior_in, prior) = scope.new_collection::<SigRecord, isize>();
                let out = docs.dedup(Prior { records: prior, load }, &cfg, Arc::new(HashSet::new()), &stats);
                out.loaded.inspect(move |_| *loaded.lock().unwrap() += 1);
                (docs_in, prior_in, out.kept.probe().0)
            });
            let started = Instant::now();
            docs_in.advance_to(2);
            prior_in.advance_to(2);
            for r in stored.iter() {
                prior_in.insert(r.clone());
            }
            let inserted = started.elapsed().as_secs_f64();
            for (k, t) in new.iter().enumerate() {
                docs_in.insert(doc(base + k, t));
            }
            docs_in.advance_to(3);
            prior_in.advance_to(3);
            docs_in.flush();
            prior_in.flush();
            while probe.less_than(&3) {
                worker.step();
            }
            *secs.lock().unwrap() = started.elapsed().as_secs_f64();
            if std::env::var("XINST_BENCH_DEDUP_ONLY").is_ok() {
                eprintln!(
                    "  {load:?}: stored records into the input {inserted:.3} s, in all {:.3} s",
                    started.elapsed().as_secs_f64()
                );
            }
        })
        .expect("timely");
    }
    let s = *secs.lock().unwrap();
    let n = *loaded.lock().unwrap();
    (s, n)
}

fn peer_python() -> PathBuf {
    std::env::var("XINST_BENCH_DEDUP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bench-venv-dedup/bin/python"))
}

fn main() {
    let n = common::docs_from_env();
    let (texts, source) = corpus(n);
    let planted: HashSet<String> =
        source.iter().enumerate().filter(|(_, s)| s.is_some()).map(|(i, _)| id(i)).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let jsonl = dir.path().join("corpus.jsonl");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&jsonl).expect("corpus file"));
        for (i, t) in texts.iter().enumerate() {
            writeln!(f, "{}", serde_json::json!({"id": id(i), "text": t})).expect("write");
        }
    }
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    println!(
        "corpus: {n} documents, {:.0} characters each on average, {} planted copies",
        chars as f64 / n as f64,
        planted.len()
    );

    // Where the time goes: the records (shingles, signature, text hash) alone, one thread.
    {
        let hasher = xinstruct_operators::dedup::minhash::MinHasher::new(&bench_config().minhash);
        let started = Instant::now();
        let mut values = 0usize;
        for (i, t) in texts.iter().enumerate() {
            let key = xinstruct_operators::dedup::DocKey { epoch: 1, id: id(i) };
            values += xinstruct_operators::dedup::sig_record(&hasher, true, key, &doc(i, t)).sig.len();
        }
        let secs = started.elapsed().as_secs_f64();
        println!("records alone (shingles + signature + text hash), 1 thread: {secs:.2} s, {:.0} docs/s ({values} values)", n as f64 / secs);
    }

    // The 1% shard arrives after the rest.
    let base = n - n / 100;
    if std::env::var("XINST_BENCH_DEDUP_ONLY").as_deref() == Ok("restart") {
        // For profiling the restart path: one build to warm the allocator, then the restart.
        let full = run_ours(&texts, n, 1).full_secs;
        let warm = run_ours(&texts, n, 1).full_secs;
        {
            let stored = stored_records(&texts[..base]);
            let started = Instant::now();
            let index = xinstruct_operators::dedup::prior::PriorIndex::new(stored, &bench_config().params());
            println!(
                "index alone: {:.3} s, {} units, the largest of {} records",
                started.elapsed().as_secs_f64(),
                index.units(),
                index.largest_unit()
            );
        }
        println!("warm full build {warm:.2} s");
        let (restart, loaded) = run_restart(&texts, base, PriorLoad::Lazy);
        let (eager, _) = run_restart(&texts, base, PriorLoad::Eager);
        println!(
            "full build {full:.2} s; restart {restart:.2} s = {:.1}% of it, {:.1}% of the warm one, {loaded} stored records loaded (loading every record: {eager:.2} s)",
            100.0 * restart / full,
            100.0 * restart / warm
        );
        return;
    }
    let one = run_ours(&texts, n, 1);
    let ours_rss = peak_rss_mb();
    let ours_dps = n as f64 / one.full_secs;
    println!(
        "xinstruct dedup, 1 worker: {:.2} s, {:.0} docs/s, {} duplicates, peak RSS {:.0} MB (whole bench process, corpus included)",
        one.full_secs,
        ours_dps,
        one.dups.len(),
        ours_rss
    );
    println!(
        "live memory after the build (malloc_trim, then RSS), over the corpus already in memory: {:.0} MB = {:.1} KB per document ({:.1} GB per million)",
        one.state_mb,
        one.state_mb * 1024.0 / n as f64,
        one.state_mb * 1e6 / n as f64 / 1024.0
    );
    let two = run_ours(&texts, n, 2);
    println!(
        "xinstruct dedup, 2 workers: {:.2} s, {:.0} docs/s ({:.0} per core)",
        two.full_secs,
        n as f64 / two.full_secs,
        n as f64 / two.full_secs / 2.0
    );
    assert_eq!(one.dups, two.dups, "1 and 2 workers agree");
    let inc = run_ours(&texts, base, 1);
    println!(
        "incremental, 1 worker: {} documents in {:.2} s, then a 1% shard ({} documents) in {:.3} s = {:.1}% of the full build",
        base,
        inc.full_secs,
        n - base,
        inc.add_secs,
        100.0 * inc.add_secs / one.full_secs
    );
    assert_eq!(inc.dups, one.dups, "incremental = batch");
    let (restart, loaded) = run_restart(&texts, base, PriorLoad::Lazy);
    let (eager, _) = run_restart(&texts, base, PriorLoad::Eager);
    println!(
        "after a restart (a new `xinst run`, 1 worker): {} stored records indexed, {} of them loaded, + the 1% shard in {:.2} s = {:.1}% of the full build; loading every stored record into the arrangements instead: {:.2} s = {:.1}%",
        base,
        loaded,
        restart,
        100.0 * restart / one.full_secs,
        eager,
        100.0 * eager / one.full_secs
    );
    let truth_hits = one.dups.intersection(&planted).count();
    println!(
        "xinstruct vs planted copies: {} of {} flagged; {} flagged beyond the planted (natural overlaps)",
        truth_hits,
        planted.len(),
        one.dups.len() - truth_hits
    );

    let python = peer_python();
    for peer in ["rensa", "datasketch"] {
        let dups_file = dir.path().join(format!("{peer}.txt"));
        let script = include_str!("peers/dedup_peers.py");
        let args = [peer, jsonl.to_str().unwrap_or_default(), dups_file.to_str().unwrap_or_default()];
        let Some(line) = common::run_python_with(&python, script, &args) else {
            println!(
                "{peer}: not run (install: {} -m pip install rensa==0.5.0 datasketch==2.0.0)",
                python.display()
            );
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        let secs = v["secs"].as_f64().unwrap_or(f64::NAN);
        let peer_dups: HashSet<String> = std::fs::read_to_string(&dups_file)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        let inter = one.dups.intersection(&peer_dups).count();
        let peer_planted = peer_dups.intersection(&planted).count();
        let union: BTreeSet<&String> = one.dups.iter().chain(peer_dups.iter()).collect();
        println!(
            "{peer}: {secs:.2} s, {:.0} docs/s, {} duplicates ({} of the planted copies), peak RSS {:.0} MB; xinstruct / {peer} = {:.2}x per core; duplicate sets agree {:.3} (|A∩B|/|A∪B|), {} only in xinstruct, {} only in {peer}",
            n as f64 / secs,
            peer_dups.len(),
            peer_planted,
            v["peak_mb"].as_f64().unwrap_or(f64::NAN),
            ours_dps / (n as f64 / secs),
            inter as f64 / union.len().max(1) as f64,
            one.dups.len() - inter,
            peer_dups.len() - inter
        );
    }
}
