//! The console's backend: implements `app::api::Backend` over the same domain code as the LFV API (projects,
//! datasets, entries and masks here; labels, imports, archives, media, models, trials and auth in their own
//! modules, and what they all share, the error replies and the project and dataset lookups, in `common`).

pub mod archive;
use archive::sanitize_file_name;
pub mod auth;
mod common;
pub mod imports;
pub mod labels;
pub mod media;
pub mod models;
pub mod packaging;
pub mod samples;
pub mod trials;

use common::{ensure_settled, find_dataset, internal};
use crate::datasets::{self, manifest, Dataset};
use crate::projects::{self, Project, ProjectError};
use crate::state::AppState;
use app::api::{
    AnomalyLabel, AnomalyLabelUse, Backend, BackendError, DatasetDetail, DatasetSummary, EntryDetail, EntryPage, EntryQuery, EntryView, S3Connection,
    ProjectDetail, ProjectSummary, UploadReport, GALLERY_PAGE,
};
use sqlx::AnyConnection;

pub struct ConsoleBackend {
    pub state: AppState,
}

impl ConsoleBackend {
    fn summary(&self, p: &Project) -> ProjectSummary {
        ProjectSummary { name: p.name.clone(), arn: self.state.project_arn(&p.name), created_at_ms: p.created_at }
    }
}

