//! Checking anomaly masks against their colour maps. A mask is a PNG the size of its image; background is
//! white (LFV's convention), black or transparent; every other pixel should carry one of the map's colours.
//! Imported masks may have anti-aliased edges: a pixel close to a class colour counts as that class. Masks
//! painted in the console are exact, and checked exactly.

use super::manifest::{hex_color, MaskColor};
use image::ImageFormat;

/// Per class, the number of pixels of that colour.
pub type Census = Vec<(String, u64)>;

/// Largest colour distance (sum of absolute channel differences) still counted as a class colour.
const TOLERANCE: i32 = 48;
/// Share of the pixels that may have an unknown colour before the mask is refused.
const MAX_UNKNOWN: f64 = 0.01;

/// Decodes a mask PNG (within the image size limits) that must be `width`×`height`.
fn decode_mask(bytes: &[u8], width: u32, height: u32) -> Result<image::RgbaImage, String> {
    if image::guess_format(bytes).ok() != Some(ImageFormat::Png) {
        return Err("the mask is not a PNG image".into());
    }
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(crate::engine::image_io::MAX_SIDE);
    limits.max_image_height = Some(crate::engine::image_io::MAX_SIDE);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| format!("the mask could not be decoded: {e}"))?.to_rgba8();
    if img.width() != width || img.height() != height {
        return Err(format!("the mask is {}×{} px but its image is {width}×{height} px", img.width(), img.height()));
    }
    Ok(img)
}

pub fn check_mask(bytes: &[u8], width: u32, height: u32, classes: &[MaskColor]) -> Result<Census, String> {
    let img = decode_mask(bytes, width, height)?;
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

/// Turns a painted RGBA mask (transparent background, every painted pixel opaque and exactly one class
/// colour, as the console's canvas writes it) into LFV's convention: class colours on white, with the
/// classes it uses and their pixel counts (in `classes`' order, unused ones left out). Nothing is guessed: a
/// half-transparent pixel or a colour that is not a class colour is refused with a message naming it, so a
/// stale or anti-aliased colour can never be saved under another label.
pub fn normalize_painted(bytes: &[u8], classes: &[MaskColor]) -> Result<(image::RgbImage, Census), String> {
    if classes.is_empty() {
        return Err("a mask needs at least one anomaly label".into());
    }
    // The same size limits as images, checked on the header before anything is allocated (a PNG bomb).
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(crate::engine::image_io::MAX_SIDE);
    limits.max_image_height = Some(crate::engine::image_io::MAX_SIDE);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| format!("the painted mask is not a PNG image: {e}"))?.to_rgba8();
    let mut out = image::RgbImage::from_pixel(img.width(), img.height(), image::Rgb([255, 255, 255]));
    let mut counts = vec![0u64; classes.len()];
    let (mut unknown, mut first_unknown) = (0u64, None);
    for (x, y, p) in img.enumerate_pixels() {
        let [r, g, b, a] = p.0;
        if a == 0 {
            continue;
        }
        match classes.iter().position(|c| c.color == [r, g, b]).filter(|_| a == 255) {
            Some(i) => {
                counts[i] += 1;
                out.put_pixel(x, y, image::Rgb(classes[i].color));
            }
            None => {
                unknown += 1;
                first_unknown.get_or_insert((x, y, [r, g, b], a));
            }
        }
    }
    if let Some((x, y, rgb, a)) = first_unknown {
        let what = if a == 255 { format!("the colour {}", hex_color(rgb)) } else { format!("a half-transparent {}", hex_color(rgb)) };
        return Err(format!(
            "The mask was not saved: {unknown} pixel{} (the first at {x},{y}) {} {what}, which is not the colour of any \
             anomaly label of the project. Paint them again with a label.",
            if unknown == 1 { "" } else { "s" },
            if unknown == 1 { "has" } else { "have" },
        ));
    }
    let census = classes.iter().zip(counts).filter(|(_, n)| *n > 0).map(|(c, n)| (c.name.clone(), n)).collect();
    Ok((out, census))
}

