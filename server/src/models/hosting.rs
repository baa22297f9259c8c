//! Hosting (LFV's StartModel / StopModel): a trained model version loaded from the blob store onto inference
//! units of its own ([`crate::inference`]), settled `HOSTED` or `HOSTING_FAILED`; stopped; hosted again after
//! a restart.
//!
//! With several API replicas the database is the truth: a hosting job (on any worker) loads and checks the
//! model and settles it `HOSTED`; every replica then loads it too ([`spawn_sync`] polls the `hosting` change
//! counter every second, and a detection that finds it not yet loaded waits for the load, [`ensure_loaded`]).
//! `StopModel` on one replica settles it `TRAINED` and bumps the counter: every other replica unloads it within
//! about a second, and refuses detections at once (DetectAnomalies reads the status first). A saved threshold
//! travels the same way. Each replica runs the version's inference units of its own.

use crate::engine::DetectOptions;
pub use crate::inference::{Counters, Counts, DetectError, Hosted, Hosting, LANE_IDLE, MAX_DETECT_IN_FLIGHT, MAX_LANES};
use std::sync::Arc;

/// StartModel's work after the status is `STARTING_HOSTING`: loads the model file (on a blocking thread), warms
/// it up at its input size, and settles the status `HOSTED`, or `HOSTING_FAILED` with the reason.
/// Inference units one model version may ask for.
pub const MAX_INFERENCE_UNITS: i64 = 16;

/// Why a model version cannot start hosting now.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Units out of range (min < 1, or max < min).
    #[error("{0}")]
    Units(String),
    /// More than [`MAX_INFERENCE_UNITS`] asked for (LFV: a quota).
    #[error("A model version can use at most {MAX_INFERENCE_UNITS} inference units.")]
    TooManyUnits,
    #[error("Model version {version} is {status}; only a trained model can be hosted.")]
    NotTrained { version: i64, status: String },
    /// The server hosts as many models as it may.
    #[error("This server hosts {0} model versions, its limit (VIGIL_MAX_HOSTED_MODELS); stop one first.")]
    Quota(i64),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// StartModel, for the API and the console alike: checks the units and the version's state, records the units,
/// marks it `STARTING_HOSTING` and queues its hosting job (`jobs::Job::Host`), in the caller's connection or
/// transaction. Returns whether it was marked: a version already hosted or starting is left as it is (LFV
/// answers a repeated start with the current state). Call [`crate::jobs::wake`] after the commit.
pub async fn begin_start(
    conn: &mut sqlx::AnyConnection,
    m: &super::ModelVersion,
    min: i64,
    max: i64,
    quotas: &crate::quotas::Quotas,
) -> Result<bool, StartError> {
    if min < 1 {
        return Err(StartError::Units(format!("MinInferenceUnits must be 1 or more, not {min}.")));
    }
    if max < min {
        return Err(StartError::Units(format!("MaxInferenceUnits ({max}) must be at least MinInferenceUnits ({min}).")));
    }
    if max > MAX_INFERENCE_UNITS {
        return Err(StartError::TooManyUnits);
    }
    if m.status == super::HOSTED || m.status == super::STARTING_HOSTING {
        return Ok(false);
    }
    if !super::is_trained(&m.status) {
        return Err(StartError::NotTrained { version: m.version, status: m.status.clone() });
    }
    let (hosted,): (i64,) = sqlx::query_as("select count(*) from model_version where status in ($1, $2)")
        .bind(super::HOSTED)
        .bind(super::STARTING_HOSTING)
        .fetch_one(&mut *conn)
        .await?;
    if hosted >= quotas.hosted_models {
        return Err(StartError::Quota(quotas.hosted_models));
    }
    super::set_units(conn, &m.id, Some(min), Some(max)).await?;
    let from = [super::TRAINED, super::HOSTING_FAILED];
    if !super::transition(conn, &m.id, &from, super::STARTING_HOSTING, Some("Loading the model.")).await? {
        return Err(StartError::NotTrained { version: m.version, status: "changing".into() });
    }
    crate::jobs::enqueue(conn, &crate::jobs::Job::Host { model_id: m.id.clone() }).await?;
    Ok(true)
}

