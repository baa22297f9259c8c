//! PatchCore (Roth, Pemula, Zepeda, Schölkopf, Brox, Gehler, 2022, "Towards Total Recall in Industrial
//! Anomaly Detection", CVPR): locally aware patch features from two mid-level backbone taps, a memory bank of
//! normal patches subsampled by greedy coreset (see `coreset`), and nearest-neighbour distances as patch
//! anomaly scores; the image score is the largest patch score. The patch features themselves are in
//! `embedding`.
//!
//! Shapes: `B` images, `D = 40 + 112 = 152` feature channels, `h × w` = the stride-8 grid (`H/8 × W/8`).

use super::embedding::to_rows;
use super::error::{Error, Result};
pub use super::pca::{sample_row_indices, sample_rows, Pca};
use tch::{Kind, Tensor};

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
    /// The pruned search's cells (see [`MemoryBank::max_nearest_distance`]), when the bank is large enough:
    /// built at its first use, so the banks that never search that way (training's per-fold banks, which score
    /// every patch) never pay for them.
    cells: std::sync::OnceLock<Option<Cells>>,
}

/// The bank partitioned by nearest "coarse" row (the first `coarse` rows: the coreset's first picks, which
/// cover the rest): `rows` `(coarse, L, D)` holds up to `L` members of each cell (padding repeats a member),
/// `sq` `(coarse, L)` their squared norms.
struct Cells {
    coarse: i64,
    /// `coarse × L × D`, row-major.
    rows: Vec<f32>,
    /// `coarse × L`.
    sq: Vec<f32>,
    /// `coarse × L`: the bank row each member is (for searches that leave rows out).
    idx: Vec<i64>,
    dim: usize,
}

/// `a · b` with eight independent partial sums (vectorised; a plain float fold is not, as it fixes the order).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Members kept per cell (the bound only needs a subset; more cost memory per query).
const CELL_ROWS: usize = 24;

/// The coarse prefix of the pruned search: an eighth of the bank, at least 32 rows.
fn coarse_rows(m: i64) -> i64 {
    (m / 8).max(32).min(m)
}

