//! The process actor on in-memory pipes, with tokio's clock paused: each test plays the CLI's
//! side line by line, so the actor's lifecycle, turn driving, watchdogs and failure paths are
//! checked without a child process (and timeouts take no real time).

use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines, WriteHalf};
use tokio::sync::mpsc;

use super::*;
use crate::protocol::{ChatMessage, PoolKey, Role, StopReason, TurnRequest};

#[path = "tests_gemini.rs"]
mod gemini;

/// The id the tests' turns run under.
const TURN: TurnId = 7;

const LIMITS: ProcessLimits = ProcessLimits {
    request_timeout: Duration::from_secs(30),
    // Past the request timeout: only the stall tests meet these (with their own limits).
    first_byte_timeout: Duration::from_secs(60),
    idle_timeout: Duration::from_secs(60),
    ready_timeout: Duration::from_secs(10),
    interrupt_grace: Duration::from_secs(2),
};

/// Collects the notices a process sends its supervisor.
struct Notices(mpsc::UnboundedSender<ProcessEvent>);

impl Actor for Notices {
    type Context = Context<Self>;
}

impl Handler<ProcessNotice> for Notices {
    type Result = ();
    fn handle(&mut self, notice: ProcessNotice, _: &mut Self::Context) {
        let _ = self.0.send(notice.event);
    }
}

/// The CLI's end of the pipes.
struct Cli {
    stdin: Lines<BufReader<DuplexStream>>,
    stdout: WriteHalf<DuplexStream>,
}

impl Cli {
    /// The next line the process wrote, as JSON (panics when stdin closed first).
    async fn read(&mut self) -> Value {
        let line = self.stdin.next_line().await.expect("stdin readable");
        let line = line.expect("the process closed stdin");
        serde_json::from_str(&line).expect("the process writes JSON lines")
    }

    async fn write(&mut self, line: Value) {
        self.write_raw(&line.to_string()).await;
    }

    async fn write_raw(&mut self, line: &str) {
        self.stdout
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("stdout writable");
    }

    async fn control_ok(&mut self, request_id: &Value, response: Value) {
        self.write(json!({"type": "control_response", "response": {
            "subtype": "success", "request_id": request_id, "response": response}}))
            .await;
    }

    /// Reads a control request of `subtype` and answers it with success.
    async fn expect_control(&mut self, subtype: &str, response: Value) -> Value {
        let line = self.read().await;
        assert_eq!(line["type"], "control_request", "{line}");
        assert_eq!(line["request"]["subtype"], subtype, "{line}");
        self.control_ok(&line["request_id"], response).await;
        line
    }

    async fn result(&mut self, uuid: &Value, extra: Value) {
        let mut line = json!({"type": "result", "subtype": "success", "is_error": false,
            "result": "", "duration_ms": 5, "total_cost_usd": 0.5,
            "usage": {"input_tokens": 11, "output_tokens": 7}, "user_message_uuid": uuid});
        if let (Some(line), Some(extra)) = (line.as_object_mut(), extra.as_object()) {
            line.extend(extra.clone());
        }
        self.write(line).await;
    }

    /// Streams `text` in two deltas as one assistant message, then the result of `uuid`.
    async fn answer(&mut self, uuid: &Value, text: &str) {
        let (a, b) = text.split_at(text.len() / 2);
        for event in [
            json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 11}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": a}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": b}}),
            json!({"type": "content_block_stop", "index": 0}),
        ] {
            self.write(json!({"type": "stream_event", "event": event}))
                .await;
        }
        self.write(json!({"type": "assistant", "message": {"id": "msg_1",
            "content": [{"type": "text", "text": text}]}}))
            .await;
        self.result(uuid, json!({"result": text, "stop_reason": "end_turn"}))
            .await;
    }
}

struct Harness {
    process: Addr<CliProcess>,
    cli: Cli,
    notices: mpsc::UnboundedReceiver<ProcessEvent>,
}

/// Stall timers shorter than the request timeout.
const STALL_LIMITS: ProcessLimits = ProcessLimits {
    first_byte_timeout: Duration::from_secs(20),
    idle_timeout: Duration::from_secs(15),
    ..LIMITS
};

