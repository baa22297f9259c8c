//! Many Vigil processes on one database: the process registry (`vigil_node`), the checks that keep a process
//! from starting where it cannot work, and change counters (`cluster_event`) that every process polls so that
//! what one replica changes — hosted models, thresholds, access keys — reaches the others within a second or two.
//!
//! The embedded default (one `vigil serve`, SQLite, a local folder) registers itself too and meets no check.

use crate::db::{now_ms, BackendKind, Db};
use std::collections::HashMap;
use std::time::Duration;

/// How often a process renews its registration.
pub const HEARTBEAT: Duration = Duration::from_secs(3);
/// A process whose registration is older than this is taken for gone (killed, or its host lost).
pub const LIVE_WITHIN: Duration = Duration::from_secs(15);

/// What a process does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `vigil serve`: the API, the console, hosting and the embedded workers.
    All,
    /// `vigil serve --no-worker`: an API replica (the API, the console, hosting).
    Api,
    /// `vigil worker`: background jobs only.
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }

    /// Whether it answers the API (and so hosts models).
    pub fn serves_api(self) -> bool {
        self != Role::Worker
    }

    /// Whether it runs background jobs.
    pub fn runs_jobs(self) -> bool {
        self != Role::Api
    }
}

/// This process in the registry.
#[derive(Clone, Debug)]
pub struct Node {
    pub id: String,
    pub host: String,
    pub role: Role,
}

/// The machine's host name: the setting, else the kernel's.
pub fn host_name(configured: Option<&str>) -> String {
    if let Some(h) = configured.map(str::trim).filter(|h| !h.is_empty()) {
        return h.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// A live process of the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub id: String,
    pub host: String,
    pub role: String,
    pub blob_store: String,
}

/// The processes that renewed their registration lately.
pub async fn live(db: &Db) -> Result<Vec<Peer>, sqlx::Error> {
    let rows: Vec<(String, String, String, String)> =
        sqlx::query_as("select id, host, role, blob_store from vigil_node where heartbeat_at > $1 order by started_at")
            .bind(now_ms() - LIVE_WITHIN.as_millis() as i64)
            .fetch_all(&db.pool)
            .await?;
    Ok(rows.into_iter().map(|(id, host, role, blob_store)| Peer { id, host, role, blob_store }).collect())
}

/// Why a process may not start beside `peers`, if it may not.
pub fn refusal(kind: BackendKind, host: &str, blob_store: &str, blobs_shared: bool, peers: &[Peer]) -> Option<String> {
    for p in peers {
        if p.host != host && kind == BackendKind::Sqlite {
            return Some(format!(
                "a Vigil process on host {} ({}) uses this SQLite database, and this is host {host}: SQLite cannot be shared \
                 between hosts. Use PostgreSQL (DATABASE_URL=postgres://...) for processes on several hosts.",
                p.host, p.role
            ));
        }
        if p.host != host && !blobs_shared {
            return Some(format!(
                "a Vigil process on host {} ({}) shares this database, and this is host {host}, but the blob store is a local \
                 folder ({blob_store}) that the other host cannot read. Set VIGIL_BLOB_STORE=s3://bucket/prefix on every process.",
                p.host, p.role
            ));
        }
        if p.blob_store != blob_store {
            return Some(format!(
                "a Vigil process on host {} ({}) keeps its blobs in {}, and this one in {blob_store}: every process of a \
                 deployment must use the same blob store (VIGIL_BLOB_STORE).",
                p.host, p.role, p.blob_store
            ));
        }
    }
    None
}

/// Checks that this process can work beside the live ones, then registers it. Refuses with the reason.
pub async fn register(db: &Db, role: Role, host: &str, blob_store: &str, blobs_shared: bool, addr: Option<String>) -> anyhow::Result<Node> {
    let peers = live(db).await?;
    if let Some(why) = refusal(db.kind, host, blob_store, blobs_shared, &peers) {
        anyhow::bail!("refusing to start as {}: {why}", role.as_str());
    }
    let id = hex::encode(rand::random::<[u8; 8]>());
    let now = now_ms();
    sqlx::query(
        "insert into vigil_node (id, host, role, blob_store, addr, started_at, heartbeat_at, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $6, $6, $6)",
    )
    .bind(&id)
    .bind(host)
    .bind(role.as_str())
    .bind(blob_store)
    .bind(addr)
    .bind(now)
    .execute(&db.pool)
    .await?;
    // Registrations of processes gone for a day are of no use to anyone.
    sqlx::query("delete from vigil_node where heartbeat_at < $1").bind(now - 24 * 3_600_000).execute(&db.pool).await?;
    Ok(Node { id, host: host.to_string(), role })
}

/// Renews the registration every [`HEARTBEAT`] for the life of the process.
pub fn spawn_heartbeat(db: Db, node: Node) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        loop {
            tick.tick().await;
            let now = now_ms();
            let r = sqlx::query("update vigil_node set heartbeat_at = $1, updated_at = $1 where id = $2").bind(now).bind(&node.id).execute(&db.pool).await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not renew this process's registration");
            }
        }
    });
}

