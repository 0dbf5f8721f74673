"""Issue 16: semantic and hybrid knowledge-base search, end to end.

The four modes of operation, each with the official MCP client against the
real server binary:

- pgEdge provider vectors: a pgEdge-schema kb.db whose vectors a real
  embedding model made through the provider's HTTP API (embed_server.py on
  127.0.0.1, speaking OpenAI's, Voyage's, Ollama's and Gemini's APIs), the
  server configured as a pgEdge user would configure it; its semantic
  answers are compared with a brute-force cosine over the stored blobs
  computed here.
- a local model: `kb build --embed-model`, the server embedding queries
  in-process; the stored vectors and the answers are checked against the
  model computed here, and a KB made by another model is refused.
- keyword only: a KB without vectors.
- provider down, failing, slow, rate-limited, answering garbage or
  refusing the key: the keyword ranking, marked, counted, logged once per
  burst; hybrid again once the provider is back. And a dimension mismatch,
  refused at start and on reload.

The model (wordllama l2_supercat, 256 d) is staged by scripts/test.sh into
.tools/models (PG_MCP_EMBED_MODEL_DIR). Without it the module is skipped,
unless CI is set: then it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

import embed_server
from embed_server import EmbedServer, embed, embed_via_http, from_blob, to_blob
from harness import (LOG_DIR, PGEDGE_EMBEDDING_COLUMNS, McpServer, http, metric_value, publish, remember_secret, run,
                     tokens_yaml, wait_until, write_pgedge_kb)

MODEL_DIR = embed_server.model_dir()

if not embed_server.model_present(MODEL_DIR) and not os.environ.get("CI"):
    pytest.skip(f"no embedding model at {MODEL_DIR} (scripts/test.sh stages it; set PG_MCP_EMBED_MODEL_DIR)",
                allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def model_is_there():
    # With CI set, a missing model is a failure, not a skip.
    assert embed_server.model_present(MODEL_DIR), f"no embedding model at {MODEL_DIR}: scripts/test.sh stages it"


TIE = 0.005  # the server quantises: cosines this close may swap places

# Distinct PostgreSQL topics, one chunk per source file so the server's
# at-most-two-chunks-per-file rule never changes an order.
CORPUS = [
    ("Routine Vacuuming", "Recovering disk space", "VACUUM removes dead row versions left behind by UPDATE and DELETE so their space can be reused. VACUUM FULL rewrites the whole table into a new file and returns the freed space to the operating system, but it holds an exclusive lock."),
    ("Routine Vacuuming", "The autovacuum daemon", "The autovacuum launcher starts worker processes that vacuum and analyze tables automatically once the number of changed tuples passes autovacuum_vacuum_threshold plus a scale factor of the table size."),
    ("Planner Statistics", "ANALYZE", "ANALYZE samples the rows of each table and stores histograms and most common values in pg_statistic; the query planner uses them to estimate how many rows each step will return."),
    ("Index Types", "B-tree", "A B-tree index keeps keys sorted, so it serves equality and range conditions such as <, <=, BETWEEN and ORDER BY without a sort step."),
    ("Index Types", "GIN", "GIN is an inverted index for values that contain many elements, such as arrays, jsonb documents and tsvector columns; each element points to the list of rows that contain it."),
    ("Index Types", "BRIN", "Block range indexes store the minimum and maximum value of every range of table pages; they are tiny and suit very large tables whose values follow the physical order, like timestamps of an append-only log."),
    ("High Availability", "Streaming replication", "A standby server connects to the primary and receives the write-ahead log as it is generated, replaying it to stay an almost current copy that can serve read-only queries."),
    ("High Availability", "Replication slots", "A replication slot makes the primary retain WAL segments until the consumer has received them, so a standby that disconnects can catch up; an abandoned slot can fill the disk."),
    ("Logical Replication", "Publications and subscriptions", "A publication on the source database lists tables whose row changes are sent; a subscription on another server receives them, which allows replicating a subset of tables between major versions."),
    ("Backup and Restore", "Point-in-time recovery", "Combining a base backup with archived WAL files lets you restore a cluster to its state at any moment, for example just before a table was dropped by mistake."),
    ("Backup and Restore", "pg_dump", "pg_dump writes a consistent logical backup of one database as SQL or as an archive that pg_restore can load selectively and in parallel."),
    ("Monitoring", "pg_stat_statements", "The pg_stat_statements extension tracks planning and execution statistics of every normalized statement, such as total_exec_time and calls, so you can find the queries that consume most time."),
    ("Parallel Query", "How parallel query works", "The planner can give a query several background worker processes that scan and aggregate parts of a table at the same time; max_parallel_workers_per_gather limits how many a Gather node may use."),
    ("Server Configuration", "Connections", "Each client connection is served by its own backend process; max_connections caps them, and a pooler such as PgBouncer lets thousands of clients share a few sessions."),
    ("Server Configuration", "shared_buffers", "shared_buffers sets how much memory the server uses for caching data pages; a quarter of the machine's RAM is a common starting point."),
    ("Server Configuration", "work_mem", "work_mem is the memory each sort or hash operation may use before it spills to temporary files on disk; a complex query may use several times this amount."),
    ("Concurrency Control", "Serializable isolation", "The serializable isolation level makes concurrent transactions behave as if they ran one after another, aborting one with a serialization failure when that cannot be guaranteed."),
    ("Concurrency Control", "Deadlocks", "Two transactions that each wait for a lock held by the other form a deadlock; the server detects it after deadlock_timeout and cancels one of them."),
    ("Concurrency Control", "MVCC", "Multiversion concurrency control gives every transaction a snapshot, so readers never block writers and writers never block readers."),
    ("Data Definition", "Table partitioning", "Declarative partitioning splits a large table into partitions by range, list or hash of a key; queries that filter on the key skip partitions that cannot match."),
    ("Full Text Search", "Basic text matching", "to_tsvector turns a document into normalized lexemes and to_tsquery builds a search condition; the @@ operator matches them, and ts_rank orders results by relevance."),
    ("JSON Types", "jsonb", "jsonb stores JSON in a decomposed binary format that is slower to input but faster to process, and supports containment and existence operators that GIN indexes accelerate."),
    ("Client Authentication", "pg_hba.conf", "pg_hba.conf decides which hosts may connect to which databases as which users, and with which method: scram-sha-256, certificate, peer or trust."),
    ("Database Roles", "Privileges", "GRANT and REVOKE give roles privileges on tables, schemas and functions; row-level security policies further restrict which rows a role may see."),
    ("Server Setup", "Secure TCP/IP connections with SSL", "With ssl = on and a server certificate and key, clients can encrypt their connections; sslmode=verify-full on the client also checks the server's host name."),
    ("Reliability", "Checkpoints", "A checkpoint flushes all dirty pages to the data files so that crash recovery only needs to replay WAL written after it; checkpoint_timeout and max_wal_size control how often one happens."),
    ("Performance Tips", "Using EXPLAIN", "EXPLAIN shows the plan the planner chose for a statement; EXPLAIN ANALYZE runs it and reports the actual rows and time of each node."),
    ("Data Definition", "Identity columns", "An identity column draws its values from an implicit sequence; nextval never returns the same number twice, though gaps appear when transactions roll back."),
    ("Foreign Data", "postgres_fdw", "postgres_fdw lets a query read and write tables that live in a remote PostgreSQL server as if they were local foreign tables."),
    ("Triggers", "Overview of trigger behavior", "A trigger runs a function automatically before or after INSERT, UPDATE or DELETE on a table, for each row or once per statement."),
    ("Storage", "Tablespaces", "A tablespace maps a directory on another disk to a name, so large tables or indexes can be stored on faster or bigger storage."),
    ("Upgrading", "pg_upgrade", "pg_upgrade moves a cluster to a new major version without dumping and reloading the data, by linking or copying the data files."),
    ("Localization", "Collations", "A collation defines how text sorts and compares; ICU collations give the same ordering on every operating system."),
    ("Error Reporting and Logging", "log_min_duration_statement", "Setting log_min_duration_statement writes every statement that runs longer than the threshold to the server log, with its duration."),
    ("Materialized Views", "Refreshing", "A materialized view stores the result of its query; REFRESH MATERIALIZED VIEW CONCURRENTLY rebuilds it without blocking readers."),
    ("Asynchronous Notification", "LISTEN and NOTIFY", "NOTIFY sends a message on a channel to every session that has executed LISTEN on it, delivered when the sending transaction commits."),
]


def slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


CHUNKS = [{"title": t, "section": s, "text": x, "file_path": f"postgres/{slug(t)}/{slug(s)}.md"} for t, s, x in CORPUS]

# Asked in words the chunks mostly do not use; the answers are computed.
QUESTIONS = [
    "find the slowest statements the server has executed",
    "let the planner use several CPU cores for one query",
    "get disk space back after deleting lots of rows",
    "keep a second machine as an up to date copy of the database",
    "undo an accidental drop by going back in time",
    "encrypt traffic between the application and the database",
]
# No word of it (nor a stem of one) is in the corpus: keyword search finds
# nothing, the vectors still rank every chunk.
UNMATCHED = "quickly pinpointing entries"

# Each provider as a pgEdge user configures it, with its own model name (so
# its vectors differ from the other columns': see embed_server.rotation),
# its key in a file or a variable, and the settings given as flags, MCP_*
# variables or a configuration file.
PROVIDERS = {
    "openai": {"model": "wordllama-openai", "url": lambda base: f"{base}/v1", "key_env": None, "key_file": True, "via": "flags"},
    "voyage": {"model": "wordllama-voyage", "url": lambda base: f"{base}/v1", "key_env": "PGEDGE_KB_VOYAGE_API_KEY", "key_file": False, "via": "flags"},
    "ollama": {"model": "wordllama-ollama", "url": lambda base: base, "key_env": None, "key_file": False, "via": "env"},
    "gemini": {"model": "wordllama-gemini", "url": lambda base: f"{base}/v1beta", "key_env": "GEMINI_API_KEY", "key_file": False, "via": "config"},
}


# ---------------------------------------------------------------- helpers
def new_data_dir(tmp: Path, name: str) -> tuple[Path, str]:
    d = tmp / name
    d.mkdir(parents=True)
    token = f"semantic-{secrets.token_urlsafe(24)}"
    (d / "tokens.yaml").write_text(tokens_yaml(token))
    return d, token


def new_key() -> str:
    key = f"sk-test-{secrets.token_urlsafe(24)}"
    remember_secret(key)
    return key


@pytest.fixture(scope="module")
def pgedge_kb(tmp_path_factory) -> Path:
    """A pgEdge-schema kb.db of CHUNKS whose openai, voyage, ollama and
    gemini columns hold what each provider's API answered, as pgEdge's
    builder stores it."""
    path = tmp_path_factory.mktemp("pgedge-kb") / "kb.db"
    key = new_key()
    texts = [c["text"] for c in CHUNKS]
    with EmbedServer(api_key=key, log_path=LOG_DIR / "embed-builder.log") as builder:
        vectors = {PGEDGE_EMBEDDING_COLUMNS[p]: [to_blob(v) for v in embed_via_http(builder.url, p, texts, model=cfg["model"], api_key=key)]
                   for p, cfg in PROVIDERS.items()}
        assert builder.last_credential == key and builder.requests >= 3
    write_pgedge_kb(path, CHUNKS, vectors)
    return path


def stored_vectors(kb: Path, column: str) -> dict[str, np.ndarray]:
    """file_path → the stored vector, decoded here from the blob."""
    db = sqlite3.connect(f"file:{kb}?mode=ro", uri=True)
    try:
        return {fp: from_blob(b) for fp, b in db.execute(f"SELECT file_path, {column} FROM chunks WHERE {column} IS NOT NULL")}
    finally:
        db.close()


def brute_force(query_vector: np.ndarray, vectors: dict[str, np.ndarray]) -> list[tuple[str, float]]:
    """Every source ranked by cosine to the query, best first."""
    q = query_vector / np.linalg.norm(query_vector)
    scored = [(fp, float(np.dot(v, q) / np.linalg.norm(v))) for fp, v in vectors.items()]
    return sorted(scored, key=lambda x: -x[1])


def assert_ranking(query: str, got: list[str], expected: list[tuple[str, float]], k: int) -> None:
    """`got` (the server's sources, in order) is the brute force's top k,
    up to swaps of chunks whose cosines are within TIE."""
    cos = dict(expected)
    why = f"{query!r}: server {got}\nbrute force {[(fp, round(c, 4)) for fp, c in expected[:k + 2]]}"
    assert len(got) == min(k, len(expected)), why
    assert len(set(got)) == len(got), why
    assert all(fp in cos for fp in got), why
    for i, fp in enumerate(got):
        assert fp == expected[i][0] or abs(cos[fp] - expected[i][1]) < TIE, f"rank {i + 1}: {why}"
    for i in range(len(got) - 1):
        assert cos[got[i]] >= cos[got[i + 1]] - TIE, why
    last = min(cos[fp] for fp in got)
    left_out = [(fp, c) for fp, c in expected if fp not in got and c > last + TIE]
    assert not left_out, f"left out {left_out}: {why}"


HIT = re.compile(r"^## (\d+)\. (.*)\nProduct: (.*?) \| Source: (.*?) \| Score: (\S+)$", re.M)


class Answer:
    def __init__(self, text: str, seconds: float = 0.0):
        self.text, self.seconds = text, seconds
        first = text.split("\n", 1)[0]
        m = re.search(r" \[mode: ([^\]]*)\]$", first)
        assert m, f"no [mode: …] at the end of the first line: {first!r}"
        self.mode = m.group(1)
        hits = HIT.findall(text)
        assert [int(h[0]) for h in hits] == list(range(1, len(hits) + 1)), text[:500]
        self.sources = [h[3] for h in hits]
        self.headings = [h[1] for h in hits]
        self.scores = [float(h[4]) for h in hits]

    def keyword_only(self) -> str | None:
        """The reason, when the answer is marked keyword-only."""
        return self.mode.split(",", 1)[1].strip() if self.mode.startswith("keyword-only,") else None


@contextlib.asynccontextmanager
async def client(s: McpServer, token: str):
    """The official MCP client (protocol 2026-07-28) for `s`."""
    from mcp.client import Client
    from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

    http_client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    try:
        async with Client(streamable_http_client(s.url, http_client=http_client), mode="auto") as c:
            yield c
    finally:
        await http_client.aclose()  # its keep-alive connections would hold up the server's shutdown


async def search(c, query: str, **args) -> Answer:
    start = time.monotonic()
    r = await c.call_tool("search_knowledgebase", {"query": query, **args})
    took = time.monotonic() - start
    text = "\n".join(getattr(b, "text", "") for b in r.content)
    assert not r.is_error, text
    return Answer(text, took)


def metrics(s: McpServer) -> str:
    status, _, body = http("GET", f"{s.base}/metrics")
    assert status == 200
    return body.decode()


def searches(text: str, mode: str) -> float:
    return metric_value(text, "mcp_kb_searches_total", mode=mode)


def failures(text: str, reason: str, provider: str = "openai") -> float:
    return metric_value(text, "mcp_kb_embedding_failures_total", provider=provider, reason=reason)


def health_when_settled(s: McpServer, timeout: float = 20) -> tuple[int, dict]:
    """/health once the server has finished starting (ready or not)."""
    def settled():
        try:
            status, body = s.health()
        except OSError:
            return None
        return (status, body) if body.get("status") != "starting" else None

    return wait_until(settled, timeout, 0.05)[0]


def write_docs(docs: Path) -> Path:
    """CHUNKS as Markdown files, one a chunk, at their file_path."""
    for c in CHUNKS:
        p = docs / c["file_path"]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"# {c['title']}\n\n## {c['section']}\n\n{c['text']}\n")
    return docs


def warnings_in(log: Path, offset: int) -> list[dict]:
    """The WARN and ERROR lines the server wrote after byte `offset`."""
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("level") in ("WARN", "ERROR")]


def assert_no_key(key: str, *texts: str) -> None:
    for t in texts:
        assert key not in t, "the API key leaked"


def provider_flags(provider: str, api: EmbedServer, key: str | None, d: Path, via: str = "flags") -> tuple[list[str], dict]:
    """The server's arguments and environment for `provider` at `api`:
    settings as flags, MCP_* variables or a configuration file (`via`)."""
    cfg = PROVIDERS[provider]
    settings = {"kb_embedding_provider": provider, "kb_embedding_model": cfg["model"], "kb_embedding_url": cfg["url"](api.url)}
    env = {}
    if key and cfg["key_file"]:
        (d.parent / f"{provider}.key").write_text(key + "\n")
        settings["kb_embedding_api_key_file"] = str(d.parent / f"{provider}.key")
    elif key and cfg["key_env"]:
        env[cfg["key_env"]] = key
    if via == "env":
        return [], {**env, **{f"MCP_{k.upper()}": v for k, v in settings.items()}}
    if via == "config":
        (d.parent / "serve.yaml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items()))
        return ["--config", str(d.parent / "serve.yaml")], env
    return [a for k, v in settings.items() for a in (f"--{k.replace('_', '-')}", v)], env


# ------------------------------------------------- a, b: provider vectors
@pytest.mark.parametrize("provider", ["openai", "voyage", "ollama", "gemini"])
async def test_pgedge_kb_with_provider_vectors_ranks_as_brute_force_cosine(tmp_path, pgedge_kb, provider):
    """A pgEdge user's kb.db and provider configuration: semantic answers are
    the brute-force cosine top 5 over the stored blobs, the query reached the
    provider's real API with the key, hybrid is the default, keyword mode
    does not call the provider, and the key is nowhere to be seen."""
    cfg = PROVIDERS[provider]
    d, token = new_data_dir(tmp_path, "data")
    shutil.copy(pgedge_kb, d / "kb.db")
    key = new_key() if provider != "ollama" else None
    api = EmbedServer(api_key=key, log_path=LOG_DIR / f"embed-{provider}.log").start()
    flags, env = provider_flags(provider, api, key, d, cfg["via"])
    vectors = stored_vectors(d / "kb.db", PGEDGE_EMBEDDING_COLUMNS[provider])
    texts = []
    try:
        s = McpServer(d, name=f"semantic-{provider}", extra=flags, env=env)
    except BaseException:
        api.stop()
        raise
    try:
        health = s.wait_ready()
        emb = health["kb"]["embedding"]
        assert emb["provider"] == provider and emb["model"] == cfg["model"], emb
        assert emb["dimensions"] == 256 and emb["vectors"] == len(CHUNKS), emb
        async with client(s, token) as c:
            tools = await c.list_tools()
            schema = next(t for t in tools.tools if t.name == "search_knowledgebase").input_schema
            assert "mode" in schema["properties"], schema

            before = api.requests
            for q in QUESTIONS + [UNMATCHED]:
                a = await search(c, q, mode="semantic")
                texts.append(a.text)
                assert a.mode == "semantic", a.text[:300]
                assert_ranking(q, a.sources, brute_force(embed(q, cfg["model"])[0], vectors), 5)
            a = await search(c, QUESTIONS[0], mode="semantic", top_n=12)
            assert_ranking(QUESTIONS[0], a.sources, brute_force(embed(QUESTIONS[0], cfg["model"])[0], vectors), 12)
            assert api.requests > before, "the provider was never asked"
            assert QUESTIONS[1] in api.texts, api.texts
            path = {"ollama": "/api/embed", "gemini": f"/v1beta/models/{cfg['model']}:embedContent"}.get(provider, "/v1/embeddings")
            assert set(api.by_path) == {path}, api.by_path
            if provider != "gemini":  # Gemini names the model in the path
                assert {b.get("model") for b in api.bodies} == {cfg["model"]}
            if provider == "gemini":
                assert api.last_credential == key and api.last_authorization is None
            elif key:
                assert api.last_authorization == f"Bearer {key}"
                assert api.authorizations == {f"Bearer {key}"}
            else:
                assert api.last_authorization is None

            # Default: hybrid. A query no keyword matches is answered by the
            # vectors alone, in their order.
            a = await search(c, QUESTIONS[2])
            texts.append(a.text)
            assert a.mode == "hybrid" and a.sources, a.text[:300]
            kw = await search(c, UNMATCHED, mode="keyword")
            assert kw.mode == "keyword" and kw.sources == [], kw.text[:300]
            sem = await search(c, UNMATCHED, mode="semantic")
            hyb = await search(c, UNMATCHED)
            assert hyb.mode == "hybrid" and hyb.sources and hyb.sources[0] == sem.sources[0], (hyb.sources, sem.sources)

            # Keyword mode never asks the provider.
            asked = api.requests
            kw = await search(c, "replication slot retains WAL segments", mode="keyword")
            assert kw.mode == "keyword" and kw.sources[0] == CHUNKS[7]["file_path"], kw.text[:300]
            assert api.requests == asked

        m = metrics(s)
        assert searches(m, "semantic") == len(QUESTIONS) + 3, m
        assert searches(m, "hybrid") == 2 and searches(m, "keyword") == 2
        assert searches(m, "keyword_only") == 0
        status, health = s.health()
        assert status == 200 and health["kb"]["embedding"]["state"] == "ok", health["kb"]
    finally:
        s.stop()
        api.stop()
    if key:
        assert_no_key(key, s.log_path.read_text(), m, json.dumps(health), *texts)


# ------------------------------------------------------- c: local model
async def test_local_model_kb_build_and_in_process_queries(tmp_path):
    """`kb build --embed-model` stores one vector per chunk, each the model's
    vector of the chunk's title, section and text, and records the model;
    the server embeds queries in-process and ranks as brute force does; a
    model whose weights differ by one byte is refused, at start and on
    reload, with the reason in /health."""
    docs = write_docs(tmp_path / "docs")
    d, token = new_data_dir(tmp_path, "data")
    start = time.monotonic()
    run("mcp-server", "kb", "build", "--docs", str(docs), "--out", str(d / "kb.db"), "--embed-model", str(MODEL_DIR),
        "--project", "postgres", "--project-version", "17")
    built_in = time.monotonic() - start

    db = sqlite3.connect(f"file:{d / 'kb.db'}?mode=ro", uri=True)
    rows = db.execute("SELECT c.id, c.title, c.section, c.text, c.file_path, e.vector FROM chunks c "
                      "LEFT JOIN kb_embeddings e ON e.chunk_id = c.id").fetchall()
    meta = dict(db.execute("SELECT key, value FROM kb_meta").fetchall())
    db.close()
    assert len(rows) >= len(CHUNKS), rows
    assert all(r[5] is not None for r in rows), "a chunk without a vector"
    weights_sha = hashlib.sha256((MODEL_DIR / "model.safetensors").read_bytes()).hexdigest()
    assert meta.get("embedding_sha256") == weights_sha and meta.get("embedding_dimensions") == "256", meta
    assert meta.get("embedding_model") == MODEL_DIR.name, meta
    mine = embed([f"{r[1]}\n{r[2]}\n{r[3]}" for r in rows])
    stored = np.stack([from_blob(r[5]) for r in rows])
    assert stored.shape == mine.shape
    worst = float(np.abs(stored - mine).max())
    assert worst < 1e-3, f"stored vectors differ from the model's by up to {worst}"
    # One chunk a source file: the brute force ranks sources.
    assert len({r[4] for r in rows}) == len(rows) == len(CHUNKS), [r[4] for r in rows]
    vectors = {r[4]: v for r, v in zip(rows, mine)}

    s = McpServer(d, name="semantic-local", extra=["--kb-embedding-provider", "local", "--kb-embedding-model-dir", str(MODEL_DIR)])
    other = tmp_path / "other-model" / MODEL_DIR.name  # same name, one byte of the weights changed
    try:
        emb = s.wait_ready()["kb"]["embedding"]
        assert emb["provider"] == "local" and emb["dimensions"] == 256 and emb["vectors"] == len(rows), emb
        async with client(s, token) as c:
            for q in QUESTIONS + [UNMATCHED]:
                a = await search(c, q, mode="semantic")
                assert a.mode == "semantic", a.text[:300]
                assert_ranking(q, a.sources, brute_force(embed(q)[0], vectors), 5)
            a = await search(c, QUESTIONS[0])
            assert a.mode == "hybrid" and a.sources, a.text[:300]
            first = await search(c, "replication slot retains WAL", mode="semantic")

            # Reload: a KB built by the other model is refused; the last
            # good one keeps serving.
            other.mkdir(parents=True)
            shutil.copy(MODEL_DIR / "tokenizer.json", other / "tokenizer.json")
            weights = bytearray((MODEL_DIR / "model.safetensors").read_bytes())
            weights[len(weights) - 1001] ^= 0x01
            (other / "model.safetensors").write_bytes(bytes(weights))
            run("mcp-server", "kb", "build", "--docs", str(docs), "--out", str(tmp_path / "other.db"),
                "--embed-model", str(other), "--project", "postgres", "--project-version", "17")
            original = (d / "kb.db").read_bytes()
            publish(d / "kb.db", (tmp_path / "other.db").read_bytes())
            kb, _ = wait_until(lambda: (k := s.health()[1]["files"]["kb"]).get("last_error") and k, 10, 0.05)
            assert MODEL_REFUSED.search(kb["last_error"]), kb
            assert kb["generation"] == 1, kb
            again = await search(c, "replication slot retains WAL", mode="semantic")
            assert again.sources == first.sources and again.mode == "semantic"
    finally:
        s.stop()

    # At start: the other model with its own KB serves (the copy is a
    # usable model); with the original's KB it is not ready, and says why.
    s = McpServer(d, name="semantic-local-other", extra=["--kb-embedding-provider", "local", "--kb-embedding-model-dir", str(other)])
    s.stop()
    publish(d / "kb.db", original)
    s = McpServer(d, name="semantic-local-refused", wait=False,
                  extra=["--kb-embedding-provider", "local", "--kb-embedding-model-dir", str(other)])
    try:
        status, health = health_when_settled(s)
    finally:
        s.stop()
    assert status == 503 and health["status"] == "not_ready", health
    assert MODEL_REFUSED.search(json.dumps(health)), health
    print(f"\nkb build --embed-model: {len(rows)} chunks in {built_in:.2f} s")


MODEL_REFUSED = re.compile(r"sha256|checksum|weights|different model|another model", re.I)


# ------------------------------------------------------ d: keyword only
async def test_keyword_only_without_vectors_or_without_a_provider(tmp_path, pgedge_kb):
    """A KB without vectors: answers are keyword answers, marked so, and a
    semantic request says it had no vectors. A pgEdge KB with vectors but no
    provider configured: keyword by default, keyword-only when semantic is
    asked for. An unknown mode is refused."""
    docs = write_docs(tmp_path / "docs")
    d, token = new_data_dir(tmp_path, "data")
    run("mcp-server", "kb", "build", "--docs", str(docs), "--out", str(d / "kb.db"), "--project", "postgres", "--project-version", "17")
    q = "replication slot retains WAL segments"
    s = McpServer(d, name="semantic-none")
    try:
        emb = s.wait_ready()["kb"]["embedding"]
        assert emb["state"] == "none" and not emb.get("vectors"), emb
        async with client(s, token) as c:
            kw = await search(c, q)
            assert kw.mode == "keyword", kw.text[:300]
            assert kw.sources[0] == CHUNKS[7]["file_path"], kw.text[:500]
            assert (await search(c, q, mode="keyword")).sources == kw.sources
            # Both hold here: no vectors, and no embedder either.
            sem = await search(c, q, mode="semantic")
            assert sem.keyword_only() and re.search(r"no vectors|no embedding model", sem.keyword_only()), sem.text[:300]
            assert sem.sources == kw.sources
            hyb = await search(c, q, mode="hybrid")
            assert hyb.keyword_only() and re.search(r"no vectors|no embedding model", hyb.keyword_only()), hyb.text[:300]
            assert hyb.sources == kw.sources
            try:
                r = await c.call_tool("search_knowledgebase", {"query": q, "mode": "fuzzy"})
            except Exception as e:  # noqa: BLE001 - a JSON-RPC error is a refusal too
                refusal = str(e)
            else:
                refusal = "\n".join(getattr(b, "text", "") for b in r.content)
                assert r.is_error, refusal
            assert re.search(r"mode|fuzzy|variant", refusal), refusal
        m = metrics(s)
        assert searches(m, "keyword") == 2 and searches(m, "keyword_only") == 2, m
        assert searches(m, "semantic") == 0 and searches(m, "hybrid") == 0
    finally:
        s.stop()

    # An embedder, but a KB without vectors: served, keyword by default,
    # and a semantic request says there are no vectors.
    s = McpServer(d, name="semantic-no-vectors", extra=["--kb-embedding-provider", "local", "--kb-embedding-model-dir", str(MODEL_DIR)])
    try:
        emb = s.wait_ready()["kb"]["embedding"]
        assert emb["provider"] == "local" and not emb.get("vectors") and emb.get("no_vectors"), emb
        async with client(s, token) as c:
            kw = await search(c, q)
            assert kw.mode == "keyword", kw.text[:300]
            sem = await search(c, q, mode="semantic")
            assert sem.keyword_only() == "no vectors" or "no vectors" in sem.keyword_only(), sem.text[:300]
            assert sem.sources == kw.sources
    finally:
        s.stop()

    d2, token2 = new_data_dir(tmp_path, "pgedge")
    shutil.copy(pgedge_kb, d2 / "kb.db")
    s = McpServer(d2, name="semantic-no-provider")
    try:
        s.wait_ready()
        async with client(s, token2) as c:
            kw = await search(c, q)
            assert kw.mode == "keyword" and kw.sources[0] == CHUNKS[7]["file_path"], kw.text[:300]
            sem = await search(c, q, mode="semantic")
            assert sem.keyword_only() and sem.sources == kw.sources, sem.text[:300]
    finally:
        s.stop()


# -------------------------------------------- e: provider down and back
TIMEOUT = 1.0
FAILURES = [
    # name, how, metric reason, words of the reason in the result
    ("down", {}, "unavailable", r"fail|unavailable|unreachable|down|connect"),
    ("error 500", {"fail_status": 500}, "unavailable", r"fail|unavailable|error"),
    ("slow", {"delay": 3 * TIMEOUT}, "timeout", r"timed out"),
    ("rate-limited", {"fail_status": 429, "retry_after": "1"}, "rate_limited", r"rate.limited"),
    ("garbage", {"garbage": ["dimension", "malformed", "shape", "count", "nonfinite", "html"]}, "invalid", r"invalid"),
    ("wrong key", {}, "rejected", r"refused|rejected|key"),
]
REASONS = ("timeout", "unavailable", "rate_limited", "rejected", "invalid")


async def test_provider_down_slow_rate_limited_or_garbage_falls_back_to_keywords(tmp_path, pgedge_kb):
    """Each failure of the provider: 20 searches at once all answer within
    the timeout and a second, with the keyword ranking marked keyword-only
    and why, counted under the reason, one warning in the log for the
    burst; /health says the provider is failing, without the key. When the
    provider is back, hybrid again."""
    d, token = new_data_dir(tmp_path, "data")
    shutil.copy(pgedge_kb, d / "kb.db")
    key = new_key()
    api = EmbedServer(api_key=key, log_path=LOG_DIR / "embed-failures.log").start()
    flags, env = provider_flags("openai", api, key, d)
    try:
        s = McpServer(d, name="semantic-failures", extra=[*flags, "--kb-embedding-timeout", f"{TIMEOUT:g}s"], env=env)
    except BaseException:
        api.stop()
        raise
    seen: list[str] = []
    probes = iter(range(10_000))

    async def until_hybrid(c) -> float:
        async def probe():
            a = await search(c, f"{CHUNKS[3]['section']} probe {next(probes)}")
            seen.append(a.text)
            return a.mode == "hybrid"

        start = time.monotonic()
        while not await probe():
            assert time.monotonic() - start < 20, f"not hybrid again: {seen[-1][:200]}"
            await asyncio.sleep(0.2)
        return time.monotonic() - start

    report = []
    try:
        s.wait_ready()
        async with client(s, token) as c:
            await until_hybrid(c)
            for k, (name, controls, reason, words) in enumerate(FAILURES):
                before = metrics(s)
                offset = s.log_path.stat().st_size
                if name == "down":
                    api.stop()
                elif name == "wrong key":
                    api.api_key = f"sk-other-{secrets.token_urlsafe(16)}"
                else:
                    api.set(**controls)
                queries = [f"{c_['section']} {c_['title']} {k}{i:02d}" for i, c_ in enumerate(CHUNKS[:20])]
                start = time.monotonic()
                answers = await asyncio.gather(*(search(c, q) for q in queries))
                took = time.monotonic() - start
                after = metrics(s)
                warned = warnings_in(s.log_path, offset)
                status, health = s.health()
                # What the keyword ranking alone answers.
                keyword = [await search(c, q, mode="keyword") for q in queries]

                why = [a.mode for a in answers]
                assert all(a.keyword_only() for a in answers), (name, why)
                assert all(re.search(words, a.keyword_only()) for a in answers), (name, why)
                assert all("embedding" in a.keyword_only() or "provider" in a.keyword_only() for a in answers), (name, why)
                assert [a.sources for a in answers] == [kw.sources for kw in keyword], name
                slowest = max(a.seconds for a in answers)
                assert slowest <= TIMEOUT + 1.0, (name, slowest)
                assert searches(after, "keyword_only") - searches(before, "keyword_only") == len(queries), name
                counted = {r: failures(after, r) - failures(before, r) for r in REASONS}
                if reason:
                    assert 1 <= counted[reason] <= len(queries), (name, counted)
                    assert all(v == 0 for r, v in counted.items() if r != reason), (name, counted)
                else:
                    assert 1 <= sum(counted.values()) <= len(queries), (name, counted)
                assert len(warned) == 1, (name, warned)
                assert status == 200 and health["kb"]["embedding"]["state"] == "failing", (name, health["kb"])
                assert health["kb"]["embedding"].get("last_error"), (name, health["kb"])
                seen.extend([a.text for a in answers] + [json.dumps(health), after] + [json.dumps(w) for w in warned])

                if name == "down":
                    api.restart()
                elif name == "wrong key":
                    api.api_key = key
                else:
                    api.healthy()
                back = await until_hybrid(c)
                assert s.health()[1]["kb"]["embedding"]["state"] == "ok"
                report.append(f"{name}: 20 searches in {took:.2f} s (slowest {slowest:.2f} s), "
                              f"{counted}, hybrid again after {back:.2f} s")
    finally:
        s.stop()
        api.stop()
    assert_no_key(key, s.log_path.read_text(), *seen)
    print("\n" + "\n".join(report))


# ------------------------------------------- f: dimension mismatch
async def test_a_dimension_mismatch_is_refused_at_start_and_on_reload(tmp_path, pgedge_kb):
    """The configured dimension is not the stored vectors': not ready at
    start, /health says why (and holds no key); on reload, the new KB is
    refused and the last good one keeps serving."""
    d, token = new_data_dir(tmp_path, "data")
    shutil.copy(pgedge_kb, d / "kb.db")
    key = new_key()
    api = EmbedServer(api_key=key, log_path=LOG_DIR / "embed-dimensions.log").start()
    flags, env = provider_flags("openai", api, key, d)
    try:
        s = McpServer(d, name="semantic-dims-512", wait=False, extra=[*flags, "--kb-embedding-dimensions", "512"], env=env)
        try:
            status, health = health_when_settled(s)
        finally:
            s.stop()
        said = json.dumps(health)
        assert status == 503 and health["status"] == "not_ready", health
        assert "512" in said and "256" in said and "dimension" in said.lower(), health
        assert_no_key(key, said, s.log_path.read_text())

        s = McpServer(d, name="semantic-dims-256", extra=[*flags, "--kb-embedding-dimensions", "256"], env=env)
        try:
            vectors = stored_vectors(d / "kb.db", "openai_embedding")
            q = QUESTIONS[1]
            async with client(s, token) as c:
                first = await search(c, q, mode="semantic")
                assert_ranking(q, first.sources, brute_force(embed(q, "wordllama-openai")[0], vectors), 5)
                # The same chunks, each text changed and each vector cut to 128.
                short = {PGEDGE_EMBEDDING_COLUMNS["openai"]: [to_blob(v[:128] / np.linalg.norm(v[:128])) for v in vectors.values()]}
                changed = [{**ch, "text": ch["text"] + " (changed)"} for ch in CHUNKS]
                assert list(vectors) == [ch["file_path"] for ch in CHUNKS]
                write_pgedge_kb(tmp_path / "short.db", changed, short)
                publish(d / "kb.db", (tmp_path / "short.db").read_bytes())
                kb, _ = wait_until(lambda: (k := s.health()[1]["files"]["kb"]).get("last_error") and k, 10, 0.05)
                assert "128" in kb["last_error"] and "256" in kb["last_error"], kb
                assert kb["generation"] == 1, kb
                again = await search(c, q, mode="semantic")
                assert again.sources == first.sources and "(changed)" not in again.text
                status, health = s.health()
                assert status == 200
            assert metric_value(metrics(s), "mcp_reloads_total", file="kb", outcome="error") == 1
        finally:
            s.stop()
        assert_no_key(key, json.dumps(health), s.log_path.read_text())
    finally:
        api.stop()
