//! Web plumbing the LFV API and the console share, below both: the request body cap, the console's session
//! check (with the cross-origin check on state-changing requests), and streaming a file as a response body.

use crate::auth::roles as access;
use crate::auth::users;
use crate::state::AppState;
use app::api::auth::SessionUser;
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 80 * 1024 * 1024;

/// Largest sign-in form accepted.
pub const MAX_SIGN_IN_BYTES: usize = 16 * 1024;

/// Headers every answer carries: no MIME sniffing, no framing by another site (clickjacking), and referrers
/// that stay on this site. A fuller Content-Security-Policy (scripts, styles) is left to the console's build,
/// which knows its WASM and inline hydration script.
pub async fn security_headers(req: Request, next: Next) -> Response {
    use axum::http::HeaderValue;
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static("frame-ancestors 'none'"));
    res
}

/// The session cookie's name.
pub const COOKIE: &str = "vigil_session";

/// Paths anyone may fetch: the sign-in page and form, and the static files the page needs.
fn is_open(path: &str) -> bool {
    matches!(path, "/signin" | "/auth/signin" | "/favicon.svg" | "/favicon.ico" | "/robots.txt") || path.starts_with("/pkg/")
}

/// A ZIP that `build` writes into the temporary file `path` on a blocking thread, answered as the attachment
/// `NAME.zip` (the console's exports and package downloads). The file is unlinked as soon as it is reopened:
/// the open handle keeps its bytes until the download ends or fails.
pub async fn zip_attachment(
    path: std::path::PathBuf,
    name: &str,
    build: impl FnOnce(std::fs::File) -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<Response> {
    let file = tokio::task::spawn_blocking(move || -> anyhow::Result<std::fs::File> {
        let result = std::fs::File::create(&path).map_err(anyhow::Error::from).and_then(build);
        let reopened = result.and_then(|()| Ok(std::fs::File::open(&path)?));
        let _ = std::fs::remove_file(&path);
        reopened
    })
    .await??;
    let len = file.metadata().map(|m| m.len()).unwrap_or_default();
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}.zip\"")),
        ],
        file_body(tokio::fs::File::from_std(file)),
    )
        .into_response())
}

pub fn json_status(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "message": message }))).into_response()
}

/// The host (and port) a URL names, for comparing an `Origin` or `Referer` with `Host`.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// True when a state-changing request may come from another site: an `Origin` (or, without one, a `Referer`)
/// naming another site than this server — the configured public URL (`VIGIL_PUBLIC_URL`, scheme and host) when
/// set, so a forged `Host` header proves nothing, else the request's own `Host` — or the browser saying it is
/// cross-site. Requests without either header come from programs, not from a page in a browser, and pass (they
/// still need a session).
pub fn is_cross_origin(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return true;
    }
    let source = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER));
    let Some(url) = source.and_then(|v| v.to_str().ok()) else { return false };
    if url == "null" {
        return true;
    }
    match public_url.map(str::trim).filter(|p| !p.is_empty()) {
        Some(public) => {
            let scheme = |u: &str| u.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            let same_host = url_host(url).zip(url_host(public)).is_some_and(|(a, b)| a.eq_ignore_ascii_case(b));
            !(same_host && scheme(url) == scheme(public))
        }
        None => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
            url_host(url).is_none_or(|h| !h.eq_ignore_ascii_case(host))
        }
    }
}

pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The session check: pages without a session redirect to `/signin?next=…`; server functions and the
/// media, export, import and batch download endpoints answer 401. State-changing requests from another origin get 403.
pub async fn require_session(state: AppState, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state && is_cross_origin(req.headers(), state.config.public_url.as_deref()) {
        tracing::info!(%path, "refused a cross-origin request");
        return json_status(StatusCode::FORBIDDEN, "Cross-site request refused.");
    }
    // Every console request but an archive import (streamed to disk, capped on its own) is capped before
    // anything buffers it: at once when it says how long it is, as it arrives otherwise.
    // The sign-in form (open to anyone) holds a name, a password and a path: 16 KiB is plenty.
    if !path.starts_with("/import/") {
        let cap = if path == "/auth/signin" { MAX_SIGN_IN_BYTES } else { MAX_BODY_BYTES };
        let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap as u64) {
            return json_status(StatusCode::PAYLOAD_TOO_LARGE, &format!("The request is larger than {} KiB.", cap >> 10));
        }
        req = req.map(|b| axum::body::Body::new(http_body_util::Limited::new(b, cap)));
    }
    if is_open(&path) {
        return next.run(req).await;
    }
    let user = match session_token(req.headers()) {
        Some(token) => match state.db.pool.acquire().await {
            Ok(mut conn) => users::session_user(&mut conn, &token).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading a session");
                None
            }),
            Err(e) => {
                tracing::error!(error = %e, "no database connection for the session check");
                return json_status(StatusCode::SERVICE_UNAVAILABLE, "The database is unavailable.");
            }
        },
        None => None,
    };
    match user {
        Some(u) => {
            let user = SessionUser { id: u.id, name: u.name, is_admin: u.is_admin, role: u.role };
            let call = access::classify(req.method(), &path);
            if call.kind == access::Kind::Read || path == "/auth/signout" {
                req.extensions_mut().insert(user);
                return next.run(req).await;
            }
            // A change (or an attempt): note what it acts on for the audit log — a small form-encoded body is read
            // for its project or name; the body itself is never written anywhere —, check the role, run it, and
            // record how it ended.
            let mut resource = path.strip_prefix("/import/").and_then(|r| r.split('/').next()).unwrap_or("").to_string();
            let form = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
            let small = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()).is_some_and(|n| n <= 64 * 1024);
            if form && small {
                let (parts, body) = req.into_parts();
                let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
                    return json_status(StatusCode::BAD_REQUEST, "The request body could not be read.");
                };
                resource = access::resource_of(&call.action, &bytes);
                req = Request::from_parts(parts, axum::body::Body::from(bytes));
            }
            if !access::allows(user.role, call.kind) {
                tracing::info!(user = %user.name, role = user.role.as_str(), action = %call.action, "refused by role");
                audit_console(&state, &user, &call.action, resource, true, 403);
                return access::refusal(&user, &call);
            }
            req.extensions_mut().insert(user.clone());
            let res = next.run(req).await;
            audit_console(&state, &user, &call.action, resource, false, res.status().as_u16());
            res
        }
        None => {
            let is_page = matches!(*req.method(), Method::GET | Method::HEAD)
                && !(path == "/metrics" || path.starts_with("/api/") || path.starts_with("/media/") || path.starts_with("/export/") || path.starts_with("/import/") || path.starts_with("/batches/") || path.starts_with("/packages/") || path.starts_with("/audit/"));
            if is_page {
                let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let location = format!("/signin?next={}", urlencode(target));
                (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
            } else {
                json_status(StatusCode::UNAUTHORIZED, "Sign in first.")
            }
        }
    }
}

fn audit_console(state: &AppState, user: &SessionUser, action: &str, resource: String, denied: bool, status: u16) {
    crate::auth::audit::record(
        &state.db,
        crate::auth::audit::Event {
            principal_kind: "user",
            principal: user.name.clone(),
            via: "console",
            action: action.to_string(),
            resource,
            denied,
            status,
        },
    );
}

pub fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A file streamed as a response body in 256 KiB chunks (exports, batch results).
pub fn file_body(file: tokio::fs::File) -> axum::body::Body {
    let stream = futures::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    axum::body::Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
            }
            m
        };
        assert!(!is_cross_origin(&h(&[("host", "vigil:3000"), ("origin", "http://vigil:3000")]), None));
        assert!(!is_cross_origin(&h(&[("host", "vigil:3000")]), None), "no Origin: not a browser page");
        assert!(is_cross_origin(&h(&[("host", "vigil:3000"), ("origin", "http://evil.example")]), None));
        assert!(is_cross_origin(&h(&[("host", "vigil:3000"), ("origin", "http://vigil:3001")]), None));
        assert!(is_cross_origin(&h(&[("host", "vigil:3000"), ("origin", "null")]), None));
        assert!(is_cross_origin(&h(&[("host", "vigil:3000"), ("referer", "http://evil.example/x")]), None));
        assert!(is_cross_origin(&h(&[("host", "vigil:3000"), ("sec-fetch-site", "cross-site")]), None));
        // With a public URL, the Host header proves nothing: the origin must be the public one.
        let public = Some("https://vigil.plant.example");
        assert!(!is_cross_origin(&h(&[("host", "10.0.0.5:3000"), ("origin", "https://vigil.plant.example")]), public));
        assert!(is_cross_origin(&h(&[("host", "evil.example"), ("origin", "https://evil.example")]), public));
        assert!(is_cross_origin(&h(&[("host", "vigil.plant.example"), ("origin", "http://vigil.plant.example")]), public));
    }
}
