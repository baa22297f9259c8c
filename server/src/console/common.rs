//! What the console's modules share: the domain's errors as the console shows them, the internal-error
//! reply, and finding a project or a dataset by name (or answering 404).

use crate::datasets::{self, Dataset};
use crate::projects::{self, Project, ProjectError};
use app::api::BackendError;
use sqlx::AnyConnection;

impl From<ProjectError> for BackendError {
    fn from(e: ProjectError) -> Self {
        match e {
            ProjectError::Db(e) => internal(e),
            ProjectError::InvalidName(_) => BackendError::invalid(e.to_string()),
            ProjectError::NotFound(_) => BackendError::not_found(e.to_string()),
            ProjectError::Exists(_) => BackendError::conflict(e.to_string()),
            ProjectError::Quota(_) => BackendError::new(402, e.to_string()),
        }
    }
}

/// A refused check (`security`) as the console shows it.
impl From<crate::security::SecurityError> for BackendError {
    fn from(e: crate::security::SecurityError) -> Self {
        match e {
            crate::security::SecurityError::Db(e) => internal(e),
            other => BackendError::new(other.status(), other.to_string()),
        }
    }
}

/// `datasets`' errors as the console shows them (the LFV API's conversion is in `http::datasets`).
impl From<datasets::DatasetError> for BackendError {
    fn from(e: datasets::DatasetError) -> Self {
        match e {
            datasets::DatasetError::Exists(t) => {
                BackendError::conflict(format!("The project already has a {t} dataset; delete it first or import into the other one."))
            }
            datasets::DatasetError::NotFound { .. } => BackendError::not_found(e.to_string()),
            datasets::DatasetError::Busy { .. } => BackendError::conflict(e.to_string()),
            datasets::DatasetError::Invalid(m) => BackendError::invalid(m),
            datasets::DatasetError::Db(e) => internal(e),
        }
    }
}

pub(super) fn internal(e: impl std::fmt::Display) -> BackendError {
    tracing::error!(error = %e, "console backend error");
    BackendError::internal("Vigil had an internal error. Try again.")
}

pub(super) fn ensure_settled(d: &Dataset) -> Result<(), BackendError> {
    Ok(datasets::check_settled(d)?)
}

pub(super) async fn find_project(conn: &mut AnyConnection, project: &str) -> Result<Project, BackendError> {
    projects::find(conn, project).await.map_err(internal)?.ok_or_else(|| BackendError::from(ProjectError::NotFound(project.into())))
}

pub(super) async fn find_dataset(conn: &mut AnyConnection, project: &str, dataset_type: &str) -> Result<(Project, Dataset), BackendError> {
    let p = projects::find(conn, project)
        .await
        .map_err(internal)?
        .ok_or_else(|| BackendError::from(ProjectError::NotFound(project.to_string())))?;
    let d = datasets::require(conn, &p.id, project, dataset_type).await?;
    Ok((p, d))
}
