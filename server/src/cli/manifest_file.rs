//! Manifest lines as the engine's samples, for `vigil train`, `eval` and `bench`: a manifest file is read
//! line by line with the server's parser ([`vigil::datasets::manifest::parse_line`]), and each line's
//! `source-ref` and mask ref are found on the local disk. What is CLI-only here is that lookup: relative
//! paths, or `s3://` URIs whose objects were copied next to the manifest (see `data.rs`'s header).

use anyhow::{anyhow, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use vigil::datasets::manifest::{self, parse_line, ImageClass, ManifestLine, MaskColor};
use vigil::engine::{AnomalyLabel, ImageSource, Sample};

/// The engine's sample for a labelled line (`None` for an unlabelled one: LFV ignores those too), its id the
/// image's file name. `resolve` finds a ref's file (`true` for the mask); the image is looked for first.
pub(super) fn line_sample(line: &ManifestLine, resolve: impl Fn(&str, bool) -> Result<PathBuf>) -> Result<Option<Sample>> {
    let Some(class) = line.label else { return Ok(None) };
    let image = resolve(&line.source_ref, false)?;
    // The parser keeps no mask for a normal image (LFV's dummy masks).
    let mask = line.mask_ref.as_deref().map(|r| resolve(r, true)).transpose()?;
    Ok(Some(Sample {
        id: image.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string(),
        image: ImageSource::File(image),
        anomalous: class == ImageClass::Anomaly,
        mask: mask.map(ImageSource::File),
    }))
}

/// Reads an LFV / Ground Truth manifest: its labelled lines as samples (ids are the `source-ref`s), and the
/// anomaly labels of all its colour maps, in the order they first appear. The first malformed line, or the
/// first labelled line whose image (or an anomaly's mask) is not found, is the error.
pub(super) fn load_manifest(path: &Path) -> Result<(Vec<Sample>, Vec<AnomalyLabel>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    let root = dir.parent().map(Path::to_path_buf).unwrap_or_else(|| dir.clone());
    let index = FileIndex::build(&root);
    let mut out = Vec::new();
    let mut labels: Vec<AnomalyLabel> = Vec::new();
    // Line by line rather than `parse_manifest`: a repeated source-ref is one more sample here, as it always was.
    for (n, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let at = format!("{} line {}", path.display(), n + 1);
        let line = parse_line(raw).map_err(|reason| anyhow!("{at}: {reason}"))?;
        for c in colour_map(&line) {
            if !labels.iter().any(|l| l.name == c.name) {
                labels.push(AnomalyLabel { name: c.name, color: manifest::hex_color(c.color) });
            }
        }
        let resolve = |r: &str, is_mask: bool| {
            let what = if is_mask { "mask " } else { "" };
            index.resolve(&dir, r).ok_or_else(|| anyhow!("{at}: cannot find {what}{r} locally"))
        };
        if let Some(mut s) = line_sample(&line, resolve)? {
            s.id = line.source_ref.clone();
            out.push(s);
        }
    }
    Ok((out, labels))
}

/// The anomaly labels of a line's colour map, whatever the line's label. The parser drops a normal image's
/// colour map (the server never stores its mask), so for one it reads the line again without its label.
fn colour_map(line: &ManifestLine) -> Vec<MaskColor> {
    if line.label != Some(ImageClass::Normal) {
        return line.classes.clone();
    }
    let unlabelled = manifest::with_label(&line.raw, None, "");
    parse_line(&serde_json::Value::Object(unlabelled).to_string()).map(|l| l.classes).unwrap_or_default()
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
