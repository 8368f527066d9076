//! What a run did ([`RunSummary`], saved as `stats/run-*.json`) and the end-of-run report: a
//! table of shards, documents per operator, rejects by reason, time.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;
use xinstruct_operators::stats::OpStats;
use xinstruct_operators::Epoch;

/// What a run did; printed as a table and saved as JSON.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunSummary {
    pub input: String,
    pub output: String,
    pub started_at_unix_ms: u128,
    pub wall_secs: f64,
    pub workers: usize,
    pub shards_listed: u64,
    pub shards_unchanged: u64,
    pub shards_new: u64,
    pub shards_changed: u64,
    /// Unchanged shards read again for dedup (a document changed side, a takedown, new
    /// dedup settings).
    #[serde(default)]
    pub shards_reread: u64,
    /// Dedup records of committed shards the run started with, and how many of them dedup
    /// loaded into its arrangements (the others met no record of the run and kept their
    /// stored clusters).
    #[serde(default)]
    pub dedup_stored: u64,
    #[serde(default)]
    pub dedup_loaded: u64,
    /// Unchanged shards read again because their output was made with other settings.
    #[serde(default)]
    pub shards_redone: u64,
    /// Why, by the first changed stage (`quality: length.min_chars 200 -> 300`).
    #[serde(default)]
    pub redo_reasons: BTreeMap<String, u64>,
    /// Unchanged shards read again because some of their documents awaited the model.
    #[serde(default)]
    pub shards_retried: u64,
    /// Shards read and committed (new or changed content).
    pub shards_processed: u64,
    pub shards_pruned: u64,
    pub epochs: Vec<Epoch>,
    /// Documents the readers decoded.
    pub docs_read: u64,
    /// Documents written to the dataset.
    pub docs_out: u64,
    /// Documents kept as the filtered corpus (not sampled for an instruction).
    #[serde(default)]
    pub docs_corpus: u64,
    /// Records rejected by any operator.
    pub rejects: u64,
    pub files_written: u64,
    /// Temporaries of an interrupted run removed at the start (`_xinstruct/tmp/` only).
    pub stray_files_removed: u64,
    /// `uri: error` of shards that could not be opened (retried next run).
    pub open_errors: Vec<String>,
    /// `uri: reason` of shards read only in part.
    pub file_errors: Vec<String>,
    /// Rejected records by reason, over all operators.
    pub rejects_by_reason: BTreeMap<String, u64>,
    /// Documents whose model call failed for the model's reasons (server down, timeouts, …)
    /// and that wait for the next run, over the whole dataset after this run; by reason.
    #[serde(default)]
    pub awaiting_model: u64,
    #[serde(default)]
    pub awaiting_shards: u64,
    #[serde(default)]
    pub awaiting_by_reason: BTreeMap<String, u64>,
    /// One waiting document's failure, to show what went wrong.
    #[serde(default)]
    pub awaiting_example: Option<String>,
    /// Seconds the model had at least one request out (0 without model stages), and that
    /// share of the wall time: how well the run kept it fed.
    #[serde(default)]
    pub model_busy_secs: f64,
    #[serde(default)]
    pub model_busy_fraction: f64,
    /// The model servers the run's generators sent to (a pool's each): requests answered and
    /// failed, and whether the server was out at the end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerFigures>,
    pub operators: BTreeMap<String, OpStats>,
    /// The operator chain between read and write, in order.
    pub chain: Vec<String>,
    pub interrupted: bool,
    /// The judge's self-check: how well its verdicts tell true pairs from mismatched ones.
    #[serde(default)]
    pub judge: Option<JudgeCheck>,
    /// The diversity selection per language after the run (languages it touched).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub diversity: BTreeMap<String, crate::diversify::LangFigures>,
}

/// One model server's share of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerFigures {
    pub url: String,
    pub answered: u64,
    pub failed: u64,
    /// Taken out (its breaker open) when the run ended.
    pub down: bool,
}

