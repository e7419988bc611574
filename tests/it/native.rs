//! The native REST API, model listing, token counting and backend routing, on the fake CLI.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

fn no_other_clis(s: &mut clinvoker::config::Settings) {
    s.backends.codex.command = "/nonexistent/codex".into();
    s.backends.gemini.command = "/nonexistent/gemini".into();
}

#[actix_rt::test]
async fn prompt_answers_as_json_and_as_ndjson() {
    let server = TestServer::fake(|_| {}).await;
    let r = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "hello", "system_prompt": "Be brief."}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["backend"], "claude");
    assert!(
        r.body["output"]
            .as_str()
            .expect("output")
            .starts_with("echo: hello | history:  | system: Be brief."),
        "{}",
        r.raw
    );
    assert_eq!(r.body["token_usage"]["total_tokens"], 18);

    let r = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "one two three", "output_format": "stream-json"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let lines: Vec<Value> = r
        .raw
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON line"))
        .collect();
    let deltas = lines.iter().filter(|l| l["type"] == "text_delta").count();
    assert!(deltas >= 3, "{lines:?}");
    let last = lines.last().expect("lines");
    assert_eq!(last["type"], "result");
    assert!(last["result"]["output"]
        .as_str()
        .expect("output")
        .starts_with("echo: one two three"));
    server.stop().await;
}

