//! What a shard's output was made with: every stage's effective settings, in chain order.
//!
//! The manifest records them per shard (by [`Settings::id`]), so a run can tell which shards a
//! changed setting touches and redo those: the first stage whose settings differ names why.
//! Settings are the config values that decide a stage's output — thresholds, templates (their
//! version and text), sampling, the sample rate, the models' fingerprints, the chain itself —
//! and not the ones that only decide how fast or where it runs (workers, batch sizes,
//! timeouts, the memo file). Dedup keeps its own state (signatures and clustering in
//! `manifest.dedup`, which re-hashes or re-clusters precisely), so its stage holds only its
//! place in the chain.

use crate::config::{Config, OperatorName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xinstruct_operators::instruct::prompt::Template;

/// One stage's settings, flattened to `key = value` (JSON values; nested tables as dotted keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSettings {
    pub stage: String,
    pub values: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub stages: Vec<StageSettings>,
}

/// The models' identities, as the memo cache keys their outputs
/// ([`Generator::fingerprint`](xinstruct_operators::generate::Generator::fingerprint)).
#[derive(Clone, Debug, Default)]
pub struct ModelIds {
    pub generator: String,
    pub evaluator: String,
}

/// Why a shard's output is stale: the first stage whose settings changed, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub stage: String,
    /// `key: old -> new`, at most a few.
    pub keys: Vec<String>,
}

impl Change {
    /// One line for the plan: `quality: length.min_chars 200 -> 300`.
    pub fn describe(&self) -> String {
        if self.keys.is_empty() {
            self.stage.clone()
        } else {
            format!("{}: {}", self.stage, self.keys.join(", "))
        }
    }
}

/// Keys that do not change a stage's output, by stage.
fn operational(stage: &str, key: &str) -> bool {
    match stage {
        "read" => matches!(key, "batch_docs" | "parquet_batch_rows"),
        // The self-check judges extra, mismatched pairs for the run's stats only.
        "evaluate" => matches!(key, "self_check_rate" | "min_discrimination"),
        _ => false,
    }
}

impl Settings {
    /// The settings `config` runs with: `read`, then each operator of the chain.
    pub fn of(config: &Config, models: &ModelIds) -> Settings {
        let mut stages = vec![stage("read", &config.source)];
        for op in &config.pipeline.operators {
            let name = op.as_str();
            let s = match op {
                // The selection is one decision per language over all shards, kept and
                // re-clustered by its own state (manifest.diversity), not a shard's output.
                OperatorName::Diversity => continue,
                OperatorName::Normalize => stage(name, &config.normalize),
                OperatorName::LangId => stage(name, &config.lang_id),
                OperatorName::Quality => stage(name, &config.quality),
                OperatorName::Dedup => StageSettings { stage: name.into(), values: BTreeMap::new() },
                OperatorName::ReverseInstruction => {
                    let mut s = stage(name, &config.reverse_instruction);
                    model(&mut s, "generator", &models.generator);
                    template(&mut s, config.reverse_instruction.template());
                    s
                }
                OperatorName::CrossCheck => {
                    let mut s = stage(name, &config.cross_check);
                    // It identifies languages with lang_id's model.
                    let lid = stage("lang_id", &config.lang_id);
                    for key in ["backend", "model"] {
                        if let Some(v) = lid.values.get(key) {
                            s.values.insert(format!("lang_id.{key}"), v.clone());
                        }
                    }
                    s
                }
                OperatorName::Evaluate => {
                    let mut s = stage(name, &config.evaluate);
                    model(&mut s, "evaluator", &models.evaluator);
                    template(&mut s, config.evaluate.template());
                    s
                }
                OperatorName::Refine => {
                    // Refinement re-runs the reverse and evaluate prompts with their settings.
                    let mut s = stage(name, &config.refine);
                    let inner = [
                        stage("reverse_instruction", &config.reverse_instruction),
                        stage("evaluate", &config.evaluate),
                        stage("cross_check", &config.cross_check),
                    ];
                    for part in inner {
                        for (k, v) in part.values {
                            s.values.insert(format!("{}.{k}", part.stage), v);
                        }
                    }
                    model(&mut s, "generator", &models.generator);
                    model(&mut s, "evaluator", &models.evaluator);
                    template(&mut s, config.refine.template());
                    s
                }
            };
            stages.push(s);
        }
        Settings { stages }
    }

    /// A stable id of these settings (the manifest's key for them).
    pub fn id(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
    }

    /// The first stage whose settings differ between `old` (what a shard was made with) and
    /// `self`, or `None` when the shard's output is current.
    pub fn first_change(&self, old: &Settings) -> Option<Change> {
        let chain = |s: &Settings| s.stages.iter().map(|st| st.stage.as_str()).collect::<Vec<_>>().join(",");
        for (i, new) in self.stages.iter().enumerate() {
            let Some(was) = old.stages.get(i).filter(|o| o.stage == new.stage) else {
                return Some(Change {
                    stage: "pipeline".into(),
                    keys: vec![format!("operators {} -> {}", chain(old), chain(self))],
                });
            };
            if was.values != new.values {
                return Some(Change { stage: new.stage.clone(), keys: diff(&was.values, &new.values) });
            }
        }
        (old.stages.len() != self.stages.len()).then(|| Change {
            stage: "pipeline".into(),
            keys: vec![format!("operators {} -> {}", chain(old), chain(self))],
        })
    }
}

