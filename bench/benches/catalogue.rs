//! The catalogue on the large state, in one run:
//!
//! - the state: `SynthConfig::large()` (1M users, 100k items, 10M events,
//!   `ingest_batch_with` of 100 events, `Never`), then every item upserted
//!   with `synth::items` (20 categories `c0`..`c19`, `c19` holding 1% of the
//!   items, 30% of items in a second category, labels `brand` and `price`, a
//!   publication time in the year before the events);
//! - memory per item with metadata: `RssAnon` before and after the upserts,
//!   divided by the items (the items already exist from events, so this is
//!   the metadata and its indexes alone);
//! - `recommend` (n = 10) p50 / p99 for `user_cf`, `item_rank` and
//!   `popularity`: unfiltered, with a one-category filter (`c0`, ≈ 7% of the
//!   items) and with the 1%-selective filter (`c19`), measured interleaved
//!   (each drawn user asks all three, in rotating order), so the three share
//!   the machine's load; answers with fewer than n items are counted;
//! - unfiltered `recommend` for `user_cf` and `item_rank` before any item
//!   has metadata and after the upserts: what the standing rules (hidden,
//!   published, expired, read per candidate) cost a request that filters
//!   nothing;
//! - `latest` (n = 10) p50 / p99, unfiltered, by `c0` and by `c19`, and
//!   `popular_matching` by `c19`;
//! - restart: `Engine::open` from the log alone (events and item records),
//!   the replay rate, and the reopened state's digest checked; then the
//!   replay of a log holding the item records alone, for their share.
//!
//! Then a goals table (markdown) with ✔/✘.
//!
//! Run: `cargo bench --bench catalogue` (results: docs/BENCHMARKS.md, "The
//! catalogue"). The build stops after `RECWAL_BENCH_LARGE_BUDGET_S` seconds
//! (default 600) and says how far it got. `RECWAL_BENCH_QUICK=1`: the first
//! 1M events only. Under `cargo test` (no `--bench` argument) everything runs
//! once on a few thousand events.
#![allow(clippy::print_stdout)]
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use recwal::synth::{self, CatalogueConfig, SplitMix64, SynthConfig};
use recwal::wal::{Durability, SyncPolicy};
use recwal::{Engine, EngineConfig, ItemQuery, RecommendRequest, Strategy};

/// Events per `ingest_batch_with` call.
const BATCH_EVENTS: usize = 100;
/// Items asked for per request.
const N: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `cargo test`: everything once, tiny.
    Test,
    /// `RECWAL_BENCH_QUICK`: the first 1M events.
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

fn workload(mode: Mode) -> SynthConfig {
    match mode {
        Mode::Test => SynthConfig { users: 2_000, items: 1_000, events: 20_000, ..SynthConfig::large() },
        Mode::Quick => SynthConfig { events: 1_000_000, ..SynthConfig::large() },
        Mode::Full => SynthConfig::large(),
    }
}

/// `EngineConfig::default()`, `Never`, no automatic checkpoints.
fn engine_config(mode: Mode) -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.sync_policy(SyncPolicy::Never);
    if mode == Mode::Test {
        config.wal = config.wal.segment_bytes(4 << 20).segments_initial(2);
    }
    config.checkpoint.disable_automatic();
    config
}

/// `RssAnon` of /proc/self/status in bytes, after handing free pages back.
fn rss_anon() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's arenas; it
    // touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            let value = line.strip_prefix("RssAnon:")?;
            value.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn per_sec(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2}M/s", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1}k/s", rate / 1e3)
    } else {
        format!("{rate:.0}/s")
    }
}

fn fmt_us(us: f64) -> String {
    if us >= 1_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} µs")
    }
}

/// The goals table, filled as figures come in.
struct Goals(Vec<[String; 4]>, Vec<Option<bool>>);

impl Goals {
    fn row(&mut self, case: impl Into<String>, measured: impl Into<String>, goal: &str, met: Option<bool>) {
        self.0.push([case.into(), measured.into(), goal.to_string(), String::new()]);
        self.1.push(met);
    }

