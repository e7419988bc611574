//! The OpenAI Codex CLI's app-server protocol (`codex app-server`: JSON-RPC on stdio, without the
//! `"jsonrpc"` member) as a [`Driver`]: many conversations per process, one thread each.
//!
//! A turn: `thread/start` (the system prompt as `baseInstructions`, the model, approvals
//! `never`, a read-only sandbox) → `thread/inject_items` with the prior messages, when there are
//! any (no model call) → `turn/start` with the prompt. The thread's notifications (demultiplexed
//! by `threadId`) stream the answer; `turn/completed` ends it. The thread is then deleted
//! (`thread/delete` unloads it and removes its rollout file), which releases the slot. A failed or
//! interrupted turn leaves its prompt in the thread, so every turn gets a new thread. A text block
//! is announced with its first delta; an upstream retry (`error` with `willRetry`) reports
//! [`TurnEvent::Restarted`].
//!
//! A turn asked to keep its conversation that ends cleanly — completed, not interrupted, its
//! answer one `agentMessage` item and nothing else (so the thread holds exactly the text the
//! client gets, and nothing a replay would lack) — leaves its thread loaded instead (`Kept`).
//! A turn that resumes it injects only the new messages and starts its turn on that thread;
//! `forget` deletes it. A resumed turn that fails deletes its thread as any other.
//!
//! Client tools are the thread's `dynamicTools` (which need the `experimentalApi` capability);
//! the model's calls come as `item/tool/call` requests, and a turn that stops for them ends the
//! client's turn with a `tool_use` answer (`codex_tools.rs`). A history
//! holding tool calls and results is injected as `function_call` and `function_call_output`
//! items. What the CLI writes (responses, notifications, its requests) is taken in
//! `codex_lines.rs`.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use super::codex_conversation::{Conversation, KeptThread, Stage};
use super::codex_wire::{dynamic_tools, history_items, prompt_items, split_tool_results};
use super::jsonrpc::{Incoming, Rpc};
use super::{Driver, DriverEvent, Outbox, TurnInput};
use crate::error::ServeError;
use crate::process::messages::{ConversationId, TurnId};
use crate::protocol::TurnEvent;

const BACKEND: &str = "codex";

/// What a request of ours was for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Call {
    Initialize {
        probe: bool,
    },
    ThreadStart(TurnId),
    Inject(TurnId),
    TurnStart(TurnId),
    Interrupt(TurnId),
    Delete(TurnId),
    /// `thread/delete` of a forgotten kept conversation: nothing waits for it.
    Forget,
    /// `turn/interrupt` of a forgotten tool turn; its `turn/completed` has the thread deleted.
    ForgetInterrupt,
}

#[derive(Debug)]
pub(super) enum Phase {
    Fresh,
    Initializing,
    Ready,
}

#[derive(Debug)]
pub struct CodexDriver {
    pub(super) rpc: Rpc<Call>,
    pub(super) phase: Phase,
    capacity: usize,
    /// The base prompt of a conversation without a system prompt.
    base_instructions: String,
    /// Running turns.
    pub(super) conversations: HashMap<TurnId, Conversation>,
    pub(super) by_thread: HashMap<String, TurnId>,
    /// Threads kept after a clean turn (or a turn that stopped for client tools), by
    /// conversation: each counts against the capacity until a turn resumes it or it is
    /// forgotten.
    pub(super) kept: HashMap<ConversationId, KeptThread>,
    /// Forgotten tool turns' threads, interrupted: deleted on their `turn/completed`.
    pub(super) forgetting: HashSet<String>,
}

impl CodexDriver {
    pub fn new(capacity: usize, base_instructions: String) -> Self {
        Self {
            rpc: Rpc::new(false),
            phase: Phase::Fresh,
            capacity: capacity.max(1),
            base_instructions,
            conversations: HashMap::new(),
            by_thread: HashMap::new(),
            kept: HashMap::new(),
            forgetting: HashSet::new(),
        }
    }

    fn initialize(&mut self, probe: bool, out: &mut Outbox) {
        if matches!(self.phase, Phase::Fresh) {
            self.phase = Phase::Initializing;
            // `experimentalApi`: `thread/start.dynamicTools` (client tools) needs it.
            let params = json!({
                "clientInfo": {"name": "clinvoker", "version": env!("CARGO_PKG_VERSION")},
                "capabilities": {"experimentalApi": true},
            });
            self.rpc
                .request("initialize", params, Call::Initialize { probe }, out);
        }
    }

