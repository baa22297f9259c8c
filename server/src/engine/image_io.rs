//! Decoding untrusted image bytes into RGB with hard limits: JPEG and PNG only, 64–4096 px a side (LFV's
//! rule), dimensions checked from the header before any pixel is decoded, EXIF orientation applied.

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use std::io::Cursor;

pub const MIN_SIDE: u32 = 64;
pub const MAX_SIDE: u32 = 4096;
/// Largest decoder allocation: a 4096² RGBA image at 16 bits per channel, with room to spare.
const MAX_ALLOC: u64 = 4096 * 4096 * 8 + (64 << 20);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the file is empty")]
    Empty,
    #[error("not a JPEG or PNG image")]
    UnsupportedFormat,
    #[error("the image is {width}×{height} px; each side must be from {MIN_SIDE} to {MAX_SIDE} px")]
    BadDimensions { width: u32, height: u32 },
    #[error("the image could not be decoded: {0}")]
    Corrupt(String),
}

/// Decodes JPEG or PNG bytes into 8-bit RGB, upright.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| ImageError::UnsupportedFormat)?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png) {
        return Err(ImageError::UnsupportedFormat);
    }
    if format == ImageFormat::Jpeg && !has_jpeg_end(bytes) {
        // The JPEG decoder pads a cut-off file with grey instead of failing; such an image must not be trained on.
        return Err(ImageError::Corrupt("the JPEG file is truncated (no end-of-image marker)".into()));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let (width, height) = reader.into_dimensions().map_err(|e| corrupt_or_size(e, bytes, format))?;
    check_side(width, height)?;

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| ImageError::Corrupt(e.to_string()))?;
    img.apply_orientation(orientation);
    Ok(img.to_rgb8())
}

/// Whether a JPEG's last scan is followed by an end-of-image marker (FF D9). Looking after the last
/// start-of-scan (FF DA) skips an EXIF thumbnail's own end marker; trailers some cameras append are allowed.
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(scan), Some(end)) => end > scan,
        _ => false,
    }
}

fn check_side(width: u32, height: u32) -> Result<(), ImageError> {
    let ok = |s: u32| (MIN_SIDE..=MAX_SIDE).contains(&s);
    if ok(width) && ok(height) {
        Ok(())
    } else {
        Err(ImageError::BadDimensions { width, height })
    }
}

/// A limits error on the header means the image is too large; say so with its size when we can read it.
fn corrupt_or_size(e: image::ImageError, bytes: &[u8], format: ImageFormat) -> ImageError {
    if let image::ImageError::Limits(_) = e {
        if let Ok((w, h)) = ImageReader::with_format(Cursor::new(bytes), format).into_dimensions() {
            return ImageError::BadDimensions { width: w, height: h };
        }
    }
    ImageError::Corrupt(e.to_string())
}

/// Largest side of a label mask. Masks may be tiny placeholders (LFV's `dummy_anomaly_mask.png` is 16×16).
pub const MAX_MASK_SIDE: u32 = 8192;

/// Decodes a label mask (PNG, or JPEG though lossy colours are discouraged) into RGBA, with the same
/// header-first size limits as images but no minimum side.
pub fn decode_mask(bytes: &[u8]) -> Result<image::RgbaImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| ImageError::UnsupportedFormat)?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png) {
        return Err(ImageError::UnsupportedFormat);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_MASK_SIDE);
    limits.max_image_height = Some(MAX_MASK_SIDE);
    limits.max_alloc = Some(MAX_ALLOC * 4);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => ImageError::BadDimensions { width: 0, height: 0 },
        e => ImageError::Corrupt(e.to_string()),
    })?;
    Ok(img.to_rgba8())
}

/// Width and height from the header only.
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| ImageError::UnsupportedFormat)?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png) {
        return Err(ImageError::UnsupportedFormat);
    }
    let (mut w, mut h) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    // EXIF rotation by 90° swaps the sides; decode_rgb applies it, so report what it will return.
    if format == ImageFormat::Jpeg {
        if let Ok(mut dec) = ImageReader::with_format(Cursor::new(bytes), format).into_decoder() {
            use image::metadata::Orientation::*;
            if matches!(dec.orientation(), Ok(Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH)) {
                std::mem::swap(&mut w, &mut h);
            }
        }
    }
    Ok((w, h))
}
