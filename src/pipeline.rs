//! The driver: plans which shards to process, runs them through the dataflow one epoch at a
//! time on timely workers (threads and, optionally, processes), and commits each epoch.
//!
//! Worker 0 of process 0 is the leader: it lists the input, owns the differential input of
//! shard tasks and the manifest. The other workers close their inputs at once and serve the
//! operators; shards reach them through the read operator's exchange.

use crate::config::{Config, OperatorName};
use crate::dedup::{shard_signatures, ClusterView};
use crate::manifest::{self, Awaiting, DedupState, EpochEntry, FileEntry, Manifest, Pending, ShardEntry};
use crate::plan::{self, DedupPlan};
use crate::settings::{ModelIds, Settings};
use crate::sink::{FileWritten, SideRow, SinkEvent, SinkTarget, WriteDataset};
use crate::store::{hash_file, Store, StoreOpener};
use anyhow::{anyhow, bail, Context, Result};
use differential_dataflow::input::Input;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Exchange, Inspect, Probe};
use timely::dataflow::ProbeHandle;
use tokio::runtime::Runtime;
use xinstruct_operators::dedup::{Dedup, DocKey, Membership, SigRecord};
use xinstruct_operators::fault::{panic_message, Fault};
use xinstruct_operators::generate::{awaits_model, Generator, MemoCache};
use xinstruct_operators::instruct::{
    self_check::Discrimination, split_sampled, CrossCheck, Evaluate, Refine, RefineStages, ReverseInstruction, StageModels,
};
use xinstruct_operators::lang_id::{Backend, LangId, LangIdentifier};
use xinstruct_operators::normalize::Normalize;
use xinstruct_operators::quality::Quality;
use xinstruct_operators::source::{Progress, ReadShards, ShardReport, ShardTask};
use xinstruct_operators::stats::{merge_all, OpStats, StatsRegistry};
use xinstruct_operators::{Doc, Epoch, Reject};

/// How the processes of a run find each other (timely's cluster settings).
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub process: usize,
    pub processes: usize,
    /// Lines of `host:port`, one per process in order; default `localhost:2101+i`.
    pub hostfile: Option<PathBuf>,
}

#[derive(Clone)]
pub struct RunOptions {
    pub input: String,
    pub output: String,
    pub config: Config,
    pub cluster: Cluster,
    /// Keep polling the input for new shards until `stop` is set.
    pub watch: bool,
    /// Set by Ctrl-C: finish the current epoch, commit, stop.
    pub stop: Arc<AtomicBool>,
    /// Write into an output that holds files xinstruct did not write (never deleted).
    pub force: bool,
    pub progress: Arc<Progress>,
}

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
    pub operators: BTreeMap<String, OpStats>,
    /// The operator chain between read and write, in order.
    pub chain: Vec<String>,
    pub interrupted: bool,
    /// The judge's self-check: how well its verdicts tell true pairs from mismatched ones.
    #[serde(default)]
    pub judge: Option<JudgeCheck>,
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

/// Messages to the leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum LeaderEvent {
    Report(ShardReport),
    Sink(SinkEvent),
    /// A change to the membership of a document in a cluster of two or more.
    Cluster(DocKey, Membership, isize),
    /// A document whose model call failed for the model's reasons: not a reject, work pending.
    Awaiting(Reject, isize),
}

