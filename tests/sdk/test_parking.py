"""Parked conversations through the official SDKs, with the real Claude Code CLI on the mock.

Clients keep their chat and resend all of it with every turn, as SDK applications do. After a
clean turn the process keeps the conversation; a follow-up that resends it continues there (a
conversation hit in /admin/pools and /metrics), anything else is a miss and is replayed. What the
model sees must not depend on which: every turn's upstream request is checked against the chat."""
import json
import time
import urllib.request

import anthropic
import openai
import pytest

from conftest import Server, token

TIMEOUT = 60.0
USER_A, USER_B, ADMIN = "parking-user-a", "parking-user-b", "parking-admin"


@pytest.fixture(scope="module")
def keyed(sdk_env, tmp_path_factory):
    """A server with two user keys and an admin key (admin views need it once keys exist)."""
    server = Server(tmp_path_factory.mktemp("clinvoker-parking"), sdk_env.mock, "parking",
                    {"CLINVOKER_API_KEYS": "%s,%s" % (USER_A, USER_B), "CLINVOKER_ADMIN_KEYS": ADMIN,
                     "CLINVOKER__POOL__MIN_IDLE": "3"})
    wait_warm(server, 3, ADMIN)
    yield server
    server.terminate()
    sdk_env.to_stop.append(server)


def wait_warm(server, n, key=None):
    """Until the default pool has `n` ready processes: a conversation that finds no free one
    would take a parked conversation's place, which the tests here must not see by chance."""
    deadline = time.monotonic() + 60
    while True:
        req = urllib.request.Request("http://127.0.0.1:%d/admin/pools" % server.port)
        if key:
            req.add_header("x-api-key", key)
        with urllib.request.urlopen(req, timeout=10) as r:
            pools = json.load(r)["pools"]
        ready = sum(1 for pool in pools if pool["id"] == "default"
                    for p in pool["processes"] if p["state"] == "idle")
        if ready >= n:
            return
        assert time.monotonic() < deadline, pools
        time.sleep(0.1)


def counters(port, key=None):
    req = urllib.request.Request("http://127.0.0.1:%d/admin/pools" % port)
    if key:
        req.add_header("x-api-key", key)
    with urllib.request.urlopen(req, timeout=10) as r:
        pools = json.load(r)["pools"]
    hits = sum(p["counters"]["conversation_hits"] for p in pools)
    misses = sum(p["counters"]["conversation_misses"] for p in pools)
    return hits, misses


def upstream_turns(mock, marker):
    """(role, text) of the user/assistant messages of the newest upstream request with marker."""
    body = mock.requests_with(marker)[-1]
    out = []
    for m in body["messages"]:
        if m["role"] not in ("user", "assistant"):
            continue
        c = m["content"]
        text = c if isinstance(c, str) else "".join(
            b.get("text", "") for b in c if not b.get("text", "").startswith("<"))
        out.append((m["role"], text.strip()))
    return out


