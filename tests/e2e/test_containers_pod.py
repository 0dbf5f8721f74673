"""The Kubernetes Pod, in containers, driven by the rendered manifests:
the kustomize base, the example overlay and the Helm chart's default render
(scripts/validate-deploy.sh renders them into target/deploy).

pods.Pod runs the rendered Deployment's Pod the way kubelet would (see its
docstring): the image, command, args, env, envFrom, mounts, ports, probes,
securityContext and limits all come from the YAML, so a change to a manifest
is what gets tested. For each render this proves:
- a pause container holds the network namespace; kb-init runs to exit 0
  before the native sidecar starts, whose startupProbe passes before
  mcp-server starts, whose readinessProbe then passes; every probe of the
  manifest answers on the port it names;
- the emptyDir is group-owned by fsGroup (setgid) and what kb-init
  published lands in it as uid 65532 with that group; the Secret's files
  are mounted with their defaultMode, root-owned and group fsGroup, in the
  `..data` symlink layout, and mcp-server reads them through its group;
- the processes are non-root, in fsGroup, without capabilities, with no new
  privileges, on a read-only root filesystem;
- under load: an auth rotation (a Secret update swapped in atomically, or
  tokens.yaml in S3 for the overlay that syncs auth files) and a KB update
  in S3 are picked up with no failed request;
- deleting the Pod: mcp-server drains and exits 0 within the grace period,
  then the sidecar exits 0.
"""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from containers import IMAGE, PREFIX, RUNTIME_UID, bridge_gateway, build_images, docker, free_subnet, proc_status
from harness import Load, http, remember_secret, rpc, run, tokens_yaml, wait_until
from pods import Pod
from sync_servers import Moto
from test_containers_compose import build_kb
from test_deploy import load, rendered  # noqa: F401 - `rendered` is a fixture

RENDERS = ["kustomize-base", "kustomize-example", "helm-default"]
TOKEN_A = "pod-token-a-000000000000000000000000"
TOKEN_B = "pod-token-b-111111111111111111111111"
PASSWORD = "pod-e2e-password-7"


@pytest.fixture(scope="module")
def images():
    return build_images()


@pytest.fixture(scope="module")
def moto(images):
    m = Moto(host=bridge_gateway())
    yield m
    m.stop()


@pytest.fixture(scope="module")
def network(images):
    name = f"{PREFIX}-pods-{os.getpid()}"
    docker("network", "create", "--subnet", free_subnet(), "--label", f"{PREFIX}=pods", name)
    yield name
    docker("network", "rm", name, check=False)


@pytest.fixture(scope="module")
def fleet_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pod-files")
    users = tmp / "users.yaml"
    remember_secret(PASSWORD)
    run("mcp-server", "user", "add", "--file", str(users), "--username", "bob", "--hash", "argon2id", env={"MCP_PASSWORD": PASSWORD})
    key = os.urandom(32).hex()
    remember_secret(key)
    return {
        "kb_a": build_kb(tmp, "pod-a", "aardvark"),
        "kb_b": build_kb(tmp, "pod-b", "bumblebee"),
        "users": users.read_bytes(),
        "session_key": (key + "\n").encode(),
    }


def sync_manifest(docs: list[dict]) -> dict:
    import yaml

    spec = [d for d in docs if d["kind"] == "Deployment"][0]["spec"]["template"]["spec"]
    (vol,) = [v for v in spec["volumes"] if v["name"] == "sync-config"]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == vol["configMap"]["name"]]
    return yaml.safe_load(cm["data"]["sync.yaml"])


def s3_key(url: str) -> tuple[str, str]:
    assert url.startswith("s3://"), url
    bucket, _, key = url[5:].partition("/")
    return bucket, key


def env_value(container: dict, name: str) -> str | None:
    for e in container.get("env", []):
        if e["name"] == name:
            return e.get("value")
    return None


