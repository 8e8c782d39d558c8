"""A throwaway PostgreSQL cluster from Debian's postgresql package (installed by .ci/run) on a free
loopback port. initdb refuses root, so the cluster runs as the postgres user, in a folder of its
own with its own socket directory."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.helpers import free_port


def server_binaries() -> Path | None:
    """Folder of initdb/pg_ctl/createdb, None where they (or root and runuser) are missing."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or os.geteuid() != 0 or shutil.which("runuser") is None:
        return None
    return Path(found[-1]).parent


class Cluster:
    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.home = Path(tempfile.mkdtemp(prefix="hpo-pg-", dir="/tmp"))
        shutil.chown(self.home, "postgres", "postgres")
        self.port = free_port()
        self._as_postgres(self.bin / "initdb", "-D", self.home / "data", "-A", "trust", "-U", "postgres")

    def _as_postgres(self, *args: object) -> None:
        argv = ["runuser", "-u", "postgres", "--", *map(str, args)]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def _ctl(self, *args: object) -> None:
        self._as_postgres(self.bin / "pg_ctl", "-D", self.home / "data", *args)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1"
        self._ctl("-o", options, "-w", "-l", self.home / "log", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def stop_when_sessions_end(self) -> subprocess.Popen[bytes]:
        """A smart shutdown: new connections are refused with "the database system is shutting
        down" (SQLSTATE 57P03) until every open session has closed, then the server stops."""
        argv = ["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.home / "data"),
                "-m", "smart", "-w", "-t", "120", "stop"]  # fmt: skip
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def createdb(self, name: str) -> str:
        """A new database; returns its URL (user postgres, trust authentication: no password)."""
        self._as_postgres(self.bin / "createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", name)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)
