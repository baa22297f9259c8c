//! Vigil's server: configuration, state, the LFV-compatible API, the console's backend and the engine.
//! `main.rs` only parses the command line; everything else is here so integration tests can import it.
#![recursion_limit = "256"]

pub mod auth;
pub mod blobs;
pub mod cluster;
pub mod maintenance;
pub mod config;
pub mod console;
pub mod datasets;
pub mod jobs;
pub mod lfv;
pub mod models;
pub mod packaging;
pub mod engine;
pub mod http;
pub mod inference;
pub mod projects;
pub mod quotas;
pub mod s3;
pub mod security;
pub mod state;
pub mod db;
pub mod edge;
pub mod trials;
pub mod web;
pub mod work;

use anyhow::Context;
use app::api::SharedBackend;
use axum::Router;
use config::Config;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use web::MAX_BODY_BYTES;

/// Builds the state of `vigil serve` (`--no-worker`: an API replica): see [`build_state_as`].
pub async fn build_state(config: Config, addr: SocketAddr) -> anyhow::Result<AppState> {
    let role = if config.no_worker { cluster::Role::Api } else { cluster::Role::All };
    build_state_as(config, addr, role).await
}

/// Builds the state: database (migrated), blob store, this process's registration (refused where its role
/// cannot work beside the live processes), backbone (loaded and warmed up), console settings; starts the job
/// workers (roles that run jobs) and the hosting sync.
pub async fn build_state_as(config: Config, addr: SocketAddr, role: cluster::Role) -> anyhow::Result<AppState> {
    let db = db::Db::connect_with(&config.database_url, config.db_max_connections).await?;
    tracing::info!(backend = ?db.kind, role = role.as_str(), "database ready");
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let blobs = blobs::Blobs::from_config(&config.blobs, &config.data_dir).await?;
    tracing::info!(store = %blobs.location(), "blob store ready");
    let host = cluster::host_name(config.host_name.as_deref());
    let listens = role.serves_api().then(|| addr.to_string());
    let node = cluster::register(&db, role, &host, &blobs.location(), blobs.is_shared(), listens).await?;
    cluster::spawn_heartbeat(db.clone(), node.clone());
    // Whatever fails from here takes this process out of the registry again (it never served).
    let built: anyhow::Result<AppState> = async {
        if role == cluster::Role::Api && !cluster::live(&db).await?.iter().any(|p| p.role != cluster::Role::Api.as_str()) {
            tracing::warn!("no process that runs jobs is live on this database: imports, trainings and StartModel wait until a `vigil worker` (or a `vigil serve` without --no-worker) starts");
        }
        let auth = auth::setup(&config, &db).await?;
        // Every process must seal and open stored secrets with the same server key.
        let canary = auth.sealer().seal("cluster-canary", "vigil");
        let sealer = auth.sealer().clone();
        if !cluster::agree(&db, "secret_key_canary", &canary, |v| sealer.open("cluster-canary", v).is_ok()).await? {
            anyhow::bail!(
                "this process's server key differs from the one the database's secrets were sealed with: set VIGIL_SECRET_KEY to \
                 the same value on every process (or give this one the data directory's secret.key)"
            );
        }
        let s3 = s3::S3::connect_for(&s3::S3Settings::of(&config), &config).await;
        if s3.scope().is_limited() {
            tracing::info!(allowed = ?config.s3_allowed_buckets, "the server's S3 identity is limited to VIGIL_S3_ALLOWED_BUCKETS");
        } else if config.s3.access_key_id.is_some() {
            tracing::warn!(
                "VIGIL_S3_ALLOWED_BUCKETS is not set: any caller who may import or train can make Vigil read or write any bucket its S3 identity reaches; list the buckets Vigil may use"
            );
        }
        let interrupted = datasets::fail_interrupted(&mut *db.pool.acquire().await?).await?;
        if interrupted > 0 {
            tracing::warn!(interrupted, "datasets left in progress without a job to resume were marked failed");
        }
        let moved = models::artifacts::backfill_with(&db, &blobs, &config.data_dir).await?;
        if moved > 0 {
            tracing::info!(moved, "moved the model files and evaluations of earlier versions into the blob store");
        }
        let backfilled = datasets::labels::backfill(&mut *db.pool.acquire().await?).await?;
        if backfilled > 0 {
            tracing::info!(backfilled, "recorded the anomaly labels of entries written by an earlier version");
        }

        let threads = config
            .torch_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        let path = config.backbone.clone();
        let backbone = tokio::task::spawn_blocking(move || -> anyhow::Result<engine::Backbone> {
            engine::set_threads(threads);
            let started = Instant::now();
            let b = engine::Backbone::load(&path).with_context(|| format!("loading the backbone {}", path.display()))?;
            let loaded = started.elapsed();
            b.warm_up(224, 224, 3)?;
            tracing::info!(
                path = %path.display(),
                load_ms = loaded.as_millis() as u64,
                warm_up_ms = (started.elapsed() - loaded).as_millis() as u64,
                threads,
                "backbone loaded"
            );
            Ok(b)
        })
        .await??;

        let leptos_options = LeptosOptions::builder()
            .output_name("vigil")
            .site_root(config.site_root.as_str())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .env(leptos::config::Env::PROD)
            .build();
        let state = AppState {
            db: db.clone(),
            config: Arc::new(config),
            backbone: Arc::new(backbone),
            blobs,
            s3,
            leptos_options,
            auth,
            jobs: Arc::new(state::Workers::default()),
            hosting: Arc::new(inference::Hosting::default()),
            node: Arc::new(node.clone()),
        };
        if role.runs_jobs() {
            let waiting = work::start_workers(&state).await?;
            if waiting > 0 {
                tracing::info!(waiting, "background jobs recorded before this start will run (interrupted ones once their lease runs out)");
            }
        }
        models::usage::start_flusher(state.clone());
        if role.runs_jobs() {
            let rehosted = models::hosting::restore(&state).await?;
            if rehosted > 0 {
                tracing::info!(rehosted, "hosting the models that were hosted before the restart");
            }
        }
        models::hosting::spawn_sync(state.clone());
        Ok(state)
    }
    .await;
    if built.is_err() {
        cluster::deregister(&db, &node).await;
    }
    built
}

