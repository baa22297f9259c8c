//! The anomaly engine: libtorch through `tch`, with no knowledge of HTTP, databases or async.
//! Every forward pass runs under `no_grad` on the caller's (blocking) thread.

pub mod backbone;
pub mod image_io;

pub use backbone::{Backbone, Features};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{0}")]
    Image(#[from] image_io::ImageError),
    #[error("shape: {0}")]
    Shape(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Sets libtorch's intra-op thread count; call once per process, before the first forward pass.
pub fn set_threads(n: usize) {
    tch::set_num_threads(n.max(1) as i32);
}
