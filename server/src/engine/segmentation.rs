//! Supervised heads over frozen features, in the spirit of linear probing of pretrained networks (Alain &
//! Bengio, 2016, "Understanding intermediate layers using linear classifier probes") and of PatchCore's
//! successors that add a supervised stage on top of its anomaly map (e.g. Zhang et al., 2023, "PRN:
//! Prototypical Residual Networks for Anomaly Detection and Localization"): a softmax (multinomial logistic)
//! regression trained with class-balanced cross-entropy and Adam on closed-form gradients.
//!
//! Used twice: per stride-8 cell for segmentation (classes = background + anomaly labels; features = the
//! patch embedding and the PatchCore patch score), and per image for the supervised image-level score
//! (two classes over pooled backbone features).
//!
//! Also: label masks (colour PNGs, LFV's format) to class maps and back.

use super::error::{Error, Result};
use image::{Rgb, RgbImage, RgbaImage};
use tch::{Kind, Tensor};

/// A linear softmax classifier with input standardisation: `logits = ((x − mean) / std) · W + b`.
pub struct LinearHead {
    /// `(F,)`
    pub mean: Tensor,
    /// `(F,)`
    pub std: Tensor,
    /// `(F, C)`
    pub weight: Tensor,
    /// `(C,)`
    pub bias: Tensor,
}

/// Training settings for [`LinearHead::fit`].
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    pub steps: usize,
    pub learning_rate: f64,
    /// L2 penalty on the weights (not the bias), per sample-weight unit.
    pub l2: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions { steps: 300, learning_rate: 0.05, l2: 1e-3 }
    }
}

impl LinearHead {
    /// Fits the head. `x: (N, F)` features, `targets: (N, C)` class probabilities (rows sum to 1),
    /// `sample_weight: (N,)` non-negative weights. Full-batch Adam on the exact gradient of the weighted
    /// cross-entropy plus L2; deterministic.
    pub fn fit(x: &Tensor, targets: &Tensor, sample_weight: &Tensor, opts: FitOptions) -> Result<Self> {
        let (xs, ts, ws) = (x.size(), targets.size(), sample_weight.size());
        if xs.len() != 2 || ts.len() != 2 || ws.len() != 1 || xs[0] != ts[0] || xs[0] != ws[0] || xs[0] == 0 {
            return Err(Error::Shape(format!("head fit: x {xs:?}, targets {ts:?}, weights {ws:?}")));
        }
        let (f, c) = (xs[1], ts[1]);
        tch::no_grad(|| {
            let x = x.f_to_kind(Kind::Float)?;
            let mean = x.f_mean_dim([0i64].as_slice(), false, Kind::Float)?;
            let std = x.f_std_dim([0i64].as_slice(), false, false)?.f_clamp_min(1e-4)?;
            let z = x.f_sub(&mean)?.f_div(&std)?;
            let y = targets.f_to_kind(Kind::Float)?;
            let w = sample_weight.f_to_kind(Kind::Float)?;
            let w = w.f_div(&w.f_sum(Kind::Float)?.f_clamp_min(1e-12)?)?.f_unsqueeze(1)?; // (N,1), sums to 1
            let zt = z.f_tr()?.f_contiguous()?;
            let opts_ = (Kind::Float, tch::Device::Cpu);
            let mut weight = Tensor::f_zeros([f, c], opts_)?;
            let mut bias = Tensor::f_zeros([c], opts_)?;
            let (mut mw, mut vw) = (Tensor::f_zeros([f, c], opts_)?, Tensor::f_zeros([f, c], opts_)?);
            let (mut mb, mut vb) = (Tensor::f_zeros([c], opts_)?, Tensor::f_zeros([c], opts_)?);
            let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
            for step in 1..=opts.steps {
                let logits = z.f_matmul(&weight)?.f_add(&bias)?;
                let p = logits.f_softmax(1, Kind::Float)?;
                let g = p.f_sub(&y)?.f_mul(&w)?; // (N, C)
                let gw = zt.f_matmul(&g)?.f_add(&weight.f_mul_scalar(opts.l2)?)?;
                let gb = g.f_sum_dim_intlist([0i64].as_slice(), false, Kind::Float)?;
                let lr_t = opts.learning_rate * (1.0 - b2.powi(step as i32)).sqrt() / (1.0 - b1.powi(step as i32));
                mw = mw.f_mul_scalar(b1)?.f_add(&gw.f_mul_scalar(1.0 - b1)?)?;
                vw = vw.f_mul_scalar(b2)?.f_add(&gw.f_mul(&gw)?.f_mul_scalar(1.0 - b2)?)?;
                mb = mb.f_mul_scalar(b1)?.f_add(&gb.f_mul_scalar(1.0 - b1)?)?;
                vb = vb.f_mul_scalar(b2)?.f_add(&gb.f_mul(&gb)?.f_mul_scalar(1.0 - b2)?)?;
                weight = weight.f_sub(&mw.f_div(&vw.f_sqrt()?.f_add_scalar(eps)?)?.f_mul_scalar(lr_t)?)?;
                bias = bias.f_sub(&mb.f_div(&vb.f_sqrt()?.f_add_scalar(eps)?)?.f_mul_scalar(lr_t)?)?;
            }
            Ok(LinearHead { mean, std, weight, bias })
        })
    }

