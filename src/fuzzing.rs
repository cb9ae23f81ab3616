//! Bodies of the engine's fuzz targets (`fuzz/fuzz_targets/engine_*.rs`),
//! shared with `tests/fuzz_corpus.rs` so every committed seed also runs under
//! `cargo test`. Not part of the stable API.

use crate::config::DedupConfig;
use crate::record::LogRecord;
use crate::snapshot;
use crate::state::State;

/// `data[0]` is a record kind, the rest its payload: decoding must never
/// panic; a decoded record must re-encode to a record that decodes equal,
/// and applying it (twice, to two fresh states) must not panic and must give
/// the same digest.
pub fn fuzz_engine_record(data: &[u8]) {
    let Some((&kind, payload)) = data.split_first() else { return };
    let Ok(record) = LogRecord::decode(1, kind, payload) else { return };
    let Ok((kind_again, bytes)) = record.encode() else { return };
    assert_eq!(kind_again, kind);
    match LogRecord::decode(1, kind_again, &bytes) {
        Ok(again) => assert_eq!(format!("{again:?}"), format!("{record:?}")),
        Err(err) => panic!("a re-encoded record does not decode: {err}"),
    }
    let config = DedupConfig::default();
    let (mut first, mut second) = (State::default(), State::default());
    first.apply(1, &record, &config);
    second.apply(1, &record, &config);
    first.apply(2, &record, &config);
    second.apply(2, &record, &config);
    assert_eq!(first.digest(), second.digest());
}

/// Arbitrary bytes as a snapshot file: decoding and rebuilding the state
/// must never panic; a state that loads must write a snapshot that loads to
/// the same digest.
pub fn fuzz_snapshot(data: &[u8]) {
    // The body alone, past the CRCs a fuzzer cannot forge: whatever decodes
    // must be either refused by `from_snapshot` or a state that works.
    if let Ok(body) = postcard::from_bytes::<crate::state::SnapshotBody>(data) {
        if let Ok(state) = State::from_snapshot(body) {
            let _ = state.digest();
            for user in 0..state.users().len().min(4) as u32 {
                let config = crate::config::EngineConfig::default();
                for strategy in crate::recommend::Strategy::ALL {
                    let _ = crate::recommend::score_all(&state, &config, user, strategy);
                }
            }
        }
    }
    let Ok(body) = snapshot::decode(data) else { return };
    let Ok(state) = State::from_snapshot(body) else { return };
    let Ok(bytes) = snapshot::encode_state(&state) else {
        return;
    };
    let reloaded = snapshot::decode(&bytes).map_err(|err| err.to_string()).and_then(State::from_snapshot);
    match reloaded {
        Ok(reloaded) => assert_eq!(reloaded.digest(), state.digest()),
        Err(err) => panic!("a snapshot we wrote does not load: {err}"),
    }
}

/// Seeds for both targets: a few valid records and snapshots.
pub fn seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    use crate::record::{
        EventsV1, ExpireFeedbackV1, ForgetUserV1, ItemHiddenV1, ItemUpsertV1, LoggedEvent, LoggedKind, LoggedLabel,
        ModelActivatedV1, ModelAddedV1, ModelRetiredV1, RemoveItemV1, UserUpsertV1,
    };
    let events = LogRecord::Events(EventsV1 {
        ingested_ms: 1_700_000_000_000,
        events: vec![
            LoggedEvent {
                user: "u1",
                item: "i1",
                kind: LoggedKind::Rating,
                weight: 4.0,
                timestamp_ms: 1,
                event_id: Some("e1"),
            },
            LoggedEvent {
                user: "u2",
                item: "i1",
                kind: LoggedKind::View,
                weight: 1.0,
                timestamp_ms: 2,
                event_id: None,
            },
            LoggedEvent {
                user: "u2",
                item: "i2",
                kind: LoggedKind::Custom,
                weight: 3.0,
                timestamp_ms: 3,
                event_id: Some("e2"),
            },
        ],
    });
    let replicated_events = events.clone();
    let records = [
        events,
        LogRecord::ForgetUser(ForgetUserV1 { user: "u1" }),
        LogRecord::RemoveItem(RemoveItemV1 { item: "i2" }),
        LogRecord::ModelAdded(ModelAddedV1 { version: 1, sha256: [7; 32], bytes: 339, added_ms: 5 }),
        LogRecord::ModelAdded(ModelAddedV1 { version: 2, sha256: [8; 32], bytes: 400, added_ms: 6 }),
        LogRecord::ModelActivated(ModelActivatedV1 { version: 1, sha256: [7; 32], at_ms: 7, rollback: false }),
        LogRecord::ModelActivated(ModelActivatedV1 { version: 2, sha256: [8; 32], at_ms: 8, rollback: false }),
        LogRecord::ModelActivated(ModelActivatedV1 { version: 1, sha256: [7; 32], at_ms: 9, rollback: true }),
        LogRecord::ModelRetired(ModelRetiredV1 { version: 2 }),
        LogRecord::ItemUpsert(ItemUpsertV1 {
            item: "i1",
            categories: vec!["drama", "war"],
            labels: vec![("brand", LoggedLabel::Text("acme")), ("price", LoggedLabel::Number(9.5))],
            hidden: false,
            timestamp_ms: Some(5),
            expires_ms: Some(50),
        }),
        LogRecord::ItemUpsert(ItemUpsertV1 {
            item: "i9",
            categories: vec!["war"],
            labels: Vec::new(),
            hidden: true,
            timestamp_ms: None,
            expires_ms: None,
        }),
        LogRecord::ItemHidden(ItemHiddenV1 { item: "i1", hidden: true }),
        LogRecord::ItemHidden(ItemHiddenV1 { item: "i1", hidden: false }),
        LogRecord::UserUpsert(UserUpsertV1 { user: "u2", labels: vec![("age", LoggedLabel::Number(30.0))] }),
        LogRecord::ExpireFeedback(ExpireFeedbackV1 { before_ms: 2 }),
        LogRecord::ItemModelActivated(crate::record::ItemModelActivatedV1 {
            version: 1,
            sha256: [3; 32],
            bytes: 64,
            n_items: 2,
            lambda_bits: 500f32.to_bits(),
            input: crate::config::ItemModelInput::Value,
            lsn_trained: 1,
            at_ms: 5,
        }),
        LogRecord::ModelRoutes(crate::record::ModelRoutesV1 {
            canary: Some(crate::record::CanaryRouteV1 { version: 2, sha256: [5; 32], per_mille: 100 }),
            shadow: Some(crate::record::ShadowRouteV1 { version: 3, sha256: [6; 32] }),
            at_ms: 9,
        }),
        // A replica's record: the stream's messages 1 and 2 (events, then
        // an item upsert), wrapped as kind 12.
        LogRecord::Replicated { stream_seq: 1, record: Box::new(replicated_events) },
        LogRecord::Replicated {
            stream_seq: 2,
            record: Box::new(LogRecord::ItemHidden(ItemHiddenV1 { item: "i1", hidden: true })),
        },
    ];
    let mut record_seeds = Vec::new();
    let mut state = State::default();
    let mut snapshot_seeds = Vec::new();
    for (at, record) in records.iter().enumerate() {
        if let Ok((kind, payload)) = record.encode() {
            let mut seed = vec![kind];
            seed.extend_from_slice(&payload);
            record_seeds.push(seed);
        }
        state.apply(at as u64 + 1, record, &DedupConfig::default());
        if let Ok(bytes) = snapshot::encode_state(&state) {
            snapshot_seeds.push(bytes);
        }
    }
    (record_seeds, snapshot_seeds)
}
