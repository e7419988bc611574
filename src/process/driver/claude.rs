//! Claude Code's stream-json protocol as a [`Driver`]: one conversation per process.
//!
//! A turn is a queue of steps (switch model, replay history, send the prompt) taken one at a
//! time as the CLI acknowledges each; the CLI's `stream_event` lines become the turn's typed
//! events as they arrive; the `result` line of the prompt ends the turn; a
//! `rewind_conversation` then empties the conversation, and the slot is released once the CLI
//! confirms it — unless the turn asked to keep its conversation and ended cleanly: then it stays
//! (`Kept`), a turn that resumes it sends only the new messages, and the next turn of any other
//! conversation (or after `forget`) rewinds it first.
//!
//! A process bound to client tools serves them as an SDK MCP server ([`claude_mcp`]). When the
//! model stops for tool use and its `tools/call`s have arrived, the client's turn ends there
//! (`stop_reason: tool_use`); what becomes of the CLI's turn, still waiting on those calls, is
//! `ClaudeDriver::after_tool_use_answer`'s decision (in `claude_tool_turn.rs`).
//!
//! [`claude_mcp`]: super::claude_mcp

use serde_json::{json, Value};

use super::claude_mcp::{self as mcp, McpRequest};
use super::claude_wire::{self as wire, CliLine, ControlResponse, TurnResult};
use super::{Driver, DriverEvent, Outbox, TurnInput};
use crate::error::{ServeError, UpstreamKind};
use crate::process::messages::{ConversationId, TurnId};
use crate::protocol::tools::ClientTool;
use crate::protocol::TurnEvent;
use tool_turn::Hold;
use turn::{Awaiting, Held, Step, Turn};

const BACKEND: &str = "claude";

/// Where the protocol is. Transitions: `Fresh → Initializing → Idle ⇄ Busy → Resetting → Idle`
/// (`Initializing → Registering → Idle` with client tools);
/// a spare goes `Fresh → Probing → Unbound → Initializing → …`.
#[derive(Debug)]
enum Phase {
    Fresh,
    /// A spare: `get_settings` sent as the readiness probe (it does not bind a system prompt).
    Probing {
        control_id: String,
    },
    Unbound,
    /// `initialize` sent with the system prompt; waiting for its response.
    Initializing {
        control_id: String,
    },
    /// `mcp_set_servers` sent to register the client tools' server; waiting for its response.
    Registering {
        control_id: String,
    },
    Idle,
    Busy(Box<Turn>),
    /// `rewind_conversation` sent after `turn` ended (`None`: a forgotten parked turn, which
    /// no client waits for).
    Resetting {
        control_id: String,
        turn: Option<TurnId>,
    },
}

#[derive(Debug)]
pub struct ClaudeDriver {
    /// Prefix of control request ids, unique per process (`clinvoker-<process>-`).
    id_prefix: String,
    next_control: u64,
    phase: Phase,
    /// The model the CLI currently runs (switched per turn with `set_model`).
    model: String,
    /// The CLI's `total_cost_usd` is cumulative; per-turn cost is the difference.
    last_total_cost: f64,
    /// Bound to a structured-output schema: answers come whole, validated, in the `result`.
    structured: bool,
    /// The client tools bound with the process (empty: no MCP server).
    tools: Vec<ClientTool>,
    /// The conversation the CLI holds between turns, when one was kept.
    held: Option<Held>,
    /// A turn given while a forgotten parked tool turn still winds down: begun once it has.
    queued: Option<(TurnId, TurnInput)>,
}

impl ClaudeDriver {
    /// A driver for process `process`, whose CLI was started with `model`.
    pub fn new(process: u64, model: String) -> Self {
        Self {
            id_prefix: format!("clinvoker-{process}-"),
            next_control: 0,
            phase: Phase::Fresh,
            model,
            last_total_cost: 0.0,
            structured: false,
            tools: Vec::new(),
            held: None,
            queued: None,
        }
    }

