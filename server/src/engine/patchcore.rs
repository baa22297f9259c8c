//! PatchCore (Roth, Pemula, Zepeda, Schölkopf, Brox, Gehler, 2022, "Towards Total Recall in Industrial
//! Anomaly Detection", CVPR): locally aware patch features from two mid-level backbone taps, a memory bank of
//! normal patches subsampled by greedy coreset (see `coreset`), and nearest-neighbour distances as patch
//! anomaly scores; the image score is the largest patch score.
//!
//! Shapes: `B` images, `D = 40 + 112 = 152` feature channels, `h × w` = the stride-8 grid (`H/8 × W/8`).

use super::backbone::{Features, S16_CHANNELS, S8_CHANNELS};
use super::{Error, Result};
use tch::{Kind, Tensor};

/// Channels of a patch feature: the stride-8 tap and the upsampled stride-16 tap, concatenated.
pub const EMBED_DIM: i64 = S8_CHANNELS + S16_CHANNELS;

/// Locally aware patch features: 3×3 average pooling (stride 1, edges averaged over valid cells) of both taps,
/// the stride-16 map bilinearly upsampled onto the stride-8 grid, concatenated along channels.
/// `s8: (B, 40, h, w)`, `s16: (B, 112, h/2, w/2)` → `(B, 152, h, w)`.
pub fn embed(f: &Features) -> Result<Tensor> {
    tch::no_grad(|| {
        let a8 = f.s8.f_avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None::<i64>)?;
        let a16 = f.s16.f_avg_pool2d([3, 3], [1, 1], [1, 1], false, false, None::<i64>)?;
        let s = a8.size();
        if s.len() != 4 {
            return Err(Error::Shape(format!("stride-8 map must be (B, C, h, w), got {s:?}")));
        }
        let u16 = a16.f_upsample_bilinear2d([s[2], s[3]], false, None, None)?;
        Ok(Tensor::f_cat(&[a8, u16], 1)?)
    })
}

/// `(B, D, h, w) -> (B·h·w, D)`, rows in image-major, then row-major order.
pub fn to_rows(e: &Tensor) -> Result<Tensor> {
    let s = e.size();
    if s.len() != 4 {
        return Err(Error::Shape(format!("expected (B, D, h, w), got {s:?}")));
    }
    Ok(e.f_permute([0, 2, 3, 1])?.f_reshape([-1, s[1]])?.f_contiguous()?)
}

/// Principal components of normal patch features, to search nearest neighbours in fewer dimensions:
/// `(N, D)` → `(N, k)` = `(x − mean) · components`.
pub struct Pca {
    /// `(D,)`
    pub mean: Tensor,
    /// `(D, k)`, columns by decreasing variance.
    pub components: Tensor,
}

impl Clone for Pca {
    fn clone(&self) -> Self {
        Pca { mean: self.mean.shallow_clone(), components: self.components.shallow_clone() }
    }
}

impl Pca {
    /// Fits the top `k` components of `rows: (N, D)` (eigen-decomposition of the covariance).
    pub fn fit(rows: &Tensor, k: i64) -> Result<Pca> {
        let s = rows.size();
        if s.len() != 2 || s[0] < 2 || k < 1 || k > s[1] {
            return Err(Error::Shape(format!("PCA of {k} components from rows {s:?}")));
        }
        tch::no_grad(|| {
            let x = rows.f_to_kind(Kind::Double)?;
            let mean = x.f_mean_dim([0i64].as_slice(), false, Kind::Double)?;
            let c = x.f_sub(&mean)?;
            let cov = c.f_tr()?.f_matmul(&c)?.f_div_scalar((s[0] - 1) as f64)?;
            let (_, vecs) = cov.f_linalg_eigh("L")?; // ascending eigenvalues
            let components = vecs.f_narrow(1, s[1] - k, k)?.f_flip([1])?.f_to_kind(Kind::Float)?.f_contiguous()?;
            Ok(Pca { mean: mean.f_to_kind(Kind::Float)?, components })
        })
    }

