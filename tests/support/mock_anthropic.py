#!/usr/bin/env python3
"""Minimal mock of the Anthropic Messages API for driving the real Claude Code CLI
offline (clinvoker's integration tests and benchmark). Stdlib only.

Usage:  python3 mock_anthropic.py PORT [LOGFILE]
        ANTHROPIC_BASE_URL=http://127.0.0.1:PORT ANTHROPIC_API_KEY=sk-test claude -p ...

Endpoints:
  POST /v1/messages[?beta=true]        SSE when body.stream is true (what the CLI uses),
                                       plain JSON otherwise (the CLI's non-streaming fallback)
  POST /v1/messages/count_tokens       {"input_tokens": 11}
  GET  /__log    request log as JSON ([{t, method, path, headers, body}])
  POST /__reset  clear the log
  anything else -> 404 (logged)

Behaviour is chosen by magic words in the text of the LAST role:user message (text blocks the
CLI adds itself -- "<system-reminder>", "<local-command-caveat>", "<command-name>",
"<local-command-stdout>" -- are ignored; tool_result blocks count as their text):
  FAIL400 / FAIL401 / FAIL403 / FAIL429 / FAIL500 / FAIL529
              -> that HTTP status with an Anthropic error JSON (429 carries retry-after: 1)
  HANG        -> read the request, never answer (no headers)
  HANGSTREAM  -> headers + message_start + 2 deltas, then stall for 10 minutes
  DISCONNECT  -> headers + message_start + 2 deltas, then close the connection
  MALFORMED   -> one SSE event whose data is not JSON, then close
  SLOW        -> 300 ms between text deltas
  TOOL:<Name>:<json input>   e.g.  TOOL:Bash:{"command":"echo hi","description":"d"}
              -> answers with a text block and a tool_use block (stop_reason tool_use);
                 once a tool_result comes back it answers with text quoting that result
otherwise: text "MOCK_OK: <first 60 chars of the last user text>" in a few deltas,
stop_reason end_turn, usage {input_tokens 11, output_tokens 7}; model echoed from the request.
Env MOCK_DELAY_MS adds a delay before every answer.
"""
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = []
LOG_LOCK = threading.Lock()
LOGFILE = None
SEQ = [0]
# text blocks the CLI adds itself (reminders, the record of a local /clear or /model command)
SKIP_PREFIXES = ("<system-reminder>", "<local-command-caveat>", "<command-name>", "<local-command-stdout>")


