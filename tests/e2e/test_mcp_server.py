"""Step 1: mcp-server over real HTTP with the official Python MCP client (mcp 2.x)."""

import json
import sqlite3
import subprocess
import sys
import time

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from harness import (ACCEPT, BIN, LOG_DIR, PGEDGE_SCHEMA, ROOT, McpServer, free_port, http, make_data_dir, publish, rpc, search_text,
                     sha256_hex, wait_until)


def client(url: str, token: str, mode: str, http_client=None) -> Client:
    http_client = http_client or create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(url, http_client=http_client), mode=mode)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_official_client_lists_tools_and_searches(server, mode):
    s, token, _ = server
    async with client(s.url, token, mode) as c:
        if mode == "auto":
            assert c.protocol_version == "2026-07-28"
        else:
            assert c.protocol_version != "2026-07-28"
        tools = await c.list_tools()
        names = {t.name for t in tools.tools}
        assert "search_knowledgebase" in names
        schema = next(t for t in tools.tools if t.name == "search_knowledgebase").input_schema
        assert {"query", "project_names", "project_versions", "top_n", "list_products"} <= set(schema["properties"])
        result = await c.call_tool("search_knowledgebase", {"query": "how do replication slots retain WAL", "top_n": 2})
        assert not result.is_error
        text = result.content[0].text
        assert "Replication slots" in text, text
        assert "retain WAL" in text
        products = await c.call_tool("search_knowledgebase", {"list_products": True})
        assert "postgres 17" in products.content[0].text


class Recording(httpx2.AsyncBaseTransport):
    """Passes requests through and records each response's status."""

    def __init__(self):
        self.inner = httpx2.AsyncHTTPTransport()
        self.statuses = []

    async def handle_async_request(self, request):
        response = await self.inner.handle_async_request(request)
        self.statuses.append(response.status_code)
        return response

    async def aclose(self):
        await self.inner.aclose()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("token_kind", ["wrong", "expired"])
async def test_official_client_with_bad_token_gets_401(server, mode, token_kind):
    s, good, d = server
    token = "wrong-token"
    if token_kind == "expired":
        token = "expired-token-value-0123456789"
        (d / "tokens.yaml").write_text(f"tokens:\n  old:\n    hash: {sha256_hex(token)}\n    expires_at: 2020-01-01T00:00:00Z\n")
        s = McpServer(d, name="expired-client")
    rec = Recording()
    http_client = httpx2.AsyncClient(transport=rec, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    try:
        with pytest.raises(BaseException):
            async with client(s.url, token, mode, http_client=http_client) as c:
                await c.list_tools()
    finally:
        if token_kind == "expired":
            s.stop()
    assert rec.statuses and set(rec.statuses) == {401}, rec.statuses


def test_wrong_missing_and_expired_tokens_get_401(server):
    s, token, d = server
    for bad in ["wrong", None]:
        status, headers, body = rpc(s.url, "tools/list", {}, token=bad)
        assert status == 401, (bad, status, body)
        assert headers["www-authenticate"].startswith("Bearer")
    # An expired token: a hash in tokens.yaml whose expiry has passed.
    expired = "expired-token-value-0123456789"
    (d / "tokens.yaml").write_text(
        f"tokens:\n  old:\n    hash: {sha256_hex(expired)}\n    expires_at: 2020-01-01T00:00:00Z\n"
        f"  live:\n    hash: {sha256_hex(token)}\n    expires_at: null\n"
    )
    s2 = McpServer(d, name="expiry")
    try:
        status, headers, body = rpc(s2.url, "tools/list", {}, token=expired)
        assert status == 401 and body["error"] == "token expired"
        assert 'error="invalid_token"' in headers["www-authenticate"]
        status, _, body = rpc(s2.url, "tools/list", {}, token=token)
        assert status == 200 and body["result"]["tools"]
    finally:
        s2.stop()


def test_handshake_is_public_but_tools_are_not(server):
    s, token, _ = server
    status, _, body = rpc(s.url, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}})
    assert status == 200 and body["result"]["serverInfo"]["name"] == "pg-mcp-fleet"
    status, _, _ = rpc(s.url, "tools/call", {"name": "search_knowledgebase", "arguments": {"query": "vacuum"}})
    assert status == 401
    assert "VACUUM" in search_text(s.url, token, "vacuum dead tuples")


