#!/usr/bin/env python3
"""nginx + njs against HAProxy 2.6 (req.body + json_query) as the balancer that keeps a
conversation on one instance: is the key right, and what does computing it cost per request?

    python3 bench/lb_compare.py [--binary target/release/clinvoker] [--requests 500]

Starts 3 clinvoker instances with the fake CLI (target/*/fake-claude) and, in front of them:
- nginx as deployed (deploy/nginx, rendered by render.sh), and nginx proxying without a key;
- HAProxy hashing on a digest of the same parts read with json_query, with its default buffers
  and with tune.bufsize 1 MiB, and HAProxy proxying without a key.
Needs Debian's nginx, libnginx-mod-http-js and haproxy. Prints Markdown.

Correctness: pairs of requests that must (or must not) get the same key. nginx's key is read
from its access log (`conversation=`), HAProxy's from a response header this script's
configuration adds. Cost: the same request, interleaved over every target, on one kept-alive
connection each; overhead = the target's median minus the median straight to the instance.
"""

import argparse
import base64
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
MESSAGES = "/anthropic/v1/messages"
COUNT = "/anthropic/v1/messages/count_tokens"
CHAT = "/openai/v1/chat/completions"

# HAProxy's best: the same parts, each read with json_query (which returns strings, numbers and
# booleans only, so a list of blocks is read as its first block's text).
HAPROXY_KEYED = """
global
    pidfile {dir}/haproxy.pid
    {tune}
defaults
    mode http
    timeout connect 2s
    timeout client 330s
    timeout server 330s
    timeout http-request 30s
frontend clinvoker
    bind 127.0.0.1:{port}
    option http-buffer-request
    http-request set-var(txn.client) req.hdr(x-api-key)
    http-request set-var(txn.client) req.hdr(authorization) unless {{ var(txn.client) -m found }}
    http-request set-var(txn.system) req.body,json_query('$.system') if METH_POST
    http-request set-var(txn.system) req.body,json_query('$.system[0].text') if METH_POST !{{ var(txn.system) -m found }}
    http-request set-var(txn.first) req.body,json_query('$.messages[0].content') if METH_POST
    http-request set-var(txn.first) req.body,json_query('$.messages[0].content[0].text') if METH_POST !{{ var(txn.first) -m found }}
    http-request set-var(txn.key) req.hdr(x-clinvoker-session)
    http-request set-var(txn.key) str(k),concat(:,txn.client,),concat(:,txn.system,),concat(:,txn.first,),digest(sha256),hex if {{ var(txn.first) -m found }} !{{ var(txn.key) -m found }}
    http-response set-header x-conversation-key %[var(txn.key)]
    default_backend instances
backend instances
    balance hash var(txn.key)
    hash-type consistent
    option httpchk GET /ready
    http-check expect status 200
    default-server inter 1s fall 1 rise 2
    option redispatch
    retries 2
{servers}
"""

HAPROXY_PLAIN = """
global
    pidfile {dir}/haproxy.pid
defaults
    mode http
    timeout connect 2s
    timeout client 330s
    timeout server 330s
frontend plain
    bind 127.0.0.1:{port}
    default_backend one
backend one
    server i1 127.0.0.1:{first}
"""

