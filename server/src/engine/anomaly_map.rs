//! Anomaly heat maps as in PatchCore (Roth et al., 2022, §3.3): the patch score map is bilinearly upsampled
//! to the input resolution and smoothed with a Gaussian of σ = 4 px.

use super::error::{Error, Result};
use tch::{Kind, Tensor};

/// PatchCore's smoothing.
pub const SIGMA: f64 = 4.0;

/// A normalised 1-D Gaussian kernel of radius `ceil(4σ)` as a `(len,)` tensor.
pub fn gaussian_kernel(sigma: f64) -> Result<Tensor> {
    let radius = (4.0 * sigma).ceil().max(1.0) as i64;
    let w: Vec<f32> = (-radius..=radius).map(|x| (-(x * x) as f64 / (2.0 * sigma * sigma)).exp() as f32).collect();
    let sum: f32 = w.iter().sum();
    let w: Vec<f32> = w.into_iter().map(|v| v / sum).collect();
    Ok(Tensor::f_from_slice(&w)?)
}

/// Separable Gaussian blur with replicated edges. `(B, 1, H, W)` → `(B, 1, H, W)`.
pub fn blur(x: &Tensor, sigma: f64) -> Result<Tensor> {
    let s = x.size();
    if s.len() != 4 || s[1] != 1 {
        return Err(Error::Shape(format!("blur expects (B, 1, H, W), got {s:?}")));
    }
    if sigma <= 0.0 {
        return Ok(x.shallow_clone());
    }
    tch::no_grad(|| {
        let k = gaussian_kernel(sigma)?;
        let len = k.size()[0];
        let r = len / 2;
        // Replication padding needs the pad to be smaller than the side; clamp it for tiny maps.
        let (rh, rw) = (r.min(s[2] - 1), r.min(s[3] - 1));
        let kh = k.f_narrow(0, r - rh, 2 * rh + 1)?;
        let kh = kh.f_div(&kh.f_sum(Kind::Float)?)?;
        let kw = k.f_narrow(0, r - rw, 2 * rw + 1)?;
        let kw = kw.f_div(&kw.f_sum(Kind::Float)?)?;
        let y = x.f_replication_pad2d([rw, rw, 0, 0])?.f_conv2d(&kw.f_view([1, 1, 1, 2 * rw + 1])?, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)?;
        let y = y.f_replication_pad2d([0, 0, rh, rh])?.f_conv2d(&kh.f_view([1, 1, 2 * rh + 1, 1])?, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)?;
        Ok(y)
    })
}

/// Patch score maps `(B, h, w)` → heat maps `(B, H, W)` at the model's input size.
pub fn heat_maps(maps: &Tensor, height: i64, width: i64, sigma: f64) -> Result<Tensor> {
    let s = maps.size();
    if s.len() != 3 {
        return Err(Error::Shape(format!("score maps must be (B, h, w), got {s:?}")));
    }
    tch::no_grad(|| {
        let up = maps.f_unsqueeze(1)?.f_upsample_bilinear2d([height, width], false, None, None)?;
        Ok(blur(&up, sigma)?.f_squeeze_dim(1)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_normalised_and_symmetric() {
        let k: Vec<f32> = Vec::try_from(&gaussian_kernel(4.0).unwrap()).unwrap();
        assert_eq!(k.len(), 33);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(k[0], k[32]);
        assert!(k[16] > k[15]);
    }

    #[test]
    fn heat_map_shape_and_constant_preserved() {
        let maps = Tensor::full([2, 4, 3], 2.5, (Kind::Float, tch::Device::Cpu));
        let h = heat_maps(&maps, 32, 24, SIGMA).unwrap();
        assert_eq!(h.size(), [2, 32, 24]);
        assert!((h.min().double_value(&[]) - 2.5).abs() < 1e-5 && (h.max().double_value(&[]) - 2.5).abs() < 1e-5);
        // A single hot cell spreads but keeps its peak in place.
        let mut v = vec![0f32; 16];
        v[5] = 1.0;
        let m = Tensor::from_slice(&v).view([1, 4, 4]);
        let h = heat_maps(&m, 32, 32, 2.0).unwrap().view([-1]);
        let arg = h.argmax(0, false).int64_value(&[]);
        let (y, x) = (arg / 32, arg % 32);
        assert!((8..16).contains(&y) && (8..16).contains(&x), "peak at {y},{x}");
        assert!(heat_maps(&Tensor::zeros([4, 4], (Kind::Float, tch::Device::Cpu)), 8, 8, 4.0).is_err());
    }
}
