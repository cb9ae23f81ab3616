//! The engine end to end, on one machine, in one run:
//!
//! - `engine_ingest/{never,batch,always}/{1,8}t/{single,batch100}`: ingest
//!   throughput (events/s) through `Engine::ingest_with` (one event per call)
//!   and `Engine::ingest_batch_with` (100 events per call, one log record),
//!   on a fresh engine per case fed the first events of `SynthConfig::large()`;
//! - `wal_only/...`: the log alone appending the very payloads those calls
//!   write (pre-encoded `EventsV1` records), under `Always`, under `Batch`
//!   with and without waiting for durability and under `Never`, so that
//!   "under `Batch` the log is the bound" can be read off as a ratio;
//! - `recommend_ml100k/<strategy>`: time per `Engine::recommend` (n = 10)
//!   for random known users, on MovieLens 100k (`data/ml-100k/ml-100k.inter`,
//!   fetched by `scripts/fetch-movielens.sh`) or, without it, the
//!   `movielens_like` synthetic workload.
//!
//! After the criterion groups a report prints recommend latency percentiles
//! per strategy (hdrhistogram over many requests; also for scoring alone,
//! `Engine::score_items`, and with an event ingested before each request),
//! the fast/exact ItemRank ratio, restart figures (`Engine::open` after a checkpoint, and from the
//! log alone: `OpenReport::snapshot_load`, `replay`, `records_replayed`),
//! resident memory per stored event (`RssAnon` of /proc/self/status before
//! and after building the state) and a table of every goal with ✔/✘.
//!
//! Engines are opened in temporary directories with `EngineConfig::default()`,
//! automatic checkpoints off (a snapshot written in the middle of a
//! measurement would distort it) and the sync policy of the case.
//!
//! Run: `cargo bench --bench engine` (results: docs/BENCHMARKS.md, "Engine").
//! `RECWAL_BENCH_QUICK=1`: a smoke run (short measurements, 200k events).
//! `RECWAL_BENCH_REPORT_ONLY=1`: skip the criterion groups.
//! `RECWAL_BENCH_LARGE=1`: first build the large state (1M users, 100k items,
//! 10M events; at most `RECWAL_BENCH_LARGE_BUDGET_S` seconds, default 600)
//! and measure recommend latency, memory and restart on it, then latency
//! again with `usercf.scan_users_per_item = 1000` and `itemrank.fast_hops = 1`.
//! Under `cargo test` (no `--bench` argument) every case runs once on a few
//! thousand synthetic events and the dataset is not read.
#![allow(clippy::print_stdout)]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use hdrhistogram::Histogram;
use recwal::record::{EventsV1, LogRecord, LoggedEvent, KIND_EVENTS_V1};
use recwal::synth::{self, SplitMix64, SynthConfig};
use recwal::wal::{Durability, SyncPolicy, Wal};
use recwal::{Engine, EngineConfig, Event, EventKind, KindWeights, LoggedKind, RecommendRequest, Strategy};
use recwal_bench::{load_average, mib, proc_status_bytes};

/// Events per `ingest_batch_with` call.
const BATCH_EVENTS: usize = 100;
/// Criterion samples per case (the last `SAMPLES` calls of a case are its
/// measurement; earlier ones are warm-up).
const SAMPLES: usize = 10;
/// Items asked for per recommendation.
const N: usize = 10;
const ML_PATH: &str = "data/ml-100k/ml-100k.inter";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `cargo test`: everything once, tiny.
    Test,
    /// `RECWAL_BENCH_QUICK`: short.
    Quick,
    Full,
}

fn mode() -> Mode {
    if !std::env::args().any(|arg| arg == "--bench") {
        Mode::Test
    } else if std::env::var_os("RECWAL_BENCH_QUICK").is_some() {
        Mode::Quick
    } else {
        Mode::Full
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| !value.is_empty() && value != "0")
}

/// `EngineConfig::default()` with `policy` and no automatic checkpoints.
fn engine_config(policy: SyncPolicy, mode: Mode) -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.sync_policy(policy);
    if mode == Mode::Test {
        // Zero-filling four 64 MiB segments per engine would dominate a test run.
        config.wal = config.wal.segment_bytes(4 << 20).segments_initial(2);
    }
    config.checkpoint.disable_automatic();
    config
}

#[derive(Clone, Copy, Debug)]
struct Rss {
    anon: u64,
    total: u64,
}

/// Resident memory now, after handing the allocator's free pages back to
/// the kernel (otherwise memory freed by an earlier case would be reused
/// unseen and flatter the next reading).
fn rss() -> Rss {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's arenas; it
    // touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
    Rss { anon: proc_status_bytes("RssAnon"), total: proc_status_bytes("VmRSS") }
}

/// Formats a rate per second with a k/M suffix.
fn per_sec(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2}M/s", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1}k/s", rate / 1e3)
    } else {
        format!("{rate:.0}/s")
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------
// The goals table, filled as figures come in.

struct Row {
    section: String,
    case: String,
    measured: String,
    goal: String,
    met: Option<bool>,
}

static ROWS: Mutex<Vec<Row>> = Mutex::new(Vec::new());

fn row(section: &str, case: impl Into<String>, measured: impl Into<String>, goal: &str, met: Option<bool>) {
    ROWS.lock().unwrap().push(Row {
        section: section.to_string(),
        case: case.into(),
        measured: measured.into(),
        goal: goal.to_string(),
        met,
    });
}

fn print_rows() {
    println!("\n## goals (markdown)\n");
    println!("| section | case | measured | goal | met |");
    println!("|---|---|---|---|---|");
    for row in ROWS.lock().unwrap().iter() {
        let met = match row.met {
            Some(true) => "✔",
            Some(false) => "✘",
            None => "",
        };
        println!("| {} | {} | {} | {} | {met} |", row.section, row.case, row.measured, row.goal);
    }
}

// ---------------------------------------------------------------------------
// Throughput samples recorded by the criterion routines, so that the report
// can compute ratios between cases of the same run.

/// Per case: (events, elapsed) of every call criterion made, in order.
static SAMPLES_BY_CASE: Mutex<BTreeMap<String, Vec<(u64, Duration)>>> = Mutex::new(BTreeMap::new());

fn record_sample(case: &str, events: u64, elapsed: Duration) {
    SAMPLES_BY_CASE.lock().unwrap().entry(case.to_string()).or_default().push((events, elapsed));
}

/// Median events/s over the case's measurement samples (its last `SAMPLES`).
fn median_rate(case: &str) -> Option<f64> {
    let samples = SAMPLES_BY_CASE.lock().unwrap();
    let all = samples.get(case)?;
    let mut rates: Vec<f64> = all
        .iter()
        .skip(all.len().saturating_sub(SAMPLES))
        .map(|&(events, elapsed)| events as f64 / elapsed.as_secs_f64().max(1e-9))
        .collect();
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len() / 2).copied()
}

