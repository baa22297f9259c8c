//! The edge agent: installed model components (see [`super::store`]) with LFV's states, served over LFV's gRPC
//! contract. A running model is the server's own inference unit ([`crate::inference::Hosted`]): the same
//! decoding-free detection, threshold, bounded queue and worker threads, so the agent's answer for an image is
//! the server's.

use super::bitmap;
use super::package::Manifest;
use super::proto::edge_agent_server::EdgeAgent;
use super::proto::*;
use super::store::{self, Installed};
use crate::engine::{Backbone, Detection, Model};
use crate::inference::{DetectError, Hosted, Input};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

/// How models run on this agent.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// The installed components' folder.
    pub root: PathBuf,
    /// Detection workers per running model.
    pub units: usize,
    /// Requests queued per worker before `RESOURCE_EXHAUSTED`.
    pub queue_per_unit: usize,
}

struct Slot {
    installed: Installed,
    status: ModelStatus,
    message: String,
    running: Option<Arc<Hosted>>,
}

/// The agent's state: every installed component and its model when running.
pub struct Agent {
    options: AgentOptions,
    backbone: Arc<Backbone>,
    slots: Mutex<BTreeMap<String, Slot>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Agent {
    pub fn new(options: AgentOptions, backbone: Arc<Backbone>) -> Arc<Agent> {
        let agent = Arc::new(Agent { options, backbone, slots: Mutex::new(BTreeMap::new()) });
        agent.refresh();
        agent
    }

    /// Picks up components installed, replaced or removed on disk since the last look. A running (or
    /// starting) model keeps the package it was started from until it is stopped.
    pub fn refresh(&self) {
        let on_disk = store::list(&self.options.root);
        let mut slots = lock(&self.slots);
        let names: Vec<String> = on_disk.iter().map(|i| i.manifest.component_name.clone()).collect();
        slots.retain(|name, s| names.contains(name) || s.status != ModelStatus::Stopped);
        for i in on_disk {
            let name = i.manifest.component_name.clone();
            match slots.get_mut(&name) {
                Some(s) if matches!(s.status, ModelStatus::Stopped | ModelStatus::Failed) => s.installed = i,
                Some(_) => {}
                None => {
                    slots.insert(name, Slot { installed: i, status: ModelStatus::Stopped, message: "Installed.".into(), running: None });
                }
            }
        }
    }

    /// Starts every component installed to start on boot.
    pub fn start_on_boot(self: &Arc<Self>) {
        let boot: Vec<String> =
            lock(&self.slots).iter().filter(|(_, s)| s.installed.settings.start_on_boot).map(|(n, _)| n.clone()).collect();
        for name in boot {
            if let Err(e) = self.start(&name) {
                tracing::warn!(component = %name, error = %e.message(), "could not start a model on boot");
            }
        }
    }

    fn status_of(&self, name: &str) -> Result<(ModelStatus, String, Manifest), Status> {
        self.refresh();
        let slots = lock(&self.slots);
        let s = slots.get(name).ok_or_else(|| not_found(name))?;
        Ok((s.status, s.message.clone(), s.installed.manifest.clone()))
    }

    /// StartModel: `STARTING` at once; a blocking thread loads, checks and warms the model, then `RUNNING` (or
    /// `FAILED` with the reason).
    pub fn start(self: &Arc<Self>, name: &str) -> Result<ModelStatus, Status> {
        check_name(name)?;
        self.refresh();
        let installed = {
            let mut slots = lock(&self.slots);
            let s = slots.get_mut(name).ok_or_else(|| not_found(name))?;
            if !matches!(s.status, ModelStatus::Stopped | ModelStatus::Failed) {
                return Err(Status::failed_precondition(format!(
                    "Model {name} is {}; only a STOPPED or FAILED model can be started.",
                    s.status.as_str_name()
                )));
            }
            s.status = ModelStatus::Starting;
            s.message = "Loading the model.".into();
            s.installed.clone()
        };
        let agent = self.clone();
        let name = name.to_string();
        std::thread::Builder::new()
            .name("vigil-edge-start".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let outcome = agent.load(&installed);
                let mut slots = lock(&agent.slots);
                let Some(s) = slots.get_mut(&name) else { return };
                match outcome {
                    Ok(h) => {
                        s.status = ModelStatus::Running;
                        s.message = "Running.".into();
                        s.running = Some(h);
                        tracing::info!(component = %name, ms = started.elapsed().as_millis() as u64, "model running");
                    }
                    Err(e) => {
                        tracing::warn!(component = %name, error = %e, "model failed to start");
                        s.status = ModelStatus::Failed;
                        s.message = e;
                    }
                }
            })
            .map_err(|e| Status::resource_exhausted(format!("no thread to load the model: {e}")))?;
        Ok(ModelStatus::Starting)
    }

