"""compose/docker-compose.yml in a real Docker engine, unchanged apart from
its .env (images, S3 endpoint, ports, subnet, sync interval).

The images are the Dockerfile's final stage on a locally made base and
Debian's nginx (scripts/container-images.sh); S3 is moto on the Docker
bridge's address; the clients are the official Python MCP client and a
paced load generator, both going through nginx's published port on
127.0.0.1. Proves:
- the stack comes up from an empty volume: kb-init publishes as uid 65532
  into a fresh named volume, the servers and the sidecar report healthy
  through their `healthcheck` subcommands (`docker ps` shows it), and nginx
  starts only after all three servers are healthy;
- search, authenticate_user and sessions work through nginx;
- a new KB and a new token uploaded to S3 reach all three servers;
- under load, `docker compose stop`/`start` of a server and a rolling
  `docker compose restart` of all three lose no request; `docker compose
  kill -s SIGKILL` and a crash (the process killed from the host, restarted
  by docker's restart policy) are measured and reported;
- the server containers really are read-only, non-root and without
  capabilities (their process's /proc status, and writes refused);
- kb-init failing (a missing object: exit 1 after its retries; a corrupt
  KB: exit 3) keeps every server and nginx from starting.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from mcp.client import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from containers import (COMPOSE_DIR, IMAGE, NGINX_IMAGE, RUNTIME_UID, Compose, bridge_gateway, build_images, docker,
                        free_subnet, host_port, inspect, proc_status, wait_http)
from harness import FIXTURES, LOG_DIR, Load, http, remember_secret, rpc, run, tokens_yaml, wait_until
from sync_servers import Moto

STABLE = "compose-stable-token-0000000000000000"
NEW = "compose-new-token-11111111111111111111"
USER, PASSWORD = "alice", "compose-e2e-password-42"
SERVERS = ("mcp-1", "mcp-2", "mcp-3")
RATE = 12.0  # requests/s through nginx, under its 20 r/s per-client limit


def build_kb(tmp: Path, name: str, word: str) -> bytes:
    docs = tmp / f"docs-{name}"
    shutil.copytree(FIXTURES / "docs", docs)
    (docs / "marker.md").write_text(f"# Marker\n\nThis knowledge base mentions the {word} marker.\n")
    run("mcp-server", "kb", "build", "--docs", str(docs), "--out", str(tmp / f"{name}.db"))
    return (tmp / f"{name}.db").read_bytes()


def fleet_files(tmp: Path, word: str, tokens: list[str]) -> dict[str, bytes]:
    """The four files docker-compose.yml's kb-init fetches."""
    users = tmp / f"users-{word}.yaml"
    if not users.exists():
        remember_secret(PASSWORD)
        run("mcp-server", "user", "add", "--file", str(users), "--username", USER, "--hash", "argon2id", env={"MCP_PASSWORD": PASSWORD})
    key = os.urandom(32).hex()
    remember_secret(key)
    return {
        "kb.db": build_kb(tmp, word, word),
        "tokens.yaml": tokens_yaml(*tokens).encode(),
        "users.yaml": users.read_bytes(),
        "session.key": (key + "\n").encode(),
    }


def upload(moto: Moto, bucket: str, prefix: str, files: dict[str, bytes]) -> None:
    for name, body in files.items():
        moto.s3.put_object(Bucket=bucket, Key=prefix + name, Body=body)


def compose_env(moto: Moto, bucket: str, prefix: str, **extra: str) -> dict[str, str]:
    """compose/.env.example with the values of this machine: images, S3
    endpoint and credentials, ports, subnet. No other key is added."""
    env = {}
    for line in (COMPOSE_DIR / ".env.example").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            env[k.strip()] = v.strip()
    subnet = free_subnet()
    values = {
        "PG_MCP_IMAGE": IMAGE, "NGINX_IMAGE": NGINX_IMAGE,
        "KB_S3_BUCKET": bucket, "KB_S3_PREFIX": prefix,
        "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto.endpoint, "KB_S3_PATH_STYLE": "true",
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "KB_INTERVAL": "1s", "FLEET_SUBNET": subnet, "MCP_TRUSTED_PROXIES": subnet,
        "NGINX_HTTP_PORT": host_port(), **extra,
    }
    documented = {line.split("=", 1)[0].lstrip("# ").strip() for line in (COMPOSE_DIR / ".env.example").read_text().splitlines() if "=" in line}
    assert set(values) <= documented, f"not in .env.example: {set(values) - documented}"
    env.update(values)
    return env


def ts(text: str) -> float:
    """Docker's RFC 3339 timestamps (nanoseconds) as epoch seconds."""
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac or "0")[:6])


