//! MinHash signatures and LSH banding for near-duplicate detection (the building block of the
//! `dedup` operator).
//!
//! * Shingles: word n-grams (default 5) of the lowercased text; words are whitespace-separated
//!   tokens with punctuation trimmed from their ends (dictionary segmentation for Thai, Lao,
//!   Khmer, Burmese — see `quality::words`); documents too short for
//!   one n-gram use their whole word sequence. Scripts written without spaces and with no
//!   dictionary (CJK) use character n-grams instead (`char_ngram`, default 5). Each word (or
//!   character) is hashed with xxh3-64 and an n-gram's hash is the xxh3-64 of its units'
//!   hashes.
//! * Signature: `permutations` values, each the minimum over the shingles of a multiply-shift
//!   universal hash `(a * h + b) >> 32` with seeded odd `a` (Dietzfelbinger et al.), kept as u32;
//!   the loop over permutations runs 8 lanes wide on AVX-512 CPUs (runtime dispatch).
//! * LSH: `bands` × `rows` = `permutations`; each band's rows hash to one bucket key. Two
//!   documents with Jaccard similarity s share a bucket with probability 1 - (1 - s^rows)^bands.
//!   Defaults 14 × 8 (datatrove's): 0.92 at s = 0.8, 0.9996 at s = 0.9, 0.07 at s = 0.5.
//! * Verification: the signatures' agreement estimates the Jaccard similarity; candidate pairs
//!   below `threshold` are dropped.
//!
//! Per document the signature costs `4 × permutations` bytes (448 with the defaults) and the
//! band keys `8 × bands` (112).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinHashConfig {
    /// Words per shingle.
    pub ngram: usize,
    /// Characters per shingle for scripts without spaces and without a word dictionary.
    pub char_ngram: usize,
    pub bands: usize,
    pub rows: usize,
    /// Estimated Jaccard similarity a candidate pair must reach to count as a duplicate.
    pub threshold: f64,
    pub seed: u64,
}

impl Default for MinHashConfig {
    fn default() -> Self {
        MinHashConfig { ngram: 5, char_ngram: 5, bands: 14, rows: 8, threshold: 0.8, seed: 1 }
    }
}

impl MinHashConfig {
    pub fn permutations(&self) -> usize {
        self.bands * self.rows
    }

    /// The probability that two documents of Jaccard similarity `s` share at least one band.
    pub fn candidate_probability(&self, s: f64) -> f64 {
        1.0 - (1.0 - s.powi(self.rows as i32)).powi(self.bands as i32)
    }
}

pub struct MinHasher {
    cfg: MinHashConfig,
    a: Vec<u64>,
    b: Vec<u64>,
}

/// Punctuation trimmed from the ends of a whitespace-separated token (combining marks, which
/// end many Indic words, are not punctuation and stay).
fn edge_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '\u{2018}'
                ..='\u{201F}' // ‘ ’ ‚ ‛ “ ” „ ‟
                | '\u{2013}' | '\u{2014}' | '\u{2026}' // – — …
                | '«' | '»' | '¿' | '¡' | '·'
                | '\u{0964}' | '\u{0965}' // Devanagari danda, double danda
                | '\u{060C}' | '\u{061B}' | '\u{061F}' | '\u{06D4}' // Arabic-script , ; ? .
                | '\u{3001}' | '\u{3002}' // 、 。
        )
}

/// Lowercases `word` into `buf`. Scripts without case (Hebrew and Arabic through Myanmar:
/// the Indic scripts, Thai, …) are copied without the case-mapping lookup.
fn lowercase_into(word: &str, buf: &mut String) {
    if word.is_ascii() {
        buf.push_str(word);
        let start = buf.len() - word.len();
        buf[start..].make_ascii_lowercase();
        return;
    }
    for c in word.chars() {
        if ('\u{0590}'..'\u{10A0}').contains(&c) || c.is_ascii_lowercase() {
            buf.push(c);
        } else {
            buf.extend(c.to_lowercase());
        }
    }
}

/// The xxh3 hashes of a text's words (whitespace-separated tokens with punctuation trimmed
/// from their ends, lowercased), and the exact-dedup hash of the text (its tokens joined by
/// single spaces), from one pass.
fn word_hashes(text: &str) -> (Vec<u64>, u128) {
    let mut out = Vec::with_capacity(text.len() / 5);
    let mut canon = String::with_capacity(text.len());
    let mut buf = String::new();
    for token in text.split_whitespace() {
        push_token(&mut canon, token);
        let word = token.trim_matches(edge_punctuation);
        if word.is_empty() {
            continue;
        }
        buf.clear();
        lowercase_into(word, &mut buf);
        out.push(xxh3_64(buf.as_bytes()));
    }
    (out, xxh3_128(canon.as_bytes()))
}

