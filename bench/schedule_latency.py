"""Schedule fire latency: from a schedule's due slot to its job's created_at, idle poller.

One `exports-poller` process runs with nothing else to do. For each sample, a schedule's
next_run_at is set a random 0.2-0.8 s into the future (by the database's clock, as a DBA
could; the trigger NOTIFYs the scheduler, which then sleeps until the slot); the latency is
the job's created_at (the database's clock in the firing transaction) minus the slot.
Also measured: when the job became visible (committed), polled every 5 ms by the database's
clock; and what the poller's own histogram `exports_schedule_lateness_seconds` (slot → job
committed, what the ScheduledExportLate alert reads) says, scraped from its /metrics.
Samples run one at a time. Then a burst: --burst schedules share one slot (fired
in transactions of poller.periodic.scheduler.FIRE_BATCH: when the first and the last were visible).
The schedules' cron is yearly, so nothing fires by itself during the run.

The poller counts as started once its scheduler's connection to this scratch database
LISTENs and a warm-up schedule has been fired (not counted): that proves the whole path.

    .venv/bin/python bench/schedule_latency.py                  # 100 samples, burst of 100
    .venv/bin/python bench/schedule_latency.py --quick          # 50 samples, burst of 100
    .venv/bin/python bench/schedule_latency.py --samples 300 --burst 500
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
from collections.abc import Callable
from typing import Any

import _common as c
import psycopg
from psycopg.rows import dict_row

from app.exports.jobs import ExportRequest
from app.schedules import store
from app.schedules.timing import Timing


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100, help="one-at-a-time slots (≥ 50)")
    parser.add_argument("--burst", type=int, default=100, help="schedules sharing one slot")
    parser.add_argument("--quick", action="store_true", help="50 samples (make bench --quick)")
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=120.0,
        help="seconds the poller may take to start firing (default %(default)s)",
    )
    c.add_server_option(parser)
    args = parser.parse_args()
    if args.quick:
        args.samples = 50
    return args


def awaited(what: str, condition: Callable[[], Any], *, timeout: float, **kwargs: Any) -> Any:
    """c.wait_for, failing with a message that says what never happened."""
    try:
        return c.wait_for(condition, timeout=timeout, **kwargs)
    except TimeoutError:
        raise SystemExit(
            f"schedule_latency: gave up after {timeout:g}s waiting for {what}"
        ) from None


def scheduler_listening(watcher: psycopg.Connection) -> bool:
    """The poller's scheduler has a connection to this database LISTENing for schedules.

    `watcher` is in autocommit: pg_stat_activity is a snapshot taken once per transaction,
    so a transaction that keeps polling it never sees a backend that connects later. The
    database filter matters: pollers of other databases on the same server have the same
    application_name.
    """
    return (
        watcher.execute(
            """SELECT 1 FROM pg_stat_activity
               WHERE datname = current_database()
                 AND application_name = 'exports-poller-scheduler'
                 AND query ILIKE %s""",
            (f"LISTEN {store.CHANNEL}%",),
        ).fetchone()
        is not None
    )


def create_schedules(conn: psycopg.Connection, count: int) -> list[str]:
    """`count` paused yearly schedules (their slots are set by hand below)."""
    ids = []
    for i in range(count):
        schedule, _ = store.create_schedule(
            conn,
            "default",
            ExportRequest(f"user-{i}", "demo_orders", {}, "csv", None),
            Timing("0 0 1 1 *", "UTC"),
            enabled=False,  # paused until its sample: no minute boundary fires it meanwhile
            now=dt.datetime.now(dt.UTC),
            idempotency_key=None,
        )
        ids.append(str(schedule.id))
    conn.commit()
    return ids


def arm(conn: psycopg.Connection, ids: list[str], seconds: float) -> dt.datetime:
    """Enable `ids` with next_run_at `seconds` from the database's now; that slot."""
    row = conn.execute(
        """UPDATE exports.schedules
           SET enabled = true, next_run_at = date_trunc('milliseconds', clock_timestamp())
                                             + make_interval(secs => %s)
           WHERE id = ANY(%s::uuid[]) RETURNING next_run_at""",
        (seconds, ids),
    ).fetchone()
    conn.commit()
    return row["next_run_at"]


def latencies(
    conn: psycopg.Connection, ids: list[str], slot: dt.datetime
) -> tuple[list[float], float] | None:
    """Seconds from `slot` to each schedule's job created_at, and to now (the database's
    clock) when every one of them is visible; None until then."""
    rows = conn.execute(
        """SELECT created_at, clock_timestamp() AS seen FROM exports.jobs
           WHERE schedule_id = ANY(%s::uuid[])""",
        (ids,),
    ).fetchall()
    conn.commit()
    if len(rows) < len(ids):
        return None
    return [(r["created_at"] - slot).total_seconds() for r in rows], (
        rows[0]["seen"] - slot
    ).total_seconds()


