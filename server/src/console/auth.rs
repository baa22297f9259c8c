//! The console's sign-in: the session check in front of every page, server function, `/media`, `/export` and
//! `/import`; the `Origin` check on every state-changing request; `POST /auth/signin` and `/auth/signout`
//! (plain HTML forms, so signing in needs no WASM); and the Admin page's backend (users, access keys).

use crate::auth::{keys, users};
use crate::state::AppState;
use app::api::auth::{AdminData, AuthBackend, KeyView, NewKey, SessionUser, UserView};
use app::api::BackendError;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The session cookie's name.
pub const COOKIE: &str = "vigil_session";

/// Paths anyone may fetch: the sign-in page and form, and the static files the page needs.
fn is_open(path: &str) -> bool {
    matches!(path, "/signin" | "/auth/signin" | "/favicon.svg" | "/favicon.ico" | "/robots.txt") || path.starts_with("/pkg/")
}

fn json_status(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "message": message }))).into_response()
}

/// The host (and port) a URL names, for comparing an `Origin` or `Referer` with `Host`.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// True when a state-changing request may come from another site: an `Origin` (or, without one, a `Referer`)
/// naming another host than `Host`, or the browser saying it is cross-site. Requests without either header
/// come from programs, not from a page in a browser, and pass (they still need a session).
pub fn is_cross_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return true;
    }
    let source = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER));
    match source.and_then(|v| v.to_str().ok()) {
        None => false,
        Some("null") => true,
        Some(url) => url_host(url).is_none_or(|h| !h.eq_ignore_ascii_case(host)),
    }
}

fn session_token(headers: &HeaderMap) -> Option<String> {
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
    if changes_state && is_cross_origin(req.headers()) {
        tracing::info!(%path, "refused a cross-origin request");
        return json_status(StatusCode::FORBIDDEN, "Cross-site request refused.");
    }
    // Every console request but an archive import (streamed to disk, capped on its own) is capped before
    // anything buffers it: at once when it says how long it is, as it arrives otherwise.
    if !path.starts_with("/import/") {
        let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > crate::MAX_BODY_BYTES as u64) {
            return json_status(StatusCode::PAYLOAD_TOO_LARGE, &format!("The request is larger than {} MiB.", crate::MAX_BODY_BYTES >> 20));
        }
        req = req.map(|b| axum::body::Body::new(http_body_util::Limited::new(b, crate::MAX_BODY_BYTES)));
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
            req.extensions_mut().insert(SessionUser { id: u.id, name: u.name, is_admin: u.is_admin });
            next.run(req).await
        }
        None => {
            let is_page = matches!(*req.method(), Method::GET | Method::HEAD)
                && !(path == "/metrics" || path.starts_with("/api/") || path.starts_with("/media/") || path.starts_with("/export/") || path.starts_with("/import/") || path.starts_with("/batches/"));
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

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A `next` target that stays on this site.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") && !next.starts_with("/signin") {
        next
    } else {
        "/"
    }
}

/// Whether cookies get `Secure`: when configured, or when a TLS-terminating proxy says the request was HTTPS.
fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.secure_cookies || headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https")
}

fn cookie(state: &AppState, headers: &HeaderMap, value: &str, max_age_s: i64) -> HeaderValue {
    let secure = if secure(state, headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// `POST /auth/signin` (form: `name`, `password`, `next`): opens a session and redirects to `next`, or back to
/// the sign-in page with `error=1`.
pub async fn sign_in(State(state): State<AppState>, headers: HeaderMap, axum::Form(form): axum::Form<SignInForm>) -> Response {
    let next = safe_next(&form.next).to_string();
    let failed = || {
        let location = format!("/signin?error=1&next={}", urlencode(&next));
        (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
    };
    let found = match state.db.pool.acquire().await {
        Ok(mut conn) => users::find_with_hash(&mut conn, form.name.trim()).await,
        Err(e) => Err(e),
    };
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "sign-in");
            return json_status(StatusCode::SERVICE_UNAVAILABLE, "The database is unavailable.");
        }
    };
    let password = form.password;
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, users::dummy_hash().to_string()),
    };
    let ok = tokio::task::spawn_blocking(move || users::verify_password(&password, &hash)).await.unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(name = %form.name.chars().take(64).collect::<String>(), "failed sign-in");
        return failed();
    };
    let token = match state.db.pool.acquire().await {
        Ok(mut conn) => users::create_session(&mut conn, &user.id).await,
        Err(e) => Err(e),
    };
    match token {
        Ok(token) => {
            tracing::info!(user = %user.name, "signed in");
            let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, next)]).into_response();
            r.headers_mut().insert(header::SET_COOKIE, cookie(&state, &headers, &token, users::SESSION_TTL_MS / 1000));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "opening a session");
            json_status(StatusCode::SERVICE_UNAVAILABLE, "The database is unavailable.")
        }
    }
}

/// `POST /auth/signout`: ends the session and goes to the sign-in page.
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = session_token(&headers) {
        if let Ok(mut conn) = state.db.pool.acquire().await {
            let _ = users::delete_session(&mut conn, &token).await;
        }
    }
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/signin")]).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie(&state, &headers, "", 0));
    r
}

/// The Admin page's backend.
pub struct AuthConsole {
    pub state: AppState,
}

fn internal(e: impl std::fmt::Display) -> BackendError {
    tracing::error!(error = %e, "console auth backend error");
    BackendError::new(500, "Vigil had an internal error. Try again.")
}

