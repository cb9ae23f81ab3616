//! Apply turns: appliers take turns, one at a time, and apply the records
//! the sequencer queued, in LSN order, each only once it is as durable as
//! its append asked. The only code that writes the state after start-up.

use std::sync::MutexGuard;

use recwal_wal::AppendTicket;
use tracing::warn;

use super::ingest::Pending;
use super::Shared;
use crate::error::EngineError;
use crate::record::LogRecord;

/// Appliers take turns: one at a time applies records, in LSN order.
pub(super) struct ApplyGate {
    /// An applier is at work (outside this lock).
    busy: bool,
    /// A turn panicked: the state may be half updated, nothing more is
    /// applied.
    panicked: bool,
    /// LSN of the last record applied; only grows.
    lsn_applied: u64,
    /// The callers waiting for their record to be applied, each with its
    /// thread: each is woken once its record is in (a closed-loop writer
    /// then appends its next record while the others are applied), and at
    /// a turn's end the lowest of the rest is woken to take the next turn.
    /// (Waking every waiter whenever the gate changed cost more than the
    /// applies under load: 8 to 32 writers of 100-event batches, 2 cores.)
    waiting: Vec<Waiter>,
}

/// A caller parked until its record is applied or it may take a turn.
struct Waiter {
    lsn: u64,
    thread: std::thread::Thread,
}

impl ApplyGate {
    /// The gate of a state applied through `lsn_applied`.
    pub(super) fn new(lsn_applied: u64) -> ApplyGate {
        ApplyGate { busy: false, panicked: false, lsn_applied, waiting: Vec::new() }
    }

    /// Registers the calling thread as waiting for `lsn` (once).
    fn register(&mut self, lsn: u64) {
        let me = std::thread::current();
        if !self.waiting.iter().any(|waiter| waiter.lsn == lsn && waiter.thread.id() == me.id()) {
            self.waiting.push(Waiter { lsn, thread: me });
        }
    }

    /// Takes the calling thread's registration for `lsn` off the list.
    fn unregister(&mut self, lsn: u64) {
        let me = std::thread::current().id();
        if let Some(at) = self.waiting.iter().position(|waiter| waiter.lsn == lsn && waiter.thread.id() == me) {
            self.waiting.swap_remove(at);
        }
    }

    /// Wakes (and drops from the list) every waiter whose record is now
    /// applied, or everyone after a panic.
    fn wake_applied(&mut self) {
        let applied = self.lsn_applied;
        let everyone = self.panicked;
        self.waiting.retain(|waiter| {
            let done = everyone || waiter.lsn <= applied;
            if done {
                waiter.thread.unpark();
            }
            !done
        });
    }

    /// After a turn: `wake_applied`, and wakes the lowest of the others,
    /// which takes the next turn (it stays listed until it does).
    fn wake_after_turn(&mut self) {
        self.wake_applied();
        if let Some(next) = self.waiting.iter().min_by_key(|waiter| waiter.lsn) {
            next.thread.unpark();
        }
    }
}

/// Ends a turn that panicked: the engine stops accepting writes, and the
/// callers waiting for the turn are woken (to find it poisoned).
struct TurnGuard<'a>(&'a Shared);

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.poison("a writer panicked while applying");
        let mut gate = self.0.applying.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        gate.busy = false;
        gate.panicked = true;
        gate.wake_after_turn();
    }
}

impl Shared {
    /// The ticket of the latest pending record at or below `lsn` that asked
    /// for durability and is not durable yet: it must be durable before
    /// anything after it is applied (a `Never` call behind a `Batch` one).
    pub(super) fn undurable_through(&self, lsn: u64) -> Option<AppendTicket> {
        let sequencer = self.sequencer_for_apply().ok()?;
        sequencer.undurable_through(lsn, self.wal.lsn_durable())
    }

