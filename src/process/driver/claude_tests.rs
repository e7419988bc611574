//! The Claude Code driver as plain lines: what it writes, and the events it reports.

use serde_json::{json, Value};

use super::*;
use crate::process::driver::test_lines::{feed, lines, names};
use crate::protocol::Role;
use crate::protocol::{Block, ChatMessage, StopReason};

pub(super) fn control_ok(request: &Value, response: Value) -> Value {
    json!({"type": "control_response", "response": {"subtype": "success",
        "request_id": request["request_id"], "response": response}})
}

pub(super) fn result(uuid: &Value, extra: Value) -> Value {
    let mut line = json!({"type": "result", "subtype": "success", "is_error": false,
        "duration_ms": 3, "total_cost_usd": 0.25, "user_message_uuid": uuid,
        "usage": {"input_tokens": 4, "output_tokens": 2}});
    if let (Some(l), Some(e)) = (line.as_object_mut(), extra.as_object()) {
        l.extend(e.clone());
    }
    line
}

pub(super) fn stream(event: Value) -> Value {
    json!({"type": "stream_event", "event": event})
}

pub(super) fn text_delta(text: &str) -> Value {
    stream(json!({"type": "content_block_delta", "index": 0,
        "delta": {"type": "text_delta", "text": text}}))
}

/// A bound, idle driver.
pub(super) fn ready() -> ClaudeDriver {
    let mut d = ClaudeDriver::new(3, "sonnet".into());
    let mut out = Outbox::default();
    d.bind("SYS", None, &[], &mut out);
    let init = &lines(&out)[0];
    assert_eq!(init["request"]["subtype"], "initialize");
    assert_eq!(init["request"]["systemPrompt"], "SYS");
    assert_eq!(init["request_id"], "clinvoker-3-1");
    let out = feed(&mut d, control_ok(init, json!({})));
    assert_eq!(names(&out), ["Ready"]);
    d
}

pub(super) fn input(model: &str, history: Vec<ChatMessage>, prompt: &str) -> TurnInput {
    TurnInput {
        output_schema: None,
        system_prompt: String::new(),
        model: model.into(),
        history,
        prompt: json!(prompt),
        conversation: 1,
        resume: false,
        keep: false,
        tools: Vec::new(),
    }
}

#[test]
fn a_spare_is_probed_without_binding_then_bound() {
    let mut d = ClaudeDriver::new(1, "sonnet".into());
    let mut out = Outbox::default();
    d.probe(&mut out);
    let probe = lines(&out).remove(0);
    assert_eq!(probe["request"]["subtype"], "get_settings");
    assert_eq!(
        names(&feed(&mut d, control_ok(&probe, json!({})))),
        ["Probed"]
    );
    let mut out = Outbox::default();
    d.bind("", None, &[], &mut out);
    assert_eq!(lines(&out)[0]["request"]["subtype"], "initialize");
}

#[test]
fn a_refused_initialize_is_a_failed_start() {
    let mut d = ClaudeDriver::new(1, "sonnet".into());
    let mut out = Outbox::default();
    d.bind("", None, &[], &mut out);
    let init = lines(&out).remove(0);
    let refused = json!({"type": "control_response", "response": {"subtype": "error",
        "request_id": init["request_id"], "error": "bad"}});
    assert_eq!(
        names(&feed(&mut d, refused)),
        ["StartFailed(\"initialize failed: bad\")"]
    );
}

