"""The poller's /healthz and /metrics, and `exports-poller --check` as ECS runs it."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from app.platform.settings import Settings
from poller.core.dispatch import Poller
from poller.core.health import HealthServer
from tests.support.processes import settings_env, start_poller_process
from tests.support.waiting import wait_until

EXPORTS_POLLER = str(Path(sys.executable).parent / "exports-poller")


def get(port: int, path: str) -> tuple[int, bytes]:
    """Status and body of GET http://127.0.0.1:<port><path>."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def healthz(port: int) -> tuple[int, str]:
    """/healthz's status code and the `status` field of its body."""
    code, body = get(port, "/healthz")
    return code, json.loads(body)["status"]


@contextlib.contextmanager
def claims_blocked(database_url: str) -> Iterator[None]:
    """Hold a lock that makes every claim query wait (the claim loop hangs in it)."""
    with psycopg.connect(database_url) as conn:
        conn.execute("LOCK TABLE exports.outbox IN ACCESS EXCLUSIVE MODE")
        yield
        conn.rollback()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def serve_health() -> Iterator[Callable[[Poller], HealthServer]]:
    """Serve a poller's /healthz and /metrics on a free port, with a 1 s stall limit."""
    servers: list[HealthServer] = []

    def serve(poller: Poller) -> HealthServer:
        server = HealthServer(poller, port=0, stall_seconds=1.0, host="127.0.0.1").start()
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.stop()


def test_healthz_is_200_while_the_claim_loop_runs_and_503_while_it_hangs(
    database_url: str,
    start_poller: Callable[..., Poller],
    serve_health: Callable[[Poller], HealthServer],
) -> None:
    server = serve_health(start_poller())
    assert wait_until(lambda: healthz(server.port) == (200, "ok"), what="healthy")

    with claims_blocked(database_url):
        wait_until(lambda: healthz(server.port) == (503, "stalled"), what="the stall to show")

    wait_until(lambda: healthz(server.port) == (200, "ok"), what="recovery")


def test_healthz_is_503_once_the_poller_is_stopping(
    start_poller: Callable[..., Poller], serve_health: Callable[[Poller], HealthServer]
) -> None:
    poller = start_poller()
    server = serve_health(poller)
    wait_until(lambda: healthz(server.port) == (200, "ok"), what="healthy")

    poller.stop()

    assert healthz(server.port) == (503, "stopping")


def test_metrics_are_prometheus_text(
    start_poller: Callable[..., Poller], serve_health: Callable[[Poller], HealthServer]
) -> None:
    server = serve_health(start_poller())

    code, body = get(server.port, "/metrics")

    assert code == 200
    assert b"# TYPE exports_poller_in_flight gauge" in body
    assert b"# HELP exports_maintenance_runs_total " in body
    assert get(server.port, "/nothing")[0] == 404


def test_head_is_answered_like_get_without_a_body(
    start_poller: Callable[..., Poller], serve_health: Callable[[Poller], HealthServer]
) -> None:
    # Issue 13: HEAD /metrics was a 501.
    server = serve_health(start_poller())

    for path, status in (("/metrics", 200), ("/healthz", 200), ("/nothing", 404)):
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                code, body = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            code, body = exc.code, exc.read()
        assert (code, body) == (status, b""), path


def test_the_metrics_server_binds_where_it_is_told(settings: Settings, tmp_path: Path) -> None:
    port = str(free_port())
    env = {**settings_env(settings), "EXPORTS_METRICS_PORT": port}
    poller = start_poller_process(
        settings,
        tmp_path / "poller.log",
        EXPORTS_METRICS_PORT=port,
        EXPORTS_METRICS_BIND="127.0.0.2",
    )
    try:
        wait_until(
            lambda: check({**env, "EXPORTS_METRICS_BIND": "127.0.0.2"}) == 0,
            what="/healthz on 127.0.0.2",
            interval=0.2,
        )
        with pytest.raises(urllib.error.URLError):  # nothing on the loopback address
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        poller.send_signal(signal.SIGTERM)
        assert poller.wait(timeout=30) == 0


def check(env: dict[str, str]) -> int:
    """`exports-poller --check` as a container health check runs it: its exit code."""
    return subprocess.run(
        [EXPORTS_POLLER, "--check"], env=env, capture_output=True, timeout=30
    ).returncode


def test_check_exits_0_for_a_healthy_poller_and_1_otherwise(
    database_url: str, settings: Settings, tmp_path: Path
) -> None:
    port = str(free_port())
    env = {**settings_env(settings), "EXPORTS_METRICS_PORT": port}
    assert check(env) == 1  # nothing listening yet

    poller = start_poller_process(
        settings,
        tmp_path / "poller.log",
        EXPORTS_METRICS_PORT=port,
        EXPORTS_POLLER_STALL_SECONDS="1",
    )
    try:
        wait_until(lambda: check(env) == 0, what="a healthy poller", interval=0.2)
        with claims_blocked(database_url):
            wait_until(lambda: check(env) == 1, what="the stalled poller to fail", interval=0.2)
        wait_until(lambda: check(env) == 0, what="recovery", interval=0.2)
        assert check({**env, "EXPORTS_METRICS_PORT": "0"}) == 1  # no /healthz to ask
    finally:
        poller.send_signal(signal.SIGTERM)
        assert poller.wait(timeout=30) == 0
