//! Events as callers give them, and their validation. A validated event has
//! its weight and timestamp resolved, so replaying it never consults the
//! configuration again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::ids::id_rule;
// The engine facade validates ids through this path; the rule lives with the ids.
pub use crate::ids::validate_id;
use crate::limits::WEIGHT_MAX;
use crate::record::{LoggedEvent, LoggedKind};

/// What the user did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Saw the item.
    View,
    /// Clicked it.
    Click,
    /// Put it in the cart.
    Cart,
    /// Bought it.
    Purchase,
    /// Rated it; the value must lie in the configured rating range. A later
    /// rating of the same item replaces the earlier one.
    Rating(f32),
    /// A kind configured in `KindWeights::custom`.
    Custom(String),
}

/// One interaction, as a caller submits it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// External user id, 1–256 bytes.
    pub user: String,
    /// External item id, 1–256 bytes.
    pub item: String,
    /// What happened.
    pub kind: EventKind,
    /// Overrides the kind's configured weight (not allowed for ratings,
    /// whose weight is their value).
    pub weight: Option<f32>,
    /// Milliseconds since the Unix epoch; now when absent.
    pub timestamp_ms: Option<i64>,
    /// Client event id for exactly-once ingest, 1–256 bytes.
    pub event_id: Option<String>,
}

impl Event {
    /// An event with the default weight, timestamp now and no event id.
    pub fn new(user: impl Into<String>, item: impl Into<String>, kind: EventKind) -> Event {
        Event { user: user.into(), item: item.into(), kind, weight: None, timestamp_ms: None, event_id: None }
    }

    /// Sets the client event id.
    pub fn with_id(mut self, event_id: impl Into<String>) -> Event {
        self.event_id = Some(event_id.into());
        self
    }

    /// Sets the timestamp.
    pub fn at(mut self, timestamp_ms: i64) -> Event {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Sets the weight.
    pub fn weighted(mut self, weight: f32) -> Event {
        self.weight = Some(weight);
        self
    }

    /// Checks the event as `Engine::ingest` with `config` would, as of now
    /// (a timestamp too far in the future may pass later); the error names
    /// the field (`event.user`) and the rule. For callers that must refuse
    /// a whole input before writing any of it.
    ///
    /// ```
    /// use recwal::{EngineConfig, Event, EventKind};
    /// let config = EngineConfig::default();
    /// assert!(Event::new("u", "i", EventKind::View).check(&config).is_ok());
    /// let long = "u".repeat(300);
    /// let err = Event::new(long, "i", EventKind::View).check(&config).unwrap_err();
    /// assert!(err.to_string().contains("event.user"), "{err}");
    /// ```
    pub fn check(&self, config: &EngineConfig) -> Result<(), EngineError> {
        validate(self, config, now_ms(), &|| "event".to_string()).map(|_| ())
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}

/// Checks `event` against the configuration; `prefix` names the event in
/// errors (e.g. `events[3]`), and is called only when there is one.
/// Returns the event as it will be logged (weight and time resolved).
pub(crate) fn validate<'a>(
    event: &'a Event,
    config: &EngineConfig,
    now_ms: i64,
    prefix: &dyn Fn() -> String,
) -> Result<LoggedEvent<'a>, EngineError> {
    let ids = [("user", Some(&event.user)), ("item", Some(&event.item)), ("event_id", event.event_id.as_ref())];
    for (name, id) in ids {
        if let Some(rule) = id.and_then(|id| id_rule(id)) {
            return Err(EngineError::invalid(format!("{}.{name}", prefix()), rule));
        }
    }
    let field = Lazy(prefix);
    let weights = &config.weights;
    let (kind, default_weight) = match &event.kind {
        EventKind::View => (LoggedKind::View, weights.view),
        EventKind::Click => (LoggedKind::Click, weights.click),
        EventKind::Cart => (LoggedKind::Cart, weights.cart),
        EventKind::Purchase => (LoggedKind::Purchase, weights.purchase),
        EventKind::Rating(value) => {
            let (min, max) = (config.rating_min, config.rating_max);
            if !value.is_finite() || *value < min || *value > max {
                return Err(EngineError::invalid(
                    field.at("kind.rating"),
                    format!("must be a finite number in [{min}, {max}], got {value}"),
                ));
            }
            if event.weight.is_some() {
                return Err(EngineError::invalid(
                    field.at("weight"),
                    "must be absent for a rating (its weight is its value)",
                ));
            }
            (LoggedKind::Rating, *value)
        }
        EventKind::Custom(name) => match weights.custom.get(name) {
            Some(weight) => (LoggedKind::Custom, *weight),
            None => {
                return Err(EngineError::invalid(
                    field.at("kind"),
                    format!("custom kind {name:?} is not configured: add it to weights.custom ([engine.weights.custom] in recwal serve's configuration)"),
                ))
            }
        },
    };
    let weight = event.weight.unwrap_or(default_weight);
    if !weight.is_finite() || !(0.0..=WEIGHT_MAX).contains(&weight) {
        return Err(EngineError::invalid(
            field.at("weight"),
            format!("must be a finite number in [0, {WEIGHT_MAX}], got {weight}"),
        ));
    }
    let timestamp_ms = event.timestamp_ms.unwrap_or(now_ms);
    if timestamp_ms < 0 {
        return Err(EngineError::invalid(field.at("timestamp_ms"), "must be ≥ 0 (ms since the Unix epoch)"));
    }
    let max_future = i64::try_from(config.max_future.as_millis()).unwrap_or(i64::MAX);
    if timestamp_ms > now_ms.saturating_add(max_future) {
        return Err(EngineError::invalid(
            field.at("timestamp_ms"),
            format!(
                "is {} ms in the future; at most {} ms allowed",
                timestamp_ms - now_ms,
                Duration::from_millis(max_future as u64).as_millis()
            ),
        ));
    }
    Ok(LoggedEvent {
        user: &event.user,
        item: &event.item,
        kind,
        weight,
        timestamp_ms,
        event_id: event.event_id.as_deref(),
    })
}

