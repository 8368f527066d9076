//! The leader: plans each run or poll, feeds epochs to the dataflow and commits each one in
//! the manifest (shards, files, documents awaiting the model, the run's stats).

use super::dedup_driver::{dedup_status, dedup_want, DedupDriver, DedupEvents};
use super::models::model_ids;
use super::{Collected, Inputs, JudgeCheck, LeaderEvent, RunSummary, WorkerCtx, PARK};
use crate::config::OperatorName;
use crate::dedup::{shard_signatures, ClusterView};
use crate::diversify::{epoch_tag, DiversitySelection};
use crate::manifest::{self, Awaiting, EpochEntry, FileEntry, Manifest, Pending, ShardEntry};
use crate::plan::{self, DedupPlan};
use crate::settings::Settings;
use crate::sink::{FileWritten, SinkEvent};
use crate::store::{hash_file, Store};
use anyhow::Result;
use std::collections::VecDeque;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use timely::dataflow::ProbeHandle;
use xinstruct_operators::diversity::Point;
use xinstruct_operators::generate::awaits_model;
use xinstruct_operators::instruct::self_check::Discrimination;
use xinstruct_operators::source::ShardTask;
use xinstruct_operators::stats::merge_all;
use xinstruct_operators::Epoch;

pub(super) struct Leader {
    pub(super) manifest: Manifest,
    pub(super) summary: RunSummary,
    pub(super) dedup: Option<DedupDriver>,
    /// What this run's output is made with; committed shards name it.
    pub(super) settings: Settings,
    /// Plans made so far (the first is always shown, later `watch` polls only with work).
    pub(super) plans: u64,
    /// The diversity selection, as committed (with the diversity operator in the chain).
    pub(super) diversity: Option<DiversitySelection>,
}

/// Whether a local shard still has the bytes its entry was made from.
pub(super) fn local_bytes_equal(input: &Store, task: &ShardTask, hash: &str, size: u64) -> bool {
    let Some(root) = &input.local_root else { return false };
    let rel = task.uri.strip_prefix(&input.display_root).unwrap_or(&task.uri);
    let path = root.join(rel.trim_start_matches('/'));
    hash_file(&path).is_ok_and(|(h, n)| h == hash && n == size)
}

impl Leader {
    pub(super) fn new(ctx: &WorkerCtx) -> Result<Leader> {
        let (manifest, stray) = manifest::recover(&ctx.output, &ctx.rt)?;
        let summary = RunSummary {
            input: ctx.opts.input.clone(),
            output: ctx.opts.output.clone(),
            started_at_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
            stray_files_removed: stray as u64,
            chain: ctx.opts.config.pipeline.operators.iter().map(|o| o.as_str().to_string()).collect(),
            judge: Some(JudgeCheck {
                min_discrimination: ctx.opts.config.evaluate.min_discrimination,
                ..Default::default()
            }),
            ..Default::default()
        };
        let config = &ctx.opts.config;
        let dedup = if config.pipeline.operators.contains(&OperatorName::Dedup) {
            let want = dedup_want(config);
            let status = dedup_status(&manifest, &want);
            let (stale, recluster) = (status == DedupPlan::Rehash, status == DedupPlan::Recluster);
            let committed = if stale {
                ClusterView::default()
            } else {
                ClusterView::load(&ctx.output, &ctx.rt, &manifest)?
            };
            if stale && !manifest.shards.is_empty() {
                tracing::info!("dedup settings changed: every shard is hashed again");
            }
            Some(DedupDriver {
                want,
                stale,
                recluster,
                // The stored memberships stand until dedup loads their records.
                live: committed.clone(),
                committed,
                in_dataflow: HashSet::new(),
                loaded: false,
                gone: Vec::new(),
                full_compare: true,
            })
        } else {
            None
        };
        let settings = Settings::of(config, &model_ids(ctx.models.as_ref()));
        let diversity = match &ctx.embedder {
            Some(embedder) => {
                let memo = ctx.models.as_ref().and_then(|m| m.memo.clone());
                Some(DiversitySelection::load(
                    &ctx.output,
                    &ctx.rt,
                    &manifest,
                    embedder.clone(),
                    memo,
                    config,
                )?)
            }
            None => None,
        };
        let mut leader = Leader { manifest, summary, dedup, settings, plans: 0, diversity };
        leader.note_awaiting();
        Ok(leader)
    }