    /// The gate; once a thread panicked holding it, an error, and every
    /// parked caller is woken to get the same error rather than wait for a
    /// turn that will never end.
    fn lock_gate(&self) -> Result<MutexGuard<'_, ApplyGate>, EngineError> {
        self.applying.lock().map_err(|poisoned| {
            let mut gate = poisoned.into_inner();
            gate.panicked = true;
            gate.wake_after_turn();
            drop(gate);
            self.poison("a writer panicked while applying")
        })
    }

    /// Applies every pending record up to `lsn`, in LSN order. Records that
    /// asked for durability are applied only once durable: if one is not yet
    /// (a `Never` call behind it), this waits for it first.
    pub(super) fn apply_through(&self, lsn: u64) -> Result<(), EngineError> {
        if let Some(ticket) = self.undurable_through(lsn) {
            ticket.wait().map_err(|err| self.wal_failed(err))?;
        }
        // Appliers take turns (so records are applied in LSN order), but
        // the sequencer is held only to take the due records off the queue:
        // appends go on while the state is updated. A turn applies every
        // record waited for when it starts, each under its own write lock
        // (readers get in between), and wakes each caller as soon as its
        // record is in: callers return in LSN order as their records are
        // applied, and no turn is handed over per record (a hand-over is a
        // thread wake-up, which cost as much as the apply itself under
        // load on 2 cores).
        let mut gate = self.lock_gate()?;
        loop {
            if gate.lsn_applied >= lsn {
                gate.unregister(lsn);
                return Ok(());
            }
            if gate.panicked {
                gate.unregister(lsn);
                return Err(self.poison("a writer panicked while applying"));
            }
            if gate.busy {
                // Woken by the turn that applies our record, or to take the
                // next turn; a spurious wake-up just loops.
                gate.register(lsn);
                drop(gate);
                std::thread::park();
                gate = self.lock_gate()?;
                continue;
            }
            gate.unregister(lsn);
            let through = gate.waiting.iter().map(|waiter| waiter.lsn).fold(lsn, u64::max);
            gate.busy = true;
            drop(gate);
            let turn = TurnGuard(self);
            let applied = self.apply_turn(through);
            std::mem::forget(turn);
            gate = self.lock_gate()?;
            assert!(gate.busy);
            gate.busy = false;
            // A lone writer finds no one listed and makes no system call.
            gate.wake_after_turn();
            applied?;
            if gate.lsn_applied < lsn {
                // Only if a record became non-durable again: the log failed.
                return Err(EngineError::Poisoned(format!(
                    "record {lsn} could not be applied: the log did not make it durable"
                )));
            }
        }
    }

    /// One applier's turn: applies the due records up to `lsn` (those that
    /// asked for durability only once durable), publishing each in the gate
    /// (and waking its caller) as soon as it is in.
    fn apply_turn(&self, lsn: u64) -> Result<(), EngineError> {
        let due: Vec<Pending> = {
            let mut sequencer = self.sequencer_for_apply()?;
            sequencer.take_due(lsn, self.wal.lsn_durable())
        };
        // Decoded before the state is locked (readers wait only for the
        // updates); records before one that fails to decode are applied.
        let mut records = Vec::with_capacity(due.len());
        let mut undecodable = None;
        for pending in &due {
            match LogRecord::decode(pending.lsn, pending.kind, &pending.payload) {
                Ok(record) => records.push((pending.lsn, record)),
                Err(err) => {
                    undecodable = Some(err);
                    break;
                }
            }
        }
        for (lsn, record) in &records {
            {
                let mut state = self.state.write().map_err(|_| self.poison("a writer panicked while applying"))?;
                // Paired: each record is new to the state before, and the
                // state is exactly at it after (records in LSN order).
                assert!(*lsn > state.lsn_applied(), "record {lsn} applied out of LSN order");
                state.apply(*lsn, record, &self.config.dedup);
                assert!(state.lsn_applied() == *lsn);
            }
            let mut gate = self.lock_gate()?;
            // Only this turn applies, in LSN order.
            assert!(gate.busy && gate.lsn_applied < *lsn, "two apply turns at once");
            gate.lsn_applied = *lsn;
            gate.wake_applied();
        }
        if let Some(err) = undecodable {
            return Err(self.poison(format!("cannot apply our own record: {err}")));
        }
        // Only now, with the ids in the state's dedup window, do they leave
        // the in-flight set: a concurrent duplicate check always finds them
        // in one or the other.
        if due.iter().any(|pending| !pending.event_ids.is_empty()) {
            self.sequencer_for_apply()?.release_in_flight(&due);
        }
        Ok(())
    }

    /// Applies pending records the log has made durable but whose callers
    /// are gone (a cancelled async ingest). One of the checkpoint thread's
    /// jobs.
    pub(super) fn apply_orphans(&self) {
        let durable = self.wal.lsn_durable();
        let behind = self
            .sequencer_for_apply()
            .map(|sequencer| sequencer.lsn_oldest().is_some_and(|oldest| oldest <= durable))
            .unwrap_or(false);
        if behind {
            if let Err(err) = self.apply_through(durable) {
                warn!(%err, "applying durable records in the background failed");
            }
        }
    }
}
