//! Datasets: a project's `train` and `test` image sets, their entries (LFV JSON lines with labels and
//! masks), and the imports that fill them. Queries here; the import jobs in `import`.

pub mod import;
pub mod labels;
pub mod manifest;
pub mod mask;

use crate::store::{is_unique_violation, now_ms};
use manifest::Label;
use sqlx::AnyConnection;

pub const CREATE_IN_PROGRESS: &str = "CREATE_IN_PROGRESS";
pub const CREATE_COMPLETE: &str = "CREATE_COMPLETE";
pub const CREATE_FAILED: &str = "CREATE_FAILED";
pub const UPDATE_IN_PROGRESS: &str = "UPDATE_IN_PROGRESS";
pub const UPDATE_COMPLETE: &str = "UPDATE_COMPLETE";
pub const UPDATE_FAILED_ROLLBACK_COMPLETE: &str = "UPDATE_FAILED_ROLLBACK_COMPLETE";

/// Statuses in which a dataset's entries can be changed.
pub fn is_settled(status: &str) -> bool {
    matches!(status, CREATE_COMPLETE | UPDATE_COMPLETE | UPDATE_FAILED_ROLLBACK_COMPLETE)
}

/// Statuses in which an import or update is writing into the dataset: the only ones that forbid deleting
/// it (a failed import is settled too: it can be deleted, or run again).
pub fn is_busy(status: &str) -> bool {
    matches!(status, CREATE_IN_PROGRESS | UPDATE_IN_PROGRESS)
}

pub fn validate_dataset_type(t: &str) -> Result<(), String> {
    if t == "train" || t == "test" {
        Ok(())
    } else {
        Err(format!("DatasetType must be train or test, not {t:?}."))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    pub id: String,
    pub project_id: String,
    pub dataset_type: String,
    pub status: String,
    pub status_message: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageStats {
    pub total: i64,
    pub labeled: i64,
    pub normal: i64,
    pub anomaly: i64,
}

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
    pub label: Option<Label>,
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

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("The project {project} has no {dataset_type} dataset.")]
    NotFound { project: String, dataset_type: String },
    /// An import or update is writing into it (or it is in another unsettled state).
    #[error("The {dataset_type} dataset is busy ({status}); try again when it has finished.")]
    Busy { dataset_type: String, status: String },
    #[error("{0}")]
    Invalid(String),
    #[error("The project already has a {0} dataset.")]
    Exists(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A dataset whose entries can change now, or `Busy`.
pub fn check_settled(d: &Dataset) -> Result<(), DatasetError> {
    if is_settled(&d.status) {
        Ok(())
    } else {
        Err(DatasetError::Busy { dataset_type: d.dataset_type.clone(), status: d.status.clone() })
    }
}

/// A dataset no import or update is writing into (it may be deleted), or `Busy`.
pub fn check_not_busy(d: &Dataset) -> Result<(), DatasetError> {
    if is_busy(&d.status) {
        Err(DatasetError::Busy { dataset_type: d.dataset_type.clone(), status: d.status.clone() })
    } else {
        Ok(())
    }
}

/// The project's dataset of that type, or `NotFound` (`project` names the project in the message).
pub async fn require(conn: &mut AnyConnection, project_id: &str, project: &str, dataset_type: &str) -> Result<Dataset, DatasetError> {
    find(conn, project_id, dataset_type)
        .await?
        .ok_or_else(|| DatasetError::NotFound { project: project.to_string(), dataset_type: dataset_type.to_string() })
}

type DatasetRow = (String, String, String, String, Option<String>, i64, i64);

fn dataset_from((id, project_id, dataset_type, status, status_message, created_at, updated_at): DatasetRow) -> Dataset {
    Dataset { id, project_id, dataset_type, status, status_message, created_at, updated_at }
}

const DATASET_COLUMNS: &str = "id, project_id, dataset_type, status, status_message, created_at, updated_at";

fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

pub async fn create(
    conn: &mut AnyConnection,
    project_id: &str,
    dataset_type: &str,
    status: &str,
) -> Result<Dataset, DatasetError> {
    if find(conn, project_id, dataset_type).await?.is_some() {
        return Err(DatasetError::Exists(dataset_type.to_string()));
    }
    let now = now_ms();
    let d = Dataset {
        id: new_id(),
        project_id: project_id.to_string(),
        dataset_type: dataset_type.to_string(),
        status: status.to_string(),
        status_message: None,
        created_at: now,
        updated_at: now,
    };
    sqlx::query(
        "insert into dataset (id, project_id, dataset_type, status, status_message, created_at, updated_at) \
         values ($1, $2, $3, $4, null, $5, $5)",
    )
    .bind(&d.id)
    .bind(&d.project_id)
    .bind(&d.dataset_type)
    .bind(&d.status)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|e| if is_unique_violation(&e) { DatasetError::Exists(dataset_type.to_string()) } else { e.into() })?;
    Ok(d)
}

pub async fn find(conn: &mut AnyConnection, project_id: &str, dataset_type: &str) -> Result<Option<Dataset>, sqlx::Error> {
    let row: Option<DatasetRow> = sqlx::query_as(&format!(
        "select {DATASET_COLUMNS} from dataset where project_id = $1 and dataset_type = $2"
    ))
    .bind(project_id)
    .bind(dataset_type)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(dataset_from))
}

