"""exports-admin against the test's real database: every command, --json parsed, exit codes."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from app.notifications import webhooks
from app.operators.cli import cli
from tests.conftest import TEST_ENCRYPTION_KEY
from tests.support.exports import job_row, messages
from tests.support.operations import failed_job, queued_job


@pytest.fixture
def run(database_url: str) -> Any:
    """Run `exports-admin ARGS...` with DATABASE_URL aimed at the test database."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        env = {"DATABASE_URL": database_url, "EXPORTS_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY}
        return runner.invoke(cli, list(args), env=env)

    return invoke


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_stats_reports_queues_failures_and_jobs(run: Any, db: psycopg.Connection) -> None:
    queued_job(db)
    failed_job(db)

    report = ok_json(run("stats", "--json"))
    table = run("stats")

    queues = {q["topic"]: q for q in report["queues"]}
    assert queues["export.run"]["ready"] == 1 and queues["export.run"]["dead"] == 1
    assert queues["export.notify"]["ready"] == 1  # the failure email
    assert report["jobs_last_24h"] == {"failed": 1, "queued": 1}
    assert report["recent_failures"] == 1 and report["workers"] == []
    assert table.exit_code == 0 and "export.run" in table.output and "failed 1" in table.output


def flood(db: psycopg.Connection, tenant: str, count: int) -> None:
    """`count` ready export.run messages of `tenant` (rows: the claim never reads jobs)."""
    db.execute(
        "INSERT INTO exports.outbox (topic, tenant) SELECT 'export.run', %s"
        " FROM generate_series(1, %s)",
        (tenant, count),
    )
    db.commit()


def test_stats_by_tenant_names_who_floods_the_queue(run: Any, db: psycopg.Connection) -> None:
    flood(db, "noisy", 30)
    flood(db, "calm", 2)
    flood(db, "quiet", 1)

    report = ok_json(run("stats", "--by-tenant", "2", "--json"))
    table = run("stats", "--by-tenant")

    assert [(t["tenant"], t["ready"]) for t in report["tenants"]] == [("noisy", 30), ("calm", 2)]
    assert table.exit_code == 0 and "tenants by backlog" in table.output
    assert "noisy" in table.output and "quiet" in table.output
    assert "tenants" not in ok_json(run("stats", "--json"))  # only when asked


def test_tenant_limit_slows_a_tenant_down_and_clears(run: Any, db: psycopg.Connection) -> None:
    set_ = ok_json(run("tenant-limit", "noisy", "--max-running", "2", "--note", "INC-42", "--json"))
    weight = ok_json(run("tenant-limit", "noisy", "--weight", "3", "--json"))
    listed = ok_json(run("tenant-limit", "--json"))
    cleared = run("tenant-limit", "noisy", "--clear")

    assert [(r["max_running"], r["weight"], r["note"]) for r in set_["tenant_limits"]] == [
        (2, 1, "INC-42")
    ]
    assert [(r["max_running"], r["weight"]) for r in weight["tenant_limits"]] == [(2, 3)]
    assert [r["tenant"] for r in listed["tenant_limits"]] == ["noisy"]
    assert cleared.exit_code == 0 and "back to the defaults" in cleared.output
    assert db.execute("SELECT count(*) AS n FROM exports.tenant_limits").fetchone()["n"] == 0
    assert run("tenant-limit", "noisy", "--clear").exit_code == 1  # nothing to clear
    assert run("tenant-limit", "noisy").exit_code == 1  # nothing to set
    assert run("tenant-limit", "noisy", "--weight", "0").exit_code == 2
    assert run("tenant-limit", "--max-running", "1").exit_code == 1  # whose?


