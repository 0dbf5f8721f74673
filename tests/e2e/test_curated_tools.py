"""Curated tools and prompts (tools.yaml) with real parts: PostgreSQL 15,
mcp-server over HTTP, and the fleet (kb-init and the sidecar publishing
tools.yaml from S3 on moto, three instances behind nginx, the official
Python MCP client).

The parser, the injection attempts and the read-only escapes are proven in
mcp-server/tests/curated_tools.rs; these tests prove the file reaches the
fleet and the protocol: tools/list, tools/call, prompts/list and
prompts/get follow the live file, a bad file is refused by the sidecar and by
the loader (the last good one serving, /health saying why), and a writer
tool runs only where the operator enabled writers.
"""

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from mcp.client import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from harness import BIN, KeepAlive, McpServer, Nginx, free_port, make_data_dir, publish, rpc, run, tokens_yaml, wait_until
from postgres import Postgres
from sync_servers import Moto, Sidecar, kb_init

TOKEN = "curated-tools-token-0123456789abcdef"

TOOLS_V1 = """
tools:
  orders_by_customer:
    description: Orders of one customer, newest first.
    database: main
    parameters:
      - {name: customer, type: string, description: The customer's name}
      - {name: limit, type: integer, default: 5, minimum: 1, maximum: 50}
    statement: SELECT id, customer, total FROM orders WHERE customer = :customer ORDER BY id DESC LIMIT :limit
  note_on_main:
    description: Would write on main, where writers are off.
    database: main
    writer: true
    parameters: [{name: id, type: integer}, {name: note, type: string}]
    statement: INSERT INTO notes (order_id, note) VALUES (:id, :note)
  add_note:
    description: Add a note to an order.
    database: rw
    writer: true
    parameters: [{name: id, type: integer}, {name: note, type: string}]
    statement: INSERT INTO notes (order_id, note) VALUES (:id, :note) RETURNING order_id, note
prompts:
  - name: customer-report
    description: Report on one customer.
    arguments: [{name: customer, required: true}]
    template: Report on {{customer}} with orders_by_customer.
builtins:
  tools: {query_database: false}
"""

TOOLS_V2 = TOOLS_V1.replace("prompts:", """  order_count:
    description: How many orders there are.
    database: main
    statement: SELECT count(*) AS n FROM orders
prompts:""", 1)

BAD_TYPE = TOOLS_V1.replace("type: integer, default: 5", "type: int, default: 5")


def config(d: Path, port: int) -> Path:
    cfg = d / "config.yaml"
    db = f"host: 127.0.0.1\n    port: {port}\n    user: postgres\n    database: postgres\n    sslmode: disable\n"
    cfg.write_text(f"databases:\n  - name: main\n    {db}  - name: rw\n    {db}    allow_writers: true\n")
    return cfg


@pytest.fixture
def pg():
    p = Postgres(free_port())
    p.start()
    p.sql("CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, total numeric(10,2));"
          "CREATE TABLE notes (order_id int, note text);"
          "INSERT INTO orders(customer, total) SELECT 'c' || (g % 3), g FROM generate_series(1, 12) g;")
    yield p
    p.destroy()


def call(url, tool, **args):
    status, _, body = rpc(url, "tools/call", {"name": tool, "arguments": args}, token=TOKEN)
    assert status == 200, (status, body)
    result = body["result"]
    return result.get("isError", False), "\n".join(c.get("text", "") for c in result["content"])


def tool_names(url) -> set:
    status, _, body = rpc(url, "tools/list", {}, token=TOKEN)
    assert status == 200, body
    return {t["name"] for t in body["result"]["tools"]}


