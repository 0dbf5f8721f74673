"""Issue 17: permissions per credential, through the real server and the
official MCP client. Tokens and a user are written with the CLI's
--tools / --databases; two databases are configured on a port where nothing
listens, so a call that gets past the permissions says which database it
went to ("database a is unavailable")."""

import json
import secrets

from mcp.client import Client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

from harness import McpServer, add_token, free_port, http, metric_value, remember_secret, rpc, run


def client(url: str, token: str) -> Client:
    http_client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(url, http_client=http_client), mode="auto")


def listed(url: str, token: str) -> list[str]:
    status, _, body = rpc(url, "tools/list", {}, token=token)
    assert status == 200, (status, body)
    return sorted(t["name"] for t in body["result"]["tools"])


def call(url: str, token: str, tool: str, args: dict) -> tuple[str, bool]:
    status, _, body = rpc(url, "tools/call", {"name": tool, "arguments": args}, token=token)
    assert status == 200, (status, body)
    result = body["result"]
    return result["content"][0]["text"], bool(result.get("isError"))


def denied(url_base: str, tool: str) -> float:
    _, _, text = http("GET", f"{url_base}/metrics")
    return metric_value(text.decode(), "mcp_tool_calls_denied_total", tool=tool)


async def test_permissions_per_token_and_user(data_dir, tmp_path):
    d, everything = data_dir
    tokens = d / "tokens.yaml"
    kb_only = add_token(tokens, "--tools", "search_knowledgebase")
    only_a = add_token(tokens, "--databases", "a")
    password = "perm-user-password-1"
    remember_secret(password)
    run("mcp-server", "user", "add", "--file", str(d / "users.yaml"), "--username", "ana",
        "--tools", "search_knowledgebase,query_database", "--databases", "a", env={"MCP_PASSWORD": password})
    key = secrets.token_hex(32)
    remember_secret(key)
    (d / "session.key").write_text(key + "\n")
    listing = run("mcp-server", "token", "list", "--file", str(tokens)).stdout
    assert "tools=search_knowledgebase databases=all" in listing, listing
    assert "tools=all databases=a" in listing, listing
    assert "\tall\t" in listing, listing

    dead = free_port()
    db = f"host: 127.0.0.1\n    port: {dead}\n    user: nobody\n    database: nothing\n    sslmode: disable\n    connect_timeout: 1s\n"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"databases:\n  - name: a\n    {db}  - name: b\n    {db}")
    s = McpServer(d, name="permissions", extra=["--config", str(cfg)])
    try:
        # The official client with the search-only token: one tool listed,
        # another refused as a tool error, its own answered.
        async with client(s.url, kb_only) as c:
            names = sorted(t.name for t in (await c.list_tools()).tools)
            assert names == ["search_knowledgebase"], names
            refused = await c.call_tool("query_database", {"query": "SELECT 1"})
            assert refused.is_error
            assert refused.content[0].text == "this credential may not call the tool query_database"
            found = await c.call_tool("search_knowledgebase", {"query": "replication slots", "top_n": 1})
            assert not found.is_error and "Replication slots" in found.content[0].text
        assert denied(s.base, "query_database") == 1

        # Replayed lists stay per permissions, in either order.
        full = listed(s.url, everything)
        assert "query_database" in full and "count_rows" in full, full
        for _ in range(2):
            assert listed(s.url, kb_only) == ["search_knowledgebase"]
            assert listed(s.url, everything) == full
        _, _, text = http("GET", f"{s.base}/metrics")
        assert metric_value(text.decode(), "mcp_replayed_responses_total") >= 2

        # The token limited to database a: refused on b by name; its calls go to a.
        text, is_error = call(s.url, only_a, "query_database", {"query": "SELECT 1", "database": "b"})
        assert is_error and text == 'this credential may not use the database "b"', text
        text, is_error = call(s.url, only_a, "query_database", {"query": "SELECT 1"})
        assert is_error and text.startswith("database a is unavailable"), text
        text, _ = call(s.url, everything, "query_database", {"query": "SELECT 1", "database": "b"})
        assert text.startswith("database b is unavailable"), text
        assert denied(s.base, "query_database") == 2

        # A user's session carries the user's permissions.
        status, _, body = rpc(s.url, "tools/call", {"name": "authenticate_user", "arguments": {"username": "ana", "password": password}})
        assert status == 200, body
        answer = json.loads(body["result"]["content"][0]["text"])
        assert answer["success"], answer
        session = answer["session_token"]
        remember_secret(session)
        assert listed(s.url, session) == ["query_database", "search_knowledgebase"]
        text, is_error = call(s.url, session, "count_rows", {"table": "t"})
        assert is_error and "may not call the tool count_rows" in text, text
        text, is_error = call(s.url, session, "query_database", {"query": "SELECT 1", "database": "b"})
        assert is_error and '"b"' in text, text

        # Names that are no tool are counted under one label.
        for name in ("nope-1", "nope-2"):
            _, is_error = call(s.url, kb_only, name, {})
            assert is_error
        assert denied(s.base, "unknown") == 2
        _, _, text = http("GET", f"{s.base}/metrics")
        assert "nope-1" not in text.decode()
    finally:
        s.stop()
