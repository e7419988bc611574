//! Client tools over HTTP: a tool-use answer in both dialects (whole and streamed), the follow-up
//! that continues the parked tool turn (or, without parking, replays the tool history into a
//! clean process), tool-less pools left without the MCP server, the backend that cannot serve
//! tools (Gemini) refused — with the fake CLI, then once with the real one on the mock. Codex's
//! tools are in `codex_tools.rs`.

use serde_json::{json, Value};

use crate::real_cli::{real, token};
use crate::support::*;

fn weather() -> Value {
    json!([{"name": "get_weather", "description": "Get the weather.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"]}}])
}

fn with_tools(text: &str) -> Value {
    let mut body = user(text);
    body["tools"] = weather();
    body
}

#[actix_rt::test]
async fn a_parked_tool_turn_is_continued_by_the_follow_up_with_its_result() {
    tool_round_trip(true).await;
}

#[actix_rt::test]
async fn without_parking_the_follow_up_replays_the_tool_history() {
    tool_round_trip(false).await;
}

/// A tool-use answer, then the follow-up with its result: continued in the process that waits
/// on the call (`park`), or replayed into a clean conversation.
async fn tool_round_trip(park: bool) {
    let server = TestServer::fake(|s| s.pool.park_conversations = park).await;
    let ask = r#"weather? FAKE_TOOL:get_weather:{"city":"Paris"}"#;
    let first = server.messages(with_tools(ask)).await;
    assert_eq!(first.status, 200, "{}", first.raw);
    assert_eq!(first.body["stop_reason"], "tool_use");
    let content = first.body["content"].clone();
    assert_eq!(
        content[0],
        json!({"type": "text", "text": "Calling a tool."})
    );
    assert_eq!(
        (
            &content[1]["type"],
            &content[1]["name"],
            &content[1]["input"]
        ),
        (
            &json!("tool_use"),
            &json!("get_weather"),
            &json!({"city": "Paris"})
        )
    );
    let pools = server.get("/admin/pools").await.to_string();
    assert!(pools.contains("tools-"), "a tool pool: {pools}");
    let pids = server.pids_of("claude").await;

    let mut follow = with_tools(ask);
    follow["messages"] = json!([
        {"role": "user", "content": ask},
        {"role": "assistant", "content": content},
        {"role": "user", "content": [{"type": "tool_result",
            "tool_use_id": content[1]["id"], "content": "sunny"}]}]);
    let answer = server.messages(follow).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.body["stop_reason"], "end_turn");
    let text = answer.text();
    let counters = server.get("/admin/pools").await["pools"]
        .as_array()
        .and_then(|pools| {
            pools
                .iter()
                .find(|p| p["id"].as_str().is_some_and(|id| id.starts_with("tools-")))
        })
        .map(|p| p["counters"].clone())
        .expect("the tool pool");
    if park {
        // The CLI's own turn went on: the call was answered with the client's result.
        assert_eq!(text, "tools said: sunny", "{text}");
        assert_eq!(counters["conversation_hits"], 1, "{counters}");
    } else {
        assert!(
            text.starts_with("echo: [tool_result sunny] | history: u:weather?")
                && text.contains("a:Calling a tool. [tool_use get_weather]"),
            "{text}"
        );
        assert_eq!(counters["conversation_hits"], 0, "{counters}");
    }
    // The same process served both turns.
    assert_eq!(server.pids_of("claude").await, pids);
    server.stop().await;
}

