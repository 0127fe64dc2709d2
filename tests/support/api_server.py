"""The real `exports-api` (gunicorn) as a separate process, for defects that live in the
HTTP stack itself: chunked bodies, arbitrary method tokens, multiprocess metrics."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from app.platform.settings import PROJECT_ROOT, Settings
from tests.support.processes import settings_env
from tests.support.waiting import wait_until


@dataclass(frozen=True)
class ApiServer:
    """A running exports-api: its base URL and where its log goes."""

    url: str
    log: Path
    process: subprocess.Popen

    def alive(self) -> bool:
        """False once the server process has exited."""
        return self.process.poll() is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def api_server(settings: Settings, tmp_path: Path) -> Iterator[ApiServer]:
    """exports-api with the test's settings on a free loopback port, two workers."""
    port = _free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = settings_env(settings)
    env.update(
        EXPORTS_BIND=f"127.0.0.1:{port}",
        EXPORTS_API_WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    log = tmp_path / "api.log"
    executable = str(Path(sys.executable).parent / "exports-api")
    with log.open("ab") as out:
        process = subprocess.Popen(
            [executable], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    server = ApiServer(f"http://127.0.0.1:{port}", log, process)

    def healthy() -> bool:
        assert server.alive(), f"exports-api exited: {log.read_text()[-2000:]}"
        try:
            return requests.get(f"{server.url}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(healthy, timeout=60, what="exports-api to answer /healthz")
    yield server
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
