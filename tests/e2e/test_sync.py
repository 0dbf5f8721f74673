"""Step 3: kb-init and kb-sync-sidecar against real sources (moto S3, an HTTP server with ETags)."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from harness import BIN, McpServer, http, free_port, run, search_text, tokens_yaml, wait_until
from sync_servers import FileServer, Moto, Sidecar, build_kbs, kb_init

TOKEN = "sync-test-token-000000000000000000"


@pytest.fixture(scope="module")
def kbs(tmp_path_factory):
    """Two valid KBs (marker words 'aardvark' and 'bumblebee') and a corrupt one, as bytes."""
    return build_kbs(tmp_path_factory.mktemp("kbs"))


@pytest.fixture
def files():
    s = FileServer()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def moto():
    m = Moto()
    yield m
    m.stop()


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith(".fleet-tmp-"))


def test_kb_init_over_http_then_unchanged_source_transfers_no_body(tmp_path, files, kbs):
    files.files["/kb.db"] = kbs["a"]
    files.files["/tokens.yaml"] = tokens_yaml(TOKEN).encode()
    d = tmp_path / "data"
    args = ["--dest", str(d), "--file", f"kb.db={files.base}/kb.db", "--file", f"tokens.yaml={files.base}/tokens.yaml"]
    first = kb_init(*args)
    assert first.returncode == 0, first.stderr
    assert (d / "kb.db").read_bytes() == kbs["a"]
    assert (d / "tokens.yaml").read_bytes() == files.files["/tokens.yaml"]
    assert oct((d / "tokens.yaml").stat().st_mode & 0o777) == "0o640"
    assert run("mcp-server", "check", "--data-dir", str(d), check=False).returncode == 0
    sent = files.body_bytes
    assert sent == len(kbs["a"]) + len(files.files["/tokens.yaml"])
    second = kb_init(*args)
    assert second.returncode == 0, second.stderr
    assert files.body_bytes == sent, "an unchanged source must transfer no body"
    assert [r[2] for r in files.requests[-2:]] == [304, 304]
    assert leftovers(d) == []


def test_kb_init_from_s3_with_push_and_unchanged_source_only_heads(tmp_path, moto, kbs):
    moto.s3.create_bucket(Bucket="kb-happy")
    src = tmp_path / "build"
    src.mkdir()
    (src / "kb.db").write_bytes(kbs["a"])
    (src / "tokens.yaml").write_text(tokens_yaml(TOKEN))
    push = subprocess.run([str(BIN / "kb-sync-sidecar"), "push", "--file", f"{src}/kb.db=s3://kb-happy/prod/kb.db",
                           "--file", f"{src}/tokens.yaml=s3://kb-happy/prod/tokens.yaml"],
                          capture_output=True, text=True, env={**os.environ, **moto.env}, timeout=60)
    assert push.returncode == 0, push.stderr
    head = moto.s3.head_object(Bucket="kb-happy", Key="prod/kb.db")
    import hashlib
    assert head["Metadata"]["sha256"] == hashlib.sha256(kbs["a"]).hexdigest()
    d = tmp_path / "data"
    args = ["--dest", str(d), "--file", "kb.db=s3://kb-happy/prod/kb.db", "--file", "tokens.yaml=s3://kb-happy/prod/tokens.yaml"]
    assert kb_init(*args, env=moto.env).returncode == 0
    assert (d / "kb.db").read_bytes() == kbs["a"]
    before = len(moto.requests())
    again = kb_init(*args, env=moto.env)
    assert again.returncode == 0, again.stderr
    later = [r for r in moto.requests()[before:] if "/kb-happy/" in r]
    assert later and all(r.startswith("HEAD ") for r in later), later


def test_push_refuses_an_invalid_file(tmp_path, moto):
    moto.s3.create_bucket(Bucket="kb-push-bad")
    bad = tmp_path / "tokens.yaml"
    bad.write_text("tokens:\n  a:\n    hash: not-a-hash\n")
    push = subprocess.run([str(BIN / "kb-sync-sidecar"), "push", "--file", f"{bad}=s3://kb-push-bad/tokens.yaml"],
                          capture_output=True, text=True, env={**os.environ, **moto.env}, timeout=60)
    assert push.returncode == 3
    assert moto.s3.list_objects_v2(Bucket="kb-push-bad").get("KeyCount", 0) == 0


def test_corrupt_kb_exits_3_and_leaves_the_previous_file(tmp_path, files, kbs):
    files.files["/kb.db"] = kbs["a"]
    d = tmp_path / "data"
    args = ["--dest", str(d), "--file", f"kb.db={files.base}/kb.db"]
    assert kb_init(*args).returncode == 0
    files.files["/kb.db"] = kbs["corrupt"]
    bad = kb_init(*args)
    assert bad.returncode == 3, bad.stderr
    assert "verification failed" in bad.stderr
    assert (d / "kb.db").read_bytes() == kbs["a"]
    assert leftovers(d) == []


def test_sha256_mismatch_with_publisher_metadata_exits_3(tmp_path, moto, kbs):
    moto.s3.create_bucket(Bucket="kb-tampered")
    moto.s3.put_object(Bucket="kb-tampered", Key="kb.db", Body=kbs["a"], Metadata={"sha256": "0" * 64})
    d = tmp_path / "data"
    out = kb_init("--dest", str(d), "--file", "kb.db=s3://kb-tampered/kb.db", env=moto.env)
    assert out.returncode == 3, out.stderr
    assert not (d / "kb.db").exists() and leftovers(d) == []


def test_pinned_sha256_is_enforced(tmp_path, files, kbs):
    files.files["/kb.db"] = kbs["a"]
    manifest = tmp_path / "sync.yaml"
    manifest.write_text(f"dest_dir: {tmp_path / 'data'}\nfiles:\n  - name: kb.db\n    source: {files.base}/kb.db\n    sha256: {'a' * 64}\n")
    out = kb_init("--config", str(manifest))
    assert out.returncode == 3 and "pinned" in out.stderr


def test_truncated_download_is_retried_then_exit_1(tmp_path, files, kbs):
    files.files["/kb.db"] = kbs["a"]
    d = tmp_path / "data"
    args = ["--dest", str(d), "--file", f"kb.db={files.base}/kb.db"]
    assert kb_init(*args).returncode == 0
    files.files["/kb.db"] = kbs["b"]
    files.mode = "truncate"
    out = kb_init(*args, "--retries", "2")
    assert out.returncode == 1, out.stderr
    # reqwest or our own length check notices the short body; either way a retry.
    assert ("cut short" in out.stderr or "reading the body" in out.stderr), out.stderr
    assert out.stderr.count("retrying") == 2
    assert (d / "kb.db").read_bytes() == kbs["a"]
    assert leftovers(d) == []


def test_source_down_retries_then_exit_1(tmp_path):
    port = free_port()  # nothing listens here
    d = tmp_path / "data"
    start = time.monotonic()
    out = kb_init("--dest", str(d), "--file", f"kb.db=http://127.0.0.1:{port}/kb.db", "--retries", "3")
    took = time.monotonic() - start
    assert out.returncode == 1, out.stderr
    assert out.stderr.count("retrying") == 3
    assert took >= 0.5 * (0.5 + 1 + 2) * 0.5, "backoff must actually wait"  # jittered halves at least


def test_usage_errors_exit_2(tmp_path):
    assert kb_init("--dest", str(tmp_path), "--file", "kb.db").returncode == 2
    assert kb_init("--dest", str(tmp_path), "--file", "kb.db=ftp://x/kb.db").returncode == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("dest_dir: /x\nfiles:\n  - {name: ../escape, source: file:///x}\n")
    assert kb_init("--config", str(bad)).returncode == 2


def test_stale_temporary_files_are_cleaned_and_current_file_not_downloaded(tmp_path, files, kbs):
    files.files["/kb.db"] = kbs["a"]
    d = tmp_path / "data"
    d.mkdir()
    (d / ".fleet-tmp-killed-run").write_bytes(b"half a file")
    args = ["--dest", str(d), "--file", f"kb.db={files.base}/kb.db"]
    assert kb_init(*args).returncode == 0
    assert leftovers(d) == []


def test_sidecar_survives_a_down_source_and_publishes_when_it_is_back(tmp_path, files, kbs):
    files.files["/kb.db"] = kbs["a"]
    files.mode = "error"
    d = tmp_path / "data"
    s = Sidecar("--dest", str(d), "--file", f"kb.db={files.base}/kb.db", "--interval", "1s")
    try:
        wait_until(lambda: s.metric("kb_sync_syncs_total", file="kb.db", outcome="fetch_error") >= 2, 20)
        assert s.get("/readyz")[0] == 503
        status, body = s.get("/healthz")
        assert status == 200 and "503" in json.loads(body)["files"]["kb.db"]["last_error"]
        assert s.proc.poll() is None, "a down source must not stop the sidecar"
        files.mode = "normal"
        wait_until(lambda: s.get("/readyz")[0] == 200, 20)
        assert (d / "kb.db").read_bytes() == kbs["a"]
        assert s.metric("kb_sync_syncs_total", file="kb.db", outcome="published") == 1
        assert s.metric("kb_sync_fetched_bytes_total", file="kb.db") == len(kbs["a"])
        assert s.metric("kb_sync_last_success_timestamp_seconds", file="kb.db") > time.time() - 60
        # Later cycles find it unchanged and transfer nothing.
        sent = files.body_bytes
        wait_until(lambda: s.metric("kb_sync_syncs_total", file="kb.db", outcome="unchanged") >= 2, 20)
        assert files.body_bytes == sent
    finally:
        assert s.stop() == 0


def test_sigterm_during_a_download_leaves_no_partial_file(tmp_path, files, kbs):
    big = kbs["a"] * 1  # served slowly: about 12 s for its pages
    files.files["/kb.db"] = big
    files.mode = "slow"
    d = tmp_path / "data"
    s = Sidecar("--dest", str(d), "--file", f"kb.db={files.base}/kb.db")
    wait_until(lambda: files.body_bytes > 8192, 20)
    start = time.monotonic()
    assert s.stop() == 0
    assert time.monotonic() - start < 5
    assert not (d / "kb.db").exists()
    assert leftovers(d) == []


def test_sidecar_once_exits_like_kb_init(tmp_path, files, kbs):
    files.files["/kb.db"] = kbs["corrupt"]
    d = tmp_path / "data"
    once = subprocess.run([str(BIN / "kb-sync-sidecar"), "--once", "--dest", str(d), "--file", f"kb.db={files.base}/kb.db"],
                          capture_output=True, text=True, timeout=60)
    assert once.returncode == 3
    files.files["/kb.db"] = kbs["a"]
    once = subprocess.run([str(BIN / "kb-sync-sidecar"), "--once", "--dest", str(d), "--file", f"kb.db={files.base}/kb.db"],
                          capture_output=True, text=True, timeout=60)
    assert once.returncode == 0 and (d / "kb.db").read_bytes() == kbs["a"]


def test_end_to_end_s3_to_kb_init_sidecar_and_server(tmp_path, moto, kbs):
    moto.s3.create_bucket(Bucket="kb-e2e")
    moto.s3.put_object(Bucket="kb-e2e", Key="kb.db", Body=kbs["a"])
    moto.s3.put_object(Bucket="kb-e2e", Key="tokens.yaml", Body=tokens_yaml(TOKEN).encode())
    d = tmp_path / "shared"
    files_args = ["--dest", str(d), "--file", "kb.db=s3://kb-e2e/kb.db", "--file", "tokens.yaml=s3://kb-e2e/tokens.yaml"]
    assert kb_init(*files_args, env=moto.env).returncode == 0
    interval = 1.0
    side = Sidecar(*files_args, "--interval", f"{interval}s", env=moto.env)
    server = McpServer(d, name="e2e-sync")
    try:
        assert "aardvark" in search_text(server.url, TOKEN, "marker")
        moto.s3.put_object(Bucket="kb-e2e", Key="kb.db", Body=kbs["b"])
        _, took = wait_until(lambda: "bumblebee" in search_text(server.url, TOKEN, "marker"), 30, 0.02)
        print(f"\nS3 -> server propagation: {took:.2f} s (interval {interval} s)")
        assert took <= interval * 1.1 + 2.0
        assert server.health()[1]["files"]["kb"]["generation"] == 2
    finally:
        server.stop()
        assert side.stop() == 0


def vouch(d: Path, staged: Path, sha: str) -> None:
    """Write the sync state record for `staged` as it will be once renamed to
    d/kb.db (a rename keeps device, inode, mtime and size)."""
    st = os.stat(staged)
    record = {"source": "file:///elsewhere/kb.db", "validators": {"etag": None, "last_modified": None},
              "sha256": sha, "size": st.st_size, "identity": [st.st_dev, st.st_ino, st.st_mtime_ns]}
    tmp = d / ".state-staged"
    tmp.write_text(json.dumps({"kb.db": record}))
    os.replace(tmp, d / ".fleet-sync-state.json")


def test_server_trusts_a_kb_as_published_and_audits_it(tmp_path, files, kbs):
    """A KB exactly as kb-init published it loads on the sync record's word
    (no second hash or page check); a record that lies is caught by the
    background audit, the previous generation serves again, and a server
    started on that file never becomes ready."""
    import hashlib
    files.files["/kb.db"] = kbs["a"]
    d = tmp_path / "data"
    assert kb_init("--dest", str(d), "--file", f"kb.db={files.base}/kb.db").returncode == 0
    (d / "tokens.yaml").write_text(tokens_yaml(TOKEN))
    server = McpServer(d, name="vouched")
    try:
        kb = server.health()[1]["files"]["kb"]
        assert kb["summary"].endswith("verified at publish") and kb["generation"] == 1, kb
        assert "aardvark" in search_text(server.url, TOKEN, "marker")

        # kb "b" under a record that claims another content's sha256.
        lie = hashlib.sha256(b"what was really verified").hexdigest()
        staged = d / ".staged-kb"
        staged.write_bytes(kbs["b"])
        vouch(d, staged, lie)
        os.replace(staged, d / "kb.db")
        kb, _ = wait_until(lambda: (k := server.health()[1]["files"]["kb"]).get("last_error") and k, 10, 0.02)
        assert "not what its sync record vouched for" in kb["last_error"], kb
        assert kb["generation"] == 1, kb
        assert "aardvark" in search_text(server.url, TOKEN, "marker")
        assert server.health()[0] == 200
        metrics = http("GET", f"{server.base}/metrics")[2].decode()
        assert 'mcp_reloads_total{file="kb",outcome="error"} 1' in metrics, metrics

        # The same file with an honest record is loaded, again without a full check.
        staged.write_bytes(kbs["b"])
        vouch(d, staged, hashlib.sha256(kbs["b"]).hexdigest())
        os.replace(staged, d / "kb.db")
        wait_until(lambda: "bumblebee" in search_text(server.url, TOKEN, "marker"), 10, 0.02)
        kb = server.health()[1]["files"]["kb"]
        assert kb["summary"].endswith("verified at publish") and kb["last_error"] is None, kb
    finally:
        server.stop()

    # A lying record at start: nothing to fall back to, so never ready.
    staged = d / ".staged-kb"
    staged.write_bytes(kbs["b"])
    vouch(d, staged, lie)
    os.replace(staged, d / "kb.db")
    server = McpServer(d, name="vouched-lie", wait=False)
    try:
        (status, body), _ = wait_until(lambda: (h := server.status()) and h["files"]["kb"].get("last_error")
                                       and server.health(), 10, 0.02)
        assert status == 503 and not body["kb"]["loaded"], body
        assert "not what its sync record vouched for" in body["files"]["kb"]["last_error"]

        # Without a record the file is checked in full at load, and served.
        (d / ".fleet-sync-state.json").unlink()
        os.utime(d / "kb.db")  # a new mtime: the reloader looks again
        kb = server.wait_ready()["files"]["kb"]
        assert kb["summary"].endswith("verified at load"), kb
    finally:
        server.stop()