    fn control(&mut self, request: Value, out: &mut Outbox) -> String {
        self.next_control += 1;
        let id = format!("{}{}", self.id_prefix, self.next_control);
        out.write(&wire::control_line(&id, request));
        id
    }

    /// Sends a user line of the running turn under a fresh id, remembered for the reset.
    fn write_user(&mut self, content: &Value, should_query: bool, out: &mut Outbox) {
        let uuid = uuid::Uuid::new_v4().to_string();
        out.write(&wire::user_line(content, should_query, &uuid));
        if let Phase::Busy(turn) = &mut self.phase {
            turn.first_message.get_or_insert_with(|| uuid.clone());
            turn.last_message = Some(uuid);
        }
    }

    fn on_parsed(&mut self, line: CliLine, out: &mut Outbox) {
        match line {
            // A structured answer is known valid only at the end (the CLI may retry): nothing of
            // it streams; the result carries it whole.
            CliLine::StreamEvent { .. } if self.structured => {}
            CliLine::StreamEvent { event } => {
                let tools = &self.tools;
                let is_client = |name: &str| tools.iter().any(|t| t.name == name);
                if let Phase::Busy(turn) = &mut self.phase {
                    if turn.awaiting == Awaiting::FinalResult && turn.tool_use_answered.is_none() {
                        for e in turn.demux.event(&event) {
                            let shown = match &mut turn.tool_watch {
                                Some(watch) => watch.on_event(&e, is_client),
                                None => true,
                            };
                            if shown {
                                out.turn(turn.id, e);
                            }
                        }
                        if let Some(watch) = &mut turn.tool_watch {
                            watch.on_stream(&event);
                        }
                    }
                }
                self.check_tool_stop(out);
            }
            CliLine::Assistant { message } => {
                if let Phase::Busy(turn) = &mut self.phase {
                    if message.id != turn.message_id {
                        turn.message_id = message.id;
                        turn.content.clear();
                    }
                    turn.content.extend(message.content);
                }
            }
            CliLine::Result(result) => self.on_result(*result, out),
            CliLine::ControlResponse { response } => self.on_control_response(response, out),
            CliLine::System { subtype, rest } => {
                if subtype.as_deref() == Some("api_retry") {
                    log::warn!(
                        "the CLI retries the upstream request: {}",
                        Value::Object(rest)
                    );
                }
            }
            CliLine::ControlRequest {
                request_id,
                request,
            } if request.get("subtype").and_then(Value::as_str) == Some("mcp_message") => {
                match mcp::on_message(&request_id, &request, &self.tools) {
                    McpRequest::Answer(line) => out.write(&line),
                    McpRequest::Call(call) => self.on_tool_call(call, out),
                }
            }
            CliLine::ControlRequest {
                request_id,
                request,
            } => {
                // The chat profile runs no tool of the CLI's own, so nothing should ask; never
                // leave the CLI waiting on an answer.
                log::warn!("unexpected CLI request {request}");
                out.write(&json!({"type": "control_response", "response": {
                    "subtype": "error", "request_id": request_id,
                    "error": "not supported by this server"}}));
            }
            CliLine::Other => {}
        }
    }

