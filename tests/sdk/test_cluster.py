"""The cluster topology (`scripts/cluster.sh`): Debian's nginx in front of 3 instances on loopback,
with the fake CLI. The official Anthropic SDK, unchanged (no session header), must reach the same
instance on every turn of a conversation; a killed instance's conversations continue elsewhere; a
drained instance takes no new conversations; the operators' routes stay closed through the proxy.

Which instance served a turn is read from the instances themselves: each instance's /metrics
(admin key) counts the turns it answered, and turns run one at a time, so the instance whose count
rose served the turn. The `x-clinvoker-instance` header the SDK receives must agree."""

import base64
import json
import os
import random
import signal
import socket
import subprocess
import time

import anthropic
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, _die_with_parent, clean_env, free_port
from test_proxy import NGINX, call, native_error

CLUSTER = REPO / "scripts" / "cluster.sh"
BINARY = REPO / "target" / "debug" / "clinvoker"
FAKE_CLAUDE = REPO / "target" / "debug" / "fake-claude"
USER_KEY = "cluster-user-key"
ADMIN_KEY = "cluster-admin-key"
ADMIN = {"x-api-key": ADMIN_KEY}
INSTANCES = 3
# The share of turns that must reach their conversation's instance.
STICKY = 0.95

CONFIG = """
[server]
shutdown_grace_secs = 5

[backends.claude]
command = "{fake}"

[pool]
max_processes = 2
min_idle = 1
max_total_processes = 6
"""


class Cluster:
    """`scripts/cluster.sh --instances 3` in the foreground, as a person would run it."""

    def __init__(self, workdir):
        if NGINX is None:
            pytest.fail("nginx is not installed: the test command installs Debian's nginx package")
        for path in (BINARY, FAKE_CLAUDE):
            if not path.exists():
                pytest.fail("%s is missing: run `cargo build` in the repository root" % path.relative_to(REPO))
        config = workdir / "clinvoker.toml"
        config.write_text(CONFIG.format(fake=FAKE_CLAUDE))
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.out_path = workdir / "cluster.out"
        env = clean_env()
        env.update({"CLINVOKER_API_KEYS": USER_KEY, "CLINVOKER_ADMIN_KEYS": ADMIN_KEY})
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                [str(CLUSTER), "--instances", str(INSTANCES), "--port", str(self.port),
                 "--config", str(config), "--binary", str(BINARY), "--workdir", str(workdir / "cluster")],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                preexec_fn=_die_with_parent)
        # name -> (url, pid), from the script's "cluster: instance-N http://… pid P" lines.
        self.instances = {}
        self.lb_pid = None
        deadline = time.monotonic() + 60
        while "cluster: ready" not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("cluster.sh did not get ready:\n%s" % self.output())
            time.sleep(0.1)
        for line in self.output().splitlines():
            words = line.split()
            if line.startswith("cluster: instance-"):
                self.instances[words[1]] = (words[2], int(words[4]))
            elif line.startswith("cluster: load balancer"):
                self.lb_pid = int(words[5])
        assert len(self.instances) == INSTANCES and self.lb_pid, self.output()
        self.alive = set(self.instances)

    def output(self):
        return self.out_path.read_text(errors="replace")

    def served(self):
        """Turns each live instance has answered, from its /metrics."""
        return {name: self.answered(name, "200") for name in sorted(self.alive)}

    def answered(self, name, status):
        """Messages requests instance `name` answered with `status`, from its /metrics."""
        code, _, text = call(self.instances[name][0] + "/metrics", headers=ADMIN)
        assert code == 200, (name, text[:300])
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "clinvoker_http_requests"
            for sample in family.samples
            if sample.name == "clinvoker_http_requests_total"
            and sample.labels["route"] == "/anthropic/v1/messages" and sample.labels["status"] == status)

    def kill(self, name):
        os.kill(self.instances[name][1], signal.SIGKILL)
        self.alive.discard(name)

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


class Conversation:
    """One SDK conversation: the whole history resent every turn, as the SDKs do."""

    def __init__(self, name, system=None, first=None, headers=None):
        self.name = name
        self.system = system
        # The content of the first user message (default: its text as a string).
        self.first = first
        self.headers = headers or {}
        self.messages = []
        # The instance that served each turn.
        self.served_by = []

    def next_prompt(self):
        return "%s turn %d" % (self.name, len(self.served_by) + 1)

    def next_content(self):
        return self.first if not self.messages and self.first is not None else self.next_prompt()


