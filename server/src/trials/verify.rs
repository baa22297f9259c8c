//! Verifying a trial: the user's verdict on each of the model's, and the verified images added to a dataset with
//! the label the verdict gives them.

use super::records::{Trial, TrialError, CORRECT, INCORRECT, MAX_TRIAL_IMAGES, RUNNING};
use crate::datasets::{self, manifest, BlobInfo, NewEntry};
use crate::state::AppState;
use crate::db::now_ms;
use sqlx::AnyConnection;

/// The label a verified image gets: the model's verdict (`predicted` anomalous or not), or its opposite where the
/// user said it was wrong; none while it is unverified.
pub fn verified_label(predicted: Option<bool>, verdict: Option<&str>) -> Option<manifest::ImageClass> {
    let anomalous = match verdict? {
        CORRECT => predicted?,
        INCORRECT => !predicted?,
        _ => return None,
    };
    Some(if anomalous { manifest::ImageClass::Anomaly } else { manifest::ImageClass::Normal })
}

/// Marks images correct, incorrect or (`None`) unverified; returns how many changed. Only detected images can
/// be verified.
pub async fn set_verdicts(conn: &mut AnyConnection, trial_id: &str, seqs: &[i64], verdict: Option<&str>) -> Result<u64, TrialError> {
    if let Some(v) = verdict {
        if v != CORRECT && v != INCORRECT {
            return Err(TrialError::Invalid(format!("{v:?} is not a verdict: give correct, incorrect or nothing.")));
        }
    }
    if seqs.len() > MAX_TRIAL_IMAGES {
        return Err(TrialError::Invalid(format!("At most {MAX_TRIAL_IMAGES} images can be verified at once.")));
    }
    let mut n = 0;
    for s in seqs {
        n += sqlx::query("update trial_image set verdict = $1 where trial_id = $2 and seq = $3 and done = 1 and error is null")
            .bind(verdict)
            .bind(trial_id)
            .bind(s)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(n)
}

/// Adds a trial's verified images to one of the project's datasets (created if the project has none of that
/// type), labelled with the verified verdict. An image already there (same source) keeps its line and mask and
/// takes the new label, as a label set in the gallery would. Returns `(added, unverified)`.
pub async fn add_to_dataset(state: &AppState, t: &Trial, dataset_type: &str) -> Result<(usize, usize), TrialError> {
    datasets::validate_dataset_type(dataset_type).map_err(TrialError::Invalid)?;
    if t.status == RUNNING {
        return Err(TrialError::Conflict("The trial is still running; add its images when it has finished.".into()));
    }
    let mut tx = state.db.begin_write().await?;
    let rows: Vec<(i64, String, String, i64, String, i64, i64, Option<i64>, Option<String>)> = sqlx::query_as(
        "select seq, name, image_hash, size, content_type, width, height, is_anomalous, verdict from trial_image \
         where trial_id = $1 and done = 1 and error is null order by seq",
    )
    .bind(&t.id)
    .fetch_all(&mut *tx)
    .await?;
    let d = match datasets::find(&mut tx, &t.project_id, dataset_type).await? {
        Some(d) => d,
        None => datasets::create(&mut tx, &t.project_id, dataset_type, datasets::CREATE_COMPLETE).await?,
    };
    datasets::check_settled(&d)?;
    let now_iso = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (mut entries, mut seqs, mut unverified) = (Vec::new(), Vec::new(), 0);
    for (seq, source_ref, hash, size, content_type, width, height, predicted, verdict) in rows {
        let Some(label) = verified_label(predicted.map(|v| v != 0), verdict.as_deref()) else {
            unverified += 1;
            continue;
        };
        let old: Option<(String, Option<String>)> =
            sqlx::query_as("select entry, mask_hash from dataset_entry where dataset_id = $1 and source_ref = $2")
                .bind(&d.id)
                .bind(&source_ref)
                .fetch_optional(&mut *tx)
                .await?;
        let (raw, mask) = match old {
            Some((line, mask)) => (serde_json::from_str(&line).unwrap_or_default(), mask),
            None => (serde_json::Map::from_iter([("source-ref".to_string(), serde_json::Value::String(source_ref.clone()))]), None),
        };
        let mask = match mask {
            Some(m) => datasets::blob_info(&mut tx, &m).await?,
            None => None,
        };
        entries.push(NewEntry::from_text(
            source_ref,
            BlobInfo { hash, size, content_type, width, height },
            Some(label),
            mask,
            serde_json::Value::Object(manifest::with_label(&raw, Some(label), &now_iso)).to_string(),
        ));
        seqs.push(seq);
    }
    if entries.is_empty() {
        return Err(TrialError::Invalid("No image of the trial is verified yet; mark them correct or incorrect first.".into()));
    }
    datasets::upsert_entries(&mut tx, &d.id, &entries).await?;
    let now = now_ms();
    for s in &seqs {
        sqlx::query("update trial_image set added_at = $1 where trial_id = $2 and seq = $3").bind(now).bind(&t.id).bind(s).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok((entries.len(), unverified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_labels_follow_the_verdict() {
        assert_eq!(verified_label(Some(true), None), None);
        assert_eq!(verified_label(Some(true), Some(CORRECT)), Some(manifest::ImageClass::Anomaly));
        assert_eq!(verified_label(Some(true), Some(INCORRECT)), Some(manifest::ImageClass::Normal));
        assert_eq!(verified_label(Some(false), Some(INCORRECT)), Some(manifest::ImageClass::Anomaly));
        assert_eq!(verified_label(None, Some(CORRECT)), None, "an image the model could not run on has no verdict to verify");
        assert_eq!(verified_label(Some(false), Some("maybe")), None);
    }
}
