//! `recwal eval`: offline evaluation of every strategy on a ratings file,
//! through `recwal::eval` (the loader, the protocols, the metrics) and an
//! engine in a throw-away data dir.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use recwal::eval::{ColumnOrder, Delimiter, Format, LoadOptions, Protocol, RatingFile, RatingScale};
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
number where it has none; --header or --no-header says so instead. Other layouts: --columns (e.g. \
user,-,item,timestamp). Timestamps are seconds since the epoch.

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
so the figures do not depend on the order of the rows. See docs/EVALUATION.md.

Item models: ease and ials are measured with an item model of their family, trained on the train part \
with the configured parameters (engine defaults) before their row.

Learned ranker (docs/MODELS.md): --export-ranker-data DIR writes a ranker's training set from the \
protocol's train part only (--protocol none: every rating); scripts/ranker/train.py trains LightGBM \
LambdaRank on it and exports ONNX; --ranker MODEL.onnx measures each strategy with the model ordering \
its --candidates best items. --items FILE fills the catalogue features.";

/// `recwal eval`'s arguments.
#[derive(Args)]
#[command(after_long_help = EVAL_HELP)]
pub(crate) struct EvalArgs {
    /// The ratings file (string ids, explicit ratings or implicit feedback).
    file: PathBuf,
    /// Cut-off of the top-N metrics, 1–1000 (the most a recommendation holds).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=recwal::N_MAX as i64))]
    k: u16,
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
    /// The columns of a CSV/TSV file in order: user, item, rating, timestamp
    /// (seconds), `-` for one to ignore, e.g. `user,-,item,timestamp` (no
    /// rating: implicit feedback). For a file whose columns are not user,
    /// item[, rating[, timestamp]] and whose header does not name them. Its
    /// first row is data unless --header, or every field is a column name.
    #[arg(long, value_name = "NAMES", allow_hyphen_values = true)]
    columns: Option<ColumnOrder>,
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
    /// The items: a catalogue as `recwal export --items` writes it (.jsonl,
    /// or .csv/.tsv as `recwal import --items` reads them), or MovieLens'
    /// movies (u.item, RecBole .item). They go into the engine's catalogue
    /// after training, for the catalogue features of schema 2
    /// (category_match, item_age_days).
    #[arg(long, value_name = "FILE")]
    items: Option<PathBuf>,
    /// A ranking model (ONNX, feature schema 1 or 2): added and activated
    /// on the trained engine; each strategy is measured twice, as it ranks
    /// and with the model ordering its --candidates best items.
    #[arg(long, value_name = "MODEL.onnx", conflicts_with = "export_ranker_data")]
    ranker: Option<PathBuf>,
    /// Write a learned ranker's training set into DIR instead of measuring:
    /// the protocol's train part (all ratings with --protocol none) is cut
    /// into --ranker-folds folds (per user, by a hash of the ids); for each
    /// fold an engine is trained on the others, and for every user with a
    /// relevant rating in the fold the --candidates items of
    /// --ranker-strategy are written with their schema-2 features and a
    /// label (1: relevant in the fold). The test part is never read.
    /// DIR/features.csv and DIR/meta.json; scripts/ranker/train.py trains on
    /// them.
    #[arg(long, value_name = "DIR")]
    export_ranker_data: Option<PathBuf>,
    /// Candidates per user the ranker orders (exported, and measured with
    /// --ranker).
    #[arg(long, default_value_t = 100)]
    candidates: usize,
    /// Folds of --export-ranker-data (each trains an engine on the rest).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..=100))]
    ranker_folds: u32,
    /// The strategy whose candidates --export-ranker-data writes.
    #[arg(long, value_parser = parse_strategy, default_value = "ease")]
    ranker_strategy: recwal::Strategy,
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
    /// Nothing held out (only with --export-ranker-data: a ranker for
    /// production, trained on every rating).
    None,
}

