//! The paper's diversification, kept current: per language the English instructions are
//! embedded (memoized), clustered with k-means and sampled round-robin across clusters up to
//! the quota. The selection is state ([`DiversitySelection`]): the leader of `run`/`watch`
//! updates it with every epoch's pairs (the `diversity` operator embeds them in the dataflow)
//! and commits it with the epoch; `xinst diversify` updates it from the whole dataset, or
//! re-clusters it (`--rebuild`).
//!
//! Per language the dataset holds one snapshot, `diversity/selection-<lang>-<tag>.parquet`
//! (the SQL table `diversity`, what `xinst export --selected` exports), named by the manifest
//! and replaced in the commit that changes it, and the centroids in
//! `_xinstruct/diversity/<lang>.json`. A new pair is assigned to the nearest saved centroid;
//! the state is clustered again on drift, when k doubled or halved, or for another embedding
//! model ([`LangSelection::recluster_due`]). docs/diversity.md.

use crate::config::Config;
use crate::dedup::column;
use crate::manifest::{FileEntry, Manifest, Pending, DIVERSITY_DIR, TMP_DIR};
use crate::sql::SqlSession;
use crate::store::Store;
use anyhow::{anyhow, Context, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Float32Array, Float32Builder, RecordBatch,
    StringArray, StringBuilder, UInt32Array, UInt32Builder, UInt64Builder, UInt8Array, UInt8Builder,
};
use arrow::datatypes::{DataType, Field, Schema, UInt8Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tokio::runtime::Runtime;
use xinstruct_operators::diversity::sample::diversity;
use xinstruct_operators::diversity::{
    Centroids, Changes, Diversity, Embedder, KMeans, KMeansConfig, LangSelection, Member, Point, SampleConfig,
};
use xinstruct_operators::generate::MemoCache;
use xinstruct_operators::Epoch;

pub struct DiversifyOptions {
    pub data: String,
    pub rebuild: bool,
    pub memo: Option<std::path::PathBuf>,
}

/// Diversity figures per language.
pub type Report = BTreeMap<String, Diversity>;

/// The columns of a language's selection snapshot (the SQL table `diversity`).
pub fn selection_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("lang", DataType::Utf8, false),
        Field::new("shard", DataType::Utf8, false),
        Field::new("cluster_id", DataType::UInt64, false),
        Field::new("cluster_size", DataType::UInt64, false),
        Field::new("selected", DataType::Boolean, false),
        Field::new("rank", DataType::UInt32, true),
        Field::new("label", DataType::Utf8, false),
        Field::new("score", DataType::UInt8, true),
        // Cosine similarity to its cluster's centroid.
        Field::new("similarity", DataType::Float32, false),
        Field::new("instruction", DataType::Utf8, false),
    ]))
}

/// What one update did, per language, for the run's stats.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LangFigures {
    pub pairs: usize,
    pub selected: usize,
    pub k: usize,
    pub clusters_covered: usize,
    /// Summed over the run's updates.
    pub added: usize,
    pub removed: usize,
    pub selected_in: usize,
    pub selected_out: usize,
    /// Why it was clustered again, the last time it was in this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclustered: Option<String>,
}

fn centroids_path(lang: &str) -> String {
    format!("_xinstruct/diversity/{}.json", crate::sink::lang_partition(Some(lang)))
}

/// Every language's selection, as committed, and what updates it.
pub struct DiversitySelection {
    pub langs: BTreeMap<String, LangSelection>,
    embedder: Arc<Embedder>,
    memo: Option<Arc<MemoCache>>,
    kmeans: KMeansConfig,
    sample: SampleConfig,
    /// Languages changed since the last [`DiversitySelection::stage`], and those of them
    /// clustered again (only their centroids are written: at k = 32,000 they are ~100 MB).
    dirty: BTreeSet<String>,
    recentred: BTreeSet<String>,
    pub figures: BTreeMap<String, LangFigures>,
}

impl DiversitySelection {
    /// The committed selection of `manifest`'s dataset.
    pub fn load(
        out: &Store,
        rt: &Runtime,
        manifest: &Manifest,
        embedder: Arc<Embedder>,
        memo: Option<Arc<MemoCache>>,
        config: &Config,
    ) -> Result<DiversitySelection> {
        let mut langs = BTreeMap::new();
        for (lang, file) in &manifest.diversity {
            let mut sel = LangSelection {
                centroids: match out.get_opt(rt, &centroids_path(lang))? {
                    Some(b) => serde_json::from_slice::<Centroids>(&b).ok(),
                    None => None,
                },
                members: BTreeMap::new(),
            };
            let bytes = out
                .get_opt(rt, &file.path)?
                .with_context(|| format!("{}: the committed diversity snapshot is missing", file.path))?;
            read_snapshot(bytes, &file.path, &mut sel.members)?;
            langs.insert(lang.clone(), sel);
        }
        Ok(DiversitySelection {
            langs,
            embedder,
            memo,
            kmeans: config.kmeans.clone(),
            sample: config.sample.clone(),
            dirty: BTreeSet::new(),
            recentred: BTreeSet::new(),
            figures: BTreeMap::new(),
        })
    }

