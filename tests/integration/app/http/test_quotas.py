"""Per tenant+owner quota of queued/running exports (429 + Retry-After), and identical
requests without an Idempotency-Key collapsing onto the job they already created."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from app.exports.catalog import load_catalog
from app.http import parsing
from app.http.problems import Problem
from app.platform.settings import Settings
from poller.main import build_poller
from poller.periodic.scheduler import Scheduler

LIMIT = 3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings with the quota on (3) and the duplicate window on (10 s, default)."""
    return dataclasses.replace(
        settings, max_active_per_owner=LIMIT, dedupe_seconds=Settings.dedupe_seconds
    )


def body(n: int = 0, **overrides: Any) -> dict[str, Any]:
    """A request that differs from body(m) for n != m (so no two collapse)."""
    document = {"owner_id": "user-1", "kind": "demo_orders", "params": {"status": f"s{n}"}}
    return {**document, **overrides}


def count_jobs(db: psycopg.Connection) -> int:
    return db.execute("SELECT count(*) AS n FROM exports.jobs").fetchone()["n"]


def test_defaults() -> None:
    assert Settings().max_active_per_owner == 5
    assert Settings().dedupe_seconds == 10


def test_over_the_quota_is_429_with_retry_after(
    client: FlaskClient, db: psycopg.Connection
) -> None:
    for n in range(LIMIT):
        assert client.post("/v1/exports", json=body(n)).status_code == 202

    response = client.post("/v1/exports", json=body(LIMIT))

    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"].endswith("/too-many-exports")
    assert problem["limit"] == LIMIT and "user-1" in problem["detail"]
    assert int(response.headers["Retry-After"]) > 0
    assert count_jobs(db) == LIMIT


def test_the_quota_is_per_owner_and_per_tenant(
    client: FlaskClient, other_tenant_client: FlaskClient
) -> None:
    for n in range(LIMIT):
        client.post("/v1/exports", json=body(n))

    assert client.post("/v1/exports", json=body(owner_id="user-2")).status_code == 202
    assert other_tenant_client.post("/v1/exports", json=body()).status_code == 202


def test_a_slot_frees_when_an_export_ends(client: FlaskClient, db: psycopg.Connection) -> None:
    ids = [client.post("/v1/exports", json=body(n)).get_json()["id"] for n in range(LIMIT)]
    assert client.post("/v1/exports", json=body(LIMIT)).status_code == 429

    client.post(f"/v1/exports/{ids[0]}/cancel")
    db.execute(
        "UPDATE exports.jobs SET state = 'failed', finished_at = now() WHERE id = %s", (ids[1],)
    )

    assert client.post("/v1/exports", json=body(LIMIT)).status_code == 202
    assert client.post("/v1/exports", json=body(LIMIT + 1)).status_code == 202
    assert client.post("/v1/exports", json=body(LIMIT + 2)).status_code == 429


def test_an_idempotent_replay_is_not_refused_at_the_quota(client: FlaskClient) -> None:
    first = client.post("/v1/exports", json=body(0), headers={"Idempotency-Key": "k0"})
    for n in range(1, LIMIT):
        client.post("/v1/exports", json=body(n))

    again = client.post("/v1/exports", json=body(0), headers={"Idempotency-Key": "k0"})
    new = client.post("/v1/exports", json=body(9), headers={"Idempotency-Key": "k9"})

    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert new.status_code == 429


def test_concurrent_requests_cannot_overrun_the_quota(app: Flask, db: psycopg.Connection) -> None:
    threads_count = 10
    barrier = threading.Barrier(threads_count)
    statuses: list[int] = []

    def post(n: int) -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post("/v1/exports", json=body(n)).status_code)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [202] * LIMIT + [429] * (threads_count - LIMIT)
    assert count_jobs(db) == LIMIT


# --- duplicates without an Idempotency-Key -------------------------------------------------


def test_an_identical_request_collapses_onto_the_first_job(
    client: FlaskClient, db: psycopg.Connection
) -> None:
    first = client.post("/v1/exports", json=body())
    again = client.post("/v1/exports", json=body())

    assert first.status_code == again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert count_jobs(db) == 1
    assert db.execute("SELECT count(*) AS n FROM exports.outbox").fetchone()["n"] == 1


def test_concurrent_identical_requests_make_one_job(app: Flask, db: psycopg.Connection) -> None:
    barrier = threading.Barrier(6)
    ids: list[str] = []

    def post() -> None:
        client = app.test_client()
        barrier.wait()
        ids.append(client.post("/v1/exports", json=body()).get_json()["id"])

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(ids) == 6 and len(set(ids)) == 1
    assert count_jobs(db) == 1


@pytest.mark.parametrize(
    "other",
    [
        body(1),
        body(format="csv"),
        body(owner_id="user-2"),
        body(notify={"email": "someone@example.com"}),
    ],
    ids=["params", "format", "owner", "notify"],
)
def test_a_different_request_is_a_new_job(client: FlaskClient, other: dict[str, Any]) -> None:
    first = client.post("/v1/exports", json=body()).get_json()

    second = client.post("/v1/exports", json=other)

    assert second.status_code == 202 and second.get_json()["id"] != first["id"]


def test_asking_again_after_a_cancel_is_a_new_job(client: FlaskClient) -> None:
    first = client.post("/v1/exports", json=body()).get_json()
    client.post(f"/v1/exports/{first['id']}/cancel")

    second = client.post("/v1/exports", json=body())

    assert second.status_code == 202 and second.get_json()["id"] != first["id"]


def test_an_old_twin_is_not_reused(client: FlaskClient, db: psycopg.Connection) -> None:
    first = client.post("/v1/exports", json=body()).get_json()
    db.execute(
        "UPDATE exports.jobs SET created_at = now() - interval '11 seconds' WHERE id = %s",
        (first["id"],),
    )

    assert client.post("/v1/exports", json=body()).get_json()["id"] != first["id"]