#[test]
fn history_is_replayed_then_the_answer_streams_then_the_conversation_is_rewound() {
    let mut d = ready();
    let history = vec![
        ChatMessage {
            role: Role::User,
            content: json!("q1"),
        },
        ChatMessage {
            role: Role::Assistant,
            content: json!("a1"),
        },
    ];
    let mut out = Outbox::default();
    d.begin(9, input("opus", history, "q2"), &mut out);
    let set_model = lines(&out).remove(0);
    assert_eq!(set_model["request"]["model"], "opus");
    let out = feed(&mut d, control_ok(&set_model, json!({})));
    let replayed = lines(&out).remove(0);
    assert_eq!(
        (
            replayed["shouldQuery"].clone(),
            replayed["message"]["content"].clone()
        ),
        (json!(false), json!("q1"))
    );
    let out = feed(&mut d, result(&replayed["uuid"], json!({})));
    let [a1, prompt] = <[Value; 2]>::try_from(lines(&out)).expect("two lines");
    assert_eq!(a1["message"]["content"][0]["text"], "a1");
    assert_eq!(prompt["shouldQuery"], true);
    assert!(out.events.is_empty(), "a replayed result is not an answer");

    let start = stream(json!({"type": "content_block_start", "index": 0,
        "content_block": {"type": "text", "text": ""}}));
    assert!(
        names(&feed(&mut d, start)).is_empty(),
        "announced with its first text"
    );
    assert_eq!(
        names(&feed(&mut d, text_delta("hel"))),
        ["9:BlockStarted(Text)", "9:text hel"]
    );
    assert_eq!(names(&feed(&mut d, text_delta("lo"))), ["9:text lo"]);
    feed(
        &mut d,
        json!({"type": "assistant", "message": {"id": "m1",
        "content": [{"type": "thinking", "thinking": "x"}, {"type": "text", "text": "hello"}]}}),
    );
    let out = feed(
        &mut d,
        result(&prompt["uuid"], json!({"stop_reason": "end_turn"})),
    );
    assert_eq!(names(&out), ["9:done hello"]);
    let DriverEvent::Turn {
        event: TurnEvent::Done(outcome),
        ..
    } = &out.events[0]
    else {
        panic!("done")
    };
    assert_eq!(outcome.content, [Block::Text("hello".into())]);
    assert_eq!(outcome.cost_usd, 0.25);
    let rewind = lines(&out).remove(0);
    assert_eq!(rewind["request"]["subtype"], "rewind_conversation");
    assert_eq!(rewind["request"]["target_message_uuid"], replayed["uuid"]);
    assert_eq!(
        rewind["request"]["last_seen_user_message_uuid"],
        prompt["uuid"]
    );
    let out = feed(&mut d, control_ok(&rewind, json!({"rewound": true})));
    assert_eq!(names(&out), ["Released { turn: 9, reusable: true }"]);
}

#[test]
fn interrupting_mid_answer_asks_the_cli_and_the_result_ends_the_turn() {
    let mut d = ready();
    let mut out = Outbox::default();
    d.begin(1, input("sonnet", Vec::new(), "q"), &mut out);
    let prompt = lines(&out).remove(0);
    let mut out = Outbox::default();
    d.interrupt(1, &mut out);
    assert_eq!(lines(&out)[0]["request"]["subtype"], "interrupt");
    let mut again = Outbox::default();
    d.interrupt(1, &mut again);
    assert!(again.lines.is_empty(), "asked once");
    let out = feed(
        &mut d,
        result(
            &prompt["uuid"],
            json!({"subtype": "error_during_execution", "is_error": true}),
        ),
    );
    assert!(names(&out)[0].starts_with("1:failed"), "{:?}", names(&out));
    assert_eq!(lines(&out)[0]["request"]["subtype"], "rewind_conversation");
}

#[test]
fn interrupting_between_steps_ends_the_turn_at_the_next_step_without_asking() {
    let mut d = ready();
    let history = vec![ChatMessage {
        role: Role::User,
        content: json!("q1"),
    }];
    let mut out = Outbox::default();
    d.begin(1, input("sonnet", history, "q2"), &mut out);
    let replayed = lines(&out).remove(0);
    let mut out = Outbox::default();
    d.interrupt(1, &mut out);
    assert!(out.lines.is_empty(), "no model call to interrupt yet");
    let out = feed(&mut d, result(&replayed["uuid"], json!({})));
    assert!(names(&out)[0].starts_with("1:failed"), "{:?}", names(&out));
    let rewind = lines(&out).remove(0);
    assert_eq!(rewind["request"]["target_message_uuid"], replayed["uuid"]);
}