    pub fn features(&self) -> i64 {
        self.weight.size()[0]
    }

    pub fn classes(&self) -> i64 {
        self.weight.size()[1]
    }

    /// `(N, F)` → `(N, C)` logits.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.size();
        if s.len() != 2 || s[1] != self.features() {
            return Err(Error::Shape(format!("head expects (N, {}), got {s:?}", self.features())));
        }
        tch::no_grad(|| Ok(x.f_to_kind(Kind::Float)?.f_sub(&self.mean)?.f_div(&self.std)?.f_matmul(&self.weight)?.f_add(&self.bias)?))
    }
}

/// Class-balanced sample weights for soft targets `(N, C)`: each class gets the same total weight, a row's
/// weight being the target-weighted mean of its classes' weights. `(N, C)` → `(N,)`.
pub fn balanced_weights(targets: &Tensor) -> Result<Tensor> {
    tch::no_grad(|| {
        let per_class = targets.f_sum_dim_intlist([0i64].as_slice(), false, Kind::Float)?; // (C,)
        let present = per_class.f_gt(0.0)?.f_to_kind(Kind::Float)?;
        let inv = present.f_div(&per_class.f_clamp_min(1e-6)?)?;
        Ok(targets.f_matmul(&inv)?)
    })
}

/// How a mask colour maps to a class.
fn color_distance(a: [u8; 3], b: [u8; 3]) -> u32 {
    a.iter().zip(b).map(|(&x, y)| (x as i32 - y as i32).unsigned_abs()).sum()
}

/// Turns a label mask (LFV format: each anomaly type painted in its label's colour on a black or white
/// background) into a class map at `width × height` (nearest-neighbour), where 0 = background and `i + 1` =
/// `label_colors[i]`. A pixel is background when transparent, or black/white (unless that is a label's colour),
/// or farther than a small tolerance from every label colour — except that with a single label every
/// non-background colour counts as that label (masks drawn with a slightly different shade still work).
pub fn mask_to_classes(mask: &RgbaImage, label_colors: &[[u8; 3]], width: u32, height: u32) -> Vec<u8> {
    const TOLERANCE: u32 = 60;
    let (mw, mh) = (mask.width().max(1), mask.height().max(1));
    let mut out = vec![0u8; (width * height) as usize];
    for y in 0..height {
        let sy = (((y as f64 + 0.5) * mh as f64 / height as f64) as u32).min(mh - 1);
        for x in 0..width {
            let sx = (((x as f64 + 0.5) * mw as f64 / width as f64) as u32).min(mw - 1);
            let p = mask.get_pixel(sx, sy).0;
            out[(y * width + x) as usize] = classify_color(p, label_colors, TOLERANCE);
        }
    }
    out
}

