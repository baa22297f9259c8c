//! Server functions behind the console, and the `Backend` trait through which they reach the server crate.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// A project as the console shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSummary {
    pub name: String,
    pub arn: String,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// A project with what its page shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectDetail {
    pub project: ProjectSummary,
    /// Dataset types present (`train`, `test`); empty until datasets exist.
    pub datasets: Vec<String>,
}

#[cfg(feature = "ssr")]
pub use backend::{Backend, BackendError, SharedBackend};

#[cfg(feature = "ssr")]
mod backend {
    use super::*;
    use std::sync::Arc;

    /// What the console's server functions need from the server crate. The server implements it and
    /// provides an `Arc<dyn Backend>` as Leptos context, so `app` never depends on `server`.
    #[async_trait::async_trait]
    pub trait Backend: Send + Sync + 'static {
        async fn list_projects(&self) -> Result<Vec<ProjectSummary>, BackendError>;
        async fn create_project(&self, name: &str) -> Result<ProjectSummary, BackendError>;
        async fn describe_project(&self, name: &str) -> Result<ProjectDetail, BackendError>;
        async fn delete_project(&self, name: &str) -> Result<(), BackendError>;
    }

    pub type SharedBackend = Arc<dyn Backend>;

    /// A failure the console can show as it is, with the HTTP status it deserves (400 bad input, 404 missing,
    /// 409 conflict, 500 internal); internal details stay in the server log.
    #[derive(Debug, Clone)]
    pub struct BackendError {
        pub status: u16,
        pub message: String,
    }

    impl BackendError {
        pub fn new(status: u16, message: impl Into<String>) -> Self {
            BackendError { status, message: message.into() }
        }
    }

    impl From<BackendError> for ServerFnError {
        fn from(e: BackendError) -> Self {
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(
                    http::StatusCode::from_u16(e.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
                );
            }
            ServerFnError::ServerError(e.message)
        }
    }

    pub(crate) fn backend() -> Result<SharedBackend, ServerFnError> {
        use_context::<SharedBackend>()
            .ok_or_else(|| ServerFnError::ServerError("The server is not configured.".into()))
    }
}

/// The message to show for a failed server call, without the framework's prefix.
pub fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(m) => m.clone(),
        other => format!("The request failed: {other}"),
    }
}

#[server]
pub async fn list_projects() -> Result<Vec<ProjectSummary>, ServerFnError> {
    Ok(backend::backend()?.list_projects().await?)
}

#[server]
pub async fn get_project(name: String) -> Result<ProjectDetail, ServerFnError> {
    Ok(backend::backend()?.describe_project(&name).await?)
}

#[server]
pub async fn create_project(name: String) -> Result<ProjectSummary, ServerFnError> {
    let name = name.trim().to_string();
    if let Err(message) = crate::names::validate_project_name(&name) {
        return Err(backend::BackendError::new(400, message).into());
    }
    Ok(backend::backend()?.create_project(&name).await?)
}

#[server]
pub async fn delete_project(name: String) -> Result<(), ServerFnError> {
    backend::backend()?.delete_project(&name).await?;
    Ok(())
}
