//! Per-operator counters (datatrove-style step stats): documents in and out, drops by reason
//! and time spent. Each worker keeps its own registry; the sink ships per-epoch deltas to the
//! leader, which merges them, so the numbers are right under many workers and processes.

use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpStats {
    pub docs_in: u64,
    pub docs_out: u64,
    /// Rejected records by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Free-form counters (bytes read, shards, files written, …).
    pub counters: BTreeMap<String, u64>,
    pub nanos: u64,
}

impl OpStats {
    pub fn drop(&mut self, reason: &str) {
        *self.dropped.entry(reason.to_string()).or_default() += 1;
    }

    pub fn count(&mut self, counter: &str, n: u64) {
        *self.counters.entry(counter.to_string()).or_default() += n;
    }

    pub fn add_time(&mut self, spent: Duration) {
        self.nanos += spent.as_nanos() as u64;
    }

    pub fn merge(&mut self, other: &OpStats) {
        self.docs_in += other.docs_in;
        self.docs_out += other.docs_out;
        self.nanos += other.nanos;
        for (k, v) in &other.dropped {
            *self.dropped.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.counters {
            *self.counters.entry(k.clone()).or_default() += v;
        }
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// A worker-local registry of operator stats keyed by operator name.
#[derive(Clone, Default)]
pub struct StatsRegistry {
    inner: Rc<RefCell<BTreeMap<String, OpStats>>>,
}

impl StatsRegistry {
    /// Runs `f` on the stats of operator `name`.
    pub fn with<R>(&self, name: &str, f: impl FnOnce(&mut OpStats) -> R) -> R {
        let mut map = self.inner.borrow_mut();
        f(map.entry(name.to_string()).or_default())
    }

    /// Takes everything counted since the last call.
    pub fn take(&self) -> BTreeMap<String, OpStats> {
        std::mem::take(&mut *self.inner.borrow_mut())
    }
}

/// Merges `delta` into `total`, operator by operator.
pub fn merge_all(total: &mut BTreeMap<String, OpStats>, delta: &BTreeMap<String, OpStats>) {
    for (name, stats) in delta {
        total.entry(name.clone()).or_default().merge(stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_returns_deltas_and_merge_adds_them() {
        let reg = StatsRegistry::default();
        reg.with("read", |s| {
            s.docs_in += 3;
            s.drop("invalid_json");
        });
        let first = reg.take();
        reg.with("read", |s| s.drop("invalid_json"));
        let second = reg.take();
        let mut total = BTreeMap::new();
        merge_all(&mut total, &first);
        merge_all(&mut total, &second);
        assert_eq!(total["read"].docs_in, 3);
        assert_eq!(total["read"].dropped["invalid_json"], 2);
        assert!(reg.take().is_empty());
    }
}
