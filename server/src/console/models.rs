//! The console's model backend: implements `app::api::models::ModelBackend` over the same domain code as the
//! LFV model API (`crate::models`).

use super::internal;
use crate::models::{self, lifecycle::ModelError, trainset::SampleOrigin, ModelVersion, NewModel};
use crate::state::AppState;
use crate::trials::heat_png;
use app::api::models::{Dashboard, ProjectActivity, DASHBOARD_FRAMES, EvalImage, EvalView, LabelRow, ModelBackend, ModelDetail, ModelSummary, ModelsOverview, TrainingProgress, TryResult};
use app::api::BackendError;
use base64::Engine as _;
use sqlx::AnyConnection;
use std::collections::HashMap;

pub struct ConsoleModels {
    pub state: AppState,
}

/// A refused model operation, for the console: what the user can fix is a 400, a state conflict a 409.
fn model_error(e: ModelError) -> BackendError {
    match e {
        ModelError::NotReady(_) | ModelError::DatasetBusy { .. } => BackendError::invalid(e.to_string()),
        ModelError::Hosted { .. } => BackendError::conflict(e.to_string()),
        ModelError::Quota { .. } => BackendError::new(402, e.to_string()),
        ModelError::Db(e) => internal(e),
    }
}

async fn project_id(conn: &mut AnyConnection, project: &str) -> Result<String, BackendError> {
    crate::projects::find(conn, project)
        .await
        .map_err(internal)?
        .map(|p| p.id)
        .ok_or_else(|| BackendError::not_found(format!("The project {project} does not exist.")))
}

async fn model(conn: &mut AnyConnection, project: &str, version: i64) -> Result<ModelVersion, BackendError> {
    let pid = project_id(conn, project).await?;
    models::find(conn, &pid, &version.to_string())
        .await
        .map_err(internal)?
        .ok_or_else(|| BackendError::not_found(format!("The project {project} has no model version {version}.")))
}

fn perf(m: &ModelVersion) -> (Option<f64>, Option<f64>, Option<f64>) {
    let v: Option<serde_json::Value> = m.performance.as_deref().and_then(|p| serde_json::from_str(p).ok());
    let g = |k: &str| v.as_ref().and_then(|v| v[k].as_f64());
    (g("F1Score"), g("Precision"), g("Recall"))
}

async fn summary(state: &AppState, conn: &mut AnyConnection, m: &ModelVersion) -> Result<ModelSummary, BackendError> {
    let (f1, precision, recall) = perf(m);
    let auroc = if m.status == models::TRAINING {
        None
    } else {
        let ev = models::artifacts::evaluation(state, m).await.map_err(internal)?;
        ev.and_then(|e| serde_json::from_slice::<serde_json::Value>(&e).ok()).and_then(|v| v["evaluation"]["image_auroc"].as_f64())
    };
    let progress = if m.status == models::TRAINING {
        crate::jobs::training_progress(conn, &m.id).await.map_err(internal)?.map(|(stage, fraction, eta_ms, cancel)| TrainingProgress {
            stage: stage.unwrap_or_else(|| "waiting for a worker".into()),
            fraction: fraction.unwrap_or(0.0),
            eta_ms,
            cancel_requested: cancel != 0,
        })
    } else {
        None
    };
    Ok(ModelSummary {
        version: m.version,
        status: m.status.clone(),
        status_message: m.status_message.clone(),
        description: m.description.clone(),
        f1,
        precision,
        recall,
        auroc,
        created_at_ms: m.created_at,
        training_ms: m.training_ms,
        tags: models::tags(conn, &m.id).await.map_err(internal)?,
        progress,
    })
}


fn detect_error(e: models::hosting::DetectError) -> BackendError {
    use models::hosting::DetectError;
    match e {
        DetectError::Invalid(why) => BackendError::invalid(why),
        DetectError::Throttled => BackendError::throttled(e.to_string()),
        e @ (DetectError::NotTrained { .. } | DetectError::NotHosted) => BackendError::conflict(e.to_string()),
        DetectError::Internal(e) => internal(e),
    }
}

