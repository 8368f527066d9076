//! The record that flows through every operator, and the record of a rejection.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xxhash_rust::xxh3::xxh3_128;

/// Where a record came from: the shard's URI and the record's offset inside it.
///
/// The offset is the 0-based line number for JSONL, the row number for Parquet and the
/// record number for WARC/WET; for a file-level error it is the position reached.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    pub shard: String,
    pub offset: u64,
}

/// One web document.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Doc {
    /// The input's id field when it has one, else [`Doc::derived_id`] of the origin.
    pub id: String,
    pub text: String,
    pub url: Option<String>,
    pub source: Origin,
    /// Language code; `None` until an input field or the language-ID operator sets it.
    pub lang: Option<String>,
    /// Other input fields kept as strings (e.g. `timestamp`, WARC-Date).
    pub meta: BTreeMap<String, String>,
    /// The instruction-tuning pair built on this document (the document's text is the
    /// response); `None` until the reverse-instruction stage sets it.
    pub pair: Option<Box<Pair>>,
    /// The epoch the document's shard was first committed in, when the shard is read again
    /// unchanged (its place in the dedup order); `None`: the epoch it is read in.
    pub born: Option<crate::Epoch>,
}

/// An English instruction for a document, and what the evaluator made of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pair {
    pub instruction: String,
    /// `good`, `flawed`, `bad` or `unknown`; empty until evaluated.
    pub label: String,
    /// The evaluator's 1–5 score, when it gave one.
    pub score: Option<u8>,
    /// The evaluator's one-line reason.
    pub eval_reason: String,
    /// 0 for the first instruction, k after k refinements.
    pub iteration: u32,
    /// The generator and evaluator (their names).
    pub generator: String,
    pub evaluator: String,
    /// The stage keys of the templates used, e.g. `reverse_instruction@1 evaluate@1`.
    pub prompt_version: String,
    /// Prompt and completion tokens spent on this pair, over all stages and iterations.
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// The instruction's language as identified (should be `en_Latn`).
    pub instruction_lang: String,
    /// The instruction only asks to translate (flagged; kept or dropped by config).
    pub translate: bool,
    /// While a refinement round judges a new instruction: the pair it would replace. Never
    /// written; refine keeps whichever of the two the judge rates higher.
    pub prior: Option<Box<Pair>>,
}

impl Doc {
    /// A stable id for an input without one: a hash of shard URI and record offset, so a rerun
    /// over the same shard gives every record the same id.
    pub fn derived_id(origin: &Origin) -> String {
        let mut key = Vec::with_capacity(origin.shard.len() + 9);
        key.extend_from_slice(origin.shard.as_bytes());
        key.push(0);
        key.extend_from_slice(&origin.offset.to_le_bytes());
        format!("{:032x}", xxh3_128(&key))
    }
}

/// A record (or a whole shard) that did not make it through an operator.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Reject {
    pub origin: Origin,
    /// The operator that rejected it (its stats name).
    pub operator: String,
    /// A short machine-readable reason, e.g. `invalid_json`, `lang_low_conf`.
    pub reason: String,
    /// Human-readable detail: the parser's message, the measured value, …
    pub detail: String,
    /// The document id when one was known.
    pub doc_id: Option<String>,
}

impl Reject {
    pub fn new(
        origin: Origin,
        operator: &str,
        reason: &str,
        detail: impl Into<String>,
        doc_id: Option<String>,
    ) -> Self {
        Reject {
            origin,
            operator: operator.to_string(),
            reason: reason.to_string(),
            detail: detail.into(),
            doc_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_id_is_stable_and_distinguishes_offsets() {
        let a = Origin { shard: "s3://b/x.jsonl".into(), offset: 7 };
        let b = Origin { shard: "s3://b/x.jsonl".into(), offset: 8 };
        assert_eq!(Doc::derived_id(&a), Doc::derived_id(&a.clone()));
        assert_ne!(Doc::derived_id(&a), Doc::derived_id(&b));
        assert_eq!(Doc::derived_id(&a).len(), 32);
    }
}
