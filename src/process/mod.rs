//! The CLI process actor: one [`CliProcess`] owns one long-lived CLI child — its pipes, its
//! watchdogs, its lifecycle — and speaks the CLI's protocol through a sans-IO
//! [`driver::Driver`].
//!
//! The actor feeds the driver (bind, begin turn, interrupt turn, each stdout line) and carries out
//! what it hands back: lines go to the child's stdin, turn events to the turns' channels, and
//! the lifecycle and each turn's end to the supervisor. Every wait has a watchdog that kills the
//! child when it expires (not ready in time, a turn that ignores its interrupt, a reset that
//! never answers); a dead child fails its turns and is reported to the supervisor, which
//! replaces it.
//!
//! The actor works on any reader/writer pair ([`ProcessIo`]); only [`spawn`] starts processes.

pub mod driver;
mod files;
pub mod messages;
pub mod spawn;
pub mod state;
#[cfg(test)]
mod tests;
mod turns;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use crate::error::ServeError;
use crate::protocol::TurnEvent;
use driver::{Driver, DriverEvent, Outbox};
pub use messages::*;
pub use spawn::ProcessIo;
use state::{ActiveTurn, ProcessState};

/// Longest stdout line accepted; a result echoing a large answer fits easily.
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;
const STDERR_LINES_KEPT: usize = 20;

/// The time limits a process enforces on itself.
#[derive(Debug, Clone, Copy)]
pub struct ProcessLimits {
    pub request_timeout: Duration,
    /// Longest wait for a turn's first event, and between two of its events: the server's own
    /// stall timers (the CLIs notice a silent upstream only after minutes).
    pub first_byte_timeout: Duration,
    pub idle_timeout: Duration,
    pub ready_timeout: Duration,
    pub interrupt_grace: Duration,
}

pub struct CliProcess {
    id: u64,
    /// The backend's name, for errors and logs.
    backend: &'static str,
    driver: Box<dyn Driver>,
    supervisor: Recipient<ProcessNotice>,
    /// Lines for the writer task that owns the child's stdin. Dropping it (retiring) ends that
    /// task, which drops stdin: the CLI sees EOF and exits.
    stdin: Option<mpsc::UnboundedSender<String>>,
    /// The OS child (None in tests on in-memory pipes); reaped when stdout closes.
    child: Option<Child>,
    state: ProcessState,
    /// Bumped on every state change; a watchdog armed in one state does nothing in a later one.
    epoch: u64,
    limits: ProcessLimits,
    /// The turns it runs, at most the driver's capacity; the supervisor counts the same ones.
    turns: BTreeMap<TurnId, ActiveTurn>,
    /// Whether the process ever became ready (else its exit is a failed start).
    was_ready: bool,
    /// Set by `Retire` while turns run: drain once they are over.
    retire_after_turns: Option<Duration>,
    /// Why the server ended the process, when it did (reported instead of the bare exit status).
    exit_reason: Option<String>,
    stderr_tail: VecDeque<String>,
    /// stdout ended and the child is being reaped; the actor stops once that is done.
    reaping: bool,
}

/// A stderr line, wrapped so it has its own `StreamHandler` beside stdout's.
struct StderrLine(Result<String, LinesCodecError>);

impl CliProcess {
    /// Starts the actor on `io`, speaking `backend`'s protocol through `driver`.
    pub fn start(
        id: u64,
        io: ProcessIo,
        backend: &'static str,
        driver: Box<dyn Driver>,
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
                backend,
                driver,
                supervisor,
                stdin: Some(spawn_writer(id, io.stdin)),
                child: io.child,
                state: ProcessState::Spawned,
                epoch: 0,
                limits,
                turns: BTreeMap::new(),
                was_ready: false,
                retire_after_turns: None,
                exit_reason: None,
                stderr_tail: VecDeque::new(),
                reaping: false,
            }
        })
    }

    fn notify(&self, event: ProcessEvent) {
        self.supervisor
            .do_send(ProcessNotice { id: self.id, event });
    }

    fn set_state(&mut self, state: ProcessState) {
        let before = self.state.lifecycle();
        self.state = state;
        self.epoch += 1;
        let now = state.lifecycle();
        if now != before {
            log::debug!("process {}: {before:?} -> {now:?}", self.id);
            self.notify(ProcessEvent::StateChanged(now));
        }
    }

    /// Carries out the driver's file operations, writes its lines and acts on its events, in
    /// that order.
    fn apply(&mut self, out: Outbox, ctx: &mut Context<Self>) {
        let unwritten = files::carry_out(self.id, out.files);
        if let Some(stdin) = &self.stdin {
            for line in out.lines {
                // A closed writer means the child is gone; stdout's EOF reports that.
                let _ = stdin.send(line);
            }
        }
        for event in out.events {
            match event {
                DriverEvent::Probed if self.state == ProcessState::Probing => {
                    self.was_ready = true;
                    self.set_state(ProcessState::Unbound);
                }
                DriverEvent::Ready if self.state == ProcessState::Binding => {
                    self.was_ready = true;
                    self.set_state(ProcessState::Ready);
                }
                DriverEvent::Probed | DriverEvent::Ready => {}
                DriverEvent::StartFailed(why) => self.kill(why, ctx),
                DriverEvent::Turn { turn, event } => self.on_turn_event(turn, event, ctx),
                DriverEvent::Released { turn, reusable } => {
                    self.on_released(turn, reusable, false, ctx)
                }
                DriverEvent::Kept { turn } => self.on_released(turn, true, true, ctx),
                DriverEvent::Dropped { conversation } => {
                    self.notify(ProcessEvent::ConversationDropped { conversation })
                }
                DriverEvent::WakeAfter { turn, after } => {
                    ctx.run_later(after, move |act, ctx| {
                        act.drive(ctx, |d, out| d.wake(turn, out))
                    });
                }
                DriverEvent::Violation(detail) => self.protocol_violation(detail, ctx),
            }
        }
        // After the events, so the driver has taken in its own outbox before it hears of this.
        for turn in unwritten {
            let reason = ServeError::BackendUnavailable {
                backend: self.backend,
                reason: "the server could not write the conversation's files".into(),
            };
            self.interrupt_turn(turn, reason, ctx);
        }
    }

    /// Runs a driver call and applies what it produced.
    fn drive(&mut self, ctx: &mut Context<Self>, call: impl FnOnce(&mut dyn Driver, &mut Outbox)) {
        let mut out = Outbox::default();
        call(self.driver.as_mut(), &mut out);
        self.apply(out, ctx);
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

    /// A broken protocol makes the process untrustworthy: its turns fail with the reason, and
    /// it is killed.
    fn protocol_violation(&mut self, detail: String, ctx: &mut Context<Self>) {
        log::warn!("process {}: {detail}", self.id);
        for turn in self.turns.values_mut() {
            turn.interrupted = Some(ServeError::BackendProtocol {
                backend: self.backend,
                detail: detail.clone(),
            });
        }
        self.kill(detail, ctx);
    }
}