fn start(model: &str) -> Harness {
    start_limited(model, LIMITS)
}

fn start_limited(model: &str, limits: ProcessLimits) -> Harness {
    let driver = driver::claude::ClaudeDriver::new(1, model.into());
    start_driver(Box::new(driver), "claude", limits)
}

fn start_with(driver: Box<dyn driver::Driver>, backend: &'static str) -> Harness {
    start_driver(driver, backend, LIMITS)
}

fn start_driver(
    driver: Box<dyn driver::Driver>,
    backend: &'static str,
    limits: ProcessLimits,
) -> Harness {
    let (process_stdin, cli_stdin) = tokio::io::duplex(1 << 16);
    let (cli_stdout, process_stdout) = tokio::io::duplex(1 << 16);
    let (tx, notices) = mpsc::unbounded_channel();
    let collector = Notices(tx).start();
    let io = ProcessIo {
        stdin: Box::new(process_stdin),
        stdout: Box::new(process_stdout),
        stderr: None,
        child: None,
    };
    let process = CliProcess::start(1, io, backend, driver, limits, collector.recipient());
    let (_unused_read, stdout) = tokio::io::split(cli_stdout);
    Harness {
        process,
        cli: Cli {
            stdin: BufReader::new(cli_stdin).lines(),
            stdout,
        },
        notices,
    }
}

impl Harness {
    async fn notice(&mut self) -> ProcessEvent {
        self.notices.recv().await.expect("the process reports")
    }

    /// Waits for the lifecycle stage `want`, skipping other notices.
    async fn state(&mut self, want: Lifecycle) {
        loop {
            if let ProcessEvent::StateChanged(s) = self.notice().await {
                if s == want {
                    return;
                }
            }
        }
    }

    /// Waits for `turn`'s answer, then its slot's release: whether reusable, and the report.
    async fn turn_finished(&mut self, turn: TurnId) -> (bool, TurnReport) {
        let mut answered = false;
        loop {
            match self.notice().await {
                ProcessEvent::TurnAnswered { turn: t } if t == turn => answered = true,
                ProcessEvent::TurnFinished {
                    turn: t,
                    reusable,
                    report,
                    ..
                } if t == turn => {
                    assert!(answered, "the answer is reported before the slot is free");
                    return (reusable, *report);
                }
                _ => {}
            }
        }
    }

    async fn exited(&mut self) -> String {
        loop {
            if let ProcessEvent::Exited { status, .. } = self.notice().await {
                return status;
            }
        }
    }

    /// Binds the process to `system` and answers its `initialize`.
    async fn bind(&mut self, system: &str) {
        self.process.do_send(Bind {
            system_prompt: system.into(),
            output_schema: None,
            tools: Vec::new(),
        });
        let init = self.cli.expect_control("initialize", json!({})).await;
        assert_eq!(init["request"]["systemPrompt"], system);
        self.state(Lifecycle::Ready).await;
    }

    fn run(
        &self,
        model: &str,
        history: Vec<ChatMessage>,
        prompt: &str,
    ) -> mpsc::UnboundedReceiver<TurnEvent> {
        let (events, rx) = mpsc::unbounded_channel();
        self.process.do_send(RunTurn {
            turn: TURN,
            request: TurnRequest {
                request_id: "req_1".into(),
                pool: PoolKey::default_pool(),
                system_prompt: String::new(),
                stop_sequences: Vec::new(),
                output_schema: None,
                cli_model: model.into(),
                history,
                prompt: json!(prompt),
                meta: Default::default(),
                submitted: std::time::Instant::now(),
                events,
                tools: Vec::new(),
            },
            seat: Default::default(),
        });
        rx
    }
}

/// Everything up to the final event: the streamed text, and the final event.
async fn drain(rx: &mut mpsc::UnboundedReceiver<TurnEvent>) -> (String, TurnEvent) {
    let mut text = String::new();
    loop {
        match rx.recv().await.expect("a final event") {
            TurnEvent::TextDelta(t) => text.push_str(&t),
            TurnEvent::BlockStarted(_) | TurnEvent::BlockStopped | TurnEvent::ToolInputDelta(_) => {
            }
            last => return (text, last),
        }
    }
}

