//! The Codex app-server driver as plain lines, shaped as the real CLI writes them.

use serde_json::{json, Value};

use super::*;
use crate::error::UpstreamKind;
use crate::process::driver::test_lines::{event_name, feed, lines as sent, names_with};
use crate::protocol::{ChatMessage, Role};

/// Event names with the usage of a finished turn.
pub(super) fn events(out: &Outbox) -> Vec<String> {
    names_with(out, name)
}

fn name(event: &TurnEvent) -> String {
    match event {
        TurnEvent::Done(o) => format!(
            "done {} ({} in, {} out)",
            o.text(),
            o.usage.input_tokens,
            o.usage.output_tokens
        ),
        other => event_name(other),
    }
}

pub(super) fn ok(request: &Value, result: Value) -> Value {
    json!({"id": request["id"], "result": result})
}

pub(super) fn ready() -> CodexDriver {
    let mut d = CodexDriver::new(8, "BASE".into());
    let mut out = Outbox::default();
    d.bind("ignored", None, &[], &mut out);
    let init = sent(&out).remove(0);
    assert_eq!(init["method"], "initialize");
    assert!(
        init.get("jsonrpc").is_none(),
        "the app-server speaks without it"
    );
    let out = feed(&mut d, ok(&init, json!({"userAgent": "x"})));
    assert_eq!(sent(&out)[0], json!({"method": "initialized"}));
    assert_eq!(events(&out), ["Ready"]);
    d
}

pub(super) fn input(system: &str, history: Vec<ChatMessage>, prompt: Value) -> TurnInput {
    TurnInput {
        output_schema: None,
        system_prompt: system.into(),
        model: "gpt-5".into(),
        history,
        prompt,
        conversation: 1,
        resume: false,
        keep: false,
        tools: Vec::new(),
    }
}

/// Begins `turn` and answers its `thread/start` with `thread`; returns the next line sent.
pub(super) fn started(d: &mut CodexDriver, turn: TurnId, thread: &str, input: TurnInput) -> Value {
    let mut out = Outbox::default();
    d.begin(turn, input, &mut out);
    let start = sent(&out).remove(0);
    assert_eq!(start["method"], "thread/start");
    let out = feed(d, ok(&start, json!({"thread": {"id": thread}})));
    sent(&out).remove(0)
}

pub(super) fn note(method: &str, params: Value) -> Value {
    json!({"method": method, "params": params})
}

pub(super) fn delta(thread: &str, text: &str) -> Value {
    note(
        "item/agentMessage/delta",
        json!({"threadId": thread, "turnId": "ct", "itemId": "m", "delta": text}),
    )
}

pub(super) fn completed(thread: &str, status: &str, text: &str) -> Value {
    note(
        "turn/completed",
        json!({"threadId": thread, "turn": {"id": "ct", "status": status, "error": null,
            "items": [{"type": "agentMessage", "text": text}]}}),
    )
}

