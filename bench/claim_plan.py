"""The fair claim's plan at 100,000 ready messages, over 1 and over 1,000 tenants.

Prints the median time of 20 claims (each rolled back) of claim_fair, of claim_fair with a
limit on every tenant (reached, and not: the running count's two cases) and of claim_fifo,
and the
`EXPLAIN (ANALYZE, BUFFERS)` of claim_fair. bench/README.md quotes the output.

    .venv/bin/python bench/claim_plan.py [--tenants 1 1000] [--messages 100000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common as c
import psycopg

from app.platform.db import QUERIES, QUEUE_SESSION_OPTIONS


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
    # Leased as a claim leases: queued before the rest, so first in turn order (a claim
    # keeps a message's turn_at and moves only visible_at).
    conn.execute(
        "INSERT INTO exports.outbox (topic, tenant, leased_by, visible_at)"
        " SELECT 'export.run', 'tenant-' || lpad((i %% %(t)s)::text, 4, '0'), 'somebody',"
        "        now() - interval '2 hours'"
        " FROM generate_series(1, %(t)s * 10) i",
        {"t": tenants},
    )
    conn.execute(
        "UPDATE exports.outbox SET attempts = 1, visible_at = now() + interval '5 minutes'"
        " WHERE leased_by = 'somebody'"
    )
    # As a claim notes them while a limit is in force (what the running count reads).
    conn.execute(
        "INSERT INTO exports.limited_leases (message_id, tenant, attempts)"
        " SELECT id, tenant, attempts FROM exports.outbox WHERE leased_by = 'somebody'"
    )
    conn.commit()
    conn.autocommit = True  # VACUUM runs outside a transaction
    conn.execute("VACUUM ANALYZE exports.outbox")
    conn.autocommit = False


def params(query: str, max_running: int = 0) -> dict[str, object]:
    """A poller's claim of 100 (fair: from the first tenant, the given default limit)."""
    base: dict[str, object] = {
        "batch": 100, "topics": None, "lease_seconds": 30, "worker": "plan",
    }  # fmt: skip
    if query == "claim_fair":
        base.update(after_tenant="", max_running=max_running)
    return base


def explain(conn: psycopg.Connection, query: str) -> str:
    """The plan of one claim, rolled back."""
    rows = conn.execute(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + QUERIES[query], params(query)
    ).fetchall()
    conn.rollback()
    return "\n".join(row[0] for row in rows)


def median_ms(conn: psycopg.Connection, query: str, max_running: int = 0) -> float:
    """Median wall time of 20 claims, each rolled back so that all see the same queue."""
    took = []
    for _ in range(20):
        began = time.perf_counter()
        conn.execute(QUERIES[query], params(query, max_running)).fetchall()
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
    with (
        c.scratch_database(args.server, keep=args.keep_db) as url,
        psycopg.connect(url, options=QUEUE_SESSION_OPTIONS) as conn,  # as the pollers do
    ):
        for tenants in args.tenants:
            fill(conn, args.messages, tenants)
            fair = median_ms(conn, "claim_fair")
            # Each tenant has 10 leased: a limit of 10 is reached, one of 50 is not.
            at_limit, below = median_ms(conn, "claim_fair", 10), median_ms(conn, "claim_fair", 50)
            fifo = median_ms(conn, "claim_fifo")
            print(f"\n### {args.messages:,} ready messages over {tenants:,} tenant(s), batch 100")
            print(f"median of 20 claims: fair {fair:.2f} ms; with a limit, every tenant at it "
                  f"(10 leased, max_running 10) {at_limit:.2f} ms, below it (max_running 50) "
                  f"{below:.2f} ms; first-in-first-out {fifo:.2f} ms\n")
            print(explain(conn, "claim_fair"))


if __name__ == "__main__":
    main()
