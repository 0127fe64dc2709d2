"""Poller maintenance against real PostgreSQL, with the file backend and S3 (moto server):
expiry (files deleted, jobs expired, links 410), outbox pruning, stale workers, one run
at a time across pollers."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from app.exports.demo import seed_demo_orders
from app.platform.db import open_pool
from app.platform.settings import Settings
from app.storage import storage_from_settings
from poller.core.dispatch import Poller
from poller.periodic.maintenance import Maintenance, MaintenanceReport
from tests.support.exports import job_ended, job_row, stored_file, submit
from tests.support.processes import start_poller_process
from tests.support.waiting import wait_until


@pytest.fixture(params=["file", "s3"])
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The suite's settings, storing files locally or in a bucket on the local S3 server."""
    if request.param == "file":
        return settings
    bucket = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("aws_endpoint")
    return dataclasses.replace(
        settings, storage_url=f"s3://{bucket}/exports", aws_endpoint_url=endpoint
    )


@pytest.fixture
def object_exists(request: pytest.FixtureRequest, settings: Settings) -> Callable[[str], bool]:
    """Whether the storage backend holds `key`, looked at without our storage code."""
    if settings.storage_url.startswith("file://"):
        return lambda key: stored_file(settings, key).is_file()
    s3 = request.getfixturevalue("s3_client")
    bucket = settings.storage_url.removeprefix("s3://").split("/")[0]

    def in_bucket(key: str) -> bool:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="exports/" + key)
        return any(item["Key"] == "exports/" + key for item in listed.get("Contents", []))

    return in_bucket


@pytest.fixture
def make_maintenance(settings: Settings) -> Iterator[Callable[[], Maintenance]]:
    """Maintenance as a poller builds it, each on its own pool (as two pollers would be)."""
    pools = []

    def make() -> Maintenance:
        pool = open_pool(settings.database_url, name="test-maintenance", max_size=3)
        pools.append(pool)
        return Maintenance.from_settings(settings, pool, storage_from_settings(settings))

    yield make
    for pool in pools:
        pool.close()


