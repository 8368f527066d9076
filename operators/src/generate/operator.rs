//! `generate`: the dataflow operator in front of a [`Generator`].
//!
//! Each document becomes a request (the stage's prompt builder decides how); requests are looked
//! up in the memo cache, the misses gathered into batches and handed to a small pool of threads
//! that call the generator, at most `max_in_flight` requests at a time (the rest wait in the
//! operator: backpressure). The operator holds a capability for every epoch with requests out,
//! so downstream sees an epoch complete only when all its results are back, while the worker
//! goes on running the other operators (ingest, filters) of later epochs: the model never stalls
//! them. Results come back through a channel and wake the operator (a sync activator).
//!
//! Every document comes out once with a [`GenResult`]: `ok` with the text and token counts, or
//! failed with a reason (`gen_http_error`, `gen_empty_prompt`, …) — never dropped silently.
//! The stage that uses it decides what a failure means (usually a reject) and counts
//! `docs_in`/`docs_out`/`dropped`; this operator counts only the model's work under the name
//! it is given: `model_calls`, `memo_hits`, `memo_misses`, `model_ms` (time with a request
//! out), `prompt_tokens`, `prompt_tokens_cached` (of those, the ones a prefix cache held:
//! not prefilled), `completion_tokens`, `failed` (generator errors) and `no_prompt` (the prompt builder's
//! refusals).
//! A retraction (negative diff) replays the result given earlier for that document, so the
//! collection stays consistent without a model call.

use super::memo::{key, MemoKey};
use super::{GenError, GenOutcome, GenRequest, Generator, MemoCache};
use crate::doc::Doc;
use crate::source::BusyClock;
use crate::stats::StatsRegistry;
use crate::Epoch;
use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;

/// `[generate]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerateConfig {
    /// Requests handed to the generator together.
    pub batch_size: usize,
    /// Requests out at once at most (per worker); more wait in the operator.
    pub max_in_flight: usize,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig { batch_size: 16, max_in_flight: 64 }
    }
}

/// The outcome for one document, deterministic for a given request (so retractions cancel).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GenResult {
    pub ok: bool,
    pub text: String,
    /// Empty when ok; else a reason code (`gen_http_error`, …).
    pub reason: String,
    pub detail: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// `stop` or `length` when ok.
    pub finish: String,
    pub truncated_prompt_tokens: u64,
}

impl GenResult {
    pub fn from_outcome(outcome: &GenOutcome) -> GenResult {
        match outcome {
            Ok(c) => GenResult {
                ok: true,
                text: c.text.clone(),
                reason: String::new(),
                detail: String::new(),
                prompt_tokens: c.prompt_tokens as u64,
                completion_tokens: c.completion_tokens as u64,
                finish: c.finish.as_str().to_string(),
                truncated_prompt_tokens: c.truncated_prompt_tokens as u64,
            },
            Err(e) => GenResult::failed(e.reason(), e.to_string()),
        }
    }

    pub fn failed(reason: &str, detail: String) -> GenResult {
        GenResult {
            ok: false,
            text: String::new(),
            reason: reason.to_string(),
            detail,
            prompt_tokens: 0,
            completion_tokens: 0,
            finish: String::new(),
            truncated_prompt_tokens: 0,
        }
    }
}

/// What a stage's prompt builder makes of a document: a request, or a reason it has none.
pub type PromptVerdict = Result<GenRequest, (&'static str, String)>;

/// The generator and cache an operator uses, and the stage's identity in the cache
/// (`reverse_instruction@v1`: bump the version when the template changes).
#[derive(Clone)]
pub struct GenerateOp {
    pub generator: Arc<dyn Generator>,
    pub memo: Option<Arc<MemoCache>>,
    pub stage: String,
    pub config: GenerateConfig,
    /// Counts requests to the model and answers, for the progress bar.
    pub progress: Option<Arc<crate::source::Progress>>,
}

pub trait GenerateExt<'s> {
    /// Runs `prompt` over every document and generates; returns each document with its result.
    fn generate_named<F>(
        self,
        name: &str,
        op: &GenerateOp,
        stats: &StatsRegistry,
        prompt: F,
    ) -> VecCollection<'s, Epoch, (Doc, GenResult)>
    where
        F: FnMut(&Doc) -> PromptVerdict + 'static;
}

struct Item {
    doc: Doc,
    time: Epoch,
    diff: isize,
    req: GenRequest,
    key: MemoKey,
}

type Batch = (u64, Vec<GenRequest>);