/// The console's routes, generated once per process. Generating them runs the app with resource loading
/// suppressed by a process-wide flag (`leptos_server`'s `SuppressResourceLoad`), and a resource first polled
/// while it is set never loads (leptos-rs/leptos#4773): a second `start` in the same process (tests start
/// many servers at once) hung a page being rendered by another server about one time in thirty.
fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(app::App)).clone()
}

/// The whole HTTP surface: the LFV API under `/2020-11-20`, the console and its server functions.
pub fn router(state: AppState) -> Router {
    let backend: SharedBackend = Arc::new(console::ConsoleBackend { state: state.clone() });
    let auth_backend: app::api::auth::SharedAuthBackend = Arc::new(console::auth::AuthConsole { state: state.clone() });
    let model_backend: app::api::models::SharedModelBackend = Arc::new(console::models::ConsoleModels { state: state.clone() });
    let trial_backend: app::api::trials::SharedTrialBackend = Arc::new(console::trials::ConsoleTrials { state: state.clone() });
    let packaging_backend: app::api::packaging::SharedPackagingBackend = Arc::new(console::packaging::ConsolePackaging { state: state.clone() });
    let first_run_backend: app::api::first_run::SharedFirstRunBackend = Arc::new(console::samples::ConsoleFirstRun { state: state.clone() });
    let routes = route_list();
    let options = state.leptos_options.clone();
    Router::new()
        .nest("/2020-11-20", http::router())
        .nest("/vigil/v1", http::extension_router())
        .route("/media/{hash}", axum::routing::get(console::media::get_media))
        .route("/export/{project}/{file}", axum::routing::get(console::archive::export_dataset))
        .route("/import/{project}/{dataset_type}", axum::routing::post(console::archive::import_archive))
        .route("/batches/{project}/{file}", axum::routing::get(console::trials::download_batch))
        .route("/packages/{project}/{file}", axum::routing::get(console::packaging::download_package))
        .route("/audit/export.jsonl", axum::routing::get(console::auth::export_audit))
        .route("/auth/signin", axum::routing::post(console::auth::sign_in))
        .route("/auth/signout", axum::routing::post(console::auth::sign_out))
        .route("/metrics", axum::routing::get(metrics))
        .leptos_routes_with_context(&state, routes, move || {
            provide_context(backend.clone());
            provide_context(auth_backend.clone());
            provide_context(model_backend.clone());
            provide_context(trial_backend.clone());
            provide_context(packaging_backend.clone());
            provide_context(first_run_backend.clone());
        }, {
            let options = options.clone();
            move || app::shell(options.clone())
        })
        .fallback(static_files)
        // UpdateDatasetEntries carries up to 10 MiB of JSON lines as base64, and console uploads batches of
        // images of up to 8 MB each; axum's 2 MB default would refuse both.
        // SigV4 on the LFV API, a session everywhere else (http::auth).
        .layer(axum::middleware::from_fn_with_state(state.clone(), http::auth::authenticate))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(web::security_headers))
        .layer(axum::middleware::from_fn(http::request_id))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Static files (`/pkg/…`, the favicon) and the console's 404 page. Leptos' handler answers every status but
