//! Synthetic hard cases for `vigil bench`, generated on the fly (seeded) because public data sets cannot be
//! downloaded on the development machines: procedural textures (a fixed "material" of oriented waves and grain,
//! with a new phase, offset and noise for every tile, and every tile its own size) with small defects — thin
//! scratches, spots of foreign texture, stains — a few pixels wide, with white-on-black ground-truth masks.
//!
//! - `synthetic-texture`: MVTec AD layout (`train/good` only normal images, `test/<defect>`,
//!   `ground_truth/<defect>/*_mask.png`): PatchCore alone, the normal-quantile threshold, pixel AUROC of a
//!   classification model.
//! - `synthetic-labelled`: `train/` and `test/`, each with `normal/` and `anomaly/` (20 labelled anomalies in
//!   training), larger tiles and smaller defects: the supervised blend and small defects on large images.

use anyhow::{Context, Result};
use image::{GrayImage, Luma, Rgb, RgbImage};
use std::path::Path;
use vigil::engine::coreset::SplitMix64;

struct Material {
    waves: Vec<(f64, f64, f64)>, // (fx, fy, amplitude)
    grain: f64,
    tint: [f64; 3],
}

fn material(seed: u64) -> Material {
    let mut r = SplitMix64::new(seed);
    let waves = (0..5)
        .map(|_| {
            let angle = r.next_f64() * std::f64::consts::PI;
            let freq = 0.05 + r.next_f64() * 0.25;
            (freq * angle.cos(), freq * angle.sin(), 10.0 + r.next_f64() * 20.0)
        })
        .collect();
    Material { waves, grain: 8.0, tint: [0.9 + 0.2 * r.next_f64(), 0.8 + 0.2 * r.next_f64(), 0.6 + 0.2 * r.next_f64()] }
}

fn tile(m: &Material, w: u32, h: u32, r: &mut SplitMix64) -> RgbImage {
    let phases: Vec<f64> = m.waves.iter().map(|_| r.next_f64() * std::f64::consts::TAU).collect();
    RgbImage::from_fn(w, h, |x, y| {
        let mut v = 128.0;
        for ((fx, fy, a), p) in m.waves.iter().zip(&phases) {
            v += a * (fx * x as f64 + fy * y as f64 + p).sin();
        }
        v += m.grain * r.normal();
        Rgb([0, 1, 2].map(|c| (v * m.tint[c]).clamp(0.0, 255.0) as u8))
    })
}

/// Paints one defect of `kind` (0 scratch, 1 foreign spot, 2 stain) of about `size` px; returns its mask.
fn defect(img: &mut RgbImage, kind: usize, size: f64, r: &mut SplitMix64) -> GrayImage {
    let (w, h) = img.dimensions();
    let mut mask = GrayImage::new(w, h);
    let margin = (size * 2.0) as u32 + 4;
    let cx = margin as f64 + r.next_f64() * (w - 2 * margin) as f64;
    let cy = margin as f64 + r.next_f64() * (h - 2 * margin) as f64;
    let angle = r.next_f64() * std::f64::consts::PI;
    let shift = if r.next_f64() < 0.5 { -45.0 } else { 45.0 };
    let foreign = material(r.next_u64());
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let hit = match kind {
                0 => {
                    // A thin line: ~1.5 px wide, 3·size long.
                    let along = dx * angle.cos() + dy * angle.sin();
                    let across = -dx * angle.sin() + dy * angle.cos();
                    along.abs() <= 1.5 * size && across.abs() <= 0.9
                }
                _ => dx * dx + dy * dy <= size * size,
            };
            if !hit {
                continue;
            }
            let p = img.get_pixel_mut(x, y);
            match kind {
                0 => p.0 = p.0.map(|v| (v as f64 + shift).clamp(0.0, 255.0) as u8),
                1 => {
                    let mut v = 128.0;
                    for (fx, fy, a) in &foreign.waves {
                        v += a * (fx * x as f64 * 2.0 + fy * y as f64 * 2.0).sin();
                    }
                    p.0 = [0, 1, 2].map(|c| (v * m_tint(c)).clamp(0.0, 255.0) as u8);
                }
                _ => p.0[0] = (p.0[0] as f64 + 35.0).clamp(0.0, 255.0) as u8,
            }
            mask.put_pixel(x, y, Luma([255]));
        }
    }
    mask
}

fn m_tint(c: usize) -> f64 {
    [1.0, 0.95, 0.85][c]
}

const DEFECTS: [&str; 3] = ["scratch", "spot", "stain"];

fn save(img: &RgbImage, path: &Path) -> Result<()> {
    img.save(path).with_context(|| format!("writing {}", path.display()))
}

/// Writes both synthetic sets under `root` (skipping one that is already there).
pub fn generate(root: &Path) -> Result<()> {
    // Textures, normal-only training, MVTec layout, each tile its own size around 320 px.
    let dir = root.join("synthetic-texture");
    if !dir.join("train/good").is_dir() {
        let m = material(11);
        let mut r = SplitMix64::new(12);
        let size = |r: &mut SplitMix64| (300 + (r.next_f64() * 60.0) as u32, 280 + (r.next_f64() * 60.0) as u32);
        std::fs::create_dir_all(dir.join("train/good"))?;
        std::fs::create_dir_all(dir.join("test/good"))?;
        for i in 0..60 {
            let (w, h) = size(&mut r);
            save(&tile(&m, w, h, &mut r), &dir.join(format!("train/good/{i:03}.png")))?;
        }
        for i in 0..24 {
            let (w, h) = size(&mut r);
            save(&tile(&m, w, h, &mut r), &dir.join(format!("test/good/{i:03}.png")))?;
        }
        for (k, name) in DEFECTS.iter().enumerate() {
            std::fs::create_dir_all(dir.join("test").join(name))?;
            std::fs::create_dir_all(dir.join("ground_truth").join(name))?;
            for i in 0..8 {
                let (w, h) = size(&mut r);
                let mut img = tile(&m, w, h, &mut r);
                let mask = defect(&mut img, k, 4.0 + r.next_f64() * 4.0, &mut r);
                save(&img, &dir.join("test").join(name).join(format!("{i:03}.png")))?;
                mask.save(dir.join("ground_truth").join(name).join(format!("{i:03}_mask.png")))?;
            }
        }
    }
    // Labelled anomalies, larger tiles (about 900 px: input 384 px), defects a few px at the model's input.
    let dir = root.join("synthetic-labelled");
    if !dir.join("train/normal").is_dir() {
        let m = material(21);
        let mut r = SplitMix64::new(22);
        for (part, normals, anomalies) in [("train", 40, 20), ("test", 20, 20)] {
            std::fs::create_dir_all(dir.join(part).join("normal"))?;
            std::fs::create_dir_all(dir.join(part).join("anomaly"))?;
            for i in 0..normals {
                save(&tile(&m, 960, 720, &mut r), &dir.join(part).join(format!("normal/{i:03}.png")))?;
            }
            for i in 0..anomalies {
                let mut img = tile(&m, 960, 720, &mut r);
                let k = (r.next_u64() % 3) as usize;
                defect(&mut img, k, 5.0 + r.next_f64() * 5.0, &mut r);
                save(&img, &dir.join(part).join(format!("anomaly/{i:03}.png")))?;
            }
        }
    }
    Ok(())
}
