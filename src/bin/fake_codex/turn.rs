//! One running turn of `fake-codex`, on its own thread so that turns of different threads
//! overlap: the notifications of a turn in the order the real app-server writes them, the
//! per-prompt script (sleep, crash, hang, garbage, upstream error, retried stream), and the
//! turn's end, reported to the dispatcher before the server is told.

use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fake_support::{deltas, emit_raw, uuid, wait, Event, Halt, Outcome, Script};
use crate::{notify, tools};

/// Tokens of one turn, what the mock upstream reports.
pub const TURN_USAGE: Usage = Usage {
    input: 11,
    output: 7,
};

#[derive(Clone, Copy, Default)]
pub struct Usage {
    input: u64,
    output: u64,
}

impl Usage {
    pub fn plus(self, o: Usage) -> Usage {
        Usage {
            input: self.input + o.input,
            output: self.output + o.output,
        }
    }

    fn json(self) -> Value {
        json!({"totalTokens": self.input + self.output, "inputTokens": self.input,
            "cachedInputTokens": 0, "cacheWriteInputTokens": 0, "outputTokens": self.output,
            "reasoningOutputTokens": 0})
    }
}

/// How a turn worker ended; the dispatcher updates the thread from it.
pub struct TurnEnded {
    pub thread_id: String,
    pub turn_id: String,
    pub ending: Ending,
}

pub enum Ending {
    Completed { answer: String },
    Interrupted,
    Failed,
}

pub fn turn_json(turn_id: &str, status: &str) -> Value {
    json!({"id": turn_id, "items": [], "status": status, "error": null})
}

/// The upstream failure `turn.error` for an HTTP status, as the real CLI reports it with retries
/// off: message and `codexErrorInfo`.
fn api_error(status: u16) -> Value {
    let (message, info) = match status {
        429 => (
            "exceeded retry limit, last status: 429 Too Many Requests".to_string(),
            json!({"responseTooManyFailedAttempts": {"httpStatusCode": 429}}),
        ),
        500..=599 => (
            "We\u{2019}re currently experiencing high demand, which may cause temporary errors."
                .to_string(),
            json!("internalServerError"),
        ),
        401 | 403 => (
            format!("unexpected status {status}: fake upstream failure"),
            json!({"httpConnectionFailed": {"httpStatusCode": status}}),
        ),
        _ => (
            json!({"error": {"message": format!("fake upstream failure ({status})"),
                "type": "invalid_request_error"}})
            .to_string(),
            json!("other"),
        ),
    };
    json!({"message": message, "codexErrorInfo": info, "additionalDetails": null})
}

/// One running turn; `run` consumes it on the turn's own thread.
pub struct Turn {
    pub thread_id: String,
    pub turn_id: String,
    pub prompt: String,
    pub answer: String,
    pub script: Script,
    /// The client tools the prompt's `FAKE_TOOL:` markers call (only the thread's own).
    pub calls: Vec<(String, Value)>,
    pub delta_delay: Duration,
    /// The thread's token total once this turn is counted.
    pub total: Usage,
    /// Interrupt line from the dispatcher; disconnected when the thread is deleted.
    pub stop: Receiver<()>,
    pub events: Sender<Event<TurnEnded>>,
    pub started: Instant,
}

impl Turn {
    pub fn run(self) {
        self.notify_thread(
            "thread/status/changed",
            json!({"status": {"type": "active", "activeFlags": []}}),
        );
        self.notify_thread(
            "turn/started",
            json!({"turn": turn_json(&self.turn_id, "inProgress")}),
        );
        let user = json!({"type": "userMessage", "id": uuid(),
            "content": [{"type": "text", "text": self.prompt, "text_elements": []}]});
        self.notify_turn("item/started", json!({"item": user}));
        self.notify_turn("item/completed", json!({"item": user}));
        if self.script.outcome == Outcome::Hang {
            // Deaf to interrupts from here on: sleep instead of waiting on the stop line.
            std::thread::sleep(self.script.sleep);
            let item = message_id();
            self.start_message(&item);
            return self.delta(&item, "partial ");
        }
        let item = match self.act() {
            Ok(item) => item,
            Err(Halt::Stopped) => return self.interrupted(),
            Err(Halt::Silent) => return,
        };
        self.notify_turn(
            "thread/tokenUsage/updated",
            json!({"tokenUsage": {"total": self.total.json(), "last": TURN_USAGE.json(),
                "modelContextWindow": 258_400}}),
        );
        notify(
            "account/rateLimits/updated",
            json!({"rateLimits": {"limitId": "codex", "primary": null, "secondary": null}}),
        );
        let answer = item["text"].as_str().unwrap_or_default().to_string();
        self.end(
            Ending::Completed { answer },
            "completed",
            json!([item]),
            Value::Null,
        );
    }

