//! Stored dedup records, loaded as the epochs need them.
//!
//! A restarted run has the records of every committed shard (the dataset's `signatures/`
//! parts). Putting them all into [`clusters`](super::clusters)'s arrangements costs about as
//! much as the differential half of a full build. Most of that work is wasted: a record of
//! this run meets only the few stored records that share its text hash or one of its LSH band
//! keys. So the stored records go into a [`PriorIndex`] (hash maps, no arrangements), and a
//! group of them moves into the dataflow only when a record entering or leaving the dataflow
//! shares one of its keys.
//!
//! Why this is exact. Link two stored records when they share the text hash or a band key; a
//! *unit* is a connected component of these links. Everything `clusters` computes for a
//! record (its exact group, its buckets and so its candidate pairs, its verified edges, its
//! component) involves only records linked to it, transitively. So while no record in the
//! dataflow shares a key with a unit, the unit's memberships are the ones stored with the
//! dataset (the `dup_clusters` snapshot) and leaving it out changes nothing else. A unit is
//! loaded whole, at the epoch of the first record that touches it: a new document, a stored
//! record inserted later, or the retraction of one of its own records (the unit then enters
//! without that record, which never reaches the arrangements). Loading it whole
//! keeps every bucket it has complete, so the bucket cap (`all_pairs_up_to`) and the
//! lowest-key star see the same members as in a full build. Exact copies have the same text,
//! so the same signature and band keys: linking every record by its bands (not only the exact
//! representatives, as `clusters` does) makes units coarser, never wrong.
//!
//! This holds only when the stored memberships were computed with the current clustering
//! parameters; otherwise ([`PriorLoad::Eager`]) every stored record is loaded at once.
//!
//! The driver learns which stored records entered the dataflow at each epoch (the keys
//! output): their stored memberships are replaced by what the dataflow says, the others keep
//! theirs.

use super::clusters::{ClusterParams, DocKey, SigRecord};
use super::minhash::{band_keys, band_keys_into};
use crate::Epoch;
use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::time::Instant;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capability, OkErr};

/// How a run puts the stored records into the dataflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorLoad {
    /// Held in an index until a record touches their unit (the stored memberships are
    /// current).
    Lazy,
    /// All at once (the clustering parameters changed: every membership is computed again).
    Eager,
}

/// The keys a record meets others by: its text hash and, with near-duplicate detection and a
/// non-empty signature, its band keys.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Touch {
    pub exact: u128,
    pub bands: Vec<u64>,
}

impl Touch {
    pub fn of(record: &SigRecord, params: &ClusterParams) -> Touch {
        let bands = if params.near && !record.sig.is_empty() {
            band_keys(&record.sig, params.rows)
        } else {
            Vec::new()
        };
        Touch { exact: record.exact, bands }
    }
}

/// Stored records grouped into units (see the module docs), each handed out whole the first
/// time one of its keys is touched.
pub struct PriorIndex {
    /// The records not loaded yet, by slot.
    records: Vec<Option<SigRecord>>,
    unit_of: Vec<u32>,
    /// The slots of each unit; emptied when the unit is loaded.
    units: Vec<Vec<u32>>,
    /// A slot holding each key (any: all slots with a key are in one unit).
    by_exact: FxHashMap<u128, u32>,
    by_band: FxHashMap<u64, u32>,
    held: usize,
}