/// The hash exact dedup compares: the text with whitespace runs collapsed to one space.
pub fn exact_hash(text: &str) -> u128 {
    let mut canon = String::with_capacity(text.len());
    for token in text.split_whitespace() {
        push_token(&mut canon, token);
    }
    xxh3_128(canon.as_bytes())
}

/// Appends a token to the text exact dedup hashes (tokens joined by single spaces).
fn push_token(canon: &mut String, token: &str) {
    if !canon.is_empty() {
        canon.push(' ');
    }
    canon.push_str(token);
}

/// Characters of scripts written without spaces that `quality::words` has no dictionary for.
fn unspaced(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xAC00..=0xD7AF)
}

impl MinHasher {
    pub fn new(cfg: &MinHashConfig) -> MinHasher {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let n = cfg.permutations();
        let a = (0..n).map(|_| rng.random::<u64>() | 1).collect();
        let b = (0..n).map(|_| rng.random::<u64>()).collect();
        MinHasher { cfg: cfg.clone(), a, b }
    }

    pub fn config(&self) -> &MinHashConfig {
        &self.cfg
    }

    /// The hashed shingles of a text (sorted, deduplicated). A word n-gram's hash is the
    /// xxh3 of its words' xxh3 hashes, so each word is hashed once and no n-gram string is
    /// built.
    pub fn shingles(&self, text: &str) -> Vec<u64> {
        self.shingles_and_exact(text).0
    }

