//! The pretrained feature extractor: EfficientNet-Lite0 (Tan & Le, 2019, "EfficientNet: Rethinking Model
//! Scaling for Convolutional Neural Networks"; the Lite variant drops squeeze-and-excitation and uses ReLU6),
//! ImageNet weights, truncated after block 10 and frozen as TorchScript by `server/scripts/export_backbone.py`.
//! It returns two taps: stride 8 (40 channels) and stride 16 (112 channels).

use super::error::{Error, Result};
use image::RgbImage;
use sha2::Digest;
use std::path::Path;
use serde::{Deserialize, Serialize};
use tch::{CModule, IValue, Kind, Tensor};

/// How an image is resized to the model's input size. Recorded in the model, so a loaded model preprocesses
/// exactly as it was trained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// The `image` crate's triangle (bilinear, antialiased) filter on 8-bit pixels. Models trained before
    /// `torch_antialias` existed.
    #[default]
    Triangle,
    /// libtorch's antialiased bilinear interpolation (PIL's), on f32 pixels (computed by `resize`).
    TorchAntialias,
}

/// Identifies the backbone in model artifacts.
pub const BACKBONE_ID: &str = "efficientnet-lite0/imagenet/taps-s8b4-s16b10";
pub const S8_CHANNELS: i64 = 40;
pub const S16_CHANNELS: i64 = 112;

pub struct Backbone {
    module: CModule,
    /// SHA-256 of the TorchScript file, hex: recorded in every model trained with it and checked before a
    /// model scores anything, so a model never runs on weights other than its own.
    checksum: String,
}

/// The two feature maps of one batch.
pub struct Features {
    /// (B, 40, H/8, W/8)
    pub s8: Tensor,
    /// (B, 112, H/16, W/16)
    pub s16: Tensor,
}

impl Backbone {
    /// Loads the TorchScript file on the CPU, in evaluation mode.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Io {
                path: path.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "backbone file missing; run server/scripts/setup.sh to produce it",
                ),
            });
        }
        let bytes = std::fs::read(path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })?;
        let checksum = hex::encode(sha2::Sha256::digest(&bytes));
        let mut module = CModule::load_on_device(path, tch::Device::Cpu)?;
        module.set_eval();
        Ok(Backbone { module, checksum })
    }

    /// SHA-256 (hex) of the backbone file this was loaded from.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }

    /// Turns an RGB image into the backbone's input, `(1, 3, height, width)`, resized with bilinear filtering
    /// and normalised as the weights expect: `(x / 255 - 0.5) / 0.5`.
    pub fn preprocess(img: &RgbImage, width: u32, height: u32) -> Result<Tensor> {
        Self::preprocess_with(img, width, height, Resize::Triangle)
    }

    /// [`Backbone::preprocess`] with a chosen resize filter.
    pub fn preprocess_with(img: &RgbImage, width: u32, height: u32, resize: Resize) -> Result<Tensor> {
        if width % 32 != 0 || height % 32 != 0 || width == 0 || height == 0 {
            return Err(Error::Shape(format!("input size {width}×{height} must be non-zero multiples of 32")));
        }
        if img.width() == 0 || img.height() == 0 {
            return Err(Error::Shape("empty image".into()));
        }
        if resize == Resize::TorchAntialias {
            // libtorch's filter, computed from the 8-bit rows directly (see `resize`).
            let (iw, ih, ow, oh) = (img.width() as usize, img.height() as usize, width as usize, height as usize);
            let planes = super::resize::resize_normalize(img.as_raw(), iw, ih, ow, oh);
            return Ok(Tensor::f_from_slice(&planes)?.f_view([1, 3, height as i64, width as i64])?);
        }
        let resized;
        let img = if img.width() == width && img.height() == height {
            img
        } else {
            resized = image::imageops::resize(img, width, height, image::imageops::FilterType::Triangle);
            &resized
        };
        let t = Tensor::f_from_slice(img.as_raw())?
            .f_view([height as i64, width as i64, 3])?
            .f_permute([2, 0, 1])?
            .f_to_kind(Kind::Float)?
            .f_div_scalar(127.5)?
            .f_sub_scalar(1.0)?
            .f_unsqueeze(0)?;
        Ok(t)
    }

    /// `(B, 3, H, W) -> Features { s8: (B, 40, H/8, W/8), s16: (B, 112, H/16, W/16) }`.
    pub fn forward(&self, input: &Tensor) -> Result<Features> {
        let size = input.size();
        if size.len() != 4 || size[1] != 3 || size[2] % 32 != 0 || size[3] % 32 != 0 {
            return Err(Error::Shape(format!("backbone input must be (B, 3, H, W) with H, W multiples of 32; got {size:?}")));
        }
        let out = tch::no_grad(|| self.module.forward_is(&[IValue::Tensor(input.shallow_clone())]))?;
        match out {
            IValue::Tuple(mut items) if items.len() == 2 => {
                let s16 = items.pop();
                let s8 = items.pop();
                match (s8, s16) {
                    (Some(IValue::Tensor(s8)), Some(IValue::Tensor(s16))) => Ok(Features { s8, s16 }),
                    _ => Err(Error::Shape("backbone returned something other than two tensors".into())),
                }
            }
            _ => Err(Error::Shape("backbone returned something other than a pair of feature maps".into())),
        }
    }

    /// A few forward passes at a typical size: libtorch's first passes are much slower than later ones.
    pub fn warm_up(&self, width: u32, height: u32, passes: usize) -> Result<()> {
        let x = Tensor::f_zeros([1, 3, height as i64, width as i64], (Kind::Float, tch::Device::Cpu))?;
        for _ in 0..passes {
            self.forward(&x)?;
        }
        Ok(())
    }
}
