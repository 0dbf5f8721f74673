"""Helpers for the container tests: a real Docker engine, images built
offline by scripts/container-images.sh, docker compose projects, and moto
on the Docker bridge's address.

Nothing is pulled (there is no registry): the images are the Dockerfile's
final stage on a locally made base, Debian's nginx, and a pause image. The
engine must be running; scripts/test.sh installs and starts one. Without an
engine these tests fail, loudly; a developer may skip them explicitly with
PG_MCP_SKIP_CONTAINER_TESTS=1, which is refused when CI is set.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from harness import LOG_DIR, ROOT, free_port, http

TAG = os.environ.get("IMAGE_TAG", "test")
IMAGE = f"pg-mcp-fleet:{TAG}"
NGINX_IMAGE = f"pg-mcp-fleet-nginx:{TAG}"
PAUSE_IMAGE = f"pg-mcp-fleet-pause:{TAG}"
RELEASE = Path(os.environ.get("MCP_RELEASE_DIR", ROOT / "target" / "release"))
COMPOSE_DIR = ROOT / "compose"
RUNTIME_UID = 65532

# Everything a test creates carries this label (or this name prefix), so a
# crashed run's leftovers can be found and removed.
PREFIX = "pgmcp-e2e"


def docker(*args: str, check: bool = True, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc


def inspect(name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def engine_or_fail() -> None:
    """A running engine, or a loud failure (an explicit skip outside CI)."""
    try:
        ok = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        ok = False
    if ok:
        return
    msg = ("no Docker engine answers: the container tests cannot run. scripts/test.sh installs "
           "docker.io and starts dockerd; run it, or start an engine yourself.")
    if os.environ.get("PG_MCP_SKIP_CONTAINER_TESTS") == "1" and not os.environ.get("CI"):
        pytest.skip(msg + " (skipped: PG_MCP_SKIP_CONTAINER_TESTS=1)")
    pytest.fail(msg, pytrace=False)


_built: dict | None = None


def build_images() -> dict:
    """Release binaries (a no-op when current) and the four images, once per
    session. Returns the build time in seconds, for the report."""
    global _built
    if _built is not None:
        return _built
    engine_or_fail()
    remove_leftovers()
    start = time.monotonic()
    cargo = subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "mcp-server", "-p", "kb-init", "-p", "kb-sync-sidecar"],
                           cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert cargo.returncode == 0, cargo.stderr[-3000:]
    cargo_s = time.monotonic() - start
    proc = subprocess.run([str(ROOT / "scripts" / "container-images.sh")], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "IMAGE_TAG": TAG, "MCP_RELEASE_DIR": str(RELEASE)})
    (LOG_DIR / "container-images.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"scripts/container-images.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    _built = {"cargo_release_s": cargo_s, "images_s": time.monotonic() - start - cargo_s, "report": proc.stdout}
    print(f"\nrelease build (incremental) {cargo_s:.1f} s, images {_built['images_s']:.1f} s\n{proc.stdout}")
    return _built


def remove_leftovers() -> None:
    """What an interrupted run left: containers, networks and volumes whose
    names carry this suite's prefix (nothing else is touched)."""
    ids = docker("ps", "-aq", "--filter", f"name={PREFIX}").stdout.split()
    if ids:
        docker("rm", "-f", "-v", *ids, check=False)
    for kind in ("network", "volume"):
        names = [n for n in docker(kind, "ls", "-q", "--filter", f"name={PREFIX}").stdout.split() if n.startswith(PREFIX)]
        if names:
            docker(kind, "rm", *names, check=False)


def bridge_gateway() -> str:
    """The default bridge's address on this machine (docker0): containers on
    any local Docker network reach a process bound there; nothing outside
    the machine does."""
    (cfg, *_) = inspect("bridge")["IPAM"]["Config"]
    if cfg.get("Gateway"):
        return cfg["Gateway"]
    # The default bridge does not always list its gateway: it is the first
    # address of the subnet (docker0's own address).
    return str(next(ipaddress.ip_network(cfg["Subnet"]).hosts()))


