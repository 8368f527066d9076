//! `quality`: Gopher quality and repetition rules, C4 line and document rules, and the
//! X-Instruction response-length band. Words are split by Unicode word boundaries (UAX #29);
//! text in scripts written without spaces (Thai, Lao, Khmer, Burmese) goes through ICU4X's
//! dictionary segmenter. Language-specific rules (stop words, terminal punctuation) use the
//! label that `lang_id` set. The C4 line filter drops lines, so the kept text can be shorter.
//! Stateless.

use crate::chars::is_letter;
use crate::doc::{Doc, Reject};
use crate::filter::{rewrite_text, split_docs};
use crate::lang_id::script::stopwords;
use crate::stats::StatsRegistry;
use crate::Epoch;
use differential_dataflow::VecCollection;
use icu_segmenter::options::WordBreakInvariantOptions;
use icu_segmenter::WordSegmenter;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use unicode_segmentation::UnicodeSegmentation;
use xxhash_rust::xxh3::xxh3_64;

/// `[quality.gopher]`: Gopher (Rae et al. 2021) document rules, datatrove's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GopherConfig {
    pub enabled: bool,
    pub min_doc_words: usize,
    pub max_doc_words: usize,
    pub min_avg_word_length: f64,
    pub max_avg_word_length: f64,
    /// (`#` + ellipses) per word.
    pub max_symbol_word_ratio: f64,
    pub max_bullet_lines_ratio: f64,
    pub max_ellipsis_lines_ratio: f64,
    /// Share of words that must contain a letter.
    pub min_alpha_words_ratio: f64,
    /// Stop words of the document's language that must occur (languages without a list skip it).
    pub min_stop_words: usize,
}

impl Default for GopherConfig {
    fn default() -> Self {
        GopherConfig {
            enabled: true,
            min_doc_words: 50,
            max_doc_words: 100_000,
            min_avg_word_length: 2.0,
            max_avg_word_length: 12.0,
            max_symbol_word_ratio: 0.1,
            max_bullet_lines_ratio: 0.9,
            max_ellipsis_lines_ratio: 0.3,
            min_alpha_words_ratio: 0.8,
            min_stop_words: 2,
        }
    }
}

/// `[quality.repetition]`: Gopher repetition rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepetitionConfig {
    pub enabled: bool,
    pub max_dup_line_fraction: f64,
    pub max_dup_para_fraction: f64,
    pub max_dup_line_char_fraction: f64,
    pub max_dup_para_char_fraction: f64,
    /// (n, max share of characters in the most frequent n-gram)
    pub top_ngrams: Vec<(usize, f64)>,
    /// (n, max share of characters in n-grams that occur more than once)
    pub dup_ngrams: Vec<(usize, f64)>,
}

impl Default for RepetitionConfig {
    fn default() -> Self {
        RepetitionConfig {
            enabled: true,
            max_dup_line_fraction: 0.3,
            max_dup_para_fraction: 0.3,
            max_dup_line_char_fraction: 0.2,
            max_dup_para_char_fraction: 0.2,
            top_ngrams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_ngrams: vec![(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)],
        }
    }
}

/// `[quality.c4]`: C4 (Raffel et al. 2020) rules, datatrove's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct C4Config {
    pub enabled: bool,
    /// Drop lines that do not end in terminal punctuation.
    pub filter_no_terminal_punct: bool,
    /// Languages written without sentence-final punctuation, exempt from that rule and from
    /// `min_sentences`.
    pub no_terminal_punct_langs: Vec<String>,
    pub min_words_per_line: usize,
    pub max_word_length: usize,
    pub min_sentences: usize,
    pub filter_lorem_ipsum: bool,
    pub filter_javascript: bool,
    pub filter_curly_bracket: bool,
    pub filter_policy: bool,
}

impl Default for C4Config {
    fn default() -> Self {
        C4Config {
            enabled: true,
            filter_no_terminal_punct: true,
            no_terminal_punct_langs: ["th", "lo", "km", "my"].map(String::from).to_vec(),
            min_words_per_line: 3,
            max_word_length: 1000,
            min_sentences: 3,
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
        }
    }
}

/// `[quality.length]`: the X-Instruction response band. The paper's responses average
/// 1,000–1,300 characters with a standard deviation near 500; the default keeps about
/// mean ± 2σ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LengthConfig {
    pub enabled: bool,
    pub min_chars: usize,
    pub max_chars: usize,
}

impl Default for LengthConfig {
    fn default() -> Self {
        LengthConfig { enabled: true, min_chars: 200, max_chars: 2600 }
    }
}

