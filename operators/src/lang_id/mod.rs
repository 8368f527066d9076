//! `lang_id`: labels each document with one canonical language code (`hi_Deva`) and a
//! confidence, and rejects what is not confidently one of the wanted languages.
//!
//! Long documents vote: every paragraph is labelled and weighted by its length; the majority
//! label wins and its share is recorded (`lang_majority_frac`). Then two checks catch the
//! model's known failure modes: the script check (a Hindi label needs mostly Devanagari, Urdu
//! Arabic script, …) and a Latin-script orthography check for fi, id, sw, tr, vi (function
//! words, letters, and Malay-vs-Indonesian markers). The runner-up label and its confidence are
//! kept in `meta`. Stateless: the model is shared, read-only, by the workers of a process.

pub mod backend;
pub mod codes;
pub mod script;

use crate::doc::{Doc, Reject};
use crate::filter::{split_docs, Verdict};
use crate::stats::StatsRegistry;
use crate::Epoch;
use backend::{FastTextBackend, LangIdBackend, Prediction, WhatlangBackend};
use codes::LangCode;
use differential_dataflow::VecCollection;
use script::{latin_check, script_fraction, LatinCheck};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// fastText lid.176.ftz (176 languages).
    Fasttext,
    /// whatlang (69 languages, no Swahili; no model file).
    Whatlang,
}

/// `[lang_id]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LangIdConfig {
    #[serde(default = "default_backend")]
    pub backend: Backend,
    /// The fastText model; default: lid.176.ftz in the model cache (fetched on first use).
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// Languages to keep, in any code form (`hi`, `hin`, `hin_Deva`); empty keeps every language.
    #[serde(default = "default_languages")]
    pub languages: Vec<String>,
    /// Minimum confidence, unless `thresholds` names the language.
    #[serde(default = "default_threshold")]
    pub default_threshold: f32,
    /// Per-language minimum confidence.
    #[serde(default = "default_thresholds")]
    pub thresholds: BTreeMap<String, f32>,
    /// Documents at least this long (characters) with two or more paragraphs vote by paragraph.
    #[serde(default = "default_vote_min_chars")]
    pub vote_min_chars: usize,
    /// Paragraphs shorter than this do not vote.
    #[serde(default = "default_min_paragraph_chars")]
    pub min_paragraph_chars: usize,
    /// Characters of a document the model reads: a prefix of a short document, or an equal
    /// share of each voting paragraph (evenly spaced paragraphs when there are too many).
    /// Accuracy barely moves past a few hundred characters; the cost is linear in them.
    #[serde(default = "default_sample_chars")]
    pub sample_chars: usize,
    /// A vote whose majority holds less than this share of the text is `lang_mixed`.
    #[serde(default = "default_min_majority")]
    pub min_majority_fraction: f64,
    /// Reject labels whose script is not the text's (`script_mismatch`).
    #[serde(default = "yes")]
    pub script_check: bool,
    /// Share of letters that must be in the language's script.
    #[serde(default = "default_min_script_fraction")]
    pub min_script_fraction: f64,
    /// The Latin-script orthography check for fi, id, sw, tr, vi (`lang_check_failed`).
    #[serde(default = "yes")]
    pub latin_check: bool,
    /// Share of words that must be the language's function words in the Latin-script check.
    #[serde(default = "default_min_stopword_fraction")]
    pub min_stopword_fraction: f64,
}

fn yes() -> bool {
    true
}
fn default_backend() -> Backend {
    Backend::Fasttext
}
fn default_languages() -> Vec<String> {
    // The paper's ten languages. English is available (add "en") but not a default: an
    // English response to an English instruction is not cross-lingual data.
    ["bn", "fi", "hi", "id", "sw", "ta", "th", "tr", "ur", "vi"].map(String::from).to_vec()
}
fn default_threshold() -> f32 {
    0.5
}
fn default_thresholds() -> BTreeMap<String, f32> {
    BTreeMap::from([("en".to_string(), 0.65)])
}
fn default_vote_min_chars() -> usize {
    600
}
fn default_min_paragraph_chars() -> usize {
    40
}
fn default_sample_chars() -> usize {
    320
}
fn default_min_majority() -> f64 {
    0.6
}
fn default_min_script_fraction() -> f64 {
    0.6
}
fn default_min_stopword_fraction() -> f64 {
    0.02
}

impl Default for LangIdConfig {
    fn default() -> Self {
        LangIdConfig {
            backend: default_backend(),
            model: None,
            languages: default_languages(),
            default_threshold: default_threshold(),
            thresholds: default_thresholds(),
            vote_min_chars: default_vote_min_chars(),
            min_paragraph_chars: default_min_paragraph_chars(),
            sample_chars: default_sample_chars(),
            min_majority_fraction: default_min_majority(),
            script_check: true,
            min_script_fraction: default_min_script_fraction(),
            latin_check: true,
            min_stopword_fraction: default_min_stopword_fraction(),
        }
    }
}

