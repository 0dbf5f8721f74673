"""Step 15: one scenario table, run against each object store: S3 (moto), Google
Cloud Storage (fake-gcs-server) and Azure Blob Storage (Azurite), all started
here on 127.0.0.1.

The binaries reach each store through a CountingProxy, which counts the bytes
the store sends back (the proof that an unchanged object cost no body) and
can go down and come back (a store outage). Objects are written and read back
with each store's own client (boto3, the JSON API, the Azure SDK), never
through the code under test.
"""

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from harness import BIN, LOG_DIR, remember_secret, wait_until
from sync_servers import (AZURITE_KEY, Azurite, AzureStore, CountingProxy, FakeGcs, GcsStore, Moto, S3Store,
                          Sidecar, azurite_connection_string, build_kbs, kb_init)

# What an unchanged object may cost at most, headers and metadata included
# (S3: a HEAD; GCS: the object's JSON resource; Azure: a 304). Every KB used
# below is larger than this, so a body could not hide in it.
NO_BODY = 8 * 1024

STORES = ["s3", "gcs", "azure"]


@pytest.fixture(scope="module")
def kbs(tmp_path_factory):
    """Two valid KBs (marker words 'aardvark' and 'bumblebee') and a corrupt one."""
    out = build_kbs(tmp_path_factory.mktemp("kbs"))
    assert min(len(out[k]) for k in ("a", "b", "corrupt")) > 4 * NO_BODY
    return out


@pytest.fixture(scope="module")
def emulators(tmp_path_factory):
    started = {}
    try:
        started["s3"] = Moto()
        started["gcs"] = FakeGcs()
        started["azure"] = Azurite(tmp_path_factory.mktemp("azurite"))
        remember_secret(AZURITE_KEY)
        yield started
    finally:
        for e in started.values():
            e.stop()


@pytest.fixture(params=STORES)
def store(request, emulators):
    kind = request.param
    s = {"s3": S3Store, "gcs": GcsStore, "azure": AzureStore}[kind](emulators[kind])
    s.proxy = CountingProxy(s.upstream_port)
    yield s
    s.proxy.down()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith(".fleet-tmp-"))


def synced(proc, name="kb.db") -> dict:
    """kb-init's "synced" log line for `name`."""
    for line in proc.stderr.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if rec.get("message") == "synced" and rec.get("file") == name:
                return rec
    raise AssertionError(f"no synced line for {name}: {proc.stderr}")


