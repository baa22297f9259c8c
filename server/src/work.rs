//! The job workers: each claims a job of its lane from the queue ([`crate::jobs`]), keeps its lease while it
//! runs, and hands it to the domain code that does the work (imports, training, trials, batches, packaging); a job claimed
//! too often is given up with a message on its target.

use crate::datasets::import::{Importer, Local, Place};
use crate::jobs::{claim, pending, Job, JobProgress, Lane, MAX_ATTEMPTS};
use crate::s3::{S3Settings, S3};
use crate::state::AppState;
use crate::db::now_ms;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What one call of [`try_execute_job`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Execution {
    EmptyQueue,
    Completed,
}

/// Claims one job of the lane, runs it to the end (renewing its lease and recording progress meanwhile) and
/// deletes it. Returns `EmptyQueue` when nothing was claimable.
pub async fn try_execute_job(state: &AppState, owner: &str, lane: Lane) -> Result<Execution, sqlx::Error> {
    let lease_ms = state.config.job_lease_ms();
    let Some(claimed) = claim(&state.db, owner, lane, lease_ms).await? else {
        return Ok(Execution::EmptyQueue);
    };
    let Some(job) = claimed.job else {
        // Only a future version could have written it; leave it to that version by releasing the claim.
        tracing::warn!(job = %claimed.id, "released a job this version cannot read");
        sqlx::query("update job set owner = null, lease_until = $1 where id = $2")
            .bind(now_ms() + 3_600_000)
            .bind(&claimed.id)
            .execute(&state.db.pool)
            .await?;
        return Ok(Execution::Completed);
    };
    if claimed.attempts > MAX_ATTEMPTS {
        tracing::error!(job = %claimed.id, attempts = claimed.attempts - 1, "giving up a job that never finished");
        give_up(state, &claimed.id, &job, claimed.attempts - 1).await;
        return Ok(Execution::Completed);
    }
    if claimed.attempts > 1 {
        tracing::info!(job = %claimed.id, attempt = claimed.attempts, "resuming a job whose worker stopped");
        remark(state, &job).await?;
    }
    let progress = Arc::new(JobProgress::default());
    let keeper = tokio::spawn(keep_lease(state.clone(), claimed.id.clone(), owner.to_string(), lease_ms, progress.clone()));
    run(state, &claimed.id, job, progress).await;
    keeper.abort();
    // A training job deletes itself when it settles its model; deleting again is harmless.
    sqlx::query("delete from job where id = $1").bind(&claimed.id).execute(&state.db.pool).await?;
    Ok(Execution::Completed)
}

/// Renews the lease every second while the job runs, with its progress, and notices cancellation. A lost
/// lease (another worker took over) cancels the job here.
async fn keep_lease(state: AppState, id: String, owner: String, lease_ms: i64, progress: Arc<JobProgress>) {
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis((lease_ms / 3).clamp(200, 1000) as u64));
    loop {
        tick.tick().await;
        let (stage, fraction) = progress.stage.lock().ok().and_then(|s| s.clone()).unzip();
        let eta = fraction.filter(|&f| f > 0.02).map(|f| (started.elapsed().as_millis() as f64 * (1.0 - f) / f) as i64);
        let now = now_ms();
        let row: Result<Option<(i64,)>, _> = sqlx::query_as(
            "update job set lease_until = $1, stage = coalesce($2, stage), fraction = coalesce($3, fraction), \
             eta_ms = $4, updated_at = $5 where id = $6 and owner = $7 returning cancel_requested",
        )
        .bind(now + lease_ms)
        .bind(stage)
        .bind(fraction)
        .bind(eta)
        .bind(now)
        .bind(&id)
        .bind(&owner)
        .fetch_optional(&state.db.pool)
        .await;
        match row {
            Ok(Some((c,))) => {
                if c != 0 {
                    progress.cancel.store(true, Ordering::Relaxed);
                }
            }
            Ok(None) => {
                tracing::warn!(job = %id, "lost the lease of a running job; cancelling it");
                progress.cancel.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => tracing::warn!(error = %e, job = %id, "could not renew a job's lease"),
        }
    }
}

/// A resumed job's target is in progress again (a crash may have left it otherwise).
async fn remark(state: &AppState, job: &Job) -> Result<(), sqlx::Error> {
    if let Job::Train { model_id } = job {
        sqlx::query("update model_version set status = $1, status_message = $2, updated_at = $3 where id = $4")
            .bind(crate::models::TRAINING)
            .bind("Training was interrupted (the server stopped) and has started again.")
            .bind(now_ms())
            .bind(model_id)
            .execute(&state.db.pool)
            .await?;
    }
    Ok(())
}

/// Settles the target of a job that was claimed too often, and deletes the job.
async fn give_up(state: &AppState, id: &str, job: &Job, attempts: i64) {
    let why = format!(
        "The job was started {attempts} times and never finished: the server stopped each time (for example it ran out \
         of memory). Try again with fewer or smaller images."
    );
    match job {
        Job::Trial { trial_id } | Job::Batch { trial_id } => crate::trials::give_up(state, trial_id, &why).await,
        Job::Train { model_id } => {
            if let Err(e) = crate::models::training::settle_failed(&state.db, model_id, Some(id), &why).await {
                tracing::error!(error = %e, "could not settle a model version");
            }
        }
        Job::Host { model_id } => crate::models::hosting::give_up(state, model_id, &why).await,
        Job::Package { job_id } => crate::packaging::run::give_up(state, job_id, &why).await,
        Job::Update { dataset_id, .. } => {
            let mut conn = match state.db.pool.acquire().await {
                Ok(c) => c,
                Err(e) => return tracing::error!(error = %e, "could not settle a dataset"),
            };
            let why = format!("{why} No entry was changed.");
            let _ = crate::datasets::set_status(&mut conn, dataset_id, crate::datasets::UPDATE_FAILED_ROLLBACK_COMPLETE, Some(&why)).await;
        }
        other => {
            let (a, b) = other.targets();
            let imp = importer_of(state);
            imp.fail_create(a, why.clone()).await;
            if let Some(b) = b {
                imp.fail_create(b, why).await;
            }
        }
    }
    let _ = sqlx::query("delete from job where id = $1").bind(id).execute(&state.db.pool).await;
}

/// Starts the worker pool: `train_workers` training lanes and `import_workers` import lanes, each a loop of
/// [`try_execute_job`] that sleeps until woken (or a second) when the queue is empty. Also removes day-old
/// temporary files that no job needs (an upload cut off by a crash).
pub async fn start_workers(state: &AppState) -> Result<usize, sqlx::Error> {
    let jobs = pending(&mut *state.db.pool.acquire().await?).await?;
    let keep: Vec<std::path::PathBuf> = jobs
        .iter()
        .filter_map(|(_, j)| match j {
            Job::Archive { path, .. } => Some(std::path::PathBuf::from(path)),
            _ => None,
        })
        .collect();
    if let Ok(dir) = std::fs::read_dir(state.config.data_dir.join("tmp")) {
        let day_old = |e: &std::fs::DirEntry| {
            e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age.as_secs() > 24 * 3600)
        };
        for e in dir.flatten() {
            if !keep.contains(&e.path()) && day_old(&e) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "vigil".into());
    let lanes = [(Lane::Train, state.config.train_workers), (Lane::Import, state.config.import_workers), (Lane::Detect, 1), (Lane::Host, 1)];
    for (lane, n) in lanes {
        for _ in 0..n.max(1) {
            let owner = format!("{host}:{}:{}", std::process::id(), hex::encode(rand::random::<[u8; 4]>()));
            tokio::spawn(worker_loop(state.clone(), owner, lane));
        }
    }
    Ok(jobs.len())
}

async fn worker_loop(state: AppState, owner: String, lane: Lane) {
    while !state.jobs.stopping.load(Ordering::Relaxed) {
        match try_execute_job(&state, &owner, lane).await {
            Ok(Execution::Completed) => continue,
            Ok(Execution::EmptyQueue) => {}
            Err(e) => {
                if state.jobs.stopping.load(Ordering::Relaxed) {
                    break;
                }
                tracing::warn!(error = %e, lane = lane.kind(), "the job worker could not reach the database");
            }
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), state.jobs.wake.notified()).await;
    }
}

