//! The Gemini driver as plain lines: what it writes (lines and files), and the events it
//! reports.

use serde_json::{json, Value};

use super::*;
use crate::process::driver::test_lines::{feed, lines, names};
use crate::protocol::{Block, ChatMessage, Role, StopReason};

/// What keeps a request from doing harm or waiting forever: errors, limits, refusals.
#[path = "gemini_tests_guards.rs"]
mod guards;

pub(super) const CHATS: &str = "/h/.gemini/tmp/work/chats";

pub(super) fn params(max_sessions: u32) -> GeminiParams {
    GeminiParams {
        home: "/h".into(),
        cwd: "/p/work".into(),
        system_md: "/h/system.md".into(),
        default_model: "gemini-2.5-flash".into(),
        conversations: 4,
        max_sessions,
    }
}

/// The one line `out` holds.
pub(super) fn line(out: &Outbox) -> Value {
    let [line] = <[Value; 1]>::try_from(lines(out)).expect("one line");
    assert_eq!(line["jsonrpc"], "2.0");
    line
}

pub(super) fn answer(request: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": request["id"], "result": result})
}

pub(super) fn chunk(session: &str, kind: &str, text: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": "session/update", "params": {"sessionId": session,
        "update": {"sessionUpdate": kind, "content": {"type": "text", "text": text}}}})
}

pub(super) fn end_turn(request: &Value) -> Value {
    answer(
        request,
        json!({"stopReason": "end_turn", "_meta": {"quota": {"token_count":
            {"input_tokens": 11, "output_tokens": 7}}}}),
    )
}

fn write_of(op: &FileOp) -> (&str, &str) {
    match op {
        FileOp::Write { path, contents, .. } => (path.to_str().unwrap_or_default(), contents),
        other => panic!("not a write: {other:?}"),
    }
}

pub(super) fn removal(session: &str) -> FileOp {
    FileOp::Remove {
        dir: CHATS.into(),
        suffix: format!("-{}.jsonl", &session[..8]),
    }
}

/// An initialized driver.
pub(super) fn ready(max_sessions: u32) -> GeminiDriver {
    let mut d = GeminiDriver::new(2, params(max_sessions));
    let mut out = Outbox::default();
    d.bind("ignored", None, &[], &mut out);
    let init = line(&out);
    assert_eq!(init["method"], "initialize");
    assert_eq!(init["params"]["protocolVersion"], 1);
    assert_eq!(init["params"]["clientCapabilities"]["terminal"], false);
    assert_eq!(names(&feed(&mut d, answer(&init, json!({})))), ["Ready"]);
    d
}

pub(super) fn input(
    system: &str,
    model: &str,
    history: Vec<ChatMessage>,
    prompt: Value,
) -> TurnInput {
    TurnInput {
        output_schema: None,
        system_prompt: system.into(),
        model: model.into(),
        history,
        prompt,
        conversation: 1,
        resume: false,
        keep: false,
        tools: Vec::new(),
    }
}

/// Begins `turn` on a fresh session `session`: returns the prompt request.
fn prompted(d: &mut GeminiDriver, turn: TurnId, session: &str, prompt: Value) -> Value {
    let mut out = Outbox::default();
    d.begin(turn, input("", "m", Vec::new(), prompt), &mut out);
    let new = line(&out);
    assert_eq!(new["method"], "session/new");
    let out = feed(d, answer(&new, json!({"sessionId": session})));
    let set = line(&out);
    line(&feed(d, answer(&set, json!({}))))
}

#[test]
fn a_spare_is_probed_then_bound_without_a_second_initialize() {
    let mut d = GeminiDriver::new(1, params(10));
    let mut out = Outbox::default();
    d.probe(&mut out);
    let init = line(&out);
    assert_eq!(names(&feed(&mut d, answer(&init, json!({})))), ["Probed"]);
    let mut out = Outbox::default();
    d.bind("", None, &[], &mut out);
    assert!(out.lines.is_empty());
    assert_eq!(names(&out), ["Ready"]);
    let mut early = GeminiDriver::new(1, params(10));
    let mut out = Outbox::default();
    early.probe(&mut out);
    let init = line(&out);
    let mut out = Outbox::default();
    early.bind("", None, &[], &mut out);
    assert!(out.lines.is_empty(), "bound while the probe is answered");
    assert_eq!(
        names(&feed(&mut early, answer(&init, json!({})))),
        ["Ready"]
    );
    let mut refused = GeminiDriver::new(1, params(10));
    let mut out = Outbox::default();
    refused.bind("", None, &[], &mut out);
    let init = line(&out);
    let error =
        json!({"jsonrpc": "2.0", "id": init["id"], "error": {"code": -32603, "message": "x"}});
    assert!(names(&feed(&mut refused, error))[0].starts_with("StartFailed"));
}