/// Ground truth for pixel AUROC from any mask, at `width × height` (nearest-neighbour): 1 where the mask marks
/// an anomaly, whatever its colours. Two conventions are read: LFV label masks (any opaque colour other than
/// black and white is an anomaly) and the white-on-black binary masks of MVTec AD and most public sets (a
/// mask without such colours whose pixels are mostly dark: its light pixels are the anomaly). A mask without
/// colours that is mostly white is an empty LFV mask (white background).
pub fn mask_to_anomaly(mask: &RgbaImage, width: u32, height: u32) -> Vec<u8> {
    const TOLERANCE: u32 = 60;
    let (mw, mh) = (mask.width().max(1), mask.height().max(1));
    let near = |p: [u8; 3], c: [u8; 3]| color_distance(p, c) <= TOLERANCE;
    let colored = |p: &image::Rgba<u8>| p.0[3] >= 128 && !near([p.0[0], p.0[1], p.0[2]], [0, 0, 0]) && !near([p.0[0], p.0[1], p.0[2]], [255, 255, 255]);
    let any_color = mask.pixels().any(|p| colored(p) && {
        // Gray levels (antialiased binary masks) are not colours.
        let (mx, mn) = (p.0[0].max(p.0[1]).max(p.0[2]), p.0[0].min(p.0[1]).min(p.0[2]));
        mx - mn > 30
    });
    let light = |p: &image::Rgba<u8>| p.0[3] >= 128 && (p.0[0] as u32 + p.0[1] as u32 + p.0[2] as u32) >= 3 * 128;
    let binary_white_on_black = !any_color && {
        let n_light = mask.pixels().filter(|p| light(p)).count();
        n_light * 2 < (mw * mh) as usize
    };
    let mut out = vec![0u8; (width * height) as usize];
    for y in 0..height {
        let sy = (((y as f64 + 0.5) * mh as f64 / height as f64) as u32).min(mh - 1);
        for x in 0..width {
            let sx = (((x as f64 + 0.5) * mw as f64 / width as f64) as u32).min(mw - 1);
            let p = mask.get_pixel(sx, sy);
            let a = if binary_white_on_black { light(p) } else { any_color && colored(p) };
            out[(y * width + x) as usize] = a as u8;
        }
    }
    out
}

fn classify_color(p: [u8; 4], label_colors: &[[u8; 3]], tolerance: u32) -> u8 {
    if p[3] < 128 {
        return 0;
    }
    let rgb = [p[0], p[1], p[2]];
    let mut best = (u32::MAX, 0usize);
    for (i, &c) in label_colors.iter().enumerate() {
        let d = color_distance(rgb, c);
        if d < best.0 {
            best = (d, i);
        }
    }
    if best.0 <= tolerance {
        return (best.1 + 1) as u8;
    }
    let is_plain_background = color_distance(rgb, [0, 0, 0]) <= tolerance || color_distance(rgb, [255, 255, 255]) <= tolerance;
    if !is_plain_background && label_colors.len() == 1 {
        return 1;
    }
    0
}

/// `(C, H, W)` one-hot fractions pooled onto the stride-8 grid: class map (H·W, values < C) → `(C, H/8, W/8)`.
pub fn class_fractions(classes: &[u8], width: i64, height: i64, num_classes: i64, stride: i64) -> Result<Tensor> {
    if classes.len() as i64 != width * height {
        return Err(Error::Shape(format!("class map has {} pixels, expected {width}×{height}", classes.len())));
    }
    tch::no_grad(|| {
        let idx = Tensor::f_from_slice(classes)?.f_to_kind(Kind::Int64)?.f_clamp(0, num_classes - 1)?;
        let oh = idx.f_one_hot(num_classes)?.f_to_kind(Kind::Float)?.f_view([height, width, num_classes])?.f_permute([2, 0, 1])?;
        Ok(oh.f_unsqueeze(0)?.f_avg_pool2d([stride, stride], [stride, stride], [0, 0], false, true, None::<i64>)?.f_squeeze_dim(0)?)
    })
}

/// Paints a class map in the classes' colours (`colors[0]` = background).
pub fn colorize(classes: &[u8], width: u32, height: u32, colors: &[[u8; 3]]) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let c = classes[(y * width + x) as usize] as usize;
        Rgb(colors.get(c).copied().unwrap_or([0, 0, 0]))
    })
}

/// Nearest-neighbour resize of a class map.
pub fn resize_classes(classes: &[u8], width: u32, height: u32, to_width: u32, to_height: u32) -> Vec<u8> {
    let xs: Vec<usize> =
        (0..to_width).map(|x| (((x as f64 + 0.5) * width as f64 / to_width as f64) as u32).min(width - 1) as usize).collect();
    let mut out = Vec::with_capacity((to_width * to_height) as usize);
    for y in 0..to_height {
        let sy = (((y as f64 + 0.5) * height as f64 / to_height as f64) as u32).min(height - 1) as usize;
        let row = &classes[sy * width as usize..(sy + 1) * width as usize];
        out.extend(xs.iter().map(|&sx| row[sx]));
    }
    out
}

