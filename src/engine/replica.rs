//! Replicas (docs/CLUSTER.md): the engine's half of `serve --cluster`. The
//! engine knows nothing of the stream itself: a node validates a write with
//! `replica_events` (nothing applied) and publishes the bytes; every node
//! hands each stream message, in stream order, to `apply_replicated`, which
//! logs it as one kind-12 record carrying the stream sequence and applies
//! it. The stream sequence of the last one applied is in the state, so in
//! every snapshot, and comes back with the replay.

use super::Engine;
use crate::catalogue::{Item, User};
use crate::error::EngineError;
use crate::event::{self, Event};
use crate::record::{EventsV1, LogRecord, LoggedEvent, REPLICABLE_KINDS};

/// Bytes a kind-12 record adds around the record it carries (the stream
/// sequence and the payload's length as varints, the kind byte).
const REPLICATED_OVERHEAD_BYTES: usize = 10 + 1 + 10;

/// What `apply_replicated` did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaApplied {
    /// Logged and applied as the record at this LSN.
    Applied {
        /// The local log's LSN of the kind-12 record.
        lsn: u64,
    },
    /// At or below the stream sequence already applied: nothing done (a
    /// redelivery after a reconnect).
    AlreadyApplied,
}

/// The model file a stream message needs before it is applied
/// (`model_file_of`): the one a model addition names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelFileRef {
    /// SHA-256 of the file.
    pub sha256: [u8; 32],
    /// Its length.
    pub bytes: u64,
}

impl ModelFileRef {
    /// The hash in lower-case hex (the name the cluster stores it under).
    pub fn hex(&self) -> String {
        crate::model::store::hex(&self.sha256)
    }
}

/// The model file `message` (a stream message) needs, if it is a model
/// addition; `None` for every other message and for bytes that do not
/// decode (which `apply_replicated` refuses).
pub fn model_file_of(message: &[u8]) -> Option<ModelFileRef> {
    let (&kind, payload) = message.split_first()?;
    if kind != crate::record::KIND_MODEL_ADDED_V1 {
        return None;
    }
    match LogRecord::decode(0, kind, payload) {
        Ok(LogRecord::ModelAdded(added)) => Some(ModelFileRef { sha256: added.sha256, bytes: added.bytes }),
        _ => None,
    }
}