def test_get_and_delete_are_405_and_v1_alias_works(server):
    s, token, _ = server
    for method in ["GET", "DELETE"]:
        status, _, _ = http(method, s.url, headers={"Accept": "text/event-stream", "Authorization": f"Bearer {token}"})
        assert status == 405, method
    assert "B-tree" in search_text(f"{s.base}/mcp/v1", token, "btree index range queries")


def test_origin_and_host_checks(server):
    s, token, _ = server
    status, _, _ = rpc(s.url, "tools/list", {}, token=token, headers={"Origin": "https://evil.example"})
    assert status == 403
    status, _, _ = rpc(s.url, "tools/list", {}, token=token, headers={"Origin": s.base})
    assert status == 200
    # Listening on loopback, the default Host allow-list is loopback only (DNS rebinding).
    status, _, _ = rpc(s.url, "tools/list", {}, token=token, headers={"Host": "evil.example"})
    assert status == 403


def test_hosts_are_open_behind_a_load_balancer_when_configured(data_dir):
    d, token = data_dir
    s = McpServer(d, name="lb", extra=["--allowed-hosts", "mcp.example.com"])
    try:
        status, _, _ = rpc(s.url, "tools/list", {}, token=token, headers={"Host": "mcp.example.com"})
        assert status == 200
        status, _, _ = rpc(s.url, "tools/list", {}, token=token, headers={"Host": "other.example.com"})
        assert status == 403
    finally:
        s.stop()