/// The model page's view of the stored evaluation. Read as JSON values, not as the engine's `Evaluation`: a
/// curve's first point has an infinite threshold, which JSON stores as null.
fn eval_view(raw: &[u8]) -> Option<EvalView> {
    let v: serde_json::Value = serde_json::from_slice(raw).ok()?;
    let ev = &v["evaluation"];
    let origins: HashMap<String, SampleOrigin> = serde_json::from_value(v["origins"].clone()).unwrap_or_default();
    let images = ev["images"]
        .as_array()?
        .iter()
        .map(|r| {
            let id = r["id"].as_str().unwrap_or_default().to_string();
            let o = origins.get(&id);
            let name = o.map(|o| super::display_name(&o.source_ref)).unwrap_or_else(|| id.clone());
            EvalImage {
                name,
                image: o.map(|o| o.image.clone()).unwrap_or_default(),
                mask: o.and_then(|o| o.mask.clone()),
                anomalous: r["anomalous"].as_bool().unwrap_or_default(),
                score: r["score"].as_f64().unwrap_or_default() as f32,
            }
        })
        .collect();
    let curve = |v: &serde_json::Value| -> Vec<(f64, f64)> {
        v.as_array()
            .map(|a| a.iter().filter_map(|p| Some((p["x"].as_f64()?, p["y"].as_f64()?))).collect())
            .unwrap_or_default()
    };
    let labels = ev["labels"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| {
                    Some(LabelRow {
                        name: l["name"].as_str()?.to_string(),
                        f1: l["f1"].as_f64().unwrap_or_default(),
                        iou: l["iou"].as_f64().unwrap_or_default(),
                        precision: l["precision"].as_f64().unwrap_or_default(),
                        recall: l["recall"].as_f64().unwrap_or_default(),
                        images: l["images"].as_u64().unwrap_or_default() as usize,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(EvalView {
        source: ev["source"].as_str().unwrap_or_default().to_string(),
        image_auroc: ev["image_auroc"].as_f64(),
        average_precision: ev["average_precision"].as_f64(),
        pixel_auroc: ev["pixel_auroc"].as_f64(),
        roc: curve(&ev["roc"]),
        pr: curve(&ev["pr"]),
        images,
        labels,
        notes: ev["notes"].as_array().map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_string)).collect()).unwrap_or_default(),
    })
}

fn png_data_url(bytes: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[async_trait::async_trait]
impl ModelBackend for ConsoleModels {
    async fn models(&self, project: &str) -> Result<ModelsOverview, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let pid = project_id(&mut conn, project).await?;
        let missing = match models::lifecycle::check_ready(&mut conn, &pid).await {
            Ok(()) => Vec::new(),
            Err(ModelError::Db(e)) => return Err(internal(e)),
            Err(ModelError::NotReady(why)) => why,
            Err(e) => vec![e.to_string()],
        };
        let list = models::list(&mut conn, &pid, None, 100).await.map_err(internal)?;
        let mut out = Vec::with_capacity(list.len());
        for m in &list {
            out.push(summary(&self.state, &mut conn, m).await?);
        }
        Ok(ModelsOverview { missing, models: out })
    }

    async fn train(&self, project: &str, description: &str, bucket: &str, prefix: &str) -> Result<i64, BackendError> {
        let description = description.trim();
        if description.chars().count() > 500 {
            return Err(BackendError::invalid("The description may have at most 500 characters."));
        }
        if !bucket.trim().is_empty() {
            self.state.s3.scope().check(bucket.trim(), prefix.trim()).map_err(|m| BackendError::invalid(format!("The output location: {m}.")))?;
        }
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        let pid = project_id(&mut tx, project).await?;
        let new = NewModel {
            description: (!description.is_empty()).then(|| description.to_string()),
            output_bucket: bucket.trim().to_string(),
            output_prefix: prefix.trim().to_string(),
            kms_key_id: None,
            tags: Vec::new(),
        };
        let m = models::lifecycle::create_version(&mut tx, &pid, &new, &crate::quotas::Quotas::of(&self.state.config)).await.map_err(model_error)?;
        tx.commit().await.map_err(internal)?;
        crate::jobs::wake(&self.state);
        Ok(m.version)
    }

    async fn cancel_training(&self, project: &str, version: i64) -> Result<bool, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let m = model(&mut conn, project, version).await?;
        if m.status != models::TRAINING {
            return Err(BackendError::conflict(format!("Model version {version} is {}, not training.", m.status)));
        }
        if crate::jobs::request_cancel(&mut conn, &m.id).await.map_err(internal)? {
            // The worker notices within a second and stops at the end of the step it is in.
            return Ok(false);
        }
        crate::models::training::settle_failed(&self.state.db, &m.id, None, "Training was cancelled.").await.map_err(internal)?;
        Ok(true)
    }

    async fn model(&self, project: &str, version: i64) -> Result<ModelDetail, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let m = model(&mut conn, project, version).await?;
        let evaluation = models::artifacts::evaluation(&self.state, &m).await.map_err(internal)?.as_deref().and_then(eval_view);
        let workers = self.state.hosting.get(&m.id).map(|h| h.workers()).unwrap_or(0);
        let drift = if m.status == models::HOSTED {
            let _ = models::usage::flush(&self.state).await;
            models::drift::status(&mut conn, &m.id, models::usage::hour_now()).await.map_err(internal)?.map(|s| app::api::models::DriftView {
                images: s.images,
                reference: s.reference,
                median_shift: s.median_shift,
                statistic: s.statistic,
                shifted: s.shifted,
            })
        } else {
            None
        };
        Ok(ModelDetail {
            project: project.to_string(),
            arn: models::model_arn(&self.state.config.region, &self.state.config.account_id, project, m.version),
            summary: summary(&self.state, &mut conn, &m).await?,
            threshold: m.threshold,
            trained_threshold: m.trained_threshold,
            evaluation,
            output: (!m.output_bucket.is_empty()).then(|| format!("s3://{}/{}", m.output_bucket, m.output_prefix)),
            min_units: m.min_inference_units,
            max_units: m.max_inference_units,
            workers,
            endpoint: format!("http://{}", self.state.leptos_options.site_addr),
            drift,
        })
    }

    async fn set_threshold(&self, project: &str, version: i64, threshold: Option<f64>) -> Result<(), BackendError> {
        if threshold.is_some_and(|t| !t.is_finite()) {
            return Err(BackendError::invalid("The threshold must be a number."));
        }
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let m = model(&mut conn, project, version).await?;
        if m.trained_threshold.is_none() {
            return Err(BackendError::conflict(format!("Model version {version} is {}; it has no threshold yet.", m.status)));
        }
        models::set_threshold(&mut conn, &m.id, threshold).await.map_err(internal)?;
        self.state.hosting.set_threshold(&m.id, threshold.or(m.trained_threshold));
        // Every other replica hosting it applies it within about a second.
        crate::cluster::bump(&mut conn, "hosting").await.map_err(internal)?;
        Ok(())
    }

    async fn start(&self, project: &str, version: i64, units: i64) -> Result<(), BackendError> {
        use models::hosting::StartError;
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        let m = model(&mut tx, project, version).await?;
        match models::hosting::begin_start(&mut tx, &m, units, units, &crate::quotas::Quotas::of(&self.state.config)).await {
            Ok(true) => {
                tx.commit().await.map_err(internal)?;
                crate::jobs::wake(&self.state);
            }
            Ok(false) => {}
            Err(e @ (StartError::Units(_) | StartError::TooManyUnits)) => return Err(BackendError::invalid(e.to_string())),
            Err(e @ StartError::NotTrained { .. }) => return Err(BackendError::conflict(e.to_string())),
            Err(e @ StartError::Quota(_)) => return Err(BackendError::new(402, e.to_string())),
            Err(StartError::Db(e)) => return Err(internal(e)),
        }
        Ok(())
    }

    async fn stop(&self, project: &str, version: i64) -> Result<(), BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let m = model(&mut conn, project, version).await?;
        if !matches!(m.status.as_str(), models::HOSTED | models::STARTING_HOSTING | models::HOSTING_FAILED) {
            return Err(BackendError::conflict(format!("Model version {version} is {}; it is not hosted.", m.status)));
        }
        models::hosting::stop(&self.state, &mut conn, &m.id).await.map_err(internal)?;
        Ok(())
    }

    async fn delete(&self, project: &str, version: i64) -> Result<(), BackendError> {
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        let m = model(&mut tx, project, version).await?;
        models::lifecycle::delete_version(&mut tx, &m).await.map_err(model_error)?;
        tx.commit().await.map_err(internal)?;
        self.state.hosting.close_lanes(std::time::Duration::ZERO, Some(&m.id));
        Ok(())
    }

    async fn dashboard(&self, hours: i64) -> Result<Dashboard, BackendError> {
        if !DASHBOARD_FRAMES.iter().any(|(h, _)| *h == hours) {
            let frames: Vec<String> = DASHBOARD_FRAMES.iter().map(|(h, _)| h.to_string()).collect();
            return Err(BackendError::invalid(format!("The time frame must be one of {} hours.", frames.join(", "))));
        }
        // Fresh figures: this process's counts not yet written go in first.
        if let Err(e) = models::usage::flush(&self.state).await {
            tracing::warn!(error = %e, "could not write detection counts before the dashboard");
        }
        // About 24 to 90 points whatever the frame: hours for a day, 6 hours for a week, days beyond.
        let bucket_hours = match hours {
            h if h <= 48 => 1,
            h if h <= 24 * 7 => 6,
            _ => 24,
        };
        let now = models::usage::hour_now();
        let since = now - hours + 1;
        let since = since - since.rem_euclid(bucket_hours);
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let usage = models::usage::by_project(&mut conn, since, now, bucket_hours, 500).await.map_err(internal)?;
        let hosted_versions: Vec<(String, String, i64)> = sqlx::query_as(
            "select m.id, p.name, m.version from model_version m join project p on p.id = m.project_id where m.status = $1 order by p.name, m.version",
        )
        .bind(models::HOSTED)
        .fetch_all(&mut *conn)
        .await
        .map_err(internal)?;
        let hosted = hosted_versions.len() as i64;
        let mut drifting = Vec::new();
        for (id, project, version) in hosted_versions {
            if models::drift::status(&mut conn, &id, now).await.map_err(internal)?.is_some_and(|s| s.shifted) {
                drifting.push((project, version));
            }
        }
        Ok(Dashboard {
            hours,
            bucket_hours,
            since_ms: since * 3_600_000,
            projects: usage
                .into_iter()
                .map(|u| ProjectActivity { project: u.project, processed: u.processed, anomalous: u.anomalous, series: u.series })
                .collect(),
            hosted,
            drifting,
        })
    }

    async fn eval_heat_map(&self, project: &str, version: i64, image: &str) -> Result<String, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let m = model(&mut conn, project, version).await?;
        drop(conn);
        let raw = models::artifacts::evaluation(&self.state, &m).await.map_err(internal)?;
        let ev = raw.as_deref().and_then(eval_view).ok_or_else(|| BackendError::conflict(format!("Model version {version} has no evaluation yet.")))?;
        // Only the evaluation's own images: the hash is the page's, not a way to run any blob through the model.
        if image.is_empty() || !ev.images.iter().any(|i| i.image == image) {
            return Err(BackendError::not_found(format!("Model version {version} was not evaluated on that image.")));
        }
        let (blobs, hash) = (self.state.blobs.clone(), image.to_string());
        let bytes = tokio::task::spawn_blocking(move || blobs.get(&hash)).await.map_err(internal)?.map_err(internal)?;
        // The trial lane, waiting its turn: paging through results must not be refused as a burst.
        let d = models::detect::detect(&self.state, &m, Ok(bytes), models::detect::Lane::Trial, true).await.map_err(detect_error)?;
        Ok(png_data_url(&heat_png(&d)))
    }

    async fn try_image(&self, project: &str, version: i64, image: Vec<u8>) -> Result<TryResult, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let m = model(&mut conn, project, version).await?;
        drop(conn);
        let image = if image.len() > crate::inference::MAX_IMAGE_BYTES { Err("The image is larger than 8 MB.".to_string()) } else { Ok(image) };
        // The version's trial lane: counted like any detection, never in the way of hosted traffic.
        let d = models::detect::detect(&self.state, &m, image, models::detect::Lane::Try, true).await.map_err(detect_error)?;
        Ok(TryResult {
            is_anomalous: d.is_anomalous,
            confidence: d.confidence as f64,
            score: d.score as f64,
            heat_map: png_data_url(&heat_png(&d)),
            mask: d.anomaly_mask.as_deref().map(png_data_url),
            anomalies: crate::trials::anomaly_areas(&d),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluations_with_infinite_thresholds_are_read() {
        // serde_json writes the ROC curve's first threshold (+inf) as null; the page must still read the rest.
        let raw = serde_json::json!({
            "evaluation": {
                "source": "test_set", "image_auroc": 0.9, "average_precision": null, "pixel_auroc": null,
                "roc": [{"threshold": null, "x": 0.0, "y": 0.0}, {"threshold": 2.0, "x": 0.5, "y": 1.0}],
                "pr": [{"threshold": 2.0, "x": 1.0, "y": 0.5}],
                "images": [{"id": "test/e1", "anomalous": true, "predicted_anomalous": true, "score": 3.0, "confidence": 0.9}],
                "labels": [{"name": "dent", "precision": 1.0, "recall": 0.5, "f1": 0.6, "iou": 0.4, "images": 2}],
            },
            "origins": {"test/e1": {"source_ref": "s3://b/anomaly/1.png", "image": "ab", "mask": null, "dataset_type": "test"}},
        });
        let v = eval_view(raw.to_string().as_bytes()).unwrap();
        assert_eq!(v.roc, vec![(0.0, 0.0), (0.5, 1.0)]);
        assert_eq!(v.pr, vec![(1.0, 0.5)]);
        assert_eq!(v.images[0].name, "anomaly/1.png");
        let raw = raw.to_string().replace("s3://b/anomaly/1.png", "vigil://upload/0123456789abcdef/scratch 7.png");
        assert_eq!(eval_view(raw.as_bytes()).unwrap().images[0].name, "scratch 7.png", "an upload's name, not its hash folder");
        assert_eq!(v.images[0].image, "ab");
        assert_eq!(v.labels[0].images, 2);
        assert_eq!(v.image_auroc, Some(0.9));
    }
}
