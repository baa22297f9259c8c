//! A project's anomaly labels: names and the colours new masks paint them in. A label exists once it is
//! added in the console or appears in a mask's colour map (painted, imported or updated), and stays until it
//! is deleted while no mask uses it. Each entry also records which labels its colour map names
//! (`dataset_entry.anomaly_types`, `,a,b,`), for the gallery's anomaly-type filter.

use super::manifest::{self, MaskColor};
use super::types::NewEntry;
use crate::engine::AnomalyLabel;
use crate::db::now_ms;
use sqlx::AnyConnection;

/// The `anomaly_types` column for a line's anomaly labels: `,a,b,` (sorted), or empty when it names none.
pub fn types_of(classes: &[manifest::MaskColor]) -> String {
    let mut names: Vec<String> = classes.iter().map(|c| c.name.clone()).collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        String::new()
    } else {
        format!(",{},", names.join(","))
    }
}

/// The LIKE pattern that finds entries using a label (names hold no LIKE wildcards: see
/// `manifest::validate_label_name`; `_` is escaped all the same).
pub fn type_pattern(name: &str) -> String {
    format!("%,{},%", name.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
}

pub async fn project_of_dataset(conn: &mut AnyConnection, dataset_id: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("select project_id from dataset where id = $1").bind(dataset_id).fetch_optional(&mut *conn).await?;
    Ok(row.map(|r| r.0))
}

/// Adds the labels a colour map names that the project does not have yet, in the map's colours.
pub async fn register(conn: &mut AnyConnection, project_id: &str, classes: &[MaskColor]) -> Result<(), sqlx::Error> {
    let now = now_ms();
    for c in classes {
        sqlx::query(
            "insert into anomaly_label (project_id, name, color, created_at, updated_at) values ($1, $2, $3, $4, $4) \
             on conflict (project_id, name) do nothing",
        )
        .bind(project_id)
        .bind(&c.name)
        .bind(manifest::hex_color(c.color))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The entries (by index) whose colour maps would take the project past its label limit
/// ([`crate::security::MAX_LABELS_PER_PROJECT`], LFV's 100), each with the first label it cannot add. Entries
/// are taken in order: the earlier ones get the room that is left.
pub async fn beyond_limit(conn: &mut AnyConnection, dataset_id: &str, entries: &[NewEntry]) -> Result<Vec<(usize, String)>, sqlx::Error> {
    let Some(project_id) = project_of_dataset(conn, dataset_id).await? else { return Ok(Vec::new()) };
    let mut known: std::collections::HashSet<String> = list(conn, &project_id).await?.into_iter().map(|l| l.name).collect();
    let mut refused = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let new: Vec<&str> = e.classes.iter().map(|c| c.name.as_str()).filter(|n| !known.contains(*n)).collect();
        if known.len() + new.len() > crate::security::MAX_LABELS_PER_PROJECT as usize {
            refused.push((i, new[0].to_string()));
        } else {
            known.extend(new.into_iter().map(str::to_string));
        }
    }
    Ok(refused)
}

/// Registers the anomaly labels of a line written into a dataset.
pub async fn register_classes(conn: &mut AnyConnection, dataset_id: &str, classes: &[manifest::MaskColor]) -> Result<(), sqlx::Error> {
    if classes.is_empty() {
        return Ok(());
    }
    if let Some(p) = project_of_dataset(conn, dataset_id).await? {
        register(conn, &p, &classes).await?;
    }
    Ok(())
}

/// The project's labels with their colours (`#RRGGBB`), by name.
pub async fn list(conn: &mut AnyConnection, project_id: &str) -> Result<Vec<AnomalyLabel>, sqlx::Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("select name, color from anomaly_label where project_id = $1 order by name")
            .bind(project_id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().map(|(name, color)| AnomalyLabel { name, color }).collect())
}

/// Adds a label; false when the project already has one of that name.
pub async fn create(conn: &mut AnyConnection, project_id: &str, name: &str, color: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "insert into anomaly_label (project_id, name, color, created_at, updated_at) values ($1, $2, $3, $4, $4) \
         on conflict (project_id, name) do nothing",
    )
    .bind(project_id)
    .bind(name)
    .bind(color)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Sets a label's colour for new masks; false when there is no such label.
pub async fn set_color(conn: &mut AnyConnection, project_id: &str, name: &str, color: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("update anomaly_label set color = $1, updated_at = $2 where project_id = $3 and name = $4")
        .bind(color)
        .bind(now_ms())
        .bind(project_id)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// How many entries of the project have a mask that uses the label.
pub async fn usage(conn: &mut AnyConnection, project_id: &str, name: &str) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(
        "select count(*) from dataset_entry e join dataset d on d.id = e.dataset_id \
         where d.project_id = $1 and e.anomaly_types like $2 escape '\\'",
    )
    .bind(project_id)
    .bind(type_pattern(name))
    .fetch_one(&mut *conn)
    .await?;
    Ok(n)
}

/// For every label in use, how many entries of the project have a mask that uses it (one pass).
pub async fn usage_counts(conn: &mut AnyConnection, project_id: &str) -> Result<std::collections::HashMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "select e.anomaly_types from dataset_entry e join dataset d on d.id = e.dataset_id \
         where d.project_id = $1 and e.anomaly_types is not null and e.anomaly_types <> ''",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut counts = std::collections::HashMap::new();
    for (types,) in rows {
        for name in types.split(',').filter(|n| !n.is_empty()) {
            *counts.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// Deletes a label; false when there is no such label.
pub async fn delete(conn: &mut AnyConnection, project_id: &str, name: &str) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("delete from anomaly_label where project_id = $1 and name = $2")
        .bind(project_id)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Renames a label in the project's table (the masks' colour maps are rewritten by the caller).
pub async fn rename(conn: &mut AnyConnection, project_id: &str, old: &str, new: &str) -> Result<(), sqlx::Error> {
    let exists: Option<(String,)> = sqlx::query_as("select name from anomaly_label where project_id = $1 and name = $2")
        .bind(project_id)
        .bind(new)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_some() {
        delete(conn, project_id, old).await?;
    } else {
        sqlx::query("update anomaly_label set name = $1, updated_at = $2 where project_id = $3 and name = $4")
            .bind(new)
            .bind(now_ms())
            .bind(project_id)
            .bind(old)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// At start-up: fills in `anomaly_types` and the label table for entries written before they existed.
pub async fn backfill(conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
    let mut n = 0;
    loop {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "select e.id, e.entry, d.project_id from dataset_entry e join dataset d on d.id = e.dataset_id \
             where e.anomaly_types is null limit 500",
        )
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            return Ok(n);
        }
        for (id, entry, project_id) in rows {
            let classes = manifest::line_classes(&entry);
            register(conn, &project_id, &classes).await?;
            sqlx::query("update dataset_entry set anomaly_types = $1 where id = $2").bind(types_of(&classes)).bind(&id).execute(&mut *conn).await?;
            n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_sorted_and_delimited() {
        let line = r##"{"source-ref":"s3://b/a.jpg","anomaly-label":1,"anomaly-label-metadata":{"class-name":"anomaly"},
            "anomaly-mask-ref":"s3://b/m.png","anomaly-mask-ref-metadata":{"internal-color-map":{
            "0":{"class-name":"BACKGROUND","hex-color":"#ffffff"},"1":{"class-name":"scratch","hex-color":"#2ca02c"},
            "2":{"class-name":"cracked","hex-color":"#1f77b4"}}}}"##;
        let of = |line: &str| types_of(&manifest::line_classes(line));
        assert_eq!(of(&line.replace('\n', "")), ",cracked,scratch,");
        assert_eq!(of(r#"{"source-ref":"s3://b/a.jpg"}"#), "");
        assert_eq!(of("not json"), "");
        assert_eq!(type_pattern("a_b"), "%,a\\_b,%");
    }

    fn masked_line(i: usize, labels: std::ops::Range<usize>) -> super::super::NewEntry {
        let mut map = serde_json::json!({"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"}});
        for (k, n) in labels.enumerate() {
            map[(k + 1).to_string()] = serde_json::json!({"class-name": format!("l{n}"), "hex-color": format!("#{:06x}", n + 1)});
        }
        let line = serde_json::json!({"source-ref": format!("s3://b/{i}.jpg"), "anomaly-mask-ref": format!("s3://b/{i}.png"),
            "anomaly-mask-ref-metadata": {"internal-color-map": map}});
        let blob = super::super::BlobInfo { hash: format!("{i:064x}"), size: 1, content_type: "image/png".into(), width: 64, height: 64 };
        super::super::NewEntry::from_text(format!("s3://b/{i}.jpg"), blob, None, None, line.to_string())
    }

    #[tokio::test]
    async fn imports_never_take_a_project_past_its_label_limit() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        let mut conn = db.pool.acquire().await.unwrap();
        let p = crate::projects::create(&mut conn, "limits", &Default::default()).await.unwrap();
        let d = super::super::create(&mut conn, &p.id, "train", super::super::CREATE_COMPLETE).await.unwrap();
        // 95 labels already; a line bringing 5 new ones fits, the next bringing one more does not, and a line
        // naming only known labels always does.
        for n in 0..95 {
            create(&mut conn, &p.id, &format!("l{n}"), "#000000").await.unwrap();
        }
        let entries = vec![masked_line(0, 90..100), masked_line(1, 99..101), masked_line(2, 0..20)];
        assert_eq!(beyond_limit(&mut conn, &d.id, &entries).await.unwrap(), vec![(1, "l100".to_string())]);
        super::super::upsert_entries(&mut conn, &d.id, &[entries[0].clone(), entries[2].clone()]).await.unwrap();
        assert_eq!(list(&mut conn, &p.id).await.unwrap().len(), 100);
    }
}
