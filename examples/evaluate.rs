//! Reproduces the evaluation table of docs/EVALUATION.md:
//!
//! ```text
//! scripts/fetch-movielens.sh
//! cargo run --release --example evaluate -- data/ml-100k/ml-100k.inter
//! ```
//!
//! With `RECWAL_EVAL_MODEL=<model.onnx>` the model is added and activated on
//! each trained engine and every strategy is also scored ranked by it (rows
//! `<strategy> + model`), so ranked and un-ranked can be compared on the same
//! split (needs the ONNX Runtime library: scripts/install-onnxruntime.sh).
//!
//! Protocols: `hash80/20` (top-N@10 and DOA) and MovieLens' five folds u1–u5
//! (DOA and top-N averaged over folds). Every strategy is trained by
//! ingesting the training ratings through `Engine::ingest_batch`.
//!
//! Then, when the movies are there (`ml-100k.item` or `u.item` beside the
//! ratings, or `RECWAL_EVAL_ITEMS=<file>`), the category table: the movies
//! go into the engine's catalogue (`Engine::upsert_item`: genres as
//! categories, release dates as publication times) and, on the hash 80/20
//! split, every strategy is asked for 10 items with a one-genre filter per
//! genre, measured against the user's held-out relevant items of that genre
//! (P@10, NDCG@10), beside the unfiltered answer. Without the file the table
//! is skipped with the reason. `RECWAL_EVAL_CATEGORIES_ONLY=1`: only that table.
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::path::PathBuf;

use recwal::eval::{
    categories_by_size, evaluate_engine, evaluate_engine_by_category, evaluate_engine_ranked, load_items, load_ratings,
    split, train_engine, CategoryEvaluation, EvalSet, Protocol, Report, StrategyReport,
};
use recwal::{EngineConfig, Item, Strategy};

const K: usize = 10;
const RELEVANT_MIN: f32 = 4.0;

fn config(alpha: f32) -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.sync_policy(recwal::wal::SyncPolicy::Never);
    config.checkpoint.disable_automatic();
    config.itemrank.alpha = alpha;
    // RECWAL_FAST_HOPS=<h>: exact hops of fast ItemRank.
    if let Some(hops) = std::env::var("RECWAL_FAST_HOPS").ok().and_then(|h| h.parse().ok()) {
        config.itemrank.fast_hops = hops;
    }
    // RECWAL_FAST_SEEDS=<n>: fast ItemRank's seed_items_max.
    if let Some(seeds) = std::env::var("RECWAL_FAST_SEEDS").ok().and_then(|n| n.parse().ok()) {
        config.itemrank.seed_items_max = seeds;
    }
    // RECWAL_FAST_SCAN=<n>: fast ItemRank's scan_users_per_item.
    if let Some(scan) = std::env::var("RECWAL_FAST_SCAN").ok().and_then(|n| n.parse().ok()) {
        config.itemrank.scan_users_per_item = scan;
    }
    // RECWAL_BLEND=<usercf>,<itemrank>,<popularity>: blend weights to try.
    if let Ok(weights) = std::env::var("RECWAL_BLEND") {
        let weights: Vec<f32> = weights.split(',').filter_map(|w| w.parse().ok()).collect();
        if let [usercf, itemrank, popularity] = weights[..] {
            config.blend = recwal::BlendConfig { usercf, itemrank, popularity };
        }
    }
    config
}

fn run(
    ratings: &[recwal::eval::Rating],
    protocol: Protocol,
    strategies: &[Strategy],
    alpha: f32,
) -> Result<Vec<StrategyReport>, Box<dyn Error>> {
    let split = split(ratings, protocol)?;
    let set = EvalSet::new(&split);
    let dir = tempfile::tempdir()?;
    let engine = train_engine(dir.path(), config(alpha), &split.train)?;
    let mut reports = Vec::new();
    for &strategy in strategies {
        match evaluate_engine(&engine, &set, strategy, K, RELEVANT_MIN) {
            Ok(report) => reports.push(report),
            Err(err) => eprintln!("{}: not trained: {err}", strategy.name()),
        }
    }
    if let Some(model) = std::env::var_os("RECWAL_EVAL_MODEL") {
        let added = engine.add_model_file(std::path::Path::new(&model))?;
        engine.activate_model(added.version)?;
        for &strategy in strategies {
            let Ok((report, unranked)) = evaluate_engine_ranked(&engine, &set, strategy, K, RELEVANT_MIN) else {
                continue;
            };
            if unranked > 0 {
                eprintln!("{}: {unranked} users answered without the model", strategy.name());
            }
            reports.push(report);
        }
    }
    Ok(reports)
}

