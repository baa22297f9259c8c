//! Trial detections and batch runs: a model version run over many images as a background job.
//!
//! A **trial** (LFV's console-only loop) runs a trained model version — hosted or not — over up to
//! [`MAX_TRIAL_IMAGES`] images from a dataset of the project, an S3 prefix (the server's S3 connection) or an
//! upload, and keeps one row per image: the verdict, the confidence, the heat map and, for segmentation models,
//! the mask. The user verifies each verdict as correct or incorrect, then adds the verified images to a dataset
//! (label = the verdict, flipped where it was wrong) and trains again.
//!
//! A **batch** (beyond LFV) sends every image of a dataset of the project, an upload from the console, an S3
//! prefix or a server folder (under `VIGIL_IMPORT_ROOT`) through a *hosted* model's inference units, and writes
//! one LFV `DetectAnomalyResult` per image as JSON lines, with the masks as PNG files, to an S3 prefix or to a zip
//! file the console and the API offer for download. A batch over a dataset or an upload also keeps one row per
//! image (its images are in the blob store already), so the console shows its results as a trial's.
//!
//! Both are [`crate::jobs::Job`]s on their own lane, so they never hold up training or imports, and both are
//! safe to run again after a crash: a trial continues with the images not yet done, a batch starts over.
//! Requests reach this module through the Vigil REST extension (`http::trials`) and the console
//! (`console::trials`); the checks live here once.


mod batch;
mod images;
mod ops;
mod records;
mod run;
mod verify;

pub use batch::run_batch;
pub use images::{anomaly_areas, heat_png};
pub use ops::{
    append_batch_uploads, append_uploads, cancel, create_batch, create_trial, create_upload_batch, delete, remove_orphan_downloads, results_file,
    BATCH_SOURCES,
};
pub use records::*;
pub use run::run_trial;
pub use verify::{add_to_dataset, set_verdicts, verified_label};
