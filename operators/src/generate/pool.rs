//! Routing over a pool of OpenAI-compatible servers that serve the same model
//! (`generator = ["http://a:8000/v1", "http://b:8000/v1"]`): which server a request goes to,
//! which servers are up, and when a server that failed is tried again.
//!
//! - **Least outstanding requests**: a request goes to the up server with the fewest requests
//!   out (sent, or waiting for one of that server's slots), so a slow server gets less.
//! - **A document stays on one server**: a request carrying an affinity key (its document) goes
//!   to the key's own server (rendezvous hashing) unless that server is loaded more than
//!   [`LOAD_SLACK`] times the pool's mean: consistent hashing with bounded loads (Mirrokni,
//!   Thorup, Zadimoghaddam 2018). A server with prefix caching (vLLM's automatic prefix
//!   caching, llama.cpp's prompt cache) then reuses the document's KV across its stages.
//! - **Health**: each server has its own circuit breaker ([`super::breaker`]); an open one
//!   takes the server out, and one request at a time, at growing intervals, goes to it as the
//!   probe that brings it back. Requests wait only when every server is down, and fail (their
//!   documents then await the model) once that outage outlasts `max_outage`.
//!
//! Plain logic with the clock passed in, so tests drive time and load; the OpenAI client
//! holds one behind a mutex and does the sending.

use super::breaker::{Admit, Breaker, BreakerConfig};
use std::time::{Duration, Instant};

/// How far above the pool's mean load a document's own server may be and still take its
/// requests: 1.25 keeps every server within a quarter of the mean while most of a document's
/// requests land on one server (the paper's bound: for ε = 0.25, a key moves when its server
/// is loaded more than 1.25 × the mean).
pub const LOAD_SLACK: f64 = 1.25;

/// Where a request should go now.
#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    /// Send to this server; `probe`: as the probe of a server that is down.
    Send { endpoint: usize, probe: bool },
    /// Every server is down and none is due for a probe: ask again after this long.
    Wait(Duration),
    /// Every server has been down longer than `max_outage`: fail without sending.
    FailFast(String),
}

/// How a sent request ended, for the server's breaker and counters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Done<'a> {
    /// The server answered (an answer that blames the request counts: the server is up).
    Answered,
    /// Failed for the server's reasons (refused, timed out, 5xx, not an answer).
    Failed(&'a str),
    /// The caller gave up before an outcome.
    Abandoned,
}

/// One server's state, for the progress line and the run's stats.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointState {
    pub url: String,
    /// Requests routed to it and not yet ended (sent or waiting for a slot).
    pub outstanding: usize,
    pub answered: u64,
    pub failed: u64,
    /// Since when it has been taken out, when it is.
    pub down_since: Option<Instant>,
    pub last_error: String,
}

struct Slot {
    url: String,
    breaker: Breaker,
    outstanding: usize,
    answered: u64,
    failed: u64,
}

pub struct Router {
    slots: Vec<Slot>,
    /// Requests in flight at most per server: a document's own server at its limit passes the
    /// request on.
    limit: usize,
    /// Where the scan of servers starts, turned each route: ties go round the pool.
    turn: usize,
}

