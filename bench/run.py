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
TARGETS: dict[str, str] = {
    "reload_watch_p99": "≤ 10 ms",
    "kb_init_s": "≤ 1.5×",
    "sidecar_bytes_per_cycle": "0 B",
}


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
    packages = ["mcp-server", "kb-init", "kb-sync-sidecar", "bench"]
    print(f"bench: cargo build --release -p {' -p '.join(packages)}", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", *[a for p in packages for a in ("-p", p)]], cwd=ROOT, check=True)


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
    auth: str = "api"  # api (API token), session (session token) or none


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
    Scenario("ping_api", "mcp", "mcp-server ping with an API token", lambda _: [rpc("ping")], "api"),
    Scenario("ping_session", "mcp", "mcp-server ping with a session token", lambda _: [rpc("ping")], "session"),
    Scenario("ping_none", "mcp", "mcp-server ping with no credential", lambda _: [rpc("ping")], "none"),
]


@dataclass
class Context:
    args: argparse.Namespace
    tmp: Path
    token: str
    ports: dict[str, int]
    pids: dict[str, int]
    session_token: str = ""
    results: dict[str, dict] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)


def headers(ctx: Context, auth: str = "api") -> dict:
    h = {"Content-Type": "application/json", "Accept": ACCEPT}
    if auth == "api":
        h["Authorization"] = f"Bearer {ctx.token}"
    elif auth == "session":
        h["Authorization"] = f"Bearer {ctx.session_token}"
    return h


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
        status, body = http_request(ctx.ports[scenario.target], "POST", "/mcp", p.read_bytes(), headers(ctx, scenario.auth))
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
    for k, v in headers(ctx, scenario.auth).items():
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



# --------------------------------------------------------------------------- measurements outside loadgen

VENV_BIN = ROOT / ".venv" / "bin"
RELOAD_TRIALS = 100
POLL_INTERVAL_MS = 200


def percentile(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(p / 100 * len(v)) - 1))] if v else float("nan")


def tokens_yaml(*tokens: str) -> str:
    import hashlib
    lines = ["tokens:"]
    for i, t in enumerate(tokens):
        lines += [f"  t{i}:", f"    hash: {hashlib.sha256(t.encode()).hexdigest()}", "    expires_at: null"]
    return "\n".join(lines) + "\n"


def measure_reload(procs: "Procs", kb: Path, tmp: Path, watch: bool) -> list[float]:
    """Seconds from tokens.yaml renamed into place until a request with the
    new token is accepted, over RELOAD_TRIALS trials."""
    mode = "watch" if watch else "poll"
    d = tmp / f"reload-{mode}"
    d.mkdir()
    (d / "tokens.yaml").write_text(tokens_yaml("bench-stable-token-0000000000"))
    port = free_port()
    log = LOGS / f"mcp-server-reload-{mode}.log"
    extra = [] if watch else ["--watch", "false", "--poll-interval", f"{POLL_INTERVAL_MS}ms"]
    proc = procs.start(f"mcp-server (reload, {mode})", [
        str(RELEASE / "mcp-server"), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(d),
        "--kb-file", str(kb), "--log-format", "json", "--drain-delay", "0s",
        "--auth-failure-limit", "100000000", *extra], log, env={"RUST_LOG": "warn"})
    wait_http_ok(f"mcp-server (reload, {mode})", proc, port, log)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps(rpc("tools/list"))
    latencies = []
    for i in range(RELOAD_TRIALS):
        token = f"bench-reload-{mode}-{i:04d}-xxxxxxxxxxxx"
        staged = d / f".staged-{i}"
        staged.write_text(tokens_yaml("bench-stable-token-0000000000", token))
        h = {"Content-Type": "application/json", "Accept": ACCEPT, "Authorization": f"Bearer {token}"}
        os.replace(staged, d / "tokens.yaml")
        t0 = time.perf_counter()
        while True:
            conn.request("POST", "/mcp", body, h)
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                break
            if time.perf_counter() - t0 > 10:
                raise SystemExit(f"bench: reload ({mode}) not seen within 10 s")
        latencies.append(time.perf_counter() - t0)
        time.sleep(0.02)
    conn.close()
    return latencies


