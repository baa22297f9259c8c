//! The audit log: every change made through the API or the console, and every call a policy or role refused —
//! who (user name or key id), through what, which action on which resource, when, and how it ended. Written off
//! the request's path (a failed write is logged, never fails the call); never holds a secret.

use crate::db::{now_ms, Db};
use sqlx::AnyConnection;

/// One entry to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `user` or `key`.
    pub principal_kind: &'static str,
    pub principal: String,
    /// `api` or `console`.
    pub via: &'static str,
    pub action: String,
    pub resource: String,
    /// True when a policy or role refused the call.
    pub denied: bool,
    pub status: u16,
}

/// `denied`, `allowed` (2xx/3xx) or `failed` (allowed, answered with an error).
pub fn outcome(denied: bool, status: u16) -> &'static str {
    if denied {
        "denied"
    } else if status < 400 {
        "allowed"
    } else {
        "failed"
    }
}

/// Records an event in the background.
pub fn record(db: &Db, event: Event) {
    let db = db.clone();
    tokio::spawn(async move {
        let r = async {
            let mut conn = db.pool.acquire().await?;
            insert(&mut conn, &event, now_ms()).await
        }
        .await;
        if let Err(e) = r {
            tracing::error!(error = %e, action = %event.action, principal = %event.principal, "could not write an audit event");
        }
    });
}

/// Writes an event now.
pub async fn insert(conn: &mut AnyConnection, e: &Event, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into audit_event (id, at, principal_kind, principal, via, action, resource, outcome, status, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $2, $2)",
    )
    .bind(hex::encode(rand::random::<[u8; 12]>()))
    .bind(at)
    .bind(e.principal_kind)
    .bind(truncate(&e.principal, 200))
    .bind(e.via)
    .bind(truncate(&e.action, 200))
    .bind(truncate(&e.resource, 2048))
    .bind(outcome(e.denied, e.status))
    .bind(i32::from(e.status))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A stored event, as the Admin page and the export show it.
pub use app::api::auth::AuditView;

/// What to list: `principal` and `action` match as substrings (case-insensitive), `outcome` exactly; events
/// strictly before `before` (ms), newest first, at most `limit`.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub principal: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub before: Option<i64>,
    pub limit: i64,
}

pub async fn list(conn: &mut AnyConnection, f: &Filter) -> Result<Vec<AuditView>, sqlx::Error> {
    let like = |s: &Option<String>| {
        let s = s.as_deref().map(str::trim).unwrap_or("").to_lowercase();
        // LIKE's own wildcards in what the user typed match themselves.
        format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
    };
    type Row = (i64, String, String, String, String, String, String, i32);
    let rows: Vec<Row> = sqlx::query_as(
        "select at, principal_kind, principal, via, action, resource, outcome, status from audit_event \
         where lower(principal) like $1 escape '\\' and lower(action) like $2 escape '\\' and ($3 = '' or outcome = $3) and at < $4 \
         order by at desc, id desc limit $5",
    )
    .bind(like(&f.principal))
    .bind(like(&f.action))
    .bind(f.outcome.as_deref().map(str::trim).unwrap_or(""))
    .bind(f.before.unwrap_or(i64::MAX))
    .bind(f.limit.clamp(1, 1000))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(at_ms, principal_kind, principal, via, action, resource, outcome, status)| AuditView {
            at_ms,
            principal_kind,
            principal,
            via,
            action,
            resource,
            outcome,
            status,
        })
        .collect())
}
