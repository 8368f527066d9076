//! Dataflow assembly: the operator chain between the read and write ends, as the config
//! orders it.

use crate::config::{Config, OperatorName};
use anyhow::{anyhow, Result};
use differential_dataflow::VecCollection;
use std::collections::HashSet;
use std::sync::Arc;
use timely::dataflow::StreamVec;
use xinstruct_operators::dedup::{Dedup, DocKey, Membership, Prior, SigRecord};
use xinstruct_operators::diversity::{EmbedPairs, Embedder, Point};
use xinstruct_operators::instruct::{
    split_sampled, CrossCheck, Evaluate, Refine, RefineStages, ReverseInstruction, StageModels,
};
use xinstruct_operators::lang_id::{LangId, LangIdentifier};
use xinstruct_operators::normalize::Normalize;
use xinstruct_operators::quality::Quality;
use xinstruct_operators::stats::StatsRegistry;
use xinstruct_operators::{Doc, Epoch, Reject};

/// What dedup hands the sink and the leader besides documents and rejects.
pub(super) struct DedupSide<'s> {
    pub(super) records: VecCollection<'s, Epoch, SigRecord>,
    pub(super) clusters: VecCollection<'s, Epoch, (DocKey, Membership)>,
    pub(super) loaded: VecCollection<'s, Epoch, DocKey>,
}

/// The chain's outputs.
pub(super) struct Chain<'s> {
    pub(super) docs: VecCollection<'s, Epoch, Doc>,
    pub(super) rejects: VecCollection<'s, Epoch, Reject>,
    pub(super) dedup: Option<DedupSide<'s>>,
    /// Documents that passed every filter but were not sampled for an instruction.
    pub(super) corpus: Option<VecCollection<'s, Epoch, Doc>>,
    /// The finished pairs' embeddings, for the leader's diversity selection.
    pub(super) points: Option<StreamVec<'s, Epoch, Point>>,
}

/// The operator chain between the read and write ends, as the config orders it. Each operator
/// takes the documents and adds its rejects; the driver and sinks stay as they are.
#[allow(clippy::too_many_arguments)]
pub(super) fn assemble<'s>(
    mut docs: VecCollection<'s, Epoch, Doc>,
    mut rejects: VecCollection<'s, Epoch, Reject>,
    prior: Prior<'s>,
    takedown: &Arc<HashSet<String>>,
    config: &Config,
    lang_id: Option<&Arc<LangIdentifier>>,
    models: Option<&StageModels>,
    embedder: Option<&Arc<Embedder>>,
    stats: &StatsRegistry,
) -> Result<Chain<'s>> {
    let no_models = || anyhow!("the X-Instruction stages need a generator ([instruct])");
    let ops = &config.pipeline.operators;
    let mut side = None;
    let mut corpus = None;
    let mut points = None;
    let mut prior = Some(prior);
    for op in ops {
        let (kept, rejected) = match (op, lang_id) {
            (OperatorName::Normalize, _) => docs.normalize(&config.normalize, stats),
            (OperatorName::LangId, Some(identifier)) => docs.lang_id(identifier, stats),
            (OperatorName::LangId, None) | (OperatorName::CrossCheck, None) => continue,
            // Last in the chain (Config::validate): it keeps every document and only adds
            // the pairs' embeddings for the selection; without pairs there is nothing to do.
            (OperatorName::Diversity, _) => {
                if let Some(embedder) = embedder {
                    let memo = models.and_then(|m| m.memo.clone());
                    points = Some(docs.embed_pairs(embedder, memo, stats));
                }
                continue;
            }
            (OperatorName::Quality, _) => docs.quality(&config.quality, stats),
            (OperatorName::Dedup, _) => {
                let prior = prior.take().ok_or_else(|| anyhow!("dedup is listed twice in [pipeline]"))?;
                let out = docs.dedup(prior, &config.dedup, takedown.clone(), stats);
                side = Some(DedupSide { records: out.records, clusters: out.clusters, loaded: out.loaded });
                (out.kept, out.rejected)
            }
            (OperatorName::ReverseInstruction, _) => {
                let (picked, rest) = split_sampled(docs, config.reverse_instruction.sample_rate, stats);
                corpus = Some(rest);
                picked
                    .reverse_instruction(&config.reverse_instruction, models.ok_or_else(no_models)?, stats)
                    .map_err(|e| anyhow!(e))?
            }
            (OperatorName::CrossCheck, Some(identifier)) => {
                docs.cross_check(identifier, &config.cross_check, stats)
            }
            (OperatorName::Evaluate, _) => docs
                .evaluate(&config.evaluate, models.ok_or_else(no_models)?, stats)
                .map_err(|e| anyhow!(e))?,
            (OperatorName::Refine, _) => {
                let stages = RefineStages {
                    reverse: config.reverse_instruction.clone(),
                    evaluate: config.evaluate.clone(),
                    cross_check: lang_id
                        .filter(|_| ops.contains(&OperatorName::CrossCheck))
                        .map(|id| (id.clone(), config.cross_check.clone())),
                };
                docs.refine(&config.refine, &stages, models.ok_or_else(no_models)?, stats)
                    .map_err(|e| anyhow!(e))?
            }
        };
        docs = kept;
        rejects = rejects.concat(rejected);
    }
    Ok(Chain { docs, rejects, dedup: side, corpus, points })
}
