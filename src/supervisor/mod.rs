//! The session supervisor: the one owner of every pool, queue and process. HTTP handlers reach it
//! through [`SupervisorHandle`]; processes report to it with [`ProcessNotice`]s. Its decisions are
//! made by the pure [`pool::Book`]; this module only carries them out (start, bind, dispatch,
//! retire, refuse) and keeps the actor addresses. `launch` starts processes (each backend's spawn
//! spec and driver); `health` answers liveness, readiness and the operator's instance drain.

pub mod admin;
mod balance;
mod dispatch;
mod fair;
mod finish;
pub mod handle;
mod health;
mod launch;
pub mod messages;
pub mod parking;
pub mod pool;
mod slot;
pub mod stats;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::config::{Backend, Settings};
use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::process::spawn::{self, SpawnSpec};
use crate::process::{
    Bind, CliProcess, Forget, Interrupt, Kill, ProcessEvent, ProcessLimits, ProcessNotice, Retire,
    RunTurn,
};
use crate::protocol::{PoolKey, TurnEvent};
pub use handle::SupervisorHandle;
use messages::*;
pub use pool::StateName;
use pool::{Action, Book};

const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

/// Whether the supervisor takes new work.
enum Phase {
    Running,
    /// Drained by an operator: out of the load balancer's rotation. `/ready` answers 503 and new
    /// turns are refused with [`ServeError::InstanceDrained`] (a 503 a balancer retries on another
    /// instance, where the conversation continues from its history); running turns finish and the
    /// pools stay warm, so [`DrainInstance`] back to `Running` is instant.
    Drained,
    /// Refusing new work; each sender is answered once the last process has exited.
    ShuttingDown {
        done: Vec<oneshot::Sender<()>>,
    },
}

impl Phase {
    /// Whether pools are kept: processes refilled, recycled and handed queued work.
    fn keeps_pools(&self) -> bool {
        match self {
            Phase::Running | Phase::Drained => true,
            Phase::ShuttingDown { .. } => false,
        }
    }
}

pub struct SessionSupervisor {
    settings: Arc<Settings>,
    spec: SpawnSpec,
    limits: ProcessLimits,
    book: Book,
    /// The actor of every process in `book.processes` that was started successfully.
    addrs: HashMap<u64, Addr<CliProcess>>,
    /// Private directories of live processes (a CLI's home), removed when the process exits.
    homes: HashMap<u64, PathBuf>,
    phase: Phase,
    metrics: Arc<Metrics>,
    /// Each pool's counters at the last metrics sync (metric counters only go up by deltas).
    reported: HashMap<String, stats::Counters>,
    /// Where each backend's CLI was found at startup (None: not installed), and its
    /// `--version` once probed.
    installed: BTreeMap<Backend, Option<PathBuf>>,
    versions: BTreeMap<Backend, String>,
}

impl SessionSupervisor {
    /// `installed`: where each backend's CLI was found at startup (None: not installed). The
    /// backends other than Claude Code are served only when installed.
    pub fn new(
        settings: Arc<Settings>,
        metrics: Arc<Metrics>,
        installed: BTreeMap<Backend, Option<PathBuf>>,
    ) -> Self {
        let claude = &settings.backends.claude;
        let spec = SpawnSpec::claude_chat(claude, &settings.server.state_dir);
        let p = &settings.pool;
        let limits = ProcessLimits {
            request_timeout: settings.request_timeout(),
            first_byte_timeout: Duration::from_secs(settings.server.first_byte_timeout_secs),
            idle_timeout: Duration::from_secs(settings.server.stream_idle_timeout_secs),
            ready_timeout: Duration::from_secs(p.ready_timeout_secs),
            interrupt_grace: Duration::from_secs(p.interrupt_grace_secs),
        };
        Self {
            book: Self::book(&settings, &installed),
            installed,
            versions: BTreeMap::new(),
            spec,
            limits,
            addrs: HashMap::new(),
            homes: HashMap::new(),
            phase: Phase::Running,
            settings,
            metrics,
            reported: HashMap::new(),
        }
    }

    fn pool_name_of(&self, id: u64) -> String {
        let pool = self.book.processes.get(&id).and_then(|s| s.pool.as_ref());
        pool.map_or_else(|| format!("claude/{}", admin::SPARE), PoolKey::name)
    }