#[test]
fn a_turn_writes_the_system_prompt_creates_a_session_pins_the_model_and_streams() {
    let mut d = ready(10);
    let mut out = Outbox::default();
    d.begin(5, input("SYS", "", Vec::new(), json!("hi")), &mut out);
    assert_eq!(out.files.len(), 1);
    assert_eq!(write_of(&out.files[0]), ("/h/system.md", "SYS"));
    let new = line(&out);
    assert_eq!(new["method"], "session/new");
    assert_eq!(new["params"], json!({"cwd": "/p/work", "mcpServers": []}));

    let out = feed(&mut d, answer(&new, json!({"sessionId": "abcdef12-s1"})));
    let set = line(&out);
    assert_eq!(set["method"], "session/set_model");
    assert_eq!(
        set["params"],
        json!({"sessionId": "abcdef12-s1", "modelId": "gemini-2.5-flash"}),
        "no model named: the default, never auto"
    );
    let prompt = line(&feed(&mut d, answer(&set, json!({}))));
    assert_eq!(prompt["method"], "session/prompt");
    assert_eq!(
        prompt["params"],
        json!({"sessionId": "abcdef12-s1", "prompt": [{"type": "text", "text": "hi"}]})
    );
    let start = feed(&mut d, chunk("abcdef12-s1", "agent_message_chunk", "hel"));
    assert_eq!(names(&start), ["5:BlockStarted(Text)", "5:text hel"]);
    let thought = feed(&mut d, chunk("abcdef12-s1", "agent_thought_chunk", "hm"));
    assert!(thought.events.is_empty());
    let more = feed(&mut d, chunk("abcdef12-s1", "agent_message_chunk", "lo"));
    assert_eq!(names(&more), ["5:text lo"]);

    let out = feed(&mut d, end_turn(&prompt));
    assert_eq!(
        names(&out),
        [
            "5:BlockStopped",
            "5:done hello",
            "Released { turn: 5, reusable: true }"
        ]
    );
    let DriverEvent::Turn {
        event: TurnEvent::Done(outcome),
        ..
    } = &out.events[1]
    else {
        panic!("done")
    };
    assert_eq!(outcome.content, [Block::Text("hello".into())]);
    assert_eq!(
        (outcome.usage.input_tokens, outcome.usage.output_tokens),
        (11, 7)
    );
    assert_eq!(outcome.stop_reason, StopReason::EndTurn);
    assert_eq!(out.files, [removal("abcdef12-s1")]);
    assert!(out.lines.is_empty());
}

#[test]
fn history_goes_into_a_session_file_that_is_loaded_and_its_replay_is_ignored() {
    let mut d = ready(10);
    let message = |role, text: &str| ChatMessage {
        role,
        content: json!(text),
    };
    let history = vec![message(Role::User, "q0"), message(Role::Assistant, "a0")];
    let mut out = Outbox::default();
    d.begin(1, input("S", "gm", history, json!("q1")), &mut out);
    let load = line(&out);
    assert_eq!(load["method"], "session/load");
    let session = load["params"]["sessionId"]
        .as_str()
        .expect("named")
        .to_string();
    assert_eq!(load["params"]["cwd"], "/p/work");
    let (path, contents) = write_of(&out.files[1]);
    assert_eq!(
        path,
        format!("{CHATS}/session-2020-01-01T00-00-{}.jsonl", &session[..8])
    );
    // The file's format is `gemini_wire`'s to test; here: it is this session's.
    let header: Value = contents
        .lines()
        .next()
        .and_then(|l| serde_json::from_str(l).ok())
        .expect("a header line");
    assert_eq!(header["sessionId"], session.as_str());
    let replay = |d: &mut GeminiDriver, kind| feed(d, chunk(&session, kind, "x")).events;
    assert!(replay(&mut d, "user_message_chunk").is_empty());
    assert!(replay(&mut d, "agent_message_chunk").is_empty());
    let set = line(&feed(&mut d, answer(&load, json!({"modes": {}}))));
    assert_eq!(set["params"]["sessionId"], session.as_str());
    assert!(
        replay(&mut d, "agent_message_chunk").is_empty(),
        "after the load too"
    );
    let prompt = line(&feed(&mut d, answer(&set, json!({}))));
    feed(&mut d, chunk(&session, "agent_message_chunk", "a1"));
    let out = feed(&mut d, end_turn(&prompt));
    assert_eq!(names(&out)[1], "1:done a1");
    assert_eq!(out.files, [removal(&session)]);
}

