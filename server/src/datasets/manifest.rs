//! SageMaker Ground Truth manifest lines, as LFV accepts them.
//!
//! A line is a JSON object with `source-ref`, a classification label under a free attribute name `<name>`
//! with `<name>-metadata` (`class-name` `normal` / `anomaly`; anything else means unlabelled), and optionally
//! a mask under `<name>-ref` with `<name>-ref-metadata` holding an `internal-color-map`.

use serde_json::{Map, Value};

/// An image's class: its normal / anomaly verdict (LFV's `anomaly-label` 0 / 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageClass {
    Normal,
    Anomaly,
}

impl ImageClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageClass::Normal => "normal",
            ImageClass::Anomaly => "anomaly",
        }
    }
}

/// One entry of a mask's colour map (`internal-color-map`): an anomaly label and the RGB colour of its pixels
/// in the mask. The bytes are what masks are checked, normalized and written with; [`crate::engine::AnomalyLabel`]
/// is the same label with its colour as `#RRGGBB`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskColor {
    pub name: String,
    pub color: [u8; 3],
}

#[derive(Clone, Debug, PartialEq)]
pub struct ManifestLine {
    pub source_ref: String,
    pub label: Option<ImageClass>,
    pub mask_ref: Option<String>,
    /// The colour map's anomaly labels, `BACKGROUND` excluded (LFV names them `class-name`).
    pub classes: Vec<MaskColor>,
    /// The line as given, kept to answer ListDatasetEntries with it.
    pub raw: Map<String, Value>,
}

/// Parses `#rrggbb` (either case).
pub fn parse_hex_color(s: &str) -> Option<[u8; 3]> {
    let h = s.strip_prefix('#')?;
    if h.len() != 6 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u32::from_str_radix(h, 16).ok()?;
    Some([(v >> 16) as u8, (v >> 8) as u8, v as u8])
}

pub fn hex_color(c: [u8; 3]) -> String {
    format!("#{:02X}{:02X}{:02X}", c[0], c[1], c[2])
}

/// The anomaly labels a JSON line's mask colour map names (none for a line that does not parse: it was
/// checked when it was written).
pub fn line_classes(line: &str) -> Vec<MaskColor> {
    parse_line(line).map(|l| l.classes).unwrap_or_default()
}

/// Parses one manifest line; the error says what is wrong with it.
pub fn parse_line(line: &str) -> Result<ManifestLine, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON ({e})"))?;
    let Value::Object(raw) = value else { return Err("not a JSON object".into()) };
    let source_ref = match raw.get("source-ref") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => return Err("source-ref must be a non-empty string".into()),
        None => return Err("no source-ref".into()),
    };

    let mut label = None;
    let mut mask_ref = None;
    let mut classes = Vec::new();
    for (key, meta) in raw.iter().filter_map(|(k, v)| k.strip_suffix("-metadata").map(|base| (base, v))) {
        let Value::Object(meta) = meta else { return Err(format!("{key}-metadata must be an object")) };
        if key == "source-ref" {
            continue;
        }
        let is_mask = key.ends_with("-ref") || meta.contains_key("internal-color-map");
        if is_mask {
            let Some(Value::String(r)) = raw.get(key) else {
                return Err(format!("{key}-metadata has no matching {key} string"));
            };
            if !key.ends_with("-ref") {
                return Err(format!("the mask attribute {key} must end with -ref"));
            }
            mask_ref = Some(r.clone());
            classes = color_map(meta, key)?;
        } else if let Some(class) = meta.get("class-name") {
            if !raw.contains_key(key) {
                return Err(format!("{key}-metadata has no matching {key} attribute"));
            }
            label = match class.as_str() {
                Some("normal") => Some(ImageClass::Normal),
                Some("anomaly") => Some(ImageClass::Anomaly),
                _ => None,
            };
        }
    }
    if label == Some(ImageClass::Normal) {
        // Masks on normal images carry nothing (LFV's segmentation manifests give them a dummy 16×16 mask);
        // the line is kept as it is, the mask is neither fetched nor stored.
        mask_ref = None;
        classes.clear();
    }
    Ok(ManifestLine { source_ref, label, mask_ref, classes, raw })
}

