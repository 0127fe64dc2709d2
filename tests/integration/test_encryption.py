"""Personal data and secrets at rest: addresses and webhook secrets are stored encrypted,
shown masked to DBAs, found through a blind index, re-encrypted by rotate-keys, and the
migration encrypts what was stored before it (issue 14)."""

from __future__ import annotations

import shutil
import subprocess

import psycopg
import pytest
from alembic import command
from click.testing import CliRunner
from cryptography.fernet import Fernet
from flask.testing import FlaskClient

from app.notifications import ses_feedback
from app.operators.cli import cli
from app.platform import crypto
from app.platform.schema import alembic_config
from tests.conftest import TEST_ENCRYPTION_KEY

ADDRESS = "secret.person@example.com"


def dump(database_url: str) -> str:
    """Every row of the exports schema, as pg_dump writes it."""
    pg_dump = shutil.which("pg_dump")
    assert pg_dump is not None
    return subprocess.run(
        [pg_dump, "--data-only", "--schema=exports", database_url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def store_everything(client: FlaskClient, db: psycopg.Connection) -> str:
    """A job and a schedule emailing ADDRESS, ADDRESS suppressed, a webhook endpoint."""
    assert (
        client.post(
            "/v1/exports",
            json={"owner_id": "u", "kind": "demo_orders", "notify": {"email": ADDRESS}},
        ).status_code
        == 202
    )
    assert (
        client.post(
            "/v1/schedules",
            json={
                "owner_id": "u",
                "kind": "demo_orders",
                "cron": "0 8 * * *",
                "timezone": "UTC",
                "notify": {"email": ADDRESS},
            },
        ).status_code
        == 201
    )
    ses_feedback.suppress(db, ADDRESS, reason="bounce", detail="Permanent", message_id="m-1")
    endpoint = client.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/h"})
    return endpoint.get_json()["secret"]


def test_no_address_or_secret_is_stored_in_the_clear(
    client: FlaskClient, db: psycopg.Connection, database_url: str
) -> None:
    secret = store_everything(client, db)

    rows = dump(database_url)
    assert ADDRESS not in rows and ADDRESS.upper() not in rows
    assert secret not in rows and secret.removeprefix("whsec_") not in rows
    assert "s***@example.com" in rows  # what DBAs see
    shown = db.execute("SELECT notify_email FROM exports.schedules_local").fetchone()
    assert shown["notify_email"] == "s***@example.com"
    # ...and the service reads them back.
    assert ses_feedback.is_suppressed(db, ADDRESS.upper())
    [schedule] = client.get("/v1/schedules").get_json()["items"]
    assert schedule["notify"]["email"] == ADDRESS


def test_rotate_keys_re_encrypts_everything_and_suppression_still_matches(
    client: FlaskClient, db: psycopg.Connection, database_url: str
) -> None:
    secret = store_everything(client, db)
    new_key = Fernet.generate_key().decode()
    env = {
        "DATABASE_URL": database_url,
        "EXPORTS_ENCRYPTION_KEYS": f"{new_key},{TEST_ENCRYPTION_KEY}",
    }

    result = CliRunner().invoke(cli, ["rotate-keys", "--json", "--batch-size", "1"], env=env)

    assert result.exit_code == 0, result.output
    assert '"suppressions": 1' in result.output and '"webhook_endpoints": 1' in result.output
    crypto.configure((new_key,))  # the old key is dropped: everything must still read
    try:
        tokens = [
            *[r["notify_email"] for r in db.execute("SELECT notify_email FROM exports.jobs")],
            *[r["notify_email"] for r in db.execute("SELECT notify_email FROM exports.schedules")],
            *[r["address"] for r in db.execute("SELECT address FROM exports.email_suppressions")],
        ]
        assert [crypto.vault().decrypt(t) for t in tokens] == [ADDRESS] * 3
        stored = db.execute("SELECT secret FROM exports.webhook_endpoints").fetchone()["secret"]
        assert crypto.vault().decrypt(stored) == secret
        assert ses_feedback.is_suppressed(db, ADDRESS)
    finally:
        crypto.configure((TEST_ENCRYPTION_KEY,))


def test_unsuppress_finds_the_address_by_its_blind_index(
    db: psycopg.Connection, database_url: str
) -> None:
    ses_feedback.suppress(db, ADDRESS, reason="complaint", detail="abuse", message_id="m-2")
    env = {"DATABASE_URL": database_url, "EXPORTS_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY}

    assert CliRunner().invoke(cli, ["unsuppress", ADDRESS.title()], env=env).exit_code == 0
    assert not ses_feedback.is_suppressed(db, ADDRESS)
    assert CliRunner().invoke(cli, ["unsuppress", ADDRESS], env=env).exit_code == 1


def test_the_migration_encrypts_what_was_stored_before_it(
    empty_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "0010")
    with psycopg.connect(empty_database) as conn:
        conn.execute(
            "INSERT INTO exports.jobs (tenant, owner_id, kind, params, format, notify_email)"
            " VALUES ('t', 'u', 'demo_orders', '{}', 'csv', %s)",
            (ADDRESS,),
        )
        conn.execute(
            "INSERT INTO exports.email_suppressions (address, reason, source_message_id)"
            " VALUES (%s, 'bounce', 'm')",
            (ADDRESS,),
        )
        conn.execute(
            "INSERT INTO exports.webhook_endpoints (tenant, url, events, secret)"
            " VALUES ('t', 'http://127.0.0.1/h', '{export.failed}', 'whsec_plain')"
        )
    monkeypatch.setenv("EXPORTS_ENCRYPTION_KEYS", TEST_ENCRYPTION_KEY)

    command.upgrade(config, "head")

    rows = dump(empty_database)
    assert ADDRESS not in rows and "whsec_plain" not in rows
    assert ses_feedback.is_suppressed(psycopg.connect(empty_database), ADDRESS)
    command.downgrade(config, "0010")
    with psycopg.connect(empty_database) as conn:
        back = conn.execute("SELECT notify_email FROM exports.jobs").fetchone()
        assert back == (ADDRESS,)
