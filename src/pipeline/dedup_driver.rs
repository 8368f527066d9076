//! The leader's dedup bookkeeping: what state the stored signatures and clusters are in, the
//! records loaded into and withdrawn from the dataflow, and the shards read again when their
//! documents change side (src/dedup.rs explains the state).

use super::leader::Leader;
use super::WorkerCtx;
use crate::config::Config;
use crate::dedup::{shard_signatures, ClusterView};
use crate::manifest::{DedupState, Manifest, Pending};
use crate::plan::DedupPlan;
use anyhow::Result;
use std::collections::{BTreeSet, HashSet};
use std::time::Instant;
use xinstruct_operators::dedup::{DocKey, Membership, SigRecord};
use xinstruct_operators::source::ShardTask;
use xinstruct_operators::Epoch;

/// The leader's dedup bookkeeping for one run (src/dedup.rs explains the state).
pub(super) struct DedupDriver {
    pub(super) want: DedupState,
    /// The stored signatures were made with other settings (or without dedup): every shard
    /// is read again and none is loaded.
    pub(super) stale: bool,
    /// The clustering parameters changed: one epoch re-clusters even with nothing to read.
    pub(super) recluster: bool,
    /// What the dataset reflects (the committed snapshot) and what it should reflect now: the
    /// stored memberships, each replaced by the dataflow's once dedup loads its record.
    pub(super) committed: ClusterView,
    pub(super) live: ClusterView,
    /// Shards whose records are in the dataflow (loaded, or read in this run).
    pub(super) in_dataflow: HashSet<String>,
    pub(super) loaded: bool,
    /// Records of shards gone from the input, retracted at the next epoch.
    pub(super) gone: Vec<SigRecord>,
    /// Compare every document at the next commit, not only the touched ones: a document
    /// whose cluster vanished while the run loaded its state sends no change.
    pub(super) full_compare: bool,
}

/// What dedup said about one epoch.
#[derive(Default)]
pub(super) struct DedupEvents {
    /// Stored records that entered the dataflow.
    pub(super) loaded: Vec<DocKey>,
    /// Membership changes of documents in clusters of two or more.
    pub(super) changes: Vec<(DocKey, Membership, isize)>,
}

/// The dedup state the config asks for.
pub(super) fn dedup_want(config: &Config) -> DedupState {
    DedupState {
        signatures: config.dedup.signature_fingerprint(),
        clustering: format!("{:?}", config.dedup.params()),
    }
}

/// How the stored dedup state compares with `want`.
pub(super) fn dedup_status(manifest: &Manifest, want: &DedupState) -> DedupPlan {
    match &manifest.dedup {
        Some(state) if state.signatures != want.signatures => DedupPlan::Rehash,
        Some(state) if state.clustering != want.clustering => DedupPlan::Recluster,
        Some(_) => DedupPlan::Current,
        None if manifest.shards.is_empty() => DedupPlan::Current,
        None => DedupPlan::Rehash,
    }
}

impl Leader {
    pub(super) fn dedup_plan(&self) -> DedupPlan {
        match &self.dedup {
            Some(d) if d.stale => DedupPlan::Rehash,
            Some(d) if d.recluster => DedupPlan::Recluster,
            _ => DedupPlan::Current,
        }
    }

    /// Whether dedup needs an epoch although no shard is planned: changed clustering
    /// parameters, or records of shards gone from the input to retract.
    pub(super) fn dedup_epoch_due(&self) -> bool {
        self.dedup.as_ref().is_some_and(|d| d.recluster || !d.gone.is_empty())
    }