    /// [`shingles`](Self::shingles) and [`exact_hash`] of a text, sharing its tokenization
    /// where they can.
    pub fn shingles_and_exact(&self, text: &str) -> (Vec<u64>, u128) {
        // The writing system is judged on the first kilobyte: documents are mostly in one.
        let (mut total, mut dense, mut dictionary) = (0usize, 0usize, false);
        for (at, c) in text.char_indices() {
            if at >= 1024 {
                break;
            }
            if c.is_ascii() {
                total += !c.is_ascii_whitespace() as usize;
            } else if !c.is_whitespace() {
                total += 1;
                dense += unspaced(c) as usize;
                dictionary |= crate::quality::needs_dictionary(c);
            }
        }
        let char_grams = total > 0 && dense * 2 > total;
        let (units, exact): (Vec<u64>, u128) = if char_grams {
            let mut buf = [0u8; 4];
            let units = text
                .chars()
                .filter(|c| !c.is_whitespace())
                .flat_map(char::to_lowercase)
                .map(|c| xxh3_64(c.encode_utf8(&mut buf).as_bytes()))
                .collect();
            (units, exact_hash(text))
        } else if dictionary {
            let lower = text.to_lowercase();
            let units = crate::quality::words(&lower).into_iter().map(|w| xxh3_64(w.as_bytes())).collect();
            (units, exact_hash(text))
        } else {
            word_hashes(text)
        };
        if units.is_empty() {
            return (Vec::new(), exact);
        }
        let n = if char_grams { self.cfg.char_ngram } else { self.cfg.ngram };
        let n = n.max(1).min(units.len());
        let mut bytes = Vec::with_capacity(8 * n);
        let mut out: Vec<u64> = units
            .windows(n)
            .map(|w| {
                bytes.clear();
                for h in w {
                    bytes.extend_from_slice(&h.to_le_bytes());
                }
                xxh3_64(&bytes)
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        (out, exact)
    }

    /// The MinHash signature of a set of hashed shingles (all `u32::MAX` for an empty set).
    pub fn signature(&self, shingles: &[u64]) -> Vec<u32> {
        let mut sig = vec![u32::MAX; self.a.len()];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
            {
                // SAFETY: the CPU has the features the function is compiled for.
                unsafe { min_hash_avx512(&self.a, &self.b, shingles, &mut sig) };
                return sig;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: as above.
                unsafe { min_hash_avx2(&self.a, &self.b, shingles, &mut sig) };
                return sig;
            }
        }
        min_hash(&self.a, &self.b, shingles, &mut sig);
        sig
    }

    /// One bucket key per band (see [`band_keys`]).
    pub fn band_keys(&self, sig: &[u32]) -> Vec<u64> {
        band_keys(sig, self.cfg.rows)
    }
}

/// One bucket key per band of `rows` signature values (the band index is mixed in, so bands
/// never collide).
pub fn band_keys(sig: &[u32], rows: usize) -> Vec<u64> {
    let mut out = Vec::with_capacity(sig.len().div_ceil(rows.max(1)));
    band_keys_into(sig, rows, &mut out);
    out
}

/// [`band_keys`] into `out` (cleared first), for loops over many records.
pub fn band_keys_into(sig: &[u32], rows: usize, out: &mut Vec<u64>) {
    out.clear();
    // 8 bytes of band index + 4 per row; rows beyond 62 take the heap.
    let mut stack = [0u8; 256];
    let mut heap = Vec::new();
    for (band, values) in sig.chunks(rows.max(1)).enumerate() {
        let len = 8 + 4 * values.len();
        let bytes = if len <= stack.len() {
            &mut stack[..len]
        } else {
            heap.resize(len, 0);
            &mut heap[..]
        };
        bytes[..8].copy_from_slice(&(band as u64).to_le_bytes());
        for (chunk, v) in bytes[8..].chunks_exact_mut(4).zip(values) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out.push(xxh3_64(bytes));
    }
}

/// The signature loop: for every permutation, the minimum over the shingles of
/// `(a * h + b) >> 32`. Written so the permutations vectorize (64-bit multiplies: 8 lanes
/// with AVX-512DQ); the `target_feature` copies below let the compiler use the wide
/// instructions without building the whole crate for one CPU.
#[inline(always)]
fn min_hash(a: &[u64], b: &[u64], shingles: &[u64], sig: &mut [u32]) {
    let n = sig.len().min(a.len()).min(b.len());
    let (a, b, sig) = (&a[..n], &b[..n], &mut sig[..n]);
    for &h in shingles {
        for ((s, &a), &b) in sig.iter_mut().zip(a).zip(b) {
            let v = (a.wrapping_mul(h).wrapping_add(b) >> 32) as u32;
            *s = (*s).min(v);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn min_hash_avx512(a: &[u64], b: &[u64], shingles: &[u64], sig: &mut [u32]) {
    min_hash(a, b, shingles, sig)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn min_hash_avx2(a: &[u64], b: &[u64], shingles: &[u64], sig: &mut [u32]) {
    min_hash(a, b, shingles, sig)
}

/// The signatures' estimate of Jaccard similarity: the share of equal positions.
pub fn estimate(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// Exact Jaccard similarity of two sorted, deduplicated shingle sets.
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

/// Seeded synthetic corpora for the dedup tests.
#[cfg(test)]
pub(crate) mod testing {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A seeded corpus: random "sentences" over a vocabulary, plus planted near-duplicates made
    /// by word edits, insertions and appended boilerplate.
    pub(crate) fn corpus(seed: u64, originals: usize) -> Vec<String> {
        let mut rng = StdRng::seed_from_u64(seed);
        let vocab: Vec<String> = (0..3000).map(|i| format!("w{i}")).collect();
        let mut docs = Vec::new();
        for _ in 0..originals {
            let len = rng.random_range(80..200);
            let words: Vec<&str> =
                (0..len).map(|_| vocab[rng.random_range(0..vocab.len())].as_str()).collect();
            docs.push(words.join(" "));
            let copies = rng.random_range(0..3);
            for _ in 0..copies {
                let mut w = words.clone();
                let edits = rng.random_range(0..len / 12);
                for _ in 0..edits {
                    let at = rng.random_range(0..w.len());
                    match rng.random_range(0..3) {
                        0 => w[at] = vocab[rng.random_range(0..vocab.len())].as_str(),
                        1 => w.insert(at, vocab[rng.random_range(0..vocab.len())].as_str()),
                        _ => {
                            w.remove(at);
                        }
                    }
                }
                if rng.random_bool(0.3) {
                    w.extend(["share", "this", "page", "cookie", "policy"]);
                }
                docs.push(w.join(" "));
            }
        }
        docs
    }
}

#[cfg(test)]
mod tests {
    use super::testing::corpus;
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    #[test]
    fn lsh_finds_what_brute_force_jaccard_finds_within_theory() {
        let cfg = MinHashConfig::default();
        let mh = MinHasher::new(&cfg);
        let docs = corpus(7, 300);
        let shingles: Vec<Vec<u64>> = docs.iter().map(|d| mh.shingles(d)).collect();
        let sigs: Vec<Vec<u32>> = shingles.iter().map(|s| mh.signature(s)).collect();
        // Brute force: every pair's exact Jaccard.
        let mut truth = BTreeSet::new();
        let mut sims = Vec::new();
        for i in 0..docs.len() {
            for j in i + 1..docs.len() {
                let s = jaccard(&shingles[i], &shingles[j]);
                if s >= 0.5 {
                    sims.push(((i, j), s));
                }
                if s >= cfg.threshold {
                    truth.insert((i, j));
                }
            }
        }
        assert!(truth.len() > 50, "the corpus plants duplicates: {}", truth.len());
        // LSH: bucket by band keys, verify candidates on the signatures.
        let mut buckets: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, sig) in sigs.iter().enumerate() {
            for k in mh.band_keys(sig) {
                buckets.entry(k).or_default().push(i);
            }
        }
        let mut found = BTreeSet::new();
        for members in buckets.values() {
            for (x, &i) in members.iter().enumerate() {
                for &j in &members[x + 1..] {
                    if estimate(&sigs[i], &sigs[j]) >= cfg.threshold {
                        found.insert((i.min(j), i.max(j)));
                    }
                }
            }
        }
        // Expected recall over the true pairs from the banding curve (verification adds noise).
        let expected: f64 = sims
            .iter()
            .filter(|(p, _)| truth.contains(p))
            .map(|(_, s)| cfg.candidate_probability(*s))
            .sum::<f64>()
            / truth.len() as f64;
        let hit = truth.intersection(&found).count() as f64;
        let recall = hit / truth.len() as f64;
        let precision = hit / found.len().max(1) as f64;
        eprintln!(
            "pairs {} found {} recall {recall:.3} (expected {expected:.3}) precision {precision:.3}",
            truth.len(),
            found.len()
        );
        assert!(recall >= expected - 0.08, "recall {recall:.3} vs expected {expected:.3}");
        assert!(precision >= 0.9, "precision {precision:.3}");
        // Every false positive is a near miss, not an unrelated pair.
        for p in found.difference(&truth) {
            let s = jaccard(&shingles[p.0], &shingles[p.1]);
            assert!(s >= 0.6, "{p:?} has Jaccard {s}");
        }
    }

    #[test]
    fn words_ignore_case_and_edge_punctuation_but_keep_combining_marks() {
        assert_eq!(word_hashes("Hello, World!  (again)").0, word_hashes("hello world again").0);
        assert_ne!(word_hashes("re-enter").0, word_hashes("re enter").0);
        // Devanagari: the danda is trimmed, the vowel sign ending the word is not.
        assert_eq!(word_hashes("नमस्ते।").0, word_hashes("नमस्ते").0);
        assert_ne!(word_hashes("नमस्ते").0, word_hashes("नमस्त").0);
        assert_eq!(word_hashes("İSTANBUL").0, word_hashes("i̇stanbul").0);
        assert_eq!(word_hashes("a  b\n\nc").1, exact_hash("a b c"));
        assert_eq!(word_hashes("a  b\n\nc").1, xxh3_128(b"a b c"));
        assert!(word_hashes(" -- … ").0.is_empty());
    }

    #[test]
    fn estimates_track_exact_jaccard_and_thai_uses_words() {
        let mh = MinHasher::new(&MinHashConfig { bands: 32, rows: 8, ..MinHashConfig::default() });
        let a = "ทุกคนมีสิทธิในการพักผ่อนและเวลาว่าง รวมทั้งการจำกัดเวลาทำงานตามสมควร และวันหยุดเป็นครั้งคราวโดยได้รับค่าจ้าง";
        let b = "ทุกคนมีสิทธิในการพักผ่อนและเวลาว่าง รวมทั้งการจำกัดเวลาทำงานตามสมควร และวันหยุดเป็นครั้งคราว";
        let (sa, sb) = (mh.shingles(a), mh.shingles(b));
        assert!(sa.len() > 5, "Thai is split into words, not one blob: {}", sa.len());
        let exact = jaccard(&sa, &sb);
        let est = estimate(&mh.signature(&sa), &mh.signature(&sb));
        assert!((exact - est).abs() < 0.15, "exact {exact} est {est}");
        assert_eq!(estimate(&mh.signature(&sa), &mh.signature(&sa)), 1.0);
        // CJK without spaces: character shingles.
        assert!(mh.shingles("人人生而自由在尊严和权利上一律平等").len() > 10);
        assert!(mh.shingles("").is_empty());
    }
}
