"""The OpenAPI document as one self-contained HTML page (GET /v1/docs): no scripts, no CDN.

Rendered server-side from the same document /v1/openapi.json serves, so the page cannot
say anything the document does not (docs/decisions.md says why not Redoc).
"""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup, escape

from app.http.templates import page_templates

METHODS = ("get", "put", "post", "delete", "patch")
_templates = page_templates()


def _code(text: str) -> Markup:
    """`backticks` in descriptions as <code>, everything else escaped."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick stays a backtick
        parts[-2:] = [parts[-2] + "`" + parts[-1]]
    # Markup.format escapes what it inserts, so no description text reaches the page raw.
    code = Markup("<code>{}</code>")
    return Markup("").join(
        code.format(part) if index % 2 else escape(part) for index, part in enumerate(parts)
    )


_templates.filters["code"] = _code


def render(document: dict[str, Any]) -> str:
    """The HTML page for an OpenAPI 3.1 document."""
    return _templates.get_template("docs.html").render(**page(document))


def page(document: dict[str, Any]) -> dict[str, Any]:
    """What the page shows: operations by tag, then schemas and the problem responses."""
    components = document.get("components", {})
    default_security = bool(document.get("security"))
    tags = [tag["name"] for tag in document.get("tags", [])]
    by_tag: dict[str, list[dict[str, Any]]] = {}
    for path, item in document["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            tag = (operation.get("tags") or ["other"])[0]
            if tag not in tags:
                tags.append(tag)
            secured = bool(operation["security"]) if "security" in operation else default_security
            by_tag.setdefault(tag, []).append(
                {
                    "method": method.upper(),
                    "path": path,
                    "id": operation.get("operationId", f"{method}-{path}"),
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "secured": secured,
                    "parameters": [
                        _parameter(_resolve(document, p)) for p in operation.get("parameters", [])
                    ],
                    "body": _body(document, operation.get("requestBody")),
                    "responses": [
                        _response(document, status, response)
                        for status, response in operation["responses"].items()
                    ],
                }
            )
    return {
        "info": document["info"],
        "openapi": document["openapi"],
        "groups": [(tag, by_tag[tag]) for tag in tags if tag in by_tag],
        "schemes": components.get("securitySchemes", {}),
        "schemas": [
            (name, schema.get("description", ""), json.dumps(schema, indent=2, ensure_ascii=False))
            for name, schema in components.get("schemas", {}).items()
        ],
        "problems": [
            (name, response["description"])
            for name, response in components.get("responses", {}).items()
        ],
    }


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local $ref ("#/components/...") to what it names."""
    while "$ref" in node and node["$ref"].startswith("#/"):
        target: Any = document
        for part in node["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _schema(schema: dict[str, Any] | None) -> dict[str, str]:
    """A schema as a link to its component, or as compact JSON when it is inline."""
    if schema is None:
        return {"name": "", "json": ""}
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        return {"name": ref.rsplit("/", 1)[1], "json": ""}
    return {"name": "", "json": json.dumps(schema, ensure_ascii=False)}


def _parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": parameter["name"],
        "in": parameter["in"],
        "required": parameter.get("required", False),
        "description": parameter.get("description", ""),
        "schema": _schema(parameter.get("schema")),
    }


def _body(document: dict[str, Any], body: dict[str, Any] | None) -> list[dict[str, Any]]:
    if body is None:
        return []
    body = _resolve(document, body)
    return [
        {"media": media, "schema": _schema(content.get("schema"))}
        for media, content in body.get("content", {}).items()
    ]


def _response(document: dict[str, Any], status: str, response: dict[str, Any]) -> dict[str, Any]:
    ref = response.get("$ref", "")
    response = _resolve(document, response)
    return {
        "status": status,
        "component": ref.rsplit("/", 1)[1] if ref else "",
        "description": response.get("description", ""),
        "headers": list(response.get("headers", {})),
        "content": [
            {"media": media, "schema": _schema(content.get("schema"))}
            for media, content in response.get("content", {}).items()
        ],
    }
