"""Issue 29 (step 17): what the second adversarial test of the release broke,
each as its user would meet it. The finding's number is in each test's
docstring; findings 1, 4, 5 and 8 are also covered in process
(mcp-server/tests/permissions.rs, the gate's property test) and 7 by the
settings' unit test."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from harness import (
    BIN, McpServer, build_fixture_kb, publish, remember_secret, run, search_text, tokens_yaml,
    wait_until, write_pgedge_kb,
)
# The first round's server with a stable token, polling every 100 ms.
from test_hardening import QUICK, live  # noqa: F401 - `live` is a fixture


def nested(depth: int) -> str:
    """A tokens.yaml whose `tokens:` is `depth` lists inside each other."""
    return "tokens: " + "[" * depth + "]" * depth + "\n"


def test_deep_yaml_never_holds_up_the_next_version(live):
    """2. A 300 KB nested tokens.yaml published just before a revoking one
    kept the revoked token answering 200 for 132 s. Now the nested one is
    refused in milliseconds, with where and why, and the revocation holds
    at once; a nested tools.yaml does not hold its reloader either."""
    s, d, stable, c = live
    doomed = "round2-doomed-token-000000000000000"
    publish(d / "tokens.yaml", tokens_yaml(stable, doomed))
    wait_until(lambda: c.accepted(doomed), QUICK)
    # 300 KB of nesting: refused with where and why, while the live
    # generation keeps serving; then the revoking version holds at once.
    publish(d / "tokens.yaml", nested(150_000))
    error, _ = wait_until(lambda: s.health()[1]["files"]["tokens"]["last_error"], QUICK)
    assert "nested more than 64 deep" in error and "line 1" in error, error
    assert c.accepted(stable) and c.accepted(doomed)
    publish(d / "tokens.yaml", tokens_yaml(stable))
    wait_until(lambda: c.call(doomed)[0] == 401, QUICK)
    assert c.accepted(stable)

    tools = d / "tools.yaml"
    publish(tools, "tools: " + "{a: " * 100_000 + "}" * 100_000 + "\n")
    publish(tools, "tools:\n  one:\n    description: d\n    statement: SELECT 1\nbuiltins:\n  tools: {count_rows: false}\n")
    wait_until(lambda: (s.health()[1]["files"]["tools"]["summary"] or "").startswith("1 tool"), QUICK)


def test_sync_tools_refuse_deep_yaml_at_once(tmp_path):
    """2. kb-init with --timeout 10s exited after 114.6 s on a nested file;
    `push` validated it as long. Both refuse it in well under a second, with
    the file's verification status (3) and the other files published."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "tokens.yaml").write_text(nested(200_000))
    (src / "session.key").write_text("ab" * 32 + "\n")
    dest = tmp_path / "dest"
    started = time.monotonic()
    p = run("kb-init", "--dest", str(dest), "--timeout", "10s", "--retries", "0",
            "--file", f"tokens.yaml=file://{src / 'tokens.yaml'}",
            "--file", f"session.key=file://{src / 'session.key'}", check=False)
    assert p.returncode == 3, p.stderr
    assert "nested more than 64 deep" in p.stderr, p.stderr
    assert time.monotonic() - started < QUICK
    assert (dest / "session.key").exists() and not (dest / "tokens.yaml").exists()

    started = time.monotonic()
    p = run("kb-sync-sidecar", "push", "--file", f"{src / 'tokens.yaml'}=file://{tmp_path / 'out.yaml'}", check=False)
    assert p.returncode != 0 and "nested more than 64 deep" in p.stderr, p.stderr
    assert time.monotonic() - started < QUICK
    assert not (tmp_path / "out.yaml").exists()


def endless_view_kb(path: Path) -> None:
    """A pgEdge-shaped kb.db whose `chunks` is a view over an endless
    recursive query: reading it never ends."""
    write_pgedge_kb(path, [{"text": "x", "title": "t", "file_path": "a.md"}])
    db = sqlite3.connect(path)
    db.executescript("""
        ALTER TABLE chunks RENAME TO real_chunks;
        CREATE VIEW chunks AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)
            SELECT n AS id, 'x' AS text, 't' AS title, 's' AS section, 'p' AS project_name,
                   '1' AS project_version, 'f' AS file_path FROM r;
    """)
    db.commit()
    db.close()


def test_a_kb_whose_chunks_never_end_is_refused_and_kb_init_ends(tmp_path):
    """3. kb-init with --timeout 10s kept running on such a kb.db, ignored
    SIGTERM and was still running after 14 minutes. Now it is refused by
    name at once (exit 3)."""
    src = tmp_path / "kb.db"
    endless_view_kb(src)
    dest = tmp_path / "dest"
    started = time.monotonic()
    p = run("kb-init", "--dest", str(dest), "--timeout", "10s", "--retries", "0",
            "--file", f"kb.db=file://{src}", check=False)
    assert p.returncode == 3, p.stderr
    assert "`chunks` is a view, not an ordinary table" in p.stderr, p.stderr
    assert time.monotonic() - started < QUICK
    assert not (dest / "kb.db").exists()


