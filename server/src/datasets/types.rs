//! The records the dataset modules share: stored blobs, entries ready to be written and entries as stored,
//! import issues, and the random ids of new rows.

use super::manifest::ImageClass;

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
}

/// An existing entry, as updates and the console need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    pub id: String,
    pub source_ref: String,
    pub image_hash: String,
    pub label: Option<String>,
    pub mask_hash: Option<String>,
    pub entry: String,
    pub created_at: i64,
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
