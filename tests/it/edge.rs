//! The HTTP edge: bad input, routes, API keys — each answered in the Anthropic error shape, with
//! the server unharmed.

use serde_json::json;

use crate::support::*;

#[actix_rt::test]
async fn bad_input_gets_anthropic_errors_and_the_server_keeps_serving() {
    let server = TestServer::fake(|s| s.server.max_body_bytes = 4096).await;
    let url = server.url("/anthropic/v1/messages");
    let raw = client()
        .post(&url)
        .insert_header(("content-type", "application/json"))
        .send_body("{not json")
        .await
        .expect("post")
        .status();
    assert_eq!(raw, 400);
    let cases = [
        (
            json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (
            json!({"model": "claude", "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens",
        ),
        (
            json!({"model": "claude", "max_tokens": 5, "messages": []}),
            "messages",
        ),
        (
            json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]}),
            "messages.0.role",
        ),
        (
            json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": 42}]}),
            "messages.0.content",
        ),
    ];
    for (body, needle) in cases {
        let msg = server
            .messages(body)
            .await
            .anthropic_error(400, "invalid_request_error");
        assert!(msg.contains(needle), "{msg}");
    }
    let big = user(&"x".repeat(8192));
    server
        .messages(big)
        .await
        .anthropic_error(413, "request_too_large");
    let mut resp = client().get(&url).send().await.expect("get");
    assert_eq!(resp.status(), 405);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let nf = server.post("/anthropic/v1/nothing", json!({})).await;
    nf.anthropic_error(404, "not_found_error");
    let native = server.post("/nothing", json!({})).await;
    assert_eq!(native.status, 404);
    assert_eq!(
        native.body["error"]["type"], "not_found_error",
        "{}",
        native.raw
    );
    let ok = server.messages(user("still fine")).await;
    assert_eq!(ok.status, 200, "{}", ok.raw);
    server.stop().await;
}

#[actix_rt::test]
async fn the_paths_the_sdks_reach_are_served() {
    let server = TestServer::fake(|_| {}).await;
    for path in [
        "/anthropic/v1/messages",
        "/anthropic/v1/v1/messages",
        "/anthropic/v1/messages?beta=true",
    ] {
        let r = server.post(path, user("p")).await;
        assert_eq!(r.status, 200, "{path}: {}", r.raw);
    }
    server.stop().await;
}

