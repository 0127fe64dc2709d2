"""Per-tenant overrides of how pollers share work: max_running and weight.

The claim reads exports.tenant_limits at every claim (sql/queries/outbox.sql claim_fair),
so a change takes effect at once, in every poller. A tenant without a row gets
EXPORTS_MAX_RUNNING_PER_TENANT and weight 1.
"""

from __future__ import annotations

from psycopg import Connection

from app.platform.db import Row, fetch_all, fetch_one


def set_limit(
    conn: Connection,
    tenant: str,
    *,
    max_running: int | None = None,
    weight: int | None = None,
    note: str | None = None,
) -> Row:
    """Create or change the tenant's row; fields left None keep their value."""
    row = fetch_one(
        conn, "set_tenant_limit", tenant=tenant, max_running=max_running, weight=weight, note=note
    )
    assert row is not None
    return row


def clear_limit(conn: Connection, tenant: str) -> bool:
    """Back to the defaults; False if the tenant had no row."""
    return fetch_one(conn, "clear_tenant_limit", tenant=tenant) is not None


def all_limits(conn: Connection) -> list[Row]:
    """Every override, by tenant."""
    return fetch_all(conn, "tenant_limits")
