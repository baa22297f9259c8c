//! Model versions: a project's trained models (LFV's CreateModel, DescribeModel, ListModels, DeleteModel), their
//! tags, and readiness to train. Queries here; the training job in [`training`], the entries-to-engine path in
//! [`trainset`], hosting and detection in [`hosting`].

pub mod artifacts;
pub mod detect;
pub mod drift;
pub mod hosting;
pub mod lifecycle;
pub mod trainset;
pub mod usage;
pub mod training;

use crate::db::now_ms;
use sqlx::AnyConnection;

pub const TRAINING: &str = "TRAINING";
pub const TRAINED: &str = "TRAINED";
pub const TRAINING_FAILED: &str = "TRAINING_FAILED";
pub const STARTING_HOSTING: &str = "STARTING_HOSTING";
pub const HOSTED: &str = "HOSTED";
pub const HOSTING_FAILED: &str = "HOSTING_FAILED";
pub const STOPPING_HOSTING: &str = "STOPPING_HOSTING";
pub const DELETING: &str = "DELETING";

/// Statuses in which a model version has a usable artifact (it can be hosted, evaluated, deleted).
pub fn is_trained(status: &str) -> bool {
    matches!(status, TRAINED | HOSTING_FAILED)
}

/// Statuses in which a model version is hosted or on its way there / back.
pub fn is_hosting(status: &str) -> bool {
    matches!(status, STARTING_HOSTING | HOSTED | STOPPING_HOSTING)
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelVersion {
    pub id: String,
    pub project_id: String,
    pub version: i64,
    pub description: Option<String>,
    pub status: String,
    pub status_message: Option<String>,
    pub output_bucket: String,
    pub output_prefix: String,
    pub kms_key_id: Option<String>,
    /// JSON `{F1Score, Recall, Precision}`.
    pub performance: Option<String>,
    pub evaluation_manifest_key: Option<String>,
    pub evaluation_result_key: Option<String>,
    pub evaluation_end_at: Option<i64>,
    pub trained_threshold: Option<f64>,
    pub threshold: Option<f64>,
    /// Blob: the engine's model file (`None` until trained).
    pub artifact_hash: Option<String>,
    /// Blob: the evaluation JSON the model page reads.
    pub evaluation_hash: Option<String>,
    pub min_inference_units: Option<i64>,
    pub max_inference_units: Option<i64>,
    pub training_ms: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, project_id, version, description, status, status_message, output_bucket, output_prefix, \
    kms_key_id, performance, evaluation_manifest_key, evaluation_result_key, evaluation_end_at, trained_threshold, \
    threshold, artifact_hash, min_inference_units, max_inference_units, training_ms, created_at, updated_at, evaluation_hash";

fn from_row(r: &sqlx::any::AnyRow) -> Result<ModelVersion, sqlx::Error> {
    use sqlx::Row;
    Ok(ModelVersion {
        id: r.try_get(0)?,
        project_id: r.try_get(1)?,
        version: r.try_get::<i64, _>(2).or_else(|_| r.try_get::<i32, _>(2).map(i64::from))?,
        description: r.try_get(3)?,
        status: r.try_get(4)?,
        status_message: r.try_get(5)?,
        output_bucket: r.try_get(6)?,
        output_prefix: r.try_get(7)?,
        kms_key_id: r.try_get(8)?,
        performance: r.try_get(9)?,
        evaluation_manifest_key: r.try_get(10)?,
        evaluation_result_key: r.try_get(11)?,
        evaluation_end_at: r.try_get(12)?,
        trained_threshold: r.try_get(13)?,
        threshold: r.try_get(14)?,
        artifact_hash: r.try_get(15)?,
        min_inference_units: opt_int(r, 16)?,
        max_inference_units: opt_int(r, 17)?,
        training_ms: r.try_get(18)?,
        created_at: r.try_get(19)?,
        updated_at: r.try_get(20)?,
        evaluation_hash: r.try_get(21)?,
    })
}

/// `integer` columns come back as i32 on PostgreSQL and i64 on SQLite.
fn opt_int(r: &sqlx::any::AnyRow, i: usize) -> Result<Option<i64>, sqlx::Error> {
    use sqlx::Row;
    r.try_get::<Option<i64>, _>(i).or_else(|_| r.try_get::<Option<i32>, _>(i).map(|v| v.map(i64::from)))
}

/// What a new model version starts with.
#[derive(Clone, Debug, Default)]
pub struct NewModel {
    pub description: Option<String>,
    pub output_bucket: String,
    pub output_prefix: String,
    pub kms_key_id: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// Creates the next model version of a project in `TRAINING` (the caller enqueues its job in the same
/// transaction). Versions are never reused, even after a delete.
pub async fn create(conn: &mut AnyConnection, project_id: &str, m: &NewModel) -> Result<ModelVersion, sqlx::Error> {
    let (version,): (i64,) = sqlx::query_as("select cast(next_model_version as bigint) from project where id = $1")
        .bind(project_id)
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query("update project set next_model_version = next_model_version + 1 where id = $1").bind(project_id).execute(&mut *conn).await?;
    let id = hex::encode(rand::random::<[u8; 16]>());
    let now = now_ms();
    sqlx::query(
        "insert into model_version (id, project_id, version, description, status, output_bucket, output_prefix, kms_key_id, \
         created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(&id)
    .bind(project_id)
    .bind(version)
    .bind(&m.description)
    .bind(TRAINING)
    .bind(&m.output_bucket)
    .bind(&m.output_prefix)
    .bind(&m.kms_key_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    set_tags(conn, &id, &m.tags).await?;
    find_by_id(conn, &id).await?.ok_or(sqlx::Error::RowNotFound)
}

pub async fn find_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<ModelVersion>, sqlx::Error> {
    let row = sqlx::query(&format!("select {COLUMNS} from model_version where id = $1")).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// A project's model version by number, or its newest for `latest`.
pub async fn find(conn: &mut AnyConnection, project_id: &str, version: &str) -> Result<Option<ModelVersion>, sqlx::Error> {
    let row = if version == "latest" {
        sqlx::query(&format!("select {COLUMNS} from model_version where project_id = $1 order by version desc limit 1"))
            .bind(project_id)
            .fetch_optional(&mut *conn)
            .await?
    } else {
        let Ok(v) = version.parse::<i64>() else { return Ok(None) };
        sqlx::query(&format!("select {COLUMNS} from model_version where project_id = $1 and version = $2"))
            .bind(project_id)
            .bind(v)
            .fetch_optional(&mut *conn)
            .await?
    };
    row.as_ref().map(from_row).transpose()
}

/// A page of a project's model versions, newest first, after the version `before` (exclusive).
pub async fn list(conn: &mut AnyConnection, project_id: &str, before: Option<i64>, limit: i64) -> Result<Vec<ModelVersion>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "select {COLUMNS} from model_version where project_id = $1 and version < $2 order by version desc limit $3"
    ))
    .bind(project_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Every model version in one of the statuses (start-up: reload hosted models).
pub async fn with_status(conn: &mut AnyConnection, statuses: &[&str]) -> Result<Vec<ModelVersion>, sqlx::Error> {
    let mut out = Vec::new();
    for s in statuses {
        let rows = sqlx::query(&format!("select {COLUMNS} from model_version where status = $1")).bind(*s).fetch_all(&mut *conn).await?;
        for r in &rows {
            out.push(from_row(r)?);
        }
    }
    Ok(out)
}

pub async fn count_for_project(conn: &mut AnyConnection, project_id: &str) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("select count(*) from model_version where project_id = $1").bind(project_id).fetch_one(&mut *conn).await?;
    Ok(n)
}

pub async fn set_status(conn: &mut AnyConnection, id: &str, status: &str, message: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query("update model_version set status = $1, status_message = $2, updated_at = $3 where id = $4")
        .bind(status)
        .bind(message)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Changes the status only if it is still `from` (a compare-and-set against concurrent calls).
pub async fn transition(conn: &mut AnyConnection, id: &str, from: &[&str], to: &str, message: Option<&str>) -> Result<bool, sqlx::Error> {
    for f in from {
        let r = sqlx::query("update model_version set status = $1, status_message = $2, updated_at = $3 where id = $4 and status = $5")
            .bind(to)
            .bind(message)
            .bind(now_ms())
            .bind(id)
            .bind(*f)
            .execute(&mut *conn)
            .await?;
        if r.rows_affected() > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

pub async fn set_units(conn: &mut AnyConnection, id: &str, min: Option<i64>, max: Option<i64>) -> Result<(), sqlx::Error> {
    sqlx::query("update model_version set min_inference_units = $1, max_inference_units = $2, updated_at = $3 where id = $4")
        .bind(min)
        .bind(max)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Sets the threshold in use (the console's slider); `None` restores the trained one.
pub async fn set_threshold(conn: &mut AnyConnection, id: &str, threshold: Option<f64>) -> Result<(), sqlx::Error> {
    sqlx::query("update model_version set threshold = coalesce($1, trained_threshold), updated_at = $2 where id = $3")
        .bind(threshold)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn delete(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from model_tag where model_id = $1").bind(id).execute(&mut *conn).await?;
    // Its blobs are collected once nothing else refers to them.
    sqlx::query("delete from model_blob where model_id = $1").bind(id).execute(&mut *conn).await?;
    sqlx::query("delete from job where model_id = $1").bind(id).execute(&mut *conn).await?;
    // Its packaging jobs go too (a queued one finds its row gone and does nothing).
    sqlx::query("delete from model_packaging_job where model_id = $1").bind(id).execute(&mut *conn).await?;
    sqlx::query("delete from model_version where id = $1").bind(id).execute(&mut *conn).await?;
    Ok(())
}

pub async fn tags(conn: &mut AnyConnection, id: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as("select tag_key, tag_value from model_tag where model_id = $1 order by tag_key").bind(id).fetch_all(&mut *conn).await
}

/// Adds or replaces tags.
pub async fn set_tags(conn: &mut AnyConnection, id: &str, tags: &[(String, String)]) -> Result<(), sqlx::Error> {
    let now = now_ms();
    for (k, v) in tags {
        sqlx::query("delete from model_tag where model_id = $1 and tag_key = $2").bind(id).bind(k).execute(&mut *conn).await?;
        sqlx::query("insert into model_tag (model_id, tag_key, tag_value, created_at, updated_at) values ($1, $2, $3, $4, $4)")
            .bind(id)
            .bind(k)
            .bind(v)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn remove_tags(conn: &mut AnyConnection, id: &str, keys: &[String]) -> Result<(), sqlx::Error> {
    for k in keys {
        sqlx::query("delete from model_tag where model_id = $1 and tag_key = $2").bind(id).bind(k).execute(&mut *conn).await?;
    }
    Ok(())
}

/// LFV's model ARN: `arn:aws:lookoutvision:REGION:ACCOUNT:model/PROJECT/VERSION`.
pub fn model_arn(region: &str, account: &str, project: &str, version: i64) -> String {
    format!("arn:aws:lookoutvision:{region}:{account}:model/{project}/{version}")
}

/// Parses a model ARN into `(project, version)`.
pub fn parse_model_arn(arn: &str) -> Option<(String, i64)> {
    let rest = arn.strip_prefix("arn:aws:lookoutvision:")?;
    let mut parts = rest.splitn(3, ':');
    let (_region, _account, resource) = (parts.next()?, parts.next()?, parts.next()?);
    let resource = resource.strip_prefix("model/")?;
    let (project, version) = resource.rsplit_once('/')?;
    let v: i64 = version.parse().ok().filter(|v| *v >= 1)?;
    if project.is_empty() || project.contains('/') {
        return None;
    }
    Some((project.to_string(), v))
}

/// How many labelled images a dataset holds, for readiness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub normal: i64,
    pub anomaly: i64,
    pub masked: i64,
}

/// Vigil's minimum: a model can be trained from this many normal images alone (without labelled anomalies it
/// has no F1-optimal threshold and no supervised score).
pub const MIN_NORMAL: i64 = 5;

/// Why a project cannot train yet, as sentences the user can act on; empty when it can. `train`/`test` are the
/// labelled counts of the datasets that exist.
pub fn readiness(train: Option<Counts>, test: Option<Counts>) -> Vec<String> {
    let mut why = Vec::new();
    let Some(train) = train else {
        return vec!["The project has no training dataset yet. Add images to a training dataset first, labelled normal or anomaly.".into()];
    };
    let (normal, anomaly) = match test {
        // A single dataset: the engine splits it (or cross-validates), so every labelled image counts.
        None => (train.normal, train.anomaly),
        Some(_) => (train.normal, train.anomaly),
    };
    if normal < MIN_NORMAL {
        why.push(format!(
            "The training dataset has {normal} image(s) labelled normal; Vigil needs at least {MIN_NORMAL} (LFV needed 20, or 10 with a separate test dataset). Label more images as normal."
        ));
    }
    if let Some(test) = test {
        if test.normal + test.anomaly == 0 {
            why.push("The test dataset has no labelled images. Label its images (normal or anomaly) or delete it to let Vigil split the training dataset.".into());
        }
    }
    let _ = anomaly;
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_round_trip() {
        let a = model_arn("us-east-1", "000000000000", "cookies", 3);
        assert_eq!(a, "arn:aws:lookoutvision:us-east-1:000000000000:model/cookies/3");
        assert_eq!(parse_model_arn(&a), Some(("cookies".into(), 3)));
        assert_eq!(parse_model_arn("arn:aws:lookoutvision:us-east-1:0:project/cookies"), None);
        assert_eq!(parse_model_arn("arn:aws:lookoutvision:us-east-1:0:model/cookies/0"), None);
        assert_eq!(parse_model_arn("arn:aws:lookoutvision:us-east-1:0:model/a/b/1"), None);
    }

    #[test]
    fn readiness_reasons() {
        assert!(readiness(None, None)[0].contains("no training dataset"));
        let few = Counts { normal: 2, anomaly: 0, masked: 0 };
        assert!(readiness(Some(few), None)[0].contains("2 image(s) labelled normal"));
        let ok = Counts { normal: 5, anomaly: 0, masked: 0 };
        assert!(readiness(Some(ok), None).is_empty());
        assert!(readiness(Some(ok), Some(Counts::default()))[0].contains("test dataset has no labelled images"));
    }
}