/// Calls the generator on batches from `jobs`, sends outcomes back and wakes the operator.
fn spawn_pool(
    n: usize,
    generator: Arc<dyn Generator>,
    jobs: Arc<Mutex<mpsc::Receiver<Batch>>>,
    results: mpsc::Sender<(u64, Vec<GenOutcome>)>,
    wake: timely::scheduling::SyncActivator,
    progress: Option<Arc<crate::source::Progress>>,
    stage_clock: Arc<BusyClock>,
) {
    let wake = Arc::new(wake);
    for i in 0..n {
        let (generator, jobs, results, wake, progress, stage_clock) = (
            generator.clone(),
            jobs.clone(),
            results.clone(),
            wake.clone(),
            progress.clone(),
            stage_clock.clone(),
        );
        let spawned = std::thread::Builder::new().name(format!("generate-{i}")).spawn(move || loop {
            let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
            let Ok((id, batch)) = job else { return };
            let n = batch.len();
            let clock = progress.as_ref().map(|p| &p.model_busy);
            if let Some(c) = clock {
                c.start();
            }
            stage_clock.start();
            let mut out = generator.generate(batch);
            stage_clock.end();
            if let Some(c) = clock {
                c.end();
            }
            out.resize(n, Err(GenError::Closed));
            if results.send((id, out)).is_err() {
                return;
            }
            let _ = wake.activate();
        });
        if let Err(e) = spawned {
            tracing::error!("generate: cannot start a caller thread: {e}");
        }
    }
}