#[actix_rt::test]
async fn api_keys_guard_every_route() {
    let server =
        TestServer::fake(|s| s.server.api_keys = vec!["k-one".into(), "k-two".into()]).await;
    let url = server.url("/anthropic/v1/messages");
    let none = post_json(&url, user("x"), &[]).await;
    assert!(none
        .anthropic_error(401, "authentication_error")
        .contains("missing"));
    let wrong = post_json(&url, user("x"), &[("x-api-key", "nope")]).await;
    wrong.anthropic_error(401, "authentication_error");
    assert_eq!(
        post_json(&url, user("x"), &[("x-api-key", "k-one")])
            .await
            .status,
        200
    );
    assert_eq!(
        post_json(&url, user("x"), &[("authorization", "Bearer k-two")])
            .await
            .status,
        200
    );
    // Probes carry no keys; the API's description is not public once keys are set.
    assert_eq!(get_with(&server.url("/health"), &[]).await.status, 200);
    let doc = get_with(&server.url("/openapi.json"), &[]).await;
    assert_eq!(doc.status, 401, "{}", doc.raw);
    assert_eq!(doc.body["error"]["type"], "authentication_error");
    let doc = get_with(&server.url("/openapi.json"), &[("x-api-key", "k-one")]).await;
    assert_eq!(doc.status, 200);
    let unknown = get_with(&server.url("/no/such/route"), &[]).await;
    assert_eq!(
        unknown.status, 401,
        "unknown routes answer no one without a key"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn client_request_ids_are_kept() {
    let server = TestServer::fake(|_| {}).await;
    let r = post_json(
        &server.url("/anthropic/v1/messages"),
        json!({"model": "claude"}),
        &[("x-request-id", "my-id-42")],
    )
    .await;
    assert_eq!(
        r.headers.get("request-id").and_then(|v| v.to_str().ok()),
        Some("my-id-42")
    );
    assert_eq!(r.body["request_id"], "my-id-42", "and in the error body");
    server.stop().await;
}

#[actix_rt::test]
async fn ready_waits_for_warm_processes_and_early_requests_wait_too() {
    let server = TestServer::fake(|s| {
        s.pool.max_queue = 0;
        s.pool.max_processes = 1;
        s.backends.claude.extra_args = vec!["--fake-start-delay-ms=1500".into()];
    })
    .await;
    let early = client()
        .get(server.url("/ready"))
        .send()
        .await
        .expect("GET /ready");
    assert_eq!(early.status(), 503, "not warm yet");
    assert_eq!(
        server.get("/health").await["status"],
        "ok",
        "alive all the same"
    );
    // Sent before the only process is ready: it waits for it instead of a 529.
    let reply = server.messages(user("early bird")).await;
    assert_eq!(reply.status, 200, "{}", reply.raw);
    let ready = server.get("/ready").await;
    assert_eq!(ready["ready"], true, "{ready}");
    server.stop().await;
}

#[actix_rt::test]
async fn every_response_names_its_instance() {
    let named = TestServer::fake(|s| s.server.instance_name = "node-a".into()).await;
    let reply = named.messages(user("hi")).await;
    assert_eq!(
        reply
            .headers
            .get("x-clinvoker-instance")
            .map(|v| v.as_bytes()),
        Some(&b"node-a"[..])
    );
    let missing = client()
        .get(named.url("/no/such/route"))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        missing
            .headers()
            .get("x-clinvoker-instance")
            .map(|v| v.as_bytes()),
        Some(&b"node-a"[..])
    );
    named.stop().await;

    let server = TestServer::fake(|_| {}).await;
    server.wait_idle(1).await;
    let reply = server.messages(user("hi")).await;
    let host_port = server.base.trim_start_matches("http://").to_string();
    assert_eq!(
        reply
            .headers
            .get("x-clinvoker-instance")
            .map(|v| v.to_str().unwrap_or_default().to_string()),
        Some(host_port),
        "by default host:port as bound"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn a_drained_instance_refuses_new_turns_finishes_running_ones_and_resumes() {
    let server = TestServer::fake(|_| {}).await;
    server.wait_idle(1).await;
    assert_eq!(server.get("/ready").await["ready"], true);
    let url = server.url("/anthropic/v1/messages");
    let running = actix_rt::spawn(async move {
        post_json(&url, user("FAKE_SLEEP_800 begun before the drain"), &[]).await
    });
    server
        .wait_for(
            "the turn running",
            |r| r["requests"].as_array().map(Vec::len) == Some(1),
            "/admin/requests",
        )
        .await;

    let drained = server.post("/admin/instance/drain", json!({})).await;
    assert_eq!(drained.body["ready"], false, "{}", drained.raw);
    assert_eq!(drained.body["reasons"][0], "drained by an operator");
    let ready = client()
        .get(server.url("/ready"))
        .send()
        .await
        .expect("GET");
    assert_eq!(ready.status(), 503);
    // A 503 (what a load balancer retries on another instance), in the route's dialect.
    let refused = server.messages(user("a new turn")).await;
    let message = refused.anthropic_error(503, "overloaded_error");
    assert!(message.contains("drained"), "{message}");
    assert_eq!(
        refused.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"5"[..])
    );
    let openai = post_json(
        &server.url("/openai/v1/chat/completions"),
        json!({"model": "claude", "messages": [{"role": "user", "content": "x"}]}),
        &[],
    )
    .await;
    assert_eq!(openai.status, 503, "{}", openai.raw);
    assert_eq!(openai.body["error"]["code"], "overloaded", "{}", openai.raw);

    let finished = running.await.expect("the running turn");
    assert_eq!(finished.status, 200, "{}", finished.raw);
    assert!(finished.text().starts_with("echo: FAKE_SLEEP_800 begun"));
    // The pools stay warm while drained: resuming needs no cold start.
    assert_eq!(
        server.get("/admin/pools").await["pools"][0]["processes"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let resumed = server.post("/admin/instance/resume", json!({})).await;
    assert_eq!(resumed.body["ready"], true, "{}", resumed.raw);
    assert_eq!(server.messages(user("served again")).await.status, 200);
    server.stop().await;
}
