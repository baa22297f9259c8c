//! Inference units: a loaded model served by detection workers (LFV's inference units), the one place where an
//! image is decoded, detected and thresholded for every caller (DetectAnomalies, batches, trials, the console's
//! try), with its counters.
//!
//! Each inference unit is a detection worker — an OS thread, never the async runtime's — taking requests from
//! a bounded queue. The queue holds `detect_queue_per_unit × MaxInferenceUnits` requests; a request that finds
//! it full is refused at once (`ThrottlingException`), so a burst costs neither unbounded memory nor unbounded
//! latency. When the queue is longer than twice the running workers, another worker starts, up to
//! `MaxInferenceUnits`; extra workers stop after 30 s idle. The image is decoded on the worker too. A panic or a
//! libtorch error in one request is that request's error; the worker carries on.
//!
//! [`Hosting`] is this process's registry: the hosted models by model version, and the trial lanes (a
//! version's own unit for trials and the console's try, counted like any other).

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
    /// The version has no model to run (still training, or failed).
    #[error("Model version {version} is {status}; only a trained model can be run.")]
    NotTrained { version: i64, status: String },
    #[error("{0}")]
    Internal(String),
}

/// An image to detect: an encoded file (JPEG/PNG: the HTTP API, batches, trials), or pixels already decoded
/// (the edge agent's RGB888 bitmaps).
pub enum Input {
    Encoded(Vec<u8>),
    Rgb(image::RgbImage),
}

struct Request {
    input: Input,
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
    model: Arc<Model>,
    backbone: Arc<Backbone>,
    rx: Mutex<Receiver<Request>>,
    threshold: AtomicU32,
    workers: AtomicUsize,
    queued: AtomicUsize,
    min_units: usize,
    max_units: usize,
    counters: Arc<Counters>,
    pending: Counters,
    /// Drift: the reference scale (hosted models only) and the score histogram not yet in the database.
    score_scale: std::sync::OnceLock<ScoreScale>,
    score_bins: Mutex<Vec<u64>>,
}

impl Shared {
    /// Counts one outcome in the totals and in the counts waiting for the database.
    fn count(&self, what: impl Fn(&Counters)) {
        what(&self.counters);
        what(&self.pending);
    }
}

/// Where a hosted model's scores fall relative to its validation scores (`models::drift`): the median and spread
/// of its normal validation images' scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreScale {
    pub median: f32,
    pub scale: f32,
}

/// Bins of a score histogram: one below [`SCORE_Z_MIN`], 64 of [`SCORE_BIN_WIDTH`] spreads, one above +10.
pub const SCORE_BINS: usize = 66;
pub const SCORE_Z_MIN: f32 = -6.0;
pub const SCORE_BIN_WIDTH: f32 = 0.25;

