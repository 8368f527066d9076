//! `embed`: sentence embeddings with a BERT-family encoder on candle (all-MiniLM-L6-v2 by
//! default, or any BERT snapshot directory with `config.json`, `model.safetensors` and
//! `tokenizer.json`): batched, attention-mask-weighted mean pooling, L2-normalized — what
//! sentence-transformers computes for these models. Embeddings are memoized in the memo cache.
//!
//! Batches are fixed chunks of the input in its given order, so the result does not depend on
//! how many threads share the work (each chunk is padded to its own longest text).

use crate::generate::memo::{vector_key, MemoCache};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

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
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig { model: "all-minilm-l6-v2".into(), batch_size: 32, max_tokens: 256 }
    }
}

pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    fingerprint: String,
    pub dim: usize,
    batch_size: usize,
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
        let model = BertModel::load(vb, &config).map_err(|e| format!("{}: {e}", weights.display()))?;
        let tok_path = file("tokenizer.json")?;
        let mut tokenizer =
            Tokenizer::from_file(&tok_path).map_err(|e| format!("{}: {e}", tok_path.display()))?;
        // The file pads every text to 128; pad each batch to its longest text instead (the
        // attention mask keeps padding out of the result either way).
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
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
        Ok(Embedder {
            model,
            tokenizer,
            device: device.clone(),
            fingerprint: format!("bert:{name}:{digest}"),
            dim: config.hidden_size,
            batch_size: cfg.batch_size.max(1),
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// One forward pass over a batch.
    fn forward(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let enc = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| e.to_string())?;
        let n = enc.len();
        let len = enc.first().map_or(0, |e| e.get_ids().len());
        let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            enc.iter().flat_map(|e| f(e).iter().copied()).collect()
        };
        let t = |v: Vec<u32>| Tensor::from_vec(v, (n, len), &self.device).map_err(|e| e.to_string());
        let ids = t(flat(&|e| e.get_ids()))?;
        let types = t(flat(&|e| e.get_type_ids()))?;
        let mask = t(flat(&|e| e.get_attention_mask()))?;
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let hidden = self.model.forward(&ids, &types, Some(&mask))?; // (n, len, dim)
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (n, len, 1)
            let summed = hidden.broadcast_mul(&m)?.sum(1)?; // (n, dim)
            let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?; // (n, 1)
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        };
        run().map_err(|e| format!("embedding forward pass: {e}"))
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
        for chunk in missing.chunks(self.batch_size) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            let vectors = self.forward(&batch)?;
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
        Ok(out.into_iter().map(|v| v.unwrap_or_default()).collect())
    }
}

/// Cosine similarity of two L2-normalized vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
