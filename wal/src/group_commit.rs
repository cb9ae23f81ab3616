//! Group commit: one sync at a time covers every record written before it
//! began; the durable watermark only moves after a sync succeeds; a failed
//! sync poisons the log for good.
//!
//! Appenders under `Always` sync inline as leader/followers: whoever takes
//! `sync_lock` first syncs for everyone, and those queued behind it usually
//! find their LSN already durable when they get it. `Batch` appends are synced
//! by the flusher thread, woken through a crossbeam channel once per batch
//! (not once per record), at `max_delay` or when `max_bytes` are waiting.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::error::WalError;
use crate::wal::{lock_inner, Lsn, Shared};

pub(crate) enum FlushMsg {
    /// The first `Batch` append since the last sync: start the delay clock.
    BatchStarted,
    /// `max_bytes` are waiting: sync now.
    BatchFull,
    /// Someone waits on a record appended without automatic sync.
    SyncNow,
    Shutdown,
}

pub(crate) struct GroupCommit {
    lsn_durable: AtomicU64,
    sync_lock: Mutex<()>,
    waiters_lock: Mutex<()>,
    waiters_cv: Condvar,
    async_waiters: Mutex<Vec<(Lsn, Waker)>>,
    poison: OnceLock<Arc<str>>,
    closed: AtomicBool,
}

fn relock<T>(res: std::sync::LockResult<T>) -> T {
    // These mutexes guard no data (or a waker list that stays valid), so a
    // panic elsewhere while holding one leaves nothing inconsistent.
    res.unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl GroupCommit {
    pub(crate) fn new(lsn_durable: Lsn) -> Self {
        GroupCommit {
            lsn_durable: AtomicU64::new(lsn_durable),
            sync_lock: Mutex::new(()),
            waiters_lock: Mutex::new(()),
            waiters_cv: Condvar::new(),
            async_waiters: Mutex::new(Vec::new()),
            poison: OnceLock::new(),
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn lsn_durable(&self) -> Lsn {
        self.lsn_durable.load(Ordering::Acquire)
    }

    pub(crate) fn check_poisoned(&self) -> Result<(), WalError> {
        match self.poison.get() {
            Some(cause) => Err(WalError::Poisoned { cause: Arc::clone(cause) }),
            None => Ok(()),
        }
    }

    /// Returns once `lsn` is durable, syncing as leader if nobody else is.
    pub(crate) fn make_durable(&self, shared: &Shared, lsn: Lsn) -> Result<(), WalError> {
        loop {
            self.check_poisoned()?;
            if self.lsn_durable() >= lsn {
                return Ok(());
            }
            let _leader = relock(self.sync_lock.lock());
            self.check_poisoned()?;
            if self.lsn_durable() >= lsn {
                return Ok(());
            }
            self.sync_all_written(shared)?;
        }
    }

    /// One group commit: syncs every segment written since the last one began.
    fn sync_all_written(&self, shared: &Shared) -> Result<(), WalError> {
        let (target, dirty) = {
            let mut inner = lock_inner(shared);
            inner.batch_bytes = 0;
            let dirty = std::mem::take(&mut inner.dirty);
            for segment in &dirty {
                // Cleared before the sync: a write racing with it sets the flag
                // again and queues the segment for the next sync.
                segment.dirty.store(false, Ordering::Release);
            }
            (inner.next_lsn - 1, dirty)
        };
        let started = Instant::now();
        for segment in &dirty {
            if let Err(err) = segment.file.sync_data() {
                let cause: Arc<str> =
                    format!("sync of {} failed: {err}", shared.storage.describe(Some(segment.index)).display()).into();
                shared.metrics.counters.sync_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(cause = %cause, "wal sync failed; the log is poisoned");
                self.poison(cause);
                return self.check_poisoned();
            }
        }
        let previous = self.lsn_durable.fetch_max(target, Ordering::AcqRel);
        let metrics = &shared.metrics;
        metrics.counters.syncs.fetch_add(1, Ordering::Relaxed);
        metrics.sync_latency_us.record(started.elapsed().as_micros() as u64);
        metrics.group_records.record(target.saturating_sub(previous));
        self.wake(target);
        Ok(())
    }

    /// The log is going away: nobody will sync for waiters any more.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _guard = relock(self.waiters_lock.lock());
        self.waiters_cv.notify_all();
        drop(_guard);
        let mut wakers = relock(self.async_waiters.lock());
        for (_, waker) in wakers.drain(..) {
            waker.wake();
        }
    }

    pub(crate) fn poison(&self, cause: Arc<str>) {
        let _ = self.poison.set(cause);
        self.wake(Lsn::MAX);
    }

    fn wake(&self, durable: Lsn) {
        {
            let _guard = relock(self.waiters_lock.lock());
            self.waiters_cv.notify_all();
        }
        let mut wakers = relock(self.async_waiters.lock());
        let poisoned = self.poison.get().is_some();
        wakers.retain(|(lsn, waker)| {
            let done = poisoned || *lsn <= durable;
            if done {
                waker.wake_by_ref();
            }
            !done
        });
    }

    /// Blocks until `lsn` is durable (someone else syncs it).
    pub(crate) fn wait_durable(&self, lsn: Lsn) -> Result<(), WalError> {
        let mut guard = relock(self.waiters_lock.lock());
        loop {
            self.check_poisoned()?;
            if self.lsn_durable() >= lsn {
                return Ok(());
            }
            if self.closed.load(Ordering::Acquire) {
                return Err(WalError::Closed);
            }
            // The timeout only guards against a flusher that died; normal
            // wake-ups come from `wake`.
            guard = relock(self.waiters_cv.wait_timeout(guard, Duration::from_millis(100))).0;
        }
    }

    /// Async variant: Ready once `lsn` is durable or the log is poisoned.
    pub(crate) fn poll_durable(&self, lsn: Lsn, waker: &Waker) -> Option<Result<(), WalError>> {
        if let Err(err) = self.check_poisoned() {
            return Some(Err(err));
        }
        if self.lsn_durable() >= lsn {
            return Some(Ok(()));
        }
        let mut wakers = relock(self.async_waiters.lock());
        // Checked again under the lock: `wake` takes it after moving the watermark.
        if self.lsn_durable() >= lsn || self.poison.get().is_some() {
            drop(wakers);
            return Some(self.check_poisoned());
        }
        if self.closed.load(Ordering::Acquire) {
            return Some(Err(WalError::Closed));
        }
        if let Some(slot) = wakers.iter_mut().find(|(waiting, existing)| *waiting == lsn && existing.will_wake(waker)) {
            slot.1.clone_from(waker);
        } else {
            wakers.push((lsn, waker.clone()));
        }
        None
    }
}

/// The flusher thread's loop.
pub(crate) fn run_flusher(shared: &Shared, rx: &Receiver<FlushMsg>, max_delay: Duration) {
    loop {
        let Ok(msg) = rx.recv() else { return };
        match msg {
            FlushMsg::Shutdown => return,
            FlushMsg::BatchFull | FlushMsg::SyncNow => {}
            FlushMsg::BatchStarted => {
                let deadline = Instant::now() + max_delay;
                loop {
                    match rx.recv_deadline(deadline) {
                        Ok(FlushMsg::BatchStarted) => continue,
                        Ok(FlushMsg::BatchFull | FlushMsg::SyncNow) | Err(RecvTimeoutError::Timeout) => break,
                        Ok(FlushMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            }
        }
        let target = shared.lsn_written.load(Ordering::Acquire);
        // An error poisons the log; every waiter sees it through `GroupCommit`.
        let _ = shared.commit.make_durable(shared, target);
    }
}
