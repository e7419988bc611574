//! `fake-codex`: a stand-in for `codex app-server` (JSON-RPC lines without a `"jsonrpc"` member),
//! for fast, deterministic tests of the Codex backend. It answers `initialize`, `thread/start`,
//! `thread/inject_items`, `turn/start`, `turn/interrupt`, `thread/delete`, `thread/archive`,
//! `thread/unsubscribe` and `thread/loaded/list` in the shapes measured on the real CLI, runs the
//! turns of different threads concurrently (each on its own worker thread, so their
//! notifications interleave), and answers each prompt with a text that shows what it saw:
//! `echo: <prompt> | history: <u:…,a:…> | system: <baseInstructions> | developer:
//! <developerInstructions> | model: <model>`, where the history is the injected items and the
//! earlier turns of that thread.
//!
//! Switches, per process: environment variables, or the same names as arguments
//! (`--fake-start-delay-ms=500`, `--fake-never-ready`):
//! - `FAKE_CODEX_START_DELAY_MS=N`: read nothing for N ms after start (slow start).
//! - `FAKE_CODEX_NEVER_READY=1`: never answer `initialize`.
//! - `FAKE_CODEX_EXIT_AT_START=CODE`: print an error on stderr and exit at once.
//! - `FAKE_CODEX_DELAY_MS=N`: N ms before each `item/agentMessage/delta`.
//! - `FAKE_CODEX_RESET_DELAY_MS=N`: N ms before answering `thread/start` (a slow reset).
//!
//! Switches, per turn (words in the prompt):
//! - `FAKE_SLEEP_<ms>`: wait that long before answering (`turn/interrupt` ends the wait).
//! - `FAKE_CRASH`: stream one delta, then exit with status 3.
//! - `FAKE_HANG`: stream one delta, then nothing more for this turn: requests naming its thread,
//!   `turn/interrupt` included, get no answer. Other threads go on.
//! - `FAKE_GARBAGE`: print a line that is not JSON; the turn never ends.
//! - `FAKE_API_ERROR_<status>`: the upstream failed: an `error` notification (`willRetry:false`)
//!   and `turn/completed` with `status:"failed"` and `turn.error.codexErrorInfo` as the real CLI
//!   reports that status with retries off. No delta is streamed.
//! - `FAKE_RETRY_PARTIAL`: the stream drops after two deltas and is retried: an `error`
//!   notification with `willRetry:true`, then the whole answer as a new `agentMessage` item
//!   (the first item is never completed). The server must not keep the partial text.
//! - `FAKE_TOOL:<name>:<json>` (once or more): the model calls the thread's client tool
//!   (`dynamicTools`, which need `initialize.capabilities.experimentalApi`), see `fake_codex/tools.rs`:
//!   the answer is then `tool results: <name>=<text>, …` instead of the echo. Injected
//!   `function_call` / `function_call_output` items show in the history as `call:<name>` and
//!   `result:<output>`; a `turn/start` with `input: []` adds no user message.
//!
//! Like the real CLI: nothing is printed before the `initialize` response; requests before it
//! fail; a failed turn keeps its user message in the thread's history, an interrupted one adds
//! a `<turn_aborted>` user message and drops the partial answer; a second `turn/start` on a busy
//! thread joins the running turn (same turn id); ephemeral threads cannot be deleted or archived;
//! stdin EOF exits 0 at once, mid-turn too. Every error is a JSON-RPC error with code -32600.

#[path = "fake_support/mod.rs"]
mod fake_support;

#[path = "fake_codex/turn.rs"]
mod turn;

#[path = "fake_codex/tools.rs"]
mod tools;

use std::collections::HashMap;
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use fake_support::{emit, uuid, Event, Outcome, Script, Switches};
use turn::{turn_json, Ending, Turn, TurnEnded, Usage, TURN_USAGE};

const SWITCHES: Switches = Switches {
    env_prefix: "FAKE_CODEX",
};

/// The app-server answers every failed request with this code (measured).
const INVALID_REQUEST: i64 = -32600;

fn ok(id: &Value, result: Value) {
    emit(&json!({"id": id, "result": result}));
}

fn fail(id: &Value, message: &str) {
    emit(&json!({"id": id, "error": {"code": INVALID_REQUEST, "message": message}}));
}

fn notify(method: &str, params: Value) {
    emit(&json!({"method": method, "params": params}));
}

/// What a thread is doing. One turn at a time; the dispatcher is the only writer.
enum Activity {
    Idle,
    /// `stop` is the worker's interrupt line: the dispatcher sends on `turn/interrupt`, and
    /// dropping it (thread deleted) makes the worker end without another word.
    Running {
        turn_id: String,
        stop: Sender<()>,
    },
    /// A `FAKE_HANG` turn: everything naming this thread is ignored from now on.
    Hung,
}