def measure_sync(procs: "Procs", tmp: Path, chunks: int) -> dict[str, float]:
    """kb-init fetch + verify + publish of a ~100 MB KB from S3 (moto) beside
    `aws s3 cp` of the same object, and the sidecar's cost per cycle when the
    source is unchanged."""
    moto = VENV_BIN / "moto_server"
    aws = subprocess.run(["bash", "-c", "command -v aws"], capture_output=True, text=True).stdout.strip()
    if not moto.exists() or not aws:
        print("bench: sync rows skipped: needs .venv/bin/moto_server (scripts/test.sh installs it) and the aws CLI", file=sys.stderr)
        return {}
    kb = ensure_kb(chunks)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": endpoint,
           "KB_S3_PATH_STYLE": "true"}
    m = procs.start("moto_server", [str(moto), "-H", "127.0.0.1", "-p", str(port)], LOGS / "moto.log")
    deadline = time.time() + 30
    while True:
        try:
            http_request(port, "GET", "/moto-api/")
            break
        except OSError:
            if time.time() > deadline or m.poll() is not None:
                raise SystemExit("bench: moto_server did not start")
            time.sleep(0.1)
    aws_cmd = [aws, "--endpoint-url", endpoint, "s3"]
    subprocess.run(aws_cmd + ["mb", "s3://bench"], env=env, check=True, capture_output=True)
    subprocess.run(aws_cmd + ["cp", str(kb), "s3://bench/kb.db"], env=env, check=True, capture_output=True)
    kb_init, aws_cp = [], []
    for i in range(3):
        dest = tmp / f"sync-{i}"
        t0 = time.perf_counter()
        subprocess.run([str(RELEASE / "kb-init"), "--dest", str(dest), "--file", "kb.db=s3://bench/kb.db",
                        "--log-format", "json"], env=env, check=True, capture_output=True)
        kb_init.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(aws_cmd + ["cp", "s3://bench/kb.db", str(tmp / f"aws-{i}.db")], env=env, check=True, capture_output=True)
        aws_cp.append(time.perf_counter() - t0)
        (tmp / f"aws-{i}.db").unlink()
    # The sidecar over an up-to-date destination: every cycle is a HEAD.
    sport = free_port()
    side = procs.start("kb-sync-sidecar", [str(RELEASE / "kb-sync-sidecar"), "--dest", str(tmp / "sync-0"),
                                           "--file", "kb.db=s3://bench/kb.db", "--interval", "500ms", "--jitter", "0%",
                                           "--listen", f"127.0.0.1:{sport}", "--log-format", "json"],
                       LOGS / "kb-sync-sidecar.log", env=env)
    time.sleep(2.0)

    def metrics() -> tuple[float, float]:
        _, text = http_request(sport, "GET", "/metrics")
        cycles = fetched = 0.0
        for line in text.decode().splitlines():
            if line.startswith("kb_sync_syncs_total{") and 'outcome="unchanged"' in line:
                cycles = float(line.rsplit(" ", 1)[1])
            if line.startswith("kb_sync_fetched_bytes_total{"):
                fetched = float(line.rsplit(" ", 1)[1])
        return cycles, fetched

    c0, b0, cpu0 = *metrics(), cpu_seconds(side.pid)
    time.sleep(10.0)
    c1, b1, cpu1 = *metrics(), cpu_seconds(side.pid)
    cycles = max(c1 - c0, 1.0)
    return {
        "kb_bytes": float(kb.stat().st_size),
        "kb_init_s": sorted(kb_init)[1],
        "aws_cp_s": sorted(aws_cp)[1],
        "sidecar_cycles": c1 - c0,
        "sidecar_bytes_per_cycle": (b1 - b0) / cycles,
        "sidecar_cpu_ms_per_cycle": (cpu1 - cpu0) / cycles * 1000,
    }

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


def extra_row(key: str, label: str, unit: str, base_key: str | None = None, scale: float = 1.0) -> Callable[[Context], Row | None]:
    def row(ctx: Context) -> Row | None:
        if key not in ctx.extra:
            return None
        m = ctx.extra[key] * scale
        if base_key is None:
            return Row(key, label, fmt(m, unit), "—", "—")
        b = ctx.extra[base_key] * scale
        return Row(key, label, fmt(m, unit), fmt(b, unit), ratio(m, b))
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
    metric_row("ping_api", "rps", "ping, API token: requests/s", "req/s"),
    metric_row("ping_session", "rps", "ping, session token: requests/s", "req/s"),
    metric_row("ping_none", "rps", "ping, no auth: requests/s", "req/s"),
    extra_row("reload_watch_p50", "reload latency, watcher: p50", "ms", scale=1000),
    extra_row("reload_watch_p99", "reload latency, watcher: p99", "ms", scale=1000),
    extra_row("reload_poll_p50", f"reload latency, polling only ({POLL_INTERVAL_MS} ms): p50", "ms", scale=1000),
    extra_row("reload_poll_p99", f"reload latency, polling only ({POLL_INTERVAL_MS} ms): p99", "ms", scale=1000),
    extra_row("kb_init_s", "kb-init fetch + verify + publish (S3, ~100 MB) vs aws s3 cp", "s", "aws_cp_s"),
    extra_row("sidecar_bytes_per_cycle", "sidecar cycle, source unchanged: body bytes", "B"),
    extra_row("sidecar_cpu_ms_per_cycle", "sidecar cycle, source unchanged: CPU", "ms"),
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
            subprocess.run([str(RELEASE / "mcp-server"), "user", "add", "--file", str(tmp / "users.yaml"),
                            "--username", "bench"], env={**os.environ, "MCP_PASSWORD": "bench-password"},
                           capture_output=True, check=True)
            (tmp / "session.key").write_text(os.urandom(32).hex() + "\n")
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
            login = rpc("tools/call", {"name": "authenticate_user", "arguments": {"username": "bench", "password": "bench-password"}})
            _, reply = http_request(ports["mcp"], "POST", "/mcp", json.dumps(login).encode(), headers(ctx, "none"))
            ctx.session_token = json.loads(json.loads(reply)["result"]["content"][0]["text"])["session_token"]
            for s in SCENARIOS:
                if args.only and s.name != "baseline" and s.name not in args.only:
                    continue
                ctx.results[s.name] = run_scenario(ctx, s)
            if not args.only or "reload" in args.only:
                for watch in (True, False):
                    lat = measure_reload(procs, kb, tmp, watch)
                    mode = "watch" if watch else "poll"
                    ctx.extra[f"reload_{mode}_p50"] = percentile(lat, 50)
                    ctx.extra[f"reload_{mode}_p99"] = percentile(lat, 99)
            if not args.only or "sync" in args.only:
                ctx.extra.update(measure_sync(procs, tmp, 4_700 if args.quick else 47_000))
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
