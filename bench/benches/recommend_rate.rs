//! The in-process `recommend` rate: the reference the HTTP load figures
//! (scripts/load.sh) are divided by, measured by that script in the same run
//! on the same data directory and the same cores.
//!
//! `threads` threads call `Engine::recommend` (n = 10, the server's default
//! strategy `blend`, a user drawn uniformly from `"1"..="<users>"` per call)
//! for `seconds` seconds after a warm-up; one JSON line per thread count:
//! `{"threads", "requests", "seconds", "rate", "p50_us", "p99_us"}`.
//!
//! Run (what scripts/load.sh does): `RECWAL_RATE_DATA_DIR=<dir>
//! RECWAL_RATE_USERS=943 RECWAL_RATE_THREADS=1,2 RECWAL_RATE_SECONDS=10
//! cargo bench --bench recommend_rate`. The data directory must not be held
//! by a server (the engine takes its lock). Under `cargo test` (no `--bench`
//! argument) it runs for a moment on a small synthetic state instead.
#![allow(clippy::print_stdout)]
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use recwal::synth::SplitMix64;
use recwal::{Engine, EngineConfig, Event, EventKind, RecommendRequest, Strategy};

/// Items per answer, as scripts/load.sh asks over HTTP.
const N: usize = 10;

struct Run {
    threads: usize,
    requests: u64,
    seconds: f64,
    latency: Histogram<u64>,
}

/// `threads` threads asking for recommendations for `seconds`.
fn measure(engine: &Engine, users: u64, threads: usize, warm_up: Duration, time: Duration) -> Run {
    let stop = AtomicBool::new(false);
    let measuring = AtomicBool::new(false);
    let (mut requests, mut latency) = (0, Histogram::<u64>::new(3).unwrap());
    let mut seconds = 0.0;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let (stop, measuring) = (&stop, &measuring);
                scope.spawn(move || {
                    let mut rng = SplitMix64::new(0x5eed + thread as u64);
                    let mut histogram = Histogram::<u64>::new(3).unwrap();
                    let mut count = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let user = (rng.below(users) + 1).to_string();
                        let began = Instant::now();
                        let answer = engine.recommend(&RecommendRequest::new(user, N, Strategy::Blend)).unwrap();
                        let took = began.elapsed();
                        std::hint::black_box(answer);
                        if measuring.load(Ordering::Relaxed) {
                            count += 1;
                            histogram.record(took.as_micros() as u64).unwrap();
                        }
                    }
                    (count, histogram)
                })
            })
            .collect();
        std::thread::sleep(warm_up);
        measuring.store(true, Ordering::Relaxed);
        let began = Instant::now();
        std::thread::sleep(time);
        measuring.store(false, Ordering::Relaxed);
        seconds = began.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for handle in handles {
            let (count, histogram) = handle.join().unwrap();
            requests += count;
            latency.add(histogram).unwrap();
        }
    });
    Run { threads, requests, seconds, latency }
}

fn report(run: &Run) {
    println!(
        "{{\"threads\": {}, \"requests\": {}, \"seconds\": {:.3}, \"rate\": {:.1}, \"p50_us\": {}, \"p99_us\": {}}}",
        run.threads,
        run.requests,
        run.seconds,
        run.requests as f64 / run.seconds,
        run.latency.value_at_quantile(0.5),
        run.latency.value_at_quantile(0.99),
    );
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|value| value.parse().ok())
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        // Test mode: a small state, a moment per thread count.
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
        let events: Vec<Event> = (0..2_000)
            .map(|at| Event::new(format!("{}", at % 50 + 1), format!("i{}", (at * 7) % 300), EventKind::View))
            .collect();
        engine.ingest_batch(&events).unwrap();
        for threads in [1, 2] {
            let run = measure(&engine, 50, threads, Duration::from_millis(20), Duration::from_millis(100));
            assert!(run.requests > 0, "no request answered with {threads} threads");
            report(&run);
        }
        return;
    }
    let Some(dir) = std::env::var_os("RECWAL_RATE_DATA_DIR") else {
        eprintln!("recommend_rate: set RECWAL_RATE_DATA_DIR to a data directory (scripts/load.sh does)");
        std::process::exit(2);
    };
    let users: u64 = env("RECWAL_RATE_USERS").unwrap_or(943);
    let seconds: f64 = env("RECWAL_RATE_SECONDS").unwrap_or(10.0);
    let threads: Vec<usize> = std::env::var("RECWAL_RATE_THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|threads| threads.trim().parse().ok())
        .collect();
    let engine = Engine::open(Path::new(&dir), EngineConfig::default()).unwrap();
    for threads in threads {
        let run = measure(&engine, users, threads, Duration::from_secs(2), Duration::from_secs_f64(seconds));
        report(&run);
    }
    engine.close().unwrap();
}