/// A document's language as the operator decided it.
#[derive(Clone, Debug, PartialEq)]
pub struct Identified {
    pub lang: LangCode,
    pub conf: f32,
    pub runner_up: Option<Prediction>,
    /// Share of the text in the majority language, when the document voted.
    pub majority_fraction: Option<f64>,
}

/// Why a document was not accepted, with what was identified (if anything).
#[derive(Clone, Debug)]
pub struct Refusal {
    pub reason: &'static str,
    pub detail: String,
    pub identified: Option<Identified>,
}

/// The language-ID logic, usable without a dataflow (`xinst langid` uses it too).
pub struct LangIdentifier {
    cfg: LangIdConfig,
    backend: Box<dyn LangIdBackend>,
    /// Wanted 639 codes; empty = all.
    wanted: BTreeSet<String>,
    thresholds: BTreeMap<String, f32>,
}

impl LangIdentifier {
    /// Loads the configured backend. `cfg.model` must name the fastText model for that backend.
    pub fn new(cfg: &LangIdConfig) -> Result<Self, String> {
        let backend: Box<dyn LangIdBackend> = match cfg.backend {
            Backend::Fasttext => {
                let path = cfg.model.as_ref().ok_or("lang_id.model: no fastText model path")?;
                Box::new(FastTextBackend::load(path)?)
            }
            Backend::Whatlang => Box::new(WhatlangBackend),
        };
        Self::with_backend(cfg, backend)
    }

    pub fn with_backend(cfg: &LangIdConfig, backend: Box<dyn LangIdBackend>) -> Result<Self, String> {
        let parse = |l: &String| {
            LangCode::parse(l).map(|c| c.lang).ok_or(format!("lang_id: '{l}' is not a language code"))
        };
        let wanted = cfg.languages.iter().map(parse).collect::<Result<_, _>>()?;
        let thresholds =
            cfg.thresholds.iter().map(|(l, t)| Ok((parse(l)?, *t))).collect::<Result<_, String>>()?;
        Ok(LangIdentifier { cfg: cfg.clone(), backend, wanted, thresholds })
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The model's top two labels for a text; ALL-CAPS text is lower-cased first (lid.176
    /// mislabels upper-case text).
    pub fn predict(&self, text: &str) -> Vec<Prediction> {
        let (upper, cased) = text.chars().fold((0usize, 0usize), |(u, c), ch| {
            (u + ch.is_uppercase() as usize, c + (ch.is_uppercase() || ch.is_lowercase()) as usize)
        });
        if cased > 0 && upper * 2 > cased {
            self.backend.predict(&text.to_lowercase(), 2)
        } else {
            self.backend.predict(text, 2)
        }
    }

    /// Labels a text: a prefix of it, or a length-weighted vote of its paragraphs, reading at
    /// most `sample_chars` characters either way.
    pub fn identify(&self, text: &str) -> Option<Identified> {
        let paragraphs: Vec<&str> = text
            .split("\n\n")
            .map(str::trim)
            .filter(|p| has_chars(p, self.cfg.min_paragraph_chars))
            .collect();
        if paragraphs.len() < 2 || !has_chars(text, self.cfg.vote_min_chars) {
            let mut top = self.predict(prefix(text, self.cfg.sample_chars)).into_iter();
            let best = top.next()?;
            return Some(Identified {
                lang: best.lang,
                conf: best.conf,
                runner_up: top.next(),
                majority_fraction: None,
            });
        }
        // Evenly spaced voters, each reading an equal share of the budget (at least 80
        // characters: below that fastText's accuracy drops, see docs/benchmarks.md).
        let voters = paragraphs.len().min((self.cfg.sample_chars / 80).max(2));
        let share = self.cfg.sample_chars / voters;
        // label -> (weight, weighted confidence) for first and second choices.
        let mut first: BTreeMap<LangCode, (f64, f64)> = BTreeMap::new();
        let mut second: BTreeMap<LangCode, (f64, f64)> = BTreeMap::new();
        let mut total = 0f64;
        for k in 0..voters {
            let p = paragraphs[k * paragraphs.len() / voters];
            let w = p.chars().count() as f64;
            let mut top = self.predict(prefix(p, share)).into_iter();
            let Some(best) = top.next() else { continue };
            let v = first.entry(best.lang).or_default();
            v.0 += w;
            v.1 += w * best.conf as f64;
            total += w;
            if let Some(next) = top.next() {
                let v = second.entry(next.lang).or_default();
                v.0 += w;
                v.1 += w * next.conf as f64;
            }
        }
        let heaviest = |m: &BTreeMap<LangCode, (f64, f64)>, skip: Option<&LangCode>| {
            m.iter()
                .filter(|(l, _)| Some(*l) != skip)
                .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then_with(|| b.0.cmp(a.0)))
                .map(|(l, v)| (l.clone(), *v))
        };
        let (lang, (weight, conf_sum)) = heaviest(&first, None)?;
        // The runner-up: the second language of the vote, else the commonest second choice.
        let runner_up = heaviest(&first, Some(&lang))
            .or_else(|| heaviest(&second, Some(&lang)))
            .map(|(l, (w, c))| Prediction { lang: l, conf: (c / w) as f32 });
        Some(Identified {
            lang,
            conf: (conf_sum / weight) as f32,
            runner_up,
            majority_fraction: Some(weight / total),
        })
    }

