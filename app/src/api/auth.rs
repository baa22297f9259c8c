//! Sign-in state and the Admin page's server functions (users, API access keys), with the `AuthBackend`
//! trait through which they reach the server crate.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// A console user's role: what they may do in the console, and the most their API keys may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Users, keys, settings and the audit log, and everything an editor may do.
    Administrator,
    /// Everything on projects: datasets, labels, models, hosting, trials, batches, packaging.
    #[default]
    Editor,
    /// Reads only: projects, datasets, models, metrics, trials, the dashboard. No changes, no detections.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Administrator, Role::Editor, Role::Viewer];

    /// The stored and wire form: `administrator`, `editor`, `viewer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// What the role may do, in a few words for the Admin page.
    pub fn summary(self) -> &'static str {
        match self {
            Role::Administrator => "users, keys, audit log and everything on projects",
            Role::Editor => "everything on projects",
            Role::Viewer => "reads only: no changes, no detections",
        }
    }

    /// True when the role may change projects (an editor or an administrator).
    pub fn may_change(self) -> bool {
        self != Role::Viewer
    }
}

/// The signed-in console user. The server's session check puts it in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub id: String,
    pub name: String,
    /// `role == Role::Administrator`.
    pub is_admin: bool,
    pub role: Role,
}

/// A console user as the Admin page lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub name: String,
    pub is_admin: bool,
    pub role: Role,
    pub created_at_ms: i64,
}

/// An API access key as listed (never with its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub id: String,
    pub user: String,
    pub description: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    /// What the key may do, in words: "Full access", "Read only", "Detect only: cookies, boards" or
    /// "Custom policy". Always within its owner's role.
    pub access: String,
    /// The key's policy document (IAM JSON).
    pub policy: String,
}

/// How a new key's rights are chosen: `preset` is `full`, `read`, `detect` (DetectAnomalies on `projects`
/// only) or `custom` (`policy`, an IAM-shaped JSON document).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyAccess {
    pub preset: String,
    pub projects: Vec<String>,
    pub policy: String,
}

/// One recorded change or refusal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    pub at_ms: i64,
    /// `user` or `key`.
    pub principal_kind: String,
    /// The user's name or the key's id.
    pub principal: String,
    /// `api` or `console`.
    pub via: String,
    /// `lookoutvision:StopModel`, `vigil:CreateTrial`, `console:create_project`, …
    pub action: String,
    /// The resource's ARN, or what the console call named (a project), or empty.
    pub resource: String,
    /// `allowed` (and done: 2xx), `failed` (allowed, but answered with an error) or `denied`.
    pub outcome: String,
    pub status: i32,
}

/// Filters of the audit log (all optional; `before_ms` pages back in time).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditFilter {
    pub principal: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub before_ms: Option<i64>,
}

/// A page of the audit log, newest first; `next_before_ms` asks for the page after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub events: Vec<AuditView>,
    pub next_before_ms: Option<i64>,
}

/// A key just created: the only time its secret is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKey {
    pub id: String,
    pub secret: String,
}

/// What the Admin page shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminData {
    pub me: SessionUser,
    /// Every user (administrators), or only oneself.
    pub users: Vec<UserView>,
    /// Every key (administrators), or one's own.
    pub keys: Vec<KeyView>,
    /// The access key id configured with VIGIL_ACCESS_KEY_ID, if any.
    pub bootstrap_key: Option<String>,
}

#[cfg(feature = "ssr")]
pub use backend::{AuthBackend, SharedAuthBackend};

#[cfg(feature = "ssr")]
mod backend {
    use super::*;
    use crate::api::BackendError;
    use std::sync::Arc;

