//! Who may call Vigil: API access keys checked with SigV4 (`sigv4`, `keys`), console users with Argon2
//! passwords and database sessions (`users`), and the server key that seals stored secrets (`secretbox`).
//! `Auth` is the handle request handlers use; the HTTP side (middleware, sign-in) lives in `http::auth`.

pub mod audit;
pub mod keys;
pub mod policy;
pub mod reset;
pub mod roles;
pub mod throttle;
pub mod secretbox;
pub mod sigv4;
pub mod users;

use crate::db::Db;
use secretbox::SecretBox;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a looked-up access key is trusted before it is read again. A key revoked or changed through another
/// process sharing the database stops working when this process sees the `keys` change counter move (about a
/// second, `models::hosting::spawn_sync`), and within this time at most; on the same process at once.
const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// The caller of an API request, once its signature has been verified (a request extension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiCaller {
    pub access_key_id: String,
    /// The user the key belongs to; `None` for the bootstrap key from the configuration.
    pub user_id: Option<String>,
    /// The owner's role (the bootstrap key is an administrator's): the most the key may do.
    pub role: users::Role,
    /// The key's own policy; `None`: every right of the role.
    pub policy: Option<Arc<policy::Policy>>,
}

impl ApiCaller {
    /// Whether the caller may perform `action` on `resource`: both the owner's role and the key's policy must
    /// allow it (an explicit Deny in either wins).
    pub fn decide(&self, action: &str, resource: &str) -> policy::Decision {
        let by_role = role_policy(self.role).evaluate(action, resource);
        if !by_role.allowed() {
            return by_role;
        }
        match &self.policy {
            None => by_role,
            Some(p) => p.evaluate(action, resource),
        }
    }
}

/// What a console role allows through the API: administrators and editors every action, viewers the
/// read-only preset.
pub fn role_policy(role: users::Role) -> &'static policy::Policy {
    use std::sync::OnceLock;
    static FULL: OnceLock<policy::Policy> = OnceLock::new();
    static READ: OnceLock<policy::Policy> = OnceLock::new();
    let (cell, preset) = match role {
        users::Role::Administrator | users::Role::Editor => (&FULL, policy::Preset::FullAccess),
        users::Role::Viewer => (&READ, policy::Preset::ReadOnly),
    };
    cell.get_or_init(|| policy::Policy::parse(&preset.document()).unwrap_or_else(|_| policy::Policy::deny_all()))
}

#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    sealer: SecretBox,
    bootstrap: Option<(String, String)>,
    cache: Mutex<HashMap<String, CachedKey>>,
}

struct CachedKey {
    fetched: Instant,
    /// `None`: no such key (cached too, so a flood of unknown keys does not reach the database each time).
    key: Option<KnownKey>,
    /// Derived signing keys per (date, region).
    signing: HashMap<(String, String), [u8; 32]>,
    /// When the key's `last_used_at` was last written by this server.
    touched: Option<Instant>,
}

#[derive(Clone)]
struct KnownKey {
    secret: String,
    user_id: Option<String>,
    role: users::Role,
    policy: Option<Arc<policy::Policy>>,
}

impl Auth {
    pub fn new(db: Db, sealer: SecretBox, bootstrap: Option<(String, String)>) -> Self {
        Auth { inner: Arc::new(Inner { db, sealer, bootstrap, cache: Mutex::new(HashMap::new()) }) }
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn sealer(&self) -> &SecretBox {
        &self.inner.sealer
    }

    /// Failed sign-ins per user name and client address, shared by every process on the database.
    pub fn sign_ins(&self) -> throttle::SignInThrottle<'_> {
        throttle::SignInThrottle::new(&self.inner.db)
    }

    /// The access key id of the configured bootstrap key, if any.
    pub fn bootstrap_key_id(&self) -> Option<&str> {
        self.inner.bootstrap.as_ref().map(|(id, _)| id.as_str())
    }

