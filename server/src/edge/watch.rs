//! Watching a folder on the line: a camera (or its software) writes image files into a folder; the agent
//! detects each complete one with a named model, records the result in the spool (see [`super::spool`]) and
//! then moves the file into `done/` or `anomalous/` (`invalid/` for a file that is no usable image). A file is
//! complete when its size and modification time have not changed for [`SETTLE`]; names starting with `.` or
//! ending in `.tmp` / `.part` are never taken. The result's `MessageId` is derived from the component, the
//! file's name, size and modification time: a file detected again after a crash (spooled, not yet moved)
//! gives the same id, so its message replaces the spooled one instead of adding another.

use super::agent::Agent;
use super::spool::{Destinations, Spool, Spooled};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the folder is looked at.
const POLL: Duration = Duration::from_millis(200);
/// How long a file must stay unchanged before it is taken.
pub const SETTLE: Duration = Duration::from_millis(400);
/// A file that is no usable image (a truncated JPEG, say) may still be being written: it is tried again
/// until it has been unchanged this long, and only then moved to `invalid/`.
pub const GIVE_UP_INVALID: Duration = Duration::from_secs(10);
/// Results waiting in the spool beyond which new images are left in the folder until the destinations catch
/// up (a broker down for days must not fill the disk; the images wait where the camera put them).
pub const MAX_SPOOLED: usize = 10_000;
/// The pause before a file that could not be used yet is tried again.
const RETRY_FILE: Duration = Duration::from_secs(1);

/// One watched folder.
#[derive(Clone, Debug)]
pub struct Watch {
    pub component: String,
    pub folder: PathBuf,
}

impl Watch {
    /// `COMPONENT=FOLDER`.
    pub fn parse(s: &str) -> Result<Watch, String> {
        let (c, f) = s.split_once('=').ok_or_else(|| format!("--watch {s}: expected COMPONENT=FOLDER"))?;
        if !super::package::valid_component_name(c) {
            return Err(format!("--watch {s}: {c:?} is not a component name"));
        }
        if f.is_empty() {
            return Err(format!("--watch {s}: no folder"));
        }
        Ok(Watch { component: c.to_string(), folder: PathBuf::from(f) })
    }
}

fn is_candidate(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.starts_with('.')
        && !lower.ends_with(".tmp")
        && !lower.ends_with(".part")
        && (lower.ends_with(".jpg") || lower.ends_with(".jpeg") || lower.ends_with(".png"))
}

/// Watches one folder until the process ends.
pub async fn run(agent: Arc<Agent>, w: Watch, spool: Option<Spool>, wake: Arc<tokio::sync::Notify>) {
    for sub in ["done", "anomalous", "invalid"] {
        if let Err(e) = std::fs::create_dir_all(w.folder.join(sub)) {
            return tracing::error!(folder = %w.folder.display(), error = %e, "cannot watch the folder");
        }
    }
    tracing::info!(component = %w.component, folder = %w.folder.display(), "watching");
    // Each file's (size, modification time) when last seen, and since when it has been unchanged.
    let mut seen: HashMap<PathBuf, ((u64, SystemTime), std::time::Instant)> = HashMap::new();
    let mut warned_not_running = false;
    let mut warned_full = false;
    // Files to leave alone until then (an unusable image that may still be being written).
    let mut not_before: HashMap<PathBuf, std::time::Instant> = HashMap::new();
    loop {
        tokio::time::sleep(POLL).await;
        let folder = w.folder.clone();
        let listed = tokio::task::spawn_blocking(move || list(&folder)).await.unwrap_or_default();
        seen.retain(|p, _| listed.iter().any(|(q, _)| q == p));
        let now = std::time::Instant::now();
        not_before.retain(|p, t| *t > now && listed.iter().any(|(q, _)| q == p));
        let mut ready = Vec::new();
        for (path, stamp) in listed {
            match seen.get(&path) {
                Some((s, since)) if *s == stamp => {
                    if since.elapsed() >= SETTLE {
                        ready.push((path, stamp));
                    }
                }
                _ => {
                    seen.insert(path, (stamp, std::time::Instant::now()));
                }
            }
        }
        if !ready.is_empty() {
            if let Some(s) = spool.clone() {
                let waiting = tokio::task::spawn_blocking(move || s.len()).await.unwrap_or(0);
                if waiting >= MAX_SPOOLED {
                    if !warned_full {
                        tracing::warn!(waiting, "the result spool is full: new images wait in the folder until the destinations take results again");
                        warned_full = true;
                    }
                    continue;
                }
                warned_full = false;
            }
        }
        for (path, stamp) in ready {
            if not_before.contains_key(&path) {
                continue;
            }
            let hosted = match agent.running(&w.component) {
                Ok(h) => {
                    warned_not_running = false;
                    h
                }
                Err(s) => {
                    if !warned_not_running {
                        tracing::warn!(component = %w.component, why = %s.message(), "watched images wait: the model is not running");
                        warned_not_running = true;
                    }
                    break;
                }
            };
            match process(&hosted, &w, &path, stamp, spool.as_ref()).await {
                Ok(()) => {
                    seen.remove(&path);
                    wake.notify_one();
                }
                Err(Retry::Later(why)) => {
                    tracing::debug!(file = %path.display(), why = %why, "not usable yet; trying again shortly");
                    not_before.insert(path, std::time::Instant::now() + RETRY_FILE);
                }
                Err(Retry::Stop(why)) => {
                    tracing::debug!(file = %path.display(), why = %why, "retrying later");
                    break;
                }
            }
        }
    }
}

