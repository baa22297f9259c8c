//! Principal components of normal patch features ([`Pca`]), PatchCore's nearest-neighbour search in fewer
//! dimensions, and the seeded streamed sampling of patch rows that feeds the PCA fit and the coreset
//! candidates ([`sample_rows`]); re-exported from `patchcore`.
//!
//! Shapes: `D = 152` feature channels, `k` components kept, embeddings `(D, h, w)` on the stride-8 grid.

use super::coreset::SplitMix64;
use super::embedding::to_rows;
use super::error::{Error, Result};
use tch::{Kind, Tensor};

/// Principal components of normal patch features, to search nearest neighbours in fewer dimensions:
/// `(N, D)` → `(N, k)` = `(x − mean) · components`, or `(N, k + 1)` with the residual's norm
/// `|x − mean − (x − mean)·C·Cᵀ|` appended.
///
/// The residual column matters for anomaly detection: the directions PCA drops are those where *normal*
/// patches barely vary, so an anomalous patch that leaves the normal subspace differs from every bank row
/// mostly there. With the residual norm as one more coordinate the distance computed is bounded by the exact
/// one, `|Δy|² + (|r_q| − |r_m|)² ≤ |q − m|²` (triangle inequality on the residuals), and no longer blind to
/// what was discarded.
pub struct Pca {
    /// `(D,)`
    pub mean: Tensor,
    /// `(D, k)`, columns by decreasing variance.
    pub components: Tensor,
    /// Append the residual norm as an extra output column.
    pub residual: bool,
}

impl Clone for Pca {
    fn clone(&self) -> Self {
        Pca { mean: self.mean.shallow_clone(), components: self.components.shallow_clone(), residual: self.residual }
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
            Ok(Pca { mean: mean.f_to_kind(Kind::Float)?, components, residual: false })
        })
    }

    /// The same projection with the residual-norm column appended (see the type's notes).
    pub fn with_residual(mut self) -> Pca {
        self.residual = true;
        self
    }

    pub fn input_dim(&self) -> i64 {
        self.components.size()[0]
    }

    /// Principal components kept (`k`).
    pub fn components_kept(&self) -> i64 {
        self.components.size()[1]
    }

    /// Columns of the output: `k`, or `k + 1` with the residual.
    pub fn output_dim(&self) -> i64 {
        self.components_kept() + self.residual as i64
    }

    /// `(N, D)` → `(N, k)` or `(N, k + 1)`.
    pub fn apply(&self, rows: &Tensor) -> Result<Tensor> {
        let c = rows.f_to_kind(Kind::Float)?.f_sub(&self.mean)?;
        let y = c.f_matmul(&self.components)?;
        if !self.residual {
            return Ok(y);
        }
        // The components are orthonormal, so |residual|² = |c|² − |y|².
        let total = c.f_mul(&c)?.f_sum_dim_intlist([1i64].as_slice(), true, Kind::Float)?;
        let kept = y.f_mul(&y)?.f_sum_dim_intlist([1i64].as_slice(), true, Kind::Float)?;
        let r = total.f_sub(&kept)?.f_clamp_min(0.0)?.f_sqrt()?;
        Ok(Tensor::f_cat(&[y, r], 1)?)
    }
}

/// A seeded uniform sample of at most `cap` rows out of `total`, without replacement, in increasing order
/// (Knuth's selection sampling, Algorithm S): O(total) time, O(cap) memory, so rows can be gathered image by
/// image without ever joining all of them.
pub fn sample_row_indices(total: usize, cap: usize, seed: u64) -> Vec<usize> {
    if total <= cap {
        return (0..total).collect();
    }
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(cap);
    for t in 0..total {
        let need = cap - out.len();
        if need == 0 {
            break;
        }
        if ((total - t) as f64 * rng.next_f64()) < need as f64 {
            out.push(t);
        }
    }
    out
}

/// Gathers a seeded sample of at most `cap` patch rows from embeddings `(D, h, w)` (any kind), one image at a
/// time, as f32 (through `pca` when given): `(min(cap, Σ h·w), D′)`. Memory: the sample plus one image's rows.
pub fn sample_rows(embeddings: &[&Tensor], cap: usize, seed: u64, pca: Option<&Pca>) -> Result<Tensor> {
    let counts: Vec<usize> = embeddings
        .iter()
        .map(|e| {
            let s = e.size();
            if s.len() != 3 {
                return Err(Error::Shape(format!("embedding must be (D, h, w), got {s:?}")));
            }
            Ok((s[1] * s[2]) as usize)
        })
        .collect::<Result<_>>()?;
    let total: usize = counts.iter().sum();
    let picks = sample_row_indices(total, cap, seed);
    let mut parts = Vec::new();
    let (mut start, mut j) = (0usize, 0usize);
    tch::no_grad(|| -> Result<()> {
        for (e, &n) in embeddings.iter().zip(&counts) {
            let from = j;
            while j < picks.len() && picks[j] < start + n {
                j += 1;
            }
            if j > from {
                let idx: Vec<i64> = picks[from..j].iter().map(|&p| (p - start) as i64).collect();
                let rows = to_rows(&e.f_unsqueeze(0)?)?.f_index_select(0, &Tensor::f_from_slice(&idx)?)?.f_to_kind(Kind::Float)?;
                parts.push(match pca {
                    Some(p) => p.apply(&rows)?,
                    None => rows,
                });
            }
            start += n;
        }
        Ok(())
    })?;
    if parts.is_empty() {
        return Err(Error::Shape("no patch rows to sample".into()));
    }
    Ok(Tensor::f_cat(&parts, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_sampling_is_streamed_seeded_and_uniform() {
        let s = sample_row_indices(1000, 100, 9);
        assert_eq!(s.len(), 100);
        assert!(s.windows(2).all(|w| w[0] < w[1]) && *s.last().unwrap() < 1000);
        assert_eq!(s, sample_row_indices(1000, 100, 9));
        assert_ne!(s, sample_row_indices(1000, 100, 10));
        assert_eq!(sample_row_indices(5, 10, 1), vec![0, 1, 2, 3, 4]);
        // Each half holds about half the picks.
        let big = sample_row_indices(100_000, 10_000, 1);
        let low = big.iter().filter(|&&i| i < 50_000).count();
        assert!((4_700..5_300).contains(&low), "{low}");
        // Gathered image by image = picked from all rows joined.
        let a = Tensor::arange(2 * 2 * 3, (Kind::Float, tch::Device::Cpu)).view([2, 2, 3]);
        let b = Tensor::arange(2 * 1 * 2, (Kind::Float, tch::Device::Cpu)).view([2, 1, 2]).f_add_scalar(100.0).unwrap();
        let got = sample_rows(&[&a, &b], 4, 5, None).unwrap();
        let all = Tensor::cat(&[to_rows(&a.unsqueeze(0)).unwrap(), to_rows(&b.unsqueeze(0)).unwrap()], 0);
        let idx: Vec<i64> = sample_row_indices(8, 4, 5).into_iter().map(|i| i as i64).collect();
        assert!(got.equal(&all.index_select(0, &Tensor::from_slice(&idx))));
    }
}