/// Takes this process out of the registry (a clean stop).
pub async fn deregister(db: &Db, node: &Node) {
    let _ = sqlx::query("delete from vigil_node where id = $1").bind(&node.id).execute(&db.pool).await;
}

/// Tells every process that something of `topic` changed (in the caller's connection or transaction).
pub async fn bump(conn: &mut sqlx::AnyConnection, topic: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into cluster_event (topic, seq, updated_at) values ($1, 1, $2) \
         on conflict (topic) do update set seq = cluster_event.seq + 1, updated_at = excluded.updated_at",
    )
    .bind(topic)
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every topic's counter.
pub async fn counters(db: &Db) -> Result<HashMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as("select topic, seq from cluster_event").fetch_all(&db.pool).await?;
    Ok(rows.into_iter().collect())
}

/// A value every process must agree on: the first process records it; a later one with another value is
/// refused. `check` says whether a recorded value agrees with this process's.
pub async fn agree(db: &Db, name: &str, ours: &str, check: impl Fn(&str) -> bool) -> anyhow::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as("select value from cluster_setting where name = $1").bind(name).fetch_optional(&db.pool).await?;
    match row {
        Some((v,)) => Ok(check(&v)),
        None => {
            sqlx::query("insert into cluster_setting (name, value, updated_at) values ($1, $2, $3) on conflict (name) do nothing")
                .bind(name)
                .bind(ours)
                .bind(now_ms())
                .execute(&db.pool)
                .await?;
            let (v,): (String,) = sqlx::query_as("select value from cluster_setting where name = $1").bind(name).fetch_one(&db.pool).await?;
            Ok(check(&v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(host: &str, store: &str) -> Peer {
        Peer { id: "x".into(), host: host.into(), role: "worker".into(), blob_store: store.into() }
    }

    #[test]
    fn processes_refuse_what_cannot_work() {
        let local = "local:/srv/vigil/data/blobs";
        let s3 = "s3://vigil-blobs/";
        // One host: anything goes, SQLite and a local folder included.
        assert_eq!(refusal(BackendKind::Sqlite, "a", local, false, &[peer("a", local)]), None);
        // SQLite across hosts: never.
        assert!(refusal(BackendKind::Sqlite, "b", s3, true, &[peer("a", s3)]).unwrap().contains("SQLite cannot be shared"));
        // A local blob store across hosts: never.
        assert!(refusal(BackendKind::Postgres, "b", local, false, &[peer("a", local)]).unwrap().contains("VIGIL_BLOB_STORE=s3://"));
        // Two blob stores: never.
        assert!(refusal(BackendKind::Postgres, "a", s3, true, &[peer("a", "s3://other/")]).unwrap().contains("same blob store"));
        // PostgreSQL and one S3 store across hosts: yes.
        assert_eq!(refusal(BackendKind::Postgres, "b", s3, true, &[peer("a", s3), peer("c", s3)]), None);
    }
}
