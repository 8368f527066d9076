//! `cross_check`: the cross-lingual checks of a pair. The instruction must be English (language
//! ID on the instruction); the response must be in the document's language *throughout* — the
//! `lang_id` operator judged the document by a length-weighted vote of sampled paragraphs, so a
//! whole paragraph in another language (an English disclaimer under a Swahili article) can
//! pass it; here every paragraph long enough to identify is checked
//! (`response_foreign_paragraph`). An instruction that asks for a translation (by its phrasing,
//! [`super::sanity::is_translation_request`]) is flagged (`translate`), kept or dropped by
//! config — the paper's topic chart shows many such instructions.
//!
//! Stateless: nothing is held between records.

use super::sanity::is_translation_request;
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
    /// Reject pairs with a paragraph of `min_paragraph_chars` or more that is identified, at
    /// `min_foreign_conf` or more, as another language than the document's.
    pub check_response: bool,
    pub min_paragraph_chars: usize,
    pub min_foreign_conf: f32,
    pub translate: TranslatePolicy,
}

impl Default for CrossCheckConfig {
    fn default() -> Self {
        CrossCheckConfig {
            require_english: true,
            min_english_conf: 0.5,
            check_response: true,
            min_paragraph_chars: 150,
            min_foreign_conf: 0.8,
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
            if let Some((at, got, conf)) = foreign_paragraph(&doc.text, &want, identifier, cfg) {
                let detail = format!("paragraph {at} identified as {got} ({conf:.3}), document is {want}");
                return reject(doc, "response_foreign_paragraph", detail);
            }
        }
    }
    Ok(doc)
}

/// The first paragraph (0-based) of the response that is confidently another language.
fn foreign_paragraph(
    text: &str,
    want: &LangCode,
    identifier: &LangIdentifier,
    cfg: &CrossCheckConfig,
) -> Option<(usize, String, f32)> {
    text.split('\n')
        .map(str::trim)
        .filter(|p| p.chars().count() >= cfg.min_paragraph_chars)
        .enumerate()
        .find_map(|(i, p)| {
            let top = identifier.predict(p).into_iter().next()?;
            (top.lang.lang != want.lang && top.conf >= cfg.min_foreign_conf)
                .then(|| (i, top.lang.to_string(), top.conf))
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::Origin;
    use crate::lang_id::{Backend, LangIdConfig};

    fn identifier() -> LangIdentifier {
        let cfg = LangIdConfig { backend: Backend::Whatlang, languages: vec![], ..LangIdConfig::default() };
        LangIdentifier::new(&cfg).unwrap()
    }

    fn doc(text: &str) -> Doc {
        Doc {
            id: "d".into(),
            text: text.into(),
            url: None,
            source: Origin { shard: "s".into(), offset: 0 },
            lang: Some("tr_Latn".into()),
            meta: Default::default(),
            pair: Some(Box::new(crate::doc::Pair {
                instruction: "Describe the right to rest and leisure in Turkey.".into(),
                ..Default::default()
            })),
            born: None,
        }
    }

    const TURKISH: &str = "Herkesin dinlenmeye, eğlenmeye, özellikle çalışma süresinin makul ölçüde sınırlandırılmasına ve belirli dönemlerde ücretli tatile hakkı vardır. Bu hak, çalışanların sağlığı ve aile hayatı için vazgeçilmezdir.";
    const ENGLISH: &str = "This website uses cookies to improve your experience. By continuing to browse the site you agree to our use of cookies and to our privacy policy, which you can read at any time.";

    #[test]
    fn a_foreign_paragraph_in_the_response_is_caught() {
        let id = identifier();
        let cfg = CrossCheckConfig::default();
        let ok = check_pair(doc(&format!("{TURKISH}\n{TURKISH}")), "cc", &id, &cfg);
        assert!(ok.is_ok(), "{ok:?}");
        // Three Turkish paragraphs and one English: the document-level vote keeps it.
        let mixed = format!("{TURKISH}\n{TURKISH}\n{ENGLISH}\n{TURKISH}");
        let err = check_pair(doc(&mixed), "cc", &id, &cfg).unwrap_err();
        assert_eq!(err.reason, "response_foreign_paragraph", "{err:?}");
        assert!(err.detail.starts_with("paragraph 2 identified as en"), "{}", err.detail);
        let off = CrossCheckConfig { check_response: false, ..cfg };
        assert!(check_pair(doc(&mixed), "cc", &id, &off).is_ok());
    }
}
