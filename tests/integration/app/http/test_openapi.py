"""GET /v1/openapi.json: a valid OpenAPI 3.1 document that matches the routes and real responses."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug.test import TestResponse

from app.exports.catalog import Catalog, ExportKind, Param, ParamsInvalid
from app.exports.demo import seed_demo_orders
from app.http import openapi
from app.http.openapi import openapi_document
from poller.core.dispatch import Poller
from tests.support.exports import job_ended, submit
from tests.support.waiting import wait_until

DOC_URI = "urn:exports:openapi"
ERROR_STATUSES = {400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 429, 500, 503}
UNKNOWN_ID = "6f1c3c2e-8d0a-4b8e-9d61-3f1d2f0a9b77"


@pytest.fixture
def api(app: Flask) -> Flask:
    """The app serving /v1/openapi.json (registered here until app/__init__.py does it)."""
    if openapi.bp.name not in app.blueprints:
        app.register_blueprint(openapi.bp)
    return app


@pytest.fixture
def api_client(api: Flask) -> FlaskClient:
    """A client of the app with the OpenAPI route."""
    return api.test_client()


@pytest.fixture
def document(api_client: FlaskClient) -> dict[str, Any]:
    """The document as the API serves it."""
    response = api_client.get("/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


class Documented:
    """Checks real responses against what the document says about them."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry: Registry = Registry().with_resource(DOC_URI, resource)

    def validator(self, pointer: str) -> Draft202012Validator:
        """A validator for the schema at `pointer` in the document (refs resolved)."""
        return Draft202012Validator(
            {"$ref": f"{DOC_URI}#{pointer}"},
            registry=self.registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )

    def schema_errors(self, pointer: str, instance: Any) -> list[str]:
        """Every way `instance` breaks the schema at `pointer`."""
        return [e.message for e in self.validator(pointer).iter_errors(instance)]

    def response_pointer(self, path: str, method: str, status: int) -> str:
        """Where the document describes this response (following a $ref to components)."""
        operation = self.document["paths"][path][method]
        assert str(status) in operation["responses"], f"{status} not documented for {method} {path}"
        pointer = f"/paths/{_escape(path)}/{method}/responses/{status}"
        return self._follow(pointer)

    def check(self, response: TestResponse, pointer: str) -> Any:
        """Assert the response has the documented headers, media type and body; the body."""
        spec = self.at(pointer)
        for name, header in spec.get("headers", {}).items():
            header = self.at(self._follow_ref(header)) if "$ref" in header else header
            if header.get("required"):
                assert name in response.headers, f"documented header {name} missing"
        content = spec.get("content", {})
        if not content:
            assert not response.data
            return None
        assert response.mimetype in content, f"{response.mimetype} not in {sorted(content)}"
        schema_pointer = f"{pointer}/content/{_escape(response.mimetype)}/schema"
        body = response.get_json() if "json" in response.mimetype else response.get_data(True)
        assert self.schema_errors(schema_pointer, body) == []
        return body

    def check_operation(self, response: TestResponse, path: str, method: str) -> Any:
        """check() against the documented response of this operation for the status given."""
        return self.check(response, self.response_pointer(path, method, response.status_code))

    def _follow(self, pointer: str) -> str:
        value = self.at(pointer)
        return self._follow_ref(value) if "$ref" in value else pointer

    @staticmethod
    def _follow_ref(value: dict[str, Any]) -> str:
        assert value["$ref"].startswith("#")
        return value["$ref"][1:]

    def at(self, pointer: str) -> Any:
        """The part of the document at a JSON Pointer."""
        node: Any = self.document
        for part in pointer.split("/")[1:]:
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


@pytest.fixture
def documented(document: dict[str, Any]) -> Documented:
    """The document, ready to check responses against."""
    return Documented(document)


def flask_routes(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path template, method) for every route of the app (HEAD/OPTIONS implied),
    except the operator console's: HTML pages for people, not part of the API."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    return routes


# --- the document ----------------------------------------------------------------------------


def test_document_is_valid_openapi_3_1(api: Flask, document: dict[str, Any]) -> None:
    validate(document)

    assert document["openapi"].startswith("3.1.")
    catalog: Catalog = api.extensions["exports"].catalog
    assert document == json.loads(json.dumps(openapi_document(catalog)))


def test_every_route_is_documented_and_nothing_else(api: Flask, document: dict[str, Any]) -> None:
    documented_routes = {
        (path, method) for path, item in document["paths"].items() for method in item
    }

    assert documented_routes == flask_routes(api)
    assert ("/v1/openapi.json", "get") in documented_routes


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]

    assert len(ids) == len(set(ids))


