//! Planning: which listed shards a run reads, and why. Plain logic over the manifest and a
//! listing, shared by the leader (each run and `watch` poll) and `xinst run --plan`, which
//! prints the same plan without doing it.
//!
//! A shard is read when it is new, its content changed, its output was made with other
//! settings than the current ones ([`crate::settings`]: the first changed stage is the
//! reason), dedup wants it again (a document changed side, a takedown, new dedup settings),
//! or some of its documents await the model. The rest is current and left alone.

use crate::manifest::Manifest;
use crate::settings::Settings;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use xinstruct_operators::source::ShardTask;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The shards to read, in listing order.
    #[serde(skip)]
    pub tasks: Vec<ShardTask>,
    pub listed: u64,
    pub new: u64,
    pub changed: u64,
    /// Unchanged content whose output was made with other settings.
    pub redo: u64,
    /// Why, by the first changed stage (`quality: length.min_chars 200 -> 300`).
    pub redo_reasons: BTreeMap<String, u64>,
    pub reread: u64,
    pub retried: u64,
    /// Current shards, left alone.
    pub current: u64,
    /// Committed shards no longer listed (removed with `--prune`).
    pub gone: Vec<String>,
    /// Dedup's own state versus its settings, when they differ.
    pub dedup: Option<String>,
}

/// What the leader knows about dedup when it plans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DedupPlan {
    /// Dedup is not in the chain, or its stored state matches its settings.
    #[default]
    Current,
    /// The signature settings changed (or the dataset was built without dedup): every shard
    /// is hashed again.
    Rehash,
    /// Only the clustering parameters changed: one epoch re-clusters the stored signatures.
    Recluster,
}

/// Plans a run over `listing`. `same_bytes` says whether a listed shard whose size or version
/// differs from its entry still has the entry's content (a local file touched but not
/// changed); such entries are re-stamped in `manifest` with the new version, and shards
/// dedup must hash again are recorded in `manifest.reread` (so an interrupted run still
/// hashes the rest). Returns the plan and whether the manifest changed.
pub fn plan(
    manifest: &mut Manifest,
    listing: &[ShardTask],
    settings: &Settings,
    dedup: DedupPlan,
    mut same_bytes: impl FnMut(&ShardTask, &str, u64) -> bool,
) -> (Plan, bool) {
    let mut p = Plan { listed: listing.len() as u64, ..Default::default() };
    let mut touched = false;
    let stored = manifest.settings.clone();
    for task in listing {
        let Some(entry) = manifest.shards.get_mut(&task.uri) else {
            p.new += 1;
            p.tasks.push(task.clone());
            continue;
        };
        let mut unchanged = entry.size == task.size && entry.version == task.version;
        if !unchanged && same_bytes(task, &entry.content_hash, entry.size) {
            entry.version = task.version.clone();
            touched = true;
            unchanged = true;
        }
        if !unchanged {
            p.changed += 1;
            p.tasks.push(task.clone());
            continue;
        }
        let again = ShardTask { born: Some(entry.born()), ..task.clone() };
        let made_with = entry.settings.as_ref().and_then(|id| stored.get(id));
        let redo = match made_with {
            Some(old) => settings.first_change(old).map(|c| c.describe()),
            None => Some("settings not recorded (written by an older xinstruct)".to_string()),
        };
        if dedup == DedupPlan::Rehash && manifest.reread.insert(task.uri.clone()) {
            touched = true;
        }
        if let Some(why) = redo {
            p.redo += 1;
            *p.redo_reasons.entry(why).or_default() += 1;
            p.tasks.push(again);
        } else if manifest.reread.contains(&task.uri) {
            p.reread += 1;
            p.tasks.push(again);
        } else if manifest.awaiting.contains_key(&task.uri) {
            p.retried += 1;
            p.tasks.push(again);
        } else {
            p.current += 1;
        }
    }
    let listed: BTreeSet<&String> = listing.iter().map(|t| &t.uri).collect();
    p.gone = manifest.shards.keys().filter(|u| !listed.contains(u)).cloned().collect();
    p.dedup = match dedup {
        DedupPlan::Current => None,
        DedupPlan::Rehash if manifest.shards.is_empty() => None,
        DedupPlan::Rehash => Some("dedup's signature settings changed: every shard is hashed again".into()),
        DedupPlan::Recluster => Some(
            "dedup's clustering settings changed: the stored signatures are clustered again; shards whose \
             documents change side are read again"
                .into(),
        ),
    };
    (p, touched)
}