pub async fn list_for_project(conn: &mut AnyConnection, project_id: &str) -> Result<Vec<Dataset>, sqlx::Error> {
    let rows: Vec<DatasetRow> = sqlx::query_as(&format!(
        "select {DATASET_COLUMNS} from dataset where project_id = $1 order by dataset_type desc"
    ))
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(dataset_from).collect())
}

pub async fn set_status(conn: &mut AnyConnection, id: &str, status: &str, message: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query("update dataset set status = $1, status_message = $2, updated_at = $3 where id = $4")
        .bind(status)
        .bind(message)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records the import job that creates a dataset (see `import_source`).
pub async fn set_import_source(conn: &mut AnyConnection, id: &str, spec: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update dataset set import_source = $1 where id = $2").bind(spec).bind(id).execute(&mut *conn).await?;
    Ok(())
}

/// The spec of the import job that created the dataset, when the console started it.
pub async fn import_source(conn: &mut AnyConnection, id: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("select import_source from dataset where id = $1").bind(id).fetch_optional(&mut *conn).await?;
    Ok(row.and_then(|(s,)| s))
}

/// Removes a dataset's entries and report, keeping the dataset (an import about to run again).
pub async fn clear(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from import_issue where dataset_id = $1").bind(id).execute(&mut *conn).await?;
    sqlx::query("delete from dataset_entry where dataset_id = $1").bind(id).execute(&mut *conn).await?;
    Ok(())
}

pub async fn delete(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    // Children first, so neither engine needs cascading deletes switched on.
    sqlx::query("delete from import_issue where dataset_id = $1").bind(id).execute(&mut *conn).await?;
    sqlx::query("delete from dataset_entry where dataset_id = $1").bind(id).execute(&mut *conn).await?;
    sqlx::query("delete from dataset where id = $1").bind(id).execute(&mut *conn).await?;
    Ok(())
}

pub async fn stats(conn: &mut AnyConnection, dataset_id: &str) -> Result<ImageStats, sqlx::Error> {
    let rows: Vec<(Option<String>, i64)> =
        sqlx::query_as("select label, count(*) from dataset_entry where dataset_id = $1 group by label")
            .bind(dataset_id)
            .fetch_all(&mut *conn)
            .await?;
    let mut s = ImageStats::default();
    for (label, n) in rows {
        s.total += n;
        match label.as_deref() {
            Some("normal") => s.normal += n,
            Some("anomaly") => s.anomaly += n,
            _ => {}
        }
    }
    s.labeled = s.normal + s.anomaly;
    Ok(s)
}

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
    let mut classes: Vec<manifest::MaskClass> = Vec::new();
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
        .bind(e.label.map(Label::as_str))
        .bind(e.mask.as_ref().map(|m| m.hash.as_str()))
        .bind(&e.entry)
        .bind(now)
        .bind(dataset_id)
        .bind(&e.source_ref)
        .bind(labels::types_of(&e.entry))
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
            .bind(e.label.map(Label::as_str))
            .bind(e.mask.as_ref().map(|m| m.hash.as_str()))
            .bind(&e.entry)
            .bind(now)
            .bind(labels::types_of(&e.entry))
            .execute(&mut *conn)
            .await?;
        }
        for c in manifest::parse_line(&e.entry).map(|l| l.classes).unwrap_or_default() {
            if !classes.iter().any(|k: &manifest::MaskClass| k.name == c.name) {
                classes.push(c);
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

/// ListDatasetEntries' filters.
#[derive(Clone, Debug, Default)]
pub struct EntryFilter {
    pub labeled: Option<bool>,
    pub label: Option<Label>,
    pub created_before: Option<i64>,
    pub created_after: Option<i64>,
    pub source_ref_contains: Option<String>,
    /// Part of the source-ref, ignoring ASCII case (the console's search; not an LFV filter).
    pub source_ref_search: Option<String>,
    /// Entries whose mask uses this anomaly label (the console's filter; not an LFV filter).
    pub anomaly_type: Option<String>,
    /// The order of the rows; keyset paging (`after`) needs the default.
    pub order: EntryOrder,
}

/// Orders of the console's gallery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EntryOrder {
    /// Oldest first (LFV's order, and the only one keyset paging supports).
    #[default]
    Added,
    Newest,
    /// By source-ref, so images of one folder stay together.
    Name,
    /// Anomaly, then normal, then unlabelled; oldest first within each.
    Label,
}

impl EntryOrder {
    fn sql(self) -> &'static str {
        match self {
            EntryOrder::Added => " order by created_at, id",
            EntryOrder::Newest => " order by created_at desc, id desc",
            EntryOrder::Name => " order by source_ref, id",
            EntryOrder::Label => {
                " order by case when label = 'anomaly' then 0 when label = 'normal' then 1 else 2 end, created_at, id"
            }
        }
    }
}

