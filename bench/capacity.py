#!/usr/bin/env python3
"""Capacity of one instance, measured: memory per live CLI process for each backend, and model
turns per CPU-second (= turns/s per core) for the fake CLI and the three real CLIs.

    python3 bench/capacity.py [--binary target/release/clinvoker] [--processes 4] [--seconds 15]

The real CLIs are the pinned ones the test command installs (tests/node/node_modules/.bin), each
pointed at its local mock upstream (tests/support/mock_*.py, answering at once): the numbers are
the cost of the CLIs and of clinvoker, not of a model. Prints Markdown.

Memory: each backend's default pool is resized to --processes warm processes; every process
runs turns (Codex and Gemini: all 8 conversation slots at once); then, for each CLI process and
its descendants (the Codex npm wrapper starts a native binary), RSS and PSS from
/proc/PID/smaps_rollup. PSS shares the pages processes of one binary have in common among them,
so it is what N more processes cost; RSS counts those pages in every process.

CPU: a closed loop of concurrent non-streaming Messages requests (as many as the pool has
conversation slots) for --seconds; the CPU time of clinvoker and every process under it (live
ones, and the exited ones it reaped) divided into the turns answered. The mocks' and this
script's CPU are not counted.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / "tests" / "node" / "node_modules" / ".bin"
SUPPORT = REPO / "tests" / "support"
TICK = os.sysconf("SC_CLK_TCK")
# Backend -> (its default pool's id, a model name routed to it, conversation slots per process).
BACKENDS = {
    "claude": ("default", "claude", 1),
    "codex": ("codex-default", "gpt-5-codex", 8),
    "gemini": ("gemini-default", "gemini-2.5-flash", 8),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, body=None, timeout=120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, data, {"content-type": "application/json"})
    r = conn.getresponse()
    text = r.read()
    conn.close()
    return r.status, (json.loads(text) if text else None)


class Processes:
    """What this script starts; stopped on exit."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def mock(self, script):
        port = free_port()
        log = open(self.workdir / (Path(script).stem + ".log"), "wb")
        proc = subprocess.Popen([sys.executable, str(script), str(port), "--exit-on-stdin-eof"],
                                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return "http://127.0.0.1:%d" % port
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("%s did not start" % script)
                time.sleep(0.05)

    def server(self, binary, name, env_extra):
        d = self.workdir / name
        d.mkdir()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CLINVOKER", "ANTHROPIC_", "OPENAI_", "GEMINI_", "CODEX_"))}
        env.update({
            "CLINVOKER__SERVER__STATE_DIR": str(d / "state"),
            "CLINVOKER__POOL__MAX_TOTAL_PROCESSES": "32",
            "CLINVOKER__POOL__MAX_PROCESSES": "16",
            "CLINVOKER__POOL__READY_TIMEOUT_SECS": "90",
            # No recycling during a measurement: a recycled process takes its CPU time along.
            "CLINVOKER__POOL__MAX_TURNS_PER_PROCESS": "1000000",
            "CLINVOKER__BACKENDS__GEMINI__MAX_SESSIONS_PER_PROCESS": "1000000",
        })
        env.update(env_extra)
        out = d / "stdout.log"
        with open(out, "wb") as o, open(d / "stderr.log", "wb") as e:
            proc = subprocess.Popen([str(binary), "serve", "--port", "0"], stdout=o, stderr=e,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.procs.append(proc)
        deadline = time.monotonic() + 30
        while "listening on" not in out.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("clinvoker (%s) did not start: %s" % (name, (d / "stderr.log").read_text()[-2000:]))
            time.sleep(0.05)
        return proc, int(out.read_text().splitlines()[0].rsplit(":", 1)[1])

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def children():
    """ppid -> [pid] of every process now."""
    tree = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open("/proc/%s/stat" % entry).read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid, tree):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def memory_kib(pid):
    """(RSS, PSS) in KiB of one process, from smaps_rollup."""
    values = {}
    try:
        for line in open("/proc/%d/smaps_rollup" % pid):
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values.get("Rss", 0), values.get("Pss", 0)


def cpu_secs(pid):
    """CPU time of `pid` and every descendant, live or reaped."""
    total = 0
    for p in descendants(pid, children()):
        try:
            fields = open("/proc/%d/stat" % p).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime (the reaped children's, recursively).
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total / TICK


def own_cpu_secs(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pools(port):
    status, body = call(port, "GET", "/admin/pools")
    assert status == 200, body
    return {p["id"]: p for p in body["pools"]}


def warm(port, pool, n, deadline_secs=180):
    status, body = call(port, "POST", "/admin/pools/%s/resize" % pool, {"max_processes": n, "min_idle": n})
    assert status == 200, body
    deadline = time.monotonic() + deadline_secs
    while True:
        procs = pools(port).get(pool, {}).get("processes", [])
        if sum(1 for p in procs if p["state"] == "idle") >= n:
            return
        if time.monotonic() > deadline:
            sys.exit("pool %s did not get %d warm processes: %s" % (pool, n, procs))
        time.sleep(0.2)


def turns(port, model, concurrency, seconds=None, count=None):
    """Runs turns `concurrency` at a time, for `seconds` or `count` turns; returns (ok, failed)."""
    done = {"ok": 0, "failed": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds if seconds else None
    remaining = [count] if count else None

    def worker(w):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        i = 0
        while True:
            with lock:
                if stop_at and time.monotonic() >= stop_at:
                    return
                if remaining is not None:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
            i += 1
            body = {"model": model, "max_tokens": 32,
                    "messages": [{"role": "user", "content": "worker %d turn %d: say ok" % (w, i)}]}
            conn.request("POST", "/anthropic/v1/messages", json.dumps(body), {"content-type": "application/json"})
            r = conn.getresponse()
            r.read()
            with lock:
                done["ok" if r.status == 200 else "failed"] += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done["ok"], done["failed"]


def memory_of(port, pool):
    """(processes, OS processes in each, mean RSS MiB, mean PSS MiB, mean turns) of a pool."""
    tree = children()
    per_process = []
    for proc in pools(port)[pool]["processes"]:
        tree_pids = descendants(proc["pid"], tree)
        rss = pss = 0
        for p in tree_pids:
            r, s = memory_kib(p)
            rss, pss = rss + r, pss + s
        per_process.append((len(tree_pids), rss / 1024, pss / 1024, proc["turns"]))
    n = len(per_process)
    return (n, per_process[0][0], sum(p[1] for p in per_process) / n, sum(p[2] for p in per_process) / n,
            sum(p[3] for p in per_process) / n)


def print_memory(rows):
    print("| backend | processes | OS processes each | turns run / process | RSS MiB / process | PSS MiB / process | processes per GiB (PSS) | conversation slots per GiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for backend, (n, tree_size, rss, pss, turns_run) in rows:
        slots = BACKENDS[backend][2]
        print("| %s | %d | %d | %.0f | %.0f | %.0f | %.1f | %.0f |" % (
            backend, n, tree_size, turns_run, rss, pss, 1024 / pss, 1024 / pss * slots))
    print()


def measure_memory(port, server_pid, processes):
    rows = []
    for backend, (pool, model, slots) in BACKENDS.items():
        warm(port, pool, processes)
        # Every process runs turns; Codex and Gemini processes with all their slots busy at once.
        ok, failed = turns(port, model, processes * slots, count=processes * slots * 2)
        assert failed == 0 and ok > 0, (backend, ok, failed)
        time.sleep(1)
        rows.append((backend, memory_of(port, pool)))
    print_memory(rows)
    server_rss, server_pss = memory_kib(server_pid)
    print("- clinvoker itself, with these %d processes: RSS %.0f MiB, PSS %.0f MiB" % (
        sum(r[1][0] for r in rows), server_rss / 1024, server_pss / 1024))
    print()


def measure_cpu(label, port, server_pid, model, concurrency, seconds):
    ok, failed = turns(port, model, concurrency, count=concurrency * 2)  # warm up
    start_all, start_own, t0 = cpu_secs(server_pid), own_cpu_secs(server_pid), time.monotonic()
    ok, failed = turns(port, model, concurrency, seconds=seconds)
    wall = time.monotonic() - t0
    cpu_all, cpu_own = cpu_secs(server_pid) - start_all, own_cpu_secs(server_pid) - start_own
    return ("| %s | %d | %d | %d | %.1f | %.1f | %.1f | %.2f | %.1f |" % (
        label, concurrency, ok, failed, ok / wall, cpu_all, cpu_own, cpu_all / ok * 1000, ok / cpu_all))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", type=Path,
                    default=next((p for p in (REPO / "target/release/clinvoker", REPO / "target/debug/clinvoker")
                                  if p.exists()), None))
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=15)
    args = ap.parse_args()
    if args.binary is None:
        sys.exit("no clinvoker binary: cargo build --release")
    for cli in ("claude", "codex", "gemini"):
        if not (BIN / cli).exists():
            sys.exit("the %s CLI is missing: run the test command (it installs the pinned CLIs)" % cli)
    binary = args.binary.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="capacity-"))
    procs = Processes(workdir)
    try:
        anthropic = procs.mock(SUPPORT / "mock_anthropic.py")
        responses = procs.mock(SUPPORT / "mock_openai_responses.py")
        gemini = procs.mock(SUPPORT / "mock_gemini.py")
        versions = {c: subprocess.run([str(BIN / c), "--version"], capture_output=True, text=True).stdout.strip()
                    for c in ("claude", "codex", "gemini")}
        print("- %d cores; binary %s; CLIs: Claude Code %s, %s, Gemini CLI %s; mocks answer at once" % (
            os.cpu_count(), binary.name if binary.parent.name != "release" else "target/release/clinvoker",
            versions["claude"], versions["codex"], versions["gemini"]))
        print()
        real, port = procs.server(binary, "real", {
            "ANTHROPIC_BASE_URL": anthropic, "ANTHROPIC_API_KEY": "sk-test",
            "CLINVOKER__BACKENDS__CLAUDE__COMMAND": str(BIN / "claude"),
            "CLINVOKER__BACKENDS__CODEX__COMMAND": str(BIN / "codex"),
            "CLINVOKER__BACKENDS__CODEX__BASE_URL": responses + "/v1",
            "CLINVOKER__BACKENDS__CODEX__REQUEST_MAX_RETRIES": "0",
            "OPENAI_API_KEY": "sk-test",
            "CLINVOKER__BACKENDS__GEMINI__COMMAND": str(BIN / "gemini"),
            "CLINVOKER__BACKENDS__GEMINI__BASE_URL": gemini,
            "GEMINI_API_KEY": "test-key",
        })
        print("### Memory per live process (%d per backend)" % args.processes)
        print()
        measure_memory(port, real.pid, args.processes)

        fake, fake_port = procs.server(binary, "fake", {
            "CLINVOKER__BACKENDS__CLAUDE__COMMAND": str(binary.parent / "fake-claude")})
        warm(fake_port, "default", args.processes)
        print("### Turns per CPU-second (%.0f s of load each)" % args.seconds)
        print()
        print("| CLI | concurrent requests | turns | failed | turns/s | CPU-s, all | CPU-s, clinvoker alone | CPU-ms / turn | turns/s per core |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(measure_cpu("fake CLI (clinvoker's own cost)", fake_port, fake.pid, "claude", args.processes, args.seconds))
        for backend, (pool, model, slots) in BACKENDS.items():
            print(measure_cpu(backend, port, real.pid, model, args.processes * slots if slots == 1 else 8, args.seconds))
        print()
        print("### Memory after that load (no recycling)")
        print()
        print_memory([(backend, memory_of(port, pool)) for backend, (pool, _, _) in BACKENDS.items()])
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
