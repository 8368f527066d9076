//! The in-process candle engine: continuous batching over a flat-batch transformer.
//!
//! One engine thread owns the model. Requests arrive on a channel from any number of callers
//! (the dataflow operator, `xinst serve`'s HTTP handlers); each step the engine admits waiting
//! requests into free slots (their prompts are prefilled in the same forward pass as the decode
//! tokens of running sequences), samples one token per sequence, and frees the slots of finished
//! sequences at once so waiting prompts take them.

use super::constrain::{Constraint, VerdictState, VerdictTokens};
use super::model::{KvBlock, Model, SeqCache};
use super::prefix::{PrefixCache, BLOCK};
use super::sampling::Sampler;
use super::template::ChatTemplate;
use super::{Completion, FinishReason, GenError, GenOutcome, GenRequest, Generator, Prompt};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// `cpu`, `cuda` or `cuda:N` (needs the `cuda` feature).
    pub device: String,
    /// Activation/weight dtype for safetensors models: `f32`, `bf16`, `f16` (GGUF runs in f32
    /// activations over its quantized weights).
    pub dtype: String,
    /// Sequences decoded together (slots).
    pub max_batch: usize,
    /// Prompt tokens prefilled per step at most (a long prompt is admitted alone).
    pub max_step_tokens: usize,
    /// Context cap (prompt + new tokens); 0 = the model's own. Longer prompts are truncated from
    /// the start (after BOS), and the completion records how many tokens were dropped.
    pub max_context: usize,
    /// Same tokens for a sequence whatever shares its batch (see `model::fast_qmatmul`).
    pub batch_invariant: bool,
    /// Memory for the KV of recent prompt prefixes, reused by prompts that start the same way
    /// (`generate/prefix.rs`; exact: the same tokens as without it). 0 turns it off.
    pub prefix_cache_mib: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            device: "cpu".into(),
            dtype: "f32".into(),
            max_batch: 8,
            max_step_tokens: 2048,
            max_context: 4096,
            batch_invariant: true,
            prefix_cache_mib: 256,
        }
    }
}

/// Counters of an engine since it started.
#[derive(Default, Debug)]
pub struct EngineStats {
    pub requests: AtomicU64,
    pub prompt_tokens: AtomicU64,
    /// Prompt tokens taken from the prefix cache (not prefilled).
    pub prompt_tokens_cached: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub steps: AtomicU64,
    /// Sum over steps of sequences in the step (mean batch = this / steps).
    pub seq_steps: AtomicU64,
    pub truncated: AtomicU64,
}

struct Job {
    req: GenRequest,
    reply: mpsc::Sender<(usize, GenOutcome)>,
    index: usize,
}

pub struct CandleGenerator {
    name: String,
    fingerprint: String,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub stats: Arc<EngineStats>,
    pub arch: &'static str,
    /// The tokenizer can spell the verdict format ([`Constraint::Verdict`]).
    verdicts: bool,
    /// The tokenizer's special tokens written like markup (`<start_of_turn>`,
    /// `<image_soft_token>`, `[INST]`): defused in document text (see [`Generator::special_tokens`]).
    special: Vec<String>,
    context: usize,
    max_batch: usize,
}

pub fn device(spec: &str) -> Result<Device, GenError> {
    match spec {
        "cpu" | "" => Ok(Device::Cpu),
        s if s.starts_with("cuda") => {
            let ordinal = s.strip_prefix("cuda:").map(|n| n.parse().unwrap_or(0)).unwrap_or(0);
            Device::new_cuda(ordinal).map_err(|e| {
                GenError::Model(format!(
                    "device {s}: {e} (build with `--features cuda` on a machine with CUDA)"
                ))
            })
        }
        other => Err(GenError::Model(format!("unknown device '{other}' (cpu, cuda, cuda:N)"))),
    }
}

fn dtype(spec: &str) -> Result<DType, GenError> {
    match spec {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        "f16" => Ok(DType::F16),
        other => Err(GenError::Model(format!("unknown dtype '{other}' (f32, bf16, f16)"))),
    }
}

/// The files of a local model: a GGUF file, or a directory holding a GGUF (and maybe a
/// tokenizer.json) or a Hugging Face snapshot (config.json + tokenizer.json + safetensors).
struct ModelFiles {
    gguf: Option<PathBuf>,
    dir: PathBuf,
    tokenizer: Option<PathBuf>,
}

