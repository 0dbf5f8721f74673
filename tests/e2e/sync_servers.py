"""Real servers for the sync tests: moto's S3 and a small HTTP file server with ETags.

The HTTP server counts the body bytes it sends, so a test can show that an
unchanged source transferred nothing, and it can misbehave on purpose
(truncate a body, trickle it slowly, ignore conditional requests).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import signal

from harness import BIN, LOG_DIR, ROOT, free_port, http, wait_until


def moto_binary() -> str:
    for candidate in [os.environ.get("MOTO_SERVER"), str(ROOT / ".venv" / "bin" / "moto_server"), shutil.which("moto_server")]:
        if candidate and Path(candidate).exists():
            return candidate
    raise AssertionError("moto_server not found: scripts/test.sh installs moto[server] into .venv")


class Moto:
    """moto_server on 127.0.0.1 (or `host`: the container tests bind the
    Docker bridge's address, which containers reach and nothing outside
    the machine does), with a boto3 client and the env the binaries need."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1"):
        self.port = port or free_port()
        self.host = host
        self.endpoint = f"http://{host}:{self.port}"
        self.log_path = LOG_DIR / f"moto-{self.port}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([moto_binary(), "-H", host, "-p", str(self.port)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                if http("GET", self.endpoint + "/moto-api/")[0] < 500:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "moto did not start"
            time.sleep(0.1)
        import boto3

        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                               aws_access_key_id="test", aws_secret_access_key="test")
        self.env = {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": self.endpoint,
            "KB_S3_PATH_STYLE": "true",
        }

    def requests(self) -> list[str]:
        """The request lines moto has logged so far (e.g. 'GET /bucket/kb.db')."""
        self.log.flush()
        lines = []
        for line in self.log_path.read_text().splitlines():
            if '"' in line:
                parts = line.split('"')[1].split()
                if len(parts) >= 2:
                    lines.append(f"{parts[0]} {parts[1]}")
        return lines

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


class FileServer:
    """Serves `files` (path -> bytes) with strong ETags over HTTP/1.1."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.mode = "normal"  # normal | truncate | slow | ignore_conditions | error
        self.body_bytes = 0
        self.requests: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                body = server.files.get(self.path)
                if body is None:
                    return self._reply(404, b"not found\n", {})
                if server.mode == "error":
                    return self._reply(503, b"unavailable\n", {})
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if server.mode != "ignore_conditions" and self.headers.get("If-None-Match") == etag:
                    return self._reply(304, b"", {"ETag": etag})
                self._reply(200, body, {"ETag": etag, "Content-Type": "application/octet-stream"})

            def _reply(self, status, body, headers):
                with server.lock:
                    server.requests.append((self.command, self.path, status))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status == 304 or not body:
                    return
                if server.mode == "truncate":
                    sent = body[: len(body) // 2]
                    self.wfile.write(sent)
                    server.count(len(sent))
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if server.mode == "slow":
                    try:
                        for i in range(0, len(body), 4096):
                            self.wfile.write(body[i:i + 4096])
                            self.wfile.flush()
                            server.count(len(body[i:i + 4096]))
                            time.sleep(0.05)
                    except (BrokenPipeError, ConnectionResetError):
                        self.close_connection = True  # the client went away: expected in SIGTERM tests
                    return
                self.wfile.write(body)
                server.count(len(body))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self, n: int):
        with self.lock:
            self.body_bytes += n

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def kb_init(*args, env=None, timeout=120):
    proc = subprocess.run([str(BIN / "kb-init"), "--log-format", "json", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    with open(LOG_DIR / "kb-init.log", "a") as f:
        f.write(f"$ kb-init {' '.join(args)}\n{proc.stderr}\n")
    return proc


class Sidecar:
    def __init__(self, *args, env=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = LOG_DIR / f"sidecar-{self.port}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([str(BIN / "kb-sync-sidecar"), "--listen", f"127.0.0.1:{self.port}", "--log-format", "json", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        wait_until(lambda: self._up(), 20, 0.05)

    def _up(self):
        try:
            return http("GET", self.base + "/healthz")[0] in (200, 503)
        except OSError:
            return False

    def get(self, path):
        status, _, body = http("GET", self.base + path)
        return status, body.decode()

    def metric(self, name, **labels):
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(20)
        self.log.close()
        return code