fn user(text: &str) -> ChatMessage {
    ChatMessage {
        role: Role::User,
        content: json!(text),
    }
}

fn assistant(text: &str) -> ChatMessage {
    ChatMessage {
        role: Role::Assistant,
        content: json!(text),
    }
}

#[actix_rt::test]
async fn a_turn_switches_model_replays_history_streams_and_rewinds() {
    tokio::time::pause();
    let mut h = start("sonnet");
    h.bind("be brief").await;
    let mut rx = h.run("opus", vec![user("q1"), assistant("a1")], "q2");
    let set = h.cli.expect_control("set_model", json!({})).await;
    assert_eq!(set["request"]["model"], "opus");
    let replayed = h.cli.read().await;
    assert_eq!(replayed["type"], "user");
    assert_eq!(replayed["shouldQuery"], false);
    assert_eq!(replayed["message"]["content"], "q1");
    assert_eq!(replayed["client_composed"], true);
    h.cli.result(&replayed["uuid"], json!({})).await;
    let a1 = h.cli.read().await;
    assert_eq!(a1["type"], "assistant");
    assert_eq!(a1["message"]["content"][0]["text"], "a1");
    let prompt = h.cli.read().await;
    assert_eq!(prompt["shouldQuery"], true);
    assert_eq!(prompt["message"]["content"], "q2");
    h.cli.answer(&prompt["uuid"], "hello there").await;

    let (text, last) = drain(&mut rx).await;
    assert_eq!(text, "hello there");
    let TurnEvent::Done(outcome) = last else {
        panic!("not done: {last:?}")
    };
    assert_eq!(outcome.usage.output_tokens, 7);
    assert_eq!(outcome.stop_reason, StopReason::EndTurn);
    assert_eq!(outcome.text(), "hello there");

    // The whole request is rewound: from its first user line to its newest.
    let rewind = h
        .cli
        .expect_control("rewind_conversation", json!({"rewound": true}))
        .await;
    assert_eq!(rewind["request"]["target_message_uuid"], replayed["uuid"]);
    assert_eq!(
        rewind["request"]["last_seen_user_message_uuid"],
        prompt["uuid"]
    );
    let (reusable, report) = h.turn_finished(TURN).await;
    assert!(reusable);
    assert_eq!(report.end, TurnEnd::Ok);
    assert_eq!(report.model, "opus");
    // The process takes the next turn.
    let _next = h.run("opus", Vec::new(), "q3");
    let next = h.cli.read().await;
    assert_eq!(next["message"]["content"], "q3");
}

#[actix_rt::test]
async fn a_timed_out_turn_is_interrupted_then_killed_when_the_cli_ignores_it() {
    tokio::time::pause();
    let mut h = start("sonnet");
    h.bind("").await;
    let mut rx = h.run("sonnet", Vec::new(), "hang");
    let prompt = h.cli.read().await;
    assert_eq!(prompt["message"]["content"], "hang");
    // Nothing answers: the paused clock runs to the request timeout.
    let interrupt = h.cli.read().await;
    assert_eq!(interrupt["request"]["subtype"], "interrupt");
    // ... and to the interrupt grace: the process gives up on the CLI.
    let (_, last) = drain(&mut rx).await;
    assert!(
        matches!(last, TurnEvent::Failed(ServeError::TurnTimedOut { .. })),
        "{last:?}"
    );
    let status = h.exited().await;
    assert!(status.contains("did not stop"), "{status}");
}

#[actix_rt::test]
async fn a_client_that_goes_away_interrupts_its_turn_and_the_process_is_reused() {
    tokio::time::pause();
    let mut h = start("sonnet");
    h.bind("").await;
    let rx = h.run("sonnet", Vec::new(), "long");
    let prompt = h.cli.read().await;
    drop(rx);
    let interrupt = h.cli.expect_control("interrupt", json!({})).await;
    assert_eq!(interrupt["request"]["subtype"], "interrupt");
    h.cli
        .result(
            &prompt["uuid"],
            json!({"subtype": "error_during_execution", "is_error": true}),
        )
        .await;
    h.cli
        .expect_control("rewind_conversation", json!({"rewound": true}))
        .await;
    let (reusable, report) = h.turn_finished(TURN).await;
    assert!(reusable);
    assert_eq!(report.end, TurnEnd::Cancelled);
}

