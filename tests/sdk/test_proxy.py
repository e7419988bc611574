"""The access rule behind a real reverse proxy (Debian's nginx) on the same host, where every
request reaches clinvoker from loopback: loopback and forwarding headers must open nothing once
keys are configured. Runs on the fake CLI."""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import anthropic
import pytest

from conftest import REPO, Server, _die_with_parent, free_port

FAKE_CLAUDE = REPO / "target" / "debug" / "fake-claude"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
USER_KEY = "proxy-user-key"
ADMIN_KEY = "proxy-admin-key"

# A self-contained nginx: its own pid file, logs and temp paths, in the foreground, no workers.
# X-Forwarded-For is appended to as a typical proxy does; X-Real-IP and Forwarded pass through as
# the client wrote them.
NGINX_CONF = """
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
        }}
    }}
}}
"""


class Proxy:
    """nginx on a free loopback port, forwarding everything to `server`."""

    def __init__(self, workdir, server):
        if NGINX is None:
            pytest.fail("nginx is not installed: the test command installs Debian's nginx package")
        self.dir = workdir / ("nginx-%s" % server.name)
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self.dir, port=self.port, upstream=server.port))
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("nginx did not start:\n%s" % self.error_log())
                time.sleep(0.05)

    def error_log(self):
        try:
            return (self.dir / "error.log").read_text(errors="replace")[-3000:]
        except OSError:
            return "(no error log)"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def call(url, method="GET", headers=None, body=None):
    """(status, headers, text) of one request; an error status is an answer, not an exception."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def native_error(text):
    """The type and message of clinvoker's own error shape; fails on any other shape."""
    body = json.loads(text)
    assert set(body) == {"error"}, body
    assert body["error"]["request_id"], body
    return body["error"]["type"], body["error"]["message"]


def basic(key):
    return "Basic " + base64.b64encode(("anyone:%s" % key).encode()).decode()


# Each operators' route with a method it serves (the kill and drain would do harm if let through).
OPERATOR_ROUTES = [
    ("GET", "/admin/pools"),
    ("GET", "/admin/requests"),
    ("GET", "/metrics"),
    ("POST", "/admin/processes/1/kill"),
    ("POST", "/admin/pools/default/drain"),
    ("POST", "/admin/requests/req_x/cancel"),
    ("GET", "/admin"),
    ("GET", "/%61dmin/pools"),
]
LOOPBACK_CLAIMS = [
    {"X-Forwarded-For": "127.0.0.1"},
    {"X-Real-IP": "127.0.0.1"},
    {"Forwarded": "for=127.0.0.1"},
    {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1", "Forwarded": "for=\"[::1]\""},
]


@pytest.fixture()
def proxied(sdk_env, tmp_path):
    """Starts a fake-CLI server with `env` behind its own nginx; stops both after the test."""
    started = []

    def start(name, env):
        server = Server(tmp_path, sdk_env.mock, name, {
            "CLINVOKER__BACKENDS__CLAUDE__COMMAND": str(FAKE_CLAUDE),
            "CLINVOKER__POOL__MAX_PROCESSES": "2",
            **env,
        })
        started.append(server)
        proxy = Proxy(tmp_path, server)
        started.append(proxy)
        return server, proxy

    yield start
    errors = []
    for thing in reversed(started):
        if isinstance(thing, Proxy):
            thing.stop()
        else:
            errors.append(thing.wait_stopped())
    assert not [e for e in errors if e], errors


