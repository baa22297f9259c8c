//! The `dataset` table: a project's `train` and `test` datasets, their statuses (which say whether an import
//! or update is writing into one), their errors, and creating, finding, clearing and deleting them.

use super::types::new_id;
use crate::db::{is_unique_violation, now_ms};
use sqlx::AnyConnection;

pub const CREATE_IN_PROGRESS: &str = "CREATE_IN_PROGRESS";
pub const CREATE_COMPLETE: &str = "CREATE_COMPLETE";
pub const CREATE_FAILED: &str = "CREATE_FAILED";
pub const UPDATE_IN_PROGRESS: &str = "UPDATE_IN_PROGRESS";
pub const UPDATE_COMPLETE: &str = "UPDATE_COMPLETE";
pub const UPDATE_FAILED_ROLLBACK_COMPLETE: &str = "UPDATE_FAILED_ROLLBACK_COMPLETE";

/// Statuses in which a dataset's entries can be changed.
pub fn is_settled(status: &str) -> bool {
    matches!(status, CREATE_COMPLETE | UPDATE_COMPLETE | UPDATE_FAILED_ROLLBACK_COMPLETE)
}

/// Statuses in which an import or update is writing into the dataset: the only ones that forbid deleting
/// it (a failed import is settled too: it can be deleted, or run again).
pub fn is_busy(status: &str) -> bool {
    matches!(status, CREATE_IN_PROGRESS | UPDATE_IN_PROGRESS)
}

pub fn validate_dataset_type(t: &str) -> Result<(), String> {
    if t == "train" || t == "test" {
        Ok(())
    } else {
        Err(format!("DatasetType must be train or test, not {t:?}."))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    pub id: String,
    pub project_id: String,
    pub dataset_type: String,
    pub status: String,
    pub status_message: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("The project {project} has no {dataset_type} dataset.")]
    NotFound { project: String, dataset_type: String },
    /// An import or update is writing into it (or it is in another unsettled state).
    #[error("The {dataset_type} dataset is busy ({status}); try again when it has finished.")]
    Busy { dataset_type: String, status: String },
    #[error("{0}")]
    Invalid(String),
    #[error("The project already has a {0} dataset.")]
    Exists(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A dataset whose entries can change now, or `Busy`.
pub fn check_settled(d: &Dataset) -> Result<(), DatasetError> {
    if is_settled(&d.status) {
        Ok(())
    } else {
        Err(DatasetError::Busy { dataset_type: d.dataset_type.clone(), status: d.status.clone() })
    }
}

/// A dataset no import or update is writing into (it may be deleted), or `Busy`.
pub fn check_not_busy(d: &Dataset) -> Result<(), DatasetError> {
    if is_busy(&d.status) {
        Err(DatasetError::Busy { dataset_type: d.dataset_type.clone(), status: d.status.clone() })
    } else {
        Ok(())
    }
}

/// The project's dataset of that type, or `NotFound` (`project` names the project in the message).
pub async fn require(conn: &mut AnyConnection, project_id: &str, project: &str, dataset_type: &str) -> Result<Dataset, DatasetError> {
    find(conn, project_id, dataset_type)
        .await?
        .ok_or_else(|| DatasetError::NotFound { project: project.to_string(), dataset_type: dataset_type.to_string() })
}

type DatasetRow = (String, String, String, String, Option<String>, i64, i64);

fn dataset_from((id, project_id, dataset_type, status, status_message, created_at, updated_at): DatasetRow) -> Dataset {
    Dataset { id, project_id, dataset_type, status, status_message, created_at, updated_at }
}

const DATASET_COLUMNS: &str = "id, project_id, dataset_type, status, status_message, created_at, updated_at";

pub async fn create(
    conn: &mut AnyConnection,
    project_id: &str,
    dataset_type: &str,
    status: &str,
) -> Result<Dataset, DatasetError> {
    if find(conn, project_id, dataset_type).await?.is_some() {
        return Err(DatasetError::Exists(dataset_type.to_string()));
    }
    let now = now_ms();
    let d = Dataset {
        id: new_id(),
        project_id: project_id.to_string(),
        dataset_type: dataset_type.to_string(),
        status: status.to_string(),
        status_message: None,
        created_at: now,
        updated_at: now,
    };
    sqlx::query(
        "insert into dataset (id, project_id, dataset_type, status, status_message, created_at, updated_at) \
         values ($1, $2, $3, $4, null, $5, $5)",
    )
    .bind(&d.id)
    .bind(&d.project_id)
    .bind(&d.dataset_type)
    .bind(&d.status)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|e| if is_unique_violation(&e) { DatasetError::Exists(dataset_type.to_string()) } else { e.into() })?;
    Ok(d)
}

pub async fn find(conn: &mut AnyConnection, project_id: &str, dataset_type: &str) -> Result<Option<Dataset>, sqlx::Error> {
    let row: Option<DatasetRow> = sqlx::query_as(&format!(
        "select {DATASET_COLUMNS} from dataset where project_id = $1 and dataset_type = $2"
    ))
    .bind(project_id)
    .bind(dataset_type)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(dataset_from))
}

