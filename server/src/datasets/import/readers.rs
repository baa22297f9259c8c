//! Reading a source into manifest lines: a Ground Truth manifest's text (line by line, so a streamed one is
//! never held whole), a folder labelled by its sub-folders with masks beside it, and an MVTec AD category.

use crate::datasets::manifest::{self, parse_line, ManifestLine};
use crate::datasets::types::Issue;
use std::collections::HashMap;

/// Colours for labels found without one (MVTec defect types, folder masks).
pub const PALETTE: [[u8; 3]; 8] = [
    [0xE4, 0x57, 0x2E],
    [0x23, 0xA4, 0x36],
    [0x1F, 0x77, 0xB4],
    [0xF2, 0xA5, 0x41],
    [0x9B, 0x5D, 0xE5],
    [0x00, 0xBB, 0xF9],
    [0xF1, 0x5B, 0xB5],
    [0x8A, 0xC9, 0x26],
];

/// The label name folder masks get.
pub const FOLDER_MASK_LABEL: &str = "defect";

/// A label name from a folder name, by LFV's rule (letters, digits, `-`, `_`; at most 64).
pub fn label_from_folder(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(64)
        .collect();
    if clean.is_empty() || clean.eq_ignore_ascii_case("background") {
        format!("defect-{}", clean.trim_matches('-')).trim_end_matches('-').to_string()
    } else {
        clean
    }
}

/// Parses a manifest's text: the valid lines (with their 1-based numbers) and an issue for each bad one.
/// A source-ref that appears twice keeps its first line.
pub fn parse_manifest(text: &str) -> (Vec<(i64, ManifestLine)>, Vec<Issue>) {
    let mut p = ManifestParser::default();
    for raw in text.lines() {
        p.push(raw);
    }
    p.finish()
}

/// Parses a manifest one line at a time (a streamed manifest is never held whole): valid lines, and an issue
/// for each malformed or repeated one.
/// Issues kept one by one; beyond this they are counted (a manifest of a million bad lines must not become a
/// million report rows in memory).
pub const MAX_ISSUES_KEPT: usize = 1000;

#[derive(Default)]
pub struct ManifestParser {
    n: i64,
    lines: Vec<(i64, ManifestLine)>,
    issues: Vec<Issue>,
    issues_not_kept: u64,
    seen: HashMap<String, i64>,
}

impl ManifestParser {
    pub fn push(&mut self, raw: &str) {
        self.n += 1;
        let n = self.n;
        if raw.trim().is_empty() {
            return;
        }
        match parse_line(raw) {
            Ok(l) => {
                if let Some(first) = self.seen.get(&l.source_ref) {
                    let issue = Issue { line: Some(n), source_ref: Some(l.source_ref.clone()), reason: format!("duplicate source-ref (first on line {first})") };
                    self.issue(issue);
                } else {
                    self.seen.insert(l.source_ref.clone(), n);
                    self.lines.push((n, l));
                }
            }
            Err(reason) => self.issue(Issue { line: Some(n), source_ref: None, reason: format!("malformed line: {reason}") }),
        }
    }

    fn issue(&mut self, issue: Issue) {
        if self.issues.len() < MAX_ISSUES_KEPT {
            self.issues.push(issue);
        } else {
            self.issues_not_kept += 1;
        }
    }

    /// Lines read so far.
    pub fn lines_read(&self) -> i64 {
        self.n
    }

    pub fn finish(mut self) -> (Vec<(i64, ManifestLine)>, Vec<Issue>) {
        if self.issues_not_kept > 0 {
            self.issues.push(Issue {
                line: None,
                source_ref: None,
                reason: format!("and {} more lines skipped for the same kinds of reasons (only the first {MAX_ISSUES_KEPT} are listed)", self.issues_not_kept),
            });
        }
        (self.lines, self.issues)
    }
}

