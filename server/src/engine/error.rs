//! The engine's error type and `Result` (re-exported as `engine::Error` and `engine::Result`).

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("{0}")]
    Image(#[from] super::image_io::ImageError),
    #[error("shape: {0}")]
    Shape(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// Unusable training or evaluation input (too few images, a bad label colour, an undecodable file).
    #[error("{0}")]
    Input(String),
    /// A model file that cannot be read.
    #[error("model file: {0}")]
    Artifact(String),
    /// The model was trained with another backbone file than the one loaded (SHA-256 of each).
    #[error("the model was trained with backbone file {model}, but the loaded backbone is {loaded}")]
    BackboneMismatch { model: String, loaded: String },
}

pub type Result<T> = std::result::Result<T, Error>;