#[actix_rt::test]
async fn openai_streams_parallel_tool_calls() {
    let server = TestServer::fake(|_| {}).await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": weather()[0]["input_schema"]}}]);
    let body = json!({"model": "claude", "stream": true, "tools": tools, "messages": [
        {"role": "user", "content":
            r#"FAKE_TOOL:get_weather:{"city":"Paris"} FAKE_TOOL:get_weather:{"city":"Rome"}"#}]});
    let reply = server.post("/openai/v1/chat/completions", body).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let chunks = openai_chunks(&reply.raw);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    let starts: Vec<(u64, &str)> = calls
        .iter()
        .filter(|c| c.get("id").is_some())
        .map(|c| {
            (
                c["index"].as_u64().unwrap_or(9),
                c["function"]["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(starts, [(0, "get_weather"), (1, "get_weather")]);
    let args = |i: u64| -> String {
        calls
            .iter()
            .filter(|c| c["index"] == i)
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect()
    };
    assert_eq!(
        (args(0), args(1)),
        (
            r#"{"city":"Paris"}"#.to_string(),
            r#"{"city":"Rome"}"#.to_string()
        )
    );
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("tool_calls")]);
    server.stop().await;
}

#[actix_rt::test]
async fn a_pool_without_tools_registers_no_mcp_server() {
    let server = TestServer::fake(|_| {}).await;
    let reply = server
        .messages(user(r#"FAKE_TOOL:get_weather:{"city":"Paris"}"#))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert!(
        reply.text().contains("No such tool available: get_weather"),
        "{}",
        reply.text()
    );
    server.stop().await;
}

#[actix_rt::test]
async fn tools_on_gemini_are_a_clear_400_in_each_dialect() {
    let server = TestServer::fake(|s| s.backends.gemini.command = FAKE_GEMINI.to_string()).await;
    let mut body = with_tools("x");
    body["model"] = json!("gemini-2.5-flash");
    let msg = server
        .messages(body)
        .await
        .anthropic_error(400, "invalid_request_error");
    assert!(msg.contains("gemini"), "{msg}");
    let reply = server
        .post(
            "/openai/v1/chat/completions",
            json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}]}),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.raw);
    assert_eq!(reply.body["error"]["param"], "tools");
    server.stop().await;
}

#[actix_rt::test]
async fn the_real_cli_advertises_the_tools_and_takes_the_replayed_results() {
    let server = real(|_| {}).await;
    let t = token();
    let ask = format!(r#"weather {t} TOOL:get_weather:{{"city":"Paris"}}"#);
    let mut body = with_tools(&ask);
    body["stream"] = json!(true);
    let reply = server.messages(body).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let events = parse_sse(&reply.raw);
    let start = events
        .iter()
        .find(|(_, d)| d["content_block"]["type"] == "tool_use")
        .expect("a tool_use block streamed");
    let id = start.1["content_block"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let delta = events
        .iter()
        .find(|(n, d)| n == "message_delta" && !d["delta"]["stop_reason"].is_null())
        .expect("message_delta");
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    let upstream = mock().requests_with(&t);
    assert_eq!(
        upstream[0]["tools"][0]["name"], "get_weather",
        "{}",
        upstream[0]["tools"]
    );

    let mut follow = with_tools(&ask);
    follow["messages"] = json!([
        {"role": "user", "content": ask},
        {"role": "assistant", "content": [{"type": "tool_use", "id": id,
            "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id,
            "content": "sunny"}]}]);
    let answer = server.messages(follow).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.text(), "MOCK_OK: TOOL_RESULT: sunny");
    server.stop().await;
}

#[actix_rt::test]
async fn a_tool_turn_whose_results_never_come_is_ended_and_the_late_follow_up_replayed() {
    let server = TestServer::fake(|s| s.pool.tool_result_timeout_secs = 1).await;
    let ask = r#"weather? FAKE_TOOL:get_weather:{"city":"Paris"}"#;
    let first = server.messages(with_tools(ask)).await;
    assert_eq!(first.body["stop_reason"], "tool_use", "{}", first.raw);
    let parked = |p: &Value| -> Vec<Value> {
        p["pools"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|pool| pool["processes"].as_array().cloned().unwrap_or_default())
            .flat_map(|proc| proc["parked"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    let pools = server.get("/admin/pools").await;
    assert_eq!(parked(&pools).len(), 1, "{pools}");
    assert_eq!(parked(&pools)[0]["awaiting_tool_results"], 1);
    // The housekeeping tick forgets it after the timeout: interrupted and reset.
    server
        .wait_for(
            "the parked tool turn forgotten",
            |p| parked(p).is_empty(),
            "/admin/pools",
        )
        .await;
    let content = first.body["content"].clone();
    let mut follow = with_tools(ask);
    follow["messages"] = json!([
        {"role": "user", "content": ask},
        {"role": "assistant", "content": content},
        {"role": "user", "content": [{"type": "tool_result",
            "tool_use_id": content[1]["id"], "content": "sunny"}]}]);
    let answer = server.messages(follow).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert!(
        answer
            .text()
            .starts_with("echo: [tool_result sunny] | history: u:weather?"),
        "replayed: {}",
        answer.text()
    );
    server.stop().await;
}
