//! Pools, limits and failures, on the fake CLI (fast and deterministic).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

#[actix_rt::test]
async fn history_system_prompt_and_model_reach_the_process() {
    let server = TestServer::fake(|_| {}).await;
    let reply = server
        .messages(
            json!({"model": "claude-sonnet-4", "max_tokens": 64, "system": "Be brief.",
            "messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                         {"role": "user", "content": "q2"}]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let text = reply.text();
    assert!(
        text.starts_with(
            "echo: q2 | history: u:q1,a:a1 | system: Be brief. | model: claude-sonnet-4-20250514"
        ),
        "{text}"
    );
    assert_eq!(
        reply.body["model"], "claude-sonnet-4",
        "echoes the requested name"
    );
    assert_eq!(reply.body["usage"]["output_tokens"], 7);
    assert!(reply.headers.get("request-id").is_some());
    server.stop().await;
}

#[actix_rt::test]
async fn conversations_do_not_see_each_other() {
    let server = TestServer::fake(|s| s.pool.max_processes = 1).await;
    server.wait_idle(1).await;
    let first = server.messages(user("secret-one")).await;
    assert!(first.text().contains("history:  |"), "{}", first.text());
    let second = server.messages(user("two")).await;
    assert!(
        second.text().starts_with("echo: two | history:  |"),
        "reset between requests: {}",
        second.text()
    );
    // The answer reaches the client before the process has reported the turn.
    server
        .wait_for(
            "both turns counted",
            |p| p.to_string().contains("\"turns\":2"),
            "/admin/pools",
        )
        .await;
    let procs = server.processes().await;
    assert_eq!(
        procs.iter().filter(|p| p["turns"] == 2).count(),
        1,
        "the same process served both: {procs:?}"
    );
    // The first conversation stayed parked until the second needed the process: then it was
    // reset, and the second is parked now.
    assert_eq!(procs[0]["resets"], 1, "{procs:?}");
    assert_eq!(procs[0]["parked"].as_array().map(Vec::len), Some(1));
    server.stop().await;
}

#[actix_rt::test]
async fn streaming_sends_incremental_deltas_then_closing_events() {
    let server = TestServer::fake(|_| {}).await;
    let reply = server.messages(streaming("one two three")).await;
    assert_eq!(reply.status, 200);
    let events = parse_sse(&reply.raw);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let deltas = names
        .iter()
        .filter(|n| **n == "content_block_delta")
        .count();
    assert!(deltas >= 5, "one delta per word, not one chunk: {names:?}");
    assert_eq!(events[0].1["message"]["model"], "claude");
    assert_eq!(
        events[events.len() - 2].1["delta"]["stop_reason"],
        "end_turn"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn limits_queue_and_refuse_without_hanging() {
    let server = TestServer::fake(|s| {
        s.pool.max_processes = 2;
        s.pool.max_queue = 2;
        s.pool.min_idle = 2;
    })
    .await;
    server.wait_idle(2).await;
    let url = server.url("/anthropic/v1/messages");
    let slow: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            actix_rt::spawn(async move {
                post_json(&url, user(&format!("FAKE_SLEEP_1500 n{i}")), &[]).await
            })
        })
        .collect();
    server
        .wait_for(
            "2 queued",
            |h| h["queued"] == 2 && h["busy"] == 2,
            "/health",
        )
        .await;
    let started = Instant::now();
    let refused = server.messages(user("one too many")).await;
    refused.anthropic_error(529, "overloaded_error");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refusal is immediate"
    );
    assert!(refused.headers.get("retry-after").is_some());
    let procs = server.processes().await;
    assert!(procs.len() <= 2, "never more than max_processes: {procs:?}");
    for (i, task) in slow.into_iter().enumerate() {
        let reply = task.await.expect("task");
        assert_eq!(reply.status, 200, "{}", reply.raw);
        assert!(
            reply
                .text()
                .starts_with(&format!("echo: FAKE_SLEEP_1500 n{i}")),
            "each gets its own answer"
        );
    }
    server.stop().await;
}

#[actix_rt::test]
async fn queue_timeout_answers_529() {
    let server = TestServer::fake(|s| {
        s.pool.max_processes = 1;
        s.pool.queue_timeout_secs = 1;
    })
    .await;
    server.wait_idle(1).await;
    let url = server.url("/anthropic/v1/messages");
    let busy = actix_rt::spawn(async move { post_json(&url, user("FAKE_SLEEP_2500"), &[]).await });
    server.wait_for("busy", |h| h["busy"] == 1, "/health").await;
    let started = Instant::now();
    let reply = server.messages(user("waits")).await;
    let msg = reply.anthropic_error(529, "overloaded_error");
    assert!(msg.contains("within 1s"), "{msg}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(busy.await.expect("task").status, 200);
    server.stop().await;
}

#[actix_rt::test]
async fn turn_timeout_interrupts_and_the_process_is_reused() {
    let server = TestServer::fake(|s| {
        s.server.request_timeout_secs = 1;
        s.pool.max_processes = 1;
    })
    .await;
    server.wait_idle(1).await;
    let pid = server.processes().await[0]["pid"].clone();
    let reply = server.messages(user("FAKE_SLEEP_5000")).await;
    reply.anthropic_error(504, "timeout_error");
    let after = server.messages(user("after")).await;
    assert!(
        after.text().starts_with("echo: after | history:  |"),
        "clean after the interrupt: {}",
        after.text()
    );
    assert_eq!(
        server.processes().await[0]["pid"],
        pid,
        "interrupted, not killed"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn hung_process_is_killed_and_replaced() {
    let server = TestServer::fake(|s| {
        s.server.request_timeout_secs = 1;
        s.pool.max_processes = 1;
    })
    .await;
    server.wait_idle(1).await;
    let pid = server.processes().await[0]["pid"].as_u64().expect("pid");
    let reply = server.messages(user("FAKE_HANG")).await;
    reply.anthropic_error(504, "timeout_error");
    let after = server.messages(user("after")).await;
    assert_eq!(after.status, 200, "{}", after.raw);
    let new_pid = server.processes().await[0]["pid"].as_u64().expect("pid");
    assert_ne!(new_pid, pid, "the hung process was replaced");
    assert!(!pid_alive(pid), "and it is gone, reaped");
    server.stop().await;
}

#[actix_rt::test]
async fn crash_mid_turn_fails_only_that_request() {
    let server = TestServer::fake(|s| s.pool.min_idle = 2).await;
    server.wait_idle(2).await;
    let url = server.url("/anthropic/v1/messages");
    let bystander =
        actix_rt::spawn(
            async move { post_json(&url, user("FAKE_SLEEP_700 bystander"), &[]).await },
        );
    let crashed = server.messages(user("FAKE_CRASH")).await;
    let msg = crashed.anthropic_error(502, "api_error");
    assert!(msg.contains("exited"), "{msg}");
    let streamed = server.messages(streaming("FAKE_CRASH")).await;
    assert_eq!(streamed.status, 200, "the stream had started");
    let events = parse_sse(&streamed.raw);
    let (last, data) = events.last().expect("events");
    assert_eq!(last, "error", "a final error event: {events:?}");
    assert_eq!(data["error"]["type"], "api_error");
    let b = bystander.await.expect("task");
    assert!(
        b.text().starts_with("echo: FAKE_SLEEP_700 bystander"),
        "{}",
        b.raw
    );
    server.wait_idle(2).await;
    assert_eq!(server.messages(user("after")).await.status, 200);
    server.stop().await;
}

#[actix_rt::test]
async fn garbage_on_stdout_is_a_clean_error() {
    let server = TestServer::fake(|s| s.pool.max_processes = 1).await;
    let msg = server
        .messages(user("FAKE_GARBAGE"))
        .await
        .anthropic_error(502, "api_error");
    assert!(
        msg.contains("not-JSON") || msg.contains("non-JSON"),
        "{msg}"
    );
    assert_eq!(server.messages(user("after")).await.status, 200);
    server.stop().await;
}

#[actix_rt::test]
async fn a_cli_that_never_becomes_ready_is_reported() {
    let server = TestServer::fake(|s| {
        s.backends.claude.extra_args = vec!["--fake-never-ready".into()];
        s.pool.ready_timeout_secs = 1;
    })
    .await;
    let started = Instant::now();
    let msg = server
        .messages(user("hello"))
        .await
        .anthropic_error(503, "api_error");
    assert!(msg.contains("did not become ready within 1s"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let health = server.get("/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    server.stop().await;
}

#[actix_rt::test]
async fn a_cli_that_exits_at_start_or_is_missing_is_reported() {
    let server =
        TestServer::fake(|s| s.backends.claude.extra_args = vec!["--fake-exit-at-start=2".into()])
            .await;
    let msg = server
        .messages(user("hello"))
        .await
        .anthropic_error(503, "api_error");
    assert!(
        msg.contains("exit status: 2") && msg.contains("told to fail at start"),
        "{msg}"
    );
    server.stop().await;

    let server =
        TestServer::fake(|s| s.backends.claude.command = "/nonexistent/claude".into()).await;
    let health = server.get("/health").await;
    assert_eq!(health["backends"]["claude"]["found"], false);
    assert_eq!(health["status"], "degraded");
    let msg = server
        .messages(user("hello"))
        .await
        .anthropic_error(503, "api_error");
    assert!(msg.contains("/nonexistent/claude"), "{msg}");
    server.stop().await;
}

#[actix_rt::test]
async fn client_disconnect_interrupts_and_returns_the_process() {
    let server = TestServer::fake(|s| {
        s.pool.max_processes = 1;
        s.backends.claude.extra_args = vec!["--fake-delay-ms=200".into()];
    })
    .await;
    server.wait_idle(1).await;
    let pid = server.processes().await[0]["pid"].clone();
    let seen = read_then_disconnect(
        &server.url("/anthropic/v1/messages"),
        streaming("a b c d e f g h"),
        "content_block_delta",
    )
    .await;
    assert!(seen.contains("message_start"));
    let procs = server
        .wait_for(
            "the process back to idle",
            |p| p["pools"][0]["processes"][0]["state"] == "idle",
            "/admin/pools",
        )
        .await;
    assert_eq!(
        procs["pools"][0]["processes"][0]["pid"], pid,
        "interrupted and reset, not killed"
    );
    assert_eq!(
        procs["pools"][0]["counters"]["cancelled"], 1,
        "the cut turn counts as cancelled"
    );
    let after = server.messages(user("after")).await;
    assert!(
        after.text().starts_with("echo: after | history:  |"),
        "{}",
        after.text()
    );
    server.stop().await;
}

#[actix_rt::test]
async fn process_is_recycled_after_max_turns() {
    let server = TestServer::fake(|s| {
        s.pool.max_processes = 1;
        s.pool.max_turns_per_process = 2;
    })
    .await;
    server.wait_idle(1).await;
    let pid = server.processes().await[0]["pid"].clone();
    for i in 0..2 {
        assert_eq!(server.messages(user(&format!("m{i}"))).await.status, 200);
    }
    let third = server.messages(user("m2")).await;
    assert_eq!(third.status, 200, "{}", third.raw);
    let procs = server
        .wait_for(
            "the recycled process gone",
            |p| !p.to_string().contains(&format!("\"pid\":{pid},")),
            "/admin/pools",
        )
        .await;
    assert!(
        procs.to_string().contains("\"turns\":1"),
        "a new process served the third: {procs}"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn upstream_errors_keep_their_meaning() {
    let server = TestServer::fake(|_| {}).await;
    let r = server.messages(user("FAKE_API_ERROR_529")).await;
    r.anthropic_error(529, "overloaded_error");
    assert!(r.headers.get("retry-after").is_some());
    server
        .messages(user("FAKE_API_ERROR_429"))
        .await
        .anthropic_error(429, "rate_limit_error");
    server
        .messages(user("FAKE_API_ERROR_400"))
        .await
        .anthropic_error(400, "invalid_request_error");
    server
        .messages(user("FAKE_API_ERROR_500"))
        .await
        .anthropic_error(502, "api_error");
    assert_eq!(
        server.messages(user("fine")).await.status,
        200,
        "and the pool is healthy after"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn a_probed_spare_serves_a_new_system_prompt() {
    let server = TestServer::fake(|s| s.pool.spare_processes = 1).await;
    let spare = server
        .wait_for(
            "the spare probed",
            |p| p["processes"][0]["state"] == "idle",
            "/admin/pools/spare",
        )
        .await;
    let pid = spare["processes"][0]["pid"].clone();
    let reply = server
        .messages(
            json!({"model": "claude", "max_tokens": 16, "system": "Fresh prompt.",
        "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert!(
        reply.text().contains("system: Fresh prompt."),
        "{}",
        reply.raw
    );
    let pools = server.get("/admin/pools").await;
    let bound = pools["pools"]
        .as_array()
        .expect("pools")
        .iter()
        .find(|p| p["system_prompt"] == "Fresh prompt.")
        .expect("its pool");
    assert_eq!(
        bound["processes"][0]["pid"], pid,
        "the warm spare took it: no cold start"
    );
    server.stop().await;
}
