"""Client tool use through the official SDKs, with the real Claude Code CLI on the mock upstream.

The mock answers `TOOL:<name>:<json>` in the last user text with a `tool_use` block per marker
(stop_reason tool_use) and a `tool_result` with `MOCK_OK: TOOL_RESULT: <result text>`. A round
trip: request with tools → tool_use / tool_calls answer → follow-up carrying the results → final
text. The follow-up that resends the answer as the SDK returned it continues the turn parked in
its process (the pending calls answered with the results: a conversation hit in /admin/pools);
anything else replays the whole history into a clean process."""
import json
import urllib.request

import anthropic
import openai
import pytest

from conftest import token

TIMEOUT = 60.0

WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"],
    },
}
OPENAI_WEATHER = {"type": "function", "function": {
    "name": WEATHER["name"], "description": WEATHER["description"], "parameters": WEATHER["input_schema"]}}


@pytest.fixture()
def claude(sdk_env):
    return anthropic.Anthropic(base_url=sdk_env.base_url, api_key="unused", max_retries=0, timeout=TIMEOUT)


@pytest.fixture()
def gpt(sdk_env):
    return openai.OpenAI(base_url="http://127.0.0.1:%d/openai/v1" % sdk_env.port, api_key="unused",
                         max_retries=0, timeout=TIMEOUT)


def hits(sdk_env):
    """Follow-ups that continued a parked conversation, over all pools."""
    url = "http://127.0.0.1:%d/admin/pools" % sdk_env.port
    with urllib.request.urlopen(url, timeout=10) as r:
        pools = json.load(r)["pools"]
    return sum(p["counters"]["conversation_hits"] for p in pools)


def upstream_with(mock, marker):
    bodies = mock.requests_with(marker)
    assert bodies, "no upstream request carried %s" % marker
    return bodies


def advertised(body):
    return {t["name"]: t for t in body.get("tools") or []}


def assert_tool_advertised(body):
    tool = advertised(body).get("get_weather")
    assert tool is not None, "the client's tool was not advertised: %s" % list(advertised(body))
    assert tool["description"] == WEATHER["description"]
    assert tool["input_schema"]["properties"] == WEATHER["input_schema"]["properties"]
    assert tool["input_schema"]["required"] == ["city"]


def tool_results_upstream(mock, marker):
    """The upstream tool_result blocks of the requests carrying `marker`, by tool_use id."""
    out = {}
    for body in upstream_with(mock, marker):
        for m in body["messages"]:
            if m["role"] == "user" and isinstance(m["content"], list):
                for b in m["content"]:
                    if b.get("type") == "tool_result":
                        c = b.get("content")
                        text = c if isinstance(c, str) else "".join(x.get("text", "") for x in c or [])
                        out[b["tool_use_id"]] = text
    return out


def anthropic_round_trip(claude, mock, stream, cities, sdk_env):
    t = token()
    markers = " ".join('TOOL:get_weather:{"city":"%s"}' % c for c in cities)
    question = {"role": "user", "content": "Weather please %s %s" % (t, markers)}
    kw = dict(model="claude", max_tokens=200, tools=[WEATHER], messages=[question])
    if stream:
        with claude.messages.stream(**kw) as s:
            events = [e.type for e in s]
            first = s.get_final_message()
        assert "input_json" in events or "content_block_delta" in events
    else:
        first = claude.messages.create(**kw)
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": c}) for c in cities]
    assert_tool_advertised(upstream_with(mock, t)[0])

    results = [{"type": "tool_result", "tool_use_id": u.id, "content": "sunny in %s" % u.input["city"]}
               for u in uses]
    follow = dict(kw, messages=[question, {"role": "assistant", "content": first.content},
                                {"role": "user", "content": results}])
    before = hits(sdk_env)
    if stream:
        with claude.messages.stream(**follow) as s:
            final = s.get_final_message()
    else:
        final = claude.messages.create(**follow)
    assert final.stop_reason == "end_turn"
    text = "".join(b.text for b in final.content if b.type == "text")
    assert text.startswith("MOCK_OK: TOOL_RESULT: sunny in %s" % cities[0]), text
    sent = tool_results_upstream(mock, t)
    assert sent == {u.id: "sunny in %s" % u.input["city"] for u in uses}
    assert hits(sdk_env) == before + 1, "the follow-up continued the parked turn"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_anthropic_tool_round_trip(claude, mock, stream, sdk_env):
    anthropic_round_trip(claude, mock, stream, ["Paris"], sdk_env)


