//! The agent's outbox: every result of a watched image is written here (and synced to disk) before the image is
//! moved, and leaves only when each of its destinations — an MQTT broker (QoS 1: the broker's PUBACK) and/or an
//! HTTP webhook (a 2xx answer) — has taken it. A broker or webhook that is down, or an agent killed with
//! SIGKILL, loses nothing: the publisher sends what is left when they (or it) come back. Delivery is at least
//! once: each message carries a `MessageId` that stays the same when it is sent again, so a consumer can drop
//! repeats.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One message waiting in the spool.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Spooled {
    pub id: String,
    pub component: String,
    pub payload: serde_json::Value,
    pub queued_at_ms: i64,
    /// Destinations still to take it.
    pub mqtt_pending: bool,
    pub webhook_pending: bool,
}

/// Where results go.
#[derive(Clone, Debug, Default)]
pub struct Destinations {
    /// `mqtt://HOST[:PORT]`.
    pub mqtt: Option<String>,
    pub mqtt_topic_prefix: String,
    /// `http://...`.
    pub webhook: Option<String>,
}

impl Destinations {
    pub fn any(&self) -> bool {
        self.mqtt.is_some() || self.webhook.is_some()
    }
}

/// The spool folder.
#[derive(Clone, Debug)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub fn open(root: &Path) -> std::io::Result<Spool> {
        let dir = root.join("spool");
        std::fs::create_dir_all(&dir)?;
        Ok(Spool { dir })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes a message durably (a temporary file, synced, renamed over any copy with the same id). Blocking.
    pub fn put(&self, m: &Spooled) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = self.dir.join(format!(".{}.tmp", m.id));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(m)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.path(&m.id))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Every waiting message, oldest first. Blocking.
    pub fn list(&self) -> Vec<Spooled> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut out: Vec<Spooled> = entries
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json") && !n.starts_with('.')))
            .filter_map(|e| std::fs::read(e.path()).ok().and_then(|b| serde_json::from_slice(&b).ok()))
            .collect();
        out.sort_by(|a, b| (a.queued_at_ms, &a.id).cmp(&(b.queued_at_ms, &b.id)));
        out
    }

    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.path(id))
    }

    pub fn len(&self) -> usize {
        std::fs::read_dir(&self.dir).map(|d| d.flatten().filter(|e| !e.file_name().to_string_lossy().starts_with('.')).count()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An MQTT connection that publishes one message at a time and waits for its PUBACK. After any error the
/// connection is dropped and a new one made, so an acknowledgement is never mistaken for another message's.
struct Mqtt {
    host: String,
    port: u16,
    conn: Option<(rumqttc::AsyncClient, rumqttc::EventLoop)>,
}

const MQTT_TIMEOUT: Duration = Duration::from_secs(10);

impl Mqtt {
    fn parse(url: &str) -> Result<Mqtt, String> {
        let rest = url.strip_prefix("mqtt://").ok_or_else(|| format!("{url}: the MQTT broker must be mqtt://HOST[:PORT]"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| format!("{url}: bad port"))?),
            None => (rest.to_string(), 1883),
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        Ok(Mqtt { host, port, conn: None })
    }

    async fn publish(&mut self, topic: &str, payload: Vec<u8>) -> Result<(), String> {
        let r = self.try_publish(topic, payload).await;
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    async fn try_publish(&mut self, topic: &str, payload: Vec<u8>) -> Result<(), String> {
        use rumqttc::{Event, Outgoing, Packet, QoS};
        if self.conn.is_none() {
            let id = format!("vigil-edge-{}-{}", std::process::id(), rand::random::<u32>());
            let mut o = rumqttc::MqttOptions::new(id, self.host.clone(), self.port);
            o.set_keep_alive(Duration::from_secs(15));
            o.set_clean_session(true);
            o.set_max_packet_size(1 << 20, 1 << 20);
            self.conn = Some(rumqttc::AsyncClient::new(o, 8));
        }
        let (client, events) = self.conn.as_mut().expect("just made");
        client.publish(topic, QoS::AtLeastOnce, false, payload).await.map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + MQTT_TIMEOUT;
        let mut pkid = None;
        loop {
            let ev = tokio::time::timeout_at(deadline, events.poll()).await.map_err(|_| "no PUBACK from the broker in time".to_string())?;
            match ev.map_err(|e| format!("MQTT: {e}"))? {
                Event::Outgoing(Outgoing::Publish(p)) => pkid = Some(p),
                Event::Incoming(Packet::PubAck(ack)) if Some(ack.pkid) == pkid => return Ok(()),
                _ => {}
            }
        }
    }
}

/// Sends spooled messages until the process ends: oldest first, each destination on its own, once
/// acknowledged. A destination that fails waits a growing pause (up to 30 s) before its next try, without
/// holding back the other. `wake` is notified when a message is spooled.
pub async fn publisher(spool: Spool, to: Destinations, wake: Arc<tokio::sync::Notify>) {
    let mut mqtt = match to.mqtt.as_deref().map(Mqtt::parse).transpose() {
        Ok(m) => m,
        Err(e) => return tracing::error!(error = %e, "results will not be published"),
    };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().ok();
    const FIRST: Duration = Duration::from_millis(250);
    // Per destination (MQTT, webhook): when it may be tried next, and the pause after its next failure.
    let mut next = [tokio::time::Instant::now(); 2];
    let mut pause = [FIRST; 2];
    loop {
        let s = spool.clone();
        let mut waiting = tokio::task::spawn_blocking(move || s.list()).await.unwrap_or_default();
        let now = tokio::time::Instant::now();
        let due = [now >= next[0], now >= next[1]];
        let before: Vec<(bool, bool)> = waiting.iter().map(|m| (m.mqtt_pending, m.webhook_pending)).collect();
        let mut failures: [Option<String>; 2] = [None, None];
        match mqtt.as_mut() {
            Some(q) if due[0] => {
                for m in waiting.iter_mut().filter(|m| m.mqtt_pending) {
                    let topic = format!("{}/{}", to.mqtt_topic_prefix.trim_end_matches('/'), m.component);
                    match q.publish(&topic, serde_json::to_vec(&m.payload).unwrap_or_default()).await {
                        Ok(()) => m.mqtt_pending = false,
                        Err(e) => {
                            failures[0] = Some(format!("MQTT broker {}: {e}", to.mqtt.as_deref().unwrap_or("")));
                            break;
                        }
                    }
                }
            }
            Some(_) => {}
            None => waiting.iter_mut().for_each(|m| m.mqtt_pending = false),
        }
        match (&http, to.webhook.as_deref()) {
            (Some(c), Some(url)) if due[1] => {
                for m in waiting.iter_mut().filter(|m| m.webhook_pending) {
                    let body = serde_json::to_vec(&m.payload).unwrap_or_default();
                    match c.post(url).header("content-type", "application/json").body(body).send().await {
                        Ok(r) if r.status().is_success() => m.webhook_pending = false,
                        Ok(r) => {
                            failures[1] = Some(format!("webhook {url}: HTTP {}", r.status()));
                            break;
                        }
                        Err(e) => {
                            failures[1] = Some(format!("webhook {url}: {e}"));
                            break;
                        }
                    }
                }
            }
            (Some(_), Some(_)) => {}
            _ => waiting.iter_mut().for_each(|m| m.webhook_pending = false),
        }
        for i in 0..2 {
            match &failures[i] {
                Some(why) => {
                    tracing::warn!(error = %why, retry_in_ms = pause[i].as_millis() as u64, "results wait in the spool");
                    next[i] = tokio::time::Instant::now() + pause[i];
                    pause[i] = (pause[i] * 2).min(Duration::from_secs(30));
                }
                None if due[i] => pause[i] = FIRST,
                None => {}
            }
        }
        // Settle: delivered everywhere → removed; delivered somewhere → its flags written.
        let still = waiting.iter().any(|m| m.mqtt_pending || m.webhook_pending);
        let s = spool.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for (m, was) in waiting.iter().zip(before) {
                let now = (m.mqtt_pending, m.webhook_pending);
                if now == (false, false) {
                    let _ = s.remove(&m.id);
                } else if now != was {
                    let _ = s.put(m);
                }
            }
        })
        .await;
        // Nothing left, or only what waits for a destination's pause: sleep until a new message or the pause ends.
        let until = if still { next.iter().min().copied().unwrap_or(now).max(tokio::time::Instant::now() + Duration::from_millis(50)) } else { tokio::time::Instant::now() + Duration::from_secs(1) };
        let _ = tokio::time::timeout_at(until, wake.notified()).await;
    }
}