    fn on_control_response(&mut self, resp: ControlResponse, out: &mut Outbox) {
        let success = resp.subtype == "success";
        let error = || resp.error.clone().unwrap_or_default();
        match &mut self.phase {
            Phase::Initializing { control_id } if *control_id == resp.request_id => {
                match (success, self.tools.is_empty()) {
                    (true, true) => {
                        self.phase = Phase::Idle;
                        out.event(DriverEvent::Ready);
                    }
                    (true, false) => {
                        let control_id = self.control(mcp::set_servers_request(), out);
                        self.phase = Phase::Registering { control_id };
                    }
                    (false, _) => out.event(DriverEvent::StartFailed(format!(
                        "initialize failed: {}",
                        error()
                    ))),
                }
            }
            Phase::Registering { control_id } if *control_id == resp.request_id => {
                let added = resp.response.get("added").and_then(Value::as_array);
                if success && added.is_some_and(|a| a.iter().any(|s| s == mcp::SERVER)) {
                    self.phase = Phase::Idle;
                    out.event(DriverEvent::Ready);
                } else {
                    out.event(DriverEvent::StartFailed(format!(
                        "registering the client tools failed: {} {}",
                        error(),
                        resp.response
                    )));
                }
            }
            Phase::Probing { control_id } if *control_id == resp.request_id => {
                if success {
                    self.phase = Phase::Unbound;
                    out.event(DriverEvent::Probed);
                } else {
                    out.event(DriverEvent::StartFailed(format!(
                        "probe failed: {}",
                        error()
                    )));
                }
            }
            Phase::Busy(turn) if turn.awaiting == Awaiting::Rewind(resp.request_id.clone()) => {
                let rewound = resp.response.get("rewound").and_then(Value::as_bool) == Some(true);
                if success && rewound {
                    return self.advance(out);
                }
                log::warn!("reset failed ({}); the process retires", resp.response);
                let id = turn.id;
                self.phase = Phase::Idle;
                let reason = "the process could not reset a kept conversation".to_string();
                out.turn(
                    id,
                    TurnEvent::Failed(ServeError::BackendUnavailable {
                        backend: BACKEND,
                        reason,
                    }),
                );
                out.event(DriverEvent::Released {
                    turn: id,
                    reusable: false,
                });
            }
            Phase::Busy(turn) if turn.awaiting == Awaiting::Control(resp.request_id.clone()) => {
                if !success {
                    turn.refused.get_or_insert(ServeError::Upstream {
                        kind: UpstreamKind::InvalidRequest,
                        status: None,
                        message: format!("the CLI refused the model: {}", error()),
                    });
                }
                self.advance(out);
            }
            Phase::Resetting { control_id, turn } if *control_id == resp.request_id => {
                let turn = *turn;
                let rewound = resp.response.get("rewound").and_then(Value::as_bool) == Some(true);
                if !(success && rewound) {
                    log::warn!("reset failed ({}); the process retires", resp.response);
                }
                self.phase = Phase::Idle;
                match turn {
                    Some(turn) => out.event(DriverEvent::Released {
                        turn,
                        reusable: success && rewound,
                    }),
                    None if success && rewound => self.begin_queued(out),
                    None => out.event(DriverEvent::Violation(
                        "could not reset a forgotten parked turn".into(),
                    )),
                }
            }
            _ => {}
        }
    }

    fn on_result(&mut self, result: TurnResult, out: &mut Outbox) {
        let Phase::Busy(turn) = &mut self.phase else {
            log::debug!("result outside a turn ignored");
            return;
        };
        match turn.awaiting {
            Awaiting::ReplayResult => self.advance(out),
            Awaiting::FinalResult => self.end_turn(Some(result), out),
            Awaiting::Control(_) | Awaiting::Rewind(_) => log::debug!("unexpected result"),
        }
    }

    /// Takes the turn's next step, or ends it when it was interrupted between steps.
    fn advance(&mut self, out: &mut Outbox) {
        loop {
            let Phase::Busy(turn) = &mut self.phase else {
                return;
            };
            if turn.interrupted || turn.refused.is_some() {
                return self.end_turn(None, out);
            }
            let Some(step) = turn.steps.pop_front() else {
                return self.end_turn(None, out);
            };
            let awaiting = match step {
                Step::Rewind { first, last } => {
                    Awaiting::Rewind(self.control(wire::rewind_request(&first, &last), out))
                }
                Step::SetModel(model) => {
                    self.model.clone_from(&model);
                    Awaiting::Control(self.control(wire::set_model_request(&model), out))
                }
                Step::ReplayAssistant(content) => {
                    out.write(&wire::assistant_line(&content));
                    continue;
                }
                Step::ReplayUser(content) => {
                    self.write_user(&content, false, out);
                    Awaiting::ReplayResult
                }
                Step::Prompt(content) => {
                    self.write_user(&content, true, out);
                    Awaiting::FinalResult
                }
            };
            if let Phase::Busy(turn) = &mut self.phase {
                turn.awaiting = awaiting;
            }
            return;
        }
    }

