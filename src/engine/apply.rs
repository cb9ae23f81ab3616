//! Apply turns: appliers take turns, one at a time, and apply the records
//! the sequencer queued, in LSN order, each only once it is as durable as
//! its append asked. The only code that writes the state after start-up.

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
    /// The LSNs callers wait to see applied: a turn stops at the lowest, so
    /// that caller returns as soon as its record is in (a closed-loop writer
    /// then appends its next record while the others are applied).
    waiting: Vec<u64>,
}

impl ApplyGate {
    /// The gate of a state applied through `lsn_applied`.
    pub(super) fn new(lsn_applied: u64) -> ApplyGate {
        ApplyGate { busy: false, panicked: false, lsn_applied, waiting: Vec::new() }
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
        drop(gate);
        self.0.applied.notify_all();
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

    /// Applies every pending record up to `lsn`, in LSN order. Records that
    /// asked for durability are applied only once durable: if one is not yet
    /// (a `Never` call behind it), this waits for it first.
    pub(super) fn apply_through(&self, lsn: u64) -> Result<(), EngineError> {
        if let Some(ticket) = self.undurable_through(lsn) {
            ticket.wait().map_err(|err| self.wal_failed(err))?;
        }
        // Appliers take turns (so records are applied in LSN order), but
        // the sequencer is held only to take the due records off the queue:
        // appends go on while the state is updated. A turn applies up to the
        // lowest LSN waited for, then hands over, so callers return in LSN
        // order as their records are applied rather than all at the end.
        let lock_gate = || self.applying.lock().map_err(|_| self.poison("a writer panicked while applying"));
        let mut gate = lock_gate()?;
        loop {
            if gate.lsn_applied >= lsn {
                return Ok(());
            }
            if gate.panicked {
                return Err(self.poison("a writer panicked while applying"));
            }
            if gate.busy {
                gate.waiting.push(lsn);
                gate = self.applied.wait(gate).map_err(|_| self.poison("a writer panicked while applying"))?;
                if let Some(at) = gate.waiting.iter().position(|&waiting| waiting == lsn) {
                    gate.waiting.swap_remove(at);
                }
                continue;
            }
            // (A waiter already covered has yet to wake and leave the list.)
            let applied_before = gate.lsn_applied;
            let through = gate.waiting.iter().copied().filter(|&waiting| waiting > applied_before).fold(lsn, u64::min);
            gate.busy = true;
            drop(gate);
            let turn = TurnGuard(self);
            let applied = self.apply_turn(through);
            std::mem::forget(turn);
            gate = lock_gate()?;
            assert!(gate.busy);
            gate.busy = false;
            if let Ok(lsn_applied) = applied {
                // Only this turn applied since `applied_before` was read.
                assert!(gate.lsn_applied == applied_before, "two apply turns at once");
                assert!(lsn_applied >= applied_before, "applied_lsn went back");
                gate.lsn_applied = lsn_applied;
            }
            // Waiters register in `waiting` under this lock before they
            // wait, so with none registered there is no one to wake (and
            // a lone writer skips the wake-up system call).
            if !gate.waiting.is_empty() {
                self.applied.notify_all();
            }
            let lsn_applied = applied?;
            if lsn_applied < through {
                // Only if a record became non-durable again: the log failed.
                return Err(EngineError::Poisoned(format!(
                    "record {through} could not be applied: the log did not make it durable"
                )));
            }
        }
    }

    /// One applier's turn: applies the due records up to `lsn` (those that
    /// asked for durability only once durable); returns the state's LSN.
    fn apply_turn(&self, lsn: u64) -> Result<u64, EngineError> {
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
        let lsn_applied = {
            let mut state = self.state.write().map_err(|_| self.poison("a writer panicked while applying"))?;
            for (lsn, record) in &records {
                // Paired: each record is new to the state before, and the
                // state is exactly at it after (records in LSN order).
                assert!(*lsn > state.lsn_applied(), "record {lsn} applied out of LSN order");
                state.apply(*lsn, record, &self.config.dedup);
                assert!(state.lsn_applied() == *lsn);
            }
            state.lsn_applied()
        };
        if let Some(err) = undecodable {
            return Err(self.poison(format!("cannot apply our own record: {err}")));
        }
        // Only now, with the ids in the state's dedup window, do they leave
        // the in-flight set: a concurrent duplicate check always finds them
        // in one or the other.
        if due.iter().any(|pending| !pending.event_ids.is_empty()) {
            self.sequencer_for_apply()?.release_in_flight(&due);
        }
        Ok(lsn_applied)
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