/// Copies an archive blob into this process's temporary folder.
async fn fetch_archive(state: &AppState, hash: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = state.config.data_dir.join("tmp");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.zip", hex::encode(rand::random::<[u8; 12]>())));
    let (blobs, hash, dest) = (state.blobs.clone(), hash.to_string(), path.clone());
    tokio::task::spawn_blocking(move || blobs.copy_to(&hash, &dest)).await??;
    Ok(path)
}

/// An importer on the server's database, blob store and S3 settings.
fn importer_of(state: &AppState) -> Importer {
    Importer { db: state.db.clone(), s3: state.s3.clone(), blobs: state.blobs.clone(), local: None, binary_masks: false }
}

async fn importer(state: &AppState, s3: &Option<S3Settings>) -> Importer {
    let mut importer = importer_of(state);
    if let Some(settings) = s3 {
        importer.s3 = S3::connect_for(settings, &state.config).await;
    }
    importer
}

/// The importer for a folder or MVTec place: single-class masks, and the folder itself when it is on disk.
async fn place_importer(state: &AppState, s3: &Option<S3Settings>, place: &str) -> Result<(Importer, Place), (Importer, String)> {
    let mut imp = importer(state, s3).await;
    imp.binary_masks = true;
    match Place::parse(place) {
        Ok(p) => {
            if let Place::Dir(dir) = &p {
                imp = imp.with_local(Local::Dir(dir.clone()));
            }
            Ok((imp, p))
        }
        Err(m) => Err((imp, m)),
    }
}

