//! The fake Codex and Gemini CLIs speak their protocols: a whole conversation over stdin/stdout
//! with two threads (sessions) streaming at once, an interrupt (cancel) and injected history.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One fake CLI process and everything it has written so far.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
    seen: Vec<Value>,
    next_id: u64,
    /// Gemini's ACP wants `"jsonrpc":"2.0"` on every message; Codex's app-server has none.
    jsonrpc: bool,
}

impl Peer {
    fn spawn(bin: &str, args: &[&str], envs: &[(&str, &str)], jsonrpc: bool) -> Peer {
        let mut child = Command::new(bin)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // The fakes log every JSON-RPC error there, as the real CLIs do: noise here.
            .stderr(Stdio::null())
            .spawn()
            .expect("the fake binary is built with the tests");
        let stdout = child.stdout.take().expect("piped above");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or_else(|_| json!({"raw": line}));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Peer {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            next_id: 0,
            jsonrpc,
        }
    }

    fn send(&mut self, mut msg: Value) {
        if self.jsonrpc {
            msg["jsonrpc"] = json!("2.0");
        }
        let stdin = self.stdin.as_mut().expect("stdin is open until close()");
        writeln!(stdin, "{msg}").expect("the fake reads its stdin");
    }

    fn request(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"id": id, "method": method, "params": params}));
        id
    }

    /// Sends a request and waits for its response (result or error).
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params);
        self.response(id)
    }

    fn response(&mut self, id: u64) -> Value {
        self.wait_for(&format!("response {id}"), |m| {
            m["id"] == id && (m.get("result").is_some() || m.get("error").is_some())
        })
    }

    /// The first message, seen already or arriving within the deadline, that matches.
    fn wait_for(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(m) = self.seen.iter().find(|m| matches(m)) {
                return m.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(m) => self.seen.push(m),
                Err(_) => panic!("no {what}; seen: {:#?}", self.seen),
            }
        }
    }

    /// Positions in `seen` of the messages that match.
    fn positions(&self, matches: impl Fn(&Value) -> bool) -> Vec<usize> {
        (0..self.seen.len())
            .filter(|i| matches(&self.seen[*i]))
            .collect()
    }

    /// Closes stdin and returns the exit code.
    fn close(mut self) -> Option<i32> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("the child is ours") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        panic!("the fake did not exit at stdin EOF");
    }
}

/// True when the two streams overlap: each one's first item comes before the other's last.
fn interleaved(a: &[usize], b: &[usize]) -> bool {
    !a.is_empty() && !b.is_empty() && a[0] < b[b.len() - 1] && b[0] < a[a.len() - 1]
}

