//! The OpenAI dialect (`/openai/v1`) on the fake CLI: completions, chunk streams, conversion of
//! roles and content parts, the model list, and errors in OpenAI's shape.

use serde_json::{json, Value};

use crate::support::*;

const COMPLETIONS: &str = "/openai/v1/chat/completions";

fn chat(text: &str) -> Value {
    json!({"model": "claude", "messages": [{"role": "user", "content": text}]})
}

async fn completions(server: &TestServer, body: Value) -> Reply {
    server.post(COMPLETIONS, body).await
}

/// Asserts an OpenAI-shaped error of `status` and `kind`; returns the `error` object.
fn openai_error(reply: &Reply, status: u16, kind: &str) -> Value {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.raw);
    let error = &reply.body["error"];
    assert_eq!(error["type"], kind, "{}", reply.raw);
    for field in ["message", "type", "param", "code"] {
        assert!(error.get(field).is_some(), "{field} in {}", reply.raw);
    }
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    error.clone()
}

/// The `data:` payloads of a data-only SSE body, in order (`[DONE]` kept as a string).
fn data_frames(raw: &str) -> Vec<Value> {
    raw.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|frame| {
            assert!(!frame.contains("event:"), "data-only frames: {frame}");
            let data = frame.strip_prefix("data: ").expect("a data line");
            serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_string()))
        })
        .collect()
}

fn message_text(reply: &Reply) -> String {
    reply.body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[actix_rt::test]
async fn create_answers_a_chat_completion() {
    let server = TestServer::fake(|_| {}).await;
    let mut body = chat("hello there");
    for (k, v) in [
        ("temperature", json!(0.3)),
        ("top_p", json!(0.9)),
        ("max_tokens", json!(64)),
        ("max_completion_tokens", json!(64)),
        ("stop", json!(["\n\n"])),
        ("presence_penalty", json!(0)),
        ("frequency_penalty", json!(0)),
        ("seed", json!(7)),
        ("user", json!("u-1")),
        ("metadata", json!({"k": "v"})),
        ("n", json!(1)),
    ] {
        body[k] = v;
    }
    let r = completions(&server, body).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(r.body["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("chatcmpl-")));
    assert_eq!(r.body["object"], "chat.completion");
    assert!(r.body["created"]
        .as_u64()
        .is_some_and(|t| t > 1_700_000_000));
    assert_eq!(r.body["model"], "claude", "echoes the requested name");
    let choice = &r.body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["refusal"], Value::Null);
    assert_eq!(choice["finish_reason"], "stop");
    assert!(message_text(&r).starts_with("echo: hello there | history:  |"));
    assert_eq!(
        r.body["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
               "prompt_tokens_details": {"cached_tokens": 0}})
    );
    assert!(r.headers.get("x-request-id").is_some());
    server.stop().await;
}

#[actix_rt::test]
async fn streaming_sends_role_content_finish_usage_then_done() {
    let server = TestServer::fake(|_| {}).await;
    let mut body = chat("one two three four");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = completions(&server, body).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let content_type = r.headers.get("content-type").and_then(|c| c.to_str().ok());
    assert!(content_type.is_some_and(|c| c.starts_with("text/event-stream")));
    let frames = data_frames(&r.raw);
    assert_eq!(frames.last(), Some(&json!("[DONE]")), "{frames:?}");
    let chunks = &frames[..frames.len() - 1];
    let id = &chunks[0]["id"];
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == *id));
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 18);
    let finish = &chunks[chunks.len() - 2]["choices"][0];
    assert_eq!(finish["finish_reason"], "stop");
    assert_eq!(finish["delta"], json!({}));
    let content: Vec<&str> = chunks[1..chunks.len() - 2]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().expect("text"))
        .collect();
    assert!(content.len() >= 3, "one chunk per delta: {content:?}");
    assert!(content.concat().starts_with("echo: one two three four |"));

    let mut plain = chat("no usage");
    plain["stream"] = json!(true);
    let frames = data_frames(&completions(&server, plain).await.raw);
    let finish = &frames[frames.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(finish.get("usage").is_none(), "no usage chunk unless asked");
    server.stop().await;
}

