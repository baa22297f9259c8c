//! A model version's life, each step written once for the LFV API and the console: create (readiness
//! included, training queued), delete. Hosting's start and stop are in [`super::hosting`].

use super::{ModelVersion, NewModel};
use crate::jobs::Job;
use sqlx::AnyConnection;

/// Why an operation on a model version was refused.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The datasets cannot train a model (the reasons, as sentences a user can act on).
    #[error("{}", .0.join(" "))]
    NotReady(Vec<String>),
    /// A dataset is still importing or updating.
    #[error("The {dataset_type} dataset is busy ({status}); train when it has finished.")]
    DatasetBusy { dataset_type: String, status: String },
    /// The version is hosted (or on its way): stop it first.
    #[error("Model version {version} is {status}; stop it (StopModel) before deleting it.")]
    Hosted { version: i64, status: String },
    /// A quota would be exceeded (`code`: one of `quotas::*`).
    #[error("{message}")]
    Quota { message: String, code: &'static str },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Why a project's datasets cannot train a model now; `Ok` when they can.
pub async fn check_ready(conn: &mut AnyConnection, project_id: &str) -> Result<(), ModelError> {
    let datasets = crate::datasets::list_for_project(conn, project_id).await?;
    for d in &datasets {
        if d.status.ends_with("_IN_PROGRESS") {
            return Err(ModelError::DatasetBusy { dataset_type: d.dataset_type.clone(), status: d.status.clone() });
        }
        if d.status == crate::datasets::CREATE_FAILED {
            return Err(ModelError::NotReady(vec![format!(
                "The {} dataset failed to import ({}); delete it and create it again.",
                d.dataset_type,
                d.status_message.as_deref().unwrap_or("no reason recorded")
            )]));
        }
    }
    let mut counts = [None, None];
    for (i, t) in ["train", "test"].iter().enumerate() {
        if let Some(d) = datasets.iter().find(|d| d.dataset_type == *t) {
            let s = crate::datasets::stats(conn, &d.id).await?;
            counts[i] = Some(super::Counts { normal: s.normal, anomaly: s.anomaly, masked: 0 });
        }
    }
    let why = super::readiness(counts[0], counts[1]);
    if why.is_empty() {
        Ok(())
    } else {
        Err(ModelError::NotReady(why))
    }
}

/// CreateModel: checks readiness, creates the next version in `TRAINING` and queues its training, in the
/// caller's transaction. Call [`crate::jobs::wake`] after the commit.
pub async fn create_version(
    conn: &mut AnyConnection,
    project_id: &str,
    new: &NewModel,
    quotas: &crate::quotas::Quotas,
) -> Result<ModelVersion, ModelError> {
    let (versions,): (i64,) = sqlx::query_as("select count(*) from model_version where project_id = $1").bind(project_id).fetch_one(&mut *conn).await?;
    if versions >= quotas.model_versions_per_project {
        return Err(ModelError::Quota {
            message: format!("The project holds {versions} model versions, its limit (VIGIL_MAX_MODEL_VERSIONS); delete old versions first."),
            code: crate::quotas::MODEL_VERSIONS,
        });
    }
    let (training,): (i64,) =
        sqlx::query_as("select count(*) from model_version where status = $1").bind(super::TRAINING).fetch_one(&mut *conn).await?;
    if training >= quotas.queued_trainings {
        return Err(ModelError::Quota {
            message: format!(
                "{training} trainings are queued or running on this server, its limit (VIGIL_MAX_QUEUED_TRAININGS); try again when one has finished."
            ),
            code: crate::quotas::QUEUED_TRAININGS,
        });
    }
    check_ready(conn, project_id).await?;
    let m = super::create(conn, project_id, new).await?;
    crate::jobs::enqueue(conn, &Job::Train { model_id: m.id.clone() }).await?;
    Ok(m)
}

/// DeleteModel: refused while hosted; a training in progress is cancelled (the worker notices and the job goes
/// with the row). The version's blobs are collected once nothing else refers to them.
pub async fn delete_version(conn: &mut AnyConnection, m: &ModelVersion) -> Result<(), ModelError> {
    if super::is_hosting(&m.status) {
        return Err(ModelError::Hosted { version: m.version, status: m.status.clone() });
    }
    if m.status == super::TRAINING {
        crate::jobs::request_cancel(conn, &m.id).await?;
    }
    super::delete(conn, &m.id).await?;
    Ok(())
}
