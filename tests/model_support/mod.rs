//! Shared by the model tests: the fixtures (`tests/fixtures/models`, made
//! by `scripts/make-model-fixtures.py`), their weights, the runtime path and
//! a small seeded engine.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use recwal::{Engine, EngineConfig, Event, EventKind};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(format!("{name}.onnx"))
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

/// The ONNX Runtime library: `$ORT_DYLIB_PATH`, else where
/// `scripts/install-onnxruntime.sh` puts it. The tests need it (the README's
/// test command installs it); they never skip for want of it.
pub fn runtime_path() -> PathBuf {
    let path = match std::env::var_os("ORT_DYLIB_PATH") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".onnxruntime/lib/libonnxruntime.so"),
    };
    assert!(
        path.is_file(),
        "no ONNX Runtime library at {}: run scripts/install-onnxruntime.sh (the README's test command does)",
        path.display()
    );
    path
}

/// `(weights, bias)` of a linear fixture, from `weights.json`.
pub fn weights(name: &str) -> (Vec<f32>, f32) {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/weights.json"))
            .unwrap();
    // The file is small and regular: {"name": {"bias": b, "weights": [..]}, ...}.
    let at = text.find(&format!("\"{name}\"")).unwrap();
    let entry = &text[at..];
    let bias_at = entry.find("\"bias\":").unwrap() + 7;
    let bias: f32 = entry[bias_at..].split(',').next().unwrap().trim().parse().unwrap();
    let open = entry.find('[').unwrap();
    let close = entry.find(']').unwrap();
    let weights = entry[open + 1..close].split(',').map(|w| w.trim().parse().unwrap()).collect();
    (weights, bias)
}

/// What the linear fixture `name` scores for `features`.
pub fn linear_score(name: &str, features: &[f32]) -> f32 {
    let (weights, bias) = weights(name);
    features.iter().zip(&weights).map(|(f, w)| f * w).sum::<f32>() + bias
}

pub fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.segment_bytes(1 << 20).segments_initial(2).segments_max(8);
    config.models.runtime_path = Some(runtime_path());
    config
}

/// 12 users over 30 items; "heavy" has 25 items (ln 26 > 3: the failing
/// fixture fails on it), "light" has 3.
pub fn seed(engine: &Engine) {
    let mut events = Vec::new();
    for user in 0..12u32 {
        for step in 0..6u32 {
            let item = (user * 7 + step * 5) % 30;
            events.push(Event::new(format!("u{user}"), format!("i{item}"), EventKind::Rating(1.0 + (step % 5) as f32)));
        }
    }
    for item in 0..25u32 {
        events.push(Event::new("heavy", format!("i{item}"), EventKind::Click));
    }
    for item in [1u32, 2, 3] {
        events.push(Event::new("light", format!("i{item}"), EventKind::Purchase));
    }
    engine.ingest_batch(&events).unwrap();
}
