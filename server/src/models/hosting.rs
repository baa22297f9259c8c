//! Hosted models: a model version loaded in memory and served by detection workers (LFV's inference units).
//!
//! Each inference unit is a detection worker — an OS thread, never the async runtime's — taking requests from
//! the model's bounded queue. The queue holds `detect_queue_per_unit × MaxInferenceUnits` requests; a request
//! that finds it full is refused at once (`ThrottlingException`), so a burst costs neither unbounded memory nor
//! unbounded latency. When the queue is longer than twice the running workers, another worker starts, up to
//! `MaxInferenceUnits`; extra workers stop after 30 s idle. The image is decoded on the worker too. A panic or a
//! libtorch error in one request is that request's error; the worker carries on.

use crate::engine::{self, Backbone, DetectOptions, Detection, Model};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a detection did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The image is unusable (not a JPEG/PNG, too small or large, ...).
    #[error("{0}")]
    Invalid(String),
    /// The model's queue is full.
    #[error("The model is busy: its inference units' queue is full. Retry shortly or start it with more inference units.")]
    Throttled,
    /// The model is not hosted (any more).
    #[error("The model version is not hosted.")]
    NotHosted,
    #[error("{0}")]
    Internal(String),
}

struct Request {
    bytes: Vec<u8>,
    heat_map: bool,
    reply: tokio::sync::oneshot::Sender<Result<Detection, DetectError>>,
}

/// Detection counts. Each hosted model keeps two: its totals since it was hosted, and the counts not yet
/// added to the database's hourly rows (`usage::flush` drains those).
#[derive(Debug, Default)]
pub struct Counters {
    pub processed: AtomicU64,
    pub anomalous: AtomicU64,
    pub invalid: AtomicU64,
    pub throttled: AtomicU64,
    pub errors: AtomicU64,
    /// Sum of detection times (µs) of processed images.
    pub time_us: AtomicU64,
}

/// A copy of a `Counters`, in its field order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub processed: u64,
    pub anomalous: u64,
    pub invalid: u64,
    pub throttled: u64,
    pub errors: u64,
    pub time_us: u64,
}

impl Counts {
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

impl Counters {
    fn fields(&self) -> [&AtomicU64; 6] {
        [&self.processed, &self.anomalous, &self.invalid, &self.throttled, &self.errors, &self.time_us]
    }

    fn from_array(a: [u64; 6]) -> Counts {
        Counts { processed: a[0], anomalous: a[1], invalid: a[2], throttled: a[3], errors: a[4], time_us: a[5] }
    }

    pub fn snapshot(&self) -> Counts {
        Self::from_array(self.fields().map(|f| f.load(Ordering::Relaxed)))
    }

    /// Takes the counts, leaving zeros.
    pub fn drain(&self) -> Counts {
        Self::from_array(self.fields().map(|f| f.swap(0, Ordering::AcqRel)))
    }

    /// Adds counts back (a flush that could not be written).
    pub fn add(&self, c: Counts) {
        let v = [c.processed, c.anomalous, c.invalid, c.throttled, c.errors, c.time_us];
        for (f, n) in self.fields().into_iter().zip(v) {
            f.fetch_add(n, Ordering::Relaxed);
        }
    }
}

struct Shared {
    model: Model,
    backbone: Arc<Backbone>,
    rx: Mutex<Receiver<Request>>,
    threshold: AtomicU32,
    workers: AtomicUsize,
    queued: AtomicUsize,
    min_units: usize,
    max_units: usize,
    counters: Arc<Counters>,
    pending: Counters,
}

impl Shared {
    /// Counts one outcome in the totals and in the counts waiting for the database.
    fn count(&self, what: impl Fn(&Counters)) {
        what(&self.counters);
        what(&self.pending);
    }
}

/// A hosted model version.
pub struct Hosted {
    pub model_id: String,
    pub project_id: String,
    pub version: i64,
    tx: SyncSender<Request>,
    shared: Arc<Shared>,
    capacity: usize,
}

impl Hosted {
    /// Loads nothing itself: takes a loaded model and starts `min_units` workers.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        (model_id, project_id, version): (&str, &str, i64),
        model: Model,
        backbone: Arc<Backbone>,
        threshold: f32,
        min_units: usize,
        max_units: usize,
        per_unit: usize,
    ) -> Arc<Hosted> {
        let min_units = min_units.max(1);
        let max_units = max_units.max(min_units);
        let capacity = (per_unit.max(1) * max_units).max(1);
        let (tx, rx) = sync_channel(capacity);
        let shared = Arc::new(Shared {
            model,
            backbone,
            rx: Mutex::new(rx),
            threshold: AtomicU32::new(threshold.to_bits()),
            workers: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            min_units,
            max_units,
            counters: Arc::new(Counters::default()),
            pending: Counters::default(),
        });
        for _ in 0..min_units {
            spawn_worker(shared.clone());
        }
        Arc::new(Hosted { model_id: model_id.to_string(), project_id: project_id.to_string(), version, tx, shared, capacity })
    }

