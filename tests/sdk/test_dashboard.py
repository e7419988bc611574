"""The dashboard in headless Chromium (Debian's `chromium`), while requests run on the fake CLI:
the rendered tiles match /admin/pools, and a screenshot is taken. With UPDATE_SCREENSHOT=1 the
screenshot replaces docs/dashboard.png (the README's picture)."""

import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO, Server

FAKE_CLAUDE = REPO / "target" / "debug" / "fake-claude"
CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium(tmp_path, *args):
    profile = tmp_path / ("profile-%d" % time.monotonic_ns())
    run = subprocess.run([CHROMIUM, *FLAGS, "--user-data-dir=%s" % profile, *args],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def pools(server):
    with urllib.request.urlopen(server.url + "/admin/pools", timeout=10) as r:
        return json.load(r)


def tiles_of(pools_json):
    return {(p["pid"], p["state"]) for pool in pools_json["pools"] for p in pool["processes"]}


def slow_request(server):
    """A request that runs until the test cancels it (or 60 s pass): the pools stay busy for as
    long as the browser takes, however slow it starts."""
    body = json.dumps({"model": "claude", "max_tokens": 16,
                       "messages": [{"role": "user", "content": "FAKE_SLEEP_60000 dashboard"}]}).encode()
    req = urllib.request.Request(server.url + "/anthropic/v1/messages", body, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=90) as r:
            r.read()
    except urllib.error.HTTPError:
        pass  # cancelled by the test, as intended


def cancel_running(server):
    with urllib.request.urlopen(server.url + "/admin/requests", timeout=10) as r:
        running = [q["id"] for q in json.load(r)["requests"] if q["state"] == "running"]
    for rid in running:
        req = urllib.request.Request(server.url + "/admin/requests/%s/cancel" % rid, b"", method="POST")
        urllib.request.urlopen(req, timeout=10).read()


def test_dashboard_shows_the_pools_live(sdk_env, tmp_path):
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: the test command installs Debian's chromium package")
    server = Server(tmp_path, sdk_env.mock, "dashboard", {
        "CLINVOKER__BACKENDS__CLAUDE__COMMAND": str(FAKE_CLAUDE),
        "CLINVOKER__POOL__MIN_IDLE": "3",
        "CLINVOKER__POOL__MAX_PROCESSES": "3",
    })
    try:
        deadline = time.monotonic() + 15
        while sum(1 for _, s in tiles_of(pools(server)) if s == "idle") < 4:  # 3 warm + the spare
            assert time.monotonic() < deadline, pools(server)
            time.sleep(0.1)
        workers = [threading.Thread(target=slow_request, args=(server,)) for _ in range(2)]
        for w in workers:
            w.start()
        while sum(1 for _, s in tiles_of(pools(server)) if s == "busy") < 2:
            assert time.monotonic() < deadline, pools(server)
            time.sleep(0.05)

        url = server.url + "/admin"
        before = tiles_of(pools(server))
        dom = chromium(tmp_path, "--virtual-time-budget=4000", "--dump-dom", url)
        after = tiles_of(pools(server))
        shot = tmp_path / "dashboard.png"
        chromium(tmp_path, "--virtual-time-budget=4000", "--window-size=1400,900", "--screenshot=%s" % shot, url)
        cancel_running(server)
        for w in workers:
            w.join(30)
    finally:
        stop_error = server.wait_stopped()

    rendered = int(re.search(r'<body[^>]*data-rendered="(\d+)"', dom).group(1))
    assert rendered >= 1, dom[:2000]
    shown = set((int(pid), state) for pid, state in
                re.findall(r'class="tile" data-pid="(\d+)" data-state="(\w+)"', dom))
    assert before == after, "the pools changed during the snapshot; the requests should still run"
    assert shown == before, (shown, before)
    assert sum(1 for _, s in shown if s == "busy") == 2
    assert 'data-pool="default"' in dom and 'data-pool="spare"' in dom
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copy(shot, REPO / "docs" / "dashboard.png")
    assert stop_error is None, stop_error


def test_dashboard_logs_in_with_the_admin_key_when_keys_are_set(sdk_env, tmp_path):
    """Keys configured: the page answers 401 with a Basic challenge, the browser logs in with the
    admin key as password, and the page's own polls carry that login (a stale key in the page's
    key field does not spoil it)."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: the test command installs Debian's chromium package")
    server = Server(tmp_path, sdk_env.mock, "dashboard-keys", {
        "CLINVOKER__BACKENDS__CLAUDE__COMMAND": str(FAKE_CLAUDE),
        "CLINVOKER_API_KEYS": "dash-user-key",
        "CLINVOKER_ADMIN_KEYS": "dash-admin-key",
    })
    try:
        try:
            urllib.request.urlopen(server.url + "/admin", timeout=10)
            pytest.fail("the page answered without a login")
        except urllib.error.HTTPError as e:
            refused = (e.code, e.headers.get("www-authenticate"))
        logged_in = "http://anyone:dash-admin-key@127.0.0.1:%d/admin?key=stale-key" % server.port
        dom = chromium(tmp_path, "--virtual-time-budget=4000", "--dump-dom", logged_in)
    finally:
        stop_error = server.wait_stopped()
    assert refused == (401, 'Basic realm="clinvoker admin"'), refused
    # Several renders: the login outlived the first round of polls.
    rendered = int(re.search(r'<body[^>]*data-rendered="(\d+)"', dom).group(1))
    assert rendered >= 3, dom[:2000]
    assert 'data-pool="default"' in dom and 'class="tile"' in dom, dom[:2000]
    assert stop_error is None, stop_error
