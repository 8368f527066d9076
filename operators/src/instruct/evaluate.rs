//! `evaluate`: an evaluator model labels each pair **good / flawed / bad** (the paper's three
//! levels) with a 1–5 score and a one-line reason, the reason asked for first. The evaluator
//! prompt is versioned and configurable; the evaluator may be another model than the
//! generator, and sees the same response text the generator saw. Servers that enforce a JSON
//! schema get one ([`super::verdict::verdict_schema`]). The answer is read by
//! [`super::verdict::parse_evaluation`]; one that cannot be trusted (unreadable, a label that
//! contradicts its score, a refusal) is asked again (sampled, another seed) up to `retries`
//! times; still untrusted → label `unknown`, counted as `unknown` and by its issue
//! (`eval_inconsistent`, …). So is an answer whose reason is copied from the prompt's worked
//! examples (small models do that). Generator errors are rejects.
//!
//! A bounded chain of `generate` operators (one per attempt); holds nothing beyond them.

use super::models::{doc_affinity, doc_seed, language_name, prompt_safe, prompt_text, StageModels};
use super::prompt::{BuiltIn, Specials, Template, TemplateChoice};
use super::self_check::{in_sample, judged, twins_of};
use super::verdict::{parse_evaluation, verdict_schema, EvalIssue, Evaluation, Label};
use crate::doc::{Doc, Reject};
use crate::filter::split_map;
use crate::generate::{Constraint, GenRequest, GenResult, GenerateExt, SamplingParams};
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
    /// Characters of the response put into the prompt: keep it equal to
    /// `[reverse_instruction] max_text_chars`, so the judge sees what the generator saw.
    pub max_text_chars: usize,
    /// Ask backends that enforce a JSON schema for a JSON verdict (see `[openai]
    /// structured_output`).
    pub structured: bool,
    /// Share of the evaluated pairs that also get a mismatched twin judged, for the judge's
    /// discrimination ([`super::self_check`]); 0 = off.
    pub self_check_rate: f64,
    /// Below this discrimination (AUC of true vs mismatched pairs) the run warns that the
    /// labels carry little information.
    pub min_discrimination: f64,
}

impl Default for EvaluateConfig {
    fn default() -> Self {
        EvaluateConfig {
            template: TemplateChoice::BuiltIn(BuiltIn::EvaluateFewshot),
            max_new_tokens: 64,
            retries: 1,
            max_text_chars: 2000,
            structured: true,
            self_check_rate: 0.25,
            min_discrimination: 0.65,
        }
    }
}

impl EvaluateConfig {
    pub fn template(&self) -> Result<Template, String> {
        self.template.resolve("evaluate", &["instruction", "text"])
    }

    /// The judge's request for `doc`'s pair; `backend`: what the evaluator can enforce.
    pub fn request(
        &self,
        template: &Template,
        doc: &Doc,
        attempt: u32,
        backend: Enforce,
        specials: &Specials,
    ) -> GenRequest {
        let text = prompt_text(doc, self.max_text_chars, specials);
        let instruction =
            doc.pair.as_ref().map(|p| prompt_safe(&p.instruction, specials)).unwrap_or_default();
        let lang = language_name(doc);
        let mut params = SamplingParams::greedy(self.max_new_tokens);
        if attempt > 0 {
            params.temperature = 0.7;
            params.top_p = 0.9;
            params.seed = doc_seed(doc, 1000 + attempt as u64);
        }
        params.stop = vec!["###".into(), "\n\n".into()];
        if self.structured {
            if backend.json_schema {
                params.json_schema = Some(verdict_schema().to_string());
            } else if backend.verdict {
                params.constraint = Some(Constraint::Verdict);
            }
        }
        GenRequest {
            prompt: template.prompt(&[("instruction", &instruction), ("text", &text), ("language", &lang)]),
            params,
            affinity: doc_affinity(doc),
        }
    }
}

/// What an evaluator can hold its answers to: a JSON schema (OpenAI-compatible servers) or the
/// verdict format during decoding (the in-process engine).
#[derive(Clone, Copy, Debug, Default)]
pub struct Enforce {
    pub json_schema: bool,
    pub verdict: bool,
}

impl Enforce {
    pub fn of(models: &StageModels) -> Enforce {
        Enforce {
            json_schema: models.evaluator.json_schema(),
            verdict: models.evaluator.constrains(Constraint::Verdict),
        }
    }
}

