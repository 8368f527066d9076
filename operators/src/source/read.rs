//! The `read` operator: shard tasks in, documents + rejects + one report per shard out.
//!
//! Shards are exchanged by URI hash, so each is read by exactly one worker. A worker reads
//! at most `batch_docs` records per activation and then yields, holding the epoch's
//! capability until the shard is finished: memory stays at one batch of records plus one
//! open decoder, and a long shard never starves the operators downstream.

use super::{jsonl, parquet, wet, Format, OpenedShard, Progress, Record, ShardOpener, ShardTask};
use crate::doc::{Doc, Origin, Reject};
use crate::stats::StatsRegistry;
use crate::Epoch;
use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::core::Partition;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Capability;
use xxhash_rust::xxh3::xxh3_64;

/// `[source]` in the config: which input fields map to the document, and read limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Field (JSONL) or column (Parquet) holding the text.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// Field holding a document id; records without one get a hash of shard URI + offset.
    #[serde(default = "default_id_field")]
    pub id_field: String,
    #[serde(default = "default_url_field")]
    pub url_field: String,
    /// Field holding a language label, when the input has one (FineWeb-2's `language`).
    #[serde(default = "default_lang_field")]
    pub lang_field: Option<String>,
    /// Other fields copied into `Doc::meta` when present.
    #[serde(default = "default_meta_fields")]
    pub meta_fields: Vec<String>,
    /// Documents (JSONL lines) over this many bytes are rejected as `doc_too_large`.
    #[serde(default = "default_max_doc_bytes")]
    pub max_doc_bytes: u64,
    /// Records a worker reads before it yields to other operators.
    #[serde(default = "default_batch_docs")]
    pub batch_docs: NonZeroUsize,
    /// Rows per Parquet decode batch.
    #[serde(default = "default_parquet_batch_rows")]
    pub parquet_batch_rows: NonZeroUsize,
}

fn default_text_field() -> String {
    "text".into()
}
fn default_id_field() -> String {
    "id".into()
}
fn default_url_field() -> String {
    "url".into()
}
fn default_lang_field() -> Option<String> {
    Some("language".into())
}
fn default_meta_fields() -> Vec<String> {
    ["timestamp", "date", "dump", "source"].map(String::from).to_vec()
}
fn default_max_doc_bytes() -> u64 {
    1 << 20
}
fn default_batch_docs() -> NonZeroUsize {
    NonZeroUsize::new(4096).expect("non-zero")
}
fn default_parquet_batch_rows() -> NonZeroUsize {
    NonZeroUsize::new(1024).expect("non-zero")
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            text_field: default_text_field(),
            id_field: default_id_field(),
            url_field: default_url_field(),
            lang_field: default_lang_field(),
            meta_fields: default_meta_fields(),
            max_doc_bytes: default_max_doc_bytes(),
            batch_docs: default_batch_docs(),
            parquet_batch_rows: default_parquet_batch_rows(),
        }
    }
}

impl SourceConfig {
    /// The checks every format shares once a record's fields are decoded.
    pub(crate) fn finish_doc(
        &self,
        id: Option<String>,
        text: String,
        url: Option<String>,
        lang: Option<String>,
        meta: BTreeMap<String, String>,
        origin: Origin,
    ) -> Record {
        if text.len() as u64 > self.max_doc_bytes {
            let detail =
                format!("text is {} bytes, over source.max_doc_bytes = {}", text.len(), self.max_doc_bytes);
            return Record::Reject(Reject::new(origin, OP, "doc_too_large", detail, id));
        }
        if text.trim().is_empty() {
            return Record::Reject(Reject::new(origin, OP, "empty_text", "text is empty", id));
        }
        let id = id.filter(|s| !s.is_empty()).unwrap_or_else(|| Doc::derived_id(&origin));
        let lang = lang.filter(|l| !l.is_empty());
        Record::Doc(Doc { id, text, url, source: origin, lang, meta, pair: None, born: None })
    }
}

const OP: &str = "read";

/// What happened to one shard; the leader commits these to the manifest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardReport {
    pub task: ShardTask,
    /// xxh3-128 of the raw bytes; empty when the shard could not be opened.
    pub content_hash: String,
    pub docs: u64,
    pub rejects: u64,
    /// The shard was read, but part of it is unreadable (truncated, corrupt): the reason.
    pub file_error: Option<String>,
    /// The shard could not be opened at all (e.g. an unreadable S3 object). Such a shard is not
    /// recorded as processed, so the next run retries it.
    pub open_error: Option<String>,
}

/// The read operator's outputs.
pub struct SourceOutput<'s> {
    pub docs: VecCollection<'s, Epoch, Doc>,
    pub rejects: VecCollection<'s, Epoch, Reject>,
    pub reports: VecCollection<'s, Epoch, ShardReport>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum SourceItem {
    Doc(Doc),
    Reject(Reject),
    Report(ShardReport),
}

