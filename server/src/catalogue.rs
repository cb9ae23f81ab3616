//! The catalogue over HTTP: items and users with metadata, hiding and
//! showing, the newest items, and the filter and page parameters of every
//! list read (`category`, `label`, `label_min`, `label_max`, `offset`).
//!
//! Query strings are read pair by pair, so a parameter may repeat
//! (`category=a&category=b`); the parameters a route had before the
//! catalogue are still read by their `serde` structs (`RecommendQuery`,
//! `CountQuery`) from the remaining pairs, with the same errors as before
//! (an unknown or repeated parameter is refused). Every refusal names the
//! parameter or field, and nothing is written on one.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use recwal::{EngineError, Item, ItemFilter, ItemPage, ItemQuery, LabelCondition, LabelValue, ReplicaWrite, User};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::answers::{CatalogueItems, Logged};
use crate::api::{self, CountQuery};
use crate::problem::{ApiJson, ApiPath, ApiQuery, Problem, ProblemBody};
use crate::server::{blocking, App};

/// Items per page of `GET /v1/items` when `limit` is absent (or `max_n`
/// when that is smaller).
pub const ITEMS_PAGE_DEFAULT: usize = 100;

/// The body of `PUT /v1/items/{item}`: the item's whole metadata (what is
/// absent is cleared).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemBody {
    /// May repeat the path's id (so a `GET`'s answer can be sent back).
    pub id: Option<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default, deserialize_with = "api::unique_keys")]
    pub labels: BTreeMap<String, LabelValue>,
    #[serde(default)]
    pub hidden: Option<bool>,
    #[serde(default, deserialize_with = "api::integral")]
    pub timestamp_ms: Option<i64>,
    #[serde(default, deserialize_with = "api::integral")]
    pub expires_ms: Option<i64>,
}

impl ItemBody {
    /// The engine's item `id` with this body's entry (what is absent is
    /// cleared; `hidden` defaults to false).
    pub fn into_item(self, id: String) -> Item {
        Item {
            id,
            categories: self.categories,
            labels: self.labels,
            hidden: self.hidden.unwrap_or(false),
            timestamp_ms: self.timestamp_ms,
            expires_ms: self.expires_ms,
        }
    }
}

/// The body of `PUT /v1/users/{user}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    /// May repeat the path's id.
    pub id: Option<String>,
    #[serde(default, deserialize_with = "api::unique_keys")]
    pub labels: BTreeMap<String, LabelValue>,
}

/// Query of `GET /v1/items`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The `next` of the previous page (404 when it names no item).
    pub after: Option<String>,
    /// Items per page.
    pub limit: Option<usize>,
}

/// The filter and page parameters every list read takes (`Filtered`), for
/// the document: `Filtered` reads them pair by pair, so a parameter may
/// repeat. /openapi.json adds their limits (server/src/openapi.rs).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read by `Filtered`, field by field; this type only describes them.
pub struct FilterParams {
    /// Only items in at least one of these categories (repeat the parameter).
    category: Option<Vec<String>>,
    /// `key:text`: the item's label `key` is the text `text`.
    label: Option<Vec<String>>,
    /// `key:number`: the item's label `key` is a number ≥ `number`.
    label_min: Option<Vec<String>>,
    /// `key:number`: the item's label `key` is a number ≤ `number`.
    label_max: Option<Vec<String>>,
    /// Items of the full answer to skip.
    offset: Option<usize>,
}

/// A body's `id`, which must be the path's when present.
fn same_id(path: &str, body: Option<&str>) -> Result<(), Problem> {
    match body {
        Some(body) if body != path => {
            Err(Problem::bad_request(format!("invalid id: the body says {body:?}, the path {path:?}")))
        }
        _ => Ok(()),
    }
}

/// A list read's query: the route's own parameters (`T`), then the filter
/// and the page, which every list read takes alike.
pub struct Filtered<T> {
    pub base: T,
    pub filter: ItemFilter,
    pub offset: usize,
}

impl<T> Filtered<T> {
    /// The engine's query for `n` items; `offset + n` ≤ `max_n`.
    pub fn query(self, n: usize, max_n: usize) -> Result<ItemQuery, Problem> {
        check_page(n, self.offset, max_n)?;
        Ok(ItemQuery { n, offset: self.offset, filter: self.filter })
    }
}

