//! The dataset sink: documents as Parquet under `lang=xx/`, the filtered corpus (documents not
//! sampled for an instruction) under `corpus/lang=xx/`, rejects under `rejects/`, dedup's
//! signature records under `signatures/` (one part per shard, reloaded by later runs).
//!
//! Documents and rejects are exchanged by shard, so one worker writes all parts of a shard.
//! Per epoch the operator holds one open Parquet writer per (shard, language) plus a buffer of
//! up to `batch_rows` records each; row groups are flushed by the writer at `row_group_rows`.
//! When the frontier passes an epoch its parts are closed, moved to `_xinstruct/tmp/` in the
//! output (uploaded for remote outputs) and announced to the leader, who commits them.

use crate::manifest::{CORPUS_DIR, LANG_PREFIX, SIGNATURES_DIR, TMP_DIR};
use crate::store::Store;
use anyhow::{Context, Result};
use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, FixedSizeBinaryBuilder, RecordBatch, StringBuilder,
    UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;
use tokio::runtime::Runtime;
use xinstruct_operators::dedup::SigRecord;
use xinstruct_operators::fault::Fault;
use xinstruct_operators::stats::{OpStats, StatsRegistry};
use xinstruct_operators::{Doc, Epoch, Reject};
use xxhash_rust::xxh3::xxh3_64;

/// `[sink]` in the config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Rows per Parquet row group.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: NonZeroUsize,
    /// zstd level of the Parquet pages (1–22).
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// Records buffered per part before they are encoded as one Arrow batch.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: NonZeroUsize,
}

fn default_row_group_rows() -> NonZeroUsize {
    NonZeroUsize::new(20_000).expect("non-zero")
}
fn default_zstd_level() -> i32 {
    3
}
fn default_batch_rows() -> NonZeroUsize {
    NonZeroUsize::new(2048).expect("non-zero")
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            row_group_rows: default_row_group_rows(),
            zstd_level: default_zstd_level(),
            batch_rows: default_batch_rows(),
        }
    }
}

/// What a sink tells the leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SinkEvent {
    File(FileWritten),
    /// Operator stats counted on a worker since its last report.
    Stats(BTreeMap<String, OpStats>),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileWritten {
    pub shard: String,
    /// Relative path of the temporary object.
    pub tmp: String,
    /// Relative path once committed.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The partition folder for a language label: only `[A-Za-z0-9_-]`, else `und`.
pub fn lang_partition(lang: Option<&str>) -> String {
    match lang {
        Some(l)
            if !l.is_empty()
                && l.len() <= 32
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            l.to_string()
        }
        _ => "und".to_string(),
    }
}

pub fn docs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("url", DataType::Utf8, true),
        Field::new("shard", DataType::Utf8, false),
        Field::new("offset", DataType::UInt64, false),
        Field::new("epoch", DataType::UInt64, false),
        Field::new("meta", DataType::Utf8, true),
        // The instruction-tuning pair (null when the X-Instruction stages did not run); the
        // response is `text`.
        Field::new("instruction", DataType::Utf8, true),
        Field::new("label", DataType::Utf8, true),
        Field::new("score", DataType::UInt8, true),
        Field::new("eval_reason", DataType::Utf8, true),
        Field::new("iteration", DataType::UInt32, true),
        Field::new("generator", DataType::Utf8, true),
        Field::new("evaluator", DataType::Utf8, true),
        Field::new("prompt_version", DataType::Utf8, true),
        Field::new("tokens_in", DataType::UInt64, true),
        Field::new("tokens_out", DataType::UInt64, true),
        Field::new("instruction_lang", DataType::Utf8, true),
        Field::new("translate", DataType::Boolean, true),
    ]))
}

pub fn rejects_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("shard", DataType::Utf8, false),
        Field::new("offset", DataType::UInt64, false),
        Field::new("epoch", DataType::UInt64, false),
        Field::new("operator", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("doc_id", DataType::Utf8, true),
    ]))
}

/// Dedup's per-document record (docs/dedup.md): `exact` is the xxh3-128 of the text, `sig`
/// the MinHash signature as little-endian u32 values (empty: exact dedup only).
pub fn signatures_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("key_epoch", DataType::UInt64, false),
        Field::new("shard", DataType::Utf8, false),
        Field::new("offset", DataType::UInt64, false),
        Field::new("lang", DataType::Utf8, false),
        Field::new("exact", DataType::FixedSizeBinary(16), false),
        Field::new("sig", DataType::Binary, false),
    ]))
}

