//! `xinst diversify`: the paper's diversification over a dataset's pairs. Per language, the
//! English instructions are embedded (memoized), clustered with k-means and sampled
//! round-robin across clusters up to the quota; the result is `diversity/part-<lang>.parquet`
//! (`id`, `lang`, `cluster_id`, `cluster_size`, `selected`, `rank`) beside the pairs — the SQL
//! table `diversity`, and what `xinst export --selected` exports.
//!
//! Incremental: the centroids are saved per language (`_xinstruct/diversity/<lang>.json`). A
//! later run assigns every pair, old and new, to the nearest saved centroid and re-fills the
//! quota, without re-clustering; it re-clusters on `--rebuild`, when the embedding model or k
//! changed, or when the mean similarity to the centroids dropped by more than
//! `[sample] max_drift` (the new pairs do not fit the old clusters). docs/diversity.md.

use crate::config::Config;
use crate::sql::SqlSession;
use crate::store::Store;
use anyhow::{anyhow, Context, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, RecordBatch, StringBuilder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, UInt8Type};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use xinstruct_operators::diversity::kmeans::assign;
use xinstruct_operators::diversity::sample::diversity;
use xinstruct_operators::diversity::{kmeans, select, Candidate, Diversity, Embedder, KMeans};
use xinstruct_operators::generate::MemoCache;

/// What is saved per language between runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Saved {
    model: String,
    k: usize,
    centroids: Vec<Vec<f32>>,
    mean_similarity: f64,
}

pub struct DiversifyOptions {
    pub data: String,
    pub rebuild: bool,
    pub memo: Option<std::path::PathBuf>,
}

/// Diversity figures per language.
pub type Report = BTreeMap<String, Diversity>;

/// The columns of `diversity/part-<lang>.parquet`.
pub fn selection_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("lang", DataType::Utf8, false),
        Field::new("cluster_id", DataType::UInt64, false),
        Field::new("cluster_size", DataType::UInt64, false),
        Field::new("selected", DataType::Boolean, false),
        Field::new("rank", DataType::UInt32, true),
    ]))
}

