//! A client for OpenAI-compatible servers (vLLM, TGI, llama.cpp server, Ollama, `xinst serve`):
//! `/v1/completions` for text prompts and `/v1/chat/completions` for chat prompts, one server
//! or a pool of servers serving the same model ([`super::pool`]: least outstanding requests,
//! a document's requests kept on one server, per-server health), limits on requests in flight
//! per server and over the pool (semaphores per generator, so they hold across every operator
//! and caller thread of the process that shares it), a timeout per request, retries with
//! exponential backoff and full jitter on 429, 5xx, timeouts and connection errors (honouring
//! `Retry-After` up to a cap), a failed request tried on another server first, and a circuit
//! breaker per server ([`super::breaker`]): when every server is down, requests wait for one
//! to come back (one probe at a time each) instead of failing one by one.

use super::breaker::BreakerConfig;
use super::pool::{Done, EndpointState, Route, Router};
use super::{Completion, FinishReason, GenError, GenOutcome, GenRequest, Generator, Prompt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiConfig {
    /// e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    /// The server's model id.
    pub model: String,
    /// Environment variable holding the API key (sent as a bearer token when set).
    pub api_key_env: String,
    /// Requests in flight at most per server, over all operators and threads of the process.
    pub concurrency: usize,
    /// Requests in flight at most over a pool of servers (0: `concurrency` × servers).
    pub pool_concurrency: usize,
    pub timeout_secs: u64,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff; doubles each retry (full jitter), capped at 30 s.
    pub backoff_ms: u64,
    /// The longest a server's `Retry-After` is honoured (seconds); longer asks wait this long.
    pub max_retry_after_secs: u64,
    /// Send the evaluator's JSON schema as `response_format` (`json_schema`), which vLLM's and
    /// llama.cpp's servers enforce with constrained decoding. Turn off for servers that refuse
    /// the field.
    pub structured_output: bool,
    /// Attempts in a row (retries included, over all requests) that fail for the server's
    /// reasons before the circuit breaker opens: requests then wait while one probe at a time
    /// tries the server. 0 turns the breaker off.
    pub breaker_failures: u32,
    /// How long requests wait for a server that is down before they fail (their documents
    /// then await the model: the next run retries them).
    pub max_outage_secs: u64,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            base_url: "http://127.0.0.1:8000/v1".into(),
            model: String::new(),
            api_key_env: "OPENAI_API_KEY".into(),
            concurrency: 8,
            pool_concurrency: 0,
            timeout_secs: 120,
            retries: 4,
            backoff_ms: 500,
            max_retry_after_secs: 60,
            structured_output: true,
            breaker_failures: 5,
            max_outage_secs: 120,
        }
    }
}

pub struct OpenAiGenerator {
    cfg: OpenAiConfig,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
    key: Option<String>,
    /// The servers' base URLs (`http://host:port/v1`), in the order the router numbers them.
    urls: Vec<String>,
    /// Permits for requests in flight over the pool (`pool_concurrency`), then per server
    /// (`concurrency`); held while a request is out, not while it waits to be retried.
    in_flight: Arc<tokio::sync::Semaphore>,
    total_limit: usize,
    per_server: Vec<Arc<tokio::sync::Semaphore>>,
    router: std::sync::Mutex<Router>,
    /// Requests sent, including retries (for stats and tests).
    pub attempts: Arc<std::sync::atomic::AtomicU64>,
}

impl OpenAiGenerator {
    /// A client of the one server at `cfg.base_url`.
    pub fn new(cfg: OpenAiConfig) -> Result<OpenAiGenerator, GenError> {
        let url = cfg.base_url.clone();
        OpenAiGenerator::pool(cfg, vec![url])
    }