impl Plan {
    /// Whether the run has work: shards to read or dedup to redo.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.dedup.is_none()
    }

    /// The plan as a few lines: counts, then why shards are redone.
    pub fn render(&self, prune: bool) -> String {
        let mut out = String::new();
        let mut parts = vec![format!("{} new", self.new), format!("{} changed", self.changed)];
        for (n, what) in [
            (self.redo, "with changed settings"),
            (self.reread, "read again for dedup"),
            (self.retried, "awaiting the model"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let _ = writeln!(
            out,
            "plan: {} shards listed: {}; {} current",
            self.listed,
            parts.join(", "),
            self.current
        );
        for (why, n) in &self.redo_reasons {
            let _ = writeln!(out, "  redo {n} shard{} from {why}", if *n == 1 { "" } else { "s" });
        }
        if let Some(d) = &self.dedup {
            let _ = writeln!(out, "  {d}");
        }
        if !self.gone.is_empty() {
            let what = if prune { "removed (--prune)" } else { "kept (--prune removes them)" };
            let _ = writeln!(out, "  {} committed shards are no longer listed: {what}", self.gone.len());
        }
        if self.is_empty() && (self.gone.is_empty() || !prune) {
            let _ = writeln!(out, "  nothing to do");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::manifest::ShardEntry;
    use crate::settings::ModelIds;
    use xinstruct_operators::source::{Compression, Format};

    fn task(uri: &str, version: &str) -> ShardTask {
        ShardTask {
            uri: uri.into(),
            format: Format::Jsonl,
            compression: Compression::None,
            size: 10,
            version: version.into(),
            born: None,
        }
    }

    fn committed(m: &mut Manifest, uri: &str, settings: Option<&Settings>) {
        let id = settings.map(|s| {
            m.settings.insert(s.id(), s.clone());
            s.id()
        });
        let entry = ShardEntry {
            uri: uri.into(),
            format: Format::Jsonl,
            compression: Compression::None,
            size: 10,
            version: "v1".into(),
            content_hash: "h".into(),
            epoch: 3,
            docs: 1,
            rejects: 0,
            file_error: None,
            files: vec![],
            born: Some(2),
            settings: id,
        };
        m.shards.insert(uri.into(), entry);
    }

    #[test]
    fn each_kind_of_shard_is_counted_once_with_its_reason() {
        let ids = ModelIds::default();
        let old = Settings::of(&Config::default(), &ids);
        let mut cfg = Config::default();
        cfg.quality.length.min_chars = 300;
        let now = Settings::of(&cfg, &ids);
        let mut m = Manifest::new();
        committed(&mut m, "a", Some(&old));
        committed(&mut m, "b", Some(&now));
        committed(&mut m, "c", Some(&now));
        committed(&mut m, "d", None);
        committed(&mut m, "gone", Some(&now));
        m.awaiting.insert("c".into(), Default::default());
        let listing = [task("a", "v1"), task("b", "v1"), task("c", "v1"), task("d", "v2"), task("e", "v1")];
        // d's version changed but its bytes did not: re-stamped, then redone for its settings.
        let (p, touched) = plan(&mut m, &listing, &now, DedupPlan::Current, |t, _, _| t.uri == "d");
        assert!(touched);
        assert_eq!(m.shards["d"].version, "v2");
        let uris: Vec<&str> = p.tasks.iter().map(|t| t.uri.as_str()).collect();
        assert_eq!(uris, ["a", "c", "d", "e"]);
        assert_eq!((p.new, p.changed, p.redo, p.retried, p.current), (1, 0, 2, 1, 1));
        assert_eq!(p.redo_reasons["quality: length.min_chars 200 -> 300"], 1);
        assert_eq!(p.redo_reasons["settings not recorded (written by an older xinstruct)"], 1);
        // Redone shards keep their place in the dedup order; new ones get the epoch they run in.
        assert_eq!(p.tasks[0].born, Some(2));
        assert_eq!(p.tasks[3].born, None);
        assert_eq!(p.gone, ["gone"]);
        let text = p.render(false);
        assert!(
            text.starts_with("plan: 5 shards listed: 1 new, 0 changed, 2 with changed settings"),
            "{text}"
        );
        assert!(text.contains("redo 1 shard from quality: length.min_chars 200 -> 300"), "{text}");
    }

    #[test]
    fn new_dedup_signatures_read_every_shard_again_and_say_so() {
        let s = Settings::of(&Config::default(), &ModelIds::default());
        let mut m = Manifest::new();
        committed(&mut m, "a", Some(&s));
        let (p, touched) = plan(&mut m, &[task("a", "v1")], &s, DedupPlan::Rehash, |_, _, _| false);
        assert!(touched && m.reread.contains("a"));
        assert_eq!((p.reread, p.current), (1, 0));
        assert!(p.render(false).contains("hashed again"));
        // Everything current: nothing to do.
        m.reread.clear();
        let (p, _) = plan(&mut m, &[task("a", "v1")], &s, DedupPlan::Current, |_, _, _| false);
        assert!(p.is_empty());
        assert!(p.render(false).contains("nothing to do"));
    }
}
