//! The Codex backend on the fake app-server: both dialects, conversations sharing a process,
//! and every failure path. (The real CLI is driven in `real_codex`.)

use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// A server whose Codex pool is one fake process of `slots` conversations.
async fn codex_server(
    slots: usize,
    tweak: impl FnOnce(&mut clinvoker::config::Settings),
) -> TestServer {
    TestServer::fake(|s| {
        s.backends.codex.command = FAKE_CODEX.to_string();
        s.backends.codex.conversations_per_process = slots;
        s.backends.codex.min_idle = 1;
        s.pool.max_processes = 1;
        tweak(s);
    })
    .await
}

#[actix_rt::test]
async fn system_prompt_history_and_model_reach_a_codex_thread() {
    let server = codex_server(4, |_| {}).await;
    let reply = server
        .messages(
            json!({"model": "gpt-5", "max_tokens": 64, "system": "Be brief.",
            "messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                         {"role": "user", "content": "q2"}]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let text = reply.text();
    assert!(
        text.starts_with("echo: q2 | history: u:q1,a:a1 | system: Be brief."),
        "{text}"
    );
    assert!(text.contains("model: gpt-5"), "{text}");
    assert_eq!(reply.body["model"], "gpt-5", "echoes the requested name");
    assert!(
        reply.body["usage"]["output_tokens"].as_u64() > Some(0),
        "{}",
        reply.raw
    );
    // No system prompt: the configured base instructions replace Codex's own prompt.
    let plain = server.messages(user_of("codex", "hi")).await;
    assert!(
        plain
            .text()
            .contains("system: You are a helpful assistant."),
        "{}",
        plain.text()
    );
    assert!(
        plain.text().contains("model: gpt-5-codex"),
        "the table maps codex"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn both_dialects_stream_codex_answers() {
    let server = codex_server(4, |_| {}).await;
    let mut body = user_of("gpt-5", "stream me");
    body["stream"] = json!(true);
    let reply = server.messages(body).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let events = parse_sse(&reply.raw);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert!(text.starts_with("echo: stream me |"), "{text}");
    assert!(
        names
            .iter()
            .filter(|n| **n == "content_block_delta")
            .count()
            > 1,
        "incremental: {names:?}"
    );

    let reply = server
        .post(
            "/openai/v1/chat/completions",
            json!({"model": "gpt-5", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "oa"}]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let text = openai_stream_text(&reply.raw);
    assert!(
        text.starts_with("echo: oa |") && text.contains("system: S"),
        "{text}"
    );
    assert!(reply.raw.trim_end().ends_with("data: [DONE]"));
    server.stop().await;
}

#[actix_rt::test]
async fn eight_conversations_share_one_process_without_seeing_each_other() {
    let server = codex_server(8, |s| s.backends.codex.min_idle = 1).await;
    server
        .wait_for(
            "a warm codex process",
            |h| h["idle"].as_u64() >= Some(2),
            "/health",
        )
        .await;
    let url = server.url("/anthropic/v1/messages");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let url = url.clone();
            actix_rt::spawn(async move {
                let body = user_of("gpt-5", &format!("FAKE_SLEEP_400 secret-{i}"));
                (i, post_json(&url, body, &[]).await)
            })
        })
        .collect();
    // While they run, the one process holds all eight.
    let busy = server
        .wait_for(
            "8 slots in use",
            |p| p.to_string().contains("\"slots_in_use\":8"),
            "/admin/pools",
        )
        .await;
    assert!(busy.to_string().contains("\"slots\":8"), "{busy}");
    for task in tasks {
        let (i, reply) = task.await.expect("task");
        assert_eq!(reply.status, 200, "{}", reply.raw);
        let text = reply.text();
        assert!(
            text.starts_with(&format!("echo: FAKE_SLEEP_400 secret-{i} | history:  |")),
            "{text}"
        );
        for j in (0..8).filter(|j| *j != i) {
            assert!(
                !text.contains(&format!("secret-{j}")),
                "{i} saw {j}: {text}"
            );
        }
    }
    let procs = server.processes_of("codex").await;
    assert_eq!(procs.len(), 1, "{procs:?}");
    server
        .wait_for(
            "8 turns",
            |p| p.to_string().contains("\"turns\":8"),
            "/admin/pools",
        )
        .await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_timed_out_codex_turn_is_interrupted_and_the_process_kept() {
    let server = codex_server(4, |s| s.server.request_timeout_secs = 1).await;
    let first = server.messages(user_of("gpt-5", "warm")).await;
    assert_eq!(first.status, 200, "{}", first.raw);
    let pid = server.processes_of("codex").await[0]["pid"].clone();
    server
        .messages(user_of("gpt-5", "FAKE_SLEEP_5000"))
        .await
        .anthropic_error(504, "timeout_error");
    let after = server.messages(user_of("gpt-5", "after")).await;
    assert!(
        after.text().starts_with("echo: after | history:  |"),
        "{}",
        after.raw
    );
    assert_eq!(
        server.processes_of("codex").await[0]["pid"],
        pid,
        "interrupted, not killed"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn a_crash_fails_the_turns_of_that_process_and_it_is_replaced() {
    let server = codex_server(4, |_| {}).await;
    let first = server.messages(user_of("gpt-5", "warm")).await;
    assert_eq!(first.status, 200, "{}", first.raw);
    let pid = server.processes_of("codex").await[0]["pid"]
        .as_u64()
        .expect("pid");
    let url = server.url("/anthropic/v1/messages");
    let bystander = actix_rt::spawn(async move {
        post_json(&url, user_of("gpt-5", "FAKE_SLEEP_3000 same process"), &[]).await
    });
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let msg = server
        .messages(user_of("gpt-5", "FAKE_CRASH"))
        .await
        .anthropic_error(502, "api_error");
    assert!(msg.contains("codex process exited"), "{msg}");
    let b = bystander.await.expect("task");
    b.anthropic_error(502, "api_error");
    let after = server.messages(user_of("gpt-5", "after")).await;
    assert_eq!(after.status, 200, "{}", after.raw);
    let new_pid = server.processes_of("codex").await[0]["pid"]
        .as_u64()
        .expect("pid");
    assert_ne!(new_pid, pid);
    assert!(!pid_alive(pid));
    server.stop().await;
}

#[actix_rt::test]
async fn a_hung_codex_turn_gets_the_process_killed_and_replaced() {
    let server = codex_server(4, |s| s.server.request_timeout_secs = 1).await;
    let first = server.messages(user_of("gpt-5", "warm")).await;
    assert_eq!(first.status, 200, "{}", first.raw);
    let pid = server.processes_of("codex").await[0]["pid"]
        .as_u64()
        .expect("pid");
    let sent = std::time::Instant::now();
    server
        .messages(user_of("gpt-5", "FAKE_HANG"))
        .await
        .anthropic_error(504, "timeout_error");
    // The client hears of the timeout at the timeout; the process, which ignores the
    // interrupt, is killed `interrupt_grace` later and replaced.
    assert!(sent.elapsed() < std::time::Duration::from_millis(1900));
    let start = std::time::Instant::now();
    while server
        .processes_of("codex")
        .await
        .first()
        .and_then(|p| p["pid"].as_u64())
        == Some(pid)
    {
        assert!(
            start.elapsed().as_secs() < 10,
            "the hung process was not replaced"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!pid_alive(pid));
    let after = server.messages(user_of("gpt-5", "after")).await;
    assert_eq!(after.status, 200, "{}", after.raw);
    server.stop().await;
}

#[actix_rt::test]
async fn codex_garbage_and_upstream_errors_are_clean_errors() {
    let server = codex_server(4, |_| {}).await;
    let msg = server
        .messages(user_of("gpt-5", "FAKE_GARBAGE"))
        .await
        .anthropic_error(502, "api_error");
    assert!(msg.contains("broke protocol"), "{msg}");
    server
        .messages(user_of("gpt-5", "FAKE_API_ERROR_429"))
        .await
        .anthropic_error(429, "rate_limit_error");
    let reply = server
        .post(
            "/openai/v1/chat/completions",
            json!({"model": "gpt-5", "messages": [{"role": "user", "content": "FAKE_API_ERROR_401"}]}),
        )
        .await;
    // The upstream refused the server's own key: the client is not at fault (502), and the
    // message says what happened.
    assert_eq!(reply.status, 502, "{}", reply.raw);
    let message = reply.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("401"), "{}", reply.raw);
    assert_eq!(server.messages(user_of("gpt-5", "after")).await.status, 200);
    server.stop().await;
}

#[actix_rt::test]
async fn a_codex_request_without_the_cli_names_the_backend() {
    let server = TestServer::fake(|_| {}).await;
    let reply = server.messages(user_of("gpt-5", "hi")).await;
    let msg = reply.anthropic_error(404, "not_found_error");
    assert!(msg.contains("backend codex is not installed"), "{msg}");
    server.stop().await;
}

#[actix_rt::test]
async fn the_native_api_lists_compares_and_prompts_codex() {
    let server = codex_server(4, |_| {}).await;
    let list = server.get("/api/v1/backends").await;
    let codex = list["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .find(|b| b["name"] == "codex")
        .cloned()
        .expect("codex listed");
    assert_eq!(
        (codex["found"].clone(), codex["served"].clone()),
        (json!(true), json!(true)),
        "{codex}"
    );
    let compared = server
        .post(
            "/api/v1/compare",
            json!({"prompt": "same question", "backends": ["claude", "codex"]}),
        )
        .await;
    assert_eq!(compared.status, 200, "{}", compared.raw);
    let results = compared.body["results"].as_array().expect("results");
    for (result, backend) in results.iter().zip(["claude", "codex"]) {
        assert_eq!(result["backend"], backend);
        assert_eq!(result["ok"], true, "{result}");
        let output = result["result"]["output"].as_str().unwrap_or_default();
        assert!(output.starts_with("echo: same question |"), "{result}");
    }
    let prompt = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "p", "backend": "codex", "system_prompt": "S"}),
        )
        .await;
    assert_eq!(prompt.status, 200, "{}", prompt.raw);
    assert_eq!(prompt.body["backend"], "codex");
    assert!(
        prompt.body["output"]
            .as_str()
            .unwrap_or_default()
            .contains("system: S"),
        "{}",
        prompt.raw
    );
    let agentic = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "p", "backend": "codex", "profile": "agentic"}),
        )
        .await;
    assert_eq!(agentic.status, 400, "{}", agentic.raw);
    server.stop().await;
}