/// An error field name built only when an error needs it.
struct Lazy<'a>(&'a dyn Fn() -> String);

impl Lazy<'_> {
    fn at(&self, name: &str) -> String {
        format!("{}.{name}", (self.0)())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(event: Event) -> Result<(LoggedKind, f32, i64), EngineError> {
        validate(&event, &EngineConfig::default(), 1_000_000, &|| "event".to_string())
            .map(|valid| (valid.kind, valid.weight, valid.timestamp_ms))
    }

    fn field_of(result: Result<(LoggedKind, f32, i64), EngineError>) -> String {
        match result {
            Err(EngineError::Invalid { field, .. }) => field,
            other => format!("not an Invalid error: {other:?}"),
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        assert_eq!(field_of(check(Event::new("", "i", EventKind::View))), "event.user");
        assert_eq!(field_of(check(Event::new("u", "x".repeat(257), EventKind::View))), "event.item");
        assert_eq!(field_of(check(Event::new("u", "i", EventKind::Rating(f32::NAN)))), "event.kind.rating");
        assert_eq!(field_of(check(Event::new("u", "i", EventKind::Rating(6.0)))), "event.kind.rating");
        assert_eq!(field_of(check(Event::new("u", "i", EventKind::View).weighted(-1.0))), "event.weight");
        assert_eq!(field_of(check(Event::new("u", "i", EventKind::View).weighted(f32::INFINITY))), "event.weight");
        assert_eq!(field_of(check(Event::new("u", "i", EventKind::Custom("share".into())))), "event.kind");
        assert_eq!(
            field_of(check(Event::new("u", "i", EventKind::View).at(1_000_000 + 3_600_001))),
            "event.timestamp_ms"
        );
        assert_eq!(field_of(check(Event::new("u", "i", EventKind::View).with_id(""))), "event.event_id");
        assert_eq!(field_of(check(Event::new("u\n", "i", EventKind::View))), "event.user");
        assert_eq!(field_of(check(Event::new("u", "i", EventKind::View).weighted(3e38))), "event.weight");
        assert_eq!(field_of(check(Event::new("u", "i", EventKind::View).with_id("a\u{7}b"))), "event.event_id");
    }

    #[test]
    fn defaults_are_resolved() -> Result<(), EngineError> {
        assert_eq!(check(Event::new("u", "i", EventKind::Purchase))?, (LoggedKind::Purchase, 8.0, 1_000_000));
        assert_eq!(check(Event::new("u", "i", EventKind::Rating(4.5)).at(5))?, (LoggedKind::Rating, 4.5, 5));
        assert_eq!(check(Event::new("u", "x".repeat(256), EventKind::View).weighted(0.0))?.1, 0.0);
        Ok(())
    }
}
