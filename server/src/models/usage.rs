//! What hosted models did, counted per model version and hour: the dashboard's figures and `/metrics`.
//!
//! Detection workers count in memory (`inference::Counters`), hosted models and trial lanes alike; `flush` adds the counts gathered since the last
//! flush to the hour's row of `detection_hour` (an upsert, so several Vigil processes sharing one database add
//! up), every few seconds and before `/metrics` answers. Counts that cannot be written are kept for the next
//! flush. `/metrics` speaks Prometheus' text format with LFV's CloudWatch metric names and dimensions
//! (namespace `AWS/LookoutVision` becomes the prefix `lookoutvision_`).

use super::hosting::{Counts, Hosted};
use crate::state::AppState;
use crate::db::now_ms;
use serde::Serialize;
use sqlx::AnyConnection;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

/// How often the counts are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// The current hour, in hours since the epoch.
pub fn hour_now() -> i64 {
    now_ms().div_euclid(3_600_000)
}

/// Adds one model's counts to an hour's row.
pub async fn add(conn: &mut AnyConnection, h: &Hosted, hour: i64, c: Counts) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into detection_hour (project_id, model_id, model_version, hour, processed, anomalous, invalid, throttled, errors, time_us) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         on conflict (model_id, hour) do update set \
           processed = detection_hour.processed + excluded.processed, \
           anomalous = detection_hour.anomalous + excluded.anomalous, \
           invalid = detection_hour.invalid + excluded.invalid, \
           throttled = detection_hour.throttled + excluded.throttled, \
           errors = detection_hour.errors + excluded.errors, \
           time_us = detection_hour.time_us + excluded.time_us",
    )
    .bind(&h.project_id)
    .bind(&h.model_id)
    .bind(h.version)
    .bind(hour)
    .bind(c.processed as i64)
    .bind(c.anomalous as i64)
    .bind(c.invalid as i64)
    .bind(c.throttled as i64)
    .bind(c.errors as i64)
    .bind(c.time_us as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes every hosted (and lately stopped) model's new counts. Counts that could not be written stay in
/// memory for the next call.
pub async fn flush(state: &AppState) -> Result<(), sqlx::Error> {
    let mut models: Vec<Arc<Hosted>> = state.hosting.counting();
    models.extend(state.hosting.take_retired());
    let drained: Vec<(Arc<Hosted>, Counts, Vec<u64>)> = models
        .into_iter()
        .map(|h| (h.clone(), h.pending().drain(), h.drain_score_bins()))
        .filter(|(_, c, bins)| !c.is_empty() || !bins.is_empty())
        .collect();
    if drained.is_empty() {
        return Ok(());
    }
    let hour = hour_now();
    let mut conn = match state.db.pool.acquire().await {
        Ok(c) => c,
        Err(e) => {
            for (h, c, bins) in drained {
                h.pending().add(c);
                h.add_score_bins(&bins);
            }
            return Err(e);
        }
    };
    let mut failed = None;
    for (h, c, bins) in drained {
        if failed.is_some() {
            h.pending().add(c);
            h.add_score_bins(&bins);
            continue;
        }
        if let Err(e) = add(&mut conn, &h, hour, c).await {
            h.pending().add(c);
            h.add_score_bins(&bins);
            failed = Some(e);
            continue;
        }
        if let Err(e) = super::drift::add(&mut conn, &h.model_id, hour, &bins).await {
            h.add_score_bins(&bins);
            failed = Some(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Flushes every `FLUSH_EVERY` for the life of the process.
pub fn start_flusher(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            state.hosting.close_lanes(super::hosting::LANE_IDLE, None);
            let unloaded = state.hosting.has_retired();
            if let Err(e) = flush(&state).await {
                tracing::warn!(error = %e, "could not write detection counts (kept for the next try)");
            }
            // The flush dropped the last references to the models no longer served: their memory goes back.
            if unloaded {
                let _ = tokio::task::spawn_blocking(crate::engine::release_memory).await;
            }
        }
    });
}

/// One project's detections over a time frame, for the dashboard.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ProjectUsage {
    pub project: String,
    pub processed: i64,
    pub anomalous: i64,
    /// Per bucket (oldest first): processed and anomalous.
    pub series: Vec<(i64, i64)>,
}

/// Every project's detections since `since_hour`, in buckets of `bucket_hours` (projects without any are
/// listed too, with zeros), ordered by name.
pub async fn by_project(
    conn: &mut AnyConnection,
    since_hour: i64,
    now_hour: i64,
    bucket_hours: i64,
    max_projects: i64,
) -> Result<Vec<ProjectUsage>, sqlx::Error> {
    let bucket_hours = bucket_hours.max(1);
    let buckets = ((now_hour - since_hour) / bucket_hours + 1).clamp(1, 10_000) as usize;
    let projects: Vec<(String, String)> =
        sqlx::query_as("select id, name from project order by name limit $1").bind(max_projects).fetch_all(&mut *conn).await?;
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "select project_id, hour, cast(sum(processed) as bigint), cast(sum(anomalous) as bigint) from detection_hour \
         where hour >= $1 and hour <= $2 group by project_id, hour",
    )
    .bind(since_hour)
    .bind(now_hour)
    .fetch_all(&mut *conn)
    .await?;
    let mut out: Vec<ProjectUsage> = projects
        .iter()
        .map(|(_, name)| ProjectUsage { project: name.clone(), series: vec![(0, 0); buckets], ..Default::default() })
        .collect();
    let index: std::collections::HashMap<&str, usize> = projects.iter().enumerate().map(|(i, (id, _))| (id.as_str(), i)).collect();
    for (project_id, hour, processed, anomalous) in rows {
        let Some(&i) = index.get(project_id.as_str()) else { continue };
        let b = (((hour - since_hour) / bucket_hours) as usize).min(buckets - 1);
        let u = &mut out[i];
        u.processed += processed;
        u.anomalous += anomalous;
        u.series[b].0 += processed;
        u.series[b].1 += anomalous;
    }
    Ok(out)
}