def test_list_filters_by_state_and_owner(run: Any, db: psycopg.Connection) -> None:
    failed = failed_job(db)
    queued_job(db)
    queued_job(db, owner_id="user-2")

    only_failed = ok_json(run("list", "--state", "failed", "--json"))["jobs"]
    of_user_2 = ok_json(run("list", "--owner-id", "user-2", "--json"))["jobs"]
    limited = ok_json(run("list", "--limit", "2", "--json"))["jobs"]
    table = run("list", "--state", "failed")

    assert [j["id"] for j in only_failed] == [str(failed.id)]
    assert [j["owner_id"] for j in of_user_2] == ["user-2"]
    assert len(limited) == 2
    assert table.exit_code == 0 and str(failed.id) in table.output
    assert run("list", "--state", "broken").exit_code == 2


def test_show_prints_the_job_its_messages_and_its_errors(run: Any, db: psycopg.Connection) -> None:
    job = failed_job(db, "access denied")

    shown = ok_json(run("show", str(job.id), "--json"))
    table = run("show", str(job.id))

    assert shown["job"]["id"] == str(job.id) and shown["job"]["state"] == "failed"
    assert [m["topic"] for m in shown["messages"]] == ["export.run", "export.notify"]
    assert shown["messages"][0]["errors"][0]["error"] == "access denied"
    assert ["failed", "access denied"] in [[t["event"], t["detail"]] for t in shown["timeline"]]
    assert table.exit_code == 0 and "access denied" in table.output


def test_show_an_unknown_job_exits_1_and_a_malformed_id_2(run: Any) -> None:
    missing = run("show", str(uuid.uuid4()), "--json")

    assert missing.exit_code == 1 and "no job" in json.loads(missing.stdout)["error"]
    assert run("show", "not-a-uuid").exit_code == 2


def test_retry_requeues_a_failed_job_and_refuses_others(run: Any, db: psycopg.Connection) -> None:
    failed, queued = failed_job(db), queued_job(db)

    retried = ok_json(run("retry", str(failed.id), "--max-attempts", "2", "--json"))
    refused = run("retry", str(queued.id), "--json")
    missing = run("retry", str(uuid.uuid4()))

    assert retried["job"]["state"] == "queued" == job_row(db, failed.id)["state"]
    assert messages(db, failed.id)[-1]["max_attempts"] == 3  # its attempt 1 + 2 more
    assert refused.exit_code == 1 and json.loads(refused.stdout)["state"] == "queued"
    assert missing.exit_code == 1 and "no job" in missing.stderr


def test_cancel_cancels_once_and_refuses_an_ended_job(run: Any, db: psycopg.Connection) -> None:
    queued, failed = queued_job(db), failed_job(db)

    cancelled = ok_json(run("cancel", str(queued.id), "--json"))
    twice = run("cancel", str(queued.id))
    ended = run("cancel", str(failed.id), "--json")

    assert cancelled["job"]["state"] == "cancelled" == job_row(db, queued.id)["state"]
    assert twice.exit_code == 0  # as the API: cancelling a cancelled job is what was asked
    assert ended.exit_code == 1 and json.loads(ended.stdout)["state"] == "failed"
    assert run("cancel", str(uuid.uuid4())).exit_code == 1


def test_requeue_dead_revives_by_topic_and_time(run: Any, db: psycopg.Connection) -> None:
    recent, long_ago = failed_job(db), failed_job(db)
    db.execute(
        "UPDATE exports.outbox SET dead_at = now() - interval '3 days' WHERE job_id = %s",
        (long_ago.id,),
    )

    none_of_notify = ok_json(run("requeue-dead", "--topic", "export.notify", "--json"))
    revived = ok_json(run("requeue-dead", "--topic", "export.run", "--since", "1d", "--json"))
    older = ok_json(run("requeue-dead", "--since", "all", "--json"))
    nothing_left = run("requeue-dead")

    assert none_of_notify == {"requeued": []}
    assert [r["job_id"] for r in revived["requeued"]] == [str(recent.id)]
    assert [r["job_id"] for r in older["requeued"]] == [str(long_ago.id)]
    assert nothing_left.exit_code == 0 and "0 dead messages" in nothing_left.output
    assert run("requeue-dead", "--since", "yesterday").exit_code == 2
    assert run("requeue-dead", "--topic", "export.nope").exit_code == 2