pub fn run(opts: RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    let workers = opts.config.run.workers.get();
    let communication = if opts.cluster.processes > 1 {
        let addresses = match &opts.cluster.hostfile {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading hostfile {}", path.display()))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect::<Vec<_>>(),
            None => (0..opts.cluster.processes).map(|i| format!("localhost:{}", 2101 + i)).collect(),
        };
        if addresses.len() != opts.cluster.processes {
            bail!("hostfile lists {} addresses for {} processes", addresses.len(), opts.cluster.processes);
        }
        if opts.cluster.process >= opts.cluster.processes {
            bail!(
                "--process {} is out of range for --processes {}",
                opts.cluster.process,
                opts.cluster.processes
            );
        }
        timely::CommunicationConfig::Cluster {
            threads: workers,
            process: opts.cluster.process,
            addresses,
            report: false,
            zerocopy: false,
        }
    } else if workers > 1 {
        timely::CommunicationConfig::Process(workers)
    } else {
        timely::CommunicationConfig::Thread
    };
    let config = timely::Config { communication, worker: timely::WorkerConfig::default() };
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the I/O runtime")?,
    );
    let input = Store::open(&opts.input, false).with_context(|| format!("input {}", opts.input))?;
    let output = Store::open(&opts.output, true).with_context(|| format!("output {}", opts.output))?;
    // One writer at a time; the leader process writes the manifest, so it holds the lock.
    let _lock = match opts.cluster.process {
        0 => {
            let lock = crate::lock::acquire(&output, &rt, if opts.watch { "watch" } else { "run" })?;
            manifest::claim(&output, &rt, opts.force)?;
            Some(lock)
        }
        _ => None,
    };
    let spool_dir = opts.config.run.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    let total_workers = workers * opts.cluster.processes.max(1);
    let lang_id = load_lang_id(&opts.config)?;
    // Read before the workers start: every worker's dedup operator needs the takedown list.
    let takedown: Arc<HashSet<String>> =
        Arc::new(Manifest::load(&output, &rt)?.takedown.into_iter().collect());
    if !takedown.is_empty() && !opts.config.pipeline.operators.contains(&OperatorName::Dedup) {
        bail!(
            "the output has a takedown list ({} ids) and the dedup operator applies it: do not skip dedup",
            takedown.len()
        );
    }
    let models = load_models(&opts, &output)?;
    let opts = Arc::new(opts);
    let fault = Arc::new(Fault::default());
    // Set when worker 0 of this process is done with the run (committed or given up): after a
    // fault the driver waits for it, so no commit is cut short, and for nothing else.
    let leader_done = Arc::new(AtomicBool::new(false));
    let guards = timely::execute(config, {
        let (opts, fault, leader_done) = (opts.clone(), fault.clone(), leader_done.clone());
        move |worker| {
            let index = worker.index();
            let ctx = WorkerCtx {
                opts: opts.clone(),
                rt: rt.clone(),
                input: input.clone(),
                output: output.clone(),
                spool_dir: spool_dir.clone(),
                total_workers,
                lang_id: lang_id.clone(),
                models: models.clone(),
                takedown: takedown.clone(),
                fault: fault.clone(),
            };
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.run_worker(worker)));
            let result = match ran {
                Ok(Ok(summary)) => Ok(summary),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(panic) => Err(format!("worker {index} failed: {}", panic_message(panic.as_ref()))),
            };
            if let Err(e) = &result {
                fault.raise(e.clone());
            }
            if index == 0 {
                leader_done.store(true, Ordering::SeqCst);
            }
            result
        }
    })
    .map_err(|e| anyhow!("starting timely workers: {e}"))?;
    // Wait for the workers, or for a fault: then the other workers may never finish (timely
    // does not notice a dead worker), so they are left behind and the run ends with the
    // fault's message.
    loop {
        if guards.guards().iter().all(|g| g.is_finished()) {
            break;
        }
        if let Some(message) = fault.get() {
            let since = Instant::now();
            while !leader_done.load(Ordering::SeqCst) && since.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::mem::forget(guards);
            bail!(message);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut summary = None;
    for result in guards.join() {
        match result {
            Ok(Ok(Some(s))) => summary = Some(s),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => bail!(e),
            Err(panic) => bail!("a worker failed: {panic}"),
        }
    }
    let mut summary = summary.unwrap_or_default();
    summary.wall_secs = started.elapsed().as_secs_f64();
    summary.workers = total_workers;
    Ok(summary)
}

/// How long the leader's worker may sleep when no operator has work: operators with work
/// in the background (the model's batches, the readers) wake it through their activators, so
/// an idle worker does not spin a core away from the model.
const PARK: Duration = Duration::from_millis(5);

struct WorkerCtx {
    opts: Arc<RunOptions>,
    rt: Arc<Runtime>,
    input: Store,
    output: Store,
    spool_dir: PathBuf,
    total_workers: usize,
    /// Shared, read-only, by the workers of this process.
    lang_id: Option<Arc<LangIdentifier>>,
    /// The generator, evaluator and memo cache, shared by the workers of this process.
    models: Option<StageModels>,
    /// Document ids dedup rejects as `taken_down`.
    takedown: Arc<HashSet<String>>,
    /// Raised by a worker or operator that cannot go on; the leader stops at once.
    fault: Arc<Fault>,
}

/// Loads the language-ID model once per process, fetching lid.176 into the model cache when
/// the config names no model file.
fn load_lang_id(config: &Config) -> Result<Option<Arc<LangIdentifier>>> {
    let ops = &config.pipeline.operators;
    if !ops.contains(&OperatorName::LangId) && !ops.contains(&OperatorName::CrossCheck) {
        return Ok(None);
    }
    let mut cfg = config.lang_id.clone();
    if cfg.backend == Backend::Fasttext && cfg.model.is_none() {
        cfg.model = Some(crate::models::lid_model()?);
    }
    let identifier = LangIdentifier::new(&cfg).map_err(|e| anyhow!(e))?;
    Ok(Some(Arc::new(identifier)))
}

/// Opens the generator and the evaluator (the generator unless the config names another).
fn open_models(config: &Config) -> Result<(Arc<dyn Generator>, Arc<dyn Generator>)> {
    let cfg = &config.instruct;
    let generator = crate::generation::open(&cfg.generator, &config.engine, &config.openai)
        .with_context(|| format!("[instruct] generator = {:?}", cfg.generator))?;
    let evaluator = if cfg.evaluator.is_empty() || cfg.evaluator == cfg.generator {
        generator.clone()
    } else {
        crate::generation::open(&cfg.evaluator, &config.engine, &config.openai)
            .with_context(|| format!("[instruct] evaluator = {:?}", cfg.evaluator))?
    };
    Ok((generator, evaluator))
}

/// `xinst run --plan`: what a run would read and why, without doing it (nothing is written).
pub fn plan_only(opts: &RunOptions) -> Result<plan::Plan> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let input = Store::open(&opts.input, false).with_context(|| format!("input {}", opts.input))?;
    let output = Store::open(&opts.output, false).with_context(|| format!("output {}", opts.output))?;
    let mut manifest = Manifest::load(&output, &rt)?;
    let config = &opts.config;
    let ids = match config.pipeline.operators.iter().any(OperatorName::uses_model) {
        true => {
            let (g, e) = open_models(config)?;
            ModelIds { generator: g.fingerprint(), evaluator: e.fingerprint() }
        }
        false => ModelIds::default(),
    };
    let settings = Settings::of(config, &ids);
    let dedup = match config.pipeline.operators.contains(&OperatorName::Dedup) {
        true => dedup_status(&manifest, &dedup_want(config)),
        false => DedupPlan::Current,
    };
    let listing = input.list_shards(&rt)?;
    let (plan, _) = plan::plan(&mut manifest, &listing, &settings, dedup, |task, hash, size| {
        local_bytes_equal(&input, task, hash, size)
    });
    Ok(plan)
}