    /// Plays the script up to the final message item, which it returns.
    fn act(&self) -> Result<Value, Halt> {
        wait(&self.stop, self.script.sleep)?;
        match self.script.outcome {
            Outcome::Garbage => {
                emit_raw("this is not json {");
                Err(Halt::Silent)
            }
            Outcome::Crash => {
                let item = message_id();
                self.start_message(&item);
                self.delta(&item, "partial ");
                eprintln!("fake-codex: crashing as asked");
                std::process::exit(3);
            }
            Outcome::ApiError(status) => {
                let error = api_error(status);
                self.notify_turn("error", json!({"error": error, "willRetry": false}));
                self.end(Ending::Failed, "failed", json!([]), error);
                Err(Halt::Silent)
            }
            Outcome::RetryPartial => {
                let item = message_id();
                self.start_message(&item);
                for d in deltas(&self.answer).into_iter().take(2) {
                    self.delta(&item, d);
                }
                self.notify_turn(
                    "error",
                    json!({"error": {"message": "Reconnecting... 1/5",
                        "codexErrorInfo": {"responseStreamDisconnected": {"httpStatusCode": null}},
                        "additionalDetails": "stream disconnected before completion: fake drop"},
                        "willRetry": true}),
                );
                self.stream()
            }
            Outcome::Answer if !self.calls.is_empty() => {
                let notify = |method: &str, params: Value| self.notify_turn(method, params);
                let ids = (self.thread_id.as_str(), self.turn_id.as_str());
                let answer = tools::call(&self.calls, &self.stop, &notify, ids)?;
                self.stream_text(&answer)
            }
            Outcome::Answer | Outcome::Hang => self.stream(),
        }
    }

    /// Streams the answer as one agentMessage item; returns the completed item.
    fn stream(&self) -> Result<Value, Halt> {
        self.stream_text(&self.answer)
    }

    fn stream_text(&self, answer: &str) -> Result<Value, Halt> {
        let item = message_id();
        self.start_message(&item);
        for d in deltas(answer) {
            wait(&self.stop, self.delta_delay)?;
            self.delta(&item, d);
        }
        let done = json!({"type": "agentMessage", "id": item, "text": answer, "phase": null});
        self.notify_turn("item/completed", json!({"item": done}));
        Ok(done)
    }

    fn start_message(&self, item: &str) {
        self.notify_turn(
            "item/started",
            json!({"item": {"type": "agentMessage", "id": item, "text": ""}}),
        );
    }

    fn delta(&self, item: &str, delta: &str) {
        self.notify_turn(
            "item/agentMessage/delta",
            json!({"itemId": item, "delta": delta}),
        );
    }

    fn interrupted(&self) {
        self.end(Ending::Interrupted, "interrupted", json!([]), Value::Null);
    }

    /// Reports the end to the dispatcher first (so the next request sees the updated thread),
    /// then tells the server.
    fn end(&self, ending: Ending, status: &str, items: Value, error: Value) {
        let _ = self.events.send(Event::Worker(TurnEnded {
            thread_id: self.thread_id.clone(),
            turn_id: self.turn_id.clone(),
            ending,
        }));
        self.notify_thread("thread/status/changed", json!({"status": {"type": "idle"}}));
        let millis = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.notify_thread(
            "turn/completed",
            json!({"turn": {"id": self.turn_id, "items": items, "status": status,
                "error": error, "durationMs": millis}}),
        );
    }

    /// A notification about the thread as a whole: `threadId` only (turn ids go inside `turn`).
    fn notify_thread(&self, method: &str, mut params: Value) {
        params["threadId"] = json!(self.thread_id);
        notify(method, params);
    }

    /// A notification inside the turn: `threadId` and `turnId`.
    fn notify_turn(&self, method: &str, mut params: Value) {
        params["turnId"] = json!(self.turn_id);
        self.notify_thread(method, params);
    }
}

fn message_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_carry_the_measured_error_info() {
        assert_eq!(
            api_error(429)["codexErrorInfo"]["responseTooManyFailedAttempts"]["httpStatusCode"],
            429
        );
        assert_eq!(api_error(500)["codexErrorInfo"], "internalServerError");
        assert_eq!(
            api_error(401)["codexErrorInfo"]["httpConnectionFailed"]["httpStatusCode"],
            401
        );
        assert_eq!(api_error(400)["codexErrorInfo"], "other");
    }
}
