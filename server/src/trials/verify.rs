//! Verifying a trial: the user's verdict on each of the model's, and the verified images added to a dataset with
//! the label the verdict gives them.

use super::{int, Trial, TrialError, TrialImage, CORRECT, INCORRECT, MAX_TRIAL_IMAGES, RUNNING};
use crate::datasets::{self, manifest, BlobInfo, NewEntry};
use crate::state::AppState;
use crate::store::now_ms;
use sqlx::{AnyConnection, Row};

impl TrialImage {
    /// The label a verified image gets: the model's verdict, or its opposite where the user said it was wrong.
    pub fn verified_label(&self) -> Option<manifest::Label> {
        let predicted = self.is_anomalous?;
        let anomalous = match self.verdict.as_deref()? {
            CORRECT => predicted,
            INCORRECT => !predicted,
            _ => return None,
        };
        Some(if anomalous { manifest::Label::Anomaly } else { manifest::Label::Normal })
    }
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
/// type), labelled with the verified verdict; an image already there (same source) gets the new label.
/// Returns `(added, unverified)`.
pub async fn add_to_dataset(state: &AppState, t: &Trial, dataset_type: &str) -> Result<(usize, usize), TrialError> {
    datasets::validate_dataset_type(dataset_type).map_err(TrialError::Invalid)?;
    if t.status == RUNNING {
        return Err(TrialError::Conflict("The trial is still running; add its images when it has finished.".into()));
    }
    let mut tx = state.db.begin_write().await?;
    let rows = sqlx::query(
        "select seq, name, image_hash, size, content_type, width, height, is_anomalous, verdict from trial_image \
         where trial_id = $1 and done = 1 and error is null order by seq",
    )
    .bind(&t.id)
    .fetch_all(&mut *tx)
    .await?;
    let now_iso = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (mut entries, mut seqs, mut unverified) = (Vec::new(), Vec::new(), 0);
    for r in &rows {
        let verdict: Option<String> = r.try_get(8)?;
        let im = TrialImage {
            seq: r.try_get(0)?,
            name: r.try_get(1)?,
            image_hash: r.try_get(2)?,
            width: int(r, 5)?,
            height: int(r, 6)?,
            done: true,
            error: None,
            is_anomalous: r.try_get::<Option<i64>, _>(7)?.map(|v| v != 0),
            confidence: None,
            score: None,
            heat_hash: None,
            mask_hash: None,
            anomalies: Vec::new(),
            verdict,
            added_at: None,
        };
        let Some(label) = im.verified_label() else {
            unverified += 1;
            continue;
        };
        let mut raw = serde_json::Map::new();
        raw.insert("source-ref".into(), serde_json::Value::String(im.name.clone()));
        let raw = manifest::with_label(&raw, Some(label), &now_iso);
        entries.push(NewEntry {
            source_ref: im.name.clone(),
            image: BlobInfo { hash: im.image_hash.clone(), size: r.try_get(3)?, content_type: r.try_get(4)?, width: im.width, height: im.height },
            label: Some(label),
            mask: None,
            entry: serde_json::Value::Object(raw).to_string(),
        });
        seqs.push(im.seq);
    }
    if entries.is_empty() {
        return Err(TrialError::Invalid("No image of the trial is verified yet; mark them correct or incorrect first.".into()));
    }
    let d = match datasets::find(&mut tx, &t.project_id, dataset_type).await? {
        Some(d) => d,
        None => datasets::create(&mut tx, &t.project_id, dataset_type, datasets::CREATE_COMPLETE).await?,
    };
    datasets::check_settled(&d)?;
    // An image already in the dataset that stays anomalous keeps its painted mask (its line carries the mask's
    // reference and colour map); only the label changes.
    for e in entries.iter_mut().filter(|e| e.label == Some(manifest::Label::Anomaly)) {
        let old: Option<(String, Option<String>)> =
            sqlx::query_as("select entry, mask_hash from dataset_entry where dataset_id = $1 and source_ref = $2")
                .bind(&d.id)
                .bind(&e.source_ref)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((line, Some(mask))) = old {
            let raw: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&line).unwrap_or_default();
            e.entry = serde_json::Value::Object(manifest::with_label(&raw, e.label, &now_iso)).to_string();
            e.mask = blob_info(&mut tx, &mask).await?;
        }
    }
    datasets::upsert_entries(&mut tx, &d.id, &entries).await?;
    let now = now_ms();
    for s in &seqs {
        sqlx::query("update trial_image set added_at = $1 where trial_id = $2 and seq = $3").bind(now).bind(&t.id).bind(s).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok((entries.len(), unverified))
}

async fn blob_info(conn: &mut AnyConnection, hash: &str) -> Result<Option<BlobInfo>, sqlx::Error> {
    let row = sqlx::query("select hash, size, content_type, width, height from blob where hash = $1").bind(hash).fetch_optional(&mut *conn).await?;
    row.map(|r| Ok(BlobInfo { hash: r.try_get(0)?, size: r.try_get(1)?, content_type: r.try_get(2)?, width: int(&r, 3)?, height: int(&r, 4)? }))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_labels_follow_the_verdict() {
        let mut im = TrialImage {
            seq: 0,
            name: "n".into(),
            image_hash: "h".into(),
            width: 1,
            height: 1,
            done: true,
            error: None,
            is_anomalous: Some(true),
            confidence: Some(0.9),
            score: Some(1.0),
            heat_hash: None,
            mask_hash: None,
            anomalies: Vec::new(),
            verdict: None,
            added_at: None,
        };
        assert_eq!(im.verified_label(), None);
        im.verdict = Some(CORRECT.into());
        assert_eq!(im.verified_label(), Some(manifest::Label::Anomaly));
        im.verdict = Some(INCORRECT.into());
        assert_eq!(im.verified_label(), Some(manifest::Label::Normal));
        im.is_anomalous = Some(false);
        assert_eq!(im.verified_label(), Some(manifest::Label::Anomaly));
    }
}