#[test]
fn a_failed_rewind_releases_the_slot_as_not_reusable() {
    let mut d = ready();
    let mut out = Outbox::default();
    d.begin(1, input("sonnet", Vec::new(), "q"), &mut out);
    let prompt = lines(&out).remove(0);
    let out = feed(&mut d, result(&prompt["uuid"], json!({"result": "x"})));
    let rewind = lines(&out).remove(0);
    let out = feed(&mut d, control_ok(&rewind, json!({"rewound": false})));
    assert_eq!(names(&out), ["Released { turn: 1, reusable: false }"]);
}

#[test]
fn an_upstream_error_result_fails_the_turn_with_its_status() {
    let mut d = ready();
    let mut out = Outbox::default();
    d.begin(1, input("sonnet", Vec::new(), "q"), &mut out);
    let prompt = lines(&out).remove(0);
    let out = feed(
        &mut d,
        result(
            &prompt["uuid"],
            json!({"is_error": true, "api_error_status": 429,
            "result": "rate limited"}),
        ),
    );
    match &out.events[0] {
        DriverEvent::Turn {
            event: TurnEvent::Failed(ServeError::Upstream { status, .. }),
            ..
        } => assert_eq!(*status, Some(429)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_is_a_violation_and_cli_requests_are_refused() {
    let mut d = ready();
    let mut out = Outbox::default();
    d.on_line("Loading... 50%", &mut out);
    assert!(matches!(out.events[0], DriverEvent::Violation(_)));
    let out = feed(
        &mut d,
        json!({"type": "control_request", "request_id": "c1", "request": {"subtype": "can_use_tool"}}),
    );
    let answer = lines(&out).remove(0);
    assert_eq!(answer["response"]["subtype"], "error");
    assert_eq!(answer["response"]["request_id"], "c1");
}

#[test]
fn a_turn_begun_while_busy_fails_at_once() {
    let mut d = ready();
    let mut out = Outbox::default();
    d.begin(1, input("sonnet", Vec::new(), "q"), &mut out);
    let mut out = Outbox::default();
    d.begin(2, input("sonnet", Vec::new(), "q"), &mut out);
    assert!(names(&out)[0].starts_with("2:failed"), "{:?}", names(&out));
    assert!(out.lines.is_empty());
}

#[test]
fn a_schema_process_answers_with_the_validated_object_only() {
    let mut d = ClaudeDriver::new(3, "sonnet".into());
    let schema = json!({"type": "object"});
    let mut out = Outbox::default();
    d.bind("", Some(&schema), &[], &mut out);
    let init = lines(&out).remove(0);
    assert_eq!(init["request"]["jsonSchema"], schema);
    feed(&mut d, control_ok(&init, json!({})));
    let run = |d: &mut ClaudeDriver, turn, result_extra: Value| {
        let mut out = Outbox::default();
        d.begin(turn, input("sonnet", Vec::new(), "q"), &mut out);
        let prompt = lines(&out).remove(0);
        // The attempts stream as a tool call: none of it reaches the client.
        let streamed = feed(d, text_delta("{\"a\":"));
        assert!(streamed.events.is_empty());
        let out = feed(d, result(&prompt["uuid"], result_extra));
        let rewind = lines(&out).remove(0);
        feed(d, control_ok(&rewind, json!({"rewound": true})));
        out
    };
    let ok = run(
        &mut d,
        1,
        json!({"result": "{\"a\":1}", "structured_output": {"a": 1}}),
    );
    assert_eq!(names(&ok), ["1:done {\"a\":1}"]);
    let refused = run(&mut d, 2, json!({"result": "I won't"}));
    match &refused.events[0] {
        DriverEvent::Turn {
            event: TurnEvent::Done(o),
            ..
        } => assert_eq!(
            (o.stop_reason, o.text()),
            (StopReason::Refusal, "I won't".into())
        ),
        other => panic!("{other:?}"),
    }
    let exhausted = run(
        &mut d,
        3,
        json!({"subtype": "error_max_structured_output_retries", "is_error": true,
            "errors": ["Failed to provide valid structured output after 3 attempts"]}),
    );
    assert!(
        matches!(
            &exhausted.events[0],
            DriverEvent::Turn {
                event: TurnEvent::Failed(ServeError::StructuredOutputInvalid { .. }),
                ..
            }
        ),
        "{:?}",
        exhausted.events
    );
}