def test_oversized_body_is_413(server):
    s, token, _ = server
    big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search_knowledgebase", "arguments": {"query": "x" * (2 * 1024 * 1024)}}})
    status, _, _ = http("POST", s.url, big.encode(), {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"})
    assert status == 413


class Alternate(httpx2.AsyncBaseTransport):
    """Sends each HTTP request to the next port in turn: a round-robin balancer."""

    def __init__(self, ports):
        self.inner = httpx2.AsyncHTTPTransport()
        self.ports = ports
        self.sent = []

    async def handle_async_request(self, request):
        port = self.ports[len(self.sent) % len(self.ports)]
        request.url = request.url.copy_with(port=port)
        method = json.loads(request.content).get("method") if request.content else None
        self.sent.append((port, method))
        return await self.inner.handle_async_request(request)

    async def aclose(self):
        await self.inner.aclose()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_two_instances_serve_one_conversation(data_dir, mode):
    d, token = data_dir
    a, b = McpServer(d, name="a"), McpServer(d, name="b")
    try:
        transport = Alternate([a.port, b.port])
        http_client = httpx2.AsyncClient(transport=transport, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        async with client(a.url, token, mode, http_client=http_client) as c:
            tools = await c.list_tools()
            assert tools.tools
            for _ in range(3):
                r = await c.call_tool("search_knowledgebase", {"query": "autovacuum"})
                assert "Autovacuum" in r.content[0].text
        ports_by_method = {}
        for port, method in transport.sent:
            ports_by_method.setdefault(method, set()).add(port)
        first_method = "initialize" if mode == "legacy" else "server/discover"
        assert transport.sent[0] == (a.port, first_method), transport.sent
        assert ports_by_method["tools/call"] == {a.port, b.port}, transport.sent
    finally:
        a.stop()
        b.stop()


def test_serves_a_pgedge_kb_without_our_additions(tmp_path):
    d = tmp_path / "pgedge"
    d.mkdir()
    db = sqlite3.connect(d / "kb.db")
    db.executescript(PGEDGE_SCHEMA)
    emb = bytes(4 * 8)
    db.executemany(
        "INSERT INTO chunks(text,title,section,project_name,project_version,file_path,openai_embedding) VALUES (?,?,?,?,?,?,?)",
        [
            ("Spock provides multi-master logical replication for PostgreSQL.", "Spock", "Overview", "spock", "5.0", "spock/index.md", emb),
            ("Use pg_dump to take a logical backup of a database.", "Backup", "pg_dump", "postgres", "17", "backup.md", emb),
        ],
    )
    db.commit()
    db.close()
    before = (d / "kb.db").read_bytes()
    token = "pgedge-style-token-abcdefghijklmnop"
    (d / "tokens.yaml").write_text(f"tokens:\n  token-1734000000:\n    hash: {sha256_hex(token)}\n    expires_at: null\n    annotation: CI\n    created_at: 2025-12-01T00:00:00Z\n")
    s = McpServer(d, name="pgedge")
    try:
        health = s.wait_ready()
        assert health["kb"]["indexed_at_load"] is True and health["kb"]["chunk_count"] == 2
        text = search_text(s.url, token, "multi-master replication")
        assert "Spock provides multi-master" in text
        text = search_text(s.url, token, "backup", project_names=["postgres"])
        assert "pg_dump" in text and "Spock" not in text
    finally:
        s.stop()
    assert (d / "kb.db").read_bytes() == before, "the server must never write the KB"
    assert sorted(p.name for p in d.iterdir()) == ["kb.db", "tokens.yaml"]


def test_a_kb_with_a_corrupt_search_index_is_refused_and_the_last_good_serves(tmp_path):
    """A kb.db that is a valid SQLite file but whose stored search index has
    one flipped byte is refused at load: the previous KB keeps serving and
    /health and the metrics say why. No file appears in the data directory."""
    d = tmp_path / "data"
    token = make_data_dir(d)
    good = (d / "kb.db").read_bytes()
    bad_path = tmp_path / "bad.db"
    bad_path.write_bytes(good)
    db = sqlite3.connect(bad_path)
    part = bytearray(db.execute("SELECT data FROM kb_search_index WHERE part = 0").fetchone()[0])
    part[len(part) // 2] ^= 0x10
    db.execute("UPDATE kb_search_index SET data = ? WHERE part = 0", (bytes(part),))
    db.execute("UPDATE chunks SET text = text || ' zebra' WHERE id = 1")  # a different file
    db.commit()
    assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    db.close()
    s = McpServer(d, name="corrupt-index")
    try:
        before = search_text(s.url, token, "replication slots")
        assert "results for" in before
        publish(d / "kb.db", bad_path.read_bytes())
        kb, _ = wait_until(lambda: (k := s.health()[1]["files"]["kb"]).get("last_error") and k, 10, 0.02)
        assert "search index" in kb["last_error"] and "checksum" in kb["last_error"], kb
        assert kb["generation"] == 1, kb
        assert s.health()[0] == 200
        assert search_text(s.url, token, "replication slots") == before
        metrics = http("GET", f"{s.base}/metrics")[2].decode()
        assert 'mcp_reloads_total{file="kb",outcome="error"} 1' in metrics
    finally:
        s.stop()
    assert sorted(p.name for p in d.iterdir()) == ["kb.db", "tokens.yaml"]


def test_untrusted_queries_get_results_or_nothing_never_an_error(server):
    """Query syntax of other engines, unbalanced quotes and parentheses, NUL
    bytes, other scripts and a query of nearly a megabyte: each is a tool
    result (hits or none), never a JSON-RPC error or an HTTP 500."""
    s, token, _ = server
    queries = ['replication AND (slots OR "wal', 'title:vacuum* NEAR/3 -"', "))))((((", "\x00\x00vacuum\x00",
               "репликация 複製 ☃", "'; DROP TABLE chunks; --", "shared_buffers_work_mem",
               "x" * 200_000, "vacuum " * 140_000, " "]
    for q in queries:
        status, _, body = rpc(s.url, "tools/call", {"name": "search_knowledgebase", "arguments": {"query": q}}, token=token)
        assert status == 200 and body and "result" in body, (q[:40], status, body)
        text = body["result"]["content"][0]["text"]
        if q.strip():
            assert not body["result"].get("isError"), (q[:40], text)
            assert text.startswith(("No results for", "1 results for")) or " results for " in text, text[:200]


def test_health_and_livez(server):
    s, _, _ = server
    status, body = s.health()
    assert status == 200 and body["status"] == "ok" and body["instance_id"] == "server"
    assert body["kb"]["chunk_count"] > 0 and body["kb"]["build_id"]
    assert body["files"]["tokens"]["generation"] == 1
    status, _, text = http("GET", f"{s.base}/livez")
    assert status == 200


def test_missing_kb_is_not_ready_and_check_command_says_why(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "tokens.yaml").write_text("tokens: {}\n")
    s = McpServer(d, name="nokb", wait=False)
    try:
        deadline = time.time() + 10
        while True:
            try:
                status, body = s.health()
                if body["status"] != "starting":
                    break
            except OSError:
                pass
            assert time.time() < deadline
            time.sleep(0.05)
        assert status == 503 and body["status"] == "not_ready"
        assert "kb" in body["last_reload_error"]
    finally:
        s.stop()
    out = subprocess.run([str(BIN / "mcp-server"), "check", "--data-dir", str(d)], capture_output=True, text=True)
    assert out.returncode == 1 and "kb.db: missing" in out.stdout


def test_demo_serves_and_its_client_command_works(tmp_path):
    port = free_port()
    log = open(LOG_DIR / f"demo-{port}.log", "w+")
    proc = subprocess.Popen([str(BIN / "mcp-server"), "demo", "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 30
        banner = ""
        while "Press Ctrl-C" not in banner:
            assert proc.poll() is None and time.time() < deadline, banner
            time.sleep(0.1)
            banner = (LOG_DIR / f"demo-{port}.log").read_text()
        cmd_line = next(line for line in banner.splitlines() if "examples/mcp_client.py" in line)
        client_cmd = cmd_line.split("&&", 1)[1].strip().replace("python3", sys.executable, 1)
        out = subprocess.run(client_cmd, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "search_knowledgebase" in out.stdout
        assert "session.key" in out.stdout, out.stdout
        curl_line = banner[banner.index("curl -s"):banner.index("Press Ctrl-C")]
        out = subprocess.run(curl_line.replace("\\\n", " "), shell=True, capture_output=True, text=True, timeout=30)
        assert '"result"' in out.stdout and "reload" in out.stdout.lower(), out.stdout[:500]
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        log.close()


def test_tools_list_and_ping_replays_are_what_rmcp_answered(server):
    """The second identical tools/list or ping is answered from the first
    answer (mcp_replayed_responses_total counts it): same status, headers
    and bytes as rmcp gave, under the caller's id. What rmcp refuses is
    never learned, and anything that differs goes to rmcp again."""
    s, token, _ = server

    def replayed() -> float:
        text = http("GET", f"{s.base}/metrics")[2].decode()
        return next(float(l.split()[-1]) for l in text.splitlines() if l.startswith("mcp_replayed_responses_total"))

    def post(body: dict | list, **headers) -> tuple[int, dict, bytes]:
        h = {"Content-Type": "application/json", "Accept": ACCEPT, "Authorization": f"Bearer {token}", **headers}
        status, got, raw = http("POST", s.url, json.dumps(body).encode(), {k: v for k, v in h.items() if v is not None})
        return status, {k.lower(): v for k, v in got.items() if k.lower() not in ("date", "x-request-id")}, raw

    meta = {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}}}
    cases = [
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, {}),
        ({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}, {"MCP-Protocol-Version": "2025-06-18"}),
        ({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": meta},
         {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}),
        ({"jsonrpc": "2.0", "id": 4, "method": "ping"}, {"Authorization": None}),
    ]
    for body, headers in cases:
        before = replayed()
        first = post(body, **headers)
        assert first[0] == 200 and b'"result"' in first[2], first
        assert replayed() == before, "the first one goes to rmcp"
        again = post(body, **headers)
        assert again == first, (body, headers)
        assert replayed() == before + 1, "the second one is replayed"

    # Another id under a learned key gets its own id back, written as rmcp
    # (serde_json) writes it.
    status, _, plain = post(cases[0][0])
    for other in [99, -5, 'q"\\ü']:
        status, _, raw = post({"jsonrpc": "2.0", "id": other, "method": "tools/list"})
        as_rmcp = json.dumps(other, ensure_ascii=False).encode()
        assert status == 200 and raw == plain.replace(b'"id":1,', b'"id":' + as_rmcp + b",", 1), raw[:80]

    # Refusals are rmcp's every time: no Accept for SSE (406), a foreign Host (403).
    before = replayed()
    for _ in range(2):
        assert post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, Accept="application/json")[0] == 406
        assert post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, Host="evil.example")[0] == 403
    # Credentials are still checked before any replay.
    assert post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, Authorization="Bearer wrong")[0] == 401
    assert post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, Authorization=None)[0] == 401
    assert replayed() == before
