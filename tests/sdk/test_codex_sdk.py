"""The official SDKs against the Codex backend: the real Codex CLI (pinned in tests/node) as the
pool's processes, pointed at the mock Responses upstream (tests/support/mock_openai_responses.py).
Both dialects, streaming and not, with a system prompt and history that must reach the upstream;
client tool round trips (the mock calls a tool for `TOOL:<name>:<json>`)."""
import json
import urllib.request

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


WEATHER = {"name": "get_weather", "description": "Get the current weather for a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}


def codex_hits(server):
    with urllib.request.urlopen(server.url + "/admin/pools", timeout=10) as r:
        pools = json.load(r)["pools"]
    return sum(p["counters"]["conversation_hits"] for p in pools if p["id"] == "codex-default")


def test_anthropic_sdk_tool_round_trip_continues_the_parked_turn(codex):
    """The mock calls the tool for `TOOL:<name>:<json>`; the follow-up's result answers the
    call the parked Codex turn waits on, and reaches the upstream as its function_call_output."""
    server, upstream = codex
    client = anthropic.Anthropic(base_url=server.anthropic_base, api_key="unused", max_retries=0)
    t = token()
    question = {"role": "user", "content": 'weather %s TOOL:get_weather:{"city":"Paris"}' % t}
    first = client.messages.create(model="gpt-5", max_tokens=64, tools=[WEATHER],
                                   messages=[question])
    assert first.stop_reason == "tool_use"
    [call] = [b for b in first.content if b.type == "tool_use"]
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
    before = codex_hits(server)
    answer = client.messages.create(model="gpt-5", max_tokens=64, tools=[WEATHER], messages=[
        question, {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                      "content": "sunny"}]}])
    assert answer.content[0].text == "MOCK_TOOL_RESULT: sunny"
    assert codex_hits(server) == before + 1
    last = upstream_bodies(upstream, t)[-1]["input"][-1]
    assert (last["type"], last["call_id"], last["output"]) == ("function_call_output", call.id, "sunny")


def test_openai_sdk_streams_a_codex_tool_call_and_its_continuation(codex):
    server, _ = codex
    client = openai.OpenAI(base_url=server.url + "/openai/v1", api_key="unused", max_retries=0)
    tools = [{"type": "function", "function": {"name": WEATHER["name"],
              "description": WEATHER["description"], "parameters": WEATHER["input_schema"]}}]
    question = {"role": "user", "content": 'weather %s TOOL:get_weather:{"city":"Rome"}' % token()}
    chunks = list(client.chat.completions.create(model="gpt-5", stream=True, tools=tools,
                                                 messages=[question]))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    call_id = next(tc.id for tc in calls if tc.id)
    arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function)
    assert json.loads(arguments) == {"city": "Rome"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    done = client.chat.completions.create(model="gpt-5", tools=tools, messages=[
        question,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function",
             "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "rain"}])
    assert done.choices[0].message.content == "MOCK_TOOL_RESULT: rain"
