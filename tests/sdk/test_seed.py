"""Every code example of the user guide "Anthropic SDK Integration" (copied verbatim into
seed/) runs against a live server; only the port 8080 is replaced."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import NODE_DIR, clean_env

SEED = Path(__file__).resolve().parent / "seed"


def seed_source(name, port):
    src = (SEED / name).read_text()
    assert src.count("localhost:8080") == 1, "the seed snippet %s should name port 8080 once" % name
    return src.replace("8080", str(port))


def run(cmd, source, cwd=None):
    p = subprocess.run(cmd, input=source, capture_output=True, text=True, timeout=60, cwd=cwd, env=clean_env())
    assert p.returncode == 0, "exit %s\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr)
    return p.stdout


def run_python(source):
    return run([sys.executable, "-"], source)


def only_new_turn(mock, seq, user_text):
    """The upstream request(s) the CLI made for the one turn just served."""
    bodies = [b for b in mock.messages_since(seq) if user_text in str(b.get("messages"))]
    assert len(bodies) == 1, "expected exactly one upstream request for %r, got %d" % (user_text, len(bodies))
    return bodies[0]


def test_python_quickstart(sdk_env, mock):
    seq = mock.last_seq()
    out = run_python(seed_source("quickstart.py", sdk_env.port))
    assert out == "MOCK_OK: Hello, world!\n"
    # `claude` maps to the CLI's `sonnet` alias, which the pinned CLI resolves to this model id.
    assert only_new_turn(mock, seq, "Hello, world!")["model"] == "claude-sonnet-5-5"


def test_python_quickstart_with_claude_sonnet_4(sdk_env, mock):
    src = seed_source("quickstart.py", sdk_env.port)
    assert src.count('model="claude"') == 1
    src = src.replace('model="claude"', 'model="claude-sonnet-4"') + "print(response.model)\n"
    seq = mock.last_seq()
    out = run_python(src)
    # The answer, then the model the response names: the one the client asked for.
    assert out == "MOCK_OK: Hello, world!\nclaude-sonnet-4\n"
    assert only_new_turn(mock, seq, "Hello, world!")["model"] == "claude-sonnet-4-20250514"


def test_python_streaming(sdk_env, mock):
    seq = mock.last_seq()
    out = run_python(seed_source("streaming.py", sdk_env.port))
    assert out == "MOCK_OK: Write a poem"
    assert only_new_turn(mock, seq, "Write a poem")["model"] == "claude-sonnet-5-5"


def test_python_system_prompt(sdk_env, mock):
    seq = mock.last_seq()
    out = run_python(seed_source("system_prompt.py", sdk_env.port))
    assert out == "MOCK_OK: Review this code\n"
    body = only_new_turn(mock, seq, "Review this code")
    system = body["system"]
    texts = [system] if isinstance(system, str) else [b.get("text", "") for b in system]
    assert "You are a helpful coding assistant." in texts, texts


def test_typescript_quickstart(sdk_env, mock):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH")
    seq = mock.last_seq()
    # Read from stdin as an ES module with cwd tests/node, so `@anthropic-ai/sdk` resolves from
    # tests/node/node_modules (the pinned SDK).
    out = run([node, "--input-type=module", "-"], seed_source("quickstart.mjs", sdk_env.port), cwd=NODE_DIR)
    assert out == "MOCK_OK: Hello!\n"
    assert only_new_turn(mock, seq, "Hello!")["model"] == "claude-sonnet-5-5"


def test_health_troubleshooting_command(sdk_env):
    """The guide's troubleshooting step: `curl http://localhost:8080/health`."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    p = subprocess.run([curl, "-sS", "-f", "http://localhost:%d/health" % sdk_env.port],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert re.search(r'"status"\s*:\s*"ok"', p.stdout), p.stdout