    /// Gives the turn its final event, then resets the conversation.
    fn end_turn(&mut self, result: Option<TurnResult>, out: &mut Outbox) {
        let Phase::Busy(turn) = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return;
        };
        let turn = *turn;
        if let Some(answered) = &turn.tool_use_answered {
            // The client was answered at the tool use; the result only closes the CLI's turn.
            if let Some(r) = &result {
                self.last_total_cost = r.total_cost_usd.max(self.last_total_cost);
            }
            let released = match answered.hold {
                tool_turn::Hold::Interrupting => Some(turn.id),
                tool_turn::Hold::Forgotten => None,
                // The CLI ended a parked turn on its own: no follow-up may resume it.
                tool_turn::Hold::Parked => {
                    out.event(DriverEvent::Dropped {
                        conversation: turn.conversation,
                    });
                    None
                }
            };
            return self.reset(released, turn.first_message, turn.last_message, out);
        }
        let clean = turn.keep
            && !turn.interrupted
            && !self.structured
            && turn.refused.is_none()
            && result.as_ref().is_some_and(|r| !r.is_error);
        let event = match (turn.refused, result) {
            (Some(reason), _) => TurnEvent::Failed(reason),
            (None, Some(r)) => {
                let cost_usd = (r.total_cost_usd - self.last_total_cost).max(0.0);
                self.last_total_cost = r.total_cost_usd;
                match self.structured {
                    true => outcome::structured_event(r, cost_usd),
                    false => outcome::outcome_event(r, turn.content, cost_usd),
                }
            }
            // Interrupted between steps: the actor gives the client the interrupt's reason.
            (None, None) => TurnEvent::Failed(ServeError::BackendProtocol {
                backend: BACKEND,
                detail: "the turn ended without a result".into(),
            }),
        };
        out.turn(turn.id, event);
        if let (true, Some(first), Some(last)) = (clean, &turn.first_message, &turn.last_message) {
            self.held = Some(Held {
                conversation: turn.conversation,
                first: first.clone(),
                last: last.clone(),
                forgotten: false,
            });
            return out.event(DriverEvent::Kept { turn: turn.id });
        }
        self.reset(Some(turn.id), turn.first_message, turn.last_message, out);
    }

    /// Empties the conversation of `turn` (its first to newest user line), then releases it
    /// (`None`: nobody waits for it; a queued turn begins instead).
    fn reset(
        &mut self,
        turn: Option<TurnId>,
        first: Option<String>,
        last: Option<String>,
        out: &mut Outbox,
    ) {
        match (first, last, turn) {
            (Some(first), Some(last), _) => {
                let control_id = self.control(wire::rewind_request(&first, &last), out);
                self.phase = Phase::Resetting { control_id, turn };
            }
            // Nothing reached the conversation: already clean.
            (_, _, Some(turn)) => out.event(DriverEvent::Released {
                turn,
                reusable: true,
            }),
            (_, _, None) => self.begin_queued(out),
        }
    }

    /// Begins the turn that waited for a forgotten parked turn to wind down.
    fn begin_queued(&mut self, out: &mut Outbox) {
        if let Some((turn, input)) = self.queued.take() {
            self.begin(turn, input, out);
        }
    }
}

impl Driver for ClaudeDriver {
    fn capacity(&self) -> usize {
        1
    }

    fn probe(&mut self, out: &mut Outbox) {
        if matches!(self.phase, Phase::Fresh) {
            let control_id = self.control(wire::probe_request(), out);
            self.phase = Phase::Probing { control_id };
        }
    }

