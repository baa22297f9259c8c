//! Authentication at the HTTP edge. `authenticate` (one layer over the whole router) sends the LFV API
//! (`/2020-11-20/...`) and Vigil's REST extensions (`/vigil/...`) through SigV4 verification and everything
//! else through the console's session check. `require_sigv4` is the SigV4 part alone, to put on any other
//! router that LFV clients call; a request verified once is not verified again.
//!
//! Refusals have the status, `x-amzn-ErrorType` and JSON `Message` that AWS services send, so boto3 and the
//! Rust SDK raise their usual errors: no `Authorization` → `MissingAuthenticationTokenException`, a malformed
//! one → `IncompleteSignatureException`, an unknown or revoked key → `UnrecognizedClientException`, a wrong
//! signature, a changed body or a date outside 15 minutes → `InvalidSignatureException`; all 403.

use crate::auth::sigv4::{self, SigError};
use crate::auth::ApiCaller;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// A signed call's body must arrive within this time (16 MiB at 2 Mbit/s takes about a minute).
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The longest pause allowed while a signed call's body arrives.
const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

enum BodyError {
    TooLarge,
    Stalled,
    Broken,
}

/// Reads a body of at most `limit` bytes, frame by frame, refusing one that pauses longer than `BODY_IDLE_TIMEOUT`.
async fn read_body(body: Body, limit: usize, declared: Option<usize>) -> Result<axum::body::Bytes, BodyError> {
    use http_body_util::BodyExt;
    let mut body = body;
    // Sized once from the declared length (within the limit), so an 8 MB image is not copied as the buffer grows.
    let mut out = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    loop {
        match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Err(_) => return Err(BodyError::Stalled),
            Ok(None) => return Ok(out.into()),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > limit {
                        return Err(BodyError::TooLarge);
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

/// Bodies at least this large are hashed on a blocking thread.
const HASH_INLINE_BYTES: usize = 256 * 1024;

/// True for paths that LFV clients call, signed with SigV4.
pub fn is_api_path(path: &str) -> bool {
    path == "/2020-11-20" || path.starts_with("/2020-11-20/") || path == "/vigil" || path.starts_with("/vigil/")
}

/// A path with no empty, `.` or `..` segment (a trailing slash aside), as a signed path must be.
pub fn is_normal_path(path: &str) -> bool {
    let inner = path.strip_prefix('/').unwrap_or(path);
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    inner.is_empty() || inner.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.eq_ignore_ascii_case("%2e") && !seg.eq_ignore_ascii_case("%2e%2e"))
}

/// The largest body a signed call may send, by operation, enforced as it is read (before anything buffers
/// more): an image for DetectAnomalies (8 MB; up to twice that reaches the handler, which refuses it as an
/// invalid image and counts it), JSON lines for UpdateDatasetEntries (10 MiB, base64 in JSON), a few MiB for
/// every other JSON operation.
pub fn body_limit(method: &str, path: &str) -> usize {
    const MIB: usize = 1024 * 1024;
    if path.ends_with("/detect") {
        16 * MIB
    } else if method == "PATCH" && path.ends_with("/entries") {
        16 * MIB
    } else {
        2 * MIB
    }
}

/// The one authentication layer over the whole router.
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/metrics" && metrics_bearer_ok(&state, req.headers()) {
        return next.run(req).await;
    }
    if is_api_path(req.uri().path()) {
        // One path, one signature: `/./`, `/../` and `//` variants of a path would reach the same route under a
        // signature made for another string, so they are refused before anything else.
        if !is_normal_path(req.uri().path()) {
            return super::error::ApiError::Validation(format!("The path {:?} is not in normal form (no empty, . or .. segments).", req.uri().path()))
                .into_response();
        }
        require_sigv4(State(state), req, next).await
    } else {
        crate::web::require_session(state, req, next).await
    }
}

/// Whether the request carries the configured Prometheus token (`VIGIL_METRICS_TOKEN`, 16 characters or
/// more; a shorter one is ignored, so that a guessable token never opens `/metrics`).
fn metrics_bearer_ok(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    let Some(token) = state.config.metrics_token.as_deref().filter(|t| t.len() >= 16) else { return false };
    let Some(sent) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) else {
        return false;
    };
    subtle::ConstantTimeEq::ct_eq(token.as_bytes(), sent.trim().as_bytes()).into()
}

