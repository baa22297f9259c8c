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

use anyhow::{anyhow, bail, Context, Result};
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

/// Reads an LFV / Ground Truth manifest.
pub fn load_manifest(path: &Path) -> Result<(Vec<Sample>, Vec<AnomalyLabel>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    let root = dir.parent().map(Path::to_path_buf).unwrap_or_else(|| dir.clone());
    let index = FileIndex::build(&root);
    let mut out = Vec::new();
    let mut labels: Vec<AnomalyLabel> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("{} line {}: not JSON", path.display(), n + 1))?;
        let obj = v.as_object().ok_or_else(|| anyhow!("{} line {}: not a JSON object", path.display(), n + 1))?;
        let src = obj.get("source-ref").and_then(|s| s.as_str()).ok_or_else(|| anyhow!("{} line {}: no source-ref", path.display(), n + 1))?;
        // The classification attribute: any key whose "-metadata" has a class-name normal/anomaly.
        let mut class = None;
        let mut mask_ref = None;
        for (k, meta) in obj {
            let Some(base) = k.strip_suffix("-metadata") else { continue };
            if let Some(c) = meta.get("class-name").and_then(|c| c.as_str()) {
                if c == "normal" || c == "anomaly" {
                    class = Some(c == "anomaly");
                }
            }
            if let Some(map) = meta.get("internal-color-map").and_then(|m| m.as_object()) {
                if let Some(r) = obj.get(base).and_then(|r| r.as_str()) {
                    mask_ref = Some(r.to_string());
                }
                for entry in map.values() {
                    let name = entry.get("class-name").and_then(|c| c.as_str()).unwrap_or("");
                    let color = entry.get("hex-color").and_then(|c| c.as_str()).unwrap_or("");
                    if name.is_empty() || name.eq_ignore_ascii_case("background") {
                        continue;
                    }
                    if !labels.iter().any(|l| l.name == name) {
                        labels.push(AnomalyLabel { name: name.to_string(), color: color.to_uppercase() });
                    }
                }
            }
        }
        // Unlabelled lines are ignored, as LFV does.
        let Some(anomalous) = class else { continue };
        let image = index.resolve(&dir, src).ok_or_else(|| anyhow!("{} line {}: cannot find {src} locally", path.display(), n + 1))?;
        let mask = match (&mask_ref, anomalous) {
            (Some(r), true) => Some(index.resolve(&dir, r).ok_or_else(|| anyhow!("{} line {}: cannot find mask {r} locally", path.display(), n + 1))?),
            _ => None,
        };
        let mut s = sample(image, anomalous, mask);
        s.id = src.to_string();
        out.push(s);
    }
    Ok((out, labels))
}

/// File names under a folder, for resolving manifest refs that point elsewhere (s3://...).
struct FileIndex {
    by_name: HashMap<String, Vec<PathBuf>>,
}

impl FileIndex {
    fn build(root: &Path) -> FileIndex {
        let mut by_name: HashMap<String, Vec<PathBuf>> = HashMap::new();
        let mut stack = vec![(root.to_path_buf(), 0usize)];
        let mut seen = 0usize;
        while let Some((d, depth)) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    if depth < 6 {
                        stack.push((p, depth + 1));
                    }
                } else if let Some(n) = p.file_name().and_then(|n| n.to_str()) {
                    seen += 1;
                    if seen > 200_000 {
                        return FileIndex { by_name };
                    }
                    by_name.entry(n.to_string()).or_default().push(p);
                }
            }
        }
        FileIndex { by_name }
    }

    fn resolve(&self, dir: &Path, r: &str) -> Option<PathBuf> {
        let rel = match r.strip_prefix("s3://") {
            Some(rest) => rest.split_once('/').map(|(_, key)| key).unwrap_or(rest),
            None => r,
        };
        let parts: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        // Relative to the manifest's folder or one of its parents, dropping leading key components.
        let mut base = Some(dir);
        for _ in 0..4 {
            let Some(b) = base else { break };
            for skip in 0..parts.len() {
                let p = parts[skip..].iter().fold(b.to_path_buf(), |acc, s| acc.join(s));
                if p.is_file() {
                    return Some(p);
                }
            }
            base = b.parent();
        }
        // By file name, preferring the longest shared path tail.
        let name = parts.last()?;
        let cands = self.by_name.get(*name)?;
        cands
            .iter()
            .max_by_key(|c| {
                let comps: Vec<String> = c.components().rev().map(|x| x.as_os_str().to_string_lossy().into_owned()).collect();
                parts.iter().rev().zip(comps).take_while(|(a, b)| **a == b.as_str()).count()
            })
            .cloned()
    }
}