// ---------------------------------------------------------------------------
// Ingest.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// `ingest_with`, one event.
    Single,
    /// `ingest_batch_with`, `BATCH_EVENTS` events.
    Batch,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Single => "single",
            Call::Batch => "batch100",
        }
    }

    fn events(self) -> usize {
        match self {
            Call::Single => 1,
            Call::Batch => BATCH_EVENTS,
        }
    }
}

/// (policy name, policy, durability per call, threads).
const INGEST_CASES: [(&str, SyncPolicy, Durability, usize); 4] = [
    ("never", SyncPolicy::Never, Durability::Never, 1),
    ("batch", SyncPolicy::batch_default(), Durability::Batch, 1),
    ("batch", SyncPolicy::batch_default(), Durability::Batch, 8),
    ("always", SyncPolicy::Always, Durability::Always, 1),
];

/// The ingest workload: the first events of the large synthetic workload
/// (1M users, 100k items), a multiple of `BATCH_EVENTS`.
fn ingest_pool(mode: Mode) -> Vec<Event> {
    let events: u64 = match mode {
        Mode::Test => 2_000,
        Mode::Quick => 200_000,
        Mode::Full => 1_000_000,
    };
    synth::events(&SynthConfig { events, ..SynthConfig::large() }).collect()
}

/// Makes `iters` calls of kind `call` spread over `threads` threads, starting
/// at call number `first` of the pool (wrapping); returns the events ingested
/// and the wall time of all calls. Single events are cloned out of the pool
/// before the clock starts.
fn ingest_run(
    engine: &Engine,
    pool: &[Event],
    call: Call,
    durability: Durability,
    threads: usize,
    iters: u64,
    first: u64,
) -> (u64, Duration) {
    let per_thread = iters.div_ceil(threads as u64) as usize;
    let chunks = pool.len() / BATCH_EVENTS;
    let call_at = |thread: usize, at: usize| first as usize + thread * per_thread + at;
    let work: Vec<Vec<Event>> = (0..threads)
        .map(|thread| match call {
            Call::Single => (0..per_thread).map(|at| pool[call_at(thread, at) % pool.len()].clone()).collect(),
            Call::Batch => Vec::new(),
        })
        .collect();
    let elapsed = timed_threads(work, |thread, events| match call {
        Call::Single => {
            for event in events {
                engine.ingest_with(event, durability).unwrap();
            }
        }
        Call::Batch => {
            for at in 0..per_thread {
                let chunk = call_at(thread, at) % chunks;
                let slice = &pool[chunk * BATCH_EVENTS..(chunk + 1) * BATCH_EVENTS];
                engine.ingest_batch_with(slice, durability).unwrap();
            }
        }
    });
    ((per_thread * threads * call.events()) as u64, elapsed)
}

fn ingest_case(policy: &str, threads: usize, call: Call) -> String {
    format!("ingest/{policy}/{threads}t/{}", call.name())
}