fn row(name: &str, alpha: Option<f32>, hash: &Report, folds: &Report, per_user_us: u128) -> String {
    let alpha = alpha.map_or("–".to_string(), |alpha| format!("{alpha}"));
    format!(
        "| {name} | {alpha} | {:.4} | {:.4} | {:.4} | {:.4} | {:.2} ({:.2}) | {:.4} | {:.4} | {:.4} | {:.4} | {:.2} ({:.2}) | {per_user_us} |",
        hash.precision,
        hash.recall,
        hash.ndcg,
        hash.hit_rate,
        hash.doa,
        hash.doa_ties_half,
        folds.precision,
        folds.recall,
        folds.ndcg,
        folds.hit_rate,
        folds.doa,
        folds.doa_ties_half,
    )
}

/// The movies file: `RECWAL_EVAL_ITEMS`, else `<stem>.item` or `u.item`
/// beside the ratings.
fn items_path(ratings: &std::path::Path) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RECWAL_EVAL_ITEMS") {
        return Some(PathBuf::from(path));
    }
    let beside = [ratings.with_extension("item"), ratings.with_file_name("u.item")];
    beside.into_iter().find(|path| path.is_file())
}

/// The category table (hash 80/20): every strategy, every category with at
/// least one movie, filtered vs unfiltered.
fn categories_report(ratings: &[recwal::eval::Rating], items: &[Item]) -> Result<(), Box<dyn Error>> {
    let split = split(ratings, Protocol::Hash8020)?;
    let set = EvalSet::new(&split);
    let dir = tempfile::tempdir()?;
    let engine = train_engine(dir.path(), config(0.85), &split.train)?;
    for item in items {
        engine.upsert_item(item)?;
    }
    let sizes = categories_by_size(items);
    let categories: Vec<String> = sizes.iter().map(|(name, _)| name.clone()).collect();
    let mut evaluations: Vec<CategoryEvaluation> = Vec::new();
    for strategy in Strategy::ALL {
        let began = std::time::Instant::now();
        let evaluation = match evaluate_engine_by_category(&engine, &set, items, &categories, strategy, K, RELEVANT_MIN)
        {
            Ok(evaluation) => evaluation,
            Err(err) => {
                eprintln!("{}: not trained: {err}", strategy.name());
                continue;
            }
        };
        eprintln!("{}: {:.1} s", strategy.name(), began.elapsed().as_secs_f64());
        let short: usize = evaluation.categories.iter().map(|report| report.short_answers).sum();
        let foreign: usize = evaluation.categories.iter().map(|report| report.foreign_items).sum();
        if short > 0 || foreign > 0 {
            println!(
                "{}: {short} filtered answers short of {K} items, {foreign} with an item outside the genre",
                strategy.name()
            );
        }
        evaluations.push(evaluation);
    }
    println!(
        "\n### By genre: hash 80/20, {} movies, {} genres; relevant = rated ≥ {RELEVANT_MIN}\n",
        items.len(),
        categories.len()
    );
    println!("Pooled over every (user, genre) pair with a relevant held-out item in the genre.\n");
    println!("| strategy | unfiltered P@10 | unfiltered NDCG@10 | users | genre-filtered P@10 | genre-filtered NDCG@10 | unfiltered, genre's items P@10 | unfiltered, genre's items NDCG@10 | (user, genre) pairs |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for evaluation in &evaluations {
        println!(
            "| {} | {:.4} | {:.4} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {} |",
            evaluation.strategy.name(),
            evaluation.overall.precision,
            evaluation.overall.ndcg,
            evaluation.overall_users,
            evaluation.pooled_filtered.precision,
            evaluation.pooled_filtered.ndcg,
            evaluation.pooled_unfiltered.precision,
            evaluation.pooled_unfiltered.ndcg,
            evaluation.pairs
        );
    }
    println!(
        "\nPer genre: genre-filtered P@10 / NDCG@10 (the unfiltered answer against the genre's items in brackets).\n"
    );
    let names: Vec<&str> = evaluations.iter().map(|evaluation| evaluation.strategy.name()).collect();
    println!("| genre | movies | users | {} |", names.join(" | "));
    println!("|---|---|---|{}", "---|".repeat(names.len()));
    for (at, (name, movies)) in sizes.iter().enumerate() {
        let users = evaluations.first().map_or(0, |evaluation| evaluation.categories[at].users);
        let cells: Vec<String> = evaluations
            .iter()
            .map(|evaluation| {
                let report = &evaluation.categories[at];
                if report.users == 0 {
                    "—".to_string()
                } else {
                    format!(
                        "{:.3} / {:.3} ({:.3} / {:.3})",
                        report.filtered.precision,
                        report.filtered.ndcg,
                        report.unfiltered.precision,
                        report.unfiltered.ndcg
                    )
                }
            })
            .collect();
        println!("| {name} | {movies} | {users} | {} |", cells.join(" | "));
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| "data/ml-100k/ml-100k.inter".into());
    let ratings = load_ratings(&path)?;
    println!("{} ratings from {}\n", ratings.len(), path.display());
    let categories_only = std::env::var("RECWAL_EVAL_CATEGORIES_ONLY").is_ok_and(|value| value == "1");
    if !categories_only {
        main_table(&ratings)?;
    }
    match items_path(&path) {
        None => println!(
            "\ncategory table skipped: no movies file beside {} (ml-100k.item or u.item; scripts/fetch-movielens.sh \
             fetches ml-100k.item) and RECWAL_EVAL_ITEMS is not set",
            path.display()
        ),
        Some(items_path) => {
            let items = load_items(&items_path)?;
            println!("\n{} movies from {}", items.len(), items_path.display());
            categories_report(&ratings, &items)?;
        }
    }
    Ok(())
}

