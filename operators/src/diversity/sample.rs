//! `sample`: fills a per-language quota round-robin across the k-means clusters — round r
//! takes the r-th best pair of every cluster (largest clusters first) — so the selection
//! covers as many kinds of task as the quota allows. Within a cluster the best verdict wins
//! (label: good, flawed, unknown, bad; then the higher score), then the pair nearest the
//! centroid (the cluster's most typical instruction), then the lower id: deterministic.

use super::kmeans::KMeans;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// `[sample]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleConfig {
    /// Pairs per language (the paper: 32,000).
    pub quota: usize,
    /// Re-cluster (instead of assigning new pairs to the saved centroids) when the mean cosine
    /// similarity of the pairs to their centroids drops by more than this.
    pub max_drift: f64,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig { quota: 32_000, max_drift: 0.05 }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub label: String,
    pub score: Option<u8>,
    /// Cosine similarity to its cluster's centroid.
    pub similarity: f32,
}

fn label_rank(label: &str) -> u8 {
    match label {
        "good" => 0,
        "flawed" => 1,
        "" => 2,
        "unknown" => 3,
        _ => 4,
    }
}

/// The rank (0-based order of selection) of each candidate, `None` when not selected.
pub fn select(cands: &[Candidate], assignment: &[usize], k: usize, quota: usize) -> Vec<Option<u32>> {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k.max(1)];
    for (i, c) in assignment.iter().enumerate() {
        if let Some(m) = members.get_mut(*c) {
            m.push(i);
        }
    }
    for m in &mut members {
        m.sort_by(|&a, &b| {
            let (x, y) = (&cands[a], &cands[b]);
            label_rank(&x.label)
                .cmp(&label_rank(&y.label))
                .then(y.score.unwrap_or(0).cmp(&x.score.unwrap_or(0)))
                .then(y.similarity.total_cmp(&x.similarity))
                .then(x.id.cmp(&y.id))
        });
    }
    let mut order: Vec<usize> = (0..members.len()).filter(|&c| !members[c].is_empty()).collect();
    order.sort_by(|&a, &b| members[b].len().cmp(&members[a].len()).then(a.cmp(&b)));
    let mut rank = vec![None; cands.len()];
    let mut next = 0u32;
    let deepest = members.iter().map(Vec::len).max().unwrap_or(0);
    'rounds: for r in 0..deepest {
        for &c in &order {
            if next as usize >= quota {
                break 'rounds;
            }
            if let Some(&i) = members[c].get(r) {
                rank[i] = Some(next);
                next += 1;
            }
        }
    }
    rank
}

/// Diversity figures of a selection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Diversity {
    pub candidates: usize,
    pub selected: usize,
    pub k: usize,
    /// Clusters with at least one selected pair.
    pub clusters_covered: usize,
    /// Mean pairwise cosine similarity of the selected instructions (lower = more diverse)…
    pub mean_pairwise_cosine: f64,
    /// …and of a seeded random sample of the same size, for comparison.
    pub random_mean_pairwise_cosine: f64,
    pub kmeans_iterations: usize,
    pub mean_similarity_to_centroid: f64,
    /// Whether this run re-clustered (else it assigned pairs to the saved centroids).
    pub reclustered: bool,
}

/// Mean cosine over all pairs of (at most 1,000 of) the given vectors.
pub fn mean_pairwise_cosine(vectors: &[&Vec<f32>]) -> f64 {
    let v = &vectors[..vectors.len().min(1000)];
    let (mut sum, mut n) = (0f64, 0u64);
    for i in 0..v.len() {
        for j in i + 1..v.len() {
            sum += v[i].iter().zip(v[j].iter()).map(|(a, b)| (a * b) as f64).sum::<f64>();
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

pub fn diversity(
    vectors: &[Vec<f32>],
    km: &KMeans,
    rank: &[Option<u32>],
    seed: u64,
    reclustered: bool,
) -> Diversity {
    let chosen: Vec<&Vec<f32>> =
        vectors.iter().zip(rank).filter(|(_, r)| r.is_some()).map(|(v, _)| v).collect();
    let mut all: Vec<&Vec<f32>> = vectors.iter().collect();
    all.shuffle(&mut StdRng::seed_from_u64(seed));
    let random = &all[..chosen.len()];
    let covered: std::collections::BTreeSet<usize> =
        km.assignment.iter().zip(rank).filter(|(_, r)| r.is_some()).map(|(c, _)| *c).collect();
    Diversity {
        candidates: vectors.len(),
        selected: chosen.len(),
        k: km.centroids.len(),
        clusters_covered: covered.len(),
        mean_pairwise_cosine: mean_pairwise_cosine(&chosen),
        random_mean_pairwise_cosine: mean_pairwise_cosine(random),
        kmeans_iterations: km.iterations,
        mean_similarity_to_centroid: km.mean_similarity,
        reclustered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: &str, label: &str, score: Option<u8>) -> Candidate {
        Candidate { id: id.into(), label: label.into(), score, similarity: 0.0 }
    }

    #[test]
    fn round_robin_across_clusters_prefers_good_then_score_then_id() {
        let cands = vec![
            cand("a", "good", Some(3)),
            cand("b", "good", Some(5)),
            cand("c", "flawed", Some(5)),
            cand("d", "good", Some(5)),
            cand("e", "good", None),
            cand("f", "bad", Some(5)),
        ];
        // Clusters: 0 = {a, b, c, d}, 1 = {e, f}.
        let assignment = [0, 0, 0, 0, 1, 1];
        let rank = select(&cands, &assignment, 2, 3);
        // Round 0: cluster 0 (larger) → b (good 5, id < d), cluster 1 → e; round 1: cluster 0 → d.
        assert_eq!(rank, vec![None, Some(0), None, Some(2), Some(1), None]);
        // The quota is met exactly, or everything when there are fewer candidates.
        for q in 0..8 {
            let n = select(&cands, &assignment, 2, q).iter().filter(|r| r.is_some()).count();
            assert_eq!(n, q.min(6));
        }
    }
}
