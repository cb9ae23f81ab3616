//! Without the ONNX Runtime library the engine still serves (un-ranked) and
//! says why; adding a model is a clear error, not a panic. (Its own test
//! binary: the runtime is loaded once per process.)
#![allow(clippy::unwrap_used)]

use recwal::{Engine, EngineConfig, EngineError, Event, EventKind, Ranking, RecommendRequest, Strategy};

#[test]
fn a_missing_runtime_is_an_error_and_answers_stay_unranked() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::default();
    config.wal = config.wal.segment_bytes(1 << 20).segments_initial(2);
    let missing = dir.path().join("no-such-libonnxruntime.so");
    config.models.runtime_path = Some(missing.clone());
    let engine = Engine::open(&dir.path().join("data"), config).unwrap();
    engine.ingest(Event::new("a", "x", EventKind::Click)).unwrap();
    engine.ingest(Event::new("b", "x", EventKind::Click)).unwrap();
    engine.ingest(Event::new("b", "y", EventKind::Click)).unwrap();
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/linear_v1.onnx")).unwrap();
    let lsn = engine.lsn_applied();
    match engine.add_model(&bytes) {
        Err(EngineError::ModelRuntime(reason)) => {
            assert!(reason.contains(&missing.display().to_string()), "{reason}");
            assert!(reason.contains("install-onnxruntime.sh"), "{reason}");
        }
        other => panic!("expected a runtime error: {other:?}"),
    }
    assert_eq!(engine.lsn_applied(), lsn);
    let answer = engine.recommend(&RecommendRequest::new("a", 1, Strategy::UserCf)).unwrap();
    assert_eq!(answer.ranking, Ranking::Unranked { reason: None });
    assert_eq!(answer.items[0].item, "y");
    let status = engine.model_status();
    assert!(status.runtime.unwrap_err().contains("no ONNX Runtime library"));
    assert_eq!(status.serving, None);
    drop(engine);

    // The failure is not cached: once the library is there (here: another
    // path), the next add loads it, without restarting the process.
    let installed = match std::env::var_os("ORT_DYLIB_PATH") {
        Some(path) if !path.is_empty() => std::path::PathBuf::from(path),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".onnxruntime/lib/libonnxruntime.so"),
    };
    let mut config = EngineConfig::default();
    config.wal = config.wal.segment_bytes(1 << 20).segments_initial(2);
    config.models.runtime_path = Some(installed);
    let engine = Engine::open(&dir.path().join("data"), config).unwrap();
    assert_eq!(engine.add_model(&bytes).unwrap().version, 1);
    assert!(engine.model_status().runtime.is_ok());
}