def mount_of(container: dict, path: str) -> dict | None:
    """The volumeMount a path lives under (the longest mountPath)."""
    best = None
    for m in container.get("volumeMounts", []):
        if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/"):
            if best is None or len(m["mountPath"]) > len(best["mountPath"]):
                best = m
    return best


def search(base: str, token: str, query: str) -> str:
    status, _, body = rpc(base + "/mcp", "tools/call", {"name": "search_knowledgebase", "arguments": {"query": query, "top_n": 3}}, token=token)
    assert status == 200 and "result" in body, (status, body)
    return "\n".join(c.get("text", "") for c in body["result"]["content"])


@pytest.mark.parametrize("render", RENDERS)
def test_pod_shape_from_the_rendered_manifests(rendered, render, moto, network, fleet_files, tmp_path):  # noqa: F811
    docs = load(rendered, render)
    dep = [d for d in docs if d["kind"] == "Deployment"][0]
    spec = dep["spec"]["template"]["spec"]
    server = [c for c in spec["containers"] if c["name"] == "mcp-server"][0]
    manifest = sync_manifest(docs)

    # The objects the manifests point at: S3 sources named by the sync
    # manifest, and (when the server reads its auth files from a Secret
    # volume) the Secret, created as `kubectl create secret` would.
    sources = {}
    for f in manifest["files"]:
        bucket, key = s3_key(f["source"])
        sources[f["name"]] = (bucket, key)
        if bucket not in [b["Name"] for b in moto.s3.list_buckets()["Buckets"]]:
            moto.s3.create_bucket(Bucket=bucket)
    content = {"kb.db": fleet_files["kb_a"], "tokens.yaml": tokens_yaml(TOKEN_A).encode(),
               "users.yaml": fleet_files["users"], "session.key": fleet_files["session_key"]}
    for name, (bucket, key) in sources.items():
        moto.s3.put_object(Bucket=bucket, Key=key, Body=content[name])
    tokens_file = env_value(server, "MCP_TOKENS_FILE")
    auth_mount = mount_of(server, tokens_file)
    auth_volume = [v for v in spec["volumes"] if v["name"] == auth_mount["name"]][0]
    secrets = {}
    if "secret" in auth_volume:
        secret_name = auth_volume["secret"]["secretName"]
        secrets[secret_name] = {k: content[k] for k in ("tokens.yaml", "users.yaml", "session.key")}
    else:
        assert "emptyDir" in auth_volume and "tokens.yaml" in sources, "auth files neither from a Secret nor synced"

    # What this test's cluster adds for the sync containers: its S3 endpoint
    # and credentials (a real cluster's IRSA / Pod Identity), path-style
    # addressing for that endpoint, and a 1 s interval so an update lands
    # within the test.
    cluster_env = {"AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                   "AWS_EC2_METADATA_DISABLED": "true", "KB_S3_PATH_STYLE": "true", "KB_INTERVAL": "1s"}
    repos = {c["image"].rsplit(":", 1)[0] for c in spec.get("initContainers", []) + spec["containers"]}
    assert len(repos) == 1, repos  # one image, three binaries
    pod = Pod(docs, network, tmp_path, render, secrets=secrets, cluster_env=cluster_env, images={repos.pop(): IMAGE})
    try:
        t = time.monotonic()
        pod.start()
        print(f"\n{render}: Pod {pod.name} ready in {time.monotonic() - t:.1f} s: {', '.join(pod.events)}")
        check_order_and_probes(pod)
        check_volumes(pod, auth_volume, auth_mount)
        check_security(pod)
        base = f"http://{pod.ip}:{probe_port(pod, 'mcp-server', 'readinessProbe')}"
        health = json.loads(http("GET", base + "/health")[2])
        assert health["instance_id"] == pod.name  # env from fieldRef metadata.name
        assert "aardvark" in search(base, TOKEN_A, "marker")
        under_load(pod, base, sources, moto, fleet_files, rotate_secret=secrets and secret_name)
        drain = env_value(server, "MCP_DRAIN_DELAY") or "5s"
        stopped = pod.terminate()
        print(f"{render}: terminated: " + ", ".join(f"{n} exit {code} in {s:.1f} s" for n, (code, s) in stopped.items()))
        grace = spec["terminationGracePeriodSeconds"]
        assert stopped["mcp-server"][0] == 0 and float(drain.rstrip("s")) <= stopped["mcp-server"][1] < grace
        assert stopped["kb-sync-sidecar"][0] == 0 and stopped["kb-sync-sidecar"][1] < grace
        assert list(stopped) == ["mcp-server", "kb-sync-sidecar"]
    finally:
        pod.remove()


def check_order_and_probes(pod: Pod) -> None:
    init, sidecar, server = pod.started["kb-init"], pod.started["kb-sync-sidecar"], pod.started["mcp-server"]
    # Docker's own clock: kb-init had exited 0 before the sidecar started;
    # the sidecar's startupProbe passed before mcp-server started.
    assert init.exit_code == 0 and init.finished <= sidecar.started
    assert sidecar.ready_at is not None and sidecar.ready_at <= server.started + 0.05
    # Every probe the manifest declares answers 200 on its port now.
    for name in ("kb-sync-sidecar", "mcp-server"):
        c = pod.container(name)
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in c:
                status, body = pod.probe(c, kind)
                assert status == 200, (name, kind, status, body[:300])
    # Containers share the Pod's network namespace: the server's port
    # answers on the sidecar's localhost, and vice versa.
    proc = pod.exec("mcp-server", "kb-sync-sidecar", "healthcheck", "--listen", f"127.0.0.1:{probe_port(pod, 'kb-sync-sidecar', 'startupProbe')}")
    assert proc.returncode == 0, proc.stderr
    proc = pod.exec("kb-sync-sidecar", "mcp-server", "healthcheck", "--listen", f"127.0.0.1:{probe_port(pod, 'mcp-server', 'readinessProbe')}")
    assert proc.returncode == 0, proc.stderr


def probe_port(pod: Pod, name: str, kind: str) -> int:
    c = pod.container(name)
    return pod.port_of(c, c[kind]["httpGet"]["port"])


def check_volumes(pod: Pod, auth_volume: dict, auth_mount: dict) -> None:
    fs_group = pod.fs_group
    assert fs_group is not None, "the manifests set fsGroup"
    data = pod.volumes["data"]
    st = data.stat()
    assert st.st_gid == fs_group and st.st_mode & stat.S_ISGID, oct(st.st_mode)
    published = [p for p in data.iterdir() if not p.name.startswith(".")]
    assert {p.name for p in published} >= {"kb.db"}
    for p in published:
        pst = p.stat()
        assert (pst.st_uid, pst.st_gid) == (RUNTIME_UID, fs_group), (p.name, pst.st_uid, pst.st_gid)
    if "secret" in auth_volume:
        vol = pod.volumes[auth_volume["name"]]
        mode = auth_volume["secret"].get("defaultMode", 0o644)
        data_link = vol / "..data"
        assert data_link.is_symlink() and os.readlink(data_link).startswith("..")
        for key in ("tokens.yaml", "users.yaml", "session.key"):
            link = vol / key
            assert link.is_symlink() and os.readlink(link) == f"..data/{key}"
            fst = link.stat()
            assert (fst.st_uid, fst.st_gid) == (0, fs_group)
            assert stat.S_IMODE(fst.st_mode) == mode | 0o440, oct(fst.st_mode)
        # Read through the group only: the server's uid is not the owner.
        assert RUNTIME_UID != 0 and mode & 0o004 == 0
        assert auth_mount.get("readOnly") is True and "subPath" not in auth_mount


def check_security(pod: Pod) -> None:
    for name in ("kb-sync-sidecar", "mcp-server"):
        c = pod.container(name)
        info = json.loads(docker("inspect", pod.started[name].cid).stdout)[0]
        assert info["HostConfig"]["ReadonlyRootfs"] is bool(c["securityContext"].get("readOnlyRootFilesystem"))
        st = proc_status(pod.pid(name))
        uid = c["securityContext"].get("runAsUser", pod.psc.get("runAsUser"))
        assert st["Uid"].split() == [str(uid)] * 4, (name, st["Uid"])
        assert str(pod.fs_group) in st["Groups"].split(), (name, st["Groups"])
        if c["securityContext"].get("capabilities", {}).get("drop") == ["ALL"]:
            assert int(st["CapEff"], 16) == 0 and int(st["CapBnd"], 16) == 0, name
        if c["securityContext"].get("allowPrivilegeEscalation") is False:
            assert st["NoNewPrivs"] == "1", name
        assert st["Seccomp"] == "2", name
    proc = pod.exec("mcp-server", "mcp-server", "token", "add", "--file", "/probe.yaml", "--annotation", "probe")
    assert proc.returncode != 0 and "Read-only file system" in proc.stderr, proc.stderr
    proc = pod.exec("mcp-server", "mcp-server", "token", "add", "--file", "/data/probe.yaml", "--annotation", "probe")
    assert proc.returncode != 0 and "Read-only file system" in proc.stderr, proc.stderr


def under_load(pod: Pod, base: str, sources: dict, moto: Moto, files: dict, rotate_secret) -> None:
    port = int(base.rsplit(":", 1)[1])
    ip = base.split("//")[1].split(":")[0]
    load = Load(port, TOKEN_A, threads=4, rate=25, host=ip)
    try:
        time.sleep(1)

        def auth() -> dict:
            return json.loads(http("GET", base + "/health")[2])["auth"]

        load.phase = "auth rotation: add token B"
        gen = auth()["generation"]
        t = time.monotonic()
        rotate(pod, rotate_secret, sources, moto, files, [TOKEN_A, TOKEN_B])
        wait_until(lambda: auth()["generation"] > gen and auth()["tokens"] == 2, 60, 0.1)
        added_s = time.monotonic() - t
        assert "aardvark" in search(base, TOKEN_B, "marker")
        time.sleep(1)
        load.token = TOKEN_B  # clients move to the new token
        time.sleep(0.5)
        load.phase = "auth rotation: remove token A"
        gen = auth()["generation"]
        rotate(pod, rotate_secret, sources, moto, files, [TOKEN_B])
        wait_until(lambda: auth()["generation"] > gen and auth()["tokens"] == 1, 60, 0.1)
        assert rpc(base + "/mcp", "tools/list", {}, token=TOKEN_A)[0] == 401
        time.sleep(1)

        load.phase = "KB update in S3"
        bucket, key = sources["kb.db"]
        t = time.monotonic()
        moto.s3.put_object(Bucket=bucket, Key=key, Body=files["kb_b"])
        wait_until(lambda: "bumblebee" in search(base, TOKEN_B, "marker"), 60, 0.2)
        kb_s = time.monotonic() - t
        time.sleep(1)
    finally:
        load.stop()
    how = "Secret update (..data swap)" if rotate_secret else "tokens.yaml in S3"
    print(f"{pod.label}: token added by {how} live in {added_s:.2f} s; KB update live in {kb_s:.2f} s")
    for phase, n in load.counts.items():
        print(f"  {phase}: {n['ok']} ok, {n['failed']} failed, slowest {n['slowest_s']:.2f} s")
        assert n["failed"] == 0, (phase, n["details"][:5])
        assert n["ok"] > 10, phase


def rotate(pod: Pod, secret_name, sources: dict, moto: Moto, files: dict, tokens: list[str]) -> None:
    body = tokens_yaml(*tokens).encode()
    if secret_name:
        pod.update_secret(secret_name, {"tokens.yaml": body, "users.yaml": files["users"], "session.key": files["session_key"]})
    else:
        bucket, key = sources["tokens.yaml"]
        moto.s3.put_object(Bucket=bucket, Key=key, Body=body)