fn signatures_batch(records: Vec<SigRecord>) -> Result<RecordBatch> {
    let mut id = StringBuilder::new();
    let mut key_epoch = UInt64Builder::new();
    let mut shard = StringBuilder::new();
    let mut offset = UInt64Builder::new();
    let mut lang = StringBuilder::new();
    let mut exact = FixedSizeBinaryBuilder::new(16);
    let mut sig = BinaryBuilder::new();
    for r in &records {
        id.append_value(&r.key.id);
        key_epoch.append_value(r.key.epoch);
        shard.append_value(&r.shard);
        offset.append_value(r.offset);
        lang.append_value(&r.lang);
        exact.append_value(r.exact.to_le_bytes())?;
        let bytes: Vec<u8> = r.sig.iter().flat_map(|v| v.to_le_bytes()).collect();
        sig.append_value(bytes);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(key_epoch.finish()),
        Arc::new(shard.finish()),
        Arc::new(offset.finish()),
        Arc::new(lang.finish()),
        Arc::new(exact.finish()),
        Arc::new(sig.finish()),
    ];
    Ok(RecordBatch::try_new(signatures_schema(), columns)?)
}

/// Where a sink puts its parts.
#[derive(Clone)]
pub struct SinkTarget {
    pub out: Store,
    pub rt: Arc<Runtime>,
    /// Local folder for parts of a remote output before upload.
    pub spool_dir: PathBuf,
    /// Where a write or upload error goes (the run ends with it; see `fault`).
    pub fault: Arc<Fault>,
}

enum Rows {
    Docs(Vec<Doc>),
    Rejects(Vec<Reject>),
    Signatures(Vec<SigRecord>),
}

/// What the sink's second input carries besides documents.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SideRow {
    Reject(Reject),
    Signature(SigRecord),
    /// A document of the filtered corpus (not sampled for an instruction), under
    /// `corpus/lang=xx/` with the dataset's schema.
    Corpus(Doc),
}

impl SideRow {
    fn shard(&self) -> &str {
        match self {
            SideRow::Reject(r) => &r.origin.shard,
            SideRow::Signature(s) => &s.shard,
            SideRow::Corpus(d) => &d.source.shard,
        }
    }
}

/// One Parquet part being written.
struct Part {
    writer: ArrowWriter<std::fs::File>,
    local: PathBuf,
    tmp: String,
    path: String,
    shard: String,
    rows: u64,
    buffer: Rows,
    epoch: Epoch,
}

impl Part {
    fn create(
        target: &SinkTarget,
        cfg: &SinkConfig,
        epoch: Epoch,
        shard: &str,
        dest: &str,
        rows: &RowRef,
    ) -> Result<Part> {
        let name = format!("part-{epoch:06}-{:016x}.parquet", xxh3_64(shard.as_bytes()));
        let path = format!("{dest}/{name}");
        let tmp = format!("{TMP_DIR}/e{epoch}/{}-{name}", dest.replace('/', "_"));
        let local = match &target.out.local_root {
            Some(root) => root.join(&tmp),
            None => target.spool_dir.join(format!("xinst-{}-{}", std::process::id(), tmp.replace('/', "_"))),
        };
        if let Some(dir) = local.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = std::fs::File::create(&local).with_context(|| format!("creating {}", local.display()))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(cfg.zstd_level)?))
            .set_max_row_group_row_count(Some(cfg.row_group_rows.get()))
            .set_created_by(format!("xinstruct {}", env!("CARGO_PKG_VERSION")))
            .build();
        let (schema, buffer) = match rows {
            RowRef::Doc(_) | RowRef::Side(SideRow::Corpus(_)) => (docs_schema(), Rows::Docs(Vec::new())),
            RowRef::Side(SideRow::Reject(_)) => (rejects_schema(), Rows::Rejects(Vec::new())),
            RowRef::Side(SideRow::Signature(_)) => (signatures_schema(), Rows::Signatures(Vec::new())),
        };
        let writer = ArrowWriter::try_new(file, schema, Some(props))?;
        Ok(Part { writer, local, tmp, path, shard: shard.to_string(), rows: 0, buffer, epoch })
    }

    fn buffered(&self) -> usize {
        match &self.buffer {
            Rows::Docs(v) => v.len(),
            Rows::Rejects(v) => v.len(),
            Rows::Signatures(v) => v.len(),
        }
    }

    fn flush(&mut self) -> Result<()> {
        let epoch = self.epoch;
        let batch = match &mut self.buffer {
            Rows::Docs(docs) if !docs.is_empty() => docs_batch(std::mem::take(docs), epoch)?,
            Rows::Rejects(rejects) if !rejects.is_empty() => rejects_batch(std::mem::take(rejects), epoch)?,
            Rows::Signatures(records) if !records.is_empty() => signatures_batch(std::mem::take(records))?,
            _ => return Ok(()),
        };
        self.rows += batch.num_rows() as u64;
        self.writer.write(&batch)?;
        Ok(())
    }

    fn finish(mut self, target: &SinkTarget) -> Result<FileWritten> {
        self.flush()?;
        self.writer.close()?;
        let bytes = std::fs::metadata(&self.local)?.len();
        if target.out.local_root.is_none() {
            target.out.upload(&target.rt, &self.local, &self.tmp)?;
            std::fs::remove_file(&self.local).ok();
        }
        Ok(FileWritten { shard: self.shard, tmp: self.tmp, path: self.path, rows: self.rows, bytes })
    }
}