/// Reads the shards of a collection of [`ShardTask`]s.
pub trait ReadShards<'s> {
    fn read_shards(
        self,
        cfg: &SourceConfig,
        opener: Rc<dyn ShardOpener>,
        stats: &StatsRegistry,
        progress: Option<Arc<Progress>>,
    ) -> SourceOutput<'s>;

    fn read_shards_named(
        self,
        name: &str,
        cfg: &SourceConfig,
        opener: Rc<dyn ShardOpener>,
        stats: &StatsRegistry,
        progress: Option<Arc<Progress>>,
    ) -> SourceOutput<'s>;
}

/// The shard being read by this worker.
struct Active {
    cap: Capability<Epoch>,
    records: Box<dyn Iterator<Item = Record>>,
    report: ShardReport,
    _shard: OpenedShard,
}

impl<'s> ReadShards<'s> for VecCollection<'s, Epoch, ShardTask> {
    fn read_shards(
        self,
        cfg: &SourceConfig,
        opener: Rc<dyn ShardOpener>,
        stats: &StatsRegistry,
        progress: Option<Arc<Progress>>,
    ) -> SourceOutput<'s> {
        self.read_shards_named(OP, cfg, opener, stats, progress)
    }

    fn read_shards_named(
        self,
        name: &str,
        cfg: &SourceConfig,
        opener: Rc<dyn ShardOpener>,
        stats: &StatsRegistry,
        progress: Option<Arc<Progress>>,
    ) -> SourceOutput<'s> {
        let cfg = cfg.clone();
        let stats = stats.clone();
        let op_name = name.to_string();
        let scope = self.inner.scope();
        let exchange = Exchange::new(|(task, _, _): &(ShardTask, Epoch, isize)| xxh3_64(task.uri.as_bytes()));
        let items =
            self.inner.unary_frontier::<CapacityContainerBuilder<Vec<(SourceItem, Epoch, isize)>>, _, _, _>(
                exchange,
                name,
                move |_cap, info| {
                    let activator = scope.activator_for(info.address);
                    // Shards waiting to be read, in epoch order, with their epoch's capability.
                    let mut pending: BTreeMap<(Epoch, String), (Capability<Epoch>, ShardTask)> =
                        BTreeMap::new();
                    let mut active: Option<Active> = None;
                    move |(input, _frontier), output| {
                        input.for_each(|cap, data| {
                            for (task, time, diff) in data.drain(..) {
                                if diff > 0 {
                                    let key = (time, task.uri.clone());
                                    pending.insert(key, (cap.delayed(&time, 0), task));
                                }
                            }
                        });
                        // The next shards start downloading while this one is read.
                        for (_, task) in pending.values().take(PREFETCH) {
                            opener.prefetch(task);
                        }
                        let started = Instant::now();
                        let mut fuel = cfg.batch_docs.get();
                        let mut counts = Counts::default();
                        while fuel > 0 {
                            if active.is_none() {
                                let Some((_, (cap, task))) = pending.pop_first() else {
                                    break;
                                };
                                match open(&*opener, &cfg, cap, task, progress.clone()) {
                                    Ok(a) => active = Some(a),
                                    Err((cap, report)) => {
                                        counts.note_report(&report);
                                        let t = *cap.time();
                                        output.session(&cap).give((SourceItem::Report(report), t, 1));
                                    }
                                }
                                continue;
                            }
                            let Some(Active { cap, records, report, .. }) = active.as_mut() else {
                                break;
                            };
                            let time = *cap.time();
                            let mut session = output.session(&*cap);
                            let mut finished = false;
                            while fuel > 0 {
                                fuel -= 1;
                                match records.next() {
                                    Some(Record::Doc(mut doc)) => {
                                        doc.born = report.task.born;
                                        report.docs += 1;
                                        counts.docs += 1;
                                        session.give((SourceItem::Doc(doc), time, 1));
                                    }
                                    Some(Record::Reject(r)) => {
                                        report.rejects += 1;
                                        counts.drop(&r.reason);
                                        session.give((SourceItem::Reject(r), time, 1));
                                    }
                                    Some(Record::FileError(r)) => {
                                        report.rejects += 1;
                                        report.file_error = Some(format!("{}: {}", r.reason, r.detail));
                                        counts.drop(&r.reason);
                                        session.give((SourceItem::Reject(r), time, 1));
                                    }
                                    None => {
                                        finished = true;
                                        break;
                                    }
                                }
                            }
                            if finished {
                                counts.note_report(report);
                                session.give((SourceItem::Report(report.clone()), time, 1));
                                drop(session);
                                active = None;
                            }
                        }
                        if active.is_some() || !pending.is_empty() {
                            activator.activate();
                        }
                        if let Some(p) = &progress {
                            p.docs.fetch_add(counts.docs, Ordering::Relaxed);
                            p.shards.fetch_add(counts.shards, Ordering::Relaxed);
                        }
                        stats.with(&op_name, |s| {
                            s.docs_in += counts.docs + counts.dropped.values().sum::<u64>();
                            s.docs_out += counts.docs;
                            for (reason, n) in &counts.dropped {
                                *s.dropped.entry(reason.clone()).or_default() += n;
                            }
                            s.count("shards", counts.shards);
                            s.count("shard_file_errors", counts.file_errors);
                            s.count("shard_open_errors", counts.open_errors);
                            s.add_time(started.elapsed());
                        });
                    }
                },
            );
        let mut parts = items
            .partition::<CapacityContainerBuilder<Vec<_>>, _, _>(3, |(item, t, r)| match item {
                SourceItem::Doc(_) => (0, (item, t, r)),
                SourceItem::Reject(_) => (1, (item, t, r)),
                SourceItem::Report(_) => (2, (item, t, r)),
            })
            .into_iter();
        let (Some(docs), Some(rejects), Some(reports)) = (parts.next(), parts.next(), parts.next()) else {
            unreachable!("partition(3) returns three streams")
        };
        SourceOutput {
            docs: docs
                .flat_map(|(item, t, r)| match item {
                    SourceItem::Doc(d) => Some((d, t, r)),
                    _ => None,
                })
                .as_collection(),
            rejects: rejects
                .flat_map(|(item, t, r)| match item {
                    SourceItem::Reject(x) => Some((x, t, r)),
                    _ => None,
                })
                .as_collection(),
            reports: reports
                .flat_map(|(item, t, r)| match item {
                    SourceItem::Report(x) => Some((x, t, r)),
                    _ => None,
                })
                .as_collection(),
        }
    }
}

