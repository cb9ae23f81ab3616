//! Group commit: one sync at a time covers every record written before it
//! began; the durable watermark only moves after a sync succeeds; a failed
//! sync poisons the log for good.
//!
//! Appenders under `Always` sync inline as leader/followers: whoever finds no
//! sync running leads one for everything written so far; the others sleep on
//! a condvar and wake to find their LSN durable, or lead the next sync. `Batch` appends are synced
//! by the flusher thread, woken through a crossbeam channel once per batch
//! (not once per record), at `max_delay` or when `max_bytes` are waiting.
//!
//! This is a primitive: it owns the watermark, the leader/follower protocol,
//! the poison and the wakers, and nothing else. What a leader actually does
//! (take the staged group, write it out, sync the dirty segments) is the
//! log's, handed in as a `SyncGroup`; so this module sees neither segments
//! nor the append lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::error::WalError;
use crate::format::Lsn;

/// Longest a sync leader waits for `Always` appends to join its group: those
/// mid-append, and as many as the last sync covered (with steady writers they
/// are on their way back with the next record). Measured with 1 KiB records
/// on 2 vCPUs: 8 writers 41k/s with the first condition alone (groups of 5.6),
/// 49-51k/s with both (groups of 7.4-7.7); 60 µs gained little more.
const GROUP_JOIN_WAIT: Duration = Duration::from_micros(40);

pub(crate) enum FlushMsg {
    /// The first `Batch` append since the last sync: start the delay clock.
    BatchStarted,
    /// `max_bytes` are waiting: sync now.
    BatchFull,
    /// Someone waits on a record appended without automatic sync.
    SyncNow,
    Shutdown,
}

/// What a sync leader does, supplied by the log (`shared.rs`).
pub(crate) trait SyncGroup {
    /// Whether an `Always` append is on its way into the group a leader is
    /// about to take: mid-append, or fewer staged than `expected` (the size
    /// of the last group, when appenders come back at a steady rate).
    fn joiners_pending(&self, expected: u64) -> bool;
    /// Takes the group (everything appended so far), writes it out and syncs
    /// every segment written since the last sync began. A failure has
    /// poisoned the log (`GroupCommit::poison`) before it is returned.
    fn write_and_sync(&self) -> Result<SyncedGroup, WalError>;
    /// The watermark moved from `lsn_previous` to `group.lsn_last`: wake
    /// appenders waiting for space, count the sync.
    fn after_sync(&self, lsn_previous: Lsn, group: &SyncedGroup);
}

/// A group that `SyncGroup::write_and_sync` made durable.
pub(crate) struct SyncedGroup {
    /// Every record up to here is durable.
    pub(crate) lsn_last: Lsn,
    /// `Always` appends in the group (the next leader expects as many).
    pub(crate) always_appends: u64,
    /// When the write-out and sync began.
    pub(crate) started: Instant,
}

pub(crate) struct GroupCommit {
    lsn_durable: AtomicU64,
    /// `Always` appends the last sync covered: how many the next leader
    /// expects to join, when appenders come back at a steady rate.
    always_last_group: AtomicU64,
    /// True while a leader syncs. Waiters (followers, `Batch` tickets) sleep on
    /// `synced`; every sync wakes them all, and each checks whether it is covered
    /// or must lead the next sync. Unlike queueing on a mutex, nobody can barge
    /// ahead of a waiter for more than one sync.
    syncing: Mutex<bool>,
    synced: Condvar,
    async_waiters: Mutex<Vec<(Lsn, Waker)>>,
    poison: OnceLock<Arc<str>>,
    closed: AtomicBool,
}

