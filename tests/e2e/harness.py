"""Shared helpers for the end-to-end tests: start and stop the real binaries,
make data directories, and talk raw HTTP where a test needs to see status codes.

Every server binds 127.0.0.1 on a free port; every log goes to
target/e2e-logs/ so the whole suite's output can be inspected afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("MCP_BIN_DIR", ROOT / "target" / "debug"))
FIXTURES = ROOT / "tests" / "fixtures"
LOG_DIR = ROOT / "target" / "e2e-logs"
LOG_DIR.mkdir(parents=True, exist_ok=True)

ACCEPT = "application/json, text/event-stream"


# pgEdge's own kb.db layout (its two tables, embeddings as BLOBs), without
# anything this project adds.
PGEDGE_SCHEMA = """
        CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL, title TEXT, section TEXT,
            project_name TEXT NOT NULL, project_version TEXT NOT NULL, file_path TEXT, source_file_checksum TEXT,
            openai_embedding BLOB, voyage_embedding BLOB, ollama_embedding BLOB, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
        CREATE TABLE source_files (checksum TEXT PRIMARY KEY, file_path TEXT NOT NULL, project_name TEXT NOT NULL,
            project_version TEXT NOT NULL, doc_type TEXT, num_chunks INTEGER, processed_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, input: str | None = None, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run one of the project's binaries to completion."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], input=input, capture_output=True, text=True, env=full_env, timeout=120)
    with open(LOG_DIR / "commands.log", "a") as f:
        f.write(f"$ {' '.join(args)}\n{proc.stderr}\n")
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr}")
    return proc


def build_fixture_kb(d: Path) -> Path:
    """Create `d` (if needed) with a kb.db built from tests/fixtures/docs."""
    d.mkdir(parents=True, exist_ok=True)
    run("mcp-server", "kb", "build", "--docs", str(FIXTURES / "docs"), "--out", str(d / "kb.db"))
    return d


def make_data_dir(path: Path, docs: Path = FIXTURES / "docs") -> str:
    """Build a KB from `docs` and one token into `path`; returns the token."""
    path.mkdir(parents=True, exist_ok=True)
    run("mcp-server", "kb", "build", "--docs", str(docs), "--out", str(path / "kb.db"), "--project", "postgres", "--project-version", "17")
    return add_token(path / "tokens.yaml")


def add_token(tokens_file: Path, *extra: str) -> str:
    token = run("mcp-server", "token", "add", "--file", str(tokens_file), "--annotation", "e2e", *extra).stdout.strip()
    remember_secret(token)
    return token


SECRETS_FILE = LOG_DIR / "secrets.txt"


