//! Parked conversations with the real CLIs on the mock upstreams: a follow-up that continues a
//! parked conversation must reach the model exactly as a replayed one does. Two servers, one
//! parking and one replaying, carry the same chat; the upstream requests of its last turn must
//! be equal (the chats' tokens aside).

use serde_json::{json, Value};

use crate::real_cli::{real, token};
use crate::real_codex::real_codex;
use crate::real_gemini::real_gemini;
use crate::support::*;

/// A chat of `turns` turns of `model` marked with `tok`, through the Anthropic API, resending
/// everything.
async fn chat(server: &TestServer, model: &str, tok: &str, turns: usize) {
    chat_with(server, model, tok, turns, false).await;
}

/// [`chat`], where with `aside` the second and the last turn send two user messages each.
async fn chat_with(server: &TestServer, model: &str, tok: &str, turns: usize, aside: bool) {
    let mut messages: Vec<Value> = Vec::new();
    for i in 0..turns {
        if aside && (i == 1 || i + 1 == turns) {
            messages.push(json!({"role": "user", "content": format!("{tok} aside")}));
        }
        messages.push(json!({"role": "user", "content": format!("{tok} turn {i}")}));
        let body = json!({"model": model, "max_tokens": 256, "system": "Be brief.",
            "messages": messages});
        let reply = server.messages(body).await;
        assert_eq!(reply.status, 200, "{}", reply.raw);
        messages.push(json!({"role": "assistant", "content": reply.body["content"]}));
    }
}

#[actix_rt::test]
async fn claude_a_parked_follow_up_reaches_the_model_as_a_replay_does() {
    let parking = real(|_| {}).await;
    let replaying = real(|s| s.pool.park_conversations = false).await;
    let (a, b) = (token(), token());
    chat(&parking, "claude", &a, 4).await;
    chat(&replaying, "claude", &b, 4).await;
    assert_eq!(parking.hits_and_misses(None).await, (3, 0));
    assert_eq!(replaying.hits_and_misses(None).await, (0, 0));
    let last = |tok: &str| -> Value {
        let bodies = mock().requests_with(&format!("{tok} turn 3"));
        let body = bodies.last().expect("the last turn went upstream").clone();
        json!({"system": body["system"], "messages": body["messages"], "model": body["model"]})
    };
    let parked = last(&a).to_string();
    let replayed = last(&b).to_string().replace(&b, &a);
    assert_eq!(parked, replayed, "what reached the model differs");
    parking.stop().await;
    replaying.stop().await;
}

/// The upstream body of turn 3 of the chat marked `tok`, as the mock logged it.
fn last_body(mock: &Mock, tok: &str) -> Value {
    let bodies: Vec<Value> = mock
        .bodies_with(&format!("{tok} turn 3"))
        .into_iter()
        .filter(|b| b["input"].is_array() || b["contents"].is_array())
        .collect();
    bodies.last().expect("the last turn went upstream").clone()
}

#[actix_rt::test]
async fn codex_a_parked_follow_up_reaches_the_model_as_a_replay_does() {
    let parking = real_codex(|_| {}).await;
    let replaying = real_codex(|s| s.pool.park_conversations = false).await;
    let (a, b) = (token(), token());
    chat(&parking, "gpt-5", &a, 4).await;
    chat(&replaying, "gpt-5", &b, 4).await;
    assert_eq!(parking.hits_and_misses(None).await, (3, 0));
    assert_eq!(replaying.hits_and_misses(None).await, (0, 0));
    let last = |tok: &str| -> Value {
        let mut body = last_body(responses_mock(), tok);
        // Item ids are random, and each server has its own directories.
        for item in body["input"].as_array_mut().into_iter().flatten() {
            item["id"] = Value::Null;
        }
        json!({"instructions": body["instructions"], "input": body["input"],
            "model": body["model"]})
    };
    let parked = masked_dirs(&last(&a).to_string());
    let replayed = masked_dirs(&last(&b).to_string().replace(&b, &a));
    assert_eq!(parked, replayed, "what reached the model differs");
    parking.stop().await;
    replaying.stop().await;
}

#[actix_rt::test]
async fn gemini_a_parked_follow_up_reaches_the_model_as_a_replay_does() {
    let parking = real_gemini(|_| {}).await;
    let replaying = real_gemini(|s| s.pool.park_conversations = false).await;
    let (a, b) = (token(), token());
    chat(&parking, "gemini-2.5-flash", &a, 4).await;
    chat(&replaying, "gemini-2.5-flash", &b, 4).await;
    assert_eq!(parking.hits_and_misses(None).await, (3, 0));
    assert_eq!(replaying.hits_and_misses(None).await, (0, 0));
    let last = |tok: &str| -> Value {
        let body = last_body(gemini_mock(), tok);
        json!({"systemInstruction": body["systemInstruction"], "contents": body["contents"]})
    };
    // The session context names each server's own directories.
    let parked = masked_dirs(&last(&a).to_string());
    let replayed = masked_dirs(&last(&b).to_string().replace(&b, &a));
    assert_eq!(parked, replayed, "what reached the model differs");
    parking.stop().await;
    replaying.stop().await;
}

