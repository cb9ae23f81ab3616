//! The JSON shapes of the data plane (`/v1`), converted to the engine's
//! types; every conversion error names the field.

use recwal::{
    Durability, EngineConfig, Event, EventKind, ItemFilter, RecommendRequest, SessionEvent, SessionRequest, Strategy,
    WEIGHT_MAX,
};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::problem::Problem;

/// One event, as clients send it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Event)]
#[serde(deny_unknown_fields)]
pub struct ApiEvent {
    pub user: String,
    pub item: String,
    /// "view", "click", "cart", "purchase", "rating" (with `value`), or a
    /// configured custom kind.
    pub kind: String,
    /// The rating, for kind "rating" only. Read as `f64` and checked against
    /// the range before it is narrowed to the engine's `f32`, so a value just
    /// outside the range is refused instead of rounded into it.
    pub value: Option<f64>,
    /// Overrides the kind's configured weight (checked as `value` is).
    pub weight: Option<f64>,
    /// Milliseconds since the Unix epoch; now when absent.
    #[serde(default, deserialize_with = "integral")]
    pub timestamp_ms: Option<i64>,
    /// Client event id: a repeat inside the dedup window is a duplicate.
    pub event_id: Option<String>,
}

/// A JSON object as a map, refusing a key given twice: serde_json would
/// keep the last value in silence, where a repeated field of a body is
/// refused.
pub(crate) fn unique_keys<'de, D, V>(deserializer: D) -> Result<std::collections::BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Entries<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Entries<V> {
        type Value = std::collections::BTreeMap<String, V>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("an object")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
            let mut map = std::collections::BTreeMap::new();
            while let Some((key, value)) = entries.next_entry::<String, V>()? {
                if map.contains_key(&key) {
                    return Err(A::Error::custom(format_args!("the key `{key}` appears twice")));
                }
                map.insert(key, value);
            }
            Ok(map)
        }
    }
    deserializer.deserialize_map(Entries(std::marker::PhantomData))
}

/// An integer as JSON Schema (and so /openapi.json) defines one: a number
/// with no fractional part, so `1057.0` and `1.057e3` are 1057 as `1057` is.
pub(crate) fn integral<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else { return Ok(None) };
    if let Some(value) = number.as_i64() {
        return Ok(Some(value));
    }
    // 2⁶³ is exact in f64, so the range check is exact; -2⁶³ (i64::MIN) is
    // left out because integers just below it (-2⁶³ - 1, parsed as a float
    // when out of range) round to it: i64::MIN written as an integer took
    // the `as_i64` path above.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    match number.as_f64() {
        Some(value) if value.fract() == 0.0 && value > -LIMIT && value < LIMIT => Ok(Some(value as i64)),
        _ => Err(D::Error::custom(format_args!("invalid value: {number}, expected an integer of 64 bits"))),
    }
}

/// `integral` for a field that must be there (and not null).
pub(crate) fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    integral(deserializer)?.ok_or_else(|| D::Error::custom("invalid value: null, expected an integer of 64 bits"))
}

/// The kinds every server accepts, by name, in the order the API documents
/// them; configured custom kinds (`EngineConfig::weights.custom`) come on top.
pub const BUILT_IN_KINDS: [&str; 5] = ["view", "click", "cart", "purchase", "rating"];

/// One of each built-in kind, in `BUILT_IN_KINDS`' order (a rating's value
/// is set when parsed). Parsing goes through this table, so a kind listed
/// here cannot fall through to `Custom`.
const BUILT_IN: [EventKind; 5] =
    [EventKind::View, EventKind::Click, EventKind::Cart, EventKind::Purchase, EventKind::Rating(0.0)];

/// The API name of a built-in kind (`None` for custom ones). Exhaustive on
/// purpose: a new `EventKind` does not compile until it is named here; list
/// it in `BUILT_IN` and `BUILT_IN_KINDS` at the same time (a test enumerates
/// every variant of `EventKind` and fails on one missing there).
fn built_in_kind_name(kind: &EventKind) -> Option<&'static str> {
    match kind {
        EventKind::View => Some("view"),
        EventKind::Click => Some("click"),
        EventKind::Cart => Some("cart"),
        EventKind::Purchase => Some("purchase"),
        EventKind::Rating(_) => Some("rating"),
        EventKind::Custom(_) => None,
    }
}

