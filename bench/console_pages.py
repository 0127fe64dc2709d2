"""The operator console's list pages with 100,000 jobs in the table, next to their query in psql.

Fills a scratch database with 100,000 jobs (20 tenants, 7 owners each, every state, a
month of created_at), signs in with an operator key and times each page through the app
(Flask's test client: the query, the template, the response; no network), 20 times,
median. Reference: the page's own query, with the same parameters, run by psql with
`\\timing` (what the database alone needs), also a median of 20. Target: every page under
200 ms.

    .venv/bin/python bench/console_pages.py [--jobs 100000]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import time
from urllib.parse import urlencode

import _common as c
import psycopg
from flask.testing import FlaskClient

from app import create_app
from app.platform.db import QUERIES
from app.tenancy import clients

RUNS = 20
# One job in eight failed, one queued, ...: a busy service's mix.
STATES = (
    "ARRAY['succeeded', 'succeeded', 'succeeded', 'succeeded', 'failed', 'cancelled',"
    " 'expired', 'queued']"
)


def fill(url: str, count: int) -> None:
    """`count` jobs over 20 tenants, newest now, one every ~26 s back over a month."""
    with psycopg.connect(url) as conn:
        conn.execute(
            f"""
            INSERT INTO exports.jobs (tenant, owner_id, kind, format, state, created_at,
                                      started_at, finished_at, result_key, attempts)
            SELECT 'tenant-' || (i %% 20), 'owner-' || (i %% 7), 'demo_orders', 'csv.gz', s.state,
                   now() - i * interval '26 seconds',
                   now() - i * interval '26 seconds' + interval '1 second',
                   CASE WHEN s.state <> 'queued'
                        THEN now() - i * interval '26 seconds' + interval '5 seconds' END,
                   CASE WHEN s.state = 'succeeded' THEN 'x/' || i END, 1
            FROM generate_series(1, %s) i
            CROSS JOIN LATERAL (SELECT ({STATES})[1 + i %% 8] AS state) s
            """,
            (count,),
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE exports.jobs")


def median_ms(call: object) -> float:
    took = []
    for _ in range(RUNS):
        began = time.perf_counter()
        call()  # type: ignore[operator]
        took.append(time.perf_counter() - began)
    return statistics.median(took) * 1000


def psql_ms(url: str, query: str) -> float:
    """Median of RUNS executions by psql (`\\timing`): the database's time for the query."""
    # JIT off, as the service's own sessions run (app/platform/db.py): with it, psql spent
    # ~9 ms compiling the chart's query at every run.
    script = "SET jit = off;\n\\timing on\n" + "\n".join([query.rstrip().rstrip(";") + ";"] * RUNS)
    out = subprocess.run(
        ["psql", "-X", "-q", "-o", "/dev/null", "-d", url], input=script, text=True,
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    times = [float(t) for t in re.findall(r"Time: ([\d.]+) ms", out)]
    assert len(times) == RUNS, out
    return statistics.median(times)


def console_query(conn: psycopg.Connection, **params: object) -> str:
    """The jobs page's query with these parameters in it, as psql will run it."""
    base = dict.fromkeys(
        ("state", "tenant", "owner_id", "kind", "schedule_id", "before_created_at", "before_id")
    )
    return psycopg.ClientCursor(conn).mogrify(QUERIES["console_jobs"], base | params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    c.add_server_option(parser)
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    c.quiet_logs()
    print(c.machine_line())
    with c.scratch_database(args.server, keep=args.keep_db) as url, c.workdir() as folder:
        fill(url, args.jobs)
        app = create_app(c.bench_settings(url, folder))
        with psycopg.connect(url) as conn:
            key = clients.create_client(conn, "bench", operator=True)[1]
            middle = conn.execute(
                "SELECT created_at, id FROM exports.jobs ORDER BY created_at DESC, id DESC"
                " OFFSET %s LIMIT 1",
                (args.jobs // 2,),
            ).fetchone()
            assert middle is not None
            at, job_id = middle
            pages = [
                ("jobs, newest", "/console/jobs", console_query(conn, limit=51)),
                ("jobs, page half-way down (keyset)",
                 "/console/jobs?" + urlencode({"before_at": at.isoformat(), "before_id": job_id}),
                 console_query(conn, before_created_at=at, before_id=job_id, limit=51)),
                ("jobs, state=failed", "/console/jobs?state=failed",
                 console_query(conn, state="failed", limit=51)),
                ("jobs, one tenant", "/console/jobs?tenant=tenant-7",
                 console_query(conn, tenant="tenant-7", limit=51)),
                ("jobs, one owner of any tenant", "/console/jobs?owner=owner-3",
                 console_query(conn, owner_id="owner-3", limit=51)),
                ("overview", "/console/", QUERIES["console_finished_per_minute"]),
                ("problems", "/console/problems", QUERIES["console_dead_by_topic"]),
            ]  # fmt: skip
        client = FlaskClient(app)
        assert client.post("/console/login", data={"key": key}).status_code == 303
        print(f"\n{args.jobs:,} jobs; medians of {RUNS}; reference: the page's main query, psql\n")
        print("| page | through the app | its query in psql | ratio |")
        print("|---|---|---|---|")
        for name, path, query in pages:
            assert client.get(path).status_code == 200, path

            def load(path: str = path) -> None:
                client.get(path)

            page_ms, db_ms = median_ms(load), psql_ms(url, query)
            print(f"| {name} | {page_ms:.1f} ms | {db_ms:.1f} ms | {page_ms / db_ms:.1f}x |")
        app.extensions["exports"].close()


if __name__ == "__main__":
    main()
