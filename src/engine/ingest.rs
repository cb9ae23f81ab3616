//! Ingest: validate → sequence (dedup check, LSN assignment) → wait for
//! durability → apply → acknowledge. The ONLY file of the engine that
//! appends to the log (`tests/only_ingest_appends.rs` checks it): every
//! state change, events and administrative records alike, goes through
//! `Shared::append` here, under the sequencer lock, so the sequencer's queue
//! holds every record not yet applied, in LSN order.

use std::collections::VecDeque;
use std::sync::MutexGuard;

use recwal_wal::{AppendTicket, Durability, WalError};
use rustc_hash::{FxHashMap, FxHashSet};
use tracing::warn;

use super::{Receipt, Shared};
use crate::dedup::FirstSeen;
use crate::error::EngineError;
use crate::event::{self, Event};
use crate::record::{EventsV1, LogRecord, LoggedEvent};
use crate::state::State;

/// An ingest call after its append (or its duplicate check), before its
/// acknowledgement: what it must wait for and apply.
pub(super) struct Waiting {
    /// Apply through this LSN: the call's own record, or the latest pending
    /// record one of its duplicates refers to.
    lsn: u64,
    /// Wait on this for durability (`None`: nothing pending to wait for).
    ticket: Option<AppendTicket>,
    /// The call's own record, if it appended one.
    appended: Option<u64>,
    /// Receipts known so far (duplicates); the rest get `appended`.
    receipts: Vec<Option<Receipt>>,
    /// Events whose id repeats an earlier event of the same call.
    repeats: Vec<usize>,
}

/// A record appended but not yet applied.
pub(super) struct Pending {
    pub(super) lsn: u64,
    pub(super) kind: u8,
    pub(super) payload: Vec<u8>,
    pub(super) event_ids: Vec<String>,
    pub(super) durability: Durability,
    pub(super) ticket: AppendTicket,
}

/// Owned by ingest (which fills it under its lock) and drained by the
/// applier (which takes the due records off and hands the event ids over
/// to the state's dedup window).
#[derive(Default)]
pub(super) struct Sequencer {
    /// In LSN order.
    pending: VecDeque<Pending>,
    /// Event ids of pending records, so a retry racing its original is
    /// still caught (and waits for the original to be durable and applied).
    in_flight: FxHashMap<String, u64>,
    /// The highest LSN whose event ids left `in_flight` for the state's
    /// dedup window (see `Shared::lock_sequencer_after_lookup`).
    released_through: u64,
}

impl Sequencer {
    fn ticket_of(&self, lsn: u64) -> Option<AppendTicket> {
        let at = self.pending.binary_search_by_key(&lsn, |pending| pending.lsn).ok()?;
        Some(self.pending[at].ticket.clone())
    }

    /// Queues an appended record; its event ids are in flight from now on.
    fn push(&mut self, pending: Pending) {
        // The log hands out LSNs in order and appends happen under this
        // lock: the queue stays sorted (apply relies on it).
        assert!(self.pending.back().is_none_or(|last| last.lsn < pending.lsn));
        for id in &pending.event_ids {
            // The duplicate check ran under this same lock and found none.
            let earlier = self.in_flight.insert(id.clone(), pending.lsn);
            assert!(earlier.is_none(), "event id in flight twice");
        }
        self.pending.push_back(pending);
    }

    /// LSN of the oldest record not yet applied.
    pub(super) fn lsn_oldest(&self) -> Option<u64> {
        self.pending.front().map(|pending| pending.lsn)
    }

    /// Takes off the records up to `lsn` that may be applied now: all of
    /// them in order, stopping at the first that asked for durability and is
    /// not durable yet.
    pub(super) fn take_due(&mut self, lsn: u64, durable: u64) -> Vec<Pending> {
        let count = self
            .pending
            .iter()
            .take_while(|p| p.lsn <= lsn && (p.durability == Durability::Never || p.lsn <= durable))
            .count();
        let due: Vec<Pending> = self.pending.drain(..count).collect();
        debug_assert!(due.windows(2).all(|pair| pair[0].lsn < pair[1].lsn));
        due
    }

    /// The ticket of the latest pending record at or below `lsn` that asked
    /// for durability and is not durable yet.
    pub(super) fn undurable_through(&self, lsn: u64, durable: u64) -> Option<AppendTicket> {
        self.pending
            .iter()
            .take_while(|pending| pending.lsn <= lsn)
            .filter(|pending| pending.durability != Durability::Never && pending.lsn > durable)
            .last()
            .map(|pending| pending.ticket.clone())
    }