def test_curated_tools_over_http_follow_the_live_file(tmp_path, pg):
    d = tmp_path / "data"
    make_data_dir(d)
    publish(d / "tokens.yaml", tokens_yaml(TOKEN))
    s = McpServer(d, name="curated", extra=["--config", str(config(tmp_path, pg.port))])
    try:
        # No tools.yaml: the built-ins and the four built-in prompts.
        names = tool_names(s.url)
        assert "query_database" in names and "orders_by_customer" not in names
        status, _, body = rpc(s.url, "prompts/list", {}, token=TOKEN)
        builtin_prompts = {"explore-database", "setup-semantic-search", "diagnose-query-issue", "design-schema"}
        assert {p["name"] for p in body["result"]["prompts"]} == builtin_prompts

        publish(d / "tools.yaml", TOOLS_V1)
        wait_until(lambda: "orders_by_customer" in tool_names(s.url), 10, 0.05)
        status, _, body = rpc(s.url, "tools/list", {}, token=TOKEN)
        tools = {t["name"]: t for t in body["result"]["tools"]}
        assert "query_database" not in tools, "switched off in tools.yaml"
        assert "note_on_main" not in tools, "a writer on a database without writers is not offered"
        assert tools["add_note"]["annotations"]["readOnlyHint"] is False
        schema = tools["orders_by_customer"]["inputSchema"]
        assert schema["properties"]["limit"] == {"type": "integer", "minimum": 1, "maximum": 50, "default": 5}
        assert schema["required"] == ["customer"] and schema["additionalProperties"] is False

        err, text = call(s.url, "orders_by_customer", customer="c1", limit=2)
        assert not err and text.startswith("2 rows") and '"customer":"c1"' in text, text
        err, text = call(s.url, "orders_by_customer", customer="c1", limit="2; DROP TABLE orders")
        assert err and "argument limit: expected an integer, got a string" in text, text
        err, text = call(s.url, "orders_by_customer", customer="c1", limit=500)
        assert err and "argument limit: must be at most 50" in text, text
        err, text = call(s.url, "orders_by_customer")
        assert err and "argument customer is required" in text, text
        err, text = call(s.url, "query_database", query="SELECT 1")
        assert err and "switched off" in text, text
        err, text = call(s.url, "note_on_main", id=1, note="x")
        assert err and "does not run writer tools" in text, text
        assert pg.sql("SELECT count(*) FROM notes").strip() == "0"
        err, text = call(s.url, "add_note", id=3, note="it's'); DELETE FROM orders; --")
        assert not err and text.startswith("Committed. 1 row"), text
        assert pg.sql("SELECT note FROM notes").strip() == "it's'); DELETE FROM orders; --"
        assert pg.sql("SELECT count(*) FROM orders").strip() == "12"

        status, _, body = rpc(s.url, "prompts/get", {"name": "customer-report", "arguments": {"customer": "c2"}}, token=TOKEN)
        assert body["result"]["messages"][0]["content"]["text"] == "Report on c2 with orders_by_customer.", body
        status, _, body = rpc(s.url, "prompts/get", {"name": "design-schema", "arguments": {"requirements": "a library"}}, token=TOKEN)
        assert "a library" in body["result"]["messages"][0]["content"]["text"], body
        status, _, body = rpc(s.url, "prompts/get", {"name": "customer-report", "arguments": {}}, token=TOKEN)
        assert "error" in body and "argument customer is required" in body["error"]["message"], body

        # A bad file: refused by the loader, the last good one serving,
        # /health saying why, and `check` failing on it.
        publish(d / "tools.yaml", BAD_TYPE)
        health = wait_until(lambda: s.health()[1]["files"]["tools"]["last_error"], 10, 0.05)[0]
        assert "parameter limit: unknown type \"int\"" in health, health
        status, body = s.health()
        assert status == 200 and body["files"]["tools"]["generation"] == 1
        assert "orders_by_customer" in tool_names(s.url)
        err, text = call(s.url, "orders_by_customer", customer="c0")
        assert not err, text
        checked = run("mcp-server", "check", "--data-dir", str(d), check=False)
        assert checked.returncode != 0 and "unknown type" in checked.stdout, checked.stdout

        # The next good file: a new tool, the error cleared.
        publish(d / "tools.yaml", TOOLS_V2)
        wait_until(lambda: "order_count" in tool_names(s.url), 10, 0.05)
        assert s.health()[1]["files"]["tools"]["last_error"] is None
        err, text = call(s.url, "order_count")
        assert not err and '"n":12' in text, text
    finally:
        s.stop()


class Calls:
    """Curated tool calls through nginx, back to back on two keep-alive
    connections, until stopped: every one must succeed, whatever is being
    published meanwhile."""

    def __init__(self, port: int):
        self.port, self.ok, self.failed = port, 0, []
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]
        for t in self.threads:
            t.start()

    def _run(self):
        c = KeepAlive(self.port)
        args = {"name": "orders_by_customer", "arguments": {"customer": "c1", "limit": 2}}
        while not self.stop_event.is_set():
            try:
                status, body = c.call(TOKEN, "tools/call", args)
                if status == 200 and body and not body["result"].get("isError"):
                    self.ok += 1
                else:
                    self.failed.append((status, body))
            except Exception as e:  # noqa: BLE001 - any failure counts
                self.failed.append(repr(e))
                c = KeepAlive(self.port)

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join()


async def official_client(url: str):
    http_client = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
    return http_client, Client(streamable_http_client(url, http_client=http_client), mode="auto")


