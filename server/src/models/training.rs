//! The training job: reads the project's datasets, trains with the engine on a blocking thread (reporting
//! progress, honouring cancellation), stores the model file and its evaluation as blobs, writes LFV's evaluation
//! files under the model's `OutputConfig.S3Location`, and settles the model version — `TRAINED` with its
//! performance, or `TRAINING_FAILED` with a message that says what to fix — in the same transaction that
//! deletes the job.

use super::trainset::{self, SampleOrigin};
use crate::jobs::JobProgress;
use crate::state::AppState;
use crate::db::{now_ms, Db};
use anyhow::Context;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Unwound out of the engine when a training is cancelled.
struct Cancelled;

/// What a successful training leaves.
struct Trained {
    performance: serde_json::Value,
    manifest_key: Option<String>,
    result_key: Option<String>,
    threshold: f64,
    stored: super::artifacts::Stored,
}

/// Runs a claimed training job to its end. Never panics; every failure settles the model.
pub async fn run(state: &AppState, job_id: &str, model_id: &str, progress: Arc<JobProgress>) {
    let started = Instant::now();
    let outcome = train(state, model_id, progress.clone()).await;
    let took = started.elapsed().as_millis() as i64;
    let settled = match outcome {
        Ok(t) => settle_trained(&state.db, model_id, job_id, t, took).await,
        Err(e) => {
            let message = if progress.cancelled() {
                "Training was cancelled.".to_string()
            } else {
                tracing::warn!(model = %model_id, error = format!("{e:#}"), "training failed");
                format!("Training failed: {e:#}")
            };
            settle_failed(&state.db, model_id, Some(job_id), &message).await
        }
    };
    if let Err(e) = settled {
        tracing::error!(error = %e, model = %model_id, "could not settle a model version");
    }
}