enum Bind {
    Text(String),
    Int(i64),
}

type EntryRow = (String, String, String, Option<String>, Option<String>, String, i64);

const ENTRY_COLUMNS: &str = "id, source_ref, image_hash, label, mask_hash, entry, created_at";

/// `select COLUMNS from dataset_entry where` the dataset and the filter, with its binds (`$1` the dataset).
fn filtered(columns: &str, dataset_id: &str, filter: &EntryFilter) -> (String, Vec<Bind>) {
    let mut sql = format!("select {columns} from dataset_entry where dataset_id = $1");
    let mut binds = vec![Bind::Text(dataset_id.to_string())];
    let mut push = |clause: &str, b: Bind, sql: &mut String| {
        binds.push(b);
        sql.push_str(&clause.replace("$?", &format!("${}", binds.len())));
    };
    match filter.labeled {
        Some(true) => sql.push_str(" and label is not null"),
        Some(false) => sql.push_str(" and label is null"),
        None => {}
    }
    if let Some(l) = filter.label {
        push(" and label = $?", Bind::Text(l.as_str().into()), &mut sql);
    }
    if let Some(t) = filter.created_before {
        push(" and created_at < $?", Bind::Int(t), &mut sql);
    }
    if let Some(t) = filter.created_after {
        push(" and created_at > $?", Bind::Int(t), &mut sql);
    }
    let like = |s: &str| format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    if let Some(s) = &filter.source_ref_contains {
        push(" and source_ref like $? escape '\\'", Bind::Text(like(s)), &mut sql);
    }
    if let Some(s) = &filter.source_ref_search {
        // lower() on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
        push(" and lower(source_ref) like $? escape '\\'", Bind::Text(like(&s.to_lowercase())), &mut sql);
    }
    if let Some(t) = &filter.anomaly_type {
        push(" and anomaly_types like $? escape '\\'", Bind::Text(labels::type_pattern(t)), &mut sql);
    }
    (sql, binds)
}

fn bind_all<'q, O>(
    mut q: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>,
    binds: Vec<Bind>,
) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s),
            Bind::Int(i) => q.bind(i),
        };
    }
    q
}

/// A page of entries in the filter's order, after the given (created_at, id) key (the API's keyset paging,
/// creation order only) and after skipping `offset` rows (the console's numbered pages).
pub async fn list_entries(
    conn: &mut AnyConnection,
    dataset_id: &str,
    filter: &EntryFilter,
    after: Option<(i64, &str)>,
    limit: i64,
    offset: i64,
) -> Result<Vec<StoredEntry>, sqlx::Error> {
    let (mut sql, mut binds) = filtered(ENTRY_COLUMNS, dataset_id, filter);
    let mut push = |clause: &str, b: Bind, sql: &mut String| {
        binds.push(b);
        sql.push_str(&clause.replace("$?", &format!("${}", binds.len())));
    };
    if let Some((created, id)) = after {
        push(" and (created_at > $?", Bind::Int(created), &mut sql);
        push(" or (created_at = $?", Bind::Int(created), &mut sql);
        push(" and id > $?))", Bind::Text(id.to_string()), &mut sql);
    }
    let order = if after.is_some() { EntryOrder::Added } else { filter.order };
    sql.push_str(order.sql());
    push(" limit $?", Bind::Int(limit), &mut sql);
    push(" offset $?", Bind::Int(offset), &mut sql);
    let rows = bind_all(sqlx::query_as::<_, EntryRow>(&sql), binds).fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().map(entry_from).collect())
}

/// How many entries match a filter.
pub async fn count_entries(conn: &mut AnyConnection, dataset_id: &str, filter: &EntryFilter) -> Result<i64, sqlx::Error> {
    let (sql, binds) = filtered("count(*)", dataset_id, filter);
    let (n,): (i64,) = bind_all(sqlx::query_as::<_, (i64,)>(&sql), binds).fetch_one(&mut *conn).await?;
    Ok(n)
}

