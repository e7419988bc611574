//! Client tools in the Codex driver, as plain lines shaped as codex 0.171.0 writes them: the
//! thread's `dynamicTools`, `item/tool/call` requests ending the client's turn with a `tool_use`
//! answer once no further call came, the parked turn answered by the follow-up's results, the
//! turn not kept interrupted, a forgotten one interrupted and deleted, tool history replayed.

use serde_json::{json, Value};

use super::tests::{completed, delta, events, input, ok, ready, started};
use super::*;
use crate::process::driver::codex_tools::SETTLE;
use crate::process::driver::test_lines::{feed, lines as sent};
use crate::protocol::tools::ClientTool;
use crate::protocol::{ChatMessage, Role};

fn weather() -> ClientTool {
    ClientTool {
        name: "get_weather".into(),
        description: "Get the weather.".into(),
        input_schema: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    }
}

fn with_tools(keep: bool, resume: bool, prompt: Value) -> TurnInput {
    TurnInput {
        conversation: 7,
        keep,
        resume,
        tools: vec![weather()],
        ..input("", Vec::new(), prompt)
    }
}

/// The CLI's request for a call, as measured.
fn tool_call(id: u64, thread: &str, call: &str, city: &str) -> Value {
    json!({"method": "item/tool/call", "id": id, "params": {"threadId": thread, "turnId": "ct",
        "callId": call, "namespace": null, "tool": "get_weather", "arguments": {"city": city}}})
}