/// Queries are processed in chunks so that the `(chunk, M)` distance matrix stays under this many floats
/// (1 MiB: it stays in a core's L2 cache between the matrix product and the row minimum).
const MAX_DIST_FLOATS: i64 = 256 << 10;

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
        Ok(MemoryBank { bank, pca, sq, neg2_t, cells: std::sync::OnceLock::new() })
    }

    /// Assigns every bank row to its nearest coarse row and keeps up to [`CELL_ROWS`] per cell.
    fn cells(bank: &Tensor, sq: &Tensor, neg2_t: &Tensor) -> Result<Option<Cells>> {
        let m = bank.size()[0];
        let coarse = coarse_rows(m);
        if coarse >= m {
            return Ok(None);
        }
        let part = sq.f_narrow(1, 0, coarse)?.f_addmm(bank, &neg2_t.f_narrow(1, 0, coarse)?)?; // (M, coarse)
        let (_, nearest) = part.f_min_dim(1, false)?;
        let nearest: Vec<i64> = Vec::try_from(&nearest)?;
        let mut members: Vec<Vec<i64>> = (0..coarse).map(|c| vec![c]).collect();
        for (j, &c) in nearest.iter().enumerate().skip(coarse as usize) {
            let cell = &mut members[c as usize];
            if cell.len() < CELL_ROWS {
                cell.push(j as i64);
            }
        }
        let idx: Vec<i64> = members.iter().flat_map(|v| (0..CELL_ROWS).map(move |i| v[i % v.len()])).collect();
        let at = Tensor::f_from_slice(&idx)?;
        let dim = bank.size()[1] as usize;
        let rows: Vec<f32> = Vec::try_from(&bank.f_index_select(0, &at)?.f_contiguous()?.f_view([-1])?)?;
        let sq: Vec<f32> = Vec::try_from(&sq.f_squeeze_dim(0)?.f_index_select(0, &at)?.f_contiguous()?)?;
        Ok(Some(Cells { coarse, rows, sq, idx, dim }))
    }

    /// The pruned search's cells, built at the first search that needs them (a hosted model's warm-up
    /// detections build them before the first request).
    fn search_cells(&self) -> Option<&Cells> {
        self.cells
            .get_or_init(|| {
                tch::no_grad(|| Self::cells(&self.bank, &self.sq, &self.neg2_t)).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "the pruned search's cells could not be built; searching in full");
                    None
                })
            })
            .as_ref()
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
        self.nearest_distances_to(queries, &self.sq)
    }

    /// [`MemoryBank::nearest_distances`] with the bank's squared row norms `sq: (1, M)` given: a row whose norm
    /// is infinite is never the nearest (see [`MemoryBank::score_maps_excluding`]).
    fn nearest_distances_to(&self, queries: &Tensor, sq: &Tensor) -> Result<Tensor> {
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
                let part = sq.f_addmm(&qc, &self.neg2_t)?; // (n, M)
                let (min, _) = part.f_min_dim(1, false)?;
                outs.push(min.f_add(&qsq)?.f_clamp_min(0.0)?.f_sqrt()?);
                start += len;
            }
            Ok(Tensor::f_cat(&outs, 0)?)
        })
    }

    /// The largest nearest-neighbour distance over `queries: (N, D)` — the image score — without computing
    /// every query's exact distance. Exact, by branch and bound (see [`Bounds`]): queries are searched exactly
    /// against the whole bank in decreasing order of their upper bound, stopping when the bound falls to the
    /// best exact distance found. Without the cells' bound half the patches of a normal image were searched in
    /// full; with it, a few percent.
    pub fn max_nearest_distance(&self, queries: &Tensor) -> Result<f32> {
        match self.bounds(queries)? {
            Some(b) => b.max_distance(),
            None => Ok(self.nearest_distances(queries)?.f_max()?.f_double_value(&[])? as f32),
        }
    }

    /// Upper bounds on every query's nearest-neighbour distance from a fraction of the bank, for searches
    /// that need only some queries exactly. `None` when the bank has no cells (small banks) or there are
    /// fewer than 64 queries: the plain search is as fast there.
    pub fn bounds(&self, queries: &Tensor) -> Result<Option<Bounds<'_>>> {
        self.bounds_with(queries, self.sq.shallow_clone(), &[])
    }

    /// [`MemoryBank::bounds`] against the bank without the rows `excluded` (sorted ascending), whose squared
    /// norms in `sq` are infinite: they neither bound a query nor are its nearest neighbour.
    fn bounds_with(&self, queries: &Tensor, sq: Tensor, excluded: &[i64]) -> Result<Option<Bounds<'_>>> {
        let s = queries.size();
        let d = self.pca.as_ref().map_or(self.bank.size()[1], |p| p.input_dim());
        if s.len() != 2 || s[1] != d || s[0] == 0 {
            return Err(Error::Shape(format!("queries must be (N, {d}) with N > 0, got {s:?}")));
        }
        let Some(cells) = (s[0] >= 64).then(|| self.search_cells()).flatten() else {
            return Ok(None);
        };
        let coarse = cells.coarse;
        tch::no_grad(|| {
            let q = match &self.pca {
                Some(p) => p.apply(queries)?,
                None => queries.f_to_kind(Kind::Float)?,
            }
            .f_contiguous()?;
            let qsq = q.f_mul(&q)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?;
            let part = sq.f_narrow(1, 0, coarse)?.f_addmm(&q, &self.neg2_t.f_narrow(1, 0, coarse)?)?;
            let (min, cell) = part.f_min_dim(1, false)?;
            // A tighter bound from the members of each query's nearest cell, where its nearest neighbour
            // usually is: |m|² − 2 q·m over the cell's rows (in plain Rust: no gathered copy of the rows).
            let min: Vec<f32> = Vec::try_from(&min)?;
            let cell: Vec<i64> = Vec::try_from(&cell)?;
            let qsq_v: Vec<f32> = Vec::try_from(&qsq)?;
            let qv: Vec<f32> = Vec::try_from(&q.f_view([-1])?)?;
            let dim = cells.dim;
            let upper_sq = (0..s[0] as usize)
                .map(|i| {
                    let qi = &qv[i * dim..(i + 1) * dim];
                    let c = cell[i] as usize;
                    let mut m = min[i];
                    for l in 0..CELL_ROWS {
                        let r = c * CELL_ROWS + l;
                        if !excluded.is_empty() && excluded.binary_search(&cells.idx[r]).is_ok() {
                            continue;
                        }
                        m = m.min(cells.sq[r] - 2.0 * dot(&cells.rows[r * dim..(r + 1) * dim], qi));
                    }
                    (m + qsq_v[i]).max(0.0) // squared, ≥ the exact squared distance
                })
                .collect();
            Ok(Some(Bounds { bank: self, q, qsq, sq, upper_sq, coarse }))
        })
    }

    /// The query of `queries: (N, D)` farthest from its nearest bank row outside `excluded`, and that distance:
    /// a training image's leave-one-out image score (its own rows excluded), when its heat map is not needed.
    /// Exact: [`Bounds::argmax_from`]'s pruned search where the bank has cells, the full search otherwise.
    pub fn argmax_nearest_excluding(&self, queries: &Tensor, excluded: &[i64]) -> Result<(usize, f32)> {
        if excluded.len() as i64 >= self.len() {
            return Err(Error::Shape("every row of the memory bank is excluded".into()));
        }
        let mut excluded = excluded.to_vec();
        excluded.sort_unstable();
        let sq = if excluded.is_empty() { self.sq.shallow_clone() } else { self.sq.f_index_fill(1, &Tensor::f_from_slice(&excluded)?, f64::INFINITY)? };
        match self.bounds_with(queries, sq.shallow_clone(), &excluded)? {
            Some(b) => b.argmax_from(None, f32::NEG_INFINITY),
            None => {
                let d = self.nearest_distances_to(queries, &sq)?;
                let at = d.f_argmax(0, false)?.int64_value(&[]);
                Ok((at as usize, d.f_double_value(&[at])? as f32))
            }
        }
    }
}