def burst_visibility(
    conn: psycopg.Connection, ids: list[str], slot: dt.datetime, check: Callable[[], None]
) -> tuple[float, float, list[float]]:
    """Seconds from `slot` to the first and to the last job visible; each one's created_at."""
    first: float | None = None

    def poll() -> tuple[float, list[float]] | None:
        nonlocal first
        rows = conn.execute(
            """SELECT created_at, clock_timestamp() AS seen FROM exports.jobs
               WHERE schedule_id = ANY(%s::uuid[])""",
            (ids,),
        ).fetchall()
        conn.commit()
        if rows and first is None:
            first = (rows[0]["seen"] - slot).total_seconds()
        if len(rows) < len(ids):
            return None
        return (rows[0]["seen"] - slot).total_seconds(), [
            (r["created_at"] - slot).total_seconds() for r in rows
        ]

    last, created = awaited(
        f"the {len(ids)} burst jobs", poll, timeout=120, every=0.005, check=check
    )
    assert first is not None
    return first, last, created


def lateness_histogram(port: int) -> dict[str, float]:
    """The poller's exports_schedule_lateness_seconds: count, mean, and p50/p99 as the upper
    bound of the bucket they fall in (what histogram_quantile would interpolate within)."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("exports_schedule_lateness_seconds_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
        elif line.startswith("exports_schedule_lateness_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("exports_schedule_lateness_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])

    def quantile(q: float) -> float:
        return next((bound for bound, n in buckets if n >= q * count), float("inf"))

    return {"count": count, "mean": total / count if count else 0.0,
            "p50": quantile(0.5), "p99": quantile(0.99)}  # fmt: skip


def main() -> None:
    args = parse_args()
    if args.samples < 50:
        raise SystemExit("--samples must be at least 50")
    c.quiet_logs()
    print(c.machine_line())
    with c.scratch_database(args.server, keep=args.keep_db) as url, c.workdir() as folder:
        settings = c.bench_settings(url, folder)
        with (
            psycopg.connect(url, row_factory=dict_row) as conn,
            psycopg.connect(url, autocommit=True) as watcher,
        ):
            warm_up = create_schedules(conn, 1)
            singles = create_schedules(conn, args.samples)
            burst = create_schedules(conn, args.burst)
            metrics_port = c.free_port()
            with c.pollers_in_processes(settings, 1, metrics_port) as (_, check):
                awaited(
                    "the poller's scheduler to LISTEN on this database",
                    lambda: scheduler_listening(watcher),
                    timeout=args.start_timeout,
                    every=0.1,
                    check=check,
                )
                slot = arm(conn, warm_up, 0.05)
                awaited(
                    "the warm-up schedule's job (the scheduler listens but does not fire)",
                    lambda: latencies(conn, warm_up, slot),
                    timeout=30,
                    every=0.01,
                    check=check,
                )
                one_by_one: list[float] = []
                visible: list[float] = []
                for schedule_id in singles:
                    slot = arm(conn, [schedule_id], random.uniform(0.2, 0.8))
                    (latency,), seen = awaited(
                        f"schedule {schedule_id}'s job (slot {slot.isoformat()})",
                        lambda s=schedule_id, t=slot: latencies(conn, [s], t),
                        timeout=30,
                        every=0.005,
                        check=check,
                    )
                    one_by_one.append(latency)
                    visible.append(seen)
                histogram = lateness_histogram(metrics_port)
                slot = arm(conn, burst, 0.5)
                first_seen, last_seen, together = burst_visibility(conn, burst, slot, check)
    early = sum(1 for v in one_by_one + together if v < 0)
    rows = [
        {"what": f"slot → created_at, one at a time (n={len(one_by_one)})"}
        | c.summary_ms(one_by_one),
        {"what": "slot → job visible (polled every 5 ms)"} | c.summary_ms(visible),
        {"what": f"burst of {len(together)} sharing a slot: slot → created_at"}
        | c.summary_ms(together),
        {"what": "burst: slot → first job visible"} | c.summary_ms([first_seen]),
        {"what": f"burst: slot → all {len(together)} jobs visible"} | c.summary_ms([last_seen]),
    ]
    c.print_table(rows, "due slot → job created_at (idle exports-poller, NOTIFY + timer)")
    print(
        "\nexports_schedule_lateness_seconds (the poller's histogram, warm-up and one-at-a-time"
        f" slots, n={histogram['count']:.0f}): mean {histogram['mean'] * 1000:.2f} ms,"
        f" p50 <= {histogram['p50'] * 1000:g} ms, p99 <= {histogram['p99'] * 1000:g} ms"
        " (bucket upper bounds)"
    )
    print(f"\nfired before their slot: {early} (must be 0)")
    print(f"one at a time: stdev {statistics.pstdev(one_by_one) * 1000:.2f} ms")
    print("load average at the end: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