enum Retry {
    /// This file, later (it may still be being written).
    Later(String),
    /// Nothing more this round (the model is busy, the disk refused).
    Stop(String),
}

/// The candidate files directly in the folder, with their size and modification time.
fn list(folder: &Path) -> Vec<(PathBuf, (u64, SystemTime))> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut out: Vec<_> = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(is_candidate))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.is_file().then(|| (e.path(), (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH))))
        })
        .collect();
    out.sort_by(|a, b| (a.1 .1, &a.0).cmp(&(b.1 .1, &b.0)));
    out
}

/// Detects one file, spools its result and moves it.
async fn process(
    hosted: &crate::inference::Hosted,
    w: &Watch,
    path: &Path,
    (size, modified): (u64, SystemTime),
    spool: Option<&Spool>,
) -> Result<(), Retry> {
    use crate::inference::DetectError;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let id = message_id(&w.component, &name, size, modified);
    let (verdict, result) = if size as usize > crate::inference::MAX_IMAGE_BYTES {
        ("invalid", serde_json::json!({ "Error": format!("The file is larger than {} bytes.", crate::inference::MAX_IMAGE_BYTES) }))
    } else {
        let p = path.to_path_buf();
        let bytes = tokio::task::spawn_blocking(move || std::fs::read(p)).await.map_err(|e| Retry::Stop(e.to_string()))?.map_err(|e| Retry::Stop(e.to_string()))?;
        match hosted.detect(bytes, false).await {
            Ok(d) => (if d.is_anomalous { "anomalous" } else { "done" }, published_result(&d)),
            Err(DetectError::Invalid(m)) => {
                let age = SystemTime::now().duration_since(modified).unwrap_or_default();
                if age < GIVE_UP_INVALID {
                    return Err(Retry::Later(m));
                }
                ("invalid", serde_json::json!({ "Error": m }))
            }
            Err(e) => return Err(Retry::Stop(e.to_string())),
        }
    };
    let now = chrono::Utc::now();
    let payload = serde_json::json!({
        "MessageId": id,
        "ModelComponent": w.component,
        "File": name,
        "Folder": verdict,
        "DetectedAt": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "DetectAnomalyResult": result,
    });
    if let Some(s) = spool {
        let m = Spooled {
            id: id.clone(),
            component: w.component.clone(),
            payload,
            queued_at_ms: now.timestamp_millis(),
            mqtt_pending: true,
            webhook_pending: true,
        };
        let s = s.clone();
        tokio::task::spawn_blocking(move || s.put(&m)).await.map_err(|e| Retry::Stop(e.to_string()))?.map_err(|e| Retry::Stop(format!("spooling: {e}")))?;
    }
    let from = path.to_path_buf();
    let dir = w.folder.join(verdict);
    tokio::task::spawn_blocking(move || move_into(&from, &dir, &id)).await.map_err(|e| Retry::Stop(e.to_string()))?.map_err(|e| Retry::Stop(format!("moving: {e}")))
}

/// LFV's `DetectAnomalyResult` (the server's own JSON for it) without the mask: the PNG of a large image would
/// outgrow a broker's message limit, and the verdict is what the line acts on.
fn published_result(d: &crate::engine::Detection) -> serde_json::Value {
    let mut answer = crate::lfv::detect_result(d);
    let mut r = answer["DetectAnomalyResult"].take();
    if let Some(o) = r.as_object_mut() {
        o.remove("AnomalyMask");
    }
    r
}

/// Moves a file into `dir`, keeping its name unless one is taken there (then `stem-ID8.ext`).
fn move_into(from: &Path, dir: &Path, id: &str) -> std::io::Result<()> {
    let name = from.file_name().unwrap_or_default();
    let mut to = dir.join(name);
    if to.exists() {
        let p = Path::new(name);
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
        let ext = p.extension().and_then(|s| s.to_str()).unwrap_or("img");
        to = dir.join(format!("{stem}-{}.{ext}", &id[..8]));
    }
    std::fs::rename(from, to)
}

fn message_id(component: &str, name: &str, size: u64, modified: SystemTime) -> String {
    let ns = modified.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    super::package::sha256_hex(format!("{component}\n{name}\n{size}\n{ns}").as_bytes())[..32].to_string()
}

/// Starts the watches and, when results have somewhere to go, the publisher.
pub fn start(agent: &Arc<Agent>, root: &Path, watches: Vec<Watch>, to: Destinations) -> std::io::Result<()> {
    let wake = Arc::new(tokio::sync::Notify::new());
    let spool = if to.any() { Some(Spool::open(root)?) } else { None };
    if let Some(s) = &spool {
        tokio::spawn(super::spool::publisher(s.clone(), to, wake.clone()));
    }
    for w in watches {
        tokio::spawn(run(agent.clone(), w, spool.clone(), wake.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_images_are_taken() {
        for ok in ["a.jpg", "B.JPEG", "c.png"] {
            assert!(is_candidate(ok), "{ok}");
        }
        for no in [".a.jpg", "a.jpg.tmp", "a.jpg.part", "a.gif", "notes.txt"] {
            assert!(!is_candidate(no), "{no}");
        }
        assert!(Watch::parse("cookies=/tmp/in").is_ok());
        assert!(Watch::parse("/tmp/in").is_err());
        assert!(Watch::parse("bad/name=/tmp/in").is_err());
    }

    #[test]
    fn a_file_keeps_its_message_id() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        assert_eq!(message_id("c", "a.jpg", 10, t), message_id("c", "a.jpg", 10, t));
        assert_ne!(message_id("c", "a.jpg", 10, t), message_id("c", "a.jpg", 11, t));
    }
}