fn color_map(meta: &Map<String, Value>, key: &str) -> Result<Vec<MaskColor>, String> {
    let Some(Value::Object(map)) = meta.get("internal-color-map") else {
        return Err(format!("{key}-metadata has no internal-color-map"));
    };
    let mut classes = Vec::new();
    for (index, entry) in map {
        let name = entry.get("class-name").and_then(Value::as_str).ok_or_else(|| {
            format!("internal-color-map entry {index:?} has no class-name")
        })?;
        let color = entry
            .get("hex-color")
            .and_then(Value::as_str)
            .and_then(parse_hex_color)
            .ok_or_else(|| format!("internal-color-map entry {index:?} has no valid hex-color (#rrggbb)"))?;
        if name.eq_ignore_ascii_case("background") {
            continue;
        }
        if name.is_empty() || name.len() > 255 {
            return Err(format!("anomaly label {name:?} must have 1-255 characters"));
        }
        if classes.iter().any(|c: &MaskColor| c.color == color) {
            return Err(format!("two anomaly labels share the colour {}", hex_color(color)));
        }
        classes.push(MaskColor { name: name.to_string(), color });
        if classes.len() > crate::security::MAX_LABELS_PER_MASK {
            return Err(format!("the internal-color-map names more than {} anomaly labels", crate::security::MAX_LABELS_PER_MASK));
        }
    }
    Ok(classes)
}

/// The line with its classification replaced: any existing label attribute is removed, and `label` (if any)
/// is written as LFV writes it (`anomaly-label` 1/0 with its metadata). Masks and other attributes stay.
pub fn with_label(raw: &Map<String, Value>, label: Option<ImageClass>, now_iso: &str) -> Map<String, Value> {
    let mut out = raw.clone();
    let label_keys: Vec<String> = raw
        .iter()
        .filter_map(|(k, v)| {
            let base = k.strip_suffix("-metadata")?;
            (v.get("class-name").is_some() && v.get("internal-color-map").is_none()).then(|| base.to_string())
        })
        .collect();
    for k in label_keys {
        out.remove(&k);
        out.remove(&format!("{k}-metadata"));
    }
    if let Some(l) = label {
        out.insert("anomaly-label".into(), Value::from(i64::from(l == ImageClass::Anomaly)));
        out.insert(
            "anomaly-label-metadata".into(),
            serde_json::json!({
                "class-name": l.as_str(),
                "human-annotated": "yes",
                "creation-date": now_iso,
                "type": "groundtruth/image-classification",
                "job-name": "vigil-console",
            }),
        );
    }
    out
}

/// An anomaly label's name: LFV allows letters and digits (and we accept `-` and `_` inside), 1–64 chars.
pub fn validate_label_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok && !name.eq_ignore_ascii_case("background") {
        Ok(())
    } else {
        Err(format!("{name:?} is not an anomaly label name: use 1-64 letters and digits (not \"background\")."))
    }
}