async fn train(state: &AppState, model_id: &str, progress: Arc<JobProgress>) -> anyhow::Result<Trained> {
    let t0 = Instant::now();
    let mut conn = state.db.pool.acquire().await?;
    let m = super::find_by_id(&mut conn, model_id).await?.context("the model version was deleted")?;
    let (project_name,): (String,) =
        sqlx::query_as("select name from project where id = $1").bind(&m.project_id).fetch_one(&mut *conn).await?;
    let datasets = crate::datasets::list_for_project(&mut conn, &m.project_id).await?;
    let train_ds = datasets.iter().find(|d| d.dataset_type == "train").context("the project has no training dataset")?;
    let train_entries = crate::datasets::all_entries(&mut conn, &train_ds.id).await?;
    let test_entries = match datasets.iter().find(|d| d.dataset_type == "test") {
        Some(d) => Some(crate::datasets::all_entries(&mut conn, &d.id).await?),
        None => None,
    };
    drop(conn);
    // Fail before the work, not after it, when the evaluation files cannot be written.
    if !m.output_bucket.is_empty() {
        let probe = format!("{}{}/model-{}/", m.output_prefix, project_name, m.version);
        state.s3.list(&m.output_bucket, &probe).await.map_err(|e| {
            anyhow::anyhow!(
                "the output bucket s3://{}/ cannot be used ({e}). Check OutputConfig (the bucket must exist and Vigil's S3 settings must be allowed to write to it) and train again.",
                m.output_bucket
            )
        })?;
    }
    progress.set("loading", 0.0);
    let blobs = state.blobs.clone();
    let built = tokio::task::spawn_blocking(move || trainset::build(&blobs, &train_entries, test_entries.as_deref())).await??;
    let loaded_ms = t0.elapsed().as_millis();
    let origins = built.origins;
    let backbone = state.backbone.clone();
    let set = built.set;
    let p = progress.clone();
    let t1 = Instant::now();
    // The engine runs on a blocking thread; cancellation unwinds out of its progress callback.
    let result = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut report = |pr: crate::engine::Progress| {
                use crate::engine::Stage::*;
                let (name, lo, hi) = match pr.stage {
                    Features => ("extracting features", 0.0, 0.45),
                    CrossValidation => ("cross-validating", 0.45, 0.75),
                    Heads => ("training heads", 0.75, 0.8),
                    MemoryBank => ("building the memory bank", 0.8, 0.85),
                    Evaluation => ("evaluating", 0.85, 0.98),
                };
                let f = if pr.total == 0 { 0.0 } else { pr.done as f64 / pr.total as f64 };
                p.set(name, lo + (hi - lo) * f);
                if p.cancelled() {
                    std::panic::resume_unwind(Box::new(Cancelled));
                }
            };
            crate::engine::train(&backbone, &set, &crate::engine::TrainOptions::default(), &mut report)
        }))
    })
    .await?;
    let (model, evaluation) = match result {
        Ok(r) => r.map_err(|e| anyhow::anyhow!(user_message(&e)))?,
        Err(payload) => {
            if payload.downcast_ref::<Cancelled>().is_some() {
                anyhow::bail!("cancelled");
            }
            let what = payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()));
            anyhow::bail!("the engine stopped unexpectedly ({})", what.unwrap_or_else(|| "panic".into()));
        }
    };
    let fit_ms = t1.elapsed().as_millis();
    progress.set("writing the model", 0.98);
    let threshold = model.threshold() as f64;
    let (blobs, ev, or) = (state.blobs.clone(), evaluation.clone(), origins.clone());
    let stored = tokio::task::spawn_blocking(move || super::artifacts::store(&blobs, &model, &ev, &or)).await??;

    // LFV's evaluation files, under OutputConfig.S3Location.
    let prefix = format!("{}{}/model-{}/", m.output_prefix, project_name, m.version);
    let manifest_key = format!("{prefix}evaluation-manifest.jsonl");
    let result_key = format!("{prefix}evaluation-result.json");
    let manifest = evaluation_manifest(&evaluation, &origins);
    let mut result = json!({
        "Version": 1,
        "EvaluationDetails": {
            "EvaluationEndTimestamp": chrono::Utc::now().to_rfc3339(),
            "Source": evaluation.source,
            "NumberOfTestNormalImages": evaluation.n_normal,
            "NumberOfTestAnomalousImages": evaluation.n_anomaly,
        },
        "AggregatedEvaluationResults": { "Metrics": crate::lfv::evaluation_metrics(&evaluation) },
        "Vigil": {
            "Threshold": evaluation.threshold,
            "ImageAUROC": evaluation.image_auroc,
            "AveragePrecision": evaluation.average_precision,
            "PixelAUROC": evaluation.pixel_auroc,
            "ROC": evaluation.roc,
            "PR": evaluation.pr,
            "Histogram": evaluation.histogram,
        },
    });
    if result["AggregatedEvaluationResults"]["Metrics"]["ROCAUC"].is_null() {
        result["AggregatedEvaluationResults"]["Metrics"]
            .as_object_mut()
            .map(|o| o.retain(|_, v| !v.is_null()));
    }
    let put = |key: String, bytes: Vec<u8>, ct: &'static str| {
        let s3 = state.s3.clone();
        let bucket = m.output_bucket.clone();
        async move {
            s3.put(&bucket, &key, bytes, ct).await.map_err(|e| {
                anyhow::anyhow!(
                    "the evaluation files could not be written to s3://{bucket}/{key} ({e}). Check OutputConfig (the bucket must exist and Vigil's S3 settings must be allowed to write to it) and train again."
                )
            })
        }
    };
    // The console may train without an output bucket: the evaluation then lives only in Vigil.
    let (manifest_key, result_key) = if m.output_bucket.is_empty() {
        (None, None)
    } else {
        put(manifest_key.clone(), manifest.into_bytes(), "application/x-ndjson").await?;
        put(result_key.clone(), serde_json::to_vec_pretty(&result)?, "application/json").await?;
        (Some(manifest_key), Some(result_key))
    };
    let performance = json!({ "F1Score": evaluation.f1, "Recall": evaluation.recall, "Precision": evaluation.precision });
    tracing::info!(
        model = %model_id,
        loading_ms = loaded_ms as u64,
        fit_and_evaluate_ms = fit_ms as u64,
        total_ms = t0.elapsed().as_millis() as u64,
        "trained a model version"
    );
    Ok(Trained { performance, manifest_key, result_key, threshold, stored })
}