@asynccontextmanager
async def mcp_client(url: str, token: str, mode: str = "auto"):
    """The official client; its HTTP connections are closed on exit (an idle
    keep-alive connection left open would hold a draining server until its
    shutdown timeout, as any client's would)."""
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http_client:
        async with Client(streamable_http_client(url, http_client=http_client), mode=mode) as client:
            yield client


@pytest.fixture(scope="module")
def images():
    return build_images()


@pytest.fixture(scope="module")
def moto(images):
    m = Moto(host=bridge_gateway())
    yield m
    m.stop()


@dataclass
class Stack:
    compose: Compose
    base: str
    tmp: Path
    bucket: str
    prefix: str
    up_seconds: float
    nginx_started: float
    first_healthy: dict


@pytest.fixture(scope="module")
def stack(images, moto, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compose")
    bucket, prefix = "fleet-compose", "prod/"
    moto.s3.create_bucket(Bucket=bucket)
    upload(moto, bucket, prefix, fleet_files(tmp, "aardvark", [STABLE]))
    env = compose_env(moto, bucket, prefix)
    c = Compose("stack", env)
    try:
        start = time.monotonic()
        c.run("up", "-d")
        up_s = time.monotonic() - start
        # Read the health logs now: docker keeps the last five checks only.
        first_healthy = {}
        for s in SERVERS + ("kb-sync-sidecar",):
            log = c.state(s)["Health"]["Log"]
            passed = [ts(e["End"]) for e in log if e["ExitCode"] == 0]
            first_healthy[s] = min(passed) if passed else None
        nginx_started = ts(c.state("nginx")["StartedAt"])
        base = f"http://{env['NGINX_HTTP_PORT']}"
        wait_http(base + "/health", 30)
        yield Stack(c, base, tmp, bucket, prefix, up_s, nginx_started, first_healthy)
    finally:
        c.down()


def test_stack_comes_up_from_an_empty_volume(stack):
    c = stack.compose
    print(f"\n`compose up -d` from nothing to nginx started: {stack.up_seconds:.1f} s")
    init = c.state("kb-init")
    assert (init["Status"], init["ExitCode"]) == ("exited", 0)
    # The named volume is this project's own, new: kb-init (uid 65532)
    # published into it because the image's /data belongs to 65532.
    vol = inspect(c.container("kb-init"))["Mounts"]
    (data,) = [m for m in vol if m["Destination"] == "/data"]
    assert data["Type"] == "volume" and data["Name"].startswith(c.project)
    root = Path(data["Source"])
    assert root.stat().st_uid == RUNTIME_UID
    for f in ("kb.db", "tokens.yaml", "users.yaml", "session.key"):
        assert (root / f).stat().st_uid == RUNTIME_UID, f
    # The same image validates what was published (read-only, as the servers see it).
    docker("run", "--rm", "--pull", "never", "--network", "none", "-v", f"{data['Name']}:/data:ro", IMAGE,
           "mcp-server", "check", "--data-dir", "/data")
    # Health through the binaries' own healthcheck subcommands, as `docker ps` shows it.
    ps = docker("ps", "--filter", f"label=com.docker.compose.project={c.project}", "--format", "{{.Label \"com.docker.compose.service\"}} {{.Status}}").stdout
    status = dict(line.split(" ", 1) for line in ps.splitlines())
    for s in SERVERS + ("kb-sync-sidecar",):
        assert "(healthy)" in status[s], (s, status)
    assert "(healthy)" not in status["nginx"] and status["nginx"].startswith("Up")
    # nginx waited for service_healthy: it started after every server's
    # first passing check.
    for s in SERVERS:
        assert stack.first_healthy[s] is not None, s
        assert stack.nginx_started >= stack.first_healthy[s] - 0.01, (s, stack.nginx_started, stack.first_healthy[s])


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_search_sessions_and_tools_through_nginx(stack, mode):
    url = stack.base + "/mcp"
    async with mcp_client(url, STABLE, mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"search_knowledgebase", "authenticate_user"} <= names
        result = await client.call_tool("search_knowledgebase", {"query": "marker", "top_n": 3})
        assert not result.is_error and "aardvark" in result.content[0].text
        login = await client.call_tool("authenticate_user", {"username": USER, "password": PASSWORD})
        assert not login.is_error, login.content
    answer = json.loads(login.content[0].text)
    assert answer["success"] is True
    session = answer["session_token"]
    remember_secret(session)
    # Minted by whichever instance nginx picked, the session token works
    # through nginx and on each instance directly: the servers share nothing
    # but the session key file.
    async with mcp_client(url, session, mode) as client:
        result = await client.call_tool("search_knowledgebase", {"query": "vacuum", "top_n": 1})
        assert not result.is_error
    for s in SERVERS:
        status, _, body = rpc(f"http://{stack.compose.ip(s)}:8080/mcp", "tools/list", {}, token=session)
        assert status == 200 and "result" in body, (s, status, body)


def server_health(ip: str) -> dict:
    return json.loads(http("GET", f"http://{ip}:8080/health")[2])


def test_a_kb_and_a_token_uploaded_to_s3_reach_all_three_servers(stack, moto):
    c = stack.compose
    ips = {s: c.ip(s) for s in SERVERS}
    before = {s: server_health(ip)["kb"]["build_id"] for s, ip in ips.items()}
    assert len(set(before.values())) == 1
    start = time.monotonic()
    upload(moto, stack.bucket, stack.prefix, {k: v for k, v in fleet_files(stack.tmp, "bumblebee", [STABLE, NEW]).items()
                                               if k in ("kb.db", "tokens.yaml")})

    def everywhere():
        hs = {s: server_health(ip) for s, ip in ips.items()}
        return all(h["kb"]["build_id"] != before[s] and h["auth"]["tokens"] == 2 for s, h in hs.items())

    wait_until(everywhere, 30, 0.1)
    took = time.monotonic() - start
    print(f"\nnew KB and token: S3 -> all three servers in {took:.2f} s (KB_INTERVAL=1s)")
    # Each server, directly on the compose network, answers the new token
    # with the new KB, through the official client.

    async def check(ip):
        async with mcp_client(f"http://{ip}:8080/mcp", NEW) as client:
            result = await client.call_tool("search_knowledgebase", {"query": "marker", "top_n": 3})
            assert not result.is_error and "bumblebee" in result.content[0].text, result.content

    async def all_servers():
        await asyncio.gather(*(check(ip) for ip in ips.values()))

    asyncio.run(all_servers())
    assert took < 1.1 + 5.0


def test_stop_kill_and_rolling_restart_under_load(stack):
    c = stack.compose
    port = int(stack.base.rsplit(":", 1)[1])
    load = Load(port, STABLE, threads=4, rate=RATE)
    report = {}
    try:
        time.sleep(2)
        load.phase = "graceful: compose stop mcp-1, then start"
        t = time.monotonic()
        c.run("stop", "mcp-1")
        report["stop_s"] = time.monotonic() - t
        assert c.state("mcp-1")["ExitCode"] == 0, "a graceful stop exits 0"
        time.sleep(1)
        c.run("start", "mcp-1")
        c.wait_healthy("mcp-1")
        time.sleep(2)

        load.phase = "compose kill -s SIGKILL mcp-2, then start"
        c.run("kill", "-s", "SIGKILL", "mcp-2")
        time.sleep(3)
        st = c.state("mcp-2")
        report["kill_restarted_by_docker"] = st["Running"]
        assert st["ExitCode"] == 137 or st["Running"]
        if not st["Running"]:  # unless-stopped: docker counts `kill` as a manual stop
            c.run("start", "mcp-2")
        c.wait_healthy("mcp-2")
        time.sleep(2)

        load.phase = "crash: kill -9 of mcp-3's process from the host"
        restarts = inspect(c.container("mcp-3"))["RestartCount"]
        os.kill(c.state("mcp-3")["Pid"], signal.SIGKILL)
        wait_until(lambda: inspect(c.container("mcp-3"))["RestartCount"] > restarts, 30, 0.1)
        c.wait_healthy("mcp-3")
        time.sleep(2)

        load.phase = "rolling: compose restart mcp-1, mcp-2, mcp-3"
        t = time.monotonic()
        for s in SERVERS:
            c.run("restart", s)
            c.wait_healthy(s)
        report["rolling_s"] = time.monotonic() - t
        time.sleep(2)
        load.phase = "after"
        time.sleep(3)
    finally:
        load.stop()
    print(f"\nthrough nginx at {RATE:.0f} requests/s (4 clients); compose stop took {report['stop_s']:.1f} s, "
          f"the rolling restart {report['rolling_s']:.1f} s; docker restarted the SIGKILLed container by itself: "
          f"{report['kill_restarted_by_docker']}")
    print("| phase | ok | failed | slowest |\n| --- | --- | --- | --- |")
    for phase, n in load.counts.items():
        print(f"| {phase} | {n['ok']} | {n['failed']} | {n['slowest_s']:.2f} s |")
    counts = load.counts
    for phase in ("graceful: compose stop mcp-1, then start", "rolling: compose restart mcp-1, mcp-2, mcp-3", "after"):
        assert counts[phase]["failed"] == 0, (phase, counts[phase]["details"][:5])
    # Enough traffic that a lost request would have shown.
    assert counts["graceful: compose stop mcp-1, then start"]["ok"] > 5 * RATE
    assert counts["rolling: compose restart mcp-1, mcp-2, mcp-3"]["ok"] > 20 * RATE
    # A SIGKILL costs at most what was in flight on the killed instance;
    # nginx retries every request it had not sent yet.
    for phase in ("compose kill -s SIGKILL mcp-2, then start", "crash: kill -9 of mcp-3's process from the host"):
        assert counts[phase]["ok"] > 5 * RATE, phase
        assert counts[phase]["failed"] <= 4, (phase, counts[phase]["details"])


def test_server_containers_are_read_only_non_root_without_capabilities(stack):
    c = stack.compose
    for s in SERVERS + ("kb-sync-sidecar",):
        info = inspect(c.container(s))
        host = info["HostConfig"]
        assert host["ReadonlyRootfs"] is True, s
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], s
        assert "no-new-privileges:true" in host["SecurityOpt"], s
        assert info["Config"]["User"] == f"{RUNTIME_UID}:{RUNTIME_UID}", s
        # What the kernel says about the running process.
        st = proc_status(info["State"]["Pid"])
        assert st["Uid"].split() == [str(RUNTIME_UID)] * 4, (s, st["Uid"])
        assert st["Gid"].split() == [str(RUNTIME_UID)] * 4, (s, st["Gid"])
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(st[cap], 16) == 0, (s, cap, st[cap])
        assert st["NoNewPrivs"] == "1", s
        assert st["Seccomp"] == "2", s  # docker's default filter
    # Writes, with the image's own tool: refused on / and on the data
    # volume (mounted read-only for the servers), accepted on the /tmp tmpfs,
    # which shows the refusals are the file systems', not the tool's.
    cid = c.container("mcp-1")
    for path, ok in (("/probe.yaml", False), ("/data/probe.yaml", False), ("/tmp/probe.yaml", True)):
        proc = docker("exec", cid, "mcp-server", "token", "add", "--file", path, "--annotation", "probe", check=False)
        if ok:
            assert proc.returncode == 0, proc.stderr
            remember_secret(proc.stdout.strip())
        else:
            assert proc.returncode != 0 and "Read-only file system" in proc.stderr, (path, proc.stderr)
    # The sidecar writes the volume but nothing else.
    proc = docker("exec", c.container("kb-sync-sidecar"), "mcp-server", "token", "add", "--file", "/usr/probe.yaml", "--annotation", "probe", check=False)
    assert proc.returncode != 0 and "Read-only file system" in proc.stderr, proc.stderr


