"""Step 9: what an adversarial test of the release binaries broke, each as
its user would meet it. One test (or a few) per item of the issue; the item
number is in each test's docstring."""

from __future__ import annotations

import http.client as httpclient
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from harness import (
    ACCEPT, BIN, LOG_DIR, McpServer, KeepAlive, add_token, build_fixture_kb, free_port, http, publish,
    remember_secret, rpc, run, sha256_hex, tokens_yaml, wait_until,
)

QUICK = 5.0


def quietly(check):
    """`check` as a predicate that is false while it raises (a server not
    listening yet, a connection refused on purpose)."""
    def run_check():
        try:
            return check()
        except OSError:
            return False
    return run_check


def metric(s: McpServer, name: str, **labels) -> float | None:
    """One sample of /metrics, or None if it is not there."""
    _, _, body = http("GET", f"{s.base}/metrics")
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in body.decode().splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if m and m[1] == name and (m[2] or "") == want:
            return float(m[3])
    return None


def last_error(s: McpServer, f: str) -> str | None:
    return s.health()[1]["files"][f]["last_error"]


@pytest.fixture
def live(tmp_path):
    d = tmp_path / "data"
    build_fixture_kb(d)
    stable = "hardening-stable-token-000000000"
    (d / "tokens.yaml").write_text(tokens_yaml(stable))
    s = McpServer(d, name="hardening", extra=["--poll-interval", "100ms"])
    c = KeepAlive(s.port)
    yield s, d, stable, c
    c.close()
    s.stop()


def test_a_device_or_fifo_never_wedges_the_reloader_or_the_exit(live):
    """1. kb.db -> /dev/zero and a FIFO as users.yaml are refused at once;
    a token revocation still reloads; SIGTERM still exits."""
    s, d, stable, c = live
    (d / "kb.db").unlink()
    os.symlink("/dev/zero", d / "kb.db")
    os.mkfifo(d / "users.yaml")
    wait_until(lambda: "character device" in (last_error(s, "kb") or ""), QUICK)
    wait_until(lambda: "FIFO" in (last_error(s, "users") or ""), QUICK)
    # The last good KB keeps serving.
    status, _, body = rpc(s.url, "tools/call", {"name": "search_knowledgebase", "arguments": {"query": "vacuum"}}, token=stable)
    assert status == 200 and not body["result"].get("isError"), body
    # Revoke the stable token, add another: both take effect.
    new = "hardening-new-token-111111111111"
    publish(d / "tokens.yaml", tokens_yaml(new))
    wait_until(lambda: c.accepted(new), QUICK)
    assert not c.accepted(stable)
    # A FIFO as tokens.yaml is refused too, and the live tokens keep working.
    (d / "tokens.yaml").unlink()
    os.mkfifo(d / "tokens.yaml")
    wait_until(lambda: "FIFO" in (last_error(s, "tokens") or ""), QUICK)
    assert c.accepted(new)
    assert metric(s, "mcp_file_load_error", file="tokens") == 1
    started = time.monotonic()
    assert s.stop() == 0
    assert time.monotonic() - started < 8, "SIGTERM must end the process"


def test_errors_about_data_files_never_show_the_value(live):
    """2. A secret in the wrong place of tokens.yaml or users.yaml is named
    by line and column on /health and in the logs, never quoted."""
    s, d, stable, c = live
    cases = [
        ("tokens.yaml", "tokens", "tokens: {t1: PLAINTEXT-TOKEN-AAAAAAAAAAAAAAAAAA}\n", "line 1 column 14"),
        ("tokens.yaml", "tokens", "tokens:\n  - PLAINTEXT-TOKEN-BBBBBBBBBBBBBBBBBB\n", "line 2 column 5"),
        ("tokens.yaml", "tokens", f"tokens:\n  t1:\n    hash: {sha256_hex(stable)}\n    expires_at: PLAINTEXT-TOKEN-CCCCCCCCCCCCCCCC\n", "line 4 column 17"),
        ("users.yaml", "users", "users:\n  alice:\n    password_hash: PLAINTEXT-PASSWORD-DDDDDDDDDDDD\n", "line 3 column 20"),
        ("users.yaml", "users", "users:\n  alice:\n    enabled: PLAINTEXT-PASSWORD-EEEEEEEEEEEE\n", "line 3 column 14"),
    ]
    for name, f, text, where in cases:
        secret = re.search(r"PLAINTEXT-[A-Z]+-[A-Z]+", text)[0]
        remember_secret(secret)  # the last test of the suite checks every log for it
        publish(d / name, text)
        err = wait_until(lambda: last_error(s, f), QUICK)[0]
        assert where in err and err.startswith(f"{name}: "), err
        _, _, body = http("GET", f"{s.base}/health")
        assert secret.encode() not in body
        assert secret not in s.log_path.read_text()
        publish(d / name, "tokens: {}\n" if f == "tokens" else "users: {}\n")
        wait_until(lambda: last_error(s, f) is None, QUICK)
        publish(d / "tokens.yaml", tokens_yaml(stable))
        wait_until(lambda: c.accepted(stable), QUICK)


