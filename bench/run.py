#!/usr/bin/env python3
"""Benchmark mcp-server against a minimal hyper server, in one command.

    python3 bench/run.py           # full run: 100,000-chunk KB, 10 s per scenario
    python3 bench/run.py --quick   # smoke run: 10,000 chunks, 2 s per scenario

Steps: build the release binaries, generate (or reuse from
target/bench-cache/) a synthetic KB, mint a token, start `mcp-server serve`
and `baseline-server` on free 127.0.0.1 ports, wait for them, check every
request body once, run `loadgen` for each scenario in SCENARIOS (same
concurrency and duration for all), then print the machine, the KB and a
table built by the functions in ROWS. Every process started here is stopped
on the way out, whatever happens.

Extending: add a Scenario to SCENARIOS (what to send, to which server) and a
row function to ROWS (it receives the Context with every scenario's result
and returns a Row, or None to skip). Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "target" / "release"
CACHE = ROOT / "target" / "bench-cache"
LOGS = ROOT / "target" / "bench-logs"
ACCEPT = "application/json, text/event-stream"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Realistic documentation questions; the search scenario rotates through all
# of them (one body file each). Stop words are dropped by the server.
QUERIES: list[dict] = [
    {"query": "How do I configure streaming replication slots?"},
    {"query": "vacuum freeze and transaction id wraparound with autovacuum"},
    {"query": "create index concurrently on a large table"},
    {"query": "spock conflict resolution between nodes"},
    {"query": "pg_basebackup backup and point in time recovery"},
    {"query": "tune shared_buffers and work_mem for performance"},
    {"query": "ssl certificate authentication in pg_hba"},
    {"query": "upgrade with pg_upgrade", "project_names": ["postgres"], "project_versions": ["17"]},
]

# Targets per row id; a missing entry prints as "—" (none agreed yet).
TARGETS: dict[str, str] = {}


# --------------------------------------------------------------------------- processes


class Procs:
    """Every process this script starts; stop_all() ends them all."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen, object]] = []

    def start(self, name: str, args: list[str], log_path: Path, env: dict | None = None) -> subprocess.Popen:
        log = open(log_path, "w")
        try:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        except BaseException:
            log.close()
            raise
        self.procs.append((name, proc, log))
        return proc

    def stop_all(self) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc, log in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                print(f"bench: {name} ignored SIGTERM, killing it", file=sys.stderr)
                proc.kill()
                proc.wait()
            log.close()
        self.procs.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                 timeout: float = 10) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_http_ok(name: str, proc: subprocess.Popen, port: int, log_path: Path, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: {name} exited {proc.returncode}; see {log_path}:\n{log_path.read_text()[-2000:]}")
        try:
            status, _ = http_request(port, "GET", "/health", timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench: {name} not healthy after {timeout}s; see {log_path}")


def machine_busy_seconds() -> float:
    """CPU time all processes have used since boot, summed over cores."""
    v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --------------------------------------------------------------------------- setup


def build() -> None:
    print("bench: cargo build --release -p mcp-server -p bench", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "-p", "mcp-server", "-p", "bench"], cwd=ROOT, check=True)


def ensure_kb(chunks: int) -> Path:
    """The cached KB of `chunks` chunks, generated if missing or stale."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"kb-{chunks}.db"
    want = subprocess.run([str(RELEASE / "gen-kb"), "--chunks", str(chunks), "--describe"],
                          capture_output=True, text=True, check=True).stdout.strip()
    have = None
    if path.exists():
        try:
            with sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True) as db:
                row = db.execute("SELECT value FROM kb_meta WHERE key = 'generator'").fetchone()
                have = row[0] if row else None
        except sqlite3.Error:
            have = None
    if have != want:
        print(f"bench: generating {path.name} ({want})", file=sys.stderr)
        subprocess.run([str(RELEASE / "gen-kb"), "--chunks", str(chunks), "--out", str(path)], check=True)
    else:
        print(f"bench: reusing {path}", file=sys.stderr)
    return path


def kb_summary(path: Path) -> str:
    with sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True) as db:
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        products = db.execute("SELECT count(*) FROM (SELECT DISTINCT project_name, project_version FROM chunks)").fetchone()[0]
        words = db.execute("SELECT avg(length(text) - length(replace(text, ' ', '')) + 1) FROM chunks").fetchone()[0]
    size = path.stat().st_size / (1024 * 1024)
    return f"{chunks:,} chunks (~{words:.0f} words each), {products} product/version pairs, {size:.0f} MiB ({path.name})"


def machine_summary() -> list[str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return [
        f"machine: nproc {ncpu}, CPU {model}, kernel {platform.release()}",
        f"load average at start: {' '.join(load)}",
        f"commit: {commit or 'unknown'}",
    ]


# --------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    name: str
    target: str  # "baseline" or "mcp"
    describe: str
    bodies: Callable[["Context"], list[dict]]


def rpc(method: str, params: dict | None = None) -> dict:
    msg: dict = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def search_bodies(_: "Context") -> list[dict]:
    return [rpc("tools/call", {"name": "search_knowledgebase", "arguments": q}) for q in QUERIES]


SCENARIOS: list[Scenario] = [
    Scenario("baseline", "baseline", "baseline-server, same search request bodies, fixed 1059-byte reply", search_bodies),
    Scenario("tools_list", "mcp", "mcp-server tools/list (HTTP + auth + rmcp, no SQLite)", lambda _: [rpc("tools/list")]),
    Scenario("search", "mcp", f"mcp-server tools/call search_knowledgebase, rotating {len(QUERIES)} queries", search_bodies),
]


@dataclass
class Context:
    args: argparse.Namespace
    tmp: Path
    token: str
    ports: dict[str, int]
    pids: dict[str, int]
    results: dict[str, dict] = field(default_factory=dict)


def headers(ctx: Context) -> dict:
    return {"Content-Type": "application/json", "Accept": ACCEPT, "Authorization": f"Bearer {ctx.token}"}


def write_bodies(ctx: Context, scenario: Scenario) -> list[Path]:
    paths = []
    for i, body in enumerate(scenario.bodies(ctx)):
        p = ctx.tmp / f"{scenario.name}-{i}.json"
        p.write_text(json.dumps(body))
        paths.append(p)
    return paths


def smoke_check(ctx: Context, scenario: Scenario, bodies: list[Path]) -> None:
    """Send each body once; refuse to benchmark replies that are errors."""
    for p in bodies:
        status, body = http_request(ctx.ports[scenario.target], "POST", "/mcp", p.read_bytes(), headers(ctx))
        text = body.decode(errors="replace")
        ok = 200 <= status < 300
        if ok and scenario.target == "mcp":
            reply = json.loads(text)
            ok = "error" not in reply and not reply.get("result", {}).get("isError", False)
            if ok and scenario.name == "search":
                first = reply["result"]["content"][0]["text"].splitlines()[0]
                print(f"bench: {p.name}: {first}", file=sys.stderr)
        if not ok:
            raise SystemExit(f"bench: {scenario.name}: {p.name} answered {status}: {text[:500]}")


def run_scenario(ctx: Context, scenario: Scenario) -> dict:
    bodies = write_bodies(ctx, scenario)
    smoke_check(ctx, scenario, bodies)
    cmd = [str(RELEASE / "loadgen"), "--url", f"http://127.0.0.1:{ctx.ports[scenario.target]}/mcp",
           "--concurrency", str(ctx.args.concurrency), "--duration", f"{ctx.args.duration}s",
           "--warmup", f"{ctx.args.warmup}s"]
    for k, v in headers(ctx).items():
        cmd += ["--header", f"{k}: {v}"]
    for b in bodies:
        cmd += ["--body-file", str(b)]
    print(f"bench: {scenario.name}: {scenario.describe} ({ctx.args.warmup}s warm-up + {ctx.args.duration}s)", file=sys.stderr)
    pid = ctx.pids[scenario.target]
    busy0, cpu0, t0 = machine_busy_seconds(), cpu_seconds(pid), time.time()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    busy1, cpu1, t1 = machine_busy_seconds(), cpu_seconds(pid), time.time()
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    (LOGS / f"loadgen-{scenario.name}.log").write_text(proc.stderr + proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(f"bench: loadgen failed for {scenario.name}: {proc.stderr.strip()}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["server_cpu_s"] = cpu1 - cpu0
    result["loadgen_cpu_s"] = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    result["wall_s"] = t1 - t0
    # CPU used by anything else on the machine meanwhile: noise in the numbers.
    result["other_cpu_s"] = max(0.0, (busy1 - busy0) - result["server_cpu_s"] - result["loadgen_cpu_s"])
    served = result["total_requests"]  # every request the server answered, warm-up included
    result["server_cpu_us_per_req"] = result["server_cpu_s"] / served * 1e6 if served else float("nan")
    if result["errors"]:
        print(f"bench: {scenario.name}: {result['errors']} errors {result['error_kinds']}; {proc.stderr.strip()}", file=sys.stderr)
    print(f"bench: {scenario.name}: {json.dumps(result)}", file=sys.stderr)
    return result


# --------------------------------------------------------------------------- rows


@dataclass
class Row:
    id: str
    what: str
    measured: str
    baseline: str
    ratio: str


def fmt(x: float, unit: str = "") -> str:
    if x != x:  # NaN
        return "n/a"
    if x >= 100:
        s = f"{x:,.0f}"
    elif x >= 10:
        s = f"{x:.1f}"
    elif x >= 1:
        s = f"{x:.2f}"
    else:
        s = f"{x:.3f}"
    return f"{s} {unit}".strip()


def ratio(a: float, b: float) -> str:
    if not b or a != a or b != b:
        return "n/a"
    r = a / b
    return f"{r:.4f}×" if r < 0.01 else f"{r:.3f}×" if r < 1 else f"{r:.2f}×" if r < 100 else f"{r:,.0f}×"


def metric_row(scenario: str, key: str, label: str, unit: str) -> Callable[[Context], Row | None]:
    def row(ctx: Context) -> Row | None:
        m, b = ctx.results.get(scenario), ctx.results.get("baseline")
        if m is None or b is None:
            return None
        return Row(f"{scenario}.{key}", label, fmt(m[key], unit), fmt(b[key], unit), ratio(m[key], b[key]))
    return row


ROWS: list[Callable[[Context], Row | None]] = [
    metric_row("search", "rps", "search: requests/s", "req/s"),
    metric_row("search", "p50_ms", "search: p50 latency", "ms"),
    metric_row("search", "p99_ms", "search: p99 latency", "ms"),
    metric_row("search", "server_cpu_us_per_req", "search: server CPU per request", "µs"),
    metric_row("tools_list", "rps", "tools/list: requests/s", "req/s"),
    metric_row("tools_list", "p50_ms", "tools/list: p50 latency", "ms"),
    metric_row("tools_list", "p99_ms", "tools/list: p99 latency", "ms"),
    metric_row("tools_list", "server_cpu_us_per_req", "tools/list: server CPU per request", "µs"),
]


def table(ctx: Context) -> str:
    lines = ["| what | measured | baseline (same run) | ratio | target |", "| --- | ---: | ---: | ---: | --- |"]
    for f in ROWS:
        r = f(ctx)
        if r is not None:
            lines.append(f"| {r.what} | {r.measured} | {r.baseline} | {r.ratio} | {TARGETS.get(r.id, '—')} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 10,000 chunks, 2 s per scenario, 1 s warm-up")
    ap.add_argument("--chunks", type=int, help="KB size in chunks [100000; 10000 with --quick]")
    ap.add_argument("--duration", type=float, help="measured seconds per scenario [10; 2 with --quick]")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per scenario [2; 1 with --quick]")
    ap.add_argument("--concurrency", type=int, default=16, help="connections, one request in flight each [16]")
    ap.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    ap.add_argument("--only", action="append", help="run only this scenario (repeatable; baseline always runs)")
    args = ap.parse_args()
    args.chunks = args.chunks or (10_000 if args.quick else 100_000)
    args.duration = args.duration or (2 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)

    # A SIGTERM (e.g. from CI) must still run the finally below.
    signal.signal(signal.SIGTERM, _interrupt)
    if not args.no_build:
        build()
    LOGS.mkdir(parents=True, exist_ok=True)
    header = machine_summary()
    kb = ensure_kb(args.chunks)
    procs = Procs()
    try:
        with tempfile.TemporaryDirectory(prefix="mcp-bench-") as tmp_name:
            tmp = Path(tmp_name)
            token = subprocess.run([str(RELEASE / "mcp-server"), "token", "add", "--file", str(tmp / "tokens.yaml"),
                                    "--annotation", "bench"], capture_output=True, text=True, check=True).stdout.strip()
            ports = {"mcp": free_port(), "baseline": free_port()}
            mcp_log, base_log = LOGS / "mcp-server.log", LOGS / "baseline-server.log"
            mcp = procs.start("mcp-server", [
                str(RELEASE / "mcp-server"), "serve", "--listen", f"127.0.0.1:{ports['mcp']}",
                "--data-dir", str(tmp), "--kb-file", str(kb), "--instance-id", "bench",
                "--log-format", "json", "--drain-delay", "0s", "--shutdown-timeout", "5s",
            ], mcp_log, env={"RUST_LOG": "warn"})
            base = procs.start("baseline-server", [str(RELEASE / "baseline-server"), "--listen", f"127.0.0.1:{ports['baseline']}"], base_log)
            wait_http_ok("baseline-server", base, ports["baseline"], base_log)
            t0 = time.time()
            wait_http_ok("mcp-server", mcp, ports["mcp"], mcp_log)
            print(f"bench: mcp-server ready in {time.time() - t0:.1f}s", file=sys.stderr)
            ctx = Context(args, tmp, token, ports, {"mcp": mcp.pid, "baseline": base.pid})
            for s in SCENARIOS:
                if args.only and s.name != "baseline" and s.name not in args.only:
                    continue
                ctx.results[s.name] = run_scenario(ctx, s)
    finally:
        procs.stop_all()

    errors = sum(r["errors"] for r in ctx.results.values())
    print()
    print("\n".join(header))
    print(f"KB: {kb_summary(kb)}")
    print(f"load: loadgen, {args.concurrency} connections (one request in flight each), {args.warmup:g}s warm-up + "
          f"{args.duration:g}s measured per scenario; search rotates {len(QUERIES)} queries (top_n default 5)")
    print()
    print(table(ctx))
    print()
    print("search = tools/call search_knowledgebase, each connection rotating through: "
          + "; ".join(json.dumps(q, ensure_ascii=False) for q in QUERIES))
    print("tools/list = the same server without SQLite (HTTP, auth, rmcp); baseline = baseline-server "
          "answering the search request bodies with a fixed 1,059-byte tools/list reply")
    noisy = []
    for name, r in ctx.results.items():
        cores = {k: r[f"{k}_cpu_s"] / r["wall_s"] for k in ("server", "loadgen", "other")}
        print(f"{name}: {r['requests']:,} requests, {r['errors']} errors, {r['bytes_per_reply']:,} bytes/reply, "
              f"p90 {r['p90_ms']} ms, max {r['max_ms']} ms; cores used: server {cores['server']:.2f}, "
              f"loadgen {cores['loadgen']:.2f}, other processes {cores['other']:.2f}")
        if cores["other"] > 0.15:
            noisy.append(name)
    if noisy:
        print(f"warning: other processes used CPU during {', '.join(noisy)}: those numbers are disturbed; rerun on an idle machine")
    print(f"logs: {LOGS}")
    if errors:
        print(f"bench: {errors} errors during the run: the numbers above are not valid", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except subprocess.CalledProcessError as e:
        print(f"bench: {' '.join(map(str, e.cmd))} exited {e.returncode}", file=sys.stderr)
        sys.exit(1)
