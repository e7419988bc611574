"""The official OpenAI Python SDK (`openai`) against clinvoker's OpenAI dialect (base URL
`/openai/v1`). The mock upstream answers `MOCK_OK: <first 60 chars of the last user text>`; each
test marks its prompts with a unique token and finds its own upstream requests in the mock's log
by it."""
import asyncio
import json

import openai
import pytest

from conftest import KEYS, token

TIMEOUT = 60.0
# A 1x1 transparent PNG.
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def openai_base(server):
    return "http://127.0.0.1:%d/openai/v1" % server.port


@pytest.fixture()
def client(sdk_env):
    return openai.OpenAI(base_url=openai_base(sdk_env.server), api_key="unused", max_retries=0, timeout=TIMEOUT)


def ask(client, text, **kw):
    return client.chat.completions.create(model="claude", messages=[{"role": "user", "content": text}], **kw)


def one_upstream(mock, marker):
    bodies = mock.requests_with(marker)
    assert len(bodies) == 1, "expected one upstream request carrying %s, got %d" % (marker, len(bodies))
    return bodies[0]


def texts(content):
    """The text of an upstream message's content, without the blocks the CLI adds itself."""
    if isinstance(content, str):
        return content.strip()
    return "".join(b.get("text", "") for b in content
                   if b.get("type") == "text" and not b.get("text", "").startswith("<")).strip()


def test_create_returns_a_chat_completion(client, mock):
    t = token()
    raw = client.chat.completions.with_raw_response.create(
        model="claude", temperature=0.2, max_completion_tokens=100, seed=1, user="u",
        messages=[{"role": "user", "content": "Hi there %s" % t}])
    assert raw.http_request.url.path == "/openai/v1/chat/completions"
    assert raw.headers.get("x-request-id", "").strip()
    r = raw.parse()
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.model == "claude"
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "MOCK_OK: Hi there %s" % t
    assert choice.finish_reason == "stop"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (11, 7, 18)
    assert one_upstream(mock, t)["model"] == "claude-sonnet-5-5"


def test_streaming_yields_content_deltas_and_a_usage_chunk(client):
    t = token()
    prompt = "Write a short poem about rivers %s" % t
    stream = ask(client, prompt, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) >= 3, "streamed in several deltas, not one: %r" % deltas
    assert "".join(deltas) == "MOCK_OK: " + prompt
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (11, 7)


def test_system_developer_and_history_reach_upstream(client, mock):
    t = token()
    r = client.chat.completions.create(model="claude", messages=[
        {"role": "system", "content": "You are terse %s." % t},
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": "First question %s" % t},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": [{"type": "text", "text": "Second question %s" % t}]},
    ])
    assert r.choices[0].message.content == "MOCK_OK: Second question %s" % t
    body = one_upstream(mock, "Second question %s" % t)
    system = body.get("system") or []
    system = system if isinstance(system, str) else " ".join(b.get("text", "") for b in system)
    assert "You are terse %s.\n\nAnswer in English." % t in system
    convo = [(m["role"], texts(m["content"])) for m in body["messages"] if m["role"] in ("user", "assistant")]
    assert convo == [("user", "First question %s" % t), ("assistant", "First answer"),
                     ("user", "Second question %s" % t)], convo


def test_an_image_part_reaches_upstream_as_an_image_block(client, mock):
    t = token()
    r = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": [
        {"type": "text", "text": "Describe %s" % t},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PIXEL}},
    ]}])
    assert r.choices[0].message.content.startswith("MOCK_OK: Describe %s" % t)
    last = [m for m in one_upstream(mock, t)["messages"] if m["role"] == "user"][-1]
    images = [b for b in last["content"] if b.get("type") == "image"]
    assert len(images) == 1 and images[0]["source"]["type"] == "base64", last
    assert images[0]["source"]["media_type"] == "image/png"


def test_sixteen_concurrent_requests_each_get_their_own_answer(sdk_env, mock):
    t = token()
    prompts = ["Concurrent %02d %s" % (i, t) for i in range(16)]

    async def main():
        async with openai.AsyncOpenAI(base_url=openai_base(sdk_env.server), api_key="unused",
                                      max_retries=0, timeout=TIMEOUT) as client:
            return await asyncio.gather(*(
                client.chat.completions.create(model="claude", messages=[{"role": "user", "content": p}])
                for p in prompts))

    replies = asyncio.run(main())
    assert [r.choices[0].message.content for r in replies] == ["MOCK_OK: " + p for p in prompts]
    upstream = mock.requests_with(t)
    assert len(upstream) == 16
    for body in upstream:
        assert sum(p in json.dumps(body) for p in prompts) == 1, "one prompt per upstream request"


def test_models_list_and_retrieve(client):
    page = client.models.list()
    ids = [m.id for m in page.data]
    assert "claude" in ids and "sonnet" in ids, ids
    assert client.models.retrieve("claude").id == "claude"
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("no-such-model")
    assert e.value.type == "not_found_error"


def test_n_greater_than_one_is_a_bad_request(client, mock):
    t = token()
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, "Two choices %s" % t, n=2)
    assert e.value.param == "n"
    assert e.value.type == "invalid_request_error"
    assert not mock.requests_with(t)


def test_upstream_overload_is_a_503_with_retry_after(client, mock):
    t = token()
    with pytest.raises(openai.InternalServerError) as e:
        ask(client, "FAIL529 %s" % t)
    assert e.value.status_code == 503, "OpenAI clients know no 529"
    assert e.value.response.headers.get("retry-after", "").isdigit()
    ok = token()
    assert ask(client, "After overload %s" % ok).choices[0].message.content == "MOCK_OK: After overload %s" % ok


def test_wrong_key_is_an_authentication_error(keyed_server, mock):
    t = token()
    wrong = openai.OpenAI(base_url=openai_base(keyed_server), api_key="wrong-key", max_retries=0, timeout=TIMEOUT)
    with pytest.raises(openai.AuthenticationError) as e:
        ask(wrong, "Locked out %s" % t)
    assert e.value.code == "invalid_api_key"
    assert not mock.requests_with(t), "a refused request must not reach the upstream"
    right = openai.OpenAI(base_url=openai_base(keyed_server), api_key=KEYS[0], max_retries=0, timeout=TIMEOUT)
    assert ask(right, "Let in %s" % t).choices[0].message.content == "MOCK_OK: Let in %s" % t
