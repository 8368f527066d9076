//! Duplicate clusters as a differential computation over signature records: exact groups,
//! LSH candidate pairs, verification on the signatures, connected components.
//!
//! The input is a collection of [`SigRecord`]s (one per document that reached dedup, with
//! `+1` when it arrives and `-1` when its shard is replaced or the document is taken down);
//! the output is every document's [`Membership`]. Because every step is a differential
//! operator, a new epoch only does the work its records touch: new band keys meet the
//! arranged buckets, components are updated by label propagation from the changed edges, and
//! a retraction withdraws the document's edges and re-labels only its component (promoting
//! the next-lowest key when it was the representative).
//!
//! The representative of a cluster is its lowest [`DocKey`] (epoch the document's shard was
//! first committed in, then id), so a later crawl never displaces an earlier document and the
//! result does not depend on the order within an epoch or on the number of workers.
//!
//! Memory per document (arranged state, all workers together): the record in the exact-hash
//! reduce (input and output), the signature in the semijoin that picks exact representatives
//! and in the verification arrangement (`4 × permutations` bytes each), one entry per band in
//! the bucket arrangement (`bands` × (8 + key)), the node's label in label propagation and
//! the membership in the join that adds cluster sizes. Measured with 128 permutations and
//! 8-character ids: 5.5 KB per document of live memory (docs/dedup.md, docs/benchmarks.md).

use super::minhash::{band_keys, estimate};
use crate::Epoch;
use differential_dataflow::algorithms::graphs::propagate::propagate;
use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};

/// A document's place in the dedup order: the epoch its shard was first committed in, then
/// its id. The lowest key of a cluster is its representative.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DocKey {
    pub epoch: Epoch,
    pub id: String,
}

/// What dedup keeps of a document: enough to cluster it and to find its shard again.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SigRecord {
    pub key: DocKey,
    pub shard: String,
    pub offset: u64,
    pub lang: String,
    /// xxh3-128 of the normalized text.
    pub exact: u128,
    /// The MinHash signature; empty when the text has no shingle (it then only takes part in
    /// exact dedup).
    pub sig: Vec<u32>,
}

/// A document's cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The representative's key.
    pub cluster: DocKey,
    /// Documents in the cluster, the representative included.
    pub size: u64,
    /// The document is an exact copy of a lower-keyed document.
    pub exact_copy: bool,
    /// The document's shard (where a re-read finds it) and language.
    pub shard: String,
    pub lang: String,
}

impl Membership {
    pub fn representative(&self, key: &DocKey) -> bool {
        &self.cluster == key
    }
}

/// The parameters of the clustering that do not change signatures.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterParams {
    /// Rows per LSH band (signature length / bands).
    pub rows: usize,
    /// Estimated Jaccard similarity a candidate pair needs.
    pub threshold: f64,
    /// Buckets up to this size propose all their pairs; larger ones (boilerplate shared by
    /// many documents) propose each member with the bucket's lowest key only, which keeps
    /// the candidate count linear.
    pub all_pairs_up_to: usize,
    /// Near-duplicate detection on (exact dedup only when false).
    pub near: bool,
}