    /// A client of a pool of servers serving the same model (`urls`: their base URLs).
    pub fn pool(cfg: OpenAiConfig, urls: Vec<String>) -> Result<OpenAiGenerator, GenError> {
        let urls: Vec<String> = urls.iter().map(|u| u.trim_end_matches('/').to_string()).collect();
        if urls.is_empty() {
            return Err(GenError::Model("a pool of model servers needs at least one URL".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| GenError::Model(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| GenError::Model(e.to_string()))?;
        let key = std::env::var(&cfg.api_key_env).ok().filter(|k| !k.is_empty());
        let per = cfg.concurrency.max(1);
        let total_limit = match cfg.pool_concurrency {
            0 => per * urls.len(),
            n => n,
        };
        let in_flight = Arc::new(tokio::sync::Semaphore::new(total_limit));
        let per_server = urls.iter().map(|_| Arc::new(tokio::sync::Semaphore::new(per))).collect();
        let breaker = BreakerConfig {
            failures: cfg.breaker_failures,
            max_outage: Duration::from_secs(cfg.max_outage_secs),
            probe_interval: Duration::from_secs(1),
            max_probe_interval: Duration::from_secs(30),
        };
        let router = std::sync::Mutex::new(Router::new(urls.clone(), per, breaker));
        Ok(OpenAiGenerator {
            cfg,
            client,
            rt,
            key,
            urls,
            in_flight,
            total_limit,
            per_server,
            router,
            attempts: Default::default(),
        })
    }

    fn router(&self) -> std::sync::MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first server's first model id from `GET /models`; a clear error when unreachable.
    pub fn discover_model(&self) -> Result<String, GenError> {
        self.model_of(&self.urls[0])
    }

    /// The first model id of the server at `base` (`GET {base}/models`).
    pub fn model_of(&self, base: &str) -> Result<String, GenError> {
        let url = format!("{base}/models");
        self.rt.block_on(async {
            let mut req = self.client.get(&url);
            if let Some(k) = &self.key {
                req = req.bearer_auth(k);
            }
            let resp = req.send().await.map_err(|e| classify(&url, e, self.cfg.timeout_secs))?;
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            if status != 200 {
                return Err(GenError::Http { url: url.clone(), status, body: clip(&body) });
            }
            let v: Value =
                serde_json::from_str(&body).map_err(|e| GenError::BadResponse(format!("{url}: {e}")))?;
            v["data"][0]["id"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| GenError::BadResponse(format!("{url}: no data[0].id")))
        })
    }

    /// The request's path under a server's base URL and its JSON body.
    fn body(&self, req: &GenRequest) -> (&'static str, Value) {
        let p = &req.params;
        let mut body = json!({
            "model": self.cfg.model,
            "max_tokens": p.max_new_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "seed": p.seed,
        });
        // Not in OpenAI's API, but vLLM, llama.cpp and xinst serve take them.
        if p.top_k > 0 {
            body["top_k"] = json!(p.top_k);
        }
        if p.repeat_penalty != 1.0 {
            body["repetition_penalty"] = json!(p.repeat_penalty);
            body["repeat_penalty"] = json!(p.repeat_penalty);
        }
        if p.no_repeat_ngram_size > 0 {
            body["no_repeat_ngram_size"] = json!(p.no_repeat_ngram_size);
        }
        // Whitespace-only stops would end an answer that starts with a blank line; they are
        // applied here after the reply instead (see `SamplingParams::stop`).
        let server_stops: Vec<&String> = p.stop.iter().filter(|s| !s.trim().is_empty()).collect();
        if !server_stops.is_empty() {
            body["stop"] = json!(server_stops);
        }
        if let Some(schema) = p.json_schema.as_deref().filter(|_| self.cfg.structured_output) {
            let schema: Value = serde_json::from_str(schema).unwrap_or(Value::Null);
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": "verdict", "schema": schema, "strict": true},
            });
        }
        match &req.prompt {
            Prompt::Text(t) => {
                body["prompt"] = json!(t);
                ("completions", body)
            }
            Prompt::Chat(m) => {
                body["messages"] = json!(m);
                ("chat/completions", body)
            }
        }
    }

    async fn once(&self, url: &str, body: &Value) -> Result<Completion, (GenError, Option<Duration>)> {
        self.attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut req = self.client.post(url).json(body);
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| (classify(url, e, self.cfg.timeout_secs), None))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.map_err(|e| (classify(url, e, self.cfg.timeout_secs), None))?;
        if status != 200 {
            return Err((GenError::Http { url: url.to_string(), status, body: clip(&text) }, retry_after));
        }
        parse_completion(&text).map_err(|e| (GenError::BadResponse(format!("{url}: {e}")), None))
    }

