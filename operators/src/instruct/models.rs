//! What the X-Instruction stages share: the generator and the evaluator (the evaluator may be
//! a different model), the memo cache, batching, and the per-document helpers every stage's
//! prompt builder uses (seed, language name, prompt-safe text).

use super::prompt::{neutralize_with, Specials};
use crate::doc::Doc;
use crate::generate::{GenerateConfig, GenerateOp, Generator, MemoCache};
use crate::lang_id::codes::LangCode;
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64_with_seed;

#[derive(Clone)]
pub struct StageModels {
    pub generator: Arc<dyn Generator>,
    pub evaluator: Arc<dyn Generator>,
    pub memo: Option<Arc<MemoCache>>,
    pub batching: GenerateConfig,
    /// Model requests and answers are counted here for the progress bar.
    pub progress: Option<Arc<crate::source::Progress>>,
}

impl StageModels {
    /// The `generate` operator's settings for a stage (`stage` = the template's stage key).
    pub fn generator_op(&self, stage: String) -> GenerateOp {
        GenerateOp {
            generator: self.generator.clone(),
            memo: self.memo.clone(),
            stage,
            config: self.batching.clone(),
            progress: self.progress.clone(),
        }
    }

    pub fn evaluator_op(&self, stage: String) -> GenerateOp {
        GenerateOp { generator: self.evaluator.clone(), ..self.generator_op(stage) }
    }

    /// The special tokens of the generator and the evaluator, defused in every prompt's
    /// document text and model-written parts.
    pub fn specials(&self) -> Arc<Specials> {
        let mut tokens = self.generator.special_tokens();
        tokens.extend(self.evaluator.special_tokens());
        Arc::new(Specials::new(tokens))
    }
}

/// Text written by a model (an instruction, a judge's reason) as a later prompt may hold it.
pub fn prompt_safe(text: &str, specials: &Specials) -> String {
    neutralize_with(text, specials).0
}

/// A sampling seed fixed by the document and `salt` (the attempt or iteration), so reruns ask
/// the same question (and hit the memo) while each refinement samples anew.
pub fn doc_seed(doc: &Doc, salt: u64) -> u64 {
    xxh3_64_with_seed(doc.id.as_bytes(), salt)
}

/// The key that keeps a document's requests on one server of a pool (every stage's).
pub fn doc_affinity(doc: &Doc) -> Option<u64> {
    Some(xxh3_64_with_seed(doc.id.as_bytes(), 0xaf))
}

/// Whether the document falls in the `rate` fraction picked for generation (by its id, so the
/// same documents are picked on every run).
pub fn sampled(doc: &Doc, rate: f64) -> bool {
    rate >= 1.0 || (xxh3_64_with_seed(doc.id.as_bytes(), 0x5a) as f64 / u64::MAX as f64) < rate
}

/// The English name of the document's language (`Hindi`), or a neutral phrase when unknown.
pub fn language_name(doc: &Doc) -> String {
    doc.lang
        .as_deref()
        .and_then(LangCode::parse)
        .map(|c| c.name().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "the document's language".to_string())
}

/// The document's text as a prompt may hold it: neutralized (see [`neutralize_with`]) and cut to
/// `max_chars` characters at a paragraph or sentence end when one is near.
pub fn prompt_text(doc: &Doc, max_chars: usize, specials: &Specials) -> String {
    let (clean, _) = neutralize_with(&doc.text, specials);
    let Some((end, _)) = clean.char_indices().nth(max_chars) else { return clean };
    let cut = &clean[..end];
    let at = cut.rfind("\n\n").filter(|&i| i > end / 2).or_else(|| {
        cut.rfind(['.', '!', '?', '।', '۔', '。'])
            .filter(|&i| i > end / 2)
            .map(|i| i + cut[i..].chars().next().map_or(1, char::len_utf8))
    });
    cut[..at.unwrap_or(end)].trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::Origin;

    fn doc(id: &str, text: &str, lang: Option<&str>) -> Doc {
        Doc {
            id: id.into(),
            text: text.into(),
            url: None,
            source: Origin { shard: "s".into(), offset: 0 },
            lang: lang.map(String::from),
            meta: Default::default(),
            pair: None,
            born: None,
        }
    }

    #[test]
    fn prompt_text_is_neutralized_and_cut_at_a_sentence() {
        let d = doc("a", "Yksi lause. Toinen lause on pidempi.\n### Text:\nKolmas.", Some("fi_Latn"));
        assert_eq!(
            prompt_text(&d, 1000, &Specials::default()),
            "Yksi lause. Toinen lause on pidempi.\n## Text:\nKolmas."
        );
        assert_eq!(prompt_text(&d, 40, &Specials::default()), "Yksi lause. Toinen lause on pidempi.");
        let hi = doc("b", "सरकार की सत्ता का आधार जनता की इच्छा होगी। इस इच्छा का प्रकटन समय-समय पर होगा।", None);
        assert_eq!(prompt_text(&hi, 60, &Specials::default()), "सरकार की सत्ता का आधार जनता की इच्छा होगी।");
        assert_eq!(language_name(&d), "Finnish");
        assert_eq!(language_name(&hi), "the document's language");
    }

    #[test]
    fn sampling_is_by_id_and_near_the_rate() {
        let picked = (0..10_000).filter(|i| sampled(&doc(&format!("d{i}"), "", None), 0.25)).count();
        assert!((2_300..2_700).contains(&picked), "{picked}");
        assert!(sampled(&doc("x", "", None), 1.0));
        assert_eq!(doc_seed(&doc("x", "", None), 1), doc_seed(&doc("x", "", None), 1));
        assert_ne!(doc_seed(&doc("x", "", None), 1), doc_seed(&doc("x", "", None), 2));
    }
}
