"""Shared helpers for the benchmarks: a scratch database, settings, percentiles, tables.

Benchmarks print numbers; they never assert timings. Each one creates its own database
on the server (exports_bench_<pid>[_suffix]), migrates it with app.platform.schema.upgrade, adds
the demo table, and drops it again at the end (also on Ctrl-C).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from app.exports.demo import create_demo_table
from app.platform import crypto
from app.platform.schema import upgrade
from app.platform.settings import PROJECT_ROOT, Settings

DEFAULT_SERVER = os.environ.get(
    "BENCH_SERVER_URL",
    "postgresql://{user}@{host}:{port}/postgres".format(
        user=os.environ.get("PGUSER", "postgres"),
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ.get("PGPORT", "5432"),
    ),
)


def add_server_option(parser: Any) -> None:
    """--server: where scratch databases are created (a maintenance DB URL)."""
    parser.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        help="URL of a database on the PostgreSQL server to create the scratch database "
        "from (default: %(default)s; env BENCH_SERVER_URL or PGHOST/PGPORT/PGUSER)",
    )
    parser.add_argument(
        "--keep-db", action="store_true", help="do not drop the scratch database at the end"
    )


def _with_dbname(url: str, dbname: str) -> str:
    """The same server URL naming another database (Alembic needs a URL, not key=value)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise SystemExit(f"--server must be a postgresql:// URL, got {url!r}")
    return urlunsplit(parts._replace(path=f"/{dbname}"))


@contextlib.contextmanager
def scratch_database(server_url: str, suffix: str = "", *, keep: bool = False) -> Iterator[str]:
    """A freshly created, migrated database with the demo table; dropped afterwards."""
    name = f"exports_bench_{os.getpid()}{suffix}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _with_dbname(server_url, name)
    try:
        upgrade(url)
        with psycopg.connect(url) as conn:
            create_demo_table(conn)
        yield url
    finally:
        if keep:
            print(f"(kept scratch database {name})", file=sys.stderr)
        else:
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def bench_settings(database_url: str, workdir: Path, **overrides: Any) -> Settings:
    """Production defaults except: this database, storage and mail in `workdir`."""
    base = Settings(
        database_url=database_url,
        storage_url=f"file://{workdir / 'storage'}",
        mail_url=f"file://{workdir / 'mail'}",
        mail_from="exports@example.com",
        public_url="http://exports.bench",
        secret_key="bench-secret-key",
        env="test",
    )
    settings = dataclasses.replace(base, **overrides)
    # In-process domain calls encrypt addresses and secrets with the keys the benchmark's
    # pollers and API get through settings_env().
    crypto.configure(settings.encryption_keys)
    return settings


def settings_env(settings: Settings, metrics_port: int = 0) -> dict[str, str]:
    """Environment that makes Settings.from_env() reproduce `settings` (for subprocesses)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTS_")}
    env.update(settings.to_env())
    env["EXPORTS_LOG_LEVEL"] = "WARNING"
    # Several pollers on one host would all bind the default metrics port 9108: none
    # serves metrics unless a benchmark asks for a port of its own.
    env["EXPORTS_METRICS_PORT"] = str(metrics_port)
    env["EXPORTS_METRICS_BIND"] = "127.0.0.1"
    return env


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A temporary directory for file storage and mail."""
    with tempfile.TemporaryDirectory(prefix="exports-bench-") as folder:
        yield Path(folder)


def quiet_logs() -> None:
    """Only warnings and errors from the app, as plain lines on stderr (and SIGTERM
    handled, since every benchmark calls this first)."""
    exit_cleanly_on_sigterm()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank on the sorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary_ms(values_seconds: Sequence[float]) -> dict[str, str]:
    """p50/p95/p99/max/mean in milliseconds, formatted."""
    ms = [v * 1000 for v in values_seconds]
    return {
        "p50 ms": f"{percentile(ms, 50):.2f}",
        "p95 ms": f"{percentile(ms, 95):.2f}",
        "p99 ms": f"{percentile(ms, 99):.2f}",
        "max ms": f"{max(ms):.2f}" if ms else "nan",
        "mean ms": f"{statistics.fmean(ms):.2f}" if ms else "nan",
    }


