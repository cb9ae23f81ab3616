//! `recwal eval`: offline evaluation of every strategy on a ratings file,
//! through `recwal::eval` (the loader, the protocols, the metrics) and an
//! engine in a throw-away data dir.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use recwal::eval::{Delimiter, Format, LoadOptions, Protocol, RatingFile, RatingScale};
use recwal::EngineConfig;

macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(|err| format!("writing to stdout: {err}"))
    };
}

/// What `--help` says after the flags.
const EVAL_HELP: &str = "\
Files: --format ml100k (MovieLens 100k u.data: user<TAB>item<TAB>rating<TAB>timestamp, no header), ml1m \
(MovieLens 1M/10M ratings.dat: user::item::rating::timestamp), inter (RecBole atomic file: a header of \
name:type columns user_id, item_id[, rating][, timestamp]), csv, tsv, jsonl (one JSON object a line: \
user, item[, rating][, timestamp | timestamp_ms], as recwal export writes it). Without --format the \
extension decides: .csv, .tsv, .inter, .dat (ml1m), .jsonl/.ndjson, anything else ml100k. CSV/TSV files are read by the csv crate \
(RFC 4180 quoting, as pandas writes it) and have 2 columns (user,item: implicit feedback), 3 \
(user,item,rating) or 4 (user,item,rating,timestamp), or any columns named in a header row (user/userId/\
user_id/uid, item/itemId/movieId/item_id/iid, rating/score, timestamp/time). The first row is taken as a \
header when every field is such a name, or when none of its fields is a number while the next row has a \
number where it has none; --header or --no-header says so instead. Timestamps are seconds since the epoch.