impl ScoreScale {
    /// The histogram bin of a score.
    pub fn bin(&self, score: f32) -> usize {
        let z = (score - self.median) / self.scale.max(f32::MIN_POSITIVE);
        if !z.is_finite() || z < SCORE_Z_MIN {
            return if z > 0.0 { SCORE_BINS - 1 } else { 0 };
        }
        (1 + ((z - SCORE_Z_MIN) / SCORE_BIN_WIDTH) as usize).min(SCORE_BINS - 1)
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
        model: Arc<Model>,
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
            score_scale: std::sync::OnceLock::new(),
            score_bins: Mutex::new(Vec::new()),
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

    /// Starts keeping the histogram of scores for drift monitoring (once).
    pub fn set_score_scale(&self, s: ScoreScale) {
        let _ = self.shared.score_scale.set(s);
    }

    /// Takes the score histogram gathered since the last call (empty when nothing was scored).
    pub fn drain_score_bins(&self) -> Vec<u64> {
        self.shared.score_bins.lock().map(|mut b| std::mem::take(&mut *b)).unwrap_or_default()
    }

    /// Puts a histogram back (a flush that could not be written).
    pub fn add_score_bins(&self, bins: &[u64]) {
        if let Ok(mut b) = self.shared.score_bins.lock() {
            b.resize(SCORE_BINS, 0);
            for (x, y) in b.iter_mut().zip(bins) {
                *x += y;
            }
        }
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

    pub fn model(&self) -> &Arc<Model> {
        &self.shared.model
    }

    /// Whether no request is queued or being detected.
    pub fn is_idle(&self) -> bool {
        self.shared.queued.load(Ordering::Acquire) == 0
    }

    /// Like [`Hosted::detect`], but a full queue is waited out instead of refused (batches and trials: line
    /// traffic on the same units comes first).
    pub async fn detect_waiting(&self, bytes: Vec<u8>, heat_map: bool) -> Result<Detection, DetectError> {
        let mut input = Input::Encoded(bytes);
        loop {
            match self.try_queue(input, heat_map, false) {
                Ok(rx) => return rx.await.unwrap_or_else(|_| Err(DetectError::Internal("the detection worker stopped".into()))),
                // The refused image comes back, so waiting never copies it.
                Err((DetectError::Throttled, back)) => {
                    input = back;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Queues one image and waits for its detection; a full queue is `Throttled` at once (and counted).
    pub async fn detect(&self, bytes: Vec<u8>, heat_map: bool) -> Result<Detection, DetectError> {
        self.detect_input(Input::Encoded(bytes), heat_map).await
    }

    /// [`Hosted::detect`] for any [`Input`] (the edge agent's decoded bitmaps).
    pub async fn detect_input(&self, input: Input, heat_map: bool) -> Result<Detection, DetectError> {
        let rx = self.try_queue(input, heat_map, true).map_err(|(e, _)| e)?;
        rx.await.unwrap_or_else(|_| Err(DetectError::Internal("the detection worker stopped".into())))
    }

    /// Queues one image; `count_throttled` counts a refusal (a waiting caller's retries are not refusals). A
    /// refused image is handed back with the reason.
    fn try_queue(&self, input: Input, heat_map: bool, count_throttled: bool) -> Result<Reply, (DetectError, Input)> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let s = &self.shared;
        let throttled = || {
            if count_throttled {
                s.count(|c| {
                    c.throttled.fetch_add(1, Ordering::Relaxed);
                });
            }
            DetectError::Throttled
        };
        if s.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            s.queued.fetch_sub(1, Ordering::AcqRel);
            return Err((throttled(), input));
        }
        match self.tx.try_send(Request { input, heat_map, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(req)) => {
                s.queued.fetch_sub(1, Ordering::AcqRel);
                return Err((throttled(), req.input));
            }
            Err(TrySendError::Disconnected(req)) => {
                s.queued.fetch_sub(1, Ordering::AcqRel);
                return Err((DetectError::NotHosted, req.input));
            }
        }
        // Scale out while the queue is longer than twice the workers.
        let workers = s.workers.load(Ordering::Acquire);
        if workers < s.max_units && s.queued.load(Ordering::Acquire) > 2 * workers {
            spawn_worker(s.clone());
        }
        Ok(rx)
    }
}

type Reply = tokio::sync::oneshot::Receiver<Result<Detection, DetectError>>;

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
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| detect_one(&s, req.input, req.heat_map)))
                    .unwrap_or_else(|_| Err(DetectError::Internal("the detection failed unexpectedly".into())));
                let took = started.elapsed().as_micros() as u64;
                if let (Ok(d), Some(scale)) = (&out, s.score_scale.get()) {
                    if let Ok(mut b) = s.score_bins.lock() {
                        b.resize(SCORE_BINS, 0);
                        b[scale.bin(d.score)] += 1;
                    }
                }
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

fn detect_one(s: &Shared, input: Input, heat_map: bool) -> Result<Detection, DetectError> {
    let img = match input {
        Input::Encoded(bytes) => engine::image_io::decode_rgb(&bytes).map_err(|e| DetectError::Invalid(format!("The image is not usable: {e}.")))?,
        Input::Rgb(img) => img,
    };
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

/// Largest image DetectAnomalies (and the console's try) accepts, as LFV: 8 MB.
pub const MAX_IMAGE_BYTES: usize = 8 * 1024 * 1024;

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

    /// Models or lanes were retired since the last [`Hosting::take_retired`].
    pub fn has_retired(&self) -> bool {
        self.retired.lock().map(|r| !r.is_empty()).unwrap_or(false)
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

