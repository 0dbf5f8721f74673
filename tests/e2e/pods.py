"""A Kubernetes Pod, run in Docker the way kubelet runs it, from a rendered
Deployment (no Kubernetes runtime can run on these machines).

Everything the Pod does comes from the manifest: each container's image,
command, args, env (value, fieldRef, configMapKeyRef, secretKeyRef),
envFrom, volumeMounts, ports, probes, securityContext and resource limits,
the Pod's securityContext (runAsUser/runAsGroup/fsGroup/runAsNonRoot),
volumes and terminationGracePeriodSeconds. What kubelet itself provides is
done here as kubelet does it:

- a pause container holds the network namespace; every container joins it,
  so they share one IP and reach each other on localhost;
- init containers run one at a time, each to exit 0 before the next; an
  init container with `restartPolicy: Always` is a native sidecar: it is
  started, and the next container waits for its startupProbe;
- then the containers start; probes are HTTP GETs to the Pod IP on the
  probe's port (a name is resolved through the container's ports);
- emptyDir volumes are directories made 0777, then given to fsGroup
  (group-owned, setgid), as kubelet's SetVolumeOwnership does;
- ConfigMap and Secret volumes use kubelet's atomic-writer layout: the files
  in a `..<timestamp>` directory, `..data` a symlink to it, and each key a
  symlink to `..data/<key>`; an update writes a new timestamped directory
  and renames a new `..data` over the old one; files get `defaultMode` (or
  the item's mode), owner root and, with fsGroup, group fsGroup and at least
  0440, as kubelet does for read-only volumes;
- runAsNonRoot is checked before a container starts (kubelet refuses a
  container whose user is 0), and fsGroup and supplementalGroups are added
  to every container's groups.

Only what the test's cluster adds is added: `cluster_env` (for the sync
containers, the S3 endpoint and credentials a real cluster's identity
webhook or a values file would provide).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from containers import PREFIX, docker, inspect, PAUSE_IMAGE
from harness import LOG_DIR, http


def quantity_bytes(q: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(q))
    assert m and (m[2] in units or m[2] == ""), q
    return int(float(m[1]) * units.get(m[2], 1))


def quantity_cpus(q) -> float:
    q = str(q)
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, (kind, len(found))
    return found[0]


class AtomicVolume:
    """A ConfigMap or Secret volume laid out as kubelet's atomic writer does."""

    def __init__(self, path: Path, mode: int, gid: int | None):
        self.path, self.mode, self.gid = path, mode, gid
        path.mkdir(parents=True)
        os.chmod(path, 0o755)
        if gid is not None:
            os.chown(path, 0, gid)
            os.chmod(path, 0o2755)
        self.generation = 0

    def write(self, files: dict[str, bytes], modes: dict[str, int] | None = None) -> None:
        modes = modes or {}
        stamp = datetime.now(timezone.utc).strftime("..%Y_%m_%d_%H_%M_%S.") + f"{time.time_ns() % 10**9:09d}"
        new = self.path / stamp
        new.mkdir(mode=0o755)
        if self.gid is not None:
            os.chown(new, 0, self.gid)
        for key, content in files.items():
            f = new / key
            f.write_bytes(content)
            mode = modes.get(key, self.mode)
            if self.gid is not None:
                os.chown(f, 0, self.gid)
                mode |= 0o440  # kubelet: read-only volumes get r for the group
            os.chmod(f, mode)
        data = self.path / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        tmp = self.path / "..data_tmp"
        if tmp.is_symlink():
            tmp.unlink()
        os.symlink(stamp, tmp)
        os.rename(tmp, data)  # the atomic swap every reader sees
        for key in files:
            link = self.path / key
            if not link.is_symlink():
                os.symlink(f"..data/{key}", link)
        for entry in self.path.iterdir():
            if not entry.name.startswith("..") and entry.name not in files:
                entry.unlink()
        if old:
            shutil.rmtree(self.path / old)
        self.generation += 1


@dataclass
class Started:
    name: str
    cid: str
    started: float = 0.0
    finished: float | None = None
    exit_code: int | None = None
    ready_at: float | None = None
    probe_answers: dict = field(default_factory=dict)


