//! Stop sequences: the server watches the streamed text, ends the answer before the sequence
//! (never showing part of it), reports why in each dialect, and stops the CLI's turn.

use serde_json::{json, Value};

use crate::support::*;

fn with_stop(text: &str, stop: &[&str], stream: bool) -> Value {
    let mut b = user(text);
    b["stop_sequences"] = json!(stop);
    b["stream"] = json!(stream);
    b
}

#[actix_rt::test]
async fn anthropic_answers_end_before_the_stop_sequence_streaming_and_not() {
    let server = TestServer::fake(|s| s.pool.max_processes = 1).await;
    server.wait_idle(1).await;
    let pid = server.processes().await[0]["pid"].clone();
    let reply = server
        .messages(with_stop("alpha beta STOPWORD gamma", &["STOPWORD"], false))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(reply.text(), "echo: alpha beta ");
    assert_eq!(reply.body["stop_reason"], "stop_sequence");
    assert_eq!(reply.body["stop_sequence"], "STOPWORD");

    // "ta ga" spans two deltas ("beta " and "gamma"): caught, and no part of it shown.
    let reply = server
        .messages(with_stop("alpha beta gamma delta", &["ta ga", "zzz"], true))
        .await;
    let events = parse_sse(&reply.raw);
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "echo: alpha be", "{events:?}");
    let (_, delta) = events
        .iter()
        .find(|(n, _)| n == "message_delta")
        .expect("message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "stop_sequence");
    assert_eq!(delta["delta"]["stop_sequence"], "ta ga");
    assert_eq!(events.last().expect("events").0, "message_stop");

    // A sequence that never appears changes nothing.
    let reply = server.messages(with_stop("plain", &["NOPE"], true)).await;
    let events = parse_sse(&reply.raw);
    assert!(
        events
            .iter()
            .any(|(_, d)| d["delta"]["stop_reason"] == "end_turn"),
        "{events:?}"
    );

    // The interrupted process was reset and serves on.
    let after = server.messages(user("after")).await;
    assert!(
        after.text().starts_with("echo: after | history:  |"),
        "{}",
        after.raw
    );
    assert_eq!(server.processes().await[0]["pid"], pid);
    server.stop().await;
}

#[actix_rt::test]
async fn openai_stop_ends_the_answer_with_finish_reason_stop() {
    let server = TestServer::fake(|_| {}).await;
    let body = json!({"model": "claude", "stop": "beta",
        "messages": [{"role": "user", "content": "alpha beta gamma"}]});
    let reply = server.post("/openai/v1/chat/completions", body).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(
        reply.body["choices"][0]["message"]["content"],
        "echo: alpha "
    );
    assert_eq!(reply.body["choices"][0]["finish_reason"], "stop");
    let body = json!({"model": "claude", "stream": true, "stop": ["gamma", "x"],
        "messages": [{"role": "user", "content": "alpha beta gamma"}]});
    let reply = server.post("/openai/v1/chat/completions", body).await;
    let text = openai_stream_text(&reply.raw);
    assert_eq!(text, "echo: alpha beta ");
    let too_many = json!({"model": "claude", "stop": ["a", "b", "c", "d", "e"],
        "messages": [{"role": "user", "content": "x"}]});
    let reply = server.post("/openai/v1/chat/completions", too_many).await;
    assert_eq!(reply.status, 400, "{}", reply.raw);
    server.stop().await;
}

#[actix_rt::test]
async fn stop_sequences_hold_on_every_backend() {
    let server = TestServer::fake(|s| {
        s.backends.codex.command = FAKE_CODEX.to_string();
        s.backends.gemini.command = FAKE_GEMINI.to_string();
    })
    .await;
    for model in ["gpt-5", "gemini-2.5-flash"] {
        let mut body = user_of(model, "alpha beta STOP gamma");
        body["stop_sequences"] = json!(["STOP"]);
        let reply = server.messages(body).await;
        assert_eq!(reply.status, 200, "{model}: {}", reply.raw);
        assert_eq!(reply.text(), "echo: alpha beta ", "{model}");
        assert_eq!(reply.body["stop_sequence"], "STOP", "{model}");
    }
    server.stop().await;
}