    pub fn input_dim(&self) -> i64 {
        self.components.size()[0]
    }

    pub fn output_dim(&self) -> i64 {
        self.components.size()[1]
    }

    /// `(N, D)` → `(N, k)`.
    pub fn apply(&self, rows: &Tensor) -> Result<Tensor> {
        Ok(rows.f_to_kind(Kind::Float)?.f_sub(&self.mean)?.f_matmul(&self.components)?)
    }
}

/// A memory bank of normal patch features, `(M, D)` (or `(M, k)` in PCA space), with its squared row norms
/// cached.
pub struct MemoryBank {
    pub bank: Tensor,
    /// Queries are projected with this first, when set.
    pub pca: Option<Pca>,
    /// `(1, M)` squared row norms.
    sq: Tensor,
    /// `(D, M)`: `−2 · bankᵀ`, so that one `addmm` gives `|m|² − 2 q·m`.
    neg2_t: Tensor,
}

/// Queries are processed in chunks so that the `(chunk, M)` distance matrix stays under this many floats
/// (64 MiB).
const MAX_DIST_FLOATS: i64 = 16 << 20;

impl MemoryBank {
    /// `bank: (M, D)` float, already in PCA space when `pca` is given.
    pub fn new(bank: Tensor, pca: Option<Pca>) -> Result<Self> {
        let s = bank.size();
        if s.len() != 2 || s[0] == 0 {
            return Err(Error::Shape(format!("memory bank must be a non-empty (M, D) matrix, got {s:?}")));
        }
        if let Some(p) = &pca {
            if p.output_dim() != s[1] {
                return Err(Error::Shape(format!("PCA gives {} dims, bank has {}", p.output_dim(), s[1])));
            }
        }
        let bank = bank.f_to_kind(Kind::Float)?.f_contiguous()?;
        let sq = bank.f_mul(&bank)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?.f_unsqueeze(0)?;
        let neg2_t = bank.f_tr()?.f_mul_scalar(-2.0)?.f_contiguous()?;
        Ok(MemoryBank { bank, pca, sq, neg2_t })
    }