/// The dedup state the config asks for.
fn dedup_want(config: &Config) -> DedupState {
    DedupState {
        signatures: config.dedup.signature_fingerprint(),
        clustering: format!("{:?}", config.dedup.params()),
    }
}

/// How the stored dedup state compares with `want`.
fn dedup_status(manifest: &Manifest, want: &DedupState) -> DedupPlan {
    match &manifest.dedup {
        Some(state) if state.signatures != want.signatures => DedupPlan::Rehash,
        Some(state) if state.clustering != want.clustering => DedupPlan::Recluster,
        Some(_) => DedupPlan::Current,
        None if manifest.shards.is_empty() => DedupPlan::Current,
        None => DedupPlan::Rehash,
    }
}

/// Loads the X-Instruction stages' generator and evaluator (once per process; the evaluator is
/// the generator unless the config names another) and opens the memo cache.
fn load_models(opts: &RunOptions, output: &Store) -> Result<Option<StageModels>> {
    let config = &opts.config;
    if !config.pipeline.operators.iter().any(OperatorName::uses_model) {
        return Ok(None);
    }
    let cfg = &config.instruct;
    let (generator, evaluator) = open_models(config)?;
    opts.progress.generators.watch(generator.clone());
    if !Arc::ptr_eq(&generator, &evaluator) {
        opts.progress.generators.watch(evaluator.clone());
    }
    let memo = if cfg.memo {
        let file = format!("memo-p{}.redb", opts.cluster.process);
        let path = match (&cfg.memo_path, &output.local_root) {
            (Some(p), _) => p.clone(),
            (None, Some(root)) => root.join("_xinstruct").join(file),
            (None, None) => {
                let key = xxhash_rust::xxh3::xxh3_64(opts.output.as_bytes());
                crate::models::cache_dir().join("memo").join(format!("{key:016x}-{file}"))
            }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let memo = MemoCache::open(&path).map_err(|e| anyhow!("memo cache {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), entries = memo.len(), "memo cache");
        Some(Arc::new(memo))
    } else {
        None
    };
    Ok(Some(StageModels {
        generator,
        evaluator,
        memo,
        batching: config.generate.clone(),
        progress: Some(opts.progress.clone()),
    }))
}

/// The models' fingerprints for the run's settings (empty without model stages).
pub(crate) fn model_ids(models: Option<&StageModels>) -> ModelIds {
    match models {
        Some(m) => ModelIds { generator: m.generator.fingerprint(), evaluator: m.evaluator.fingerprint() },
        None => ModelIds::default(),
    }
}

/// What dedup hands the sink and the leader besides documents and rejects.
struct DedupSide<'s> {
    records: VecCollection<'s, Epoch, SigRecord>,
    clusters: VecCollection<'s, Epoch, (DocKey, Membership)>,
}

/// The chain's outputs.
struct Chain<'s> {
    docs: VecCollection<'s, Epoch, Doc>,
    rejects: VecCollection<'s, Epoch, Reject>,
    dedup: Option<DedupSide<'s>>,
    /// Documents that passed every filter but were not sampled for an instruction.
    corpus: Option<VecCollection<'s, Epoch, Doc>>,
}

/// The operator chain between the read and write ends, as the config orders it. Each operator
/// takes the documents and adds its rejects; the driver and sinks stay as they are.
#[allow(clippy::too_many_arguments)]
fn assemble<'s>(
    mut docs: VecCollection<'s, Epoch, Doc>,
    mut rejects: VecCollection<'s, Epoch, Reject>,
    prior: VecCollection<'s, Epoch, SigRecord>,
    takedown: &Arc<HashSet<String>>,
    config: &Config,
    lang_id: Option<&Arc<LangIdentifier>>,
    models: Option<&StageModels>,
    stats: &StatsRegistry,
) -> Result<Chain<'s>> {
    let no_models = || anyhow!("the X-Instruction stages need a generator ([instruct])");
    let ops = &config.pipeline.operators;
    let mut side = None;
    let mut corpus = None;
    let mut prior = Some(prior);
    for op in ops {
        let (kept, rejected) = match (op, lang_id) {
            (OperatorName::Normalize, _) => docs.normalize(&config.normalize, stats),
            (OperatorName::LangId, Some(identifier)) => docs.lang_id(identifier, stats),
            (OperatorName::LangId, None) | (OperatorName::CrossCheck, None) => continue,
            (OperatorName::Quality, _) => docs.quality(&config.quality, stats),
            (OperatorName::Dedup, _) => {
                let prior = prior.take().ok_or_else(|| anyhow!("dedup is listed twice in [pipeline]"))?;
                let out = docs.dedup(prior, &config.dedup, takedown.clone(), stats);
                side = Some(DedupSide { records: out.records, clusters: out.clusters });
                (out.kept, out.rejected)
            }
            (OperatorName::ReverseInstruction, _) => {
                let (picked, rest) = split_sampled(docs, config.reverse_instruction.sample_rate, stats);
                corpus = Some(rest);
                picked
                    .reverse_instruction(&config.reverse_instruction, models.ok_or_else(no_models)?, stats)
                    .map_err(|e| anyhow!(e))?
            }
            (OperatorName::CrossCheck, Some(identifier)) => {
                docs.cross_check(identifier, &config.cross_check, stats)
            }
            (OperatorName::Evaluate, _) => docs
                .evaluate(&config.evaluate, models.ok_or_else(no_models)?, stats)
                .map_err(|e| anyhow!(e))?,
            (OperatorName::Refine, _) => {
                let stages = RefineStages {
                    reverse: config.reverse_instruction.clone(),
                    evaluate: config.evaluate.clone(),
                    cross_check: lang_id
                        .filter(|_| ops.contains(&OperatorName::CrossCheck))
                        .map(|id| (id.clone(), config.cross_check.clone())),
                };
                docs.refine(&config.refine, &stages, models.ok_or_else(no_models)?, stats)
                    .map_err(|e| anyhow!(e))?
            }
        };
        docs = kept;
        rejects = rejects.concat(rejected);
    }
    Ok(Chain { docs, rejects, dedup: side, corpus })
}