impl<'s> GenerateExt<'s> for VecCollection<'s, Epoch, Doc> {
    fn generate_named<F>(
        self,
        name: &str,
        op: &GenerateOp,
        stats: &StatsRegistry,
        mut prompt: F,
    ) -> VecCollection<'s, Epoch, (Doc, GenResult)>
    where
        F: FnMut(&Doc) -> PromptVerdict + 'static,
    {
        let stats = stats.clone();
        let op_name = name.to_string();
        let op = op.clone();
        let scope = self.inner.scope();
        self.inner
            .unary_frontier::<CapacityContainerBuilder<Vec<((Doc, GenResult), Epoch, isize)>>, _, _, _>(
                Pipeline,
                name,
                move |_cap, info| {
                    let wake = scope.worker().sync_activator_for(info.address.to_vec());
                    let (job_tx, job_rx) = mpsc::channel::<Batch>();
                    let (res_tx, res_rx) = mpsc::channel::<(u64, Vec<GenOutcome>)>();
                    let cfg = op.config.clone();
                    let batch_size = cfg.batch_size.max(1);
                    let max_in_flight = cfg.max_in_flight.max(batch_size);
                    let threads = max_in_flight.div_ceil(batch_size);
                    // This stage's time with a request out, reported as `model_ms`.
                    let stage_clock = Arc::new(BusyClock::default());
                    let mut reported_ms = 0u64;
                    spawn_pool(
                        threads,
                        op.generator.clone(),
                        Arc::new(Mutex::new(job_rx)),
                        res_tx,
                        wake,
                        op.progress.clone(),
                        stage_clock.clone(),
                    );
                    let fingerprint = op.generator.fingerprint();
                    // Capability per epoch with work outstanding, and how much.
                    let mut caps: BTreeMap<Epoch, (Capability<Epoch>, usize)> = BTreeMap::new();
                    let mut waiting: std::collections::VecDeque<Item> = Default::default();
                    let mut out_batches: HashMap<u64, Vec<Item>> = HashMap::new();
                    let mut next_id = 0u64;
                    let mut in_flight = 0usize;
                    // Results given per (document, request): replayed for retractions.
                    let mut given: HashMap<MemoKey, (GenResult, isize)> = HashMap::new();
                    let doc_key = |doc: &Doc, k: &MemoKey| -> MemoKey {
                        let mut h = xxhash_rust::xxh3::Xxh3::new();
                        h.update(k);
                        h.update(doc.id.as_bytes());
                        h.update(doc.source.shard.as_bytes());
                        h.update(&doc.source.offset.to_le_bytes());
                        h.digest128().to_le_bytes()
                    };
                    move |(input, _frontier), output| {
                        let started = Instant::now();
                        let mut emitted: Vec<(Doc, GenResult, Epoch, isize)> = Vec::new();
                        let mut counters: BTreeMap<&'static str, u64> = BTreeMap::new();
                        let mut fresh: Vec<Item> = Vec::new();
                        input.for_each(|cap, data| {
                            for (doc, time, diff) in data.drain(..) {
                                match prompt(&doc) {
                                    Err((reason, detail)) => {
                                        *counters.entry("no_prompt").or_default() += 1;
                                        let r = GenResult::failed(reason, detail);
                                        emitted.push((doc, r, time, diff));
                                        // Emitted below under this capability's time.
                                        caps.entry(time).or_insert_with(|| (cap.delayed(&time, 0), 0));
                                    }
                                    Ok(req) => {
                                        let k = key(&fingerprint, &op.stage, &req);
                                        caps.entry(time).or_insert_with(|| (cap.delayed(&time, 0), 0)).1 += 1;
                                        fresh.push(Item { doc, time, diff, req, key: k });
                                    }
                                }
                            }
                        });
                        // Retractions replay what was given; the rest try the memo cache.
                        let mut lookups: Vec<Item> = Vec::new();
                        for item in fresh {
                            let dk = doc_key(&item.doc, &item.key);
                            if item.diff < 0 {
                                if let Some((r, n)) = given.get_mut(&dk) {
                                    emitted.push((item.doc, r.clone(), item.time, item.diff));
                                    *n += item.diff;
                                    if *n <= 0 {
                                        given.remove(&dk);
                                    }
                                    if let Some(c) = caps.get_mut(&item.time) {
                                        c.1 -= 1;
                                    }
                                    continue;
                                }
                            }
                            lookups.push(item);
                        }
                        if !lookups.is_empty() {
                            let found = match &op.memo {
                                Some(m) => m.get_many(&lookups.iter().map(|i| i.key).collect::<Vec<_>>()),
                                None => vec![None; lookups.len()],
                            };
                            for (item, hit) in lookups.into_iter().zip(found) {
                                match hit {
                                    Some(c) => {
                                        *counters.entry("memo_hits").or_default() += 1;
                                        let r = GenResult::from_outcome(&Ok(c));
                                        let dk = doc_key(&item.doc, &item.key);
                                        given.entry(dk).or_insert_with(|| (r.clone(), 0)).1 += item.diff;
                                        if let Some(c) = caps.get_mut(&item.time) {
                                            c.1 -= 1;
                                        }
                                        emitted.push((item.doc, r, item.time, item.diff));
                                    }
                                    None => {
                                        if op.memo.is_some() {
                                            *counters.entry("memo_misses").or_default() += 1;
                                        }
                                        if let Some(p) = &op.progress {
                                            p.model_requests
                                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                        }
                                        waiting.push_back(item);
                                    }
                                }
                            }
                        }
                        // Results back from the generator.
                        while let Ok((id, outcomes)) = res_rx.try_recv() {
                            let items = out_batches.remove(&id).unwrap_or_default();
                            in_flight -= items.len();
                            if let Some(p) = &op.progress {
                                p.model_done
                                    .fetch_add(items.len() as u64, std::sync::atomic::Ordering::Relaxed);
                            }
                            let mut store = Vec::new();
                            for (item, outcome) in items.into_iter().zip(outcomes) {
                                let r = GenResult::from_outcome(&outcome);
                                match &outcome {
                                    Ok(c) => {
                                        store.push((item.key, c.clone()));
                                        *counters.entry("prompt_tokens").or_default() +=
                                            c.prompt_tokens as u64;
                                        if c.cached_prompt_tokens > 0 {
                                            *counters.entry("prompt_tokens_cached").or_default() +=
                                                c.cached_prompt_tokens as u64;
                                        }
                                        *counters.entry("completion_tokens").or_default() +=
                                            c.completion_tokens as u64;
                                    }
                                    Err(_) => *counters.entry("failed").or_default() += 1,
                                }
                                let dk = doc_key(&item.doc, &item.key);
                                given.entry(dk).or_insert_with(|| (r.clone(), 0)).1 += item.diff;
                                if let Some(c) = caps.get_mut(&item.time) {
                                    c.1 -= 1;
                                }
                                emitted.push((item.doc, r, item.time, item.diff));
                            }
                            if let Some(m) = &op.memo {
                                if let Err(e) = m.put_many(&store) {
                                    tracing::warn!("{op_name}: {e}");
                                }
                            }
                        }
                        // Hand out more work, up to the in-flight limit.
                        while in_flight < max_in_flight && !waiting.is_empty() {
                            let n = batch_size.min(max_in_flight - in_flight).min(waiting.len());
                            let items: Vec<Item> = waiting.drain(..n).collect();
                            let reqs = items.iter().map(|i| i.req.clone()).collect();
                            *counters.entry("model_calls").or_default() += n as u64;
                            if job_tx.send((next_id, reqs)).is_err() {
                                // The pool is gone: fail the items rather than lose them.
                                for item in items {
                                    if let Some(c) = caps.get_mut(&item.time) {
                                        c.1 -= 1;
                                    }
                                    let r = GenResult::from_outcome(&Err(GenError::Closed));
                                    emitted.push((item.doc, r, item.time, item.diff));
                                }
                                continue;
                            }
                            in_flight += n;
                            out_batches.insert(next_id, items);
                            next_id += 1;
                        }
                        for (doc, r, time, diff) in emitted {
                            let cap = &caps.get(&time).expect("a capability for every time with output").0;
                            output.session(cap).give(((doc, r), time, diff));
                        }
                        caps.retain(|_, (_, outstanding)| *outstanding > 0);
                        let busy_ms = stage_clock.busy().as_millis() as u64;
                        let new_ms = busy_ms.saturating_sub(reported_ms);
                        reported_ms = busy_ms;
                        stats.with(&op_name, |s| {
                            for (k, v) in &counters {
                                s.count(k, *v);
                            }
                            if new_ms > 0 {
                                s.count("model_ms", new_ms);
                            }
                            s.add_time(started.elapsed());
                        });
                    }
                },
            )
            .as_collection()
    }
}
