//! Checks on what a console user may make the server read: blob names before they become paths, folders on
//! the server's disk (only under `VIGIL_IMPORT_ROOT`, compared after resolving symbolic links) and S3
//! endpoints typed into an import (only the configured one or those on `VIGIL_S3_ALLOWED_ENDPOINTS`, never a
//! link-local or cloud metadata address, and never with the server's own credentials).

use crate::config::Config;
use crate::s3::S3Settings;
use app::api::S3Connection;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Why a check refused.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// What the request names is not valid or not allowed (a 400 for the caller).
    #[error("{0}")]
    Invalid(String),
    /// Off by configuration, or an address the server must never reach (a 403).
    #[error("{0}")]
    Forbidden(String),
    /// One of LFV's limits is reached (a 409).
    #[error("{0}")]
    Limit(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl SecurityError {
    /// The HTTP status the console answers with.
    pub fn status(&self) -> u16 {
        match self {
            SecurityError::Invalid(_) => 400,
            SecurityError::Forbidden(_) => 403,
            SecurityError::Limit(_) => 409,
            SecurityError::Db(_) => 500,
        }
    }
}

/// A blob name: exactly 64 lowercase hex digits.
pub fn is_blob_name(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The resolved folder to import from, if it is a folder under the resolved import root. A folder outside the
/// root and a missing one get the same answer, so the console cannot probe the server's disk.
pub fn import_dir(root: Option<&Path>, dir: &Path) -> Result<PathBuf, SecurityError> {
    let Some(root) = root else {
        return Err(SecurityError::Forbidden("Imports from the server's disk are off; the administrator can allow a folder with VIGIL_IMPORT_ROOT.".into(),
        ));
    };
    let refused = || SecurityError::Invalid(format!("{} is not a folder this server imports from (under {}).", dir.display(), root.display()));
    let (Ok(real_root), Ok(real)) = (root.canonicalize(), dir.canonicalize()) else { return Err(refused()) };
    if !real.starts_with(&real_root) || !real.is_dir() {
        return Err(refused());
    }
    Ok(real)
}

/// An endpoint URL reduced to `scheme://host:port` (lowercase, default port filled in), for comparisons.
pub fn normalize_endpoint(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = split_host_port(authority)?;
    Some(format!("{scheme}://{}:{}", host.to_ascii_lowercase(), port.unwrap_or(default_port)))
}

fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((authority, None)),
    }
}

/// Link-local (which holds the cloud metadata services, 169.254.169.254), unspecified and other cloud
/// metadata addresses: never an S3 endpoint.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast() || v4 == std::net::Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden_ip(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            v6.is_unspecified()
                || (seg[0] & 0xffc0) == 0xfe80
                || v6 == "fd00:ec2::254".parse::<std::net::Ipv6Addr>().unwrap()
        }
    }
}

/// Refuses an endpoint whose host is, or resolves to, a forbidden address.
pub async fn check_endpoint_address(endpoint: &str) -> Result<(), String> {
    let norm = normalize_endpoint(endpoint).ok_or_else(|| format!("{endpoint:?} is not an endpoint URL (http://host:port)."))?;
    let authority = norm.split_once("://").map(|(_, a)| a).unwrap_or_default();
    let (host, port) = split_host_port(authority).ok_or_else(|| format!("{endpoint:?} is not an endpoint URL."))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.unwrap_or(80);
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => match tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::lookup_host((host, port))).await {
            Ok(Ok(a)) => a.map(|s| s.ip()).collect(),
            _ => return Err(format!("The host of {endpoint} could not be resolved.")),
        },
    };
    if addrs.iter().any(|ip| is_forbidden_ip(*ip)) {
        return Err(format!("{endpoint} is a link-local or metadata address; Vigil never connects to those."));
    }
    Ok(())
}

/// The S3 settings for one import: the server's, or the connection the user typed, checked. `None` when the
/// import overrides nothing.
pub async fn s3_override(config: &Config, conn: &S3Connection) -> Result<Option<S3Settings>, SecurityError> {
    let set = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_string());
    if [&conn.endpoint, &conn.region, &conn.access_key_id, &conn.secret_access_key, &conn.addressing].iter().all(|v| v.trim().is_empty()) {
        return Ok(None);
    }
    let mut settings = S3Settings::of(config);
    if let Some(e) = set(&conn.endpoint) {
        let norm = normalize_endpoint(&e).ok_or_else(|| SecurityError::Invalid(format!("{e:?} is not an endpoint URL (http://host:port).")))?;
        let configured = config.s3.endpoint.as_deref().and_then(normalize_endpoint);
        let is_configured = configured.as_deref() == Some(norm.as_str());
        let allowed = is_configured || config.s3_allowed_endpoints.iter().filter_map(|a| normalize_endpoint(a)).any(|a| a == norm);
        if !allowed {
            return Err(SecurityError::Forbidden(format!("{e} is not an S3 endpoint this server may use; the administrator can add it to VIGIL_S3_ALLOWED_ENDPOINTS."),
            ));
        }
        check_endpoint_address(&e).await.map_err(|m| SecurityError::Forbidden(m))?;
        if !is_configured {
            // The server's own credentials are for its own endpoint only.
            settings.access_key_id = None;
            settings.secret_access_key = None;
            if set(&conn.access_key_id).is_none() {
                return Err(SecurityError::Invalid(format!("Give the access key id and secret for {e}; Vigil sends its own credentials only to its configured endpoint.")));
            }
        }
        settings.endpoint = Some(e);
    }
    settings.region = set(&conn.region).or(settings.region);
    match (set(&conn.access_key_id), set(&conn.secret_access_key)) {
        (Some(id), Some(secret)) => {
            settings.access_key_id = Some(id);
            settings.secret_access_key = Some(secret);
        }
        (None, None) => {}
        _ => return Err(SecurityError::Invalid("Give both the access key id and the secret access key, or neither.".into())),
    }
    match conn.addressing.trim() {
        "" => {}
        "path" => settings.force_path_style = true,
        "virtual" => settings.force_path_style = false,
        other => return Err(SecurityError::Invalid(format!("{other:?} is not an addressing style: use path or virtual."))),
    }
    Ok(Some(settings))
}

