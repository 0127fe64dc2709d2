"""The outbox work queue: add messages, claim them with a lease, settle, hand back, prune.

The only code that writes exports.outbox (procrastinate's JobManager is the model): the
domain queues messages through add_message, the poller core claims and settles through the
rest. Each step of a job is one message of a topic (app/exports/topics.py). After a claim,
every write names the attempt it claimed; if another poller re-claimed the message since,
the write matches nothing and LeaseLost is raised.
"""

from __future__ import annotations

import contextlib
import datetime
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import Connection
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from app.platform.db import QUERIES, fenced, fetch_all, fetch_one


@dataclass(frozen=True)
class Message:
    """A claimed outbox row: what to do, and the attempt number that fences our writes."""

    id: int
    topic: str
    job_id: uuid.UUID | None
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    # From exports.topics at claim time: how long this attempt may run.
    deadline_seconds: float = 1800.0
    tenant: str = "default"

    @property
    def is_last_attempt(self) -> bool:
        """True when a failure now must bury the message instead of retrying it."""
        return self.attempts >= self.max_attempts

    @property
    def is_over_attempts(self) -> bool:
        """Claimed once more than allowed: earlier attempts ended without a word (lease lapsed)."""
        return self.attempts > self.max_attempts


def add_message(
    conn: Connection,
    topic: str,
    job_id: uuid.UUID | None,
    *,
    max_attempts: int,
    payload: dict[str, Any] | None = None,
    tenant: str | None = None,
) -> int:
    """Queue a message in the caller's transaction; pollers are woken when it commits.

    A job's message belongs to the job's tenant; one without a job names its `tenant`.
    """
    if job_id is None and tenant is None:
        raise ValueError("a message without a job must name its tenant")
    row = fetch_one(
        conn,
        "insert_message",
        topic=topic,
        job_id=job_id,
        payload=Jsonb(payload or {}),
        max_attempts=max_attempts,
        tenant=tenant,
    )
    assert row is not None
    return row["id"]


@dataclass(frozen=True)
class ClaimPolicy:
    """How claims share ready work between tenants (docs/decisions.md, "Fair claiming")."""

    # Round-robin across tenants with priorities and limits; fifo=True: oldest first across
    # everyone (EXPORTS_CLAIM_ORDER=fifo, the benchmark's reference; ignores limits).
    fifo: bool = False
    # EXPORTS_MAX_RUNNING_PER_TENANT: the default of exports.tenant_limits.max_running.
    max_running_per_tenant: int = 0

    def claim_query(
        self, batch: int, topics: list[str] | None, *, after_tenant: str
    ) -> tuple[str, dict[str, Any]]:
        """The claim query and its parameters, less the lease's."""
        if self.fifo:
            return QUERIES["claim_fifo"], {"batch": batch, "topics": topics}
        return QUERIES["claim_fair"], {
            "batch": batch,
            "topics": topics,
            "after_tenant": after_tenant,
            "max_running": self.max_running_per_tenant,
        }


def claim_batch(
    conn: Connection,
    *,
    batch: int,
    lease_seconds: float,
    worker: str,
    topics: list[str] | None = None,
    policy: ClaimPolicy = ClaimPolicy(),
    after_tenant: str = "",
) -> list[Message]:
    """Lease up to `batch` ready messages (of `topics` only, if given) to `worker`, the
    tenants taken in turn from the one below `after_tenant` (claim_fair's walk).

    Commit right after (an autocommit connection commits by itself): the lease holds, not
    the transaction.
    """
    # The limits' lock must last until the claim commits: one transaction, even in autocommit.
    with conn.transaction() if conn.autocommit else contextlib.nullcontext():
        _, [claimed] = complete_and_claim(
            conn,
            [],
            [(batch, topics)],
            lease_seconds=lease_seconds,
            worker=worker,
            policy=policy,
            after_tenant=after_tenant,
            commit=False,
        )
    return claimed


def complete_and_claim(
    conn: Connection,
    done: list[Message],
    claims: list[tuple[int, list[str] | None]],
    *,
    lease_seconds: float,
    worker: str,
    policy: ClaimPolicy = ClaimPolicy(),
    after_tenant: str = "",
    commit: bool = True,
) -> tuple[set[int], list[list[Message]]]:
    """Complete `done` (fenced), then claim per (batch, topics) in `claims`, and commit:
    one round trip (pipeline mode), one commit. Returns (ids completed, messages claimed
    per claim).

    Only for messages whose handlers' effects are already committed: an id missing from
    the result had lost its lease (another attempt owns the message now).
    """
    lease = {"lease_seconds": lease_seconds, "worker": worker}
    with conn.pipeline():
        if not policy.fifo and claims:
            # Before anything else: each later statement's snapshot must follow the lock.
            limits = {"max_running": policy.max_running_per_tenant}
            conn.execute(QUERIES["lock_for_tenant_limits"], limits)
        completing = conn.cursor(row_factory=tuple_row)
        if done:
            completing.execute(QUERIES["complete_messages"], fence_tokens(done))
        claiming = []
        for batch, topics in claims:
            query, params = policy.claim_query(batch, topics, after_tenant=after_tenant)
            # Plain tuples, not dict_row: the claims return Message's fields in order.
            cur = conn.cursor(row_factory=tuple_row)
            cur.execute(query, {**params, **lease})
            claiming.append(cur)
        if commit:
            conn.commit()
    completed = {row[0] for row in completing.fetchall()} if done else set()
    claimed = [[Message(*row) for row in cur.fetchall()] for cur in claiming]
    return completed, claimed