/// Verifies the request's SigV4 signature; the handler sees the caller as an `ApiCaller` extension.
pub async fn require_sigv4(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.extensions().get::<ApiCaller>().is_some() {
        return next.run(req).await;
    }
    match verify(&state, req).await {
        Ok((req, caller, op, _detect_slot)) => {
            let res = next.run(req).await;
            if let Some(op) = op.filter(|op| op.changes) {
                audit_api(&state, &caller, op.action, op.resource, false, res.status().as_u16());
            }
            res
        }
        Err(response) => response,
    }
}

fn audit_api(state: &AppState, caller: &ApiCaller, action: &str, resource: String, denied: bool, status: u16) {
    crate::auth::audit::record(
        &state.db,
        crate::auth::audit::Event {
            principal_kind: "key",
            principal: caller.access_key_id.clone(),
            via: "api",
            action: action.to_string(),
            resource,
            denied,
            status,
        },
    );
}

/// An LFV-shaped refusal.
pub fn refusal(status: StatusCode, code: &'static str, message: &str) -> Response {
    let mut r = (status, axum::Json(serde_json::json!({ "Message": message }))).into_response();
    r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static(code));
    r
}

fn sig_refusal(e: SigError) -> Response {
    if !matches!(e, SigError::Missing) {
        tracing::info!(error = %e, code = e.code(), "refused an API request");
    }
    refusal(StatusCode::FORBIDDEN, e.code(), &e.to_string())
}

