"""Opaque page cursors of GET /v1/exports: what encode_cursor makes, decode_cursor reads back."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

import pytest

from app.http.parsing import decode_cursor, encode_cursor

JOB_ID = uuid.UUID("7d6f2b9e-59a4-4f2a-9a53-3a7f1f9c1c11")
CREATED = dt.datetime(2024, 1, 31, 12, 34, 56, 123456, tzinfo=dt.UTC)


def b64(raw: bytes) -> str:
    """Base64url without padding, as encode_cursor writes it."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "created_at",
    [
        CREATED,
        dt.datetime(2024, 1, 31, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))),
        dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
    ],
)
def test_cursor_round_trips(created_at: dt.datetime) -> None:
    decoded = decode_cursor(encode_cursor(created_at, JOB_ID))

    assert decoded == (created_at, JOB_ID)
    assert decoded[0].utcoffset() == created_at.utcoffset()


def test_cursor_is_url_safe() -> None:
    cursor = encode_cursor(CREATED, JOB_ID)

    assert not set(cursor) & set("+/=?&# ")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("", id="empty"),
        pytest.param("!!!!", id="not-base64"),
        pytest.param("é", id="non-ascii"),
        pytest.param("a", id="one-char"),
        pytest.param(b64(b"hello world"), id="base64-of-text"),
        pytest.param(b64(b"\xff\xfe\x00"), id="base64-of-binary"),
        pytest.param(b64(b'["2024-01-31T12:00:00+00:00"'), id="truncated-json"),
        pytest.param(b64(b"[" * 3000), id="deeply-nested"),  # was a RecursionError
        pytest.param('{"a":' * 2000, id="nested-objects-unencoded"),
        pytest.param(encode_cursor(CREATED, JOB_ID) + "A" * 200, id="too-long"),
        pytest.param(b64(f"{CREATED.isoformat()},{JOB_ID}\n".encode()), id="trailing-newline"),
        pytest.param(b64(f"{CREATED.isoformat()},9999999999999999999".encode()), id="past-bigint"),
    ],
)
def test_garbage_is_a_value_error(cursor: str) -> None:
    with pytest.raises(ValueError):
        decode_cursor(cursor)


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(None, id="null"),
        pytest.param(42, id="number"),
        pytest.param("ab", id="two-char-string"),
        pytest.param({}, id="empty-object"),
        pytest.param({"created_at": "x", "id": "y"}, id="object"),
        pytest.param([], id="empty-list"),
        pytest.param(["2024-01-31T12:00:00+00:00"], id="one-item"),
        pytest.param(["2024-01-31T12:00:00+00:00", str(JOB_ID), 1], id="three-items"),
        pytest.param([str(JOB_ID), "2024-01-31T12:00:00+00:00"], id="swapped"),
        pytest.param([1706702400, str(JOB_ID)], id="timestamp-number"),
        pytest.param(["2024-01-31T12:00:00+00:00", "not-a-uuid"], id="bad-uuid"),
        pytest.param(["2024-01-31T12:00:00+00:00", None], id="null-uuid"),
        pytest.param(["2024-01-31T12:00:00+00:00", 42], id="number-uuid"),
        pytest.param(["2024-01-31T12:00:00+00:00", [str(JOB_ID)]], id="list-uuid"),
        pytest.param([CREATED.isoformat(), str(JOB_ID)], id="the-old-json-shape"),
    ],
)
def test_wrong_shape_is_a_value_error(shape: Any) -> None:
    with pytest.raises(ValueError):
        decode_cursor(b64(json.dumps(shape).encode()))


@pytest.mark.parametrize("created_at", ["2024-01-31T12:00:00", "2024-01-31"])
def test_naive_timestamp_is_a_value_error(created_at: str) -> None:
    with pytest.raises(ValueError):
        decode_cursor(b64(json.dumps([created_at, str(JOB_ID)]).encode()))


def test_an_integer_position_round_trips_up_to_bigint() -> None:
    assert decode_cursor(encode_cursor(CREATED, 2**63 - 1)) == (CREATED, 2**63 - 1)
