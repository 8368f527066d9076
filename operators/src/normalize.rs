//! `normalize`: Unicode NFC, HTML entities, whitespace and control characters, boilerplate
//! lines (cookie banners, navigation menus, "share this" rows), paragraph boundaries kept.
//! Stateless.

use crate::doc::{Doc, Reject};
use crate::filter::{rewrite_text, split_docs};
use crate::stats::StatsRegistry;
use crate::Epoch;
use differential_dataflow::VecCollection;
use icu_normalizer::ComposingNormalizerBorrowed;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// `[normalize]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    /// Decode HTML entities (`&amp;`, `&#8217;`, …), common in WET text.
    #[serde(default = "yes")]
    pub html_entities: bool,
    /// Drop boilerplate lines (see `boilerplate_phrases` and menu detection).
    #[serde(default = "yes")]
    pub drop_boilerplate: bool,
    /// A short line (< 160 characters) containing one of these (case-insensitive) is boilerplate.
    #[serde(default = "default_phrases")]
    pub boilerplate_phrases: Vec<String>,
    /// Documents where more than this fraction of characters are U+FFFD, private-use or
    /// non-characters are rejected as `invalid_codepoints`.
    #[serde(default = "default_max_invalid_fraction")]
    pub max_invalid_fraction: f64,
}

fn yes() -> bool {
    true
}
fn default_phrases() -> Vec<String> {
    [
        "cookie",
        "accept all",
        "privacy policy",
        "terms of use",
        "terms and conditions",
        "all rights reserved",
        "share this",
        "share on",
        "follow us",
        "sign in",
        "log in",
        "subscribe",
        "newsletter",
        "skip to content",
        "click here",
        "read more",
        "back to top",
        "powered by",
        "javascript is disabled",
        "enable javascript",
    ]
    .map(String::from)
    .to_vec()
}
fn default_max_invalid_fraction() -> f64 {
    0.01
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            html_entities: true,
            drop_boilerplate: true,
            boilerplate_phrases: default_phrases(),
            max_invalid_fraction: default_max_invalid_fraction(),
        }
    }
}

/// The normalization logic, usable without a dataflow.
#[derive(Clone)]
pub struct Normalizer {
    cfg: NormalizeConfig,
    /// The boilerplate phrases, matched case-insensitively in one pass over a line.
    phrases: aho_corasick::AhoCorasick,
}

/// Characters that carry no text: zero-width space, BOM, word joiner, soft hyphen. ZWJ and
/// ZWNJ (U+200C/D) are kept: Indic and Arabic-script orthography needs them.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}' | '\u{FEFF}' | '\u{2060}' | '\u{00AD}')
}

fn is_invalid(c: char) -> bool {
    let u = c as u32;
    c == '\u{FFFD}'
        || (0xE000..=0xF8FF).contains(&u)
        || u >= 0xF0000
        || (0xFDD0..=0xFDEF).contains(&u)
        || (u & 0xFFFE) == 0xFFFE
}

impl Normalizer {
    pub fn new(cfg: &NormalizeConfig) -> Self {
        let phrases = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(cfg.boilerplate_phrases.iter().map(|p| p.to_lowercase()))
            .expect("boilerplate phrases build an automaton");
        Normalizer { cfg: cfg.clone(), phrases }
    }

    /// The normalized text, or the reject reason and detail.
    pub fn normalize(&self, text: &str) -> Result<String, (&'static str, String)> {
        let decoded;
        let mut text = text;
        if self.cfg.html_entities && text.contains('&') {
            decoded = html_escape::decode_html_entities(text).into_owned();
            text = &decoded;
        }
        let composed;
        // ICU4X's NFC copies nothing when the text already is NFC. (unicode-normalization's
        // quick check answers "maybe" for Bengali and Tamil vowel signs, so those documents
        // were always recomposed into a new string: 7% of the filter chain.)
        if let Cow::Owned(nfc) = ComposingNormalizerBorrowed::new_nfc().normalize(text) {
            composed = nfc;
            text = &composed;
        }
        // Unchanged runs are copied whole; only characters that change or go are handled one
        // by one.
        let (mut invalid, mut total) = (0usize, 0usize);
        let mut cleaned = String::with_capacity(text.len());
        let mut run = 0;
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            total += 1;
            let keep = match c {
                ' ' | '\n' => true,
                c if c.is_ascii() => !c.is_ascii_control(),
                c => !(c.is_whitespace() || c.is_control() || is_invisible(c)),
            };
            if keep {
                invalid += (!c.is_ascii() && is_invalid(c)) as usize;
                continue;
            }
            cleaned.push_str(&text[run..i]);
            run = i + c.len_utf8();
            match c {
                '\r' if chars.peek().map(|(_, n)| *n) == Some('\n') => {}
                '\r' => cleaned.push('\n'),
                c if c.is_whitespace() => cleaned.push(' '),
                _ => {} // control characters and invisible ones
            }
        }
        cleaned.push_str(&text[run..]);
        if total > 0 && invalid as f64 / total as f64 > self.cfg.max_invalid_fraction {
            return Err((
                "invalid_codepoints",
                format!("{invalid} of {total} characters are U+FFFD, private-use or non-characters"),
            ));
        }
        let mut out = String::with_capacity(cleaned.len());
        let mut blank_pending = false;
        let mut line = String::new();
        for raw in cleaned.split('\n') {
            collapse_spaces(raw, &mut line);
            if line.is_empty() {
                blank_pending = !out.is_empty();
                continue;
            }
            if self.cfg.drop_boilerplate && self.is_boilerplate(&line) {
                continue;
            }
            if !out.is_empty() {
                out.push_str(if blank_pending { "\n\n" } else { "\n" });
            }
            blank_pending = false;
            out.push_str(&line);
        }
        if out.chars().all(|c| !c.is_alphanumeric()) {
            return Err(("empty_after_normalize", "no letters or digits left after normalization".into()));
        }
        Ok(out)
    }

    /// Boilerplate: a short line with a boilerplate phrase, or a navigation menu (three or
    /// more short items between separators).
    pub fn is_boilerplate(&self, line: &str) -> bool {
        const SEPARATORS: [char; 5] = ['|', '•', '·', '»', '›'];
        if line.len() < 640 && line.chars().count() < 160 && self.phrases.is_match(line) {
            return true;
        }
        if !line.contains(SEPARATORS) {
            return false;
        }
        let items: Vec<&str> = line.split(SEPARATORS).map(str::trim).filter(|s| !s.is_empty()).collect();
        items.len() >= 3 && items.iter().all(|i| i.split(' ').count() <= 3)
    }
}