pub(crate) fn relock<T>(res: std::sync::LockResult<T>) -> T {
    // These mutexes (and the write-order lock of `staging`) guard a flag, a
    // waker list and spare buffers that stay valid whatever a panicking thread
    // was doing, so a poisoned lock is still usable.
    res.unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl GroupCommit {
    pub(crate) fn new(lsn_durable: Lsn) -> Self {
        GroupCommit {
            lsn_durable: AtomicU64::new(lsn_durable),
            always_last_group: AtomicU64::new(0),
            syncing: Mutex::new(false),
            synced: Condvar::new(),
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

    /// Returns once `lsn` is durable, leading a sync whenever none is running.
    pub(crate) fn make_durable(&self, group: &impl SyncGroup, lsn: Lsn) -> Result<(), WalError> {
        let mut syncing = relock(self.syncing.lock());
        loop {
            self.check_poisoned()?;
            if self.lsn_durable() >= lsn {
                return Ok(());
            }
            if *syncing {
                syncing = relock(self.synced.wait(syncing));
                continue;
            }
            *syncing = true;
            drop(syncing);
            // Appenders that are mid-append, or that the last sync covered and
            // that are coming back with their next record, would miss this sync
            // and wait a whole one for the next; give them a few microseconds to
            // join. Nobody is waited for when appends come one at a time.
            let expected = self.always_last_group.load(Ordering::Relaxed);
            let join_until = Instant::now() + GROUP_JOIN_WAIT;
            while group.joiners_pending(expected) && Instant::now() < join_until {
                std::thread::yield_now();
            }
            let res = self.lead(group);
            syncing = relock(self.syncing.lock());
            *syncing = false;
            self.synced.notify_all();
            drop(syncing);
            self.wake_async();
            res?;
            syncing = relock(self.syncing.lock());
        }
    }

    /// One group commit: writes out and syncs everything appended so far,
    /// then moves the watermark. Only the leader (`syncing` set) calls this.
    fn lead(&self, group: &impl SyncGroup) -> Result<(), WalError> {
        let synced = group.write_and_sync()?;
        self.always_last_group.store(synced.always_appends, Ordering::Relaxed);
        let lsn_previous = self.lsn_durable.fetch_max(synced.lsn_last, Ordering::AcqRel);
        // Leaders take their groups one after another, each at the end of the log.
        assert!(lsn_previous <= synced.lsn_last, "the durable watermark only moves up");
        assert!(self.poison.get().is_none(), "a poisoned log never moves its watermark");
        group.after_sync(lsn_previous, &synced);
        Ok(())
    }

    /// The log is going away: nobody will sync for waiters any more.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake_all();
    }

    /// A sync or a write-out failed (`cause` says which, of what): poison
    /// the log for good, wake every waiter with the error, and return it.
    /// After fsync reports an error the kernel may have dropped the dirty
    /// pages, and a later successful fsync would not bring them back; after a
    /// failed write-out, records already handed LSNs are missing from the
    /// middle of the log.
    pub(crate) fn poison(&self, cause: Arc<str>) -> WalError {
        let _ = self.poison.set(Arc::clone(&cause));
        self.wake_all();
        WalError::Poisoned { cause }
    }

    fn wake_all(&self) {
        drop(relock(self.syncing.lock()));
        self.synced.notify_all();
        self.wake_async();
    }

    fn wake_async(&self) {
        let durable = self.lsn_durable();
        let finished = self.poison.get().is_some() || self.closed.load(Ordering::Acquire);
        let mut wakers = relock(self.async_waiters.lock());
        wakers.retain(|(lsn, waker)| {
            let done = finished || *lsn <= durable;
            if done {
                waker.wake_by_ref();
            }
            !done
        });
    }

    /// Blocks until `lsn` is durable (someone else syncs it).
    pub(crate) fn wait_durable(&self, lsn: Lsn) -> Result<(), WalError> {
        let mut syncing = relock(self.syncing.lock());
        loop {
            self.check_poisoned()?;
            if self.lsn_durable() >= lsn {
                return Ok(());
            }
            if self.closed.load(Ordering::Acquire) {
                return Err(WalError::Closed);
            }
            syncing = relock(self.synced.wait(syncing));
        }
    }

    /// Async variant: Ready once `lsn` is durable or the log is poisoned or closed.
    pub(crate) fn poll_durable(&self, lsn: Lsn, waker: &Waker) -> Option<Result<(), WalError>> {
        let ready = |this: &Self| {
            if let Err(err) = this.check_poisoned() {
                return Some(Err(err));
            }
            if this.lsn_durable() >= lsn {
                return Some(Ok(()));
            }
            if this.closed.load(Ordering::Acquire) {
                return Some(Err(WalError::Closed));
            }
            None
        };
        if let Some(res) = ready(self) {
            return Some(res);
        }
        let mut wakers = relock(self.async_waiters.lock());
        // Checked again under the lock: `wake_async` takes it after the watermark moves.
        if let Some(res) = ready(self) {
            return Some(res);
        }
        if let Some(slot) = wakers.iter_mut().find(|(waiting, existing)| *waiting == lsn && existing.will_wake(waker)) {
            slot.1.clone_from(waker);
        } else {
            wakers.push((lsn, waker.clone()));
        }
        None
    }
}

/// The flusher thread's loop: waits for a batch to fill or its delay to
/// pass, then calls `sync_appended` (which makes everything appended so far
/// durable; an error poisons the log and every waiter sees it).
pub(crate) fn run_flusher(rx: &Receiver<FlushMsg>, max_delay: Duration, sync_appended: impl Fn()) {
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
        sync_appended();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// A log reduced to what group commit sees: an appended LSN and a sync
    /// that covers it, or fails.
    struct FakeLog {
        commit: Arc<GroupCommit>,
        lsn_appended: AtomicU64,
        syncs: AtomicU64,
        fail: AtomicBool,
    }

    impl SyncGroup for FakeLog {
        fn joiners_pending(&self, _expected: u64) -> bool {
            false
        }

        fn write_and_sync(&self) -> Result<SyncedGroup, WalError> {
            if self.fail.load(Ordering::Acquire) {
                return Err(self.commit.poison("sync of a fake segment failed".into()));
            }
            self.syncs.fetch_add(1, Ordering::AcqRel);
            let lsn_last = self.lsn_appended.load(Ordering::Acquire);
            Ok(SyncedGroup { lsn_last, always_appends: 0, started: Instant::now() })
        }

        fn after_sync(&self, lsn_previous: Lsn, group: &SyncedGroup) {
            assert!(lsn_previous <= group.lsn_last);
        }
    }

    fn fake_log(lsn_appended: Lsn) -> FakeLog {
        FakeLog {
            commit: Arc::new(GroupCommit::new(0)),
            lsn_appended: AtomicU64::new(lsn_appended),
            syncs: AtomicU64::new(0),
            fail: AtomicBool::new(false),
        }
    }

    #[test]
    fn one_sync_covers_every_waiter_and_the_watermark_only_moves_up() {
        let log = fake_log(8);
        std::thread::scope(|scope| {
            for lsn in 1..=8 {
                let log = &log;
                scope.spawn(move || log.commit.make_durable(log, lsn).expect("durable"));
            }
        });
        assert_eq!(log.commit.lsn_durable(), 8);
        assert!(log.syncs.load(Ordering::Acquire) >= 1);
        let syncs = log.syncs.load(Ordering::Acquire);
        log.commit.make_durable(&log, 3).expect("already durable");
        assert_eq!(log.syncs.load(Ordering::Acquire), syncs, "a covered LSN needs no sync");
        assert_eq!(log.commit.lsn_durable(), 8);
    }

    #[test]
    fn a_failed_sync_poisons_every_waiter_and_the_watermark_stays() {
        let log = fake_log(4);
        log.commit.make_durable(&log, 2).expect("durable");
        log.lsn_appended.store(6, Ordering::Release);
        log.fail.store(true, Ordering::Release);
        assert!(matches!(log.commit.make_durable(&log, 6), Err(WalError::Poisoned { .. })));
        assert!(matches!(log.commit.wait_durable(5), Err(WalError::Poisoned { .. })));
        log.fail.store(false, Ordering::Release);
        assert!(matches!(log.commit.make_durable(&log, 6), Err(WalError::Poisoned { .. })), "poison is for good");
        assert_eq!(log.commit.lsn_durable(), 4);
    }

    #[test]
    fn closing_wakes_waiters_with_closed() {
        let log = fake_log(1);
        log.commit.close();
        assert!(matches!(log.commit.wait_durable(1), Err(WalError::Closed)));
    }
}