/// `text` with the servers' temporary directories (`/tmp/.tmpXXXXXX`) masked.
fn masked_dirs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("/tmp/.tmp") {
        out.push_str(&rest[..at]);
        out.push_str("/tmp/.tmp******");
        rest = &rest[at + "/tmp/.tmp".len()..];
        rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    }
    out.push_str(rest);
    out
}

/// The upstream request of the last turn of a chat with asides (two user messages in a turn),
/// on a parking and a replaying server of `model`: parked and replayed, consecutive user
/// messages reach the model alike (Codex: one item each; Gemini CLI: one content, measured).
async fn an_aside_reaches_the_model_as_a_replay_does(model: &str, mock: &Mock) {
    let gemini = model.starts_with("gemini");
    let (parking, replaying) = if gemini {
        let replaying = real_gemini(|s| s.pool.park_conversations = false).await;
        (real_gemini(|_| {}).await, replaying)
    } else {
        let replaying = real_codex(|s| s.pool.park_conversations = false).await;
        (real_codex(|_| {}).await, replaying)
    };
    let (a, b) = (token(), token());
    chat_with(&parking, model, &a, 4, true).await;
    chat_with(&replaying, model, &b, 4, true).await;
    assert_eq!(parking.hits_and_misses(None).await, (3, 0));
    let last = |tok: &str| -> Value {
        let mut body = last_body(mock, tok);
        for item in body["input"].as_array_mut().into_iter().flatten() {
            item["id"] = Value::Null;
        }
        json!({"input": body["input"], "contents": body["contents"]})
    };
    let parked = masked_dirs(&last(&a).to_string());
    let replayed = masked_dirs(&last(&b).to_string().replace(&b, &a));
    assert_eq!(parked, replayed, "what reached the model differs");
    assert!(parked.contains(&format!("{a} aside")));
    parking.stop().await;
    replaying.stop().await;
}

#[actix_rt::test]
async fn codex_an_aside_reaches_the_model_as_a_replay_does() {
    an_aside_reaches_the_model_as_a_replay_does("gpt-5", responses_mock()).await;
}

#[actix_rt::test]
async fn gemini_an_aside_reaches_the_model_as_a_replay_does() {
    an_aside_reaches_the_model_as_a_replay_does("gemini-2.5-flash", gemini_mock()).await;
}

/// A tool round trip with the real CLI: the tool-use answer, then the follow-up with the result
/// as an SDK sends it (the answer's content resent as is).
/// Returns the answer's text and the tool call's id.
async fn tool_round_trip(server: &TestServer, tok: &str) -> (String, String) {
    let tools = json!([{"name": "get_weather", "description": "Get the weather.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"]}}]);
    let ask = format!(r#"weather {tok} TOOL:get_weather:{{"city":"Paris"}}"#);
    let first = server
        .messages(json!({"model": "claude", "max_tokens": 256, "tools": tools,
            "messages": [{"role": "user", "content": ask}]}))
        .await;
    assert_eq!(first.status, 200, "{}", first.raw);
    assert_eq!(first.body["stop_reason"], "tool_use", "{}", first.raw);
    let content = first.body["content"].clone();
    let id = content
        .as_array()
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_use"))
        .and_then(|b| b["id"].as_str().map(String::from))
        .expect("a tool_use block");
    let follow = json!({"model": "claude", "max_tokens": 256, "tools": tools, "messages": [
        {"role": "user", "content": ask},
        {"role": "assistant", "content": content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id,
            "content": [{"type": "text", "text": "sunny"}]}]}]});
    let answer = server.messages(follow).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    (answer.text(), id)
}

#[actix_rt::test]
async fn claude_a_parked_tool_turn_continues_as_a_replay_would() {
    let parking = real(|_| {}).await;
    let replaying = real(|s| s.pool.park_conversations = false).await;
    let (a, b) = (token(), token());
    let (parked_answer, id_a) = tool_round_trip(&parking, &a).await;
    let (replayed_answer, id_b) = tool_round_trip(&replaying, &b).await;
    assert_eq!(parked_answer, "MOCK_OK: TOOL_RESULT: sunny");
    assert_eq!(parked_answer, replayed_answer);
    assert_eq!(parking.hits_and_misses(None).await, (1, 0));
    assert_eq!(replaying.hits_and_misses(None).await, (0, 0));
    let last = |tok: &str| -> Value {
        let bodies = mock().requests_with(tok);
        let body = bodies
            .last()
            .expect("the continuation went upstream")
            .clone();
        json!({"system": body["system"], "messages": body["messages"], "tools": body["tools"]})
    };
    // The mock numbers its tool calls: the ids are the one difference allowed.
    let parked = last(&a).to_string().replace(&id_a, "ID");
    let replayed = last(&b).to_string().replace(&b, &a).replace(&id_b, "ID");
    assert_eq!(parked, replayed, "what reached the model differs");
    parking.stop().await;
    replaying.stop().await;
}
