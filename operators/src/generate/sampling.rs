//! Token sampling: greedy, temperature, top-k, top-p, repeat penalty, no-repeat n-grams.
//!
//! Each sequence owns its sampler and its random generator, seeded from the request's seed, so a
//! sequence samples the same tokens whatever else shares its batch.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Decoding parameters of one request. The defaults are the paper's (HF `generate` with
/// top_p 0.9, temperature 0.7, top_k 50, no_repeat_ngram_size 6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingParams {
    /// 0 = greedy.
    pub temperature: f32,
    /// 1.0 = off.
    pub top_p: f32,
    /// 0 = off.
    pub top_k: usize,
    /// 1.0 = off (CTRL-style: positive logits divided, negative multiplied).
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at (0 = the whole sequence).
    pub repeat_last_n: usize,
    /// 0 = off; n bans any token that would repeat an n-gram already in the sequence.
    pub no_repeat_ngram_size: usize,
    pub max_new_tokens: usize,
    /// Generation stops before the first of these strings (it is not part of the output).
    /// Leading whitespace never stops it: stop strings are looked for from the first
    /// non-blank character on, so `"\n\n"` ends a paragraph rather than an empty answer.
    pub stop: Vec<String>,
    pub seed: u64,
    /// Keep going past end-of-sequence tokens (benchmarks: exactly max_new_tokens each).
    pub ignore_eos: bool,
    /// A JSON schema the answer must follow, for backends that enforce one (OpenAI-compatible
    /// servers: `response_format`). Left out of the cache key when unset, so requests without
    /// one keep their memo entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<String>,
    /// A format the in-process engine holds the answer to while decoding; left out of the
    /// cache key when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<super::Constraint>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.7,
            top_p: 0.9,
            top_k: 50,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            no_repeat_ngram_size: 6,
            max_new_tokens: 128,
            stop: Vec::new(),
            seed: 42,
            ignore_eos: false,
            json_schema: None,
            constraint: None,
        }
    }
}

impl SamplingParams {
    pub fn greedy(max_new_tokens: usize) -> SamplingParams {
        SamplingParams {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            no_repeat_ngram_size: 0,
            max_new_tokens,
            ..SamplingParams::default()
        }
    }

    /// A stable text form for cache keys.
    pub fn key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Where the completion `text` ends by the stop strings: the earliest match that starts after
/// the text's leading whitespace (see [`SamplingParams::stop`]).
pub fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    let lead = text.len() - text.trim_start().len();
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text[lead..].find(s.as_str()).map(|at| lead + at))
        .min()
}

pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    pub fn new(params: &SamplingParams) -> Sampler {
        Sampler { params: params.clone(), rng: StdRng::seed_from_u64(params.seed) }
    }

    /// Picks the next token from `logits` (modified in place) given the sequence so far
    /// (prompt + generated), whose generated part starts at `generated_from`.
    pub fn sample(&mut self, logits: &mut [f32], tokens: &[u32], generated_from: usize) -> u32 {
        let p = &self.params;
        if p.repeat_penalty != 1.0 {
            let from = if p.repeat_last_n == 0 { 0 } else { tokens.len().saturating_sub(p.repeat_last_n) };
            let mut seen: Vec<u32> = tokens[from..].to_vec();
            seen.sort_unstable();
            seen.dedup();
            for t in seen {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l >= 0.0 { *l / p.repeat_penalty } else { *l * p.repeat_penalty };
                }
            }
        }
        let n = p.no_repeat_ngram_size;
        if n > 0 && tokens.len() >= n && tokens.len() > generated_from {
            // HF bans n-grams over the whole input_ids (prompt included); so do we.
            let prefix = &tokens[tokens.len() - (n - 1)..];
            for w in tokens.windows(n) {
                if &w[..n - 1] == prefix {
                    if let Some(l) = logits.get_mut(w[n - 1] as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
        }
        if p.temperature <= 0.0 {
            return argmax(logits);
        }
        // Candidates sorted by logit, cut by top-k, then softmax with temperature, then top-p.
        let k = if p.top_k == 0 { logits.len() } else { p.top_k.min(logits.len()) };
        let mut idx: Vec<u32> =
            (0..logits.len() as u32).filter(|&i| logits[i as usize].is_finite()).collect();
        if idx.is_empty() {
            return argmax(logits);
        }
        let by_logit = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b));
        if k < idx.len() {
            idx.select_nth_unstable_by(k - 1, by_logit);
            idx.truncate(k);
        }
        idx.sort_unstable_by(by_logit);
        let max = logits[idx[0] as usize];
        let mut probs: Vec<f32> =
            idx.iter().map(|&i| ((logits[i as usize] - max) / p.temperature).exp()).collect();
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= sum);
        if p.top_p < 1.0 {
            let mut cum = 0.0;
            let mut keep = probs.len();
            for (i, &q) in probs.iter().enumerate() {
                cum += q;
                if cum >= p.top_p {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            idx.truncate(keep);
            let sum: f32 = probs.iter().sum();
            probs.iter_mut().for_each(|x| *x /= sum);
        }
        let r: f32 = self.rng.random();
        let mut cum = 0.0;
        for (i, &q) in probs.iter().enumerate() {
            cum += q;
            if r < cum {
                return idx[i];
            }
        }
        *idx.last().unwrap_or(&0)
    }
}