/// `[quality]` in the config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityConfig {
    pub gopher: GopherConfig,
    pub repetition: RepetitionConfig,
    pub c4: C4Config,
    pub length: LengthConfig,
}

/// Built once: constructing a dictionary segmenter costs far more than segmenting a document.
static DICTIONARY_SEGMENTER: std::sync::LazyLock<icu_segmenter::WordSegmenterBorrowed<'static>> =
    std::sync::LazyLock::new(|| WordSegmenter::new_dictionary(WordBreakInvariantOptions::default()));

/// True for characters of scripts written without spaces between words.
pub(crate) fn needs_dictionary(c: char) -> bool {
    matches!(c as u32, 0x0E00..=0x0EFF | 0x1780..=0x17FF | 0x1000..=0x109F)
}

/// The words of a text: UAX #29 word boundaries, or ICU4X's dictionary segmenter when the
/// text contains Thai, Lao, Khmer or Burmese.
pub fn words(text: &str) -> Vec<&str> {
    if text.is_ascii() {
        return text.unicode_words().collect();
    }
    if !text.chars().any(needs_dictionary) {
        // What `unicode_words` does (segments with a letter or digit), with the letter test
        // from a table: the standard library's lookup was 2% of the filter chain.
        return text
            .split_word_bounds()
            .filter(|w| w.chars().any(|c| is_letter(c) || c.is_numeric()))
            .collect();
    }
    dictionary_words(text).collect()
}

/// The word-like segments of ICU4X's dictionary segmenter, computed as they are read.
fn dictionary_words(text: &str) -> impl Iterator<Item = &str> {
    let mut iter = DICTIONARY_SEGMENTER.segment_str(text);
    let mut prev = 0;
    std::iter::from_fn(move || loop {
        let bp = iter.next()?;
        let word = (bp > prev && iter.is_word_like()).then(|| &text[prev..bp]);
        prev = bp;
        if word.is_some() {
            return word;
        }
    })
}

/// Whether a line has at least `n` words for C4's per-line minimum: space-separated tokens,
/// as C4 counts them, or dictionary words for scripts written without spaces (segmenting
/// only as far as the n-th word).
fn has_words(line: &str, n: usize) -> bool {
    if n == 0 {
        return true;
    }
    if line.chars().any(needs_dictionary) {
        dictionary_words(line).nth(n - 1).is_some()
    } else {
        line.split_whitespace().nth(n - 1).is_some()
    }
}

/// `text.matches("...").count()` without the substring searcher: runs of k dots hold k / 3.
fn ellipses(text: &str) -> usize {
    let (mut n, mut run) = (0, 0);
    for b in text.bytes() {
        if b == b'.' {
            run += 1;
        } else {
            n += run / 3;
            run = 0;
        }
    }
    n + run / 3
}

/// Sentence-final punctuation, including the Devanagari danda and the Urdu full stop.
fn is_terminal(c: char) -> bool {
    matches!(
        c,
        '.' | '!'
            | '?'
            | '"'
            | '”'
            | '’'
            | '\''
            | '।'
            | '॥'
            | '۔'
            | '؟'
            | '…'
            | '。'
            | '！'
            | '？'
            | '»'
            | ')'
    )
}
/// Case-insensitive matchers of C4's line and document rules, built once.
fn matcher(patterns: &[&str]) -> aho_corasick::AhoCorasick {
    aho_corasick::AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(patterns)
        .expect("static patterns")
}
const POLICY_PHRASES: [&str; 6] =
    ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"];
static POLICY: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| matcher(&POLICY_PHRASES));
static JAVASCRIPT: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| matcher(&["javascript"]));
/// Both line rules in one pass over a line, for the default config that has both on.
static JAVASCRIPT_OR_POLICY: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| matcher(&[&POLICY_PHRASES[..], &["javascript"]].concat()));
static LOREM: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| matcher(&["lorem ipsum"]));

/// The quality logic, usable without a dataflow.
#[derive(Clone)]
pub struct QualityFilter {
    cfg: QualityConfig,
}

impl QualityFilter {
    pub fn new(cfg: &QualityConfig) -> Self {
        QualityFilter { cfg: cfg.clone() }
    }