/// The judge's answer read as a verdict: [`parse_evaluation`], plus the prompt's own check — a
/// reason copied from the template's worked examples is the prompt repeated, not a judgement.
/// Unknown verdicts say why in their reason (`eval_inconsistent: …`).
fn read_verdict(answer: &str, template_text: &str) -> Evaluation {
    let mut e = parse_evaluation(answer);
    if e.reason.chars().count() >= 12 && template_text.contains(e.reason.as_str()) {
        e.label = Label::Unknown;
        e.reason = format!("copied from the prompt's examples: {}", e.reason);
    } else if let Some(issue) = e.issue {
        e.reason =
            format!("{}: {}", issue.reason(), if e.reason.is_empty() { answer.trim() } else { &e.reason });
    }
    e
}

/// Writes the evaluator's verdict into the pair; also returns why it is unknown, if it is.
fn label_pair(
    (mut doc, r): (Doc, GenResult),
    op: &str,
    evaluator: &str,
    stage: &str,
    template_text: &str,
) -> Result<(Doc, Option<EvalIssue>), Reject> {
    if !r.ok {
        return Err(Reject::new(doc.source.clone(), op, &r.reason, r.detail, Some(doc.id)));
    }
    let e = read_verdict(&r.text, template_text);
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
    Ok((doc, e.issue))
}

fn is_unknown(doc: &Doc) -> bool {
    doc.pair.as_ref().is_some_and(|p| p.label == Label::Unknown.as_str())
}

/// Judges mismatched twins of a sample of `evaluated` and counts how often the true pair wins
/// (see [`super::self_check`]). Returns an empty collection that completes when the check
/// does, so the run's epochs wait for it.
fn self_check<'s>(
    evaluated: VecCollection<'s, Epoch, Doc>,
    name: &str,
    cfg: &EvaluateConfig,
    template: &Template,
    models: &StageModels,
    stats: &StatsRegistry,
) -> VecCollection<'s, Epoch, Doc> {
    let rate = cfg.self_check_rate;
    let check_name = format!("{name}.self_check");
    let sampled = evaluated
        .filter(move |d: &Doc| d.pair.as_ref().is_some_and(|p| !p.label.is_empty()) && in_sample(d, rate));
    let twins = twins_of(sampled.clone(), &format!("{name}.twins"));
    let op = models.evaluator_op(template.stage_key());
    let (req_cfg, req_template, enforce) = (cfg.clone(), template.clone(), Enforce::of(models));
    let specials = models.specials();
    let judged_twins = twins.generate_named(&check_name, &op, stats, move |doc: &Doc| {
        Ok(req_cfg.request(&req_template, doc, 0, enforce, &specials))
    });
    // Read exactly as the true pairs are (a copied reason is unknown on both sides).
    let template_text = template.text.clone();
    let twin_verdicts = judged_twins.map(move |(d, r)| {
        let e = read_verdict(if r.ok { &r.text } else { "" }, &template_text);
        (d.id, judged(e.label.as_str(), e.score))
    });
    let true_verdicts = sampled.map(|d| {
        let verdict = d.pair.as_ref().and_then(|p| judged(&p.label, p.score));
        (d.id, verdict)
    });
    let counted = stats.clone();
    true_verdicts
        .join_map(twin_verdicts, |_, t, m| (*t, *m))
        .inspect(move |((t, m), _, diff)| {
            // Equal verdict pairs arrive consolidated: `diff` of them.
            let Ok(n) = u64::try_from(*diff) else { return };
            counted.with(&check_name, |s| match (t, m) {
                (Some(t), Some(m)) => {
                    s.count("pairs", n);
                    if t > m {
                        s.count("wins", n);
                    } else if t == m {
                        s.count("ties", n);
                    }
                }
                _ => s.count("unreadable", n),
            });
        })
        .flat_map(|_| Option::<Doc>::None)
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
            let (req_cfg, req_template, enforce) = (cfg.clone(), template.clone(), Enforce::of(models));
            let specials = models.specials();
            let results = pending.clone().generate_named(&op_name, &op, stats, move |doc: &Doc| {
                Ok(req_cfg.request(&req_template, doc, attempt, enforce, &specials))
            });
            let (ev, st, on, tt) = (evaluator.clone(), stage.clone(), op_name.clone(), template.text.clone());
            let counted = stats.clone();
            let (labelled, failed) = split_map(results, &op_name, stats, move |item| {
                let (doc, issue) = label_pair(item, &on, &ev, &st, &tt)?;
                if let Some(p) = doc.pair.as_ref() {
                    // The label distribution of this attempt (`label.good`, …), and why the
                    // unknown ones are (`eval_inconsistent`, …).
                    counted.with(&on, |s| {
                        s.count(&format!("label.{}", p.label), 1);
                        if let Some(issue) = issue {
                            s.count(issue.reason(), 1);
                        }
                    });
                }
                Ok(doc)
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
        if cfg.self_check_rate > 0.0 {
            done = done.clone().concat(self_check(done, name, cfg, &template, models, stats));
        }
        Ok((done, rejects))
    }
}
