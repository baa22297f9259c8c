//! Hosted models: which model versions this process serves (LFV's StartModel / StopModel), each on its own
//! inference units ([`crate::inference`]), and the trial lanes that run a version for trials and the console's
//! try on units of their own, counted the same way.

use crate::engine::DetectOptions;
pub use crate::inference::{Counters, Counts, DetectError, Hosted};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// DetectAnomalies requests one process receives or serves at once (at most 8 MB of body each).
pub const MAX_DETECT_IN_FLIGHT: usize = 64;

/// Trial lanes kept loaded at once: opening one more drops the least recently used idle one.
pub const MAX_LANES: usize = 4;

/// A trial lane unused this long is dropped, and its model's memory given back.
pub const LANE_IDLE: Duration = Duration::from_secs(60);

impl Default for Hosting {
    fn default() -> Self {
        Hosting {
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_DETECT_IN_FLIGHT)),
            models: Mutex::default(),
            lanes: Mutex::default(),
            retired: Mutex::default(),
        }
    }
}

/// Every hosted model of this process, by model version id, and the trial lanes.
pub struct Hosting {
    /// DetectAnomalies requests being received or served, across models: each may hold an 8 MB body, so a
    /// request beyond [`MAX_DETECT_IN_FLIGHT`] is refused (429) before its body is read (`http::auth`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    models: Mutex<HashMap<String, Arc<Hosted>>>,
    /// Trial lanes: a model version's own inference unit for trials and the console's try, so they never take
    /// a hosted model's queue slots from line traffic. A lane shares the hosted model's memory when the version
    /// is hosted; its detections are counted like any other. With the time it was last used.
    lanes: Mutex<HashMap<String, (Arc<Hosted>, Instant)>>,
    /// Models and lanes no longer served whose last counts are still to be written (`usage::flush` empties it).
    retired: Mutex<Vec<Arc<Hosted>>>,
}

impl Hosting {
    pub fn get(&self, model_id: &str) -> Option<Arc<Hosted>> {
        self.models.lock().ok()?.get(model_id).cloned()
    }

    pub fn insert(&self, h: Arc<Hosted>) {
        if let Ok(mut m) = self.models.lock() {
            m.insert(h.model_id.clone(), h);
        }
    }

    /// Stops hosting: requests already queued finish; the workers stop when the last one is answered.
    pub fn remove(&self, model_id: &str) -> Option<Arc<Hosted>> {
        let h = self.models.lock().ok()?.remove(model_id)?;
        self.retire(h.clone());
        Some(h)
    }

    fn retire(&self, h: Arc<Hosted>) {
        if let Ok(mut r) = self.retired.lock() {
            r.push(h);
        }
    }

    /// A model version's trial lane, if open (and marks it used).
    pub fn lane(&self, model_id: &str) -> Option<Arc<Hosted>> {
        let mut lanes = self.lanes.lock().ok()?;
        let (h, used) = lanes.get_mut(model_id)?;
        *used = Instant::now();
        Some(h.clone())
    }

    /// Opens a trial lane (a lane opened meanwhile by another caller wins, so one version has one lane). At
    /// [`MAX_LANES`], the least recently used idle lane is dropped first.
    pub fn insert_lane(&self, h: Arc<Hosted>) -> Arc<Hosted> {
        let Ok(mut lanes) = self.lanes.lock() else { return h };
        if let Some((existing, used)) = lanes.get_mut(&h.model_id) {
            *used = Instant::now();
            return existing.clone();
        }
        if lanes.len() >= MAX_LANES {
            let oldest = lanes.iter().filter(|(_, (l, _))| l.is_idle()).min_by_key(|(_, (_, used))| *used).map(|(id, _)| id.clone());
            if let Some((l, _)) = oldest.and_then(|id| lanes.remove(&id)) {
                self.retire(l);
            }
        }
        lanes.insert(h.model_id.clone(), (h.clone(), Instant::now()));
        h
    }

