//! `evaluate`: an evaluator model labels each pair **good / flawed / bad** (the paper's three
//! levels) with an optional 1–5 score and a one-line reason. The evaluator prompt is versioned
//! and configurable; the evaluator may be another model than the generator. An answer that
//! cannot be read is asked again (sampled, another seed) up to `retries` times; still
//! unreadable → label `unknown`, counted as `unknown`. So is an answer whose reason is copied
//! from the prompt's worked examples (small models do that). Generator errors are rejects.
//!
//! A bounded chain of `generate` operators (one per attempt); holds nothing beyond them.

use super::models::{doc_seed, language_name, prompt_text, StageModels};
use super::prompt::{parse_evaluation, BuiltIn, Label, Template, TemplateChoice};
use crate::doc::{Doc, Reject};
use crate::filter::split_map;
use crate::generate::{GenRequest, GenResult, GenerateExt, SamplingParams};
use crate::stats::StatsRegistry;
use crate::Epoch;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};

/// `[evaluate]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluateConfig {
    /// `evaluate_fewshot` (three rated examples; works on small base models) or
    /// `evaluate_zero_shot` (for instruction-following evaluators), or a custom template with
    /// `{instruction}` and `{text}` slots (and optionally `{language}`).
    pub template: TemplateChoice,
    pub max_new_tokens: usize,
    /// Further attempts (sampled at temperature 0.7) when the answer cannot be read.
    pub retries: u32,
    /// Characters of the response put into the prompt.
    pub max_text_chars: usize,
}

impl Default for EvaluateConfig {
    fn default() -> Self {
        EvaluateConfig {
            template: TemplateChoice::BuiltIn(BuiltIn::EvaluateFewshot),
            max_new_tokens: 40,
            retries: 1,
            max_text_chars: 1200,
        }
    }
}

impl EvaluateConfig {
    pub fn template(&self) -> Result<Template, String> {
        self.template.resolve("evaluate", &["instruction", "text"])
    }

    fn request(&self, template: &Template, doc: &Doc, attempt: u32) -> GenRequest {
        let text = prompt_text(doc, self.max_text_chars);
        let instruction = doc.pair.as_ref().map(|p| p.instruction.clone()).unwrap_or_default();
        let lang = language_name(doc);
        let mut params = SamplingParams::greedy(self.max_new_tokens);
        if attempt > 0 {
            params.temperature = 0.7;
            params.top_p = 0.9;
            params.seed = doc_seed(doc, 1000 + attempt as u64);
        }
        params.stop = vec!["###".into(), "\n\n".into()];
        GenRequest {
            prompt: template.prompt(&[("instruction", &instruction), ("text", &text), ("language", &lang)]),
            params,
        }
    }
}

/// Writes the evaluator's verdict into the pair.
fn label_pair(
    (mut doc, r): (Doc, GenResult),
    op: &str,
    evaluator: &str,
    stage: &str,
    template_text: &str,
) -> Result<Doc, Reject> {
    if !r.ok {
        return Err(Reject::new(doc.source.clone(), op, &r.reason, r.detail, Some(doc.id)));
    }
    let mut e = parse_evaluation(&r.text);
    // An evaluator that copies a worked example's reason is repeating the prompt, not judging.
    if e.reason.chars().count() >= 12 && template_text.contains(e.reason.as_str()) {
        e.label = Label::Unknown;
        e.reason = format!("copied from the prompt's examples: {}", e.reason);
    }
    if let Some(pair) = doc.pair.as_mut() {
        pair.label = e.label.as_str().to_string();
        pair.score = e.score;
        pair.eval_reason = e.reason;
        pair.evaluator = evaluator.to_string();
        if !pair.prompt_version.split(' ').any(|s| s == stage) {
            pair.prompt_version = format!("{} {stage}", pair.prompt_version);
        }
        pair.tokens_in += r.prompt_tokens;
        pair.tokens_out += r.completion_tokens;
    }
    Ok(doc)
}

fn is_unknown(doc: &Doc) -> bool {
    doc.pair.as_ref().is_some_and(|p| p.label == Label::Unknown.as_str())
}

pub trait Evaluate<'s> {
    fn evaluate(
        self,
        cfg: &EvaluateConfig,
        models: &StageModels,
        stats: &StatsRegistry,
    ) -> Result<(VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>), String>;

    fn evaluate_named(
        self,
        name: &str,
        cfg: &EvaluateConfig,
        models: &StageModels,
        stats: &StatsRegistry,
    ) -> Result<(VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>), String>;
}

impl<'s> Evaluate<'s> for VecCollection<'s, Epoch, Doc> {
    fn evaluate(
        self,
        cfg: &EvaluateConfig,
        models: &StageModels,
        stats: &StatsRegistry,
    ) -> Result<(VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>), String> {
        self.evaluate_named("evaluate", cfg, models, stats)
    }

    /// Counted under `name` for the first attempt and `name.retry` for the others; the final
    /// `unknown` labels are counted as `unknown` under `name`.
    fn evaluate_named(
        self,
        name: &str,
        cfg: &EvaluateConfig,
        models: &StageModels,
        stats: &StatsRegistry,
    ) -> Result<(VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>), String> {
        let template = cfg.template()?;
        let stage = template.stage_key();
        let evaluator = models.evaluator.name();
        // Documents without a pair (the reverse stage was skipped) pass through.
        let without = self.clone().filter(|d: &Doc| d.pair.is_none());
        let with_pair = self.filter(|d: &Doc| d.pair.is_some());
        let mut pending = with_pair;
        let mut done = without;
        let mut rejects: Option<VecCollection<'s, Epoch, Reject>> = None;
        for attempt in 0..=cfg.retries {
            let op_name = if attempt == 0 { name.to_string() } else { format!("{name}.retry") };
            let op = models.evaluator_op(stage.clone());
            let (req_cfg, req_template) = (cfg.clone(), template.clone());
            let results = pending.clone().generate_named(&op_name, &op, stats, move |doc: &Doc| {
                Ok(req_cfg.request(&req_template, doc, attempt))
            });
            let (ev, st, on, tt) = (evaluator.clone(), stage.clone(), op_name.clone(), template.text.clone());
            let counted = stats.clone();
            let (labelled, failed) = split_map(results, &op_name, stats, move |item| {
                let verdict = label_pair(item, &on, &ev, &st, &tt);
                if let Ok(Some(p)) = verdict.as_ref().map(|d| d.pair.as_ref()) {
                    // The label distribution of this attempt (`label.good`, …).
                    counted.with(&on, |s| s.count(&format!("label.{}", p.label), 1));
                }
                verdict
            });
            rejects = Some(match rejects {
                None => failed,
                Some(r) => r.concat(failed),
            });
            if attempt == cfg.retries {
                let (counted, total) = (stats.clone(), name.to_string());
                let labelled = labelled.inspect(move |(d, _, diff)| {
                    if *diff > 0 && is_unknown(d) {
                        counted.with(&total, |s| s.count("unknown", 1));
                    }
                });
                done = done.concat(labelled);
            } else {
                done = done.concat(labelled.clone().filter(|d: &Doc| !is_unknown(d)));
                pending = labelled.filter(is_unknown);
            }
        }
        let rejects = rejects.ok_or("evaluate: no attempt")?;
        Ok((done, rejects))
    }
}
