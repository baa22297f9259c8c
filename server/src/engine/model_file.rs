//! A [`Model`]'s file: its header and tensors in the artifact format (see `artifact`), checked on the way in,
//! and written atomically.

use super::backbone::BACKBONE_ID;
use super::gaussian::Gaussian;
use super::header::ModelHeader;
use super::model::Model;
use super::scores::POOLED_DIM;
use super::embedding::EMBED_DIM;
use super::patchcore::MemoryBank;
use super::pca::Pca;
use super::segmentation::LinearHead;
use super::artifact;
use super::error::{Error, Result};
use std::path::{Path, PathBuf};
use tch::Tensor;

impl Model {
    /// Serialises the model into the artifact format (see `artifact`).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = serde_json::to_value(&self.header).map_err(|e| Error::Artifact(e.to_string()))?;
        let mut tensors: Vec<(String, &Tensor)> = vec![("bank".into(), &self.bank.bank)];
        if let Some(p) = &self.bank.pca {
            tensors.push(("pca.mean".into(), &p.mean));
            tensors.push(("pca.components".into(), &p.components));
        }
        let mut heads: Vec<(String, &LinearHead)> = Vec::new();
        if let Some(hd) = &self.seg_head {
            heads.push(("seg".into(), hd));
        }
        for (i, hd) in self.image_heads.iter().enumerate() {
            heads.push((format!("image.{i}"), hd));
        }
        if let Some(g) = &self.gaussian {
            tensors.push(("gauss.mean".into(), &g.mean));
            tensors.push(("gauss.std".into(), &g.std));
            tensors.push(("gauss.precision".into(), &g.precision));
        }
        for (prefix, hd) in &heads {
            tensors.push((format!("{prefix}.mean"), &hd.mean));
            tensors.push((format!("{prefix}.std"), &hd.std));
            tensors.push((format!("{prefix}.weight"), &hd.weight));
            tensors.push((format!("{prefix}.bias"), &hd.bias));
        }
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        artifact::to_bytes(&header, &refs)
    }

    /// Loads a model from artifact bytes (any format version from `artifact::MIN_FORMAT_VERSION`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let (header, mut tensors) = artifact::from_bytes(bytes)?;
        let header: ModelHeader = serde_json::from_value(header).map_err(|e| Error::Artifact(format!("model header: {e}")))?;
        if header.backbone.id != BACKBONE_ID {
            return Err(Error::Artifact(format!("model was trained with backbone {}; this Vigil has {BACKBONE_ID}", header.backbone.id)));
        }
        if header.patchcore.tap_weights.as_ref().is_some_and(|w| w.len() as i64 != EMBED_DIM || w.iter().any(|x| !x.is_finite())) {
            return Err(Error::Artifact("tap weights do not match the embedding".into()));
        }
        let (w, h) = (header.input.width, header.input.height);
        if w == 0 || h == 0 || w % 32 != 0 || h % 32 != 0 || w > 8192 || h > 8192 {
            return Err(Error::Artifact(format!("input size {w}×{h} is not a multiple of 32 up to 8192")));
        }
        let mut take = |name: &str| tensors.remove(name);
        let bank = take("bank").ok_or_else(|| Error::Artifact("model has no memory bank".into()))?;
        let pca = match (take("pca.mean"), take("pca.components")) {
            (Some(mean), Some(components)) => Some(Pca { mean, components, residual: header.patchcore.pca_residual }),
            (None, None) => None,
            _ => return Err(Error::Artifact("incomplete PCA in model".into())),
        };
        if let Some(p) = &pca {
            if p.components.size().len() != 2
                || p.input_dim() != EMBED_DIM
                || p.mean.size() != [EMBED_DIM]
                || Some(p.components_kept()) != header.patchcore.knn_dim
            {
                return Err(Error::Artifact("PCA does not match the model header".into()));
            }
        }
        let mut head = |prefix: &str| -> Option<LinearHead> {
            Some(LinearHead {
                mean: take(&format!("{prefix}.mean"))?,
                std: take(&format!("{prefix}.std"))?,
                weight: take(&format!("{prefix}.weight"))?,
                bias: take(&format!("{prefix}.bias"))?,
            })
        };
        let seg_head = head("seg");
        // Version 1 stored one refitted head as `image.*`; version 2 one head per fold as `image.N.*`.
        let mut image_heads: Vec<LinearHead> = head("image").into_iter().collect();
        while let Some(hd) = head(&format!("image.{}", image_heads.len())) {
            image_heads.push(hd);
        }
        let gaussian = match (take("gauss.mean"), take("gauss.std"), take("gauss.precision")) {
            (Some(mean), Some(std), Some(precision)) => {
                if mean.size() != [POOLED_DIM] || std.size() != [POOLED_DIM] || precision.size() != [POOLED_DIM, POOLED_DIM] {
                    return Err(Error::Artifact("Gaussian model has the wrong shape".into()));
                }
                Some(Gaussian { mean, std, precision })
            }
            (None, None, None) => None,
            _ => return Err(Error::Artifact("incomplete Gaussian model".into())),
        };
        let sc = &header.score;
        let needs_gaussian = sc.gaussian_weight.is_some_and(|w| w > 0.0) || (sc.head_stats && !image_heads.is_empty());
        if needs_gaussian && (gaussian.is_none() || sc.patchcore_scale.is_none() || sc.gaussian_scale.is_none()) {
            return Err(Error::Artifact("the score uses a Gaussian model the file does not have".into()));
        }
        let head_dim = POOLED_DIM + if sc.head_stats { 2 } else { 0 };
        if header.segmentation && seg_head.is_none() {
            return Err(Error::Artifact("segmentation model without its head".into()));
        }
        let head_ok = |h: &LinearHead, f: i64, c: i64| {
            h.weight.size() == [f, c] && h.bias.size() == [c] && h.mean.size() == [f] && h.std.size() == [f]
        };
        if let Some(h) = &seg_head {
            if h.weight.size().len() != 2 || !head_ok(h, EMBED_DIM + 1, 1 + header.labels.len() as i64) {
                return Err(Error::Artifact("segmentation head does not match the labels".into()));
            }
        }
        if image_heads.iter().any(|h| h.weight.size().len() != 2 || !head_ok(h, head_dim, 2)) {
            return Err(Error::Artifact("image head has the wrong shape".into()));
        }
        let bank = MemoryBank::new(bank, pca)?;
        let width = header.patchcore.knn_dim.map_or(EMBED_DIM, |k| k + header.patchcore.pca_residual as i64);
        if bank.bank.size()[1] != width {
            return Err(Error::Artifact("memory bank has the wrong width".into()));
        }
        Ok(Model { header, bank, seg_head, image_heads, gaussian })
    }

    /// Writes the model file atomically: to a uniquely named temporary file in the same folder, flushed to
    /// disk (fsync), then renamed over `path`, and the folder synced, so a crash leaves either the old file
    /// or the new one, and two writers never share a temporary file.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let io = |p: &Path, e: std::io::Error| Error::Io { path: p.display().to_string(), source: e };
        let bytes = self.to_bytes()?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("model");
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let tmp = dir.join(format!(".{name}.{}.{nanos}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
        let result = (|| -> Result<()> {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| io(&tmp, e))?;
            f.write_all(&bytes).map_err(|e| io(&tmp, e))?;
            f.sync_all().map_err(|e| io(&tmp, e))?;
            drop(f);
            std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
            // The rename itself is durable once the folder is synced (not possible on every platform).
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    pub fn load(path: &Path) -> Result<Model> {
        let bytes = std::fs::read(path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })?;
        Model::from_bytes(&bytes)
    }
}
