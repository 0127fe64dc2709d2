"""API latency: POST /v1/exports, GET /v1/exports/{id} and a list page, request by request.

Default: in process, through Flask's test client on app.create_app(settings) (real
database, no network, no server): what our code and the database cost per request.
With --http: also against a real `exports-api` (gunicorn, gthread) started as a
subprocess on a free 127.0.0.1 port, over HTTP with `requests` (keep-alive session), with
--concurrency client threads. No poller runs: jobs stay queued.

    .venv/bin/python bench/api_latency.py                    # 1000 of each, test client
    .venv/bin/python bench/api_latency.py --http             # ... and over HTTP
    .venv/bin/python bench/api_latency.py --http --concurrency 8 --http-requests 4000
"""

from __future__ import annotations

import argparse
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import _common as c

from app import create_app

MAX_HTTP_REQUESTS = 20_000  # localhost only, and bounded


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="of each kind (default 1000)")
    parser.add_argument("--http", action="store_true", help="also over HTTP to exports-api")
    parser.add_argument(
        "--http-requests",
        type=int,
        default=None,
        help=f"of each kind over HTTP (default: --requests; at most {MAX_HTTP_REQUESTS})",
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="HTTP client threads (default 1)"
    )
    parser.add_argument(
        "--api-workers", type=int, default=2, help="gunicorn workers (EXPORTS_API_WORKERS)"
    )
    parser.add_argument(
        "--api-threads", type=int, default=4, help="threads per worker (EXPORTS_API_THREADS)"
    )
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured requests first")
    c.add_server_option(parser)
    return parser.parse_args()


def body(i: int) -> dict[str, Any]:
    return {
        "owner_id": f"user-{i % 100}",
        "kind": "demo_orders",
        "params": {"status": "shipped"} if i % 2 else {},
        "format": "csv.gz",
        "notify": {"email": f"user{i % 100}@example.com"},
    }


def timed(call: Callable[[], tuple[int, Any]], expect: int) -> tuple[float, Any]:
    started = time.perf_counter()
    status, payload = call()
    seconds = time.perf_counter() - started
    if status != expect:
        raise RuntimeError(f"expected HTTP {expect}, got {status}: {payload}")
    return seconds, payload


def row(mode: str, what: str, seconds: list[float], wall: float) -> dict[str, str]:
    return {
        "mode": mode,
        "request": what,
        "n": str(len(seconds)),
        "req/s": f"{len(seconds) / wall:.0f}",
        **c.summary_ms(seconds),
    }


# --- in process ---------------------------------------------------------------------------


def bench_test_client(settings: Any, n: int, warmup: int) -> list[dict[str, str]]:
    app = create_app(settings)
    client = app.test_client()

    def post(i: int) -> tuple[int, Any]:
        response = client.post("/v1/exports", json=body(i))
        return response.status_code, response.get_json()

    def get(job_id: str) -> tuple[int, Any]:
        response = client.get(f"/v1/exports/{job_id}")
        return response.status_code, response.get_json()

    def page(i: int) -> tuple[int, Any]:
        response = client.get(f"/v1/exports?owner_id=user-{i % 100}&limit=20")
        return response.status_code, response.get_json()

    try:
        for i in range(warmup):
            timed(lambda i=i: post(i), 202)
        rows = []
        ids: list[str] = []
        times: list[float] = []
        started = time.perf_counter()
        for i in range(n):
            seconds, job = timed(lambda i=i: post(i), 202)
            times.append(seconds)
            ids.append(job["id"])
        rows.append(row("test client", "POST /v1/exports", times, time.perf_counter() - started))
        times = []
        started = time.perf_counter()
        for job_id in ids:
            times.append(timed(lambda j=job_id: get(j), 200)[0])
        rows.append(
            row("test client", "GET /v1/exports/{id}", times, time.perf_counter() - started)
        )
        times = []
        started = time.perf_counter()
        for i in range(n):
            times.append(timed(lambda i=i: page(i), 200)[0])
        rows.append(
            row(
                "test client",
                "GET /v1/exports?owner_id&limit=20",
                times,
                time.perf_counter() - started,
            )
        )
        return rows
    finally:
        app.extensions["exports"].close()


# --- over HTTP ----------------------------------------------------------------------------


def start_api(settings: Any, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    port = c.free_port()
    env = c.settings_env(settings)
    env.update(
        {
            "EXPORTS_BIND": f"127.0.0.1:{port}",
            "EXPORTS_API_WORKERS": str(args.api_workers),
            "EXPORTS_API_THREADS": str(args.api_threads),
        }
    )
    env.pop("EXPORTS_ACCESS_LOG", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen([c.venv_tool("exports-api")], env=env, cwd=c.ROOT)
    base = f"http://127.0.0.1:{port}"
    import requests

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"exports-api exited with {process.returncode}")
        try:
            return requests.get(f"{base}/readyz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        c.wait_for(ready, timeout=60, every=0.1)
    except BaseException:
        c.stop_process(process)
        raise
    return process, base


def bench_http(settings: Any, args: argparse.Namespace) -> list[dict[str, str]]:
    import requests

    n = min(args.http_requests or args.requests, MAX_HTTP_REQUESTS)
    process, base = start_api(settings, args)
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    def post(i: int) -> tuple[int, Any]:
        response = session().post(f"{base}/v1/exports", json=body(i), timeout=30)
        return response.status_code, response.json()

    def get(job_id: str) -> tuple[int, Any]:
        response = session().get(f"{base}/v1/exports/{job_id}", timeout=30)
        return response.status_code, response.json()

    def page(i: int) -> tuple[int, Any]:
        response = session().get(f"{base}/v1/exports?owner_id=user-{i % 100}&limit=20", timeout=30)
        return response.status_code, response.json()

    mode = f"HTTP gunicorn {args.api_workers}w x {args.api_threads}t, {args.concurrency} client(s)"
    rows = []
    try:
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda i: timed(lambda: post(i), 202), range(args.warmup)))
            started = time.perf_counter()
            results = list(pool.map(lambda i: timed(lambda: post(i), 202), range(n)))
            rows.append(
                row(
                    mode, "POST /v1/exports", [r[0] for r in results], time.perf_counter() - started
                )
            )
            ids = [r[1]["id"] for r in results]
            started = time.perf_counter()
            times = list(pool.map(lambda j: timed(lambda: get(j), 200)[0], ids))
            rows.append(row(mode, "GET /v1/exports/{id}", times, time.perf_counter() - started))
            started = time.perf_counter()
            times = list(pool.map(lambda i: timed(lambda: page(i), 200)[0], range(n)))
            rows.append(
                row(mode, "GET /v1/exports?owner_id&limit=20", times, time.perf_counter() - started)
            )
    finally:
        c.stop_process(process)
    return rows


def main() -> None:
    args = parse_args()
    c.quiet_logs()
    print(c.machine_line())
    rows = []
    with c.scratch_database(args.server, keep=args.keep_db) as url, c.workdir() as folder:
        settings = c.bench_settings(url, folder)
        rows += bench_test_client(settings, args.requests, args.warmup)
        if args.http:
            rows += bench_http(settings, args)
    c.print_table(rows, title="API latency per request (client side, sequential unless noted)")


if __name__ == "__main__":
    main()