    /// Drops the lanes unused for `idle` (or every lane of a model version, for `Some(id)`: deleted or its
    /// threshold changed). Returns how many.
    pub fn close_lanes(&self, idle: Duration, model_id: Option<&str>) -> usize {
        let Ok(mut lanes) = self.lanes.lock() else { return 0 };
        let gone: Vec<String> = lanes
            .iter()
            .filter(|(id, (l, used))| model_id.map_or(l.is_idle() && used.elapsed() >= idle, |m| m == id.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            if let Some((l, _)) = lanes.remove(id) {
                self.retire(l);
            }
        }
        gone.len()
    }

    /// Uses threshold `t` from now on for a version's hosted model and lane (`None`: the trained one).
    pub fn set_threshold(&self, model_id: &str, t: Option<f64>) {
        let lane = self.lanes.lock().ok().and_then(|l| l.get(model_id).map(|(h, _)| h.clone()));
        for h in self.get(model_id).into_iter().chain(lane) {
            h.set_threshold(t);
        }
    }

    /// Models and lanes stopped since the last call.
    pub fn take_retired(&self) -> Vec<Arc<Hosted>> {
        self.retired.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default()
    }

    /// The hosted models (not the lanes).
    pub fn all(&self) -> Vec<Arc<Hosted>> {
        self.models.lock().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Everything that counts detections: the hosted models and the open lanes.
    pub fn counting(&self) -> Vec<Arc<Hosted>> {
        let mut out = self.all();
        if let Ok(lanes) = self.lanes.lock() {
            out.extend(lanes.values().map(|(h, _)| h.clone()));
        }
        out
    }
}

impl std::fmt::Debug for Hosting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hosting({} models)", self.all().len())
    }
}

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
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The first half of StartModel, for the API and the console alike: checks the units and the version's state,
/// records the units and marks it `STARTING_HOSTING` (in the caller's connection or transaction). Returns
/// whether it was marked: a version already hosted or starting is left as it is (LFV answers a repeated start
/// with the current state). Then call [`spawn_start`].
pub async fn begin_start(conn: &mut sqlx::AnyConnection, m: &super::ModelVersion, min: i64, max: i64) -> Result<bool, StartError> {
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
    super::set_units(conn, &m.id, Some(min), Some(max)).await?;
    let from = [super::TRAINED, super::HOSTING_FAILED];
    if !super::transition(conn, &m.id, &from, super::STARTING_HOSTING, Some("Loading the model.")).await? {
        return Err(StartError::NotTrained { version: m.version, status: "changing".into() });
    }
    Ok(true)
}

/// The second half of StartModel: loads the version (marked `STARTING_HOSTING` and committed) in the
/// background and settles it `HOSTED` or `HOSTING_FAILED`.
pub fn spawn_start(state: &crate::state::AppState, model_id: String) {
    let st = state.clone();
    tokio::spawn(async move {
        let m = match st.db.pool.acquire().await {
            Ok(mut c) => super::find_by_id(&mut c, &model_id).await.ok().flatten(),
            Err(_) => None,
        };
        if let Some(m) = m {
            start(&st, &m).await;
        }
    });
}

/// Loads a version marked `STARTING_HOSTING` and settles it (start-up re-hosting calls it directly).
pub async fn start(state: &crate::state::AppState, m: &super::ModelVersion) {
    let outcome = load(state, m).await;
    let mut conn = match state.db.pool.acquire().await {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "could not settle a hosting start"),
    };
    let settled = match outcome {
        Ok(h) => {
            state.hosting.insert(h);
            super::transition(&mut conn, &m.id, &[super::STARTING_HOSTING], super::HOSTED, Some("The model is hosted.")).await
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
    let model = Arc::new(super::artifacts::load(state, m).await?);
    let backbone = state.backbone.clone();
    let threshold = m.threshold.or(m.trained_threshold);
    let (min, max) = (m.min_inference_units.unwrap_or(1).max(1) as usize, m.max_inference_units.unwrap_or(0).max(0) as usize);
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
        Ok(Hosted::start((&id, &project_id, version), model, backbone, t, min, max.max(min), per_unit))
    })
    .await?
}

/// Stops hosting a model version and settles it `TRAINED` (from `STOPPING_HOSTING`, or at once from any hosting
/// state for the console): requests already queued are answered, and its last counts are written later.
pub async fn stop(state: &crate::state::AppState, conn: &mut sqlx::AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    state.hosting.remove(id);
    let from = [super::STOPPING_HOSTING, super::HOSTED, super::STARTING_HOSTING, super::HOSTING_FAILED];
    super::transition(conn, id, &from, super::TRAINED, Some("The model was stopped.")).await?;
    super::set_units(conn, id, None, None).await
}

/// At start-up: models that were hosted (or on their way) are hosted again, as LFV kept them running; models
/// left stopping are stopped.
pub async fn restore(state: &crate::state::AppState) -> Result<usize, sqlx::Error> {
    let mut conn = state.db.pool.acquire().await?;
    for m in super::with_status(&mut conn, &[super::STOPPING_HOSTING]).await? {
        stop(state, &mut conn, &m.id).await?;
    }
    let hosted = super::with_status(&mut conn, &[super::HOSTED, super::STARTING_HOSTING]).await?;
    for m in &hosted {
        super::set_status(&mut conn, &m.id, super::STARTING_HOSTING, Some("Hosting the model again after a restart.")).await?;
    }
    drop(conn);
    let n = hosted.len();
    for m in hosted {
        let st = state.clone();
        tokio::spawn(async move { start(&st, &m).await });
    }
    Ok(n)
}
