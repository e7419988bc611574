//! Starting and stopping the whole server: the supervisor, the HTTP server on top of it, and the
//! graceful shutdown between them. Used by `main` and by the integration tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::header::HeaderValue;
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::limits::{Clients, RateLimiterHandle};
use crate::metrics::Metrics;
use crate::process::spawn;
use crate::routing::{command_of, Backend, ModelRouter};
use crate::sessions::SessionStoreHandle;
use crate::supervisor::{self, SupervisorHandle};

/// A started server. Must be created inside an actix system (`#[actix_web::main]`,
/// `#[actix_rt::test]`).
pub struct Running {
    pub addr: SocketAddr,
    pub http: ServerHandle,
    pub supervisor: SupervisorHandle,
    server: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
    grace: Duration,
}

/// Starts the supervisor (which warms its pools) and binds the HTTP server.
pub fn start(settings: Settings) -> anyhow::Result<Running> {
    let settings = Arc::new(settings);
    let metrics = Arc::new(Metrics::new());
    // Commands are resolved once, here: nothing below looks in PATH again.
    let mut installed: BTreeMap<Backend, Option<PathBuf>> = Backend::ALL
        .into_iter()
        .map(|b| (b, spawn::resolve_command(command_of(&settings, b))))
        .collect();
    if let Some(Some(codex)) = installed.get_mut(&Backend::Codex) {
        if let Some(native) = spawn::native_codex(codex) {
            *codex = native;
        }
    }
    // Bound first, so a default instance name can carry the port actually bound (port 0).
    let listener =
        std::net::TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!(
                    "cannot listen on {}:{}",
                    settings.server.host, settings.server.port
                )
            })?;
    let addr = listener
        .local_addr()
        .context("the listener has no address")?;
    let instance = match settings.server.instance_name.as_str() {
        "" => addr.to_string(),
        name => name.to_string(),
    };
    let instance = HeaderValue::from_str(&instance)
        .context("server.instance_name must be printable ASCII (it is sent as a header)")?;
    let supervisor = supervisor::start(settings.clone(), metrics.clone(), &installed);
    let state = AppState {
        supervisor: supervisor.clone(),
        instance,
        router: ModelRouter::new(&settings, installed),
        api_keys: settings.server.api_keys.clone(),
        admin_keys: settings.server.admin_keys.clone(),
        max_body_bytes: settings.server.max_body_bytes,
        allowed_workdirs: settings.server.allowed_workdir_prefixes.clone(),
        blocked_workdirs: settings.server.blocked_workdir_prefixes.clone(),
        agentic_enabled: settings.profiles.agentic.enabled,
        metrics,
        clients: Arc::new(Clients::new(&settings.limits)),
        limiter: RateLimiterHandle::start(),
        sessions: settings
            .sessions
            .enabled
            .then(|| SessionStoreHandle::start(&settings.sessions, &settings.server.state_dir)),
    };
    let grace = Duration::from_secs(settings.server.shutdown_grace_secs);
    let origins = settings.server.cors_allowed_origins.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .wrap(from_fn(api::edge))
            // Outside the edge: a preflight carries no key, so it is answered before the access
            // check; and the edge's own refusals (401, 429) get CORS headers a page can read.
            .wrap(Condition::new(
                !origins.is_empty(),
                api::cors::cors(&origins),
            ))
            .configure(api::configure)
            .default_service(web::to(api::not_found))
    })
    .workers(2)
    // Streams are many small writes (one SSE event each): without TCP_NODELAY, Nagle's algorithm
    // holds every write after the first until the client's delayed ACK (≈40 ms on Linux).
    .tcp_nodelay(true)
    // Longer than SDK clients keep idle connections (httpx: 5 s), so the server is not the side
    // that closes a connection the client is about to reuse.
    .keep_alive(Duration::from_secs(75))
    // Signals are ours (see `serve`): actix's own handling would stop on Ctrl-C without grace.
    .disable_signals()
    .shutdown_timeout(grace.as_secs())
    .listen(listener)
    .context("cannot serve on the bound listener")?;
    let server = server.run();
    let http = server.handle();
    Ok(Running {
        addr,
        http,
        supervisor,
        server: actix_web::rt::spawn(server),
        grace,
    })
}

impl Running {
    /// Stops accepting, lets in-flight requests finish within the grace period, then ends every
    /// CLI process.
    pub async fn stop(self) {
        self.http.stop(true).await;
        self.supervisor.shutdown(self.grace).await;
        if let Err(e) = self.server.await {
            log::warn!("server task: {e}");
        }
    }
}

/// Runs until SIGTERM or Ctrl-C, then shuts down gracefully.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let running = start(settings)?;
    log::info!("clinvoker listening on http://{}", running.addr);
    // The one line scripts wait for.
    println!("clinvoker listening on http://{}", running.addr);
    wait_for_signal().await?;
    log::info!(
        "shutting down: no new requests; in-flight turns get {}s",
        running.grace.as_secs()
    );
    running.stop().await;
    log::info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
    }
    Ok(())
}