def test_every_error_status_is_a_problem_document(document: dict[str, Any]) -> None:
    doc = Documented(document)
    seen: set[int] = set()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status in operation["responses"]:
                if int(status) not in ERROR_STATUSES:
                    continue
                seen.add(int(status))
                spec = doc.at(doc.response_pointer(path, method, int(status)))
                assert "application/problem+json" in spec["content"], (method, path, status)
    seen.add(405)  # any path, any other method: components/responses/MethodNotAllowed

    assert seen == ERROR_STATUSES
    assert {"202", "200", "302"} <= {
        s for item in document["paths"].values() for op in item.values() for s in op["responses"]
    }


def test_export_request_follows_the_catalog(api: Flask, document: dict[str, Any]) -> None:
    catalog: Catalog = api.extensions["exports"].catalog
    schemas = document["components"]["schemas"]

    assert schemas["ExportRequest"]["properties"]["kind"]["enum"] == [k.name for k in catalog]
    for kind in catalog:
        branch = schemas[f"ExportRequest.{kind.name}"]
        params = branch["properties"]["params"]
        assert branch["properties"]["kind"] == {"const": kind.name}
        assert branch["properties"]["format"]["enum"] == list(kind.formats)
        assert list(params["properties"]) == [p.name for p in kind.params]
        assert params.get("required", []) == [
            p.name for p in kind.params if p.required and p.default is None
        ]
        assert params["additionalProperties"] is False


GOOD = {"owner_id": "user-1", "kind": "demo_orders"}

# (request body, the server's status): the document must say the same as the server.
BODIES: list[tuple[str, Any, int]] = [
    ("minimal", GOOD, 202),
    (
        "everything",
        {
            **GOOD,
            "params": {"since": "2024-01-31", "status": "shipped"},
            "format": "csv",
            "notify": {"email": "a@example.com"},
        },
        202,
    ),
    ("null params and notify", {**GOOD, "params": None, "notify": None}, 202),
    ("null param", {**GOOD, "params": {"since": None}}, 202),
    ("required number param", {**GOOD, "kind": "slow_orders", "params": {"pause": 0.5}}, 202),
    ("integer for a number", {**GOOD, "kind": "slow_orders", "params": {"pause": 1}}, 202),
    ("not an object", ["owner_id"], 422),
    ("unknown field", {**GOOD, "priority": "high"}, 422),
    ("blank owner", {**GOOD, "owner_id": " \t"}, 422),
    ("long owner", {**GOOD, "owner_id": "x" * 201}, 422),
    ("owner not a string", {**GOOD, "owner_id": 7}, 422),
    ("no kind", {"owner_id": "user-1"}, 422),
    ("unknown kind", {**GOOD, "kind": "everything"}, 422),
    ("unknown format", {**GOOD, "format": "pdf"}, 422),
    ("null format", {**GOOD, "format": None}, 422),
    ("params a list", {**GOOD, "params": ["since"]}, 422),
    ("unknown param", {**GOOD, "params": {"owner_id": "u2"}}, 422),
    ("mistyped param", {**GOOD, "params": {"since": 20240131}}, 422),
    ("malformed date", {**GOOD, "params": {"since": "31/01/2024"}}, 422),
    ("long string param", {**GOOD, "params": {"status": "x" * 1001}}, 422),
    ("missing required param", {**GOOD, "kind": "slow_orders"}, 422),
    ("null required param", {**GOOD, "kind": "slow_orders", "params": {"pause": None}}, 422),
    ("boolean for a number", {**GOOD, "kind": "slow_orders", "params": {"pause": True}}, 422),
    ("notify without email: webhooks only", {**GOOD, "notify": {}}, 202),
    ("no webhook", {**GOOD, "notify": {"webhook": False}}, 202),
    ("webhook not a boolean", {**GOOD, "notify": {"webhook": "no"}}, 422),
    ("notify not an object", {**GOOD, "notify": "a@example.com"}, 422),
    ("unknown notify field", {**GOOD, "notify": {"email": "a@example.com", "sms": "1"}}, 422),
    ("bad email", {**GOOD, "notify": {"email": "not-an-address"}}, 422),
]


@pytest.mark.parametrize(("body", "status"), [b[1:] for b in BODIES], ids=[b[0] for b in BODIES])
def test_document_and_server_agree_on_request_bodies(
    api_client: FlaskClient, documented: Documented, body: Any, status: int
) -> None:
    response = api_client.post("/v1/exports", json=body)
    errors = documented.schema_errors("/components/schemas/ExportRequest", body)

    assert response.status_code == status, response.get_json()
    assert (errors == []) == (status == 202), errors
    documented.check_operation(response, "/v1/exports", "post")


