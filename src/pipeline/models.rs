//! Loading the models a run uses, once per process: the language-ID model, the generator and
//! the evaluator, and the memo cache.

use super::RunOptions;
use crate::config::{Config, OperatorName};
use crate::settings::ModelIds;
use crate::store::Store;
use anyhow::{anyhow, Context, Result};
use std::sync::Arc;
use xinstruct_operators::generate::{Generator, MemoCache};
use xinstruct_operators::instruct::StageModels;
use xinstruct_operators::lang_id::{Backend, LangIdentifier};

/// Loads the language-ID model once per process, fetching lid.176 into the model cache when
/// the config names no model file.
pub(super) fn load_lang_id(config: &Config) -> Result<Option<Arc<LangIdentifier>>> {
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
pub(super) fn open_models(config: &Config) -> Result<(Arc<dyn Generator>, Arc<dyn Generator>)> {
    let cfg = &config.instruct;
    let generator = crate::generation::open_ref(&cfg.generator, &config.engine, &config.openai)
        .with_context(|| format!("[instruct] generator = {}", cfg.generator))?;
    let evaluator = if cfg.evaluator.is_empty() || cfg.evaluator == cfg.generator {
        generator.clone()
    } else {
        crate::generation::open_ref(&cfg.evaluator, &config.engine, &config.openai)
            .with_context(|| format!("[instruct] evaluator = {}", cfg.evaluator))?
    };
    Ok((generator, evaluator))
}

/// Loads the X-Instruction stages' generator and evaluator (once per process; the evaluator is
/// the generator unless the config names another) and opens the memo cache.
pub(super) fn load_models(opts: &RunOptions, output: &Store) -> Result<Option<StageModels>> {
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