/// `offset + n` ≤ `max_n` (the server's, at most the engine's `N_MAX`):
/// a page costs the work of `offset + n` items. Named as `offset`.
pub fn check_page(n: usize, offset: usize, max_n: usize) -> Result<(), Problem> {
    if offset.saturating_add(n) > max_n {
        return Err(Problem::bad_request(format!(
            "invalid offset: offset + n must be at most {max_n}, got {offset} + {n}"
        )));
    }
    Ok(())
}

fn query_error(err: impl std::fmt::Display) -> Problem {
    // The wording of axum's own `Query` rejection, which these replace.
    Problem::bad_request(format!("Failed to deserialize query string: {err}"))
}

/// `key:value` of a label parameter, split at the first colon (so a key
/// cannot hold one; a value can).
fn key_value<'a>(parameter: &str, pair: &'a str) -> Result<(&'a str, &'a str), Problem> {
    pair.split_once(':')
        .ok_or_else(|| Problem::bad_request(format!("invalid {parameter}: expected key:value, got {pair:?}")))
}

fn bound(parameter: &str, pair: &str) -> Result<LabelCondition, Problem> {
    let (key, text) = key_value(parameter, pair)?;
    let value = text.parse::<f64>().ok().filter(|value| value.is_finite()).ok_or_else(|| {
        Problem::bad_request(format!("invalid {parameter}: {text:?} (in {pair:?}) is not a finite number"))
    })?;
    let key = key.to_string();
    Ok(if parameter == "label_min" {
        LabelCondition::AtLeast { key, value }
    } else {
        LabelCondition::AtMost { key, value }
    })
}

/// The engine's verdict on a filter, with the field renamed to the query
/// parameter it came from (`filter.labels[2].key` → `label_min`).
fn filter_problem(err: EngineError, sources: &[&'static str]) -> Problem {
    let EngineError::Invalid { field, rule } = err else { return Problem::from(err) };
    let parameter = if field.starts_with("filter.categories") {
        "category"
    } else if let Some(rest) = field.strip_prefix("filter.labels[") {
        rest.split(']')
            .next()
            .and_then(|at| at.parse::<usize>().ok())
            .and_then(|at| sources.get(at))
            .copied()
            .unwrap_or("label")
    } else {
        "label"
    };
    Problem::bad_request(format!("invalid {parameter}: {rule} ({field})"))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Filtered<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).map_err(query_error)?;
        let mut rest = Vec::with_capacity(pairs.len());
        let mut filter = ItemFilter::default();
        // Which parameter gave each label condition, for the errors.
        let mut sources: Vec<&'static str> = Vec::new();
        let mut offset = None;
        for (name, value) in pairs {
            match name.as_str() {
                "category" => filter.categories.push(value),
                "label" => {
                    let (key, text) = key_value("label", &value)?;
                    filter.labels.push(LabelCondition::Equals { key: key.to_string(), value: LabelValue::from(text) });
                    sources.push("label");
                }
                "label_min" | "label_max" => {
                    let parameter = if name == "label_min" { "label_min" } else { "label_max" };
                    filter.labels.push(bound(parameter, &value)?);
                    sources.push(parameter);
                }
                "offset" => {
                    if offset.is_some() {
                        return Err(query_error("duplicate field `offset`"));
                    }
                    let parsed = value.parse::<usize>().map_err(|_| {
                        Problem::bad_request(format!("invalid offset: {value:?} is not a whole number ≥ 0"))
                    })?;
                    offset = Some(parsed);
                }
                _ => rest.push((name, value)),
            }
        }
        filter.validate().map_err(|err| filter_problem(err, &sources))?;
        let rest = serde_urlencoded::to_string(&rest).map_err(query_error)?;
        let base = serde_urlencoded::from_str(&rest).map_err(query_error)?;
        Ok(Filtered { base, filter, offset: offset.unwrap_or(0) })
    }
}

fn logged(lsn: u64) -> Response {
    Json(Logged { lsn }).into_response()
}

fn not_found(what: &str, id: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not found", format!("no {what} {id:?} in the catalogue"))
}

/// `PUT /v1/items/{item}`.
#[utoipa::path(put, path = "/v1/items/{item}", tag = "items",
    summary = "Set an item's catalogue entry (categories, labels, hidden, timestamp_ms, expires_ms), replacing what \
               it had (logged).",
    params(("item" = String, Path, description = "Item id")), request_body = ItemBody,
    responses(
        (status = 200, description = "Set; the LSN of the record.", body = Logged),
        (status = 409, description = "The item was removed (DELETE), for good.", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn put_item(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ItemBody>,
) -> Result<Response, Problem> {
    same_id(&id, body.id.as_deref())?;
    let item = body.into_item(id);
    if app.is_cluster_node() {
        return crate::cluster::write(&app, move |engine| engine.replica_write(ReplicaWrite::UpsertItem(&item))).await;
    }
    Ok(logged(blocking(app.engine()?, move |engine| engine.upsert_item(&item)).await?))
}

/// `GET /v1/items/{item}`.
#[utoipa::path(get, path = "/v1/items/{item}", tag = "items",
    summary = "An item's catalogue entry (404 when it has none: unknown, or known from events only).",
    params(("item" = String, Path, description = "Item id")),
    responses((status = 200, description = "The entry.", body = Item)))]
