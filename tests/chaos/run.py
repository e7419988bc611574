#!/usr/bin/env python3
"""clinvoker's chaos suite: break things on purpose and measure the damage. Each scenario starts
the real `clinvoker` binary on a loopback port (the fake CLI `fake-claude`, or the real Claude
Code CLI on the mock upstream where its own behaviour matters), breaks something, and prints one
line of figures; the last line is `N passed, M failed`, and any failure exits non-zero.

Run from the repository root after `cargo build --all-targets`:  python3 tests/chaos/run.py
Stdlib only. Loopback only; every loop is bounded in count and time.
"""
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# CHAOS_BINARY measures another build (an older one, for a before/after figure).
BINARY = Path(os.environ.get("CHAOS_BINARY") or REPO / "target" / "debug" / "clinvoker")
FAKE = REPO / "target" / "debug" / "fake-claude"
CLAUDE = REPO / "tests" / "node" / "node_modules" / ".bin" / "claude"
MOCK = REPO / "tests" / "support" / "mock_anthropic.py"
WORK = Path(tempfile.mkdtemp(prefix="clinvoker-chaos-"))


class Failed(Exception):
    """A scenario's check failed; the message is its figure line."""


def check(cond, what):
    if not cond:
        raise Failed(what)


def clean_env():
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("CLINVOKER", "ANTHROPIC_", "CLAUDE_CODE_", "FAKE_CLAUDE")):
            del env[k]
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def marked(marker):
    """Live (non-zombie) pids whose environment carries CHAOS_RUN=marker: the server's children
    and anything they started inherit it."""
    pids = []
    needle = ("CHAOS_RUN=%s" % marker).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open("/proc/%s/stat" % entry) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        pids.append(int(entry))
    return pids


