"""The fleet demo (compose/docker-compose.demo.yml): no cloud account, the
documented command, run as written.

    docker compose --env-file demo.env -f docker-compose.yml -f docker-compose.demo.yml run --rm demo

Only demo.env's image names, source directory, port and subnet differ. The
command brings up nginx, three servers, kb-init and the sidecar fed through
file:// sources from a bind-mounted directory, with the bundled docs as the
KB, and prints a token; the token then works through nginx, and editing the
files in that directory (a rebuilt kb.db, a token removed from tokens.yaml)
visibly reaches every server.
"""

from __future__ import annotations

import json
import shutil
import time

import yaml
from mcp.client import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from containers import COMPOSE_DIR, IMAGE, NGINX_IMAGE, Compose, build_images, free_subnet, host_port, wait_http
from harness import ROOT, http, rpc, run, wait_until

SERVERS = ("mcp-1", "mcp-2", "mcp-3")


def demo_env(**values: str) -> dict[str, str]:
    env = {}
    for line in (COMPOSE_DIR / "demo.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            env[k.strip()] = v.strip()
    assert set(values) <= set(env) | {"NGINX_IMAGE"}, set(values) - set(env)
    env.update(values)
    return env


async def search(url: str, token: str, query: str) -> str:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http_client:
        async with Client(streamable_http_client(url, http_client=http_client), mode="auto") as client:
            result = await client.call_tool("search_knowledgebase", {"query": query, "top_n": 3})
            assert not result.is_error, result.content
            return result.content[0].text


def health(c: Compose, server: str) -> dict:
    return json.loads(http("GET", f"http://{c.ip(server)}:8080/health")[2])


async def test_fleet_demo_from_a_local_directory(tmp_path):
    build_images()
    source = tmp_path / "demo-source"  # does not exist: docker makes it, as for a new user
    subnet = free_subnet()
    env = demo_env(PG_MCP_IMAGE=IMAGE, NGINX_IMAGE=NGINX_IMAGE, DEMO_SOURCE=str(source),
                   NGINX_HTTP_PORT=host_port(), FLEET_SUBNET=subnet, MCP_TRUSTED_PROXIES=subnet)
    c = Compose("demo", env, files=("docker-compose.yml", "docker-compose.demo.yml"))
    try:
        start = time.monotonic()
        proc = c.run("run", "--rm", "demo")
        took = time.monotonic() - start
        token = proc.stdout.strip().splitlines()[-1].strip()
        assert len(token) >= 40 and " " not in token, proc.stdout
        print(f"\nthe demo command printed a token after {took:.1f} s")
        base = f"http://{env['NGINX_HTTP_PORT']}"
        wait_http(base + "/health", 30)

        # The printed token reaches every server through the sidecar (it was
        # added after kb-init ran), then works through nginx.
        _, secs = wait_until(lambda: all(health(c, s)["auth"]["tokens"] == 2 for s in SERVERS), 30, 0.2)
        print(f"the printed token reached all three servers {secs:.1f} s after the command returned")
        text = await search(base + "/mcp", token, "hot reload symlink swap")
        assert "Hot reload" in text or "hot-reload" in text, text
        assert "docs/operations.md" in text or "README.md" in text, text

        # Edit the source directory: a new kb.db ...
        docs = tmp_path / "docs"
        shutil.copytree(ROOT / "docs", docs / "docs")
        shutil.copy(ROOT / "README.md", docs / "README.md")
        (docs / "docs" / "zebra.md").write_text("# Zebra\n\nThe demo propagates the zebra crossing marker.\n")
        marker = "propagates the zebra crossing marker"
        assert marker not in _sync_search(base, token, "zebra crossing")
        run("mcp-server", "kb", "build", "--docs", str(docs), "--out", str(source / "kb.db"), "--project", "pg-mcp-fleet")
        _, secs = wait_until(lambda: marker in _sync_search(base, token, "zebra crossing"), 30, 0.3)
        print(f"a rebuilt kb.db in the source directory answered through nginx {secs:.1f} s after it was written")

        # ... and tokens.yaml edited by hand: the printed token is removed.
        tokens_path = source / "tokens.yaml"
        doc = yaml.safe_load(tokens_path.read_text())
        kept = {k: v for k, v in doc["tokens"].items() if v.get("annotation") != "demo"}
        assert len(kept) == 1, doc
        stat = tokens_path.stat()
        tokens_path.write_text(yaml.safe_dump({"tokens": kept}))  # in place: owner and mode stay
        assert (tokens_path.stat().st_uid, tokens_path.stat().st_mode) == (stat.st_uid, stat.st_mode)
        wait_until(lambda: all(health(c, s)["auth"]["tokens"] == 1 for s in SERVERS), 30, 0.2)
        status, headers, _ = rpc(base + "/mcp", "tools/list", {}, token=token)
        assert status == 401, status
    finally:
        c.down()
        shutil.rmtree(source, ignore_errors=True)


def _sync_search(base: str, token: str, query: str) -> str:
    status, _, body = rpc(base + "/mcp", "tools/call", {"name": "search_knowledgebase", "arguments": {"query": query, "top_n": 3}}, token=token)
    assert status == 200, (status, body)
    return "\n".join(c.get("text", "") for c in body["result"]["content"])
