//! `fake-gemini`: a stand-in for `gemini --acp` (Agent Client Protocol: JSON-RPC 2.0 lines), for
//! fast, deterministic tests of the Gemini backend. It answers `initialize`, `authenticate`,
//! `session/new`, `session/load`, `session/set_model`, `session/set_mode` and `session/prompt`,
//! takes `session/cancel` as a notification, runs the prompts of different sessions
//! concurrently (each on its own worker thread), and answers each prompt with a text that shows
//! what it saw: `echo: <prompt> | history: <u:…,a:…> | system: <system md> | model: <model>`.
//!
//! As the real CLI does, it reads the system prompt from the file named by `GEMINI_SYSTEM_MD` at
//! every `session/new` (and `session/load`); runs prompts whose leading text starts with `/` or
//! `$` and one of `memory|extensions|init|restore|about|help` as local commands (a fixed text,
//! zero tokens, no model call); and `session/load` reads the session file
//! `<root>/tmp/<cwd basename>/chats/session-<stamp>-<id[:8]>.jsonl` (root: `$GEMINI_CLI_HOME/.gemini`,
//! else `$HOME/.gemini`), replays it as `user_message_chunk`/`agent_message_chunk` updates after
//! its response and uses it as history. Loading fails, as measured, when the file is named with
//! the current minute (the real CLI overwrites it while recording). With `GEMINI_CLI_HOME` set,
//! sessions are recorded in that format too (so a test can check the server deletes them); the
//! fake never writes under a bare `HOME`.
//!
//! Switches, per process: environment variables, or the same names as arguments
//! (`--fake-start-delay-ms=500`, `--fake-never-ready`):
//! - `FAKE_GEMINI_START_DELAY_MS=N`: read nothing for N ms after start (slow start).
//! - `FAKE_GEMINI_NEVER_READY=1`: never answer `initialize`.
//! - `FAKE_GEMINI_EXIT_AT_START=CODE`: print an error on stderr and exit at once.
//! - `FAKE_GEMINI_DELAY_MS=N`: N ms before each `agent_message_chunk`.
//! - `FAKE_GEMINI_RESET_DELAY_MS=N`: N ms before answering `session/new` (a slow reset).
//!
//! Switches, per prompt (words in the prompt):
//! - `FAKE_SLEEP_<ms>`: wait that long before answering (`session/cancel` ends the wait).
//! - `FAKE_CRASH`: stream one chunk, then exit with status 3.
//! - `FAKE_HANG`: stream one chunk, then nothing more for this prompt: it is never answered, and
//!   `session/cancel` or requests naming its session are ignored. Other sessions go on.
//! - `FAKE_GARBAGE`: print a line that is not JSON; the prompt is never answered.
//! - `FAKE_API_ERROR_<status>`: the upstream failed: the prompt is answered with the JSON-RPC error
//!   the real CLI gives (code = the HTTP status, message = the upstream's error), no chunk first.
//! - `FAKE_RETRY_PARTIAL`: two chunks of a failed attempt, then the whole answer, with nothing in
//!   between — the real CLI retries a dropped stream silently, and the client has already seen
//!   the partial chunks.
//!
//! Like the real CLI: `session/cancel` sent as a request, `session/list` and `session/close` are
//! "Method not found"; an unknown session is -32602; failed and cancelled prompts are not kept in
//! the history; consecutive user messages of a loaded history are one (`u:q1 q2`), and those it
//! ends with are one with the next prompt (echoed before it); a second prompt on a busy session cancels the first; at stdin EOF
//! the running prompts finish and are answered, then the process exits 0.

#[path = "fake_support/mod.rs"]
mod fake_support;

#[path = "fake_gemini/chats.rs"]
mod chats;

#[path = "fake_gemini/prompt.rs"]
mod prompt;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

use chats::{Chat, Role};
use fake_support::{emit, uuid, Event, Outcome, Script, Switches};
use prompt::{prompt_result, PromptEnded, PromptWorker};

