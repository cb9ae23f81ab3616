//! The catalogue as callers give it and get it back: items with categories,
//! labels, a hidden flag, a publication time and an expiry; users with
//! labels; and the filters that restrict what a read may return. Validation
//! turns an `Item` or a `User` into the record that is logged (errors name
//! the field and the rule; nothing is written on a refusal).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::ids::validate_id;
use crate::limits::{
    CATEGORY_BYTES_MAX, FILTER_CATEGORIES_MAX, FILTER_LABELS_MAX, ITEM_CATEGORIES_MAX, LABELS_MAX, LABEL_KEY_BYTES_MAX,
    LABEL_TEXT_BYTES_MAX,
};
use crate::record::{ItemUpsertV1, LoggedLabel, UserUpsertV1};

/// A label's value: text or a finite number. In JSON a string or a number.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelValue {
    /// A number (finite).
    Number(f64),
    /// Text, at most `LABEL_TEXT_BYTES_MAX` bytes.
    Text(String),
}

impl From<&str> for LabelValue {
    fn from(text: &str) -> Self {
        LabelValue::Text(text.to_string())
    }
}

impl From<f64> for LabelValue {
    fn from(number: f64) -> Self {
        LabelValue::Number(number)
    }
}

/// An item of the catalogue.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// External item id (the ids of events).
    pub id: String,
    /// Categories, at most `ITEM_CATEGORIES_MAX` (duplicates are dropped).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Labels by key, at most `LABELS_MAX`.
    #[serde(default)]
    pub labels: BTreeMap<String, LabelValue>,
    /// A hidden item is never returned, until it is shown again.
    #[serde(default)]
    pub hidden: bool,
    /// Published / valid from (ms since the Unix epoch): not returned
    /// before, and the order of `latest`. `None`: always valid, not in `latest`.
    #[serde(default)]
    pub timestamp_ms: Option<i64>,
    /// Not returned from this time on (ms since the Unix epoch).
    #[serde(default)]
    pub expires_ms: Option<i64>,
}

impl Item {
    /// An item with no metadata yet.
    pub fn new(id: impl Into<String>) -> Item {
        Item { id: id.into(), ..Item::default() }
    }

    /// Adds a category.
    pub fn category(mut self, category: impl Into<String>) -> Item {
        self.categories.push(category.into());
        self
    }

    /// Sets a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<LabelValue>) -> Item {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the publication time.
    pub fn published(mut self, timestamp_ms: i64) -> Item {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Sets the expiry.
    pub fn expires(mut self, expires_ms: i64) -> Item {
        self.expires_ms = Some(expires_ms);
        self
    }

    /// Sets the hidden flag.
    pub fn hidden(mut self, hidden: bool) -> Item {
        self.hidden = hidden;
        self
    }
}

/// A user's metadata.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// External user id (the ids of events).
    pub id: String,
    /// Labels by key, at most `LABELS_MAX`.
    #[serde(default)]
    pub labels: BTreeMap<String, LabelValue>,
}

/// A condition on one label of an item; an item without the label fails it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op", deny_unknown_fields)]
pub enum LabelCondition {
    /// The label equals `value` (text to text, number to number).
    Equals {
        /// The label's key.
        key: String,
        /// The value it must have.
        value: LabelValue,
    },
    /// The label is a number ≥ `value`.
    AtLeast {
        /// The label's key.
        key: String,
        /// The lower bound, inclusive.
        value: f64,
    },
    /// The label is a number ≤ `value`.
    AtMost {
        /// The label's key.
        key: String,
        /// The upper bound, inclusive.
        value: f64,
    },
}

impl LabelCondition {
    /// The label's key.
    pub fn key(&self) -> &str {
        match self {
            LabelCondition::Equals { key, .. }
            | LabelCondition::AtLeast { key, .. }
            | LabelCondition::AtMost { key, .. } => key,
        }
    }
}

/// What a read may return, besides the rules that always hold (never a
/// hidden, expired, not yet published or removed item).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemFilter {
    /// When not empty, only items in at least one of these categories.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Conditions on labels, all of which must hold.
    #[serde(default)]
    pub labels: Vec<LabelCondition>,
}

