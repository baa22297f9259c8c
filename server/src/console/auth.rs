//! The console's sign-in: `POST /auth/signin` and `/auth/signout` (plain HTML forms, so signing in needs no
//! WASM), and the Admin page's backend (users, access keys). The session check in front of every page is
//! [`crate::web::require_session`].

use crate::auth::policy::{Policy, Preset};
use crate::auth::{audit, keys, users};
use crate::state::AppState;
use crate::web::{json_status, session_token, urlencode, COOKIE};
use app::api::auth::{AdminData, AuditFilter, AuditPage, AuthBackend, KeyAccess, KeyView, NewKey, Role, SessionUser, UserView};
use app::api::BackendError;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A `next` target that stays on this site: a path, with no control character (browsers drop a TAB or a
/// newline, so `/\t/evil.example` would become `//evil.example`), no backslash (read as `/`) and no second
/// leading slash.
fn safe_next(next: &str) -> &str {
    let clean = !next.chars().any(|c| c.is_control() || c == '\\');
    if clean && next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/signin") {
        next
    } else {
        "/"
    }
}

/// Password checks (Argon2) running at once, per process.
pub const MAX_PASSWORD_CHECKS: usize = 4;

fn password_checks() -> &'static tokio::sync::Semaphore {
    static CHECKS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    CHECKS.get_or_init(|| tokio::sync::Semaphore::new(MAX_PASSWORD_CHECKS))
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
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    axum::Form(form): axum::Form<SignInForm>,
) -> Response {
    let next = safe_next(&form.next).to_string();
    // The peer's address (a proxy's, behind one: then the per-user count still holds).
    let addr = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let name: String = form.name.trim().chars().take(64).collect();
    let failed = || {
        let location = format!("/signin?error=1&next={}", urlencode(&next));
        (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
    };
    let wait = match state.auth.sign_ins().wait(&name, &addr).await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "sign-in");
            return json_status(StatusCode::SERVICE_UNAVAILABLE, "The database is unavailable.");
        }
    };
    if !wait.is_zero() {
        tracing::info!(name = %name, %addr, wait_s = wait.as_secs_f32(), "sign-in refused: too many failures");
        let location = format!("/signin?error=wait&retry={}&next={}", wait.as_secs().max(1), urlencode(&next));
        return (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    }
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
    // Argon2 is slow on purpose: at most a few run at once, so a flood of sign-ins queues here instead of
    // filling the blocking pool (512 threads) and starving imports, training and detection of it.
    let Ok(_permit) = password_checks().acquire().await else { return failed() };
    let ok = tokio::task::spawn_blocking(move || users::verify_password(&password, &hash)).await.unwrap_or(false);
    let Some(user) = user.filter(|_| ok) else {
        if let Err(e) = state.auth.sign_ins().failed(&name, &addr).await {
            tracing::error!(error = %e, "could not count a failed sign-in");
        }
        tracing::info!(name = %name, %addr, "failed sign-in");
        return failed();
    };
    if let Err(e) = state.auth.sign_ins().succeeded(&name).await {
        tracing::warn!(error = %e, "could not clear a user's failed sign-ins");
    }
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
    BackendError::internal("Vigil had an internal error. Try again.")
}

impl From<users::UserError> for BackendError {
    fn from(e: users::UserError) -> Self {
        match e {
            users::UserError::Invalid(_) => BackendError::invalid(e.to_string()),
            users::UserError::Exists(_) => BackendError::conflict(e.to_string()),
            users::UserError::NotFound(_) => BackendError::not_found(e.to_string()),
            users::UserError::Refused(_) => BackendError::conflict(e.to_string()),
            users::UserError::Db(e) => internal(e),
        }
    }
}

