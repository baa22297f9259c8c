//! Sign-in state and the Admin page's server functions (users, API access keys), with the `AuthBackend`
//! trait through which they reach the server crate.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The signed-in console user. The server's session check puts it in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub id: String,
    pub name: String,
    pub is_admin: bool,
}

/// A console user as the Admin page lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub name: String,
    pub is_admin: bool,
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
        async fn create_user(&self, me: &SessionUser, name: &str, password: &str, is_admin: bool) -> Result<(), BackendError>;
        async fn delete_user(&self, me: &SessionUser, name: &str) -> Result<(), BackendError>;
        async fn change_password(&self, me: &SessionUser, current: &str, new: &str) -> Result<(), BackendError>;
        async fn create_key(&self, me: &SessionUser, description: &str) -> Result<NewKey, BackendError>;
        async fn revoke_key(&self, me: &SessionUser, id: &str) -> Result<(), BackendError>;
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

#[server]
pub async fn create_user(name: String, password: String, is_admin: Option<String>) -> Result<(), ServerFnError> {
    let admin = is_admin.is_some_and(|v| !v.is_empty() && v != "false");
    Ok(backend::auth_backend()?.create_user(&backend::me()?, name.trim(), &password, admin).await?)
}

#[server]
pub async fn delete_user(name: String) -> Result<(), ServerFnError> {
    Ok(backend::auth_backend()?.delete_user(&backend::me()?, &name).await?)
}

#[server]
pub async fn change_password(current: String, new: String) -> Result<(), ServerFnError> {
    Ok(backend::auth_backend()?.change_password(&backend::me()?, &current, &new).await?)
}

#[server]
pub async fn create_key(description: String) -> Result<NewKey, ServerFnError> {
    Ok(backend::auth_backend()?.create_key(&backend::me()?, description.trim()).await?)
}

#[server]
pub async fn revoke_key(id: String) -> Result<(), ServerFnError> {
    Ok(backend::auth_backend()?.revoke_key(&backend::me()?, &id).await?)
}
