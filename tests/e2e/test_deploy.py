"""Deployment artifacts: scripts/validate-deploy.sh passes, and what it renders
has the shape the design asks for.

validate-deploy.sh does the offline tool checks (hadolint, kustomize,
helm-python-sdk lint/render, kubernetes-validate --strict, docker-compose
config, nginx -t, and every container's command/env against the real
binaries) and leaves the rendered manifests in DEPLOY_OUT. These tests read
them with PyYAML and check the structure: containers, probes, security
context, autoscaling, disruption budget, Service, the compose topology and
the nginx configuration, and that kustomize and Helm render the same objects
(also with PostgreSQL TLS files from a Secret: components/pg-tls and the
chart's postgresTLS).

Nothing is deployed here; the container tests (test_containers_*.py) run
these artifacts in a real Docker engine.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
LOG_DIR = ROOT / "target" / "e2e-logs"

RUNTIME_UID = 65532
SERVER_PORT = 8080


# --------------------------------------------------------------------------
# Running the validation once


BIN = Path(os.environ.get("MCP_BIN_DIR", ROOT / "target" / "debug"))
DEFAULT_OUT = ROOT / "target" / "deploy"


def fresh_previous_pass() -> Path | None:
    """target/deploy from a passing run (scripts/test.sh runs the script just
    before pytest) that is newer than every input: the artifacts, the script
    and the binaries it ran. Anything older is validated again."""
    marker = DEFAULT_OUT / "PASSED"
    if not marker.exists():
        return None
    inputs = [ROOT / "Dockerfile", ROOT / ".dockerignore", ROOT / "scripts" / "validate-deploy.sh"]
    inputs += [p for d in (ROOT / "compose", ROOT / "k8s") for p in d.rglob("*") if p.is_file()]
    inputs += [BIN / b for b in ("mcp-server", "kb-init", "kb-sync-sidecar")]
    newest = max(p.stat().st_mtime for p in inputs if p.exists())
    return DEFAULT_OUT if marker.stat().st_mtime >= newest else None


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    previous = fresh_previous_pass()
    if previous is not None:
        return previous
    out = tmp_path_factory.mktemp("deploy")
    env = {**os.environ, "DEPLOY_OUT": str(out)}
    proc = subprocess.run(
        [str(ROOT / "scripts" / "validate-deploy.sh")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    (LOG_DIR / "validate-deploy.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"validate-deploy.sh failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert "all checks passed" in proc.stdout
    assert (out / "PASSED").exists()
    return out


def load(rendered: Path, name: str) -> list[dict]:
    docs = [d for d in yaml.safe_load_all((rendered / f"{name}.yaml").read_text()) if d]
    assert docs, name
    return docs


def one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def duration_s(text: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m)", text)
    assert m, text
    return int(m[1]) * {"ms": 0.001, "s": 1, "m": 60}[m[2]]


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def port_number(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    (num,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return num


def pod_spec(docs: list[dict]) -> dict:
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def containers(docs: list[dict]) -> dict[str, dict]:
    spec = pod_spec(docs)
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


def sync_manifest(docs: list[dict]) -> dict:
    spec = pod_spec(docs)
    (vol,) = [v for v in spec["volumes"] if v["name"] == "sync-config"]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == vol["configMap"]["name"]]
    return yaml.safe_load(cm["data"]["sync.yaml"])


K8S_RENDERS = ["kustomize-base", "kustomize-example", "helm-default", "helm-s3"]
# The base with components/pg-tls (k8s/overlays/pg-tls), and the chart's
# defaults with postgresTLS.secretName=pg-tls.
PG_TLS_RENDERS = ["kustomize-pg-tls", "helm-pg-tls"]


# --------------------------------------------------------------------------
# Kubernetes: every render


def test_validation_script_passes(rendered):
    names = {p.name for p in rendered.iterdir()}
    assert {f"{n}.yaml" for n in K8S_RENDERS + PG_TLS_RENDERS + ["compose", "compose-manifest", "compose-demo"]} <= names


@pytest.mark.parametrize("render", K8S_RENDERS)
def test_init_container_then_native_sidecar(rendered, render):
    docs = load(rendered, render)
    spec = pod_spec(docs)
    init = spec["initContainers"]
    assert [c["name"] for c in init] == ["kb-init", "kb-sync-sidecar"]
    kb_init, sidecar = init
    assert kb_init["command"] == ["kb-init"]
    assert "restartPolicy" not in kb_init  # a plain init container: runs to exit 0
    assert sidecar["command"] == ["kb-sync-sidecar"]
    assert sidecar["restartPolicy"] == "Always"  # native sidecar
    args = sidecar["args"]
    listen_port = int(args[args.index("--listen") + 1].rsplit(":", 1)[1])
    start, live = sidecar["startupProbe"]["httpGet"], sidecar["livenessProbe"]["httpGet"]
    assert start["path"] == "/readyz" and live["path"] == "/healthz"
    assert port_number(sidecar, start["port"]) == listen_port == port_number(sidecar, live["port"])
    # Both sync tools read the manifest from the ConfigMap.
    for c in (kb_init, sidecar):
        assert c["args"][:2] == ["--config", "/etc/kb-sync/sync.yaml"]
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/etc/kb-sync"]["name"] == "sync-config"
        assert mounts["/data"]["name"] == "data" and not mounts["/data"].get("readOnly")
        assert mounts["/tmp"]["name"] == "tmp"  # read-only root filesystem
    (server,) = spec["containers"]
    assert server["name"] == "mcp-server"


@pytest.mark.parametrize("render", K8S_RENDERS)
def test_server_probes_and_drain(rendered, render):
    docs = load(rendered, render)
    spec = pod_spec(docs)
    server = containers(docs)["mcp-server"]
    assert server["command"] == ["mcp-server"] and server["args"] == ["serve"]
    env = env_of(server)
    assert env["MCP_LISTEN"].endswith(f":{SERVER_PORT}")
    ready, live = server["readinessProbe"]["httpGet"], server["livenessProbe"]["httpGet"]
    assert ready["path"] == "/health" and live["path"] == "/livez"
    assert port_number(server, ready["port"]) == SERVER_PORT == port_number(server, live["port"])
    # The server drains itself: no preStop, and the grace period covers
    # drain delay + shutdown timeout.
    assert "lifecycle" not in server
    drain = duration_s(env.get("MCP_DRAIN_DELAY", "5s")) + duration_s(env.get("MCP_SHUTDOWN_TIMEOUT", "20s"))
    assert spec["terminationGracePeriodSeconds"] > drain


@pytest.mark.parametrize("render", K8S_RENDERS)
def test_security_context_and_resources(rendered, render):
    docs = load(rendered, render)
    spec = pod_spec(docs)
    psc = spec["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == RUNTIME_UID
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    for name, c in containers(docs).items():
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert sc.get("runAsNonRoot", True) is True, name
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][part]), (name, part)


@pytest.mark.parametrize("render", K8S_RENDERS)
def test_volumes_data_tmp_and_auth(rendered, render):
    docs = load(rendered, render)
    spec = pod_spec(docs)
    vols = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in vols["data"] and "emptyDir" in vols["tmp"]
    server = containers(docs)["mcp-server"]
    mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    assert mounts["/data"]["name"] == "data" and mounts["/data"]["readOnly"] is True
    assert mounts["/tmp"]["name"] == "tmp"
    env = env_of(server)
    manifest = sync_manifest(docs)
    assert manifest["dest_dir"] == "/data"
    files = {f["name"]: f for f in manifest["files"]}
    assert files["kb.db"]["kind"] == "kb" and files["kb.db"]["source"].startswith("s3://")
    auth_files = {"MCP_TOKENS_FILE": "tokens.yaml", "MCP_USERS_FILE": "users.yaml", "MCP_SESSION_KEY_FILE": "session.key"}
    if render in ("kustomize-base", "helm-default"):
        # Auth files from a Secret mounted as a directory (no subPath, so
        # updates reach the hot reload).
        assert "secret" in vols["auth"]
        assert mounts["/secrets"]["name"] == "auth" and "subPath" not in mounts["/secrets"]
        for var, fname in auth_files.items():
            assert env[var] == f"/secrets/{fname}"
        assert set(files) == {"kb.db"}
    else:
        # Every file from S3, no Secret.
        assert "auth" not in vols and "/secrets" not in mounts
        for var, fname in auth_files.items():
            assert env[var] == f"/data/{fname}"
        assert set(files) >= {"kb.db", "tokens.yaml", "users.yaml", "session.key"}
        assert files["session.key"]["kind"] == "session-key"


@pytest.mark.parametrize("render", K8S_RENDERS)
def test_service_hpa_pdb_serviceaccount(rendered, render):
    docs = load(rendered, render)
    deploy = one(docs, "Deployment")
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert "replicas" not in deploy["spec"], "the HPA owns the replica count"

    svc = one(docs, "Service")
    assert svc["spec"]["type"] == "ClusterIP"
    (port,) = svc["spec"]["ports"]
    assert port["port"] == 80
    assert port_number(containers(docs)["mcp-server"], port["targetPort"]) == SERVER_PORT
    assert svc["spec"]["selector"].items() <= pod_labels.items()

    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deploy["metadata"]["name"]}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    if render in ("kustomize-base", "helm-default"):
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    else:
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 20)

    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    sa = one(docs, "ServiceAccount")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def essence(docs: list[dict]) -> dict:
    """What must be equal between the kustomize base and the Helm chart's
    defaults: kinds, names (ConfigMap hash suffixes aside), containers,
    probes, security, volumes, Service, HPA and PDB specs."""
    cm_name = re.compile(r"^(.*)-[a-z0-9]{10}$")

    def name(d):
        n = d["metadata"]["name"]
        return cm_name.sub(r"\1", n) if d["kind"] == "ConfigMap" else n

    spec = pod_spec(docs)
    cs = []
    for c in spec.get("initContainers", []) + spec["containers"]:
        c = dict(c)
        c.pop("image")
        c["envFrom"] = [cm_name.sub(r"\1", e["configMapRef"]["name"]) for e in c.get("envFrom", [])]
        cs.append(c)
    vols = []
    for v in spec["volumes"]:
        v = dict(v)
        if "configMap" in v:
            v["configMap"] = cm_name.sub(r"\1", v["configMap"]["name"])
        vols.append(v)
    cms = {name(d): d["data"] for d in docs if d["kind"] == "ConfigMap"}
    cms = {k: (yaml.safe_load(v["sync.yaml"]) if "sync.yaml" in v else v) for k, v in cms.items()}
    return {
        "objects": sorted((d["apiVersion"], d["kind"], name(d)) for d in docs),
        "containers": cs,
        "volumes": vols,
        "pod": {k: spec[k] for k in ("securityContext", "terminationGracePeriodSeconds", "serviceAccountName",
                                     "automountServiceAccountToken", "enableServiceLinks")},
        "strategy": one(docs, "Deployment")["spec"]["strategy"],
        "service": {k: one(docs, "Service")["spec"][k] for k in ("type", "ports")},
        "hpa": {k: v for k, v in one(docs, "HorizontalPodAutoscaler")["spec"].items()},
        "pdb": one(docs, "PodDisruptionBudget")["spec"].get("maxUnavailable"),
        "sa": one(docs, "ServiceAccount")["metadata"]["annotations"],
        "configmaps": cms,
    }


def test_kustomize_and_helm_render_the_same_objects(rendered):
    base, helm = essence(load(rendered, "kustomize-base")), essence(load(rendered, "helm-default"))
    assert [o[1] for o in base["objects"]] == [o[1] for o in helm["objects"]]
    assert sorted(o[1] for o in base["objects"]) == sorted(
        ["ConfigMap", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "ServiceAccount"])
    for key in base:
        assert base[key] == helm[key], key


# --------------------------------------------------------------------------
# PostgreSQL TLS files from a Secret


def without_pg_tls(docs: list[dict]) -> list[dict]:
    """A copy of the render without the pg-tls volume and its mounts."""
    docs = copy.deepcopy(docs)
    spec = pod_spec(docs)
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] != "pg-tls"]
    for c in spec.get("initContainers", []) + spec["containers"]:
        c["volumeMounts"] = [m for m in c.get("volumeMounts", []) if m["name"] != "pg-tls"]
    return docs


@pytest.mark.parametrize("render", PG_TLS_RENDERS)
def test_pg_tls_secret_mounted_as_a_directory(rendered, render):
    """The CA bundle and client certificate reach mcp-server as a Secret
    volume mounted whole and read-only: kubelet's ..data swap then brings a
    renewed certificate to the server's next connection. A subPath mount
    would pin the first version forever."""
    docs = load(rendered, render)
    spec = pod_spec(docs)
    (vol,) = [v for v in spec["volumes"] if v["name"] == "pg-tls"]
    assert vol["secret"]["secretName"] == "pg-tls"
    assert "items" not in vol["secret"]  # every key: ca.crt, tls.crt, tls.key
    assert vol["secret"]["defaultMode"] == 0o440  # group-readable through fsGroup
    assert spec["securityContext"]["fsGroup"] == RUNTIME_UID
    mounts = {name: [m for m in c.get("volumeMounts", []) if m["name"] == "pg-tls"]
              for name, c in containers(docs).items()}
    (mount,) = mounts.pop("mcp-server")
    assert mount == {"name": "pg-tls", "mountPath": "/etc/pg-tls", "readOnly": True}
    assert all(found == [] for found in mounts.values()), "only mcp-server reads the TLS files"


def test_pg_tls_changes_nothing_else(rendered):
    base, helm = load(rendered, "kustomize-base"), load(rendered, "helm-default")
    for docs in (base, helm):  # off by default
        assert all(v["name"] != "pg-tls" for v in pod_spec(docs)["volumes"])
    kustomize_tls, helm_tls = load(rendered, "kustomize-pg-tls"), load(rendered, "helm-pg-tls")
    assert essence(without_pg_tls(kustomize_tls)) == essence(base)
    assert essence(without_pg_tls(helm_tls)) == essence(helm)
    # The component and the chart value render the same Pod.
    a, b = essence(kustomize_tls), essence(helm_tls)
    for key in a:
        assert a[key] == b[key], key


@pytest.mark.parametrize("render", K8S_RENDERS + PG_TLS_RENDERS)
def test_no_subpath_mounts(rendered, render):
    """Every file the server reloads (auth files, TLS files) or the sync tools
    read comes from a whole-volume mount."""
    for name, c in containers(load(rendered, render)).items():
        for m in c.get("volumeMounts", []):
            assert "subPath" not in m and "subPathExpr" not in m, (render, name, m)


def test_overlay_example(rendered):
    docs = load(rendered, "kustomize-example")
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"mcp"}
    for c in containers(docs).values():
        assert c["image"] == "registry.example.com/platform/pg-mcp-fleet:0.1.0"
    assert env_of(containers(docs)["mcp-server"])["MCP_TRUSTED_PROXIES"]
    assert all(f["source"].startswith("s3://prod-mcp-artifacts/") for f in sync_manifest(docs)["files"])


# --------------------------------------------------------------------------
# docker compose and nginx


def test_compose_topology(rendered):
    (config,) = load(rendered, "compose")
    services = config["services"]
    assert set(services) == {"nginx", "kb-init", "kb-sync-sidecar", "mcp-1", "mcp-2", "mcp-3"}
    assert services["kb-init"]["command"][0] == "kb-init"
    assert services["kb-init"].get("restart", "no") == "no"
    sidecar = services["kb-sync-sidecar"]
    assert sidecar["command"][0] == "kb-sync-sidecar" and any(a.startswith("--listen") for a in sidecar["command"])
    assert sidecar["depends_on"]["kb-init"]["condition"] == "service_completed_successfully"
    subnet = config["networks"]["fleet"]["ipam"]["config"][0]["subnet"]
    for n in (1, 2, 3):
        s = services[f"mcp-{n}"]
        assert s["command"] == ["mcp-server", "serve"]
        assert "fleet-data:/data:ro" in s["volumes"]
        assert s["depends_on"]["kb-init"]["condition"] == "service_completed_successfully"
        assert s["environment"]["MCP_TRUSTED_PROXIES"] == subnet
        assert s["environment"]["MCP_INSTANCE_ID"] == f"mcp-{n}"
        assert s["read_only"] is True and s["user"] == f"{RUNTIME_UID}:{RUNTIME_UID}"
        assert s["cap_drop"] == ["ALL"]
        assert duration_s(s["stop_grace_period"]) > 25
        # The image has no shell or curl: the binary checks itself.
        assert s["healthcheck"]["test"] == ["CMD", "mcp-server", "healthcheck"]
    # The sync tools write the same volume the servers read.
    for name in ("kb-init", "kb-sync-sidecar"):
        assert "fleet-data:/data:rw" in services[name]["volumes"]
    listen = next(a.split("=", 1)[1] for a in sidecar["command"] if a.startswith("--listen="))
    assert sidecar["healthcheck"]["test"] == ["CMD", "kb-sync-sidecar", "healthcheck", "--listen", listen]
    # nginx starts once every server is healthy.
    assert services["nginx"]["depends_on"] == {f"mcp-{n}": {"condition": "service_healthy"} for n in (1, 2, 3)}


def test_compose_healthchecks_are_commands_the_binaries_accept(rendered):
    """Each healthcheck, run here against nothing, reports unhealthy (1):
    parsed, probed, refused. A usage error would be 2, and docker would
    show the container unhealthy forever."""
    (config,) = load(rendered, "compose")
    for name, s in config["services"].items():
        test = s.get("healthcheck", {}).get("test")
        if not test:
            continue
        assert test[0] == "CMD", (name, test)  # exec form: there is no shell
        env = {k: str(v) for k, v in (s.get("environment") or {}).items() if v is not None}
        env["MCP_LISTEN"] = "127.0.0.1:9"  # nothing listens on the discard port
        argv = [str(BIN / test[1])] + ["127.0.0.1:9" if a.startswith("0.0.0.0:") else a for a in test[2:]]
        proc = subprocess.run(argv, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1, (name, argv, proc.returncode, proc.stderr)
        assert "unhealthy" in proc.stderr, (name, proc.stderr)
    interval = {name: duration_s(s["healthcheck"]["interval"]) for name, s in config["services"].items() if "healthcheck" in s}
    assert set(interval) == {"mcp-1", "mcp-2", "mcp-3", "kb-sync-sidecar"}


def test_compose_demo_override(rendered):
    """docker-compose.demo.yml: the same fleet fed through file:// sources from
    a bind-mounted directory, with the bundled docs as the KB."""
    (config,) = load(rendered, "compose-demo")
    services = config["services"]
    assert {"nginx", "kb-init", "kb-sync-sidecar", "mcp-1", "mcp-2", "mcp-3", "demo", "demo-kb", "demo-first-token"} == set(services)
    for name in ("kb-init", "kb-sync-sidecar"):
        files = [a for a in services[name]["command"] if a.startswith("--file=")]
        assert files and all("=file:///source/" in a for a in files), files
        assert any(v.endswith(":/source:ro") for v in services[name]["volumes"]), services[name]["volumes"]
    # Everything else is the real stack, unchanged.
    (real,) = load(rendered, "compose")
    for name in ("nginx", "mcp-1", "mcp-2", "mcp-3"):
        for key in ("image", "command", "environment", "volumes", "healthcheck", "depends_on", "user", "read_only", "cap_drop"):
            assert services[name].get(key) == real["services"][name].get(key), (name, key)
    kb = services["demo-kb"]["command"]
    assert kb[:3] == ["mcp-server", "kb", "build"]
    bundled = {v.split(":")[1] for v in services["demo-kb"]["volumes"] if ":/bundled" in v}
    assert bundled == {"/bundled/README.md", "/bundled/docs"}
    assert services["kb-init"]["depends_on"] == {"demo-kb": {"condition": "service_completed_successfully"},
                                                 "demo-first-token": {"condition": "service_completed_successfully"}}
    for name in ("demo", "demo-kb", "demo-first-token"):
        s = services[name]
        assert s["network_mode"] == "none" and s["read_only"] is True and s["cap_drop"] == ["ALL"], name


def test_compose_manifest_override(rendered):
    (config,) = load(rendered, "compose-manifest")
    for name in ("kb-init", "kb-sync-sidecar"):
        s = config["services"][name]
        assert s["command"][1:3] == ["--config", "/etc/kb-sync/sync.yaml"]
        assert any(v.endswith(":/etc/kb-sync/sync.yaml:ro") for v in s["volumes"])
    manifest = yaml.safe_load((COMPOSE / "sync.yaml").read_text())
    assert manifest["dest_dir"] == "/data"
    assert {f["name"] for f in manifest["files"]} == {"kb.db", "tokens.yaml", "users.yaml", "session.key"}


def test_env_example_has_the_settings():
    keys = {line.split("=", 1)[0].lstrip("# ").strip()
            for line in (COMPOSE / ".env.example").read_text().splitlines() if "=" in line}
    assert {"KB_S3_BUCKET", "KB_S3_PREFIX", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY", "KB_S3_PATH_STYLE", "MCP_TRUSTED_PROXIES", "PG_MCP_IMAGE"} <= keys


def nginx_text() -> str:
    text = (COMPOSE / "nginx" / "nginx.conf").read_text() + "\n" + (COMPOSE / "nginx" / "locations.conf").read_text()
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # drop comments


def block(text: str, head: str) -> str:
    m = re.search(re.escape(head) + r"\s*\{([^{}]*)\}", text)
    assert m, head
    return m[1]


def test_nginx_upstream_has_three_servers_with_keepalive():
    up = block(nginx_text(), "upstream mcp_servers")
    servers = re.findall(r"^\s*server\s+(\S+)", up, re.M)
    assert servers == ["mcp-1:8080", "mcp-2:8080", "mcp-3:8080"]
    assert re.search(r"^\s*keepalive\s+\d+;", up, re.M)
    assert all("max_fails=" in line for line in up.splitlines() if line.strip().startswith("server "))


def test_nginx_health_unauthenticated_and_mcp_rate_limited():
    text = nginx_text()
    health = block(text, "location = /health")
    assert "proxy_pass http://mcp_servers;" in health
    for directive in ("auth_basic", "auth_request", "limit_req", "deny"):
        assert directive not in health
    assert not re.search(r"^\s*(auth_basic|auth_request)\b", text, re.M), "no auth anywhere at the edge"
    mcp = block(text, "location /mcp")
    assert re.search(r"limit_req zone=mcp_per_ip\b", mcp)
    assert re.search(r"limit_req_zone \$binary_remote_addr zone=mcp_per_ip:", text)
    assert "proxy_pass http://mcp_servers;" in mcp


def test_nginx_proxy_settings_and_tls_ready():
    text = nginx_text()
    assert "proxy_http_version 1.1;" in text
    assert re.search(r'proxy_set_header Connection "";', text)
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in text
    assert "proxy_set_header X-Real-IP $remote_addr;" in text
    (nu,) = re.findall(r"proxy_next_upstream ([^;]*);", text)
    assert set(nu.split()) >= {"error", "timeout", "http_502", "http_503"}
    raw = (COMPOSE / "nginx" / "nginx.conf").read_text()
    assert re.search(r"^\s*#\s*listen 443 ssl;", raw, re.M)
    assert re.search(r"^\s*#\s*ssl_certificate\s+/etc/nginx/mcp/certs/", raw, re.M)


# --------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_one_image_three_binaries():
    ins = dockerfile_instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    # builder (cargo) or prebuilt (target/release/* from the context), picked
    # by BINARIES, then one final stage on RUNTIME_BASE.
    assert froms == ["rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder", "scratch AS prebuilt",
                     "${BINARIES} AS binaries", "${RUNTIME_BASE}"]
    args = dict(rest.split("=", 1) for word, rest in ins if word == "ARG" and "=" in rest)
    assert args["RUST_VERSION"] == "1.95"
    assert args["DEBIAN_RELEASE"] == "bookworm"  # = debian12: same glibc as the runtime
    assert args["RUNTIME_BASE"].startswith("gcr.io/distroless/cc-debian12")
    assert args["BINARIES"] == "builder"
    (prebuilt,) = [rest for word, rest in ins if word == "COPY" and "target/release/" in rest]
    for binary in ("mcp-server", "kb-init", "kb-sync-sidecar"):
        assert f"target/release/{binary}" in prebuilt
    # The final stage takes everything from `binaries`, /data owned by the user.
    final = ins[[i for i, (w, _) in enumerate(ins) if w == "FROM"][-1]:]
    copies = [rest for word, rest in final if word == "COPY"]
    assert copies == ["--from=binaries /out/usr/local/bin/ /usr/local/bin/",
                      f"--from=binaries --chown={RUNTIME_UID}:{RUNTIME_UID} /out/data /data"]
    # No frontend to fetch from a registry before an (offline) build.
    assert not (ROOT / "Dockerfile").read_text().lower().startswith("# syntax")
    (build,) = [rest for word, rest in ins if word == "RUN" and "cargo build" in rest]
    assert "--release" in build and "--locked" in build
    for binary in ("mcp-server", "kb-init", "kb-sync-sidecar"):
        assert f"-p {binary}" in build and f"target/release/{binary}" in build
    users = [rest for word, rest in ins if word == "USER"]
    assert users == [f"{RUNTIME_UID}:{RUNTIME_UID}"]  # numeric, for runAsNonRoot
    assert not any(word == "ENTRYPOINT" for word, _ in ins)  # `command` picks the binary
    assert ("CMD", '["mcp-server", "serve"]') in ins


def test_dockerignore_keeps_what_the_build_embeds():
    """mcp-server embeds README.md and docs/*.md (include_str!): the build
    context must carry them, and every workspace member."""
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]

    def ignored(rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(fnmatch.fnmatch(pre, pat) or fnmatch.fnmatch(pre, pat.removeprefix("**/"))
                   for pat in patterns for pre in prefixes)

    embedded = set()
    for src in (ROOT / "mcp-server" / "src").glob("*.rs"):
        for rel in re.findall(r'include_(?:str|bytes)!\("([^"]+)"\)', src.read_text()):
            embedded.add(str((src.parent / rel).resolve().relative_to(ROOT)))
    assert "README.md" in embedded
    members = re.search(r"members\s*=\s*\[([^\]]*)\]", (ROOT / "Cargo.toml").read_text())[1]
    needed = embedded | {"Cargo.toml", "Cargo.lock"} | {f"{m}/Cargo.toml" for m in re.findall(r'"([^"]+)"', members)}
    assert [p for p in sorted(needed) if ignored(p)] == []
    assert ignored("target/debug/mcp-server") and ignored(".git/HEAD") and ignored(".venv/bin/python")
