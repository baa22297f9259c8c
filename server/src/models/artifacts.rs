//! A model version as blobs: its model file and its evaluation are content-addressed blobs referenced from the
//! version's row (`artifact_hash`, `evaluation_hash`), and every blob it keeps alive — those two and the test
//! images and masks its evaluation shows — has a `model_blob` row, which blob collection reads.

use super::trainset::SampleOrigin;
use crate::blobs::Blobs;
use crate::engine::Model;
use crate::state::AppState;
use crate::db::{now_ms, Db};
use sqlx::AnyConnection;
use std::collections::HashMap;

/// What training stores for a model version.
pub struct Stored {
    pub artifact_hash: String,
    pub evaluation_hash: String,
    /// Every blob the version refers to (the two above included).
    pub refs: Vec<String>,
}

/// The evaluation a model page reads: the engine's evaluation and where each evaluated image came from.
#[derive(serde::Serialize)]
struct EvaluationDoc<'a> {
    evaluation: &'a crate::engine::Evaluation,
    origins: &'a HashMap<String, SampleOrigin>,
}

/// Writes a trained model and its evaluation to the blob store. Blocking.
pub fn store(blobs: &Blobs, model: &Model, evaluation: &crate::engine::Evaluation, origins: &HashMap<String, SampleOrigin>) -> anyhow::Result<Stored> {
    let bytes = model.to_bytes().map_err(|e| anyhow::anyhow!("saving the model file: {e}"))?;
    let artifact_hash = blobs.put(&bytes)?;
    let doc = serde_json::to_vec(&EvaluationDoc { evaluation, origins })?;
    let evaluation_hash = blobs.put(&doc)?;
    let mut refs = vec![artifact_hash.clone(), evaluation_hash.clone()];
    refs.extend(origin_blobs(origins));
    Ok(Stored { artifact_hash, evaluation_hash, refs })
}

/// The images and masks an evaluation shows.
fn origin_blobs(origins: &HashMap<String, SampleOrigin>) -> impl Iterator<Item = String> + '_ {
    origins.values().flat_map(|o| std::iter::once(o.image.clone()).chain(o.mask.clone()))
}

/// Records the blobs a model version refers to (in the caller's transaction).
pub async fn add_refs(conn: &mut AnyConnection, model_id: &str, refs: &[String]) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let mut refs: Vec<&String> = refs.iter().collect();
    refs.sort();
    refs.dedup();
    for hash in refs {
        sqlx::query("insert into model_blob (model_id, hash, created_at, updated_at) values ($1, $2, $3, $3) on conflict do nothing")
            .bind(model_id)
            .bind(hash)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Every blob some model version refers to.
pub async fn referenced(conn: &mut AnyConnection) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as("select distinct hash from model_blob").fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().map(|(h,)| h).collect())
}

/// Loads a model version's model file from the blob store (on a blocking thread).
pub async fn load(state: &AppState, m: &super::ModelVersion) -> anyhow::Result<Model> {
    let hash = m.artifact_hash.clone().ok_or_else(|| anyhow::anyhow!("the model version has no model file"))?;
    let blobs = state.blobs.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Model> {
        let bytes = blobs.get(&hash).map_err(|e| anyhow::anyhow!("the model file could not be read ({e:#}); train a new version"))?;
        Model::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("the model file could not be read ({e}); train a new version"))
    })
    .await?
}

/// The evaluation JSON of a model version, for the console (`None` before training ends).
pub async fn evaluation(state: &AppState, m: &super::ModelVersion) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(hash) = m.evaluation_hash.clone() else { return Ok(None) };
    let blobs = state.blobs.clone();
    Ok(Some(tokio::task::spawn_blocking(move || blobs.get(&hash)).await??))
}

/// At start-up: model versions trained before model versions were blobs get their model file (under the data
/// directory) and evaluation (JSON text in the row) moved into the blob store, referenced from the row; the
/// file is removed and the text cleared once the row is committed. Returns how many versions moved.
pub async fn backfill_with(db: &Db, blobs: &Blobs, data_dir: &std::path::Path) -> anyhow::Result<usize> {
    let mut conn = db.pool.acquire().await?;
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "select id, artifact, evaluation from model_version where (artifact is not null and artifact_hash is null) \
         or (evaluation is not null and evaluation_hash is null)",
    )
    .fetch_all(&mut *conn)
    .await?;
    drop(conn);
    let mut moved = 0;
    for (id, artifact, evaluation) in rows {
        // Only the names this server wrote (`models/<hex id>.vigil`) are read: the column never held a request's path.
        let file = artifact.filter(|rel| {
            rel.strip_prefix("models/").and_then(|f| f.strip_suffix(".vigil")).is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_hexdigit()))
        });
        let path = file.as_ref().map(|rel| data_dir.join(rel));
        let blobs = blobs.clone();
        let p = path.clone();
        let (artifact_hash, evaluation_hash, refs) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut refs = Vec::new();
            let artifact_hash = match p.filter(|p| p.is_file()) {
                Some(p) => Some(blobs.put(&std::fs::read(&p)?)?),
                None => None,
            };
            let evaluation_hash = match &evaluation {
                Some(text) => {
                    let origins: HashMap<String, SampleOrigin> = serde_json::from_str::<serde_json::Value>(text)
                        .ok()
                        .and_then(|v| serde_json::from_value(v["origins"].clone()).ok())
                        .unwrap_or_default();
                    refs.extend(origin_blobs(&origins));
                    Some(blobs.put(text.as_bytes())?)
                }
                None => None,
            };
            refs.extend(artifact_hash.clone());
            refs.extend(evaluation_hash.clone());
            Ok((artifact_hash, evaluation_hash, refs))
        })
        .await??;
        let mut tx = db.begin_write().await?;
        sqlx::query(
            "update model_version set artifact_hash = coalesce($1, artifact_hash), evaluation_hash = coalesce($2, evaluation_hash), \
             artifact = null, evaluation = null where id = $3",
        )
        .bind(&artifact_hash)
        .bind(&evaluation_hash)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        add_refs(&mut tx, &id, &refs).await?;
        tx.commit().await?;
        if let Some(p) = path {
            let _ = tokio::fs::remove_file(p).await;
        }
        moved += 1;
    }
    Ok(moved)
}