fn bench_ingest(c: &mut Criterion, pool: &[Event], mode: Mode) {
    let mut group = c.benchmark_group("engine_ingest");
    for (policy_name, policy, durability, threads) in INGEST_CASES {
        for call in [Call::Single, Call::Batch] {
            let dir = tempfile::tempdir().unwrap();
            let engine = Engine::open(dir.path(), engine_config(policy, mode)).unwrap();
            let case = ingest_case(policy_name, threads, call);
            let next_call = AtomicU64::new(0);
            group.throughput(Throughput::Elements(call.events() as u64));
            group.bench_function(BenchmarkId::new(format!("{policy_name}/{threads}t"), call.name()), |b| {
                b.iter_custom(|iters| {
                    let first = next_call.fetch_add(iters, Ordering::Relaxed);
                    let (events, elapsed) = ingest_run(&engine, pool, call, durability, threads, iters, first);
                    record_sample(&case, events, elapsed);
                    // Calls were rounded up to a multiple of the thread count.
                    elapsed.mul_f64(iters as f64 * call.events() as f64 / events as f64)
                });
            });
            engine.close().unwrap();
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// The log alone, with the payloads the engine writes.

/// What `validate` resolves an event to, with the default weights.
fn logged<'a>(event: &'a Event, weights: &KindWeights) -> LoggedEvent<'a> {
    let (kind, weight) = match &event.kind {
        EventKind::View => (LoggedKind::View, weights.view),
        EventKind::Click => (LoggedKind::Click, weights.click),
        EventKind::Cart => (LoggedKind::Cart, weights.cart),
        EventKind::Purchase => (LoggedKind::Purchase, weights.purchase),
        EventKind::Rating(value) => (LoggedKind::Rating, *value),
        EventKind::Custom(_) => (LoggedKind::Custom, 1.0),
    };
    LoggedEvent {
        user: &event.user,
        item: &event.item,
        kind,
        weight: event.weight.unwrap_or(weight),
        timestamp_ms: event.timestamp_ms.unwrap_or(0),
        event_id: event.event_id.as_deref(),
    }
}

/// The payload of the record one ingest call over `events` writes.
fn encode(events: &[Event], weights: &KindWeights) -> Vec<u8> {
    let record = LogRecord::Events(EventsV1 {
        ingested_ms: synth::EPOCH_MS,
        events: events.iter().map(|event| logged(event, weights)).collect(),
    });
    record.encode().unwrap().1
}

struct Payloads {
    single: Vec<Vec<u8>>,
    batch: Vec<Vec<u8>>,
}

impl Payloads {
    fn new(pool: &[Event], mode: Mode) -> Payloads {
        let weights = KindWeights::default();
        let singles = match mode {
            Mode::Test => 1_000,
            _ => 100_000,
        }
        .min(pool.len());
        Payloads {
            single: pool[..singles].chunks(1).map(|event| encode(event, &weights)).collect(),
            batch: pool.chunks_exact(BATCH_EVENTS).map(|events| encode(events, &weights)).collect(),
        }
    }

    fn of(&self, call: Call) -> &[Vec<u8>] {
        match call {
            Call::Single => &self.single,
            Call::Batch => &self.batch,
        }
    }

    fn mean_bytes(&self, call: Call) -> f64 {
        let payloads = self.of(call);
        payloads.iter().map(Vec::len).sum::<usize>() as f64 / payloads.len().max(1) as f64
    }
}

/// (case name, policy, wait for durability, threads).
const WAL_CASES: [(&str, SyncPolicy, bool, usize); 5] = [
    ("always", SyncPolicy::Always, false, 1),
    ("batch", SyncPolicy::batch_default(), false, 1),
    ("batch+wait", SyncPolicy::batch_default(), true, 1),
    ("batch+wait", SyncPolicy::batch_default(), true, 8),
    ("never", SyncPolicy::Never, false, 1),
];

fn wal_case(name: &str, threads: usize, call: Call) -> String {
    format!("wal/{name}/{threads}t/{}", call.name())
}

fn wal_run(wal: &Wal, payloads: &[Vec<u8>], wait: bool, threads: usize, iters: u64, first: u64) -> (u64, Duration) {
    let per_thread = iters.div_ceil(threads as u64);
    let elapsed = timed_threads((0..threads as u64).collect(), |_, thread| {
        for at in 0..per_thread {
            let payload = &payloads[((first + thread * per_thread + at) as usize) % payloads.len()];
            let ticket = wal.append(KIND_EVENTS_V1, payload).unwrap();
            if wait {
                ticket.wait().unwrap();
            }
            // Keep the ring turning as a consumer that keeps up would (as
            // benches/wal_append.rs does).
            if ticket.lsn().is_multiple_of(65_536) {
                let _ = wal.checkpoint(ticket.lsn().saturating_sub(1024));
            }
        }
    });
    (per_thread * threads as u64, elapsed)
}

/// Runs `work(thread, input)` on one thread per input, all released at
/// once; the time until the last finishes.
fn timed_threads<T: Send>(inputs: Vec<T>, work: impl Fn(usize, T) + Sync) -> Duration {
    let barrier = Barrier::new(inputs.len() + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = inputs
            .into_iter()
            .enumerate()
            .map(|(thread, input)| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    work(thread, input);
                })
            })
            .collect();
        barrier.wait();
        let began = Instant::now();
        for handle in handles {
            handle.join().unwrap();
        }
        began.elapsed()
    })
}

