//! The anomaly engine: libtorch through `tch`, with no knowledge of HTTP, databases or async.
//! Every forward pass runs under `no_grad` on the caller's (blocking) thread.
//!
//! Modules follow the literature: [`backbone`] (pretrained feature extractor) and [`resize`] (its input),
//! [`embedding`] (patch features), [`patchcore`] (memory bank, nearest-neighbour scores), [`pca`] (its search
//! space, and the sampling of patch rows), [`coreset`] (greedy k-center), [`gaussian`] (the Gaussian score),
//! [`anomaly_map`] (upsampling and Gaussian smoothing), [`segmentation`] (supervised heads and label masks),
//! [`threshold`] and [`metrics`], [`artifact`] (the file format), [`header`] (a model's header), [`samples`]
//! (what training takes), [`scores`] (the image score's parts: pooled features, supervised logit, blend),
//! [`input_size`] (a new model's input size), [`model`] (the public types and detection), `evaluate`
//! (evaluation), `model_file` (a model's file), [`train`] (training) and `folds` (its features and out-of-fold
//! scores); `error` holds [`Error`] and [`Result`], `tensors` small tensor conversions.
//!
//! Dependencies point one way: `image_io` and `error` at the bottom; then the building blocks (`resize`,
//! `backbone`, `embedding`, `pca`, `patchcore`, `coreset`, `gaussian`, `segmentation`, ...); then `header`,
//! `samples`, `scores` and `input_size`; then `model`; `evaluate` and `model_file`; `folds`; `train` on top.
//! This file declares and re-exports them, and holds [`set_threads`].
//!
//! The API the server calls (all synchronous, CPU-bound: run it on blocking threads, after [`set_threads`]):
//!
//! ```ignore
//! let backbone = Backbone::load(path)?;                        // once per process; then warm_up
//! let set = TrainSet { train: samples, test: None, labels };   // Sample { id, image, anomalous, mask }
//! let (model, evaluation) = train(&backbone, &set, &TrainOptions::default(), &mut |p: Progress| ...)?;
//! model.save(path)?;                                            // or model.to_bytes()
//! let model = Model::load(path)?;                               // or Model::from_bytes(&bytes)
//! model.check_backbone(&backbone)?;                             // refuses a backbone file it was not trained with
//! let detection = model.detect(&backbone, &image_io::decode_rgb(&bytes)?)?;   // with the heat map
//! let fast = model.detect_with(&backbone, &img, DetectOptions { heat_map: false })?; // LFV's DetectAnomalies
//! let ev = model.evaluate(&backbone, &test_samples, &mut |done, total| ...)?;
//! ```

pub mod anomaly_map;
pub mod artifact;
pub mod backbone;
pub mod coreset;
pub mod embedding;
mod error;
mod evaluate;
pub mod folds;
pub mod gaussian;
pub mod header;
pub mod image_io;
pub mod input_size;
pub mod memory;
pub mod metrics;
pub mod mirror;
pub mod model;
mod model_file;
pub mod options;
pub mod patchcore;
pub mod pca;
pub mod resize;
pub mod samples;
pub mod scores;
pub mod segmentation;
pub mod size_search;
mod tensors;
pub mod threshold;
pub mod train;

pub use backbone::{Backbone, Features};
pub use error::{Error, Result};
pub use header::ModelHeader;
pub use model::{Anomaly, DetectOptions, Detection, Evaluation, ImageResult, LabelMetrics, Model, PixelAnomaly};
pub use samples::{AnomalyLabel, ImageSource, Sample, TrainSet};
pub use options::{Progress, Stage, TrainOptions};
pub use memory::release_memory;
pub use train::train;

/// Sets libtorch's intra-op thread count; call once per process, before the first forward pass. Two
/// processes (or two threads each running libtorch) with every core each slow each other down badly; give
/// each user of libtorch its share of the cores.
pub fn set_threads(n: usize) {
    tch::set_num_threads(n.max(1) as i32);
}
