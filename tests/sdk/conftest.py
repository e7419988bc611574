"""Fixtures for the official-SDK suite: a mock Anthropic upstream and clinvoker servers whose
pools run the real Claude Code CLI (pinned in tests/node/package.json) against that mock.

Run from the repository root:  .venv/bin/pytest -q tests/sdk
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BINARY = REPO / "target" / "debug" / "clinvoker"
CLAUDE = REPO / "tests" / "node" / "node_modules" / ".bin" / "claude"
MOCK = REPO / "tests" / "support" / "mock_anthropic.py"
NODE_DIR = REPO / "tests" / "node"

START_TIMEOUT = 30.0
# An idle server ends its children and exits in well under a second; a slow exit is a bug.
STOP_TIMEOUT = 5.0
# Servers started in this session, for the stderr tail printed with a failing test.
RUNNING = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token():
    """A marker unique to one test, to find that test's requests in the mock's log."""
    return "tok" + uuid.uuid4().hex[:12]


def clean_env():
    """The environment of this process without anything that could steer the server, the CLI or
    the SDKs away from the test setup (a developer's own keys, base URLs, clinvoker settings)."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("CLINVOKER", "ANTHROPIC_", "CLAUDE_CODE_", "OPENAI_")) or k == "CLAUDE_CONFIG_DIR":
            del env[k]
    return env


def _die_with_parent():
    """Linux: have the child receive SIGTERM if the test process dies without cleaning up."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Mock:
    """tests/support/mock_anthropic.py (or another mock of tests/support) on a free port."""

    def __init__(self, workdir, script=MOCK):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.out = open(workdir / ("%s.log" % Path(script).stem), "wb")
        # --exit-on-stdin-eof: the mock ends with this process even if teardown never runs.
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(self.port), "--exit-on-stdin-eof"],
            stdin=subprocess.PIPE, stdout=self.out, stderr=subprocess.STDOUT, env=clean_env(),
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.log()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the mock upstream did not start (see %s)" % self.out.name)
                time.sleep(0.05)

    def log(self):
        """Every request the mock has received (with headers and parsed JSON body)."""
        with urllib.request.urlopen(self.url + "/__log", timeout=10) as r:
            return json.load(r)

    def last_seq(self):
        log = self.log()
        return log[-1]["n"] if log else 0

    def messages_since(self, seq):
        """Bodies of the POST /v1/messages requests received after log entry `seq`."""
        return [r["body"] for r in self.log()
                if r["n"] > seq and r["method"] == "POST" and r["path"].startswith("/v1/messages")
                and "count_tokens" not in r["path"] and isinstance(r["body"], dict)]

    def requests_with(self, marker):
        """Bodies of the upstream /v1/messages requests whose JSON contains `marker`."""
        return [b for b in self.messages_since(0) if marker in json.dumps(b)]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.out.close()


class Server:
    """`clinvoker serve --port 0` with the real CLI against the mock."""

    def __init__(self, workdir, mock, name, extra_env=None):
        if not BINARY.exists():
            pytest.fail("%s is missing: run `cargo build` in the repository root" % BINARY.relative_to(REPO))
        if not CLAUDE.exists():
            pytest.fail("the Claude Code CLI is missing: run `npm ci` in tests/node")
        self.name = name
        workdir = workdir / name
        workdir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = workdir / "stdout.log"
        self.stderr_path = workdir / "stderr.log"
        env = clean_env()
        env.update({
            # The CLI children inherit the server's environment.
            "ANTHROPIC_BASE_URL": mock.url,
            "ANTHROPIC_API_KEY": "sk-test",
            "CLINVOKER__BACKENDS__CLAUDE__COMMAND": str(CLAUDE),
            "CLINVOKER__SERVER__STATE_DIR": str(workdir / "state"),
            "CLINVOKER__POOL__MAX_PROCESSES": "4",
            "CLINVOKER__POOL__MAX_TOTAL_PROCESSES": "8",
        })
        env.update(extra_env or {})
        self.stopped_at = None
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([str(BINARY), "serve", "--port", "0"], stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent)
        RUNNING.append(self)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            line = self.stdout_path.read_text()
            if "listening on http://" in line:
                break
            if self.proc.poll() is not None:
                raise RuntimeError("clinvoker exited at startup (%s):\n%s" % (self.proc.returncode, self.stderr_tail()))
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("clinvoker did not print its listening line:\n%s" % self.stderr_tail())
            time.sleep(0.05)
        first = line.splitlines()[0]
        assert first.startswith("clinvoker listening on http://127.0.0.1:"), first
        self.port = int(first.rsplit(":", 1)[1])
        self.url = "http://127.0.0.1:%d" % self.port
        # What the seed document's clients use as base_url.
        self.anthropic_base = "http://localhost:%d/anthropic/v1" % self.port

    def stderr_tail(self, lines=40):
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no stderr)"

    def terminate(self):
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self):
        """Waits for the exit after SIGTERM; returns an error text, or None if it stopped in time."""
        self.terminate()
        remaining = STOP_TIMEOUT - (time.monotonic() - self.stopped_at)
        try:
            rc = self.proc.wait(max(remaining, 0.1))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return "%s server did not exit within %ds of SIGTERM:\n%s" % (self.name, STOP_TIMEOUT, self.stderr_tail())
        finally:
            if self in RUNNING:
                RUNNING.remove(self)
        if rc != 0:
            return "%s server exited with status %s after SIGTERM:\n%s" % (self.name, rc, self.stderr_tail())
        return None


class Env:
    """What tests get: the mock and the open (no API keys) server."""

    def __init__(self, mock, server):
        self.mock = mock
        self.server = server
        self.port = server.port
        self.mock_port = mock.port
        self.base_url = server.anthropic_base
        self.to_stop = [server]


@pytest.fixture(scope="session")
def sdk_env(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("clinvoker-sdk")
    mock = Mock(workdir)
    try:
        server = Server(workdir, mock, "open")
    except BaseException:
        mock.stop()
        raise
    env = Env(mock, server)
    yield env
    # Servers are signalled together and waited for together (see `keyed_server`).
    for s in env.to_stop:
        s.terminate()
    errors = [e for e in (s.wait_stopped() for s in env.to_stop) if e]
    mock.stop()
    assert not errors, "\n\n".join(errors)


KEYS = ("sdk-key-one", "sdk-key-two")


@pytest.fixture(scope="session")
def keyed_server(sdk_env, tmp_path_factory):
    """A second server that requires one of KEYS (x-api-key or Authorization: Bearer)."""
    server = Server(tmp_path_factory.mktemp("clinvoker-keyed"), sdk_env.mock, "keyed",
                    {"CLINVOKER_API_KEYS": ",".join(KEYS)})
    yield server
    # SIGTERM now; `sdk_env`'s teardown (which runs right after, as this fixture depends on it)
    # waits for this exit too and asserts it happened within STOP_TIMEOUT.
    server.terminate()
    sdk_env.to_stop.append(server)


@pytest.fixture()
def mock(sdk_env):
    return sdk_env.mock


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for s in list(RUNNING):
            report.sections.append(("clinvoker %s server stderr (tail)" % s.name, s.stderr_tail()))
