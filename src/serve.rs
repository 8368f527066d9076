//! `xinst serve`: the candle engine behind an OpenAI-compatible HTTP API, so one GPU box can
//! serve many pipelines. Concurrent requests share the engine's continuous batches.
//!
//! Endpoints: `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions`,
//! `GET /health`, `GET /metrics` (Prometheus text: completion requests in flight, the most at
//! once, answered; what a client's concurrency limit is checked against). Besides OpenAI's fields, requests may set `top_k`, `repetition_penalty` and
//! `no_repeat_ngram_size`. Streaming is not offered (`stream: true` is refused).

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use xinstruct_operators::generate::{
    CandleGenerator, GenError, GenRequest, Generator, Message, Prompt, SamplingParams,
};

/// Limits that keep the server up whatever its clients send (defaults: the CLI's flags).
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// Connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// A client must send a request's headers, and its body, within this long.
    pub read_timeout: Duration,
    /// Requests must carry `Authorization: Bearer <key>` (all but `/health`).
    pub api_key: Option<String>,
}

pub struct Server {
    gen: Arc<CandleGenerator>,
    model_id: String,
    cfg: ServeConfig,
    /// Generations waiting or running at once: the engine batches at most `max_batch`, the
    /// rest wait here in async land rather than on threads.
    generating: tokio::sync::Semaphore,
    metrics: Metrics,
}

/// Completion requests as the server sees them.
#[derive(Default)]
struct Metrics {
    in_flight: std::sync::atomic::AtomicU64,
    most_in_flight: std::sync::atomic::AtomicU64,
    answered: std::sync::atomic::AtomicU64,
}

/// One completion request being handled: counted in flight until dropped.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn new(m: &'a Metrics) -> InFlight<'a> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = m.in_flight.fetch_add(1, SeqCst) + 1;
        m.most_in_flight.fetch_max(now, SeqCst);
        InFlight(m)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Metrics {
    /// Prometheus's text format.
    fn render(&self) -> String {
        use std::sync::atomic::Ordering::SeqCst;
        [
            ("xinst_requests_in_flight", "gauge", "Completion requests being handled now.", &self.in_flight),
            (
                "xinst_requests_in_flight_max",
                "gauge",
                "The most completion requests handled at once since the start.",
                &self.most_in_flight,
            ),
            (
                "xinst_requests_answered_total",
                "counter",
                "Completion requests answered with 200.",
                &self.answered,
            ),
        ]
        .iter()
        .map(|(name, kind, help, v)| {
            format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n", v.load(SeqCst))
        })
        .collect()
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: u16, body: Value) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    resp
}

impl Server {
    pub fn new(gen: Arc<CandleGenerator>, cfg: ServeConfig) -> Server {
        let model_id = gen.name();
        let generating = tokio::sync::Semaphore::new(4 * gen.max_batch().max(1));
        Server { gen, model_id, cfg, generating, metrics: Metrics::default() }
    }

