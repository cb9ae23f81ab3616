//! A per-model circuit breaker: `failures` inference errors (or answers
//! slower than the latency budget) within `window` open it; while open,
//! requests skip the model and are answered un-ranked (`degraded`); after
//! `open_for` one request is let through as a probe (half-open), and its
//! outcome closes or re-opens the breaker.
//!
//! Time comes from a `Clock`, so tests drive the window and the cool-down
//! with a `ManualClock` instead of sleeping. (Latency is measured by the
//! caller with the real monotonic clock: a slow model is slow in real time.)

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::config::{BreakerConfig, Clock};

/// The breaker's state, for status and metrics.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests use the model.
    Closed,
    /// Requests skip the model.
    Open,
    /// One probe request uses the model; the others skip it.
    HalfOpen,
}

impl BreakerState {
    /// The state's name in status output and metrics.
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Whether a request may run the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Closed: run it.
    Run,
    /// Half-open: run it as the probe; its outcome decides.
    Probe,
    /// Open (or a probe is already out): answer without the model.
    Skip,
}

/// How one inference went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Failed,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: VecDeque<Duration> },
    Open { until: Duration },
    HalfOpen { probe_out: bool },
}

/// Counters kept by a breaker.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerCounts {
    /// Times it opened.
    pub opened: u64,
    /// Inferences that failed or ran over budget.
    pub failures: u64,
    /// Requests answered without the model because it was open.
    pub skipped: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    clock: Clock,
    inner: Mutex<(Inner, BreakerCounts)>,
}

impl Breaker {
    pub fn new(config: BreakerConfig, clock: Clock) -> Breaker {
        Breaker {
            config,
            clock,
            inner: Mutex::new((Inner::Closed { failures: VecDeque::new() }, BreakerCounts::default())),
        }
    }

    pub fn latency_budget(&self) -> Duration {
        self.config.latency_budget
    }

    pub fn admit(&self) -> Admission {
        let now = self.clock.now();
        let Ok(mut guard) = self.inner.lock() else { return Admission::Skip };
        let (inner, counts) = &mut *guard;
        let admission = match inner {
            Inner::Closed { .. } => Admission::Run,
            Inner::Open { until } if now >= *until => {
                *inner = Inner::HalfOpen { probe_out: true };
                Admission::Probe
            }
            Inner::Open { .. } => Admission::Skip,
            Inner::HalfOpen { probe_out } if !*probe_out => {
                *probe_out = true;
                Admission::Probe
            }
            Inner::HalfOpen { .. } => Admission::Skip,
        };
        if admission == Admission::Skip {
            counts.skipped += 1;
        }
        admission
    }

    pub fn record(&self, admission: Admission, outcome: Outcome) {
        let now = self.clock.now();
        let Ok(mut guard) = self.inner.lock() else { return };
        let (inner, counts) = &mut *guard;
        if outcome == Outcome::Failed {
            counts.failures += 1;
        }
        match (admission, &mut *inner) {
            (Admission::Probe, Inner::HalfOpen { .. }) => {
                *inner = match outcome {
                    Outcome::Ok => Inner::Closed { failures: VecDeque::new() },
                    Outcome::Failed => {
                        counts.opened += 1;
                        Inner::Open { until: now + self.config.open_for }
                    }
                };
            }
            (Admission::Run, Inner::Closed { failures }) if outcome == Outcome::Failed => {
                failures.push_back(now);
                while failures.front().is_some_and(|&at| now.saturating_sub(at) > self.config.window) {
                    failures.pop_front();
                }
                if failures.len() >= self.config.failures as usize {
                    counts.opened += 1;
                    *inner = Inner::Open { until: now + self.config.open_for };
                }
            }
            // A request admitted before the state changed: its outcome
            // counts (above) but does not move the state.
            _ => {}
        }
    }

    /// A request admitted as the probe ended before it ran the model (an
    /// error of its own): the next request probes instead.
    pub fn abandon(&self, admission: Admission) {
        if admission != Admission::Probe {
            return;
        }
        if let Ok(mut guard) = self.inner.lock() {
            if let Inner::HalfOpen { probe_out } = &mut guard.0 {
                *probe_out = false;
            }
        }
    }

    pub fn state(&self) -> BreakerState {
        match self.inner.lock().as_deref() {
            Ok((Inner::Closed { .. }, _)) => BreakerState::Closed,
            Ok((Inner::Open { .. }, _)) | Err(_) => BreakerState::Open,
            Ok((Inner::HalfOpen { .. }, _)) => BreakerState::HalfOpen,
        }
    }

    pub fn counts(&self) -> BreakerCounts {
        self.inner.lock().map(|guard| guard.1).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::ManualClock;

    fn breaker() -> (Breaker, ManualClock) {
        let (clock, hand) = Clock::manual();
        let config = BreakerConfig {
            failures: 3,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
            latency_budget: Duration::from_millis(1),
        };
        (Breaker::new(config, clock), hand)
    }

    #[test]
    fn opens_after_k_failures_in_the_window_and_closes_after_a_good_probe() {
        let (breaker, hand) = breaker();
        for _ in 0..2 {
            assert_eq!(breaker.admit(), Admission::Run);
            breaker.record(Admission::Run, Outcome::Failed);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.record(Admission::Run, Outcome::Failed);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.admit(), Admission::Skip);
        hand.advance(Duration::from_millis(4999));
        assert_eq!(breaker.admit(), Admission::Skip);
        hand.advance(Duration::from_millis(1));
        assert_eq!(breaker.admit(), Admission::Probe);
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        // One probe at a time.
        assert_eq!(breaker.admit(), Admission::Skip);
        breaker.record(Admission::Probe, Outcome::Ok);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.admit(), Admission::Run);
        let counts = breaker.counts();
        assert_eq!((counts.opened, counts.failures, counts.skipped), (1, 3, 3));
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_request_probe() {
        let (breaker, hand) = breaker();
        for _ in 0..3 {
            breaker.record(Admission::Run, Outcome::Failed);
        }
        hand.advance(Duration::from_secs(5));
        assert_eq!(breaker.admit(), Admission::Probe);
        breaker.abandon(Admission::Probe);
        assert_eq!(breaker.admit(), Admission::Probe);
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let (breaker, hand) = breaker();
        for _ in 0..10 {
            breaker.record(Admission::Run, Outcome::Failed);
            breaker.record(Admission::Run, Outcome::Failed);
            hand.advance(Duration::from_secs(11));
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let (breaker, hand) = breaker();
        for _ in 0..3 {
            breaker.record(Admission::Run, Outcome::Failed);
        }
        hand.advance(Duration::from_secs(5));
        assert_eq!(breaker.admit(), Admission::Probe);
        breaker.record(Admission::Probe, Outcome::Failed);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.admit(), Admission::Skip);
        hand.advance(Duration::from_secs(5));
        assert_eq!(breaker.admit(), Admission::Probe);
        assert_eq!(breaker.counts().opened, 2);
    }

    #[test]
    fn late_outcomes_of_requests_admitted_earlier_do_not_move_the_state() {
        let (breaker, _hand) = breaker();
        for _ in 0..3 {
            breaker.record(Admission::Run, Outcome::Failed);
        }
        // A request admitted while closed finishes after the breaker opened.
        breaker.record(Admission::Run, Outcome::Ok);
        assert_eq!(breaker.state(), BreakerState::Open);
    }
}
