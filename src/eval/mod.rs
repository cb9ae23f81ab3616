//! Offline evaluation: load a ratings file, split it by a named protocol, and
//! measure any model on top-N metrics and the degree of agreement (DOA).
//!
//! Nothing here knows about the engine. A model is a closure that, given a
//! user, fills one score per item of the universe ([`EvalSet::items`]); the
//! metrics are computed from those scores alone, so an engine, a baseline and
//! a test double are measured the same way.
//!
//! The pipeline has three steps, one per submodule:
//!
//! - [`load_rating_file`] / [`parse_rating_file`] (and the shorter
//!   [`load_ratings`] / [`parse_ratings`]) read MovieLens `u.data` and
//!   `ratings.dat`, RecBole atomic `.inter` files and CSV/TSV (quoted, with
//!   or without a header, with or without a rating column), keeping the
//!   file's row order (the protocols depend on it).
//! - [`split`] applies a [`Protocol`]: the five MovieLens folds, the hashed
//!   80/20 split per user (any string ids), a temporal split per user,
//!   leave-last-out, or a seeded random holdout.
//! - [`EvalSet::new`] indexes a [`Split`], and [`evaluate`] calls the model
//!   once per test user and returns a [`Report`].
//!
//! [`load_items`] reads MovieLens' movies (genres, release dates) as
//! catalogue items, and [`evaluate_engine_by_category`] measures
//! recommendations filtered to one category against the user's held-out
//! items of that category.
//!
//! ```
//! use recwal::eval::{evaluate, parse_ratings, split, EvalSet, Format, Protocol};
//!
//! let data = "1\t10\t5\t0\n1\t11\t3\t1\n2\t10\t4\t2\n2\t12\t1\t3\n";
//! let ratings = parse_ratings(data.as_bytes(), Format::MovieLens, "inline")?;
//! let split = split(&ratings, Protocol::Hash8020)?;
//! let set = EvalSet::new(&split);
//! // Every user gets the same scores: higher item id, higher score.
//! let report = evaluate(&set, 1, 4.0, |_user, scores| {
//!     for (idx, score) in scores.iter_mut().enumerate() {
//!         *score = idx as f64;
//!     }
//! });
//! assert!(report.precision <= 1.0);
//! # Ok::<(), recwal::eval::EvalError>(())
//! ```

use std::io;
use std::path::PathBuf;

mod categories;
mod data;
mod engine;
mod items;
mod lines;
mod metrics;
mod ranker;
mod shapes;
mod split;

pub use categories::{categories_by_size, evaluate_engine_by_category, CategoryEvaluation, CategoryReport, TopK};
pub use data::{
    detect_format, load_rating_file, load_ratings, load_ratings_with, parse_rating_file, parse_ratings,
    parse_ratings_with, ColumnOrder, Delimiter, Format, LoadOptions, Rating, RatingFile, RatingScale, COLUMN_NAMES,
};
pub use engine::{
    evaluate_engine, evaluate_engine_ranked, ingest_order, prepare_strategy, train_engine, StrategyReport,
};
pub use items::{
    detect_item_format, load_items, parse_atomic_items, parse_genres, parse_movielens_items, ItemFormat,
    MOVIELENS_GENRES,
};
pub use lines::{count_lines, CountLines, LineNumbers};
pub use metrics::{evaluate, EvalSet, Report};
pub use ranker::{ranker_set, RankerRow, RankerSet};
pub use shapes::{shape_ratings, Shape};
pub use split::{pair_hash, split, validation_folds, validation_split, Protocol, Split};

/// Why ratings could not be loaded or split.
///
/// Messages name the input, the 1-based line, the field and the rule that was
/// broken, e.g. ``ml.csv line 7: field `rating`: not a finite number: "abc"``.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The ratings file could not be opened.
    #[error("{}: {source}", path.display())]
    Open {
        /// The file that was opened.
        path: PathBuf,
        /// The error from the operating system.
        #[source]
        source: io::Error,
    },
    /// A line could not be read: an I/O error, or bytes that are not UTF-8.
    #[error("{input} line {line}: {source}")]
    Read {
        /// The name of the input (a path, or what the caller passed).
        input: String,
        /// The 1-based line that failed.
        line: usize,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A field of a line broke a rule of its format.
    #[error("{input} line {line}: field `{field}`: {rule}")]
    Parse {
        /// The name of the input (a path, or what the caller passed).
        input: String,
        /// The 1-based line, counting headers and blank lines.
        line: usize,
        /// The field, as the format names it (`user`, `rating`, `user_id`, …).
        field: &'static str,
        /// The rule that was broken, with the offending text.
        rule: String,
    },
    /// A line has no field separator of its format but another one that
    /// would split it as the format asks: the file uses another delimiter.
    #[error(
        "{input} line {line}: the line has no {expected} but splits on {found}: the file looks {found}-separated; \
         pass --delimiter {flag} to `recwal import` / `recwal eval`",
        expected = expected.name(),
        found = found.name(),
        flag = found.flag()
    )]
    Delimiter {
        /// The name of the input (a path, or what the caller passed).
        input: String,
        /// The 1-based line that gave it away.
        line: usize,
        /// The delimiter the parser was told to expect.
        expected: data::Delimiter,
        /// The delimiter the line looks separated by.
        found: data::Delimiter,
    },
    /// The input holds no rating at all (it is empty, blank, or only a
    /// header): importing it would do nothing, which is never what was meant.
    #[error("{input}: no ratings: the file holds no data rows")]
    Empty {
        /// The name of the input (a path, or what the caller passed).
        input: String,
    },
    /// The ratings do not fit a protocol, or its parameters are out of range.
    #[error("{protocol} split: field `{field}`: {rule}")]
    Split {
        /// The protocol's name, as [`Protocol::name`] gives it.
        protocol: &'static str,
        /// The parameter or rating field that is at fault.
        field: &'static str,
        /// The rule that was broken.
        rule: String,
    },
}
