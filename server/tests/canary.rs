//! Model versions side by side over HTTP, against the real binary
//! (docs/MODELS.md): a canary taking 10% of users by the documented user
//! hash, the same split after SIGKILL, promotion and rollback under load
//! with zero failed requests, a shadow, per-version metrics, refusals.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use support::{request, Server};

const USERS: u32 = 200;

/// The documented bucket: FNV-1a (64-bit) of the user id's bytes, mod 1000.
fn bucket(user: &str) -> u64 {
    let hash = user
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    hash % 1000
}

fn seed(server: &Server) {
    let events: Vec<String> = (0..USERS)
        .flat_map(|user| {
            (0..5).map(move |step| {
                format!(
                    r#"{{"user":"u{user}","item":"i{}","kind":"rating","value":{}}}"#,
                    (user * 7 + step * 5) % 30,
                    1 + (user + step) % 5
                )
            })
        })
        .collect();
    for chunk in events.chunks(500) {
        let (status, body) = server.json("POST", "/v1/events", &format!(r#"{{"events":[{}]}}"#, chunk.join(",")));
        assert_eq!(status, 200, "{body}");
    }
}

fn add_model(server: &Server, fixture: &str) -> u64 {
    let response = server
        .try_call("POST", "/admin/models", &[("content-type", "application/octet-stream")], &support::fixture(fixture))
        .unwrap();
    assert_eq!(response.status, 201, "{}", response.text());
    response.json()["version"].as_u64().unwrap()
}

/// The version that ranked each user's answer.
fn versions(server: &Server) -> Vec<u64> {
    (0..USERS)
        .map(|user| {
            let (status, answer) = server.json("GET", &format!("/v1/users/u{user}/recommend?n=5"), "");
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["ranking"]["kind"], "model", "u{user}: {answer}");
            answer["ranking"]["version"].as_u64().unwrap()
        })
        .collect()
}

fn metric(server: &Server, series: &str) -> u64 {
    let text = server.call("GET", "/metrics", b"").text();
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn a_canary_splits_by_user_hash_survives_sigkill_promotes_and_rolls_back_without_failed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, &[]);
    seed(&server);
    assert_eq!(add_model(&server, "linear_v1"), 1);
    assert_eq!(add_model(&server, "linear_v2"), 2);
    assert_eq!(server.json("POST", "/admin/models/1/activate", "").0, 200);

    // Refused, each with its status; nothing changes.
    server.call("PUT", "/admin/models/canary", br#"{"version":2,"percent":0}"#).assert_problem(400, "0 %");
    server.call("PUT", "/admin/models/canary", br#"{"version":2,"percent":100}"#).assert_problem(400, "100 %");
    server.call("PUT", "/admin/models/canary", br#"{"version":2}"#).assert_problem(400, "no percent");
    server.call("PUT", "/admin/models/canary", br#"{"version":1,"percent":10}"#).assert_problem(409, "the active one");
    server.call("PUT", "/admin/models/canary", br#"{"version":9,"percent":10}"#).assert_problem(404, "unknown");
    server.call("POST", "/admin/models/canary/promote", b"").assert_problem(409, "no canary");
    assert!(versions(&server).iter().all(|&version| version == 1));

    let (status, routing) = server.json("PUT", "/admin/models/canary", r#"{"version":2,"percent":10}"#);
    assert_eq!(status, 200, "{routing}");
    assert_eq!(routing["canary"], serde_json::json!({"version": 2, "percent": 10.0, "loaded": true}));
    let expected: Vec<u64> = (0..USERS).map(|user| if bucket(&format!("u{user}")) < 100 { 2 } else { 1 }).collect();
    let in_canary = expected.iter().filter(|&&version| version == 2).count();
    assert!((8..=40).contains(&in_canary), "{in_canary} of {USERS} users in a 10% canary");
    assert_eq!(versions(&server), expected);
    let canary_ranked = "recwal_model_answers_total{version=\"2\",role=\"canary\",outcome=\"ranked\"}";
    let stable_ranked = "recwal_model_answers_total{version=\"1\",role=\"stable\",outcome=\"ranked\"}";
    assert_eq!(metric(&server, canary_ranked), in_canary as u64);
    assert!(metric(&server, stable_ranked) >= (USERS as usize - in_canary) as u64);
    for version in [1, 2] {
        assert!(metric(&server, &format!("recwal_model_inference_seconds_count{{version=\"{version}\"}}")) > 0);
    }

    // SIGKILL: the same split after the restart.
    server.kill();
    let server = Server::start(dir.path(), None, &[]);
    assert_eq!(versions(&server), expected);
    let status = server.json("GET", "/admin/models/status", "").1;
    assert_eq!((status["active"].as_u64(), status["canary"]["version"].as_u64()), (Some(1), Some(2)));
    let ready = server.json("GET", "/readyz", "").1;
    assert_eq!(ready["model"]["canary"], serde_json::json!({"version": 2, "percent": 10.0, "loaded": true}));
    assert_eq!(metric(&server, "recwal_model_canary_version"), 2);
    assert_eq!(metric(&server, "recwal_model_canary_share_per_mille"), 100);

    // Promote and roll back while readers hammer the server: not one
    // request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let (failed, answered) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let readers: Vec<_> = (0..2)
        .map(|reader| {
            let (addr, stop) = (server.addr.clone(), Arc::clone(&stop));
            let (failed, answered) = (Arc::clone(&failed), Arc::clone(&answered));
            std::thread::spawn(move || {
                let mut user = reader;
                while !stop.load(Ordering::Relaxed) {
                    let path = format!("/v1/users/u{}/recommend?n=5", user % USERS);
                    match request(&addr, "GET", &path, &[], b"") {
                        Ok(response) if response.status == 200 && response.json()["ranking"]["kind"] == "model" => {
                            answered.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    user += 2;
                }
            })
        })
        .collect();
    let (status, promoted) = server.json("POST", "/admin/models/canary/promote", "");
    assert_eq!((status, promoted["version"].as_u64(), promoted["active"].as_bool()), (200, Some(2), Some(true)));
    assert!(versions(&server).iter().all(|&version| version == 2));
    assert_eq!(server.json("GET", "/admin/models/status", "").1["canary"], serde_json::Value::Null);
    let (status, back) = server.json("POST", "/admin/models/rollback", "");
    assert_eq!((status, back["version"].as_u64()), (200, Some(1)));
    assert!(versions(&server).iter().all(|&version| version == 1));
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests during promote and rollback");
    assert!(answered.load(Ordering::Relaxed) > 0);

    // A shadow: scored for every ranked answer, never served.
    let shadow_ranked = "recwal_model_answers_total{version=\"2\",role=\"shadow\",outcome=\"ranked\"}";
    let (status, routing) = server.json("PUT", "/admin/models/shadow", r#"{"version":2}"#);
    assert_eq!((status, routing["shadow"]["version"].as_u64()), (200, Some(2)), "{routing}");
    assert!(versions(&server).iter().all(|&version| version == 1));
    // Scored on the shadow's own thread, off the request path.
    let started = std::time::Instant::now();
    while metric(&server, shadow_ranked) < u64::from(USERS) && started.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(metric(&server, shadow_ranked), u64::from(USERS));
    // Routed versions cannot be retired; once the shadow ends, v2 can.
    server.call("DELETE", "/admin/models/2", b"").assert_problem(409, "the shadow");
    server.call("DELETE", "/admin/models/1", b"").assert_problem(409, "the active one");
    assert_eq!(server.json("DELETE", "/admin/models/shadow", "").0, 200);
    let (status, retired) = server.json("DELETE", "/admin/models/2", "");
    assert_eq!((status, retired["retired"].as_bool()), (200, Some(true)), "{retired}");
    server.call("PUT", "/admin/models/canary", br#"{"version":2,"percent":10}"#).assert_problem(404, "retired");
}
