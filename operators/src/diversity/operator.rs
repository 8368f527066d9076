//! The `diversity` operator's dataflow half: each kept pair's English instruction embedded
//! (memoized) on the worker that holds it, as a [`Point`] for the per-language selection
//! ([`super::live`]), which the driver keeps and commits with each epoch — the selection is
//! one decision per language over every epoch, like dedup's cluster view.

use super::embed::Embedder;
use super::live::Point;
use crate::doc::Doc;
use crate::generate::MemoCache;
use crate::stats::StatsRegistry;
use crate::Epoch;
use differential_dataflow::VecCollection;
use std::sync::Arc;
use std::time::Instant;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

/// The points of the documents that carry a pair.
pub fn points(docs: &[&Doc], vectors: Vec<Vec<f32>>) -> Vec<Point> {
    docs.iter()
        .zip(vectors)
        .filter_map(|(d, vector)| {
            let pair = d.pair.as_ref()?;
            Some(Point {
                id: d.id.clone(),
                lang: d.lang.clone().unwrap_or_default(),
                shard: d.source.shard.clone(),
                instruction: pair.instruction.clone(),
                label: pair.label.clone(),
                score: pair.score,
                vector,
            })
        })
        .collect()
}

pub trait EmbedPairs<'s> {
    /// Embeds the instruction of every pair (documents without one pass by).
    fn embed_pairs(
        &self,
        embedder: &Arc<Embedder>,
        memo: Option<Arc<MemoCache>>,
        stats: &StatsRegistry,
    ) -> StreamVec<'s, Epoch, Point> {
        self.embed_pairs_named("diversity", embedder, memo, stats)
    }

    fn embed_pairs_named(
        &self,
        name: &str,
        embedder: &Arc<Embedder>,
        memo: Option<Arc<MemoCache>>,
        stats: &StatsRegistry,
    ) -> StreamVec<'s, Epoch, Point>;
}

impl<'s> EmbedPairs<'s> for VecCollection<'s, Epoch, Doc> {
    fn embed_pairs_named(
        &self,
        name: &str,
        embedder: &Arc<Embedder>,
        memo: Option<Arc<MemoCache>>,
        stats: &StatsRegistry,
    ) -> StreamVec<'s, Epoch, Point> {
        let (embedder, stats, op) = (embedder.clone(), stats.clone(), name.to_string());
        self.inner.clone().unary::<CapacityContainerBuilder<Vec<Point>>, _, _, _>(
            Pipeline,
            name,
            move |_, _| {
                move |input, output| {
                    input.for_each(|cap, data| {
                        let started = Instant::now();
                        // Retractions: the sink replaces whole shards, and so does the selection.
                        let docs: Vec<&Doc> = data
                            .iter()
                            .filter(|(d, _, diff)| *diff > 0 && d.pair.is_some())
                            .map(|(d, _, _)| d)
                            .collect();
                        if docs.is_empty() {
                            return;
                        }
                        let texts: Vec<&str> = docs
                            .iter()
                            .filter_map(|d| d.pair.as_ref())
                            .map(|p| p.instruction.as_str())
                            .collect();
                        let embedded = embedder.embed(&texts, memo.as_deref());
                        let mut session = output.session(&cap);
                        stats.with(&op, |s| {
                            s.docs_in += docs.len() as u64;
                            match embedded {
                                Ok(vectors) => {
                                    let points = points(&docs, vectors);
                                    s.docs_out += points.len() as u64;
                                    session.give_iterator(points.into_iter());
                                }
                                Err(e) => {
                                    // Not a loss of the pairs (the sink writes them): they miss the
                                    // selection until `xinst diversify --rebuild`.
                                    tracing::error!(pairs = docs.len(), "embedding failed: {e}");
                                    s.count("embed_failed", docs.len() as u64);
                                }
                            }
                            s.add_time(started.elapsed());
                        });
                    });
                }
            },
        )
    }
}
