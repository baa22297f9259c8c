//! `vigil edge serve`: loads the backbone, starts the models installed to start on boot, and serves the agent
//! on its Unix socket until SIGINT or SIGTERM.

use super::agent::{Agent, AgentOptions, Service};
use super::proto::edge_agent_server::EdgeAgentServer;
use crate::config::EdgeServeArgs;
use anyhow::Context;
use std::sync::Arc;

/// Largest gRPC message: a 4096 × 4096 RGB888 bitmap inline (48 MiB) and its framing.
pub const MAX_MESSAGE_BYTES: usize = 4096 * 4096 * 3 + 64 * 1024;
/// Requests one client connection may have in flight (each may hold a 48 MiB bitmap).
pub const MAX_IN_FLIGHT_PER_CONNECTION: usize = 4;

pub async fn serve(a: EdgeServeArgs) -> anyhow::Result<()> {
    let threads = a.engine.torch_threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    crate::engine::set_threads(threads);
    let path = a.engine.backbone.clone();
    let backbone = tokio::task::spawn_blocking(move || crate::engine::Backbone::load(&path))
        .await?
        .with_context(|| format!("loading the backbone {}", a.engine.backbone.display()))?;
    std::fs::create_dir_all(&a.dir.root).with_context(|| format!("creating the agent's folder {}", a.dir.root.display()))?;
    let agent = Agent::new(
        AgentOptions { root: a.dir.root.clone(), units: a.units.max(1), queue_per_unit: a.queue.max(1) },
        Arc::new(backbone),
    );
    agent.start_on_boot();
    let watches = a.watch.iter().map(|w| super::watch::Watch::parse(w)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;
    if let Some(url) = &a.webhook {
        if !url.starts_with("http://") {
            anyhow::bail!("--webhook {url}: expected an http:// URL");
        }
    }
    if let Some(url) = &a.mqtt {
        if !url.starts_with("mqtt://") {
            anyhow::bail!("--mqtt {url}: expected mqtt://HOST[:PORT]");
        }
    }
    let to = super::spool::Destinations { mqtt: a.mqtt.clone(), mqtt_topic_prefix: a.mqtt_topic.clone(), webhook: a.webhook.clone() };
    if watches.is_empty() && to.any() {
        anyhow::bail!("--mqtt and --webhook publish the results of watched folders: add --watch COMPONENT=FOLDER");
    }
    super::watch::start(&agent, &a.dir.root, watches, to).context("starting the folder watches")?;

    if let Some(parent) = a.socket.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    // A socket file left by an agent that was killed would make bind fail; anything else at that path is kept.
    if let Ok(meta) = std::fs::symlink_metadata(&a.socket) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            std::fs::remove_file(&a.socket).with_context(|| format!("removing the old socket {}", a.socket.display()))?;
        } else {
            anyhow::bail!("{} exists and is not a socket; choose another path with --socket", a.socket.display());
        }
    }
    let listener = tokio::net::UnixListener::bind(&a.socket).with_context(|| format!("listening on {}", a.socket.display()))?;
    tracing::info!(socket = %a.socket.display(), folder = %a.dir.root.display(), "edge agent listening");
    println!("vigil edge agent listening on unix://{}", a.socket.display());

    let socket = a.socket.clone();
    serve_on(agent, listener, shutdown()).await?;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Serves the agent's gRPC API on `listener` until `stop` completes (the command above; tests call it too).
/// Each connection passes through [`super::authority::relay`], so clients that send the socket's path as
/// their HTTP/2 authority (Python's grpcio) are served too.
pub async fn serve_on(
    agent: Arc<Agent>,
    listener: tokio::net::UnixListener,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<tokio::io::DuplexStream>>(16);
    let acceptor = tokio::spawn(async move {
        loop {
            let client = match listener.accept().await {
                Ok((c, _)) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (near, far) = tokio::io::duplex(RELAY_BUFFER);
            if tx.send(Ok(far)).await.is_err() {
                return;
            }
            tokio::spawn(async move {
                if let Err(e) = super::authority::relay(client, near).await {
                    tracing::debug!(error = %e, "a client connection ended");
                }
            });
        }
    });
    let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
    let service = EdgeAgentServer::new(Service(agent))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let served = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(MAX_IN_FLIGHT_PER_CONNECTION)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, stop)
        .await
        .context("serving the edge agent");
    acceptor.abort();
    served
}

/// Bytes buffered between a client's connection and the server in each direction.
const RELAY_BUFFER: usize = 256 * 1024;

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("edge agent stopping");
}
