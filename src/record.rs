//! What the engine writes into the log: one WAL record per state change,
//! its kind byte naming type and version, its payload postcard-encoded.
//! `docs/RECORDS.md` lists the kinds; a kind this build does not know stops
//! replay with an error instead of being skipped.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// The kind as logged: a rating's value travels as the event's weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoggedKind {
    /// See `EventKind`.
    View,
    /// See `EventKind`.
    Click,
    /// See `EventKind`.
    Cart,
    /// See `EventKind`.
    Purchase,
    /// See `EventKind`; the weight is the rating.
    Rating,
    /// A custom kind; its name is not needed to rebuild state.
    Custom,
}

/// A batch of events, all-or-nothing (`EventsV1`).
pub const KIND_EVENTS_V1: u8 = 1;
/// `forget_user` (`ForgetUserV1`).
pub const KIND_FORGET_USER_V1: u8 = 2;
/// `remove_item` (`RemoveItemV1`).
pub const KIND_REMOVE_ITEM_V1: u8 = 3;

/// A model version was added (`ModelAddedV1`).
pub const KIND_MODEL_ADDED_V1: u8 = 4;
/// A model version was activated (`ModelActivatedV1`).
pub const KIND_MODEL_ACTIVATED_V1: u8 = 5;
/// A model version was retired and its file deleted (`ModelRetiredV1`).
pub const KIND_MODEL_RETIRED_V1: u8 = 6;

/// An item's metadata was set (`ItemUpsertV1`).
pub const KIND_ITEM_UPSERT_V1: u8 = 7;
/// An item was hidden or shown again (`ItemHiddenV1`).
pub const KIND_ITEM_HIDDEN_V1: u8 = 8;
/// A user's metadata was set (`UserUpsertV1`).
pub const KIND_USER_UPSERT_V1: u8 = 9;
/// Feedback older than a time was expired (`ExpireFeedbackV1`).
pub const KIND_EXPIRE_FEEDBACK_V1: u8 = 10;
/// An item model (EASE) was trained, stored and activated
/// (`ItemModelActivatedV1`).
pub const KIND_ITEM_MODEL_ACTIVATED_V1: u8 = 11;
/// A record taken from the replication stream, with its stream sequence
/// (`ReplicatedV1`; docs/CLUSTER.md).
pub const KIND_REPLICATED_V1: u8 = 12;
/// The model versions served beside the active one were set
/// (`ModelRoutesV1`: canary, shadow).
pub const KIND_MODEL_ROUTES_V1: u8 = 13;

/// Kind 1: events ingested by one call, applied in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventsV1<'a> {
    /// Engine clock when the call was accepted; drives the dedup window.
    pub ingested_ms: i64,
    /// The events.
    #[serde(borrow)]
    pub events: Vec<LoggedEvent<'a>>,
}

/// One event inside `EventsV1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggedEvent<'a> {
    /// External user id.
    pub user: &'a str,
    /// External item id.
    pub item: &'a str,
    /// Kind.
    pub kind: LoggedKind,
    /// Resolved weight (a rating's value).
    pub weight: f32,
    /// Event time, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// Client event id, if any.
    pub event_id: Option<&'a str>,
}

/// Kind 2: remove a user's contribution from all derived state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForgetUserV1<'a> {
    /// External user id.
    pub user: &'a str,
}

/// Kind 3: never recommend an item again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoveItemV1<'a> {
    /// External item id.
    pub item: &'a str,
}

/// Kind 4: a model file was stored in the data directory and validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAddedV1 {
    /// Version number given to it.
    pub version: u32,
    /// SHA-256 of the file.
    pub sha256: [u8; 32],
    /// File size.
    pub bytes: u64,
    /// Engine clock when it was added (ms since the Unix epoch).
    pub added_ms: i64,
}