def print_table(rows: Sequence[dict[str, Any]], title: str | None = None) -> None:
    """A plain-text table (also valid Markdown) of dicts sharing the same keys."""
    if title:
        print(f"\n{title}")
    if not rows:
        print("(no rows)")
        return
    headers = list(rows[0])
    cells = [[str(row.get(h, "")) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells:
        print("| " + " | ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)) + " |")


def machine_line() -> str:
    """One line describing where the numbers come from."""
    with psycopg.connect(DEFAULT_SERVER) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    version = row[0] if row else "?"
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"# {time.strftime('%Y-%m-%d %H:%M')} · {platform.node()} · {os.cpu_count()} cores · "
        f"Python {platform.python_version()} · PostgreSQL {version} · load average {load}"
    )


def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float,
    every: float = 0.05,
    check: Callable[[], None] | None = None,
) -> Any:
    """condition()'s first truthy value; TimeoutError after `timeout` seconds.

    `check` runs before every try and may raise (e.g. when a poller died): waiting on
    work that nobody will ever do must fail, not hang.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        if check is not None:
            check()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f}s")
        pause.wait(every)


@contextlib.contextmanager
def pollers_in_threads(settings: Settings, count: int) -> Iterator[Callable[[], None]]:
    """`count` pollers from poller.main.build_poller, each run() on a thread of this
    process, stopped gracefully at the end. Yields a check that raises if one died."""
    from poller.main import build_poller

    running: list[tuple[Any, threading.Thread]] = []
    errors: list[BaseException] = []

    def run(poller: Any) -> None:
        try:
            poller.run(grace_seconds=10)
        except BaseException as exc:
            errors.append(exc)
            raise  # threading.excepthook prints it

    def check() -> None:
        for built, thread in running:
            if not thread.is_alive():
                raise RuntimeError(f"poller {built.poller.name} stopped by itself") from (
                    errors[0] if errors else None
                )

    try:
        for _ in range(count):
            built = build_poller(settings)
            thread = threading.Thread(target=run, args=(built.poller,), daemon=True)
            running.append((built, thread))
            thread.start()
        yield check
    finally:
        for built, _ in running:
            built.poller.stop()
        for built, thread in running:
            thread.join(timeout=30)
            built.close()


@contextlib.contextmanager
def pollers_in_processes(
    settings: Settings, count: int, metrics_port: int = 0
) -> Iterator[tuple[list[int], Callable[[], None]]]:
    """`count` `exports-poller` processes with `settings`; SIGTERM (once) at the end.
    Yields their pids and a check that raises if one exited. `metrics_port` (one poller):
    where it serves /metrics."""
    env = settings_env(settings, metrics_port)
    procs = [
        subprocess.Popen([venv_tool("exports-poller")], env=env, cwd=ROOT) for _ in range(count)
    ]

    def check() -> None:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"exports-poller {proc.pid} exited with {proc.returncode}")

    try:
        yield [proc.pid for proc in procs], check
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()  # all at once: they drain in parallel
        for proc in procs:
            stop_process(proc, terminate=False)


def exit_cleanly_on_sigterm() -> None:
    """SIGTERM raises SystemExit, so `finally` blocks drop the scratch database."""
    import signal

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the clean-up finish
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def python() -> str:
    """The interpreter running this benchmark (the project's virtualenv)."""
    return sys.executable


def venv_tool(name: str) -> str:
    """Path of a console script next to the interpreter (exports-api, exports-poller)."""
    return str(Path(sys.executable).parent / name)


def stop_process(
    process: subprocess.Popen, timeout: float = 30.0, *, terminate: bool = True
) -> int:
    """SIGTERM (once: a second one means "exit now"), wait; SIGKILL after `timeout` s."""
    if process.poll() is None:
        if terminate:
            process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


ROOT = PROJECT_ROOT


class CpuMeter:
    """CPU used during a block: the whole machine (/proc/stat) and this process + children."""

    def __init__(self) -> None:
        self._machine = _machine_ticks()
        self._own = _own_seconds()
        self._wall = time.perf_counter()

    def read(self, children: Sequence[int] = ()) -> dict[str, str]:
        """Machine busy %; CPU seconds of this process plus the running `children`."""
        busy0, total0 = self._machine
        busy1, total1 = _machine_ticks()
        wall = time.perf_counter() - self._wall
        own = _own_seconds() - self._own + sum(_process_seconds(pid) for pid in children)
        cores = os.cpu_count() or 1
        return {
            "machine CPU busy": f"{100 * (busy1 - busy0) / max(1, total1 - total0):.0f}%",
            "poller process(es) CPU": f"{own:.1f}s of {wall * cores:.1f} core-s",
        }


def _machine_ticks() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _process_seconds(pid: int) -> float:
    """utime + stime of a running process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants now (Linux /proc), e.g. gunicorn's arbiter and workers."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            with open(f"/proc/{current}/task/{current}/children") as children:
                todo += [int(child) for child in children.read().split()]
        except OSError:
            pass  # it has exited
    return found


def processes_named(name: str) -> list[int]:
    """Every running process whose command name is `name` (all of PostgreSQL's: `postgres`)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """utime + stime of each process still running, by pid."""
    seconds = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # it has exited
            seconds[pid] = _process_seconds(pid)
    return seconds


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two cpu_seconds() readings by processes in both (a
    PostgreSQL backend that started in between counts from 0)."""
    return sum(after[pid] - before.get(pid, 0.0) for pid in after)