/// The line with a new mask: labelled anomaly, `anomaly-mask-ref` pointing at `mask_ref`, and a colour map
/// with LFV's white background first and the given classes.
pub fn with_mask(raw: &Map<String, Value>, mask_ref: &str, classes: &[MaskColor], now_iso: &str) -> Map<String, Value> {
    let mut out = with_label(raw, Some(ImageClass::Anomaly), now_iso);
    let old: Vec<String> = out.keys().filter(|k| k.ends_with("-ref") && *k != "source-ref").cloned().collect();
    for k in old {
        out.remove(&format!("{k}-metadata"));
        out.remove(&k);
    }
    let mut map = Map::new();
    map.insert("0".into(), serde_json::json!({"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.0}));
    for (i, c) in classes.iter().enumerate() {
        map.insert((i + 1).to_string(), serde_json::json!({"class-name": c.name, "hex-color": hex_color(c.color), "confidence": 0.0}));
    }
    out.insert("anomaly-mask-ref".into(), Value::String(mask_ref.to_string()));
    out.insert(
        "anomaly-mask-ref-metadata".into(),
        serde_json::json!({
            "internal-color-map": map,
            "type": "groundtruth/semantic-segmentation",
            "human-annotated": "yes",
            "creation-date": now_iso,
            "job-name": "vigil-console",
        }),
    );
    out
}

/// The line with anomaly label `old` renamed to `new` in its mask's colour map, or `None` if it does not use it.
pub fn with_renamed_label(raw: &Map<String, Value>, old: &str, new: &str) -> Option<Map<String, Value>> {
    let mut out = raw.clone();
    let mut changed = false;
    for (key, meta) in out.iter_mut() {
        if !key.ends_with("-ref-metadata") {
            continue;
        }
        if let Some(Value::Object(map)) = meta.get_mut("internal-color-map") {
            for entry in map.values_mut() {
                if entry.get("class-name").and_then(Value::as_str) == Some(old) {
                    entry["class-name"] = Value::String(new.to_string());
                    changed = true;
                }
            }
        }
    }
    changed.then_some(out)
}

/// Splits `s3://bucket/key` into its parts.
pub fn parse_s3_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    if bucket.is_empty() || key.is_empty() {
        return None;
    }
    Some((bucket.to_string(), key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOKIE_SEG: &str = r##"{"source-ref": "s3://b/getting-started/training-images/anomaly-1.jpg", "anomaly-label-metadata": {"job-name": "anomaly-label", "class-name": "anomaly", "human-annotated": "yes", "creation-date": "2022-08-22T20:52:51.851Z", "type": "groundtruth/image-classification"}, "anomaly-label": 1, "anomaly-mask-ref-metadata": {"internal-color-map": {"0": {"class-name": "cracked", "hex-color": "#23A436"}}, "job-name": "labeling-job/object-mask-ref", "human-annotated": "yes", "creation-date": "Mon Aug 22 2022", "type": "groundtruth/semantic-segmentation"}, "anomaly-mask-ref": "s3://b/getting-started/mask-images/anomaly-1.png"}"##;

    #[test]
    fn cookie_segmentation_line() {
        let l = parse_line(COOKIE_SEG).unwrap();
        assert_eq!(l.source_ref, "s3://b/getting-started/training-images/anomaly-1.jpg");
        assert_eq!(l.label, Some(ImageClass::Anomaly));
        assert_eq!(l.mask_ref.as_deref(), Some("s3://b/getting-started/mask-images/anomaly-1.png"));
        assert_eq!(l.classes, vec![MaskColor { name: "cracked".into(), color: [0x23, 0xA4, 0x36] }]);
    }

    #[test]
    fn free_attribute_names_and_unlabelled() {
        let l = parse_line(r#"{"source-ref":"s3://b/k.jpg","my-job":0,"my-job-metadata":{"class-name":"normal"}}"#).unwrap();
        assert_eq!(l.label, Some(ImageClass::Normal));
        let l = parse_line(r#"{"source-ref":"s3://b/k.jpg","x":0,"x-metadata":{"class-name":"scratch"}}"#).unwrap();
        assert_eq!(l.label, None, "other class names import unlabelled");
        let l = parse_line(r#"{"source-ref":"s3://b/k.jpg"}"#).unwrap();
        assert_eq!(l.label, None);
    }

    #[test]
    fn normal_images_ignore_their_dummy_masks() {
        let l = parse_line(r##"{"source-ref":"s3://b/n.jpg","anomaly-label":0,"anomaly-label-metadata":{"class-name":"normal"},"anomaly-mask-ref":"s3://b/dummy_anomaly_mask.png","anomaly-mask-ref-metadata":{"internal-color-map":{"0":{"class-name":"BACKGROUND","hex-color":"#ffffff"}}}}"##).unwrap();
        assert_eq!(l.label, Some(ImageClass::Normal));
        assert_eq!(l.mask_ref, None);
        assert!(l.raw.contains_key("anomaly-mask-ref"), "the line itself is kept");
    }

    #[test]
    fn background_is_not_a_class() {
        let l = parse_line(r##"{"source-ref":"s3://b/k.jpg","a":1,"a-metadata":{"class-name":"anomaly"},"m-ref":"s3://b/m.png","m-ref-metadata":{"internal-color-map":{"0":{"class-name":"BACKGROUND","hex-color":"#ffffff"},"1":{"class-name":"scratch","hex-color":"#2ca02c"}}}}"##).unwrap();
        assert_eq!(l.classes, vec![MaskColor { name: "scratch".into(), color: [0x2c, 0xa0, 0x2c] }]);
    }

    #[test]
    fn malformed_lines_say_why() {
        assert!(parse_line("{").unwrap_err().contains("JSON"));
        assert!(parse_line("[1]").unwrap_err().contains("object"));
        assert!(parse_line(r#"{"a":1}"#).unwrap_err().contains("source-ref"));
        assert!(parse_line(r#"{"source-ref":""}"#).is_err());
        let bad_colour = r##"{"source-ref":"s3://b/k.jpg","m-ref":"s3://b/m.png","m-ref-metadata":{"internal-color-map":{"1":{"class-name":"x","hex-color":"green"}}}}"##;
        assert!(parse_line(bad_colour).unwrap_err().contains("hex-color"));
        // LFV's cap: 20 anomaly labels in one mask's colour map (background aside).
        let map = |n: usize| {
            let entries: Vec<String> = (0..n).map(|i| format!(r##""{i}":{{"class-name":"l{i}","hex-color":"#0000{i:02X}"}}"##)).collect();
            format!(r#"{{"source-ref":"s3://b/k.jpg","m-ref":"s3://b/m.png","m-ref-metadata":{{"internal-color-map":{{{}}}}}}}"#, entries.join(","))
        };
        assert_eq!(parse_line(&map(20)).unwrap().classes.len(), 20);
        assert!(parse_line(&map(21)).unwrap_err().contains("more than 20"));
    }

    #[test]
    fn relabelling_replaces_the_classification_only() {
        let l = parse_line(COOKIE_SEG).unwrap();
        let normal = with_label(&l.raw, Some(ImageClass::Normal), "2026-11-25T00:00:00Z");
        let again = parse_line(&Value::Object(normal.clone()).to_string()).unwrap();
        assert_eq!(again.label, Some(ImageClass::Normal));
        assert_eq!(normal["anomaly-label"], 0);
        assert!(normal.contains_key("anomaly-mask-ref"));
        let none = with_label(&l.raw, None, "x");
        assert!(!none.contains_key("anomaly-label") && !none.contains_key("anomaly-label-metadata"));
        assert_eq!(parse_line(&Value::Object(none).to_string()).unwrap().label, None);
    }

    #[test]
    fn painted_masks_write_lfv_segmentation_attributes() {
        let l = parse_line(r#"{"source-ref":"s3://b/k.jpg"}"#).unwrap();
        let classes = vec![MaskColor { name: "scratch".into(), color: [0x2c, 0xa0, 0x2c] }];
        let out = with_mask(&l.raw, "vigil://mask/abc.png", &classes, "t");
        let again = parse_line(&Value::Object(out).to_string()).unwrap();
        assert_eq!(again.label, Some(ImageClass::Anomaly));
        assert_eq!(again.mask_ref.as_deref(), Some("vigil://mask/abc.png"));
        assert_eq!(again.classes, classes);
        assert!(validate_label_name("scratch2").is_ok());
        assert!(validate_label_name("background").is_err());
        assert!(validate_label_name("a b").is_err());
    }

    #[test]
    fn renaming_a_label_touches_only_its_colour_map_entry() {
        let l = parse_line(COOKIE_SEG).unwrap();
        let out = with_renamed_label(&l.raw, "cracked", "crack").unwrap();
        let again = parse_line(&Value::Object(out).to_string()).unwrap();
        assert_eq!(again.classes, vec![MaskColor { name: "crack".into(), color: [0x23, 0xA4, 0x36] }]);
        assert!(with_renamed_label(&l.raw, "dent", "x").is_none());
    }

    #[test]
    fn colours_and_uris() {
        assert_eq!(parse_hex_color("#23A436"), Some([35, 164, 54]));
        assert_eq!(parse_hex_color("#ffffff"), Some([255, 255, 255]));
        assert_eq!(parse_hex_color("23A436"), None);
        assert_eq!(parse_hex_color("#23A43"), None);
        assert_eq!(hex_color([35, 164, 54]), "#23A436");
        assert_eq!(parse_s3_uri("s3://bucket/a/b.jpg"), Some(("bucket".into(), "a/b.jpg".into())));
        assert_eq!(parse_s3_uri("s3://bucket/"), None);
        assert_eq!(parse_s3_uri("https://x/y"), None);
    }
}