#[actix_rt::test]
async fn parallel_runs_through_the_pool_within_its_limits() {
    let server = TestServer::fake(|s| {
        s.pool.max_processes = 2;
        s.pool.min_idle = 2;
    })
    .await;
    server.wait_idle(2).await;
    let most = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (url, most) = (server.url("/admin/pools"), most.clone());
        actix_rt::spawn(async move {
            for _ in 0..60 {
                let pools: Value = client()
                    .get(&url)
                    .send()
                    .await
                    .expect("get")
                    .json()
                    .limit(1 << 20)
                    .await
                    .expect("json");
                let live = pools["pools"][0]["processes"]
                    .as_array()
                    .map_or(0, Vec::len);
                most.fetch_max(live, Ordering::SeqCst);
                actix_rt::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    let tasks: Vec<Value> = (0..6)
        .map(|i| json!({"prompt": format!("FAKE_SLEEP_300 task{i}")}))
        .collect();
    let r = server
        .post("/api/v1/parallel", json!({"tasks": tasks}))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["succeeded"], 6);
    assert_eq!(
        (r.body["total_tasks"].clone(), r.body["completed"].clone()),
        (json!(6), json!(6))
    );
    for (i, t) in r.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .enumerate()
    {
        assert_eq!(t["index"], i);
        assert!(t["output"]
            .as_str()
            .expect("output")
            .starts_with(&format!("echo: FAKE_SLEEP_300 task{i}")));
    }
    let ms = r.body["total_duration_ms"].as_u64().expect("duration");
    assert!(
        ms >= 900,
        "6 tasks of 300 ms on 2 processes take 3 rounds: {ms} ms"
    );
    watcher.await.expect("watcher");
    assert!(
        most.load(Ordering::SeqCst) <= 2,
        "never more than max_processes live processes"
    );

    let r = server
        .post("/api/v1/parallel", json!({"tasks": [{"prompt": "FAKE_API_ERROR_400 x"}, {"prompt": "never runs"}], "max_parallel": 1, "fail_fast": true}))
        .await;
    assert_eq!(
        (r.body["succeeded"].clone(), r.body["failed"].clone()),
        (json!(0), json!(2)),
        "{}",
        r.raw
    );
    assert_eq!(r.body["results"][0]["error_type"], "invalid_request_error");
    assert_eq!(r.body["results"][1]["exit_code"], 1);
    server.stop().await;
}

#[actix_rt::test]
async fn chain_passes_the_previous_output_on() {
    let server = TestServer::fake(|_| {}).await;
    let r = server
        .post("/api/v1/chain", json!({"steps": [{"name": "a", "prompt": "first"}, {"name": "b", "prompt": "second <{{previous}}>"}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["completed"], true);
    let second = r.body["steps"][1]["result"]["output"]
        .as_str()
        .expect("output");
    assert!(
        second.starts_with("echo: second <echo: first | history:"),
        "{second}"
    );

    let r = server
        .post(
            "/api/v1/chain",
            json!({"steps": [{"prompt": "FAKE_API_ERROR_400"}, {"prompt": "not reached"}]}),
        )
        .await;
    assert_eq!(
        r.body["steps"].as_array().map(Vec::len),
        Some(1),
        "stops on failure: {}",
        r.raw
    );
    assert_eq!(r.body["completed"], false);
    server.stop().await;
}

#[actix_rt::test]
async fn compare_and_routing_name_backends_that_are_not_installed() {
    let server = TestServer::fake(no_other_clis).await;
    let r = server
        .post(
            "/api/v1/compare",
            json!({"prompt": "hi", "backends": ["claude", "codex"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["results"][0]["ok"], true);
    assert_eq!(r.body["results"][1]["ok"], false);
    let msg = r.body["results"][1]["error"]["message"]
        .as_str()
        .expect("message");
    assert!(msg.contains("backend codex is not installed"), "{msg}");

    let mut gpt = user("hi");
    gpt["model"] = json!("gpt-4o");
    let msg = server
        .messages(gpt)
        .await
        .anthropic_error(404, "not_found_error");
    assert!(msg.contains("codex"), "{msg}");
    let msg = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "x", "model": "gemini-2.5-pro"}),
        )
        .await
        .body["error"]["message"]
        .to_string();
    assert!(msg.contains("backend gemini is not installed"), "{msg}");

    let backends = server.get("/api/v1/backends").await;
    let list = backends["backends"].as_array().expect("list");
    assert_eq!(list[0]["name"], "claude");
    assert_eq!(list[0]["found"], true);
    assert_eq!(list[0]["version"], "0.0.0 (fake-claude)");
    assert!(list[0]["models"]
        .as_array()
        .expect("models")
        .contains(&json!("claude-sonnet-4")));
    assert_eq!(
        (list[1]["name"].clone(), list[1]["found"].clone()),
        (json!("codex"), json!(false))
    );
    server.stop().await;
}

#[actix_rt::test]
async fn workdir_and_agentic_profile_follow_the_rules() {
    let allowed = tempfile::tempdir().expect("tmp");
    let inside = allowed.path().join("project");
    std::fs::create_dir_all(&inside).expect("mkdir");
    let root = allowed.path().to_path_buf();
    let server = TestServer::fake(move |s| s.server.allowed_workdir_prefixes = vec![root]).await;
    let ok = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "in dir", "workdir": inside}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.raw);
    let pools = server.get("/admin/pools").await.to_string();
    assert!(
        pools.contains("claude/dir-"),
        "a pool of its own for the workdir: {pools}"
    );
    let out = server
        .post("/api/v1/prompt", json!({"prompt": "x", "workdir": "/etc"}))
        .await;
    assert_eq!(out.status, 400);
    assert!(
        out.body["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("allowed_workdir_prefixes"),
        "{}",
        out.raw
    );
    let agentic = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "x", "profile": "agentic"}),
        )
        .await;
    assert_eq!(agentic.status, 400);
    assert!(
        agentic.raw.contains("profiles.agentic.enabled"),
        "{}",
        agentic.raw
    );
    let bad = server
        .post(
            "/api/v1/prompt",
            json!({"prompt": "x", "output_format": "yaml"}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.raw);
    server.stop().await;
}

#[actix_rt::test]
async fn models_are_listed_and_tokens_estimated_in_anthropic_shapes() {
    let server = TestServer::fake(|_| {}).await;
    for path in ["/anthropic/v1/models", "/anthropic/v1/v1/models"] {
        let list = server.get(path).await;
        let ids: Vec<&str> = list["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        assert!(
            ids.contains(&"claude") && ids.contains(&"claude-sonnet-4"),
            "{list}"
        );
        assert_eq!(list["has_more"], false);
        assert_eq!(list["data"][0]["type"], "model");
    }
    assert_eq!(
        server.get("/anthropic/v1/models/claude").await["id"],
        "claude"
    );
    let missing = client()
        .get(server.url("/anthropic/v1/models/nope"))
        .send()
        .await
        .expect("get")
        .status();
    assert_eq!(missing, 404);
    let r = server
        .post(
            "/anthropic/v1/messages/count_tokens",
            json!({"model": "claude", "messages": [{"role": "user", "content": "12345678"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["input_tokens"], 6);
    assert_eq!(
        r.headers
            .get("x-clinvoker-token-count")
            .and_then(|v| v.to_str().ok()),
        Some("estimate")
    );
    server.stop().await;
}
