//! The one path from a project's dataset entries to the engine's training set. An entry's JSON line is read
//! with the same manifest parser that imports use (label from the classification attribute, mask classes from
//! the colour map), exactly what `vigil train` reads from an exported `train.manifest`, so a model trained
//! through the API and one trained on an export of the same datasets see the same samples.

use crate::blobs::Blobs;
use crate::datasets::manifest::{hex_color, ImageClass};
#[cfg(test)]
use crate::datasets::manifest;
use crate::datasets::StoredEntry;
use crate::engine::{AnomalyLabel, ImageSource, Sample, TrainSet};
use std::collections::HashMap;

/// Where a sample of the training set came from, for the console's per-image results.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SampleOrigin {
    pub source_ref: String,
    /// Blob of the image, for `/media`.
    pub image: String,
    pub mask: Option<String>,
    pub dataset_type: String,
}

/// A training set and, per sample id, where it came from.
pub struct Built {
    pub set: TrainSet,
    pub origins: HashMap<String, SampleOrigin>,
    /// Labelled images per dataset: `(normal, anomaly)`.
    pub counts: ((usize, usize), Option<(usize, usize)>),
}

/// Whether an entry is anomalous (`None`: unlabelled), from its class.
fn anomalous(e: &StoredEntry) -> Option<bool> {
    e.class.map(|c| c == ImageClass::Anomaly)
}

/// Builds the engine's training set from the entries of the train dataset and, when there is one, the test
/// dataset. Unlabelled entries are skipped (LFV ignored them too). Masks count only on anomalous images; each
/// label takes the colour most of its masks use, and a mask that paints a label in another colour (painted
/// before a recolour) is recoloured in memory so that every mask speaks the same colours.
pub fn build(blobs: &Blobs, train: &[StoredEntry], test: Option<&[StoredEntry]>) -> anyhow::Result<Built> {
    // Colour votes per label name.
    let mut votes: HashMap<String, HashMap<[u8; 3], usize>> = HashMap::new();
    for entries in std::iter::once(train).chain(test) {
        for e in entries {
            if e.mask_hash.is_none() || anomalous(e) != Some(true) {
                continue;
            }
            for c in e.classes() {
                *votes.entry(c.name.clone()).or_default().entry(c.color).or_default() += 1;
            }
        }
    }
    let mut names: Vec<&String> = votes.keys().collect();
    names.sort();
    let colours: HashMap<String, [u8; 3]> = names
        .iter()
        .map(|n| {
            let best = votes[*n].iter().max_by_key(|(c, k)| (**k, std::cmp::Reverse(**c))).map(|(c, _)| *c).unwrap_or([255, 0, 0]);
            ((*n).clone(), best)
        })
        .collect();
    let labels: Vec<AnomalyLabel> = names.iter().map(|n| AnomalyLabel { name: (*n).clone(), color: hex_color(colours[*n]) }).collect();

    let mut origins = HashMap::new();
    let mut samples_of = |entries: &[StoredEntry], dataset_type: &str| -> anyhow::Result<(Vec<Sample>, (usize, usize))> {
        let mut out = Vec::new();
        let (mut n, mut a) = (0, 0);
        for e in entries {
            let Some(anomalous) = anomalous(e) else { continue };
            if anomalous {
                a += 1
            } else {
                n += 1
            }
            let image = ImageSource::File(blobs.path_of(&e.image_hash)?);
            let mask = match (&e.mask_hash, anomalous) {
                (Some(h), true) => {
                    let classes = e.classes();
                    let remap: Vec<([u8; 3], [u8; 3])> =
                        classes.iter().filter_map(|c| colours.get(&c.name).filter(|&&want| want != c.color).map(|&want| (c.color, want))).collect();
                    if remap.is_empty() {
                        Some(ImageSource::File(blobs.path_of(h)?))
                    } else {
                        Some(ImageSource::Bytes(std::sync::Arc::new(recolour(&blobs.get(h)?, &remap)?)))
                    }
                }
                _ => None,
            };
            let id = format!("{dataset_type}/{}", e.id);
            origins.insert(
                id.clone(),
                SampleOrigin { source_ref: e.source_ref.clone(), image: e.image_hash.clone(), mask: e.mask_hash.clone(), dataset_type: dataset_type.into() },
            );
            out.push(Sample { id, image, anomalous, mask });
        }
        Ok((out, (n, a)))
    };
    let (train_samples, train_counts) = samples_of(train, "train")?;
    let (test_samples, test_counts) = match test {
        Some(t) => {
            let (s, c) = samples_of(t, "test")?;
            (Some(s), Some(c))
        }
        None => (None, None),
    };
    Ok(Built { set: TrainSet { train: train_samples, test: test_samples, labels }, origins, counts: (train_counts, test_counts) })
}