/// Turns a single-class mask without a colour map (MVTec's ground truth, a folder's `masks/`: white or any
/// colour on black, or any colour on white) into an LFV mask: the class colour on white. The background is
/// the mask's most common colour (transparent pixels count as background); every other pixel is the defect.
pub fn binary_to_lfv(bytes: &[u8], width: u32, height: u32, color: [u8; 3]) -> Result<Vec<u8>, String> {
    let img = decode_mask(bytes, width, height)?;
    let mut counts: std::collections::HashMap<[u8; 3], u64> = std::collections::HashMap::new();
    for p in img.pixels().filter(|p| p.0[3] >= 128) {
        *counts.entry([p.0[0], p.0[1], p.0[2]]).or_default() += 1;
    }
    // Ties go to black, then to the smallest colour, so the choice never depends on hashing.
    let background = counts
        .iter()
        .max_by_key(|(c, n)| (**n, **c == [0, 0, 0], std::cmp::Reverse(**c)))
        .map(|(c, _)| *c)
        .unwrap_or([0, 0, 0]);
    let mut out = image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    let mut defect = 0u64;
    for (x, y, p) in img.enumerate_pixels() {
        if p.0[3] >= 128 && [p.0[0], p.0[1], p.0[2]] != background {
            out.put_pixel(x, y, image::Rgb(color));
            defect += 1;
        }
    }
    if defect == 0 {
        return Err("the mask marks no defect pixel".into());
    }
    let mut png = std::io::Cursor::new(Vec::new());
    out.write_to(&mut png, ImageFormat::Png).map_err(|e| e.to_string())?;
    Ok(png.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: image::RgbaImage) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn crack() -> Vec<MaskColor> {
        vec![MaskColor { name: "cracked".into(), color: [0x23, 0xA4, 0x36] }]
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
        let dent = MaskColor { name: "dent".into(), color: [0x1F, 0x77, 0xB4] };
        let classes = vec![crack()[0].clone(), dent];
        let mut img = image::RgbaImage::new(64, 64);
        img.put_pixel(1, 1, image::Rgba([0x23, 0xA4, 0x36, 255]));
        img.put_pixel(2, 1, image::Rgba([0x23, 0xA4, 0x36, 255]));
        img.put_pixel(3, 1, image::Rgba([0x1F, 0x77, 0xB4, 255]));
        img.put_pixel(4, 1, image::Rgba([9, 9, 9, 0])); // transparent: background whatever its colour
        let (out, census) = normalize_painted(&png(img.clone()), &classes).unwrap();
        assert_eq!(out.get_pixel(1, 1).0, [0x23, 0xA4, 0x36]);
        assert_eq!(out.get_pixel(3, 1).0, [0x1F, 0x77, 0xB4]);
        assert_eq!(out.get_pixel(4, 1).0, [255, 255, 255]);
        assert_eq!(census, vec![("cracked".to_string(), 2), ("dent".to_string(), 1)]);
        // Unused classes are left out of the census.
        let (_, census) = normalize_painted(&png(img.clone()), &classes[..1].iter().cloned().chain([MaskColor { name: "dent".into(), color: [0x1F, 0x77, 0xB4] }, MaskColor { name: "spare".into(), color: [1, 2, 3] }]).collect::<Vec<_>>()).unwrap();
        assert_eq!(census.len(), 2);
        // A colour close to a class colour, or a soft edge of one, is refused rather than snapped.
        let mut near = img.clone();
        near.put_pixel(5, 1, image::Rgba([0x25, 0xA0, 0x38, 255]));
        let e = normalize_painted(&png(near), &classes).unwrap_err();
        assert!(e.contains("#25A038") && e.contains("1 pixel") && e.contains("5,1"), "{e}");
        let mut soft = img;
        soft.put_pixel(6, 2, image::Rgba([0x23, 0xA4, 0x36, 140]));
        assert!(normalize_painted(&png(soft), &classes).unwrap_err().contains("half-transparent"));
        assert!(normalize_painted(b"nope", &classes).is_err());
    }

    #[test]
    fn binary_masks_become_lfv_masks() {
        let red = [0xE4, 0x57, 0x2E];
        // MVTec style: grey-level, white defect on black.
        let mut grey = image::GrayImage::new(32, 16);
        for x in 4..8 {
            grey.put_pixel(x, 3, image::Luma([255]));
        }
        let mut bytes = std::io::Cursor::new(Vec::new());
        grey.write_to(&mut bytes, ImageFormat::Png).unwrap();
        let out = binary_to_lfv(&bytes.into_inner(), 32, 16, red).unwrap();
        let classes = vec![MaskColor { name: "scratch".into(), color: red }];
        assert_eq!(check_mask(&out, 32, 16, &classes).unwrap(), vec![("scratch".to_string(), 4)]);
        let img = image::load_from_memory(&out).unwrap().to_rgb8();
        assert_eq!(img.get_pixel(5, 3).0, red);
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
        // Any colour on white works too; an empty mask, a wrong size and a non-PNG are refused.
        let mut white = image::RgbaImage::from_pixel(8, 8, image::Rgba([255, 255, 255, 255]));
        white.put_pixel(1, 1, image::Rgba([10, 200, 10, 255]));
        let out = binary_to_lfv(&png(white.clone()), 8, 8, red).unwrap();
        assert_eq!(image::load_from_memory(&out).unwrap().to_rgb8().get_pixel(1, 1).0, red);
        assert!(binary_to_lfv(&png(white.clone()), 8, 9, red).unwrap_err().contains("8×8"));
        let blank = image::RgbaImage::from_pixel(8, 8, image::Rgba([0, 0, 0, 255]));
        assert!(binary_to_lfv(&png(blank), 8, 8, red).unwrap_err().contains("no defect"));
        assert!(binary_to_lfv(b"GIF89a", 8, 8, red).is_err());
    }

    #[test]
    fn refuses_wrong_masks() {
        let img = image::RgbaImage::from_pixel(64, 64, image::Rgba([200, 10, 10, 255]));
        assert!(check_mask(&png(img.clone()), 64, 64, &crack()).unwrap_err().contains("#C80A0A"));
        assert!(check_mask(&png(img), 64, 32, &crack()).unwrap_err().contains("64×64"));
        assert!(check_mask(b"not a png", 64, 64, &crack()).unwrap_err().contains("not a PNG"));
    }
}
