//! `X-Amzn-Client-Token` idempotency. A successful mutating call stores its answer under (operation, token)
//! in the same transaction as its effect; a retry with the same token and parameters within 8 hours gets
//! that answer again without repeating the effect, and the same token with other parameters is refused
//! with a `ConflictException`.

use super::error::{ApiError, ResourceType};
use crate::db::{is_unique_violation, now_ms, Db};
use axum::http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use std::future::Future;
use std::pin::Pin;

/// How long LFV keeps a client token active.
pub const TOKEN_TTL_MS: i64 = 8 * 60 * 60 * 1000;

pub const HEADER: &str = "x-amzn-client-token";

/// Reads and checks the token header: 1–64 characters of `[a-zA-Z0-9-]`.
pub fn client_token(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(HEADER) else { return Ok(None) };
    let t = v
        .to_str()
        .map_err(|_| ApiError::Validation("ClientToken must be ASCII.".into()))?;
    validate_token(t)?;
    Ok(Some(t.to_string()))
}

pub fn validate_token(t: &str) -> Result<(), ApiError> {
    if t.is_empty() || t.len() > 64 || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ApiError::Validation(
            "ClientToken must be 1-64 characters: letters, digits and hyphens.".into(),
        ));
    }
    Ok(())
}

/// A stable digest of an operation's parameters, as (name, value) pairs in a fixed order.
pub fn params_hash(params: &[(&str, &str)]) -> String {
    let mut h = Sha256::new();
    for (k, v) in params {
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    hex::encode(h.finalize())
}

pub type Work<'c> = Pin<Box<dyn Future<Output = Result<Value, ApiError>> + Send + 'c>>;

/// Runs `work` in a transaction, at most once per (operation, token).
pub async fn run<F>(db: &Db, operation: &str, token: Option<&str>, hash: &str, work: F) -> Result<Value, ApiError>
where
    F: for<'c> FnOnce(&'c mut AnyConnection) -> Work<'c>,
{
    Ok(run_detailed(db, operation, token, hash, work).await?.value)
}

/// The answer, and whether it is a replay (the work did not run now), for callers that start a job after
/// the transaction commits and must not start it twice.
pub struct Outcome {
    pub value: Value,
    pub replayed: bool,
}

pub async fn run_detailed<F>(db: &Db, operation: &str, token: Option<&str>, hash: &str, work: F) -> Result<Outcome, ApiError>
where
    F: for<'c> FnOnce(&'c mut AnyConnection) -> Work<'c>,
{
    let fresh = |value| Outcome { value, replayed: false };
    let replayed = |value| Outcome { value, replayed: true };
    let Some(token) = token else {
        let mut tx = db.begin_write().await?;
        let value = work(&mut tx).await?;
        tx.commit().await?;
        return Ok(fresh(value));
    };
    if let Some(answer) = replay(db, operation, token, hash).await? {
        return Ok(replayed(answer));
    }
    let mut tx = db.begin_write().await?;
    let outcome = match work(&mut tx).await {
        Ok(value) => record(&mut tx, operation, token, hash, &value).await.map(|_| value),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(value) => match tx.commit().await {
            Ok(()) => Ok(fresh(value)),
            Err(e) if is_unique_violation(&e) => settle(db, operation, token, hash, e.into()).await.map(replayed),
            Err(e) => Err(e.into()),
        },
        Err(e) => {
            drop(tx); // rolls back
            // A concurrent call with the same token may have won the race: answer as it did.
            settle(db, operation, token, hash, e).await.map(replayed)
        }
    }
}

async fn settle(db: &Db, operation: &str, token: &str, hash: &str, err: ApiError) -> Result<Value, ApiError> {
    match replay(db, operation, token, hash).await? {
        Some(answer) => Ok(answer),
        None => Err(err),
    }
}

/// The stored answer for a live token, or a conflict if its parameters differ.
async fn replay(db: &Db, operation: &str, token: &str, hash: &str) -> Result<Option<Value>, ApiError> {
    let cutoff = now_ms() - TOKEN_TTL_MS;
    let row: Option<(String, String)> = sqlx::query_as(
        "select params_hash, response from client_token where operation = $1 and token = $2 and created_at > $3",
    )
    .bind(operation)
    .bind(token)
    .bind(cutoff)
    .fetch_optional(&db.pool)
    .await?;
    match row {
        None => Ok(None),
        Some((stored, _)) if stored != hash => Err(ApiError::Conflict {
            message: format!(
                "The client token {token} was already used for a {operation} call with different parameters."
            ),
            resource_id: token.to_string(),
            resource_type: resource_of(operation),
        }),
        Some((_, response)) => serde_json::from_str(&response)
            .map(Some)
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("stored idempotent response"))),
    }
}

