#!/usr/bin/env python3
"""Minimal mock of the Anthropic Messages API for driving the real Claude Code CLI
offline (clinvoker's integration tests and benchmark). Stdlib only.

Usage:  python3 mock_anthropic.py PORT [LOGFILE] [--exit-on-stdin-eof]
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
                 once a tool_result comes back it answers with text quoting that result.
                 Several TOOL: markers in one message give several tool_use blocks in one
                 answer (parallel calls). <Name> may hold letters, digits, _ . and -.
otherwise: text "MOCK_OK: <first 60 chars of the last user text>" in a few deltas,
stop_reason end_turn, usage {input_tokens 11, output_tokens 7}; model echoed from the request.
Env MOCK_DELAY_MS adds a delay before every answer.

Structured output (what `claude --json-schema` asks for).  Checked before the default answer, unless the
last user text holds a TOOL: marker or a FAIL/HANG word:
  * The request offers a tool named "StructuredOutput" (what `claude --json-schema` and the
    initialize `jsonSchema` field add), or its tool_choice forces one tool ({"type":"tool","name":N})
    -> answer with a tool_use of that tool whose input is built from its input_schema by a trivial
    generator (required keys only; string "x" or the first enum/const, integer/number 1, boolean
    true, null null, array [] or minItems copies, anyOf/oneOf/allOf: first branch, local $ref
    followed; a non-object result becomes {} since a tool input is always an object),
    stop_reason tool_use.  Once the last user message is a tool_result without error,
    the normal text answer follows.
    Magic words looked for in ANY user message of the request (the CLI's retries do not repeat
    the original prompt):
      SO_TEXT      answer plain text instead (the model "forgets" to call the tool)
      SO_BAD       the tool input violates the schema (required keys get a value of the wrong type)
      SO_BAD_ONCE  like SO_BAD until a tool_result with is_error has come back, then valid
  * The request carries output_config.format or output_format {"type":"json_schema","schema":S}
    (the Messages API's own structured outputs)  -> the text answer is json.dumps(generated(S)).
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


def all_user_text(msgs):
    """Text of every user message (magic words that must survive the CLI's own retries)."""
    out = []
    for m in msgs:
        if m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            out.append(c)
            continue
        for b in c or []:
            if isinstance(b, dict) and b.get("type") == "text":
                out.append(b.get("text", ""))
    return " ".join(out)


def gen_from_schema(schema, root=None, bad=False, depth=0):
    """Smallest value that satisfies a JSON schema (bad=True: required values of the wrong type)."""
    root = root if root is not None else schema
    if not isinstance(schema, dict) or depth > 20:
        return "x"
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return gen_from_schema(node, root, bad, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return gen_from_schema(schema[key][0], root, bad, depth + 1)
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t is None and "properties" in schema:
        t = "object"
    if t == "object":
        props = schema.get("properties", {})
        out = {}
        for k in schema.get("required", []):
            if bad:
                pt = props.get(k, {}).get("type")
                out[k] = 1 if pt in ("string", "object", "array", "boolean", None) else "x"
            else:
                out[k] = gen_from_schema(props.get(k, {}), root, False, depth + 1)
        return out
    if t == "array":
        n = int(schema.get("minItems", 0) or 0)
        return [gen_from_schema(schema.get("items", {}), root, False, depth + 1) for _ in range(n)]
    return {"string": "x", "integer": 1, "number": 1, "boolean": True, "null": None}.get(t, "x")


def structured_answer(req, text):
    """(kind, value) for a structured-output request, or None.  See the module docstring."""
    msgs = req.get("messages", [])
    every = all_user_text(msgs)
    fmt = (req.get("output_config") or {}).get("format") or req.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return ("json_text", json.dumps(gen_from_schema(fmt.get("schema", {}))))
    if text.startswith("TOOL_RESULT") and "(error)" not in text:
        return None  # the tool call was accepted: fall through to the normal text answer
    tools = {t.get("name"): t for t in req.get("tools") or [] if isinstance(t, dict)}
    choice = req.get("tool_choice") or {}
    name = choice.get("name") if choice.get("type") == "tool" else None
    if name is None and "StructuredOutput" in tools:
        name = "StructuredOutput"
    if name is None or name not in tools or "SO_TEXT" in every:
        return None
    bad = "SO_BAD" in every and not ("SO_BAD_ONCE" in every and "(error)" in text)
    value = gen_from_schema(tools[name].get("input_schema", {}), bad=bad)
    return ("tool_use", name, value if isinstance(value, dict) else {})  # tool input is an object


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
        tools = []
        if not text.startswith("TOOL_RESULT"):
            for m in re.finditer(r"TOOL:([A-Za-z0-9_.\-]+):(?=\{)", text):
                try:
                    inp = json.JSONDecoder().raw_decode(text, m.end())[0]
                except ValueError:
                    inp = {}
                tools.append(("tool_use", m.group(1), inp))
        so = None if tools or fail else structured_answer(req, text)
        if tools:
            blocks = [("text", "Calling a tool.")] + tools
            stop = "tool_use"
        elif so and so[0] == "tool_use":
            blocks, stop = [so], "tool_use"
        elif so:
            blocks, stop = [("text", so[1])], "end_turn"
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