/// The evaluator's discrimination in a run (`[evaluate] self_check_rate`): true pairs against
/// their mismatched twins (see `xinstruct_operators::instruct::self_check`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JudgeCheck {
    pub pairs: u64,
    pub wins: u64,
    pub ties: u64,
    /// P(true pair rated above its twin) + ½ P(tie); 0.5 = no information.
    pub discrimination: f64,
    /// `[evaluate] min_discrimination`: below it the run warns.
    pub min_discrimination: f64,
}

impl JudgeCheck {
    pub fn weak(&self) -> bool {
        self.discrimination < self.min_discrimination
    }
}

impl RunSummary {
    /// The exit code: 0 clean; 4 when documents await the model (rerun when it is back);
    /// else 3 when any shard had a file-level error or could not be opened.
    pub fn exit_code(&self) -> i32 {
        if self.awaiting_model > 0 {
            4
        } else if self.open_errors.is_empty() && self.file_errors.is_empty() {
            0
        } else {
            3
        }
    }
}

pub fn render(s: &RunSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nxinstruct run: {} -> {}", s.input, s.output);
    let _ = writeln!(
        out,
        "shards: {} listed, {} unchanged, {} new, {} changed, {} processed{}{}{}{}",
        s.shards_listed,
        s.shards_unchanged,
        s.shards_new,
        s.shards_changed,
        s.shards_processed,
        if s.shards_redone > 0 {
            format!(" ({} redone for changed settings)", s.shards_redone)
        } else {
            String::new()
        },
        if s.shards_reread > 0 {
            format!(" ({} read again for dedup: takedowns, promotions, new settings)", s.shards_reread)
        } else {
            String::new()
        },
        if s.shards_retried > 0 {
            format!(" ({} read again for documents awaiting the model)", s.shards_retried)
        } else {
            String::new()
        },
        if s.shards_pruned > 0 { format!(", {} pruned", s.shards_pruned) } else { String::new() }
    );
    let _ = writeln!(
        out,
        "epochs: {}   documents read: {}   written: {}{}   rejected: {}   files: {}   workers: {}   wall: {:.2}s",
        if s.epochs.is_empty() {
            "none".to_string()
        } else {
            format!("{}..={}", s.epochs[0], s.epochs[s.epochs.len() - 1])
        },
        s.docs_read,
        s.docs_out,
        if s.docs_corpus > 0 { format!(" (+{} corpus)", s.docs_corpus) } else { String::new() },
        s.rejects,
        s.files_written,
        s.workers,
        s.wall_secs
    );
    if s.dedup_stored > 0 {
        let _ = writeln!(
            out,
            "dedup state: {} stored records, {} loaded (met by this run's records; the rest kept their stored clusters)",
            s.dedup_stored, s.dedup_loaded
        );
    }
    if s.model_busy_secs > 0.0 {
        let _ = writeln!(
            out,
            "model busy: {:.1}s of {:.1}s wall ({:.0}%: the time it had at least one request out)",
            s.model_busy_secs,
            s.wall_secs,
            100.0 * s.model_busy_fraction
        );
    }
    if s.servers.len() > 1 {
        let each: Vec<String> = s
            .servers
            .iter()
            .map(|e| {
                format!(
                    "{} {} answered, {} failed{}",
                    e.url,
                    e.answered,
                    e.failed,
                    if e.down { " (down at the end)" } else { "" }
                )
            })
            .collect();
        let _ = writeln!(out, "model servers: {}", each.join("; "));
    }
    if !s.operators.is_empty() {
        // Pipeline order: read first, write last, the chain between as it ran; an operator's
        // parts (`refine.1.evaluate`) after it. Parts that saw nothing are left out.
        let mut ops: Vec<(&String, &xinstruct_operators::OpStats)> = s
            .operators
            .iter()
            .filter(|(name, st)| !name.contains('.') || st.docs_in > 0 || !st.counters.is_empty())
            .collect();
        ops.sort_by_key(|(name, _)| {
            let base = name.split('.').next().unwrap_or(name);
            let rank = match base {
                "read" => (0, usize::MAX),
                "write" => (2, 0),
                other => (1, s.chain.iter().position(|c| c == other).unwrap_or(usize::MAX)),
            };
            (rank, name.to_string())
        });
        let w = ops.iter().map(|(n, _)| n.len()).max().unwrap_or(8).max(12);
        let _ = writeln!(
            out,
            "\n{:<w$} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "operator", "docs in", "docs out", "dropped", "secs", "docs/s"
        );
        for (name, st) in &ops {
            let secs = st.nanos as f64 / 1e9;
            let rate = if secs > 0.0 { st.docs_in as f64 / secs } else { 0.0 };
            let _ = writeln!(
                out,
                "{:<w$} {:>10} {:>10} {:>10} {:>10.2} {:>10.0}",
                name,
                st.docs_in,
                st.docs_out,
                st.dropped_total(),
                secs,
                rate
            );
        }
        // The model's work: calls, memo cache, tokens (cached: prompt tokens a prefix cache
        // held, so not prefilled).
        let model_ops: Vec<_> = ops
            .iter()
            .filter(|(_, st)| {
                ["model_calls", "memo_hits", "no_prompt"].iter().any(|c| st.counters.contains_key(*c))
            })
            .collect();
        if !model_ops.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<w$} {:>8} {:>8} {:>9} {:>9} {:>11} {:>11} {:>11} {:>7} {:>8}",
                "model stage",
                "busy s",
                "calls",
                "memo hit",
                "memo miss",
                "prompt tok",
                "cached tok",
                "output tok",
                "failed",
                "unknown"
            );
            let c = |st: &xinstruct_operators::OpStats, k: &str| st.counters.get(k).copied().unwrap_or(0);
            for (name, st) in model_ops {
                let _ = writeln!(
                    out,
                    "{:<w$} {:>8.1} {:>8} {:>9} {:>9} {:>11} {:>11} {:>11} {:>7} {:>8}",
                    name,
                    c(st, "model_ms") as f64 / 1000.0,
                    c(st, "model_calls"),
                    c(st, "memo_hits"),
                    c(st, "memo_misses"),
                    c(st, "prompt_tokens"),
                    c(st, "prompt_tokens_cached"),
                    c(st, "completion_tokens"),
                    c(st, "failed"),
                    c(st, "unknown"),
                );
            }
        }
    }
    if let Some(j) = s.judge.as_ref().filter(|j| j.pairs > 0) {
        let _ = writeln!(
            out,
            "\njudge self-check: true pair rated above its mismatched twin in {} of {} ({} ties): discrimination {:.2}",
            j.wins, j.pairs, j.ties, j.discrimination
        );
        if j.weak() {
            let _ = writeln!(
                out,
                "warning: discrimination {:.2} is below {:.2}: the evaluator's labels carry little information about fit; use a stronger evaluator ([instruct] evaluator)",
                j.discrimination, j.min_discrimination
            );
        }
    }
    if !s.diversity.is_empty() {
        let _ = write!(out, "\n{}", crate::diversify::render_figures(&s.diversity));
    }
    if !s.rejects_by_reason.is_empty() {
        let _ = writeln!(out, "\n{:<24} {:>10}", "reject reason", "records");
        for (reason, n) in &s.rejects_by_reason {
            let _ = writeln!(out, "{reason:<24} {n:>10}");
        }
    }
    if !s.awaiting_by_reason.is_empty() {
        let _ = writeln!(out, "\n{:<24} {:>10}", "model failure", "documents");
        for (reason, n) in &s.awaiting_by_reason {
            let _ = writeln!(out, "{reason:<24} {n:>10}");
        }
    }
    if s.awaiting_model > 0 {
        let _ = writeln!(
            out,
            "awaiting the model: {} documents of {} shards (not rejects: nothing is lost); run again when the \
             model is back and they are retried, the memo cache answers the rest{}",
            s.awaiting_model,
            s.awaiting_shards,
            s.awaiting_example.as_ref().map(|e| format!("\n  e.g. {e}")).unwrap_or_default()
        );
    }
    for e in &s.file_errors {
        let _ = writeln!(out, "file error: {e}");
    }
    for e in &s.open_errors {
        let _ = writeln!(out, "unreadable (retried next run): {e}");
    }
    if s.interrupted {
        let _ = writeln!(out, "interrupted: committed epochs are kept; rerun to continue");
    }
    out
}
