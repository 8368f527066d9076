//! A client for OpenAI-compatible servers (vLLM, TGI, llama.cpp server, Ollama, `xinst serve`):
//! `/v1/completions` for text prompts and `/v1/chat/completions` for chat prompts, a limit on
//! requests in flight (one semaphore per generator, so it holds across every operator and
//! caller thread of the process that shares it), a timeout per request, and retries with
//! exponential backoff and full jitter on 429, 5xx, timeouts and connection errors (honouring
//! `Retry-After` up to a cap), and a circuit breaker ([`super::breaker`]): when the server is
//! down, requests wait for it (one probe at a time) instead of failing one by one.

use super::breaker::{Admit, Breaker, BreakerConfig};
use super::{Completion, FinishReason, GenError, GenOutcome, GenRequest, Generator, Prompt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiConfig {
    /// e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    /// The server's model id.
    pub model: String,
    /// Environment variable holding the API key (sent as a bearer token when set).
    pub api_key_env: String,
    /// Requests in flight at most, over all operators and threads of the process.
    pub concurrency: usize,
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
    /// Permits for requests in flight (`concurrency`); held while a request is out, not while
    /// it waits to be retried.
    in_flight: Arc<tokio::sync::Semaphore>,
    breaker: std::sync::Mutex<Breaker>,
    /// Requests sent, including retries (for stats and tests).
    pub attempts: Arc<std::sync::atomic::AtomicU64>,
}

impl OpenAiGenerator {
    pub fn new(cfg: OpenAiConfig) -> Result<OpenAiGenerator, GenError> {
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
        let in_flight = Arc::new(tokio::sync::Semaphore::new(cfg.concurrency.max(1)));
        let breaker = std::sync::Mutex::new(Breaker::new(BreakerConfig {
            failures: cfg.breaker_failures,
            max_outage: Duration::from_secs(cfg.max_outage_secs),
            probe_interval: Duration::from_secs(1),
            max_probe_interval: Duration::from_secs(30),
        }));
        Ok(OpenAiGenerator { cfg, client, rt, key, in_flight, breaker, attempts: Default::default() })
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server's first model id from `GET /models`; a clear error when unreachable.
    pub fn discover_model(&self) -> Result<String, GenError> {
        let url = format!("{}/models", self.cfg.base_url.trim_end_matches('/'));
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

    fn body(&self, req: &GenRequest) -> (String, Value) {
        let p = &req.params;
        let base = self.cfg.base_url.trim_end_matches('/');
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
                (format!("{base}/completions"), body)
            }
            Prompt::Chat(m) => {
                body["messages"] = json!(m);
                (format!("{base}/chat/completions"), body)
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
        let (url, body) = self.body(&req);
        let mut attempt = 0;
        loop {
            let admitted = self.breaker().admit(std::time::Instant::now());
            let probe = match admitted {
                Admit::Send => false,
                Admit::Probe => true,
                Admit::Wait(d) => {
                    tokio::time::sleep(d).await;
                    continue;
                }
                Admit::FailFast(detail) => return Err(GenError::Unreachable { url, detail }),
            };
            let permit = match self.in_flight.acquire().await {
                Ok(p) => p,
                Err(_) => {
                    if probe {
                        self.breaker().probe_abandoned();
                    }
                    return Err(GenError::Closed);
                }
            };
            let sent = self.once(&url, &body).await;
            drop(permit);
            let (e, retry_after) = match sent {
                Ok(mut c) => {
                    self.breaker().success();
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
                self.breaker().success();
                return Err(e);
            }
            let down = {
                let mut breaker = self.breaker();
                breaker.failure(std::time::Instant::now(), probe, &e.to_string());
                breaker.down_since().is_some()
            };
            if down {
                // The server looks down: wait for it with the others rather than fail now (the
                // breaker fails the wait after max_outage_secs); once it is back the request
                // gets its retries again.
                attempt = 0;
                continue;
            }
            if e.retryable() && attempt < self.cfg.retries {
                let cap = (self.cfg.backoff_ms.saturating_mul(1 << attempt.min(16))).min(30_000);
                let jitter = rand::rng().random_range(0..=cap);
                let cap_after = Duration::from_secs(self.cfg.max_retry_after_secs);
                let wait = retry_after.map_or(Duration::from_millis(jitter), |d| d.min(cap_after));
                tracing::debug!("retrying {url} in {wait:?} after: {e}");
                tokio::time::sleep(wait).await;
                attempt += 1;
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
    })
}

impl Generator for OpenAiGenerator {
    fn fingerprint(&self) -> String {
        format!("openai:{}:{}", self.cfg.base_url, self.cfg.model)
    }
    fn name(&self) -> String {
        self.cfg.model.clone()
    }
    fn json_schema(&self) -> bool {
        self.cfg.structured_output
    }
    fn outage(&self) -> Option<String> {
        let b = self.breaker();
        b.down_since().map(|since| {
            format!(
                "model server {} down for {} s ({})",
                self.cfg.base_url,
                since.elapsed().as_secs(),
                b.last_error()
            )
        })
    }
    fn generate(&self, batch: Vec<GenRequest>) -> Vec<GenOutcome> {
        use futures_util::StreamExt;
        let limit = self.cfg.concurrency.max(1);
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