    /// Runs every enabled rule; returns the (possibly line-filtered) text or the reason.
    pub fn check(&self, text: &str, lang: Option<&str>) -> Result<String, (&'static str, String)> {
        let code = lang.map(|l| l.split(['_', '-']).next().unwrap_or(l));
        let text = if self.cfg.c4.enabled { self.c4(text, code)? } else { text.to_string() };
        // One segmentation serves the Gopher and repetition rules.
        let words = words(&text);
        // Characters per word, for the mean word length and the n-gram shares.
        let lens: Vec<usize> = words.iter().map(|w| w.chars().count()).collect();
        if self.cfg.gopher.enabled {
            self.gopher(&text, &words, &lens, code)?;
        }
        if self.cfg.repetition.enabled {
            self.repetition(&text, &words, &lens)?;
        }
        if self.cfg.length.enabled {
            let n = text.chars().count();
            let l = &self.cfg.length;
            if n < l.min_chars {
                return Err(("response_too_short", format!("{n} characters < {}", l.min_chars)));
            }
            if n > l.max_chars {
                return Err(("response_too_long", format!("{n} characters > {}", l.max_chars)));
            }
        }
        Ok(text)
    }

    fn c4(&self, text: &str, lang: Option<&str>) -> Result<String, (&'static str, String)> {
        let c = &self.cfg.c4;
        if c.filter_lorem_ipsum && LOREM.is_match(text) {
            return Err(("c4_lorem_ipsum", "contains 'lorem ipsum'".into()));
        }
        if c.filter_curly_bracket && text.contains('{') {
            return Err(("c4_curly_bracket", "contains '{'".into()));
        }
        let punct_exempt = lang.is_some_and(|l| c.no_terminal_punct_langs.iter().any(|x| x == l));
        let mut kept = String::with_capacity(text.len());
        let mut sentences = 0usize;
        for para in text.split("\n\n") {
            let mut para_out = String::new();
            for line in para.split('\n') {
                let line = line.trim();
                if line.is_empty()
                    || (c.filter_no_terminal_punct
                        && !punct_exempt
                        && !line.chars().next_back().is_some_and(is_terminal))
                    || !has_words(line, c.min_words_per_line)
                    || (line.len() > c.max_word_length
                        && line.split_whitespace().any(|w| w.chars().count() > c.max_word_length))
                    || match (c.filter_javascript, c.filter_policy) {
                        (true, true) => JAVASCRIPT_OR_POLICY.is_match(line),
                        (true, false) => JAVASCRIPT.is_match(line),
                        (false, true) => POLICY.is_match(line),
                        (false, false) => false,
                    }
                {
                    continue;
                }
                sentences += line.chars().filter(|c| is_terminal(*c)).count().max(1);
                if !para_out.is_empty() {
                    para_out.push('\n');
                }
                para_out.push_str(line);
            }
            if !para_out.is_empty() {
                if !kept.is_empty() {
                    kept.push_str("\n\n");
                }
                kept.push_str(&para_out);
            }
        }
        if kept.is_empty() {
            return Err(("c4_no_lines", "no line passed the C4 line rules".into()));
        }
        if !punct_exempt && sentences < c.min_sentences {
            return Err(("c4_too_few_sentences", format!("{sentences} sentences < {}", c.min_sentences)));
        }
        Ok(kept)
    }

    fn gopher(
        &self,
        text: &str,
        words: &[&str],
        lens: &[usize],
        lang: Option<&str>,
    ) -> Result<(), (&'static str, String)> {
        let g = &self.cfg.gopher;
        let n = words.len();
        if n < g.min_doc_words {
            return Err(("gopher_short_doc", format!("{n} words < {}", g.min_doc_words)));
        }
        if n > g.max_doc_words {
            return Err(("gopher_long_doc", format!("{n} words > {}", g.max_doc_words)));
        }
        let avg = lens.iter().sum::<usize>() as f64 / n as f64;
        if avg < g.min_avg_word_length || avg > g.max_avg_word_length {
            return Err((
                "gopher_avg_word_length",
                format!(
                    "mean word length {avg:.2} outside [{}, {}]",
                    g.min_avg_word_length, g.max_avg_word_length
                ),
            ));
        }
        let symbols = text.matches('#').count() + ellipses(text) + text.matches('…').count();
        if symbols as f64 / n as f64 > g.max_symbol_word_ratio {
            return Err(("gopher_symbol_ratio", format!("{symbols} '#'/ellipses for {n} words")));
        }
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let bullets = lines.iter().filter(|l| l.starts_with(['•', '-', '*', '●', '▪', '–'])).count();
        if !lines.is_empty() && bullets as f64 / lines.len() as f64 > g.max_bullet_lines_ratio {
            return Err(("gopher_bullet_lines", format!("{bullets} of {} lines are bullets", lines.len())));
        }
        let ellipses = lines.iter().filter(|l| l.ends_with("...") || l.ends_with('…')).count();
        if !lines.is_empty() && ellipses as f64 / lines.len() as f64 > g.max_ellipsis_lines_ratio {
            return Err((
                "gopher_ellipsis_lines",
                format!("{ellipses} of {} lines end in an ellipsis", lines.len()),
            ));
        }
        let alpha = words.iter().filter(|w| w.chars().any(is_letter)).count();
        if (alpha as f64 / n as f64) < g.min_alpha_words_ratio {
            return Err(("gopher_alpha_words", format!("{alpha} of {n} words contain a letter")));
        }
        if let Some(stop) = lang.map(stopwords).filter(|s| !s.is_empty()) {
            // Stop words are short: compare only words of a stop word's length.
            let max_len = stop.iter().map(|s| s.len()).max().unwrap_or(0);
            let found = words
                .iter()
                .filter(|w| w.len() <= max_len)
                .filter(|w| {
                    if w.chars().any(char::is_uppercase) {
                        stop.contains(&w.to_lowercase().as_str())
                    } else {
                        stop.contains(w)
                    }
                })
                .take(g.min_stop_words)
                .count();
            if found < g.min_stop_words {
                return Err(("gopher_stop_words", format!("{found} stop words < {}", g.min_stop_words)));
            }
        }
        Ok(())
    }

