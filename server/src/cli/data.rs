//! Reading labelled images from disk for `vigil train`, `eval` and `bench`.
//!
//! Layouts, tried in this order for a folder `DATA`:
//! 1. `DATA` is a file: an LFV / SageMaker Ground Truth manifest (JSON lines). `source-ref` and
//!    `anomaly-mask-ref` may be relative paths or `s3://` URIs; each is looked for relative to the manifest's
//!    folder and its parents, then by file name anywhere under the manifest's parent folder (the candidate
//!    sharing the longest path tail with the ref wins).
//! 2. MVTec AD: `train/good`, `test/good`, `test/<defect>`, `ground_truth/<defect>/<stem>_mask.png`.
//! 3. `train/` and `test/`, each one of the layouts 4–5.
//! 4. `normal/` and `anomaly/`, optional `masks/` (a mask per anomaly, same file stem, any extension) and
//!    optional `labels.json` (`{"label name": "#RRGGBB", ...}`; without it every masked pixel is "anomaly").
//! 5. A flat folder whose file names say `normal` or `anomaly` (e.g. `test-anomaly-3.jpg`).

use super::manifest_file::load_manifest;
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use vigil::engine::{AnomalyLabel, ImageSource, Sample, TrainSet};

/// Distinct colours for labels found without a colour (MVTec defect types, `masks/` without labels.json).
const PALETTE: [&str; 8] = ["#E6194B", "#3CB44B", "#4363D8", "#F58231", "#911EB4", "#42D4F4", "#F032E6", "#BFEF45"];

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
        Some("jpg" | "jpeg" | "png")
    )
}

fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    v.sort();
    Ok(v)
}

fn stem(p: &Path) -> String {
    p.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string()
}

fn sample(path: PathBuf, anomalous: bool, mask: Option<PathBuf>) -> Sample {
    Sample {
        id: path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string(),
        image: ImageSource::File(path),
        anomalous,
        mask: mask.map(ImageSource::File),
    }
}

/// A training set from `data` (and an optional separate test set).
pub fn load_train(data: &Path, test: Option<&Path>) -> Result<TrainSet> {
    let (train, split_test, labels) = load_any(data)?;
    let mut set = TrainSet { train, test: split_test, labels };
    if let Some(t) = test {
        let (a, b, l2) = load_any(t)?;
        let mut samples = a;
        samples.extend(b.unwrap_or_default());
        merge_labels(&mut set.labels, l2);
        set.test = Some(samples);
    }
    if set.train.is_empty() {
        bail!("no labelled images found in {}", data.display());
    }
    Ok(set)
}

/// Labelled images to evaluate on: the test part of a train/test layout, otherwise everything.
pub fn load_eval(data: &Path) -> Result<Vec<Sample>> {
    let (train, test, _) = load_any(data)?;
    let v = match test {
        Some(t) => t,
        None => train,
    };
    if v.is_empty() {
        bail!("no labelled images found in {}", data.display());
    }
    Ok(v)
}

fn merge_labels(into: &mut Vec<AnomalyLabel>, more: Vec<AnomalyLabel>) {
    for l in more {
        if !into.iter().any(|x| x.name == l.name) {
            into.push(l);
        }
    }
}

type Loaded = (Vec<Sample>, Option<Vec<Sample>>, Vec<AnomalyLabel>);

fn load_any(data: &Path) -> Result<Loaded> {
    if data.is_file() {
        let (s, l) = load_manifest(data)?;
        return Ok((s, None, l));
    }
    if !data.is_dir() {
        bail!("{} is neither a folder nor a manifest file", data.display());
    }
    if data.join("train/good").is_dir() {
        return load_mvtec(data);
    }
    if data.join("train").is_dir() && data.join("test").is_dir() {
        let (a, la) = load_folder(&data.join("train"))?;
        let (b, lb) = load_folder(&data.join("test"))?;
        let mut labels = la;
        merge_labels(&mut labels, lb);
        return Ok((a, Some(b), labels));
    }
    let (s, l) = load_folder(data)?;
    Ok((s, None, l))
}

/// `normal/` + `anomaly/` (+ `masks/`, `labels.json`), or a flat folder labelled by file names.
fn load_folder(dir: &Path) -> Result<(Vec<Sample>, Vec<AnomalyLabel>)> {
    let (normal, anomaly) = (dir.join("normal"), dir.join("anomaly"));
    let mut out = Vec::new();
    if normal.is_dir() || anomaly.is_dir() {
        let masks: HashMap<String, PathBuf> = if dir.join("masks").is_dir() {
            images_in(&dir.join("masks"))?.into_iter().map(|p| (stem(&p), p)).collect()
        } else {
            HashMap::new()
        };
        if normal.is_dir() {
            out.extend(images_in(&normal)?.into_iter().map(|p| sample(p, false, None)));
        }
        if anomaly.is_dir() {
            for p in images_in(&anomaly)? {
                let m = masks.get(&stem(&p)).cloned();
                out.push(sample(p, true, m));
            }
        }
        let labels = if dir.join("labels.json").is_file() {
            let text = std::fs::read_to_string(dir.join("labels.json"))?;
            let map: BTreeMap<String, String> = serde_json::from_str(&text).context("labels.json: expected {\"name\": \"#RRGGBB\"}")?;
            map.into_iter().map(|(name, color)| AnomalyLabel { name, color }).collect()
        } else if !masks.is_empty() {
            vec![AnomalyLabel { name: "anomaly".into(), color: PALETTE[0].into() }]
        } else {
            Vec::new()
        };
        return Ok((out, labels));
    }
    for p in images_in(dir)? {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
        if name.contains("anomaly") || name.contains("abnormal") {
            out.push(sample(p, true, None));
        } else if name.contains("normal") || name.contains("good") {
            out.push(sample(p, false, None));
        }
    }
    if out.is_empty() {
        bail!(
            "{}: no normal/ or anomaly/ folder, no train/ + test/, no MVTec layout, and no image named *normal* or *anomaly*",
            dir.display()
        );
    }
    Ok((out, Vec::new()))
}

fn load_mvtec(dir: &Path) -> Result<Loaded> {
    let train: Vec<Sample> = images_in(&dir.join("train/good"))?.into_iter().map(|p| sample(p, false, None)).collect();
    let mut test = Vec::new();
    let mut labels = Vec::new();
    if dir.join("test").is_dir() {
        let mut defects: Vec<PathBuf> = std::fs::read_dir(dir.join("test"))?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
        defects.sort();
        for d in defects {
            let name = d.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
            if name == "good" {
                test.extend(images_in(&d)?.into_iter().map(|p| sample(p, false, None)));
                continue;
            }
            let gt = dir.join("ground_truth").join(&name);
            let clean: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            let color = PALETTE[labels.len() % PALETTE.len()].to_string();
            for p in images_in(&d)? {
                let m = gt.join(format!("{}_mask.png", stem(&p)));
                test.push(sample(p, true, m.is_file().then_some(m)));
            }
            labels.push(AnomalyLabel { name: clean, color });
        }
    }
    // MVTec's masks are white on black: one label per defect folder would need per-folder colours, so
    // evaluation treats any masked pixel as "anomaly" (pixel AUROC); the labels are kept for reference only.
    let _ = labels;
    Ok((train, if test.is_empty() { None } else { Some(test) }, Vec::new()))
}