/// The ids of every entry matching a filter, in its order.
pub async fn entry_ids(conn: &mut AnyConnection, dataset_id: &str, filter: &EntryFilter) -> Result<Vec<String>, sqlx::Error> {
    let (mut sql, binds) = filtered("id", dataset_id, filter);
    sql.push_str(filter.order.sql());
    let rows: Vec<(String,)> = bind_all(sqlx::query_as::<_, (String,)>(&sql), binds).fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

fn entry_from((id, source_ref, image_hash, label, mask_hash, entry, created_at): EntryRow) -> StoredEntry {
    StoredEntry { id, source_ref, image_hash, label, mask_hash, entry, created_at }
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
    label: Option<Label>,
    entry: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "update dataset_entry set label = $1, entry = $2, updated_at = $3, anomaly_types = $6 where dataset_id = $4 and id = $5",
    )
        .bind(label.map(Label::as_str))
        .bind(entry)
        .bind(now_ms())
        .bind(dataset_id)
        .bind(id)
        .bind(labels::types_of(entry))
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
    .bind(labels::types_of(entry))
    .execute(&mut *conn)
    .await?;
    labels::register_line(conn, dataset_id, entry).await?;
    Ok(r.rows_affected() == 1)
}

/// Rewrites one entry's JSON line, leaving its label and blobs as they are.
pub async fn set_entry_line(conn: &mut AnyConnection, dataset_id: &str, id: &str, entry: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update dataset_entry set entry = $1, updated_at = $2, anomaly_types = $5 where dataset_id = $3 and id = $4")
        .bind(entry)
        .bind(now_ms())
        .bind(dataset_id)
        .bind(id)
        .bind(labels::types_of(entry))
        .execute(&mut *conn)
        .await?;
    labels::register_line(conn, dataset_id, entry).await?;
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

/// Replaces the dataset's import report.
pub async fn record_issues(conn: &mut AnyConnection, dataset_id: &str, issues: &[Issue]) -> Result<(), sqlx::Error> {
    sqlx::query("delete from import_issue where dataset_id = $1").bind(dataset_id).execute(&mut *conn).await?;
    let now = now_ms();
    for i in issues {
        sqlx::query(
            "insert into import_issue (id, dataset_id, line, source_ref, reason, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(new_id())
        .bind(dataset_id)
        .bind(i.line)
        .bind(i.source_ref.as_deref())
        .bind(&i.reason)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn issues(conn: &mut AnyConnection, dataset_id: &str) -> Result<Vec<Issue>, sqlx::Error> {
    let rows: Vec<(Option<i64>, Option<String>, String)> = sqlx::query_as(
        "select line, source_ref, reason from import_issue where dataset_id = $1 order by line, created_at",
    )
    .bind(dataset_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(line, source_ref, reason)| Issue { line, source_ref, reason }).collect())
}

/// At start-up: a dataset still in progress with no recorded job to resume it (written by a version without
/// durable jobs) will never finish; say so.
pub async fn fail_interrupted(conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
    let now = now_ms();
    const NO_JOB: &str = " and not exists (select 1 from job j where j.dataset_id = dataset.id or j.other_dataset_id = dataset.id)";
    let a = sqlx::query(&format!("update dataset set status = $1, status_message = $2, updated_at = $3 where status = $4{NO_JOB}"))
        .bind(CREATE_FAILED)
        .bind("The import was interrupted by a server restart. Delete the dataset and create it again.")
        .bind(now)
        .bind(CREATE_IN_PROGRESS)
        .execute(&mut *conn)
        .await?;
    let b = sqlx::query(&format!("update dataset set status = $1, status_message = $2, updated_at = $3 where status = $4{NO_JOB}"))
        .bind(UPDATE_FAILED_ROLLBACK_COMPLETE)
        .bind("The update was interrupted by a server restart; no entry was changed. Send it again.")
        .bind(now)
        .bind(UPDATE_IN_PROGRESS)
        .execute(&mut *conn)
        .await?;
    Ok(a.rows_affected() + b.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(status: &str) -> Dataset {
        Dataset {
            id: "d".into(),
            project_id: "p".into(),
            dataset_type: "train".into(),
            status: status.into(),
            status_message: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn busy_settled_and_failed_datasets() {
        // A failed import is settled for deletion (not busy) but its entries cannot be edited.
        assert!(check_not_busy(&dataset(CREATE_FAILED)).is_ok());
        assert!(check_settled(&dataset(CREATE_FAILED)).is_err());
        for s in [CREATE_IN_PROGRESS, UPDATE_IN_PROGRESS] {
            let e = check_not_busy(&dataset(s)).unwrap_err();
            assert!(matches!(e, DatasetError::Busy { .. }));
            assert_eq!(e.to_string(), format!("The train dataset is busy ({s}); try again when it has finished."));
        }
        for s in [CREATE_COMPLETE, UPDATE_COMPLETE, UPDATE_FAILED_ROLLBACK_COMPLETE] {
            assert!(check_settled(&dataset(s)).is_ok());
        }
    }
}
