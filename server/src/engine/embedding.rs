//! PatchCore's locally aware patch features (Roth et al., 2022, §3.1) from the backbone's two taps: the
//! embedding every memory bank row and every query is made of, the per-tap weights that can balance them, and
//! the `(B, D, h, w)` ↔ rows layout the searches take.

use super::backbone::{Features, S16_CHANNELS, S8_CHANNELS};
use super::error::{Error, Result};
use tch::{Kind, Tensor};

/// Channels of a patch feature: the stride-8 tap and the upsampled stride-16 tap, concatenated.
pub const EMBED_DIM: i64 = S8_CHANNELS + S16_CHANNELS;

/// Locally aware patch features: 3×3 average pooling (stride 1) of both taps, the stride-16 map bilinearly
/// upsampled onto the stride-8 grid, concatenated along channels.
/// `s8: (B, 40, h, w)`, `s16: (B, 112, h/2, w/2)` → `(B, 152, h, w)`.
///
/// `zero_pad`: the pooling counts the zero padding beyond the edges (PyTorch's `AvgPool2d(3, 1, 1)` default, as
/// in PatchCore's and anomalib's code), so edge patches are damped towards zero. Otherwise (models trained
/// before this was measured, whose header lacks `pool_zero_pad`) edge cells are averaged over the valid cells
/// only; that gives the edge patches, whose mean is over 4 or 6 cells, the largest variance of all, and on
/// textures the worst patch of a normal image was then often an edge patch (synthetic-texture: image AUROC 0.60
/// against 0.92 with the padding counted, both with anomalib's PatchCore on the same features).
///
/// Computed in plain Rust with libtorch's arithmetic (`avg_pool2d`, then `upsample_bilinear2d` without aligned
/// corners): libtorch's pooling kernel took a millisecond of a 20 ms detection for these small maps.
/// [`embed_torch`] is the same in libtorch ops (tested equal).
pub fn embed(f: &Features, zero_pad: bool) -> Result<Tensor> {
    let (a, b) = (f.s8.size(), f.s16.size());
    if a.len() != 4 || b.len() != 4 || a[0] != b[0] || f.s8.kind() != Kind::Float || f.s16.kind() != Kind::Float {
        return embed_torch(f, zero_pad);
    }
    let (n, c8, h, w) = (a[0] as usize, a[1] as usize, a[2] as usize, a[3] as usize);
    let (c16, h2, w2) = (b[1] as usize, b[2] as usize, b[3] as usize);
    if h == 0 || w == 0 || h2 == 0 || w2 == 0 {
        return Err(Error::Shape(format!("empty feature maps {a:?} and {b:?}")));
    }
    let v8: Vec<f32> = Vec::try_from(&f.s8.f_contiguous()?.f_view([-1])?)?;
    let v16: Vec<f32> = Vec::try_from(&f.s16.f_contiguous()?.f_view([-1])?)?;
    let c = c8 + c16;
    let mut out = vec![0f32; n * c * h * w];
    let mut pooled = vec![0f32; h2 * w2];
    let (ys, xs) = (super::resize::linear_axis(h2, h), super::resize::linear_axis(w2, w));
    for img in 0..n {
        for ch in 0..c8 {
            let src = &v8[(img * c8 + ch) * h * w..][..h * w];
            let dst = &mut out[(img * c + ch) * h * w..][..h * w];
            box_mean_3x3(src, dst, h, w, zero_pad);
        }
        for ch in 0..c16 {
            box_mean_3x3(&v16[(img * c16 + ch) * h2 * w2..][..h2 * w2], &mut pooled, h2, w2, zero_pad);
            let dst = &mut out[(img * c + c8 + ch) * h * w..][..h * w];
            for (y, &(y0, y1, ly0, ly1)) in ys.iter().enumerate() {
                let (r0, r1) = (&pooled[y0 * w2..][..w2], &pooled[y1 * w2..][..w2]);
                for (x, &(x0, x1, lx0, lx1)) in xs.iter().enumerate() {
                    dst[y * w + x] = (r0[x0] * lx0 + r0[x1] * lx1) * ly0 + (r1[x0] * lx0 + r1[x1] * lx1) * ly1;
                }
            }
        }
    }
    Ok(Tensor::f_from_slice(&out)?.f_view([n as i64, c as i64, h as i64, w as i64])?)
}

