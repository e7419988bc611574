#!/usr/bin/env python3
"""clinvoker benchmark: three ways of serving one prompt from each AI coding CLI (Claude Code,
Codex, Gemini), side by side, on one machine, each against a local mock of its upstream API
(tests/support/mock_anthropic.py, mock_openai_responses.py, mock_gemini.py).

  (a) spawn-per-request  one CLI process per request, as spawn-per-request wrappers do:
                         `claude -p "<prompt>" --output-format stream-json`, `codex exec --json
                         "<prompt>"`, `gemini -p "<prompt>" -o json`. Latency = spawn -> process
                         exit (what a wrapper waits for); the time to its result line is reported
                         too.
  (b) warm CLI, direct   long-lived CLI processes driven over stdin/stdout by this script the way
                         the server drives them:
                         - Claude Code: `claude -p --input-format stream-json ...`, one process per
                           worker, the conversation reset with `rewind_conversation` as soon as
                           each result is in; a request issued while that reset still runs (back to
                           back) waits for it, as it does in the server.
                         - Codex: the native binary's `codex app-server` with a private CODEX_HOME
                           and the config.toml the server generates (provider on the mock, tools
                           off); per request `thread/start` (baseInstructions, approvals never,
                           read-only sandbox, persistent) -> `turn/start` -> deltas ->
                           `turn/completed`, then `thread/delete` (not waited for). One process
                           runs every concurrent conversation (the server's
                           `conversations_per_process = 8`).
                         - Gemini: `gemini --acp` (GEMINI_CLI_NO_RELAUNCH=true, a private home
                           whose settings.json selects API-key auth and removes every tool); per
                           request `session/new` -> `session/set_model` -> `session/prompt` ->
                           chunks -> the prompt's answer. One process runs every concurrent
                           conversation, its `session/new` calls one at a time (each locks the
                           CLI's project registry file; concurrent ones back off exponentially,
                           up to 13 s for the 8th). Before a run of requests that would take it
                           past 60 sessions (the server's `max_sessions_per_process`: the CLI
                           never frees a session) it is replaced by a fresh one, outside any
                           timing, which serves two warm-up turns first.
                         Latency = request issued -> the turn's end (`result`, `turn/completed`,
                         the `session/prompt` answer).
  (c) clinvoker          `POST /anthropic/v1/messages` with `stream: true` over a kept-alive HTTP
                         connection (model `claude`, `gpt-5` or `gemini-2.5-flash`). Latency =
                         request sent -> `message_stop` event. One server per CLI, started for its
                         rows with only that CLI's pool warm (Claude Code: 8 processes; Codex and
                         Gemini: 1 process hosting 8 conversations, `pool.max_processes = 1`, as
                         in (b)).

TTFT is the first text delta in (b) and (c); in (a) it is the first answer text the caller can
see (Claude Code: the first delta; `codex exec --json` prints the whole message as one item and
`gemini -o json` prints once at the end, so there it is that line). Latency is N sequential
requests per mode, back to back (the next one sent as soon as the previous one is done), (b) and
(c) in alternating runs of ten so that load drifts of the machine hit both. Throughput runs a
fixed number of requests from 1, 4 and 8 concurrent workers. For Claude Code two diagnostics
follow, not judged: (b) and (c) interleaved one by one (so each request follows a pause), and (c)
with a client that ACKs every TCP segment at once (Linux TCP_QUICKACK), which would expose TCP
small-write delays. For Codex, 8 concurrent conversations are sent to clinvoker, whose Codex pool
runs one process with 8 conversation slots: GET /admin/pools must show that one process served
all 8 at once (a `SLOW` prompt keeps them in flight long enough to be seen). Everything talks to
127.0.0.1 only.

The printed ratios are checked against targets and marked PASS or MISS; a MISS is a result, not
an error (exit status 0). A clinvoker row of a CLI the server build does not serve (GET
/api/v1/backends says so, or a first request is refused) is skipped with a line saying so. The exit status is non-zero only when
something failed to run.

Stdlib only. Usage: python3 bench/bench.py [--backends claude,codex,gemini] [--requests N]
                    [--mock-delay-ms N] [--quick] (see --help)
"""
import argparse
import http.client
import json
import math
import os
import platform
import queue
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
MODULES = ROOT / "tests" / "node" / "node_modules"
CLAUDE = MODULES / ".bin" / "claude"
CODEX = MODULES / ".bin" / "codex"    # the npm wrapper; the direct modes run its native binary
GEMINI = MODULES / ".bin" / "gemini"
SERVER = ROOT / "target" / "release" / "clinvoker"
SUPPORT = ROOT / "tests" / "support"

BACKENDS = ("claude", "codex", "gemini")
TITLE = {"claude": "Claude Code", "codex": "Codex", "gemini": "Gemini"}
MOCK = {"claude": "mock_anthropic.py", "codex": "mock_openai_responses.py", "gemini": "mock_gemini.py"}
MODEL = {"claude": "claude", "codex": "gpt-5", "gemini": "gemini-2.5-flash"}  # what clients send

# clinvoker p50 / warm-direct p50 must be at most "warm"; spawn-per-request p50 / clinvoker p50
# must be at least "spawn".
TARGETS = {"claude": {"warm": 1.15, "spawn": 10.0},
           "codex": {"warm": 1.2, "spawn": 4.0},
           "gemini": {"warm": 1.2, "spawn": 20.0}}

# Claude Code isolation flags shared by every CLI run (the same the server gives its children).
ISOLATION = ["--setting-sources", "", "--strict-mcp-config", "--tools", "", "--no-session-persistence",
             "--permission-prompts", "none", "--system-prompt", "", "--model", "sonnet", "--bare"]
LONG_LIVED = ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose",
              "--include-partial-messages"] + ISOLATION

# The server's defaults for Codex and Gemini, mirrored by the direct modes.
CODEX_BASE_INSTRUCTIONS = "You are a helpful assistant."   # [backends.codex] base_instructions
CODEX_DEFAULT_MODEL = "gpt-5-codex"                        # [backends.codex] default_model
GEMINI_MAX_SESSIONS = 60                                   # [backends.gemini] max_sessions_per_process