fn codex_deltas(peer: &Peer, thread: &Value) -> (Vec<usize>, String) {
    let is_delta =
        |m: &Value| m["method"] == "item/agentMessage/delta" && m["params"]["threadId"] == *thread;
    let positions = peer.positions(is_delta);
    let text = positions
        .iter()
        .map(|i| {
            peer.seen[*i]["params"]["delta"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    (positions, text)
}

fn codex_completed(peer: &mut Peer, turn: &Value) -> Value {
    let turn = turn.clone();
    peer.wait_for("turn/completed", |m| {
        m["method"] == "turn/completed" && m["params"]["turn"]["id"] == turn
    })["params"]["turn"]
        .clone()
}

#[test]
fn fake_codex_runs_threads_concurrently_with_injected_history_and_interrupts() {
    let mut codex = Peer::spawn(
        env!("CARGO_BIN_EXE_fake-codex"),
        &["app-server"],
        &[("FAKE_CODEX_DELAY_MS", "10")],
        false,
    );
    let init = codex.call(
        "initialize",
        json!({"clientInfo": {"name": "t", "version": "1"}}),
    );
    assert_eq!(init["result"]["platformFamily"], "unix", "{init}");
    codex.send(json!({"method": "initialized"}));
    let start = |codex: &mut Peer, base: &str, model: &str| {
        let r = codex.call(
            "thread/start",
            json!({"model": model, "baseInstructions": base, "developerInstructions": "DEV",
                "ephemeral": false, "approvalPolicy": "never", "sandbox": "read-only"}),
        );
        r["result"]["thread"]["id"].clone()
    };
    let (a, b) = (
        start(&mut codex, "SYS-A", "m-a"),
        start(&mut codex, "SYS-B", "m-b"),
    );
    let items = json!([
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q0"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a0"}]}]);
    let injected = codex.call(
        "thread/inject_items",
        json!({"threadId": a, "items": items}),
    );
    assert_eq!(injected["result"], json!({}), "{injected}");

    let turn = |codex: &mut Peer, thread: &Value, text: &str, model: Option<&str>| {
        let mut params = json!({"threadId": thread, "input": [{"type": "text", "text": text}]});
        if let Some(model) = model {
            params["model"] = json!(model);
        }
        codex.call("turn/start", params)["result"]["turn"]["id"].clone()
    };
    let (turn_a, turn_b) = (
        turn(&mut codex, &a, "one", None),
        turn(&mut codex, &b, "two", None),
    );
    let done_a = codex_completed(&mut codex, &turn_a);
    let done_b = codex_completed(&mut codex, &turn_b);
    let expected_a = "echo: one | history: u:q0,a:a0 | system: SYS-A | developer: DEV | model: m-a";
    assert_eq!(done_a["status"], "completed");
    assert_eq!(done_a["items"][0]["text"], expected_a);
    assert_eq!(
        done_b["items"][0]["text"],
        "echo: two | history:  | system: SYS-B | developer: DEV | model: m-b"
    );
    let (deltas_a, text_a) = codex_deltas(&codex, &a);
    let (deltas_b, _) = codex_deltas(&codex, &b);
    assert_eq!(text_a, expected_a, "the deltas add up to the answer");
    assert!(
        interleaved(&deltas_a, &deltas_b),
        "{deltas_a:?} {deltas_b:?}"
    );
    let usage = codex.wait_for("usage", |m| {
        m["method"] == "thread/tokenUsage/updated" && m["params"]["turnId"] == turn_a
    });
    assert_eq!(usage["params"]["tokenUsage"]["last"]["outputTokens"], 7);

    let again = turn(&mut codex, &a, "again", Some("m-c"));
    let text = codex_completed(&mut codex, &again)["items"][0]["text"].clone();
    let text = text.as_str().unwrap();
    assert!(
        text.starts_with("echo: again | history: u:q0,a:a0,u:one,a:echo: one"),
        "{text}"
    );
    assert!(text.ends_with("model: m-c"), "the turn's model: {text}");

    let slow = turn(&mut codex, &b, "FAKE_SLEEP_5000 wait", None);
    let stopped = codex.call("turn/interrupt", json!({"threadId": b, "turnId": slow}));
    assert_eq!(stopped["result"], json!({}), "{stopped}");
    assert_eq!(codex_completed(&mut codex, &slow)["status"], "interrupted");
    let idle = codex.call("turn/interrupt", json!({"threadId": b, "turnId": slow}));
    assert_eq!(idle["error"]["code"], -32600);
    assert_eq!(idle["error"]["message"], "no active turn to interrupt");

    let failing = turn(&mut codex, &b, "FAKE_API_ERROR_429", None);
    let failed = codex_completed(&mut codex, &failing);
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["error"]["codexErrorInfo"]["responseTooManyFailedAttempts"]["httpStatusCode"],
        429
    );

    let deleted = codex.call("thread/delete", json!({"threadId": a}));
    assert_eq!(deleted["result"], json!({}), "{deleted}");
    codex.wait_for("thread/deleted", |m| m["method"] == "thread/deleted");
    let gone = turn(&mut codex, &a, "anyone?", None);
    assert!(gone.is_null(), "a deleted thread takes no turn");
    assert_eq!(codex.close(), Some(0));
}

