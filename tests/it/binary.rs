//! The `clinvoker` binary itself: configuration layering and graceful shutdown on a signal.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

const CLINVOKER: &str = env!("CARGO_BIN_EXE_clinvoker");

#[test]
fn environment_overrides_the_defaults_and_bad_values_refuse_to_start() {
    let out = Command::new(CLINVOKER)
        .arg("config")
        .env("CLINVOKER__POOL__MAX_PROCESSES", "7")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let settings: Value = serde_json::from_slice(&out.stdout).expect("JSON settings");
    assert_eq!(settings["pool"]["max_processes"], 7);
    assert_eq!(settings["server"]["port"], 8080, "the rest stays default");

    let out = Command::new(CLINVOKER)
        .args(["serve", "--port", "0"])
        .env("CLINVOKER__POOL__MAX_PROCESSES", "0")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pool.max_processes"), "{err}");
}

#[test]
fn sigterm_lets_the_running_turn_finish_and_leaves_no_process_behind() {
    let state = tempfile::tempdir().expect("tmp");
    let mut server = Command::new(CLINVOKER)
        .args(["serve", "--port", "0"])
        .env("CLINVOKER__BACKENDS__CLAUDE__COMMAND", FAKE_CLAUDE)
        .env("CLINVOKER__SERVER__STATE_DIR", state.path())
        .env("CLINVOKER__POOL__MIN_IDLE", "2")
        .env("CLINVOKER__POOL__SPARE_PROCESSES", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server starts");
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let base = line.trim().rsplit(' ').next().expect("url").to_string();

    let sys = actix_rt::System::new();
    sys.block_on(async move {
        let get = |p: &str| {
            let url = format!("{base}{p}");
            async move {
                client()
                    .get(url)
                    .send()
                    .await
                    .expect("get")
                    .json::<Value>()
                    .await
                    .expect("json")
            }
        };
        let start = Instant::now();
        while get("/health").await["idle"].as_u64() < Some(2) {
            assert!(start.elapsed() < Duration::from_secs(10), "pool warms up");
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        let url = format!("{base}/anthropic/v1/messages");
        let slow = actix_rt::spawn(async move {
            post_json(&url, user("FAKE_SLEEP_1500 finish me"), &[]).await
        });
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        let pools = get("/admin/pools").await;
        let pids: Vec<u64> = pools["pools"]
            .as_array()
            .expect("pools")
            .iter()
            .flat_map(|p| p["processes"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["pid"].as_u64())
            .collect();
        assert_eq!(pids.len(), 3, "two warm processes and a spare: {pools}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(server.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("signal");
        let reply = slow.await.expect("task");
        assert_eq!(
            reply.status, 200,
            "the in-flight turn finished: {}",
            reply.raw
        );
        assert!(reply.text().starts_with("echo: FAKE_SLEEP_1500 finish me"));
        let start = Instant::now();
        let status = loop {
            if let Some(status) = server.try_wait().expect("wait") {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "server exits after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status}");
        for pid in pids {
            assert!(!pid_alive(pid), "process {pid} outlived the server");
        }
    });
}