WARM = 8             # warm Claude Code processes for (b) and (c); conversation slots for the others
LEVELS = (1, 4, 8)   # throughput concurrency levels
BLOCK = 10           # back-to-back requests per run when (b) and (c) alternate
CONCURRENT = 8       # the Codex check: concurrent conversations on one process


class BenchError(Exception):
    pass


class HttpError(BenchError):
    def __init__(self, status, body):
        super().__init__("clinvoker: HTTP %d: %s" % (status, body[:500]))
        self.status = status
        self.body = body


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


def native_codex():
    """The native binary behind the npm `codex` wrapper (what the server runs, too)."""
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower())
    vendor = MODULES / "@openai" / ("codex-%s-%s" % (sys.platform, arch)) / "vendor"
    for triple in sorted(vendor.glob("*")):
        binary = triple / "bin" / "codex"
        if binary.is_file():
            return binary
    return None


def codex_config(mock_port):
    """The config.toml clinvoker generates for its Codex children (src/process/spawn/codex.rs),
    with the server's defaults: the provider on the mock, bounded retries, every tool off."""
    return """model = "%s"
model_provider = "clinvoker"
web_search = "disabled"

[model_providers.clinvoker]
name = "clinvoker"
base_url = "http://127.0.0.1:%d/v1"
wire_api = "responses"
env_key = "CLINVOKER_CODEX_API_KEY"
request_max_retries = 1
stream_max_retries = 0
stream_idle_timeout_ms = 60000

[features]
unbounded_connection_retries = false
shell_tool = false
unified_exec = false
view_image = false
goals = false
apps = false
plugins = false
image_generation = false

[agents]
enabled = false
""" % (CODEX_DEFAULT_MODEL, mock_port)


# Gemini CLI settings for a private home (API-key auth on a custom base URL, no tools, one attempt
# per upstream call, telemetry, usage statistics, updates and IDE integration off).
GEMINI_SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False, "maxAttempts": 1},
    "ide": {"enabled": False},
    "tools": {"core": []},
}


class Env:
    """Temp directories and the environment of every CLI run."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="clinvoker-bench-"))
        self.home = self.tmp / "home"
        self.work = self.tmp / "work"
        self.cli_tmp = self.tmp / "tmp"
        for d in (self.home / ".claude", self.work, self.cli_tmp):
            d.mkdir(parents=True)

    def base(self):
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(self.cli_tmp)}

    def claude(self, mock_port):
        e = self.base()
        e.update({
            "HOME": str(self.home),
            "CLAUDE_CONFIG_DIR": str(self.home / ".claude"),
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:%d" % mock_port,
            "ANTHROPIC_API_KEY": "sk-test",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "CLAUDE_CODE_ATTRIBUTION_HEADER": "0",
            "CLAUDE_CODE_DISABLE_FILE_MENTIONS": "1",
        })
        return e

    def workdir(self, name):
        d = self.tmp / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def codex(self, name, mock_port):
        """A private CODEX_HOME with the server's config.toml; the environment of a run in it."""
        home = self.tmp / ("codex-home-" + name)
        config = home / "config.toml"
        if not config.exists():  # written once: concurrent runs may be reading it
            home.mkdir(parents=True, exist_ok=True)
            config.write_text(codex_config(mock_port))
        e = self.base()
        e.update({"HOME": str(home), "CODEX_HOME": str(home), "CLINVOKER_CODEX_API_KEY": "sk-test"})
        return e

    def gemini(self, name, mock_port):
        """A private GEMINI_CLI_HOME/HOME with settings.json; the environment of a run in it."""
        home = self.tmp / ("gemini-home-" + name)
        settings = home / ".gemini" / "settings.json"
        if not settings.exists():  # written once: concurrent runs may be reading it
            settings.parent.mkdir(parents=True, exist_ok=True)
            settings.write_text(json.dumps(GEMINI_SETTINGS, indent=1))
        e = self.base()
        e.update({"HOME": str(home), "GEMINI_CLI_HOME": str(home), "GEMINI_API_KEY": "sk-test",
                  "GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:%d" % mock_port,
                  "GEMINI_CLI_NO_RELAUNCH": "true"})
        return e

    def log_file(self, name):
        return open(self.tmp / name, "ab")

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


