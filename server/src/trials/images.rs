//! A detection as pictures and areas: the heat map as a transparent PNG and the anomaly labels a segmentation
//! model found, for trials and the console's try.

use crate::engine;

/// The heat map as a PNG: transparent wherever the image looks like the normal images (up to 0.6 of a normal
/// image's most unusual spot), then towards opaque red at twice that spot, so only what stands out is coloured.
pub fn heat_png(d: &engine::Detection) -> Vec<u8> {
    let g = d.heat_map_image();
    // `heat_map_image` maps 0–2× a normal image's peak to 0–255.
    const FLOOR: u16 = 77;
    let img = image::RgbaImage::from_fn(g.width(), g.height(), |x, y| {
        let v = g.get_pixel(x, y).0[0] as u16;
        let alpha = (v.saturating_sub(FLOOR) * 255 / (255 - FLOOR)).min(255) as u8;
        image::Rgba([255, ((255 - v) / 3) as u8, 0, alpha])
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
        assert_eq!(alpha[1], 0, "half a normal image's peak: transparent");
        assert!(alpha[2] > 40 && alpha[2] < 128, "a normal image's peak: faint ({})", alpha[2]);
        assert_eq!(alpha[3], 255, "twice the peak: opaque");
    }
}