/// Kind 5: a model version became the active one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelActivatedV1 {
    /// The version.
    pub version: u32,
    /// Its SHA-256, checked again against the file on every restart.
    pub sha256: [u8; 32],
    /// Engine clock when it was activated.
    pub at_ms: i64,
    /// A rollback to the version active before the current one.
    pub rollback: bool,
}

/// Kind 6: a model version left the catalog (retention); its file is gone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRetiredV1 {
    /// The version.
    pub version: u32,
}

/// Kind 13: the model versions that get requests besides the active one,
/// all of it (each record replaces the previous routing): a canary that
/// ranks the answers of a share of users, chosen by a hash of the user id
/// (docs/MODELS.md), and a shadow scored beside every ranked answer
/// without changing it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRoutesV1 {
    /// The canary, if any.
    pub canary: Option<CanaryRouteV1>,
    /// The shadow, if any.
    pub shadow: Option<ShadowRouteV1>,
    /// Engine clock when it was set.
    pub at_ms: i64,
}

/// A canary version and its share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryRouteV1 {
    /// The version.
    pub version: u32,
    /// Its SHA-256, as for an activation.
    pub sha256: [u8; 32],
    /// Users whose bucket (0–999) is below this get the canary.
    pub per_mille: u16,
}

/// A shadow version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowRouteV1 {
    /// The version.
    pub version: u32,
    /// Its SHA-256.
    pub sha256: [u8; 32],
}

/// A label's value as logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LoggedLabel<'a> {
    /// Text.
    Text(&'a str),
    /// A finite number.
    Number(f64),
}

/// Kind 7: an item's metadata, replacing what it had (validated:
/// `catalogue::item_record`). The item joins the catalogue if new.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemUpsertV1<'a> {
    /// External item id.
    pub item: &'a str,
    /// Distinct categories.
    #[serde(borrow)]
    pub categories: Vec<&'a str>,
    /// Labels, sorted by key, keys distinct.
    #[serde(borrow)]
    pub labels: Vec<(&'a str, LoggedLabel<'a>)>,
    /// Hidden from every read.
    pub hidden: bool,
    /// Published / valid from, ms since the Unix epoch.
    pub timestamp_ms: Option<i64>,
    /// Not returned from this time on.
    pub expires_ms: Option<i64>,
}

/// Kind 8: hide an item from every read, or show it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemHiddenV1<'a> {
    /// External item id.
    pub item: &'a str,
    /// Hidden (true) or shown (false).
    pub hidden: bool,
}

/// Kind 9: a user's labels, replacing what they had.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserUpsertV1<'a> {
    /// External user id.
    pub user: &'a str,
    /// Labels, sorted by key, keys distinct.
    #[serde(borrow)]
    pub labels: Vec<(&'a str, LoggedLabel<'a>)>,
}

/// Kind 10: every (user, item) interaction whose newest event is older than
/// `before_ms` (compared in whole seconds) leaves the state, with its
/// events' share of popularity. Written on the engine's schedule from the
/// configured time-to-live, so a replay expires exactly what the live
/// engine did, whatever the clock says then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireFeedbackV1 {
    /// The cutoff, ms since the Unix epoch.
    pub before_ms: i64,
}

/// Kind 12, as encoded: a record a replica took from the replication stream
/// (docs/CLUSTER.md), the stream's sequence number of its message, and the
/// record itself (kind byte and payload, as the node that validated it
/// encoded it). Only some kinds travel this way (`REPLICABLE_KINDS`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ReplicatedV1<'a> {
    stream_seq: u64,
    kind: u8,
    payload: &'a [u8],
}

/// The kinds a replicated record may wrap: the data changes (events,
/// forget, remove, catalogue) and the model registry's (add, activate,
/// retire, routes; the model file itself travels through an object-store bucket,
/// docs/CLUSTER.md). The feedback expiry (written on a node's own clock)
/// and the item models (trained by each node) are not replicated.
pub const REPLICABLE_KINDS: [u8; 10] = [
    KIND_EVENTS_V1,
    KIND_FORGET_USER_V1,
    KIND_REMOVE_ITEM_V1,
    KIND_MODEL_ADDED_V1,
    KIND_MODEL_ACTIVATED_V1,
    KIND_MODEL_RETIRED_V1,
    KIND_ITEM_UPSERT_V1,
    KIND_ITEM_HIDDEN_V1,
    KIND_USER_UPSERT_V1,
    KIND_MODEL_ROUTES_V1,
];

