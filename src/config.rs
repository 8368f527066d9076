//! The run configuration: one TOML file, one table per operator. Every table rejects unknown
//! keys; every key has a documented default (`xinst config --print-default` prints the
//! commented file, which a test keeps equal to `Config::default()`).

use crate::sink::SinkConfig;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use xinstruct_operators::dedup::DedupConfig;
use xinstruct_operators::diversity::{EmbedConfig, KMeansConfig, SampleConfig};
use xinstruct_operators::generate::{EngineConfig, GenerateConfig, OpenAiConfig};
use xinstruct_operators::instruct::{CrossCheckConfig, EvaluateConfig, RefineConfig, ReverseConfig};
use xinstruct_operators::lang_id::LangIdConfig;
use xinstruct_operators::normalize::NormalizeConfig;
use xinstruct_operators::quality::QualityConfig;
use xinstruct_operators::source::SourceConfig;

/// The default config file, with comments; `xinst config --print-default` prints it.
pub const DEFAULT_TOML: &str = include_str!("../docs/config.default.toml");

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub run: RunConfig,
    #[serde(default)]
    pub source: SourceConfig,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default)]
    pub normalize: NormalizeConfig,
    #[serde(default)]
    pub lang_id: LangIdConfig,
    #[serde(default)]
    pub quality: QualityConfig,
    #[serde(default)]
    pub dedup: DedupConfig,
    #[serde(default)]
    pub instruct: InstructConfig,
    #[serde(default)]
    pub reverse_instruction: ReverseConfig,
    #[serde(default)]
    pub cross_check: CrossCheckConfig,
    #[serde(default)]
    pub evaluate: EvaluateConfig,
    #[serde(default)]
    pub refine: RefineConfig,
    #[serde(default)]
    pub embed: EmbedConfig,
    #[serde(default)]
    pub kmeans: KMeansConfig,
    #[serde(default)]
    pub sample: SampleConfig,
    #[serde(default)]
    pub generate: GenerateConfig,
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub openai: OpenAiConfig,
    #[serde(default)]
    pub sink: SinkConfig,
    #[serde(default)]
    pub watch: WatchConfig,
}

/// The operators between the read and write ends, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OperatorName {
    Normalize,
    #[value(name = "lang_id")]
    LangId,
    Quality,
    Dedup,
    #[value(name = "reverse_instruction")]
    ReverseInstruction,
    #[value(name = "cross_check")]
    CrossCheck,
    Evaluate,
    Refine,
    /// The diversity selection per language (embed, assign to clusters, fill the quota),
    /// committed with each epoch; at the end of the chain.
    Diversity,
}

impl OperatorName {
    pub fn as_str(&self) -> &'static str {
        match self {
            OperatorName::Normalize => "normalize",
            OperatorName::LangId => "lang_id",
            OperatorName::Quality => "quality",
            OperatorName::Dedup => "dedup",
            OperatorName::ReverseInstruction => "reverse_instruction",
            OperatorName::CrossCheck => "cross_check",
            OperatorName::Evaluate => "evaluate",
            OperatorName::Refine => "refine",
            OperatorName::Diversity => "diversity",
        }
    }

    pub fn uses_model(&self) -> bool {
        matches!(self, OperatorName::ReverseInstruction | OperatorName::Evaluate | OperatorName::Refine)
    }
}

/// `[instruct]`: the models of the X-Instruction stages and their memo cache.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstructConfig {
    /// The instruction generator: a name from `xinst models list`, a local path (GGUF or
    /// snapshot dir), a Hugging Face id, an OpenAI-compatible server URL, or a pool of such
    /// URLs (a TOML array).
    pub generator: ModelRef,
    /// The evaluator, in the same forms; empty = the generator.
    pub evaluator: ModelRef,
    /// Memoize model outputs (reruns and incremental rebuilds call the model only for new work).
    pub memo: bool,
    /// The memo file; default `<output>/_xinstruct/memo-p<process>.redb` for a local output,
    /// the model cache dir for a remote one.
    pub memo_path: Option<PathBuf>,
}

impl Default for InstructConfig {
    fn default() -> Self {
        InstructConfig {
            generator: ModelRef::one("gemma-3-270m"),
            evaluator: ModelRef::default(),
            memo: true,
            memo_path: None,
        }
    }
}

/// A model as the config names it: one name, path or server URL (a TOML string), or a pool of
/// OpenAI-compatible servers serving the same model (an array of URLs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "OneOrMany", into = "OneOrMany")]
pub struct ModelRef(pub Vec<String>);

#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for ModelRef {
    fn from(v: OneOrMany) -> ModelRef {
        match v {
            OneOrMany::One(s) if s.is_empty() => ModelRef(Vec::new()),
            OneOrMany::One(s) => ModelRef(vec![s]),
            OneOrMany::Many(v) => ModelRef(v),
        }
    }
}

impl From<ModelRef> for OneOrMany {
    fn from(m: ModelRef) -> OneOrMany {
        match m.0.len() {
            0 => OneOrMany::One(String::new()),
            1 => OneOrMany::One(m.0.into_iter().next().unwrap_or_default()),
            _ => OneOrMany::Many(m.0),
        }
    }
}