fn gemini_chunks(peer: &Peer, session: &str, kind: &str) -> (Vec<usize>, String) {
    let positions = peer.positions(|m| {
        m["method"] == "session/update"
            && m["params"]["sessionId"] == session
            && m["params"]["update"]["sessionUpdate"] == kind
    });
    let text = positions
        .iter()
        .map(|i| {
            peer.seen[*i]["params"]["update"]["content"]["text"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    (positions, text)
}

fn prompt(session: &str, text: &str) -> Value {
    json!({"sessionId": session, "prompt": [{"type": "text", "text": text}]})
}

#[test]
fn fake_gemini_runs_sessions_concurrently_loads_history_and_cancels() {
    let home = tempfile::tempdir().unwrap();
    let system = home.path().join("system.md");
    std::fs::write(&system, "SYS-G").unwrap();
    let chats = home.path().join(".gemini/tmp/work/chats");
    std::fs::create_dir_all(&chats).unwrap();
    let loaded = "0123abcd-0000-4000-8000-000000000000";
    std::fs::write(
        chats.join("session-2020-01-01T00-00-0123abcd.jsonl"),
        format!(
            "{}\n{}\n{}\n",
            json!({"sessionId": loaded, "projectHash": "x", "startTime": "2020-01-01T00:00:00.000Z",
                "lastUpdated": "2020-01-01T00:00:00.000Z", "kind": "main"}),
            json!({"id": "1", "timestamp": "2020-01-01T00:00:00.000Z", "type": "user",
                "content": [{"text": "q0"}]}),
            json!({"id": "2", "timestamp": "2020-01-01T00:00:00.000Z", "type": "gemini",
                "content": "a0"}),
        ),
    )
    .unwrap();
    let home_str = home.path().to_str().unwrap();
    let mut gemini = Peer::spawn(
        env!("CARGO_BIN_EXE_fake-gemini"),
        &["--acp", "--model", "gm"],
        &[
            ("GEMINI_CLI_HOME", home_str),
            ("GEMINI_SYSTEM_MD", system.to_str().unwrap()),
            ("FAKE_GEMINI_DELAY_MS", "10"),
        ],
        true,
    );
    let init = gemini.call("initialize", json!({"protocolVersion": 1}));
    assert_eq!(
        init["result"]["agentCapabilities"]["loadSession"], true,
        "{init}"
    );
    let cwd = "/somewhere/work";
    let new_session = |gemini: &mut Peer| {
        let r = gemini.call("session/new", json!({"cwd": cwd, "mcpServers": []}));
        r["result"]["sessionId"].as_str().unwrap().to_string()
    };
    let (one, two) = (new_session(&mut gemini), new_session(&mut gemini));
    gemini.wait_for("commands", |m| {
        m["params"]["update"]["sessionUpdate"] == "available_commands_update"
    });
    let set = gemini.call(
        "session/set_model",
        json!({"sessionId": two, "modelId": "gm-2"}),
    );
    assert_eq!(set["result"], json!({}), "{set}");

    let (p1, p2) = (
        gemini.request("session/prompt", prompt(&one, "one")),
        gemini.request("session/prompt", prompt(&two, "two")),
    );
    let (r1, r2) = (gemini.response(p1), gemini.response(p2));
    assert_eq!(r1["result"]["stopReason"], "end_turn", "{r1}");
    assert_eq!(
        r2["result"]["_meta"]["quota"]["token_count"]["output_tokens"],
        7
    );
    let (chunks_one, text_one) = gemini_chunks(&gemini, &one, "agent_message_chunk");
    let (chunks_two, text_two) = gemini_chunks(&gemini, &two, "agent_message_chunk");
    assert_eq!(
        text_one,
        "echo: one | history:  | system: SYS-G | model: gm"
    );
    assert_eq!(
        text_two,
        "echo: two | history:  | system: SYS-G | model: gm-2"
    );
    assert!(
        interleaved(&chunks_one, &chunks_two),
        "{chunks_one:?} {chunks_two:?}"
    );

    let load = gemini.call(
        "session/load",
        json!({"sessionId": loaded, "cwd": cwd, "mcpServers": []}),
    );
    assert!(load["result"]["modes"].is_object(), "{load}");
    let replayed = gemini.wait_for("replay", |m| {
        m["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
            && m["params"]["sessionId"] == loaded
    });
    assert_eq!(replayed["params"]["update"]["content"]["text"], "a0");
    let next = gemini.call("session/prompt", prompt(loaded, "next"));
    assert_eq!(next["result"]["stopReason"], "end_turn", "{next}");
    let (_, text) = gemini_chunks(&gemini, loaded, "agent_message_chunk");
    assert_eq!(
        text,
        "a0echo: next | history: u:q0,a:a0 | system: SYS-G | model: gm"
    );

    let slow = gemini.request("session/prompt", prompt(&one, "FAKE_SLEEP_5000 wait"));
    gemini.send(json!({"method": "session/cancel", "params": {"sessionId": one}}));
    assert_eq!(gemini.response(slow)["result"]["stopReason"], "cancelled");
    let as_request = gemini.call("session/cancel", json!({"sessionId": one}));
    assert_eq!(as_request["error"]["code"], -32601, "{as_request}");

    let local = gemini.call("session/prompt", prompt(&two, "  /memory show"));
    assert_eq!(
        local["result"]["_meta"]["quota"]["token_count"]["input_tokens"],
        0
    );
    let (_, text) = gemini_chunks(&gemini, &two, "agent_message_chunk");
    assert!(text.ends_with("Memory is currently empty."), "{text}");

    let recorded = std::fs::read_dir(&chats)
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with(&format!("-{}.jsonl", &one[..8]))
        })
        .expect("the session is recorded under GEMINI_CLI_HOME");
    let recorded = std::fs::read_to_string(recorded.path()).unwrap();
    assert!(
        recorded.contains("\"one\"") && !recorded.contains("FAKE_SLEEP"),
        "{recorded}"
    );
    assert_eq!(gemini.close(), Some(0));
}
