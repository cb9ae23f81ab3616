//! Picks the `ease` strategy's hyper-parameters without the test split, then
//! reports every strategy and the anchors of issue 16 on the test split, in
//! one run (docs/EVALUATION.md, "EASE"):
//!
//! ```text
//! scripts/fetch-movielens.sh
//! cargo run --release --example evaluate_ease -- data/ml-100k/ml-100k.inter
//! ```
//!
//! 1. The ratings are split hash 80/20 (`Protocol::Hash8020`) into train and
//!    test. The test part is not read until step 3.
//! 2. Validation: the train part alone is split per user, hash 90/10
//!    (`validation_split`: a tenth of each user's training ratings, rounded
//!    up, by a hash of the user and item ids) into fit and validation. An
//!    engine is trained on fit, and the grid below (X binary or
//!    rating-valued × λ) is scored on validation by NDCG@10 (relevant =
//!    rating ≥ 4); the best pair wins (ties: the first in grid order).
//!    `RECWAL_EASE_VALIDATION=80-20` carves a fifth instead, by the test's
//!    own hash rule applied to the train part (`Protocol::Hash8020`). Then
//!    iALS's grid (λ × α, rating-valued X, 64 factors) on the same fit
//!    engine, the same way.
//! 3. Test: an engine trained on the whole train part gets an item model
//!    with the chosen pair (and iALS the chosen λ, α for its row); every
//!    strategy, EASE with the chosen pair and
//!    the issue's two anchors (binary λ = 500, rating-valued λ = 4000) are
//!    scored on test (P@10, R@10, NDCG@10, HR@10).
//!
//! `RECWAL_EASE_GRID_ONLY=1` stops after step 2; `RECWAL_EVAL_ONLY=user_cf,ease`
//! restricts the strategies of step 3 (the anchors are always scored).
#![allow(clippy::print_stdout)]

use std::error::Error;
use std::path::PathBuf;

use recwal::eval::{
    evaluate_engine, evaluate_engine_ranked, load_ratings, split, train_engine, validation_split, EvalSet, Protocol,
    Report,
};
use recwal::{EngineConfig, ItemModelInput, ItemModelSpec, Strategy};

const K: usize = 10;
const RELEVANT_MIN: f32 = 4.0;

/// The grid: λ per input (binary X has entries ≤ 1, rating-valued X up to
/// 5, so its Gram entries are up to 25× larger and so is a useful λ).
const GRID_BINARY: [f32; 9] = [50.0, 100.0, 200.0, 300.0, 500.0, 750.0, 1000.0, 1500.0, 2500.0];
const GRID_VALUE: [f32; 10] = [500.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0, 8000.0, 12000.0, 20000.0];
/// iALS's grid (rating-valued X): the region where a wider search (binary
/// X, λ 0.01–400, α 0–40, 8–128 factors; docs/EVALUATION.md) found every
/// good point.
const IALS_GRID_LAMBDA: [f32; 4] = [30.0, 45.0, 60.0, 75.0];
const IALS_GRID_ALPHA: [f32; 4] = [1.5, 2.0, 2.5, 3.0];

fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.wal = config.wal.sync_policy(recwal::wal::SyncPolicy::Never);
    config.checkpoint.disable_automatic();
    config
}

fn ease_report(
    engine: &recwal::Engine,
    set: &EvalSet,
    lambda: f32,
    input: ItemModelInput,
) -> Result<(Report, u64), Box<dyn Error>> {
    let info = engine.train_item_model_with(lambda, input)?;
    Ok((evaluate_engine(engine, set, Strategy::Ease, K, RELEVANT_MIN)?.report, info.train_ms))
}

/// iALS with λ and α (the other parameters the defaults), scored on `set`.
fn ials_report(
    engine: &recwal::Engine,
    set: &EvalSet,
    lambda: f32,
    alpha: f32,
) -> Result<(Report, u64), Box<dyn Error>> {
    let mut params = ItemModelSpec::ials_params(&engine.config().item_model);
    (params.lambda, params.alpha, params.input) = (lambda, alpha, ItemModelInput::Value);
    let info = engine.train_item_model_spec(ItemModelSpec::Ials(params))?;
    Ok((evaluate_engine(engine, set, Strategy::Ials, K, RELEVANT_MIN)?.report, info.train_ms))
}

