//! Console users and their sessions: names, Argon2id password hashes, administrators; a session is a random
//! token in an HttpOnly cookie whose SHA-256 is the row's id (a stolen database does not yield live cookies).

use crate::db::now_ms;
pub use app::api::auth::Role;
use sqlx::AnyConnection;

/// How long a session lasts after sign-in.
pub const SESSION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// A session unused for this long ends (a browser left signed in on a shared line-side PC).
pub const SESSION_IDLE_MS: i64 = 12 * 3600 * 1000;
/// A session's last use is written at most this often.
const SESSION_TOUCH_MS: i64 = 60 * 1000;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A console user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub is_admin: bool,
    pub role: Role,
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

/// The password policy for a password a person chooses: 8 to 1,024 characters, not the user name (nor the name
/// backwards), not one of the most common leaked passwords (`common-passwords.txt`), and not one character
/// repeated.
/// (Passwords set by the operator's configuration, `VIGIL_ADMIN_PASSWORD`, are the operator's business.)
pub fn validate_password(name: &str, password: &str) -> Result<(), UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > 1024 {
        return Err(UserError::Invalid(format!("A password has at least {MIN_PASSWORD_CHARS} characters.")));
    }
    let lower = password.to_lowercase();
    let name = name.trim().to_lowercase();
    let backwards: String = name.chars().rev().collect();
    if !name.is_empty() && (lower == name || lower == backwards) {
        return Err(UserError::Invalid("A password must not be the user name.".into()));
    }
    if is_common_password(&lower) {
        return Err(UserError::Invalid("That password is one of the most common ones in leaked password lists: choose another.".into()));
    }
    let mut chars = lower.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err(UserError::Invalid("A password is more than one character repeated.".into()));
    }
    Ok(())
}

fn is_common_password(lower: &str) -> bool {
    include_str!("common-passwords.txt").lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).any(|l| l.to_lowercase() == lower)
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
pub async fn create(conn: &mut AnyConnection, name: &str, password_hash: &str, role: Role) -> Result<User, UserError> {
    validate_name(name)?;
    let id = hex::encode(rand::random::<[u8; 16]>());
    let now = now_ms();
    let is_admin = role == Role::Administrator;
    let r = sqlx::query(
        "insert into app_user (id, name, password_hash, is_admin, role, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&id)
    .bind(name)
    .bind(password_hash)
    .bind(i64::from(is_admin))
    .bind(role.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await;
    match r {
        Ok(_) => Ok(User { id, name: name.to_string(), is_admin, role, created_at: now }),
        Err(e) if crate::db::is_unique_violation(&e) => Err(UserError::Exists(name.to_string())),
        Err(e) => Err(e.into()),
    }
}

type UserRow = (String, String, i64, Option<String>, i64);

/// The role column, or for a row written before roles existed, what `is_admin` meant then. An unknown stored
/// role reads as viewer: never more rights than the row clearly gives.
pub(super) fn role_of(is_admin: i64, role: Option<&str>) -> Role {
    match role {
        Some(r) => Role::parse(r).unwrap_or(Role::Viewer),
        None if is_admin != 0 => Role::Administrator,
        None => Role::Editor,
    }
}

fn user((id, name, is_admin, role, created_at): UserRow) -> User {
    let role = role_of(is_admin, role.as_deref());
    User { id, name, is_admin: role == Role::Administrator, role, created_at }
}

pub async fn list(conn: &mut AnyConnection) -> Result<Vec<User>, sqlx::Error> {
    let rows: Vec<UserRow> =
        sqlx::query_as("select id, name, is_admin, role, created_at from app_user order by name").fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().map(user).collect())
}

/// A user and their password hash, by name.
pub async fn find_with_hash(conn: &mut AnyConnection, name: &str) -> Result<Option<(User, String)>, sqlx::Error> {
    let row: Option<(String, String, i64, Option<String>, i64, String)> =
        sqlx::query_as("select id, name, is_admin, role, created_at, password_hash from app_user where name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(id, name, a, r, c, hash)| (user((id, name, a, r, c)), hash)))
}

/// Changes a user's role; refuses to take the role from the last administrator.
pub async fn set_role(conn: &mut AnyConnection, name: &str, role: Role) -> Result<User, UserError> {
    let (target, _) = find_with_hash(conn, name).await?.ok_or_else(|| UserError::NotFound(name.to_string()))?;
    if target.is_admin && role != Role::Administrator && admin_count(conn).await? <= 1 {
        return Err(UserError::Refused("The last administrator keeps that role: make another user an administrator first.".into()));
    }
    sqlx::query("update app_user set role = $1, is_admin = $2, updated_at = $3 where id = $4")
        .bind(role.as_str())
        .bind(i64::from(role == Role::Administrator))
        .bind(now_ms())
        .bind(&target.id)
        .execute(&mut *conn)
        .await?;
    Ok(User { role, is_admin: role == Role::Administrator, ..target })
}

async fn admin_count(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    let (admins,): (i64,) = sqlx::query_as("select count(*) from app_user where is_admin <> 0").fetch_one(&mut *conn).await?;
    Ok(admins)
}

pub async fn set_password_hash(conn: &mut AnyConnection, user_id: &str, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update app_user set password_hash = $1, updated_at = $2 where id = $3").bind(hash).bind(now_ms()).bind(user_id).execute(&mut *conn).await?;
    Ok(())
}

/// Deletes a user with their sessions and access keys; refuses to remove the last administrator.
pub async fn delete(conn: &mut AnyConnection, name: &str) -> Result<Vec<String>, UserError> {
    let (target, _) = find_with_hash(conn, name).await?.ok_or_else(|| UserError::NotFound(name.to_string()))?;
    if target.is_admin && admin_count(conn).await? <= 1 {
        return Err(UserError::Refused("The last administrator cannot be removed.".into()));
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
    let now = now_ms();
    let id = session_id(token);
    let row: Option<(String, String, i64, Option<String>, i64, i64)> = sqlx::query_as(
        "select u.id, u.name, u.is_admin, u.role, u.created_at, s.updated_at from session s join app_user u on u.id = s.user_id \
         where s.id = $1 and s.expires_at > $2 and s.updated_at > $3",
    )
    .bind(&id)
    .bind(now)
    .bind(now - SESSION_IDLE_MS)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((uid, name, is_admin, role, created_at, used_at)) = row else { return Ok(None) };
    // The session's last use (`updated_at`) keeps it from idling out.
    if now - used_at > SESSION_TOUCH_MS {
        sqlx::query("update session set updated_at = $1 where id = $2").bind(now).bind(&id).execute(&mut *conn).await?;
    }
    Ok(Some(user((uid, name, is_admin, role, created_at))))
}

pub async fn delete_session(conn: &mut AnyConnection, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from session where id = $1").bind(session_id(token)).execute(&mut *conn).await?;
    Ok(())
}

/// Ends every session of a user but the one of `keep` (a cookie token): a password change, "sign out
/// everywhere else"; returns how many ended.
pub async fn end_other_sessions(conn: &mut AnyConnection, user_id: &str, keep: Option<&str>) -> Result<u64, sqlx::Error> {
    let keep = keep.map(session_id).unwrap_or_default();
    Ok(sqlx::query("delete from session where user_id = $1 and id <> $2").bind(user_id).bind(keep).execute(&mut *conn).await?.rows_affected())
}

/// Ends every session of a user (a password reset); returns how many there were.
pub async fn end_sessions(conn: &mut AnyConnection, user_id: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("delete from session where user_id = $1").bind(user_id).execute(&mut *conn).await?.rows_affected())
}

pub async fn purge_expired_sessions(conn: &mut AnyConnection) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("delete from session where expires_at <= $1").bind(now_ms()).execute(&mut *conn).await?.rows_affected())
}