    /// Uses `t` from now on; `None` goes back to the threshold the model was trained with.
    pub fn set_threshold(&self, t: Option<f64>) {
        let t = t.map(|t| t as f32).unwrap_or_else(|| self.shared.model.threshold());
        self.shared.threshold.store(t.to_bits(), Ordering::Relaxed);
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.shared.counters.clone()
    }

    /// Counts an image refused before it reached a worker (content type, size).
    pub fn count_invalid(&self) {
        self.shared.count(|c| {
            c.invalid.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// The counts not yet in the database.
    pub fn pending(&self) -> &Counters {
        &self.shared.pending
    }

    /// Running workers (LFV's in-service inference units).
    pub fn workers(&self) -> usize {
        self.shared.workers.load(Ordering::Relaxed)
    }

    pub fn units(&self) -> (usize, usize) {
        (self.shared.min_units, self.shared.max_units)
    }

    pub fn model(&self) -> &Model {
        &self.shared.model
    }

    /// Queues one image and waits for its detection.
    pub async fn detect(&self, bytes: Vec<u8>, heat_map: bool) -> Result<Detection, DetectError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let s = &self.shared;
        if s.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            s.queued.fetch_sub(1, Ordering::AcqRel);
            s.count(|c| {
                c.throttled.fetch_add(1, Ordering::Relaxed);
            });
            return Err(DetectError::Throttled);
        }
        match self.tx.try_send(Request { bytes, heat_map, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                s.queued.fetch_sub(1, Ordering::AcqRel);
                s.count(|c| {
                    c.throttled.fetch_add(1, Ordering::Relaxed);
                });
                return Err(DetectError::Throttled);
            }
            Err(TrySendError::Disconnected(_)) => {
                s.queued.fetch_sub(1, Ordering::AcqRel);
                return Err(DetectError::NotHosted);
            }
        }
        // Scale out while the queue is longer than twice the workers.
        let workers = s.workers.load(Ordering::Acquire);
        if workers < s.max_units && s.queued.load(Ordering::Acquire) > 2 * workers {
            spawn_worker(s.clone());
        }
        rx.await.unwrap_or_else(|_| Err(DetectError::Internal("the detection worker stopped".into())))
    }
}

fn spawn_worker(shared: Arc<Shared>) {
    shared.workers.fetch_add(1, Ordering::AcqRel);
    let s = shared.clone();
    let spawned = std::thread::Builder::new().name("vigil-detect".into()).spawn(move || worker(s));
    if spawned.is_err() {
        shared.workers.fetch_sub(1, Ordering::AcqRel);
    }
}

fn worker(s: Arc<Shared>) {
    loop {
        let next = match s.rx.lock() {
            Ok(rx) => rx.recv_timeout(Duration::from_secs(30)),
            Err(_) => Err(RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(req) => {
                s.queued.fetch_sub(1, Ordering::AcqRel);
                let started = Instant::now();
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| detect_one(&s, &req.bytes, req.heat_map)))
                    .unwrap_or_else(|_| Err(DetectError::Internal("the detection failed unexpectedly".into())));
                let took = started.elapsed().as_micros() as u64;
                s.count(|c| match &out {
                    Ok(d) => {
                        c.processed.fetch_add(1, Ordering::Relaxed);
                        if d.is_anomalous {
                            c.anomalous.fetch_add(1, Ordering::Relaxed);
                        }
                        c.time_us.fetch_add(took, Ordering::Relaxed);
                    }
                    Err(DetectError::Invalid(_)) => {
                        c.invalid.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                    }
                });
                let _ = req.reply.send(out);
            }
            Err(RecvTimeoutError::Timeout) => {
                // Extra workers (above MinInferenceUnits) stop when idle.
                let n = s.workers.load(Ordering::Acquire);
                if n > s.min_units && s.workers.compare_exchange(n, n - 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                s.workers.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        }
    }
}

fn detect_one(s: &Shared, bytes: &[u8], heat_map: bool) -> Result<Detection, DetectError> {
    let img = engine::image_io::decode_rgb(bytes).map_err(|e| DetectError::Invalid(format!("The image is not usable: {e}.")))?;
    // LFV's answer has no heat map: computing one for DetectAnomalies would be wasted work on the hot path.
    let mut d = s.model.detect_with(&s.backbone, &img, DetectOptions { heat_map }).map_err(|e| match e {
        engine::Error::Input(m) => DetectError::Invalid(m),
        engine::Error::Image(e) => DetectError::Invalid(e.to_string()),
        other => DetectError::Internal(other.to_string()),
    })?;
    apply_threshold(&mut d, f32::from_bits(s.threshold.load(Ordering::Relaxed)), s.model.header.confidence_scale);
    Ok(d)
}

/// The verdict and confidence at a threshold other than the trained one (the console's slider).
pub fn apply_threshold(d: &mut Detection, threshold: f32, scale: f32) {
    let (a, c) = engine::threshold::verdict(d.score, threshold, scale);
    d.is_anomalous = a;
    d.confidence = c;
}

/// DetectAnomalies requests one process receives or serves at once (at most 8 MB of body each).
pub const MAX_DETECT_IN_FLIGHT: usize = 64;

impl Default for Hosting {
    fn default() -> Self {
        Hosting {
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_DETECT_IN_FLIGHT)),
            models: Mutex::default(),
            retired: Mutex::default(),
        }
    }
}

