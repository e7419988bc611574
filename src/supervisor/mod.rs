//! The session supervisor: the one owner of every pool, queue and process. HTTP handlers reach it
//! through [`SupervisorHandle`]; processes report to it with [`ProcessNotice`]s. Its decisions are
//! made by the pure [`pool::Book`]; this module only carries them out (start, bind, dispatch,
//! retire, refuse) and keeps the actor addresses.

pub mod handle;
pub mod messages;
pub mod pool;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::config::Settings;
use crate::error::ServeError;
use crate::process::spawn::{self, SpawnSpec};
use crate::process::{
    Bind, ClaudeProcess, Kill, ProcessEvent, ProcessLimits, ProcessNotice, Retire, RunTurn,
    StateName,
};
use crate::protocol::{PoolKey, TurnEvent};
pub use handle::SupervisorHandle;
use messages::*;
use pool::{Action, Book};

const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

/// Whether the supervisor takes new work.
enum Phase {
    Running,
    /// Refusing new work; each sender is answered once the last process has exited.
    ShuttingDown {
        done: Vec<oneshot::Sender<()>>,
    },
}

pub struct SessionSupervisor {
    settings: Arc<Settings>,
    spec: SpawnSpec,
    limits: ProcessLimits,
    book: Book,
    /// The actor of every process in `book.processes` that was started successfully.
    addrs: HashMap<u64, Addr<ClaudeProcess>>,
    phase: Phase,
    /// Where the CLI was found at startup, and its `--version`.
    cli_path: Option<PathBuf>,
    cli_version: Option<String>,
}

impl SessionSupervisor {
    pub fn new(settings: Arc<Settings>) -> Self {
        let claude = &settings.backends.claude;
        let spec = SpawnSpec::claude_chat(claude, &settings.server.state_dir);
        let p = &settings.pool;
        let limits = ProcessLimits {
            request_timeout: settings.request_timeout(),
            ready_timeout: Duration::from_secs(p.ready_timeout_secs),
            interrupt_grace: Duration::from_secs(p.interrupt_grace_secs),
        };
        Self {
            cli_path: spawn::resolve_command(&claude.command),
            cli_version: None,
            book: Book::new(settings.pool.clone()),
            spec,
            limits,
            addrs: HashMap::new(),
            phase: Phase::Running,
            settings,
        }
    }

