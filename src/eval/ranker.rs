//! The learning-to-rank training set of a learned ranker: per user, the
//! candidates an engine proposes and their features, labelled by ratings the
//! engine was not trained on (docs/MODELS.md, "A learned ranker").
//!
//! The engine is trained on a fit part and the labels come from the held-out
//! part of the same ratings (`validation_split` of a protocol's train part in
//! `recwal eval --export-ranker-data`), so a ranker is never fitted on the
//! test split it is measured on.

use std::io::Write;
use std::path::Path;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::eval::Rating;
use crate::model::schema;
use crate::recommend::{RecommendRequest, Strategy};

/// One candidate of one user in one fold.
#[derive(Clone, Debug, PartialEq)]
pub struct RankerRow {
    /// The carve the engine was trained without (a user's rows of one fold
    /// are one query group).
    pub fold: u32,
    /// The user.
    pub user: String,
    /// The candidate.
    pub item: String,
    /// 1: the user's held-out rating of the item is relevant.
    pub label: u8,
    /// Its features.
    pub features: Vec<f32>,
}

/// Candidate rows, one group per (fold, user).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RankerSet {
    /// The feature schema of the rows.
    pub schema: u32,
    /// The rows, a group's contiguous.
    pub rows: Vec<RankerRow>,
    /// Groups: users (per fold) with at least one relevant held-out rating
    /// among their candidates.
    pub users: usize,
    /// Users with a relevant held-out rating none of whose relevant items
    /// were among the candidates (no group: nothing to learn from them).
    pub users_without_positive: usize,
}

/// For each user of `held_out` with a relevant rating (≥ `relevant_min`),
/// the `candidates` items `strategy` proposes on `engine` with their
/// features of `schema`, in the strategy's order; label 1 for an item the
/// user rated relevantly in `held_out`, else 0; rows marked `fold`. Users
/// in sorted order, so the set is a function of the engine and the ratings.
pub fn ranker_set(
    engine: &Engine,
    held_out: &[Rating],
    strategy: Strategy,
    candidates: usize,
    relevant_min: f32,
    schema: u32,
    fold: u32,
) -> Result<RankerSet, EngineError> {
    let mut relevant: FxHashMap<&str, FxHashSet<&str>> = FxHashMap::default();
    for rating in held_out.iter().filter(|rating| rating.value >= relevant_min) {
        relevant.entry(rating.user.as_str()).or_default().insert(rating.item.as_str());
    }
    let mut users: Vec<&str> = relevant.keys().copied().collect();
    users.sort_unstable();
    let mut set = RankerSet { schema, ..RankerSet::default() };
    for user in users {
        let wanted = &relevant[user];
        let request = RecommendRequest::new(user, candidates, strategy);
        let rows = engine.candidate_features_of(&request, schema)?;
        if !rows.iter().any(|(item, _)| wanted.contains(item.as_str())) {
            set.users_without_positive += 1;
            continue;
        }
        set.users += 1;
        for (item, features) in rows {
            let label = u8::from(wanted.contains(item.as_str()));
            set.rows.push(RankerRow { fold, user: user.to_string(), item, label, features });
        }
    }
    Ok(set)
}

impl RankerSet {
    /// Adds `other`'s rows and counts (of the same schema).
    pub fn append(&mut self, other: RankerSet) {
        self.rows.extend(other.rows);
        self.users += other.users;
        self.users_without_positive += other.users_without_positive;
    }

    /// Writes the set as CSV: a header `fold,user,item,label,<feature
    /// names>`, then one row per candidate, a (fold, user) group's rows
    /// contiguous. Ids are quoted where CSV needs it.
    pub fn write_csv(&self, path: &Path) -> std::io::Result<()> {
        let file = std::fs::File::create(path)?;
        let mut out = std::io::BufWriter::new(file);
        let names = &schema::FEATURE_NAMES[..schema::width(self.schema)];
        writeln!(out, "fold,user,item,label,{}", names.join(","))?;
        for row in &self.rows {
            write!(out, "{},{},{},{}", row.fold, csv_field(&row.user), csv_field(&row.item), row.label)?;
            for value in &row.features {
                write!(out, ",{value}")?;
            }
            writeln!(out)?;
        }
        out.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()
    }
}

/// `text` as one CSV field (RFC 4180): quoted when it holds a comma, a quote
/// or a line break.
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        std::borrow::Cow::Owned(format!("\"{}\"", text.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_quoted_only_where_csv_needs_it() {
        assert_eq!(csv_field("u1"), "u1");
        assert_eq!(csv_field("Smith, J"), "\"Smith, J\"");
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
    }
}