/// Verifies the signature, then the caller's rights: the request with the caller in its extensions, the caller,
/// and the operation (if the route is listed in `access`).
async fn verify(
    state: &AppState,
    req: Request,
) -> Result<(Request, ApiCaller, Option<super::access::Operation>, Option<tokio::sync::OwnedSemaphorePermit>), Response> {
    let (mut parts, body) = req.into_parts();
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(sig_refusal(SigError::Missing));
    };
    let value = value
        .to_str()
        .map_err(|_| sig_refusal(SigError::Incomplete("The Authorization header is not ASCII.".into())))?
        .to_string();
    let auth = sigv4::parse_authorization(&value).map_err(sig_refusal)?;
    if auth.service != sigv4::SERVICE {
        return Err(sig_refusal(SigError::Invalid(format!(
            "Credential should be scoped to correct service: '{}'. ",
            sigv4::SERVICE
        ))));
    }
    let amz_date = match parts.headers.get("x-amz-date").and_then(|v| v.to_str().ok()) {
        Some(d) => d.to_string(),
        None => {
            return Err(sig_refusal(SigError::Incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
            )))
        }
    };
    let Some(when) = sigv4::parse_amz_date(&amz_date) else {
        return Err(sig_refusal(SigError::Incomplete(format!("X-Amz-Date {amz_date:?} is not in the form yyyyMMddTHHmmssZ."))));
    };
    if !amz_date.starts_with(auth.date) {
        return Err(sig_refusal(SigError::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
            auth.date,
            &amz_date[..8]
        ))));
    }
    if !state.config.api_regions.is_empty() && !state.config.api_regions.iter().any(|r| r.trim() == auth.region) {
        return Err(sig_refusal(SigError::Invalid(format!(
            "Credential should be scoped to a valid region, not '{}' (this server answers for {}).",
            auth.region.chars().take(64).collect::<String>(),
            state.config.api_regions.join(", ")
        ))));
    }
    if !auth.signed_headers.contains(&"host") {
        return Err(sig_refusal(SigError::Incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization.".into())));
    }
    // The date and the payload hash a request carries must be signed too, or they could be changed in flight.
    for h in ["x-amz-date", "x-amz-content-sha256"] {
        if parts.headers.contains_key(h) && !auth.signed_headers.contains(&h) {
            return Err(sig_refusal(SigError::Incomplete(format!("'{h}' must be a 'SignedHeader' in the AWS Authorization."))));
        }
    }
    let key = state.auth.signing_key(auth.access_key_id, auth.date, auth.region).await.map_err(|e| {
        tracing::error!(error = format!("{e:#}"), "looking up an access key");
        refusal(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerException", "Vigil had an internal error. Try your call again.")
    })?;
    let Some((signing_key, caller)) = key else {
        return Err(sig_refusal(SigError::UnknownKey));
    };
    sigv4::check_skew(when, chrono::Utc::now()).map_err(sig_refusal)?;

    // DetectAnomalies bodies (up to 8 MB each) are read only while there is room for them; beyond that the caller
    // is throttled at once, so a flood of large images cannot run the server out of memory. The slot is taken
    // only for a known key with a current date, so unsigned or unknown callers cannot fill the slots.
    let detect_slot = if parts.method == axum::http::Method::POST && parts.uri.path().ends_with("/detect") {
        match state.hosting.in_flight.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                return Err(super::error::ApiError::Throttling {
                    message: "Too many DetectAnomalies requests are in flight on this server. Retry shortly.".into(),
                    retry_after_s: 1,
                }
                .into_response())
            }
        }
    } else {
        None
    };
    let limit = body_limit(parts.method.as_str(), parts.uri.path());
    // A body must keep arriving (no pause over `BODY_IDLE_TIMEOUT`) and be complete within `BODY_READ_TIMEOUT`:
    // a slow or stalled sender cannot hold a slot (or a connection) for long.
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<usize>().ok());
    let bytes = match tokio::time::timeout(BODY_READ_TIMEOUT, read_body(body, limit, declared)).await {
        Ok(Ok(b)) => b,
        Ok(Err(BodyError::TooLarge)) => {
            return Err(refusal(StatusCode::PAYLOAD_TOO_LARGE, "ValidationException", &format!("The request body is larger than {} MiB.", limit >> 20)))
        }
        Ok(Err(BodyError::Stalled)) => {
            return Err(refusal(
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeoutException",
                &format!("The request body stopped arriving for {} s.", BODY_IDLE_TIMEOUT.as_secs()),
            ))
        }
        Ok(Err(BodyError::Broken)) => {
            return Err(refusal(StatusCode::BAD_REQUEST, "ValidationException", "The request body could not be read."))
        }
        Err(_) => {
            return Err(refusal(
                StatusCode::REQUEST_TIMEOUT,
                "RequestTimeoutException",
                &format!("The request body did not arrive within {} s.", BODY_READ_TIMEOUT.as_secs()),
            ))
        }
    };
    let payload_hash = if bytes.len() >= HASH_INLINE_BYTES {
        let b = bytes.clone();
        tokio::task::spawn_blocking(move || sigv4::sha256_hex(&b)).await.unwrap_or_default()
    } else {
        sigv4::sha256_hex(&bytes)
    };
    if let Some(claimed) = parts.headers.get("x-amz-content-sha256") {
        if claimed.as_bytes() != payload_hash.as_bytes() {
            return Err(sig_refusal(SigError::Invalid(
                "The x-amz-content-sha256 header does not match the SHA-256 of the request body (Vigil requires signed payloads).".into(),
            )));
        }
    }
    let uri = parts.extensions.get::<OriginalUri>().map(|o| o.0.clone()).unwrap_or_else(|| parts.uri.clone());
    let host = uri.authority().map(|a| a.as_str().to_string());
    let creq = sigv4::canonical_request(parts.method.as_str(), uri.path(), uri.query(), &parts.headers, host.as_deref(), &auth, &payload_hash)
        .map_err(sig_refusal)?;
    let sts = sigv4::string_to_sign(&amz_date, &auth.scope(), &creq);
    if !sigv4::signature_matches(&signing_key, &sts, auth.signature) {
        tracing::debug!(canonical_request = %creq, "signature mismatch");
        return Err(sig_refusal(SigError::Mismatch));
    }
    let (method, path) = (parts.method.as_str(), uri.path());
    let op = super::access::operation(method, path, &bytes, &state.config.region, &state.config.account_id);
    if let Err(denied) = super::access::authorize(&caller, op.as_ref(), method, path) {
        let (action, resource) = op.as_ref().map_or(("(unlisted)", path.to_string()), |o| (o.action, o.resource.clone()));
        audit_api(state, &caller, action, resource, true, denied.status().as_u16());
        return Err(denied);
    }
    if caller.user_id.is_some() && state.auth.should_record_use(&caller.access_key_id) {
        let db = state.db.clone();
        let id = caller.access_key_id.clone();
        tokio::spawn(async move {
            if let Ok(mut conn) = db.pool.acquire().await {
                let _ = crate::auth::keys::touch(&mut conn, &id).await;
            }
        });
    }
    parts.extensions.insert(caller.clone());
    Ok((Request::from_parts(parts, Body::from(bytes)), caller, op, detect_slot))
}
