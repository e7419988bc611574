//! Client tools on the Claude Code driver as plain lines (shapes measured with the real CLI):
//! the SDK MCP server's handshake, a turn that stops for two parallel tool calls, and the end
//! of the CLI's turn after the client got its `tool_use` answer.

use serde_json::{json, Value};

use super::*;
use crate::process::driver::test_lines::{feed, lines, names};
use crate::protocol::Role;
use crate::protocol::{Block, ChatMessage, StopReason};

pub(super) fn control_ok(request: &Value, response: Value) -> Value {
    json!({"type": "control_response", "response": {"subtype": "success",
        "request_id": request["request_id"], "response": response}})
}

pub(super) fn stream(event: Value) -> Value {
    json!({"type": "stream_event", "event": event})
}

/// An `mcp_message` the CLI sends the server.
pub(super) fn mcp(request_id: &str, message: Value) -> Value {
    json!({"type": "control_request", "request_id": request_id, "request": {
        "subtype": "mcp_message", "server_name": "client", "message": message}})
}

pub(super) fn tools_call(request_id: &str, rpc_id: u64, tool_use_id: &str, city: &str) -> Value {
    mcp(
        request_id,
        json!({"method": "tools/call", "jsonrpc": "2.0", "id": rpc_id, "params": {
            "name": "get_weather", "arguments": {"city": city},
            "_meta": {"claudecode/toolUseId": tool_use_id, "progressToken": rpc_id}}}),
    )
}

pub(super) fn weather() -> ClientTool {
    ClientTool {
        name: "get_weather".into(),
        description: "Get the weather.".into(),
        input_schema: json!({"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"]}),
    }
}

/// A driver bound to the `get_weather` tool: `initialize`, then the server registered.
pub(super) fn ready_with_tools() -> ClaudeDriver {
    let mut d = ClaudeDriver::new(3, "sonnet".into());
    let mut out = Outbox::default();
    d.bind("SYS", None, &[weather()], &mut out);
    let init = lines(&out).remove(0);
    assert_eq!(init["request"]["subtype"], "initialize");
    assert!(init["request"].get("sdkMcpServers").is_none());
    let out = feed(&mut d, control_ok(&init, json!({})));
    assert!(
        out.events.is_empty(),
        "not ready before the server is registered"
    );
    let register = lines(&out).remove(0);
    assert_eq!(
        register["request"],
        json!({"subtype": "mcp_set_servers",
            "servers": {"client": {"type": "sdk", "name": "client"}}})
    );
    let out = feed(
        &mut d,
        control_ok(
            &register,
            json!({"added": ["client"], "removed": [], "errors": {}}),
        ),
    );
    assert_eq!(names(&out), ["Ready"]);
    d
}

