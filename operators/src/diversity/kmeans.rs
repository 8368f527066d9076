//! `kmeans`: spherical k-means (cosine geometry on L2-normalized vectors) with k-means++
//! initialisation and Lloyd iterations; seeded and deterministic — the same result for any
//! number of threads (points are assigned independently and centroid sums are added in a
//! fixed chunk order, in f64).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// `[kmeans]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KMeansConfig {
    /// Clusters per language; 0 = the default rule: the quota when there are at least twice
    /// as many candidates (the paper's one pair per cluster), else ⌈√n⌉.
    pub k: usize,
    pub max_iterations: usize,
    /// Stop when no centroid moves by more than this (1 − cosine).
    pub tolerance: f64,
    pub seed: u64,
    /// Threads for the assignment step.
    pub threads: usize,
}

impl Default for KMeansConfig {
    fn default() -> Self {
        KMeansConfig { k: 0, max_iterations: 100, tolerance: 1e-6, seed: 42, threads: 2 }
    }
}

impl KMeansConfig {
    /// The number of clusters for `n` candidates and a quota.
    pub fn k_for(&self, n: usize, quota: usize) -> usize {
        let k = if self.k > 0 {
            self.k
        } else if n >= 2 * quota {
            quota
        } else {
            (n as f64).sqrt().ceil() as usize
        };
        k.clamp(1, n.max(1))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KMeans {
    pub centroids: Vec<Vec<f32>>,
    /// The cluster of each point.
    pub assignment: Vec<usize>,
    /// Mean cosine similarity of the points to their centroids.
    pub mean_similarity: f64,
    pub iterations: usize,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x = (*x as f64 / n) as f32);
    }
}

