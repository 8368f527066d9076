//! `dedup`: exact and near-duplicate removal, incremental across epochs and runs, with
//! retraction.
//!
//! Each document becomes a [`SigRecord`] (text hash, MinHash signature, its [`DocKey`]); the
//! records of this run and the `prior` records of committed shards (the driver reloads them
//! from the dataset's `signatures/` parts; [`load_prior`] moves them into the dataflow only
//! where this run's records meet them) feed [`clusters`], a differential computation whose
//! output is every document's [`Membership`]. A document of epoch `t` is kept when it is
//! its cluster's representative once epoch `t` is complete, and rejected as
//! `exact_duplicate` or `near_duplicate` (detail: the representative's id and epoch)
//! otherwise. Ids on the takedown list are rejected as `taken_down` and never enter the
//! clusters. Later changes to old documents' clusters (a new member, a representative
//! retracted) come out in `clusters` for the driver, which re-reads shards whose documents
//! changed side.
//!
//! Holds, besides the differential arrangements described in [`clusters`](super::clusters)
//! (≈ 5.5 KB a document in all, measured): every document's current membership on the worker
//! that owns its key (≈ 200 bytes with a 32-character id and a 60-character shard URI), the
//! documents (text included) of epochs not yet complete, and on worker 0 the stored records
//! no record of the run has met yet ([`PriorIndex`](super::prior::PriorIndex): the record and
//! a hash-map entry per band key, ≈ 0.9 KB with 128 permutations, instead of the ≈ 5.5 KB it
//! takes arranged).

use super::clusters::{clusters, ClusterParams, DocKey, Membership, SigRecord};
use super::minhash::{exact_hash, MinHashConfig, MinHasher};
use super::prior::{load_prior, PriorLoad};
use crate::doc::{Doc, Reject};
use crate::stats::StatsRegistry;
use crate::Epoch;
use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capability, OkErr};
use xxhash_rust::xxh3::xxh3_64;

/// `[dedup]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// Near-duplicate detection (MinHash LSH); exact dedup always runs.
    #[serde(default = "default_near")]
    pub near: bool,
    /// LSH buckets up to this size propose all their pairs; larger ones pair each member with
    /// the bucket's lowest key only.
    #[serde(default = "default_all_pairs_up_to")]
    pub all_pairs_up_to: usize,
    /// Shingles, permutations, bands × rows and the verification threshold.
    #[serde(default)]
    pub minhash: MinHashConfig,
}

fn default_near() -> bool {
    true
}
fn default_all_pairs_up_to() -> usize {
    16
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            near: default_near(),
            all_pairs_up_to: default_all_pairs_up_to(),
            minhash: MinHashConfig::default(),
        }
    }
}

impl DedupConfig {
    pub fn validate(&self) -> Result<(), String> {
        let m = &self.minhash;
        if m.bands == 0 || m.rows == 0 || m.ngram == 0 || m.char_ngram == 0 {
            return Err("[dedup.minhash] bands, rows, ngram and char_ngram must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&m.threshold) {
            return Err(format!("[dedup.minhash] threshold = {} is not in 0..=1", m.threshold));
        }
        if self.all_pairs_up_to < 2 {
            return Err("[dedup] all_pairs_up_to must be at least 2".into());
        }
        Ok(())
    }

    /// What the stored signatures depend on: a change means every shard is hashed again.
    pub fn signature_fingerprint(&self) -> String {
        let m = &self.minhash;
        format!(
            "minhash-v1 ngram={} char_ngram={} perms={} seed={}",
            m.ngram,
            m.char_ngram,
            m.permutations(),
            m.seed
        )
    }

    pub fn params(&self) -> ClusterParams {
        ClusterParams {
            rows: self.minhash.rows,
            threshold: self.minhash.threshold,
            all_pairs_up_to: self.all_pairs_up_to,
            near: self.near,
        }
    }
}

/// A document's dedup record.
pub fn sig_record(hasher: &MinHasher, near: bool, key: DocKey, doc: &Doc) -> SigRecord {
    let (sig, exact) = if near {
        let (shingles, exact) = hasher.shingles_and_exact(&doc.text);
        let sig = if shingles.is_empty() { Vec::new() } else { hasher.signature(&shingles) };
        (sig, exact)
    } else {
        (Vec::new(), exact_hash(&doc.text))
    };
    SigRecord {
        key,
        shard: doc.source.shard.clone(),
        offset: doc.source.offset,
        lang: doc.lang.clone().unwrap_or_default(),
        exact,
        sig,
    }
}

/// What [`Dedup::dedup`] hands back.
pub struct DedupOutput<'s> {
    pub kept: VecCollection<'s, Epoch, Doc>,
    pub rejected: VecCollection<'s, Epoch, Reject>,
    /// The records of the documents read in this run (taken-down ones excluded), for the
    /// driver to persist beside their shard.
    pub records: VecCollection<'s, Epoch, SigRecord>,
    /// Memberships of documents in clusters of two or more, as changes: the dataset's
    /// cluster table and the driver's view of who changed side.
    pub clusters: VecCollection<'s, Epoch, (DocKey, Membership)>,
    /// Keys of stored records that entered the dataflow, at the epoch they did: from then on
    /// their memberships are the dataflow's, not the stored ones.
    pub loaded: VecCollection<'s, Epoch, DocKey>,
}