    fn print(&self) {
        println!("\n## goals (markdown)\n");
        println!("| case | measured | goal | met |");
        println!("|---|---|---|---|");
        for (row, met) in self.0.iter().zip(&self.1) {
            let met = match met {
                Some(true) => "✔",
                Some(false) => "✘",
                None => "",
            };
            println!("| {} | {} | {} | {met} |", row[0], row[1], row[2]);
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new(3).unwrap()
}

fn us(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1e3
}

/// Times `run` once into `histogram` (ns).
fn timed<T>(histogram: &mut Histogram<u64>, run: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = std::hint::black_box(run());
    histogram.record(start.elapsed().as_nanos().max(1) as u64).unwrap();
    out
}

/// How many timed rounds a measurement makes.
#[derive(Clone, Copy)]
struct Limits {
    warm_up: usize,
    min: usize,
    max: usize,
    time: Duration,
}

impl Limits {
    fn of(mode: Mode, slow: bool) -> Limits {
        match mode {
            Mode::Test => Limits { warm_up: 1, min: 3, max: 3, time: Duration::ZERO },
            Mode::Quick => Limits { warm_up: 5, min: 100, max: 2_000, time: Duration::from_secs(2) },
            Mode::Full if slow => Limits { warm_up: 20, min: 500, max: 5_000, time: Duration::from_secs(12) },
            Mode::Full => Limits { warm_up: 100, min: 2_000, max: 50_000, time: Duration::from_secs(5) },
        }
    }

    /// Calls `round(i, record)` for the warm-up (not recorded) and then
    /// until the limits are met.
    fn run(self, mut round: impl FnMut(usize, bool)) {
        for at in 0..self.warm_up {
            round(at, false);
        }
        let began = Instant::now();
        let mut rounds = 0;
        while rounds < self.max && (rounds < self.min || began.elapsed() < self.time) {
            round(rounds, true);
            rounds += 1;
        }
    }
}

/// One variant of a recommend request: its name and filter category.
const VARIANTS: [(&str, Option<&str>); 3] =
    [("unfiltered", None), ("1 category (c0)", Some("c0")), ("1% category (c19)", Some("c19"))];

fn recommend_report(goals: &mut Goals, engine: &Engine, users: &[String], mode: Mode) {
    println!("\nrecommend (n = {N}), interleaved: each drawn user asks unfiltered, c0 and c19, in rotating order");
    for strategy in [Strategy::UserCf, Strategy::ItemRank, Strategy::Popularity] {
        let mut histograms: Vec<Histogram<u64>> = VARIANTS.iter().map(|_| histogram()).collect();
        let mut short = [0usize; VARIANTS.len()];
        let mut rng = SplitMix64::new(0xBEEF);
        let slow = strategy != Strategy::Popularity;
        Limits::of(mode, slow).run(|round, record| {
            let user = &users[rng.below(users.len() as u64) as usize];
            for turn in 0..VARIANTS.len() {
                let at = (round + turn) % VARIANTS.len();
                let mut request = RecommendRequest::new(user.as_str(), N, strategy);
                if let Some(category) = VARIANTS[at].1 {
                    request = request.in_categories([category]);
                }
                let answer = if record {
                    timed(&mut histograms[at], || engine.recommend(&request).unwrap())
                } else {
                    engine.recommend(&request).unwrap()
                };
                if record && answer.items.len() < N {
                    short[at] += 1;
                }
            }
        });
        for (at, (name, _)) in VARIANTS.iter().enumerate() {
            let h = &histograms[at];
            println!(
                "latency recommend {:12} {name:18} -> p50 {:9.1} p99 {:9.1} p99.9 {:9.1} max {:9.1} µs ({} requests, {} short)",
                strategy.name(),
                us(h, 0.5),
                us(h, 0.99),
                us(h, 0.999),
                h.max() as f64 / 1e3,
                h.len(),
                short[at]
            );
        }
        let unfiltered_p99 = us(&histograms[0], 0.99);
        for (at, (name, _)) in VARIANTS.iter().enumerate() {
            let (p50, p99) = (us(&histograms[at], 0.5), us(&histograms[at], 0.99));
            let ratio = p99 / unfiltered_p99.max(1e-3);
            let (goal, met) = match at {
                0 => ("—", None),
                1 => ("p99 ≤ 10 ms and ≤ 1.5× unfiltered", Some(p99 <= 10_000.0 && ratio <= 1.5)),
                _ => ("p99 ≤ 20 ms", Some(p99 <= 20_000.0)),
            };
            let ratio_text = if at == 0 { String::new() } else { format!(", {ratio:.2}× unfiltered p99") };
            goals.row(
                format!("`recommend` `{}`, {name}: p50 / p99", strategy.name()),
                format!("{} / **{}**{ratio_text}; {} short answers", fmt_us(p50), fmt_us(p99), short[at]),
                goal,
                met,
            );
        }
    }
}

/// Unfiltered `recommend` p50 / p99 (µs) of `strategy`, for the users the
/// interleaved measurement draws (same seed), one request per round.
fn unfiltered_latency(engine: &Engine, users: &[String], strategy: Strategy, mode: Mode) -> (f64, f64, u64) {
    let mut h = histogram();
    let mut rng = SplitMix64::new(0xBEEF);
    Limits::of(mode, true).run(|_, record| {
        let user = &users[rng.below(users.len() as u64) as usize];
        let request = RecommendRequest::new(user.as_str(), N, strategy);
        if record {
            timed(&mut h, || engine.recommend(&request).unwrap());
        } else {
            engine.recommend(&request).unwrap();
        }
    });
    (us(&h, 0.5), us(&h, 0.99), h.len())
}

/// Unfiltered `recommend` for `user_cf` and `item_rank` on the state before
/// any item has metadata, then after (same users, same seed): what the
/// catalogue's standing rules (hidden, published, expired: read per
/// candidate) cost a request that does not filter.
fn standing_rules_report(
    goals: &mut Goals,
    before: &[(Strategy, (f64, f64, u64))],
    engine: &Engine,
    users: &[String],
    mode: Mode,
) {
    println!();
    for &(strategy, (p50_before, p99_before, count)) in before {
        let (p50, p99, count_after) = unfiltered_latency(engine, users, strategy, mode);
        println!(
            "latency recommend {:12} unfiltered, no item metadata -> p50 {p50_before:9.1} p99 {p99_before:9.1} µs ({count}); \
             every item with metadata -> p50 {p50:9.1} p99 {p99:9.1} µs ({count_after})",
            strategy.name()
        );
        goals.row(
            format!(
                "`recommend` `{}` unfiltered: no item metadata → every item with metadata, p50 / p99",
                strategy.name()
            ),
            format!(
                "{} / {} → {} / {} (p50 {:.2}×)",
                fmt_us(p50_before),
                fmt_us(p99_before),
                fmt_us(p50),
                fmt_us(p99),
                p50 / p50_before.max(1e-3)
            ),
            "—",
            None,
        );
    }
}

fn latest_report(goals: &mut Goals, engine: &Engine, mode: Mode) {
    println!();
    let queries: [(&str, ItemQuery, bool); 4] = [
        ("`latest`, unfiltered", ItemQuery::top(N), false),
        ("`latest` by category (c0)", ItemQuery::top(N).in_categories(["c0"]), true),
        ("`latest` by the 1% category (c19)", ItemQuery::top(N).in_categories(["c19"]), true),
        ("`popular` by the 1% category (c19)", ItemQuery::top(N).in_categories(["c19"]), false),
    ];
    for (at, (name, query, goal)) in queries.into_iter().enumerate() {
        let mut h = histogram();
        let mut short = 0usize;
        let mut offset_rng = SplitMix64::new(0xFEED);
        Limits::of(mode, false).run(|_, record| {
            // Pages 1–10 of the list, so the walk is not always the same.
            let query = query.clone().offset(N * offset_rng.below(10) as usize);
            let found = if at == 3 {
                let run = || engine.popular_matching(&query).unwrap().len();
                if record {
                    timed(&mut h, run)
                } else {
                    run()
                }
            } else {
                let run = || engine.latest(&query).unwrap().len();
                if record {
                    timed(&mut h, run)
                } else {
                    run()
                }
            };
            short += usize::from(record && found < N);
        });
        println!(
            "latency {name:40} -> p50 {:9.1} p99 {:9.1} max {:9.1} µs ({} requests, pages 1–10, {short} short)",
            us(&h, 0.5),
            us(&h, 0.99),
            h.max() as f64 / 1e3,
            h.len()
        );
        let p99 = us(&h, 0.99);
        goals.row(
            format!("{name} (n = {N}, pages 1–10): p50 / p99"),
            format!("{} / **{}**; {short} short answers", fmt_us(us(&h, 0.5)), fmt_us(p99)),
            if goal { "p99 ≤ 1 ms" } else { "—" },
            goal.then_some(p99 <= 1_000.0),
        );
    }
}

fn main() {
    let mode = mode();
    let budget = Duration::from_secs(
        std::env::var("RECWAL_BENCH_LARGE_BUDGET_S").ok().and_then(|value| value.parse().ok()).unwrap_or(600),
    );
    let tree = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "catalogue bench: mode {mode:?}, tree {tree}, {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let config = workload(mode);
    let catalogue = CatalogueConfig::default();
    println!(
        "state: {} users, {} items, {} events (Zipf {} / {}); catalogue: {} categories, the rare one {:.0}% of items",
        config.users,
        config.items,
        config.events,
        config.user_exponent,
        config.item_exponent,
        catalogue.categories,
        catalogue.rare_share * 100.0
    );
    let mut goals = Goals(Vec::new(), Vec::new());

    // Users that occur, noted as the events stream by.
    let mut seen = vec![false; config.users as usize];
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), engine_config(mode)).unwrap();
    let began = Instant::now();
    let mut events = 0u64;
    let mut chunk = Vec::with_capacity(BATCH_EVENTS);
    let mut stream = synth::events(&config).peekable();
    while stream.peek().is_some() {
        chunk.clear();
        chunk.extend(stream.by_ref().take(BATCH_EVENTS));
        for event in &chunk {
            if let Some(flag) =
                event.user.strip_prefix('u').and_then(|d| d.parse::<usize>().ok()).and_then(|u| seen.get_mut(u))
            {
                *flag = true;
            }
        }
        engine.ingest_batch_with(&chunk, Durability::Never).unwrap();
        let before = events;
        events += chunk.len() as u64;
        if events / 1_000_000 != before / 1_000_000 {
            println!("build  {events:>10} events, {:6.1} s", began.elapsed().as_secs_f64());
        }
        if began.elapsed() > budget {
            println!("build  stopped after {events} events: the budget of {} s is spent", budget.as_secs());
            break;
        }
    }
    drop(stream);
    let build = began.elapsed();
    println!(
        "build  {events} events in {:.1} s ({})",
        build.as_secs_f64(),
        per_sec(events as f64 / build.as_secs_f64())
    );
    goals.row(
        "build: events ingested (`ingest_batch_with` of 100, `Never`)",
        format!("{events} of {} in {:.0} s", config.events, build.as_secs_f64()),
        "all",
        Some(events == config.events),
    );

