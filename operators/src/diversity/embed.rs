//! `embed`: sentence embeddings with a BERT-family encoder on candle (all-MiniLM-L6-v2 by
//! default, or any BERT snapshot directory with `config.json`, `model.safetensors` and
//! `tokenizer.json`): batched, attention-mask-weighted mean pooling, L2-normalized — what
//! sentence-transformers computes for these models. Embeddings are memoized in the memo cache.
//!
//! Two engines compute the same function: `native` (default, [`super::encoder`]: unpadded
//! batches, one batch per thread) and `candle` (candle-transformers' `BertModel`, each batch
//! padded to its longest text). Either way a text's vector does not depend on its batch or on
//! how many threads share the work.

use super::encoder::{CpuBert, Scratch};
use crate::generate::memo::{vector_key, MemoCache};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

/// Which implementation of the encoder runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// xinstruct's CPU forward pass (module `encoder`): about 4x candle's speed on CPU.
    #[default]
    Native,
    /// candle-transformers' `BertModel` on the given device (the reference; CUDA builds).
    Candle,
}

/// `[embed]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedConfig {
    /// A name from `xinst models list`, a snapshot directory or a Hugging Face id.
    pub model: String,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Tokens per text at most (all-MiniLM-L6-v2 was trained with 256).
    pub max_tokens: usize,
    /// `native` or `candle` (see the module doc).
    pub engine: Engine,
    /// Threads of the native engine, each running whole batches; 0 = one per core.
    pub threads: usize,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig {
            model: "all-minilm-l6-v2".into(),
            batch_size: 32,
            max_tokens: 256,
            engine: Engine::Native,
            threads: 0,
        }
    }
}

enum Model {
    Native(CpuBert),
    Candle(BertModel, Device),
}

pub struct Embedder {
    model: Model,
    tokenizer: Tokenizer,
    fingerprint: String,
    pub dim: usize,
    batch_size: usize,
    threads: usize,
}

