//! Import jobs: Ground Truth manifests from S3 (CreateDataset), S3 folders, MVTec AD layouts (from a bucket
//! or the server's disk), uploaded zips of a manifest with its images (an export), and JSON-line changes
//! (UpdateDatasetEntries).
//! Each image and mask is fetched, decoded to prove it is usable, stored in the blob store, and only then
//! written to the database in one transaction. An import keeps the valid lines and reports every skipped one
//! with its reason; an update is all or nothing, as LFV's is.
//! This file only names the parts and re-exports their API: the importer's core in `importer`, the job per
//! kind of source in `create`, sources and limits in `places`, reading sources into lines in `readers`, and
//! storing images and masks in `storing`.

mod create;
mod importer;
mod places;
mod readers;
mod storing;

pub use importer::{ImportError, Importer};
pub use places::{Local, Place, ZipSource, MAX_IMAGE_BYTES, MAX_MANIFEST_BYTES, MAX_MANIFEST_LINE_BYTES, MAX_ZIP_ENTRIES, MAX_ZIP_RATIO};
pub use readers::{
    folder_lines, label_from_folder, mvtec_layout_lines, mvtec_lines, parse_manifest, ManifestParser, MvtecLines, FOLDER_MASK_LABEL, PALETTE,
};
pub use storing::store_image;