fn is_image_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".jpg") || lower.ends_with(".jpeg") || lower.ends_with(".png")
}

/// A file name without its extension.
fn stem(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}

fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A manifest line for an image, labelled, with an optional single-class mask.
fn line_for(uri: String, label: Option<manifest::ImageClass>, mask: Option<(String, manifest::MaskColor)>, now: &str) -> ManifestLine {
    let mut raw = serde_json::Map::new();
    raw.insert("source-ref".into(), serde_json::Value::String(uri.clone()));
    let (raw, mask_ref, classes) = match mask {
        Some((m, class)) => {
            let classes = vec![class];
            (manifest::with_mask(&raw, &m, &classes, now), Some(m), classes)
        }
        None => (manifest::with_label(&raw, label, now), None, Vec::new()),
    };
    let label = if mask_ref.is_some() { Some(manifest::ImageClass::Anomaly) } else { label };
    ManifestLine { source_ref: uri, label, mask_ref, classes, raw }
}

/// Manifest lines for the files of a folder (paths relative to it), labelled by their top sub-folder, with
/// masks from `masks/`; other files are issues.
pub fn folder_lines(files: &[String], uri: impl Fn(&str) -> String) -> (Vec<(i64, ManifestLine)>, Vec<Issue>) {
    let now = now_iso();
    let masks: HashMap<&str, &String> =
        files.iter().filter(|f| f.starts_with("masks/") && f.to_ascii_lowercase().ends_with(".png")).map(|f| (stem(f), f)).collect();
    let class = manifest::MaskColor { name: FOLDER_MASK_LABEL.into(), color: PALETTE[0] };
    let mut lines = Vec::new();
    let mut issues = Vec::new();
    for rel in files {
        if rel.is_empty() || rel.ends_with('/') || rel.starts_with("masks/") {
            continue;
        }
        if !is_image_name(rel) {
            issues.push(Issue { line: None, source_ref: Some(uri(rel)), reason: "not a .jpg, .jpeg or .png file".into() });
            continue;
        }
        let label = match rel.split('/').next() {
            Some("normal") if rel.contains('/') => Some(manifest::ImageClass::Normal),
            Some("anomaly") if rel.contains('/') => Some(manifest::ImageClass::Anomaly),
            _ => None,
        };
        let mask = (label == Some(manifest::ImageClass::Anomaly))
            .then(|| masks.get(stem(rel)))
            .flatten()
            .map(|m| (uri(m), class.clone()));
        lines.push((0, line_for(uri(rel), label, mask, &now)));
    }
    (lines, issues)
}

/// The lines of an MVTec AD category.
pub struct MvtecLines {
    pub train: Vec<(i64, ManifestLine)>,
    pub test: Vec<(i64, ManifestLine)>,
    pub issues: Vec<Issue>,
}

/// Reads the MVTec AD layout from a listing (paths relative to the category's folder).
pub fn mvtec_lines(files: &[String], uri: impl Fn(&str) -> String) -> Result<MvtecLines, String> {
    let out = mvtec_layout_lines(files, uri);
    if out.train.is_empty() {
        return Err("No images in train/good/: this is not an MVTec AD category folder (train/good, test/<defect>, ground_truth/<defect>).".into());
    }
    Ok(out)
}

