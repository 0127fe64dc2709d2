"""The published OpenAPI document is exactly what the server enforces (issue 13).

For each request body the API takes, every field is replaced in turn by a table of probe
values. For every probe, the document's own schema (fetched from /v1/openapi.json) and the
server must agree:
- what the server accepts, the schema accepts (no hidden restriction ever goes
  undocumented: the schedule request's owner_id once accepted "a b" in the document and
  was refused by the server);
- what the schema accepts, the server accepts, unless that field's description says it is
  "checked after the schema" (a cron croniter refuses, a date that does not exist, ...).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

PROBES: list[Any] = [
    "a b",
    "",
    " ",
    "x" * 201,
    "x" * 1001,
    "user-1",
    "auth0|42",
    "a@b.co",
    "ü",
    "\x00",
    "2024-01-31",
    "2024-02-30",
    "31/01/2024",
    "csv",
    "csv.gz",
    "xlsx",
    "0 8 * * *",
    "61 * * * *",
    "Europe/Berlin",
    "Mars/Olympus",
    0,
    1,
    -1,
    1.5,
    2**63,
    True,
    False,
    None,
    [],
    ["a"],
    {},
    {"email": "o@example.com"},
    {"email": "nope"},
    {"since": "2024-01-01"},
]
EXPORT = {
    "owner_id": "user-1",
    "kind": "demo_orders",
    "params": {"since": "2024-01-01"},
    "format": "csv",
    "notify": {"email": "o@example.com"},
}
SCHEDULE = {**EXPORT, "cron": "0 8 * * *", "timezone": "Europe/Berlin", "enabled": True}
PATCH = {"cron": "0 9 * * *", "timezone": "UTC", "params": {"since": None}, "enabled": True}


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    return client.get("/v1/openapi.json").get_json()


def body_schema(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    operation = document["paths"][path][method]
    return operation["requestBody"]["content"]["application/json"]["schema"]


def accepts(document: dict[str, Any], schema: dict[str, Any], body: Any) -> bool:
    root = {"components": document["components"], **schema}
    return Draft202012Validator(root).is_valid(body)


def field_schema(document: dict[str, Any], schema: dict[str, Any], field: str) -> dict:
    """The schema of one top-level field, `$ref`s resolved (also through oneOf branches)."""

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = document["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        return node

    root = resolve(schema)
    found = root.get("properties", {}).get(field)
    return resolve(found) if found else {}


def probed(base: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    """(field, probe, body) for every top-level field of `base` and every probe."""
    cases = []
    for field in base:
        for probe in PROBES:
            body = copy.deepcopy(base)
            body[field] = probe
            cases.append((field, probe, body))
    return cases


def check_agreement(
    document: dict[str, Any], schema: dict[str, Any], cases: list, send: Any
) -> list[str]:
    disagreements = []
    for field, probe, body in cases:
        documented = accepts(document, schema, body)
        status = send(body)
        served = 200 <= status < 300
        described = json.dumps(field_schema(document, schema, field)).lower()
        after_schema = "checked after the schema" in described
        if served and not documented:
            disagreements.append(f"{field}={probe!r}: served {status}, document refuses")
        if documented and not served and not after_schema:
            disagreements.append(f"{field}={probe!r}: document accepts, served {status}")
    return disagreements


def test_export_requests(client: FlaskClient, document: dict[str, Any]) -> None:
    schema = body_schema(document, "/v1/exports", "post")
    assert accepts(document, schema, EXPORT)

    def send(body: Any) -> int:
        return client.post("/v1/exports", json=body).status_code

    assert check_agreement(document, schema, probed(EXPORT), send) == []


def test_schedule_requests(client: FlaskClient, document: dict[str, Any]) -> None:
    schema = body_schema(document, "/v1/schedules", "post")
    assert accepts(document, schema, SCHEDULE)

    def send(body: Any) -> int:
        return client.post("/v1/schedules", json=body).status_code

    assert check_agreement(document, schema, probed(SCHEDULE), send) == []


def test_schedule_changes(client: FlaskClient, document: dict[str, Any]) -> None:
    schema = body_schema(document, "/v1/schedules/{schedule_id}", "patch")
    created = client.post("/v1/schedules", json=SCHEDULE).get_json()
    assert accepts(document, schema, PATCH)

    def send(body: Any) -> int:
        return client.patch(f"/v1/schedules/{created['id']}", json=body).status_code

    assert check_agreement(document, schema, probed(PATCH), send) == []


ENDPOINT = {
    "url": "http://127.0.0.1:9/hooks",
    "events": ["export.succeeded"],
    "description": "app",
    "enabled": True,
}


def test_webhook_endpoint_requests(client: FlaskClient, document: dict[str, Any]) -> None:
    schema = body_schema(document, "/v1/webhook-endpoints", "post")
    assert accepts(document, schema, ENDPOINT)

    def send(body: Any) -> int:
        return client.post("/v1/webhook-endpoints", json=body).status_code

    assert check_agreement(document, schema, probed(ENDPOINT), send) == []


def test_webhook_endpoint_changes(client: FlaskClient, document: dict[str, Any]) -> None:
    schema = body_schema(document, "/v1/webhook-endpoints/{endpoint_id}", "patch")
    created = client.post("/v1/webhook-endpoints", json=ENDPOINT).get_json()

    def send(body: Any) -> int:
        return client.patch(f"/v1/webhook-endpoints/{created['id']}", json=body).status_code

    assert check_agreement(document, schema, probed(ENDPOINT), send) == []
