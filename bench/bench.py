#!/usr/bin/env python3
"""clinvoker benchmark: three ways of serving one prompt from the Claude Code CLI, side by side,
on one machine, against one local mock of the Messages API (tests/support/mock_anthropic.py).

  (a) spawn-per-request  one `claude -p "<prompt>"` process per request, as spawn-per-request
                         wrappers do. Latency = spawn -> process exit (what a wrapper waits for);
                         the time to its `result` line is reported too.
  (b) warm CLI, direct   long-lived `claude -p --input-format stream-json ...` processes driven
                         over stdin/stdout by this script: one process per worker, kept alive, the
                         conversation reset with `rewind_conversation` as soon as each result is
                         in (the same reset the server does). Latency = request issued -> `result`
                         line; a request issued while the reset still runs (back to back) waits for
                         it, as it does in the server.
  (c) clinvoker          `POST /anthropic/v1/messages` with `stream: true` over a kept-alive HTTP
                         connection. Latency = request sent -> `message_stop` event.

TTFT is the first `content_block_delta` in every mode. Latency is N sequential requests per mode,
back to back (the next one sent as soon as the previous one is done), (b) and (c) in alternating
runs of ten so that load drifts of the machine hit both. Throughput runs a fixed number of
requests from 1, 4 and 8 concurrent workers. Two diagnostics follow, not judged: (b) and (c)
interleaved one by one (so each request follows a pause), and (c) with a client that ACKs every
TCP segment at once (Linux TCP_QUICKACK), which would expose TCP small-write delays.
Everything talks to 127.0.0.1 only.

The printed ratios are checked against targets and marked PASS or MISS; a MISS is a result, not
an error (exit status 0). The exit status is non-zero only when something failed to run.

Stdlib only. Usage: python3 bench/bench.py [--requests N] [--mock-delay-ms N] [--quick]
"""
import argparse
import http.client
import json
import math
import os
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLAUDE = ROOT / "tests" / "node" / "node_modules" / ".bin" / "claude"
SERVER = ROOT / "target" / "release" / "clinvoker"
MOCK = ROOT / "tests" / "support" / "mock_anthropic.py"

# Isolation flags shared by every CLI run (the same the server gives its children).
ISOLATION = ["--setting-sources", "", "--strict-mcp-config", "--tools", "", "--no-session-persistence",
             "--permission-prompts", "none", "--system-prompt", "", "--model", "sonnet", "--bare"]
LONG_LIVED = ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose",
              "--include-partial-messages"] + ISOLATION

TARGET_WARM = 1.15   # clinvoker p50 / warm-direct p50 must be at most this
TARGET_SPAWN = 10.0  # spawn-per-request p50 / clinvoker p50 must be at least this
WARM = 8             # warm processes for (b) and (c)
LEVELS = (1, 4, 8)   # throughput concurrency levels
BLOCK = 10           # back-to-back requests per run when (b) and (c) alternate


class BenchError(Exception):
    pass


now = time.perf_counter


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(1, math.ceil(p * len(s))) - 1]


def ms(seconds):
    return "%.1f" % (seconds * 1000.0)


def log(msg):
    print("# " + msg, file=sys.stderr, flush=True)


class Env:
    """Temp directories and the environment of every CLI run."""

    def __init__(self, mock_port):
        self.tmp = Path(tempfile.mkdtemp(prefix="clinvoker-bench-"))
        self.home = self.tmp / "home"
        self.work = self.tmp / "work"
        self.cli_tmp = self.tmp / "tmp"
        for d in (self.home / ".claude", self.work, self.cli_tmp):
            d.mkdir(parents=True)
        self.mock_port = mock_port

    def cli(self):
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "CLAUDE_CONFIG_DIR": str(self.home / ".claude"),
            "TMPDIR": str(self.cli_tmp),
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:%d" % self.mock_port,
            "ANTHROPIC_API_KEY": "sk-test",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "CLAUDE_CODE_ATTRIBUTION_HEADER": "0",
            "CLAUDE_CODE_DISABLE_FILE_MENTIONS": "1",
        }

    def log_file(self, name):
        return open(self.tmp / name, "ab")

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# (a) spawn-per-request