def test_an_error_clears_when_the_file_is_good_again(live):
    """3. A broken file replaced by a copy of the live version clears the error."""
    s, d, stable, c = live
    good = (d / "tokens.yaml").read_text()
    publish(d / "tokens.yaml", "tokens: [unclosed\n")
    wait_until(lambda: last_error(s, "tokens"), QUICK)
    assert metric(s, "mcp_file_load_error", file="tokens") == 1
    assert s.health()[1]["last_reload_error"]
    publish(d / "tokens.yaml", good)
    wait_until(lambda: last_error(s, "tokens") is None, QUICK)
    body = s.health()[1]
    assert body["last_reload_error"] is None
    assert body["files"]["tokens"]["generation"] == 1, "the same content is not a new generation"
    assert metric(s, "mcp_file_load_error", file="tokens") == 0


def test_an_empty_tokens_file_does_not_lock_everyone_out(live):
    """4. A truncated tokens.yaml is refused; `tokens: {}` is taken at its
    word, and readiness and a metric say no credential is loaded."""
    s, d, stable, c = live
    for truncated in ["", "# nothing\n", "tokens:\n"]:
        publish(d / "tokens.yaml", truncated)
        wait_until(lambda: "tokens: {}" in (last_error(s, "tokens") or ""), QUICK)
        assert c.accepted(stable), "the previous tokens keep serving"
        assert s.health()[0] == 200
        publish(d / "tokens.yaml", tokens_yaml(stable))
        wait_until(lambda: last_error(s, "tokens") is None, QUICK)
    assert metric(s, "mcp_credentials_loaded", kind="tokens") == 1
    publish(d / "tokens.yaml", "tokens: {}\n")
    wait_until(lambda: not c.accepted(stable), QUICK)
    status, body = s.health()
    assert status == 503 and body["status"] == "no_credentials", body
    assert body["auth"]["can_authenticate"] is False
    assert metric(s, "mcp_credentials_loaded", kind="tokens") == 0
    publish(d / "tokens.yaml", tokens_yaml(stable))
    wait_until(lambda: s.health()[0] == 200, QUICK)


def test_kb_init_never_writes_through_a_symlinked_subdirectory(tmp_path):
    """5. dest/sub -> ../outside: exit 2, nothing written outside."""
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    os.symlink("../outside", dest / "sub")
    src = tmp_path / "evil.yaml"
    src.write_text(tokens_yaml("symlink-escape-token-0000000000"))
    p = run("kb-init", "--dest", str(dest), "--file", f"sub/evil.yaml=file://{src}", check=False)
    assert p.returncode == 2, p.stderr
    assert "outside the destination" in p.stderr
    assert list(outside.iterdir()) == []


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_connection_deadlines_and_limits(tmp_path):
    """6. Slow headers are cut at the header timeout, idle keep-alive lives
    to the idle timeout, and one peer's connections are bounded."""
    d = tmp_path / "data"
    token = add_token(build_fixture_kb(d) / "tokens.yaml")
    s = McpServer(d, name="deadlines", extra=["--header-timeout", "1s", "--idle-timeout", "3s", "--max-connections-per-ip", "4"])
    try:
        # Slow head: cut after about a second, not the 3 s idle timeout.
        sock = socket.create_connection(("127.0.0.1", s.port))
        started = time.monotonic()
        sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: x\r\n")
        assert closed_by_server(sock, 5)
        assert 0.8 < time.monotonic() - started < 2.5
        sock.close()
        # Idle after an answer: still open at 2 s (longer than the header
        # timeout), closed by 3 s.
        c = KeepAlive(s.port)
        assert c.accepted(token)
        time.sleep(2)
        assert c.accepted(token), "an idle keep-alive connection outlives the header timeout"
        idle_from = time.monotonic()
        c.conn.sock.settimeout(6)
        assert c.conn.sock.recv(1) == b""
        assert 2.5 < time.monotonic() - idle_from < 4.5
        c.close()
        # Four connections from one IP; the fifth is closed on arrival.
        held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(4)]
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", s.port))
        assert closed_by_server(extra, 2)
        for h in held:
            h.close()
        wait_until(quietly(lambda: KeepAlive(s.port).accepted(token)), QUICK)
        assert metric(s, "mcp_connections_refused_total", reason="per_ip") >= 1
    finally:
        s.stop()


