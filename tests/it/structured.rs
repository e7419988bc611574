//! Structured outputs on the edges the SDK tests do not reach: a backend that cannot carry a
//! schema, bad schemas refused before any process is touched, and Codex answers the server
//! checks itself.

use serde_json::{json, Value};

use crate::support::*;

fn person() -> Value {
    json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"], "additionalProperties": false})
}

#[actix_rt::test]
async fn gemini_and_bad_schemas_are_refused_with_a_clear_400() {
    let server = TestServer::fake(|s| s.backends.gemini.command = FAKE_GEMINI.to_string()).await;
    let mut body = user_of("gemini-2.5-flash", "a person");
    body["output_config"] = json!({"format": {"type": "json_schema", "schema": person()}});
    let msg = server
        .messages(body)
        .await
        .anthropic_error(400, "invalid_request_error");
    assert!(msg.contains("gemini"), "{msg}");
    let reply = server
        .post(
            "/openai/v1/chat/completions",
            json!({"model": "claude", "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "x",
                    "schema": {"type": "array", "items": {}}}}}),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.raw);
    assert_eq!(
        reply.body["error"]["param"],
        "response_format.json_schema.schema"
    );
    let pools = server.get("/admin/pools").await;
    assert!(
        !pools.to_string().contains("json-"),
        "no schema pool was made: {pools}"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn a_codex_answer_that_misses_the_schema_is_an_error_not_an_answer() {
    let server = TestServer::fake(|s| s.backends.codex.command = FAKE_CODEX.to_string()).await;
    // The fake answers its echo text, which is no JSON at all.
    let mut body = user_of("gpt-5", "a person");
    body["output_config"] = json!({"format": {"type": "json_schema", "schema": person()}});
    let msg = server
        .messages(body)
        .await
        .anthropic_error(502, "api_error");
    assert!(msg.contains("schema") && msg.contains("not JSON"), "{msg}");
    assert_eq!(server.messages(user_of("gpt-5", "after")).await.status, 200);
    server.stop().await;
}