    fn run(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) {
        for action in actions {
            match action {
                Action::Dispatch { process, request } => match self.addrs.get(&process) {
                    Some(addr) => addr.do_send(RunTurn(request)),
                    None => fail(request.events, unavailable("the chosen process is gone")),
                },
                Action::Spawn { process, pool } => self.start_process(process, pool, ctx),
                Action::Bind { process, pool } => {
                    if let Some(addr) = self.addrs.get(&process) {
                        log::info!("process {process}: bound to pool {}", pool.name());
                        addr.do_send(Bind {
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
                    log::info!("request {}: refused: {error}", request.request_id);
                    fail(request.events, error);
                }
                Action::Queued { pool, ticket } => {
                    let after = Duration::from_secs(self.settings.pool.queue_timeout_secs);
                    ctx.run_later(after, move |act, ctx| {
                        if let Some(action) = act.book.expire(&pool, ticket, Instant::now()) {
                            act.run(vec![action], ctx);
                        }
                    });
                }
            }
        }
    }

    fn start_process(&mut self, id: u64, pool: Option<PoolKey>, ctx: &mut Context<Self>) {
        let spec = match &pool {
            Some(key) => self.spec.for_pool(key, &self.settings.profiles.agentic),
            None => self.spec.clone(),
        };
        match spec.spawn() {
            Ok((io, pid)) => {
                self.book.started(id, pid);
                let model = self.settings.backends.claude.default_model.clone();
                let addr =
                    ClaudeProcess::start(id, io, model, self.limits, ctx.address().recipient());
                let pool_name = pool
                    .as_ref()
                    .map_or_else(|| "spare".to_string(), PoolKey::name);
                log::info!("process {id}: started pid {pid} for pool {pool_name}");
                if let Some(key) = pool {
                    addr.do_send(Bind {
                        system_prompt: key.system_prompt,
                    });
                }
                self.addrs.insert(id, addr);
            }
            Err(e) => {
                let reason = format!(
                    "cannot start `{}` in {}: {e}",
                    spec.program.display(),
                    spec.cwd.display()
                );
                log::error!("process {id}: {reason}");
                let actions = self.book.exited(id, false, &reason, Instant::now());
                self.run(actions, ctx);
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

    fn pool_status(&self, name: String, key: Option<&PoolKey>, now: Instant) -> PoolStatus {
        let p = &self.settings.pool;
        let queue = key.and_then(|k| self.book.pools.get(k));
        PoolStatus {
            name,
            backend: "claude",
            system_prompt: key.map(PoolKey::summary).unwrap_or_default(),
            limits: PoolLimitsView {
                max_processes: if key.is_some() {
                    p.max_processes
                } else {
                    p.spare_processes
                },
                min_idle: if key.is_some_and(PoolKey::is_default) {
                    p.min_idle
                } else {
                    0
                },
                max_queue: p.max_queue,
                queue_timeout_secs: p.queue_timeout_secs,
                max_turns_per_process: p.max_turns_per_process,
            },
            queued: queue.map_or(0, |q| q.queue.len()),
            served: queue.map_or(0, |q| q.served),
            refused: queue.map_or(0, |q| q.refused),
            failed: queue.map_or(0, |q| q.failed),
            processes: self
                .book
                .processes
                .iter()
                .filter(|(_, s)| s.pool.as_ref() == key)
                .map(|(id, s)| ProcessStatus {
                    id: *id,
                    pid: s.pid,
                    state: s.state,
                    turns: s.turns,
                    age_secs: now.duration_since(s.started).as_secs(),
                    idle_secs: match s.state {
                        StateName::Idle => now.duration_since(s.last_used).as_secs(),
                        _ => 0,
                    },
                    request_id: s.request_id.clone(),
                    retiring: s.retiring,
                })
                .collect(),
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
        match &self.cli_path {
            Some(path) => {
                let path = path.clone();
                ctx.spawn(
                    spawn::probe_version(path)
                        .into_actor(self)
                        .map(|version, act, _| {
                            log::info!(
                                "claude CLI version: {}",
                                version.as_deref().unwrap_or("unknown")
                            );
                            act.cli_version = version;
                        }),
                );
            }
            None => log::warn!(
                "claude CLI `{}` not found: requests will fail until it is installed",
                self.settings.backends.claude.command
            ),
        }
        let actions = self.book.rebalance(Instant::now());
        self.run(actions, ctx);
        ctx.run_interval(HOUSEKEEPING_EVERY, |act, ctx| {
            if matches!(act.phase, Phase::Running) {
                let actions = act.book.housekeeping(Instant::now());
                act.run(actions, ctx);
            }
        });
    }
}

impl Handler<Submit> for SessionSupervisor {
    type Result = ();

    fn handle(&mut self, Submit(request): Submit, ctx: &mut Self::Context) {
        if let Phase::ShuttingDown { .. } = self.phase {
            return fail(request.events, ServeError::ShuttingDown);
        }
        let actions = self.book.submit(request, Instant::now());
        self.run(actions, ctx);
    }
}

impl Handler<ProcessNotice> for SessionSupervisor {
    type Result = ();

    fn handle(&mut self, ProcessNotice { id, event }: ProcessNotice, ctx: &mut Self::Context) {
        let now = Instant::now();
        let actions = match event {
            ProcessEvent::StateChanged(state) => self.book.state_changed(id, state, now),
            ProcessEvent::TurnFinished { reusable, ok } => {
                if !reusable {
                    if let Some(slot) = self.book.processes.get_mut(&id) {
                        slot.retiring = true;
                    }
                }
                self.book.turn_finished(id, ok)
            }
            ProcessEvent::Exited {
                status,
                was_ready,
                stderr_tail,
            } => {
                self.addrs.remove(&id);
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
        if matches!(self.phase, Phase::Running) {
            self.run(actions, ctx);
        }
    }
}

impl Handler<GetPoolStatus> for SessionSupervisor {
    type Result = MessageResult<GetPoolStatus>;

    fn handle(&mut self, _: GetPoolStatus, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let mut pools: Vec<PoolStatus> = self
            .book
            .pools
            .keys()
            .map(|k| self.pool_status(k.name(), Some(k), now))
            .collect();
        pools.push(self.pool_status("claude/spare".into(), None, now));
        MessageResult(pools)
    }
}

impl Handler<GetHealth> for SessionSupervisor {
    type Result = MessageResult<GetHealth>;

    fn handle(&mut self, _: GetHealth, _: &mut Self::Context) -> Self::Result {
        let procs = &self.book.processes;
        let count = |s: StateName| procs.values().filter(|p| p.state == s).count();
        let found = self.cli_path.is_some();
        let degraded = !found || self.book.start_failures > 0;
        MessageResult(HealthStatus {
            status: if degraded { "degraded" } else { "ok" },
            backends: BackendHealth {
                claude: CliHealth {
                    command: self.settings.backends.claude.command.clone(),
                    found,
                    path: self.cli_path.as_ref().map(|p| p.display().to_string()),
                    version: self.cli_version.clone(),
                    start_failures: self.book.start_failures,
                    last_start_error: self.book.last_start_error.clone(),
                },
            },
            pools: self.book.pools.len(),
            processes: procs.len(),
            idle: count(StateName::Idle),
            busy: count(StateName::Busy) + count(StateName::Resetting),
            starting: count(StateName::Starting),
            queued: self.book.pools.values().map(|p| p.queue.len()).sum(),
        })
    }
}

impl Handler<Shutdown> for SessionSupervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, Shutdown { grace }: Shutdown, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        match &mut self.phase {
            Phase::ShuttingDown { done } => done.push(tx),
            Phase::Running => {
                log::info!(
                    "shutting down {} processes (grace {}s)",
                    self.addrs.len(),
                    grace.as_secs()
                );
                self.phase = Phase::ShuttingDown { done: vec![tx] };
                // Nothing is refilled from now on: exits must empty the book.
                self.book.limits.min_idle = 0;
                self.book.limits.spare_processes = 0;
                for request in self.book.drain_queues() {
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
pub fn start(settings: Arc<Settings>) -> SupervisorHandle {
    SupervisorHandle::new(SessionSupervisor::new(settings).start())
}