/// `line` with runs of spaces made one and trimmed, into `out` (reused across lines).
fn collapse_spaces(line: &str, out: &mut String) {
    out.clear();
    let b = line.as_bytes();
    // Most lines have single spaces and no space at either end: copied whole.
    if b.first() != Some(&b' ') && b.last() != Some(&b' ') && !b.windows(2).any(|w| w == b"  ") {
        out.push_str(line);
        return;
    }
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
}

/// Normalizes the text of every document.
pub trait Normalize<'s> {
    fn normalize(
        self,
        cfg: &NormalizeConfig,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>);

    fn normalize_named(
        self,
        name: &str,
        cfg: &NormalizeConfig,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>);
}

impl<'s> Normalize<'s> for VecCollection<'s, Epoch, Doc> {
    fn normalize(
        self,
        cfg: &NormalizeConfig,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>) {
        self.normalize_named("normalize", cfg, stats)
    }

    fn normalize_named(
        self,
        name: &str,
        cfg: &NormalizeConfig,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>) {
        let normalizer = Normalizer::new(cfg);
        let op = name.to_string();
        split_docs(self, name, stats, move |doc| {
            let result = normalizer.normalize(&doc.text);
            rewrite_text(doc, &op, result)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str) -> Result<String, (&'static str, String)> {
        Normalizer::new(&NormalizeConfig::default()).normalize(text)
    }

    #[test]
    fn nfc_entities_whitespace_and_paragraphs() {
        // "e" + combining acute -> "é"; entities decoded; tabs and NBSP become spaces.
        let got =
            norm("Cafe\u{301} &amp; caf&eacute;\tok\u{00A0} x\r\n\r\n\n\nNext\u{200B} para  here").unwrap();
        assert_eq!(got, "Café & café ok x\n\nNext para here");
    }

    #[test]
    fn composes_decomposed_indic_vowel_signs_and_leaves_nfc_text_alone() {
        // Bengali O = E sign + AA sign, Tamil O = E sign + AA sign: NFC composes both.
        assert_eq!(norm("ক\u{9C7}\u{9BE}ল").unwrap(), "ক\u{9CB}ল");
        assert_eq!(norm("க\u{BC6}\u{BBE}டு").unwrap(), "க\u{BCA}டு");
        let nfc = "সমস্ত মানুষ স্বাধীনভাবে সমান মর্যাদা এবং অধিকার নিয়ে জন্মগ্রহণ করে।";
        assert_eq!(norm(nfc).unwrap(), nfc);
    }

    #[test]
    fn collapses_spaces_like_splitting_and_joining() {
        let mut out = String::new();
        for line in ["a b c", "  a  b ", "a", " ", "", "a  b", "a b ", " a b", "हर  व्यक्ति को"]
        {
            collapse_spaces(line, &mut out);
            assert_eq!(
                out,
                line.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" "),
                "{line:?}"
            );
        }
    }

    #[test]
    fn lone_carriage_returns_controls_and_unicode_spaces() {
        assert_eq!(norm("a\rb\u{7}c\u{85}d\u{1F}e\u{3000}f\u{2028}g").unwrap(), "a\nbc de f g");
        assert_eq!(norm("x\r\n\ry \u{7f}").unwrap(), "x\n\ny");
    }

    #[test]
    fn keeps_zwj_and_zwnj_for_indic_text() {
        let text = "क्\u{200D}ष और न\u{200C}हीं";
        assert_eq!(norm(text).unwrap(), text);
    }

    #[test]
    fn drops_boilerplate_lines_but_keeps_text() {
        let text = "Home | About | Contact | Blog\nThis website uses cookies.\nहर व्यक्ति को स्वतंत्रता का अधिकार है।\nShare this: Facebook\n© 2024 All rights reserved";
        assert_eq!(norm(text).unwrap(), "हर व्यक्ति को स्वतंत्रता का अधिकार है।");
    }

    #[test]
    fn rejects_empty_symbol_only_and_invalid_text() {
        assert_eq!(norm("").unwrap_err().0, "empty_after_normalize");
        assert_eq!(norm(" \n\t ").unwrap_err().0, "empty_after_normalize");
        assert_eq!(norm("!!! ??? ... 🙂🙂").unwrap_err().0, "empty_after_normalize");
        assert_eq!(norm("abc \u{FFFD}\u{FFFD}\u{FFFD} def").unwrap_err().0, "invalid_codepoints");
        assert_eq!(norm("\u{E000}\u{E001} text").unwrap_err().0, "invalid_codepoints");
    }

    #[test]
    fn large_text_is_handled() {
        let text = "word ".repeat(10 << 20);
        assert_eq!(norm(&text).unwrap().len(), 5 * (10 << 20) - 1);
    }
}
