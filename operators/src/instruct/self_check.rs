//! The judge checks itself. A sample of the evaluated pairs also gets a *mismatched twin*: the
//! same instruction with another document of the same language (of the same epoch) as the
//! response. A judge that reads the response must rate the true pair above its twin; how often
//! it does (ties count half) is its discrimination — the AUC of true versus mismatched pairs.
//! 0.5 means the labels carry no information about fit. Twins are judged with the evaluator's
//! own prompt, counted under `<evaluate>.self_check` (`pairs`, `wins`, `ties`, `unreadable`)
//! and never written as pairs.
//!
//! Holds, per epoch and per language (on the worker that owns the language), the sampled
//! documents of that epoch until the epoch is complete; then pairs them and forgets them.

use super::models::doc_seed;
use super::verdict::{verdict_rank, Label};
use crate::doc::Doc;
use crate::Epoch;
use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use std::collections::BTreeMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use xxhash_rust::xxh3::xxh3_64;

/// The meta key of a twin: the id of the document whose text it borrowed.
pub const TWIN_OF: &str = "self_check_text_of";

/// Whether a pair is in the self-check sample (by id, the same on every run).
pub fn in_sample(doc: &Doc, rate: f64) -> bool {
    rate > 0.0 && (rate >= 1.0 || (doc_seed(doc, 0x5c) as f64 / u64::MAX as f64) < rate)
}

/// Mismatched twins for a set of evaluated documents: per language, in a fixed order (by id
/// hash), each document's instruction with the next document's text. Languages with fewer than
/// two documents have no twins. The twin keeps the instruction's document id.
pub fn twins(mut docs: Vec<Doc>) -> Vec<Doc> {
    docs.retain(|d| d.pair.is_some());
    docs.sort_by_key(|d| (d.lang.clone(), xxh3_64(d.id.as_bytes()), d.id.clone()));
    let mut out = Vec::new();
    let mut start = 0;
    while start < docs.len() {
        let lang = docs[start].lang.clone();
        let end = start + docs[start..].iter().take_while(|d| d.lang == lang).count();
        let group = &docs[start..end];
        if group.len() >= 2 {
            for (i, d) in group.iter().enumerate() {
                let other = &group[(i + 1) % group.len()];
                let mut twin = d.clone();
                twin.text = other.text.clone();
                twin.meta.insert(TWIN_OF.to_string(), other.id.clone());
                out.push(twin);
            }
        }
        start = end;
    }
    out
}

/// The verdict of a pair as the self-check compares it; `None` when unknown (not compared).
pub fn judged(label: &str, score: Option<u8>) -> Option<(u8, u8)> {
    let label = Label::parse(label);
    (label != Label::Unknown).then(|| verdict_rank(label, score))
}

/// What the self-check counted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Discrimination {
    pub pairs: u64,
    pub wins: u64,
    pub ties: u64,
}

impl Discrimination {
    pub fn from_counters(c: &BTreeMap<String, u64>) -> Option<Discrimination> {
        let get = |k: &str| c.get(k).copied().unwrap_or(0);
        let d = Discrimination { pairs: get("pairs"), wins: get("wins"), ties: get("ties") };
        (d.pairs > 0).then_some(d)
    }

    /// P(true pair rated above its twin) + ½ P(tie).
    pub fn auc(&self) -> f64 {
        (self.wins as f64 + 0.5 * self.ties as f64) / self.pairs.max(1) as f64
    }
}

/// Twins of the epoch's sampled documents, made once the epoch is complete.
pub fn twins_of<'s>(docs: VecCollection<'s, Epoch, Doc>, name: &str) -> VecCollection<'s, Epoch, Doc> {
    // One worker sees all of a language's documents.
    let pact =
        Exchange::new(|(d, _, _): &(Doc, Epoch, isize)| xxh3_64(d.lang.as_deref().unwrap_or("").as_bytes()));
    docs.inner
        .unary_frontier::<CapacityContainerBuilder<Vec<(Doc, Epoch, isize)>>, _, _, _>(
            pact,
            name,
            |_cap, _info| {
                let mut waiting: BTreeMap<Epoch, (Capability<Epoch>, Vec<Doc>)> = BTreeMap::new();
                move |(input, frontier), output| {
                    input.for_each(|cap, data| {
                        for (doc, time, diff) in data.drain(..) {
                            // A retracted pair's twin was judged already; the check is a sample.
                            if diff > 0 {
                                waiting
                                    .entry(time)
                                    .or_insert_with(|| (cap.delayed(&time, 0), Vec::new()))
                                    .1
                                    .push(doc);
                            }
                        }
                    });
                    let ready: Vec<Epoch> =
                        waiting.keys().copied().filter(|t| !frontier.less_equal(t)).collect();
                    for t in ready {
                        let Some((cap, docs)) = waiting.remove(&t) else { continue };
                        let mut session = output.session(&cap);
                        for twin in twins(docs) {
                            session.give((twin, t, 1));
                        }
                    }
                }
            },
        )
        .as_collection()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{Origin, Pair};

    fn doc(id: &str, lang: &str) -> Doc {
        Doc {
            id: id.into(),
            text: format!("text of {id}"),
            url: None,
            source: Origin { shard: "s".into(), offset: 0 },
            lang: Some(lang.into()),
            meta: Default::default(),
            pair: Some(Box::new(Pair { instruction: format!("instruction of {id}"), ..Default::default() })),
            born: None,
        }
    }

    #[test]
    fn twins_pair_each_instruction_with_another_text_of_its_language() {
        let docs = vec![
            doc("a", "sw"),
            doc("b", "sw"),
            doc("c", "sw"),
            doc("d", "fi"),
            doc("e", "fi"),
            doc("f", "tr"),
        ];
        let t = twins(docs);
        assert_eq!(t.len(), 5, "tr has one document: no twin");
        for twin in &t {
            let other = &twin.meta[TWIN_OF];
            assert_ne!(other, &twin.id);
            assert_eq!(twin.text, format!("text of {other}"));
            assert_eq!(twin.pair.as_ref().unwrap().instruction, format!("instruction of {}", twin.id));
            let same_lang = if twin.lang.as_deref() == Some("sw") {
                ["a", "b", "c"].contains(&other.as_str())
            } else {
                ["d", "e"].contains(&other.as_str())
            };
            assert!(same_lang, "{twin:?}");
        }
        // Every text is borrowed once per language: a rotation.
        let mut borrowed: Vec<&str> = t.iter().map(|d| d.meta[TWIN_OF].as_str()).collect();
        borrowed.sort();
        assert_eq!(borrowed, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn discrimination_is_the_auc() {
        let d = Discrimination { pairs: 10, wins: 6, ties: 2 };
        assert!((d.auc() - 0.7).abs() < 1e-12);
        let c = BTreeMap::from([("pairs".to_string(), 4), ("wins".to_string(), 4)]);
        assert_eq!(Discrimination::from_counters(&c).unwrap().auc(), 1.0);
        assert_eq!(Discrimination::from_counters(&BTreeMap::new()), None);
        assert_eq!(judged("unknown", Some(5)), None);
        assert!(judged("good", Some(4)) > judged("flawed", Some(5)));
    }

    #[test]
    fn the_sample_is_stable_and_near_its_rate() {
        let n = (0..4000).filter(|i| in_sample(&doc(&format!("d{i}"), "sw"), 0.25)).count();
        assert!((850..1150).contains(&n), "{n}");
        assert!(!in_sample(&doc("x", "sw"), 0.0));
        assert!(in_sample(&doc("x", "sw"), 1.0));
    }
}
