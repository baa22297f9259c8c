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
//!
//! Manifests, MVTec AD and `normal/` + `anomaly/` folders are read into manifest lines by the server's own
//! readers (`datasets::manifest::parse_line`, `datasets::import::{mvtec_layout_lines, folder_lines}`), so a
//! manifest line means here what it means to an import (a malformed one is an error, an unlabelled one is
//! skipped). What only the CLI does stays here and in `manifest_file.rs`: finding refs on the local disk,
//! layouts 3 and 5, masks of any image extension, and the labels (labels.json, or one "anomaly" label).

use super::manifest_file::{line_sample, load_manifest};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use vigil::datasets::import::{folder_lines, mvtec_layout_lines};
use vigil::datasets::manifest::ManifestLine;
use vigil::engine::{AnomalyLabel, ImageSource, Sample, TrainSet};

/// The colour of the one label masks get without labels.json.
const MASK_COLOR: &str = "#E6194B";

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

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A data set folder's files as the server's folder readers take them: `/`-separated paths relative to the
/// folder, in the order given, each mapped back to its file. The readers' "URIs" are these paths.
#[derive(Default)]
struct Listing {
    files: Vec<String>,
    paths: HashMap<String, PathBuf>,
}

impl Listing {
    fn add(&mut self, rel: String, path: PathBuf) {
        self.files.push(rel.clone());
        self.paths.insert(rel, path);
    }

    /// The images of folder `dir` (not its sub-folders), sorted, listed under `rel/`.
    fn add_images(&mut self, dir: &Path, rel: &str) -> Result<()> {
        for p in images_in(dir)? {
            self.add(format!("{rel}/{}", file_name(&p)), p);
        }
        Ok(())
    }

    /// The samples of the readers' lines, refs mapped back to their files.
    fn samples(&self, lines: &[(i64, ManifestLine)]) -> Result<Vec<Sample>> {
        let resolve = |r: &str, _| self.paths.get(r).cloned().ok_or_else(|| anyhow!("{r} is not in the folder's listing"));
        let mut out = Vec::new();
        for (_, line) in lines {
            out.extend(line_sample(line, resolve)?);
        }
        Ok(out)
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
    if normal.is_dir() || anomaly.is_dir() {
        // A mask per anomaly by file stem, any image extension (the last of a stem, in name order, wins). The
        // server's folder reader pairs `masks/<stem>.png`, so each mask is listed under that name.
        let mut masks: BTreeMap<String, PathBuf> = BTreeMap::new();
        if dir.join("masks").is_dir() {
            for p in images_in(&dir.join("masks"))? {
                let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
                masks.insert(stem, p);
            }
        }
        let mut files = Listing::default();
        if normal.is_dir() {
            files.add_images(&normal, "normal")?;
        }
        if anomaly.is_dir() {
            files.add_images(&anomaly, "anomaly")?;
        }
        let has_masks = !masks.is_empty();
        for (stem, p) in masks {
            files.add(format!("masks/{stem}.png"), p);
        }
        // Only images are listed, so the reader reports nothing; its lines say normal / anomaly by folder.
        let (lines, _) = folder_lines(&files.files, |rel| rel.to_string());
        let out = files.samples(&lines)?;
        // The reader names its masks' label "defect"; the CLI's is "anomaly", or labels.json's.
        let labels = if dir.join("labels.json").is_file() {
            let text = std::fs::read_to_string(dir.join("labels.json"))?;
            let map: BTreeMap<String, String> = serde_json::from_str(&text).context("labels.json: expected {\"name\": \"#RRGGBB\"}")?;
            map.into_iter().map(|(name, color)| AnomalyLabel { name, color }).collect()
        } else if has_masks {
            vec![AnomalyLabel { name: "anomaly".into(), color: MASK_COLOR.into() }]
        } else {
            Vec::new()
        };
        return Ok((out, labels));
    }
    load_flat(dir).map(|s| (s, Vec::new()))
}

/// A flat folder whose file names say `normal` or `anomaly` (the server has no such layout).
fn load_flat(dir: &Path) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for p in images_in(dir)? {
        let name = name_of(&p).to_ascii_lowercase();
        let anomalous = if name.contains("anomaly") || name.contains("abnormal") {
            true
        } else if name.contains("normal") || name.contains("good") {
            false
        } else {
            continue;
        };
        out.push(Sample { id: name_of(&p), image: ImageSource::File(p), anomalous, mask: None });
    }
    if out.is_empty() {
        bail!(
            "{}: no normal/ or anomaly/ folder, no train/ + test/, no MVTec layout, and no image named *normal* or *anomaly*",
            dir.display()
        );
    }
    Ok(out)
}