def spawn_request(env, n):
    """One `claude -p` process for one prompt. Returns (latency to exit, TTFT, time to result)."""
    argv = [str(CLAUDE), "-p", "bench %d" % n, "--output-format", "stream-json", "--verbose",
            "--include-partial-messages"] + ISOLATION
    with env.log_file("spawn.stderr") as err:
        t0 = now()
        proc = subprocess.Popen(argv, cwd=env.work, env=env.cli(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err)
        ttft = t_result = None
        result = None
        for line in proc.stdout:
            if ttft is None and b'"content_block_delta"' in line:
                ttft = now() - t0
            if b'"type":"result"' in line:
                t_result = now() - t0
                result = json.loads(line)
        proc.stdout.close()
        code = proc.wait(timeout=60)
        latency = now() - t0
    if code != 0 or result is None or result.get("is_error") or "MOCK_OK" not in (result.get("result") or ""):
        raise BenchError("spawn-per-request #%d failed: exit %s, result %r" % (n, code, result))
    return latency, ttft, t_result


# ---------------------------------------------------------------------------------------------
# (b) warm CLI driven directly

class WarmCli:
    """One long-lived CLI process, one turn at a time, reset after every turn."""

    def __init__(self, env, index):
        self.index = index
        self.err = env.log_file("warm-%d.stderr" % index)
        self.proc = subprocess.Popen([str(CLAUDE)] + LONG_LIVED, cwd=env.work, env=env.cli(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)

    def _write(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def _line(self):
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError("warm CLI %d: stdout closed (exit %s)" % (self.index, self.proc.poll()))
        return line

    def _send_control(self, request):
        rid = uuid.uuid4().hex
        self._write({"type": "control_request", "request_id": rid, "request": request})
        return rid, request["subtype"]

    def _await_control(self, rid, subtype):
        while True:
            line = self._line()
            if b'"control_response"' in line:
                resp = json.loads(line).get("response", {})
                if resp.get("request_id") == rid:
                    if resp.get("subtype") != "success":
                        raise BenchError("warm CLI %d: %s failed: %r" % (self.index, subtype, resp))
                    return resp.get("response", {})

    def initialize(self):
        self._await_control(*self._send_control({"subtype": "initialize", "hooks": None, "systemPrompt": ""}))
        self.pending_reset = None

    def _finish_reset(self):
        if self.pending_reset is not None:
            rewound = self._await_control(*self.pending_reset)
            self.pending_reset = None
            if rewound.get("rewound") is not True:
                raise BenchError("warm CLI %d: reset failed: %r" % (self.index, rewound))

    def request(self, n):
        """Returns (latency, TTFT). The reset is sent as soon as the result is in, as the server
        does; a request issued before it has finished (back to back) waits for it, and that wait
        is part of its latency, as it is for the server."""
        msg_uuid = str(uuid.uuid4())
        t0 = now()
        self._finish_reset()
        self._write({"type": "user", "message": {"role": "user", "content": "bench %d" % n},
                     "uuid": msg_uuid, "shouldQuery": True, "client_composed": True,
                     "parent_tool_use_id": None, "session_id": ""})
        ttft = None
        while True:
            line = self._line()
            if ttft is None and b'"content_block_delta"' in line:
                ttft = now() - t0
            if b'"type":"result"' in line:
                latency = now() - t0
                result = json.loads(line)
                if result.get("type") == "result":
                    break
        if result.get("is_error") or "MOCK_OK" not in (result.get("result") or ""):
            raise BenchError("warm CLI %d: turn failed: %r" % (self.index, result))
        first = result.get("user_message_uuid") or msg_uuid
        last = (result.get("user_message_uuids") or [first])[-1]
        self.pending_reset = self._send_control({"subtype": "rewind_conversation", "target_message_uuid": first,
                                                 "last_seen_user_message_uuid": last})
        return latency, ttft

    def close(self):
        try:
            self._finish_reset()
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


# ---------------------------------------------------------------------------------------------
# (c) clinvoker over HTTP

class HttpClient:
    """One kept-alive HTTP/1.1 connection to the server."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.requests = 0
        self.connects = 0
        self.dropped = 0
        # Diagnostic only: ACK every received segment at once (Linux TCP_QUICKACK), i.e. take
        # the client's delayed ACK out of the picture.
        self.quickack = False

    def request(self, n):
        """Returns (latency to message_stop, TTFT)."""
        body = json.dumps({"model": "claude", "max_tokens": 256, "stream": True,
                           "messages": [{"role": "user", "content": "bench %d" % n}]}).encode()
        sock = self.conn.sock
        if sock is not None and select.select([sock], [], [], 0)[0]:
            # Readable while idle = the server closed the kept-alive connection (its keep-alive
            # timeout): open a new one, as HTTP client libraries do.
            self.conn.close()
            self.dropped += 1
        if self.conn.sock is None:
            self.connects += 1
        self.requests += 1
        t0 = now()
        self.conn.request("POST", "/anthropic/v1/messages", body=body,
                          headers={"content-type": "application/json"})
        resp = self.conn.getresponse()
        if resp.status != 200:
            raise BenchError("clinvoker: HTTP %d: %s" % (resp.status, resp.read()[:500]))
        ttft = latency = None
        event, text = b"", []
        while latency is None:
            if self.quickack:
                self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            line = resp.readline()
            if not line:
                raise BenchError("clinvoker: stream ended before message_stop")
            if line.startswith(b"event: "):
                event = line[7:].strip()
                if event == b"content_block_delta" and ttft is None:
                    ttft = now() - t0
                elif event == b"message_stop":
                    latency = now() - t0
            elif line.startswith(b"data: "):
                if event == b"content_block_delta":
                    text.append(json.loads(line[6:]).get("delta", {}).get("text", ""))
                elif event == b"error":
                    raise BenchError("clinvoker: error event: %s" % line[6:500])
        resp.read()  # the rest of the stream, so the connection can be reused
        if "MOCK_OK" not in "".join(text):
            raise BenchError("clinvoker: unexpected answer %r" % "".join(text))
        return latency, ttft

    def close(self):
        self.conn.close()


class Server:
    def __init__(self, env):
        self.env = env
        state = env.tmp / "state"
        e = env.cli()
        e.update({
            "CLINVOKER__BACKENDS__CLAUDE__COMMAND": str(CLAUDE.resolve()),
            "CLINVOKER__BACKENDS__CLAUDE__MAX_RETRIES": "0",
            "CLINVOKER__SERVER__STATE_DIR": str(state),
            "CLINVOKER__POOL__MAX_PROCESSES": str(WARM),
            "CLINVOKER__POOL__MIN_IDLE": str(WARM),
            "CLINVOKER__POOL__MAX_TOTAL_PROCESSES": str(WARM + 2),
            "CLINVOKER__POOL__SPARE_PROCESSES": "1",
        })
        self.out_path = env.tmp / "server.stdout"
        self.out = open(self.out_path, "wb")
        self.err = env.log_file("server.stderr")
        self.proc = subprocess.Popen([str(SERVER), "serve", "--port", "0"], cwd=ROOT, env=e,
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)
        self.port = None

    def wait_ready(self, idle, timeout=180):
        deadline = time.monotonic() + timeout
        while self.port is None:
            if self.proc.poll() is not None:
                raise BenchError("clinvoker exited at startup (%s); see its stderr" % self.proc.returncode)
            for line in self.out_path.read_text().splitlines():
                if "listening on http://" in line:
                    self.port = int(line.rsplit(":", 1)[1].strip().strip("/"))
            if time.monotonic() > deadline:
                raise BenchError("clinvoker did not print its address")
            time.sleep(0.05)
        health = {}
        while time.monotonic() < deadline:
            health = self.get_json("/health")
            if health.get("idle", 0) >= idle:
                return health
            time.sleep(0.2)
        raise BenchError("clinvoker: fewer than %d idle processes after %ds: %r" % (idle, timeout, health))

    def get_json(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def get_text(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        self.err.close()


# ---------------------------------------------------------------------------------------------
# drivers

def run_concurrent(workers, per_worker, fn):
    """`fn(worker, n)` per_worker times in each of `workers` threads; returns (wall seconds, results)."""
    results, errors = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(workers + 1)

    def body(w):
        try:
            barrier.wait()
            for i in range(per_worker):
                r = fn(w, w * 100000 + i)
                with lock:
                    results.append(r)
        except Exception as e:  # reported by the caller
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=body, args=(w,), daemon=True) for w in range(workers)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = now()
    for t in threads:
        t.join()
    wall = now() - t0
    if errors:
        raise errors[0]
    return wall, results


def summary(samples):
    lat = [s[0] for s in samples]
    ttft = [s[1] for s in samples if s[1] is not None]
    return {"n": len(lat), "p50": statistics.median(lat), "p95": pct(lat, 0.95),
            "ttft": statistics.median(ttft) if ttft else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100, help="sequential requests per mode (default 100)")
    ap.add_argument("--spawn-requests", type=int, default=None,
                    help="sequential requests for spawn-per-request (default: min(20, --requests))")
    ap.add_argument("--tput-requests", type=int, default=64,
                    help="requests per throughput measurement (default 64, rounded up to the concurrency)")
    ap.add_argument("--mock-delay-ms", type=int, default=0,
                    help="fixed delay of the mock upstream before every answer (default 0)")
    ap.add_argument("--quick", action="store_true", help="few requests: a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.requests = min(args.requests, 10)
        args.tput_requests = min(args.tput_requests, 16)
    n_spawn = args.spawn_requests if args.spawn_requests is not None else min(20, args.requests)
    if args.quick:
        n_spawn = min(n_spawn, 3)
    if args.requests < 1 or n_spawn < 1 or args.tput_requests < 1:
        ap.error("request counts must be at least 1")
    for path, hint in ((CLAUDE, "npm ci --prefix tests/node"), (SERVER, "cargo build --release")):
        if not path.exists():
            raise BenchError("%s is missing (%s)" % (path.relative_to(ROOT), hint))

    started = time.monotonic()
    mock_port = free_port()
    env = Env(mock_port)
    mock_env = dict(os.environ, MOCK_DELAY_MS=str(args.mock_delay_ms))
    mock = subprocess.Popen([sys.executable, str(MOCK), str(mock_port), "--exit-on-stdin-eof"],
                            env=mock_env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=env.log_file("mock.stderr"))
    server, warm = None, []
    rows, tput, diag, keepalive = {}, {}, {}, None
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", mock_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or mock.poll() is not None:
                    raise BenchError("the mock upstream did not start")
                time.sleep(0.05)

        # --- (a) spawn-per-request, with nothing else running --------------------------------
        log("(a) spawn-per-request: 1 warm-up + %d sequential" % n_spawn)
        spawn_request(env, 0)
        a = [spawn_request(env, i + 1) for i in range(n_spawn)]
        rows["a"] = summary(a)
        a_result_p50 = statistics.median(s[2] for s in a)
        per = max(1, math.ceil(min(args.tput_requests, 12) / 4))
        log("(a) spawn-per-request: throughput at concurrency 4 (%d requests)" % (4 * per))
        wall, _ = run_concurrent(4, per, lambda w, n: spawn_request(env, n))
        tput[("a", 4)] = 4 * per / wall

        # --- start clinvoker and the direct warm processes -----------------------------------
        log("starting clinvoker with %d warm processes" % WARM)
        server = Server(env)
        server.wait_ready(WARM)
        log("starting %d warm CLI processes for direct driving" % WARM)
        warm = [WarmCli(env, i) for i in range(WARM)]
        for p in warm:
            p.initialize()
        clients = [HttpClient(server.port) for _ in range(WARM)]

        # --- warm-up: every process of both sides serves a few turns -------------------------
        log("warm-up")
        run_concurrent(WARM, 3, lambda w, n: warm[w].request(n))
        run_concurrent(WARM, 3, lambda w, n: clients[w].request(n))
        for i in range(5):
            warm[0].request(i)
            clients[0].request(i)

        # --- sequential latency: back to back -------------------------------------------------
        # Alternating runs of BLOCK back-to-back requests, (b) then (c), so that drifts in the
        # machine's load (large on a small shared machine) hit both modes alike.
        log("(b) and (c): %d sequential requests each, back to back, in alternating runs of %d"
            % (args.requests, BLOCK))
        b, c = [], []
        while len(b) < args.requests:
            n = min(BLOCK, args.requests - len(b))
            b += [warm[0].request(i) for i in range(n)]
            c += [clients[0].request(i) for i in range(n)]
        rows["b"], rows["c"] = summary(b), summary(c)

        # --- diagnostics: the same with a pause between requests; and with a quick-ACK client -
        log("diagnostic: (b) and (c) interleaved, %d requests each" % args.requests)
        bi, ci = [], []
        for i in range(args.requests):
            bi.append(warm[0].request(i))
            ci.append(clients[0].request(i))
        diag["interleaved"] = (summary(bi), summary(ci))
        if hasattr(socket, "TCP_QUICKACK"):
            log("diagnostic: (c) back to back with a quick-ACK client, %d requests" % args.requests)
            clients[0].quickack = True
            diag["quickack"] = summary([clients[0].request(i) for i in range(args.requests)])
            clients[0].quickack = False

        # --- throughput ----------------------------------------------------------------------
        for level in LEVELS:
            per = max(1, math.ceil(args.tput_requests / level))
            log("throughput at concurrency %d: %d requests each for (b) and (c)" % (level, per * level))
            wall, _ = run_concurrent(level, per, lambda w, n: warm[w].request(n))
            tput[("b", level)] = per * level / wall
            wall, _ = run_concurrent(level, per, lambda w, n: clients[w].request(n))
            tput[("c", level)] = per * level / wall

        keepalive = (sum(cl.connects for cl in clients), sum(cl.requests for cl in clients),
                     sum(cl.dropped for cl in clients))
        for cl in clients:
            cl.close()
    finally:
        for p in warm:
            p.close()
        if server is not None:
            server.stop()
        try:
            mock.stdin.close()
            mock.wait(timeout=5)
        except Exception:
            mock.kill()
        env.cleanup()
    runtime = time.monotonic() - started

    # --- report ----------------------------------------------------------------------------------
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = "%.2f %.2f %.2f" % os.getloadavg() if hasattr(os, "getloadavg") else "?"
    version = subprocess.run([str(CLAUDE), "--version"], capture_output=True, text=True).stdout.strip()
    print("## clinvoker benchmark\n")
    print("- cores: %d%s; load average at the end: %s" % (cores, "" if usable == cores else " (%d usable)" % usable, load))
    print("- mock upstream delay: %d ms before every answer (one mock for all modes)" % args.mock_delay_ms)
    print("- Claude Code CLI: %s" % version)
    print("- latency: %d sequential requests per mode, back to back, each on one process / one "
          "kept-alive connection; (a): %d" % (args.requests, n_spawn))
    print("- throughput: about %d requests per cell; (b) drives as many warm processes as workers, "
          "(c) has %d warm processes; (a) only at concurrency 4" % (args.tput_requests, WARM))
    print()
    print("| mode | requests | p50 latency ms | p95 latency ms | p50 TTFT ms | req/s @1 | req/s @4 | req/s @8 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    names = {"a": "(a) spawn-per-request", "b": "(b) warm CLI, direct", "c": "(c) clinvoker"}
    for key in ("a", "b", "c"):
        r = rows[key]
        cells = ["%.1f" % tput[(key, lv)] if (key, lv) in tput else "–" for lv in LEVELS]
        print("| %s | %d | %s | %s | %s | %s |" % (names[key], r["n"], ms(r["p50"]), ms(r["p95"]),
                                                   ms(r["ttft"]) if r["ttft"] is not None else "–",
                                                   " | ".join(cells)))
    print()
    warm_ratio = rows["c"]["p50"] / rows["b"]["p50"]
    spawn_ratio = rows["a"]["p50"] / rows["c"]["p50"]
    print("- **clinvoker p50 / warm-direct p50 = %.2f** (target <= %.2f): **%s**"
          % (warm_ratio, TARGET_WARM, "PASS" if warm_ratio <= TARGET_WARM else "MISS"))
    print("- **spawn-per-request p50 / clinvoker p50 = %.1f** (target >= %.0f): **%s**"
          % (spawn_ratio, TARGET_SPAWN, "PASS" if spawn_ratio >= TARGET_SPAWN else "MISS"))
    print()
    print("Context (not judged):")
    print("- clinvoker p50 TTFT / warm-direct p50 TTFT = %.2f" % (rows["c"]["ttft"] / rows["b"]["ttft"]))
    print("- spawn-per-request until its `result` line (the process exits later): p50 %s ms, "
          "%.1f x clinvoker p50" % (ms(a_result_p50), a_result_p50 / rows["c"]["p50"]))
    bi, ci = diag["interleaved"]
    print("- with a pause between requests ((b) and (c) interleaved, %d each): p50 %s ms vs %s ms, "
          "ratio %.2f; TTFT %s vs %s ms" % (bi["n"], ms(bi["p50"]), ms(ci["p50"]), ci["p50"] / bi["p50"],
                                             ms(bi["ttft"]), ms(ci["ttft"])))
    if "quickack" in diag:
        q = diag["quickack"]
        print("- (c) back to back, the client ACKing every segment at once (TCP_QUICKACK): p50 %s ms, "
              "TTFT %s ms, ratio to warm-direct p50 %.2f" % (ms(q["p50"]), ms(q["ttft"]), q["p50"] / rows["b"]["p50"]))
    print("- HTTP/1.1 keep-alive: %d connections for %d requests (%d reopened after the server closed "
          "an idle one)" % keepalive)
    print("\ntotal runtime: %.0f s" % runtime)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print("bench: error: %s" % e, file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
