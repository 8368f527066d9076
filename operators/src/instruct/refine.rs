//! `refine`: the paper's iterative refinement. Evaluated pairs are triaged: **good** ones are
//! accepted, **bad** ones rejected (`eval_bad`, with the evaluator's reason), `unknown` ones
//! rejected (`eval_unknown`) unless kept by config; **flawed** ones get a new instruction —
//! from a refine prompt that shows the flawed instruction and the evaluator's reason, or
//! resampled from the reverse prompt with another seed — which is cleaned, cross-checked and
//! evaluated again, up to `max_iterations` rounds. Still flawed after that → `eval_flawed`
//! (or kept, by config). The dataset records the iteration at which each pair was accepted.
//! Refinement only ever improves: a new instruction replaces the flawed one only when the judge
//! rates it higher (label, then score); one that is no instruction at all, or fails the
//! cross-lingual checks, leaves the flawed pair as it was (counted as `kept_prior.<reason>`).
//!
//! A bounded loop of operators (one round = generate → clean → cross_check → evaluate →
//! triage), each round's requests seeded by (document, round): an incremental rebuild finds
//! every round already done in the memo cache. Holds nothing beyond its `generate` operators.

use super::cross_check::{check_pair, CrossCheckConfig};
use super::evaluate::{Evaluate, EvaluateConfig};
use super::models::{doc_affinity, language_name, prompt_safe, prompt_text, StageModels};
use super::prompt::{BuiltIn, Template, TemplateChoice};
use super::reverse::{accept_instruction, echo_sources, ReverseConfig};
use super::verdict::{verdict_rank, Label};
use crate::doc::{Doc, Reject};
use crate::filter::{split_docs, split_map};
use crate::generate::{GenRequest, GenerateExt};
use crate::lang_id::LangIdentifier;
use crate::stats::StatsRegistry;
use crate::Epoch;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How a flawed pair gets its next instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefineMode {
    /// The refine template, with the flawed instruction and the evaluator's reason.
    Prompt,
    /// The reverse-instruction prompt again, with another seed.
    Resample,
}

/// `[refine]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RefineConfig {
    /// Rounds of refinement for flawed pairs (the paper: a few; 0 = none).
    pub max_iterations: u32,
    pub mode: RefineMode,
    /// `refine` or a custom template with `{text}`, `{instruction}` and `{reason}` slots.
    pub template: TemplateChoice,
    /// Keep pairs still flawed after the last round (label `flawed`) instead of rejecting them.
    pub keep_flawed: bool,
    /// Keep pairs the evaluator's answer could not be read for (label `unknown`).
    pub keep_unknown: bool,
}

impl Default for RefineConfig {
    fn default() -> Self {
        RefineConfig {
            max_iterations: 2,
            mode: RefineMode::Prompt,
            template: TemplateChoice::BuiltIn(BuiltIn::Refine),
            keep_flawed: false,
            keep_unknown: false,
        }
    }
}

impl RefineConfig {
    pub fn template(&self) -> Result<Template, String> {
        self.template.resolve("refine", &["text", "instruction", "reason"])
    }
}

/// The stages a refinement round repeats, with their configs.
#[derive(Clone)]
pub struct RefineStages {
    pub reverse: ReverseConfig,
    pub evaluate: EvaluateConfig,
    /// The cross-lingual checks, when the pipeline runs them.
    pub cross_check: Option<(Arc<LangIdentifier>, CrossCheckConfig)>,
}

type Split<'s> = (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>);

/// What triage does with one document: accept, refine, or reject.
fn triage(doc: Doc, op: &str, cfg: &RefineConfig, last: bool) -> Result<Result<Doc, Doc>, Reject> {
    let Some(pair) = doc.pair.as_ref() else { return Ok(Ok(doc)) };
    let reject = |doc: &Doc, reason: &str, detail: String| {
        Err(Reject::new(doc.source.clone(), op, reason, detail, Some(doc.id.clone())))
    };
    let detail = format!(
        "{:?} ({}): {}",
        pair.instruction,
        pair.score.map_or("-".into(), |s| s.to_string()),
        pair.eval_reason
    );
    match pair.label.as_str() {
        l if l == Label::Bad.as_str() => reject(&doc, "eval_bad", detail),
        l if l == Label::Unknown.as_str() && !cfg.keep_unknown => reject(&doc, "eval_unknown", detail),
        l if l == Label::Flawed.as_str() && last && !cfg.keep_flawed => reject(&doc, "eval_flawed", detail),
        l if l == Label::Flawed.as_str() && !last => Ok(Err(doc)),
        // good, not evaluated (the evaluate stage was skipped), or kept by config.
        _ => Ok(Ok(doc)),
    }
}

