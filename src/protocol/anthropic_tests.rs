use super::*;

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
