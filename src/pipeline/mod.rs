//! The driver: plans which shards to process, runs them through the dataflow one epoch at a
//! time on timely workers (threads and, optionally, processes), and commits each epoch.
//!
//! Worker 0 of process 0 is the leader: it lists the input, owns the differential input of
//! shard tasks and the manifest. The other workers close their inputs at once and serve the
//! operators; shards reach them through the read operator's exchange.

mod assemble;
mod dedup_driver;
mod leader;
mod models;

use assemble::{assemble, Chain};
use dedup_driver::{dedup_status, dedup_want};
use leader::{local_bytes_equal, Leader};
use models::{load_lang_id, load_models, open_models};

use crate::config::{Config, OperatorName};
use crate::manifest::{self, Manifest};
use crate::plan::{self, DedupPlan};
use crate::settings::{ModelIds, Settings};
use crate::sink::{SideRow, SinkEvent, SinkTarget, WriteDataset};
use crate::store::{Store, StoreOpener};
use anyhow::{anyhow, bail, Context, Result};
use differential_dataflow::input::Input;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashSet;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Exchange, Inspect, Probe};
use timely::dataflow::ProbeHandle;
use tokio::runtime::Runtime;
use xinstruct_operators::dedup::{DocKey, Membership, Prior, PriorLoad, SigRecord};
use xinstruct_operators::diversity::{Embedder, Point};
use xinstruct_operators::fault::{panic_message, Fault};
use xinstruct_operators::generate::awaits_model;
use xinstruct_operators::instruct::StageModels;
use xinstruct_operators::lang_id::LangIdentifier;
use xinstruct_operators::source::{Progress, ReadShards, ShardReport, ShardTask};
use xinstruct_operators::stats::StatsRegistry;
use xinstruct_operators::{Epoch, Reject};

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

pub use crate::summary::{JudgeCheck, RunSummary};

/// Messages to the leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum LeaderEvent {
    Report(ShardReport),
    Sink(SinkEvent),
    /// A change to the membership of a document in a cluster of two or more.
    Cluster(DocKey, Membership, isize),
    /// A stored dedup record entered the dataflow: its stored membership no longer stands.
    DedupLoaded(DocKey),
    /// A document whose model call failed for the model's reasons: not a reject, work pending.
    Awaiting(Reject, isize),
    /// A finished pair's embedding, for the diversity selection.
    Point(Point),
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
    let ops = &opts.config.pipeline.operators;
    let embedder =
        match ops.contains(&OperatorName::Diversity) && ops.contains(&OperatorName::ReverseInstruction) {
            true => Some(crate::diversify::load_embedder(&opts.config)?),
            false => None,
        };
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
                embedder: embedder.clone(),
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
    summary.model_busy_secs = opts.progress.model_busy.busy().as_secs_f64();
    summary.model_busy_fraction = summary.model_busy_secs / summary.wall_secs.max(1e-9);
    summary.servers = opts
        .progress
        .generators
        .endpoints()
        .into_iter()
        .map(|e| crate::summary::ServerFigures {
            url: e.url,
            answered: e.answered,
            failed: e.failed,
            down: e.down_since.is_some(),
        })
        .collect();
    summary.workers = total_workers;
    Ok(summary)
}

/// The leader's events with the epoch they belong to.
type Collected = Rc<RefCell<Vec<(Epoch, LeaderEvent)>>>;

/// The differential inputs the leader feeds.
struct Inputs<'a> {
    shards: &'a mut differential_dataflow::input::InputSession<Epoch, ShardTask, isize>,
    prior: &'a mut differential_dataflow::input::InputSession<Epoch, SigRecord, isize>,
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
    /// The diversity operator's embedding model, shared by the workers of this process.
    embedder: Option<Arc<Embedder>>,
    /// Document ids dedup rejects as `taken_down`.
    takedown: Arc<HashSet<String>>,
    /// Raised by a worker or operator that cannot go on; the leader stops at once.
    fault: Arc<Fault>,
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

impl WorkerCtx {
    fn run_worker(&self, worker: &mut timely::worker::Worker) -> Result<Option<RunSummary>> {
        let leader = worker.index() == 0;
        let stats = StatsRegistry::default();
        let collected: Collected = Rc::default();
        let probe = ProbeHandle::new();
        let opener = Rc::new(StoreOpener::new(self.input.clone(), self.rt.clone(), self.spool_dir.clone()));
        let target = SinkTarget {
            out: self.output.clone(),
            rt: self.rt.clone(),
            spool_dir: self.spool_dir.clone(),
            fault: self.fault.clone(),
        };
        let config = &self.opts.config;
        // The leader first: how dedup loads the stored records depends on the manifest.
        let mut leader = if leader { Some(Leader::new(self)?) } else { None };
        let prior_load = match leader.as_ref().map(|l| l.dedup_plan()) {
            Some(DedupPlan::Recluster) => PriorLoad::Eager,
            _ => PriorLoad::Lazy,
        };
        let (mut shards_in, mut prior_in) = worker.dataflow::<Epoch, _, _>(|scope| -> Result<_> {
            let (shards_in, shards) = scope.new_collection::<ShardTask, isize>();
            let (prior_in, prior) = scope.new_collection::<SigRecord, isize>();
            let read = shards.read_shards(&config.source, opener, &stats, Some(self.opts.progress.clone()));
            let Chain { docs, rejects, dedup, corpus, points } = assemble(
                read.docs,
                read.rejects,
                Prior { records: prior, load: prior_load },
                &self.takedown,
                config,
                self.lang_id.as_ref(),
                self.models.as_ref(),
                self.embedder.as_ref(),
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
                events = events.concat(dedup.loaded.inner.map(|(k, _, _)| LeaderEvent::DedupLoaded(k)));
            }
            if let Some(points) = points {
                events = events.concat(points.map(LeaderEvent::Point));
            }
            let sink = docs.write_dataset(side, &config.sink, target, &stats);
            let sink = sink.map(LeaderEvent::Sink);
            let sink_collected = collected.clone();
            // Each event with its epoch: with several epochs in flight, a commit takes its own.
            events
                .concat(sink)
                .exchange(|_| 0)
                .inspect_core(move |event| {
                    if let Ok((stamp, data)) = event {
                        let time = stamp.least().copied().unwrap_or_default();
                        sink_collected.borrow_mut().extend(data.iter().map(|e| (time, e.clone())));
                    }
                })
                .probe_with(&probe);
            Ok((shards_in, prior_in))
        })?;
        let Some(mut leader) = leader.take() else {
            drop(shards_in);
            drop(prior_in);
            return Ok(None);
        };
        leader.drive(
            self,
            worker,
            &mut Inputs { shards: &mut shards_in, prior: &mut prior_in },
            &probe,
            &collected,
        )?;
        drop(shards_in);
        drop(prior_in);
        while !probe.done() {
            self.check_fault()?;
            worker.step_or_park(Some(PARK));
        }
        let events: Vec<LeaderEvent> = collected.borrow_mut().drain(..).map(|(_, e)| e).collect();
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
