//! Storing what an import fetched: an image is decoded first (proving it usable), a mask is checked against
//! its line's colour map (or converted to one), and only then is either written to the blob store.

use crate::blobs::Blobs;
use crate::datasets::manifest::MaskColor;
use crate::datasets::mask::{binary_to_lfv, check_mask};
use crate::datasets::types::BlobInfo;
use crate::engine::image_io;

/// Decodes an image (proving it is usable) and stores it. Blocking.
pub fn store_image(blobs: &Blobs, bytes: Vec<u8>) -> Result<BlobInfo, String> {
    let img = image_io::decode_rgb(&bytes).map_err(|e| e.to_string())?;
    let content_type = if bytes.starts_with(b"\x89PNG") { "image/png" } else { "image/jpeg" };
    let hash = blobs.put(&bytes).map_err(|e| {
        tracing::error!(error = %e, "blob store write failed");
        "the image could not be stored".to_string()
    })?;
    Ok(BlobInfo {
        hash,
        size: bytes.len() as i64,
        content_type: content_type.into(),
        width: img.width() as i64,
        height: img.height() as i64,
    })
}

/// Checks a mask against its line's colour map and stores it; with `binary` (and a class in the map), the
/// white-on-black mask is converted to an LFV mask in the first class's colour instead. Blocking.
pub(super) fn store_mask(blobs: &Blobs, bytes: Vec<u8>, w: u32, h: u32, classes: &[MaskColor], binary: bool) -> Result<BlobInfo, String> {
    // A converted mask is valid by construction; any other is checked against its map.
    let bytes = match (binary, classes.first()) {
        (true, Some(c)) => binary_to_lfv(&bytes, w, h, c.color)?,
        _ => {
            check_mask(&bytes, w, h, classes)?;
            bytes
        }
    };
    let hash = blobs.put(&bytes).map_err(|_| "the mask could not be stored".to_string())?;
    Ok(BlobInfo { hash, size: bytes.len() as i64, content_type: "image/png".into(), width: w as i64, height: h as i64 })
}
