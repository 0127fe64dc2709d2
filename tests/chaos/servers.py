"""Servers the chaos test owns: a throwaway PostgreSQL cluster it may restart, moto's server.

Both run as child processes on free localhost ports and are removed at the end. PostgreSQL
refuses to run as root, so as root the cluster belongs to the `postgres` system user and
initdb/pg_ctl run as that user (as scripts/dev-db does).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.support.waiting import wait_until

SUPERUSER = "postgres"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin_dir() -> Path:
    """$PG_BIN, else the newest /usr/lib/postgresql/<major>/bin holding initdb and pg_ctl."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    candidates = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return candidates[-1]


class PostgresCluster:
    """initdb'd into a temp dir, listening on 127.0.0.1:<free port>, trust auth, fsync off.

    fsync=off survives a server crash (`stop -m immediate`), as the OS still holds the data;
    synchronous_commit stays on: off would lose just-committed transactions in that crash,
    after the API already answered 202 for them.
    """

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or postgres_bin_dir()
        self.as_root = os.geteuid() == 0
        # Not under pytest's tmp_path: as root, that is closed to the postgres user.
        self.base = Path(tempfile.mkdtemp(prefix="exports-chaos-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.port = free_port()

    # --- lifecycle ----------------------------------------------------------------------------

    def create(self) -> PostgresCluster:
        """initdb and start the server; returns self."""
        if self.as_root:
            owner = pwd.getpwnam(SUPERUSER)
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
        self.base.chmod(0o700)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base}'",
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "300",
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] '",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# chaos test\n")
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        self.start()
        return self

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60")
        wait_until(self.accepting, timeout=30, what="PostgreSQL to accept connections")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: mode fast (roll back, disconnect) or immediate (crash-like)."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")

    def restart(self, *, mode: str = "immediate", downtime: float = 3.0) -> tuple[float, float]:
        """Stop, stay down for `downtime` seconds, start again; (stopped at, back at)."""
        stopped = time.time()
        self.stop(mode)
        time.sleep(downtime)
        self.start()
        return stopped, time.time()

    def destroy(self) -> None:
        """Stop the server if it runs and remove its files."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    # --- using it -----------------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        """libpq URL of database `dbname` on this cluster."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def accepting(self) -> bool:
        """True when a connection succeeds now."""
        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name`; its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server log (for diagnostics)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no server log: {exc})"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        # cwd: the postgres user may not be allowed into ours. stdin/out closed: pg_ctl's
        # server must not hold our pipes open.
        result = subprocess.run(
            command,
            cwd=self.base,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, command, output=result.stdout + "\n" + self.log_tail()
            )


class MotoServer:
    """`python -m moto.server` on a free port: S3 and SES over HTTP, in its own process.

    A process of its own keeps its CPU off the test process, which runs the proxy.
    """

    def __init__(self, log_file: Path) -> None:
        self.port = free_port()
        self.log_file = log_file
        self.process: subprocess.Popen[Any] | None = None

    @property
    def url(self) -> str:
        """The endpoint (AWS_ENDPOINT_URL) spoken to directly, without the proxy."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, env: dict[str, str]) -> MotoServer:
        """Start it and wait until it answers."""
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._answers, timeout=30, what="moto's server to answer")
        return self

    def stop(self) -> None:
        """Terminate the server."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"moto's server exited with {self.process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False