#[async_trait::async_trait]
impl Backend for ConsoleBackend {
    async fn list_projects(&self) -> Result<Vec<ProjectSummary>, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let mut all = Vec::new();
        let mut after: Option<(i64, String)> = None;
        loop {
            let page = projects::list_after(&mut conn, after.as_ref().map(|(c, i)| (*c, i.as_str())), 500).await.map_err(internal)?;
            let done = page.len() < 500;
            after = page.last().map(|p| (p.created_at, p.id.clone()));
            all.extend(page.iter().map(|p| self.summary(p)));
            if done {
                break;
            }
        }
        // Newest first: the project just created is the one the user looks for.
        all.reverse();
        Ok(all)
    }

    async fn create_project(&self, name: &str) -> Result<ProjectSummary, BackendError> {
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        let p = projects::create(&mut tx, name, &crate::quotas::Quotas::of(&self.state.config)).await?;
        tx.commit().await.map_err(internal)?;
        Ok(self.summary(&p))
    }

    async fn describe_project(&self, name: &str) -> Result<ProjectDetail, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let p = projects::find(&mut conn, name)
            .await
            .map_err(internal)?
            .ok_or_else(|| BackendError::from(ProjectError::NotFound(name.to_string())))?;
        let mut summaries = Vec::new();
        for d in datasets::list_for_project(&mut conn, &p.id).await.map_err(internal)? {
            summaries.push(dataset_summary(&mut conn, &d).await?);
        }
        Ok(ProjectDetail { project: self.summary(&p), datasets: summaries })
    }

    async fn delete_project(&self, name: &str) -> Result<(), BackendError> {
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        // The console deletes a project with everything in it (the API asks for datasets to go first, as LFV's).
        if let Some(p) = projects::find(&mut tx, name).await.map_err(internal)? {
            let all = crate::datasets::list_for_project(&mut tx, &p.id).await.map_err(internal)?;
            // A running import or update would write into what is being deleted: let it finish first.
            for d in &all {
                datasets::check_not_busy(d)?;
            }
            for d in all {
                crate::datasets::delete(&mut tx, &d.id).await.map_err(internal)?;
            }
        }
        projects::delete(&mut tx, name).await?;
        tx.commit().await.map_err(internal)?;
        Ok(())
    }

    async fn dataset(&self, project: &str, dataset_type: &str) -> Result<DatasetDetail, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let (_, d) = find_dataset(&mut conn, project, dataset_type).await?;
        let summary = dataset_summary(&mut conn, &d).await?;
        let issues = datasets::issues(&mut conn, &d.id).await.map_err(internal)?.iter().map(ToString::to_string).collect();
        Ok(DatasetDetail { project: project.to_string(), summary, issues })
    }

    async fn entries(&self, project: &str, dataset_type: &str, query: &EntryQuery) -> Result<EntryPage, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let d = match find_dataset(&mut conn, project, dataset_type).await {
            Ok((_, d)) => d,
            Err(e) if e.status == 404 => return Ok(EntryPage { entries: Vec::new(), more: false, total: 0 }),
            Err(e) => return Err(e),
        };
        let f = entry_filter(query)?;
        crate::security::check_gallery_page(query.page)?;
        let n = GALLERY_PAGE as i64;
        let total = datasets::count_entries(&mut conn, &d.id, &f).await.map_err(internal)?;
        let mut rows = datasets::list_entries(&mut conn, &d.id, &f, None, n + 1, query.page as i64 * n).await.map_err(internal)?;
        let more = rows.len() as i64 > n;
        rows.truncate(GALLERY_PAGE);
        let entries = rows.into_iter().map(entry_view).collect();
        Ok(EntryPage { entries, more, total })
    }

    async fn entry_ids(&self, project: &str, dataset_type: &str, query: &EntryQuery) -> Result<Vec<String>, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let (_, d) = find_dataset(&mut conn, project, dataset_type).await?;
        datasets::entry_ids(&mut conn, &d.id, &entry_filter(query)?).await.map_err(internal)
    }

    async fn delete_dataset(&self, project: &str, dataset_type: &str) -> Result<(), BackendError> {
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        let (_, d) = find_dataset(&mut tx, project, dataset_type).await?;
        datasets::check_not_busy(&d)?;
        datasets::delete(&mut tx, &d.id).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(())
    }

    async fn retry_import(&self, project: &str, dataset_type: &str) -> Result<(), BackendError> {
        imports::retry(&self.state, project, dataset_type).await
    }

    async fn upload(
        &self,
        project: &str,
        dataset_type: &str,
        label: &str,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<UploadReport, BackendError> {
        let label = parse_label(label)?;
        datasets::validate_dataset_type(dataset_type).map_err(datasets::DatasetError::Invalid)?;
        // Check and store the images first (blocking work), then write every entry in one transaction.
        let blobs = self.state.blobs.clone();
        let checked = tokio::task::spawn_blocking(move || {
            files
                .into_iter()
                .map(|(name, bytes)| {
                    let name = sanitize_file_name(&name);
                    if bytes.len() as u64 > datasets::import::MAX_IMAGE_BYTES {
                        return Err(format!("{name}: the file is larger than 8 MB"));
                    }
                    datasets::import::store_image(&blobs, bytes).map(|info| (name.clone(), info)).map_err(|r| format!("{name}: {r}"))
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(internal)?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        for c in checked {
            match c {
                Ok((name, image)) => {
                    let source_ref = datasets::upload_source_ref(&image.hash, &name);
                    let mut raw = serde_json::Map::new();
                    raw.insert("source-ref".into(), serde_json::Value::String(source_ref.clone()));
                    let raw = manifest::with_label(&raw, label, &now);
                    entries.push(datasets::NewEntry { source_ref, image, label, mask: None, entry: serde_json::Value::Object(raw).to_string(), classes: Vec::new() });
                }
                Err(reason) => skipped.push(reason),
            }
        }
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        let p = projects::find(&mut tx, project).await.map_err(internal)?.ok_or_else(|| BackendError::from(ProjectError::NotFound(project.into())))?;
        let d = match datasets::find(&mut tx, &p.id, dataset_type).await.map_err(internal)? {
            Some(d) => d,
            None => datasets::create(&mut tx, &p.id, dataset_type, datasets::CREATE_COMPLETE).await.map_err(internal)?,
        };
        if !datasets::is_settled(&d.status) {
            return Err(BackendError::conflict(format!("The {dataset_type} dataset is busy ({}); try again when it has finished.", d.status)));
        }
        datasets::upsert_entries(&mut tx, &d.id, &entries).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(UploadReport { added: entries.len(), skipped })
    }

    async fn set_labels(&self, project: &str, dataset_type: &str, ids: Vec<String>, label: &str) -> Result<usize, BackendError> {
        let label = parse_label(label)?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        let (_, d) = find_dataset(&mut tx, project, dataset_type).await?;
        if !datasets::is_settled(&d.status) {
            return Err(BackendError::conflict(format!("The {dataset_type} dataset is busy ({}); try again when it has finished.", d.status)));
        }
        let mut changed = 0;
        for id in ids {
            let Some(e) = datasets::entry_by_id(&mut tx, &d.id, &id).await.map_err(internal)? else { continue };
            let raw: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&e.entry).map_err(internal)?;
            let line = serde_json::Value::Object(manifest::with_label(&raw, label, &now)).to_string();
            if datasets::set_entry_label(&mut tx, &d.id, &id, label, &line).await.map_err(internal)? {
                changed += 1;
            }
        }
        tx.commit().await.map_err(internal)?;
        Ok(changed)
    }

    async fn entry(&self, project: &str, dataset_type: &str, id: &str) -> Result<EntryDetail, BackendError> {
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let (p, d) = find_dataset(&mut conn, project, dataset_type).await?;
        let (e, width, height) = entry_with_size(&mut conn, &d.id, id).await?;
        let labels = datasets::labels::list(&mut conn, &p.id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|l| AnomalyLabel { name: l.name, color: l.color })
            .collect();
        let mask_classes = if e.mask_hash.is_some() {
            e.classes().iter().map(|c| AnomalyLabel { name: c.name.clone(), color: manifest::hex_color(c.color) }).collect()
        } else {
            Vec::new()
        };
        Ok(EntryDetail {
            entry: entry_view(e.clone()),
            width,
            height,
            mask: e.mask_hash,
            mask_classes,
            labels,
        })
    }

    async fn save_mask(
        &self,
        project: &str,
        dataset_type: &str,
        id: &str,
        png_data_url: &str,
        labels: Vec<AnomalyLabel>,
    ) -> Result<(), BackendError> {
        use base64::Engine as _;
        crate::security::check_mask_labels(labels.len())?;
        // The project's labels, in their colours now, are the only colours a mask may hold: what the canvas
        // sends is checked against them exactly, never snapped to the nearest.
        for l in &labels {
            manifest::validate_label_name(&l.name).map_err(|m| BackendError::invalid(m))?;
        }
        let b64 = png_data_url.strip_prefix("data:image/png;base64,").unwrap_or(png_data_url);
        let painted = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| BackendError::invalid("The mask is not a base64 PNG."))?;
        let mut conn = self.state.db.pool.acquire().await.map_err(internal)?;
        let (p, d) = find_dataset(&mut conn, project, dataset_type).await?;
        ensure_settled(&d)?;
        let (e, width, height) = entry_with_size(&mut conn, &d.id, id).await?;
        let mut classes: Vec<manifest::MaskColor> = Vec::new();
        for l in datasets::labels::list(&mut conn, &p.id).await.map_err(internal)? {
            let Some(color) = manifest::parse_hex_color(&l.color) else { continue };
            if let Some(twin) = classes.iter().find(|c| c.color == color) {
                return Err(BackendError::conflict(format!("The labels {} and {} have the same colour ({}); give one of them another colour first.", twin.name, l.name, l.color),
                ));
            }
            classes.push(manifest::MaskColor { name: l.name, color });
        }
        // A label the canvas painted in a colour the project no longer gives it (recoloured elsewhere since).
        for l in &labels {
            if let Some(c) = classes.iter().find(|c| c.name == l.name) {
                if manifest::parse_hex_color(&l.color) != Some(c.color) {
                    return Err(BackendError::conflict(format!("The label {} is now {} in this project, not {}; reload the page to paint in the current colours.", l.name, manifest::hex_color(c.color), l.color),
                    ));
                }
            }
        }
        drop(conn);
        let blobs = self.state.blobs.clone();
        let cls = classes;
        let (mask, used) = tokio::task::spawn_blocking(move || -> Result<(datasets::BlobInfo, Vec<manifest::MaskColor>), String> {
            if cls.is_empty() {
                return Err("The project has no anomaly label yet: add one, paint with it, then save.".into());
            }
            let (img, census) = datasets::mask::normalize_painted(&painted, &cls)?;
            if i64::from(img.width()) != width || i64::from(img.height()) != height {
                return Err(format!("the mask is {}×{} px but the image is {width}×{height} px", img.width(), img.height()));
            }
            // Only the labels the mask actually uses go into its colour map.
            let used: Vec<manifest::MaskColor> = cls.into_iter().filter(|c| census.iter().any(|(n, _)| *n == c.name)).collect();
            if used.is_empty() {
                return Err("The mask is empty: paint the anomaly before saving.".into());
            }
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, image::ImageFormat::Png).map_err(|e| e.to_string())?;
            let bytes = out.into_inner();
            let hash = blobs.put(&bytes).map_err(|e| e.to_string())?;
            Ok((datasets::BlobInfo { hash, size: bytes.len() as i64, content_type: "image/png".into(), width, height }, used))
        })
        .await
        .map_err(internal)?
        .map_err(|m| BackendError::invalid(m))?;
        let raw: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&e.entry).map_err(internal)?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let line = manifest::with_mask(&raw, &format!("vigil://mask/{}.png", &mask.hash[..16]), &used, &now);
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        datasets::set_entry_mask(&mut tx, &d.id, id, &mask, &serde_json::Value::Object(line).to_string())
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(())
    }

    async fn rename_label(&self, project: &str, old: &str, new: &str) -> Result<usize, BackendError> {
        labels::rename(&self.state, project, old, new).await
    }

    async fn labels(&self, project: &str) -> Result<Vec<AnomalyLabelUse>, BackendError> {
        labels::list(&self.state, project).await
    }

    async fn create_label(&self, project: &str, name: &str, color: &str) -> Result<(), BackendError> {
        labels::create(&self.state, project, name, color).await
    }

    async fn recolor_label(&self, project: &str, name: &str, color: &str) -> Result<(), BackendError> {
        labels::recolor(&self.state, project, name, color).await
    }

    async fn delete_label(&self, project: &str, name: &str) -> Result<(), BackendError> {
        labels::delete(&self.state, project, name).await
    }

    async fn delete_entries(&self, project: &str, dataset_type: &str, ids: Vec<String>) -> Result<usize, BackendError> {
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        let (_, d) = find_dataset(&mut tx, project, dataset_type).await?;
        ensure_settled(&d)?;
        let n = datasets::delete_entries(&mut tx, &d.id, &ids).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(n as usize)
    }

    async fn move_entries(&self, project: &str, dataset_type: &str, ids: Vec<String>) -> Result<usize, BackendError> {
        let target = if dataset_type == "train" { "test" } else { "train" };
        let mut tx = self.state.db.begin_write().await.map_err(internal)?;
        let (p, from) = find_dataset(&mut tx, project, dataset_type).await?;
        ensure_settled(&from)?;
        let to = match datasets::find(&mut tx, &p.id, target).await.map_err(internal)? {
            Some(d) => d,
            None => datasets::create(&mut tx, &p.id, target, datasets::CREATE_COMPLETE).await.map_err(internal)?,
        };
        ensure_settled(&to)?;
        let n = datasets::move_entries(&mut tx, &from.id, &to.id, &ids).await.map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        Ok(n as usize)
    }

    async fn import_s3(&self, project: &str, dataset_type: &str, uri: &str, kind: &str, conn: S3Connection) -> Result<(), BackendError> {
        imports::start(&self.state, project, dataset_type, uri, kind, conn).await
    }
}

