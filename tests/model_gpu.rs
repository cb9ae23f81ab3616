//! The CUDA path (`--features cuda`): where a GPU is present, a model must
//! load on it (device buffers bound through IoBinding) and score exactly
//! like the CPU; where none is, the engine must fall back to the CPU and
//! still rank. The test checks for the device itself and prints which case
//! it ran; it is never ignored.
//!
//! GPU present = an NVIDIA device node (`/dev/nvidia0`) and this build has
//! the `cuda` feature. The GPU runtime is `$RECWAL_ORT_GPU_PATH`, else
//! `.onnxruntime-gpu/lib/libonnxruntime.so` (`RECWAL_ORT_GPU=1
//! scripts/install-onnxruntime.sh`, plus CUDA 13 and cuDNN 9: docs/MODELS.md).
//! (Its own test binary: the runtime is loaded once per process.)
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod model_support;

use std::path::{Path, PathBuf};

use model_support::{config, fixture_bytes, linear_score, seed};
use recwal::model::ModelDevice;
use recwal::{Engine, Ranking, RecommendRequest, Strategy};

fn gpu_present() -> bool {
    Path::new("/dev/nvidia0").exists()
}

fn gpu_runtime() -> PathBuf {
    match std::env::var_os("RECWAL_ORT_GPU_PATH") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".onnxruntime-gpu/lib/libonnxruntime.so"),
    }
}

#[test]
fn models_run_on_the_gpu_when_present_and_on_the_cpu_otherwise() {
    let on_gpu = gpu_present() && cfg!(feature = "cuda");
    let mut config = config();
    config.models.device = ModelDevice::Cuda { device_id: 0 };
    if on_gpu {
        let runtime = gpu_runtime();
        assert!(runtime.is_file(), "a GPU is present but no GPU runtime at {}", runtime.display());
        config.models.runtime_path = Some(runtime);
        println!("GPU present and `cuda` feature on: checking the CUDA path");
    } else {
        println!(
            "no GPU path here (device node: {}, `cuda` feature: {}): checking the CPU fallback",
            gpu_present(),
            cfg!(feature = "cuda")
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), config).unwrap();
    seed(&engine);
    engine.add_model(&fixture_bytes("linear_v1")).unwrap();
    engine.activate_model(1).unwrap();
    let status = engine.model_status();
    assert_eq!(status.device.as_deref(), Some(if on_gpu { "cuda" } else { "cpu" }), "{status:?}");
    assert_eq!(status.io_binding, on_gpu, "{status:?}");
    println!("model status: {status:?}");
    // Scores equal the CPU formula (known, cold-start and heavy users).
    for (user, n) in [("u1", 5), ("heavy", 5), ("nobody", 3)] {
        let request = RecommendRequest::new(user, n, Strategy::UserCf);
        let features = engine.candidate_features(&request).unwrap();
        let answer = engine.recommend(&request).unwrap();
        assert_eq!(answer.ranking, Ranking::Model { version: 1 });
        for item in &answer.items {
            let row = &features.iter().find(|(name, _)| name == &item.item).unwrap().1;
            let expected = linear_score("linear_v1", row);
            assert!((item.model_score.unwrap() - expected).abs() < 1e-4);
        }
    }
}