def test_prune_deletes_finished_messages_past_retention(run: Any, db: psycopg.Connection) -> None:
    old, recent = failed_job(db), failed_job(db)
    db.execute(
        "UPDATE exports.outbox SET dead_at = now() - interval '10 days' WHERE job_id = %s"
        " AND dead_at IS NOT NULL",
        (old.id,),
    )

    pruned = ok_json(run("prune", "--older-than", "7d", "--batch-size", "1", "--json"))
    by_default = ok_json(run("prune", "--json"))

    assert pruned == {"deleted": 1, "older_than_seconds": 7 * 86400}
    assert by_default["deleted"] == 0
    assert [m["topic"] for m in messages(db, old.id)] == ["export.notify"]
    assert len(messages(db, recent.id)) == 2
    assert run("prune", "--older-than", "soon").exit_code == 2


def test_seed_demo_and_migrate(run: Any, db: psycopg.Connection) -> None:
    seeded = ok_json(run("seed-demo", "5", "--owners", "2", "--json"))
    skipped = ok_json(run("seed-demo", "5", "--if-empty", "--json"))
    migrated = ok_json(run("migrate", "--json"))

    assert seeded == {"added": 5, "owners": 2} and skipped["added"] == 0
    assert migrated == {"migrated": True}
    assert db.execute("SELECT count(*) AS n FROM exports_demo.orders").fetchone()["n"] == 5
    assert run("seed-demo", "0").exit_code == 2


def test_an_unreachable_database_is_one_line_not_a_traceback(database_url: str) -> None:
    # Issue 13: a wrong DATABASE_URL was a 25-line traceback.
    result = CliRunner().invoke(
        cli, ["stats"], env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/exports"}
    )

    assert result.exit_code == 1
    assert "cannot reach the database at postgresql://postgres@127.0.0.1:1/exports" in (
        result.output
    )
    assert "scripts/dev-db exports" in result.output and "Traceback" not in result.output


def test_an_unmigrated_database_says_to_migrate(database_url: str) -> None:
    bare = database_url.rsplit("/", 1)[0] + "/postgres"  # the server's own, no exports schema

    result = CliRunner().invoke(cli, ["list"], env={"DATABASE_URL": bare})

    assert result.exit_code == 1
    assert "no exports schema yet: run `exports-admin migrate`" in result.output


def test_webhooks_list_deliveries_and_retry(run: Any, db: psycopg.Connection) -> None:
    request = webhooks.EndpointRequest("http://127.0.0.1:9/h", webhooks.EVENT_TYPES, "", True)
    endpoint, _ = webhooks.create_endpoint(db, "acme", request, idempotency_key=None)
    delivery_id = webhooks.send_test_event(db, "acme", endpoint.id)

    [listed] = ok_json(run("webhooks", "list", "--json"))["endpoints"]
    [delivery] = ok_json(run("webhooks", "deliveries", "--json"))["deliveries"]
    retried = ok_json(run("webhooks", "retry", str(delivery_id), "--json"))["delivery"]
    missing = run("webhooks", "retry", "424242")

    assert (listed["id"], listed["tenant"]) == (str(endpoint.id), "acme")
    assert "secret" not in listed
    assert (delivery["id"], delivery["state"], delivery["event_type"]) == (
        delivery_id,
        "pending",
        "webhook.test",
    )
    assert retried["event_id"] == delivery["event_id"]  # the same webhook-id
    assert missing.exit_code == 1
    queued = db.execute(
        "SELECT count(*) AS n FROM exports.outbox WHERE topic = 'webhook.deliver'"
    ).fetchone()
    assert queued["n"] == 2  # the test event's message, and the retry's