/// Rewrites mask colours (`from` → `to`), returning a PNG.
fn recolour(png: &[u8], map: &[([u8; 3], [u8; 3])]) -> anyhow::Result<Vec<u8>> {
    let mut img = image::load_from_memory_with_format(png, image::ImageFormat::Png)?.to_rgba8();
    for p in img.pixels_mut() {
        if let Some((_, to)) = map.iter().find(|(from, _)| from[..] == p.0[..3]) {
            p.0[..3].copy_from_slice(to);
        }
    }
    let mut out = Vec::new();
    image::DynamicImage::ImageRgba8(img).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, label: &str, mask: Option<&str>, colour: &str) -> StoredEntry {
        let mut line = serde_json::json!({
            "source-ref": format!("s3://b/{id}.png"),
            "anomaly-label": if label == "anomaly" { 1 } else { 0 },
            "anomaly-label-metadata": {"class-name": label, "job-name": "x", "type": "groundtruth/image-classification", "human-annotated": "yes", "creation-date": "2024-01-01T00:00:00", "confidence": 1},
        });
        if mask.is_some() {
            line["anomaly-mask-ref"] = serde_json::json!(format!("s3://b/{id}-mask.png"));
            line["anomaly-mask-ref-metadata"] = serde_json::json!({
                "internal-color-map": {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0}, "1": {"class-name": "dent", "hex-color": colour, "confidence": 0}},
                "type": "groundtruth/semantic-segmentation", "human-annotated": "yes", "creation-date": "2024-01-01T00:00:00", "job-name": "x"
            });
        }
        StoredEntry {
            id: id.into(),
            source_ref: format!("s3://b/{id}.png"),
            image_hash: "a".repeat(64),
            class: Some(if label == "anomaly" { ImageClass::Anomaly } else { ImageClass::Normal }),
            mask_hash: mask.map(|m| m.repeat(64)),
            entry: line.to_string(),
            line: manifest::parse_line(&line.to_string()).ok(),
            created_at: 0,
        }
    }

    #[test]
    fn labels_take_the_majority_colour_and_unlabelled_images_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let mut unlabelled = entry("u", "normal", None, "");
        unlabelled.class = None;
        unlabelled.entry = serde_json::json!({"source-ref": "s3://b/u.png"}).to_string();
        unlabelled.line = manifest::parse_line(&unlabelled.entry).ok();
        let train = vec![entry("n1", "normal", None, ""), entry("a1", "anomaly", Some("b"), "#00ff00"), entry("a2", "anomaly", Some("c"), "#00FF00"), unlabelled];
        let built = build(&blobs, &train, None).unwrap();
        assert_eq!(built.set.train.len(), 3);
        assert_eq!(built.counts.0, (1, 2));
        assert_eq!(built.set.labels, vec![AnomalyLabel { name: "dent".into(), color: "#00FF00".into() }]);
        assert!(built.set.test.is_none());
        let a1 = built.set.train.iter().find(|s| s.id == "train/a1").unwrap();
        assert!(a1.anomalous && matches!(a1.mask, Some(ImageSource::File(_))));
        assert_eq!(built.origins["train/a1"].source_ref, "s3://b/a1.png");
    }
}