    /// Applies an epoch: the members `gone` names leave, `points` join (assigned to the
    /// saved centroids), each touched language is clustered again when due (always with
    /// `rebuild`) and its quota filled again.
    pub fn update(
        &mut self,
        points: Vec<Point>,
        gone: impl Fn(&Member) -> bool,
        rebuild: bool,
    ) -> Result<BTreeMap<String, Changes>> {
        let mut by_lang: BTreeMap<String, Vec<Point>> = BTreeMap::new();
        for p in points {
            by_lang.entry(p.lang.clone()).or_default().push(p);
        }
        let langs: BTreeSet<String> = self.langs.keys().chain(by_lang.keys()).cloned().collect();
        let mut out = BTreeMap::new();
        for lang in langs {
            let fresh = by_lang.remove(&lang).unwrap_or_default();
            let sel = self.langs.entry(lang.clone()).or_default();
            let removed = sel.remove(&gone);
            let added = sel.insert(&fresh, self.kmeans.threads);
            if removed == 0 && added == 0 && !rebuild {
                continue;
            }
            let k = self.kmeans.k_for(sel.members.len(), self.sample.quota);
            let model = self.embedder.fingerprint();
            let why = match rebuild && !sel.members.is_empty() {
                true => Some("rebuild".to_string()),
                false => sel.recluster_due(model, k, self.sample.max_drift),
            };
            if let Some(why) = &why {
                tracing::info!(%lang, pairs = sel.members.len(), k, "clustering the diversity selection: {why}");
                let vectors = vectors_of(&self.embedder, self.memo.as_deref(), sel, &fresh)
                    .map_err(|e| anyhow!("diversity, {lang}: {e}"))?;
                sel.recluster(&vectors, model, k, &self.kmeans);
                self.recentred.insert(lang.clone());
            }
            let (selected_in, selected_out) = sel.reselect(self.sample.quota);
            let f = self.figures.entry(lang.clone()).or_default();
            f.pairs = sel.members.len();
            f.selected = sel.selected();
            f.k = sel.centroids.as_ref().map_or(0, |c| c.centroids.len());
            f.clusters_covered = sel.clusters_covered();
            f.added += added;
            f.removed += removed;
            f.selected_in += selected_in;
            f.selected_out += selected_out;
            if why.is_some() {
                f.reclustered = why.clone();
            }
            self.dirty.insert(lang.clone());
            out.insert(lang, Changes { added, removed, selected_in, selected_out, reclustered: why });
        }
        Ok(out)
    }

    /// Writes the changed languages' snapshots (and centroids) as temporaries and adds them
    /// to `pending`, so they are committed with the manifest that names them; `tag` makes the
    /// file names unique per commit.
    pub fn stage(
        &mut self,
        out: &Store,
        rt: &Runtime,
        manifest: &mut Manifest,
        tag: &str,
        pending: &mut Pending,
    ) -> Result<()> {
        let recentred = std::mem::take(&mut self.recentred);
        for lang in std::mem::take(&mut self.dirty) {
            let Some(sel) = self.langs.get(&lang) else { continue };
            let part = crate::sink::lang_partition(Some(&lang));
            if sel.members.is_empty() {
                if let Some(old) = manifest.diversity.remove(&lang) {
                    pending.deletes.push(old.path);
                }
                self.langs.remove(&lang);
                continue;
            }
            let bytes = write_snapshot(&lang, sel)?;
            let path = format!("{DIVERSITY_DIR}/selection-{part}-{tag}.parquet");
            let tmp = format!("{TMP_DIR}/{tag}/diversity-{part}.parquet");
            let entry =
                FileEntry { path: path.clone(), rows: sel.members.len() as u64, bytes: bytes.len() as u64 };
            out.put(rt, &tmp, bytes)?;
            pending.renames.push((tmp, path.clone()));
            if let Some(c) = sel.centroids.as_ref().filter(|_| recentred.contains(&lang)) {
                let tmp = format!("{TMP_DIR}/{tag}/centroids-{part}.json");
                out.put(rt, &tmp, serde_json::to_vec(c)?)?;
                pending.renames.push((tmp, centroids_path(&lang)));
            }
            if let Some(old) = manifest.diversity.insert(lang, entry).filter(|old| old.path != path) {
                pending.deletes.push(old.path);
            }
        }
        Ok(())
    }
}