/// The records of committed shards (inserted once, retracted when a shard is replaced) and
/// how to load them.
pub struct Prior<'s> {
    pub records: VecCollection<'s, Epoch, SigRecord>,
    pub load: PriorLoad,
}

pub trait Dedup<'s> {
    /// `prior`: the stored records; `takedown`: ids to reject and keep out of every cluster.
    fn dedup(
        self,
        prior: Prior<'s>,
        cfg: &DedupConfig,
        takedown: Arc<HashSet<String>>,
        stats: &StatsRegistry,
    ) -> DedupOutput<'s>;

    fn dedup_named(
        self,
        name: &str,
        prior: Prior<'s>,
        cfg: &DedupConfig,
        takedown: Arc<HashSet<String>>,
        stats: &StatsRegistry,
    ) -> DedupOutput<'s>;
}

/// Documents of one epoch waiting for the epoch's memberships.
struct Waiting {
    cap: Capability<Epoch>,
    docs: Vec<(DocKey, Doc)>,
}

impl<'s> Dedup<'s> for VecCollection<'s, Epoch, Doc> {
    fn dedup(
        self,
        prior: Prior<'s>,
        cfg: &DedupConfig,
        takedown: Arc<HashSet<String>>,
        stats: &StatsRegistry,
    ) -> DedupOutput<'s> {
        self.dedup_named("dedup", prior, cfg, takedown, stats)
    }

    fn dedup_named(
        self,
        name: &str,
        prior: Prior<'s>,
        cfg: &DedupConfig,
        takedown: Arc<HashSet<String>>,
        stats: &StatsRegistry,
    ) -> DedupOutput<'s> {
        let hasher = MinHasher::new(&cfg.minhash);
        let near = cfg.near;
        let op = name.to_string();
        let hashing_stats = stats.clone();
        let hashing_takedown = takedown.clone();
        // One pass: each document comes out keyed, and (unless taken down) its record beside
        // it, so the text is not copied for a second consumer.
        let (docs, records) = self
            .inner
            .flat_map(move |(doc, time, diff)| {
                let started = Instant::now();
                let key = DocKey { epoch: doc.born.unwrap_or(time), id: doc.id.clone() };
                let record = (!hashing_takedown.contains(&doc.id))
                    .then(|| Err((sig_record(&hasher, near, key.clone(), &doc), time, diff)));
                hashing_stats.with(&op, |s| s.add_time(started.elapsed()));
                std::iter::once(Ok(((key, doc), time, diff))).chain(record)
            })
            .ok_err::<Vec<_>, _, Vec<_>, _, _>(|item| item);
        let (docs, records) = (docs.as_collection(), records.as_collection());
        let params = cfg.params();
        let (stored, loaded) = load_prior(prior.records, records.clone(), &params, prior.load);
        let memberships = clusters(stored.concat(records.clone()), &params);
        let cluster_changes = memberships.clone().filter(|(_, m)| m.size > 1);

        let stats = stats.clone();
        let op = name.to_string();
        let by_key = |key: &DocKey| xxh3_64(key.id.as_bytes()) ^ key.epoch;
        let docs_pact = Exchange::new(move |((key, _), _, _): &((DocKey, Doc), Epoch, isize)| by_key(key));
        let members_pact =
            Exchange::new(move |((key, _), _, _): &((DocKey, Membership), Epoch, isize)| by_key(key));
        let decided = docs.inner.binary_frontier::<_, CapacityContainerBuilder<Vec<_>>, _, _, _, _>(
            memberships.inner,
            docs_pact,
            members_pact,
            name,
            move |_cap, _info| {
                let mut current: HashMap<DocKey, Membership> = HashMap::new();
                let mut changes: BTreeMap<Epoch, Vec<(DocKey, Membership, isize)>> = BTreeMap::new();
                let mut waiting: BTreeMap<Epoch, Waiting> = BTreeMap::new();
                move |(docs_in, docs_frontier), (members_in, members_frontier), output| {
                    docs_in.for_each(|cap, data| {
                        for ((key, doc), time, diff) in data.drain(..) {
                            if diff <= 0 {
                                tracing::warn!(doc = %doc.id, "dedup ignores a retracted document; shards are retracted through their records");
                                continue;
                            }
                            let slot = waiting
                                .entry(time)
                                .or_insert_with(|| Waiting { cap: cap.delayed(&time, 0), docs: Vec::new() });
                            for _ in 0..diff {
                                slot.docs.push((key.clone(), doc.clone()));
                            }
                        }
                    });
                    members_in.for_each(|_cap, data| {
                        for ((key, membership), time, diff) in data.drain(..) {
                            changes.entry(time).or_default().push((key, membership, diff));
                        }
                    });
                    let started = Instant::now();
                    // Changes of complete epochs, in time order; within an epoch removals first.
                    while let Some(entry) = changes.first_entry() {
                        if members_frontier.less_equal(entry.key()) {
                            break;
                        }
                        let mut batch = entry.remove();
                        batch.sort_by_key(|(_, _, diff)| *diff);
                        for (key, membership, diff) in batch {
                            if diff < 0 {
                                if current.get(&key) == Some(&membership) {
                                    current.remove(&key);
                                }
                            } else {
                                current.insert(key, membership);
                            }
                        }
                    }
                    let ready: Vec<Epoch> = waiting
                        .keys()
                        .copied()
                        .filter(|t| !docs_frontier.less_equal(t) && !members_frontier.less_equal(t))
                        .collect();
                    for t in ready {
                        let Some(Waiting { cap, docs }) = waiting.remove(&t) else { continue };
                        let mut session = output.session(&cap);
                        stats.with(&op, |s| {
                            for (key, doc) in docs {
                                s.docs_in += 1;
                                let verdict = decide(&op, &takedown, current.get(&key), &key, doc);
                                match &verdict {
                                    Ok(_) => s.docs_out += 1,
                                    Err(r) => s.drop(&r.reason),
                                }
                                session.give((verdict, t, 1));
                            }
                        });
                    }
                    stats.with(&op, |s| s.add_time(started.elapsed()));
                }
            },
        );
        let (kept, rejected) =
            decided.ok_err::<Vec<_>, _, Vec<_>, _, _>(|(verdict, time, diff)| match verdict {
                Ok(doc) => Ok((doc, time, diff)),
                Err(reject) => Err((reject, time, diff)),
            });
        DedupOutput {
            kept: kept.as_collection(),
            rejected: rejected.as_collection(),
            records,
            clusters: cluster_changes,
            loaded,
        }
    }
}

/// Keep the representative; reject the rest with the representative's id.
fn decide(
    op: &str,
    takedown: &HashSet<String>,
    membership: Option<&Membership>,
    key: &DocKey,
    doc: Doc,
) -> Result<Doc, Reject> {
    if takedown.contains(&doc.id) {
        let detail = "the id is on the takedown list";
        return Err(Reject::new(doc.source.clone(), op, "taken_down", detail, Some(doc.id)));
    }
    match membership {
        Some(m) if !m.representative(key) => {
            let reason = if m.exact_copy { "exact_duplicate" } else { "near_duplicate" };
            // The cluster's size is left out: it grows after the decision (the dup_clusters
            // table has the current one).
            let detail = format!("duplicate of {} (epoch {})", m.cluster.id, m.cluster.epoch);
            Err(Reject::new(doc.source.clone(), op, reason, detail, Some(doc.id)))
        }
        Some(_) => Ok(doc),
        None => {
            // Cannot happen in a consistent dataflow: every record has a membership.
            tracing::error!(doc = %doc.id, "no dedup membership; kept");
            Ok(doc)
        }
    }
}
