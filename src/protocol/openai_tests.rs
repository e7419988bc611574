use super::*;
use crate::protocol::{Block, BlockKind, StopReason, TurnEvent, TurnOutcome};

fn parse(v: Value) -> Result<ChatRequest, Invalid> {
    parse_request(v.to_string().as_bytes())
}

#[test]
fn roles_and_parts_become_anthropic_content() {
    let r = parse(
        json!({"model": "claude", "n": 1, "temperature": 0.2, "messages": [
            {"role": "system", "content": "S1"},
            {"role": "developer", "content": [{"type": "text", "text": "S2"}]},
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}
        ]}),
    )
    .expect("valid");
    assert_eq!(r.system, "S1\n\nS2");
    assert_eq!(r.history.len(), 2);
    assert_eq!(r.history[1].role, Role::Assistant);
    assert_eq!(r.prompt[0], json!({"type": "text", "text": "look"}));
    assert_eq!(
        r.prompt[1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "AAAA"})
    );
    assert_eq!(r.prompt[2]["source"]["type"], "url");
}

#[test]
fn unsupported_requests_name_their_param() {
    let user = json!([{"role": "user", "content": "x"}]);
    let cases = [
        (json!({"model": "claude", "n": 2, "messages": user}), "n"),
        (json!({"model": "claude"}), "messages"),
        (json!({"messages": user}), "model"),
        (
            json!({"model": "claude", "tools": [{"type": "function"}], "messages": user}),
            "tools[0].function.name",
        ),
        (
            json!({"model": "claude", "messages": [{"role": "tool", "content": "r"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"model": "claude", "tool_choice": "required", "messages": user}),
            "tool_choice",
        ),
        (
            json!({"model": "claude", "messages": [
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "f", "arguments": "{not json"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "r"}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!({"model": "claude", "messages": [
                {"role": "assistant", "content": "no calls"},
                {"role": "tool", "tool_call_id": "c1", "content": "r"}]}),
            "messages",
        ),
        (
            json!({"model": "claude", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
            "messages[0].content[0]",
        ),
    ];
    for (body, param) in cases {
        let e = parse(body.clone()).expect_err(&body.to_string());
        assert_eq!(e.param.as_deref(), Some(param), "{body}");
    }
}

#[test]
fn chunks_start_with_the_role_and_end_with_finish_and_usage() {
    let mut w = ChunkWriter::new("chatcmpl-1", "claude", 1, true);
    let delta = |t: &str| TurnEvent::TextDelta(t.into());
    let mut chunks = w.event(&TurnEvent::BlockStarted(BlockKind::Text));
    chunks.extend(w.event(&delta("Hel")));
    chunks.extend(w.event(&TurnEvent::ToolInputDelta("{}".into())));
    chunks.extend(w.event(&delta("lo")));
    let outcome = TurnOutcome {
        stop_reason: StopReason::MaxTokens,
        ..TurnOutcome::default()
    };
    chunks.extend(w.done(&outcome));
    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    assert_eq!(deltas[0]["role"], "assistant");
    assert_eq!(
        (deltas[1]["content"].as_str(), deltas[2]["content"].as_str()),
        (Some("Hel"), Some("lo"))
    );
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(chunks[4]["usage"]["total_tokens"], 0);
    assert_eq!(chunks.len(), 5);
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "d",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "now"}}])
}

#[test]
fn tools_calls_and_results_become_anthropic_blocks() {
    let r = parse(json!({"model": "claude", "tools": weather_tools(), "parallel_tool_calls": true,
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "c2", "type": "function", "function": {"name": "now", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "noon"}]},
            {"role": "user", "content": "thanks"}]}))
    .expect("valid");
    assert_eq!(
        r.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["get_weather", "now"]
    );
    assert_eq!(
        r.tools[1].input_schema,
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(
        r.history[1].content,
        json!([{"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "c2", "name": "now", "input": {}}])
    );
    assert_eq!(
        r.prompt,
        json!([{"type": "tool_result", "tool_use_id": "c1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "c2", "content": "noon"},
            {"type": "text", "text": "thanks"}])
    );
    let none = parse(
        json!({"model": "claude", "tools": weather_tools(), "tool_choice": "none",
        "messages": [{"role": "user", "content": "x"}]}),
    )
    .expect("valid");
    assert!(none.tools.is_empty());
    assert_eq!(none.pool(Backend::Claude), PoolKey::default_pool());
}

fn tool_outcome() -> TurnOutcome {
    TurnOutcome {
        content: vec![Block::ToolUse {
            id: "toolu_1".into(),
            name: "get_weather".into(),
            input: json!({"city": "Paris"}),
        }],
        stop_reason: StopReason::ToolUse,
        ..TurnOutcome::default()
    }
}

#[test]
fn tool_calls_are_rendered_whole_and_streamed() {
    let body = chat_completion("chatcmpl-1", "claude", 1, &tool_outcome());
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{"id": "toolu_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])
    );

    let mut w = ChunkWriter::new("chatcmpl-1", "claude", 1, false);
    let mut chunks = w.event(&TurnEvent::BlockStarted(BlockKind::ToolUse {
        id: "toolu_1".into(),
        name: "get_weather".into(),
    }));
    chunks.extend(w.event(&TurnEvent::ToolInputDelta("{\"city\":".into())));
    chunks.extend(w.event(&TurnEvent::ToolInputDelta("\"Paris\"}".into())));
    chunks.extend(w.event(&TurnEvent::BlockStopped));
    chunks.extend(w.done(&tool_outcome()));
    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    assert_eq!(
        deltas[1]["tool_calls"],
        json!([{"index": 0, "id": "toolu_1", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}])
    );
    assert_eq!(
        deltas[2]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":"
    );
    assert_eq!(deltas[3]["tool_calls"][0]["index"], 0);
    assert_eq!(chunks.len(), 5, "role, start, two argument pieces, finish");
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "tool_calls");

    // Not streamed (a non-streaming fallback): each call comes whole at the end.
    let mut w = ChunkWriter::new("chatcmpl-1", "claude", 1, false);
    let chunks = w.done(&tool_outcome());
    assert_eq!(
        chunks[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
}
