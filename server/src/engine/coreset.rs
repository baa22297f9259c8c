//! Greedy k-center coreset subsampling of the memory bank, as in PatchCore (Roth et al., 2022, "Towards Total
//! Recall in Industrial Anomaly Detection", CVPR; Algorithm 1), after Sener & Savarese (2018): repeatedly add
//! the point farthest from the points chosen so far. Distances are computed on a fixed, seeded Gaussian random
//! projection of the features (Johnson–Lindenstrauss), which keeps the selection cheap.

use super::error::Result;
use tch::{Kind, Tensor};

/// A deterministic pseudo-random generator (SplitMix64) so that projections and subsamples are the same on
/// every machine and every libtorch version.
#[derive(Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n.max(1)
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(1e-300);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// A `(dim_in, dim_out)` Gaussian projection matrix with entries N(0, 1/dim_out), from `seed`.
pub fn random_projection(dim_in: i64, dim_out: i64, seed: u64) -> Result<Tensor> {
    let mut rng = SplitMix64::new(seed);
    let scale = 1.0 / (dim_out as f64).sqrt();
    let data: Vec<f32> = (0..dim_in * dim_out).map(|_| (rng.normal() * scale) as f32).collect();
    Ok(Tensor::f_from_slice(&data)?.f_view([dim_in, dim_out])?)
}

/// Greedy k-center selection. `points`: `(N, D)` float; returns `k` distinct row indices (`min(k, N)`), the
/// first being `start`. Each step picks the row with the largest squared distance to its nearest selected
/// row (ties: the lowest index). Cost: `k` matrix–vector products of `(N, D)`.
pub fn greedy_k_center(points: &Tensor, k: usize, start: usize) -> Result<Vec<i64>> {
    let size = points.size();
    if size.len() != 2 {
        return Err(super::error::Error::Shape(format!("coreset expects (N, D) points, got {size:?}")));
    }
    let n = size[0] as usize;
    let k = k.min(n);
    if k == 0 {
        return Ok(Vec::new());
    }
    tch::no_grad(|| -> Result<Vec<i64>> {
        let p = points.f_to_kind(Kind::Float)?.f_contiguous()?;
        let sq = p.f_mul(&p)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?; // (N,)
        let dist_to = |i: i64| -> Result<Tensor> {
            let row = p.f_get(i)?; // (D,)
            let row_sq = sq.f_get(i)?;
            // |x|² + |c|² − 2 x·c, clamped at 0
            Ok(sq.f_add(&row_sq)?.f_sub(&p.f_mv(&row)?.f_mul_scalar(2.0)?)?.f_clamp_min(0.0)?)
        };
        let start = start.min(n - 1) as i64;
        let mut chosen = vec![start];
        let mut min_d = dist_to(start)?.f_index_fill(0, &Tensor::f_from_slice(&[start])?, -1.0)?;
        while chosen.len() < k {
            let next = min_d.f_argmax(0, false)?.f_int64_value(&[])?;
            chosen.push(next);
            let d = dist_to(next)?;
            // A chosen point is at distance 0 from itself; make sure numerical noise cannot pick it again.
            min_d = min_d.f_minimum(&d)?.f_index_fill(0, &Tensor::f_from_slice(&[next])?, -1.0)?;
        }
        Ok(chosen)
    })
}

/// Picks per group of [`grouped_k_center`]: the largest selection run over all candidates at once.
pub const GROUP_PICKS: usize = 2048;

/// Greedy k-center over contiguous groups of the rows (the candidates come image by image, so a group is a run
/// of images): `ceil(k / per_group)` groups, each picking its share of `k` in proportion to its rows. One
/// global selection costs `k` passes over all `N` rows; the groups together cost `k · N / groups`, so a bank
/// eight times larger costs what one selection did. Each group covers its own rows as densely as one
/// selection of the same share would, so the union covers every row about as well as a global selection.
/// Returns `min(k, N)` distinct row indices.
pub fn grouped_k_center(points: &Tensor, k: usize, per_group: usize, rng: &mut SplitMix64) -> Result<Vec<i64>> {
    let n = points.size().first().copied().unwrap_or(0).max(0) as usize;
    let k = k.min(n);
    let groups = k.div_ceil(per_group.max(1)).max(1);
    if groups == 1 {
        return greedy_k_center(points, k, rng.below(n.max(1)));
    }
    let mut picks = Vec::with_capacity(k);
    let (mut start, mut taken) = (0usize, 0usize);
    for g in 0..groups {
        let end = n * (g + 1) / groups;
        let len = end - start;
        // This group's share, so that the shares add up to k exactly.
        let share = (k * end / n - taken).min(len);
        taken += share;
        if share > 0 {
            let part = points.f_narrow(0, start as i64, len as i64)?;
            picks.extend(greedy_k_center(&part, share, rng.below(len))?.into_iter().map(|i| i + start as i64));
        }
        start = end;
    }
    Ok(picks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_farthest_points_first() {
        // Points on a line: 0, 1, 2, 10, 11. From 0: farthest is 11 (index 4); then the point farthest from
        // {0, 11} is 2 or 10 (distance 2 vs 1 → index 2 at distance 2... from 0: 2; from 11: 9 → min 2) vs
        // 10 (min(10, 1) = 1) vs 1 (1) → index 2; then 1 (min(1,1)=1) or 3 (10: min(8,1)=1) tie → lowest, 1.
        let pts = Tensor::from_slice(&[0f32, 1.0, 2.0, 10.0, 11.0]).view([5, 1]);
        let picks = greedy_k_center(&pts, 4, 0).unwrap();
        assert_eq!(picks, vec![0, 4, 2, 1]);
        assert_eq!(greedy_k_center(&pts, 10, 0).unwrap().len(), 5);
        assert!(greedy_k_center(&Tensor::from_slice(&[1f32]), 1, 0).is_err());
    }

    #[test]
    fn groups_split_the_picks_and_cover_every_group() {
        // Two clusters far apart, 6 rows each: with groups of at most 2 picks, k = 4 takes 2 from each half.
        let v: Vec<f32> = (0..6).map(|i| i as f32).chain((0..6).map(|i| 100.0 + i as f32)).collect();
        let pts = Tensor::from_slice(&v).view([12, 1]);
        let mut rng = SplitMix64::new(3);
        let picks = grouped_k_center(&pts, 4, 2, &mut rng).unwrap();
        assert_eq!(picks.len(), 4);
        assert_eq!(picks.iter().filter(|&&i| i < 6).count(), 2);
        let mut d = picks.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 4);
        // One group: the same as a single selection from the same start.
        let mut r1 = SplitMix64::new(9);
        let mut r2 = SplitMix64::new(9);
        assert_eq!(grouped_k_center(&pts, 3, 8, &mut r1).unwrap(), greedy_k_center(&pts, 3, r2.below(12)).unwrap());
        // k larger than the rows: every row once.
        assert_eq!(grouped_k_center(&pts, 50, 2, &mut rng).unwrap().len(), 12);
    }

    #[test]
    fn projection_is_seeded() {
        let a = random_projection(8, 4, 7).unwrap();
        let b = random_projection(8, 4, 7).unwrap();
        let c = random_projection(8, 4, 8).unwrap();
        assert_eq!(a.size(), [8, 4]);
        assert!(a.equal(&b));
        assert!(!a.equal(&c));
    }
}
