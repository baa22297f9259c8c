//! Import jobs: Ground Truth manifests from S3 (CreateDataset), S3 folders, MVTec AD layouts (from a bucket
//! or the server's disk), uploaded zips of a manifest with its images (an export), and JSON-line changes
//! (UpdateDatasetEntries).
//! Each image and mask is fetched, decoded to prove it is usable, stored in the blob store, and only then
//! written to the database in one transaction. An import keeps the valid lines and reports every skipped one
//! with its reason; an update is all or nothing, as LFV's is.

use super::manifest::{parse_line, parse_s3_uri, ManifestLine};
use super::mask::{binary_to_lfv, check_mask};
use super::{BlobInfo, Issue, NewEntry, StoredEntry};
use crate::blobs::Blobs;
use crate::engine::image_io;
use crate::s3::{FetchError, S3};
use crate::store::Db;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// LFV's limit for one image file.
pub const MAX_IMAGE_BYTES: u64 = 8 * 1024 * 1024;
/// LFV's limit for a manifest.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024 * 1024;
/// Longest manifest line: a JSON line with a colour map of 20 labels is a few kilobytes.
pub const MAX_MANIFEST_LINE_BYTES: usize = 256 * 1024;
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

/// A source of files on the server.
#[derive(Clone, Debug)]
pub enum Local {
    /// A directory: `file://` URIs under it.
    Dir(PathBuf),
    /// A zip archive (an uploaded export): references are member names.
    Zip(Arc<PathBuf>),
}

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

