//! A detection as pictures and areas: the heat map as a transparent PNG and the anomaly labels a segmentation
//! model found, for trials and the console's try.

use crate::engine;
use app::api::models::heat_colour;

/// The heat map as a PNG in the console's one colour scale (`app::api::models::HEAT_SCALE`, whose legend the
/// console draws): transparent where the image looks normal, then blue, yellow at a normal image's peak, red at
/// twice it. Trials, tries and the model page's per-image view all use it.
pub fn heat_png(d: &engine::Detection) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(d.heat_width, d.heat_height, |x, y| {
        image::Rgba(heat_colour(d.heat_map.get((y * d.heat_width + x) as usize).copied().unwrap_or(0.0)))
    });
    let mut out = Vec::new();
    let _ = image::DynamicImage::ImageRgba8(img).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png);
    out
}

/// The anomaly types a segmentation model found, without the background: `(name, colour, area fraction)`.
pub fn anomaly_areas(d: &engine::Detection) -> Vec<(String, String, f64)> {
    d.anomalies
        .iter()
        .flatten()
        .skip(1)
        .map(|a| (a.name.clone(), a.pixel_anomaly.color.clone(), a.pixel_anomaly.total_percentage_area as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_maps_colour_only_what_stands_out() {
        let d = engine::Detection {
            is_anomalous: true,
            confidence: 0.9,
            score: 2.0,
            anomalies: None,
            anomaly_mask: None,
            heat_map: vec![0.0, 0.5, 1.0, 2.0],
            heat_width: 4,
            heat_height: 1,
        };
        let png = image::load_from_memory(&heat_png(&d)).unwrap().to_rgba8();
        let alpha: Vec<u8> = png.pixels().map(|p| p.0[3]).collect();
        assert_eq!(alpha[0], 0, "nothing unusual: transparent");
        assert_eq!(alpha[1], 64, "half a normal image's peak: faint");
        assert_eq!(alpha[2], 179, "a normal image's peak: clear");
        assert_eq!(alpha[3], 255, "twice the peak: opaque");
        assert_eq!(&png.get_pixel(3, 0).0[..3], &[165, 0, 38], "twice the peak: the scale's red");
    }
}
