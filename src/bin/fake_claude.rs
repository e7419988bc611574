//! `fake-claude`: a stand-in for the Claude Code CLI in stream-json mode, for fast, deterministic
//! tests of pools, limits and failures. It accepts the real CLI's flags, answers `initialize`,
//! `set_model`, `interrupt` and `rewind_conversation`, replays history like the CLI, and answers
//! each prompt with a text that shows what it saw:
//! `echo: <prompt> | history: <u:…,a:…> | system: <prompt> | model: <model>`.
//!
//! Switches, per process: environment variables, or the same names as arguments
//! (`--fake-start-delay-ms=500`, `--fake-never-ready`), so tests can set them per server:
//! - `FAKE_CLAUDE_START_DELAY_MS=N`: read nothing for N ms after start (slow start).
//! - `FAKE_CLAUDE_NEVER_READY=1`: never answer `initialize`.
//! - `FAKE_CLAUDE_EXIT_AT_START=CODE`: print an error on stderr and exit at once.
//! - `FAKE_CLAUDE_DELAY_MS=N`: N ms before each text delta.
//! - `FAKE_CLAUDE_RESET_DELAY_MS=N`: N ms before answering `rewind_conversation` (a slow reset).
//!
//! Switches, per request (words in the prompt):
//! - `FAKE_SLEEP_<ms>`: wait that long before answering (interruptible).
//! - `FAKE_CRASH`: start streaming, then exit with status 3 mid-turn.
//! - `FAKE_HANG`: start streaming, then ignore everything, interrupts included.
//! - `FAKE_GARBAGE`: print a line that is not JSON.
//! - `FAKE_API_ERROR_<status>`: end the turn with an upstream API error of that status.
//! - `FAKE_RETRY_PARTIAL` / `FAKE_RETRY_CLEAN`: the upstream stream drops after two deltas (or
//!   before any); the CLI retries: a second `message_start`, then the whole answer streamed.
//! - `FAKE_FALLBACK_PARTIAL` / `FAKE_FALLBACK_CLEAN`: the same drop, then the CLI's
//!   non-streaming fallback: no more stream events, the whole answer in the `assistant` line.
//! - `FAKE_TOOL:<name>:<json>` (once or more): the model calls the host's client tools (see
//!   [`tools`]).
//!
//! Replayed `tool_use` and `tool_result` blocks show in the history as `[tool_use <name>]` and
//! `[tool_result <text>]`.

// Shared with the other fakes; fake-claude reads its own stdin and uses only some of it.
#[allow(dead_code)]
#[path = "fake_support/mod.rs"]
mod fake_support;
#[path = "fake_claude/tools.rs"]
mod tools;

use std::io::BufRead;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use fake_support::{emit, word_number, Switches};