#[actix_rt::test]
async fn history_and_system_messages_reach_the_process() {
    let server = TestServer::fake(|_| {}).await;
    let r = completions(
        &server,
        json!({"model": "claude-sonnet-4", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": [{"type": "text", "text": "q2"}]}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let text = message_text(&r);
    assert!(
        text.starts_with(
            "echo: q2 | history: u:q1,a:a1 | system: Be brief.\n\nBe kind. | model: claude-sonnet-4-20250514"
        ),
        "{text}"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn image_parts_are_accepted() {
    let server = TestServer::fake(|_| {}).await;
    let r = completions(
        &server,
        json!({"model": "claude", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(message_text(&r).starts_with("echo: what is this [image] |"));
    server.stop().await;
}

#[actix_rt::test]
async fn bad_requests_get_openai_errors() {
    let server = TestServer::fake(|_| {}).await;
    let mut two = chat("x");
    two["n"] = json!(2);
    let e = openai_error(
        &completions(&server, two).await,
        400,
        "invalid_request_error",
    );
    assert_eq!(e["param"], "n");
    let e = openai_error(
        &completions(&server, json!({"model": "claude"})).await,
        400,
        "invalid_request_error",
    );
    assert_eq!(e["param"], "messages");
    let mut tools = chat("x");
    tools["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
    tools["tool_choice"] = json!("required");
    let e = openai_error(
        &completions(&server, tools).await,
        400,
        "invalid_request_error",
    );
    assert_eq!(e["param"], "tool_choice");
    let tool_msg = json!({"model": "claude", "messages": [
        {"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "c", "content": "r"}]});
    let e = openai_error(
        &completions(&server, tool_msg).await,
        400,
        "invalid_request_error",
    );
    // A tool result must answer a tool call of the assistant message before it.
    assert_eq!(e["param"], "messages");
    let mut resp = client()
        .post(server.url(COMPLETIONS))
        .insert_header(("content-type", "application/json"))
        .send_body("{not json")
        .await
        .expect("post");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(body["error"]["param"], Value::Null);
    openai_error(
        &server.post("/openai/v1/nothing", json!({})).await,
        404,
        "not_found_error",
    );
    let r = completions(&server, chat("FAKE_API_ERROR_529")).await;
    openai_error(&r, 503, "server_error");
    assert!(
        r.headers.get("retry-after").is_some(),
        "OpenAI clients know no 529"
    );
    assert_eq!(completions(&server, chat("still fine")).await.status, 200);
    server.stop().await;
}

#[actix_rt::test]
async fn a_failure_mid_stream_is_a_final_error_chunk() {
    let server = TestServer::fake(|_| {}).await;
    let mut body = chat("FAKE_CRASH");
    body["stream"] = json!(true);
    let r = completions(&server, body).await;
    assert_eq!(r.status, 200, "the stream had started");
    let frames = data_frames(&r.raw);
    let last = frames.last().expect("frames");
    assert_eq!(last["error"]["type"], "server_error", "{frames:?}");
    assert!(!frames.contains(&json!("[DONE]")));
    server.stop().await;
}

#[actix_rt::test]
async fn models_are_listed_and_found() {
    let server = TestServer::fake(|_| {}).await;
    let list = server.get("/openai/v1/models").await;
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    for name in ["claude", "claude-sonnet-4", "sonnet", "opus", "haiku"] {
        assert!(ids.contains(&name), "{name} in {ids:?}");
    }
    assert!(!ids.contains(&"codex"), "only Claude models: {ids:?}");
    let one = server.get("/openai/v1/models/claude").await;
    assert_eq!(one["object"], "model");
    assert_eq!(one["id"], "claude");
    assert!(one["created"].is_u64() && one["owned_by"].is_string());
    let mut resp = client()
        .get(server.url("/openai/v1/models/no-such-model"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["type"], "not_found_error", "{body}");
    server.stop().await;
}

#[actix_rt::test]
async fn a_keyed_server_answers_401_in_openai_shape() {
    let server = TestServer::fake(|s| s.server.api_keys = vec!["k-one".into()]).await;
    let url = server.url(COMPLETIONS);
    let none = post_json(&url, chat("x"), &[]).await;
    let e = openai_error(&none, 401, "invalid_request_error");
    assert_eq!(e["code"], "invalid_api_key");
    let wrong = post_json(&url, chat("x"), &[("authorization", "Bearer nope")]).await;
    openai_error(&wrong, 401, "invalid_request_error");
    assert!(wrong.headers.get("x-request-id").is_some());
    let ok = post_json(&url, chat("x"), &[("authorization", "Bearer k-one")]).await;
    assert_eq!(ok.status, 200, "{}", ok.raw);
    server.stop().await;
}