@pytest.mark.parametrize("case", ["missing object", "corrupt KB"])
def test_kb_init_failure_keeps_the_servers_from_starting(images, moto, tmp_path, case):
    bucket = "fleet-" + case.split()[0]
    moto.s3.create_bucket(Bucket=bucket)
    files = fleet_files(tmp_path, "failing", [STABLE])
    if case == "missing object":
        prefix, expected = "missing/", 1
        upload(moto, bucket, prefix, {k: v for k, v in files.items() if k != "kb.db"})
    else:
        prefix, expected = "corrupt/", 3
        upload(moto, bucket, prefix, {**files, "kb.db": b"SQLite format 3\x00" + os.urandom(8192)})
    c = Compose("fail", compose_env(moto, bucket, prefix))
    try:
        start = time.monotonic()
        proc = c.run("up", "-d", check=False)
        took = time.monotonic() - start
        assert proc.returncode != 0, proc.stdout + proc.stderr
        init = c.state("kb-init")
        print(f"\n{case}: kb-init exited {init['ExitCode']} after {took:.1f} s; `compose up` failed: "
              f"{(proc.stderr.strip().splitlines() or [''])[-1]}")
        assert (init["Status"], init["ExitCode"]) == ("exited", expected)
        logs = docker("logs", c.container("kb-init")).stderr + docker("logs", c.container("kb-init")).stdout
        if expected == 1:
            assert "retrying" in logs, logs[-2000:]
            assert took > 0.5 * (0.5 + 1 + 2 + 4 + 8) * 0.9, "kb-init gave up before its 5 retries"
        else:
            assert "retrying" not in logs, "a corrupt file is not fetched again"
        # Neither the servers nor the sidecar nor nginx ever started.
        for s in SERVERS + ("kb-sync-sidecar", "nginx"):
            for cid in c.containers(s):
                st = inspect(cid)["State"]
                assert st["StartedAt"].startswith("0001-01-01"), (s, st)
        # nginx's port is not even open.
        with pytest.raises(OSError):
            http("GET", f"http://{c.env['NGINX_HTTP_PORT']}/health", timeout=2)
        # ... and no KB was published into the volume.
        vol = [m for m in inspect(c.container("kb-init"))["Mounts"] if m["Destination"] == "/data"][0]
        assert not (Path(vol["Source"]) / "kb.db").exists()
    finally:
        c.down()