/// The hosting job: loads the version if it is still `STARTING_HOSTING` and settles it.
pub async fn run(state: &crate::state::AppState, model_id: &str) {
    let m = match state.db.pool.acquire().await {
        Ok(mut c) => super::find_by_id(&mut c, model_id).await,
        Err(e) => Err(e),
    };
    match m {
        Ok(Some(m)) if m.status == super::STARTING_HOSTING => start(state, &m).await,
        // Stopped or deleted before its turn came.
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, model = model_id, "could not read a model version to host"),
    }
}

/// A hosting job that never finished (its process died each time): the version is `HOSTING_FAILED` with why.
pub async fn give_up(state: &crate::state::AppState, model_id: &str, why: &str) {
    if let Ok(mut conn) = state.db.pool.acquire().await {
        let _ = super::transition(&mut conn, model_id, &[super::STARTING_HOSTING], super::HOSTING_FAILED, Some(why)).await;
    }
}

/// Loads a version marked `STARTING_HOSTING` and settles it.
pub async fn start(state: &crate::state::AppState, m: &super::ModelVersion) {
    let outcome = load(state, m).await;
    let mut conn = match state.db.pool.acquire().await {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "could not settle a hosting start"),
    };
    let settled = match outcome {
        Ok(h) => {
            // A worker without the API only checks that the model loads and runs; the replicas load their own.
            if state.node.role.serves_api() {
                state.hosting.insert(h);
            }
            let done = super::transition(&mut conn, &m.id, &[super::STARTING_HOSTING], super::HOSTED, Some("The model is hosted.")).await;
            if matches!(done, Ok(true)) {
                let _ = crate::cluster::bump(&mut conn, "hosting").await;
            }
            done
        }
        Err(e) => {
            tracing::warn!(model = %m.id, error = format!("{e:#}"), "hosting failed");
            super::transition(&mut conn, &m.id, &[super::STARTING_HOSTING], super::HOSTING_FAILED, Some(&format!("Hosting failed: {e:#}"))).await
        }
    };
    match settled {
        // Stopped or deleted meanwhile: do not keep it loaded.
        Ok(false) => {
            state.hosting.remove(&m.id);
        }
        Ok(true) => {}
        Err(e) => tracing::error!(error = %e, "could not settle a hosting start"),
    }
}