/// The class of every pixel of an `h × w` image from per-cell logits on a `gh × gw` grid (`gh · gw · c` values,
/// cell by cell): the argmax of the bilinearly upsampled logits, as libtorch's `upsample_bilinear2d`
/// (`align_corners = false`) then `argmax` compute it, without the `(c, h, w)` float tensor: rows are
/// interpolated across first, once per grid row, then each pixel blends two of them.
pub fn upsampled_argmax(logits: &[f32], gh: usize, gw: usize, c: usize, h: usize, w: usize) -> Result<Vec<u8>> {
    if logits.len() != gh * gw * c || gh == 0 || gw == 0 || c == 0 || c > 256 {
        return Err(Error::Shape(format!("{} logits for a {gh}×{gw} grid of {c} classes", logits.len())));
    }
    let (ys, xs) = (super::resize::linear_axis(gh, h), super::resize::linear_axis(gw, w));
    // `across[gy][x][k]`: grid row gy interpolated at output column x.
    let mut across = vec![0f32; gh * w * c];
    for gy in 0..gh {
        let row = &logits[gy * gw * c..(gy + 1) * gw * c];
        for (x, &(x0, x1, w0, w1)) in xs.iter().enumerate() {
            let out = &mut across[(gy * w + x) * c..][..c];
            for (k, o) in out.iter_mut().enumerate() {
                *o = row[x0 * c + k] * w0 + row[x1 * c + k] * w1;
            }
        }
    }
    let mut classes = Vec::with_capacity(h * w);
    for &(y0, y1, l0, l1) in &ys {
        let (r0, r1) = (&across[y0 * w * c..(y0 + 1) * w * c], &across[y1 * w * c..(y1 + 1) * w * c]);
        for x in 0..w {
            let (a, b) = (&r0[x * c..(x + 1) * c], &r1[x * c..(x + 1) * c]);
            let (mut best, mut arg) = (f32::NEG_INFINITY, 0usize);
            for k in 0..c {
                let v = a[k] * l0 + b[k] * l1;
                if v > best || (v.is_nan() && !best.is_nan()) {
                    (best, arg) = (v, k);
                }
            }
            classes.push(arg as u8);
        }
    }
    Ok(classes)
}

/// The head's input rows for one image: its patch embedding `(D, h, w)` (any float kind) and patch score map
/// `(h, w)` → `(h·w, D + 1)`, the score divided by `norm` (the median normal image score) as the last feature.
pub fn head_rows(embedding: &Tensor, patch_map: &Tensor, norm: f32) -> Result<Tensor> {
    let e = embedding.f_to_kind(Kind::Float)?;
    let (h, w) = (e.size()[1], e.size()[2]);
    let s = patch_map.f_to_kind(Kind::Float)?.f_div_scalar(norm as f64)?.f_view([1, h, w])?;
    super::embedding::to_rows(&Tensor::f_cat(&[e, s], 0)?.f_unsqueeze(0)?)
}

/// What [`pruned_classes`] computed: the class map and how much exact search it took.
pub struct PrunedClasses {
    /// `h × w` classes, as [`upsampled_argmax`] gives them from every cell's exact patch score.
    pub classes: Vec<u8>,
    /// Cells whose exact score was computed (of `gh · gw`).
    pub searched: usize,
    /// The largest exact squared distance among them (a lower bound on the image score's square; `-∞` if none).
    pub best_sq: f32,
    /// The cell it belongs to (`None` if none was searched).
    pub best_at: Option<usize>,
}

