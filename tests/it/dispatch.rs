//! Which process serves a request, on the fake CLI: back-to-back requests stay on the process
//! that just served (waiting for its reset), but never longer than `pool.reuse_wait_ms`.

use serde_json::Value;

use crate::support::*;

/// `turns` of every process, ascending, once `total` turns have been reset after.
async fn turns_after(server: &TestServer, total: u64) -> Vec<u64> {
    let resets = |p: &Value| -> u64 {
        p["pools"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|pool| pool["processes"].as_array().cloned().unwrap_or_default())
            .map(|proc| proc["resets"].as_u64().unwrap_or(0))
            .sum()
    };
    server
        .wait_for("every turn reset", |p| resets(p) == total, "/admin/pools")
        .await;
    let mut turns: Vec<u64> = server
        .processes()
        .await
        .iter()
        .map(|p| p["turns"].as_u64().expect("turns"))
        .collect();
    turns.sort_unstable();
    turns
}

#[actix_rt::test]
async fn back_to_back_requests_wait_for_the_process_that_just_served() {
    let server = TestServer::fake(|s| {
        s.pool.max_processes = 3;
        s.pool.min_idle = 3;
        s.pool.max_total_processes = 3;
        // Each reset takes 200 ms; the next request arrives long before it ends.
        s.backends.claude.extra_args = vec!["--fake-reset-delay-ms=200".into()];
        s.pool.reuse_wait_ms = 5_000;
        // Reset after every turn: parked conversations would keep new ones off the process.
        s.pool.park_conversations = false;
    })
    .await;
    server.wait_idle(3).await;
    for i in 0..4 {
        let r = server.messages(user(&format!("back to back {i}"))).await;
        assert_eq!(r.status, 200, "{}", r.raw);
    }
    assert_eq!(turns_after(&server, 4).await, vec![0, 0, 4]);
    server.stop().await;
}

#[actix_rt::test]
async fn a_slow_reset_is_waited_for_only_reuse_wait_ms() {
    let server = TestServer::fake(|s| {
        s.pool.max_processes = 2;
        s.pool.min_idle = 2;
        s.pool.max_total_processes = 2;
        s.backends.claude.extra_args = vec!["--fake-reset-delay-ms=2000".into()];
        s.pool.interrupt_grace_secs = 10; // the reset watchdog must not fire
        s.pool.reuse_wait_ms = 100;
        s.pool.park_conversations = false;
    })
    .await;
    server.wait_idle(2).await;
    assert_eq!(server.messages(user("first")).await.status, 200);
    // The first process resets for 2 s; the second request waits 100 ms for it, then takes the
    // other process (had it waited for the reset, the first process would have served both).
    let r = server.messages(user("second")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(turns_after(&server, 2).await, vec![1, 1]);
    server.stop().await;
}