impl WorkerCtx {
    fn run_worker(&self, worker: &mut timely::worker::Worker) -> Result<Option<RunSummary>> {
        let leader = worker.index() == 0;
        let stats = StatsRegistry::default();
        let collected: Rc<RefCell<Vec<LeaderEvent>>> = Rc::default();
        let probe = ProbeHandle::new();
        let opener = Rc::new(StoreOpener {
            store: self.input.clone(),
            rt: self.rt.clone(),
            spool_dir: self.spool_dir.clone(),
        });
        let target = SinkTarget {
            out: self.output.clone(),
            rt: self.rt.clone(),
            spool_dir: self.spool_dir.clone(),
            fault: self.fault.clone(),
        };
        let config = &self.opts.config;
        let (mut shards_in, mut prior_in) = worker.dataflow::<Epoch, _, _>(|scope| -> Result<_> {
            let (shards_in, shards) = scope.new_collection::<ShardTask, isize>();
            let (prior_in, prior) = scope.new_collection::<SigRecord, isize>();
            let read = shards.read_shards(&config.source, opener, &stats, Some(self.opts.progress.clone()));
            let Chain { docs, rejects, dedup, corpus } = assemble(
                read.docs,
                read.rejects,
                prior,
                &self.takedown,
                config,
                self.lang_id.as_ref(),
                self.models.as_ref(),
                &stats,
            )?;
            // A model that did not answer is not a verdict on the document: those go to the
            // leader as pending work, the rest to the rejects table.
            let awaiting = rejects.clone().filter(|r| awaits_model(&r.reason));
            let rejects = rejects.filter(|r| !awaits_model(&r.reason));
            let mut side = rejects.map(SideRow::Reject);
            let mut events = read.reports.inner.map(|(r, _, _)| LeaderEvent::Report(r));
            events = events.concat(awaiting.inner.map(|(r, _, d)| LeaderEvent::Awaiting(r, d)));
            if let Some(corpus) = corpus {
                side = side.concat(corpus.map(SideRow::Corpus));
            }
            if let Some(dedup) = dedup {
                side = side.concat(dedup.records.map(SideRow::Signature));
                events =
                    events.concat(dedup.clusters.inner.map(|((k, m), _, d)| LeaderEvent::Cluster(k, m, d)));
            }
            let sink = docs.write_dataset(side, &config.sink, target, &stats);
            let sink = sink.map(LeaderEvent::Sink);
            let sink_collected = collected.clone();
            events
                .concat(sink)
                .exchange(|_| 0)
                .inspect(move |e| sink_collected.borrow_mut().push(e.clone()))
                .probe_with(&probe);
            Ok((shards_in, prior_in))
        })?;
        if !leader {
            drop(shards_in);
            drop(prior_in);
            return Ok(None);
        }
        let mut leader = Leader::new(self)?;
        let mut first = true;
        loop {
            if !first {
                // Wait for the next poll, waking often enough to notice Ctrl-C.
                let until = Instant::now() + Duration::from_secs(self.opts.config.watch.interval_secs.get());
                while Instant::now() < until
                    && !self.opts.stop.load(Ordering::SeqCst)
                    && !self.fault.is_raised()
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            first = false;
            self.check_fault()?;
            if self.opts.stop.load(Ordering::SeqCst) {
                leader.summary.interrupted = true;
                break;
            }
            let mut queue: std::collections::VecDeque<ShardTask> = leader.plan(self)?.into();
            let per_epoch = match self.opts.config.run.shards_per_epoch {
                0 => 4 * self.total_workers,
                n => n,
            };
            let epoch = leader.manifest.next_epoch;
            leader.load_prior(self, &queue, |r| {
                prior_in.advance_to(epoch);
                prior_in.insert(r);
            })?;
            while !queue.is_empty() || leader.dedup_epoch_due() {
                if self.opts.stop.load(Ordering::SeqCst) {
                    leader.summary.interrupted = true;
                    break;
                }
                let batch: Vec<ShardTask> = queue.drain(..per_epoch.min(queue.len())).collect();
                let epoch = leader.manifest.next_epoch;
                shards_in.advance_to(epoch);
                prior_in.advance_to(epoch);
                for record in leader.retractions(self, &batch)? {
                    prior_in.update(record, -1);
                }
                for task in &batch {
                    shards_in.insert(task.clone());
                }
                shards_in.advance_to(epoch + 1);
                prior_in.advance_to(epoch + 1);
                shards_in.flush();
                prior_in.flush();
                while probe.less_than(&(epoch + 1)) {
                    self.check_fault()?;
                    worker.step_or_park(Some(PARK));
                }
                self.check_fault()?;
                let events: Vec<LeaderEvent> = collected.borrow_mut().drain(..).collect();
                let still_planned: BTreeSet<&String> = queue.iter().map(|t| &t.uri).collect();
                let rereads = leader.commit(self, epoch, events, &batch, &still_planned)?;
                queue.extend(rereads);
            }
            if !self.opts.watch || leader.summary.interrupted {
                break;
            }
        }
        drop(shards_in);
        drop(prior_in);
        while !probe.done() {
            self.check_fault()?;
            worker.step_or_park(Some(PARK));
        }
        let events: Vec<LeaderEvent> = collected.borrow_mut().drain(..).collect();
        leader.absorb_stats(&events);
        Ok(Some(leader.summary))
    }

    /// Stops the leader when any worker of the process raised a fault: nothing more is fed
    /// or committed.
    fn check_fault(&self) -> Result<()> {
        match self.fault.get() {
            Some(message) => bail!(message),
            None => Ok(()),
        }
    }
}

struct Leader {
    manifest: Manifest,
    summary: RunSummary,
    dedup: Option<DedupDriver>,
    /// What this run's output is made with; committed shards name it.
    settings: Settings,
    /// Plans made so far (the first is always shown, later `watch` polls only with work).
    plans: u64,
}

/// Whether a local shard still has the bytes its entry was made from.
fn local_bytes_equal(input: &Store, task: &ShardTask, hash: &str, size: u64) -> bool {
    let Some(root) = &input.local_root else { return false };
    let rel = task.uri.strip_prefix(&input.display_root).unwrap_or(&task.uri);
    let path = root.join(rel.trim_start_matches('/'));
    hash_file(&path).is_ok_and(|(h, n)| h == hash && n == size)
}

/// The leader's dedup bookkeeping for one run (src/dedup.rs explains the state).
struct DedupDriver {
    want: DedupState,
    /// The stored signatures were made with other settings (or without dedup): every shard
    /// is read again and none is loaded.
    stale: bool,
    /// The clustering parameters changed: one epoch re-clusters even with nothing to read.
    recluster: bool,
    /// What the dataset reflects (the committed snapshot) and what the dataflow says now.
    committed: ClusterView,
    live: ClusterView,
    /// Shards whose records are in the dataflow (loaded, or read in this run).
    in_dataflow: HashSet<String>,
    loaded: bool,
    /// Records of shards gone from the input, retracted at the next epoch.
    gone: Vec<SigRecord>,
    /// Compare every document at the next commit, not only the touched ones: a document
    /// whose cluster vanished while the run loaded its state sends no change.
    full_compare: bool,
}

impl Leader {
    fn new(ctx: &WorkerCtx) -> Result<Leader> {
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
                committed,
                live: ClusterView::default(),
                in_dataflow: HashSet::new(),
                loaded: false,
                gone: Vec::new(),
                full_compare: true,
            })
        } else {
            None
        };
        let settings = Settings::of(config, &model_ids(ctx.models.as_ref()));
        let mut leader = Leader { manifest, summary, dedup, settings, plans: 0 };
        leader.note_awaiting();
        Ok(leader)
    }

    fn dedup_plan(&self) -> DedupPlan {
        match &self.dedup {
            Some(d) if d.stale => DedupPlan::Rehash,
            Some(d) if d.recluster => DedupPlan::Recluster,
            _ => DedupPlan::Current,
        }
    }

    /// Whether dedup needs an epoch although no shard is planned: changed clustering
    /// parameters, or records of shards gone from the input to retract.
    fn dedup_epoch_due(&self) -> bool {
        self.dedup.as_ref().is_some_and(|d| d.recluster || !d.gone.is_empty())
    }

    /// Feeds the records of every committed shard that this run does not read to dedup's
    /// `prior` input (once per run).
    fn load_prior(
        &mut self,
        ctx: &WorkerCtx,
        planned: &std::collections::VecDeque<ShardTask>,
        mut insert: impl FnMut(SigRecord),
    ) -> Result<()> {
        let Some(d) = self.dedup.as_mut() else { return Ok(()) };
        if d.loaded {
            return Ok(());
        }
        d.loaded = true;
        if std::mem::take(&mut d.stale) {
            // Every committed shard is in this first plan, hashed again.
            return Ok(());
        }
        let planned: BTreeSet<&String> = planned.iter().map(|t| &t.uri).collect();
        let started = Instant::now();
        let mut n = 0usize;
        for (uri, entry) in &self.manifest.shards {
            if planned.contains(uri) {
                continue;
            }
            for record in shard_signatures(&ctx.output, &ctx.rt, &entry.files)? {
                insert(record);
                n += 1;
            }
            d.in_dataflow.insert(uri.clone());
        }
        tracing::info!(records = n, secs = started.elapsed().as_secs_f64(), "dedup state loaded");
        Ok(())
    }

    /// Records to withdraw from dedup before `batch` is read: those of shards gone from the
    /// input and the stored ones of shards in the batch whose records are in the dataflow.
    fn retractions(&mut self, ctx: &WorkerCtx, batch: &[ShardTask]) -> Result<Vec<SigRecord>> {
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

    /// Lists the input and returns the shards to read (see [`crate::plan`]); removes the
    /// output of shards gone from the input with `--prune`.
    fn plan(&mut self, ctx: &WorkerCtx) -> Result<Vec<ShardTask>> {
        let listing = ctx.input.list_shards(&ctx.rt)?;
        let dedup = self.dedup_plan();
        let (plan, restamped) = plan::plan(&mut self.manifest, &listing, &self.settings, dedup, |task, hash, size| {
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

    fn absorb_stats(&mut self, events: &[LeaderEvent]) {
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
    fn note_awaiting(&mut self) {
        let waiting = &self.manifest.awaiting;
        self.summary.awaiting_model = waiting.values().map(|a| a.docs).sum();
        self.summary.awaiting_shards = waiting.len() as u64;
        self.summary.awaiting_example = waiting.values().next().map(|a| a.example.clone());
    }

    /// Records an epoch's shards and files in the manifest and makes the files visible.
    /// Returns the committed shards dedup wants read again (a document changed side).
    fn commit(
        &mut self,
        ctx: &WorkerCtx,
        epoch: Epoch,
        events: Vec<LeaderEvent>,
        batch: &[ShardTask],
        still_planned: &BTreeSet<&String>,
    ) -> Result<Vec<ShardTask>> {
        self.absorb_stats(&events);
        let mut files: BTreeMap<String, Vec<FileWritten>> = BTreeMap::new();
        let mut reports = Vec::new();
        let mut cluster_changes = Vec::new();
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
                LeaderEvent::Cluster(k, m, d) => cluster_changes.push((k, m, d)),
            }
        }
        reports.sort();
        let mut pending = Pending::default();
        let mut entry = EpochEntry {
            epoch,
            committed_at: now_rfc3339(),
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
        let rereads = self.settle_dedup(ctx, epoch, cluster_changes, batch, still_planned, &mut pending)?;
        self.manifest.epochs.push(entry);
        self.manifest.next_epoch = epoch + 1;
        self.manifest.commit(&ctx.output, &ctx.rt, pending)?;
        self.summary.epochs.push(epoch);
        self.note_awaiting();
        tracing::info!(epoch, rereads = rereads.len(), "epoch committed");
        Ok(rereads)
    }

    /// Applies an epoch's cluster changes: finds committed documents that changed side
    /// (their shards are read again, recorded in the manifest so a crash does not lose them)
    /// and replaces the cluster snapshot.
    fn settle_dedup(
        &mut self,
        ctx: &WorkerCtx,
        epoch: Epoch,
        changes: Vec<(DocKey, Membership, isize)>,
        batch: &[ShardTask],
        still_planned: &BTreeSet<&String>,
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
        let touched = d.live.apply(changes);
        let keys: BTreeSet<DocKey> = if std::mem::take(&mut d.full_compare) {
            d.live.members.keys().chain(d.committed.members.keys()).cloned().collect()
        } else {
            touched
        };
        let in_batch: BTreeSet<&String> = batch.iter().map(|t| &t.uri).collect();
        let mut rereads = Vec::new();
        for uri in d.live.changed_shards(&d.committed, &keys) {
            if in_batch.contains(&uri) || still_planned.contains(&uri) {
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

pub(crate) fn now_rfc3339() -> String {
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