/// The first stage of a pruned search over `N` queries: an upper bound on each query's nearest-neighbour
/// distance from the distances to a prefix of the bank (its first rows are the coreset's first picks, a coarse
/// cover of the rest) and to the members of the query's nearest prefix row's cell (where its nearest neighbour
/// usually is). Exact distances are then computed only for the queries that need them.
pub struct Bounds<'a> {
    bank: &'a MemoryBank,
    /// `(N, D′)` queries in the bank's space.
    q: Tensor,
    /// `(N,)` their squared norms.
    qsq: Tensor,
    /// `(1, M)` the bank rows' squared norms (infinite for rows left out of the search).
    sq: Tensor,
    /// Squared upper bounds, one per query.
    pub upper_sq: Vec<f32>,
    coarse: i64,
}

impl Bounds<'_> {
    /// Upper bounds on the distances (not squared).
    pub fn upper(&self) -> Vec<f32> {
        self.upper_sq.iter().map(|u| u.sqrt()).collect()
    }

    /// The exact squared nearest-neighbour distances of the queries `idx` (against the whole bank, in chunks of
    /// 64 queries), in the order given.
    pub fn exact_sq(&self, idx: &[i64]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(idx.len());
        tch::no_grad(|| {
            for part in idx.chunks(64) {
                let idx = Tensor::f_from_slice(part)?;
                let qc = self.q.f_index_select(0, &idx)?;
                let full = self.sq.f_addmm(&qc, &self.bank.neg2_t)?;
                let (mn, _) = full.f_min_dim(1, false)?;
                let exact = mn.f_add(&self.qsq.f_index_select(0, &idx)?)?.f_clamp_min(0.0)?;
                out.extend(Vec::<f32>::try_from(&exact)?);
            }
            Ok(out)
        })
    }

    /// The largest exact distance over all queries: queries are searched exactly in decreasing order of their
    /// bound, until the bound falls to the best exact distance found.
    pub fn max_distance(&self) -> Result<f32> {
        self.max_distance_from(f32::NEG_INFINITY)
    }

    /// [`Bounds::max_distance`] when some query's exact squared distance `known_sq` is already known: queries
    /// whose bound is below it are not searched.
    pub fn max_distance_from(&self, known_sq: f32) -> Result<f32> {
        Ok(self.argmax_from(None, known_sq)?.1)
    }

    /// The query with the largest exact distance and that distance, when query `known` (if any) has the exact
    /// squared distance `known_sq`: queries are searched exactly in decreasing order of their bound, until the
    /// bound falls to the best exact distance found. With no `known` query and nothing searched (a bank every
    /// bound is below `known_sq` for), the index is that of the largest bound.
    pub fn argmax_from(&self, known: Option<usize>, known_sq: f32) -> Result<(usize, f32)> {
        let mut order: Vec<i64> = (0..self.upper_sq.len() as i64).collect();
        order.sort_unstable_by(|&a, &b| self.upper_sq[b as usize].total_cmp(&self.upper_sq[a as usize]));
        let mut best = known_sq; // squared
        let mut at = known.unwrap_or(order.first().map_or(0, |&i| i as usize));
        let mut start = 0usize;
        while start < order.len() && self.upper_sq[order[start] as usize] > best {
            let end = (start + 64).min(order.len());
            for (&i, e) in order[start..end].iter().zip(self.exact_sq(&order[start..end])?) {
                if e > best {
                    (best, at) = (e, i as usize);
                }
            }
            start = end;
        }
        tracing::trace!(searched = start, queries = order.len(), coarse = self.coarse, "pruned search");
        Ok((at, best.max(0.0).sqrt()))
    }
}

