//! The LFV-compatible REST API under `/2020-11-20`: one router per resource, LFV's error shapes.

pub mod access;
pub mod auth;
pub mod datasets;
pub mod error;
pub mod fields;
pub mod idempotency;
pub mod models;
pub mod packaging;
pub mod paging;
pub mod projects;
pub mod request;
pub mod trials;

pub use request::{epoch_seconds, parse_body, query_map};

use crate::state::AppState;
use axum::http::{Method, Uri};
use axum::Router;
use error::ApiError;

/// Every LFV route; mounted at `/2020-11-20`.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(projects::router())
        .merge(datasets::router())
        .merge(models::router())
        .merge(packaging::router())
        .fallback(unknown_operation)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(require_json))
}

/// Vigil's REST extensions (trials and batches); mounted at `/vigil/v1`, signed and shaped like the LFV API.
pub fn extension_router() -> Router<AppState> {
    Router::new()
        .merge(trials::router())
        .fallback(unknown_operation)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(require_json))
}

/// Every response carries an `x-amzn-RequestId` (a UUID, as AWS sends it; the SDKs expose it as the request
/// id), and the request's log lines carry the same id, so a user can quote it and an operator find it.
pub async fn request_id(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use tracing::Instrument;
    let id = new_request_id();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let api = path.starts_with("/2020-11-20/") || path.starts_with("/vigil/v1/");
    let started = std::time::Instant::now();
    let span = tracing::info_span!("request", request_id = %id);
    let mut res = next.run(req).instrument(span.clone()).await;
    let _entered = span.enter();
    let (status, ms) = (res.status().as_u16(), started.elapsed().as_millis() as u64);
    if api {
        tracing::info!(%method, %path, status, ms, "answered");
    } else {
        tracing::debug!(%method, %path, status, ms, "answered");
    }
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-amzn-requestid", v);
    }
    res
}

/// A random (version 4) UUID, lowercase with hyphens.
pub fn new_request_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// LFV's operations take JSON bodies (`application/json`, as every AWS SDK sends them): a request with a
/// body of another type is refused before any handler reads it, so a cross-site form or `text/plain` request
/// can never reach an operation. DetectAnomalies, whose body is the image, has its own check.
async fn require_json(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    let writes = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    if writes && !req.uri().path().ends_with("/detect") {
        let h = req.headers();
        let length = h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        let has_body = length.map_or(h.contains_key(header::TRANSFER_ENCODING), |n| n > 0);
        if has_body {
            let ct = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if ct != "application/json" && !ct.starts_with("application/x-amz-json") {
                let shown = if ct.is_empty() { "none".to_string() } else { format!("{ct:?}") };
                return ApiError::Validation(format!("The request body must be JSON (Content-Type: application/json), not {shown}.")).into_response();
            }
        }
    }
    next.run(req).await
}

/// A known path with the wrong method: 405 in LFV's error shape (axum's default has no body).
async fn method_not_allowed(method: Method, uri: Uri) -> axum::response::Response {
    auth::refusal(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "UnknownOperationException",
        &format!("{} does not accept {method}.", uri.path()),
    )
}

async fn unknown_operation(method: Method, uri: Uri) -> ApiError {
    ApiError::UnknownOperation(format!("{method} {}", uri.path()))
}

