"""OpenAPI 3.1 paths of the webhook endpoint operations; their schemas are
app/http/schemas.py's, the ones the server validates with."""

from __future__ import annotations

from typing import Any

from app.http import schemas

JSON = "application/json"


def paths() -> dict[str, Any]:
    """The /v1/webhook-endpoints and /v1/webhook-deliveries operations."""
    endpoint_id = {
        "name": "endpoint_id",
        "in": "path",
        "required": True,
        "description": "The endpoint's id (a UUID; anything else is a 404).",
        "schema": {"type": "string", "format": "uuid"},
    }
    not_found = {
        "description": "`not-found`: no such endpoint for this caller (also another tenant's).",
        "content": {"application/problem+json": {"schema": schemas.ref("Problem")}},
    }
    common = {
        "500": schemas.response_ref("InternalError"),
        "503": schemas.response_ref("DatabaseUnavailable"),
    }
    body_errors = {
        "400": schemas.response_ref("BadRequest"),
        "413": schemas.response_ref("PayloadTooLarge"),
        "415": schemas.response_ref("UnsupportedMediaType"),
        "422": schemas.response_ref("ValidationFailed"),
    }

    def answer(description: str, schema: str) -> dict[str, Any]:
        return {"description": description, "content": {JSON: {"schema": schemas.ref(schema)}}}

    return {
        "/v1/webhook-endpoints": {
            "post": {
                "operationId": "createWebhookEndpoint",
                "tags": ["webhooks"],
                "summary": "Create a webhook endpoint (its secret is in this response only)",
                "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": schemas.ref("WebhookEndpointRequest")}},
                },
                "responses": {
                    "201": {
                        **answer("The endpoint, with its secret.", "WebhookEndpointWithSecret"),
                        "headers": {
                            "Location": schemas.header_ref("Location"),
                            "Idempotent-Replayed": schemas.header_ref("IdempotentReplayed"),
                        },
                    },
                    "409": schemas.response_ref("IdempotencyConflict"),
                    **body_errors,
                    **common,
                },
            },
            "get": {
                "operationId": "listWebhookEndpoints",
                "tags": ["webhooks"],
                "summary": "List webhook endpoints, newest first",
                "parameters": schemas.query_parameters(schemas.PAGE_QUERY),
                "responses": {
                    "200": answer("One page of endpoints.", "WebhookEndpointList"),
                    "422": schemas.response_ref("ValidationFailed"),
                    **common,
                },
            },
        },
        "/v1/webhook-endpoints/{endpoint_id}": {
            "get": {
                "operationId": "getWebhookEndpoint",
                "tags": ["webhooks"],
                "summary": "One webhook endpoint (never its secret)",
                "parameters": [endpoint_id],
                "responses": {
                    "200": answer("The endpoint.", "WebhookEndpoint"),
                    "404": not_found,
                    **common,
                },
            },
            "patch": {
                "operationId": "updateWebhookEndpoint",
                "tags": ["webhooks"],
                "summary": "Change url, events, description or enabled",
                "parameters": [endpoint_id],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": schemas.ref("WebhookEndpointPatch")}},
                },
                "responses": {
                    "200": answer("The endpoint.", "WebhookEndpoint"),
                    "404": not_found,
                    **body_errors,
                    **common,
                },
            },
            "delete": {
                "operationId": "deleteWebhookEndpoint",
                "tags": ["webhooks"],
                "summary": "Delete a webhook endpoint and its deliveries",
                "parameters": [endpoint_id],
                "responses": {"204": {"description": "Deleted."}, "404": not_found, **common},
            },
        },
        "/v1/webhook-endpoints/{endpoint_id}/rotate-secret": {
            "post": {
                "operationId": "rotateWebhookSecret",
                "tags": ["webhooks"],
                "summary": "A new secret; for 24 h deliveries are signed with the old one too",
                "parameters": [endpoint_id],
                "responses": {
                    "200": answer(
                        "The endpoint, with its new secret.", "WebhookEndpointWithSecret"
                    ),
                    "404": not_found,
                    **common,
                },
            },
        },
        "/v1/webhook-endpoints/{endpoint_id}/test": {
            "post": {
                "operationId": "testWebhookEndpoint",
                "tags": ["webhooks"],
                "summary": "Queue a webhook.test event to the endpoint",
                "parameters": [endpoint_id],
                "responses": {
                    "202": answer("The delivery, queued.", "WebhookDelivery"),
                    "404": not_found,
                    **common,
                },
            },
        },
        "/v1/webhook-endpoints/{endpoint_id}/deliveries": {
            "get": {
                "operationId": "listWebhookDeliveries",
                "tags": ["webhooks"],
                "summary": "An endpoint's deliveries, newest first",
                "parameters": [endpoint_id, *schemas.query_parameters(schemas.PAGE_QUERY)],
                "responses": {
                    "200": answer("One page of deliveries.", "WebhookDeliveryList"),
                    "404": not_found,
                    "422": schemas.response_ref("ValidationFailed"),
                    **common,
                },
            },
        },
        "/v1/webhook-deliveries/{delivery_id}/retry": {
            "post": {
                "operationId": "retryWebhookDelivery",
                "tags": ["webhooks"],
                "summary": "Deliver again now, with the same webhook-id",
                "parameters": [
                    {
                        "name": "delivery_id",
                        "in": "path",
                        "required": True,
                        "description": "The delivery's id (a whole number; else a 404).",
                        "schema": {"type": "integer", "minimum": 0},
                    }
                ],
                "responses": {
                    "202": answer("The delivery, pending again.", "WebhookDelivery"),
                    "404": {
                        "description": "`not-found`: no such delivery for this caller.",
                        "content": {"application/problem+json": {"schema": schemas.ref("Problem")}},
                    },
                    **common,
                },
            },
        },
    }