/// LFV's evaluation manifest: one line per evaluated image, its `source-ref`, its true label and Vigil's
/// prediction with its confidence and score.
fn evaluation_manifest(ev: &crate::engine::Evaluation, origins: &HashMap<String, SampleOrigin>) -> String {
    let mut out = String::new();
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
    for r in &ev.images {
        let source_ref = origins.get(&r.id).map(|o| o.source_ref.clone()).unwrap_or_else(|| r.id.clone());
        let class = |a: bool| if a { "anomaly" } else { "normal" };
        let line = json!({
            "source-ref": source_ref,
            "anomaly-label": if r.anomalous { 1 } else { 0 },
            "anomaly-label-metadata": {
                "class-name": class(r.anomalous),
                "type": "groundtruth/image-classification",
                "human-annotated": "yes",
                "creation-date": now,
            },
            "anomaly-label-detected": if r.predicted_anomalous { 1 } else { 0 },
            "anomaly-label-detected-metadata": {
                "class-name": class(r.predicted_anomalous),
                "confidence": r.confidence,
                "score": r.score,
                "type": "groundtruth/image-classification",
                "human-annotated": "no",
                "creation-date": now,
            },
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// The engine's error as a sentence for `StatusMessage`.
fn user_message(e: &crate::engine::Error) -> String {
    match e {
        crate::engine::Error::Input(m) => format!("{m}. Fix the dataset (relabel or remove the image) and train again"),
        other => other.to_string(),
    }
}

async fn settle_trained(db: &Db, model_id: &str, job_id: &str, t: Trained, took: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let now = now_ms();
    let settled = sqlx::query(
        "update model_version set status = $1, status_message = $2, performance = $3, evaluation_manifest_key = $4, \
         evaluation_result_key = $5, evaluation_end_at = $6, evaluation_hash = $7, trained_threshold = $8, threshold = $8, \
         artifact_hash = $9, training_ms = $10, updated_at = $6 where id = $11 and status = $12",
    )
    .bind(super::TRAINED)
    .bind("Training completed.")
    .bind(t.performance.to_string())
    .bind(&t.manifest_key)
    .bind(&t.result_key)
    .bind(now)
    .bind(&t.stored.evaluation_hash)
    .bind(t.threshold)
    .bind(&t.stored.artifact_hash)
    .bind(took)
    .bind(model_id)
    .bind(super::TRAINING)
    .execute(&mut *tx)
    .await?;
    // Settled once: a worker that finishes a training another one already settled (it lost its lease and did
    // not notice in time) changes nothing.
    if settled.rows_affected() == 0 {
        tracing::warn!(model = model_id, "a training finished after its model version was settled; its result is dropped");
        return tx.rollback().await;
    }
    super::artifacts::add_refs(&mut tx, model_id, &t.stored.refs).await?;
    sqlx::query("delete from job where id = $1").bind(job_id).execute(&mut *tx).await?;
    tx.commit().await
}

/// Marks a training failed (if it is still training) and deletes its job, in one transaction.
pub async fn settle_failed(db: &Db, model_id: &str, job_id: Option<&str>, message: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let message: String = message.chars().take(1000).collect();
    sqlx::query("update model_version set status = $1, status_message = $2, updated_at = $3 where id = $4 and status = $5")
        .bind(super::TRAINING_FAILED)
        .bind(&message)
        .bind(now_ms())
        .bind(model_id)
        .bind(super::TRAINING)
        .execute(&mut *tx)
        .await?;
    if let Some(j) = job_id {
        sqlx::query("delete from job where id = $1").bind(j).execute(&mut *tx).await?;
    }
    tx.commit().await
}
