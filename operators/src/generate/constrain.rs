//! Constrained decoding of an evaluator's verdict in the in-process engine: the judge writes its
//! reason freely, and once the reason's line ends (or the token budget runs short) the rest is
//! held to the format `Label: <good|flawed|bad>\nScore: <1-5>` — the fixed parts are forced,
//! and at the label and the score only the allowed tokens keep their logits. A small model can
//! then only answer in a form [`crate::instruct::verdict::parse_evaluation`] reads; what it
//! still decides is the label and the score, by its own logits.
//!
//! Holds, per sequence, the tokens still to force and the choices left (a few token ids).

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// A format a request's answer is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Constraint {
    /// A free reason line, then `Label: good|flawed|bad` and `Score: 1-5`.
    Verdict,
}

/// The token ids a verdict is made of, for one tokenizer.
#[derive(Clone, Debug)]
pub struct VerdictTokens {
    label_key: Vec<u32>,
    labels: Vec<Vec<u32>>,
    score_key: Vec<u32>,
    scores: Vec<Vec<u32>>,
    /// The tokens after the reason: the most the forced part can take.
    pub budget: usize,
}

impl VerdictTokens {
    /// `encode` turns text into token ids without special tokens.
    pub fn new(encode: impl Fn(&str) -> Vec<u32>) -> Option<VerdictTokens> {
        let label_key = encode("\nLabel:");
        let labels: Vec<Vec<u32>> = [" good", " flawed", " bad"].iter().map(|l| encode(l)).collect();
        let score_key = encode("\nScore:");
        let scores: Vec<Vec<u32>> = (1..=5).map(|s| encode(&format!(" {s}"))).collect();
        if [&label_key, &score_key].iter().any(|k| k.is_empty())
            || labels.iter().chain(&scores).any(|c| c.is_empty())
        {
            return None;
        }
        let longest = |c: &[Vec<u32>]| c.iter().map(Vec::len).max().unwrap_or(0);
        let budget = label_key.len() + longest(&labels) + score_key.len() + longest(&scores) + 1;
        Some(VerdictTokens { label_key, labels, score_key, scores, budget })
    }
}

#[derive(Clone, Debug)]
enum Step {
    Force(u32),
    /// One token of one of these continuations; `at` tokens of them are already out.
    Choose {
        options: Vec<Vec<u32>>,
        at: usize,
    },
    End,
}

/// One sequence's place in the verdict format.
#[derive(Clone, Debug)]
pub struct VerdictState {
    tokens: VerdictTokens,
    /// Empty while the reason is written.
    plan: VecDeque<Step>,
    started: bool,
}

impl VerdictState {
    pub fn new(tokens: VerdictTokens) -> VerdictState {
        VerdictState { tokens, plan: VecDeque::new(), started: false }
    }

    /// The answer is complete (the score is out): end the sequence.
    pub fn done(&self) -> bool {
        self.started && matches!(self.plan.front(), Some(Step::End) | None)
    }

    /// Whether the reason is still being written (no constraint on the next token).
    pub fn free(&self) -> bool {
        !self.started
    }

    /// Called before sampling: `text` is the answer so far, `left` the tokens the budget still
    /// allows. Starts the forced part when the reason's line has ended or the budget is short.
    pub fn before(&mut self, text: &str, left: usize) {
        if self.started {
            return;
        }
        let line_ended = text.trim_start_matches([' ', '\n']).contains('\n');
        if line_ended || left <= self.tokens.budget {
            self.started = true;
            // The reason's own newline is kept; the key's is not repeated after it.
            let key: Vec<u32> = if text.ends_with('\n') {
                self.tokens.label_key.iter().skip(1).copied().collect()
            } else {
                self.tokens.label_key.clone()
            };
            let key = if key.is_empty() { self.tokens.label_key.clone() } else { key };
            self.plan.extend(key.into_iter().map(Step::Force));
            self.plan.push_back(Step::Choose { options: self.tokens.labels.clone(), at: 0 });
            self.plan.extend(self.tokens.score_key.iter().map(|&t| Step::Force(t)));
            self.plan.push_back(Step::Choose { options: self.tokens.scores.clone(), at: 0 });
            self.plan.push_back(Step::End);
        }
    }

    /// Masks `logits` to what the format allows next; `None` leaves them as they are.
    /// Returns the forced token when there is exactly one.
    pub fn mask(&self, logits: &mut [f32]) -> Option<u32> {
        match self.plan.front()? {
            Step::Force(t) => Some(*t),
            Step::Choose { options, at } => {
                let allowed: Vec<u32> = options.iter().filter_map(|o| o.get(*at).copied()).collect();
                for (i, l) in logits.iter_mut().enumerate() {
                    if !allowed.contains(&(i as u32)) {
                        *l = f32::NEG_INFINITY;
                    }
                }
                None
            }
            Step::End => None,
        }
    }

    /// Records the token that came out.
    pub fn after(&mut self, token: u32) {
        let Some(step) = self.plan.pop_front() else { return };
        match step {
            Step::Force(_) | Step::End => {}
            Step::Choose { options, at } => {
                let left: Vec<Vec<u32>> = options.into_iter().filter(|o| o.get(at) == Some(&token)).collect();
                match left.as_slice() {
                    [one] => {
                        for &t in one[at + 1..].iter().rev() {
                            self.plan.push_front(Step::Force(t));
                        }
                    }
                    [] => {}
                    _ => self.plan.push_front(Step::Choose { options: left, at: at + 1 }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy tokenizer: one token per character (ids = code points).
    fn chars(s: &str) -> Vec<u32> {
        s.chars().map(|c| c as u32).collect()
    }

    fn decode(ids: &[u32]) -> String {
        ids.iter().filter_map(|&i| char::from_u32(i)).collect()
    }

    /// Drives a state with a "model" that prefers `prefer` wherever it is allowed.
    fn run(reason: &str, prefer: &str, budget: usize) -> String {
        let mut st = VerdictState::new(VerdictTokens::new(chars).unwrap());
        let mut out: Vec<u32> = Vec::new();
        let mut free = reason.chars();
        for left in (0..budget).rev() {
            st.before(&decode(&out), left + 1);
            let mut logits = vec![0.0f32; 0x80];
            for c in prefer.chars() {
                logits[c as usize] = 1.0;
            }
            let next = match st.mask(&mut logits) {
                Some(forced) => forced,
                None if st.free() => free.next().map_or('\n' as u32, |c| c as u32),
                None => crate::generate::sampling::argmax(&logits),
            };
            out.push(next);
            st.after(next);
            if st.done() {
                break;
            }
        }
        decode(&out)
    }

    #[test]
    fn the_verdict_follows_the_format() {
        // Prefers 'f' and '3': flawed, 3.
        assert_eq!(run(" Too vague.\n", "f3", 80), " Too vague.\nLabel: flawed\nScore: 3");
        // 'b' and '1' preferred: bad, 1; the reason's line ends without the model's newline.
        assert_eq!(run(" Off topic.", "b1", 80), " Off topic.\nLabel: bad\nScore: 1");
        // A reason that would run past the budget is cut so the verdict fits.
        let long = "x".repeat(200);
        let out = run(&long, "g5", 60);
        assert!(out.ends_with("\nLabel: good\nScore: 5"), "{out}");
        assert!(out.chars().count() <= 60, "{}", out.chars().count());
        assert_eq!(
            crate::instruct::verdict::parse_evaluation(&out).label,
            crate::instruct::verdict::Label::Good
        );
    }
}