    fn bind(
        &mut self,
        system_prompt: &str,
        output_schema: Option<&Value>,
        tools: &[ClientTool],
        out: &mut Outbox,
    ) {
        match self.phase {
            Phase::Fresh | Phase::Probing { .. } | Phase::Unbound => {
                self.structured = output_schema.is_some();
                self.tools = tools.to_vec();
                let request = wire::initialize_request(system_prompt, output_schema);
                let control_id = self.control(request, out);
                self.phase = Phase::Initializing { control_id };
            }
            _ => log::warn!("bind ignored, already bound"),
        }
    }

    fn begin(&mut self, turn: TurnId, input: TurnInput, out: &mut Outbox) {
        match self.tool_hold() {
            Some((conversation, Hold::Parked))
                if input.resume && conversation == input.conversation =>
            {
                return self.resume_tool_turn(turn, input, out);
            }
            // Another conversation needs the process: the parked turn goes first.
            Some((conversation, Hold::Parked)) => {
                self.forget_tool_turn(conversation, out);
                self.queued = Some((turn, input));
                return;
            }
            Some((_, Hold::Forgotten)) if self.queued.is_none() => {
                self.queued = Some((turn, input));
                return;
            }
            _ => {}
        }
        if matches!(self.phase, Phase::Resetting { turn: None, .. }) && self.queued.is_none() {
            self.queued = Some((turn, input));
            return;
        }
        if !matches!(self.phase, Phase::Idle) {
            out.turn(
                turn,
                TurnEvent::Failed(ServeError::BackendUnavailable {
                    backend: BACKEND,
                    reason: "the process given the request was not idle".into(),
                }),
            );
            return;
        }
        let held = self.held.take();
        let with_tools = !self.tools.is_empty();
        match Turn::plan(turn, input, held, &self.model, with_tools) {
            Ok(planned) => {
                self.phase = Phase::Busy(Box::new(planned));
                self.advance(out);
            }
            Err(held) => {
                self.held = held;
                out.conversation_lost(turn, BACKEND);
            }
        }
    }

    fn forget(&mut self, conversation: ConversationId, out: &mut Outbox) {
        self.forget_tool_turn(conversation, out);
        // The rewind waits for the next turn: it is the first step there (≈1 ms), and an idle
        // process has no reason to spend it sooner.
        if let Some(held) = self
            .held
            .as_mut()
            .filter(|h| h.conversation == conversation)
        {
            held.forgotten = true;
        }
    }

    fn interrupt(&mut self, id: TurnId, out: &mut Outbox) {
        let Phase::Busy(turn) = &mut self.phase else {
            return;
        };
        if turn.id != id || turn.interrupted {
            return;
        }
        turn.interrupted = true;
        // Mid-answer, the CLI stops and writes the result; between steps, the next step ends
        // the turn instead.
        if turn.awaiting == Awaiting::FinalResult {
            self.control(wire::interrupt_request(), out);
        }
    }

    fn on_line(&mut self, line: &str, out: &mut Outbox) {
        if line.trim().is_empty() {
            return;
        }
        match wire::parse_line(line) {
            Ok(parsed) => self.on_parsed(parsed, out),
            Err(_) => {
                let shown: String = line.chars().take(120).collect();
                out.event(DriverEvent::Violation(format!(
                    "non-JSON line on stdout: {shown:?}"
                )));
            }
        }
    }
}

#[path = "claude_outcome.rs"]
mod outcome;
#[path = "claude_tool_turn.rs"]
mod tool_turn;
#[path = "claude_turn.rs"]
mod turn;

#[cfg(test)]
#[path = "claude_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "claude_keep_tests.rs"]
mod keep_tests;

#[cfg(test)]
#[path = "claude_tools_tests.rs"]
mod tools_tests;

#[cfg(test)]
#[path = "claude_tool_park_tests.rs"]
mod tool_park_tests;
