//! Opening generators by what users name: a model name from `xinst models list`, a local path
//! (GGUF file, directory with a GGUF, or a Hugging Face snapshot), a Hugging Face Hub id, or the
//! URL of an OpenAI-compatible server.

use crate::config::{is_url, ModelRef};
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
    if is_url(model) {
        return open_pool(&[model.to_string()], openai);
    }
    Ok(open_local(model, engine)?)
}

/// Opens what the config names: one model, or a pool of OpenAI-compatible servers.
pub fn open_ref(
    model: &ModelRef,
    engine: &EngineConfig,
    openai: &OpenAiConfig,
) -> Result<Arc<dyn Generator>> {
    match model.0.as_slice() {
        [] => Err(anyhow!("no model named")),
        [one] => open(one, engine, openai),
        pool => open_pool(pool, openai),
    }
}

/// A client of one server or a pool. With `openai.model` empty the model id is asked of the
/// servers; a pool's servers that answer must all name the same model (a pool of different
/// models would mix their answers in one dataset). A server down at the start is no error
/// while another answers: the pool probes it back in.
fn open_pool(urls: &[String], openai: &OpenAiConfig) -> Result<Arc<dyn Generator>> {
    let urls: Vec<String> = urls.iter().map(|u| u.trim_end_matches('/').to_string()).collect();
    let mut cfg = OpenAiConfig { base_url: urls[0].clone(), ..openai.clone() };
    let probe = OpenAiGenerator::pool(cfg.clone(), urls.clone()).map_err(|e| anyhow!("{e}"))?;
    if cfg.model.is_empty() {
        cfg.model = match urls.as_slice() {
            [_] => probe.discover_model().map_err(|e| anyhow!("{e}"))?,
            _ => pool_model(&probe, &urls)?,
        };
    }
    Ok(Arc::new(OpenAiGenerator::pool(cfg, urls).map_err(|e| anyhow!("{e}"))?))
}

/// The model id a pool's servers name (`GET /models` of each): servers that answer must agree;
/// one that does not answer yet is no error while another does.
fn pool_model(probe: &OpenAiGenerator, urls: &[String]) -> Result<String> {
    let mut model: Option<String> = None;
    let mut first_error = None;
    for url in urls {
        match probe.model_of(url) {
            Ok(id) => match &model {
                Some(m) if *m != id => {
                    return Err(anyhow!(
                        "the pool's servers serve different models: {url} serves {id:?}, another {m:?} \
                         (set [openai] model to pick one)"
                    ))
                }
                Some(_) => {}
                None => model = Some(id),
            },
            Err(e) => {
                tracing::warn!("{url} does not answer yet ({e}); the pool will probe it");
                first_error.get_or_insert(e);
            }
        }
    }
    model.ok_or_else(|| anyhow!("{}", first_error.map_or_else(|| "no server".to_string(), |e| e.to_string())))
}
