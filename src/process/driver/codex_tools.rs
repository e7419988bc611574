//! The Codex driver's side of client tools: taking the model's `item/tool/call` requests,
//! ending the client's turn with a `tool_use` answer once the calls are in, and what then
//! becomes of the CLI's turn — parked with the calls unanswered until the follow-up carries
//! their results (when the supervisor asked to keep the conversation), else interrupted and its
//! thread deleted.
//!
//! When are the calls of one model answer all in? Measured with codex 0.171.0: Codex sends one
//! `item/tool/call` per call as each call's item completes upstream (two parallel calls came
//! within a millisecond), and then nothing at all — not even the answer's token usage — until
//! every call is answered. So no line says "that was the last call": the driver asks the process
//! actor to wake it [`SETTLE`] after each call, and the calls count as complete when no further
//! call came by then. A call that still comes later (a long argument streamed upstream) is not
//! lost: it waits with the parked turn and becomes the next `tool_use` answer, which the
//! follow-up's turn gives at once; a turn that is not kept is interrupted, which cancels it.

use std::time::Duration;

use serde_json::{json, Value};

use super::codex::{Call, CodexDriver};
use super::codex_conversation::{Conversation, KeptThread, Stage, ToolCall, WaitingCalls};
use super::codex_wire::tool_answer;
use super::{DriverEvent, Outbox, TurnInput};
use crate::process::messages::TurnId;
use crate::protocol::{Block, BlockKind, StopReason, TurnEvent, TurnOutcome};

/// Quiet after a tool call before the calls of the answer count as all in.
pub const SETTLE: Duration = Duration::from_millis(150);

impl CodexDriver {
    /// An `item/tool/call` from the CLI. The running turn's call of one of its tools is
    /// streamed to the client; a call on a parked tool turn's thread waits there; anything else
    /// is answered with a failure at once, so the CLI never waits on it.
    pub(super) fn on_tool_call(&mut self, id: &Value, params: &Value, out: &mut Outbox) {
        let Some(call) = ToolCall::of(id, params) else {
            return self.refuse_call(id, "a tool call without callId or tool", out);
        };
        let thread = params.get("threadId").and_then(Value::as_str).unwrap_or("");
        if let Some(&turn) = self.by_thread.get(thread) {
            let takes = self.conversations.get(&turn).is_some_and(|c| {
                c.stage == Stage::Answering
                    && !c.tool_answered
                    && !c.interrupted
                    && c.tool_names.contains(&call.name)
            });
            if takes {
                return self.take_call(turn, call, out);
            }
        }
        let parked = self.kept.values_mut().find(|k| k.thread == thread);
        if let Some(waiting) = parked.and_then(|k| k.waiting.as_mut()) {
            waiting.late.push(call);
            return;
        }
        self.refuse_call(id, "no request is waiting for this tool call", out);
    }

    fn refuse_call(&self, id: &Value, why: &str, out: &mut Outbox) {
        log::warn!("codex: tool call refused: {why}");
        let answer =
            json!({"contentItems": [{"type": "inputText", "text": why}], "success": false});
        self.rpc.respond(id, answer, out);
    }

    /// Streams `call` as a `tool_use` block of `turn` and asks to be woken to see whether more
    /// calls follow.
    fn take_call(&mut self, turn: TurnId, call: ToolCall, out: &mut Outbox) {
        let Some(c) = self.conversations.get_mut(&turn) else {
            return;
        };
        if std::mem::take(&mut c.open_block) {
            out.turn(turn, TurnEvent::BlockStopped);
        }
        out.turn(
            turn,
            TurnEvent::BlockStarted(BlockKind::ToolUse {
                id: call.call_id.clone(),
                name: call.name.clone(),
            }),
        );
        out.turn(turn, TurnEvent::ToolInputDelta(call.arguments.to_string()));
        out.turn(turn, TurnEvent::BlockStopped);
        c.calls.push(call);
        c.wakes += 1;
        out.event(DriverEvent::WakeAfter {
            turn,
            after: SETTLE,
        });
    }