    /// The hand-off: `due` is applied, so its event ids are in the state's
    /// dedup window and leave the in-flight set (a concurrent duplicate
    /// check always finds them in one or the other).
    pub(super) fn release_in_flight(&mut self, due: &[Pending]) {
        for pending in due {
            if !pending.event_ids.is_empty() {
                self.released_through = self.released_through.max(pending.lsn);
            }
            for id in &pending.event_ids {
                if self.in_flight.get(id) == Some(&pending.lsn) {
                    self.in_flight.remove(id);
                }
            }
        }
    }
}

impl Shared {
    pub(super) fn ingest(
        &self,
        events: &[Event],
        durability: Durability,
        field: &str,
    ) -> Result<Vec<Receipt>, EngineError> {
        let waiting = self.ingest_start(events, durability, field)?;
        if let (Some(ticket), true) = (&waiting.ticket, durability != Durability::Never) {
            ticket.wait().map_err(|err| self.wal_failed(err))?;
        }
        self.sync_untracked(&waiting, durability)?;
        self.ingest_finish(waiting, durability)
    }

    pub(super) async fn ingest_async(
        &self,
        events: &[Event],
        durability: Durability,
        field: &str,
    ) -> Result<Vec<Receipt>, EngineError> {
        let waiting = self.ingest_start(events, durability, field)?;
        if let (Some(ticket), true) = (&waiting.ticket, durability != Durability::Never) {
            ticket.wait_async().await.map_err(|err| self.wal_failed(err))?;
        }
        self.sync_untracked(&waiting, durability)?;
        // A `Never` call applying behind records that must first be durable
        // waits for them here, not inside `apply_through`, so the thread is
        // not blocked.
        if let Some(ticket) = self.undurable_through(waiting.lsn) {
            ticket.wait_async().await.map_err(|err| self.wal_failed(err))?;
        }
        self.ingest_finish(waiting, durability)
    }

    /// A duplicate of a record already taken off the queue (being applied)
    /// has no ticket to wait on; if that record is not durable yet (it was
    /// written `Never`), sync for it. Rare.
    fn sync_untracked(&self, waiting: &Waiting, durability: Durability) -> Result<(), EngineError> {
        if waiting.ticket.is_none() && durability != Durability::Never && self.wal.lsn_durable() < waiting.lsn {
            self.wal.sync().map_err(|err| self.wal_failed(err))?;
        }
        Ok(())
    }

    /// Applies what the call waited for and builds the receipts. (If an
    /// async caller is cancelled before this, the checkpointer thread applies
    /// the record once it is durable.)
    fn ingest_finish(&self, waiting: Waiting, durability: Durability) -> Result<Vec<Receipt>, EngineError> {
        let Waiting { lsn, appended, mut receipts, repeats, .. } = waiting;
        self.apply_through(lsn)?;
        // What the call acknowledges is durable under its durability (the
        // pair of the wait above; O(1), so checked in release builds too).
        if durability != Durability::Never {
            assert!(self.wal.lsn_durable() >= lsn, "acknowledging record {lsn} before it is durable");
        }
        for (at, receipt) in receipts.iter_mut().enumerate() {
            if let (None, Some(appended)) = (&receipt, appended) {
                *receipt = Some(Receipt { lsn: appended, duplicate: repeats.contains(&at) });
            }
        }
        Ok(receipts.into_iter().flatten().collect())
    }

    /// Validates and sequences the call (append without sync, or duplicate
    /// detection), making room once if the ring is full.
    fn ingest_start(&self, events: &[Event], durability: Durability, field: &str) -> Result<Waiting, EngineError> {
        if events.len() > self.config.batch_events_max {
            return Err(EngineError::invalid(
                field,
                format!("at most {} events per call, got {}", self.config.batch_events_max, events.len()),
            ));
        }
        let now = event::now_ms();
        let valid: Vec<LoggedEvent> = events
            .iter()
            .enumerate()
            .map(|(at, event)| {
                let name = || if field == "event" { field.to_string() } else { format!("{field}[{at}]") };
                event::validate(event, &self.config, now, &name)
            })
            .collect::<Result<_, _>>()?;
        match self.sequence_events(&valid, now, durability, field) {
            Err(EngineError::Wal(WalError::Full { .. })) => {
                self.make_room()?;
                self.sequence_events(&valid, now, durability, field)
            }
            other => other,
        }
    }