/// Runs turn 1 on thread T1 up to two calls (after some text); returns the outbox of the wake
/// that ends the client's turn.
fn two_calls(d: &mut CodexDriver, keep: bool) -> Outbox {
    let mut out = Outbox::default();
    d.begin(1, with_tools(keep, false, json!("weather?")), &mut out);
    let start = sent(&out).remove(0);
    assert_eq!(
        start["params"]["dynamicTools"],
        json!([{"type": "function", "name": "get_weather", "description": "Get the weather.",
            "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}}}])
    );
    let turn_start = sent(&feed(d, ok(&start, json!({"thread": {"id": "T1"}}))))[0].clone();
    feed(d, ok(&turn_start, json!({"turn": {"id": "ct"}})));
    feed(d, delta("T1", "Checking."));
    let out = feed(d, tool_call(0, "T1", "call_a", "Paris"));
    assert_eq!(
        events(&out),
        [
            "1:BlockStopped",
            "1:BlockStarted(ToolUse { id: \"call_a\", name: \"get_weather\" })",
            "1:ToolInputDelta(\"{\\\"city\\\":\\\"Paris\\\"}\")",
            "1:BlockStopped",
            &format!("WakeAfter {{ turn: 1, after: {SETTLE:?} }}"),
        ]
    );
    assert!(
        out.lines.is_empty(),
        "the call is not answered: {:?}",
        out.lines
    );
    feed(d, tool_call(1, "T1", "call_b", "Rome"));
    let mut out = Outbox::default();
    d.wake(1, &mut out);
    assert!(
        out.events.is_empty(),
        "a call came after the first wake was asked"
    );
    let mut out = Outbox::default();
    d.wake(1, &mut out);
    out
}

fn done_content(out: &Outbox) -> Vec<crate::protocol::Block> {
    out.events
        .iter()
        .find_map(|e| match e {
            DriverEvent::Turn {
                event: TurnEvent::Done(o),
                ..
            } => {
                assert_eq!(o.stop_reason, crate::protocol::StopReason::ToolUse);
                Some(o.content.clone())
            }
            _ => None,
        })
        .expect("a tool_use answer")
}

#[test]
fn initialize_asks_for_the_experimental_api_that_dynamic_tools_need() {
    let mut d = CodexDriver::new(2, "BASE".into());
    let mut out = Outbox::default();
    d.probe(&mut out);
    assert_eq!(
        sent(&out)[0]["params"]["capabilities"],
        json!({"experimentalApi": true})
    );
}

#[test]
fn a_thread_without_tools_gets_no_dynamic_tools() {
    let mut d = ready();
    let mut out = Outbox::default();
    d.begin(1, input("", Vec::new(), json!("hi")), &mut out);
    assert!(sent(&out)[0]["params"].get("dynamicTools").is_none());
}

#[test]
fn calls_end_the_turn_with_a_tool_use_answer_once_no_more_come_and_park_when_kept() {
    let mut d = ready();
    let out = two_calls(&mut d, true);
    let content = done_content(&out);
    use crate::protocol::Block;
    assert_eq!(content[0], Block::Text("Checking.".into()));
    assert_eq!(
        content[1..],
        [
            Block::ToolUse {
                id: "call_a".into(),
                name: "get_weather".into(),
                input: json!({"city": "Paris"})
            },
            Block::ToolUse {
                id: "call_b".into(),
                name: "get_weather".into(),
                input: json!({"city": "Rome"})
            }
        ]
    );
    assert_eq!(events(&out).last().unwrap(), "Kept { turn: 1 }");
    assert!(out.lines.is_empty(), "parked: no interrupt, no delete");

    // The follow-up answers both calls (in their order, an error as a failure) and streams.
    let prompt = json!([
        {"type": "tool_result", "tool_use_id": "call_b", "content": "rain", "is_error": true},
        {"type": "tool_result", "tool_use_id": "call_a",
            "content": [{"type": "text", "text": "sunny"}]}
    ]);
    let mut out = Outbox::default();
    d.begin(2, with_tools(true, true, prompt), &mut out);
    assert_eq!(
        sent(&out),
        [
            json!({"id": 0, "result": {"contentItems": [{"type": "inputText", "text": "sunny"}],
                "success": true}}),
            json!({"id": 1, "result": {"contentItems": [{"type": "inputText", "text": "rain"}],
                "success": false}}),
        ]
    );
    let out = feed(&mut d, delta("T1", "Sunny in Paris."));
    assert_eq!(
        events(&out),
        ["2:BlockStarted(Text)", "2:text Sunny in Paris."]
    );
    // The CLI turn's items hold the text before the calls too: the answer is this turn's.
    let end = json!({"method": "turn/completed", "params": {"threadId": "T1", "turn": {
        "id": "ct", "status": "completed", "error": null, "items": [
            {"type": "agentMessage", "text": "Checking."},
            {"type": "agentMessage", "text": "Sunny in Paris."}]}}});
    let out = feed(&mut d, end);
    assert_eq!(events(&out)[1], "2:done Sunny in Paris. (0 in, 0 out)");
    // Not only the answer in the items: the thread is deleted, not kept.
    assert_eq!(sent(&out)[0]["method"], "thread/delete");
}

#[test]
fn a_tool_turn_not_kept_is_interrupted_and_its_thread_deleted() {
    let mut d = ready();
    let out = two_calls(&mut d, false);
    done_content(&out);
    let interrupt = sent(&out).remove(0);
    assert_eq!(interrupt["method"], "turn/interrupt");
    assert_eq!(
        interrupt["params"],
        json!({"threadId": "T1", "turnId": "ct"})
    );
    feed(&mut d, ok(&interrupt, json!({})));
    // Measured: the pending calls fail, then the turn completes `interrupted`.
    let out = feed(&mut d, completed("T1", "interrupted", ""));
    assert!(
        events(&out).is_empty(),
        "the client has its answer: {:?}",
        events(&out)
    );
    let delete = sent(&out).remove(0);
    assert_eq!(delete["method"], "thread/delete");
    let out = feed(&mut d, ok(&delete, json!({})));
    assert_eq!(events(&out), ["Released { turn: 1, reusable: true }"]);
}

#[test]
fn a_forgotten_tool_turn_is_interrupted_then_deleted() {
    let mut d = ready();
    two_calls(&mut d, true);
    let mut out = Outbox::default();
    d.forget(7, &mut out);
    let interrupt = sent(&out).remove(0);
    assert_eq!(interrupt["method"], "turn/interrupt");
    assert_eq!(
        interrupt["params"],
        json!({"threadId": "T1", "turnId": "ct"})
    );
    assert_eq!(
        sent(&feed(&mut d, ok(&interrupt, json!({})))),
        Vec::<Value>::new()
    );
    let out = feed(&mut d, completed("T1", "interrupted", ""));
    assert_eq!(sent(&out)[0]["method"], "thread/delete");
    assert_eq!(sent(&out)[0]["params"]["threadId"], "T1");
    assert!(out.events.is_empty());
}

#[test]
fn a_call_after_the_answer_waits_with_the_parked_turn_and_is_the_next_answer() {
    let mut d = ready();
    two_calls(&mut d, true);
    let out = feed(&mut d, tool_call(2, "T1", "call_c", "Oslo"));
    assert!(out.lines.is_empty() && out.events.is_empty());
    let prompt = json!([
        {"type": "tool_result", "tool_use_id": "call_a", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "call_b", "content": "rain"}
    ]);
    let mut out = Outbox::default();
    d.begin(2, with_tools(true, true, prompt), &mut out);
    assert_eq!(sent(&out).len(), 2, "both calls answered");
    assert!(events(&out).iter().any(|e| e.contains("call_c")));
    let mut out = Outbox::default();
    d.wake(2, &mut out);
    let content = done_content(&out);
    assert_eq!(content.len(), 1, "only the late call: {content:?}");
    assert_eq!(events(&out).last().unwrap(), "Kept { turn: 2 }");
}

#[test]
fn a_call_nobody_waits_for_or_of_an_unknown_tool_is_failed_at_once() {
    let mut d = ready();
    let out = feed(&mut d, tool_call(5, "T9", "call_x", "Paris"));
    assert_eq!(sent(&out)[0]["id"], 5);
    assert_eq!(sent(&out)[0]["result"]["success"], false);

    let turn_start = started(&mut d, 1, "T1", input("", Vec::new(), json!("hi")));
    feed(&mut d, ok(&turn_start, json!({"turn": {"id": "ct"}})));
    let out = feed(&mut d, tool_call(6, "T1", "call_y", "Paris"));
    assert_eq!(
        sent(&out)[0]["result"]["success"],
        false,
        "not the turn's tool"
    );
    assert!(out.events.is_empty());
}

#[test]
fn tool_history_is_replayed_as_function_calls_and_outputs() {
    let mut d = ready();
    let history = vec![
        ChatMessage {
            role: Role::User,
            content: json!("weather in Paris?"),
        },
        ChatMessage {
            role: Role::Assistant,
            content: json!([{"type": "tool_use", "id": "call_a", "name": "get_weather",
                "input": {"city": "Paris"}}]),
        },
    ];
    let prompt = json!([{"type": "tool_result", "tool_use_id": "call_a", "content": "sunny"}]);
    let mut turn = with_tools(false, false, prompt);
    turn.history = history;
    let inject = started(&mut d, 1, "T1", turn);
    assert_eq!(inject["method"], "thread/inject_items");
    assert_eq!(
        inject["params"]["items"],
        json!([
            {"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "weather in Paris?"}]},
            {"type": "function_call", "call_id": "call_a", "name": "get_weather",
                "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_a", "output": "sunny"}
        ])
    );
    let out = feed(&mut d, ok(&inject, json!({})));
    let turn_start = sent(&out).remove(0);
    assert_eq!(turn_start["method"], "turn/start");
    assert_eq!(
        turn_start["params"]["input"],
        json!([]),
        "measured: input [] goes on"
    );
}