    /// Loads a component's model file (checked against its SHA-256 again), checks it against the backbone and
    /// warms it up at its input size.
    fn load(&self, i: &Installed) -> Result<Arc<Hosted>, String> {
        let bytes = store::model_bytes(i)?;
        let model = Model::from_bytes(&bytes).map_err(|e| format!("The model file is unusable: {e}"))?;
        drop(bytes);
        model.check_backbone(&self.backbone).map_err(|e| e.to_string())?;
        let (w, h) = model.input_size();
        self.backbone.warm_up(w, h, 1).map_err(|e| format!("warming up: {e}"))?;
        let m = &i.manifest;
        Ok(Hosted::start(
            (&m.component_name, &m.project_name, m.model_version),
            Arc::new(model),
            self.backbone.clone(),
            m.threshold,
            1,
            self.options.units,
            self.options.queue_per_unit,
        ))
    }

    /// StopModel: synchronous; queued detections finish first.
    pub fn stop(&self, name: &str) -> Result<ModelStatus, Status> {
        check_name(name)?;
        let mut slots = lock(&self.slots);
        let s = slots.get_mut(name).ok_or_else(|| not_found(name))?;
        if s.status != ModelStatus::Running {
            return Err(Status::failed_precondition(format!(
                "Model {name} is {}; only a RUNNING model can be stopped.",
                s.status.as_str_name()
            )));
        }
        s.running = None;
        s.status = ModelStatus::Stopped;
        s.message = "Stopped.".into();
        Ok(ModelStatus::Stopped)
    }

    /// A running model's inference unit, or why there is none (an unknown name first looks at the disk again).
    pub fn running(&self, name: &str) -> Result<Arc<Hosted>, Status> {
        check_name(name)?;
        if !lock(&self.slots).contains_key(name) {
            self.refresh();
        }
        let slots = lock(&self.slots);
        let s = slots.get(name).ok_or_else(|| not_found(name))?;
        match (&s.running, s.status) {
            (Some(h), ModelStatus::Running) => Ok(h.clone()),
            _ => Err(Status::failed_precondition(format!(
                "Model {name} is {}; start it (StartModel) and wait for RUNNING.",
                s.status.as_str_name()
            ))),
        }
    }

    fn metadata(&self) -> Vec<ModelMetadata> {
        self.refresh();
        lock(&self.slots)
            .iter()
            .map(|(name, s)| ModelMetadata {
                model_component: name.clone(),
                lookout_vision_model_arn: s.installed.manifest.model_arn.clone(),
                status: s.status as i32,
                status_message: s.message.clone(),
            })
            .collect()
    }
}

async fn detect_on(hosted: &Hosted, name: &str, image: image::RgbImage) -> Result<Detection, Status> {
    hosted.detect_input(Input::Rgb(image), false).await.map_err(|e| match e {
        DetectError::Invalid(m) => Status::invalid_argument(m),
        DetectError::Throttled => Status::resource_exhausted(format!(
            "Model {name} cannot keep up: its queue is full. Retry shortly, or run the agent with more units."
        )),
        DetectError::NotHosted | DetectError::NotTrained { .. } => Status::failed_precondition(format!("Model {name} is not running.")),
        DetectError::Internal(m) => Status::internal(m),
    })
}