/// A state change other than events that a replica publishes through the
/// stream (`Engine::replica_write`): the same changes as the single-node
/// methods of the same names.
#[derive(Clone, Copy, Debug)]
pub enum ReplicaWrite<'a> {
    /// `Engine::forget_user`.
    ForgetUser(&'a str),
    /// `Engine::remove_item`.
    RemoveItem(&'a str),
    /// `Engine::upsert_item`.
    UpsertItem(&'a Item),
    /// `Engine::set_item_hidden`.
    SetItemHidden {
        /// The item.
        item: &'a str,
        /// Hide (`true`) or show.
        hidden: bool,
    },
    /// `Engine::upsert_user`.
    UpsertUser(&'a User),
}

/// A replica's state for another node to start from (`replica_snapshot`):
/// a snapshot file's bytes with what they cover.
pub struct ReplicaSnapshot {
    /// A snapshot file (the format of the data dir's `snapshots/`; CRCs
    /// inside, so a damaged copy is refused where it is installed).
    pub bytes: Vec<u8>,
    /// The LSN it covers: this node's own log position, which a node
    /// installing it takes as the start of its new log.
    pub lsn: u64,
    /// Stream sequence of the last message it holds: the node installing it
    /// follows the stream from the next one.
    pub stream_seq: u64,
    /// `State::replica_digest` of the state it holds.
    pub digest: u64,
}

/// A replica's position: the stream sequence applied and the state's
/// digest there, read together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaPosition {
    /// Stream sequence of the last message applied (0: none).
    pub stream_seq: u64,
    /// `State::replica_digest`: equal on replicas at the same `stream_seq`.
    pub digest: u64,
}

impl Engine {
    /// Validates `events` exactly as `ingest_batch` does (ids, kinds,
    /// weights, times, the batch and record limits) and returns the message
    /// a replica publishes for them: the record's kind byte, then its
    /// payload (the resolved events, one record: all or none). Writes and
    /// applies nothing.
    pub fn replica_events(&self, events: &[Event]) -> Result<Vec<u8>, EngineError> {
        let config = &self.shared.config;
        if events.len() > config.batch_events_max {
            return Err(EngineError::invalid(
                "events",
                format!("at most {} events per call, got {}", config.batch_events_max, events.len()),
            ));
        }
        let now = event::now_ms();
        let field = if events.len() == 1 { "event" } else { "events" };
        let valid: Vec<LoggedEvent> = events
            .iter()
            .enumerate()
            .map(|(at, event)| {
                let name = || if field == "event" { field.to_string() } else { format!("{field}[{at}]") };
                event::validate(event, config, now, &name)
            })
            .collect::<Result<_, _>>()?;
        self.message_of(&LogRecord::Events(EventsV1 { ingested_ms: now, events: valid }), field)
    }

    /// Validates `write` exactly as its single-node method does (ids,
    /// fields, the item or user known to this node where the method needs
    /// it) and returns the message a replica publishes for it. Writes and
    /// applies nothing.
    pub fn replica_write(&self, write: ReplicaWrite<'_>) -> Result<Vec<u8>, EngineError> {
        let record = self.record_of(write)?;
        self.message_of(&record, "record")
    }

    /// A stream message: the record's kind byte, then its payload, within
    /// the log's record limit once wrapped in a kind-12 record.
    pub(super) fn message_of(&self, record: &LogRecord<'_>, field: &str) -> Result<Vec<u8>, EngineError> {
        let (kind, payload) = record.encode()?;
        let limit = (self.shared.wal.config().record_bytes_max as usize).saturating_sub(REPLICATED_OVERHEAD_BYTES);
        if payload.len() > limit {
            return Err(EngineError::invalid(
                field,
                format!("encodes to {} bytes; the log's record limit is {limit}: send fewer events", payload.len()),
            ));
        }
        let mut message = Vec::with_capacity(1 + payload.len());
        message.push(kind);
        message.extend_from_slice(&payload);
        Ok(message)
    }

    /// Logs and applies the stream's message `stream_seq` (bytes from
    /// `replica_events`, published by any node) as one kind-12 record.
    /// The record is applied without waiting for a sync of the local log
    /// (`Durability::Never`; the next sync, checkpoint or close covers it):
    /// the stream is its durable copy, and a node that loses its log's
    /// tail restarts at an earlier stream sequence and reads the rest
    /// again, while waiting for a sync per message would hold every replica
    /// to one message per sync. Messages must come in stream order:
    /// one at or below the sequence applied is ignored (`AlreadyApplied`),
    /// one beyond its successor is refused (`StreamGap`) and nothing is
    /// applied. A message this build cannot decode is refused
    /// (`BadRecord`), also without applying anything: skipping it would
    /// still be the same on every replica, but it would hide a foreign or
    /// newer publisher.
    pub fn apply_replicated(&self, stream_seq: u64, message: &[u8]) -> Result<ReplicaApplied, EngineError> {
        self.apply_replicated_with(stream_seq, message, None)
    }

    /// `apply_replicated`, with the model file a model-addition message
    /// names (`model_file_of`), fetched by the caller from wherever the
    /// cluster keeps them. Without it (or with bytes that do not match the
    /// message's hash) the version is added all the same, as on every
    /// other replica, but this node has no file for it: activating it
    /// leaves this node un-ranked with the fault reported, until the file
    /// is restored (`restore_model_file`).
    pub fn apply_replicated_with(
        &self,
        stream_seq: u64,
        message: &[u8],
        model_file: Option<&[u8]>,
    ) -> Result<ReplicaApplied, EngineError> {
        let shared = &self.shared;
        let _turn = shared.replica.lock().map_err(|_| shared.poison("a replica applier panicked"))?;
        let applied = shared.read_state().stream_seq();
        if stream_seq <= applied {
            return Ok(ReplicaApplied::AlreadyApplied);
        }
        if stream_seq != applied + 1 {
            return Err(EngineError::StreamGap { applied, offered: stream_seq });
        }
        let bad = |reason: String| EngineError::BadRecord {
            lsn: 0,
            reason: format!("stream message {stream_seq}: {reason}"),
        };
        let (&kind, payload) = message.split_first().ok_or_else(|| bad("empty".into()))?;
        if !REPLICABLE_KINDS.contains(&kind) {
            return Err(bad(format!("record kind {kind} is not replicable")));
        }
        let record = LogRecord::decode(0, kind, payload).map_err(|err| bad(err.to_string()))?;
        if matches!(
            record,
            LogRecord::ModelAdded(_)
                | LogRecord::ModelActivated(_)
                | LogRecord::ModelRetired(_)
                | LogRecord::ModelRoutes(_)
        ) {
            let lsn = self.apply_replicated_model(stream_seq, record, model_file)?;
            return Ok(ReplicaApplied::Applied { lsn });
        }
        let record = LogRecord::Replicated { stream_seq, record: Box::new(record) };
        let lsn = shared.log_and_apply(&record, Vec::new(), recwal_wal::Durability::Never)?;
        Ok(ReplicaApplied::Applied { lsn })
    }

    /// The state as it stands, encoded as a snapshot file, for a node that
    /// joins or falls behind the stream's retention (docs/CLUSTER.md,
    /// "Joining and re-seeding"). Everything in it came from the stream,
    /// which is its durable copy, so it may hold records this node's own
    /// log has not synced yet. Refused once the engine stopped accepting
    /// writes (a panic may have left the state half updated).
    pub fn replica_snapshot(&self) -> Result<ReplicaSnapshot, EngineError> {
        let shared = &self.shared;
        if let Some(reason) = shared.poisoned.get() {
            return Err(EngineError::Poisoned(reason.clone()));
        }
        let state = shared.read_state();
        let bytes = crate::snapshot::encode_state(&state)?;
        Ok(ReplicaSnapshot {
            bytes,
            lsn: state.lsn_applied(),
            stream_seq: state.stream_seq(),
            digest: state.replica_digest(),
        })
    }

    /// Stream sequence of the last replicated message applied (0: none).
    pub fn stream_seq(&self) -> u64 {
        self.shared.read_state().stream_seq()
    }

    /// The stream sequence applied and the state's replica digest there
    /// (LSNs left out: they are each node's own), read under one lock.
    pub fn replica_position(&self) -> ReplicaPosition {
        let state = self.shared.read_state();
        ReplicaPosition { stream_seq: state.stream_seq(), digest: state.replica_digest() }
    }
}
