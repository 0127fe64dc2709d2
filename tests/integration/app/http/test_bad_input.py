"""Every client mistake gets a 4xx problem document naming the problem, never a 500."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask.testing import FlaskClient

GOOD = {
    "owner_id": "user-1",
    "kind": "demo_orders",
    "params": {},
    "format": "csv",
    "notify": {"email": "a@example.com"},
}
UNKNOWN_ID = "6f1c3c2e-8d0a-4b8e-9d61-3f1d2f0a9b77"


def body(**changes: Any) -> str:
    document = {**GOOD, **changes}
    return json.dumps({k: v for k, v in document.items() if v is not ...})


@dataclass
class Case:
    name: str
    method: str
    path: str
    status: int
    problem: str
    data: str | bytes | None = None
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    pointers: tuple[str, ...] = ()


CASES = [
    Case("malformed JSON", "POST", "/v1/exports", 400, "malformed-json", data='{"owner_id": '),
    Case("not UTF-8", "POST", "/v1/exports", 400, "malformed-json", data=b"\xff\xfe{}"),
    Case("wrong content type", "POST", "/v1/exports", 415, "unsupported-media-type",
         data=body(), content_type="text/plain"),
    Case("no content type", "POST", "/v1/exports", 415, "unsupported-media-type",
         data=body(), content_type=None),
    Case("body is not an object", "POST", "/v1/exports", 422, "validation", data="[1, 2]",
         pointers=("",)),
    Case("unknown kind", "POST", "/v1/exports", 422, "validation",
         data=body(kind="all_the_things"), pointers=("/kind",)),
    Case("missing kind", "POST", "/v1/exports", 422, "validation",
         data=body(kind=...), pointers=("/kind",)),
    Case("missing owner_id", "POST", "/v1/exports", 422, "validation",
         data=body(owner_id=...), pointers=("/owner_id",)),
    Case("mistyped owner_id", "POST", "/v1/exports", 422, "validation",
         data=body(owner_id=42), pointers=("/owner_id",)),
    Case("missing required param", "POST", "/v1/exports", 422, "validation",
         data=body(kind="slow_orders"), pointers=("/params/pause",)),
    Case("mistyped param", "POST", "/v1/exports", 422, "validation",
         data=body(params={"since": 20240101}), pointers=("/params/since",)),
    Case("malformed date param", "POST", "/v1/exports", 422, "validation",
         data=body(params={"since": "31/01/2024"}), pointers=("/params/since",)),
    Case("unknown param", "POST", "/v1/exports", 422, "validation",
         data=body(params={"owner_id": "user-2"}), pointers=("/params/owner_id",)),
    Case("params not an object", "POST", "/v1/exports", 422, "validation",
         data=body(params=["since"]), pointers=("/params",)),
    Case("bad email", "POST", "/v1/exports", 422, "validation",
         data=body(notify={"email": "not-an-address"}), pointers=("/notify/email",)),
    Case("notify not an object", "POST", "/v1/exports", 422, "validation",
         data=body(notify="a@example.com"), pointers=("/notify",)),
    Case("unknown notify field", "POST", "/v1/exports", 422, "validation",
         data=body(notify={"email": "a@example.com", "sms": "+4911"}),
         pointers=("/notify/sms",)),
    Case("unknown format", "POST", "/v1/exports", 422, "validation",
         data=body(format="pdf"), pointers=("/format",)),
    Case("unknown field", "POST", "/v1/exports", 422, "validation",
         data=body(priority="high"), pointers=("/priority",)),
    Case("several mistakes at once", "POST", "/v1/exports", 422, "validation",
         data=body(owner_id=..., format="pdf", params={"since": True}),
         pointers=("/owner_id", "/format", "/params/since")),
    Case("oversize body", "POST", "/v1/exports", 413, "payload-too-large",
         data=body(owner_id="x" * 100_000)),
    Case("bad Idempotency-Key", "POST", "/v1/exports", 400, "invalid-header",
         data=body(), headers={"Idempotency-Key": "k" * 300}),
    Case("unknown id", "GET", f"/v1/exports/{UNKNOWN_ID}", 404, "not-found", data=None),
    Case("id that is not a UUID", "GET", "/v1/exports/12345", 404, "not-found", data=None),
    Case("cancel unknown id", "POST", f"/v1/exports/{UNKNOWN_ID}/cancel", 404, "not-found",
         data=None),
    Case("list with unknown state", "GET", "/v1/exports?state=done", 422, "validation",
         data=None, pointers=("/state",)),
    Case("list with bad limit", "GET", "/v1/exports?limit=0", 422, "validation", data=None,
         pointers=("/limit",)),
    Case("list with non-numeric limit", "GET", "/v1/exports?limit=ten", 422, "validation",
         data=None, pointers=("/limit",)),
    Case("list with forged cursor", "GET", "/v1/exports?cursor=bm90LWEtY3Vyc29y", 422,
         "validation", data=None, pointers=("/cursor",)),
    # Found by a red-team pass (issue 12): each of these was a 500 (RecursionError, or
    # int() refusing more than 4,300 digits) before cursors had a fixed shape.
    *(
        Case(f"{what} {path}", "GET", f"/v1/{path}?{query}", 422, "validation", data=None,
             pointers=(pointer,))
        for path in ("exports", "schedules")
        for what, query, pointer in (
            ("deeply nested cursor", "cursor=" + "W1tb" * 1000, "/cursor"),
            ("cursor of nested objects", "cursor=" + '{"a":' * 2000, "/cursor"),
            ("limit of 5,000 digits", "limit=" + "9" * 5000, "/limit"),
        )
    ),
    Case("list with unknown argument", "GET", "/v1/exports?owner=user-1", 422, "validation",
         data=None, pointers=("/owner",)),
    Case("wrong method", "DELETE", f"/v1/exports/{UNKNOWN_ID}", 405, "method-not-allowed",
         data=None),
    Case("unknown path", "GET", "/v1/nothing-here", 404, "not-found", data=None),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_a_problem_document(client: FlaskClient, case: Case) -> None:
    response = client.open(
        case.path,
        method=case.method,
        data=case.data,
        content_type=case.content_type if case.data is not None else None,
        headers=case.headers,
    )

    assert response.status_code == case.status
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"].endswith("/" + case.problem)
    assert problem["status"] == case.status
    assert problem["detail"] and "Traceback" not in problem["detail"]
    assert [e["pointer"] for e in problem.get("errors", [])] == list(case.pointers)


def test_validation_details_say_what_is_wrong(client: FlaskClient) -> None:
    response = client.post(
        "/v1/exports", data=body(kind="all_the_things"), content_type="application/json"
    )

    [error] = response.get_json()["errors"]
    assert "not a known export kind" in error["detail"] and "demo_orders" in error["detail"]


def test_nothing_is_stored_for_a_rejected_request(client: FlaskClient, db: Any) -> None:
    client.post("/v1/exports", data=body(format="pdf"), content_type="application/json")

    assert db.execute("SELECT count(*) AS n FROM exports.jobs").fetchone()["n"] == 0


def test_unknown_id_and_random_uuid_look_the_same(client: FlaskClient) -> None:
    a = client.get(f"/v1/exports/{uuid.uuid4()}").get_json()
    b = client.get(f"/v1/exports/{uuid.uuid4()}").get_json()

    assert a["type"] == b["type"] and a["status"] == b["status"] == 404