impl Router {
    pub fn new(urls: Vec<String>, limit: usize, breaker: BreakerConfig) -> Router {
        let slots = urls
            .into_iter()
            .map(|url| Slot { url, breaker: Breaker::new(breaker), outstanding: 0, answered: 0, failed: 0 })
            .collect();
        Router { slots, limit: limit.max(1), turn: 0 }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn url(&self, endpoint: usize) -> &str {
        &self.slots[endpoint].url
    }

    /// Picks a server for a request (`affinity`: its document's key; `avoid`: a server it just
    /// failed on, used only when no other server is up or due for a probe) and counts the
    /// request as outstanding there until [`Router::done`].
    pub fn route(&mut self, now: Instant, affinity: Option<u64>, avoid: Option<usize>) -> Route {
        let n = self.slots.len();
        if n == 0 {
            return Route::FailFast("no model server configured".into());
        }
        let order: Vec<usize> = (0..n).map(|k| (self.turn + k) % n).collect();
        self.turn = (self.turn + 1) % n;
        let up = |s: &Slot| s.breaker.down_since().is_none();
        let avoid = avoid.filter(|&a| {
            order.iter().any(|&i| i != a && (up(&self.slots[i]) || self.slots[i].breaker.probe_due(now)))
        });
        let usable = |i: &usize| Some(*i) != avoid;

        // A server that is down and due for a probe takes this request as its probe: that is
        // how it comes back (a refused connection fails fast and the request goes elsewhere).
        if let Some(i) = order.iter().copied().filter(usable).find(|&i| self.slots[i].breaker.probe_due(now))
        {
            let admitted = self.slots[i].breaker.admit(now);
            debug_assert_eq!(admitted, Admit::Probe);
            self.slots[i].outstanding += 1;
            return Route::Send { endpoint: i, probe: true };
        }
        let healthy: Vec<usize> =
            order.iter().copied().filter(usable).filter(|&i| up(&self.slots[i])).collect();
        if !healthy.is_empty() {
            let i = self.choose(&healthy, affinity);
            self.slots[i].outstanding += 1;
            return Route::Send { endpoint: i, probe: false };
        }
        // Every server is down and none is due: wait for the next probe, or fail once the
        // outage outlasts its budget on every server.
        let mut wait: Option<Duration> = None;
        let mut failed = Vec::new();
        for slot in &mut self.slots {
            match slot.breaker.admit(now) {
                Admit::Wait(d) => wait = Some(wait.map_or(d, |w| w.min(d))),
                Admit::FailFast(m) => failed.push((slot.url.clone(), m)),
                // Not reached: due servers were taken above, and none is up.
                Admit::Send | Admit::Probe => wait = Some(Duration::from_millis(10)),
            }
        }
        match wait {
            Some(d) => Route::Wait(d),
            None if n == 1 => Route::FailFast(failed.remove(0).1),
            None => Route::FailFast(format!(
                "every server of the pool is down: {}",
                failed.iter().map(|(u, m)| format!("{u}: {m}")).collect::<Vec<_>>().join("; ")
            )),
        }
    }

    /// The server for a request among those up (in scan order): the document's own server
    /// while its load is within the bound, else the least loaded.
    fn choose(&self, healthy: &[usize], affinity: Option<u64>) -> usize {
        let load = |i: usize| self.slots[i].outstanding;
        // `min_by_key` keeps the first of equals: ties go to the scan's start, which turns.
        let least = healthy.iter().copied().min_by_key(|&i| load(i)).unwrap_or(healthy[0]);
        let Some(key) = affinity else { return least };
        let total: usize = healthy.iter().map(|&i| load(i)).sum();
        let bound = ((total + 1) as f64 * LOAD_SLACK / healthy.len() as f64).ceil() as usize;
        let mut ranked = healthy.to_vec();
        ranked.sort_by_key(|&i| std::cmp::Reverse(rendezvous(key, i)));
        ranked.into_iter().find(|&i| load(i) < bound && load(i) < self.limit).unwrap_or(least)
    }

    /// A request routed to `endpoint` ended (`probe` as [`Route::Send`] said).
    pub fn done(&mut self, endpoint: usize, probe: bool, now: Instant, how: Done) {
        let slot = &mut self.slots[endpoint];
        slot.outstanding = slot.outstanding.saturating_sub(1);
        match how {
            Done::Answered => {
                slot.answered += 1;
                slot.breaker.success();
            }
            Done::Failed(error) => {
                slot.failed += 1;
                slot.breaker.failure(now, probe, error);
            }
            Done::Abandoned if probe => slot.breaker.probe_abandoned(),
            Done::Abandoned => {}
        }
    }

    /// Since when every server has been down (the last one to go), when they all are.
    pub fn down_since(&self) -> Option<Instant> {
        self.slots
            .iter()
            .map(|s| s.breaker.down_since())
            .try_fold(None, |latest: Option<Instant>, since| {
                since.map(|s| Some(latest.map_or(s, |l| l.max(s))))
            })?
    }

    /// Servers up now.
    pub fn up(&self) -> usize {
        self.slots.iter().filter(|s| s.breaker.down_since().is_none()).count()
    }

    pub fn is_down(&self, endpoint: usize) -> bool {
        self.slots[endpoint].breaker.down_since().is_some()
    }

    /// The last transient error of any server (the one the progress line names).
    pub fn last_error(&self) -> &str {
        self.slots.iter().map(|s| s.breaker.last_error()).find(|e| !e.is_empty()).unwrap_or("")
    }

    pub fn states(&self) -> Vec<EndpointState> {
        self.slots
            .iter()
            .map(|s| EndpointState {
                url: s.url.clone(),
                outstanding: s.outstanding,
                answered: s.answered,
                failed: s.failed,
                down_since: s.breaker.down_since(),
                last_error: s.breaker.last_error().to_string(),
            })
            .collect()
    }
}

/// Rendezvous (highest random weight) score of server `i` for `key`: each key ranks the
/// servers its own way, and taking a server out moves only the keys it ranked first.
fn rendezvous(key: u64, i: usize) -> u64 {
    // splitmix64's finalizer: a full-avalanche mix of the key and the server's index.
    let mut z = key ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> BreakerConfig {
        BreakerConfig {
            failures: 2,
            max_outage: Duration::from_secs(60),
            probe_interval: Duration::from_secs(1),
            max_probe_interval: Duration::from_secs(4),
        }
    }

    fn router(n: usize, limit: usize) -> Router {
        Router::new((0..n).map(|i| format!("http://s{i}/v1")).collect(), limit, breaker())
    }

    fn send(r: &mut Router, now: Instant, affinity: Option<u64>) -> usize {
        match r.route(now, affinity, None) {
            Route::Send { endpoint, probe: false } => endpoint,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_affinity_requests_go_to_the_least_loaded_server() {
        let t = Instant::now();
        let mut r = router(3, 8);
        // 9 requests out at once: 3 each.
        let sent: Vec<usize> = (0..9).map(|_| send(&mut r, t, None)).collect();
        let loads: Vec<usize> = r.states().iter().map(|s| s.outstanding).collect();
        assert_eq!(loads, vec![3, 3, 3], "{sent:?}");
        // Server 1 is fast: its answers come back, so it gets the next requests.
        for _ in 0..3 {
            r.done(1, false, t, Done::Answered);
        }
        assert_eq!((0..3).map(|_| send(&mut r, t, None)).collect::<Vec<_>>(), vec![1, 1, 1]);
        assert_eq!(r.states()[1].answered, 3);
    }

    /// The oracle: a key's server is its rendezvous favourite among the servers whose load is
    /// under the bound, else the least loaded; checked over random loads and keys.
    #[test]
    fn a_document_keeps_its_server_while_that_server_is_within_the_load_bound() {
        let t = Instant::now();
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..500 {
            let n = 1 + (next() % 4) as usize;
            let mut r = router(n, 6);
            let loads: Vec<usize> = (0..n).map(|_| (next() % 7) as usize).collect();
            for (i, &l) in loads.iter().enumerate() {
                r.slots[i].outstanding = l;
            }
            let key = next();
            let total: usize = loads.iter().sum();
            let bound = ((total + 1) as f64 * LOAD_SLACK / n as f64).ceil() as usize;
            let mut ranked: Vec<usize> = (0..n).collect();
            ranked.sort_by_key(|&i| std::cmp::Reverse(rendezvous(key, i)));
            let least = *loads.iter().min().unwrap();
            let got = send(&mut r, t, Some(key));
            match ranked.iter().find(|&&i| loads[i] < bound && loads[i] < 6) {
                Some(&want) => assert_eq!(got, want, "{loads:?} key {key}"),
                None => assert_eq!(loads[got], least, "{loads:?}"),
            }
        }
        // Unloaded, every request of a document goes to the same server, and the keys of many
        // documents spread over the pool.
        let mut r = router(4, 8);
        let mut per_server = [0usize; 4];
        for key in 0..400u64 {
            let first = send(&mut r, t, Some(key));
            r.done(first, false, t, Done::Answered);
            let again = send(&mut r, t, Some(key));
            r.done(again, false, t, Done::Answered);
            assert_eq!(first, again);
            per_server[first] += 1;
        }
        assert!(per_server.iter().all(|&c| (60..=140).contains(&c)), "{per_server:?}");
    }

    #[test]
    fn a_failing_server_is_taken_out_probed_and_brought_back() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let mut r = router(2, 8);
        // Server 0 fails twice in a row: out.
        for _ in 0..2 {
            assert!(matches!(r.route(t, Some(7), Some(1)), Route::Send { endpoint: 0, .. }));
            r.done(0, false, t, Done::Failed("connection refused"));
        }
        assert!(r.is_down(0) && !r.is_down(1) && r.up() == 1);
        assert_eq!(r.down_since(), None, "the pool is up while one server is");
        for _ in 0..5 {
            let i = send(&mut r, t + Duration::from_millis(500), None);
            assert_eq!(i, 1, "a server that is out gets nothing before its probe is due");
            r.done(i, false, t, Done::Answered);
        }
        // Due: one request probes it; the others still go to server 1.
        assert_eq!(r.route(t + s(1), None, None), Route::Send { endpoint: 0, probe: true });
        assert_eq!(send(&mut r, t + s(1), None), 1);
        r.done(0, true, t + s(1), Done::Failed("connection refused"));
        // The next probe is 2 s later; when it is answered the server is back.
        assert_eq!(send(&mut r, t + s(2), None), 1);
        assert_eq!(r.route(t + s(3), None, None), Route::Send { endpoint: 0, probe: true });
        r.done(0, true, t + s(3), Done::Answered);
        assert!(!r.is_down(0));
        assert_eq!(r.states()[0].failed, 3);
    }

    #[test]
    fn a_request_that_failed_on_a_server_goes_elsewhere_and_waits_only_when_all_are_down() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let mut r = router(2, 8);
        assert_eq!(r.route(t, None, Some(0)), Route::Send { endpoint: 1, probe: false });
        // Both out: requests wait for the first probe, then fail once the outage passes
        // max_outage on both.
        for i in [0, 1, 0, 1] {
            r.done(i, false, t, Done::Failed("HTTP 503"));
        }
        assert_eq!(r.up(), 0);
        assert_eq!(r.down_since(), Some(t));
        assert!(matches!(r.route(t + Duration::from_millis(100), None, None), Route::Wait(_)));
        // A request that failed on server 0 probes server 1; the next one probes server 0, the
        // only server left to try.
        assert_eq!(r.route(t + s(1), None, Some(0)), Route::Send { endpoint: 1, probe: true });
        assert_eq!(r.route(t + s(1), None, Some(0)), Route::Send { endpoint: 0, probe: true });
        assert!(matches!(r.route(t + s(1), None, None), Route::Wait(_)), "one probe per server at a time");
        r.done(0, true, t + s(1), Done::Abandoned);
        r.done(1, true, t + s(1), Done::Failed("HTTP 503"));
        assert_eq!(r.route(t + s(2), None, None), Route::Send { endpoint: 0, probe: true });
        r.done(0, true, t + s(2), Done::Failed("HTTP 503"));
        match r.route(t + s(61), None, None) {
            Route::Send { probe: true, endpoint } => {
                r.done(endpoint, true, t + s(61), Done::Failed("HTTP 503"))
            }
            other => panic!("{other:?}"),
        }
        match r.route(t + s(61), None, None) {
            Route::Send { probe: true, endpoint } => {
                r.done(endpoint, true, t + s(61), Done::Failed("HTTP 503"))
            }
            Route::FailFast(m) => panic!("a due probe goes first: {m}"),
            other => panic!("{other:?}"),
        }
        match r.route(t + s(61), None, None) {
            Route::FailFast(m) => {
                assert!(m.contains("every server") && m.contains("http://s0/v1") && m.contains("503"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_documents_server_at_its_limit_passes_the_request_on() {
        let t = Instant::now();
        let mut r = router(2, 2);
        let key = (0..).find(|&k| rendezvous(k, 0) > rendezvous(k, 1)).unwrap();
        // Server 1 carries 3 of another document's requests (over its limit of 2 in slots
        // waiting); server 0, the key's own, holds 2 = its limit.
        r.slots[0].outstanding = 2;
        r.slots[1].outstanding = 3;
        assert_eq!(send(&mut r, t, Some(key)), 0, "both over: the least loaded");
        r.slots[1].outstanding = 1;
        assert_eq!(send(&mut r, t, Some(key)), 1, "its own server is at its limit");
    }
}
