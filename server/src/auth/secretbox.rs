//! The server key and what it seals: secrets Vigil must read back (API secret access keys, which SigV4
//! verification needs in the clear, and per-import S3 secrets in job specs) are stored encrypted with
//! ChaCha20-Poly1305 under a 256-bit key from `VIGIL_SECRET_KEY`, or else from `DATA_DIR/secret.key`
//! (generated on first start, mode 0600). Each sealed value is bound to its purpose (the associated data), so
//! a ciphertext copied into another row or field does not open.

use anyhow::Context;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Prefix of a sealed value (format version 1: base64 of nonce, ciphertext and tag).
const PREFIX: &str = "sealed:v1:";

/// A 256-bit server key.
#[derive(Clone)]
pub struct SecretBox {
    key: Arc<LessSafeKey>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the sealed value does not open with this server's key (was VIGIL_SECRET_KEY or DATA_DIR/secret.key changed?)")]
pub struct OpenError;

impl SecretBox {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes).expect("a 32-byte ChaCha20-Poly1305 key");
        SecretBox { key: Arc::new(LessSafeKey::new(key)) }
    }

    /// A fresh random key (tests, and processes that never set one up).
    pub fn random() -> Self {
        Self::from_bytes(&rand::random::<[u8; 32]>())
    }

    /// The key from `VIGIL_SECRET_KEY` (64 hex digits or base64 of 32 bytes), or else the one in
    /// `DATA_DIR/secret.key`, created (0600) when missing.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        if let Some(text) = configured.map(str::trim).filter(|t| !t.is_empty()) {
            return parse_key(text).map(|k| Self::from_bytes(&k)).context("VIGIL_SECRET_KEY must be 64 hex digits or base64 of 32 bytes");
        }
        let path = data_dir.join("secret.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_key(text.trim()).map(|k| Self::from_bytes(&k)).with_context(|| format!("reading the server key {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = rand::random::<[u8; 32]>();
                write_private(&path, hex::encode(key).as_bytes()).with_context(|| format!("writing the server key {}", path.display()))?;
                tracing::info!(path = %path.display(), "generated the server key that encrypts stored secrets; back it up with the database");
                Ok(Self::from_bytes(&key))
            }
            Err(e) => Err(e).with_context(|| format!("reading the server key {}", path.display())),
        }
    }

    /// Encrypts `plain` for `purpose` (e.g. `access-key:AKID…`).
    pub fn seal(&self, purpose: &str, plain: &str) -> String {
        format!("{PREFIX}{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.seal_bytes(purpose, plain.as_bytes())))
    }

    /// Encrypts and authenticates `plain` for `purpose`: nonce, ciphertext and tag.
    pub fn seal_bytes(&self, purpose: &str, plain: &[u8]) -> Vec<u8> {
        let nonce_bytes = rand::random::<[u8; NONCE_LEN]>();
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(purpose.as_bytes()), &mut buf)
            .expect("sealing cannot fail for inputs under 256 GB");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    /// Decrypts what `seal` wrote for the same purpose.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<String, OpenError> {
        let b64 = sealed.strip_prefix(PREFIX).ok_or(OpenError)?;
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64).map_err(|_| OpenError)?;
        String::from_utf8(self.open_bytes(purpose, &raw)?).map_err(|_| OpenError)
    }

    /// Decrypts what `seal_bytes` wrote for the same purpose; anything altered, or sealed for another purpose
    /// or with another key, is an error.
    pub fn open_bytes(&self, purpose: &str, raw: &[u8]) -> Result<Vec<u8>, OpenError> {
        if raw.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let mut buf = rest.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
        let plain = self.key.open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut buf).map_err(|_| OpenError)?;
        Ok(plain.to_vec())
    }
}

/// True when a stored value is sealed (rather than plain text written by an earlier version).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

fn parse_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text)?
    } else {
        base64::engine::general_purpose::STANDARD.decode(text)?
    };
    bytes.try_into().map_err(|_| anyhow::anyhow!("the key is not 32 bytes"))
}

/// Writes a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// The key of this process, for values sealed where no state is at hand (S3 settings inside job specs are
/// serialised by serde). `install` sets it at start-up; before that, or in a process that never serves, a
/// random key is used, so sealed values still round-trip within the process.
static PROCESS_KEY: OnceLock<SecretBox> = OnceLock::new();

/// Makes `key` the process key; the first server started in a process wins (tests start several).
pub fn install(key: &SecretBox) {
    let _ = PROCESS_KEY.set(key.clone());
}

pub fn process_key() -> &'static SecretBox {
    PROCESS_KEY.get_or_init(SecretBox::random)
}

/// `#[serde(with = "...")]` for an optional secret: sealed with the process key when written, opened when
/// read (plain values from earlier versions are read as they are).
pub mod sealed_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    const PURPOSE: &str = "job-secret";

    pub fn serialize<S: Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_some(&super::process_key().seal(PURPOSE, v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let v: Option<String> = Option::deserialize(d)?;
        match v {
            Some(v) if super::is_sealed(&v) => super::process_key().open(PURPOSE, &v).map(Some).map_err(serde::de::Error::custom),
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_for_one_purpose() {
        let b = SecretBox::random();
        let s = b.seal("access-key:A", "wJalrXUtnFEMI");
        assert!(is_sealed(&s) && !s.contains("wJalr"));
        assert_eq!(b.open("access-key:A", &s).unwrap(), "wJalrXUtnFEMI");
        assert!(b.open("access-key:B", &s).is_err(), "bound to its purpose");
        assert!(SecretBox::random().open("access-key:A", &s).is_err(), "another key does not open it");
        assert_ne!(b.seal("p", "x"), b.seal("p", "x"), "fresh nonce each time");
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretBox::load(None, dir.path()).unwrap();
        let sealed = a.seal("p", "x");
        let b = SecretBox::load(None, dir.path()).unwrap();
        assert_eq!(b.open("p", &sealed).unwrap(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let configured = SecretBox::load(Some(&"ab".repeat(32)), dir.path()).unwrap();
        assert!(configured.open("p", &sealed).is_err());
        assert!(SecretBox::load(Some("short"), dir.path()).is_err());
    }
}