/// The class map of one image from a segmentation head whose last feature is the patch score (`score / norm`),
/// computing exact patch scores only where they can change the map. `rows: (gh·gw, F − 1)` are the cells'
/// patch features, `bounds` the pruned search's upper bounds on their scores.
///
/// Why the map is exact: the head is linear in the score, so over `score ∈ [0, bound]` each class's logit is a
/// line, and a cell whose argmax is the same class (by a margin) at both ends has that class for every score
/// in between. A pixel's upsampled logits are a convex combination of its 2×2 cells' logits, so a pixel whose
/// cells all keep the same class has it whatever their exact scores. Every other cell — one whose class could
/// change, or that has such a cell or a cell of another class among its 3×3 neighbours — gets its exact score;
/// the rest keep their bound, which cannot change any pixel.
pub fn pruned_classes(
    head: &LinearHead,
    rows: &Tensor,
    norm: f32,
    bounds: &super::patchcore::Bounds<'_>,
    (gh, gw): (usize, usize),
    (h, w): (usize, usize),
) -> Result<PrunedClasses> {
    let n = gh * gw;
    let c = head.classes() as usize;
    if rows.size().first() != Some(&(n as i64)) || bounds.upper_sq.len() != n || c == 0 {
        return Err(Error::Shape(format!("{:?} rows and {} bounds for a {gh}×{gw} grid", rows.size(), bounds.upper_sq.len())));
    }
    // The logits are affine in the score: `logits(s) = base + s · slope`, with `base` the logits at score 0 and
    // `slope` the score's weights over its standardisation and `norm`.
    let f = head.features();
    let x = Tensor::f_cat(&[&rows.f_to_kind(Kind::Float)?, &Tensor::f_zeros([n as i64, 1], (Kind::Float, tch::Device::Cpu))?], 1)?;
    let low: Vec<f32> = Vec::try_from(&head.logits(&x)?.f_contiguous()?.f_view([-1])?)?;
    let slope: Vec<f32> = Vec::try_from(&head.weight.f_select(0, f - 1)?.f_div_scalar(head.std.f_double_value(&[f - 1])? * norm as f64)?)?;
    let logits_at = |scores: &[f32]| -> Vec<f32> {
        let mut out = low.clone();
        for (cell, &s) in out.chunks_exact_mut(c).zip(scores) {
            for (o, &g) in cell.iter_mut().zip(&slope) {
                *o += s * g;
            }
        }
        out
    };
    let mut scores = bounds.upper();
    let high = logits_at(&scores);
    // The class a cell has for every score in [0, bound], if there is one.
    let sure: Vec<Option<usize>> = (0..n).map(|i| sure_class(&low[i * c..(i + 1) * c], &high[i * c..(i + 1) * c])).collect();
    let mut need = Vec::new();
    for y in 0..gh {
        for x in 0..gw {
            let own = sure[y * gw + x];
            let settled = own.is_some()
                && (y.saturating_sub(1)..(y + 2).min(gh)).all(|ny| (x.saturating_sub(1)..(x + 2).min(gw)).all(|nx| sure[ny * gw + nx] == own));
            if !settled {
                need.push((y * gw + x) as i64);
            }
        }
    }
    let exact = bounds.exact_sq(&need)?;
    let (mut best_sq, mut best_at) = (f32::NEG_INFINITY, None);
    for (&i, &e) in need.iter().zip(&exact) {
        scores[i as usize] = e.sqrt();
        if e > best_sq {
            (best_sq, best_at) = (e, Some(i as usize));
        }
    }
    // No cell to search means every cell's 3×3 neighbours share its sure class: one class everywhere.
    let classes = match (need.is_empty(), sure[0]) {
        (true, Some(k)) => vec![k as u8; h * w],
        _ => upsampled_argmax(&logits_at(&scores), gh, gw, c, h, w)?,
    };
    Ok(PrunedClasses { classes, searched: need.len(), best_sq, best_at })
}

/// The class that is the argmax of both logit vectors with a margin (so that rounding in the upsampling cannot
/// turn a pixel whose cells all have it), or `None`.
fn sure_class(low: &[f32], high: &[f32]) -> Option<usize> {
    let arg = |v: &[f32]| v.iter().enumerate().fold((0usize, f32::NEG_INFINITY), |b, (k, &x)| if x > b.1 { (k, x) } else { b }).0;
    let k = arg(low);
    let margin = |v: &[f32]| 1e-3 * (1.0 + v[k].abs());
    let clear = |v: &[f32]| v.iter().enumerate().all(|(j, &x)| j == k || v[k] - x > margin(v));
    (arg(high) == k && clear(low) && clear(high)).then_some(k)
}