class Mock:
    """One backend's upstream mock on a free port, ended when its stdin closes."""

    def __init__(self, env, backend, delay_ms):
        self.port = free_port()
        mock_env = dict(os.environ, MOCK_DELAY_MS=str(delay_ms))
        self.proc = subprocess.Popen([sys.executable, str(SUPPORT / MOCK[backend]), str(self.port),
                                      "--exit-on-stdin-eof"], env=mock_env, stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=env.log_file("mock-%s.stderr" % backend))
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise BenchError("the %s mock upstream did not start" % backend)
                time.sleep(0.05)

    def stop(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------------------------
# (a) spawn-per-request. Each returns (latency to exit, TTFT, time to the result line).

def spawn_claude(env, mock_port, n):
    argv = [str(CLAUDE), "-p", "bench %d" % n, "--output-format", "stream-json", "--verbose",
            "--include-partial-messages"] + ISOLATION
    with env.log_file("spawn-claude.stderr") as err:
        t0 = now()
        proc = subprocess.Popen(argv, cwd=env.work, env=env.claude(mock_port), stdin=subprocess.DEVNULL,
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
        raise BenchError("claude spawn-per-request #%d failed: exit %s, result %r" % (n, code, result))
    return latency, ttft, t_result


def spawn_codex(env, mock_port, n, program=None):
    """`codex exec --json` with the server's config.toml in one CODEX_HOME shared by all runs (as a
    wrapper's user home would be). `exec --json` prints no deltas: the answer is one
    `item.completed` line, then `turn.completed`."""
    argv = [str(program or native_codex()), "exec", "--json", "--skip-git-repo-check", "-m", MODEL["codex"],
            "bench %d" % n]
    with env.log_file("spawn-codex.stderr") as err:
        cli_env = env.codex("spawn", mock_port)
        t0 = now()
        proc = subprocess.Popen(argv, cwd=env.workdir("work-codex"), env=cli_env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err)
        ttft = t_result = None
        text, completed = "", None
        for line in proc.stdout:
            if b'"agent_message"' in line:
                if ttft is None:
                    ttft = now() - t0
                item = json.loads(line).get("item") or {}
                if item.get("type") == "agent_message":
                    text += item.get("text") or ""
            elif b'"turn.completed"' in line or b'"turn.failed"' in line:
                t_result = now() - t0
                completed = json.loads(line).get("type")
                if completed != "turn.completed":
                    completed = line.decode(errors="replace").strip()
        proc.stdout.close()
        code = proc.wait(timeout=60)
        latency = now() - t0
    if code != 0 or completed != "turn.completed" or "MOCK_OK" not in text:
        raise BenchError("codex spawn-per-request #%d failed: exit %s, %s, text %r" % (n, code, completed, text))
    return latency, ttft, t_result


def spawn_gemini(env, mock_port, n):
    """`gemini -p ... -o json`: one JSON document on stdout when the answer is complete."""
    argv = [str(GEMINI), "-p", "bench %d" % n, "-o", "json", "-m", MODEL["gemini"]]
    with env.log_file("spawn-gemini.stderr") as err:
        cli_env = env.gemini("spawn", mock_port)
        t0 = now()
        proc = subprocess.Popen(argv, cwd=env.workdir("work-gemini-spawn"), env=cli_env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        first = proc.stdout.readline()
        t_result = now() - t0 if first else None
        out = first + proc.stdout.read()
        proc.stdout.close()
        code = proc.wait(timeout=120)
        latency = now() - t0
    try:
        answer = json.loads(out).get("response") or ""
    except ValueError:
        answer = ""
    if code != 0 or "MOCK_OK" not in answer:
        raise BenchError("gemini spawn-per-request #%d failed: exit %s, output %r" % (n, code, out[:300]))
    return latency, t_result, t_result


SPAWN = {"claude": spawn_claude, "codex": spawn_codex, "gemini": spawn_gemini}


# ---------------------------------------------------------------------------------------------
# (b) warm CLI driven directly

class WarmCli:
    """One long-lived Claude Code process, one turn at a time, reset after every turn."""

    def __init__(self, env, mock_port, index):
        self.index = index
        self.err = env.log_file("warm-claude-%d.stderr" % index)
        self.proc = subprocess.Popen([str(CLAUDE)] + LONG_LIVED, cwd=env.work, env=env.claude(mock_port),
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


class ClaudeDirect:
    """WARM Claude Code processes, one per worker (a process runs one conversation at a time)."""

    def __init__(self, env, mock_port):
        self.procs = []
        try:
            for i in range(WARM):
                self.procs.append(WarmCli(env, mock_port, i))
            for p in self.procs:
                p.initialize()
        except BaseException:
            self.close()
            raise

    def prepare(self, upcoming):
        pass

    def request(self, worker, n):
        return self.procs[worker].request(n)

    def notes(self):
        return []

    def close(self):
        for p in self.procs:
            p.close()


class RpcProcess:
    """A long-lived JSON-RPC child on stdio (Codex app-server: no "jsonrpc" member; Gemini ACP:
    with it). A reader thread hands every response to the queue of its call and every
    notification to the queue of the conversation it names (`key`: threadId or sessionId), so one
    process runs several conversations at once, as the server's drivers do."""

    def __init__(self, name, argv, cwd, env, err, versioned, key):
        self.name = name
        self.versioned = versioned
        self.key = key
        self.lock = threading.Lock()
        self.next_id = 1
        self.calls = {}
        self.subs = {}
        self.requests_from_cli = []
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=err)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _send(self, obj):
        if self.versioned:
            obj["jsonrpc"] = "2.0"
        data = (json.dumps(obj) + "\n").encode()
        with self.lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def _read(self):
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            method = msg.get("method")
            if method is not None and "id" in msg:
                self._answer(msg)
            elif method is not None:
                q = self.subs.get((msg.get("params") or {}).get(self.key))
                if q is not None:
                    q.put(("note", msg))
            elif "id" in msg:
                with self.lock:
                    q = self.calls.pop(msg["id"], None)
                if q is not None:
                    q.put(("response", msg))
        with self.lock:
            waiting = list(self.calls.values()) + list(self.subs.values())
            self.calls.clear()
        for q in waiting:
            q.put(("eof", None))

    def _answer(self, msg):
        """A request from the CLI (approval, permission): declined. With no tools none comes."""
        method = msg["method"]
        self.requests_from_cli.append(method)
        if method.endswith("requestApproval"):
            self._send({"id": msg["id"], "result": {"decision": "decline"}})
        elif method == "session/request_permission":
            self._send({"id": msg["id"], "result": {"outcome": {"outcome": "cancelled"}}})
        else:
            self._send({"id": msg["id"], "error": {"code": -32601, "message": "not supported"}})

    def call(self, method, params, q=None):
        """Sends a request; its response arrives on `q` (a new queue unless given)."""
        q = q if q is not None else queue.Queue()
        with self.lock:
            rid = self.next_id
            self.next_id += 1
            self.calls[rid] = q
        self._send({"id": rid, "method": method, "params": params})
        return q

    def notify(self, method, params=None):
        msg = {"method": method}
        if params is not None:
            msg["params"] = params
        self._send(msg)

    def result(self, q, what, timeout=60):
        """The result of the call answering on `q`; raises on an error or a dead process."""
        try:
            kind, msg = q.get(timeout=timeout)
        except queue.Empty:
            raise BenchError("%s: no answer to %s in %ds" % (self.name, what, timeout))
        if kind == "eof":
            raise BenchError("%s: stdout closed during %s (exit %s)" % (self.name, what, self.proc.poll()))
        if "error" in msg:
            raise BenchError("%s: %s failed: %r" % (self.name, what, msg["error"]))
        return msg.get("result")

    def subscribe(self, key):
        q = queue.Queue()
        self.subs[key] = q
        return q

    def unsubscribe(self, key):
        self.subs.pop(key, None)

    def close(self, err=None):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)


class CodexDirect:
    """The native Codex binary's app-server, driven like src/process/driver/codex.rs drives it:
    one process, a thread per request, many at once."""

    def __init__(self, env, mock_port):
        self.err = env.log_file("warm-codex.stderr")
        self.deletes = []
        self.rpc = RpcProcess("warm codex", [str(native_codex()), "app-server"], env.workdir("work-codex-direct"),
                              env.codex("direct", mock_port), self.err, versioned=False, key="threadId")
        try:
            self.rpc.result(self.rpc.call("initialize", {"clientInfo": {"name": "clinvoker-bench", "version": "0"}}),
                            "initialize")
            self.rpc.notify("initialized")
        except BaseException:
            self.close()
            raise

    def prepare(self, upcoming):
        pass

    def request(self, worker, n, prompt=None):
        rpc = self.rpc
        t0 = now()
        started = rpc.result(rpc.call("thread/start", {
            "model": MODEL["codex"], "baseInstructions": CODEX_BASE_INSTRUCTIONS,
            "approvalPolicy": "never", "sandbox": "read-only", "ephemeral": False}), "thread/start")
        thread = started["thread"]["id"]
        q = rpc.subscribe(thread)
        try:
            turn_q = rpc.call("turn/start", {"threadId": thread, "model": MODEL["codex"],
                                             "input": [{"type": "text", "text": prompt or "bench %d" % n}]})
            ttft, text = None, []
            while True:
                try:
                    kind, msg = q.get(timeout=60)
                except queue.Empty:
                    raise BenchError("warm codex: turn on thread %s did not complete in 60 s" % thread)
                if kind == "eof":
                    raise BenchError("warm codex: stdout closed (exit %s)" % rpc.proc.poll())
                method = msg["method"]
                if method == "item/agentMessage/delta":
                    if ttft is None:
                        ttft = now() - t0
                    text.append(msg["params"].get("delta") or "")
                elif method == "turn/completed":
                    latency = now() - t0
                    turn = msg["params"].get("turn") or {}
                    break
        finally:
            rpc.unsubscribe(thread)
        # The server deletes the thread once the turn is done and frees the slot on the answer;
        # nobody waits for it.
        self.deletes.append(rpc.call("thread/delete", {"threadId": thread}))
        rpc.result(turn_q, "turn/start", timeout=5)
        if turn.get("status") != "completed" or "MOCK_OK" not in "".join(text):
            raise BenchError("warm codex: turn failed: %r, text %r" % (turn, "".join(text)))
        return latency, ttft

    def notes(self):
        failed = 0
        for q in self.deletes:
            try:
                self.rpc.result(q, "thread/delete", timeout=5)
            except BenchError:
                failed += 1
        self.deletes = []
        notes = []
        if failed:
            notes.append("warm codex: %d thread/delete calls failed" % failed)
        if self.rpc.requests_from_cli:
            notes.append("warm codex: the CLI sent requests: %s" % sorted(set(self.rpc.requests_from_cli)))
        return notes

    def close(self):
        self.rpc.close()
        self.err.close()


class GeminiDirect:
    """`gemini --acp`: one process, a session per request, many at once (their `session/new`
    calls one at a time); replaced before it opens more than GEMINI_MAX_SESSIONS sessions
    (outside any timing)."""

    def __init__(self, env, mock_port):
        self.env, self.mock_port = env, mock_port
        self.err = env.log_file("warm-gemini.stderr")
        self.work = env.workdir("work-gemini-direct")
        self.recycles = 0
        self.new_lock = threading.Lock()
        self.requests_from_cli = []
        self.rpc = None
        self.rpc = self._start()

    def _start(self):
        rpc = RpcProcess("warm gemini", [str(GEMINI), "--acp", "--model", MODEL["gemini"]], self.work,
                         self.env.gemini("direct", self.mock_port), self.err, versioned=True, key="sessionId")
        try:
            rpc.result(rpc.call("initialize", {"protocolVersion": 1, "clientCapabilities": {
                "fs": {"readTextFile": False, "writeTextFile": False}, "terminal": False}}), "initialize")
        except BaseException:
            rpc.close()
            raise
        self.sessions = 0
        return rpc

    def prepare(self, upcoming):
        """Before a run of `upcoming` requests: a fresh process (two warm-up turns) when this one
        would pass the session limit."""
        if self.sessions and self.sessions + upcoming > GEMINI_MAX_SESSIONS:
            old, self.rpc = self.rpc, self._start()
            self.requests_from_cli += old.requests_from_cli
            old.close()
            self.recycles += 1
            for i in range(2):
                self.request(0, i)

    def request(self, worker, n, prompt=None):
        rpc = self.rpc
        t0 = now()
        self.sessions += 1
        # One `session/new` at a time: each takes a file lock on the CLI's project registry, and
        # concurrent ones in one process wait for it with exponential backoff (measured: 8 at once
        # answered after 0.25, 0.36, 0.55, 0.96, 1.8, 3.4, 6.6 and 13 s).
        with self.new_lock:
            created = rpc.result(rpc.call("session/new", {"cwd": str(self.work), "mcpServers": []}),
                                 "session/new")
        session = created["sessionId"]
        q = rpc.subscribe(session)
        try:
            rpc.result(rpc.call("session/set_model", {"sessionId": session, "modelId": MODEL["gemini"]}),
                       "session/set_model")
            rpc.call("session/prompt", {"sessionId": session, "prompt": [
                {"type": "text", "text": prompt or "bench %d" % n}]}, q)
            ttft, text = None, []
            while True:
                try:
                    kind, msg = q.get(timeout=60)
                except queue.Empty:
                    raise BenchError("warm gemini: prompt on session %s did not complete in 60 s" % session)
                if kind == "eof":
                    raise BenchError("warm gemini: stdout closed (exit %s)" % rpc.proc.poll())
                if kind == "response":
                    latency = now() - t0
                    break
                update = msg.get("params", {}).get("update") or {}
                if update.get("sessionUpdate") == "agent_message_chunk":
                    if ttft is None:
                        ttft = now() - t0
                    text.append((update.get("content") or {}).get("text") or "")
        finally:
            rpc.unsubscribe(session)
        stop = (msg.get("result") or {}).get("stopReason")
        if "error" in msg or stop != "end_turn" or "MOCK_OK" not in "".join(text):
            raise BenchError("warm gemini: prompt failed: %r, text %r" % (msg, "".join(text)))
        return latency, ttft

    def notes(self):
        notes = ["warm gemini: replaced %d times to stay within %d sessions per process"
                 % (self.recycles, GEMINI_MAX_SESSIONS)] if self.recycles else []
        cli_requests = self.requests_from_cli + (self.rpc.requests_from_cli if self.rpc else [])
        if cli_requests:
            notes.append("warm gemini: the CLI sent requests: %s" % sorted(set(cli_requests)))
        return notes

    def close(self):
        if self.rpc is not None:
            self.rpc.close()
        self.err.close()


DIRECT = {"claude": ClaudeDirect, "codex": CodexDirect, "gemini": GeminiDirect}


# ---------------------------------------------------------------------------------------------
# (c) clinvoker over HTTP

class HttpClient:
    """One kept-alive HTTP/1.1 connection to the server."""

    def __init__(self, port, model):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.model = model
        self.requests = 0
        self.connects = 0
        self.dropped = 0
        # Diagnostic only: ACK every received segment at once (Linux TCP_QUICKACK), i.e. take
        # the client's delayed ACK out of the picture.
        self.quickack = False

    def request(self, n, prompt=None):
        """Returns (latency to message_stop, TTFT)."""
        body = json.dumps({"model": self.model, "max_tokens": 256, "stream": True,
                           "messages": [{"role": "user", "content": prompt or "bench %d" % n}]}).encode()
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
            raise HttpError(resp.status, resp.read().decode(errors="replace"))
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
    """clinvoker serving one backend: only that backend's pool is warmed."""

    def __init__(self, env, backend, mock_port, extra=None, name=None):
        """`extra`: more CLINVOKER__… settings; `name`: tells servers of one backend apart."""
        self.env = env
        self.backend = backend
        name = name or backend
        url = "http://127.0.0.1:%d" % mock_port
        e = env.claude(mock_port) if backend == "claude" else env.base()
        e.setdefault("HOME", str(env.home))
        e.update({
            "CLINVOKER__SERVER__STATE_DIR": str(env.tmp / ("state-" + backend)),
            "CLINVOKER__BACKENDS__CLAUDE__COMMAND": str(CLAUDE.resolve()),
            "CLINVOKER__BACKENDS__CLAUDE__MAX_RETRIES": "0",
            # Codex and Gemini: one process with CONCURRENT conversation slots, as (b) runs it.
            # (Without this cap the pool starts more: `min_idle` counts processes without a
            # running turn, so one busy conversation makes it start another process.)
            "CLINVOKER__POOL__MAX_PROCESSES": str(WARM) if backend == "claude" else "1",
            "CLINVOKER__POOL__MAX_TOTAL_PROCESSES": str(WARM + 2),
            # Claude Code's default pool and spares are warm only for its own rows.
            "CLINVOKER__POOL__MIN_IDLE": str(WARM) if backend == "claude" else "0",
            "CLINVOKER__POOL__SPARE_PROCESSES": "1" if backend == "claude" else "0",
            "CLINVOKER__BACKENDS__CODEX__MIN_IDLE": "1" if backend == "codex" else "0",
            "CLINVOKER__BACKENDS__GEMINI__MIN_IDLE": "1" if backend == "gemini" else "0",
        })
        if backend == "codex":
            e.update({
                "CLINVOKER__BACKENDS__CODEX__COMMAND": str(CODEX),
                "CLINVOKER__BACKENDS__CODEX__BASE_URL": url + "/v1",
                "CLINVOKER__BACKENDS__CODEX__CONVERSATIONS_PER_PROCESS": str(CONCURRENT),
                "OPENAI_API_KEY": "sk-test",
            })
        if backend == "gemini":
            e.update({
                "CLINVOKER__BACKENDS__GEMINI__COMMAND": str(GEMINI),
                "CLINVOKER__BACKENDS__GEMINI__BASE_URL": url,
                "CLINVOKER__BACKENDS__GEMINI__CONVERSATIONS_PER_PROCESS": str(CONCURRENT),
                "GEMINI_API_KEY": "sk-test",
            })
        e.update(extra or {})
        e["CLINVOKER__SERVER__STATE_DIR"] = str(env.tmp / ("state-" + name))
        self.out_path = env.tmp / ("server-%s.stdout" % name)
        self.out = open(self.out_path, "wb")
        self.err = env.log_file("server-%s.stderr" % name)
        self.proc = subprocess.Popen([str(SERVER), "serve", "--port", "0"], cwd=ROOT, env=e,
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)
        self.port = None

    def wait_listening(self, timeout=60):
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

    def wait_idle(self, idle, timeout=180):
        deadline = time.monotonic() + timeout
        health = {}
        while time.monotonic() < deadline:
            health = self.get_json("/health")
            if health.get("idle", 0) >= idle:
                return health
            time.sleep(0.2)
        raise BenchError("clinvoker: fewer than %d idle processes after %ds: %r" % (idle, timeout, health))

    def backend_info(self):
        for b in self.get_json("/api/v1/backends").get("backends", []):
            if b.get("name") == self.backend:
                return b
        return {}

    def get_json(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
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


def pool_processes(server, backend="codex"):
    """The processes of `backend`'s pools, by id, from GET /admin/pools."""
    procs = {}
    for pool in server.get_json("/admin/pools").get("pools", []):
        if pool.get("backend") == backend:
            for p in pool.get("processes", []):
                procs[p["id"]] = p
    return procs


def settled(server, backend="codex", timeout=5):
    """The pool's processes once no slot is in use: a slot is free, and its turn counted, only
    when its conversation is reset (Codex: the thread deleted), just after message_stop."""
    deadline = time.monotonic() + timeout
    procs = pool_processes(server, backend)
    while any(p.get("slots_in_use") for p in procs.values()) and time.monotonic() < deadline:
        time.sleep(0.02)
        procs = pool_processes(server, backend)
    return procs


def codex_concurrency(server, clients, direct):
    """CONCURRENT conversations at once on the Codex pool (one process with CONCURRENT slots):
    GET /admin/pools, polled meanwhile, shows which processes held how many at once. Done with
    the plain prompt and with `SLOW` (the mock paces its deltas 300 ms apart, so the requests stay
    in flight long enough to be seen), each against one request alone, and the same on the
    direct warm process for comparison."""
    out = {"before": settled(server)}
    for label, prompt in (("plain", None), ("slow", "SLOW bench")):
        alone = []
        for i in range(3 if prompt is None else 1):
            t0 = now()
            clients[0].request(i, prompt)
            alone.append(now() - t0)
        seen, stop = {}, threading.Event()

        def sample():
            while not stop.is_set():
                for pid, p in pool_processes(server).items():
                    seen[pid] = max(seen.get(pid, 0), p.get("slots_in_use", 0))
                time.sleep(0.005)

        before = settled(server)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            wall, _ = run_concurrent(CONCURRENT, 1, lambda w, n: clients[w].request(n, prompt))
        finally:
            stop.set()
            sampler.join()
        after = settled(server)
        turns = {pid: after[pid].get("turns", 0) - before.get(pid, {}).get("turns", 0) for pid in after}
        direct_alone = statistics.median(direct.request(0, i, prompt)[0] for i in range(3 if prompt is None else 1))
        direct_wall, _ = run_concurrent(CONCURRENT, 1, lambda w, n: direct.request(w, n, prompt))
        out[label] = {"alone": statistics.median(alone), "wall": wall, "seen": seen, "turns": turns,
                      "processes": sorted(after), "direct_alone": direct_alone, "direct_wall": direct_wall}
    out["after"] = settled(server)
    slow = out["slow"]
    busiest = max(slow["seen"].values()) if slow["seen"] else 0
    out["pass"] = (len(out["before"]) == 1 and sorted(out["after"]) == sorted(out["before"])
                   and len(slow["seen"]) == 1 and busiest == CONCURRENT
                   and sum(slow["turns"].values()) == CONCURRENT)
    return out


def measure(backend, args, env, n_spawn, n_spawn_tput):
    """Every row of one backend: (a), then a server and the direct processes for (b) and (c)."""
    r = {"tput": {}, "notes": [], "skip": None}
    mock = Mock(env, backend, args.mock_delay_ms)
    server, direct, clients = None, None, []
    spawn = SPAWN[backend]
    try:
        # --- (a) spawn-per-request, with nothing else running --------------------------------
        log("%s (a) spawn-per-request: 1 warm-up + %d sequential" % (TITLE[backend], n_spawn))
        spawn(env, mock.port, 0)
        a = [spawn(env, mock.port, i + 1) for i in range(n_spawn)]
        r["a"] = summary(a)
        r["a_result"] = statistics.median(s[2] for s in a)
        per = max(1, math.ceil(n_spawn_tput / 4))
        log("%s (a) spawn-per-request: throughput at concurrency 4 (%d requests)" % (TITLE[backend], 4 * per))
        wall, _ = run_concurrent(4, per, lambda w, n: spawn(env, mock.port, n))
        r["tput"][("a", 4)] = 4 * per / wall
        r["a_tput_n"] = 4 * per
        if backend == "codex":
            log("Codex (a) through the npm wrapper: 3 requests")
            r["a_wrapper"] = statistics.median(
                spawn_codex(env, mock.port, i, program=CODEX)[0] for i in range(3))

        # --- start clinvoker (its pool for this CLI only) and the direct warm processes ------
        log("%s: starting clinvoker" % TITLE[backend])
        extra = {"CLINVOKER__POOL__PARK_CONVERSATIONS": "false"} if args.no_park else None
        server = Server(env, backend, mock.port, extra=extra)
        server.wait_listening()
        info = server.backend_info()
        if not info.get("served"):
            r["skip"] = ("not served by this build (GET /api/v1/backends: %s found=%s served=%s)"
                         % (backend, info.get("found"), info.get("served")))
        else:
            probe = HttpClient(server.port, MODEL[backend])
            try:
                probe.request(0)
            except HttpError as e:
                # A build that lists the CLI but refuses its requests.
                try:
                    message = json.loads(e.body).get("error", {}).get("message", e.body)
                except ValueError:
                    message = e.body
                r["skip"] = "not served by this build (a request answers HTTP %d: %s)" % (e.status, message)
            finally:
                probe.close()
        if r["skip"]:
            log("%s (c) clinvoker skipped: %s" % (TITLE[backend], r["skip"]))
            server.stop()
            server = None
        else:
            server.wait_idle(WARM if backend == "claude" else 1)
            first_ids = sorted(pool_processes(server, backend))
            clients = [HttpClient(server.port, MODEL[backend]) for _ in range(WARM)]
        log("%s: starting the direct warm process(es)" % TITLE[backend])
        direct = DIRECT[backend](env, mock.port)

        # --- warm-up: every process of both sides serves a few turns -------------------------
        log("%s: warm-up" % TITLE[backend])
        direct.prepare(WARM * 3 + 5)
        run_concurrent(WARM, 3, lambda w, n: direct.request(w, n))
        if clients:
            run_concurrent(WARM, 3, lambda w, n: clients[w].request(n))
        for i in range(5):
            direct.request(0, i)
            if clients:
                clients[0].request(i)

        # --- sequential latency: back to back -------------------------------------------------
        # Alternating runs of BLOCK back-to-back requests, (b) then (c), so that drifts in the
        # machine's load (large on a small shared machine) hit both modes alike.
        log("%s (b)%s: %d sequential requests each, back to back, in alternating runs of %d"
            % (TITLE[backend], "" if not clients else " and (c)", args.requests, BLOCK))
        b, c = [], []
        while len(b) < args.requests:
            n = min(BLOCK, args.requests - len(b))
            direct.prepare(n)
            b += [direct.request(0, i) for i in range(n)]
            if clients:
                c += [clients[0].request(i) for i in range(n)]
        r["b"] = summary(b)
        r["c"] = summary(c) if c else None

        # --- Claude Code diagnostics: a pause between requests; a quick-ACK client ------------
        if backend == "claude":
            log("diagnostic: (b) and (c) interleaved, %d requests each" % args.requests)
            bi, ci = [], []
            for i in range(args.requests):
                bi.append(direct.request(0, i))
                ci.append(clients[0].request(i))
            r["interleaved"] = (summary(bi), summary(ci))
            if hasattr(socket, "TCP_QUICKACK"):
                log("diagnostic: (c) back to back with a quick-ACK client, %d requests" % args.requests)
                clients[0].quickack = True
                r["quickack"] = summary([clients[0].request(i) for i in range(args.requests)])
                clients[0].quickack = False

        # --- throughput ----------------------------------------------------------------------
        for level in LEVELS:
            per = max(1, math.ceil(args.tput_requests / level))
            log("%s throughput at concurrency %d: %d requests each for (b)%s"
                % (TITLE[backend], level, per * level, " and (c)" if clients else ""))
            direct.prepare(per * level)
            wall, _ = run_concurrent(level, per, lambda w, n: direct.request(w, n))
            r["tput"][("b", level)] = per * level / wall
            if clients:
                wall, _ = run_concurrent(level, per, lambda w, n: clients[w].request(n))
                r["tput"][("c", level)] = per * level / wall

        if clients and backend != "claude":
            ids = sorted(pool_processes(server, backend))
            if ids != first_ids:
                r["notes"].append("clinvoker's %s pool: process %s at the start of the rows, %s before the end "
                                  "(a process is replaced after `pool.max_turns_per_process` turns, 200 by default)"
                                  % (TITLE[backend], first_ids, ids))

        # --- Codex: 8 concurrent conversations on one process ---------------------------------
        if backend == "codex":
            log("Codex: %d concurrent conversations on clinvoker's one process" % CONCURRENT)
            r["concurrency"] = codex_concurrency(server, clients, direct)

        if clients:
            r["keepalive"] = (sum(cl.connects for cl in clients), sum(cl.requests for cl in clients),
                              sum(cl.dropped for cl in clients))
        r["notes"] += direct.notes()
    finally:
        for cl in clients:
            cl.close()
        if direct is not None:
            direct.close()
        if server is not None:
            server.stop()
        mock.stop()
    return r


def version_of(backend):
    program = {"claude": CLAUDE, "codex": native_codex(), "gemini": GEMINI}[backend]
    try:
        out = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out.splitlines()[-1] if out else "?"


def report(results, args, n_spawn, runtime):
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = "%.2f %.2f %.2f" % os.getloadavg() if hasattr(os, "getloadavg") else "?"
    print("## clinvoker benchmark\n")
    print("- cores: %d%s; load average at the end: %s" % (cores, "" if usable == cores else " (%d usable)" % usable, load))
    print("- mock upstream delay: %d ms before every answer (one mock per CLI, shared by its three modes)"
          % args.mock_delay_ms)
    print("- CLIs: %s" % "; ".join("%s %s" % (TITLE[b], version_of(b)) for b in results))
    print("- latency: %d sequential requests per mode, back to back, each on one process / one kept-alive "
          "connection; (a): %s" % (args.requests, ", ".join("%s %d" % (TITLE[b], n_spawn[b]) for b in results)))
    print("- throughput: about %d requests per cell; (b) Claude Code drives as many warm processes as workers, "
          "Codex and Gemini one process with a conversation per worker; (c) Claude Code has %d warm processes, "
          "Codex and Gemini one process with %d conversation slots; (a) only at concurrency 4 (%s requests)"
          % (args.tput_requests, WARM, CONCURRENT,
             ", ".join("%s %d" % (TITLE[b], results[b]["a_tput_n"]) for b in results)))
    print()
    print("| CLI | mode | requests | p50 latency ms | p95 latency ms | p50 TTFT ms | req/s @1 | req/s @4 | req/s @8 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    names = {"a": "(a) spawn-per-request", "b": "(b) warm CLI, direct", "c": "(c) clinvoker"}
    for backend, r in results.items():
        for key in ("a", "b", "c"):
            row = r.get(key)
            if row is None:
                print("| %s | %s | – | not served by this build: skipped | – | – | – | – | – |"
                      % (TITLE[backend], names[key]))
                continue
            cells = ["%.1f" % r["tput"][(key, lv)] if (key, lv) in r["tput"] else "–" for lv in LEVELS]
            print("| %s | %s | %d | %s | %s | %s | %s |" % (
                TITLE[backend], names[key], row["n"], ms(row["p50"]), ms(row["p95"]),
                ms(row["ttft"]) if row["ttft"] is not None else "–", " | ".join(cells)))
    print()
    for backend, r in results.items():
        t = TARGETS[backend]
        if r.get("c") is None:
            print("- **%s: clinvoker not measured** — %s" % (TITLE[backend], r["skip"]))
            continue
        warm_ratio = r["c"]["p50"] / r["b"]["p50"]
        spawn_ratio = r["a"]["p50"] / r["c"]["p50"]
        print("- **%s: clinvoker p50 / warm-direct p50 = %.2f** (target <= %.2f): **%s**"
              % (TITLE[backend], warm_ratio, t["warm"], "PASS" if warm_ratio <= t["warm"] else "MISS"))
        print("- **%s: spawn-per-request p50 / clinvoker p50 = %.1f** (target >= %.0f): **%s**"
              % (TITLE[backend], spawn_ratio, t["spawn"], "PASS" if spawn_ratio >= t["spawn"] else "MISS"))
    if "codex" in results and "concurrency" in results["codex"]:
        cc = results["codex"]["concurrency"]
        slow, plain = cc["slow"], cc["plain"]
        procs = ", ".join("process %s: %d of %d slots at once, +%d turns"
                          % (pid, held, cc["after"].get(pid, {}).get("slots", 0), slow["turns"].get(pid, 0))
                          for pid, held in sorted(slow["seen"].items())) or "none seen"
        print("- **Codex: %d concurrent conversations on one process** (`SLOW` prompt): %d Codex process(es) "
              "before and %d after; GET /admin/pools during the run: %s; wall %.2f s vs %.2f s for one request "
              "alone (%.2f x): **%s**"
              % (CONCURRENT, len(cc["before"]), len(cc["after"]), procs, slow["wall"], slow["alone"],
                 slow["wall"] / slow["alone"], "PASS" if cc["pass"] else "MISS"))
        print("  - the same `SLOW` requests on the direct warm process (one app-server, %d threads at once): "
              "wall %.2f s vs %.2f s alone (%.2f x)"
              % (CONCURRENT, slow["direct_wall"], slow["direct_alone"], slow["direct_wall"] / slow["direct_alone"]))
        print("  - with the plain prompt: %d concurrent in %s ms vs %s ms for one request alone (%.2f x; at most "
              "%s slots seen in use at once); direct: %s ms vs %s ms (%.2f x)"
              % (CONCURRENT, ms(plain["wall"]), ms(plain["alone"]), plain["wall"] / plain["alone"],
                 max(plain["seen"].values()) if plain["seen"] else 0, ms(plain["direct_wall"]),
                 ms(plain["direct_alone"]), plain["direct_wall"] / plain["direct_alone"]))
    print()
    print("Context (not judged):")
    for backend, r in results.items():
        name = TITLE[backend]
        line = "spawn-per-request until its result line (the process exits later): p50 %s ms" % ms(r["a_result"])
        if r.get("c") is not None:
            line += ", %.1f x clinvoker p50" % (r["a_result"] / r["c"]["p50"])
            if r["c"]["ttft"] and r["b"]["ttft"]:
                print("- %s: clinvoker p50 TTFT / warm-direct p50 TTFT = %.2f" % (name, r["c"]["ttft"] / r["b"]["ttft"]))
        print("- %s: %s" % (name, line))
        if "a_wrapper" in r:
            print("- %s: spawn-per-request through the npm wrapper `codex` (a Node.js script that starts the "
                  "native binary) instead of the binary itself: p50 %s ms (3 requests)" % (name, ms(r["a_wrapper"])))
        if "interleaved" in r:
            bi, ci = r["interleaved"]
            print("- %s with a pause between requests ((b) and (c) interleaved, %d each): p50 %s ms vs %s ms, "
                  "ratio %.2f; TTFT %s vs %s ms" % (name, bi["n"], ms(bi["p50"]), ms(ci["p50"]), ci["p50"] / bi["p50"],
                                                     ms(bi["ttft"]), ms(ci["ttft"])))
        if "quickack" in r:
            q = r["quickack"]
            print("- %s (c) back to back, the client ACKing every segment at once (TCP_QUICKACK): p50 %s ms, "
                  "TTFT %s ms, ratio to warm-direct p50 %.2f" % (name, ms(q["p50"]), ms(q["ttft"]), q["p50"] / r["b"]["p50"]))
        if "keepalive" in r:
            print("- %s HTTP/1.1 keep-alive: %d connections for %d requests (%d reopened after the server closed "
                  "an idle one)" % ((name,) + r["keepalive"]))
        for note in r["notes"]:
            print("- %s" % note)
    print("\ntotal runtime: %.0f s" % runtime)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default=",".join(BACKENDS),
                    help="comma-separated CLIs to measure (default: %s)" % ",".join(BACKENDS))
    ap.add_argument("--requests", type=int, default=100, help="sequential requests per mode (default 100)")
    ap.add_argument("--spawn-requests", type=int, default=None,
                    help="sequential requests for spawn-per-request of Claude Code and Codex "
                         "(default: min(20, --requests))")
    ap.add_argument("--gemini-spawn-requests", type=int, default=5,
                    help="sequential requests for spawn-per-request of Gemini (default 5: each costs "
                         "≈2.5 s and ≈2.5 CPU-s)")
    ap.add_argument("--tput-requests", type=int, default=64,
                    help="requests per throughput measurement (default 64, rounded up to the concurrency)")
    ap.add_argument("--mock-delay-ms", type=int, default=0,
                    help="fixed delay of the mock upstreams before every answer (default 0)")
    ap.add_argument("--quick", action="store_true", help="few requests: a smoke run")
    ap.add_argument("--no-park", action="store_true",
                    help="serve (c) with pool.park_conversations = false (every request reset after)")
    args = ap.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        ap.error("--backends: choose among %s" % ",".join(BACKENDS))
    backends = [b for b in BACKENDS if b in backends]
    if args.quick:
        args.requests = min(args.requests, 10)
        args.tput_requests = min(args.tput_requests, 16)
    n_spawn = args.spawn_requests if args.spawn_requests is not None else min(20, args.requests)
    n_gemini = args.gemini_spawn_requests
    if args.quick:
        n_spawn, n_gemini = min(n_spawn, 3), min(n_gemini, 2)
    if args.requests < 1 or n_spawn < 1 or n_gemini < 1 or args.tput_requests < 1:
        ap.error("request counts must be at least 1")
    spawns = {b: n_gemini if b == "gemini" else n_spawn for b in backends}
    # Spawn throughput: 12 requests from 4 workers (Gemini: 4, one each).
    spawn_tput = {b: 4 if b == "gemini" else min(args.tput_requests, 12) for b in backends}
    needed = [(SERVER, "cargo build --release")]
    needed += [({"claude": CLAUDE, "codex": CODEX, "gemini": GEMINI}[b], "npm ci --prefix tests/node")
               for b in backends]
    for path, hint in needed:
        if not path.exists():
            raise BenchError("%s is missing (%s)" % (path.relative_to(ROOT), hint))
    if "codex" in backends and native_codex() is None:
        raise BenchError("the native Codex binary of the npm package is missing (npm ci --prefix tests/node)")

    started = time.monotonic()
    env = Env()
    results = {}
    try:
        for backend in backends:
            results[backend] = measure(backend, args, env, spawns[backend], spawn_tput[backend])
    finally:
        env.cleanup()
    runtime = time.monotonic() - started
    report(results, args, spawns, runtime)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print("bench: error: %s" % e, file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