def push(env: dict, *pairs: str):
    """`kb-sync-sidecar push`; its log goes to target/e2e-logs/push.log (the secrets check reads it)."""
    proc = subprocess.run([str(BIN / "kb-sync-sidecar"), "push", *[a for p in pairs for a in ("--file", p)]],
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    with open(LOG_DIR / "push.log", "a") as f:
        f.write(f"$ kb-sync-sidecar push {' '.join(pairs)}\n{proc.stderr}\n")
    return proc


def test_first_fetch_then_unchanged_costs_no_body_then_changed(tmp_path, store, kbs):
    store.put("prod/kb.db", kbs["a"])
    d = tmp_path / "data"
    args = ["--dest", str(d), "--file", f"kb.db={store.url('prod/kb.db')}"]
    env = store.env(store.proxy)

    first = kb_init(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert (d / "kb.db").read_bytes() == kbs["a"]
    assert synced(first)["outcome"] == "published"
    assert store.proxy.received() >= len(kbs["a"])

    before = store.proxy.received()
    again = kb_init(*args, env=env)
    assert again.returncode == 0, again.stderr
    rec = synced(again)
    assert rec["outcome"] == "unchanged" and rec["bytes"] == 0, rec
    sent = store.proxy.received() - before
    assert 0 < sent < NO_BODY, f"{store.name}: an unchanged object cost {sent} bytes"

    store.put("prod/kb.db", kbs["b"])
    changed = kb_init(*args, env=env)
    assert changed.returncode == 0, changed.stderr
    assert synced(changed)["outcome"] == "published"
    assert (d / "kb.db").read_bytes() == kbs["b"]
    assert leftovers(d) == []


def test_corrupt_object_is_refused_and_the_last_good_file_kept(tmp_path, store, kbs):
    store.put("kb.db", kbs["a"])
    d = tmp_path / "data"
    args = ["--dest", str(d), "--file", f"kb.db={store.url('kb.db')}"]
    env = store.env(store.proxy)
    assert kb_init(*args, env=env).returncode == 0
    store.put("kb.db", kbs["corrupt"])
    bad = kb_init(*args, env=env)
    assert bad.returncode == 3, bad.stderr
    assert "verification failed" in bad.stderr
    assert (d / "kb.db").read_bytes() == kbs["a"]
    assert leftovers(d) == []


def test_store_down_and_back_sidecar_keeps_serving_and_recovers(tmp_path, store, kbs):
    store.put("kb.db", kbs["a"])
    d = tmp_path / "data"
    side = Sidecar("--dest", str(d), "--file", f"kb.db={store.url('kb.db')}", "--interval", "1s",
                   "--request-timeout", "2s", env=store.env(store.proxy))
    try:
        wait_until(lambda: side.get("/readyz")[0] == 200, 30)
        assert (d / "kb.db").read_bytes() == kbs["a"]

        store.proxy.down()
        wait_until(lambda: side.metric("kb_sync_syncs_total", file="kb.db", outcome="fetch_error") >= 2, 30)
        assert side.proc.poll() is None, "a store that is down must not stop the sidecar"
        assert side.get("/readyz")[0] == 200, "the last good file is still published"
        status, body = side.get("/healthz")
        assert status == 200 and json.loads(body)["files"]["kb.db"]["last_error"], body
        assert (d / "kb.db").read_bytes() == kbs["a"]

        store.put("kb.db", kbs["b"])  # written straight to the store, which the sidecar cannot reach
        store.proxy.up()
        wait_until(lambda: (d / "kb.db").read_bytes() == kbs["b"], 30, 0.1)
        wait_until(lambda: side.metric("kb_sync_syncs_total", file="kb.db", outcome="published") == 2, 10)
        wait_until(lambda: json.loads(side.get("/healthz")[1])["files"]["kb.db"]["last_error"] is None, 10)
    finally:
        assert side.stop() == 0
    assert leftovers(d) == []


def test_push_then_fetch_with_the_sha256_metadata_checked(tmp_path, store, kbs):
    build = tmp_path / "build"
    build.mkdir()
    (build / "kb.db").write_bytes(kbs["a"])
    out = push(store.env(store.proxy), f"{build / 'kb.db'}={store.url('release/kb.db')}")
    assert out.returncode == 0, out.stderr
    assert store.sha256_meta("release/kb.db") == sha(kbs["a"]), "push records the sha256 the sources check"

    d = tmp_path / "data"
    args = ["--dest", str(d), "--file", f"kb.db={store.url('release/kb.db')}"]
    env = store.env(store.proxy)
    assert kb_init(*args, env=env).returncode == 0
    assert (d / "kb.db").read_bytes() == kbs["a"]

    # A valid KB whose recorded sha256 is not its own: refused, exit 3.
    store.put("release/kb.db", kbs["b"], sha256=sha(kbs["a"]))
    tampered = kb_init(*args, env=env)
    assert tampered.returncode == 3, tampered.stderr
    assert "the publisher recorded" in tampered.stderr
    assert (d / "kb.db").read_bytes() == kbs["a"]

    # An invalid file is never uploaded.
    (build / "tokens.yaml").write_text("tokens:\n  a:\n    hash: not-a-hash\n")
    refused = push(store.env(store.proxy), f"{build / 'tokens.yaml'}={store.url('release/tokens.yaml')}")
    assert refused.returncode == 3, refused.stderr
    missing = kb_init("--dest", str(tmp_path / "other"), "--file", f"tokens.yaml={store.url('release/tokens.yaml')}",
                      "--retries", "0", env=env)
    assert missing.returncode == 1 and "not found" in missing.stderr, missing.stderr


def test_azure_sas_token_from_a_connection_string(tmp_path, emulators, kbs):
    """A container SAS (no account key) pushes and fetches; neither the SAS
    nor its signature appears in any log line (test_zz_secrets checks)."""
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    azurite = emulators["azure"]
    store = AzureStore(azurite)
    sas = generate_container_sas("devstoreaccount1", store.container, account_key=AZURITE_KEY,
                                 permission=ContainerSasPermissions(read=True, write=True, create=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    sig = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    remember_secret(sas, sig)
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string(azurite.port, sas=sas)}
    build = tmp_path / "kb.db"
    build.write_bytes(kbs["a"])
    up = push(env, f"{build}={store.url('kb.db')}")
    assert up.returncode == 0, up.stderr
    assert store.sha256_meta("kb.db") == sha(kbs["a"])
    d = tmp_path / "data"
    got = kb_init("--dest", str(d), "--file", f"kb.db={store.url('kb.db')}", env=env)
    assert got.returncode == 0, got.stderr
    assert (d / "kb.db").read_bytes() == kbs["a"]
    state = (d / ".fleet-sync-state.json").read_text()
    assert sig not in state and "sig=" not in state

    # A SAS without read permission: refused for good (no retries), exit 1,
    # and the error names the blob but not the signature.
    write_only = generate_container_sas("devstoreaccount1", store.container, account_key=AZURITE_KEY,
                                        permission=ContainerSasPermissions(write=True),
                                        expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    remember_secret(write_only, dict(p.split("=", 1) for p in write_only.split("&"))["sig"])
    env = {"AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string(azurite.port, sas=write_only)}
    started = time.monotonic()
    denied = kb_init("--dest", str(tmp_path / "denied"), "--file", f"kb.db={store.url('kb.db')}", env=env)
    assert denied.returncode == 1, denied.stderr
    assert "HTTP 403" in denied.stderr and store.url("kb.db") in denied.stderr
    assert "retrying" not in denied.stderr and time.monotonic() - started < 10