impl PriorIndex {
    pub fn new(records: Vec<SigRecord>, params: &ClusterParams) -> PriorIndex {
        let n = records.len();
        let mut parent: Vec<u32> = (0..n as u32).collect();
        fn root(parent: &mut [u32], mut x: u32) -> u32 {
            while parent[x as usize] != x {
                // Path halving keeps the trees shallow without recursion.
                parent[x as usize] = parent[parent[x as usize] as usize];
                x = parent[x as usize];
            }
            x
        }
        let union = |parent: &mut Vec<u32>, a: u32, b: u32| {
            let (ra, rb) = (root(parent, a), root(parent, b));
            if ra != rb {
                parent[ra.max(rb) as usize] = ra.min(rb);
            }
        };
        let mut by_exact: FxHashMap<u128, u32> = FxHashMap::default();
        let mut by_band: FxHashMap<u64, u32> = FxHashMap::default();
        by_exact.reserve(n);
        // Growing the band map as it fills would rehash it a dozen times.
        let bands = records
            .iter()
            .find(|r| !r.sig.is_empty())
            .map_or(0, |r| r.sig.len().div_ceil(params.rows.max(1)));
        by_band.reserve(if params.near { n * bands } else { 0 });
        let mut keys = Vec::new();
        for (slot, record) in records.iter().enumerate() {
            let slot = slot as u32;
            match by_exact.get(&record.exact) {
                Some(&other) => union(&mut parent, slot, other),
                None => {
                    by_exact.insert(record.exact, slot);
                }
            }
            if !params.near || record.sig.is_empty() {
                continue;
            }
            band_keys_into(&record.sig, params.rows, &mut keys);
            for &band in &keys {
                match by_band.get(&band) {
                    Some(&other) => union(&mut parent, slot, other),
                    None => {
                        by_band.insert(band, slot);
                    }
                }
            }
        }
        // A root is its component's lowest slot, so units come out in slot order.
        let mut unit_of = vec![u32::MAX; n];
        let mut units: Vec<Vec<u32>> = Vec::new();
        for slot in 0..n as u32 {
            let r = root(&mut parent, slot);
            if unit_of[r as usize] == u32::MAX {
                unit_of[r as usize] = units.len() as u32;
                units.push(Vec::new());
            }
            let unit = unit_of[r as usize];
            units[unit as usize].push(slot);
            unit_of[slot as usize] = unit;
        }
        let records = records.into_iter().map(Some).collect();
        PriorIndex { records, unit_of, units, by_exact, by_band, held: n }
    }

    /// Records not loaded yet.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Units, loaded or not.
    pub fn units(&self) -> usize {
        self.units.len()
    }

    /// Records in the largest unit not loaded yet.
    pub fn largest_unit(&self) -> usize {
        self.units.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Moves the units sharing a key with `touch` into `out` (each unit once).
    pub fn touch(&mut self, touch: &Touch, out: &mut Vec<SigRecord>) {
        if self.held == 0 {
            return;
        }
        if let Some(&slot) = self.by_exact.get(&touch.exact) {
            self.load(self.unit_of[slot as usize], out);
        }
        for band in &touch.bands {
            if let Some(&slot) = self.by_band.get(band) {
                self.load(self.unit_of[slot as usize], out);
            }
        }
    }

    /// Withdraws a stored record: when it is held, its unit is moved into `out` without it
    /// and true is returned (the record never enters the dataflow, so its `-1` must not
    /// either); false when it is not held (its unit is loaded, or it was never stored).
    pub fn retract(&mut self, record: &SigRecord, out: &mut Vec<SigRecord>) -> bool {
        let Some(&slot) = self.by_exact.get(&record.exact) else { return false };
        let unit = self.unit_of[slot as usize];
        let slots = &self.units[unit as usize];
        let Some(at) = slots.iter().position(|&s| self.records[s as usize].as_ref() == Some(record)) else {
            return false;
        };
        let slot = slots[at];
        self.records[slot as usize] = None;
        self.held -= 1;
        self.load(unit, out);
        true
    }

    /// Moves every record not loaded yet into `out`.
    pub fn load_all(&mut self, out: &mut Vec<SigRecord>) {
        for unit in 0..self.units.len() as u32 {
            self.load(unit, out);
        }
    }

    fn load(&mut self, unit: u32, out: &mut Vec<SigRecord>) {
        for slot in std::mem::take(&mut self.units[unit as usize]) {
            if let Some(record) = self.records[slot as usize].take() {
                out.push(record);
                self.held -= 1;
            }
        }
    }
}

/// What [`PriorLoader::epoch`] hands the dataflow for one epoch.
#[derive(Default)]
pub struct EpochLoad {
    /// Changes for `clusters`' input: loaded records (`+1`) and stored changes passed on.
    pub records: Vec<(SigRecord, isize)>,
    /// Keys of the stored records that entered (or were withdrawn before they did).
    pub keys: Vec<DocKey>,
}

/// The operator's logic, one complete epoch at a time: the first epoch's insertions build the
/// index; later insertions go in directly, touching what they meet, as do retractions of
/// records not held.
pub struct PriorLoader {
    params: ClusterParams,
    load: PriorLoad,
    index: Option<PriorIndex>,
}

impl PriorLoader {
    pub fn new(params: &ClusterParams, load: PriorLoad) -> PriorLoader {
        PriorLoader { params: params.clone(), load, index: None }
    }

