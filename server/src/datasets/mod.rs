//! Datasets: a project's `train` and `test` image sets, their entries (LFV JSON lines with labels and
//! masks), and the imports that fill them. This file only names the parts and re-exports their API: the
//! dataset rows and statuses in `dataset`, entries in `entries` (written, read, moved) and `listing`
//! (filtered pages), counts and import reports in `report`, shared records in `types`, anomaly labels in
//! `labels`, manifest lines in `manifest`, masks in `mask`, and the import jobs in `import`.

mod dataset;
mod entries;
pub mod import;
pub mod labels;
mod listing;
pub mod manifest;
pub mod mask;
mod report;
mod types;

pub use dataset::{
    check_not_busy, check_settled, clear, create, delete, fail_interrupted, find, import_source, is_busy, is_settled, list_for_project,
    require, set_import_source, set_status, validate_dataset_type, Dataset, DatasetError, CREATE_COMPLETE, CREATE_FAILED,
    CREATE_IN_PROGRESS, UPDATE_COMPLETE, UPDATE_FAILED_ROLLBACK_COMPLETE, UPDATE_IN_PROGRESS,
};
pub use entries::{
    all_entries, blob_info, delete_entries, entry_by_id, move_entries, set_entry_label, set_entry_line, set_entry_mask, upload_source_ref,
    upsert_blob, upsert_entries,
};
pub use listing::{count_entries, entry_ids, list_entries, EntryFilter, EntryOrder};
pub use report::{issues, record_issues, stats, ImageStats};
pub use types::{BlobInfo, Issue, NewEntry, StoredEntry};