    fn repetition(&self, text: &str, words: &[&str], lens: &[usize]) -> Result<(), (&'static str, String)> {
        let r = &self.cfg.repetition;
        let paragraphs: Vec<&str> = text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()).collect();
        let (dup, dup_chars) = duplicates(&paragraphs);
        let para_chars: usize = paragraphs.iter().map(|p| p.chars().count()).sum();
        if !paragraphs.is_empty() && dup as f64 / paragraphs.len() as f64 > r.max_dup_para_fraction {
            return Err((
                "gopher_repetition",
                format!("duplicate paragraphs: {dup} of {}", paragraphs.len()),
            ));
        }
        if para_chars > 0 && dup_chars as f64 / para_chars as f64 > r.max_dup_para_char_fraction {
            return Err(("gopher_repetition", "duplicate paragraph characters".into()));
        }
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let (dup, dup_chars) = duplicates(&lines);
        let line_chars: usize = lines.iter().map(|l| l.chars().count()).sum();
        if !lines.is_empty() && dup as f64 / lines.len() as f64 > r.max_dup_line_fraction {
            return Err(("gopher_repetition", format!("duplicate lines: {dup} of {}", lines.len())));
        }
        if line_chars > 0 && dup_chars as f64 / line_chars as f64 > r.max_dup_line_char_fraction {
            return Err(("gopher_repetition", "duplicate line characters".into()));
        }
        let total: usize = lens.iter().sum();
        if total == 0 {
            return Ok(());
        }
        // Each word is hashed once; an n-gram's key combines its words' hashes.
        let hashes: Vec<u64> = words.iter().map(|w| xxh3_64(w.as_bytes())).collect();
        // A longer n-gram repeats only where a shorter one does, so once nothing repeats (or the
        // duplicated share is under every later threshold) the longer passes can be skipped.
        // One table and one set serve every n (cleared, capacity kept).
        let mut counts: HashMap<u64, (usize, usize), Prehashed> =
            HashMap::with_capacity_and_hasher(words.len(), Prehashed);
        for &(n, max) in &r.top_ngrams {
            if words.len() < n {
                continue;
            }
            counts.clear();
            for i in 0..=words.len() - n {
                let e = counts
                    .entry(ngram_hash(&hashes[i..i + n]))
                    .or_insert_with(|| (0, lens[i..i + n].iter().sum()));
                e.0 += 1;
            }
            let Some((count, chars)) = counts.values().filter(|(c, _)| *c > 1).max_by_key(|(c, l)| (*c, *l))
            else {
                break;
            };
            let share = (count * chars) as f64 / total as f64;
            if share > max {
                return Err(("gopher_repetition", format!("top {n}-gram covers {share:.3} of characters")));
            }
        }
        let mut seen: HashSet<u64, Prehashed> = HashSet::with_capacity_and_hasher(words.len(), Prehashed);
        let mut covered = vec![false; words.len()];
        for (k, &(n, max)) in r.dup_ngrams.iter().enumerate() {
            if words.len() < n {
                continue;
            }
            seen.clear();
            covered.fill(false);
            for i in 0..=words.len() - n {
                if !seen.insert(ngram_hash(&hashes[i..i + n])) {
                    covered[i..i + n].iter_mut().for_each(|c| *c = true);
                }
            }
            let dup: usize = covered.iter().zip(lens).filter(|(c, _)| **c).map(|(_, l)| l).sum();
            let share = dup as f64 / total as f64;
            if share > max {
                return Err((
                    "gopher_repetition",
                    format!("duplicated {n}-grams cover {share:.3} of characters"),
                ));
            }
            // Coverage only shrinks as n grows; stop when it is under every remaining limit.
            let later = r.dup_ngrams[k + 1..].iter().filter(|(m, _)| *m > n).map(|(_, t)| *t);
            if later.fold(f64::INFINITY, f64::min) >= share {
                break;
            }
        }
        Ok(())
    }
}