    /// `changes`: the epoch's stored-record changes; `touches`: its new records' keys.
    pub fn epoch(&mut self, changes: Vec<(SigRecord, isize)>, touches: &[Touch]) -> EpochLoad {
        let mut out = EpochLoad::default();
        let mut loaded = Vec::new();
        let mut passed = Vec::new();
        let index = match &mut self.index {
            Some(index) => {
                passed = changes;
                index
            }
            None => {
                let started = Instant::now();
                let mut stored = Vec::new();
                for (record, diff) in changes {
                    if diff > 0 {
                        stored.extend(std::iter::repeat_n(record, diff as usize));
                    } else {
                        passed.push((record, diff));
                    }
                }
                let index = self.index.insert(PriorIndex::new(stored, &self.params));
                if self.load == PriorLoad::Eager {
                    index.load_all(&mut loaded);
                }
                tracing::info!(
                    records = index.held(),
                    units = index.units(),
                    secs = started.elapsed().as_secs_f64(),
                    "dedup: stored records indexed"
                );
                index
            }
        };
        let mut direct = Vec::new();
        for (record, mut diff) in passed {
            while diff < 0 && index.retract(&record, &mut loaded) {
                // Withdrawn before it entered: its stored membership goes too.
                out.keys.push(record.key.clone());
                diff += 1;
            }
            if diff != 0 {
                index.touch(&Touch::of(&record, &self.params), &mut loaded);
                direct.push((record, diff));
            }
        }
        for touch in touches {
            index.touch(touch, &mut loaded);
        }
        for record in loaded {
            out.keys.push(record.key.clone());
            out.records.push((record, 1));
        }
        out.records.extend(direct);
        out
    }
}

/// The stored records of one epoch and the touches of this run's records, waiting for the
/// epoch to be complete.
struct Waiting {
    cap: Capability<Epoch>,
    changes: Vec<(SigRecord, isize)>,
    touches: Vec<Touch>,
}

/// The stored records `prior` (insertions and retractions) as [`clusters`](super::clusters)
/// needs them, given this run's `records`: returns the records to add to its input, and the
/// keys of the stored records that entered it (once each, at the epoch they entered).
///
/// The index lives on worker 0 (the driver feeds the stored records there); the other
/// workers send it their records' keys.
pub fn load_prior<'s>(
    prior: VecCollection<'s, Epoch, SigRecord>,
    records: VecCollection<'s, Epoch, SigRecord>,
    params: &ClusterParams,
    load: PriorLoad,
) -> (VecCollection<'s, Epoch, SigRecord>, VecCollection<'s, Epoch, DocKey>) {
    let key_params = params.clone();
    let touches = records.inner.map(move |(r, t, _)| (Touch::of(&r, &key_params), t));
    let mut loader = PriorLoader::new(params, load);
    let out = prior.inner.binary_frontier::<_, CapacityContainerBuilder<Vec<_>>, _, _, _, _>(
        touches,
        Exchange::new(|_: &(SigRecord, Epoch, isize)| 0),
        Exchange::new(|_: &(Touch, Epoch)| 0),
        "DedupPrior",
        move |_cap, _info| {
            let mut waiting: BTreeMap<Epoch, Waiting> = BTreeMap::new();
            move |(prior_in, prior_frontier), (touch_in, touch_frontier), output| {
                prior_in.for_each(|cap, data| {
                    for (record, time, diff) in data.drain(..) {
                        waiting_slot(&mut waiting, time, || cap.delayed(&time, 0))
                            .changes
                            .push((record, diff));
                    }
                });
                touch_in.for_each(|cap, data| {
                    for (touch, time) in data.drain(..) {
                        waiting_slot(&mut waiting, time, || cap.delayed(&time, 0)).touches.push(touch);
                    }
                });
                // Complete epochs, in time order.
                while let Some(entry) = waiting.first_entry() {
                    let t = *entry.key();
                    if prior_frontier.less_equal(&t) || touch_frontier.less_equal(&t) {
                        break;
                    }
                    let Waiting { cap, changes, touches } = entry.remove();
                    let EpochLoad { records, keys } = loader.epoch(changes, &touches);
                    let mut session = output.session(&cap);
                    for key in keys {
                        session.give(Err((key, t, 1)));
                    }
                    for (record, diff) in records {
                        session.give(Ok((record, t, diff)));
                    }
                }
            }
        },
    );
    let (records, keys) = out.ok_err::<Vec<_>, _, Vec<_>, _, _>(|item| item);
    (records.as_collection(), keys.as_collection())
}

