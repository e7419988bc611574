#!/usr/bin/env python3
"""clinvoker chat benchmark: what a turn costs as a conversation grows, with parked
conversations (the default) and with every request replayed into a reset process
(`pool.park_conversations = false`), side by side in one run, one backend at a time, against the
backend's local mock upstream (instant answers unless --mock-delay-ms).

Clients behave like SDK applications: every request carries the whole conversation so far
(`POST /anthropic/v1/messages`, streaming), the answer is appended as the next assistant message.

  depth  after one throwaway turn per warm process (a CLI's first turn after its start is slow),
         first turns of `--samples` new conversations, one after another (p50 = the "first turn");
         then one conversation taken to `--depth` turns, and `--samples` more turns of it timed
         (p50 = "a turn after `--depth` prior turns"). Ratio = deep p50 / first-turn p50.
         Target with parking: ≤ 1.3.
  chat   `--chats` concurrent conversations of `--turns` turns each: hit rate (the server's
         conversation_hits / (hits + misses), from GET /admin/pools), p50/p95 latency per turn
         index, and CPU seconds per turn of the server and its CLI processes (from /proc),
         against the same run without parking.

Each mode runs on its own server (release build, `--warm` warm processes); the two servers run
one after another, never at once. Exit status non-zero only when something failed to run.

Usage: python3 bench/chat.py [--backend claude|codex|gemini] [--depth 100] [--samples 15]
                             [--chats 8] [--turns 30] [--mock-delay-ms 0]
"""
import argparse
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402  (the shared servers, mocks and helpers)

TARGET_DEPTH_RATIO = 1.3