impl EvalArgs {
    /// `None` for `--protocol none`.
    fn protocol(&self) -> Option<Protocol> {
        Some(match self.protocol {
            ProtocolArg::None => return None,
            ProtocolArg::Hash8020 => Protocol::Hash8020,
            ProtocolArg::Temporal => Protocol::Temporal { test_fraction: self.test_fraction },
            ProtocolArg::LeaveLastOut => Protocol::LeaveLastOut,
            ProtocolArg::RandomHoldout => {
                Protocol::RandomHoldout { seed: self.seed, test_fraction: self.test_fraction }
            }
        })
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
    use recwal::eval::{evaluate_engine, evaluate_engine_ranked, load_rating_file, split, EvalSet};
    let scale = args.rating_scale.unwrap_or(RatingScale::DEFAULT);
    let header = match (args.header, args.no_header) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let options = LoadOptions {
        format: args.format,
        delimiter: args.delimiter,
        header,
        scale: Some(scale),
        columns: args.columns,
    };
    let file = load_rating_file(&args.file, &options).map_err(|err| err.to_string())?;
    let relevance = relevance(args, &file, scale)?;
    // Checked whatever the protocol: a NaN or 1.5 given to a protocol that
    // does not use it was silently ignored.
    if !(args.test_fraction > 0.0 && args.test_fraction < 1.0) {
        return Err(format!("--test-fraction {}: must be in (0, 1)", args.test_fraction));
    }
    if args.candidates == 0 || args.candidates > recwal::N_MAX {
        return Err(format!("--candidates {}: must be in 1..={}", args.candidates, recwal::N_MAX));
    }
    let Some(protocol) = args.protocol() else {
        return match &args.export_ranker_data {
            Some(dir) => export_ranker_data(args, &file.ratings, &relevance, scale, dir),
            None => Err("--protocol none holds nothing out: it is only for --export-ranker-data".to_string()),
        };
    };
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
    if split.train.is_empty() {
        // Every figure would come from ties among all-zero scores.
        return Err(format!(
            "{}: the {protocol} split holds out every rating ({} of them): nothing is left to train on (each user \
             needs ratings on both sides; try leave-last-out, or a smaller --test-fraction)",
            args.file.display(),
            split.test.len()
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
    if let Some(dir) = &args.export_ranker_data {
        return export_ranker_data(args, &split.train, &relevance, scale, dir);
    }
    let set = EvalSet::new(&split);
    let scratch = ScratchDir::new()?;
    let engine = train(args, &scratch, scale, &split.train, &catalogue(args)?)?;
    let ranker = match &args.ranker {
        None => None,
        Some(path) => {
            let added = engine.add_model_file(path).map_err(|err| format!("--ranker {}: {err}", path.display()))?;
            engine.activate_model(added.version).map_err(|err| format!("--ranker {}: {err}", path.display()))?;
            Some(added.version)
        }
    };
    let k = usize::from(args.k);
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
    let mut strategies =
        if args.strategies.is_empty() { recwal::Strategy::ALL.to_vec() } else { args.strategies.clone() };
    // `--strategies popularity,popularity` printed the row twice.
    let mut seen = std::collections::HashSet::new();
    strategies.retain(|strategy| seen.insert(strategy.name()));
    for strategy in strategies {
        let report = match evaluate_engine(&engine, &set, strategy, k, relevance.min) {
            Ok(report) => report,
            Err(err) => {
                // No item model of its family (too many items for EASE, too
                // little data): its scores would be all zero, its figures ties.
                out!("| {} | not trained: {err} | | | | | |", strategy.name())?;
                continue;
            }
        };
        let r = report.report;
        out!(
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {} | {} |",
            strategy.name(),
            r.precision,
            r.recall,
            r.ndcg,
            r.hit_rate,
            doa_cell(&r),
            report.per_user.as_micros()
        )?;
        let Some(version) = ranker else { continue };
        let (ranked, unranked) = evaluate_engine_ranked(&engine, &set, strategy, k, relevance.min)
            .map_err(|err| format!("{}: {err}", strategy.name()))?;
        if unranked > 0 {
            return Err(format!(
                "--ranker: {unranked} users of {} were answered without the model (see the log): no figure",
                strategy.name()
            ));
        }
        let r = ranked.report;
        out!(
            "| {} + ranker (v{version}, {} candidates) | {:.4} | {:.4} | {:.4} | {:.4} | {} | {} |",
            strategy.name(),
            engine.config().models.candidates,
            r.precision,
            r.recall,
            r.ndcg,
            r.hit_rate,
            doa_cell(&r),
            ranked.per_user.as_micros()
        )?;
    }
    drop(engine);
    Ok(ExitCode::SUCCESS)
}

/// The DOA figure, or `n/a` when no test user has a pair to order (every
/// user rated every item, say): a mean over no users is no figure, and 0
/// would read as the worst possible.
fn doa_cell(report: &recwal::eval::Report) -> String {
    if report.users_doa == 0 {
        "n/a".to_string()
    } else {
        format!("{:.2}", report.doa)
    }
}

/// The --items catalogue (empty without the flag): as `recwal export
/// --items` writes it (and `recwal import --items` reads it), or MovieLens'
/// movies.
fn catalogue(args: &EvalArgs) -> Result<Vec<recwal::Item>, String> {
    match &args.items {
        None => Ok(Vec::new()),
        Some(path)
            if path.extension().is_some_and(|ext| ["jsonl", "ndjson", "csv", "tsv"].iter().any(|e| ext == *e)) =>
        {
            Ok(crate::import_items::load_items(path)
                .map_err(|err| format!("--items: {err}"))?
                .into_iter()
                .map(|(_, item)| item)
                .collect())
        }
        Some(path) => recwal::eval::load_items(path).map_err(|err| format!("--items: {err}")),
    }
}

/// An engine in `scratch` trained on `ratings`, with `items` in its catalogue.
fn train(
    args: &EvalArgs,
    scratch: &ScratchDir,
    scale: RatingScale,
    ratings: &[recwal::eval::Rating],
    items: &[recwal::Item],
) -> Result<recwal::Engine, String> {
    let mut config = EngineConfig::default();
    config.wal = config.wal.sync_policy(recwal::wal::SyncPolicy::Never);
    config.checkpoint.disable_automatic();
    // Implicit interactions are ingested as ratings of 1.
    config.rating_min = scale.min.min(1.0);
    config.rating_max = scale.max.max(1.0);
    config.models.candidates = args.candidates;
    let engine = recwal::eval::train_engine(&scratch.path, config, ratings).map_err(|err| err.to_string())?;
    // After training, so the items' dense ids (and the figures without a
    // catalogue) do not move.
    for item in items {
        engine.upsert_item(item).map_err(|err| format!("--items: item {:?}: {err}", item.id))?;
    }
    Ok(engine)
}

/// `--export-ranker-data`: the ranker's training set from `part` (a
/// protocol's train part, or every rating), written into `dir`.
fn export_ranker_data(
    args: &EvalArgs,
    part: &[recwal::eval::Rating],
    relevance: &Relevance,
    scale: RatingScale,
    dir: &std::path::Path,
) -> Result<ExitCode, String> {
    let strategy = args.ranker_strategy;
    let schema = recwal::model::schema::FEATURE_SCHEMA_VERSION;
    let folds = recwal::eval::validation_folds(part, args.ranker_folds as usize);
    let items = catalogue(args)?;
    let mut set = recwal::eval::RankerSet { schema, ..Default::default() };
    for (fold, carve) in folds.iter().enumerate() {
        let scratch = ScratchDir::new()?;
        let engine = train(args, &scratch, scale, &carve.train, &items)?;
        let found = recwal::eval::ranker_set(
            &engine,
            &carve.test,
            strategy,
            args.candidates,
            relevance.min,
            schema,
            fold as u32,
        )
        .map_err(|err| err.to_string())?;
        set.append(found);
    }
    if set.users == 0 {
        return Err(format!(
            "{}: no user has a relevant validation rating among their {} candidates: nothing to learn from",
            args.file.display(),
            args.candidates
        ));
    }
    std::fs::create_dir_all(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
    let features = dir.join("features.csv");
    set.write_csv(&features).map_err(|err| format!("{}: {err}", features.display()))?;
    let meta = serde_json::json!({
        "source": args.file.display().to_string(),
        "protocol": args.protocol().map_or("none", |protocol| protocol.name()),
        "part_ratings": part.len(),
        "folds": folds.len(),
        "relevant": relevance.rule,
        "strategy": strategy.name(),
        "candidates": args.candidates,
        "feature_schema": schema,
        "features": &recwal::model::schema::FEATURE_NAMES[..recwal::model::schema::width(schema)],
        "users": set.users,
        "users_without_positive": set.users_without_positive,
        "rows": set.rows.len(),
        "items_file": args.items.as_ref().map(|path| path.display().to_string()),
    });
    let meta_path = dir.join("meta.json");
    let text = serde_json::to_string_pretty(&meta).map_err(|err| err.to_string())?;
    std::fs::write(&meta_path, text + "\n").map_err(|err| format!("{}: {err}", meta_path.display()))?;
    out!(
        "{}: {} ratings in {} folds; {} groups, {} rows ({} candidates of {}, schema {schema}); {} groups \
         without a relevant item among their candidates",
        dir.display(),
        part.len(),
        folds.len(),
        set.users,
        set.rows.len(),
        args.candidates,
        strategy.name(),
        set.users_without_positive
    )?;
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