def test_sidecar_listener_has_deadlines(tmp_path):
    """6. The sidecar's /healthz listener cuts a slow head (10 s) and bounds connections."""
    src = tmp_path / "tokens.yaml"
    src.write_text(tokens_yaml("sidecar-deadline-token-00000000"))
    port = free_port()
    log = open(LOG_DIR / f"sidecar-deadlines-{port}.log", "w")
    p = subprocess.Popen([str(BIN / "kb-sync-sidecar"), "--dest", str(tmp_path / "d"), "--file", f"tokens.yaml=file://{src}",
                          "--interval", "1s", "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(quietly(lambda: http("GET", f"http://127.0.0.1:{port}/readyz")[0] == 200), 20, 0.1)
        sock = socket.create_connection(("127.0.0.1", port))
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert closed_by_server(sock, 15)
        assert 9 < time.monotonic() - started < 13
        sock.close()
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", port))
        assert closed_by_server(extra, 2)
        for h in held:
            h.close()
        wait_until(quietly(lambda: http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200), QUICK, 0.1)
    finally:
        p.terminate()
        p.wait(10)
        log.close()


def rchar(pid: int) -> int:
    return int(re.search(r"^rchar: (\d+)$", Path(f"/proc/{pid}/io").read_text(), re.M)[1])


def vm_rss_kb(pid: int) -> int:
    return int(re.search(r"^VmRSS:\s+(\d+) kB$", Path(f"/proc/{pid}/status").read_text(), re.M)[1])


def test_large_auth_files_cost_nothing_while_unchanged_and_memory_returns(tmp_path):
    """7. A large unchanged tokens.yaml is not re-read at every poll; a file
    over the size limit or a device is refused; memory returns after a
    smaller file loads; a broken file is warned about once."""
    d = tmp_path / "data"
    build_fixture_kb(d)
    stable = "large-file-stable-token-00000000"
    lines = ["tokens:"] + [f"  t{i}:\n    hash: {sha256_hex(f'filler-{i}')}\n    annotation: filler" for i in range(210_000)]
    lines += [f"  stable:\n    hash: {sha256_hex(stable)}"]
    remember_secret(stable)
    big = "\n".join(lines) + "\n"
    assert 20 << 20 < len(big) < 32 << 20
    (d / "tokens.yaml").write_text(big)
    s = McpServer(d, name="large-files", extra=["--poll-interval", "50ms"], wait=False)
    try:
        s.wait_ready(60)
        c = KeepAlive(s.port)
        assert c.accepted(stable)
        rss_big = vm_rss_kb(s.proc.pid)
        before = rchar(s.proc.pid)
        time.sleep(2)  # 40 polls
        read = rchar(s.proc.pid) - before
        assert read < (1 << 20), f"{read} bytes read while nothing changed"
        # Over the limit, or endless: refused, previous tokens serve.
        publish(d / "tokens.yaml", big + "#" * (33 << 20) + "\n")
        wait_until(lambda: "size limit" in (last_error(s, "tokens") or ""), QUICK)
        (d / "tokens.yaml").unlink()
        os.symlink("/dev/zero", d / "tokens.yaml")
        wait_until(lambda: "character device" in (last_error(s, "tokens") or ""), QUICK)
        assert c.accepted(stable)
        # A small file: the memory of the large one goes back to the system.
        (d / "tokens.yaml").unlink()
        publish(d / "tokens.yaml", tokens_yaml(stable))
        wait_until(lambda: s.health()[1]["auth"]["tokens"] == 1, QUICK)
        time.sleep(0.3)
        rss_small = vm_rss_kb(s.proc.pid)
        assert rss_small < rss_big - 20_000, (rss_big, rss_small)
        # A broken file is warned about once, however often it is looked at.
        publish(d / "tokens.yaml", "tokens: [broken\n")
        wait_until(lambda: last_error(s, "tokens"), QUICK)
        time.sleep(1)  # 20 more polls
        warnings = [json.loads(l) for l in s.log_path.read_text().splitlines() if '"not loaded' in l]
        broken = [w for w in warnings if w.get("file") == "tokens" and "line 1" in w.get("error", "")]
        assert len(broken) == 1, broken
        c.close()
    finally:
        s.stop()


def raw_post(port: int, body: bytes, headers: list[tuple[str, str]]) -> tuple[int, dict | None]:
    conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", "/mcp")
    for k, v in [("Content-Type", "application/json"), ("Accept", ACCEPT), ("Content-Length", str(len(body)))] + headers:
        conn.putheader(k, v)
    conn.endheaders(body)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, (json.loads(data) if data.startswith(b"{") else None)


def test_json_rpc_errors_are_json_rpc(server):
    """8. Malformed JSON, a batch, no method: -32700 / -32600 with 400;
    tools/call with params of the wrong type: -32602."""
    s, token, _ = server
    auth = [("Authorization", f"Bearer {token}")]
    for body, status, code, id_ in [
        (b"not json", 400, -32700, None),
        (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', 400, -32600, None),
        (b'{"jsonrpc":"2.0","id":7}', 400, -32600, 7),
        (b'{"jsonrpc":"1.0","id":8,"method":"ping"}', 400, -32600, 8),
        (b"3", 400, -32600, None),
        (b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"search_knowledgebase","arguments":"hi"}}', 200, -32602, 9),
        (b'{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":123}}', 200, -32602, "x"),
        (b'{"jsonrpc":"2.0","id":10,"method":"resources/read","params":{"uri":5}}', 200, -32602, 10),
        # Found by the fuzz test: JSON the guard can read but rmcp cannot decode.
        (b'{"jsonrpc":"2.0","id":11,"method":"tools/list","params":{"cursor":"\\ud800"}}', 400, -32700, None),
        (b'{"jsonrpc":"2.0","id":12,"method":"tools/list","x":"\xff"}', 400, -32700, None),
        (b'{"jsonrpc":"2.0","id":13,"method":"tools/list","params":{"_meta":{"progressToken":1e999}}}', 400, -32700, None),
    ]:
        got, answer = raw_post(s.port, body, auth)
        assert got == status, (body, got, answer)
        assert answer["jsonrpc"] == "2.0" and answer["id"] == id_, answer
        assert answer["error"]["code"] == code, (body, answer)
    # Still a real method-not-found for a method that does not exist.
    got, answer = raw_post(s.port, b'{"jsonrpc":"2.0","id":1,"method":"nosuch"}', auth)
    assert got == 200 and answer["error"]["code"] == -32601


def test_bcrypt_passwords_over_72_bytes(tmp_path, server):
    """9. `user add` refuses an over-long bcrypt password; a login with the
    first 72 bytes plus more never succeeds."""
    s, _, d = server
    long = "correct-horse-battery-staple-" * 3
    remember_secret(long)
    p = run("mcp-server", "user", "add", "--file", str(d / "users.yaml"), "--username", "alice", env={"MCP_PASSWORD": long}, check=False)
    assert p.returncode != 0 and "72" in p.stderr and "argon2id" in p.stderr
    run("mcp-server", "user", "add", "--file", str(d / "users.yaml"), "--username", "alice", "--hash", "argon2id", env={"MCP_PASSWORD": long})
    run("mcp-server", "user", "add", "--file", str(d / "users.yaml"), "--username", "bob", env={"MCP_PASSWORD": long[:72]})
    (d / "session.key").write_text(os.urandom(32).hex() + "\n")
    wait_until(lambda: s.health()[1]["auth"]["users"] == 2 and s.health()[1]["auth"]["session_keys"] == 1, QUICK)

    def login(user, password):
        _, _, body = rpc(s.url, "tools/call", {"name": "authenticate_user", "arguments": {"username": user, "password": password}})
        return json.loads(body["result"]["content"][0]["text"])["success"]

    assert login("alice", long)
    assert not login("alice", long[:72])
    assert login("bob", long[:72])
    assert not login("bob", long[:72] + "anything")
    assert not login("bob", long)


def test_two_authorization_headers_are_refused(server):
    """10. Two Authorization headers: 400, whichever comes first."""
    s, token, _ = server
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    for headers in ([("Authorization", f"Bearer {token}"), ("Authorization", "Bearer wrong")],
                    [("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {token}")]):
        status, answer = raw_post(s.port, body, headers)
        assert status == 400, (status, answer)
    assert raw_post(s.port, body, [("Authorization", f"Bearer {token}")])[0] == 200


def test_failed_auth_limit_holds_under_concurrency(tmp_path):
    """12. Sixteen threads of wrong tokens at once, at a limit of 10:
    exactly 10 are answered 401, every other 429."""
    d = tmp_path / "data"
    token = add_token(build_fixture_kb(d) / "tokens.yaml")
    s = McpServer(d, name="limit", auth_limit=10)
    try:
        statuses: list[int] = []
        lock = threading.Lock()
        barrier = threading.Barrier(16)

        def guess(n):
            c = KeepAlive(s.port)
            c.conn.connect()
            barrier.wait()
            for i in range(3):
                st, _ = c.call(f"wrong-guess-{n}-{i}-00000000000000")
                with lock:
                    statuses.append(st)
            c.close()

        threads = [threading.Thread(target=guess, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses.count(401) == 10, sorted(statuses)
        assert statuses.count(429) == 48 - 10, sorted(statuses)
        assert KeepAlive(s.port).call(token)[0] == 429, "a good token from that IP waits too"
    finally:
        s.stop()


def test_a_log_file_in_the_watched_directory_does_not_loop(tmp_path):
    """13. RUST_LOG=trace with the log file inside the data directory: the
    log does not feed itself."""
    d = tmp_path / "data"
    token = add_token(build_fixture_kb(d) / "tokens.yaml")
    port = free_port()
    log_path = d / "server.log"
    with open(log_path, "w") as log:
        p = subprocess.Popen([str(BIN / "mcp-server"), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(d),
                              "--log-format", "json"], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "trace"})
    try:
        wait_until(quietly(lambda: http("GET", f"http://127.0.0.1:{port}/health")[0] == 200), 20, 0.1)
        size = log_path.stat().st_size
        time.sleep(3)
        grown = log_path.stat().st_size - size
        assert grown < 200_000, f"the log grew {grown} bytes in 3 s with no traffic"
        # Reloads still work.
        new = "trace-log-new-token-00000000000"
        publish(d / "tokens.yaml", tokens_yaml(new))
        wait_until(quietly(lambda: KeepAlive(port).accepted(new)), QUICK)
    finally:
        p.terminate()
        p.wait(10)
        shutil.copy(log_path, LOG_DIR / f"trace-loop-{port}.log")


def test_kb_init_unwritable_destination_exits_2_at_once(tmp_path):
    """14. A destination the process cannot write: exit 2 at once, naming
    the path and the uid (it is not a fetch failure to retry)."""
    base = Path(tempfile.mkdtemp(prefix="kb-init-denied-"))
    try:
        base.chmod(0o755)
        dest = base / "data"
        dest.mkdir(mode=0o755)  # owned by root; the run is as nobody
        src = base / "tokens.yaml"
        src.write_text(tokens_yaml("denied-token-000000000000000000"))
        src.chmod(0o644)
        binary = base / "kb-init"
        shutil.copy(BIN / "kb-init", binary)
        binary.chmod(0o755)
        started = time.monotonic()
        p = subprocess.run(["runuser", "-u", "nobody", "--", str(binary), "--dest", str(dest), "--file", f"tokens.yaml=file://{src}"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2, p.stderr
        assert str(dest) in p.stderr and "uid 65534" in p.stderr, p.stderr
        assert time.monotonic() - started < 5, "no retries for a permanent error"
    finally:
        shutil.rmtree(base)