/// Encodes a class map `(height, width)` as an indexed (palette) PNG, class `c` in `palette[c]`: one byte per
/// pixel to compress instead of three, and no RGB image to build. Decoders expand it to the same RGB image as
/// [`colorize`] + [`png_bytes`].
pub fn indexed_png(classes: &[u8], width: u32, height: u32, palette: &[[u8; 3]]) -> Result<Vec<u8>> {
    if classes.len() != (width as usize) * (height as usize) || palette.is_empty() || palette.len() > 256 {
        return Err(Error::Shape(format!("class map of {} for {width}×{height} with {} colours", classes.len(), palette.len())));
    }
    if let Some(&c) = classes.iter().find(|&&c| c as usize >= palette.len()) {
        return Err(Error::Shape(format!("class {c} has no colour")));
    }
    let mut buf = Vec::new();
    let err = |e: png::EncodingError| Error::Shape(format!("PNG encoding: {e}"));
    {
        let mut enc = png::Encoder::new(&mut buf, width, height);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(palette.iter().flatten().copied().collect::<Vec<u8>>());
        enc.set_compression(png::Compression::Fast);
        let mut w = enc.write_header().map_err(err)?;
        w.write_image_data(classes).map_err(err)?;
        w.finish().map_err(err)?;
    }
    Ok(buf)
}

/// Encodes an RGB image as PNG (fast compression: masks are flat colours and compress well anyway).
pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let mut buf = Vec::new();
    PngEncoder::new_with_quality(&mut buf, CompressionType::Fast, FilterType::Sub)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::Shape(format!("PNG encoding: {e}")))?;
    Ok(buf)
}

/// `"#23A436"` → `[0x23, 0xA4, 0x36]`.
pub fn parse_hex_color(s: &str) -> Option<[u8; 3]> {
    let h = s.trim().strip_prefix('#').unwrap_or(s.trim());
    if h.len() != 6 || !h.is_ascii() {
        return None;
    }
    let v = u32::from_str_radix(h, 16).ok()?;
    Some([(v >> 16) as u8, (v >> 8) as u8, v as u8])
}