#[test]
fn two_conversations_create_their_sessions_one_at_a_time_and_stream_apart() {
    let mut d = ready(10);
    let mut first = Outbox::default();
    d.begin(1, input("SYS-A", "m", Vec::new(), json!("one")), &mut first);
    let mut second = Outbox::default();
    d.begin(
        2,
        input("SYS-B", "m", Vec::new(), json!("two")),
        &mut second,
    );
    assert!(
        second.lines.is_empty() && second.files.is_empty(),
        "waits for the first creation: the system prompt file is shared"
    );
    let new_a = line(&first);
    let out = feed(&mut d, answer(&new_a, json!({"sessionId": "aaaaaaaa-1"})));
    assert_eq!(write_of(&out.files[0]), ("/h/system.md", "SYS-B"));
    let [set_a, new_b] = <[Value; 2]>::try_from(lines(&out)).expect("two lines");
    assert_eq!(set_a["method"], "session/set_model");
    assert_eq!(new_b["method"], "session/new");
    let prompt_a = line(&feed(&mut d, answer(&set_a, json!({}))));
    let set_b = line(&feed(
        &mut d,
        answer(&new_b, json!({"sessionId": "bbbbbbbb-2"})),
    ));
    let prompt_b = line(&feed(&mut d, answer(&set_b, json!({}))));

    let mut seen = Vec::new();
    for (session, text) in [
        ("aaaaaaaa-1", "a1"),
        ("bbbbbbbb-2", "b1"),
        ("aaaaaaaa-1", "a2"),
    ] {
        seen.extend(names(&feed(
            &mut d,
            chunk(session, "agent_message_chunk", text),
        )));
    }
    assert_eq!(
        seen,
        [
            "1:BlockStarted(Text)",
            "1:text a1",
            "2:BlockStarted(Text)",
            "2:text b1",
            "1:text a2"
        ]
    );
    assert_eq!(names(&feed(&mut d, end_turn(&prompt_b)))[1], "2:done b1");
    assert_eq!(names(&feed(&mut d, end_turn(&prompt_a)))[1], "1:done a1a2");
}

#[test]
fn an_interrupt_mid_prompt_sends_a_cancel_notification() {
    let mut d = ready(10);
    let prompt = prompted(&mut d, 3, "cccccccc-3", json!("long"));
    let mut out = Outbox::default();
    d.interrupt(3, &mut out);
    let cancel = line(&out);
    assert_eq!(cancel["method"], "session/cancel");
    assert_eq!(cancel["params"]["sessionId"], "cccccccc-3");
    assert!(cancel.get("id").is_none(), "a notification");
    let mut again = Outbox::default();
    d.interrupt(3, &mut again);
    assert!(again.lines.is_empty(), "asked once");
    let out = feed(&mut d, answer(&prompt, json!({"stopReason": "cancelled"})));
    assert_eq!(
        names(&out),
        [
            "3:failed the request was cancelled",
            "Released { turn: 3, reusable: true }"
        ]
    );
    assert_eq!(out.files, [removal("cccccccc-3")]);
}

#[test]
fn an_interrupt_during_setup_ends_the_turn_at_the_next_step_or_at_once_when_waiting() {
    let mut d = ready(10);
    let mut out = Outbox::default();
    d.begin(1, input("", "m", Vec::new(), json!("a")), &mut out);
    let new_a = line(&out);
    let mut waiting = Outbox::default();
    d.begin(2, input("", "m", Vec::new(), json!("b")), &mut waiting);
    let mut out = Outbox::default();
    d.interrupt(2, &mut out);
    assert_eq!(names(&out)[1], "Released { turn: 2, reusable: true }");
    assert!(
        out.lines.is_empty() && out.files.is_empty(),
        "never reached the CLI"
    );

    let mut out = Outbox::default();
    d.interrupt(1, &mut out);
    assert!(out.lines.is_empty(), "no prompt to cancel yet");
    let out = feed(&mut d, answer(&new_a, json!({"sessionId": "dddddddd-1"})));
    assert!(out.lines.is_empty(), "no set_model after the interrupt");
    assert!(names(&out)[0].starts_with("1:failed"), "{:?}", names(&out));
    assert_eq!(out.files, [removal("dddddddd-1")]);
}