fn name_of(p: &Path) -> String {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string()
}

/// The MVTec AD layout, read by the server's reader from the images of `train/good` and `test/<folder>` and
/// the files of `ground_truth/<defect>`.
fn load_mvtec(dir: &Path) -> Result<Loaded> {
    let mut files = Listing::default();
    files.add_images(&dir.join("train/good"), "train/good")?;
    if dir.join("test").is_dir() {
        let mut defects: Vec<PathBuf> = std::fs::read_dir(dir.join("test"))?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
        defects.sort();
        for d in defects {
            let name = file_name(&d);
            files.add_images(&d, &format!("test/{name}"))?;
            let gt = dir.join("ground_truth").join(&name);
            if name != "good" && gt.is_dir() {
                let Ok(rd) = std::fs::read_dir(&gt) else { continue };
                let mut masks: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
                masks.sort();
                for m in masks {
                    files.add(format!("ground_truth/{name}/{}", file_name(&m)), m);
                }
            }
        }
    }
    // Without train/good images the reader's lines still come (`vigil eval` reads the test part only).
    let m = mvtec_layout_lines(&files.files, |rel| rel.to_string());
    let (train, test) = (files.samples(&m.train)?, files.samples(&m.test)?);
    // MVTec's masks are white on black: one label per defect folder would need per-folder colours, so
    // evaluation treats any masked pixel as "anomaly" (pixel AUROC); the reader's labels are not used.
    Ok((train, if test.is_empty() { None } else { Some(test) }, Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rels: &[&str]) {
        for r in rels {
            let p = root.join(r);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
    }

    fn summary(samples: &[Sample]) -> Vec<(String, bool, Option<String>)> {
        let rel = |s: &ImageSource| match s {
            ImageSource::File(p) => p.file_name().unwrap().to_string_lossy().into_owned(),
            _ => unreachable!(),
        };
        samples.iter().map(|s| (s.id.clone(), s.anomalous, s.mask.as_ref().map(rel))).collect()
    }

    fn s(id: &str, anomalous: bool, mask: Option<&str>) -> (String, bool, Option<String>) {
        (id.to_string(), anomalous, mask.map(str::to_string))
    }

    #[test]
    fn normal_and_anomaly_folders_pair_masks_of_any_extension() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), &["normal/n2.jpg", "normal/n1.JPG", "normal/notes.txt", "normal/deep/x.jpg", "anomaly/a.jpg", "anomaly/b.b.png",
            "anomaly/c.jpeg", "masks/a.jpg", "masks/a.png", "masks/b.b.JPEG", "masks/orphan.png", "top-normal.jpg"]);
        let set = load_train(dir.path(), None).unwrap();
        // Normal images first, each folder in name order; the last mask of a stem wins.
        assert_eq!(
            summary(&set.train),
            vec![s("n1.JPG", false, None), s("n2.jpg", false, None), s("a.jpg", true, Some("a.png")), s("b.b.png", true, Some("b.b.JPEG")), s("c.jpeg", true, None)]
        );
        assert_eq!(set.labels, vec![AnomalyLabel { name: "anomaly".into(), color: "#E6194B".into() }]);
        std::fs::write(dir.path().join("labels.json"), r##"{"zeta": "#abcdef", "alpha": "#112233"}"##).unwrap();
        let names: Vec<String> = load_train(dir.path(), None).unwrap().labels.into_iter().map(|l| format!("{} {}", l.name, l.color)).collect();
        assert_eq!(names, vec!["alpha #112233", "zeta #abcdef"]);
    }

    #[test]
    fn mvtec_reads_test_and_ground_truth_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), &["train/good/001.png", "train/good/000.png", "train/good/readme.txt", "test/good/000.png", "test/a-b/000.png",
            "test/a/000.png", "test/crack/000.png", "test/crack/001.png", "test/stray.png", "ground_truth/a/000_mask.png",
            "ground_truth/crack/001_mask.png", "ground_truth/a-b/000_mask.PNG"]);
        let set = load_train(dir.path(), None).unwrap();
        assert_eq!(summary(&set.train), vec![s("000.png", false, None), s("001.png", false, None)]);
        assert_eq!(
            summary(set.test.as_deref().unwrap()),
            vec![
                s("000.png", true, Some("000_mask.png")),
                s("000.png", true, None),
                s("000.png", true, None),
                s("001.png", true, Some("001_mask.png")),
                s("000.png", false, None),
            ]
        );
        assert!(set.labels.is_empty(), "MVTec masks are white on black: no labels");
        // Without training images there is still a test part to evaluate on.
        std::fs::remove_dir_all(dir.path().join("train/good")).unwrap();
        std::fs::create_dir_all(dir.path().join("train/good")).unwrap();
        assert_eq!(load_eval(dir.path()).unwrap().len(), 5);
        assert!(load_train(dir.path(), None).unwrap_err().to_string().contains("no labelled images"));
    }

    #[test]
    fn manifests_resolve_refs_locally_and_keep_every_labelled_line() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), &["imgs/a.jpg", "imgs/n.jpg", "masks/a.png"]);
        let map = |name: &str, color: &str| format!(r##""internal-color-map":{{"0":{{"class-name":"BACKGROUND","hex-color":"#ffffff"}},"1":{{"class-name":"{name}","hex-color":"{color}"}}}}"##);
        let lines = [
            format!(r#"{{"source-ref":"s3://b/x/imgs/a.jpg","l":1,"l-metadata":{{"class-name":"anomaly"}},"m-ref":"s3://b/x/masks/a.png","m-ref-metadata":{{{}}}}}"#, map("scratch", "#2ca02c")),
            String::new(),
            format!(r#"{{"source-ref":"../imgs/n.jpg","l":0,"l-metadata":{{"class-name":"normal"}},"m-ref":"s3://b/none.png","m-ref-metadata":{{{}}}}}"#, map("dent", "#1f77b4")),
            r#"{"source-ref":"s3://b/elsewhere.jpg"}"#.to_string(),
            r#"{"source-ref":"s3://b/x/imgs/a.jpg","l":1,"l-metadata":{"class-name":"anomaly"}}"#.to_string(),
        ];
        let manifest = dir.path().join("manifests/m.manifest");
        std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
        std::fs::write(&manifest, lines.join("\n")).unwrap();
        let set = load_train(&manifest, None).unwrap();
        assert_eq!(
            summary(&set.train),
            vec![s("s3://b/x/imgs/a.jpg", true, Some("a.png")), s("../imgs/n.jpg", false, None), s("s3://b/x/imgs/a.jpg", true, None)]
        );
        // Every colour map's labels, a normal image's included, in order of appearance.
        let labels: Vec<String> = set.labels.iter().map(|l| format!("{} {}", l.name, l.color)).collect();
        assert_eq!(labels, vec!["scratch #2CA02C", "dent #1F77B4"]);

        std::fs::write(&manifest, format!("{}\nnot json\n", lines[0])).unwrap();
        assert!(load_train(&manifest, None).unwrap_err().to_string().contains("m.manifest line 2: not valid JSON"));
        std::fs::write(&manifest, r#"{"source-ref":"imgs/zz.jpg","l":0,"l-metadata":{"class-name":"normal"}}"#).unwrap();
        assert!(load_train(&manifest, None).unwrap_err().to_string().contains("line 1: cannot find imgs/zz.jpg locally"));
    }
}