/// `[0x23, 0xA4, 0x36]` → `"#23A436"`.
pub fn hex_color(c: [u8; 3]) -> String {
    format!("#{:02X}{:02X}{:02X}", c[0], c[1], c[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampled_argmax_equals_libtorch() {
        let mut rng = crate::engine::coreset::SplitMix64::new(3);
        for &(gh, gw, c, h, w) in &[(40usize, 32usize, 3usize, 320usize, 256usize), (5, 7, 2, 37, 61), (1, 1, 4, 8, 8), (8, 8, 5, 8, 8)] {
            let v: Vec<f32> = (0..gh * gw * c).map(|_| rng.normal() as f32 * 4.0).collect();
            let ours = upsampled_argmax(&v, gh, gw, c, h, w).unwrap();
            let t = Tensor::from_slice(&v).view([1, gh as i64, gw as i64, c as i64]).permute([0, 3, 1, 2]);
            let up = t.upsample_bilinear2d([h as i64, w as i64], false, None, None);
            let theirs: Vec<u8> = Vec::try_from(&up.argmax(1, false).to_kind(Kind::Uint8).contiguous().view([-1])).unwrap();
            let differ = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
            assert!(differ * 10_000 <= h * w, "{gh}×{gw}×{c} → {h}×{w}: {differ} pixels differ");
        }
        assert!(upsampled_argmax(&[0.0; 5], 2, 2, 1, 4, 4).is_err());
    }

    #[test]
    fn pruned_classes_equal_the_map_from_every_exact_score() {
        use crate::engine::patchcore::MemoryBank;
        let mut rng = crate::engine::coreset::SplitMix64::new(11);
        let mut randn = |k: usize| -> Vec<f32> { (0..k).map(|_| rng.normal() as f32).collect() };
        let (d, gh, gw, c, h, w) = (6i64, 12usize, 10usize, 3i64, 96usize, 80usize);
        let n = (gh * gw) as i64;
        let bank = MemoryBank::new(Tensor::from_slice(&randn(400 * d as usize)).view([400, d]), None).unwrap();
        // A head whose anomaly classes rise with the patch score (the last feature), background biased up.
        let mut wv = randn(((d + 1) * c) as usize).into_iter().map(|x| 0.3 * x).collect::<Vec<_>>();
        (wv[(d * c + 1) as usize], wv[(d * c + 2) as usize]) = (4.0, 3.0);
        let head = LinearHead {
            mean: Tensor::zeros([d + 1], (Kind::Float, tch::Device::Cpu)),
            std: Tensor::ones([d + 1], (Kind::Float, tch::Device::Cpu)),
            weight: Tensor::from_slice(&wv).view([d + 1, c]),
            bias: Tensor::from_slice(&[6f32, -1.0, -1.5]),
        };
        for (trial, far) in [(0, 2.5f64), (1, 4.0), (2, 2.0), (3, 1.0)] {
            // Normal cells near bank rows; a block of cells far from them (a defect).
            let noise = Tensor::from_slice(&randn((n * d) as usize)).view([n, d]).f_mul_scalar(0.15).unwrap();
            let mut q = bank.bank.narrow(0, trial * 80, n).f_add(&noise).unwrap();
            for y in 3..7 {
                let row = q.narrow(0, (y * gw + 2) as i64, 4).f_mul_scalar(far).unwrap();
                q = q.slice_scatter(&row, 0, (y * gw + 2) as i64, (y * gw + 6) as i64, 1);
            }
            let norm = 1.5f32;
            let s = bank.nearest_distances(&q).unwrap().f_div_scalar(norm as f64).unwrap().unsqueeze(1);
            let logits: Vec<f32> = Vec::try_from(&head.logits(&Tensor::cat(&[&q, &s], 1)).unwrap().contiguous().view([-1])).unwrap();
            let full = upsampled_argmax(&logits, gh, gw, c as usize, h, w).unwrap();
            let bounds = bank.bounds(&q).unwrap().expect("a bank this size has cells");
            let pruned = pruned_classes(&head, &q, norm, &bounds, (gh, gw), (h, w)).unwrap();
            let differ = pruned.classes.iter().zip(&full).filter(|(a, b)| a != b).count();
            assert!(differ * 10_000 <= h * w, "trial {trial}: {differ} pixels differ");
            if far == 1.0 {
                // No defect: background everywhere, few cells searched.
                assert!(full.iter().all(|&k| k == 0) && pruned.searched < n as usize / 4, "trial {trial}: searched {}", pruned.searched);
                // A head sure of the background whatever the scores: nothing searched, one class everywhere.
                let sure = LinearHead {
                    mean: head.mean.shallow_clone(),
                    std: head.std.shallow_clone(),
                    weight: head.weight.shallow_clone(),
                    bias: Tensor::from_slice(&[500f32, -1.0, -1.5]),
                };
                let p = pruned_classes(&sure, &q, norm, &bounds, (gh, gw), (h, w)).unwrap();
                assert_eq!((p.searched, p.classes.len()), (0, h * w));
                assert!(p.classes.iter().all(|&k| k == 0));
                continue;
            }
            assert!(full.iter().any(|&k| k != 0) && full.iter().any(|&k| k == 0), "trial {trial}: the map must hold both");
            assert!(pruned.searched > 0 && pruned.searched < n as usize, "trial {trial}: searched {}", pruned.searched);
        }
        // Shapes that do not match the grid are errors.
        let q = Tensor::from_slice(&randn((n * d) as usize)).view([n, d]);
        let bounds = bank.bounds(&q).unwrap().unwrap();
        assert!(pruned_classes(&head, &q.narrow(0, 0, n - 1), 1.0, &bounds, (gh, gw), (h, w)).is_err());
    }

    #[test]
    fn indexed_png_decodes_to_the_colourised_map() {
        let (w, h) = (37u32, 11u32);
        let classes: Vec<u8> = (0..w * h).map(|i| ((i / 7) % 3) as u8).collect();
        let palette = [[255, 255, 255], [0x23, 0xA4, 0x36], [200, 0, 10]];
        let png = indexed_png(&classes, w, h, &palette).unwrap();
        let decoded = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(decoded, colorize(&classes, w, h, &palette));
        assert!(indexed_png(&classes, w, h + 1, &palette).is_err());
        assert!(indexed_png(&classes, w, h, &palette[..2]).is_err());
    }

    #[test]
    fn mask_colours_to_classes() {
        let red = [255, 0, 0];
        let green = [0x23, 0xA4, 0x36];
        let mut m = RgbaImage::from_pixel(4, 2, image::Rgba([0, 0, 0, 255]));
        m.put_pixel(1, 0, image::Rgba([255, 0, 0, 255]));
        m.put_pixel(2, 0, image::Rgba([0x20, 0xA0, 0x30, 255])); // near green
        m.put_pixel(3, 0, image::Rgba([0x23, 0xA4, 0x36, 0])); // transparent
        m.put_pixel(0, 1, image::Rgba([255, 255, 255, 255])); // white background
        m.put_pixel(1, 1, image::Rgba([10, 10, 200, 255])); // unknown colour, two labels
        let c = mask_to_classes(&m, &[red, green], 4, 2);
        assert_eq!(c, vec![0, 1, 2, 0, 0, 0, 0, 0]);
        // With one label, any non-background colour is that label.
        let c = mask_to_classes(&m, &[green], 4, 2);
        assert_eq!(c, vec![0, 1, 1, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn any_mask_convention_gives_pixel_truth() {
        // MVTec AD: white defect on black.
        let mut m = RgbaImage::from_pixel(4, 4, image::Rgba([0, 0, 0, 255]));
        m.put_pixel(1, 1, image::Rgba([255, 255, 255, 255]));
        m.put_pixel(2, 1, image::Rgba([200, 200, 200, 255])); // antialiased edge
        let t = mask_to_anomaly(&m, 4, 4);
        assert_eq!(t.iter().filter(|&&v| v == 1).count(), 2);
        assert_eq!((t[5], t[6]), (1, 1));
        // The same as a one-channel PNG, decoded as the engine decodes masks.
        let gray = image::GrayImage::from_fn(4, 4, |x, y| image::Luma([if (x, y) == (1, 1) { 255 } else { 0 }]));
        let mut png = Vec::new();
        image::DynamicImage::ImageLuma8(gray).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let decoded = crate::engine::image_io::decode_mask(&png).unwrap();
        assert_eq!(mask_to_anomaly(&decoded, 8, 8).iter().filter(|&&v| v == 1).count(), 4);
        // LFV: label colours on white (or black); white is background, colours are anomalies.
        let mut l = RgbaImage::from_pixel(4, 4, image::Rgba([255, 255, 255, 255]));
        l.put_pixel(0, 0, image::Rgba([0x23, 0xA4, 0x36, 255]));
        let t = mask_to_anomaly(&l, 4, 4);
        assert_eq!(t.iter().filter(|&&v| v == 1).count(), 1);
        assert_eq!(t[0], 1);
        // An empty LFV mask (all white) marks nothing.
        assert!(mask_to_anomaly(&RgbaImage::from_pixel(4, 4, image::Rgba([255, 255, 255, 255])), 4, 4).iter().all(|&v| v == 0));
    }

    #[test]
    fn colours_and_fractions() {
        assert_eq!(parse_hex_color("#23A436"), Some([0x23, 0xA4, 0x36]));
        assert_eq!(parse_hex_color("#ffffff"), Some([255, 255, 255]));
        assert_eq!(parse_hex_color("#12345"), None);
        assert_eq!(hex_color([0x23, 0xA4, 0x36]), "#23A436");
        let img = colorize(&[0, 1, 2, 1], 2, 2, &[[255, 255, 255], [255, 0, 0], [0, 0, 255]]);
        assert_eq!(img.get_pixel(1, 0).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(0, 1).0, [0, 0, 255]);
        // One anomalous pixel out of 16 in the top-left 2×2 cell → fraction 1/4 there.
        let mut classes = vec![0u8; 16];
        classes[0] = 1;
        let f = class_fractions(&classes, 4, 4, 2, 2).unwrap();
        assert_eq!(f.size(), [2, 2, 2]);
        assert!((f.double_value(&[1, 0, 0]) - 0.25).abs() < 1e-6);
        assert!((f.double_value(&[0, 0, 0]) - 0.75).abs() < 1e-6);
        assert_eq!(resize_classes(&[0, 1, 2, 3], 2, 2, 4, 4)[..4], [0, 0, 1, 1]);
    }

    #[test]
    fn linear_head_separates_two_clusters() {
        let x = Tensor::from_slice(&[0f32, 0., 0.1, 0., 1., 1., 0.9, 1.]).view([4, 2]);
        let y = Tensor::from_slice(&[1f32, 0., 1., 0., 0., 1., 0., 1.]).view([4, 2]);
        let w = balanced_weights(&y).unwrap();
        let h = LinearHead::fit(&x, &y, &w, FitOptions::default()).unwrap();
        let l = h.logits(&x).unwrap();
        let pred: Vec<i64> = Vec::try_from(&l.argmax(1, false)).unwrap();
        assert_eq!(pred, vec![0, 0, 1, 1]);
        assert!(h.logits(&Tensor::zeros([1, 3], (Kind::Float, tch::Device::Cpu))).is_err());
    }
}
