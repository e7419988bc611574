"""The official SDKs against the Codex backend: the real Codex CLI (pinned in tests/node) as the
pool's processes, pointed at the mock Responses upstream (tests/support/mock_openai_responses.py).
Both dialects, streaming and not, with a system prompt and history that must reach the upstream."""
import json

import anthropic
import openai
import pytest

from conftest import REPO, Mock, Server, token

CODEX = REPO / "tests" / "node" / "node_modules" / ".bin" / "codex"
RESPONSES_MOCK = REPO / "tests" / "support" / "mock_openai_responses.py"


@pytest.fixture(scope="module")
def codex(sdk_env, tmp_path_factory):
    if not CODEX.exists():
        pytest.fail("the Codex CLI is missing: run `npm ci` in tests/node")
    workdir = tmp_path_factory.mktemp("clinvoker-codex")
    upstream = Mock(workdir, RESPONSES_MOCK)
    server = Server(workdir, sdk_env.mock, "codex", {
        "CLINVOKER__BACKENDS__CODEX__COMMAND": str(CODEX),
        "CLINVOKER__BACKENDS__CODEX__BASE_URL": upstream.url + "/v1",
        "CLINVOKER__BACKENDS__CODEX__REQUEST_MAX_RETRIES": "0",
        "OPENAI_API_KEY": "sk-test",
    })
    yield server, upstream
    error = server.wait_stopped()
    upstream.stop()
    assert error is None, error


def upstream_bodies(upstream, marker):
    return [r["body"] for r in upstream.log()
            if r["path"].endswith("/responses") and marker in json.dumps(r["body"])]


def messages_of(body):
    """(role, text) of the message items of a Responses request."""
    out = []
    for item in body["input"]:
        if item.get("type") == "message":
            text = "".join(p.get("text", "") for p in item["content"])
            out.append((item["role"], text))
    return out


def test_anthropic_sdk_with_system_and_history(codex):
    server, upstream = codex
    t = token()
    client = anthropic.Anthropic(base_url=server.anthropic_base, api_key="unused")
    message = client.messages.create(
        model="gpt-5", max_tokens=64, system="Answer briefly %s." % t,
        messages=[{"role": "user", "content": "q1 " + t},
                  {"role": "assistant", "content": "a1"},
                  {"role": "user", "content": "q2 " + t}])
    assert message.content[0].text == "MOCK_OK: q2 " + t
    assert message.model == "gpt-5"
    assert message.usage.output_tokens == 7
    [body] = upstream_bodies(upstream, "q2 " + t)
    convo = messages_of(body)
    assert convo[0] == ("developer", "Answer briefly %s." % t)
    assert convo[-3:] == [("user", "q1 " + t), ("assistant", "a1"), ("user", "q2 " + t)]

    t2 = token()
    with client.messages.stream(model="gpt-5", max_tokens=64,
                                messages=[{"role": "user", "content": "stream " + t2}]) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(deltas) == "MOCK_OK: stream " + t2
    assert len(deltas) > 1, deltas
    assert final.stop_reason == "end_turn"


def test_openai_sdk_streaming_and_not(codex):
    server, _ = codex
    client = openai.OpenAI(base_url=server.url + "/openai/v1", api_key="unused")
    t = token()
    done = client.chat.completions.create(
        model="gpt-5", messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "hi " + t}])
    assert done.choices[0].message.content == "MOCK_OK: hi " + t
    assert done.choices[0].finish_reason == "stop"
    assert done.usage.completion_tokens == 7
    t2 = token()
    chunks = list(client.chat.completions.create(
        model="gpt-5", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "s " + t2}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "MOCK_OK: s " + t2
    assert chunks[-1].usage.completion_tokens == 7


def test_upstream_rate_limit_is_the_sdks_rate_limit_error(codex):
    server, _ = codex
    client = anthropic.Anthropic(base_url=server.anthropic_base, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="gpt-5", max_tokens=16,
                               messages=[{"role": "user", "content": "FAIL429 " + token()}])