/// All-time totals of one model version (the `/metrics` counters).
#[derive(Clone, Debug, Default)]
pub struct ModelTotals {
    pub project: String,
    pub version: i64,
    pub counts: Counts,
}

/// All-time totals per model version of existing projects.
pub async fn totals(conn: &mut AnyConnection) -> Result<Vec<ModelTotals>, sqlx::Error> {
    let rows: Vec<(String, i64, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "select p.name, d.model_version, cast(sum(d.processed) as bigint), cast(sum(d.anomalous) as bigint), \
           cast(sum(d.invalid) as bigint), cast(sum(d.throttled) as bigint), cast(sum(d.errors) as bigint), \
           cast(sum(d.time_us) as bigint) \
         from detection_hour d join project p on p.id = d.project_id \
         group by p.name, d.model_version order by p.name, d.model_version",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(project, version, processed, anomalous, invalid, throttled, errors, time_us)| ModelTotals {
            project,
            version,
            counts: Counts {
                processed: processed as u64,
                anomalous: anomalous as u64,
                invalid: invalid as u64,
                throttled: throttled as u64,
                errors: errors as u64,
                time_us: time_us as u64,
            },
        })
        .collect())
}

/// A hosted model's units, for the gauges.
pub struct HostedUnits {
    pub project: String,
    pub version: i64,
    pub min: usize,
    pub max: usize,
    pub in_service: usize,
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The Prometheus text exposition of the totals and the hosted models' units.
pub fn render(totals: &[ModelTotals], hosted: &[HostedUnits]) -> String {
    let mut out = String::new();
    let dims = |p: &str, v: i64| format!("{{ProjectName=\"{}\",ModelVersion=\"{v}\"}}", label(p));
    let counters: [(&str, &str, fn(&Counts) -> u64); 6] = [
        ("ProcessedImageCount", "Images DetectAnomalies processed.", |c| c.processed),
        ("SuccessfulRequestCount", "DetectAnomalies calls that answered a result.", |c| c.processed),
        ("DetectedAnomalyCount", "Images found anomalous.", |c| c.anomalous),
        ("InvalidImageCount", "Images refused as unusable (format, size).", |c| c.invalid),
        ("ThrottledCount", "Calls refused because the model's queue was full.", |c| c.throttled),
        ("ErrorCount", "Calls that failed on the server's side.", |c| c.errors),
    ];
    for (name, help, get) in counters {
        let _ = writeln!(out, "# HELP lookoutvision_{name} {help}\n# TYPE lookoutvision_{name} counter");
        for t in totals {
            let _ = writeln!(out, "lookoutvision_{name}{} {}", dims(&t.project, t.version), get(&t.counts));
        }
    }
    let _ = writeln!(out, "# HELP lookoutvision_Time Detection time of processed images, in milliseconds.\n# TYPE lookoutvision_Time summary");
    for t in totals {
        let d = dims(&t.project, t.version);
        let _ = writeln!(out, "lookoutvision_Time_sum{d} {}", t.counts.time_us as f64 / 1000.0);
        let _ = writeln!(out, "lookoutvision_Time_count{d} {}", t.counts.processed);
    }
    let gauges: [(&str, &str, fn(&HostedUnits) -> usize); 4] = [
        ("MinInferenceUnits", "MinInferenceUnits of the hosted model.", |h| h.min),
        ("MaxInferenceUnits", "MaxInferenceUnits of the hosted model.", |h| h.max),
        ("DesiredInferenceUnits", "Inference units the model scales to now.", |h| h.in_service.max(h.min)),
        ("InServiceInferenceUnits", "Detection workers running now.", |h| h.in_service),
    ];
    for (name, help, get) in gauges {
        let _ = writeln!(out, "# HELP lookoutvision_{name} {help}\n# TYPE lookoutvision_{name} gauge");
        for h in hosted {
            let _ = writeln!(out, "lookoutvision_{name}{} {}", dims(&h.project, h.version), get(h));
        }
    }
    out
}

/// Everything `/metrics` shows, fresh (this process's pending counts are flushed first).
///
/// With several replicas: the `lookoutvision_*` counters are the deployment's totals from the database (every
/// replica answers the same, give or take the last few seconds of the others' counts), so scrape any one; the
/// unit gauges and the `vigil_process_*` counters are this process's own (detections since the model was
/// loaded here), so their sum over the replicas is the deployment's; `vigil_processes` counts the live ones.
pub async fn metrics_text(state: &AppState) -> Result<String, sqlx::Error> {
    flush(state).await?;
    let mut conn = state.db.pool.acquire().await?;
    let totals = totals(&mut conn).await?;
    let mut hosted = Vec::new();
    let mut own = Vec::new();
    for h in state.hosting.all() {
        let name: Option<(String,)> =
            sqlx::query_as("select name from project where id = $1").bind(&h.project_id).fetch_optional(&mut *conn).await?;
        if let Some((project,)) = name {
            let (min, max) = h.units();
            hosted.push(HostedUnits { project: project.clone(), version: h.version, min, max, in_service: h.workers() });
            own.push(ModelTotals { project, version: h.version, counts: h.counters().snapshot() });
        }
    }
    drop(conn);
    let mut text = render(&totals, &hosted);
    let _ = writeln!(text, "# HELP vigil_process_ProcessedImageCount Images this process detected since it loaded the model.\n# TYPE vigil_process_ProcessedImageCount counter");
    for t in &own {
        let _ = writeln!(text, "vigil_process_ProcessedImageCount{{ProjectName=\"{}\",ModelVersion=\"{}\"}} {}", label(&t.project), t.version, t.counts.processed);
    }
    let _ = writeln!(text, "# HELP vigil_process_DetectedAnomalyCount Anomalous images this process detected since it loaded the model.\n# TYPE vigil_process_DetectedAnomalyCount counter");
    for t in &own {
        let _ = writeln!(text, "vigil_process_DetectedAnomalyCount{{ProjectName=\"{}\",ModelVersion=\"{}\"}} {}", label(&t.project), t.version, t.counts.anomalous);
    }
    // Drift of every hosted version (from the database: the same on every replica).
    let mut conn = state.db.pool.acquire().await?;
    let hosted_models: Vec<(String, String, i64)> = sqlx::query_as(
        "select m.id, p.name, m.version from model_version m join project p on p.id = m.project_id where m.status = $1 order by p.name, m.version",
    )
    .bind(super::HOSTED)
    .fetch_all(&mut *conn)
    .await?;
    let mut drift = Vec::new();
    for (id, project, version) in hosted_models {
        if let Some(s) = super::drift::status(&mut conn, &id, hour_now()).await? {
            drift.push((project, version, s));
        }
    }
    drop(conn);
    let gauges: [(&str, &str, fn(&super::drift::Shift) -> f64); 4] = [
        ("vigil_drift_median_shift", "Median score of the last 2 hours' detections, in validation spreads from the validation median.", |s| s.median_shift),
        ("vigil_drift_statistic", "That shift in standard errors (a shift is significant at 4).", |s| s.statistic),
        ("vigil_drift_images", "Detections in the drift window (the last 2 hours).", |s| s.images as f64),
        ("vigil_drift_shifted", "1 when the scores have drifted: significant, at least 0.5 spreads, 30 detections or more.", |s| f64::from(u8::from(s.shifted))),
    ];
    for (name, help, get) in gauges {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (project, version, s) in &drift {
            let _ = writeln!(text, "{name}{{ProjectName=\"{}\",ModelVersion=\"{version}\"}} {}", label(project), get(s));
        }
    }
    let mut roles: std::collections::BTreeMap<String, usize> = Default::default();
    for p in crate::cluster::live(&state.db).await? {
        *roles.entry(p.role).or_default() += 1;
    }
    let _ = writeln!(text, "# HELP vigil_processes Live Vigil processes on this database, by role.\n# TYPE vigil_processes gauge");
    for (role, n) in roles {
        let _ = writeln!(text, "vigil_processes{{Role=\"{role}\"}} {n}");
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_lfv_names() {
        let totals = vec![ModelTotals {
            project: "cookies".into(),
            version: 2,
            counts: Counts { processed: 10, anomalous: 3, invalid: 1, throttled: 4, errors: 0, time_us: 25_000 },
        }];
        let hosted = vec![HostedUnits { project: "cookies".into(), version: 2, min: 1, max: 3, in_service: 2 }];
        let text = render(&totals, &hosted);
        assert!(text.contains("lookoutvision_ProcessedImageCount{ProjectName=\"cookies\",ModelVersion=\"2\"} 10\n"), "{text}");
        assert!(text.contains("lookoutvision_DetectedAnomalyCount{ProjectName=\"cookies\",ModelVersion=\"2\"} 3\n"));
        assert!(text.contains("lookoutvision_ThrottledCount{ProjectName=\"cookies\",ModelVersion=\"2\"} 4\n"));
        assert!(text.contains("lookoutvision_Time_sum{ProjectName=\"cookies\",ModelVersion=\"2\"} 25\n"));
        assert!(text.contains("lookoutvision_InServiceInferenceUnits{ProjectName=\"cookies\",ModelVersion=\"2\"} 2\n"));
        assert!(text.contains("# TYPE lookoutvision_MaxInferenceUnits gauge\n"));
        // Every sample line is `name{labels} number`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