async fn run(state: &AppState, job_id: &str, job: Job, progress: Arc<JobProgress>) {
    match job {
        Job::Train { model_id } => crate::models::training::run(state, job_id, &model_id, progress).await,
        Job::Host { model_id } => crate::models::hosting::run(state, &model_id).await,
        Job::Package { job_id } => crate::packaging::run::run(state, &job_id).await,
        Job::Trial { trial_id } => crate::trials::run_trial(state, &trial_id, progress).await,
        Job::Batch { trial_id } => crate::trials::run_batch(state, &trial_id, progress).await,
        Job::Manifest { dataset_id, bucket, key, version, s3 } => {
            importer(state, &s3).await.import_manifest(&dataset_id, &bucket, &key, version.as_deref()).await
        }
        Job::Folder { dataset_id, place, s3 } => match place_importer(state, &s3, &place).await {
            Ok((imp, p)) => imp.import_folder(&dataset_id, &p).await,
            Err((imp, m)) => imp.fail_create(&dataset_id, m).await,
        },
        Job::Mvtec { train_id, test_id, place, s3 } => match place_importer(state, &s3, &place).await {
            Ok((imp, p)) => imp.import_mvtec(&train_id, &test_id, &p).await,
            Err((imp, m)) => {
                imp.fail_create(&train_id, m.clone()).await;
                imp.fail_create(&test_id, m).await;
            }
        },
        Job::Archive { dataset_id, path, name, blob } => {
            let path = match blob.clone() {
                None => std::path::PathBuf::from(path),
                // A shared blob store: this worker's own copy, removed with the blob when the job ends.
                Some(hash) => match fetch_archive(state, &hash).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = format!("{e:#}"), "reading an uploaded archive from the blob store");
                        importer_of(state).fail_create(&dataset_id, "The uploaded archive could not be read back from the blob store; upload it again.".into()).await;
                        return;
                    }
                },
            };
            let imp = importer_of(state).with_local(Local::Zip(std::sync::Arc::new(crate::datasets::import::ZipSource::new(path.clone()))));
            imp.import_zip(&dataset_id, &name).await;
            let _ = tokio::fs::remove_file(&path).await;
            if let Some(hash) = blob {
                let blobs = state.blobs.clone();
                let _ = tokio::task::spawn_blocking(move || blobs.delete(&hash)).await;
            }
        }
        Job::Update { dataset_id, changes } => {
            let (lines, _) = crate::datasets::import::parse_manifest(&changes);
            importer_of(state).update_entries(&dataset_id, lines).await
        }
    }
}