/// The epoch's waiting entry, made with a capability for `time` on first use.
fn waiting_slot(
    waiting: &mut BTreeMap<Epoch, Waiting>,
    time: Epoch,
    cap: impl FnOnce() -> Capability<Epoch>,
) -> &mut Waiting {
    waiting.entry(time).or_insert_with(|| Waiting { cap: cap(), changes: Vec::new(), touches: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::super::clusters::tests::{dataflow_with, records, sequential};
    use super::super::clusters::Membership;
    use super::super::minhash::testing::corpus;
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn params() -> ClusterParams {
        ClusterParams { rows: 8, threshold: 0.8, all_pairs_up_to: 3, near: true }
    }

    #[test]
    fn units_are_the_components_of_shared_keys() {
        let docs = corpus(3, 80);
        let recs = records(&docs, |_| 1);
        let p = params();
        let index = PriorIndex::new(recs.clone(), &p);
        // Brute force: records i and j are linked when they share any key.
        let touches: Vec<Touch> = recs.iter().map(|r| Touch::of(r, &p)).collect();
        let shares = |a: &Touch, b: &Touch| a.exact == b.exact || a.bands.iter().any(|x| b.bands.contains(x));
        let n = recs.len();
        let mut comp: Vec<usize> = (0..n).collect();
        let mut changed = true;
        while changed {
            changed = false;
            for i in 0..n {
                for j in 0..n {
                    if comp[j] < comp[i] && shares(&touches[i], &touches[j]) {
                        comp[i] = comp[j];
                        changed = true;
                    }
                }
            }
        }
        for i in 0..n {
            for j in 0..n {
                assert_eq!(comp[i] == comp[j], index.unit_of[i] == index.unit_of[j], "records {i} and {j}");
            }
        }
        assert!(index.units() < n && index.units() > n / 3, "{} units of {n}", index.units());
    }

    #[test]
    fn a_touch_loads_each_unit_once_and_whole() {
        let docs = corpus(4, 60);
        let recs = records(&docs, |_| 1);
        let p = params();
        let mut index = PriorIndex::new(recs.clone(), &p);
        let mut out = Vec::new();
        let probe = Touch::of(&recs[0], &p);
        index.touch(&probe, &mut out);
        let unit = index.unit_of[0];
        let expected: BTreeSet<&DocKey> =
            (0..recs.len()).filter(|&i| index.unit_of[i] == unit).map(|i| &recs[i].key).collect();
        assert_eq!(out.iter().map(|r| &r.key).collect::<BTreeSet<_>>(), expected);
        let before = out.len();
        index.touch(&probe, &mut out);
        assert_eq!(out.len(), before, "a loaded unit is not handed out again");
        assert_eq!(index.held(), recs.len() - before);
        index.load_all(&mut out);
        assert_eq!(out.len(), recs.len());
        assert_eq!(index.held(), 0);
    }

    #[test]
    fn a_retraction_loads_the_unit_without_the_record() {
        let docs = corpus(4, 60);
        let recs = records(&docs, |_| 1);
        let p = params();
        let mut index = PriorIndex::new(recs.clone(), &p);
        // A record with unit mates.
        let i = (0..recs.len())
            .find(|&i| (0..recs.len()).any(|j| j != i && index.unit_of[j] == index.unit_of[i]))
            .unwrap();
        let mates: BTreeSet<&DocKey> = (0..recs.len())
            .filter(|&j| j != i && index.unit_of[j] == index.unit_of[i])
            .map(|j| &recs[j].key)
            .collect();
        let mut out = Vec::new();
        assert!(index.retract(&recs[i], &mut out));
        assert_eq!(out.iter().map(|r| &r.key).collect::<BTreeSet<_>>(), mates);
        // Now loaded: its -1 goes to the dataflow like any.
        assert!(!index.retract(&recs[i], &mut out));
        let mut other = recs[(i + 1) % recs.len()].clone();
        other.key.id.push('x');
        assert!(!index.retract(&other, &mut out), "never stored");
    }

    /// One epoch of a script: (stored-record changes, new records).
    type ScriptEpoch = (Vec<(SigRecord, isize)>, Vec<SigRecord>);

    /// The driver's view: the stored memberships, where a loaded record's is replaced by the
    /// dataflow's (clusters of one are absent from both).
    fn view(
        stored: &BTreeMap<DocKey, Membership>,
        loaded: &BTreeSet<DocKey>,
        dataflow: &BTreeMap<DocKey, Membership>,
    ) -> BTreeMap<DocKey, Membership> {
        let mut out: BTreeMap<DocKey, Membership> = stored
            .iter()
            .filter(|(k, m)| m.size > 1 && !loaded.contains(*k))
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        out.extend(dataflow.iter().filter(|(_, m)| m.size > 1).map(|(k, m)| (k.clone(), m.clone())));
        out
    }

    #[test]
    fn lazy_loading_equals_loading_everything() {
        // Stored: epochs 1-2 of a corpus; this run: epoch 3's new documents, then the
        // retraction of a stored shard, then more new documents. A small bucket cap makes
        // buckets cross it as documents arrive.
        let docs = corpus(9, 160);
        let recs = records(&docs, |i| 1 + (i as Epoch * 7919) % 4);
        let p = params();
        let stored: Vec<SigRecord> = recs.iter().filter(|r| r.key.epoch <= 2).cloned().collect();
        let fresh = |e: Epoch| recs.iter().filter(move |r| r.key.epoch == e).cloned();
        let gone: Vec<SigRecord> = stored.iter().filter(|r| r.shard == "s3").cloned().collect();
        assert!(!gone.is_empty());
        let script: Vec<ScriptEpoch> = vec![
            (stored.iter().map(|r| (r.clone(), 1)).collect(), fresh(3).collect()),
            (gone.iter().map(|r| (r.clone(), -1)).collect(), Vec::new()),
            (Vec::new(), fresh(4).collect()),
        ];
        let before = sequential(&stored, &p);
        for workers in [1, 2] {
            for load in [PriorLoad::Lazy, PriorLoad::Eager] {
                let (states, loaded) = dataflow_with(workers, script.clone(), &p, load);
                let mut present = stored.clone();
                let mut loaded_so_far = BTreeSet::new();
                for (t, (changes, new)) in script.iter().enumerate() {
                    for (r, d) in changes {
                        if *d < 0 {
                            present.retain(|x| x != r);
                        }
                    }
                    present.extend(new.iter().cloned());
                    loaded_so_far.extend(loaded[t].iter().cloned());
                    let want = sequential(&present, &p);
                    let want: BTreeMap<DocKey, Membership> =
                        want.into_iter().filter(|(_, m)| m.size > 1).collect();
                    let got = view(&before, &loaded_so_far, &states[t]);
                    assert_eq!(got, want, "epoch {t}, {workers} workers, {load:?}");
                }
                let all = stored.len();
                match load {
                    PriorLoad::Eager => assert_eq!(loaded_so_far.len(), all),
                    PriorLoad::Lazy => {
                        eprintln!("lazy: {} of {all} stored records loaded", loaded_so_far.len());
                        assert!(loaded_so_far.len() < all / 2, "{} of {all} loaded", loaded_so_far.len());
                    }
                }
            }
        }
    }
}
