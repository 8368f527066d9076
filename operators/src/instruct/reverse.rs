//! `reverse_instruction`: the document's text is the response; a model writes the English
//! instruction it answers (the authors' prompt verbatim by default, or a few-shot or chat
//! variant), and the instruction is cleaned (cut at stop markers, labels, quotes and markup
//! stripped, length bounds) and checked (not truncated, a request or question, not the prompt
//! echoed: [`super::sanity`]) or the document is rejected with the reason.
//!
//! Holds nothing per document beyond what `generate` holds (requests in flight and the results
//! given, for retractions).

use super::models::{doc_affinity, doc_seed, language_name, prompt_text, sampled, StageModels};
use super::prompt::{
    clean_instruction, BuiltIn, InstructionBounds, Specials, Template, TemplateChoice, REVERSE_PAPER,
};
use super::sanity::check_instruction;
use crate::doc::{Doc, Pair, Reject};
use crate::filter::split_map;
use crate::generate::{GenRequest, GenResult, GenerateExt, SamplingParams};
use crate::stats::StatsRegistry;
use crate::Epoch;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};

/// `[reverse_instruction]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReverseConfig {
    /// `paper` (the authors' prompt, verbatim), `fewshot` (two worked examples; better for small
    /// base models), `chat` (one user message for chat models), or a custom
    /// `{ id, version, text, chat }` with a `{text}` slot (and optionally `{language}`).
    pub template: TemplateChoice,
    /// Token budget of an instruction. The paper's instructions are ~100 ± 85 characters
    /// (~25 ± 20 tokens); one that hits the budget is rejected as `instruction_truncated`.
    pub max_new_tokens: usize,
    /// Sampling (the paper's: temperature 0.7, top-p 0.9); the seed is per document.
    pub temperature: f32,
    pub top_p: f32,
    pub bounds: InstructionBounds,
    /// Characters of the document put into the prompt (cut at a sentence end).
    pub max_text_chars: usize,
    /// Fraction of documents (picked by id, stable across runs) that get an instruction; the
    /// rest are kept as the filtered corpus ([`split_sampled`]). 1.0 = all.
    pub sample_rate: f64,
}

impl Default for ReverseConfig {
    fn default() -> Self {
        ReverseConfig {
            template: TemplateChoice::BuiltIn(BuiltIn::Paper),
            max_new_tokens: 96,
            temperature: 0.7,
            top_p: 0.9,
            bounds: InstructionBounds::default(),
            max_text_chars: 2000,
            sample_rate: 1.0,
        }
    }
}

impl ReverseConfig {
    pub fn template(&self) -> Result<Template, String> {
        self.template.resolve("reverse_instruction", &["text"])
    }

    /// The request for `doc` (`salt` 0 for the first instruction, k for the k-th resample).
    pub fn request(&self, template: &Template, doc: &Doc, salt: u64, specials: &Specials) -> GenRequest {
        let text = prompt_text(doc, self.max_text_chars, specials);
        let lang = language_name(doc);
        GenRequest {
            prompt: template.prompt(&[("text", &text), ("language", &lang)]),
            params: self.params(doc, salt),
            affinity: doc_affinity(doc),
        }
    }

    /// Sampling for an instruction of `doc` (also the refine prompt's), seeded by (doc, salt).
    pub fn params(&self, doc: &Doc, salt: u64) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            max_new_tokens: self.max_new_tokens,
            stop: vec!["###".into(), "\n\n".into()],
            seed: doc_seed(doc, salt),
            ..SamplingParams::default()
        }
    }
}

/// The template texts an instruction must not echo: the stage's own, and the authors' prompt
/// (what small models repeat most).
pub fn echo_sources(templates: &[&Template]) -> Vec<String> {
    let mut out: Vec<String> = templates.iter().map(|t| t.text.clone()).collect();
    if !out.iter().any(|t| t == REVERSE_PAPER) {
        out.push(REVERSE_PAPER.to_string());
    }
    out
}

