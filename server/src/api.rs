//! The JSON shapes of the data plane (`/v1`), converted to the engine's
//! types; every conversion error names the field.

use recwal::{Durability, Event, EventKind, RecommendRequest, Strategy};
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

/// One event, as clients send it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiEvent {
    pub user: String,
    pub item: String,
    /// "view", "click", "cart", "purchase", "rating" (with `value`), or a
    /// configured custom kind.
    pub kind: String,
    /// The rating, for kind "rating" only.
    pub value: Option<f32>,
    /// Overrides the kind's configured weight.
    pub weight: Option<f32>,
    /// Milliseconds since the Unix epoch; now when absent.
    pub timestamp_ms: Option<i64>,
    /// Client event id: a repeat inside the dedup window is a duplicate.
    pub event_id: Option<String>,
}

impl ApiEvent {
    pub fn into_event(self, field: &str) -> Result<Event, Problem> {
        let kind = match (self.kind.as_str(), self.value) {
            ("rating", Some(value)) => EventKind::Rating(value),
            ("rating", None) => {
                return Err(Problem::bad_request(format!("invalid {field}.value: required for kind \"rating\"")))
            }
            (_, Some(_)) => {
                return Err(Problem::bad_request(format!("invalid {field}.value: only kind \"rating\" takes a value")))
            }
            ("view", None) => EventKind::View,
            ("click", None) => EventKind::Click,
            ("cart", None) => EventKind::Cart,
            ("purchase", None) => EventKind::Purchase,
            (other, None) => EventKind::Custom(other.to_string()),
        };
        Ok(Event {
            user: self.user,
            item: self.item,
            kind,
            weight: self.weight,
            timestamp_ms: self.timestamp_ms,
            event_id: self.event_id,
        })
    }
}

/// `POST /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    pub events: Vec<ApiEvent>,
    /// "always", "batch" or "never"; the server's default when absent.
    pub durability: Option<String>,
}

/// `?durability=` of `POST /v1/event`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurabilityQuery {
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
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiReceipt {
    pub lsn: u64,
    pub duplicate: bool,
}

/// The answer to an ingest.
#[derive(Debug, Serialize, Deserialize)]
pub struct IngestResponse {
    pub receipts: Vec<ApiReceipt>,
}

/// Query of `GET /v1/users/{user}/recommend`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendQuery {
    pub n: Option<usize>,
    pub strategy: Option<String>,
    /// Comma-separated item ids never to return.
    pub exclude: Option<String>,
    /// Comma-separated item ids: only these may be returned.
    pub allow: Option<String>,
}

/// Query with only `n`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountQuery {
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
    Strategy::ALL.into_iter().find(|strategy| strategy.name() == name).ok_or_else(|| {
        let names: Vec<&str> = Strategy::ALL.iter().map(|strategy| strategy.name()).collect();
        Problem::bad_request(format!("invalid strategy: {name:?} is not one of {}", names.join(", ")))
    })
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
