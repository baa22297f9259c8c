//! Training settings and progress: [`TrainOptions`] (every knob of `train`, stored in the model's header so a
//! model says how it was trained) and the [`Stage`]s reported while training.

use serde::{Deserialize, Serialize};

/// Training settings. `Default` is what Vigil uses; each is a knob for experiments and the CLI. Fields
/// missing from a stored model's header take their defaults.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainOptions {
    /// Long side of the model's input in px (rounded to a multiple of 32). `None`: 40 % of the training
    /// images' long side, clamped to 256–640.
    pub input_long_side: Option<u32>,
    /// Fraction of normal patches kept by the coreset.
    pub coreset_ratio: f64,
    /// Cap on the memory bank (rows); bounds detection time and memory. 16,384 since the comparison with
    /// anomalib's full-bank PatchCore (README, "Beside anomalib's PatchCore"): 2,048 rows left textures'
    /// heat maps behind (magnetic tiles' pixel AUROC 0.833 against 0.871). The coreset picks them in groups
    /// of at most `coreset::GROUP_PICKS`, so selection costs what one group did.
    pub max_bank: usize,
    /// Cap on the patches the coreset chooses from (a seeded random subset beyond it); bounds fit time and
    /// memory for large training sets.
    pub max_candidates: usize,
    /// Dimension of the random projection used by the coreset selection.
    pub projection_dim: i64,
    /// Principal components kept for the nearest-neighbour search (`None`: all 152 feature channels, the
    /// default since the comparison with anomalib: 64 components and the residual norm lost image AUROC on
    /// cookies, aliens and KolektorSDD; models trained with a PCA keep it).
    pub knn_dim: Option<i64>,
    /// Append the norm of what the PCA discards as one more search coordinate (see `pca::Pca`).
    pub pca_residual: bool,
    /// False-positive rate on normal images that the threshold holds when there are fewer than 3 labelled
    /// anomalies (see `threshold::from_normals_at_fpr`).
    pub normal_fpr: f64,
    /// Folds for out-of-fold scores.
    pub folds: usize,
    /// Fraction held out for evaluation when no test set is given (only when there are at least 20 normal and
    /// 10 anomalous images, LFV's minimum for a single dataset; otherwise the evaluation is cross-validated).
    pub test_fraction: f64,
    pub seed: u64,
    /// Allow the supervised image-level score (it is still only used when cross-validation shows it helps).
    pub supervised: bool,
    /// Train a segmentation head when anomalies have masks.
    pub segmentation: bool,
    /// Fit a Gaussian model of pooled normal features (see `gaussian`) and fuse its score with PatchCore's.
    pub gaussian: bool,
    /// Weight of the Gaussian score in the fusion (0 = PatchCore alone, 1 = Gaussian alone). `None`: chosen
    /// by out-of-fold AUROC with at least 10 labelled anomalies, else `train::DEFAULT_GAUSSIAN_WEIGHT`.
    pub gaussian_weight: Option<f32>,
    /// The supervised image head also takes the PatchCore and Gaussian image scores (on their normal scales).
    pub head_stats: bool,
    /// Give both feature taps the same share of PatchCore's distances (`embedding::tap_weights`).
    pub equal_taps: bool,
    /// With at least 10 labelled anomalies and no `input_long_side`, also try a 1.5× larger input (up to
    /// 960 px) and keep it when its out-of-fold AUROC is better by more than 0.02.
    pub size_search: bool,
    /// Weight of the supervised score in the blend; `None`: chosen by out-of-fold AUROC (PatchCore alone unless
    /// another weight beats it by more than 0.005).
    pub supervised_weight: Option<f32>,
    /// Images per backbone forward pass while training.
    pub batch_size: usize,
    /// Also give the memory bank the patches of every normal training image mirrored left–right, top–bottom and
    /// both (for surfaces with no orientation); in the folds' banks too, so the threshold sees its effect.
    /// `None`: decided by the mirror test (`mirror::mirror_test`: on when mirrored normals look normal).
    pub bank_flips: Option<bool>,
    /// Also give the memory bank every normal training image turned by 90°, 180° and 270° (with `bank_flips`:
    /// all eight symmetries of the square), for surfaces with no orientation at all. `None`: decided by the
    /// mirror test (on when turned normals look normal).
    pub bank_turns: Option<bool>,
    /// PatchCore's reweighting of the image score (paper §3.3) by the neighbourhood of this many bank rows
    /// around the nearest row of the worst patch (`patchcore::MemoryBank::reweight`); 0 or 1: off.
    pub reweight_neighbours: usize,
    /// The patch features' 3×3 pooling counts the zero padding at the edges (see `embedding::embed`).
    pub pool_zero_pad: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            input_long_side: None,
            coreset_ratio: 0.1,
            max_bank: 16_384,
            max_candidates: 200_000,
            projection_dim: 32,
            knn_dim: None,
            pca_residual: true,
            normal_fpr: 0.01,
            folds: 4,
            test_fraction: 0.2,
            seed: 17,
            supervised: true,
            segmentation: true,
            gaussian: true,
            gaussian_weight: None,
            head_stats: true,
            equal_taps: false,
            size_search: true,
            supervised_weight: None,
            batch_size: 8,
            bank_flips: None,
            bank_turns: None,
            reweight_neighbours: 0,
            pool_zero_pad: true,
        }
    }
}

/// Seconds spent per training stage, in the order the stages first ran (a stage that runs twice, such as the
/// features at a second input size, adds up under its name). Recorded in the model
/// (`training.stage_seconds`); `vigil bench` prints it.
#[derive(Debug)]
pub struct StageClock {
    last: std::time::Instant,
    pub spent: Vec<(String, f64)>,
}

impl Default for StageClock {
    fn default() -> Self {
        StageClock { last: std::time::Instant::now(), spent: Vec::new() }
    }
}

impl StageClock {
    /// Books the time since the last lap (or the start) to `stage`.
    pub fn lap(&mut self, stage: &str) {
        let now = std::time::Instant::now();
        let secs = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        match self.spent.iter_mut().find(|(s, _)| s == stage) {
            Some((_, t)) => *t += secs,
            None => self.spent.push((stage.to_string(), secs)),
        }
    }
}

/// Training progress, for progress bars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Extracting features of training images.
    Features,
    /// Out-of-fold memory banks and scores.
    CrossValidation,
    /// The supervised heads.
    Heads,
    /// The final memory bank.
    MemoryBank,
    /// Scoring the test images.
    Evaluation,
}

#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub stage: Stage,
    pub done: usize,
    pub total: usize,
}