/// The lines of an MVTec AD listing as [`mvtec_lines`] reads them, without requiring training images (a
/// category with only its `test/` part can still be evaluated on).
pub fn mvtec_layout_lines(files: &[String], uri: impl Fn(&str) -> String) -> MvtecLines {
    let now = now_iso();
    let present: std::collections::HashSet<&str> = files.iter().map(String::as_str).collect();
    let mut defects: Vec<&str> = files
        .iter()
        .filter_map(|f| f.strip_prefix("test/")?.split_once('/').map(|(d, _)| d))
        .filter(|d| *d != "good")
        .collect();
    defects.sort();
    defects.dedup();
    let mut out = MvtecLines { train: Vec::new(), test: Vec::new(), issues: Vec::new() };
    for rel in files {
        let parts: Vec<&str> = rel.split('/').collect();
        if parts.first() == Some(&"ground_truth") {
            continue;
        }
        if !is_image_name(rel) {
            out.issues.push(Issue { line: None, source_ref: Some(uri(rel)), reason: "not a .jpg, .jpeg or .png file".into() });
            continue;
        }
        match parts.as_slice() {
            ["train", "good", _] => out.train.push((0, line_for(uri(rel), Some(manifest::ImageClass::Normal), None, &now))),
            ["test", "good", _] => out.test.push((0, line_for(uri(rel), Some(manifest::ImageClass::Normal), None, &now))),
            ["test", defect, file] => {
                let i = defects.iter().position(|d| d == defect).unwrap_or(0);
                let class = manifest::MaskColor { name: label_from_folder(defect), color: PALETTE[i % PALETTE.len()] };
                let mask_rel = format!("ground_truth/{defect}/{}_mask.png", stem(file));
                let mask = present.contains(mask_rel.as_str()).then(|| (uri(&mask_rel), class));
                out.test.push((0, line_for(uri(rel), Some(manifest::ImageClass::Anomaly), mask, &now)));
            }
            _ => out.issues.push(Issue {
                line: None,
                source_ref: Some(uri(rel)),
                reason: "not in train/good, test/good or test/<defect> (the MVTec AD layout)".into(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::import::places::Place;

    #[test]
    fn issues_beyond_the_first_thousand_are_counted_not_kept() {
        let mut p = ManifestParser::default();
        for _ in 0..5000 {
            p.push("not json");
        }
        let (lines, issues) = p.finish();
        assert!(lines.is_empty());
        assert_eq!(issues.len(), MAX_ISSUES_KEPT + 1);
        assert!(issues.last().unwrap().reason.starts_with("and 4000 more lines skipped"), "{:?}", issues.last());
    }

    #[test]
    fn manifests_keep_good_lines_and_report_bad_ones() {
        let text = concat!(
            r#"{"source-ref":"s3://b/a.jpg","l":1,"l-metadata":{"class-name":"anomaly"}}"#, "\n",
            "\n",
            "not json\n",
            r#"{"source-ref":"s3://b/a.jpg","l":0,"l-metadata":{"class-name":"normal"}}"#, "\n",
            r#"{"source-ref":"s3://b/c.jpg","l":0,"l-metadata":{"class-name":"normal"}}"#, "\n",
        );
        let (lines, issues) = parse_manifest(text);
        assert_eq!(lines.iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec![1, 5]);
        assert_eq!(issues.len(), 2);
        assert_eq!(issues[0].line, Some(3));
        assert!(issues[0].reason.contains("malformed"));
        assert_eq!(issues[1].line, Some(4));
        assert!(issues[1].reason.contains("duplicate source-ref (first on line 1)"));
    }

    #[test]
    fn folders_label_by_their_top_folder() {
        let keys: Vec<String> = ["p/normal/a.jpg", "p/anomaly/deep/b.PNG", "p/c.jpeg", "p/normal/notes.txt", "p/normal/"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let keys: Vec<String> = keys.iter().map(|k| k.strip_prefix("p/").unwrap().to_string()).collect();
        let place = Place::parse("s3://b/p").unwrap();
        let (lines, issues) = folder_lines(&keys, |r| place.uri(r));
        let got: Vec<(String, Option<&str>)> =
            lines.iter().map(|(_, l)| (l.source_ref.clone(), l.label.map(|x| x.as_str()))).collect();
        assert_eq!(
            got,
            vec![
                ("s3://b/p/normal/a.jpg".to_string(), Some("normal")),
                ("s3://b/p/anomaly/deep/b.PNG".to_string(), Some("anomaly")),
                ("s3://b/p/c.jpeg".to_string(), None),
            ]
        );
        assert_eq!(issues.len(), 1);
        assert!(issues[0].source_ref.as_deref().unwrap().ends_with("notes.txt"));
        // The lines carry LFV's classification attributes.
        assert_eq!(lines[1].1.raw["anomaly-label-metadata"]["class-name"], "anomaly");
    }

    #[test]
    fn folder_masks_attach_to_anomalies_by_name() {
        let files: Vec<String> = ["anomaly/a.jpg", "masks/a.png", "normal/n.jpg", "masks/n.png", "masks/orphan.png"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let place = Place::parse("/data/set/").unwrap();
        let (lines, issues) = folder_lines(&files, |r| place.uri(r));
        assert!(issues.is_empty());
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].1.source_ref, "file:///data/set/anomaly/a.jpg");
        assert_eq!(lines[0].1.mask_ref.as_deref(), Some("file:///data/set/masks/a.png"));
        assert_eq!(lines[0].1.classes[0].name, "defect");
        assert_eq!(lines[1].1.mask_ref, None, "normal images take no mask");
    }

    #[test]
    fn mvtec_layout_splits_labels_and_masks() {
        let files: Vec<String> = [
            "license.txt",
            "train/good/000.png",
            "train/good/001.png",
            "test/good/000.png",
            "test/broken_large/000.png",
            "test/broken_large/001.png",
            "test/contamination/000.png",
            "ground_truth/broken_large/000_mask.png",
            "ground_truth/contamination/000_mask.png",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let place = Place::parse("s3://b/bottle/").unwrap();
        let m = mvtec_lines(&files, |r| place.uri(r)).unwrap();
        assert_eq!(m.train.len(), 2);
        assert!(m.train.iter().all(|(_, l)| l.label == Some(super::manifest::ImageClass::Normal)));
        assert_eq!(m.test.len(), 4);
        let broken = m.test.iter().find(|(_, l)| l.source_ref.ends_with("broken_large/000.png")).unwrap();
        assert_eq!(broken.1.mask_ref.as_deref(), Some("s3://b/bottle/ground_truth/broken_large/000_mask.png"));
        assert_eq!(broken.1.classes[0].name, "broken_large");
        let unmasked = m.test.iter().find(|(_, l)| l.source_ref.ends_with("broken_large/001.png")).unwrap();
        assert_eq!(unmasked.1.label, Some(super::manifest::ImageClass::Anomaly));
        assert!(unmasked.1.mask_ref.is_none());
        let contamination = m.test.iter().find(|(_, l)| l.source_ref.contains("contamination")).unwrap();
        assert_ne!(contamination.1.classes[0].color, broken.1.classes[0].color);
        assert_eq!(m.issues.len(), 1, "license.txt");
        assert!(mvtec_lines(&["test/good/0.png".to_string()], |r| r.to_string()).is_err());
    }

    #[test]
    fn places_and_label_names() {
        assert_eq!(Place::parse("s3://b").unwrap(), Place::S3 { bucket: "b".into(), prefix: "".into() });
        assert_eq!(Place::parse("s3://b/x/y").unwrap().to_string(), "s3://b/x/y/");
        assert_eq!(Place::parse("/srv/mvtec/bottle").unwrap().uri("train/good/0.png"), "file:///srv/mvtec/bottle/train/good/0.png");
        assert!(Place::parse("relative/dir").is_err());
        assert!(Place::parse("/srv/../etc").is_err());
        assert!(Place::parse("s3:///x").is_err());
        assert_eq!(label_from_folder("broken_large"), "broken_large");
        assert_eq!(label_from_folder("faulty imprint"), "faulty-imprint");
        assert_eq!(label_from_folder("_x"), "x");
        assert_eq!(label_from_folder("background"), "defect-background");
        assert!(super::manifest::validate_label_name(&label_from_folder("çà")).is_ok());
    }
}