/// The built-in kind called `name`, if one is.
fn built_in_kind(name: &str) -> Option<EventKind> {
    BUILT_IN.into_iter().find(|kind| built_in_kind_name(kind) == Some(name))
}

/// Every kind `config` accepts: the built-in ones, then the custom ones.
pub fn kinds(config: &EngineConfig) -> Vec<String> {
    BUILT_IN_KINDS.iter().map(|kind| kind.to_string()).chain(config.weights.custom.keys().cloned()).collect()
}

/// `value` if it is finite and inside `[min, max]`, as the engine's `f32`.
fn bounded(field: &str, name: &str, value: f64, min: f64, max: f64) -> Result<f32, Problem> {
    if !value.is_finite() || value < min || value > max {
        return Err(Problem::bad_request(format!(
            "invalid {field}.{name}: must be a finite number in [{min}, {max}], got {value}"
        )));
    }
    Ok(value as f32)
}

impl ApiEvent {
    /// The engine's event; `config` gives the rating range (the engine checks
    /// everything else, and these ranges again).
    pub fn into_event(self, field: &str, config: &EngineConfig) -> Result<Event, Problem> {
        let kind = match (built_in_kind(&self.kind), self.value) {
            (Some(EventKind::Rating(_)), Some(value)) => EventKind::Rating(bounded(
                field,
                "value",
                value,
                f64::from(config.rating_min),
                f64::from(config.rating_max),
            )?),
            (Some(EventKind::Rating(_)), None) => {
                return Err(Problem::bad_request(format!("invalid {field}.value: required for kind \"rating\"")))
            }
            (_, Some(_)) => {
                return Err(Problem::bad_request(format!("invalid {field}.value: only kind \"rating\" takes a value")))
            }
            (Some(kind), None) => kind,
            // Not a built-in name: a custom kind (the engine refuses one
            // that is not configured).
            (None, None) => EventKind::Custom(self.kind),
        };
        let weight = match self.weight {
            Some(weight) => Some(bounded(field, "weight", weight, 0.0, f64::from(WEIGHT_MAX))?),
            None => None,
        };
        Ok(Event {
            user: self.user,
            item: self.item,
            kind,
            weight,
            timestamp_ms: self.timestamp_ms,
            event_id: self.event_id,
        })
    }
}

/// `POST /v1/events`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    pub events: Vec<ApiEvent>,
    /// "always", "batch" or "never"; the server's default when absent.
    pub durability: Option<String>,
}

/// `?durability=` of `POST /v1/event`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DurabilityQuery {
    /// always, batch or never (default: the server's `sync`).
    pub durability: Option<String>,
}

pub fn durability(value: Option<&str>, default: Durability) -> Result<Durability, Problem> {
    match value {
        None => Ok(default),
        Some("always") => Ok(Durability::Always),
        Some("batch") => Ok(Durability::Batch),
        Some("never") => Ok(Durability::Never),
        Some(other) => {
            Err(Problem::bad_request(format!("invalid durability: {other:?} must be always, batch or never")))
        }
    }
}

/// One acknowledgement.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiReceipt {
    pub lsn: u64,
    pub duplicate: bool,
}

/// The answer to an ingest: one receipt per event, in order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IngestResponse {
    pub receipts: Vec<ApiReceipt>,
}

/// Query of `GET /v1/users/{user}/recommend`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendQuery {
    /// Items wanted.
    pub n: Option<usize>,
    /// Scoring strategy (default blend).
    pub strategy: Option<String>,
    /// Comma-separated item ids never to return.
    pub exclude: Option<String>,
    /// Comma-separated item ids: only these may be returned.
    pub allow: Option<String>,
}

/// Query with only `n`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CountQuery {
    /// Items wanted.
    pub n: Option<usize>,
}

pub const DEFAULT_N: usize = 10;