impl ItemFilter {
    /// True when the filter restricts nothing beyond the standing rules.
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty() && self.labels.is_empty()
    }

    /// Checks the filter's sizes and names; the error names the field as
    /// `filter.<field>`.
    pub fn validate(&self) -> Result<(), EngineError> {
        self.validate_unprefixed().map_err(within("filter"))
    }

    fn validate_unprefixed(&self) -> Result<(), EngineError> {
        if self.categories.len() > FILTER_CATEGORIES_MAX {
            return Err(EngineError::invalid(
                "categories",
                format!("at most {FILTER_CATEGORIES_MAX} in a filter, got {}", self.categories.len()),
            ));
        }
        for (at, category) in self.categories.iter().enumerate() {
            validate_name(&format!("categories[{at}]"), category, CATEGORY_BYTES_MAX)?;
        }
        if self.labels.len() > FILTER_LABELS_MAX {
            return Err(EngineError::invalid(
                "labels",
                format!("at most {FILTER_LABELS_MAX} conditions in a filter, got {}", self.labels.len()),
            ));
        }
        for (at, condition) in self.labels.iter().enumerate() {
            let field = format!("labels[{at}]");
            validate_name(&format!("{field}.key"), condition.key(), LABEL_KEY_BYTES_MAX)?;
            match condition {
                LabelCondition::Equals { value, .. } => validate_value(&format!("{field}.value"), value)?,
                LabelCondition::AtLeast { value, .. } | LabelCondition::AtMost { value, .. } => {
                    if !value.is_finite() {
                        return Err(EngineError::invalid(format!("{field}.value"), "must be a finite number"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A category or label key: 1..=`max` bytes, no control characters.
fn validate_name(field: &str, name: &str, max: usize) -> Result<(), EngineError> {
    if name.is_empty() {
        return Err(EngineError::invalid(field, "must not be empty"));
    }
    if name.len() > max {
        return Err(EngineError::invalid(field, format!("must be at most {max} bytes, got {}", name.len())));
    }
    if name.chars().any(char::is_control) {
        return Err(EngineError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn validate_value(field: &str, value: &LabelValue) -> Result<(), EngineError> {
    match value {
        LabelValue::Number(number) if !number.is_finite() => {
            Err(EngineError::invalid(field, "must be a finite number"))
        }
        LabelValue::Text(text) if text.len() > LABEL_TEXT_BYTES_MAX => Err(EngineError::invalid(
            field,
            format!("must be at most {LABEL_TEXT_BYTES_MAX} bytes, got {}", text.len()),
        )),
        LabelValue::Text(text) if text.chars().any(char::is_control) => {
            Err(EngineError::invalid(field, "must not contain control characters"))
        }
        _ => Ok(()),
    }
}

/// Validated labels as logged, sorted by key (the map's order).
fn logged_labels<'a>(labels: &'a BTreeMap<String, LabelValue>) -> Result<Vec<(&'a str, LoggedLabel<'a>)>, EngineError> {
    if labels.len() > LABELS_MAX {
        return Err(EngineError::invalid("labels", format!("at most {LABELS_MAX}, got {}", labels.len())));
    }
    let mut logged = Vec::with_capacity(labels.len());
    for (key, value) in labels {
        validate_name(&format!("labels.{key}"), key, LABEL_KEY_BYTES_MAX)?;
        validate_value(&format!("labels.{key}"), value)?;
        let value = match value {
            LabelValue::Number(number) => LoggedLabel::Number(*number),
            LabelValue::Text(text) => LoggedLabel::Text(text),
        };
        logged.push((key.as_str(), value));
    }
    Ok(logged)
}

/// Puts `prefix.` before the field an `Invalid` error names.
fn within(prefix: &'static str) -> impl Fn(EngineError) -> EngineError {
    move |err| match err {
        EngineError::Invalid { field, rule } => EngineError::Invalid { field: format!("{prefix}.{field}"), rule },
        other => other,
    }
}

/// Validates `item` into the record that upserts it; errors name the field
/// as `item.<field>`.
pub(crate) fn item_record(item: &Item) -> Result<ItemUpsertV1<'_>, EngineError> {
    item_record_unprefixed(item).map_err(within("item"))
}

fn item_record_unprefixed(item: &Item) -> Result<ItemUpsertV1<'_>, EngineError> {
    validate_id("id", &item.id)?;
    let mut categories: Vec<&str> = Vec::with_capacity(item.categories.len());
    for (at, category) in item.categories.iter().enumerate() {
        validate_name(&format!("categories[{at}]"), category, CATEGORY_BYTES_MAX)?;
        if !categories.contains(&category.as_str()) {
            categories.push(category);
        }
    }
    if categories.len() > ITEM_CATEGORIES_MAX {
        return Err(EngineError::invalid(
            "categories",
            format!("at most {ITEM_CATEGORIES_MAX} distinct categories, got {}", categories.len()),
        ));
    }
    if let (Some(from), Some(until)) = (item.timestamp_ms, item.expires_ms) {
        if until <= from {
            return Err(EngineError::invalid(
                "expires_ms",
                format!("must be after timestamp_ms ({from}), got {until}"),
            ));
        }
    }
    Ok(ItemUpsertV1 {
        item: &item.id,
        categories,
        labels: logged_labels(&item.labels)?,
        hidden: item.hidden,
        timestamp_ms: item.timestamp_ms,
        expires_ms: item.expires_ms,
    })
}

/// Validates `user` into the record that upserts it; errors name the field
/// as `user.<field>`.
pub(crate) fn user_record(user: &User) -> Result<UserUpsertV1<'_>, EngineError> {
    let record = || -> Result<UserUpsertV1<'_>, EngineError> {
        validate_id("id", &user.id)?;
        Ok(UserUpsertV1 { user: &user.id, labels: logged_labels(&user.labels)? })
    };
    record().map_err(within("user"))
}

/// A page of catalogue items (`Engine::items`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemPage {
    /// The items, in the order they entered the catalogue.
    pub items: Vec<Item>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_validated_field_by_field() {
        let ok = Item::new("i1").category("drama").category("drama").label("price", 9.5).label("brand", "acme");
        let record = item_record(&ok).map_err(|err| err.to_string());
        assert_eq!(record.as_ref().map(|record| record.categories.len()), Ok(1), "duplicates dropped");
        let field_of = |item: &Item| match item_record(item) {
            Err(EngineError::Invalid { field, .. }) => field,
            other => format!("{other:?}"),
        };
        assert_eq!(field_of(&Item::new("")), "item.id");
        assert_eq!(field_of(&Item::new("i").category("")), "item.categories[0]");
        assert_eq!(field_of(&Item::new("i").category("a").category("b\u{7}")), "item.categories[1]");
        assert_eq!(field_of(&Item::new("i").category("x".repeat(CATEGORY_BYTES_MAX + 1))), "item.categories[0]");
        let many = (0..=ITEM_CATEGORIES_MAX).fold(Item::new("i"), |item, at| item.category(format!("c{at}")));
        assert_eq!(field_of(&many), "item.categories");
        assert_eq!(field_of(&Item::new("i").label("price", f64::NAN)), "item.labels.price");
        assert_eq!(
            field_of(&Item::new("i").label("note", "y".repeat(LABEL_TEXT_BYTES_MAX + 1).as_str())),
            "item.labels.note"
        );
        let labels = (0..=LABELS_MAX).fold(Item::new("i"), |item, at| item.label(format!("k{at}"), 1.0));
        assert_eq!(field_of(&labels), "item.labels");
        assert_eq!(field_of(&Item::new("i").published(10).expires(10)), "item.expires_ms");
    }

    #[test]
    fn filters_are_bounded() {
        let filter = ItemFilter { categories: vec!["a".into(); FILTER_CATEGORIES_MAX + 1], labels: Vec::new() };
        assert!(matches!(filter.validate(), Err(EngineError::Invalid { field, .. }) if field == "filter.categories"));
        let filter = ItemFilter {
            categories: Vec::new(),
            labels: vec![LabelCondition::AtLeast { key: "price".into(), value: f64::INFINITY }],
        };
        assert!(
            matches!(filter.validate(), Err(EngineError::Invalid { field, .. }) if field == "filter.labels[0].value")
        );
        assert!(ItemFilter::default().validate().is_ok());
    }
}
