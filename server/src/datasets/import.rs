//! Import jobs: Ground Truth manifests from S3 (CreateDataset) and JSON-line changes (UpdateDatasetEntries).
//! Each image and mask is fetched, decoded to prove it is usable, stored in the blob store, and only then
//! written to the database in one transaction. An import keeps the valid lines and reports every skipped one
//! with its reason; an update is all or nothing, as LFV's is.

use super::manifest::{parse_line, parse_s3_uri, ManifestLine};
use super::mask::check_mask;
use super::{BlobInfo, Issue, NewEntry, StoredEntry};
use crate::blobs::Blobs;
use crate::engine::image_io;
use crate::s3::{FetchError, S3};
use crate::store::Db;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;

/// LFV's limit for one image file.
pub const MAX_IMAGE_BYTES: u64 = 8 * 1024 * 1024;
/// LFV's limit for a manifest.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024 * 1024;
/// Objects fetched at once.
const PARALLEL_FETCHES: usize = 8;
/// Issues quoted in a status message; the rest are in the import report.
const QUOTED_ISSUES: usize = 3;

#[derive(Clone)]
pub struct Importer {
    pub db: Db,
    pub s3: S3,
    pub blobs: Blobs,
}

/// Parses a manifest's text: the valid lines (with their 1-based numbers) and an issue for each bad one.
/// A source-ref that appears twice keeps its first line.
pub fn parse_manifest(text: &str) -> (Vec<(i64, ManifestLine)>, Vec<Issue>) {
    let mut lines = Vec::new();
    let mut issues = Vec::new();
    let mut seen: HashMap<String, i64> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i as i64 + 1;
        if raw.trim().is_empty() {
            continue;
        }
        match parse_line(raw) {
            Ok(l) => {
                if let Some(first) = seen.get(&l.source_ref) {
                    issues.push(Issue {
                        line: Some(n),
                        source_ref: Some(l.source_ref.clone()),
                        reason: format!("duplicate source-ref (first on line {first})"),
                    });
                } else {
                    seen.insert(l.source_ref.clone(), n);
                    lines.push((n, l));
                }
            }
            Err(reason) => issues.push(Issue { line: Some(n), source_ref: None, reason: format!("malformed line: {reason}") }),
        }
    }
    (lines, issues)
}

fn fetch_reason(e: FetchError) -> String {
    match e {
        FetchError::TooLarge(_) => "the file is larger than 8 MB".into(),
        other => other.to_string(),
    }
}

/// Decodes an image (proving it is usable) and stores it. Blocking.
pub fn store_image(blobs: &Blobs, bytes: Vec<u8>) -> Result<BlobInfo, String> {
    let img = image_io::decode_rgb(&bytes).map_err(|e| e.to_string())?;
    let content_type = if bytes.starts_with(b"\x89PNG") { "image/png" } else { "image/jpeg" };
    let hash = blobs.put(&bytes).map_err(|e| {
        tracing::error!(error = %e, "blob store write failed");
        "the image could not be stored".to_string()
    })?;
    Ok(BlobInfo {
        hash,
        size: bytes.len() as i64,
        content_type: content_type.into(),
        width: img.width() as i64,
        height: img.height() as i64,
    })
}

impl Importer {
    async fn fetch(&self, uri: &str, max: u64) -> Result<Vec<u8>, String> {
        let (bucket, key) = parse_s3_uri(uri).ok_or_else(|| format!("{uri} is not an s3://bucket/key URI"))?;
        self.s3.get(&bucket, &key, None, max).await.map_err(fetch_reason)
    }

    async fn blob_info(&self, hash: &str) -> Result<Option<BlobInfo>, sqlx::Error> {
        let row: Option<(String, i64, String, i64, i64)> =
            sqlx::query_as("select hash, size, content_type, width, height from blob where hash = $1")
                .bind(hash)
                .fetch_optional(&self.db.pool)
                .await?;
        Ok(row.map(|(hash, size, content_type, width, height)| BlobInfo { hash, size, content_type, width, height }))
    }

