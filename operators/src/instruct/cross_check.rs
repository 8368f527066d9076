//! `cross_check`: the cross-lingual checks of a pair. The instruction must be English (language
//! ID on the instruction), the response must still be in the document's language (language ID
//! on the text, which the `lang_id` operator also checked for script), and an instruction that
//! only asks to translate is flagged (`translate`), kept or dropped by config — the paper's
//! topic chart shows many such instructions.
//!
//! Stateless: nothing is held between records.

use super::prompt::is_translation_request;
use crate::doc::{Doc, Reject};
use crate::filter::split_docs;
use crate::lang_id::codes::LangCode;
use crate::lang_id::LangIdentifier;
use crate::stats::StatsRegistry;
use crate::Epoch;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What to do with an instruction that only asks to translate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TranslatePolicy {
    /// Keep it, flagged (`translate = true` in the dataset).
    Keep,
    /// Reject it as `instruction_translate`.
    Drop,
}

/// `[cross_check]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrossCheckConfig {
    /// Reject instructions not identified as English at `min_english_conf` or more.
    pub require_english: bool,
    pub min_english_conf: f32,
    /// Reject pairs whose response is identified as another language than the document's.
    pub check_response: bool,
    pub translate: TranslatePolicy,
}

impl Default for CrossCheckConfig {
    fn default() -> Self {
        CrossCheckConfig {
            require_english: true,
            min_english_conf: 0.5,
            check_response: true,
            translate: TranslatePolicy::Keep,
        }
    }
}

/// The checks on one document; documents without a pair pass unchanged.
pub fn check_pair(
    mut doc: Doc,
    op: &str,
    identifier: &LangIdentifier,
    cfg: &CrossCheckConfig,
) -> Result<Doc, Reject> {
    let reject = |doc: Doc, reason: &str, detail: String| {
        Err(Reject::new(doc.source.clone(), op, reason, detail, Some(doc.id)))
    };
    let Some(pair) = doc.pair.as_mut() else { return Ok(doc) };
    let top = identifier.predict(&pair.instruction).into_iter().next();
    pair.instruction_lang = top.as_ref().map(|p| p.lang.to_string()).unwrap_or_default();
    pair.translate = is_translation_request(&pair.instruction);
    let (english, conf) = top.as_ref().map_or((false, 0.0), |p| (p.lang.lang == "en", p.conf));
    if cfg.require_english && (!english || conf < cfg.min_english_conf) {
        let detail = format!(
            "instruction identified as {} ({conf:.3}): {:?}",
            pair.instruction_lang, pair.instruction
        );
        return reject(doc, "instruction_not_english", detail);
    }
    if pair.translate && cfg.translate == TranslatePolicy::Drop {
        let detail = format!("{:?}", pair.instruction);
        return reject(doc, "instruction_translate", detail);
    }
    if cfg.check_response {
        if let Some(want) = doc.lang.as_deref().and_then(LangCode::parse) {
            if let Some(got) = identifier.identify(&doc.text) {
                if got.lang.lang != want.lang {
                    let detail =
                        format!("response identified as {} ({:.3}), document is {want}", got.lang, got.conf);
                    return reject(doc, "response_lang_mismatch", detail);
                }
            }
        }
    }
    Ok(doc)
}

pub trait CrossCheck<'s> {
    fn cross_check(
        self,
        identifier: &Arc<LangIdentifier>,
        cfg: &CrossCheckConfig,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>);

    fn cross_check_named(
        self,
        name: &str,
        identifier: &Arc<LangIdentifier>,
        cfg: &CrossCheckConfig,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>);
}

impl<'s> CrossCheck<'s> for VecCollection<'s, Epoch, Doc> {
    fn cross_check(
        self,
        identifier: &Arc<LangIdentifier>,
        cfg: &CrossCheckConfig,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>) {
        self.cross_check_named("cross_check", identifier, cfg, stats)
    }

    fn cross_check_named(
        self,
        name: &str,
        identifier: &Arc<LangIdentifier>,
        cfg: &CrossCheckConfig,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>) {
        let (identifier, cfg, op) = (identifier.clone(), cfg.clone(), name.to_string());
        split_docs(self, name, stats, move |doc| check_pair(doc, &op, &identifier, &cfg))
    }
}
