"""Benchmarks 1 and 2: dispatch throughput of the poller, and idle pickup latency.

Dispatch: N ready `export.run` messages are inserted in one transaction while the pollers
sit idle (LISTENing); a no-op handler (bench/poller_host.py --noop) leaves completion to
the poller, so what is measured is claim -> run on a handler thread -> fenced batch
completion. Rate = N / (commit of the insert -> the last done_at). References on the same
table: a minimal psycopg loop claiming one and completing one (the floor) and the poller's
database path alone, a batch claimed and the previous one completed per transaction, no
handler or threads (the ceiling). With 1,000 tenants the same, the messages spread over
them (each claim then walks 100 tenants); FIFO claiming (EXPORTS_CLAIM_ORDER=fifo) is the
reference fairness is measured against.

Pickup: with the poller idle, `request_export` (what POST /v1/exports runs) commits, and
the handler prints the time it started: latency = handler start - commit, same clock.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import _common as c
import psycopg

from app.exports import jobs
from app.exports.jobs import ExportRequest
from app.platform.db import QUERIES, QUEUE_SESSION_OPTIONS
from app.platform.settings import Settings
from app.queue import outbox
from app.queue.outbox import ClaimPolicy, Message

HOST = str(c.ROOT / "bench" / "poller_host.py")


@dataclass
class HostProcess:
    """One bench/poller_host.py process."""

    process: subprocess.Popen

    def readline(self, timeout: float) -> str:
        """The next line it prints; TimeoutError if none comes in time."""
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("the poller printed nothing in time")
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"poller {self.process.pid} exited ({self.process.poll()})")
        return line.strip()

    def stop(self) -> int | None:
        """SIGTERM, wait; its peak RSS in KiB as it reported when exiting."""
        self.process.terminate()
        peak = None
        try:
            out, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        for line in (out or "").splitlines():
            if line.startswith("vmhwm_kib "):
                peak = int(line.split()[1])
        return peak


@contextlib.contextmanager
def poller_hosts(
    settings: Settings, count: int, *flags: str, peaks: list[int] | None = None
) -> Iterator[list[HostProcess]]:
    """`count` poller processes, started and LISTENing; stopped (SIGTERM) at the end."""
    env = c.settings_env(settings)
    env["PYTHONPATH"] = str(c.ROOT)
    hosts = [
        HostProcess(
            subprocess.Popen(
                [sys.executable, HOST, *flags],
                env=env,
                cwd=c.ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
        for _ in range(count)
    ]
    try:
        for host in hosts:
            if host.readline(60) != "ready":
                raise RuntimeError("poller_host did not start")
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            c.wait_for(lambda: listeners(conn) >= count, timeout=30, every=0.02)
        yield hosts
    finally:
        for host in hosts:
            host.process.terminate()  # all at once: they drain in parallel
        for host in hosts:
            peak = host.stop()
            if peaks is not None and peak:
                peaks.append(peak)


def listeners(conn: psycopg.Connection) -> int:
    """Pollers of this database whose listener is LISTENing."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'exports-poller-listen' AND query LIKE 'LISTEN%%'"
    ).fetchone()
    return row[0] if row else 0