pub fn check_n(n: Option<usize>, max: usize) -> Result<usize, Problem> {
    let n = n.unwrap_or(DEFAULT_N);
    if n == 0 || n > max {
        return Err(Problem::bad_request(format!("invalid n: must be 1–{max}, got {n}")));
    }
    Ok(n)
}

pub fn strategy(name: Option<&str>) -> Result<Strategy, Problem> {
    let Some(name) = name else { return Ok(Strategy::Blend) };
    Strategy::from_name(name)
        .ok_or_else(|| Problem::bad_request(format!("invalid strategy: {name:?} is not one of {}", Strategy::names())))
}

fn list(value: Option<&str>) -> Vec<String> {
    value.map(|value| value.split(',').filter(|id| !id.is_empty()).map(str::to_string).collect()).unwrap_or_default()
}

impl RecommendQuery {
    pub fn into_request(self, user: String, max_n: usize) -> Result<RecommendRequest, Problem> {
        let n = check_n(self.n, max_n)?;
        let strategy = strategy(self.strategy.as_deref())?;
        let mut request = RecommendRequest::new(user, n, strategy).exclude(list(self.exclude.as_deref()));
        if self.allow.is_some() {
            request = request.allow(list(self.allow.as_deref()));
        }
        Ok(request)
    }
}

/// One event of an anonymous session (`POST /v1/sessions/recommend`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiSessionEvent {
    pub item: String,
    /// As for ingested events.
    pub kind: String,
    /// The rating, for kind "rating" only.
    pub value: Option<f64>,
    /// Overrides the kind's configured weight.
    pub weight: Option<f64>,
}

/// `POST /v1/sessions/recommend`: recommendations for the events of a
/// session, given in the body; nothing is written.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SessionRequest)]
pub struct SessionBody {
    pub events: Vec<ApiSessionEvent>,
    /// JSON Schema integers: `10` and `10.0` alike.
    #[serde(default, deserialize_with = "integral")]
    pub n: Option<i64>,
    pub strategy: Option<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filter: ItemFilter,
    #[serde(default, deserialize_with = "integral")]
    pub offset: Option<i64>,
}

/// A route that takes no query parameters: any is refused (400).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

impl SessionBody {
    /// The engine's request; each event checked as an ingested one is
    /// (errors name `events[i].…`).
    pub fn into_request(self, config: &EngineConfig, max_n: usize) -> Result<SessionRequest, Problem> {
        let count = |name: &str, value: Option<i64>| match value {
            None => Ok(None),
            Some(value) => usize::try_from(value)
                .map(Some)
                .map_err(|_| Problem::bad_request(format!("invalid {name}: must be ≥ 0, got {value}"))),
        };
        let n = check_n(count("n", self.n)?, max_n)?;
        let offset = count("offset", self.offset)?.unwrap_or(0);
        let strategy = strategy(self.strategy.as_deref())?;
        let mut events = Vec::with_capacity(self.events.len());
        for (at, event) in self.events.into_iter().enumerate() {
            let api = ApiEvent {
                user: "session".into(),
                item: event.item,
                kind: event.kind,
                value: event.value,
                weight: event.weight,
                timestamp_ms: None,
                event_id: None,
            };
            let event = api.into_event(&format!("events[{at}]"), config)?;
            events.push(SessionEvent { item: event.item, kind: event.kind, weight: event.weight });
        }
        let mut request = SessionRequest::new(events, n, strategy);
        request.exclude = self.exclude;
        request.filter = self.filter;
        request.offset = offset;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, value: Option<f64>, weight: Option<f64>) -> ApiEvent {
        ApiEvent {
            user: "u".into(),
            item: "i".into(),
            kind: kind.into(),
            value,
            weight,
            timestamp_ms: None,
            event_id: None,
        }
    }