/// The better of a refined pair and the one it replaces (`prior`), by the judge's verdict; the
/// tokens spent on both are counted on the one kept. A tie keeps the prior: a change must earn
/// its place.
fn keep_better(mut doc: Doc) -> Doc {
    let Some(pair) = doc.pair.as_mut() else { return doc };
    let Some(mut prior) = pair.prior.take() else { return doc };
    let new = verdict_rank(Label::parse(&pair.label), pair.score);
    let old = verdict_rank(Label::parse(&prior.label), prior.score);
    if new <= old {
        prior.tokens_in = pair.tokens_in;
        prior.tokens_out = pair.tokens_out;
        *pair = prior;
    }
    doc
}

pub trait Refine<'s> {
    fn refine(
        self,
        cfg: &RefineConfig,
        stages: &RefineStages,
        models: &StageModels,
        stats: &StatsRegistry,
    ) -> Result<Split<'s>, String>;

    fn refine_named(
        self,
        name: &str,
        cfg: &RefineConfig,
        stages: &RefineStages,
        models: &StageModels,
        stats: &StatsRegistry,
    ) -> Result<Split<'s>, String>;
}

impl<'s> Refine<'s> for VecCollection<'s, Epoch, Doc> {
    fn refine(
        self,
        cfg: &RefineConfig,
        stages: &RefineStages,
        models: &StageModels,
        stats: &StatsRegistry,
    ) -> Result<Split<'s>, String> {
        self.refine_named("refine", cfg, stages, models, stats)
    }

    /// Counted under `name` (the first triage) and `name.N` (round N: its generation, clean-up,
    /// cross-check, evaluation and triage).
    fn refine_named(
        self,
        name: &str,
        cfg: &RefineConfig,
        stages: &RefineStages,
        models: &StageModels,
        stats: &StatsRegistry,
    ) -> Result<Split<'s>, String> {
        let refine_template = cfg.template()?;
        let reverse_template = stages.reverse.template()?;
        let reverse_template_for_echo = reverse_template.clone();
        let template = match cfg.mode {
            RefineMode::Prompt => refine_template,
            RefineMode::Resample => reverse_template,
        };
        let stage = template.stage_key();
        let echo_of = echo_sources(&[&template, &reverse_template_for_echo]);
        let generator = models.generator.name();
        let (mut accepted, mut rejects, mut flawed) =
            self.triage_round(name, cfg, cfg.max_iterations == 0, stats);
        for round in 1..=cfg.max_iterations {
            let round_name = format!("{name}.{round}");
            let op = models.generator_op(stage.clone());
            let (reverse, template, mode) = (stages.reverse.clone(), template.clone(), cfg.mode);
            let specials = models.specials();
            let generated = flawed.generate_named(&round_name, &op, stats, move |doc: &Doc| {
                Ok(match mode {
                    RefineMode::Resample => reverse.request(&template, doc, round as u64, &specials),
                    RefineMode::Prompt => {
                        let pair = doc.pair.as_deref().cloned().unwrap_or_default();
                        let text = prompt_text(doc, reverse.max_text_chars, &specials);
                        let reason = if pair.eval_reason.is_empty() {
                            "The instruction is vague.".to_string()
                        } else {
                            prompt_safe(&pair.eval_reason, &specials)
                        };
                        let instruction = prompt_safe(&pair.instruction, &specials);
                        GenRequest {
                            prompt: template.prompt(&[
                                ("text", &text),
                                ("instruction", &instruction),
                                ("reason", &reason),
                                ("language", &language_name(doc)),
                            ]),
                            params: reverse.params(doc, round as u64),
                            affinity: doc_affinity(doc),
                        }
                    }
                })
            });
            let (bounds, on, gen, st, echo) = (
                stages.reverse.bounds.clone(),
                round_name.clone(),
                generator.clone(),
                stage.clone(),
                echo_of.clone(),
            );
            let counted = stats.clone();
            let (mut refined, failed) = split_map(generated, &round_name, stats, move |item| {
                let before = item.0.clone();
                let model_failed = !item.1.ok;
                let prior = before.pair.clone();
                let prompt_version = prior.as_ref().map(|p| p.prompt_version.clone()).unwrap_or_default();
                let mut doc = match accept_instruction(item, &on, &bounds, &echo, &gen, &st, round) {
                    Ok(doc) => doc,
                    Err(reject) if model_failed => return Err(reject),
                    // A refinement that is not an instruction leaves the flawed pair as it was.
                    Err(reject) => {
                        counted.with(&on, |s| s.count(&format!("kept_prior.{}", reject.reason), 1));
                        return Ok(before);
                    }
                };
                if let Some(p) = doc.pair.as_mut() {
                    // Keep the first stages' template keys: the pair went through them too.
                    if !prompt_version.split(' ').any(|s| s == st) {
                        p.prompt_version = format!("{prompt_version} {st}");
                    } else {
                        p.prompt_version = prompt_version;
                    }
                    p.prior = prior;
                }
                Ok(doc)
            });
            rejects = rejects.concat(failed);
            if let Some((identifier, check)) = &stages.cross_check {
                let (id, check, on) =
                    (identifier.clone(), check.clone(), format!("{round_name}.cross_check"));
                let counted = stats.clone();
                let (kept, dropped) = split_docs(refined, &on.clone(), stats, move |d| {
                    let fallback = d.pair.as_ref().and_then(|p| p.prior.is_some().then(|| d.clone()));
                    match (check_pair(d, &on, &id, &check), fallback) {
                        (Ok(d), _) => Ok(d),
                        // A refined instruction that fails the checks: back to the prior one.
                        (Err(r), Some(d)) => {
                            counted.with(&on, |s| s.count(&format!("kept_prior.{}", r.reason), 1));
                            Ok(keep_better(d))
                        }
                        (Err(r), None) => Err(r),
                    }
                });
                refined = kept;
                rejects = rejects.concat(dropped);
            }
            // The self-check samples the first evaluation only.
            let round_eval = EvaluateConfig { self_check_rate: 0.0, ..stages.evaluate.clone() };
            let (evaluated, eval_failed) =
                refined.evaluate_named(&format!("{round_name}.evaluate"), &round_eval, models, stats)?;
            rejects = rejects.concat(eval_failed);
            // Refinement only ever improves: a new instruction replaces the flawed one only when
            // the judge rates it higher.
            let counted = stats.clone();
            let kept_name = format!("{round_name}.evaluate");
            let evaluated = evaluated.map(move |d| {
                let replaced = d.pair.as_ref().is_some_and(|p| p.prior.is_some());
                let d = keep_better(d);
                if replaced && d.pair.as_ref().is_some_and(|p| p.iteration < round) {
                    counted.with(&kept_name, |s| s.count("kept_prior.not_better", 1));
                }
                d
            });
            let (ok, dropped, again) = evaluated.triage_round(
                &format!("{round_name}.triage"),
                cfg,
                round == cfg.max_iterations,
                stats,
            );
            accepted = accepted.concat(ok);
            rejects = rejects.concat(dropped);
            flawed = again;
        }
        Ok((accepted, rejects))
    }
}