/// How often running turns are checked for a stalled upstream.
const STALL_CHECK_EVERY: Duration = Duration::from_secs(1);

impl Actor for CliProcess {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(STALL_CHECK_EVERY, |act, ctx| act.interrupt_stalled(ctx));
    }
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

impl StreamHandler<Result<String, LinesCodecError>> for CliProcess {
    fn handle(&mut self, item: Result<String, LinesCodecError>, ctx: &mut Self::Context) {
        match item {
            Ok(line) => self.drive(ctx, |d, out| d.on_line(&line, out)),
            Err(e) => self.protocol_violation(format!("unreadable stdout: {e}"), ctx),
        }
    }

    /// stdout closed: the child is gone (or going). Reap it, fail its turns, tell the supervisor.
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
        // Nothing new is accepted while the child is reaped; the turns fail afterwards, with the
        // exit status.
        self.set_state(ProcessState::Draining);
        self.stdin = None;
        ctx.spawn(reap.into_actor(self).map(move |status, act, ctx| {
            let status = match act.exit_reason.take() {
                Some(reason) => format!("{reason} ({status})"),
                None => status,
            };
            for (_, turn) in std::mem::take(&mut act.turns) {
                for timer in turn.timers {
                    ctx.cancel_future(timer);
                }
                let reason = turn
                    .interrupted
                    .unwrap_or_else(|| ServeError::ProcessExited {
                        backend: act.backend,
                        status: status.clone(),
                    });
                if let Some(events) = turn.events {
                    let _ = events.send(TurnEvent::Failed(reason));
                }
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

impl StreamHandler<StderrLine> for CliProcess {
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

impl Handler<Bind> for CliProcess {
    type Result = ();

    fn handle(&mut self, msg: Bind, ctx: &mut Self::Context) {
        if !matches!(
            self.state,
            ProcessState::Spawned | ProcessState::Probing | ProcessState::Unbound
        ) {
            log::warn!("process {}: bind ignored, already bound", self.id);
            return;
        }
        self.set_state(ProcessState::Binding);
        let after = self.limits.ready_timeout;
        self.arm_watchdog(
            after,
            format!("did not become ready within {}s", after.as_secs()),
            ctx,
        );
        self.drive(ctx, |d, out| {
            d.bind(
                &msg.system_prompt,
                msg.output_schema.as_ref(),
                &msg.tools,
                out,
            )
        });
    }
}

impl Handler<Probe> for CliProcess {
    type Result = ();

    fn handle(&mut self, _: Probe, ctx: &mut Self::Context) {
        if self.state != ProcessState::Spawned {
            return;
        }
        self.set_state(ProcessState::Probing);
        let after = self.limits.ready_timeout;
        self.arm_watchdog(
            after,
            format!("did not answer its probe within {}s", after.as_secs()),
            ctx,
        );
        self.drive(ctx, |d, out| d.probe(out));
    }
}

impl Handler<Retire> for CliProcess {
    type Result = ();

    fn handle(&mut self, msg: Retire, ctx: &mut Self::Context) {
        if self.turns.is_empty() {
            return self.drain(msg.grace, ctx);
        }
        self.retire_after_turns = Some(msg.grace);
        // The turns get the whole grace period; past it the process is killed.
        ctx.run_later(msg.grace, |act, ctx| {
            if !act.turns.is_empty() {
                log::warn!("process {}: turns outlived the grace period", act.id);
                act.kill("turn outlived the shutdown grace period".into(), ctx);
            }
        });
    }
}

impl Handler<Forget> for CliProcess {
    type Result = ();

    fn handle(&mut self, msg: Forget, ctx: &mut Self::Context) {
        self.drive(ctx, |d, out| d.forget(msg.conversation, out));
    }
}

impl Handler<Kill> for CliProcess {
    type Result = ();

    fn handle(&mut self, _: Kill, ctx: &mut Self::Context) {
        self.kill("killed by the server".into(), ctx);
    }
}
