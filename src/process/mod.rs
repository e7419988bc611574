//! The CLI process actor: one [`ClaudeProcess`] owns one long-lived Claude Code child and speaks
//! its stream-json protocol.
//!
//! A turn is a queue of [`Step`](state::Step)s (switch model, replay history, send the prompt) taken one at a
//! time as the CLI acknowledges each; the CLI's `stream_event` lines go to the turn's event
//! channel as they arrive; the `result` line ends the turn; a `rewind_conversation` then empties
//! the conversation so the next request starts clean. Every wait has a watchdog that kills the
//! child when it expires; a dead child is reported to the supervisor, which replaces it.
//!
//! The actor works on any reader/writer pair ([`ProcessIo`]); only [`spawn`] starts processes.

pub mod cli;
pub mod messages;
pub mod spawn;
pub mod state;
#[cfg(test)]
mod tests;
mod turn;

use std::collections::VecDeque;
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use crate::error::ServeError;
use crate::protocol::TurnEvent;
pub use messages::*;
pub use spawn::ProcessIo;
use state::ProcessState;
pub use state::StateName;

const BACKEND: &str = "claude";
/// Longest stdout line accepted; a result echoing a large answer fits easily.
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
const STDERR_LINES_KEPT: usize = 20;

/// The time limits a process enforces on itself.
#[derive(Debug, Clone, Copy)]
pub struct ProcessLimits {
    pub request_timeout: Duration,
    pub ready_timeout: Duration,
    pub interrupt_grace: Duration,
}

pub struct ClaudeProcess {
    id: u64,
    supervisor: Recipient<ProcessNotice>,
    /// Lines for the writer task that owns the child's stdin. Dropping it (retiring) ends that
    /// task, which drops stdin: the CLI sees EOF and exits.
    stdin: Option<mpsc::UnboundedSender<String>>,
    /// The OS child (None in tests on in-memory pipes); reaped when stdout closes.
    child: Option<Child>,
    state: ProcessState,
    /// The state name the supervisor last heard of (states are sometimes swapped out in place).
    reported: StateName,
    /// Bumped on every state change; a watchdog armed in one state does nothing in a later one.
    epoch: u64,
    limits: ProcessLimits,
    /// The model the CLI currently runs (switched per turn with `set_model`).
    model: String,
    /// Whether the process ever answered its readiness probe (else its exit is a failed start).
    was_ready: bool,
    /// Set by `Retire` while a turn runs: drain once it is over.
    retire_after_turn: Option<Duration>,
    /// Why the server ended the process, when it did (reported instead of the bare exit status).
    exit_reason: Option<String>,
    stderr_tail: VecDeque<String>,
    /// The CLI's `total_cost_usd` is cumulative; per-turn cost is the difference.
    last_total_cost: f64,
    next_control: u64,
    /// stdout ended and the child is being reaped; the actor stops once that is done.
    reaping: bool,
}

/// A stderr line, wrapped so it has its own `StreamHandler` beside stdout's.
struct StderrLine(Result<String, LinesCodecError>);

