"""The schema's migrations: up, down and up again on an empty database; readable for DBAs."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command
from psycopg.rows import dict_row

from app.platform.schema import alembic_config

EXPORTS_RELATIONS = [
    "api_clients",
    "email_suppressions",
    "failing",
    "job_timeline",
    "jobs",
    "limited_leases",
    "operator_actions",
    "outbox",
    "queue",
    "queue_health",
    "recent_failures",
    "schedules",
    "schedules_local",
    "stuck",
    "tenant_limits",
    "tenant_queue_health",
    "topics",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_failures",
    "workers",
]


def exports_relations(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'exports' AND c.relkind IN ('r', 'v') ORDER BY relname"
        ).fetchall()
    return [r[0] for r in rows]


def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    config = alembic_config(empty_database)

    command.upgrade(config, "head")
    assert exports_relations(empty_database) == EXPORTS_RELATIONS
    command.downgrade(config, "base")
    assert exports_relations(empty_database) == []
    command.upgrade(config, "head")
    assert exports_relations(empty_database) == EXPORTS_RELATIONS


def test_every_table_and_view_is_commented_for_dbas(db: psycopg.Connection) -> None:
    uncommented = db.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'exports' AND c.relkind IN ('r', 'v')"
        "   AND obj_description(c.oid, 'pg_class') IS NULL"
    ).fetchall()
    assert uncommented == []


def test_states_are_readable_text_guarded_by_checks(db: psycopg.Connection) -> None:
    db.execute(
        "INSERT INTO exports.jobs (owner_id, kind, format) VALUES ('u', 'demo_orders', 'csv')"
    )
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE exports.jobs SET state = 'done'")


def test_outbox_is_tuned_as_a_hot_queue(db: psycopg.Connection) -> None:
    with db.cursor(row_factory=dict_row) as cur:
        options = cur.execute(
            "SELECT reloptions FROM pg_class WHERE oid = 'exports.outbox'::regclass"
        ).fetchone()["reloptions"]
        index = cur.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'outbox_tenant_turn'"
        ).fetchone()["indexdef"]
    assert "fillfactor=70" in options
    # Partial: only unfinished messages, a small index over a table of mostly done rows.
    assert "(tenant, topic, turn_at, id) WHERE ((done_at IS NULL) AND (dead_at IS NULL))" in index
