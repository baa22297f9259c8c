//! The importer's core: fetching what manifest lines name (from S3 or a local source) and storing it,
//! writing the entries and the import report in one transaction, and settling the dataset's status; and the
//! UpdateDatasetEntries job. The jobs that read each kind of source into lines are in `create`.

use super::places::{fetch_reason, Local, MAX_IMAGE_BYTES};
use super::storing::{store_image, store_mask};
use crate::blobs::Blobs;
use crate::datasets::manifest::{parse_s3_uri, ManifestLine};
use crate::datasets::types::{BlobInfo, Issue, NewEntry, StoredEntry};
use crate::datasets::{dataset, entries, labels, report};
use crate::s3::S3;
use crate::db::Db;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;

/// Objects fetched at once.
const PARALLEL_FETCHES: usize = 8;
/// Issues quoted in a status message; the rest are in the import report.
const QUOTED_ISSUES: usize = 3;

#[derive(Clone)]
pub struct Importer {
    pub db: Db,
    pub s3: S3,
    pub blobs: Blobs,
    /// Where references that are not `s3://` URIs are read from, if anywhere.
    pub local: Option<Local>,
    /// Masks carry no colour map (MVTec, a folder's `masks/`): each is converted to its line's one class.
    pub binary_masks: bool,
}

impl Importer {
    /// Importer that also reads references from a local source.
    pub fn with_local(mut self, local: Local) -> Self {
        self.local = Some(local);
        self
    }

    async fn fetch(&self, uri: &str, max: u64) -> Result<Vec<u8>, String> {
        if let Some(local) = self.local.clone().filter(|_| !uri.starts_with("s3://")) {
            let uri = uri.to_string();
            return tokio::task::spawn_blocking(move || local.read(&uri, max)).await.map_err(|e| format!("could not be read: {e}"))?;
        }
        let (bucket, key) = parse_s3_uri(uri).ok_or_else(|| format!("{uri} is not an s3://bucket/key URI"))?;
        self.s3.get(&bucket, &key, None, max).await.map_err(fetch_reason)
    }

    async fn blob_info(&self, hash: &str) -> Result<Option<BlobInfo>, sqlx::Error> {
        entries::blob_info(&mut *self.db.pool.acquire().await?, hash).await
    }