# (param type, values the server takes, values it refuses): the document must agree.
PARAM_VALUES: list[tuple[str, list[Any], list[Any]]] = [
    ("string", ["", "x" * 1000, None], ["x" * 1001, 1, True]),
    ("integer", [0, -(2**63), 2**63 - 1, None], [2**63, -(2**63) - 1, 1.5, True, "1"]),
    ("number", [0, -2, 1.5, None], [True, "1", [1]]),
    ("boolean", [True, False, None], [0, "true"]),
    ("date", ["2024-01-31", None], ["31/01/2024", "2024-02-30", "0000-01-01", 20240131]),
    (
        "datetime",
        ["2024-01-31T12:00:00Z", "2024-01-31T12:00:00.5+05:30", None],
        ["2024-01-31T12:00:00", "2024-01-31", "2024-01-31T24:00:00Z", 1],
    ),
]


@pytest.mark.parametrize(("type_", "good", "bad"), PARAM_VALUES, ids=[v[0] for v in PARAM_VALUES])
def test_document_and_catalog_agree_on_param_types(
    type_: str, good: list[Any], bad: list[Any]
) -> None:
    kind = ExportKind(name="k", description="", query="", params=(Param("p", type_),))
    doc = Documented(openapi_document(Catalog({"k": kind})))

    for value, takes in [*((v, True) for v in good), *((v, False) for v in bad)]:
        body = {"owner_id": "u", "kind": "k", "params": {"p": value}}
        try:
            kind.validate_params({"p": value})
            server_takes = True
        except ParamsInvalid:
            server_takes = False
        errors = doc.schema_errors("/components/schemas/ExportRequest", body)
        assert server_takes == takes == (errors == []), (value, errors)


# --- real responses --------------------------------------------------------------------------


def test_job_lifecycle_responses_match(
    api_client: FlaskClient, documented: Documented, db: psycopg.Connection
) -> None:
    post = ("/v1/exports", "post")
    headers = {"Idempotency-Key": "key-1"}

    created = api_client.post("/v1/exports", json=GOOD, headers=headers)
    job = documented.check_operation(created, *post)
    assert documented.schema_errors("/components/schemas/Job", {**job, "state": "done"})
    replayed = api_client.post("/v1/exports", json=GOOD, headers=headers)
    conflict = api_client.post("/v1/exports", json={**GOOD, "format": "csv"}, headers=headers)
    submit(api_client)

    assert created.status_code == replayed.status_code == 202
    assert replayed.headers["Idempotent-Replayed"] == "true"
    documented.check_operation(replayed, *post)
    assert documented.check_operation(conflict, *post)["job_id"] == job["id"]
    got = api_client.get(created.headers["Location"])
    assert documented.check_operation(got, "/v1/exports/{job_id}", "get") == job
    first = api_client.get("/v1/exports?limit=1&owner_id=user-1")
    page = documented.check_operation(first, "/v1/exports", "get")
    assert page["next_cursor"] is not None
    second = api_client.get(f"/v1/exports?limit=1&cursor={page['next_cursor']}")
    assert documented.check_operation(second, "/v1/exports", "get")["items"][0]["id"] == job["id"]
    cancel = f"/v1/exports/{job['id']}/cancel"
    cancelled = api_client.post(cancel)
    assert (
        documented.check_operation(cancelled, "/v1/exports/{job_id}/cancel", "post")["state"]
        == "cancelled"
    )
    db.execute("UPDATE exports.jobs SET state = 'failed' WHERE id = %s", (job["id"],))
    refused = api_client.post(cancel)
    assert refused.status_code == 409
    assert (
        documented.check_operation(refused, "/v1/exports/{job_id}/cancel", "post")["state"]
        == "failed"
    )