def test_user_keys_alone_open_no_operator_route_through_the_proxy(proxied):
    server, proxy = proxied("user-keys-only", {"CLINVOKER_API_KEYS": USER_KEY})
    for method, path in OPERATOR_ROUTES:
        body = {} if method == "POST" else None
        for headers in [{}, {"x-api-key": USER_KEY}, {"authorization": basic(USER_KEY)},
                        *LOOPBACK_CLAIMS, *({"x-api-key": USER_KEY, **h} for h in LOOPBACK_CLAIMS)]:
            status, _, text = call(proxy.url + path, method, headers, body)
            assert status == 403, (method, path, headers, text)
            kind, message = native_error(text)
            assert kind == "permission_error", text
            assert "server.admin_keys" in message and "CLINVOKER__SERVER__ADMIN_KEYS" in message, message

    # The refused drain did not happen: the API still serves, through the proxy, with the SDK.
    client = anthropic.Anthropic(base_url=proxy.url + "/anthropic/v1", api_key=USER_KEY,
                                 max_retries=0, timeout=30)
    reply = client.messages.create(model="claude", max_tokens=32,
                                   messages=[{"role": "user", "content": "through nginx"}])
    assert reply.content[0].text.startswith("echo: through nginx"), reply
    wrong = anthropic.Anthropic(base_url=proxy.url + "/anthropic/v1", api_key="wrong-key",
                                max_retries=0, timeout=30)
    with pytest.raises(anthropic.AuthenticationError) as e:
        wrong.messages.create(model="claude", max_tokens=32,
                              messages=[{"role": "user", "content": "locked out"}])
    body = e.value.response.json()
    assert e.value.status_code == 401 and body["error"]["type"] == "authentication_error", body

    # A loopback claim does not stand in for a user key either.
    for headers in LOOPBACK_CLAIMS:
        status, _, text = call(proxy.url + "/anthropic/v1/messages", "POST", headers,
                               {"model": "claude", "max_tokens": 8,
                                "messages": [{"role": "user", "content": "x"}]})
        assert status == 401 and json.loads(text)["error"]["type"] == "authentication_error", text

    status, _, text = call(proxy.url + "/health")
    assert status == 200 and json.loads(text)["status"] in ("ok", "degraded"), text
    status, _, text = call(proxy.url + "/openapi.json")
    assert status == 401 and native_error(text)[0] == "authentication_error", text
    status, _, text = call(proxy.url + "/openapi.json", headers={"x-api-key": USER_KEY})
    assert status == 200 and "/admin/pools" in json.loads(text)["paths"], text


def test_admin_keys_open_the_operator_routes_through_the_proxy(proxied):
    server, proxy = proxied("admin-keys", {
        "CLINVOKER_API_KEYS": USER_KEY,
        "CLINVOKER__SERVER__ADMIN_KEYS": ADMIN_KEY,
    })
    pools = proxy.url + "/admin/pools"
    refused = [{}, {"x-api-key": "wrong-key"}, {"x-api-key": USER_KEY},
               {"authorization": "Bearer " + USER_KEY}, *LOOPBACK_CLAIMS]
    for headers in refused:
        for method, url, body in [("GET", pools, None), ("GET", proxy.url + "/metrics", None),
                                  ("POST", pools + "/default/resume", {})]:
            status, response_headers, text = call(url, method, headers, body)
            assert status == 401, (method, url, headers, text)
            assert native_error(text)[0] == "authentication_error", text
            assert response_headers.get("www-authenticate") is None, "only the page asks to log in"

    for headers in [{"x-api-key": ADMIN_KEY}, {"authorization": "Bearer " + ADMIN_KEY},
                    {"authorization": basic(ADMIN_KEY)}]:
        status, _, text = call(pools, headers=headers)
        assert status == 200 and any(p["id"] == "default" for p in json.loads(text)["pools"]), text
    status, _, text = call(pools + "/default/resume", "POST", {"x-api-key": ADMIN_KEY}, {})
    assert status == 200 and json.loads(text)["id"] == "default", text
    status, _, text = call(proxy.url + "/metrics", headers={"x-api-key": ADMIN_KEY})
    assert status == 200 and "clinvoker_http_requests_total" in text, text[:500]

    # The dashboard page asks a browser for the key, and takes it as a Basic password.
    for headers in [{}, {"authorization": basic(USER_KEY)}, {"authorization": basic("wrong-key")},
                    *LOOPBACK_CLAIMS]:
        status, response_headers, text = call(proxy.url + "/admin", headers=headers)
        assert status == 401, (headers, text)
        assert native_error(text)[0] == "authentication_error", text
        assert response_headers.get("www-authenticate") == 'Basic realm="clinvoker admin"', response_headers
    status, response_headers, text = call(proxy.url + "/admin", headers={"authorization": basic(ADMIN_KEY)})
    assert status == 200 and response_headers.get_content_type() == "text/html", response_headers
    assert "<title>" in text and "clinvoker" in text, text[:300]

    # An admin key is not a user key; /openapi.json takes either; /health takes none.
    status, _, text = call(proxy.url + "/anthropic/v1/messages", "POST", {"x-api-key": ADMIN_KEY},
                           {"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]})
    body = json.loads(text)
    assert status == 401 and body["error"]["type"] == "authentication_error", text
    assert body["type"] == "error", "in the Anthropic dialect of the route"
    status, _, text = call(proxy.url + "/openapi.json", headers={"x-api-key": ADMIN_KEY})
    assert status == 200, text
    status, _, text = call(proxy.url + "/health")
    assert status == 200, text