    /// Sends what the conversation needs next: its history, then its prompt.
    pub(super) fn next_step(&mut self, turn: TurnId, out: &mut Outbox) {
        let Some(c) = self.conversations.get_mut(&turn) else {
            return;
        };
        if c.interrupted {
            return self.finish(turn, TurnEvent::Failed(ServeError::Cancelled), out);
        }
        let (Some(thread), Some(input)) = (c.thread.clone(), c.input.as_mut()) else {
            return;
        };
        // Tool results in the prompt answer calls of the history: injected after it, and the
        // turn starts with what else the prompt holds (nothing, often: measured, `input: []`
        // makes the model go on with the results as the last items).
        let (outputs, rest) = split_tool_results(&input.prompt);
        if c.stage == Stage::Starting && (!input.history.is_empty() || !outputs.is_empty()) {
            input.prompt = rest;
            let mut items: Vec<Value> = std::mem::take(&mut input.history)
                .iter()
                .flat_map(|m| history_items(m.role, &m.content))
                .collect();
            items.extend(outputs);
            c.stage = Stage::Injecting;
            let params = json!({"threadId": thread, "items": items});
            self.rpc
                .request("thread/inject_items", params, Call::Inject(turn), out);
            return;
        }
        let Some(input) = c.input.take() else {
            return;
        };
        let items = match prompt_items(&input.prompt) {
            Ok(items) => items,
            Err(e) => return self.finish(turn, TurnEvent::Failed(e), out),
        };
        c.stage = Stage::Answering;
        let mut params = json!({"threadId": thread, "input": items, "model": input.model});
        if let Some(schema) = &input.output_schema {
            params["outputSchema"] = schema.clone();
        }
        self.rpc
            .request("turn/start", params, Call::TurnStart(turn), out);
    }

    /// Continues a kept conversation on its thread: the new messages, then the prompt.
    fn resume(&mut self, turn: TurnId, input: TurnInput, out: &mut Outbox) {
        let Some(kept) = self.kept.remove(&input.conversation) else {
            return out.conversation_lost(turn, BACKEND);
        };
        if let Some(waiting) = kept.waiting {
            return self.resume_tool_turn(turn, input, kept.thread, waiting, out);
        }
        let thread = kept.thread;
        self.by_thread.insert(thread.clone(), turn);
        self.conversations
            .insert(turn, Conversation::new(Some(thread), input));
        self.next_step(turn, out);
    }

    pub(super) fn send_interrupt(&mut self, turn: TurnId, out: &mut Outbox) {
        let Some(c) = self.conversations.get(&turn) else {
            return;
        };
        if let (Some(thread), Some(codex_turn)) = (&c.thread, &c.codex_turn) {
            let params = json!({"threadId": thread, "turnId": codex_turn});
            self.rpc
                .request("turn/interrupt", params, Call::Interrupt(turn), out);
        }
    }

    /// The CLI refused a step: the turn fails.
    pub(super) fn refused(&mut self, turn: TurnId, detail: String, out: &mut Outbox) {
        let error = ServeError::BackendProtocol {
            backend: BACKEND,
            detail,
        };
        self.finish(turn, TurnEvent::Failed(error), out);
    }

    /// Gives the turn its final event, then deletes its thread (or releases it at once).
    pub(super) fn finish(&mut self, turn: TurnId, event: TurnEvent, out: &mut Outbox) {
        let Some(c) = self.conversations.get_mut(&turn) else {
            return;
        };
        if c.stage == Stage::Deleting {
            return;
        }
        c.stage = Stage::Deleting;
        if std::mem::take(&mut c.open_block) {
            out.turn(turn, TurnEvent::BlockStopped);
        }
        let clean = c.keep && !c.interrupted && matches!(event, TurnEvent::Done(_));
        // A turn whose client has its `tool_use` answer already only releases its slot.
        if !c.tool_answered {
            out.turn(turn, event);
        }
        if let (true, Some(thread)) = (clean, c.thread.clone()) {
            let conversation = c.conversation;
            self.conversations.remove(&turn);
            self.by_thread.remove(&thread);
            let kept = KeptThread {
                thread,
                waiting: None,
            };
            self.kept.insert(conversation, kept);
            return out.event(DriverEvent::Kept { turn });
        }
        match c.thread.clone() {
            Some(thread) => {
                self.rpc.request(
                    "thread/delete",
                    json!({"threadId": thread}),
                    Call::Delete(turn),
                    out,
                );
            }
            None => self.release(turn, out),
        }
    }

