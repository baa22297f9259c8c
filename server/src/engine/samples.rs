//! What the engine trains and evaluates on: images and masks by source ([`ImageSource`], decoded only when
//! needed), labelled images ([`Sample`]), a segmentation project's anomaly types ([`AnomalyLabel`]) and the
//! training set ([`TrainSet`]) (all re-exported from `engine` and from `model`).

use super::error::{Error, Result};
use super::image_io;
use image::{RgbImage, RgbaImage};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// Where an image (or mask) comes from. Files and bytes are decoded only when needed, one at a time, so
/// training on many large images holds only their features in memory.
#[derive(Clone, Debug)]
pub enum ImageSource {
    Decoded(Arc<RgbImage>),
    File(PathBuf),
    Bytes(Arc<Vec<u8>>),
}

impl ImageSource {
    fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>> {
        match self {
            ImageSource::File(p) => std::fs::read(p)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| Error::Io { path: p.display().to_string(), source: e }),
            ImageSource::Bytes(b) => Ok(std::borrow::Cow::Borrowed(b.as_slice())),
            ImageSource::Decoded(_) => Err(Error::Shape("decoded image has no bytes".into())),
        }
    }

    fn describe(&self) -> String {
        match self {
            ImageSource::File(p) => p.display().to_string(),
            ImageSource::Bytes(_) => "image bytes".into(),
            ImageSource::Decoded(_) => "decoded image".into(),
        }
    }

    /// Decodes to upright 8-bit RGB (JPEG/PNG, 64–4096 px a side).
    pub fn load(&self) -> Result<RgbImage> {
        match self {
            ImageSource::Decoded(img) => Ok((**img).clone()),
            _ => image_io::decode_rgb(&self.bytes()?).map_err(|e| Error::Input(format!("{}: {e}", self.describe()))),
        }
    }

    /// Decodes a label mask to RGBA.
    pub fn load_mask(&self) -> Result<RgbaImage> {
        match self {
            ImageSource::Decoded(img) => Ok(image::DynamicImage::ImageRgb8((**img).clone()).to_rgba8()),
            _ => image_io::decode_mask(&self.bytes()?).map_err(|e| Error::Input(format!("{}: {e}", self.describe()))),
        }
    }

    /// `(width, height)` without decoding pixels where possible.
    pub fn dimensions(&self) -> Result<(u32, u32)> {
        match self {
            ImageSource::Decoded(img) => Ok(img.dimensions()),
            _ => image_io::dimensions(&self.bytes()?).map_err(|e| Error::Input(format!("{}: {e}", self.describe()))),
        }
    }
}

/// One labelled image.
#[derive(Clone, Debug)]
pub struct Sample {
    /// A name for reports (file name, source-ref, ...).
    pub id: String,
    pub image: ImageSource,
    /// `true` = anomaly, `false` = normal.
    pub anomalous: bool,
    /// Label mask in the labels' colours (LFV format), for anomalous images of segmentation projects.
    pub mask: Option<ImageSource>,
}

/// An anomaly type of a segmentation project. `name` should be alphanumeric (LFV's rule for `Anomalies.Name`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyLabel {
    pub name: String,
    /// `#RRGGBB`
    pub color: String,
}

/// What to train on.
#[derive(Clone, Debug, Default)]
pub struct TrainSet {
    pub train: Vec<Sample>,
    /// An explicit test set (LFV's "separate training and test datasets"); `None` = split automatically.
    pub test: Option<Vec<Sample>>,
    /// Anomaly labels with their mask colours, for segmentation; empty for classification projects.
    pub labels: Vec<AnomalyLabel>,
}