def test_kb_init_ends_at_its_timeout_and_at_sigterm(tmp_path):
    """3. kb-init ends when --timeout passes or SIGTERM comes, whatever it
    is doing: here, waiting on a source that never answers."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    held = []
    stop = threading.Event()

    def hold():  # accept, read the request, never answer
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError:
                pass

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    try:
        args = [str(BIN / "kb-init"), "--dest", str(tmp_path / "dest"), "--retries", "0",
                "--request-timeout", "300s", "--file", f"kb.db=http://127.0.0.1:{port}/kb.db"]
        started = time.monotonic()
        p = subprocess.run([*args, "--timeout", "2s"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 1, p.stderr
        assert "overall timeout" in p.stderr, p.stderr
        assert time.monotonic() - started < 2 + QUICK

        proc = subprocess.Popen([*args, "--timeout", "300s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: len(held) >= 2, QUICK)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=QUICK)
        assert proc.returncode == 1, proc.stderr.read()
        assert time.monotonic() - started < QUICK
    finally:
        stop.set()
        t.join()
        for conn in held:
            conn.close()
        listener.close()


def test_a_newer_kb_is_loaded_after_one_that_cannot_be(live):
    """3. The server's KB reload never finished on such a file, so a good
    newer KB was never loaded. Now the bad one is refused at once and the
    next one loads; the live generation serves meanwhile."""
    s, d, stable, c = live
    before = s.health()[1]["files"]["kb"]
    bad = d.parent / "bad.db"
    endless_view_kb(bad)
    publish(d / "kb.db", bad.read_bytes())
    error, _ = wait_until(lambda: s.health()[1]["files"]["kb"]["last_error"], QUICK)
    assert "`chunks` is a view" in error, error
    assert "Replication slots" in search_text(s.url, stable, "replication slots", top_n=1)

    good = d.parent / "good.db"
    write_pgedge_kb(good, [{"text": "Zeppelins are rigid airships.", "title": "Airships", "file_path": "z.md"}])
    publish(d / "kb.db", good.read_bytes())
    wait_until(lambda: s.health()[1]["files"]["kb"]["generation"] > before["generation"], QUICK * 2)
    assert s.health()[1]["files"]["kb"]["last_error"] is None
    assert "Zeppelins" in search_text(s.url, stable, "zeppelin airships", top_n=1)


def test_a_huge_chunk_is_cut_in_the_answer(tmp_path):
    """6. A 29.5 MB chunk was returned whole on every hit. Each hit carries
    at most 8 KiB of its chunk, the whole answer at most 64 KiB, and the
    answer says what was cut."""
    d = tmp_path / "data"
    d.mkdir()
    huge = "zeppelin sequence gaps " + "lorem ipsum dolor " * 140_000  # 2.5 MB
    chunks = [{"text": huge, "title": "Huge", "file_path": "huge.md"}]
    chunks += [{"text": f"sequence gaps {i} " + "filler words " * 700, "title": f"Page {i}", "file_path": f"p{i}.md"}
               for i in range(19)]
    write_pgedge_kb(d / "kb.db", chunks)
    token = "round2-cut-token-00000000000000000"
    (d / "tokens.yaml").write_text(tokens_yaml(token))
    s = McpServer(d, name="round2-cut")
    try:
        text = search_text(s.url, token, "zeppelin", top_n=1)
        assert "[passage cut: 8 KiB shown of 2.5 MB; read the source for the rest]" in text, text[-400:]
        assert len(text.encode()) < 9 * 1024, len(text.encode())
        text = search_text(s.url, token, "sequence gaps", top_n=20)
        assert len(text.encode()) <= 64 * 1024, len(text.encode())
        assert "results shown; ask for fewer (top_n)" in text, text[-400:]
    finally:
        s.stop()


def test_oauth_settings_errors_never_show_url_secrets(tmp_path):
    """7. `issuer: http://user:SECRET@idp.example.com/` and an
    `oauth_resource` with `?token=SECRET` were printed whole at start-up."""
    d = tmp_path / "data"
    build_fixture_kb(d)
    (d / "tokens.yaml").write_text(tokens_yaml("round2-oauth-token-000000000000000"))
    secret = "round2-url-secret-4f1d"
    remember_secret(secret)
    for issuer, resource in [
        (f"http://user:{secret}@idp.example.com/", "https://mcp.example.com/mcp"),
        ("https://idp.example.com/", f"https://mcp.example.com/mcp?token={secret}"),
    ]:
        # Through the environment: the harness logs a command's arguments.
        p = run("mcp-server", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(d),
                env={"MCP_OAUTH_ISSUER": issuer, "MCP_OAUTH_RESOURCE": resource}, check=False)
        assert p.returncode != 0
        assert secret not in p.stderr + p.stdout, p.stderr
        assert "idp.example.com" in p.stderr or "mcp.example.com" in p.stderr, p.stderr


def test_a_newer_kb_stops_the_load_of_an_older_one(live):
    """3. "A verification must never hold up a later version of the same
    file": a KB published while a large one is still loading stops that
    load at once and is served, instead of waiting for it to finish."""
    s, d, stable, c = live
    big = d.parent / "big.db"
    words = "vacuum analyze replication slot checkpoint wal archive standby index "
    write_pgedge_kb(big, [{"text": f"{words * 12} page {i}", "title": f"Big {i}", "file_path": f"big/{i % 500}.md"}
                          for i in range(60_000)])
    publish(d / "kb.db", big.read_bytes())
    wait_until(lambda: s.health()[1]["files"]["kb"]["loading_seconds"] is not None, QUICK)
    small = d.parent / "small.db"
    write_pgedge_kb(small, [{"text": "Zeppelins are rigid airships.", "title": "Airships", "file_path": "z.md"}])
    publish(d / "kb.db", small.read_bytes())
    wait_until(lambda: "Zeppelins" in search_text(s.url, stable, "zeppelin airships", top_n=1), QUICK)
    log = s.log_path.read_text()
    assert "the file changed while it was loading" in log, "the large KB's load was not stopped"