    async fn call(&self, req: GenRequest) -> GenOutcome {
        if req.prompt.is_empty() {
            return Err(GenError::EmptyPrompt);
        }
        let (path, body) = self.body(&req);
        let servers = self.urls.len();
        // Retries (with backoff) and fail-overs (at once, to another server that is up) since
        // the last backoff; the server the request last failed on.
        let (mut attempt, mut failovers, mut avoid) = (0, 0, None);
        loop {
            let Ok(pool_permit) = self.in_flight.acquire().await else { return Err(GenError::Closed) };
            let route = self.router().route(Instant::now(), req.affinity, avoid);
            let (server, probe) = match route {
                Route::Send { endpoint, probe } => (endpoint, probe),
                Route::Wait(d) => {
                    drop(pool_permit);
                    tokio::time::sleep(d).await;
                    continue;
                }
                Route::FailFast(detail) => {
                    let url = match servers {
                        1 => format!("{}/{path}", self.urls[0]),
                        _ => self.urls.join(", "),
                    };
                    return Err(GenError::Unreachable { url, detail });
                }
            };
            let url = format!("{}/{path}", self.urls[server]);
            let Ok(server_permit) = self.per_server[server].acquire().await else {
                self.router().done(server, probe, Instant::now(), Done::Abandoned);
                return Err(GenError::Closed);
            };
            let sent = self.once(&url, &body).await;
            drop((server_permit, pool_permit));
            let (e, retry_after) = match sent {
                Ok(mut c) => {
                    self.router().done(server, probe, Instant::now(), Done::Answered);
                    if let Some(at) = super::sampling::find_stop(&c.text, &req.params.stop) {
                        c.text.truncate(at);
                        c.finish = super::FinishReason::Stop;
                    }
                    return Ok(c);
                }
                Err(failed) => failed,
            };
            if !e.transient() {
                // The server answered; the request was at fault.
                self.router().done(server, probe, Instant::now(), Done::Answered);
                return Err(e);
            }
            let (pool_down, other_up) = {
                let mut router = self.router();
                router.done(server, probe, Instant::now(), Done::Failed(&e.to_string()));
                let this_up = !router.is_down(server) as usize;
                (router.down_since().is_some(), router.up() > this_up)
            };
            avoid = Some(server);
            if pool_down {
                // Every server looks down: wait for one with the others rather than fail now
                // (the router fails the wait after max_outage_secs); once one is back the
                // request gets its retries again.
                (attempt, failovers) = (0, 0);
                continue;
            }
            if other_up && failovers < servers {
                // Another server is up: try it now rather than wait out a backoff here.
                failovers += 1;
                continue;
            }
            if e.retryable() && attempt < self.cfg.retries {
                let cap = (self.cfg.backoff_ms.saturating_mul(1 << attempt.min(16))).min(30_000);
                let jitter = rand::rng().random_range(0..=cap);
                let cap_after = Duration::from_secs(self.cfg.max_retry_after_secs);
                let wait = retry_after.map_or(Duration::from_millis(jitter), |d| d.min(cap_after));
                tracing::debug!("retrying {url} in {wait:?} after: {e}");
                tokio::time::sleep(wait).await;
                (attempt, failovers) = (attempt + 1, 0);
                continue;
            }
            return Err(e);
        }
    }
}

fn clip(s: &str) -> String {
    let mut end = s.len().min(300);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn classify(url: &str, e: reqwest::Error, timeout: u64) -> GenError {
    if e.is_timeout() {
        GenError::Timeout(timeout)
    } else {
        let mut detail = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            detail = format!("{detail}: {s}");
            src = s.source();
        }
        GenError::Unreachable { url: url.to_string(), detail }
    }
}

/// Reads a completion or chat completion response.
pub fn parse_completion(text: &str) -> Result<Completion, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {}", clip(text)))?;
    let choice = v["choices"].get(0).ok_or_else(|| format!("no choices[0]: {}", clip(text)))?;
    let out = choice["text"]
        .as_str()
        .or_else(|| choice["message"]["content"].as_str())
        .ok_or_else(|| format!("choices[0] has no text or message.content: {}", clip(text)))?;
    let finish = match choice["finish_reason"].as_str() {
        Some("length") => FinishReason::Length,
        _ => FinishReason::Stop,
    };
    let usage = |k: &str| v["usage"][k].as_u64().unwrap_or(0) as usize;
    Ok(Completion {
        text: out.to_string(),
        prompt_tokens: usage("prompt_tokens"),
        completion_tokens: usage("completion_tokens"),
        finish,
        truncated_prompt_tokens: usage("truncated_prompt_tokens"),
        // vLLM (automatic prefix caching) and OpenAI report it here.
        cached_prompt_tokens: v["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0)
            as usize,
    })
}

impl Generator for OpenAiGenerator {
    /// One server: its URL and model id. A pool: the model id only, so that adding or
    /// removing a server keeps the memo and the dataset (the servers must serve one model).
    fn fingerprint(&self) -> String {
        match self.urls.as_slice() {
            [one] => format!("openai:{one}:{}", self.cfg.model),
            _ => format!("openai-pool:{}", self.cfg.model),
        }
    }
    fn name(&self) -> String {
        self.cfg.model.clone()
    }
    fn json_schema(&self) -> bool {
        self.cfg.structured_output
    }
    fn outage(&self) -> Option<String> {
        let router = self.router();
        let since = router.down_since()?;
        let which = match self.urls.as_slice() {
            [one] => format!("model server {one}"),
            all => format!("every model server of the pool ({})", all.len()),
        };
        Some(format!("{which} down for {} s ({})", since.elapsed().as_secs(), router.last_error()))
    }
    fn endpoints(&self) -> Vec<EndpointState> {
        self.router().states()
    }
    fn generate(&self, batch: Vec<GenRequest>) -> Vec<GenOutcome> {
        use futures_util::StreamExt;
        let limit = self.total_limit;
        self.rt.block_on(async {
            let mut results: Vec<(usize, GenOutcome)> =
                futures_util::stream::iter(batch.into_iter().enumerate())
                    .map(|(i, r)| async move { (i, self.call(r).await) })
                    .buffer_unordered(limit)
                    .collect()
                    .await;
            results.sort_by_key(|(i, _)| *i);
            results.into_iter().map(|(_, r)| r).collect()
        })
    }
}
