//! Language-ID backends: fastText `lid.176.ftz` (default) and `whatlang` (pure Rust, no model
//! file; lacks Swahili and gives only its top label).

use super::codes::LangCode;
use std::collections::HashMap;
use std::path::Path;

/// One label with its confidence.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub lang: LangCode,
    pub conf: f32,
}

/// A language identifier: the best `k` labels for a single-line text, best first.
pub trait LangIdBackend: Send + Sync {
    fn name(&self) -> &'static str;
    fn predict(&self, text: &str, k: usize) -> Vec<Prediction>;
}

/// fastText, through the `fasttext` crate (the C++ library, bundled).
pub struct FastTextBackend {
    model: fasttext::FastText,
    /// The model's labels (`__label__hi`) parsed once.
    labels: HashMap<String, LangCode>,
}

impl FastTextBackend {
    pub fn load(path: &Path) -> Result<Self, String> {
        let mut model = fasttext::FastText::new();
        let p = path.to_str().ok_or_else(|| format!("{}: not UTF-8", path.display()))?;
        if !path.exists() {
            return Err(format!("{}: no such model file", path.display()));
        }
        model.load_model(p).map_err(|e| format!("loading {}: {e}", path.display()))?;
        let (names, _) =
            model.get_labels().map_err(|e| format!("{}: reading labels: {e}", path.display()))?;
        let labels = names.into_iter().filter_map(|l| Some((l.clone(), LangCode::parse(&l)?))).collect();
        Ok(FastTextBackend { model, labels })
    }
}

impl LangIdBackend for FastTextBackend {
    fn name(&self) -> &'static str {
        "fasttext"
    }

    fn predict(&self, text: &str, k: usize) -> Vec<Prediction> {
        // fastText reads one line; NUL cannot cross into C.
        let line = if text.contains(['\n', '\0']) {
            std::borrow::Cow::Owned(text.replace(['\n', '\0'], " "))
        } else {
            std::borrow::Cow::Borrowed(text)
        };
        self.model
            .predict(&line, k as i32, 0.0)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                let lang = self.labels.get(&p.label).cloned().or_else(|| LangCode::parse(&p.label))?;
                Some(Prediction { lang, conf: p.prob.clamp(0.0, 1.0) })
            })
            .collect()
    }
}

/// whatlang: trigram profiles, no model file.
pub struct WhatlangBackend;

impl LangIdBackend for WhatlangBackend {
    fn name(&self) -> &'static str {
        "whatlang"
    }

    fn predict(&self, text: &str, _k: usize) -> Vec<Prediction> {
        whatlang::detect(text)
            .and_then(|info| {
                Some(Prediction {
                    lang: LangCode::parse(info.lang().code())?,
                    conf: info.confidence() as f32,
                })
            })
            .into_iter()
            .collect()
    }
}