def remember_secret(*secrets: str) -> None:
    """Record secrets the suite uses; the last test checks no log line holds one."""
    with open(SECRETS_FILE, "a") as f:
        for s in secrets:
            f.write(s + "\n")
            if len(s) < 64:  # a token's stored hash is a secret too
                f.write(sha256_hex(s) + "\n")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    """One HTTP request; returns (status, headers, body) for any status."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def rpc(url: str, method: str, params: dict | None = None, token: str | None = None, id: int | None = 1, headers: dict | None = None, timeout: float = 10) -> tuple[int, dict, dict | None]:
    """POST one JSON-RPC message (legacy style, no _meta) and decode the reply."""
    msg: dict = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    if id is not None:
        msg["id"] = id
    h = {"Content-Type": "application/json", "Accept": ACCEPT, **(headers or {})}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    status, resp_headers, body = http("POST", url, json.dumps(msg).encode(), h, timeout=timeout)
    decoded = None
    if body:
        text = body.decode()
        if text.lstrip().startswith("{"):
            decoded = json.loads(text)
        else:  # an SSE answer: take the first data line
            for line in text.splitlines():
                if line.startswith("data:") and line[5:].strip():
                    decoded = json.loads(line[5:])
                    break
    return status, resp_headers, decoded


def search_text(url: str, token: str, query: str, **args) -> str:
    status, _, body = rpc(url, "tools/call", {"name": "search_knowledgebase", "arguments": {"query": query, **args}}, token=token)
    assert status == 200, (status, body)
    assert body is not None and "result" in body, body
    return "\n".join(c.get("text", "") for c in body["result"]["content"])


class McpServer:
    """A running `mcp-server serve` on 127.0.0.1."""

    def __init__(self, data_dir: Path, name: str = "server", extra: list[str] | None = None, env: dict | None = None, wait: bool = True, wrap: list[str] | None = None, auth_limit: int = 1_000_000,
                 drain: str = "0s", shutdown_timeout: str = "5s", port: int | None = None,
                 binary: Path | None = None):
        """`auth_limit` is high by default: many tests probe with tokens that
        are not valid yet, which the server rightly counts as failures."""
        self.port = port or free_port()
        self.name = name
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/mcp"
        self.log_path = LOG_DIR / f"{name}-{self.port}.log"
        self.log = open(self.log_path, "w")
        args = [
            *(wrap or []),
            str(binary or BIN / "mcp-server"), "serve",
            "--listen", f"127.0.0.1:{self.port}",
            "--data-dir", str(data_dir),
            "--instance-id", name,
            "--log-format", "json",
            "--drain-delay", drain,
            "--shutdown-timeout", shutdown_timeout,
            "--auth-failure-limit", str(auth_limit),
            *(extra or []),
        ]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "debug", **(env or {})})
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop(signal.SIGKILL)  # never leak a server from a failed start
                raise

    def health(self) -> tuple[int, dict]:
        status, _, body = http("GET", f"{self.base}/health")
        return status, json.loads(body)

    def status(self) -> dict | None:
        """The /health body, or None while the server is not listening yet."""
        try:
            return self.health()[1]
        except (urllib.error.URLError, ConnectionError, OSError):
            return None

    def wait_ready(self, timeout: float = 20) -> dict:
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}; log: {self.log_path.read_text()[-2000:]}")
            try:
                status, body = self.health()
                last = body
                if status == 200:
                    return body
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"{self.name} not ready after {timeout}s: {last}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def publish(path: Path, content: bytes | str) -> None:
    """Write `content` next to `path` and rename it over `path`: what the sidecar does."""
    data = content.encode() if isinstance(content, str) else content
    tmp = path.with_name(f".tmp-{path.name}-{time.monotonic_ns()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def tokens_yaml(*tokens: str) -> str:
    remember_secret(*tokens)
    lines = ["tokens:"]
    for i, t in enumerate(tokens):
        lines += [f"  t{i}:", f"    hash: {sha256_hex(t)}", "    expires_at: null"]
    return "\n".join(lines) + "\n"


def wait_until(predicate, timeout: float = 10, interval: float = 0.002):
    """Poll `predicate` until it returns a truthy value; returns (value, seconds)."""
    start = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


class KeepAlive:
    """A keep-alive HTTP/1.1 connection for quick repeated JSON-RPC calls."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        import http.client

        self.conn = http.client.HTTPConnection(host, port, timeout=10)

    def call(self, token: str, method: str = "tools/list", params: dict | None = None) -> tuple[int, dict | None]:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}})
        headers = {"Content-Type": "application/json", "Accept": ACCEPT, "Authorization": f"Bearer {token}"}
        self.conn.request("POST", "/mcp", body, headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, (json.loads(data) if data.startswith(b"{") else None)

    def accepted(self, token: str) -> bool:
        return self.call(token)[0] == 200

    def close(self):
        self.conn.close()


class Nginx:
    """A real nginx on 127.0.0.1 in front of `upstream_ports`, run in the foreground."""

    def __init__(self, upstream_ports: list[int], tmp: Path, extra_http: str = ""):
        import shutil as _shutil

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.dir = tmp / f"nginx-{self.port}"
        self.dir.mkdir(parents=True)
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstream_ports)
        conf = f"""
daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {LOG_DIR}/nginx-{self.port}-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {LOG_DIR}/nginx-{self.port}-access.log;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    upstream mcp {{
{servers}
        keepalive 16;
        # Shorter than the servers' drain delay: by the time a draining
        # server stops accepting, nginx has closed its idle connections to it.
        keepalive_timeout 1s;
    }}
    {extra_http}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://mcp;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"""
        (self.dir / "nginx.conf").write_text(conf)
        nginx = _shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=open(LOG_DIR / f"nginx-{self.port}.log", "w"))
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                assert self.proc.poll() is None, (LOG_DIR / f"nginx-{self.port}.log").read_text()
                assert time.time() < deadline, "nginx did not start"
                time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Load:
    """Continuous authenticated tools/call traffic, counted per named phase.

    `rate` caps the total requests per second (each thread paces itself), for
    traffic through an edge with a per-client rate limit."""

    def __init__(self, port: int, token: str, threads: int = 4, query: str = "replication slot", rate: float | None = None,
                 host: str = "127.0.0.1"):
        self.port, self.token, self.query, self.host = port, token, query, host
        self.pause = threads / rate if rate else 0.0
        self.phase = "warmup"
        self.counts: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _record(self, ok: bool, detail=None, seconds: float = 0.0):
        with self.lock:
            c = self.counts.setdefault(self.phase, {"ok": 0, "failed": 0, "details": [], "slowest_s": 0.0})
            c["slowest_s"] = max(c.get("slowest_s", 0.0), seconds)
            if ok:
                c["ok"] += 1
            else:
                c["failed"] += 1
                c["details"].append(detail)

    def _run(self):
        c = KeepAlive(self.port, self.host)
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            if self.pause:
                # Paced, without catching up in a burst after a slow answer.
                next_at = max(next_at + self.pause, time.monotonic())
                if self.stop_event.wait(max(0.0, next_at - time.monotonic())):
                    break
            start = time.monotonic()
            try:
                status, body = c.call(self.token, "tools/call", {"name": "search_knowledgebase", "arguments": {"query": self.query}})
                ok = status == 200 and bool(body) and "result" in body and not body["result"].get("isError")
                self._record(ok, status, time.monotonic() - start)
            except Exception as e:  # noqa: BLE001 - any failure counts
                self._record(False, repr(e), time.monotonic() - start)
                c = KeepAlive(self.port, self.host)

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join()


