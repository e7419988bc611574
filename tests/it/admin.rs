//! The admin API on the fake CLI: authentication, and every action observed through
//! `/admin/pools` and `/admin/requests`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

async fn admin_post(server: &TestServer, path: &str, body: Value) -> Reply {
    server.post(path, body).await
}

fn default_pool(pools: &Value) -> &Value {
    pools["pools"]
        .as_array()
        .expect("pools")
        .iter()
        .find(|p| p["id"] == "default")
        .expect("default pool")
}

/// `Authorization: Basic` with `key` as the password, as a browser sends it.
fn basic(key: &str) -> String {
    use base64::Engine;
    let pair = format!("anyone:{key}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[actix_rt::test]
async fn admin_keys_are_separate_from_user_keys() {
    let server = TestServer::fake(|s| {
        s.server.api_keys = vec!["user-key".into()];
        s.server.admin_keys = vec!["admin-key".into()];
    })
    .await;
    let status = |key: Option<&'static str>, path: &'static str| {
        let server = &server;
        async move {
            let headers = key.map(|k| ("x-api-key", k));
            get_with(&server.url(path), headers.as_slice())
                .await
                .status
                .as_u16()
        }
    };
    assert_eq!(
        status(None, "/admin/pools").await,
        401,
        "loopback opens nothing"
    );
    assert_eq!(
        status(Some("user-key"), "/admin/pools").await,
        401,
        "a user key does not open /admin"
    );
    assert_eq!(status(Some("admin-key"), "/admin/pools").await, 200);
    assert_eq!(status(Some("admin-key"), "/metrics").await, 200);
    assert_eq!(status(Some("user-key"), "/metrics").await, 401);
    let as_user = post_json(
        &server.url("/anthropic/v1/messages"),
        user("x"),
        &[("x-api-key", "admin-key")],
    )
    .await;
    as_user.anthropic_error(401, "authentication_error");
    server.stop().await;
}

#[actix_rt::test]
async fn the_dashboard_page_asks_a_browser_for_the_admin_key() {
    let server = TestServer::fake(|s| {
        s.server.api_keys = vec!["user-key".into()];
        s.server.admin_keys = vec!["admin-key".into()];
    })
    .await;
    let challenge = |r: &Reply| {
        r.headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    for header in [None, Some(basic("user-key")), Some(basic("wrong"))] {
        let headers = header.as_deref().map(|h| ("authorization", h));
        let r = get_with(&server.url("/admin"), headers.as_slice()).await;
        assert_eq!(r.status.as_u16(), 401, "{header:?}: {}", r.raw);
        assert_eq!(r.body["error"]["type"], "authentication_error", "{}", r.raw);
        assert_eq!(
            challenge(&r).as_deref(),
            Some("Basic realm=\"clinvoker admin\""),
            "{header:?}"
        );
    }
    let page = get_with(
        &server.url("/admin"),
        &[("authorization", &basic("admin-key"))],
    )
    .await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.raw);
    assert!(page.raw.contains("<html"), "the dashboard page");
    // The page's own requests carry the browser's Basic credentials; only the page challenges.
    let data = get_with(
        &server.url("/admin/pools"),
        &[("authorization", &basic("admin-key"))],
    )
    .await;
    assert_eq!(data.status.as_u16(), 200, "{}", data.raw);
    let refused = get_with(&server.url("/admin/pools"), &[]).await;
    assert_eq!(refused.status.as_u16(), 401);
    assert_eq!(
        challenge(&refused),
        None,
        "no login prompt for the page's fetches"
    );
    // Basic works wherever a key does.
    let api = post_json(
        &server.url("/anthropic/v1/messages"),
        user("x"),
        &[("authorization", &basic("user-key"))],
    )
    .await;
    assert_eq!(api.status.as_u16(), 200, "{}", api.raw);
    server.stop().await;
}

#[actix_rt::test]
async fn user_keys_without_admin_keys_close_the_operators_routes_even_on_loopback() {
    let server = TestServer::fake(|s| s.server.api_keys = vec!["user-key".into()]).await;
    for path in ["/admin/pools", "/metrics", "/admin"] {
        for key in [None, Some("user-key")] {
            let headers = key.map(|k| ("x-api-key", k));
            let r = get_with(&server.url(path), headers.as_slice()).await;
            assert_eq!(r.status.as_u16(), 403, "{path} {key:?}: {}", r.raw);
            assert_eq!(r.body["error"]["type"], "permission_error", "{}", r.raw);
            let message = r.body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("CLINVOKER__SERVER__ADMIN_KEYS"),
                "says how to set one: {message}"
            );
            assert!(
                r.headers.get("www-authenticate").is_none(),
                "no key would do"
            );
        }
    }
    let kill = post_json(
        &server.url("/admin/processes/1/kill"),
        json!({}),
        &[("x-api-key", "user-key")],
    )
    .await;
    assert_eq!(kill.status.as_u16(), 403, "{}", kill.raw);
    // The encoded spelling of a route is the route.
    let encoded = get_with(&server.url("/%61dmin/pools"), &[("x-api-key", "user-key")]).await;
    assert_eq!(encoded.status.as_u16(), 403, "{}", encoded.raw);
    server.stop().await;
}

#[actix_rt::test]
async fn pools_show_processes_with_proc_figures_and_counters() {
    let server = TestServer::fake(|_| {}).await;
    server.wait_idle(1).await;
    assert_eq!(server.messages(user("one")).await.status, 200);
    assert_eq!(
        server.messages(user("FAKE_API_ERROR_500 two")).await.status,
        502
    );
    // The answer reaches the client before the process has reset and reported the turn.
    let pools = server
        .wait_for(
            "both turns counted",
            |p| default_pool(p)["counters"]["resets"] == 2,
            "/admin/pools",
        )
        .await;
    let pool = default_pool(&pools);
    assert_eq!(
        (
            pool["counters"]["served"].clone(),
            pool["counters"]["failed"].clone()
        ),
        (json!(1), json!(1)),
        "{pool}"
    );
    assert_eq!(pool["latency_ms"]["count"], 1);
    assert!(pool["latency_ms"]["p50"].as_u64().is_some());
    assert!(
        pool["recent_errors"][0]["message"]
            .as_str()
            .expect("error")
            .contains("API Error: 500"),
        "{pool}"
    );
    let p = &pool["processes"][0];
    assert!(p["rss_bytes"].as_u64().expect("rss") > 100_000, "{p}");
    assert!(p["cpu_secs"].as_f64().is_some(), "{p}");
    assert_eq!(p["resets"], 2);
    assert_eq!(server.get("/admin/pools/default").await["id"], "default");
    let missing = client()
        .get(server.url("/admin/pools/nope"))
        .send()
        .await
        .expect("get")
        .status();
    assert_eq!(missing, 404);
    server.stop().await;
}

#[actix_rt::test]
async fn drain_and_resume_a_pool() {
    let server = TestServer::fake(|_| {}).await;
    server.wait_idle(1).await;
    let drained = admin_post(&server, "/admin/pools/default/drain", json!({})).await;
    assert_eq!(drained.status, 200, "{}", drained.raw);
    assert_eq!(drained.body["draining"], true);
    server
        .wait_for(
            "processes gone",
            |p| {
                default_pool(p)["processes"]
                    .as_array()
                    .is_some_and(Vec::is_empty)
            },
            "/admin/pools",
        )
        .await;
    let refused = server.messages(user("while drained")).await;
    refused.anthropic_error(503, "overloaded_error");
    assert!(refused.headers.get("retry-after").is_some());
    let resumed = admin_post(&server, "/admin/pools/default/resume", json!({})).await;
    assert_eq!(resumed.body["draining"], false);
    server.wait_idle(1).await;
    assert_eq!(server.messages(user("after")).await.status, 200);
    server.stop().await;
}

#[actix_rt::test]
async fn resize_changes_limits_at_runtime() {
    let server = TestServer::fake(|s| s.pool.max_total_processes = 4).await;
    server.wait_idle(1).await;
    let bad = admin_post(
        &server,
        "/admin/pools/default/resize",
        json!({"max_processes": 1, "min_idle": 2}),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.raw);
    let r = admin_post(
        &server,
        "/admin/pools/default/resize",
        json!({"max_processes": 3, "min_idle": 3}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        (
            r.body["limits"]["max_processes"].clone(),
            r.body["limits"]["min_idle"].clone()
        ),
        (json!(3), json!(3))
    );
    server.wait_idle(3).await;
    let r = admin_post(
        &server,
        "/admin/pools/default/resize",
        json!({"max_processes": 1, "min_idle": 1}),
    )
    .await;
    assert_eq!(r.status, 200);
    server
        .wait_for(
            "back to one process",
            |p| default_pool(p)["processes"].as_array().map(Vec::len) == Some(1),
            "/admin/pools",
        )
        .await;
    server.stop().await;
}

#[actix_rt::test]
async fn recycle_and_kill_replace_one_process() {
    let server = TestServer::fake(|_| {}).await;
    server.wait_idle(1).await;
    for action in ["recycle", "kill"] {
        let before = server.get("/admin/pools/default").await;
        let (id, pid) = (
            before["processes"][0]["id"].as_u64().expect("id"),
            before["processes"][0]["pid"].as_u64().expect("pid"),
        );
        let r = admin_post(
            &server,
            &format!("/admin/processes/{id}/{action}"),
            json!({}),
        )
        .await;
        assert_eq!(r.status, 200, "{action}: {}", r.raw);
        assert_eq!(r.body["pid"], pid);
        server
            .wait_for(
                &format!("a new process after {action}"),
                |p| {
                    p["processes"].as_array().is_some_and(|ps| {
                        ps.len() == 1 && ps[0]["pid"] != pid && ps[0]["state"] == "idle"
                    })
                },
                "/admin/pools/default",
            )
            .await;
        assert!(!pid_alive(pid), "{action}: the old process is gone");
    }
    let after = server.get("/admin/pools/default").await;
    assert_eq!(after["counters"]["recycled"], 1, "{after}");
    let missing = admin_post(&server, "/admin/processes/999/kill", json!({})).await;
    assert_eq!(missing.status, 404);
    server.stop().await;
}

#[actix_rt::test]
async fn requests_are_listed_and_can_be_cancelled() {
    let server = TestServer::fake(|s| s.pool.max_processes = 1).await;
    server.wait_idle(1).await;
    let url = server.url("/anthropic/v1/messages");
    let running = actix_rt::spawn({
        let url = url.clone();
        async move {
            post_json(
                &url,
                user("FAKE_SLEEP_5000 running"),
                &[("x-request-id", "run-1")],
            )
            .await
        }
    });
    // One after the other: the first must be running before the second arrives.
    server
        .wait_for(
            "run-1 running",
            |r| r.to_string().contains("run-1"),
            "/admin/requests",
        )
        .await;
    let queued = actix_rt::spawn(async move {
        post_json(&url, user("queued"), &[("x-request-id", "wait-1")]).await
    });
    let list = server
        .wait_for(
            "one running, one queued",
            |r| r["requests"].as_array().map(Vec::len) == Some(2),
            "/admin/requests",
        )
        .await;
    let by_id = |id: &str| {
        list["requests"]
            .as_array()
            .expect("list")
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .expect(id)
    };
    let run = by_id("run-1");
    assert_eq!(
        (
            run["state"].clone(),
            run["dialect"].clone(),
            run["model"].clone()
        ),
        (json!("running"), json!("anthropic"), json!("claude"))
    );
    assert!(run["pid"].as_u64().is_some());
    assert_eq!(by_id("wait-1")["state"], "queued");

    let c = admin_post(&server, "/admin/requests/wait-1/cancel", json!({})).await;
    assert_eq!(c.body, json!({"cancelled": "wait-1", "was": "queued"}));
    let c = admin_post(&server, "/admin/requests/run-1/cancel", json!({})).await;
    assert_eq!(c.body, json!({"cancelled": "run-1", "was": "running"}));
    for task in [running, queued] {
        let reply = actix_rt::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("answered promptly")
            .expect("task");
        assert!(reply
            .anthropic_error(503, "api_error")
            .contains("cancelled by an administrator"));
    }
    assert_eq!(
        admin_post(&server, "/admin/requests/nope/cancel", json!({}))
            .await
            .status,
        404
    );
    server.wait_idle(1).await;
    assert_eq!(
        server.messages(user("after")).await.status,
        200,
        "the process was interrupted, not lost"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn metrics_count_requests_and_pool_events() {
    let server = TestServer::fake(|_| {}).await;
    server.wait_idle(1).await;
    assert_eq!(server.messages(streaming("metered")).await.status, 200);
    let needles = [
        r#"clinvoker_http_requests_total{dialect="anthropic",model="claude",route="/anthropic/v1/messages",status="200"} 1"#,
        r#"clinvoker_pool_events_total{event="served",pool="claude/default"} 1"#,
        r#"clinvoker_pool_processes{pool="claude/default",state="idle"} 1"#,
        r#"clinvoker_upstream_tokens_total{kind="output",model="sonnet"} 7"#,
        "clinvoker_time_to_first_token_seconds_count",
    ];
    // The turn is counted once its process has reset, just after the answer went out.
    let start = std::time::Instant::now();
    loop {
        let body = client()
            .get(server.url("/metrics"))
            .send()
            .await
            .expect("get")
            .body()
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&body).into_owned();
        match needles.iter().find(|n| !text.contains(**n)) {
            None => break,
            Some(missing) if start.elapsed() > Duration::from_secs(5) => {
                panic!("missing {missing} in:\n{text}")
            }
            Some(_) => actix_rt::time::sleep(Duration::from_millis(50)).await,
        }
    }
    server.stop().await;
}
