"""Claiming: concurrent pollers never get the same message; leases hide and reveal work."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from app.exports.topics import EXPORT_RUN
from app.queue import outbox


@pytest.fixture
def queued(db: psycopg.Connection) -> list[int]:
    """Twenty export.run messages (with their jobs), ready to claim."""
    ids = []
    for _ in range(20):
        job_id = uuid.uuid4()
        db.execute(
            "INSERT INTO exports.jobs (id, owner_id, kind, format) VALUES (%s, 'u', 'k', 'csv')",
            (job_id,),
        )
        ids.append(outbox.add_message(db, EXPORT_RUN, job_id, max_attempts=5))
    return ids


@pytest.fixture
def two_connections(database_url: str) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    with psycopg.connect(database_url) as a, psycopg.connect(database_url) as b:
        yield a, b


def test_concurrent_claims_skip_each_others_rows(
    queued: list[int], two_connections: tuple[psycopg.Connection, psycopg.Connection]
) -> None:
    a, b = two_connections
    # Both claims run while the other's transaction is still open (rows locked).
    first = outbox.claim_batch(a, batch=8, lease_seconds=30, worker="a")
    second = outbox.claim_batch(b, batch=8, lease_seconds=30, worker="b")
    a.commit()
    b.commit()

    assert len(first) == len(second) == 8
    assert not {m.id for m in first} & {m.id for m in second}
    assert [m.id for m in first] == queued[:8]  # oldest first


def test_leased_messages_are_invisible_until_the_lease_lapses(
    db: psycopg.Connection, queued: list[int]
) -> None:
    claimed = outbox.claim_batch(db, batch=20, lease_seconds=30, worker="a")

    assert outbox.claim_batch(db, batch=20, lease_seconds=30, worker="b") == []
    db.execute("UPDATE exports.outbox SET visible_at = now() - interval '1 second'")
    reclaimed = outbox.claim_batch(db, batch=20, lease_seconds=30, worker="b")
    assert {m.id for m in reclaimed} == {m.id for m in claimed}
    assert {m.attempts for m in reclaimed} == {2}


def test_heartbeat_extends_only_leases_still_held(
    db: psycopg.Connection, queued: list[int]
) -> None:
    mine = outbox.claim_batch(db, batch=3, lease_seconds=1, worker="a")
    lost = mine[0]
    db.execute("UPDATE exports.outbox SET attempts = attempts + 1 WHERE id = %s", (lost.id,))

    held = outbox.extend_leases(db, mine, lease_seconds=60)

    assert held == {m.id for m in mine[1:]}
    leases = db.execute(
        "SELECT id, visible_at > now() + interval '50 seconds' AS extended FROM exports.outbox"
        " WHERE id = ANY(%s) ORDER BY id",
        ([m.id for m in mine],),
    ).fetchall()
    assert [r["extended"] for r in leases] == [False, True, True]


def test_done_and_dead_messages_are_never_claimed(
    db: psycopg.Connection, queued: list[int]
) -> None:
    db.execute("UPDATE exports.outbox SET done_at = now() WHERE id = %s", (queued[0],))
    db.execute("UPDATE exports.outbox SET dead_at = now() WHERE id = %s", (queued[1],))

    claimed = outbox.claim_batch(db, batch=20, lease_seconds=30, worker="a")

    assert {m.id for m in claimed} == set(queued[2:])


def test_queue_view_shows_readable_states(db: psycopg.Connection, queued: list[int]) -> None:
    outbox.claim_batch(db, batch=1, lease_seconds=30, worker="a")
    db.execute("UPDATE exports.outbox SET done_at = now() WHERE id = %s", (queued[1],))
    db.execute("UPDATE exports.outbox SET dead_at = now() WHERE id = %s", (queued[2],))
    db.execute(
        "UPDATE exports.outbox SET visible_at = now() + interval '1 minute' WHERE id = %s",
        (queued[3],),
    )

    states = db.execute(
        "SELECT state FROM exports.queue WHERE id = ANY(%s) ORDER BY id", (queued[:5],)
    ).fetchall()
    assert [s["state"] for s in states] == ["running", "done", "dead", "retry_wait", "ready"]


def test_heartbeat_racing_a_finish_keeps_it_held_but_a_kill_by_hand_is_lost(
    db: psycopg.Connection, queued: list[int]
) -> None:
    finished, killed, running = outbox.claim_batch(db, batch=3, lease_seconds=30, worker="a")
    outbox.complete_message(db, finished)
    db.execute("UPDATE exports.outbox SET dead_at = now() WHERE id = %s", (killed.id,))

    held = outbox.extend_leases(db, [finished, killed, running], lease_seconds=30)

    assert held == {finished.id, running.id}


def test_the_previous_releases_insert_without_a_tenant_still_works(db: psycopg.Connection) -> None:
    # During a deploy the old API and pollers run against the new schema (deploy/README.md):
    # their insert_message names no tenant.
    row = db.execute(
        "INSERT INTO exports.outbox (topic, job_id, payload, max_attempts)"
        " VALUES ('export.notify', NULL, '{}', 5) RETURNING tenant, turn_at = visible_at AS now"
    ).fetchone()

    assert row == {"tenant": "default", "now": True}