    /// Brings the pool gauges up to date and adds what the pools' counters gained since the last
    /// sync to the metric counters (the book's counters are the source of truth).
    fn sync_metrics(&mut self) {
        let m = &self.metrics;
        m.pool_processes.reset();
        m.pool_queued.reset();
        m.client_queued.reset();
        for waiting in self.book.pools.values().flat_map(|p| p.queue.iter()) {
            let client = waiting.request.meta.client.id.as_str();
            m.client_queued.with_label_values(&[client]).inc();
        }
        for slot in self.book.processes.values() {
            let pool = slot
                .pool
                .as_ref()
                .map_or_else(|| format!("claude/{}", admin::SPARE), PoolKey::name);
            let state = serde_json::to_value(slot.state()).ok();
            let state = state.as_ref().and_then(|v| v.as_str()).unwrap_or("unknown");
            m.pool_processes.with_label_values(&[&pool, state]).inc();
        }
        let spares = stats::Counters {
            spawns: self.book.spare_spawns,
            ..Default::default()
        };
        let pools = self
            .book
            .pools
            .iter()
            .map(|(k, p)| (k.name(), p.queue.len(), p.stats.counters));
        let all: Vec<(String, usize, stats::Counters)> = pools
            .chain(std::iter::once((
                format!("claude/{}", admin::SPARE),
                0,
                spares,
            )))
            .collect();
        for (name, queued, counters) in all {
            m.pool_queued.with_label_values(&[&name]).set(queued as f64);
            let before = self.reported.entry(name.clone()).or_default();
            for ((event, now), (_, was)) in counters.labelled().into_iter().zip(before.labelled()) {
                if now > was {
                    m.pool_events
                        .with_label_values(&[&name, event])
                        .inc_by(now - was);
                }
            }
            *before = counters;
        }
    }

    fn run(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) {
        for action in actions {
            match action {
                Action::Dispatch {
                    process,
                    turn,
                    request,
                    seat,
                    waited,
                } => {
                    let client = request.meta.client.id.as_str();
                    self.metrics
                        .client_queue_wait
                        .with_label_values(&[client])
                        .observe(waited.as_secs_f64());
                    match self.addrs.get(&process) {
                        Some(addr) => addr.do_send(RunTurn {
                            turn,
                            request,
                            seat,
                        }),
                        None => fail(request.events, unavailable("the chosen process is gone")),
                    }
                }
                Action::Spawn {
                    process,
                    backend,
                    pool,
                } => self.start_process(process, backend, pool, ctx),
                Action::Bind { process, pool } => {
                    if let Some(addr) = self.addrs.get(&process) {
                        log::info!("process {process}: bound to pool {}", pool.name());
                        addr.do_send(Bind {
                            output_schema: pool.schema(),
                            tools: pool.tools(),
                            system_prompt: pool.system_prompt,
                        });
                    }
                }
                Action::Retire { process } => {
                    if let Some(addr) = self.addrs.get(&process) {
                        log::info!("process {process}: retiring");
                        addr.do_send(Retire {
                            grace: self.limits.interrupt_grace,
                        });
                    }
                }
                Action::Fail { request, error } => {
                    if let ServeError::ClientOverLimit { client, .. } = &error {
                        self.metrics.client_limited(client, "cap");
                    }
                    log::info!("request {}: refused: {error}", request.request_id);
                    fail(request.events, error);
                }
                Action::Interrupt {
                    process,
                    turn,
                    reason,
                } => {
                    if let Some(addr) = self.addrs.get(&process) {
                        addr.do_send(Interrupt { turn, reason });
                    }
                }
                Action::Forget {
                    process,
                    conversation,
                } => {
                    if let Some(addr) = self.addrs.get(&process) {
                        addr.do_send(Forget { conversation });
                    }
                }
                Action::Kill { process } => {
                    if let Some(addr) = self.addrs.get(&process) {
                        addr.do_send(Kill);
                    }
                }
                Action::Queued { pool, ticket } => {
                    let after = Duration::from_secs(self.settings.pool.queue_timeout_secs);
                    ctx.run_later(after, move |act, ctx| {
                        if let Some(action) = act.book.expire(&pool, ticket, Instant::now()) {
                            act.run(vec![action], ctx);
                        }
                    });
                }
                Action::Recheck { pool, after } => {
                    ctx.run_later(after, move |act, ctx| {
                        let mut actions = act.book.assign(&pool, Instant::now());
                        actions.extend(act.book.rebalance(Instant::now()));
                        act.run(actions, ctx);
                    });
                }
            }
        }
    }

    fn finish_shutdown_if_empty(&mut self) {
        if let Phase::ShuttingDown { done } = &mut self.phase {
            if self.book.processes.is_empty() {
                for tx in done.drain(..) {
                    let _ = tx.send(());
                }
            }
        }
    }
}

fn fail(events: tokio::sync::mpsc::UnboundedSender<TurnEvent>, error: ServeError) {
    let _ = events.send(TurnEvent::Failed(error));
}

fn unavailable(reason: &str) -> ServeError {
    ServeError::BackendUnavailable {
        backend: "claude",
        reason: reason.into(),
    }
}

