//! Driving one turn through the CLI: the queue of steps (switch model, replay history, prompt),
//! the stdout lines that advance it, the outcome it reports, and the reset that follows.

use std::collections::VecDeque;
use std::time::Instant;

use actix::prelude::*;
use serde_json::Value;

use super::cli::{self, CliLine, ControlResponse, TurnResult};
use super::messages::{Interrupt, ProcessEvent, RunTurn, TurnEnd, TurnReport};
use super::state::{ActiveTurn, Awaiting, ProcessState, Step};
use super::{ClaudeProcess, BACKEND};
use crate::error::{ServeError, UpstreamKind};
use crate::protocol::{Block, Role, StopReason, TurnEvent, TurnOutcome, Usage};

impl ClaudeProcess {
    /// Sends a user line of the running turn under a fresh id, remembered for the reset.
    fn write_user(&mut self, content: &Value, should_query: bool) {
        let uuid = uuid::Uuid::new_v4().to_string();
        self.write(&cli::user_line(content, should_query, &uuid));
        if let ProcessState::Busy(turn) = &mut self.state {
            turn.first_message.get_or_insert_with(|| uuid.clone());
            turn.last_message = Some(uuid);
        }
    }

    pub(super) fn on_line(&mut self, line: CliLine, ctx: &mut Context<Self>) {
        match line {
            CliLine::StreamEvent { event } => {
                if let ProcessState::Busy(turn) = &mut self.state {
                    if turn.awaiting == Awaiting::FinalResult {
                        for event in turn.demux.event(&event) {
                            if turn.first_token.is_none()
                                && matches!(event, TurnEvent::TextDelta(_))
                            {
                                turn.first_token = Some(Instant::now());
                            }
                            // A send error means the client is gone; the watcher interrupts the turn.
                            let _ = turn.events.send(event);
                        }
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
    pub(super) fn protocol_violation(&mut self, detail: String, ctx: &mut Context<Self>) {
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
        vec![Block::Text(r.result.clone().unwrap_or_default())]
    } else {
        cli::blocks(content)
    };
    TurnEvent::Done(TurnOutcome {
        content,
        stop_reason: StopReason::from_messages_api(r.stop_reason.as_deref()),
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
            demux: cli::StreamDemux::default(),
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