    /// What the Admin page's server functions need from the server crate; `me` is the signed-in user.
    #[async_trait::async_trait]
    pub trait AuthBackend: Send + Sync + 'static {
        async fn admin_view(&self, me: &SessionUser) -> Result<AdminData, BackendError>;
        async fn create_user(&self, me: &SessionUser, name: &str, password: &str, role: Role) -> Result<(), BackendError>;
        async fn set_user_role(&self, me: &SessionUser, name: &str, role: Role) -> Result<(), BackendError>;
        async fn delete_user(&self, me: &SessionUser, name: &str) -> Result<(), BackendError>;
        async fn change_password(&self, me: &SessionUser, current: &str, new: &str) -> Result<(), BackendError>;
        async fn create_key(&self, me: &SessionUser, description: &str, access: &KeyAccess) -> Result<NewKey, BackendError>;
        async fn revoke_key(&self, me: &SessionUser, id: &str) -> Result<(), BackendError>;
        /// Ends a user's sessions: one's own other sessions ("sign out everywhere else"), or an administrator
        /// ends another user's; returns how many ended.
        async fn end_sessions(&self, me: &SessionUser, name: &str) -> Result<u64, BackendError>;
        /// The audit log (administrators only).
        async fn audit_log(&self, me: &SessionUser, filter: &AuditFilter) -> Result<AuditPage, BackendError>;
    }

    pub type SharedAuthBackend = Arc<dyn AuthBackend>;

    pub(super) fn auth_backend() -> Result<SharedAuthBackend, ServerFnError> {
        use_context::<SharedAuthBackend>().ok_or_else(|| ServerFnError::ServerError("The server is not configured.".into()))
    }

    /// The user of this request's session, which the server checked before the request got here.
    pub fn session_user() -> Option<SessionUser> {
        use_context::<http::request::Parts>().and_then(|p| p.extensions.get::<SessionUser>().cloned())
    }

    pub(super) fn me() -> Result<SessionUser, ServerFnError> {
        session_user().ok_or_else(|| BackendError::unauthorized("Sign in first.").into())
    }
}

/// The signed-in user, if any.
#[server]
pub async fn current_user() -> Result<Option<SessionUser>, ServerFnError> {
    Ok(backend::session_user())
}

#[server]
pub async fn admin_view() -> Result<AdminData, ServerFnError> {
    Ok(backend::auth_backend()?.admin_view(&backend::me()?).await?)
}

#[cfg(feature = "ssr")]
fn role(s: &str) -> Result<Role, ServerFnError> {
    Role::parse(s).ok_or_else(|| ServerFnError::ServerError(format!("{s:?} is not a role: administrator, editor or viewer.")))
}

/// Adds a console user with a role (`administrator`, `editor` or `viewer`).
#[server]
pub async fn create_user(name: String, password: String, role: String) -> Result<(), ServerFnError> {
    let role = self::role(&role)?;
    Ok(backend::auth_backend()?.create_user(&backend::me()?, name.trim(), &password, role).await?)
}

/// Changes a user's role (administrators only; the last administrator keeps theirs).
#[server]
pub async fn set_user_role(name: String, role: String) -> Result<(), ServerFnError> {
    let role = self::role(&role)?;
    Ok(backend::auth_backend()?.set_user_role(&backend::me()?, &name, role).await?)
}

#[server]
pub async fn delete_user(name: String) -> Result<(), ServerFnError> {
    Ok(backend::auth_backend()?.delete_user(&backend::me()?, &name).await?)
}

#[server]
pub async fn change_password(current: String, new: String) -> Result<(), ServerFnError> {
    Ok(backend::auth_backend()?.change_password(&backend::me()?, &current, &new).await?)
}

/// Creates an API key for the signed-in user with the chosen rights (within the user's role).
#[server]
pub async fn create_key(description: String, access: KeyAccess) -> Result<NewKey, ServerFnError> {
    Ok(backend::auth_backend()?.create_key(&backend::me()?, description.trim(), &access).await?)
}

/// Ends `name`'s sessions: for oneself every other browser ("sign out everywhere else"), for another user (an
/// administrator's call) all of them. Returns how many ended.
#[server]
pub async fn end_sessions(name: String) -> Result<u64, ServerFnError> {
    Ok(backend::auth_backend()?.end_sessions(&backend::me()?, name.trim()).await?)
}

/// A page of the audit log, newest first (administrators only).
#[server]
pub async fn audit_log(filter: AuditFilter) -> Result<AuditPage, ServerFnError> {
    Ok(backend::auth_backend()?.audit_log(&backend::me()?, &filter).await?)
}

#[server]
pub async fn revoke_key(id: String) -> Result<(), ServerFnError> {
    Ok(backend::auth_backend()?.revoke_key(&backend::me()?, &id).await?)
}