pub async fn get_item(State(app): State<Arc<App>>, ApiPath(id): ApiPath<String>) -> Result<Response, Problem> {
    let lookup = id.clone();
    let item = blocking(app.engine()?, move |engine| engine.item(&lookup)).await?;
    Ok(Json(item.ok_or_else(|| not_found("item", &id))?).into_response())
}

/// `GET /v1/items?after=&limit=`.
#[utoipa::path(get, path = "/v1/items", tag = "items",
    summary = "A page of catalogue items in the order they entered it (`limit`, `after`: the previous page's `next`; \
               404 when `after` names no item).",
    params(ListQuery),
    responses((status = 200, description = "A page.", body = ItemPage)))]
pub async fn list_items(
    State(app): State<Arc<App>>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, Problem> {
    let max = app.config.server.max_n;
    let limit = query.limit.unwrap_or(ITEMS_PAGE_DEFAULT.min(max));
    if limit == 0 || limit > max {
        return Err(Problem::bad_request(format!("invalid limit: must be 1–{max}, got {limit}")));
    }
    let page = blocking(app.engine()?, move |engine| Ok(engine.items(query.after.as_deref(), limit))).await?;
    match page {
        Ok(page) => Ok(Json(page).into_response()),
        // A cursor naming no item: the page it points into does not exist.
        Err(EngineError::Invalid { field, rule }) if field == "after" => {
            Err(Problem::new(StatusCode::NOT_FOUND, "not found", format!("invalid after: {rule}")))
        }
        Err(err) => Err(Problem::from(err)),
    }
}

/// `POST /v1/items/{item}/hide` and `/show`.
async fn set_hidden(app: Arc<App>, id: String, hidden: bool) -> Result<Response, Problem> {
    if app.is_cluster_node() {
        let write =
            move |engine: &recwal::Engine| engine.replica_write(ReplicaWrite::SetItemHidden { item: &id, hidden });
        return crate::cluster::write(&app, write).await;
    }
    Ok(logged(blocking(app.engine()?, move |engine| engine.set_item_hidden(&id, hidden)).await?))
}

#[utoipa::path(post, path = "/v1/items/{item}/hide", tag = "items",
    summary = "Hide an item from every read from the next request on (logged; 404 for an unknown item).",
    params(("item" = String, Path, description = "Item id")),
    responses((status = 200, description = "Hidden; the LSN of the record.", body = Logged)))]
pub async fn hide_item(State(app): State<Arc<App>>, ApiPath(id): ApiPath<String>) -> Result<Response, Problem> {
    set_hidden(app, id, true).await
}

#[utoipa::path(post, path = "/v1/items/{item}/show", tag = "items", summary = "Show a hidden item again (logged).",
    params(("item" = String, Path, description = "Item id")),
    responses((status = 200, description = "Shown; the LSN of the record.", body = Logged)))]
pub async fn show_item(State(app): State<Arc<App>>, ApiPath(id): ApiPath<String>) -> Result<Response, Problem> {
    set_hidden(app, id, false).await
}

/// `PUT /v1/users/{user}`.
#[utoipa::path(put, path = "/v1/users/{user}", tag = "users",
    summary = "Set a user's labels, replacing what they had (logged).",
    params(("user" = String, Path, description = "User id")), request_body = UserBody,
    responses((status = 200, description = "Set; the LSN of the record.", body = Logged)))]
pub async fn put_user(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UserBody>,
) -> Result<Response, Problem> {
    same_id(&id, body.id.as_deref())?;
    let user = User { id, labels: body.labels };
    if app.is_cluster_node() {
        return crate::cluster::write(&app, move |engine| engine.replica_write(ReplicaWrite::UpsertUser(&user))).await;
    }
    Ok(logged(blocking(app.engine()?, move |engine| engine.upsert_user(&user)).await?))
}