    /// The signing key of `access_key_id` for a date and region, and who owns the key; `None` for an
    /// unknown or revoked key. Signing keys are derived once per key, day and region.
    pub async fn signing_key(&self, access_key_id: &str, date: &str, region: &str) -> anyhow::Result<Option<([u8; 32], ApiCaller)>> {
        let fresh = {
            let cache = self.inner.cache.lock().unwrap();
            cache.get(access_key_id).is_some_and(|c| c.fetched.elapsed() < KEY_CACHE_TTL)
        };
        if !fresh {
            let key = self.lookup(access_key_id).await?;
            let mut cache = self.inner.cache.lock().unwrap();
            if cache.len() > 10_000 {
                cache.retain(|_, c| c.fetched.elapsed() < KEY_CACHE_TTL);
            }
            let touched = cache.get(access_key_id).and_then(|c| c.touched);
            cache.insert(access_key_id.to_string(), CachedKey { fetched: Instant::now(), key, signing: HashMap::new(), touched });
        }
        let mut cache = self.inner.cache.lock().unwrap();
        let Some(entry) = cache.get_mut(access_key_id) else { return Ok(None) };
        let Some(known) = entry.key.clone() else { return Ok(None) };
        let caller = ApiCaller {
            access_key_id: access_key_id.to_string(),
            user_id: known.user_id.clone(),
            role: known.role,
            policy: known.policy.clone(),
        };
        let slot = (date.to_string(), region.to_string());
        if let Some(k) = entry.signing.get(&slot) {
            return Ok(Some((*k, caller)));
        }
        let Some(k) = sigv4::signing_key(&known.secret, date, region) else { return Ok(None) };
        if entry.signing.len() > 64 {
            entry.signing.clear();
        }
        entry.signing.insert(slot, k);
        Ok(Some((k, caller)))
    }

    async fn lookup(&self, access_key_id: &str) -> anyhow::Result<Option<KnownKey>> {
        if let Some((id, secret)) = &self.inner.bootstrap {
            if id == access_key_id {
                return Ok(Some(KnownKey { secret: secret.clone(), user_id: None, role: users::Role::Administrator, policy: None }));
            }
        }
        let mut conn = self.inner.db.pool.acquire().await?;
        Ok(keys::secret(&mut conn, &self.inner.sealer, access_key_id).await?.map(|k| {
            // A stored policy was checked when the key was made; one that no longer parses allows nothing.
            let policy = k.policy.as_deref().map(|doc| {
                Arc::new(policy::Policy::parse(doc).unwrap_or_else(|e| {
                    tracing::error!(key = access_key_id, error = %e, "an access key's stored policy does not parse; the key may do nothing");
                    policy::Policy::deny_all()
                }))
            });
            KnownKey { secret: k.secret, user_id: Some(k.user_id), role: k.owner_role, policy }
        }))
    }

    /// True when the key's last use should be recorded now (about once a minute per key and server, so that
    /// API calls do not each write to the database).
    pub fn should_record_use(&self, access_key_id: &str) -> bool {
        let mut cache = self.inner.cache.lock().unwrap();
        match cache.get_mut(access_key_id) {
            Some(c) if c.touched.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) => {
                c.touched = Some(Instant::now());
                true
            }
            _ => false,
        }
    }

    /// Forgets a key at once (after it was revoked).
    pub fn forget(&self, access_key_id: &str) {
        self.inner.cache.lock().unwrap().remove(access_key_id);
    }

    /// Forgets every cached key (another process revoked or changed one: `cluster` topic `keys`).
    pub fn forget_all(&self) {
        self.inner.cache.lock().unwrap().clear();
    }

    /// Forgets every key of a user at once (after their role changed).
    pub fn forget_user(&self, user_id: &str) {
        self.inner.cache.lock().unwrap().retain(|_, c| c.key.as_ref().is_none_or(|k| k.user_id.as_deref() != Some(user_id)));
    }
}

/// At start-up: the server key (installed as the process key), the first administrator, and the `Auth` handle
/// with the bootstrap key from the configuration. Logs how to get in when no API key exists yet.
pub async fn setup(config: &crate::config::Config, db: &Db) -> anyhow::Result<Auth> {
    let sealer = SecretBox::load(config.secret_key.as_deref(), &config.data_dir)?;
    secretbox::install(&sealer);
    users::ensure_admin(db, config.admin_password.as_deref(), &config.data_dir).await?;
    let bootstrap = match (config.access_key_id.as_deref().map(str::trim), config.secret_access_key.as_deref()) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Some((id.to_string(), secret.to_string())),
        (None, None) => None,
        _ => anyhow::bail!("set both VIGIL_ACCESS_KEY_ID and VIGIL_SECRET_ACCESS_KEY, or neither"),
    };
    if bootstrap.is_none() && keys::count(&mut *db.pool.acquire().await?).await? == 0 {
        tracing::warn!(
            "no API access key exists yet, so the LFV API refuses every call: create one on the console's Admin page \
             (sign in as admin), or set VIGIL_ACCESS_KEY_ID and VIGIL_SECRET_ACCESS_KEY"
        );
    }
    Ok(Auth::new(db.clone(), sealer, bootstrap))
}