fn read_limited(mut r: impl Read, max: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    r.by_ref().take(max + 1).read_to_end(&mut bytes).map_err(|e| format!("could not be read: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(fetch_reason(FetchError::TooLarge(max)));
    }
    Ok(bytes)
}

impl Local {
    /// Reads a reference: a `file://` path under the directory, or a member of the zip.
    fn read(&self, uri: &str, max: u64) -> Result<Vec<u8>, String> {
        match self {
            Local::Dir(root) => {
                let path = uri.strip_prefix("file://").ok_or_else(|| format!("{uri} is not a file:// or s3:// URI"))?;
                let path = Path::new(path);
                if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) || !path.starts_with(root) {
                    return Err(format!("{uri} is outside the imported folder"));
                }
                // A symbolic link inside the folder must not lead out of it either.
                if let (Ok(real), Ok(real_root)) = (path.canonicalize(), root.canonicalize()) {
                    if !real.starts_with(&real_root) {
                        return Err(format!("{uri} is outside the imported folder"));
                    }
                }
                let f = std::fs::File::open(path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => "file not found".to_string(),
                    _ => format!("could not be read: {e}"),
                })?;
                read_limited(f, max)
            }
            Local::Zip(path) => {
                let f = std::fs::File::open(path.as_ref()).map_err(|e| format!("the archive could not be read: {e}"))?;
                let mut zip = zip::ZipArchive::new(f).map_err(|e| format!("the archive could not be read: {e}"))?;
                let name = uri.trim_start_matches("./");
                let member = zip.by_name(name).map_err(|_| "not in the archive".to_string())?;
                if member.size() > max {
                    return Err(fetch_reason(FetchError::TooLarge(max)));
                }
                read_limited(member, max)
            }
        }
    }
}

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
#[derive(Default)]
pub struct ManifestParser {
    n: i64,
    lines: Vec<(i64, ManifestLine)>,
    issues: Vec<Issue>,
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
                    self.issues.push(Issue {
                        line: Some(n),
                        source_ref: Some(l.source_ref.clone()),
                        reason: format!("duplicate source-ref (first on line {first})"),
                    });
                } else {
                    self.seen.insert(l.source_ref.clone(), n);
                    self.lines.push((n, l));
                }
            }
            Err(reason) => self.issues.push(Issue { line: Some(n), source_ref: None, reason: format!("malformed line: {reason}") }),
        }
    }

    pub fn finish(self) -> (Vec<(i64, ManifestLine)>, Vec<Issue>) {
        (self.lines, self.issues)
    }
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
        super::blob_info(&mut *self.db.pool.acquire().await?, hash).await
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
                    let binary = self.binary_masks;
                    tokio::task::spawn_blocking(move || -> Result<BlobInfo, String> {
                        // A converted mask is valid by construction; any other is checked against its map.
                        let bytes = match (binary, classes.first()) {
                            (true, Some(c)) => binary_to_lfv(&bytes, w, h, c.color)?,
                            _ => {
                                check_mask(&bytes, w, h, &classes)?;
                                bytes
                            }
                        };
                        let hash = blobs.put(&bytes).map_err(|_| "the mask could not be stored".to_string())?;
                        Ok(BlobInfo { hash, size: bytes.len() as i64, content_type: "image/png".into(), width: w as i64, height: h as i64 })
                    })
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

    /// Marks a dataset whose import could not even start as failed.
    pub async fn fail_create(&self, dataset_id: &str, message: String) {
        self.settle_create(dataset_id, Err(message)).await;
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
        // Lines whose masks would bring the project past its label limit are skipped, each named.
        let mut entries = entries;
        let refused = super::labels::beyond_limit(&mut tx, dataset_id, &entries).await.map_err(internal)?;
        for (i, label) in refused.iter().rev() {
            let e = entries.remove(*i);
            issues.push(label_limit_issue(e.source_ref, label));
        }
        if entries.is_empty() {
            drop(tx);
            let mut conn = self.db.pool.acquire().await.map_err(internal)?;
            super::record_issues(&mut conn, dataset_id, &issues).await.map_err(internal)?;
            return Err(format!("Nothing in {source} could be imported ({total} items). {}", quote(&issues)));
        }
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
        // Streamed: each line is parsed as it arrives, so a large manifest is never held whole.
        let mut parser = ManifestParser::default();
        self.s3
            .for_each_line(bucket, key, version, MAX_MANIFEST_BYTES, MAX_MANIFEST_LINE_BYTES, |raw| {
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                parser.push(std::str::from_utf8(raw).map_err(|_| "it is not UTF-8 text".to_string())?);
                Ok(())
            })
            .await
            .map_err(|e| match e {
                FetchError::TooLarge(_) => format!("The manifest {uri} is larger than 1 GB."),
                other => format!("The manifest {uri} could not be read: {other}."),
            })?;
        let (lines, issues) = parser.finish();
        if lines.is_empty() && issues.is_empty() {
            return Err(format!("The manifest {uri} has no lines."));
        }
        self.import_lines(dataset_id, lines, issues, &format!("the manifest {uri}")).await
    }

    /// Lists the files under a place, as paths relative to it.
    async fn list_place(&self, place: &Place) -> Result<Vec<String>, String> {
        match place {
            Place::S3 { bucket, prefix } => {
                let keys = self.s3.list(bucket, prefix).await.map_err(|e| format!("{} could not be listed: {e}.", place))?;
                Ok(keys.into_iter().filter_map(|k| k.strip_prefix(prefix.as_str()).map(str::to_string)).collect())
            }
            Place::Dir(root) => {
                let root = root.clone();
                let shown = place.to_string();
                tokio::task::spawn_blocking(move || walk(&root))
                    .await
                    .map_err(internal)?
                    .map_err(|e| format!("{shown} could not be listed: {e}."))
            }
        }
    }

    /// Imports a folder: images under `normal/` are labelled normal, under `anomaly/` anomaly (deeper
    /// sub-folders keep their top folder's label, as in LFV), any other image is unlabelled; a PNG in `masks/`
    /// with an anomaly image's name (any extension) becomes its mask, labelled `defect`.
    pub async fn import_folder(&self, dataset_id: &str, place: &Place) {
        let outcome = self.try_import_folder(dataset_id, place).await;
        self.settle_create(dataset_id, outcome).await;
    }

    async fn try_import_folder(&self, dataset_id: &str, place: &Place) -> Result<String, String> {
        let files = self.list_place(place).await?;
        let (lines, issues) = folder_lines(&files, |rel| place.uri(rel));
        if lines.is_empty() {
            return Err(format!("The folder {place} holds no .jpg, .jpeg or .png images."));
        }
        self.import_lines(dataset_id, lines, issues, &place.to_string()).await
    }

    /// Imports an MVTec AD category (`train/good`, `test/good`, `test/<defect>`,
    /// `ground_truth/<defect>/<name>_mask.png`) into a train and a test dataset; each defect folder becomes an
    /// anomaly label, and its white-on-black masks become LFV masks in that label's colour.
    pub async fn import_mvtec(&self, train_id: &str, test_id: &str, place: &Place) {
        let outcome = self.try_import_mvtec(train_id, test_id, place).await;
        match outcome {
            Ok((a, b)) => {
                self.settle_create(train_id, a).await;
                self.settle_create(test_id, b).await;
            }
            Err(m) => {
                self.settle_create(train_id, Err(m.clone())).await;
                self.settle_create(test_id, Err(m)).await;
            }
        }
    }

    async fn try_import_mvtec(&self, train_id: &str, test_id: &str, place: &Place) -> Result<(Result<String, String>, Result<String, String>), String> {
        let files = self.list_place(place).await?;
        let m = mvtec_lines(&files, |rel| place.uri(rel))?;
        let train = self.import_lines(train_id, m.train, m.issues, &format!("{place}train/")).await;
        let test = if m.test.is_empty() {
            Ok(format!("{place}test/ holds no images; the test dataset is empty."))
        } else {
            self.import_lines(test_id, m.test, Vec::new(), &format!("{place}test/")).await
        };
        Ok((train, test))
    }

    /// Imports an archive holding a Ground Truth manifest (`*.manifest`, one per archive) whose references
    /// are the archive's own files — what the console's export writes.
    pub async fn import_zip(&self, dataset_id: &str, display_name: &str) {
        let outcome = self.try_import_zip(dataset_id, display_name).await;
        self.settle_create(dataset_id, outcome).await;
    }

    async fn try_import_zip(&self, dataset_id: &str, display_name: &str) -> Result<String, String> {
        let Some(Local::Zip(path)) = self.local.clone() else { return Err(internal("zip import without an archive")) };
        let text = tokio::task::spawn_blocking(move || -> Result<String, String> {
            let f = std::fs::File::open(path.as_ref()).map_err(|e| format!("could not be read: {e}"))?;
            let mut zip = zip::ZipArchive::new(f).map_err(|_| "is not a zip archive".to_string())?;
            let names: Vec<String> = zip.file_names().filter(|n| n.ends_with(".manifest") && !n.contains("__MACOSX")).map(str::to_string).collect();
            let name = match names.as_slice() {
                [one] => one.clone(),
                [] => return Err("holds no .manifest file".into()),
                _ => return Err(format!("holds {} .manifest files; put one per archive", names.len())),
            };
            let member = zip.by_name(&name).map_err(|e| format!("could not be read: {e}"))?;
            let bytes = read_limited(member, MAX_MANIFEST_BYTES)?;
            String::from_utf8(bytes).map_err(|_| format!("{name} is not UTF-8 text"))
        })
        .await
        .map_err(internal)?
        .map_err(|m| format!("The archive {display_name} {m}."))?;
        let (lines, issues) = parse_manifest(&text);
        if lines.is_empty() && issues.is_empty() {
            return Err(format!("The manifest in {display_name} has no lines."));
        }
        self.import_lines(dataset_id, lines, issues, &format!("the archive {display_name}")).await
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
        let refused = super::labels::beyond_limit(&mut tx, dataset_id, &entries).await.map_err(internal)?;
        if !refused.is_empty() {
            let issues: Vec<Issue> = refused.iter().map(|(i, label)| label_limit_issue(entries[*i].source_ref.clone(), label)).collect();
            return Err(format!("The update was rolled back; no entry was changed. {} of {n} lines failed: {}", issues.len(), quote(&issues)));
        }
        super::upsert_entries(&mut tx, dataset_id, &entries).await.map_err(internal)?;
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

/// Where a folder or MVTec import reads from: an S3 prefix or a directory on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// `prefix` is empty or ends with `/`.
    S3 { bucket: String, prefix: String },
    /// An absolute path.
    Dir(PathBuf),
}

