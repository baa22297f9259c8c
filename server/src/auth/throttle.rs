//! Failed sign-ins slow the next ones down, per user name and per client address: after a few failures each
//! further attempt must wait a delay that doubles with every failure (up to a cap), and attempts made during the
//! wait are refused without checking the password — so a guesser gets a handful of tries, then one every few
//! minutes, whatever the number of connections. A success clears the user's count; counts fade after a quiet
//! quarter of an hour. Counted in the database (`signin_failure`), so every API replica behind a load balancer
//! enforces the same counts.

use crate::db::{now_ms, Db};
use std::time::Duration;

/// Failures allowed for one user name without any delay.
pub const FREE_FAILURES: u32 = 5;
/// Failures allowed from one address without any delay: more, since many users may share one (a proxy, a
/// plant's NAT), and a guesser there still meets each name's own limit.
pub const FREE_FAILURES_PER_ADDRESS: u32 = 20;
/// Longest wait between attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(300);
/// A count with no failure for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// The throttle on a database.
pub struct SignInThrottle<'a> {
    db: &'a Db,
}

/// The delay after `failures` failures of which `free` are allowed: none for those, then 1 s, 2 s, 4 s, … up
/// to `MAX_DELAY`.
pub fn delay_after(failures: u32, free: u32) -> Duration {
    if failures < free {
        return Duration::ZERO;
    }
    let exp = (failures - free).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_DELAY)
}

/// How long to wait still, for a count of `failures` whose last failure was at `last_ms`.
pub fn wait_for(key: &str, failures: i64, last_ms: i64, now_ms: i64) -> Duration {
    if now_ms - last_ms >= FORGET_AFTER.as_millis() as i64 {
        return Duration::ZERO;
    }
    let free = if key.starts_with("addr:") { FREE_FAILURES_PER_ADDRESS } else { FREE_FAILURES };
    let until = last_ms + delay_after(failures.clamp(0, u32::MAX as i64) as u32, free).as_millis() as i64;
    Duration::from_millis((until - now_ms).max(0) as u64)
}

fn keys(name: &str, addr: &str) -> [String; 2] {
    [format!("user:{}", name.trim().to_lowercase()), format!("addr:{addr}")]
}

impl<'a> SignInThrottle<'a> {
    pub fn new(db: &'a Db) -> Self {
        SignInThrottle { db }
    }

    /// How long the caller must still wait before an attempt for `name` from `addr` is checked; zero when it
    /// may go ahead now.
    pub async fn wait(&self, name: &str, addr: &str) -> Result<Duration, sqlx::Error> {
        let [user, address] = keys(name, addr);
        let rows: Vec<(String, i64, i64)> = sqlx::query_as("select key, failures, last_at from signin_failure where key = $1 or key = $2")
            .bind(&user)
            .bind(&address)
            .fetch_all(&self.db.pool)
            .await?;
        let now = now_ms();
        Ok(rows.iter().map(|(k, f, last)| wait_for(k, *f, *last, now)).max().unwrap_or(Duration::ZERO))
    }

    /// Counts a failed attempt against the name and the address.
    pub async fn failed(&self, name: &str, addr: &str) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let forgotten = now - FORGET_AFTER.as_millis() as i64;
        for k in keys(name, addr) {
            sqlx::query(
                "insert into signin_failure (key, failures, last_at) values ($1, 1, $2) \
                 on conflict (key) do update set failures = case when signin_failure.last_at < $3 then 1 else signin_failure.failures + 1 end, \
                 last_at = excluded.last_at",
            )
            .bind(&k)
            .bind(now)
            .bind(forgotten)
            .execute(&self.db.pool)
            .await?;
        }
        // Now and then, counts gone quiet are dropped (a flood of distinct names or addresses stays bounded).
        if rand::random::<u8>() == 0 {
            sqlx::query("delete from signin_failure where last_at < $1").bind(forgotten).execute(&self.db.pool).await?;
        }
        Ok(())
    }

    /// A successful sign-in clears the user's count (the address keeps its own).
    pub async fn succeeded(&self, name: &str) -> Result<(), sqlx::Error> {
        let [user, _] = keys(name, "");
        sqlx::query("delete from signin_failure where key = $1").bind(user).execute(&self.db.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_cap() {
        assert_eq!(delay_after(0, 5), Duration::ZERO);
        assert_eq!(delay_after(4, 5), Duration::ZERO);
        assert_eq!(delay_after(5, 5), Duration::from_secs(1));
        assert_eq!(delay_after(8, 5), Duration::from_secs(8));
        assert_eq!(delay_after(1000, 5), MAX_DELAY);
    }

    #[test]
    fn per_name_and_per_address() {
        let now = 10_000_000;
        // The name is slowed down after its free failures; an address only after more.
        assert_eq!(wait_for("user:admin", FREE_FAILURES as i64 - 1, now, now), Duration::ZERO);
        assert_eq!(wait_for("user:admin", FREE_FAILURES as i64, now, now), Duration::from_secs(1));
        assert_eq!(wait_for("addr:10.0.0.1", FREE_FAILURES as i64, now, now), Duration::ZERO);
        assert_eq!(wait_for("addr:10.0.0.1", FREE_FAILURES_PER_ADDRESS as i64, now, now), Duration::from_secs(1));
        // The wait runs from the last failure; quiet for long enough, the count is forgotten.
        assert_eq!(wait_for("user:admin", FREE_FAILURES as i64 + 3, now, now + 3_000), Duration::from_secs(5));
        assert_eq!(wait_for("user:admin", 1000, now, now + FORGET_AFTER.as_millis() as i64), Duration::ZERO);
        assert_eq!(keys(" Admin ", "1.2.3.4"), ["user:admin".to_string(), "addr:1.2.3.4".to_string()]);
    }
}