pub async fn list_for_project(conn: &mut AnyConnection, project_id: &str) -> Result<Vec<Dataset>, sqlx::Error> {
    let rows: Vec<DatasetRow> = sqlx::query_as(&format!(
        "select {DATASET_COLUMNS} from dataset where project_id = $1 order by dataset_type desc"
    ))
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(dataset_from).collect())
}

pub async fn set_status(conn: &mut AnyConnection, id: &str, status: &str, message: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query("update dataset set status = $1, status_message = $2, updated_at = $3 where id = $4")
        .bind(status)
        .bind(message)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records the import job that creates a dataset (see `import_source`).
pub async fn set_import_source(conn: &mut AnyConnection, id: &str, spec: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update dataset set import_source = $1 where id = $2").bind(spec).bind(id).execute(&mut *conn).await?;
    Ok(())
}

/// The spec of the import job that created the dataset, when the console started it.
pub async fn import_source(conn: &mut AnyConnection, id: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("select import_source from dataset where id = $1").bind(id).fetch_optional(&mut *conn).await?;
    Ok(row.and_then(|(s,)| s))
}

/// Removes a dataset's entries and report, keeping the dataset (an import about to run again).
pub async fn clear(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from import_issue where dataset_id = $1").bind(id).execute(&mut *conn).await?;
    sqlx::query("delete from dataset_entry where dataset_id = $1").bind(id).execute(&mut *conn).await?;
    Ok(())
}

pub async fn delete(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    // Children first, so neither engine needs cascading deletes switched on.
    sqlx::query("delete from import_issue where dataset_id = $1").bind(id).execute(&mut *conn).await?;
    sqlx::query("delete from dataset_entry where dataset_id = $1").bind(id).execute(&mut *conn).await?;
    sqlx::query("delete from dataset where id = $1").bind(id).execute(&mut *conn).await?;
    Ok(())
}

/// At start-up: a dataset still in progress with no recorded job to resume it (written by a version without
/// durable jobs) will never finish; say so.
pub async fn fail_interrupted(conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
    let now = now_ms();
    const NO_JOB: &str = " and not exists (select 1 from job j where j.dataset_id = dataset.id or j.other_dataset_id = dataset.id)";
    let a = sqlx::query(&format!("update dataset set status = $1, status_message = $2, updated_at = $3 where status = $4{NO_JOB}"))
        .bind(CREATE_FAILED)
        .bind("The import was interrupted by a server restart. Delete the dataset and create it again.")
        .bind(now)
        .bind(CREATE_IN_PROGRESS)
        .execute(&mut *conn)
        .await?;
    let b = sqlx::query(&format!("update dataset set status = $1, status_message = $2, updated_at = $3 where status = $4{NO_JOB}"))
        .bind(UPDATE_FAILED_ROLLBACK_COMPLETE)
        .bind("The update was interrupted by a server restart; no entry was changed. Send it again.")
        .bind(now)
        .bind(UPDATE_IN_PROGRESS)
        .execute(&mut *conn)
        .await?;
    Ok(a.rows_affected() + b.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(status: &str) -> Dataset {
        Dataset {
            id: "d".into(),
            project_id: "p".into(),
            dataset_type: "train".into(),
            status: status.into(),
            status_message: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn busy_settled_and_failed_datasets() {
        // A failed import is settled for deletion (not busy) but its entries cannot be edited.
        assert!(check_not_busy(&dataset(CREATE_FAILED)).is_ok());
        assert!(check_settled(&dataset(CREATE_FAILED)).is_err());
        for s in [CREATE_IN_PROGRESS, UPDATE_IN_PROGRESS] {
            let e = check_not_busy(&dataset(s)).unwrap_err();
            assert!(matches!(e, DatasetError::Busy { .. }));
            assert_eq!(e.to_string(), format!("The train dataset is busy ({s}); try again when it has finished."));
        }
        for s in [CREATE_COMPLETE, UPDATE_COMPLETE, UPDATE_FAILED_ROLLBACK_COMPLETE] {
            assert!(check_settled(&dataset(s)).is_ok());
        }
    }
}