trait TriageRound<'s> {
    /// (accepted, rejected, to refine).
    fn triage_round(
        self,
        name: &str,
        cfg: &RefineConfig,
        last: bool,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>, VecCollection<'s, Epoch, Doc>);
}

impl<'s> TriageRound<'s> for VecCollection<'s, Epoch, Doc> {
    fn triage_round(
        self,
        name: &str,
        cfg: &RefineConfig,
        last: bool,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>, VecCollection<'s, Epoch, Doc>)
    {
        let (c, on, counted) = (cfg.clone(), name.to_string(), stats.clone());
        let tagged = self.map(move |doc| {
            let started = std::time::Instant::now();
            let t = match triage(doc, &on, &c, last) {
                Ok(Ok(doc)) => Triaged::Accept(doc),
                Ok(Err(doc)) => Triaged::Refine(doc),
                Err(r) => Triaged::Reject(r),
            };
            counted.with(&on, |s| {
                s.docs_in += 1;
                match &t {
                    Triaged::Accept(_) => s.docs_out += 1,
                    Triaged::Refine(_) => s.count("to_refine", 1),
                    Triaged::Reject(r) => s.drop(&r.reason),
                }
                s.add_time(started.elapsed());
            });
            t
        });
        let accepted = tagged.clone().flat_map(|t| match t {
            Triaged::Accept(d) => Some(d),
            _ => None,
        });
        let again = tagged.clone().flat_map(|t| match t {
            Triaged::Refine(d) => Some(d),
            _ => None,
        });
        let dropped = tagged.flat_map(|t| match t {
            Triaged::Reject(r) => Some(r),
            _ => None,
        });
        (accepted, dropped, again)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Triaged {
    Accept(Doc),
    Refine(Doc),
    Reject(Reject),
}