fn locate(path: &Path) -> Result<ModelFiles, GenError> {
    let err = |m: String| GenError::Model(m);
    if path.is_file() {
        if path.extension().and_then(|e| e.to_str()) != Some("gguf") {
            return Err(err(format!(
                "{}: a model file must be .gguf (or give a snapshot directory)",
                path.display()
            )));
        }
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let tok = dir.join("tokenizer.json");
        return Ok(ModelFiles {
            gguf: Some(path.to_path_buf()),
            tokenizer: tok.exists().then_some(tok),
            dir,
        });
    }
    if !path.is_dir() {
        return Err(err(format!("{}: no such model file or directory", path.display())));
    }
    let tok = path.join("tokenizer.json");
    let tokenizer = tok.exists().then_some(tok);
    let mut ggufs: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| err(format!("{}: {e}", path.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("gguf"))
        .collect();
    ggufs.sort();
    if let Some(g) = ggufs.into_iter().next() {
        return Ok(ModelFiles { gguf: Some(g), tokenizer, dir: path.to_path_buf() });
    }
    if !path.join("config.json").exists() {
        return Err(err(format!(
            "{}: no .gguf file and no config.json (not a model directory)",
            path.display()
        )));
    }
    if tokenizer.is_none() {
        return Err(err(format!("{}: tokenizer.json is missing", path.display())));
    }
    Ok(ModelFiles { gguf: None, tokenizer, dir: path.to_path_buf() })
}

/// xxh3-128 over the weight files: identifies the weights for the memo cache.
fn weights_checksum(files: &ModelFiles) -> Result<String, GenError> {
    let mut paths: Vec<PathBuf> = match &files.gguf {
        Some(g) => vec![g.clone()],
        None => std::fs::read_dir(&files.dir)
            .map_err(|e| GenError::Model(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("safetensors"))
            .collect(),
    };
    paths.sort();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for p in paths {
        use std::io::Read;
        let mut f = std::fs::File::open(&p).map_err(|e| GenError::Model(format!("{}: {e}", p.display())))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(|e| GenError::Model(format!("{}: {e}", p.display())))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(format!("{:032x}", h.digest128()))
}

type GgufHeader = candle_core::quantized::gguf_file::Content;

fn load_tokenizer(files: &ModelFiles, gguf: Option<&GgufHeader>) -> Result<tokenizers::Tokenizer, GenError> {
    if let Some(t) = &files.tokenizer {
        return tokenizers::Tokenizer::from_file(t)
            .map_err(|e| GenError::Model(format!("{}: {e}", t.display())));
    }
    let (Some(g), Some(ct)) = (files.gguf.as_ref(), gguf) else {
        return Err(GenError::Model("no tokenizer".into()));
    };
    use candle_core::quantized::tokenizer::TokenizerFromGguf;
    tokenizers::Tokenizer::from_gguf(ct).map_err(|e| {
        GenError::Model(format!(
            "{}: no tokenizer.json beside it and its own vocabulary failed: {e}",
            g.display()
        ))
    })
}

/// A token that text could spell by accident of markup (`<…>`, `[…]`), not a byte or a
/// whitespace token.
fn looks_like_markup(t: &str) -> bool {
    t.len() >= 3 && ((t.starts_with('<') && t.ends_with('>')) || (t.starts_with('[') && t.ends_with(']')))
}

/// End-of-sequence ids: the GGUF/config eos plus the end-of-turn tokens the vocabulary has.
fn eos_ids(files: &ModelFiles, gguf: Option<&GgufHeader>, tok: &tokenizers::Tokenizer) -> Vec<u32> {
    let mut ids: Vec<u32> = ["<eos>", "</s>", "<end_of_turn>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>"]
        .iter()
        .filter_map(|t| tok.token_to_id(t))
        .collect();
    if let Some(ct) = gguf {
        if let Some(Ok(id)) = ct.metadata.get("tokenizer.ggml.eos_token_id").map(|v| v.to_u32()) {
            ids.push(id);
        }
    } else if let Ok(raw) = std::fs::read(files.dir.join("config.json")) {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&raw) {
            match &v["eos_token_id"] {
                serde_json::Value::Number(n) => ids.extend(n.as_u64().map(|n| n as u32)),
                serde_json::Value::Array(a) => {
                    ids.extend(a.iter().filter_map(|n| n.as_u64().map(|n| n as u32)))
                }
                _ => {}
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The BOS id to prepend when the tokenizer does not add one itself.
fn bos_id(gguf: Option<&GgufHeader>, tok: &tokenizers::Tokenizer) -> Option<u32> {
    let probe = tok.encode("a", true).ok()?;
    let bos = ["<bos>", "<s>"].iter().find_map(|t| tok.token_to_id(t));
    if let (Some(b), Some(first)) = (bos, probe.get_ids().first()) {
        if *first == b {
            return None; // the tokenizer's post-processor adds it
        }
    }
    let ct = gguf?;
    let add = ct.metadata.get("tokenizer.ggml.add_bos_token").and_then(|v| v.to_bool().ok()).unwrap_or(false);
    if add {
        ct.metadata.get("tokenizer.ggml.bos_token_id").and_then(|v| v.to_u32().ok())
    } else {
        None
    }
}

impl CandleGenerator {
    /// Loads a model (see [`locate`] for what `path` may be) and starts its engine thread.
    pub fn load(path: &Path, name: &str, cfg: &EngineConfig) -> Result<CandleGenerator, GenError> {
        let files = locate(path)?;
        let dev = device(&cfg.device)?;
        // The GGUF header (metadata and a 100k+-entry vocabulary) is parsed once and shared.
        let (model, header) = match &files.gguf {
            Some(g) => {
                let open_err = |e: &dyn std::fmt::Display| GenError::Model(format!("{}: {e}", g.display()));
                let mut file = std::fs::File::open(g).map_err(|e| open_err(&e))?;
                let ct = GgufHeader::read(&mut file).map_err(|e| open_err(&e))?;
                let model = Model::from_gguf(g, &ct, &mut file, &dev, cfg.batch_invariant);
                (model, Some(ct))
            }
            None => (Model::from_safetensors(&files.dir, dtype(&cfg.dtype)?, &dev), None),
        };
        let model = model.map_err(|e| GenError::Model(e.to_string()))?;
        let tokenizer = load_tokenizer(&files, header.as_ref())?;
        let (tok_size, rows) = (tokenizer.get_vocab_size(true), model.embedding_rows());
        // A few added tokens past the table are normal (Gemma 3's tokenizer has 262,145 for
        // 262,144 rows: its image token); thousands mean the files belong to different models.
        if tok_size > rows + 256 {
            return Err(GenError::Model(format!(
                "{}: the tokenizer has {tok_size} tokens but the model's embedding only {rows} rows (mismatched files?)",
                files.tokenizer.as_ref().unwrap_or(&files.dir).display()
            )));
        }
        let fingerprint = format!("candle:{}:{}", model.config.arch.name(), weights_checksum(&files)?);
        let eos = eos_ids(&files, header.as_ref(), &tokenizer);
        let bos = bos_id(header.as_ref(), &tokenizer);
        drop(header);
        let template = ChatTemplate::detect(&tokenizer);
        let verdict = VerdictTokens::new(|t| {
            tokenizer.encode(t, false).map(|e| e.get_ids().to_vec()).unwrap_or_default()
        });
        let arch = model.config.arch.name();
        let stats = Arc::new(EngineStats::default());
        let model_cfg = model.config.clone();
        let (tx, rx) = mpsc::channel::<Job>();
        let engine = Engine {
            context: if cfg.max_context == 0 {
                model.max_positions()
            } else {
                cfg.max_context.min(model.max_positions())
            },
            model,
            tokenizer,
            eos,
            bos,
            template,
            verdict: verdict.clone(),
            max_batch: cfg.max_batch.max(1),
            max_step_tokens: cfg.max_step_tokens.max(1),
            stats: stats.clone(),
            prefix: RefCell::new(PrefixCache::new(prefix_blocks(&model_cfg, cfg.prefix_cache_mib))),
        };
        let (context_len, max_batch_n) = (engine.context, engine.max_batch);
        let mut special: Vec<String> = engine
            .tokenizer
            .get_added_tokens_decoder()
            .into_values()
            .filter(|t| t.special && looks_like_markup(&t.content))
            .map(|t| t.content)
            .collect();
        special.sort_unstable();
        let thread = std::thread::Builder::new()
            .name("candle-engine".into())
            .spawn(move || engine.run(rx))
            .map_err(|e| GenError::Model(e.to_string()))?;
        // What decides the outputs besides the weights: the dtype a safetensors model runs in
        // (GGUF keeps its own) and the context, past which prompts lose their start.
        let fingerprint = match &files.gguf {
            Some(_) => format!("{fingerprint}:ctx{context_len}"),
            None => format!("{fingerprint}:{}:ctx{context_len}", cfg.dtype),
        };
        Ok(CandleGenerator {
            context: context_len,
            max_batch: max_batch_n,
            special,
            verdicts: verdict.is_some(),
            name: name.to_string(),
            fingerprint,
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            stats,
            arch,
        })
    }

    /// Tokens a sequence may hold (prompt + generated).
    pub fn context(&self) -> usize {
        self.context
    }

    /// Sequences decoded together.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Submits requests without waiting; outcomes arrive on `reply` tagged with `first_index + i`.
    pub fn submit(
        &self,
        batch: Vec<GenRequest>,
        first_index: usize,
        reply: &mpsc::Sender<(usize, GenOutcome)>,
    ) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        for (i, req) in batch.into_iter().enumerate() {
            let job = Job { req, reply: reply.clone(), index: first_index + i };
            match tx.as_ref() {
                Some(tx) => {
                    if let Err(mpsc::SendError(job)) = tx.send(job) {
                        let _ = job.reply.send((job.index, Err(GenError::Closed)));
                    }
                }
                None => {
                    let _ = reply.send((job.index, Err(GenError::Closed)));
                }
            }
        }
    }
}

impl Drop for CandleGenerator {
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Generator for CandleGenerator {
    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn constrains(&self, c: Constraint) -> bool {
        match c {
            Constraint::Verdict => self.verdicts,
        }
    }
    fn special_tokens(&self) -> Vec<String> {
        self.special.clone()
    }
    fn generate(&self, batch: Vec<GenRequest>) -> Vec<GenOutcome> {
        let n = batch.len();
        let (tx, rx) = mpsc::channel();
        self.submit(batch, 0, &tx);
        drop(tx);
        let mut out: Vec<Option<GenOutcome>> = vec![None; n];
        for (i, r) in rx {
            out[i] = Some(r);
        }
        out.into_iter().map(|r| r.unwrap_or(Err(GenError::Closed))).collect()
    }
}

struct Engine {
    model: Model,
    tokenizer: tokenizers::Tokenizer,
    eos: Vec<u32>,
    bos: Option<u32>,
    template: ChatTemplate,
    /// The verdict format's tokens (`None`: the tokenizer cannot spell it).
    verdict: Option<VerdictTokens>,
    context: usize,
    max_batch: usize,
    max_step_tokens: usize,
    stats: Arc<EngineStats>,
    prefix: RefCell<PrefixCache<KvBlock>>,
}

/// Blocks of the prefix cache that fit in `mib` (f32 keys and values of every layer).
fn prefix_blocks(cfg: &super::model::ModelConfig, mib: usize) -> usize {
    let block_bytes = cfg.layers * 2 * cfg.kv_heads * BLOCK * cfg.head_dim * 4;
    (mib << 20) / block_bytes.max(1)
}

struct Seq {
    job: Job,
    cache: SeqCache,
    tokens: Vec<u32>,
    prompt_len: usize,
    truncated: usize,
    /// Prompt tokens whose KV came from the prefix cache.
    cached: usize,
    /// Blocks of the prompt the prefix cache holds or was given (from `cached`).
    stored: usize,
    sampler: Sampler,
    /// Tokens not yet fed to the model (the prompt at first, then the last sampled token).
    pending: Vec<u32>,
    /// The verdict format, when the request asks for it.
    verdict: Option<VerdictState>,
}

impl Seq {
    /// Tokens the sequence may still generate.
    fn room_left(&self) -> usize {
        let generated = self.tokens.len() - self.prompt_len;
        self.job.req.params.max_new_tokens.max(1).saturating_sub(generated)
    }
}

impl Engine {
    fn run(self, rx: mpsc::Receiver<Job>) {
        let mut waiting: VecDeque<Job> = VecDeque::new();
        let mut active: Vec<Seq> = Vec::new();
        let mut open = true;
        loop {
            if active.is_empty() && waiting.is_empty() {
                if !open {
                    return;
                }
                match rx.recv() {
                    Ok(job) => waiting.push_back(job),
                    Err(_) => return,
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(job) => waiting.push_back(job),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            // Admit waiting requests into free slots within the step's prefill budget.
            let mut budget = self.max_step_tokens;
            let mut admitted_any = false;
            while active.len() < self.max_batch {
                let Some(job) = waiting.pop_front() else { break };
                match self.admit(job) {
                    Ok(seq) => {
                        if admitted_any && seq.pending.len() > budget {
                            // Too much prefill for this step: wait for the next.
                            waiting.push_front(seq.job);
                            break;
                        }
                        budget = budget.saturating_sub(seq.pending.len());
                        admitted_any = true;
                        self.stats.requests.fetch_add(1, Ordering::Relaxed);
                        self.stats.prompt_tokens.fetch_add(seq.prompt_len as u64, Ordering::Relaxed);
                        self.stats.prompt_tokens_cached.fetch_add(seq.cached as u64, Ordering::Relaxed);
                        if seq.truncated > 0 {
                            self.stats.truncated.fetch_add(1, Ordering::Relaxed);
                        }
                        active.push(seq);
                    }
                    Err((job, e)) => {
                        let _ = job.reply.send((job.index, Err(e)));
                    }
                }
            }
            if active.is_empty() {
                continue;
            }
            if let Err(e) = self.step(&mut active) {
                // A failed forward pass fails the sequence at fault, not the batch: each one is
                // run again alone from a fresh cache (the failed pass may have written part of
                // its KV), and only those that fail alone are answered with the error.
                tracing::warn!(
                    "engine: a batch of {} failed ({e}); retrying its sequences one by one",
                    active.len()
                );
                let mut kept = Vec::with_capacity(active.len());
                for mut seq in active.drain(..) {
                    seq.cache = SeqCache::new(&self.model, seq.tokens.len() + seq.room_left());
                    seq.pending = seq.tokens.clone();
                    seq.cached = 0;
                    match self.step(std::slice::from_mut(&mut seq)) {
                        Ok(()) => kept.push(seq),
                        Err(e) => {
                            let _ = seq.job.reply.send((seq.job.index, Err(GenError::Model(e.to_string()))));
                        }
                    }
                }
                active = kept;
            }
            self.keep_prefixes(&mut active);
            let mut i = 0;
            while i < active.len() {
                if let Some(outcome) = self.finished(&active[i]) {
                    let seq = active.swap_remove(i);
                    let _ = seq.job.reply.send((seq.job.index, outcome));
                } else {
                    i += 1;
                }
            }
        }
    }

    /// Tokenizes a request into a sequence, truncating the prompt to fit the context.
    fn admit(&self, job: Job) -> Result<Seq, (Job, GenError)> {
        if job.req.prompt.is_empty() {
            return Err((job, GenError::EmptyPrompt));
        }
        let text = match &job.req.prompt {
            Prompt::Text(t) => t.clone(),
            Prompt::Chat(m) => self.template.render(m),
        };
        let enc = match self.tokenizer.encode(text.as_str(), true) {
            Ok(e) => e,
            Err(e) => return Err((job, GenError::Model(format!("tokenizer: {e}")))),
        };
        let mut ids: Vec<u32> = self.bos.into_iter().chain(enc.get_ids().iter().copied()).collect();
        // A tokenizer may know tokens the weights have no row for (Gemma 3's image tokens
        // past its 262,144-row embedding): such a prompt would fail the whole forward pass.
        let rows = self.model.embedding_rows();
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= rows) {
            let piece = self.tokenizer.id_to_token(bad).unwrap_or_default();
            let msg = format!("token {bad} ({piece:?}) is outside the model's {rows}-row embedding");
            return Err((job, GenError::InvalidPrompt(msg)));
        }
        // Bounded by the context, so the KV cache sized below is too, whatever was asked.
        let max_new = job.req.params.max_new_tokens.clamp(1, self.context);
        let room = self.context.saturating_sub(max_new).max(2);
        let mut truncated = 0;
        if ids.len() > room {
            // Keep the first token (BOS) and the end of the prompt, where the answer starts.
            truncated = ids.len() - room;
            ids.drain(1..1 + truncated);
        }
        // The longest prefix the cache holds, leaving at least one token to prefill (its logits
        // start the answer).
        let blocks = self.prefix.borrow_mut().lookup(&ids, (ids.len() - 1) / BLOCK);
        let cached = blocks.len() * BLOCK;
        let cache = match SeqCache::from_blocks(&self.model, ids.len() + max_new, &blocks) {
            Ok(c) => c,
            Err(e) => return Err((job, GenError::Model(format!("prefix cache: {e}")))),
        };
        let sampler = Sampler::new(&job.req.params);
        let verdict = match job.req.params.constraint {
            Some(Constraint::Verdict) => self.verdict.clone().map(VerdictState::new),
            None => None,
        };
        Ok(Seq {
            prompt_len: ids.len(),
            pending: ids[cached..].to_vec(),
            tokens: ids,
            cache,
            truncated,
            cached,
            stored: cached / BLOCK,
            sampler,
            verdict,
            job,
        })
    }

    /// Gives the prefix cache the whole blocks of prompts just prefilled.
    fn keep_prefixes(&self, active: &mut [Seq]) {
        let mut prefix = self.prefix.borrow_mut();
        for seq in active.iter_mut().filter(|s| s.cache.len >= s.prompt_len) {
            let whole = seq.prompt_len / BLOCK;
            for k in seq.stored..whole {
                prefix.insert(&seq.tokens[..seq.prompt_len], k, || seq.cache.block(k).ok());
            }
            seq.stored = seq.stored.max(whole);
        }
    }

    fn step(&self, active: &mut [Seq]) -> candle_core::Result<()> {
        let logits = {
            let mut batch: Vec<(&mut SeqCache, &[u32])> =
                active.iter_mut().map(|s| (&mut s.cache, s.pending.as_slice())).collect();
            self.model.forward(&mut batch)?
        };
        let logits: Vec<Vec<f32>> = logits.to_vec2()?;
        self.stats.steps.fetch_add(1, Ordering::Relaxed);
        self.stats.seq_steps.fetch_add(active.len() as u64, Ordering::Relaxed);
        for (seq, mut l) in active.iter_mut().zip(logits) {
            let forced = match seq.verdict.as_mut() {
                Some(v) => {
                    if v.free() {
                        let text =
                            self.tokenizer.decode(&seq.tokens[seq.prompt_len..], true).unwrap_or_default();
                        let used = seq.tokens.len() - seq.prompt_len;
                        v.before(&text, seq.job.req.params.max_new_tokens.saturating_sub(used));
                    }
                    v.mask(&mut l)
                }
                None => None,
            };
            let next = forced.unwrap_or_else(|| seq.sampler.sample(&mut l, &seq.tokens, seq.prompt_len));
            if let Some(v) = seq.verdict.as_mut() {
                v.after(next);
            }
            seq.tokens.push(next);
            seq.pending = vec![next];
            self.stats.generated_tokens.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The outcome if the sequence is done: EOS, a stop string, max_new_tokens or the context.
    fn finished(&self, seq: &Seq) -> Option<GenOutcome> {
        let generated = &seq.tokens[seq.prompt_len..];
        let last = *generated.last()?;
        let params = &seq.job.req.params;
        if let Some(v) = &seq.verdict {
            // A constrained verdict ends with its score; stop strings would cut its format.
            let length = generated.len() >= params.max_new_tokens || seq.tokens.len() >= self.context;
            if !(v.done() || length) {
                return None;
            }
            let text = self.tokenizer.decode(generated, true).unwrap_or_default();
            let finish = if v.done() { FinishReason::Stop } else { FinishReason::Length };
            return Some(Ok(Completion {
                text,
                prompt_tokens: seq.prompt_len,
                completion_tokens: generated.len(),
                finish,
                truncated_prompt_tokens: seq.truncated,
                cached_prompt_tokens: seq.cached,
            }));
        }
        let eos = !params.ignore_eos && self.eos.contains(&last);
        let length = generated.len() >= params.max_new_tokens || seq.tokens.len() >= self.context;
        let has_stops = params.stop.iter().any(|s| !s.is_empty());
        if !(eos || length || has_stops) {
            return None; // no need to decode yet
        }
        let body = if eos { &generated[..generated.len() - 1] } else { generated };
        let text = self.tokenizer.decode(body, true).unwrap_or_default();
        let stop_at = super::sampling::find_stop(&text, &params.stop);
        if !(eos || stop_at.is_some() || length) {
            return None;
        }
        let (text, finish) = match stop_at {
            Some(at) => (text[..at].to_string(), FinishReason::Stop),
            None if eos => (text, FinishReason::Stop),
            None => (text, FinishReason::Length),
        };
        Some(Ok(Completion {
            text,
            prompt_tokens: seq.prompt_len,
            completion_tokens: generated.len(),
            finish,
            truncated_prompt_tokens: seq.truncated,
            cached_prompt_tokens: seq.cached,
        }))
    }
}
