//! A dataset's entries (`dataset_entry`) and the blobs they point at: writing them (imports, uploads,
//! label and mask edits), reading them one by one or all at once, deleting and moving them. Filtered pages
//! are in `listing`.

use super::labels;
use super::manifest::{self, ImageClass};
use super::types::{new_id, BlobInfo, NewEntry, StoredEntry};
use crate::db::now_ms;
use sqlx::AnyConnection;

/// What the blob store knows of a blob (size, type, pixel size), if it is recorded.
pub async fn blob_info(conn: &mut AnyConnection, hash: &str) -> Result<Option<BlobInfo>, sqlx::Error> {
    let row: Option<(String, i64, String, i64, i64)> =
        sqlx::query_as("select hash, size, content_type, width, height from blob where hash = $1").bind(hash).fetch_optional(&mut *conn).await?;
    Ok(row.map(|(hash, size, content_type, width, height)| BlobInfo { hash, size, content_type, width, height }))
}

/// The `source-ref` of an image uploaded from the browser: unique per content and file name.
pub fn upload_source_ref(hash: &str, file_name: &str) -> String {
    format!("vigil://upload/{}/{}", &hash[..hash.len().min(16)], file_name)
}

pub async fn upsert_blob(conn: &mut AnyConnection, b: &BlobInfo, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into blob (hash, size, content_type, width, height, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $6) on conflict (hash) do nothing",
    )
    .bind(&b.hash)
    .bind(b.size)
    .bind(&b.content_type)
    .bind(b.width)
    .bind(b.height)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes entries; one whose source-ref is already in the dataset replaces it (keeping its creation time).
pub async fn upsert_entries(conn: &mut AnyConnection, dataset_id: &str, entries: &[NewEntry]) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let mut classes: Vec<manifest::MaskColor> = Vec::new();
    for e in entries {
        upsert_blob(conn, &e.image, now).await?;
        if let Some(m) = &e.mask {
            upsert_blob(conn, m, now).await?;
        }
        let updated = sqlx::query(
            "update dataset_entry set image_hash = $1, label = $2, mask_hash = $3, entry = $4, updated_at = $5, anomaly_types = $8 \
             where dataset_id = $6 and source_ref = $7",
        )
        .bind(&e.image.hash)
        .bind(e.label.map(ImageClass::as_str))
        .bind(e.mask.as_ref().map(|m| m.hash.as_str()))
        .bind(&e.entry)
        .bind(now)
        .bind(dataset_id)
        .bind(&e.source_ref)
        .bind(labels::types_of(&e.classes))
        .execute(&mut *conn)
        .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(
                "insert into dataset_entry (id, dataset_id, source_ref, image_hash, label, mask_hash, entry, created_at, updated_at, anomaly_types) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
            )
            .bind(new_id())
            .bind(dataset_id)
            .bind(&e.source_ref)
            .bind(&e.image.hash)
            .bind(e.label.map(ImageClass::as_str))
            .bind(e.mask.as_ref().map(|m| m.hash.as_str()))
            .bind(&e.entry)
            .bind(now)
            .bind(labels::types_of(&e.classes))
            .execute(&mut *conn)
            .await?;
        }
        for c in &e.classes {
            if !classes.iter().any(|k: &manifest::MaskColor| k.name == c.name) {
                classes.push(c.clone());
            }
        }
    }
    // The labels the lines' colour maps name join the project's, once per write rather than per line.
    if !classes.is_empty() {
        if let Some(project_id) = labels::project_of_dataset(conn, dataset_id).await? {
            labels::register(conn, &project_id, &classes).await?;
        }
    }
    Ok(())
}

pub(super) type EntryRow = (String, String, String, Option<String>, Option<String>, String, i64);

pub(super) const ENTRY_COLUMNS: &str = "id, source_ref, image_hash, label, mask_hash, entry, created_at";

pub(super) fn entry_from((id, source_ref, image_hash, label, mask_hash, entry, created_at): EntryRow) -> StoredEntry {
    let class = match label.as_deref() {
        Some("anomaly") => Some(ImageClass::Anomaly),
        Some("normal") => Some(ImageClass::Normal),
        _ => None,
    };
    let line = manifest::parse_line(&entry).ok();
    StoredEntry { id, source_ref, image_hash, class, mask_hash, entry, line, created_at }
}