impl ClaudeProcess {
    /// Starts the actor on `io`. `model` is the model the CLI was started with.
    pub fn start(
        id: u64,
        io: ProcessIo,
        model: String,
        limits: ProcessLimits,
        supervisor: Recipient<ProcessNotice>,
    ) -> Addr<Self> {
        Self::create(move |ctx| {
            let stdout =
                FramedRead::new(io.stdout, LinesCodec::new_with_max_length(MAX_LINE_BYTES));
            ctx.add_stream(stdout);
            if let Some(stderr) = io.stderr {
                let lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(64 * 1024));
                ctx.add_stream(lines.map(StderrLine));
            }
            Self {
                id,
                supervisor,
                stdin: Some(spawn_writer(id, io.stdin)),
                child: io.child,
                state: ProcessState::Spawned,
                reported: StateName::Starting,
                epoch: 0,
                limits,
                model,
                was_ready: false,
                retire_after_turn: None,
                exit_reason: None,
                stderr_tail: VecDeque::new(),
                last_total_cost: 0.0,
                next_control: 0,
                reaping: false,
            }
        })
    }

    fn notify(&self, event: ProcessEvent) {
        self.supervisor
            .do_send(ProcessNotice { id: self.id, event });
    }

    fn set_state(&mut self, state: ProcessState) {
        self.state = state;
        self.epoch += 1;
        let name = self.state.name();
        if name != self.reported {
            log::debug!("process {}: {:?} -> {name:?}", self.id, self.reported);
            self.reported = name;
            self.notify(ProcessEvent::StateChanged(name));
        }
    }

    fn write(&mut self, line: &Value) {
        // serde_json never emits a raw newline, so one value is always exactly one line.
        if let Some(stdin) = &self.stdin {
            // A closed writer means the child is gone; stdout's EOF reports that.
            let _ = stdin.send(line.to_string());
        }
    }

    fn control(&mut self, request: Value) -> String {
        self.next_control += 1;
        let id = format!("clinvoker-{}-{}", self.id, self.next_control);
        self.write(&cli::control_line(&id, request));
        id
    }

    /// Kills the child if the process is still in the state it was in when this was armed.
    fn arm_watchdog(&self, after: Duration, reason: String, ctx: &mut Context<Self>) {
        let epoch = self.epoch;
        ctx.run_later(after, move |act, ctx| {
            if act.epoch == epoch {
                log::warn!("process {}: {reason}; killing it", act.id);
                act.kill(reason, ctx);
            }
        });
    }

    fn kill(&mut self, reason: String, ctx: &mut Context<Self>) {
        self.exit_reason.get_or_insert(reason);
        match self.child.as_mut() {
            Some(child) => {
                if let Err(e) = child.start_kill() {
                    log::debug!("process {}: kill: {e}", self.id);
                }
            }
            // In-memory pipes: there is nothing to kill, so end as if stdout had closed.
            None => StreamHandler::<Result<String, LinesCodecError>>::finished(self, ctx),
        }
    }

    /// Closes stdin (the CLI exits on EOF) and kills the child if it is still there after `grace`.
    fn drain(&mut self, grace: Duration, ctx: &mut Context<Self>) {
        if matches!(self.state, ProcessState::Draining | ProcessState::Exited) {
            return;
        }
        self.set_state(ProcessState::Draining);
        self.stdin = None;
        self.arm_watchdog(
            grace,
            format!("still running {}s after stdin closed", grace.as_secs()),
            ctx,
        );
    }
}

impl Actor for ClaudeProcess {
    type Context = Context<Self>;
}

/// Writes lines to the child's stdin in order until the sender is dropped or the pipe breaks.
fn spawn_writer(
    id: u64,
    mut stdin: Box<dyn AsyncWrite + Unpin + Send>,
) -> mpsc::UnboundedSender<String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    actix::spawn(async move {
        while let Some(mut line) = rx.recv().await {
            line.push('\n');
            if let Err(e) = async {
                stdin.write_all(line.as_bytes()).await?;
                stdin.flush().await
            }
            .await
            {
                // A broken pipe means the child is gone; stdout's EOF ends the actor.
                log::debug!("process {id}: stdin: {e}");
                return;
            }
        }
        let _ = stdin.shutdown().await;
    });
    tx
}

impl StreamHandler<Result<String, LinesCodecError>> for ClaudeProcess {
    fn handle(&mut self, item: Result<String, LinesCodecError>, ctx: &mut Self::Context) {
        let line = match item {
            Ok(line) => line,
            Err(e) => return self.protocol_violation(format!("unreadable stdout: {e}"), ctx),
        };
        if line.trim().is_empty() {
            return;
        }
        match cli::parse_line(&line) {
            Ok(parsed) => self.on_line(parsed, ctx),
            Err(_) => {
                let shown: String = line.chars().take(120).collect();
                self.protocol_violation(format!("non-JSON line on stdout: {shown:?}"), ctx)
            }
        }
    }