async fn load(state: &crate::state::AppState, m: &super::ModelVersion) -> anyhow::Result<Arc<Hosted>> {
    let h = load_units(state, m).await?;
    // Drift monitoring's reference: the normal validation images' scores (a model without one is not monitored).
    match super::artifacts::evaluation(state, m).await {
        Ok(Some(eval)) => {
            if let Some((scale, n)) = super::drift::reference(&eval) {
                h.set_score_scale(scale);
                if let Ok(mut conn) = state.db.pool.acquire().await {
                    if let Err(e) = super::drift::record_reference(&mut conn, &m.id, n).await {
                        tracing::warn!(error = %e, "could not record a hosted model's drift reference");
                    }
                }
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(model = %m.id, error = format!("{e:#}"), "no drift reference: the evaluation could not be read"),
    }
    Ok(h)
}

async fn load_units(state: &crate::state::AppState, m: &super::ModelVersion) -> anyhow::Result<Arc<Hosted>> {
    let model = Arc::new(super::artifacts::load(state, m).await?);
    let backbone = state.backbone.clone();
    let threshold = m.threshold.or(m.trained_threshold);
    let (min, max) = units_of(m);
    let per_unit = state.config.detect_queue_per_unit;
    let (id, project_id, version) = (m.id.clone(), m.project_id.clone(), m.version);
    tokio::task::spawn_blocking(move || -> anyhow::Result<Arc<Hosted>> {
        // Warm-up at the model's own input size: the first forward passes are slow.
        let (w, h) = model.input_size();
        let blank = image::RgbImage::from_pixel(w.max(64), h.max(64), image::Rgb([128, 128, 128]));
        for _ in 0..2 {
            model
                .detect_with(&backbone, &blank, DetectOptions { heat_map: false })
                .map_err(|e| anyhow::anyhow!("the model could not run ({e})"))?;
        }
        let t = threshold.map(|t| t as f32).unwrap_or_else(|| model.threshold());
        Ok(Hosted::start((&id, &project_id, version), model, backbone, t, min, max, per_unit))
    })
    .await?
}

/// The (min, max) inference units a version is hosted with, as `Hosted::units` reports them.
fn units_of(m: &super::ModelVersion) -> (usize, usize) {
    let min = m.min_inference_units.unwrap_or(1).max(1) as usize;
    (min, (m.max_inference_units.unwrap_or(0).max(0) as usize).max(min))
}

/// Stops hosting a model version and settles it `TRAINED` (from `STOPPING_HOSTING`, or at once from any hosting
/// state for the console): requests already queued are answered, and its last counts are written later.
pub async fn stop(state: &crate::state::AppState, conn: &mut sqlx::AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    state.hosting.remove(id);
    let from = [super::STOPPING_HOSTING, super::HOSTED, super::STARTING_HOSTING, super::HOSTING_FAILED];
    super::transition(conn, id, &from, super::TRAINED, Some("The model was stopped.")).await?;
    super::set_units(conn, id, None, None).await?;
    crate::cluster::bump(conn, "hosting").await
}

/// The hosted model of a version marked `HOSTED` in the database, loading it on this process first if it is not
/// loaded yet (a replica that has not caught up, or a worker running a batch); concurrent callers share one load.
pub async fn ensure_loaded(state: &crate::state::AppState, m: &super::ModelVersion) -> Result<Arc<Hosted>, DetectError> {
    if let Some(h) = state.hosting.get(&m.id) {
        return Ok(h);
    }
    if m.status != super::HOSTED {
        return Err(DetectError::NotHosted);
    }
    let gate = {
        static LOADS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = std::sync::OnceLock::new();
        let mut loads = LOADS.get_or_init(Default::default).lock().unwrap();
        loads.retain(|_, g| Arc::strong_count(g) > 1);
        loads.entry(m.id.clone()).or_default().clone()
    };
    let _loading = gate.lock().await;
    if let Some(h) = state.hosting.get(&m.id) {
        return Ok(h);
    }
    let h = load(state, m).await.map_err(|e| {
        tracing::error!(model = %m.id, error = format!("{e:#}"), "loading a hosted model on this process");
        DetectError::Internal(format!("the hosted model could not be loaded on this server ({e:#})"))
    })?;
    state.hosting.insert(h.clone());
    tracing::info!(model = %m.id, version = m.version, "loaded a hosted model on this process");
    Ok(h)
}

/// Brings this process's hosted models in line with the database: unloads versions no longer `HOSTED`, applies
/// saved thresholds and unit changes, and (on API replicas) loads the hosted versions not loaded yet, in the
/// background. Returns how many it loaded and unloaded.
pub async fn reconcile(state: &crate::state::AppState) -> Result<(usize, usize), sqlx::Error> {
    let (stuck, hosted): (Vec<_>, Vec<_>) = {
        let mut conn = state.db.pool.acquire().await?;
        super::with_status(&mut conn, &[super::HOSTED, super::STARTING_HOSTING, super::STOPPING_HOSTING]).await?
    }
    .into_iter()
    .partition(|m| m.status == super::STOPPING_HOSTING);
    let wanted: std::collections::HashMap<&str, &super::ModelVersion> = hosted.iter().map(|m| (m.id.as_str(), m)).collect();
    let mut unloaded = 0;
    for h in state.hosting.all() {
        let keep = wanted.get(h.model_id.as_str()).filter(|m| h.units() == units_of(m));
        match keep {
            Some(m) => state.hosting.set_threshold(&h.model_id, m.threshold.or(m.trained_threshold)),
            None => {
                state.hosting.remove(&h.model_id);
                state.hosting.close_lanes(std::time::Duration::ZERO, Some(&h.model_id));
                unloaded += 1;
            }
        }
    }
    // A stop whose replica died between marking it and settling it is settled here.
    for m in stuck.iter().filter(|m| crate::db::now_ms() - m.updated_at > 30_000) {
        let mut conn = state.db.pool.acquire().await?;
        stop(state, &mut conn, &m.id).await?;
    }
    let mut loading = 0;
    if state.node.role.serves_api() {
        for m in hosted.into_iter().filter(|m| m.status == super::HOSTED && state.hosting.get(&m.id).is_none()) {
            loading += 1;
            let state = state.clone();
            tokio::spawn(async move {
                let _ = ensure_loaded(&state, &m).await;
            });
        }
    }
    Ok((loading, unloaded))
}

/// Keeps this process in line with the others for its life: every second it reads the change counters; a
/// change of `hosting` (or 10 s without one) reconciles the hosted models, a change of `keys` forgets the
/// access keys it cached.
pub fn spawn_sync(state: crate::state::AppState) {
    tokio::spawn(async move {
        let mut seen: std::collections::HashMap<String, i64> = Default::default();
        let mut last = std::time::Instant::now();
        let mut first = true;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if state.jobs.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let now = match crate::cluster::counters(&state.db).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the change counters");
                    continue;
                }
            };
            let changed = |topic: &str| now.get(topic) != seen.get(topic);
            if changed("keys") && !first {
                state.auth.forget_all();
            }
            if first || changed("hosting") || last.elapsed() >= std::time::Duration::from_secs(10) {
                last = std::time::Instant::now();
                match reconcile(&state).await {
                    Ok((0, 0)) => {}
                    Ok((loading, unloaded)) => tracing::info!(loading, unloaded, "hosted models brought in line with the database"),
                    Err(e) => tracing::warn!(error = %e, "could not read the hosted models"),
                }
            }
            first = false;
            seen = now;
        }
    });
}