    // The catalogue: every item, with categories, labels and a publication time.
    let items: Vec<recwal::Item> = synth::items(&config, &catalogue).collect();
    let rare = catalogue.rare_category().unwrap();
    let in_rare = items.iter().filter(|item| item.categories.contains(&rare)).count();
    let in_c0 = items.iter().filter(|item| item.categories.iter().any(|c| c == "c0")).count();
    println!(
        "catalogue: {} items; c0 holds {in_c0} ({:.2}%), {rare} holds {in_rare} ({:.2}%)",
        items.len(),
        100.0 * in_c0 as f64 / items.len() as f64,
        100.0 * in_rare as f64 / items.len() as f64
    );
    // Unfiltered requests before any item has metadata (compared after the
    // upserts, by `standing_rules_report`).
    let users: Vec<String> =
        seen.iter().enumerate().filter(|(_, &flag)| flag).map(|(user, _)| format!("u{user}")).collect();
    drop(seen);
    let before: Vec<(Strategy, (f64, f64, u64))> = [Strategy::UserCf, Strategy::ItemRank]
        .into_iter()
        .map(|strategy| (strategy, unfiltered_latency(&engine, &users, strategy, mode)))
        .collect();

    let rss_before = rss_anon();
    let began = Instant::now();
    for item in &items {
        engine.upsert_item(item).unwrap();
    }
    let upserts = began.elapsed();
    let rss_after = rss_anon();
    let per_item = rss_after.saturating_sub(rss_before) as f64 / items.len() as f64;
    println!(
        "upsert {} items in {:.2} s ({}); RssAnon {:.1} → {:.1} MiB: {per_item:.0} B per item",
        items.len(),
        upserts.as_secs_f64(),
        per_sec(items.len() as f64 / upserts.as_secs_f64()),
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );
    goals.row(
        format!("memory per item with metadata ({} items, 1–2 categories, 2 labels, a publication time)", items.len()),
        format!(
            "**{per_item:.0} B** (RssAnon before/after the upserts); upserts {}",
            per_sec(items.len() as f64 / upserts.as_secs_f64())
        ),
        "stated",
        None,
    );
    drop(items);