/// 3×3 mean with stride 1 over one `h × w` plane; cells outside the plane count as zeros (`zero_pad`) or are
/// left out of the mean. Summed row by row as libtorch's pooling kernel does.
fn box_mean_3x3(src: &[f32], dst: &mut [f32], h: usize, w: usize, zero_pad: bool) {
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(1), (y + 2).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(1), (x + 2).min(w));
            let mut sum = 0f32;
            for row in src[y0 * w..y1 * w].chunks_exact(w) {
                for v in &row[x0..x1] {
                    sum += v;
                }
            }
            dst[y * w + x] = sum / if zero_pad { 9.0 } else { ((y1 - y0) * (x1 - x0)) as f32 };
        }
    }
}

/// [`embed`] in libtorch ops (any kind of tensor).
pub fn embed_torch(f: &Features, zero_pad: bool) -> Result<Tensor> {
    tch::no_grad(|| {
        let a8 = f.s8.f_avg_pool2d([3, 3], [1, 1], [1, 1], false, zero_pad, None::<i64>)?;
        let a16 = f.s16.f_avg_pool2d([3, 3], [1, 1], [1, 1], false, zero_pad, None::<i64>)?;
        let s = a8.size();
        if s.len() != 4 {
            return Err(Error::Shape(format!("stride-8 map must be (B, C, h, w), got {s:?}")));
        }
        let u16 = a16.f_upsample_bilinear2d([s[2], s[3]], false, None, None)?;
        Ok(Tensor::f_cat(&[a8, u16], 1)?)
    })
}

/// Per-channel weights `(D,)` that give both taps the same share of the squared distance: each tap's channels
/// are divided by the root of that tap's mean squared patch norm over `embeddings` (normal images, `(D, h, w)`).
/// Without it the stride-16 tap (112 channels, larger activations) dominates every distance and the finer
/// stride-8 tap, which sees the smallest defects, hardly counts.
pub fn tap_weights(embeddings: &[&Tensor]) -> Result<Vec<f32>> {
    let (mut e8, mut e16, mut n) = (0f64, 0f64, 0f64);
    tch::no_grad(|| -> Result<()> {
        for e in embeddings {
            let s = e.size();
            if s.len() != 3 || s[0] != EMBED_DIM {
                return Err(Error::Shape(format!("embedding must be ({EMBED_DIM}, h, w), got {s:?}")));
            }
            let sq = e.f_to_kind(Kind::Float)?.f_square()?;
            e8 += sq.f_narrow(0, 0, S8_CHANNELS)?.f_sum(Kind::Double)?.f_double_value(&[])?;
            e16 += sq.f_narrow(0, S8_CHANNELS, S16_CHANNELS)?.f_sum(Kind::Double)?.f_double_value(&[])?;
            n += (s[1] * s[2]) as f64;
        }
        Ok(())
    })?;
    if n == 0.0 || e8 <= 0.0 || e16 <= 0.0 {
        return Err(Error::Shape("no patch energy to weigh the taps by".into()));
    }
    let (w8, w16) = ((n / e8).sqrt() as f32, (n / e16).sqrt() as f32);
    Ok((0..EMBED_DIM).map(|c| if c < S8_CHANNELS { w8 } else { w16 }).collect())
}

/// Scales embeddings `(B, D, h, w)` or `(D, h, w)` channel-wise by `weights` (`(D,)`).
pub fn weigh(e: &Tensor, weights: &[f32]) -> Result<Tensor> {
    let s = e.size();
    if weights.len() as i64 != EMBED_DIM || s.len() < 3 {
        return Err(Error::Shape(format!("tap weights {} for embedding {s:?}", weights.len())));
    }
    let mut shape = vec![1i64; s.len()];
    shape[s.len() - 3] = EMBED_DIM;
    let w = Tensor::f_from_slice(weights)?.f_view(shape.as_slice())?;
    Ok(tch::no_grad(|| e.f_mul(&w.f_to_kind(e.kind())?))?)
}

/// `(B, D, h, w) -> (B·h·w, D)`, rows in image-major, then row-major order.
pub fn to_rows(e: &Tensor) -> Result<Tensor> {
    let s = e.size();
    if s.len() != 4 {
        return Err(Error::Shape(format!("expected (B, D, h, w), got {s:?}")));
    }
    Ok(e.f_permute([0, 2, 3, 1])?.f_reshape([-1, s[1]])?.f_contiguous()?)
}