/// At start-up: models that were hosted (or on their way) are hosted again, as LFV kept them running — each by
/// a hosting job, unless one is already queued; models left stopping are stopped.
pub async fn restore(state: &crate::state::AppState) -> Result<usize, sqlx::Error> {
    // Beside other live processes, the models they host stay hosted: this one loads them (`spawn_sync`).
    let others = crate::cluster::live(&state.db).await?.into_iter().filter(|p| p.id != state.node.id).count();
    if others > 0 {
        return Ok(0);
    }
    let mut conn = state.db.pool.acquire().await?;
    for m in super::with_status(&mut conn, &[super::STOPPING_HOSTING]).await? {
        stop(state, &mut conn, &m.id).await?;
    }
    drop(conn);
    let hosted = {
        let mut conn = state.db.pool.acquire().await?;
        super::with_status(&mut conn, &[super::HOSTED, super::STARTING_HOSTING]).await?
    };
    for m in &hosted {
        let mut tx = state.db.begin_write().await?;
        super::set_status(&mut tx, &m.id, super::STARTING_HOSTING, Some("Hosting the model again after a restart.")).await?;
        if !crate::jobs::hosting_pending(&mut tx, &m.id).await? {
            crate::jobs::enqueue(&mut tx, &crate::jobs::Job::Host { model_id: m.id.clone() }).await?;
        }
        tx.commit().await?;
    }
    crate::jobs::wake(state);
    Ok(hosted.len())
}