/// An entry and its image's width and height.
async fn entry_with_size(
    conn: &mut AnyConnection,
    dataset_id: &str,
    id: &str,
) -> Result<(datasets::StoredEntry, i64, i64), BackendError> {
    let e = datasets::entry_by_id(conn, dataset_id, id)
        .await
        .map_err(internal)?
        .ok_or_else(|| BackendError::not_found("This image is not in the dataset any more."))?;
    let (width, height): (i64, i64) = sqlx::query_as("select width, height from blob where hash = $1")
        .bind(&e.image_hash)
        .fetch_one(&mut *conn)
        .await
        .map_err(internal)?;
    Ok((e, width, height))
}

fn entry_view(e: datasets::StoredEntry) -> EntryView {
    let types = if e.mask_hash.is_some() { e.classes().iter().map(|c| c.name.clone()).collect() } else { Vec::new() };
    EntryView {
        name: display_name(&e.source_ref),
        id: e.id,
        source_ref: e.source_ref,
        label: e.class.map(|c| c.as_str().to_string()),
        types,
        image: e.image_hash,
        has_mask: e.mask_hash.is_some(),
        mask: e.mask_hash,
    }
}

/// The gallery's query as a database filter.
fn entry_filter(query: &EntryQuery) -> Result<datasets::EntryFilter, BackendError> {
    let mut f = datasets::EntryFilter::default();
    match query.filter.as_str() {
        "" | "all" => {}
        "normal" => f.label = Some(manifest::ImageClass::Normal),
        "anomaly" => f.label = Some(manifest::ImageClass::Anomaly),
        "unlabeled" => f.labeled = Some(false),
        other => match other.strip_prefix("type:") {
            Some(t) => f.anomaly_type = Some(t.to_string()),
            None => return Err(BackendError::invalid(format!("{other:?} is not a filter."))),
        },
    }
    let search = query.search.trim();
    if !search.is_empty() {
        f.source_ref_search = Some(search.to_string());
    }
    f.order = match query.sort.as_str() {
        "" | "added" => datasets::EntryOrder::Added,
        "newest" => datasets::EntryOrder::Newest,
        "name" => datasets::EntryOrder::Name,
        "label" => datasets::EntryOrder::Label,
        other => return Err(BackendError::invalid(format!("{other:?} is not an order: use added, newest, name or label."))),
    };
    Ok(f)
}

