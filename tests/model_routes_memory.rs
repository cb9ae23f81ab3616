//! Versions side by side free what they stop using: after canaries and
//! shadows come and go (re-set with the same version, promoted, cleared),
//! only the serving version stays loaded once the engine's background
//! thread has reaped the rest. (A test binary of its own: the count of
//! loaded versions is per process.)
#![allow(clippy::unwrap_used)]

mod model_support;

use std::time::{Duration, Instant};

use model_support::{config, fixture_bytes, seed};
use recwal::{Engine, RecommendRequest, Strategy};

#[test]
fn routed_versions_are_freed_once_no_route_or_request_holds_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), config()).unwrap();
    seed(&engine);
    for fixture in ["linear_v1", "linear_v2", "mlp_v1"] {
        engine.add_model(&fixture_bytes(fixture)).unwrap();
    }
    engine.activate_model(1).unwrap();
    let ask = |engine: &Engine| {
        for user in ["u1", "u2", "u3", "heavy"] {
            engine.recommend(&RecommendRequest::new(user, 5, Strategy::UserCf)).unwrap();
        }
    };
    // The same canary set again (its loaded copy reused), a shadow, the
    // canary promoted, a new canary, everything cleared.
    engine.set_canary(2, 300).unwrap();
    ask(&engine);
    engine.set_canary(2, 600).unwrap();
    engine.set_shadow(3).unwrap();
    ask(&engine);
    engine.promote_canary().unwrap();
    ask(&engine);
    engine.set_canary(1, 100).unwrap();
    engine.clear_canary().unwrap();
    engine.clear_shadow().unwrap();
    ask(&engine);
    let started = Instant::now();
    while engine.model_status().loaded_versions > 1 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = engine.model_status();
    assert_eq!((status.serving, status.loaded_versions), (Some(2), 1), "{status:?}");
}
