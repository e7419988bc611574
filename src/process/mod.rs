//! The CLI process actor: one [`ClaudeProcess`] owns one long-lived Claude Code child and speaks
//! its stream-json protocol.
//!
//! A turn is a queue of [`Step`]s (switch model, replay history, send the prompt) taken one at a
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

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use crate::error::{ServeError, UpstreamKind};
use crate::protocol::{Role, TurnEvent, TurnOutcome, Usage};
use cli::{CliLine, ControlResponse, TurnResult};
pub use messages::*;
pub use spawn::ProcessIo;
pub use state::StateName;
use state::{ActiveTurn, Awaiting, ProcessState, Step};

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

    /// Sends a user line of the running turn under a fresh id, remembered for the reset.
    fn write_user(&mut self, content: &Value, should_query: bool) {
        let uuid = uuid::Uuid::new_v4().to_string();
        self.write(&cli::user_line(content, should_query, &uuid));
        if let ProcessState::Busy(turn) = &mut self.state {
            turn.first_message.get_or_insert_with(|| uuid.clone());
            turn.last_message = Some(uuid);
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

    fn on_line(&mut self, line: CliLine, ctx: &mut Context<Self>) {
        match line {
            CliLine::StreamEvent { event } => {
                if let ProcessState::Busy(turn) = &mut self.state {
                    if turn.awaiting == Awaiting::FinalResult {
                        if turn.first_token.is_none() && event["type"] == "content_block_delta" {
                            turn.first_token = Some(Instant::now());
                        }
                        // A send error means the client is gone; the watcher interrupts the turn.
                        let _ = turn.events.send(TurnEvent::Stream(event));
                    }
                }
            }
            CliLine::Assistant { message } => {
                if let ProcessState::Busy(turn) = &mut self.state {
                    if message.id != turn.message_id {
                        turn.message_id = message.id;
                        turn.content.clear();
                    }
                    turn.content.extend(message.content);
                }
            }
            CliLine::Result(result) => self.on_result(*result, ctx),
            CliLine::ControlResponse { response } => self.on_control_response(response, ctx),
            CliLine::System { subtype, rest } => {
                if subtype.as_deref() == Some("api_retry") {
                    log::warn!(
                        "process {}: the CLI retries the upstream request: {}",
                        self.id,
                        Value::Object(rest)
                    );
                }
            }
            CliLine::ControlRequest {
                request_id,
                request,
            } => {
                // The chat profile gives the model no tools, so nothing should ask; never leave
                // the CLI waiting on an answer.
                log::warn!("process {}: unexpected CLI request {request}", self.id);
                self.write(
                    &serde_json::json!({"type": "control_response", "response": {
                    "subtype": "error", "request_id": request_id,
                    "error": "not supported by this server"}}),
                );
            }
            CliLine::Other => {}
        }
    }

    fn on_control_response(&mut self, resp: ControlResponse, ctx: &mut Context<Self>) {
        let success = resp.subtype == "success";
        log::debug!(
            "process {}: control response {} ({})",
            self.id,
            resp.request_id,
            resp.subtype
        );
        match &mut self.state {
            ProcessState::Initializing { control_id } if *control_id == resp.request_id => {
                if success {
                    self.was_ready = true;
                    self.set_state(ProcessState::Idle);
                } else {
                    let why = format!("initialize failed: {}", resp.error.unwrap_or_default());
                    self.kill(why, ctx);
                }
            }
            ProcessState::Probing { control_id } if *control_id == resp.request_id => {
                if success {
                    self.was_ready = true;
                    self.set_state(ProcessState::Unbound);
                } else {
                    let why = format!("probe failed: {}", resp.error.unwrap_or_default());
                    self.kill(why, ctx);
                }
            }
            ProcessState::Busy(turn)
                if turn.awaiting == Awaiting::Control(resp.request_id.clone()) =>
            {
                if !success {
                    turn.interrupted.get_or_insert(ServeError::Upstream {
                        kind: UpstreamKind::InvalidRequest,
                        status: None,
                        message: format!(
                            "the CLI refused the model: {}",
                            resp.error.unwrap_or_default()
                        ),
                    });
                }
                self.advance(ctx);
            }
            ProcessState::Resetting { control_id, .. } if *control_id == resp.request_id => {
                // Swapped out in place: `after_reset` reports the state that follows.
                let ProcessState::Resetting { report, .. } =
                    std::mem::replace(&mut self.state, ProcessState::Idle)
                else {
                    return;
                };
                let rewound = resp.response.get("rewound").and_then(Value::as_bool) == Some(true);
                if !(success && rewound) {
                    log::warn!(
                        "process {}: reset failed ({}); retiring it",
                        self.id,
                        resp.response
                    );
                }
                self.after_reset(report, success && rewound, ctx);
            }
            _ => {}
        }
    }

    fn on_result(&mut self, result: TurnResult, ctx: &mut Context<Self>) {
        let ProcessState::Busy(turn) = &mut self.state else {
            log::debug!("process {}: result outside a turn ignored", self.id);
            return;
        };
        log::debug!(
            "process {}: result {} for message {:?}",
            self.id,
            result.subtype,
            result.user_message_uuid
        );
        match turn.awaiting {
            Awaiting::ReplayResult => self.advance(ctx),
            Awaiting::FinalResult => self.end_turn(Some(result), ctx),
            Awaiting::Control(_) => log::debug!("process {}: unexpected result", self.id),
        }
    }

    /// Takes the turn's next step, or ends it when it was interrupted between steps.
    fn advance(&mut self, ctx: &mut Context<Self>) {
        loop {
            let ProcessState::Busy(turn) = &mut self.state else {
                return;
            };
            if turn.interrupted.is_some() {
                return self.end_turn(None, ctx);
            }
            let Some(step) = turn.steps.pop_front() else {
                return self.end_turn(None, ctx);
            };
            let awaiting = match step {
                Step::SetModel(model) => {
                    self.model.clone_from(&model);
                    Awaiting::Control(self.control(cli::set_model_request(&model)))
                }
                Step::ReplayAssistant(content) => {
                    self.write(&cli::assistant_line(&content));
                    continue;
                }
                Step::ReplayUser(content) => {
                    self.write_user(&content, false);
                    Awaiting::ReplayResult
                }
                Step::Prompt(content) => {
                    self.write_user(&content, true);
                    Awaiting::FinalResult
                }
            };
            if let ProcessState::Busy(turn) = &mut self.state {
                turn.awaiting = awaiting;
            }
            return;
        }
    }

    /// Reports the turn's outcome to its client, then resets the conversation.
    fn end_turn(&mut self, result: Option<TurnResult>, ctx: &mut Context<Self>) {
        let ProcessState::Busy(turn) = std::mem::replace(&mut self.state, ProcessState::Idle)
        else {
            return;
        };
        let turn = *turn;
        for timer in turn.timers {
            ctx.cancel_future(timer);
        }
        let (mut usage, mut cost_usd) = (None, 0.0);
        let event = match (turn.interrupted, result) {
            (Some(reason), _) => TurnEvent::Failed(reason),
            (None, Some(r)) => {
                cost_usd = (r.total_cost_usd - self.last_total_cost).max(0.0);
                self.last_total_cost = r.total_cost_usd;
                let event = outcome_event(r, turn.content, cost_usd);
                if let TurnEvent::Done(outcome) = &event {
                    usage = Some(outcome.usage.clone());
                }
                event
            }
            (None, None) => TurnEvent::Failed(ServeError::BackendProtocol {
                backend: BACKEND,
                detail: "the turn ended without a result".into(),
            }),
        };
        let (end, error) = match &event {
            TurnEvent::Failed(ServeError::TurnTimedOut { .. }) => (TurnEnd::TimedOut, None),
            TurnEvent::Failed(ServeError::Cancelled) => (TurnEnd::Cancelled, None),
            TurnEvent::Failed(e) => (TurnEnd::Failed, Some(e.to_string())),
            _ => (TurnEnd::Ok, None),
        };
        let report = Box::new(TurnReport {
            request_id: turn.request_id.clone(),
            end,
            duration: turn.submitted.elapsed(),
            time_to_first_token: turn.first_token.map(|t| t.duration_since(turn.submitted)),
            model: self.model.clone(),
            usage,
            cost_usd,
            error: error
                .or_else(|| (end == TurnEnd::TimedOut).then(|| "request timed out".to_string())),
        });
        log::debug!(
            "process {}: request {} ended ({end:?}) after {} ms",
            self.id,
            turn.request_id,
            turn.started.elapsed().as_millis()
        );
        let _ = turn.events.send(event);
        match (turn.first_message, turn.last_message) {
            (Some(first), Some(last)) => {
                let control_id = self.control(cli::rewind_request(&first, &last));
                self.set_state(ProcessState::Resetting { control_id, report });
                let grace = self.limits.interrupt_grace;
                self.arm_watchdog(grace, "reset did not answer".into(), ctx);
            }
            // Nothing reached the conversation: already clean.
            _ => self.after_reset(report, true, ctx),
        }
    }

    fn after_reset(&mut self, report: Box<TurnReport>, reusable: bool, ctx: &mut Context<Self>) {
        self.notify(ProcessEvent::TurnFinished { reusable, report });
        match (reusable, self.retire_after_turn) {
            (true, None) => self.set_state(ProcessState::Idle),
            (_, grace) => self.drain(grace.unwrap_or(self.limits.interrupt_grace), ctx),
        }
    }

    /// Stops the running turn `request_id` (if it is still the running one) with `reason`.
    fn interrupt_turn(&mut self, request_id: &str, reason: ServeError, ctx: &mut Context<Self>) {
        let ProcessState::Busy(turn) = &mut self.state else {
            return;
        };
        if turn.request_id != request_id || turn.interrupted.is_some() {
            return;
        }
        log::info!(
            "process {}: interrupting request {request_id}: {reason}",
            self.id
        );
        turn.interrupted = Some(reason);
        if turn.awaiting == Awaiting::FinalResult {
            self.control(cli::interrupt_request());
        }
        let grace = self.limits.interrupt_grace;
        self.arm_watchdog(
            grace,
            format!("turn did not stop {}s after interrupt", grace.as_secs()),
            ctx,
        );
    }

    /// Protocol violations make the process untrustworthy: fail the turn with the reason, kill.
    fn protocol_violation(&mut self, detail: String, ctx: &mut Context<Self>) {
        log::warn!("process {}: {detail}", self.id);
        if let ProcessState::Busy(turn) = &mut self.state {
            turn.interrupted = Some(ServeError::BackendProtocol {
                backend: BACKEND,
                detail: detail.clone(),
            });
        }
        self.kill(detail, ctx);
    }
}

/// The client's view of a finished `result`.
fn outcome_event(r: TurnResult, content: Vec<Value>, cost_usd: f64) -> TurnEvent {
    if r.is_error {
        return TurnEvent::Failed(ServeError::Upstream {
            kind: UpstreamKind::from_status(r.api_error_status),
            status: r.api_error_status,
            message: r.error_message(),
        });
    }
    let content = if content.is_empty() {
        // No assistant line was seen (should not happen); fall back to the result text.
        vec![serde_json::json!({"type": "text", "text": r.result.clone().unwrap_or_default()})]
    } else {
        content
    };
    TurnEvent::Done(TurnOutcome {
        content,
        stop_reason: r.stop_reason,
        usage: Usage {
            input_tokens: r.usage.input_tokens,
            output_tokens: r.usage.output_tokens,
            cache_creation_input_tokens: r.usage.cache_creation_input_tokens,
            cache_read_input_tokens: r.usage.cache_read_input_tokens,
        },
        cost_usd,
        duration_ms: r.duration_ms,
    })
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

impl Handler<RunTurn> for ClaudeProcess {
    type Result = ();

    fn handle(&mut self, RunTurn(req): RunTurn, ctx: &mut Self::Context) {
        if !matches!(self.state, ProcessState::Idle) || self.retire_after_turn.is_some() {
            let _ = req
                .events
                .send(TurnEvent::Failed(ServeError::BackendUnavailable {
                    backend: BACKEND,
                    reason: "the process given the request was not idle".into(),
                }));
            return;
        }
        let mut steps = VecDeque::with_capacity(req.history.len() + 2);
        if req.cli_model != self.model {
            steps.push_back(Step::SetModel(req.cli_model));
        }
        steps.extend(req.history.into_iter().map(|m| match m.role {
            Role::User => Step::ReplayUser(m.content),
            Role::Assistant => Step::ReplayAssistant(m.content),
        }));
        steps.push_back(Step::Prompt(req.prompt));

        let request_id = req.request_id;
        let timeout = self.limits.request_timeout;
        let rid = request_id.clone();
        let deadline = ctx.run_later(timeout, move |act, ctx| {
            act.interrupt_turn(&rid, ServeError::TurnTimedOut { after: timeout }, ctx)
        });
        let events = req.events.clone();
        let rid = request_id.clone();
        let client_gone = ctx.spawn(
            async move { events.closed().await }
                .into_actor(self)
                .map(move |(), act, ctx| act.interrupt_turn(&rid, ServeError::Cancelled, ctx)),
        );
        let turn = ActiveTurn {
            request_id,
            events: req.events,
            steps,
            awaiting: Awaiting::ReplayResult,
            first_message: None,
            last_message: None,
            interrupted: None,
            message_id: None,
            content: Vec::new(),
            started: Instant::now(),
            submitted: req.submitted,
            first_token: None,
            timers: vec![deadline, client_gone],
        };
        self.set_state(ProcessState::Busy(Box::new(turn)));
        self.advance(ctx);
    }
}

impl Handler<Interrupt> for ClaudeProcess {
    type Result = ();

    fn handle(&mut self, msg: Interrupt, ctx: &mut Self::Context) {
        if let ProcessState::Busy(turn) = &self.state {
            let rid = turn.request_id.clone();
            self.interrupt_turn(&rid, msg.reason, ctx);
        }
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
