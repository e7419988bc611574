"""The official Python SDK (`anthropic`) against clinvoker, beyond the guide's examples. The
mock upstream answers `MOCK_OK: <first 60 chars of the last user text>`; each test marks its
prompts with a unique token and finds its own upstream requests in the mock's log by it."""
import asyncio
import json
import urllib.error
import urllib.request

import anthropic
import pytest

from conftest import KEYS, token

TIMEOUT = 60.0


@pytest.fixture()
def client(sdk_env):
    return anthropic.Anthropic(base_url=sdk_env.base_url, api_key="unused", max_retries=0, timeout=TIMEOUT)


def conversation(body):
    """(role, text) of the user/assistant messages of an upstream request, skipping the blocks
    the CLI adds itself (reminders and the like start with '<')."""
    out = []
    for m in body["messages"]:
        if m.get("role") not in ("user", "assistant"):
            continue
        c = m["content"]
        if isinstance(c, str):
            text = c
        else:
            text = "".join(b.get("text", "") for b in c if b.get("type") == "text"
                           and not b.get("text", "").startswith("<"))
        out.append((m["role"], text.strip()))
    return out


def system_texts(body):
    system = body.get("system") or []
    return [system] if isinstance(system, str) else [b.get("text", "") for b in system]


def one_upstream(mock, marker):
    bodies = mock.requests_with(marker)
    assert len(bodies) == 1, "expected one upstream request carrying %s, got %d" % (marker, len(bodies))
    return bodies[0]


def test_create_returns_the_upstream_answer(client, mock):
    t = token()
    raw = client.messages.with_raw_response.create(
        model="claude", max_tokens=100, messages=[{"role": "user", "content": "Hi there %s" % t}])
    assert raw.headers.get("request-id", "").strip(), "every response carries a request-id header"
    r = raw.parse()
    assert r.type == "message" and r.role == "assistant"
    assert [b.type for b in r.content] == ["text"]
    assert r.content[0].text == "MOCK_OK: Hi there %s" % t
    assert r.model == "claude"
    assert r.stop_reason == "end_turn"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (11, 7)
    assert one_upstream(mock, t)["model"] == "claude-sonnet-5-5"


def test_claude_sonnet_4_maps_to_its_dated_id(client, mock):
    t = token()
    r = client.messages.create(model="claude-sonnet-4", max_tokens=100,
                               messages=[{"role": "user", "content": "Which model %s" % t}])
    assert r.model == "claude-sonnet-4"
    assert r.content[0].text == "MOCK_OK: Which model %s" % t
    assert one_upstream(mock, t)["model"] == "claude-sonnet-4-20250514"


def test_streaming_yields_several_deltas_and_a_final_message(client, mock):
    t = token()
    prompt = "Write a short poem about rivers %s" % t
    with client.messages.stream(model="claude", max_tokens=100,
                                messages=[{"role": "user", "content": prompt}]) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(deltas) >= 3, "the text should arrive incrementally, got %r" % deltas
    assert "".join(deltas) == "MOCK_OK: " + prompt
    assert final.content[0].text == "MOCK_OK: " + prompt
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 11
    assert final.usage.output_tokens == 7
    assert final.model == "claude"
    one_upstream(mock, t)


def test_raw_stream_events_are_in_protocol_order(client):
    t = token()
    stream = client.messages.create(model="claude", max_tokens=100, stream=True,
                                    messages=[{"role": "user", "content": "Events %s" % t}])
    types = [e.type for e in stream]
    assert types[0] == "message_start"
    assert types[-2:] == ["message_delta", "message_stop"]
    assert types[1] == "content_block_start"
    assert types.count("content_block_delta") >= 2
    assert types.index("content_block_stop") > max(i for i, x in enumerate(types) if x == "content_block_delta")


def test_system_prompt_as_text_blocks_reaches_upstream(client, mock):
    t = token()
    r = client.messages.create(
        model="claude", max_tokens=100,
        system=[{"type": "text", "text": "You answer tersely %s." % t},
                {"type": "text", "text": "Second system block %s." % t}],
        messages=[{"role": "user", "content": "Question %s" % t}])
    assert r.content[0].text == "MOCK_OK: Question %s" % t
    texts = system_texts(one_upstream(mock, "Question %s" % t))
    joined = "\n".join(texts)
    assert "You answer tersely %s." % t in joined, texts
    assert "Second system block %s." % t in joined, texts
    assert joined.index("You answer tersely") < joined.index("Second system block")


def test_multi_turn_history_reaches_upstream_in_order(client, mock):
    t = token()
    r = client.messages.create(model="claude", max_tokens=100, messages=[
        {"role": "user", "content": "first question %s" % t},
        {"role": "assistant", "content": "first answer %s" % t},
        {"role": "user", "content": "second question %s" % t},
    ])
    assert r.content[0].text == "MOCK_OK: second question %s" % t
    body = one_upstream(mock, "second question %s" % t)
    assert conversation(body) == [
        ("user", "first question %s" % t),
        ("assistant", "first answer %s" % t),
        ("user", "second question %s" % t),
    ], json.dumps(body["messages"])[:2000]


def test_consecutive_requests_do_not_share_a_conversation(client, mock):
    first, second = token(), token()
    a = client.messages.create(model="claude", max_tokens=100,
                               messages=[{"role": "user", "content": "Remember %s" % first}])
    b = client.messages.create(model="claude", max_tokens=100,
                               messages=[{"role": "user", "content": "What did I say? %s" % second}])
    assert a.content[0].text == "MOCK_OK: Remember %s" % first
    assert b.content[0].text == "MOCK_OK: What did I say? %s" % second
    body = one_upstream(mock, second)
    assert first not in json.dumps(body), "the second request carried the first one's text"
    assert conversation(body) == [("user", "What did I say? %s" % second)]


