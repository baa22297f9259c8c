//! The database: one sqlx `Any` pool over SQLite (embedded default) or PostgreSQL, the same migrations and
//! queries for both. Queries use `$N` placeholders, which both backends accept, and store times as
//! milliseconds since the Unix epoch in `bigint` columns.

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::AnyPool;
use std::path::Path;

/// Which SQL server is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

/// The database: a pool and the kind of server behind it.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub kind: BackendKind,
}

impl Db {
    /// Connects (creating a SQLite file and its directory if needed) and applies the migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, None).await
    }

    /// [`Db::connect`] with at most `max` pooled connections (default: 8 on SQLite, 16 on PostgreSQL).
    pub async fn connect_with(url: &str, max: Option<u32>) -> anyhow::Result<Self> {
        install_default_drivers();
        let kind = if url.starts_with("sqlite:") {
            BackendKind::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            BackendKind::Postgres
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres:// (got {url:?})");
        };
        let url = match kind {
            BackendKind::Sqlite => sqlite_url(url)?,
            BackendKind::Postgres => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max.unwrap_or(if kind == BackendKind::Sqlite { 8 } else { 16 }).max(2))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if kind == BackendKind::Sqlite {
                        // LIKE is case-sensitive on PostgreSQL; make SQLite agree (sourceRefContains).
                        sqlx::Executor::execute(&mut *conn, "pragma case_sensitive_like = true").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("connecting to the database at {}", redact(&url)))?;
        if kind == BackendKind::Sqlite {
            // WAL lets readers run while a writer commits; the setting is stored in the file.
            sqlx::query("pragma journal_mode = wal").execute(&pool).await?;
        }
        // Several processes may start at once: sqlx takes a lock for the run (an advisory lock on PostgreSQL),
        // so each migration is applied once, by one of them. A process older than the database (one replica
        // not yet upgraded, restarting) accepts migrations it does not know: they only ever add.
        let mut migrator = sqlx::migrate!("../migrations");
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await.context("applying migrations")?;
        Ok(Db { pool, kind })
    }
}

impl Db {
    /// Starts a transaction that will write. On SQLite it takes the write lock up front (`begin immediate`):
    /// a deferred transaction that reads and then writes fails at once with "database is locked" when another
    /// writer got in between, whereas an immediate one waits its turn (busy timeout).
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.kind {
            BackendKind::Sqlite => self.pool.begin_with("begin immediate").await,
            BackendKind::Postgres => self.pool.begin().await,
        }
    }
}

/// Makes sure the SQLite file's directory exists and asks sqlx to create the file.
fn sqlite_url(url: &str) -> anyhow::Result<String> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(url.to_string());
    }
    if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Milliseconds since the Unix epoch, the unit of every time column.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// True when a query failed because a unique constraint was violated (a concurrent insert won).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://data/v.db"), "sqlite://data/v.db");
    }

    #[test]
    fn sqlite_urls_create_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/v.db");
        let url = sqlite_url(&format!("sqlite://{}", p.display())).unwrap();
        assert!(url.ends_with("?mode=rwc"));
        assert!(dir.path().join("a/b").is_dir());
        assert_eq!(sqlite_url("sqlite://x.db?mode=ro").unwrap(), "sqlite://x.db?mode=ro");
    }
}