async def test_fleet_publishes_tools_yaml_from_s3_to_three_instances(tmp_path, pg):
    moto = Moto()
    bucket = "curated"
    moto.s3.create_bucket(Bucket=bucket)
    make_data_dir(tmp_path / "built")
    moto.s3.put_object(Bucket=bucket, Key="prod/kb.db", Body=(tmp_path / "built" / "kb.db").read_bytes())
    moto.s3.put_object(Bucket=bucket, Key="prod/tokens.yaml", Body=tokens_yaml(TOKEN).encode())
    moto.s3.put_object(Bucket=bucket, Key="prod/tools.yaml", Body=TOOLS_V1.encode())
    shared = tmp_path / "shared"
    files = ["--dest", str(shared)] + [
        arg for name in ["kb.db", "tokens.yaml", "tools.yaml"] for arg in ["--file", f"{name}=s3://{bucket}/prod/{name}"]
    ]
    assert kb_init(*files, env=moto.env).returncode == 0
    interval = 1.0
    sidecar = Sidecar(*files, "--interval", f"{interval}s", "--jitter", "10%", env=moto.env)
    cfg = config(tmp_path, pg.port)
    servers = [McpServer(shared, name=f"curated-{i}", extra=["--config", str(cfg)]) for i in range(3)]
    nginx = Nginx([s.port for s in servers], tmp_path)
    try:
        url = f"{nginx.base}/mcp"
        http_client, client = await official_client(url)
        async with http_client, client as c:
            listed = {t.name for t in (await c.list_tools()).tools}
            assert "orders_by_customer" in listed and "query_database" not in listed
            result = await c.call_tool("orders_by_customer", {"customer": "c2", "limit": 3})
            assert not result.is_error and '"customer":"c2"' in result.content[0].text
            prompts = {p.name for p in (await c.list_prompts()).prompts}
            assert {"customer-report", "design-schema"} <= prompts
            # A prompt is shown with the tools it names (issue 29): this
            # tools.yaml switches query_database off, which explore-database
            # leads to.
            assert "explore-database" not in prompts
            got = await c.get_prompt("customer-report", {"customer": "c1"})
            assert got.messages[0].content.text == "Report on c1 with orders_by_customer."

            # A new version in S3 reaches all three within the interval,
            # with no call in flight failing.
            calls = Calls(nginx.port)
            time.sleep(0.3)
            start = time.monotonic()
            moto.s3.put_object(Bucket=bucket, Key="prod/tools.yaml", Body=TOOLS_V2.encode())
            try:
                wait_until(lambda: all("order_count" in tool_names(s.url) for s in servers), 30, 0.05)
                took = time.monotonic() - start
                time.sleep(0.3)
            finally:
                calls.stop()
            assert calls.failed == [] and calls.ok > 20, (calls.ok, calls.failed[:3])
            print(f"\ntools.yaml S3 -> all three instances: {took:.2f} s (sidecar interval {interval} s)")
            assert took <= interval * 1.1 + 2.0
            listed = {t.name for t in (await c.list_tools(cache_mode="refresh")).tools}
            assert "order_count" in listed
            for _ in range(3):  # through nginx, so more than one instance answers
                result = await c.call_tool("order_count", {})
                assert not result.is_error and '"n":12' in result.content[0].text, result

            # A bad version: `push` refuses to upload it, kb-init exits 3 on
            # it, and the sidecar refuses it: never published, the
            # instances keep serving the last good one.
            bad = tmp_path / "bad" / "tools.yaml"
            bad.parent.mkdir()
            bad.write_text(BAD_TYPE)
            push = subprocess.run([str(BIN / "kb-sync-sidecar"), "push", "--file", f"{bad}=s3://{bucket}/prod/tools.yaml"],
                                  capture_output=True, text=True, env={**os.environ, **moto.env}, timeout=60)
            assert push.returncode == 3, push.stderr
            assert moto.s3.get_object(Bucket=bucket, Key="prod/tools.yaml")["Body"].read().decode() == TOOLS_V2
            moto.s3.put_object(Bucket=bucket, Key="staging/tools.yaml", Body=BAD_TYPE.encode())
            init = kb_init("--dest", str(tmp_path / "fresh"), "--file", f"tools.yaml=s3://{bucket}/staging/tools.yaml", env=moto.env)
            assert init.returncode == 3 and "unknown type" in init.stderr, init.stderr
            assert not (tmp_path / "fresh" / "tools.yaml").exists()
            errors = sidecar.metric("kb_sync_syncs_total", file="tools.yaml", outcome="verify_error")
            moto.s3.put_object(Bucket=bucket, Key="prod/tools.yaml", Body=BAD_TYPE.encode())
            wait_until(lambda: sidecar.metric("kb_sync_syncs_total", file="tools.yaml", outcome="verify_error") > errors, 30, 0.1)
            assert (shared / "tools.yaml").read_text() == TOOLS_V2
            for s in servers:
                assert s.health()[1]["files"]["tools"]["last_error"] is None
                assert "order_count" in tool_names(s.url)
            result = await c.call_tool("order_count", {})
            assert not result.is_error
    finally:
        nginx.stop()
        for s in servers:
            s.stop()
        sidecar.stop()
        moto.stop()
