"""Fair claiming (sql/queries/outbox.sql claim_fair) on real PostgreSQL: round-robin across
tenants and owners, weights, per-tenant limits counted over every claimant, priorities with
aging. Messages are inserted as rows (no jobs: the claim never reads them) except where
the domain's part is under test (priorities through request_export).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import dict_row

from app.exports import jobs, priorities
from app.exports.topics import EXPORT_NOTIFY, EXPORT_RUN
from app.queue import outbox
from app.queue.outbox import ClaimPolicy, Message
from app.tenancy import limits
from tests.support.operations import REQUEST
from tests.support.waiting import wait_until

FAIR = ClaimPolicy()
FIFO = ClaimPolicy(fifo=True)


def queue(
    db: psycopg.Connection, tenant: str, count: int, *, owner: str = "u", topic: str = EXPORT_RUN
) -> list[int]:
    """`count` ready messages of `tenant` and `owner`, oldest first."""
    rows = db.execute(
        "INSERT INTO exports.outbox (topic, tenant, owner_id, visible_at)"
        " SELECT %s, %s, %s, now() - interval '1 hour' + i * interval '1 ms'"
        " FROM generate_series(1, %s) i RETURNING id",
        (topic, tenant, owner, count),
    ).fetchall()
    db.commit()
    return [row["id"] for row in rows]


def claim(
    db: psycopg.Connection, batch: int, policy: ClaimPolicy = FAIR, after: str = ""
) -> list[Message]:
    claimed = outbox.claim_batch(
        db, batch=batch, lease_seconds=30, worker="test", policy=policy, after_tenant=after
    )
    db.commit()
    return claimed


def test_a_tenants_backlog_costs_another_tenant_at_most_one_claim(
    db: psycopg.Connection,
) -> None:
    queue(db, "flood", 50)
    [quiet] = queue(db, "quiet", 1)
    [other] = queue(db, "other", 1)

    claimed = claim(db, 4)

    assert {quiet, other} <= {m.id for m in claimed}
    assert [m.tenant for m in claimed[:3]] == ["flood", "quiet", "other"]  # round 1, by age


def test_first_in_first_out_would_make_them_wait_for_the_whole_backlog(
    db: psycopg.Connection,
) -> None:
    queue(db, "flood", 50)
    queue(db, "quiet", 1)

    assert {m.tenant for m in claim(db, 4, FIFO)} == {"flood"}


def test_claims_of_one_message_rotate_through_the_tenants(db: psycopg.Connection) -> None:
    for tenant in ("a", "b", "c"):
        queue(db, tenant, 3)

    cursor, order = "", []
    for _ in range(7):
        claimed = claim(db, 1, after=cursor)
        cursor = outbox.next_tenant_cursor(cursor, claimed)
        order += [m.tenant for m in claimed]

    assert order == ["c", "b", "a", "c", "b", "a", "c"]  # down by name, round and round


def test_tenants_rotate_in_byte_order_whatever_the_database_collation(
    db: psycopg.Connection,
) -> None:
    # The walk compares names in SQL and the poller's cursor in Python: under a linguistic
    # collation (en_US: 'ab' < 'a-c', bytes: 'a-c' < 'ab') they would disagree, and the
    # rotation skip or repeat tenants. The columns are COLLATE "C" whatever the database's.
    collations = db.execute(
        "SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation"
        " WHERE a.attname = 'tenant'"
        "   AND a.attrelid IN ('exports.outbox'::regclass, 'exports.tenant_limits'::regclass)"
    ).fetchall()
    assert [row["collname"] for row in collations] == ["C", "C"]
    names = ["ab", "a-c", "B", "a.b", "a_b"]  # what API tenants may be called
    for tenant in names:
        queue(db, tenant, 2)

    cursor, order = "", []
    for _ in range(2 * len(names)):
        claimed = claim(db, 1, after=cursor)
        cursor = outbox.next_tenant_cursor(cursor, claimed)
        order += [m.tenant for m in claimed]

    assert order == sorted(names, reverse=True) * 2


def test_within_a_tenant_owners_take_turns(db: psycopg.Connection) -> None:
    busy = queue(db, "t", 5, owner="busy")
    calm = queue(db, "t", 2, owner="calm")

    claimed = [m.id for m in claim(db, 7)]

    assert claimed == [busy[0], calm[0], busy[1], calm[1], busy[2], busy[3], busy[4]]


def test_a_weight_of_two_gets_two_messages_a_round(db: psycopg.Connection) -> None:
    limits.set_limit(db, "big", weight=2)
    queue(db, "big", 10)
    queue(db, "small", 10)

    claimed = Counter(m.tenant for m in claim(db, 6))

    assert claimed == {"big": 4, "small": 2}


def test_max_running_counts_what_the_tenant_has_leased_and_spares_other_topics(
    db: psycopg.Connection,
) -> None:
    limited = ClaimPolicy(max_running_per_tenant=2)
    queue(db, "t", 5)
    queue(db, "t", 2, topic=EXPORT_NOTIFY)
    queue(db, "u", 1)

    first = claim(db, 10, limited)
    assert Counter((m.tenant, m.topic) for m in first) == {
        ("t", EXPORT_RUN): 2,
        ("t", EXPORT_NOTIFY): 2,  # notifications are not limited
        ("u", EXPORT_RUN): 1,
    }
    assert claim(db, 10, limited) == []  # t runs 2 already

    running = next(m for m in first if m.topic == EXPORT_RUN and m.tenant == "t")
    outbox.complete_message(db, running)
    db.commit()
    assert [(m.tenant, m.topic) for m in claim(db, 10, limited)] == [("t", EXPORT_RUN)]


def test_a_lease_counts_against_the_limit_until_it_ends_or_lapses(
    db: psycopg.Connection,
) -> None:
    limited = ClaimPolicy(max_running_per_tenant=1)
    [first, second] = queue(db, "t", 2)

    [running] = claim(db, 5, limited)
    assert running.id == first and claim(db, 5, limited) == []

    outbox.retry_message(db, running, "boom", delay_seconds=3600)  # ended: back-off
    db.commit()
    [running] = claim(db, 5, limited)
    assert running.id == second

    # Its poller died: the lease lapses, and the message is claimed again, counted once.
    db.execute(
        "UPDATE exports.outbox SET visible_at = now() - interval '1 s' WHERE id = %s", (second,)
    )
    db.commit()
    [again] = claim(db, 5, limited)
    assert (again.id, again.attempts) == (second, 2)
    assert claim(db, 5, limited) == []
    notes = db.execute("SELECT message_id, attempts FROM exports.limited_leases").fetchall()
    assert notes == [{"message_id": second, "attempts": 2}]  # the ended lease is forgotten


def test_a_tenants_row_overrides_the_default_limit(db: psycopg.Connection) -> None:
    limits.set_limit(db, "vip", max_running=0, note="no limit for them")  # 0: none
    limits.set_limit(db, "noisy", max_running=1)
    db.commit()
    queue(db, "vip", 4)
    queue(db, "noisy", 4)
    queue(db, "plain", 4)

    claimed = Counter(m.tenant for m in claim(db, 12, ClaimPolicy(max_running_per_tenant=2)))

    assert claimed == {"vip": 4, "noisy": 1, "plain": 2}


def test_a_limit_of_zero_blocks_nothing(db: psycopg.Connection) -> None:
    queue(db, "t", 6)

    assert len(claim(db, 6, ClaimPolicy(max_running_per_tenant=0))) == 6


@pytest.fixture
def two_connections(database_url: str) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    with (
        psycopg.connect(database_url, row_factory=dict_row) as a,
        psycopg.connect(database_url, row_factory=dict_row) as b,
    ):
        yield a, b


def test_with_limits_concurrent_claims_take_turns_so_the_count_holds(
    db: psycopg.Connection, two_connections: tuple[psycopg.Connection, psycopg.Connection]
) -> None:
    a, b = two_connections
    limited = ClaimPolicy(max_running_per_tenant=2)
    queue(db, "t", 6)
    first = outbox.claim_batch(a, batch=10, lease_seconds=30, worker="a", policy=limited)
    assert len(first) == 2  # a's transaction is still open

    second: list[Message] = []
    pid = b.info.backend_pid
    claiming = threading.Thread(
        target=lambda: second.extend(
            outbox.claim_batch(b, batch=10, lease_seconds=30, worker="b", policy=limited)
        )
    )
    claiming.start()
    # b waits for a's claim to commit: it must see a's leases to count them.
    wait_until(
        lambda: db.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()["wait_event_type"]
        == "Lock",
        what="the second claim to wait for the first",
    )
    a.commit()
    claiming.join(timeout=10)
    b.commit()

    assert second == []


def request(db: psycopg.Connection, priority: str, max_wait: int = 600) -> jobs.Job:
    job, _ = jobs.request_export(
        db,
        "default",
        dataclasses.replace(REQUEST, priority=priority),
        idempotency_key=None,
        max_attempts=5,
        priority_max_wait=max_wait,
    )
    db.commit()
    return job


def claimed_jobs(db: psycopg.Connection, count: int) -> list[str]:
    """The priorities of the jobs the next `count` one-message claims take."""
    order = []
    for _ in range(count):
        [message] = claim(db, 1)
        job = jobs.find_job(db, message.job_id) if message.job_id else None
        assert job is not None
        order.append(job.priority)
    return order


def test_interactive_goes_before_scheduled_before_bulk(db: psycopg.Connection) -> None:
    request(db, priorities.BULK)
    request(db, priorities.SCHEDULED)
    request(db, priorities.INTERACTIVE)
    request(db, priorities.INTERACTIVE)

    assert claimed_jobs(db, 4) == ["interactive", "interactive", "scheduled", "bulk"]


def test_a_bulk_export_waits_behind_newer_work_for_at_most_the_max_wait(
    db: psycopg.Connection,
) -> None:
    bulk = request(db, priorities.BULK, max_wait=600)
    # As if queued 601 s ago: its turn (visible_at + 600 s) came 1 s ago.
    db.execute(
        "UPDATE exports.outbox SET visible_at = now() - interval '601 seconds'"
        " WHERE job_id = %s",
        (bulk.id,),
    )
    db.commit()
    request(db, priorities.INTERACTIVE)

    assert claimed_jobs(db, 2) == ["bulk", "interactive"]


def turn_of(db: psycopg.Connection, message_id: int) -> dict:
    row = db.execute(
        "SELECT turn_at, visible_at, priority_wait_seconds FROM exports.outbox WHERE id = %s",
        (message_id,),
    ).fetchone()
    assert row is not None
    return row


def test_a_claim_adds_no_index_entries(db: psycopg.Connection) -> None:
    # Claims are HOT updates (migration 0016): no indexed column changes, so PostgreSQL
    # rewrites each row in its page and the indexes do not grow or bloat with every lease.
    queue(db, "a", 5)
    queue(db, "b", 5)

    outbox.claim_batch(db, batch=10, lease_seconds=30, worker="test", policy=FAIR)
    row = db.execute(
        "SELECT pg_stat_get_xact_tuples_updated('exports.outbox'::regclass) AS updated,"
        " pg_stat_get_xact_tuples_hot_updated('exports.outbox'::regclass) AS hot"
    ).fetchone()
    db.commit()

    assert row == {"updated": 10, "hot": 10}


def test_a_leased_message_keeps_its_turn_and_a_retry_takes_a_new_one(
    db: psycopg.Connection,
) -> None:
    [first, second] = queue(db, "t", 2)
    queued = turn_of(db, first)
    assert queued["turn_at"] == queued["visible_at"]  # interactive: no wait

    [leased] = claim(db, 1)
    assert leased.id == first
    assert turn_of(db, first)["turn_at"] == queued["turn_at"]  # the lease moved visible_at only

    outbox.retry_message(db, leased, "boom", delay_seconds=60)
    db.commit()
    retried = turn_of(db, first)
    assert retried["turn_at"] == retried["visible_at"] > queued["turn_at"]  # back of the line
    assert [m.id for m in claim(db, 2)] == [second]  # and not before its back-off ends


def test_a_message_whose_lease_ran_out_is_claimed_again_in_its_old_place(
    db: psycopg.Connection,
) -> None:
    [lost, later] = queue(db, "t", 2)
    [leased] = claim(db, 1)
    assert leased.id == lost
    # Its poller died: the lease lapses (visible_at passes) without anyone handing it back.
    db.execute(
        "UPDATE exports.outbox SET visible_at = now() - interval '1 s' WHERE id = %s", (lost,)
    )
    db.commit()

    assert [m.id for m in claim(db, 2)] == [lost, later]