struct Thread {
    id: String,
    model: String,
    base: String,
    developer: String,
    ephemeral: bool,
    approval: String,
    sandbox: String,
    /// `u:text` / `a:text` entries: injected items and finished turns.
    history: Vec<String>,
    /// The names of its client tools (`dynamicTools`).
    tools: Vec<String>,
    total: Usage,
    activity: Activity,
}

impl Thread {
    fn info(&self, cwd: &str, home: &str) -> Value {
        let path = (!self.ephemeral).then(|| format!("{home}/sessions/rollout-{}.jsonl", self.id));
        json!({"id": self.id, "ephemeral": self.ephemeral, "modelProvider": "fake",
            "model": self.model, "status": {"type": "idle"}, "path": path, "cwd": cwd,
            "cliVersion": "0.0.0", "source": "vscode", "turns": []})
    }
}

/// The dispatcher: owns every thread, answers requests, starts turn workers.
struct Server {
    threads: HashMap<String, Thread>,
    initialized: bool,
    /// `initialize` asked for `experimentalApi` (which `dynamicTools` need).
    experimental: bool,
    default_model: String,
    delta_delay: Duration,
    cwd: String,
    home: String,
    /// Cloned into every turn worker, which reports its end through it.
    events: Sender<Event<TurnEnded>>,
}

impl Server {
    fn handle(&mut self, msg: Value) {
        let method = msg["method"].as_str().unwrap_or_default().to_string();
        let params = &msg["params"];
        if msg.get("method").is_none() {
            // The answer to one of our requests (a client tool call).
            return tools::answered(msg);
        }
        let Some(id) = msg.get("id") else {
            if method == "initialized" {
                notify(
                    "remoteControl/status/changed",
                    json!({"status": "disabled", "serverName": "fake"}),
                );
            }
            return;
        };
        if !self.initialized && method != "initialize" {
            return fail(id, "Not initialized");
        }
        match method.as_str() {
            "initialize" => self.initialize(id, params),
            "thread/start" => self.thread_start(id, params),
            "thread/inject_items" => self.inject_items(id, params),
            "turn/start" => self.turn_start(id, params),
            "turn/interrupt" => self.turn_interrupt(id, params),
            "thread/delete" | "thread/archive" => self.thread_remove(id, &method, params),
            "thread/unsubscribe" => ok(id, json!({"status": "unsubscribed"})),
            "thread/loaded/list" => {
                let data: Vec<&String> = self.threads.keys().collect();
                ok(id, json!({"data": data, "nextCursor": null}))
            }
            other => fail(id, &format!("Invalid request: unknown method `{other}`")),
        }
    }

    fn initialize(&mut self, id: &Value, params: &Value) {
        if SWITCHES.get("never-ready").is_some() {
            return;
        }
        self.initialized = true;
        self.experimental = params["capabilities"]["experimentalApi"] == true;
        let name = params["clientInfo"]["name"].as_str().unwrap_or("client");
        let version = params["clientInfo"]["version"].as_str().unwrap_or("0");
        ok(
            id,
            json!({"userAgent": format!("{name}/0.0.0 (fake-codex) ({name}; {version})"),
                "codexHome": self.home, "platformFamily": "unix", "platformOs": "linux"}),
        );
    }