def free_subnet() -> str:
    """A /24 in 172.30.0.0/16 that no Docker network uses."""
    used = set()
    for net in docker("network", "ls", "-q").stdout.split():
        for cfg in (inspect(net).get("IPAM") or {}).get("Config") or []:
            used.add(cfg.get("Subnet", ""))
    for i in range(1, 255):
        subnet = f"172.30.{i}.0/24"
        if subnet not in used:
            return subnet
    raise AssertionError("no free subnet in 172.30.0.0/16")


def compose_command() -> list[str]:
    """`docker compose` (v2) when installed, else docker-compose (1.29)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    path = shutil.which("docker-compose")
    assert path, "neither `docker compose` nor docker-compose is installed (scripts/test.sh installs docker-compose)"
    return [path]


class Compose:
    """One docker compose project from compose/, with its own .env."""

    def __init__(self, name: str, env: dict, files: tuple[str, ...] = ("docker-compose.yml",), env_dir: Path | None = None):
        self.project = f"{PREFIX}-{name}-{uuid.uuid4().hex[:6]}"
        self.env_file = (env_dir or LOG_DIR) / f"{self.project}.env"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.env = env
        self.files = files
        self.base = compose_command() + ["--project-name", self.project, "--env-file", str(self.env_file)]
        for f in files:
            self.base += ["-f", str(COMPOSE_DIR / f)]

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=timeout, cwd=COMPOSE_DIR)
        with open(LOG_DIR / f"{self.project}-commands.log", "a") as f:
            f.write(f"$ compose {' '.join(args)}  -> {proc.returncode}\n{proc.stdout}{proc.stderr}\n")
        if check and proc.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        return proc

    def containers(self, service: str | None = None, all: bool = True) -> list[str]:
        args = ["ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            args += ["--filter", f"label=com.docker.compose.service={service}"]
        if all:
            args.insert(1, "-a")
        return docker(*args).stdout.split()

    def container(self, service: str) -> str:
        found = self.containers(service)
        assert len(found) == 1, (service, found)
        return found[0]

    def state(self, service: str) -> dict:
        return inspect(self.container(service))["State"]

    def ip(self, service: str) -> str:
        nets = inspect(self.container(service))["NetworkSettings"]["Networks"]
        (net,) = nets.values()
        return net["IPAddress"]

    def health(self, service: str) -> str | None:
        h = self.state(service).get("Health")
        return h["Status"] if h else None

    def wait_healthy(self, service: str, timeout: float = 90) -> float:
        start = time.monotonic()
        while True:
            state = self.state(service)
            if state.get("Health", {}).get("Status") == "healthy" and state["Running"]:
                return time.monotonic() - start
            assert time.monotonic() - start < timeout, f"{service} not healthy after {timeout}s: {state}"
            time.sleep(0.25)

    def save_logs(self) -> None:
        for cid in self.containers():
            name = inspect(cid)["Name"].lstrip("/")
            out = docker("logs", "--timestamps", cid, check=False)
            (LOG_DIR / f"{name}.log").write_text(out.stdout + out.stderr)

    def down(self) -> None:
        try:
            self.save_logs()
        finally:
            self.run("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False, timeout=180)


def wait_http(url: str, timeout: float = 60, want: int = 200) -> float:
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout:
        try:
            last = http("GET", url, timeout=3)[0]
            if last == want:
                return time.monotonic() - start
        except OSError as e:
            last = repr(e)
        time.sleep(0.2)
    raise AssertionError(f"{url}: {last} after {timeout}s")


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status of a container's process, read from the host."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def host_port() -> str:
    """127.0.0.1:PORT, for NGINX_HTTP_PORT: published on loopback only."""
    return f"127.0.0.1:{free_port()}"