@pytest.fixture
def finished_jobs(
    client: FlaskClient, db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> list[dict[str, Any]]:
    """Three succeeded exports, as the API shows them (with their download links)."""
    seed_demo_orders(db, 30)
    ids = [submit(client, owner_id="user-1", format=fmt)["id"] for fmt in ("csv", "csv.gz", "csv")]
    start_poller()
    for job_id in ids:
        ended = wait_until(lambda job_id=job_id: job_ended(db, job_id), what="the exports")
        assert ended["state"] == "succeeded"
    return [client.get(f"/v1/exports/{job_id}").get_json() for job_id in ids]


def make_expired(db: psycopg.Connection, job_id: str) -> None:
    """Move the job's retention into the past (as if a week had gone by)."""
    db.execute(
        "UPDATE exports.jobs SET expires_at = now() - interval '1 minute' WHERE id = %s",
        (job_id,),
    )


def add_worker(db: psycopg.Connection, worker: str, *, silent_for: str) -> None:
    """A registry row whose last heartbeat was `silent_for` ago (an SQL interval)."""
    db.execute(
        "INSERT INTO exports.workers (id, hostname, pid, version, last_heartbeat_at)"
        " VALUES (%s, 'host', 1, 'test', now() - %s::interval)",
        (worker, silent_for),
    )


def workers(db: psycopg.Connection) -> set[str]:
    return {row["id"] for row in db.execute("SELECT id FROM exports.workers").fetchall()}


def link_status(client: FlaskClient, job: dict[str, Any]) -> int:
    return client.get(job["download_url"].removeprefix("http://exports.test")).status_code


def test_jobs_past_retention_lose_their_files_and_their_links_answer_410(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    finished_jobs: list[dict[str, Any]],
    make_maintenance: Callable[[], Maintenance],
    object_exists: Callable[[str], bool],
) -> None:
    old, older, fresh = finished_jobs
    kept_link = 200 if settings.storage_url.startswith("file://") else 302
    assert [link_status(client, job) for job in finished_jobs] == [kept_link] * 3
    make_expired(db, old["id"])
    make_expired(db, older["id"])

    report = make_maintenance().run_once()

    assert report is not None
    assert (report.expired, report.expiry_failures) == (2, 0)
    for job in (old, older):
        row = job_row(db, job["id"])
        assert row["state"] == "expired"
        # What a DBA wants to know stays: which file it was, how big, when it finished.
        assert (
            row["result_key"] == job["result"]["key"]
            and row["result_rows"] == job["result"]["rows"]
        )
        assert row["finished_at"] is not None
        assert not object_exists(job["result"]["key"])
        response = client.get(job["download_url"].removeprefix("http://exports.test"))
        assert response.status_code == 410
        assert response.get_json()["type"].endswith("/link-expired")
        assert client.get(f"/v1/exports/{job['id']}").get_json()["state"] == "expired"
    assert job_row(db, fresh["id"])["state"] == "succeeded"
    assert object_exists(fresh["result"]["key"])
    assert link_status(client, fresh) == kept_link

    again = make_maintenance().run_once()
    assert again is not None and again.expired == 0


def test_a_run_cut_off_after_deleting_the_file_is_finished_by_the_next(
    db: psycopg.Connection,
    settings: Settings,
    finished_jobs: list[dict[str, Any]],
    make_maintenance: Callable[[], Maintenance],
    object_exists: Callable[[str], bool],
) -> None:
    job = finished_jobs[0]
    make_expired(db, job["id"])
    maintenance = make_maintenance()
    # What a poller killed between deleting the file and its commit leaves behind.
    maintenance.storage.delete(job["result"]["key"])
    assert not object_exists(job["result"]["key"])

    report = maintenance.run_once()

    assert report is not None and (report.expired, report.expiry_failures) == (1, 0)
    assert job_row(db, job["id"])["state"] == "expired"


def test_finished_outbox_rows_are_pruned_after_the_retention(
    db: psycopg.Connection,
    settings: Settings,
    finished_jobs: list[dict[str, Any]],
    make_maintenance: Callable[[], Maintenance],
) -> None:
    old, recent, _ = finished_jobs
    week_and_a_day = settings.outbox_retention_seconds + 86400
    db.execute(
        "UPDATE exports.outbox SET done_at = now() - make_interval(secs => %s) WHERE job_id = %s",
        (week_and_a_day, old["id"]),
    )
    unfinished = db.execute(
        "INSERT INTO exports.outbox (topic, job_id, tenant, visible_at)"
        " VALUES ('export.notify', %s, 'default', now() + interval '1 hour') RETURNING id",
        (recent["id"],),
    ).fetchone()

    report = make_maintenance().run_once()

    assert report is not None and report.pruned == 1
    assert (
        db.execute("SELECT 1 FROM exports.outbox WHERE job_id = %s", (old["id"],)).fetchall() == []
    )
    left = db.execute(
        "SELECT id, done_at IS NULL AS unfinished FROM exports.outbox WHERE job_id = %s",
        (recent["id"],),
    ).fetchall()
    assert {row["id"] for row in left if row["unfinished"]} == {unfinished["id"]}
    assert len(left) == 2  # its finished export.run message is younger than the retention


def test_silent_workers_are_removed_and_live_ones_kept(
    db: psycopg.Connection, settings: Settings, make_maintenance: Callable[[], Maintenance]
) -> None:
    silent = 3 * settings.lease_seconds + 1
    add_worker(db, "dead-poller", silent_for=f"{silent} seconds")
    add_worker(db, "live-poller", silent_for="1 second")

    report = make_maintenance().run_once()

    assert report is not None and report.stale_workers == 1
    assert workers(db) == {"live-poller"}


def test_of_two_concurrent_runs_only_one_does_the_work(
    db: psycopg.Connection,
    database_url: str,
    finished_jobs: list[dict[str, Any]],
    make_maintenance: Callable[[], Maintenance],
    object_exists: Callable[[str], bool],
) -> None:
    job = finished_jobs[0]
    make_expired(db, job["id"])
    add_worker(db, "dead-poller", silent_for="1 hour")
    first, second = make_maintenance(), make_maintenance()
    skipped_before = REGISTRY.get_sample_value(
        "exports_maintenance_runs_total", {"outcome": "skipped"}
    )
    reports: list[MaintenanceReport | None] = []
    with psycopg.connect(database_url) as dba:
        # A DBA looking at the dead worker's row holds the first run in its last step,
        # while it holds the maintenance lock.
        dba.execute("SELECT * FROM exports.workers WHERE id = 'dead-poller' FOR UPDATE")
        running = threading.Thread(target=lambda: reports.append(first.run_once()))
        running.start()
        wait_until(
            lambda: db.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%DELETE FROM exports.workers%'"
            ).fetchone(),
            what="the first run to wait for the row",
        )
        assert job_row(db, job["id"])["state"] == "expired"  # the first run did that already

        assert second.run_once() is None

        dba.rollback()
        running.join(timeout=30)
    [report] = reports
    assert report is not None and (report.expired, report.stale_workers) == (1, 1)
    assert not object_exists(job["result"]["key"])
    assert workers(db) == set()
    skipped = REGISTRY.get_sample_value("exports_maintenance_runs_total", {"outcome": "skipped"})
    assert skipped == (skipped_before or 0) + 1


def test_a_running_poller_runs_maintenance_and_logs_each_run(
    db: psycopg.Connection, settings: Settings, tmp_path: Path
) -> None:
    add_worker(db, "dead-poller", silent_for="1 hour")
    log_file = tmp_path / "poller.log"
    poller = start_poller_process(settings, log_file, EXPORTS_MAINTENANCE_INTERVAL="1")
    try:
        wait_until(lambda: "dead-poller" not in workers(db), what="maintenance to run")
        line = wait_until(
            lambda: next(
                (line for line in log_file.read_text().splitlines() if '"maintenance run"' in line),
                None,
            ),
            what="the run's log line",
        )
    finally:
        poller.terminate()
        poller.wait(timeout=30)
    assert '"stale_workers": 1' in line and '"expired": 0' in line and '"pruned": 0' in line