/// The file the generated first password is written to, inside the data directory.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password.txt";

/// At first start (no users yet): creates the administrator `admin`, with `password` or a generated one. A
/// generated password is written once to `DATA_DIR/admin-password.txt`, readable only by the server's user, and
/// shown as a block on the terminal that started the server when that is a terminal — never in the log, which
/// is often shipped elsewhere.
pub async fn ensure_admin(db: &crate::db::Db, password: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<()> {
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
    match create(&mut conn, "admin", &hash, Role::Administrator).await {
        Ok(_) => {}
        // Another server sharing the database created it first.
        Err(UserError::Exists(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if !generated {
        tracing::info!("created the console administrator `admin` with the password from VIGIL_ADMIN_PASSWORD");
        return Ok(());
    }
    let file = data_dir.join(ADMIN_PASSWORD_FILE);
    let written = write_private(&file, &format!("{password}\n"));
    match &written {
        Ok(()) => tracing::warn!(
            file = %file.display(),
            "created the console administrator `admin`; its generated password is in the file (readable only by this user): \
             sign in, then delete the file. Lost it? `vigil admin reset-password admin`"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "created the console administrator `admin`, but could not write its generated password to {}; run `vigil admin reset-password admin` for a new one",
            file.display()
        ),
    }
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        // A person is looking at this terminal: show it where they look (a terminal is not a log).
        eprintln!(
            "\n  ┌──────────────────────────────────────────────────────────────────────\n  \
             │ Sign in to the Vigil console as  admin  with the password  {password}\n  \
             │ (also in {}; lost it? run `vigil admin reset-password admin`)\n  \
             └──────────────────────────────────────────────────────────────────────\n",
            file.display()
        );
    }
    Ok(())
}

/// Writes a file only the server's user can read (mode 0600 from its creation on Unix).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_policy() {
        assert!(validate_password("ann", "correct horse battery").is_ok());
        assert!(validate_password("ann", "short").is_err());
        assert!(validate_password("operator", "Operator").is_err());
        assert!(validate_password("operator", "rotarepo").is_err());
        assert!(validate_password("operator", "my-operator-pw").is_ok());
        assert!(validate_password("ann", "Password123").is_err());
        assert!(validate_password("ann", "QWERTYUIOP").is_err());
        assert!(validate_password("ann", "aaaaaaaaaaaa").is_err());
        assert!(validate_password("operator-17", "operator-password").is_ok());
    }
}