def docker_time(text: str) -> float:
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac or "0")[:6])


class Pod:
    """One Pod of `docs`' Deployment, run in Docker on `network`."""

    def __init__(self, docs: list[dict], network: str, workdir: Path, name: str,
                 secrets: dict[str, dict[str, bytes]] | None = None, cluster_env: dict[str, str] | None = None,
                 cluster_env_for: tuple[str, ...] = ("kb-init", "kb-sync-sidecar"), images: dict[str, str] | None = None):
        self.docs = docs
        self.deployment = one(docs, "Deployment")
        self.spec = self.deployment["spec"]["template"]["spec"]
        self.namespace = self.deployment["metadata"].get("namespace", "default")
        self.name = f"{self.deployment['metadata']['name']}-{uuid.uuid4().hex[:5]}"
        self.label = f"{PREFIX}-pod-{name}"
        self.network = network
        self.work = workdir
        self.configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
        self.secrets = secrets or {}
        self.cluster_env = cluster_env or {}
        self.cluster_env_for = cluster_env_for
        # The manifests name a registry image; it runs as the image this
        # commit built (no registry here), and only for that repository.
        self.images = images or {}
        self.psc = self.spec.get("securityContext", {})
        self.fs_group = self.psc.get("fsGroup")
        self.volumes: dict[str, Path] = {}
        self.atomic: dict[str, AtomicVolume] = {}
        self.started: dict[str, Started] = {}
        self.pause = None
        self.ip = None
        self.events: list[str] = []

    # ------------------------------------------------------------------ volumes
    def _make_volumes(self) -> None:
        for v in self.spec.get("volumes", []):
            path = self.work / "volumes" / v["name"]
            if "emptyDir" in v:
                path.mkdir(parents=True)
                os.chmod(path, 0o777)
                if self.fs_group is not None:
                    os.chown(path, 0, self.fs_group)
                    os.chmod(path, 0o2777)
            elif "configMap" in v:
                src = v["configMap"]
                av = AtomicVolume(path, src.get("defaultMode", 0o644), self.fs_group)
                data = self.configmaps[src["name"]]
                av.write(self._items(data, src))
                self.atomic[v["name"]] = av
            elif "secret" in v:
                src = v["secret"]
                assert src["secretName"] in self.secrets, f"Secret {src['secretName']} does not exist: the Pod would wait for it"
                av = AtomicVolume(path, src.get("defaultMode", 0o644), self.fs_group)
                av.write(self._items(self.secrets[src["secretName"]], src))
                self.atomic[v["name"]] = av
            else:
                raise AssertionError(f"volume type not emulated: {v}")
            self.volumes[v["name"]] = path

    @staticmethod
    def _items(data: dict, src: dict) -> dict[str, bytes]:
        as_bytes = {k: (v if isinstance(v, bytes) else str(v).encode()) for k, v in data.items()}
        if "items" not in src:
            return as_bytes
        return {i["path"]: as_bytes[i["key"]] for i in src["items"]}

    def update_secret(self, secret_name: str, files: dict[str, bytes]) -> None:
        """A Secret update as kubelet delivers it to every mount of it."""
        self.secrets[secret_name] = files
        for v in self.spec.get("volumes", []):
            if v.get("secret", {}).get("secretName") == secret_name:
                self.atomic[v["name"]].write(self._items(files, v["secret"]))

    # ---------------------------------------------------------------- containers
    def _env(self, c: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        for ef in c.get("envFrom", []):
            prefix = ef.get("prefix", "")
            if "configMapRef" in ef:
                env.update({prefix + k: str(v) for k, v in self.configmaps[ef["configMapRef"]["name"]].items()})
            elif "secretRef" in ef:
                env.update({prefix + k: v.decode() for k, v in self.secrets[ef["secretRef"]["name"]].items()})
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = str(e["value"])
            elif "valueFrom" in e:
                vf = e["valueFrom"]
                if "fieldRef" in vf:
                    env[e["name"]] = {"metadata.name": self.name, "metadata.namespace": self.namespace,
                                      "status.podIP": self.ip or ""}[vf["fieldRef"]["fieldPath"]]
                elif "configMapKeyRef" in vf:
                    env[e["name"]] = str(self.configmaps[vf["configMapKeyRef"]["name"]][vf["configMapKeyRef"]["key"]])
                elif "secretKeyRef" in vf:
                    env[e["name"]] = self.secrets[vf["secretKeyRef"]["name"]][vf["secretKeyRef"]["key"]].decode()
                else:
                    raise AssertionError(f"env source not emulated: {e}")
            else:
                env[e["name"]] = ""
        if c["name"] in self.cluster_env_for:
            env.update(self.cluster_env)
        return env

    def _user(self, c: dict, image: str) -> tuple[int, int | None]:
        sc = c.get("securityContext", {})
        uid = sc.get("runAsUser", self.psc.get("runAsUser"))
        gid = sc.get("runAsGroup", self.psc.get("runAsGroup"))
        if uid is None:
            user = inspect(image)["Config"].get("User") or "0"
            name, _, group = user.partition(":")
            assert name.isdigit(), f"runAsNonRoot cannot verify the non-numeric user {user!r}"
            uid = int(name)
            gid = gid if gid is not None else (int(group) if group.isdigit() else None)
        non_root = sc.get("runAsNonRoot", self.psc.get("runAsNonRoot"))
        if non_root:
            assert uid != 0, f"{c['name']}: runAsNonRoot and the user is 0: kubelet refuses to start it"
        return uid, gid

    def _image(self, c: dict) -> str:
        ref = c["image"]
        repo = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
        assert repo in self.images, f"{c['name']}: no local image for {ref}"
        return self.images[repo]

    def _run_args(self, c: dict) -> list[str]:
        image = self._image(c)
        uid, gid = self._user(c, image)
        sc = c.get("securityContext", {})
        args = ["--name", f"{self.label}-{c['name']}", "--label", f"{PREFIX}={self.label}",
                "--network", f"container:{self.pause}", "--pull", "never",
                "--user", f"{uid}:{gid if gid is not None else 0}"]
        groups = list(self.psc.get("supplementalGroups", []))
        if self.fs_group is not None:
            groups.append(self.fs_group)
        for g in groups:
            args += ["--group-add", str(g)]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges:true"]
        caps = sc.get("capabilities", {})
        for cap in caps.get("drop", []):
            args += ["--cap-drop", cap]
        for cap in caps.get("add", []):
            args += ["--cap-add", cap]
        seccomp = sc.get("seccompProfile", self.psc.get("seccompProfile", {})).get("type", "RuntimeDefault")
        if seccomp == "Unconfined":
            args += ["--security-opt", "seccomp=unconfined"]
        else:
            assert seccomp == "RuntimeDefault", seccomp  # docker's default profile
        limits = c.get("resources", {}).get("limits", {})
        if "memory" in limits:
            args += ["--memory", str(quantity_bytes(limits["memory"]))]
        if "cpu" in limits:
            args += ["--cpus", str(quantity_cpus(limits["cpu"]))]
        for k, v in self._env(c).items():
            args += ["-e", f"{k}={v}"]
        for m in c.get("volumeMounts", []):
            src = self.volumes[m["name"]]
            if m.get("subPath"):
                src = src / m["subPath"]
            args += ["-v", f"{src}:{m['mountPath']}{':ro' if m.get('readOnly') else ''}"]
        command = c.get("command")
        cmd_args = list(c.get("args", []))
        if command:
            args += ["--entrypoint", command[0]]
            cmd_args = list(command[1:]) + cmd_args
        return args + [image] + cmd_args

    def _create(self, c: dict) -> Started:
        cid = docker("create", *self._run_args(c)).stdout.strip()
        docker("start", cid)
        st = Started(c["name"], cid, started=docker_time(inspect(cid)["State"]["StartedAt"]))
        self.started[c["name"]] = st
        self.events.append(f"started {c['name']}")
        return st

    # -------------------------------------------------------------------- probes
    def port_of(self, c: dict, port) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        (num,) = [p["containerPort"] for p in c.get("ports", []) if p.get("name") == port]
        return num

    def probe(self, c: dict, kind: str) -> tuple[int, str]:
        p = c[kind]["httpGet"]
        url = f"http://{self.ip}:{self.port_of(c, p['port'])}{p['path']}"
        status, _, body = http("GET", url, timeout=c[kind].get("timeoutSeconds", 1))
        return status, body.decode(errors="replace")

    def wait_probe(self, c: dict, kind: str, poll: float = 0.2) -> float:
        """Until the probe answers 200 (kubelet: 200-399), within the
        manifest's budget (initialDelaySeconds + periodSeconds x failureThreshold)."""
        pr = c[kind]
        budget = pr.get("initialDelaySeconds", 0) + pr.get("periodSeconds", 10) * pr.get("failureThreshold", 3)
        deadline = time.time() + budget
        last = None
        while time.time() < deadline:
            st = inspect(self.started[c["name"]].cid)["State"]
            assert st["Running"], f"{c['name']} exited {st['ExitCode']} before its {kind} passed: {self.logs(c['name'])[-1500:]}"
            try:
                status, body = self.probe(c, kind)
                last = (status, body[:300])
                if 200 <= status < 400:
                    self.started[c["name"]].probe_answers[kind] = status
                    return time.time()
            except OSError as e:
                last = repr(e)
            time.sleep(poll)
        raise AssertionError(f"{c['name']} {kind} failed for {budget}s: {last}")

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Pause container, init containers in order (native sidecars gated
        on their startupProbe), then the containers, each until ready."""
        self._make_volumes()
        self.pause = f"{self.label}-pause"
        docker("run", "-d", "--init", "--name", self.pause, "--label", f"{PREFIX}={self.label}", "--network", self.network,
               "--hostname", self.name, "--pull", "never", PAUSE_IMAGE)
        self.ip = inspect(self.pause)["NetworkSettings"]["Networks"][self.network]["IPAddress"]
        for c in self.spec.get("initContainers", []):
            st = self._create(c)
            if c.get("restartPolicy") == "Always":
                if "startupProbe" in c:
                    st.ready_at = self.wait_probe(c, "startupProbe")
                    self.events.append(f"startupProbe passed {c['name']}")
                continue
            code = int(docker("wait", st.cid, timeout=600).stdout.strip())
            state = inspect(st.cid)["State"]
            st.exit_code, st.finished = code, docker_time(state["FinishedAt"])
            self.events.append(f"exited {c['name']} {code}")
            assert code == 0, f"init container {c['name']} exited {code}: the Pod stays in Init:Error\n{self.logs(c['name'])[-3000:]}"
        for c in self.spec["containers"]:
            st = self._create(c)
            if "readinessProbe" in c:
                st.ready_at = self.wait_probe(c, "readinessProbe")
                self.events.append(f"ready {c['name']}")

    def container(self, name: str) -> dict:
        spec = self.spec
        (c,) = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name]
        return c

    def logs(self, name: str) -> str:
        out = docker("logs", self.started[name].cid, check=False)
        return out.stdout + out.stderr

    def terminate(self) -> dict[str, tuple[int, float]]:
        """Pod deletion: SIGTERM to the containers with the grace period,
        then to the native sidecars in reverse order; returns exit codes and
        how long each took."""
        grace = self.spec.get("terminationGracePeriodSeconds", 30)
        out = {}
        order = [c["name"] for c in self.spec["containers"]]
        order += [c["name"] for c in reversed(self.spec.get("initContainers", [])) if c.get("restartPolicy") == "Always"]
        for name in order:
            st = self.started.get(name)
            if not st:
                continue
            t = time.monotonic()
            docker("stop", "--time", str(grace), st.cid, timeout=grace + 30)
            out[name] = (inspect(st.cid)["State"]["ExitCode"], time.monotonic() - t)
        return out

    def remove(self) -> None:
        for st in self.started.values():
            (LOG_DIR / f"{self.label}-{st.name}.log").write_text(self.logs(st.name))
        ids = docker("ps", "-aq", "--filter", f"label={PREFIX}={self.label}").stdout.split()
        if ids:
            docker("rm", "-f", "-v", *ids, check=False)

    def exec(self, name: str, *argv: str) -> subprocess.CompletedProcess:
        return docker("exec", self.started[name].cid, *argv, check=False)

    def pid(self, name: str) -> int:
        return inspect(self.started[name].cid)["State"]["Pid"]