    /// Feeds the records of every committed shard to dedup's `prior` input (once per run).
    /// Those of shards this run reads again are retracted when their batch is fed, like any
    /// replaced shard's: until then they stand, and their retraction lets dedup load what
    /// they are linked to.
    pub(super) fn load_prior(&mut self, ctx: &WorkerCtx, mut insert: impl FnMut(SigRecord)) -> Result<()> {
        let Some(d) = self.dedup.as_mut() else { return Ok(()) };
        if d.loaded {
            return Ok(());
        }
        d.loaded = true;
        if std::mem::take(&mut d.stale) {
            // Every committed shard is in this first plan, hashed again.
            return Ok(());
        }
        let started = Instant::now();
        let mut n = 0usize;
        for (uri, entry) in &self.manifest.shards {
            for record in shard_signatures(&ctx.output, &ctx.rt, &entry.files)? {
                insert(record);
                n += 1;
            }
            d.in_dataflow.insert(uri.clone());
        }
        self.summary.dedup_stored = n as u64;
        tracing::info!(records = n, secs = started.elapsed().as_secs_f64(), "dedup state read");
        Ok(())
    }

    /// Records to withdraw from dedup before `batch` is read: those of shards gone from the
    /// input and the stored ones of shards in the batch whose records are in the dataflow.
    pub(super) fn retractions(&mut self, ctx: &WorkerCtx, batch: &[ShardTask]) -> Result<Vec<SigRecord>> {
        let Some(d) = self.dedup.as_mut() else { return Ok(Vec::new()) };
        let mut out = std::mem::take(&mut d.gone);
        for task in batch {
            if d.in_dataflow.contains(&task.uri) {
                if let Some(entry) = self.manifest.shards.get(&task.uri) {
                    out.extend(shard_signatures(&ctx.output, &ctx.rt, &entry.files)?);
                }
            }
            d.in_dataflow.insert(task.uri.clone());
        }
        Ok(out)
    }

    /// Applies an epoch's cluster changes: finds committed documents that changed side
    /// (their shards are read again, recorded in the manifest so a crash does not lose them)
    /// and replaces the cluster snapshot.
    pub(super) fn settle_dedup(
        &mut self,
        ctx: &WorkerCtx,
        epoch: Epoch,
        events: DedupEvents,
        batch: &[ShardTask],
        later: &BTreeSet<&String>,
        pending: &mut Pending,
    ) -> Result<Vec<ShardTask>> {
        for task in batch {
            self.manifest.reread.remove(&task.uri);
        }
        let Some(d) = self.dedup.as_mut() else {
            if !batch.is_empty() {
                // Shards committed without dedup have no signatures: a later run with dedup
                // hashes everything again.
                self.manifest.dedup = None;
            }
            return Ok(Vec::new());
        };
        // A loaded record's stored membership gives way to the dataflow's (which may be none:
        // a cluster of one).
        let DedupEvents { loaded, changes } = events;
        self.summary.dedup_loaded += loaded.len() as u64;
        for key in &loaded {
            d.live.members.remove(key);
        }
        let mut touched = d.live.apply(changes);
        touched.extend(loaded);
        let keys: BTreeSet<DocKey> = if std::mem::take(&mut d.full_compare) {
            d.live.members.keys().chain(d.committed.members.keys()).cloned().collect()
        } else {
            touched
        };
        let in_batch: BTreeSet<&String> = batch.iter().map(|t| &t.uri).collect();
        let mut rereads = Vec::new();
        for uri in d.live.changed_shards(&d.committed, &keys) {
            if in_batch.contains(&uri) || later.contains(&uri) {
                continue;
            }
            let Some(entry) = self.manifest.shards.get(&uri) else { continue };
            if self.manifest.reread.insert(uri.clone()) {
                self.summary.shards_reread += 1;
                rereads.push(ShardTask {
                    uri,
                    format: entry.format,
                    compression: entry.compression,
                    size: entry.size,
                    version: entry.version.clone(),
                    born: Some(entry.born()),
                });
            }
        }
        let (tmp, snapshot) = d.live.write(&ctx.output, &ctx.rt, epoch)?;
        pending.renames.push((tmp, snapshot.path.clone()));
        if let Some(old) = self.manifest.dup_clusters.replace(snapshot) {
            pending.deletes.push(old.path);
        }
        d.committed = d.live.clone();
        d.recluster = false;
        self.manifest.dedup = Some(d.want.clone());
        Ok(rereads)
    }
}