/// (number of items seen before, characters in them)
fn duplicates(items: &[&str]) -> (usize, usize) {
    let mut seen: HashSet<u64, Prehashed> = HashSet::default();
    let (mut n, mut chars) = (0, 0);
    for item in items {
        if !seen.insert(xxh3_64(item.as_bytes())) {
            n += 1;
            chars += item.chars().count();
        }
    }
    (n, chars)
}

/// Combines word hashes into an n-gram key (order-sensitive).
fn ngram_hash(word_hashes: &[u64]) -> u64 {
    word_hashes.iter().fold(0u64, |h, w| h.rotate_left(17) ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Keys here are already hashes; hashing them again would only cost time.
#[derive(Default, Clone, Copy)]
struct Prehashed;

impl std::hash::BuildHasher for Prehashed {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64(bytes);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Applies the quality rules to every document.
pub trait Quality<'s> {
    fn quality(
        self,
        cfg: &QualityConfig,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>);

    fn quality_named(
        self,
        name: &str,
        cfg: &QualityConfig,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>);
}

impl<'s> Quality<'s> for VecCollection<'s, Epoch, Doc> {
    fn quality(
        self,
        cfg: &QualityConfig,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>) {
        self.quality_named("quality", cfg, stats)
    }

    fn quality_named(
        self,
        name: &str,
        cfg: &QualityConfig,
        stats: &StatsRegistry,
    ) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>) {
        let filter = QualityFilter::new(cfg);
        let op = name.to_string();
        split_docs(self, name, stats, move |doc| {
            let result = filter.check(&doc.text, doc.lang.as_deref());
            rewrite_text(doc, &op, result)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thai_text_is_split_into_words() {
        let thai = "มนุษย์ทั้งหลายเกิดมามีอิสระและเสมอภาคกันในเกียรติศักด[ิ์]และสิทธิ";
        let w = words(thai);
        assert!(w.len() >= 8, "{w:?}");
        assert!(w.contains(&"มนุษย์"), "{w:?}");
        assert_eq!(words("All human beings are born free.").len(), 6);
        assert_eq!(words("सभी मनुष्यों को गौरव और अधिकारों").len(), 6);
    }

    /// The UDHR paragraphs of the test fixtures, every language.
    fn udhr() -> Vec<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/udhr_paragraphs.tsv");
        std::fs::read_to_string(path)
            .expect("fixture")
            .lines()
            .filter_map(|l| l.split_once('\t').map(|(_, p)| p.to_string()))
            .collect()
    }

    #[test]
    fn shortcuts_count_what_the_full_counts_do() {
        let paragraphs = udhr();
        assert!(paragraphs.len() > 700);
        for p in &paragraphs {
            if !p.chars().any(needs_dictionary) {
                assert_eq!(words(p), p.unicode_words().collect::<Vec<_>>(), "{p}");
            }
            for line in p.split(['।', '.', ',']) {
                let full = if line.chars().any(needs_dictionary) {
                    words(line).len()
                } else {
                    line.split_whitespace().count()
                };
                for n in 0..6 {
                    assert_eq!(has_words(line, n), full >= n, "{n} {line}");
                }
            }
        }
        for s in ["", "..", "...", "....", "......", ".......", "a...b..c....", ". . .", "…...x"] {
            assert_eq!(ellipses(s), s.matches("...").count(), "{s:?}");
        }
    }

    #[test]
    fn repetition_and_c4_rules() {
        let q = QualityFilter::new(&QualityConfig::default());
        let spam = "This is the best shop in the world for the shoes. ".repeat(40);
        assert_eq!(q.check(&spam, Some("en")).unwrap_err().0, "gopher_repetition");
        assert_eq!(
            q.check("Lorem ipsum dolor sit amet. Again. And again.", None).unwrap_err().0,
            "c4_lorem_ipsum"
        );
        assert_eq!(q.check("function f() { return 1; }", None).unwrap_err().0, "c4_curly_bracket");
        assert_eq!(q.check("menu\nhome\nabout", None).unwrap_err().0, "c4_no_lines");
    }
}