    /// Turns a manifest line into an entry: fetches and checks its image and mask, unless the dataset already
    /// holds them under the same references.
    async fn materialize(&self, n: Option<i64>, line: ManifestLine, existing: Option<&StoredEntry>) -> Result<NewEntry, Issue> {
        let issue = |reason: String| Issue { line: n, source_ref: Some(line.source_ref.clone()), reason };
        let reused = match existing {
            Some(e) => self.blob_info(&e.image_hash).await.map_err(|e| issue(format!("database error: {e}")))?,
            None => None,
        };
        let image = match reused {
            Some(info) => info,
            None => {
                let bytes = self.fetch(&line.source_ref, MAX_IMAGE_BYTES).await.map_err(issue)?;
                let blobs = self.blobs.clone();
                tokio::task::spawn_blocking(move || store_image(&blobs, bytes))
                    .await
                    .map_err(|e| issue(format!("the image could not be checked: {e}")))?
                    .map_err(issue)?
            }
        };

        let mut mask = None;
        if let Some(mask_ref) = &line.mask_ref {
            let old_mask_ref = existing.and_then(|e| parse_line(&e.entry).ok()).and_then(|l| l.mask_ref);
            let reusable = existing.and_then(|e| e.mask_hash.clone()).filter(|_| old_mask_ref.as_ref() == Some(mask_ref));
            let info = match reusable {
                Some(hash) => self.blob_info(&hash).await.map_err(|e| issue(format!("database error: {e}")))?,
                None => None,
            };
            mask = Some(match info {
                Some(info) => info,
                None => {
                    let bytes = self.fetch(mask_ref, MAX_IMAGE_BYTES).await.map_err(|r| issue(format!("mask {mask_ref}: {r}")))?;
                    let (w, h) = (image.width as u32, image.height as u32);
                    let classes = line.classes.clone();
                    let blobs = self.blobs.clone();
                    tokio::task::spawn_blocking(move || -> Result<BlobInfo, String> {
                        check_mask(&bytes, w, h, &classes)?;
                        let hash = blobs.put(&bytes).map_err(|_| "the mask could not be stored".to_string())?;
                        Ok(BlobInfo { hash, size: bytes.len() as i64, content_type: "image/png".into(), width: w as i64, height: h as i64 })
                    })
                    .await
                    .map_err(|e| issue(format!("the mask could not be checked: {e}")))?
                    .map_err(|r| issue(format!("mask {mask_ref}: {r}")))?
                }
            });
        }
        Ok(NewEntry {
            source_ref: line.source_ref.clone(),
            image,
            label: line.label,
            mask,
            entry: serde_json::Value::Object(line.raw).to_string(),
        })
    }

    /// Materialises lines concurrently; keeps the input order.
    async fn materialize_all(
        &self,
        lines: Vec<(i64, ManifestLine)>,
        existing: &HashMap<String, StoredEntry>,
    ) -> (Vec<NewEntry>, Vec<Issue>) {
        let results: Vec<Result<NewEntry, Issue>> = stream::iter(lines)
            .map(|(n, line)| {
                let old = existing.get(&line.source_ref);
                self.materialize((n > 0).then_some(n), line, old)
            })
            .buffered(PARALLEL_FETCHES)
            .collect()
            .await;
        let mut entries = Vec::new();
        let mut issues = Vec::new();
        for r in results {
            match r {
                Ok(e) => entries.push(e),
                Err(i) => issues.push(i),
            }
        }
        (entries, issues)
    }

    /// The CreateDataset job: reads the manifest, imports what it can, and settles the dataset's status.
    pub async fn import_manifest(&self, dataset_id: &str, bucket: &str, key: &str, version: Option<&str>) {
        let outcome = self.try_import_manifest(dataset_id, bucket, key, version).await;
        self.settle_create(dataset_id, outcome).await;
    }

