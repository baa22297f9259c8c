//! Housekeeping every process does now and then: unused blobs (on processes that run jobs), orphaned batch
//! files, expired sessions, client tokens and sign-in counts.

use crate::blobs::{Blobs, Listed};
use crate::db::{now_ms, Db};
use crate::state::AppState;
use std::collections::HashSet;
use std::time::Duration;

/// Blobs unreferenced for less than this are kept (an import or upload writes its blobs before it commits the
/// rows that use them; a training writes its model file before it settles the version).
pub const BLOB_GRACE: Duration = Duration::from_secs(24 * 3600);

pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        let mut ticks = 0u64;
        loop {
            tick.tick().await;
            ticks += 1;
            // Blobs: 30 minutes after the start, then every 6 hours, by processes that run jobs.
            if ticks % 36 == 4 && state.node.role.runs_jobs() {
                match collect_blob_garbage(&state.db, &state.blobs, BLOB_GRACE).await {
                    Ok(removed) if removed.is_empty() => {}
                    Ok(removed) => tracing::info!(
                        blobs = removed.len(),
                        bytes = removed.iter().map(|l| l.bytes).sum::<u64>(),
                        "removed blobs no image, mask, model, trial or batch uses"
                    ),
                    Err(e) => tracing::warn!(error = format!("{e:#}"), "collecting unused blobs failed"),
                }
            }
            match crate::trials::remove_orphan_downloads(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(files = n, "removed batch results whose batch is gone"),
                Err(e) => tracing::warn!(error = %e, "removing orphaned batch results failed"),
            }
            if let Ok(mut conn) = state.db.pool.acquire().await {
                if let Err(e) = crate::auth::users::purge_expired_sessions(&mut conn).await {
                    tracing::warn!(error = %e, "purging expired sessions failed");
                }
            }
            if let Err(e) = crate::http::idempotency::purge_expired(&state.db).await {
                tracing::warn!(error = %e, "purging expired client tokens failed");
            }
        }
    });
}

/// Every blob the database refers to: dataset entries' images and masks, model versions' files (and the test
/// images their pages show), trial images, heat maps and masks, batch results, archives waiting for their
/// import, and recorded images younger than `grace`.
async fn referenced(db: &Db, grace: Duration) -> anyhow::Result<HashSet<String>> {
    let mut conn = db.pool.acquire().await?;
    let mut used: HashSet<String> = HashSet::new();
    let rows: Vec<(String, Option<String>)> = sqlx::query_as("select image_hash, mask_hash from dataset_entry").fetch_all(&mut *conn).await?;
    for (image, mask) in rows {
        used.insert(image);
        used.extend(mask);
    }
    used.extend(crate::models::artifacts::referenced(&mut conn).await?);
    let trial_rows: Vec<(String, Option<String>, Option<String>)> =
        sqlx::query_as("select image_hash, heat_hash, mask_hash from trial_image").fetch_all(&mut *conn).await?;
    for (image, heat, mask) in trial_rows {
        used.insert(image);
        used.extend(heat);
        used.extend(mask);
    }
    let outputs: Vec<(String,)> = sqlx::query_as("select output_hash from trial where output_hash is not null").fetch_all(&mut *conn).await?;
    used.extend(outputs.into_iter().map(|(h,)| h));
    for (_, job) in crate::jobs::pending(&mut conn).await? {
        if let crate::jobs::Job::Archive { blob: Some(h), .. } = job {
            used.insert(h);
        }
    }
    // Image records: those nothing uses any more go once they are old; the rest keep their blobs.
    let cutoff = now_ms() - grace.as_millis() as i64;
    let old: Vec<(String,)> = sqlx::query_as("select hash from blob where created_at < $1").bind(cutoff).fetch_all(&mut *conn).await?;
    for (hash,) in old.iter().filter(|(h,)| !used.contains(h)) {
        // Re-checked in the statement itself: an entry written meanwhile keeps its blob.
        sqlx::query(
            "delete from blob where hash = $1 and not exists (select 1 from dataset_entry where image_hash = $1 or mask_hash = $1) \
             and not exists (select 1 from trial_image where image_hash = $1 or heat_hash = $1 or mask_hash = $1) \
             and not exists (select 1 from model_blob where hash = $1)",
        )
        .bind(hash)
        .execute(&mut *conn)
        .await?;
    }
    let rows: Vec<(String,)> = sqlx::query_as("select hash from blob").fetch_all(&mut *conn).await?;
    used.extend(rows.into_iter().map(|(h,)| h));
    Ok(used)
}

/// Removes the blobs that nothing refers to and that were last written longer than `grace` ago; returns what it
/// removed. Safe beside processes writing at once: the store is listed *before* the references are read (a blob
/// listed and then referenced by a row committed before the read is kept), and each candidate's age is read again
/// just before it goes (a `put` of the same bytes refreshes it: an upload whose row is not committed yet is young).
pub async fn collect_blob_garbage(db: &Db, blobs: &Blobs, grace: Duration) -> anyhow::Result<Vec<Listed>> {
    let store = blobs.clone();
    let listed = tokio::task::spawn_blocking(move || store.list()).await??;
    let used = referenced(db, grace).await?;
    let candidates: Vec<Listed> = listed.into_iter().filter(|l| l.age >= grace && !used.contains(&l.hash)).collect();
    let store = blobs.clone();
    let removed = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Listed>> {
        let mut removed = Vec::new();
        for c in candidates {
            if store.age(&c.hash)?.is_some_and(|age| age >= grace) {
                store.delete(&c.hash)?;
                removed.push(c);
            }
        }
        Ok(removed)
    })
    .await??;
    Ok(removed)
}

/// `vigil admin collect-blobs`: one collection (or, `--dry-run`, the list of what it would remove), printed a
/// line per blob and a total.
pub async fn collect_blobs_command(args: crate::config::CollectBlobsArgs) -> anyhow::Result<()> {
    let db = Db::connect(&args.config.database_url).await?;
    let blobs = Blobs::from_config(&args.config.blobs, &args.config.data_dir).await?;
    let grace = Duration::from_secs(args.grace_secs);
    let removed = if args.dry_run {
        let store = blobs.clone();
        let listed = tokio::task::spawn_blocking(move || store.list()).await??;
        let used = referenced(&db, grace).await?;
        listed.into_iter().filter(|l| l.age >= grace && !used.contains(&l.hash)).collect()
    } else {
        collect_blob_garbage(&db, &blobs, grace).await?
    };
    let verb = if args.dry_run { "would remove" } else { "removed" };
    for l in &removed {
        println!("{verb} {} ({} bytes, written {} s ago)", l.hash, l.bytes, l.age.as_secs());
    }
    println!("{verb} {} blobs, {} bytes, from {}", removed.len(), removed.iter().map(|l| l.bytes).sum::<u64>(), blobs.location());
    Ok(())
}
