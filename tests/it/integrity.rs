//! Never a silently wrong stream: when the CLI starts its answer over (an upstream retry, or a
//! non-streaming fallback) a client gets the model's final answer, or — when part of a failed
//! attempt already reached it — a stream that ends with an error in its dialect's shape.

use serde_json::{json, Value};

use crate::support::*;

fn sse_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect()
}

#[actix_rt::test]
async fn a_restart_after_partial_text_ends_the_stream_with_an_error_in_each_dialect() {
    let server = TestServer::fake(|_| {}).await;
    for word in ["FAKE_RETRY_PARTIAL", "FAKE_FALLBACK_PARTIAL"] {
        let reply = server.messages(streaming(word)).await;
        assert_eq!(reply.status, 200, "the stream had started");
        let events = parse_sse(&reply.raw);
        let (last, data) = events.last().expect("events");
        assert_eq!(last, "error", "{word}: {events:?}");
        assert_eq!(data["error"]["type"], "api_error");
        assert!(
            !events.iter().any(|(n, _)| n == "message_stop"),
            "{word}: never presented as complete"
        );

        let reply = server
            .post(
                "/openai/v1/chat/completions",
                json!({"model": "claude", "stream": true,
                    "messages": [{"role": "user", "content": word}]}),
            )
            .await;
        let chunks = openai_chunks(&reply.raw);
        assert!(
            chunks.last().expect("chunks")["error"].is_object(),
            "{word}: {}",
            reply.raw
        );
        assert!(!reply.raw.contains("[DONE]"), "{word}");
        assert!(
            !chunks
                .iter()
                .any(|c| c["choices"][0]["finish_reason"].is_string()),
            "{word}: no finish"
        );

        // A client that waits for the whole answer gets the model's answer.
        let whole = server.messages(user(word)).await;
        assert_eq!(whole.status, 200, "{}", whole.raw);
        assert!(
            whole.text().starts_with(&format!("echo: {word} |")),
            "{}",
            whole.raw
        );
    }
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains("clinvoker_streams_restarted_total{dialect=\"anthropic\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("clinvoker_streams_restarted_total{dialect=\"openai\"} 2"));
    assert_eq!(server.messages(user("after")).await.status, 200);
    server.stop().await;
}

#[actix_rt::test]
async fn a_restart_before_any_text_is_invisible() {
    let server = TestServer::fake(|_| {}).await;
    for word in ["FAKE_RETRY_CLEAN", "FAKE_FALLBACK_CLEAN"] {
        let reply = server.messages(streaming(word)).await;
        let events = parse_sse(&reply.raw);
        assert_eq!(
            events.last().expect("events").0,
            "message_stop",
            "{word}: {events:?}"
        );
        let text = sse_text(&events);
        assert!(
            text.starts_with(&format!("echo: {word} |")),
            "{word}: {text:?}"
        );
        let starts = events
            .iter()
            .filter(|(n, _)| n == "content_block_start")
            .count();
        assert_eq!(
            starts, 1,
            "{word}: one block, no trace of the failed attempt: {events:?}"
        );
    }
    server.stop().await;
}

#[actix_rt::test]
async fn a_codex_retry_after_partial_text_ends_the_stream_with_an_error() {
    let server = TestServer::fake(|s| {
        s.backends.codex.command = FAKE_CODEX.to_string();
        s.backends.codex.min_idle = 0;
    })
    .await;
    let mut body = user_of("gpt-5", "FAKE_RETRY_PARTIAL");
    body["stream"] = json!(true);
    let events = parse_sse(&server.messages(body).await.raw);
    assert_eq!(events.last().expect("events").0, "error", "{events:?}");
    let whole = server
        .messages(user_of("gpt-5", "FAKE_RETRY_PARTIAL"))
        .await;
    assert!(
        whole.text().starts_with("echo: FAKE_RETRY_PARTIAL |"),
        "{}",
        whole.raw
    );
    server.stop().await;
}
