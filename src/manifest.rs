//! The dataset's state: which shards were processed in which epoch and which files they
//! produced. It lives at `_xinstruct/manifest.json` in the output and is the only record of
//! what is committed.
//!
//! Commit protocol (leader only): sinks write parts under `_xinstruct/tmp/`; the leader writes
//! the new manifest with the pending renames and deletes (one atomic put), performs them, and
//! writes the manifest again without them. A crash at any point leaves either the old manifest
//! (the epoch is redone; its temporaries are garbage) or the new one with pending operations,
//! which [`recover`] finishes. Part names are deterministic (hash of shard URI and content), so
//! redoing an epoch overwrites rather than duplicates.

use crate::settings::Settings;
use crate::store::Store;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tokio::runtime::Runtime;
use xinstruct_operators::source::{Compression, Format};
use xinstruct_operators::Epoch;

pub const MANIFEST: &str = "_xinstruct/manifest.json";
pub const TMP_DIR: &str = "_xinstruct/tmp";
/// Dedup's signature records, one part per shard.
pub const SIGNATURES_DIR: &str = "signatures";
/// The snapshot of clusters of two or more documents (one file, replaced at every commit).
pub const DUP_CLUSTERS_DIR: &str = "dup_clusters";
pub const LANG_PREFIX: &str = "lang=";
/// Documents that passed every filter but were not sampled for an instruction, by language.
pub const CORPUS_DIR: &str = "corpus";
/// The diversity selection: one snapshot per language, replaced when it changes.
pub const DIVERSITY_DIR: &str = "diversity";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// The epoch the next batch of shards gets.
    pub next_epoch: Epoch,
    /// By shard URI.
    pub shards: BTreeMap<String, ShardEntry>,
    pub epochs: Vec<EpochEntry>,
    /// Renames and deletes of a commit not yet carried out.
    pub pending: Option<Pending>,
    /// What the stored dedup signatures and clusters were computed with.
    #[serde(default)]
    pub dedup: Option<DedupState>,
    /// Document ids to keep out of the dataset (`xinst retract`).
    #[serde(default)]
    pub takedown: BTreeSet<String>,
    /// Shards to read again although unchanged: dedup moved one of their documents between
    /// kept and duplicate, or a takedown names one. Cleared as they are committed.
    #[serde(default)]
    pub reread: BTreeSet<String>,
    /// The snapshot of clusters of two or more documents.
    #[serde(default)]
    pub dup_clusters: Option<FileEntry>,
    /// Shards with documents whose model call failed for the model's reasons (server down,
    /// timeouts, …): committed with what was made, and read again by the next run and every
    /// `watch` poll until those documents are done (the memo cache answers the rest).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub awaiting: BTreeMap<String, Awaiting>,
    /// The settings shards were made with, by [`Settings::id`] (shards name theirs); only
    /// ones some shard names are kept.
    #[serde(default)]
    pub settings: BTreeMap<String, Settings>,
    /// The diversity selection's snapshot of each language (`diversity/selection-…`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub diversity: BTreeMap<String, FileEntry>,
}

/// A shard's documents that wait for the model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Awaiting {
    pub docs: u64,
    /// By reason (`gen_unreachable`, `gen_http_error`, …).
    pub reasons: BTreeMap<String, u64>,
    /// The epoch that last tried them.
    pub epoch: Epoch,
    /// One failure's message, to show what went wrong.
    pub example: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DedupState {
    /// [`DedupConfig::signature_fingerprint`](xinstruct_operators::dedup::DedupConfig::signature_fingerprint).
    pub signatures: String,
    /// The clustering parameters (near, rows, threshold, all_pairs_up_to) as text.
    pub clustering: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    pub uri: String,
    pub format: Format,
    pub compression: Compression,
    pub size: u64,
    /// S3 ETag or local file version when processed.
    pub version: String,
    pub content_hash: String,
    pub epoch: Epoch,
    pub docs: u64,
    pub rejects: u64,
    pub file_error: Option<String>,
    pub files: Vec<FileEntry>,
    /// The epoch the shard was first committed in, when it was read again unchanged since
    /// (its documents' place in the dedup order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub born: Option<Epoch>,
    /// The [`Settings::id`] of what its output was made with (`None`: an older xinstruct
    /// did not record it, and the next run redoes the shard).
    #[serde(default)]
    pub settings: Option<String>,
}