    println!("{} distinct users", users.len());
    recommend_report(&mut goals, &engine, &users, mode);
    standing_rules_report(&mut goals, &before, &engine, &users, mode);
    latest_report(&mut goals, &engine, mode);

    // Restart from the log alone: events and item records.
    let reopen_config = engine.config().clone();
    let digest = engine.state_digest();
    engine.close().unwrap();
    let began = Instant::now();
    let engine = Engine::open(dir.path(), reopen_config).unwrap();
    let open = began.elapsed();
    assert_eq!(engine.state_digest(), digest, "the reopened state differs");
    let report = engine.open_report().clone();
    let rate = events as f64 / report.replay.as_secs_f64();
    println!(
        "restart from the log: open {:.2} s, replay {:.2} s of {} records ({} events + {} item records): {} events",
        open.as_secs_f64(),
        report.replay.as_secs_f64(),
        report.records_replayed,
        events,
        config.items,
        per_sec(rate)
    );
    goals.row(
        "restart from the log, item records included",
        format!(
            "open {:.2} s, replay {:.2} s of {} records: **{}** events",
            open.as_secs_f64(),
            report.replay.as_secs_f64(),
            report.records_replayed,
            per_sec(rate)
        ),
        "≥ 2M events/s",
        Some(rate >= 2e6),
    );
    drop(engine);
    drop(dir);

    // The item records' share of that replay: a log of the upserts alone.
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), engine_config(mode)).unwrap();
    for item in synth::items(&config, &catalogue) {
        engine.upsert_item(&item).unwrap();
    }
    let reopen_config = engine.config().clone();
    engine.close().unwrap();
    let engine = Engine::open(dir.path(), reopen_config).unwrap();
    let items_replay = engine.open_report().replay;
    println!(
        "restart, item records alone: replay {:.3} s of {} records ({} records)",
        items_replay.as_secs_f64(),
        engine.open_report().records_replayed,
        per_sec(config.items as f64 / items_replay.as_secs_f64())
    );
    goals.row(
        "restart: the item records of that log alone (a fresh engine, upserts only)",
        format!(
            "replay {:.3} s of {} records ({})",
            items_replay.as_secs_f64(),
            engine.open_report().records_replayed,
            per_sec(config.items as f64 / items_replay.as_secs_f64())
        ),
        "—",
        None,
    );
    drop(engine);
    drop(dir);

    goals.print();
    println!("\nload average at the end: {}", load_average());
}
