//! What the Codex app-server writes to the driver: the responses to its requests (each step of
//! a turn, and what comes next), the notifications of the threads' turns (the answer streaming,
//! usage, errors, the end) and the server's own requests (client tool calls, approvals).

use serde_json::{json, Value};

use super::codex::{Call, CodexDriver, Phase};
use super::codex_conversation::{completed_event, holds_only_the_answer, Stage};
use super::codex_wire::{http_status, usage_of};
use super::jsonrpc::RpcError;
use super::{DriverEvent, Outbox};
use crate::protocol::{BlockKind, TurnEvent};

impl CodexDriver {
    pub(super) fn on_response(
        &mut self,
        call: Call,
        result: Result<Value, RpcError>,
        out: &mut Outbox,
    ) {
        match call {
            Call::Initialize { probe } => match result {
                Ok(_) => {
                    self.phase = Phase::Ready;
                    self.rpc.notify("initialized", None, out);
                    out.event(if probe {
                        DriverEvent::Probed
                    } else {
                        DriverEvent::Ready
                    });
                }
                Err(e) => out.event(DriverEvent::StartFailed(format!("initialize failed: {e}"))),
            },
            Call::ThreadStart(turn) => {
                let thread = result.as_ref().ok().and_then(|r| {
                    r.pointer("/thread/id")
                        .and_then(Value::as_str)
                        .map(String::from)
                });
                match (result, thread) {
                    (Ok(_), Some(thread)) => {
                        self.by_thread.insert(thread.clone(), turn);
                        if let Some(c) = self.conversations.get_mut(&turn) {
                            c.thread = Some(thread);
                        }
                        self.next_step(turn, out);
                    }
                    (Ok(r), None) => {
                        self.refused(turn, format!("thread/start without a thread: {r}"), out)
                    }
                    (Err(e), _) => self.refused(turn, format!("thread/start failed: {e}"), out),
                }
            }
            Call::Inject(turn) => match result {
                Ok(_) => self.next_step(turn, out),
                Err(e) => self.refused(turn, format!("thread/inject_items failed: {e}"), out),
            },
            Call::TurnStart(turn) => match result {
                Ok(r) => {
                    let Some(c) = self.conversations.get_mut(&turn) else {
                        return;
                    };
                    c.codex_turn = r
                        .pointer("/turn/id")
                        .and_then(Value::as_str)
                        .map(String::from);
                    // Interrupted while `turn/start` was on its way: stop it now.
                    if c.interrupted && c.stage == Stage::Answering {
                        self.send_interrupt(turn, out);
                    }
                }
                Err(e) => self.refused(turn, format!("turn/start failed: {e}"), out),
            },
            Call::Interrupt(turn) => {
                // "no active turn": it ended on its own meanwhile; `turn/completed` says how.
                if let Err(e) = result {
                    log::debug!("codex: interrupting turn {turn}: {e}");
                }
            }
            Call::Delete(turn) => {
                if let Err(e) = result {
                    // The thread stays loaded; recycling the process frees it.
                    log::warn!("codex: thread/delete failed: {e}");
                }
                self.release(turn, out);
            }
            Call::Forget => {
                if let Err(e) = result {
                    log::warn!("codex: thread/delete of a forgotten conversation failed: {e}");
                }
            }
            Call::ForgetInterrupt => {
                if let Err(e) = result {
                    log::debug!("codex: interrupting a forgotten tool turn: {e}");
                }
            }
        }
    }

    pub(super) fn on_notification(&mut self, method: &str, params: &Value, out: &mut Outbox) {
        if method == "turn/completed" {
            self.forgotten_turn_completed(params, out);
        }
        let Some(turn) = params
            .get("threadId")
            .and_then(Value::as_str)
            .and_then(|t| self.by_thread.get(t).copied())
        else {
            return;
        };
        let Some(c) = self.conversations.get_mut(&turn) else {
            return;
        };
        if c.stage != Stage::Answering || (c.tool_answered && method != "turn/completed") {
            return;
        }
        let item_type = params.pointer("/item/type").and_then(Value::as_str);
        match method {
            "item/agentMessage/delta" => {
                let delta = params.get("delta").and_then(Value::as_str).unwrap_or("");
                if !c.open_block {
                    c.open_block = true;
                    out.turn(turn, TurnEvent::BlockStarted(BlockKind::Text));
                }
                c.streamed.push_str(delta);
                out.turn(turn, TurnEvent::TextDelta(delta.to_string()));
            }
            "item/completed" if item_type == Some("agentMessage") && c.open_block => {
                c.open_block = false;
                out.turn(turn, TurnEvent::BlockStopped);
            }
            "thread/tokenUsage/updated" => {
                if let Some(last) = params.pointer("/tokenUsage/last") {
                    c.usage = usage_of(last);
                }
            }
            "error" => {
                let retried = params.get("willRetry").and_then(Value::as_bool) == Some(true);
                let message = params
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream error")
                    .to_string();
                if retried {
                    log::warn!("codex retries the upstream request: {message}");
                    // What was streamed of the failed attempt is void.
                    if std::mem::take(&mut c.open_block) {
                        out.turn(turn, TurnEvent::BlockStopped);
                    }
                    c.streamed.clear();
                    out.turn(turn, TurnEvent::Restarted);
                } else {
                    c.error = Some((http_status(params.get("error")), message));
                }
            }
            "turn/completed" => {
                let t = params.get("turn").cloned().unwrap_or(Value::Null);
                c.keep &= holds_only_the_answer(&t);
                let event = completed_event(&t, c);
                self.finish(turn, event, out);
            }
            _ => {}
        }
    }

    /// Requests from the CLI: the model's client tool calls are taken; approvals are declined
    /// (with approvals `never` none should come), anything else refused — the CLI must never
    /// wait for an answer that will not come.
    pub(super) fn on_request(
        &mut self,
        id: &Value,
        method: &str,
        params: &Value,
        out: &mut Outbox,
    ) {
        if method == "item/tool/call" {
            return self.on_tool_call(id, params, out);
        }
        log::warn!("codex: unexpected request {method} from the CLI; refused");
        if method.ends_with("requestApproval") {
            self.rpc.respond(id, json!({"decision": "decline"}), out);
        } else {
            self.rpc
                .respond_error(id, -32601, "not supported by this server", out);
        }
    }
}