    /// Runs the polls of a run (one, or until Ctrl-C for `watch`): plans, feeds epochs and
    /// commits them in order. Up to `[run] epochs_in_flight` epochs run at once, so reading
    /// and filtering later epochs overlaps the model's work on earlier ones; each commits as
    /// the probe passes it. A shard is never in two uncommitted epochs: the records dedup
    /// withdraws before re-reading a shard are the committed ones.
    pub(super) fn drive(
        &mut self,
        ctx: &WorkerCtx,
        worker: &mut timely::worker::Worker,
        inputs: &mut Inputs,
        probe: &ProbeHandle<Epoch>,
        collected: &Collected,
    ) -> Result<()> {
        let stopping = || ctx.opts.stop.load(Ordering::SeqCst);
        let per_epoch = match ctx.opts.config.run.shards_per_epoch {
            0 => 4 * ctx.total_workers,
            n => n,
        };
        let max_in_flight = ctx.opts.config.run.epochs_in_flight.get();
        let mut first = true;
        loop {
            if !first {
                // Wait for the next poll, waking often enough to notice Ctrl-C.
                let until = Instant::now() + Duration::from_secs(ctx.opts.config.watch.interval_secs.get());
                while Instant::now() < until && !stopping() && !ctx.fault.is_raised() {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            first = false;
            ctx.check_fault()?;
            if stopping() {
                self.summary.interrupted = true;
                return Ok(());
            }
            let mut queue: VecDeque<ShardTask> = self.plan(ctx)?.into();
            let epoch = self.manifest.next_epoch;
            self.load_prior(ctx, |r| {
                inputs.prior.advance_to(epoch);
                inputs.prior.insert(r);
            })?;
            let mut next = self.manifest.next_epoch;
            let mut flight: VecDeque<(Epoch, Vec<ShardTask>)> = VecDeque::new();
            loop {
                while flight.len() < max_in_flight
                    && !stopping()
                    && (!queue.is_empty() || (flight.is_empty() && self.dedup_epoch_due()))
                {
                    let batch: Vec<ShardTask> = queue.drain(..per_epoch.min(queue.len())).collect();
                    self.feed(ctx, inputs, next, &batch)?;
                    flight.push_back((next, batch));
                    next += 1;
                }
                let Some((epoch, batch)) = flight.pop_front() else { break };
                while probe.less_than(&(epoch + 1)) {
                    ctx.check_fault()?;
                    worker.step_or_park(Some(PARK));
                }
                ctx.check_fault()?;
                let events = take_events(collected, epoch);
                // Shards still to be read, in a later epoch in flight or in the queue.
                let later: BTreeSet<&String> =
                    queue.iter().chain(flight.iter().flat_map(|(_, b)| b)).map(|t| &t.uri).collect();
                let rereads = self.commit(ctx, epoch, events, &batch, &later)?;
                queue.extend(rereads);
            }
            if stopping() {
                self.summary.interrupted = true;
            }
            if !ctx.opts.watch || self.summary.interrupted {
                return Ok(());
            }
        }
    }

    /// Feeds one epoch: dedup's withdrawals, then the shard tasks.
    fn feed(
        &mut self,
        ctx: &WorkerCtx,
        inputs: &mut Inputs,
        epoch: Epoch,
        batch: &[ShardTask],
    ) -> Result<()> {
        inputs.shards.advance_to(epoch);
        inputs.prior.advance_to(epoch);
        for record in self.retractions(ctx, batch)? {
            inputs.prior.update(record, -1);
        }
        for task in batch {
            inputs.shards.insert(task.clone());
        }
        inputs.shards.advance_to(epoch + 1);
        inputs.prior.advance_to(epoch + 1);
        inputs.shards.flush();
        inputs.prior.flush();
        Ok(())
    }

    /// Lists the input and returns the shards to read (see [`crate::plan`]); removes the
    /// output of shards gone from the input with `--prune`.
    pub(super) fn plan(&mut self, ctx: &WorkerCtx) -> Result<Vec<ShardTask>> {
        let listing = ctx.input.list_shards(&ctx.rt)?;
        let dedup = self.dedup_plan();
        let (plan, restamped) =
            plan::plan(&mut self.manifest, &listing, &self.settings, dedup, |task, hash, size| {
                local_bytes_equal(&ctx.input, task, hash, size)
            });
        let s = &mut self.summary;
        s.shards_listed += plan.listed;
        s.shards_new += plan.new;
        s.shards_changed += plan.changed;
        s.shards_unchanged += plan.listed - plan.new - plan.changed;
        s.shards_redone += plan.redo;
        s.shards_reread += plan.reread;
        s.shards_retried += plan.retried;
        for (why, n) in &plan.redo_reasons {
            *s.redo_reasons.entry(why.clone()).or_default() += n;
        }
        if self.plans == 0 || !plan.is_empty() {
            ctx.opts.progress.note(plan.render(ctx.opts.config.run.prune).trim_end());
        }
        self.plans += 1;
        let mut pending = Pending::default();
        if ctx.opts.config.run.prune {
            for uri in &plan.gone {
                if let Some(d) = self.dedup.as_mut().filter(|d| d.in_dataflow.contains(uri)) {
                    if let Some(entry) = self.manifest.shards.get(uri) {
                        d.gone.extend(shard_signatures(&ctx.output, &ctx.rt, &entry.files)?);
                    }
                    d.in_dataflow.remove(uri);
                }
                self.manifest.reread.remove(uri);
                self.manifest.awaiting.remove(uri);
                if let Some(entry) = self.manifest.shards.remove(uri) {
                    pending.deletes.extend(entry.files.into_iter().map(|f| f.path));
                    self.summary.shards_pruned += 1;
                }
            }
        }
        if !pending.deletes.is_empty() {
            // Their pairs leave the selection in the same commit.
            let tag = format!("{}-pruned", epoch_tag(self.manifest.next_epoch));
            self.settle_diversity(ctx, &tag, Vec::new(), &BTreeSet::new(), &mut pending)?;
        }
        if restamped || !pending.deletes.is_empty() {
            self.manifest.commit(&ctx.output, &ctx.rt, pending)?;
        }
        let todo = plan.tasks;
        ctx.opts.progress.planned_shards.fetch_add(todo.len() as u64, Ordering::Relaxed);
        let bytes: u64 = todo.iter().map(|t| t.size).sum();
        ctx.opts.progress.planned_bytes.fetch_add(bytes, Ordering::Relaxed);
        tracing::info!(
            listed = listing.len(),
            to_process = todo.len(),
            "planned {} of {} shards",
            todo.len(),
            listing.len()
        );
        Ok(todo)
    }

    pub(super) fn absorb_stats(&mut self, events: &[LeaderEvent]) {
        for e in events {
            if let LeaderEvent::Sink(SinkEvent::Stats(delta)) = e {
                merge_all(&mut self.summary.operators, delta);
            }
        }
        self.summary.rejects_by_reason.clear();
        self.summary.awaiting_by_reason.clear();
        for stats in self.summary.operators.values() {
            for (reason, n) in &stats.dropped {
                let to = match awaits_model(reason) {
                    true => &mut self.summary.awaiting_by_reason,
                    false => &mut self.summary.rejects_by_reason,
                };
                *to.entry(reason.clone()).or_default() += n;
            }
        }
        self.summary.rejects = self.summary.rejects_by_reason.values().sum();
        self.summary.docs_out = self.summary.operators.get("write").map_or(0, |w| w.docs_out);
        self.summary.docs_corpus = self
            .summary
            .operators
            .get("reverse_instruction")
            .and_then(|r| r.counters.get("corpus").copied())
            .unwrap_or(0);
        let min = self.summary.judge.as_ref().map_or(0.0, |j| j.min_discrimination);
        let checked = self.summary.operators.get("evaluate.self_check");
        self.summary.judge = Some(match checked.and_then(|s| Discrimination::from_counters(&s.counters)) {
            Some(d) => JudgeCheck {
                pairs: d.pairs,
                wins: d.wins,
                ties: d.ties,
                discrimination: d.auc(),
                min_discrimination: min,
            },
            None => JudgeCheck { min_discrimination: min, ..Default::default() },
        });
    }

    /// The dataset's documents awaiting the model, as the manifest has them now.
    pub(super) fn note_awaiting(&mut self) {
        let waiting = &self.manifest.awaiting;
        self.summary.awaiting_model = waiting.values().map(|a| a.docs).sum();
        self.summary.awaiting_shards = waiting.len() as u64;
        self.summary.awaiting_example = waiting.values().next().map(|a| a.example.clone());
    }

    /// Records an epoch's shards and files in the manifest and makes the files visible.
    /// Returns the committed shards dedup wants read again (a document changed side).
    pub(super) fn commit(
        &mut self,
        ctx: &WorkerCtx,
        epoch: Epoch,
        events: Vec<LeaderEvent>,
        batch: &[ShardTask],
        later: &BTreeSet<&String>,
    ) -> Result<Vec<ShardTask>> {
        self.absorb_stats(&events);
        let mut files: BTreeMap<String, Vec<FileWritten>> = BTreeMap::new();
        let mut reports = Vec::new();
        let mut dedup_events = DedupEvents::default();
        let mut points = Vec::new();
        let mut awaiting: BTreeMap<String, (isize, BTreeMap<String, isize>, String)> = BTreeMap::new();
        for e in events {
            match e {
                LeaderEvent::Report(r) => reports.push(r),
                LeaderEvent::Awaiting(r, d) => {
                    let shard = awaiting.entry(r.origin.shard.clone()).or_default();
                    shard.0 += d;
                    *shard.1.entry(r.reason).or_default() += d;
                    if shard.2.is_empty() {
                        shard.2 = format!("{}: {}", r.doc_id.unwrap_or_default(), r.detail);
                    }
                }
                LeaderEvent::Sink(SinkEvent::File(f)) => files.entry(f.shard.clone()).or_default().push(f),
                LeaderEvent::Sink(SinkEvent::Stats(_)) => {}
                LeaderEvent::Cluster(k, m, d) => dedup_events.changes.push((k, m, d)),
                LeaderEvent::DedupLoaded(k) => dedup_events.loaded.push(k),
                LeaderEvent::Point(p) => points.push(p),
            }
        }
        reports.sort();
        let mut pending = Pending::default();
        let mut committed = BTreeSet::new();
        let mut entry = EpochEntry {
            epoch,
            committed_at: manifest::now_rfc3339(),
            shards_added: 0,
            shards_replaced: 0,
            docs_read: 0,
            read_rejects: 0,
        };
        for report in reports {
            let uri = report.task.uri.clone();
            if let Some(err) = &report.open_error {
                self.summary.open_errors.push(format!("{uri}: {err}"));
                continue;
            }
            if let Some(err) = &report.file_error {
                self.summary.file_errors.push(format!("{uri}: {err}"));
            }
            committed.insert(uri.clone());
            let mut shard_files = files.remove(&uri).unwrap_or_default();
            shard_files.sort();
            pending.renames.extend(shard_files.iter().map(|f| (f.tmp.clone(), f.path.clone())));
            self.summary.files_written += shard_files.len() as u64;
            self.summary.shards_processed += 1;
            self.summary.docs_read += report.docs;
            entry.shards_added += 1;
            entry.docs_read += report.docs;
            entry.read_rejects += report.rejects;
            let shard = ShardEntry {
                uri: uri.clone(),
                format: report.task.format,
                compression: report.task.compression,
                size: report.task.size,
                version: report.task.version.clone(),
                content_hash: report.content_hash.clone(),
                epoch,
                docs: report.docs,
                rejects: report.rejects,
                file_error: report.file_error.clone(),
                files: shard_files
                    .iter()
                    .map(|f| FileEntry { path: f.path.clone(), rows: f.rows, bytes: f.bytes })
                    .collect(),
                born: report.task.born,
                settings: Some(self.settings.id()),
            };
            match awaiting.remove(&uri).filter(|(n, _, _)| *n > 0) {
                Some((n, reasons, example)) => {
                    let reasons =
                        reasons.into_iter().filter(|(_, n)| *n > 0).map(|(r, n)| (r, n as u64)).collect();
                    let waiting = Awaiting { docs: n as u64, reasons, epoch, example };
                    self.manifest.awaiting.insert(uri.clone(), waiting);
                }
                None => {
                    self.manifest.awaiting.remove(&uri);
                }
            }
            if let Some(old) = self.manifest.shards.insert(uri, shard) {
                entry.shards_replaced += 1;
                pending.deletes.extend(old.files.into_iter().map(|f| f.path));
            }
        }
        for (shard, orphans) in files {
            // Parts without a shard report cannot happen in a correct dataflow; do not commit them.
            tracing::error!(%shard, parts = orphans.len(), "parts without a shard report; discarded");
            pending.deletes.extend(orphans.into_iter().map(|f| f.tmp));
        }
        self.manifest.settings.entry(self.settings.id()).or_insert_with(|| self.settings.clone());
        let rereads = self.settle_dedup(ctx, epoch, dedup_events, batch, later, &mut pending)?;
        self.settle_diversity(ctx, &epoch_tag(epoch), points, &committed, &mut pending)?;
        self.manifest.epochs.push(entry);
        self.manifest.next_epoch = epoch + 1;
        self.manifest.commit(&ctx.output, &ctx.rt, pending)?;
        self.summary.epochs.push(epoch);
        self.note_awaiting();
        tracing::info!(epoch, rereads = rereads.len(), "epoch committed");
        Ok(rereads)
    }

    /// Updates the diversity selection with an epoch's pairs: the members of the shards it
    /// committed (`replaced`) or that left the manifest go, its points come in; the changed
    /// languages' snapshots join `pending`, so the selection changes in the same commit.
    fn settle_diversity(
        &mut self,
        ctx: &WorkerCtx,
        tag: &str,
        points: Vec<Point>,
        replaced: &BTreeSet<String>,
        pending: &mut Pending,
    ) -> Result<()> {
        let Some(d) = self.diversity.as_mut() else { return Ok(()) };
        // Pairs of a shard that was not committed (it could not be opened) are not in the dataset.
        let points: Vec<Point> = points.into_iter().filter(|p| replaced.contains(&p.shard)).collect();
        let shards = &self.manifest.shards;
        d.update(points, |m| replaced.contains(&m.shard) || !shards.contains_key(&m.shard), false)?;
        d.stage(&ctx.output, &ctx.rt, &mut self.manifest, tag, pending)?;
        self.summary.diversity = d.figures.clone();
        Ok(())
    }
}

/// The events of `epoch` and earlier (stats deltas can come at an earlier time), leaving
/// those of later epochs in flight.
fn take_events(collected: &Collected, epoch: Epoch) -> Vec<LeaderEvent> {
    let mut all = collected.borrow_mut();
    let (now, later): (Vec<_>, Vec<_>) = all.drain(..).partition(|(t, _)| *t <= epoch);
    *all = later;
    now.into_iter().map(|(_, e)| e).collect()
}
