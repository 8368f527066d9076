//! `xinst serve`: the candle engine behind an OpenAI-compatible HTTP API, so one GPU box can
//! serve many pipelines. Concurrent requests share the engine's continuous batches.
//!
//! Endpoints: `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions`,
//! `GET /health`. Besides OpenAI's fields, requests may set `top_k`, `repetition_penalty` and
//! `no_repeat_ngram_size`. Streaming is not offered (`stream: true` is refused).

use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::sync::Arc;
use xinstruct_operators::generate::{
    CandleGenerator, GenError, GenRequest, Generator, Message, Prompt, SamplingParams,
};

pub struct Server {
    http: tiny_http::Server,
    gen: Arc<CandleGenerator>,
    model_id: String,
}

impl Server {
    pub fn bind(addr: &str, gen: Arc<CandleGenerator>) -> Result<Server> {
        let http = tiny_http::Server::http(addr).map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
        let model_id = gen.name();
        Ok(Server { http, gen, model_id })
    }

    pub fn local_addr(&self) -> String {
        match self.http.server_addr() {
            tiny_http::ListenAddr::IP(a) => a.to_string(),
            other => format!("{other:?}"),
        }
    }

    /// Serves until the process ends: a thread per request (the engine does the batching).
    pub fn run(self) -> Result<()> {
        let shared = Arc::new(self);
        for request in shared.http.incoming_requests() {
            let me = shared.clone();
            std::thread::spawn(move || me.handle(request));
        }
        Ok(())
    }

    fn handle(&self, mut request: tiny_http::Request) {
        let path = request.url().split('?').next().unwrap_or("").to_string();
        let method = request.method().clone();
        let (status, body) = match (method, path.as_str()) {
            (tiny_http::Method::Get, "/health") => (200, json!({"status": "ok"})),
            (tiny_http::Method::Get, "/v1/models") => (
                200,
                json!({"object": "list", "data": [{"id": self.model_id, "object": "model", "owned_by": "xinstruct"}]}),
            ),
            (tiny_http::Method::Post, "/v1/completions" | "/v1/chat/completions") => {
                let mut raw = String::new();
                match std::io::Read::read_to_string(request.as_reader(), &mut raw) {
                    Ok(_) => self.complete(&path, &raw),
                    Err(e) => (400, error_body(&format!("reading body: {e}"))),
                }
            }
            _ => (404, error_body(&format!("no route {path}"))),
        };
        let header =
            tiny_http::Header::from_bytes("Content-Type", "application/json").expect("static header");
        let resp =
            tiny_http::Response::from_string(body.to_string()).with_status_code(status).with_header(header);
        let _ = request.respond(resp);
    }

    fn complete(&self, path: &str, raw: &str) -> (u16, Value) {
        let chat = path.ends_with("chat/completions");
        let req = match parse_request(raw, chat) {
            Ok(r) => r,
            Err(e) => return (400, error_body(&e)),
        };
        let out = self.gen.generate(vec![req]).pop().unwrap_or(Err(GenError::Closed));
        match out {
            Ok(c) => {
                let choice = if chat {
                    json!({"index": 0, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish.as_str()})
                } else {
                    json!({"index": 0, "text": c.text, "finish_reason": c.finish.as_str()})
                };
                let created = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                (
                    200,
                    json!({
                        "id": format!("xinst-{created}-{}", next_id()),
                        "object": if chat { "chat.completion" } else { "text_completion" },
                        "created": created,
                        "model": self.model_id,
                        "choices": [choice],
                        "usage": {
                            "prompt_tokens": c.prompt_tokens,
                            "completion_tokens": c.completion_tokens,
                            "total_tokens": c.prompt_tokens + c.completion_tokens,
                            "truncated_prompt_tokens": c.truncated_prompt_tokens,
                        }
                    }),
                )
            }
            Err(GenError::EmptyPrompt) => (400, error_body("empty prompt")),
            Err(e) => (500, error_body(&e.to_string())),
        }
    }
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn error_body(message: &str) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error"}})
}

/// An OpenAI request body → a generation request (OpenAI's defaults: temperature 1, top_p 1).
pub fn parse_request(raw: &str, chat: bool) -> std::result::Result<GenRequest, String> {
    let v: Value = serde_json::from_str(raw).map_err(|e| format!("body is not JSON: {e}"))?;
    if v["stream"].as_bool() == Some(true) {
        return Err("stream: true is not supported".into());
    }
    let prompt = if chat {
        let msgs: Vec<Message> = serde_json::from_value(v["messages"].clone())
            .map_err(|e| format!("messages must be [{{role, content}}]: {e}"))?;
        Prompt::Chat(msgs)
    } else {
        match &v["prompt"] {
            Value::String(s) => Prompt::Text(s.clone()),
            Value::Array(a) if a.len() == 1 && a[0].is_string() => {
                Prompt::Text(a[0].as_str().unwrap_or("").into())
            }
            _ => return Err("prompt must be a string".into()),
        }
    };
    let f = |k: &str, d: f64| v[k].as_f64().unwrap_or(d);
    let stop = match &v["stop"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|s| s.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    };
    let params = SamplingParams {
        temperature: f("temperature", 1.0) as f32,
        top_p: f("top_p", 1.0) as f32,
        top_k: v["top_k"].as_u64().unwrap_or(0) as usize,
        repeat_penalty: v["repetition_penalty"].as_f64().or(v["repeat_penalty"].as_f64()).unwrap_or(1.0)
            as f32,
        no_repeat_ngram_size: v["no_repeat_ngram_size"].as_u64().unwrap_or(0) as usize,
        max_new_tokens: v["max_tokens"].as_u64().or(v["max_completion_tokens"].as_u64()).unwrap_or(16)
            as usize,
        stop,
        seed: v["seed"].as_u64().unwrap_or(0),
        ..SamplingParams::default()
    };
    Ok(GenRequest { prompt, params })
}

/// Binds, prints the address and serves (for the CLI).
pub fn serve(model: &str, addr: &str, engine: &xinstruct_operators::generate::EngineConfig) -> Result<()> {
    let gen = crate::generation::open_local(model, engine).context("loading the model")?;
    let server = Server::bind(addr, gen)?;
    println!("xinst serve: model {} on http://{}/v1", server.model_id, server.local_addr());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    server.run()
}