@pytest.fixture
def finished(
    api_client: FlaskClient, db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> Iterator[dict[str, Any]]:
    """A succeeded csv export, as the API shows it."""
    seed_demo_orders(db, 5)
    job = submit(api_client, format="csv")
    start_poller()
    wait_until(lambda: job_ended(db, job["id"]), what="the export")
    yield api_client.get(f"/v1/exports/{job['id']}").get_json()


def test_succeeded_job_and_download_match(
    api_client: FlaskClient, documented: Documented, finished: dict[str, Any]
) -> None:
    path = "/d/{token}"
    link = finished["download_url"].removeprefix("http://exports.test")

    got = api_client.get(f"/v1/exports/{finished['id']}")
    whole = api_client.get(link)
    part = api_client.get(link, headers={"Range": "bytes=0-9"})
    unchanged = api_client.get(link, headers={"If-None-Match": whole.headers["ETag"]})
    beyond = api_client.get(link, headers={"Range": "bytes=999999-"})

    job = documented.check_operation(got, "/v1/exports/{job_id}", "get")
    assert job["state"] == "succeeded" and job["result"] is not None
    assert [r.status_code for r in (whole, part, unchanged, beyond)] == [200, 206, 304, 416]
    for response in (whole, part, unchanged, beyond):
        documented.check_operation(response, path, "get")


@pytest.mark.parametrize(
    ("method", "url", "path", "status"),
    [
        ("get", "/v1/export-kinds", "/v1/export-kinds", 200),
        ("get", "/healthz", "/healthz", 200),
        ("get", "/readyz", "/readyz", 200),
        ("get", "/metrics", "/metrics", 200),
        ("get", "/v1/openapi.json", "/v1/openapi.json", 200),
        ("get", f"/v1/exports/{UNKNOWN_ID}", "/v1/exports/{job_id}", 404),
        ("get", "/v1/exports/12345", "/v1/exports/{job_id}", 404),
        ("post", f"/v1/exports/{UNKNOWN_ID}/cancel", "/v1/exports/{job_id}/cancel", 404),
        ("get", "/v1/exports?state=done&limit=0", "/v1/exports", 422),
        ("get", "/v1/exports?cursor=bm90LWEtY3Vyc29y", "/v1/exports", 422),
        ("get", "/d/not-a-token", "/d/{token}", 404),
    ],
)
def test_other_responses_match(
    api_client: FlaskClient, documented: Documented, method: str, url: str, path: str, status: int
) -> None:
    response = api_client.open(url, method=method)

    assert response.status_code == status
    documented.check_operation(response, path, method)


def test_browser_gets_an_html_page_for_a_bad_link(
    api_client: FlaskClient, documented: Documented
) -> None:
    response = api_client.get("/d/not-a-token", headers={"Accept": "text/html"})

    assert response.status_code == 404 and response.mimetype == "text/html"
    documented.check_operation(response, "/d/{token}", "get")


@pytest.mark.parametrize(
    ("data", "content_type", "headers", "status"),
    [
        ('{"owner_id": ', "application/json", {}, 400),
        (json.dumps(GOOD), "application/json", {"Idempotency-Key": "k" * 256}, 400),
        (json.dumps(GOOD), "text/plain", {}, 415),
        (json.dumps({**GOOD, "owner_id": "x" * 100_000}), "application/json", {}, 413),
    ],
    ids=["malformed JSON", "bad Idempotency-Key", "wrong media type", "too large"],
)
def test_rejected_posts_match(
    api_client: FlaskClient,
    documented: Documented,
    data: str,
    content_type: str,
    headers: dict[str, str],
    status: int,
) -> None:
    response = api_client.post("/v1/exports", data=data, content_type=content_type, headers=headers)

    assert response.status_code == status
    documented.check_operation(response, "/v1/exports", "post")


def test_method_not_allowed_matches(api_client: FlaskClient, documented: Documented) -> None:
    response = api_client.delete(f"/v1/exports/{UNKNOWN_ID}")

    assert response.status_code == 405
    documented.check(response, "/components/responses/MethodNotAllowed")


# --- authentication --------------------------------------------------------------------------


def test_v1_operations_need_a_bearer_key_except_the_description(
    api: Flask, document: dict[str, Any]
) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    anonymous = api.test_client()
    anonymous.environ_base.pop("HTTP_AUTHORIZATION", None)
    doc = Documented(document)

    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["security"] == [{"bearerAuth": []}]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            open_ = path in openapi.PUBLIC_PATHS or not path.startswith("/v1/")
            assert (operation.get("security") == []) == open_, (method, path)
            assert ("401" in operation["responses"]) != open_, (method, path)
            if open_ or "{" in path:
                continue
            response = anonymous.open(path, method=method)
            assert response.status_code == 401, (method, path)
            assert response.headers["WWW-Authenticate"].startswith("Bearer ")
            doc.check_operation(response, path, method)
    assert "429" in document["paths"]["/v1/exports"]["post"]["responses"]


# --- the human docs page -----------------------------------------------------------------------


def test_docs_page_lists_every_operation_and_schema(
    api: Flask, document: dict[str, Any], documented: Documented
) -> None:
    anonymous = api.test_client()
    anonymous.environ_base.pop("HTTP_AUTHORIZATION", None)

    response = anonymous.get("/v1/docs")

    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<script" not in page and "src=" not in page  # self-contained
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert f'id="{operation["operationId"]}"' in page, (method, path)
            assert f"<code>{path}</code>" in page, path
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in page, name
    for name in document["components"]["responses"]:
        assert f"<code>{name}</code>" in page, name
    assert 'href="openapi.json"' in page
    documented.check_operation(response, "/v1/docs", "get")


def test_the_document_has_the_one_version_of_the_service(client: FlaskClient) -> None:
    # Issue 13: the document said 1.0.0 while the package (and pollers, Sentry) said 0.1.0.
    from app.platform.version import package_version

    version = client.get("/v1/openapi.json").get_json()["info"]["version"]

    assert version == package_version() != "unknown"
