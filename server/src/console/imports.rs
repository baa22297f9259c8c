//! The console's imports into a new dataset: from an S3 manifest, an S3 or disk folder, or an MVTec AD
//! category (the source checked up front), and running a failed import again from its recorded source.

use super::common::{find_dataset, find_project, internal};
use crate::datasets::{self, manifest};
use crate::state::AppState;
use app::api::{BackendError, S3Connection};

pub(super) async fn retry(state: &AppState, project: &str, dataset_type: &str) -> Result<(), BackendError> {
    use crate::jobs::Job;
    let mut tx = state.db.begin_write().await.map_err(internal)?;
    let (_, d) = find_dataset(&mut tx, project, dataset_type).await?;
    if d.status != datasets::CREATE_FAILED {
        return Err(BackendError::conflict(format!("Only a failed import can be run again; the {dataset_type} dataset is {}.", d.status)));
    }
    let job: Job = datasets::import_source(&mut tx, &d.id)
        .await
        .map_err(internal)?
        .and_then(|spec| serde_json::from_str(&spec).ok())
        .ok_or_else(|| BackendError::conflict("Vigil does not know where this dataset was imported from; delete it and import again."))?;
    // The import starts over: whatever a failed attempt wrote goes, in every dataset the job fills.
    let targets: Vec<String> = match &job {
        Job::Mvtec { train_id, test_id, .. } => vec![train_id.clone(), test_id.clone()],
        Job::Manifest { dataset_id, .. } | Job::Folder { dataset_id, .. } => vec![dataset_id.clone()],
        _ => return Err(BackendError::conflict("This import cannot be run again; delete the dataset and import again.")),
    };
    for id in &targets {
        datasets::clear(&mut tx, id).await.map_err(internal)?;
        datasets::set_status(&mut tx, id, datasets::CREATE_IN_PROGRESS, None).await.map_err(internal)?;
    }
    crate::jobs::enqueue(&mut tx, &job).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    crate::jobs::wake(&state);
    Ok(())
}

pub(super) async fn start(state: &AppState, project: &str, dataset_type: &str, uri: &str, kind: &str, conn: S3Connection) -> Result<(), BackendError> {
    use crate::jobs::Job;
    use datasets::import::Place;
    datasets::validate_dataset_type(dataset_type).map_err(datasets::DatasetError::Invalid)?;
    let place = match kind {
        "manifest" => None,
        "folder" | "mvtec" => Some(Place::parse(uri).map_err(|m| BackendError::invalid(m))?),
        other => return Err(BackendError::invalid(format!("{other:?} is not an import kind: use manifest, folder or mvtec."))),
    };
    let manifest_at = if kind == "manifest" {
        Some(
            manifest::parse_s3_uri(uri)
                .ok_or_else(|| BackendError::invalid(format!("{uri:?} is not an s3://bucket/key URI of a manifest.")))?,
        )
    } else {
        None
    };
    let place = match place {
        Some(Place::Dir(dir)) => Some(Place::Dir(crate::security::import_dir(state.config.import_root.as_deref(), &dir)?)),
        other => other,
    };
    let s3 = crate::security::s3_override(&state.config, &conn).await?;
    // Refuse up front what cannot work (a missing manifest or prefix, an unreachable bucket) rather than
    // start an import that is bound to fail.
    let probe = match (&manifest_at, &place) {
        (Some((bucket, key)), _) => Some((bucket.clone(), key.clone(), format!("There is no manifest at s3://{bucket}/{key}."))),
        (None, Some(Place::S3 { bucket, prefix })) => {
            Some((bucket.clone(), prefix.clone(), format!("There is nothing under s3://{bucket}/{prefix} (check the bucket and prefix).")))
        }
        _ => None,
    };
    if let Some((bucket, key, missing)) = probe {
        let settings = s3.clone().unwrap_or_else(|| crate::s3::S3Settings::of(&state.config));
        let client = crate::s3::S3::connect_for(&settings, &state.config).await;
        match client.probe(&bucket, &key).await {
            Ok(true) => {}
            Ok(false) => return Err(BackendError::invalid(missing)),
            Err(why) => return Err(BackendError::invalid(format!("The import was not started: {why}."))),
        }
    }
    let mut tx = state.db.begin_write().await.map_err(internal)?;
    let p = find_project(&mut tx, project).await?;
    let job = if kind == "mvtec" {
        let train = datasets::create(&mut tx, &p.id, "train", datasets::CREATE_IN_PROGRESS).await?;
        let test = datasets::create(&mut tx, &p.id, "test", datasets::CREATE_IN_PROGRESS).await?;
        Job::Mvtec { train_id: train.id, test_id: test.id, place: place.map(|p| p.to_string()).unwrap_or_default(), s3 }
    } else {
        let d = datasets::create(&mut tx, &p.id, dataset_type, datasets::CREATE_IN_PROGRESS).await?;
        match (manifest_at, place) {
            (Some((bucket, key)), _) => Job::Manifest { dataset_id: d.id, bucket, key, version: None, s3 },
            (None, place) => Job::Folder { dataset_id: d.id, place: place.map(|p| p.to_string()).unwrap_or_default(), s3 },
        }
    };
    // Kept with the dataset(s) it fills, so that a failed import can be run again (`retry_import`).
    let spec = serde_json::to_string(&job).map_err(internal)?;
    let filled: Vec<&String> = match &job {
        Job::Mvtec { train_id, test_id, .. } => vec![train_id, test_id],
        Job::Manifest { dataset_id, .. } | Job::Folder { dataset_id, .. } => vec![dataset_id],
        _ => Vec::new(),
    };
    for d in filled {
        datasets::set_import_source(&mut tx, d, &spec).await.map_err(internal)?;
    }
    crate::jobs::enqueue(&mut tx, &job).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    crate::jobs::wake(&state);
    Ok(())
}