impl From<users::UserError> for BackendError {
    fn from(e: users::UserError) -> Self {
        match e {
            users::UserError::Invalid(_) => BackendError::new(400, e.to_string()),
            users::UserError::Exists(_) => BackendError::new(409, e.to_string()),
            users::UserError::NotFound(_) => BackendError::new(404, e.to_string()),
            users::UserError::Refused(_) => BackendError::new(409, e.to_string()),
            users::UserError::Db(e) => internal(e),
        }
    }
}

fn admin_only(me: &SessionUser) -> Result<(), BackendError> {
    if me.is_admin {
        Ok(())
    } else {
        Err(BackendError::new(403, "Only an administrator can do that."))
    }
}

#[async_trait::async_trait]
impl AuthBackend for AuthConsole {
    async fn admin_view(&self, me: &SessionUser) -> Result<AdminData, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let users = users::list(&mut conn)
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|u| me.is_admin || u.id == me.id)
            .map(|u| UserView { name: u.name, is_admin: u.is_admin, created_at_ms: u.created_at })
            .collect();
        let keys = keys::list(&mut conn, if me.is_admin { None } else { Some(&me.id) })
            .await
            .map_err(internal)?
            .into_iter()
            .map(|k| KeyView { id: k.id, user: k.user_name, description: k.description, created_at_ms: k.created_at, last_used_at_ms: k.last_used_at })
            .collect();
        let bootstrap_key = if me.is_admin { self.state.auth.bootstrap_key_id().map(str::to_string) } else { None };
        Ok(AdminData { me: me.clone(), users, keys, bootstrap_key })
    }

    async fn create_user(&self, me: &SessionUser, name: &str, password: &str, is_admin: bool) -> Result<(), BackendError> {
        admin_only(me)?;
        users::validate_name(name)?;
        users::validate_password(password)?;
        let pw = password.to_string();
        let hash = tokio::task::spawn_blocking(move || users::hash_password(&pw)).await.map_err(internal)?.map_err(internal)?;
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        users::create(&mut conn, name, &hash, is_admin).await?;
        tracing::info!(by = %me.name, user = %name, is_admin, "added a console user");
        Ok(())
    }

    async fn delete_user(&self, me: &SessionUser, name: &str) -> Result<(), BackendError> {
        admin_only(me)?;
        if name == me.name {
            return Err(BackendError::new(409, "You cannot remove yourself; ask another administrator."));
        }
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        let revoked = users::delete(&mut tx, name).await?;
        tx.commit().await.map_err(internal)?;
        for k in revoked {
            self.state.auth.forget(&k);
        }
        tracing::info!(by = %me.name, user = %name, "removed a console user");
        Ok(())
    }

    async fn change_password(&self, me: &SessionUser, current: &str, new: &str) -> Result<(), BackendError> {
        users::validate_password(new)?;
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let (user, hash) = users::find_with_hash(&mut conn, &me.name).await.map_err(internal)?.ok_or_else(|| BackendError::new(401, "Sign in first."))?;
        let (cur, new) = (current.to_string(), new.to_string());
        let new_hash = tokio::task::spawn_blocking(move || {
            if users::verify_password(&cur, &hash) {
                users::hash_password(&new).map(Some)
            } else {
                Ok(None)
            }
        })
        .await
        .map_err(internal)?
        .map_err(internal)?
        .ok_or_else(|| BackendError::new(400, "The current password is wrong."))?;
        users::set_password_hash(&mut conn, &user.id, &new_hash).await.map_err(internal)?;
        Ok(())
    }

    async fn create_key(&self, me: &SessionUser, description: &str) -> Result<NewKey, BackendError> {
        if description.chars().count() > 200 {
            return Err(BackendError::new(400, "A description has at most 200 characters."));
        }
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        if keys::count_for_user(&mut tx, &me.id).await.map_err(internal)? >= keys::MAX_KEYS_PER_USER {
            return Err(BackendError::new(409, format!("You hold {} access keys already; revoke one first.", keys::MAX_KEYS_PER_USER)));
        }
        let (id, secret) = keys::create(&mut tx, self.state.auth.sealer(), &me.id, description).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        self.state.auth.forget(&id);
        tracing::info!(user = %me.name, key = %id, "created an access key");
        Ok(NewKey { id, secret })
    }

    async fn revoke_key(&self, me: &SessionUser, id: &str) -> Result<(), BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let owner = if me.is_admin { None } else { Some(me.id.as_str()) };
        if !keys::revoke(&mut conn, id, owner).await.map_err(internal)? {
            return Err(BackendError::new(404, format!("No access key {id}.")));
        }
        self.state.auth.forget(id);
        tracing::info!(user = %me.name, key = %id, "revoked an access key");
        Ok(())
    }
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
        assert!(!is_cross_origin(&h(&[("host", "vigil:3000"), ("origin", "http://vigil:3000")])));
        assert!(!is_cross_origin(&h(&[("host", "vigil:3000")])), "no Origin: not a browser page");
        assert!(is_cross_origin(&h(&[("host", "vigil:3000"), ("origin", "http://evil.example")])));
        assert!(is_cross_origin(&h(&[("host", "vigil:3000"), ("origin", "http://vigil:3001")])));
        assert!(is_cross_origin(&h(&[("host", "vigil:3000"), ("origin", "null")])));
        assert!(is_cross_origin(&h(&[("host", "vigil:3000"), ("referer", "http://evil.example/x")])));
        assert!(is_cross_origin(&h(&[("host", "vigil:3000"), ("sec-fetch-site", "cross-site")])));
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/projects/a?x=1"), "/projects/a?x=1");
    }
}
