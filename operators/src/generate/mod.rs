//! LLM generation: a [`Generator`] trait with an in-process candle engine ([`engine`]) and an
//! OpenAI-compatible HTTP client ([`openai`]), a persistent memo cache ([`memo`]) and the
//! dataflow operator that batches prompts from many documents ([`operator`]).

pub mod breaker;
pub mod constrain;
pub mod engine;
pub mod memo;
pub mod model;
pub mod openai;
pub mod operator;
pub mod pool;
pub mod prefix;
pub mod sampling;
pub mod template;

pub use constrain::Constraint;
pub use engine::{CandleGenerator, EngineConfig};
pub use memo::MemoCache;
pub use openai::{OpenAiConfig, OpenAiGenerator};
pub use operator::{GenResult, GenerateConfig, GenerateExt, GenerateOp, PromptVerdict};
pub use sampling::SamplingParams;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// What the model is asked: raw text (base models, `/v1/completions`) or chat messages
/// (rendered with the model's chat template, `/v1/chat/completions`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Prompt {
    Text(String),
    Chat(Vec<Message>),
}

impl Prompt {
    pub fn is_empty(&self) -> bool {
        match self {
            Prompt::Text(t) => t.trim().is_empty(),
            Prompt::Chat(m) => m.iter().all(|m| m.content.trim().is_empty()),
        }
    }
    /// A stable text form for cache keys.
    pub fn key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GenRequest {
    pub prompt: Prompt,
    pub params: SamplingParams,
    /// Requests with the same key (one document's stages) go to the same server of a pool
    /// where its load allows ([`pool`]), so the server's prefix cache reuses the document.
    /// Not part of the memo key: it says where, not what.
    pub affinity: Option<u64>,
}

impl GenRequest {
    pub fn new(prompt: Prompt, params: SamplingParams) -> GenRequest {
        GenRequest { prompt, params, affinity: None }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End-of-sequence token or a stop string.
    Stop,
    /// `max_new_tokens` or the context length reached.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub finish: FinishReason,
    /// Prompt tokens dropped to fit the context (from the start, after BOS); 0 when none.
    #[serde(default)]
    pub truncated_prompt_tokens: usize,
    /// Prompt tokens whose KV came from a prefix cache rather than a prefill (the engine's
    /// [`prefix`] cache; a server's `usage.prompt_tokens_details.cached_tokens`).
    #[serde(default)]
    pub cached_prompt_tokens: usize,
}

/// Why one request failed. Failures are per request: the rest of the batch goes on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GenError {
    #[error("empty prompt")]
    EmptyPrompt,
    /// The prompt cannot be run as it is (a token outside the model's vocabulary): the
    /// document's fault, not the model's.
    #[error("invalid prompt: {0}")]
    InvalidPrompt(String),
    #[error("model error: {0}")]
    Model(String),
    #[error("server unreachable at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("HTTP {status} from {url}: {body}")]
    Http { url: String, status: u16, body: String },
    #[error("request timed out after {0} s")]
    Timeout(u64),
    #[error("bad server response: {0}")]
    BadResponse(String),
    #[error("generator shut down")]
    Closed,
}

impl GenError {
    /// A short reason code for rejects and stats.
    pub fn reason(&self) -> &'static str {
        match self {
            GenError::EmptyPrompt => "gen_empty_prompt",
            GenError::InvalidPrompt(_) => "gen_invalid_prompt",
            GenError::Model(_) => "gen_model_error",
            GenError::Unreachable { .. } => "gen_unreachable",
            GenError::Http { status, body, .. } if refuses_prompt(*status, body) => "gen_prompt_refused",
            GenError::Http { .. } => "gen_http_error",
            GenError::Timeout(_) => "gen_timeout",
            GenError::BadResponse(_) => "gen_bad_response",
            GenError::Closed => "gen_closed",
        }
    }

    /// Whether retrying at once may help (429, 5xx, timeouts, connection errors, a reply that
    /// is not an answer, such as a proxy's HTML error page).
    pub fn retryable(&self) -> bool {
        match self {
            GenError::Http { status, .. } => *status == 429 || *status >= 500,
            GenError::Timeout(_) | GenError::Unreachable { .. } | GenError::BadResponse(_) => true,
            _ => false,
        }
    }

