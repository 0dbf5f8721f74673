"""Step 5: Prometheus metrics, structured request logs, graceful shutdown behind nginx."""

import json
import signal
import threading
import time

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

from harness import KeepAlive, McpServer, Nginx, http, make_data_dir, publish, rpc, search_text, tokens_yaml, wait_until


OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def families(base: str) -> tuple[dict, dict]:
    """/metrics read by both real parsers, each asking for its own format as
    a scraper does: {family name: type} for the Prometheus text parser and
    for the OpenMetrics parser."""
    status, headers, body = http("GET", f"{base}/metrics")
    assert status == 200 and headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8", headers
    prometheus = {f.name: f.type for f in parse_prometheus(body.decode())}
    status, headers, body = http("GET", f"{base}/metrics", headers={"Accept": OPENMETRICS_ACCEPT})
    assert status == 200 and headers["content-type"].startswith("application/openmetrics-text"), headers
    openmetrics = {f.name: f.type for f in parse_openmetrics(body.decode())}
    return prometheus, openmetrics


def scrape(server) -> dict:
    """All samples as {(name, frozenset(labels)): value}, parsed by the real Prometheus parser."""
    status, headers, body = http("GET", f"{server.base}/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    samples = {}
    for family in parse_prometheus(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def test_metrics_formats_are_labelled_and_typed_on_both_binaries(data_dir, tmp_path):
    """Both parsers read /metrics of the server and of the sidecar with
    every counter typed as a counter."""
    from sync_servers import Sidecar

    d, token = data_dir
    s = McpServer(d, name="metrics-formats")
    try:
        rpc(s.url, "tools/list", {}, token=token)
        prometheus, openmetrics = families(s.base)
        assert prometheus["mcp_requests"] == "counter" and openmetrics["mcp_requests"] == "counter"
        assert "untyped" not in prometheus.values() and "unknown" not in prometheus.values(), prometheus
        assert prometheus == openmetrics
    finally:
        s.stop()
    src = tmp_path / "tokens.yaml"
    src.write_text(tokens_yaml("metrics-format-token-0000000000"))
    car = Sidecar("--dest", str(tmp_path / "dest"), "--file", f"tokens.yaml=file://{src}", "--interval", "1s")
    try:
        wait_until(lambda: car.get("/readyz")[0] == 200, 20, 0.1)
        prometheus, openmetrics = families(car.base)
        assert prometheus["kb_sync_syncs"] == "counter" and openmetrics["kb_sync_syncs"] == "counter"
        assert "untyped" not in prometheus.values() and "unknown" not in prometheus.values(), prometheus
        assert prometheus == openmetrics
    finally:
        car.stop()


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_move_with_requests_failures_and_reloads(data_dir):
    d, token = data_dir
    s = McpServer(d, name="metrics", auth_limit=3)
    try:
        before = scrape(s)
        assert value(before, "mcp_build_info", version="0.1.0", instance="metrics") == 1
        assert value(before, "mcp_kb_chunks") > 0 and value(before, "mcp_kb_generation") == 1
        assert value(before, "mcp_file_generation", file="tokens") == 1
        for _ in range(3):
            search_text(s.url, token, "vacuum")
        rpc(s.url, "tools/call", {"name": "search_knowledgebase", "arguments": {"top_n": 99, "query": "x"}}, token=token)
        rpc(s.url, "tools/list", {}, token=token)
        rpc(s.url, "no/such/method", {}, token=token)
        after = scrape(s)
        ok = ("mcp_requests_total", dict(method="tools/call", tool="search_knowledgebase", outcome="ok"))
        assert value(after, ok[0], **ok[1]) - value(before, ok[0], **ok[1]) == 3
        assert value(after, "mcp_requests_total", method="tools/call", tool="search_knowledgebase", outcome="tool_error") == 1
        assert value(after, "mcp_requests_total", method="tools/list", tool="", outcome="ok") == 1
        assert value(after, "mcp_requests_total", method="other", tool="", outcome="rpc_error") == 1
        assert value(after, "mcp_request_duration_seconds_count", method="tools/call") >= 4
        assert value(after, "mcp_requests_in_flight") == 0
        # Failures: two bad tokens, one missing; then the limiter trips.
        for bad in ["nope-1", "nope-2"]:
            assert rpc(s.url, "tools/list", {}, token=bad)[0] == 401
        assert rpc(s.url, "tools/list", {})[0] == 401
        assert rpc(s.url, "tools/list", {}, token="nope-3")[0] == 401
        assert rpc(s.url, "tools/list", {}, token=token)[0] == 429
        failed = scrape(s)
        assert value(failed, "mcp_auth_failures_total", reason="invalid") == 3
        assert value(failed, "mcp_auth_failures_total", reason="missing") == 1
        assert value(failed, "mcp_rate_limited_requests_total") == 1
        assert value(failed, "mcp_requests_total", method="tools/list", tool="", outcome="unauthorized") == 4
        assert value(failed, "mcp_requests_total", method="unknown", tool="", outcome="rate_limited") == 1
        # Reloads: one good, one bad.
        publish(d / "tokens.yaml", tokens_yaml(token, "metrics-second-token-0000000000"))
        wait_until(lambda: value(scrape(s), "mcp_reloads_total", file="tokens", outcome="applied") == 2, 5)
        publish(d / "tokens.yaml", "tokens: [broken\n")
        wait_until(lambda: value(scrape(s), "mcp_reloads_total", file="tokens", outcome="error") == 1, 5)
        final = scrape(s)
        assert value(final, "mcp_file_generation", file="tokens") == 2
        assert value(final, "mcp_file_last_reload_timestamp_seconds", file="tokens") > time.time() - 60
    finally:
        s.stop()


def test_request_ids_and_one_json_log_line_per_request(server):
    s, token, _ = server
    status, headers, _ = rpc(s.url, "tools/list", {}, token=token, headers={"X-Request-Id": "trace-abc-123"})
    assert status == 200 and headers["x-request-id"] == "trace-abc-123"
    status, headers, _ = rpc(s.url, "tools/list", {}, token=token)
    generated = headers["x-request-id"]
    assert len(generated) == 16
    s.stop()
    lines = [json.loads(line) for line in s.log_path.read_text().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("message") == "request"]
    mine = next(line for line in requests if line["request_id"] == "trace-abc-123")
    assert mine["instance"] == "server" and mine["method"] == "tools/list" and mine["status"] == 200
    assert mine["outcome"] == "ok" and mine["duration_ms"] >= 0 and mine["client_ip"] == "127.0.0.1"
    assert any(line["request_id"] == generated for line in requests)
    assert all("instance" in line and "timestamp" in line and "level" in line for line in lines)


def test_sigterm_behind_nginx_drops_no_request(tmp_path):
    d = tmp_path / "data"
    token = make_data_dir(d)
    drain, timeout = 1.5, 5.0
    a = McpServer(d, name="drain-a", drain=f"{drain}s", shutdown_timeout=f"{timeout}s")
    b = McpServer(d, name="drain-b", drain=f"{drain}s", shutdown_timeout=f"{timeout}s")
    lb = Nginx([a.port, b.port], tmp_path)
    stop = threading.Event()
    counts = {"ok": 0, "failed": []}
    lock = threading.Lock()

    def load():
        c = KeepAlive(lb.port)
        while not stop.is_set():
            try:
                status, body = c.call(token, "tools/call", {"name": "search_knowledgebase", "arguments": {"query": "replication slot"}})
                good = status == 200 and body and "result" in body and not body["result"].get("isError")
            except Exception as e:  # noqa: BLE001 - any failure counts
                status, good = repr(e), False
                c = KeepAlive(lb.port)
            with lock:
                if good:
                    counts["ok"] += 1
                else:
                    counts["failed"].append(status)

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        served_before = counts["ok"]
        start = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        # /health turns 503 at once, while requests are still served.
        wait_until(lambda: (a.status() or {}).get("status") == "draining", 1.0, 0.01)
        assert a.health()[0] == 503
        code = a.proc.wait(drain + timeout + 5)
        took = time.monotonic() - start
        time.sleep(1.0)  # keep the load going on the survivor
    finally:
        stop.set()
        for t in threads:
            t.join()
        lb.stop()
        b.stop()
        a.stop()
    print(f"\ngraceful shutdown: {counts['ok']} ok, {len(counts['failed'])} failed; exit {code} after {took:.2f} s")
    assert code == 0
    assert drain <= took <= drain + timeout + 1
    assert counts["ok"] > served_before + 50
    assert counts["failed"] == []