/// The members' vectors in id order: the epoch's from their points, the others embedded
/// again (answered by the memo when it has them).
fn vectors_of(
    embedder: &Embedder,
    memo: Option<&MemoCache>,
    sel: &LangSelection,
    fresh: &[Point],
) -> Result<Vec<Vec<f32>>, String> {
    let known: HashMap<&str, &Vec<f32>> = fresh.iter().map(|p| (p.id.as_str(), &p.vector)).collect();
    let missing: Vec<&str> = sel
        .members
        .iter()
        .filter(|(id, _)| !known.contains_key(id.as_str()))
        .map(|(_, m)| m.instruction.as_str())
        .collect();
    let mut embedded = embedder.embed(&missing, memo)?.into_iter();
    Ok(sel
        .members
        .keys()
        .map(|id| match known.get(id.as_str()) {
            Some(v) => (*v).clone(),
            None => embedded.next().unwrap_or_default(),
        })
        .collect())
}

fn write_snapshot(lang: &str, sel: &LangSelection) -> Result<Vec<u8>> {
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    sel.members.values().for_each(|m| *sizes.entry(m.cluster).or_default() += 1);
    let (mut id, mut lg, mut shard, mut cid, mut csize, mut selected, mut rank) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
        BooleanBuilder::new(),
        UInt32Builder::new(),
    );
    let (mut label, mut score, mut sim, mut ins) =
        (StringBuilder::new(), UInt8Builder::new(), Float32Builder::new(), StringBuilder::new());
    for (key, m) in &sel.members {
        id.append_value(key);
        lg.append_value(lang);
        shard.append_value(&m.shard);
        cid.append_value(m.cluster as u64);
        csize.append_value(sizes[&m.cluster]);
        selected.append_value(m.rank.is_some());
        rank.append_option(m.rank);
        label.append_value(&m.label);
        score.append_option(m.score);
        sim.append_value(m.similarity);
        ins.append_value(&m.instruction);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(lg.finish()),
        Arc::new(shard.finish()),
        Arc::new(cid.finish()),
        Arc::new(csize.finish()),
        Arc::new(selected.finish()),
        Arc::new(rank.finish()),
        Arc::new(label.finish()),
        Arc::new(score.finish()),
        Arc::new(sim.finish()),
        Arc::new(ins.finish()),
    ];
    let batch = RecordBatch::try_new(selection_schema(), columns)?;
    let mut bytes = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, selection_schema(), None)?;
    w.write(&batch)?;
    w.close()?;
    Ok(bytes)
}

fn read_snapshot(bytes: Vec<u8>, name: &str, members: &mut BTreeMap<String, Member>) -> Result<()> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .with_context(|| format!("{name}: not a Parquet file"))?
        .build()?;
    for batch in reader {
        let batch = batch.with_context(|| format!("reading {name}"))?;
        let id = column::<StringArray>(&batch, "id", name)?;
        let shard = column::<StringArray>(&batch, "shard", name)?;
        let cluster = arrow::compute::cast(
            batch.column_by_name("cluster_id").with_context(|| format!("{name}: no cluster_id"))?,
            &DataType::UInt64,
        )?;
        let cluster = cluster.as_primitive::<arrow::datatypes::UInt64Type>();
        let rank = column::<UInt32Array>(&batch, "rank", name)?;
        let label = column::<StringArray>(&batch, "label", name)?;
        let score = column::<UInt8Array>(&batch, "score", name)?;
        let sim = column::<Float32Array>(&batch, "similarity", name)?;
        let ins = column::<StringArray>(&batch, "instruction", name)?;
        let _ = column::<BooleanArray>(&batch, "selected", name)?;
        for r in 0..batch.num_rows() {
            let member = Member {
                shard: shard.value(r).to_string(),
                instruction: ins.value(r).to_string(),
                label: label.value(r).to_string(),
                score: (!score.is_null(r)).then(|| score.value(r)),
                cluster: cluster.value(r) as usize,
                similarity: sim.value(r),
                rank: (!rank.is_null(r)).then(|| rank.value(r)),
            };
            members.insert(id.value(r).to_string(), member);
        }
    }
    Ok(())
}

/// Loads the embedding model `[embed]` names.
pub fn load_embedder(config: &Config) -> Result<Arc<Embedder>> {
    let dir = crate::models::resolve(&config.embed.model)
        .with_context(|| format!("[embed] model = {:?}", config.embed.model))?;
    let embedder = Embedder::load(&dir, &config.embed, &candle_core::Device::Cpu).map_err(|e| anyhow!(e))?;
    Ok(Arc::new(embedder))
}