class Reply:
    def __init__(self, status, headers, body, took):
        self.status, self.headers, self.body, self.took = status, headers, body, took

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Server:
    """`clinvoker serve --port 0` with settings from the environment."""

    def __init__(self, name, settings, real=False):
        self.name = name
        self.marker = uuid.uuid4().hex
        env = clean_env()
        env["CHAOS_RUN"] = self.marker
        env["CLINVOKER__SERVER__STATE_DIR"] = str(WORK / name / "state")
        env["CLINVOKER__BACKENDS__CODEX__COMMAND"] = "/nonexistent/codex"
        env["CLINVOKER__BACKENDS__GEMINI__COMMAND"] = "/nonexistent/gemini"
        env["CLINVOKER__BACKENDS__CLAUDE__COMMAND"] = str(CLAUDE if real else FAKE)
        env["CLINVOKER__POOL__SPARE_PROCESSES"] = "0"
        env["CLINVOKER__POOL__INTERRUPT_GRACE_SECS"] = "1"
        if real:
            env["ANTHROPIC_BASE_URL"] = MOCK_UPSTREAM.url
            env["ANTHROPIC_API_KEY"] = "sk-test"
        for k, v in settings.items():
            env["CLINVOKER__" + k.upper().replace(".", "__")] = str(v)
        (WORK / name).mkdir(parents=True, exist_ok=True)
        self.log = WORK / name / "stderr.log"
        out = WORK / name / "stdout.log"
        with open(out, "wb") as o, open(self.log, "wb") as e:
            self.proc = subprocess.Popen([str(BINARY), "serve", "--port", "0"], stdout=o, stderr=e,
                                         stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 20
        while "listening on http://" not in out.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise Failed("%s: the server did not start:\n%s" % (name, self.tail()))
            time.sleep(0.02)
        self.port = int(out.read_text().splitlines()[0].rsplit(":", 1)[1])

    def tail(self, n=15):
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        hdrs = {"content-type": "application/json"}
        hdrs.update(headers or {})
        started = time.monotonic()
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw,
                         time.monotonic() - started)
        finally:
            conn.close()

    def get(self, path):
        return self.request("GET", path).json()

    def wait_for(self, what, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            health = self.get("/health")
            if pred(health):
                return health
            if time.monotonic() > deadline:
                raise Failed("%s: timed out waiting for %s: %s" % (self.name, what, health))
            time.sleep(0.05)

    def tracked(self):
        pools = self.get("/admin/pools")["pools"]
        return sorted(p["pid"] for pool in pools for p in pool["processes"] if p["pid"])

    def settle(self, min_idle):
        """Waits until nothing runs or starts and `min_idle` processes are idle; returns ms."""
        started = time.monotonic()
        self.wait_for("a settled pool", lambda h: h["busy"] == 0 and h["starting"] == 0
                      and h["queued"] == 0 and h["idle"] >= min_idle)
        return (time.monotonic() - started) * 1000

    def orphans(self):
        """Processes of this run that the server does not track (pids of the CLIs it tracks and
        their own children are expected)."""
        tracked = set(self.tracked())
        return [p for p in marked(self.marker) if p != self.proc.pid and p not in tracked
                and ppid(p) not in tracked]

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def stop(self):
        """SIGTERM; returns the exit status (killed after 15 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()
            return "hung"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self):
        """The end of a scenario: a graceful stop, then nothing of this run is left running."""
        self.stop()
        for pid in marked(self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def user(text, stream=False, model="claude"):
    return {"model": model, "max_tokens": 64, "stream": stream,
            "messages": [{"role": "user", "content": text}]}


def in_threads(fn, args):
    """Runs fn(arg) for every arg concurrently; returns the results in order."""
    results = [None] * len(args)

    def run(i, a):
        try:
            results[i] = fn(a)
        except Exception as e:  # a scenario judges the exception like any other outcome
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


class Stream:
    """An SSE request read line by line, which can be dropped mid-stream."""

    def __init__(self, server, body):
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        self.conn.request("POST", "/anthropic/v1/messages", body=json.dumps(body).encode(),
                          headers={"content-type": "application/json"})
        self.resp = self.conn.getresponse()
        self.seen = b""

    def read_until(self, needle):
        while needle.encode() not in self.seen:
            line = self.resp.fp.readline()
            if not line:
                return False
            self.seen += line
        return True

    def drop(self):
        self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


# ---------------------------------------------------------------------------------------------
# Scenarios: each returns its figure line, or raises Failed with one.

def kill9(real):
    n = 3 if real else 5
    s = Server("kill9-%s" % ("real" if real else "fake"), {
        "pool.max_processes": n, "pool.min_idle": n, "pool.max_total_processes": n}, real=real)
    try:
        s.settle(n)
        prompt = "HANGSTREAM hold on" if real else "FAKE_SLEEP_20000 hold on"
        replies = []
        sender = threading.Thread(target=lambda: replies.extend(in_threads(
            lambda i: s.request("POST", "/anthropic/v1/messages", user("%s %d" % (prompt, i))),
            list(range(n)))))
        sender.start()
        s.wait_for("%d busy processes" % n, lambda h: h["busy"] == n, timeout=20)
        victims = s.tracked()
        started = time.monotonic()
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        sender.join(30)
        errors_at = (time.monotonic() - started) * 1000
        clean = [r for r in replies if isinstance(r, Reply) and r.status == 502
                 and (r.json() or {}).get("error", {}).get("type") == "api_error"]
        recovered = s.settle(n)
        stuck = len(s.get("/admin/requests")["requests"])
        orphans = [p for p in victims if os.path.exists("/proc/%d" % p) and
                   "Z" not in open("/proc/%d/stat" % p).read().rsplit(")", 1)[1].split()[0]]
        orphans += s.orphans()
        fig = ("%d × kill -9 → %d clean errors (502 api_error, all within %.0f ms), %d stuck slots, "
               "%d orphans; pool whole again after %.0f ms" % (n, len(clean), errors_at, stuck,
                                                               len(orphans), recovered))
        check(len(clean) == n and stuck == 0 and not orphans, fig)
        ok = s.request("POST", "/anthropic/v1/messages", user("after the kills"))
        check(ok.status == 200, fig + "; then a request failed: %s" % ok.body[:200])
        return fig
    finally:
        s.close()


def disconnects(real):
    n = 4 if real else 10
    extra = {} if real else {"backends.claude.extra_args": "--fake-delay-ms=150"}
    s = Server("disconnect-%s" % ("real" if real else "fake"), dict(extra, **{
        "pool.max_processes": 4, "pool.min_idle": 2, "pool.max_total_processes": 4,
        "pool.max_queue": 64}), real=real)
    try:
        s.settle(2)
        text = "SLOW tell me a long story" if real else "tell me a long story please"

        def one(i):
            st = Stream(s, user("%s %d" % (text, i), stream=True))
            got = st.read_until("content_block_delta")
            st.drop()
            return got

        dropped = sum(1 for r in in_threads(one, list(range(n))) if r is True)
        freed = s.settle(2)
        leaked = s.get("/health")["busy"]
        fig = "%d mid-stream disconnects → %d leaked busy processes (all free %.0f ms after)" % (
            dropped, leaked, freed)
        check(dropped == n and leaked == 0 and not s.get("/admin/requests")["requests"], fig)
        return fig
    finally:
        s.close()


def fairness():
    """The issue's measurement: two keys share a 2-process pool; one sends 60 concurrent
    1.2-second requests, the other one request a second later."""
    flood_key, quiet_key = "chaos-flood-key", "chaos-quiet-key"
    s = Server("fairness", {"server.api_keys": "%s,%s" % (flood_key, quiet_key),
                            "pool.max_processes": 2, "pool.min_idle": 2, "pool.max_total_processes": 2,
                            "pool.max_queue": 64, "pool.queue_timeout_secs": 120})
    try:
        s.settle(2)
        post = lambda key, text: s.request("POST", "/anthropic/v1/messages", user(text),
                                           headers={"x-api-key": key}, timeout=120)
        alone = post(quiet_key, "quiet, alone").took
        quiet = []

        def late():
            time.sleep(1.0)
            quiet.append(post(quiet_key, "quiet, beside the flood"))

        waiter = threading.Thread(target=late)
        started = time.monotonic()
        waiter.start()
        flood = in_threads(lambda i: post(flood_key, "flood %d FAKE_SLEEP_1200" % i), list(range(60)))
        waiter.join(120)
        flood_took = time.monotonic() - started
        served = sum(1 for r in flood if isinstance(r, Reply) and r.status == 200)
        q = quiet[0] if quiet else None
        fig = ("60 × 1.2 s flood on 2 processes → the quiet client's request took %.2f s (%.0f ms alone, "
               "target ≤ 3 s); flood: %d of 60 served in %.1f s" % (
                   q.took if q else -1, alone * 1000, served, flood_took))
        check(q is not None and q.status == 200 and q.took <= 3.0 and served == 60, fig)
        return fig
    finally:
        s.close()


def overload():
    s = Server("overload", {"pool.max_processes": 1, "pool.min_idle": 1,
                            "pool.max_total_processes": 1, "pool.max_queue": 2})
    try:
        s.settle(1)
        replies = in_threads(lambda i: s.request("POST", "/anthropic/v1/messages",
                                                 user("FAKE_SLEEP_1500 burst %d" % i)),
                             list(range(24)))
        refused = [r for r in replies if isinstance(r, Reply) and r.status == 529]
        served = [r for r in replies if isinstance(r, Reply) and r.status == 200]
        slowest = max((r.took for r in refused), default=0) * 1000
        with_retry = [r for r in refused if r.headers.get("retry-after")]
        fig = ("a burst of 24 on 1 process (queue 2) → %d served, %d refused (529), slowest refusal "
               "%.0f ms, %d with retry-after" % (len(served), len(refused), slowest, len(with_retry)))
        check(len(served) == 3 and len(refused) == 21 and slowest < 100
              and len(with_retry) == len(refused), fig)
        return fig
    finally:
        s.close()


def hang(real):
    s = Server("hang-%s" % ("real" if real else "fake"), {
        "server.request_timeout_secs": 2, "pool.max_processes": 2, "pool.min_idle": 1}, real=real)
    try:
        s.settle(1)
        r = s.request("POST", "/anthropic/v1/messages",
                      user("HANG wait" if real else "FAKE_HANG wait"), timeout=15)
        body = r.json() or {}
        fig = "upstream hang (timeout 2 s) → %d %s after %.2f s" % (
            r.status, body.get("error", {}).get("type"), r.took)
        check(r.status == 504 and body.get("error", {}).get("type") == "timeout_error"
              and r.took < 3.0, fig)
        recovered = s.settle(1)
        ok = s.request("POST", "/anthropic/v1/messages", user("after the hang"))
        check(ok.status == 200, fig + "; then a request failed: %s" % ok.body[:200])
        return fig + "; recovered after %.0f ms" % recovered
    finally:
        s.close()


def fuzz_bodies(rng, valid):
    """Bodies that are wrong in every way a client can be wrong, and some that are right."""
    out = [b"", b"{", b"[]", b"null", b"42", b'"text"', b"\xff\xfe\x00garbage",
           bytes(rng.getrandbits(8) for _ in range(64)),
           b"[" * 5000 + b"]" * 5000, b'{"a":' * 300 + b"1" + b"}" * 300,
           json.dumps({"model": 10 ** 40}).encode(), "{\"model\": \"\u202e\U0001f600\"}".encode()]
    for _ in range(14):
        body = json.loads(json.dumps(valid))
        key = rng.choice(list(body) + ["extra"])
        body[key] = rng.choice([None, -1, 2 ** 63, 1e308, "", "x" * 5000, [], {}, [None],
                                {"role": "tool"}, True, "FAKE_" * 0 + "ü"])
        out.append(json.dumps(body).encode())
    valid_raw = json.dumps(valid).encode()
    out.append(valid_raw[: len(valid_raw) // 2])
    return out


VALID = {
    "/anthropic/v1/messages": user("fuzz"),
    "/anthropic/v1/messages/count_tokens": user("fuzz"),
    "/openai/v1/chat/completions": {"model": "claude", "messages": [{"role": "user", "content": "fuzz"}]},
    "/api/v1/prompt": {"prompt": "fuzz"},
    "/api/v1/parallel": {"tasks": [{"prompt": "fuzz"}]},
    "/api/v1/chain": {"steps": [{"prompt": "fuzz"}]},
    "/api/v1/compare": {"prompt": "fuzz", "backends": ["claude"]},
    "/admin/pools/{id}/resize": {"max_processes": 2},
}


def fuzz():
    rng = random.Random(20260101)
    s = Server("fuzz", {"pool.max_processes": 2, "pool.min_idle": 1, "pool.max_queue": 64,
                        "server.max_body_bytes": 65536})
    try:
        s.settle(1)
        doc = s.get("/openapi.json")
        routes = [(m.upper(), p) for p, ops in doc["paths"].items() for m in ops]
        routes += [("GET", "/metrics"), ("GET", "/admin"), ("GET", "/nothing"), ("DELETE", "/anthropic/v1/messages")]
        sent, bad = 0, []
        for method, path in routes:
            concrete = path.replace("{id}", "no-such-%d" % rng.randrange(10 ** 6))
            bodies = fuzz_bodies(rng, VALID.get(path, {})) if method == "POST" else [None] * 4
            for body in bodies:
                query = "" if body is not None else "?" + rng.choice(["limit=-1", "after_id=%00", "x=" + "y" * 3000, ""])
                r = s.request(method, concrete + query, body=body, timeout=30)
                sent += 1
                typ = r.headers.get("content-type", "")
                is_json = r.json() is not None
                if r.status >= 500 or (r.status >= 400 and not is_json) or \
                        (r.status < 400 and "json" in typ and not is_json):
                    bad.append("%s %s → %d %r" % (method, path, r.status, r.body[:120]))
        fig = "%d fuzzed requests on %d routes → %d 5xx or non-JSON errors" % (sent, len(routes), len(bad))
        check(not bad, fig + ": " + "; ".join(bad[:3]))
        check(s.get("/health")["status"] == "ok", fig + "; the server is degraded")
        return fig
    finally:
        s.close()


MIX = [
    ("POST", "/anthropic/v1/messages", user("soak")),
    ("POST", "/anthropic/v1/messages", user("soak streamed", stream=True)),
    ("POST", "/openai/v1/chat/completions", {"model": "claude", "messages": [{"role": "user", "content": "soak"}]}),
    ("POST", "/openai/v1/chat/completions", {"model": "claude", "stream": True,
                                            "messages": [{"role": "user", "content": "soak"}]}),
    ("POST", "/api/v1/prompt", {"prompt": "soak"}),
    ("POST", "/anthropic/v1/messages/count_tokens", user("soak")),
    ("GET", "/anthropic/v1/models", None),
]


def soak_failure(r):
    """Whether a soak reply failed: not a 200, an error event in a stream, or a JSON body that
    carries an error. The native API's result always has Go clinvoker's `error` and `exit_code`
    fields ("" and 0 when answered), so a body fails by their values, not by the key's presence."""
    if r.status != 200 or b"event: error" in r.body:
        return True
    body = r.json()
    if isinstance(body, dict):
        return bool(body.get("error")) or body.get("type") == "error" or body.get("exit_code", 0) != 0
    return b'"error"' in r.body[:200]


def soak():
    s = Server("soak", {"pool.max_processes": 3, "pool.min_idle": 3, "pool.max_total_processes": 3,
                        "pool.max_queue": 64, "pool.max_turns_per_process": 100000})
    try:
        s.settle(3)

        def batch(count):
            failures = []

            def worker(w):
                for i in range(w, count, 8):
                    method, path, body = MIX[i % len(MIX)]
                    r = s.request(method, path, body)
                    if soak_failure(r):
                        failures.append("%s %s → %d %r" % (method, path, r.status, r.body[:120]))
            in_threads(worker, list(range(8)))
            return failures

        batch(200)
        s.settle(3)
        time.sleep(0.3)
        rss0, fds0 = s.rss_kib(), s.fds()
        started = time.monotonic()
        failures = batch(1200)
        took = time.monotonic() - started
        s.settle(3)
        time.sleep(0.3)
        rss1, fds1 = s.rss_kib(), s.fds()
        fig = ("1200 mixed requests (8 clients, %.0f req/s) → %d failures; server RSS %d → %d KiB, "
               "open fds %d → %d" % (1200 / took, len(failures), rss0, rss1, fds0, fds1))
        check(not failures, fig + ": " + "; ".join(failures[:3]))
        check(rss1 <= rss0 + max(8192, rss0 // 5) and abs(fds1 - fds0) <= 2, fig)
        return fig
    finally:
        s.close()


def shutdown():
    n = 4
    s = Server("shutdown", {"backends.claude.extra_args": "--fake-delay-ms=150",
                            "pool.max_processes": n, "pool.min_idle": n, "pool.max_total_processes": n,
                            "server.shutdown_grace_secs": 10})
    try:
        s.settle(n)
        streams = [Stream(s, user("a long answer %d" % i, stream=True)) for i in range(n)]
        for st in streams:
            check(st.read_until("content_block_delta"), "a stream did not start")
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        try:
            late = s.request("POST", "/anthropic/v1/messages", user("too late"), timeout=5).status
        except OSError:
            late = "refused"
        completed = sum(1 for st in in_threads(lambda st: st.read_until("message_stop"), streams) if st)
        status = s.stop()
        left = marked(s.marker)
        fig = ("SIGTERM with %d streams in flight → %d completed (message_stop), a new request: %s, "
               "exit status %s, %d CLI processes left" % (n, completed, late, status, len(left)))
        check(completed == n and status == 0 and not left and late != 200, fig)
        return fig
    finally:
        s.close()


class MockUpstream:
    def __init__(self):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.out = open(WORK / "mock.log", "wb")
        self.proc = subprocess.Popen([sys.executable, str(MOCK), str(self.port), "--exit-on-stdin-eof"],
                                     stdin=subprocess.PIPE, stdout=self.out, stderr=subprocess.STDOUT,
                                     env=clean_env())
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self):
        self.proc.kill()
        self.proc.wait(10)


MOCK_UPSTREAM = None


def main():
    global MOCK_UPSTREAM
    for path in (BINARY, FAKE):
        if not path.exists():
            print("%s is missing: run `cargo build --all-targets` first" % path.relative_to(REPO))
            return 2
    scenarios = [
        ("kill -9/fake", lambda: kill9(False)),
        ("disconnect/fake", lambda: disconnects(False)),
        ("overload", overload),
        ("fairness", fairness),
        ("hang/fake", lambda: hang(False)),
        ("fuzz", fuzz),
        ("soak", soak),
        ("shutdown", shutdown),
    ]
    if CLAUDE.exists():
        MOCK_UPSTREAM = MockUpstream()
        scenarios += [
            ("kill -9/real", lambda: kill9(True)),
            ("disconnect/real", lambda: disconnects(True)),
            ("hang/real", lambda: hang(True)),
        ]
    else:
        print("(the real Claude Code CLI is not installed: its scenarios are skipped)")
    chosen = sys.argv[1:]
    if chosen:
        scenarios = [(n, r) for n, r in scenarios if n.split("/")[0] in chosen or n in chosen]
    passed = failed = 0
    began = time.monotonic()
    try:
        for name, run in scenarios:
            started = time.monotonic()
            try:
                fig = run()
                passed += 1
                print("PASS %-16s %s  [%.1f s]" % (name, fig, time.monotonic() - started), flush=True)
            except Exception as e:  # report every scenario, whatever broke
                failed += 1
                print("FAIL %-16s %s  [%.1f s]" % (name, e, time.monotonic() - started), flush=True)
    finally:
        if MOCK_UPSTREAM:
            MOCK_UPSTREAM.stop()
    if failed:
        print("chaos suite: %.0f s (servers' logs in %s)" % (time.monotonic() - began, WORK))
    else:
        print("chaos suite: %.0f s" % (time.monotonic() - began))
        shutil.rmtree(WORK, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
