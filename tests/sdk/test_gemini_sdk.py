"""The official SDKs against the Gemini backend: the real Gemini CLI (pinned in tests/node) as the
pool's processes, pointed at the mock Gemini upstream (tests/support/mock_gemini.py)."""
import json

import anthropic
import openai
import pytest

from conftest import REPO, Mock, Server, token

GEMINI = REPO / "tests" / "node" / "node_modules" / ".bin" / "gemini"
GEMINI_MOCK = REPO / "tests" / "support" / "mock_gemini.py"


@pytest.fixture(scope="module")
def gemini(sdk_env, tmp_path_factory):
    if not GEMINI.exists():
        pytest.fail("the Gemini CLI is missing: run `npm ci` in tests/node")
    workdir = tmp_path_factory.mktemp("clinvoker-gemini")
    upstream = Mock(workdir, GEMINI_MOCK)
    server = Server(workdir, sdk_env.mock, "gemini", {
        "CLINVOKER__BACKENDS__GEMINI__COMMAND": str(GEMINI),
        "CLINVOKER__BACKENDS__GEMINI__BASE_URL": upstream.url,
        "CLINVOKER__POOL__READY_TIMEOUT_SECS": "60",
        "GEMINI_API_KEY": "test-key",
    })
    yield server, upstream
    error = server.wait_stopped()
    upstream.stop()
    assert error is None, error


def test_anthropic_sdk_streaming_and_not(gemini):
    server, upstream = gemini
    client = anthropic.Anthropic(base_url=server.anthropic_base, api_key="unused")
    t = token()
    message = client.messages.create(
        model="gemini-2.5-flash", max_tokens=64, system="Terse %s." % t,
        messages=[{"role": "user", "content": "q1 " + t}, {"role": "assistant", "content": "a1"},
                  {"role": "user", "content": "q2 " + t}])
    assert message.content[0].text == "MOCK_OK: q2 " + t
    assert message.model == "gemini-2.5-flash"
    assert message.usage.output_tokens == 7
    bodies = [r["body"] for r in upstream.log() if "q2 " + t in json.dumps(r.get("body"))]
    assert any("Terse %s." % t in json.dumps(b.get("systemInstruction")) for b in bodies), bodies
    t2 = token()
    with client.messages.stream(model="gemini-2.5-flash", max_tokens=64,
                                messages=[{"role": "user", "content": "s " + t2}]) as stream:
        text = "".join(stream.text_stream)
    assert text == "MOCK_OK: s " + t2


def test_openai_sdk(gemini):
    server, _ = gemini
    client = openai.OpenAI(base_url=server.url + "/openai/v1", api_key="unused")
    t = token()
    done = client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi " + t}])
    assert done.choices[0].message.content == "MOCK_OK: hi " + t
    with pytest.raises(openai.RateLimitError):
        openai.OpenAI(base_url=server.url + "/openai/v1", api_key="unused", max_retries=0) \
            .chat.completions.create(model="gemini-2.5-flash",
                                     messages=[{"role": "user", "content": "FAIL429 " + token()}])
