"""Noisy neighbour: tenant A queues a backlog of short exports, then tenant B asks for one.
How long does B wait, from its commit to its export's start?

One poller process (bench/poller_host.py, 4 threads) whose export.run handler works
(sleeps) ~100 ms and prints when each message starts. Per sample: the outbox is emptied,
A's `backlog` messages are committed, then B's one; B's wait = its handler's start - its
commit (same clock). Fair claiming (the default) against first-in-first-out
(EXPORTS_CLAIM_ORDER=fifo), where B waits for A's whole backlog: backlog x work / threads,
so FIFO gets a few samples only (each one is that long).

    .venv/bin/python bench/noisy_neighbour.py [--backlog 5000] [--samples 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import _common as c
import psycopg
from dispatch import HostProcess, poller_hosts

from app.platform.settings import Settings

WORK_SECONDS = 0.1
THREADS = 4


def queue_backlog(conn: psycopg.Connection, tenant: str, count: int) -> list[int]:
    """`count` ready export.run messages of `tenant` (no jobs: the handler never looks)."""
    rows = conn.execute(
        "INSERT INTO exports.outbox (topic, tenant, owner_id)"
        " SELECT 'export.run', %s, 'owner-' || (i %% 50) FROM generate_series(1, %s) i"
        " RETURNING id",
        (tenant, count),
    ).fetchall()
    conn.commit()
    return [row[0] for row in rows]


def empty_the_queue(conn: psycopg.Connection) -> None:
    """Delete what waits; let what runs finish (its completion must find its row)."""
    conn.execute("DELETE FROM exports.outbox WHERE leased_by IS NULL OR done_at IS NOT NULL")
    conn.commit()
    c.wait_for(
        lambda: conn.execute(
            "SELECT count(*) FROM exports.outbox WHERE done_at IS NULL AND dead_at IS NULL"
        ).fetchone()[0]  # type: ignore[index]
        == 0,
        timeout=60,
        every=0.01,
    )
    conn.execute("DELETE FROM exports.outbox")
    conn.commit()


def wait_of_b(conn: psycopg.Connection, host: HostProcess, backlog: int, timeout: float) -> float:
    """One sample: A's backlog, then B's message; seconds from B's commit to its start."""
    empty_the_queue(conn)
    queue_backlog(conn, "tenant-a", backlog)
    [b_id] = queue_backlog(conn, "tenant-b", 1)
    committed = time.time()
    deadline = time.monotonic() + timeout
    while True:
        _, started, message_id = host.readline(max(0.1, deadline - time.monotonic())).split()
        if int(message_id) == b_id:
            return float(started) - committed


def b_waits(settings: Settings, order: str, samples: int, backlog: int) -> list[float]:
    """`samples` waits of B behind A's `backlog`, claiming in `order` (fair or fifo)."""
    settings = dataclasses.replace(settings, claim_order=order, poller_threads=THREADS)
    timeout = backlog * WORK_SECONDS / THREADS * 2 + 30
    with (
        poller_hosts(settings, 1, "--noop", "--record", "--work", str(WORK_SECONDS)) as [host],
        psycopg.connect(settings.database_url) as conn,
    ):
        waits = [wait_of_b(conn, host, backlog, timeout) for _ in range(samples)]
        empty_the_queue(conn)
    return waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    c.add_server_option(parser)
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--fifo-samples", type=int, default=2)
    args = parser.parse_args()
    c.quiet_logs()
    print(c.machine_line())
    with c.scratch_database(args.server, keep=args.keep_db) as url, c.workdir() as folder:
        settings = dataclasses.replace(c.bench_settings(url, folder), metrics_port=0)
        for order, samples in (("fair", args.samples), ("fifo", args.fifo_samples)):
            waits = b_waits(settings, order, samples, args.backlog)
            print(f"{order}: B's wait behind {args.backlog:,} of A's {WORK_SECONDS * 1000:.0f} ms "
                  f"exports, {samples} samples: {c.summary_ms(waits)}")  # fmt: skip


if __name__ == "__main__":
    main()