/// `xinst diversify`: brings the selection up to date with the dataset's pairs (all of them,
/// as committed), re-clustering with `--rebuild`; committed like an epoch.
pub fn diversify(config: &Config, opts: &DiversifyOptions) -> Result<Report> {
    let rt = Arc::new(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?);
    let store = Store::open(&opts.data, false).with_context(|| format!("dataset {}", opts.data))?;
    let _lock = crate::lock::acquire(&store, &rt, "diversify")?;
    let batches = rt.block_on(async {
        let session = SqlSession::open(&opts.data, false).await?;
        session
            .query(
                "SELECT id, lang, shard, instruction, label, score FROM pairs \
                 WHERE instruction IS NOT NULL ORDER BY lang, id",
            )
            .await
    })?;
    let mut rows: Vec<Point> = Vec::new();
    for b in &batches {
        let cast = |i: usize| arrow::compute::cast(b.column(i), &DataType::Utf8);
        let (id, lang, shard, ins, label) = (cast(0)?, cast(1)?, cast(2)?, cast(3)?, cast(4)?);
        let (id, lang, shard, ins, label) = (
            id.as_string::<i32>(),
            lang.as_string::<i32>(),
            shard.as_string::<i32>(),
            ins.as_string::<i32>(),
            label.as_string::<i32>(),
        );
        let score = arrow::compute::cast(b.column(5), &DataType::UInt8)?;
        let score = score.as_primitive::<UInt8Type>();
        for r in 0..b.num_rows() {
            rows.push(Point {
                id: id.value(r).to_string(),
                lang: lang.value(r).to_string(),
                shard: shard.value(r).to_string(),
                instruction: ins.value(r).to_string(),
                label: if label.is_null(r) { String::new() } else { label.value(r).to_string() },
                score: (!score.is_null(r)).then(|| score.value(r)),
                vector: Vec::new(),
            });
        }
    }
    let embedder = load_embedder(config)?;
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
    let memo = Some(Arc::new(memo));
    let texts: Vec<&str> = rows.iter().map(|p| p.instruction.as_str()).collect();
    let vectors = embedder.embed(&texts, memo.as_deref()).map_err(|e| anyhow!(e))?;
    for (p, v) in rows.iter_mut().zip(vectors) {
        p.vector = v;
    }
    let all: HashMap<String, Vec<f32>> = rows.iter().map(|p| (p.id.clone(), p.vector.clone())).collect();
    let (mut manifest, _) = crate::manifest::recover(&store, &rt)?;
    let mut selection = DiversitySelection::load(&store, &rt, &manifest, embedder, memo, config)?;
    // The dataset's pairs replace the selection's members.
    let changes = selection.update(rows, |_| true, opts.rebuild)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut pending = Pending::default();
    let tag = format!("{:06}-b{stamp}", manifest.next_epoch);
    selection.stage(&store, &rt, &mut manifest, &tag, &mut pending)?;
    let mut report = Report::new();
    for (lang, sel) in &selection.langs {
        let vectors: Vec<Vec<f32>> =
            sel.members.keys().map(|id| all.get(id).cloned().unwrap_or_default()).collect();
        let km = KMeans {
            centroids: sel.centroids.as_ref().map(|c| c.centroids.clone()).unwrap_or_default(),
            assignment: sel.members.values().map(|m| m.cluster).collect(),
            similarity: sel.members.values().map(|m| m.similarity).collect(),
            mean_similarity: sel.mean_similarity(),
            iterations: 0,
            progress: Vec::new(),
        };
        let rank: Vec<Option<u32>> = sel.members.values().map(|m| m.rank).collect();
        let reclustered = changes.get(lang).is_some_and(|c| c.reclustered.is_some());
        report.insert(lang.clone(), diversity(&vectors, &km, &rank, config.kmeans.seed, reclustered));
    }
    manifest.commit(&store, &rt, pending)?;
    store.put(&rt, &format!("stats/diversify-{stamp}.json"), serde_json::to_vec_pretty(&report)?)?;
    Ok(report)
}

/// The selection's figures after a run (one line per language).
pub fn render_figures(figures: &BTreeMap<String, LangFigures>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if figures.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:<10} {:>8} {:>9} {:>6} {:>8} {:>7} {:>7}  reclustered",
        "diversity", "pairs", "selected", "k", "covered", "in", "out"
    );
    for (lang, f) in figures {
        let _ = writeln!(
            out,
            "{:<10} {:>8} {:>9} {:>6} {:>8} {:>7} {:>7}  {}",
            lang,
            f.pairs,
            f.selected,
            f.k,
            f.clusters_covered,
            f.selected_in,
            f.selected_out,
            f.reclustered.as_deref().unwrap_or("no")
        );
    }
    out
}

/// The diversity table `xinst diversify` prints.
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

/// The epoch tag of a pipeline commit.
pub fn epoch_tag(epoch: Epoch) -> String {
    format!("e{epoch:06}")
}
