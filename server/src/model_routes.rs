//! The admin routes of model versions side by side (docs/MODELS.md): a
//! canary serving a share of users, a shadow scored beside every answer,
//! promotion and retirement. Each maps onto one `Engine` method (on a
//! cluster node: a stream message, `cluster/models.rs`); a request
//! the registry's state forbids (the active version as a canary, nothing to
//! promote) is a conflict (409), a malformed one a 400.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use recwal::model::{ModelInfo, ModelStatus};
use recwal::RouteChange;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::api;
use crate::problem::{ApiJson, ApiPath, Problem, ProblemBody};
use crate::server::{blocking, App};

/// `PUT /admin/models/canary`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryRequest {
    /// A live version other than the active one.
    #[serde(deserialize_with = "api::integer")]
    #[schema(value_type = u32, minimum = 0, maximum = 4294967295_u64)]
    pub version: i64,
    /// The share of users it ranks for, in percent (1–99), chosen by a hash
    /// of the user id: the same users on every restart, and a larger share
    /// only adds users.
    #[serde(deserialize_with = "api::integer")]
    #[schema(value_type = u8, minimum = 1, maximum = 99)]
    pub percent: i64,
}

/// `PUT /admin/models/shadow`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowRequest {
    /// A live version other than the active one.
    #[serde(deserialize_with = "api::integer")]
    #[schema(value_type = u32, minimum = 0, maximum = 4294967295_u64)]
    pub version: i64,
}

/// A version number from a body (JSON Schema's integers, `2.0` included).
fn version_of(version: i64) -> Result<u32, Problem> {
    u32::try_from(version)
        .map_err(|_| Problem::bad_request(format!("invalid version: must be 0–{}, got {version}", u32::MAX)))
}

/// The engine's refusals that a state of the registry causes (the active
/// version named, no canary to promote) are conflicts, not bad requests.
pub(crate) fn as_conflict(problem: Problem) -> Problem {
    if problem.status == StatusCode::BAD_REQUEST {
        Problem::new(StatusCode::CONFLICT, "conflict", problem.detail)
    } else {
        problem
    }
}

#[utoipa::path(put, path = "/admin/models/canary", tag = "models",
    summary = "Route a share of users to a canary version (loaded and warmed up first, logged, then served); \
               replaces any canary.",
    request_body = CanaryRequest,
    responses(
        (status = 200, description = "The routing now (in the status's `canary`).", body = ModelStatus),
        (status = 404, description = "No such model version (or it was retired).", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The version is the active one.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "The version's file does not load on this server.", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn set_canary(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<CanaryRequest>,
) -> Result<Response, Problem> {
    let version = version_of(body.version)?;
    let per_mille = match u16::try_from(body.percent) {
        Ok(percent @ 1..=99) => percent * 10,
        _ => return Err(Problem::bad_request(format!("invalid percent: must be 1–99, got {}", body.percent))),
    };
    change(&app, RouteChange::Canary { version, per_mille }).await
}

#[utoipa::path(delete, path = "/admin/models/canary", tag = "models",
    summary = "End the canary: every user gets the active version (logged).",
    responses((status = 200, description = "The routing now.", body = ModelStatus)))]
pub async fn clear_canary(State(app): State<Arc<App>>) -> Result<Response, Problem> {
    change(&app, RouteChange::ClearCanary).await
}

/// A routing change: through the stream on a cluster node.
async fn change(app: &App, change: RouteChange) -> Result<Response, Problem> {
    if app.is_cluster_node() {
        return crate::cluster::models::routes(app, change).await.map_err(as_conflict);
    }
    let status = blocking(app.engine()?, move |engine| match change {
        RouteChange::Canary { version, per_mille } => engine.set_canary(version, per_mille),
        RouteChange::ClearCanary => engine.clear_canary(),
        RouteChange::Shadow(version) => engine.set_shadow(version),
        RouteChange::ClearShadow => engine.clear_shadow(),
    })
    .await
    .map_err(as_conflict)?;
    Ok(Json(status).into_response())
}

#[utoipa::path(post, path = "/admin/models/canary/promote", tag = "models",
    summary = "Activate the canary's version for every user (durable, then swapped in); the canary ends.",
    responses(
        (status = 200, description = "The version now active.", body = ModelInfo),
        (status = 409, description = "There is no canary.", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn promote_canary(State(app): State<Arc<App>>) -> Result<Response, Problem> {
    if app.is_cluster_node() {
        return crate::cluster::models::promote(&app).await.map_err(as_conflict);
    }
    let info = blocking(app.engine()?, |engine| engine.promote_canary()).await.map_err(as_conflict)?;
    Ok(Json(info).into_response())
}

#[utoipa::path(put, path = "/admin/models/shadow", tag = "models",
    summary = "Score every ranked answer with a shadow version too, never serving its scores (its latency and \
               outcomes go to /metrics); replaces any shadow.",
    request_body = ShadowRequest,
    responses(
        (status = 200, description = "The routing now (in the status's `shadow`).", body = ModelStatus),
        (status = 404, description = "No such model version (or it was retired).", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The version is the active one.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "The version's file does not load on this server.", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn set_shadow(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<ShadowRequest>,
) -> Result<Response, Problem> {
    let version = version_of(body.version)?;
    change(&app, RouteChange::Shadow(version)).await
}

#[utoipa::path(delete, path = "/admin/models/shadow", tag = "models",
    summary = "End the shadow scoring (logged).",
    responses((status = 200, description = "The routing now.", body = ModelStatus)))]
pub async fn clear_shadow(State(app): State<Arc<App>>) -> Result<Response, Problem> {
    change(&app, RouteChange::ClearShadow).await
}

#[utoipa::path(delete, path = "/admin/models/{version}", tag = "models",
    summary = "Retire (unload) a version: logged, its file deleted; it can no longer be activated or routed.",
    params(("version" = u32, Path, description = "A model version number.")),
    responses(
        (status = 200, description = "Retired.", body = ModelInfo),
        (status = 409, description = "The version is the active one, the canary or the shadow.", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn retire_model(State(app): State<Arc<App>>, ApiPath(version): ApiPath<String>) -> Result<Response, Problem> {
    let version: u32 = version
        .parse()
        .map_err(|_| Problem::bad_request(format!("invalid version: {version:?} is not a version number")))?;
    if app.is_cluster_node() {
        return crate::cluster::models::retire(&app, version).await.map_err(as_conflict);
    }
    let info = blocking(app.engine()?, move |engine| engine.retire_model(version)).await.map_err(as_conflict)?;
    Ok(Json(info).into_response())
}
