"""Throughput of the whole poller, and the raw claim rate of the outbox.

Part 1 (end to end): N small demo_orders exports (a few rows each, no email, file
storage) are queued through app.jobs.request_export (one transaction each, as the API
does), then P pollers built by poller.main.build_poller (T handler threads each) drain
the backlog. Prints jobs/s and per-job latency from the jobs table's timestamps:
queued → finished (includes the time spent waiting in the backlog) and started → finished
(the export itself).

Part 2 (the queue alone): N bare outbox messages, claimed with app.outbox.claim_batch in
batches of B and settled one by one with app.outbox.complete_message (each in its own
transaction, as the poller does) by C threads. Prints messages/s.

    .venv/bin/python bench/throughput.py                 # defaults: 2000 jobs, 2x4 pollers
    .venv/bin/python bench/throughput.py --processes     # pollers as exports-poller processes
    .venv/bin/python bench/throughput.py --jobs 10000 --pollers 4 --claim-batch 1,10,50
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import _common as c
import psycopg

from app import jobs, outbox
from app.jobs import ExportRequest
from app.settings import Settings
from poller.worker import worker_name


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="exports to run (default 2000)")
    parser.add_argument("--pollers", type=int, default=2, help="pollers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="handler threads each (default 4)")
    parser.add_argument("--batch", type=int, default=10, help="poller claim batch (default 10)")
    parser.add_argument("--format", default="csv", choices=["csv", "csv.gz"])
    parser.add_argument("--owners", type=int, default=200, help="demo owners (default 200)")
    parser.add_argument(
        "--rows-per-owner", type=int, default=5, help="demo rows per owner, i.e. per export"
    )
    parser.add_argument(
        "--processes",
        action="store_true",
        help="run each poller as an `exports-poller` process instead of threads in this one",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="instead of a backlog queued up front, start the pollers first and queue "
        "jobs at this many per second (open loop): queued → finished is then the latency "
        "a caller sees, NOTIFY wake-up included",
    )
    parser.add_argument("--timeout", type=float, default=600, help="give up after (s)")
    parser.add_argument(
        "--messages",
        type=int,
        default=None,
        help="messages for the claim benchmark (default: --jobs)",
    )
    parser.add_argument(
        "--claim-batch",
        default="10",
        help="claim batch size(s) for the claim benchmark, comma separated (default 10)",
    )
    parser.add_argument("--claim-threads", type=int, default=2, help="claiming threads (default 2)")
    parser.add_argument("--skip-pollers", action="store_true", help="only the claim benchmark")
    parser.add_argument("--skip-claim", action="store_true", help="only the poller benchmark")
    c.add_server_option(parser)
    return parser.parse_args()


# --- part 1: pollers ------------------------------------------------------------------------


def enqueue(url: str, args: argparse.Namespace, rate: float | None = None) -> float:
    """Queue `args.jobs` exports, one transaction each (paced at `rate`/s if given)."""
    started = time.perf_counter()
    pause = threading.Event()
    with psycopg.connect(url) as conn:
        for i in range(args.jobs):
            if rate:
                ahead = started + i / rate - time.perf_counter()
                if ahead > 0:
                    pause.wait(ahead)
            request = ExportRequest(
                owner_id=f"user-{1 + i % args.owners}",
                kind="demo_orders",
                params={},
                format=args.format,
                notify_email=None,
            )
            with conn.transaction():
                jobs.request_export(
                    conn, jobs.DEFAULT_TENANT, request, idempotency_key=None, max_attempts=5
                )
    return time.perf_counter() - started


@contextlib.contextmanager
def running_pollers(
    settings: Settings, count: int, processes: bool
) -> Iterator[tuple[list[int], Callable[[], None]]]:
    """`count` pollers running until the block ends; (their pids if processes, a check)."""
    if processes:
        with c.pollers_in_processes(settings, count) as (pids, check):
            yield pids, check
    else:
        with c.pollers_in_threads(settings, count) as check:
            yield [], check


def listeners(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'exports-poller-listen' AND query LIKE 'LISTEN%%'"
    ).fetchone()
    return row[0] if row else 0


def terminal_count(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM exports.jobs WHERE state NOT IN ('queued', 'running')"
    ).fetchone()
    return row[0] if row else 0


def bench_pollers(url: str, args: argparse.Namespace) -> None:
    with c.workdir() as folder:
        settings = c.bench_settings(
            url, folder, poller_threads=args.threads, poller_batch=args.batch
        )
        if not args.rate:
            enqueue_seconds = enqueue(url, args)
            print(
                f"queued {args.jobs} exports in {enqueue_seconds:.2f}s "
                f"({args.jobs / enqueue_seconds:.0f} jobs/s, one transaction each)"
            )
        with psycopg.connect(url, autocommit=True) as watch:
            started = time.perf_counter()
            cpu = c.CpuMeter()
            with running_pollers(settings, args.pollers, args.processes) as (pids, check):
                if args.rate:
                    # Let every poller reach its LISTEN before the first job arrives.
                    c.wait_for(
                        lambda: listeners(watch) >= args.pollers,
                        timeout=30,
                        every=0.02,
                        check=check,
                    )
                    started = time.perf_counter()
                    enqueue_seconds = enqueue(url, args, args.rate)
                    print(
                        f"queued {args.jobs} exports over {enqueue_seconds:.2f}s "
                        f"(asked {args.rate:g}/s, got {args.jobs / enqueue_seconds:.0f}/s)"
                    )
                c.wait_for(
                    lambda: terminal_count(watch) >= args.jobs,
                    timeout=args.timeout,
                    every=0.02,
                    check=check,
                )
                wall = time.perf_counter() - started
                cpu_used = cpu.read(pids)
            stats = watch.execute(
                """
                SELECT count(*) FILTER (WHERE state = 'succeeded'),
                       count(*) FILTER (WHERE state <> 'succeeded'),
                       sum(attempts),
                       extract(epoch FROM max(finished_at) - min(started_at)),
                       (SELECT count(DISTINCT leased_by) FROM exports.outbox)
                FROM exports.jobs
                """
            ).fetchone()
            queued_to_done = [
                r[0]
                for r in watch.execute(
                    "SELECT extract(epoch FROM finished_at - created_at)::float8 FROM exports.jobs"
                )
            ]
            started_to_done = [
                r[0]
                for r in watch.execute(
                    "SELECT extract(epoch FROM finished_at - started_at)::float8 FROM exports.jobs"
                )
            ]
    assert stats is not None
    succeeded, other, attempts, db_span, workers = stats
    mode = "processes" if args.processes else "threads in one process"
    c.print_table(
        [
            {
                "jobs": args.jobs,
                "pollers x threads": f"{args.pollers} x {args.threads} ({mode})",
                "succeeded": succeeded,
                "not succeeded": other,
                "attempts": attempts,
                "wall s": f"{wall:.2f}",
                "jobs/s (wall)": f"{args.jobs / wall:.0f}",
                "jobs/s (first start → last finish)": f"{args.jobs / float(db_span):.0f}",
                "distinct workers": workers,
                **cpu_used,
            }
        ],
        title="end to end: exports drained by pollers",
    )
    c.print_table(
        [
            {"latency": "queued → finished", **c.summary_ms(queued_to_done)},
            {"latency": "started → finished", **c.summary_ms(started_to_done)},
        ],
        title="per-job latency (from exports.jobs timestamps; "
        + (
            f"queued at {args.rate:g}/s while pollers ran)"
            if args.rate
            else "the backlog was queued up front)"
        ),
    )


# --- part 2: claim + complete -----------------------------------------------------------------


def add_bare_messages(url: str, count: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO exports.outbox (topic, job_id) "
            "SELECT 'export.run', NULL FROM generate_series(1, %s)",
            (count,),
        )


def claimer(url: str, batch: int, done: list[int], errors: list[BaseException]) -> None:
    name = worker_name()
    settled = 0
    try:
        with psycopg.connect(url) as conn:
            while True:
                with conn.transaction():
                    claimed = outbox.claim_batch(conn, batch=batch, lease_seconds=30, worker=name)
                if not claimed:
                    break
                for message in claimed:
                    with conn.transaction():
                        outbox.complete_message(conn, message)
                    settled += 1
    except BaseException as exc:
        errors.append(exc)
    done.append(settled)


def bench_claims(url: str, args: argparse.Namespace) -> None:
    count = args.messages or args.jobs
    rows = []
    for batch in (int(b) for b in args.claim_batch.split(",")):
        add_bare_messages(url, count)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE exports.outbox")
        done: list[int] = []
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=claimer, args=(url, batch, done, errors))
            for _ in range(args.claim_threads)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        if errors:
            raise errors[0]
        rows.append(
            {
                "messages": sum(done),
                "batch": batch,
                "threads": args.claim_threads,
                "seconds": f"{seconds:.2f}",
                "msgs/s": f"{sum(done) / seconds:.0f}",
                "per thread": "/".join(str(d) for d in done),
            }
        )
    c.print_table(
        rows,
        title="outbox alone: claim_batch (one txn) + complete_message (one txn per message)",
    )


def main() -> None:
    args = parse_args()
    c.quiet_logs()
    print(c.machine_line())
    with c.scratch_database(args.server, keep=args.keep_db) as url:
        if not args.skip_pollers:
            with psycopg.connect(url) as conn:
                from app.demo import seed_demo_orders

                seed_demo_orders(conn, args.owners * args.rows_per_owner, owners=args.owners)
                conn.execute("ANALYZE exports_demo.orders")
            bench_pollers(url, args)
        if not args.skip_claim:
            bench_claims(url, args)


if __name__ == "__main__":
    main()