    /// Turns a manifest line into an entry: fetches and checks its image and mask, unless the dataset already
    /// holds them under the same references.
    async fn materialize(&self, n: Option<i64>, mut line: ManifestLine, existing: Option<&StoredEntry>) -> Result<NewEntry, Issue> {
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
            let old_mask_ref = existing.and_then(|e| e.line.as_ref()).and_then(|l| l.mask_ref.clone());
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
                    let binary = self.binary_masks;
                    tokio::task::spawn_blocking(move || store_mask(&blobs, bytes, w, h, &classes, binary))
                    .await
                    .map_err(|e| issue(format!("the mask could not be checked: {e}")))?
                    .map_err(|r| issue(format!("mask {mask_ref}: {r}")))?
                }
            });
        }
        // A converted mask is a new file: the line points at it.
        if let (true, Some(m)) = (self.binary_masks, &mask) {
            let key = line.raw.keys().find(|k| k.ends_with("-ref") && *k != "source-ref").cloned();
            if let Some(k) = key {
                line.raw.insert(k, serde_json::Value::String(format!("vigil://mask/{}.png", &m.hash[..16])));
            }
        }
        Ok(NewEntry {
            source_ref: line.source_ref.clone(),
            image,
            label: line.label,
            mask,
            entry: serde_json::Value::Object(line.raw).to_string(),
            classes: line.classes,
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

    /// Marks a dataset whose import could not even start as failed.
    pub async fn fail_create(&self, dataset_id: &str, message: String) {
        self.settle_create(dataset_id, Err(ImportError::Unreadable(message))).await;
    }

    pub(super) async fn settle_create(&self, dataset_id: &str, outcome: Result<String, ImportError>) {
        let (status, message) = match outcome {
            Ok(message) => (dataset::CREATE_COMPLETE, message),
            Err(e) => (dataset::CREATE_FAILED, e.to_string()),
        };
        if let Err(e) = self.set_status(dataset_id, status, &message).await {
            tracing::error!(error = %e, dataset_id, "could not record the import's outcome");
        }
    }

    /// Fetches and stores what the lines name, then writes the entries and the report in one transaction.
    /// `source` names the import in messages. Fails when nothing at all could be imported.
    pub(super) async fn import_lines(
        &self,
        dataset_id: &str,
        lines: Vec<(i64, ManifestLine)>,
        mut issues: Vec<Issue>,
        source: &str,
    ) -> Result<String, ImportError> {
        let total = lines.len() + issues.len();
        let (entries, fetch_issues) = self.materialize_all(lines, &HashMap::new()).await;
        issues.extend(fetch_issues);
        issues.sort_by_key(|i| i.line);
        if entries.is_empty() {
            let mut conn = self.db.pool.acquire().await.map_err(internal)?;
            report::record_issues(&mut conn, dataset_id, &issues).await.map_err(internal)?;
            return Err(ImportError::Refused(format!("Nothing in {source} could be imported ({total} items). {}", quote(&issues))));
        }
        let mut tx = self.db.begin_write().await.map_err(internal)?;
        // Lines whose masks would bring the project past its label limit are skipped, each named.
        let mut entries = entries;
        let refused = labels::beyond_limit(&mut tx, dataset_id, &entries).await.map_err(internal)?;
        for (i, label) in refused.iter().rev() {
            let e = entries.remove(*i);
            issues.push(label_limit_issue(e.source_ref, label));
        }
        if entries.is_empty() {
            drop(tx);
            let mut conn = self.db.pool.acquire().await.map_err(internal)?;
            report::record_issues(&mut conn, dataset_id, &issues).await.map_err(internal)?;
            return Err(ImportError::Refused(format!("Nothing in {source} could be imported ({total} items). {}", quote(&issues))));
        }
        entries::upsert_entries(&mut tx, dataset_id, &entries).await.map_err(internal)?;
        report::record_issues(&mut tx, dataset_id, &issues).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        let mut message = format!("Imported {} of {total} items from {source}.", entries.len());
        if !issues.is_empty() {
            message.push_str(&format!(" Skipped {}: {}", issues.len(), quote(&issues)));
        }
        Ok(message)
    }

    async fn set_status(&self, dataset_id: &str, status: &str, message: &str) -> Result<(), sqlx::Error> {
        let mut conn = self.db.pool.acquire().await?;
        dataset::set_status(&mut conn, dataset_id, status, Some(message)).await
    }

    /// The UpdateDatasetEntries job: every line must succeed, or nothing changes.
    pub async fn update_entries(&self, dataset_id: &str, lines: Vec<(i64, ManifestLine)>) {
        let outcome = self.try_update_entries(dataset_id, lines).await;
        let (status, message) = match outcome {
            Ok(message) => (dataset::UPDATE_COMPLETE, message),
            Err(e) => (dataset::UPDATE_FAILED_ROLLBACK_COMPLETE, e.to_string()),
        };
        if let Err(e) = self.set_status(dataset_id, status, &message).await {
            tracing::error!(error = %e, dataset_id, "could not record the update's outcome");
        }
    }

    async fn try_update_entries(&self, dataset_id: &str, lines: Vec<(i64, ManifestLine)>) -> Result<String, ImportError> {
        let existing: HashMap<String, StoredEntry> = {
            let mut conn = self.db.pool.acquire().await.map_err(internal)?;
            entries::all_entries(&mut conn, dataset_id).await.map_err(internal)?
        }
        .into_iter()
        .map(|e| (e.source_ref.clone(), e))
        .collect();
        let n = lines.len();
        let (entries, issues) = self.materialize_all(lines, &existing).await;
        if !issues.is_empty() {
            return Err(ImportError::Refused(format!(
                "The update was rolled back; no entry was changed. {} of {n} lines failed: {}",
                issues.len(),
                quote(&issues)
            )));
        }
        let added = entries.iter().filter(|e| !existing.contains_key(&e.source_ref)).count();
        let mut tx = self.db.begin_write().await.map_err(internal)?;
        let refused = labels::beyond_limit(&mut tx, dataset_id, &entries).await.map_err(internal)?;
        if !refused.is_empty() {
            let issues: Vec<Issue> = refused.iter().map(|(i, label)| label_limit_issue(entries[*i].source_ref.clone(), label)).collect();
            return Err(ImportError::Refused(format!(
                "The update was rolled back; no entry was changed. {} of {n} lines failed: {}",
                issues.len(),
                quote(&issues)
            )));
        }
        entries::upsert_entries(&mut tx, dataset_id, &entries).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(format!("Updated {} entries ({added} added, {} replaced).", n, n - added))
    }
}

fn label_limit_issue(source_ref: String, label: &str) -> Issue {
    Issue {
        line: None,
        source_ref: Some(source_ref),
        reason: format!(
            "its mask names the anomaly label {label}, which would give the project more than {} labels (LFV's limit)",
            crate::security::MAX_LABELS_PER_PROJECT
        ),
    }
}

/// Why an import or update job failed; its text is the dataset's `StatusMessage`.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The source (manifest, folder, archive, prefix) cannot be read; the message names it and says why.
    #[error("{0}")]
    Unreadable(String),
    /// The source holds nothing to import.
    #[error("{0}")]
    Empty(String),
    /// Every line was refused (the report names each with its reason), or an update failed and was rolled back.
    #[error("{0}")]
    Refused(String),
    /// The server failed (details in its log, not in the message).
    #[error("Vigil had an internal error while importing; try again.")]
    Internal,
}

/// Logs a server-side failure; the dataset's message only says that one happened.
pub(super) fn internal(e: impl std::fmt::Display) -> ImportError {
    tracing::error!(error = %e, "import failed");
    ImportError::Internal
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
    fn quotes_are_short() {
        let issues: Vec<Issue> = (1..=5).map(|i| Issue { line: Some(i), source_ref: None, reason: "x".into() }).collect();
        assert_eq!(quote(&issues), "line 1: x; line 2: x; line 3: x; and 2 more");
    }
}