/// Row `at` of [`to_rows`] for one image's embedding `(1, D, h, w)`, as `(1, D)`, without building the others.
pub fn patch_row(e: &Tensor, at: usize) -> Result<Tensor> {
    let s = e.size();
    if s.len() != 4 || s[0] != 1 || at as i64 >= s[2] * s[3] {
        return Err(Error::Shape(format!("patch {at} of an embedding {s:?}")));
    }
    Ok(e.f_flatten(2, 3)?.f_select(2, at as i64)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_in_rust_equals_libtorch() {
        let mut rng = crate::engine::coreset::SplitMix64::new(9);
        for &(n, h, w) in &[(1i64, 24i64, 32i64), (2, 8, 4), (1, 2, 2), (1, 6, 10)] {
            let mut randn = |k: i64| -> Tensor { Tensor::from_slice(&(0..k).map(|_| rng.normal() as f32 * 3.0).collect::<Vec<f32>>()) };
            let s8 = randn(n * S8_CHANNELS * h * w).view([n, S8_CHANNELS, h, w]);
            let s16 = randn(n * S16_CHANNELS * (h / 2) * (w / 2)).view([n, S16_CHANNELS, h / 2, w / 2]);
            let f = Features { s8, s16 };
            for zero_pad in [false, true] {
                let (ours, theirs) = (embed(&f, zero_pad).unwrap(), embed_torch(&f, zero_pad).unwrap());
                assert_eq!(ours.size(), theirs.size());
                let worst = (&ours - &theirs).abs().max().double_value(&[]);
                assert!(worst < 1e-5, "{n}×{h}×{w}, zero_pad {zero_pad}: largest difference {worst}");
            }
        }
    }

    #[test]
    fn tap_weights_give_both_taps_the_same_energy() {
        // Stride-8 channels of magnitude 1, stride-16 channels of magnitude 10.
        let e = Tensor::cat(
            &[Tensor::ones([S8_CHANNELS, 4, 4], (Kind::Float, tch::Device::Cpu)), Tensor::ones([S16_CHANNELS, 4, 4], (Kind::Float, tch::Device::Cpu)) * 10.0],
            0,
        );
        let w = tap_weights(&[&e]).unwrap();
        let x = weigh(&e, &w).unwrap();
        let energy = |t: Tensor| t.square().sum(Kind::Double).double_value(&[]);
        let (a, b) = (energy(x.narrow(0, 0, S8_CHANNELS)), energy(x.narrow(0, S8_CHANNELS, S16_CHANNELS)));
        assert!((a - b).abs() < 1e-3 * a, "{a} vs {b}");
        // Batched embeddings are weighed alike; wrong shapes are errors.
        let xb = weigh(&e.unsqueeze(0), &w).unwrap();
        assert!(xb.squeeze_dim(0).allclose(&x, 1e-6, 1e-6, false));
        assert!(weigh(&e, &w[..10]).is_err());
        assert!(tap_weights(&[&Tensor::zeros([3, 2, 2], (Kind::Float, tch::Device::Cpu))]).is_err());
    }

    #[test]
    fn embedding_shape() {
        let f = Features {
            s8: Tensor::ones([2, S8_CHANNELS, 8, 6], (Kind::Float, tch::Device::Cpu)),
            s16: Tensor::ones([2, S16_CHANNELS, 4, 3], (Kind::Float, tch::Device::Cpu)),
        };
        let e = embed(&f, false).unwrap();
        assert_eq!(e.size(), [2, EMBED_DIM, 8, 6]);
        // Averaging over valid cells keeps a constant map constant, edges included.
        assert!((e.min().double_value(&[]) - 1.0).abs() < 1e-6);
        // Counting the zero padding damps the edges: a corner of a constant map is 4/9 of it, the inside unchanged.
        let z = embed(&f, true).unwrap();
        assert!((z.double_value(&[0, 0, 0, 0]) - 4.0 / 9.0).abs() < 1e-6);
        assert!((z.double_value(&[0, 0, 3, 3]) - 1.0).abs() < 1e-6);
        assert_eq!(to_rows(&e).unwrap().size(), [96, EMBED_DIM]);
    }

    #[test]
    fn patch_row_is_that_row_of_to_rows() {
        let e = Tensor::arange(5 * 3 * 4, (Kind::Float, tch::Device::Cpu)).view([1, 5, 3, 4]);
        let rows = to_rows(&e).unwrap();
        for at in [0usize, 5, 11] {
            assert!(patch_row(&e, at).unwrap().equal(&rows.narrow(0, at as i64, 1)), "patch {at}");
        }
        assert!(patch_row(&e, 12).is_err());
        assert!(patch_row(&Tensor::cat(&[&e, &e], 0), 0).is_err());
    }
}
