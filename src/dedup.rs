//! The driver's side of dedup: stored signature records, the cluster snapshot, and which
//! committed documents changed side (kept ↔ duplicate) so their shards are read again.
//!
//! The dedup operator keeps its state in differential arrangements for one run. Between runs
//! the state is the dataset's `signatures/` parts (one per shard, committed with the shard),
//! which the leader reloads as the operator's `prior` input, and `dup_clusters/`, a snapshot
//! of every document in a cluster of two or more, which is what the dataset currently
//! reflects. After each epoch the leader applies the operator's cluster changes to its live
//! view and compares it with the snapshot: a committed document that became a representative
//! (its representative was retracted) or a duplicate (a threshold change) sends its shard to
//! be read again, keeping its place in the dedup order.
//!
//! The leader holds the memberships of documents in clusters of two or more (≈ 200 bytes
//! each) and, while a shard's records are loaded or retracted, that shard's records.

use crate::manifest::{FileEntry, Manifest, DUP_CLUSTERS_DIR, LANG_PREFIX, SIGNATURES_DIR, TMP_DIR};
use crate::store::Store;
use anyhow::{bail, Context, Result};
use arrow::array::{
    Array, BinaryArray, BooleanArray, BooleanBuilder, FixedSizeBinaryArray, RecordBatch, StringArray,
    StringBuilder, UInt64Array, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::runtime::Runtime;
use xinstruct_operators::dedup::{DocKey, Membership, SigRecord};
use xinstruct_operators::Epoch;

/// The signature records a committed shard stored.
pub fn shard_signatures(out: &Store, rt: &Runtime, files: &[FileEntry]) -> Result<Vec<SigRecord>> {
    let mut records = Vec::new();
    for f in files.iter().filter(|f| f.path.starts_with(&format!("{SIGNATURES_DIR}/"))) {
        let bytes = out
            .get_opt(rt, &f.path)?
            .with_context(|| format!("{}: committed signatures are missing", f.path))?;
        read_signatures(bytes, &f.path, &mut records)?;
    }
    Ok(records)
}

pub(crate) fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str, file: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .with_context(|| format!("{file}: column {name} is missing or has another type"))
}

fn read_signatures(bytes: Vec<u8>, file: &str, out: &mut Vec<SigRecord>) -> Result<()> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .with_context(|| format!("{file}: not a Parquet file"))?
        .build()?;
    for batch in reader {
        let batch = batch.with_context(|| format!("reading {file}"))?;
        let id = column::<StringArray>(&batch, "id", file)?;
        let key_epoch = column::<UInt64Array>(&batch, "key_epoch", file)?;
        let shard = column::<StringArray>(&batch, "shard", file)?;
        let offset = column::<UInt64Array>(&batch, "offset", file)?;
        let lang = column::<StringArray>(&batch, "lang", file)?;
        let exact = column::<FixedSizeBinaryArray>(&batch, "exact", file)?;
        let sig = column::<BinaryArray>(&batch, "sig", file)?;
        for i in 0..batch.num_rows() {
            let hash: [u8; 16] = exact.value(i).try_into().context("exact hash is not 16 bytes")?;
            let raw = sig.value(i);
            if raw.len() % 4 != 0 {
                bail!("{file}: row {i}: signature of {} bytes", raw.len());
            }
            out.push(SigRecord {
                key: DocKey { epoch: key_epoch.value(i), id: id.value(i).to_string() },
                shard: shard.value(i).to_string(),
                offset: offset.value(i),
                lang: lang.value(i).to_string(),
                exact: u128::from_le_bytes(hash),
                sig: raw.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            });
        }
    }
    Ok(())
}

pub fn dup_clusters_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("key_epoch", DataType::UInt64, false),
        Field::new("shard", DataType::Utf8, false),
        Field::new("lang", DataType::Utf8, false),
        Field::new("dup_cluster_id", DataType::Utf8, false),
        Field::new("dup_cluster_epoch", DataType::UInt64, false),
        Field::new("dup_cluster_size", DataType::UInt64, false),
        Field::new("representative", DataType::Boolean, false),
        Field::new("exact_copy", DataType::Boolean, false),
    ]))
}

/// Memberships of documents in clusters of two or more.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    pub members: BTreeMap<DocKey, Membership>,
}

impl ClusterView {
    /// Whether the document is its cluster's representative (singletons, absent, are).
    pub fn kept(&self, key: &DocKey) -> bool {
        self.members.get(key).is_none_or(|m| m.representative(key))
    }

