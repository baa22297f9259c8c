//! Console users and their sessions: names, Argon2id password hashes, administrators; a session is a random
//! token in an HttpOnly cookie whose SHA-256 is the row's id (a stolen database does not yield live cookies).

use crate::db::now_ms;
use sqlx::AnyConnection;

/// How long a session lasts after sign-in.
pub const SESSION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A console user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub is_admin: bool,
    pub created_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error("A user named {0} already exists.")]
    Exists(String),
    #[error("No user named {0}.")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A user name: 1–64 letters, digits, `.`, `_`, `-` or `@`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), UserError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(UserError::Invalid("A user name has 1 to 64 letters, digits, '.', '_', '-' or '@', and starts with a letter or digit.".into()))
    }
}

pub fn validate_password(password: &str) -> Result<(), UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > 1024 {
        return Err(UserError::Invalid(format!("A password has at least {MIN_PASSWORD_CHARS} characters.")));
    }
    Ok(())
}

/// An Argon2id hash (PHC string) of a password. Slow on purpose: call from a blocking thread.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2::Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?.to_string())
}

/// Checks a password against a stored hash. Blocking.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash that no password matches, checked against when the user does not exist so that a wrong name and a
/// wrong password take the same time.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&hex::encode(rand::random::<[u8; 16]>())).unwrap_or_default())
}

/// A random password for a generated account: 20 characters without look-alikes.
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

pub async fn count(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("select count(*) from app_user").fetch_one(&mut *conn).await?;
    Ok(n)
}

/// Adds a user with an already computed password hash.
pub async fn create(conn: &mut AnyConnection, name: &str, password_hash: &str, is_admin: bool) -> Result<User, UserError> {
    validate_name(name)?;
    let id = hex::encode(rand::random::<[u8; 16]>());
    let now = now_ms();
    let r = sqlx::query("insert into app_user (id, name, password_hash, is_admin, created_at, updated_at) values ($1, $2, $3, $4, $5, $5)")
        .bind(&id)
        .bind(name)
        .bind(password_hash)
        .bind(i64::from(is_admin))
        .bind(now)
        .execute(&mut *conn)
        .await;
    match r {
        Ok(_) => Ok(User { id, name: name.to_string(), is_admin, created_at: now }),
        Err(e) if crate::db::is_unique_violation(&e) => Err(UserError::Exists(name.to_string())),
        Err(e) => Err(e.into()),
    }
}

type UserRow = (String, String, i64, i64);

fn user((id, name, is_admin, created_at): UserRow) -> User {
    User { id, name, is_admin: is_admin != 0, created_at }
}

pub async fn list(conn: &mut AnyConnection) -> Result<Vec<User>, sqlx::Error> {
    let rows: Vec<UserRow> =
        sqlx::query_as("select id, name, is_admin, created_at from app_user order by name").fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().map(user).collect())
}

/// A user and their password hash, by name.
pub async fn find_with_hash(conn: &mut AnyConnection, name: &str) -> Result<Option<(User, String)>, sqlx::Error> {
    let row: Option<(String, String, i64, i64, String)> =
        sqlx::query_as("select id, name, is_admin, created_at, password_hash from app_user where name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(id, name, a, c, hash)| (user((id, name, a, c)), hash)))
}

pub async fn set_password_hash(conn: &mut AnyConnection, user_id: &str, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update app_user set password_hash = $1, updated_at = $2 where id = $3").bind(hash).bind(now_ms()).bind(user_id).execute(&mut *conn).await?;
    Ok(())
}

/// Deletes a user with their sessions and access keys; refuses to remove the last administrator.
pub async fn delete(conn: &mut AnyConnection, name: &str) -> Result<Vec<String>, UserError> {
    let (target, _) = find_with_hash(conn, name).await?.ok_or_else(|| UserError::NotFound(name.to_string()))?;
    if target.is_admin {
        let (admins,): (i64,) = sqlx::query_as("select count(*) from app_user where is_admin <> 0").fetch_one(&mut *conn).await?;
        if admins <= 1 {
            return Err(UserError::Refused("The last administrator cannot be removed.".into()));
        }
    }
    let keys: Vec<(String,)> = sqlx::query_as("select id from access_key where user_id = $1").bind(&target.id).fetch_all(&mut *conn).await?;
    sqlx::query("delete from access_key where user_id = $1").bind(&target.id).execute(&mut *conn).await?;
    sqlx::query("delete from session where user_id = $1").bind(&target.id).execute(&mut *conn).await?;
    sqlx::query("delete from app_user where id = $1").bind(&target.id).execute(&mut *conn).await?;
    Ok(keys.into_iter().map(|(k,)| k).collect())
}

fn session_id(token: &str) -> String {
    super::sigv4::sha256_hex(token.as_bytes())
}

/// Opens a session; returns the cookie token.
pub async fn create_session(conn: &mut AnyConnection, user_id: &str) -> Result<String, sqlx::Error> {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let now = now_ms();
    sqlx::query("insert into session (id, user_id, expires_at, created_at, updated_at) values ($1, $2, $3, $4, $4)")
        .bind(session_id(&token))
        .bind(user_id)
        .bind(now + SESSION_TTL_MS)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(token)
}

/// The user of a live session.
pub async fn session_user(conn: &mut AnyConnection, token: &str) -> Result<Option<User>, sqlx::Error> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let row: Option<UserRow> = sqlx::query_as(
        "select u.id, u.name, u.is_admin, u.created_at from session s join app_user u on u.id = s.user_id where s.id = $1 and s.expires_at > $2",
    )
    .bind(session_id(token))
    .bind(now_ms())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(user))
}

pub async fn delete_session(conn: &mut AnyConnection, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from session where id = $1").bind(session_id(token)).execute(&mut *conn).await?;
    Ok(())
}

/// Ends every session of a user (a password reset); returns how many there were.
pub async fn end_sessions(conn: &mut AnyConnection, user_id: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("delete from session where user_id = $1").bind(user_id).execute(&mut *conn).await?.rows_affected())
}

pub async fn purge_expired_sessions(conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("delete from session where expires_at <= $1").bind(now_ms()).execute(&mut *conn).await?.rows_affected())
}

/// At first start (no users yet): creates the administrator `admin`, with `password` or a generated one that
/// is printed once in the log.
pub async fn ensure_admin(db: &crate::db::Db, password: Option<&str>) -> anyhow::Result<()> {
    let mut conn = db.pool.acquire().await?;
    if count(&mut conn).await? > 0 {
        return Ok(());
    }
    let (password, generated) = match password.filter(|p| !p.is_empty()) {
        Some(p) => (p.to_string(), false),
        None => (generate_password(), true),
    };
    let pw = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&pw)).await??;
    match create(&mut conn, "admin", &hash, true).await {
        Ok(_) => {}
        // Another server sharing the database created it first.
        Err(UserError::Exists(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if generated {
        // Printed once, on purpose: this is the only way to learn it. In the log, and as a block on the
        // terminal that started the server, where a new user is looking.
        tracing::warn!(
            "created the console administrator: user `admin`, password `{password}` (shown only now; sign in and add users on the Admin page, or set VIGIL_ADMIN_PASSWORD before the first start)"
        );
        eprintln!(
            "\n  ┌──────────────────────────────────────────────────────────────────────\n  \
             │ Sign in to the Vigil console as  admin  with the password  {password}\n  \
             │ (shown only now; lost it? run `vigil admin reset-password admin`)\n  \
             └──────────────────────────────────────────────────────────────────────\n"
        );
    } else {
        tracing::info!("created the console administrator `admin` with the password from VIGIL_ADMIN_PASSWORD");
    }
    Ok(())
}
