//! What a dataset holds, summed up: its images counted by label, and the import report (the issues an
//! import skipped, with their reasons).

use super::types::{new_id, Issue};
use crate::db::now_ms;
use sqlx::AnyConnection;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageStats {
    pub total: i64,
    pub labeled: i64,
    pub normal: i64,
    pub anomaly: i64,
}

pub async fn stats(conn: &mut AnyConnection, dataset_id: &str) -> Result<ImageStats, sqlx::Error> {
    let rows: Vec<(Option<String>, i64)> =
        sqlx::query_as("select label, count(*) from dataset_entry where dataset_id = $1 group by label")
            .bind(dataset_id)
            .fetch_all(&mut *conn)
            .await?;
    let mut s = ImageStats::default();
    for (label, n) in rows {
        s.total += n;
        match label.as_deref() {
            Some("normal") => s.normal += n,
            Some("anomaly") => s.anomaly += n,
            _ => {}
        }
    }
    s.labeled = s.normal + s.anomaly;
    Ok(s)
}

/// Replaces the dataset's import report.
pub async fn record_issues(conn: &mut AnyConnection, dataset_id: &str, issues: &[Issue]) -> Result<(), sqlx::Error> {
    sqlx::query("delete from import_issue where dataset_id = $1").bind(dataset_id).execute(&mut *conn).await?;
    let now = now_ms();
    for i in issues {
        sqlx::query(
            "insert into import_issue (id, dataset_id, line, source_ref, reason, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(new_id())
        .bind(dataset_id)
        .bind(i.line)
        .bind(i.source_ref.as_deref())
        .bind(&i.reason)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn issues(conn: &mut AnyConnection, dataset_id: &str) -> Result<Vec<Issue>, sqlx::Error> {
    let rows: Vec<(Option<i64>, Option<String>, String)> = sqlx::query_as(
        "select line, source_ref, reason from import_issue where dataset_id = $1 order by line, created_at",
    )
    .bind(dataset_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(line, source_ref, reason)| Issue { line, source_ref, reason }).collect())
}