    async fn settle_create(&self, dataset_id: &str, outcome: Result<String, String>) {
        let (status, message) = match outcome {
            Ok(message) => (super::CREATE_COMPLETE, message),
            Err(message) => (super::CREATE_FAILED, message),
        };
        if let Err(e) = self.set_status(dataset_id, status, &message).await {
            tracing::error!(error = %e, dataset_id, "could not record the import's outcome");
        }
    }

    /// Fetches and stores what the lines name, then writes the entries and the report in one transaction.
    /// `source` names the import in messages. Fails when nothing at all could be imported.
    async fn import_lines(
        &self,
        dataset_id: &str,
        lines: Vec<(i64, ManifestLine)>,
        mut issues: Vec<Issue>,
        source: &str,
    ) -> Result<String, String> {
        let total = lines.len() + issues.len();
        let (entries, fetch_issues) = self.materialize_all(lines, &HashMap::new()).await;
        issues.extend(fetch_issues);
        issues.sort_by_key(|i| i.line);
        if entries.is_empty() {
            let mut conn = self.db.pool.acquire().await.map_err(internal)?;
            super::record_issues(&mut conn, dataset_id, &issues).await.map_err(internal)?;
            return Err(format!("Nothing in {source} could be imported ({total} items). {}", quote(&issues)));
        }
        let mut tx = self.db.begin_write().await.map_err(internal)?;
        super::upsert_entries(&mut tx, dataset_id, &entries).await.map_err(internal)?;
        super::record_issues(&mut tx, dataset_id, &issues).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        let mut message = format!("Imported {} of {total} items from {source}.", entries.len());
        if !issues.is_empty() {
            message.push_str(&format!(" Skipped {}: {}", issues.len(), quote(&issues)));
        }
        Ok(message)
    }

    async fn set_status(&self, dataset_id: &str, status: &str, message: &str) -> Result<(), sqlx::Error> {
        let mut conn = self.db.pool.acquire().await?;
        super::set_status(&mut conn, dataset_id, status, Some(message)).await
    }