impl Actor for SessionSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        std::fs::create_dir_all(&self.settings.server.state_dir).unwrap_or_else(|e| {
            log::error!(
                "cannot create state_dir {}: {e}",
                self.settings.server.state_dir.display()
            )
        });
        for (backend, path) in self.installed.clone() {
            let Some(path) = path else {
                match backend {
                    Backend::Claude => log::warn!(
                        "claude CLI `{}` not found: requests will fail until it is installed",
                        self.settings.backends.claude.command
                    ),
                    other => log::info!("{} CLI not found: not served", other.name()),
                }
                continue;
            };
            ctx.spawn(
                spawn::probe_version(path)
                    .into_actor(self)
                    .map(move |version, act, _| {
                        let version = version.unwrap_or_else(|| "unknown".into());
                        log::info!("{} CLI version: {version}", backend.name());
                        act.versions.insert(backend, version);
                    }),
            );
        }
        let actions = self.book.rebalance(Instant::now());
        self.run(actions, ctx);
        ctx.run_interval(HOUSEKEEPING_EVERY, |act, ctx| {
            if act.phase.keeps_pools() {
                let actions = act.book.housekeeping(Instant::now());
                act.run(actions, ctx);
            }
        });
    }
}

impl Handler<Submit> for SessionSupervisor {
    type Result = ();

    fn handle(&mut self, Submit(request): Submit, ctx: &mut Self::Context) {
        match self.phase {
            Phase::Running => {}
            Phase::Drained => {
                let retry_after = Duration::from_secs(5);
                return fail(request.events, ServeError::InstanceDrained { retry_after });
            }
            Phase::ShuttingDown { .. } => return fail(request.events, ServeError::ShuttingDown),
        }
        let actions = self.book.submit(request, Instant::now());
        self.run(actions, ctx);
        self.sync_metrics();
    }
}

impl Handler<ProcessNotice> for SessionSupervisor {
    type Result = ();

    fn handle(&mut self, ProcessNotice { id, event }: ProcessNotice, ctx: &mut Self::Context) {
        let now = Instant::now();
        let actions = match event {
            ProcessEvent::StateChanged(state) => self.book.state_changed(id, state, now),
            ProcessEvent::TurnRefused { turn, request } => {
                self.book.turn_refused(id, turn, *request, now)
            }
            ProcessEvent::ConversationDropped { conversation } => {
                self.book.dropped(id, conversation);
                Vec::new()
            }
            ProcessEvent::TurnAnswered { turn } => {
                self.book.turn_answered(id, turn, now);
                Vec::new()
            }
            ProcessEvent::TurnFinished {
                turn,
                reusable,
                kept,
                report,
            } => {
                let pool = self.pool_name_of(id);
                self.metrics.turn(&pool, &report);
                self.book
                    .turn_finished(id, turn, &report, (reusable, kept), now)
            }
            ProcessEvent::Exited {
                status,
                was_ready,
                stderr_tail,
            } => {
                self.addrs.remove(&id);
                if let Some(home) = self.homes.remove(&id) {
                    // Off the actor's thread: a CLI home holds databases of some megabytes.
                    actix_rt::task::spawn_blocking(move || {
                        if let Err(e) = std::fs::remove_dir_all(&home) {
                            log::debug!("removing {}: {e}", home.display());
                        }
                    });
                }
                let last_stderr = stderr_tail.lines().last().unwrap_or_default();
                log::info!("process {id}: exited: {status}");
                if !stderr_tail.is_empty() {
                    log::debug!("process {id}: last stderr lines:\n{stderr_tail}");
                }
                let reason = match last_stderr {
                    "" => format!("the CLI exited before it was ready: {status}"),
                    line => format!("the CLI exited before it was ready: {status}: {line}"),
                };
                let actions = self.book.exited(id, was_ready, &reason, now);
                self.finish_shutdown_if_empty();
                actions
            }
        };
        if self.phase.keeps_pools() {
            self.run(actions, ctx);
        }
        self.sync_metrics();
    }
}

impl Handler<Shutdown> for SessionSupervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, Shutdown { grace }: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        match &mut self.phase {
            Phase::ShuttingDown { done } => done.push(tx),
            Phase::Running | Phase::Drained => {
                log::info!(
                    "shutting down {} processes (grace {}s)",
                    self.addrs.len(),
                    grace.as_secs()
                );
                self.phase = Phase::ShuttingDown { done: vec![tx] };
                // Nothing is started or refilled from now on: exits must empty the book.
                for request in self.book.shut_down() {
                    fail(request.events, ServeError::ShuttingDown);
                }
                for (id, addr) in &self.addrs {
                    if let Some(slot) = self.book.processes.get_mut(id) {
                        slot.retiring = true;
                    }
                    addr.do_send(Retire { grace });
                }
                // Processes kill themselves after `grace`; this is the backstop.
                ctx.run_later(grace + Duration::from_secs(3), |act, _| {
                    for addr in act.addrs.values() {
                        addr.do_send(Kill);
                    }
                });
                // Starts that were never spawned have no actor to wait for.
                let dead: Vec<u64> = self
                    .book
                    .processes
                    .keys()
                    .filter(|id| !self.addrs.contains_key(id))
                    .copied()
                    .collect();
                for id in dead {
                    self.book.processes.remove(&id);
                }
                self.finish_shutdown_if_empty();
            }
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Starts the supervisor on the current arbiter.
pub fn start(
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    installed: &BTreeMap<Backend, Option<PathBuf>>,
) -> SupervisorHandle {
    SupervisorHandle::new(SessionSupervisor::new(settings, metrics, installed.clone()).start())
}
