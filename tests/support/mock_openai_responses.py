#!/usr/bin/env python3
"""Minimal mock of the OpenAI Responses API (plus Chat Completions) for driving
the real Codex CLI (`codex app-server`) offline (clinvoker's integration tests).  Stdlib only.

Usage:  python3 mock_openai_responses.py PORT [LOGFILE] [--exit-on-stdin-eof]
        Point Codex at http://127.0.0.1:PORT/v1 with a custom model_provider in
        $CODEX_HOME/config.toml (OPENAI_BASE_URL is ignored).

Endpoints
  POST /v1/responses          SSE stream (Responses API) -- what Codex uses
  POST /v1/chat/completions   SSE or JSON (Chat Completions) -- for comparison
  GET  /v1/models             small model list
  GET  /__log                 JSON array of every request seen (for tests)
  POST /__reset               clear the request log
  anything else               404, logged

Behaviour is chosen by magic words in the LAST user message:
  FAIL401 / FAIL429 / FAIL500 / FAIL400  -> that HTTP status with an OpenAI-style error body
  HANG                                   -> accept, send headers, then never answer (until client drops)
  HANGSTREAM                             -> send response.created + one delta, then stall
  SLOW                                   -> 300 ms between deltas (useful to test interrupts)
  REASON                                 -> a reasoning item with a streamed summary comes first
  RUNCMD:<shell command>                 -> first answer is a function call to the `exec_command`
                                            / `shell` tool the client advertised; once the tool
                                            output comes back, answers with text quoting it
  ESCALATE (together with RUNCMD:)       -> the tool call also carries
                                            sandbox_permissions="require_escalated" and a
                                            justification, i.e. asks to run outside the sandbox
                                            (this is what triggers Codex approval requests)
  TOOL:<name>:<json>  (once or more)    -> the answer is one function_call output item per marker
                                            (that name, the JSON as its arguments), no text:
                                            a client tool the client advertised (Codex's
                                            dynamicTools)
Once the input holds function_call_output items (tool results) and no FAILxxx/HANG word applies,
the answer is the text "MOCK_TOOL_RESULT: <output>": the outputs of the items the input ends with,
joined by " | " (else the last output). The last user message is still the one that asked.
otherwise: streams the text  "MOCK_OK: <first 60 chars of the user message>"
in a few deltas, with usage {input_tokens: 11, output_tokens: 7, ...}.
Structured output: when a Responses request carries text.format {"type":"json_schema","schema":S}
(what Codex sends for turn/start.outputSchema) and no magic word above applies, the answer text
is instead a small JSON value satisfying S (generator shared with mock_anthropic.py beside this
file: required keys only, strings "x", numbers 1, booleans true, arrays []); SO_TEXT in the user
message keeps the plain MOCK_OK text.
Env MOCK_DELAY_MS adds a delay before the first byte of every model answer.
"""
import json
import os
import re
import sys
import threading
import time
import uuid
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


def text_of(content):
    """Flatten Responses/Chat content (str or list of parts) to text."""
    if isinstance(content, str):
        return content
    out = []
    for part in content or []:
        if isinstance(part, dict):
            out.append(part.get("text") or "")
    return "".join(out)


def last_user_text(body):
    """Last user message in a Responses `input` array or Chat `messages` array."""
    items = body.get("input") if "input" in body else body.get("messages", [])
    if isinstance(items, str):
        return items
    last = ""
    for it in items or []:
        if it.get("role") == "user":
            t = text_of(it.get("content"))
            # Codex injects context messages (<environment_context>, AGENTS.md...) as user role
            if t.lstrip().startswith("<"):
                continue
            last = t
    return last


def tool_outputs(body):
    return [it for it in body.get("input", []) or [] if isinstance(it, dict)
            and it.get("type") in ("function_call_output", "custom_tool_call_output")]


def trailing_tool_outputs(body):
    """The function_call_output items the input ends with."""
    out = []
    for it in reversed(body.get("input", []) or []):
        if not (isinstance(it, dict) and it.get("type") == "function_call_output"):
            break
        out.insert(0, it)
    return out


def client_tool_calls(user):
    """(name, arguments) per TOOL:<name>:<json> marker in the user text."""
    calls = []
    for m in re.finditer(r"(?<![A-Z_])TOOL:([A-Za-z0-9_\-]+):(?=\{)", user):
        try:
            args = json.JSONDecoder().raw_decode(user, m.end())[0]
        except ValueError:
            continue
        calls.append((m.group(1), args))
    return calls


