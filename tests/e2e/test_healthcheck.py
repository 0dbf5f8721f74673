"""`mcp-server healthcheck` and `kb-sync-sidecar healthcheck` against the
real processes on 127.0.0.1: exit 0 exactly while the process is healthy
(the server ready, the sidecar's loop alive and every file published), 1
otherwise, 2 for a usage error. compose/docker-compose.yml runs them as the
containers' health checks (tests/e2e/test_containers_compose.py)."""

import signal
import subprocess
import time

from harness import BIN, McpServer, build_fixture_kb, free_port, wait_until
from sync_servers import FileServer, Sidecar


def healthcheck(binary: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / binary), "healthcheck", *args], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})


def test_server_healthcheck_follows_readiness_and_drain(data_dir):
    d, _ = data_dir
    s = McpServer(d, drain="3s")
    env = {"MCP_LISTEN": f"0.0.0.0:{s.port}"}  # as in a container: the serve address
    try:
        ok = healthcheck("mcp-server", env=env)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == f"healthy: GET http://127.0.0.1:{s.port}/health answered 200"
        s.proc.send_signal(signal.SIGTERM)
        draining = wait_until(lambda: (p := healthcheck("mcp-server", env=env)).returncode == 1 and p, 5, 0.05)[0]
        assert "answered 503" in draining.stderr and "draining" in draining.stderr, draining.stderr
        # Still alive while draining: /livez answers, so a liveness check passes.
        assert healthcheck("mcp-server", "--path", "/livez", env=env).returncode == 0
        assert s.proc.wait(15) == 0
        gone = healthcheck("mcp-server", "--listen", f"127.0.0.1:{s.port}", "--timeout", "1s")
        assert gone.returncode == 1 and "connect" in gone.stderr, gone.stderr
    finally:
        s.stop()


def test_server_healthcheck_is_unhealthy_without_credentials(tmp_path):
    d = build_fixture_kb(tmp_path / "data")
    (d / "tokens.yaml").write_text("tokens: {}\n")
    s = McpServer(d, wait=False)
    try:
        wait_until(lambda: s.status() is not None, 20, 0.05)
        p = healthcheck("mcp-server", "--listen", f"127.0.0.1:{s.port}")
        assert p.returncode == 1 and "answered 503" in p.stderr and "no_credentials" in p.stderr, p.stderr
    finally:
        s.stop()


def test_healthcheck_usage_errors_are_exit_2():
    assert healthcheck("mcp-server", "--path", "health").returncode == 2
    assert healthcheck("mcp-server", "--listen", "not an address").returncode == 2
    assert healthcheck("kb-sync-sidecar").returncode == 2  # --listen (or KB_LISTEN) is required


def test_sidecar_healthcheck_needs_every_file_published(tmp_path):
    fs = FileServer()
    sidecar = Sidecar("--dest", str(tmp_path / "dest"), "--file", f"notes.txt={fs.base}/notes.txt", "--interval", "200ms")
    env = {"KB_LISTEN": f"0.0.0.0:{sidecar.port}"}
    try:
        # The source has no file yet: the loop is alive (/healthz) but
        # nothing is published (/readyz 503).
        time.sleep(0.5)
        p = healthcheck("kb-sync-sidecar", env=env)
        assert p.returncode == 1, p.stdout + p.stderr
        assert f"GET http://127.0.0.1:{sidecar.port}/healthz answered 200" in p.stdout
        assert "/readyz answered 503" in p.stderr
        fs.files["/notes.txt"] = b"hello\n"
        ok, _ = wait_until(lambda: healthcheck("kb-sync-sidecar", env=env).returncode == 0, 10, 0.1)
        assert ok
        only_live = healthcheck("kb-sync-sidecar", "--listen", f"127.0.0.1:{sidecar.port}", "--path", "/healthz")
        assert only_live.returncode == 0 and "/readyz" not in only_live.stdout
    finally:
        sidecar.stop()
        fs.stop()
    closed = healthcheck("kb-sync-sidecar", "--listen", f"127.0.0.1:{free_port()}", "--timeout", "1s")
    assert closed.returncode == 1
