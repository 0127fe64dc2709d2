"""The fair claim's plan at 100,000 ready messages, over 1 and over 1,000 tenants.

Prints `EXPLAIN (ANALYZE, BUFFERS)` of claim_fair (batch 100, a limit on every tenant so
the running count is part of it) and of claim_fifo for reference, each rolled back, and
the median time of 20 claims of each. bench/README.md quotes the output.

    .venv/bin/python bench/claim_plan.py [--tenants 1 1000] [--messages 100000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import _common as c
import psycopg

from app.platform.db import QUERIES


def fill(conn: psycopg.Connection, messages: int, tenants: int) -> None:
    """`messages` ready export.run messages spread evenly over `tenants`, plus 10 leased
    ones per tenant (what the running count looks at)."""
    conn.execute("DELETE FROM exports.outbox")
    conn.execute(
        "INSERT INTO exports.outbox (topic, tenant, owner_id, created_at, visible_at)"
        " SELECT 'export.run', 'tenant-' || lpad((i %% %(t)s)::text, 4, '0'),"
        "        'owner-' || (i %% 7), now() - interval '1 hour' + i * interval '1 ms',"
        "        now() - interval '1 hour' + i * interval '1 ms'"
        " FROM generate_series(1, %(n)s) i",
        {"n": messages, "t": tenants},
    )
    conn.execute(
        "INSERT INTO exports.outbox (topic, tenant, leased_by, visible_at)"
        " SELECT 'export.run', 'tenant-' || lpad((i %% %(t)s)::text, 4, '0'), 'somebody',"
        "        now() + interval '5 minutes'"
        " FROM generate_series(1, %(t)s * 10) i",
        {"t": tenants},
    )
    conn.commit()
    conn.autocommit = True  # VACUUM runs outside a transaction
    conn.execute("VACUUM ANALYZE exports.outbox")
    conn.autocommit = False


def params(query: str) -> dict[str, object]:
    base: dict[str, object] = {
        "batch": 100, "topics": None, "lease_seconds": 30, "worker": "plan",
    }  # fmt: skip
    if query == "claim_fair":
        base.update(after_tenant="", max_running=int(os.environ.get("PLAN_MAX_RUNNING", "0")))
    return base


def explain(conn: psycopg.Connection, query: str) -> str:
    """The plan of one claim, rolled back."""
    rows = conn.execute(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + QUERIES[query], params(query)
    ).fetchall()
    conn.rollback()
    return "\n".join(row[0] for row in rows)


def median_ms(conn: psycopg.Connection, query: str, times: int = 20) -> float:
    """Median wall time of one claim (rolled back, so every run sees the same queue)."""
    took = []
    for _ in range(times):
        began = time.perf_counter()
        conn.execute(QUERIES[query], params(query)).fetchall()
        took.append(time.perf_counter() - began)
        conn.rollback()
    return statistics.median(took) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    c.add_server_option(parser)
    parser.add_argument("--tenants", type=int, nargs="+", default=[1, 1000])
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    print(c.machine_line())
    with c.scratch_database(args.server, keep=args.keep_db) as url, psycopg.connect(url) as conn:
        conn.execute("SET jit = off")  # as the service's sessions run (app.platform.db)
        for tenants in args.tenants:
            fill(conn, args.messages, tenants)
            for query in ("claim_fair", "claim_fifo"):
                print(f"\n### {query}: {args.messages:,} ready messages over {tenants:,} "
                      f"tenant(s), batch 100 — median {median_ms(conn, query):.2f} ms")
                print(explain(conn, query))


if __name__ == "__main__":
    main()