/// Every entry of a dataset (updates reuse the images they already hold).
pub async fn all_entries(conn: &mut AnyConnection, dataset_id: &str) -> Result<Vec<StoredEntry>, sqlx::Error> {
    let rows: Vec<EntryRow> = sqlx::query_as(&format!(
        "select {ENTRY_COLUMNS} from dataset_entry where dataset_id = $1 order by created_at, id"
    ))
    .bind(dataset_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(entry_from).collect())
}

/// Rewrites one entry's line and label column.
pub async fn set_entry_label(
    conn: &mut AnyConnection,
    dataset_id: &str,
    id: &str,
    label: Option<ImageClass>,
    entry: &str,
) -> Result<bool, sqlx::Error> {
    let classes = manifest::line_classes(entry);
    let r = sqlx::query(
        "update dataset_entry set label = $1, entry = $2, updated_at = $3, anomaly_types = $6 where dataset_id = $4 and id = $5",
    )
        .bind(label.map(ImageClass::as_str))
        .bind(entry)
        .bind(now_ms())
        .bind(dataset_id)
        .bind(id)
        .bind(labels::types_of(&classes))
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn entry_by_id(conn: &mut AnyConnection, dataset_id: &str, id: &str) -> Result<Option<StoredEntry>, sqlx::Error> {
    let row: Option<EntryRow> =
        sqlx::query_as(&format!("select {ENTRY_COLUMNS} from dataset_entry where dataset_id = $1 and id = $2"))
            .bind(dataset_id)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(entry_from))
}

/// Rewrites one entry with a new mask (label, mask blob and line together).
pub async fn set_entry_mask(
    conn: &mut AnyConnection,
    dataset_id: &str,
    id: &str,
    mask: &BlobInfo,
    entry: &str,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let classes = manifest::line_classes(entry);
    upsert_blob(conn, mask, now).await?;
    let r = sqlx::query(
        "update dataset_entry set label = 'anomaly', mask_hash = $1, entry = $2, updated_at = $3, anomaly_types = $6 \
         where dataset_id = $4 and id = $5",
    )
    .bind(&mask.hash)
    .bind(entry)
    .bind(now)
    .bind(dataset_id)
    .bind(id)
    .bind(labels::types_of(&classes))
    .execute(&mut *conn)
    .await?;
    labels::register_classes(conn, dataset_id, &classes).await?;
    Ok(r.rows_affected() == 1)
}

/// Rewrites one entry's JSON line, leaving its label and blobs as they are.
pub async fn set_entry_line(conn: &mut AnyConnection, dataset_id: &str, id: &str, entry: &str) -> Result<(), sqlx::Error> {
    let classes = manifest::line_classes(entry);
    sqlx::query("update dataset_entry set entry = $1, updated_at = $2, anomaly_types = $5 where dataset_id = $3 and id = $4")
        .bind(entry)
        .bind(now_ms())
        .bind(dataset_id)
        .bind(id)
        .bind(labels::types_of(&classes))
        .execute(&mut *conn)
        .await?;
    labels::register_classes(conn, dataset_id, &classes).await?;
    Ok(())
}

/// Deletes entries by id; returns how many went.
pub async fn delete_entries(conn: &mut AnyConnection, dataset_id: &str, ids: &[String]) -> Result<u64, sqlx::Error> {
    let mut n = 0;
    for id in ids {
        n += sqlx::query("delete from dataset_entry where dataset_id = $1 and id = $2")
            .bind(dataset_id)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(n)
}

/// Moves entries to another dataset of the same project; an entry with the same source-ref there is replaced.
pub async fn move_entries(conn: &mut AnyConnection, from: &str, to: &str, ids: &[String]) -> Result<u64, sqlx::Error> {
    let mut n = 0;
    for id in ids {
        let Some(e) = entry_by_id(conn, from, id).await? else { continue };
        sqlx::query("delete from dataset_entry where dataset_id = $1 and source_ref = $2")
            .bind(to)
            .bind(&e.source_ref)
            .execute(&mut *conn)
            .await?;
        n += sqlx::query("update dataset_entry set dataset_id = $1, updated_at = $2 where dataset_id = $3 and id = $4")
            .bind(to)
            .bind(now_ms())
            .bind(from)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(n)
}