def reset_outbox(url: str) -> None:
    """Empty the queue and vacuum it, so every measurement starts from the same table."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM exports.outbox")
        conn.execute("VACUUM ANALYZE exports.outbox")


def insert_messages(conn: psycopg.Connection, count: int, tenants: int = 1) -> None:
    """`count` ready export.run messages (no job: the no-op handler never looks), spread
    round-robin over `tenants` tenants."""
    conn.execute(
        "INSERT INTO exports.outbox (topic, job_id, tenant) "
        "SELECT 'export.run', NULL, 'tenant-' || (i %% %s) FROM generate_series(1, %s) i",
        (tenants, count),
    )


def drained(conn: psycopg.Connection) -> bool:
    """No message is left unfinished. One cheap probe: the check must not take CPU from
    the pollers it watches (a count(*) every 50 ms took 30-60 % of one of our 2 cores)."""
    row = conn.execute(
        "SELECT NOT EXISTS (SELECT FROM exports.outbox WHERE done_at IS NULL AND dead_at IS NULL)"
    ).fetchone()
    conn.commit()
    return bool(row and row[0])


def pollers_rate(settings: Settings, pollers: int, count: int, tenants: int = 1) -> float:
    """messages/s of `pollers` poller processes draining `count` no-op messages of
    `tenants` tenants."""
    url = settings.database_url
    reset_outbox(url)
    with poller_hosts(settings, pollers, "--noop"), psycopg.connect(url) as conn:
        insert_messages(conn, count, tenants)
        conn.commit()
        committed = time.time()
        # The rate is taken from the last done_at, so a coarse wait costs no accuracy.
        c.wait_for(lambda: drained(conn), timeout=600, every=0.25)
        row = conn.execute(
            "SELECT extract(epoch FROM max(done_at))::float8, count(*) FILTER "
            "(WHERE attempts <> 1 OR done_at IS NULL) FROM exports.outbox"
        ).fetchone()
        assert row is not None
        last_done, odd = row
        if odd:
            print(f"  note: {odd} messages took more than one attempt", file=sys.stderr)
    return count / (last_done - committed)


def floor_rate(url: str, count: int) -> float:
    """One psycopg connection: claim one (claim_fair, batch 1), commit; complete it, commit."""
    reset_outbox(url)
    with psycopg.connect(url, options=QUEUE_SESSION_OPTIONS) as conn:
        insert_messages(conn, count)
        conn.commit()
        # The claim a poller with the default settings makes (its cursor aside).
        claim, params = ClaimPolicy().claim_query(1, None, after_tenant="")
        complete = QUERIES["complete_message"]
        params |= {"lease_seconds": 30, "worker": "floor"}
        started = time.perf_counter()
        done = 0
        with conn.cursor() as cur:
            while True:
                row = cur.execute(claim, params).fetchone()
                conn.commit()
                if row is None:
                    break
                cur.execute(complete, {"id": row[0], "attempt": row[4]})
                conn.commit()
                done += 1
        return done / (time.perf_counter() - started)


def ceiling_rate(url: str, count: int, batch: int) -> float:
    """The poller's database path alone: `batch` claimed per transaction, the previous
    batch completed in the same one (outbox.complete_and_claim), no handler, no threads."""
    reset_outbox(url)
    with psycopg.connect(url, options=QUEUE_SESSION_OPTIONS) as conn:
        insert_messages(conn, count)
        conn.commit()
        done: list[Message] = []
        after, finished = "", 0
        started = time.perf_counter()
        while True:
            completed, [claimed] = outbox.complete_and_claim(
                conn, done, [(batch, None)], lease_seconds=30, worker="ceiling",
                after_tenant=after,
            )  # fmt: skip
            finished += len(completed)
            if not claimed:
                break
            after = outbox.next_tenant_cursor(after, claimed)
            done = claimed
        return finished / (time.perf_counter() - started)


def pickup_latencies(settings: Settings, samples: int) -> list[float]:
    """Seconds from request_export's commit to the (idle) poller's handler start."""
    request = ExportRequest(
        owner_id="user-1", kind="demo_orders", params={}, format="csv.gz", notify_email=None
    )
    latencies = []
    pause = threading.Event()
    rng = random.Random(7)
    with (
        poller_hosts(settings, 1, "--record") as [host],
        psycopg.connect(settings.database_url) as conn,
    ):
        for i in range(samples + 5):  # the first few warm the poller's connections up
            pause.wait(rng.uniform(0.02, 0.06))  # idle again: no claim or wake-up pending
            job, _ = jobs.request_export(
                conn, jobs.DEFAULT_TENANT, request, idempotency_key=None, max_attempts=5
            )
            conn.commit()
            committed = time.time()
            job_id, started, _ = host.readline(10).split()
            if job_id != str(job.id):
                raise RuntimeError(f"expected job {job.id}, the handler started {job_id}")
            if i >= 5:
                latencies.append(float(started) - committed)
    return latencies


if __name__ == "__main__":  # a quick look: python bench/dispatch.py
    c.quiet_logs()
    print(c.machine_line())
    with c.scratch_database(c.DEFAULT_SERVER) as url, c.workdir() as folder:
        s = c.bench_settings(url, folder, poller_batch=int(os.environ.get("BENCH_BATCH", "100")))
        n = int(os.environ.get("BENCH_MESSAGES", "5000"))
        print(f"floor {floor_rate(url, min(n, 2000)):.0f}/s")
        print(f"ceiling {ceiling_rate(url, n, s.poller_batch):.0f}/s")
        print(f"1 poller {pollers_rate(s, 1, n):.0f}/s")
        print(f"2 pollers {pollers_rate(s, 2, n):.0f}/s")
        print(f"1 poller, 1,000 tenants {pollers_rate(s, 1, n, tenants=1000):.0f}/s")
        lat = pickup_latencies(s, 50)
        print(c.summary_ms(lat))
