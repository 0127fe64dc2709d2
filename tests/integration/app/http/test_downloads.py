"""GET /d/<token> with the file backend: the right file, or a readable 404/410."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from app.exports.demo import seed_demo_orders
from app.exports.links import TOKEN_SALT
from poller.core.dispatch import Poller
from tests.support.exports import job_ended, submit
from tests.support.waiting import wait_until


@pytest.fixture
def finished(
    client: FlaskClient, db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> dict[str, Any]:
    """A succeeded csv export of user-1's demo orders, as the API shows it."""
    seed_demo_orders(db, 30)
    job = submit(client, format="csv")
    start_poller()
    wait_until(lambda: job_ended(db, job["id"]), what="the export")
    return client.get(f"/v1/exports/{job['id']}").get_json()


def path_of(link: str) -> str:
    return link.removeprefix("http://exports.test")


def test_link_downloads_the_file_under_a_friendly_name(
    client: FlaskClient, finished: dict[str, Any]
) -> None:
    response = client.get(path_of(finished["download_url"]))

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert f"demo_orders-{finished['created_at'][:10]}.csv" in disposition
    lines = response.data.decode().splitlines()
    assert lines[0].startswith("order_id,placed_at,status")
    assert response.data.count(b"\n") >= finished["result"]["rows"] + 1


def test_tampered_link_is_not_found(client: FlaskClient, finished: dict[str, Any]) -> None:
    link = path_of(finished["download_url"])
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")

    response = client.get(tampered)

    assert response.status_code == 404
    assert response.get_json()["type"].endswith("/link-invalid")


def test_link_signed_with_another_secret_is_not_found(
    client: FlaskClient, finished: dict[str, Any]
) -> None:
    forged = URLSafeTimedSerializer("not-our-secret", salt=TOKEN_SALT).dumps(finished["id"])

    assert client.get(f"/d/{forged}").status_code == 404


def test_link_past_its_lifetime_is_gone(
    app: Flask, client: FlaskClient, finished: dict[str, Any]
) -> None:
    class EightDaysAgo(TimestampSigner):
        # Only the token maker's clock moves; the API checks with the real time.
        def get_timestamp(self) -> int:
            return super().get_timestamp() - 8 * 24 * 3600

    secret = app.extensions["exports"].settings.secret_key
    old = URLSafeTimedSerializer(secret, salt=TOKEN_SALT, signer=EightDaysAgo)

    response = client.get(f"/d/{old.dumps(finished['id'])}")

    assert response.status_code == 410
    assert response.get_json()["type"].endswith("/link-expired")


def test_link_to_an_expired_file_is_gone(
    client: FlaskClient, db: psycopg.Connection, finished: dict[str, Any]
) -> None:
    db.execute(
        "UPDATE exports.jobs SET expires_at = now() - interval '1 minute' WHERE id = %s",
        (finished["id"],),
    )

    assert client.get(path_of(finished["download_url"])).status_code == 410


def test_browsers_get_a_readable_page(client: FlaskClient, finished: dict[str, Any]) -> None:
    response = client.get(
        path_of(finished["download_url"])[:-4] + "zzzz",
        headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )

    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert b"<h1>Link not valid</h1>" in response.data


# --- links stop working with their job (security issue) -----------------------------------


def test_a_link_that_worked_is_gone_once_its_job_expired(
    client: FlaskClient, db: psycopg.Connection, finished: dict[str, Any]
) -> None:
    link = path_of(finished["download_url"])
    assert client.get(link).status_code == 200

    db.execute(
        "UPDATE exports.jobs SET state = 'expired', expires_at = now() WHERE id = %s",
        (finished["id"],),
    )

    for _ in range(2):  # replaying the link after expiry never works again
        response = client.get(link)
        assert response.status_code == 410
        assert response.get_json()["type"].endswith("/link-expired")


def test_a_link_to_a_deleted_job_is_gone(
    client: FlaskClient, db: psycopg.Connection, finished: dict[str, Any]
) -> None:
    db.execute("DELETE FROM exports.jobs WHERE id = %s", (finished["id"],))

    assert client.get(path_of(finished["download_url"])).status_code == 410


def test_a_genuine_link_to_a_cancelled_job_is_gone(app: Flask, client: FlaskClient) -> None:
    job = submit(client)
    client.post(f"/v1/exports/{job['id']}/cancel")
    link = app.extensions["exports"].links.link_for(job["id"])

    assert client.get(path_of(link)).status_code == 410


def test_a_link_names_exactly_one_job(
    app: Flask, client: FlaskClient, finished: dict[str, Any]
) -> None:
    # Swapping the signed job id for another one breaks the signature.
    token = path_of(finished["download_url"]).removeprefix("/d/")
    payload, rest = token.split(".", 1)
    other = URLSafeTimedSerializer("x", salt=TOKEN_SALT).dumps(submit(client)["id"])

    assert client.get(f"/d/{other.split('.', 1)[0]}.{rest}").status_code == 404
    assert client.get(f"/d/{payload}.{rest}").status_code == 200


def test_links_need_no_api_key(app: Flask, finished: dict[str, Any]) -> None:
    anonymous = app.test_client()
    anonymous.environ_base.pop("HTTP_AUTHORIZATION", None)

    assert anonymous.get(path_of(finished["download_url"])).status_code == 200
