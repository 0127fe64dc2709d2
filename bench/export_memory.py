"""Big exports: speed, output size, and that the poller's memory does not grow with them.

One owner gets a large number of demo rows (app.demo.seed_demo_orders(..., owners=1),
seeded in steps so every size in --sizes is exported from the same table). For each
size, target (file storage; with --s3 also S3 multipart upload to a local moto server) and
format, one export job is queued with app.jobs.request_export and run by a real poller
(poller.main.build_poller, one handler thread) inside this process.

Memory: before each export the kernel's peak-RSS mark of this process is reset
(`echo 5 > /proc/self/clear_refs`); after it, VmHWM is the process's peak RSS during that
export and VmHWM - VmRSS(before) the most it added at any moment. Constant memory means
the peak does not grow with the export's size. (RSS before varies: the C allocator keeps
memory freed by an earlier export, so "peak - before" alone under-reports a warm process;
read both columns.)
Each target is warmed up with one unreported export first, so one-off imports and
allocations are not charged to the first measured size.

The moto server runs in a separate process on purpose: in this process it would keep
the uploaded object (and its parts) in our memory and be counted as export memory.

    .venv/bin/python bench/export_memory.py                       # 200k and 1M rows, file
    .venv/bin/python bench/export_memory.py --s3                  # ... and S3 (moto)
    .venv/bin/python bench/export_memory.py --sizes 1000000,5000000 --formats csv.gz --s3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import _common as c
import psycopg

from app import jobs
from app.demo import seed_demo_orders
from app.jobs import ExportRequest
from app.settings import Settings

MiB = 1024 * 1024
OWNER = "user-1"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="200000,1000000",
        help="rows per export, comma separated, ascending (default 200000,1000000)",
    )
    parser.add_argument(
        "--formats", default="csv.gz,csv", help="formats, comma separated (default csv.gz,csv)"
    )
    parser.add_argument("--s3", action="store_true", help="also export to S3 (local moto server)")
    parser.add_argument(
        "--no-file", action="store_true", help="skip file storage (with --s3: S3 only)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="run this many identical exports at once on one poller with as many "
        "threads (default 1); rows, MB and seconds are then per batch of exports",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure each export this many times (default 1)"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="per export (s)")
    c.add_server_option(parser)
    return parser.parse_args()


# --- memory -------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> int:
    """Reset VmHWM to the current RSS; return the current RSS in KiB."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return _status_kib("VmRSS")


# --- moto ---------------------------------------------------------------------------------

MOTO = """
import sys, threading
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()  # until our parent closes the pipe (or dies)
server.stop()
"""


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 in a child process; yields its endpoint URL, with fake credentials set."""
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
        stderr=subprocess.DEVNULL,  # its per-request access log
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


# --- one export ---------------------------------------------------------------------------


def run_export(url: str, fmt: str, timeout: float, check, count: int = 1) -> dict:
    """Queue `count` exports of OWNER's rows at once; wait until the poller finished all.

    rows/bytes are per export; seconds is from the first start to the last finish.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        request = ExportRequest(OWNER, "demo_orders", {}, fmt, None)
        ids = []
        with conn.transaction():
            for _ in range(count):
                job, _ = jobs.request_export(
                    conn, jobs.DEFAULT_TENANT, request, idempotency_key=None, max_attempts=1
                )
                ids.append(job.id)

        def ended() -> list[tuple] | None:
            rows = conn.execute(
                "SELECT state, result_rows, result_bytes, last_error, started_at, finished_at"
                " FROM exports.jobs WHERE id = ANY(%s) AND state NOT IN ('queued', 'running')",
                (ids,),
            ).fetchall()
            return rows if len(rows) == count else None

        rows = c.wait_for(ended, timeout=timeout, every=0.02, check=check)
    for state, _, _, error, _, _ in rows:
        if state != "succeeded":
            raise RuntimeError(f"an export {state}: {error}")
    seconds = (max(r[5] for r in rows) - min(r[4] for r in rows)).total_seconds()
    return {"rows": rows[0][1], "bytes": rows[0][2], "seconds": seconds}


def measure(url: str, fmt: str, timeout: float, check, count: int) -> dict:
    before_kib = reset_peak()
    started = time.perf_counter()
    result = run_export(url, fmt, timeout, check, count)
    wall = time.perf_counter() - started
    peak_kib = _status_kib("VmHWM")
    result.update(
        wall=wall,
        rss_before_mib=before_kib / 1024,
        peak_mib=peak_kib / 1024,
        growth_mib=(peak_kib - before_kib) / 1024,
    )
    return result


def main() -> None:
    args = parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    formats = args.formats.split(",")
    k = args.concurrency
    c.quiet_logs()
    print(c.machine_line())
    results = []
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(c.scratch_database(args.server, keep=args.keep_db))
        folder = stack.enter_context(c.workdir())
        targets: list[tuple[str, Settings]] = []
        if not args.no_file:
            targets.append(
                ("file", c.bench_settings(url, folder, poller_threads=k, poller_batch=k))
            )
        if args.s3:
            endpoint = stack.enter_context(moto_server())
            bucket = f"exports-bench-{uuid.uuid4().hex[:8]}"
            import boto3

            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
                Bucket=bucket
            )
            targets.append(
                (
                    "s3 (moto)",
                    c.bench_settings(
                        url,
                        folder,
                        storage_url=f"s3://{bucket}/exports",
                        aws_endpoint_url=endpoint,
                        poller_threads=k,
                        poller_batch=k,
                    ),
                )
            )
        seeded = 0
        for size in sizes:
            started = time.perf_counter()
            with psycopg.connect(url) as conn:
                seed_demo_orders(conn, size - seeded, owners=1)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE exports_demo.orders")
            print(
                f"seeded {size - seeded} rows (owner {OWNER} now has {size}) "
                f"in {time.perf_counter() - started:.1f}s",
                file=sys.stderr,
            )
            seeded = size
            for target, settings in targets:
                with c.pollers_in_threads(settings, 1) as check:
                    if size == sizes[0]:  # warm-up, not reported
                        for fmt in formats:
                            run_export(url, fmt, args.timeout, check)
                    for fmt in [f for f in formats for _ in range(args.repeat)]:
                        r = measure(url, fmt, args.timeout, check, k)
                        print(
                            f"{target} {fmt} {r['rows']} rows: {r['seconds']:.1f}s",
                            file=sys.stderr,
                        )
                        results.append(
                            {
                                "target": target,
                                "format": fmt,
                                **({"at once": str(k)} if k > 1 else {}),
                                "rows": f"{r['rows']:,}",
                                "output MB": f"{r['bytes'] / 1e6:.1f}",
                                "seconds": f"{r['seconds']:.2f}",
                                "MB/s": f"{k * r['bytes'] / 1e6 / r['seconds']:.1f}",
                                "rows/s": f"{k * r['rows'] / r['seconds']:,.0f}",
                                "RSS before MiB": f"{r['rss_before_mib']:.0f}",
                                "peak RSS MiB": f"{r['peak_mib']:.0f}",
                                "peak - before MiB": f"{r['growth_mib']:.1f}",
                            }
                        )
    c.print_table(
        results,
        title=(
            "one export each (seconds: job started → finished; MB = 10^6 bytes of output)"
            if k == 1
            else f"{k} identical exports at once on one poller with {k} threads (rows and "
            "output MB per export; seconds: first start → last finish; MB/s, rows/s: total)"
        ),
    )


if __name__ == "__main__":
    main()