/// Counters of one activation, folded into the stats registry at its end.
#[derive(Default)]
struct Counts {
    docs: u64,
    dropped: BTreeMap<String, u64>,
    shards: u64,
    file_errors: u64,
    open_errors: u64,
}

impl Counts {
    fn drop(&mut self, reason: &str) {
        *self.dropped.entry(reason.to_string()).or_default() += 1;
    }
    fn note_report(&mut self, report: &ShardReport) {
        self.shards += 1;
        self.file_errors += report.file_error.is_some() as u64;
        self.open_errors += report.open_error.is_some() as u64;
    }
}

/// Shards a worker downloads ahead of the one it reads (remote inputs; each takes spool
/// space until it is read).
const PREFETCH: usize = 2;

/// Opens a shard and its format reader. A shard that cannot be opened comes back as a finished
/// report; a format that fails at open (corrupt footer, empty file) becomes a one-record
/// iterator of its file-level reject, so it is counted and written like any other.
fn open(
    opener: &dyn ShardOpener,
    cfg: &SourceConfig,
    cap: Capability<Epoch>,
    task: ShardTask,
    progress: Option<Arc<Progress>>,
) -> Result<Active, (Capability<Epoch>, ShardReport)> {
    let mut report = ShardReport {
        task: task.clone(),
        content_hash: String::new(),
        docs: 0,
        rejects: 0,
        file_error: None,
        open_error: None,
    };
    let shard = match opener.open(&task) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(shard = %task.uri, error = %e, "cannot open shard; it will be retried next run");
            report.open_error = Some(e);
            return Err((cap, report));
        }
    };
    report.content_hash = shard.content_hash.clone();
    let origin = Origin { shard: task.uri.clone(), offset: 0 };
    let opened = if shard.size == 0 {
        Err(ReadError::new("empty_file", "the shard is 0 bytes"))
    } else {
        match task.format {
            Format::Jsonl => jsonl::records(&shard.path, &task, cfg, progress),
            Format::Parquet => parquet::records(&shard.path, &task, cfg, progress),
            Format::Wet => wet::records(&shard.path, &task, cfg, progress),
        }
    };
    let records = opened.unwrap_or_else(|e| {
        tracing::warn!(shard = %task.uri, reason = e.reason, detail = %e.detail, "unreadable shard");
        let reject = Reject::new(origin, OP, e.reason, e.detail, None);
        Box::new(std::iter::once(Record::FileError(reject)))
    });
    Ok(Active { cap, records, report, _shard: shard })
}

/// A format reader that cannot start: the reject reason and a message naming the cause.
#[derive(Debug)]
pub struct ReadError {
    pub reason: &'static str,
    pub detail: String,
}

impl ReadError {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        ReadError { reason, detail: detail.into() }
    }
}