/// Index of the largest value; the lowest index wins ties (NaN never wins).
pub fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in xs.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_count_only_after_leading_whitespace() {
        let stops = vec!["\n\n".to_string(), "###".to_string()];
        assert_eq!(find_stop("\n\n1. What is it?\n\n2. Why?", &stops), Some(16));
        assert_eq!(find_stop(" Tell me.### Text", &stops), Some(9));
        assert_eq!(find_stop("\n\n", &stops), None);
        assert_eq!(find_stop("no stop", &[]), None);
    }

    #[test]
    fn greedy_takes_the_largest_logit() {
        let mut s = Sampler::new(&SamplingParams::greedy(4));
        assert_eq!(s.sample(&mut [0.1, 2.0, -1.0, 2.0], &[], 0), 1);
    }

    #[test]
    fn no_repeat_ngram_bans_the_completing_token() {
        let mut p = SamplingParams::greedy(4);
        p.no_repeat_ngram_size = 3;
        let mut s = Sampler::new(&p);
        // Sequence 5 6 7 … 5 6: the trigram (5, 6, 7) exists, so 7 is banned.
        let mut logits = vec![0.0; 10];
        logits[7] = 5.0;
        logits[8] = 4.0;
        assert_eq!(s.sample(&mut logits, &[5, 6, 7, 1, 5, 6], 0), 8);
    }

    #[test]
    fn repeat_penalty_lowers_seen_tokens() {
        let mut p = SamplingParams::greedy(4);
        p.repeat_penalty = 2.0;
        let mut s = Sampler::new(&p);
        assert_eq!(s.sample(&mut [0.0, 3.0, 2.0], &[1], 0), 2);
    }

    #[test]
    fn same_seed_same_tokens_and_top_k_one_is_greedy() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 17) as f32 / 3.0).collect();
        let p = SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, ..SamplingParams::default() };
        let draw = |p: &SamplingParams| {
            let mut s = Sampler::new(p);
            (0..20).map(|_| s.sample(&mut logits.clone(), &[], 0)).collect::<Vec<_>>()
        };
        assert_eq!(draw(&p), draw(&p));
        assert_ne!(draw(&p), draw(&SamplingParams { seed: 7, ..p.clone() }));
        let k1 = SamplingParams { top_k: 1, ..p };
        assert!(draw(&k1).iter().all(|&t| t == argmax(&logits)));
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // One token holds nearly all the mass: top_p 0.5 must always pick it.
        let mut logits = vec![0.0f32; 50];
        logits[9] = 20.0;
        let p =
            SamplingParams { temperature: 1.0, top_k: 0, top_p: 0.5, seed: 3, ..SamplingParams::default() };
        let mut s = Sampler::new(&p);
        for _ in 0..50 {
            assert_eq!(s.sample(&mut logits.clone(), &[], 0), 9);
        }
    }
}
