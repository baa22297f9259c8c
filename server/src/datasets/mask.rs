//! Checking anomaly masks against their colour maps. A mask is a PNG the size of its image; background is
//! white (LFV's convention), black or transparent; every other pixel should carry one of the map's colours.
//! Anti-aliased edges are tolerated: a pixel close to a class colour counts as that class.

use super::manifest::{hex_color, MaskClass};
use image::ImageFormat;

/// Per class, the number of pixels of that colour.
pub type Census = Vec<(String, u64)>;

/// Largest colour distance (sum of absolute channel differences) still counted as a class colour.
const TOLERANCE: i32 = 48;
/// Share of the pixels that may have an unknown colour before the mask is refused.
const MAX_UNKNOWN: f64 = 0.01;

pub fn check_mask(bytes: &[u8], width: u32, height: u32, classes: &[MaskClass]) -> Result<Census, String> {
    if image::guess_format(bytes).ok() != Some(ImageFormat::Png) {
        return Err("the mask is not a PNG image".into());
    }
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(4096);
    limits.max_image_height = Some(4096);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| format!("the mask could not be decoded: {e}"))?.to_rgba8();
    if img.width() != width || img.height() != height {
        return Err(format!(
            "the mask is {}×{} px but its image is {width}×{height} px",
            img.width(),
            img.height()
        ));
    }
    let mut counts = vec![0u64; classes.len()];
    let mut unknown = 0u64;
    let mut first_unknown = None;
    for p in img.pixels() {
        let [r, g, b, a] = p.0;
        if a < 128 || (r, g, b) == (255, 255, 255) || (r, g, b) == (0, 0, 0) {
            continue;
        }
        let nearest = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (i, (r as i32 - c.color[0] as i32).abs() + (g as i32 - c.color[1] as i32).abs() + (b as i32 - c.color[2] as i32).abs()))
            .min_by_key(|&(_, d)| d);
        match nearest {
            Some((i, d)) if d <= TOLERANCE => counts[i] += 1,
            _ => {
                unknown += 1;
                first_unknown.get_or_insert([r, g, b]);
            }
        }
    }
    let total = u64::from(width) * u64::from(height);
    if unknown as f64 > MAX_UNKNOWN * total as f64 {
        return Err(format!(
            "the mask has colours that are not in its colour map (e.g. {}, {unknown} px)",
            hex_color(first_unknown.unwrap_or_default())
        ));
    }
    Ok(classes.iter().zip(counts).map(|(c, n)| (c.name.clone(), n)).collect())
}

/// Turns a painted RGBA mask (transparent background, class colours painted, soft edges) into LFV's
/// convention: opaque class colours on white. A pixel at least half opaque takes the nearest class colour.
pub fn normalize_painted(bytes: &[u8], classes: &[MaskClass]) -> Result<image::RgbImage, String> {
    if classes.is_empty() {
        return Err("a mask needs at least one anomaly label".into());
    }
    let img = image::load_from_memory_with_format(bytes, ImageFormat::Png)
        .map_err(|e| format!("the painted mask is not a PNG image: {e}"))?
        .to_rgba8();
    let mut out = image::RgbImage::from_pixel(img.width(), img.height(), image::Rgb([255, 255, 255]));
    for (x, y, p) in img.enumerate_pixels() {
        let [r, g, b, a] = p.0;
        if a < 128 {
            continue;
        }
        let nearest = classes
            .iter()
            .min_by_key(|c| (r as i32 - c.color[0] as i32).abs() + (g as i32 - c.color[1] as i32).abs() + (b as i32 - c.color[2] as i32).abs());
        if let Some(c) = nearest {
            out.put_pixel(x, y, image::Rgb(c.color));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: image::RgbaImage) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn crack() -> Vec<MaskClass> {
        vec![MaskClass { name: "cracked".into(), color: [0x23, 0xA4, 0x36] }]
    }

    #[test]
    fn counts_class_pixels_on_any_background() {
        let mut img = image::RgbaImage::from_pixel(64, 64, image::Rgba([0, 0, 0, 255]));
        for x in 0..10 {
            img.put_pixel(x, 0, image::Rgba([0x23, 0xA4, 0x36, 255]));
            img.put_pixel(x, 1, image::Rgba([0x25, 0xA0, 0x38, 255])); // anti-aliased edge
            img.put_pixel(x, 2, image::Rgba([255, 255, 255, 255]));
            img.put_pixel(x, 3, image::Rgba([200, 10, 10, 0])); // transparent
        }
        assert_eq!(check_mask(&png(img), 64, 64, &crack()).unwrap(), vec![("cracked".to_string(), 20)]);
    }

    #[test]
    fn painted_masks_become_lfv_masks() {
        let mut img = image::RgbaImage::new(64, 64);
        img.put_pixel(1, 1, image::Rgba([0x23, 0xA4, 0x36, 255]));
        img.put_pixel(2, 1, image::Rgba([0x23, 0xA4, 0x36, 140])); // soft edge, kept
        img.put_pixel(3, 1, image::Rgba([0x23, 0xA4, 0x36, 60])); // faint edge, background
        let out = normalize_painted(&png(img), &crack()).unwrap();
        assert_eq!(out.get_pixel(1, 1).0, [0x23, 0xA4, 0x36]);
        assert_eq!(out.get_pixel(2, 1).0, [0x23, 0xA4, 0x36]);
        assert_eq!(out.get_pixel(3, 1).0, [255, 255, 255]);
        assert_eq!(out.get_pixel(0, 0).0, [255, 255, 255]);
        assert!(normalize_painted(b"nope", &crack()).is_err());
    }

    #[test]
    fn refuses_wrong_masks() {
        let img = image::RgbaImage::from_pixel(64, 64, image::Rgba([200, 10, 10, 255]));
        assert!(check_mask(&png(img.clone()), 64, 64, &crack()).unwrap_err().contains("#C80A0A"));
        assert!(check_mask(&png(img), 64, 32, &crack()).unwrap_err().contains("64×64"));
        assert!(check_mask(b"not a png", 64, 64, &crack()).unwrap_err().contains("not a PNG"));
    }
}