impl ShardEntry {
    /// The epoch that orders this shard's documents for dedup.
    pub fn born(&self) -> Epoch {
        self.born.unwrap_or(self.epoch)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the output root, e.g. `lang=hi/part-….parquet`.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochEntry {
    pub epoch: Epoch,
    pub committed_at: String,
    pub shards_added: u64,
    pub shards_replaced: u64,
    /// Documents the readers decoded from this epoch's shards.
    pub docs_read: u64,
    /// Records the readers rejected (every operator's rejects are in the rejects dataset).
    pub read_rejects: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// (temporary path, final path)
    pub renames: Vec<(String, String)>,
    pub deletes: Vec<String>,
}

impl Manifest {
    pub fn new() -> Self {
        Manifest { format_version: 1, next_epoch: 1, ..Default::default() }
    }

    pub fn load(out: &Store, rt: &Runtime) -> Result<Manifest> {
        match out.get_opt(rt, MANIFEST)? {
            None => Ok(Manifest::new()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: corrupt manifest", out.uri_of(&out.path(MANIFEST)))),
        }
    }

    pub fn save(&mut self, out: &Store, rt: &Runtime) -> Result<()> {
        let named: BTreeSet<&String> = self.shards.values().filter_map(|s| s.settings.as_ref()).collect();
        self.settings.retain(|id, _| named.contains(id));
        out.put(rt, MANIFEST, serde_json::to_vec_pretty(self)?)?;
        // On local disk the commit is only as durable as the file and its folder entry.
        out.sync(MANIFEST)
    }

    /// Every data file the manifest commits.
    pub fn files(&self) -> BTreeSet<String> {
        self.shards
            .values()
            .flat_map(|s| s.files.iter().map(|f| f.path.clone()))
            .chain(self.dup_clusters.iter().map(|f| f.path.clone()))
            .chain(self.diversity.values().map(|f| f.path.clone()))
            .collect()
    }

    /// Commits `pending` in two steps (see the module doc).
    pub fn commit(&mut self, out: &Store, rt: &Runtime, pending: Pending) -> Result<()> {
        self.pending = Some(pending);
        self.save(out, rt)?;
        self.finish_pending(out, rt)
    }

    fn finish_pending(&mut self, out: &Store, rt: &Runtime) -> Result<()> {
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        for (tmp, dst) in &pending.renames {
            out.rename(rt, tmp, dst)?;
        }
        let kept: BTreeSet<&String> = pending.renames.iter().map(|(_, d)| d).collect();
        for path in pending.deletes.iter().filter(|p| !kept.contains(p)) {
            out.delete(rt, path)?;
        }
        self.save(out, rt)
    }
}

/// Brings an output back to a committed state after a crash: finishes a pending commit, then
/// removes the temporaries under `_xinstruct/tmp/` (xinstruct's own; nothing else is ever
/// deleted: a commit moves parts out of there only with the manifest naming them). Returns the
/// manifest and the number of temporaries removed.
pub fn recover(out: &Store, rt: &Runtime) -> Result<(Manifest, usize)> {
    let mut manifest = Manifest::load(out, rt)?;
    if manifest.pending.is_some() {
        tracing::info!("finishing an interrupted commit");
        manifest.finish_pending(out, rt)?;
    }
    let mut removed = 0;
    for rel in out.list_rel(rt, TMP_DIR)? {
        tracing::debug!(path = %rel, "removing an uncommitted temporary");
        out.delete(rt, &rel)?;
        removed += 1;
    }
    Ok((manifest, removed))
}

/// Makes sure `out` is an xinstruct dataset or new: a folder that holds files but no manifest
/// belongs to someone else and is refused unless `force` (the dataset is then written beside
/// those files, which are never read or deleted). A new dataset is marked at once with an empty
/// manifest, so an interrupted first run is still recognised.
pub fn claim(out: &Store, rt: &Runtime, force: bool) -> Result<()> {
    if out.get_opt(rt, MANIFEST)?.is_some() {
        return Ok(());
    }
    let foreign: Vec<String> =
        out.list_rel(rt, "")?.into_iter().filter(|r| !r.starts_with("_xinstruct/")).collect();
    if let Some(first) = foreign.first() {
        if !force {
            bail!(
                "output {} is not empty and has no {MANIFEST}: its {} files (e.g. {first}) were not written by \
                 xinstruct. Use a new or empty folder, or pass --force to write the dataset beside them \
                 (xinstruct never deletes files it did not write)",
                out.display_root,
                foreign.len()
            );
        }
        tracing::warn!(
            files = foreign.len(),
            "--force: writing the dataset beside files xinstruct did not write"
        );
    }
    Manifest::new().save(out, rt)
}

/// Now, as `2026-11-26T10:00:00Z` (the manifest's commit times).
pub fn now_rfc3339() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    // Civil time from the Unix epoch (UTC), without pulling a date crate into the binary.
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_783), (2026, 11, 26));
    }
}
