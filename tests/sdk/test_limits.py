"""Client limits through the official SDKs, on the real Claude Code CLI: a key over its
`[limits] requests_per_minute` gets the SDK's own RateLimitError (with `retry-after` and, on the
Anthropic routes, the `anthropic-ratelimit-requests-*` headers), and another key is unaffected."""
import time
import urllib.error
import urllib.request

import anthropic
import openai
import pytest

from conftest import Server, token

LIMITED, OTHER = "sdk-limited-key", "sdk-other-key"


@pytest.fixture(scope="module")
def limited(sdk_env, tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("clinvoker-limited"), sdk_env.mock, "limited", {
        "CLINVOKER_API_KEYS": "%s,%s" % (LIMITED, OTHER),
        # One request at once, then one every 3 s: a second request at once is over.
        "CLINVOKER__LIMITS__REQUESTS_PER_MINUTE": "20",
        "CLINVOKER__LIMITS__BURST": "1",
    })
    # Warm first, so the first request is not a cold start that outlasts the refill.
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(server.url + "/ready", timeout=5):
                break
        except (urllib.error.URLError, OSError):
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)
    yield server
    error = server.wait_stopped()
    assert error is None, error


def ask(client, text):
    return client.messages.with_raw_response.create(
        model="claude", max_tokens=50, messages=[{"role": "user", "content": text}])


def test_a_key_over_its_rate_gets_the_sdks_rate_limit_error(limited):
    client = anthropic.Anthropic(base_url=limited.anthropic_base, api_key=LIMITED, max_retries=0)
    t = token()
    first = ask(client, "within the rate %s" % t)
    assert first.parse().content[0].text == "MOCK_OK: within the rate %s" % t
    assert first.headers["anthropic-ratelimit-requests-limit"] == "20"
    assert first.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert first.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    with pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model="claude", max_tokens=50,
                               messages=[{"role": "user", "content": "over the rate"}])
    assert e.value.status_code == 429
    assert e.value.body["error"]["type"] == "rate_limit_error"
    assert LIMITED not in e.value.message, "the key never shows"
    assert 1 <= int(e.value.response.headers["retry-after"]) <= 3
    assert e.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    # Per key: another client has its own bucket.
    other = anthropic.Anthropic(base_url=limited.anthropic_base, api_key=OTHER, max_retries=0)
    assert ask(other, "another client %s" % token()).parse().stop_reason == "end_turn"


def test_the_openai_sdk_gets_its_rate_limit_error_too(limited):
    client = openai.OpenAI(base_url=limited.url + "/openai/v1", api_key=OTHER, max_retries=0)
    messages = [{"role": "user", "content": "twice at once %s" % token()}]
    for _ in range(2):
        try:
            client.chat.completions.create(model="claude", messages=messages)
        except openai.RateLimitError as e:
            assert e.status_code == 429
            assert e.code == "rate_limit_exceeded"
            assert e.response.headers["retry-after"]
            return
    pytest.fail("two requests at once within a burst of 1 were both served")


def test_the_sdk_retries_after_retry_after_and_succeeds(limited):
    """With its default retries, the SDK waits `retry-after` and gets through."""
    client = anthropic.Anthropic(base_url=limited.anthropic_base, api_key=LIMITED, max_retries=2)
    t = token()
    r = client.messages.create(model="claude", max_tokens=50,
                               messages=[{"role": "user", "content": "patient %s" % t}])
    assert r.content[0].text == "MOCK_OK: patient %s" % t