impl ModelRef {
    pub fn one(name: &str) -> ModelRef {
        ModelRef(vec![name.to_string()])
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A pool must be URLs of servers: a local model cannot be pooled.
    fn validate(&self, key: &str) -> Result<()> {
        if self.0.len() > 1 {
            if let Some(bad) = self.0.iter().find(|m| !is_url(m)) {
                anyhow::bail!(
                    "[instruct] {key}: {bad:?} in a pool is not an http(s):// URL (a pool is of \
                     OpenAI-compatible servers; name a local model on its own)"
                );
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one:?}"),
            all => write!(f, "{all:?}"),
        }
    }
}

/// Whether a model name is the URL of a server.
pub fn is_url(model: &str) -> bool {
    model.starts_with("http://") || model.starts_with("https://")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The operator chain (`--skip` turns some off for a run).
    #[serde(default = "default_operators")]
    pub operators: Vec<OperatorName>,
}

fn default_operators() -> Vec<OperatorName> {
    vec![
        OperatorName::Normalize,
        OperatorName::LangId,
        OperatorName::Quality,
        OperatorName::Dedup,
        OperatorName::ReverseInstruction,
        OperatorName::CrossCheck,
        OperatorName::Evaluate,
        OperatorName::Refine,
        OperatorName::Diversity,
    ]
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig { operators: default_operators() }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Worker threads per process.
    #[serde(default = "default_workers")]
    pub workers: NonZeroUsize,
    /// Shards per epoch; each epoch is committed on its own, so smaller epochs lose less work
    /// to a crash. 0 = four per worker.
    #[serde(default)]
    pub shards_per_epoch: usize,
    /// Folder for downloads of remote shards and parts of remote outputs (default: the
    /// system temp dir).
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// Remove the output of shards that are no longer in the input.
    #[serde(default)]
    pub prune: bool,
    /// Epochs running at once: reading and filtering later epochs overlaps the model's work
    /// on earlier ones; each still commits on its own, in order.
    #[serde(default = "default_epochs_in_flight")]
    pub epochs_in_flight: NonZeroUsize,
}

fn default_epochs_in_flight() -> NonZeroUsize {
    NonZeroUsize::new(2).expect("non-zero")
}

fn default_workers() -> NonZeroUsize {
    NonZeroUsize::new(1).expect("non-zero")
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            workers: default_workers(),
            shards_per_epoch: 0,
            spool_dir: None,
            prune: false,
            epochs_in_flight: default_epochs_in_flight(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// Seconds between polls of the input for new shards.
    #[serde(default = "default_interval")]
    pub interval_secs: NonZeroU64,
}

fn default_interval() -> NonZeroU64 {
    NonZeroU64::new(60).expect("non-zero")
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig { interval_secs: default_interval() }
    }
}

impl Config {
    pub fn from_toml(text: &str, origin: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).with_context(|| format!("{origin}: invalid config"))?;
        config.validate().with_context(|| format!("{origin}: invalid config"))?;
        Ok(config)
    }

    pub fn load(path: Option<&Path>) -> Result<Config> {
        match path {
            None => Ok(Config::default()),
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
                Config::from_toml(&text, &p.display().to_string())
            }
        }
    }

    /// Checks what serde cannot: templates have the slots their stage fills, rates and bounds
    /// are in range.
    pub fn validate(&self) -> Result<()> {
        use anyhow::anyhow;
        self.dedup.validate().map_err(|e| anyhow!(e))?;
        self.reverse_instruction.template().map_err(|e| anyhow!("[reverse_instruction] {e}"))?;
        self.evaluate.template().map_err(|e| anyhow!("[evaluate] {e}"))?;
        self.refine.template().map_err(|e| anyhow!("[refine] {e}"))?;
        self.instruct.generator.validate("generator")?;
        self.instruct.evaluator.validate("evaluator")?;
        let rate = self.reverse_instruction.sample_rate;
        if !(rate > 0.0 && rate <= 1.0) {
            anyhow::bail!("[reverse_instruction] sample_rate = {rate}: must be in (0, 1]");
        }
        let ops = &self.pipeline.operators;
        if ops.iter().position(|o| *o == OperatorName::Diversity).is_some_and(|i| i + 1 != ops.len()) {
            anyhow::bail!(
                "[pipeline] operators: diversity selects among the finished pairs, so it comes last"
            );
        }
        let b = &self.reverse_instruction.bounds;
        if b.min_chars > b.max_chars {
            anyhow::bail!(
                "[reverse_instruction.bounds] min_chars {} > max_chars {}",
                b.min_chars,
                b.max_chars
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_equal_code_defaults() {
        let parsed = Config::from_toml(DEFAULT_TOML, "docs/config.default.toml").unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn a_model_is_a_name_or_a_pool_of_server_urls() {
        let one = Config::from_toml("[instruct]\ngenerator = \"http://a:8000/v1\"\n", "x.toml").unwrap();
        assert_eq!(one.instruct.generator, ModelRef::one("http://a:8000/v1"));
        assert!(one.instruct.evaluator.is_empty());
        let pool = Config::from_toml(
            "[instruct]\ngenerator = [\"http://a:8000/v1\", \"http://b:8000/v1\"]\nevaluator = \"\"\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(pool.instruct.generator.0, vec!["http://a:8000/v1", "http://b:8000/v1"]);
        pool.validate().unwrap();
        // Written back the same way: a string for one model, an array for a pool.
        let text = toml::to_string(&pool.instruct).unwrap();
        assert!(text.contains("generator = [\"http://a:8000/v1\", \"http://b:8000/v1\"]"), "{text}");
        assert!(text.contains("evaluator = \"\""), "{text}");
        let err =
            Config::from_toml("[instruct]\ngenerator = [\"http://a/v1\", \"gemma-3-270m\"]\n", "x.toml")
                .unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("\"gemma-3-270m\" in a pool is not an http(s):// URL"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = Config::from_toml("[source]\ntext_feild = \"body\"\n", "x.toml").unwrap_err();
        assert!(format!("{err:#}").contains("text_feild"), "{err:#}");
        let err = Config::from_toml("[run]\nworkers = 0\n", "x.toml").unwrap_err();
        assert!(format!("{err:#}").contains("workers"), "{err:#}");
    }
}