    /// Finds the events whose id was already accepted, and appends the rest
    /// as one record, under the sequencer lock.
    fn sequence_events(
        &self,
        valid: &[LoggedEvent<'_>],
        now: i64,
        durability: Durability,
        field: &str,
    ) -> Result<Waiting, EngineError> {
        let mut receipts: Vec<Option<Receipt>> = vec![None; valid.len()];
        let mut repeats = Vec::new();
        let (in_window, mut sequencer) = self.lock_sequencer_after_lookup(valid, now)?;
        let mut fresh: Vec<LoggedEvent<'_>> = Vec::with_capacity(valid.len());
        let mut fresh_ids: Vec<String> = Vec::new();
        let mut fresh_set: FxHashSet<&str> = FxHashSet::default();
        // The latest pending (unapplied) record a duplicate refers to: the
        // call must not return before that record is durable and applied.
        let mut pending_original = 0u64;
        for (at, event) in valid.iter().enumerate() {
            if let Some(id) = event.event_id {
                if let Some(seen) = in_window.get(at).copied().flatten() {
                    receipts[at] = Some(Receipt { lsn: seen.lsn, duplicate: true });
                    // Applied, but maybe written `Never` and not yet
                    // durable: the caller's durability covers it too.
                    pending_original = pending_original.max(seen.lsn);
                    continue;
                }
                if let Some(&lsn) = sequencer.in_flight.get(id) {
                    receipts[at] = Some(Receipt { lsn, duplicate: true });
                    pending_original = pending_original.max(lsn);
                    continue;
                }
                if !fresh_set.insert(id) {
                    repeats.push(at);
                    continue;
                }
                fresh_ids.push(id.to_string());
            }
            fresh.push(event.clone());
        }
        if fresh.is_empty() {
            let ticket = sequencer.ticket_of(pending_original);
            return Ok(Waiting { lsn: pending_original, ticket, appended: None, receipts, repeats });
        }
        let record = LogRecord::Events(EventsV1 { ingested_ms: now, events: fresh });
        let (lsn, ticket) = self.append(&mut sequencer, &record, fresh_ids, durability, field)?;
        Ok(Waiting { lsn, ticket: Some(ticket), appended: Some(lsn), receipts, repeats })
    }

    /// Looks the events' ids up in the dedup window, then locks the
    /// sequencer. The lookup runs before the lock, so appends do not queue
    /// behind an apply in progress (which holds the state); it still covers
    /// every accepted id: one applied through the LSN the lookup saw is in
    /// the window, one not yet applied is in the sequencer's in-flight set
    /// until its record is applied. Only ids released from that set after
    /// the lookup could fall between the two: then the lookup is repeated
    /// (and after a few tries, done under the sequencer lock).
    fn lock_sequencer_after_lookup(
        &self,
        valid: &[LoggedEvent<'_>],
        now: i64,
    ) -> Result<(Vec<Option<FirstSeen>>, MutexGuard<'_, Sequencer>), EngineError> {
        const LOOKUPS_UNLOCKED: usize = 3;
        if valid.iter().all(|event| event.event_id.is_none()) {
            return Ok((Vec::new(), self.lock_sequencer()?));
        }
        let look_up = |state: &State| -> Vec<Option<FirstSeen>> {
            let window = state.dedup();
            valid.iter().map(|event| event.event_id.and_then(|id| window.lookup(id, now, &self.config.dedup))).collect()
        };
        for _ in 0..LOOKUPS_UNLOCKED {
            let (seen, lsn_seen) = {
                let state = self.read_state();
                (look_up(&state), state.lsn_applied())
            };
            let sequencer = self.lock_sequencer()?;
            if sequencer.released_through <= lsn_seen {
                return Ok((seen, sequencer));
            }
        }
        let sequencer = self.lock_sequencer()?;
        let seen = look_up(&self.read_state());
        Ok((seen, sequencer))
    }

    /// The log's ring is full: checkpoint now, and if the oldest kept
    /// snapshot still pins the ring, release up to the newest one (the
    /// older snapshot then no longer has the log it would need).
    fn make_room(&self) -> Result<(), EngineError> {
        warn!("log ring full: checkpointing to make room");
        let info = self.checkpoint()?;
        let released = self.wal.checkpoint(info.lsn).map_err(|err| self.wal_failed(err))?;
        if released > 0 {
            warn!(lsn = info.lsn, "released the log behind the newest snapshot; older snapshots can no longer be used");
        }
        Ok(())
    }

    /// Logs one record that is not a batch of events (the forget, remove and
    /// model records), waits for `durability` and applies it.
    pub(super) fn log_and_apply(
        &self,
        record: &LogRecord<'_>,
        event_ids: Vec<String>,
        durability: Durability,
    ) -> Result<u64, EngineError> {
        let append = || {
            let mut sequencer = self.lock_sequencer()?;
            self.append(&mut sequencer, record, event_ids.clone(), durability, "record")
        };
        let (lsn, ticket) = match append() {
            Err(EngineError::Wal(WalError::Full { .. })) => {
                self.make_room()?;
                append()?
            }
            other => other?,
        };
        if durability != Durability::Never {
            ticket.wait().map_err(|err| self.wal_failed(err))?;
        }
        self.apply_through(lsn)?;
        if durability != Durability::Never {
            assert!(self.wal.lsn_durable() >= lsn, "acknowledging record {lsn} before it is durable");
        }
        Ok(lsn)
    }

    /// Appends under the sequencer lock. The write never syncs here: an
    /// `Always` record is written by `append_sync_later` and synced by the
    /// caller's ticket wait, outside the lock, where concurrent waiters
    /// share a sync.
    fn append(
        &self,
        sequencer: &mut Sequencer,
        record: &LogRecord<'_>,
        event_ids: Vec<String>,
        durability: Durability,
        field: &str,
    ) -> Result<(u64, AppendTicket), EngineError> {
        let (kind, payload) = record.encode()?;
        let limit = self.wal.config().record_bytes_max as usize;
        if payload.len() > limit {
            return Err(EngineError::invalid(
                field,
                format!("encodes to {} bytes; the log's record limit is {limit}: send fewer events", payload.len()),
            ));
        }
        let appended = match durability {
            Durability::Always => self.wal.append_sync_later(kind, &payload),
            other => self.wal.append_with(kind, &payload, other),
        };
        let ticket = appended.map_err(|err| self.wal_failed(err))?;
        let lsn = ticket.lsn();
        sequencer.push(Pending { lsn, kind, payload, event_ids, durability, ticket: ticket.clone() });
        Ok((lsn, ticket))
    }

    /// The sequencer for an append: refused once the engine stopped
    /// accepting writes.
    fn lock_sequencer(&self) -> Result<MutexGuard<'_, Sequencer>, EngineError> {
        if let Some(reason) = self.poisoned.get() {
            return Err(EngineError::Poisoned(reason.clone()));
        }
        self.sequencer.lock().map_err(|_| self.poison("a writer panicked"))
    }

    /// The sequencer, even after the engine stopped accepting writes (a
    /// record already durable must still be applied).
    pub(super) fn sequencer_for_apply(&self) -> Result<MutexGuard<'_, Sequencer>, EngineError> {
        self.sequencer.lock().map_err(|_| self.poison("a writer panicked"))
    }
}