/// `GET /v1/users/{user}`.
#[utoipa::path(get, path = "/v1/users/{user}", tag = "users",
    summary = "A user's labels (404 when none were set, or after a forget).",
    params(("user" = String, Path, description = "User id")),
    responses((status = 200, description = "The user's labels.", body = User)))]
pub async fn get_user(State(app): State<Arc<App>>, ApiPath(id): ApiPath<String>) -> Result<Response, Problem> {
    let lookup = id.clone();
    let user = blocking(app.engine()?, move |engine| engine.user(&lookup)).await?;
    Ok(Json(user.ok_or_else(|| not_found("user", &id))?).into_response())
}

/// `GET /v1/latest?n=&offset=&category=…`.
#[utoipa::path(get, path = "/v1/latest", tag = "items",
    summary = "The newest catalogue items by publication time (`n`, the filter, `offset`); hidden, expired, not yet \
               published and undated items are left out.",
    params(CountQuery, FilterParams),
    responses((status = 200, description = "Newest first.", body = CatalogueItems)))]
pub async fn latest(State(app): State<Arc<App>>, query: Filtered<CountQuery>) -> Result<Response, Problem> {
    let n = api::check_n(query.base.n, app.config.server.max_n)?;
    let query = query.query(n, app.config.server.max_n)?;
    let items = blocking(app.engine()?, move |engine| engine.latest(&query)).await?;
    Ok(Json(CatalogueItems { items }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<Filtered<CountQuery>, Problem> {
        let request = axum::http::Request::builder()
            .uri(format!("/x?{query}"))
            .body(())
            .map_err(|err| Problem::bad_request(err.to_string()))?;
        let (mut parts, ()) = request.into_parts();
        futures_lite(Filtered::<CountQuery>::from_request_parts(&mut parts, &()))
    }

    /// Polls a future that never waits (the extractor does no I/O).
    fn futures_lite<F: std::future::Future>(future: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread().build();
        match runtime {
            Ok(runtime) => runtime.block_on(future),
            Err(err) => panic!("no runtime: {err}"),
        }
    }

    #[test]
    fn filter_parameters_parse_into_the_engine_filter() {
        let parsed =
            parse("n=3&category=a&category=b%20c&label=brand:acme:co&label_min=price:1.5&label_max=price:1e2&offset=4");
        let Ok(parsed) = parsed else { panic!("refused") };
        assert_eq!(parsed.base.n, Some(3));
        assert_eq!(parsed.offset, 4);
        assert_eq!(parsed.filter.categories, ["a", "b c"]);
        assert_eq!(
            parsed.filter.labels,
            [
                LabelCondition::Equals { key: "brand".into(), value: LabelValue::Text("acme:co".into()) },
                LabelCondition::AtLeast { key: "price".into(), value: 1.5 },
                LabelCondition::AtMost { key: "price".into(), value: 100.0 },
            ]
        );
    }

    /// Found by schemathesis: -2⁶³ - 1 parsed as a float rounds to -2⁶³
    /// (i64::MIN) and was accepted as that.
    #[test]
    fn a_time_just_outside_i64_is_refused_not_rounded_in() {
        let body = |stamp: &str| serde_json::from_str::<ItemBody>(&format!(r#"{{"timestamp_ms":{stamp}}}"#));
        assert!(body("-9223372036854775809").is_err());
        assert!(body("9223372036854775808").is_err());
        assert!(body("-9.3e18").is_err());
        assert_eq!(body("-9223372036854775808").ok().and_then(|body| body.timestamp_ms), Some(i64::MIN));
        assert_eq!(body("9223372036854775807").ok().and_then(|body| body.timestamp_ms), Some(i64::MAX));
        assert_eq!(body("-1.0e3").ok().and_then(|body| body.timestamp_ms), Some(-1000));
    }

    #[test]
    fn each_malformed_parameter_is_named() {
        for (query, name) in [
            ("label=brand", "invalid label:"),
            ("label=:x", "invalid label:"),
            ("label_min=p:NaN", "invalid label_min:"),
            ("label_max=p:1e999", "invalid label_max:"),
            ("label_min=p", "invalid label_min:"),
            ("label=a:b&label_max=:3", "invalid label_max:"),
            ("category=", "invalid category:"),
            ("offset=x", "invalid offset:"),
            ("offset=1&offset=1", "`offset`"),
            ("n=1&n=2", "`n`"),
            ("colour=red", "`colour`"),
        ] {
            match parse(query) {
                Ok(_) => panic!("{query} was accepted"),
                Err(problem) => assert!(problem.detail.contains(name), "{query}: {}", problem.detail),
            }
        }
    }
}