impl MemoryBank {
    /// The image score `d` (the largest patch distance, that of the patch `query` gives as `(1, D)`) times
    /// [`MemoryBank::reweight`]'s weight; `d` itself, without asking for the patch, when `neighbours < 2`
    /// (reweighting off).
    pub fn reweighted(&self, d: f32, neighbours: usize, query: impl FnOnce() -> Result<Tensor>) -> Result<f32> {
        if neighbours < 2 {
            return Ok(d);
        }
        Ok(d * self.reweight(&query()?, neighbours)?)
    }

    /// PatchCore's reweighting of the image score (Roth et al. 2022, §3.3): for the patch `query: (1, D)` with
    /// the largest distance and its nearest bank row `m*`, the weight `1 − exp|q − m*| / Σ exp|q − m|` over `m*`
    /// and its `neighbours − 1` nearest bank rows. Near 1 when `m*` is isolated in the bank (a rare normal
    /// pattern, or an anomaly far from everything: the score stands), lower when `m*`'s neighbours are about as
    /// close to the query as `m*` is (a dense, well-covered region: the distance says less). In
    /// `[1 − 1/neighbours, 1)`; exactly 1 with fewer than 2 neighbours.
    pub fn reweight(&self, query: &Tensor, neighbours: usize) -> Result<f32> {
        let b = (neighbours as i64).min(self.len());
        if b < 2 {
            return Ok(1.0);
        }
        tch::no_grad(|| {
            let q = match &self.pca {
                Some(p) => p.apply(query)?,
                None => query.f_to_kind(Kind::Float)?,
            };
            if q.size() != [1, self.bank.size()[1]] {
                return Err(Error::Shape(format!("reweight takes one query row, got {:?}", query.size())));
            }
            let qsq = q.f_mul(&q)?.f_sum(Kind::Float)?;
            let d = self.sq.f_addmm(&q, &self.neg2_t)?.f_add(&qsq)?.f_clamp_min(0.0)?.f_sqrt()?.f_squeeze_dim(0)?; // (M,)
            let nearest = d.f_argmin(0, false)?;
            // m*'s neighbourhood in the bank (m* itself first: its distance to itself is 0).
            let m = self.bank.f_index_select(0, &nearest.f_unsqueeze(0)?)?;
            let to_m = self.sq.f_addmm(&m, &self.neg2_t)?.f_squeeze_dim(0)?; // |m'|² − 2 m·m', same order as the distance
            let (_, hood) = to_m.f_topk(b, 0, false, true)?;
            let dh: Vec<f32> = Vec::try_from(&d.f_index_select(0, &hood)?)?;
            let d0 = d.f_double_value(&[nearest.int64_value(&[])])? as f32;
            // exp(d0) / Σ exp(dj) = 1 / Σ exp(dj − d0), with dj ≥ d0: no overflow.
            let sum: f32 = dh.iter().map(|&dj| (dj - d0).max(0.0).exp()).sum::<f32>().max(1.0);
            Ok(1.0 - 1.0 / sum)
        })
    }
}