impl Embedder {
    pub fn load(dir: &Path, cfg: &EmbedConfig, device: &Device) -> Result<Embedder, String> {
        let file = |name: &str| {
            let p = dir.join(name);
            if p.exists() {
                Ok(p)
            } else {
                Err(format!(
                    "{}: no {name} (a BERT snapshot needs config.json, model.safetensors, tokenizer.json)",
                    dir.display()
                ))
            }
        };
        let config_path = file("config.json")?;
        let config: Config = serde_json::from_slice(
            &std::fs::read(&config_path).map_err(|e| format!("{}: {e}", config_path.display()))?,
        )
        .map_err(|e| format!("{}: not a BERT config: {e}", config_path.display()))?;
        let weights = file("model.safetensors")?;
        // SAFETY: the file is memory-mapped read-only and not modified while the model lives.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, device) }
            .map_err(|e| format!("{}: {e}", weights.display()))?;
        if cfg.max_tokens > config.max_position_embeddings {
            return Err(format!(
                "embed.max_tokens = {} exceeds the model's {} positions ({})",
                cfg.max_tokens,
                config.max_position_embeddings,
                config_path.display()
            ));
        }
        let model = match cfg.engine {
            Engine::Native if device.is_cpu() => CpuBert::load(vb, &config).map(Model::Native),
            Engine::Native => return Err("embed.engine = \"native\" runs on the CPU; use \"candle\"".into()),
            Engine::Candle => BertModel::load(vb, &config).map(|m| Model::Candle(m, device.clone())),
        }
        .map_err(|e| format!("{}: {e}", weights.display()))?;
        let tok_path = file("tokenizer.json")?;
        let mut tokenizer =
            Tokenizer::from_file(&tok_path).map_err(|e| format!("{}: {e}", tok_path.display()))?;
        // The file pads every text to 128: no padding here (the candle engine pads each batch
        // to its longest text itself).
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: cfg.max_tokens, ..Default::default() }))
            .map_err(|e| format!("{}: {e}", tok_path.display()))?;
        let digest = {
            let meta = std::fs::metadata(&weights).map_err(|e| e.to_string())?;
            format!(
                "{:x}",
                xxhash_rust::xxh3::xxh3_64(format!("{}:{}", meta.len(), cfg.max_tokens).as_bytes())
            )
        };
        let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let threads = match cfg.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(Embedder {
            model,
            tokenizer,
            fingerprint: format!("bert:{name}:{digest}"),
            dim: config.hidden_size,
            batch_size: cfg.batch_size.max(1),
            threads,
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoding>, String> {
        self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| e.to_string())
    }

    /// candle's model over one batch, padded to its longest text.
    fn forward_candle(
        model: &BertModel,
        device: &Device,
        enc: &[Encoding],
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let n = enc.len();
        let len = enc.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let padded = |f: &dyn Fn(&Encoding) -> &[u32]| -> candle_core::Result<Tensor> {
            let mut v = vec![0u32; n * len];
            for (row, e) in v.chunks_exact_mut(len.max(1)).zip(enc) {
                row[..f(e).len()].copy_from_slice(f(e));
            }
            Tensor::from_vec(v, (n, len), device)
        };
        let ids = padded(&|e| e.get_ids())?;
        let types = padded(&|e| e.get_type_ids())?;
        let mask = padded(&|e| e.get_attention_mask())?;
        let hidden = model.forward(&ids, &types, Some(&mask))?; // (n, len, dim)
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, len, 1)
        let summed = hidden.broadcast_mul(&m)?.sum(1)?; // (n, dim)
        let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?; // (n, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        mean.broadcast_div(&norm)?.to_vec2::<f32>()
    }

    /// Vectors of `batches` (each a list of texts), in order: candle's batches one after
    /// another, native batches spread over the threads.
    fn forward(&self, batches: &[Vec<&str>]) -> Result<Vec<Vec<Vec<f32>>>, String> {
        let fail = |e: candle_core::Error| format!("embedding forward pass: {e}");
        match &self.model {
            Model::Candle(model, device) => batches
                .iter()
                .map(|b| Self::forward_candle(model, device, &self.tokenize(b)?).map_err(fail))
                .collect(),
            Model::Native(model) => {
                let run = |b: &Vec<&str>, scratch: &mut Scratch| -> Result<Vec<Vec<f32>>, String> {
                    let enc = self.tokenize(b)?;
                    let texts: Vec<(&[u32], &[u32])> =
                        enc.iter().map(|e| (e.get_ids(), e.get_type_ids())).collect();
                    model.embed(&texts, scratch).map_err(fail)
                };
                let threads = self.threads.min(batches.len()).max(1);
                if threads == 1 {
                    let mut scratch = Scratch::default();
                    return batches.iter().map(|b| run(b, &mut scratch)).collect();
                }
                let next = AtomicUsize::new(0);
                let mut done: Vec<(usize, Result<Vec<Vec<f32>>, String>)> = std::thread::scope(|s| {
                    let workers: Vec<_> = (0..threads)
                        .map(|_| {
                            s.spawn(|| {
                                let mut scratch = Scratch::default();
                                let mut mine = Vec::new();
                                loop {
                                    let i = next.fetch_add(1, Ordering::Relaxed);
                                    let Some(b) = batches.get(i) else { break mine };
                                    mine.push((i, run(b, &mut scratch)));
                                }
                            })
                        })
                        .collect();
                    workers.into_iter().flat_map(|w| w.join().expect("embedding thread panicked")).collect()
                });
                done.sort_by_key(|(i, _)| *i);
                done.into_iter().map(|(_, r)| r).collect()
            }
        }
    }

    /// Embeddings of `texts`, in order; from `memo` when there, else computed in chunks of
    /// `batch_size` and stored.
    pub fn embed(&self, texts: &[&str], memo: Option<&MemoCache>) -> Result<Vec<Vec<f32>>, String> {
        let keys: Vec<_> = texts.iter().map(|t| vector_key(&self.fingerprint, t)).collect();
        let mut out: Vec<Option<Vec<f32>>> = match memo {
            Some(m) => m.get_vectors(&keys),
            None => vec![None; texts.len()],
        };
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
        // A few batches per thread at a time, so the memo is written as the work goes.
        for group in missing.chunks(self.batch_size * self.threads * 4) {
            let chunks: Vec<&[usize]> = group.chunks(self.batch_size).collect();
            let batches: Vec<Vec<&str>> =
                chunks.iter().map(|c| c.iter().map(|&i| texts[i]).collect()).collect();
            for (chunk, vectors) in chunks.iter().zip(self.forward(&batches)?) {
                if let Some(m) = memo {
                    let entries: Vec<_> =
                        chunk.iter().zip(&vectors).map(|(&i, v)| (keys[i], v.as_slice())).collect();
                    if let Err(e) = m.put_vectors(&entries) {
                        tracing::warn!("embeddings not memoized: {e}");
                    }
                }
                for (&i, v) in chunk.iter().zip(vectors) {
                    out[i] = Some(v);
                }
            }
        }
        Ok(out.into_iter().map(|v| v.unwrap_or_default()).collect())
    }
}

/// Cosine similarity of two L2-normalized vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
