//! The jobs that create a dataset, one per kind of source: a Ground Truth manifest in S3 (streamed), a folder
//! (an S3 prefix or a directory on the server), an MVTec AD category (into a train and a test dataset), and an
//! uploaded archive holding a manifest with its files. Each reads its source into lines (`readers`) and hands
//! them to the importer's core.

use super::importer::{internal, ImportError, Importer};
use super::places::{walk, Local, Place, MAX_MANIFEST_BYTES, MAX_MANIFEST_LINE_BYTES};
use super::readers::{folder_lines, mvtec_lines, ManifestParser};
use crate::s3::FetchError;

impl Importer {
    /// The CreateDataset job: reads the manifest, imports what it can, and settles the dataset's status.
    pub async fn import_manifest(&self, dataset_id: &str, bucket: &str, key: &str, version: Option<&str>) {
        let outcome = self.try_import_manifest(dataset_id, bucket, key, version).await;
        self.settle_create(dataset_id, outcome).await;
    }

    async fn try_import_manifest(&self, dataset_id: &str, bucket: &str, key: &str, version: Option<&str>) -> Result<String, ImportError> {
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
                FetchError::TooLarge(_) => ImportError::Unreadable(format!("The manifest {uri} is larger than 1 GB.")),
                other => ImportError::Unreadable(format!("The manifest {uri} could not be read: {other}.")),
            })?;
        let (lines, issues) = parser.finish();
        if lines.is_empty() && issues.is_empty() {
            return Err(ImportError::Empty(format!("The manifest {uri} has no lines.")));
        }
        self.import_lines(dataset_id, lines, issues, &format!("the manifest {uri}")).await
    }

    /// Lists the files under a place, as paths relative to it.
    async fn list_place(&self, place: &Place) -> Result<Vec<String>, ImportError> {
        match place {
            Place::S3 { bucket, prefix } => {
                let keys = self.s3.list(bucket, prefix).await.map_err(|e| ImportError::Unreadable(format!("{} could not be listed: {e}.", place)))?;
                Ok(keys.into_iter().filter_map(|k| k.strip_prefix(prefix.as_str()).map(str::to_string)).collect())
            }
            Place::Dir(root) => {
                let root = root.clone();
                let shown = place.to_string();
                tokio::task::spawn_blocking(move || walk(&root))
                    .await
                    .map_err(internal)?
                    .map_err(|e| ImportError::Unreadable(format!("{shown} could not be listed: {e}.")))
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

    async fn try_import_folder(&self, dataset_id: &str, place: &Place) -> Result<String, ImportError> {
        let files = self.list_place(place).await?;
        let (lines, issues) = folder_lines(&files, |rel| place.uri(rel));
        if lines.is_empty() {
            return Err(ImportError::Empty(format!("The folder {place} holds no .jpg, .jpeg or .png images.")));
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
            Err(e) => {
                let message = e.to_string();
                self.settle_create(train_id, Err(e)).await;
                self.settle_create(test_id, Err(ImportError::Unreadable(message))).await;
            }
        }
    }

    async fn try_import_mvtec(&self, train_id: &str, test_id: &str, place: &Place) -> Result<(Result<String, ImportError>, Result<String, ImportError>), ImportError> {
        let files = self.list_place(place).await?;
        let m = mvtec_lines(&files, |rel| place.uri(rel)).map_err(ImportError::Empty)?;
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

    async fn try_import_zip(&self, dataset_id: &str, display_name: &str) -> Result<String, ImportError> {
        let Some(Local::Zip(source)) = self.local.clone() else { return Err(internal("zip import without an archive")) };
        // The manifest is parsed line by line as it is decompressed, never held whole, and bounded in total and
        // per line; the archive's directory is read once here and reused for every image.
        let (lines, issues) = tokio::task::spawn_blocking(move || {
            source.with(|zip| {
                use std::io::{BufRead, Read};
                let names: Vec<String> =
                    zip.file_names().filter(|n| n.ends_with(".manifest") && !n.contains("__MACOSX")).map(str::to_string).collect();
                let name = match names.as_slice() {
                    [one] => one.clone(),
                    [] => return Err("holds no .manifest file".into()),
                    _ => return Err(format!("holds {} .manifest files; put one per archive", names.len())),
                };
                let member = zip.by_name(&name).map_err(|e| format!("could not be read: {e}"))?;
                super::places::check_ratio(&member)?;
                let mut reader = std::io::BufReader::new(std::io::Read::take(member, MAX_MANIFEST_BYTES + 1));
                let mut parser = ManifestParser::default();
                let (mut total, mut line) = (0u64, Vec::new());
                loop {
                    line.clear();
                    let n = (&mut reader)
                        .take(MAX_MANIFEST_LINE_BYTES as u64 + 1)
                        .read_until(b'\n', &mut line)
                        .map_err(|e| format!("could not be read: {e}"))?;
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                    if total > MAX_MANIFEST_BYTES {
                        return Err(format!("holds a manifest larger than {} MB", MAX_MANIFEST_BYTES >> 20));
                    }
                    if line.len() > MAX_MANIFEST_LINE_BYTES && !line.ends_with(b"\n") {
                        return Err(format!("holds a manifest line (line {}) longer than {} KiB", parser.lines_read() + 1, MAX_MANIFEST_LINE_BYTES >> 10));
                    }
                    let raw = line.strip_suffix(b"\n").unwrap_or(&line);
                    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                    parser.push(std::str::from_utf8(raw).map_err(|_| format!("{name} is not UTF-8 text"))?);
                }
                Ok(parser.finish())
            })
        })
        .await
        .map_err(internal)?
        .map_err(|m| ImportError::Unreadable(format!("The archive {display_name} {m}.")))?;
        if lines.is_empty() && issues.is_empty() {
            return Err(ImportError::Empty(format!("The manifest in {display_name} has no lines.")));
        }
        self.import_lines(dataset_id, lines, issues, &format!("the archive {display_name}")).await
    }
}
