//! Opening generators by what users name: a model name from `xinst models list`, a local path
//! (GGUF file, directory with a GGUF, or a Hugging Face snapshot), a Hugging Face Hub id, or the
//! URL of an OpenAI-compatible server.

use anyhow::{anyhow, Result};
use std::sync::Arc;
use xinstruct_operators::generate::{CandleGenerator, EngineConfig, Generator};

/// Opens a local model on the candle engine.
pub fn open_local(model: &str, engine: &EngineConfig) -> Result<Arc<CandleGenerator>> {
    let path = crate::models::resolve(model)?;
    let display =
        crate::models::spec(model).map(|s| s.name.to_string()).unwrap_or_else(|_| model.to_string());
    let gen =
        CandleGenerator::load(&path, &display, engine).map_err(|e| anyhow!("loading model {model}: {e}"))?;
    Ok(Arc::new(gen))
}

/// Opens a generator: `http(s)://…` is an OpenAI-compatible server, anything else a local model.
pub fn open(model: &str, engine: &EngineConfig) -> Result<Arc<dyn Generator>> {
    Ok(open_local(model, engine)?)
}