struct Fake {
    model: String,
    system: Option<String>,
    /// (role, text, uuid) of the conversation so far.
    conversation: Vec<(&'static str, String, String)>,
    next_uuid: u64,
    delta_delay: Duration,
    total_cost: f64,
    /// The host registered its SDK MCP server `client` (`mcp_set_servers`).
    mcp_registered: bool,
}

/// Its switches: `--fake-<name>[=value]` or `FAKE_CLAUDE_<NAME>`.
const SWITCHES: Switches = Switches {
    env_prefix: "FAKE_CLAUDE",
};

fn switch(name: &str) -> Option<String> {
    SWITCHES.get(name)
}

fn switch_ms(name: &str) -> Option<Duration> {
    SWITCHES.ms(name)
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => b.get("text").and_then(Value::as_str).map(String::from),
                Some("image") => Some("[image]".into()),
                Some("tool_use") => Some(format!(
                    "[tool_use {}]",
                    b.get("name").and_then(Value::as_str).unwrap_or_default()
                )),
                Some("tool_result") => Some(format!(
                    "[tool_result {}]",
                    text_of(b.get("content").unwrap_or(&Value::Null))
                )),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

impl Fake {
    fn uuid(&mut self) -> String {
        self.next_uuid += 1;
        format!("fake-{}-{}", std::process::id(), self.next_uuid)
    }

    fn control_ok(&self, request_id: &str, response: Value) {
        emit(&json!({"type": "control_response", "response": {
            "subtype": "success", "request_id": request_id, "response": response}}));
    }

    fn result(&self, uuid: &str, subtype: &str, is_error: bool, text: Option<&str>, extra: Value) {
        let mut r = json!({"type": "result", "subtype": subtype, "is_error": is_error,
            "num_turns": if text.is_some() { 1 } else { 0 }, "result": text,
            "stop_reason": if is_error { Value::Null } else { json!("end_turn") },
            "duration_ms": 1, "total_cost_usd": self.total_cost,
            "usage": {"input_tokens": 11, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
            "user_message_uuid": uuid, "user_message_uuids": [uuid]});
        if let (Value::Object(r), Value::Object(extra)) = (&mut r, extra) {
            r.extend(extra);
        }
        emit(&r);
    }

    fn control(&mut self, request_id: &str, req: &Value) {
        match req
            .get("subtype")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "initialize" => {
                if switch("never-ready").is_some() {
                    return;
                }
                if self.system.is_none() {
                    self.system = Some(
                        req.get("systemPrompt")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    );
                }
                self.control_ok(
                    request_id,
                    json!({"commands": [], "pid": std::process::id()}),
                );
            }
            "set_model" => {
                self.model = req
                    .get("model")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_string();
                self.control_ok(request_id, json!({"model": self.model}));
            }
            "rewind_conversation" => {
                if let Some(delay) = switch_ms("reset-delay-ms") {
                    std::thread::sleep(delay);
                }
                let target = req
                    .get("target_message_uuid")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match self.conversation.iter().position(|(_, _, u)| u == target) {
                    Some(pos) if req.get("last_seen_user_message_uuid").is_some() => {
                        self.conversation.truncate(pos);
                        self.control_ok(
                            request_id,
                            json!({"rewound": true, "targetMessageUuid": target}),
                        );
                    }
                    _ => self.control_ok(
                        request_id,
                        json!({"rewound": false, "error": "stale target"}),
                    ),
                }
            }
            "interrupt" => self.control_ok(request_id, json!({"still_queued": []})),
            "mcp_set_servers" => {
                self.mcp_registered = req.pointer("/servers/client/type") == Some(&json!("sdk"));
                let added: Vec<&str> = self
                    .mcp_registered
                    .then_some("client")
                    .into_iter()
                    .collect();
                self.control_ok(
                    request_id,
                    json!({"added": added, "removed": [], "errors": {}}),
                );
            }
            "get_settings" => {
                if switch("never-ready").is_some() {
                    return;
                }
                self.control_ok(request_id, json!({"effective": {"model": self.model}}))
            }
            other => emit(
                &json!({"type": "control_response", "response": {"subtype": "error",
                "request_id": request_id, "error": format!("Unsupported control request subtype: {other}")}}),
            ),
        }
    }

    /// Runs one model turn; returns early (with an error result) when interrupted.
    fn turn(&mut self, prompt: String, uuid: String, input: &Receiver<Value>) {
        let history: Vec<String> = self
            .conversation
            .iter()
            .map(|(role, text, _)| format!("{}:{}", &role[..1], text))
            .collect();
        self.conversation
            .push(("user", prompt.clone(), uuid.clone()));
        let answer = format!(
            "echo: {prompt} | history: {} | system: {} | model: {}",
            history.join(","),
            self.system.as_deref().unwrap_or_default(),
            self.model
        );
        emit(&json!({"type": "system", "subtype": "init", "model": self.model, "tools": []}));
        if prompt.contains("FAKE_GARBAGE") {
            println!("this is not json {{");
            return;
        }
        let event = |e: Value| emit(&json!({"type": "stream_event", "event": e}));
        event(
            json!({"type": "message_start", "message": {"id": "msg_fake", "model": self.model,
            "usage": {"input_tokens": 11, "output_tokens": 1}}}),
        );
        event(
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        );
        let calls = fake_support::tool_calls(&prompt);
        let answer = match calls.is_empty() {
            true => answer,
            false => match self.tool_turn(&calls, &uuid, input) {
                tools::ToolTurn::Interrupted => return,
                tools::ToolTurn::Unknown(text) => text,
                tools::ToolTurn::Answered(text) => {
                    event(
                        json!({"type": "message_start", "message": {"id": "msg_fake2",
                        "model": self.model, "usage": {"input_tokens": 11, "output_tokens": 1}}}),
                    );
                    event(json!({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "text", "text": ""}}));
                    text
                }
            },
        };
        if prompt.contains("FAKE_CRASH") {
            event(
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "partial "}}),
            );
            eprintln!("fake-claude: crashing as asked");
            std::process::exit(3);
        }
        if prompt.contains("FAKE_HANG") {
            // Ignore everything, interrupts included, until killed or stdin closes.
            while input.recv().is_ok() {}
            std::process::exit(0);
        }
        let sleep = word_number(&prompt, "FAKE_SLEEP_")
            .map(Duration::from_millis)
            .unwrap_or_default();
        if self.interruptible_wait(sleep, input) {
            return self.interrupted(&uuid);
        }
        let delta = |text: &str| {
            event(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": text}}))
        };
        let retry_line = || {
            emit(
                &json!({"type": "system", "subtype": "api_retry", "attempt": 1,
                "error": "stream dropped by the fake upstream"}),
            )
        };
        // The upstream drops the stream: after two deltas (PARTIAL) or before any (CLEAN), the
        // CLI retries streaming (RETRY) or falls back to one non-streaming call (FALLBACK).
        let retry = prompt.contains("FAKE_RETRY_PARTIAL") || prompt.contains("FAKE_RETRY_CLEAN");
        let fallback =
            prompt.contains("FAKE_FALLBACK_PARTIAL") || prompt.contains("FAKE_FALLBACK_CLEAN");
        if prompt.contains("_PARTIAL") && (retry || fallback) {
            delta("partial ");
            delta("attempt ");
        }
        if retry || fallback {
            retry_line();
        }
        if retry {
            event(
                json!({"type": "message_start", "message": {"id": "msg_fake2", "model": self.model,
                "usage": {"input_tokens": 11, "output_tokens": 1}}}),
            );
            event(
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            );
        }
        let words: Vec<&str> = if fallback {
            Vec::new()
        } else {
            answer.split_inclusive(' ').collect()
        };
        for w in &words {
            if self.interruptible_wait(self.delta_delay, input) {
                return self.interrupted(&uuid);
            }
            event(
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}),
            );
        }
        emit(
            &json!({"type": "assistant", "message": {"id": "msg_fake", "role": "assistant",
            "content": [{"type": "text", "text": answer}]}}),
        );
        event(json!({"type": "content_block_stop", "index": 0}));
        event(
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}),
        );
        event(json!({"type": "message_stop"}));
        let answer_uuid = self.uuid();
        self.conversation
            .push(("assistant", answer.clone(), answer_uuid));
        if let Some(status) = word_number(&prompt, "FAKE_API_ERROR_") {
            let text = format!("API Error: {status} fake upstream failure");
            return self.result(
                &uuid,
                "success",
                true,
                Some(&text),
                json!({"api_error_status": status, "terminal_reason": "api_error"}),
            );
        }
        self.total_cost += 0.0001;
        self.result(
            &uuid,
            "success",
            false,
            Some(&answer),
            json!({"terminal_reason": "completed"}),
        );
    }

    /// Waits `d`, answering control requests; true when an interrupt arrived.
    fn interruptible_wait(&mut self, d: Duration, input: &Receiver<Value>) -> bool {
        let until = Instant::now() + d;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match input.recv_timeout(left) {
                Ok(msg) if msg.get("type").and_then(Value::as_str) == Some("control_request") => {
                    let id = msg
                        .get("request_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let req = msg.get("request").cloned().unwrap_or_default();
                    self.control(&id, &req);
                    if req.get("subtype").and_then(Value::as_str) == Some("interrupt") {
                        return true;
                    }
                }
                Ok(_) => {} // The real CLI queues user lines sent mid-turn; the server never does.
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) => std::process::exit(0),
            }
        }
    }

    fn interrupted(&mut self, uuid: &str) {
        let marker_uuid = self.uuid();
        self.conversation
            .push(("user", "[Request interrupted by user]".into(), marker_uuid));
        self.result(
            uuid,
            "error_during_execution",
            true,
            None,
            json!({"terminal_reason": "aborted_streaming", "errors": ["interrupted"]}),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--version") {
        println!("0.0.0 (fake-claude)");
        return;
    }
    if let Some(code) = switch("exit-at-start") {
        eprintln!("Error: fake-claude told to fail at start");
        std::process::exit(code.parse().unwrap_or(1));
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(d) = switch_ms("start-delay-ms") {
        std::thread::sleep(d);
    }
    let (tx, input) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Value>(&line) {
                Ok(v) => {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                Err(_) => {
                    eprintln!("Error parsing streaming input line: SyntaxError");
                    std::process::exit(1);
                }
            }
        }
    });
    let mut fake = Fake {
        model: flag("--model").unwrap_or_else(|| "default".into()),
        system: None,
        conversation: Vec::new(),
        next_uuid: 0,
        delta_delay: switch_ms("delay-ms").unwrap_or_default(),
        total_cost: 0.0,
        mcp_registered: false,
    };
    if let Some(s) = flag("--system-prompt").filter(|s| !s.is_empty()) {
        fake.system = Some(s);
    }
    while let Ok(msg) = input.recv() {
        match msg.get("type").and_then(Value::as_str) {
            Some("control_request") => {
                let id = msg
                    .get("request_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                fake.control(&id, msg.get("request").unwrap_or(&Value::Null));
            }
            Some("assistant") => {
                let text = text_of(msg.pointer("/message/content").unwrap_or(&Value::Null));
                let uuid = fake.uuid();
                fake.conversation.push(("assistant", text, uuid));
            }
            Some("user") => {
                let text = text_of(msg.pointer("/message/content").unwrap_or(&Value::Null));
                let uuid = match msg.get("uuid").and_then(Value::as_str) {
                    Some(u) => u.to_string(),
                    None => fake.uuid(),
                };
                if msg.get("shouldQuery") == Some(&Value::Bool(false)) {
                    fake.conversation.push(("user", text, uuid.clone()));
                    fake.result(&uuid, "success", false, None, json!({"result": ""}));
                } else {
                    fake.turn(text, uuid, &input);
                }
            }
            _ => {}
        }
    }
}