fn not_found(name: &str) -> Status {
    Status::not_found(format!("No model component {name} is installed on this agent."))
}

fn check_name(name: &str) -> Result<(), Status> {
    if super::package::valid_component_name(name) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!("{name:?} is not a model component name (1–128 of a-z A-Z 0-9 - _ .).")))
    }
}

/// The gRPC service over an [`Agent`].
#[derive(Clone)]
pub struct Service(pub Arc<Agent>);

#[tonic::async_trait]
impl EdgeAgent for Service {
    async fn detect_anomalies(&self, request: Request<DetectAnomaliesRequest>) -> Result<Response<DetectAnomaliesResponse>, Status> {
        let r = request.into_inner();
        let hosted = self.0.running(&r.model_component)?;
        let bitmap = r.bitmap;
        let image = tokio::task::spawn_blocking(move || bitmap::read(bitmap)).await.map_err(|e| Status::internal(e.to_string()))??;
        let d = detect_on(&hosted, &r.model_component, image).await?;
        let into = r.anomaly_mask_params.and_then(|p| p.shared_memory_handle);
        let result = tokio::task::spawn_blocking(move || answer(d, into.as_ref())).await.map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(DetectAnomaliesResponse { detect_anomaly_result: Some(result) }))
    }

    async fn start_model(&self, request: Request<StartModelRequest>) -> Result<Response<StartModelResponse>, Status> {
        let status = self.0.start(&request.into_inner().model_component)?;
        Ok(Response::new(StartModelResponse { status: status as i32 }))
    }

    async fn stop_model(&self, request: Request<StopModelRequest>) -> Result<Response<StopModelResponse>, Status> {
        let status = self.0.stop(&request.into_inner().model_component)?;
        Ok(Response::new(StopModelResponse { status: status as i32 }))
    }

    async fn list_models(&self, _request: Request<ListModelsRequest>) -> Result<Response<ListModelsResponse>, Status> {
        Ok(Response::new(ListModelsResponse { models: self.0.metadata() }))
    }

    async fn describe_model(&self, request: Request<DescribeModelRequest>) -> Result<Response<DescribeModelResponse>, Status> {
        let name = request.into_inner().model_component;
        check_name(&name)?;
        let (status, message, manifest) = self.0.status_of(&name)?;
        Ok(Response::new(DescribeModelResponse {
            model_description: Some(ModelDescription {
                model_component: name,
                lookout_vision_model_arn: manifest.model_arn,
                status: status as i32,
                status_message: message,
            }),
        }))
    }
}

/// LFV's result from a detection: the verdict, and for segmentation models the anomaly types and the mask
/// (the server's PNG mask decoded to RGB888: the same pixels). Blocking.
fn answer(d: Detection, mask_into: Option<&SharedMemoryHandle>) -> Result<DetectAnomalyResult, Status> {
    let anomalies = d
        .anomalies
        .unwrap_or_default()
        .into_iter()
        .map(|a| Anomaly {
            name: a.name,
            pixel_anomaly: Some(PixelAnomaly { total_percentage_area: a.pixel_anomaly.total_percentage_area, hex_color: a.pixel_anomaly.color }),
        })
        .collect();
    let anomaly_mask = match d.anomaly_mask {
        Some(png) => {
            let rgb = image::load_from_memory(&png).map_err(|e| Status::internal(format!("the mask could not be read: {e}")))?.to_rgb8();
            Some(bitmap::mask(rgb, mask_into)?)
        }
        None => None,
    };
    Ok(DetectAnomalyResult { is_anomalous: d.is_anomalous, confidence: d.confidence, anomaly_mask, anomalies })
}