/// Every hosted model of this process, by model version id.
pub struct Hosting {
    /// DetectAnomalies requests being received or served, across models: each may hold an 8 MB body, so a
    /// request beyond [`MAX_DETECT_IN_FLIGHT`] is refused (429) before its body is read (`http::auth`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    models: Mutex<HashMap<String, Arc<Hosted>>>,
    /// Models no longer hosted whose last counts are still to be written (`usage::flush` empties it).
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
        if let Ok(mut r) = self.retired.lock() {
            r.push(h.clone());
        }
        Some(h)
    }

    /// Models stopped since the last call.
    pub fn take_retired(&self) -> Vec<Arc<Hosted>> {
        self.retired.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default()
    }

    pub fn all(&self) -> Vec<Arc<Hosted>> {
        self.models.lock().map(|m| m.values().cloned().collect()).unwrap_or_default()
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
    use anyhow::Context;
    let rel = m.artifact.clone().context("the model version has no model file")?;
    let path = state.config.data_dir.join(rel);
    let backbone = state.backbone.clone();
    let threshold = m.threshold.or(m.trained_threshold);
    let (min, max) = (m.min_inference_units.unwrap_or(1).max(1) as usize, m.max_inference_units.unwrap_or(0).max(0) as usize);
    let per_unit = state.config.detect_queue_per_unit;
    let (id, project_id, version) = (m.id.clone(), m.project_id.clone(), m.version);
    tokio::task::spawn_blocking(move || -> anyhow::Result<Arc<Hosted>> {
        let model = Model::load(&path).map_err(|e| anyhow::anyhow!("the model file could not be read ({e}); train a new version"))?;
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
