//! Projects: the unit a quality engineer works in, one per inspected part. Queries and rules shared by the
//! LFV API and the console.

use crate::db::{is_unique_violation, now_ms};
use sqlx::AnyConnection;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("{0}")]
    InvalidName(String),
    #[error("A project named {0} already exists.")]
    Exists(String),
    #[error("The project {0} does not exist.")]
    NotFound(String),
    /// The server holds as many projects as it may.
    #[error("This server holds {0} projects, its limit (VIGIL_MAX_PROJECTS); delete one first.")]
    Quota(i64),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

type Row = (String, String, i64);

fn from_row((id, name, created_at): Row) -> Project {
    Project { id, name, created_at }
}

/// `arn:aws:lookoutvision:REGION:ACCOUNT:project/NAME`, LFV's project ARN.
pub use crate::lfv::project_arn;

pub async fn create(conn: &mut AnyConnection, name: &str, quotas: &crate::quotas::Quotas) -> Result<Project, ProjectError> {
    app::names::validate_project_name(name).map_err(ProjectError::InvalidName)?;
    if find(conn, name).await?.is_some() {
        return Err(ProjectError::Exists(name.to_string()));
    }
    let (n,): (i64,) = sqlx::query_as("select count(*) from project").fetch_one(&mut *conn).await?;
    if n >= quotas.projects {
        return Err(ProjectError::Quota(quotas.projects));
    }
    let project = Project { id: new_id(), name: name.to_string(), created_at: now_ms() };
    sqlx::query("insert into project (id, name, created_at, updated_at) values ($1, $2, $3, $3)")
        .bind(&project.id)
        .bind(&project.name)
        .bind(project.created_at)
        .execute(&mut *conn)
        .await
        .map_err(|e| if is_unique_violation(&e) { ProjectError::Exists(name.to_string()) } else { e.into() })?;
    Ok(project)
}

pub async fn find(conn: &mut AnyConnection, name: &str) -> Result<Option<Project>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as("select id, name, created_at from project where name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(from_row))
}

/// Up to `limit` projects in creation order, after the given (created_at, id) key.
pub async fn list_after(
    conn: &mut AnyConnection,
    after: Option<(i64, &str)>,
    limit: i64,
) -> Result<Vec<Project>, sqlx::Error> {
    let (created, id) = after.unwrap_or((i64::MIN, ""));
    let rows: Vec<Row> = sqlx::query_as(
        "select id, name, created_at from project \
         where created_at > $1 or (created_at = $1 and id > $2) \
         order by created_at, id limit $3",
    )
    .bind(created)
    .bind(id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

pub async fn delete(conn: &mut AnyConnection, name: &str) -> Result<Project, ProjectError> {
    let project = find(conn, name).await?.ok_or_else(|| ProjectError::NotFound(name.to_string()))?;
    // The project's anomaly labels go with it (explicitly: SQLite enforces no cascade unless asked to).
    sqlx::query("delete from anomaly_label where project_id = $1").bind(&project.id).execute(&mut *conn).await?;
    sqlx::query("delete from detection_hour where project_id = $1").bind(&project.id).execute(&mut *conn).await?;
    sqlx::query("delete from project where id = $1").bind(&project.id).execute(&mut *conn).await?;
    Ok(project)
}

fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    #[test]
    fn arn_format() {
        assert_eq!(
            super::project_arn("eu-west-1", "123456789012", "cookies"),
            "arn:aws:lookoutvision:eu-west-1:123456789012:project/cookies"
        );
    }
}