/// Most anomaly labels one mask may use (LFV: 20).
pub const MAX_LABELS_PER_MASK: usize = 20;
/// Most anomaly labels one project may have (LFV: 100).
pub const MAX_LABELS_PER_PROJECT: i64 = 100;
/// Highest gallery page the console asks for (48 images a page: far beyond any dataset LFV allows).
pub const MAX_GALLERY_PAGE: usize = 100_000;

/// Refuses a gallery page number so large that its offset would overflow or scan without end.
pub fn check_gallery_page(page: usize) -> Result<(), SecurityError> {
    if page > MAX_GALLERY_PAGE {
        return Err(SecurityError::Invalid(format!("Page {page} is out of range (at most {MAX_GALLERY_PAGE}).")));
    }
    Ok(())
}

/// Refuses a mask that names more labels than LFV allows.
pub fn check_mask_labels(n: usize) -> Result<(), SecurityError> {
    if n > MAX_LABELS_PER_MASK {
        return Err(SecurityError::Invalid(format!("A mask uses at most {MAX_LABELS_PER_MASK} anomaly labels ({n} given).")));
    }
    Ok(())
}

/// Refuses a new label when the project has the most LFV allows.
pub async fn check_label_count(db: &crate::db::Db, project: &str) -> Result<(), SecurityError> {
    let n: Result<(i64,), sqlx::Error> =
        sqlx::query_as("select count(*) from anomaly_label l join project p on p.id = l.project_id where p.name = $1")
            .bind(project)
            .fetch_one(&db.pool)
            .await;
    match n {
        Ok((n,)) if n >= MAX_LABELS_PER_PROJECT => Err(SecurityError::Limit(format!("The project has {MAX_LABELS_PER_PROJECT} anomaly labels, the most a project may have; delete one first."),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(check_gallery_page(10).is_ok());
        assert_eq!(check_gallery_page(usize::MAX).unwrap_err().status(), 400);
        assert!(check_mask_labels(20).is_ok());
        assert_eq!(check_mask_labels(21).unwrap_err().status(), 400);
    }

    #[test]
    fn blob_names() {
        assert!(is_blob_name(&"0a".repeat(32)));
        assert!(!is_blob_name(&"0A".repeat(32)));
        assert!(!is_blob_name("..%2F..%2Fetc%2Fpasswd"));
        assert!(!is_blob_name(&format!("{}/", "a".repeat(63))));
    }

    #[test]
    fn endpoints_and_addresses() {
        assert_eq!(normalize_endpoint("HTTP://MinIO.local:9000/").as_deref(), Some("http://minio.local:9000"));
        assert_eq!(normalize_endpoint("https://s3.example.com").as_deref(), Some("https://s3.example.com:443"));
        assert_eq!(normalize_endpoint("http://[::1]:9000").as_deref(), Some("http://::1:9000"));
        assert!(normalize_endpoint("ftp://x").is_none());
        assert!(normalize_endpoint("http://user:pw@x").is_none());
        for bad in ["169.254.169.254", "fd00:ec2::254", "fe80::1", "0.0.0.0", "::ffff:169.254.169.254", "100.100.100.200"] {
            assert!(is_forbidden_ip(bad.parse().unwrap()), "{bad}");
        }
        for ok in ["127.0.0.1", "10.0.0.5", "192.168.1.10", "::1"] {
            assert!(!is_forbidden_ip(ok.parse().unwrap()), "{ok}");
        }
    }

    #[tokio::test]
    async fn metadata_endpoints_are_refused() {
        assert!(check_endpoint_address("http://169.254.169.254/latest").await.is_err());
        assert!(check_endpoint_address("http://[fd00:ec2::254]").await.is_err());
        assert!(check_endpoint_address("http://127.0.0.1:9000").await.is_ok());
    }

    #[test]
    fn import_folders() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("ok")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        assert!(import_dir(None, root.path()).unwrap_err().status() == 403, "off by default");
        assert!(import_dir(Some(root.path()), &root.path().join("ok")).is_ok());
        let a = import_dir(Some(root.path()), outside.path()).unwrap_err();
        let b = import_dir(Some(root.path()), &root.path().join("missing")).unwrap_err();
        assert_eq!(a.status(), b.status(), "outside and missing look the same");
        #[cfg(unix)]
        assert!(import_dir(Some(root.path()), &root.path().join("escape")).is_err(), "a link out of the root");
    }
}