fn docs_batch(docs: Vec<Doc>, epoch: Epoch) -> Result<RecordBatch> {
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    let mut id = StringBuilder::with_capacity(docs.len(), docs.len() * 32);
    let mut text = StringBuilder::with_capacity(docs.len(), bytes);
    let mut url = StringBuilder::new();
    let mut shard = StringBuilder::new();
    let mut offset = UInt64Builder::with_capacity(docs.len());
    let mut epochs = UInt64Builder::with_capacity(docs.len());
    let mut meta = StringBuilder::new();
    let mut instruction = StringBuilder::new();
    let mut label = StringBuilder::new();
    let mut score = UInt8Builder::new();
    let mut eval_reason = StringBuilder::new();
    let mut iteration = UInt32Builder::new();
    let mut generator = StringBuilder::new();
    let mut evaluator = StringBuilder::new();
    let mut prompt_version = StringBuilder::new();
    let mut tokens_in = UInt64Builder::new();
    let mut tokens_out = UInt64Builder::new();
    let mut instruction_lang = StringBuilder::new();
    let mut translate = BooleanBuilder::new();
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    for d in &docs {
        let p = d.pair.as_deref();
        instruction.append_option(p.map(|p| &p.instruction));
        label.append_option(p.and_then(|p| non_empty(&p.label)));
        score.append_option(p.and_then(|p| p.score));
        eval_reason.append_option(p.and_then(|p| non_empty(&p.eval_reason)));
        iteration.append_option(p.map(|p| p.iteration));
        generator.append_option(p.and_then(|p| non_empty(&p.generator)));
        evaluator.append_option(p.and_then(|p| non_empty(&p.evaluator)));
        prompt_version.append_option(p.and_then(|p| non_empty(&p.prompt_version)));
        tokens_in.append_option(p.map(|p| p.tokens_in));
        tokens_out.append_option(p.map(|p| p.tokens_out));
        instruction_lang.append_option(p.and_then(|p| non_empty(&p.instruction_lang)));
        translate.append_option(p.map(|p| p.translate));
        id.append_value(&d.id);
        text.append_value(&d.text);
        url.append_option(d.url.as_deref());
        shard.append_value(&d.source.shard);
        offset.append_value(d.source.offset);
        epochs.append_value(epoch);
        if d.meta.is_empty() {
            meta.append_null();
        } else {
            meta.append_value(serde_json::to_string(&d.meta)?);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(text.finish()),
        Arc::new(url.finish()),
        Arc::new(shard.finish()),
        Arc::new(offset.finish()),
        Arc::new(epochs.finish()),
        Arc::new(meta.finish()),
        Arc::new(instruction.finish()),
        Arc::new(label.finish()),
        Arc::new(score.finish()),
        Arc::new(eval_reason.finish()),
        Arc::new(iteration.finish()),
        Arc::new(generator.finish()),
        Arc::new(evaluator.finish()),
        Arc::new(prompt_version.finish()),
        Arc::new(tokens_in.finish()),
        Arc::new(tokens_out.finish()),
        Arc::new(instruction_lang.finish()),
        Arc::new(translate.finish()),
    ];
    Ok(RecordBatch::try_new(docs_schema(), columns)?)
}

fn rejects_batch(rejects: Vec<Reject>, epoch: Epoch) -> Result<RecordBatch> {
    let mut shard = StringBuilder::new();
    let mut offset = UInt64Builder::new();
    let mut epochs = UInt64Builder::new();
    let mut operator = StringBuilder::new();
    let mut reason = StringBuilder::new();
    let mut detail = StringBuilder::new();
    let mut doc_id = StringBuilder::new();
    for r in &rejects {
        shard.append_value(&r.origin.shard);
        offset.append_value(r.origin.offset);
        epochs.append_value(epoch);
        operator.append_value(&r.operator);
        reason.append_value(&r.reason);
        detail.append_value(&r.detail);
        doc_id.append_option(r.doc_id.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(shard.finish()),
        Arc::new(offset.finish()),
        Arc::new(epochs.finish()),
        Arc::new(operator.finish()),
        Arc::new(reason.finish()),
        Arc::new(detail.finish()),
        Arc::new(doc_id.finish()),
    ];
    Ok(RecordBatch::try_new(rejects_schema(), columns)?)
}

/// Writes documents and rejects as the Parquet dataset.
pub trait WriteDataset<'s> {
    fn write_dataset(
        self,
        side: differential_dataflow::VecCollection<'s, Epoch, SideRow>,
        cfg: &SinkConfig,
        target: SinkTarget,
        stats: &StatsRegistry,
    ) -> Stream<'s, Epoch, Vec<SinkEvent>>;

    fn write_dataset_named(
        self,
        name: &str,
        side: differential_dataflow::VecCollection<'s, Epoch, SideRow>,
        cfg: &SinkConfig,
        target: SinkTarget,
        stats: &StatsRegistry,
    ) -> Stream<'s, Epoch, Vec<SinkEvent>>;
}

/// Parts of one epoch on this worker, keyed by (shard, destination folder).
struct EpochParts {
    cap: Capability<Epoch>,
    parts: BTreeMap<(String, String), Part>,
}

impl<'s> WriteDataset<'s> for differential_dataflow::VecCollection<'s, Epoch, Doc> {
    fn write_dataset(
        self,
        side: differential_dataflow::VecCollection<'s, Epoch, SideRow>,
        cfg: &SinkConfig,
        target: SinkTarget,
        stats: &StatsRegistry,
    ) -> Stream<'s, Epoch, Vec<SinkEvent>> {
        self.write_dataset_named("write", side, cfg, target, stats)
    }

    fn write_dataset_named(
        self,
        name: &str,
        side: differential_dataflow::VecCollection<'s, Epoch, SideRow>,
        cfg: &SinkConfig,
        target: SinkTarget,
        stats: &StatsRegistry,
    ) -> Stream<'s, Epoch, Vec<SinkEvent>> {
        let cfg = cfg.clone();
        let stats = stats.clone();
        let op = name.to_string();
        let by_doc_shard =
            Exchange::new(|(d, _, _): &(Doc, Epoch, isize)| xxh3_64(d.source.shard.as_bytes()));
        let by_side_shard =
            Exchange::new(|(r, _, _): &(SideRow, Epoch, isize)| xxh3_64(r.shard().as_bytes()));
        self.inner.binary_frontier::<_, CapacityContainerBuilder<Vec<SinkEvent>>, _, _, _, _>(
            side.inner,
            by_doc_shard,
            by_side_shard,
            name,
            move |init_cap, _info| {
                let mut epochs: BTreeMap<Epoch, EpochParts> = BTreeMap::new();
                // Held at the input frontier so leftover stats can be reported at the end.
                let mut stats_cap = Some(init_cap);
                let mut failure: Option<String> = None;
                // After a failure: the capabilities the failing epoch holds, never released.
                let mut failed = false;
                let mut held: Vec<Capability<Epoch>> = Vec::new();
                move |(docs_in, docs_frontier), (rejects_in, rejects_frontier), output| {
                    if failed {
                        docs_in.for_each(|_, data| data.clear());
                        rejects_in.for_each(|_, data| data.clear());
                        return;
                    }
                    let started = Instant::now();
                    let mut written = 0u64;
                    let add = |epochs: &mut BTreeMap<Epoch, EpochParts>,
                                   cap: &timely::dataflow::operators::InputCapability<Epoch>,
                                   time: Epoch,
                                   shard: &str,
                                   dest: String,
                                   row: RowRef,
                                   failure: &mut Option<String>| {
                        let slot = epochs
                            .entry(time)
                            .or_insert_with(|| EpochParts { cap: cap.delayed(&time, 0), parts: BTreeMap::new() });
                        let key = (shard.to_string(), dest);
                        if !slot.parts.contains_key(&key) {
                            match Part::create(&target, &cfg, time, shard, &key.1, &row) {
                                Ok(p) => {
                                    slot.parts.insert(key.clone(), p);
                                }
                                Err(e) => {
                                    failure.get_or_insert(format!("{e:#}"));
                                    return;
                                }
                            }
                        }
                        let Some(part) = slot.parts.get_mut(&key) else { return };
                        match (row, &mut part.buffer) {
                            (RowRef::Doc(d), Rows::Docs(v)) => v.push(d),
                            (RowRef::Side(SideRow::Corpus(d)), Rows::Docs(v)) => v.push(d),
                            (RowRef::Side(SideRow::Reject(r)), Rows::Rejects(v)) => v.push(r),
                            (RowRef::Side(SideRow::Signature(r)), Rows::Signatures(v)) => v.push(r),
                            _ => unreachable!("a part holds one kind of row"),
                        }
                        if part.buffered() >= cfg.batch_rows.get() {
                            if let Err(e) = part.flush() {
                                failure.get_or_insert(format!("{e:#}"));
                            }
                        }
                    };
                    docs_in.for_each(|cap, data| {
                        for (doc, time, diff) in data.drain(..) {
                            let dest = format!("{LANG_PREFIX}{}", lang_partition(doc.lang.as_deref()));
                            let shard = doc.source.shard.clone();
                            for _ in 0..diff.max(0) {
                                written += 1;
                                add(&mut epochs, &cap, time, &shard, dest.clone(), RowRef::Doc(doc.clone()), &mut failure);
                            }
                            if diff < 0 {
                                tracing::warn!(doc = %doc.id, "sink cannot retract a written row; shard-level retraction replaces whole parts");
                            }
                        }
                    });
                    rejects_in.for_each(|cap, data| {
                        for (row, time, diff) in data.drain(..) {
                            let shard = row.shard().to_string();
                            let dest = match &row {
                                SideRow::Reject(_) => "rejects".to_string(),
                                SideRow::Signature(_) => SIGNATURES_DIR.to_string(),
                                SideRow::Corpus(d) => {
                                    format!("{CORPUS_DIR}/{LANG_PREFIX}{}", lang_partition(d.lang.as_deref()))
                                }
                            };
                            if diff > 0 {
                                add(&mut epochs, &cap, time, &shard, dest, RowRef::Side(row), &mut failure);
                            }
                        }
                    });
                    if let Some(f) = &failure {
                        // A sink that cannot write must not let the epoch commit: it raises the
                        // fault (the run ends with it) and keeps its capabilities, so the epoch
                        // never completes.
                        target.fault.raise(format!("{op}: writing the dataset failed: {f}"));
                        failed = true;
                        return;
                    }
                    let done: Vec<Epoch> = epochs
                        .keys()
                        .copied()
                        .filter(|t| !docs_frontier.less_equal(t) && !rejects_frontier.less_equal(t))
                        .collect();
                    for t in done {
                        let Some(slot) = epochs.remove(&t) else { continue };
                        let mut session = output.session(&slot.cap);
                        let mut files = 0;
                        for (_, part) in slot.parts {
                            match part.finish(&target) {
                                Ok(f) => {
                                    files += 1;
                                    session.give(SinkEvent::File(f));
                                }
                                Err(e) => {
                                    target.fault.raise(format!("{op}: writing the dataset failed: {e:#}"));
                                    failed = true;
                                    break;
                                }
                            }
                        }
                        if failed {
                            drop(session);
                            held.push(slot.cap);
                            return;
                        }
                        stats.with(&op, |s| s.count("files", files));
                        session.give(SinkEvent::Stats(stats.take()));
                    }
                    stats.with(&op, |s| {
                        s.docs_in += written;
                        s.docs_out += written;
                        s.add_time(started.elapsed());
                    });
                    let frontier_min = docs_frontier
                        .frontier()
                        .iter()
                        .chain(rejects_frontier.frontier().iter())
                        .min()
                        .copied();
                    match frontier_min {
                        Some(t) => {
                            if let Some(cap) = stats_cap.as_mut() {
                                if cap.time() < &t {
                                    cap.downgrade(&t);
                                }
                            }
                        }
                        None => {
                            if let Some(cap) = stats_cap.take() {
                                output.session(&cap).give(SinkEvent::Stats(stats.take()));
                            }
                        }
                    }
                }
            },
        )
    }
}

enum RowRef {
    Doc(Doc),
    Side(SideRow),
}
