"""The product's processes under test: N `python -m poller` processes and one `exports-api`.

The fleet keeps a log file per poller process, remembers when and how each one ended
(SIGKILL, SIGTERM and how long it took to exit, or died on its own), and can say which
processes are alive, so the proxy can tell which poller sent a request.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from app.platform.settings import PROJECT_ROOT, Settings
from tests.support.processes import settings_env, start_poller_process
from tests.support.waiting import wait_until

SIGKILL = "sigkill"
SIGTERM = "sigterm"
CRASHED = "crashed"  # exited without being told to


@dataclass
class PollerProcess:
    """One poller process and how it ended."""

    index: int
    process: subprocess.Popen[Any]
    log_file: Path
    started_at: float
    signal: str | None = None  # SIGKILL / SIGTERM once sent
    signalled_at: float | None = None
    exited_at: float | None = None
    returncode: int | None = None
    _exit_seen: threading.Event = field(default_factory=threading.Event, repr=False)
    _ready: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def ready(self) -> bool:
        """True once the process logged "poller started" (its signal handlers are set)."""
        if self._ready:
            return True
        try:
            self._ready = b'"poller started"' in self.log_file.read_bytes()
        except OSError:
            return False
        return self._ready

    @property
    def ended_at(self) -> float | None:
        """When the process stopped working: killed at, or exited at."""
        return self.signalled_at if self.signal == SIGKILL else self.exited_at

    @property
    def exit_seconds(self) -> float | None:
        """SIGTERM to exit, in seconds (SIGTERM'd processes only)."""
        if self.signal != SIGTERM or self.exited_at is None or self.signalled_at is None:
            return None
        return self.exited_at - self.signalled_at


class PollerFleet:
    """Starts, kills and replaces poller processes; all share one configuration."""

    def __init__(self, settings: Settings, log_dir: Path, env: dict[str, str]) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.env = env
        self.processes: list[PollerProcess] = []
        self._lock = threading.Lock()

    def start_one(self) -> PollerProcess:
        """Start one more poller process."""
        with self._lock:
            index = len(self.processes) + 1
            log_file = self.log_dir / f"poller-{index:03d}.log"
            process = start_poller_process(self.settings, log_file, **self.env)
            poller = PollerProcess(index, process, log_file, time.time())
            self.processes.append(poller)
        threading.Thread(
            target=self._watch, args=(poller,), name=f"watch-poller-{index}", daemon=True
        ).start()
        return poller

    def active(self) -> list[PollerProcess]:
        """Pollers that run and were not signalled."""
        with self._lock:
            return [p for p in self.processes if p.signal is None and p.exited_at is None]

    def pids(self) -> list[int]:
        """Every poller process that may still be alive (also those draining after SIGTERM)."""
        with self._lock:
            return [p.pid for p in self.processes if p.exited_at is None]

    def by_pid(self, pid: int | None) -> PollerProcess | None:
        """The poller process with that pid (pids are not reused within a run, in practice)."""
        with self._lock:
            return next((p for p in self.processes if p.pid == pid), None)

    def kill(self, poller: PollerProcess) -> None:
        """SIGKILL: no clean-up, no goodbye."""
        poller.signal, poller.signalled_at = SIGKILL, time.time()
        poller.process.send_signal(signal.SIGKILL)
        poller._exit_seen.wait(10)

    def terminate(self, poller: PollerProcess) -> None:
        """SIGTERM: the poller should hand its work back and exit 0 (not awaited here)."""
        poller.signal, poller.signalled_at = SIGTERM, time.time()
        poller.process.send_signal(signal.SIGTERM)

    def crashed(self) -> list[PollerProcess]:
        """Pollers that exited although nobody signalled them."""
        with self._lock:
            return [p for p in self.processes if p.signal is None and p.exited_at is not None]

    def stop_all(self, timeout: float) -> None:
        """SIGTERM every live poller, wait for all to exit (SIGKILL after `timeout`).

        A poller still starting up is given a moment to set its signal handlers first.
        """
        for poller in self.active():
            wait_until(lambda p=poller: p.ready() or p.exited_at, timeout=30, what="start-up")
            self.terminate(poller)
        deadline = time.monotonic() + timeout
        for poller in list(self.processes):
            poller._exit_seen.wait(max(0.0, deadline - time.monotonic()))
            if poller.exited_at is None:
                poller.process.kill()
                poller._exit_seen.wait(10)

    def _watch(self, poller: PollerProcess) -> None:
        poller.returncode = poller.process.wait()
        poller.exited_at = time.time()
        poller._exit_seen.set()


class ApiServer:
    """`exports-api` (gunicorn) on a free port, configured like the pollers."""

    def __init__(self, settings: Settings, log_file: Path, port: int, env: dict[str, str]):
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_file = log_file
        self._env = {
            **settings_env(settings),
            **env,
            "EXPORTS_BIND": f"127.0.0.1:{port}",
            "EXPORTS_API_WORKERS": "2",
            "EXPORTS_API_THREADS": "4",
        }
        self.process: subprocess.Popen[Any] | None = None

    def start(self) -> ApiServer:
        """Start it and wait until /healthz answers."""
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from app.http.server import main; main()"],
                cwd=PROJECT_ROOT,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._healthy, timeout=30, what="the API to answer /healthz")
        return self

    def stop(self) -> None:
        """SIGTERM and wait (gunicorn finishes its requests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"the API exited with {self.process.returncode}; see {self.log_file}"
            )
        try:
            return requests.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False