/// The nearest centroid (highest cosine; the lowest index on ties) of every point.
pub fn assign(points: &[Vec<f32>], centroids: &[Vec<f32>], threads: usize) -> Vec<(usize, f32)> {
    let nearest = |p: &Vec<f32>| {
        let mut best = (0usize, f32::NEG_INFINITY);
        for (c, centroid) in centroids.iter().enumerate() {
            let s = dot(p, centroid);
            if s > best.1 {
                best = (c, s);
            }
        }
        best
    };
    if points.len() * centroids.len() >= 1 << 16 {
        if let Some(out) = assign_gemm(points, centroids) {
            return out;
        }
    }
    let threads = threads.max(1);
    if threads == 1 || points.len() < 1024 {
        return points.iter().map(nearest).collect();
    }
    let chunk = points.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = points
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(nearest).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

/// The assignment as matrix products (a block of points × centroidsᵀ, candle's gemm), for
/// large inputs: the same nearest centroids as the loop up to float rounding of the dot
/// products. Blocks bound the similarity matrix: at the paper's scale (300,000 points, k =
/// 32,000) the whole matrix would be 38 GB; a block of rows is `ASSIGN_BLOCK_BYTES` at most.
fn assign_gemm(points: &[Vec<f32>], centroids: &[Vec<f32>]) -> Option<Vec<(usize, f32)>> {
    assign_gemm_rows(points, centroids, (ASSIGN_BLOCK_BYTES / (4 * centroids.len())).max(1))
}

fn assign_gemm_rows(points: &[Vec<f32>], centroids: &[Vec<f32>], rows: usize) -> Option<Vec<(usize, f32)>> {
    use candle_core::{Device, Tensor};
    let dim = points[0].len();
    let flat = |v: &[Vec<f32>]| v.iter().flat_map(|x| x.iter().copied()).collect::<Vec<f32>>();
    let c = Tensor::from_vec(flat(centroids), (centroids.len(), dim), &Device::Cpu).ok()?;
    let ct = c.t().ok()?;
    let mut out = Vec::with_capacity(points.len());
    for block in points.chunks(rows) {
        let p = Tensor::from_vec(flat(block), (block.len(), dim), &Device::Cpu).ok()?;
        let sims = p.matmul(&ct).ok()?.to_vec2::<f32>().ok()?;
        out.extend(sims.into_iter().map(|row| {
            let mut best = (0usize, f32::NEG_INFINITY);
            for (i, s) in row.into_iter().enumerate() {
                if s > best.1 {
                    best = (i, s);
                }
            }
            best
        }));
    }
    Some(out)
}

/// The most memory one block of the assignment's similarity matrix takes.
const ASSIGN_BLOCK_BYTES: usize = 256 << 20;

/// k-means++: the first centre uniformly, each next one with probability proportional to the
/// squared distance (here 1 − cosine, ≥ 0) to the nearest centre chosen so far.
fn init(points: &[Vec<f32>], k: usize, rng: &mut StdRng) -> Vec<Vec<f32>> {
    let mut centres = vec![points[rng.random_range(0..points.len())].clone()];
    let mut d: Vec<f64> =
        points.iter().map(|p| (1.0 - dot(p, &centres[0]) as f64).max(0.0).powi(2)).collect();
    while centres.len() < k {
        let total: f64 = d.iter().sum();
        let next = if total <= 0.0 {
            // Fewer distinct points than k: take the first not yet a centre.
            match (0..points.len()).find(|&i| !centres.iter().any(|c| c == &points[i])) {
                Some(i) => i,
                None => break,
            }
        } else {
            let mut r = rng.random::<f64>() * total;
            let mut pick = points.len() - 1;
            for (i, w) in d.iter().enumerate() {
                if r < *w {
                    pick = i;
                    break;
                }
                r -= w;
            }
            pick
        };
        centres.push(points[next].clone());
        let c = centres.last().cloned().unwrap_or_default();
        for (di, p) in d.iter_mut().zip(points) {
            *di = di.min((1.0 - dot(p, &c) as f64).max(0.0).powi(2));
        }
    }
    centres
}

/// Clusters L2-normalized `points` into `k` clusters.
pub fn kmeans(points: &[Vec<f32>], k: usize, cfg: &KMeansConfig) -> KMeans {
    if points.is_empty() {
        return KMeans { centroids: Vec::new(), assignment: Vec::new(), mean_similarity: 0.0, iterations: 0 };
    }
    let k = k.clamp(1, points.len());
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let centroids = init(points, k, &mut rng);
    lloyd(points, centroids, cfg)
}

/// Lloyd's iterations from the given centroids.
pub fn lloyd(points: &[Vec<f32>], mut centroids: Vec<Vec<f32>>, cfg: &KMeansConfig) -> KMeans {
    if points.is_empty() || centroids.is_empty() {
        return KMeans { centroids, assignment: vec![0; points.len()], mean_similarity: 0.0, iterations: 0 };
    }
    let dim = points[0].len();
    let mut assigned = assign(points, &centroids, cfg.threads);
    let mut iterations = 0;
    for _ in 0..cfg.max_iterations {
        iterations += 1;
        // New centroids: sums in f64, chunk by chunk in a fixed order.
        let mut sums = vec![vec![0f64; dim]; centroids.len()];
        let mut counts = vec![0usize; centroids.len()];
        for (p, (c, _)) in points.iter().zip(&assigned) {
            counts[*c] += 1;
            for (s, x) in sums[*c].iter_mut().zip(p) {
                *s += *x as f64;
            }
        }
        let mut moved = 0f64;
        let mut next = Vec::with_capacity(centroids.len());
        for (c, (sum, n)) in sums.into_iter().zip(&counts).enumerate() {
            let mut v: Vec<f32> = if *n == 0 {
                // An empty cluster takes the point farthest from its centroid.
                let far = (0..points.len())
                    .min_by(|&a, &b| assigned[a].1.total_cmp(&assigned[b].1).then(a.cmp(&b)))
                    .unwrap_or(0);
                points[far].clone()
            } else {
                sum.iter().map(|s| (*s / *n as f64) as f32).collect()
            };
            normalize(&mut v);
            moved = moved.max(1.0 - dot(&v, &centroids[c]) as f64);
            next.push(v);
        }
        centroids = next;
        assigned = assign(points, &centroids, cfg.threads);
        if moved <= cfg.tolerance {
            break;
        }
    }
    let mean_similarity = assigned.iter().map(|(_, s)| *s as f64).sum::<f64>() / points.len() as f64;
    KMeans {
        centroids,
        assignment: assigned.into_iter().map(|(c, _)| c).collect(),
        mean_similarity,
        iterations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded points around `centres` (unit vectors), normalized.
    fn blobs(centres: &[Vec<f32>], per: usize, noise: f32, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut pts = Vec::new();
        let mut truth = Vec::new();
        for i in 0..per {
            for (c, centre) in centres.iter().enumerate() {
                let mut v: Vec<f32> =
                    centre.iter().map(|x| x + noise * (rng.random::<f32>() - 0.5)).collect();
                normalize(&mut v);
                pts.push(v);
                truth.push(c);
                let _ = i;
            }
        }
        (pts, truth)
    }

    fn objective(points: &[Vec<f32>], assignment: &[usize], k: usize) -> f64 {
        let dim = points[0].len();
        (0..k)
            .map(|c| {
                let mut m = vec![0f32; dim];
                for (p, a) in points.iter().zip(assignment) {
                    if *a == c {
                        m.iter_mut().zip(p).for_each(|(s, x)| *s += x);
                    }
                }
                normalize(&mut m);
                points
                    .iter()
                    .zip(assignment)
                    .filter(|(_, a)| **a == c)
                    .map(|(p, _)| dot(p, &m) as f64)
                    .sum::<f64>()
            })
            .sum()
    }

    #[test]
    fn separated_blobs_are_found() {
        let centres = vec![vec![1.0, 0.0, 0.0, 0.0], vec![0.0, 1.0, 0.0, 0.0], vec![0.0, 0.0, 1.0, 0.0]];
        let (pts, truth) = blobs(&centres, 40, 0.3, 7);
        let km = kmeans(&pts, 3, &KMeansConfig::default());
        // The same partition as the truth, up to cluster names.
        for (a, b) in (0..pts.len()).flat_map(|a| (0..pts.len()).map(move |b| (a, b))) {
            assert_eq!(km.assignment[a] == km.assignment[b], truth[a] == truth[b]);
        }
        assert!(km.mean_similarity > 0.9);
    }

    /// Against a brute-force oracle: the best partition of 10 points into 2 clusters over all
    /// 2^10 assignments. Lloyd's iterations started at the optimum's centroids stay there (it
    /// is a fixed point); k-means from k-means++ ends at a fixed point too (every point at its
    /// nearest centroid), and the best of 16 seeds is within 0.5% of the optimum (Lloyd finds
    /// local optima: for one of these point sets no seed reaches the global one).
    #[test]
    fn against_the_exhaustive_optimum_on_small_data() {
        let part = |mask: u32| (0..10).map(|i| ((mask >> i) & 1) as usize).collect::<Vec<_>>();
        let centres_of = |pts: &[Vec<f32>], a: &[usize]| -> Vec<Vec<f32>> {
            (0..2)
                .map(|c| {
                    let mut m = vec![0f32; pts[0].len()];
                    for (p, x) in pts.iter().zip(a) {
                        if *x == c {
                            m.iter_mut().zip(p).for_each(|(s, v)| *s += v);
                        }
                    }
                    normalize(&mut m);
                    m
                })
                .collect()
        };
        for seed in 0..5u64 {
            let mut rng = StdRng::seed_from_u64(100 + seed);
            let pts: Vec<Vec<f32>> = (0..10)
                .map(|_| {
                    let mut v: Vec<f32> = (0..3).map(|_| rng.random::<f32>() - 0.3).collect();
                    normalize(&mut v);
                    v
                })
                .collect();
            let opt_mask = (1..1u32 << 10)
                .max_by(|&x, &y| objective(&pts, &part(x), 2).total_cmp(&objective(&pts, &part(y), 2)))
                .unwrap();
            let (opt, best) = (part(opt_mask), objective(&pts, &part(opt_mask), 2));
            let stays = lloyd(&pts, centres_of(&pts, &opt), &KMeansConfig::default());
            assert_eq!(stays.assignment, opt, "seed {seed}: the optimum is a fixed point");
            let mut got = f64::MIN;
            for s in 0..16 {
                let km = kmeans(&pts, 2, &KMeansConfig { seed: s, ..Default::default() });
                let nearest: Vec<usize> =
                    assign(&pts, &km.centroids, 1).into_iter().map(|(c, _)| c).collect();
                assert_eq!(nearest, km.assignment, "seed {seed}/{s}: not a fixed point");
                got = got.max(objective(&pts, &km.assignment, 2));
            }
            assert!(got >= best * 0.995 && got <= best + 1e-4, "seed {seed}: optimum {best}, k-means {got}");
        }
    }

    #[test]
    fn deterministic_and_the_same_for_any_thread_count() {
        let centres: Vec<Vec<f32>> =
            (0..8).map(|i| (0..16).map(|j| if j == i * 2 { 1.0 } else { 0.0 }).collect()).collect();
        let (pts, _) = blobs(&centres, 300, 0.9, 3);
        let one = kmeans(&pts, 8, &KMeansConfig { threads: 1, ..Default::default() });
        let two = kmeans(&pts, 8, &KMeansConfig { threads: 2, ..Default::default() });
        let again = kmeans(&pts, 8, &KMeansConfig { threads: 2, ..Default::default() });
        assert_eq!(one, two);
        assert_eq!(two, again);
    }

    #[test]
    fn the_blocked_matrix_assignment_equals_the_loop() {
        let centres: Vec<Vec<f32>> =
            (0..8).map(|i| (0..16).map(|j| if j == i * 2 { 1.0 } else { 0.0 }).collect()).collect();
        let (pts, _) = blobs(&centres, 300, 0.9, 5);
        let looped = assign(&pts, &centres, 1);
        let blocked = assign_gemm_rows(&pts, &centres, 7).unwrap();
        assert_eq!(looped.len(), blocked.len());
        for (a, b) in looped.iter().zip(&blocked) {
            assert!(a.0 == b.0 || (a.1 - b.1).abs() < 1e-6, "{a:?} vs {b:?}");
            assert!((a.1 - b.1).abs() < 1e-5);
        }
    }

    #[test]
    fn k_rule() {
        let c = KMeansConfig::default();
        assert_eq!(c.k_for(100_000, 32_000), 32_000);
        assert_eq!(c.k_for(50_000, 32_000), 224);
        assert_eq!(c.k_for(3, 10), 2);
        assert_eq!(c.k_for(0, 10), 1);
        assert_eq!(KMeansConfig { k: 5, ..c }.k_for(3, 10), 3);
    }
}
