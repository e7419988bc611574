use super::*;
use crate::protocol::{BlockKind, TurnEvent};

fn body(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

#[test]
fn parses_seed_request_with_history_and_system_blocks() {
    let r = parse_request(&body(json!({
        "model": "claude", "max_tokens": 1024,
        "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
        "messages": [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": [{"type": "text", "text": "a1"}]},
            {"role": "user", "content": "q2"}
        ]
    })))
    .expect("valid");
    assert_eq!(r.model, "claude");
    assert_eq!(r.system, "A\n\nB");
    assert_eq!(r.history.len(), 2);
    assert_eq!(r.history[1].role, Role::Assistant);
    assert_eq!(r.prompt, json!("q2"));
    assert!(!r.stream);
}

#[test]
fn rejects_bad_requests_with_field_names() {
    let cases = [
        (
            json!({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (
            json!({"model": "claude", "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens",
        ),
        (json!({"model": "claude", "max_tokens": 1}), "messages"),
        (
            json!({"model": "claude", "max_tokens": 1, "messages": []}),
            "messages",
        ),
        (
            json!({"model": "claude", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}),
            "messages.0.role",
        ),
        (
            json!({"model": "claude", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}),
            "last message",
        ),
        (
            json!({"model": "claude", "max_tokens": 1, "system": 5, "messages": [{"role": "user", "content": "x"}]}),
            "system",
        ),
    ];
    for (req, needle) in cases {
        let err = parse_request(&body(req.clone())).expect_err("invalid");
        assert!(err.contains(needle), "{req} -> {err}");
    }
    assert!(parse_request(b"{not json")
        .expect_err("bad json")
        .contains("JSON"));
}

#[test]
fn translator_numbers_blocks_names_the_model_and_closes_with_usage() {
    let mut t = StreamTranslator::new("claude", "msg_1");
    let mut out = t.event(&TurnEvent::BlockStarted(BlockKind::Text));
    out.extend(t.event(&TurnEvent::TextDelta("Hi".into())));
    out.extend(t.event(&TurnEvent::BlockStopped));
    out.extend(t.event(&TurnEvent::BlockStarted(BlockKind::ToolUse {
        id: "t1".into(),
        name: "f".into(),
    })));
    out.extend(t.event(&TurnEvent::ToolInputDelta("{\"a\":1}".into())));
    let outcome = TurnOutcome {
        stop_reason: StopReason::ToolUse,
        usage: Usage {
            input_tokens: 11,
            output_tokens: 7,
            ..Default::default()
        },
        ..Default::default()
    };
    out.extend(t.done(&outcome));
    let names: Vec<&str> = out.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(out[0].1["message"]["model"], "claude");
    assert_eq!(out[1].1["index"], 0);
    assert_eq!(out[4].1["index"], 1);
    assert_eq!(out[4].1["content_block"]["name"], "f");
    assert_eq!(out[5].1["delta"]["partial_json"], "{\"a\":1}");
    assert_eq!(out[6].1["index"], 1, "the open block is closed at the end");
    assert_eq!(out[7].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(out[7].1["usage"]["output_tokens"], 7);
}

#[test]
fn token_estimate_counts_text_and_images() {
    let plain = estimate_tokens(&body(
        json!({"model": "claude", "messages": [{"role": "user", "content": "12345678"}]}),
    ))
    .expect("valid");
    assert_eq!(plain, 2 + 4);
    let image = estimate_tokens(&body(json!({"model": "claude", "system": "abcd", "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}, {"type": "text", "text": "abcd"}]}]}))).expect("valid");
    assert_eq!(image, 2 + 4 + 1600);
    assert!(estimate_tokens(b"{}")
        .expect_err("no model")
        .contains("model"));
}

#[test]
fn model_pages_follow_anthropic_paging() {
    let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let q = |limit, after: Option<&str>| ModelsQuery {
        limit,
        after_id: after.map(String::from),
        before_id: None,
    };
    let all = models_page(&names, &q(None, None)).expect("page");
    assert_eq!(all["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        (
            all["first_id"].clone(),
            all["last_id"].clone(),
            all["has_more"].clone()
        ),
        (json!("a"), json!("c"), json!(false))
    );
    let p = models_page(&names, &q(Some(1), Some("a"))).expect("page");
    assert_eq!(
        (p["first_id"].clone(), p["has_more"].clone()),
        (json!("b"), json!(true))
    );
    assert!(models_page(&names, &q(Some(0), None)).is_err());
}

#[test]
fn translator_streams_outcome_when_the_cli_sent_no_deltas() {
    let mut t = StreamTranslator::new("claude", "msg_1");
    let outcome = TurnOutcome {
        content: vec![Block::Text("whole answer".into())],
        ..Default::default()
    };
    let out = t.done(&outcome);
    let names: Vec<&str> = out.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(out[2].1["delta"]["text"], "whole answer");
}

#[test]
fn tools_and_tool_history_are_checked_and_kept() {
    let tools = json!([{"name": "get_weather", "description": "d",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let messages = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
            "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
            "content": [{"type": "text", "text": "sunny"}], "is_error": false}]}
    ]);
    let r = parse_request(&body(
        json!({"model": "claude", "max_tokens": 9, "tools": tools,
        "tool_choice": {"type": "auto"}, "messages": messages}),
    ))
    .expect("valid");
    assert_eq!(r.tools[0].name, "get_weather");
    assert_eq!(r.prompt, messages[2]["content"]);
    let pool = r.pool(Backend::Claude);
    assert!(pool.id().starts_with("tools-"), "{}", pool.id());
    assert_eq!(pool.tools(), r.tools);
    let none = parse_request(&body(
        json!({"model": "claude", "max_tokens": 9, "tools": tools,
        "tool_choice": {"type": "none"}, "messages": messages}),
    ))
    .expect("valid");
    assert_eq!(none.pool(Backend::Claude), PoolKey::default_pool());

    let refused = |extra: Value, want: &str| {
        let mut req = json!({"model": "claude", "max_tokens": 9, "tools": tools,
            "messages": [{"role": "user", "content": "x"}]});
        if let (Some(r), Some(e)) = (req.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        let e = parse_request(&body(req)).expect_err(want);
        assert!(e.contains(want), "{e}");
    };
    refused(json!({"tool_choice": {"type": "any"}}), "tool_choice.type");
    refused(
        json!({"tool_choice": {"type": "tool", "name": "get_weather"}}),
        "tool_choice.type",
    );
    refused(
        json!({"tools": [{"name": "bad name", "input_schema": {}}]}),
        "tools.0.name",
    );
    refused(
        json!({"tools": [{"name": "a", "input_schema": {}}, {"name": "a", "input_schema": {}}]}),
        "declared twice",
    );
    refused(
        json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
        "server tool",
    );
    refused(json!({"tools": [{"name": "a"}]}), "tools.0.input_schema");
    refused(
        json!({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_x", "content": "r"}]}]}),
        "not a tool_use",
    );
    refused(
        json!({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "a"}]},
            {"role": "user", "content": "x"}]}),
        "object input",
    );
}

#[test]
fn a_tool_use_answer_is_rendered_whole_and_streamed() {
    let outcome = TurnOutcome {
        content: vec![
            Block::Text("Calling.".into()),
            Block::ToolUse {
                id: "toolu_1".into(),
                name: "get_weather".into(),
                input: json!({"city": "Paris"}),
            },
        ],
        stop_reason: StopReason::ToolUse,
        ..TurnOutcome::default()
    };
    let body = message_response("msg_1", "claude", &outcome);
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(body["content"][1]["input"]["city"], "Paris");
    let mut t = StreamTranslator::new("claude", "msg_1");
    let mut events = t.event(&TurnEvent::BlockStarted(BlockKind::ToolUse {
        id: "toolu_1".into(),
        name: "get_weather".into(),
    }));
    events.extend(t.event(&TurnEvent::ToolInputDelta("{\"city\":\"Paris\"}".into())));
    events.extend(t.event(&TurnEvent::BlockStopped));
    events.extend(t.done(&outcome));
    let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[1].1["content_block"]["input"], json!({}));
    assert_eq!(events[2].1["delta"]["type"], "input_json_delta");
    assert_eq!(events[4].1["delta"]["stop_reason"], "tool_use");
}
