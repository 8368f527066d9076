//! A circuit breaker for a model server: after `failures` attempts in a row fail for a
//! transient reason (the server is down, not the request bad), requests stop going out. One
//! probe at a time tries the server, at growing intervals; the rest wait. The first answer
//! closes the breaker and the waiting requests go on, so a brief outage costs time, not
//! documents. An outage longer than `max_outage` makes waiting requests fail at once (the
//! run ends with them as documents awaiting the model, retried by the next run) while probes
//! go on, so a server that comes back is noticed.
//!
//! Plain logic with the clock passed in, so the tests drive time; the OpenAI client holds one
//! per generator behind a mutex.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failed attempts that open the breaker (0: never open).
    pub failures: u32,
    /// How long requests wait for an open breaker before failing at once.
    pub max_outage: Duration,
    /// The first interval between probes; doubles up to `max_probe_interval`.
    pub probe_interval: Duration,
    pub max_probe_interval: Duration,
}

/// What a request should do now.
#[derive(Clone, Debug, PartialEq)]
pub enum Admit {
    /// The breaker is closed: send.
    Send,
    /// Send as the probe: its outcome decides whether the breaker closes.
    Probe,
    /// Wait this long, then ask again.
    Wait(Duration),
    /// The outage outlasted `max_outage`: fail without sending, with this message.
    FailFast(String),
}

#[derive(Clone, Debug)]
struct Open {
    since: Instant,
    next_probe: Instant,
    interval: Duration,
    probing: bool,
}

#[derive(Clone, Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    consecutive: u32,
    open: Option<Open>,
    last_error: String,
}

/// How often a waiting request looks again (a closed breaker lets it go within this).
const POLL: Duration = Duration::from_millis(100);

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Breaker {
        Breaker { cfg, consecutive: 0, open: None, last_error: String::new() }
    }

    pub fn admit(&mut self, now: Instant) -> Admit {
        let Some(open) = self.open.as_mut() else { return Admit::Send };
        if !open.probing && now >= open.next_probe {
            open.probing = true;
            return Admit::Probe;
        }
        if now.duration_since(open.since) >= self.cfg.max_outage {
            return Admit::FailFast(format!(
                "server down for {} s (breaker open; last error: {})",
                now.duration_since(open.since).as_secs(),
                self.last_error
            ));
        }
        Admit::Wait(POLL.min(open.next_probe.saturating_duration_since(now)).max(Duration::from_millis(10)))
    }

    /// Whether the breaker is open and a probe may go now (what [`Breaker::admit`] would
    /// answer `Probe` to, without taking the probe).
    pub fn probe_due(&self, now: Instant) -> bool {
        self.open.as_ref().is_some_and(|o| !o.probing && now >= o.next_probe)
    }

    /// The server answered (any answer the request itself may be blamed for counts).
    pub fn success(&mut self) {
        self.consecutive = 0;
        self.open = None;
    }

    /// An attempt (a probe or not) failed for a transient reason.
    pub fn failure(&mut self, now: Instant, probe: bool, error: &str) {
        self.last_error = error.to_string();
        self.consecutive = self.consecutive.saturating_add(1);
        match self.open.as_mut() {
            Some(open) if probe => {
                open.probing = false;
                open.interval = (open.interval * 2).min(self.cfg.max_probe_interval);
                open.next_probe = now + open.interval;
            }
            Some(_) => {}
            None if self.cfg.failures > 0 && self.consecutive >= self.cfg.failures => {
                let interval = self.cfg.probe_interval;
                self.open = Some(Open { since: now, next_probe: now + interval, interval, probing: false });
            }
            None => {}
        }
    }

    /// A probe that ended without an outcome (its caller gave up): let another probe go.
    pub fn probe_abandoned(&mut self) {
        if let Some(open) = self.open.as_mut() {
            open.probing = false;
        }
    }

    /// Since when the server has been down, when the breaker is open.
    pub fn down_since(&self) -> Option<Instant> {
        self.open.as_ref().map(|o| o.since)
    }

    pub fn last_error(&self) -> &str {
        &self.last_error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failures: 3,
            max_outage: Duration::from_secs(60),
            probe_interval: Duration::from_secs(1),
            max_probe_interval: Duration::from_secs(4),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let t = Instant::now();
        let mut b = Breaker::new(cfg());
        b.failure(t, false, "e");
        b.failure(t, false, "e");
        b.success();
        b.failure(t, false, "e");
        b.failure(t, false, "e");
        assert_eq!(b.admit(t), Admit::Send, "2 in a row since the success: still closed");
        b.failure(t, false, "HTTP 503");
        assert_eq!(b.down_since(), Some(t));
        assert!(matches!(b.admit(t), Admit::Wait(_)), "open: requests wait");
    }

    #[test]
    fn one_probe_at_a_time_at_doubling_intervals_then_closed_by_an_answer() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let mut b = Breaker::new(cfg());
        for _ in 0..3 {
            b.failure(t, false, "e");
        }
        assert!(matches!(b.admit(t + Duration::from_millis(500)), Admit::Wait(_)));
        assert_eq!(b.admit(t + s(1)), Admit::Probe);
        assert!(matches!(b.admit(t + s(1)), Admit::Wait(_)), "a second caller waits for the probe");
        b.failure(t + s(2), true, "e");
        // Next probe 2 s later, then 4 s (the cap), then 4 s again.
        assert!(matches!(b.admit(t + s(3)), Admit::Wait(_)));
        assert_eq!(b.admit(t + s(4)), Admit::Probe);
        b.failure(t + s(4), true, "e");
        assert!(matches!(b.admit(t + s(7)), Admit::Wait(_)));
        assert_eq!(b.admit(t + s(8)), Admit::Probe);
        b.failure(t + s(8), true, "e");
        assert_eq!(b.admit(t + s(12)), Admit::Probe);
        b.success();
        assert_eq!(b.admit(t + s(12)), Admit::Send);
        assert_eq!(b.down_since(), None);
    }

    #[test]
    fn a_long_outage_fails_waiters_at_once_but_keeps_probing() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let mut b = Breaker::new(BreakerConfig { max_outage: s(10), ..cfg() });
        for _ in 0..3 {
            b.failure(t, false, "HTTP 500 from http://m/v1");
        }
        assert_eq!(b.admit(t + s(1)), Admit::Probe);
        match b.admit(t + s(10)) {
            Admit::FailFast(m) => assert!(m.contains("down for 10 s") && m.contains("HTTP 500"), "{m}"),
            other => panic!("{other:?}"),
        }
        b.failure(t + s(11), true, "e");
        assert_eq!(b.admit(t + s(13)), Admit::Probe, "probes go on after the outage budget");
        b.success();
        assert_eq!(b.admit(t + s(13)), Admit::Send);
    }

    #[test]
    fn an_abandoned_probe_lets_another_go_and_zero_failures_never_opens() {
        let t = Instant::now();
        let mut b = Breaker::new(cfg());
        for _ in 0..3 {
            b.failure(t, false, "e");
        }
        assert_eq!(b.admit(t + Duration::from_secs(1)), Admit::Probe);
        b.probe_abandoned();
        assert_eq!(b.admit(t + Duration::from_secs(1)), Admit::Probe);

        let mut never = Breaker::new(BreakerConfig { failures: 0, ..cfg() });
        for _ in 0..100 {
            never.failure(t, false, "e");
        }
        assert_eq!(never.admit(t), Admit::Send);
    }
}
