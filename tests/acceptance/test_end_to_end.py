"""The whole flow as the product runs it, with S3 and SES spoken to over HTTP (moto's server):

POST /v1/exports → poller → COPY → gzip → S3 multipart → SES email → the end user clicks
the link → 302 to a presigned S3 URL → the file is exactly the owner's rows.
"""

from __future__ import annotations

import csv
import dataclasses
import email
import email.policy
import gzip
import hashlib
import io
import re
from collections.abc import Callable
from email.message import EmailMessage

import psycopg
import pytest
import requests
from flask import Flask

from app import create_app
from app.exports.catalog import load_catalog
from app.exports.demo import seed_demo_orders
from app.platform.settings import Settings
from app.tenancy import clients
from poller.core.dispatch import Poller
from tests.support.aws import REGION, ses_sent_messages
from tests.support.exports import all_settled, expected_csv, job_ended
from tests.support.waiting import wait_until

OWNER_ROWS = 20_000  # ~2 MiB of CSV; multipart itself is proven in the storage tests


@pytest.fixture
def aws_settings(
    settings: Settings, aws_endpoint: str, s3_bucket: str, ses_sender: str
) -> Settings:
    return dataclasses.replace(
        settings,
        storage_url=f"s3://{s3_bucket}/exports",
        mail_url="ses://",
        mail_from=f"Exports <{ses_sender}>",
        aws_endpoint_url=aws_endpoint,
        aws_region=REGION,
    )


@pytest.fixture
def aws_app(aws_settings: Settings) -> Flask:
    flask_app = create_app(aws_settings)
    yield flask_app
    flask_app.extensions["exports"].close()


def test_export_reaches_the_owner_through_s3_and_ses(
    aws_app: Flask,
    aws_settings: Settings,
    db: psycopg.Connection,
    s3_client: object,
    s3_bucket: str,
    start_poller: Callable[..., Poller],
) -> None:
    seed_demo_orders(db, OWNER_ROWS * 2, owners=2)
    client = aws_app.test_client()
    _, key = clients.create_client(db, "acceptance", "default")
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    response = client.post(
        "/v1/exports",
        json={
            "owner_id": "user-1",
            "kind": "demo_orders",
            "format": "csv.gz",
            "notify": {"email": "ada@example.org"},
        },
    )
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    start_poller(aws_settings)

    wait_until(lambda: job_ended(db, job_id), timeout=120, what="the export")
    wait_until(lambda: all_settled(db), timeout=60, what="the email")

    job = client.get(f"/v1/exports/{job_id}").get_json()
    assert job["state"] == "succeeded"
    assert job["result"]["rows"] == OWNER_ROWS
    assert job["result"]["key"].startswith("default/" + job_id)

    # What S3 holds is what the job says it holds.
    stored = s3_client.get_object(Bucket=s3_bucket, Key="exports/" + job["result"]["key"])
    body = stored["Body"].read()
    assert stored["ContentType"] == "application/gzip"
    assert len(body) == job["result"]["bytes"]
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []

    # The end user's email, as SES accepted it.
    [sent] = [m for m in ses_sent_messages() if "ada@example.org" in m.destinations]
    mail = email.message_from_string(sent.raw_data, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    text = mail.get_body(("plain",)).get_content()
    assert f"{OWNER_ROWS:,}" in text
    link = re.search(r"http://exports\.test/d/\S+", text).group(0)
    assert db.execute(
        "SELECT email_message_id FROM exports.jobs WHERE id = %s", (job_id,)
    ).fetchone()["email_message_id"] == sent.id

    # Clicking the link: our API redirects to a short-lived presigned S3 URL.
    redirect = client.get(link.removeprefix("http://exports.test"))
    assert redirect.status_code == 302
    download = requests.get(redirect.headers["Location"], timeout=30)
    assert download.status_code == 200
    assert "demo_orders-" in download.headers["Content-Disposition"]

    # The file is exactly the owner's rows, header included, and nobody else's.
    data = gzip.decompress(download.content)
    query = load_catalog(aws_settings.catalog_dir).get("demo_orders").query
    assert data == expected_csv(db, query, {"owner_id": "user-1", "since": None, "status": None})
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    owned = db.execute(
        "SELECT array_agg(id ORDER BY id) AS ids FROM exports_demo.orders WHERE owner_id = %s",
        ("user-1",),
    ).fetchone()["ids"]
    assert sorted(int(r["order_id"]) for r in rows) == owned
    assert list(rows[0]) == [
        "order_id", "placed_at", "status", "item", "quantity", "amount_cents", "currency", "note"
    ]
    assert hashlib.sha256(download.content).hexdigest() == job["result"]["sha256"]
