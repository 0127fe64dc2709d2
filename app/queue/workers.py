"""exports.workers: the pollers that are alive and what they hold. The only code that
writes the table (the registry heartbeats it, maintenance removes the silent)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from psycopg import Connection

from app.platform.db import fetch_all, fetch_one


@dataclass(frozen=True)
class WorkerRow:
    """What a poller says about itself."""

    id: str
    hostname: str
    pid: int
    version: str
    started_at: dt.datetime
    in_flight: int


def register(conn: Connection, row: WorkerRow) -> None:
    """A poller starting: its row, fresh."""
    fetch_one(conn, "register_worker", **dataclasses.asdict(row))


def heartbeat(conn: Connection, row: WorkerRow) -> None:
    """A sign of life (and the row again if it was lost: the table is UNLOGGED)."""
    fetch_one(conn, "worker_heartbeat", **dataclasses.asdict(row))


def deregister(conn: Connection, worker: str) -> None:
    """A clean stop: the poller's row goes."""
    fetch_one(conn, "deregister_worker", id=worker)


def delete_stale(conn: Connection, *, silent_for: dt.timedelta) -> list[str]:
    """Remove pollers silent for `silent_for` (they died without deregistering); their ids."""
    rows = fetch_all(conn, "delete_stale_workers", stale_seconds=silent_for.total_seconds())
    return [row["id"] for row in rows]


def try_maintenance_lock(conn: Connection) -> bool:
    """Take the fleet-wide maintenance lock for the rest of `conn`'s transaction, if free."""
    row = fetch_one(conn, "try_maintenance_lock")
    return bool(row and row["acquired"])