def test_sixteen_concurrent_requests_each_get_their_own_answer(sdk_env, mock):
    t = token()
    prompts = ["Concurrent %02d %s" % (i, t) for i in range(16)]

    async def main():
        async with anthropic.AsyncAnthropic(base_url=sdk_env.base_url, api_key="unused",
                                            max_retries=0, timeout=TIMEOUT) as client:
            return await asyncio.gather(*(
                client.messages.create(model="claude", max_tokens=100,
                                       messages=[{"role": "user", "content": p}])
                for p in prompts))

    replies = asyncio.run(main())
    assert [r.content[0].text for r in replies] == ["MOCK_OK: " + p for p in prompts]
    upstream = mock.requests_with(t)
    assert len(upstream) == 16
    for body in upstream:
        convo = conversation(body)
        assert len(convo) == 1 and convo[0][0] == "user", convo
        assert sum(p in json.dumps(body) for p in prompts) == 1, "one prompt per upstream request"


def assert_anthropic_error(err, status, etype):
    assert err.status_code == status
    body = err.response.json()
    assert body["type"] == "error", body
    assert body["error"]["type"] == etype, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    rid = err.response.headers.get("request-id")
    assert rid and body["request_id"] == rid, (rid, body)
    return body


def test_missing_max_tokens_is_a_bad_request(client):
    # The SDK's typed `create` refuses a missing max_tokens locally, so send the body with the
    # client's own transport.
    with pytest.raises(anthropic.BadRequestError) as e:
        client.post("/v1/messages", cast_to=object,
                    body={"model": "claude", "messages": [{"role": "user", "content": "no limit"}]})
    body = assert_anthropic_error(e.value, 400, "invalid_request_error")
    assert "max_tokens" in body["error"]["message"]


def test_empty_messages_is_a_bad_request(client):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="claude", max_tokens=100, messages=[])
    assert_anthropic_error(e.value, 400, "invalid_request_error")


def test_upstream_overload_is_relayed_as_529(client, mock):
    t = token()
    with pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(model="claude", max_tokens=100,
                               messages=[{"role": "user", "content": "FAIL529 %s" % t}])
    assert isinstance(e.value, anthropic.InternalServerError)
    assert isinstance(e.value, anthropic.OverloadedError)
    assert_anthropic_error(e.value, 529, "overloaded_error")
    assert e.value.response.headers.get("retry-after", "").isdigit()
    assert mock.requests_with(t), "the CLI did call the upstream"
    # The process that saw the failure is still usable, or replaced: the next request works.
    ok = token()
    r = client.messages.create(model="claude", max_tokens=100,
                               messages=[{"role": "user", "content": "After overload %s" % ok}])
    assert r.content[0].text == "MOCK_OK: After overload %s" % ok


def get(url, headers=None):
    """(status, parsed JSON body) of a GET."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_health_reports_the_pinned_cli(sdk_env):
    status, health = get(sdk_env.server.url + "/health")
    assert status == 200
    assert health["status"] == "ok"
    claude = health["backends"]["claude"]
    assert claude["found"] is True
    assert "2.1.331" in claude["version"]


# --- API keys ------------------------------------------------------------------------------


@pytest.fixture()
def no_env_credentials(monkeypatch):
    """The SDK falls back to ANTHROPIC_API_KEY / ANTHROPIC_AUTH_TOKEN from the environment."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)


def keyed_client(server, **creds):
    return anthropic.Anthropic(base_url=server.anthropic_base, max_retries=0, timeout=TIMEOUT, **creds)


def ask(client, text):
    return client.messages.create(model="claude", max_tokens=100, messages=[{"role": "user", "content": text}])


@pytest.mark.parametrize("creds", [{"api_key": "wrong-key"}, {"auth_token": "wrong-key"}],
                         ids=["x-api-key", "bearer"])
def test_wrong_key_is_an_authentication_error(keyed_server, mock, no_env_credentials, creds):
    t = token()
    with pytest.raises(anthropic.AuthenticationError) as e:
        ask(keyed_client(keyed_server, **creds), "Locked out %s" % t)
    assert_anthropic_error(e.value, 401, "authentication_error")
    assert not mock.requests_with(t), "a refused request must not reach the upstream"


def test_right_key_as_x_api_key_works(keyed_server, no_env_credentials):
    t = token()
    r = ask(keyed_client(keyed_server, api_key=KEYS[0]), "Key header %s" % t)
    assert r.content[0].text == "MOCK_OK: Key header %s" % t


def test_right_key_as_bearer_token_works(keyed_server, no_env_credentials):
    t = token()
    client = keyed_client(keyed_server, auth_token=KEYS[1])
    raw = client.messages.with_raw_response.create(
        model="claude", max_tokens=100, messages=[{"role": "user", "content": "Bearer %s" % t}])
    sent = raw.http_request.headers
    assert sent.get("authorization") == "Bearer " + KEYS[1] and "x-api-key" not in sent
    assert raw.parse().content[0].text == "MOCK_OK: Bearer %s" % t


def test_keyed_server_health_is_open_and_openapi_needs_a_key(keyed_server):
    # Probes carry no keys.
    status, body = get(keyed_server.url + "/health")
    assert status == 200 and body["backends"]["claude"]["found"] is True, body
    status, body = get(keyed_server.url + "/openapi.json")
    # Routes outside the Anthropic and OpenAI dialects answer in clinvoker's own error shape.
    assert status == 401 and body["error"]["type"] == "authentication_error", body
    status, body = get(keyed_server.url + "/openapi.json", {"x-api-key": KEYS[0]})
    assert status == 200 and "/anthropic/v1/messages" in body["paths"], body