impl Place {
    /// `s3://bucket/prefix/` or an absolute path on the server.
    pub fn parse(s: &str) -> Result<Place, String> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("{s:?} names no bucket: use s3://bucket/prefix/."));
            }
            let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
            return Ok(Place::S3 { bucket: bucket.to_string(), prefix });
        }
        let path = Path::new(s.strip_prefix("file://").unwrap_or(s));
        if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(format!("{s:?} is neither an s3://bucket/prefix/ URI nor an absolute path on the server."));
        }
        Ok(Place::Dir(path.to_path_buf()))
    }

    /// The URI of a file under the place.
    pub fn uri(&self, rel: &str) -> String {
        match self {
            Place::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}{rel}"),
            Place::Dir(root) => format!("file://{}", root.join(rel).display()),
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Place::Dir(root) => write!(f, "{}/", root.display().to_string().trim_end_matches('/')),
        }
    }
}

/// Files under a directory, as `/`-separated paths relative to it, sorted (hidden entries skipped).
fn walk(root: &Path) -> std::io::Result<Vec<String>> {
    const MAX_FILES: usize = 200_000;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = e.path();
            if e.file_type()?.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
                if out.len() > MAX_FILES {
                    return Err(std::io::Error::other(format!("more than {MAX_FILES} files")));
                }
            }
        }
    }
    out.sort();
    Ok(out)
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
fn line_for(uri: String, label: Option<super::manifest::Label>, mask: Option<(String, super::manifest::MaskClass)>, now: &str) -> ManifestLine {
    let mut raw = serde_json::Map::new();
    raw.insert("source-ref".into(), serde_json::Value::String(uri.clone()));
    let (raw, mask_ref, classes) = match mask {
        Some((m, class)) => {
            let classes = vec![class];
            (super::manifest::with_mask(&raw, &m, &classes, now), Some(m), classes)
        }
        None => (super::manifest::with_label(&raw, label, now), None, Vec::new()),
    };
    let label = if mask_ref.is_some() { Some(super::manifest::Label::Anomaly) } else { label };
    ManifestLine { source_ref: uri, label, mask_ref, classes, raw }
}