const SWITCHES: Switches = Switches {
    env_prefix: "FAKE_GEMINI",
};

const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;
const MODES: [&str; 4] = ["default", "autoEdit", "yolo", "plan"];
const LOCAL_COMMANDS: [&str; 6] = ["memory", "extensions", "init", "restore", "about", "help"];

fn ok(id: &Value, result: Value) {
    emit(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
}

/// A JSON-RPC error; the real CLI also dumps every one on stderr.
fn fail(id: &Value, code: i64, message: &str, data: Option<Value>) {
    let mut error = json!({"code": code, "message": message});
    if let Some(data) = data {
        error["data"] = data;
    }
    eprintln!("Error handling request {{\"id\":{id}}} {error}");
    emit(&json!({"jsonrpc": "2.0", "id": id, "error": error}));
}

fn internal_error(id: &Value, details: &str) {
    let data = json!({"details": details});
    fail(id, INTERNAL_ERROR, "Internal error", Some(data));
}

fn update(session_id: &str, update: Value) {
    emit(&json!({"jsonrpc": "2.0", "method": "session/update",
        "params": {"sessionId": session_id, "update": update}}));
}

fn chunk(session_id: &str, kind: &str, text: &str) {
    let content = json!({"type": "text", "text": text});
    update(
        session_id,
        json!({"sessionUpdate": kind, "content": content}),
    );
}

/// What a session is doing. One prompt at a time; the dispatcher is the only writer.
enum Activity {
    Idle,
    /// `stop` is the worker's cancel line: the dispatcher sends on `session/cancel`, and drops
    /// it when a newer prompt replaces this one (after sending, so the worker answers cancelled).
    Running {
        seq: u64,
        stop: Sender<()>,
    },
    /// A `FAKE_HANG` prompt: everything naming this session is ignored from now on.
    Hung,
}

struct Session {
    model: String,
    system: String,
    history: Vec<(Role, String)>,
    /// The session file being recorded (only with `GEMINI_CLI_HOME` set).
    record: Option<PathBuf>,
    activity: Activity,
}

/// The dispatcher: owns every session, answers requests, starts prompt workers.
struct Server {
    sessions: HashMap<String, Session>,
    model: String,
    delta_delay: Duration,
    next_seq: u64,
    /// Joined at stdin EOF: running prompts are answered before the process exits.
    workers: Vec<JoinHandle<()>>,
    /// Cloned into every prompt worker, which reports its end through it.
    events: Sender<Event<PromptEnded>>,
}

impl Server {
    fn handle(&mut self, msg: Value) {
        let method = msg["method"].as_str().unwrap_or_default().to_string();
        let params = &msg["params"];
        let Some(id) = msg.get("id") else {
            if method == "session/cancel" {
                self.cancel(params);
            }
            return;
        };
        match method.as_str() {
            "initialize" => initialize(id),
            "authenticate" => ok(id, json!({})),
            "session/new" => self.session_new(id, params),
            "session/load" => self.session_load(id, params),
            "session/set_model" => self.set_model(id, params),
            "session/set_mode" => self.set_mode(id, params),
            "session/prompt" => self.prompt(id, params),
            _ => fail(id, METHOD_NOT_FOUND, "Method not found", None),
        }
    }

    fn session_new(&mut self, id: &Value, params: &Value) {
        if let Some(d) = SWITCHES.ms("reset-delay-ms") {
            std::thread::sleep(d);
        }
        let system = match system_prompt() {
            Ok(system) => system,
            Err(e) => return internal_error(id, &e),
        };
        let session_id = uuid();
        let cwd = params["cwd"].as_str().unwrap_or_default();
        let record = chats::recording_root().and_then(|root| {
            let chat = Chat::new(&session_id, Vec::new());
            chat.write(&root, cwd, chats::now_secs()).ok()
        });
        ok(id, self.session_info(Some(&session_id)));
        update(&session_id, available_commands());
        self.sessions.insert(
            session_id,
            Session {
                model: self.model.clone(),
                system,
                history: Vec::new(),
                record,
                activity: Activity::Idle,
            },
        );
    }

    fn session_load(&mut self, id: &Value, params: &Value) {
        let session_id = params["sessionId"].as_str().unwrap_or_default();
        let cwd = params["cwd"].as_str().unwrap_or_default();
        let now = chats::now_secs();
        let chat = match chats::load(&chats::reading_root(), cwd, session_id, now) {
            Ok(chat) => chat,
            Err(details) => return internal_error(id, &details),
        };
        let system = match system_prompt() {
            Ok(system) => system,
            Err(e) => return internal_error(id, &e),
        };
        let record = chats::recording_root().and_then(|root| chat.write(&root, cwd, now).ok());
        ok(id, self.session_info(None));
        for (role, text) in &chat.messages {
            let kind = match role {
                Role::User => "user_message_chunk",
                Role::Gemini => "agent_message_chunk",
            };
            chunk(session_id, kind, text);
        }
        let session = Session {
            model: self.model.clone(),
            system,
            history: chat.messages,
            record,
            activity: Activity::Idle,
        };
        self.sessions.insert(session_id.to_string(), session);
    }

    fn session_info(&self, session_id: Option<&str>) -> Value {
        let modes: Vec<Value> = MODES
            .iter()
            .map(|m| json!({"id": m, "name": m, "description": null}))
            .collect();
        let models: Vec<Value> = ["auto", "gemini-2.5-pro", "gemini-2.5-flash"]
            .iter()
            .map(|m| json!({"modelId": m, "name": m}))
            .collect();
        let mut info = json!({
            "modes": {"availableModes": modes, "currentModeId": "default"},
            "models": {"availableModels": models, "currentModelId": self.model}});
        if let Some(session_id) = session_id {
            info["sessionId"] = json!(session_id);
        }
        info
    }

    /// The session a request names; `None` (and no answer) for a hung one.
    fn session(&mut self, id: &Value, params: &Value) -> Option<&mut Session> {
        let session_id = params["sessionId"].as_str().unwrap_or_default();
        match self.sessions.get_mut(session_id) {
            Some(s) if matches!(s.activity, Activity::Hung) => None,
            Some(s) => Some(s),
            None => {
                let message = format!("Session not found: {session_id}");
                fail(id, INVALID_PARAMS, &message, None);
                None
            }
        }
    }

    fn set_model(&mut self, id: &Value, params: &Value) {
        if let Some(session) = self.session(id, params) {
            session.model = params["modelId"].as_str().unwrap_or_default().to_string();
            ok(id, json!({}));
        }
    }

    fn set_mode(&mut self, id: &Value, params: &Value) {
        let mode = params["modeId"].as_str().unwrap_or_default().to_string();
        if self.session(id, params).is_none() {
            return;
        }
        if MODES.contains(&mode.as_str()) {
            ok(id, json!({}));
        } else {
            internal_error(id, &format!("Invalid or unavailable mode: {mode}"));
        }
    }

    fn cancel(&mut self, params: &Value) {
        let session_id = params["sessionId"].as_str().unwrap_or_default();
        if let Some(Session {
            activity: Activity::Running { stop, .. },
            ..
        }) = self.sessions.get(session_id)
        {
            // The worker may have just finished; then there is nothing left to cancel.
            let _ = stop.send(());
        }
    }

    fn prompt(&mut self, id: &Value, params: &Value) {
        let blocks = params["prompt"].as_array().cloned().unwrap_or_default();
        let session_id = params["sessionId"].as_str().unwrap_or_default().to_string();
        let (delta_delay, events, seq) = (self.delta_delay, self.events.clone(), self.next_seq);
        let Some(session) = self.session(id, params) else {
            return;
        };
        if let Activity::Running { stop, .. } = &session.activity {
            // Measured: a second prompt on a busy session cancels the first.
            let _ = stop.send(());
        }
        if let Some(text) = local_command(&blocks) {
            chunk(&session_id, "agent_message_chunk", text);
            return ok(id, prompt_result("end_turn", 0, 0, &session.model));
        }
        // Measured: consecutive user messages of a loaded history reach the model as one, and
        // those it ends with as one with the prompt.
        let mut prompt = vec![prompt_text(&blocks)];
        while let Some((Role::User, _)) = session.history.last() {
            if let Some((_, text)) = session.history.pop() {
                prompt.insert(0, text);
            }
        }
        let prompt = prompt.join(" ");
        let mut history: Vec<String> = Vec::new();
        let mut after_user = false;
        for (role, text) in &session.history {
            let user = matches!(role, Role::User);
            match history.last_mut() {
                Some(last) if user && after_user => *last = format!("{last} {text}"),
                _ => history.push(format!("{}:{text}", role.initial())),
            }
            after_user = user;
        }
        let answer = format!(
            "echo: {prompt} | history: {} | system: {} | model: {}",
            history.join(","),
            session.system,
            session.model
        );
        let script = Script::parse(&prompt);
        let (stop_tx, stop) = mpsc::channel();
        session.activity = match script.outcome {
            Outcome::Hang => Activity::Hung,
            _ => Activity::Running { seq, stop: stop_tx },
        };
        let worker = PromptWorker {
            id: id.clone(),
            session_id,
            seq,
            model: session.model.clone(),
            prompt,
            answer,
            script,
            delta_delay,
            stop,
            events,
        };
        self.next_seq += 1;
        self.workers.retain(|w| !w.is_finished());
        self.workers.push(std::thread::spawn(move || worker.run()));
    }

    fn prompt_ended(&mut self, end: PromptEnded) {
        let Some(session) = self.sessions.get_mut(&end.session_id) else {
            return;
        };
        if matches!(session.activity, Activity::Running { seq, .. } if seq == end.seq) {
            session.activity = Activity::Idle;
        }
        if let Some((prompt, answer)) = end.exchange {
            if let Some(path) = &session.record {
                // A failed append only loses the recording, which the fake's answers never read.
                let _ = chats::append(path, &[(Role::User, &prompt), (Role::Gemini, &answer)]);
            }
            session.history.push((Role::User, prompt));
            session.history.push((Role::Gemini, answer));
        }
    }

    /// At stdin EOF: let the running prompts finish and answer, then exit.
    fn close(self) -> ! {
        for worker in self.workers {
            let _ = worker.join();
        }
        std::process::exit(0);
    }
}

fn initialize(id: &Value) {
    if SWITCHES.get("never-ready").is_some() {
        return;
    }
    let methods: Vec<Value> = [
        ("oauth-personal", "Log in with Google"),
        ("gemini-api-key", "Gemini API key"),
        ("vertex-ai", "Vertex AI"),
        ("gateway", "AI API Gateway"),
    ]
    .iter()
    .map(|(id, name)| json!({"id": id, "name": name, "description": null}))
    .collect();
    ok(
        id,
        json!({"protocolVersion": 1, "authMethods": methods,
            "agentInfo": {"name": "gemini-cli", "title": "Gemini CLI", "version": "0.0.0-fake"},
            "agentCapabilities": {"loadSession": true,
                "promptCapabilities": {"image": true, "audio": true, "embeddedContext": true},
                "mcpCapabilities": {"http": true, "sse": true}}}),
    );
}

fn available_commands() -> Value {
    let commands: Vec<Value> = LOCAL_COMMANDS
        .iter()
        .map(|c| json!({"name": c, "description": format!("/{c} (fake)")}))
        .collect();
    json!({"sessionUpdate": "available_commands_update", "availableCommands": commands})
}

/// The system prompt: the text of the file `GEMINI_SYSTEM_MD` names, read now, or empty
/// (the built-in prompt) when unset. A missing file fails the session, like the real CLI.
fn system_prompt() -> Result<String, String> {
    match std::env::var("GEMINI_SYSTEM_MD") {
        Ok(path) if !matches!(path.as_str(), "" | "0" | "false") => std::fs::read_to_string(&path)
            .map_err(|e| format!("missing system prompt file '{path}': {e}")),
        _ => Ok(String::new()),
    }
}

/// The prompt's text blocks joined by spaces; other blocks show as `[type]`.
fn prompt_text(blocks: &[Value]) -> String {
    blocks
        .iter()
        .map(|b| match b["type"].as_str() {
            Some("text") => b["text"].as_str().unwrap_or_default().to_string(),
            other => format!("[{}]", other.unwrap_or("block")),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The fixed answer of a local command, if the prompt is one: the leading text blocks,
/// concatenated and trimmed, start with `/` or `$` followed by a command name as the first word.
fn local_command(blocks: &[Value]) -> Option<&'static str> {
    let leading: String = blocks
        .iter()
        .map_while(|b| (b["type"] == "text").then(|| b["text"].as_str().unwrap_or_default()))
        .collect();
    let rest = leading.trim().strip_prefix(['/', '$'])?;
    let word = rest.split_whitespace().next()?;
    match *LOCAL_COMMANDS.iter().find(|c| **c == word)? {
        "memory" => Some("Memory is currently empty."),
        "help" => {
            Some("Gemini CLI (fake) commands: /memory /extensions /init /restore /about /help")
        }
        _ => Some("fake-gemini ran a local command."),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version") {
        println!("0.0.0-fake");
        return;
    }
    if !args
        .iter()
        .any(|a| a == "--acp" || a == "--experimental-acp")
    {
        eprintln!("fake-gemini: only `--acp` is implemented");
        std::process::exit(2);
    }
    if let Some(code) = SWITCHES.get("exit-at-start") {
        eprintln!("Error: fake-gemini told to fail at start");
        std::process::exit(code.parse().unwrap_or(1));
    }
    if let Some(d) = SWITCHES.ms("start-delay-ms") {
        std::thread::sleep(d);
    }
    let model = args
        .windows(2)
        .find(|w| w[0] == "--model" || w[0] == "-m")
        .map(|w| w[1].clone());
    let (tx, events) = mpsc::channel();
    fake_support::read_stdin("fake-gemini", tx.clone());
    let mut server = Server {
        sessions: HashMap::new(),
        model: model.unwrap_or_else(|| "auto".into()),
        delta_delay: SWITCHES.ms("delay-ms").unwrap_or_default(),
        next_seq: 0,
        workers: Vec::new(),
        events: tx,
    };
    for event in events {
        match event {
            Event::Message(msg) => server.handle(msg),
            Event::StdinClosed => server.close(),
            Event::Worker(end) => server.prompt_ended(end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> Value {
        json!({"type": "text", "text": t})
    }

    #[test]
    fn local_commands_are_recognised_as_the_real_cli_does() {
        assert!(local_command(&[text("/memory show")]).is_some());
        assert!(local_command(&[text("  $memory show")]).is_some());
        assert!(
            local_command(&[text("/"), text("help")]).is_some(),
            "blocks concatenated"
        );
        assert!(local_command(&[text("/help\n")]).is_some());
        assert!(local_command(&[text("/nonexistent x")]).is_none());
        assert!(local_command(&[text("please /memory show")]).is_none());
        assert!(local_command(&[text("\u{200b}/memory show")]).is_none());
        assert!(local_command(&[text("/memoryx")]).is_none());
        assert!(local_command(&[json!({"type": "image"}), text("/help")]).is_none());
    }

    #[test]
    fn prompt_text_joins_the_blocks() {
        let blocks = [text("a"), json!({"type": "image"}), text("b")];
        assert_eq!(prompt_text(&blocks), "a [image] b");
    }
}