def next_tenant_cursor(after_tenant: str, claimed: list[Message]) -> str:
    """Where the next claim's walk over tenants starts: past the claimed tenant furthest
    along the rotation that began at `after_tenant` (unchanged when nothing was claimed).
    """
    if not claimed:
        return after_tenant
    # The walk goes down by name: first the tenants below the cursor, then round from the
    # top to the cursor itself (all of them when the cursor is '', the start).
    tenants = {m.tenant for m in claimed}
    second_lap = [t for t in tenants if t >= after_tenant]
    return min(second_lap or tenants)


def fence_tokens(messages: list[Message]) -> dict[str, list[int]]:
    """The (id, attempt) pairs of `messages` as the arrays batch queries unnest."""
    return {"ids": [m.id for m in messages], "attempts": [m.attempts for m in messages]}


def hand_back(conn: Connection, messages: list[Message], worker: str) -> list[Message]:
    """Shutdown: `worker` returns unfinished messages for others to run now, no attempt used.

    Returns those handed back: not those whose lease was lost, nor those whose attempt
    already recorded its own outcome (a retry or failure).
    """
    if not messages:
        return []
    rows = fetch_all(conn, "hand_back_messages", worker=worker, **fence_tokens(messages))
    returned = {row["id"] for row in rows}
    return [m for m in messages if m.id in returned]


def extend_leases(conn: Connection, messages: list[Message], *, lease_seconds: float) -> set[int]:
    """Heartbeat for all `messages` in one statement; returns the ids still held."""
    if not messages:
        return set()
    rows = fetch_all(conn, "extend_leases", lease_seconds=lease_seconds, **fence_tokens(messages))
    return {row["id"] for row in rows}


def complete_message(conn: Connection, message: Message) -> None:
    """Mark the message done; LeaseLost if it is no longer ours."""
    fenced(conn, "complete_message", id=message.id, attempt=message.attempts)


def complete_messages(conn: Connection, messages: list[Message]) -> set[int]:
    """Mark many messages done in one fenced statement; returns the ids still ours.

    Only for messages whose handlers' effects are already committed: the caller then knows
    the rest (not returned) were lost to another attempt.
    """
    if not messages:
        return set()
    rows = fetch_all(conn, "complete_messages", **fence_tokens(messages))
    return {row["id"] for row in rows}


def retry_message(conn: Connection, message: Message, error: str, delay_seconds: float) -> None:
    """Record a transient failure and hide the message for `delay_seconds`."""
    fenced(
        conn,
        "retry_message",
        id=message.id,
        attempt=message.attempts,
        error=error,
        delay_seconds=delay_seconds,
    )


def bury_message(conn: Connection, message: Message, error: str) -> None:
    """Give up on the message (permanent error or attempts exhausted)."""
    fenced(conn, "bury_message", id=message.id, attempt=message.attempts, error=error)


def requeue_message(conn: Connection, message_id: int, *, extra_attempts: int = 3) -> bool:
    """One dead message → ready again, with its job (exports.retry_message); False when it
    is unknown or not dead."""
    return bool(fetch_all(conn, "requeue_message", id=message_id, extra_attempts=extra_attempts))


def requeue_dead(
    conn: Connection,
    *,
    topic: str | None,
    since: datetime.datetime | None,
    extra_attempts: int = 3,
) -> list[dict[str, Any]]:
    """Dead messages of `topic` (None: all) that died since `since` → ready again, with their
    jobs (exports.requeue_dead); the revived messages as exports.queue rows."""
    return fetch_all(conn, "requeue_dead", topic=topic, since=since, extra_attempts=extra_attempts)


# Finished rows deleted per transaction by prune_outbox.
DEFAULT_PRUNE_BATCH = 1000


def prune_outbox(
    conn: psycopg.Connection,
    *,
    older_than: datetime.timedelta,
    batch_size: int = DEFAULT_PRUNE_BATCH,
) -> int:
    """Delete done and dead outbox messages that ended more than `older_than` ago; rows deleted.

    Works in batches of `batch_size`, committing after each, so no transaction holds many
    row locks or a long snapshot on the hot queue table; pass a connection with no other
    work pending. Unfinished messages are never touched.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if older_than < datetime.timedelta(0):
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