    pub(super) fn delete_forgotten(&mut self, thread: &str, out: &mut Outbox) {
        let params = json!({"threadId": thread});
        self.rpc.request("thread/delete", params, Call::Forget, out);
    }

    pub(super) fn release(&mut self, turn: TurnId, out: &mut Outbox) {
        if let Some(c) = self.conversations.remove(&turn) {
            if let Some(thread) = c.thread {
                self.by_thread.remove(&thread);
            }
            out.event(DriverEvent::Released {
                turn,
                reusable: true,
            });
        }
    }
}

impl Driver for CodexDriver {
    fn capacity(&self) -> usize {
        self.capacity
    }

    fn probe(&mut self, out: &mut Outbox) {
        self.initialize(true, out);
    }

    /// Codex takes its system prompt per thread: binding only initializes the process.
    fn bind(
        &mut self,
        _system_prompt: &str,
        _schema: Option<&Value>,
        _tools: &[crate::protocol::tools::ClientTool],
        out: &mut Outbox,
    ) {
        match self.phase {
            Phase::Fresh => self.initialize(false, out),
            // A probed spare is ready as it is.
            Phase::Ready => out.event(DriverEvent::Ready),
            Phase::Initializing => log::warn!("codex: bind while initializing ignored"),
        }
    }

    fn begin(&mut self, turn: TurnId, input: TurnInput, out: &mut Outbox) {
        if input.resume {
            return self.resume(turn, input, out);
        }
        let full = self.conversations.len() + self.kept.len() >= self.capacity;
        if !matches!(self.phase, Phase::Ready) || full {
            out.turn(
                turn,
                TurnEvent::Failed(ServeError::BackendUnavailable {
                    backend: BACKEND,
                    reason: "the process given the request had no free slot".into(),
                }),
            );
            return;
        }
        let instructions = match input.system_prompt.as_str() {
            "" => self.base_instructions.clone(),
            system => system.to_string(),
        };
        let mut params = json!({
            "model": input.model,
            "baseInstructions": instructions,
            "approvalPolicy": "never",
            "sandbox": "read-only",
            "ephemeral": false,
        });
        if !input.tools.is_empty() {
            params["dynamicTools"] = Value::Array(dynamic_tools(&input.tools));
        }
        self.conversations
            .insert(turn, Conversation::new(None, input));
        self.rpc
            .request("thread/start", params, Call::ThreadStart(turn), out);
    }

    fn forget(&mut self, conversation: ConversationId, out: &mut Outbox) {
        match self.kept.remove(&conversation) {
            Some(KeptThread {
                thread,
                waiting: Some(waiting),
            }) => self.forget_tool_turn(thread, &waiting.codex_turn, out),
            Some(KeptThread {
                thread,
                waiting: None,
            }) => self.delete_forgotten(&thread, out),
            None => {}
        }
    }

    fn interrupt(&mut self, turn: TurnId, out: &mut Outbox) {
        let Some(c) = self.conversations.get_mut(&turn) else {
            return;
        };
        if c.interrupted || c.stage == Stage::Deleting {
            return;
        }
        c.interrupted = true;
        // Before the answer streams, the next step ends the turn instead.
        if c.stage == Stage::Answering {
            self.send_interrupt(turn, out);
        }
    }

    fn wake(&mut self, turn: TurnId, out: &mut Outbox) {
        self.settle(turn, out);
    }

    fn on_line(&mut self, line: &str, out: &mut Outbox) {
        if line.trim().is_empty() {
            return;
        }
        match self.rpc.parse(line) {
            Ok(Incoming::Response { purpose, result }) => self.on_response(purpose, result, out),
            Ok(Incoming::Notification { method, params }) => {
                self.on_notification(&method, &params, out)
            }
            Ok(Incoming::Request { id, method, params }) => {
                self.on_request(&id, &method, &params, out)
            }
            Ok(Incoming::Unexpected { id }) => log::debug!("codex: unexpected response {id}"),
            Err(detail) => out.event(DriverEvent::Violation(detail)),
        }
    }
}

#[cfg(test)]
#[path = "codex_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "codex_keep_tests.rs"]
mod keep_tests;

#[cfg(test)]
#[path = "codex_tools_tests.rs"]
mod tools_tests;
