//! A full disk as an operating condition: what could not be written for lack
//! of space (a log segment, a snapshot), since when, and how much room a
//! retry needs. The engine sets a condition when a write is refused with
//! ENOSPC/EDQUOT, and clears it by itself once space is back (probed by the
//! checkpoint thread, so readiness recovers even while no write arrives) or
//! once the same kind of write succeeds. Automatic checkpoints that fail are
//! retried with a capped exponential backoff.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use tracing::{info, warn};

/// What could not be written for lack of space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The log could not start a new segment.
    Log,
    /// A snapshot could not be written.
    Snapshot,
}

impl Cause {
    fn name(self) -> &'static str {
        match self {
            Cause::Log => "log",
            Cause::Snapshot => "snapshot",
        }
    }
}

/// The disk is full (or a quota is reached): a write was refused for lack
/// of space. Nothing acknowledged is at risk; writes of that kind are
/// refused with `EngineError::DiskFull` until space is freed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskFull {
    /// What could not be written: `"log"` (a new segment) or `"snapshot"`.
    pub what: &'static str,
    /// The file that could not be written.
    pub path: PathBuf,
    /// The error, in words.
    pub detail: String,
    /// When the condition began.
    pub since: SystemTime,
    /// Free bytes a retry needs (a segment, or the snapshot's size).
    pub needed_bytes: u64,
}

impl DiskFull {
    /// Whether ingest and every other logged write are refused: the log
    /// cannot start a segment. A snapshot that does not fit refuses only
    /// checkpoints; the log goes on taking records in the space it has.
    pub fn refuses_writes(&self) -> bool {
        self.what == Cause::Log.name()
    }
}

struct Active {
    condition: DiskFull,
    /// For `Log`: segments started (created or recycled) when the write was
    /// refused; one more means the log found room.
    started_at_refusal: u64,
}

/// The engine's disk-full conditions, one per cause.
pub(crate) struct DiskWatch {
    any: AtomicBool,
    active: Mutex<[Option<Active>; 2]>,
}

fn slot(cause: Cause) -> usize {
    match cause {
        Cause::Log => 0,
        Cause::Snapshot => 1,
    }
}

impl DiskWatch {
    pub(crate) fn new() -> DiskWatch {
        DiskWatch { any: AtomicBool::new(false), active: Mutex::new([None, None]) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [Option<Active>; 2]> {
        // Only plain data behind it: a panic elsewhere leaves it consistent.
        self.active.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records (or refreshes) the condition for `cause`; logs once when it begins.
    pub(crate) fn set(&self, cause: Cause, path: PathBuf, detail: String, needed_bytes: u64, started: u64) {
        let mut active = self.lock();
        match &mut active[slot(cause)] {
            Some(held) => {
                held.condition.needed_bytes = held.condition.needed_bytes.max(needed_bytes);
                held.condition.path = path;
                held.condition.detail = detail;
                held.started_at_refusal = started;
            }
            empty => {
                match cause {
                    Cause::Log => warn!(what = cause.name(), path = %path.display(), %detail, needed_bytes,
                        "disk full: refusing writes until space is freed (not ready)"),
                    Cause::Snapshot => warn!(what = cause.name(), path = %path.display(), %detail, needed_bytes,
                        "disk full: checkpoints fail until space is freed; writes go on in the log's space"),
                }
                let condition = DiskFull { what: cause.name(), path, detail, since: SystemTime::now(), needed_bytes };
                *empty = Some(Active { condition, started_at_refusal: started });
            }
        }
        self.any.store(true, Ordering::Release);
    }

    /// Clears the condition for `cause`, if any; logs when it ends.
    pub(crate) fn clear(&self, cause: Cause, why: &str) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let mut active = self.lock();
        let Some(held) = active[slot(cause)].take() else { return false };
        let lasted = held.condition.since.elapsed().unwrap_or_default();
        info!(what = cause.name(), why, lasted_ms = lasted.as_millis() as u64, "disk full: space is back (ready)");
        self.any.store(active.iter().any(Option::is_some), Ordering::Release);
        true
    }

    /// The condition in force, the log's first.
    pub(crate) fn current(&self) -> Option<DiskFull> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.lock().iter().flatten().next().map(|held| held.condition.clone())
    }

    /// For a probe: the room the condition for `cause` waits for, and the
    /// segments-started count at the refusal.
    pub(crate) fn waiting(&self, cause: Cause) -> Option<(u64, u64, PathBuf)> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.lock()[slot(cause)]
            .as_ref()
            .map(|held| (held.condition.needed_bytes, held.started_at_refusal, held.condition.path.clone()))
    }
}

/// Capped exponential backoff of the automatic checkpoint after failures.
pub(crate) struct Backoff {
    failures: u32,
    next_try: Option<Instant>,
    /// Automatic checkpoints that failed, ever.
    pub(crate) failed_total: AtomicU64,
}

/// First retry after this; doubled after each failure.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// Never longer between retries than this.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { failures: 0, next_try: None, failed_total: AtomicU64::new(0) }
    }

    /// Whether an automatic checkpoint may be tried now.
    pub(crate) fn ready(&self, now: Instant) -> bool {
        self.next_try.is_none_or(|at| now >= at)
    }

    /// A failure: schedules the next try; logs on the first of a run only.
    pub(crate) fn failed(&mut self, err: &dyn std::fmt::Display) {
        self.failures = self.failures.saturating_add(1);
        self.failed_total.fetch_add(1, Ordering::Relaxed);
        let delay = BACKOFF_FIRST.saturating_mul(1u32 << (self.failures - 1).min(16)).min(BACKOFF_MAX);
        self.next_try = Some(Instant::now() + delay);
        if self.failures == 1 {
            warn!(%err, retry_in_ms = delay.as_millis() as u64, max_retry_ms = BACKOFF_MAX.as_millis() as u64,
                "automatic checkpoint failed; retrying with exponential backoff (logged again when it succeeds)");
        } else {
            tracing::debug!(%err, failures = self.failures, retry_in_ms = delay.as_millis() as u64,
                "automatic checkpoint failed again");
        }
    }

    /// A success (automatic or not): back to the normal schedule.
    pub(crate) fn succeeded(&mut self) {
        if self.failures > 0 {
            info!(failures = self.failures, "checkpoints succeed again after failures");
        }
        self.failures = 0;
        self.next_try = None;
    }

    /// Retry at the next opportunity (space came back).
    pub(crate) fn retry_now(&mut self) {
        self.next_try = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_a_minute() {
        let mut backoff = Backoff::new();
        let mut delays = Vec::new();
        for _ in 0..10 {
            let before = Instant::now();
            backoff.failed(&"no space");
            let at = backoff.next_try.expect("scheduled");
            delays.push((at - before).as_secs_f64().round() as u64);
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert!(!backoff.ready(Instant::now()));
        backoff.succeeded();
        assert!(backoff.ready(Instant::now()));
        assert_eq!(backoff.failed_total.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn a_condition_is_reported_until_cleared_for_its_own_cause() {
        let watch = DiskWatch::new();
        assert!(watch.current().is_none());
        watch.set(Cause::Snapshot, "snapshots/x".into(), "ENOSPC".into(), 100, 0);
        assert_eq!(watch.current().map(|held| held.what), Some("snapshot"));
        assert!(!watch.clear(Cause::Log, "a segment started"));
        assert!(watch.current().is_some());
        assert!(watch.clear(Cause::Snapshot, "written"));
        assert!(watch.current().is_none());
    }
}
