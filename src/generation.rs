//! Opening generators by what users name: a model name from `xinst models list`, a local path
//! (GGUF file, directory with a GGUF, or a Hugging Face snapshot), a Hugging Face Hub id, or the
//! URL of an OpenAI-compatible server.

use anyhow::{anyhow, Result};
use std::sync::Arc;
use xinstruct_operators::generate::{
    CandleGenerator, EngineConfig, Generator, OpenAiConfig, OpenAiGenerator,
};

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
/// The server's model id is `openai.model`, or asked of the server (`GET /models`) when empty.
pub fn open(model: &str, engine: &EngineConfig, openai: &OpenAiConfig) -> Result<Arc<dyn Generator>> {
    if model.starts_with("http://") || model.starts_with("https://") {
        let mut cfg = OpenAiConfig { base_url: model.trim_end_matches('/').to_string(), ..openai.clone() };
        let probe = OpenAiGenerator::new(cfg.clone()).map_err(|e| anyhow!("{e}"))?;
        if cfg.model.is_empty() {
            cfg.model = probe.discover_model().map_err(|e| anyhow!("{e}"))?;
        }
        return Ok(Arc::new(OpenAiGenerator::new(cfg).map_err(|e| anyhow!("{e}"))?));
    }
    Ok(open_local(model, engine)?)
}