fn bench_wal_only(c: &mut Criterion, payloads: &Payloads, mode: Mode) {
    let mut group = c.benchmark_group("wal_only");
    for (name, policy, wait, threads) in WAL_CASES {
        for call in [Call::Single, Call::Batch] {
            let dir = tempfile::tempdir().unwrap();
            let wal = Wal::open(dir.path(), engine_config(policy, mode).wal).unwrap();
            let case = wal_case(name, threads, call);
            let next_call = AtomicU64::new(0);
            // Elements are events, as in engine_ingest.
            group.throughput(Throughput::Elements(call.events() as u64));
            group.bench_function(BenchmarkId::new(format!("{name}/{threads}t"), call.name()), |b| {
                b.iter_custom(|iters| {
                    let first = next_call.fetch_add(iters, Ordering::Relaxed);
                    let (records, elapsed) = wal_run(&wal, payloads.of(call), wait, threads, iters, first);
                    record_sample(&case, records * call.events() as u64, elapsed);
                    elapsed.mul_f64(iters as f64 / records as f64)
                });
            });
            wal.close().unwrap();
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// States to read from.

struct Dataset {
    /// For the report, e.g. "MovieLens 100k (data/ml-100k/ml-100k.inter)".
    name: String,
    events: Vec<Event>,
}

/// MovieLens 100k as rating events when the file is there (and this is not
/// a test run), else the `movielens_like` synthetic workload.
fn ml_dataset(mode: Mode) -> Dataset {
    let ml_path = recwal_bench::workspace_path(ML_PATH);
    if mode != Mode::Test && ml_path.exists() {
        match recwal::eval::load_ratings(&ml_path) {
            Ok(ratings) => {
                let events = ratings
                    .into_iter()
                    .map(|rating| {
                        let event = Event::new(rating.user, rating.item, EventKind::Rating(rating.value));
                        match rating.timestamp_ms {
                            Some(at) => event.at(at),
                            None => event,
                        }
                    })
                    .collect();
                return Dataset { name: format!("MovieLens 100k ({ML_PATH})"), events };
            }
            Err(err) => println!("cannot read {ML_PATH} ({err}); using the synthetic workload"),
        }
    }
    let config = match mode {
        Mode::Test => SynthConfig { users: 60, items: 120, events: 3_000, ..SynthConfig::movielens_like() },
        _ => SynthConfig::movielens_like(),
    };
    Dataset {
        name: format!(
            "synthetic movielens_like ({} users, {} items, {} events)",
            config.users, config.items, config.events
        ),
        events: synth::events(&config).collect(),
    }
}

/// Distinct users of `events`, in order of first appearance.
fn known_users(events: &[Event]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    events.iter().filter(|event| seen.insert(event.user.as_str())).map(|event| event.user.clone()).collect()
}

/// `count` users drawn uniformly (seeded) from `users`.
fn random_users(users: &[String], count: usize, seed: u64) -> Vec<String> {
    let mut rng = SplitMix64::new(seed);
    (0..count).map(|_| users[rng.below(users.len() as u64) as usize].clone()).collect()
}

struct Built {
    engine: Engine,
    _dir: tempfile::TempDir,
    events: u64,
    build: Duration,
    rss_before: Rss,
    rss_after: Rss,
}

impl Built {
    fn anon_per_event(&self) -> f64 {
        self.rss_after.anon.saturating_sub(self.rss_before.anon) as f64 / self.events.max(1) as f64
    }

    fn total_per_event(&self) -> f64 {
        self.rss_after.total.saturating_sub(self.rss_before.total) as f64 / self.events.max(1) as f64
    }

    fn print(&self, label: &str) {
        let stats = self.engine.stats();
        println!(
            "state  {label}: {} events in {:.2} s ({}), {} users, {} items, {} pairs; \
             RssAnon +{:.1} MiB ({:.0} B/event), VmRSS +{:.1} MiB ({:.0} B/event, includes the mapped log)",
            self.events,
            self.build.as_secs_f64(),
            per_sec(self.events as f64 / self.build.as_secs_f64()),
            stats.users,
            stats.items,
            stats.pairs,
            mib(self.rss_after.anon.saturating_sub(self.rss_before.anon)),
            self.anon_per_event(),
            mib(self.rss_after.total.saturating_sub(self.rss_before.total)),
            self.total_per_event(),
        );
    }
}

/// Opens an engine (`Never`, no automatic checkpoints) and ingests `events`
/// in calls of `call`, stopping early once `budget` is spent. `progress`
/// prints a line every that many events.
fn build(
    events: impl Iterator<Item = Event>,
    call: Call,
    mode: Mode,
    budget: Duration,
    progress: Option<u64>,
) -> Built {
    let dir = tempfile::tempdir().unwrap();
    let rss_before = rss();
    let engine = Engine::open(dir.path(), engine_config(SyncPolicy::Never, mode)).unwrap();
    let began = Instant::now();
    let mut count = 0u64;
    let mut chunk = Vec::with_capacity(BATCH_EVENTS);
    let mut events = events.peekable();
    while events.peek().is_some() {
        chunk.clear();
        chunk.extend(events.by_ref().take(call.events()));
        match call {
            Call::Single => {
                for event in chunk.drain(..) {
                    engine.ingest_with(event, Durability::Never).unwrap();
                }
            }
            Call::Batch => {
                engine.ingest_batch_with(&chunk, Durability::Never).unwrap();
            }
        }
        let before = count;
        count += call.events() as u64;
        if let Some(every) = progress {
            if count / every != before / every {
                let elapsed = began.elapsed();
                let now = rss();
                println!(
                    "build  {count:>10} events, {:6.1} s, {}, RssAnon {:.0} MiB, VmRSS {:.0} MiB",
                    elapsed.as_secs_f64(),
                    per_sec(count as f64 / elapsed.as_secs_f64()),
                    mib(now.anon),
                    mib(now.total)
                );
            }
        }
        if began.elapsed() > budget {
            println!("build  stopped after {count} events: the budget of {} s is spent", budget.as_secs());
            break;
        }
    }
    let build = began.elapsed();
    let rss_after = rss();
    Built { engine, _dir: dir, events: count, build, rss_before, rss_after }
}

// ---------------------------------------------------------------------------
// Recommend.

fn request(user: &str, strategy: Strategy) -> RecommendRequest {
    RecommendRequest::new(user, N, strategy)
}

fn bench_recommend(c: &mut Criterion, engine: &Engine, users: &[String]) {
    let mut group = c.benchmark_group("recommend_ml100k");
    group.throughput(Throughput::Elements(1));
    for strategy in Strategy::ALL.into_iter().filter(|&strategy| measured(engine, strategy)) {
        let mut at = 0usize;
        group.bench_function(strategy.name(), |b| {
            b.iter(|| {
                at = (at + 1) % users.len();
                engine.recommend(&request(&users[at], strategy)).unwrap()
            });
        });
    }
    group.finish();
}

/// How many requests a latency measurement makes.
#[derive(Clone, Copy)]
struct Limits {
    /// Unrecorded requests first.
    warm_up: usize,
    /// Recorded requests at least...
    min: usize,
    /// ... and at most.
    max: usize,
    /// Stop after this long once `min` are recorded.
    time: Duration,
}

struct Latency {
    histogram: Histogram<u64>,
    total: Duration,
}

impl Latency {
    fn us(&self, quantile: f64) -> f64 {
        self.histogram.value_at_quantile(quantile) as f64 / 1e3
    }

    fn mean_us(&self) -> f64 {
        self.total.as_secs_f64() * 1e6 / self.histogram.len().max(1) as f64
    }
}

/// What a latency measurement times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    /// `Engine::recommend` (n = `N`): scoring, top-n, reasons, names.
    Recommend,
    /// `Engine::score_items`: the strategy's scores for every item, nothing
    /// else (the part the strategy itself costs).
    Score,
}

/// Latency (ns) of `probe` for users drawn uniformly from `users`; `before`
/// runs (untimed) before each request.
fn latency(
    engine: &Engine,
    users: &[String],
    strategy: Strategy,
    limits: Limits,
    probe: Probe,
    mut before: impl FnMut(),
) -> Latency {
    let mut rng = SplitMix64::new(0xBEEF);
    let mut histogram = Histogram::<u64>::new(3).unwrap();
    let run = |user: &str| match probe {
        Probe::Recommend => {
            std::hint::black_box(engine.recommend(&request(user, strategy)).unwrap());
        }
        Probe::Score => {
            let mut sum = 0.0;
            engine.score_items(user, strategy, |_, score| sum += score);
            std::hint::black_box(sum);
        }
    };
    for _ in 0..limits.warm_up {
        run(&users[rng.below(users.len() as u64) as usize]);
    }
    let began = Instant::now();
    let mut total = Duration::ZERO;
    while histogram.len() < limits.max as u64 && (histogram.len() < limits.min as u64 || began.elapsed() < limits.time)
    {
        let user = &users[rng.below(users.len() as u64) as usize];
        before();
        let start = Instant::now();
        run(user);
        let elapsed = start.elapsed();
        total += elapsed;
        histogram.record(elapsed.as_nanos().max(1) as u64).unwrap();
    }
    Latency { histogram, total }
}

fn print_latency(label: &str, what: &str, strategy: Strategy, latency: &Latency) {
    println!(
        "latency {label} {what:9} {:16} -> p50 {:10.1} p99 {:10.1} p99.9 {:10.1} max {:10.1} mean {:10.1} µs ({} requests)",
        strategy.name(),
        latency.us(0.5),
        latency.us(0.99),
        latency.us(0.999),
        latency.histogram.max() as f64 / 1e3,
        latency.mean_us(),
        latency.histogram.len()
    );
}

fn ml_limits(mode: Mode, strategy: Strategy) -> Limits {
    let exact = strategy == Strategy::ItemRankExact;
    match mode {
        Mode::Test => Limits { warm_up: 1, min: 5, max: 5, time: Duration::ZERO },
        Mode::Quick => Limits { warm_up: 5, min: 50, max: 5_000, time: Duration::from_millis(300) },
        Mode::Full if exact => Limits { warm_up: 10, min: 300, max: 2_000, time: Duration::from_secs(3) },
        Mode::Full => Limits { warm_up: 50, min: 1_000, max: 50_000, time: Duration::from_secs(3) },
    }
}

/// The goal of p99 for `strategy` on the MovieLens-sized state (µs).
fn ml_goal_us(strategy: Strategy) -> Option<f64> {
    match strategy {
        Strategy::UserCf | Strategy::ItemRank | Strategy::Blend | Strategy::Ease | Strategy::Ials => Some(1_000.0),
        Strategy::ItemRankExact => Some(20_000.0),
        Strategy::Popularity => None,
    }
}

fn large_goal_us(strategy: Strategy) -> Option<f64> {
    match strategy {
        Strategy::UserCf | Strategy::ItemRank => Some(10_000.0),
        Strategy::Popularity => Some(100.0),
        // Ease: no item model above `item_model.items_max` (10k items by
        // default; 100k items would need 24·n² = 240 GB to train), so it is
        // not measured on the large state (`measured`); ials there: `cargo
        // bench --bench ials_engine` with RECWAL_IALS_LARGE=1.
        Strategy::ItemRankExact | Strategy::Blend | Strategy::Ease => None,
        Strategy::Ials => Some(10_000.0),
    }
}

/// Whether `strategy` scores on `engine`: `ease` and `ials` only with an
/// item model of their family (without one their answers are the
/// popularity fill, measured as such). This bench trains the configured
/// family (`auto`: EASE on the MovieLens state); `ials` is measured by
/// `cargo bench --bench ials_engine`.
fn measured(engine: &Engine, strategy: Strategy) -> bool {
    strategy.item_model_family().is_none_or(|family| engine.item_model_status().family == Some(family))
}

fn fmt_us(us: f64) -> String {
    if us >= 1_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}

/// Measures every strategy on `engine` (recommend, then scoring alone),
/// prints and records the figures.
fn recommend_report(
    section: &str,
    label: &str,
    engine: &Engine,
    users: &[String],
    limits: impl Fn(Strategy) -> Limits,
    goal_us: impl Fn(Strategy) -> Option<f64>,
) {
    let mut means = BTreeMap::new();
    for strategy in Strategy::ALL.into_iter().filter(|&strategy| measured(engine, strategy)) {
        let full = latency(engine, users, strategy, limits(strategy), Probe::Recommend, || {});
        print_latency(label, "recommend", strategy, &full);
        let score = latency(engine, users, strategy, limits(strategy), Probe::Score, || {});
        print_latency(label, "score", strategy, &score);
        let (p50, p99) = (full.us(0.5), full.us(0.99));
        let goal = goal_us(strategy);
        row(
            section,
            format!("`{}` p50 / p99 (scoring alone)", strategy.name()),
            format!("{} / **{}** ({} / {})", fmt_us(p50), fmt_us(p99), fmt_us(score.us(0.5)), fmt_us(score.us(0.99))),
            &goal.map_or("—".to_string(), |goal| format!("p99 ≤ {}", fmt_us(goal))),
            goal.map(|goal| p99 <= goal),
        );
        means.insert(strategy.name(), (full.mean_us(), score.mean_us()));
    }
    if let (Some(fast), Some(exact)) = (means.get("item_rank"), means.get("item_rank_exact")) {
        let (ratio, ratio_score) = (exact.0 / fast.0, exact.1 / fast.1);
        println!("ratio   {label} exact/fast ItemRank (mean): recommend {ratio:.1}x, scoring alone {ratio_score:.1}x");
        row(
            section,
            "exact ÷ fast ItemRank, mean time",
            format!("**{ratio:.1}×** recommend ({ratio_score:.1}× scoring alone)"),
            "≥ 10×",
            Some(ratio >= 10.0),
        );
    }
}

/// Fast ItemRank and UserCF while the state changes between requests (one
/// event ingested before each, as under live traffic).
fn under_ingest_report(
    section: &str,
    label: &str,
    engine: &Engine,
    users: &[String],
    events: &mut dyn FnMut() -> Event,
    limits: Limits,
    goal_us: impl Fn(Strategy) -> Option<f64>,
) {
    for strategy in [Strategy::UserCf, Strategy::ItemRank] {
        let ingest = || {
            engine.ingest_with(events(), Durability::Never).unwrap();
        };
        let full = latency(engine, users, strategy, limits, Probe::Recommend, ingest);
        print_latency(label, "+ingest", strategy, &full);
        let goal = goal_us(strategy);
        row(
            section,
            format!("`{}` p50 / p99, one event ingested before each request", strategy.name()),
            format!("{} / **{}**", fmt_us(full.us(0.5)), fmt_us(full.us(0.99))),
            &goal.map_or("—".to_string(), |goal| format!("p99 ≤ {}", fmt_us(goal))),
            goal.map(|goal| full.us(0.99) <= goal),
        );
    }
}

// ---------------------------------------------------------------------------
// Restart.

/// Opens `dir` `times` times, returns the median open (by wall time) and the
/// engine from the last open.
fn reopen(dir: &Path, config: &EngineConfig, times: usize, digest: u64) -> (Duration, recwal::OpenReport, Engine) {
    let mut opens = Vec::new();
    let mut last = None;
    for _ in 0..times {
        drop(last.take());
        let began = Instant::now();
        let engine = Engine::open(dir, config.clone()).unwrap();
        let wall = began.elapsed();
        assert_eq!(engine.state_digest(), digest, "the reopened state differs");
        opens.push((wall, engine.open_report().clone()));
        last = Some(engine);
    }
    opens.sort_by_key(|(wall, _)| *wall);
    let (wall, report) = opens.swap_remove(opens.len() / 2);
    (wall, report, last.unwrap())
}

/// Restart of `built` (its engine is consumed): from the log alone, then
/// after a checkpoint from the snapshot alone. Returns the two open times
/// and the directory (holding the snapshot).
fn restart_report(section: &str, label: &str, built: Built, mode: Mode) -> (Duration, Duration, tempfile::TempDir) {
    let Built { engine, _dir: dir, events, .. } = built;
    let config = engine.config().clone();
    let digest = engine.state_digest();
    engine.close().unwrap();
    let times = if mode == Mode::Full { 3 } else { 1 };

    let (wall, report, engine) = reopen(dir.path(), &config, times, digest);
    let rate = events as f64 / report.replay.as_secs_f64();
    println!(
        "restart {label} from the log: open {:.0} ms (replay {:.0} ms of {} records, {}; snapshot load {:.1} ms; \
         log recovery + rest {:.0} ms)",
        ms(wall),
        ms(report.replay),
        report.records_replayed,
        per_sec(rate),
        ms(report.snapshot_load),
        ms(wall.saturating_sub(report.replay + report.snapshot_load)),
    );
    let open_rate = events as f64 / wall.as_secs_f64();
    row(
        section,
        format!("{label}: open, all from log replay"),
        format!("{:.2} s, replay **{}** events ({} whole open)", wall.as_secs_f64(), per_sec(rate), per_sec(open_rate)),
        "≥ 2M events/s",
        Some(rate >= 2e6),
    );
    let wall_log = wall;

    let began = Instant::now();
    let info = engine.checkpoint().unwrap();
    let checkpoint = began.elapsed();
    println!(
        "restart {label} checkpoint: {:.0} ms, snapshot {:.1} MiB, {} segments released",
        ms(checkpoint),
        mib(info.bytes),
        info.segments_released
    );
    engine.close().unwrap();

    let (wall, report, engine) = reopen(dir.path(), &config, times, digest);
    let rate = events as f64 / report.snapshot_load.as_secs_f64();
    println!(
        "restart {label} from the snapshot: open {:.0} ms (snapshot load {:.0} ms, {}; replay {:.1} ms of {} records)",
        ms(wall),
        ms(report.snapshot_load),
        per_sec(rate),
        ms(report.replay),
        report.records_replayed,
    );
    let open_rate = events as f64 / wall.as_secs_f64();
    row(
        section,
        format!("{label}: open, all from snapshot ({:.0} MiB)", mib(info.bytes)),
        format!(
            "{:.2} s, load **{}** events ({} whole open); checkpoint {:.2} s",
            wall.as_secs_f64(),
            per_sec(rate),
            per_sec(open_rate),
            checkpoint.as_secs_f64()
        ),
        "≥ 2M events/s",
        Some(rate >= 2e6),
    );
    drop(engine);
    (wall_log, wall, dir)
}

// ---------------------------------------------------------------------------
// The large state.

fn large_report(mode: Mode) {
    let budget = Duration::from_secs(
        std::env::var("RECWAL_BENCH_LARGE_BUDGET_S").ok().and_then(|value| value.parse().ok()).unwrap_or(600),
    );
    let config = SynthConfig::large();
    println!(
        "\nlarge state: {} users, {} items, {} events (Zipf {} / {}), ingest_batch_with of {BATCH_EVENTS}, Never",
        config.users, config.items, config.events, config.user_exponent, config.item_exponent
    );
    // Users that occur, noted while the events stream by (allocated before
    // the first memory reading).
    let mut seen = vec![false; config.users as usize];
    let events = synth::events(&config).inspect(|event| {
        if let Some(user) = event.user.strip_prefix('u').and_then(|digits| digits.parse::<usize>().ok()) {
            if let Some(flag) = seen.get_mut(user) {
                *flag = true;
            }
        }
    });
    let built = build(events, Call::Batch, mode, budget, Some(1_000_000));
    let label = "large";
    built.print(label);
    let section = "Large synthetic state (1M users, 100k items, 10M events)";
    if built.events < config.events {
        row(
            section,
            "build",
            format!("stopped at {} of {} events (budget {} s)", built.events, config.events, budget.as_secs()),
            "< 10 min",
            Some(false),
        );
    } else {
        row(
            section,
            "build (ingest_batch_with, Never)",
            format!(
                "{:.0} s ({})",
                built.build.as_secs_f64(),
                per_sec(built.events as f64 / built.build.as_secs_f64())
            ),
            "< 10 min",
            Some(built.build < Duration::from_secs(600)),
        );
    }
    let per_event = built.anon_per_event();
    row(
        section,
        "resident memory per stored event",
        format!("**{per_event:.0} B** (RssAnon); {:.0} B with the mapped log (VmRSS)", built.total_per_event()),
        "≤ 200 B/event",
        Some(per_event <= 200.0),
    );
    let users: Vec<String> =
        seen.iter().enumerate().filter(|(_, &flag)| flag).map(|(user, _)| format!("u{user}")).collect();
    drop(seen);
    println!("large: {} distinct users", users.len());
    let limits = |strategy: Strategy| match strategy {
        Strategy::ItemRankExact => Limits { warm_up: 1, min: 3, max: 10, time: Duration::from_secs(10) },
        Strategy::Blend => Limits { warm_up: 5, min: 100, max: 5_000, time: Duration::from_secs(10) },
        _ => Limits { warm_up: 20, min: 300, max: 20_000, time: Duration::from_secs(10) },
    };
    recommend_report(section, label, &built.engine, &users, limits, large_goal_us);
    // Live traffic: the next events of the same workload, one before each
    // request (the memoised ItemRank column sums are then always stale).
    let mut more = synth::events(&SynthConfig { seed: config.seed + 1, ..config.clone() });
    let mut next = || more.next().unwrap();
    let live = Limits { warm_up: 5, min: 100, max: 5_000, time: Duration::from_secs(10) };
    under_ingest_report(section, label, &built.engine, &users, &mut next, live, large_goal_us);
    let events = built.events;
    let label = format!("{}M events, batch100 records", events / 1_000_000);
    let (from_log, from_snapshot, dir) = restart_report(section, &label, built, mode);
    for (from, open) in [("the snapshot", from_snapshot), ("the log alone", from_log)] {
        row(
            section,
            format!("{label}: back after a restart, from {from}"),
            format!("**{:.2} s**", open.as_secs_f64()),
            "10M events in < 10 s",
            Some(events >= 10_000_000 && open < Duration::from_secs(10)),
        );
    }

    // What the existing knobs buy (not the defaults): UserCF scanning at
    // most 1,000 users per item, fast ItemRank with one exact hop.
    let mut tuned = engine_config(SyncPolicy::Never, mode);
    tuned.usercf.scan_users_per_item = 1_000;
    tuned.itemrank.fast_hops = 1;
    let engine = Engine::open(dir.path(), tuned).unwrap();
    for strategy in [Strategy::UserCf, Strategy::ItemRank, Strategy::Blend] {
        let full = latency(&engine, &users, strategy, limits(strategy), Probe::Recommend, || {});
        print_latency("large-tuned", "recommend", strategy, &full);
        let goal = large_goal_us(strategy);
        row(
            section,
            format!("`{}` p50 / p99 with `scan_users_per_item = 1000`, `fast_hops = 1`", strategy.name()),
            format!("{} / **{}**", fmt_us(full.us(0.5)), fmt_us(full.us(0.99))),
            &goal.map_or("—".to_string(), |goal| format!("p99 ≤ {}", fmt_us(goal))),
            goal.map(|goal| full.us(0.99) <= goal),
        );
    }
}

// ---------------------------------------------------------------------------

fn criterion_config(mode: Mode) -> Criterion {
    let (warm_up, measure) = match mode {
        Mode::Quick | Mode::Test => (Duration::from_millis(100), Duration::from_millis(300)),
        Mode::Full => (Duration::from_secs(1), Duration::from_secs(3)),
    };
    Criterion::default().warm_up_time(warm_up).measurement_time(measure).sample_size(SAMPLES).configure_from_args()
}

fn ingest_report(payloads: &Payloads) {
    println!("\ningest: events/s, median of criterion's measurement samples");
    println!(
        "payloads: single-event record {:.1} B, {BATCH_EVENTS}-event record {:.0} B ({:.1} B/event)",
        payloads.mean_bytes(Call::Single),
        payloads.mean_bytes(Call::Batch),
        payloads.mean_bytes(Call::Batch) / BATCH_EVENTS as f64
    );
    let section = "Ingest (events/s, 1 engine, first 1M events of the large workload)";
    for (policy, _, _, threads) in INGEST_CASES {
        for call in [Call::Single, Call::Batch] {
            let Some(rate) = median_rate(&ingest_case(policy, threads, call)) else { continue };
            println!("ingest  {policy:6} {threads}t {:8} -> {}", call.name(), per_sec(rate));
            let (goal, met) = if policy == "never" { ("≥ 500k/s", Some(rate >= 500e3)) } else { ("—", None) };
            row(
                section,
                format!("`{policy}`, {threads} thread(s), {}", call.name()),
                format!("**{}**", per_sec(rate)),
                goal,
                met,
            );
        }
    }
    for (name, _, _, threads) in WAL_CASES {
        for call in [Call::Single, Call::Batch] {
            let Some(rate) = median_rate(&wal_case(name, threads, call)) else { continue };
            println!("wal     {name:10} {threads}t {:8} -> {} events", call.name(), per_sec(rate));
            row(
                section,
                format!("log alone `{name}`, {threads} thread(s), {} payloads", call.name()),
                per_sec(rate),
                "—",
                None,
            );
        }
    }
    // Under `Always` the engine writes through the map and then waits for a
    // sync (so concurrent callers share one); the log alone under `Always`
    // writes with pwrite and syncs at once.
    for call in [Call::Single, Call::Batch] {
        let engine = median_rate(&ingest_case("always", 1, call));
        let wal = median_rate(&wal_case("always", 1, call));
        if let (Some(engine), Some(wal)) = (engine, wal) {
            println!("bound   always 1t {:8}: engine / log (always) = {:.2}", call.name(), engine / wal);
            row(
                section,
                format!("`always` 1t {}: engine ÷ log alone (`always`)", call.name()),
                format!("**{:.2}**", engine / wal),
                "log is the bound (≈ 1)",
                Some(engine / wal >= 0.8),
            );
        }
    }
    // Under `Batch` an ingest call returns once its record is durable; the
    // log alone doing the same (append + wait) is the bound.
    for threads in [1, 8] {
        for call in [Call::Single, Call::Batch] {
            let engine = median_rate(&ingest_case("batch", threads, call));
            let wal = median_rate(&wal_case("batch+wait", threads, call));
            let never = median_rate(&ingest_case("never", 1, call));
            if let (Some(engine), Some(wal), Some(never)) = (engine, wal, never) {
                let ratio = engine / wal;
                println!(
                    "bound   batch {threads}t {:8}: engine / log (append+wait) = {ratio:.2}; engine Batch / engine Never = {:.3}",
                    call.name(),
                    engine / never
                );
                row(
                    section,
                    format!("`batch` {threads}t {}: engine ÷ log alone (append+wait)", call.name()),
                    format!("**{ratio:.2}** (engine `batch` is {:.1}% of engine `never`)", 100.0 * engine / never),
                    "log is the bound (≈ 1)",
                    Some(ratio >= 0.8),
                );
            }
        }
    }
}

/// Encoding and decoding of the records, per event (a part of ingest the
/// log and the state do not account for).
fn codec_report(pool: &[Event]) {
    let weights = KindWeights::default();
    let sample = &pool[..pool.len().min(100_000)];
    for call in [Call::Single, Call::Batch] {
        let began = Instant::now();
        let mut bytes = 0usize;
        for events in sample.chunks(call.events()) {
            let payload = encode(events, &weights);
            let decoded = LogRecord::decode(1, KIND_EVENTS_V1, &payload).unwrap();
            bytes += payload.len();
            std::hint::black_box(decoded);
        }
        let per_event = began.elapsed().as_secs_f64() * 1e9 / sample.len() as f64;
        println!("codec   {:8}: encode + decode {per_event:.0} ns/event ({bytes} bytes)", call.name());
    }
}

fn main() {
    let mode = mode();
    let large = mode != Mode::Test && env_flag("RECWAL_BENCH_LARGE");
    let report_only = env_flag("RECWAL_BENCH_REPORT_ONLY");
    let tree = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "engine bench: mode {mode:?}, tree {tree}, {} CPUs, large {large}, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );

    // The large state first, in a fresh heap, so its memory reading is not
    // flattered by memory freed earlier in the run.
    if large {
        large_report(mode);
    }

    // MovieLens-sized state (its memory is read before anything else of
    // this size ran).
    let dataset = ml_dataset(mode);
    println!("\nrecommend state: {}", dataset.name);
    let users = known_users(&dataset.events);
    let count = dataset.events.len() as u64;
    // Cloned as they go in, so the dataset's own memory is not freed (and
    // reused) during the build.
    let ml = build(dataset.events.iter().cloned(), Call::Batch, mode, Duration::MAX, None);
    assert_eq!(ml.events, count);
    // The `ease` strategy's item model, trained on this state (its training
    // time and memory: `cargo bench --bench ease`).
    if let Err(err) = ml.engine.train_item_model() {
        println!("ml100k: no item model ({err}); ease is not measured");
    }
    ml.print("ml100k");

    // Restart at the default size: 1M events, as 100-event records and as
    // single-event records.
    let restart_events: u64 = match mode {
        Mode::Test => 2_000,
        Mode::Quick => 200_000,
        Mode::Full => 1_000_000,
    };
    let section = "Restart (first 1M events of the large workload)";
    for call in [Call::Batch, Call::Single] {
        let events = synth::events(&SynthConfig { events: restart_events, ..SynthConfig::large() });
        let built = build(events, call, mode, Duration::MAX, None);
        let label = format!("{}k events, {} records", restart_events / 1000, call.name());
        built.print(&label);
        row(
            section,
            format!("{label}: memory per stored event"),
            format!("{:.0} B (RssAnon)", built.anon_per_event()),
            "(≤ 200 B/event at 10M)",
            None,
        );
        let _ = restart_report(section, &label, built, mode);
    }

    let pool = ingest_pool(mode);
    let payloads = Payloads::new(&pool, mode);
    let request_users = random_users(&users, 1000, 0x5EED);
    if !report_only {
        let mut criterion = criterion_config(mode);
        bench_ingest(&mut criterion, &pool, mode);
        bench_wal_only(&mut criterion, &payloads, mode);
        bench_recommend(&mut criterion, &ml.engine, &request_users);
        ingest_report(&payloads);
    }
    codec_report(&pool);

    println!("\nrecommend latency (n = {N}, users drawn uniformly from the known users)");
    let section = "Recommend on MovieLens 100k";
    recommend_report(section, "ml100k", &ml.engine, &users, |strategy| ml_limits(mode, strategy), ml_goal_us);
    // Last: this changes the state (the same ratings again).
    let limits = ml_limits(mode, Strategy::ItemRank);
    let mut at = 0usize;
    let mut again = || {
        at = (at + 1) % dataset.events.len();
        dataset.events[at].clone()
    };
    under_ingest_report(section, "ml100k", &ml.engine, &users, &mut again, limits, ml_goal_us);

    print_rows();
    println!("\nload average at the end: {}", load_average());
    Criterion::default().configure_from_args().final_summary();
}