fn admin_only(me: &SessionUser) -> Result<(), BackendError> {
    if me.is_admin {
        Ok(())
    } else {
        Err(BackendError::forbidden("Only an administrator can do that."))
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
            .map(|u| UserView { name: u.name, is_admin: u.is_admin, role: u.role, created_at_ms: u.created_at })
            .collect();
        let keys = keys::list(&mut conn, if me.is_admin { None } else { Some(&me.id) })
            .await
            .map_err(internal)?
            .into_iter()
            .map(|k| KeyView {
                id: k.id,
                user: k.user_name,
                description: k.description,
                created_at_ms: k.created_at,
                last_used_at_ms: k.last_used_at,
                access: access_summary(k.policy.as_deref()),
                policy: k.policy.unwrap_or_else(|| Preset::FullAccess.document()),
            })
            .collect();
        let bootstrap_key = if me.is_admin { self.state.auth.bootstrap_key_id().map(str::to_string) } else { None };
        Ok(AdminData { me: me.clone(), users, keys, bootstrap_key })
    }

    async fn create_user(&self, me: &SessionUser, name: &str, password: &str, role: Role) -> Result<(), BackendError> {
        admin_only(me)?;
        users::validate_name(name)?;
        users::validate_password(name, password)?;
        let pw = password.to_string();
        let hash = tokio::task::spawn_blocking(move || users::hash_password(&pw)).await.map_err(internal)?.map_err(internal)?;
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        users::create(&mut conn, name, &hash, role).await?;
        tracing::info!(by = %me.name, user = %name, role = role.as_str(), "added a console user");
        Ok(())
    }

    async fn set_user_role(&self, me: &SessionUser, name: &str, role: Role) -> Result<(), BackendError> {
        admin_only(me)?;
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        let user = users::set_role(&mut tx, name, role).await?;
        tx.commit().await.map_err(internal)?;
        // The user's keys carry the role they were looked up with: read them again.
        self.state.auth.forget_user(&user.id);
        keys_changed(&self.state).await;
        tracing::info!(by = %me.name, user = %name, role = role.as_str(), "changed a console user's role");
        Ok(())
    }

    async fn delete_user(&self, me: &SessionUser, name: &str) -> Result<(), BackendError> {
        admin_only(me)?;
        if name == me.name {
            return Err(BackendError::conflict("You cannot remove yourself; ask another administrator."));
        }
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        let revoked = users::delete(&mut tx, name).await?;
        tx.commit().await.map_err(internal)?;
        for k in revoked {
            self.state.auth.forget(&k);
        }
        keys_changed(&self.state).await;
        tracing::info!(by = %me.name, user = %name, "removed a console user");
        Ok(())
    }

    async fn change_password(&self, me: &SessionUser, current: &str, new: &str) -> Result<(), BackendError> {
        users::validate_password(&me.name, new)?;
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let (user, hash) = users::find_with_hash(&mut conn, &me.name).await.map_err(internal)?.ok_or_else(|| BackendError::unauthorized("Sign in first."))?;
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
        .ok_or_else(|| BackendError::invalid("The current password is wrong."))?;
        users::set_password_hash(&mut conn, &user.id, &new_hash).await.map_err(internal)?;
        // Whoever else was signed in as this user (with the old password) is signed out; this browser stays.
        let ended = users::end_other_sessions(&mut conn, &user.id, current_session().as_deref()).await.map_err(internal)?;
        tracing::info!(user = %user.name, other_sessions_ended = ended, "changed a password");
        Ok(())
    }

    async fn create_key(&self, me: &SessionUser, description: &str, access: &KeyAccess) -> Result<NewKey, BackendError> {
        if description.chars().count() > 200 {
            return Err(BackendError::invalid("A description has at most 200 characters."));
        }
        let policy = key_policy(me, access)?;
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        if keys::count_for_user(&mut tx, &me.id).await.map_err(internal)? >= keys::MAX_KEYS_PER_USER {
            return Err(BackendError::conflict(format!("You hold {} access keys already; revoke one first.", keys::MAX_KEYS_PER_USER)));
        }
        let (id, secret) = keys::create(&mut tx, self.state.auth.sealer(), &me.id, description, Some(&policy)).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        self.state.auth.forget(&id);
        keys_changed(&self.state).await;
        tracing::info!(user = %me.name, key = %id, access = %access_summary(Some(&policy)), "created an access key");
        Ok(NewKey { id, secret })
    }

    async fn revoke_key(&self, me: &SessionUser, id: &str) -> Result<(), BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let owner = if me.is_admin { None } else { Some(me.id.as_str()) };
        if !keys::revoke(&mut conn, id, owner).await.map_err(internal)? {
            return Err(BackendError::not_found(format!("No access key {id}.")));
        }
        self.state.auth.forget(id);
        keys_changed(&self.state).await;
        tracing::info!(user = %me.name, key = %id, "revoked an access key");
        Ok(())
    }

    async fn end_sessions(&self, me: &SessionUser, name: &str) -> Result<u64, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        if name == me.name {
            let n = users::end_other_sessions(&mut conn, &me.id, current_session().as_deref()).await.map_err(internal)?;
            tracing::info!(user = %me.name, ended = n, "signed out everywhere else");
            return Ok(n);
        }
        admin_only(me)?;
        let (user, _) = users::find_with_hash(&mut conn, name).await.map_err(internal)?.ok_or_else(|| BackendError::not_found(format!("No user named {name}.")))?;
        let n = users::end_sessions(&mut conn, &user.id).await.map_err(internal)?;
        tracing::info!(by = %me.name, user = %name, ended = n, "ended a user's sessions");
        Ok(n)
    }

    async fn audit_log(&self, me: &SessionUser, filter: &AuditFilter) -> Result<AuditPage, BackendError> {
        admin_only(me)?;
        const PAGE: i64 = 100;
        let f = audit_filter(filter, PAGE)?;
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let mut rows = audit::list(&mut conn, &f).await.map_err(internal)?;
        // A full page ends at the start of its last millisecond: events of that millisecond beyond the page would
        // fall between pages, so they all go to the next one (unless the whole page is one millisecond).
        let mut next_before_ms = None;
        if rows.len() as i64 == PAGE {
            let last = rows.last().map_or(0, |r| r.at_ms);
            if rows.iter().any(|r| r.at_ms != last) {
                rows.retain(|r| r.at_ms != last);
                next_before_ms = Some(last + 1);
            } else {
                next_before_ms = Some(last);
            }
        }
        Ok(AuditPage { events: rows, next_before_ms })
    }
}