    /// Accepts connections until the process ends: each is served by hyper (HTTP/1.1) on a
    /// small runtime, within the connection limit and the read timeout.
    pub async fn run(self: Arc<Self>, listener: tokio::net::TcpListener) -> Result<()> {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.cfg.max_connections.max(1)));
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(
                    "connection limit ({}) reached: closing a new connection",
                    self.cfg.max_connections
                );
                drop(stream);
                continue;
            };
            let me = self.clone();
            let timeout = self.cfg.read_timeout;
            tokio::spawn(async move {
                let _permit = permit;
                let service = hyper::service::service_fn(move |req| {
                    let me = me.clone();
                    async move { Ok::<_, std::convert::Infallible>(me.handle(req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(timeout)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let _ = conn.await;
            });
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Reply {
        let path = req.uri().path().to_string();
        if path != "/health" {
            if let Some(key) = &self.cfg.api_key {
                let given = req
                    .headers()
                    .get(hyper::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                if given != Some(key.as_str()) {
                    return reply(401, error_body("missing or wrong bearer token"));
                }
            }
        }
        match (req.method(), path.as_str()) {
            (&Method::GET, "/health") => reply(200, json!({"status": "ok"})),
            (&Method::GET, "/metrics") => {
                let mut resp = Response::new(Full::new(Bytes::from(self.metrics.render())));
                resp.headers_mut().insert(
                    "content-type",
                    hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                resp
            }
            (&Method::GET, "/v1/models") => reply(
                200,
                json!({"object": "list", "data": [{"id": self.model_id, "object": "model", "owned_by": "xinstruct"}]}),
            ),
            (&Method::POST, "/v1/completions" | "/v1/chat/completions") => {
                let _counted = InFlight::new(&self.metrics);
                let max = self.cfg.max_body_bytes;
                let declared = req
                    .headers()
                    .get(hyper::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                if declared.is_some_and(|n| n > max as u64) {
                    return reply(413, error_body(&format!("request body over {max} bytes")));
                }
                let read =
                    tokio::time::timeout(self.cfg.read_timeout, Limited::new(req.into_body(), max).collect());
                let raw = match read.await {
                    Err(_) => return reply(408, error_body("the request body did not arrive in time")),
                    Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                        return reply(413, error_body(&format!("request body over {max} bytes")))
                    }
                    Ok(Err(e)) => return reply(400, error_body(&format!("reading body: {e}"))),
                    Ok(Ok(body)) => body.to_bytes(),
                };
                match std::str::from_utf8(&raw) {
                    Ok(text) => self.complete(&path, text).await,
                    Err(e) => reply(400, error_body(&format!("body is not UTF-8: {e}"))),
                }
            }
            _ => reply(404, error_body(&format!("no route {path}"))),
        }
    }

    async fn complete(&self, path: &str, raw: &str) -> Reply {
        let chat = path.ends_with("chat/completions");
        let mut req = match parse_request(raw, chat) {
            Ok(r) => r,
            Err(e) => return reply(400, error_body(&e)),
        };
        // A request cannot ask for more than the context holds (100 M tokens would size a
        // KV cache of 100 GB).
        req.params.max_new_tokens = req.params.max_new_tokens.min(self.gen.context());
        let Ok(_turn) = self.generating.acquire().await else {
            return reply(503, error_body("shutting down"));
        };
        let gen = self.gen.clone();
        let out = tokio::task::spawn_blocking(move || gen.generate(vec![req]).pop())
            .await
            .ok()
            .flatten()
            .unwrap_or(Err(GenError::Closed));
        match out {
            Ok(c) => {
                self.metrics.answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let choice = if chat {
                    json!({"index": 0, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish.as_str()})
                } else {
                    json!({"index": 0, "text": c.text, "finish_reason": c.finish.as_str()})
                };
                let created = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                reply(
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
                            "prompt_tokens_details": {"cached_tokens": c.cached_prompt_tokens},
                        }
                    }),
                )
            }
            Err(GenError::EmptyPrompt) => reply(400, error_body("empty prompt")),
            Err(e @ GenError::InvalidPrompt(_)) => reply(400, error_body(&e.to_string())),
            Err(e) => reply(500, error_body(&e.to_string())),
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
    Ok(GenRequest::new(prompt, params))
}

/// Binds, prints the address and serves (for the CLI).
pub fn serve(
    model: &str,
    addr: &str,
    engine: &xinstruct_operators::generate::EngineConfig,
    cfg: ServeConfig,
) -> Result<()> {
    let gen = crate::generation::open_local(model, engine).context("loading the model")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .context("starting the server runtime")?;
    rt.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
        let local = listener.local_addr()?;
        if !local.ip().is_loopback() && cfg.api_key.is_none() {
            eprintln!(
                "warning: serving on {local} without authentication: anyone who reaches it can use the model; \
                 pass --api-key-env VAR (clients send the key as a bearer token)"
            );
        }
        let server = Arc::new(Server::new(gen, cfg));
        println!("xinst serve: model {} on http://{local}/v1", server.model_id);
        use std::io::Write;
        let _ = std::io::stdout().flush();
        server.run(listener).await
    })
}
