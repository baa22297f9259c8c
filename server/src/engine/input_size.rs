//! The input size and resize filter of newly trained models: the size from the training images' sizes
//! ([`choose_input_size_for`]; re-exported from `train`).

use super::backbone::Resize;
use super::error::{Error, Result};

/// The resize filter of newly trained models.
pub const RESIZE: Resize = Resize::TorchAntialias;

/// Chooses the input size: long side `long` (or 40 % of the image's, clamped to 256–640), short side in
/// proportion, both multiples of 32 (at least 64).
pub fn choose_input_size(width: u32, height: u32, long: Option<u32>) -> (u32, u32) {
    let native_long = width.max(height).max(1);
    let long = long.unwrap_or(((native_long as f64 * 0.4) as u32).clamp(256, 640));
    let r32 = |v: f64| (((v / 32.0).round() as u32) * 32).max(64);
    let long_px = r32(long as f64);
    let short_px = r32(long_px as f64 * width.min(height) as f64 / native_long as f64);
    if width >= height {
        (long_px, short_px)
    } else {
        (short_px, long_px)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The input size for a whole training set: [`choose_input_size`] of a representative image whose long side
/// is the median long side and whose aspect is the median aspect (in log space, so 2:1 and 1:2 balance) of
/// all training images. Independent of their order, and no single image decides it.
pub fn choose_input_size_for(dims: &[(u32, u32)], long: Option<u32>) -> Result<(u32, u32)> {
    if dims.is_empty() {
        return Err(Error::Input("no training images".into()));
    }
    let long_side = median(dims.iter().map(|&(w, h)| w.max(h).max(1) as f64).collect());
    let log_aspect = median(dims.iter().map(|&(w, h)| (w.max(1) as f64 / h.max(1) as f64).ln()).collect());
    let a = log_aspect.exp();
    let (w, h) = if a >= 1.0 { (long_side, long_side / a) } else { (long_side * a, long_side) };
    Ok(choose_input_size(w.round().max(1.0) as u32, h.round().max(1.0) as u32, long))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_size_keeps_aspect_in_multiples_of_32() {
        assert_eq!(choose_input_size(576, 768, None), (256, 320));
        assert_eq!(choose_input_size(2000, 1334, None), (640, 416));
        assert_eq!(choose_input_size(550, 380, None), (256, 192));
        assert_eq!(choose_input_size(100, 100, Some(300)), (288, 288));
        assert_eq!(choose_input_size(4096, 64, None), (640, 64));
    }

    #[test]
    fn input_size_comes_from_the_whole_training_set() {
        // Tiles that each have their own size (no two equal): mostly landscape around 2:1, one tall outlier
        // last. The old rule (most common size, ties → the last) took the outlier's shape.
        let mut dims: Vec<(u32, u32)> = (0..9).map(|i| (1000 + 10 * i, 500 + 4 * i)).collect();
        dims.push((400, 1600));
        let (w, h) = choose_input_size_for(&dims, None).unwrap();
        // Median long side (1040 + 1050) / 2 = 1045, median aspect ≈ 2.01 → 1045 × 519 → 416 × 192.
        assert_eq!((w, h), (416, 192));
        // Order does not matter.
        let mut rev = dims.clone();
        rev.reverse();
        assert_eq!(choose_input_size_for(&rev, None).unwrap(), (w, h));
        // Equal sizes: the same as before.
        assert_eq!(choose_input_size_for(&[(576, 768); 3], None).unwrap(), (256, 320));
        assert_eq!(choose_input_size_for(&[(2000, 1334), (2000, 1334)], None).unwrap(), (640, 416));
        // Half portrait, half landscape: square.
        let (w, h) = choose_input_size_for(&[(800, 400), (400, 800)], Some(256)).unwrap();
        assert_eq!(w, h);
        assert!(choose_input_size_for(&[], None).is_err());
    }
}
