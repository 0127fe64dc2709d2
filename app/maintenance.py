"""Housekeeping shared by exports-admin and the poller's maintenance loop."""

from __future__ import annotations

import datetime as dt

import psycopg
from psycopg.rows import tuple_row

from app.db import QUERIES

DEFAULT_PRUNE_BATCH = 1000


def prune_outbox(
    conn: psycopg.Connection,
    *,
    older_than: dt.timedelta,
    batch_size: int = DEFAULT_PRUNE_BATCH,
) -> int:
    """Delete done and dead outbox messages that ended more than `older_than` ago; rows deleted.

    Works in batches of `batch_size`, committing after each, so no transaction holds many
    row locks or a long snapshot on the hot queue table; pass a connection with no other
    work pending. Unfinished messages are never touched.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if older_than < dt.timedelta(0):
        raise ValueError("older_than must not be negative")
    # One cutoff for every batch: rows finishing while we prune wait for the next run.
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT now() - %s::interval", (older_than,)).fetchone()
    assert row is not None
    cutoff = row[0]
    conn.commit()
    deleted = 0
    while True:
        with conn.cursor() as cur:
            cur.execute(QUERIES["prune_outbox_batch"], {"cutoff": cutoff, "batch_size": batch_size})
            batch = cur.rowcount
        conn.commit()
        deleted += batch
        if batch < batch_size:
            return deleted