/// `key old -> new` for each differing key (at most four, then how many more).
fn diff(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let none = "(unset)".to_string();
    let changed: Vec<String> = keys
        .into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| {
            format!("{k} {} -> {}", short(old.get(k).unwrap_or(&none)), short(new.get(k).unwrap_or(&none)))
        })
        .collect();
    const SHOWN: usize = 4;
    let mut out: Vec<String> = changed.iter().take(SHOWN).cloned().collect();
    if changed.len() > SHOWN {
        out.push(format!("and {} more", changed.len() - SHOWN));
    }
    out
}

/// Long values (templates, lists) shortened for the plan's one line.
fn short(v: &str) -> String {
    const MAX: usize = 40;
    match v.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &v[..at]),
        None => v.to_string(),
    }
}

fn stage(name: &str, table: &impl Serialize) -> StageSettings {
    let mut values = BTreeMap::new();
    let json = serde_json::to_value(table).unwrap_or_default();
    flatten("", &json, &mut values);
    values.retain(|k, _| !operational(name, k));
    StageSettings { stage: name.into(), values }
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn model(s: &mut StageSettings, role: &str, fingerprint: &str) {
    s.values.insert(format!("model.{role}"), fingerprint.to_string());
}

/// The template as the stage renders it: a built-in's version and text can change with
/// xinstruct itself, and a custom one's text without a new version.
fn template(s: &mut StageSettings, resolved: Result<Template, String>) {
    let (key, hash) = match resolved {
        Ok(t) => (t.stage_key(), xxhash_rust::xxh3::xxh3_64(t.text.as_bytes())),
        Err(e) => (format!("invalid: {e}"), 0),
    };
    s.values.insert("template.resolved".into(), format!("{key} text {hash:016x}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> ModelIds {
        ModelIds { generator: "candle:gemma3:abc".into(), evaluator: "candle:gemma3:abc".into() }
    }

    #[test]
    fn the_same_config_has_the_same_settings_whatever_runs_it() {
        let a = Config::default();
        let mut b = Config::default();
        b.run.workers = std::num::NonZeroUsize::new(4).unwrap();
        b.generate.batch_size = 3;
        b.source.batch_docs = std::num::NonZeroUsize::new(7).unwrap();
        b.evaluate.self_check_rate = 0.0;
        b.openai.timeout_secs = 1;
        b.instruct.memo_path = Some("/elsewhere".into());
        let (sa, sb) = (Settings::of(&a, &ids()), Settings::of(&b, &ids()));
        assert_eq!(sa.first_change(&sb), None);
        assert_eq!(sa.id(), sb.id());
    }

    #[test]
    fn the_first_changed_stage_is_named_with_its_keys() {
        let old = Settings::of(&Config::default(), &ids());
        let mut cfg = Config::default();
        cfg.quality.length.min_chars = 300;
        cfg.evaluate.max_new_tokens = 10;
        let change = Settings::of(&cfg, &ids()).first_change(&old).unwrap();
        assert_eq!(change.describe(), "quality: length.min_chars 200 -> 300");

        let mut cfg = Config::default();
        cfg.reverse_instruction.sample_rate = 0.5;
        let change = Settings::of(&cfg, &ids()).first_change(&old).unwrap();
        assert_eq!(change.describe(), "reverse_instruction: sample_rate 1.0 -> 0.5");

        let other = ModelIds { generator: "openai:http://x/v1:m".into(), ..ids() };
        let change = Settings::of(&Config::default(), &other).first_change(&old).unwrap();
        assert_eq!(change.stage, "reverse_instruction");
        assert!(change.keys[0].starts_with("model.generator candle:gemma3:abc -> openai:"), "{change:?}");
    }

    #[test]
    fn a_shorter_chain_and_a_new_template_version_are_changes() {
        let old = Settings::of(&Config::default(), &ids());
        let mut cfg = Config::default();
        cfg.pipeline.operators.retain(|o| *o != OperatorName::Refine);
        let change = Settings::of(&cfg, &ids()).first_change(&old).unwrap();
        assert_eq!(change.stage, "pipeline");
        assert!(change.keys[0].ends_with("cross_check,evaluate"), "{change:?}");

        let mut cfg = Config::default();
        let mut t = cfg.evaluate.template().unwrap();
        t.version += 1;
        cfg.evaluate.template = xinstruct_operators::instruct::prompt::TemplateChoice::Custom(t);
        let change = Settings::of(&cfg, &ids()).first_change(&old).unwrap();
        assert_eq!(change.stage, "evaluate");
        assert!(change.keys.iter().any(|k| k.starts_with("template.resolved")), "{change:?}");
    }
}