def pick_shell_tool(body):
    names = [t.get("name") for t in body.get("tools", []) or [] if isinstance(t, dict)]
    for cand in ("exec_command", "shell_command", "shell", "local_shell"):
        if cand in names:
            return cand
    return names[0] if names else "shell"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-openai/1"

    def log_message(self, fmt, *args):  # keep stderr quiet
        pass

    # ---------- helpers ----------
    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.headers.get("Content-Encoding", "") == "zstd":
            return raw, None  # cannot decode without zstd; logged raw length only
        try:
            return raw, json.loads(raw or b"{}")
        except Exception:
            return raw, None

    def send_json(self, status, obj, extra_headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def start_sse(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def sse(self, event, data):
        payload = "event: %s\ndata: %s\n\n" % (event, json.dumps(data)) if event else \
                  "data: %s\n\n" % (data if isinstance(data, str) else json.dumps(data))
        self.wfile.write(payload.encode())
        self.wfile.flush()

    def error_for(self, text):
        for code, etype in (("401", "invalid_request_error"), ("429", "rate_limit_exceeded"),
                            ("500", "server_error"), ("400", "invalid_request_error")):
            if "FAIL" + code in text:
                return int(code), {"error": {"message": "mock forced HTTP %s" % code,
                                             "type": etype, "param": None,
                                             "code": "mock_%s" % code}}
        return None, None

    # ---------- routing ----------
    def do_GET(self):
        log_request({"t": time.time(), "method": "GET", "path": self.path,
                     "headers": dict(self.headers)})
        if self.path.startswith("/__log"):
            with LOG_LOCK:
                return self.send_json(200, LOG)
        if self.path.rstrip("/").endswith("/models") or "/models?" in self.path:
            return self.send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "mock"}
                for m in ("mock-model", "gpt-5", "gpt-5-codex")]})
        self.send_json(404, {"error": {"message": "not found: " + self.path}})

    def do_POST(self):
        raw, body = self.read_body()
        entry = {"t": time.time(), "method": "POST", "path": self.path,
                 "headers": dict(self.headers), "body": body,
                 "raw_len": len(raw)}
        log_request(entry)
        if self.path.startswith("/__reset"):
            with LOG_LOCK:
                LOG.clear()
            return self.send_json(200, {"ok": True})
        if body is None:
            return self.send_json(400, {"error": {"message": "unparseable body"}})
        path = self.path.split("?")[0].rstrip("/")
        if path.endswith("/responses"):
            return self.handle_responses(body)
        if path.endswith("/chat/completions"):
            return self.handle_chat(body)
        self.send_json(404, {"error": {"message": "not found: " + self.path}})

    # ---------- behaviour ----------
    def plan(self, body):
        user = last_user_text(body)
        status, err = self.error_for(user)
        if status:
            return ("error", status, err)
        if "HANGSTREAM" in user:
            return ("hangstream", None, None)
        if "HANG" in user:
            return ("hang", None, None)
        if "RUNCMD:" in user and not tool_outputs(body):
            cmd = user.split("RUNCMD:", 1)[1].strip().splitlines()[0]
            return ("toolcall", cmd, None)
        if client_tool_calls(user) and not tool_outputs(body):
            return ("clienttools", client_tool_calls(user), None)
        outs = tool_outputs(body)
        if outs:
            trailing = trailing_tool_outputs(body) or outs[-1:]
            texts = []
            for it in trailing:
                o = it.get("output")
                if isinstance(o, (list, dict)):
                    o = json.dumps(o)
                texts.append(str(o)[:300])
            return ("text", "MOCK_TOOL_RESULT: " + " | ".join(texts), None)
        fmt = (body.get("text") or {}).get("format") or {}
        if fmt.get("type") == "json_schema" and "SO_TEXT" not in user:
            from mock_anthropic import gen_from_schema  # sibling file, stdlib only
            return ("text", json.dumps(gen_from_schema(fmt.get("schema") or {})), None)
        return ("text", "MOCK_OK: " + user.strip()[:60], None)

    def hang(self):
        # say nothing more for up to 10 minutes (client timeouts/cancel get exercised)
        end = time.time() + 600
        while time.time() < end:
            time.sleep(0.5)

    def handle_responses(self, body):
        kind, arg, err = self.plan(body)
        delay = float(os.environ.get("MOCK_DELAY_MS", "0")) / 1000.0
        if delay:
            time.sleep(delay)
        if kind == "error":
            hdr = {"Retry-After": "1"} if arg == 429 else None
            return self.send_json(arg, err, hdr)
        if kind == "hang":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.flush()
            return self.hang()
        rid = "resp_" + uuid.uuid4().hex[:24]
        model = body.get("model", "mock-model")
        usage = {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": 18}
        base = {"id": rid, "object": "response", "created_at": int(time.time()),
                "model": model, "status": "in_progress", "output": []}
        self.start_sse()
        try:
            self.sse("response.created", {"type": "response.created", "response": base})
            if kind == "toolcall":
                tool = pick_shell_tool(body)
                call_id = "call_" + uuid.uuid4().hex[:16]
                if tool == "exec_command":
                    args = {"cmd": arg}
                elif tool == "shell":
                    args = {"command": ["bash", "-lc", arg]}
                else:
                    args = {"command": arg}
                if "ESCALATE" in last_user_text(body):
                    args["sandbox_permissions"] = "require_escalated"
                    args["justification"] = "mock asks to run this outside the sandbox"
                item = {"type": "function_call", "id": "fc_" + call_id[5:], "call_id": call_id,
                        "name": tool, "arguments": json.dumps(args), "status": "completed"}
                self.sse("response.output_item.added",
                         {"type": "response.output_item.added", "output_index": 0, "item": item})
                self.sse("response.output_item.done",
                         {"type": "response.output_item.done", "output_index": 0, "item": item})
                out = [item]
            elif kind == "clienttools":
                out = []
                for i, (name, args) in enumerate(arg):
                    call_id = "call_" + uuid.uuid4().hex[:16]
                    item = {"type": "function_call", "id": "fc_" + call_id[5:],
                            "call_id": call_id, "name": name, "arguments": json.dumps(args),
                            "status": "completed"}
                    self.sse("response.output_item.added", {
                        "type": "response.output_item.added", "output_index": i, "item": item})
                    self.sse("response.output_item.done", {
                        "type": "response.output_item.done", "output_index": i, "item": item})
                    out.append(item)
            else:
                text = arg if kind == "text" else "partial answer then silence"
                mid = "msg_" + uuid.uuid4().hex[:24]
                oi = 0
                out = []
                if "REASON" in last_user_text(body):
                    rid_ = "rs_" + uuid.uuid4().hex[:24]
                    summ = "Thinking about the request."
                    self.sse("response.output_item.added", {
                        "type": "response.output_item.added", "output_index": 0,
                        "item": {"type": "reasoning", "id": rid_, "summary": []}})
                    self.sse("response.reasoning_summary_part.added", {
                        "type": "response.reasoning_summary_part.added", "item_id": rid_,
                        "output_index": 0, "summary_index": 0,
                        "part": {"type": "summary_text", "text": ""}})
                    for w in summ.split(" "):
                        self.sse("response.reasoning_summary_text.delta", {
                            "type": "response.reasoning_summary_text.delta", "item_id": rid_,
                            "output_index": 0, "summary_index": 0, "delta": w + " "})
                    ritem = {"type": "reasoning", "id": rid_, "encrypted_content": None,
                             "summary": [{"type": "summary_text", "text": summ}]}
                    self.sse("response.output_item.done", {
                        "type": "response.output_item.done", "output_index": 0, "item": ritem})
                    out.append(ritem)
                    oi = 1
                self.sse("response.output_item.added", {
                    "type": "response.output_item.added", "output_index": oi,
                    "item": {"type": "message", "id": mid, "role": "assistant",
                             "status": "in_progress", "content": []}})
                words = text.split(" ")
                chunks = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
                slow = "SLOW" in last_user_text(body)
                for i, c in enumerate(chunks):
                    self.sse("response.output_text.delta", {
                        "type": "response.output_text.delta", "item_id": mid,
                        "output_index": oi, "content_index": 0, "delta": c})
                    if kind == "hangstream":
                        return self.hang()
                    if slow:
                        time.sleep(0.3)
                item = {"type": "message", "id": mid, "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}
                self.sse("response.output_item.done",
                         {"type": "response.output_item.done", "output_index": oi, "item": item})
                out.append(item)
            done = dict(base, status="completed", output=out, usage=usage)
            self.sse("response.completed", {"type": "response.completed", "response": done})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def handle_chat(self, body):
        kind, arg, err = self.plan(body)
        if kind == "error":
            return self.send_json(arg, err)
        if kind == "hang":
            return self.hang()
        text = arg if kind == "text" else "MOCK_OK"
        cid = "chatcmpl-" + uuid.uuid4().hex[:20]
        model = body.get("model", "mock-model")
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        if not body.get("stream"):
            return self.send_json(200, {"id": cid, "object": "chat.completion", "model": model,
                                        "choices": [{"index": 0, "finish_reason": "stop",
                                                     "message": {"role": "assistant", "content": text}}],
                                        "usage": usage})
        self.start_sse()
        base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        self.sse(None, dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}}]))
        for w in text.split(" "):
            self.sse(None, dict(base, choices=[{"index": 0, "delta": {"content": w + " "}}]))
        self.sse(None, dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}], usage=usage))
        self.sse(None, "[DONE]")


def exit_when_stdin_closes():
    """With --exit-on-stdin-eof the mock ends with the test process that started it."""
    sys.stdin.read()
    os._exit(0)


def main():
    global LOGFILE
    args = [a for a in sys.argv[1:] if a != "--exit-on-stdin-eof"]
    if "--exit-on-stdin-eof" in sys.argv:
        threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    port = int(args[0]) if args else 19201
    LOGFILE = args[1] if len(args) > 1 else None
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    print("mock-openai listening on 127.0.0.1:%d" % port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
