"""Big exports in parts: each part a complete file, rows adding up, a manifest whose hashes
match the objects, and links to every part (API, download page, email)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Callable
from typing import Any

import psycopg
import pyarrow.parquet as pq
from flask.testing import FlaskClient

from app.exports.formats import MIN_PART_BYTES
from app.platform.settings import Settings
from poller.core.dispatch import Poller
from tests.support.exports import all_settled, email_text, emails, job_ended, stored_file, submit
from tests.support.waiting import wait_until


def export_in_parts(
    client: FlaskClient,
    db: psycopg.Connection,
    start_poller: Callable[..., Poller],
    **body: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run one numbered_lines export with the smallest part size; (job JSON, job row)."""
    submitted = submit(
        client, kind="numbered_lines", owner_id="big-1", max_part_bytes=MIN_PART_BYTES, **body
    )
    start_poller()
    wait_until(lambda: all_settled(db), timeout=120, what="the export in parts")
    row = job_ended(db, submitted["id"])
    assert row is not None and row["state"] == "succeeded", row and row["last_error"]
    shown = client.get(f"/v1/exports/{submitted['id']}").get_json()
    return shown, row


def test_a_csv_gz_export_in_parts_is_whole_files_a_manifest_and_a_link_each(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    rows = 500_000
    job, row = export_in_parts(
        client,
        db,
        start_poller,
        format="csv.gz",
        params={"rows": rows},
        notify={"email": "big@example.com"},
    )

    result = job["result"]
    parts = result["parts"]
    assert len(parts) >= 3
    texts = []
    for part in parts:
        data = stored_file(settings, part["key"]).read_bytes()
        assert len(data) == part["bytes"] <= MIN_PART_BYTES
        assert hashlib.sha256(data).hexdigest() == part["sha256"]
        text = gzip.decompress(data).decode()  # each part a whole gzip file on its own
        assert text.startswith("n,noise\n")  # ... and a whole CSV file, header first
        assert text.count("\n") - 1 == part["rows"]
        texts.append(text)
    numbers = [int(line.split(",")[0]) for text in texts for line in text.splitlines()[1:]]
    assert numbers == list(range(1, rows + 1))  # every row once, in order, across the parts
    assert result["rows"] == rows == sum(p["rows"] for p in parts)
    assert result["bytes"] == sum(p["bytes"] for p in parts)

    # The manifest lists every part as stored; the result names it.
    assert result["key"] == result["manifest_key"] == row["result_key"]
    manifest_bytes = stored_file(settings, result["manifest_key"]).read_bytes()
    assert hashlib.sha256(manifest_bytes).hexdigest() == result["sha256"]
    manifest = json.loads(manifest_bytes)
    assert manifest["rows"] == rows and manifest["format"] == "csv.gz"
    assert [(p["key"], p["rows"], p["bytes"], p["sha256"]) for p in manifest["parts"]] == [
        (p["key"], p["rows"], p["bytes"], p["sha256"]) for p in parts
    ]

    # The link answers a page listing every part, as JSON or HTML.
    link = job["download_url"].removeprefix("http://exports.test")
    listing = client.get(link, headers={"Accept": "application/json"})
    assert listing.status_code == 200
    listed = listing.get_json()
    assert [p["sha256"] for p in listed["parts"]] == [p["sha256"] for p in parts]
    page = client.get(link, headers={"Accept": "text/html"}).get_data(as_text=True)
    for number, part in enumerate(listed["parts"], start=1):
        # Under the link the visitor came with: no new token per visit.
        assert part["url"] == f"http://exports.test{link}/{number}"
        assert part["url"].removeprefix("http://exports.test") in page
        got = client.get(part["url"].removeprefix("http://exports.test"))
        assert got.status_code == 200
        assert hashlib.sha256(got.get_data()).hexdigest() == parts[number - 1]["sha256"]
        disposition = got.headers["Content-Disposition"]
        assert f"-part-{number}-of-{len(parts)}.csv.gz" in disposition
        assert disposition.startswith("attachment; filename=numbered_lines-")
    missing = client.get(f"{link}/{len(parts) + 1}", headers={"Accept": "application/json"})
    assert missing.status_code == 404
    got_manifest = client.get(f"{link}/manifest.json")
    assert json.loads(got_manifest.get_data()) == manifest

    # The email links each part too.
    [sent] = emails(settings)
    text = email_text(sent)
    assert f"It is in {len(parts)} files" in text
    assert all(f"/{number}\n" in text for number in range(1, len(parts) + 1))


def test_parquet_parts_are_each_a_valid_file(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    rows = 800_000
    job, _ = export_in_parts(client, db, start_poller, format="parquet", params={"rows": rows})

    parts = job["result"]["parts"]
    assert len(parts) >= 3
    numbers: list[int] = []
    for part in parts:
        data = stored_file(settings, part["key"]).read_bytes()
        assert len(data) == part["bytes"] <= MIN_PART_BYTES
        table = pq.read_table(io.BytesIO(data))  # the footer is there: a file on its own
        assert table.num_rows == part["rows"]
        assert table.schema.names == ["n", "noise"]
        numbers += table.column("n").to_pylist()
    assert numbers == list(range(1, rows + 1))


def test_a_small_export_is_one_part_without_a_manifest(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    job, row = export_in_parts(client, db, start_poller, format="jsonl", params={"rows": 10})

    [part] = job["result"]["parts"]
    assert job["result"]["manifest_key"] is None
    assert part["key"] == job["result"]["key"] == row["result_key"]
    data = stored_file(settings, part["key"]).read_bytes()
    assert [json.loads(line)["n"] for line in data.splitlines()] == list(range(1, 11))
    link = job["download_url"].removeprefix("http://exports.test")
    got = client.get(link)
    assert got.get_data() == data  # one part: the file itself, not a page
    assert got.headers["Content-Disposition"].endswith(".jsonl")