def test_other_tenants_twins_are_not_reused(
    client: FlaskClient, other_tenant_client: FlaskClient
) -> None:
    mine = client.post("/v1/exports", json=body()).get_json()

    assert other_tenant_client.post("/v1/exports", json=body()).get_json()["id"] != mine["id"]


class TestWithoutDedupe:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return dataclasses.replace(settings, dedupe_seconds=0)

    def test_zero_seconds_turns_collapsing_off(
        self, client: FlaskClient, db: psycopg.Connection
    ) -> None:
        first = client.post("/v1/exports", json=body()).get_json()
        second = client.post("/v1/exports", json=body()).get_json()

        assert first["id"] != second["id"]
        assert count_jobs(db) == 2


# --- input limits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "owner_id", ["user-1", "auth0|5f1c2e", "a+b@example.com", "tenant:42", "x" * 200]
)
def test_owner_ids_of_the_documented_format_are_accepted(
    client: FlaskClient, owner_id: str
) -> None:
    response = client.post("/v1/exports", json=body(owner_id=owner_id))

    assert response.status_code == 202, response.get_json()


@pytest.mark.parametrize(
    "owner_id", ["user 1", "ünïcode", "a/b", "line\nbreak", "", "x" * 201, "<script>"]
)
def test_other_owner_ids_are_422(client: FlaskClient, owner_id: str) -> None:
    response = client.post("/v1/exports", json=body(owner_id=owner_id))

    assert response.status_code == 422
    assert [e["pointer"] for e in response.get_json()["errors"]] == ["/owner_id"]


def test_params_over_the_size_cap_are_422(tmp_path: Path) -> None:
    # The shipped kinds cannot reach the cap (one 1,000-character string); a kind with
    # twenty string params can.
    names = [f"p{i}" for i in range(20)]
    header = "\n".join(f'[params.{n}]\ntype = "string"' for n in names)
    where = " AND ".join(f"%({n})s::text IS NOT NULL" for n in names)
    (tmp_path / "wide.sql").write_text(
        f'/*---\ndescription = "Many params."\n{header}\n---*/\n'
        f"SELECT 1 AS one WHERE %(owner_id)s::text IS NOT NULL AND {where}\n"
    )
    catalog = load_catalog(tmp_path)
    big = {n: "é" * 1000 for n in names}  # 20 x 2,000 bytes of UTF-8

    with pytest.raises(Problem) as caught:
        parsing.export_request({"owner_id": "u", "kind": "wide", "params": big}, catalog)
    small = parsing.export_request(
        {"owner_id": "u", "kind": "wide", "params": dict(list(big.items())[:5])}, catalog
    )

    assert caught.value.status == 422 and "/params" in caught.value.errors
    assert str(parsing.MAX_PARAMS_BYTES) in caught.value.errors["/params"]
    assert parsing.params_size(small.params) <= parsing.MAX_PARAMS_BYTES


# --- schedules under the same quota (issue 12, item 2) ------------------------------------

SCHEDULE = {
    "owner_id": "user-1",
    "kind": "demo_orders",
    "format": "csv",
    "cron": "* * * * *",
    "timezone": "UTC",
}


def test_a_slot_that_finds_the_owner_at_the_quota_is_skipped_and_says_why(
    app: Flask, client: FlaskClient, db: psycopg.Connection, settings: Settings
) -> None:
    for n in range(LIMIT):
        assert client.post("/v1/exports", json=body(n)).status_code == 202
    ids = [client.post("/v1/schedules", json=SCHEDULE).get_json()["id"] for _ in range(3)]
    db.execute("UPDATE exports.schedules SET next_run_at = now() - interval '1 second'")
    skipped_before = REGISTRY.get_sample_value(
        "exports_schedule_slots_skipped_total", {"reason": "owner_quota"}
    ) or 0.0
    built = build_poller(settings)
    [scheduler] = [c for c in built.poller.companions if isinstance(c, Scheduler)]
    try:
        scheduler.tick()
    finally:
        built.close()

    assert count_jobs(db) == LIMIT  # no job beyond the quota (three were queued before)
    for schedule_id in ids:
        schedule = client.get(f"/v1/schedules/{schedule_id}").get_json()
        assert schedule["last_skip_reason"] == "owner_quota"
        assert schedule["last_job_id"] is None and schedule["last_run_at"] is not None
        assert schedule["next_run_at"] > schedule["last_run_at"]  # moved on to the next slot
    skipped = REGISTRY.get_sample_value(
        "exports_schedule_slots_skipped_total", {"reason": "owner_quota"}
    )
    assert skipped == skipped_before + 3


def test_schedules_per_owner_are_limited(app: Flask, settings: Settings) -> None:
    app.extensions["exports"].settings = dataclasses.replace(settings, max_schedules_per_owner=2)
    client = app.test_client()
    created = [
        client.post("/v1/schedules", json=SCHEDULE, headers={"Idempotency-Key": f"k{n}"})
        for n in range(2)
    ]
    assert [r.status_code for r in created] == [201, 201]

    refused = client.post("/v1/schedules", json=SCHEDULE)
    replay = client.post("/v1/schedules", json=SCHEDULE, headers={"Idempotency-Key": "k0"})
    other_owner = client.post("/v1/schedules", json={**SCHEDULE, "owner_id": "user-2"})

    assert refused.status_code == 409
    assert refused.get_json()["type"].endswith("/too-many-schedules")
    assert refused.get_json()["limit"] == 2
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert other_owner.status_code == 201


def test_default_schedule_limit() -> None:
    assert Settings().max_schedules_per_owner == 20
