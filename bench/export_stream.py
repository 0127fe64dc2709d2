"""Benchmark 4: export streaming. demo_orders of one owner -> csv.gz (and the other formats,
null sink), by a real poller process.

Sinks: S3 (multipart upload to a moto server in its own process) and a null sink (the
same ExportFile stream read in 16 MiB parts and dropped), which separates the upload's
cost. Rows/s and MB/s are from the job's started_at -> finished_at (the whole attempt:
start, COPY, gzip, upload, finish); MB = 10^6 bytes of gzipped output. Peak RSS is the
poller process's VmHWM over its whole life (one fresh poller per size and sink).
Reference: psql's `\\copy (the same query, same parameters) to stdout csv header | gzip`;
ceiling: the same without gzip (what the database and psql alone do, the most any client
can); output size next to gzip -6's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import _common as c
import psycopg
from dispatch import poller_hosts

from app.exports import jobs
from app.exports.catalog import load_catalog
from app.exports.demo import seed_demo_orders
from app.exports.jobs import ExportRequest
from app.platform.settings import Settings

OWNER = "user-1"
MOTO = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()  # until our parent closes the pipe (or dies)
server.stop()
"""


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 in a child process; yields an s3:// storage URL's endpoint."""
    port = c.free_port()
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    process = subprocess.Popen(
        [sys.executable, "-c", MOTO, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("moto server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def seed_to(url: str, rows: int) -> None:
    """Make OWNER's demo rows number `rows` (adds the difference), then VACUUM ANALYZE."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM exports_demo.orders WHERE owner_id = %s", (OWNER,)
        ).fetchone()
        have = row[0] if row else 0
        if rows > have:
            seed_demo_orders(conn, rows - have, owners=1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE exports_demo.orders")


def clear_queue(url: str) -> None:
    """Forget the jobs earlier benchmarks queued: a real poller would run them all first."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE exports.outbox, exports.jobs CASCADE")


def export_once(url: str, timeout: float, fmt: str = "csv.gz") -> dict[str, Any]:
    """Queue one export of OWNER's orders in `fmt` and wait for it; its numbers."""
    request = ExportRequest(
        owner_id=OWNER, kind="demo_orders", params={}, format=fmt, notify_email=None
    )
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            job, _ = jobs.request_export(
                conn, jobs.DEFAULT_TENANT, request, idempotency_key=None, max_attempts=1
            )

        def ended() -> tuple | None:
            return conn.execute(
                "SELECT state, result_rows, result_bytes, last_error, "
                "extract(epoch FROM finished_at - started_at)::float8 "
                "FROM exports.jobs WHERE id = %s AND state NOT IN ('queued', 'running')",
                (job.id,),
            ).fetchone()

        state, rows, size, error, seconds = c.wait_for(ended, timeout=timeout, every=0.1)
    if state != "succeeded":
        raise RuntimeError(f"export {job.id} {state}: {error}")
    return {"rows": rows, "bytes": size, "seconds": seconds}


def exports_on(
    settings: Settings, *flags: str, runs: int, timeout: float, fmt: str = "csv.gz"
) -> tuple[list[dict[str, Any]], int]:
    """`runs` exports on one fresh poller process; (their numbers, its peak RSS KiB)."""
    peaks: list[int] = []
    with poller_hosts(settings, 1, *flags, peaks=peaks):
        results = [export_once(settings.database_url, timeout, fmt) for _ in range(runs)]
    return results, (peaks[0] if peaks else 0)


def psql_reference(url: str, *, gzip: bool = True) -> tuple[float, int]:
    """(seconds, output bytes) of psql \\copy (the kind's query for OWNER) to stdout csv
    header, piped through `gzip` (gzip -6) or, without it, into /dev/null: the database
    and psql alone, the ceiling of any client."""
    kind = load_catalog(Settings().catalog_dir).get("demo_orders")
    assert kind is not None
    with psycopg.connect(url) as conn:
        query = psycopg.ClientCursor(conn).mogrify(
            kind.query, kind.bind(OWNER, kind.validate_params({}))
        )
    query = " ".join(query.split())  # \copy must be one line
    psql = shutil.which("psql") or "/usr/bin/psql"
    sink = "| gzip | wc -c" if gzip else "| wc -c"
    started = time.perf_counter()
    out = subprocess.run(
        f"{psql} -X -q -d '{url}' -c \"\\copy ({query}) to stdout csv header\" {sink}",
        shell=True,
        check=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
    ).stdout
    return time.perf_counter() - started, int(out.strip())


def s3_settings(settings: Settings, endpoint: str) -> Settings:
    """The same settings, storing into a new bucket on the moto server at `endpoint`."""
    import dataclasses

    import boto3

    bucket = f"exports-bench-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return dataclasses.replace(
        settings, storage_url=f"s3://{bucket}/exports", aws_endpoint_url=endpoint
    )
