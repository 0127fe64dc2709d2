"""Webhooks end to end: real receivers on loopback, real pollers, real PostgreSQL.

Every delivery is verified as a receiver would, with the standardwebhooks package.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from standardwebhooks import Webhook, WebhookVerificationError

from app import create_app
from app.exports import jobs
from app.exports.demo import seed_demo_orders
from app.platform.settings import Settings
from poller.core.dispatch import Poller
from tests.conftest import api_key
from tests.support.exports import submit
from tests.support.operations import claim, queued_job
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import Answer, Receiver


def create_endpoint(client: FlaskClient, url: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/webhook-endpoints", json={"url": url, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def deliveries(db: psycopg.Connection) -> list[dict[str, Any]]:
    return db.execute("SELECT * FROM exports.webhook_deliveries ORDER BY id").fetchall()


def retries_due_now(db: psycopg.Connection) -> None:
    """Skip the back-off of webhook messages waiting to retry (the schedule is minutes)."""
    db.execute(
        "UPDATE exports.outbox SET visible_at = now() WHERE topic = 'webhook.deliver'"
        " AND leased_by IS NULL AND done_at IS NULL AND dead_at IS NULL"
    )


def delivered() -> float:
    """exports_webhook_deliveries_total{outcome="delivered"} in this process."""
    sample = REGISTRY.get_sample_value(
        "exports_webhook_deliveries_total", {"outcome": "delivered"}
    )
    return sample or 0.0


def verified(secret: str, request: Any) -> dict[str, Any]:
    return Webhook(secret).verify(request.body, request.headers)


def test_an_export_that_ends_is_posted_signed_with_the_job_as_the_api_shows_it(
    client: FlaskClient,
    db: psycopg.Connection,
    receiver: Receiver,
    start_poller: Callable[..., Poller],
) -> None:
    seed_demo_orders(db, 20)
    delivered_before = delivered()
    endpoint = create_endpoint(client, receiver.url + "/hooks")
    assert endpoint["secret"].startswith("whsec_")
    assert "secret" not in client.get(f"/v1/webhook-endpoints/{endpoint['id']}").get_json()
    start_poller()

    job = submit(client)
    [request] = wait_until(lambda: receiver.received(), what="the webhook")

    event = verified(endpoint["secret"], request)
    assert event["type"] == "export.succeeded" and event["timestamp"].endswith("Z")
    assert event["data"] == client.get(f"/v1/exports/{job['id']}").get_json()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("exports/")
    assert request.headers["webhook-id"].startswith("msg_")
    link = urlsplit(event["data"]["download_url"]).path
    assert client.get(link).status_code == 200  # the link in the payload downloads the file
    wait_until(lambda: deliveries(db)[0]["state"] == "succeeded", what="recorded")
    assert delivered() == delivered_before + 1
    listed = client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries").get_json()
    [shown] = listed["items"]
    assert (shown["state"], shown["attempts"], shown["last_status_code"]) == (
        "succeeded",
        1,
        200,
    )
    timeline = db.execute(
        "SELECT event, detail FROM exports.job_timeline WHERE job_id = %s AND topic = %s",
        (job["id"], "webhook.deliver"),
    ).fetchall()
    assert {row["event"] for row in timeline} >= {"webhook succeeded"}


def test_failures_are_retried_with_the_same_webhook_id_until_delivered(
    client: FlaskClient,
    db: psycopg.Connection,
    receiver: Receiver,
    start_poller: Callable[..., Poller],
) -> None:
    receiver.script = [Answer(500), Answer(500)]
    endpoint = create_endpoint(client, receiver.url, events=["export.cancelled"])
    start_poller()
    job = submit(client)
    client.post(f"/v1/exports/{job['id']}/cancel")

    def three_tries() -> bool:
        retries_due_now(db)
        return len(receiver.received()) >= 3

    wait_until(three_tries, what="three attempts")
    wait_until(lambda: deliveries(db)[0]["state"] == "succeeded", what="delivered")

    ids = {r.headers["webhook-id"] for r in receiver.received()}
    bodies = {r.body for r in receiver.received()}
    assert len(ids) == 1 and len(bodies) == 1  # one event: same id, same body every time
    assert verified(endpoint["secret"], receiver.received()[2])["type"] == "export.cancelled"
    [delivery] = deliveries(db)
    assert (delivery["attempts"], delivery["last_status_code"]) == (3, 200)


def test_a_claim_whose_poller_died_before_sending_does_not_count_on_the_schedule(
    client: FlaskClient,
    db: psycopg.Connection,
    receiver: Receiver,
    start_poller: Callable[..., Poller],
) -> None:
    # The chaos run found it: a poller killed between claim and POST, then a 500, put the
    # delivery's next try 5 min away (the schedule's 2nd step) after a single POST.
    receiver.script = [Answer(500)]
    endpoint = create_endpoint(client, receiver.url)
    client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    db.execute("UPDATE exports.outbox SET attempts = 1 WHERE topic = 'webhook.deliver'")
    start_poller()

    wait_until(lambda: deliveries(db)[0]["state"] == "retrying", what="the 500")

    waits = db.execute(
        "SELECT extract(epoch FROM d.next_attempt_at - now()) AS delivery,"
        " extract(epoch FROM o.visible_at - now()) AS message"
        " FROM exports.webhook_deliveries d JOIN exports.outbox o"
        " ON o.topic = 'webhook.deliver' AND (o.payload->>'delivery_id')::bigint = d.id"
    ).fetchone()
    assert waits is not None
    assert 0 < waits["delivery"] <= 5 and 0 < waits["message"] <= 5, waits  # not 300 s
    assert len(receiver.received()) == 1


def test_410_disables_the_endpoint(
    client: FlaskClient,
    db: psycopg.Connection,
    receiver: Receiver,
    start_poller: Callable[..., Poller],
) -> None:
    receiver.otherwise = Answer(410)
    endpoint = create_endpoint(client, receiver.url)
    start_poller()

    client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    wait_until(lambda: deliveries(db)[0]["state"] == "failed", what="the 410")

    shown = client.get(f"/v1/webhook-endpoints/{endpoint['id']}").get_json()
    assert shown["enabled"] is False and "410" in shown["disabled_reason"]
    assert len(receiver.received()) == 1


def test_redirects_are_not_followed_and_huge_answers_are_cut_off(
    client: FlaskClient,
    db: psycopg.Connection,
    receiver: Receiver,
    start_poller: Callable[..., Poller],
) -> None:
    receiver.script = [
        Answer(302, headers={"Location": receiver.url + "/elsewhere"}, body=b"moved " * 400),
        Answer(200, body=b"x" * (8 * 1024 * 1024)),
    ]
    endpoint = create_endpoint(client, receiver.url + "/hook")
    start_poller()

    client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    wait_until(lambda: deliveries(db)[0]["attempts"] == 1, what="the redirect")
    first = deliveries(db)[0]
    assert first["last_status_code"] == 302
    assert first["last_error"].startswith("the receiver answered 302: moved moved")
    assert len(first["last_error"]) <= 1024  # 1 KiB of what the receiver said is kept
    retries_due_now(db)
    wait_until(lambda: deliveries(db)[0]["state"] == "succeeded", what="the huge answer")

    assert receiver.received("/elsewhere") == []
    assert len(receiver.received("/hook")) == 2


def test_a_slow_receiver_times_out_and_is_retried(
    client: FlaskClient,
    db: psycopg.Connection,
    receiver: Receiver,
    start_poller: Callable[..., Poller],
) -> None:
    release = threading.Event()
    receiver.script = [Answer(200, wait=release)]
    endpoint = create_endpoint(client, receiver.url)
    poller = start_poller()
    poller.handlers["webhook.deliver"].total_seconds = 0.5  # 10 s in production
    try:
        client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
        wait_until(lambda: deliveries(db)[0]["state"] == "retrying", what="the time-out")
    finally:
        release.set()
    assert "Timeout" in deliveries(db)[0]["last_error"]
    retries_due_now(db)
    wait_until(lambda: deliveries(db)[0]["state"] == "succeeded", what="the retry")


def test_during_a_rotation_both_secrets_verify_then_only_the_new_one(
    client: FlaskClient,
    db: psycopg.Connection,
    receiver: Receiver,
    start_poller: Callable[..., Poller],
) -> None:
    endpoint = create_endpoint(client, receiver.url)
    rotated = client.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret").get_json()
    assert rotated["secret"] != endpoint["secret"]
    start_poller()

    client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    [during] = wait_until(lambda: receiver.received(), what="a delivery during the overlap")
    db.execute("UPDATE exports.webhook_endpoints SET previous_secret_expires_at = now()")
    client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    wait_until(lambda: len(receiver.received()) == 2, what="a delivery after it")
    after = receiver.received()[1]

    assert len(during.headers["webhook-signature"].split()) == 2
    for secret in (endpoint["secret"], rotated["secret"]):
        assert verified(secret, during)["type"] == "webhook.test"
    assert verified(rotated["secret"], after)["type"] == "webhook.test"
    with pytest.raises(WebhookVerificationError):
        verified(endpoint["secret"], after)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/h", "http://172.16.0.1/h", "http://192.168.1.1/h",
        "http://169.254.169.254/latest/meta-data", "http://100.64.0.1/h", "http://224.0.0.1/h",
        "http://0.0.0.0/h", "http://[fd00::1]/h", "http://[fe80::1]/h",
        "http://[::ffff:10.0.0.1]/h", "http://user:pw@example.com/h", "ftp://example.com/h",
    ],
)  # fmt: skip
def test_private_addresses_are_refused_at_creation(client: FlaskClient, url: str) -> None:
    response = client.post("/v1/webhook-endpoints", json={"url": url})

    assert response.status_code == 422
    assert [e["pointer"] for e in response.get_json()["errors"]] == ["/url"]


def test_loopback_is_refused_unless_allowed_and_checked_again_at_delivery(
    settings: Settings,
    client: FlaskClient,
    db: psycopg.Connection,
    receiver: Receiver,
    start_poller: Callable[..., Poller],
) -> None:
    strict = create_app(dataclasses.replace(settings, webhook_allow_networks=()))
    try:
        strict_client = strict.test_client()
        bearer = {"Authorization": f"Bearer {api_key(settings.database_url, 's', 'default')}"}
        for url in (receiver.url, "http://localhost:9/h", "http://[::1]:9/h"):
            refused = strict_client.post("/v1/webhook-endpoints", json={"url": url}, headers=bearer)
            assert refused.status_code == 422, url
            assert "loopback" in refused.get_json()["errors"][0]["detail"]
    finally:
        strict.extensions["exports"].close()
    # Allowed when created; a poller that may not reach loopback (as after DNS rebinding)
    # does not send it.
    port = urlsplit(receiver.url).port
    endpoint = create_endpoint(client, f"http://localhost:{port}/h")
    start_poller(webhook_allow_networks=())

    client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    wait_until(lambda: deliveries(db)[0]["state"] == "retrying", what="the refused attempt")

    assert "loopback" in deliveries(db)[0]["last_error"]
    assert receiver.received() == []


def test_a_job_never_ends_without_its_webhooks_queued(
    client: FlaskClient, db: psycopg.Connection, receiver: Receiver
) -> None:
    create_endpoint(client, receiver.url)
    job = queued_job(db)
    message = claim(db, job.id)
    jobs.start_export(db, message)
    db.execute(
        "CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN RAISE EXCEPTION 'webhook queue is down'; END $$;"
        " CREATE TRIGGER refuse BEFORE INSERT ON exports.webhook_deliveries"
        " FOR EACH STATEMENT EXECUTE FUNCTION public.refuse()"
    )

    with psycopg.connect(db.info.dsn) as conn, pytest.raises(psycopg.errors.RaiseException):
        jobs.fail_export(conn, message, "boom")

    assert db.execute("SELECT state FROM exports.jobs").fetchone()["state"] == "running"
    assert deliveries(db) == []


def test_notify_webhook_false_sends_nothing(
    client: FlaskClient,
    db: psycopg.Connection,
    receiver: Receiver,
    start_poller: Callable[..., Poller],
) -> None:
    create_endpoint(client, receiver.url)
    start_poller()
    quiet = submit(client, notify={"webhook": False})
    loud = submit(client)

    wait_until(
        lambda: len(deliveries(db)) == 1 and deliveries(db)[0]["state"] == "succeeded",
        what="one delivery",
    )
    assert str(deliveries(db)[0]["job_id"]) == loud["id"]
    assert json.loads(receiver.received()[0].body)["data"]["id"] == loud["id"]
    assert quiet["id"] != loud["id"]


def test_an_endpoint_failing_for_five_days_is_disabled(
    client: FlaskClient,
    db: psycopg.Connection,
    receiver: Receiver,
    start_poller: Callable[..., Poller],
) -> None:
    receiver.otherwise = Answer(503)
    endpoint = create_endpoint(client, receiver.url)
    db.execute(
        "UPDATE exports.webhook_endpoints SET failing_since = now() - interval '5 days 1 minute'"
    )
    start_poller()

    client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    wait_until(lambda: deliveries(db)[0]["state"] == "failed", what="the give-up")

    shown = client.get(f"/v1/webhook-endpoints/{endpoint['id']}").get_json()
    assert shown["enabled"] is False and "5 days" in shown["disabled_reason"]
    dead = db.execute("SELECT dead_at FROM exports.outbox WHERE topic = 'webhook.deliver'")
    assert dead.fetchone()["dead_at"] is not None


def test_a_delivery_cursor_past_bigint_is_a_422(client: FlaskClient, receiver: Receiver) -> None:
    endpoint = create_endpoint(client, receiver.url)
    cursor = base64.urlsafe_b64encode(b"2024-01-01T00:00:00+00:00,9999999999999999999")

    response = client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries?cursor={cursor.decode().rstrip('=')}"
    )

    assert response.status_code == 422  # was a 500: the id overflowed the bigint column
    assert [e["pointer"] for e in response.get_json()["errors"]] == ["/cursor"]