Ids: any string (user and item ids are the file's text). The hash 80/20 split keys a rating by \
splitmix64((42<<42) ^ (user<<21) ^ item) when both ids are non-negative integers (the reference figures), \
and by splitmix64(splitmix64(42 ^ fnv1a64(user)) ^ fnv1a64(item)) over the ids' UTF-8 bytes otherwise.

Relevance: a file with no rating column is implicit feedback: every held-out interaction is relevant. \
With ratings, a held-out rating is relevant when it is >= --relevant-min (default 4 on the default 0..5 \
scale; three quarters of the way up a --rating-scale, e.g. 7.75 on 1..10). Ratings outside the scale \
are refused with their line. A split in which no held-out interaction is relevant is an error (every \
metric would be 0).

Protocols: hash-80-20 (per user, a fifth of the ratings rounded up, chosen by the hash above), temporal \
(per user, the latest --test-fraction of the ratings by timestamp), leave-last-out (per user with at \
least 2 ratings, the latest one; HR@k is the hit rate on it), random-holdout (each rating with \
probability --test-fraction, drawn from --seed). The training ratings are ingested in event-time order, \
so the figures do not depend on the order of the rows. See docs/EVALUATION.md.";

/// `recwal eval`'s arguments.
#[derive(Args)]
#[command(after_long_help = EVAL_HELP)]
pub(crate) struct EvalArgs {
    /// The ratings file (string ids, explicit ratings or implicit feedback).
    file: PathBuf,
    /// Cut-off of the top-N metrics.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// The strategies to measure, comma-separated (default: every one).
    #[arg(long, value_delimiter = ',', value_parser = parse_strategy)]
    strategies: Vec<recwal::Strategy>,
    /// The file's layout: ml100k, ml1m, inter, csv, tsv or jsonl (default: by extension).
    #[arg(long)]
    format: Option<Format>,
    /// Field separator (one byte; tab, comma, semicolon, pipe, space or the character).
    #[arg(long)]
    delimiter: Option<Delimiter>,
    /// The first row of a CSV/TSV file is a header (default: detected).
    #[arg(long, conflicts_with = "no_header")]
    header: bool,
    /// The first row of a CSV/TSV file is data (default: detected).
    #[arg(long)]
    no_header: bool,
    /// The ratings' scale, MIN..MAX (default 0..5); ratings outside it are refused.
    #[arg(long, value_name = "MIN..MAX")]
    rating_scale: Option<RatingScale>,
    /// A held-out rating is relevant when it is at least this (default: 4 on
    /// the default scale, else three quarters of the way up the scale). Not
    /// for implicit files, where every interaction is relevant.
    #[arg(long, value_name = "R")]
    relevant_min: Option<f32>,
    /// How ratings are divided into train and test.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Hash8020)]
    protocol: ProtocolArg,
    /// The share held out by temporal and random-holdout, in (0, 1).
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// The seed of random-holdout.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    /// Per user, a fifth of the ratings (rounded up) by a hash of the ids.
    #[value(name = "hash-80-20")]
    Hash8020,
    /// Per user, the latest --test-fraction by timestamp.
    Temporal,
    /// Per user with at least 2 ratings, the latest by timestamp.
    LeaveLastOut,
    /// Each rating with probability --test-fraction (--seed).
    RandomHoldout,
}

impl EvalArgs {
    fn protocol(&self) -> Protocol {
        match self.protocol {
            ProtocolArg::Hash8020 => Protocol::Hash8020,
            ProtocolArg::Temporal => Protocol::Temporal { test_fraction: self.test_fraction },
            ProtocolArg::LeaveLastOut => Protocol::LeaveLastOut,
            ProtocolArg::RandomHoldout => {
                Protocol::RandomHoldout { seed: self.seed, test_fraction: self.test_fraction }
            }
        }
    }
}

/// Which held-out interactions count as relevant.
struct Relevance {
    /// Ratings at least this are relevant (−∞: every interaction).
    min: f32,
    /// The rule, for the output and for errors.
    rule: String,
}

fn relevance(args: &EvalArgs, file: &RatingFile, scale: RatingScale) -> Result<Relevance, String> {
    let source = args.file.display();
    if !file.has_rating {
        if let Some(given) = args.relevant_min {
            return Err(format!(
                "{source}: --relevant-min {given}: the file has no rating column (implicit feedback), so every \
                 held-out interaction is relevant"
            ));
        }
        return Ok(Relevance { min: f32::NEG_INFINITY, rule: "any interaction".to_string() });
    }
    let min = match (args.relevant_min, args.rating_scale) {
        (Some(given), _) if !given.is_finite() => return Err(format!("--relevant-min {given}: not a finite number")),
        (Some(given), _) => given,
        (None, Some(scale)) => scale.min + 0.75 * (scale.max - scale.min),
        (None, None) => 4.0,
    };
    if min > scale.max {
        return Err(format!("--relevant-min {min} is above the rating scale {scale}: no rating could be relevant"));
    }
    Ok(Relevance { min, rule: format!("rating ≥ {min}") })
}

pub(crate) fn run(args: &EvalArgs) -> Result<ExitCode, String> {
    use recwal::eval::{evaluate_engine, load_rating_file, split, train_engine, EvalSet};
    let scale = args.rating_scale.unwrap_or(RatingScale::DEFAULT);
    let header = match (args.header, args.no_header) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let options = LoadOptions { format: args.format, delimiter: args.delimiter, header, scale: Some(scale) };
    let file = load_rating_file(&args.file, &options).map_err(|err| err.to_string())?;
    let relevance = relevance(args, &file, scale)?;
    let protocol = args.protocol();
    if matches!(protocol, Protocol::Temporal { .. } | Protocol::LeaveLastOut) && !file.has_timestamp {
        return Err(format!(
            "{}: no timestamp column: the {} protocol orders each user's ratings by time (use hash-80-20 or \
             random-holdout)",
            args.file.display(),
            protocol.name()
        ));
    }
    let split = split(&file.ratings, protocol).map_err(|err| err.to_string())?;
    if split.test.is_empty() {
        return Err(format!(
            "{}: the {protocol} split holds out nothing: there is nothing to measure",
            args.file.display()
        ));
    }
    if !split.test.iter().any(|rating| rating.value >= relevance.min) {
        let highest = split.test.iter().map(|rating| rating.value).fold(f32::NEG_INFINITY, f32::max);
        return Err(format!(
            "{}: no test interaction is relevant under the rule {} (the {protocol} split holds out {} ratings, the \
             highest {highest}): every metric would be 0; pass --relevant-min R (or --rating-scale MIN..MAX)",
            args.file.display(),
            relevance.rule,
            split.test.len()
        ));
    }
    let set = EvalSet::new(&split);
    let scratch = ScratchDir::new()?;
    let mut config = EngineConfig::default();
    config.wal = config.wal.sync_policy(recwal::wal::SyncPolicy::Never);
    config.checkpoint.every = None;
    config.checkpoint.every_records = None;
    config.checkpoint.every_bytes = None;
    // Implicit interactions are ingested as ratings of 1.
    config.rating_min = scale.min.min(1.0);
    config.rating_max = scale.max.max(1.0);
    let engine = train_engine(&scratch.path, config, &split.train).map_err(|err| err.to_string())?;
    let k = args.k;
    let users: std::collections::HashSet<&str> = file.ratings.iter().map(|rating| rating.user.as_str()).collect();
    let items: std::collections::HashSet<&str> = file.ratings.iter().map(|rating| rating.item.as_str()).collect();
    let feedback = if file.has_rating {
        format!("ratings on the scale {scale}")
    } else {
        "implicit: no rating column".to_string()
    };
    out!(
        "{} ratings from {} as {} ({} users, {} items; {feedback})",
        file.ratings.len(),
        args.file.display(),
        file.format,
        users.len(),
        items.len()
    )?;
    out!(
        "{protocol}: {} train, {} test; relevant: {}; k = {k}; {} users with a relevant test item\n",
        split.train.len(),
        split.test.len(),
        relevance.rule,
        set_users_with_relevant(&split.test, relevance.min)
    )?;
    out!("| strategy | P@{k} | R@{k} | NDCG@{k} | HR@{k} | DOA | µs/user |")?;
    out!("|---|---|---|---|---|---|---|")?;
    let strategies = if args.strategies.is_empty() { recwal::Strategy::ALL.to_vec() } else { args.strategies.clone() };
    for strategy in strategies {
        let report = evaluate_engine(&engine, &set, strategy, k, relevance.min);
        let r = report.report;
        out!(
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.2} | {} |",
            strategy.name(),
            r.precision,
            r.recall,
            r.ndcg,
            r.hit_rate,
            r.doa,
            report.per_user.as_micros()
        )?;
    }
    drop(engine);
    Ok(ExitCode::SUCCESS)
}

/// A strategy by its name, or an error listing the names.
fn parse_strategy(name: &str) -> Result<recwal::Strategy, String> {
    recwal::Strategy::from_name(name)
        .ok_or_else(|| format!("unknown strategy {name:?}; one of {}", recwal::Strategy::names()))
}

/// Users with at least one relevant held-out rating: the top-N metrics'
/// denominator.
fn set_users_with_relevant(test: &[recwal::eval::Rating], min: f32) -> usize {
    test.iter()
        .filter(|rating| rating.value >= min)
        .map(|rating| rating.user.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// The throw-away data dir of `eval`: created new (never one left by an
/// earlier run), removed when dropped, on every path out.
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn new() -> Result<ScratchDir, String> {
        let base = std::env::temp_dir();
        let pid = std::process::id();
        for attempt in 0..100u32 {
            let path = base.join(format!("recwal-eval-{pid}-{attempt}"));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(ScratchDir { path }),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(format!("{}: {err}", path.display())),
            }
        }
        Err(format!("{}: no free name for a scratch directory (recwal-eval-{pid}-*)", base.display()))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), %err, "could not remove the scratch data dir");
        }
    }
}