#[actix_rt::test]
async fn garbage_on_stdout_fails_the_turn_and_ends_the_process() {
    tokio::time::pause();
    let mut h = start("sonnet");
    h.bind("").await;
    let mut rx = h.run("sonnet", Vec::new(), "q");
    h.cli.read().await;
    h.cli.write_raw("Loading... 50%").await;
    let (_, last) = drain(&mut rx).await;
    assert!(
        matches!(last, TurnEvent::Failed(ServeError::BackendProtocol { .. })),
        "{last:?}"
    );
    let status = h.exited().await;
    assert!(status.contains("non-JSON"), "{status}");
}

#[actix_rt::test]
async fn a_cli_that_dies_mid_turn_fails_the_turn_with_its_exit() {
    tokio::time::pause();
    let mut h = start("sonnet");
    h.bind("").await;
    let mut rx = h.run("sonnet", Vec::new(), "q");
    h.cli.read().await;
    let Harness { cli, notices, .. } = h;
    drop(cli);
    let mut h_notices = notices;
    let (_, last) = drain(&mut rx).await;
    assert!(
        matches!(last, TurnEvent::Failed(ServeError::ProcessExited { .. })),
        "{last:?}"
    );
    loop {
        match h_notices.recv().await.expect("notices") {
            ProcessEvent::Exited { was_ready, .. } => break assert!(was_ready),
            _ => continue,
        }
    }
}

#[actix_rt::test]
async fn a_cli_that_never_answers_initialize_is_killed_after_the_ready_timeout() {
    tokio::time::pause();
    let mut h = start("sonnet");
    h.process.do_send(Bind {
        system_prompt: String::new(),
        output_schema: None,
        tools: Vec::new(),
    });
    let init = h.cli.read().await;
    assert_eq!(init["request"]["subtype"], "initialize");
    let status = h.exited().await;
    assert!(status.contains("did not become ready"), "{status}");
}

#[actix_rt::test]
async fn a_silent_upstream_is_interrupted_by_the_stall_timers() {
    tokio::time::pause();
    let mut h = start_limited("sonnet", STALL_LIMITS);
    h.bind("").await;
    // Nothing at all: the first-output timer (20 s) fires before the request timeout (30 s).
    let mut rx = h.run("sonnet", Vec::new(), "silent");
    let prompt = h.cli.read().await;
    let interrupt = h.cli.read().await;
    assert_eq!(interrupt["request"]["subtype"], "interrupt");
    h.cli.control_ok(&interrupt["request_id"], json!({})).await;
    h.cli
        .result(
            &prompt["uuid"],
            json!({"subtype": "error_during_execution", "is_error": true}),
        )
        .await;
    let (_, last) = drain(&mut rx).await;
    match last {
        TurnEvent::Failed(ServeError::UpstreamStalled { waiting_for, .. }) => {
            assert_eq!(waiting_for, "first output")
        }
        other => panic!("{other:?}"),
    }
    h.cli
        .expect_control("rewind_conversation", json!({"rewound": true}))
        .await;
    let (_, report) = h.turn_finished(TURN).await;
    assert_eq!(report.end, TurnEnd::TimedOut);
}

#[actix_rt::test]
async fn a_stream_that_goes_quiet_is_interrupted_by_the_idle_timer() {
    tokio::time::pause();
    let mut h = start_limited("sonnet", STALL_LIMITS);
    h.bind("").await;
    let mut rx = h.run("sonnet", Vec::new(), "then silence");
    h.cli.read().await;
    for event in [
        json!({"type": "message_start", "message": {}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "so far"}}),
    ] {
        h.cli
            .write(json!({"type": "stream_event", "event": event}))
            .await;
    }
    let interrupt = h.cli.read().await;
    assert_eq!(interrupt["request"]["subtype"], "interrupt");
    // The CLI ignores it: killed after the grace period, the client told why.
    let (text, last) = drain(&mut rx).await;
    assert_eq!(text, "so far");
    match last {
        TurnEvent::Failed(ServeError::UpstreamStalled { waiting_for, .. }) => {
            assert_eq!(waiting_for, "further output")
        }
        other => panic!("{other:?}"),
    }
}
