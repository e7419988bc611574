//! One running prompt of `fake-gemini`, on its own thread so that prompts of different sessions
//! overlap: the per-prompt script (sleep, crash, hang, garbage, upstream error, retried stream),
//! the `agent_message_chunk` updates and the prompt's answer, reported to the dispatcher before
//! the server is told.

use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use serde_json::{json, Value};

use crate::fake_support::{deltas, emit_raw, wait, Event, Halt, Outcome, Script};
use crate::{chunk, fail, ok};

/// How a prompt worker ended; the dispatcher updates the session from it.
pub struct PromptEnded {
    pub session_id: String,
    pub seq: u64,
    /// `Some((prompt, answer))` when answered `end_turn`; failed and cancelled prompts are dropped.
    pub exchange: Option<(String, String)>,
}

pub fn prompt_result(stop_reason: &str, input: u64, output: u64, model: &str) -> Value {
    let tokens = json!({"input_tokens": input, "output_tokens": output});
    json!({"stopReason": stop_reason, "_meta": {"quota": {"token_count": tokens,
        "model_usage": [{"model": model, "token_count": tokens}]}}})
}

/// The JSON-RPC error the real CLI answers a prompt with when the upstream fails: code = the HTTP
/// status; message = the upstream's error body as a string (a bare text for 429, as measured).
fn api_error(status: u16) -> (i64, String) {
    let google_status = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        500..=599 => "INTERNAL",
        _ => "UNKNOWN",
    };
    let message = format!("fake upstream failure (HTTP {status})");
    let text = match status {
        429 => message,
        _ => json!({"error": {"code": status, "message": message, "status": google_status}})
            .to_string(),
    };
    (i64::from(status), text)
}

/// One running prompt; `run` consumes it on the prompt's own thread.
pub struct PromptWorker {
    /// The `session/prompt` request id, answered when the prompt ends.
    pub id: Value,
    pub session_id: String,
    pub seq: u64,
    pub model: String,
    pub prompt: String,
    pub answer: String,
    pub script: Script,
    pub delta_delay: Duration,
    /// Cancel line from the dispatcher; disconnected when a newer prompt replaced this one.
    pub stop: Receiver<()>,
    pub events: Sender<Event<PromptEnded>>,
}

impl PromptWorker {
    pub fn run(self) {
        if self.script.outcome == Outcome::Hang {
            // Deaf to cancels from here on: sleep instead of waiting on the cancel line.
            std::thread::sleep(self.script.sleep);
            return chunk(&self.session_id, "agent_message_chunk", "partial ");
        }
        match self.act() {
            Ok(()) => {
                self.report(Some((self.prompt.clone(), self.answer.clone())));
                ok(&self.id, prompt_result("end_turn", 11, 7, &self.model));
            }
            Err(Halt::Stopped) => {
                self.report(None);
                ok(&self.id, json!({"stopReason": "cancelled"}));
            }
            Err(Halt::Silent) => {}
        }
    }

    /// Plays the script up to the last chunk of the answer.
    fn act(&self) -> Result<(), Halt> {
        wait(&self.stop, self.script.sleep)?;
        match self.script.outcome {
            Outcome::Garbage => {
                emit_raw("this is not json {");
                Err(Halt::Silent)
            }
            Outcome::Crash => {
                chunk(&self.session_id, "agent_message_chunk", "partial ");
                eprintln!("fake-gemini: crashing as asked");
                std::process::exit(3);
            }
            Outcome::ApiError(status) => {
                self.report(None);
                let (code, message) = api_error(status);
                fail(&self.id, code, &message, None);
                Err(Halt::Silent)
            }
            Outcome::RetryPartial => {
                for d in deltas(&self.answer).into_iter().take(2) {
                    chunk(&self.session_id, "agent_message_chunk", d);
                }
                self.stream()
            }
            Outcome::Answer | Outcome::Hang => self.stream(),
        }
    }

    fn stream(&self) -> Result<(), Halt> {
        for d in deltas(&self.answer) {
            wait(&self.stop, self.delta_delay)?;
            chunk(&self.session_id, "agent_message_chunk", d);
        }
        Ok(())
    }

    /// Reports the end to the dispatcher before the answer is written, so the next prompt of
    /// this session sees the updated history.
    fn report(&self, exchange: Option<(String, String)>) {
        let _ = self.events.send(Event::Worker(PromptEnded {
            session_id: self.session_id.clone(),
            seq: self.seq,
            exchange,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_have_the_measured_shape() {
        let (code, message) = api_error(401);
        assert_eq!(code, 401);
        let body: Value = serde_json::from_str(&message).unwrap();
        assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
        assert_eq!(
            api_error(429).1,
            "fake upstream failure (HTTP 429)",
            "429 is bare text"
        );
    }
}