def last_user_text(msgs):
    users = [m for m in msgs if m.get("role") == "user"]
    if not users:
        return ""
    c = users[-1].get("content")
    if isinstance(c, str):
        return c
    out = []
    for b in c or []:
        if not isinstance(b, dict):
            continue
        if b.get("type") == "text" and not b.get("text", "").startswith(SKIP_PREFIXES):
            out.append(b.get("text", ""))
        elif b.get("type") == "tool_result":
            cc = b.get("content")
            if isinstance(cc, list):
                cc = " ".join(x.get("text", "") for x in cc if isinstance(x, dict))
            out.append("TOOL_RESULT%s: %s" % (" (error)" if b.get("is_error") else "", cc))
    return " ".join(out)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _record(self, body):
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = {"_raw": body.decode("utf-8", "replace")}
        rec = {"t": time.time(), "method": self.command, "path": self.path,
               "headers": dict(self.headers.items()), "body": parsed}
        with LOG_LOCK:
            SEQ[0] += 1
            rec["n"] = SEQ[0]
            LOG.append(rec)
            if LOGFILE:
                with open(LOGFILE, "a") as f:
                    f.write(json.dumps(rec) + "\n")
        return parsed

    def _json(self, code, obj, extra=None):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(b)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(b)

    def do_GET(self):
        if self.path.startswith("/__log"):
            with LOG_LOCK:
                return self._json(200, LOG)
        self._record(b"")
        self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})

    def do_POST(self):
        n = int(self.headers.get("content-length", 0) or 0)
        body = self.rfile.read(n)
        if self.path.startswith("/__reset"):
            with LOG_LOCK:
                LOG.clear()
            return self._json(200, {"ok": True})
        req = self._record(body) or {}
        if "count_tokens" in self.path:
            return self._json(200, {"input_tokens": 11})
        if not self.path.startswith("/v1/messages"):
            return self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
        delay = int(os.environ.get("MOCK_DELAY_MS", "0"))
        if delay:
            time.sleep(delay / 1000.0)
        text = last_user_text(req.get("messages", []))
        fail = re.search(r"FAIL(400|401|403|429|500|529)", text)
        if fail and not text.startswith("TOOL_RESULT"):
            code = int(fail.group(1))
            etype = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                     429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}[code]
            extra = {"retry-after": "1"} if code == 429 else None
            return self._json(code, {"type": "error", "error": {"type": etype, "message": "mock %d" % code},
                                     "request_id": "req_mock"}, extra)
        if "HANG" in text and "HANGSTREAM" not in text:
            time.sleep(600)
            return
        blocks = []  # list of ("text", str) or ("tool_use", name, input)
        tool = re.search(r"TOOL:([A-Za-z_]+):(\{.*\})", text)
        if tool and not text.startswith("TOOL_RESULT"):
            try:
                inp = json.loads(tool.group(2))
            except ValueError:
                inp = {}
            blocks = [("text", "Calling a tool."), ("tool_use", tool.group(1), inp)]
            stop = "tool_use"
        else:
            blocks = [("text", "MOCK_OK: " + text[:60])]
            stop = "end_turn"
        SEQ_ID = "msg_mock_%d" % SEQ[0]
        usage_in = {"input_tokens": 11, "output_tokens": 1,
                    "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        if not req.get("stream"):
            content = [{"type": "text", "text": b[1]} if b[0] == "text" else
                       {"type": "tool_use", "id": "toolu_mock_%d" % i, "name": b[1], "input": b[2]}
                       for i, b in enumerate(blocks)]
            return self._json(200, {"id": SEQ_ID, "type": "message", "role": "assistant", "content": content,
                                    "model": req.get("model"), "stop_reason": stop, "stop_sequence": None,
                                    "usage": {"input_tokens": 11, "output_tokens": 7}})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

        def ev(name, data):
            self.wfile.write(("event: %s\ndata: %s\n\n" % (name, json.dumps(data))).encode())
            self.wfile.flush()

        if "MALFORMED" in text:
            self.wfile.write(b"event: message_start\ndata: {not json\n\n")
            self.wfile.flush()
            return
        ev("message_start", {"type": "message_start", "message": {
            "id": SEQ_ID, "type": "message", "role": "assistant", "content": [], "model": req.get("model"),
            "stop_reason": None, "stop_sequence": None, "usage": usage_in}})
        for i, b in enumerate(blocks):
            if b[0] == "text":
                ev("content_block_start", {"type": "content_block_start", "index": i,
                                           "content_block": {"type": "text", "text": ""}})
                words = b[1].split(" ")
                for j, w in enumerate(words):
                    if j == 2 and "HANGSTREAM" in text:
                        time.sleep(600)
                        return
                    if j == 2 and "DISCONNECT" in text:
                        return
                    if "SLOW" in text:
                        time.sleep(0.3)
                    ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                               "delta": {"type": "text_delta",
                                                         "text": w + (" " if j < len(words) - 1 else "")}})
            else:
                ev("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                    "type": "tool_use", "id": "toolu_mock_%d_%d" % (SEQ[0], i), "name": b[1], "input": {}}})
                s = json.dumps(b[2])
                for part in (s[: len(s) // 2], s[len(s) // 2:]):
                    ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                               "delta": {"type": "input_json_delta", "partial_json": part}})
            ev("content_block_stop", {"type": "content_block_stop", "index": i})
        ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                             "usage": {"output_tokens": 7}})
        ev("message_stop", {"type": "message_stop"})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def exit_when_stdin_closes():
    """With --exit-on-stdin-eof the mock ends with the test process that started it."""
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--exit-on-stdin-eof"]
    if "--exit-on-stdin-eof" in sys.argv:
        threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    port = int(args[0])
    LOGFILE = args[1] if len(args) > 1 else None
    Server(("127.0.0.1", port), Handler).serve_forever()