    #[test]
    fn every_built_in_kind_is_listed_and_parses_back() {
        let config = EngineConfig::default();
        for name in BUILT_IN_KINDS {
            let value = (name == "rating").then_some(1.0);
            let parsed = event(name, value, None).into_event("event", &config).map(|event| event.kind);
            assert_eq!(parsed.as_ref().ok().and_then(built_in_kind_name), Some(name), "{name}");
        }
        for kind in BUILT_IN {
            assert!(built_in_kind_name(&kind).is_some_and(|name| BUILT_IN_KINDS.contains(&name)), "{kind:?}");
        }
        assert_eq!(BUILT_IN.map(|kind| built_in_kind_name(&kind)), BUILT_IN_KINDS.map(Some));
        let mut custom = EngineConfig::default();
        custom.weights.custom.insert("share".into(), 3.0);
        assert_eq!(kinds(&custom).last().map(String::as_str), Some("share"));
    }

    /// Every variant of `enum_name`, found by decoding each variant index
    /// (postcard encodes a variant as its index, then its fields; zero bytes
    /// are a valid value of every field used here: 0.0 or an empty string).
    fn every_variant<T: serde::de::DeserializeOwned>() -> Vec<T> {
        (0u8..64).filter_map(|index| postcard::from_bytes::<T>(&[index, 0, 0, 0, 0, 0, 0, 0, 0]).ok()).collect()
    }

    #[test]
    fn every_event_kind_is_handled_no_built_in_falls_back_to_custom() {
        let config = EngineConfig::default();
        let variants = every_variant::<EventKind>();
        assert_eq!(variants.len(), BUILT_IN.len() + 1, "{variants:?}: list a new kind in BUILT_IN");
        for kind in variants {
            let Some(name) = built_in_kind_name(&kind) else {
                assert!(matches!(kind, EventKind::Custom(_)), "{kind:?}");
                continue;
            };
            assert!(BUILT_IN_KINDS.contains(&name), "{name} is missing from BUILT_IN_KINDS");
            let value = matches!(kind, EventKind::Rating(_)).then_some(1.0);
            let parsed = event(name, value, None).into_event("event", &config).map(|event| event.kind);
            assert_eq!(parsed.as_ref().ok().map(std::mem::discriminant), Some(std::mem::discriminant(&kind)), "{name}");
        }
    }

    #[test]
    fn every_strategy_is_offered_and_parses_back() {
        let variants = every_variant::<Strategy>();
        assert_eq!(variants.len(), Strategy::ALL.len(), "{variants:?}: list a new strategy in Strategy::ALL");
        for variant in variants {
            assert!(Strategy::ALL.contains(&variant), "{variant:?}");
            assert_eq!(strategy(Some(variant.name())).ok(), Some(variant));
        }
    }

    #[test]
    fn an_integral_timestamp_is_an_integer_however_written() {
        let parse = |text: &str| serde_json::from_str::<ApiEvent>(text).map(|event| event.timestamp_ms);
        let with = |stamp: &str| format!(r#"{{"user":"u","item":"i","kind":"view","timestamp_ms":{stamp}}}"#);
        assert_eq!(parse(&with("1057")).ok(), Some(Some(1057)));
        assert_eq!(parse(&with("1057.0")).ok(), Some(Some(1057)));
        assert_eq!(parse(&with("1.057e3")).ok(), Some(Some(1057)));
        assert_eq!(parse(&with("null")).ok(), Some(None));
        assert_eq!(parse(r#"{"user":"u","item":"i","kind":"view"}"#).ok(), Some(None));
        assert!(parse(&with("1057.5")).is_err());
        assert!(parse(&with("9223372036854775808")).is_err());
        assert!(parse(&with("\"1057\"")).is_err());
    }

    #[test]
    fn a_value_or_weight_just_outside_its_range_is_refused_not_rounded_in() {
        let config = EngineConfig::default();
        let max = f64::from(config.rating_max);
        // Both round to the bound as f32.
        assert!(event("rating", Some(max + 1e-9), None).into_event("event", &config).is_err());
        assert!(event("view", None, Some(-1e-50)).into_event("event", &config).is_err());
        assert!(event("view", None, Some(f64::from(WEIGHT_MAX) + 0.01)).into_event("event", &config).is_err());
        assert!(event("rating", Some(max), None).into_event("event", &config).is_ok());
        assert!(event("view", None, Some(0.0)).into_event("event", &config).is_ok());
    }
}
