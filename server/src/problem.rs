//! Errors as `application/problem+json` (RFC 9457): every refusal names the
//! field or the rule, with the status that says whose fault it is.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use recwal::wal::WalError;
use recwal::EngineError;
use serde::de::DeserializeOwned;

/// An error answer.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    /// Seconds for a `Retry-After` header (a condition expected to pass).
    pub retry_after: Option<u32>,
}

/// `Retry-After` of a write refused because the disk is full: the engine
/// notices freed space within a fraction of a second, but freeing it is
/// usually an operator's job.
pub const DISK_FULL_RETRY_AFTER_S: u32 = 5;

impl Problem {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem { status, title, detail: detail.into(), retry_after: None }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid request", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }
}

/// The body of every error answer (`application/problem+json`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemBody {
    /// Always `about:blank`: the status and title say what kind of error.
    #[schema(example = "about:blank")]
    pub r#type: &'static str,
    #[schema(example = "invalid request")]
    pub title: &'static str,
    #[schema(minimum = 400, maximum = 599, example = 400)]
    pub status: u16,
    /// Names the field or rule.
    #[schema(example = "invalid n: must be 1–1000, got 0")]
    pub detail: String,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body =
            ProblemBody { r#type: "about:blank", title: self.title, status: self.status.as_u16(), detail: self.detail };
        let text = serde_json::to_string(&body).unwrap_or_default();
        let mut response = (self.status, [(header::CONTENT_TYPE, "application/problem+json")], text).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

impl From<EngineError> for Problem {
    fn from(err: EngineError) -> Problem {
        let detail = err.to_string();
        let (status, title) = match &err {
            EngineError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid request"),
            EngineError::UnknownUser(_) | EngineError::UnknownItem(_) | EngineError::UnknownModel(_) => {
                (StatusCode::NOT_FOUND, "not found")
            }
            EngineError::ItemRemoved(_) => (StatusCode::CONFLICT, "conflict"),
            EngineError::BadModel(_) => (StatusCode::UNPROCESSABLE_ENTITY, "model refused"),
            EngineError::ModelRuntime(_) => (StatusCode::SERVICE_UNAVAILABLE, "model runtime unavailable"),
            EngineError::Wal(WalError::Full { .. }) => (StatusCode::SERVICE_UNAVAILABLE, "log full"),
            EngineError::Poisoned(_) => (StatusCode::SERVICE_UNAVAILABLE, "engine stopped accepting writes"),
            EngineError::StreamGap { .. } => (StatusCode::SERVICE_UNAVAILABLE, "replica behind a stream gap"),
            EngineError::DiskFull { .. } => {
                let mut problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "disk full", detail);
                problem.retry_after = Some(DISK_FULL_RETRY_AFTER_S);
                return problem;
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        };
        Problem::new(status, title, detail)
    }
}

/// `Json<T>` whose rejections are problems (malformed JSON, wrong types,
/// unknown fields, wrong content type, oversize body).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let status = rejection.status();
    let title = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported media type",
        _ => "invalid request",
    };
    // Unprocessable (well-formed JSON of the wrong shape) reads as a bad
    // request to the client: both are the caller's input.
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { status };
    Problem::new(status, title, rejection.body_text())
}

/// `Query<T>` whose rejections are problems.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_problem(&rejection)),
        }
    }
}

/// A query parameter whose name or value is not UTF-8 once
/// percent-decoded, as a 400 naming it. The query extractors would read
/// such bytes as U+FFFD and answer for a different value than was sent.
pub fn query_not_utf8(query: &str) -> Option<Problem> {
    let decodes = |text: &str| percent_encoding::percent_decode_str(text).decode_utf8().is_ok();
    let (name, _) = query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(name, value)| !decodes(name) || !decodes(value))?;
    let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
    Some(Problem::bad_request(format!(
        "query parameter `{name}`: not valid UTF-8 once percent-decoded (send text as UTF-8, percent-encoded)"
    )))
}

fn query_problem(rejection: &QueryRejection) -> Problem {
    Problem::bad_request(rejection.body_text())
}

/// `Path<T>` whose rejections (e.g. invalid percent-encoding) are problems.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_problem(&rejection)),
        }
    }
}

fn path_problem(rejection: &PathRejection) -> Problem {
    Problem::new(rejection.status(), "invalid request", rejection.body_text())
}

/// A raw body whose rejections (over the size limit) are problems.
pub struct ApiBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(ApiBytes(bytes)),
            Err(rejection) => Err(bytes_problem(&rejection)),
        }
    }
}

fn bytes_problem(rejection: &BytesRejection) -> Problem {
    let status = rejection.status();
    let title = if status == StatusCode::PAYLOAD_TOO_LARGE { "body too large" } else { "invalid request" };
    Problem::new(status, title, rejection.body_text())
}