def chat(client, marker, turns, messages=None):
    """`turns` more turns of the chat `messages` (a new one when None), numbered on from it."""
    messages = messages if messages is not None else []
    for _ in range(turns):
        messages.append({"role": "user", "content": "%s turn %d" % (marker, len(messages) // 2)})
        r = client.messages.create(model="claude", max_tokens=100, messages=messages)
        messages.append({"role": "assistant", "content": r.content})
    return messages


def test_a_30_turn_chat_continues_its_parked_conversation_every_turn(sdk_env, mock):
    claude = anthropic.Anthropic(base_url=sdk_env.base_url, api_key="unused", max_retries=0, timeout=TIMEOUT)
    t = token()
    before = counters(sdk_env.port)
    messages = chat(claude, t, 30)
    after = counters(sdk_env.port)
    assert (after[0] - before[0], after[1] - before[1]) == (29, 0)
    # The last upstream request carried the whole chat, as a replay would have.
    expected = [("user" if m["role"] == "user" else "assistant",
                 m["content"] if isinstance(m["content"], str) else m["content"][0].text)
                for m in messages[:-1]]
    assert upstream_turns(mock, "%s turn 29" % t) == expected
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % sdk_env.port, timeout=10) as r:
        metrics = r.read().decode()
    assert 'event="conversation_hit"' in metrics


def test_an_edited_history_misses_and_reaches_the_model_as_sent(sdk_env, mock):
    claude = anthropic.Anthropic(base_url=sdk_env.base_url, api_key="unused", max_retries=0, timeout=TIMEOUT)
    t = token()
    messages = chat(claude, t, 3)
    messages[0] = {"role": "user", "content": "%s edited" % t}
    before = counters(sdk_env.port)
    chat(claude, t, 1, messages)
    after = counters(sdk_env.port)
    assert (after[0] - before[0], after[1] - before[1]) == (0, 1)
    assert upstream_turns(mock, "%s turn 0" % t)[0] == ("user", "%s edited" % t)


def test_openai_chat_continues_its_parked_conversation(sdk_env, mock):
    gpt = openai.OpenAI(base_url="http://127.0.0.1:%d/openai/v1" % sdk_env.port, api_key="unused",
                        max_retries=0, timeout=TIMEOUT)
    t = token()
    messages = [{"role": "system", "content": "Be brief."}]
    before = counters(sdk_env.port)
    for i in range(4):
        messages.append({"role": "user", "content": "%s turn %d" % (t, i)})
        r = gpt.chat.completions.create(model="claude", messages=messages)
        messages.append({"role": "assistant", "content": r.choices[0].message.content})
    after = counters(sdk_env.port)
    assert (after[0] - before[0], after[1] - before[1]) == (3, 0)


def test_clients_with_other_keys_never_share_a_conversation(keyed, mock):
    a = anthropic.Anthropic(base_url=keyed.anthropic_base, api_key=USER_A, max_retries=0, timeout=TIMEOUT)
    b = anthropic.Anthropic(base_url=keyed.anthropic_base, api_key=USER_B, max_retries=0, timeout=TIMEOUT)
    t = token()
    a_chat = chat(a, t, 1)
    # B sends the very history A's process holds parked: another key, so a miss, replayed.
    before = counters(keyed.port, ADMIN)
    b_chat = chat(b, t, 1, [dict(m) for m in a_chat])
    after_b = counters(keyed.port, ADMIN)
    assert (after_b[0] - before[0], after_b[1] - before[1]) == (0, 1)
    # A's conversation is still parked, and A continues it.
    chat(a, t, 1, a_chat)
    after_a = counters(keyed.port, ADMIN)
    assert (after_a[0] - after_b[0], after_a[1] - after_b[1]) == (1, 0)
    assert [m["content"][0].text for m in a_chat[1::2]] == [m["content"][0].text for m in b_chat[1::2]]


@pytest.fixture(scope="module")
def single(sdk_env, tmp_path_factory):
    """A server whose pool has one process: conversations take it from each other."""
    server = Server(tmp_path_factory.mktemp("clinvoker-single"), sdk_env.mock, "single",
                    {"CLINVOKER__POOL__MAX_PROCESSES": "1", "CLINVOKER__POOL__MIN_IDLE": "1",
                     "CLINVOKER__POOL__SPARE_PROCESSES": "0"})
    yield server
    server.terminate()
    sdk_env.to_stop.append(server)


def test_a_parked_process_is_reset_for_another_conversation(single, mock):
    claude = anthropic.Anthropic(base_url=single.anthropic_base, api_key="unused", max_retries=0,
                                 timeout=TIMEOUT)
    one, two = token(), token()
    one_chat = chat(claude, one, 1)
    # `two` needs the only process: `one`'s parked conversation is reset first.
    chat(claude, two, 1)
    assert upstream_turns(mock, "%s turn 0" % two) == [("user", "%s turn 0" % two)]
    before = counters(single.port)
    chat(claude, one, 1, one_chat)
    after = counters(single.port)
    assert (after[0] - before[0], after[1] - before[1]) == (0, 1), "replayed, not continued"
    turns = upstream_turns(mock, "%s turn 1" % one)
    assert turns[0] == ("user", "%s turn 0" % one) and len(turns) == 3, turns
    assert two not in json.dumps(turns)