    fn thread_start(&mut self, id: &Value, params: &Value) {
        if let Some(d) = SWITCHES.ms("reset-delay-ms") {
            std::thread::sleep(d);
        }
        let text = |key: &str, default: &str| params[key].as_str().unwrap_or(default).to_string();
        let tools = params["dynamicTools"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !tools.is_empty() && !self.experimental {
            // Measured.
            return fail(
                id,
                "thread/start.dynamicTools requires experimentalApi capability",
            );
        }
        let thread = Thread {
            tools: tools
                .iter()
                .filter_map(|t| t["name"].as_str().map(String::from))
                .collect(),
            id: uuid(),
            model: text("model", &self.default_model),
            base: text("baseInstructions", ""),
            developer: text("developerInstructions", ""),
            ephemeral: params["ephemeral"].as_bool().unwrap_or(false),
            approval: text("approvalPolicy", "on-request"),
            sandbox: text("sandbox", "read-only"),
            history: Vec::new(),
            total: Usage::default(),
            activity: Activity::Idle,
        };
        let info = thread.info(&self.cwd, &self.home);
        let sandbox = match thread.sandbox.as_str() {
            "danger-full-access" => json!({"type": "dangerFullAccess"}),
            "workspace-write" => json!({"type": "workspaceWrite", "networkAccess": false}),
            _ => json!({"type": "readOnly", "networkAccess": false}),
        };
        ok(
            id,
            json!({"thread": info, "model": thread.model, "modelProvider": "fake",
                "cwd": self.cwd, "approvalPolicy": thread.approval, "approvalsReviewer": "user",
                "sandbox": sandbox, "reasoningEffort": null}),
        );
        notify("thread/started", json!({"thread": info}));
        self.threads.insert(thread.id.clone(), thread);
    }

    /// The thread a request names; `None` (and no answer) for a hung one.
    fn thread(&mut self, id: &Value, params: &Value) -> Option<&mut Thread> {
        let thread_id = params["threadId"].as_str().unwrap_or_default();
        match self.threads.get_mut(thread_id) {
            Some(t) if matches!(t.activity, Activity::Hung) => None,
            Some(t) => Some(t),
            None => {
                fail(id, &format!("thread not found: {thread_id}"));
                None
            }
        }
    }

    fn inject_items(&mut self, id: &Value, params: &Value) {
        let Some(thread) = self.thread(id, params) else {
            return;
        };
        let items = params["items"].as_array().cloned().unwrap_or_default();
        thread.history.extend(items.iter().map(history_entry));
        ok(id, json!({}));
    }

    fn turn_start(&mut self, id: &Value, params: &Value) {
        let prompt = input_text(&params["input"]);
        let (delta_delay, events) = (self.delta_delay, self.events.clone());
        let Some(thread) = self.thread(id, params) else {
            return;
        };
        if let Activity::Running { turn_id, .. } = &thread.activity {
            // Measured: a turn/start on a busy thread joins the running turn.
            thread.history.push(format!("u:{prompt}"));
            return ok(id, json!({"turn": turn_json(turn_id, "inProgress")}));
        }
        if let Some(model) = params["model"].as_str() {
            thread.model = model.to_string(); // sticky for later turns, as measured
        }
        let answer = format!(
            "echo: {prompt} | history: {} | system: {} | developer: {} | model: {}",
            thread.history.join(","),
            thread.base,
            thread.developer,
            thread.model
        );
        // Measured: `input: []` (the model goes on after injected tool results) adds no message.
        if params["input"].as_array().is_none_or(|i| !i.is_empty()) {
            thread.history.push(format!("u:{prompt}"));
        }
        let script = Script::parse(&prompt);
        let calls = fake_support::tool_calls(&prompt)
            .into_iter()
            .filter(|(name, _)| thread.tools.contains(name))
            .collect();
        let turn_id = uuid();
        let (stop_tx, stop) = mpsc::channel();
        thread.activity = match script.outcome {
            Outcome::Hang => Activity::Hung,
            _ => Activity::Running {
                turn_id: turn_id.clone(),
                stop: stop_tx,
            },
        };
        ok(id, json!({"turn": turn_json(&turn_id, "inProgress")}));
        let turn = Turn {
            thread_id: thread.id.clone(),
            turn_id,
            prompt,
            answer,
            script,
            calls,
            delta_delay,
            total: thread.total.plus(TURN_USAGE),
            stop,
            events,
            started: Instant::now(),
        };
        std::thread::spawn(move || turn.run());
    }

    fn turn_interrupt(&mut self, id: &Value, params: &Value) {
        let Some(thread) = self.thread(id, params) else {
            return;
        };
        match &thread.activity {
            Activity::Running { stop, .. } => {
                ok(id, json!({}));
                // The worker may have just finished; then there is nothing left to stop.
                let _ = stop.send(());
            }
            _ => fail(id, "no active turn to interrupt"),
        }
    }

    fn thread_remove(&mut self, id: &Value, method: &str, params: &Value) {
        let Some(thread) = self.thread(id, params) else {
            return;
        };
        let thread_id = thread.id.clone();
        if thread.ephemeral {
            let message = match method {
                "thread/delete" => {
                    format!("thread is not persisted and cannot be deleted: {thread_id}")
                }
                _ => format!("no rollout found for thread id {thread_id}"),
            };
            return fail(id, &message);
        }
        // Dropping the thread drops a running turn's stop line: its worker ends silently.
        self.threads.remove(&thread_id);
        ok(id, json!({}));
        let notice = match method {
            "thread/delete" => "thread/deleted",
            _ => "thread/archived",
        };
        notify(notice, json!({"threadId": thread_id}));
    }

    fn turn_ended(&mut self, end: TurnEnded) {
        let Some(thread) = self.threads.get_mut(&end.thread_id) else {
            return; // deleted meanwhile
        };
        if matches!(&thread.activity, Activity::Running { turn_id, .. } if *turn_id == end.turn_id)
        {
            thread.activity = Activity::Idle;
        }
        match end.ending {
            Ending::Completed { answer } => {
                thread.history.push(format!("a:{answer}"));
                thread.total = thread.total.plus(TURN_USAGE);
            }
            Ending::Interrupted => thread.history.push("u:<turn_aborted>".into()),
            Ending::Failed => {}
        }
    }
}

/// The prompt of a `turn/start`: its text inputs, joined by spaces.
fn input_text(input: &Value) -> String {
    let parts = input.as_array().map(Vec::as_slice).unwrap_or_default();
    parts
        .iter()
        .map(|p| match p["type"].as_str() {
            Some("text") => p["text"].as_str().unwrap_or_default().to_string(),
            Some(other) => format!("[{other}]"),
            None => String::new(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One history entry from a raw Responses item: `u:`/`a:`/`d:` and the message's text,
/// `call:<name>` for a function call, `result:<output>` for its output, or the item's type.
fn history_entry(item: &Value) -> String {
    match item["type"].as_str() {
        Some("message") => {}
        Some("function_call") => return format!("call:{}", item["name"].as_str().unwrap_or("")),
        Some("function_call_output") => {
            return format!("result:{}", item["output"].as_str().unwrap_or(""))
        }
        other => return other.unwrap_or("item").to_string(),
    }
    let role = match item["role"].as_str() {
        Some("assistant") => 'a',
        Some("user") => 'u',
        _ => 'd',
    };
    let text = match &item["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    };
    format!("{role}:{text}")
}

/// The model of `-c model=…`, else the top-level `model` of `$CODEX_HOME/config.toml`.
fn default_model(args: &[String], home: &str) -> String {
    let unquote = |v: &str| v.trim().trim_matches('"').to_string();
    let from_args = args
        .windows(2)
        .filter(|w| w[0] == "-c" || w[0] == "--config")
        .find_map(|w| w[1].strip_prefix("model=").map(unquote));
    let from_config = || {
        let config = std::fs::read_to_string(format!("{home}/config.toml")).ok()?;
        config
            .lines()
            .take_while(|l| !l.trim_start().starts_with('['))
            .find_map(|l| {
                let (key, value) = l.split_once('=')?;
                (key.trim() == "model").then(|| unquote(value))
            })
    };
    from_args
        .or_else(from_config)
        .unwrap_or_else(|| "default".into())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version") {
        println!("codex-cli 0.0.0 (fake-codex)");
        return;
    }
    if args.first().map(String::as_str) != Some("app-server") {
        eprintln!("fake-codex: only `app-server` is implemented");
        std::process::exit(2);
    }
    if let Some(code) = SWITCHES.get("exit-at-start") {
        eprintln!("Error: fake-codex told to fail at start");
        std::process::exit(code.parse().unwrap_or(1));
    }
    if let Some(d) = SWITCHES.ms("start-delay-ms") {
        std::thread::sleep(d);
    }
    let home = std::env::var("CODEX_HOME")
        .unwrap_or_else(|_| format!("{}/.codex", std::env::var("HOME").unwrap_or_default()));
    let (tx, events) = mpsc::channel();
    fake_support::read_stdin("fake-codex", tx.clone());
    let mut server = Server {
        threads: HashMap::new(),
        initialized: false,
        experimental: false,
        default_model: default_model(&args, &home),
        delta_delay: SWITCHES.ms("delay-ms").unwrap_or_default(),
        cwd: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        home,
        events: tx,
    };
    for event in events {
        match event {
            Event::Message(msg) => server.handle(msg),
            // Measured: EOF ends the process at once, running turns or not.
            Event::StdinClosed => std::process::exit(0),
            Event::Worker(end) => server.turn_ended(end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_items_become_history_entries() {
        let user = json!({"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "q1"}]});
        let assistant = json!({"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "a1"}]});
        assert_eq!(history_entry(&user), "u:q1");
        assert_eq!(history_entry(&assistant), "a:a1");
        assert_eq!(
            history_entry(&json!({"type": "function_call", "name": "get_weather"})),
            "call:get_weather"
        );
        assert_eq!(
            history_entry(&json!({"type": "function_call_output", "output": "sunny"})),
            "result:sunny"
        );
        assert_eq!(history_entry(&json!({"type": "reasoning"})), "reasoning");
    }

    #[test]
    fn input_text_joins_the_parts() {
        let input = json!([{"type": "text", "text": "one"}, {"type": "image", "url": "x"},
            {"type": "text", "text": "two"}]);
        assert_eq!(input_text(&input), "one [image] two");
    }

    #[test]
    fn the_model_comes_from_the_args_then_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().display().to_string();
        std::fs::write(
            dir.path().join("config.toml"),
            "model = \"gpt-5\"\n[model_providers.x]\nmodel = \"no\"\n",
        )
        .unwrap();
        assert_eq!(default_model(&[], &home), "gpt-5");
        let args = ["app-server", "-c", "model=\"o3\""].map(String::from);
        assert_eq!(default_model(&args, &home), "o3");
        assert_eq!(default_model(&[], "/nonexistent"), "default");
    }
}