    /// A wake of `turn`: when it is the last one asked for and calls came, they are all in and
    /// the client gets its `tool_use` answer.
    pub(super) fn settle(&mut self, turn: TurnId, out: &mut Outbox) {
        let Some(c) = self.conversations.get_mut(&turn) else {
            return;
        };
        c.wakes = c.wakes.saturating_sub(1);
        let waiting = c.wakes == 0 && !c.calls.is_empty();
        if !waiting || c.tool_answered || c.interrupted || c.stage != Stage::Answering {
            return;
        }
        out.turn(turn, TurnEvent::Done(tool_use_outcome(c)));
        if c.keep {
            return self.park(turn, out);
        }
        // Not kept: the interrupt cancels the calls; `turn/completed` has the thread deleted.
        c.tool_answered = true;
        c.interrupted = true;
        self.send_interrupt(turn, out);
    }

    /// Parks `turn`'s CLI turn with its calls unanswered (reported `Kept`).
    fn park(&mut self, turn: TurnId, out: &mut Outbox) {
        let Some(c) = self.conversations.remove(&turn) else {
            return;
        };
        let Some(thread) = c.thread else {
            return;
        };
        self.by_thread.remove(&thread);
        let waiting = WaitingCalls {
            codex_turn: c.codex_turn.unwrap_or_default(),
            answered: c.calls,
            late: Vec::new(),
        };
        let kept = KeptThread {
            thread,
            waiting: Some(waiting),
        };
        self.kept.insert(c.conversation, kept);
        out.event(DriverEvent::Kept { turn });
    }

    /// `turn` continues a parked tool turn: its prompt's `tool_result`s answer the pending
    /// calls, and the model's continuation streams as `turn` until `turn/completed`. Calls that
    /// came while it was parked are this turn's answer.
    pub(super) fn resume_tool_turn(
        &mut self,
        turn: TurnId,
        input: TurnInput,
        thread: String,
        waiting: WaitingCalls,
        out: &mut Outbox,
    ) {
        if !input.history.is_empty() {
            log::warn!("codex: messages beside the tool results of a parked turn are dropped");
        }
        let results: Vec<&Value> = input.prompt.as_array().into_iter().flatten().collect();
        for call in &waiting.answered {
            let result = results
                .iter()
                .copied()
                .find(|b| b.get("tool_use_id").and_then(Value::as_str) == Some(&call.call_id));
            self.rpc.respond(&call.request, tool_answer(result), out);
        }
        let mut c = Conversation::new(Some(thread.clone()), input);
        c.input = None;
        c.stage = Stage::Answering;
        c.codex_turn = Some(waiting.codex_turn);
        c.from_stream = true;
        self.by_thread.insert(thread, turn);
        self.conversations.insert(turn, c);
        for call in waiting.late {
            self.take_call(turn, call, out);
        }
    }

    /// Drops a parked tool turn: interrupted (Codex fails the pending calls), and its thread is
    /// deleted once its `turn/completed` comes.
    pub(super) fn forget_tool_turn(&mut self, thread: String, codex_turn: &str, out: &mut Outbox) {
        let params = json!({"threadId": thread, "turnId": codex_turn});
        self.rpc
            .request("turn/interrupt", params, Call::ForgetInterrupt, out);
        self.forgetting.insert(thread);
    }

    /// A `turn/completed`: when it ends a forgotten tool turn, its thread is deleted.
    pub(super) fn forgotten_turn_completed(&mut self, params: &Value, out: &mut Outbox) {
        let thread = params.get("threadId").and_then(Value::as_str).unwrap_or("");
        if self.forgetting.remove(thread) {
            self.delete_forgotten(thread, out);
        }
    }
}

/// The `tool_use` answer: the text so far, then one block per call.
fn tool_use_outcome(c: &Conversation) -> TurnOutcome {
    let text = (!c.streamed.is_empty()).then(|| Block::Text(c.streamed.clone()));
    let calls = c.calls.iter().map(|call| Block::ToolUse {
        id: call.call_id.clone(),
        name: call.name.clone(),
        input: call.arguments.clone(),
    });
    TurnOutcome {
        content: text.into_iter().chain(calls).collect(),
        stop_reason: StopReason::ToolUse,
        stop_sequence: None,
        usage: c.usage.clone(),
        cost_usd: 0.0,
        duration_ms: 0,
    }
}
