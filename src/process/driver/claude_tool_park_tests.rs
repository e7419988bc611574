//! Parked tool turns on the Claude Code driver as plain lines: a kept turn that stopped for a
//! client tool holds its call unanswered (`Kept`), the follow-up's `tool_result` answers it and
//! the continuation streams as the new turn; a forgotten one is interrupted and reset, and the
//! turn that needed the process begins after that.

use serde_json::{json, Value};

use super::tools_tests::{control_ok, ready_with_tools, stream, tools_call};
use super::*;
use crate::process::driver::test_lines::{feed, lines, names};

fn turn_input(conversation: ConversationId, resume: bool, prompt: Value) -> TurnInput {
    TurnInput {
        system_prompt: String::new(),
        output_schema: None,
        model: "sonnet".into(),
        history: Vec::new(),
        prompt,
        conversation,
        resume,
        keep: true,
        tools: Vec::new(),
    }
}

/// Turn 7 of conversation 1 stops for one `get_weather` call; returns its prompt line and the
/// outbox of the call's arrival.
fn stopped_for_a_tool(d: &mut ClaudeDriver) -> (Value, Outbox) {
    let mut out = Outbox::default();
    d.begin(
        7,
        turn_input(1, false, json!("weather in Paris?")),
        &mut out,
    );
    let prompt = lines(&out).remove(0);
    for ev in [
        json!({"type": "message_start", "message": {"usage": {"input_tokens": 11}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":\"Paris\"}"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ] {
        feed(d, stream(ev));
    }
    (prompt, feed(d, tools_call("c1", 2, "toolu_1", "Paris")))
}

fn result_line(prompt: &Value, extra: Value) -> Value {
    let mut line = json!({"type": "result", "subtype": "success", "is_error": false,
        "duration_ms": 3, "total_cost_usd": 0.5, "user_message_uuid": prompt["uuid"],
        "usage": {"input_tokens": 4, "output_tokens": 2}});
    if let (Some(l), Some(e)) = (line.as_object_mut(), extra.as_object()) {
        l.extend(e.clone());
    }
    line
}

#[test]
fn a_kept_tool_turn_waits_then_the_follow_up_answers_the_call_and_streams_on() {
    let mut d = ready_with_tools();
    let (prompt, out) = stopped_for_a_tool(&mut d);
    let names_now = names(&out);
    assert!(names_now[0].starts_with("7:done"), "{names_now:?}");
    assert_eq!(names_now[1], "Kept { turn: 7 }");
    assert!(
        out.lines.is_empty(),
        "the call stays unanswered, nothing interrupted"
    );

    let result = json!([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]);
    let mut out = Outbox::default();
    d.begin(8, turn_input(1, true, result), &mut out);
    let answer = lines(&out).remove(0);
    assert_eq!(answer["response"]["request_id"], "c1");
    assert_eq!(
        answer["response"]["response"]["mcp_response"],
        json!({"jsonrpc": "2.0", "id": 2,
            "result": {"content": [{"type": "text", "text": "sunny"}], "isError": false}})
    );
    // The continuation is turn 8's.
    feed(
        &mut d,
        stream(json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}})),
    );
    let out = feed(
        &mut d,
        stream(json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "It is sunny."}})),
    );
    assert_eq!(names(&out), ["8:BlockStarted(Text)", "8:text It is sunny."]);
    feed(
        &mut d,
        json!({"type": "assistant", "message": {"id": "m2",
            "content": [{"type": "text", "text": "It is sunny."}]}}),
    );
    let out = feed(
        &mut d,
        result_line(&prompt, json!({"stop_reason": "end_turn"})),
    );
    assert_eq!(names(&out), ["8:done It is sunny.", "Kept { turn: 8 }"]);
}

#[test]
fn a_forgotten_tool_turn_is_interrupted_and_reset_before_the_next_turn_begins() {
    let mut d = ready_with_tools();
    let (prompt, _) = stopped_for_a_tool(&mut d);
    // Another conversation takes the process: forget, then begin, as the process actor does.
    let mut out = Outbox::default();
    d.forget(1, &mut out);
    d.begin(9, turn_input(2, false, json!("hello")), &mut out);
    assert_eq!(
        lines(&out).len(),
        1,
        "only the interrupt until the old turn ends"
    );
    assert_eq!(lines(&out)[0]["request"]["subtype"], "interrupt");
    let aborted = json!({"subtype": "error_during_execution", "is_error": true,
        "terminal_reason": "aborted_tools"});
    let out = feed(&mut d, result_line(&prompt, aborted));
    assert!(out.events.is_empty(), "no client waits for the parked turn");
    let rewind = lines(&out).remove(0);
    assert_eq!(rewind["request"]["target_message_uuid"], prompt["uuid"]);
    let out = feed(&mut d, control_ok(&rewind, json!({"rewound": true})));
    let next = lines(&out).remove(0);
    assert_eq!(
        (next["type"].clone(), next["message"]["content"].clone()),
        (json!("user"), json!("hello")),
        "the queued turn begins on the clean conversation"
    );
}

#[test]
fn a_parked_tool_turn_the_cli_ends_itself_is_dropped() {
    let mut d = ready_with_tools();
    let (prompt, _) = stopped_for_a_tool(&mut d);
    let timed_out = json!({"stop_reason": "end_turn"});
    let out = feed(&mut d, result_line(&prompt, timed_out));
    assert_eq!(names(&out), ["Dropped { conversation: 1 }"]);
    assert_eq!(lines(&out)[0]["request"]["subtype"], "rewind_conversation");
}

#[test]
fn a_tool_turn_not_kept_is_interrupted_at_once() {
    let mut d = ready_with_tools();
    let mut input = turn_input(1, false, json!("weather in Paris?"));
    input.keep = false;
    let mut out = Outbox::default();
    d.begin(7, input, &mut out);
    for ev in [
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}}),
        json!({"type": "message_stop"}),
    ] {
        feed(&mut d, stream(ev));
    }
    let out = feed(&mut d, tools_call("c1", 2, "toolu_1", "Paris"));
    assert!(!names(&out).iter().any(|n| n.starts_with("Kept")));
    assert_eq!(lines(&out)[0]["request"]["subtype"], "interrupt");
}