NGINX_PLAIN = """
daemon off;
master_process off;
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 32m;
    client_body_buffer_size 32m;
    upstream one {{ server 127.0.0.1:{first}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://one;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("%s did not start" % what)
            time.sleep(0.05)


class Targets:
    """Everything this script starts; stopped on exit."""

    def __init__(self, binary, workdir):
        self.procs = []
        self.workdir = workdir
        self.instances = [self.instance(binary, i) for i in range(1, 4)]
        first = self.instances[0]
        self.ports = {"direct to one instance": first}
        lb = workdir / "nginx"
        port = free_port()
        conf = subprocess.run(
            [str(REPO / "deploy/nginx/render.sh"), "--listen", "127.0.0.1:%d" % port, "--runtime-dir", str(lb),
             "--workers", "1"] + ["127.0.0.1:%d" % p for p in self.instances],
            check=True, capture_output=True, text=True).stdout
        (lb / "nginx.conf").write_text(conf)
        self.nginx_log = lb / "access.log"
        self.start([NGINX, "-p", str(lb), "-c", str(lb / "nginx.conf"), "-e", str(lb / "error.log")], port, "nginx")
        self.ports["nginx + njs (deploy/nginx)"] = port
        self.ports["nginx, no key"] = self.config("nginx-plain", NGINX_PLAIN, first,
                                                  lambda d, c: [NGINX, "-p", str(d), "-c", str(c), "-e", str(d / "e.log")])
        servers = "\n".join("    server i%d 127.0.0.1:%d check" % (i, p) for i, p in enumerate(self.instances, 1))
        haproxy = lambda d, c: [HAPROXY, "-f", str(c), "-db"]
        self.ports["HAProxy json_query"] = self.config(
            "haproxy", HAPROXY_KEYED, first, haproxy, servers=servers, tune="")
        self.ports["HAProxy json_query, bufsize 1 MiB"] = self.config(
            "haproxy-1m", HAPROXY_KEYED, first, haproxy, servers=servers, tune="tune.bufsize 1048576")
        self.ports["HAProxy, no key"] = self.config("haproxy-plain", HAPROXY_PLAIN, first, haproxy)

    def instance(self, binary, i):
        d = self.workdir / ("instance-%d" % i)
        d.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLINVOKER", "ANTHROPIC_"))}
        env.update({"CLINVOKER__BACKENDS__CLAUDE__COMMAND": str(binary.parent / "fake-claude"),
                    "CLINVOKER__SERVER__STATE_DIR": str(d / "state"),
                    "CLINVOKER__SERVER__INSTANCE_NAME": "instance-%d" % i})
        out = d / "stdout.log"
        with open(out, "wb") as o, open(d / "stderr.log", "wb") as e:
            proc = subprocess.Popen([str(binary), "serve", "--port", "0"], stdout=o, stderr=e,
                                    stdin=subprocess.DEVNULL, env=env)
        self.procs.append(proc)
        deadline = time.monotonic() + 30
        while "listening on" not in out.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("instance %d did not start" % i)
            time.sleep(0.05)
        port = int(out.read_text().splitlines()[0].rsplit(":", 1)[1])
        while call(port, "GET", "/ready")[0] != 200:
            time.sleep(0.05)
        return port

    def config(self, name, template, first, argv, **extra):
        d = self.workdir / name
        d.mkdir()
        port = free_port()
        conf = d / "lb.conf"
        conf.write_text(template.format(dir=d, port=port, first=first, **extra))
        self.start(argv(d, conf), port, name)
        return port

    def start(self, argv, port, what):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        wait_port(port, proc, what)

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def call(port, method, path, body=None, headers=None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = body if isinstance(body, bytes) else (None if body is None else json.dumps(body).encode())
    h = {"content-type": "application/json", "x-api-key": "client-a"}
    h.update(headers or {})
    c.request(method, path, data, h)
    r = c.getresponse()
    text = r.read()
    return r.status, r.getheader("x-conversation-key"), text


def log_lines(targets):
    return targets.nginx_log.read_text().splitlines()


def nginx_key(targets, before):
    """The key of the request logged after the `before` lines (nginx logs once it has answered)."""
    deadline = time.monotonic() + 5
    while len(lines := log_lines(targets)) <= len(before):
        if time.monotonic() > deadline:
            sys.exit("nginx logged no line for the request")
        time.sleep(0.01)
    return lines[len(before)].rsplit("conversation=", 1)[1]


def key_of(targets, target, path, body, headers=None):
    before = log_lines(targets)
    status, header_key, text = call(targets.ports[target], "POST", path, body, headers)
    assert status == 200, (target, path, status, text[:200])
    return nginx_key(targets, before) if target.startswith("nginx") else header_key


def history(first, turns, reply_bytes=0):
    m = [{"role": "user", "content": first}]
    for i in range(turns):
        m += [{"role": "assistant", "content": "r%d " % i + "x" * reply_bytes},
              {"role": "user", "content": "next %d" % i}]
    return m


def image(seed):
    data = random.Random(seed).randbytes(750_000)
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                        "data": base64.b64encode(data).decode()}}


def cases():
    """(name, path, first request, second request, whether they must share a key)."""
    a = lambda **kw: {"model": "claude", "max_tokens": 16, **kw}
    with_image = lambda seed, more=(): [{"role": "user", "content": [image(seed), {"type": "text", "text": "what is it"}]}, *more]
    return [
        ("first message: string vs one text block", COUNT,
         a(system="S", messages=history("hello", 0)),
         a(system="S", messages=[{"role": "user", "content": [{"type": "text", "text": "hello"}]}]), True),
        ("system: string vs text-block list", COUNT,
         a(system="S", messages=history("hello", 0)),
         a(system=[{"type": "text", "text": "S"}], messages=history("hello", 0)), True),
        ("turn 1 vs turn 41 (≈200 KB of history; the SDK sends system after messages)", COUNT,
         a(messages=history("grow", 0), system="S"), a(messages=history("grow", 40, 5000), system="S"), True),
        ("image + text first message, turn 1 vs turn 2 (≈1 MB body)", COUNT,
         a(messages=with_image(1)), a(messages=with_image(1, [{"role": "assistant", "content": "a cat"},
                                                             {"role": "user", "content": "sure?"}])), True),
        ("turn 1 vs turn 2 with a 3 MB image sent in turn 2", COUNT,
         a(messages=history("look", 0), system="S"),
         a(messages=history("look", 0) + [{"role": "assistant", "content": "ok"},
                                          {"role": "user", "content": [image(3), image(4), image(5),
                                                                       {"type": "text", "text": "and these?"}]}],
           system="S"), True),
        ("same text, different images", COUNT, a(messages=with_image(1)), a(messages=with_image(2)), False),
        ("different system, same first message", COUNT,
         a(system="A", messages=history("hello", 0)), a(system="B", messages=history("hello", 0)), False),
        ("OpenAI: system message, turn 1 vs turn 2", CHAT,
         {"model": "claude", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}]},
         {"model": "claude", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"},
                                          {"role": "assistant", "content": "yo"}, {"role": "user", "content": "more"}]}, True),
        ("OpenAI: different system messages", CHAT,
         {"model": "claude", "messages": [{"role": "system", "content": "A"}, {"role": "user", "content": "hi"}]},
         {"model": "claude", "messages": [{"role": "system", "content": "B"}, {"role": "user", "content": "hi"}]}, False),
    ]


def correctness(targets):
    keyed = [name for name in targets.ports if "no key" not in name and "direct" not in name]
    rows = []
    for name, path, first, second, same in cases():
        row = [name]
        for target in keyed:
            keys = [key_of(targets, target, path, body) for body in (first, second)]
            right = all(keys) and (keys[0] == keys[1]) == same
            row.append("right" if right else "**wrong** (%s)" % ("no key" if not all(keys) else
                                                                 "keys differ" if same else "same key"))
        rows.append(row)
    # The client key and an explicit session header.
    by_name = {case[0]: case for case in cases()}
    one = by_name["first message: string vs one text block"][2]
    differ = by_name["different system, same first message"]
    for name, bodies, headers in [
            ("different client keys", [one, one], [{"x-api-key": "client-a"}, {"x-api-key": "client-b"}]),
            ("x-clinvoker-session wins over the body", [differ[2], differ[3]], [{"x-clinvoker-session": "s1"}] * 2)]:
        row = [name]
        for target in keyed:
            keys = [key_of(targets, target, COUNT, body, h) for body, h in zip(bodies, headers)]
            same = "session" in name
            row.append("right" if all(keys) and (keys[0] == keys[1]) == same else "**wrong**")
        rows.append(row)
    print("| case | " + " | ".join(keyed) + " |")
    print("|---|" + "---|" * len(keyed))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    for target in keyed:
        right = sum(1 for row in rows if row[keyed.index(target) + 1] == "right")
        print("- %s: %d/%d right" % (target, right, len(rows)))
    print()


def body_of(size):
    m = history("first question", 0)
    while len(json.dumps(m)) < size:
        m += [{"role": "assistant", "content": "a" * 400}, {"role": "user", "content": "more"}]
    return json.dumps({"model": "claude", "max_tokens": 64, "system": "be brief", "messages": m}).encode()


def latency(targets, requests):
    print("| request | target | p50 ms | p95 ms | overhead p50 ms |")
    print("|---|---|---:|---:|---:|")
    for label, size, path, n in [("4 KB, count_tokens (no turn)", 4000, COUNT, requests),
                                 ("200 KB, count_tokens", 200_000, COUNT, requests),
                                 ("1 MB, count_tokens", 1_000_000, COUNT, max(requests // 5, 20)),
                                 ("4 KB, one fake-CLI turn", 4000, MESSAGES, requests)]:
        data = body_of(size)
        conns = {t: http.client.HTTPConnection("127.0.0.1", p, timeout=60) for t, p in targets.ports.items()}
        times = {t: [] for t in conns}
        for _ in range(n):
            for target, conn in conns.items():
                t0 = time.perf_counter()
                status, _, _ = call(targets.ports[target], "POST", path, data, conn=conn)
                times[target].append(time.perf_counter() - t0)
                assert status == 200, (target, status)
        base = statistics.median(times["direct to one instance"])
        for target, ts in times.items():
            ts.sort()
            p50 = statistics.median(ts)
            print("| %s (%d×) | %s | %.2f | %.2f | %+.2f |" % (
                label, n, target, p50 * 1e3, ts[int(len(ts) * 0.95)] * 1e3, (p50 - base) * 1e3))
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", type=Path,
                    default=next((p for p in (REPO / "target/release/clinvoker", REPO / "target/debug/clinvoker")
                                  if p.exists()), None))
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()
    if args.binary is None:
        sys.exit("no clinvoker binary: cargo build --release")
    workdir = Path(tempfile.mkdtemp(prefix="lb-compare-"))
    targets = Targets(args.binary.resolve(), workdir)
    try:
        versions = [subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip(),
                    subprocess.run([HAPROXY, "-v"], capture_output=True, text=True).stdout.splitlines()[0]]
        print("- %s; %s; binary %s; %d cores" % (versions[0], versions[1], args.binary.relative_to(REPO)
                                                 if args.binary.is_relative_to(REPO) else args.binary, os.cpu_count()))
        print()
        correctness(targets)
        latency(targets, args.requests)
    finally:
        targets.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
