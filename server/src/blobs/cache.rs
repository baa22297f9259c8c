//! A bounded local cache of remote blobs (`DATA_DIR/blob-cache/ab/cdef…`): hosted models' files, training
//! images, thumbnails' sources. The least recently used go first once the cache holds more than its limit,
//! except files handed out as paths in the last few minutes (a training reads them). The folder may vanish under
//! a running process: a missing file is fetched again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Files handed out by path are kept at least this long (a training streams them after listing them).
const PINNED_FOR: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    limit: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// hash → (bytes, last used, pinned until)
    entries: HashMap<String, (u64, Instant, Option<Instant>)>,
    total: u64,
}

impl Cache {
    /// A cache under `root` of at most `limit` bytes; files left by an earlier run are counted.
    pub fn open(root: PathBuf, limit: u64) -> Cache {
        let mut inner = Inner::default();
        let now = Instant::now();
        if let Ok(shards) = std::fs::read_dir(&root) {
            for shard in shards.flatten() {
                let prefix = shard.file_name().to_string_lossy().to_string();
                if prefix.len() != 2 {
                    continue;
                }
                for f in std::fs::read_dir(shard.path()).into_iter().flatten().flatten() {
                    let hash = format!("{prefix}{}", f.file_name().to_string_lossy());
                    if let (true, Ok(m)) = (hash.len() == 64, f.metadata()) {
                        inner.total += m.len();
                        inner.entries.insert(hash, (m.len(), now, None));
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(root.join("tmp"));
        Cache { root, limit, inner: Mutex::new(inner) }
    }

    pub fn path(&self, hash: &str) -> PathBuf {
        self.root.join(&hash[..2]).join(&hash[2..])
    }

    /// The cached file, if there (and marks it used; `pin` keeps it for a while).
    pub fn lookup(&self, hash: &str, pin: bool) -> Option<PathBuf> {
        let path = self.path(hash);
        let mut inner = self.inner.lock().unwrap();
        if !path.is_file() {
            if let Some((bytes, _, _)) = inner.entries.remove(hash) {
                inner.total -= bytes;
            }
            return None;
        }
        let now = Instant::now();
        let e = inner.entries.entry(hash.to_string()).or_insert((0, now, None));
        e.1 = now;
        if pin {
            e.2 = Some(now + PINNED_FOR);
        }
        Some(path)
    }

    /// A temporary file to fill before [`Cache::install`] (the folder is made again if it vanished).
    pub fn temp(&self, hash: &str) -> std::io::Result<PathBuf> {
        let dir = self.root.join("tmp");
        std::fs::create_dir_all(&dir)?;
        Ok(dir.join(format!("{hash}.{}", hex::encode(rand::random::<[u8; 6]>()))))
    }

    /// Moves a filled temporary file into the cache and evicts what no longer fits.
    pub fn install(&self, tmp: &Path, hash: &str, bytes: u64, pin: bool) -> std::io::Result<PathBuf> {
        let path = self.path(hash);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(tmp, &path)?;
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap();
        if let Some((old, _, _)) = inner.entries.insert(hash.to_string(), (bytes, now, pin.then(|| now + PINNED_FOR))) {
            inner.total -= old;
        }
        inner.total += bytes;
        self.evict(&mut inner, hash);
        Ok(path)
    }

    /// Forgets a blob (deleted from the store).
    pub fn remove(&self, hash: &str) {
        let mut inner = self.inner.lock().unwrap();
        if let Some((bytes, _, _)) = inner.entries.remove(hash) {
            inner.total -= bytes;
        }
        let _ = std::fs::remove_file(self.path(hash));
    }

    /// Whether a blob of this size is worth caching (a fraction of the limit).
    pub fn fits(&self, bytes: u64) -> bool {
        bytes <= self.limit / 4
    }

    /// Bytes held now (tests).
    #[cfg(test)]
    pub fn held(&self) -> u64 {
        self.inner.lock().unwrap().total
    }

    fn evict(&self, inner: &mut Inner, keep: &str) {
        if inner.total <= self.limit {
            return;
        }
        let now = Instant::now();
        let mut order: Vec<(Instant, String, u64)> = inner
            .entries
            .iter()
            .filter(|(h, (_, _, pinned))| h.as_str() != keep && pinned.is_none_or(|p| p < now))
            .map(|(h, (b, used, _))| (*used, h.clone(), *b))
            .collect();
        order.sort();
        for (_, hash, bytes) in order {
            if inner.total <= self.limit {
                break;
            }
            let _ = std::fs::remove_file(self.path(&hash));
            inner.entries.remove(&hash);
            inner.total -= bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_go_first_and_a_vanished_folder_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("c"), 10);
        let put = |h: &str, n: usize, pin: bool| {
            let t = cache.temp(h).unwrap();
            std::fs::write(&t, vec![0u8; n]).unwrap();
            cache.install(&t, h, n as u64, pin).unwrap();
        };
        let (a, b, c, d) = ("a".repeat(64), "b".repeat(64), "c".repeat(64), "d".repeat(64));
        put(&a, 4, false);
        put(&b, 4, false);
        assert!(cache.lookup(&a, false).is_some());
        put(&c, 4, false);
        // b was the least recently used.
        assert!(cache.lookup(&b, false).is_none());
        assert!(cache.lookup(&a, false).is_some() && cache.lookup(&c, false).is_some());
        assert_eq!(cache.held(), 8);
        // Pinned files stay even over the limit.
        put(&d, 4, true);
        put(&b, 4, true);
        assert!(cache.lookup(&d, false).is_some() && cache.lookup(&b, false).is_some());
        std::fs::remove_dir_all(dir.path().join("c")).unwrap();
        assert!(cache.lookup(&d, false).is_none());
        put(&d, 4, false);
        assert!(cache.lookup(&d, false).is_some());
    }
}
