"""An Idempotency-Key replay that races a delete of the row it names (issue 12, item 4).

POST with a used key inserts nothing (ON CONFLICT DO NOTHING), then reads the row holding
the key. If that row is deleted in between, the read finds nothing: that was a 500
(12-15 of 800 requests while another client deleted the schedule). Here the delete is put
exactly between the two statements by a statement-level trigger on the table, which fires
after an INSERT even when ON CONFLICT inserted nothing, and deletes the row once.
"""

from __future__ import annotations

import psycopg
import pytest
from flask.testing import FlaskClient

KEY = "race-key"
SCHEDULE = {
    "owner_id": "user-1",
    "kind": "demo_orders",
    "format": "csv",
    "cron": "0 8 * * *",
    "timezone": "UTC",
}
EXPORT = {"owner_id": "user-1", "kind": "demo_orders", "format": "csv"}


def delete_between_insert_and_read(db: psycopg.Connection, table: str) -> None:
    """After the next INSERT statement on exports.`table`, delete the row holding KEY once."""
    db.execute("CREATE TABLE public.race_deleted (done boolean)")
    db.execute(
        f"""
        CREATE FUNCTION public.delete_keyed_row_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT EXISTS (SELECT FROM public.race_deleted) THEN
                INSERT INTO public.race_deleted VALUES (true);
                DELETE FROM exports.{table} WHERE idempotency_key = '{KEY}';
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER race AFTER INSERT ON exports.{table}
            FOR EACH STATEMENT EXECUTE FUNCTION public.delete_keyed_row_once();
        """
    )


@pytest.mark.parametrize(
    ("path", "body", "table", "status"),
    [("/v1/schedules", SCHEDULE, "schedules", 201), ("/v1/exports", EXPORT, "jobs", 202)],
    ids=["schedule", "export"],
)
def test_a_replay_whose_row_is_deleted_meanwhile_creates_it_again(
    client: FlaskClient,
    db: psycopg.Connection,
    path: str,
    body: dict,
    table: str,
    status: int,
) -> None:
    first = client.post(path, json=body, headers={"Idempotency-Key": KEY})
    assert first.status_code == status
    delete_between_insert_and_read(db, table)

    replay = client.post(path, json=body, headers={"Idempotency-Key": KEY})

    assert replay.status_code == status, replay.get_json()
    assert db.execute("SELECT count(*) AS n FROM public.race_deleted").fetchone()["n"] == 1
    assert client.get(replay.headers["Location"]).status_code == 200
    assert replay.get_json()["id"] != first.get_json()["id"]  # the first one was deleted
