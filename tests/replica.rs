//! The engine's half of the replicas (docs/CLUSTER.md): stream messages are
//! applied in sequence order, once, never past a gap; the stream sequence
//! survives a restart (replay and snapshot); replicas fed the same stream
//! agree on the replica digest whatever their local log history.

use recwal::{Engine, EngineConfig, EngineError, Event, EventKind, ReplicaApplied};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn message(engine: &Engine, events: &[Event]) -> Result<Vec<u8>, EngineError> {
    engine.replica_events(events)
}

fn clicks(from: usize, n: usize) -> Vec<Event> {
    (from..from + n)
        .map(|at| {
            Event::new(format!("u{}", at % 7), format!("i{}", at % 11), EventKind::Click).with_id(format!("e{at}"))
        })
        .collect()
}

#[test]
fn messages_apply_in_order_once_and_never_past_a_gap() -> TestResult {
    let dir = tempfile::tempdir()?;
    let engine = Engine::open(dir.path(), EngineConfig::default())?;
    let first = message(&engine, &clicks(0, 3))?;
    let second = message(&engine, &clicks(3, 2))?;
    // Validating wrote nothing.
    assert_eq!((engine.lsn_applied(), engine.stream_seq(), engine.stats().events_applied), (0, 0, 0));
    // Sequence 2 before 1: a gap, nothing applied.
    let gap = engine.apply_replicated(2, &second);
    assert!(matches!(gap, Err(EngineError::StreamGap { applied: 0, offered: 2 })), "{gap:?}");
    assert_eq!((engine.lsn_applied(), engine.stream_seq()), (0, 0));
    assert!(matches!(engine.apply_replicated(1, &first)?, ReplicaApplied::Applied { lsn: 1 }));
    assert!(matches!(engine.apply_replicated(2, &second)?, ReplicaApplied::Applied { lsn: 2 }));
    // A redelivery is ignored.
    assert_eq!(engine.apply_replicated(1, &first)?, ReplicaApplied::AlreadyApplied);
    assert_eq!(engine.apply_replicated(2, &second)?, ReplicaApplied::AlreadyApplied);
    assert_eq!((engine.stream_seq(), engine.stats().events_applied), (2, 5));
    // Sequence 4 after 2: refused.
    assert!(matches!(engine.apply_replicated(4, &first), Err(EngineError::StreamGap { applied: 2, offered: 4 })));
    assert_eq!(engine.stats().events_applied, 5);
    Ok(())
}

#[test]
fn an_event_id_the_stream_carries_twice_is_applied_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let engine = Engine::open(dir.path(), EngineConfig::default())?;
    let once = message(&engine, &clicks(0, 1))?;
    // The same event id again, in a batch with a new one and a repeat inside it.
    let mut again = clicks(0, 1);
    again.extend(clicks(1, 1));
    again.extend(clicks(1, 1));
    let again = message(&engine, &again)?;
    engine.apply_replicated(1, &once)?;
    engine.apply_replicated(2, &again)?;
    assert_eq!(engine.stats().events_applied, 2);
    assert_eq!(engine.interactions("u0")?.iter().map(|pair| pair.events).sum::<u32>(), 1);
    Ok(())
}

#[test]
fn invalid_events_and_foreign_messages_are_refused_without_writing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let engine = Engine::open(dir.path(), EngineConfig::default())?;
    let bad = Event::new("", "i1", EventKind::Click);
    assert!(matches!(engine.replica_events(&[bad]), Err(EngineError::Invalid { .. })));
    let rating = Event::new("u1", "i1", EventKind::Rating(f32::NAN));
    assert!(matches!(engine.replica_events(&[rating]), Err(EngineError::Invalid { .. })));
    for foreign in [&b""[..], &[4u8, 1, 2][..], &[1u8, 0xff, 0xff, 0xff][..], &[12u8, 1, 1, 0][..]] {
        let refused = engine.apply_replicated(1, foreign);
        assert!(matches!(refused, Err(EngineError::BadRecord { .. })), "{foreign:?}: {refused:?}");
    }
    assert_eq!((engine.lsn_applied(), engine.stream_seq()), (0, 0));
    Ok(())
}

