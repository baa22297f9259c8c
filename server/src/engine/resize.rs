//! Interpolation with libtorch's weights, without libtorch: the backbone's input from 8-bit RGB pixels: antialiased bilinear resizing (PIL's filter, which is libtorch's
//! `_upsample_bilinear2d_aa` with `align_corners = false`) and normalisation to `[-1, 1]`, written straight
//! into the `(3, H, W)` planes the network takes.
//!
//! The same weights as libtorch's, in f32, without first turning the whole image into floats: the vertical pass
//! reads the 8-bit rows (contiguous, vectorised), so only `H` rows reach the horizontal pass. The result
//! equals libtorch's up to the order of float additions (tested).

/// The taps of a one-dimensional antialiased linear resize from `input` to `output` samples: for each output
/// sample the first input sample and the normalised weights.
struct Taps {
    start: Vec<usize>,
    len: Vec<usize>,
    /// `output × max_len`, row `i` holds output `i`'s weights.
    weights: Vec<f32>,
    max_len: usize,
}

impl Taps {
    fn new(input: usize, output: usize) -> Taps {
        let scale = input as f32 / output as f32;
        // The triangle filter stretched over the input when shrinking (antialiasing), its own width otherwise.
        let (support, inv) = if scale >= 1.0 { (scale, 1.0 / scale) } else { (1.0, 1.0) };
        let max_len = (support.ceil() as usize) * 2 + 1;
        let (mut start, mut len, mut weights) = (Vec::with_capacity(output), Vec::with_capacity(output), vec![0f32; output * max_len]);
        for i in 0..output {
            let center = scale * (i as f32 + 0.5);
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).min(input as i64).max(lo as i64) as usize;
            let n = (hi - lo).min(max_len);
            let w = &mut weights[i * max_len..i * max_len + n];
            let mut total = 0f32;
            for (j, wj) in w.iter_mut().enumerate() {
                let x = ((j + lo) as f32 - center + 0.5) * inv;
                *wj = (1.0 - x.abs()).max(0.0);
                total += *wj;
            }
            if total != 0.0 {
                w.iter_mut().for_each(|wj| *wj /= total);
            }
            start.push(lo);
            len.push(n);
        }
        Taps { start, len, weights, max_len }
    }

    fn of(&self, i: usize) -> (usize, &[f32]) {
        (self.start[i], &self.weights[i * self.max_len..i * self.max_len + self.len[i]])
    }
}

/// libtorch's bilinear source samples and weights along one axis (`upsample_bilinear2d`, `align_corners =
/// false`): for each of `output` samples, `(i0, i1, w0, w1)` with the value `x[i0]·w0 + x[i1]·w1`.
pub(super) fn linear_axis(input: usize, output: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|i| {
            let real = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (real.floor() as usize).min(input - 1);
            let l1 = (real - i0 as f32).clamp(0.0, 1.0);
            let i1 = i0 + (i0 < input - 1) as usize;
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

/// `rgb`: `width × height` interleaved 8-bit RGB rows. Returns `(3, out_h, out_w)` planes of `x / 127.5 − 1`
/// where `x` is the antialiased bilinear resize of each channel (on 0–255 values).
pub fn resize_normalize(rgb: &[u8], width: usize, height: usize, out_w: usize, out_h: usize) -> Vec<f32> {
    debug_assert_eq!(rgb.len(), width * height * 3);
    let plane = out_w * out_h;
    let mut out = vec![0f32; 3 * plane];
    let row_len = width * 3;
    let (vt, ht) = (Taps::new(height, out_h), Taps::new(width, out_w));
    // One output row at a time: vertical pass into `acc` (interleaved, input width), horizontal pass into the
    // planes.
    let mut acc = vec![0f32; row_len];
    for y in 0..out_h {
        if out_h == height {
            acc.iter_mut().zip(&rgb[y * row_len..(y + 1) * row_len]).for_each(|(a, &p)| *a = p as f32);
        } else {
            let (lo, w) = vt.of(y);
            acc.iter_mut().for_each(|a| *a = 0.0);
            for (k, &wk) in w.iter().enumerate() {
                let row = &rgb[(lo + k) * row_len..(lo + k + 1) * row_len];
                acc.iter_mut().zip(row).for_each(|(a, &p)| *a += wk * p as f32);
            }
        }
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        let (r, g, b) = (&mut r[y * out_w..(y + 1) * out_w], &mut g[y * out_w..(y + 1) * out_w], &mut b[y * out_w..(y + 1) * out_w]);
        for x in 0..out_w {
            let (s0, s1, s2) = if out_w == width {
                (acc[x * 3], acc[x * 3 + 1], acc[x * 3 + 2])
            } else {
                let (lo, w) = ht.of(x);
                let px = &acc[lo * 3..(lo + w.len()) * 3];
                let (mut s0, mut s1, mut s2) = (0f32, 0f32, 0f32);
                for (wj, p) in w.iter().zip(px.chunks_exact(3)) {
                    s0 += wj * p[0];
                    s1 += wj * p[1];
                    s2 += wj * p[2];
                }
                (s0, s1, s2)
            };
            r[x] = s0 / 127.5 - 1.0;
            g[x] = s1 / 127.5 - 1.0;
            b[x] = s2 / 127.5 - 1.0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    fn torch_reference(rgb: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> Vec<f32> {
        let x = Tensor::from_slice(rgb).view([1, h as i64, w as i64, 3]).permute([0, 3, 1, 2]).to_kind(Kind::Float);
        let x = if (w, h) == (ow, oh) { x } else { x.internal_upsample_bilinear2d_aa([oh as i64, ow as i64], false, None, None) };
        let y = (x / 127.5 - 1.0).contiguous().view([-1]);
        Vec::<f32>::try_from(&y).unwrap()
    }

    #[test]
    fn equals_libtorch_antialiased_bilinear() {
        let mut rng = crate::engine::coreset::SplitMix64::new(5);
        // Shrinking by odd and even factors, enlarging, one axis unchanged, both unchanged, tiny inputs.
        for &(w, h, ow, oh) in &[(550, 380, 256, 160), (2000, 1334, 640, 416), (97, 61, 224, 128), (300, 200, 300, 96), (64, 64, 64, 64), (3, 2, 32, 32)] {
            let rgb: Vec<u8> = (0..w * h * 3).map(|_| (rng.next_f64() * 256.0) as u8).collect();
            let ours = resize_normalize(&rgb, w, h, ow, oh);
            let theirs = torch_reference(&rgb, w, h, ow, oh);
            assert_eq!(ours.len(), theirs.len());
            let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 2e-5, "{w}×{h} → {ow}×{oh}: largest difference {worst}");
        }
    }
}