fn main_table(ratings: &[recwal::eval::Rating]) -> Result<(), Box<dyn Error>> {
    println!(
        "| strategy | α | hash P@10 | hash R@10 | hash NDCG@10 | hash HR@10 | hash DOA (ties ½) | u1–u5 P@10 | u1–u5 R@10 | u1–u5 NDCG@10 | u1–u5 HR@10 | u1–u5 DOA (ties ½) | µs/user |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut runs: Vec<(Vec<Strategy>, f32)> = vec![(Strategy::ALL.to_vec(), 0.85)];
    for alpha in [0.5, 0.1] {
        runs.push((vec![Strategy::ItemRankExact, Strategy::ItemRank], alpha));
    }
    // RECWAL_EVAL_ONLY=item_rank,item_rank_exact: only those, at α 0.85.
    if let Ok(only) = std::env::var("RECWAL_EVAL_ONLY") {
        let wanted: Vec<Strategy> =
            Strategy::ALL.into_iter().filter(|s| only.split(',').any(|name| name == s.name())).collect();
        runs = vec![(wanted, 0.85)];
    }
    for (strategies, alpha) in runs {
        let hash = run(ratings, Protocol::Hash8020, &strategies, alpha)?;
        let mut folds: Vec<Vec<StrategyReport>> = Vec::new();
        for fold in 1..=5 {
            folds.push(run(ratings, Protocol::MovieLensFold { fold }, &strategies, alpha)?);
        }
        let ranked = std::env::var_os("RECWAL_EVAL_MODEL").is_some();
        let rows =
            strategies.iter().map(|s| (*s, false)).chain(strategies.iter().filter(|_| ranked).map(|s| (*s, true)));
        for (at, (strategy, with_model)) in rows.enumerate() {
            let fold_reports: Vec<Report> = folds.iter().map(|fold| fold[at].report).collect();
            let mean = Report::mean(&fold_reports);
            let uses_alpha = matches!(strategy, Strategy::ItemRank | Strategy::ItemRankExact | Strategy::Blend);
            println!(
                "{}",
                row(
                    &format!("{}{}", strategy.name(), if with_model { " + model" } else { "" }),
                    uses_alpha.then_some(alpha),
                    &hash[at].report,
                    &mean,
                    hash[at].per_user.as_micros()
                )
            );
        }
    }
    Ok(())
}
