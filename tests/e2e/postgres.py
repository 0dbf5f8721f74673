"""A throwaway PostgreSQL 15 cluster on 127.0.0.1 for the end-to-end tests
(initdb and pg_ctl refuse root: they run as the postgres user)."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def pg_bin(name: str) -> str:
    path = shutil.which(name) or f"/usr/lib/postgresql/15/bin/{name}"
    assert Path(path).exists(), f"{name} not found: install PostgreSQL 15 (scripts/test.sh does)"
    return path


class Postgres:
    """A throwaway cluster on 127.0.0.1, run as the postgres user."""

    def __init__(self, port: int):
        self.port = port
        self.base = Path(tempfile.mkdtemp(prefix="mcp-pg-"))
        self.base.chmod(0o755)
        self.data = self.base / "data"
        self.data.mkdir()
        shutil.chown(self.data, "postgres", "postgres")
        self.as_pg(pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust")

    def as_pg(self, *args: str) -> subprocess.CompletedProcess:
        cmd = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out

    def start(self):
        self.as_pg(pg_bin("pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.data / "log"),
                   "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data}", "start")

    def stop(self):
        self.as_pg(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def sql(self, text: str) -> str:
        return self.as_pg("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                          "-v", "ON_ERROR_STOP=1", "-At", "-c", text).stdout

    def destroy(self):
        try:
            self.stop()
        except AssertionError:
            pass
        shutil.rmtree(self.base, ignore_errors=True)
