"""What operators read: queue health, stuck and failing work, one job's history.

Reads only; the state changes exports-admin makes are the domain's (app/exports/jobs.py,
app/queue/outbox.py), which call the same SQL functions DBAs use from psql.
"""

from __future__ import annotations

import uuid

from psycopg import Connection

from app.platform.db import Row, fetch_all


def queue_health(conn: Connection) -> list[Row]:
    """Per topic: ready, leased, retrying, dead and the oldest ready message's age."""
    return fetch_all(conn, "queue_health")


def tenant_queue_health(conn: Connection, *, limit: int = 20) -> list[Row]:
    """Per tenant, biggest backlog first: ready, leased, running, retrying, its limits."""
    return fetch_all(conn, "tenant_queue_health", limit=limit)


def stuck(conn: Connection) -> list[Row]:
    """Unfinished messages that should have moved (exports.stuck), with why."""
    return fetch_all(conn, "stuck_messages")


def recent_failures(conn: Connection, *, limit: int = 20) -> list[Row]:
    """Messages that failed in the last 24 hours, newest first."""
    return fetch_all(conn, "recent_failures", limit=limit)


def jobs_by_state(conn: Connection, *, hours: int = 24) -> dict[str, int]:
    """How many jobs created in the last `hours` hours are in each state."""
    return {
        row["state"]: row["jobs"] for row in fetch_all(conn, "admin_jobs_by_state", hours=hours)
    }


def list_jobs(
    conn: Connection, *, state: str | None, owner_id: str | None, limit: int
) -> list[Row]:
    """Jobs of every tenant, newest first, optionally of one state and owner."""
    return fetch_all(conn, "admin_list_jobs", state=state, owner_id=owner_id, limit=limit)


def job_messages(conn: Connection, job_id: uuid.UUID) -> list[Row]:
    """The job's outbox messages with their readable state and error history."""
    return fetch_all(conn, "admin_job_messages", id=job_id)


def job_timeline(conn: Connection, job_id: uuid.UUID) -> list[Row]:
    """Everything that happened to the job, oldest first (exports.job_timeline)."""
    return fetch_all(conn, "job_timeline", id=job_id)


def workers(conn: Connection) -> list[Row]:
    """The registered pollers, most recent heartbeat first."""
    return fetch_all(conn, "admin_list_workers")


def webhook_endpoints(conn: Connection, *, tenant: str | None, limit: int) -> list[Row]:
    """Webhook endpoints of every tenant (or one), newest first, without their secrets."""
    return fetch_all(conn, "admin_list_webhook_endpoints", tenant=tenant, limit=limit)


def webhook_deliveries(
    conn: Connection, *, state: str | None, endpoint_id: uuid.UUID | None, limit: int
) -> list[Row]:
    """Webhook deliveries of every tenant, newest first, optionally one state's/endpoint's."""
    return fetch_all(
        conn, "admin_webhook_deliveries", state=state, endpoint_id=endpoint_id, limit=limit
    )


def delivery_tenant(conn: Connection, delivery_id: int) -> str | None:
    """The tenant a webhook delivery belongs to (None: no such delivery)."""
    rows = fetch_all(conn, "admin_delivery_tenant", id=delivery_id)
    return rows[0]["tenant"] if rows else None