    /// Whether the failure is the model's rather than the document's: the document then
    /// waits for the model (retried by the next run) instead of becoming a reject.
    pub fn transient(&self) -> bool {
        awaits_model(self.reason())
    }
}

/// Reasons that mean "the model did not answer" (server down or overloaded, a timeout, an
/// unreadable reply, an engine error, a client error such as a wrong key or model name that a
/// fixed config cures): a document failed this way is work pending, not a reject. The rest
/// (`gen_empty_prompt`, `gen_invalid_prompt`, `gen_prompt_refused`) are verdicts on the prompt.
pub const AWAITING_MODEL: [&str; 6] =
    ["gen_model_error", "gen_unreachable", "gen_http_error", "gen_timeout", "gen_bad_response", "gen_closed"];

pub fn awaits_model(reason: &str) -> bool {
    AWAITING_MODEL.contains(&reason)
}

/// A client error that refuses this prompt (too large for the server's context), as opposed to
/// one about the request's setup (auth, model name), which a config change cures.
fn refuses_prompt(status: u16, body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    status == 413
        || ((status == 400 || status == 422)
            && ["context length", "context window", "too long", "maximum context", "too many tokens"]
                .iter()
                .any(|m| body.contains(m)))
}

pub type GenOutcome = Result<Completion, GenError>;

/// A text generator: a batch of requests in, one outcome per request out (same order).
pub trait Generator: Send + Sync {
    /// Identifies the model and its weights for the memo cache (e.g. name + weights checksum).
    fn fingerprint(&self) -> String;
    /// A short human name (`gemma-3-270m`, a server's model id).
    fn name(&self) -> String;
    fn generate(&self, batch: Vec<GenRequest>) -> Vec<GenOutcome>;
    /// Whether requests may carry a JSON schema ([`SamplingParams::json_schema`]) that the
    /// backend enforces on its answer (structured output).
    fn json_schema(&self) -> bool {
        false
    }
    /// Whether requests may carry a [`Constraint`] ([`SamplingParams::constraint`]) that the
    /// backend enforces while decoding (the in-process engine).
    fn constrains(&self, _c: Constraint) -> bool {
        false
    }
    /// The model's special tokens that text could spell (`<start_of_turn>`,
    /// `<image_soft_token>`): document text and model outputs have them defused before they go
    /// into a prompt, so a web page cannot speak the model's control language. Empty when the
    /// backend does not say (a server: the fixed list of common chat tokens still applies).
    fn special_tokens(&self) -> Vec<String> {
        Vec::new()
    }
    /// When the backend is down (a server's circuit breaker is open): a line for the progress
    /// bar naming it, how long, and the last error.
    fn outage(&self) -> Option<String> {
        None
    }
    /// The servers behind the generator and their state (a pool of OpenAI-compatible servers;
    /// empty for the in-process engine).
    fn endpoints(&self) -> Vec<pool::EndpointState> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_that_did_not_answer_is_pending_work_a_refused_prompt_is_not() {
        let http = |status: u16, body: &str| GenError::Http { url: "u".into(), status, body: body.into() };
        for e in [
            GenError::Unreachable { url: "u".into(), detail: "connection refused".into() },
            GenError::Timeout(120),
            http(500, "internal"),
            http(503, ""),
            http(429, "slow down"),
            http(401, "bad key"),
            http(404, "model not found"),
            GenError::BadResponse("not JSON: <html>".into()),
            GenError::Model("forward failed".into()),
            GenError::Closed,
        ] {
            assert!(e.transient(), "{e}");
        }
        for e in [
            GenError::EmptyPrompt,
            GenError::InvalidPrompt("token 262144".into()),
            http(400, "This model's maximum context length is 4096 tokens"),
            http(413, "payload too large"),
        ] {
            assert!(!e.transient(), "{e}");
        }
        assert_eq!(http(400, "maximum context length").reason(), "gen_prompt_refused");
        assert!(http(400, "unknown field response_format").transient(), "a setup error a config cures");
        assert!(GenError::BadResponse("x".into()).retryable());
    }
}
