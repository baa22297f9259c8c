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

use crate::engine::{self, Backbone, DetectOptions, Detection, Model};
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
        loop {
            match self.try_queue(bytes.clone(), heat_map, false) {
                Ok(rx) => return rx.await.unwrap_or_else(|_| Err(DetectError::Internal("the detection worker stopped".into()))),
                Err(DetectError::Throttled) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues one image and waits for its detection; a full queue is `Throttled` at once (and counted).
    pub async fn detect(&self, bytes: Vec<u8>, heat_map: bool) -> Result<Detection, DetectError> {
        let rx = self.try_queue(bytes, heat_map, true)?;
        rx.await.unwrap_or_else(|_| Err(DetectError::Internal("the detection worker stopped".into())))
    }

    /// Queues one image; `count_throttled` counts a refusal (a waiting caller's retries are not refusals).
    fn try_queue(&self, bytes: Vec<u8>, heat_map: bool, count_throttled: bool) -> Result<Reply, DetectError> {
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
            return Err(throttled());
        }
        match self.tx.try_send(Request { bytes, heat_map, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                s.queued.fetch_sub(1, Ordering::AcqRel);
                return Err(throttled());
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