def take_turn(cluster, client, conv, before):
    """Runs the next turn of `conv` through the balancer; returns the answer and the new counts.

    `before` is cluster.served() before the turn; the one instance whose count rose served it."""
    messages = conv.messages + [{"role": "user", "content": conv.next_content()}]
    kwargs = {"system": conv.system} if conv.system is not None else {}
    raw = client.messages.with_raw_response.create(
        model="claude", max_tokens=64, messages=messages, extra_headers=conv.headers, **kwargs)
    answer = raw.parse().content[0].text
    assert answer.startswith("echo: "), answer[:300]
    deadline = time.monotonic() + 5
    while True:
        after = cluster.served()
        if sum(after.values()) >= sum(before.values()) + 1 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    rose = [name for name in after if after[name] != before.get(name, 0)]
    assert len(rose) == 1 and after[rose[0]] == before.get(rose[0], 0) + 1, (conv.name, before, after)
    assert raw.headers.get("x-clinvoker-instance") == rose[0], (conv.name, raw.headers, rose)
    conv.served_by.append(rose[0])
    # The fake CLI's answer repeats the history it saw; its first part keeps the bodies small.
    conv.messages = messages + [{"role": "assistant", "content": answer.split(" | history:")[0]}]
    return answer, after


def sdk(cluster):
    # max_retries=0: the balancer, not the SDK's retries, must hide a dead or drained instance.
    return anthropic.Anthropic(base_url=cluster.url + "/anthropic/v1", api_key=USER_KEY,
                               max_retries=0, timeout=30)


def history_of(answer):
    """The u:/a: entries the fake CLI saw as history."""
    history = answer.split(" | history: ", 1)[1].split(" | system: ", 1)[0]
    return [h for h in history.split(",") if h]


def text_block(text):
    return [{"type": "text", "text": text}]


def image_block(seed):
    data = bytes((seed * 7 + i * 13) % 256 for i in range(300_000))
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                        "data": base64.b64encode(data).decode()}}


def test_every_turn_of_a_conversation_reaches_its_instance(cluster):
    client = sdk(cluster)
    conversations = []
    for i in range(30):
        # System prompts as strings, as text blocks, or none; first messages as strings, as a
        # text block, long enough (300 KB) that nginx would spool them to a file by default, or
        # with an image.
        system = [None, "You are assistant %d." % (i % 4), text_block("Be brief, %d." % i)][i % 3]
        conv = Conversation("conv-%d" % i, system=system)
        if i % 2 == 1:
            conv.first = text_block(conv.next_prompt())
        if i in (7, 19):
            # (hyphens, not spaces: the fake CLI streams one delta per word)
            conv.first = conv.next_prompt() + " " + "lorem-ipsum-" * 25_000
        if i in (4, 22):
            conv.first = [image_block(i), {"type": "text", "text": conv.next_prompt()}]
        conversations.append(conv)
    # Two clients that name their session: the header wins over a first message that changes.
    sessions = [Conversation("session-%d" % i, headers={"x-clinvoker-session": "sess-%d" % i})
                for i in range(2)]
    counts = cluster.served()
    # Rounds in a shuffled order, as clients come: in a fixed order, plain round robin would
    # send each conversation to the same instance every round too.
    order = random.Random(7)
    for turn in range(4):
        for i in order.sample(range(len(conversations)), len(conversations)):
            conv = conversations[i]
            answer, counts = take_turn(cluster, client, conv, counts)
            if i % 5 == 0 and turn == 0 and conv.first is None:
                # The same first message, resent as a text block: still the same conversation.
                conv.messages[0]["content"] = text_block(conv.messages[0]["content"])
    last = answer
    for _ in range(6):
        for conv in sessions:
            conv.messages = []  # a new first message every turn: only the header is constant
            _, counts = take_turn(cluster, client, conv, counts)

    later = [(conv, by) for conv in conversations for by in conv.served_by[1:]]
    stayed = [by for conv, by in later if by == conv.served_by[0]]
    share = len(stayed) / len(later)
    assert share >= STICKY, ("%.0f%% of later turns reached their conversation's instance" % (100 * share),
                             {c.name: c.served_by for c in conversations})
    firsts = {c.served_by[0] for c in conversations}
    assert firsts == set(cluster.instances), ("the conversations spread over every instance", firsts)
    for conv in sessions:
        assert len(set(conv.served_by)) == 1, (conv.name, conv.served_by)
    # The history reached the model: the fake CLI saw every earlier turn.
    assert len(history_of(last)) == 6, last[:500]


# Operators' routes, each with a method it serves (the POSTs would do harm if let through).
OPERATOR_ROUTES = [
    ("GET", "/admin/pools"),
    ("GET", "/admin/requests"),
    ("GET", "/metrics"),
    ("GET", "/admin"),
    ("POST", "/admin/instance/drain"),
    ("POST", "/admin/pools/default/drain"),
    ("POST", "/admin/processes/1/kill"),
    ("POST", "/admin/requests/req_x/cancel"),
]