    pub fn len(&self) -> i64 {
        self.bank.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Euclidean distance from each query row to its nearest bank row, in matrix form
    /// (`|q|² + |m|² − 2 q·mᵀ`, clamped at 0), chunked over queries to bound memory.
    /// `queries: (N, D)` → `(N,)`.
    pub fn nearest_distances(&self, queries: &Tensor) -> Result<Tensor> {
        let s = queries.size();
        let d = self.pca.as_ref().map_or(self.bank.size()[1], |p| p.input_dim());
        if s.len() != 2 || s[1] != d {
            return Err(Error::Shape(format!("queries must be (N, {d}), got {s:?}")));
        }
        tch::no_grad(|| {
            let q = match &self.pca {
                Some(p) => p.apply(queries)?,
                None => queries.f_to_kind(Kind::Float)?,
            };
            let m = self.len();
            let chunk = (MAX_DIST_FLOATS / m).max(1);
            let mut outs = Vec::new();
            let mut start = 0;
            while start < s[0] {
                let len = chunk.min(s[0] - start);
                let qc = q.f_narrow(0, start, len)?;
                let qsq = qc.f_mul(&qc)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?; // (n,)
                // |m|² − 2 q·m in one pass; |q|² is the same for every m, so it is added after the min.
                let part = self.sq.f_addmm(&qc, &self.neg2_t)?; // (n, M)
                let (min, _) = part.f_min_dim(1, false)?;
                outs.push(min.f_add(&qsq)?.f_clamp_min(0.0)?.f_sqrt()?);
                start += len;
            }
            Ok(Tensor::f_cat(&outs, 0)?)
        })
    }

    /// Patch score maps for a batch of embeddings: `(B, D, h, w)` → `(B, h, w)`.
    pub fn score_maps(&self, embedding: &Tensor) -> Result<Tensor> {
        let s = embedding.size();
        let rows = to_rows(embedding)?;
        let d = self.nearest_distances(&rows)?;
        Ok(d.f_view([s[0], s[2], s[3]])?)
    }
}

/// Image scores from patch score maps: the largest patch score of each image. `(B, h, w)` → `(B,)`.
pub fn image_scores(maps: &Tensor) -> Result<Tensor> {
    let s = maps.size();
    if s.len() != 3 {
        return Err(Error::Shape(format!("score maps must be (B, h, w), got {s:?}")));
    }
    Ok(maps.f_flatten(1, 2)?.f_amax([1i64].as_slice(), false)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_distance_by_hand() {
        // Bank: (0,0), (3,4). Queries: (0,1) → 1; (3,0) → 3 (to (0,0)) vs 4 → 3; (6,8) → 5.
        let bank = MemoryBank::new(Tensor::from_slice(&[0f32, 0., 3., 4.]).view([2, 2]), None).unwrap();
        let q = Tensor::from_slice(&[0f32, 1., 3., 0., 6., 8.]).view([3, 2]);
        let d: Vec<f32> = Vec::try_from(&bank.nearest_distances(&q).unwrap()).unwrap();
        assert_eq!(d.len(), 3);
        for (got, want) in d.iter().zip([1.0, 3.0, 5.0]) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        // Wrong width is an error, not a panic.
        assert!(bank.nearest_distances(&Tensor::zeros([2, 3], (Kind::Float, tch::Device::Cpu))).is_err());
    }

    #[test]
    fn pca_keeps_the_main_direction_and_distances_along_it() {
        // Points on the line y = 2x (plus tiny noise in z): one component captures them.
        let rows = Tensor::from_slice(&[0f32, 0., 0., 1., 2., 0.01, 2., 4., -0.01, 3., 6., 0.]).view([4, 3]);
        let p = Pca::fit(&rows, 1).unwrap();
        assert_eq!(p.components.size(), [3, 1]);
        let bank = MemoryBank::new(p.apply(&rows.narrow(0, 0, 1)).unwrap(), Some(p.clone())).unwrap();
        // Distance from (3, 6, 0) to (0, 0, 0) along the line is sqrt(45).
        let d = bank.nearest_distances(&rows.narrow(0, 3, 1)).unwrap().double_value(&[0]);
        assert!((d - 45f64.sqrt()).abs() < 1e-2, "{d}");
        assert!(Pca::fit(&rows, 4).is_err());
        assert!(MemoryBank::new(Tensor::zeros([2, 2], (Kind::Float, tch::Device::Cpu)), Some(p)).is_err());
    }

    #[test]
    fn embedding_shape_and_image_score() {
        let f = Features {
            s8: Tensor::ones([2, S8_CHANNELS, 8, 6], (Kind::Float, tch::Device::Cpu)),
            s16: Tensor::ones([2, S16_CHANNELS, 4, 3], (Kind::Float, tch::Device::Cpu)),
        };
        let e = embed(&f).unwrap();
        assert_eq!(e.size(), [2, EMBED_DIM, 8, 6]);
        // Averaging over valid cells keeps a constant map constant, edges included.
        assert!((e.min().double_value(&[]) - 1.0).abs() < 1e-6);
        assert_eq!(to_rows(&e).unwrap().size(), [96, EMBED_DIM]);
        let maps = Tensor::from_slice(&[0.1f32, 0.7, 0.2, 0.3, 0.9, 0.0, 0.0, 0.1]).view([2, 2, 2]);
        let s: Vec<f32> = Vec::try_from(&image_scores(&maps).unwrap()).unwrap();
        assert_eq!(s, vec![0.7, 0.9]);
    }
}
