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
    engine.ingest_batch(&seed_events()).unwrap();
}

/// `seed`'s events.
pub fn seed_events() -> Vec<Event> {
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
    events
}

/// The heavy fixtures' layers, as `scripts/make-model-fixtures.py` builds
/// them (`MLP_*`): 6 → 256 → 256 → 256 → 1, every weight an LCG integer in
/// [-1000, 1000] times a float32 scale.
const MLP_DIMS: [usize; 5] = [6, 256, 256, 256, 1];
const MLP_W_SCALES: [f32; 4] = [0.001, 0.0002, 0.0002, 0.001];
const MLP_B_SCALE: f32 = 0.0001;

/// The script's `lcg_values(count, seed)`.
fn lcg_values(count: usize, seed: u64) -> Vec<i32> {
    let mut x = seed;
    (0..count)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 33) % 2001) as i32 - 1000
        })
        .collect()
}

/// `(W row-major [fan_in × fan_out], b)` per layer.
type Layers = Vec<(Vec<f32>, Vec<f32>)>;

/// The layers of the MLP fixture `name`.
fn mlp_layers(name: &str) -> Layers {
    let seed: u64 = match name {
        "mlp_v1" => 11,
        "mlp_v2" => 23,
        other => panic!("no MLP fixture {other}"),
    };
    (0..MLP_DIMS.len() - 1)
        .map(|layer| {
            let (fan_in, fan_out) = (MLP_DIMS[layer], MLP_DIMS[layer + 1]);
            let tensor = seed * 16 + 2 * layer as u64;
            let w = lcg_values(fan_in * fan_out, tensor).into_iter().map(|v| v as f32 * MLP_W_SCALES[layer]).collect();
            let b = lcg_values(fan_out, tensor + 1).into_iter().map(|v| v as f32 * MLP_B_SCALE).collect();
            (w, b)
        })
        .collect()
}

/// What the MLP fixture `name` scores for `features` (computed in f64 from
/// the same f32 weights; ONNX Runtime's f32 result agrees to ~1e-6 relative).
pub fn mlp_score(name: &str, features: &[f32]) -> f32 {
    static LAYERS: std::sync::OnceLock<[Layers; 2]> = std::sync::OnceLock::new();
    let layers = LAYERS.get_or_init(|| [mlp_layers("mlp_v1"), mlp_layers("mlp_v2")]);
    let layers = &layers[usize::from(name == "mlp_v2")];
    let mut x: Vec<f64> = features.iter().map(|&f| f64::from(f)).collect();
    for (layer, (w, b)) in layers.iter().enumerate() {
        let fan_out = b.len();
        let mut next: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
        for (i, xi) in x.iter().enumerate() {
            for (j, out) in next.iter_mut().enumerate() {
                *out += xi * f64::from(w[i * fan_out + j]);
            }
        }
        if layer + 1 < layers.len() {
            next.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        x = next;
    }
    x[0] as f32
}