fn row(name: &str, report: &Report) -> String {
    format!("| {name} | {:.4} | {:.4} | {:.4} | {:.4} |", report.precision, report.recall, report.ndcg, report.hit_rate)
}

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| "data/ml-100k/ml-100k.inter".into());
    let ratings = load_ratings(&path)?;
    let outer = split(&ratings, Protocol::Hash8020)?;
    let inner = if std::env::var("RECWAL_EASE_VALIDATION").is_ok_and(|value| value == "80-20") {
        split(&outer.train, Protocol::Hash8020)?
    } else {
        validation_split(&outer.train)
    };
    println!(
        "{} ratings from {}: train {}, test {}; validation carved from train: fit {}, validation {}\n",
        ratings.len(),
        path.display(),
        outer.train.len(),
        outer.test.len(),
        inner.train.len(),
        inner.test.len()
    );

    // Step 2: the grid on validation.
    let validation = EvalSet::new(&inner);
    let dir = tempfile::tempdir()?;
    let engine = train_engine(dir.path(), config(), &inner.train)?;
    println!("### Validation grid (fit → validation, NDCG@10)\n");
    println!("| X | λ | P@10 | R@10 | NDCG@10 | HR@10 | train ms |");
    println!("|---|---|---|---|---|---|---|");
    let mut best: Option<(f64, f32, ItemModelInput)> = None;
    let grid = GRID_BINARY
        .iter()
        .map(|&lambda| (ItemModelInput::Binary, lambda))
        .chain(GRID_VALUE.iter().map(|&lambda| (ItemModelInput::Value, lambda)));
    for (input, lambda) in grid {
        let (report, train_ms) = ease_report(&engine, &validation, lambda, input)?;
        println!(
            "| {} | {lambda} | {:.4} | {:.4} | {:.4} | {:.4} | {train_ms} |",
            input.name(),
            report.precision,
            report.recall,
            report.ndcg,
            report.hit_rate
        );
        if best.is_none_or(|(ndcg, _, _)| report.ndcg > ndcg) {
            best = Some((report.ndcg, lambda, input));
        }
    }
    let Some((_, lambda, input)) = best else { return Err("empty grid".into()) };
    println!("\nchosen on validation: X {}, λ {lambda}\n", input.name());

    // The iALS grid on the same fit engine (X as the pair's value, 64
    // factors, 15 iterations of 3 CG steps): λ × α.
    println!("### iALS validation grid (fit → validation, NDCG@10; 64 factors, X value)\n");
    println!("| λ | α | P@10 | R@10 | NDCG@10 | HR@10 | train ms |");
    println!("|---|---|---|---|---|---|---|");
    let mut best_ials: Option<(f64, f32, f32)> = None;
    for &ials_lambda in &IALS_GRID_LAMBDA {
        for &alpha in &IALS_GRID_ALPHA {
            let report = ials_report(&engine, &validation, ials_lambda, alpha)?;
            println!(
                "| {ials_lambda} | {alpha} | {:.4} | {:.4} | {:.4} | {:.4} | {} |",
                report.0.precision, report.0.recall, report.0.ndcg, report.0.hit_rate, report.1
            );
            if best_ials.is_none_or(|(ndcg, _, _)| report.0.ndcg > ndcg) {
                best_ials = Some((report.0.ndcg, ials_lambda, alpha));
            }
        }
    }
    drop(engine);
    let Some((_, ials_lambda, alpha)) = best_ials else { return Err("empty iALS grid".into()) };
    println!("\niALS chosen on validation: λ {ials_lambda}, α {alpha}\n");
    if std::env::var("RECWAL_EASE_GRID_ONLY").is_ok_and(|value| value == "1") {
        return Ok(());
    }

    // Step 3: test.
    let test = EvalSet::new(&outer);
    let dir = tempfile::tempdir()?;
    let mut chosen = config();
    chosen.item_model.lambda = lambda;
    chosen.item_model.input = input;
    (chosen.item_model.ials.lambda, chosen.item_model.ials.alpha) = (ials_lambda, alpha);
    let engine = train_engine(dir.path(), chosen, &outer.train)?;
    println!("### Test (hash 80/20, relevant = rating ≥ {RELEVANT_MIN})\n");
    println!("| strategy | P@10 | R@10 | NDCG@10 | HR@10 |");
    println!("|---|---|---|---|---|");
    // `RECWAL_EVAL_ONLY=user_cf,ease` restricts the strategies of the test
    // table (on ML-1M `item_rank_exact` alone takes 12 minutes here).
    let only = std::env::var("RECWAL_EVAL_ONLY").ok();
    let wanted =
        |strategy: Strategy| only.as_deref().is_none_or(|only| only.split(',').any(|name| name == strategy.name()));
    for strategy in Strategy::ALL.into_iter().filter(|&strategy| wanted(strategy)) {
        let report = evaluate_engine(&engine, &test, strategy, K, RELEVANT_MIN)?.report;
        let name = match strategy {
            Strategy::Ease => format!("ease (chosen on validation: X {}, λ {lambda})", input.name()),
            Strategy::Ials => format!("ials (chosen on validation: 64 factors, λ {ials_lambda}, α {alpha})"),
            _ => strategy.name().to_string(),
        };
        println!("{}", row(&name, &report));
    }
    for (input, lambda) in [(ItemModelInput::Binary, 500.0), (ItemModelInput::Value, 4000.0)] {
        let (report, _) = ease_report(&engine, &test, lambda, input)?;
        println!("{}", row(&format!("ease anchor: X {}, λ {lambda}", input.name()), &report));
    }
    // `RECWAL_RANKER=<model.onnx>`: the learned ranker (scripts/ranker/)
    // over the chosen model's candidates, with the movies in the catalogue
    // as when its training set was exported (last: the anchors retrain the
    // item model, and items only in the movie file would enter it).
    if let Ok(ranker) = std::env::var("RECWAL_RANKER") {
        engine.train_item_model_with(lambda, input)?;
        let items_path = path.with_file_name("ml-100k.item");
        let items_path = std::env::var_os("RECWAL_EVAL_ITEMS").map_or(items_path, PathBuf::from);
        for item in recwal::eval::load_items(&items_path)? {
            engine.upsert_item(&item)?;
        }
        let added = engine.add_model_file(std::path::Path::new(&ranker))?;
        engine.activate_model(added.version)?;
        let (ranked, unranked) = evaluate_engine_ranked(&engine, &test, Strategy::Ease, K, RELEVANT_MIN)?;
        if unranked > 0 {
            return Err(format!("{unranked} users were answered without the ranker").into());
        }
        let candidates = engine.config().models.candidates;
        println!("{}", row(&format!("ease + learned ranker ({candidates} candidates)"), &ranked.report));
    }
    Ok(())
}
