//! Filtered, ordered pages of a dataset's entries: ListDatasetEntries' filters and keyset paging, and the
//! console gallery's search, anomaly-type filter, orders and numbered pages.

use super::entries::{entry_from, EntryRow, ENTRY_COLUMNS};
use super::labels;
use super::manifest::ImageClass;
use super::types::StoredEntry;
use sqlx::AnyConnection;

/// ListDatasetEntries' filters.
#[derive(Clone, Debug, Default)]
pub struct EntryFilter {
    pub labeled: Option<bool>,
    pub label: Option<ImageClass>,
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
    /// By file name as the gallery shows it (the source-ref's last path segment, ignoring ASCII case), then
    /// the whole source-ref, then id: an upload's hidden hash folder or an import's bucket and folders never
    /// decide the order, and equal names still get one fixed order for numbered pages.
    Name,
    /// Anomaly, then normal, then unlabelled; oldest first within each.
    Label,
}

/// The source-ref's last path segment (its file name), in SQL both backends run: `rtrim` with every character
/// of the ref but `/` strips the file name off the end, leaving the folder part, whose length is skipped.
const FILE_NAME: &str = "substr(source_ref, length(rtrim(source_ref, replace(source_ref, '/', ''))) + 1)";

impl EntryOrder {
    /// The `order by` clause. `postgres`: text keys compare byte-wise (`collate "C"`) as SQLite's do, rather
    /// than by the database's locale, so both backends give the same order.
    fn sql(self, postgres: bool) -> String {
        match self {
            EntryOrder::Added => " order by created_at, id".into(),
            EntryOrder::Newest => " order by created_at desc, id desc".into(),
            EntryOrder::Name => {
                let c = if postgres { " collate \"C\"" } else { "" };
                format!(" order by lower({FILE_NAME}){c}, {FILE_NAME}{c}, source_ref{c}, id{c}")
            }
            EntryOrder::Label => {
                " order by case when label = 'anomaly' then 0 when label = 'normal' then 1 else 2 end, created_at, id".into()
            }
        }
    }
}

fn is_postgres(conn: &AnyConnection) -> bool {
    conn.backend_name().eq_ignore_ascii_case("postgresql")
}

enum Bind {
    Text(String),
    Int(i64),
}

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
    sql.push_str(&order.sql(is_postgres(conn)));
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
    sql.push_str(&filter.order.sql(is_postgres(conn)));
    let rows: Vec<(String,)> = bind_all(sqlx::query_as::<_, (String,)>(&sql), binds).fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}
