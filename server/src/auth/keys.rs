//! API access keys: an id and a secret per key, issued to a console user, the secret shown once and stored
//! sealed with the server key (SigV4 verification needs it in the clear, so it cannot be a one-way hash).

use super::secretbox::SecretBox;
use crate::db::now_ms;
use sqlx::AnyConnection;

/// A key as the console lists it (never with its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub user_id: String,
    pub user_name: String,
    pub description: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// The key's policy document; `None` for a key with every right of its owner's role.
    pub policy: Option<String>,
}

/// What SigV4 verification needs of a key: its secret, its owner and what it may do.
#[derive(Clone)]
pub struct StoredKey {
    pub secret: String,
    pub user_id: String,
    pub owner_role: super::users::Role,
    pub policy: Option<String>,
}

/// Most keys one user may hold (AWS allows two per IAM user; Vigil is more generous for automation).
pub const MAX_KEYS_PER_USER: i64 = 10;

fn purpose(id: &str) -> String {
    format!("access-key:{id}")
}

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_string(alphabet: &[u8], n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect()
}

/// A new key id (`VKIA` and 16 base32 characters, 20 in all, like AWS's) and a 40-character secret.
pub fn generate() -> (String, String) {
    (format!("VKIA{}", random_string(ID_ALPHABET, 16)), random_string(SECRET_ALPHABET, 40))
}

/// Creates a key for a user with a policy document (already checked with `policy::Policy::parse`; `None`: every
/// right of the owner's role); returns (id, secret). The secret is not kept anywhere readable.
pub async fn create(
    conn: &mut AnyConnection,
    sealer: &SecretBox,
    user_id: &str,
    description: &str,
    policy: Option<&str>,
) -> Result<(String, String), sqlx::Error> {
    let (id, secret) = generate();
    let now = now_ms();
    sqlx::query(
        "insert into access_key (id, user_id, secret, description, policy, last_used_at, created_at, updated_at) values ($1, $2, $3, $4, $5, null, $6, $6)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(sealer.seal(&purpose(&id), &secret))
    .bind(description)
    .bind(policy)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok((id, secret))
}

/// The secret, owner, owner's role and policy of a key, or `None` if there is no such key.
pub async fn secret(conn: &mut AnyConnection, sealer: &SecretBox, id: &str) -> anyhow::Result<Option<StoredKey>> {
    let row: Option<(String, String, i64, Option<String>, Option<String>)> = sqlx::query_as(
        "select k.secret, k.user_id, u.is_admin, u.role, k.policy from access_key k join app_user u on u.id = k.user_id where k.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((sealed, user_id, is_admin, role, policy)) = row else { return Ok(None) };
    let secret = sealer.open(&purpose(id), &sealed)?;
    Ok(Some(StoredKey { secret, user_id, owner_role: super::users::role_of(is_admin, role.as_deref()), policy }))
}

/// Keys, with their owners' names: all of them, or one user's.
pub async fn list(conn: &mut AnyConnection, user_id: Option<&str>) -> Result<Vec<AccessKey>, sqlx::Error> {
    type Row = (String, String, String, String, i64, Option<i64>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "select k.id, k.user_id, u.name, k.description, k.created_at, k.last_used_at, k.policy from access_key k join app_user u on u.id = k.user_id \
         where $1 = '' or k.user_id = $1 order by k.created_at, k.id",
    )
    .bind(user_id.unwrap_or(""))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, user_id, user_name, description, created_at, last_used_at, policy)| AccessKey {
            id,
            user_id,
            user_name,
            description,
            created_at,
            last_used_at,
            policy,
        })
        .collect())
}

/// How many keys a user holds.
pub async fn count_for_user(conn: &mut AnyConnection, user_id: &str) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("select count(*) from access_key where user_id = $1").bind(user_id).fetch_one(&mut *conn).await?;
    Ok(n)
}

/// Deletes a key; `owner` limits it to one user's keys. True if one was deleted.
pub async fn revoke(conn: &mut AnyConnection, id: &str, owner: Option<&str>) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("delete from access_key where id = $1 and ($2 = '' or user_id = $2)")
        .bind(id)
        .bind(owner.unwrap_or(""))
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Records that a key was used (at most about once a minute per key, to spare the database).
pub async fn touch(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query("update access_key set last_used_at = $1 where id = $2 and (last_used_at is null or last_used_at < $3)")
        .bind(now)
        .bind(id)
        .bind(now - 60_000)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// How many keys exist.
pub async fn count(conn: &mut AnyConnection) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("select count(*) from access_key").fetch_one(&mut *conn).await?;
    Ok(n)
}