    async fn try_import_manifest(&self, dataset_id: &str, bucket: &str, key: &str, version: Option<&str>) -> Result<String, String> {
        let uri = format!("s3://{bucket}/{key}");
        let bytes = self.s3.get(bucket, key, version, MAX_MANIFEST_BYTES).await.map_err(|e| match e {
            FetchError::TooLarge(_) => format!("The manifest {uri} is larger than 1 GB."),
            other => format!("The manifest {uri} could not be read: {other}."),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| format!("The manifest {uri} is not UTF-8 text."))?;
        let (lines, issues) = parse_manifest(&text);
        if lines.is_empty() && issues.is_empty() {
            return Err(format!("The manifest {uri} has no lines."));
        }
        self.import_lines(dataset_id, lines, issues, &format!("the manifest {uri}")).await
    }

    /// Imports an S3 folder: images under `PREFIX/normal/` are labelled normal, under `PREFIX/anomaly/` anomaly
    /// (deeper sub-folders keep their top folder's label, as in LFV), any other image is unlabelled.
    pub async fn import_folder(&self, dataset_id: &str, bucket: &str, prefix: &str) {
        let outcome = self.try_import_folder(dataset_id, bucket, prefix).await;
        self.settle_create(dataset_id, outcome).await;
    }

    async fn try_import_folder(&self, dataset_id: &str, bucket: &str, prefix: &str) -> Result<String, String> {
        let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
        let keys = self
            .s3
            .list(bucket, &prefix)
            .await
            .map_err(|e| format!("The folder s3://{bucket}/{prefix} could not be listed: {e}."))?;
        let (lines, issues) = folder_lines(bucket, &prefix, &keys);
        if lines.is_empty() {
            return Err(format!("The folder s3://{bucket}/{prefix} holds no .jpg, .jpeg or .png images."));
        }
        self.import_lines(dataset_id, lines, issues, &format!("s3://{bucket}/{prefix}")).await
    }

    /// The UpdateDatasetEntries job: every line must succeed, or nothing changes.
    pub async fn update_entries(&self, dataset_id: &str, lines: Vec<(i64, ManifestLine)>) {
        let outcome = self.try_update_entries(dataset_id, lines).await;
        let (status, message) = match outcome {
            Ok(message) => (super::UPDATE_COMPLETE, message),
            Err(message) => (super::UPDATE_FAILED_ROLLBACK_COMPLETE, message),
        };
        if let Err(e) = self.set_status(dataset_id, status, &message).await {
            tracing::error!(error = %e, dataset_id, "could not record the update's outcome");
        }
    }

    async fn try_update_entries(&self, dataset_id: &str, lines: Vec<(i64, ManifestLine)>) -> Result<String, String> {
        let existing: HashMap<String, StoredEntry> = {
            let mut conn = self.db.pool.acquire().await.map_err(internal)?;
            super::all_entries(&mut conn, dataset_id).await.map_err(internal)?
        }
        .into_iter()
        .map(|e| (e.source_ref.clone(), e))
        .collect();
        let n = lines.len();
        let (entries, issues) = self.materialize_all(lines, &existing).await;
        if !issues.is_empty() {
            return Err(format!(
                "The update was rolled back; no entry was changed. {} of {n} lines failed: {}",
                issues.len(),
                quote(&issues)
            ));
        }
        let added = entries.iter().filter(|e| !existing.contains_key(&e.source_ref)).count();
        let mut tx = self.db.begin_write().await.map_err(internal)?;
        super::upsert_entries(&mut tx, dataset_id, &entries).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(format!("Updated {} entries ({added} added, {} replaced).", n, n - added))
    }
}

/// Manifest lines for the objects of an S3 folder, labelled by their top sub-folder; other files are issues.
pub fn folder_lines(bucket: &str, prefix: &str, keys: &[String]) -> (Vec<(i64, ManifestLine)>, Vec<Issue>) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut lines = Vec::new();
    let mut issues = Vec::new();
    for key in keys {
        let rest = key.strip_prefix(prefix).unwrap_or(key);
        if rest.is_empty() || rest.ends_with('/') {
            continue;
        }
        let uri = format!("s3://{bucket}/{key}");
        let lower = rest.to_ascii_lowercase();
        if !(lower.ends_with(".jpg") || lower.ends_with(".jpeg") || lower.ends_with(".png")) {
            issues.push(Issue { line: None, source_ref: Some(uri), reason: "not a .jpg, .jpeg or .png file".into() });
            continue;
        }
        let label = match rest.split('/').next() {
            Some("normal") if rest.contains('/') => Some(super::manifest::Label::Normal),
            Some("anomaly") if rest.contains('/') => Some(super::manifest::Label::Anomaly),
            _ => None,
        };
        let mut raw = serde_json::Map::new();
        raw.insert("source-ref".into(), serde_json::Value::String(uri.clone()));
        let raw = super::manifest::with_label(&raw, label, &now);
        lines.push((0, ManifestLine { source_ref: uri, label, mask_ref: None, classes: Vec::new(), raw }));
    }
    (lines, issues)
}

fn internal(e: impl std::fmt::Display) -> String {
    tracing::error!(error = %e, "import failed");
    "Vigil had an internal error while importing; try again.".to_string()
}

/// The first few issues, for a status message.
fn quote(issues: &[Issue]) -> String {
    let mut s: Vec<String> = issues.iter().take(QUOTED_ISSUES).map(ToString::to_string).collect();
    if issues.len() > QUOTED_ISSUES {
        s.push(format!("and {} more", issues.len() - QUOTED_ISSUES));
    }
    s.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (lines, issues) = folder_lines("b", "p/", &keys);
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
    fn quotes_are_short() {
        let issues: Vec<Issue> = (1..=5).map(|i| Issue { line: Some(i), source_ref: None, reason: "x".into() }).collect();
        assert_eq!(quote(&issues), "line 1: x; line 2: x; line 3: x; and 2 more");
    }
}
