#!/usr/bin/env python3
"""A stateless Python MCP server that searches kb.db with SQLite FTS5: the
baseline of bench/run.py's `python` group.

    .venv/bin/python bench/py_fts5_server.py --kb KB.db --port 8765

What a team would write with the official Python SDK (`mcp` 2.x, pinned in
tests/requirements.txt: `MCPServer`, FastMCP's new name) to serve a
`search_knowledgebase` tool with pgEdge's arguments (query, project_names,
project_versions, top_n, list_products): streamable HTTP on 127.0.0.1,
stateless (no session, no `initialize` needed), plain JSON replies, and
uvicorn as the SDK runs it. The tool is a plain function, so the SDK runs it
on its worker threads; each thread keeps its own read-only connection.

It runs the same SQLite queries as mcp-server's FTS5 engine
(fleet-kb/src/search.rs): FTS5 BM25 with column weights title 8, section 4,
text 1 over `chunks_fts`; every word a quoted term, stop words dropped unless
nothing else remains; chunks holding every term first, then every term that
occurs at all, then any of them; the winners' rows read last. The reply
text has the same layout. It needs a KB with the FTS index (as `kb build`
and `gen-kb` write); `GET /health` answers 200 for the bench's readiness
poll.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import threading

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.requests import Request
from starlette.responses import JSONResponse

DEFAULT_TOP_N = 5
MAX_TOP_N = 20
MAX_TERMS = 24
BM25 = "bm25(f.chunks_fts, 8.0, 4.0, 1.0)"
STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from how i if in is it its me my not of on or should so that "
    "the their then there these this to use was we what when where which who why will with you".split()
)
WORD = re.compile(r"\w+")  # letters, digits and '_', as the Rust engine splits words


def fts_terms(text: str) -> list[str]:
    """Quoted FTS5 terms of free text (no FTS5 syntax can take effect)."""
    words = [w.lower() for w in WORD.findall(text)]
    content = [w for w in words if w not in STOP_WORDS] or words
    seen: dict[str, None] = dict.fromkeys(content)
    return [f'"{w}"' for w in list(seen)[:MAX_TERMS]]


class Kb:
    """One kb.db, a read-only connection per thread."""

    def __init__(self, path: str) -> None:
        self.uri = f"file:{path}?mode=ro"
        self.local = threading.local()
        has_fts = self.conn().execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'chunks_fts'").fetchone()
        if not has_fts:
            raise SystemExit(f"{path}: no chunks_fts table (build the KB with `mcp-server kb build` or gen-kb)")

    def conn(self) -> sqlite3.Connection:
        c = getattr(self.local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.uri, uri=True, check_same_thread=False)
            self.local.conn = c
        return c

    def rank(self, expr: str, filters: list[tuple[str, list[str]]], top_n: int) -> list[tuple[int, float]]:
        if filters:
            sql = (f"SELECT f.rowid, {BM25} AS score FROM chunks_fts AS f JOIN chunks AS c ON c.id = f.rowid "
                   "WHERE f.chunks_fts MATCH ?")
        else:
            sql = f"SELECT f.rowid, {BM25} AS score FROM chunks_fts AS f WHERE f.chunks_fts MATCH ?"
        args: list[str] = [expr]
        for column, values in filters:
            sql += f" AND c.{column} IN ({','.join('?' * len(values))})"
            args += values
        sql += f" ORDER BY score LIMIT {int(top_n)}"
        return [(rowid, -score) for rowid, score in self.conn().execute(sql, args)]

    def search(self, query: str, names: list[str], versions: list[str], top_n: int) -> list[dict]:
        terms = fts_terms(query)
        if not terms:
            return []
        filters = [(c, [v for v in vals if v]) for c, vals in (("project_name", names), ("project_version", versions))]
        filters = [(c, v) for c, v in filters if v]
        ranked = self.rank(" AND ".join(terms), filters, top_n)

        def fill(expr: str) -> None:
            seen = {rowid for rowid, _ in ranked}
            ranked.extend(r for r in self.rank(expr, filters, top_n) if r[0] not in seen)
            del ranked[top_n:]

        if len(ranked) < top_n and len(terms) > 1:
            probe = "SELECT 1 FROM chunks_fts AS f WHERE f.chunks_fts MATCH ? LIMIT 1"
            present = [t for t in terms if self.conn().execute(probe, [t]).fetchone()]
            if 0 < len(present) < len(terms):
                fill(" AND ".join(present))
            if len(ranked) < top_n and len(present) > 1:
                fill(" OR ".join(present))
        hits = []
        for rowid, score in ranked:
            row = self.conn().execute(
                "SELECT coalesce(title,''), coalesce(section,''), project_name, project_version, "
                "coalesce(file_path,''), text FROM chunks WHERE id = ?", [rowid]).fetchone()
            if row:
                keys = ("title", "section", "project_name", "project_version", "file_path", "text")
                hits.append({**dict(zip(keys, row)), "score": score})
        return hits

    def products(self) -> list[tuple[str, str, int]]:
        return self.conn().execute(
            "SELECT project_name, project_version, count(*) FROM chunks "
            "GROUP BY project_name, project_version ORDER BY project_name, project_version").fetchall()


def make_server(kb: Kb) -> MCPServer:
    server = MCPServer("py-fts5-baseline", log_level="WARNING")

    @server.tool(
        name="search_knowledgebase",
        description="Search the documentation knowledge base (full-text, BM25-ranked). Filter with "
                    "project_names / project_versions; set list_products=true to see which products and "
                    "versions are available.",
        structured_output=False,
    )
    def search_knowledgebase(query: str | None = None, project_names: list[str] | None = None,
                             project_versions: list[str] | None = None, top_n: int | None = None,
                             list_products: bool | None = None) -> str:
        if list_products:
            products = kb.products()
            return f"{len(products)} products in the knowledge base:\n" + "".join(
                f"- {name} {version} ({chunks} chunks)\n" for name, version, chunks in products)
        if not query or not query.strip():
            raise ToolError("`query` is required unless list_products is true.")
        if top_n is not None and not 1 <= top_n <= MAX_TOP_N:
            raise ToolError(f"top_n must be between 1 and {MAX_TOP_N}.")
        hits = kb.search(query, project_names or [], project_versions or [], top_n or DEFAULT_TOP_N)
        if not hits:
            return f"No results for {json.dumps(query, ensure_ascii=False)}."
        out = [f"{len(hits)} results for {json.dumps(query, ensure_ascii=False)}:\n"]
        for i, h in enumerate(hits, 1):
            heading = f"{h['title']} › {h['section']}" if h["section"] else h["title"]
            out.append(f"\n## {i}. {heading}\nProduct: {h['project_name']} {h['project_version']} | "
                       f"Source: {h['file_path']} | Score: {h['score']:.2f}\n\n{h['text']}\n")
        return "".join(out)

    @server.custom_route("/health", methods=["GET"])
    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kb", required=True, help="kb.db with an FTS5 index")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    make_server(Kb(args.kb)).run("streamable-http", host=args.host, port=args.port,
                                 json_response=True, stateless_http=True)


if __name__ == "__main__":
    main()