def cpu_seconds(pid):
    """CPU time of `pid` and every live descendant (with reaped children's), from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except OSError:
                continue
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime (fields 14-17; index 11-14 after the command name)
        total += sum(int(x) for x in fields[11:15]) / tick
        todo.extend(children.get(p, []))
    return total


class Chat:
    """One SDK-style conversation on a kept-alive connection."""

    def __init__(self, port, model, tag):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.model = model
        self.tag = tag
        self.messages = []

    def turn(self, i):
        self.messages.append({"role": "user", "content": "%s turn %d" % (self.tag, i)})
        body = json.dumps({"model": self.model, "max_tokens": 256, "stream": True,
                           "messages": self.messages}).encode()
        t0 = time.perf_counter()
        self.conn.request("POST", "/anthropic/v1/messages", body=body,
                          headers={"content-type": "application/json"})
        resp = self.conn.getresponse()
        if resp.status != 200:
            raise b.HttpError(resp.status, resp.read().decode(errors="replace"))
        event, text, latency = b"", [], None
        while latency is None:
            line = resp.readline()
            if not line:
                raise b.BenchError("stream ended before message_stop")
            if line.startswith(b"event: "):
                event = line[7:].strip()
                if event == b"message_stop":
                    latency = time.perf_counter() - t0
            elif line.startswith(b"data: ") and event == b"content_block_delta":
                text.append(json.loads(line[6:]).get("delta", {}).get("text", ""))
            elif line.startswith(b"data: ") and event == b"error":
                raise b.BenchError("error event: %s" % line[6:500])
        resp.read()
        answer = "".join(text)
        if "MOCK_OK" not in answer and "turn" not in answer:
            raise b.BenchError("unexpected answer %r" % answer)
        self.messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        return latency

    def close(self):
        self.conn.close()


def counters(server):
    pools = server.get_json("/admin/pools").get("pools", [])
    hits = sum(p.get("counters", {}).get("conversation_hits", 0) for p in pools)
    misses = sum(p.get("counters", {}).get("conversation_misses", 0) for p in pools)
    return hits, misses


def depth_run(server, model, args, label):
    # Every process's first turn after its start is slow (the CLI warms up on it): one turn of
    # a throwaway conversation per warm slot first, so the figures are the steady state.
    for i in range(b.WARM):
        c = Chat(server.port, model, "%s-warmup-%d" % (label, i))
        c.turn(0)
        c.close()
    firsts = []
    for i in range(args.samples):
        c = Chat(server.port, model, "%s-first-%d" % (label, i))
        firsts.append(c.turn(0))
        c.close()
    deep = Chat(server.port, model, "%s-deep" % label)
    for i in range(args.depth):
        deep.turn(i)
    deeps = [deep.turn(args.depth + i) for i in range(args.samples)]
    deep.close()
    return b.pct(firsts, 0.5), b.pct(deeps, 0.5)


def chat_run(server, model, args, label):
    per_index = [[] for _ in range(args.turns)]
    errors = []
    lock = threading.Lock()
    hits0, misses0 = counters(server)
    cpu0 = cpu_seconds(server.proc.pid)

    def worker(w):
        c = Chat(server.port, model, "%s-chat-%d" % (label, w))
        try:
            for i in range(args.turns):
                latency = c.turn(i)
                with lock:
                    per_index[i].append(latency)
        except Exception as e:  # reported after the run
            errors.append(e)
        finally:
            c.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(args.chats)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise b.BenchError("chat run: %s" % errors[0])
    cpu = cpu_seconds(server.proc.pid) - cpu0
    hits, misses = counters(server)
    hits, misses = hits - hits0, misses - misses0
    turns = args.chats * args.turns
    return {"per_index": per_index, "cpu_per_turn": cpu / turns, "wall": wall,
            "hits": hits, "misses": misses}


def run_mode(env, mock, backend, args, park):
    label = "parked" if park else "replayed"
    extra = {"CLINVOKER__POOL__PARK_CONVERSATIONS": "true" if park else "false",
             "CLINVOKER__POOL__MAX_QUEUE": "256"}
    server = b.Server(env, backend, mock.port, extra=extra, name="%s-%s" % (backend, label))
    try:
        server.wait_listening()
        server.wait_idle(b.WARM if backend == "claude" else 1)
        model = b.MODEL[backend]
        b.log("%s: depth run (%d first turns, one conversation to %d turns)" % (label, args.samples, args.depth))
        first, deep = depth_run(server, model, args, label)
        b.log("%s: chat run (%d chats x %d turns)" % (label, args.chats, args.turns))
        chat = chat_run(server, model, args, label)
        return {"first": first, "deep": deep, "chat": chat}
    finally:
        server.stop()


def report(backend, args, parked, replayed):
    print()
    print("## Chat benchmark: %s, mock upstream delay %d ms" % (b.TITLE[backend], args.mock_delay_ms))
    print()
    print("| | parked (default) | replayed (`park_conversations = false`) |")
    print("|---|---|---|")
    print("| first turn p50 | %s ms | %s ms |" % (b.ms(parked["first"]), b.ms(replayed["first"])))
    print("| turn after %d prior turns p50 | %s ms | %s ms |" % (args.depth, b.ms(parked["deep"]), b.ms(replayed["deep"])))
    ratio_p = parked["deep"] / parked["first"]
    ratio_r = replayed["deep"] / replayed["first"]
    verdict = "PASS" if ratio_p <= TARGET_DEPTH_RATIO else "MISS"
    print("| deep / first | **%.2f ×** (target ≤ %.1f ×: %s) | %.2f × |" % (ratio_p, TARGET_DEPTH_RATIO, verdict, ratio_r))
    for name, r in (("parked", parked["chat"]), ("replayed", replayed["chat"])):
        total = r["hits"] + r["misses"]
        rate = "%.0f %%" % (100.0 * r["hits"] / total) if total else "–"
        print("| chat: hit rate (%s) | %s | |" % (name, rate) if name == "parked"
              else "| chat: hit rate (%s) | | %s |" % (name, rate))
    print("| chat: CPU-s per turn (server + CLIs) | %.3f | %.3f |" % (parked["chat"]["cpu_per_turn"], replayed["chat"]["cpu_per_turn"]))
    print("| chat: wall time | %.1f s | %.1f s |" % (parked["chat"]["wall"], replayed["chat"]["wall"]))
    print()
    print("Chat latency per turn index (%d concurrent chats), ms p50 / p95:" % args.chats)
    print()
    print("| turn | parked p50 | parked p95 | replayed p50 | replayed p95 |")
    print("|---|---|---|---|---|")
    indices = sorted({0, 1, 4, 9, 14, 19, 24, args.turns - 1} & set(range(args.turns)))
    for i in indices:
        p, r = parked["chat"]["per_index"][i], replayed["chat"]["per_index"][i]
        print("| %d | %s | %s | %s | %s |" % (i + 1, b.ms(b.pct(p, 0.5)), b.ms(b.pct(p, 0.95)),
                                           b.ms(b.pct(r, 0.5)), b.ms(b.pct(r, 0.95))))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="claude", choices=b.BACKENDS)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--samples", type=int, default=15)
    ap.add_argument("--chats", type=int, default=8)
    ap.add_argument("--turns", type=int, default=30)
    ap.add_argument("--mock-delay-ms", type=int, default=0)
    args = ap.parse_args()
    if not b.SERVER.exists():
        sys.exit("build the server first: cargo build --release")
    env = b.Env()
    mock = b.Mock(env, args.backend, args.mock_delay_ms)
    try:
        parked = run_mode(env, mock, args.backend, args, park=True)
        replayed = run_mode(env, mock, args.backend, args, park=False)
        report(args.backend, args, parked, replayed)
    except b.BenchError as e:
        print("chat benchmark failed: %s (logs in %s)" % (e, env.tmp), file=sys.stderr)
        sys.exit(1)
    finally:
        mock.stop()
    env.cleanup()


if __name__ == "__main__":
    main()
