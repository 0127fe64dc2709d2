"""app/http/schemas.py: JSON Schema validation with errors by JSON Pointer, and the schemas
of real responses (render.py's shapes)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from app.exports.catalog import Catalog, ExportKind, Param, load_catalog
from app.exports.jobs import Job
from app.exports.links import LinkSigner
from app.http import schemas
from app.http.problems import Problem, invalid
from app.http.render import job_json, kinds_json
from app.platform.settings import PROJECT_ROOT

KIND = ExportKind(
    name="orders",
    description="Orders.",
    query="SELECT 1 WHERE %(owner_id)s IS NOT NULL",
    params=(Param("since", "date"), Param("pause", "number", required=True)),
    formats=("csv",),
)
CATALOG = Catalog({"orders": KIND})
COMPONENTS = schemas.component_schemas(CATALOG)
REQUEST = schemas.ref(schemas.kind_schema_name(KIND))


def errors(body: Any) -> dict[str, str]:
    return schemas.validate(REQUEST, body, components=COMPONENTS)


def test_every_schema_is_valid_draft_2020_12() -> None:
    catalog = load_catalog(Path(PROJECT_ROOT) / "sql" / "exports")
    for name, schema in schemas.component_schemas(catalog).items():
        Draft202012Validator.check_schema(schema), name


def test_a_good_body_has_no_errors() -> None:
    body = {"owner_id": "u", "kind": "orders", "format": "csv", "params": {"pause": 1}}

    assert errors(body) == {}


def test_errors_are_keyed_by_json_pointer_in_schema_order() -> None:
    body = {"kind": "orders", "format": "pdf", "params": {"since": 5, "x": 1}, "a/b": 1}

    assert errors(body) == {
        "/a~1b": "is not a known field",
        "/owner_id": "is required",
        "/format": "must be one of csv",
        "/params/x": "is not a known parameter of orders",
        "/params/pause": "is required",
        "/params/since": "must be a string",
    }


@pytest.mark.parametrize(
    ("body", "pointer", "message"),
    [
        ([], "", "must be an object"),
        ({"owner_id": " \t", "kind": "orders", "format": "csv", "params": {"pause": 1}},
         "/owner_id", schemas.pattern_message(schemas.OWNER_ID["pattern"])),
        ({"owner_id": "x" * 201, "kind": "orders", "format": "csv", "params": {"pause": 1}},
         "/owner_id", "must be at most 200 characters"),
        ({"owner_id": "u", "kind": "orders", "format": "csv",
          "params": {"pause": 1, "since": "31/01/2024"}},
         "/params/since", "must be a date like 2024-01-31"),
        ({"owner_id": "u", "kind": "orders", "format": "csv", "params": {"pause": True}},
         "/params/pause", "must be a number"),
        ({"owner_id": "u", "kind": "orders", "format": "csv", "params": {"pause": 1},
          "notify": {"webhook": "yes"}}, "/notify/webhook", "must be true or false"),
    ],
)  # fmt: skip
def test_messages_say_what_is_wrong(body: Any, pointer: str, message: str) -> None:
    assert errors(body)[pointer] == message


def test_the_envelope_names_the_known_kinds() -> None:
    envelope = schemas.export_request_envelope(CATALOG)

    found = schemas.validate(envelope, {"owner_id": "u", "kind": "nope"}, components=COMPONENTS)

    assert found == {"/kind": "is not a known export kind (known: orders)"}


@pytest.mark.parametrize(
    ("args", "pointers"),
    [
        ({"limit": "10", "state": "queued", "owner_id": "u", "cursor": "c"}, set()),
        ({"limit": "+7", "state": ""}, set()),
        ({"limit": "0"}, {"/limit"}),
        ({"limit": "ten"}, {"/limit"}),
        ({"limit": "1.5"}, {"/limit"}),
        ({"state": "done", "owner": "u"}, {"/state", "/owner"}),
        ({"owner_id": "a\x00b"}, {"/owner_id"}),
    ],
)
def test_list_query_is_validated_as_typed_values(args: dict[str, str], pointers: set[str]) -> None:
    query = schemas.query_instance(schemas.LIST_EXPORTS_QUERY, args)

    assert set(schemas.validate(schemas.LIST_EXPORTS_QUERY, query)) == pointers


@pytest.mark.parametrize(
    ("key", "ok"),
    [("k", True), ("k" * 255, True), ("", False), ("k" * 256, False), ("a\x7f", False)],
)
def test_idempotency_key(key: str, ok: bool) -> None:
    assert (schemas.validate(schemas.IDEMPOTENCY_KEY, key) == {}) == ok


def test_invalid_takes_json_pointers_only() -> None:
    problem = invalid({"/notify/email": "is required", "": "x"})

    assert list(problem.errors) == ["/notify/email", ""]
    with pytest.raises(AssertionError):  # the dotted-name shim is gone: one key style
        invalid({"notify.email": "is required"})


# --- responses ------------------------------------------------------------------------------


def _check(schema_name: str, instance: Any) -> list[str]:
    validator = Draft202012Validator(
        {"components": {"schemas": COMPONENTS}, **schemas.ref(schema_name)}
    )
    return [error.message for error in validator.iter_errors(instance)]


def _job(**changes: Any) -> Job:
    now = dt.datetime(2024, 1, 31, 12, tzinfo=dt.UTC)
    values: dict[str, Any] = {field.name: None for field in dataclasses.fields(Job)}
    values.update(
        id=uuid.uuid4(), tenant="default", owner_id="u", kind="orders", params={"since": None},
        format="csv", state="queued", attempts=0, created_at=now, progress_rows=0,
        progress_bytes=0, timezone="UTC", safe_cells=True, max_part_bytes=2**30,
        priority="interactive",
    )  # fmt: skip
    values.update(changes)
    return Job(**values)


def test_rendered_jobs_match_the_job_schema() -> None:
    links = LinkSigner("secret", "http://exports.test", 60)
    now = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
    succeeded = _job(
        state="succeeded", attempts=1, started_at=now, finished_at=now, result_key="k",
        result_rows=3, result_bytes=10, result_sha256="ab", result_content_type="text/csv",
        expires_at=now, schedule_id=uuid.uuid4(),
    )  # fmt: skip

    in_parts = dataclasses.replace(
        succeeded,
        format="parquet",
        columns=["order_id", "note"],
        timezone="Europe/Berlin",
        result_key="k/manifest.json",
        result_parts=[
            {"key": "k/part-00001.parquet", "rows": 2, "bytes": 6, "sha256": "cd"},
            {"key": "k/part-00002.parquet", "rows": 1, "bytes": 4, "sha256": "ef"},
        ],
    )
    for job in (_job(), succeeded, in_parts, _job(state="failed", last_error="boom")):
        assert _check("Job", job_json(job, links)) == []
    shown = job_json(in_parts, links)["result"]
    assert [part["download_url"].rsplit("/", 1)[1] for part in shown["parts"]] == ["1", "2"]
    assert shown["manifest_key"] == "k/manifest.json"
    assert _check("Job", {**job_json(_job(), links), "state": "done"})
    page = {"items": [job_json(succeeded, links)], "next_cursor": None}
    assert _check("JobList", page) == []


def test_rendered_kinds_and_problems_match_their_schemas() -> None:
    problem = Problem(409, "idempotency-conflict", "t", "d", job_id=str(uuid.uuid4()))

    assert _check("Kinds", kinds_json(CATALOG)) == []
    assert _check("Problem", problem.to_response().get_json()) == []
    assert (
        _check("ValidationProblem", invalid({"/a": "is required"}).to_response().get_json()) == []
    )
    assert _check("ValidationProblem", problem.to_response().get_json())