impl MemoryBank {
    /// Patch score maps for a batch of embeddings: `(B, D, h, w)` → `(B, h, w)`.
    pub fn score_maps(&self, embedding: &Tensor) -> Result<Tensor> {
        let s = embedding.size();
        let rows = to_rows(embedding)?;
        let d = self.nearest_distances(&rows)?;
        Ok(d.f_view([s[0], s[2], s[3]])?)
    }

    /// [`MemoryBank::score_maps`] against the bank without the rows `excluded` (training's leave-one-out
    /// scores: a normal training image against the rows that came from the other images). `(B, D, h, w)` →
    /// `(B, h, w)`.
    pub fn score_maps_excluding(&self, embedding: &Tensor, excluded: &[i64]) -> Result<Tensor> {
        if excluded.is_empty() {
            return self.score_maps(embedding);
        }
        if excluded.len() as i64 >= self.len() {
            return Err(Error::Shape("every row of the memory bank is excluded".into()));
        }
        let s = embedding.size();
        let sq = self.sq.f_index_fill(1, &Tensor::f_from_slice(excluded)?, f64::INFINITY)?;
        let d = self.nearest_distances_to(&to_rows(embedding)?, &sq)?;
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
    fn excluded_rows_are_never_the_nearest() {
        // Bank rows 0..4 on a line at 0, 1, 2, 3; a 1×1 "image" at 1.1 (D = 1).
        let bank = MemoryBank::new(Tensor::from_slice(&[0f32, 1.0, 2.0, 3.0]).view([4, 1]), None).unwrap();
        let e = Tensor::from_slice(&[1.1f32]).view([1, 1, 1, 1]);
        let d = |ex: &[i64]| bank.score_maps_excluding(&e, ex).unwrap().double_value(&[0, 0, 0]);
        assert!((d(&[]) - 0.1).abs() < 1e-5);
        assert!((d(&[1]) - 0.9).abs() < 1e-5);
        assert!((d(&[1, 2]) - 1.1).abs() < 1e-5);
        assert!((d(&[0, 1, 2]) - 1.9).abs() < 1e-5);
        assert!(bank.score_maps_excluding(&e, &[0, 1, 2, 3]).is_err());
    }

    #[test]
    fn leave_one_out_image_score_equals_the_full_search() {
        // A normal training image: its patches lie near bank rows 100..400, of which it "owns" 100..250 and,
        // among the cells' coarse rows, 0..20; the pruned search without those rows must find the same
        // largest distance and a patch that has it as the full search without them.
        let mut rng = crate::engine::coreset::SplitMix64::new(9);
        let mut randn = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        let d = 8;
        let bank = MemoryBank::new(Tensor::from_slice(&randn(512 * d)).view([512, d as i64]), None).unwrap();
        let near = bank.bank.narrow(0, 100, 300).f_add(&Tensor::from_slice(&randn(300 * d)).view([300, d as i64]).f_mul_scalar(0.05).unwrap()).unwrap();
        let own: Vec<i64> = (0..20).chain(100..250).rev().collect(); // any order
        for (q, excluded) in [(&near, own.clone()), (&near, vec![]), (&near.f_mul_scalar(3.0).unwrap(), own.clone())] {
            let as_image = q.tr().view([1, d as i64, 300, 1]);
            let full: Vec<f32> = Vec::try_from(&bank.score_maps_excluding(&as_image, &excluded).unwrap().view([-1])).unwrap();
            let max = full.iter().copied().fold(f32::MIN, f32::max);
            let (at, fast) = bank.argmax_nearest_excluding(q, &excluded).unwrap();
            assert!((fast - max).abs() <= 1e-5 * max.max(1.0), "{max} vs {fast}");
            assert!((full[at] - max).abs() <= 1e-5 * max.max(1.0));
        }
        // Without the rows it owns, the image scores higher than with them.
        let (_, with) = bank.argmax_nearest_excluding(&near, &[]).unwrap();
        let (_, without) = bank.argmax_nearest_excluding(&near, &own).unwrap();
        assert!(without > with);
        assert!(bank.argmax_nearest_excluding(&near, &(0..512).collect::<Vec<i64>>()).is_err());
    }

    #[test]
    fn pruned_image_score_equals_the_full_search() {
        let mut rng = crate::engine::coreset::SplitMix64::new(4);
        let mut randn = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        let d = 8;
        let bank = MemoryBank::new(Tensor::from_slice(&randn(512 * d)).view([512, d as i64]), None).unwrap();
        for scale in [0.5f64, 1.0, 3.0] {
            let q = Tensor::from_slice(&randn(700 * d)).view([700, d as i64]).f_mul_scalar(scale).unwrap();
            let full = bank.nearest_distances(&q).unwrap().max().double_value(&[]);
            let fast = bank.max_nearest_distance(&q).unwrap() as f64;
            assert!((full - fast).abs() <= 1e-5 * full.max(1.0), "{full} vs {fast}");
            // Starting from a query's known exact distance gives the same maximum.
            let bounds = bank.bounds(&q).unwrap().unwrap();
            let known = bounds.exact_sq(&[7]).unwrap()[0];
            let seeded = bounds.max_distance_from(known).unwrap() as f64;
            assert!((full - seeded).abs() <= 1e-5 * full.max(1.0), "{full} vs {seeded}");
            // The arg max is a query whose exact distance is the maximum, whether or not a start is given.
            let exact: Vec<f32> = Vec::try_from(&bank.nearest_distances(&q).unwrap()).unwrap();
            for (known, known_sq) in [(None, f32::NEG_INFINITY), (Some(7), known)] {
                let (at, d) = bounds.argmax_from(known, known_sq).unwrap();
                assert!((exact[at] as f64 - full).abs() <= 1e-5 * full.max(1.0) && (d as f64 - full).abs() <= 1e-5 * full.max(1.0));
            }
            // The bounds are upper bounds.
            assert!(bounds.upper().iter().zip(&exact).all(|(u, e)| *u >= e - 1e-4));
        }
        // Queries close to bank rows (a normal image): the cells' bound is tight and most queries are pruned.
        let near = bank.bank.narrow(0, 100, 300).f_add(&Tensor::from_slice(&randn(300 * d)).view([300, d as i64]).f_mul_scalar(0.05).unwrap()).unwrap();
        let full = bank.nearest_distances(&near).unwrap().max().double_value(&[]);
        let fast = bank.max_nearest_distance(&near).unwrap() as f64;
        assert!((full - fast).abs() <= 1e-5 * full.max(1.0), "{full} vs {fast}");
        // Small inputs take the plain path; bad shapes are errors.
        let q = Tensor::from_slice(&randn(3 * d)).view([3, d as i64]);
        let full = bank.nearest_distances(&q).unwrap().max().double_value(&[]);
        assert!((bank.max_nearest_distance(&q).unwrap() as f64 - full).abs() < 1e-6);
        assert!(bank.max_nearest_distance(&Tensor::zeros([0, d as i64], (Kind::Float, tch::Device::Cpu))).is_err());
    }

    #[test]
    fn residual_column_bounds_the_discarded_distance() {
        // Normal rows on the line y = 2x in the (x, y) plane, z = 0; one component kept.
        let rows = Tensor::from_slice(&[0f32, 0., 0., 1., 2., 0., 2., 4., 0., 3., 6., 0.]).view([4, 3]);
        let plain = Pca::fit(&rows, 1).unwrap();
        let p = plain.clone().with_residual();
        assert_eq!((p.output_dim(), p.components_kept()), (2, 1));
        let bank = MemoryBank::new(p.apply(&rows).unwrap(), Some(p.clone())).unwrap();
        let blind = MemoryBank::new(plain.apply(&rows).unwrap(), Some(plain)).unwrap();
        // A query off the normal line by 5 in z: PCA alone sees distance 0, with the residual it sees 5,
        // which is the exact distance here.
        let q = Tensor::from_slice(&[1f32, 2., 5.]).view([1, 3]);
        assert!(blind.nearest_distances(&q).unwrap().double_value(&[0]) < 1e-3);
        assert!((bank.nearest_distances(&q).unwrap().double_value(&[0]) - 5.0).abs() < 1e-3);
        // Never above the exact distance.
        let q = Tensor::from_slice(&[4f32, 1., -2.]).view([1, 3]);
        let exact = MemoryBank::new(rows.shallow_clone(), None).unwrap().nearest_distances(&q).unwrap().double_value(&[0]);
        let got = bank.nearest_distances(&q).unwrap().double_value(&[0]);
        assert!(got <= exact + 1e-4 && got > 0.5 * exact, "{got} vs exact {exact}");
    }

    #[test]
    fn reweighting_by_hand() {
        // Bank on a line: 0, 1, 10 (second coordinate 0).
        let bank = MemoryBank::new(Tensor::from_slice(&[0f32, 0., 1., 0., 10., 0.]).view([3, 2]), None).unwrap();
        let q = |x: f32| Tensor::from_slice(&[x, 0.]).view([1, 2]);
        // Query 0.5: m* = 0 (first of the tie), neighbourhood {0, 1}, both at 0.5 → 1 − 1/(1 + e⁰) = 0.5.
        assert!((bank.reweight(&q(0.5), 2).unwrap() - 0.5).abs() < 1e-6);
        // Query 0.25: m* = 0 at 0.25, neighbour 1 at 0.75 → 1 − 1/(1 + e^0.5).
        let want = 1.0 - 1.0 / (1.0 + 0.5f32.exp());
        assert!((bank.reweight(&q(0.25), 2).unwrap() - want).abs() < 1e-6);
        // Query 10.2: m* = 10 is isolated (its nearest other row, 1, is 9.2 away from the query) → nearly 1.
        let w = bank.reweight(&q(10.2), 2).unwrap();
        assert!(w > 0.999 && w < 1.0, "{w}");
        // The third row joins the neighbourhood at b = 3 (0.5: 0 and 1 tie, 10 adds e⁹·⁵ → nearly 1).
        assert!(bank.reweight(&q(0.5), 3).unwrap() > 0.999);
        // Fewer than 2 neighbours, or more than the bank has rows: 1, and the whole bank.
        assert_eq!(bank.reweight(&q(0.5), 1).unwrap(), 1.0);
        assert!((bank.reweight(&q(0.25), 99).unwrap() - bank.reweight(&q(0.25), 3).unwrap()).abs() < 1e-7);
        assert!(bank.reweight(&Tensor::zeros([2, 2], (Kind::Float, tch::Device::Cpu)), 2).is_err());
    }

    #[test]
    fn image_score_is_the_largest_patch_score() {
        let maps = Tensor::from_slice(&[0.1f32, 0.7, 0.2, 0.3, 0.9, 0.0, 0.0, 0.1]).view([2, 2, 2]);
        let s: Vec<f32> = Vec::try_from(&image_scores(&maps).unwrap()).unwrap();
        assert_eq!(s, vec![0.7, 0.9]);
    }
}