    /// Applies one epoch's changes: removals, then insertions.
    pub fn apply(&mut self, mut changes: Vec<(DocKey, Membership, isize)>) -> BTreeSet<DocKey> {
        changes.sort_by_key(|(_, _, diff)| *diff);
        let mut touched = BTreeSet::new();
        for (key, m, diff) in changes {
            touched.insert(key.clone());
            if diff < 0 {
                if self.members.get(&key) == Some(&m) {
                    self.members.remove(&key);
                }
            } else {
                self.members.insert(key, m);
            }
        }
        touched
    }

    /// Shards holding a document that `self` and `before` keep differently.
    pub fn changed_shards(&self, before: &ClusterView, keys: &BTreeSet<DocKey>) -> BTreeSet<String> {
        keys.iter()
            .filter(|k| self.kept(k) != before.kept(k))
            .filter_map(|k| self.members.get(k).or_else(|| before.members.get(k)).map(|m| m.shard.clone()))
            .collect()
    }

    pub fn load(out: &Store, rt: &Runtime, manifest: &Manifest) -> Result<ClusterView> {
        let Some(file) = &manifest.dup_clusters else {
            return Ok(ClusterView::default());
        };
        let bytes = out
            .get_opt(rt, &file.path)?
            .with_context(|| format!("{}: committed cluster snapshot is missing", file.path))?;
        let name = file.path.as_str();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?.build()?;
        let mut members = BTreeMap::new();
        for batch in reader {
            let batch = batch?;
            let id = column::<StringArray>(&batch, "id", name)?;
            let key_epoch = column::<UInt64Array>(&batch, "key_epoch", name)?;
            let shard = column::<StringArray>(&batch, "shard", name)?;
            let lang = column::<StringArray>(&batch, "lang", name)?;
            let cluster_id = column::<StringArray>(&batch, "dup_cluster_id", name)?;
            let cluster_epoch = column::<UInt64Array>(&batch, "dup_cluster_epoch", name)?;
            let size = column::<UInt64Array>(&batch, "dup_cluster_size", name)?;
            let exact = column::<BooleanArray>(&batch, "exact_copy", name)?;
            for i in 0..batch.num_rows() {
                let key = DocKey { epoch: key_epoch.value(i), id: id.value(i).to_string() };
                let m = Membership {
                    cluster: DocKey { epoch: cluster_epoch.value(i), id: cluster_id.value(i).to_string() },
                    size: size.value(i),
                    exact_copy: exact.value(i),
                    shard: shard.value(i).to_string(),
                    lang: lang.value(i).to_string(),
                };
                members.insert(key, m);
            }
        }
        Ok(ClusterView { members })
    }

    /// Writes the snapshot for `epoch` as a temporary object; returns (tmp, final entry).
    pub fn write(&self, out: &Store, rt: &Runtime, epoch: Epoch) -> Result<(String, FileEntry)> {
        let n = self.members.len();
        let mut id = StringBuilder::with_capacity(n, n * 32);
        let mut key_epoch = UInt64Builder::with_capacity(n);
        let mut shard = StringBuilder::new();
        let mut lang = StringBuilder::new();
        let mut cluster_id = StringBuilder::with_capacity(n, n * 32);
        let mut cluster_epoch = UInt64Builder::with_capacity(n);
        let mut size = UInt64Builder::with_capacity(n);
        let mut representative = BooleanBuilder::with_capacity(n);
        let mut exact = BooleanBuilder::with_capacity(n);
        for (k, m) in &self.members {
            id.append_value(&k.id);
            key_epoch.append_value(k.epoch);
            shard.append_value(&m.shard);
            lang.append_value(&m.lang);
            cluster_id.append_value(&m.cluster.id);
            cluster_epoch.append_value(m.cluster.epoch);
            size.append_value(m.size);
            representative.append_value(m.representative(k));
            exact.append_value(m.exact_copy);
        }
        let batch = RecordBatch::try_new(
            dup_clusters_schema(),
            vec![
                Arc::new(id.finish()),
                Arc::new(key_epoch.finish()),
                Arc::new(shard.finish()),
                Arc::new(lang.finish()),
                Arc::new(cluster_id.finish()),
                Arc::new(cluster_epoch.finish()),
                Arc::new(size.finish()),
                Arc::new(representative.finish()),
                Arc::new(exact.finish()),
            ],
        )?;
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, dup_clusters_schema(), None)?;
        writer.write(&batch)?;
        writer.close()?;
        let path = format!("{DUP_CLUSTERS_DIR}/clusters-{epoch:06}.parquet");
        let tmp = format!("{TMP_DIR}/e{epoch}/dup_clusters.parquet");
        let len = bytes.len() as u64;
        out.put(rt, &tmp, bytes)?;
        Ok((tmp, FileEntry { path, rows: n as u64, bytes: len }))
    }
}

