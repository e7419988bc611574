//! Sharing among clients on the fake CLI: a flood cannot starve a quiet client, per-client caps
//! and rate limits answer 429 with `retry-after`, the admin views and metrics label clients
//! without showing a key, and CORS answers the official SDKs' preflights for allowed origins only.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;

use crate::support::*;

const FLOOD: &str = "flood-secret-key";
const QUIET: &str = "quiet-secret-key";
const ADMIN: &str = "admin-secret-key";

fn keyed(s: &mut clinvoker::config::Settings) {
    s.server.api_keys = vec![FLOOD.into(), QUIET.into()];
    s.server.admin_keys = vec![ADMIN.into()];
}

async fn get_admin(server: &TestServer, path: &str) -> Value {
    get_with(&server.url(path), &[("x-api-key", ADMIN)])
        .await
        .body
}

#[actix_rt::test]
async fn a_quiet_client_waits_one_flood_turn_not_the_whole_flood() {
    const TURN_MS: u64 = 400;
    const FLOOD_REQUESTS: usize = 16;
    let server = TestServer::fake(|s| {
        keyed(s);
        s.pool.max_processes = 2;
        s.pool.min_idle = 2;
        s.pool.max_queue = 64;
        s.pool.reuse_wait_ms = 0;
        s.limits.keys.insert(
            "quiet".into(),
            clinvoker::config::KeyLimits {
                key: QUIET.into(),
                requests_per_minute: None,
                burst: None,
                max_concurrent: None,
                max_queued: None,
                weight: None,
            },
        );
    })
    .await;
    server.wait_idle(2).await;
    let url = server.url("/anthropic/v1/messages");
    let flood = join_all((0..FLOOD_REQUESTS).map(|i| {
        let body = user(&format!("flood {i} FAKE_SLEEP_{TURN_MS}"));
        let url = url.clone();
        async move { post_json(&url, body, &[("x-api-key", FLOOD)]).await }
    }));
    let quiet = async {
        actix_rt::time::sleep(Duration::from_millis(TURN_MS / 2)).await;
        // While the flood waits: the queue per client, labelled without the keys.
        let requests = get_admin(&server, "/admin/requests").await.to_string();
        let pools = get_admin(&server, "/admin/pools").await;
        let metrics = get_with(&server.url("/metrics"), &[("x-api-key", ADMIN)])
            .await
            .raw;
        let sent = Instant::now();
        let reply = post_json(&url, user("quiet one"), &[("x-api-key", QUIET)]).await;
        (sent.elapsed(), reply, requests, pools, metrics)
    };
    let (flood, (quiet_took, quiet, requests, pools, metrics)) = tokio::join!(flood, quiet);
    assert_eq!(quiet.status, 200, "{}", quiet.raw);
    // It arrives while the flood's first two turns run and takes the next free process: about
    // half a flood turn. First come, first served would make it wait for the whole flood
    // (16 × 400 ms / 2 processes = 3.2 s); the bound leaves room for a loaded machine.
    let bound = Duration::from_millis(2 * TURN_MS + 600);
    assert!(
        quiet_took < bound,
        "the quiet client waited {quiet_took:?}, more than one flood turn plus its own"
    );
    assert!(
        flood.iter().all(|r| r.status == 200),
        "the flood completes too"
    );
    let flood_id = clinvoker::limits::ClientId::of_key(FLOOD).to_string();
    for view in [&requests, &metrics, &pools.to_string()] {
        assert!(
            !view.contains(FLOOD) && !view.contains(QUIET),
            "a key shows: {view}"
        );
    }
    assert!(requests.contains(&flood_id), "{requests}");
    let clients = &pools["pools"][0]["clients"];
    assert_eq!(clients[0]["client"], flood_id.as_str(), "{clients}");
    assert!(clients[0]["queued"].as_u64() > Some(10), "{clients}");
    assert_eq!(clients[0]["running"], 2, "{clients}");
    let queued = format!("clinvoker_client_queued{{client=\"{flood_id}\"}}");
    assert!(metrics.contains(&queued), "{metrics}");
    let after = get_with(&server.url("/metrics"), &[("x-api-key", ADMIN)])
        .await
        .raw;
    assert!(
        after.contains("clinvoker_client_queue_wait_seconds_count{client=\"quiet\"} 1"),
        "{after}"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn a_client_over_its_caps_gets_429_with_retry_after_in_each_dialect() {
    let server = TestServer::fake(|s| {
        keyed(s);
        s.limits.max_concurrent = 1;
        s.limits.max_queued = 1;
    })
    .await;
    server.wait_idle(1).await;
    let anthropic = server.url("/anthropic/v1/messages");
    let openai = server.url("/openai/v1/chat/completions");
    let slow = |i: usize| user(&format!("capped {i} FAKE_SLEEP_600"));
    let running = join_all((0..2).map(|i| post_json(&anthropic, slow(i), &[("x-api-key", FLOOD)])));
    let refused = async {
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        let sent = Instant::now();
        let a = post_json(&anthropic, slow(3), &[("x-api-key", FLOOD)]).await;
        let o = post_json(&openai, slow(4), &[("x-api-key", FLOOD)]).await;
        let took = sent.elapsed();
        let other = post_json(&anthropic, user("another client"), &[("x-api-key", QUIET)]).await;
        (took, a, o, other)
    };
    let (ok, (took, a, o, other)) = tokio::join!(running, refused);
    assert!(
        ok.iter().all(|r| r.status == 200),
        "one runs, one waits: {ok:?}"
    );
    let msg = a.anthropic_error(429, "rate_limit_error");
    assert!(msg.contains("1 requests running and 1 waiting"), "{msg}");
    assert!(a.headers.get("retry-after").is_some(), "{:?}", a.headers);
    assert_eq!(o.status, 429, "{}", o.raw);
    assert_eq!(o.body["error"]["code"], "rate_limit_exceeded", "{}", o.raw);
    assert!(o.headers.get("retry-after").is_some());
    assert!(
        took < Duration::from_millis(500),
        "refused at once: {took:?}"
    );
    assert_eq!(other.status, 200, "other clients pass: {}", other.raw);
    server.stop().await;
}

#[actix_rt::test]
async fn a_rate_limited_client_gets_429_and_anthropics_ratelimit_headers() {
    let server = TestServer::fake(|s| {
        keyed(s);
        s.limits.requests_per_minute = 60;
        s.limits.burst = 2;
    })
    .await;
    let models = server.url("/anthropic/v1/models");
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.push(get_with(&models, &[("x-api-key", FLOOD)]).await);
    }
    let header = |r: &Reply, name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let remaining: Vec<String> = replies
        .iter()
        .map(|r| header(r, "anthropic-ratelimit-requests-remaining"))
        .collect();
    assert_eq!(remaining, ["1", "0", "0"]);
    assert_eq!(
        header(&replies[0], "anthropic-ratelimit-requests-limit"),
        "60"
    );
    let reset = header(&replies[0], "anthropic-ratelimit-requests-reset");
    assert!(
        reset.ends_with('Z') && reset.contains('T'),
        "RFC 3339: {reset}"
    );
    assert_eq!(replies[1].status, 200);
    let msg = replies[2].anthropic_error(429, "rate_limit_error");
    assert!(msg.contains("60 requests per minute"), "{msg}");
    assert!(!msg.contains(FLOOD), "{msg}");
    assert_eq!(header(&replies[2], "retry-after"), "1");
    let o = post_json(
        &server.url("/openai/v1/chat/completions"),
        user("x"),
        &[("x-api-key", FLOOD)],
    )
    .await;
    assert_eq!(o.status, 429, "{}", o.raw);
    assert_eq!(o.body["error"]["code"], "rate_limit_exceeded");
    assert!(
        header_absent(&o, "anthropic-ratelimit-requests-limit"),
        "Anthropic's headers on Anthropic routes only"
    );
    // Per key: the other client has its own bucket; probes and operators' routes count nothing.
    assert_eq!(get_with(&models, &[("x-api-key", QUIET)]).await.status, 200);
    assert_eq!(get_with(&server.url("/health"), &[]).await.status, 200);
    let metrics = get_with(&server.url("/metrics"), &[("x-api-key", ADMIN)])
        .await
        .raw;
    let id = clinvoker::limits::ClientId::of_key(FLOOD);
    let limited = format!("clinvoker_client_limited_total{{client=\"{id}\",limit=\"rate\"}} 2");
    assert!(metrics.contains(&limited), "{metrics}");
    server.stop().await;

    // A server without keys limits each remote address.
    let open = TestServer::fake(|s| {
        s.limits.requests_per_minute = 60;
        s.limits.burst = 1;
    })
    .await;
    let models = open.url("/anthropic/v1/models");
    assert_eq!(get_with(&models, &[]).await.status, 200);
    let msg = get_with(&models, &[])
        .await
        .anthropic_error(429, "rate_limit_error");
    assert!(msg.contains("client addr-127.0.0.1 "), "{msg}");
    open.stop().await;
}

fn header_absent(r: &Reply, name: &str) -> bool {
    r.headers.get(name).is_none()
}

/// An OPTIONS preflight as a browser sends it before the official SDK's POST.
async fn preflight(server: &TestServer, origin: &str) -> Reply {
    let headers = clinvoker::api::cors::SDK_HEADERS.join(",");
    let resp = client()
        .request(
            awc::http::Method::OPTIONS,
            server.url("/anthropic/v1/messages"),
        )
        .insert_header(("origin", origin))
        .insert_header(("access-control-request-method", "POST"))
        .insert_header(("access-control-request-headers", headers))
        .send()
        .await
        .expect("OPTIONS");
    let mut resp = resp;
    let body = resp.body().await.expect("body");
    Reply {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: Value::Null,
        raw: String::from_utf8_lossy(&body).into_owned(),
    }
}

#[actix_rt::test]
async fn cors_answers_the_sdks_preflight_for_allowed_origins_only() {
    const APP: &str = "https://app.example";
    let server = TestServer::fake(|s| {
        keyed(s);
        s.server.cors_allowed_origins = vec![APP.into()];
    })
    .await;
    let ok = preflight(&server, APP).await;
    assert_eq!(ok.status, 200, "{}", ok.raw);
    let allow = |r: &Reply, name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    assert_eq!(
        allow(&ok, "access-control-allow-origin").as_deref(),
        Some(APP)
    );
    let headers = allow(&ok, "access-control-allow-headers").unwrap_or_default();
    for h in [
        "x-api-key",
        "anthropic-dangerous-direct-browser-access",
        "x-stainless-os",
    ] {
        assert!(headers.contains(h), "{h} in {headers}");
    }
    let evil = preflight(&server, "https://evil.example").await;
    assert_eq!(evil.status, 400, "{}", evil.raw);
    assert!(header_absent(&evil, "access-control-allow-origin"));
    // The actual request carries the CORS headers, refusals included, so the page can read them.
    let reply = post_json(
        &server.url("/anthropic/v1/messages"),
        user("from a page"),
        &[("origin", APP), ("x-api-key", "wrong")],
    )
    .await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        allow(&reply, "access-control-allow-origin").as_deref(),
        Some(APP)
    );
    let exposed = allow(&reply, "access-control-expose-headers").unwrap_or_default();
    assert!(
        exposed.contains("request-id") && exposed.contains("retry-after"),
        "{exposed}"
    );
    server.stop().await;

    // No origins configured: no CORS headers at all.
    let plain = TestServer::fake(keyed).await;
    let r = preflight(&plain, APP).await;
    assert!(
        header_absent(&r, "access-control-allow-origin"),
        "{:?}",
        r.headers
    );
    plain.stop().await;
}
