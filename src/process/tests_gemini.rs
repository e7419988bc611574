//! The process actor with the Gemini driver: the files a driver asks for exist before the line
//! that needs them, a file that cannot be written fails its turn, and a process past its
//! session limit lets its other conversations finish before it retires.

use std::path::Path;

use super::*;
use crate::process::driver::gemini::{GeminiDriver, GeminiParams};

fn params(dir: &Path, max_sessions: u32) -> GeminiParams {
    GeminiParams {
        home: dir.join("home"),
        cwd: dir.join("work"),
        system_md: dir.join("home/system.md"),
        default_model: "gm".into(),
        conversations: 2,
        max_sessions,
    }
}

async fn started(params: GeminiParams) -> Harness {
    let mut h = start_with(Box::new(GeminiDriver::new(1, params)), "gemini");
    h.process.do_send(Bind {
        system_prompt: String::new(),
        output_schema: None,
        tools: Vec::new(),
    });
    let init = h.cli.read().await;
    assert_eq!(init["method"], "initialize");
    h.cli.write(ok(&init, json!({}))).await;
    h.state(Lifecycle::Ready).await;
    h
}

fn ok(request: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": request["id"], "result": result})
}

fn run_turn(
    h: &Harness,
    turn: TurnId,
    system: &str,
    history: Vec<ChatMessage>,
) -> mpsc::UnboundedReceiver<TurnEvent> {
    let (events, rx) = mpsc::unbounded_channel();
    h.process.do_send(RunTurn {
        turn,
        request: TurnRequest {
            request_id: format!("req_{turn}"),
            pool: PoolKey::default_pool(),
            system_prompt: system.into(),
            stop_sequences: Vec::new(),
            output_schema: None,
            cli_model: "gm".into(),
            history,
            prompt: json!("q"),
            meta: Default::default(),
            submitted: std::time::Instant::now(),
            events,
            tools: Vec::new(),
        },
        seat: Default::default(),
    });
    rx
}

impl Cli {
    /// Reads a request for `method`.
    async fn expect(&mut self, method: &str) -> Value {
        let line = self.read().await;
        assert_eq!(line["method"], method, "{line}");
        line
    }

    /// Streams `text` for `session`, then ends the prompt.
    async fn answer_prompt(&mut self, prompt: &Value, text: &str) {
        let session = &prompt["params"]["sessionId"];
        self.write(
            json!({"jsonrpc": "2.0", "method": "session/update", "params": {
            "sessionId": session, "update": {"sessionUpdate": "agent_message_chunk",
            "content": {"type": "text", "text": text}}}}),
        )
        .await;
        self.write(ok(prompt, json!({"stopReason": "end_turn"})))
            .await;
    }
}

fn chat_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("home/.gemini/tmp/work/chats"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[actix_rt::test]
async fn files_exist_before_the_line_that_needs_them_and_are_removed_after() {
    tokio::time::pause();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut h = started(params(dir.path(), 10)).await;
    let mut rx = run_turn(&h, TURN, "SYS", vec![user("q0"), assistant("a0")]);
    let load = h.cli.expect("session/load").await;
    let system = std::fs::read_to_string(dir.path().join("home/system.md"));
    assert_eq!(system.ok().as_deref(), Some("SYS"));
    let session = load["params"]["sessionId"].as_str().expect("named");
    assert_eq!(
        chat_files(dir.path()),
        [format!("session-2020-01-01T00-00-{}.jsonl", &session[..8])]
    );
    h.cli.write(ok(&load, json!({}))).await;
    let set = h.cli.expect("session/set_model").await;
    h.cli.write(ok(&set, json!({}))).await;
    let prompt = h.cli.expect("session/prompt").await;
    h.cli.answer_prompt(&prompt, "a1").await;
    let (text, last) = drain(&mut rx).await;
    assert_eq!(text, "a1");
    assert!(matches!(last, TurnEvent::Done(_)), "{last:?}");
    let (reusable, _) = h.turn_finished(TURN).await;
    assert!(reusable);
    assert!(chat_files(dir.path()).is_empty());
}

#[actix_rt::test]
async fn a_file_that_cannot_be_written_fails_its_turn_and_the_process_goes_on() {
    tokio::time::pause();
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("home"), "a file, not a directory").expect("writable");
    let mut h = started(params(dir.path(), 10)).await;
    let mut rx = run_turn(&h, TURN, "SYS", Vec::new());
    let new = h.cli.expect("session/new").await;
    h.cli.write(ok(&new, json!({"sessionId": "s-1"}))).await;
    let (_, last) = drain(&mut rx).await;
    assert!(
        matches!(
            last,
            TurnEvent::Failed(ServeError::BackendUnavailable { .. })
        ),
        "{last:?}"
    );
    let (reusable, report) = h.turn_finished(TURN).await;
    assert!(reusable, "the process itself is fine");
    assert_eq!(report.end, TurnEnd::Failed);
}

#[actix_rt::test]
async fn past_its_session_limit_a_process_finishes_its_other_turns_then_retires() {
    tokio::time::pause();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut h = started(params(dir.path(), 2)).await;
    let mut first = run_turn(&h, 1, "", Vec::new());
    let mut second = run_turn(&h, 2, "", Vec::new());
    let new_1 = h.cli.expect("session/new").await;
    h.cli.write(ok(&new_1, json!({"sessionId": "s-1"}))).await;
    let set_1 = h.cli.expect("session/set_model").await;
    let new_2 = h.cli.expect("session/new").await;
    h.cli.write(ok(&set_1, json!({}))).await;
    let prompt_1 = h.cli.expect("session/prompt").await;
    h.cli.write(ok(&new_2, json!({"sessionId": "s-2"}))).await;
    let set_2 = h.cli.expect("session/set_model").await;

    // The first turn ends with both sessions opened: its slot is not reusable...
    h.cli.answer_prompt(&prompt_1, "one").await;
    assert!(matches!(drain(&mut first).await.1, TurnEvent::Done(_)));
    assert!(!h.turn_finished(1).await.0);
    // ... yet the second turn, still setting up, gets its remaining lines through.
    h.cli.write(ok(&set_2, json!({}))).await;
    let prompt_2 = h.cli.expect("session/prompt").await;
    h.cli.answer_prompt(&prompt_2, "two").await;
    assert_eq!(drain(&mut second).await.0, "two");
    assert!(!h.turn_finished(2).await.0);
    // Then the process retires: stdin closes.
    let eof = h.cli.stdin.next_line().await.expect("readable");
    assert!(eof.is_none(), "{eof:?}");
}