def test_anthropic_parallel_tool_calls(claude, mock, sdk_env):
    anthropic_round_trip(claude, mock, False, ["Paris", "Rome"], sdk_env)


def openai_first(gpt, question, stream):
    kw = dict(model="claude", tools=[OPENAI_WEATHER], messages=[question])
    if not stream:
        r = gpt.chat.completions.create(**kw)
        choice = r.choices[0]
        assert choice.message.content in (None, "Calling a tool.")
        return choice.finish_reason, choice.message.content, [
            (c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
    calls, finish, text = {}, None, ""
    for chunk in gpt.chat.completions.create(stream=True, **kw):
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        text += choice.delta.content or ""
        for d in choice.delta.tool_calls or []:
            c = calls.setdefault(d.index, {"id": None, "name": None, "arguments": ""})
            c["id"] = d.id or c["id"]
            if d.function:
                c["name"] = d.function.name or c["name"]
                c["arguments"] += d.function.arguments or ""
    return finish, text or None, [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_openai_tool_round_trip(gpt, mock, stream, sdk_env):
    t = token()
    question = {"role": "user",
                "content": 'Weather %s TOOL:get_weather:{"city":"Paris"} TOOL:get_weather:{"city":"Rome"}' % t}
    finish, content, calls = openai_first(gpt, question, stream)
    assert finish == "tool_calls"
    assert [(name, json.loads(args)) for _, name, args in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    assert_tool_advertised(upstream_with(mock, t)[0])

    # The answer resent as the SDK returned it: its text (if any) and its calls.
    assistant = {"role": "assistant", "content": content, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls]}
    tools = [{"role": "tool", "tool_call_id": i, "content": "sunny in %s" % json.loads(a)["city"]}
             for i, _, a in calls]
    before = hits(sdk_env)
    r = gpt.chat.completions.create(model="claude", tools=[OPENAI_WEATHER],
                                    messages=[question, assistant] + tools)
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content.startswith("MOCK_OK: TOOL_RESULT: sunny in Paris")
    assert tool_results_upstream(mock, t) == {calls[0][0]: "sunny in Paris", calls[1][0]: "sunny in Rome"}
    assert hits(sdk_env) == before + 1, "the follow-up continued the parked turn"


def test_tool_choice_none_runs_without_tools(claude, gpt, mock):
    t = token()
    r = claude.messages.create(model="claude", max_tokens=50, tools=[WEATHER], tool_choice={"type": "none"},
                               messages=[{"role": "user", "content": "plain %s" % t}])
    assert r.stop_reason == "end_turn"
    assert "get_weather" not in advertised(upstream_with(mock, t)[0])
    t = token()
    r = gpt.chat.completions.create(model="claude", tools=[OPENAI_WEATHER], tool_choice="none",
                                    messages=[{"role": "user", "content": "plain %s" % t}])
    assert r.choices[0].message.content == "MOCK_OK: plain %s" % t
    assert "get_weather" not in advertised(upstream_with(mock, t)[0])


def test_a_forced_tool_choice_is_refused_in_each_dialect(claude, gpt):
    with pytest.raises(anthropic.BadRequestError) as e:
        claude.messages.create(model="claude", max_tokens=50, tools=[WEATHER], tool_choice={"type": "any"},
                               messages=[{"role": "user", "content": "x"}])
    assert "tool_choice" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        gpt.chat.completions.create(model="claude", tools=[OPENAI_WEATHER], tool_choice="required",
                                    messages=[{"role": "user", "content": "x"}])
    assert e.value.param == "tool_choice"
