//! Client tools on the fake Codex CLI over HTTP, in both dialects: the tool-use answer (parallel
//! calls in one answer), the follow-up that continues the parked tool turn on its thread (a hit
//! of the codex pool) or, without parking or after the parked turn was forgotten, replays the
//! tool history as function call items into a new thread.

use serde_json::{json, Value};

use crate::support::*;
use clinvoker::config::Settings;

const ASK: &str = r#"weather? FAKE_TOOL:get_weather:{"city":"Paris"}"#;

async fn server(park: bool, tool_result_timeout_secs: u64) -> TestServer {
    TestServer::fake(|s: &mut Settings| {
        s.backends.codex.command = FAKE_CODEX.to_string();
        s.backends.codex.conversations_per_process = 2;
        s.backends.codex.min_idle = 1;
        s.pool.max_processes = 1;
        s.pool.park_conversations = park;
        s.pool.tool_result_timeout_secs = tool_result_timeout_secs;
    })
    .await
}

fn ask(text: &str) -> Value {
    json!({"model": "gpt-5", "max_tokens": 64, "messages": [{"role": "user", "content": text}],
        "tools": [{"name": "get_weather", "description": "Get the weather.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]})
}

/// The follow-up to `ask(ASK)` answered with `content`: its calls' results.
fn follow_up(content: &Value, results: &[&str]) -> Value {
    let blocks: Vec<Value> = content
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "tool_use")
        .zip(results)
        .map(|(b, r)| json!({"type": "tool_result", "tool_use_id": b["id"], "content": r}))
        .collect();
    let mut body = ask(ASK);
    body["messages"] = json!([{"role": "user", "content": ASK},
        {"role": "assistant", "content": content}, {"role": "user", "content": blocks}]);
    body
}

/// The codex pool's counters.
async fn codex_counters(server: &TestServer) -> Value {
    let pools = server.get("/admin/pools").await;
    pools["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["id"] == "codex-default")
        .map(|p| p["counters"].clone())
        .unwrap_or_else(|| panic!("the codex pool: {pools}"))
}

#[actix_rt::test]
async fn a_parked_codex_tool_turn_is_answered_by_the_follow_up() {
    let server = server(true, 300).await;
    let first = server.messages(ask(ASK)).await;
    assert_eq!(first.status, 200, "{}", first.raw);
    assert_eq!(first.body["stop_reason"], "tool_use");
    let content = first.body["content"].clone();
    let call = &content[0];
    assert_eq!(
        (&call["type"], &call["name"], &call["input"]),
        (
            &json!("tool_use"),
            &json!("get_weather"),
            &json!({"city": "Paris"})
        ),
        "{content}"
    );
    let answer = server.messages(follow_up(&content, &["sunny"])).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body["stop_reason"], "end_turn");
    // The CLI's own turn went on: the call was answered with the client's result.
    assert_eq!(answer.text(), "tool results: get_weather=sunny");
    assert_eq!(codex_counters(&server).await["conversation_hits"], 1);
    server.stop().await;
}

#[actix_rt::test]
async fn parallel_codex_tool_calls_are_one_answer() {
    let server = server(true, 300).await;
    let two = r#"FAKE_TOOL:get_weather:{"city":"Paris"} FAKE_TOOL:get_weather:{"city":"Rome"}"#;
    let first = server.messages(ask(two)).await;
    assert_eq!(first.status, 200, "{}", first.raw);
    let cities: Vec<&Value> = first.body["content"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| &b["input"]["city"])
        .collect();
    assert_eq!(cities, [&json!("Paris"), &json!("Rome")], "{}", first.raw);
    let mut follow = follow_up(&first.body["content"], &["sunny", "rain"]);
    follow["messages"][0]["content"] = json!(two);
    let answer = server.messages(follow).await;
    assert_eq!(
        answer.text(),
        "tool results: get_weather=sunny, get_weather=rain"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn without_parking_the_codex_follow_up_replays_the_calls_as_items() {
    let server = server(false, 300).await;
    let first = server.messages(ask(ASK)).await;
    assert_eq!(first.body["stop_reason"], "tool_use", "{}", first.raw);
    let answer = server
        .messages(follow_up(&first.body["content"], &["sunny"]))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let text = answer.text();
    // No user message besides the results: the turn starts with `input: []`.
    assert!(
        text.starts_with(&format!(
            "echo:  | history: u:{ASK},call:get_weather,result:sunny | "
        )),
        "{text}"
    );
    assert_eq!(codex_counters(&server).await["conversation_hits"], 0);
    server.stop().await;
}

#[actix_rt::test]
async fn a_forgotten_codex_tool_turn_frees_its_thread_and_the_late_follow_up_is_replayed() {
    let server = server(true, 1).await;
    let first = server.messages(ask(ASK)).await;
    assert_eq!(first.body["stop_reason"], "tool_use", "{}", first.raw);
    let parked = |p: &Value| -> usize {
        p["pools"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|pool| pool["processes"].as_array().cloned().unwrap_or_default())
            .map(|proc| proc["parked"].as_array().map_or(0, Vec::len))
            .sum()
    };
    assert_eq!(parked(&server.get("/admin/pools").await), 1);
    server
        .wait_for(
            "the parked tool turn forgotten",
            |p| parked(p) == 0,
            "/admin/pools",
        )
        .await;
    let answer = server
        .messages(follow_up(&first.body["content"], &["sunny"]))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert!(
        answer.text().contains("call:get_weather,result:sunny"),
        "replayed: {}",
        answer.text()
    );
    server.stop().await;
}

#[actix_rt::test]
async fn openai_codex_tool_calls_round_trip() {
    let server = server(true, 300).await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let first = server
        .post(
            "/openai/v1/chat/completions",
            json!({"model": "gpt-5", "tools": tools,
                "messages": [{"role": "user", "content": ASK}]}),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.raw);
    let choice = &first.body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{}", first.raw);
    let call = choice["message"]["tool_calls"][0].clone();
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
    let reply = server
        .post(
            "/openai/v1/chat/completions",
            json!({"model": "gpt-5", "stream": true, "tools": tools, "messages": [
                {"role": "user", "content": ASK},
                {"role": "assistant", "content": null, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let text: String = openai_chunks(&reply.raw)
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(text, "tool results: get_weather=sunny");
    assert_eq!(codex_counters(&server).await["conversation_hits"], 1);
    server.stop().await;
}