#[test]
fn the_stream_sequence_survives_replay_and_snapshots_and_digests_agree() -> TestResult {
    let stream: Vec<Vec<u8>> = {
        let dir = tempfile::tempdir()?;
        let engine = Engine::open(dir.path(), EngineConfig::default())?;
        (0..20).map(|at| message(&engine, &clicks(at * 3, 3 + at % 2))).collect::<Result<_, _>>()?
    };
    // Replica a: straight through. Replica b: a local ingest-free history
    // with a checkpoint and two restarts midway (other LSNs, snapshots).
    let dir_a = tempfile::tempdir()?;
    let a = Engine::open(dir_a.path(), EngineConfig::default())?;
    for (at, message) in stream.iter().enumerate() {
        a.apply_replicated(at as u64 + 1, message)?;
    }
    let dir_b = tempfile::tempdir()?;
    let mut b = Engine::open(dir_b.path(), EngineConfig::default())?;
    for (at, message) in stream.iter().enumerate() {
        let seq = at as u64 + 1;
        b.apply_replicated(seq, message)?;
        if seq == 7 {
            b.checkpoint()?;
        }
        if seq == 7 || seq == 13 {
            b.close()?;
            b = Engine::open(dir_b.path(), EngineConfig::default())?;
            assert_eq!(b.stream_seq(), seq, "after a restart at {seq}");
            // What it applied is not applied again.
            assert_eq!(b.apply_replicated(seq, message)?, ReplicaApplied::AlreadyApplied);
        }
    }
    assert_eq!(a.replica_position(), b.replica_position());
    assert_eq!(a.replica_position().stream_seq, 20);
    // Restart from a snapshot alone covering everything.
    b.checkpoint()?;
    b.close()?;
    let b = Engine::open(dir_b.path(), EngineConfig::default())?;
    assert_eq!(b.replica_position(), a.replica_position());
    // A different stream gives a different digest.
    let dir_c = tempfile::tempdir()?;
    let c = Engine::open(dir_c.path(), EngineConfig::default())?;
    for (at, message) in stream.iter().take(19).enumerate() {
        c.apply_replicated(at as u64 + 1, message)?;
    }
    c.apply_replicated(20, &stream[0])?;
    assert_ne!(c.replica_position().digest, a.replica_position().digest);
    Ok(())
}

#[test]
fn a_log_whose_stream_messages_go_back_is_refused_at_open_not_skipped() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut config = EngineConfig::default();
    config.checkpoint.disable_automatic();
    {
        let engine = Engine::open(dir.path(), config.clone())?;
        engine.apply_replicated(1, &message(&engine, &clicks(0, 2))?)?;
        engine.apply_replicated(2, &message(&engine, &clicks(2, 2))?)?;
        engine.close()?;
    }
    // The log's last record (stream message 2) written again behind it, as
    // a damaged or foreign log could hold it, CRC and all.
    let wal = recwal::wal::Wal::open(&dir.path().join("wal"), config.wal.clone())?;
    let (kind, payload) = {
        let last = wal.read_from(1)?.last().ok_or("an empty log")??;
        (last.kind(), last.payload().to_vec())
    };
    assert_eq!(kind, recwal::record::KIND_REPLICATED_V1);
    wal.append_with(kind, &payload, recwal::Durability::Always)?.wait()?;
    wal.close()?;
    let refused = Engine::open(dir.path(), config).err().ok_or("opened a log that breaks stream order")?;
    let EngineError::BadRecord { lsn, reason } = refused else { return Err(format!("{refused:?}").into()) };
    assert_eq!(lsn, 3);
    assert!(reason.contains("stream message 2 after message 2"), "{reason}");
    Ok(())
}
