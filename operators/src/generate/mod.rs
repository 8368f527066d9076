//! LLM generation: a [`Generator`] trait with an in-process candle engine ([`engine`]) and an
//! OpenAI-compatible HTTP client ([`openai`]), a persistent memo cache ([`memo`]) and the
//! dataflow operator that batches prompts from many documents ([`operator`]).

pub mod constrain;
pub mod engine;
pub mod memo;
pub mod model;
pub mod openai;
pub mod operator;
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
}

/// Why one request failed. Failures are per request: the rest of the batch goes on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GenError {
    #[error("empty prompt")]
    EmptyPrompt,
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
            GenError::Model(_) => "gen_model_error",
            GenError::Unreachable { .. } => "gen_unreachable",
            GenError::Http { .. } => "gen_http_error",
            GenError::Timeout(_) => "gen_timeout",
            GenError::BadResponse(_) => "gen_bad_response",
            GenError::Closed => "gen_closed",
        }
    }

    /// Whether retrying may help (429, 5xx, timeouts, connection errors).
    pub fn retryable(&self) -> bool {
        match self {
            GenError::Http { status, .. } => *status == 429 || *status >= 500,
            GenError::Timeout(_) | GenError::Unreachable { .. } => true,
            _ => false,
        }
    }
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
}