/// The document with a generated instruction as its pair, or the reason it has none.
/// `iteration` is 0 for the first instruction; the previous pair's token counts carry over.
pub fn accept_instruction(
    (mut doc, r): (Doc, GenResult),
    op: &str,
    bounds: &InstructionBounds,
    echo_of: &[String],
    generator: &str,
    stage: &str,
    iteration: u32,
) -> Result<Doc, Reject> {
    if !r.ok {
        return Err(Reject::new(doc.source.clone(), op, &r.reason, r.detail, Some(doc.id)));
    }
    let checked = clean_instruction(&r.text, &doc.text, bounds).and_then(|c| {
        let templates: Vec<&str> = echo_of.iter().map(String::as_str).collect();
        check_instruction(&c.instruction, r.finish == "length" && !c.cut, &templates)?;
        Ok(c.instruction)
    });
    match checked {
        Ok(instruction) => {
            let old = doc.pair.take().map(|p| *p).unwrap_or_default();
            doc.pair = Some(Box::new(Pair {
                instruction,
                iteration,
                generator: generator.to_string(),
                prompt_version: stage.to_string(),
                tokens_in: old.tokens_in + r.prompt_tokens,
                tokens_out: old.tokens_out + r.completion_tokens,
                ..Pair::default()
            }));
            Ok(doc)
        }
        Err((reason, detail)) => Err(Reject::new(doc.source.clone(), op, reason, detail, Some(doc.id))),
    }
}

/// Splits off the documents `rate` gives no instruction (picked by id, the same on every run):
/// they are the filtered corpus, which the dataset keeps beside the pairs rather than as
/// rejects, so raising the rate later makes only the new pairs. Returns (picked, corpus); the
/// corpus is counted as `reverse_instruction`'s `corpus` counter.
pub fn split_sampled<'s>(
    docs: VecCollection<'s, Epoch, Doc>,
    rate: f64,
    stats: &StatsRegistry,
) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Doc>) {
    use differential_dataflow::collection::AsCollection;
    use timely::dataflow::operators::core::OkErr;
    let stats = stats.clone();
    let (picked, rest) = docs.inner.ok_err::<Vec<_>, _, Vec<_>, _, _>(move |(doc, time, diff)| {
        if sampled(&doc, rate) {
            Ok((doc, time, diff))
        } else {
            stats.with("reverse_instruction", |s| s.count("corpus", 1));
            Err((doc, time, diff))
        }
    });
    (picked.as_collection(), rest.as_collection())
}

pub trait ReverseInstruction<'s> {
    fn reverse_instruction(
        self,
        cfg: &ReverseConfig,
        models: &StageModels,
        stats: &StatsRegistry,
    ) -> Result<(VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>), String>;

    fn reverse_instruction_named(
        self,
        name: &str,
        cfg: &ReverseConfig,
        models: &StageModels,
        stats: &StatsRegistry,
    ) -> Result<(VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>), String>;
}

impl<'s> ReverseInstruction<'s> for VecCollection<'s, Epoch, Doc> {
    fn reverse_instruction(
        self,
        cfg: &ReverseConfig,
        models: &StageModels,
        stats: &StatsRegistry,
    ) -> Result<(VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>), String> {
        self.reverse_instruction_named("reverse_instruction", cfg, models, stats)
    }

    fn reverse_instruction_named(
        self,
        name: &str,
        cfg: &ReverseConfig,
        models: &StageModels,
        stats: &StatsRegistry,
    ) -> Result<(VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>), String> {
        let template = cfg.template()?;
        let stage = template.stage_key();
        let echo_of = echo_sources(&[&template]);
        let op = models.generator_op(stage.clone());
        let generator = models.generator.name();
        let (prompt_cfg, specials) = (cfg.clone(), models.specials());
        let generated = self.generate_named(name, &op, stats, move |doc: &Doc| {
            Ok(prompt_cfg.request(&template, doc, 0, &specials))
        });
        let (bounds, op_name) = (cfg.bounds.clone(), name.to_string());
        Ok(split_map(generated, name, stats, move |item| {
            accept_instruction(item, &op_name, &bounds, &echo_of, &generator, &stage, 0)
        }))
    }
}
