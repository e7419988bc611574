"""/metrics scraped and parsed with the Prometheus client library's text parser while real
requests (official SDK, real CLI, mock upstream) run: the values move as they should."""

import threading
import time
import urllib.request

import anthropic
from prometheus_client.parser import text_string_to_metric_families

from conftest import token


def scrape(env):
    with urllib.request.urlopen(env.server.url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(predicate, what, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def test_metrics_move_as_requests_run(sdk_env):
    client = anthropic.Anthropic(base_url=sdk_env.base_url, api_key="k", max_retries=0)
    # The route label is the resource pattern, whichever of its aliases the SDK reached.
    route = dict(route="/anthropic/v1/messages", dialect="anthropic", model="claude", status="200")
    before = scrape(sdk_env)

    for i in range(2):
        client.messages.create(model="claude", max_tokens=32,
                               messages=[{"role": "user", "content": "metered %d %s" % (i, token())}])
    with client.messages.stream(model="claude", max_tokens=32,
                                messages=[{"role": "user", "content": "streamed " + token()}]) as s:
        assert "".join(s.text_stream).startswith("MOCK_OK: streamed")

    # A turn is counted once its process has reset, just after the answer went out.
    def served_three():
        now = scrape(sdk_env)
        served = lambda m: value(m, "clinvoker_pool_events_total", pool="claude/default", event="served")
        return now if served(now) - served(before) >= 3 else None

    after = wait_for(served_three, "three turns served")
    grew = lambda name, **l: value(after, name, **l) - value(before, name, **l)
    assert grew("clinvoker_http_requests_total", **route) == 3
    assert grew("clinvoker_http_request_duration_seconds_count", **route) == 3
    upstream = "claude-sonnet-5-5" if value(after, "clinvoker_upstream_tokens_total", model="claude-sonnet-5-5", kind="output") else "sonnet"
    assert grew("clinvoker_upstream_tokens_total", model=upstream, kind="output") == 21  # 7 per turn (mock)
    assert grew("clinvoker_upstream_tokens_total", model=upstream, kind="input") == 33
    assert grew("clinvoker_upstream_cost_usd_total", model=upstream) > 0
    assert grew("clinvoker_time_to_first_token_seconds_count", pool="claude/default", model=upstream) >= 3


def test_busy_gauge_rises_while_a_turn_runs(sdk_env):
    client = anthropic.Anthropic(base_url=sdk_env.base_url, api_key="k", max_retries=0)
    busy = lambda: value(scrape(sdk_env), "clinvoker_pool_processes", pool="claude/default", state="busy")
    idle_busy = busy()
    # SLOW: the mock waits 300 ms between text deltas, so the turn lasts a few seconds.
    t = threading.Thread(target=lambda: client.messages.create(
        model="claude", max_tokens=32,
        messages=[{"role": "user", "content": "SLOW one two three four five six " + token()}]))
    t.start()
    try:
        wait_for(lambda: busy() > idle_busy, "a busy process")
    finally:
        t.join(30)
    wait_for(lambda: busy() == idle_busy, "the process idle again")