/// The kind of resource an operation acts on, for its errors.
fn resource_of(operation: &str) -> ResourceType {
    if operation.contains("PackagingJob") {
        ResourceType::ModelPackageJob
    } else if operation.contains("Dataset") {
        ResourceType::Dataset
    } else if operation.contains("Model") {
        ResourceType::Model
    } else {
        ResourceType::Project
    }
}

async fn record(conn: &mut AnyConnection, operation: &str, token: &str, hash: &str, value: &Value) -> Result<(), ApiError> {
    let now = now_ms();
    // An expired row for the same token would block the insert; it no longer means anything.
    sqlx::query("delete from client_token where operation = $1 and token = $2 and created_at <= $3")
        .bind(operation)
        .bind(token)
        .bind(now - TOKEN_TTL_MS)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "insert into client_token (operation, token, params_hash, response, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $5)",
    )
    .bind(operation)
    .bind(token)
    .bind(hash)
    .bind(value.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes expired tokens; run now and then.
pub async fn purge_expired(db: &Db) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("delete from client_token where created_at <= $1")
        .bind(now_ms() - TOKEN_TTL_MS)
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules() {
        for ok in ["a", "A-1", &"x".repeat(64), "123e4567-e89b-12d3-a456-426614174000"] {
            assert!(validate_token(ok).is_ok(), "{ok}");
        }
        for bad in ["", &"x".repeat(65), "a_b", "a b", "a/b"] {
            assert!(validate_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hash_separates_params() {
        let a = params_hash(&[("ProjectName", "ab"), ("X", "c")]);
        assert_eq!(a, params_hash(&[("ProjectName", "ab"), ("X", "c")]));
        assert_ne!(a, params_hash(&[("ProjectName", "a"), ("X", "bc")]));
        assert_ne!(a, params_hash(&[("ProjectName", "ab")]));
    }

    async fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        (dir, Db::connect(&url).await.unwrap())
    }

    fn counting(n: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> impl for<'c> FnOnce(&'c mut AnyConnection) -> Work<'c> {
        let n = n.clone();
        move |_conn| {
            Box::pin(async move {
                let k = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(serde_json::json!({ "call": k }))
            })
        }
    }

    #[tokio::test]
    async fn same_token_replays_and_other_params_conflict() {
        let (_d, db) = db().await;
        let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h1 = params_hash(&[("P", "one")]);
        let first = run(&db, "Op", Some("t1"), &h1, counting(&n)).await.unwrap();
        let again = run(&db, "Op", Some("t1"), &h1, counting(&n)).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 1, "the work ran once");
        let h2 = params_hash(&[("P", "two")]);
        let err = run(&db, "Op", Some("t1"), &h2, counting(&n)).await.unwrap_err();
        assert!(matches!(err, ApiError::Conflict { .. }));
        // Another operation or token is a new call.
        run(&db, "Other", Some("t1"), &h2, counting(&n)).await.unwrap();
        run(&db, "Op", Some("t2"), &h2, counting(&n)).await.unwrap();
        run(&db, "Op", None, &h2, counting(&n)).await.unwrap();
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn expired_tokens_are_forgotten() {
        let (_d, db) = db().await;
        let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = params_hash(&[("P", "one")]);
        run(&db, "Op", Some("t"), &h, counting(&n)).await.unwrap();
        sqlx::query("update client_token set created_at = created_at - $1")
            .bind(TOKEN_TTL_MS + 1)
            .execute(&db.pool)
            .await
            .unwrap();
        let h2 = params_hash(&[("P", "two")]);
        // Past 8 hours the token is free again, even with other parameters.
        run(&db, "Op", Some("t"), &h2, counting(&n)).await.unwrap();
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(purge_expired(&db).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn failed_work_records_nothing() {
        let (_d, db) = db().await;
        let h = params_hash(&[("P", "one")]);
        let err = run(&db, "Op", Some("t"), &h, |_c| Box::pin(async { Err(ApiError::Validation("no".into())) }))
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::Validation(_)));
        let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        run(&db, "Op", Some("t"), &h, counting(&n)).await.unwrap();
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