#[cfg(test)]
mod tests {
    use recwal_wal::{SyncPolicy, Wal, WalConfig};

    use super::*;

    /// The queue hands records to the applier in LSN order, stops at the
    /// first that asked for durability and is not durable yet, and keeps an
    /// event id in flight until the applier hands it over.
    #[test]
    fn the_queue_is_released_in_lsn_order_up_to_the_first_undurable_record() -> Result<(), EngineError> {
        let dir = tempfile::tempdir().map_err(|err| EngineError::io("tempdir", err))?;
        let config = WalConfig::default().segment_bytes(1 << 20).sync_policy(SyncPolicy::Never);
        let wal = Wal::open(dir.path(), config)?;
        let mut sequencer = Sequencer::default();
        for (id, durability) in [("a", Durability::Never), ("b", Durability::Batch), ("c", Durability::Never)] {
            let ticket = wal.append_with(1, id.as_bytes(), durability)?;
            let lsn = ticket.lsn();
            let pending = Pending { lsn, kind: 1, payload: Vec::new(), event_ids: vec![id.into()], durability, ticket };
            sequencer.push(pending);
        }
        let lsns = |due: &[Pending]| due.iter().map(|pending| pending.lsn).collect::<Vec<_>>();
        assert_eq!(sequencer.lsn_oldest(), Some(1));
        // Nothing durable: record 1 (`Never`) is due; record 2 (`Batch`)
        // must wait, and so must record 3 behind it.
        let due = sequencer.take_due(3, 0);
        assert_eq!(lsns(&due), [1]);
        assert_eq!(sequencer.undurable_through(3, 0).map(|ticket| ticket.lsn()), Some(2));
        assert!(sequencer.in_flight.contains_key("a"));
        sequencer.release_in_flight(&due);
        assert!(!sequencer.in_flight.contains_key("a"));
        assert!(sequencer.in_flight.contains_key("b"));
        // Record 2 durable: the rest is due, in order.
        assert_eq!(sequencer.undurable_through(3, 2).map(|ticket| ticket.lsn()), None);
        let due = sequencer.take_due(3, 2);
        assert_eq!(lsns(&due), [2, 3]);
        sequencer.release_in_flight(&due);
        assert!(sequencer.in_flight.is_empty());
        assert_eq!(sequencer.lsn_oldest(), None);
        Ok(())
    }
}