#[test]
fn a_turn_starts_a_thread_injects_history_streams_and_deletes_the_thread() {
    let mut d = ready();
    let history = vec![
        ChatMessage {
            role: Role::User,
            content: json!("q1"),
        },
        ChatMessage {
            role: Role::Assistant,
            content: json!([{"type": "text", "text": "a1"}]),
        },
    ];
    let mut out = Outbox::default();
    d.begin(1, input("be brief", history, json!("q2")), &mut out);
    let start = sent(&out).remove(0);
    assert_eq!(start["params"]["baseInstructions"], "be brief");
    assert_eq!(start["params"]["approvalPolicy"], "never");
    assert_eq!(start["params"]["sandbox"], "read-only");
    assert_eq!(start["params"]["model"], "gpt-5");
    let out = feed(&mut d, ok(&start, json!({"thread": {"id": "T1"}})));
    let inject = sent(&out).remove(0);
    assert_eq!(inject["method"], "thread/inject_items");
    assert_eq!(
        inject["params"]["items"],
        json!([
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q1"}]},
            {"type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "annotations": [], "text": "a1"}]}
        ])
    );
    let out = feed(&mut d, ok(&inject, json!({})));
    let turn_start = sent(&out).remove(0);
    assert_eq!(turn_start["method"], "turn/start");
    assert_eq!(turn_start["params"]["threadId"], "T1");
    assert_eq!(
        turn_start["params"]["input"],
        json!([{"type": "text", "text": "q2"}])
    );
    feed(&mut d, ok(&turn_start, json!({"turn": {"id": "ct"}})));

    let started = note(
        "item/started",
        json!({"threadId": "T1", "item": {"type": "agentMessage", "id": "m", "text": ""}}),
    );
    assert!(
        events(&feed(&mut d, started)).is_empty(),
        "announced with its first delta"
    );
    assert_eq!(
        events(&feed(&mut d, delta("T1", "hel"))),
        ["1:BlockStarted(Text)", "1:text hel"]
    );
    assert_eq!(events(&feed(&mut d, delta("T1", "lo"))), ["1:text lo"]);
    let usage = note(
        "thread/tokenUsage/updated",
        json!({"threadId": "T1", "tokenUsage": {"last": {"inputTokens": 11,
            "cachedInputTokens": 3, "outputTokens": 7}}}),
    );
    feed(&mut d, usage);
    let done = completed("T1", "completed", "hello");
    let out = feed(&mut d, done);
    assert_eq!(
        events(&out),
        ["1:BlockStopped", "1:done hello (8 in, 7 out)"]
    );
    let delete = sent(&out).remove(0);
    assert_eq!(delete["method"], "thread/delete");
    assert_eq!(delete["params"]["threadId"], "T1");
    let out = feed(&mut d, ok(&delete, json!({})));
    assert_eq!(events(&out), ["Released { turn: 1, reusable: true }"]);
}

#[test]
fn concurrent_conversations_are_told_apart_by_thread() {
    let mut d = ready();
    let a = started(&mut d, 1, "TA", input("", Vec::new(), json!("a")));
    let b = started(&mut d, 2, "TB", input("", Vec::new(), json!("b")));
    assert_eq!(
        (a["method"].clone(), b["method"].clone()),
        (json!("turn/start"), json!("turn/start"))
    );
    assert_eq!(
        events(&feed(&mut d, delta("TB", "b1"))),
        ["2:BlockStarted(Text)", "2:text b1"]
    );
    assert_eq!(
        events(&feed(&mut d, delta("TA", "a1"))),
        ["1:BlockStarted(Text)", "1:text a1"]
    );
    assert!(events(&feed(&mut d, delta("T-unknown", "x"))).is_empty());
    let out = feed(&mut d, completed("TA", "completed", "a1"));
    assert_eq!(events(&out), ["1:BlockStopped", "1:done a1 (0 in, 0 out)"]);
    assert_eq!(events(&feed(&mut d, delta("TB", "b2"))), ["2:text b2"]);
}

#[test]
fn no_system_prompt_uses_the_configured_base_instructions() {
    let mut d = ready();
    let mut out = Outbox::default();
    d.begin(1, input("", Vec::new(), json!("q")), &mut out);
    assert_eq!(sent(&out)[0]["params"]["baseInstructions"], "BASE");
}

#[test]
fn an_interrupt_mid_answer_asks_codex_and_its_completion_ends_the_turn() {
    let mut d = ready();
    let turn_start = started(&mut d, 4, "T", input("", Vec::new(), json!("q")));
    feed(&mut d, ok(&turn_start, json!({"turn": {"id": "ct"}})));
    let mut out = Outbox::default();
    d.interrupt(4, &mut out);
    let interrupt = sent(&out).remove(0);
    assert_eq!(interrupt["method"], "turn/interrupt");
    assert_eq!(
        interrupt["params"],
        json!({"threadId": "T", "turnId": "ct"})
    );
    let out = feed(&mut d, completed("T", "interrupted", ""));
    assert!(
        events(&out)[0].starts_with("4:failed"),
        "{:?}",
        events(&out)
    );
    assert_eq!(sent(&out)[0]["method"], "thread/delete");
}

#[test]
fn an_interrupt_before_the_answer_ends_the_turn_at_the_next_step() {
    let mut d = ready();
    let mut out = Outbox::default();
    d.begin(1, input("", Vec::new(), json!("q")), &mut out);
    let start = sent(&out).remove(0);
    let mut out = Outbox::default();
    d.interrupt(1, &mut out);
    assert!(out.lines.is_empty(), "nothing to interrupt yet");
    let out = feed(&mut d, ok(&start, json!({"thread": {"id": "T"}})));
    assert!(
        events(&out)[0].starts_with("1:failed"),
        "{:?}",
        events(&out)
    );
    assert_eq!(
        sent(&out)[0]["method"],
        "thread/delete",
        "no turn/start after an interrupt"
    );
}

#[test]
fn a_failed_turn_carries_the_upstream_status() {
    let mut d = ready();
    let turn_start = started(&mut d, 1, "T", input("", Vec::new(), json!("q")));
    feed(&mut d, ok(&turn_start, json!({"turn": {"id": "ct"}})));
    let failed = note(
        "turn/completed",
        json!({"threadId": "T", "turn": {"id": "ct", "status": "failed", "items": [],
            "error": {"message": "exceeded retry limit, last status: 429 Too Many Requests",
                "codexErrorInfo": {"responseTooManyFailedAttempts": {"httpStatusCode": 429}}}}}),
    );
    let out = feed(&mut d, failed);
    match &out.events[0] {
        DriverEvent::Turn {
            event: TurnEvent::Failed(ServeError::Upstream { kind, status, .. }),
            ..
        } => assert_eq!((*kind, *status), (UpstreamKind::RateLimited, Some(429))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_thread_start_fails_the_turn_and_releases_the_slot() {
    let mut d = ready();
    let mut out = Outbox::default();
    d.begin(1, input("", Vec::new(), json!("q")), &mut out);
    let start = sent(&out).remove(0);
    let refused = json!({"id": start["id"], "error": {"code": -32600, "message": "bad model"}});
    let out = feed(&mut d, refused);
    let names = events(&out);
    assert!(
        names[0].starts_with("1:failed") && names[0].contains("bad model"),
        "{names:?}"
    );
    assert_eq!(names[1], "Released { turn: 1, reusable: true }");
}

#[test]
fn approval_requests_are_declined_and_garbage_is_a_violation() {
    let mut d = ready();
    let request = json!({"id": 0, "method": "item/commandExecution/requestApproval", "params": {}});
    let out = feed(&mut d, request);
    assert_eq!(
        sent(&out)[0],
        json!({"id": 0, "result": {"decision": "decline"}})
    );
    let mut out = Outbox::default();
    d.on_line("Reconnecting...", &mut out);
    assert!(matches!(out.events[0], DriverEvent::Violation(_)));
}

#[test]
fn images_pass_as_data_urls_and_unknown_blocks_are_refused() {
    let mut d = ready();
    let image = json!([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "text", "text": "what is it?"}]);
    let turn_start = started(&mut d, 1, "T", input("", Vec::new(), image));
    assert_eq!(
        turn_start["params"]["input"][0],
        json!({"type": "image", "url": "data:image/png;base64,AAAA"})
    );
    let pdf = json!([{"type": "document", "source": {}}]);
    let mut out = Outbox::default();
    d.begin(2, input("", Vec::new(), pdf), &mut out);
    let start = sent(&out).remove(0);
    let out = feed(&mut d, ok(&start, json!({"thread": {"id": "T2"}})));
    let names = events(&out);
    assert!(
        names[0].contains("does not take content blocks of type document"),
        "{names:?}"
    );
}

#[test]
fn a_full_process_refuses_another_turn() {
    let mut d = CodexDriver::new(1, String::new());
    let mut out = Outbox::default();
    d.bind("", None, &[], &mut out);
    let init = sent(&out).remove(0);
    feed(&mut d, ok(&init, json!({})));
    let mut out = Outbox::default();
    d.begin(1, input("", Vec::new(), json!("a")), &mut out);
    let mut out = Outbox::default();
    d.begin(2, input("", Vec::new(), json!("b")), &mut out);
    assert!(events(&out)[0].starts_with("2:failed"));
}

#[test]
fn an_upstream_retry_after_partial_text_is_reported_as_a_restart() {
    let mut d = ready();
    let turn_start = started(&mut d, 1, "T", input("", Vec::new(), json!("q")));
    feed(&mut d, ok(&turn_start, json!({"turn": {"id": "ct"}})));
    feed(&mut d, delta("T", "part"));
    let retry = note(
        "error",
        json!({"threadId": "T", "willRetry": true, "error": {"message": "Reconnecting... 1/5"}}),
    );
    assert_eq!(
        events(&feed(&mut d, retry)),
        ["1:BlockStopped", "1:Restarted"]
    );
    assert_eq!(
        events(&feed(&mut d, delta("T", "whole"))),
        ["1:BlockStarted(Text)", "1:text whole"]
    );
}
