"""Step 7: the compose topology as processes on 127.0.0.1, under continuous load.

A real nginx in front of three mcp-server instances sharing one directory,
fed by kb-init and kb-sync-sidecar from a real S3-compatible server (moto):
(a) a new KB and new tokens uploaded to S3 reach every instance;
(b) kill -9 of one instance, nginx fails over;
(c) a rolling restart with SIGTERM;
(d) S3 down for 30 s: service unaffected, the sidecar recovers.
"""

import shutil
import signal
import time

from harness import FIXTURES, KeepAlive, Load, McpServer, Nginx, run, search_text, tokens_yaml, wait_until
from sync_servers import Moto, Sidecar, kb_init

STABLE = "fleet-stable-token-00000000000000"
NEW = "fleet-new-token-1111111111111111111"
OUTAGE = 30.0


def build_kb(tmp, name, word):
    docs = tmp / f"docs-{name}"
    shutil.copytree(FIXTURES / "docs", docs)
    (docs / "marker.md").write_text(f"# Marker\n\nThis knowledge base mentions the {word} marker.\n")
    run("mcp-server", "kb", "build", "--docs", str(docs), "--out", str(tmp / f"{name}.db"))
    return (tmp / f"{name}.db").read_bytes()


def upload(moto, bucket, kb, tokens):
    moto.s3.put_object(Bucket=bucket, Key="prod/kb.db", Body=kb)
    moto.s3.put_object(Bucket=bucket, Key="prod/tokens.yaml", Body=tokens.encode())


def test_fleet(tmp_path):
    kb_a, kb_b = build_kb(tmp_path, "a", "aardvark"), build_kb(tmp_path, "b", "bumblebee")
    moto = Moto()
    bucket = "fleet"
    moto.s3.create_bucket(Bucket=bucket)
    upload(moto, bucket, kb_a, tokens_yaml(STABLE))
    shared = tmp_path / "shared"
    files = ["--dest", str(shared), "--file", f"kb.db=s3://{bucket}/prod/kb.db", "--file", f"tokens.yaml=s3://{bucket}/prod/tokens.yaml"]
    assert kb_init(*files, env=moto.env).returncode == 0
    sidecar = Sidecar(*files, "--interval", "1s", "--jitter", "10%", env=moto.env)
    opts = dict(drain="1.5s", shutdown_timeout="5s")
    servers = [McpServer(shared, name=f"fleet-{i}", **opts) for i in range(3)]
    nginx = Nginx([s.port for s in servers], tmp_path)
    load = Load(nginx.port, STABLE)
    report = {}
    try:
        time.sleep(1.0)

        # (a) New KB and tokens in S3 reach every instance.
        load.phase = "a: new KB + tokens via S3"
        start = time.monotonic()
        upload(moto, bucket, kb_b, tokens_yaml(STABLE, NEW))

        def everywhere():
            return all("bumblebee" in search_text(s.url, STABLE, "marker") and KeepAlive(s.port).accepted(NEW) for s in servers)

        wait_until(everywhere, 30, 0.05)
        report["propagation_s"] = time.monotonic() - start
        time.sleep(1.0)

        # (b) kill -9 of one instance: nginx fails over.
        load.phase = "b: kill -9 one instance"
        victim = servers[0]
        victim.stop(signal.SIGKILL)
        time.sleep(3.0)
        servers[0] = McpServer(shared, name="fleet-0-restarted", port=victim.port, **opts)
        time.sleep(1.0)

        # (c) Rolling restart with SIGTERM, one instance at a time.
        load.phase = "c: rolling restart (SIGTERM)"
        for i, s in enumerate(list(servers)):
            assert s.stop(signal.SIGTERM) == 0
            servers[i] = McpServer(shared, name=f"fleet-{i}-rolled", port=s.port, **opts)
            time.sleep(0.5)
        time.sleep(1.0)

        # (d) S3 down for 30 s: the service is unaffected, the sidecar recovers.
        load.phase = "d: S3 down 30 s"
        errors_before = sidecar.metric("kb_sync_syncs_total", file="kb.db", outcome="fetch_error")
        moto.stop()
        time.sleep(OUTAGE)
        assert sidecar.proc.poll() is None
        assert sidecar.metric("kb_sync_syncs_total", file="kb.db", outcome="fetch_error") > errors_before
        assert sidecar.get("/readyz")[0] == 200, "published files stay valid while the source is down"
        moto = Moto(port=moto.port)
        moto.s3.create_bucket(Bucket=bucket)
        upload(moto, bucket, kb_b, tokens_yaml(STABLE, NEW))
        back = time.time()
        wait_until(lambda: sidecar.metric("kb_sync_last_success_timestamp_seconds", file="kb.db") > back, 30, 0.1)
        report["sidecar_recovery_s"] = time.time() - back
        time.sleep(1.0)
    finally:
        load.stop()
        nginx.stop()
        for s in servers:
            s.stop()
        sidecar.stop()
        moto.stop()
    print("\n| phase | ok | failed |\n| --- | --- | --- |")
    for phase, c in load.counts.items():
        print(f"| {phase} | {c['ok']} | {c['failed']} |")
    print(f"propagation S3 -> every instance: {report['propagation_s']:.2f} s (sidecar interval 1 s)")
    print(f"sidecar recovered {report['sidecar_recovery_s']:.2f} s after S3 came back")
    for phase in ["a: new KB + tokens via S3", "c: rolling restart (SIGTERM)", "d: S3 down 30 s"]:
        assert load.counts[phase]["failed"] == 0, (phase, load.counts[phase]["details"][:5])
        assert load.counts[phase]["ok"] > 100
    assert load.counts["b: kill -9 one instance"]["ok"] > 100
    assert report["propagation_s"] < 1.0 * 1.1 + 2.0