/// Every document's membership, maintained incrementally as records come and go.
pub fn clusters<'s>(
    records: VecCollection<'s, Epoch, SigRecord>,
    params: &ClusterParams,
) -> VecCollection<'s, Epoch, (DocKey, Membership)> {
    // Exact groups: each document points at the lowest key with the same text hash.
    let exact_of = records
        .clone()
        .map(|r| (r.exact, (r.key, r.shard, r.lang)))
        .reduce_named("DedupExact", |_hash, input, output| {
            let rep = &input[0].0 .0;
            for (member, _) in input {
                output.push((((*member).clone(), rep.clone()), 1));
            }
        })
        .map(|(_hash, ((key, shard, lang), rep))| (key, (rep, shard, lang)));
    let exact_reps = exact_of.clone().filter(|(key, (rep, _, _))| key == rep).map(|(key, _)| key);
    // Near-duplicates among the exact representatives.
    let labels = if params.near {
        let sigs =
            records.map(|r| (r.key, r.sig)).filter(|(_, sig)| !sig.is_empty()).semijoin(exact_reps.clone());
        let rows = params.rows;
        let cap = params.all_pairs_up_to;
        let candidates = sigs
            .clone()
            .flat_map(move |(key, sig)| band_keys(&sig, rows).into_iter().map(move |b| (b, key.clone())))
            .reduce_named("DedupBuckets", move |_band, input, output| {
                let members: Vec<&DocKey> = input.iter().map(|(k, _)| *k).collect();
                if members.len() <= cap {
                    for (i, a) in members.iter().enumerate() {
                        for b in &members[i + 1..] {
                            output.push((((*a).clone(), (*b).clone()), 1));
                        }
                    }
                } else {
                    for b in &members[1..] {
                        output.push(((members[0].clone(), (*b).clone()), 1));
                    }
                }
            })
            .map(|(_band, pair)| pair)
            .distinct();
        let threshold = params.threshold;
        // One arrangement of the signatures serves both ends of every candidate pair.
        let by_key = sigs.clone().arrange_by_key_named("DedupSignatures");
        let edges = candidates
            .join_core(by_key.clone(), |a, b, sig_a| Some((b.clone(), (a.clone(), sig_a.clone()))))
            .join_core(by_key, move |b, (a, sig_a), sig_b| {
                (estimate(sig_a, sig_b) >= threshold).then(|| (a.clone(), b.clone()))
            });
        let edges = edges.clone().concat(edges.map(|(a, b)| (b, a)));
        let nodes = exact_reps.map(|k| (k.clone(), k));
        propagate(edges, nodes)
    } else {
        exact_reps.map(|k| (k.clone(), k))
    };
    // Every document takes its exact representative's label.
    let member_of = exact_of.map(|(key, (rep, shard, lang))| (rep, (key, shard, lang))).join_map(
        labels,
        |rep, (key, shard, lang), label| {
            (label.clone(), (key.clone(), key != rep, shard.clone(), lang.clone()))
        },
    );
    let sizes = member_of.clone().map(|(label, _)| label).count();
    member_of.join_map(sizes, |label, (key, exact_copy, shard, lang), size| {
        let membership = Membership {
            cluster: label.clone(),
            size: *size as u64,
            exact_copy: *exact_copy,
            shard: shard.clone(),
            lang: lang.clone(),
        };
        (key.clone(), membership)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::minhash::exact_hash;
    use super::super::minhash::testing::corpus;
    use super::super::minhash::{jaccard, MinHashConfig, MinHasher};
    use super::*;
    use differential_dataflow::input::Input;
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::sync::{Arc, Mutex};

    fn params() -> ClusterParams {
        ClusterParams { rows: 8, threshold: 0.8, all_pairs_up_to: 16, near: true }
    }

    /// Records for a corpus; document i is in epoch `epoch_of(i)` and shard `s{i % 7}`.
    pub(crate) fn records(docs: &[String], epoch_of: impl Fn(usize) -> Epoch) -> Vec<SigRecord> {
        let mh = MinHasher::new(&MinHashConfig::default());
        docs.iter()
            .enumerate()
            .map(|(i, text)| {
                let shingles = mh.shingles(text);
                SigRecord {
                    key: DocKey { epoch: epoch_of(i), id: format!("d{i:05}") },
                    shard: format!("s{}", i % 7),
                    offset: i as u64,
                    lang: "xx".into(),
                    exact: exact_hash(text),
                    sig: if shingles.is_empty() { Vec::new() } else { mh.signature(&shingles) },
                }
            })
            .collect()
    }

    /// The same algorithm, sequentially: exact groups, buckets, verified pairs, union-find.
    pub(crate) fn sequential(records: &[SigRecord], p: &ClusterParams) -> BTreeMap<DocKey, Membership> {
        let mut by_hash: BTreeMap<u128, Vec<&SigRecord>> = BTreeMap::new();
        for r in records {
            by_hash.entry(r.exact).or_default().push(r);
        }
        let mut rep_of: HashMap<&DocKey, &DocKey> = HashMap::new();
        let mut reps: Vec<&SigRecord> = Vec::new();
        for group in by_hash.values_mut() {
            group.sort_by(|a, b| a.key.cmp(&b.key));
            for r in group.iter() {
                rep_of.insert(&r.key, &group[0].key);
            }
            reps.push(group[0]);
        }
        reps.sort_by(|a, b| a.key.cmp(&b.key));
        let index: HashMap<&DocKey, usize> = reps.iter().enumerate().map(|(i, r)| (&r.key, i)).collect();
        let mut parent: Vec<usize> = (0..reps.len()).collect();
        fn find(parent: &mut [usize], x: usize) -> usize {
            let mut root = x;
            while parent[root] != root {
                root = parent[root];
            }
            parent[x] = root;
            root
        }
        let mut buckets: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, r) in reps.iter().enumerate() {
            if !r.sig.is_empty() {
                for b in band_keys(&r.sig, p.rows) {
                    buckets.entry(b).or_default().push(i);
                }
            }
        }
        let mut pairs = BTreeSet::new();
        for members in buckets.values() {
            if members.len() <= p.all_pairs_up_to {
                for (x, &a) in members.iter().enumerate() {
                    for &b in &members[x + 1..] {
                        pairs.insert((a, b));
                    }
                }
            } else {
                for &b in &members[1..] {
                    pairs.insert((members[0], b));
                }
            }
        }
        for (a, b) in pairs {
            if estimate(&reps[a].sig, &reps[b].sig) >= p.threshold {
                let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
                parent[ra.max(rb)] = ra.min(rb);
            }
        }
        let mut sizes: HashMap<usize, u64> = HashMap::new();
        let mut root_of = HashMap::new();
        for r in records {
            let root = find(&mut parent, index[rep_of[&r.key]]);
            *sizes.entry(root).or_default() += 1;
            root_of.insert(&r.key, root);
        }
        records
            .iter()
            .map(|r| {
                let root = root_of[&r.key];
                let m = Membership {
                    cluster: reps[root].key.clone(),
                    size: sizes[&root],
                    exact_copy: rep_of[&r.key] != &r.key,
                    shard: r.shard.clone(),
                    lang: r.lang.clone(),
                };
                (r.key.clone(), m)
            })
            .collect()
    }

    type Update = ((DocKey, Membership), Epoch, isize);

    /// Runs [`clusters`] on `workers` threads; `script[t]` holds the (record, diff) changes of
    /// epoch t. Returns the memberships after every epoch.
    fn dataflow(workers: usize, script: Vec<Vec<(SigRecord, isize)>>) -> Vec<BTreeMap<DocKey, Membership>> {
        let epochs = script.len() as Epoch;
        let out: Arc<Mutex<Vec<Update>>> = Arc::default();
        let sink = out.clone();
        let script = Arc::new(script);
        timely::execute(timely::Config::process(workers), move |worker| {
            let sink = sink.clone();
            let (mut input, probe) = worker.dataflow::<Epoch, _, _>(|scope| {
                let (input, records) = scope.new_collection::<SigRecord, isize>();
                let probe = clusters(records, &params())
                    .inspect(move |u| sink.lock().unwrap().push(u.clone()))
                    .probe();
                (input, probe.0)
            });
            for (t, changes) in script.iter().enumerate() {
                input.advance_to(t as Epoch);
                if worker.index() == 0 {
                    for (r, d) in changes {
                        input.update(r.clone(), *d);
                    }
                }
                input.advance_to(t as Epoch + 1);
                input.flush();
                while probe.less_than(&(t as Epoch + 1)) {
                    worker.step();
                }
            }
        })
        .unwrap();
        let updates = out.lock().unwrap().clone();
        states(&updates, epochs)
    }

    /// Memberships after each epoch from the accumulated output changes.
    fn states(updates: &[Update], epochs: Epoch) -> Vec<BTreeMap<DocKey, Membership>> {
        (0..epochs)
            .map(|t| {
                let mut acc: BTreeMap<(DocKey, Membership), isize> = BTreeMap::new();
                for (u, time, d) in updates {
                    if *time <= t {
                        *acc.entry(u.clone()).or_default() += d;
                    }
                }
                let mut state = BTreeMap::new();
                for ((k, m), d) in acc {
                    assert!(d == 0 || d == 1, "{k:?} has multiplicity {d}");
                    if d == 1 {
                        assert!(state.insert(k.clone(), m).is_none(), "{k:?} has two memberships");
                    }
                }
                state
            })
            .collect()
    }

    /// [`load_prior`](super::super::prior::load_prior) in front of [`clusters`] on `workers`
    /// threads; `script[t]` holds epoch t's stored-record changes (fed by worker 0, as the
    /// driver does) and new records (spread over the workers). Returns the dataflow's
    /// memberships and the stored keys loaded, after every epoch.
    #[allow(clippy::type_complexity)]
    pub(crate) fn dataflow_with(
        workers: usize,
        script: Vec<(Vec<(SigRecord, isize)>, Vec<SigRecord>)>,
        p: &ClusterParams,
        load: super::super::prior::PriorLoad,
    ) -> (Vec<BTreeMap<DocKey, Membership>>, Vec<BTreeSet<DocKey>>) {
        let epochs = script.len() as Epoch;
        let out: Arc<Mutex<Vec<Update>>> = Arc::default();
        let keys: Arc<Mutex<Vec<(DocKey, Epoch, isize)>>> = Arc::default();
        let (sink, key_sink) = (out.clone(), keys.clone());
        let script = Arc::new(script);
        let p = p.clone();
        timely::execute(timely::Config::process(workers), move |worker| {
            let (sink, key_sink, p) = (sink.clone(), key_sink.clone(), p.clone());
            let (mut prior_in, mut new_in, probe) = worker.dataflow::<Epoch, _, _>(|scope| {
                let (prior_in, prior) = scope.new_collection::<SigRecord, isize>();
                let (new_in, new) = scope.new_collection::<SigRecord, isize>();
                let (loaded, loaded_keys) = super::super::prior::load_prior(prior, new.clone(), &p, load);
                loaded_keys.inspect(move |u| key_sink.lock().unwrap().push(u.clone()));
                let probe = clusters(loaded.concat(new), &p)
                    .inspect(move |u| sink.lock().unwrap().push(u.clone()))
                    .probe();
                (prior_in, new_in, probe.0)
            });
            let (index, peers) = (worker.index(), worker.peers());
            for (t, (changes, new)) in script.iter().enumerate() {
                prior_in.advance_to(t as Epoch);
                new_in.advance_to(t as Epoch);
                if index == 0 {
                    for (r, d) in changes {
                        prior_in.update(r.clone(), *d);
                    }
                }
                for (i, r) in new.iter().enumerate() {
                    if i % peers == index {
                        new_in.insert(r.clone());
                    }
                }
                prior_in.advance_to(t as Epoch + 1);
                new_in.advance_to(t as Epoch + 1);
                prior_in.flush();
                new_in.flush();
                while probe.less_than(&(t as Epoch + 1)) {
                    worker.step();
                }
            }
        })
        .unwrap();
        let updates = out.lock().unwrap().clone();
        let mut loaded = vec![BTreeSet::new(); epochs as usize];
        for (k, t, d) in keys.lock().unwrap().iter() {
            assert_eq!(*d, 1, "{k:?} loaded with diff {d}");
            assert!(loaded.iter().all(|s| !s.contains(k)), "{k:?} loaded twice");
            loaded[*t as usize].insert(k.clone());
        }
        (states(&updates, epochs), loaded)
    }

    #[test]
    fn clusters_match_the_sequential_algorithm_and_brute_force_jaccard() {
        let docs = corpus(11, 150);
        let recs = records(&docs, |_| 0);
        let expected = sequential(&recs, &params());
        for workers in [1, 2, 4] {
            let got = dataflow(workers, vec![recs.iter().map(|r| (r.clone(), 1)).collect()]);
            assert_eq!(got[0], expected, "{workers} workers");
        }
        // Against exact Jaccard: the pairs in one cluster vs the pairs that brute force puts in
        // one component when documents are linked at Jaccard >= j.
        let mh = MinHasher::new(&MinHashConfig::default());
        let shingles: Vec<Vec<u64>> = docs.iter().map(|d| mh.shingles(d)).collect();
        let mut sims = Vec::new();
        for i in 0..docs.len() {
            for j in i + 1..docs.len() {
                sims.push((i, j, jaccard(&shingles[i], &shingles[j])));
            }
        }
        let together = |link: f64| -> BTreeSet<(usize, usize)> {
            let mut parent: Vec<usize> = (0..docs.len()).collect();
            fn find(p: &mut [usize], x: usize) -> usize {
                if p[x] != x {
                    let r = find(p, p[x]);
                    p[x] = r;
                }
                p[x]
            }
            for &(i, j, s) in &sims {
                if s >= link {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    parent[a.max(b)] = a.min(b);
                }
            }
            sims.iter()
                .filter(|(i, j, _)| find(&mut parent, *i) == find(&mut parent, *j))
                .map(|(i, j, _)| (*i, *j))
                .collect()
        };
        let key = |i: usize| recs[i].key.clone();
        let found: BTreeSet<(usize, usize)> = sims
            .iter()
            .filter(|(i, j, _)| expected[&key(*i)].cluster == expected[&key(*j)].cluster)
            .map(|(i, j, _)| (*i, *j))
            .collect();
        let (at_08, at_09, at_06) = (together(0.8), together(0.9), together(0.6));
        let hit = at_08.intersection(&found).count() as f64;
        eprintln!(
            "pairs together: brute force {} (J>=0.8), found {}; recall {:.3} precision {:.3}",
            at_08.len(),
            found.len(),
            hit / at_08.len() as f64,
            hit / found.len() as f64
        );
        assert!(at_08.len() > 40, "planted duplicates: {}", at_08.len());
        // 14 x 8 bands with 112-value verification: a pair at J >= 0.9 is found with p > 0.999
        // and one at J < 0.6 passes verification with p < 1e-5. So components linked at 0.9
        // are found whole, and every merge goes through near misses (J >= 0.6), never through
        // unrelated documents.
        let missed_09 = at_09.difference(&found).count();
        assert!(missed_09 <= at_09.len() / 100, "missed {missed_09} of {} pairs at J >= 0.9", at_09.len());
        let beyond_06: Vec<_> = found.difference(&at_06).collect();
        assert!(beyond_06.is_empty(), "clustered without a J >= 0.6 chain: {beyond_06:?}");
        assert!(hit / at_08.len() as f64 >= 0.9, "recall at 0.8");
        assert!(expected.values().any(|m| m.exact_copy), "the corpus has exact copies");
    }

    #[test]
    fn five_epochs_equal_one_and_retraction_promotes_the_next_key() {
        let docs = corpus(5, 120);
        // Epoch of a document: spread over 1..=5, so clusters span epochs.
        let recs = records(&docs, |i| 1 + (i as Epoch * 7919) % 5);
        let batch = sequential(&recs, &params());
        let mut script: Vec<Vec<(SigRecord, isize)>> = vec![Vec::new(); 5];
        for r in &recs {
            script[r.key.epoch as usize - 1].push((r.clone(), 1));
        }
        // Epoch 5: retract every representative of a cluster of 3 or more and two singletons.
        let mut retracted: BTreeSet<DocKey> = batch
            .iter()
            .filter(|(k, m)| m.size >= 3 && m.representative(k))
            .map(|(k, _)| k.clone())
            .collect();
        assert!(retracted.len() >= 3, "clusters of 3+: {}", retracted.len());
        retracted.extend(batch.iter().filter(|(_, m)| m.size == 1).take(2).map(|(k, _)| k.clone()));
        let mut with_retraction = script.clone();
        with_retraction
            .push(recs.iter().filter(|r| retracted.contains(&r.key)).map(|r| (r.clone(), -1)).collect());
        for workers in [1, 2] {
            let got = dataflow(workers, with_retraction.clone());
            for t in 0..5 {
                let so_far: Vec<SigRecord> =
                    recs.iter().filter(|r| r.key.epoch <= t as Epoch + 1).cloned().collect();
                assert_eq!(got[t], sequential(&so_far, &params()), "epoch {} of 5, {workers} workers", t + 1);
            }
            assert_eq!(got[4], batch, "5 epochs = 1");
            let left: Vec<SigRecord> = recs.iter().filter(|r| !retracted.contains(&r.key)).cloned().collect();
            let after = sequential(&left, &params());
            assert_eq!(got[5], after, "after retraction, {workers} workers");
            // The promoted representatives: the next-lowest key of each retracted cluster.
            for k in retracted.iter().filter(|k| batch[*k].size >= 3) {
                let next = batch
                    .iter()
                    .filter(|(o, m)| m.cluster == *k && *o != k)
                    .map(|(o, _)| o)
                    .min()
                    .expect("cluster of 3+");
                assert!(after[next].representative(next) || after[next].cluster < *next, "{next:?}");
            }
        }
    }
}