/// What `xinst retract` recorded.
#[derive(Debug)]
pub struct Retraction {
    /// Ids in the file (new to the takedown list).
    pub ids: usize,
    pub already_listed: usize,
    /// Ids found in committed shards, and those shards (read again by the next run).
    pub found: usize,
    pub shards: BTreeSet<String>,
}

/// Adds the ids in `ids_file` (one per line; blank lines and `#` comments skipped) to the
/// dataset's takedown list and marks the committed shards that hold them to be read again.
/// The next `xinst run` rejects them as `taken_down`, removes them from their clusters and
/// promotes the next representative.
pub fn retract(data: &str, ids_file: &std::path::Path) -> Result<Retraction> {
    let text =
        std::fs::read_to_string(ids_file).with_context(|| format!("reading {}", ids_file.display()))?;
    let ids: BTreeSet<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if ids.is_empty() {
        bail!("{}: no ids (one per line)", ids_file.display());
    }
    let rt = std::sync::Arc::new(tokio::runtime::Builder::new_current_thread().enable_all().build()?);
    let out = Store::open(data, false).with_context(|| format!("dataset {data}"))?;
    let _lock = crate::lock::acquire(&out, &rt, "retract")?;
    let (mut manifest, _) = crate::manifest::recover(&out, &rt)?;
    if manifest.shards.is_empty() {
        bail!("{data}: no committed shards (is it an xinst output?)");
    }
    let already_listed = ids.iter().filter(|id| manifest.takedown.contains(*id)).count();
    let mut shards = BTreeSet::new();
    let mut found = BTreeSet::new();
    for (uri, entry) in &manifest.shards {
        // Signature parts list every document that reached dedup; document parts the kept
        // ones of datasets built without dedup.
        for f in entry
            .files
            .iter()
            .filter(|f| f.path.starts_with(SIGNATURES_DIR) || f.path.starts_with(LANG_PREFIX))
        {
            let bytes = out
                .get_opt(&rt, &f.path)?
                .with_context(|| format!("{}: committed file is missing", f.path))?;
            for id in id_column(bytes, &f.path)? {
                if ids.contains(&id) {
                    shards.insert(uri.clone());
                    found.insert(id);
                }
            }
        }
    }
    let new = ids.len() - already_listed;
    manifest.takedown.extend(ids);
    manifest.reread.extend(shards.iter().cloned());
    manifest.commit(&out, &rt, crate::manifest::Pending::default())?;
    Ok(Retraction { ids: new, already_listed, found: found.len(), shards })
}

fn id_column(bytes: Vec<u8>, file: &str) -> Result<Vec<String>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .with_context(|| format!("{file}: not a Parquet file"))?;
    let mask = parquet::arrow::ProjectionMask::columns(builder.parquet_schema(), ["id"]);
    let mut ids = Vec::new();
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        let col = column::<StringArray>(&batch, "id", file)?;
        ids.extend((0..col.len()).map(|i| col.value(i).to_string()));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(cluster: &str, size: u64, shard: &str) -> Membership {
        Membership {
            cluster: DocKey { epoch: 1, id: cluster.into() },
            size,
            exact_copy: false,
            shard: shard.into(),
            lang: "fi".into(),
        }
    }

    fn k(id: &str) -> DocKey {
        DocKey { epoch: 1, id: id.into() }
    }

    #[test]
    fn a_retracted_representative_sends_the_promoted_documents_shard() {
        let mut before = ClusterView::default();
        before.apply(vec![(k("a"), m("a", 2, "s1"), 1), (k("b"), m("a", 2, "s2"), 1)]);
        let mut after = before.clone();
        // "a" taken down: "b" is alone (leaves the view) and kept now.
        let touched = after.apply(vec![(k("a"), m("a", 2, "s1"), -1), (k("b"), m("a", 2, "s2"), -1)]);
        assert!(after.members.is_empty());
        assert_eq!(after.changed_shards(&before, &touched), BTreeSet::from(["s2".to_string()]));
        // A new member joining "a" changes nobody's side.
        let mut grown = before.clone();
        let touched = grown.apply(vec![
            (k("a"), m("a", 2, "s1"), -1),
            (k("a"), m("a", 3, "s1"), 1),
            (k("b"), m("a", 2, "s2"), -1),
            (k("b"), m("a", 3, "s2"), 1),
            (k("c"), m("a", 3, "s3"), 1),
        ]);
        assert_eq!(grown.members[&k("a")].size, 3);
        // "c" is new: it was absent (kept) and is a duplicate now; its own shard is the one
        // being read, which the driver excludes.
        assert_eq!(grown.changed_shards(&before, &touched), BTreeSet::from(["s3".to_string()]));
    }
}
