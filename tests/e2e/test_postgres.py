"""Step 6 over HTTP: the Postgres tools through mcp-server, against a real PostgreSQL 15.

The module-level suite (81 escape attempts, every tool, down/up) is
mcp-server/tests/pg_tools.rs; this one proves the wiring: tools offered only
with a database, token binding, the pg://system_info resource, /health per
database, and a database that is down at start-up coming back with no restart.
"""

import time
from pathlib import Path

import pytest

from harness import McpServer, free_port, make_data_dir, rpc, sha256_hex, tokens_yaml, wait_until
from postgres import Postgres


def config_for(d: Path, port: int) -> Path:
    cfg = d.parent / "config.yaml"
    cfg.write_text(
        "databases:\n"
        "  - name: main\n"
        f"    host: 127.0.0.1\n    port: {port}\n    user: postgres\n    database: postgres\n"
        "    sslmode: disable\n    statement_timeout: 5s\n    connect_timeout: 2s\n"
    )
    return cfg


def call(url, token, tool, **args):
    status, _, body = rpc(url, "tools/call", {"name": tool, "arguments": args}, token=token)
    assert status == 200, (status, body)
    result = body["result"]
    return result.get("isError", False), "\n".join(c.get("text", "") for c in result["content"])


@pytest.fixture
def pg():
    p = Postgres(free_port())
    p.start()
    p.sql("CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, total numeric(10,2));"
          "CREATE INDEX orders_customer ON orders(customer);"
          "INSERT INTO orders(customer, total) SELECT 'c' || g, g * 1.5 FROM generate_series(1, 25) g;")
    yield p
    p.destroy()


def checksum(pg) -> str:
    return pg.sql("SELECT md5(string_agg(o::text, ',' ORDER BY id)) || ':' || (SELECT last_value FROM orders_id_seq) FROM orders o")


def test_postgres_tools_over_http(tmp_path, pg):
    d = tmp_path / "data"
    token = make_data_dir(d)
    bound = "token-bound-to-another-db-000000000"
    (d / "tokens.yaml").write_text((d / "tokens.yaml").read_text() +
                                   f"  bound:\n    hash: {sha256_hex(bound)}\n    database: reporting\n")
    tokens_yaml(bound)  # records it as a secret for the log scan
    s = McpServer(d, name="pg", extra=["--config", str(config_for(d, pg.port))])
    try:
        names = {t["name"] for t in rpc(s.url, "tools/list", {}, token=token)[2]["result"]["tools"]}
        assert {"query_database", "get_schema_info", "execute_explain", "count_rows", "search_knowledgebase"} <= names
        err, text = call(s.url, token, "query_database", query="SELECT customer, total FROM orders ORDER BY id", limit=3)
        assert not err and '"c1"' in text and '"c3"' in text and '"c4"' not in text
        err, text = call(s.url, token, "count_rows", table="orders", where="total > 30")
        assert not err and "5" in text
        err, text = call(s.url, token, "get_schema_info", table_name="orders")
        assert not err and "orders_customer" in text and "customer" in text
        err, text = call(s.url, token, "execute_explain", query="SELECT * FROM orders WHERE customer = 'c7'")
        assert not err and "orders" in text
        before = checksum(pg)
        for tool, args in [
            ("query_database", {"query": "SELECT 1; DELETE FROM orders"}),
            ("query_database", {"query": "COMMIT; BEGIN READ WRITE; DELETE FROM orders"}),
            ("query_database", {"query": "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d"}),
            ("query_database", {"query": "SELECT nextval('orders_id_seq')"}),
            ("execute_explain", {"query": "DELETE FROM orders", "analyze": True}),
            ("count_rows", {"table": "orders", "where": "1=1); DELETE FROM orders; --"}),
            ("count_rows", {"table": "orders; DROP TABLE orders"}),
        ]:
            err, text = call(s.url, token, tool, **args)
            assert err, (tool, args, text)
        assert checksum(pg) == before
        # A token bound to another database may not use this one.
        err, text = call(s.url, bound, "query_database", query="SELECT 1")
        assert err and "reporting" in text
        # The pg://system_info resource.
        status, _, body = rpc(s.url, "resources/read", {"uri": "pg://system_info"}, token=token)
        assert status == 200 and "PostgreSQL 15" in body["result"]["contents"][0]["text"]
        health = s.health()[1]
        assert health["databases"][0]["name"] == "main" and health["databases"][0]["up"] is True
    finally:
        s.stop()


def test_without_a_database_the_postgres_tools_are_not_offered(server):
    s, token, _ = server
    names = {t["name"] for t in rpc(s.url, "tools/list", {}, token=token)[2]["result"]["tools"]}
    assert "query_database" not in names and "search_knowledgebase" in names
    assert s.health()[1]["databases"] == []


def test_database_down_at_start_then_up_without_restart(tmp_path):
    port = free_port()
    pg = Postgres(port)  # initialised, not started
    d = tmp_path / "data"
    token = make_data_dir(d)
    s = McpServer(d, name="pg-late", extra=["--config", str(config_for(d, port))])
    try:
        status, health = s.health()
        assert status == 200, "a database that is down does not make the instance unready"
        db = health["databases"][0]
        assert db["up"] is False and "refused" in db["error"]
        start = time.monotonic()
        err, text = call(s.url, token, "query_database", query="SELECT 1")
        assert err and "unavailable" in text and time.monotonic() - start < 5
        pg.start()
        wait_until(lambda: s.health()[1]["databases"][0]["up"], 10, 0.2)
        err, text = call(s.url, token, "query_database", query="SELECT 40 + 2 AS answer")
        assert not err and "42" in text
    finally:
        s.stop()
        pg.destroy()