# ---- semantic search (issue 16) -------------------------------------------
# pgEdge's vector column for each embedding provider; gemini_embedding is the
# column pgEdge 1.1 adds with ALTER TABLE.
PGEDGE_EMBEDDING_COLUMNS = {"openai": "openai_embedding", "voyage": "voyage_embedding",
                            "ollama": "ollama_embedding", "gemini": "gemini_embedding"}


def write_pgedge_kb(path: Path, chunks: list[dict], vectors: dict[str, list[bytes | None]] | None = None) -> list[int]:
    """Write a pgEdge-schema kb.db at `path`, as pgEdge's builder leaves it.

    `chunks`: dicts with text, title, section, file_path and optionally
    project_name / project_version (default postgres 17). `vectors`: for a
    column name of PGEDGE_EMBEDDING_COLUMNS, one little-endian float32 blob
    (or None) per chunk. Returns the chunks' ids, in order."""
    import sqlite3

    vectors = vectors or {}
    for column, blobs in vectors.items():
        assert column in PGEDGE_EMBEDDING_COLUMNS.values(), column
        assert len(blobs) == len(chunks), (column, len(blobs), len(chunks))
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=DELETE")
    db.executescript(PGEDGE_SCHEMA)
    if "gemini_embedding" in vectors:
        db.execute("ALTER TABLE chunks ADD COLUMN gemini_embedding BLOB")
    columns = list(vectors)
    ids = []
    files: dict[str, tuple[str, str, str, int]] = {}
    for i, c in enumerate(chunks):
        project, version = c.get("project_name", "postgres"), c.get("project_version", "17")
        checksum = sha256_hex(f"{project}/{version}/{c['file_path']}")
        n = files.get(c["file_path"], (checksum, project, version, 0))[3]
        files[c["file_path"]] = (checksum, project, version, n + 1)
        cur = db.execute(
            f"INSERT INTO chunks(text, title, section, project_name, project_version, file_path, source_file_checksum"
            f"{''.join(', ' + col for col in columns)}) VALUES (?, ?, ?, ?, ?, ?, ?{', ?' * len(columns)})",
            (c["text"], c.get("title"), c.get("section"), project, version, c["file_path"], checksum,
             *(vectors[col][i] for col in columns)))
        ids.append(cur.lastrowid)
    db.executemany("INSERT INTO source_files(checksum, file_path, project_name, project_version, doc_type, num_chunks) VALUES (?, ?, ?, ?, ?, ?)",
                   [(ck, fp, p, v, "markdown", n) for fp, (ck, p, v, n) in files.items()])
    db.commit()
    db.close()
    return ids


def metric_value(text: str, name: str, **labels) -> float:
    """The value of one sample of a Prometheus text exposition (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0