/// Kind 11: an item model (the `ease` strategy's weights) was trained from
/// the state at `lsn_trained`, stored as `models/im<version>.bin` and
/// becomes the active one; the previous one's file is deleted after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemModelActivatedV1 {
    /// Version number (one more than the previous item model's).
    pub version: u32,
    /// SHA-256 of the artefact file, checked again on every restart.
    pub sha256: [u8; 32],
    /// The file's size.
    pub bytes: u64,
    /// Items it covers (the state's dense ids `0..n_items`).
    pub n_items: u32,
    /// λ, as f32 bits.
    pub lambda_bits: u32,
    /// What X held.
    pub input: crate::config::ItemModelInput,
    /// `lsn_applied` of the state it was trained on.
    pub lsn_trained: u64,
    /// Engine clock when it was activated.
    pub at_ms: i64,
}

/// A decoded record, borrowing from the payload.
#[derive(Clone, Debug, PartialEq)]
pub enum LogRecord<'a> {
    /// Kind 1.
    Events(EventsV1<'a>),
    /// Kind 2.
    ForgetUser(ForgetUserV1<'a>),
    /// Kind 3.
    RemoveItem(RemoveItemV1<'a>),
    /// Kind 4.
    ModelAdded(ModelAddedV1),
    /// Kind 5.
    ModelActivated(ModelActivatedV1),
    /// Kind 6.
    ModelRetired(ModelRetiredV1),
    /// Kind 7.
    ItemUpsert(ItemUpsertV1<'a>),
    /// Kind 8.
    ItemHidden(ItemHiddenV1<'a>),
    /// Kind 9.
    UserUpsert(UserUpsertV1<'a>),
    /// Kind 10.
    ExpireFeedback(ExpireFeedbackV1),
    /// Kind 11.
    ItemModelActivated(ItemModelActivatedV1),
    /// Kind 13.
    ModelRoutes(ModelRoutesV1),
    /// Kind 12: `record` was the stream's message `stream_seq`.
    Replicated {
        /// The message's sequence number in the stream.
        stream_seq: u64,
        /// The record it carried (never itself `Replicated`).
        record: Box<LogRecord<'a>>,
    },
}

impl<'a> LogRecord<'a> {
    /// The kind byte and the payload to append.
    pub fn encode(&self) -> Result<(u8, Vec<u8>), EngineError> {
        let encoded = match self {
            LogRecord::Events(body) => (KIND_EVENTS_V1, postcard::to_stdvec(body)),
            LogRecord::ForgetUser(body) => (KIND_FORGET_USER_V1, postcard::to_stdvec(body)),
            LogRecord::RemoveItem(body) => (KIND_REMOVE_ITEM_V1, postcard::to_stdvec(body)),
            LogRecord::ModelAdded(body) => (KIND_MODEL_ADDED_V1, postcard::to_stdvec(body)),
            LogRecord::ModelActivated(body) => (KIND_MODEL_ACTIVATED_V1, postcard::to_stdvec(body)),
            LogRecord::ModelRetired(body) => (KIND_MODEL_RETIRED_V1, postcard::to_stdvec(body)),
            LogRecord::ItemUpsert(body) => (KIND_ITEM_UPSERT_V1, postcard::to_stdvec(body)),
            LogRecord::ItemHidden(body) => (KIND_ITEM_HIDDEN_V1, postcard::to_stdvec(body)),
            LogRecord::UserUpsert(body) => (KIND_USER_UPSERT_V1, postcard::to_stdvec(body)),
            LogRecord::ExpireFeedback(body) => (KIND_EXPIRE_FEEDBACK_V1, postcard::to_stdvec(body)),
            LogRecord::Replicated { stream_seq, record } => {
                let (kind, payload) = record.encode()?;
                let body = ReplicatedV1 { stream_seq: *stream_seq, kind, payload: &payload };
                (KIND_REPLICATED_V1, postcard::to_stdvec(&body))
            }
            LogRecord::ItemModelActivated(body) => (KIND_ITEM_MODEL_ACTIVATED_V1, postcard::to_stdvec(body)),
            LogRecord::ModelRoutes(body) => (KIND_MODEL_ROUTES_V1, postcard::to_stdvec(body)),
        };
        let (kind, payload) = encoded;
        let payload = payload.map_err(|err| EngineError::invalid("record", format!("cannot encode: {err}")))?;
        Ok((kind, payload))
    }

    /// Decodes a record read back from the log at `lsn`.
    pub fn decode(lsn: u64, kind: u8, payload: &'a [u8]) -> Result<LogRecord<'a>, EngineError> {
        let bad = |err: postcard::Error| EngineError::BadRecord { lsn, reason: format!("kind {kind}: {err}") };
        match kind {
            KIND_EVENTS_V1 => postcard::from_bytes(payload).map(LogRecord::Events).map_err(bad),
            KIND_FORGET_USER_V1 => postcard::from_bytes(payload).map(LogRecord::ForgetUser).map_err(bad),
            KIND_REMOVE_ITEM_V1 => postcard::from_bytes(payload).map(LogRecord::RemoveItem).map_err(bad),
            KIND_MODEL_ADDED_V1 => postcard::from_bytes(payload).map(LogRecord::ModelAdded).map_err(bad),
            KIND_MODEL_ACTIVATED_V1 => postcard::from_bytes(payload).map(LogRecord::ModelActivated).map_err(bad),
            KIND_MODEL_RETIRED_V1 => postcard::from_bytes(payload).map(LogRecord::ModelRetired).map_err(bad),
            KIND_ITEM_UPSERT_V1 => postcard::from_bytes(payload).map(LogRecord::ItemUpsert).map_err(bad),
            KIND_ITEM_HIDDEN_V1 => postcard::from_bytes(payload).map(LogRecord::ItemHidden).map_err(bad),
            KIND_USER_UPSERT_V1 => postcard::from_bytes(payload).map(LogRecord::UserUpsert).map_err(bad),
            KIND_EXPIRE_FEEDBACK_V1 => postcard::from_bytes(payload).map(LogRecord::ExpireFeedback).map_err(bad),
            KIND_ITEM_MODEL_ACTIVATED_V1 => {
                postcard::from_bytes(payload).map(LogRecord::ItemModelActivated).map_err(bad)
            }
            KIND_MODEL_ROUTES_V1 => postcard::from_bytes(payload).map(LogRecord::ModelRoutes).map_err(bad),
            KIND_REPLICATED_V1 => {
                let body: ReplicatedV1<'a> = postcard::from_bytes(payload).map_err(bad)?;
                if !REPLICABLE_KINDS.contains(&body.kind) {
                    return Err(EngineError::BadRecord {
                        lsn,
                        reason: format!("kind {kind}: a replicated record of kind {} is not replicable", body.kind),
                    });
                }
                let record = Box::new(LogRecord::decode(lsn, body.kind, body.payload)?);
                Ok(LogRecord::Replicated { stream_seq: body.stream_seq, record })
            }
            other => Err(EngineError::BadRecord {
                lsn,
                reason: format!("unknown record kind {other} (written by a newer recwal?)"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() -> Result<(), EngineError> {
        let record = LogRecord::Events(EventsV1 {
            ingested_ms: 42,
            events: vec![LoggedEvent {
                user: "u1",
                item: "i9",
                kind: LoggedKind::Rating,
                weight: 4.5,
                timestamp_ms: 7,
                event_id: Some("e1"),
            }],
        });
        let (kind, payload) = record.encode()?;
        assert_eq!(kind, KIND_EVENTS_V1);
        assert_eq!(LogRecord::decode(1, kind, &payload)?, record);
        let forget = LogRecord::ForgetUser(ForgetUserV1 { user: "u1" });
        let (kind, payload) = forget.encode()?;
        assert_eq!(LogRecord::decode(2, kind, &payload)?, forget);
        let models = [
            LogRecord::ModelAdded(ModelAddedV1 { version: 3, sha256: [7; 32], bytes: 99, added_ms: 5 }),
            LogRecord::ModelActivated(ModelActivatedV1 { version: 3, sha256: [7; 32], at_ms: 6, rollback: true }),
            LogRecord::ModelRetired(ModelRetiredV1 { version: 2 }),
        ];
        for (at, record) in models.into_iter().enumerate() {
            let (kind, payload) = record.encode()?;
            assert_eq!(kind, KIND_MODEL_ADDED_V1 + at as u8);
            assert_eq!(LogRecord::decode(3, kind, &payload)?, record);
        }
        let catalogue = [
            LogRecord::ItemUpsert(ItemUpsertV1 {
                item: "i9",
                categories: vec!["drama", "war"],
                labels: vec![("brand", LoggedLabel::Text("acme")), ("price", LoggedLabel::Number(9.5))],
                hidden: false,
                timestamp_ms: Some(5),
                expires_ms: None,
            }),
            LogRecord::ItemHidden(ItemHiddenV1 { item: "i9", hidden: true }),
            LogRecord::UserUpsert(UserUpsertV1 { user: "u1", labels: vec![("age", LoggedLabel::Number(30.0))] }),
            LogRecord::ExpireFeedback(ExpireFeedbackV1 { before_ms: 1_700_000_000_000 }),
        ];
        for (at, record) in catalogue.into_iter().enumerate() {
            let (kind, payload) = record.encode()?;
            assert_eq!(kind, KIND_ITEM_UPSERT_V1 + at as u8);
            assert_eq!(LogRecord::decode(4, kind, &payload)?, record);
        }
        Ok(())
    }

    #[test]
    fn replicated_records_round_trip_and_wrap_only_replicable_kinds() -> Result<(), EngineError> {
        let inner = LogRecord::Events(EventsV1 {
            ingested_ms: 42,
            events: vec![LoggedEvent {
                user: "u1",
                item: "i9",
                kind: LoggedKind::Click,
                weight: 1.0,
                timestamp_ms: 7,
                event_id: Some("e1"),
            }],
        });
        let record = LogRecord::Replicated { stream_seq: 77, record: Box::new(inner) };
        let (kind, payload) = record.encode()?;
        assert_eq!(kind, KIND_REPLICATED_V1);
        assert_eq!(LogRecord::decode(5, kind, &payload)?, record);
        // A node-local record (the feedback expiry, on the node's own
        // clock) or another replicated record inside is refused.
        let local = LogRecord::ExpireFeedback(ExpireFeedbackV1 { before_ms: 2 });
        let nested = [local, record];
        for inner in nested {
            let (inner_kind, inner_payload) = inner.encode()?;
            let body = ReplicatedV1 { stream_seq: 1, kind: inner_kind, payload: &inner_payload };
            let payload = postcard::to_stdvec(&body).map_err(|err| EngineError::invalid("test", err.to_string()))?;
            assert!(matches!(
                LogRecord::decode(6, KIND_REPLICATED_V1, &payload),
                Err(EngineError::BadRecord { lsn: 6, .. })
            ));
        }
        Ok(())
    }

    #[test]
    fn unknown_kinds_and_garbage_are_errors() {
        assert!(matches!(LogRecord::decode(3, 200, b""), Err(EngineError::BadRecord { lsn: 3, .. })));
        assert!(matches!(LogRecord::decode(4, KIND_EVENTS_V1, &[0xff; 3]), Err(EngineError::BadRecord { .. })));
    }
}
