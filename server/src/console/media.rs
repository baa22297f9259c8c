//! `GET /media/{hash}`: images and masks from the blob store, and their cached thumbnails, for the console.

use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(serde::Deserialize)]
pub struct MediaQuery {
    thumb: Option<u8>,
}

/// Longest side of a gallery thumbnail.
const THUMB_SIDE: u32 = 320;

/// `GET /media/{hash}`: an image or mask from the blob store; `?thumb=2` gives a cached JPEG thumbnail at the
/// image's aspect (`?thumb=1`, what older pages asked for, too; the console moved to `2` so that browsers drop the
/// square thumbnails they cached as immutable under `1`).
/// Blobs are content-addressed, so responses never change and can be cached forever.
pub async fn get_media(State(state): State<AppState>, Path(hash): Path<String>, Query(q): Query<MediaQuery>) -> Response {
    // Checked before any path is built from it: 64 lowercase hex digits, nothing else.
    if !crate::security::is_blob_name(&hash) {
        return (StatusCode::NOT_FOUND, "no such image").into_response();
    }
    let blobs = state.blobs.clone();
    let thumbs = state.config.data_dir.join("thumbs");
    let thumb = matches!(q.thumb, Some(1 | 2));
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<(Vec<u8>, &'static str)> {
        if !thumb {
            let bytes = blobs.get(&hash)?;
            let ct = if bytes.starts_with(b"\x89PNG") { "image/png" } else { "image/jpeg" };
            return Ok((bytes, ct));
        }
        // `-a`: thumbnails that keep the image's aspect (older cached ones were stretched to a square).
        let cached = thumbs.join(format!("{hash}-a.jpg"));
        if let Ok(bytes) = std::fs::read(&cached) {
            return Ok((bytes, "image/jpeg"));
        }
        let bytes = blobs.get(&hash)?;
        let img = crate::engine::image_io::decode_rgb(&bytes)?;
        let scale = (THUMB_SIDE as f64 / img.width().max(img.height()).max(1) as f64).min(1.0);
        let (w, h) = (((img.width() as f64 * scale).round() as u32).max(1), ((img.height() as f64 * scale).round() as u32).max(1));
        let small = image::imageops::thumbnail(&img, w, h);
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(small).write_to(&mut out, image::ImageFormat::Jpeg)?;
        let out = out.into_inner();
        // A local cache only (rebuilt from the blob when missing): a failure to keep it costs nothing.
        let tmp = thumbs.join(format!("{hash}.{}.tmp", hex::encode(rand::random::<[u8; 4]>())));
        let kept = std::fs::create_dir_all(&thumbs).and_then(|_| std::fs::write(&tmp, &out)).and_then(|_| std::fs::rename(&tmp, &cached));
        if kept.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok((out, "image/jpeg"))
    })
    .await;
    match result {
        Ok(Ok((bytes, ct))) => (
            [(header::CONTENT_TYPE, ct), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")],
            bytes,
        )
            .into_response(),
        _ => (StatusCode::NOT_FOUND, "no such image").into_response(),
    }
}
