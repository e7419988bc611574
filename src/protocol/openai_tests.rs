use super::*;
use crate::protocol::BlockKind;

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
            "tools",
        ),
        (
            json!({"model": "claude", "messages": [{"role": "tool", "content": "r"}]}),
            "messages[0].role",
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