    /// Identifies and applies the thresholds and checks.
    pub fn check(&self, text: &str) -> Result<Identified, Refusal> {
        let Some(id) = self.identify(text) else {
            return Err(Refusal {
                reason: "lang_undetermined",
                detail: "no language label".into(),
                identified: None,
            });
        };
        let refuse = |reason, detail: String| Err(Refusal { reason, detail, identified: Some(id.clone()) });
        let code = id.lang.lang.as_str();
        if !self.wanted.is_empty() && !self.wanted.contains(code) {
            return refuse(
                "lang_not_target",
                format!("{} ({:.3}) is not a wanted language", id.lang, id.conf),
            );
        }
        let threshold = self.thresholds.get(code).copied().unwrap_or(self.cfg.default_threshold);
        if id.conf < threshold {
            return refuse(
                "lang_low_conf",
                format!("{} at {:.3} < {threshold}{}", id.lang, id.conf, runner(&id)),
            );
        }
        if let Some(f) = id.majority_fraction.filter(|f| *f < self.cfg.min_majority_fraction) {
            return refuse("lang_mixed", format!("{} holds {:.2} of the text{}", id.lang, f, runner(&id)));
        }
        if self.cfg.script_check && !id.lang.script.is_empty() {
            let frac = script_fraction(text, &id.lang.script).unwrap_or(0.0);
            if frac < self.cfg.min_script_fraction {
                return refuse(
                    "script_mismatch",
                    format!(
                        "{}: {:.2} of letters in {} (< {})",
                        id.lang, frac, id.lang.script, self.cfg.min_script_fraction
                    ),
                );
            }
        }
        if self.cfg.latin_check {
            match latin_check(code, text, self.cfg.min_stopword_fraction) {
                LatinCheck::Ok => {}
                LatinCheck::Failed(why) | LatinCheck::LooksMalay(why) => {
                    return refuse("lang_check_failed", format!("{}: {why}{}", id.lang, runner(&id)));
                }
            }
        }
        Ok(id)
    }
}

/// Whether `text` has at least `n` characters (a char is at most 4 bytes; counting stops at n).
fn has_chars(text: &str, n: usize) -> bool {
    text.len() >= 4 * n || text.chars().take(n).count() == n
}

/// The first `chars` characters of `text`, cut back to a word boundary when one is near.
fn prefix(text: &str, chars: usize) -> &str {
    let Some((end, _)) = text.char_indices().nth(chars) else { return text };
    let cut = &text[..end];
    match cut.rfind(char::is_whitespace) {
        Some(space) if space > end / 2 => &cut[..space],
        _ => cut,
    }
}

fn runner(id: &Identified) -> String {
    id.runner_up.as_ref().map(|r| format!("; runner-up {} {:.3}", r.lang, r.conf)).unwrap_or_default()
}

/// Labels documents with their language.
pub trait LangId<'s> {
    fn lang_id(
        self,
        identifier: &Arc<LangIdentifier>,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>);

    fn lang_id_named(
        self,
        name: &str,
        identifier: &Arc<LangIdentifier>,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>);
}

impl<'s> LangId<'s> for VecCollection<'s, Epoch, Doc> {
    fn lang_id(
        self,
        identifier: &Arc<LangIdentifier>,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>) {
        self.lang_id_named("lang_id", identifier, stats)
    }

    fn lang_id_named(
        self,
        name: &str,
        identifier: &Arc<LangIdentifier>,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>) {
        let identifier = identifier.clone();
        let op = name.to_string();
        split_docs(self, name, stats, move |mut doc| -> Verdict {
            match identifier.check(&doc.text) {
                Ok(id) => {
                    if let Some(prev) = doc.lang.take() {
                        if LangCode::parse(&prev).map(|c| c.to_string()) != Some(id.lang.to_string()) {
                            doc.meta.insert("source_lang".into(), prev);
                        }
                    }
                    doc.lang = Some(id.lang.to_string());
                    annotate(&mut doc, &id);
                    Ok(doc)
                }
                Err(refusal) => {
                    Err(Reject::new(doc.source.clone(), &op, refusal.reason, refusal.detail, Some(doc.id)))
                }
            }
        })
    }
}

fn annotate(doc: &mut Doc, id: &Identified) {
    doc.meta.insert("lang_conf".into(), format!("{:.4}", id.conf));
    if let Some(r) = &id.runner_up {
        doc.meta.insert("lang_runner_up".into(), r.lang.to_string());
        doc.meta.insert("lang_runner_up_conf".into(), format!("{:.4}", r.conf));
    }
    if let Some(f) = id.majority_fraction {
        doc.meta.insert("lang_majority_frac".into(), format!("{f:.4}"));
    }
}