pub fn diversify(config: &Config, opts: &DiversifyOptions) -> Result<Report> {
    let rt = std::sync::Arc::new(
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?,
    );
    let store = Store::open(&opts.data, false).with_context(|| format!("dataset {}", opts.data))?;
    let _lock = crate::lock::acquire(&store, &rt, "diversify")?;
    let batches = rt.block_on(async {
        let session = SqlSession::open(&opts.data, false).await?;
        session
            .query("SELECT id, lang, instruction, label, score FROM pairs WHERE instruction IS NOT NULL ORDER BY lang, id")
            .await
    })?;
    let mut by_lang: BTreeMap<String, (Vec<Candidate>, Vec<String>)> = BTreeMap::new();
    for b in &batches {
        let cast = |i: usize| arrow::compute::cast(b.column(i), &DataType::Utf8);
        let (id, lang, ins, label) = (cast(0)?, cast(1)?, cast(2)?, cast(3)?);
        let (id, lang, ins, label) = (
            id.as_string::<i32>(),
            lang.as_string::<i32>(),
            ins.as_string::<i32>(),
            label.as_string::<i32>(),
        );
        let score = arrow::compute::cast(b.column(4), &DataType::UInt8)?;
        let score = score.as_primitive::<UInt8Type>();
        for r in 0..b.num_rows() {
            let e = by_lang.entry(lang.value(r).to_string()).or_default();
            e.0.push(Candidate {
                id: id.value(r).to_string(),
                label: if label.is_null(r) { String::new() } else { label.value(r).to_string() },
                score: (!score.is_null(r)).then(|| score.value(r)),
            });
            e.1.push(ins.value(r).to_string());
        }
    }
    let model_dir = crate::models::resolve(&config.embed.model)?;
    let embedder =
        Embedder::load(&model_dir, &config.embed, &candle_core::Device::Cpu).map_err(|e| anyhow!(e))?;
    // The pipeline's memo file for this output (process 0's), so embeddings sit next to the
    // generations; for a remote dataset, the same file the pipeline uses in the model cache.
    let memo_path = match (&opts.memo, &store.local_root) {
        (Some(p), _) => p.clone(),
        (None, Some(root)) => root.join("_xinstruct").join("memo-p0.redb"),
        (None, None) => {
            let key = xxhash_rust::xxh3::xxh3_64(opts.data.as_bytes());
            crate::models::cache_dir().join("memo").join(format!("{key:016x}-memo-p0.redb"))
        }
    };
    let memo = MemoCache::open(&memo_path).map_err(|e| anyhow!("memo cache {}: {e}", memo_path.display()))?;
    let memo = Some(memo);
    let mut report = Report::new();
    for (lang, (cands, instructions)) in by_lang {
        let texts: Vec<&str> = instructions.iter().map(String::as_str).collect();
        let vectors = embedder.embed(&texts, memo.as_ref()).map_err(|e| anyhow!("{lang}: {e}"))?;
        let k = config.kmeans.k_for(vectors.len(), config.sample.quota);
        let state_rel = format!("_xinstruct/diversity/{lang}.json");
        let saved: Option<Saved> =
            store.get_opt(&rt, &state_rel)?.and_then(|b| serde_json::from_slice(&b).ok());
        let reuse = saved.filter(|s| !opts.rebuild && s.model == embedder.fingerprint() && s.k == k);
        let (km, reclustered) = match reuse {
            Some(s) => {
                let assigned = assign(&vectors, &s.centroids, config.kmeans.threads);
                let mean = assigned.iter().map(|(_, x)| *x as f64).sum::<f64>() / vectors.len().max(1) as f64;
                if s.mean_similarity - mean > config.sample.max_drift {
                    tracing::info!(%lang, before = s.mean_similarity, now = mean, "drift: re-clustering");
                    (kmeans(&vectors, k, &config.kmeans), true)
                } else {
                    let km = KMeans {
                        centroids: s.centroids,
                        assignment: assigned.iter().map(|(c, _)| *c).collect(),
                        mean_similarity: mean,
                        iterations: 0,
                    };
                    (km, false)
                }
            }
            None => (kmeans(&vectors, k, &config.kmeans), true),
        };
        let rank = select(&cands, &km.assignment, km.centroids.len(), config.sample.quota);
        let figures = diversity(&vectors, &km, &rank, config.kmeans.seed, reclustered);
        let mut sizes = vec![0u64; km.centroids.len()];
        km.assignment.iter().for_each(|c| sizes[*c] += 1);
        let (mut id, mut lg, mut cid, mut csize, mut sel, mut rk) = (
            StringBuilder::new(),
            StringBuilder::new(),
            UInt64Builder::new(),
            UInt64Builder::new(),
            BooleanBuilder::new(),
            UInt32Builder::new(),
        );
        for (i, c) in cands.iter().enumerate() {
            id.append_value(&c.id);
            lg.append_value(&lang);
            cid.append_value(km.assignment[i] as u64);
            csize.append_value(sizes[km.assignment[i]]);
            sel.append_value(rank[i].is_some());
            rk.append_option(rank[i]);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(lg.finish()),
            Arc::new(cid.finish()),
            Arc::new(csize.finish()),
            Arc::new(sel.finish()),
            Arc::new(rk.finish()),
        ];
        let batch = RecordBatch::try_new(selection_schema(), columns)?;
        let mut bytes = Vec::new();
        {
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, selection_schema(), None)?;
            w.write(&batch)?;
            w.close()?;
        }
        let part = crate::sink::lang_partition(Some(&lang));
        store.put(&rt, &format!("diversity/part-{part}.parquet"), bytes)?;
        if reclustered {
            let saved = Saved {
                model: embedder.fingerprint().to_string(),
                k: km.centroids.len(),
                centroids: km.centroids.clone(),
                mean_similarity: km.mean_similarity,
            };
            store.put(&rt, &state_rel, serde_json::to_vec(&saved)?)?;
        }
        report.insert(lang, figures);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    store.put(&rt, &format!("stats/diversify-{stamp}.json"), serde_json::to_vec_pretty(&report)?)?;
    Ok(report)
}

/// The diversity table printed at the end.
pub fn render(report: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>10} {:>9} {:>6} {:>8} {:>11} {:>11} {:>10}",
        "lang", "candidates", "selected", "k", "covered", "pair cos", "random cos", "reclustered"
    );
    for (lang, d) in report {
        let _ = writeln!(
            out,
            "{:<10} {:>10} {:>9} {:>6} {:>8} {:>11.4} {:>11.4} {:>10}",
            lang,
            d.candidates,
            d.selected,
            d.k,
            d.clusters_covered,
            d.mean_pairwise_cosine,
            d.random_mean_pairwise_cosine,
            if d.reclustered { "yes" } else { "no" }
        );
    }
    out
}