/// Manifest lines for the files of a folder (paths relative to it), labelled by their top sub-folder, with
/// masks from `masks/`; other files are issues.
pub fn folder_lines(files: &[String], uri: impl Fn(&str) -> String) -> (Vec<(i64, ManifestLine)>, Vec<Issue>) {
    let now = now_iso();
    let masks: HashMap<&str, &String> =
        files.iter().filter(|f| f.starts_with("masks/") && f.to_ascii_lowercase().ends_with(".png")).map(|f| (stem(f), f)).collect();
    let class = super::manifest::MaskClass { name: FOLDER_MASK_LABEL.into(), color: PALETTE[0] };
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
            Some("normal") if rel.contains('/') => Some(super::manifest::Label::Normal),
            Some("anomaly") if rel.contains('/') => Some(super::manifest::Label::Anomaly),
            _ => None,
        };
        let mask = (label == Some(super::manifest::Label::Anomaly))
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
            ["train", "good", _] => out.train.push((0, line_for(uri(rel), Some(super::manifest::Label::Normal), None, &now))),
            ["test", "good", _] => out.test.push((0, line_for(uri(rel), Some(super::manifest::Label::Normal), None, &now))),
            ["test", defect, file] => {
                let i = defects.iter().position(|d| d == defect).unwrap_or(0);
                let class = super::manifest::MaskClass { name: label_from_folder(defect), color: PALETTE[i % PALETTE.len()] };
                let mask_rel = format!("ground_truth/{defect}/{}_mask.png", stem(file));
                let mask = present.contains(mask_rel.as_str()).then(|| (uri(&mask_rel), class));
                out.test.push((0, line_for(uri(rel), Some(super::manifest::Label::Anomaly), mask, &now)));
            }
            _ => out.issues.push(Issue {
                line: None,
                source_ref: Some(uri(rel)),
                reason: "not in train/good, test/good or test/<defect> (the MVTec AD layout)".into(),
            }),
        }
    }
    if out.train.is_empty() {
        return Err("No images in train/good/: this is not an MVTec AD category folder (train/good, test/<defect>, ground_truth/<defect>).".into());
    }
    Ok(out)
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
        assert!(m.train.iter().all(|(_, l)| l.label == Some(super::super::manifest::Label::Normal)));
        assert_eq!(m.test.len(), 4);
        let broken = m.test.iter().find(|(_, l)| l.source_ref.ends_with("broken_large/000.png")).unwrap();
        assert_eq!(broken.1.mask_ref.as_deref(), Some("s3://b/bottle/ground_truth/broken_large/000_mask.png"));
        assert_eq!(broken.1.classes[0].name, "broken_large");
        let unmasked = m.test.iter().find(|(_, l)| l.source_ref.ends_with("broken_large/001.png")).unwrap();
        assert_eq!(unmasked.1.label, Some(super::super::manifest::Label::Anomaly));
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
        assert!(super::super::manifest::validate_label_name(&label_from_folder("çà")).is_ok());
    }

    #[test]
    fn local_sources_stay_inside_their_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x.png"), b"12345").unwrap();
        let local = Local::Dir(dir.path().to_path_buf());
        let uri = format!("file://{}", dir.path().join("a/x.png").display());
        assert_eq!(local.read(&uri, 10).unwrap(), b"12345");
        assert!(local.read(&uri, 3).unwrap_err().contains("larger"));
        assert!(local.read("file:///etc/passwd", 10).unwrap_err().contains("outside"));
        assert!(local.read(&format!("file://{}/a/../a/x.png", dir.path().display()), 10).unwrap_err().contains("outside"));
        assert_eq!(local.read(&format!("file://{}/a/none.png", dir.path().display()), 10).unwrap_err(), "file not found");
        assert_eq!(walk(dir.path()).unwrap(), vec!["a/x.png".to_string()]);
        // A link inside the root that points outside it is refused.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.png"), b"s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.png"), dir.path().join("a/link.png")).unwrap();
        let link = format!("file://{}", dir.path().join("a/link.png").display());
        assert!(local.read(&link, 10).unwrap_err().contains("outside"));
    }

    #[test]
    fn quotes_are_short() {
        let issues: Vec<Issue> = (1..=5).map(|i| Issue { line: Some(i), source_ref: None, reason: "x".into() }).collect();
        assert_eq!(quote(&issues), "line 1: x; line 2: x; line 3: x; and 2 more");
    }
}
