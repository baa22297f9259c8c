//! The records the dataset modules share: stored blobs, entries ready to be written and entries as stored,
//! import issues, and the random ids of new rows.

use super::manifest::{self, ImageClass, ManifestLine, MaskColor};

/// A stored image or mask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub hash: String,
    pub size: i64,
    pub content_type: String,
    pub width: i64,
    pub height: i64,
}

/// An entry ready to be written.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEntry {
    pub source_ref: String,
    pub image: BlobInfo,
    pub label: Option<ImageClass>,
    pub mask: Option<BlobInfo>,
    /// The JSON line.
    pub entry: String,
    /// The anomaly labels the line's mask colour map names (from the parsed line, never parsed again).
    pub classes: Vec<MaskColor>,
}

impl NewEntry {
    /// An entry whose JSON line is at hand as text only: it is parsed here, once.
    pub fn from_text(source_ref: String, image: BlobInfo, label: Option<ImageClass>, mask: Option<BlobInfo>, entry: String) -> NewEntry {
        let classes = manifest::line_classes(&entry);
        NewEntry { source_ref, image, label, mask, entry, classes }
    }
}

/// An existing entry, typed once as it leaves the database: its class comes from one source (the `label`
/// column, written from the line), and its JSON line is parsed here and nowhere after.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEntry {
    pub id: String,
    pub source_ref: String,
    pub image_hash: String,
    /// Normal or anomaly; `None` when unlabelled.
    pub class: Option<ImageClass>,
    pub mask_hash: Option<String>,
    /// The JSON line as stored (ListDatasetEntries answers with it).
    pub entry: String,
    /// The line, parsed (`None` only for a line an earlier version stored that no longer parses).
    pub line: Option<ManifestLine>,
    pub created_at: i64,
}

impl StoredEntry {
    /// The anomaly labels its mask's colour map names.
    pub fn classes(&self) -> &[MaskColor] {
        self.line.as_ref().map(|l| l.classes.as_slice()).unwrap_or_default()
    }
}

/// Something an import skipped, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub line: Option<i64>,
    pub source_ref: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.line, &self.source_ref) {
            (Some(l), Some(r)) => write!(f, "line {l} ({r}): {}", self.reason),
            (Some(l), None) => write!(f, "line {l}: {}", self.reason),
            (None, Some(r)) => write!(f, "{r}: {}", self.reason),
            (None, None) => write!(f, "{}", self.reason),
        }
    }
}

/// A new row's id: 32 random hex digits.
pub(super) fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}
