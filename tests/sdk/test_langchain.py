"""LangChain's chat models (`langchain-anthropic`, `langchain-openai`, pinned in requirements.txt)
against clinvoker, each with its provider's base URL: `ChatAnthropic` with `/anthropic/v1` (it
hands it to the `anthropic` SDK) and `ChatOpenAI` with `/openai/v1`. The mock upstream answers
`MOCK_OK: <first 60 chars of the last user text>`."""
from contextlib import contextmanager

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI

from conftest import token

TIMEOUT = 60.0


def anthropic_model(sdk_env):
    return ChatAnthropic(base_url="http://127.0.0.1:%d/anthropic/v1" % sdk_env.port, api_key="unused",
                         model="claude", max_tokens=100, max_retries=0, timeout=TIMEOUT)


def openai_model(sdk_env):
    return ChatOpenAI(base_url="http://127.0.0.1:%d/openai/v1" % sdk_env.port, api_key="unused",
                      model="claude", max_retries=0, timeout=TIMEOUT, stream_usage=True)


MODELS = {"anthropic": anthropic_model, "openai": openai_model}


def http_client(model):
    """The HTTP client under a chat model's provider SDK client."""
    sdk = model._client if isinstance(model, ChatAnthropic) else model.root_client
    return sdk._client


@contextmanager
def paths_sent(model):
    """The URL path of every request the model sends inside the block."""
    seen = []
    hooks = http_client(model).event_hooks["request"]
    hook = lambda request: seen.append(request.url.path)  # noqa: E731
    hooks.append(hook)
    try:
        yield seen
    finally:
        hooks.remove(hook)


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_invoke_echoes_the_prompt(sdk_env, mock, provider):
    model = MODELS[provider](sdk_env)
    t = token()
    with paths_sent(model) as paths:
        reply = model.invoke("hi %s" % t)
    assert reply.content == "MOCK_OK: hi %s" % t
    assert len(mock.requests_with(t)) == 1
    # The Anthropic SDK appends /v1/messages to its base URL; the OpenAI SDK /chat/completions.
    expected = {"anthropic": "/anthropic/v1/v1/messages", "openai": "/openai/v1/chat/completions"}
    assert paths == [expected[provider]]


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_stream_yields_several_chunks(sdk_env, provider):
    model = MODELS[provider](sdk_env)
    t = token()
    prompt = "Tell me a short story about a lighthouse %s" % t
    chunks = list(model.stream(prompt))
    texts = [c.content for c in chunks if c.content]
    assert len(texts) >= 3, "streamed in several chunks: %r" % chunks
    assert "".join(texts) == "MOCK_OK: " + prompt
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert usage and usage[-1]["output_tokens"] == 7, chunks
