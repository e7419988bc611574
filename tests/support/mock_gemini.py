#!/usr/bin/env python3
"""Minimal mock of the Gemini API (generativelanguage v1beta) for driving the
real Gemini CLI (`gemini --acp`) offline (clinvoker's integration tests).  Stdlib only.

Usage:  python3 mock_gemini.py PORT [LOGFILE] [--exit-on-stdin-eof]
        GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:PORT GEMINI_API_KEY=x gemini --acp ...
        (the CLI also needs security.auth.selectedType "gemini-api-key" in its settings.json)

Endpoints (any API version prefix, e.g. /v1beta):
  POST /v1beta/models/{model}:streamGenerateContent?alt=sse   SSE, what the CLI uses for turns
  POST /v1beta/models/{model}:generateContent                 JSON (CLI side calls: routing,
                                                              next-speaker check, titles...)
  POST /v1beta/models/{model}:countTokens                     {"totalTokens": N}
  POST /v1beta/models/{model}:embedContent                    dummy embedding
  GET  /v1beta/models[...]                                    small model list
  GET  /__log   (request log as JSON)     POST /__reset (clear it)
  anything else -> 404, logged

Behaviour is chosen by magic words in the LAST user text part:
  FAIL401 / FAIL403 / FAIL429 / FAIL500 / FAIL400  -> that HTTP status with a Google-style error
  HANG       -> send headers, then nothing (up to 10 min)
  HANGSTREAM -> send one chunk, then stall
  SLOW       -> 300 ms between chunks
  RUNCMD:<shell command> -> first answer is a functionCall to run_shell_command; once the
                functionResponse comes back, answers with text quoting it
otherwise streams "MOCK_OK: <first 60 chars of the user text>" in a few chunks, last chunk
has finishReason STOP and usageMetadata {promptTokenCount 11, candidatesTokenCount 7}.
A generateContent call that asks for JSON (responseMimeType application/json) gets a small
JSON object that satisfies the CLI's routing / next-speaker schemas.
Env MOCK_DELAY_MS adds a delay before every model answer.
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = []
LOG_LOCK = threading.Lock()
LOGFILE = None


def log_request(entry):
    with LOG_LOCK:
        LOG.append(entry)
        if LOGFILE:
            with open(LOGFILE, "a") as f:
                f.write(json.dumps(entry) + "\n")


def last_user_text(body):
    last = ""
    for c in body.get("contents", []) or []:
        if c.get("role", "user") != "user":
            continue
        # the CLI puts a <session_context> block in the first user content; skip such parts
        texts = [p.get("text") for p in c.get("parts", []) if isinstance(p, dict)
                 and p.get("text") and not p.get("thought")
                 and not p.get("text").lstrip().startswith("<session_context>")]
        if texts:
            last = texts[-1]
    return last


def last_parts(body):
    cs = body.get("contents", []) or []
    return cs[-1].get("parts", []) if cs else []


def usage(prompt=11, out=7):
    return {"promptTokenCount": prompt, "candidatesTokenCount": out,
            "totalTokenCount": prompt + out, "thoughtsTokenCount": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-gemini/1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def hang(self):
        end = time.time() + 600
        while time.time() < end:
            time.sleep(0.5)

    def do_GET(self):
        log_request({"t": time.time(), "method": "GET", "path": self.path,
                     "headers": dict(self.headers)})
        if self.path.startswith("/__log"):
            with LOG_LOCK:
                return self.send_json(200, LOG)
        if "/models" in self.path:
            return self.send_json(200, {"models": [
                {"name": "models/" + m, "displayName": m, "supportedGenerationMethods":
                 ["generateContent", "streamGenerateContent", "countTokens"],
                 "inputTokenLimit": 1048576, "outputTokenLimit": 65536}
                for m in ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite")]})
        self.send_json(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw or b"{}")
        except Exception:
            body = None
        log_request({"t": time.time(), "method": "POST", "path": self.path,
                     "headers": dict(self.headers), "body": body, "raw_len": len(raw)})
        if self.path.startswith("/__reset"):
            with LOG_LOCK:
                LOG.clear()
            return self.send_json(200, {"ok": True})
        if body is None:
            return self.send_json(400, {"error": {"code": 400, "message": "bad json",
                                                  "status": "INVALID_ARGUMENT"}})
        path = self.path.split("?")[0]
        model = path.rsplit("/", 1)[-1].split(":")[0]
        action = path.rsplit(":", 1)[-1] if ":" in path else ""
        if action == "countTokens":
            return self.send_json(200, {"totalTokens": 11})
        if action in ("embedContent", "batchEmbedContents"):
            return self.send_json(200, {"embedding": {"values": [0.0] * 8}})
        if action not in ("streamGenerateContent", "generateContent"):
            return self.send_json(404, {"error": {"code": 404, "message": "not found: " + self.path,
                                                  "status": "NOT_FOUND"}})
        delay = float(os.environ.get("MOCK_DELAY_MS", "0")) / 1000.0
        if delay:
            time.sleep(delay)
        user = last_user_text(body)
        for code, status in (("401", "UNAUTHENTICATED"), ("403", "PERMISSION_DENIED"),
                             ("429", "RESOURCE_EXHAUSTED"), ("500", "INTERNAL"),
                             ("400", "INVALID_ARGUMENT")):
            if "FAIL" + code in user and action == "streamGenerateContent":
                return self.send_json(int(code), {"error": {
                    "code": int(code), "message": "mock forced HTTP %s" % code, "status": status}})
        gen = body.get("generationConfig") or body.get("config") or {}
        if action == "generateContent":
            return self.generate(body, model, user, gen)
        return self.stream(body, model, user)

    # ---- non-streaming side calls ----
    def generate(self, body, model, user, gen):
        if gen.get("responseMimeType") == "application/json" or gen.get("responseJsonSchema") \
                or gen.get("responseSchema"):
            # satisfies the CLI's classifier/router and next-speaker schemas
            obj = {"reasoning": "mock", "model_choice": "flash", "complexity_reasoning": "mock",
                   "complexity_score": 1, "next_speaker": "user"}
            text = json.dumps(obj)
        else:
            text = "MOCK_OK: " + user.strip()[:60]
        return self.send_json(200, {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": usage(), "modelVersion": model, "responseId": "mock-%d" % time.time_ns()})

    # ---- streaming turns ----
    def stream(self, body, model, user):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        rid = "mock-%d" % time.time_ns()

        def chunk(parts, finish=None, use=None):
            c = {"content": {"role": "model", "parts": parts}, "index": 0}
            if finish:
                c["finishReason"] = finish
            obj = {"candidates": [c], "modelVersion": model, "responseId": rid}
            if use:
                obj["usageMetadata"] = use
            self.wfile.write(("data: " + json.dumps(obj) + "\r\n\r\n").encode())
            self.wfile.flush()

        try:
            if "HANGSTREAM" in user:
                chunk([{"text": "partial answer "}])
                return self.hang()
            if "HANG" in user:
                self.wfile.flush()
                return self.hang()
            parts = last_parts(body)
            fresp = [p["functionResponse"] for p in parts if isinstance(p, dict) and "functionResponse" in p]
            if fresp:
                out = json.dumps(fresp[-1].get("response"))[:300]
                text = "MOCK_TOOL_RESULT: " + out
            elif "RUNCMD:" in user:
                cmd = user.split("RUNCMD:", 1)[1].strip().splitlines()[0]
                chunk([{"functionCall": {"name": "run_shell_command",
                                         "args": {"command": cmd, "description": "mock"}}}],
                      finish="STOP", use=usage())
                return
            else:
                text = "MOCK_OK: " + user.strip()[:60]
            if "REASON" in user:
                chunk([{"text": "Thinking about the request.", "thought": True}])
            words = text.split(" ")
            slow = "SLOW" in user
            for i, w in enumerate(words):
                last = i == len(words) - 1
                chunk([{"text": w + ("" if last else " ")}],
                      finish="STOP" if last else None, use=usage() if last else None)
                if slow and not last:
                    time.sleep(0.3)
        except (BrokenPipeError, ConnectionResetError):
            pass


def exit_when_stdin_closes():
    """With --exit-on-stdin-eof the mock ends with the test process that started it."""
    sys.stdin.read()
    os._exit(0)


def main():
    global LOGFILE
    args = [a for a in sys.argv[1:] if a != "--exit-on-stdin-eof"]
    if "--exit-on-stdin-eof" in sys.argv:
        threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    port = int(args[0]) if args else 19202
    LOGFILE = args[1] if len(args) > 1 else None
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    print("mock-gemini listening on 127.0.0.1:%d" % port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