/// The name the gallery shows: the file name with its folder (`normal/22.png`, so it differs from
/// `anomaly/22.png`), but not the hash folder an upload is kept under.
fn display_name(source_ref: &str) -> String {
    let mut parts = source_ref.trim_end_matches('/').rsplit('/');
    let file = parts.next().unwrap_or(source_ref);
    match parts.next() {
        Some(dir) if !dir.is_empty() && !source_ref.starts_with("vigil://upload/") && !dir.ends_with(':') => format!("{dir}/{file}"),
        _ => file.to_string(),
    }
}


fn parse_label(label: &str) -> Result<Option<manifest::ImageClass>, BackendError> {
    match label {
        "" => Ok(None),
        "normal" => Ok(Some(manifest::ImageClass::Normal)),
        "anomaly" => Ok(Some(manifest::ImageClass::Anomaly)),
        other => Err(BackendError::invalid(format!("{other:?} is not a label: use normal or anomaly."))),
    }
}


async fn dataset_summary(conn: &mut AnyConnection, d: &Dataset) -> Result<DatasetSummary, BackendError> {
    let s = datasets::stats(conn, &d.id).await.map_err(internal)?;
    let can_retry = d.status == datasets::CREATE_FAILED && datasets::import_source(conn, &d.id).await.map_err(internal)?.is_some();
    Ok(DatasetSummary {
        can_retry,
        dataset_type: d.dataset_type.clone(),
        status: d.status.clone(),
        status_message: d.status_message.clone(),
        total: s.total,
        labeled: s.labeled,
        normal: s.normal,
        anomaly: s.anomaly,
    })
}