    /// stdout closed: the child is gone (or going). Reap it, fail any turn, tell the supervisor.
    fn finished(&mut self, ctx: &mut Self::Context) {
        if self.reaping {
            return;
        }
        self.reaping = true;
        let child = self.child.take();
        let reap = async move {
            let status = match child {
                None => "stdout closed".to_string(),
                Some(mut child) => {
                    match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
                        Ok(Ok(status)) => status.to_string(),
                        Ok(Err(e)) => format!("wait failed: {e}"),
                        Err(_) => {
                            let _ = child.kill().await;
                            "stdout closed; killed".to_string()
                        }
                    }
                }
            };
            // Lets the stderr stream deliver the child's last words (its reason for exiting).
            tokio::time::sleep(Duration::from_millis(50)).await;
            status
        };
        // Nothing new is accepted while the child is reaped; the turn (if any) fails afterwards,
        // with the exit status.
        let turn = match std::mem::replace(&mut self.state, ProcessState::Draining) {
            ProcessState::Busy(turn) => Some(turn),
            _ => None,
        };
        ctx.spawn(reap.into_actor(self).map(move |status, act, ctx| {
            let status = match act.exit_reason.take() {
                Some(reason) => format!("{reason} ({status})"),
                None => status,
            };
            if let Some(turn) = turn {
                for timer in turn.timers {
                    ctx.cancel_future(timer);
                }
                let reason = turn
                    .interrupted
                    .unwrap_or_else(|| ServeError::ProcessExited {
                        backend: BACKEND,
                        status: status.clone(),
                    });
                let _ = turn.events.send(TurnEvent::Failed(reason));
            }
            act.set_state(ProcessState::Exited);
            let stderr_tail = act
                .stderr_tail
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n");
            act.notify(ProcessEvent::Exited {
                status,
                was_ready: act.was_ready,
                stderr_tail,
            });
            ctx.stop();
        }));
    }
}

impl StreamHandler<StderrLine> for ClaudeProcess {
    fn handle(&mut self, StderrLine(item): StderrLine, _ctx: &mut Self::Context) {
        if let Ok(line) = item {
            log::debug!("process {} stderr: {line}", self.id);
            if self.stderr_tail.len() == STDERR_LINES_KEPT {
                self.stderr_tail.pop_front();
            }
            self.stderr_tail.push_back(line);
        }
    }

    /// stderr closing says nothing by itself; stdout's end is what ends the actor.
    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl Handler<Bind> for ClaudeProcess {
    type Result = ();

    fn handle(&mut self, msg: Bind, ctx: &mut Self::Context) {
        if !matches!(
            self.state,
            ProcessState::Spawned | ProcessState::Probing { .. } | ProcessState::Unbound
        ) {
            log::warn!("process {}: bind ignored, already bound", self.id);
            return;
        }
        let control_id = self.control(cli::initialize_request(&msg.system_prompt));
        self.set_state(ProcessState::Initializing { control_id });
        let after = self.limits.ready_timeout;
        self.arm_watchdog(
            after,
            format!("did not become ready within {}s", after.as_secs()),
            ctx,
        );
    }
}

impl Handler<Probe> for ClaudeProcess {
    type Result = ();

    fn handle(&mut self, _: Probe, ctx: &mut Self::Context) {
        if !matches!(self.state, ProcessState::Spawned) {
            return;
        }
        let control_id = self.control(cli::probe_request());
        self.set_state(ProcessState::Probing { control_id });
        let after = self.limits.ready_timeout;
        self.arm_watchdog(
            after,
            format!("did not answer its probe within {}s", after.as_secs()),
            ctx,
        );
    }
}

impl Handler<Retire> for ClaudeProcess {
    type Result = ();

    fn handle(&mut self, msg: Retire, ctx: &mut Self::Context) {
        match self.state {
            ProcessState::Busy(_) | ProcessState::Resetting { .. } => {
                self.retire_after_turn = Some(msg.grace);
                // The turn gets the whole grace period; past it the process is killed.
                self.arm_watchdog(
                    msg.grace,
                    "turn outlived the shutdown grace period".into(),
                    ctx,
                );
            }
            _ => self.drain(msg.grace, ctx),
        }
    }
}

impl Handler<Kill> for ClaudeProcess {
    type Result = ();

    fn handle(&mut self, _: Kill, ctx: &mut Self::Context) {
        self.kill("killed by the server".into(), ctx);
    }
}
