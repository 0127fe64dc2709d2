"""Benchmark 3: enqueue. The domain function, the HTTP API under load, and pgbench.

- `app.exports.jobs.request_export` (job row + export.run message, one transaction, what
  POST /v1/exports runs) in a loop: 1 producer, then 4 producer processes.
- `exports-api` (gunicorn, production settings: EXPORTS_ENV=production, its default
  workers and threads) under 8 concurrent keep-alive connections POSTing exports for a
  fixed time: with wrk when installed, else a Python client (threads, http.client).
- Reference: pgbench inserting one row per transaction into a small table, 1 and 4 clients.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import _common as c
import psycopg

from app.exports import jobs
from app.exports.jobs import ExportRequest
from app.platform.settings import Settings

# A fresh owner per request: the API limits how many exports one owner may have queued.
BODY = {
    "owner_id": "bench-0",
    "kind": "demo_orders",
    "params": {},
    "format": "csv.gz",
    "notify": {"email": "user1@example.com"},
}


def _produce(
    url: str, seconds: float, start_at: float, at_most: int | None = None
) -> tuple[int, float, float]:
    """One producer: request_export in a loop for `seconds` (or `at_most` jobs); (jobs,
    first, last) times."""
    prefix = f"bench-{os.getpid()}-"
    with psycopg.connect(url) as conn:
        time.sleep(max(0.0, start_at - time.time()))
        began = time.time()
        count = 0
        while time.time() - began < seconds and (at_most is None or count < at_most):
            request = ExportRequest(
                owner_id=f"{prefix}{count}",
                kind="demo_orders",
                params={},
                format="csv.gz",
                notify_email=None,
            )
            jobs.request_export(
                conn, jobs.DEFAULT_TENANT, request, idempotency_key=None, max_attempts=5
            )
            conn.commit()
            count += 1
        return count, began, time.time()


def domain_rate(url: str, producers: int, seconds: float) -> float:
    """jobs/s of `producers` processes calling request_export, one transaction each."""
    start_at = time.time() + 1.0  # all connected first
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(producers) as pool:
        results = pool.starmap(_produce, [(url, seconds, start_at)] * producers)
    total = sum(r[0] for r in results)
    return total / (max(r[2] for r in results) - min(r[1] for r in results))


def pgbench_rate(url: str, clients: int, seconds: float) -> float:
    """pgbench tps inserting one row per transaction (prepared statements)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS public.bench_insert "
            "(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "created_at timestamptz NOT NULL DEFAULT now(), payload text)"
        )
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write("INSERT INTO public.bench_insert (payload) VALUES ('x');\n")
    pgbench = shutil.which("pgbench") or "/usr/bin/pgbench"
    out = subprocess.run(
        [
            pgbench,
            "-n",
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(int(seconds)),
            "-f",
            script.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(script.name).unlink()
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    if not match:
        match = re.search(r"tps = ([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def like_a_live_system(url: str, jobs_at_least: int = 2_000) -> None:
    """Give exports.jobs rows and planner statistics, as a running system has them.

    On a new, never-analyzed table the dedupe lookup costs the same on jobs_newest as on
    jobs_owner_newest, takes the first, and the API's prepared statement keeps that plan
    until autovacuum's first ANALYZE: every request then reads all of the tenant's recent
    jobs (bench/README.md, "Enqueue: what limits it"). Production is past that within
    its first minute; the benchmark measures what comes after.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM exports.jobs").fetchone()
    missing = jobs_at_least - (row[0] if row else 0)
    if missing > 0:
        _produce(url, seconds=60.0, start_at=time.time(), at_most=missing)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE exports.jobs, exports.outbox")


def api_key(url: str) -> str | None:
    """A bearer key for the API when it requires one (app.tenancy.clients exists), else None."""
    try:
        from app.tenancy import clients
    except ImportError:
        return None
    with psycopg.connect(url) as conn:
        _, key = clients.create_client(conn, f"bench-{time.time_ns()}")
        conn.commit()
    return key


def start_api(settings: Settings) -> tuple[subprocess.Popen, int]:
    """exports-api (gunicorn) with production settings on a free port; waits for /healthz."""
    port = c.free_port()
    env = c.settings_env(settings)
    env.update(
        {
            "EXPORTS_ENV": "production",
            "EXPORTS_SECRET_KEY": secrets.token_urlsafe(32),
            "EXPORTS_BIND": f"127.0.0.1:{port}",
        }
    )
    for name in ("EXPORTS_API_WORKERS", "EXPORTS_API_THREADS", "EXPORTS_ACCESS_LOG"):
        env.pop(name, None)  # the production defaults
    process = subprocess.Popen([c.venv_tool("exports-api")], env=env, cwd=c.ROOT)

    def healthy() -> bool:
        try:
            conn = HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except OSError:
            return False

    def alive() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"exports-api exited with {process.returncode}")

    c.wait_for(healthy, timeout=60, every=0.1, check=alive)
    return process, port


def http_load(port: int, key: str | None, seconds: float, connections: int = 8) -> dict[str, Any]:
    """POST /v1/exports on `connections` keep-alive connections for `seconds`."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    probe = HTTPConnection("127.0.0.1", port, timeout=10)
    # A new owner each call: the same one would reach its quota of active jobs by the 6th.
    owner = f"bench-probe-{time.time_ns()}"
    probe.request("POST", "/v1/exports", json.dumps({**BODY, "owner_id": owner}), headers)
    response = probe.getresponse()
    if response.status != 202:
        raise RuntimeError(f"POST /v1/exports answered {response.status}: {response.read()!r}")
    wrk = shutil.which("wrk")
    if wrk:
        return _wrk(wrk, port, headers, seconds, connections)
    return _python_client(port, headers, seconds, connections)


def _wrk(
    wrk: str, port: int, headers: dict[str, str], seconds: float, connections: int
) -> dict[str, Any]:
    head, tail = json.dumps(BODY).split("bench-0")
    lua = "\n".join(
        [
            'wrk.method = "POST"',
            *(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
            f"local head, tail = [[{head}]], [[{tail}]]",
            "math.randomseed(os.time() + math.floor(os.clock() * 1e6))",
            "request = function()",
            "  local owner = string.format('bench-%d', math.random(1, 2000000000))",
            "  return wrk.format(nil, nil, nil, head .. owner .. tail)",
            "end",
            "done = function(summary, latency, requests)",
            '  io.write(string.format("p50_us %d\\np99_us %d\\n", '
            "latency:percentile(50), latency:percentile(99)))",
            '  io.write(string.format("non2xx %d\\n", summary.errors.status))',
            "end",
        ]
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    out = subprocess.run(
        [
            wrk,
            "-t",
            "2",
            "-c",
            str(connections),
            "-d",
            f"{int(seconds)}s",
            "-s",
            script.name,
            f"http://127.0.0.1:{port}/v1/exports",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(script.name).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = int(re.search(r"p50_us (\d+)", out).group(1)) / 1000  # type: ignore[union-attr]
    p99 = int(re.search(r"p99_us (\d+)", out).group(1)) / 1000  # type: ignore[union-attr]
    errors = int(re.search(r"non2xx (\d+)", out).group(1))  # type: ignore[union-attr]
    return {"client": "wrk", "rps": rps, "p50": p50, "p99": p99, "errors": errors}


def _python_client(
    port: int, headers: dict[str, str], seconds: float, connections: int
) -> dict[str, Any]:
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    deadline = time.perf_counter() + seconds

    def client(i: int) -> None:
        conn = HTTPConnection("127.0.0.1", port, timeout=30)
        sent = 0
        while time.perf_counter() < deadline:
            sent += 1
            body = json.dumps({**BODY, "owner_id": f"bench-{i}-{sent}"})
            started = time.perf_counter()
            conn.request("POST", "/v1/exports", body, headers)
            response = conn.getresponse()
            response.read()
            latencies[i].append(time.perf_counter() - started)
            if response.status != 202:
                errors[i] += 1

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    every = [v for per in latencies for v in per]
    return {
        "client": "python threads",
        "rps": len(every) / wall,
        "p50": c.percentile(every, 50) * 1000,
        "p99": c.percentile(every, 99) * 1000,
        "errors": sum(errors),
    }