#[test]
fn the_mcp_handshake_is_answered_with_the_clients_tools() {
    let mut d = ready_with_tools();
    let out = feed(
        &mut d,
        mcp(
            "9d98",
            json!({"method": "initialize", "jsonrpc": "2.0", "id": 0, "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "claude-code", "version": "2.1.331"}}}),
        ),
    );
    let answer = lines(&out).remove(0);
    assert_eq!(answer["response"]["request_id"], "9d98");
    let rpc = &answer["response"]["response"]["mcp_response"];
    assert_eq!(rpc["id"], 0);
    assert_eq!(rpc["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(rpc["result"]["serverInfo"]["name"], "client");

    let out = feed(
        &mut d,
        mcp(
            "n1",
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ),
    );
    assert_eq!(
        lines(&out)[0]["response"]["response"]["mcp_response"],
        json!({"jsonrpc": "2.0", "result": {}})
    );

    let out = feed(
        &mut d,
        mcp(
            "l1",
            json!({"method": "tools/list", "jsonrpc": "2.0", "id": 1}),
        ),
    );
    let listed = &lines(&out)[0]["response"]["response"]["mcp_response"];
    assert_eq!(listed["id"], 1);
    assert_eq!(
        listed["result"]["tools"],
        json!([{"name": "get_weather", "description": "Get the weather.",
            "inputSchema": weather().input_schema, "annotations": {"readOnlyHint": true}}])
    );
}

#[test]
fn a_process_without_tools_registers_nothing_and_refuses_mcp_messages() {
    let mut d = ClaudeDriver::new(1, "sonnet".into());
    let mut out = Outbox::default();
    d.bind("", None, &[], &mut out);
    let init = lines(&out).remove(0);
    let out = feed(&mut d, control_ok(&init, json!({})));
    assert_eq!(names(&out), ["Ready"]);
    assert!(out.lines.is_empty());
    let out = feed(
        &mut d,
        mcp(
            "l1",
            json!({"method": "tools/list", "jsonrpc": "2.0", "id": 1}),
        ),
    );
    assert_eq!(lines(&out)[0]["response"]["subtype"], "error");
}

#[test]
fn a_refused_registration_is_a_failed_start() {
    let mut d = ClaudeDriver::new(1, "sonnet".into());
    let mut out = Outbox::default();
    d.bind("", None, &[weather()], &mut out);
    let init = lines(&out).remove(0);
    let register = lines(&feed(&mut d, control_ok(&init, json!({})))).remove(0);
    let out = feed(
        &mut d,
        control_ok(&register, json!({"added": [], "errors": {"client": "no"}})),
    );
    assert!(
        names(&out)[0].starts_with("StartFailed"),
        "{:?}",
        names(&out)
    );
}

#[test]
fn the_turn_ends_at_tool_use_once_every_call_arrived_then_the_cli_turn_is_interrupted() {
    let mut d = ready_with_tools();
    let mut out = Outbox::default();
    d.begin(
        7,
        TurnInput {
            system_prompt: String::new(),
            output_schema: None,
            model: "sonnet".into(),
            history: Vec::new(),
            prompt: json!("weather in Paris and Rome?"),
            conversation: 1,
            resume: false,
            keep: false,
            tools: Vec::new(),
        },
        &mut out,
    );
    let prompt = lines(&out).remove(0);
    let mut events = Vec::new();
    for ev in [
        json!({"type": "message_start", "message": {"usage": {"input_tokens": 11, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Calling."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":\"Paris\"}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":\"Rome\"}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ] {
        let out = feed(&mut d, stream(ev));
        assert!(out.lines.is_empty());
        events.extend(names(&out));
    }
    assert_eq!(events.len(), 9, "{events:?}");
    assert_eq!(
        events[3],
        "7:BlockStarted(ToolUse { id: \"toolu_1\", name: \"get_weather\" })"
    );
    // The first call alone does not end the turn: the model asked for two.
    let out = feed(&mut d, tools_call("c1", 2, "toolu_1", "Paris"));
    assert!(out.events.is_empty() && out.lines.is_empty());
    let out = feed(&mut d, tools_call("c2", 3, "toolu_2", "Rome"));
    let DriverEvent::Turn {
        turn: 7,
        event: TurnEvent::Done(outcome),
    } = &out.events[0]
    else {
        panic!("{:?}", out.events)
    };
    assert_eq!(outcome.stop_reason, StopReason::ToolUse);
    assert_eq!(
        outcome.content,
        [
            Block::Text("Calling.".into()),
            Block::ToolUse {
                id: "toolu_1".into(),
                name: "get_weather".into(),
                input: json!({"city": "Paris"})
            },
            Block::ToolUse {
                id: "toolu_2".into(),
                name: "get_weather".into(),
                input: json!({"city": "Rome"})
            },
        ]
    );
    assert_eq!(
        (outcome.usage.input_tokens, outcome.usage.output_tokens),
        (11, 9)
    );
    let Phase::Busy(turn) = &d.phase else {
        panic!("the CLI's turn still runs")
    };
    let calls = &turn.tool_use_answered.as_ref().expect("answered").calls;
    assert_eq!(
        calls
            .iter()
            .map(|c| (c.request_id.as_str(), c.rpc_id.clone()))
            .collect::<Vec<_>>(),
        [("c1", json!(2)), ("c2", json!(3))]
    );
    // For now the CLI's turn ends here: interrupted, its result closes it, then the reset.
    assert_eq!(lines(&out)[0]["request"]["subtype"], "interrupt");
    let mut again = Outbox::default();
    d.interrupt(7, &mut again);
    assert!(again.lines.is_empty(), "interrupted once");
    let result = json!({"type": "result", "subtype": "error_during_execution", "is_error": true,
        "stop_reason": "tool_use", "terminal_reason": "aborted_tools", "total_cost_usd": 0.5,
        "user_message_uuid": prompt["uuid"]});
    let out = feed(&mut d, result);
    assert!(out.events.is_empty(), "the client was answered already");
    let rewind = lines(&out).remove(0);
    assert_eq!(rewind["request"]["target_message_uuid"], prompt["uuid"]);
    let out = feed(&mut d, control_ok(&rewind, json!({"rewound": true})));
    assert_eq!(names(&out), ["Released { turn: 7, reusable: true }"]);
}

#[test]
fn a_call_no_turn_waits_for_is_answered_with_an_error() {
    let mut d = ready_with_tools();
    let out = feed(&mut d, tools_call("c9", 4, "toolu_9", "Oslo"));
    let answer = lines(&out).remove(0);
    assert_eq!(answer["response"]["request_id"], "c9");
    let rpc = &answer["response"]["response"]["mcp_response"];
    assert_eq!(
        (rpc["id"].clone(), rpc["error"]["code"].clone()),
        (json!(4), json!(-32603))
    );
}

#[test]
fn tool_history_is_replayed_and_the_tool_results_are_the_prompt() {
    let mut d = ready_with_tools();
    let asked = json!([{"type": "text", "text": "Calling."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]);
    let results = json!([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]);
    let mut out = Outbox::default();
    d.begin(
        2,
        TurnInput {
            system_prompt: String::new(),
            output_schema: None,
            model: "sonnet".into(),
            history: vec![
                ChatMessage {
                    role: Role::User,
                    content: json!("weather?"),
                },
                ChatMessage {
                    role: Role::Assistant,
                    content: asked.clone(),
                },
            ],
            prompt: results.clone(),
            conversation: 1,
            resume: false,
            keep: false,
            tools: Vec::new(),
        },
        &mut out,
    );
    let first = lines(&out).remove(0);
    let out = feed(
        &mut d,
        json!({"type": "result", "subtype": "success", "is_error": false,
            "user_message_uuid": first["uuid"]}),
    );
    let [assistant, prompt] = <[Value; 2]>::try_from(lines(&out)).expect("two lines");
    assert_eq!(assistant["message"]["content"], asked);
    assert_eq!(
        (
            prompt["message"]["content"].clone(),
            prompt["shouldQuery"].clone()
        ),
        (results, json!(true))
    );
}

#[test]
fn a_made_up_tool_is_neither_waited_for_nor_shown() {
    let mut d = ready_with_tools();
    let mut out = Outbox::default();
    d.begin(
        4,
        TurnInput {
            system_prompt: String::new(),
            output_schema: None,
            model: "sonnet".into(),
            history: Vec::new(),
            prompt: json!("q"),
            conversation: 1,
            resume: false,
            keep: false,
            tools: Vec::new(),
        },
        &mut out,
    );
    let mut shown = Vec::new();
    for ev in [
        json!({"type": "message_start", "message": {}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_x", "name": "Bash", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}}),
        json!({"type": "message_stop"}),
    ] {
        shown.extend(names(&feed(&mut d, stream(ev))));
    }
    assert_eq!(
        shown,
        [
            "4:BlockStarted(ToolUse { id: \"toolu_1\", name: \"get_weather\" })",
            "4:BlockStopped"
        ]
    );
    let out = feed(&mut d, tools_call("c1", 2, "toolu_1", "Oslo"));
    let DriverEvent::Turn {
        event: TurnEvent::Done(outcome),
        ..
    } = &out.events[0]
    else {
        panic!("{:?}", out.events)
    };
    assert_eq!(
        outcome.content,
        [Block::ToolUse {
            id: "toolu_1".into(),
            name: "get_weather".into(),
            input: json!({"city": "Oslo"})
        }]
    );
}

#[test]
fn a_client_tool_result_becomes_the_calls_mcp_answer() {
    let call = mcp::PendingCall {
        request_id: "752c".into(),
        rpc_id: json!(2),
        tool_use_id: "toolu_1".into(),
        name: "get_weather".into(),
        arguments: json!({"city": "Paris"}),
    };
    let answer = mcp::call_result(
        &call,
        &json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny, 21C"}),
    );
    assert_eq!(
        answer,
        json!({"type": "control_response", "response": {"subtype": "success",
            "request_id": "752c", "response": {"mcp_response": {"jsonrpc": "2.0", "id": 2,
                "result": {"content": [{"type": "text", "text": "sunny, 21C"}], "isError": false}}}}})
    );
    let failed = mcp::call_result(
        &call,
        &json!({"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true,
            "content": [{"type": "text", "text": "city not found"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}]}),
    );
    assert_eq!(
        failed["response"]["response"]["mcp_response"]["result"],
        json!({"content": [{"type": "text", "text": "city not found"},
            {"type": "image", "data": "AA==", "mimeType": "image/png"}], "isError": true})
    );
}