def test_admin_routes_refuse_through_the_balancer_without_the_admin_key(cluster):
    refused_by = set()
    for method, path in OPERATOR_ROUTES:
        body = {} if method == "POST" else None
        # Repeated: requests that are not a conversation go round robin, to every instance.
        for headers in [{}, {"x-api-key": "wrong-key"}, {"authorization": "Bearer wrong-key"},
                        {"x-api-key": USER_KEY}] * INSTANCES:
            status, response_headers, text = call(cluster.url + path, method, headers, body)
            assert status in (401, 403), (method, path, headers, status, text[:300])
            assert native_error(text)[0] in ("authentication_error", "permission_error"), text
            refused_by.add(response_headers.get("x-clinvoker-instance"))
    assert refused_by == set(cluster.instances), ("each instance refused, not nginx", refused_by)
    # The refused drains did not happen (readiness may flap while pools refill, so the reasons
    # are what counts).
    for name, (url, _) in cluster.instances.items():
        _, _, text = call(url + "/ready")
        assert "drained by an operator" not in json.loads(text)["reasons"], (name, text)
        status, _, text = call(url + "/admin/pools", headers=ADMIN)
        assert status == 200 and not any(p["draining"] for p in json.loads(text)["pools"]), (name, text[:500])
    # The routes are reachable through the balancer: it is the key that was refused.
    status, _, text = call(cluster.url + "/admin/pools", headers=ADMIN)
    assert status == 200 and "pools" in text, text[:300]


def test_a_killed_instance_conversations_continue_on_the_others(cluster):
    client = sdk(cluster)
    conversations = [Conversation("kill-%d" % i, system="Kill test.") for i in range(15)]
    order = random.Random(11)
    counts = cluster.served()
    for _ in range(2):
        for conv in order.sample(conversations, len(conversations)):
            _, counts = take_turn(cluster, client, conv, counts)
    by_instance = {}
    for conv in conversations:
        by_instance.setdefault(conv.served_by[-1], []).append(conv)
    victim = max(by_instance, key=lambda name: len(by_instance[name]))
    orphans = by_instance[victim]
    cluster.kill(victim)
    counts = cluster.served()

    # Their next turns succeed on another instance (no error reaches the SDK), with the whole
    # history replayed there, and stay on that instance afterwards.
    for _ in range(2):
        for conv in order.sample(conversations, len(conversations)):
            answer, counts = take_turn(cluster, client, conv, counts)
            assert len(history_of(answer)) == 2 * (len(conv.served_by) - 1), answer
    for conv in orphans:
        assert conv.served_by[2] != victim and conv.served_by[3] == conv.served_by[2], (conv.name, conv.served_by)
    # The others did not move (consistent hashing moves only the dead instance's conversations).
    others = [c for c in conversations if c not in orphans]
    stayed = [c for c in others if c.served_by[2:] == [c.served_by[1]] * 2]
    assert len(stayed) >= STICKY * len(others), {c.name: c.served_by for c in others}
    assert "%s (pid %d) exited" % (victim, cluster.instances[victim][1]) in cluster.output()


def test_a_drained_instance_gets_no_new_conversations(cluster):
    client = sdk(cluster)
    drained = sorted(cluster.alive)[0]
    # Conversations the balancer sends to that instance (count_tokens runs no turn but is routed
    # on the same key), and as many it sends elsewhere.
    mine, elsewhere = [], []
    for i in range(200):
        conv = Conversation("drain-%d" % i)
        status, headers, text = call(cluster.url + "/anthropic/v1/messages/count_tokens", "POST",
                                     {"x-api-key": USER_KEY},
                                     {"model": "claude", "messages": [{"role": "user", "content": conv.next_prompt()}]})
        assert status == 200, text
        (mine if headers.get("x-clinvoker-instance") == drained else elsewhere).append(conv)
        if len(mine) >= 5 and len(elsewhere) >= 5:
            break
    assert len(mine) >= 5, "no conversation hashed to %s" % drained
    status, _, text = call(cluster.instances[drained][0] + "/admin/instance/drain", "POST", ADMIN, {})
    assert status == 200, text
    refused_before = cluster.answered(drained, "503")

    counts = cluster.served()
    for _ in range(2):
        for conv in mine[:5] + elsewhere[:5]:
            _, counts = take_turn(cluster, client, conv, counts)
    for conv in mine[:5] + elsewhere[:5]:
        assert drained not in conv.served_by, (conv.name, conv.served_by)
        assert len(set(conv.served_by)) == 1, (conv.name, conv.served_by)
    # (With the instance killed above, one instance is left to serve them all.)
    # The balancer did try it, and moved on after its refusal.
    assert cluster.answered(drained, "503") > refused_before

    status, _, text = call(cluster.instances[drained][0] + "/admin/instance/resume", "POST", ADMIN, {})
    assert status == 200, text


def test_sigterm_stops_everything_the_script_started(cluster):
    pids = [pid for _, pid in cluster.instances.values()] + [cluster.lb_pid]
    assert cluster.stop(timeout=30) == 0, cluster.output()
    assert "cluster: stopping" in cluster.output()
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid) or "zombie" in open("/proc/%d/status" % pid).read().lower(), pid
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", cluster.port), timeout=1).close()
