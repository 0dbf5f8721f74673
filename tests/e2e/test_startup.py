"""An MCP request that reaches an instance while it is still loading its
files waits for them instead of failing.

Found by the container tests: during a rolling `docker compose restart`,
nginx (passive checks only) sent a search to a restarted instance 4 ms after
its port opened, before its KB had loaded, and the client got a tool error
("the knowledge base is not loaded yet"). nginx cannot retry that: it is a
200, and a POST that reached an instance is never replayed. Here the window
is made wide on purpose: a pgEdge-format KB (no search index) of 20,000
chunks, indexed at load, takes seconds (longer under the test command's
load: the clients wait up to the server's own 60 s request timeout).
"""

import random
import sqlite3
import threading
import time

from harness import PGEDGE_SCHEMA, McpServer, http, rpc, sha256_hex

TOKEN = "startup-window-token-0123456789abcdef"


def big_pgedge_kb(path):
    db = sqlite3.connect(path)
    db.executescript(PGEDGE_SCHEMA)
    rnd = random.Random(7)
    words = [f"w{i}" for i in range(5000)]
    rows = [(" ".join(rnd.choice(words) for _ in range(80)), "T", "S", "bulk", "1", f"f{i}.md") for i in range(20000)]
    rows.append(("The startup window marker sentence.", "Marker", "S", "bulk", "1", "marker.md"))
    db.executemany("INSERT INTO chunks(text,title,section,project_name,project_version,file_path) VALUES (?,?,?,?,?,?)", rows)
    db.commit()
    db.close()


def test_requests_during_start_up_wait_for_the_files(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    big_pgedge_kb(d / "kb.db")
    (d / "tokens.yaml").write_text(f"tokens:\n  t:\n    hash: {sha256_hex(TOKEN)}\n")
    s = McpServer(d, name="startup", wait=False)
    try:
        # As soon as the port answers, while /health still says "starting".
        deadline = time.time() + 30
        status = None
        while time.time() < deadline:
            status = s.status()
            if status is not None:
                break
            time.sleep(0.005)
        assert status is not None and status["status"] == "starting", status
        answers = []

        def call():
            sent = time.monotonic()
            answers.append((rpc(s.url, "tools/call", {"name": "search_knowledgebase", "arguments": {"query": "startup window marker"}}, token=TOKEN, timeout=70),
                            time.monotonic() - sent))

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        assert s.status()["status"] == "starting", "the KB loaded too fast for this test to mean anything"
        for t in threads:
            t.join(90)
        assert len(answers) == 4
        for (code, _, body), waited in answers:
            assert code == 200, (code, body)
            assert not body["result"].get("isError"), body
            assert "startup window marker sentence" in body["result"]["content"][0]["text"]
        print(f"\nrequests sent while starting waited {max(w for _, w in answers):.2f} s for the KB, then succeeded")
        assert http("GET", s.base + "/health")[0] == 200
    finally:
        s.stop()