/// The cookie token of the session making this server function call.
fn current_session() -> Option<String> {
    leptos::prelude::use_context::<axum::http::request::Parts>().and_then(|p| session_token(&p.headers))
}

fn audit_filter(filter: &AuditFilter, limit: i64) -> Result<audit::Filter, BackendError> {
    let text = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(|s| s.chars().take(200).collect::<String>());
    let outcome = text(&filter.outcome);
    if outcome.as_deref().is_some_and(|o| !matches!(o, "allowed" | "failed" | "denied")) {
        return Err(BackendError::invalid("The outcome is allowed, failed or denied."));
    }
    Ok(audit::Filter { principal: text(&filter.principal), action: text(&filter.action), outcome, before: filter.before_ms, limit })
}

/// Most events one export holds (the newest that match).
const MAX_EXPORT_EVENTS: i64 = 100_000;

/// `GET /audit/export.jsonl?principal=&action=&outcome=` (administrators): the matching events, newest first,
/// as JSON lines.
pub async fn export_audit(
    State(state): State<AppState>,
    axum::Extension(me): axum::Extension<SessionUser>,
    axum::extract::Query(filter): axum::extract::Query<AuditFilter>,
) -> Response {
    if admin_only(&me).is_err() {
        return json_status(StatusCode::FORBIDDEN, "Only an administrator can export the audit log.");
    }
    let f = match audit_filter(&AuditFilter { before_ms: None, ..filter }, MAX_EXPORT_EVENTS) {
        Ok(f) => f,
        Err(e) => return json_status(StatusCode::BAD_REQUEST, &e.message),
    };
    let rows = match state.db.pool.acquire().await {
        Ok(mut conn) => audit::list(&mut conn, &f).await,
        Err(e) => Err(e),
    };
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "exporting the audit log");
            return json_status(StatusCode::INTERNAL_SERVER_ERROR, "The audit log could not be read.");
        }
    };
    let mut body = String::new();
    for r in rows {
        body.push_str(&serde_json::to_string(&r).unwrap_or_default());
        body.push('\n');
    }
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"vigil-audit.jsonl\""),
        ],
        body,
    )
        .into_response()
}

/// A key's access in words, for the Admin page.
pub fn access_summary(policy: Option<&str>) -> String {
    match policy.map(Preset::recognise) {
        None | Some(Some(Preset::FullAccess)) => "Full access".into(),
        Some(Some(Preset::ReadOnly)) => "Read only".into(),
        Some(Some(Preset::DetectOnly(projects))) => format!("Detect only: {}", projects.join(", ")),
        Some(None) => "Custom policy".into(),
    }
}

/// The policy document a new key gets, within its owner's role: a viewer's keys can only read.
fn key_policy(me: &SessionUser, access: &KeyAccess) -> Result<String, BackendError> {
    let preset = match access.preset.trim() {
        "" | "full" => Preset::FullAccess,
        "read" => Preset::ReadOnly,
        "detect" => {
            let mut projects: Vec<String> = access.projects.iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect();
            projects.sort();
            projects.dedup();
            if projects.is_empty() || projects.len() > 50 {
                return Err(BackendError::invalid("Choose 1 to 50 projects whose models the key may call DetectAnomalies on."));
            }
            for p in &projects {
                app::names::validate_project_name(p).map_err(BackendError::invalid)?;
            }
            Preset::DetectOnly(projects)
        }
        "custom" => {
            Policy::parse(&access.policy).map_err(|e| BackendError::invalid(format!("The policy is not valid: {e}")))?;
            return Ok(access.policy.trim().to_string());
        }
        other => return Err(BackendError::invalid(format!("{other:?} is not a choice: full, read, detect or custom."))),
    };
    if !me.role.may_change() && preset != Preset::ReadOnly {
        return Err(BackendError::forbidden(format!(
            "Your role ({}) allows reads only, so your keys can only be read-only: choose Read only.",
            me.role.as_str()
        )));
    }
    Ok(preset.document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_targets_stay_on_the_site() {
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/projects/a?x=1"), "/projects/a?x=1");
        for off_site in ["/\t/evil.example", "/\n/evil.example", "/\\evil.example", "/%09/x\u{7f}", "\\\\evil.example"] {
            assert_eq!(safe_next(off_site), "/", "{off_site:?}");
        }
    }
}

/// Tells the other processes on the database to read access keys again (a key was made, revoked, or its
/// owner's role changed): they forget their cached keys within about a second.
async fn keys_changed(state: &AppState) {
    let bumped = match state.db.pool.acquire().await {
        Ok(mut conn) => crate::cluster::bump(&mut conn, "keys").await,
        Err(e) => Err(e),
    };
    if let Err(e) = bumped {
        tracing::warn!(error = %e, "could not tell the other processes that access keys changed (they notice within 10 s)");
    }
}
