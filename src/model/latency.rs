//! Inference latency per model version: a fixed-bucket histogram in seconds
//! for each version loaded in this process, kept after the version is
//! swapped out (so a rollback's before and after can be compared).
//! Recording is lock-free (atomics); the registry's lock is taken only when a
//! version is loaded and when the metrics are rendered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds.
pub const INFERENCE_BUCKETS_S: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// The part a version plays for a request (docs/MODELS.md, "Versions side
/// by side").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The active version: every user outside the canary's share.
    Stable = 0,
    /// The canary: the users in its share.
    Canary = 1,
    /// Scored beside every ranked answer, never served.
    Shadow = 2,
}

impl Role {
    /// Every role, in counter order.
    pub const ALL: [Role; 3] = [Role::Stable, Role::Canary, Role::Shadow];

    /// Its label value in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Stable => "stable",
            Role::Canary => "canary",
            Role::Shadow => "shadow",
        }
    }
}

/// What became of one request for a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Scored (for a shadow: scored and discarded).
    Ranked = 0,
    /// The inference failed or gave unusable scores.
    Failed = 1,
    /// No session was free within the latency budget.
    Busy = 2,
    /// Skipped: its circuit breaker was open.
    Skipped = 3,
}

impl Answer {
    /// Every outcome, in counter order.
    pub const ALL: [Answer; 4] = [Answer::Ranked, Answer::Failed, Answer::Busy, Answer::Skipped];

    /// Its label value in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Answer::Ranked => "ranked",
            Answer::Failed => "failed",
            Answer::Busy => "busy",
            Answer::Skipped => "skipped",
        }
    }
}

/// One version's histogram, and its answers per role and outcome.
#[derive(Default)]
pub(crate) struct InferenceLatency {
    /// Per bucket (not cumulative); the last slot counts those above every bound.
    buckets: [AtomicU64; INFERENCE_BUCKETS_S.len() + 1],
    count: AtomicU64,
    sum_ns: AtomicU64,
    /// `[role][outcome]`.
    answers: [[AtomicU64; 4]; 3],
}

impl InferenceLatency {
    pub(crate) fn count_answer(&self, role: Role, answer: Answer) {
        self.answers[role as usize][answer as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let at = INFERENCE_BUCKETS_S.iter().position(|&upper| seconds <= upper).unwrap_or(INFERENCE_BUCKETS_S.len());
        self.buckets[at].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> LatencySnapshot {
        let mut cumulative = 0;
        let buckets = INFERENCE_BUCKETS_S
            .iter()
            .zip(&self.buckets)
            .map(|(&upper, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (upper, cumulative)
            })
            .collect();
        let count = cumulative + self.buckets[INFERENCE_BUCKETS_S.len()].load(Ordering::Relaxed);
        let answers = Role::ALL
            .iter()
            .flat_map(|&role| Answer::ALL.iter().map(move |&answer| (role, answer)))
            .map(|(role, answer)| (role, answer, self.answers[role as usize][answer as usize].load(Ordering::Relaxed)))
            .collect();
        LatencySnapshot { buckets, count, sum_s: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9, answers }
    }
}

/// A version's histogram at one moment, for rendering.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencySnapshot {
    /// `(upper bound in seconds, observations at or below it)`, cumulative.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_s: f64,
    /// Requests per role and outcome (every pair, zeros included).
    pub answers: Vec<(Role, Answer, u64)>,
}

fn registry() -> &'static Mutex<BTreeMap<u32, Arc<InferenceLatency>>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<u32, Arc<InferenceLatency>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// The histogram of `version` (created on first use; a version loaded again
/// keeps counting into the same one).
pub(crate) fn for_version(version: u32) -> Arc<InferenceLatency> {
    let mut registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(registry.entry(version).or_default())
}

/// Every version's histogram, by version.
pub fn snapshot() -> Vec<(u32, LatencySnapshot)> {
    let registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
    registry.iter().map(|(&version, latency)| (version, latency.snapshot())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them_and_add_up() {
        let latency = InferenceLatency::default();
        latency.observe(Duration::from_micros(300)); // ≤ 0.0005
        latency.observe(Duration::from_millis(3)); // ≤ 0.005
        latency.observe(Duration::from_secs(9)); // above every bound
        let snapshot = latency.snapshot();
        let at = |upper: f64| snapshot.buckets.iter().find(|(bound, _)| *bound == upper).map(|(_, n)| *n);
        assert_eq!(at(0.00025), Some(0));
        assert_eq!(at(0.0005), Some(1));
        assert_eq!(at(0.0025), Some(1));
        assert_eq!(at(0.005), Some(2));
        assert_eq!(at(2.5), Some(2));
        assert_eq!(snapshot.count, 3);
        assert!((snapshot.sum_s - 9.0033).abs() < 1e-9, "{}", snapshot.sum_s);
    }
}