/// 200 with its 404 page — so a browser revalidating a cached `vigil.wasm` (`If-Modified-Since`, `304`), or
/// asking for part of it (`Range`, `206`: Chromium does for a large debug bundle it cached in part), got a 404
/// and the page never hydrated. The conditional and range headers are dropped, so a file is always sent whole.
/// The file is looked up here first: a file that is there but could not be read (an I/O error: `500` from
/// `ServeDir`) is tried once more and then answered with its real status and logged, not hidden behind the
/// 404 page; only a path with no file behind it gets the console's 404 page.
async fn static_files(uri: axum::http::Uri, state: axum::extract::State<AppState>, mut req: axum::extract::Request) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use tower::ServiceExt;
    for h in [header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE, header::IF_MATCH, header::IF_UNMODIFIED_SINCE, header::IF_RANGE, header::RANGE] {
        req.headers_mut().remove(h);
    }
    let root = state.leptos_options.site_root.to_string();
    for attempt in 0..2 {
        let mut file_req = axum::http::Request::builder().method(req.method().clone()).uri(uri.clone());
        if let Some(v) = req.headers().get(header::ACCEPT_ENCODING) {
            file_req = file_req.header(header::ACCEPT_ENCODING, v.clone());
        }
        let Ok(file_req) = file_req.body(axum::body::Body::empty()) else { break };
        let res = match tower_http::services::ServeDir::new(&root).precompressed_gzip().precompressed_br().oneshot(file_req).await {
            Ok(res) => res.into_response(),
            Err(never) => match never {},
        };
        match res.status() {
            StatusCode::OK => return res,
            status if status.is_server_error() && attempt == 0 => {
                tracing::warn!(path = %uri.path(), %status, "a static file could not be served; trying once more")
            }
            status if status.is_server_error() => {
                tracing::error!(path = %uri.path(), %status, "a static file could not be served");
                return res;
            }
            // No file there (404), a folder's redirect, a method other than GET and HEAD: the console's page.
            _ => break,
        }
    }
    leptos_axum::file_and_error_handler::<AppState, _>(app::shell)(uri, state, req).await
}

/// Prometheus' view of the hosted models (a scraper's bearer token or a console session, `http::auth`).
async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match models::usage::metrics_text(&state).await {
        Ok(text) => ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not read the detection counts");
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, "The detection counts could not be read.\n").into_response()
        }
    }
}

/// A server running in the background (tests, embedding).
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting connections, lets requests in flight finish, and waits.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.state.jobs.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        self.state.jobs.wake.notify_waiters();
        for h in self.state.hosting.all() {
            self.state.hosting.remove(&h.model_id);
        }
        self.state.hosting.close_lanes(std::time::Duration::ZERO, None);
        if let Err(e) = models::usage::flush(&self.state).await {
            tracing::warn!(error = %e, "the last detection counts could not be written");
        }
        cluster::deregister(&self.state.db, &self.state.node).await;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.handle.await??;
        Ok(())
    }
}

/// Binds `config.addr` (port 0 picks one), builds the state and serves until `stop`.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    let addr = listener.local_addr()?;
    let state = build_state(config, addr).await?;
    maintenance::spawn(state.clone());
    let app = router(state.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(Running { addr, state, shutdown: Some(tx), handle })
}

/// Serves until Ctrl-C or SIGTERM, then shuts down gracefully.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let running = start(config).await?;
    tracing::info!("Vigil is listening on http://{}", running.addr);
    if !running.addr.ip().is_loopback() {
        tracing::warn!(
            "Vigil listens on {} without TLS: passwords, session cookies and images cross the network in clear text. \
             Put it behind a reverse proxy that terminates HTTPS (and set VIGIL_SECURE_COOKIES=true), or listen on 127.0.0.1.",
            running.addr
        );
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await
}

/// `vigil worker`: background jobs only, until Ctrl-C or SIGTERM (nothing listens: API replicas are `vigil
/// serve --no-worker`). Jobs it leaves unfinished are taken up by another worker when their lease runs out.
pub async fn work(config: Config) -> anyhow::Result<()> {
    let state = build_state_as(config, "127.0.0.1:0".parse()?, cluster::Role::Worker).await?;
    maintenance::spawn(state.clone());
    tracing::info!(node = %state.node.id, "Vigil worker running: imports, training, trials, batches, packaging");
    shutdown_signal().await;
    tracing::info!("shutting down");
    state.jobs.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    state.jobs.wake.notify_waiters();
    if let Err(e) = models::usage::flush(&state).await {
        tracing::warn!(error = %e, "the last detection counts could not be written");
    }
    cluster::deregister(&state.db, &state.node).await;
    Ok(())
}

pub use maintenance::collect_blob_garbage;

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
